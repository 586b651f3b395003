/* SPDX-License-Identifier: MIT */
/*
 * weft's executor seen from outside the pool, 2 workers: fire-and-forget
 * submits of empty tasks, the same with a future per task, the
 * submit-then-wait round trip on a warm pool, and the CPU an idle pool
 * uses. "weft-metrics" is the fire-and-forget run with metrics collection
 * on and "weft-trace" the same with a timeline trace recording (their cost
 * against "weft", everything off, in the same run; the order of the three
 * rotates with the repetition number). The peers
 * are in bench_baseline.c (naive pool), bench_omp.c,
 * bench_tbb.cpp and bench_executor.py.
 */
#define _POSIX_C_SOURCE 200809L

#include <weft/metrics.h>
#include <weft/pool.h>
#include <weft/trace.h>

#include "bench_util.h"
#include "bench_work.h"

/*
 * DESIGN
 * The pool is created and warmed up (WORK_WARM_TRIPS round trips, so its
 * workers have run and gone idle) before the clock starts. Each task marks
 * its own slot (work_mark); afterwards every slot must be exactly 1, so a
 * lost or repeated task fails the run. Fire-and-forget ends with
 * weft_executor_shutdown(wait), which returns when every accepted task has
 * run; with futures, the clock stops when the last future has been waited
 * on and released.
 */

static weft_executor_t *
pool_start(void)
{
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    weft_executor_t *ex = NULL;

    o.name = "bench";
    o.workers = WORK_WORKERS;
    bench_check_weft(weft_pool_create(&o, &ex), "weft_pool_create");
    return ex;
}

static void *
echo(void *arg)
{
    return arg;
}

/* One round trip: submit, wait, check the result. Returns ns. */
static uint64_t
round_trip(weft_executor_t *ex, uintptr_t want)
{
    weft_future_t *f = NULL;
    void *got = NULL;

    uint64_t start = work_now_ns();
    bench_check_weft(weft_executor_submit(ex, echo, (void *)want, NULL, &f),
                     "weft_executor_submit");
    bench_check_weft(weft_future_wait(f), "weft_future_wait");
    uint64_t ns = work_now_ns() - start;
    bench_check_weft(weft_future_result(f, &got), "weft_future_result");
    if ((uintptr_t)got != want) {
        bench_fail("roundtrip weft: got %" PRIuPTR ", expected %" PRIuPTR,
                   (uintptr_t)got, want);
    }
    weft_future_release(f);
    return ns;
}

static void
warm_up(weft_executor_t *ex)
{
    for (uintptr_t i = 1; i <= WORK_WARM_TRIPS; i++) {
        (void)round_trip(ex, i);
    }
}

static void
check_marks(const char *bench, const unsigned char *hits, uint64_t n)
{
    size_t bad = work_marks_check(hits, (size_t)n);

    if (bad != n) {
        bench_fail("%s weft: task %zu ran %u times", bench, bad,
                   (unsigned)hits[bad]);
    }
}

/* The metrics must have counted every task of the run. */
static void
check_metrics(uint64_t n)
{
    weft_metrics_snapshot_t *s = NULL;
    bench_check_weft(weft_metrics_snapshot(&s), "weft_metrics_snapshot");
    if (s->npools != 1 || s->pools[0].completed != n ||
        s->pools[0].submitted != n) {
        bench_fail("submit weft-metrics: %zu pools, %" PRIu64
                   " submitted, %" PRIu64 " completed, expected %" PRIu64,
                   s->npools, s->npools ? s->pools[0].submitted : 0,
                   s->npools ? s->pools[0].completed : 0, n);
    }
    weft_metrics_snapshot_free(s);
}

/* What a fire-and-forget run observes. */
typedef enum observe { OBSERVE_NONE, OBSERVE_METRICS, OBSERVE_TRACE } observe_t;

static const char *const observe_impl[] = {"weft", "weft-metrics",
                                           "weft-trace"};

/* Tracing on, with rings big enough for the whole run (no event dropped:
 * what is measured is the cost of recording every one). */
static void
trace_on(uint64_t n)
{
    weft_trace_opts_t o = WEFT_TRACE_OPTS_INIT;
    /* A worker that ran every task: a begin and an end each, plus its
     * parks and wakes. */
    uint64_t per_thread = 2 * n + 65536;

    o.ring_events =
        per_thread > (UINT64_C(1) << 24) ? (size_t)1 << 24 : (size_t)per_thread;
    bench_check_weft(weft_trace_start(&o), "weft_trace_start");
}

/* The trace must hold the submit, begin and end of every task of the run. */
static void
check_trace(uint64_t n)
{
    weft_trace_stop();
    if (weft_trace_dropped() != 0 || weft_trace_events() < 3 * n) {
        bench_fail("submit weft-trace: %" PRIu64 " events, %" PRIu64
                   " dropped, expected at least %" PRIu64 " and none",
                   weft_trace_events(), weft_trace_dropped(), 3 * n);
    }
}

/* n fire-and-forget submits, then shutdown(wait); observed as obs says. */
static void
submits(uint64_t n, observe_t obs)
{
    unsigned char *hits = calloc((size_t)n, 1);
    weft_executor_t *ex = pool_start();

    if (hits == NULL) {
        bench_fail("out of memory");
    }
    warm_up(ex);
    if (obs == OBSERVE_METRICS) {
        weft_metrics_enable(true);
    } else if (obs == OBSERVE_TRACE) {
        trace_on(n);
    }
    uint64_t start = work_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        bench_check_weft(
            weft_executor_submit(ex, work_mark, &hits[i], NULL, NULL),
            "weft_executor_submit");
    }
    bench_check_weft(weft_executor_shutdown(ex, true, false),
                     "weft_executor_shutdown");
    double secs = (double)(work_now_ns() - start) * 1e-9;
    if (obs == OBSERVE_METRICS) {
        check_metrics(n);
        weft_metrics_enable(false);
    } else if (obs == OBSERVE_TRACE) {
        check_trace(n);
    }
    weft_executor_destroy(ex);
    check_marks("submit", hits, n);
    free(hits);
    bench_result("submit", observe_impl[obs], "workers=2", "tasks_per_s",
                 (double)n / secs);
}

/* n submits with a future each; every future is waited on and released. */
static void
submits_with_futures(uint64_t n)
{
    unsigned char *hits = calloc((size_t)n, 1);
    weft_future_t **fs = malloc((size_t)n * sizeof(*fs));
    weft_executor_t *ex = pool_start();

    if (hits == NULL || fs == NULL) {
        bench_fail("out of memory");
    }
    warm_up(ex);
    uint64_t start = work_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        bench_check_weft(
            weft_executor_submit(ex, work_mark, &hits[i], NULL, &fs[i]),
            "weft_executor_submit");
    }
    for (uint64_t i = 0; i < n; i++) {
        bench_check_weft(weft_future_wait(fs[i]), "weft_future_wait");
        if (weft_future_code(fs[i]) != WEFT_OK) {
            bench_fail("submit-future weft: task %" PRIu64 " ended with %s", i,
                       weft_strerror(weft_future_code(fs[i])));
        }
        weft_future_release(fs[i]);
    }
    double secs = (double)(work_now_ns() - start) * 1e-9;
    weft_executor_destroy(ex);
    check_marks("submit-future", hits, n);
    free(fs);
    free(hits);
    bench_result("submit-future", "weft", "workers=2", "tasks_per_s",
                 (double)n / secs);
}

static void
round_trips(uint64_t n)
{
    double *us = malloc((size_t)n * sizeof(*us));
    weft_executor_t *ex = pool_start();

    if (us == NULL) {
        bench_fail("out of memory");
    }
    warm_up(ex);
    for (uint64_t i = 0; i < n; i++) {
        us[i] = (double)round_trip(ex, (uintptr_t)i + 1) * 1e-3;
    }
    weft_executor_destroy(ex);
    bench_result("roundtrip", "weft", "workers=2", "us_per_rt",
                 work_median(us, (size_t)n));
    free(us);
}

/* CPU used by the whole process while its warm pool sits idle for ms. The
 * clock starts as soon as the warm-up's last task is done, so a pool that
 * spins before it parks pays for the spinning. */
static void
idle(uint64_t ms)
{
    weft_executor_t *ex = pool_start();

    warm_up(ex);
    double cpu = work_cpu_seconds();
    uint64_t start = work_now_ns();
    work_sleep_ns(ms * UINT64_C(1000000));
    double secs = (double)(work_now_ns() - start) * 1e-9;
    cpu = work_cpu_seconds() - cpu;
    weft_executor_destroy(ex);
    bench_result("idle", "weft", "workers=2", "cpu_ms_per_idle_s",
                 cpu * 1e3 / secs);
}

int
main(int argc, char **argv)
{
    bench_args_t a = bench_parse_args(argc, argv, "SIZE", 0);
    int ran = 0;

    bool plain = bench_selected(&a, "weft");
    if (bench_wanted(&a, "submit")) {
        for (size_t k = 0; k < 3; k++) {
            observe_t obs = (observe_t)bench_order(k, a.rep, 3);
            if (bench_selected(&a, observe_impl[obs])) {
                submits(bench_size(&a, WORK_DEFAULT_TASKS), obs);
            }
        }
        ran++;
    }
    if (!plain) {
        return 0;
    }
    if (bench_wanted(&a, "submit-future")) {
        submits_with_futures(bench_size(&a, WORK_DEFAULT_TASKS));
        ran++;
    }
    if (bench_wanted(&a, "roundtrip")) {
        round_trips(bench_size(&a, WORK_DEFAULT_TRIPS));
        ran++;
    }
    if (bench_wanted(&a, "idle")) {
        idle(bench_size(&a, WORK_DEFAULT_IDLE_MS));
        ran++;
    }
    if (ran == 0) {
        bench_fail("nothing to run: no benchmark %s", a.bench);
    }
    return 0;
}
