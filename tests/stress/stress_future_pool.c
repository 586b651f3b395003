/* SPDX-License-Identifier: MIT */
/*
 * Stress (RELIABILITY R5 on the pool): futures of pool tasks. Callbacks
 * registered while the task finishes run exactly once and see the
 * outcome; tasks waiting on tasks never deadlock a 1- or 2-worker pool
 * (the waiter runs the queued task itself); weft_future_wait_many over
 * pool futures; and a completion queue hands each of many pool futures
 * over exactly once.
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/executor.h>
#include <weft/future.h>
#include <weft/pool.h>

/*
 * DESIGN
 * Exactly-once is counted per future (one slot each); values are the
 * slot's index, so a callback or consumer can tell which future it got
 * and whether the value it sees is the one the task produced. Code on pool
 * threads never uses cmocka's asserts: it counts errors, printed and
 * checked on the test thread. Every wait has a deadline: a deadlock is a
 * failure with a message; the nested-wait test then cancels every future
 * of the chain so that the pool unwinds and can be destroyed.
 */

#define FAR (120 * WEFT_SEC)

static _Atomic int errors;

static void
report(const char *what, size_t a, long b)
{
    if (atomic_fetch_add(&errors, 1) < 5) {
        printf("error: %s (%zu, %ld)\n", what, a, b);
        fflush(stdout);
    }
}

static void
check_no_errors(void)
{
    int e = atomic_exchange(&errors, 0);
    if (e != 0) {
        fail_msg("%d errors on other threads", e);
    }
}

static weft_executor_t *
new_pool(unsigned workers, unsigned blocking_max)
{
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    o.workers = workers;
    o.blocking_max = blocking_max;
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(&o, &ex), WEFT_OK);
    return ex;
}

static void *
ival(size_t i)
{
    return (void *)(uintptr_t)(i + 1);
}

/* ------------------------------------------------------------------------ */
/* Callbacks racing completion                                               */

typedef struct cbrun {
    _Atomic uint8_t *calls; /* per future: callbacks run */
    size_t n;
    _Atomic size_t total;
    weft_event_t all;
} cbrun_t;

static cbrun_t CB;

/* Fails for every fifth index, with a message naming it. */
static void *
value_task(void *arg)
{
    size_t i = (size_t)(uintptr_t)arg - 1;
    if (i % 5 == 0) {
        return weft_task_fail(WEFT_EIO, "task %zu", i);
    }
    return arg;
}

static void
on_done_cb(weft_future_t *f, void *ctx)
{
    size_t i = (size_t)(uintptr_t)ctx - 1;
    if (i >= CB.n) {
        report("callback with a bad context", i, 0);
        return;
    }
    /* The outcome is complete and visible to the callback. */
    if (!weft_future_done(f)) {
        report("callback before the future finished", i, 0);
    }
    void *v = NULL;
    int rc = weft_future_result(f, &v);
    if (i % 5 == 0) {
        char want[32];
        snprintf(want, sizeof(want), "task %zu", i);
        if (rc != WEFT_EIO || weft_future_state(f) != WEFT_FUTURE_FAILED ||
            strcmp(weft_future_error(f), want) != 0) {
            report("failure not visible in callback", i, rc);
        }
    } else if (rc != WEFT_OK || v != ctx) {
        report("value not visible in callback", i, rc);
    }
    uint8_t old = atomic_fetch_add(&CB.calls[i], 1);
    if (old >= 2) {
        report("callback ran more than once", i, old);
    }
    if (atomic_fetch_add(&CB.total, 1) + 1 == 2 * CB.n) {
        weft_event_set(&CB.all);
    }
}

typedef struct cbsub {
    weft_executor_t *ex;
    size_t lo, hi;
    uint64_t rng;
} cbsub_t;

static void *
cb_submitter(void *arg)
{
    cbsub_t *s = arg;
    for (size_t i = s->lo; i < s->hi; i++) {
        weft_future_t *f = NULL;
        int rc = weft_executor_submit(s->ex, value_task, ival(i), NULL, &f);
        if (rc != WEFT_OK) {
            report("submit", i, rc);
            continue;
        }
        /* Sometimes let the task get going first, so registration meets
         * every phase of the finish. */
        unsigned spin = (unsigned)(wt_rand(&s->rng) % 64);
        for (unsigned k = 0; k < spin; k++) {
            atomic_signal_fence(memory_order_seq_cst);
        }
        if (weft_future_on_done(f, on_done_cb, ival(i)) != WEFT_OK) {
            report("on_done", i, 0);
        }
        if (weft_future_on_done(f, on_done_cb, ival(i)) != WEFT_OK) {
            report("on_done", i, 1);
        }
        weft_future_release(f);
    }
    return NULL;
}

static void
test_callbacks_race_completion(void **state)
{
    (void)state;
    uint64_t seed = wt_seed();
    size_t n = wt_size(1000000, 10000000);
    memset(&CB, 0, sizeof(CB));
    CB.n = n;
    CB.calls = calloc(n, 1);
    assert_non_null(CB.calls);
    weft_event_init(&CB.all);
    weft_executor_t *ex = new_pool(2, 0);
    enum { NSUB = 2 };
    cbsub_t subs[NSUB];
    for (size_t t = 0; t < NSUB; t++) {
        subs[t] = (cbsub_t){ex, n * t / NSUB, n * (t + 1) / NSUB, seed + t};
    }
    wt_run_threads(NSUB, cb_submitter, subs, sizeof(subs[0]));
    int rc = weft_event_wait_until(&CB.all, weft_deadline_in(FAR));
    if (rc != WEFT_OK) {
        fail_msg("%zu of %zu callbacks ran", atomic_load(&CB.total), 2 * n);
    }
    weft_executor_destroy(ex);
    for (size_t i = 0; i < n; i++) {
        if (atomic_load(&CB.calls[i]) != 2) {
            fail_msg("future %zu: %u callbacks ran, not 2", i,
                     (unsigned)atomic_load(&CB.calls[i]));
        }
    }
    assert_int_equal(atomic_load(&CB.total), 2 * n);
    check_no_errors();
    free((void *)CB.calls);
}

/* ------------------------------------------------------------------------ */
/* Tasks waiting on tasks                                                    */

#define DEPTH 50
#define MAX_CHAINS 8

/* Every future of the chains, kept so that a deadlock can be unwound. */
static _Atomic(weft_future_t *) chain_fs[MAX_CHAINS][DEPTH + 1];

typedef struct link_arg {
    size_t chain, depth;
    int use_many; /* wait with weft_future_wait_many */
} link_arg_t;

static link_arg_t link_args[MAX_CHAINS][DEPTH + 1];

static void *
link_task(void *arg)
{
    link_arg_t *a = arg;
    if (a->depth == DEPTH) {
        return (void *)(uintptr_t)1;
    }
    link_arg_t *next = &link_args[a->chain][a->depth + 1];
    weft_future_t *f = NULL;
    int rc =
        weft_executor_submit(weft_pool_current(), link_task, next, NULL, &f);
    if (rc != WEFT_OK) {
        report("submit from inside", a->depth, rc);
        return NULL;
    }
    atomic_store(&chain_fs[a->chain][a->depth + 1], weft_future_retain(f));
    if (a->use_many) {
        size_t idx = 99;
        rc = weft_future_wait_many(&f, 1, WEFT_ALL_COMPLETED, WEFT_FOREVER,
                                   &idx);
    } else {
        rc = weft_future_wait(f);
    }
    void *v = NULL;
    if (rc == WEFT_OK) {
        rc = weft_future_result(f, &v);
    }
    weft_future_release(f);
    if (rc != WEFT_OK) {
        return weft_task_fail(rc, "depth %zu", a->depth);
    }
    return (void *)((uintptr_t)v + 1);
}

static void
run_chains(unsigned workers, size_t nchains, int use_many)
{
    weft_executor_t *ex = new_pool(workers, 0);
    for (size_t c = 0; c < MAX_CHAINS; c++) {
        for (size_t d = 0; d <= DEPTH; d++) {
            atomic_store(&chain_fs[c][d], NULL);
        }
    }
    weft_future_t *tops[MAX_CHAINS];
    for (size_t c = 0; c < nchains; c++) {
        link_args[c][0] = (link_arg_t){c, 0, use_many};
        for (size_t d = 1; d <= DEPTH; d++) {
            link_args[c][d] = (link_arg_t){c, d, use_many};
        }
        assert_int_equal(weft_executor_submit(ex, link_task, &link_args[c][0],
                                              NULL, &tops[c]),
                         WEFT_OK);
        atomic_store(&chain_fs[c][0], weft_future_retain(tops[c]));
    }
    int deadlocked = 0;
    weft_time_t dl = weft_deadline_in(20 * WEFT_SEC);
    for (size_t c = 0; c < nchains; c++) {
        if (weft_future_wait_until(tops[c], dl) == WEFT_ETIMEDOUT) {
            deadlocked = 1;
        }
    }
    if (deadlocked) {
        /* Unwind: cancel every link (running ones see WEFT_ECANCELED in
         * their wait, queued ones never run). */
        for (size_t c = 0; c < nchains; c++) {
            for (size_t d = 0; d <= DEPTH; d++) {
                weft_future_t *f = atomic_load(&chain_fs[c][d]);
                if (f != NULL) {
                    (void)weft_future_cancel(f);
                }
            }
        }
    }
    weft_executor_destroy(ex);
    for (size_t c = 0; c < nchains; c++) {
        for (size_t d = 0; d <= DEPTH; d++) {
            weft_future_release(atomic_load(&chain_fs[c][d]));
        }
    }
    if (deadlocked) {
        for (size_t c = 0; c < nchains; c++) {
            weft_future_release(tops[c]);
        }
        fail_msg("%zu chains of depth %d deadlocked a %u-worker pool", nchains,
                 DEPTH, workers);
    }
    for (size_t c = 0; c < nchains; c++) {
        void *v = NULL;
        assert_int_equal(weft_future_result(tops[c], &v), WEFT_OK);
        assert_int_equal((uintptr_t)v, DEPTH + 1);
        weft_future_release(tops[c]);
    }
    check_no_errors();
}

static void
test_nested_waits_never_deadlock(void **state)
{
    (void)state;
    size_t rounds = wt_size(20, 200);
    for (size_t r = 0; r < rounds; r++) {
        run_chains(1, 1, 0);
        run_chains(2, 1, 0);
        run_chains(1, 4, 0);
        run_chains(2, MAX_CHAINS, 0);
    }
}

static void
test_nested_wait_many_never_deadlock(void **state)
{
    (void)state;
    size_t rounds = wt_size(20, 200);
    for (size_t r = 0; r < rounds; r++) {
        run_chains(1, 1, 1);
        run_chains(2, 4, 1);
    }
}

/* ------------------------------------------------------------------------ */
/* wait_many over pool futures                                               */

typedef struct gated {
    weft_event_t go;
    int fail;
} gated_t;

static void *
gated_task(void *arg)
{
    gated_t *g = arg;
    if (weft_event_wait_until(&g->go, weft_deadline_in(FAR)) != WEFT_OK) {
        report("gate never opened", 0, 0);
    }
    if (g->fail) {
        return weft_task_fail(WEFT_EIO, "gated failure");
    }
    return g;
}

/*
 * One gated pool task among promises that finish only later: the index a
 * FIRST_COMPLETED (or, when the task fails, FIRST_EXCEPTION) wait returns
 * can only be the task's. Then ALL_COMPLETED once everything finished.
 */
static void
test_wait_many_pool_futures(void **state)
{
    (void)state;
    enum { K = 8 };
    uint64_t rng = wt_seed() + 3;
    size_t rounds = wt_size(1000, 10000);
    weft_executor_t *ex = new_pool(2, 0);
    for (size_t r = 0; r < rounds; r++) {
        size_t n = 1 + (size_t)(wt_rand(&rng) % K);
        size_t j = (size_t)(wt_rand(&rng) % n);
        bool fail_j = wt_rand(&rng) % 2 == 0;
        static gated_t g;
        weft_event_init(&g.go);
        g.fail = fail_j;
        weft_future_t *fs[K];
        for (size_t i = 0; i < n; i++) {
            if (i == j) {
                assert_int_equal(
                    weft_executor_submit(ex, gated_task, &g, NULL, &fs[i]),
                    WEFT_OK);
            } else {
                assert_int_equal(weft_promise_create(&fs[i]), WEFT_OK);
            }
        }
        size_t idx = 1000;
        /* Nothing can finish yet. */
        assert_int_equal(weft_future_wait_many(fs, n, WEFT_FIRST_COMPLETED,
                                               weft_deadline_in(WEFT_MSEC),
                                               &idx),
                         WEFT_ETIMEDOUT);
        assert_int_equal(idx, 1000);
        weft_event_set(&g.go);
        weft_wait_mode_t mode =
            fail_j ? WEFT_FIRST_EXCEPTION : WEFT_FIRST_COMPLETED;
        assert_int_equal(
            weft_future_wait_many(fs, n, mode, weft_deadline_in(FAR), &idx),
            WEFT_OK);
        assert_int_equal(idx, j);
        assert_true(weft_future_done(fs[j]));
        for (size_t i = 0; i < n; i++) {
            if (i != j) {
                assert_false(weft_future_done(fs[i]));
                assert_int_equal(weft_promise_set_result(fs[i], &fs[i], NULL),
                                 WEFT_OK);
            }
        }
        assert_int_equal(weft_future_wait_many(fs, n, WEFT_ALL_COMPLETED,
                                               weft_deadline_in(FAR), &idx),
                         WEFT_OK);
        assert_int_equal(idx, n - 1);
        void *v = NULL;
        int rc = weft_future_result(fs[j], &v);
        if (fail_j) {
            assert_int_equal(rc, WEFT_EIO);
        } else {
            assert_int_equal(rc, WEFT_OK);
            assert_ptr_equal(v, &g);
        }
        for (size_t i = 0; i < n; i++) {
            weft_future_release(fs[i]);
        }
        weft_event_fini(&g.go);
    }
    weft_executor_destroy(ex);
    check_no_errors();
}

/* Free-running tasks: the index a wait returns is of a finished future. */
static void *
spin_task(void *arg)
{
    uintptr_t n = (uintptr_t)arg;
    uint64_t x = n;
    for (uintptr_t i = 0; i < n * 50; i++) {
        x = x * 6364136223846793005ull + 1;
    }
    return (void *)(uintptr_t)(x | 1u);
}

static void
test_wait_many_free_running(void **state)
{
    (void)state;
    enum { K = 16 };
    uint64_t rng = wt_seed() + 5;
    size_t rounds = wt_size(2000, 20000);
    weft_executor_t *ex = new_pool(3, 0);
    for (size_t r = 0; r < rounds; r++) {
        size_t n = 1 + (size_t)(wt_rand(&rng) % K);
        weft_future_t *fs[K];
        for (size_t i = 0; i < n; i++) {
            uintptr_t work = (uintptr_t)(wt_rand(&rng) % 200);
            assert_int_equal(
                weft_executor_submit(ex, spin_task, (void *)work, NULL, &fs[i]),
                WEFT_OK);
        }
        size_t idx = 1000;
        assert_int_equal(weft_future_wait_many(fs, n, WEFT_FIRST_COMPLETED,
                                               weft_deadline_in(FAR), &idx),
                         WEFT_OK);
        assert_true(idx < n && weft_future_done(fs[idx]));
        assert_int_equal(weft_future_wait_many(fs, n, WEFT_ALL_COMPLETED,
                                               weft_deadline_in(FAR), &idx),
                         WEFT_OK);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(weft_future_state(fs[i]), WEFT_FUTURE_DONE);
            weft_future_release(fs[i]);
        }
    }
    weft_executor_destroy(ex);
}

/* ------------------------------------------------------------------------ */
/* Completion queue over many pool futures                                   */

typedef struct cqrun {
    weft_completion_queue_t *cq;
    _Atomic uint8_t *got;
    size_t n;
    _Atomic size_t handed;
} cqrun_t;

static cqrun_t CQ;

static void *
index_task(void *arg)
{
    return arg;
}

static void *
cq_consumer(void *arg)
{
    (void)arg;
    weft_time_t dl = weft_deadline_in(FAR);
    while (atomic_load(&CQ.handed) < CQ.n && weft_now() < dl) {
        weft_future_t *f = NULL;
        int rc = weft_cq_next_until(CQ.cq, &f, weft_deadline_in(WEFT_MSEC));
        if (rc == WEFT_ETIMEDOUT || rc == WEFT_ECLOSED) {
            weft_thread_yield(); /* ECLOSED: momentarily nothing pending */
            continue;
        }
        if (rc != WEFT_OK) {
            report("cq_next", 0, rc);
            break;
        }
        void *v = NULL;
        if (!weft_future_done(f) || weft_future_result(f, &v) != WEFT_OK) {
            report("handed over unfinished or failed", 0, 0);
        }
        size_t i = (size_t)(uintptr_t)v - 1;
        if (i >= CQ.n) {
            report("bad value", i, 0);
        } else if (atomic_fetch_add(&CQ.got[i], 1) != 0) {
            report("handed over twice", i, 0);
        }
        weft_future_release(f);
        atomic_fetch_add(&CQ.handed, 1);
    }
    return NULL;
}

static void
test_completion_queue_pool_futures(void **state)
{
    (void)state;
    size_t n = wt_size(100000, 1000000);
    memset(&CQ, 0, sizeof(CQ));
    CQ.n = n;
    CQ.got = calloc(n, 1);
    assert_non_null(CQ.got);
    assert_int_equal(weft_cq_create(&CQ.cq), WEFT_OK);
    weft_executor_t *ex = new_pool(3, 0);
    weft_thread_t *consumers[2];
    for (size_t t = 0; t < 2; t++) {
        assert_int_equal(
            weft_thread_create(NULL, cq_consumer, NULL, &consumers[t]),
            WEFT_OK);
    }
    for (size_t i = 0; i < n; i++) {
        weft_future_t *f = NULL;
        assert_int_equal(
            weft_executor_submit(ex, index_task, ival(i), NULL, &f), WEFT_OK);
        assert_int_equal(weft_cq_add(CQ.cq, f), WEFT_OK);
        weft_future_release(f);
    }
    for (size_t t = 0; t < 2; t++) {
        assert_int_equal(weft_thread_join(consumers[t], NULL), WEFT_OK);
    }
    assert_int_equal(atomic_load(&CQ.handed), n);
    weft_future_t *f = NULL;
    assert_int_equal(weft_cq_next(CQ.cq, &f), WEFT_ECLOSED);
    assert_int_equal(weft_cq_pending(CQ.cq), 0);
    for (size_t i = 0; i < n; i++) {
        if (atomic_load(&CQ.got[i]) != 1) {
            fail_msg("future %zu handed over %u times", i,
                     (unsigned)atomic_load(&CQ.got[i]));
        }
    }
    check_no_errors();
    weft_cq_destroy(CQ.cq);
    weft_executor_destroy(ex);
    free((void *)CQ.got);
}

/* ------------------------------------------------------------------------ */
/* Regression tests for bugs found and fixed                                 */

/*
 * Regression: wait_many over pool futures only, each task blocked
 * on its own gate, one worker per task. The task whose gate opens must
 * finish and be reported. It hangs when a worker that picked up a gated
 * task while searching for work stays counted as searching: submits then
 * wake no sleeping worker, and the released task stays queued (see
 * test_idle_worker_woken_while_a_searcher_blocks in test_pool). On a
 * timeout the gates are opened so that the pool unwinds.
 */
static void
test_wait_many_all_pool_futures(void **state)
{
    (void)state;
    enum { K = 8 };
    uint64_t rng = wt_seed() + 9;
    size_t rounds = wt_size(200, 2000);
    weft_executor_t *ex = new_pool(K, 0);
    static gated_t gs[K];
    size_t hung = 0;
    for (size_t r = 0; r < rounds && hung == 0; r++) {
        size_t n = 1 + (size_t)(wt_rand(&rng) % K);
        size_t j = (size_t)(wt_rand(&rng) % n);
        weft_future_t *fs[K];
        for (size_t i = 0; i < n; i++) {
            weft_event_init(&gs[i].go);
            gs[i].fail = 0;
            assert_int_equal(
                weft_executor_submit(ex, gated_task, &gs[i], NULL, &fs[i]),
                WEFT_OK);
        }
        size_t idx = 1000;
        /* Nothing can finish yet. */
        assert_int_equal(weft_future_wait_many(fs, n, WEFT_FIRST_COMPLETED,
                                               weft_deadline_in(WEFT_MSEC),
                                               &idx),
                         WEFT_ETIMEDOUT);
        weft_event_set(&gs[j].go);
        int rc = weft_future_wait_many(fs, n, WEFT_FIRST_COMPLETED,
                                       weft_deadline_in(5 * WEFT_SEC), &idx);
        if (rc == WEFT_ETIMEDOUT) {
            printf("round %zu: the released task of %zu never finished\n", r,
                   n);
            hung++;
        } else {
            assert_int_equal(rc, WEFT_OK);
            assert_int_equal(idx, j);
        }
        for (size_t i = 0; i < n; i++) {
            weft_event_set(&gs[i].go);
        }
        assert_int_equal(weft_future_wait_many(fs, n, WEFT_ALL_COMPLETED,
                                               weft_deadline_in(FAR), &idx),
                         WEFT_OK);
        for (size_t i = 0; i < n; i++) {
            weft_future_release(fs[i]);
            weft_event_fini(&gs[i].go);
        }
    }
    weft_executor_destroy(ex);
    check_no_errors();
    if (hung != 0) {
        fail_msg("a released pool task never ran while workers slept");
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callbacks_race_completion),
        cmocka_unit_test(test_nested_waits_never_deadlock),
        cmocka_unit_test(test_nested_wait_many_never_deadlock),
        cmocka_unit_test(test_wait_many_pool_futures),
        cmocka_unit_test(test_wait_many_free_running),
        cmocka_unit_test(test_completion_queue_pool_futures),
        /* Known bug: fails until the implementation is fixed. */
        cmocka_unit_test(test_wait_many_all_pool_futures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
