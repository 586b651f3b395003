/* SPDX-License-Identifier: MIT */
/*
 * Stress for weft_mutex_t and weft_rlock_t (RELIABILITY R3): 8 threads on
 * 2 cores incrementing a plain counter under the lock (exact total; TSan
 * checks the ordering), the same with injected spurious wake-ups, waiters
 * that time out mixed with ones that do not (no stranded waiter), and
 * mutexes freed by the thread that got them right after unlocking (ASan
 * catches an unlocker that touches them later).
 */
#include "testutil.h"

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

#define THREADS 8

struct counter {
    weft_mutex_t m;
    weft_rlock_t r;
    size_t value; /* plain, guarded by m (or r) */
    size_t iters;
    uint64_t seed;
};

struct worker {
    struct counter *c;
    unsigned id;
};

static void
lock_some_way(weft_mutex_t *m, uint64_t r)
{
    switch (r % 4) {
    case 0:
    case 1:
        assert_int_equal(weft_mutex_lock(m), WEFT_OK);
        break;
    case 2:
        assert_int_equal(weft_mutex_lock_until(m, WEFT_FOREVER), WEFT_OK);
        break;
    default:
        while (weft_mutex_try_lock(m) == WEFT_EAGAIN) {
            weft_thread_yield();
        }
        break;
    }
}

static void *
mutex_worker(void *arg)
{
    struct worker *w = arg;
    struct counter *c = w->c;
    uint64_t rng = c->seed + w->id;
    for (size_t i = 0; i < c->iters; i++) {
        lock_some_way(&c->m, wt_rand(&rng));
        c->value++;
        weft_mutex_unlock(&c->m);
    }
    return NULL;
}

static void
run_counter(void)
{
    static struct counter c;
    weft_mutex_init(&c.m);
    c.value = 0;
    c.iters = wt_size(200000, 5000000);
    c.seed = wt_seed();
    struct worker w[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){&c, i};
    }
    weft_time_t t0 = weft_now();
    wt_run_threads(THREADS, mutex_worker, w, sizeof(w[0]));
    double ns = (double)(weft_now() - t0) / (double)(THREADS * c.iters);
    printf("mutex: %d threads x %zu increments, %.0f ns each\n", THREADS,
           c.iters, ns);
    assert_int_equal(c.value, THREADS * c.iters);
    weft_mutex_fini(&c.m);
}

static void
test_counter(void **state)
{
    (void)state;
    run_counter();
}

static void
test_counter_spurious(void **state)
{
    (void)state;
    weft__test_spurious_wakeups(3);
    run_counter();
    weft__test_spurious_wakeups(0);
}

static void *
rlock_worker(void *arg)
{
    struct worker *w = arg;
    struct counter *c = w->c;
    for (size_t i = 0; i < c->iters; i++) {
        assert_int_equal(weft_rlock_acquire(&c->r), WEFT_OK);
        assert_int_equal(weft_rlock_acquire(&c->r), WEFT_OK);
        c->value++;
        assert_int_equal(weft_rlock_release(&c->r), WEFT_OK);
        assert_int_equal(weft_rlock_release(&c->r), WEFT_OK);
    }
    return NULL;
}

static void
test_rlock_counter(void **state)
{
    (void)state;
    static struct counter c;
    weft_rlock_init(&c.r);
    c.value = 0;
    c.iters = wt_size(100000, 5000000);
    struct worker w[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct worker){&c, i};
    }
    wt_run_threads(THREADS, rlock_worker, w, sizeof(w[0]));
    assert_int_equal(c.value, THREADS * c.iters);
    weft_rlock_fini(&c.r);
}

/* ------------------------------------------------------------------------ */
/* Half the threads use short deadlines and give up often: the others, which
 * wait without deadline, must never be stranded by a wake-up a leaving
 * waiter took. */

struct timed_worker {
    struct counter *c;
    unsigned id;
    size_t timeouts;
};

static void *
mixed_worker(void *arg)
{
    struct timed_worker *w = arg;
    struct counter *c = w->c;
    uint64_t rng = c->seed + w->id;
    for (size_t i = 0; i < c->iters;) {
        if (w->id % 2 == 0) {
            weft_time_t dl =
                weft_deadline_in((weft_time_t)(wt_rand(&rng) % 20) * WEFT_USEC);
            int rc = weft_mutex_lock_until(&c->m, dl);
            if (rc == WEFT_ETIMEDOUT) {
                w->timeouts++;
                continue;
            }
            assert_int_equal(rc, WEFT_OK);
        } else {
            assert_int_equal(weft_mutex_lock(&c->m), WEFT_OK);
        }
        c->value++;
        jitter(&rng);
        weft_mutex_unlock(&c->m);
        i++;
    }
    return NULL;
}

static void
test_timeouts_strand_nobody(void **state)
{
    (void)state;
    static struct counter c;
    weft_mutex_init(&c.m);
    c.value = 0;
    c.iters = wt_size(20000, 500000);
    c.seed = wt_seed() ^ 2;
    struct timed_worker w[THREADS];
    for (unsigned i = 0; i < THREADS; i++) {
        w[i] = (struct timed_worker){&c, i, 0};
    }
    wt_run_threads(THREADS, mixed_worker, w, sizeof(w[0]));
    size_t timeouts = 0;
    for (unsigned i = 0; i < THREADS; i++) {
        timeouts += w[i].timeouts;
    }
    printf("mutex with deadlines: %zu timeouts\n", timeouts);
    assert_int_equal(c.value, THREADS * c.iters);
    weft_mutex_fini(&c.m);
}

/* ------------------------------------------------------------------------ */

struct handover {
    weft_sem_t go;
    weft_sem_t taken;
    weft_mutex_t *slot;
    size_t n;
};

static void *
destroyer(void *arg)
{
    struct handover *h = arg;
    for (size_t i = 0; i < h->n; i++) {
        assert_int_equal(weft_sem_acquire(&h->go), WEFT_OK);
        weft_mutex_t *m = h->slot;
        assert_int_equal(weft_sem_release(&h->taken, 1), WEFT_OK);
        assert_int_equal(weft_mutex_lock(m), WEFT_OK);
        weft_mutex_unlock(m);
        weft_mutex_fini(m);
        free(m);
    }
    return NULL;
}

static void
test_destroy_after_wake(void **state)
{
    (void)state;
    uint64_t rng = wt_seed() ^ 3;
    static struct handover h;
    assert_int_equal(weft_sem_init(&h.go, 0), WEFT_OK);
    assert_int_equal(weft_sem_init(&h.taken, 0), WEFT_OK);
    h.n = wt_size(50000, 2000000);
    weft_time_t t0 = weft_now();
    weft_thread_t *t = wt_start(destroyer, &h);
    for (size_t i = 0; i < h.n; i++) {
        weft_mutex_t *m = malloc(sizeof(*m));
        assert_non_null(m);
        weft_mutex_init(m);
        assert_int_equal(weft_mutex_lock(m), WEFT_OK);
        h.slot = m;
        assert_int_equal(weft_sem_release(&h.go, 1), WEFT_OK);
        assert_int_equal(weft_sem_acquire(&h.taken), WEFT_OK);
        jitter(&rng);
        weft_mutex_unlock(m); /* m may be freed once this releases it */
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
        cmocka_unit_test(test_counter),
        cmocka_unit_test(test_counter_spurious),
        cmocka_unit_test(test_rlock_counter),
        cmocka_unit_test(test_timeouts_strand_nobody),
        cmocka_unit_test(test_destroy_after_wake),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
