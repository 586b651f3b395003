/* SPDX-License-Identifier: MIT */
/*
 * The real layout of weft_mutex_t and the internal entry points the other
 * synchronization primitives (rlock, condition, barrier, once) build on.
 */
#ifndef WEFT_MUTEX_IMPL_H
#define WEFT_MUTEX_IMPL_H

#include <stdalign.h>

#include <weft/sync.h>

#include "internal.h"

/* The public types are opaque uint64_t arrays; the real structs overlay them
 * and may be accessed through either type. */
#if defined(__GNUC__)
#define WEFT__MAY_ALIAS __attribute__((may_alias))
#else
#define WEFT__MAY_ALIAS
#endif

/* Mutex states, the futex word's values. */
enum {
    WEFT__MUTEX_FREE = 0,
    WEFT__MUTEX_LOCKED = 1,    /* held, nobody sleeps on it */
    WEFT__MUTEX_CONTENDED = 2, /* held, sleepers possible */
};

typedef struct WEFT__MAY_ALIAS weft__mutex {
    _Atomic uint32_t state; /* WEFT__MUTEX_*: the futex word */
    _Atomic uint32_t owner; /* weft__self_id() of the holder, 0 if none */
} weft__mutex_t;

_Static_assert(sizeof(weft__mutex_t) <= sizeof(weft_mutex_t),
               "weft__mutex_t must fit in weft_mutex_t");
_Static_assert(alignof(weft__mutex_t) <= alignof(weft_mutex_t),
               "weft_mutex_t must be aligned for weft__mutex_t");

static inline weft__mutex_t *
weft__mutex(weft_mutex_t *m)
{
    return (weft__mutex_t *)(void *)m;
}

/*
 * Acquire x, blocking until deadline: WEFT_OK (held, the caller recorded as
 * owner), WEFT_ETIMEDOUT or, when cancellable, WEFT_ECANCELED (not held).
 * Asserts that the caller does not hold x already.
 */
int weft__mutex_lock_until(weft__mutex_t *x, weft_time_t deadline,
                           bool cancellable);
/* Acquire x if free (recording the caller as owner); never blocks. */
bool weft__mutex_try_lock(weft__mutex_t *x);
/* Release x, which the caller holds (the caller checked). */
void weft__mutex_release(weft__mutex_t *x);

/*
 * Acquire m ignoring cancellation (for relocking after a condition wait and
 * for short internal critical sections). Records the caller as owner.
 */
void weft__mutex_lock_nocancel(weft_mutex_t *m);

/*
 * weft__park that a cancelled task cannot cut short: for waits documented as
 * not cancellable (once) and for relocks that must succeed. Same returns as
 * weft__park except WEFT_ECANCELED.
 */
int weft__park_nocancel(_Atomic uint32_t *addr, uint32_t expected,
                        weft_time_t deadline);

#endif /* WEFT_MUTEX_IMPL_H */
