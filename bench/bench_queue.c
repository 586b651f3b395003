/* SPDX-License-Identifier: MIT */
/*
 * Bounded blocking MPMC queue throughput: weft_queue (one item per call, and
 * batches of 64 as "weft-batch") against the mutex + two condition variables
 * ring most C code hand-rolls, with 1, 2 and 4 producers and as many
 * consumers, capacity 1024, 8-byte items. Every run checks its answer.
 */
#define _POSIX_C_SOURCE 200809L

#include "bench_util.h"

/*
 * DESIGN
 * Producer p puts the values (p << 40) | 1 .. (p << 40) | n_p, in order.
 * Each consumer keeps, per producer, the last sequence number it saw: a
 * FIFO queue hands one consumer a producer's items in increasing order, so a
 * step backwards is a lost, duplicated or reordered item. Consumers also sum
 * and count what they take; the totals must equal what was put. The timing
 * thread releases everyone through a barrier, joins the producers, closes the
 * queue (consumers drain it, then see "closed") and stops the clock when the
 * last consumer has finished.
 */

#define CAPACITY 1024u
#define BATCH 64u
#define MAX_THREADS 8u
#define PROD_SHIFT 40
#define SEQ_MASK ((UINT64_C(1) << PROD_SHIFT) - 1)
#define DEFAULT_ITEMS UINT64_C(10000000)

/* ------------------------------------------------------------------------ */
/* The naive ring: one mutex, "not full" and "not empty" conditions.         */

typedef struct ring {
    pthread_mutex_t mu;
    pthread_cond_t not_full;
    pthread_cond_t not_empty;
    uint64_t *buf;
    size_t cap;
    size_t head; /* next slot to read */
    size_t count;
    bool closed;
} ring_t;

static void
ring_init(ring_t *r, size_t cap)
{
    bench_check(pthread_mutex_init(&r->mu, NULL), "pthread_mutex_init");
    bench_check(pthread_cond_init(&r->not_full, NULL), "pthread_cond_init");
    bench_check(pthread_cond_init(&r->not_empty, NULL), "pthread_cond_init");
    r->buf = malloc(cap * sizeof(*r->buf));
    if (r->buf == NULL) {
        bench_fail("out of memory");
    }
    r->cap = cap;
    r->head = 0;
    r->count = 0;
    r->closed = false;
}

static void
ring_fini(ring_t *r)
{
    free(r->buf);
    pthread_cond_destroy(&r->not_empty);
    pthread_cond_destroy(&r->not_full);
    pthread_mutex_destroy(&r->mu);
}

/* Returns false when the ring is closed. */
static bool
ring_put(ring_t *r, uint64_t v)
{
    pthread_mutex_lock(&r->mu);
    while (r->count == r->cap && !r->closed) {
        pthread_cond_wait(&r->not_full, &r->mu);
    }
    if (r->closed) {
        pthread_mutex_unlock(&r->mu);
        return false;
    }
    r->buf[(r->head + r->count) % r->cap] = v;
    r->count++;
    pthread_cond_signal(&r->not_empty);
    pthread_mutex_unlock(&r->mu);
    return true;
}

/* Returns false when the ring is closed and empty. */
static bool
ring_get(ring_t *r, uint64_t *v)
{
    pthread_mutex_lock(&r->mu);
    while (r->count == 0 && !r->closed) {
        pthread_cond_wait(&r->not_empty, &r->mu);
    }
    if (r->count == 0) {
        pthread_mutex_unlock(&r->mu);
        return false;
    }
    *v = r->buf[r->head];
    r->head = (r->head + 1) % r->cap;
    r->count--;
    pthread_cond_signal(&r->not_full);
    pthread_mutex_unlock(&r->mu);
    return true;
}

static void
ring_close(ring_t *r)
{
    pthread_mutex_lock(&r->mu);
    r->closed = true;
    pthread_cond_broadcast(&r->not_full);
    pthread_cond_broadcast(&r->not_empty);
    pthread_mutex_unlock(&r->mu);
}

/* ------------------------------------------------------------------------ */
/* One measurement                                                           */

typedef struct run {
    weft_queue_t *wq;
    ring_t ring;
    bench_gate_t gate;
    unsigned producers;
} run_t;

typedef struct worker {
    run_t *run;
    unsigned id;
    uint64_t n;        /* producer: items to put */
    uint64_t sum;      /* consumer: sum of the items taken */
    uint64_t count;    /* consumer: items taken */
    const char *error; /* set when the worker saw something wrong */
    char pad_[64];     /* keep neighbouring workers off this cache line */
} worker_t;

/* A consumer's view of what it has taken so far. */
typedef struct tally {
    uint64_t last[MAX_THREADS];
    uint64_t sum;
    uint64_t count;
    unsigned producers;
    bool bad;
} tally_t;

static void
tally_init(tally_t *t, unsigned producers)
{
    memset(t, 0, sizeof(*t));
    t->producers = producers;
}

static inline void
tally_add(tally_t *t, uint64_t v)
{
    uint64_t p = v >> PROD_SHIFT;
    uint64_t seq = v & SEQ_MASK;

    if (p >= t->producers || seq <= t->last[p]) {
        t->bad = true;
        return;
    }
    t->last[p] = seq;
    t->sum += v;
    t->count++;
}

static void
tally_finish(const tally_t *t, worker_t *w)
{
    w->sum = t->sum;
    w->count = t->count;
    if (t->bad) {
        w->error = "an item arrived out of per-producer order, or corrupt";
    }
}

static inline uint64_t
item(const worker_t *w, uint64_t k)
{
    return ((uint64_t)w->id << PROD_SHIFT) | k;
}

/* ------------------------------------------------------------------------ */
/* weft_queue, one item per call                                             */

static void *
weft_producer(void *arg)
{
    worker_t *w = arg;
    weft_queue_t *q = w->run->wq;

    bench_gate_wait(&w->run->gate);
    for (uint64_t k = 1; k <= w->n; k++) {
        uint64_t v = item(w, k);

        if (weft_queue_put(q, &v) != WEFT_OK) {
            w->error = "weft_queue_put failed";
            break;
        }
    }
    return NULL;
}

static void *
weft_consumer(void *arg)
{
    worker_t *w = arg;
    weft_queue_t *q = w->run->wq;
    tally_t t;

    tally_init(&t, w->run->producers);
    bench_gate_wait(&w->run->gate);
    for (;;) {
        uint64_t v;
        int rc = weft_queue_get(q, &v);

        if (rc == WEFT_ECLOSED) {
            break;
        }
        if (rc != WEFT_OK) {
            w->error = "weft_queue_get failed";
            weft_queue_close(q); /* so no producer waits forever */
            break;
        }
        tally_add(&t, v);
    }
    tally_finish(&t, w);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* weft_queue, batches of BATCH items                                        */

static void *
weft_batch_producer(void *arg)
{
    worker_t *w = arg;
    weft_queue_t *q = w->run->wq;
    uint64_t items[BATCH];

    bench_gate_wait(&w->run->gate);
    for (uint64_t k = 1; k <= w->n;) {
        size_t n = 0;
        size_t done = 0;

        while (n < BATCH && k <= w->n) {
            items[n++] = item(w, k++);
        }
        if (weft_queue_put_many(q, items, n, &done, WEFT_FOREVER) != WEFT_OK ||
            done != n) {
            w->error = "weft_queue_put_many failed";
            break;
        }
    }
    return NULL;
}

static void *
weft_batch_consumer(void *arg)
{
    worker_t *w = arg;
    weft_queue_t *q = w->run->wq;
    uint64_t items[BATCH];
    tally_t t;

    tally_init(&t, w->run->producers);
    bench_gate_wait(&w->run->gate);
    for (;;) {
        size_t got = 0;
        int rc = weft_queue_get_many(q, items, BATCH, &got, WEFT_FOREVER);

        if (rc == WEFT_ECLOSED) {
            break;
        }
        if (rc != WEFT_OK || got == 0 || got > BATCH) {
            w->error = "weft_queue_get_many failed";
            weft_queue_close(q); /* so no producer waits forever */
            break;
        }
        for (size_t i = 0; i < got; i++) {
            tally_add(&t, items[i]);
        }
    }
    tally_finish(&t, w);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* The naive ring                                                            */

static void *
ring_producer(void *arg)
{
    worker_t *w = arg;
    ring_t *r = &w->run->ring;

    bench_gate_wait(&w->run->gate);
    for (uint64_t k = 1; k <= w->n; k++) {
        if (!ring_put(r, item(w, k))) {
            w->error = "ring closed under a producer";
            break;
        }
    }
    return NULL;
}

static void *
ring_consumer(void *arg)
{
    worker_t *w = arg;
    ring_t *r = &w->run->ring;
    uint64_t v;
    tally_t t;

    tally_init(&t, w->run->producers);
    bench_gate_wait(&w->run->gate);
    while (ring_get(r, &v)) {
        tally_add(&t, v);
    }
    tally_finish(&t, w);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Harness                                                                   */

typedef struct impl {
    const char *name;
    void *(*producer)(void *);
    void *(*consumer)(void *);
    bool is_weft;
} impl_t;

static const impl_t impls[] = {
    {"weft", weft_producer, weft_consumer, true},
    {"weft-batch", weft_batch_producer, weft_batch_consumer, true},
    {"mutex-ring", ring_producer, ring_consumer, false},
};
#define N_IMPLS (sizeof(impls) / sizeof(impls[0]))

static void
make_queue(run_t *run, const impl_t *im)
{
    if (im->is_weft) {
        weft_queue_opts_t o = WEFT_QUEUE_OPTS_INIT;

        o.capacity = CAPACITY;
        o.elem_size = sizeof(uint64_t);
        o.name = "bench";
        bench_check_weft(weft_queue_create(&o, &run->wq), "weft_queue_create");
    } else {
        ring_init(&run->ring, CAPACITY);
    }
}

static void
close_queue(run_t *run, const impl_t *im)
{
    if (im->is_weft) {
        weft_queue_close(run->wq);
    } else {
        ring_close(&run->ring);
    }
}

static void
free_queue(run_t *run, const impl_t *im)
{
    if (im->is_weft) {
        weft_queue_destroy(run->wq);
    } else {
        ring_fini(&run->ring);
    }
}

/* What the consumers must have summed: producer p put (p << 40) | k for
 * k = 1 .. n_p. Unsigned arithmetic wraps identically on both sides. */
static uint64_t
expected_sum(const worker_t *w, unsigned producers)
{
    uint64_t sum = 0;

    for (unsigned p = 0; p < producers; p++) {
        uint64_t n = w[p].n;

        sum += n * ((uint64_t)p << PROD_SHIFT) + n * (n + 1) / 2;
    }
    return sum;
}

static void
verify(const impl_t *im, const worker_t *w, unsigned np, unsigned nc,
       uint64_t items)
{
    uint64_t sum = 0;
    uint64_t count = 0;

    for (unsigned i = 0; i < np + nc; i++) {
        if (w[i].error != NULL) {
            bench_fail("queue %s p=%u c=%u: %s", im->name, np, nc, w[i].error);
        }
        sum += w[i].sum;
        count += w[i].count;
    }
    if (count != items || sum != expected_sum(w, np)) {
        bench_fail("queue %s p=%u c=%u: consumers took %" PRIu64
                   " items (sum %" PRIu64 "), expected %" PRIu64
                   " (sum %" PRIu64 ")",
                   im->name, np, nc, count, sum, items, expected_sum(w, np));
    }
}

/* Runs one configuration and returns items per second. */
static double
measure(const impl_t *im, unsigned np, unsigned nc, uint64_t items)
{
    run_t run;
    worker_t w[2 * MAX_THREADS];
    pthread_t t[2 * MAX_THREADS];
    weft_time_t start;

    memset(&run, 0, sizeof(run));
    memset(w, 0, sizeof(w));
    run.producers = np;
    make_queue(&run, im);
    bench_gate_init(&run.gate, np + nc + 1);
    for (unsigned i = 0; i < np + nc; i++) {
        w[i].run = &run;
        w[i].id = i;
        if (i < np) {
            w[i].n = items / np + (i < items % np ? 1 : 0);
        }
        bench_start(&t[i], i < np ? im->producer : im->consumer, &w[i]);
    }
    bench_gate_wait(&run.gate);
    start = weft_now();
    for (unsigned i = 0; i < np; i++) {
        bench_join(t[i]);
    }
    close_queue(&run, im);
    for (unsigned i = np; i < np + nc; i++) {
        bench_join(t[i]);
    }
    double secs = bench_seconds(start, weft_now());
    verify(im, w, np, nc, items);
    bench_gate_fini(&run.gate);
    free_queue(&run, im);
    return (double)items / secs;
}

int
main(int argc, char **argv)
{
    static const unsigned threads[] = {1, 2, 4};
    bench_args_t a = bench_parse_args(argc, argv, "ITEMS", DEFAULT_ITEMS);

    for (size_t c = 0; c < sizeof(threads) / sizeof(threads[0]); c++) {
        unsigned n = threads[c];
        char params[64];

        snprintf(params, sizeof(params), "p=%u,c=%u,cap=%u", n, n, CAPACITY);
        for (size_t k = 0; k < N_IMPLS; k++) {
            const impl_t *im = &impls[bench_order(k, a.rep, N_IMPLS)];

            if (bench_selected(&a, im->name)) {
                bench_result("queue", im->name, params, "items_per_s",
                             measure(im, n, n, a.n));
            }
        }
    }
    return 0;
}
