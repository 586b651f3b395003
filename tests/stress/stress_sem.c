/* SPDX-License-Identifier: MIT */
/*
 * Stress for weft_sem_t (RELIABILITY R3): ping-pong hand-offs with no timed
 * wait (a lost wake-up shows as the ctest timeout), the same with injected
 * spurious wake-ups, k permits shared by many threads (never more than k
 * inside), and semaphores freed by the woken thread right after its acquire
 * returns (ASan catches a releaser that touches them later).
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static void
jitter(uint64_t *rng)
{
    uint64_t r = wt_rand(rng);
    unsigned spins = (r & 3) == 0 ? (unsigned)(r >> 8) % 2048 : 0;
    for (unsigned i = 0; i < spins; i++) {
        weft__cpu_relax();
    }
}

/* ------------------------------------------------------------------------ */

struct pingpong {
    weft_sem_t ping;
    weft_sem_t pong;
    size_t rounds;
    size_t handoffs; /* plain: each side writes it only in its turn */
};

static void *
ponger(void *arg)
{
    struct pingpong *p = arg;
    for (size_t i = 0; i < p->rounds; i++) {
        assert_int_equal(weft_sem_acquire(&p->ping), WEFT_OK);
        p->handoffs++;
        assert_int_equal(weft_sem_release(&p->pong, 1), WEFT_OK);
    }
    return NULL;
}

static void
run_pingpong(void)
{
    static struct pingpong p;
    assert_int_equal(weft_sem_init(&p.ping, 0), WEFT_OK);
    assert_int_equal(weft_sem_init_bounded(&p.pong, 0, 1), WEFT_OK);
    p.rounds = wt_size(1000000, 20000000) / 2;
    p.handoffs = 0;
    weft_time_t t0 = weft_now();
    weft_thread_t *t = wt_start(ponger, &p);
    for (size_t i = 0; i < p.rounds; i++) {
        p.handoffs++;
        assert_int_equal(weft_sem_release(&p.ping, 1), WEFT_OK);
        assert_int_equal(weft_sem_acquire(&p.pong), WEFT_OK);
    }
    wt_join(t);
    assert_int_equal(p.handoffs, 2 * p.rounds);
    assert_int_equal(weft_sem_value(&p.ping), 0);
    assert_int_equal(weft_sem_value(&p.pong), 0);
    double ns = (double)(weft_now() - t0) / (double)p.handoffs;
    printf("sem ping-pong: %zu hand-offs, %.0f ns each\n", p.handoffs, ns);
    weft_sem_fini(&p.ping);
    weft_sem_fini(&p.pong);
}

static void
test_pingpong(void **state)
{
    (void)state;
    run_pingpong();
}

static void
test_pingpong_spurious(void **state)
{
    (void)state;
    weft__test_spurious_wakeups(3);
    run_pingpong();
    weft__test_spurious_wakeups(0);
}

/* ------------------------------------------------------------------------ */

#define PERMITS 3
#define THREADS 12

struct limited {
    weft_sem_t s;
    _Atomic int inside;
    _Atomic int max_inside;
    _Atomic int over; /* times inside exceeded PERMITS */
    size_t iters;
    uint64_t seed;
};

struct worker {
    struct limited *l;
    unsigned id;
};

static int
take(weft_sem_t *s, uint64_t r)
{
    switch (r % 3) {
    case 0:
        return weft_sem_acquire(s);
    case 1:
        return weft_sem_acquire_until(s, WEFT_FOREVER);
    default:
        while (weft_sem_try_acquire(s) == WEFT_EAGAIN) {
            weft_thread_yield();
        }
        return WEFT_OK;
    }
}

static void *
limited_worker(void *arg)
{
    struct worker *w = arg;
    struct limited *l = w->l;
    uint64_t rng = l->seed + w->id;
    for (size_t i = 0; i < l->iters; i++) {
        assert_int_equal(take(&l->s, wt_rand(&rng)), WEFT_OK);
        int now = atomic_fetch_add(&l->inside, 1) + 1;
        if (now > PERMITS) {
            atomic_fetch_add(&l->over, 1);
        }
        int seen = atomic_load(&l->max_inside);
        while (now > seen &&
               !atomic_compare_exchange_weak(&l->max_inside, &seen, now)) {
        }
        for (uint64_t k = wt_rand(&rng) % 64; k > 0; k--) {
            weft__cpu_relax();
        }
        atomic_fetch_sub(&l->inside, 1);
        assert_int_equal(weft_sem_release(&l->s, 1), WEFT_OK);
    }
    return NULL;
}

static void
test_k_permits(void **state)
{
    (void)state;
    static struct limited l;
    assert_int_equal(weft_sem_init_bounded(&l.s, PERMITS, PERMITS), WEFT_OK);
    l.iters = wt_size(40000, 1000000);
    l.seed = wt_seed();
    struct worker w[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){&l, i};
    }
    weft_time_t t0 = weft_now();
    wt_run_threads(THREADS, limited_worker, w, sizeof(w[0]));
    printf("k permits: %d threads x %zu in %.2f s, at most %d inside\n",
           THREADS, l.iters, (double)(weft_now() - t0) / 1e9,
           atomic_load(&l.max_inside));
    assert_int_equal(atomic_load(&l.over), 0);
    assert_true(atomic_load(&l.max_inside) <= PERMITS);
    assert_true(atomic_load(&l.max_inside) >= 1);
    assert_int_equal(weft_sem_value(&l.s), PERMITS);
    weft_sem_fini(&l.s);
}

/* ------------------------------------------------------------------------ */

struct handover {
    weft_sem_t go;
    weft_sem_t taken;
    weft_sem_t *slot;
    size_t n;
};

static void *
destroyer(void *arg)
{
    struct handover *h = arg;
    for (size_t i = 0; i < h->n; i++) {
        assert_int_equal(weft_sem_acquire(&h->go), WEFT_OK);
        weft_sem_t *s = h->slot;
        assert_int_equal(weft_sem_release(&h->taken, 1), WEFT_OK);
        assert_int_equal(weft_sem_acquire(s), WEFT_OK);
        weft_sem_fini(s);
        free(s);
    }
    return NULL;
}

static void
test_destroy_after_wake(void **state)
{
    (void)state;
    uint64_t rng = wt_seed() ^ 1;
    static struct handover h;
    assert_int_equal(weft_sem_init(&h.go, 0), WEFT_OK);
    assert_int_equal(weft_sem_init(&h.taken, 0), WEFT_OK);
    h.n = wt_size(50000, 2000000);
    weft_time_t t0 = weft_now();
    weft_thread_t *t = wt_start(destroyer, &h);
    for (size_t i = 0; i < h.n; i++) {
        weft_sem_t *s = malloc(sizeof(*s));
        assert_non_null(s);
        assert_int_equal(weft_sem_init(s, 0), WEFT_OK);
        h.slot = s;
        assert_int_equal(weft_sem_release(&h.go, 1), WEFT_OK);
        assert_int_equal(weft_sem_acquire(&h.taken), WEFT_OK);
        jitter(&rng);
        /* s may be freed once this releases the waiter. */
        assert_int_equal(weft_sem_release(s, 1), WEFT_OK);
    }
    wt_join(t);
    printf("destroy after wake: %zu objects in %.2f s\n", h.n,
           (double)(weft_now() - t0) / 1e9);
    weft_sem_fini(&h.go);
    weft_sem_fini(&h.taken);
}

int
main(void)
{
    wt_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pingpong),
        cmocka_unit_test(test_pingpong_spurious),
        cmocka_unit_test(test_k_permits),
        cmocka_unit_test(test_destroy_after_wake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
