/* SPDX-License-Identifier: MIT */
/*
 * Stress for weft_barrier_t: many rounds with 8 threads on 2 cores. Each
 * round's arrival indices are a permutation of 0..parties-1, exactly one
 * thread gets WEFT_BARRIER_SERIAL, and the action ran exactly once per round
 * before anyone was released. No timed waits (a lost wake-up shows as the
 * ctest timeout); a second run injects spurious wake-ups.
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

#define PARTIES 8

struct rounds {
    weft_barrier_t b;
    size_t n;
    size_t actions; /* plain: written by the action, read after release */
    _Atomic unsigned *seen;   /* per round: bit i = index i was returned */
    _Atomic unsigned *serial; /* per round: SERIAL returns */
    _Atomic unsigned errors;
    uint64_t seed;
};

struct party {
    struct rounds *r;
    unsigned id;
};

static void
action(void *arg)
{
    struct rounds *r = arg;
    r->actions++;
}

static void *
party_thread(void *arg)
{
    struct party *p = arg;
    struct rounds *r = p->r;
    uint64_t rng = r->seed + p->id;
    for (size_t round = 0; round < r->n; round++) {
        unsigned index = PARTIES;
        int rc = wt_rand(&rng) & 1
                     ? weft_barrier_wait(&r->b, &index)
                     : weft_barrier_wait_until(&r->b, &index, WEFT_FOREVER);
        /* The action of this round ran, and the next one cannot have. */
        bool ok = (rc == WEFT_OK || rc == WEFT_BARRIER_SERIAL) &&
                  index < PARTIES && r->actions == round + 1;
        if (ok && rc == WEFT_BARRIER_SERIAL) {
            ok = index == PARTIES - 1;
            atomic_fetch_add(&r->serial[round], 1);
        }
        if (ok) {
            unsigned bit = 1u << index;
            ok = (atomic_fetch_or(&r->seen[round], bit) & bit) == 0;
        }
        if (!ok) {
            atomic_fetch_add(&r->errors, 1);
        }
    }
    return NULL;
}

static void
run_rounds(void)
{
    static struct rounds r;
    r.n = wt_size(40000, 1000000);
    r.actions = 0;
    r.seed = wt_seed();
    r.seen = calloc(r.n, sizeof(r.seen[0]));
    r.serial = calloc(r.n, sizeof(r.serial[0]));
    assert_non_null(r.seen);
    assert_non_null(r.serial);
    atomic_store(&r.errors, 0);
    assert_int_equal(weft_barrier_init(&r.b, PARTIES, action, &r), WEFT_OK);
    struct party p[PARTIES];
    for (unsigned i = 0; i < PARTIES; i++) {
        p[i] = (struct party){&r, i};
    }
    weft_time_t t0 = weft_now();
    wt_run_threads(PARTIES, party_thread, p, sizeof(p[0]));
    printf("barrier: %zu rounds of %d, %.1f us per round\n", r.n, PARTIES,
           (double)(weft_now() - t0) / 1e3 / (double)r.n);
    assert_int_equal(atomic_load(&r.errors), 0);
    assert_int_equal(r.actions, r.n);
    for (size_t i = 0; i < r.n; i++) {
        assert_int_equal(atomic_load(&r.seen[i]), (1u << PARTIES) - 1);
        assert_int_equal(atomic_load(&r.serial[i]), 1);
    }
    assert_false(weft_barrier_is_broken(&r.b));
    assert_int_equal(weft_barrier_n_waiting(&r.b), 0);
    weft_barrier_fini(&r.b);
    free(r.seen);
    free(r.serial);
}

static void
test_rounds(void **state)
{
    (void)state;
    run_rounds();
}

static void
test_rounds_spurious(void **state)
{
    (void)state;
    weft__test_spurious_wakeups(3);
    run_rounds();
    weft__test_spurious_wakeups(0);
}

int
main(void)
{
    wt_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rounds),
        cmocka_unit_test(test_rounds_spurious),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
