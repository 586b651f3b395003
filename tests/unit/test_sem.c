/* SPDX-License-Identifier: MIT */
/* Unit tests for weft_sem_t: every public function and error return. */
#include "testutil.h"

#include <stdatomic.h>

static void
test_init_try_acquire_release(void **state)
{
    (void)state;
    weft_sem_t s;
    assert_int_equal(weft_sem_init(&s, 2), WEFT_OK);
    assert_int_equal(weft_sem_value(&s), 2);
    assert_int_equal(weft_sem_try_acquire(&s), WEFT_OK);
    assert_int_equal(weft_sem_acquire(&s), WEFT_OK);
    assert_int_equal(weft_sem_value(&s), 0);
    assert_int_equal(weft_sem_try_acquire(&s), WEFT_EAGAIN);
    assert_int_equal(weft_sem_release(&s, 3), WEFT_OK);
    assert_int_equal(weft_sem_value(&s), 3);
    /* A passed deadline still takes a free permit. */
    assert_int_equal(weft_sem_acquire_until(&s, 0), WEFT_OK);
    assert_int_equal(weft_sem_value(&s), 2);
    weft_sem_fini(&s);
}

static void
test_init_errors(void **state)
{
    (void)state;
    weft_sem_t s;
    assert_int_equal(weft_sem_init(&s, WEFT_SEM_VALUE_MAX + 1u), WEFT_EINVAL);
    assert_int_equal(weft_sem_init(&s, WEFT_SEM_VALUE_MAX), WEFT_OK);
    weft_sem_fini(&s);
    assert_int_equal(weft_sem_init_bounded(&s, 0, 0), WEFT_EINVAL);
    assert_int_equal(weft_sem_init_bounded(&s, 3, 2), WEFT_EINVAL);
    assert_int_equal(weft_sem_init_bounded(&s, 1, WEFT_SEM_VALUE_MAX + 1u),
                     WEFT_EINVAL);
    assert_int_equal(weft_sem_init_bounded(&s, 0, WEFT_SEM_VALUE_MAX), WEFT_OK);
    weft_sem_fini(&s);
}

static void
test_release_errors(void **state)
{
    (void)state;
    weft_sem_t s;
    assert_int_equal(weft_sem_init(&s, 1), WEFT_OK);
    assert_int_equal(weft_sem_release(&s, 0), WEFT_EINVAL);
    assert_int_equal(weft_sem_value(&s), 1);
    assert_int_equal(weft_sem_release(&s, WEFT_SEM_VALUE_MAX), WEFT_EOVERFLOW);
    assert_int_equal(weft_sem_value(&s), 1);
    assert_int_equal(weft_sem_release(&s, WEFT_SEM_VALUE_MAX - 1), WEFT_OK);
    assert_int_equal(weft_sem_value(&s), WEFT_SEM_VALUE_MAX);
    assert_int_equal(weft_sem_release(&s, 1), WEFT_EOVERFLOW);
    assert_int_equal(weft_sem_release(&s, 0xffffffffu), WEFT_EOVERFLOW);
    assert_int_equal(weft_sem_value(&s), WEFT_SEM_VALUE_MAX);
    weft_sem_fini(&s);
}

static void
test_bounded(void **state)
{
    (void)state;
    weft_sem_t s;
    /* Python's BoundedSemaphore(2). */
    assert_int_equal(weft_sem_init_bounded(&s, 2, 2), WEFT_OK);
    assert_int_equal(weft_sem_release(&s, 1), WEFT_ERANGE);
    assert_int_equal(weft_sem_value(&s), 2);
    assert_int_equal(weft_sem_acquire(&s), WEFT_OK);
    assert_int_equal(weft_sem_acquire(&s), WEFT_OK);
    /* Would pass the bound by one: nothing is released. */
    assert_int_equal(weft_sem_release(&s, 3), WEFT_ERANGE);
    assert_int_equal(weft_sem_value(&s), 0);
    assert_int_equal(weft_sem_release(&s, 2), WEFT_OK);
    assert_int_equal(weft_sem_value(&s), 2);
    assert_int_equal(weft_sem_release(&s, 0), WEFT_EINVAL);
    weft_sem_fini(&s);
}

struct waiter {
    weft_sem_t *s;
    weft_time_t wait_ns; /* 0: forever */
    int rc;
    weft_time_t elapsed;
    _Atomic int done;
};

static void *
waiter_thread(void *arg)
{
    struct waiter *w = arg;
    weft_time_t t0 = weft_now();
    w->rc = w->wait_ns == 0 ? weft_sem_acquire(w->s)
                            : weft_sem_acquire_until(w->s, t0 + w->wait_ns);
    w->elapsed = weft_now() - t0;
    atomic_store(&w->done, 1);
    return NULL;
}

static void
test_acquire_until_times_out(void **state)
{
    (void)state;
    weft_sem_t s;
    assert_int_equal(weft_sem_init(&s, 0), WEFT_OK);
    struct waiter w = {&s, 20 * WEFT_MSEC, 1, 0, 0};
    wt_join(wt_start(waiter_thread, &w));
    assert_int_equal(w.rc, WEFT_ETIMEDOUT);
    assert_true(w.elapsed >= 20 * WEFT_MSEC);
    assert_int_equal(weft_sem_value(&s), 0);
    weft_sem_fini(&s); /* asserts no sleeper is left registered */
}

static void
test_acquire_blocks_until_release(void **state)
{
    (void)state;
    weft_sem_t s;
    assert_int_equal(weft_sem_init(&s, 0), WEFT_OK);
    struct waiter w = {&s, 0, 1, 0, 0};
    weft_thread_t *t = wt_start(waiter_thread, &w);
    weft_sleep_for(5 * WEFT_MSEC);
    assert_int_equal(atomic_load(&w.done), 0);
    assert_int_equal(weft_sem_release(&s, 1), WEFT_OK);
    wt_join(t);
    assert_int_equal(w.rc, WEFT_OK);
    assert_int_equal(weft_sem_value(&s), 0);
    weft_sem_fini(&s);
}

static int
count_done(struct waiter *w, int n)
{
    int done = 0;
    for (int i = 0; i < n; i++) {
        done += atomic_load(&w[i].done);
    }
    return done;
}

static void
test_release_n_wakes_n(void **state)
{
    (void)state;
    weft_sem_t s;
    assert_int_equal(weft_sem_init(&s, 0), WEFT_OK);
    struct waiter w[3];
    weft_thread_t *t[3];
    for (int i = 0; i < 3; i++) {
        w[i] = (struct waiter){&s, 0, 1, 0, 0};
        t[i] = wt_start(waiter_thread, &w[i]);
    }
    weft_sleep_for(5 * WEFT_MSEC);
    assert_int_equal(weft_sem_release(&s, 2), WEFT_OK);
    while (count_done(w, 3) < 2) {
        weft_sleep_for(WEFT_MSEC);
    }
    weft_sleep_for(5 * WEFT_MSEC);
    assert_int_equal(count_done(w, 3), 2);
    assert_int_equal(weft_sem_value(&s), 0);
    assert_int_equal(weft_sem_release(&s, 1), WEFT_OK);
    for (int i = 0; i < 3; i++) {
        wt_join(t[i]);
        assert_int_equal(w[i].rc, WEFT_OK);
    }
    weft_sem_fini(&s);
}

/* A waiter that times out must not swallow the wake-up of a permit. */
static void
test_timed_out_waiter_passes_wakeup(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        weft_sem_t s;
        assert_int_equal(weft_sem_init(&s, 0), WEFT_OK);
        struct waiter timed = {&s, 2 * WEFT_MSEC, 1, 0, 0};
        struct waiter forever = {&s, 0, 1, 0, 0};
        weft_thread_t *tt = wt_start(waiter_thread, &timed);
        weft_thread_t *tf = wt_start(waiter_thread, &forever);
        weft_sleep_for((round % 4) * WEFT_MSEC);
        assert_int_equal(weft_sem_release(&s, 1), WEFT_OK);
        wt_join(tt);
        if (timed.rc == WEFT_OK) {
            assert_int_equal(weft_sem_release(&s, 1), WEFT_OK);
        } else {
            assert_int_equal(timed.rc, WEFT_ETIMEDOUT);
        }
        wt_join(tf); /* hangs (ctest timeout) if the wake-up was lost */
        assert_int_equal(forever.rc, WEFT_OK);
        assert_int_equal(weft_sem_value(&s), 0);
        weft_sem_fini(&s);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_try_acquire_release),
        cmocka_unit_test(test_init_errors),
        cmocka_unit_test(test_release_errors),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_acquire_until_times_out),
        cmocka_unit_test(test_acquire_blocks_until_release),
        cmocka_unit_test(test_release_n_wakes_n),
        cmocka_unit_test(test_timed_out_waiter_passes_wakeup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
