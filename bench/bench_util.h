/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the C benchmark programs: the RESULT line format, option
 * parsing, failing loudly, and a start gate so every thread of a measurement
 * begins together. Header-only: each benchmark is one translation unit.
 */
#ifndef WEFT_BENCH_UTIL_H
#define WEFT_BENCH_UTIL_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft/weft.h>

#if defined(__GNUC__)
#define BENCH_NORETURN __attribute__((noreturn))
#define BENCH_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define BENCH_NORETURN
#define BENCH_PRINTF(f, a)
#endif

/* A benchmark that computes a wrong answer or hits an error must not print a
 * number that looks valid: it says why on stderr and exits with status 1. */
static inline void bench_fail(const char *fmt, ...) BENCH_NORETURN
    BENCH_PRINTF(1, 2);

static inline void
bench_fail(const char *fmt, ...)
{
    va_list ap;

    fflush(stdout);
    fputs("bench: FAILED: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* Check a pthread / POSIX return code; these only fail on misuse or when the
 * system is out of resources, and then no measurement is meaningful. */
static inline void
bench_check(int rc, const char *what)
{
    if (rc != 0) {
        bench_fail("%s: %s", what, strerror(rc));
    }
}

/* Check a weft return code. */
static inline void
bench_check_weft(int rc, const char *what)
{
    if (rc != WEFT_OK) {
        bench_fail("%s: %s", what, weft_strerror(rc));
    }
}

/* One machine-readable line per measurement; bench/run collects these. */
static inline void
bench_result(const char *bench, const char *impl, const char *params,
             const char *metric, double value)
{
    printf("RESULT %s %s %s %s=%.6g\n", bench, impl, params, metric, value);
    fflush(stdout);
}

static inline double
bench_seconds(weft_time_t start, weft_time_t end)
{
    return (double)(end - start) / (double)WEFT_SEC;
}

/* Options common to every C benchmark. */
typedef struct bench_args {
    uint64_t n;        /* problem size (items, pairs, round trips); 0 when
                          not given and the program has no single default */
    unsigned rep;      /* repetition number: rotates the order of impls */
    const char *only;  /* run only this implementation (NULL: all) */
    const char *bench; /* run only this benchmark of a program that has
                          several (NULL: all) */
} bench_args_t;

static inline void bench_usage(const char *prog, const char *what,
                               uint64_t def_n) BENCH_NORETURN;

static inline void
bench_usage(const char *prog, const char *what, uint64_t def_n)
{
    fprintf(stderr, "usage: %s [-n %s] [-r REP] [-i IMPL] [-b BENCH]\n", prog,
            what);
    if (def_n != 0) {
        fprintf(stderr, "  -n  %s (default %" PRIu64 ")\n", what, def_n);
    } else {
        fprintf(stderr, "  -n  %s (default: per benchmark)\n", what);
    }
    fprintf(stderr,
            "  -r  repetition number; rotates the order of implementations\n"
            "  -i  run only the named implementation\n"
            "  -b  run only the named benchmark (programs with several)\n");
    exit(2);
}

static inline uint64_t
bench_parse_u64(const char *s, const char *prog, const char *what,
                uint64_t def_n)
{
    char *end = NULL;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v == 0) {
        bench_usage(prog, what, def_n);
    }
    return (uint64_t)v;
}

static inline bench_args_t
bench_parse_args(int argc, char **argv, const char *what, uint64_t def_n)
{
    bench_args_t a = {def_n, 0, NULL, NULL};
    int opt;

    while ((opt = getopt(argc, argv, "n:r:i:b:h")) != -1) {
        switch (opt) {
        case 'n':
            a.n = bench_parse_u64(optarg, argv[0], what, def_n);
            break;
        case 'r':
            a.rep = (unsigned)bench_parse_u64(optarg, argv[0], what, def_n);
            break;
        case 'i':
            a.only = optarg;
            break;
        case 'b':
            a.bench = optarg;
            break;
        default:
            bench_usage(argv[0], what, def_n);
        }
    }
    if (optind != argc) {
        bench_usage(argv[0], what, def_n);
    }
    return a;
}

/* Whether impl is selected by -i. */
static inline bool
bench_selected(const bench_args_t *a, const char *impl)
{
    return a->only == NULL || strcmp(a->only, impl) == 0;
}

/* Whether benchmark name is selected by -b. */
static inline bool
bench_wanted(const bench_args_t *a, const char *name)
{
    return a->bench == NULL || strcmp(a->bench, name) == 0;
}

/* The size to use for one benchmark: -n if given, else its default. */
static inline uint64_t
bench_size(const bench_args_t *a, uint64_t def_n)
{
    return a->n != 0 ? a->n : def_n;
}

/*
 * Index of the k-th implementation to run in repetition rep: the order
 * rotates from one repetition to the next, so no implementation always runs
 * first (cold caches, CPU frequency ramp) or right after the most expensive.
 */
static inline size_t
bench_order(size_t k, unsigned rep, size_t count)
{
    return (k + rep) % count;
}

/* Start gate: every thread of a measurement, and the timing thread, wait
 * here so thread creation stays out of the measured interval. */
typedef struct bench_gate {
    pthread_barrier_t barrier;
} bench_gate_t;

static inline void
bench_gate_init(bench_gate_t *g, unsigned parties)
{
    bench_check(pthread_barrier_init(&g->barrier, NULL, parties),
                "pthread_barrier_init");
}

static inline void
bench_gate_wait(bench_gate_t *g)
{
    int rc = pthread_barrier_wait(&g->barrier);

    if (rc != 0 && rc != PTHREAD_BARRIER_SERIAL_THREAD) {
        bench_check(rc, "pthread_barrier_wait");
    }
}

static inline void
bench_gate_fini(bench_gate_t *g)
{
    bench_check(pthread_barrier_destroy(&g->barrier),
                "pthread_barrier_destroy");
}

static inline void
bench_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    bench_check(pthread_create(t, NULL, fn, arg), "pthread_create");
}

static inline void
bench_join(pthread_t t)
{
    bench_check(pthread_join(t, NULL), "pthread_join");
}

#endif /* WEFT_BENCH_UTIL_H */
