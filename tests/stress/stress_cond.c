/* SPDX-License-Identifier: MIT */
/*
 * Stress for weft_cond_t (RELIABILITY R3): ping-pong hand-offs through a
 * mutex, a condition and a turn variable, with no timed wait (a lost
 * wake-up shows as the ctest timeout); the same with injected spurious
 * wake-ups; and many waiters woken by signal and broadcast mixed.
 */
#include "testutil.h"

#include <stdio.h>

#include "internal.h"

/* ------------------------------------------------------------------------ */

struct pingpong {
    weft_mutex_t m;
    weft_cond_t c;
    int turn; /* guarded by m */
    size_t rounds;
    size_t handoffs; /* guarded by m */
};

struct side {
    struct pingpong *p;
    int me;
};

static void *
play(void *arg)
{
    struct side *s = arg;
    struct pingpong *p = s->p;
    for (size_t i = 0; i < p->rounds; i++) {
        assert_int_equal(weft_mutex_lock(&p->m), WEFT_OK);
        while (p->turn != s->me) {
            assert_int_equal(weft_cond_wait(&p->c, &p->m), WEFT_OK);
        }
        p->turn = 1 - s->me;
        p->handoffs++;
        weft_cond_signal(&p->c);
        weft_mutex_unlock(&p->m);
    }
    return NULL;
}

static void
run_pingpong(void)
{
    static struct pingpong p;
    weft_mutex_init(&p.m);
    weft_cond_init(&p.c);
    p.turn = 0;
    p.handoffs = 0;
    p.rounds = wt_size(1000000, 20000000) / 2;
    struct side a = {&p, 0};
    struct side b = {&p, 1};
    weft_time_t t0 = weft_now();
    weft_thread_t *t = wt_start(play, &b);
    play(&a);
    wt_join(t);
    assert_int_equal(p.handoffs, 2 * p.rounds);
    assert_int_equal(p.turn, 0);
    double ns = (double)(weft_now() - t0) / (double)p.handoffs;
    printf("cond ping-pong: %zu hand-offs, %.0f ns each\n", p.handoffs, ns);
    weft_cond_fini(&p.c);
    weft_mutex_fini(&p.m);
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
/* Producers hand out tokens, one signal per token or a broadcast for a
 * batch; consumers each take exactly their share. */

#define CONSUMERS 6

struct tokens {
    weft_mutex_t m;
    weft_cond_t c;
    long available; /* guarded by m */
    long taken;     /* guarded by m */
    long per_consumer;
    uint64_t seed;
};

static void *
consumer(void *arg)
{
    struct tokens *t = arg;
    for (long i = 0; i < t->per_consumer; i++) {
        assert_int_equal(weft_mutex_lock(&t->m), WEFT_OK);
        while (t->available == 0) {
            assert_int_equal(weft_cond_wait(&t->c, &t->m), WEFT_OK);
        }
        t->available--;
        t->taken++;
        weft_mutex_unlock(&t->m);
    }
    return NULL;
}

static void
test_signal_and_broadcast(void **state)
{
    (void)state;
    static struct tokens t;
    weft_mutex_init(&t.m);
    weft_cond_init(&t.c);
    t.per_consumer = (long)wt_size(40000, 1000000);
    uint64_t rng = wt_seed();
    weft_thread_t *th[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        th[i] = wt_start(consumer, &t);
    }
    long total = t.per_consumer * CONSUMERS;
    for (long given = 0; given < total;) {
        long batch = 1 + (long)(wt_rand(&rng) % 8);
        if (batch > total - given) {
            batch = total - given;
        }
        assert_int_equal(weft_mutex_lock(&t.m), WEFT_OK);
        t.available += batch;
        weft_mutex_unlock(&t.m);
        /* Signal without the mutex, as allowed. */
        if (batch > 1 && (wt_rand(&rng) & 1)) {
            weft_cond_broadcast(&t.c);
        } else {
            for (long k = 0; k < batch; k++) {
                weft_cond_signal(&t.c);
            }
        }
        given += batch;
    }
    for (int i = 0; i < CONSUMERS; i++) {
        wt_join(th[i]);
    }
    assert_int_equal(t.taken, total);
    assert_int_equal(t.available, 0);
    weft_cond_fini(&t.c);
    weft_mutex_fini(&t.m);
}

int
main(void)
{
    wt_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pingpong),
        cmocka_unit_test(test_pingpong_spurious),
        cmocka_unit_test(test_signal_and_broadcast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
