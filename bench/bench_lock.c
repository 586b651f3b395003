/* SPDX-License-Identifier: MIT */
/*
 * Mutex cost: uncontended lock+unlock pairs in one thread, then 2 and 4
 * threads each doing lock / ++shared / unlock a fixed number of times;
 * weft_mutex against pthread_mutex with default attributes. The contended
 * runs check the final count.
 */
#define _POSIX_C_SOURCE 200809L

#include "bench_util.h"

#define DEFAULT_PAIRS UINT64_C(50000000)
/* Contended runs do this fraction of the uncontended pairs in total: a
 * contended pair costs a cache-line transfer or a sleep, not a few ns. */
#define CONTENDED_DIVISOR 5u
#define MAX_THREADS 4u

typedef struct lock_impl {
    const char *name;
    void (*init)(void *lock);
    void (*fini)(void *lock);
    uint64_t (*pairs)(void *lock, uint64_t n, uint64_t *shared);
} lock_impl_t;

/* Storage for either kind of lock, and the counter it protects. */
typedef struct lock_box {
    union {
        weft_mutex_t weft;
        pthread_mutex_t posix;
    } u;
    uint64_t shared;
} lock_box_t;

/* ------------------------------------------------------------------------ */
/* The measured loops, written out per implementation so that each lock and  */
/* unlock is a direct call, as in real code. The counter increment is the    */
/* critical section; uncontended, it stays in this core's cache.             */

static uint64_t
weft_pairs(void *lock, uint64_t n, uint64_t *shared)
{
    weft_mutex_t *m = lock;
    uint64_t failures = 0;

    for (uint64_t i = 0; i < n; i++) {
        if (weft_mutex_lock(m) != WEFT_OK) {
            failures++;
            continue;
        }
        ++*shared;
        weft_mutex_unlock(m);
    }
    return failures;
}

static uint64_t
posix_pairs(void *lock, uint64_t n, uint64_t *shared)
{
    pthread_mutex_t *m = lock;
    uint64_t failures = 0;

    for (uint64_t i = 0; i < n; i++) {
        if (pthread_mutex_lock(m) != 0) {
            failures++;
            continue;
        }
        ++*shared;
        pthread_mutex_unlock(m);
    }
    return failures;
}

static void
weft_init(void *lock)
{
    weft_mutex_init(lock);
}

static void
weft_fini(void *lock)
{
    weft_mutex_fini(lock);
}

static void
posix_init(void *lock)
{
    bench_check(pthread_mutex_init(lock, NULL), "pthread_mutex_init");
}

static void
posix_fini(void *lock)
{
    bench_check(pthread_mutex_destroy(lock), "pthread_mutex_destroy");
}

static const lock_impl_t impls[] = {
    {"weft", weft_init, weft_fini, weft_pairs},
    {"pthread", posix_init, posix_fini, posix_pairs},
};
#define N_IMPLS (sizeof(impls) / sizeof(impls[0]))

/* ------------------------------------------------------------------------ */
/* Harness                                                                   */

typedef struct worker {
    const lock_impl_t *im;
    lock_box_t *box;
    bench_gate_t *gate;
    uint64_t n;
    uint64_t failures;
    weft_time_t began, ended; /* this worker's own span */
} worker_t;

static void *
worker_main(void *arg)
{
    worker_t *w = arg;

    bench_gate_wait(w->gate);
    w->began = weft_now();
    w->failures = w->im->pairs(&w->box->u, w->n, &w->box->shared);
    w->ended = weft_now();
    return NULL;
}

/* Returns seconds for threads * n pairs, each incrementing the counter. */
static double
contended(const lock_impl_t *im, lock_box_t *box, unsigned threads, uint64_t n)
{
    worker_t w[MAX_THREADS];
    pthread_t t[MAX_THREADS];
    bench_gate_t gate;

    bench_gate_init(&gate, threads + 1);
    for (unsigned i = 0; i < threads; i++) {
        w[i] = (worker_t){im, box, &gate, n, 0, 0, 0};
        bench_start(&t[i], worker_main, &w[i]);
    }
    bench_gate_wait(&gate);
    for (unsigned i = 0; i < threads; i++) {
        bench_join(t[i]);
    }
    /* From the first worker's start to the last one's end: the workers'
     * own clocks, so a descheduled main thread cannot shrink the span. */
    weft_time_t first = w[0].began, last = w[0].ended;
    for (unsigned i = 1; i < threads; i++) {
        first = w[i].began < first ? w[i].began : first;
        last = w[i].ended > last ? w[i].ended : last;
    }
    double secs = bench_seconds(first, last);
    bench_gate_fini(&gate);
    for (unsigned i = 0; i < threads; i++) {
        if (w[i].failures != 0) {
            bench_fail("lock %s: %" PRIu64 " lock calls failed", im->name,
                       w[i].failures);
        }
    }
    return secs;
}

static double
uncontended(const lock_impl_t *im, lock_box_t *box, uint64_t n)
{
    weft_time_t start = weft_now();
    uint64_t failures = im->pairs(&box->u, n, &box->shared);
    double secs = bench_seconds(start, weft_now());

    if (failures != 0) {
        bench_fail("lock %s: %" PRIu64 " lock calls failed", im->name,
                   failures);
    }
    return secs;
}

static void
measure(const lock_impl_t *im, unsigned threads, uint64_t n)
{
    lock_box_t box;
    char params[32];
    double secs;
    uint64_t pairs = n * threads;

    memset(&box, 0, sizeof(box));
    im->init(&box.u);
    if (threads == 1) {
        secs = uncontended(im, &box, n);
    } else {
        secs = contended(im, &box, threads, n);
    }
    if (box.shared != pairs) {
        bench_fail("lock %s threads=%u: counter is %" PRIu64
                   ", expected %" PRIu64,
                   im->name, threads, box.shared, pairs);
    }
    im->fini(&box.u);
    snprintf(params, sizeof(params), "threads=%u", threads);
    bench_result("lock", im->name, params, "ops_per_s", (double)pairs / secs);
    bench_result("lock", im->name, params, "ns_per_pair",
                 secs * 1e9 / (double)pairs);
}

int
main(int argc, char **argv)
{
    static const unsigned threads[] = {1, 2, 4};
    bench_args_t a = bench_parse_args(argc, argv, "PAIRS", DEFAULT_PAIRS);

    for (size_t c = 0; c < sizeof(threads) / sizeof(threads[0]); c++) {
        uint64_t per_thread = a.n;

        if (threads[c] > 1) {
            per_thread = a.n / CONTENDED_DIVISOR / threads[c];
            per_thread = per_thread == 0 ? 1 : per_thread;
        }
        for (size_t k = 0; k < N_IMPLS; k++) {
            const lock_impl_t *im = &impls[bench_order(k, a.rep, N_IMPLS)];

            if (bench_selected(&a, im->name)) {
                measure(im, threads[c], per_thread);
            }
        }
    }
    return 0;
}
