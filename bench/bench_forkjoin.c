/* SPDX-License-Identifier: MIT */
/*
 * weft's fork-join on 1 and 2 workers: fib(n) with one task per call
 * (weft_group_spawn / weft_group_wait, entered with weft_pool_run), and
 * weft_parallel_reduce / weft_parallel_for over an array of floats. The
 * peers are in bench_omp.c, bench_tbb.cpp and bench_baseline.c (serial).
 */
#define _POSIX_C_SOURCE 200809L

#include <weft/pool.h>

#include "bench_util.h"
#include "bench_work.h"

/*
 * DESIGN
 * Every measurement is the median of WORK_INNER timed runs after a warm-up,
 * on a pool created (and destroyed) outside the timed interval. The serial
 * kernels run in this process too, just before, so the per-spawn overhead
 * (T(1 worker) - T(serial)) / spawns and the speedups compare figures from
 * the same process; the report's "serial" rows come from bench_baseline.
 */

static const unsigned worker_counts[] = {1, 2};
#define N_COUNTS (sizeof(worker_counts) / sizeof(worker_counts[0]))

static weft_executor_t *
pool_start(unsigned workers)
{
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    weft_executor_t *ex = NULL;

    o.name = "bench";
    o.workers = workers;
    bench_check_weft(weft_pool_create(&o, &ex), "weft_pool_create");
    return ex;
}

/* ------------------------------------------------------------------------ */
/* fib: spawn one child, compute the other inline, wait                      */

typedef struct fib_arg {
    weft_executor_t *pool;
    int n;
    uint64_t result;
} fib_arg_t;

static void
fib_task(void *arg)
{
    fib_arg_t *a = arg;

    if (a->n < 2) {
        a->result = (uint64_t)a->n;
        return;
    }
    fib_arg_t child = {a->pool, a->n - 1, 0};
    fib_arg_t self = {a->pool, a->n - 2, 0};
    weft_group_t g;
    int rc = weft_group_init(&g, a->pool);
    if (rc == WEFT_OK) {
        rc = weft_group_spawn(&g, fib_task, &child);
    }
    if (rc != WEFT_OK) {
        bench_fail("fib weft: spawn: %s", weft_strerror(rc));
    }
    fib_task(&self);
    rc = weft_group_wait(&g);
    if (rc != WEFT_OK) {
        bench_fail("fib weft: weft_group_wait: %s", weft_strerror(rc));
    }
    a->result = child.result + self.result;
}

/* Median ms of fib(n) on a pool of `workers`. */
static double
fib_weft(int n, unsigned workers)
{
    weft_executor_t *ex = pool_start(workers);
    uint64_t want = work_fib_expected(n);
    double ms[WORK_INNER];

    for (int k = -1; k < WORK_INNER; k++) { /* k == -1: warm-up */
        fib_arg_t a = {ex, k < 0 && n > 20 ? 20 : n, 0};
        uint64_t start = work_now_ns();
        bench_check_weft(weft_pool_run(ex, fib_task, &a), "weft_pool_run");
        uint64_t ns = work_now_ns() - start;
        if (k >= 0) {
            if (a.result != want) {
                bench_fail("fib weft: fib(%d) = %" PRIu64 ", expected %" PRIu64,
                           n, a.result, want);
            }
            ms[k] = (double)ns * 1e-6;
        }
    }
    weft_executor_destroy(ex);
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
        ms[c] = fib_weft(n, worker_counts[c]);
        snprintf(params, sizeof(params), "n=%d,workers=%u", n,
                 worker_counts[c]);
        bench_result("fib", "weft", params, "ms", ms[c]);
    }
    /* A spawn cheaper than the noise shows as 0, not as a negative cost. */
    double over = (ms[0] - serial) * 1e6 / (double)work_fib_spawns(n);
    snprintf(params, sizeof(params), "n=%d", n);
    bench_result("fib", "weft", params, "spawn_ns", over > 0 ? over : 0);
    bench_result("fib", "weft", params, "speedup", ms[0] / ms[1]);
    fprintf(stderr, "bench: fib(%d) serial in this process: %.3g ms\n", n,
            serial);
}

/* ------------------------------------------------------------------------ */
/* parallel_reduce: sum of x[i]^2; parallel_for: y = a * x + y              */

typedef struct arrays {
    float *x;
    float *y;
    size_t n;
} arrays_t;

static void
sumsq_body(size_t lo, size_t hi, void *acc, void *ctx)
{
    const arrays_t *v = ctx;
    double s;

    memcpy(&s, acc, sizeof(s));
    s += work_sumsq(v->x, lo, hi);
    memcpy(acc, &s, sizeof(s));
}

static void
sum_merge(void *into, const void *from, void *ctx)
{
    double a;
    double b;

    (void)ctx;
    memcpy(&a, into, sizeof(a));
    memcpy(&b, from, sizeof(b));
    a += b;
    memcpy(into, &a, sizeof(a));
}

static void
axpy_body(size_t lo, size_t hi, void *ctx)
{
    arrays_t *v = ctx;

    work_axpy(WORK_AXPY_A, v->x, v->y, lo, hi);
}

/* Median ms of the reduce (for_loop false) or the for (true), run on ex, or
 * serially when ex is NULL. */
static double
parallel_ms(weft_executor_t *ex, arrays_t *v, bool for_loop)
{
    const char *bench = for_loop ? "parallel-for" : "parallel-reduce";
    const char *impl = ex != NULL ? "weft" : "serial";
    double want = work_sumsq_expected(v->n);
    double ms[WORK_INNER];
    unsigned passes = 0;

    work_reset_y(v->y, v->n);
    for (int k = -1; k < WORK_INNER; k++) { /* k == -1: warm-up */
        double sum = 0.0;
        work_escape(v->y);
        uint64_t start = work_now_ns();
        if (ex == NULL && for_loop) {
            work_axpy(WORK_AXPY_A, v->x, v->y, 0, v->n);
        } else if (ex == NULL) {
            sum = work_sumsq(v->x, 0, v->n);
        } else if (for_loop) {
            bench_check_weft(weft_parallel_for(ex, 0, v->n, 0, axpy_body, v),
                             "weft_parallel_for");
        } else {
            bench_check_weft(weft_parallel_reduce(ex, 0, v->n, 0, &sum,
                                                  sizeof(sum), sumsq_body,
                                                  sum_merge, v),
                             "weft_parallel_reduce");
        }
        work_escape(v->y);
        uint64_t ns = work_now_ns() - start;
        passes++;
        if (!for_loop && sum != want) {
            bench_fail("%s %s: sum %.17g, expected %.17g", bench, impl, sum,
                       want);
        }
        if (k >= 0) {
            ms[k] = (double)ns * 1e-6;
        }
    }
    size_t bad = for_loop ? work_axpy_check(v->x, v->y, v->n, passes) : v->n;
    if (bad != v->n) {
        bench_fail("%s %s: y[%zu] = %g after %u passes", bench, impl, bad,
                   (double)v->y[bad], passes);
    }
    return work_median(ms, WORK_INNER);
}

static void
parallel_bench(size_t n)
{
    arrays_t v = {work_alloc_x(n), malloc(n * sizeof(float)), n};
    char params[64];

    if (v.x == NULL || v.y == NULL) {
        bench_fail("out of memory for %zu floats", n);
    }
    for (int f = 0; f < 2; f++) {
        const char *bench = f ? "parallel-for" : "parallel-reduce";
        double serial = parallel_ms(NULL, &v, f != 0);

        for (size_t c = 0; c < N_COUNTS; c++) {
            weft_executor_t *ex = pool_start(worker_counts[c]);
            double ms = parallel_ms(ex, &v, f != 0);

            weft_executor_destroy(ex);
            snprintf(params, sizeof(params), "workers=%u", worker_counts[c]);
            bench_result(bench, "weft", params, "ms", ms);
            bench_result(bench, "weft", params, "speedup", serial / ms);
        }
    }
    free(v.y);
    free(v.x);
}

int
main(int argc, char **argv)
{
    bench_args_t a = bench_parse_args(argc, argv, "SIZE", 0);
    int ran = 0;

    if (!bench_selected(&a, "weft")) {
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
    if (bench_wanted(&a, "parallel")) {
        parallel_bench((size_t)bench_size(&a, WORK_DEFAULT_ELEMS));
        ran++;
    }
    if (ran == 0) {
        bench_fail("nothing to run: no benchmark %s", a.bench);
    }
    return 0;
}
