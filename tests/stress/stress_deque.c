/* SPDX-License-Identifier: MIT */
/*
 * Stress (RELIABILITY R2): the work-stealing deque under one owner and
 * concurrent thieves, from initial capacity 2 so that wraparound and growth
 * happen constantly. Every element must be taken exactly once, each thief
 * must see increasing elements, every thief must get work; plus the named
 * regression tests for the two known bugs of the published C11 code.
 * WEFT_TEST_FILTER=<pattern> runs only the matching tests (for long runs of
 * one of them).
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "deque.h"

/*
 * DESIGN
 * Elements are pointers to items; the owner pushes items 0..n-1 in order.
 * Just before pushing an item the owner writes its stamp (a plain field, as
 * a real task's fields are): the taker checks it, so a missing
 * release/acquire edge shows as a TSan race, or as a stale stamp. A steal
 * takes the element at top, and top only grows, so the items one thief
 * steals increase. Each take bumps a per-item counter (fetch_add): a
 * duplicate shows as a counter of 2, a loss as 0. Errors found off the main
 * thread are counted and the first few printed; the main thread asserts on
 * the totals after joining.
 */

#if defined(WEFT_SANITIZE_THREAD)
/* A deeper history than the default: TSan drops a race report when it can
 * no longer restore the stack of the earlier access, and here the owner's
 * stamp write is often far back in its history when a thief reads it. */
const char *__tsan_default_options(void);
const char *
__tsan_default_options(void)
{
    return "history_size=7";
}
#endif

#define NTHIEVES 8

typedef struct item {
    uint64_t stamp; /* written by the owner right before the push */
} item_t;

typedef struct shared {
    weft__deque_t *dq;
    size_t n;              /* items per run or round */
    item_t *items;         /* n */
    _Atomic uint8_t *seen; /* n take counters */
    _Atomic int done;      /* the owner has pushed everything */
    _Atomic size_t ready;  /* threads at the start line */
    size_t nthreads;
    _Atomic int errors;
    uint64_t seed;
} shared_t;

static uint64_t
stamp_of(size_t round, size_t i)
{
    return ((uint64_t)round << 32) | (uint64_t)(i + 1);
}

static void
report(_Atomic int *errors, const char *what, uint64_t v)
{
    if (atomic_fetch_add(errors, 1) < 5) {
        printf("error: %s (%#llx)\n", what, (unsigned long long)v);
        fflush(stdout);
    }
}

/* Owner: stamp item i for this round and push it. */
static void
push_item(shared_t *sh, size_t round, size_t i)
{
    sh->items[i].stamp = stamp_of(round, i);
    if (!weft__deque_push(sh->dq, &sh->items[i])) {
        report(&sh->errors, "push failed", i);
    }
}

/* Record one take; returns the item's index, or SIZE_MAX if invalid. */
static size_t
take(shared_t *sh, void *x, size_t round)
{
    uintptr_t off = (uintptr_t)x - (uintptr_t)sh->items;
    if (x == NULL || off % sizeof(item_t) != 0 ||
        off / sizeof(item_t) >= sh->n) {
        report(&sh->errors, "garbage element", (uintptr_t)x);
        return SIZE_MAX;
    }
    size_t i = off / sizeof(item_t);
    if (sh->items[i].stamp != stamp_of(round, i)) {
        report(&sh->errors, "stale item contents", sh->items[i].stamp);
    }
    if (atomic_fetch_add_explicit(&sh->seen[i], 1, memory_order_relaxed) != 0) {
        report(&sh->errors, "item taken twice", i);
    }
    return i;
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
shared_init(shared_t *sh, size_t n)
{
    *sh = (shared_t){0};
    sh->n = n;
    sh->seed = wt_seed();
    sh->items = calloc(n, sizeof(*sh->items));
    sh->seen = calloc(n, sizeof(*sh->seen));
    assert_non_null(sh->items);
    assert_non_null(sh->seen);
}

static void
shared_fini(shared_t *sh)
{
    free(sh->items);
    free(sh->seen);
}

static void
pause_for(unsigned n)
{
    while (n-- > 0) {
        weft__cpu_relax();
    }
}

static void
spin(uint64_t *rs, unsigned max)
{
    pause_for((unsigned)(wt_rand(rs) % max));
}

/* Main thread, after the join. */
static void
check_each_once(shared_t *sh)
{
    size_t bad = 0;
    for (size_t i = 0; i < sh->n; i++) {
        uint8_t c = atomic_load_explicit(&sh->seen[i], memory_order_relaxed);
        if (c != 1 && bad++ < 5) {
            printf("item %zu taken %u times\n", i, (unsigned)c);
        }
    }
    assert_int_equal(bad, 0);
}

/* ------------------------------------------------------------------ R2 */

typedef struct worker {
    shared_t *sh;
    size_t id; /* 0: owner; 1..: thieves */
    size_t took;
} worker_t;

/* The owner pushes 0..n-1, popping now and then; after every 64 pushes it
 * yields until the thieves (which outnumber the cores) have emptied the
 * deque, so that each of them gets to run while it holds work. Then it
 * drains what is left. */
static void
owner_run(worker_t *w)
{
    shared_t *sh = w->sh;
    uint64_t rs = sh->seed;
    for (size_t i = 0; i < sh->n; i++) {
        push_item(sh, 0, i);
        if (wt_rand(&rs) % 4 == 0) {
            void *x = weft__deque_pop(sh->dq);
            if (x != NULL) { /* else thieves emptied it */
                (void)take(sh, x, 0);
                w->took++;
            }
        }
        if (i % 64 == 63) {
            /* Thieves on the owner's core run only while it yields:
             * yielding when the deque is empty would starve them, the
             * thieves on the other core taking everything. */
            while (weft__deque_size(sh->dq) > 0) {
                weft_thread_yield();
            }
        }
    }
    atomic_store_explicit(&sh->done, 1, memory_order_release);
    for (void *x; (x = weft__deque_pop(sh->dq)) != NULL;) {
        (void)take(sh, x, 0);
        w->took++;
    }
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
            size_t i = take(sh, x, 0);
            if (i != SIZE_MAX && last != SIZE_MAX && i <= last) {
                report(&sh->errors, "thief got a smaller item after a larger",
                       i);
            }
            last = i;
            w->took++;
            /* Pass the core on: a thief that keeps it, while the others on
             * its core run only when the deque is empty, starves them. */
            weft_thread_yield();
        } else if (r == WEFT__STEAL_EMPTY) {
            /* After done, nothing is pushed again: empty is final. */
            if (atomic_load_explicit(&sh->done, memory_order_acquire)) {
                break;
            }
            weft_thread_yield();
        } else if (r != WEFT__STEAL_RETRY) {
            report(&sh->errors, "unexpected steal result", (uint64_t)r);
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
    shared_t sh;
    shared_init(&sh, wt_size(800000, 80000000));
    sh.nthreads = 1 + NTHIEVES;
    sh.dq = new_deque();
    worker_t w[1 + NTHIEVES];
    for (size_t i = 0; i <= NTHIEVES; i++) {
        w[i] = (worker_t){&sh, i, 0};
    }
    wt_run_threads(1 + NTHIEVES, r2_main, w, sizeof(w[0]));
    assert_int_equal(atomic_load(&sh.errors), 0);
    check_each_once(&sh);
    size_t total = 0;
    printf("n %zu: owner took %zu, thieves", sh.n, w[0].took);
    for (size_t i = 0; i <= NTHIEVES; i++) {
        total += w[i].took;
        if (i > 0) {
            printf(" %zu", w[i].took);
        }
    }
    printf("\n");
    assert_int_equal(total, sh.n);
    for (size_t i = 1; i <= NTHIEVES; i++) {
        assert_true(w[i].took > 0); /* every thief got work */
    }
    assert_int_equal(weft__deque_size(sh.dq), 0);
    free_deque(sh.dq);
    shared_fini(&sh);
}

/* ------------------------------------------- push right after resize */

/*
 * Each round: a fresh deque of capacity 2; once both thieves are stealing,
 * the owner pushes ELEMS items in random bursts (up to five grows per
 * round) while the thieves steal without pause, so that steals run against
 * buffers that were just replaced and items pushed right after a grow.
 * Every item exactly once, never NULL, garbage or stale; the retired
 * buffers are freed by fini (ASan/LSan). The grows and the thieves' share
 * are printed: a run where they are near zero tested little.
 */
#define RESIZE_THIEVES 2
#define ELEMS 64

typedef struct resize_run {
    shared_t sh;
    weft_barrier_t bar;
    size_t rounds;
    _Atomic size_t stolen;  /* by thieves, all rounds */
    size_t grows;           /* owner only, all rounds */
    _Atomic size_t running; /* thieves in their steal loop this round */
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
        report(&run->sh.errors, "barrier", (uint64_t)-rc);
    }
}

static void
resize_owner_round(resize_run_t *run, size_t round, uint64_t *rs)
{
    shared_t *sh = &run->sh;
    /* Wake-ups from the barrier take longer than pushing everything:
     * wait until the thieves are stealing. */
    while (atomic_load_explicit(&run->running, memory_order_relaxed) <
           RESIZE_THIEVES) {
        weft_thread_yield();
    }
    for (size_t i = 0; i < ELEMS; i++) {
        /* Relaxed: the owner's own variable, read to count grows. */
        void *before = atomic_load_explicit(&sh->dq->buf, memory_order_relaxed);
        push_item(sh, round, i);
        run->grows +=
            atomic_load_explicit(&sh->dq->buf, memory_order_relaxed) != before;
        /* Bursts fill the buffer (grows), pauses let the thieves in. */
        if (wt_rand(rs) % 2 == 0) {
            spin(rs, 32);
        }
    }
    atomic_store_explicit(&sh->done, 1, memory_order_release);
    for (void *x; (x = weft__deque_pop(sh->dq)) != NULL;) {
        (void)take(sh, x, round);
    }
}

static void
resize_thief_round(resize_run_t *run, size_t round)
{
    shared_t *sh = &run->sh;
    atomic_fetch_add_explicit(&run->running, 1, memory_order_relaxed);
    for (unsigned empty = 0;;) {
        void *x = NULL;
        weft__steal_t r = weft__deque_steal(sh->dq, &x, NULL, NULL);
        if (r == WEFT__STEAL_OK) {
            (void)take(sh, x, round);
            atomic_fetch_add_explicit(&run->stolen, 1, memory_order_relaxed);
        } else if (r == WEFT__STEAL_EMPTY) {
            if (atomic_load_explicit(&sh->done, memory_order_acquire)) {
                break;
            }
            /* Spin, to be there when the owner pushes, but let it run
             * when it shares this core. */
            if (++empty % 64 == 0) {
                weft_thread_yield();
            } else {
                weft__cpu_relax();
            }
        }
    }
}

/* Owner (id 0): set the round up before the first barrier and check it
 * after the second; in between everyone plays. */
static void
resize_setup(shared_t *sh)
{
    weft__deque_set_initial_capacity(2);
    if (weft__deque_init(sh->dq) != WEFT_OK) {
        report(&sh->errors, "init", 0);
    }
    atomic_store_explicit(&sh->done, 0, memory_order_relaxed);
    for (size_t i = 0; i < ELEMS; i++) {
        atomic_store_explicit(&sh->seen[i], 0, memory_order_relaxed);
    }
}

static void
resize_check(shared_t *sh)
{
    for (size_t i = 0; i < ELEMS; i++) {
        if (atomic_load_explicit(&sh->seen[i], memory_order_relaxed) != 1) {
            report(&sh->errors, "item not taken exactly once", i);
        }
    }
    weft__deque_fini(sh->dq);
}

static void *
resize_main(void *arg)
{
    rworker_t *w = arg;
    resize_run_t *run = w->run;
    shared_t *sh = &run->sh;
    uint64_t rs = sh->seed + w->id;
    for (size_t r = 0; r < run->rounds; r++) {
        if (w->id == 0) {
            resize_setup(sh);
            atomic_store_explicit(&run->running, 0, memory_order_relaxed);
        }
        barrier(run);
        if (w->id == 0) {
            resize_owner_round(run, r, &rs);
        } else {
            resize_thief_round(run, r);
        }
        barrier(run);
        if (w->id == 0) {
            resize_check(sh);
        }
    }
    return NULL;
}

static void
regression_push_right_after_resize(void **state)
{
    (void)state;
    resize_run_t run;
    shared_init(&run.sh, ELEMS);
    atomic_init(&run.stolen, 0);
    run.grows = 0;
    run.rounds = wt_size(20000, 2000000);
    run.sh.dq = weft__malloc_aligned(sizeof(*run.sh.dq));
    assert_non_null(run.sh.dq);
    assert_int_equal(
        weft_barrier_init(&run.bar, 1 + RESIZE_THIEVES, NULL, NULL), WEFT_OK);
    rworker_t w[1 + RESIZE_THIEVES];
    for (size_t i = 0; i <= RESIZE_THIEVES; i++) {
        w[i] = (rworker_t){&run, i};
    }
    wt_run_threads(1 + RESIZE_THIEVES, resize_main, w, sizeof(w[0]));
    printf("rounds %zu of %d items from capacity 2: %zu grows, thieves "
           "took %zu items\n",
           run.rounds, ELEMS, run.grows, atomic_load(&run.stolen));
    assert_int_equal(atomic_load(&run.sh.errors), 0);
    weft_barrier_fini(&run.bar);
    weft__free_aligned(run.sh.dq);
    shared_fini(&run.sh);
}

/* ------------------------------- pop racing steals, one or two items */

/*
 * Each round the owner pushes k items (1 or 2), then the owner's pop and
 * the thieves' steals start together: the owner waits until every thief
 * spins on the round number, publishes it, pauses and pops once; each thief
 * pauses a little and steals until it sees the deque empty; then the owner
 * pops what is left. The owner's pause adapts (longer after its pop won,
 * shorter after it lost), so the starts stay within the race window
 * whatever the speed of the build and the load of the machine; a random
 * jitter on both sides sweeps the window. Every item must be taken exactly
 * once, with the stamp of this round. The deque is the same across rounds,
 * so a pop that lost a race and left bottom wrong loses a later item.
 *
 * k = 1 is the take-racing-steal-for-the-last-element race: pop and steal
 * both CAS top. k = 2 exercises the fences instead: the owner takes item 1
 * without a CAS, while a thief steals item 0 and then tries item 1; only the
 * seq_cst fences keep the thief from reading the bottom that pop has
 * already lowered as its old value (x86's store buffer does exactly that
 * when pop's fence is missing).
 */
#define RACE_MAX_THIEVES 2
#define RACE_MAX_ITEMS 2
#define RACE_JITTER 16      /* pauses */
#define RACE_MAX_DELAY 4096 /* pauses */

typedef struct race_run {
    shared_t sh; /* k items, stamped anew each round */
    size_t k;
    size_t nthieves;
    size_t rounds;
    _Atomic size_t armed;    /* thieves at the start line, all rounds */
    _Atomic size_t go;       /* round number + 1 that may start */
    _Atomic size_t finished; /* thieves done with the current round */
    /* What each thread took this round, and the stamps it read. */
    void *got[1 + RACE_MAX_THIEVES][RACE_MAX_ITEMS];
    uint64_t stamp[1 + RACE_MAX_THIEVES][RACE_MAX_ITEMS];
    size_t ngot[1 + RACE_MAX_THIEVES];
    size_t first_pop_won; /* rounds where the owner's racing pop got one */
    size_t thief_took;
    unsigned delay; /* owner's pause before its racing pop */
} race_run_t;

typedef struct race_worker {
    race_run_t *run;
    size_t id; /* 0: owner */
} race_worker_t;

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

/* The taker reads the stamp: the push must have published it. */
static void
race_record(race_run_t *run, size_t id, void *x)
{
    size_t n = run->ngot[id];
    if (n == RACE_MAX_ITEMS) {
        report(&run->sh.errors, "took more items than were pushed", id);
        return;
    }
    run->got[id][n] = x;
    run->stamp[id][n] = ((item_t *)x)->stamp;
    run->ngot[id] = n + 1;
}

static void
race_check(race_run_t *run, size_t r)
{
    shared_t *sh = &run->sh;
    size_t count[RACE_MAX_ITEMS] = {0};
    for (size_t id = 0; id <= run->nthieves; id++) {
        for (size_t j = 0; j < run->ngot[id]; j++) {
            uintptr_t off = (uintptr_t)run->got[id][j] - (uintptr_t)sh->items;
            size_t i = off / sizeof(item_t);
            if (off % sizeof(item_t) != 0 || i >= run->k) {
                report(&sh->errors, "garbage item, round", r);
                continue;
            }
            count[i]++;
            if (run->stamp[id][j] != stamp_of(r, i)) {
                report(&sh->errors, "stale item, round", r);
            }
        }
        if (id > 0) {
            run->thief_took += run->ngot[id];
        }
        run->ngot[id] = 0;
    }
    for (size_t i = 0; i < run->k; i++) {
        if (count[i] != 1) {
            report(&sh->errors,
                   count[i] == 0 ? "item lost, round"
                                 : "item taken twice, round",
                   r);
        }
    }
}

static void
race_owner(race_run_t *run)
{
    shared_t *sh = &run->sh;
    uint64_t rs = sh->seed;
    for (size_t r = 0; r < run->rounds; r++) {
        for (size_t i = 0; i < run->k; i++) {
            push_item(sh, r, i);
        }
        atomic_store_explicit(&run->finished, 0, memory_order_relaxed);
        wait_until(&run->armed, run->nthieves * (r + 1));
        /* Release: pairs with the thieves' acquire in wait_until (they
         * then no longer read last round's records). */
        atomic_store_explicit(&run->go, r + 1, memory_order_release);
        pause_for(run->delay + (unsigned)(wt_rand(&rs) % RACE_JITTER));
        void *x = weft__deque_pop(sh->dq);
        if (x != NULL) {
            race_record(run, 0, x);
            run->first_pop_won++;
            run->delay += run->delay < RACE_MAX_DELAY;
        } else {
            run->delay -= run->delay > 0;
        }
        wait_until(&run->finished, run->nthieves);
        while ((x = weft__deque_pop(sh->dq)) != NULL) {
            race_record(run, 0, x);
        }
        race_check(run, r);
    }
}

static void
race_thief(race_run_t *run, size_t id)
{
    uint64_t rs = run->sh.seed + id;
    for (size_t r = 0; r < run->rounds; r++) {
        atomic_fetch_add_explicit(&run->armed, 1, memory_order_relaxed);
        wait_until(&run->go, r + 1);
        pause_for((unsigned)(wt_rand(&rs) % RACE_JITTER));
        weft__steal_t s;
        do {
            void *x = NULL;
            s = weft__deque_steal(run->sh.dq, &x, NULL, NULL);
            if (s == WEFT__STEAL_OK) {
                race_record(run, id, x);
            }
        } while (s != WEFT__STEAL_EMPTY);
        /* Release: pairs with the owner's acquire in wait_until, which
         * then reads the records. */
        atomic_fetch_add_explicit(&run->finished, 1, memory_order_release);
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
race(size_t k, size_t nthieves, size_t rounds)
{
    race_run_t run = {0};
    shared_init(&run.sh, k);
    run.k = k;
    run.nthieves = nthieves;
    run.rounds = rounds;
    run.sh.dq = new_deque();
    race_worker_t w[1 + RACE_MAX_THIEVES];
    for (size_t i = 0; i <= nthieves; i++) {
        w[i] = (race_worker_t){&run, i};
    }
    wt_run_threads(1 + nthieves, race_main, w, sizeof(w[0]));
    printf("%zu rounds of %zu item(s), %zu thief(s): the racing pop won in "
           "%zu, thieves took %zu items; final owner delay %u\n",
           run.rounds, k, nthieves, run.first_pop_won, run.thief_took,
           run.delay);
    assert_int_equal(atomic_load(&run.sh.errors), 0);
    assert_null(weft__deque_pop(run.sh.dq));
    assert_int_equal(weft__deque_size(run.sh.dq), 0);
    free_deque(run.sh.dq);
    shared_fini(&run.sh);
}

static void
regression_take_races_steal_last_element(void **state)
{
    (void)state;
    race(1, 1, wt_size(100000, 10000000));
    /* Three threads on two cores start together less often: fewer rounds. */
    race(1, 2, wt_size(20000, 2000000));
}

static void
test_pop_races_steals_two_items(void **state)
{
    (void)state;
    race(2, 1, wt_size(200000, 20000000));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_owner_and_eight_thieves),
        cmocka_unit_test(regression_push_right_after_resize),
        cmocka_unit_test(regression_take_races_steal_last_element),
        cmocka_unit_test(test_pop_races_steals_two_items),
    };
    const char *only = getenv("WEFT_TEST_FILTER");
    if (only != NULL) {
        cmocka_set_test_filter(only);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
