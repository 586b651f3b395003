/* SPDX-License-Identifier: MIT */
/*
 * The semaphore lesson: five threads share three "connections", guarded by a
 * bounded weft_sem of three permits. The program counts how many threads are
 * inside at once and checks it never passes three (and does reach three).
 * Releasing a permit nobody took fails with WEFT_ERANGE on a bounded
 * semaphore, like Python's BoundedSemaphore.
 */
#include <stdatomic.h>
#include <stdio.h>

#include <weft/weft.h>

#include "example.h"

#define THREADS 5
#define PERMITS 3
#define ROUNDS 20

static weft_sem_t pool;
static weft_barrier_t start_line;

/* How many threads hold a permit right now, and the most ever seen. Both are
 * seq_cst: the count must be exact at every instant to prove the bound. */
static atomic_uint inside;
static atomic_uint most_inside;

typedef struct worker {
    unsigned entries;
    double waited_ms;
} worker_t;

static void
record_peak(unsigned now)
{
    unsigned seen = atomic_load(&most_inside);
    while (now > seen &&
           !atomic_compare_exchange_weak(&most_inside, &seen, now)) {
    }
}

static void *
worker(void *arg)
{
    worker_t *w = arg;

    int rc = weft_barrier_wait(&start_line, NULL);
    EX_CHECK(rc >= 0, "barrier: %s", weft_errname(rc));
    for (int i = 0; i < ROUNDS; i++) {
        weft_time_t t0 = weft_now();
        EX_OK(weft_sem_acquire(&pool));
        w->waited_ms += ex_seconds_since(t0) * 1e3;
        record_peak(atomic_fetch_add(&inside, 1) + 1);
        w->entries++;
        /* Use the "connection" for a moment. */
        EX_OK(weft_sleep_for(2 * WEFT_MSEC));
        atomic_fetch_sub(&inside, 1);
        EX_OK(weft_sem_release(&pool, 1));
    }
    return NULL;
}

static void
show_bound(void)
{
    weft_thread_t *threads[THREADS];
    worker_t workers[THREADS] = {{0, 0.0}};

    EX_OK(weft_sem_init_bounded(&pool, PERMITS, PERMITS));
    EX_OK(weft_barrier_init(&start_line, THREADS, NULL, NULL));
    printf("%d threads, each entering %d times a section guarded by a "
           "semaphore of %d permits:\n",
           THREADS, ROUNDS, PERMITS);
    weft_time_t t0 = weft_now();
    ex_start_threads(threads, THREADS, "worker", worker, workers,
                     sizeof workers[0]);
    ex_join_threads(threads, THREADS);
    double secs = ex_seconds_since(t0);
    for (int i = 0; i < THREADS; i++) {
        printf("  worker-%d: entered %u times, waited %.1f ms for a permit\n",
               i, workers[i].entries, workers[i].waited_ms);
    }
    unsigned most = atomic_load(&most_inside);
    printf("  most threads inside at once: %u (limit %d), %.3f s in all\n",
           most, PERMITS, secs);
    EX_CHECK(most <= PERMITS, "%u threads were inside at once", most);
    EX_CHECK(most == PERMITS, "the section never filled up (most %u)", most);
    EX_CHECK(weft_sem_value(&pool) == PERMITS, "every permit came back");
    weft_barrier_fini(&start_line);
}

static void
show_over_release(void)
{
    weft_sem_t loose;

    printf("\nReleasing a permit that nobody acquired:\n");
    int rc = weft_sem_release(&pool, 1);
    printf("  bounded semaphore:   %s (%s), still %u permits\n",
           weft_errname(rc), weft_strerror(rc), weft_sem_value(&pool));
    EX_CHECK(rc == WEFT_ERANGE, "over-release must give WEFT_ERANGE");
    EX_CHECK(weft_sem_value(&pool) == PERMITS, "nothing may be released");

    EX_OK(weft_sem_init(&loose, PERMITS));
    rc = weft_sem_release(&loose, 1);
    printf("  unbounded semaphore: %s, now %u permits: the bug goes unseen\n",
           weft_errname(rc), weft_sem_value(&loose));
    EX_CHECK(rc == WEFT_OK && weft_sem_value(&loose) == PERMITS + 1,
             "an unbounded semaphore grows");
    weft_sem_fini(&loose);
}

static void
show_trio(void)
{
    printf("\nThe three ways to wait, with every permit taken:\n");
    for (int i = 0; i < PERMITS; i++) {
        EX_OK(weft_sem_try_acquire(&pool));
    }
    int rc = weft_sem_try_acquire(&pool);
    printf("  try_acquire:              %s (never blocks)\n", weft_errname(rc));
    EX_CHECK(rc == WEFT_EAGAIN, "no permit is free");

    weft_time_t t0 = weft_now();
    weft_time_t deadline = weft_deadline_in(10 * WEFT_MSEC);
    rc = weft_sem_acquire_until(&pool, deadline);
    printf("  acquire_until (+10 ms):   %s after %.1f ms\n", weft_errname(rc),
           ex_seconds_since(t0) * 1e3);
    EX_CHECK(rc == WEFT_ETIMEDOUT, "nobody releases, so the wait times out");
    EX_CHECK(weft_now() >= deadline, "a timed wait never ends early");

    EX_OK(weft_sem_release(&pool, PERMITS));
    rc = weft_sem_acquire(&pool);
    printf("  acquire (blocks at need): %s once the permits are back\n",
           weft_errname(rc));
    EX_CHECK(rc == WEFT_OK, "a permit is free again");
    EX_OK(weft_sem_release(&pool, 1));
}

int
main(void)
{
    show_bound();
    show_over_release();
    show_trio();
    weft_sem_fini(&pool);
    return 0;
}
