/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for timeline traces (<weft/trace.h>): the written file is valid
 * Chrome Trace Event JSON whose slices nest on every thread, a pool workload
 * gives exactly its tasks with their labels, ids and parents, waits sit
 * inside their task, the ring bound holds, start and stop work at run time,
 * and a stopped trace records nothing. The files are read back by
 * tests/support/trace_check.py (path in WEFT_TRACE_CHECK).
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"

#if !defined(WEFT_TRACE_CHECK) || !defined(WEFT_PYTHON)
#error "WEFT_TRACE_CHECK, WEFT_PYTHON: trace_check.py and its interpreter"
#endif

#define MAX_LINES 8192

typedef struct task_line {
    char label[64];
    unsigned long long id, parent;
    int unfinished;
} task_line_t;

typedef struct wait_line {
    char kind[32];
    char in_task[64];
} wait_line_t;

/* What trace_check.py says about a trace file. */
typedef struct summary {
    int valid;
    long threads, dropped, bad_dur, bad_nesting, unmatched, unfinished;
    long submits, steals;
    task_line_t *tasks;
    size_t ntasks;
    wait_line_t *waits;
    size_t nwaits;
} summary_t;

static char tmp_dir[256];

static int
setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/weft-test-trace-XXXXXX",
             t != NULL && *t ? t : "/tmp");
    return mkdtemp(tmp_dir) != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void
path_of(char *out, size_t n, const char *name)
{
    int w = snprintf(out, n, "%s/%s", tmp_dir, name);
    assert_true(w > 0 && (size_t)w < n);
}

static void
summary_free(summary_t *s)
{
    free(s->tasks);
    free(s->waits);
}

static void
parse_line(summary_t *s, const char *line)
{
    char word[32], a[64], b[64];
    long v;
    unsigned long long id, parent;
    int unf;
    if (sscanf(line, "task %63s %llu %llu %d", a, &id, &parent, &unf) == 4) {
        assert_true(s->ntasks < MAX_LINES);
        task_line_t *t = &s->tasks[s->ntasks++];
        snprintf(t->label, sizeof t->label, "%s", a);
        t->id = id;
        t->parent = parent;
        t->unfinished = unf;
    } else if (sscanf(line, "wait %31s %63s", word, b) == 2) {
        assert_true(s->nwaits < MAX_LINES);
        wait_line_t *w = &s->waits[s->nwaits++];
        snprintf(w->kind, sizeof w->kind, "%s", word);
        snprintf(w->in_task, sizeof w->in_task, "%s", b);
    } else if (sscanf(line, "instant %31s %ld", word, &v) == 2) {
        if (strcmp(word, "submit") == 0) {
            s->submits = v;
        } else if (strcmp(word, "steal") == 0) {
            s->steals = v;
        }
    } else if (sscanf(line, "%31s %ld", word, &v) == 2) {
        static const char *const keys[] = {
            "valid",       "threads",   "dropped",   "bad_dur",
            "bad_nesting", "unmatched", "unfinished"};
        long *dst[] = {NULL,          &s->threads,     &s->dropped,
                       &s->bad_dur,   &s->bad_nesting, &s->unmatched,
                       &s->unfinished};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            if (strcmp(word, keys[i]) == 0) {
                if (dst[i] == NULL) {
                    s->valid = (int)v;
                } else {
                    *dst[i] = v;
                }
            }
        }
    }
}

/* Run the checker on path; fails the test unless the file is valid JSON
 * and every thread's slices nest. */
static void
check_file(const char *path, summary_t *s)
{
    char cmd[1024], line[256];
    memset(s, 0, sizeof *s);
    s->tasks = calloc(MAX_LINES, sizeof *s->tasks);
    s->waits = calloc(MAX_LINES, sizeof *s->waits);
    assert_non_null(s->tasks);
    assert_non_null(s->waits);
    snprintf(cmd, sizeof cmd, "'%s' '%s' '%s'", WEFT_PYTHON, WEFT_TRACE_CHECK,
             path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    while (fgets(line, sizeof line, p) != NULL) {
        parse_line(s, line);
    }
    assert_int_equal(pclose(p), 0);
    assert_int_equal(s->valid, 1);
    assert_int_equal(s->bad_dur, 0);
    assert_int_equal(s->bad_nesting, 0);
    assert_int_equal(s->unmatched, 0);
}

static void
write_and_check(const char *name, summary_t *s)
{
    char path[512];
    path_of(path, sizeof path, name);
    assert_int_equal(weft_trace_write(path), WEFT_OK);
    check_file(path, s);
}

static size_t
count_tasks(const summary_t *s, const char *label)
{
    size_t n = 0;
    for (size_t i = 0; i < s->ntasks; i++) {
        n += strcmp(s->tasks[i].label, label) == 0;
    }
    return n;
}

static const task_line_t *
task_named(const summary_t *s, const char *label)
{
    for (size_t i = 0; i < s->ntasks; i++) {
        if (strcmp(s->tasks[i].label, label) == 0) {
            return &s->tasks[i];
        }
    }
    return NULL;
}

static void *
spin_task(void *arg)
{
    volatile unsigned x = 0;
    for (unsigned i = 0; i < 200; i++) {
        x += i;
    }
    (void)arg;
    return NULL;
}

/* Submit n tasks labelled labels[i], wait for all. */
static void
run_labelled(weft_executor_t *ex, char (*labels)[16], size_t n)
{
    weft_future_t **f = calloc(n, sizeof *f);
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
        o.label = labels[i];
        assert_int_equal(weft_executor_submit(ex, spin_task, NULL, &o, &f[i]),
                         WEFT_OK);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(weft_future_wait(f[i]), WEFT_OK);
        weft_future_release(f[i]);
    }
    free(f);
}

/* ------------------------------------------------------------------------ */

#define N_JOBS 300
static char job_labels[N_JOBS][16];

static void
test_pool_tasks_exact(void **state)
{
    (void)state;
    for (int i = 0; i < N_JOBS; i++) {
        snprintf(job_labels[i], sizeof job_labels[i], "job-%03d", i);
    }
    weft_executor_t *ex = wt_pool("tp", 2);
    assert_int_equal(weft_trace_start(NULL), WEFT_OK);
    assert_true(weft_trace_active());
    run_labelled(ex, job_labels, N_JOBS);
    /* A task's end is recorded after its future completes: destroy the
     * pool (joining its threads) before stopping, so every end is in. */
    weft_executor_destroy(ex);
    weft_trace_stop();
    assert_false(weft_trace_active());

    summary_t s;
    write_and_check("pool.json", &s);
    assert_int_equal(s.ntasks, N_JOBS);
    assert_int_equal(s.dropped, 0);
    assert_int_equal(weft_trace_dropped(), 0);
    assert_int_equal(s.unfinished, 0);
    assert_int_equal(s.submits, N_JOBS);
    for (int i = 0; i < N_JOBS; i++) {
        assert_int_equal(count_tasks(&s, job_labels[i]), 1);
    }
    /* Ids: non-zero, distinct, stamped by this thread (the submitter); no
     * parent (submitted from outside any task). */
    uint64_t me = weft_thread_id();
    for (size_t i = 0; i < s.ntasks; i++) {
        assert_true(s.tasks[i].id != 0);
        assert_int_equal(s.tasks[i].id >> 40, me);
        assert_int_equal(s.tasks[i].parent, 0);
        assert_int_equal(s.tasks[i].unfinished, 0);
        for (size_t k = 0; k < i; k++) {
            assert_true(s.tasks[k].id != s.tasks[i].id);
        }
    }
    summary_free(&s);
}

/* A task that waits on an event, sleeps, and waits for a child task. */
typedef struct waiter {
    weft_executor_t *ex;
    weft_event_t go;
} waiter_t;

static void
find_future_waiter(weft__thread_rec_t *r, void *ctx)
{
    const char *label =
        atomic_load_explicit(&r->task_label, memory_order_relaxed);
    if (atomic_load_explicit(&r->wait_kind, memory_order_relaxed) ==
            WEFT__WAIT_FUTURE &&
        label != NULL && strcmp(label, "waiter") == 0) {
        *(bool *)ctx = true;
    }
}

/* Runs until the waiter task blocks on its future. */
static void *
child_task(void *arg)
{
    weft_event_set(arg); /* started */
    bool seen = false;
    weft_time_t give_up = weft_deadline_in(10 * WEFT_SEC);
    while (!seen && weft_now() < give_up) {
        assert_int_equal(weft_sleep_for(WEFT_MSEC), WEFT_OK);
        weft__rec_foreach(find_future_waiter, &seen);
    }
    assert_true(seen);
    return NULL;
}

static void *
waiter_task(void *arg)
{
    waiter_t *w = arg;
    assert_int_equal(weft_event_wait(&w->go), WEFT_OK);
    assert_int_equal(weft_sleep_for(WEFT_MSEC), WEFT_OK);
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.label = "child";
    o.blocking = true; /* on another thread, so our wait really blocks */
    weft_future_t *f;
    weft_event_t started = WEFT_EVENT_INIT;
    assert_int_equal(weft_executor_submit(w->ex, child_task, &started, &o, &f),
                     WEFT_OK);
    /* Once it runs elsewhere, our future wait blocks: a pool thread
     * waiting for a task still queued would run it itself. */
    assert_int_equal(weft_event_wait(&started), WEFT_OK);
    assert_int_equal(weft_future_wait(f), WEFT_OK);
    weft_future_release(f);
    return NULL;
}

static void
test_waits_inside_tasks_and_parents(void **state)
{
    (void)state;
    waiter_t w = {wt_pool("tp", 2), WEFT_EVENT_INIT};
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.label = "waiter";
    weft_future_t *f;
    assert_int_equal(weft_trace_start(NULL), WEFT_OK);
    assert_int_equal(weft_executor_submit(w.ex, waiter_task, &w, &o, &f),
                     WEFT_OK);
    assert_int_equal(weft_sleep_for(5 * WEFT_MSEC), WEFT_OK);
    weft_event_set(&w.go);
    assert_int_equal(weft_future_wait(f), WEFT_OK);
    weft_future_release(f);
    weft_trace_stop();
    weft_executor_destroy(w.ex);

    summary_t s;
    write_and_check("waits.json", &s);
    size_t event_in = 0, sleep_in_waiter = 0, sleep_in_child = 0;
    size_t future_in = 0, main_waits = 0;
    for (size_t i = 0; i < s.nwaits; i++) {
        const wait_line_t *x = &s.waits[i];
        bool in_waiter = strcmp(x->in_task, "waiter") == 0;
        event_in += strcmp(x->kind, "event") == 0 && in_waiter;
        sleep_in_waiter += strcmp(x->kind, "sleep") == 0 && in_waiter;
        sleep_in_child +=
            strcmp(x->kind, "sleep") == 0 && strcmp(x->in_task, "child") == 0;
        future_in += strcmp(x->kind, "future") == 0 && in_waiter;
        /* main's own sleep and future wait: outside any task */
        main_waits +=
            strcmp(x->in_task, "-") == 0 &&
            (strcmp(x->kind, "sleep") == 0 || strcmp(x->kind, "future") == 0);
    }
    /* At least one each: a wait that wakes early (spurious wake-ups are
     * allowed) parks again, which is another wait slice. */
    assert_true(event_in >= 1);
    assert_true(sleep_in_waiter >= 1);
    assert_true(sleep_in_child >= 1);
    assert_true(future_in >= 1);
    assert_true(main_waits >= 2);
    const task_line_t *parent = task_named(&s, "waiter");
    const task_line_t *child = task_named(&s, "child");
    assert_non_null(parent);
    assert_non_null(child);
    assert_int_equal(count_tasks(&s, "waiter"), 1);
    assert_int_equal(count_tasks(&s, "child"), 1);
    assert_int_equal(child->parent, parent->id);
    assert_int_equal(parent->parent, 0);
    summary_free(&s);
}

#define N_SMALL 200
static char small_labels[N_SMALL][16];

static void
test_ring_bound_drops_oldest(void **state)
{
    (void)state;
    for (int i = 0; i < N_SMALL; i++) {
        snprintf(small_labels[i], sizeof small_labels[i], "s-%03d", i);
    }
    weft_executor_t *ex = wt_pool("tp", 1);
    weft_trace_opts_t o = WEFT_TRACE_OPTS_INIT;
    o.ring_events = 20; /* rounded up to 32 */
    assert_int_equal(weft_trace_start(&o), WEFT_OK);
    run_labelled(ex, small_labels, N_SMALL);
    static char last[1][16] = {"last"}; /* the worker's last task */
    run_labelled(ex, last, 1);
    weft_executor_destroy(ex);
    weft_trace_stop();

    uint64_t held = weft_trace_events(), lost = weft_trace_dropped();
    summary_t s;
    write_and_check("small.json", &s);
    /* Each task is at least 3 events (begin, its label, end) on the worker,
     * and one submit on this thread: far beyond 32 per ring. Rings: this
     * thread's and the worker's. */
    assert_true(s.threads >= 1 && s.threads <= 2);
    assert_true(held <= 32u * 2u);
    assert_true(lost >= 4u * N_SMALL - 32u * 2u);
    assert_int_equal((uint64_t)s.dropped, lost);
    assert_true(s.ntasks > 0 && s.ntasks < 32);
    /* The newest are kept: the last task is in the file, the first ones
     * (run within the first batch the worker took) are not. */
    assert_int_equal(count_tasks(&s, "last"), 1);
    assert_int_equal(count_tasks(&s, small_labels[0]), 0);
    summary_free(&s);
}

static void
test_start_stop_at_run_time(void **state)
{
    (void)state;
    static char a[4][16] = {"first-a", "first-b", "first-c", "first-d"};
    static char b[2][16] = {"second-a", "second-b"};
    weft_executor_t *ex = wt_pool("tp", 2);

    assert_int_equal(weft_trace_start(NULL), WEFT_OK);
    assert_int_equal(weft_trace_start(NULL), WEFT_EBUSY);
    run_labelled(ex, a, 4);
    weft_trace_stop();
    weft_trace_stop(); /* idempotent */
    assert_int_equal(weft__probe_mask & (WEFT__PROBE_TASK | WEFT__PROBE_WAIT),
                     0);

    /* Off: nothing recorded, the trace so far stays writable. */
    uint64_t before = weft_trace_events();
    assert_true(before > 0);
    run_labelled(ex, a, 4);
    assert_int_equal(weft_sleep_for(WEFT_MSEC), WEFT_OK);
    assert_int_equal(weft_trace_events(), before);
    summary_t s;
    write_and_check("first.json", &s);
    assert_int_equal(s.ntasks, 4);
    assert_int_equal(count_tasks(&s, "first-a"), 1);
    summary_free(&s);

    /* A new trace forgets the old one. */
    assert_int_equal(weft_trace_start(NULL), WEFT_OK);
    run_labelled(ex, b, 2);
    weft_trace_stop();
    write_and_check("second.json", &s);
    assert_int_equal(s.ntasks, 2);
    assert_int_equal(count_tasks(&s, "second-a"), 1);
    assert_int_equal(count_tasks(&s, "second-b"), 1);
    assert_int_equal(count_tasks(&s, "first-a"), 0);
    summary_free(&s);
    weft_executor_destroy(ex);
}

/* Written while tracing: a task still running is closed, flagged. */
static void *
long_task(void *arg)
{
    weft_event_t *e = arg;
    assert_int_equal(weft_event_wait(e), WEFT_OK);
    return NULL;
}

static void
test_write_while_running_closes_open_slices(void **state)
{
    (void)state;
    weft_executor_t *ex = wt_pool("tp", 1);
    weft_event_t done = WEFT_EVENT_INIT;
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.label = "long";
    weft_future_t *f;
    assert_int_equal(weft_trace_start(NULL), WEFT_OK);
    assert_int_equal(weft_executor_submit(ex, long_task, &done, &o, &f),
                     WEFT_OK);
    while (weft_future_state(f) == WEFT_FUTURE_PENDING) {
        weft_thread_yield();
    }
    assert_int_equal(weft_sleep_for(2 * WEFT_MSEC), WEFT_OK);
    summary_t s;
    write_and_check("open.json", &s);
    assert_int_equal(count_tasks(&s, "long"), 1);
    assert_int_equal(s.unfinished, 2); /* the task and its event wait */
    assert_int_equal(task_named(&s, "long")->unfinished, 1);
    summary_free(&s);
    weft_event_set(&done);
    assert_int_equal(weft_future_wait(f), WEFT_OK);
    weft_future_release(f);
    weft_executor_destroy(ex); /* its threads' last events are in */
    weft_trace_stop();
    write_and_check("closed.json", &s);
    assert_int_equal(count_tasks(&s, "long"), 1);
    assert_int_equal(task_named(&s, "long")->unfinished, 0);
    assert_int_equal(s.unfinished, 0);
    summary_free(&s);
}

/* Threads record into tiny rings while the trace is written again and
 * again: every file is valid and nests (the reader's ring protocol). */
static _Atomic int hammer_stop, hammer_ready;

static void *
hammer(void *arg)
{
    (void)arg;
    weft_event_t e = WEFT_EVENT_INIT;
    for (unsigned n = 0; atomic_load(&hammer_stop) == 0; n++) {
        if (n == 1) {
            atomic_fetch_add(&hammer_ready, 1); /* one wait recorded */
        }
        /* A timed wait that times out: one wait slice each. */
        assert_int_equal(weft_event_wait_until(&e, weft_deadline_in(WEFT_USEC)),
                         WEFT_ETIMEDOUT);
    }
    return NULL;
}

static void *
hammer_threads(void *arg)
{
    wt_run_threads(3, hammer, NULL, 0);
    (void)arg;
    return NULL;
}

/* Start the 3 hammer threads (under a thread of their own) and wait until
 * each has recorded a wait. */
static weft_thread_t *
start_hammers(void)
{
    weft_thread_t *t;
    atomic_store(&hammer_stop, 0);
    atomic_store(&hammer_ready, 0);
    assert_int_equal(weft_thread_create(NULL, hammer_threads, NULL, &t),
                     WEFT_OK);
    while (atomic_load(&hammer_ready) < 3) {
        assert_int_equal(weft_sleep_for(100 * WEFT_USEC), WEFT_OK);
    }
    return t;
}

static void
test_write_races_recording(void **state)
{
    (void)state;
    weft_trace_opts_t o = WEFT_TRACE_OPTS_INIT;
    o.ring_events = 64;
    assert_int_equal(weft_trace_start(&o), WEFT_OK);
    weft_thread_t *t = start_hammers();
    for (int i = 0; i < 5; i++) {
        assert_int_equal(weft_sleep_for(3 * WEFT_MSEC), WEFT_OK);
        summary_t s;
        write_and_check("race.json", &s);
        summary_free(&s);
    }
    atomic_store(&hammer_stop, 1);
    assert_int_equal(weft_thread_join(t, NULL), WEFT_OK);
    weft_trace_stop();
    /* The exited threads' events are still there. */
    summary_t s;
    write_and_check("exited.json", &s);
    assert_true(s.threads >= 3);
    assert_true(s.nwaits > 0);
    summary_free(&s);
    /* Their rings are reused by the next trace's new threads. */
    assert_int_equal(weft_trace_start(&o), WEFT_OK);
    t = start_hammers();
    atomic_store(&hammer_stop, 1);
    assert_int_equal(weft_thread_join(t, NULL), WEFT_OK);
    weft_trace_stop();
    write_and_check("reused.json", &s);
    assert_true(s.threads >= 3);
    summary_free(&s);
}

static void
test_errors(void **state)
{
    (void)state;
    weft_trace_opts_t o = WEFT_TRACE_OPTS_INIT;
    o.ring_events = ((size_t)1 << 24) + 1;
    assert_int_equal(weft_trace_start(&o), WEFT_EINVAL);
    assert_false(weft_trace_active());
    assert_int_equal(weft_trace_write(NULL), WEFT_EINVAL);
    assert_int_equal(weft_trace_write("/nonexistent-dir/x/trace.json"),
                     WEFT_EIO);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_pool_tasks_exact),
        cmocka_unit_test(test_waits_inside_tasks_and_parents),
        cmocka_unit_test(test_ring_bound_drops_oldest),
        cmocka_unit_test(test_start_stop_at_run_time),
        cmocka_unit_test(test_write_while_running_closes_open_slices),
        cmocka_unit_test(test_write_races_recording),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
