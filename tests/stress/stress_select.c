/* SPDX-License-Identifier: MIT */
/*
 * Stress of weft_select: (a) fairness over millions of selects on queues
 * kept non-empty by producers (every case ready at every select); (b) no item
 * lost or duplicated when selecting consumers and plain getters share queues of
 * every kind with producers and close; (c) selects over PUT cases against slow
 * consumers.
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/*
 * DESIGN
 * An item is ((producer + 1) << 32) | seq; a counter per item, bumped by
 * whoever takes it, must end at exactly 1. Every blocking call has a
 * deadline far beyond any legitimate wait (STUCK), and one that returns
 * only at that deadline counts as stuck: a lost wake-up shows as a message
 * naming the call, not as a hang. Code on other threads never
 * calls cmocka's asserts: it reports, and the test thread checks the count
 * of reports.
 */

#define STUCK (20 * WEFT_SEC)
#define NQ 4

static _Atomic int errors;

static void
report(const char *what, uint64_t v)
{
    if (atomic_fetch_add(&errors, 1) < 10) {
        printf("error: %s (item %#llx)\n", what, (unsigned long long)v);
        fflush(stdout);
    }
}

/* A call that returns only at its deadline was not woken, even when its
 * last try found what it waited for (which would hide a lost wake-up):
 * count it as timed out. */
static int
overslept(int rc, weft_time_t deadline)
{
    return weft_now() >= deadline ? WEFT_ETIMEDOUT : rc;
}

/* ------------------------------------------------------------------------ */
/* (a) Fairness                                                              */

typedef struct fair {
    weft_queue_t *q[NQ];
} fair_t;

typedef struct fair_prod {
    fair_t *f;
    size_t i;
} fair_prod_t;

/* Keep queue i full: items 0, 1, 2... until it is closed. */
static void *
fair_producer(void *arg)
{
    fair_prod_t *p = arg;
    weft_queue_t *q = p->f->q[p->i];
    for (uint64_t seq = 0;; seq++) {
        weft_time_t dl = weft_deadline_in(STUCK);
        int rc = overslept(weft_queue_put_until(q, &seq, dl), dl);
        if (rc == WEFT_ECLOSED) {
            return NULL;
        }
        if (rc != WEFT_OK) {
            report("fairness producer put", seq);
            return NULL;
        }
    }
}

static void
test_fairness(void **state)
{
    (void)state;
    const size_t rounds = wt_size(2000000, 20000000);
    fair_t f;
    fair_prod_t prods[NQ];
    weft_thread_t *t[NQ];
    for (size_t i = 0; i < NQ; i++) {
        f.q[i] = wt_queue_u64(WEFT_QUEUE_FIFO, 4096);
    }
    /* Fill before selecting: the shares then measure the select, not the
     * producers' head start. */
    for (size_t i = 0; i < NQ; i++) {
        prods[i] = (fair_prod_t){&f, i};
        t[i] = wt_start(fair_producer, &prods[i]);
    }
    for (size_t i = 0; i < NQ; i++) {
        while (!weft_queue_full(f.q[i])) {
            assert_int_equal(weft_sleep_for(WEFT_MSEC), WEFT_OK);
        }
    }
    uint64_t out = 0;
    weft_select_case_t c[NQ];
    for (size_t i = 0; i < NQ; i++) {
        c[i] = (weft_select_case_t){f.q[i], WEFT_SELECT_GET, &out};
    }
    uint64_t next[NQ] = {0};
    size_t hits[NQ] = {0};
    size_t waits = 0;
    for (size_t r = 0; r < rounds; r++) {
        /* Every case ready at every select: the select is the only getter
         * and each queue has one producer, so with two items or more its
         * head item is published and stays there until we take it. */
        weft_time_t dl = 0;
        for (size_t i = 0; i < NQ; i++) {
            while (weft_queue_size(f.q[i]) < 2) {
                dl = dl == 0 ? weft_deadline_in(STUCK) : dl;
                if (weft_now() > dl) {
                    fail_msg("producer %zu stuck", i);
                }
                weft_thread_yield();
            }
        }
        waits += dl != 0;
        size_t idx = SIZE_MAX;
        weft_time_t sdl = weft_deadline_in(STUCK);
        int rc = overslept(weft_select(c, NQ, sdl, &idx), sdl);
        if (rc != WEFT_OK || idx >= NQ) {
            fail_msg("select %zu: %s (index %zu)", r, weft_errname(rc), idx);
        }
        /* One producer per FIFO queue: its items arrive in order, none
         * skipped or repeated. */
        if (out != next[idx]) {
            fail_msg("queue %zu: item %llu, expected %llu", idx,
                     (unsigned long long)out, (unsigned long long)next[idx]);
        }
        next[idx]++;
        hits[idx]++;
    }
    for (size_t i = 0; i < NQ; i++) {
        weft_queue_close(f.q[i]);
    }
    for (size_t i = 0; i < NQ; i++) {
        wt_join(t[i]);
    }
    printf("fairness: %zu selects (%zu waited for a producer):", rounds, waits);
    for (size_t i = 0; i < NQ; i++) {
        printf(" q%zu %.2f%%", i, 100.0 * (double)hits[i] / (double)rounds);
    }
    printf("\n");
    for (size_t i = 0; i < NQ; i++) {
        /* 1/4 each: at 2M selects one standard deviation is 0.03 points,
         * so 24..26% is over 30 of them (under sanitizers, 500k selects:
         * over 15). */
        if (hits[i] * 100 < rounds * 24 || hits[i] * 100 > rounds * 26) {
            fail_msg("queue %zu chosen %zu of %zu times", i, hits[i], rounds);
        }
        weft_queue_destroy(f.q[i]);
    }
    assert_int_equal(atomic_load(&errors), 0);
}

/* ------------------------------------------------------------------------ */
/* (b) Exactly once, selectors and plain getters mixed                       */

typedef struct mix {
    weft_queue_t *q[NQ];
    size_t np;    /* producers */
    size_t ns;    /* selecting consumers */
    uint64_t per; /* items per producer */
    _Atomic uint8_t *seen;
    _Atomic size_t producers_left;
    _Atomic uint64_t by_select;
    _Atomic uint64_t by_plain;
    uint64_t seed;
} mix_t;

typedef struct mix_worker {
    mix_t *m;
    size_t id;
} mix_worker_t;

static void
mix_take(mix_t *m, uint64_t v)
{
    uint64_t p = (v >> 32) - 1;
    uint64_t seq = v & 0xffffffffu;
    if ((v >> 32) == 0 || p >= m->np || seq >= m->per) {
        report("corrupt item", v);
        return;
    }
    if (atomic_fetch_add_explicit(&m->seen[p * m->per + seq], 1,
                                  memory_order_relaxed) != 0) {
        report("item taken twice", v);
    }
}

/* Put each item into a random queue, with a plain put or a select over
 * PUT cases; the last producer closes every queue. */
static void *
mix_producer(void *arg)
{
    mix_worker_t *w = arg;
    mix_t *m = w->m;
    uint64_t rs = m->seed ^ ((w->id + 1) * 0x9e3779b97f4a7c15ull);
    for (uint64_t k = 0; k < m->per; k++) {
        uint64_t v = ((uint64_t)(w->id + 1) << 32) | k;
        uint64_t r = wt_rand(&rs);
        int rc;
        if (r & 1) {
            weft_time_t dl = weft_deadline_in(STUCK);
            rc = overslept(weft_queue_put_until(m->q[(r >> 1) % NQ], &v, dl),
                           dl);
        } else {
            weft_select_case_t c[NQ];
            for (size_t i = 0; i < NQ; i++) {
                c[i] = (weft_select_case_t){m->q[i], WEFT_SELECT_PUT, &v};
            }
            size_t idx;
            weft_time_t dl = weft_deadline_in(STUCK);
            rc = overslept(weft_select(c, NQ, dl, &idx), dl);
        }
        if (rc != WEFT_OK) {
            report(rc == WEFT_ETIMEDOUT ? "put stuck (lost wake-up?)"
                                        : weft_errname(rc),
                   v);
            break;
        }
    }
    if (atomic_fetch_sub(&m->producers_left, 1) == 1) {
        for (size_t i = 0; i < NQ; i++) {
            weft_queue_close(m->q[i]);
        }
    }
    return NULL;
}

/* Select over every queue until all are closed and drained. */
static void *
mix_selector(void *arg)
{
    mix_worker_t *w = arg;
    mix_t *m = w->m;
    uint64_t v = 0;
    weft_select_case_t c[NQ];
    for (size_t i = 0; i < NQ; i++) {
        c[i] = (weft_select_case_t){m->q[i], WEFT_SELECT_GET, &v};
    }
    uint64_t n = 0;
    for (;;) {
        size_t idx = SIZE_MAX;
        weft_time_t dl = weft_deadline_in(STUCK);
        int rc = overslept(weft_select(c, NQ, dl, &idx), dl);
        if (rc == WEFT_OK) {
            mix_take(m, v);
            n++;
        } else if (rc == WEFT_ECLOSED && idx < NQ) {
            c[idx].q = NULL; /* closed and drained: disable */
        } else if (rc == WEFT_ECLOSED && idx == SIZE_MAX) {
            break; /* all disabled */
        } else {
            report(rc == WEFT_ETIMEDOUT ? "select stuck (lost wake-up?)"
                                        : weft_errname(rc),
                   idx);
            break;
        }
    }
    atomic_fetch_add(&m->by_select, n);
    return NULL;
}

/* A plain getter bound to one queue. */
static void *
mix_plain(void *arg)
{
    mix_worker_t *w = arg;
    mix_t *m = w->m;
    weft_queue_t *q = m->q[w->id % NQ];
    uint64_t n = 0;
    for (;;) {
        uint64_t v;
        weft_time_t dl = weft_deadline_in(STUCK);
        int rc = overslept(weft_queue_get_until(q, &v, dl), dl);
        if (rc == WEFT_ECLOSED) {
            break;
        }
        if (rc != WEFT_OK) {
            report(rc == WEFT_ETIMEDOUT ? "get stuck (lost wake-up?)"
                                        : weft_errname(rc),
                   w->id);
            break;
        }
        mix_take(m, v);
        n++;
    }
    atomic_fetch_add(&m->by_plain, n);
    return NULL;
}

typedef struct mix_spec {
    const char *name;
    weft_queue_order_t order[NQ];
    size_t cap[NQ];
    size_t np, ns, nplain;
    unsigned spurious; /* inject a spurious wake-up every n parks (0: off) */
} mix_spec_t;

static void
run_mix(const mix_spec_t *s, uint64_t per)
{
    mix_t m = {.np = s->np, .ns = s->ns, .per = per, .seed = wt_seed()};
    for (size_t i = 0; i < NQ; i++) {
        m.q[i] = wt_queue_u64(s->order[i], s->cap[i]);
    }
    m.seen = calloc(s->np * per, sizeof(*m.seen));
    assert_non_null(m.seen);
    atomic_init(&m.producers_left, s->np);
    atomic_init(&m.by_select, 0);
    atomic_init(&m.by_plain, 0);
    weft__test_spurious_wakeups(s->spurious);
    size_t nt = s->np + s->ns + s->nplain;
    mix_worker_t *w = calloc(nt, sizeof(*w));
    weft_thread_t **t = calloc(nt, sizeof(*t));
    assert_non_null(w);
    assert_non_null(t);
    for (size_t i = 0; i < nt; i++) {
        w[i] = (mix_worker_t){&m, i};
        void *(*fn)(void *) = i < s->np           ? mix_producer
                              : i < s->np + s->ns ? mix_selector
                                                  : mix_plain;
        t[i] = wt_start(fn, &w[i]);
    }
    for (size_t i = 0; i < nt; i++) {
        wt_join(t[i]);
    }
    weft__test_spurious_wakeups(0);
    assert_int_equal(atomic_load(&errors), 0);
    for (size_t i = 0; i < s->np * per; i++) {
        if (atomic_load(&m.seen[i]) != 1) {
            fail_msg("%s: item %zu of producer %zu taken %u times", s->name,
                     i % per, i / per, (unsigned)atomic_load(&m.seen[i]));
        }
    }
    uint64_t sel = atomic_load(&m.by_select);
    uint64_t plain = atomic_load(&m.by_plain);
    printf("%s: %llu items, %llu by select, %llu by plain get\n", s->name,
           (unsigned long long)(s->np * per), (unsigned long long)sel,
           (unsigned long long)plain);
    assert_int_equal(sel + plain, s->np * per);
    for (size_t i = 0; i < NQ; i++) {
        assert_int_equal(weft_queue_size(m.q[i]), 0);
        weft_queue_destroy(m.q[i]);
    }
    free(w);
    free(t);
    free(m.seen);
}

static void
test_exactly_once_mixed(void **state)
{
    (void)state;
    static const mix_spec_t specs[] = {
        {"rings cap 1",
         {WEFT_QUEUE_FIFO, WEFT_QUEUE_FIFO, WEFT_QUEUE_FIFO, WEFT_QUEUE_FIFO},
         {1, 1, 1, 1},
         3,
         3,
         2,
         0},
        {"every kind",
         {WEFT_QUEUE_FIFO, WEFT_QUEUE_LIFO, WEFT_QUEUE_PRIORITY,
          WEFT_QUEUE_FIFO},
         {8, 4, 16, WEFT_QUEUE_UNBOUNDED},
         3,
         2,
         3,
         0},
        {"every kind, spurious wake-ups",
         {WEFT_QUEUE_FIFO, WEFT_QUEUE_LIFO, WEFT_QUEUE_PRIORITY,
          WEFT_QUEUE_FIFO},
         {2, 2, 2, 64},
         2,
         3,
         2,
         3},
        {"many selectors",
         {WEFT_QUEUE_FIFO, WEFT_QUEUE_FIFO, WEFT_QUEUE_LIFO, WEFT_QUEUE_FIFO},
         {2, 16, 2, 1024},
         4,
         8,
         1,
         0},
    };
    uint64_t per = wt_size(200000, 2000000);
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        run_mix(&specs[i], per);
    }
}

/* ------------------------------------------------------------------------ */
/* (c) PUT cases against slow consumers                                      */

typedef struct slow {
    weft_queue_t *q[NQ];
    uint64_t per;
    size_t np;
    _Atomic uint8_t *seen;
    _Atomic size_t producers_left;
    _Atomic uint64_t per_queue[NQ];
    _Atomic uint64_t blocked; /* selects that did not find room at once */
} slow_t;

typedef struct slow_worker {
    slow_t *s;
    size_t id;
} slow_worker_t;

static void *
slow_producer(void *arg)
{
    slow_worker_t *w = arg;
    slow_t *s = w->s;
    weft_select_case_t c[NQ];
    uint64_t v = 0;
    for (size_t i = 0; i < NQ; i++) {
        c[i] = (weft_select_case_t){s->q[i], WEFT_SELECT_PUT, &v};
    }
    for (uint64_t k = 0; k < s->per; k++) {
        v = ((uint64_t)(w->id + 1) << 32) | k;
        size_t idx = SIZE_MAX;
        int rc = weft_try_select(c, NQ, &idx);
        if (rc == WEFT_EAGAIN) {
            atomic_fetch_add_explicit(&s->blocked, 1, memory_order_relaxed);
            weft_time_t dl = weft_deadline_in(STUCK);
            rc = overslept(weft_select(c, NQ, dl, &idx), dl);
        }
        if (rc != WEFT_OK || idx >= NQ) {
            report(rc == WEFT_ETIMEDOUT ? "put select stuck (lost wake-up?)"
                                        : weft_errname(rc),
                   v);
            break;
        }
        atomic_fetch_add_explicit(&s->per_queue[idx], 1, memory_order_relaxed);
    }
    if (atomic_fetch_sub(&s->producers_left, 1) == 1) {
        for (size_t i = 0; i < NQ; i++) {
            weft_queue_close(s->q[i]);
        }
    }
    return NULL;
}

/* Consumer of queue id: slow (a short sleep every few items). */
static void *
slow_consumer(void *arg)
{
    slow_worker_t *w = arg;
    slow_t *s = w->s;
    weft_queue_t *q = s->q[w->id];
    for (uint64_t n = 1;; n++) {
        uint64_t v;
        weft_time_t dl = weft_deadline_in(STUCK);
        int rc = overslept(weft_queue_get_until(q, &v, dl), dl);
        if (rc == WEFT_ECLOSED) {
            return NULL;
        }
        if (rc != WEFT_OK) {
            report(rc == WEFT_ETIMEDOUT ? "slow get stuck" : weft_errname(rc),
                   w->id);
            return NULL;
        }
        uint64_t p = (v >> 32) - 1;
        uint64_t seq = v & 0xffffffffu;
        if ((v >> 32) == 0 || p >= s->np || seq >= s->per) {
            report("corrupt item", v);
        } else if (atomic_fetch_add(&s->seen[p * s->per + seq], 1) != 0) {
            report("item taken twice", v);
        }
        if (n % (8 + w->id * 8) == 0) {
            (void)weft_sleep_for(20 * WEFT_USEC);
        }
    }
}

static void
test_put_cases_slow_consumers(void **state)
{
    (void)state;
    slow_t s = {.per = wt_size(100000, 1000000), .np = 3};
    static const weft_queue_order_t order[NQ] = {
        WEFT_QUEUE_FIFO, WEFT_QUEUE_FIFO, WEFT_QUEUE_LIFO, WEFT_QUEUE_PRIORITY};
    static const size_t cap[NQ] = {1, 4, 2, 3};
    for (size_t i = 0; i < NQ; i++) {
        s.q[i] = wt_queue_u64(order[i], cap[i]);
        atomic_init(&s.per_queue[i], 0);
    }
    s.seen = calloc(s.np * s.per, sizeof(*s.seen));
    assert_non_null(s.seen);
    atomic_init(&s.producers_left, s.np);
    atomic_init(&s.blocked, 0);
    slow_worker_t w[3 + NQ];
    weft_thread_t *t[3 + NQ];
    for (size_t i = 0; i < NQ; i++) {
        w[i] = (slow_worker_t){&s, i};
        t[i] = wt_start(slow_consumer, &w[i]);
    }
    for (size_t i = 0; i < s.np; i++) {
        w[NQ + i] = (slow_worker_t){&s, i};
        t[NQ + i] = wt_start(slow_producer, &w[NQ + i]);
    }
    for (size_t i = 0; i < NQ + s.np; i++) {
        wt_join(t[i]);
    }
    assert_int_equal(atomic_load(&errors), 0);
    uint64_t total = 0;
    printf("put cases: %llu selects had to wait; per queue:",
           (unsigned long long)atomic_load(&s.blocked));
    for (size_t i = 0; i < NQ; i++) {
        uint64_t n = atomic_load(&s.per_queue[i]);
        printf(" %llu", (unsigned long long)n);
        total += n;
        /* The faster consumers take more; every queue takes some. */
        assert_true(n > 0);
        weft_queue_destroy(s.q[i]);
    }
    printf("\n");
    assert_int_equal(total, s.np * s.per);
    for (size_t i = 0; i < s.np * s.per; i++) {
        if (atomic_load(&s.seen[i]) != 1) {
            fail_msg("item %zu of producer %zu taken %u times", i % s.per,
                     i / s.per, (unsigned)atomic_load(&s.seen[i]));
        }
    }
    assert_true(atomic_load(&s.blocked) > 0); /* the slow path ran */
    free(s.seen);
}

int
main(void)
{
    (void)wt_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fairness),
        cmocka_unit_test(test_exactly_once_mixed),
        cmocka_unit_test(test_put_cases_slow_consumers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
