/* SPDX-License-Identifier: MIT */
/*
 * CPU-bound work on threads: count the primes below 3 million by trial
 * division, in one thread, then with weft_parallel_reduce on the pool's CPU
 * workers. Python needs a process pool for this (the GIL lets one thread
 * compute at a time); in C the workers of a thread pool compute in
 * parallel, share the input and need no pickling. The counts must agree
 * (and match the known pi(3,000,000)); the speed-up is printed.
 *
 * The machine may be shared, so the speed-up is checked against what it
 * gives right now: plain threads with a hand-balanced split show whether
 * two CPUs were available. When they were, the pool must beat one thread
 * by more than 1.2x.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <weft/pool.h>

#include "example.h"

/* pi(N): 216816 primes below 3 million, 41538 below 500 thousand. */
#define N (EX_SANITIZED ? 500000u : 3000000u)
#define PI_N (EX_SANITIZED ? 41538u : 216816u)

static bool
is_prime(uint64_t n)
{
    if (n < 4) {
        return n >= 2;
    }
    if (n % 2 == 0) {
        return false;
    }
    for (uint64_t d = 3; d * d <= n; d += 2) {
        if (n % d == 0) {
            return false;
        }
    }
    return true;
}

/* The reduce body: add the primes in [lo, hi) to the partial count. Larger
 * numbers cost more; the pool's workers steal the remaining ranges, so the
 * uneven chunks still spread over all of them. */
static void
count_range(size_t lo, size_t hi, void *acc, void *ctx)
{
    uint64_t *count = acc;
    (void)ctx;
    for (size_t n = lo; n < hi; n++) {
        *count += is_prime(n);
    }
}

static void
add_counts(void *into, const void *from, void *ctx)
{
    (void)ctx;
    *(uint64_t *)into += *(const uint64_t *)from;
}

/* The control: one plain thread per CPU, thread k counting every k-th
 * chunk, which balances the cost without any scheduler. */
#define CHUNK 10000u
#define MAX_THREADS 64

typedef struct part {
    size_t k, of;
    uint64_t count;
} part_t;

static void *
count_part(void *arg)
{
    part_t *p = arg;
    for (size_t lo = p->k * CHUNK; lo < N; lo += p->of * CHUNK) {
        count_range(lo, lo + CHUNK < N ? lo + CHUNK : N, &p->count, NULL);
    }
    return NULL;
}

static uint64_t
count_with_threads(size_t n_threads)
{
    weft_thread_t *t[MAX_THREADS];
    part_t parts[MAX_THREADS];
    uint64_t count = 0;

    for (size_t k = 0; k < n_threads; k++) {
        parts[k] = (part_t){k, n_threads, 0};
    }
    ex_start_threads(t, n_threads, "counter", count_part, parts,
                     sizeof parts[0]);
    ex_join_threads(t, n_threads);
    for (size_t k = 0; k < n_threads; k++) {
        count += parts[k].count;
    }
    return count;
}

typedef struct timings {
    double seq, pool, threads; /* best seconds seen */
} timings_t;

static void
keep_best(double *best, weft_time_t t0)
{
    double s = ex_seconds_since(t0);
    *best = s < *best ? s : *best;
}

int
main(void)
{
    weft_executor_t *pool;
    timings_t best = {1e9, 1e9, 1e9};
    uint64_t seq_count = 0, par_count = 0, thr_count = 0;

    EX_OK(weft_pool_create(NULL, &pool));
    unsigned workers = weft_pool_workers(pool);
    size_t n_threads = workers < MAX_THREADS ? workers : MAX_THREADS;
    bool check_gain = workers >= 2 && !EX_SANITIZED;
    printf("Counting the primes below %u by trial division, %u workers:\n", N,
           workers);

    /* Best of up to four rounds: the machine may be busy with other work.
     * The rounds stop once the gain is clear. */
    for (int round = 0;
         round == 0 || (check_gain && round < 4 && best.seq / best.pool <= 1.2);
         round++) {
        weft_time_t t0 = weft_now();
        seq_count = 0;
        count_range(0, N, &seq_count, NULL);
        keep_best(&best.seq, t0);

        t0 = weft_now();
        par_count = 0; /* the identity of the sum */
        EX_OK(weft_parallel_reduce(pool, 0, N, 0, &par_count, sizeof par_count,
                                   count_range, add_counts, NULL));
        keep_best(&best.pool, t0);

        t0 = weft_now();
        thr_count = count_with_threads(n_threads);
        keep_best(&best.threads, t0);
    }
    weft_executor_destroy(pool);
    double pool_gain = best.seq / best.pool;
    double thr_gain = best.seq / best.threads;
    printf("  one thread:            %llu primes in %.3f s\n",
           (unsigned long long)seq_count, best.seq);
    printf("  weft_parallel_reduce:  %llu primes in %.3f s: %.2fx\n",
           (unsigned long long)par_count, best.pool, pool_gain);
    printf("  %zu plain threads:       %llu primes in %.3f s: %.2fx (the "
           "control)\n",
           n_threads, (unsigned long long)thr_count, best.threads, thr_gain);

    EX_CHECK(seq_count == PI_N, "one thread counted %llu, not %u",
             (unsigned long long)seq_count, PI_N);
    EX_CHECK(par_count == seq_count && thr_count == seq_count,
             "the parallel counts differ");
    if (check_gain && thr_gain < 1.3) {
        printf("  the machine is busy: plain threads gained %.2fx, so the "
               "pool's speed-up is not checked\n",
               thr_gain);
    } else {
        EX_CHECK(!check_gain || pool_gain > 1.2,
                 "no speed-up from %u workers (plain threads: %.2fx)", workers,
                 thr_gain);
    }
    return 0;
}
