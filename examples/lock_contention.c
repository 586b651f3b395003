/* SPDX-License-Identifier: MIT */
/*
 * The "minimise lock contention" lesson: four threads sum a large array.
 * (a) Every thread takes one shared weft_mutex for every element: correct,
 * but the threads spend their time queueing for the lock. (b) An atomic add
 * per element needs no lock, yet the counter's cache line still bounces
 * between cores. (c) Each thread sums its own slice privately and merges
 * once under the lock. All three give the exact sum; (c) is the fast one.
 *
 * Usage: ex_lock_contention [ELEMENTS]
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft/weft.h>

#include "example.h"

#define THREADS 4
#define DEFAULT_N (EX_SANITIZED ? 300000u : 3000000u)

typedef enum { LOCK_EACH, ATOMIC_EACH, MERGE_ONCE } variant_t;

typedef struct slice {
    const uint32_t *a;
    size_t lo, hi;
    variant_t how;
} slice_t;

static weft_mutex_t total_lock = WEFT_MUTEX_INIT;
static uint64_t total;               /* guarded by total_lock */
static atomic_uint_least64_t atotal; /* variant (b) */

static void
sum_lock_each(const slice_t *s)
{
    for (size_t i = s->lo; i < s->hi; i++) {
        EX_OK(weft_mutex_lock(&total_lock));
        total += s->a[i];
        weft_mutex_unlock(&total_lock);
    }
}

static void
sum_atomic_each(const slice_t *s)
{
    for (size_t i = s->lo; i < s->hi; i++) {
        /* Relaxed: only the final value matters, and main reads it after
         * joining the threads, which orders every add before the read. */
        atomic_fetch_add_explicit(&atotal, s->a[i], memory_order_relaxed);
    }
}

static void
sum_merge_once(const slice_t *s)
{
    uint64_t mine = 0;
    for (size_t i = s->lo; i < s->hi; i++) {
        mine += s->a[i];
    }
    EX_OK(weft_mutex_lock(&total_lock));
    total += mine;
    weft_mutex_unlock(&total_lock);
}

static void *
summer(void *arg)
{
    const slice_t *s = arg;

    switch (s->how) {
    case LOCK_EACH:
        sum_lock_each(s);
        break;
    case ATOMIC_EACH:
        sum_atomic_each(s);
        break;
    case MERGE_ONCE:
        sum_merge_once(s);
        break;
    }
    return NULL;
}

/* Sum a[0..n) with THREADS threads the given way; returns the seconds. */
static double
run(const uint32_t *a, size_t n, variant_t how, uint64_t *sum)
{
    weft_thread_t *threads[THREADS];
    slice_t slices[THREADS];

    total = 0;
    atomic_store(&atotal, 0);
    for (size_t i = 0; i < THREADS; i++) {
        slices[i] = (slice_t){a, n * i / THREADS, n * (i + 1) / THREADS, how};
    }
    weft_time_t t0 = weft_now();
    ex_start_threads(threads, THREADS, "summer", summer, slices,
                     sizeof slices[0]);
    ex_join_threads(threads, THREADS);
    double secs = ex_seconds_since(t0);
    *sum = how == ATOMIC_EACH ? atomic_load(&atotal) : total;
    return secs;
}

static size_t
parse_size(int argc, char **argv)
{
    if (argc < 2) {
        return DEFAULT_N;
    }
    char *end;
    unsigned long long n = strtoull(argv[1], &end, 10);
    EX_CHECK(*end == '\0' && n >= THREADS && n <= SIZE_MAX / 4,
             "usage: %s [ELEMENTS >= %d]", argv[0], THREADS);
    return (size_t)n;
}

int
main(int argc, char **argv)
{
    static const char *const label[] = {
        "(a) lock the shared total per element ",
        "(b) atomic add per element, no lock   ",
        "(c) private sums, one locked merge    "};
    size_t n = parse_size(argc, argv);
    uint32_t *a = malloc(n * sizeof *a);
    uint64_t serial = 0, sums[3];
    double secs[3];

    EX_CHECK(a != NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        a[i] = (uint32_t)(i * 2654435761u) >> 12;
        serial += a[i];
    }
    printf("%d threads sum %zu numbers (%d CPUs usable); exact total %llu\n",
           THREADS, n, weft_cpu_count(), (unsigned long long)serial);
    for (int v = 0; v < 3; v++) {
        secs[v] = run(a, n, (variant_t)v, &sums[v]);
        printf("  %s %8.3f s  %6.1f ns/element  sum %llu\n", label[v], secs[v],
               secs[v] * 1e9 / (double)n, (unsigned long long)sums[v]);
    }
    for (int v = 0; v < 3; v++) {
        EX_CHECK(sums[v] == serial, "variant %d summed %llu, not %llu", v,
                 (unsigned long long)sums[v], (unsigned long long)serial);
    }
    printf("  all three sums are exact. Speed-up of (c) over (a): %.0fx, "
           "over (b): %.0fx\n",
           secs[0] / secs[2], secs[1] / secs[2]);
    printf("  Lesson: share less. Work on private data and synchronise once, "
           "not per item.\n");
    free(a);
    weft_mutex_fini(&total_lock);
    return 0;
}
