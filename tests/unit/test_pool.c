/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the work-stealing pool as an executor: creation with
 * defaults and options, submits with and without futures, results and
 * failures, labels, priorities, start deadlines, result destructors,
 * worker names, weft_pool_current, the submit policies on a full queue,
 * shutdown (waiting, cancelling, from inside a task), the inline executor,
 * timers, and the CPU an idle pool uses.
 */
#include "testutil.h"

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <weft/executor.h>
#include <weft/future.h>
#include <weft/pool.h>

/*
 * DESIGN
 * A pool is made "blocked" by a gate task that holds its only worker until
 * the test opens the gate: what is submitted meanwhile stays queued, so
 * queue-full, priority and cancellation cases are deterministic. Every wait
 * in a task has a far deadline, so a broken promise fails the test rather
 * than hanging it. Counters are per task, so a task run twice or never
 * shows as a slot that is not exactly 1.
 */

#define FAR (30 * WEFT_SEC)

static void *
iptr(intptr_t v)
{
    return (void *)v;
}

static intptr_t
pint(void *p)
{
    return (intptr_t)p;
}

/* Live threads of this process (Linux: entries of /proc/self/task). */
static int
thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Wait (boundedly) for the thread count to come back to want: a joined
 * thread may linger in /proc for a moment after pthread_join returns. */
static int
await_threads(int want)
{
    weft_time_t dl = weft_deadline_in(FAR);
    int n;
    while ((n = thread_count()) != want && weft_now() < dl) {
        assert_int_equal(weft_sleep_for(WEFT_MSEC), WEFT_OK);
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Gate: a task that holds a worker until the test opens it                 */

typedef struct gate {
    weft_event_t started;
    weft_event_t open;
    _Atomic int runs;
    _Atomic int rc; /* what the gate's wait returned */
    _Atomic int saw_cancel;
} gate_t;

static void
gate_init(gate_t *g)
{
    memset(g, 0, sizeof(*g));
    weft_event_init(&g->started);
    weft_event_init(&g->open);
    atomic_store(&g->rc, 1);
}

static void *
gate_task(void *arg)
{
    gate_t *g = arg;
    atomic_fetch_add(&g->runs, 1);
    weft_event_set(&g->started);
    int rc = weft_event_wait_until(&g->open, weft_deadline_in(FAR));
    atomic_store(&g->rc, rc);
    atomic_store(&g->saw_cancel, weft_cancelled() ? 1 : 0);
    return iptr(77);
}

/* Occupy one worker of ex with g; returns the gate task's future. */
static weft_future_t *
block_worker(weft_executor_t *ex, gate_t *g)
{
    gate_init(g);
    weft_future_t *f = wt_submit(ex, gate_task, g, NULL);
    assert_int_equal(weft_event_wait_until(&g->started, weft_deadline_in(FAR)),
                     WEFT_OK);
    return f;
}

/* A task that counts its runs in the slot it is given. */
static void *
count_task(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
    return arg;
}

static void
count_spawn(void *arg)
{
    atomic_fetch_add((_Atomic int *)arg, 1);
}

static void
expect_slots(_Atomic int *slots, size_t n, int want)
{
    for (size_t i = 0; i < n; i++) {
        int v = atomic_load(&slots[i]);
        if (v != want) {
            fail_msg("slot %zu ran %d times, expected %d", i, v, want);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                  */

static void
test_create_defaults(void **state)
{
    (void)state;
    int before = thread_count();
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(NULL, &ex), WEFT_OK);
    assert_non_null(ex);
    assert_int_equal(weft_pool_workers(ex), (unsigned)weft_cpu_count());
    assert_string_equal(weft_executor_name(ex), "pool");
    assert_int_equal(thread_count(), before + weft_cpu_count());
    weft_future_t *f = wt_submit(ex, count_task, &(_Atomic int){0}, NULL);
    wt_wait_done(f);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    weft_future_release(f);
    weft_executor_destroy(ex);
    /* Destroy joins every worker. */
    assert_int_equal(await_threads(before), before);
}

static void
test_create_options(void **state)
{
    (void)state;
    int before = thread_count();
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    o.workers = 3;
    o.name = "calc";
    o.queue_capacity = 16;
    o.policy = WEFT_SUBMIT_REJECT;
    o.blocking_max = 2;
    o.blocking_queue_capacity = 4;
    o.blocking_idle = 100 * WEFT_MSEC;
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(&o, &ex), WEFT_OK);
    assert_int_equal(weft_pool_workers(ex), 3);
    assert_string_equal(weft_executor_name(ex), "calc");
    assert_int_equal(thread_count(), before + 3);
    weft_executor_destroy(ex);
    assert_int_equal(await_threads(before), before);

    /* Names are cut to 10 bytes. */
    o = (weft_pool_opts_t)WEFT_POOL_OPTS_INIT;
    o.workers = 1;
    o.name = "abcdefghijklmnop";
    assert_int_equal(weft_pool_create(&o, &ex), WEFT_OK);
    assert_string_equal(weft_executor_name(ex), "abcdefghij");
    weft_executor_destroy(ex);
}

static void
test_bad_options(void **state)
{
    (void)state;
    weft_pool_opts_t bad[6];
    for (size_t i = 0; i < 6; i++) {
        bad[i] = (weft_pool_opts_t)WEFT_POOL_OPTS_INIT;
        bad[i].workers = 1;
    }
    bad[0].workers = 1025;
    bad[1].policy = (weft_submit_policy_t)4;
    bad[2].policy = (weft_submit_policy_t)-1;
    bad[3].blocking_max = 5000;
    bad[4].blocking_idle = -1;
    bad[5].queue_capacity = ((size_t)1 << 30) + 1;
    weft_executor_t *sentinel = (weft_executor_t *)iptr(0x1234);
    for (size_t i = 0; i < 6; i++) {
        weft_executor_t *ex = sentinel;
        if (weft_pool_create(&bad[i], &ex) != WEFT_EINVAL) {
            fail_msg("bad option set %zu was accepted", i);
        }
        assert_ptr_equal(ex, sentinel); /* untouched on failure */
    }
    assert_int_equal(weft_pool_create(NULL, NULL), WEFT_EINVAL);
    /* The limits themselves are accepted. */
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    o.workers = 1;
    o.blocking_max = 4096;
    o.queue_capacity = (size_t)1 << 10;
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(&o, &ex), WEFT_OK);
    weft_executor_destroy(ex);
}

/* ------------------------------------------------------------------------ */
/* Submits, results, failures, labels                                        */

static void
test_submit_with_and_without_futures(void **state)
{
    (void)state;
    enum { N = 2000 };
    static _Atomic int ff[N], fut[N];
    memset(ff, 0, sizeof(ff));
    memset(fut, 0, sizeof(fut));
    weft_executor_t *ex = wt_pool(NULL, 2);
    static weft_future_t *fs[N];
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(
            weft_executor_submit(ex, count_task, &ff[i], NULL, NULL), WEFT_OK);
        fs[i] = wt_submit(ex, count_task, &fut[i], NULL);
    }
    for (size_t i = 0; i < N; i++) {
        void *v = NULL;
        assert_int_equal(weft_future_result(fs[i], &v), WEFT_OK);
        assert_ptr_equal(v, &fut[i]);
        assert_int_equal(weft_future_state(fs[i]), WEFT_FUTURE_DONE);
        assert_int_equal(weft_future_code(fs[i]), WEFT_OK);
        weft_future_release(fs[i]);
    }
    /* Waiting shutdown: every accepted fire-and-forget task has run. */
    assert_int_equal(weft_executor_shutdown(ex, true, false), WEFT_OK);
    expect_slots(ff, N, 1);
    expect_slots(fut, N, 1);
    weft_executor_destroy(ex);
}

static void *
fail_task(void *arg)
{
    (void)arg;
    return weft_task_fail(WEFT_EIO, "read %s: %d", "disk0", 5);
}

static void *
fail_twice_task(void *arg)
{
    (void)arg;
    (void)weft_task_fail(WEFT_ENOENT, "first");
    (void)weft_task_fail(WEFT_EIO, "second");
    return iptr(5); /* the failure stands whatever fn returns */
}

static void *
fail_positive_task(void *arg)
{
    (void)arg;
    return weft_task_fail(3, "positive code");
}

static void *
fail_long_task(void *arg)
{
    (void)arg;
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    return weft_task_fail(WEFT_EIO, "%s", big);
}

static void *
value_task(void *arg)
{
    return iptr(pint(arg) * 3);
}

static void
expect_failure(weft_executor_t *ex, weft_task_fn fn, int code, const char *msg)
{
    weft_future_t *f = wt_submit(ex, fn, NULL, NULL);
    void *v = iptr(0x55);
    assert_int_equal(weft_future_result(f, &v), code);
    assert_ptr_equal(v, iptr(0x55)); /* untouched on failure */
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_FAILED);
    assert_int_equal(weft_future_code(f), code);
    if (msg != NULL) {
        assert_string_equal(weft_future_error(f), msg);
    }
    weft_future_release(f);
}

static void
test_results_and_failures(void **state)
{
    (void)state;
    weft_executor_t *ex = wt_pool(NULL, 2);
    weft_future_t *f = wt_submit(ex, value_task, iptr(14), NULL);
    void *v = NULL;
    assert_int_equal(weft_future_result(f, &v), WEFT_OK);
    assert_int_equal(pint(v), 42);
    assert_string_equal(weft_future_error(f), "");
    weft_future_release(f);

    expect_failure(ex, fail_task, WEFT_EIO, "read disk0: 5");
    expect_failure(ex, fail_twice_task, WEFT_ENOENT, "first");
    expect_failure(ex, fail_positive_task, WEFT_EINVAL, "positive code");

    f = wt_submit(ex, fail_long_task, NULL, NULL);
    wt_wait_done(f);
    assert_int_equal(weft_future_code(f), WEFT_EIO);
    const char *m = weft_future_error(f);
    size_t len = strlen(m);
    assert_true(len >= 1000 && len <= 1024); /* truncated to 1 KiB */
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(m[i], 'x');
    }
    weft_future_release(f);

    /* Outside a task weft_task_fail only logs, and returns NULL. */
    weft_log_set_level(WEFT_LOG_OFF);
    assert_null(weft_task_fail(WEFT_EIO, "outside"));
    weft_log_set_level(WEFT_LOG_WARN);
    weft_executor_destroy(ex);
}

static void *
label_task(void *arg)
{
    const char **out = arg;
    *out = weft_task_label();
    return NULL;
}

static void
test_labels(void **state)
{
    (void)state;
    static const char lbl[] = "fetch-index";
    weft_executor_t *ex = wt_pool(NULL, 2);
    assert_null(weft_task_label());
    const char *seen = iptr(1);
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.label = lbl;
    weft_future_t *f = wt_submit(ex, label_task, (void *)&seen, &o);
    wt_wait_done(f);
    weft_future_release(f);
    assert_ptr_equal(seen, lbl);

    seen = iptr(1);
    f = wt_submit(ex, label_task, (void *)&seen, NULL);
    wt_wait_done(f);
    weft_future_release(f);
    assert_null(seen);

    /* On the blocking lane too. */
    seen = iptr(1);
    o.blocking = true;
    f = wt_submit(ex, label_task, (void *)&seen, &o);
    wt_wait_done(f);
    weft_future_release(f);
    assert_ptr_equal(seen, lbl);
    weft_executor_destroy(ex);
}

/* ------------------------------------------------------------------------ */
/* Priority and start deadlines                                              */

typedef struct order_rec {
    _Atomic int *next;
    int pos;
} order_rec_t;

static void *
order_task(void *arg)
{
    order_rec_t *r = arg;
    r->pos = atomic_fetch_add(r->next, 1);
    return NULL;
}

static void
test_priority(void **state)
{
    (void)state;
    enum { NORMAL = 40, HIGH = 3 };
    weft_executor_t *ex = wt_pool(NULL, 1);
    gate_t g;
    weft_future_t *gf = block_worker(ex, &g);
    _Atomic int next = 0;
    order_rec_t recs[NORMAL + HIGH];
    weft_future_t *fs[NORMAL + HIGH];
    for (size_t i = 0; i < NORMAL + HIGH; i++) {
        recs[i] = (order_rec_t){&next, -1};
        weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
        o.priority = i >= NORMAL ? 5 : 0;
        fs[i] = wt_submit(ex, order_task, &recs[i], &o);
    }
    weft_event_set(&g.open);
    for (size_t i = 0; i < NORMAL + HIGH; i++) {
        wt_wait_done(fs[i]);
        weft_future_release(fs[i]);
    }
    /* The priority tasks, queued last, ran first. */
    for (size_t i = NORMAL; i < NORMAL + HIGH; i++) {
        if (recs[i].pos >= HIGH) {
            fail_msg("priority task %zu ran at position %d", i - NORMAL,
                     recs[i].pos);
        }
    }
    assert_int_equal(atomic_load(&next), NORMAL + HIGH);
    wt_wait_done(gf);
    weft_future_release(gf);
    weft_executor_destroy(ex);
}

static void
test_start_deadline(void **state)
{
    (void)state;
    weft_executor_t *ex = wt_pool(NULL, 1);
    _Atomic int runs[4] = {0};

    /* A deadline already past: never runs, CANCELLED. */
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.start_deadline = weft_now() - 1;
    weft_future_t *f = wt_submit(ex, count_task, &runs[0], &o);
    wt_wait_done(f);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_CANCELLED);
    assert_int_equal(weft_future_result(f, NULL), WEFT_ECANCELED);
    weft_future_release(f);

    /* Fire-and-forget with a past deadline: never runs either. */
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[1], &o, NULL),
                     WEFT_OK);

    /* A deadline that passes while the task waits in the queue. */
    gate_t g;
    weft_future_t *gf = block_worker(ex, &g);
    o.start_deadline = weft_deadline_in(20 * WEFT_MSEC);
    f = wt_submit(ex, count_task, &runs[2], &o);
    /* A far deadline: runs. */
    o.start_deadline = weft_deadline_in(FAR);
    weft_future_t *ok = wt_submit(ex, count_task, &runs[3], &o);
    assert_int_equal(weft_sleep_for(60 * WEFT_MSEC), WEFT_OK);
    weft_event_set(&g.open);
    wt_wait_done(f);
    wt_wait_done(ok);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_CANCELLED);
    assert_int_equal(weft_future_state(ok), WEFT_FUTURE_DONE);
    weft_future_release(f);
    weft_future_release(ok);
    wt_wait_done(gf);
    weft_future_release(gf);
    assert_int_equal(weft_executor_shutdown(ex, true, false), WEFT_OK);
    assert_int_equal(atomic_load(&runs[0]), 0);
    assert_int_equal(atomic_load(&runs[1]), 0);
    assert_int_equal(atomic_load(&runs[2]), 0);
    assert_int_equal(atomic_load(&runs[3]), 1);
    weft_executor_destroy(ex);
}

/* ------------------------------------------------------------------------ */
/* Result destructors                                                        */

static _Atomic int dtor_calls;
static _Atomic(void *) dtor_last;

static void
count_dtor(void *v)
{
    atomic_store(&dtor_last, v);
    atomic_fetch_add(&dtor_calls, 1);
    free(v);
}

/* Wait (boundedly) until *c reaches want, then check it stays there. */
static void
await_count(_Atomic int *c, int want)
{
    weft_time_t dl = weft_deadline_in(FAR);
    while (atomic_load(c) < want && weft_now() < dl) {
        assert_int_equal(weft_sleep_for(WEFT_MSEC), WEFT_OK);
    }
    assert_int_equal(weft_sleep_for(20 * WEFT_MSEC), WEFT_OK);
    assert_int_equal(atomic_load(c), want);
}

static void *
alloc_task(void *arg)
{
    int *p = malloc(sizeof(*p));
    assert_non_null(p);
    *p = (int)pint(arg);
    return p;
}

static void
test_result_dtor(void **state)
{
    (void)state;
    weft_executor_t *ex = wt_pool(NULL, 2);
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.result_dtor = count_dtor;

    /* Nobody takes the result: the destructor runs once, at release. */
    atomic_store(&dtor_calls, 0);
    weft_future_t *f = wt_submit(ex, alloc_task, iptr(7), &o);
    void *v = NULL;
    assert_int_equal(weft_future_result(f, &v), WEFT_OK);
    assert_int_equal(*(int *)v, 7);
    assert_int_equal(atomic_load(&dtor_calls), 0);
    /* The worker may still hold the queue's reference for a moment: the
     * destructor runs when the last one goes. */
    weft_future_release(f);
    await_count(&dtor_calls, 1);
    assert_ptr_equal(atomic_load(&dtor_last), v);

    /* Taken: the destructor never runs; the value is ours. */
    atomic_store(&dtor_calls, 0);
    f = wt_submit(ex, alloc_task, iptr(8), &o);
    v = NULL;
    assert_int_equal(weft_future_take_result(f, &v), WEFT_OK);
    assert_int_equal(*(int *)v, 8);
    weft_future_release(f);
    free(v);

    /* A failed task has no result to destroy. */
    f = wt_submit(ex, fail_task, NULL, &o);
    wt_wait_done(f);
    weft_future_release(f);
    assert_int_equal(weft_executor_shutdown(ex, true, false), WEFT_OK);
    weft_executor_destroy(ex); /* every reference is gone now */
    assert_int_equal(atomic_load(&dtor_calls), 0);
    ex = wt_pool(NULL, 2);

    /* Fire-and-forget with a destructor: the result is destroyed once. */
    atomic_store(&dtor_calls, 0);
    assert_int_equal(weft_executor_submit(ex, alloc_task, iptr(9), &o, NULL),
                     WEFT_OK);
    assert_int_equal(weft_executor_shutdown(ex, true, false), WEFT_OK);
    await_count(&dtor_calls, 1);
    weft_executor_destroy(ex);
    assert_int_equal(atomic_load(&dtor_calls), 1);
}

/* ------------------------------------------------------------------------ */
/* Thread names and weft_pool_current                                        */

typedef struct where {
    char name[WEFT_THREAD_NAME_MAX + 1];
    weft_executor_t *current;
    uint32_t tid;
} where_t;

static void *
where_task(void *arg)
{
    where_t *w = arg;
    snprintf(w->name, sizeof(w->name), "%s", weft_thread_name());
    w->current = weft_pool_current();
    w->tid = weft_thread_id();
    return NULL;
}

/* Whether name is "<prefix>/<sep><n>" with n < limit. */
static bool
name_matches(const char *name, const char *prefix, const char *sep,
             unsigned limit)
{
    size_t pl = strlen(prefix), sl = strlen(sep);
    if (strncmp(name, prefix, pl) != 0 || name[pl] != '/' ||
        strncmp(name + pl + 1, sep, sl) != 0) {
        return false;
    }
    const char *num = name + pl + 1 + sl;
    char *end = NULL;
    unsigned long n = strtoul(num, &end, 10);
    return end != num && *end == '\0' && n < limit;
}

static void
test_worker_names_and_current(void **state)
{
    (void)state;
    enum { N = 64 };
    weft_pool_opts_t po = WEFT_POOL_OPTS_INIT;
    po.workers = 3;
    po.name = "calc";
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(&po, &ex), WEFT_OK);
    weft_executor_t *other = wt_pool(NULL, 1);
    assert_null(weft_pool_current());

    static where_t w[N];
    weft_future_t *fs[N];
    for (size_t i = 0; i < N; i++) {
        fs[i] = wt_submit(ex, where_task, &w[i], NULL);
    }
    for (size_t i = 0; i < N; i++) {
        wt_wait_done(fs[i]);
        weft_future_release(fs[i]);
        if (!name_matches(w[i].name, "calc", "", 3)) {
            fail_msg("task %zu ran on a thread named \"%s\"", i, w[i].name);
        }
        assert_ptr_equal(w[i].current, ex);
    }

    /* Blocking-lane threads are "<pool>/io<n>" and belong to the pool. */
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.blocking = true;
    where_t lw;
    weft_future_t *f = wt_submit(ex, where_task, &lw, &o);
    wt_wait_done(f);
    weft_future_release(f);
    if (!name_matches(lw.name, "calc", "io", 64)) {
        fail_msg("blocking task ran on a thread named \"%s\"", lw.name);
    }
    assert_ptr_equal(lw.current, ex);

    /* Default name; and the other pool's tasks see the other pool. */
    where_t ow;
    f = wt_submit(other, where_task, &ow, NULL);
    wt_wait_done(f);
    weft_future_release(f);
    assert_string_equal(ow.name, "pool/0");
    assert_ptr_equal(ow.current, other);
    assert_null(weft_pool_current());
    weft_executor_destroy(other);
    weft_executor_destroy(ex);
}

/* ------------------------------------------------------------------------ */
/* Submit policies on a full queue                                           */

static void
test_submit_policies(void **state)
{
    (void)state;
    enum { CAP = 4 };
    weft_pool_opts_t po = WEFT_POOL_OPTS_INIT;
    po.workers = 1;
    po.queue_capacity = CAP;
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(&po, &ex), WEFT_OK);
    gate_t g;
    weft_future_t *gf = block_worker(ex, &g);

    static _Atomic int runs[16];
    memset(runs, 0, sizeof(runs));
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.policy = WEFT_SUBMIT_REJECT;
    size_t accepted = 0;
    int rc;
    while ((rc = weft_executor_submit(ex, count_task, &runs[accepted], &o,
                                      NULL)) == WEFT_OK) {
        accepted++;
        assert_true(accepted < 16);
    }
    assert_int_equal(rc, WEFT_EAGAIN);
    assert_int_equal(accepted, CAP); /* the worker takes nothing meanwhile */

    /* REJECT with a future: EAGAIN, *out untouched. */
    weft_future_t *sentinel = iptr(0x77), *f = sentinel;
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[10], &o, &f),
                     WEFT_EAGAIN);
    assert_ptr_equal(f, sentinel);

    /* BLOCK until a deadline: ETIMEDOUT after waiting for it. */
    o.policy = WEFT_SUBMIT_BLOCK;
    o.submit_deadline = weft_deadline_in(50 * WEFT_MSEC);
    weft_time_t t0 = weft_now();
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[11], &o, &f),
                     WEFT_ETIMEDOUT);
    assert_true(weft_now() - t0 >= 45 * WEFT_MSEC);
    assert_ptr_equal(f, sentinel);

    /* CALLER_RUNS: runs on this thread, finished when submit returns. */
    o = (weft_task_opts_t)WEFT_TASK_OPTS_INIT;
    o.policy = WEFT_SUBMIT_CALLER_RUNS;
    where_t w;
    memset(&w, 0, sizeof(w));
    assert_int_equal(weft_executor_submit(ex, where_task, &w, &o, &f), WEFT_OK);
    assert_int_equal(w.tid, weft_thread_id());
    assert_null(w.current);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    weft_future_release(f);
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[12], &o, NULL),
                     WEFT_OK);
    assert_int_equal(atomic_load(&runs[12]), 1);

    /* Nothing accepted has run yet; the refused tasks never do. */
    for (size_t i = 0; i < CAP; i++) {
        assert_int_equal(atomic_load(&runs[i]), 0);
    }
    weft_event_set(&g.open);
    wt_wait_done(gf);
    weft_future_release(gf);
    assert_int_equal(weft_executor_shutdown(ex, true, false), WEFT_OK);
    expect_slots(runs, CAP, 1);
    assert_int_equal(atomic_load(&runs[10]), 0);
    assert_int_equal(atomic_load(&runs[11]), 0);
    assert_int_equal(atomic_load(&runs[12]), 1);
    weft_executor_destroy(ex);
}

/* The pool's own policy applies to submits that leave it at DEFAULT. */
static void
test_pool_default_policy(void **state)
{
    (void)state;
    weft_pool_opts_t po = WEFT_POOL_OPTS_INIT;
    po.workers = 1;
    po.queue_capacity = 2;
    po.policy = WEFT_SUBMIT_REJECT;
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(&po, &ex), WEFT_OK);
    gate_t g;
    weft_future_t *gf = block_worker(ex, &g);
    _Atomic int runs[3] = {0};
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[0], NULL, NULL),
                     WEFT_OK);
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[1], NULL, NULL),
                     WEFT_OK);
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[2], NULL, NULL),
                     WEFT_EAGAIN);
    weft_event_set(&g.open);
    wt_wait_done(gf);
    weft_future_release(gf);
    assert_int_equal(weft_executor_shutdown(ex, true, false), WEFT_OK);
    expect_slots(runs, 2, 1);
    assert_int_equal(atomic_load(&runs[2]), 0);
    weft_executor_destroy(ex);
}

/* The blocking lane has its own bound and applies the policies too. */
static void
test_lane_policies(void **state)
{
    (void)state;
    weft_pool_opts_t po = WEFT_POOL_OPTS_INIT;
    po.workers = 1;
    po.blocking_max = 1;
    po.blocking_queue_capacity = 2;
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(&po, &ex), WEFT_OK);
    gate_t g;
    gate_init(&g);
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.blocking = true;
    weft_future_t *gf = wt_submit(ex, gate_task, &g, &o);
    assert_int_equal(weft_event_wait_until(&g.started, weft_deadline_in(FAR)),
                     WEFT_OK);
    _Atomic int runs[4] = {0};
    o.policy = WEFT_SUBMIT_REJECT;
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[0], &o, NULL),
                     WEFT_OK);
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[1], &o, NULL),
                     WEFT_OK);
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[2], &o, NULL),
                     WEFT_EAGAIN);
    o.policy = WEFT_SUBMIT_BLOCK;
    o.submit_deadline = weft_deadline_in(30 * WEFT_MSEC);
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[3], &o, NULL),
                     WEFT_ETIMEDOUT);
    weft_event_set(&g.open);
    wt_wait_done(gf);
    weft_future_release(gf);
    assert_int_equal(weft_executor_shutdown(ex, true, false), WEFT_OK);
    expect_slots(runs, 2, 1);
    assert_int_equal(atomic_load(&runs[2]), 0);
    assert_int_equal(atomic_load(&runs[3]), 0);
    weft_executor_destroy(ex);
}

/* ------------------------------------------------------------------------ */
/* Shutdown                                                                  */

static void
test_shutdown_wait_then_submit(void **state)
{
    (void)state;
    enum { N = 500 };
    static _Atomic int runs[N + 1];
    memset(runs, 0, sizeof(runs));
    weft_executor_t *ex = wt_pool(NULL, 2);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(
            weft_executor_submit(ex, count_task, &runs[i], NULL, NULL),
            WEFT_OK);
    }
    assert_int_equal(weft_executor_shutdown(ex, true, false), WEFT_OK);
    expect_slots(runs, N, 1);
    /* Idempotent. */
    assert_int_equal(weft_executor_shutdown(ex, true, false), WEFT_OK);
    assert_int_equal(weft_executor_shutdown(ex, false, true), WEFT_OK);

    weft_future_t *sentinel = iptr(0x99), *f = sentinel;
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[N], NULL, NULL),
                     WEFT_ESHUTDOWN);
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[N], NULL, &f),
                     WEFT_ESHUTDOWN);
    assert_ptr_equal(f, sentinel);
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.blocking = true;
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[N], &o, &f),
                     WEFT_ESHUTDOWN);
    assert_int_equal(
        weft_pool_call_later(ex, WEFT_MSEC, count_task, &runs[N], NULL, &f),
        WEFT_ESHUTDOWN);
    assert_ptr_equal(f, sentinel);
    /* A group child spawned from outside is a submit too. */
    weft_group_t g;
    assert_int_equal(weft_group_init(&g, ex), WEFT_OK);
    assert_int_equal(weft_group_spawn(&g, count_spawn, &runs[N]),
                     WEFT_ESHUTDOWN);
    assert_int_equal(weft_group_wait(&g), WEFT_OK);
    weft_executor_destroy(ex);
    assert_int_equal(atomic_load(&runs[N]), 0);
}

static void
test_shutdown_cancel_pending(void **state)
{
    (void)state;
    enum { Q = 8 };
    weft_pool_opts_t po = WEFT_POOL_OPTS_INIT;
    po.workers = 1;
    po.blocking_max = 1;
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(&po, &ex), WEFT_OK);
    gate_t g, lg;
    weft_future_t *gf = block_worker(ex, &g);
    /* The lane's only thread is held as well. */
    gate_init(&lg);
    weft_task_opts_t lo = WEFT_TASK_OPTS_INIT;
    lo.blocking = true;
    weft_future_t *lgf = wt_submit(ex, gate_task, &lg, &lo);
    assert_int_equal(weft_event_wait_until(&lg.started, weft_deadline_in(FAR)),
                     WEFT_OK);

    _Atomic int runs[2 * Q + 2] = {0};
    weft_future_t *fs[Q];
    for (size_t i = 0; i < Q; i++) {
        fs[i] = wt_submit(ex, count_task, &runs[i], NULL);
        assert_int_equal(
            weft_executor_submit(ex, count_task, &runs[Q + i], NULL, NULL),
            WEFT_OK);
    }
    weft_future_t *lf = wt_submit(ex, count_task, &runs[2 * Q], &lo);
    weft_future_t *tf = NULL;
    assert_int_equal(weft_pool_call_later(ex, 10 * WEFT_SEC, count_task,
                                          &runs[2 * Q + 1], NULL, &tf),
                     WEFT_OK);

    assert_int_equal(weft_executor_shutdown(ex, false, true), WEFT_OK);
    /* Queued work is cancelled by the time shutdown returns. */
    for (size_t i = 0; i < Q; i++) {
        assert_int_equal(weft_future_state(fs[i]), WEFT_FUTURE_CANCELLED);
    }
    assert_int_equal(weft_future_state(lf), WEFT_FUTURE_CANCELLED);
    assert_int_equal(weft_future_state(tf), WEFT_FUTURE_CANCELLED);
    /* The running tasks had their tokens set: their waits end with
     * WEFT_ECANCELED and they finish with their own result. */
    weft_event_set(&g.open);
    weft_event_set(&lg.open);
    assert_int_equal(weft_executor_shutdown(ex, true, true), WEFT_OK);
    assert_true(weft_future_done(gf) && weft_future_done(lgf));
    assert_int_equal(atomic_load(&g.rc), WEFT_ECANCELED);
    assert_int_equal(atomic_load(&lg.rc), WEFT_ECANCELED);
    assert_int_equal(atomic_load(&g.saw_cancel), 1);
    void *v = NULL;
    assert_int_equal(weft_future_result(gf, &v), WEFT_OK);
    assert_int_equal(pint(v), 77);
    assert_int_equal(weft_future_result(lgf, &v), WEFT_OK);
    assert_int_equal(pint(v), 77);
    expect_slots(runs, 2 * Q + 2, 0);
    for (size_t i = 0; i < Q; i++) {
        weft_future_release(fs[i]);
    }
    weft_future_release(lf);
    weft_future_release(tf);
    weft_future_release(gf);
    weft_future_release(lgf);
    weft_executor_destroy(ex);
}

typedef struct inside {
    int rc_wait;
    int rc_nowait;
} inside_t;

static void *
shutdown_inside_task(void *arg)
{
    inside_t *in = arg;
    in->rc_wait = weft_executor_shutdown(weft_pool_current(), true, false);
    in->rc_nowait = weft_executor_shutdown(weft_pool_current(), false, false);
    return NULL;
}

static void *
shutdown_inside_wait_only(void *arg)
{
    inside_t *in = arg;
    in->rc_wait = weft_executor_shutdown(weft_pool_current(), true, false);
    return NULL;
}

static void
test_shutdown_from_inside(void **state)
{
    (void)state;
    weft_executor_t *ex = wt_pool(NULL, 2);
    /* From the blocking lane: EDEADLK as well, and the pool still runs. */
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.blocking = true;
    inside_t lin = {1, 1};
    weft_future_t *f = wt_submit(ex, shutdown_inside_wait_only, &lin, &o);
    wt_wait_done(f);
    weft_future_release(f);
    assert_int_equal(lin.rc_wait, WEFT_EDEADLK);

    inside_t in = {1, 1};
    f = wt_submit(ex, shutdown_inside_task, &in, NULL);
    wt_wait_done(f);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    weft_future_release(f);
    assert_int_equal(in.rc_wait, WEFT_EDEADLK);
    assert_int_equal(in.rc_nowait, WEFT_OK);
    /* The non-waiting shutdown from inside took effect. */
    assert_int_equal(weft_executor_submit(ex, value_task, NULL, NULL, NULL),
                     WEFT_ESHUTDOWN);
    assert_int_equal(weft_executor_shutdown(ex, true, false), WEFT_OK);
    weft_executor_destroy(ex);
}

/* ------------------------------------------------------------------------ */
/* The inline executor                                                       */

static void
test_inline_executor(void **state)
{
    (void)state;
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_inline_executor_create(&ex), WEFT_OK);
    assert_string_equal(weft_executor_name(ex), "inline");
    assert_int_equal(weft_pool_workers(ex), 0);

    where_t w;
    memset(&w, 0, sizeof(w));
    weft_future_t *f = NULL;
    assert_int_equal(weft_executor_submit(ex, where_task, &w, NULL, &f),
                     WEFT_OK);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE); /* at once */
    assert_int_equal(w.tid, weft_thread_id());
    assert_null(w.current);
    weft_future_release(f);

    f = wt_submit(ex, value_task, iptr(5), NULL);
    assert_true(weft_future_done(f));
    void *v = NULL;
    assert_int_equal(weft_future_result(f, &v), WEFT_OK);
    assert_int_equal(pint(v), 15);
    weft_future_release(f);

    f = wt_submit(ex, fail_task, NULL, NULL);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_FAILED);
    assert_int_equal(weft_future_code(f), WEFT_EIO);
    assert_string_equal(weft_future_error(f), "read disk0: 5");
    weft_future_release(f);

    static const char lbl[] = "inline-label";
    const char *seen = NULL;
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.label = lbl;
    f = wt_submit(ex, label_task, (void *)&seen, &o);
    weft_future_release(f);
    assert_ptr_equal(seen, lbl);
    assert_null(weft_task_label()); /* left the task */

    _Atomic int runs[2] = {0};
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[0], NULL, NULL),
                     WEFT_OK);
    assert_int_equal(atomic_load(&runs[0]), 1);
    o = (weft_task_opts_t)WEFT_TASK_OPTS_INIT;
    o.start_deadline = weft_now() - 1;
    f = wt_submit(ex, count_task, &runs[1], &o);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_CANCELLED);
    weft_future_release(f);
    assert_int_equal(atomic_load(&runs[1]), 0);

    assert_int_equal(weft_executor_shutdown(ex, true, false), WEFT_OK);
    assert_int_equal(weft_executor_submit(ex, count_task, &runs[1], NULL, NULL),
                     WEFT_ESHUTDOWN);
    assert_int_equal(atomic_load(&runs[1]), 0);
    weft_executor_destroy(ex);
}

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */

typedef struct stamp {
    _Atomic weft_time_t at;
} stamp_t;

static void *
stamp_task(void *arg)
{
    atomic_store(&((stamp_t *)arg)->at, weft_now());
    return NULL;
}

static void
test_call_later_runs_after_delay(void **state)
{
    (void)state;
    weft_executor_t *ex = wt_pool(NULL, 2);
    stamp_t s = {0};
    weft_time_t t0 = weft_now();
    weft_future_t *f = NULL;
    assert_int_equal(
        weft_pool_call_later(ex, 50 * WEFT_MSEC, stamp_task, &s, NULL, &f),
        WEFT_OK);
    wt_wait_done(f);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    weft_time_t at = atomic_load(&s.at);
    assert_true(at - t0 >= 50 * WEFT_MSEC);
    assert_true(at - t0 < 5 * WEFT_SEC);
    weft_future_release(f);

    /* A zero delay runs at once; no future wanted. */
    _Atomic int runs = 0;
    assert_int_equal(
        weft_pool_call_later(ex, 0, count_task, (void *)&runs, NULL, NULL),
        WEFT_OK);
    weft_time_t dl = weft_deadline_in(FAR);
    while (atomic_load(&runs) == 0 && weft_now() < dl) {
        assert_int_equal(weft_sleep_for(WEFT_MSEC), WEFT_OK);
    }
    assert_int_equal(atomic_load(&runs), 1);
    weft_executor_destroy(ex);
}

/* ------------------------------------------------------------------------ */
/* An idle pool uses no CPU                                                  */

static weft_time_t
cpu_time(void)
{
    struct rusage ru;
    assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
    return (weft_time_t)ru.ru_utime.tv_sec * WEFT_SEC +
           (weft_time_t)ru.ru_utime.tv_usec * WEFT_USEC +
           (weft_time_t)ru.ru_stime.tv_sec * WEFT_SEC +
           (weft_time_t)ru.ru_stime.tv_usec * WEFT_USEC;
}

static void
test_idle_pool_uses_no_cpu(void **state)
{
    (void)state;
    weft_executor_t *ex = wt_pool(NULL, 4);
    _Atomic int runs[64] = {0};
    for (size_t i = 0; i < 64; i++) {
        assert_int_equal(
            weft_executor_submit(ex, count_task, &runs[i], NULL, NULL),
            WEFT_OK);
    }
    /* Let the workers finish, spin out and park. */
    assert_int_equal(weft_sleep_for(100 * WEFT_MSEC), WEFT_OK);
    expect_slots(runs, 64, 1);
    weft_time_t c0 = cpu_time();
    assert_int_equal(weft_sleep_for(300 * WEFT_MSEC), WEFT_OK);
    weft_time_t used = cpu_time() - c0;
    printf("idle pool: %lld us of CPU in 300 ms\n",
           (long long)(used / WEFT_USEC));
    assert_true(used < 20 * WEFT_MSEC);
    weft_executor_destroy(ex);
}

/* ------------------------------------------------------------------------ */
/* Regression tests for bugs found and fixed                                 */

/*
 * Regression: a worker that finds a task while it searches (the
 * spin phase of its idle wait) runs it still counted as searching, so
 * while that task blocks, every submit sees a searcher and wakes nobody:
 * a task queued next waits for the blocked one although other workers
 * sleep idle. Each round: a worker finishes a short task and spins; a
 * blocking task submitted then is found by that spinner; a third task must
 * still run promptly on the other, idle worker.
 */
typedef struct searcher {
    weft_event_t q_done, a_started, gate;
} searcher_t;

static void *
q_task(void *arg)
{
    weft_event_set(&((searcher_t *)arg)->q_done);
    return NULL;
}

static void *
a_task(void *arg)
{
    searcher_t *s = arg;
    weft_event_set(&s->a_started);
    int rc = weft_event_wait_until(&s->gate, weft_deadline_in(FAR));
    (void)rc;
    return NULL;
}

static void
test_idle_worker_woken_while_a_searcher_blocks(void **state)
{
    (void)state;
    enum { ROUNDS = 20 };
    weft_executor_t *ex = wt_pool(NULL, 2);
    int stuck = 0;
    for (int r = 0; r < ROUNDS; r++) {
        searcher_t s;
        weft_event_init(&s.q_done);
        weft_event_init(&s.a_started);
        weft_event_init(&s.gate);
        assert_int_equal(weft_sleep_for(20 * WEFT_MSEC), WEFT_OK);
        assert_int_equal(weft_executor_submit(ex, q_task, &s, NULL, NULL),
                         WEFT_OK);
        assert_int_equal(
            weft_event_wait_until(&s.q_done, weft_deadline_in(FAR)), WEFT_OK);
        weft_future_t *fa = wt_submit(ex, a_task, &s, NULL);
        assert_int_equal(
            weft_event_wait_until(&s.a_started, weft_deadline_in(FAR)),
            WEFT_OK);
        weft_future_t *fb = wt_submit(ex, value_task, iptr(1), NULL);
        if (weft_future_wait_until(fb, weft_deadline_in(WEFT_SEC)) ==
            WEFT_ETIMEDOUT) {
            stuck++;
        }
        weft_event_set(&s.gate);
        wt_wait_done(fa);
        wt_wait_done(fb);
        weft_future_release(fa);
        weft_future_release(fb);
    }
    weft_executor_destroy(ex);
    /* A loaded machine may delay one round; the bug stalled most. */
    if (stuck > 1) {
        fail_msg("in %d of %d rounds a task waited behind a blocked task "
                 "while a worker slept idle",
                 stuck, ROUNDS);
    }
}

/*
 * Regression: timers are kept by one sleeping worker (the keeper).
 * When a submit wakes the keeper to run a task, the role is dropped and
 * the other idle workers sleep without a deadline: a due timer waits for
 * the busy worker, though a worker is idle. "The pool's idle workers
 * sleep until the earliest timer" (pool.h).
 */
typedef struct busy {
    weft_event_t never;
} busy_t;

static void *
busy_task(void *arg)
{
    busy_t *b = arg;
    int rc =
        weft_event_wait_until(&b->never, weft_deadline_in(400 * WEFT_MSEC));
    (void)rc;
    return NULL;
}

static void
test_call_later_on_time_while_a_worker_is_busy(void **state)
{
    (void)state;
    enum { ROUNDS = 5 };
    weft_executor_t *ex = wt_pool(NULL, 2);
    int late = 0;
    for (int r = 0; r < ROUNDS; r++) {
        /* Both workers asleep, then one becomes the timer's keeper. */
        assert_int_equal(weft_sleep_for(50 * WEFT_MSEC), WEFT_OK);
        stamp_t st = {0};
        weft_time_t t0 = weft_now();
        weft_future_t *tf = NULL;
        assert_int_equal(weft_pool_call_later(ex, 50 * WEFT_MSEC, stamp_task,
                                              &st, NULL, &tf),
                         WEFT_OK);
        assert_int_equal(weft_sleep_for(20 * WEFT_MSEC), WEFT_OK);
        busy_t b;
        weft_event_init(&b.never);
        weft_future_t *bf = wt_submit(ex, busy_task, &b, NULL);
        wt_wait_done(tf);
        weft_time_t took = atomic_load(&st.at) - t0;
        if (took > 250 * WEFT_MSEC) {
            printf("round %d: a 50 ms timer ran after %lld ms\n", r,
                   (long long)(took / WEFT_MSEC));
            late++;
        }
        wt_wait_done(bf);
        weft_future_release(tf);
        weft_future_release(bf);
    }
    weft_executor_destroy(ex);
    /* A loaded machine may delay one timer; the bug delayed them all. */
    if (late > 1) {
        fail_msg("%d of %d timers ran late while a worker was idle", late,
                 ROUNDS);
    }
}

static void *
nothing(void *arg)
{
    return arg;
}

/* Sanitizer runtimes start helper threads with the first thread: start
 * one now, so that thread counts taken by the tests are stable. */
static void
warm_up(void)
{
    weft_thread_t *t = NULL;
    if (weft_thread_create(NULL, nothing, NULL, &t) == WEFT_OK) {
        int rc = weft_thread_join(t, NULL);
        (void)rc;
    }
    /* And let the joined thread leave /proc. */
    int rc = weft_sleep_for(20 * WEFT_MSEC);
    (void)rc;
}

int
main(void)
{
    warm_up();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_defaults),
        cmocka_unit_test(test_create_options),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_submit_with_and_without_futures),
        cmocka_unit_test(test_results_and_failures),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_priority),
        cmocka_unit_test(test_start_deadline),
        cmocka_unit_test(test_result_dtor),
        cmocka_unit_test(test_worker_names_and_current),
        cmocka_unit_test(test_submit_policies),
        cmocka_unit_test(test_pool_default_policy),
        cmocka_unit_test(test_lane_policies),
        cmocka_unit_test(test_shutdown_wait_then_submit),
        cmocka_unit_test(test_shutdown_cancel_pending),
        cmocka_unit_test(test_shutdown_from_inside),
        cmocka_unit_test(test_inline_executor),
        cmocka_unit_test(test_call_later_runs_after_delay),
        cmocka_unit_test(test_idle_pool_uses_no_cpu),
        /* Known bugs: these fail until the implementation is fixed. */
        cmocka_unit_test(test_idle_worker_woken_while_a_searcher_blocks),
        cmocka_unit_test(test_call_later_on_time_while_a_worker_is_busy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
