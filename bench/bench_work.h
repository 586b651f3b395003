/* SPDX-License-Identifier: MIT */
/*
 * The work of the executor benchmarks, shared by the C programs and the C++
 * peer so that every implementation runs the same kernels and is checked
 * against the same answers: serial fib and its spawn count, the float arrays
 * of parallel_reduce / parallel_for with their exact expected results, the
 * per-task marks that prove each task ran exactly once, the stages of the
 * pipeline benchmark and its checksum, a median, clocks.
 * Header-only; compiles as C11 and as C++17; uses no weft.
 */
#ifndef WEFT_BENCH_WORK_H
#define WEFT_BENCH_WORK_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

/* Executor benchmarks (submit, round trip, idle) use this many workers. */
#define WORK_WORKERS 2u
/* Timed runs per fork-join measurement (their median), after one warm-up. */
#define WORK_INNER 3
/* Round trips that warm a pool up before anything is timed. */
#define WORK_WARM_TRIPS 100u
/* parallel_for computes y[i] = WORK_AXPY_A * x[i] + y[i]. */
#define WORK_AXPY_A 2.0f

/* Sizes when -n is not given (bench/run passes its own). */
#define WORK_DEFAULT_FIB 32           /* fib(n) */
#define WORK_DEFAULT_ELEMS 100000000u /* floats of parallel_reduce/for */
#define WORK_DEFAULT_TASKS 1000000u   /* submits */
#define WORK_DEFAULT_TRIPS 100000u    /* round trips */
#define WORK_DEFAULT_IDLE_MS 1000u    /* idle time */
#define WORK_MAX_FIB 50               /* larger would take hours */
/* Items of the pipeline benchmark when -n is not given. */
#define WORK_DEFAULT_PIPE_TRIVIAL 1000000u /* trivial stages */
#define WORK_DEFAULT_PIPE_SMALL 200000u    /* ~1 us stages */

/* ------------------------------------------------------------------------ */
/* fib                                                                       */

/* The serial baseline: the same recursion as the parallel versions, with
 * the spawn replaced by a call. */
static inline uint64_t
work_fib(int n)
{
    return n < 2 ? (uint64_t)n : work_fib(n - 1) + work_fib(n - 2);
}

/* work_fib is pure: a compiler may compute it once for several timed calls.
 * Reading n through a volatile makes every call do the work. */
static inline uint64_t
work_fib_opaque(int n)
{
    volatile int vn = n;

    return work_fib(vn);
}

/* fib(n) by iteration: the answer every version is checked against. */
static inline uint64_t
work_fib_expected(int n)
{
    uint64_t a = 0;
    uint64_t b = 1;

    for (int i = 0; i < n; i++) {
        uint64_t c = a + b;

        a = b;
        b = c;
    }
    return a;
}

/* Each call with n >= 2 spawns one child (and computes the other inline):
 * fib(n) makes fib(n + 1) - 1 spawns. */
static inline uint64_t
work_fib_spawns(int n)
{
    return work_fib_expected(n + 1) - 1;
}

/* ------------------------------------------------------------------------ */
/* parallel_reduce and parallel_for over floats                              */

/*
 * x[i] = (i mod 1024) / 1024. Then x[i]^2 = k^2 / 2^20 is exact in a float
 * and in a double, and every partial sum of such terms is a multiple of
 * 2^-20 below 2^33, exact in a double: a double accumulator gives the same,
 * exact, sum in any order and any split, so the answer is checked with ==.
 */
static inline float
work_x(size_t i)
{
    return (float)(i % 1024u) / 1024.0f;
}

/* A new array of the n elements of x (free it), or NULL when out of memory.
 * Every page is touched here, so no timed run pays for first-touch faults. */
static inline float *
work_alloc_x(size_t n)
{
    float *x = (float *)malloc(n * sizeof(float));

    for (size_t i = 0; x != NULL && i < n; i++) {
        x[i] = work_x(i);
    }
    return x;
}

static inline void
work_reset_y(float *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        y[i] = 1.0f;
    }
}

/* The reduce kernel: sum of x[i]^2 over [lo, hi), in a double. */
static inline double
work_sumsq(const float *x, size_t lo, size_t hi)
{
    double s = 0.0;

    for (size_t i = lo; i < hi; i++) {
        double v = (double)x[i];

        s += v * v;
    }
    return s;
}

/* What work_sumsq(x, 0, n) must return: sum over i < n of (i mod 1024)^2,
 * divided by 2^20. */
static inline double
work_sumsq_expected(size_t n)
{
    uint64_t q = (uint64_t)(n / 1024u);
    uint64_t r = (uint64_t)(n % 1024u);
    uint64_t full = UINT64_C(1023) * 1024u * 2047u / 6u;
    uint64_t part = r == 0 ? 0 : (r - 1) * r * (2 * r - 1) / 6u;

    return (double)(q * full + part) / 1048576.0;
}

/* The for kernel: y[i] = a * x[i] + y[i] over [lo, hi). */
static inline void
work_axpy(float a, const float *x, float *y, size_t lo, size_t hi)
{
    for (size_t i = lo; i < hi; i++) {
        y[i] = a * x[i] + y[i];
    }
}

/*
 * After `passes` passes of work_axpy from y = 1: y[i] = 1 + passes * a *
 * x[i], exactly (every value is a multiple of 2^-9 below 2^15, exact in a
 * float, for up to 16k passes). Returns the first index that differs, or n.
 */
static inline size_t
work_axpy_check(const float *x, const float *y, size_t n, unsigned passes)
{
    for (size_t i = 0; i < n; i++) {
        if (y[i] != 1.0f + (float)passes * (WORK_AXPY_A * x[i])) {
            return i;
        }
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Tasks                                                                     */

/* The "empty" task: adds one to its own slot (slots are distinct objects, so
 * no two tasks race). Returns NULL. */
static inline void *
work_mark(void *slot)
{
    unsigned char *hit = (unsigned char *)slot;

    *hit = (unsigned char)(*hit + 1u);
    return NULL;
}

/* Returns the first slot work_mark did not set exactly once (a task that
 * was lost or ran twice), or n when all are right. */
static inline size_t
work_marks_check(const unsigned char *hits, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (hits[i] != 1) {
            return i;
        }
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* Clocks and statistics                                                     */

/* Makes the compiler assume the memory p points to is read and changed
 * here, so a timed computation over it is never merged with the next one or
 * moved out of the timed interval. */
static inline void
work_escape(const void *p)
{
    __asm__ __volatile__("" : : "g"(p) : "memory");
}

static inline uint64_t
work_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static inline void
work_sleep_ns(uint64_t ns)
{
    struct timespec ts;

    ts.tv_sec = (time_t)(ns / UINT64_C(1000000000));
    ts.tv_nsec = (long)(ns % UINT64_C(1000000000));
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* CPU time the whole process has used (every thread, user + system). */
static inline double
work_cpu_seconds(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
           ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) * 1e-6;
}

static inline int
work_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;

    return (x > y) - (x < y);
}

/* The median of v[0..n-1] (n > 0); sorts v. */
static inline double
work_median(double *v, size_t n)
{
    qsort(v, n, sizeof(double), work_cmp_double);
    return n % 2 != 0 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/* ------------------------------------------------------------------------ */
/* Pipelines                                                                 */

/*
 * The pipeline benchmark: a serial source makes items 1 .. n (never 0, so an
 * item fits in a non-NULL pointer), two parallel stages (A, B) transform
 * them, and a serial in-order sink (C) transforms each once more and folds
 * it into an order-sensitive hash. Every stage is work_pipe_stage: a spin
 * of `spins` iterations (0 for "trivial" stages, WORK_PIPE_SPINS for
 * "small" ones), then a hash step. Every implementation is checked against
 * work_pipe_expected: a lost, repeated or reordered item, or a stage that
 * skipped its work, changes the hash.
 */

/* Items in flight at most, in every implementation: weft's max_in_flight,
 * oneTBB's ntokens, the hand-written pipeline's tokens. 4 x the workers. */
#define WORK_PIPE_IN_FLIGHT (4u * WORK_WORKERS)
/* The "small" stage's loop: ~1 us. One iteration is a dependent multiply and
 * add (~1.13 ns on the 2-core reference machine, measured once); a constant,
 * so every program does exactly the same work whatever its own timing. */
#define WORK_PIPE_SPINS 880u
/* Items of the warm-up run before each timed one. */
#define WORK_PIPE_WARM 1000u
/* Stage numbers, mixed into each stage's hash step. */
#define WORK_PIPE_A 1u
#define WORK_PIPE_B 2u
#define WORK_PIPE_C 3u

/* The spin: k steps of a 64-bit LCG (Knuth's MMIX constants). Each step
 * depends on the last, so the loop cannot be vectorized or shortened. */
#define WORK_LCG_MUL UINT64_C(6364136223846793005)
#define WORK_LCG_ADD UINT64_C(1442695040888963407)

static inline uint64_t
work_spin(uint64_t x, unsigned k)
{
    for (unsigned i = 0; i < k; i++) {
        x = x * WORK_LCG_MUL + WORK_LCG_ADD;
    }
    return x;
}

/* The hash step of stage s; never 0. */
static inline uint64_t
work_pipe_mix(uint64_t x, unsigned s)
{
    x ^= (uint64_t)s << 56;
    x *= UINT64_C(0x9e3779b97f4a7c15);
    x ^= x >> 29;
    return x | 1u;
}

/* The source's i-th item (i from 0). */
static inline uint64_t
work_pipe_source(uint64_t i)
{
    return i + 1u;
}

/* What stage s does to an item. */
static inline uint64_t
work_pipe_stage(uint64_t x, unsigned s, unsigned spins)
{
    return work_pipe_mix(work_spin(x, spins), s);
}

/* The sink's hash: FNV-1a over whole items, so the order counts. */
#define WORK_PIPE_HASH0 UINT64_C(0xcbf29ce484222325)

static inline uint64_t
work_pipe_fold(uint64_t h, uint64_t x)
{
    return (h ^ x) * UINT64_C(0x100000001b3);
}

/*
 * The hash the sink must end with after n items. The spin is an affine map
 * mod 2^64, spin(x) = a*x + c with c = spin(0) and a = spin(1) - spin(0),
 * so the answer costs a few operations per item whatever `spins` is.
 */
static inline uint64_t
work_pipe_expected(uint64_t n, unsigned spins)
{
    uint64_t c = work_spin(0, spins);
    uint64_t a = work_spin(1, spins) - c;
    uint64_t h = WORK_PIPE_HASH0;

    for (uint64_t i = 0; i < n; i++) {
        uint64_t x = work_pipe_source(i);

        x = work_pipe_mix(a * x + c, WORK_PIPE_A);
        x = work_pipe_mix(a * x + c, WORK_PIPE_B);
        x = work_pipe_mix(a * x + c, WORK_PIPE_C);
        h = work_pipe_fold(h, x);
    }
    return h;
}

/* A work size: its name in -b ("pipeline-<name>") and in the RESULT params
 * ("work=<name>"), the spin of each stage, the items when -n is not given. */
typedef struct work_pipe_kind {
    const char *name;
    unsigned spins;
    uint64_t default_n;
} work_pipe_kind_t;

#define WORK_PIPE_KINDS 2u

/* The k-th work size (k < WORK_PIPE_KINDS). */
static inline const work_pipe_kind_t *
work_pipe_kind(unsigned k)
{
    static const work_pipe_kind_t kinds[WORK_PIPE_KINDS] = {
        {"trivial", 0u, WORK_DEFAULT_PIPE_TRIVIAL},
        {"small", WORK_PIPE_SPINS, WORK_DEFAULT_PIPE_SMALL},
    };

    return &kinds[k];
}

/* Wall-clock and CPU time (user + system, every thread of the process) of
 * one timed run. */
typedef struct work_times {
    uint64_t start_ns;
    double start_cpu;
    double secs;
    double cpu;
} work_times_t;

static inline void
work_times_start(work_times_t *t)
{
    t->start_cpu = work_cpu_seconds();
    t->start_ns = work_now_ns();
}

static inline void
work_times_stop(work_times_t *t)
{
    t->secs = (double)(work_now_ns() - t->start_ns) * 1e-9;
    t->cpu = work_cpu_seconds() - t->start_cpu;
}

/* ns per call of one small stage's spin, in this process: printed on stderr
 * next to the results, to show what "small" was in this run. */
static inline double
work_spin_ns(void)
{
    volatile unsigned spins = WORK_PIPE_SPINS;
    uint64_t x = work_spin(1, spins); /* warm-up */
    int reps = 2000;
    uint64_t start = work_now_ns();

    for (int i = 0; i < reps; i++) {
        x = work_spin(x, spins);
    }
    uint64_t ns = work_now_ns() - start;
    work_escape(&x);
    return (double)ns / reps;
}

#endif /* WEFT_BENCH_WORK_H */
