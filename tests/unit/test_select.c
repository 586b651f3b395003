/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of weft_select / weft_try_select: the case chosen, the item
 * moved and nothing else, closed-queue and all-disabled semantics, argument
 * errors, deadlines, wake-ups of a blocked select by put, get and close for
 * every queue kind, cancellation of a task blocked in select, mixed get and
 * put cases, and the spread of choices among ready cases.
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <weft/debug.h>
#include <weft/executor.h>
#include <weft/pool.h>

#include "queue_impl.h"

#define FAR (30 * WEFT_SEC)
/* A woken select must return within this (generous for TSan on a loaded
 * machine; the usual figure is microseconds). */
#define PROMPT (2 * WEFT_SEC)
#define NOT_SET ((size_t)777)

typedef struct kind {
    weft_queue_order_t order;
    size_t cap;
} kind_t;

/* The ring (bounded FIFO) and the mutex-based kinds. */
static const kind_t kinds[] = {
    {WEFT_QUEUE_FIFO, 2},
    {WEFT_QUEUE_FIFO, WEFT_QUEUE_UNBOUNDED},
    {WEFT_QUEUE_LIFO, 2},
    {WEFT_QUEUE_PRIORITY, 2},
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static weft_queue_t *
mk(const kind_t *k)
{
    return wt_queue_u64(k->order, k->cap);
}

static weft_queue_t *
mk_fifo(size_t cap)
{
    kind_t k = {WEFT_QUEUE_FIFO, cap};
    return mk(&k);
}

static uint32_t
watchers(const weft__qwait_t *w)
{
    return WEFT__QWAIT_WATCHERS(
        atomic_load_explicit(&w->ec.waiters, memory_order_seq_cst));
}

/* Wait (boundedly) until n selectors watch w: the select is blocked. */
static void
await_watchers(const weft__qwait_t *w, uint32_t n)
{
    weft_time_t dl = weft_deadline_in(FAR);
    while (watchers(w) != n && weft_now() < dl) {
        assert_int_equal(weft_sleep_for(WEFT_MSEC), WEFT_OK);
    }
    assert_int_equal(watchers(w), n);
}

/* Join t, which a wake-up sent at `since` should have ended at once. A lost
 * wake-up would end it only at its far deadline, whose last try then finds
 * what it waited for: hence the time check. */
static void
join_prompt(weft_thread_t *t, weft_time_t since)
{
    wt_join(t);
    weft_time_t took = weft_now() - since;
    if (took > PROMPT) {
        fail_msg("woken after %lld ms (lost wake-up?)",
                 (long long)(took / WEFT_MSEC));
    }
}

/* ------------------------------------------------------------------------ */
/* Ready cases                                                               */

static void
test_get_from_the_ready_queue(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *q[3] = {mk(&kinds[k]), mk(&kinds[(k + 1) % N_KINDS]),
                              mk(&kinds[(k + 2) % N_KINDS])};
        for (size_t ready = 0; ready < 3; ready++) {
            wt_put_u64(q[ready], 100 + ready);
            uint64_t out[3] = {0, 0, 0};
            weft_select_case_t c[3];
            for (size_t i = 0; i < 3; i++) {
                c[i] = (weft_select_case_t){q[i], WEFT_SELECT_GET, &out[i]};
            }
            size_t idx = NOT_SET;
            assert_int_equal(weft_select(c, 3, WEFT_FOREVER, &idx), WEFT_OK);
            assert_int_equal(idx, ready);
            for (size_t i = 0; i < 3; i++) {
                assert_int_equal(out[i], i == ready ? 100 + ready : 0);
                assert_int_equal(weft_queue_size(q[i]), 0);
            }
            /* The try form too. */
            wt_put_u64(q[ready], 200 + ready);
            out[ready] = 0;
            idx = NOT_SET;
            assert_int_equal(weft_try_select(c, 3, &idx), WEFT_OK);
            assert_int_equal(idx, ready);
            assert_int_equal(out[ready], 200 + ready);
        }
        for (size_t i = 0; i < 3; i++) {
            weft_queue_destroy(q[i]);
        }
    }
}

static void
test_put_where_there_is_room(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        if (kinds[k].cap == WEFT_QUEUE_UNBOUNDED) {
            continue;
        }
        weft_queue_t *q[3] = {mk(&kinds[k]), mk(&kinds[k]), mk(&kinds[k])};
        for (size_t i = 0; i < 3; i++) { /* fill all: cap 2 */
            wt_put_u64(q[i], 1);
            wt_put_u64(q[i], 2);
        }
        for (size_t room = 0; room < 3; room++) {
            uint64_t taken = wt_get_u64(q[room]);
            uint64_t in[3] = {10, 11, 12};
            weft_select_case_t c[3];
            for (size_t i = 0; i < 3; i++) {
                c[i] = (weft_select_case_t){q[i], WEFT_SELECT_PUT, &in[i]};
            }
            size_t idx = NOT_SET;
            assert_int_equal(weft_select(c, 3, WEFT_FOREVER, &idx), WEFT_OK);
            assert_int_equal(idx, room);
            /* Exactly one item went in: every queue is full again. */
            for (size_t i = 0; i < 3; i++) {
                assert_int_equal(weft_queue_size(q[i]), 2);
            }
            assert_int_equal(weft_try_select(c, 3, &idx), WEFT_EAGAIN);
            /* The new item and the old one left; then {1,2} again. */
            uint64_t a = wt_get_u64(q[room]);
            uint64_t b = wt_get_u64(q[room]);
            uint64_t kept = 3 - taken; /* of the old items 1 and 2 */
            assert_true((a == 10 + room && b == kept) ||
                        (b == 10 + room && a == kept));
            wt_put_u64(q[room], 1);
            wt_put_u64(q[room], 2);
        }
        for (size_t i = 0; i < 3; i++) {
            weft_queue_destroy(q[i]);
        }
    }
}

static void
test_try_select_eagain(void **state)
{
    (void)state;
    weft_queue_t *a = mk_fifo(4);
    weft_queue_t *b = mk_fifo(1);
    wt_put_u64(b, 5); /* b full: its PUT case cannot proceed */
    uint64_t out = 0;
    uint64_t in = 9;
    weft_select_case_t c[2] = {{a, WEFT_SELECT_GET, &out},
                               {b, WEFT_SELECT_PUT, &in}};
    size_t idx = NOT_SET;
    assert_int_equal(weft_try_select(c, 2, &idx), WEFT_EAGAIN);
    assert_int_equal(idx, NOT_SET);
    assert_int_equal(out, 0);
    assert_int_equal(weft_queue_size(b), 1);
    /* A past deadline: the blocking form does not wait either. */
    assert_int_equal(weft_select(c, 2, weft_now() - 1, &idx), WEFT_ETIMEDOUT);
    assert_int_equal(idx, NOT_SET);
    assert_int_equal(watchers(&a->not_empty), 0);
    weft_queue_destroy(a);
    weft_queue_destroy(b);
}

static void
test_deadline(void **state)
{
    (void)state;
    weft_queue_t *a = mk_fifo(4);
    kind_t lifo = {WEFT_QUEUE_LIFO, 4};
    weft_queue_t *b = mk(&lifo);
    uint64_t out = 0;
    weft_select_case_t c[2] = {{a, WEFT_SELECT_GET, &out},
                               {b, WEFT_SELECT_GET, &out}};
    size_t idx = NOT_SET;
    weft_time_t t0 = weft_now();
    assert_int_equal(weft_select(c, 2, t0 + 50 * WEFT_MSEC, &idx),
                     WEFT_ETIMEDOUT);
    weft_time_t took = weft_now() - t0;
    assert_true(took >= 50 * WEFT_MSEC);
    assert_true(took < 50 * WEFT_MSEC + 2 * WEFT_SEC); /* roughly on time */
    assert_int_equal(idx, NOT_SET);
    /* Deregistered from both. */
    assert_int_equal(atomic_load(&a->not_empty.ec.waiters), 0);
    assert_int_equal(atomic_load(&b->not_empty.ec.waiters), 0);
    assert_null(a->not_empty.watch);
    assert_null(b->not_empty.watch);
    weft_queue_destroy(a);
    weft_queue_destroy(b);
}

/* ------------------------------------------------------------------------ */
/* Closed queues, disabled cases, bad arguments                              */

static void
test_closed_queue_fires(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *open_q = mk(&kinds[k]);
        weft_queue_t *closed = mk(&kinds[k]);
        wt_put_u64(closed, 42);
        weft_queue_close(closed);
        uint64_t out = 0;
        weft_select_case_t c[2] = {{open_q, WEFT_SELECT_GET, &out},
                                   {closed, WEFT_SELECT_GET, &out}};
        size_t idx = NOT_SET;
        /* Closed but not drained: the item first. */
        assert_int_equal(weft_select(c, 2, WEFT_FOREVER, &idx), WEFT_OK);
        assert_int_equal(idx, 1);
        assert_int_equal(out, 42);
        /* Then it fires with WEFT_ECLOSED, every time. */
        for (int i = 0; i < 3; i++) {
            idx = NOT_SET;
            assert_int_equal(weft_select(c, 2, WEFT_FOREVER, &idx),
                             WEFT_ECLOSED);
            assert_int_equal(idx, 1);
        }
        /* The caller disables it, and the select then times out. */
        c[1].q = NULL;
        idx = NOT_SET;
        assert_int_equal(weft_select(c, 2, weft_deadline_in(WEFT_MSEC), &idx),
                         WEFT_ETIMEDOUT);
        assert_int_equal(idx, NOT_SET);
        /* PUT on a closed queue fires WEFT_ECLOSED and adds nothing. */
        uint64_t in = 7;
        weft_select_case_t p[1] = {{closed, WEFT_SELECT_PUT, &in}};
        assert_int_equal(weft_try_select(p, 1, &idx), WEFT_ECLOSED);
        assert_int_equal(idx, 0);
        assert_int_equal(weft_queue_size(closed), 0);
        weft_queue_destroy(open_q);
        weft_queue_destroy(closed);
    }
}

static void
test_all_disabled(void **state)
{
    (void)state;
    uint64_t out = 0;
    weft_select_case_t c[3] = {{NULL, WEFT_SELECT_GET, &out},
                               {NULL, (weft_select_op_t)99, NULL},
                               {NULL, WEFT_SELECT_PUT, &out}};
    size_t idx = NOT_SET;
    /* Never blocks forever on nothing, whatever the deadline. */
    assert_int_equal(weft_select(c, 3, WEFT_FOREVER, &idx), WEFT_ECLOSED);
    assert_int_equal(idx, SIZE_MAX);
    idx = NOT_SET;
    assert_int_equal(weft_try_select(c, 3, &idx), WEFT_ECLOSED);
    assert_int_equal(idx, SIZE_MAX);
    idx = NOT_SET;
    assert_int_equal(weft_select(NULL, 0, WEFT_FOREVER, &idx), WEFT_ECLOSED);
    assert_int_equal(idx, SIZE_MAX);
}

static void
test_bad_arguments(void **state)
{
    (void)state;
    weft_queue_t *q = mk_fifo(4);
    wt_put_u64(q, 1);
    uint64_t out = 0;
    size_t idx = NOT_SET;
    weft_select_case_t ok[1] = {{q, WEFT_SELECT_GET, &out}};
    assert_int_equal(weft_select(ok, 1, WEFT_FOREVER, NULL), WEFT_EINVAL);
    assert_int_equal(weft_try_select(ok, 1, NULL), WEFT_EINVAL);
    assert_int_equal(weft_select(NULL, 1, WEFT_FOREVER, &idx), WEFT_EINVAL);
    assert_int_equal(weft_try_select(NULL, 1, &idx), WEFT_EINVAL);
    weft_select_case_t many[WEFT_SELECT_MAX + 1];
    for (size_t i = 0; i < WEFT_SELECT_MAX + 1; i++) {
        many[i] = (weft_select_case_t){NULL, WEFT_SELECT_GET, &out};
    }
    many[0].q = q;
    assert_int_equal(weft_select(many, WEFT_SELECT_MAX + 1, WEFT_FOREVER, &idx),
                     WEFT_EINVAL);
    weft_select_case_t bad_op[2] = {{q, WEFT_SELECT_GET, &out},
                                    {q, (weft_select_op_t)3, &out}};
    assert_int_equal(weft_select(bad_op, 2, WEFT_FOREVER, &idx), WEFT_EINVAL);
    weft_select_case_t zero_op[1] = {{q, (weft_select_op_t)0, &out}};
    assert_int_equal(weft_try_select(zero_op, 1, &idx), WEFT_EINVAL);
    weft_select_case_t no_item[2] = {{q, WEFT_SELECT_GET, &out},
                                     {q, WEFT_SELECT_PUT, NULL}};
    assert_int_equal(weft_select(no_item, 2, WEFT_FOREVER, &idx), WEFT_EINVAL);
    /* Nothing was done by any of them. */
    assert_int_equal(idx, NOT_SET);
    assert_int_equal(out, 0);
    assert_int_equal(weft_queue_size(q), 1);
    /* WEFT_SELECT_MAX cases are accepted. */
    assert_int_equal(weft_select(many, WEFT_SELECT_MAX, WEFT_FOREVER, &idx),
                     WEFT_OK);
    assert_int_equal(idx, 0);
    assert_int_equal(out, 1);
    weft_queue_destroy(q);
}

/* ------------------------------------------------------------------------ */
/* Blocked selects wake                                                      */

typedef struct blocked {
    weft_select_case_t c[4];
    size_t n;
    weft_time_t deadline;
    size_t idx;
    int rc;
} blocked_t;

static void *
select_thread(void *arg)
{
    blocked_t *b = arg;
    b->idx = NOT_SET;
    b->rc = weft_select(b->c, b->n, b->deadline, &b->idx);
    return NULL;
}

/* A select blocked on three empty queues wakes for a put to any of them,
 * for every kind, also with spurious wake-ups injected. */
static void
test_blocked_get_wakes_on_put(void **state)
{
    (void)state;
    for (unsigned spurious = 0; spurious <= 3; spurious += 3) {
        weft__test_spurious_wakeups(spurious);
        for (size_t k = 0; k < N_KINDS; k++) {
            for (size_t target = 0; target < 3; target++) {
                weft_queue_t *q[3] = {mk(&kinds[k]),
                                      mk(&kinds[(k + 1) % N_KINDS]),
                                      mk(&kinds[(k + 3) % N_KINDS])};
                uint64_t out[3] = {0, 0, 0};
                blocked_t b = {.n = 3, .deadline = weft_deadline_in(FAR)};
                for (size_t i = 0; i < 3; i++) {
                    b.c[i] =
                        (weft_select_case_t){q[i], WEFT_SELECT_GET, &out[i]};
                }
                weft_thread_t *t = wt_start(select_thread, &b);
                for (size_t i = 0; i < 3; i++) {
                    await_watchers(&q[i]->not_empty, 1);
                }
                weft_time_t t0 = weft_now();
                wt_put_u64(q[target], 50 + target);
                join_prompt(t, t0);
                assert_int_equal(b.rc, WEFT_OK);
                assert_int_equal(b.idx, target);
                assert_int_equal(out[target], 50 + target);
                for (size_t i = 0; i < 3; i++) {
                    assert_int_equal(watchers(&q[i]->not_empty), 0);
                    assert_int_equal(weft_queue_size(q[i]), 0);
                    weft_queue_destroy(q[i]);
                }
            }
        }
    }
    weft__test_spurious_wakeups(0);
}

static void
test_blocked_put_wakes_on_get(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        if (kinds[k].cap == WEFT_QUEUE_UNBOUNDED) {
            continue;
        }
        weft_queue_t *q[2] = {mk(&kinds[k]), mk(&kinds[k])};
        for (size_t i = 0; i < 2; i++) {
            wt_put_u64(q[i], 1);
            wt_put_u64(q[i], 2);
        }
        uint64_t in[2] = {30, 31};
        blocked_t b = {.n = 2, .deadline = WEFT_FOREVER};
        for (size_t i = 0; i < 2; i++) {
            b.c[i] = (weft_select_case_t){q[i], WEFT_SELECT_PUT, &in[i]};
        }
        weft_thread_t *t = wt_start(select_thread, &b);
        await_watchers(&q[0]->not_full, 1);
        await_watchers(&q[1]->not_full, 1);
        weft_time_t t0 = weft_now();
        (void)wt_get_u64(q[1]);
        join_prompt(t, t0);
        assert_int_equal(b.rc, WEFT_OK);
        assert_int_equal(b.idx, 1);
        assert_int_equal(weft_queue_size(q[0]), 2);
        assert_int_equal(weft_queue_size(q[1]), 2);
        uint64_t a = wt_get_u64(q[1]);
        uint64_t c = wt_get_u64(q[1]);
        assert_true(a == 31 || c == 31);
        weft_queue_destroy(q[0]);
        weft_queue_destroy(q[1]);
    }
}

static void
test_blocked_wakes_on_close(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *q[2] = {mk(&kinds[k]), mk(&kinds[k])};
        uint64_t out = 0;
        blocked_t b = {.n = 2, .deadline = WEFT_FOREVER};
        b.c[0] = (weft_select_case_t){q[0], WEFT_SELECT_GET, &out};
        b.c[1] = (weft_select_case_t){q[1], WEFT_SELECT_GET, &out};
        weft_thread_t *t = wt_start(select_thread, &b);
        await_watchers(&q[0]->not_empty, 1);
        await_watchers(&q[1]->not_empty, 1);
        weft_time_t t0 = weft_now();
        weft_queue_close(q[0]);
        join_prompt(t, t0);
        assert_int_equal(b.rc, WEFT_ECLOSED);
        assert_int_equal(b.idx, 0);
        assert_int_equal(out, 0);
        weft_queue_destroy(q[0]);
        weft_queue_destroy(q[1]);
    }
}

/* A blocked select and a blocked plain get on the same queue: two items
 * reach both, whoever is woken first (the one woken for the first item
 * passes the second notification on if it took nothing). */
static void *
plain_get_thread(void *arg)
{
    weft_queue_t *q = arg;
    uint64_t v = 0;
    int rc = weft_queue_get_until(q, &v, weft_deadline_in(FAR));
    return rc == WEFT_OK ? (void *)(uintptr_t)v : NULL;
}

static void
test_select_and_plain_get_share(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        for (int round = 0; round < 20; round++) {
            weft_queue_t *q = mk(&kinds[k]);
            weft_queue_t *other = mk(&kinds[k]);
            uint64_t out = 0;
            blocked_t b = {.n = 2, .deadline = weft_deadline_in(FAR)};
            b.c[0] = (weft_select_case_t){other, WEFT_SELECT_GET, &out};
            b.c[1] = (weft_select_case_t){q, WEFT_SELECT_GET, &out};
            weft_thread_t *ts = wt_start(select_thread, &b);
            weft_thread_t *tp = wt_start(plain_get_thread, q);
            await_watchers(&q->not_empty, 1);
            weft_time_t dl = weft_deadline_in(FAR);
            while (WEFT__QWAIT_PLAIN(atomic_load(&q->not_empty.ec.waiters)) ==
                       0 &&
                   weft_now() < dl) {
                assert_int_equal(weft_sleep_for(WEFT_MSEC / 10), WEFT_OK);
            }
            weft_time_t t0 = weft_now();
            wt_put_u64(q, 1001);
            wt_put_u64(q, 1002);
            void *pv = NULL;
            assert_int_equal(weft_thread_join(tp, &pv), WEFT_OK);
            join_prompt(ts, t0);
            assert_int_equal(b.rc, WEFT_OK);
            assert_int_equal(b.idx, 1);
            uint64_t got = (uint64_t)(uintptr_t)pv;
            assert_true((got == 1001 && out == 1002) ||
                        (got == 1002 && out == 1001));
            weft_queue_destroy(q);
            weft_queue_destroy(other);
        }
    }
}

/* A notification that fires a selector which then takes another case is
 * passed on. S1 watches q and r, S2 only q; S1 registered first, so the put
 * to q fires S1, and the put to r finds S1 already fired. When S1 takes r's
 * item, S2 gets q's only if S1 passes q's notification on as it leaves. */
static void
test_unused_notification_passed_on(void **state)
{
    (void)state;
    int passed_on = 0;
    for (int round = 0; round < 40; round++) {
        weft_queue_t *q = mk_fifo(4);
        weft_queue_t *r = mk_fifo(4);
        uint64_t out1 = 0;
        uint64_t out2 = 0;
        blocked_t s1 = {.n = 2, .deadline = weft_deadline_in(FAR)};
        s1.c[0] = (weft_select_case_t){q, WEFT_SELECT_GET, &out1};
        s1.c[1] = (weft_select_case_t){r, WEFT_SELECT_GET, &out1};
        blocked_t s2 = {.n = 1, .deadline = weft_deadline_in(5 * WEFT_SEC)};
        s2.c[0] = (weft_select_case_t){q, WEFT_SELECT_GET, &out2};
        weft_thread_t *t1 = wt_start(select_thread, &s1);
        await_watchers(&q->not_empty, 1);
        await_watchers(&r->not_empty, 1);
        weft_thread_t *t2 = wt_start(select_thread, &s2);
        await_watchers(&q->not_empty, 2);
        weft_time_t t0 = weft_now();
        wt_put_u64(q, 1);
        wt_put_u64(r, 2);
        wt_join(t1);
        assert_int_equal(s1.rc, WEFT_OK);
        if (s1.idx == 0) { /* S1 took q's item: give S2 one */
            assert_int_equal(out1, 1);
            wt_put_u64(q, 3);
        } else {
            assert_int_equal(out1, 2);
            passed_on++;
        }
        wt_join(t2);
        /* Its deadline's last try would find the item: check it did not
         * come to that. */
        weft_time_t took = weft_now() - t0;
        if (s2.rc != WEFT_OK || took > PROMPT) {
            fail_msg("round %d: the second selector got %s after %lld ms",
                     round, weft_errname(s2.rc), (long long)(took / WEFT_MSEC));
        }
        assert_int_equal(out2, s1.idx == 0 ? 3 : 1);
        weft_queue_destroy(q);
        weft_queue_destroy(r);
    }
    print_message("S1 took the other case in %d of 40 rounds\n", passed_on);
    assert_true(passed_on > 0);
}

/* A thread blocked in select shows in dumps as waiting on "select". */
static void
test_dump_shows_select(void **state)
{
    (void)state;
    weft_queue_t *q = mk_fifo(4);
    uint64_t out = 0;
    blocked_t b = {.n = 1, .deadline = weft_deadline_in(FAR)};
    b.c[0] = (weft_select_case_t){q, WEFT_SELECT_GET, &out};
    weft_thread_t *t = wt_start(select_thread, &b);
    await_watchers(&q->not_empty, 1);
    char want[64];
    snprintf(want, sizeof(want), "waiting on select %p", (void *)b.c);
    char *d = NULL;
    weft_time_t dl = weft_deadline_in(FAR);
    for (;;) { /* registered comes just before parked */
        assert_int_equal(weft_dump(&d, NULL, WEFT_DUMP_TEXT), WEFT_OK);
        if (strstr(d, want) != NULL || weft_now() > dl) {
            break;
        }
        weft_dump_free(d);
        assert_int_equal(weft_sleep_for(WEFT_MSEC), WEFT_OK);
    }
    if (strstr(d, want) == NULL) {
        fail_msg("no \"%s\" in the dump:\n%s", want, d);
    }
    weft_dump_free(d);
    weft_time_t t0 = weft_now();
    wt_put_u64(q, 5);
    join_prompt(t, t0);
    assert_int_equal(b.rc, WEFT_OK);
    assert_int_equal(out, 5);
    weft_queue_destroy(q);
}

/* GET and PUT cases in one select: whichever can proceed first. */
static void
test_mixed_get_and_put(void **state)
{
    (void)state;
    weft_queue_t *in_q = mk_fifo(4);
    kind_t prio = {WEFT_QUEUE_PRIORITY, 1};
    weft_queue_t *out_q = mk(&prio);
    wt_put_u64(out_q, 1); /* full */
    uint64_t got = 0;
    uint64_t send = 77;
    blocked_t b = {.n = 2, .deadline = weft_deadline_in(FAR)};
    b.c[0] = (weft_select_case_t){in_q, WEFT_SELECT_GET, &got};
    b.c[1] = (weft_select_case_t){out_q, WEFT_SELECT_PUT, &send};
    /* Neither can proceed. */
    size_t idx = NOT_SET;
    assert_int_equal(weft_try_select(b.c, 2, &idx), WEFT_EAGAIN);
    /* Room in out_q: the PUT case. */
    weft_thread_t *t = wt_start(select_thread, &b);
    await_watchers(&in_q->not_empty, 1);
    await_watchers(&out_q->not_full, 1);
    weft_time_t t0 = weft_now();
    assert_int_equal(wt_get_u64(out_q), 1);
    join_prompt(t, t0);
    assert_int_equal(b.rc, WEFT_OK);
    assert_int_equal(b.idx, 1);
    assert_int_equal(got, 0);
    assert_int_equal(weft_queue_size(in_q), 0);
    /* out_q full again (77): an item in in_q, the GET case. */
    t = wt_start(select_thread, &b);
    await_watchers(&in_q->not_empty, 1);
    t0 = weft_now();
    wt_put_u64(in_q, 88);
    join_prompt(t, t0);
    assert_int_equal(b.rc, WEFT_OK);
    assert_int_equal(b.idx, 0);
    assert_int_equal(got, 88);
    assert_int_equal(wt_get_u64(out_q), 77);
    assert_int_equal(weft_queue_size(out_q), 0);
    /* The same queue as GET and PUT case: room, so PUT; then an item. */
    weft_select_case_t same[2] = {{in_q, WEFT_SELECT_GET, &got},
                                  {in_q, WEFT_SELECT_PUT, &send}};
    got = 0;
    assert_int_equal(weft_try_select(same, 2, &idx), WEFT_OK);
    if (idx == 1) {
        assert_int_equal(weft_queue_size(in_q), 1);
        assert_int_equal(weft_select(same, 1, WEFT_FOREVER, &idx), WEFT_OK);
        assert_int_equal(idx, 0);
    } else {
        fail_msg("GET chosen on an empty queue (idx %zu)", idx);
    }
    assert_int_equal(got, 77);
    weft_queue_destroy(in_q);
    weft_queue_destroy(out_q);
}

/* ------------------------------------------------------------------------ */
/* Fairness (quick; the stress test measures millions)                       */

static void
test_ready_cases_share_evenly(void **state)
{
    (void)state;
    enum { ROUNDS = 8000 };
    weft_queue_t *q[4];
    for (size_t i = 0; i < 4; i++) {
        q[i] = mk_fifo(4);
        wt_put_u64(q[i], i);
    }
    uint64_t out = 0;
    /* Disabled cases between enabled ones must not give their turn to a
     * neighbour: four enabled among nine. */
    weft_select_case_t c[9];
    size_t pos[4] = {0, 3, 4, 8};
    for (size_t i = 0; i < 9; i++) {
        c[i] = (weft_select_case_t){NULL, WEFT_SELECT_GET, &out};
    }
    for (size_t i = 0; i < 4; i++) {
        c[pos[i]].q = q[i];
    }
    size_t hits[9] = {0};
    for (int r = 0; r < ROUNDS; r++) {
        size_t idx = NOT_SET;
        assert_int_equal(weft_try_select(c, 9, &idx), WEFT_OK);
        assert_true(idx < 9 && c[idx].q != NULL);
        hits[idx]++;
        assert_int_equal(out, (uint64_t)(c[idx].q == q[0]   ? 0
                                         : c[idx].q == q[1] ? 1
                                         : c[idx].q == q[2] ? 2
                                                            : 3));
        weft_queue_t *again = c[idx].q;
        wt_put_u64(again, out); /* keep every queue non-empty */
    }
    for (size_t i = 0; i < 4; i++) {
        /* Expected ROUNDS / 4 = 2000 each, sd ~39: 1700 is > 7 sd off. */
        if (hits[pos[i]] < 1700 || hits[pos[i]] > 2300) {
            fail_msg("case %zu chosen %zu times of %d", pos[i], hits[pos[i]],
                     ROUNDS);
        }
        weft_queue_destroy(q[i]);
    }
}

/* ------------------------------------------------------------------------ */
/* Cancellation                                                              */

typedef struct cancel_blk {
    weft_select_case_t c[2];
    bool until;
    weft_event_t started;
    int rc;
    size_t idx;
    int cancelled_after;
} cancel_blk_t;

static void *
select_task(void *arg)
{
    cancel_blk_t *b = arg;
    weft_event_set(&b->started);
    b->idx = NOT_SET;
    b->rc = weft_select(
        b->c, 2, b->until ? weft_deadline_in(FAR) : WEFT_FOREVER, &b->idx);
    b->cancelled_after = weft_cancelled();
    return (void *)(uintptr_t)1234;
}

static void
test_cancel_blocked_select(void **state)
{
    (void)state;
    weft_pool_opts_t po = WEFT_POOL_OPTS_INIT;
    po.workers = 2;
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(&po, &ex), WEFT_OK);
    for (size_t k = 0; k < N_KINDS; k++) {
        for (int until = 0; until <= 1; until++) {
            for (int blocking = 0; blocking <= 1; blocking++) {
                weft_queue_t *a = mk(&kinds[k]);
                weft_queue_t *full = mk_fifo(1);
                wt_put_u64(full, 3);
                uint64_t out = 0;
                uint64_t in = 4;
                cancel_blk_t b = {.until = until != 0, .rc = 1};
                b.c[0] = (weft_select_case_t){a, WEFT_SELECT_GET, &out};
                b.c[1] = (weft_select_case_t){full, WEFT_SELECT_PUT, &in};
                weft_event_init(&b.started);
                weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
                o.blocking = blocking != 0;
                weft_future_t *f = NULL;
                assert_int_equal(
                    weft_executor_submit(ex, select_task, &b, &o, &f), WEFT_OK);
                assert_int_equal(
                    weft_event_wait_until(&b.started, weft_deadline_in(FAR)),
                    WEFT_OK);
                await_watchers(&a->not_empty, 1);
                await_watchers(&full->not_full, 1);
                weft_time_t t0 = weft_now();
                assert_false(weft_future_cancel(f)); /* running */
                assert_int_equal(
                    weft_future_wait_until(f, weft_deadline_in(FAR)), WEFT_OK);
                weft_time_t took = weft_now() - t0;
                if (b.rc != WEFT_ECANCELED) {
                    fail_msg("select returned %s, not WEFT_ECANCELED",
                             weft_errname(b.rc));
                }
                assert_true(took < PROMPT);
                assert_int_equal(b.idx, NOT_SET);
                assert_int_equal(b.cancelled_after, 1);
                void *v = NULL;
                assert_int_equal(weft_future_result(f, &v), WEFT_OK);
                assert_int_equal((uintptr_t)v, 1234);
                weft_future_release(f);
                /* Left every list; nothing moved. */
                assert_int_equal(atomic_load(&a->not_empty.ec.waiters), 0);
                assert_int_equal(atomic_load(&full->not_full.ec.waiters), 0);
                assert_int_equal(weft_queue_size(full), 1);
                assert_int_equal(out, 0);
                weft_event_fini(&b.started);
                weft_queue_destroy(a);
                weft_queue_destroy(full);
            }
        }
    }
    assert_int_equal(weft_executor_shutdown(ex, true, false), WEFT_OK);
    weft_executor_destroy(ex);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_from_the_ready_queue),
        cmocka_unit_test(test_put_where_there_is_room),
        cmocka_unit_test(test_try_select_eagain),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_closed_queue_fires),
        cmocka_unit_test(test_all_disabled),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_blocked_get_wakes_on_put),
        cmocka_unit_test(test_blocked_put_wakes_on_get),
        cmocka_unit_test(test_blocked_wakes_on_close),
        cmocka_unit_test(test_select_and_plain_get_share),
        cmocka_unit_test(test_unused_notification_passed_on),
        cmocka_unit_test(test_dump_shows_select),
        cmocka_unit_test(test_mixed_get_and_put),
        cmocka_unit_test(test_ready_cases_share_evenly),
        cmocka_unit_test(test_cancel_blocked_select),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
