/* SPDX-License-Identifier: MIT */
/*
 * Bad input to the executor layer (RELIABILITY R6): every runtime error
 * returns its documented code, calls no callback and leaves out-params
 * untouched; programmer errors (a group awaited by a thread that did not
 * make it, an executor destroyed from its own task) die with a clear
 * message, checked in a child process.
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <weft/executor.h>
#include <weft/future.h>
#include <weft/pool.h>
#include <weft/scope.h>

/*
 * DESIGN
 * One row per error: a function making one bad call on a shared pool (or
 * inline executor) and returning its code, with the code it must return.
 * Every task and callback the rows pass counts its calls in `called`,
 * which must stay 0: a failed call never runs what it was given. Rows that
 * return a future or object check that the out-param stayed as it was.
 */

static weft_executor_t *pool;      /* running */
static weft_executor_t *inl;       /* inline, running */
static weft_executor_t *shut_pool; /* shut down */
static weft_executor_t *shut_inl;  /* inline, shut down */
static _Atomic int called;
static int out_touched;

static void *const SENTINEL = (void *)(uintptr_t)0x5e5e;

static void *
task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&called, 1);
    return NULL;
}

static void
spawn_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&called, 1);
}

static void
range_fn(size_t lo, size_t hi, void *ctx)
{
    (void)lo;
    (void)hi;
    (void)ctx;
    atomic_fetch_add(&called, 1);
}

static void
reduce_fn(size_t lo, size_t hi, void *acc, void *ctx)
{
    (void)lo;
    (void)hi;
    (void)acc;
    (void)ctx;
    atomic_fetch_add(&called, 1);
}

static void
merge_fn(void *into, const void *from, void *ctx)
{
    (void)into;
    (void)from;
    (void)ctx;
    atomic_fetch_add(&called, 1);
}

static bool
input_fn(void *ctx, void **arg)
{
    (void)ctx;
    (void)arg;
    atomic_fetch_add(&called, 1);
    return false;
}

/* Submit with *out preset to SENTINEL; out_touched when it changed. */
static int
submit_to(weft_executor_t *ex, weft_task_fn fn, const weft_task_opts_t *o)
{
    weft_future_t *f = SENTINEL;
    int rc = weft_executor_submit(ex, fn, NULL, o, &f);
    out_touched = f != SENTINEL;
    if (rc == WEFT_OK && out_touched) {
        weft_future_release(f);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Rows                                                                      */

static int
submit_null_executor(void)
{
    return submit_to(NULL, task, NULL);
}

static int
submit_null_fn(void)
{
    return submit_to(pool, NULL, NULL);
}

static int
submit_null_fn_inline(void)
{
    return submit_to(inl, NULL, NULL);
}

static int
submit_null_fn_no_future(void)
{
    return weft_executor_submit(pool, NULL, NULL, NULL, NULL);
}

static int
submit_bad_policy(void)
{
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.policy = (weft_submit_policy_t)4;
    return submit_to(pool, task, &o);
}

static int
submit_negative_policy(void)
{
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.policy = (weft_submit_policy_t)-1;
    return submit_to(pool, task, &o);
}

static int
submit_bad_policy_no_future(void)
{
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.policy = (weft_submit_policy_t)99;
    return weft_executor_submit(pool, task, NULL, &o, NULL);
}

static int
submit_after_shutdown(void)
{
    return submit_to(shut_pool, task, NULL);
}

static int
submit_after_shutdown_no_future(void)
{
    return weft_executor_submit(shut_pool, task, NULL, NULL, NULL);
}

static int
submit_blocking_after_shutdown(void)
{
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.blocking = true;
    return submit_to(shut_pool, task, &o);
}

static int
submit_priority_after_shutdown(void)
{
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.priority = 3;
    return submit_to(shut_pool, task, &o);
}

static int
submit_inline_after_shutdown(void)
{
    return submit_to(shut_inl, task, NULL);
}

static int
pool_create_null_out(void)
{
    return weft_pool_create(NULL, NULL);
}

static int
inline_create_null_out(void)
{
    return weft_inline_executor_create(NULL);
}

static int
pool_create_too_many_workers(void)
{
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    o.workers = 100000;
    weft_executor_t *ex = SENTINEL;
    int rc = weft_pool_create(&o, &ex);
    out_touched = ex != SENTINEL;
    return rc;
}

static int
pool_create_bad_policy(void)
{
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    o.policy = (weft_submit_policy_t)7;
    weft_executor_t *ex = SENTINEL;
    int rc = weft_pool_create(&o, &ex);
    out_touched = ex != SENTINEL;
    return rc;
}

static int
pool_create_negative_idle(void)
{
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    o.blocking_idle = -WEFT_SEC;
    weft_executor_t *ex = SENTINEL;
    int rc = weft_pool_create(&o, &ex);
    out_touched = ex != SENTINEL;
    return rc;
}

static int
group_init_inline(void)
{
    weft_group_t g;
    return weft_group_init(&g, inl);
}

static int
group_init_null_outside(void)
{
    weft_group_t g;
    return weft_group_init(&g, NULL);
}

static int
group_spawn_after_shutdown(void)
{
    weft_group_t g;
    int rc = weft_group_init(&g, shut_pool);
    if (rc != WEFT_OK) {
        return 1;
    }
    rc = weft_group_spawn(&g, spawn_fn, NULL);
    /* The failed spawn is not counted: the wait returns at once. */
    return weft_group_wait(&g) == WEFT_OK ? rc : 2;
}

static int
pfor_lo_above_hi(void)
{
    return weft_parallel_for(pool, 10, 9, 1, range_fn, NULL);
}

static int
pfor_null_body(void)
{
    return weft_parallel_for(pool, 0, 10, 1, NULL, NULL);
}

static int
pfor_null_executor(void)
{
    return weft_parallel_for(NULL, 0, 10, 1, range_fn, NULL);
}

static int
pfor_inline(void)
{
    return weft_parallel_for(inl, 0, 10, 1, range_fn, NULL);
}

static int
pfor_after_shutdown(void)
{
    return weft_parallel_for(shut_pool, 0, 10, 1, range_fn, NULL);
}

static int
reduce_acc_size_0(void)
{
    char acc[8] = {0};
    return weft_parallel_reduce(pool, 0, 10, 1, acc, 0, reduce_fn, merge_fn,
                                NULL);
}

static int
reduce_acc_size_257(void)
{
    char acc[300] = {0};
    return weft_parallel_reduce(pool, 0, 10, 1, acc, 257, reduce_fn, merge_fn,
                                NULL);
}

static int
reduce_lo_above_hi(void)
{
    char acc[8] = {0};
    return weft_parallel_reduce(pool, 5, 4, 1, acc, sizeof(acc), reduce_fn,
                                merge_fn, NULL);
}

static int
reduce_null_result(void)
{
    return weft_parallel_reduce(pool, 0, 10, 1, NULL, 8, reduce_fn, merge_fn,
                                NULL);
}

static int
reduce_null_merge(void)
{
    char acc[8] = {0};
    return weft_parallel_reduce(pool, 0, 10, 1, acc, sizeof(acc), reduce_fn,
                                NULL, NULL);
}

static int
reduce_null_body(void)
{
    char acc[8] = {0};
    return weft_parallel_reduce(pool, 0, 10, 1, acc, sizeof(acc), NULL,
                                merge_fn, NULL);
}

static int
reduce_inline(void)
{
    char acc[8] = {0};
    return weft_parallel_reduce(inl, 0, 10, 1, acc, sizeof(acc), reduce_fn,
                                merge_fn, NULL);
}

static int
pool_run_null_fn(void)
{
    return weft_pool_run(pool, NULL, NULL);
}

static int
pool_run_inline(void)
{
    return weft_pool_run(inl, spawn_fn, NULL);
}

static int
pool_run_after_shutdown(void)
{
    return weft_pool_run(shut_pool, spawn_fn, NULL);
}

static int
call_every_period_0(void)
{
    weft_future_t *f = SENTINEL;
    int rc = weft_pool_call_every(pool, 0, task, NULL, NULL, &f);
    out_touched = f != SENTINEL;
    return rc;
}

static int
call_every_negative_period(void)
{
    weft_future_t *f = SENTINEL;
    int rc = weft_pool_call_every(pool, -WEFT_MSEC, task, NULL, NULL, &f);
    out_touched = f != SENTINEL;
    return rc;
}

static int
call_every_null_fn(void)
{
    weft_future_t *f = SENTINEL;
    int rc = weft_pool_call_every(pool, WEFT_MSEC, NULL, NULL, NULL, &f);
    out_touched = f != SENTINEL;
    return rc;
}

static int
call_every_inline(void)
{
    weft_future_t *f = SENTINEL;
    int rc = weft_pool_call_every(inl, WEFT_MSEC, task, NULL, NULL, &f);
    out_touched = f != SENTINEL;
    return rc;
}

static int
call_every_after_shutdown(void)
{
    weft_future_t *f = SENTINEL;
    int rc = weft_pool_call_every(shut_pool, WEFT_MSEC, task, NULL, NULL, &f);
    out_touched = f != SENTINEL;
    return rc;
}

static int
call_later_negative_delay(void)
{
    weft_future_t *f = SENTINEL;
    int rc = weft_pool_call_later(pool, -1, task, NULL, NULL, &f);
    out_touched = f != SENTINEL;
    return rc;
}

static int
call_later_null_fn(void)
{
    weft_future_t *f = SENTINEL;
    int rc = weft_pool_call_later(pool, WEFT_MSEC, NULL, NULL, NULL, &f);
    out_touched = f != SENTINEL;
    return rc;
}

static int
call_later_null_executor(void)
{
    weft_future_t *f = SENTINEL;
    int rc = weft_pool_call_later(NULL, WEFT_MSEC, task, NULL, NULL, &f);
    out_touched = f != SENTINEL;
    return rc;
}

static int
call_later_inline(void)
{
    weft_future_t *f = SENTINEL;
    int rc = weft_pool_call_later(inl, WEFT_MSEC, task, NULL, NULL, &f);
    out_touched = f != SENTINEL;
    return rc;
}

static int
call_later_after_shutdown(void)
{
    weft_future_t *f = SENTINEL;
    int rc = weft_pool_call_later(shut_pool, WEFT_MSEC, task, NULL, NULL, &f);
    out_touched = f != SENTINEL;
    return rc;
}

static int
map_null_fn(void)
{
    weft_map_t *m = SENTINEL;
    int rc = weft_executor_map(pool, NULL, input_fn, NULL, 2, NULL, &m);
    out_touched = m != SENTINEL;
    return rc;
}

static int
map_null_input(void)
{
    weft_map_t *m = SENTINEL;
    int rc = weft_executor_map(pool, task, NULL, NULL, 2, NULL, &m);
    out_touched = m != SENTINEL;
    return rc;
}

static int
map_null_executor(void)
{
    weft_map_t *m = SENTINEL;
    int rc = weft_executor_map(NULL, task, input_fn, NULL, 2, NULL, &m);
    out_touched = m != SENTINEL;
    return rc;
}

static int
map_null_out(void)
{
    return weft_executor_map(pool, task, input_fn, NULL, 2, NULL, NULL);
}

static int
map_with_scope(void)
{
    weft_scope_t *s = NULL;
    if (weft_scope_create(WEFT_FOREVER, &s) != WEFT_OK) {
        return 1;
    }
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.scope = s;
    weft_map_t *m = SENTINEL;
    int rc = weft_executor_map(pool, task, input_fn, NULL, 2, &o, &m);
    out_touched = m != SENTINEL;
    weft_scope_destroy(s);
    return rc;
}

static int
map_next_null_map(void)
{
    void *r = NULL;
    int code = 0;
    return weft_map_next(NULL, &r, &code, NULL);
}

static int
scope_create_null_out(void)
{
    return weft_scope_create(WEFT_FOREVER, NULL);
}

static int
scope_submit_null_scope(void)
{
    weft_future_t *f = SENTINEL;
    int rc = weft_scope_submit(NULL, pool, task, NULL, NULL, &f);
    out_touched = f != SENTINEL;
    return rc;
}

static int
scope_submit_null_fn(void)
{
    weft_scope_t *s = NULL;
    if (weft_scope_create(WEFT_FOREVER, &s) != WEFT_OK) {
        return 1;
    }
    weft_future_t *f = SENTINEL;
    int rc = weft_scope_submit(s, pool, NULL, NULL, NULL, &f);
    out_touched = f != SENTINEL;
    /* The refused task is no member: the scope has nothing to wait for. */
    if (weft_scope_pending(s) != 0 || weft_scope_wait(s) != WEFT_OK) {
        rc = 2;
    }
    weft_scope_destroy(s);
    return rc;
}

static int
scope_submit_after_shutdown(void)
{
    weft_scope_t *s = NULL;
    if (weft_scope_create(WEFT_FOREVER, &s) != WEFT_OK) {
        return 1;
    }
    weft_future_t *f = SENTINEL;
    int rc = weft_scope_submit(s, shut_pool, task, NULL, NULL, &f);
    out_touched = f != SENTINEL;
    if (weft_scope_pending(s) != 0) {
        rc = 2;
    }
    weft_scope_destroy(s);
    return rc;
}

static int
call_later_with_scope(void)
{
    weft_scope_t *s = NULL;
    if (weft_scope_create(WEFT_FOREVER, &s) != WEFT_OK) {
        return 1;
    }
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.scope = s;
    weft_future_t *f = SENTINEL;
    int rc = weft_pool_call_later(pool, WEFT_MSEC, task, NULL, &o, &f);
    out_touched = f != SENTINEL;
    weft_scope_destroy(s);
    return rc;
}

typedef struct row {
    const char *name;
    int (*fn)(void);
    int want;
} row_t;

#define ROW(f, code)                                                           \
    {                                                                          \
#f, f, code                                                            \
    }

static const row_t rows[] = {
    ROW(submit_null_executor, WEFT_EINVAL),
    ROW(submit_null_fn, WEFT_EINVAL),
    ROW(submit_null_fn_inline, WEFT_EINVAL),
    ROW(submit_null_fn_no_future, WEFT_EINVAL),
    ROW(submit_bad_policy, WEFT_EINVAL),
    ROW(submit_negative_policy, WEFT_EINVAL),
    ROW(submit_bad_policy_no_future, WEFT_EINVAL),
    ROW(submit_after_shutdown, WEFT_ESHUTDOWN),
    ROW(submit_after_shutdown_no_future, WEFT_ESHUTDOWN),
    ROW(submit_blocking_after_shutdown, WEFT_ESHUTDOWN),
    ROW(submit_priority_after_shutdown, WEFT_ESHUTDOWN),
    ROW(submit_inline_after_shutdown, WEFT_ESHUTDOWN),
    ROW(pool_create_null_out, WEFT_EINVAL),
    ROW(inline_create_null_out, WEFT_EINVAL),
    ROW(pool_create_too_many_workers, WEFT_EINVAL),
    ROW(pool_create_bad_policy, WEFT_EINVAL),
    ROW(pool_create_negative_idle, WEFT_EINVAL),
    ROW(group_init_inline, WEFT_EINVAL),
    ROW(group_init_null_outside, WEFT_EINVAL),
    ROW(group_spawn_after_shutdown, WEFT_ESHUTDOWN),
    ROW(pfor_lo_above_hi, WEFT_EINVAL),
    ROW(pfor_null_body, WEFT_EINVAL),
    ROW(pfor_null_executor, WEFT_EINVAL),
    ROW(pfor_inline, WEFT_EINVAL),
    ROW(pfor_after_shutdown, WEFT_ESHUTDOWN),
    ROW(reduce_acc_size_0, WEFT_EINVAL),
    ROW(reduce_acc_size_257, WEFT_EINVAL),
    ROW(reduce_lo_above_hi, WEFT_EINVAL),
    ROW(reduce_null_result, WEFT_EINVAL),
    ROW(reduce_null_merge, WEFT_EINVAL),
    ROW(reduce_null_body, WEFT_EINVAL),
    ROW(reduce_inline, WEFT_EINVAL),
    ROW(pool_run_null_fn, WEFT_EINVAL),
    ROW(pool_run_inline, WEFT_EINVAL),
    ROW(pool_run_after_shutdown, WEFT_ESHUTDOWN),
    ROW(call_every_period_0, WEFT_EINVAL),
    ROW(call_every_negative_period, WEFT_EINVAL),
    ROW(call_every_null_fn, WEFT_EINVAL),
    ROW(call_every_inline, WEFT_EINVAL),
    ROW(call_every_after_shutdown, WEFT_ESHUTDOWN),
    ROW(call_later_negative_delay, WEFT_EINVAL),
    ROW(call_later_null_fn, WEFT_EINVAL),
    ROW(call_later_null_executor, WEFT_EINVAL),
    ROW(call_later_inline, WEFT_EINVAL),
    ROW(call_later_after_shutdown, WEFT_ESHUTDOWN),
    ROW(call_later_with_scope, WEFT_EINVAL),
    ROW(map_null_fn, WEFT_EINVAL),
    ROW(map_null_input, WEFT_EINVAL),
    ROW(map_null_executor, WEFT_EINVAL),
    ROW(map_null_out, WEFT_EINVAL),
    ROW(map_with_scope, WEFT_EINVAL),
    ROW(map_next_null_map, WEFT_EINVAL),
    ROW(scope_create_null_out, WEFT_EINVAL),
    ROW(scope_submit_null_scope, WEFT_EINVAL),
    ROW(scope_submit_null_fn, WEFT_EINVAL),
    ROW(scope_submit_after_shutdown, WEFT_ESHUTDOWN),
};

static int
setup(void **state)
{
    (void)state;
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    o.workers = 2;
    if (weft_pool_create(&o, &pool) != WEFT_OK ||
        weft_pool_create(&o, &shut_pool) != WEFT_OK ||
        weft_inline_executor_create(&inl) != WEFT_OK ||
        weft_inline_executor_create(&shut_inl) != WEFT_OK ||
        weft_executor_shutdown(shut_pool, true, false) != WEFT_OK ||
        weft_executor_shutdown(shut_inl, true, false) != WEFT_OK) {
        return -1;
    }
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    weft_executor_destroy(pool);
    weft_executor_destroy(shut_pool);
    weft_executor_destroy(inl);
    weft_executor_destroy(shut_inl);
    pool = shut_pool = inl = shut_inl = NULL;
    return 0;
}

static void
test_error_table(void **state)
{
    (void)state;
    size_t n = sizeof(rows) / sizeof(rows[0]);
    int failures = 0;
    atomic_store(&called, 0);
    for (size_t i = 0; i < n; i++) {
        out_touched = 0;
        int before = atomic_load(&called);
        int rc = rows[i].fn();
        if (rc != rows[i].want) {
            printf("%s: returned %s, expected %s\n", rows[i].name,
                   weft_errname(rc), weft_errname(rows[i].want));
            failures++;
        }
        if (out_touched) {
            printf("%s: the out-param was written on failure\n", rows[i].name);
            failures++;
        }
        if (atomic_load(&called) != before) {
            printf("%s: a callback of the failed call ran\n", rows[i].name);
            failures++;
        }
    }
    /* Work wrongly queued by a failed call would show up by now. */
    assert_int_equal(weft_sleep_for(50 * WEFT_MSEC), WEFT_OK);
    if (atomic_load(&called) != 0) {
        printf("%d callbacks ran late for failed calls\n",
               atomic_load(&called));
        failures++;
    }
    if (failures != 0) {
        fail_msg("%d error-table checks failed", failures);
    }
}

/* ------------------------------------------------------------------------ */
/* Documented no-ops and neutral answers                                     */

static void
test_neutral_calls(void **state)
{
    (void)state;
    weft_executor_destroy(NULL); /* no-op */
    weft_scope_destroy(NULL);
    weft_map_destroy(NULL);
    assert_string_equal(weft_executor_name(NULL), "");
    assert_int_equal(weft_pool_workers(NULL), 0);
    assert_int_equal(weft_pool_workers(inl), 0);
    assert_int_equal(weft_pool_workers(pool), 2);
    assert_null(weft_pool_current());
    assert_false(weft_cancelled());
    assert_null(weft_task_label());
    assert_string_equal(weft_scope_error(NULL), "");
    assert_int_equal(weft_scope_pending(NULL), 0);
    /* Zero-length ranges are fine and call nothing. */
    atomic_store(&called, 0);
    assert_int_equal(weft_parallel_for(pool, 7, 7, 0, range_fn, NULL), WEFT_OK);
    char acc[256] = {0};
    assert_int_equal(weft_parallel_reduce(pool, 3, 3, 0, acc, sizeof(acc),
                                          reduce_fn, merge_fn, NULL),
                     WEFT_OK);
    assert_int_equal(atomic_load(&called), 0);
    /* The largest accumulator is accepted. */
    assert_int_equal(weft_parallel_reduce(pool, 0, 3, 1, acc, 256, reduce_fn,
                                          merge_fn, NULL),
                     WEFT_OK);
    assert_true(atomic_load(&called) >= 1);
    /* A second shutdown of a shut-down pool is fine. */
    assert_int_equal(weft_executor_shutdown(shut_pool, true, true), WEFT_OK);
}

/* ------------------------------------------------------------------------ */
/* Death tests                                                               */

static void
wait_from_other(void *arg)
{
    weft_group_t *g = arg;
    int rc = weft_group_wait(g); /* dies */
    (void)rc;
}

static void *
wait_from_other_thread(void *arg)
{
    wait_from_other(arg);
    return NULL;
}

static void
group_wait_wrong_thread_child(void *arg)
{
    (void)arg;
    weft_executor_t *ex = NULL;
    if (weft_pool_create(NULL, &ex) != WEFT_OK) {
        return;
    }
    weft_group_t g;
    if (weft_group_init(&g, ex) != WEFT_OK) {
        return;
    }
    weft_thread_t *t = NULL;
    if (weft_thread_create(NULL, wait_from_other_thread, &g, &t) != WEFT_OK) {
        return;
    }
    int rc = weft_thread_join(t, NULL);
    (void)rc;
}

/* A pool task waits for a group made on the test's thread. */
static void *
wait_in_task(void *arg)
{
    wait_from_other(arg);
    return NULL;
}

static void
group_wait_from_task_child(void *arg)
{
    (void)arg;
    weft_executor_t *ex = NULL;
    if (weft_pool_create(NULL, &ex) != WEFT_OK) {
        return;
    }
    weft_group_t g;
    if (weft_group_init(&g, ex) != WEFT_OK) {
        return;
    }
    weft_future_t *f = NULL;
    if (weft_executor_submit(ex, wait_in_task, &g, NULL, &f) != WEFT_OK) {
        return;
    }
    int rc = weft_future_wait(f);
    (void)rc;
}

static void *
destroy_own_pool(void *arg)
{
    (void)arg;
    weft_executor_destroy(weft_pool_current()); /* dies */
    return NULL;
}

static void
destroy_from_task_child(void *arg)
{
    bool blocking = arg != NULL;
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    o.workers = 2;
    o.name = "victim";
    weft_executor_t *ex = NULL;
    if (weft_pool_create(&o, &ex) != WEFT_OK) {
        return;
    }
    weft_task_opts_t to = WEFT_TASK_OPTS_INIT;
    to.blocking = blocking;
    weft_future_t *f = NULL;
    if (weft_executor_submit(ex, destroy_own_pool, NULL, &to, &f) != WEFT_OK) {
        return;
    }
    int rc = weft_future_wait(f);
    (void)rc;
}

static void
test_death(void **state)
{
    (void)state;
    assert_true(wt_dies_with(group_wait_wrong_thread_child, NULL,
                             "only the thread that initialised the group"));
    assert_true(wt_dies_with(group_wait_from_task_child, NULL,
                             "only the thread that initialised the group"));
    assert_true(wt_dies_with(destroy_from_task_child, NULL,
                             "weft_executor_destroy called from one of "
                             "victim's own threads"));
    assert_true(wt_dies_with(destroy_from_task_child, (void *)1,
                             "weft_executor_destroy called from one of "
                             "victim's own threads"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_neutral_calls),
    };
    const struct CMUnitTest death[] = {
        cmocka_unit_test(test_death),
    };
    /* The death tests fork: run them while this process has no pool. */
    int failed = cmocka_run_group_tests(death, NULL, NULL);
    return failed + cmocka_run_group_tests(tests, setup, teardown);
}
