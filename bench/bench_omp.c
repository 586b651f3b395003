/* SPDX-License-Identifier: MIT */
/*
 * The OpenMP peer (gcc -fopenmp, libgomp), impl "omp": fib(n) with one
 * `omp task` per call on 1 and 2 threads, 1M empty tasks created by one
 * thread, and `parallel for` with a static schedule (with `reduction(+:s)`
 * for the reduce) on 1 and 2 threads. Same work and checks as weft's.
 */
#define _POSIX_C_SOURCE 200809L

#include <omp.h>

#include "bench_util.h"
#include "bench_work.h"

/*
 * DESIGN
 * Thread counts are set with omp_set_num_threads. For the submits, one
 * thread of the team (inside `single`) creates every task while the others
 * run them: the creator plays the outside thread of the other benchmarks,
 * so the team has WORK_WORKERS + 1 threads, as weft's 2 workers plus the
 * submitting thread. libgomp runs a new task at once on the creating
 * thread while more than 64 per thread are queued; that is how OpenMP
 * behaves, so it is measured as it is. The end of the parallel region waits
 * for every task.
 */

static const int thread_counts[] = {1, 2};
#define N_COUNTS (sizeof(thread_counts) / sizeof(thread_counts[0]))

/* ------------------------------------------------------------------------ */
/* fib                                                                       */

static uint64_t
fib_omp(int n)
{
    uint64_t x;
    uint64_t y;

    if (n < 2) {
        return (uint64_t)n;
    }
#pragma omp task shared(x)
    x = fib_omp(n - 1);
    y = fib_omp(n - 2);
#pragma omp taskwait
    return x + y;
}

static double
fib_ms(int n, int threads)
{
    uint64_t want = work_fib_expected(n);
    double ms[WORK_INNER];

    omp_set_num_threads(threads);
    for (int k = -1; k < WORK_INNER; k++) { /* k == -1: warm-up */
        int m = k < 0 && n > 20 ? 20 : n;
        uint64_t got = 0;
        uint64_t start = work_now_ns();
#pragma omp parallel
#pragma omp single
        got = fib_omp(m);
        uint64_t ns = work_now_ns() - start;
        if (k >= 0) {
            if (got != want) {
                bench_fail("fib omp: fib(%d) = %" PRIu64 ", expected %" PRIu64,
                           n, got, want);
            }
            ms[k] = (double)ns * 1e-6;
        }
    }
    return work_median(ms, WORK_INNER);
}

static double
fib_serial_ms(int n)
{
    double ms[WORK_INNER];

    (void)work_fib_opaque(n < 20 ? n : 20);
    for (int k = 0; k < WORK_INNER; k++) {
        uint64_t start = work_now_ns();
        if (work_fib_opaque(n) != work_fib_expected(n)) {
            bench_fail("fib serial: wrong answer");
        }
        ms[k] = (double)(work_now_ns() - start) * 1e-6;
    }
    return work_median(ms, WORK_INNER);
}

static void
fib_bench(int n)
{
    double serial = fib_serial_ms(n);
    double ms[N_COUNTS];
    char params[64];

    for (size_t c = 0; c < N_COUNTS; c++) {
        ms[c] = fib_ms(n, thread_counts[c]);
        snprintf(params, sizeof(params), "n=%d,workers=%d", n,
                 thread_counts[c]);
        bench_result("fib", "omp", params, "ms", ms[c]);
    }
    double over = (ms[0] - serial) * 1e6 / (double)work_fib_spawns(n);
    snprintf(params, sizeof(params), "n=%d", n);
    bench_result("fib", "omp", params, "spawn_ns", over > 0 ? over : 0);
    bench_result("fib", "omp", params, "speedup", ms[0] / ms[1]);
    fprintf(stderr, "bench: fib(%d) serial in this process: %.3g ms\n", n,
            serial);
}

/* ------------------------------------------------------------------------ */
/* submits                                                                   */

/* Creates n tasks from one thread; returns seconds until all have run. */
static double
create_tasks(unsigned char *hits, uint64_t n)
{
    uint64_t start = 0;

    omp_set_num_threads((int)WORK_WORKERS + 1);
#pragma omp parallel
#pragma omp single
    {
        start = work_now_ns();
        for (uint64_t i = 0; i < n; i++) {
#pragma omp task firstprivate(i)
            work_mark(&hits[i]);
        }
    }
    return (double)(work_now_ns() - start) * 1e-9;
}

static void
submits(uint64_t n)
{
    unsigned char *hits = calloc((size_t)n, 1);
    unsigned char warm[WORK_WARM_TRIPS] = {0};

    if (hits == NULL) {
        bench_fail("out of memory");
    }
    (void)create_tasks(warm, WORK_WARM_TRIPS);
    double secs = create_tasks(hits, n);
    size_t bad = work_marks_check(hits, (size_t)n);
    if (bad != n) {
        bench_fail("submit omp: task %zu ran %u times", bad,
                   (unsigned)hits[bad]);
    }
    free(hits);
    bench_result("submit", "omp", "workers=2", "tasks_per_s", (double)n / secs);
}

/* ------------------------------------------------------------------------ */
/* parallel for / reduce                                                     */

static double
reduce_ms(const float *x, size_t n, int threads)
{
    double want = work_sumsq_expected(n);
    double ms[WORK_INNER];

    omp_set_num_threads(threads);
    for (int k = -1; k < WORK_INNER; k++) { /* k == -1: warm-up */
        double s = 0.0;
        work_escape(x);
        uint64_t start = work_now_ns();
#pragma omp parallel for schedule(static) reduction(+ : s)
        for (size_t i = 0; i < n; i++) {
            double v = (double)x[i];
            s += v * v;
        }
        uint64_t ns = work_now_ns() - start;
        if (s != want) {
            bench_fail("parallel-reduce omp: sum %.17g, expected %.17g", s,
                       want);
        }
        if (k >= 0) {
            ms[k] = (double)ns * 1e-6;
        }
    }
    return work_median(ms, WORK_INNER);
}

static double
axpy_ms(const float *x, float *y, size_t n, int threads)
{
    double ms[WORK_INNER];
    unsigned passes = 0;

    omp_set_num_threads(threads);
    work_reset_y(y, n);
    for (int k = -1; k < WORK_INNER; k++) { /* k == -1: warm-up */
        work_escape(y);
        uint64_t start = work_now_ns();
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) {
            y[i] = WORK_AXPY_A * x[i] + y[i];
        }
        work_escape(y);
        uint64_t ns = work_now_ns() - start;
        passes++;
        if (k >= 0) {
            ms[k] = (double)ns * 1e-6;
        }
    }
    size_t bad = work_axpy_check(x, y, n, passes);
    if (bad != n) {
        bench_fail("parallel-for omp: y[%zu] = %g after %u passes", bad,
                   (double)y[bad], passes);
    }
    return work_median(ms, WORK_INNER);
}

/* The serial kernels in this process, for the speedups. */
static double
serial_ms(const float *x, float *y, size_t n, bool for_loop)
{
    double ms[WORK_INNER];

    for (int k = -1; k < WORK_INNER; k++) {
        work_escape(y);
        uint64_t start = work_now_ns();
        if (for_loop) {
            work_axpy(WORK_AXPY_A, x, y, 0, n);
        } else if (work_sumsq(x, 0, n) != work_sumsq_expected(n)) {
            bench_fail("parallel-reduce serial: wrong sum");
        }
        work_escape(y);
        if (k >= 0) {
            ms[k] = (double)(work_now_ns() - start) * 1e-6;
        }
    }
    return work_median(ms, WORK_INNER);
}

static void
parallel_bench(size_t n)
{
    float *x = work_alloc_x(n);
    float *y = malloc(n * sizeof(*y));
    char params[64];

    if (x == NULL || y == NULL) {
        bench_fail("out of memory for %zu floats", n);
    }
    work_reset_y(y, n);
    for (int f = 0; f < 2; f++) {
        const char *bench = f ? "parallel-for" : "parallel-reduce";
        double serial = serial_ms(x, y, n, f != 0);

        for (size_t c = 0; c < N_COUNTS; c++) {
            int t = thread_counts[c];
            double ms = f ? axpy_ms(x, y, n, t) : reduce_ms(x, n, t);

            snprintf(params, sizeof(params), "workers=%d", t);
            bench_result(bench, "omp", params, "ms", ms);
            bench_result(bench, "omp", params, "speedup", serial / ms);
        }
    }
    free(y);
    free(x);
}

int
main(int argc, char **argv)
{
    bench_args_t a = bench_parse_args(argc, argv, "SIZE", 0);
    int ran = 0;

    if (!bench_selected(&a, "omp")) {
        return 0;
    }
    if (bench_wanted(&a, "fib")) {
        uint64_t n = bench_size(&a, WORK_DEFAULT_FIB);
        if (n > WORK_MAX_FIB) {
            bench_fail("fib: n = %" PRIu64 " is too large", n);
        }
        fib_bench((int)n);
        ran++;
    }
    if (bench_wanted(&a, "submit")) {
        submits(bench_size(&a, WORK_DEFAULT_TASKS));
        ran++;
    }
    if (bench_wanted(&a, "parallel")) {
        parallel_bench((size_t)bench_size(&a, WORK_DEFAULT_ELEMS));
        ran++;
    }
    if (ran == 0) {
        bench_fail("nothing to run: no benchmark %s", a.bench);
    }
    return 0;
}
