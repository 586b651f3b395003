/* SPDX-License-Identifier: MIT */
/*
 * Stress (RELIABILITY R3, R4): close wakes every blocked producer and
 * consumer; close in mid-stream loses no item put with WEFT_OK; a waiter
 * whose deadline races with its wake-up passes the wake-up on. Also with
 * spurious wake-ups injected. No queue wait here has a deadline unless the
 * test is about deadlines: a lost wake-up shows as the ctest timeout.
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_impl.h"

typedef struct kind {
    weft_queue_order_t order;
    size_t cap;
} kind_t;

static const kind_t kinds[] = {
    {WEFT_QUEUE_FIFO, 1},
    {WEFT_QUEUE_FIFO, 3},
    {WEFT_QUEUE_FIFO, WEFT_QUEUE_UNBOUNDED},
    {WEFT_QUEUE_LIFO, 2},
    {WEFT_QUEUE_LIFO, WEFT_QUEUE_UNBOUNDED},
    {WEFT_QUEUE_PRIORITY, 2},
    {WEFT_QUEUE_PRIORITY, WEFT_QUEUE_UNBOUNDED},
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

static weft_queue_t *
mk(const kind_t *k)
{
    return wt_queue_u64(k->order, k->cap);
}

static void
wait_blocked(weft__qwait_t *w, uint32_t n)
{
    while (atomic_load(&w->ec.waiters) < n) {
        weft_sleep_for(50 * WEFT_USEC);
    }
}

/* ------------------------------------------------------------------------ */
/* Close wakes every blocked thread                                          */

typedef struct blocked {
    weft_queue_t *q;
    int rc;
} blocked_t;

static void *
blocked_get(void *arg)
{
    blocked_t *b = arg;
    uint64_t v;
    b->rc = weft_queue_get(b->q, &v);
    return NULL;
}

static void *
blocked_put(void *arg)
{
    blocked_t *b = arg;
    uint64_t v = 1;
    b->rc = weft_queue_put(b->q, &v);
    return NULL;
}

static void
fill(weft_queue_t *q)
{
    uint64_t v = 0;
    while (weft_queue_try_put(q, &v) == WEFT_OK) {
        v++;
    }
}

/* n getters on an empty queue and n putters on a full one; close both,
 * either once all are asleep or at once (threads still arriving). */
static void
close_round(const kind_t *k, size_t n, bool wait_all)
{
    weft_queue_t *gq = mk(k);
    weft_queue_t *pq = mk(k);
    bool bounded = k->cap != WEFT_QUEUE_UNBOUNDED;
    if (bounded) {
        fill(pq);
    }
    blocked_t *b = calloc(2 * n, sizeof(*b));
    weft_thread_t **t = calloc(2 * n, sizeof(weft_thread_t *));
    assert_non_null(b);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        b[i] = (blocked_t){gq, 99};
        t[i] = wt_start(blocked_get, &b[i]);
        b[n + i] = (blocked_t){pq, 99};
        t[n + i] = bounded ? wt_start(blocked_put, &b[n + i]) : NULL;
    }
    if (wait_all) {
        wait_blocked(&gq->not_empty, (uint32_t)n);
        if (bounded) {
            wait_blocked(&pq->not_full, (uint32_t)n);
        }
    }
    weft_queue_close(gq);
    weft_queue_close(pq);
    for (size_t i = 0; i < 2 * n; i++) {
        if (t[i] != NULL) {
            wt_join(t[i]);
            assert_int_equal(b[i].rc, WEFT_ECLOSED);
        }
    }
    free(b);
    free(t);
    weft_queue_destroy(gq);
    weft_queue_destroy(pq);
}

static void
run_close_wakes_blocked(void)
{
    static const size_t ns[] = {1, 8, 100};
    size_t rounds = wt_size(6, 200);
    for (size_t r = 0; r < rounds; r++) {
        for (size_t k = 0; k < N_KINDS; k++) {
            for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
                close_round(&kinds[k], ns[i], true);
                close_round(&kinds[k], ns[i], false);
            }
        }
    }
}

static void
test_close_wakes_blocked(void **state)
{
    (void)state;
    run_close_wakes_blocked();
}

/* ------------------------------------------------------------------------ */
/* Close in mid-stream: every item put with WEFT_OK arrives exactly once     */

typedef struct stream {
    weft_queue_t *q;
    size_t np;
    uint64_t max_per;
    _Atomic uint64_t *ok;   /* per producer: puts that returned WEFT_OK */
    _Atomic uint8_t *seen;  /* np * max_per */
    _Atomic uint64_t puts;  /* total WEFT_OK puts */
    _Atomic uint64_t count; /* total gets */
    _Atomic uint64_t sum;
    _Atomic int errors;
    bool fifo;
} stream_t;

typedef struct sworker {
    stream_t *s;
    size_t id;
} sworker_t;

static void
s_error(stream_t *s, const char *what)
{
    if (atomic_fetch_add(&s->errors, 1) < 5) {
        printf("error: %s\n", what);
    }
}

static void
s_produce(stream_t *s, size_t p)
{
    for (uint64_t k = 0; k < s->max_per; k++) {
        uint64_t v = ((uint64_t)(p + 1) << 32) | k;
        int rc = weft_queue_put(s->q, &v);
        if (rc == WEFT_ECLOSED) {
            return;
        }
        if (rc != WEFT_OK) {
            s_error(s, weft_errname(rc));
            return;
        }
        atomic_store(&s->ok[p], k + 1);
        atomic_fetch_add(&s->puts, 1);
    }
}

static void
s_consume(stream_t *s)
{
    uint64_t *last = malloc(s->np * sizeof(uint64_t));
    if (last == NULL) {
        s_error(s, "out of memory");
        return;
    }
    memset(last, 0xff, s->np * sizeof(uint64_t));
    uint64_t v;
    int rc;
    while ((rc = weft_queue_get(s->q, &v)) == WEFT_OK) {
        uint64_t p = (v >> 32) - 1;
        uint64_t k = v & 0xffffffffu;
        if ((v >> 32) == 0 || p >= s->np || k >= s->max_per) {
            s_error(s, "corrupt item");
            continue;
        }
        atomic_fetch_add(&s->seen[p * s->max_per + k], 1);
        if (s->fifo && last[p] != UINT64_MAX && k <= last[p]) {
            s_error(s, "producer order broken");
        }
        last[p] = k;
        atomic_fetch_add(&s->count, 1);
        atomic_fetch_add(&s->sum, v);
    }
    if (rc != WEFT_ECLOSED) {
        s_error(s, weft_errname(rc));
    }
    free(last);
}

static void *
s_main(void *arg)
{
    sworker_t *w = arg;
    if (w->id < w->s->np) {
        s_produce(w->s, w->id);
    } else {
        s_consume(w->s);
    }
    return NULL;
}

static void *
s_closer(void *arg)
{
    stream_t *s = arg;
    /* Close once about half of the possible items went in. */
    uint64_t target = s->np * s->max_per / 2;
    while (atomic_load(&s->puts) < target) {
        weft_sleep_for(20 * WEFT_USEC);
    }
    weft_queue_close(s->q);
    return NULL;
}

static void
s_check(stream_t *s)
{
    uint64_t want_sum = 0;
    uint64_t want_count = 0;
    for (size_t p = 0; p < s->np; p++) {
        uint64_t ok = atomic_load(&s->ok[p]);
        for (uint64_t k = 0; k < s->max_per; k++) {
            uint8_t c = atomic_load(&s->seen[p * s->max_per + k]);
            if (c != (k < ok ? 1 : 0)) {
                printf("p=%zu seq=%llu arrived %u times (ok puts %llu)\n", p,
                       (unsigned long long)k, c, (unsigned long long)ok);
                assert_int_equal(c, k < ok ? 1 : 0);
            }
            if (k < ok) {
                want_sum += ((uint64_t)(p + 1) << 32) | k;
                want_count++;
            }
        }
    }
    assert_int_equal(atomic_load(&s->errors), 0);
    assert_int_equal(atomic_load(&s->count), want_count);
    assert_int_equal(atomic_load(&s->sum), want_sum);
}

static void
midstream_round(const kind_t *k, size_t np, size_t nc, uint64_t max_per)
{
    stream_t s;
    memset(&s, 0, sizeof(s));
    s.q = mk(k);
    s.np = np;
    s.max_per = max_per;
    s.fifo = k->order == WEFT_QUEUE_FIFO;
    s.ok = calloc(np, sizeof(*s.ok));
    s.seen = calloc(np * max_per, sizeof(*s.seen));
    assert_non_null(s.ok);
    assert_non_null(s.seen);
    weft_thread_t *closer = wt_start(s_closer, &s);
    sworker_t *w = calloc(np + nc, sizeof(*w));
    assert_non_null(w);
    for (size_t i = 0; i < np + nc; i++) {
        w[i] = (sworker_t){&s, i};
    }
    wt_run_threads(np + nc, s_main, w, sizeof(*w));
    wt_join(closer);
    s_check(&s);
    free(w);
    free(s.ok);
    free(s.seen);
    weft_queue_destroy(s.q);
}

static void
run_close_midstream(void)
{
    static const size_t tc[][2] = {{1, 1}, {3, 3}, {8, 8}, {100, 100}};
    size_t rounds = wt_size(3, 50);
    for (size_t r = 0; r < rounds; r++) {
        for (size_t k = 0; k < N_KINDS; k++) {
            for (size_t t = 0; t < sizeof(tc) / sizeof(tc[0]); t++) {
                uint64_t per = wt_size(4000, 100000) / tc[t][0] + 2;
                midstream_round(&kinds[k], tc[t][0], tc[t][1], per);
            }
        }
    }
}

static void
test_close_midstream(void **state)
{
    (void)state;
    run_close_midstream();
}

/* ------------------------------------------------------------------------ */
/* A deadline racing with a wake-up: the wake-up is used or passed on        */

typedef struct race {
    weft_queue_t *q;
    _Atomic uint64_t got;  /* items taken by the blocking consumer */
    _Atomic uint64_t puts; /* items put by the blocking producer */
    weft_time_t wait;      /* the timed thread's deadline offset */
    int rc;
} race_t;

static void *
forever_getter(void *arg)
{
    race_t *r = arg;
    uint64_t v;
    while (weft_queue_get(r->q, &v) == WEFT_OK) {
        atomic_fetch_add(&r->got, 1);
    }
    return NULL;
}

static void *
forever_putter(void *arg)
{
    race_t *r = arg;
    uint64_t v = 1;
    while (weft_queue_put(r->q, &v) == WEFT_OK) {
        atomic_fetch_add(&r->puts, 1);
    }
    return NULL;
}

static void *
timed_get(void *arg)
{
    race_t *r = arg;
    uint64_t v;
    r->rc = weft_queue_get_until(r->q, &v, weft_deadline_in(r->wait));
    return NULL;
}

static void *
timed_put(void *arg)
{
    race_t *r = arg;
    uint64_t v = 2;
    r->rc = weft_queue_put_until(r->q, &v, weft_deadline_in(r->wait));
    return NULL;
}

/* One getter waits forever, another until a deadline; the item arrives
 * around that deadline. If the timed getter swallowed the wake-up and
 * left, the item would sit there with the other getter asleep: the wait for
 * "all items taken" below would never end. */
static void
getter_race(const kind_t *k, size_t rounds, uint64_t *rs)
{
    race_t r;
    memset(&r, 0, sizeof(r));
    r.q = mk(k);
    weft_thread_t *fg = wt_start(forever_getter, &r);
    uint64_t timed_got = 0;
    for (size_t i = 0; i < rounds; i++) {
        r.wait = (weft_time_t)(wt_rand(rs) % 200) * WEFT_USEC;
        weft_thread_t *tg = wt_start(timed_get, &r);
        weft_sleep_for((weft_time_t)(wt_rand(rs) % 200) * WEFT_USEC);
        uint64_t v = i;
        assert_int_equal(weft_queue_put(r.q, &v), WEFT_OK);
        wt_join(tg);
        assert_true(r.rc == WEFT_OK || r.rc == WEFT_ETIMEDOUT);
        timed_got += r.rc == WEFT_OK;
        while (atomic_load(&r.got) + timed_got < i + 1) {
            weft_sleep_for(20 * WEFT_USEC);
        }
    }
    weft_queue_close(r.q);
    wt_join(fg);
    assert_int_equal(atomic_load(&r.got) + timed_got, rounds);
    weft_queue_destroy(r.q);
}

/* The same for producers: one waits for room forever, one until a
 * deadline; room appears around that deadline and must be used. */
static void
putter_race(const kind_t *k, size_t rounds, uint64_t *rs)
{
    race_t r;
    memset(&r, 0, sizeof(r));
    r.q = mk(k);
    fill(r.q);
    size_t cap = k->cap;
    weft_thread_t *fp = wt_start(forever_putter, &r);
    for (size_t i = 0; i < rounds; i++) {
        r.wait = (weft_time_t)(wt_rand(rs) % 200) * WEFT_USEC;
        weft_thread_t *tp = wt_start(timed_put, &r);
        weft_sleep_for((weft_time_t)(wt_rand(rs) % 200) * WEFT_USEC);
        uint64_t v;
        assert_int_equal(weft_queue_get(r.q, &v), WEFT_OK);
        wt_join(tp);
        assert_true(r.rc == WEFT_OK || r.rc == WEFT_ETIMEDOUT);
        while (weft_queue_size(r.q) < cap) { /* somebody must refill */
            weft_sleep_for(20 * WEFT_USEC);
        }
    }
    weft_queue_close(r.q);
    wt_join(fp);
    weft_queue_destroy(r.q);
}

static void
run_deadline_races(void)
{
    uint64_t rs = wt_seed();
    size_t rounds = wt_size(200, 5000);
    for (size_t k = 0; k < N_KINDS; k++) {
        getter_race(&kinds[k], rounds, &rs);
        if (kinds[k].cap != WEFT_QUEUE_UNBOUNDED) {
            putter_race(&kinds[k], rounds, &rs);
        }
    }
}

static void
test_deadline_races(void **state)
{
    (void)state;
    run_deadline_races();
}

/* ------------------------------------------------------------------------ */
/* One-shot waiters: every sleeper with something there is woken            */

/*
 * N getters, each taking exactly one item and then stopping, sleep on an
 * empty queue; several producers then put N items at once. A wake-up spent
 * on a getter that found nothing it could take (on the ring: the put at
 * head still in flight while a later put finished) must be passed on,
 * else a getter sleeps forever with an item there and the joins below
 * hang. Getters that loop would hide this by coming back for the item.
 * The same with putters on a full queue and one-shot room.
 */

typedef struct oneshot {
    weft_queue_t *q;
    size_t n; /* items each helper moves */
    int rc;
} oneshot_t;

static void *
oneshot_get(void *arg)
{
    oneshot_t *o = arg;
    uint64_t v;
    for (size_t i = 0; i < o->n; i++) {
        o->rc = weft_queue_get(o->q, &v);
    }
    return NULL;
}

static void *
oneshot_put(void *arg)
{
    oneshot_t *o = arg;
    uint64_t v = 5;
    for (size_t i = 0; i < o->n; i++) {
        o->rc = weft_queue_put(o->q, &v);
    }
    return NULL;
}

/* nw one-shot waiters run `wait_fn` (1 item each) after the queue's state
 * makes them sleep; nm movers then run `move_fn` for nw items in all. */
static void
oneshot_round(const kind_t *k, bool getters, size_t nw, size_t nm)
{
    weft_queue_t *q = mk(k);
    if (!getters) {
        fill(q);
    }
    oneshot_t *o = calloc(nw + nm, sizeof(*o));
    weft_thread_t **t = calloc(nw + nm, sizeof(weft_thread_t *));
    assert_non_null(o);
    assert_non_null(t);
    for (size_t i = 0; i < nw; i++) {
        o[i] = (oneshot_t){q, 1, 99};
        t[i] = wt_start(getters ? oneshot_get : oneshot_put, &o[i]);
    }
    wait_blocked(getters ? &q->not_empty : &q->not_full, (uint32_t)nw);
    for (size_t i = 0; i < nm; i++) {
        o[nw + i] = (oneshot_t){q, nw / nm, 99};
        t[nw + i] = wt_start(getters ? oneshot_put : oneshot_get, &o[nw + i]);
    }
    for (size_t i = 0; i < nw + nm; i++) {
        wt_join(t[i]);
        assert_int_equal(o[i].rc, WEFT_OK);
    }
    free(o);
    free(t);
    weft_queue_destroy(q);
}

static void
run_oneshot_waiters(void)
{
    size_t rounds = wt_size(100, 5000);
    for (size_t r = 0; r < rounds; r++) {
        for (size_t k = 0; k < N_KINDS; k++) {
            oneshot_round(&kinds[k], true, 8, 4);
            oneshot_round(&kinds[k], true, 6, 6);
            if (kinds[k].cap != WEFT_QUEUE_UNBOUNDED) {
                oneshot_round(&kinds[k], false, 8, 4);
                oneshot_round(&kinds[k], false, 6, 6);
            }
        }
    }
}

static void
test_oneshot_waiters(void **state)
{
    (void)state;
    run_oneshot_waiters();
}

/* ------------------------------------------------------------------------ */

static void
test_spurious_wakeups(void **state)
{
    (void)state;
    weft__test_spurious_wakeups(3);
    run_close_wakes_blocked();
    run_close_midstream();
    run_deadline_races();
    run_oneshot_waiters();
    weft__test_spurious_wakeups(0);
}

int
main(void)
{
    (void)wt_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_close_wakes_blocked),
        cmocka_unit_test(test_close_midstream),
        cmocka_unit_test(test_deadline_races),
        cmocka_unit_test(test_oneshot_waiters),
        cmocka_unit_test(test_spurious_wakeups),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
