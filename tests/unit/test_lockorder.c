/* SPDX-License-Identifier: MIT */
/* Unit tests for the lock-order checker: inversions and longer cycles are
 * reported exactly once, consistent orders never. */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <weft/debug.h>

/* Reports captured by the hook (a pthread mutex: the checker observes weft
 * mutexes, and the hook runs inside a lock probe). */
static pthread_mutex_t cap_lock = PTHREAD_MUTEX_INITIALIZER;
static char last[8192];
static int hooked;

static void
hook(void *ctx, const char *kind, const char *report)
{
    (void)ctx;
    pthread_mutex_lock(&cap_lock);
    if (strcmp(kind, "lock-order") == 0) {
        snprintf(last, sizeof(last), "%s", report);
        hooked++;
    }
    pthread_mutex_unlock(&cap_lock);
}

static int
hook_count(void)
{
    pthread_mutex_lock(&cap_lock);
    int n = hooked;
    pthread_mutex_unlock(&cap_lock);
    return n;
}

static int
setup(void **state)
{
    (void)state;
    weft_deadlock_set_hook(hook, NULL);
    weft_lockorder_enable(true);
    return 0;
}

static void
lock2(weft_mutex_t *x, weft_mutex_t *y)
{
    assert_int_equal(weft_mutex_lock(x), WEFT_OK);
    assert_int_equal(weft_mutex_lock(y), WEFT_OK);
    weft_mutex_unlock(y);
    weft_mutex_unlock(x);
}

/* Each test has its own mutexes: a lock is its address. */
static weft_mutex_t a1 = WEFT_MUTEX_INIT, b1 = WEFT_MUTEX_INIT;

static void *
take_b_then_a(void *arg)
{
    (void)arg;
    lock2(&b1, &a1);
    return NULL;
}

static void
test_ab_ba_reported_once(void **state)
{
    (void)state;
    assert_true(weft_lockorder_enabled());
    uint64_t r0 = weft_lockorder_reports();
    int h0 = hook_count();
    lock2(&a1, &b1);
    lock2(&a1, &b1);
    assert_int_equal(weft_lockorder_reports(), r0);
    /* The inverted order, in another thread: reported, nothing hangs. */
    weft_thread_opts_t o = WEFT_THREAD_OPTS_INIT;
    o.name = "inverter";
    weft_thread_t *t = NULL;
    assert_int_equal(weft_thread_create(&o, take_b_then_a, NULL, &t), WEFT_OK);
    assert_int_equal(weft_thread_join(t, NULL), WEFT_OK);
    assert_int_equal(weft_lockorder_reports(), r0 + 1);
    assert_int_equal(hook_count(), h0 + 1);
    char want[128];
    snprintf(want, sizeof(want), "lock-order cycle of 2 locks: %p -> %p -> %p",
             (void *)&b1, (void *)&a1, (void *)&b1);
    assert_non_null(strstr(last, want));
    assert_non_null(strstr(last, "thread \"inverter\""));
    assert_non_null(strstr(last, "thread \"main\""));
    assert_non_null(strstr(last, "backtrace:\n      #0 "));
    /* Again, both orders, both threads: no second report. */
    lock2(&b1, &a1);
    lock2(&a1, &b1);
    assert_int_equal(weft_lockorder_reports(), r0 + 1);
    assert_int_equal(hook_count(), h0 + 1);
}

static weft_mutex_t a3 = WEFT_MUTEX_INIT, b3 = WEFT_MUTEX_INIT,
                    c3 = WEFT_MUTEX_INIT;

static void
test_three_lock_cycle(void **state)
{
    (void)state;
    uint64_t r0 = weft_lockorder_reports();
    lock2(&a3, &b3);
    lock2(&b3, &c3);
    assert_int_equal(weft_lockorder_reports(), r0);
    lock2(&c3, &a3);
    assert_int_equal(weft_lockorder_reports(), r0 + 1);
    char want[160];
    snprintf(want, sizeof(want),
             "lock-order cycle of 3 locks: %p -> %p -> %p -> %p", (void *)&c3,
             (void *)&a3, (void *)&b3, (void *)&c3);
    assert_non_null(strstr(last, want));
    lock2(&c3, &a3);
    lock2(&b3, &c3);
    lock2(&a3, &b3);
    assert_int_equal(weft_lockorder_reports(), r0 + 1);
}

/* A try_lock records edges too; while off, nothing is recorded. */
static weft_mutex_t a4 = WEFT_MUTEX_INIT, b4 = WEFT_MUTEX_INIT;

static void
test_try_lock_and_disable(void **state)
{
    (void)state;
    uint64_t r0 = weft_lockorder_reports();
    weft_lockorder_enable(false);
    assert_false(weft_lockorder_enabled());
    lock2(&a4, &b4);
    lock2(&b4, &a4); /* not watched */
    assert_int_equal(weft_lockorder_reports(), r0);
    weft_lockorder_enable(true);
    assert_int_equal(weft_mutex_lock(&a4), WEFT_OK);
    assert_int_equal(weft_mutex_try_lock(&b4), WEFT_OK);
    weft_mutex_unlock(&b4);
    weft_mutex_unlock(&a4);
    assert_int_equal(weft_lockorder_reports(), r0);
    lock2(&b4, &a4);
    assert_int_equal(weft_lockorder_reports(), r0 + 1);
}

#define NLOCKS 6
static weft_mutex_t ordered[NLOCKS];

static void *
consistent_main(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    size_t rounds = wt_size(2000, 200000);
    for (size_t r = 0; r < rounds; r++) {
        unsigned set = (unsigned)(wt_rand(&rng) % (1u << NLOCKS));
        for (int i = 0; i < NLOCKS; i++) {
            if (set & (1u << i)) {
                assert_int_equal(weft_mutex_lock(&ordered[i]), WEFT_OK);
            }
        }
        for (int i = NLOCKS - 1; i >= 0; i--) {
            if (set & (1u << i)) {
                weft_mutex_unlock(&ordered[i]);
            }
        }
    }
    return NULL;
}

static void
test_consistent_order_is_silent(void **state)
{
    (void)state;
    for (int i = 0; i < NLOCKS; i++) {
        weft_mutex_init(&ordered[i]);
    }
    uint64_t r0 = weft_lockorder_reports();
    int h0 = hook_count();
    uint64_t seed = wt_seed();
    wt_run_threads(8, consistent_main, (void *)(uintptr_t)(seed | 1), 7919);
    assert_int_equal(weft_lockorder_reports(), r0);
    assert_int_equal(hook_count(), h0);
    for (int i = 0; i < NLOCKS; i++) {
        weft_mutex_fini(&ordered[i]);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ab_ba_reported_once),
        cmocka_unit_test(test_three_lock_cycle),
        cmocka_unit_test(test_try_lock_and_disable),
        cmocka_unit_test(test_consistent_order_is_silent),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
