/* SPDX-License-Identifier: MIT */
/*
 * weft_event_t (Python's threading.Event): one futex word holding the flag
 * and a "sleepers may exist" bit.
 */

/*
 * DESIGN
 *
 * word: SET (bit 0) is the flag; SLEEPERS (bit 1) is set by a waiter before
 * it parks and cleared only by set, which wakes everyone. A waiter parks
 * while the word is exactly SLEEPERS (flag clear, bit recorded).
 *
 * set is one exchange to SET: it publishes the flag and, by the value it
 * returns, says whether to wake. After it the setter touches the event only
 * through the futex wake (a system call that reads no user memory), so a
 * released waiter may free the event at once.
 *
 * No lost wake-up: a waiter's CAS that records SLEEPERS and set's exchange
 * are RMWs on one word, so one precedes the other: either the CAS fails on
 * the set flag, or set sees SLEEPERS and wakes all. The kernel re-checks the
 * word atomically with respect to the wake.
 *
 * clear keeps SLEEPERS (threads may still be parked and must be woken by the
 * next set). A waiter that times out leaves the bit behind: the next set
 * then makes one needless wake call.
 *
 * Orderings: set is release and every read of the flag that can return
 * success is acquire; they pair, so what the setter did before set is
 * visible to a thread that saw the flag.
 */
#include <limits.h>

#include "mutex_impl.h"
#include "probe.h"

#define SET 1u
#define SLEEPERS 2u

typedef struct WEFT__MAY_ALIAS weft__event {
    _Atomic uint32_t word;
} weft__event_t;

_Static_assert(sizeof(weft__event_t) <= sizeof(weft_event_t),
               "weft__event_t must fit in weft_event_t");
_Static_assert(alignof(weft__event_t) <= alignof(weft_event_t),
               "weft_event_t must be aligned for weft__event_t");

static _Atomic uint32_t *
word_of(weft_event_t *e)
{
    return &((weft__event_t *)(void *)e)->word;
}

void
weft_event_init(weft_event_t *e)
{
    WEFT_ASSERT(e != NULL, "weft_event_init: NULL event");
    atomic_init(word_of(e), 0);
}

void
weft_event_fini(weft_event_t *e)
{
    WEFT_ASSERT(e != NULL, "weft_event_fini: NULL event");
}

void
weft_event_set(weft_event_t *e)
{
    WEFT_ASSERT(e != NULL, "weft_event_set: NULL event");
    _Atomic uint32_t *w = word_of(e);
    /* Release: pairs with the acquire reads of the flag in the waiters. */
    if (atomic_exchange_explicit(w, SET, memory_order_release) & SLEEPERS) {
        weft__unpark(w, INT_MAX);
    }
}

void
weft_event_clear(weft_event_t *e)
{
    WEFT_ASSERT(e != NULL, "weft_event_clear: NULL event");
    /* Relaxed: clearing publishes nothing; later reads of this word see it
     * by coherence. */
    atomic_fetch_and_explicit(word_of(e), ~SET, memory_order_relaxed);
}

bool
weft_event_is_set(const weft_event_t *e)
{
    WEFT_ASSERT(e != NULL, "weft_event_is_set: NULL event");
    const weft__event_t *x = (const weft__event_t *)(const void *)e;
    /* Acquire: pairs with weft_event_set's release exchange. */
    return (atomic_load_explicit(&x->word, memory_order_acquire) & SET) != 0;
}

static bool
spin_wait(_Atomic uint32_t *w)
{
    for (int i = 0; i < WEFT__SPIN_LIMIT; i++) {
        weft__cpu_relax();
        /* Acquire: pairs with weft_event_set's release exchange. */
        if (atomic_load_explicit(w, memory_order_acquire) & SET) {
            return true;
        }
    }
    return false;
}

/* Record SLEEPERS; false when the flag turned out set. */
static bool
mark_sleeper(_Atomic uint32_t *w)
{
    uint32_t v = atomic_load_explicit(w, memory_order_acquire);
    while (!(v & SLEEPERS)) {
        if (v & SET) {
            return false;
        }
        /* Acquire: the value read on failure may carry the flag, which
         * pairs with weft_event_set's release exchange (C11 wants the
         * success order at least as strong). */
        if (atomic_compare_exchange_weak_explicit(w, &v, v | SLEEPERS,
                                                  memory_order_acquire,
                                                  memory_order_acquire)) {
            return true;
        }
    }
    return (v & SET) == 0;
}

static int
wait_slow(_Atomic uint32_t *w, weft_time_t deadline)
{
    if (spin_wait(w)) {
        return WEFT_OK;
    }
    for (;;) {
        if (!mark_sleeper(w)) {
            return WEFT_OK;
        }
        int rc = weft__park_on(WEFT__WAIT_EVENT, w, w, SLEEPERS, deadline);
        /* Acquire: pairs with weft_event_set's release exchange. A set that
         * raced with the deadline still counts. */
        if (atomic_load_explicit(w, memory_order_acquire) & SET) {
            return WEFT_OK;
        }
        if (rc != WEFT_OK) {
            return rc;
        }
    }
}

int
weft_event_wait_until(weft_event_t *e, weft_time_t deadline)
{
    WEFT_ASSERT(e != NULL, "weft_event_wait_until: NULL event");
    _Atomic uint32_t *w = word_of(e);
    /* Acquire: pairs with weft_event_set's release exchange. */
    if (WEFT__LIKELY(atomic_load_explicit(w, memory_order_acquire) & SET)) {
        return WEFT_OK;
    }
    return wait_slow(w, deadline);
}

int
weft_event_wait(weft_event_t *e)
{
    WEFT_ASSERT(e != NULL, "weft_event_wait: NULL event");
    return weft_event_wait_until(e, WEFT_FOREVER);
}
