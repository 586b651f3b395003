/* SPDX-License-Identifier: MIT */
/*
 * The work of the executor benchmarks, shared by the C programs and the C++
 * peer so that every implementation runs the same kernels and is checked
 * against the same answers: serial fib and its spawn count, the float arrays
 * of parallel_reduce / parallel_for with their exact expected results, the
 * per-task marks that prove each task ran exactly once, a median, clocks.
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

#endif /* WEFT_BENCH_WORK_H */
