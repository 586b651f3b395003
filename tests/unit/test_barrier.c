/* SPDX-License-Identifier: MIT */
/* Unit tests for weft_barrier_t: every public function and error return. */
#include "testutil.h"

#include <stdatomic.h>

static void
wait_n_waiting(weft_barrier_t *b, unsigned n)
{
    while (weft_barrier_n_waiting(b) != n) {
        weft_sleep_for(100 * WEFT_USEC);
    }
}

static void
count_action(void *arg)
{
    (*(int *)arg)++;
}

static void
test_init_errors(void **state)
{
    (void)state;
    weft_barrier_t b;
    assert_int_equal(weft_barrier_init(&b, 0, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_barrier_init(&b, (1u << 30) + 1, NULL, NULL),
                     WEFT_EINVAL);
    assert_int_equal(weft_barrier_init(&b, 1u << 30, NULL, NULL), WEFT_OK);
    weft_barrier_fini(&b);
}

static void
test_one_party(void **state)
{
    (void)state;
    weft_barrier_t b;
    int actions = 0;
    assert_int_equal(weft_barrier_init(&b, 1, count_action, &actions), WEFT_OK);
    for (int i = 0; i < 3; i++) {
        unsigned index = 99;
        assert_int_equal(weft_barrier_wait(&b, &index), WEFT_BARRIER_SERIAL);
        assert_int_equal(index, 0);
        /* A passed deadline does not matter to the last arriver. */
        assert_int_equal(weft_barrier_wait_until(&b, NULL, 0),
                         WEFT_BARRIER_SERIAL);
    }
    assert_int_equal(actions, 6);
    assert_false(weft_barrier_is_broken(&b));
    assert_int_equal(weft_barrier_n_waiting(&b), 0);
    weft_barrier_fini(&b);
}

#define PARTIES 3
#define ROUNDS 50

struct party {
    weft_barrier_t *b;
    int *actions;
    int rc[ROUNDS];
    unsigned index[ROUNDS];
    int actions_seen[ROUNDS];
};

static void *
party_thread(void *arg)
{
    struct party *p = arg;
    for (int r = 0; r < ROUNDS; r++) {
        p->rc[r] = weft_barrier_wait(p->b, &p->index[r]);
        p->actions_seen[r] = *p->actions;
    }
    return NULL;
}

static void
test_rounds(void **state)
{
    (void)state;
    weft_barrier_t b;
    int actions = 0;
    assert_int_equal(weft_barrier_init(&b, PARTIES, count_action, &actions),
                     WEFT_OK);
    static struct party p[PARTIES];
    weft_thread_t *t[PARTIES];
    for (int i = 0; i < PARTIES; i++) {
        p[i].b = &b;
        p[i].actions = &actions;
        t[i] = wt_start(party_thread, &p[i]);
    }
    for (int i = 0; i < PARTIES; i++) {
        wt_join(t[i]);
    }
    assert_int_equal(actions, ROUNDS);
    for (int r = 0; r < ROUNDS; r++) {
        unsigned seen = 0;
        int serial = 0;
        for (int i = 0; i < PARTIES; i++) {
            assert_true(p[i].rc[r] == WEFT_OK ||
                        p[i].rc[r] == WEFT_BARRIER_SERIAL);
            assert_true(p[i].index[r] < PARTIES);
            seen |= 1u << p[i].index[r];
            if (p[i].rc[r] == WEFT_BARRIER_SERIAL) {
                serial++;
                assert_int_equal(p[i].index[r], PARTIES - 1);
            }
            /* The action of round r ran before anyone left round r. */
            assert_int_equal(p[i].actions_seen[r], r + 1);
        }
        assert_int_equal(seen, (1u << PARTIES) - 1);
        assert_int_equal(serial, 1);
    }
    weft_barrier_fini(&b);
}

struct waiter {
    weft_barrier_t *b;
    weft_time_t wait_ns; /* 0: forever */
    int rc;
    unsigned index;
};

static void *
waiter_thread(void *arg)
{
    struct waiter *w = arg;
    w->rc = w->wait_ns == 0
                ? weft_barrier_wait(w->b, &w->index)
                : weft_barrier_wait_until(w->b, &w->index,
                                          weft_deadline_in(w->wait_ns));
    return NULL;
}

static void
test_timeout_breaks_for_all(void **state)
{
    (void)state;
    weft_barrier_t b;
    assert_int_equal(weft_barrier_init(&b, 3, NULL, NULL), WEFT_OK);
    struct waiter forever = {&b, 0, 1, 77};
    weft_thread_t *t = wt_start(waiter_thread, &forever);
    wait_n_waiting(&b, 1);
    unsigned index = 77;
    weft_time_t t0 = weft_now();
    assert_int_equal(weft_barrier_wait_until(&b, &index, t0 + 20 * WEFT_MSEC),
                     WEFT_ETIMEDOUT);
    assert_true(weft_now() - t0 >= 20 * WEFT_MSEC);
    assert_int_equal(index, 77); /* untouched on failure */
    wt_join(t);
    assert_int_equal(forever.rc, WEFT_EBROKEN);
    assert_int_equal(forever.index, 77);
    assert_true(weft_barrier_is_broken(&b));
    assert_int_equal(weft_barrier_n_waiting(&b), 0);
    /* Broken until reset: arrivals fail at once. */
    assert_int_equal(weft_barrier_wait(&b, NULL), WEFT_EBROKEN);
    assert_int_equal(weft_barrier_wait_until(&b, NULL, WEFT_FOREVER),
                     WEFT_EBROKEN);
    weft_barrier_reset(&b);
    assert_false(weft_barrier_is_broken(&b));
    weft_barrier_fini(&b);
}

static void
test_abort_and_reset(void **state)
{
    (void)state;
    weft_barrier_t b;
    assert_int_equal(weft_barrier_init(&b, 3, NULL, NULL), WEFT_OK);
    struct waiter w[2] = {{&b, 0, 1, 0}, {&b, 60 * WEFT_SEC, 1, 0}};
    weft_thread_t *t[2] = {wt_start(waiter_thread, &w[0]),
                           wt_start(waiter_thread, &w[1])};
    wait_n_waiting(&b, 2);
    weft_barrier_abort(&b);
    wt_join(t[0]);
    wt_join(t[1]);
    assert_int_equal(w[0].rc, WEFT_EBROKEN);
    assert_int_equal(w[1].rc, WEFT_EBROKEN);
    assert_true(weft_barrier_is_broken(&b));
    assert_int_equal(weft_barrier_wait(&b, NULL), WEFT_EBROKEN);
    weft_barrier_reset(&b);
    assert_false(weft_barrier_is_broken(&b));

    /* Usable again for a full round. */
    struct waiter w2[2] = {{&b, 0, 1, 9}, {&b, 0, 1, 9}};
    t[0] = wt_start(waiter_thread, &w2[0]);
    t[1] = wt_start(waiter_thread, &w2[1]);
    wait_n_waiting(&b, 2);
    unsigned index = 9;
    assert_int_equal(weft_barrier_wait(&b, &index), WEFT_BARRIER_SERIAL);
    assert_int_equal(index, 2);
    wt_join(t[0]);
    wt_join(t[1]);
    assert_int_equal(w2[0].rc, WEFT_OK);
    assert_int_equal(w2[1].rc, WEFT_OK);
    assert_int_equal(w2[0].index + w2[1].index, 1);
    weft_barrier_fini(&b);
}

static void
test_reset_with_waiters(void **state)
{
    (void)state;
    weft_barrier_t b;
    assert_int_equal(weft_barrier_init(&b, 2, NULL, NULL), WEFT_OK);
    struct waiter w = {&b, 0, 1, 0};
    weft_thread_t *t = wt_start(waiter_thread, &w);
    wait_n_waiting(&b, 1);
    weft_barrier_reset(&b);
    wt_join(t);
    /* The reset round's waiter fails; the barrier is not left broken. */
    assert_int_equal(w.rc, WEFT_EBROKEN);
    assert_false(weft_barrier_is_broken(&b));
    assert_int_equal(weft_barrier_n_waiting(&b), 0);
    w = (struct waiter){&b, 0, 1, 0};
    t = wt_start(waiter_thread, &w);
    unsigned index = 5;
    int rc = weft_barrier_wait(&b, &index);
    wt_join(t);
    assert_true(rc == WEFT_OK || rc == WEFT_BARRIER_SERIAL);
    assert_true((rc == WEFT_BARRIER_SERIAL) != (w.rc == WEFT_BARRIER_SERIAL));
    assert_true(w.rc == WEFT_OK || w.rc == WEFT_BARRIER_SERIAL);
    assert_int_equal(index + w.index, 1);
    /* Reset of an idle barrier: a no-op. */
    weft_barrier_reset(&b);
    assert_false(weft_barrier_is_broken(&b));
    weft_barrier_fini(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_errors),
        cmocka_unit_test(test_one_party),
        cmocka_unit_test(test_rounds),
        cmocka_unit_test(test_timeout_breaks_for_all),
        cmocka_unit_test(test_abort_and_reset),
        cmocka_unit_test(test_reset_with_waiters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
