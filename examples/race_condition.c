/* SPDX-License-Identifier: MIT */
/*
 * The race condition lesson: ten threads add 1 to a shared counter 10,000
 * times each. Done as "read, then write" the updates of different threads
 * overwrite each other and some are lost; done under a weft_mutex the count
 * is exactly 100,000.
 */
#include <stdatomic.h>
#include <stdio.h>

#include <weft/weft.h>

#include "example.h"

#define THREADS 10
#define INCREMENTS 10000
#define EXPECTED ((long)THREADS * INCREMENTS)

/* Every thread waits here so they all start counting at the same moment. */
static weft_barrier_t start_line;

/*
 * The unsafe counter. It is an atomic only so the program has no undefined
 * behaviour (and ThreadSanitizer stays quiet about it): each load and each
 * store is indivisible, but "load, add one, store" as a whole is not, which
 * is exactly the bug of `counter += 1` in Python or `counter++` in C.
 */
static _Atomic long unsafe_counter;

/* The safe counter: a plain long, only touched with counter_lock held. */
static weft_mutex_t counter_lock = WEFT_MUTEX_INIT;
static long safe_counter;

/* A few hundred nanoseconds of work between the read and the write: the
 * window in which another thread's update gets overwritten. */
static void
busy_delay(void)
{
    for (volatile unsigned i = 0; i < 100; i++) {
    }
}

static void *
unsafe_worker(void *arg)
{
    (void)arg;
    int rc = weft_barrier_wait(&start_line, NULL);
    EX_CHECK(rc >= 0, "barrier: %s", weft_errname(rc));
    for (int i = 0; i < INCREMENTS; i++) {
        /* Relaxed: nothing else is published through the counter; main
         * reads the total after joining the threads, and the join orders
         * every store before that read. */
        long seen = atomic_load_explicit(&unsafe_counter, memory_order_relaxed);
        busy_delay();
        atomic_store_explicit(&unsafe_counter, seen + 1, memory_order_relaxed);
    }
    return NULL;
}

static void *
safe_worker(void *arg)
{
    (void)arg;
    int rc = weft_barrier_wait(&start_line, NULL);
    EX_CHECK(rc >= 0, "barrier: %s", weft_errname(rc));
    for (int i = 0; i < INCREMENTS; i++) {
        EX_OK(weft_mutex_lock(&counter_lock));
        long seen = safe_counter;
        busy_delay();
        safe_counter = seen + 1;
        weft_mutex_unlock(&counter_lock);
    }
    return NULL;
}

/* Run fn in THREADS threads from one start line; returns the seconds taken. */
static double
run_threads(const char *prefix, weft_thread_fn fn)
{
    weft_thread_t *threads[THREADS];

    EX_OK(weft_barrier_init(&start_line, THREADS, NULL, NULL));
    weft_time_t t0 = weft_now();
    ex_start_threads(threads, THREADS, prefix, fn, NULL, 0);
    ex_join_threads(threads, THREADS);
    double secs = ex_seconds_since(t0);
    weft_barrier_fini(&start_line);
    return secs;
}

int
main(void)
{
    printf("%d threads each add 1 to a shared counter %d times: %ld "
           "expected.\n\n",
           THREADS, INCREMENTS, EXPECTED);

    double unsafe_secs = run_threads("racer", unsafe_worker);
    long unsafe_total = atomic_load(&unsafe_counter);
    long lost = EXPECTED - unsafe_total;
    printf("Without a lock (read the counter, then write it back):\n"
           "  counter = %ld, %ld updates lost (%.1f%%), %.3f s\n",
           unsafe_total, lost, 100.0 * (double)lost / (double)EXPECTED,
           unsafe_secs);
    if (lost == 0) {
        printf("  No update was lost this time: the threads happened not to "
               "overlap\n  (a quiet or single-core machine). The code is "
               "still wrong; run it again.\n");
    } else {
        printf("  Two threads read the same value and both wrote value+1: "
               "one increment vanished.\n");
    }
    /* Every store writes an earlier value plus one, so lost updates can only
     * lower the count, never raise it. */
    EX_CHECK(unsafe_total > 0 && unsafe_total <= EXPECTED,
             "the unsafe count %ld must lie in [1, %ld]", unsafe_total,
             EXPECTED);

    double safe_secs = run_threads("locked", safe_worker);
    printf("\nWith weft_mutex_lock/unlock around the read and the write:\n"
           "  counter = %ld, %.3f s\n",
           safe_counter, safe_secs);
    EX_CHECK(safe_counter == EXPECTED, "the locked count is %ld, not %ld",
             safe_counter, EXPECTED);
    printf("  Exactly %ld: the lock makes read-add-write one step that no "
           "other thread can split.\n",
           EXPECTED);
    weft_mutex_fini(&counter_lock);
    return 0;
}
