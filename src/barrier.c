/* SPDX-License-Identifier: MIT */
/*
 * weft_barrier_t (Python's threading.Barrier): a weft mutex guards the round
 * (arrival count, waiter list, broken flag); released waiters learn their
 * result from a record on their own stack and never touch the mutex again.
 */

/*
 * DESIGN
 *
 * Under the mutex: count (arrivals in this round), the list of waiting
 * records, and broken. Each waiter pushes a record {result, done} on its
 * stack; whoever ends its wait (the last arriver, a waiter that timed out or
 * was cancelled, abort, reset) does, under the mutex: write every record's
 * result, store its done flag (release), empty the list, count = 0, bump
 * the generation word; then, after unlocking, wakes everyone parked on the
 * generation word. Waiters park while the generation is the one they saw
 * when they arrived, and return as soon as their done flag reads 1
 * (acquire), without taking the mutex: one wake-up per waiter, no herd on
 * the mutex, and a new round may start at once (unlike CPython, nothing
 * needs to drain: each waiter's result is its own).
 *
 * A record is written for the last time by its done store; after that the
 * waiter may return and its stack frame die, so the releaser reads `next`
 * before that store.
 *
 * Python's rules: the action runs in the last arriver, with the mutex held,
 * before any waiter is released. A waiter whose deadline passes or whose
 * task is cancelled before its round completes breaks the barrier: every
 * waiter gets WEFT_EBROKEN, and so does every arrival until reset. reset
 * fails the current waiters with WEFT_EBROKEN and makes the barrier usable.
 * A cancelled arrival that has not joined the round yet (still taking the
 * mutex) just returns WEFT_ECANCELED.
 */
#include <limits.h>

#include "mutex_impl.h"
#include "probe.h"

#define PARTIES_MAX (1u << 30)

struct waiter {
    struct waiter *next;
    int result;            /* written before done */
    _Atomic uint32_t done; /* 1 once result is final */
};

typedef struct WEFT__MAY_ALIAS weft__barrier {
    weft_mutex_t lock;
    _Atomic uint32_t gen; /* futex word: bumped when waiters are released */
    uint32_t count;       /* arrivals in the current round */
    uint32_t parties;
    uint32_t broken;
    struct waiter *waiting;
    weft_barrier_action_fn action;
    void *arg;
} weft__barrier_t;

_Static_assert(sizeof(weft__barrier_t) <= sizeof(weft_barrier_t),
               "weft__barrier_t must fit in weft_barrier_t");
_Static_assert(alignof(weft__barrier_t) <= alignof(weft_barrier_t),
               "weft_barrier_t must be aligned for weft__barrier_t");

static weft__barrier_t *
barrier_of(weft_barrier_t *b)
{
    return (weft__barrier_t *)(void *)b;
}

int
weft_barrier_init(weft_barrier_t *b, unsigned parties,
                  weft_barrier_action_fn action, void *arg)
{
    WEFT_ASSERT(b != NULL, "weft_barrier_init: NULL barrier");
    if (parties == 0 || parties > PARTIES_MAX) {
        return WEFT_EINVAL;
    }
    weft__barrier_t *x = barrier_of(b);
    weft_mutex_init(&x->lock);
    atomic_init(&x->gen, 0);
    x->count = 0;
    x->parties = parties;
    x->broken = 0;
    x->waiting = NULL;
    x->action = action;
    x->arg = arg;
    return WEFT_OK;
}

void
weft_barrier_fini(weft_barrier_t *b)
{
    WEFT_ASSERT(b != NULL, "weft_barrier_fini: NULL barrier");
    weft__barrier_t *x = barrier_of(b);
    weft__mutex_lock_nocancel(&x->lock);
    uint32_t count = x->count;
    weft_mutex_unlock(&x->lock);
    WEFT_ASSERT(count == 0, "weft_barrier_fini: barrier %p has %u waiters",
                (void *)b, count);
    weft_mutex_fini(&x->lock);
}

/* End every current wait with result. Lock held; the caller wakes the
 * generation word after unlocking. */
static void
release_all(weft__barrier_t *x, int result)
{
    struct waiter *w = x->waiting;
    while (w != NULL) {
        struct waiter *next = w->next;
        w->result = result;
        /* Release: pairs with the waiter's acquire load of done, which
         * then sees result (and the action's effects). */
        atomic_store_explicit(&w->done, 1, memory_order_release);
        w = next;
    }
    x->waiting = NULL;
    x->count = 0;
    /* Relaxed: waiters learn their result from done, not from gen; gen
     * only makes their futex wait fail or end. */
    atomic_fetch_add_explicit(&x->gen, 1, memory_order_relaxed);
}

/* Unlock, then wake every waiter released under the lock. */
static void
unlock_and_wake(weft__barrier_t *x)
{
    _Atomic uint32_t *gen = &x->gen;
    weft_mutex_unlock(&x->lock);
    /* After the unlock a released waiter may fini the barrier: only the
     * futex wake, which reads no user memory, still uses the address. */
    weft__unpark(gen, INT_MAX);
}

static bool
spin_done(struct waiter *me)
{
    for (int i = 0; i < WEFT__SPIN_LIMIT; i++) {
        weft__cpu_relax();
        /* Acquire: pairs with release_all's release store. */
        if (atomic_load_explicit(&me->done, memory_order_acquire)) {
            return true;
        }
    }
    return false;
}

/* The deadline passed or the task was cancelled: break the round, unless
 * it ended meanwhile. */
static int
give_up(weft__barrier_t *x, struct waiter *me, int rc)
{
    weft__mutex_lock_nocancel(&x->lock);
    /* Acquire: pairs with release_all's release store. */
    if (atomic_load_explicit(&me->done, memory_order_acquire)) {
        weft_mutex_unlock(&x->lock);
        return me->result;
    }
    x->broken = 1;
    release_all(x, WEFT_EBROKEN);
    unlock_and_wake(x);
    return rc;
}

static int
wait_released(weft__barrier_t *x, struct waiter *me, uint32_t gen,
              weft_time_t deadline)
{
    if (spin_done(me)) {
        return me->result;
    }
    /* Acquire: pairs with release_all's release store. */
    while (!atomic_load_explicit(&me->done, memory_order_acquire)) {
        int rc = weft__park_on(WEFT__WAIT_BARRIER, x, &x->gen, gen, deadline);
        if (rc != WEFT_OK) {
            return give_up(x, me, rc);
        }
    }
    return me->result;
}

/* The last arriver: run the action, release the round. Lock held. */
static void
complete_round(weft__barrier_t *x)
{
    if (x->action != NULL) {
        x->action(x->arg);
    }
    release_all(x, WEFT_OK);
    unlock_and_wake(x);
}

static int
barrier_wait(weft__barrier_t *x, unsigned *index, weft_time_t deadline)
{
    int rc = weft_mutex_lock(&x->lock);
    if (rc != WEFT_OK) {
        return rc;
    }
    if (x->broken) {
        weft_mutex_unlock(&x->lock);
        return WEFT_EBROKEN;
    }
    unsigned i = x->count++;
    if (i + 1 == x->parties) {
        complete_round(x);
        rc = WEFT_BARRIER_SERIAL;
    } else {
        struct waiter me = {x->waiting, 0, 0};
        /* The record leaves the list (release_all) before its done flag
         * lets this frame return, so the list never holds a dead frame. */
        /* cppcheck-suppress autoVariables */
        x->waiting = &me;
        uint32_t gen = atomic_load_explicit(&x->gen, memory_order_relaxed);
        weft_mutex_unlock(&x->lock);
        rc = wait_released(x, &me, gen, deadline);
    }
    if (rc >= 0 && index != NULL) {
        *index = i;
    }
    return rc;
}

int
weft_barrier_wait(weft_barrier_t *b, unsigned *index)
{
    WEFT_ASSERT(b != NULL, "weft_barrier_wait: NULL barrier");
    return barrier_wait(barrier_of(b), index, WEFT_FOREVER);
}

int
weft_barrier_wait_until(weft_barrier_t *b, unsigned *index,
                        weft_time_t deadline)
{
    WEFT_ASSERT(b != NULL, "weft_barrier_wait_until: NULL barrier");
    return barrier_wait(barrier_of(b), index, deadline);
}

void
weft_barrier_abort(weft_barrier_t *b)
{
    WEFT_ASSERT(b != NULL, "weft_barrier_abort: NULL barrier");
    weft__barrier_t *x = barrier_of(b);
    weft__mutex_lock_nocancel(&x->lock);
    x->broken = 1;
    release_all(x, WEFT_EBROKEN);
    unlock_and_wake(x);
}

void
weft_barrier_reset(weft_barrier_t *b)
{
    WEFT_ASSERT(b != NULL, "weft_barrier_reset: NULL barrier");
    weft__barrier_t *x = barrier_of(b);
    weft__mutex_lock_nocancel(&x->lock);
    x->broken = 0;
    release_all(x, WEFT_EBROKEN);
    unlock_and_wake(x);
}

bool
weft_barrier_is_broken(weft_barrier_t *b)
{
    WEFT_ASSERT(b != NULL, "weft_barrier_is_broken: NULL barrier");
    weft__barrier_t *x = barrier_of(b);
    weft__mutex_lock_nocancel(&x->lock);
    bool broken = x->broken != 0;
    weft_mutex_unlock(&x->lock);
    return broken;
}

unsigned
weft_barrier_n_waiting(weft_barrier_t *b)
{
    WEFT_ASSERT(b != NULL, "weft_barrier_n_waiting: NULL barrier");
    weft__barrier_t *x = barrier_of(b);
    weft__mutex_lock_nocancel(&x->lock);
    unsigned n = x->broken ? 0 : x->count;
    weft_mutex_unlock(&x->lock);
    return n;
}
