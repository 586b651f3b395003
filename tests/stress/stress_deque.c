/* SPDX-License-Identifier: MIT */
/*
 * Stress (RELIABILITY R2): the work-stealing deque under one owner and
 * concurrent thieves, from initial capacity 2 so that wraparound and growth
 * happen constantly. Every element must be taken exactly once, each thief
 * must see increasing elements, every thief must get work; plus the named
 * regression tests for the two known bugs of the published C11 code.
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "deque.h"

/*
 * DESIGN
 * Elements are indices + 1 disguised as pointers; the owner pushes them in
 * increasing order. A steal takes the element at top, and top only grows,
 * so the elements one thief steals increase. Each take bumps a per-element
 * counter (fetch_add): a duplicate shows as a counter of 2, a loss as 0.
 * Errors found off the main thread are counted and the first few printed;
 * the main thread asserts on the totals after joining.
 */

#define NTHIEVES 8

typedef struct shared {
    weft__deque_t *dq;
    size_t n;              /* elements per run or round */
    _Atomic uint8_t *seen; /* per-element take counters */
    _Atomic int done;      /* the owner has pushed everything */
    _Atomic size_t ready;  /* threads at the start line */
    size_t nthreads;
    _Atomic int errors;
    uint64_t seed;
} shared_t;

typedef struct worker {
    shared_t *sh;
    size_t id; /* 0: owner; 1..: thieves */
    size_t stolen;
} worker_t;

static void *
el(size_t i)
{
    return (void *)(uintptr_t)(i + 1);
}

static void
report(shared_t *sh, const char *what, uintptr_t v)
{
    if (atomic_fetch_add(&sh->errors, 1) < 5) {
        printf("error: %s (element %#llx)\n", what, (unsigned long long)v);
        fflush(stdout);
    }
}

/* Record one take; returns the element's index, or SIZE_MAX if invalid. */
static size_t
take(shared_t *sh, void *x)
{
    uintptr_t v = (uintptr_t)x;
    if (v == 0 || v > sh->n) {
        report(sh, "garbage element", v);
        return SIZE_MAX;
    }
    if (atomic_fetch_add_explicit(&sh->seen[v - 1], 1, memory_order_relaxed) !=
        0) {
        report(sh, "element taken twice", v);
    }
    return (size_t)(v - 1);
}

static weft__deque_t *
new_deque(void)
{
    weft__deque_set_initial_capacity(2);
    weft__deque_t *dq = weft__malloc_aligned(sizeof(*dq));
    assert_non_null(dq);
    assert_int_equal(weft__deque_init(dq), WEFT_OK);
    return dq;
}

static void
free_deque(weft__deque_t *dq)
{
    weft__deque_fini(dq);
    weft__free_aligned(dq);
}

static void
spin(uint64_t *rs, unsigned max)
{
    for (uint64_t k = wt_rand(rs) % max; k > 0; k--) {
        weft__cpu_relax();
    }
}

static void
check_each_once(shared_t *sh)
{
    size_t bad = 0;
    for (size_t i = 0; i < sh->n; i++) {
        uint8_t c = atomic_load_explicit(&sh->seen[i], memory_order_relaxed);
        if (c != 1 && bad++ < 5) {
            printf("element %zu taken %u times\n", i + 1, (unsigned)c);
        }
    }
    assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------ R2 */

/* The owner pushes 0..n-1, popping now and then; after every 64 pushes it
 * yields until the thieves (which outnumber the cores) have emptied the
 * deque, so that each of them gets to run while it holds work. Then it
 * drains what is left. */
static void
owner_run(worker_t *w)
{
    shared_t *sh = w->sh;
    uint64_t rs = sh->seed;
    size_t popped = 0;
    for (size_t i = 0; i < sh->n; i++) {
        if (!weft__deque_push(sh->dq, el(i))) {
            report(sh, "push failed", i + 1);
            break;
        }
        if (wt_rand(&rs) % 4 == 0) {
            void *x = weft__deque_pop(sh->dq);
            if (x == NULL) {
                continue; /* thieves emptied it */
            }
            (void)take(sh, x);
            popped++;
        }
        if (i % 64 == 63) {
            /* Let the thieves drain this batch. Thieves on the owner's
             * core run only while it yields: yielding when the deque is
             * empty would starve them, the others taking everything. */
            while (weft__deque_size(sh->dq) > 0) {
                weft_thread_yield();
            }
        }
    }
    atomic_store_explicit(&sh->done, 1, memory_order_release);
    for (void *x; (x = weft__deque_pop(sh->dq)) != NULL;) {
        (void)take(sh, x);
        popped++;
    }
    w->stolen = popped;
}

static void
thief_run(worker_t *w)
{
    shared_t *sh = w->sh;
    size_t last = SIZE_MAX;
    for (;;) {
        void *x = NULL;
        weft__steal_t r = weft__deque_steal(sh->dq, &x, NULL, NULL);
        if (r == WEFT__STEAL_OK) {
            size_t i = take(sh, x);
            if (i != SIZE_MAX && last != SIZE_MAX && i <= last) {
                report(sh, "thief saw a smaller element after a larger",
                       (uintptr_t)x);
            }
            last = i;
            w->stolen++;
            /* Pass the core on: a thief that keeps it while others on the
             * same core only run when the deque is empty starves them. */
            weft_thread_yield();
        } else if (r == WEFT__STEAL_EMPTY) {
            /* After done, nothing is pushed again: empty is final. */
            if (atomic_load_explicit(&sh->done, memory_order_acquire)) {
                break;
            }
            weft_thread_yield();
        } else if (r != WEFT__STEAL_RETRY) {
            report(sh, "unexpected steal result", (uintptr_t)r);
            break;
        }
    }
}

/* Start together: thread creation is slow while earlier threads spin, and
 * a thief created after the owner finished would get no work. */
static void
start_line(shared_t *sh)
{
    atomic_fetch_add_explicit(&sh->ready, 1, memory_order_relaxed);
    while (atomic_load_explicit(&sh->ready, memory_order_relaxed) <
           sh->nthreads) {
        weft_thread_yield();
    }
}

static void *
r2_main(void *arg)
{
    worker_t *w = arg;
    start_line(w->sh);
    if (w->id == 0) {
        owner_run(w);
    } else {
        thief_run(w);
    }
    return NULL;
}

static void
test_owner_and_eight_thieves(void **state)
{
    (void)state;
    shared_t sh = {0};
    sh.n = wt_size(800000, 80000000);
    sh.seed = wt_seed();
    sh.nthreads = 1 + NTHIEVES;
    sh.dq = new_deque();
    sh.seen = calloc(sh.n, sizeof(*sh.seen));
    assert_non_null(sh.seen);
    worker_t w[1 + NTHIEVES];
    for (size_t i = 0; i <= NTHIEVES; i++) {
        w[i] = (worker_t){&sh, i, 0};
    }
    wt_run_threads(1 + NTHIEVES, r2_main, w, sizeof(w[0]));
    assert_int_equal(atomic_load(&sh.errors), 0);
    check_each_once(&sh);
    size_t total = 0;
    printf("n %zu: owner took %zu, thieves", sh.n, w[0].stolen);
    for (size_t i = 0; i <= NTHIEVES; i++) {
        total += w[i].stolen;
        if (i > 0) {
            printf(" %zu", w[i].stolen);
        }
    }
    printf("\n");
    assert_int_equal(total, sh.n);
    for (size_t i = 1; i <= NTHIEVES; i++) {
        assert_true(w[i].stolen > 0); /* every thief got work */
    }
    assert_int_equal(weft__deque_size(sh.dq), 0);
    free_deque(sh.dq);
    free(sh.seen);
}

/* ------------------------------------------- push right after resize */

/*
 * Each round: a fresh deque of capacity 2; the owner pushes ELEMS elements
 * (five grows) with small random pauses while three thieves steal without
 * pause, so that steals run against buffers that were just replaced and
 * elements pushed right after a grow. Every element exactly once, never
 * NULL or garbage; the retired buffers are freed by fini (ASan/LSan).
 */
#define RESIZE_THIEVES 3
#define ELEMS 64

typedef struct resize_run {
    shared_t sh;
    weft_barrier_t bar;
    size_t rounds;
} resize_run_t;

typedef struct rworker {
    resize_run_t *run;
    size_t id;
} rworker_t;

static void
barrier(resize_run_t *run)
{
    int rc = weft_barrier_wait(&run->bar, NULL);
    if (rc != WEFT_OK && rc != WEFT_BARRIER_SERIAL) {
        report(&run->sh, "barrier", (uintptr_t)-rc);
    }
}

static void
resize_owner_round(resize_run_t *run, uint64_t *rs)
{
    shared_t *sh = &run->sh;
    for (size_t i = 0; i < ELEMS; i++) {
        if (!weft__deque_push(sh->dq, el(i))) {
            report(sh, "push failed", i + 1);
        }
        spin(rs, 16);
    }
    atomic_store_explicit(&sh->done, 1, memory_order_release);
    for (void *x; (x = weft__deque_pop(sh->dq)) != NULL;) {
        (void)take(sh, x);
    }
}

static void
resize_thief_round(resize_run_t *run)
{
    shared_t *sh = &run->sh;
    for (;;) {
        void *x = NULL;
        weft__steal_t r = weft__deque_steal(sh->dq, &x, NULL, NULL);
        if (r == WEFT__STEAL_OK) {
            (void)take(sh, x);
        } else if (r == WEFT__STEAL_EMPTY) {
            if (atomic_load_explicit(&sh->done, memory_order_acquire)) {
                break;
            }
            weft_thread_yield(); /* let the owner push */
        }
    }
}

/* The owner (id 0) sets each round up between two barriers: the deque and
 * counters are only touched by the owner while the thieves wait. */
static void *
resize_main(void *arg)
{
    rworker_t *w = arg;
    resize_run_t *run = w->run;
    shared_t *sh = &run->sh;
    uint64_t rs = sh->seed + w->id;
    for (size_t r = 0; r < run->rounds; r++) {
        if (w->id == 0) {
            weft__deque_set_initial_capacity(2);
            if (weft__deque_init(sh->dq) != WEFT_OK) {
                report(sh, "init", 0);
            }
            atomic_store_explicit(&sh->done, 0, memory_order_relaxed);
            for (size_t i = 0; i < ELEMS; i++) {
                atomic_store_explicit(&sh->seen[i], 0, memory_order_relaxed);
            }
        }
        barrier(run);
        if (w->id == 0) {
            resize_owner_round(run, &rs);
        } else {
            resize_thief_round(run);
        }
        barrier(run);
        if (w->id == 0) {
            for (size_t i = 0; i < ELEMS; i++) {
                if (atomic_load_explicit(&sh->seen[i], memory_order_relaxed) !=
                    1) {
                    report(sh, "element not taken exactly once", i + 1);
                }
            }
            weft__deque_fini(sh->dq);
        }
    }
    return NULL;
}

static void
regression_push_right_after_resize(void **state)
{
    (void)state;
    resize_run_t run = {0};
    run.rounds = wt_size(40000, 2000000);
    run.sh.seed = wt_seed();
    run.sh.n = ELEMS;
    run.sh.dq = weft__malloc_aligned(sizeof(*run.sh.dq));
    run.sh.seen = calloc(ELEMS, sizeof(*run.sh.seen));
    assert_non_null(run.sh.dq);
    assert_non_null(run.sh.seen);
    assert_int_equal(
        weft_barrier_init(&run.bar, 1 + RESIZE_THIEVES, NULL, NULL), WEFT_OK);
    rworker_t w[1 + RESIZE_THIEVES];
    for (size_t i = 0; i <= RESIZE_THIEVES; i++) {
        w[i] = (rworker_t){&run, i};
    }
    wt_run_threads(1 + RESIZE_THIEVES, resize_main, w, sizeof(w[0]));
    printf("rounds %zu of %d elements, capacity 2 -> %d\n", run.rounds, ELEMS,
           ELEMS);
    assert_int_equal(atomic_load(&run.sh.errors), 0);
    weft_barrier_fini(&run.bar);
    weft__free_aligned(run.sh.dq);
    free(run.sh.seen);
}

/* ----------------------------------- take racing steal, last element */

/*
 * Each round the owner pushes one element, then the owner's pop and the
 * thieves' steals start together (a spin start on the round number, then a
 * random pause of up to a few hundred cycles each, to sweep the race
 * window). Exactly one of them must get the element. The deque is the same
 * across rounds, so a pop that loses the race and leaves bottom wrong
 * loses the next round's element.
 */
#define RACE_THIEVES 2

typedef struct race_run {
    weft__deque_t *dq;
    size_t rounds;
    uint64_t seed;
    _Atomic size_t go;       /* round number + 1 that may start */
    _Atomic size_t finished; /* thieves done with the current round */
    void *got[RACE_THIEVES + 1];
    size_t wins[RACE_THIEVES + 1];
    _Atomic int errors;
} race_run_t;

typedef struct race_worker {
    race_run_t *run;
    size_t id;
} race_worker_t;

static void
race_report(race_run_t *run, const char *what, size_t round)
{
    if (atomic_fetch_add(&run->errors, 1) < 5) {
        printf("error: round %zu: %s\n", round, what);
        fflush(stdout);
    }
}

static void
wait_until(_Atomic size_t *v, size_t want)
{
    for (unsigned k = 0; atomic_load_explicit(v, memory_order_acquire) != want;
         k++) {
        if (k < 256) {
            weft__cpu_relax();
        } else {
            weft_thread_yield();
        }
    }
}

static void
race_check(race_run_t *run, size_t r)
{
    size_t winners = 0;
    for (size_t i = 0; i <= RACE_THIEVES; i++) {
        if (run->got[i] != NULL) {
            winners++;
            run->wins[i]++;
            if (run->got[i] != el(r)) {
                race_report(run, "wrong element", r);
            }
        }
    }
    if (winners == 0) {
        race_report(run, "nobody got the element", r);
    } else if (winners > 1) {
        race_report(run, "the element was taken twice", r);
    }
    if (weft__deque_size(run->dq) != 0) {
        race_report(run, "deque not empty after the round", r);
    }
}

static void
race_owner(race_run_t *run)
{
    uint64_t rs = run->seed;
    for (size_t r = 0; r < run->rounds; r++) {
        if (!weft__deque_push(run->dq, el(r))) {
            race_report(run, "push failed", r);
        }
        atomic_store_explicit(&run->finished, 0, memory_order_relaxed);
        /* Release: pairs with the thieves' acquire in wait_until. */
        atomic_store_explicit(&run->go, r + 1, memory_order_release);
        spin(&rs, 256);
        run->got[0] = weft__deque_pop(run->dq);
        wait_until(&run->finished, RACE_THIEVES);
        race_check(run, r);
    }
}

static void
race_thief(race_run_t *run, size_t id)
{
    uint64_t rs = run->seed + id;
    for (size_t r = 0; r < run->rounds; r++) {
        wait_until(&run->go, r + 1);
        spin(&rs, 256);
        void *x = NULL;
        weft__steal_t s;
        while ((s = weft__deque_steal(run->dq, &x, NULL, NULL)) ==
               WEFT__STEAL_RETRY) {
        }
        run->got[id] = s == WEFT__STEAL_OK ? x : NULL;
        /* Release: pairs with the owner's acquire in wait_until. */
        atomic_fetch_add_explicit(&run->finished, 1, memory_order_release);
        /* The owner resets finished only after all thieves reported. */
    }
}

static void *
race_main(void *arg)
{
    race_worker_t *w = arg;
    if (w->id == 0) {
        race_owner(w->run);
    } else {
        race_thief(w->run, w->id);
    }
    return NULL;
}

static void
regression_take_races_steal_last_element(void **state)
{
    (void)state;
    race_run_t run = {0};
    run.rounds = wt_size(200000, 20000000);
    run.seed = wt_seed();
    run.dq = new_deque();
    race_worker_t w[1 + RACE_THIEVES];
    for (size_t i = 0; i <= RACE_THIEVES; i++) {
        w[i] = (race_worker_t){&run, i};
    }
    wt_run_threads(1 + RACE_THIEVES, race_main, w, sizeof(w[0]));
    printf("rounds %zu: owner won %zu, thieves", run.rounds, run.wins[0]);
    for (size_t i = 1; i <= RACE_THIEVES; i++) {
        printf(" %zu", run.wins[i]);
    }
    printf("\n");
    assert_int_equal(atomic_load(&run.errors), 0);
    assert_null(weft__deque_pop(run.dq));
    free_deque(run.dq);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_owner_and_eight_thieves),
        cmocka_unit_test(regression_push_right_after_resize),
        cmocka_unit_test(regression_take_races_steal_last_element),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
