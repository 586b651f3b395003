/* SPDX-License-Identifier: MIT */
/*
 * Stress for weft_event_t (RELIABILITY R3): ping-pong hand-offs with no
 * timed wait (a lost wake-up shows as the ctest timeout), the same with
 * injected spurious wake-ups, and events freed by the woken thread right
 * after its wait returns (ASan catches a setter that touches them later).
 */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

/* Burn a random short time, so threads meet in different phases. */
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
    weft_event_t ping;
    weft_event_t pong;
    size_t rounds;
    size_t handoffs; /* plain: each side writes it only in its turn */
};

static void *
ponger(void *arg)
{
    struct pingpong *p = arg;
    for (size_t i = 0; i < p->rounds; i++) {
        assert_int_equal(weft_event_wait(&p->ping), WEFT_OK);
        weft_event_clear(&p->ping);
        p->handoffs++;
        weft_event_set(&p->pong);
    }
    return NULL;
}

static void
run_pingpong(void)
{
    static struct pingpong p;
    weft_event_init(&p.ping);
    weft_event_init(&p.pong);
    /* Two hand-offs per round. */
    p.rounds = wt_size(1000000, 20000000) / 2;
    p.handoffs = 0;
    weft_time_t t0 = weft_now();
    weft_thread_t *t = wt_start(ponger, &p);
    for (size_t i = 0; i < p.rounds; i++) {
        p.handoffs++;
        weft_event_set(&p.ping);
        assert_int_equal(weft_event_wait(&p.pong), WEFT_OK);
        weft_event_clear(&p.pong);
    }
    wt_join(t);
    assert_int_equal(p.handoffs, 2 * p.rounds);
    double ns = (double)(weft_now() - t0) / (double)p.handoffs;
    printf("event ping-pong: %zu hand-offs, %.0f ns each\n", p.handoffs, ns);
    weft_event_fini(&p.ping);
    weft_event_fini(&p.pong);
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

struct handover {
    weft_sem_t go;    /* main -> helper: slot holds a new event */
    weft_sem_t taken; /* helper -> main: slot read */
    weft_event_t *slot;
    size_t n;
};

static void *
destroyer(void *arg)
{
    struct handover *h = arg;
    for (size_t i = 0; i < h->n; i++) {
        assert_int_equal(weft_sem_acquire(&h->go), WEFT_OK);
        weft_event_t *e = h->slot;
        assert_int_equal(weft_sem_release(&h->taken, 1), WEFT_OK);
        assert_int_equal(weft_event_wait(e), WEFT_OK);
        weft_event_fini(e);
        free(e);
    }
    return NULL;
}

static void
test_destroy_after_wake(void **state)
{
    (void)state;
    uint64_t rng = wt_seed();
    static struct handover h;
    assert_int_equal(weft_sem_init(&h.go, 0), WEFT_OK);
    assert_int_equal(weft_sem_init(&h.taken, 0), WEFT_OK);
    h.n = wt_size(50000, 2000000);
    weft_time_t t0 = weft_now();
    weft_thread_t *t = wt_start(destroyer, &h);
    for (size_t i = 0; i < h.n; i++) {
        weft_event_t *e = malloc(sizeof(*e));
        assert_non_null(e);
        weft_event_init(e);
        h.slot = e;
        assert_int_equal(weft_sem_release(&h.go, 1), WEFT_OK);
        assert_int_equal(weft_sem_acquire(&h.taken), WEFT_OK);
        jitter(&rng);
        weft_event_set(e); /* e may be freed once this releases the waiter */
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
        cmocka_unit_test(test_destroy_after_wake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
