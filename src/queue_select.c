/* SPDX-License-Identifier: MIT */
/*
 * weft_select / weft_try_select: wait on several queues at once for the
 * first case that can get or put, and perform exactly that one operation,
 * with the queue kinds' own try operations.
 */

/*
 * DESIGN
 *
 * Fairness. Every round of tries starts at a random enabled case (a
 * per-thread xorshift, drawn over the enabled cases only, so a disabled
 * case does not give its turn to its neighbour): when k cases are ready,
 * each is chosen with probability 1/k, and no queue is starved.
 *
 * Watchers. A blocked selector does not park on the queues' eventcounts: it
 * parks on a futex word of its own (`word`), and links one watcher per
 * enabled case into the watcher list of that case's wait condition
 * (not_empty for GET, not_full for PUT), under the condition's `wlock`, and
 * adds WEFT__QWATCH_ONE to the condition's ec.waiters. That word is what
 * every notify loads already, so a queue nobody selects on pays nothing: its
 * notify is still one seq_cst load of zero. A notifier that sees watcher
 * bits takes wlock and fires up to n watchers not already fired (all when
 * the queue is closed, or for close itself), starting after the last one it
 * fired (round robin among selectors); plain waiters get their own
 * notification as before (queue.c: selectors first, so the `waking` early
 * return never swallows a selector's notification).
 *
 * The selector's word: IDLE (0), FIRED (1), SLEEPING (2). Loop: store IDLE,
 * try every case, CAS IDLE -> SLEEPING, park while SLEEPING. A notifier
 * exchanges FIRED in and wakes the futex only if it took SLEEPING. Dekker,
 * all seq_cst: the selector adds to ec.waiters (and later stores IDLE)
 * before its tries read the queue; the notifier makes its condition true
 * before it loads ec.waiters (and then the word). Either the notifier sees
 * the watcher and fires it after the IDLE store (the CAS fails, or the park
 * returns), or the selector's tries see the condition. A notifier loads the
 * word (seq_cst) before skipping a watcher as already FIRED: if the load
 * precedes a later IDLE store, the tries after that store see the
 * condition.
 *
 * Passing wake-ups on. A notification fires one selector, which may then
 * take another case, time out or be cancelled. So every selector that
 * registered, once it has left every list (after which nobody fires it),
 * re-checks each of its cases (can_get / can_put) and notifies one more
 * waiter of each condition that still holds (queue.c's wait_exit does the
 * same for plain waiters). A notification that fired it is ordered before
 * that re-check by wlock, which both took.
 *
 * Lifetimes. Watchers and the word live on the selector's stack; notifiers
 * touch them only under wlock, and the selector unlinks them under the same
 * lock before it returns. The futex wake also happens under wlock.
 *
 * Cost. A select that finds a ready case at once costs one random draw and
 * the tries. A blocked one costs, per enabled case, a lock/unlock and an
 * RMW to register and again to leave, plus the pass-on checks; notifiers of
 * a watched condition take its wlock. Lock order: a wlock is never held
 * while another lock is taken (wlock is a leaf).
 */
#include "probe.h"
#include "queue_impl.h"

#include <weft/thread.h>

#define WAKE_ALL INT32_MAX

enum { SEL_IDLE = 0, SEL_FIRED = 1, SEL_SLEEPING = 2 };

/* The enabled cases of one call, by index. */
typedef struct sel_set {
    weft_select_case_t *cases;
    size_t m;                    /* enabled cases */
    uint8_t on[WEFT_SELECT_MAX]; /* their indices in cases */
} sel_set_t;

_Static_assert(WEFT_SELECT_MAX <= 256u, "sel_set_t.on holds uint8_t indices");

/* ------------------------------------------------------------------------ */
/* Random start                                                              */

static _Thread_local uint32_t rng_state;

/* A uniform draw in [0, m): xorshift32, seeded per thread. */
static size_t
draw(size_t m)
{
    uint32_t x = rng_state;
    if (WEFT__UNLIKELY(x == 0)) {
        x = weft__self_id() * UINT32_C(2654435761) ^ (uint32_t)weft_now();
        x = x != 0 ? x : 1u;
    }
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return (size_t)(((uint64_t)x * m) >> 32);
}

/* ------------------------------------------------------------------------ */
/* Cases                                                                     */

/* The enabled cases of cases[0..n) into s: WEFT_OK, WEFT_EINVAL for bad
 * arguments, or WEFT_ECLOSED (and *index = SIZE_MAX) when none is
 * enabled. */
static int
check(weft_select_case_t *cases, size_t n, size_t *index, sel_set_t *s)
{
    if (index == NULL || (cases == NULL && n > 0) || n > WEFT_SELECT_MAX) {
        return WEFT_EINVAL;
    }
    s->cases = cases;
    s->m = 0;
    for (size_t i = 0; i < n; i++) {
        const weft_select_case_t *c = &cases[i];
        if (c->q == NULL) {
            continue;
        }
        if ((c->op != WEFT_SELECT_GET && c->op != WEFT_SELECT_PUT) ||
            c->item == NULL) {
            return WEFT_EINVAL;
        }
        s->on[s->m++] = (uint8_t)i;
    }
    if (s->m == 0) {
        *index = SIZE_MAX;
        return WEFT_ECLOSED;
    }
    return WEFT_OK;
}

static weft__qwait_t *
cond_of(const weft_select_case_t *c)
{
    return c->op == WEFT_SELECT_GET ? &c->q->not_empty : &c->q->not_full;
}

static bool
ready(const weft_select_case_t *c)
{
    const weft_queue_t *q = c->q;
    return c->op == WEFT_SELECT_GET ? q->ops->can_get(q) : q->ops->can_put(q);
}

/* One try of one case; on WEFT_OK the other side is notified, as after a
 * plain put or get. */
static int
attempt(const weft_select_case_t *c)
{
    weft_queue_t *q = c->q;
    if (c->op == WEFT_SELECT_GET) {
        int rc = q->ops->try_get(q, c->item);
        if (rc == WEFT_OK) {
            weft__queue_wake(q, &q->not_full, 1);
        }
        return rc;
    }
    int rc = q->ops->try_put(q, c->item);
    if (rc == WEFT_OK) {
        weft__queue_wake(q, &q->not_empty, 1);
    }
    return rc;
}

/* Try every enabled case once, from a random one: the first result other
 * than WEFT_EAGAIN is the select's, with *index set. */
static int
try_round(const sel_set_t *s, size_t *index)
{
    size_t k = draw(s->m);
    for (size_t j = 0; j < s->m; j++) {
        size_t i = s->on[k];
        int rc = attempt(&s->cases[i]);
        if (rc != WEFT_EAGAIN) {
            *index = i;
            return rc;
        }
        k = k + 1 == s->m ? 0 : k + 1;
    }
    return WEFT_EAGAIN;
}

static bool
any_ready(const sel_set_t *s)
{
    for (size_t j = 0; j < s->m; j++) {
        if (ready(&s->cases[s->on[j]])) {
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Watcher lists                                                             */

static void
wlock(weft__qwait_t *w)
{
    /* Not cancellable: the sections are short and must run (a notifier, or
     * a selector leaving its lists). */
    int rc = weft__mutex_lock_until(&w->wlock, WEFT_FOREVER, false);
    WEFT_ASSERT(rc == WEFT_OK, "select watcher lock: %s", weft_errname(rc));
}

static void
watch_add(weft__qwait_t *w, weft__qwatch_t *x)
{
    wlock(w);
    weft__qwatch_t *first = w->watch;
    if (first == NULL) {
        x->prev = x;
        x->next = x;
        w->watch = x;
    } else { /* append: the circular list's last is first->prev */
        x->prev = first->prev;
        x->next = first;
        first->prev->next = x;
        first->prev = x;
    }
    weft__mutex_release(&w->wlock);
    /* seq_cst: the store half of the selector's side of the Dekker pattern
     * (its tries that follow are the load half); also publishes the link
     * to a notifier that loads the count. */
    uint32_t v = atomic_fetch_add_explicit(&w->ec.waiters, WEFT__QWATCH_ONE,
                                           memory_order_seq_cst);
    WEFT_ASSERT(WEFT__QWAIT_WATCHERS(v) < (UINT32_MAX >> WEFT__QWATCH_SHIFT),
                "weft_select: more than %u selectors watch one queue",
                (unsigned)(UINT32_MAX >> WEFT__QWATCH_SHIFT) - 1u);
}

static void
watch_del(weft__qwait_t *w, weft__qwatch_t *x)
{
    wlock(w);
    if (x->next == x) {
        w->watch = NULL;
    } else {
        x->prev->next = x->next;
        x->next->prev = x->prev;
        if (w->watch == x) {
            w->watch = x->next;
        }
    }
    weft__mutex_release(&w->wlock);
    /* Relaxed: the count only tells notifiers to look at the list; a stale
     * non-zero value costs one needless lock, and the list is exact. */
    atomic_fetch_sub_explicit(&w->ec.waiters, WEFT__QWATCH_ONE,
                              memory_order_relaxed);
}

void
weft__qwatch_notify(weft__qwait_t *w, int n)
{
    wlock(w);
    weft__qwatch_t *first = w->watch;
    weft__qwatch_t *x = first;
    weft__qwatch_t *last = NULL;
    while (x != NULL && n > 0) {
        /* seq_cst load: see DESIGN (skipping a FIRED watcher). */
        if (atomic_load_explicit(x->sel, memory_order_seq_cst) != SEL_FIRED) {
            /* seq_cst: the notifier's half of the word's Dekker pattern. */
            uint32_t prev = atomic_exchange_explicit(x->sel, SEL_FIRED,
                                                     memory_order_seq_cst);
            if (prev == SEL_SLEEPING) {
                weft__unpark(x->sel, 1);
            }
            if (prev != SEL_FIRED) {
                last = x;
                n = n == WAKE_ALL ? n : n - 1;
            }
        }
        x = x->next;
        if (x == first) {
            break;
        }
    }
    if (last != NULL) {
        w->watch = last->next; /* round robin: the next notify starts after */
    }
    weft__mutex_release(&w->wlock);
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                   */

static int
spin_phase(const sel_set_t *s, size_t *index)
{
    for (int i = 0; i < WEFT__SPIN_LIMIT; i++) {
        weft__cpu_relax();
        if (any_ready(s)) {
            int rc = try_round(s, index);
            if (rc != WEFT_EAGAIN) {
                return rc;
            }
        }
    }
    /* As queue.c: one yield lets a thread that would make a case ready run
     * on this CPU without a futex round trip. */
    weft_thread_yield();
    return try_round(s, index);
}

/* Park on *word until fired or deadline: WEFT_OK (look again),
 * WEFT_ETIMEDOUT or WEFT_ECANCELED. */
static int
sleep_on(const sel_set_t *s, _Atomic uint32_t *word, weft_time_t deadline)
{
    uint32_t idle = SEL_IDLE;
    /* seq_cst: ordered with the notifiers' exchange (DESIGN). */
    if (!atomic_compare_exchange_strong_explicit(word, &idle, SEL_SLEEPING,
                                                 memory_order_seq_cst,
                                                 memory_order_seq_cst)) {
        return WEFT_OK; /* fired since the IDLE store */
    }
    return weft__park_on(WEFT__WAIT_SELECT, s->cases, word, SEL_SLEEPING,
                         deadline);
}

static WEFT__COLD int
select_slow(const sel_set_t *s, weft_time_t deadline, size_t *index)
{
    weft__qwatch_t watch[WEFT_SELECT_MAX];
    _Atomic uint32_t word;
    atomic_init(&word, SEL_IDLE);
    for (size_t j = 0; j < s->m; j++) {
        watch[j].sel = &word;
        watch_add(cond_of(&s->cases[s->on[j]]), &watch[j]);
    }
    int rc;
    for (;;) {
        /* seq_cst: a fire that comes after this store makes the CAS in
         * sleep_on fail; one before it is seen by the tries below. */
        atomic_store_explicit(&word, SEL_IDLE, memory_order_seq_cst);
        rc = try_round(s, index);
        if (rc != WEFT_EAGAIN) {
            break;
        }
        rc = sleep_on(s, &word, deadline);
        if (rc == WEFT_ETIMEDOUT) {
            /* A notification that raced with the timeout is used. */
            rc = try_round(s, index);
            rc = rc == WEFT_EAGAIN ? WEFT_ETIMEDOUT : rc;
            break;
        }
        if (rc != WEFT_OK) {
            break; /* WEFT_ECANCELED */
        }
    }
    for (size_t j = 0; j < s->m; j++) {
        watch_del(cond_of(&s->cases[s->on[j]]), &watch[j]);
    }
    /* Pass on a notification we may have taken but not used (DESIGN). */
    for (size_t j = 0; j < s->m; j++) {
        const weft_select_case_t *c = &s->cases[s->on[j]];
        if (ready(c)) {
            weft__queue_wake(c->q, cond_of(c), 1);
        }
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Public                                                                    */

int
weft_select(weft_select_case_t *cases, size_t n, weft_time_t deadline,
            size_t *index)
{
    sel_set_t s;
    int rc = check(cases, n, index, &s);
    if (rc != WEFT_OK) {
        return rc;
    }
    rc = try_round(&s, index);
    if (rc != WEFT_EAGAIN) {
        return rc;
    }
    if (deadline != WEFT_FOREVER && deadline <= weft_now()) {
        return WEFT_ETIMEDOUT;
    }
    rc = spin_phase(&s, index);
    if (rc != WEFT_EAGAIN) {
        return rc;
    }
    return select_slow(&s, deadline, index);
}

int
weft_try_select(weft_select_case_t *cases, size_t n, size_t *index)
{
    sel_set_t s;
    int rc = check(cases, n, index, &s);
    if (rc != WEFT_OK) {
        return rc;
    }
    return try_round(&s, index);
}
