/* SPDX-License-Identifier: MIT */
/* Unit tests for weft_cond_t: every public function and error return. */
#include "testutil.h"

#include <stdatomic.h>
#include <string.h>

/* Shared state of one test: tokens guarded by m. */
struct box {
    weft_mutex_t m;
    weft_cond_t c;
    int tokens;
    _Atomic int done;
};

static bool
has_token(void *arg)
{
    struct box *b = arg;
    assert_true(weft_mutex_is_held(&b->m));
    return b->tokens > 0;
}

static void
give(struct box *b, int n, bool broadcast)
{
    assert_int_equal(weft_mutex_lock(&b->m), WEFT_OK);
    b->tokens += n;
    if (broadcast) {
        weft_cond_broadcast(&b->c);
    } else {
        for (int i = 0; i < n; i++) {
            weft_cond_signal(&b->c);
        }
    }
    weft_mutex_unlock(&b->m);
}

static void
test_init_fini_and_lone_signals(void **state)
{
    (void)state;
    weft_cond_t a;
    weft_cond_t b = WEFT_COND_INIT;
    weft_cond_t z;
    memset(&z, 0, sizeof(z));
    weft_cond_init(&a);
    /* No waiter: no effect, no block. */
    weft_cond_signal(&a);
    weft_cond_broadcast(&b);
    weft_cond_signal(&z);
    weft_cond_fini(&a);
    weft_cond_fini(&b);
    weft_cond_fini(&z);
}

static void
test_wait_until_times_out_holding_mutex(void **state)
{
    (void)state;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    weft_cond_t c = WEFT_COND_INIT;
    assert_int_equal(weft_mutex_lock(&m), WEFT_OK);
    weft_time_t t0 = weft_now();
    int rc;
    do { /* a spurious WEFT_OK is allowed */
        rc = weft_cond_wait_until(&c, &m, t0 + 20 * WEFT_MSEC);
        assert_true(weft_mutex_is_held(&m));
    } while (rc == WEFT_OK);
    assert_int_equal(rc, WEFT_ETIMEDOUT);
    assert_true(weft_now() - t0 >= 20 * WEFT_MSEC);
    /* A passed deadline: no sleep, mutex still held. */
    rc = weft_cond_wait_until(&c, &m, 0);
    assert_true(rc == WEFT_ETIMEDOUT || rc == WEFT_OK);
    assert_true(weft_mutex_is_held(&m));
    weft_mutex_unlock(&m);
    weft_cond_fini(&c);
    weft_mutex_fini(&m);
}

static void *
consume_wait(void *arg)
{
    struct box *b = arg;
    assert_int_equal(weft_mutex_lock(&b->m), WEFT_OK);
    while (b->tokens == 0) {
        assert_int_equal(weft_cond_wait(&b->c, &b->m), WEFT_OK);
        assert_true(weft_mutex_is_held(&b->m));
    }
    b->tokens--;
    weft_mutex_unlock(&b->m);
    atomic_fetch_add(&b->done, 1);
    return NULL;
}

static void *
consume_wait_for(void *arg)
{
    struct box *b = arg;
    assert_int_equal(weft_mutex_lock(&b->m), WEFT_OK);
    assert_int_equal(
        weft_cond_wait_for(&b->c, &b->m, has_token, b, WEFT_FOREVER), WEFT_OK);
    b->tokens--;
    weft_mutex_unlock(&b->m);
    atomic_fetch_add(&b->done, 1);
    return NULL;
}

static void
test_signal_wakes_a_waiter(void **state)
{
    (void)state;
    static struct box b = {WEFT_MUTEX_INIT, WEFT_COND_INIT, 0, 0};
    weft_thread_t *t[3];
    t[0] = wt_start(consume_wait, &b);
    t[1] = wt_start(consume_wait_for, &b);
    t[2] = wt_start(consume_wait_for, &b);
    weft_sleep_for(5 * WEFT_MSEC);
    assert_int_equal(atomic_load(&b.done), 0);
    for (int i = 0; i < 3; i++) {
        give(&b, 1, false);
    }
    for (int i = 0; i < 3; i++) {
        wt_join(t[i]);
    }
    assert_int_equal(b.tokens, 0);
    weft_cond_fini(&b.c);
}

static void
test_broadcast_wakes_all(void **state)
{
    (void)state;
    static struct box b = {WEFT_MUTEX_INIT, WEFT_COND_INIT, 0, 0};
    weft_thread_t *t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = wt_start(consume_wait_for, &b);
    }
    weft_sleep_for(5 * WEFT_MSEC);
    give(&b, 4, true);
    for (int i = 0; i < 4; i++) {
        wt_join(t[i]);
    }
    assert_int_equal(b.tokens, 0);
    assert_int_equal(atomic_load(&b.done), 4);
    weft_cond_fini(&b.c);
}

static void
test_wait_for_results(void **state)
{
    (void)state;
    struct box b = {WEFT_MUTEX_INIT, WEFT_COND_INIT, 1, 0};
    assert_int_equal(weft_mutex_lock(&b.m), WEFT_OK);
    /* True at once: WEFT_OK even with a passed deadline. */
    assert_int_equal(weft_cond_wait_for(&b.c, &b.m, has_token, &b, 0), WEFT_OK);
    b.tokens = 0;
    weft_time_t t0 = weft_now();
    assert_int_equal(
        weft_cond_wait_for(&b.c, &b.m, has_token, &b, t0 + 10 * WEFT_MSEC),
        WEFT_ETIMEDOUT);
    assert_true(weft_now() - t0 >= 10 * WEFT_MSEC);
    assert_true(weft_mutex_is_held(&b.m));
    assert_int_equal(weft_cond_wait_for(&b.c, &b.m, has_token, &b, 0),
                     WEFT_ETIMEDOUT);
    weft_mutex_unlock(&b.m);
    weft_cond_fini(&b.c);
}

struct timed {
    struct box *b;
    weft_time_t wait_ns;
    int rc;
};

static void *
consume_timed(void *arg)
{
    struct timed *t = arg;
    assert_int_equal(weft_mutex_lock(&t->b->m), WEFT_OK);
    t->rc = weft_cond_wait_for(&t->b->c, &t->b->m, has_token, t->b,
                               weft_deadline_in(t->wait_ns));
    if (t->rc == WEFT_OK) {
        t->b->tokens--;
    }
    weft_mutex_unlock(&t->b->m);
    return NULL;
}

/* A waiter that times out must not swallow a signal meant for another. */
static void
test_timed_out_waiter_passes_signal(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        struct box b = {WEFT_MUTEX_INIT, WEFT_COND_INIT, 0, 0};
        struct timed tw = {&b, 2 * WEFT_MSEC, 1};
        weft_thread_t *tt = wt_start(consume_timed, &tw);
        weft_thread_t *tf = wt_start(consume_wait, &b);
        weft_sleep_for((round % 4) * WEFT_MSEC);
        give(&b, 1, false);
        wt_join(tt);
        if (tw.rc == WEFT_OK) {
            give(&b, 1, false);
        } else {
            assert_int_equal(tw.rc, WEFT_ETIMEDOUT);
        }
        wt_join(tf); /* hangs (ctest timeout) if the signal was lost */
        assert_int_equal(b.tokens, 0);
        weft_cond_fini(&b.c);
        weft_mutex_fini(&b.m);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_fini_and_lone_signals),
        cmocka_unit_test(test_wait_until_times_out_holding_mutex),
        cmocka_unit_test(test_signal_wakes_a_waiter),
        cmocka_unit_test(test_broadcast_wakes_all),
        cmocka_unit_test(test_wait_for_results),
        cmocka_unit_test(test_timed_out_waiter_passes_signal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
