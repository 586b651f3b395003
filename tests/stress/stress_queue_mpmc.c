/* SPDX-License-Identifier: MIT */
/*
 * Stress (RELIABILITY R4): producers and consumers of 1, 3, 8 and 100 threads
 * over every queue kind, capacities 1..100 and 1024, single and batched
 * operations. Every item (producer, seq) must arrive exactly once, counts and
 * sums must match, and FIFO kinds must keep each producer's order as seen by
 * every consumer.
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * DESIGN
 * An item is ((producer + 1) << 32) | seq. Producers put seq 0..per-1 in
 * order; the last producer to finish closes the queue, and consumers get
 * until WEFT_ECLOSED. Each consumer keeps the last seq it saw per producer
 * (a FIFO queue hands one consumer a producer's items in increasing order)
 * and bumps an atomic counter per item, so a loss or a duplicate shows as a
 * counter other than 1. Consumers also call task_done per item: at the end
 * join must succeed at once and one more task_done must fail.
 */

#define NONE UINT64_MAX

typedef struct spec {
    weft_queue_order_t order;
    size_t cap;
    size_t np;    /* producers */
    size_t nc;    /* consumers */
    uint64_t per; /* items per producer */
    size_t batch; /* 0: single put/get; else random batches of 1..batch */
} spec_t;

typedef struct run {
    spec_t s;
    weft_queue_t *q;
    _Atomic uint8_t *seen; /* np * per counters */
    _Atomic uint64_t sum;
    _Atomic uint64_t count;
    _Atomic size_t producers_left;
    _Atomic int errors;
    uint64_t seed;
} run_t;

typedef struct worker {
    run_t *run;
    size_t id;
} worker_t;

static void
report(run_t *r, const char *what, uint64_t v)
{
    if (atomic_fetch_add(&r->errors, 1) < 5) {
        printf("error: %s (item %#llx)\n", what, (unsigned long long)v);
    }
}

static uint64_t
item_of(size_t p, uint64_t seq)
{
    return ((uint64_t)(p + 1) << 32) | seq;
}

static void
produce_single(run_t *r, size_t p)
{
    for (uint64_t k = 0; k < r->s.per; k++) {
        uint64_t v = item_of(p, k);
        int rc = weft_queue_put(r->q, &v);
        if (rc != WEFT_OK) {
            report(r, weft_errname(rc), v);
            return;
        }
    }
}

static void
produce_batches(run_t *r, size_t p)
{
    uint64_t rs = r->seed ^ (p * 0x9e3779b97f4a7c15ull);
    uint64_t buf[64];
    uint64_t k = 0;
    while (k < r->s.per) {
        size_t n = 1 + (size_t)(wt_rand(&rs) % r->s.batch);
        if (n > r->s.per - k) {
            n = (size_t)(r->s.per - k);
        }
        for (size_t i = 0; i < n; i++) {
            buf[i] = item_of(p, k + i);
        }
        size_t done = 0;
        int rc = weft_queue_put_many(r->q, buf, n, &done, WEFT_FOREVER);
        if (rc != WEFT_OK || done != n) {
            report(r, "put_many", buf[0]);
            return;
        }
        k += n;
    }
}

static void
producer(run_t *r, size_t p)
{
    if (r->s.batch == 0) {
        produce_single(r, p);
    } else {
        produce_batches(r, p);
    }
    if (atomic_fetch_sub(&r->producers_left, 1) == 1) {
        weft_queue_close(r->q);
    }
}

typedef struct tally {
    uint64_t *last; /* per producer */
    uint64_t sum;
    uint64_t count;
} tally_t;

static void
take(run_t *r, tally_t *t, uint64_t v)
{
    uint64_t p = (v >> 32) - 1;
    uint64_t seq = v & 0xffffffffu;
    if ((v >> 32) == 0 || p >= r->s.np || seq >= r->s.per) {
        report(r, "corrupt item", v);
        return;
    }
    atomic_fetch_add_explicit(&r->seen[p * r->s.per + seq], 1,
                              memory_order_relaxed);
    if (r->s.order == WEFT_QUEUE_FIFO) {
        if (t->last[p] != NONE && seq <= t->last[p]) {
            report(r, "producer order broken", v);
        }
        t->last[p] = seq;
    }
    t->sum += v;
    t->count++;
    if (weft_queue_task_done(r->q) != WEFT_OK) {
        report(r, "task_done", v);
    }
}

static void
consumer(run_t *r)
{
    tally_t t = {calloc(r->s.np, sizeof(uint64_t)), 0, 0};
    if (t.last == NULL) { /* no cmocka asserts off the main thread */
        report(r, "out of memory", 0);
        return;
    }
    for (size_t i = 0; i < r->s.np; i++) {
        t.last[i] = NONE;
    }
    uint64_t buf[64];
    for (;;) {
        size_t got = 1;
        int rc;
        if (r->s.batch == 0) {
            rc = weft_queue_get(r->q, buf);
        } else {
            rc = weft_queue_get_many(r->q, buf, r->s.batch, &got, WEFT_FOREVER);
        }
        if (rc != WEFT_OK) {
            if (rc != WEFT_ECLOSED) {
                report(r, weft_errname(rc), 0);
            }
            break;
        }
        for (size_t i = 0; i < got; i++) {
            take(r, &t, buf[i]);
        }
    }
    atomic_fetch_add(&r->sum, t.sum);
    atomic_fetch_add(&r->count, t.count);
    free(t.last);
}

static void *
worker_main(void *arg)
{
    worker_t *w = arg;
    if (w->id < w->run->s.np) {
        producer(w->run, w->id);
    } else {
        consumer(w->run);
    }
    return NULL;
}

static void
check_run(run_t *r)
{
    const spec_t *s = &r->s;
    uint64_t want_sum = 0;
    for (size_t p = 0; p < s->np; p++) {
        for (uint64_t k = 0; k < s->per; k++) {
            want_sum += item_of(p, k);
            uint8_t c = atomic_load(&r->seen[p * s->per + k]);
            if (c != 1) {
                printf("item p=%zu seq=%llu arrived %u times\n", p,
                       (unsigned long long)k, c);
                assert_int_equal(c, 1);
            }
        }
    }
    assert_int_equal(atomic_load(&r->errors), 0);
    assert_int_equal(atomic_load(&r->count), s->np * s->per);
    assert_int_equal(atomic_load(&r->sum), want_sum);
    assert_true(weft_queue_empty(r->q));
    assert_true(weft_queue_is_closed(r->q));
    assert_int_equal(weft_queue_join_until(r->q, 0), WEFT_OK);
    assert_int_equal(weft_queue_task_done(r->q), WEFT_ERANGE);
}

static void
run_spec(const spec_t *s)
{
    run_t r;
    memset(&r, 0, sizeof(r));
    r.s = *s;
    r.seed = wt_seed() ^ (s->cap * 31u + s->np * 7u + s->nc);
    r.q = wt_queue_u64(s->order, s->cap);
    r.seen = calloc(s->np * s->per, sizeof(*r.seen));
    assert_non_null(r.seen);
    atomic_store(&r.producers_left, s->np);
    size_t n = s->np + s->nc;
    worker_t *w = calloc(n, sizeof(*w));
    assert_non_null(w);
    for (size_t i = 0; i < n; i++) {
        w[i] = (worker_t){&r, i};
    }
    wt_run_threads(n, worker_main, w, sizeof(*w));
    check_run(&r);
    free(w);
    free(r.seen);
    weft_queue_destroy(r.q);
}

/* ------------------------------------------------------------------------ */

static const size_t threads[][2] = {
    {1, 1}, {1, 3}, {3, 1}, {3, 3}, {8, 8}, {1, 100}, {100, 1}, {100, 100},
};
#define N_THREADS (sizeof(threads) / sizeof(threads[0]))

/* Items per producer: about the same total work for every thread count. */
static uint64_t
per_producer(size_t np, size_t short_total, size_t long_per)
{
    size_t s = short_total / np;
    return wt_size(s > 0 ? s : 1, long_per);
}

static void
test_ring_threads(void **state)
{
    (void)state;
    static const size_t caps[] = {1, 3, 64, 1024};
    for (size_t t = 0; t < N_THREADS; t++) {
        for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
            spec_t s = {WEFT_QUEUE_FIFO,
                        caps[c],
                        threads[t][0],
                        threads[t][1],
                        per_producer(threads[t][0], 40000, 100000),
                        0};
            run_spec(&s);
        }
    }
}

static void
test_ring_capacity_sweep(void **state)
{
    (void)state;
    for (size_t cap = 1; cap <= 101; cap++) {
        size_t c = cap == 101 ? 1024 : cap; /* 1..100, then 1024 */
        spec_t s = {WEFT_QUEUE_FIFO, c, 3, 3, per_producer(3, 3000, 20000), 0};
        run_spec(&s);
        spec_t one = {WEFT_QUEUE_FIFO, c, 1, 1, wt_size(1000, 20000), 0};
        run_spec(&one);
    }
}

static void
test_all_kinds(void **state)
{
    (void)state;
    static const weft_queue_order_t orders[] = {
        WEFT_QUEUE_FIFO, WEFT_QUEUE_LIFO, WEFT_QUEUE_PRIORITY};
    static const size_t caps[] = {1, 7, 100, WEFT_QUEUE_UNBOUNDED};
    static const size_t tc[][2] = {{1, 1}, {3, 3}, {8, 8}, {100, 100}};
    for (size_t o = 0; o < 3; o++) {
        for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
            for (size_t t = 0; t < sizeof(tc) / sizeof(tc[0]); t++) {
                spec_t s = {orders[o],
                            caps[c],
                            tc[t][0],
                            tc[t][1],
                            per_producer(tc[t][0], 8000, 100000),
                            0};
                run_spec(&s);
            }
        }
    }
}

static void
test_batches(void **state)
{
    (void)state;
    static const weft_queue_order_t orders[] = {
        WEFT_QUEUE_FIFO, WEFT_QUEUE_LIFO, WEFT_QUEUE_PRIORITY};
    static const size_t caps[] = {1, 5, 64, 1024, WEFT_QUEUE_UNBOUNDED};
    static const size_t tc[][2] = {{1, 1}, {3, 3}, {8, 8}, {100, 100}};
    for (size_t o = 0; o < 3; o++) {
        for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
            for (size_t t = 0; t < sizeof(tc) / sizeof(tc[0]); t++) {
                spec_t s = {orders[o],
                            caps[c],
                            tc[t][0],
                            tc[t][1],
                            per_producer(tc[t][0], 20000, 100000),
                            64};
                run_spec(&s);
            }
        }
    }
}

int
main(void)
{
    (void)wt_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_threads),
        cmocka_unit_test(test_ring_capacity_sweep),
        cmocka_unit_test(test_all_kinds),
        cmocka_unit_test(test_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
