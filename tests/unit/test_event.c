/* SPDX-License-Identifier: MIT */
/* Unit tests for weft_event_t: every public function and error return. */
#include "testutil.h"

#include <stdatomic.h>
#include <string.h>

static void
test_set_clear_is_set(void **state)
{
    (void)state;
    weft_event_t e;
    weft_event_init(&e);
    assert_false(weft_event_is_set(&e));
    weft_event_set(&e);
    assert_true(weft_event_is_set(&e));
    weft_event_set(&e); /* idempotent */
    assert_true(weft_event_is_set(&e));
    assert_int_equal(weft_event_wait(&e), WEFT_OK);
    assert_int_equal(weft_event_wait_until(&e, 0), WEFT_OK);
    weft_event_clear(&e);
    assert_false(weft_event_is_set(&e));
    weft_event_clear(&e);
    assert_false(weft_event_is_set(&e));
    weft_event_fini(&e);
}

static void
test_static_and_zero_init(void **state)
{
    (void)state;
    weft_event_t a = WEFT_EVENT_INIT;
    weft_event_t b;
    memset(&b, 0, sizeof(b));
    assert_false(weft_event_is_set(&a));
    assert_false(weft_event_is_set(&b));
    assert_int_equal(weft_event_wait_until(&a, 0), WEFT_ETIMEDOUT);
    weft_event_set(&b);
    assert_int_equal(weft_event_wait(&b), WEFT_OK);
    weft_event_fini(&a);
    weft_event_fini(&b);
}

static void
test_wait_until_times_out(void **state)
{
    (void)state;
    weft_event_t e = WEFT_EVENT_INIT;
    weft_time_t t0 = weft_now();
    assert_int_equal(weft_event_wait_until(&e, t0 + 20 * WEFT_MSEC),
                     WEFT_ETIMEDOUT);
    assert_true(weft_now() - t0 >= 20 * WEFT_MSEC);
    /* A passed deadline fails at once on a clear event. */
    assert_int_equal(weft_event_wait_until(&e, 0), WEFT_ETIMEDOUT);
    weft_event_fini(&e);
}

struct waiter {
    weft_event_t *e;
    weft_time_t deadline;
    int rc;
    int payload_seen;
    _Atomic int done;
};

static int payload;

static void *
waiter_thread(void *arg)
{
    struct waiter *w = arg;
    w->rc = weft_event_wait_until(w->e, w->deadline);
    /* What the setter wrote before set is visible (TSan checks it). */
    w->payload_seen = w->rc == WEFT_OK ? payload : -1;
    atomic_store(&w->done, 1);
    return NULL;
}

static void
test_set_wakes_every_waiter(void **state)
{
    (void)state;
    weft_event_t e = WEFT_EVENT_INIT;
    struct waiter w[4];
    weft_thread_t *t[4];
    for (int i = 0; i < 4; i++) {
        /* Two wait forever, two with a far deadline. */
        weft_time_t dl = i % 2 ? WEFT_FOREVER : weft_deadline_in(WEFT_SEC * 60);
        w[i] = (struct waiter){&e, dl, 1, 0, 0};
        t[i] = wt_start(waiter_thread, &w[i]);
    }
    weft_sleep_for(5 * WEFT_MSEC);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(atomic_load(&w[i].done), 0);
    }
    payload = 42;
    weft_event_set(&e);
    for (int i = 0; i < 4; i++) {
        wt_join(t[i]);
        assert_int_equal(w[i].rc, WEFT_OK);
        assert_int_equal(w[i].payload_seen, 42);
    }
    weft_event_fini(&e);
}

static void
test_waiters_block_again_after_clear(void **state)
{
    (void)state;
    weft_event_t e = WEFT_EVENT_INIT;
    weft_event_set(&e);
    weft_event_clear(&e);
    struct waiter w = {&e, WEFT_FOREVER, 1, 0, 0};
    weft_thread_t *t = wt_start(waiter_thread, &w);
    weft_sleep_for(5 * WEFT_MSEC);
    assert_int_equal(atomic_load(&w.done), 0);
    weft_event_set(&e);
    wt_join(t);
    assert_int_equal(w.rc, WEFT_OK);
    /* A timed-out waiter leaves nothing that breaks later waits. */
    weft_event_clear(&e);
    assert_int_equal(weft_event_wait_until(&e, weft_deadline_in(WEFT_MSEC)),
                     WEFT_ETIMEDOUT);
    w = (struct waiter){&e, WEFT_FOREVER, 1, 0, 0};
    t = wt_start(waiter_thread, &w);
    weft_sleep_for(2 * WEFT_MSEC);
    weft_event_set(&e);
    wt_join(t);
    assert_int_equal(w.rc, WEFT_OK);
    weft_event_fini(&e);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_clear_is_set),
        cmocka_unit_test(test_static_and_zero_init),
        cmocka_unit_test(test_wait_until_times_out),
        cmocka_unit_test(test_set_wakes_every_waiter),
        cmocka_unit_test(test_waiters_block_again_after_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
