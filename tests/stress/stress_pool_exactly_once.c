/* SPDX-License-Identifier: MIT */
/*
 * Stress (RELIABILITY R1): every task submitted to the pool runs exactly
 * once. Millions of tasks on 1, 2, 4 and 8 workers (oversubscribed on a
 * small machine), from 1 and from 4 submitting threads, mixing
 * fire-and-forget submits, futures, tasks that submit more tasks from
 * inside, fork-join trees inside the pool, groups spawned from outside and
 * weft_pool_run; then all of it again with deques of initial capacity 2,
 * so that they wrap around and grow all the time.
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/executor.h>
#include <weft/future.h>
#include <weft/pool.h>

#include "deque.h"

/*
 * DESIGN
 * The run owns one counter slot per unit of work (n slots); each submitter
 * covers a contiguous share of them, cutting it into pieces of random kind
 * and length. Whatever the path a piece takes, every slot is hit by
 * exactly one leaf: a fetch_add that sees a non-zero old value is a
 * duplicate, a slot still 0 at the end was lost. The leaf that completes
 * the count sets an event the test waits on (with a far deadline, so a
 * lost task is a failure with a count, not a hang); then the pool is shut
 * down (joining every thread) and all slots are checked. A piece's start
 * and length travel in the task's argument (start << 16 | length).
 * Futures are kept in a small ring per submitter and checked (state and
 * value) when the ring wraps.
 */

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__) ||           \
    defined(WEFT_SANITIZE_THREAD) || defined(WEFT_SANITIZE_ADDRESS)
#define SHORT_N 200000u
#else
#define SHORT_N 2000000u
#endif
#define LONG_N 20000000u

#define FAR (500 * WEFT_SEC)
#define RING 128

enum {
    K_FIRE,          /* fire-and-forget, one slot */
    K_FUTURE,        /* with a future, one slot */
    K_NESTED,        /* submits the rest of its piece from inside */
    K_TREE,          /* a fork-join tree inside a task */
    K_OUTSIDE_GROUP, /* children spawned from the submitting thread */
    K_POOL_RUN,      /* weft_pool_run of a tree */
    K_KINDS
};

typedef struct run {
    weft_executor_t *ex;
    _Atomic uint8_t *slots;
    size_t n;
    _Atomic size_t hits;
    weft_event_t all_done;
    _Atomic int errors;
    uint64_t seed;
} run_t;

static run_t *R;

static void
report(const char *what, size_t a, long b)
{
    if (atomic_fetch_add(&R->errors, 1) < 5) {
        printf("error: %s (%zu, %ld)\n", what, a, b);
        fflush(stdout);
    }
}

static void *
enc(size_t lo, size_t len)
{
    return (void *)(uintptr_t)((lo << 16) | len);
}

static void
dec(void *p, size_t *lo, size_t *len)
{
    uintptr_t v = (uintptr_t)p;
    *lo = (size_t)(v >> 16);
    *len = (size_t)(v & 0xffffu);
}

static void
hit(size_t i)
{
    if (i >= R->n) {
        report("slot out of range", i, 0);
        return;
    }
    uint8_t old =
        atomic_fetch_add_explicit(&R->slots[i], 1, memory_order_relaxed);
    if (old != 0) {
        report("slot hit twice", i, old);
    }
    if (atomic_fetch_add_explicit(&R->hits, 1, memory_order_acq_rel) + 1 ==
        R->n) {
        weft_event_set(&R->all_done);
    }
}

static void *
leaf_task(void *arg)
{
    size_t lo, len;
    dec(arg, &lo, &len);
    hit(lo);
    return arg;
}

/* Hit the first slot, submit the two halves of the rest from inside: one
 * fire-and-forget, one with a future released at once. */
static void *
nested_task(void *arg)
{
    size_t lo, len;
    dec(arg, &lo, &len);
    hit(lo);
    size_t rest = len - 1, a = rest / 2, b = rest - a;
    weft_executor_t *ex = weft_pool_current();
    if (ex != R->ex) {
        report("nested task outside its pool", lo, 0);
        return NULL;
    }
    if (a > 0) {
        int rc =
            weft_executor_submit(ex, nested_task, enc(lo + 1, a), NULL, NULL);
        if (rc != WEFT_OK) {
            report("inside submit failed", lo, rc);
        }
    }
    if (b > 0) {
        weft_future_t *f = NULL;
        int rc =
            weft_executor_submit(ex, nested_task, enc(lo + 1 + a, b), NULL, &f);
        if (rc != WEFT_OK) {
            report("inside submit with future failed", lo, rc);
        } else {
            weft_future_release(f);
        }
    }
    return NULL;
}

typedef struct range {
    size_t lo, len;
} range_t;

static void
tree_fn(void *arg)
{
    range_t *r = arg;
    if (r->len == 1) {
        hit(r->lo);
        return;
    }
    size_t a = r->len / 2;
    range_t left = {r->lo, a}, right = {r->lo + a, r->len - a};
    weft_group_t g;
    int rc = weft_group_init(&g, NULL);
    if (rc != WEFT_OK) {
        report("group_init in a tree", r->lo, rc);
        return;
    }
    rc = weft_group_spawn(&g, tree_fn, &right);
    if (rc != WEFT_OK) {
        report("spawn in a tree", r->lo, rc);
    }
    tree_fn(&left);
    rc = weft_group_wait(&g);
    if (rc != WEFT_OK) {
        report("group_wait in a tree", r->lo, rc);
    }
}

static void *
tree_task(void *arg)
{
    range_t r;
    dec(arg, &r.lo, &r.len);
    tree_fn(&r);
    return NULL;
}

static void
spawned_leaf(void *arg)
{
    size_t lo, len;
    dec(arg, &lo, &len);
    hit(lo);
}

/* ------------------------------------------------------------------------ */
/* Submitters                                                                */

typedef struct submitter {
    size_t lo, hi; /* share of slots */
    uint64_t rng;
    weft_future_t *ring[RING];
    void *expect[RING];
    size_t nring;
    size_t kinds[K_KINDS];
} submitter_t;

static void
check_future(weft_future_t *f, void *expect)
{
    void *v = NULL;
    int rc = weft_future_wait_until(f, weft_deadline_in(FAR));
    if (rc == WEFT_OK) {
        rc = weft_future_result(f, &v);
    }
    if (rc != WEFT_OK || v != expect ||
        weft_future_state(f) != WEFT_FUTURE_DONE) {
        size_t lo, len;
        dec(expect, &lo, &len);
        report("future not DONE with its value", lo, rc);
    }
    weft_future_release(f);
}

static void
submit_or_report(weft_task_fn fn, void *arg, weft_future_t **out)
{
    int rc = weft_executor_submit(R->ex, fn, arg, NULL, out);
    if (rc != WEFT_OK) {
        size_t lo, len;
        dec(arg, &lo, &len);
        report("submit failed", lo, rc);
    }
}

static void
submit_piece(submitter_t *s, int kind, size_t lo, size_t len)
{
    void *arg = enc(lo, len);
    switch (kind) {
    case K_FIRE:
        submit_or_report(leaf_task, arg, NULL);
        break;
    case K_FUTURE: {
        size_t slot = s->nring++ % RING;
        if (s->ring[slot] != NULL) {
            check_future(s->ring[slot], s->expect[slot]);
        }
        s->ring[slot] = NULL;
        s->expect[slot] = arg;
        submit_or_report(leaf_task, arg, &s->ring[slot]);
        break;
    }
    case K_NESTED:
        submit_or_report(nested_task, arg, NULL);
        break;
    case K_TREE:
        submit_or_report(tree_task, arg, NULL);
        break;
    case K_OUTSIDE_GROUP: {
        weft_group_t g;
        int rc = weft_group_init(&g, R->ex);
        if (rc != WEFT_OK) {
            report("group_init from outside", lo, rc);
            break;
        }
        for (size_t i = 0; i < len; i++) {
            rc = weft_group_spawn(&g, spawned_leaf, enc(lo + i, 1));
            if (rc != WEFT_OK) {
                report("spawn from outside", lo + i, rc);
            }
        }
        rc = weft_group_wait(&g);
        if (rc != WEFT_OK) {
            report("group_wait from outside", lo, rc);
        }
        break;
    }
    case K_POOL_RUN: {
        range_t r = {lo, len};
        int rc = weft_pool_run(R->ex, tree_fn, &r);
        if (rc != WEFT_OK) {
            report("pool_run", lo, rc);
        }
        break;
    }
    default:
        break;
    }
}

/* Kinds weighted towards the cheap ones; lengths per kind. */
static void
pick(submitter_t *s, int *kind, size_t *len)
{
    uint64_t r = wt_rand(&s->rng);
    unsigned k = (unsigned)(r % 100);
    if (k < 35) {
        *kind = K_FIRE;
        *len = 1;
    } else if (k < 60) {
        *kind = K_FUTURE;
        *len = 1;
    } else if (k < 80) {
        *kind = K_NESTED;
        *len = 1 + (size_t)((r >> 8) % 16);
    } else if (k < 94) {
        *kind = K_TREE;
        *len = 1 + (size_t)((r >> 8) % 16);
    } else if (k < 98) {
        *kind = K_OUTSIDE_GROUP;
        *len = 1 + (size_t)((r >> 8) % 16);
    } else {
        *kind = K_POOL_RUN;
        *len = 1 + (size_t)((r >> 8) % 64);
    }
}

static void *
submitter_main(void *arg)
{
    submitter_t *s = arg;
    size_t i = s->lo;
    while (i < s->hi) {
        int kind;
        size_t len;
        pick(s, &kind, &len);
        if (len > s->hi - i) {
            len = s->hi - i;
        }
        s->kinds[kind]++;
        submit_piece(s, kind, i, len);
        i += len;
    }
    for (size_t k = 0; k < RING; k++) {
        if (s->ring[k] != NULL) {
            check_future(s->ring[k], s->expect[k]);
            s->ring[k] = NULL;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* One run                                                                   */

static void
run_once(unsigned workers, size_t nsub, size_t n, size_t deque_cap)
{
    static run_t run;
    memset(&run, 0, sizeof(run));
    R = &run;
    run.n = n;
    run.seed = wt_seed() ^ (workers * 0x9e37u + nsub);
    run.slots = calloc(n, 1);
    assert_non_null(run.slots);
    weft_event_init(&run.all_done);

    weft__deque_set_initial_capacity(deque_cap);
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    o.workers = workers;
    assert_int_equal(weft_pool_create(&o, &run.ex), WEFT_OK);
    weft__deque_set_initial_capacity(256);

    submitter_t *subs = calloc(nsub, sizeof(*subs));
    assert_non_null(subs);
    for (size_t t = 0; t < nsub; t++) {
        subs[t].lo = n * t / nsub;
        subs[t].hi = n * (t + 1) / nsub;
        subs[t].rng = run.seed + t;
    }
    weft_time_t t0 = weft_now();
    if (nsub == 1) {
        (void)submitter_main(&subs[0]);
    } else {
        wt_run_threads(nsub, submitter_main, subs, sizeof(*subs));
    }
    int rc = weft_event_wait_until(&run.all_done, weft_deadline_in(FAR));
    if (rc != WEFT_OK) {
        fail_msg("%zu of %zu slots hit before the deadline",
                 atomic_load(&run.hits), n);
    }
    assert_int_equal(weft_executor_shutdown(run.ex, true, false), WEFT_OK);
    weft_executor_destroy(run.ex);
    weft_time_t took = weft_now() - t0;

    size_t counts[K_KINDS] = {0};
    for (size_t t = 0; t < nsub; t++) {
        for (int k = 0; k < K_KINDS; k++) {
            counts[k] += subs[t].kinds[k];
        }
    }
    printf("%u workers, %zu submitters, deque %zu: %zu slots in %lld ms "
           "(pieces: fire %zu future %zu nested %zu tree %zu group %zu "
           "run %zu)\n",
           workers, nsub, deque_cap, n, (long long)(took / WEFT_MSEC),
           counts[K_FIRE], counts[K_FUTURE], counts[K_NESTED], counts[K_TREE],
           counts[K_OUTSIDE_GROUP], counts[K_POOL_RUN]);
    fflush(stdout);

    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t v = atomic_load_explicit(&run.slots[i], memory_order_relaxed);
        if (v != 1 && bad++ < 5) {
            printf("slot %zu hit %u times\n", i, (unsigned)v);
        }
    }
    assert_int_equal(bad, 0);
    assert_int_equal(atomic_load(&run.hits), n);
    assert_int_equal(atomic_load(&run.errors), 0);
    free(subs);
    free((void *)run.slots);
    weft_event_fini(&run.all_done);
    R = NULL;
}

static size_t
run_size(void)
{
    /* wt_size divides the short size by the sanitizer slowdown; the short
     * sizes above are already chosen per build. */
    return wt_size((size_t)SHORT_N * WEFT_TEST_SLOW, LONG_N);
}

static void
run_workers(unsigned workers, size_t deque_cap)
{
    (void)wt_seed();
    size_t n = run_size();
    run_once(workers, 1, n, deque_cap);
    run_once(workers, 4, n, deque_cap);
}

static void
test_1_worker(void **state)
{
    (void)state;
    run_workers(1, 256);
}

static void
test_2_workers(void **state)
{
    (void)state;
    run_workers(2, 256);
}

static void
test_4_workers(void **state)
{
    (void)state;
    run_workers(4, 256);
}

static void
test_8_workers(void **state)
{
    (void)state;
    run_workers(8, 256);
}

static void
test_1_worker_tiny_deques(void **state)
{
    (void)state;
    run_workers(1, 2);
}

static void
test_2_workers_tiny_deques(void **state)
{
    (void)state;
    run_workers(2, 2);
}

static void
test_4_workers_tiny_deques(void **state)
{
    (void)state;
    run_workers(4, 2);
}

static void
test_8_workers_tiny_deques(void **state)
{
    (void)state;
    run_workers(8, 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_1_worker),
        cmocka_unit_test(test_2_workers),
        cmocka_unit_test(test_4_workers),
        cmocka_unit_test(test_8_workers),
        cmocka_unit_test(test_1_worker_tiny_deques),
        cmocka_unit_test(test_2_workers_tiny_deques),
        cmocka_unit_test(test_4_workers_tiny_deques),
        cmocka_unit_test(test_8_workers_tiny_deques),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
