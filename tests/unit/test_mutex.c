/* SPDX-License-Identifier: MIT */
/* Unit tests for weft_mutex_t: every public function and error return. */
#include "testutil.h"

#include <string.h>

#include "mutex_impl.h"

static uint32_t
state_of(weft_mutex_t *m)
{
    return atomic_load(&weft__mutex(m)->state);
}

/* Wait until a thread is parked (or about to park) on m. */
static void
wait_contended(weft_mutex_t *m)
{
    while (state_of(m) != WEFT__MUTEX_CONTENDED) {
        weft_sleep_for(100 * WEFT_USEC);
    }
}

static void
test_init_lock_unlock(void **state)
{
    (void)state;
    weft_mutex_t m;
    weft_mutex_init(&m);
    assert_false(weft_mutex_is_held(&m));
    assert_int_equal(weft_mutex_lock(&m), WEFT_OK);
    assert_true(weft_mutex_is_held(&m));
    weft_mutex_unlock(&m);
    assert_false(weft_mutex_is_held(&m));
    assert_int_equal(state_of(&m), WEFT__MUTEX_FREE);
    weft_mutex_fini(&m);
}

static void
test_static_and_zero_init(void **state)
{
    (void)state;
    weft_mutex_t a = WEFT_MUTEX_INIT;
    weft_mutex_t b;
    memset(&b, 0, sizeof(b));
    assert_int_equal(weft_mutex_lock(&a), WEFT_OK);
    assert_int_equal(weft_mutex_try_lock(&b), WEFT_OK);
    weft_mutex_unlock(&b);
    weft_mutex_unlock(&a);
    weft_mutex_fini(&a);
    weft_mutex_fini(&b);
}

static void
test_try_lock(void **state)
{
    (void)state;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    assert_int_equal(weft_mutex_try_lock(&m), WEFT_OK);
    /* Held, by the caller itself: EAGAIN, not an assertion. */
    assert_int_equal(weft_mutex_try_lock(&m), WEFT_EAGAIN);
    weft_mutex_unlock(&m);
    assert_int_equal(weft_mutex_try_lock(&m), WEFT_OK);
    weft_mutex_unlock(&m);
}

static void *
try_lock_other(void *arg)
{
    weft_mutex_t *m = arg;
    int rc = weft_mutex_try_lock(m);
    bool held = weft_mutex_is_held(m);
    if (rc == WEFT_OK) {
        weft_mutex_unlock(m);
    }
    return rc == WEFT_EAGAIN && !held ? arg : NULL;
}

static void
test_try_lock_other_thread(void **state)
{
    (void)state;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    assert_int_equal(weft_mutex_lock(&m), WEFT_OK);
    assert_non_null(wt_join(wt_start(try_lock_other, &m)));
    weft_mutex_unlock(&m);
}

static void
test_lock_until_passed_deadline_free(void **state)
{
    (void)state;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    /* A passed deadline still takes a free mutex. */
    assert_int_equal(weft_mutex_lock_until(&m, 0), WEFT_OK);
    assert_true(weft_mutex_is_held(&m));
    weft_mutex_unlock(&m);
    assert_int_equal(weft_mutex_lock_until(&m, WEFT_FOREVER), WEFT_OK);
    weft_mutex_unlock(&m);
}

struct timed {
    weft_mutex_t *m;
    weft_time_t wait_ns;
    int rc;
    weft_time_t elapsed;
};

static void *
lock_until_thread(void *arg)
{
    struct timed *t = arg;
    weft_time_t t0 = weft_now();
    t->rc = weft_mutex_lock_until(t->m, t0 + t->wait_ns);
    t->elapsed = weft_now() - t0;
    if (t->rc == WEFT_OK) {
        weft_mutex_unlock(t->m);
    }
    return NULL;
}

static void
test_lock_until_times_out(void **state)
{
    (void)state;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    assert_int_equal(weft_mutex_lock(&m), WEFT_OK);
    struct timed t = {&m, 20 * WEFT_MSEC, 1, 0};
    wt_join(wt_start(lock_until_thread, &t));
    assert_int_equal(t.rc, WEFT_ETIMEDOUT);
    assert_true(t.elapsed >= 20 * WEFT_MSEC);
    assert_true(weft_mutex_is_held(&m));
    weft_mutex_unlock(&m);
    /* The leaving waiter left no lock behind. */
    assert_int_equal(weft_mutex_try_lock(&m), WEFT_OK);
    weft_mutex_unlock(&m);
    weft_mutex_fini(&m);
}

static void
test_lock_until_succeeds_when_released(void **state)
{
    (void)state;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    assert_int_equal(weft_mutex_lock(&m), WEFT_OK);
    struct timed t = {&m, 10 * WEFT_SEC, 1, 0};
    weft_thread_t *th = wt_start(lock_until_thread, &t);
    wait_contended(&m);
    weft_mutex_unlock(&m);
    wt_join(th);
    assert_int_equal(t.rc, WEFT_OK);
    weft_mutex_fini(&m);
}

struct counter {
    weft_mutex_t m;
    long value;
    long iters;
};

static void *
add_thread(void *arg)
{
    struct counter *c = arg;
    for (long i = 0; i < c->iters; i++) {
        assert_int_equal(weft_mutex_lock(&c->m), WEFT_OK);
        c->value++;
        weft_mutex_unlock(&c->m);
    }
    return NULL;
}

static void
test_blocking_lock_wakes(void **state)
{
    (void)state;
    struct counter c = {WEFT_MUTEX_INIT, 0, 1};
    assert_int_equal(weft_mutex_lock(&c.m), WEFT_OK);
    weft_thread_t *t = wt_start(add_thread, &c);
    wait_contended(&c.m);
    assert_int_equal(c.value, 0);
    weft_mutex_unlock(&c.m);
    wt_join(t);
    assert_int_equal(c.value, 1);
    weft_mutex_fini(&c.m);
}

static void
test_mutual_exclusion(void **state)
{
    (void)state;
    static struct counter c = {WEFT_MUTEX_INIT, 0, 20000};
    weft_thread_t *t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = wt_start(add_thread, &c);
    }
    for (int i = 0; i < 4; i++) {
        wt_join(t[i]);
    }
    assert_int_equal(c.value, 4 * 20000);
    weft_mutex_fini(&c.m);
}

/* A waiter that times out must not take the wake-up meant for another. */
static void
test_timed_out_waiter_passes_wakeup(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        struct counter c = {WEFT_MUTEX_INIT, 0, 1};
        assert_int_equal(weft_mutex_lock(&c.m), WEFT_OK);
        struct timed t = {&c.m, 2 * WEFT_MSEC, 1, 0};
        weft_thread_t *blocked = wt_start(add_thread, &c);
        weft_thread_t *timed = wt_start(lock_until_thread, &t);
        wait_contended(&c.m);
        /* Unlock close to the timed waiter's deadline. */
        weft_sleep_for((round % 4) * WEFT_MSEC);
        weft_mutex_unlock(&c.m);
        wt_join(timed);
        wt_join(blocked); /* hangs (ctest timeout) if its wake-up was lost */
        assert_int_equal(c.value, 1);
        assert_true(t.rc == WEFT_OK || t.rc == WEFT_ETIMEDOUT);
        weft_mutex_fini(&c.m);
    }
}

static void *
is_held_other(void *arg)
{
    return weft_mutex_is_held(arg) ? arg : NULL;
}

static void
test_is_held_other_thread(void **state)
{
    (void)state;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    assert_int_equal(weft_mutex_lock(&m), WEFT_OK);
    assert_null(wt_join(wt_start(is_held_other, &m)));
    weft_mutex_unlock(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_lock_unlock),
        cmocka_unit_test(test_static_and_zero_init),
        cmocka_unit_test(test_try_lock),
        cmocka_unit_test(test_try_lock_other_thread),
        cmocka_unit_test(test_lock_until_passed_deadline_free),
        cmocka_unit_test(test_lock_until_times_out),
        cmocka_unit_test(test_lock_until_succeeds_when_released),
        cmocka_unit_test(test_blocking_lock_wakes),
        cmocka_unit_test(test_mutual_exclusion),
        cmocka_unit_test(test_timed_out_waiter_passes_wakeup),
        cmocka_unit_test(test_is_held_other_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
