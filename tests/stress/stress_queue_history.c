/* SPDX-License-Identifier: MIT */
/*
 * Stress (RELIABILITY R4): a linearizability-style check of the FIFO queues.
 * A few threads record when each put and get was invoked and when it
 * returned (weft_now()); the history must be explainable by a FIFO queue.
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * DESIGN
 * Every item is unique (producer p's k-th item is p * per + k), so each
 * item has one put interval [pi, pr] and one get interval [gi, gr]. For a
 * FIFO queue:
 *   H1 every item put is got exactly once, and nothing else is got;
 *   H2 a get cannot return an item whose put began after the get ended:
 *      pi[x] <= gr[x];
 *   H3 if put(a) ended before put(b) began, a was enqueued first, so b may
 *      not be delivered before a by gets that are themselves ordered: there
 *      is no pair with pr[a] < pi[b] and gr[b] < gi[a].
 * H3 is checked in O(n log n): sort the items by pr; for each b, the items a
 * with pr[a] < pi[b] form a prefix of that order, and a violation exists
 * iff the largest gi over that prefix exceeds gr[b].
 * The checker is itself tested on made-up histories with known violations.
 */

typedef struct hist {
    size_t n;
    weft_time_t *pi, *pr, *gi, *gr;
    _Atomic uint32_t *got; /* times each item was got */
} hist_t;

static void
hist_init(hist_t *h, size_t n)
{
    h->n = n;
    h->pi = calloc(n, sizeof(weft_time_t));
    h->pr = calloc(n, sizeof(weft_time_t));
    h->gi = calloc(n, sizeof(weft_time_t));
    h->gr = calloc(n, sizeof(weft_time_t));
    h->got = calloc(n, sizeof(*h->got));
    assert_true(h->pi && h->pr && h->gi && h->gr && h->got);
}

static void
hist_fini(hist_t *h)
{
    free(h->pi);
    free(h->pr);
    free(h->gi);
    free(h->gr);
    free(h->got);
}

static const weft_time_t *sort_key;

static int
by_key(const void *a, const void *b)
{
    weft_time_t x = sort_key[*(const size_t *)a];
    weft_time_t y = sort_key[*(const size_t *)b];
    return (x > y) - (x < y);
}

/* Violations of H1..H3 (printing the first few). */
static size_t
hist_check(const hist_t *h)
{
    size_t bad = 0;
    for (size_t x = 0; x < h->n; x++) {
        uint32_t g = atomic_load(&h->got[x]);
        if (g != 1 || h->pi[x] > h->gr[x]) {
            if (bad++ < 5) {
                printf("H1/H2: item %zu got %u times, put from %lld, "
                       "get returned at %lld\n",
                       x, g, (long long)h->pi[x], (long long)h->gr[x]);
            }
        }
    }
    size_t *order = malloc(h->n * sizeof(size_t));
    weft_time_t *prefmax = malloc(h->n * sizeof(weft_time_t));
    assert_non_null(order);
    assert_non_null(prefmax);
    for (size_t i = 0; i < h->n; i++) {
        order[i] = i;
    }
    sort_key = h->pr;
    qsort(order, h->n, sizeof(size_t), by_key);
    for (size_t i = 0; i < h->n; i++) {
        weft_time_t g = h->gi[order[i]];
        prefmax[i] = i == 0 || g > prefmax[i - 1] ? g : prefmax[i - 1];
    }
    for (size_t b = 0; b < h->n; b++) {
        /* Items whose put returned strictly before put(b) began. */
        size_t lo = 0;
        size_t hi = h->n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (h->pr[order[mid]] < h->pi[b]) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if (lo > 0 && prefmax[lo - 1] > h->gr[b]) {
            if (bad++ < 5) {
                printf("H3: item %zu delivered before an item put earlier\n",
                       b);
            }
        }
    }
    free(order);
    free(prefmax);
    return bad;
}

/* ------------------------------------------------------------------------ */
/* The checker catches what it should                                        */

static void
set_item(hist_t *h, size_t x, weft_time_t pi, weft_time_t pr, weft_time_t gi,
         weft_time_t gr)
{
    h->pi[x] = pi;
    h->pr[x] = pr;
    h->gi[x] = gi;
    h->gr[x] = gr;
    atomic_store(&h->got[x], 1);
}

static void
test_checker_catches_violations(void **state)
{
    (void)state;
    hist_t h;
    hist_init(&h, 3);
    /* Legal: a put then got, b and c overlapping everything. */
    set_item(&h, 0, 0, 10, 20, 30);
    set_item(&h, 1, 11, 40, 15, 50);
    set_item(&h, 2, 5, 60, 35, 70);
    assert_int_equal(hist_check(&h), 0);
    /* H3: b put after a, got strictly before a's get began. */
    set_item(&h, 1, 11, 12, 13, 14);
    assert_int_equal(hist_check(&h), 1);
    /* H2: an item got before its put began. */
    set_item(&h, 1, 11, 40, 15, 50);
    set_item(&h, 2, 80, 90, 35, 70);
    assert_int_equal(hist_check(&h), 1);
    /* H1: an item got twice, one never. */
    set_item(&h, 2, 5, 60, 35, 70);
    atomic_store(&h.got[0], 2);
    atomic_store(&h.got[1], 0);
    assert_int_equal(hist_check(&h), 2);
    hist_fini(&h);
}

/* ------------------------------------------------------------------------ */
/* Recording real runs                                                       */

typedef struct run {
    weft_queue_t *q;
    hist_t h;
    size_t np;
    size_t per;
    size_t batch; /* 0: single ops; else batches of up to this many */
    _Atomic size_t producers_left;
    _Atomic int errors;
} run_t;

typedef struct worker {
    run_t *run;
    size_t id;
} worker_t;

static void
record_puts(run_t *r, const uint64_t *items, size_t n, weft_time_t inv,
            weft_time_t resp)
{
    for (size_t i = 0; i < n; i++) {
        r->h.pi[items[i]] = inv;
        r->h.pr[items[i]] = resp;
    }
}

static void
record_gets(run_t *r, const uint64_t *items, size_t n, weft_time_t inv,
            weft_time_t resp)
{
    for (size_t i = 0; i < n; i++) {
        if (items[i] >= r->h.n) {
            atomic_fetch_add(&r->errors, 1);
            continue;
        }
        /* Written by the one consumer that got the item; a duplicate
         * shows in got[] (and as a race under TSan). */
        if (atomic_fetch_add(&r->h.got[items[i]], 1) == 0) {
            r->h.gi[items[i]] = inv;
            r->h.gr[items[i]] = resp;
        }
    }
}

static void
producer(run_t *r, size_t p)
{
    uint64_t buf[8];
    size_t k = 0;
    while (k < r->per) {
        size_t n = r->batch == 0 ? 1 : 1 + k % r->batch;
        n = n < r->per - k ? n : r->per - k;
        for (size_t i = 0; i < n; i++) {
            buf[i] = p * r->per + k + i;
        }
        /* The put's results are recorded before the item can be read by a
         * consumer's check: the check runs after every thread is joined. */
        weft_time_t inv = weft_now();
        size_t done = 0;
        int rc = r->batch == 0
                     ? weft_queue_put(r->q, buf)
                     : weft_queue_put_many(r->q, buf, n, &done, WEFT_FOREVER);
        weft_time_t resp = weft_now();
        if (rc != WEFT_OK) {
            atomic_fetch_add(&r->errors, 1);
            return;
        }
        record_puts(r, buf, n, inv, resp);
        k += n;
    }
}

static void
consumer(run_t *r)
{
    uint64_t buf[8];
    for (;;) {
        size_t got = 1;
        weft_time_t inv = weft_now();
        int rc = r->batch == 0 ? weft_queue_get(r->q, buf)
                               : weft_queue_get_many(r->q, buf, r->batch, &got,
                                                     WEFT_FOREVER);
        weft_time_t resp = weft_now();
        if (rc != WEFT_OK) {
            if (rc != WEFT_ECLOSED) {
                atomic_fetch_add(&r->errors, 1);
            }
            return;
        }
        record_gets(r, buf, got, inv, resp);
    }
}

static void *
worker_main(void *arg)
{
    worker_t *w = arg;
    run_t *r = w->run;
    if (w->id < r->np) {
        producer(r, w->id);
        if (atomic_fetch_sub(&r->producers_left, 1) == 1) {
            weft_queue_close(r->q);
        }
    } else {
        consumer(r);
    }
    return NULL;
}

static void
history_run(size_t cap, size_t np, size_t nc, size_t per, size_t batch)
{
    run_t r;
    memset(&r, 0, sizeof(r));
    weft_queue_opts_t o = WEFT_QUEUE_OPTS_INIT;
    o.capacity = cap;
    o.elem_size = sizeof(uint64_t);
    assert_int_equal(weft_queue_create(&o, &r.q), WEFT_OK);
    hist_init(&r.h, np * per);
    r.np = np;
    r.per = per;
    r.batch = batch;
    atomic_store(&r.producers_left, np);
    worker_t w[16];
    assert_true(np + nc <= 16);
    for (size_t i = 0; i < np + nc; i++) {
        w[i] = (worker_t){&r, i};
    }
    wt_run_threads(np + nc, worker_main, w, sizeof(w[0]));
    assert_int_equal(atomic_load(&r.errors), 0);
    size_t bad = hist_check(&r.h);
    if (bad != 0) {
        printf("capacity %zu, %zu producers, %zu consumers, batch %zu: "
               "%zu violations\n",
               cap, np, nc, batch, bad);
    }
    assert_int_equal(bad, 0);
    hist_fini(&r.h);
    weft_queue_destroy(r.q);
}

static void
test_ring_history(void **state)
{
    (void)state;
    static const size_t caps[] = {1, 2, 3, 4, 1024};
    static const size_t tc[][2] = {{1, 1}, {2, 2}, {3, 3}, {4, 2}, {2, 4}};
    size_t per = wt_size(20000, 500000);
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        for (size_t t = 0; t < sizeof(tc) / sizeof(tc[0]); t++) {
            history_run(caps[c], tc[t][0], tc[t][1], per / tc[t][0], 0);
            history_run(caps[c], tc[t][0], tc[t][1], per / tc[t][0], 8);
        }
    }
}

static void
test_unbounded_fifo_history(void **state)
{
    (void)state;
    size_t per = wt_size(20000, 500000);
    history_run(WEFT_QUEUE_UNBOUNDED, 2, 2, per / 2, 0);
    history_run(WEFT_QUEUE_UNBOUNDED, 3, 3, per / 3, 8);
}

int
main(void)
{
    (void)wt_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checker_catches_violations),
        cmocka_unit_test(test_ring_history),
        cmocka_unit_test(test_unbounded_fifo_history),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
