/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the blocking side of weft_queue_t: blocked puts, gets,
 * batches and joins wake for the right reason (an item, room, close,
 * task_done), also with spurious wake-ups injected, for every queue kind.
 */
#include "testutil.h"

#include <string.h>

#include "queue_impl.h"

typedef struct kind {
    weft_queue_order_t order;
    size_t cap;
} kind_t;

static const kind_t kinds[] = {
    {WEFT_QUEUE_FIFO, 2},     {WEFT_QUEUE_FIFO, WEFT_QUEUE_UNBOUNDED},
    {WEFT_QUEUE_LIFO, 2},     {WEFT_QUEUE_LIFO, WEFT_QUEUE_UNBOUNDED},
    {WEFT_QUEUE_PRIORITY, 2}, {WEFT_QUEUE_PRIORITY, WEFT_QUEUE_UNBOUNDED},
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static weft_queue_t *
mk(const kind_t *k)
{
    return wt_queue_u64(k->order, k->cap);
}

/* Wait until n threads are inside the wait of w (counted by its
 * eventcount), so the test really exercises a blocked thread. */
static void
wait_blocked(weft__qwait_t *w, uint32_t n)
{
    while (atomic_load(&w->ec.waiters) < n) {
        weft_sleep_for(100 * WEFT_USEC);
    }
}

/* One blocking call made by a helper thread, and what it returned. */
typedef struct call {
    weft_queue_t *q;
    uint64_t item;
    uint64_t items[4];
    size_t n;
    int rc;
} call_t;

static void *
do_get(void *arg)
{
    call_t *c = arg;
    c->rc = weft_queue_get(c->q, &c->item);
    return NULL;
}

static void *
do_put(void *arg)
{
    call_t *c = arg;
    c->rc = weft_queue_put(c->q, &c->item);
    return NULL;
}

static void *
do_get_many(void *arg)
{
    call_t *c = arg;
    c->rc = weft_queue_get_many(c->q, c->items, 4, &c->n, WEFT_FOREVER);
    return NULL;
}

static void *
do_put_many(void *arg)
{
    call_t *c = arg;
    c->rc = weft_queue_put_many(c->q, c->items, 4, &c->n, WEFT_FOREVER);
    return NULL;
}

static void *
do_join(void *arg)
{
    call_t *c = arg;
    c->rc = weft_queue_join(c->q);
    return NULL;
}

static void
fill(weft_queue_t *q)
{
    uint64_t v = 1000;
    while (weft_queue_try_put(q, &v) == WEFT_OK) {
        v++;
    }
}

/* ------------------------------------------------------------------------ */

static void
run_get_wakes_on_put(void)
{
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *q = mk(&kinds[k]);
        call_t c = {.q = q, .rc = 99};
        weft_thread_t *t = wt_start(do_get, &c);
        wait_blocked(&q->not_empty, 1);
        uint64_t v = 42;
        assert_int_equal(weft_queue_put(q, &v), WEFT_OK);
        wt_join(t);
        assert_int_equal(c.rc, WEFT_OK);
        assert_int_equal(c.item, 42);
        weft_queue_destroy(q);
    }
}

static void
test_get_wakes_on_put(void **state)
{
    (void)state;
    run_get_wakes_on_put();
}

static void
run_put_wakes_on_get(void)
{
    for (size_t k = 0; k < N_KINDS; k++) {
        if (kinds[k].cap == WEFT_QUEUE_UNBOUNDED) {
            continue;
        }
        weft_queue_t *q = mk(&kinds[k]);
        fill(q);
        call_t c = {.q = q, .item = 7, .rc = 99};
        weft_thread_t *t = wt_start(do_put, &c);
        wait_blocked(&q->not_full, 1);
        assert_int_equal(c.rc, 99); /* still blocked */
        uint64_t v;
        assert_int_equal(weft_queue_get(q, &v), WEFT_OK);
        wt_join(t);
        assert_int_equal(c.rc, WEFT_OK);
        assert_int_equal(weft_queue_size(q), kinds[k].cap);
        weft_queue_destroy(q);
    }
}

static void
test_put_wakes_on_get(void **state)
{
    (void)state;
    run_put_wakes_on_get();
}

static void
run_close_wakes_all(void)
{
    enum { N = 3 };
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *getq = mk(&kinds[k]);
        weft_queue_t *putq = mk(&kinds[k]);
        bool bounded = kinds[k].cap != WEFT_QUEUE_UNBOUNDED;
        call_t gets[N];
        call_t puts[N];
        weft_thread_t *tg[N];
        weft_thread_t *tp[N];
        if (bounded) {
            fill(putq);
        }
        for (int i = 0; i < N; i++) {
            gets[i] = (call_t){.q = getq, .rc = 99};
            tg[i] = wt_start(do_get, &gets[i]);
            puts[i] = (call_t){.q = putq, .rc = 99};
            tp[i] = bounded ? wt_start(do_put, &puts[i]) : NULL;
        }
        wait_blocked(&getq->not_empty, N);
        if (bounded) {
            wait_blocked(&putq->not_full, N);
        }
        weft_queue_close(getq);
        weft_queue_close(putq);
        for (int i = 0; i < N; i++) {
            wt_join(tg[i]);
            assert_int_equal(gets[i].rc, WEFT_ECLOSED);
            if (bounded) {
                wt_join(tp[i]);
                assert_int_equal(puts[i].rc, WEFT_ECLOSED);
            }
        }
        weft_queue_destroy(getq);
        weft_queue_destroy(putq);
    }
}

static void
test_close_wakes_all(void **state)
{
    (void)state;
    run_close_wakes_all();
}

static void
run_batches_block(void)
{
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *q = mk(&kinds[k]);
        /* get_many waits for the first item, then takes what is there. */
        call_t c = {.q = q, .rc = 99};
        weft_thread_t *t = wt_start(do_get_many, &c);
        wait_blocked(&q->not_empty, 1);
        uint64_t v = 5;
        assert_int_equal(weft_queue_put(q, &v), WEFT_OK);
        wt_join(t);
        assert_int_equal(c.rc, WEFT_OK);
        assert_int_equal(c.n, 1);
        assert_int_equal(c.items[0], 5);
        if (kinds[k].cap != WEFT_QUEUE_UNBOUNDED) {
            /* put_many of 4 into 2 free slots waits for room twice. */
            call_t p = {.q = q, .items = {1, 2, 3, 4}, .rc = 99};
            t = wt_start(do_put_many, &p);
            uint64_t sum = 0;
            for (int i = 0; i < 4; i++) {
                assert_int_equal(weft_queue_get(q, &v), WEFT_OK);
                sum += v;
            }
            wt_join(t);
            assert_int_equal(p.rc, WEFT_OK);
            assert_int_equal(p.n, 4);
            assert_int_equal(sum, 10);
        }
        weft_queue_destroy(q);
    }
}

static void
test_batches_block(void **state)
{
    (void)state;
    run_batches_block();
}

static void
run_join_waits(void)
{
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *q = mk(&kinds[k]);
        uint64_t v = 1;
        assert_int_equal(weft_queue_put(q, &v), WEFT_OK);
        assert_int_equal(weft_queue_put(q, &v), WEFT_OK);
        call_t c = {.q = q, .rc = 99};
        weft_thread_t *t = wt_start(do_join, &c);
        wait_blocked(&q->all_done, 1);
        assert_int_equal(weft_queue_get(q, &v), WEFT_OK);
        assert_int_equal(weft_queue_task_done(q), WEFT_OK);
        weft_sleep_for(2 * WEFT_MSEC);
        assert_int_equal(c.rc, 99); /* one item still unfinished */
        assert_int_equal(weft_queue_get(q, &v), WEFT_OK);
        assert_int_equal(weft_queue_task_done(q), WEFT_OK);
        wt_join(t);
        assert_int_equal(c.rc, WEFT_OK);
        weft_queue_destroy(q);
    }
}

static void
test_join_waits(void **state)
{
    (void)state;
    run_join_waits();
}

/* Every blocking path again, with every third park returning at once. */
static void
test_spurious_wakeups(void **state)
{
    (void)state;
    weft__test_spurious_wakeups(3);
    run_get_wakes_on_put();
    run_put_wakes_on_get();
    run_close_wakes_all();
    run_batches_block();
    run_join_waits();
    weft__test_spurious_wakeups(0);
}

/* ------------------------------------------------------------------------ */
/* White box: the ring's close waits for a put that claimed its slot first */

/* Make the ring look as if a producer had claimed position 0 (its CAS on
 * tail succeeded) but not yet copied its item in. */
static void
claim_slot_zero(weft_queue_t *q)
{
    assert_ptr_equal(q->ops, &weft__ring_ops);
    assert_int_equal(atomic_load(&q->u.ring.tail), 0);
    atomic_store(&q->u.ring.tail, 1);
}

/* What that producer then does: copy the item, publish the cell. */
static void
publish_slot_zero(weft_queue_t *q, uint64_t v)
{
    memcpy(q->cells + sizeof(uint64_t), &v, sizeof(v));
    atomic_store((_Atomic uint64_t *)(void *)q->cells, 1);
}

static void
test_close_waits_for_inflight_put(void **state)
{
    (void)state;
    kind_t ring = {WEFT_QUEUE_FIFO, 4};
    weft_queue_t *q = mk(&ring);
    claim_slot_zero(q);
    weft_queue_close(q);
    uint64_t v = 0;
    /* The claimed item will arrive: not "closed and empty" yet. */
    assert_int_equal(weft_queue_try_get(q, &v), WEFT_EAGAIN);
    assert_int_equal(weft_queue_get_until(q, &v, weft_deadline_in(WEFT_MSEC)),
                     WEFT_ETIMEDOUT);
    assert_int_equal(weft_queue_size(q), 1);
    assert_int_equal(weft_queue_put(q, &v), WEFT_ECLOSED); /* no new claim */
    call_t c = {.q = q, .rc = 99};
    weft_thread_t *t = wt_start(do_get, &c);
    wait_blocked(&q->not_empty, 1);
    assert_int_equal(c.rc, 99);
    publish_slot_zero(q, 77);
    weft_queue_close(q); /* idempotent; its wake-all stands in for the
                          * producer's notify */
    wt_join(t);
    assert_int_equal(c.rc, WEFT_OK);
    assert_int_equal(c.item, 77);
    assert_int_equal(weft_queue_get(q, &v), WEFT_ECLOSED);
    weft_queue_destroy(q);
}

/* ------------------------------------------------------------------------ */

static void
destroy_with_waiter(void *arg)
{
    (void)arg;
    weft_queue_opts_t o = WEFT_QUEUE_OPTS_INIT;
    o.name = "inbox";
    weft_queue_t *q = NULL;
    if (weft_queue_create(&o, &q) != WEFT_OK) {
        return;
    }
    call_t c = {.q = q, .rc = 99};
    weft_thread_t *t = NULL;
    if (weft_thread_create(NULL, do_get, &c, &t) != WEFT_OK) {
        return;
    }
    wait_blocked(&q->not_empty, 1);
    weft_queue_destroy(q); /* must abort */
}

static void
test_destroy_with_waiter_dies(void **state)
{
    (void)state;
    assert_true(wt_dies_with(destroy_with_waiter, NULL,
                             "threads still wait on queue 'inbox'"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_wakes_on_put),
        cmocka_unit_test(test_put_wakes_on_get),
        cmocka_unit_test(test_close_wakes_all),
        cmocka_unit_test(test_batches_block),
        cmocka_unit_test(test_join_waits),
        cmocka_unit_test(test_spurious_wakeups),
        cmocka_unit_test(test_close_waits_for_inflight_put),
        cmocka_unit_test(test_destroy_with_waiter_dies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
