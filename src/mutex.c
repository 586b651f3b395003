/* SPDX-License-Identifier: MIT */
/*
 * weft_mutex_t: a non-recursive, owned futex mutex (Python's threading.Lock,
 * with an owner so misuse is caught). The other primitives build on it.
 */

/*
 * DESIGN
 *
 * State machine of the futex word (Drepper, "Futexes Are Tricky", mutex 3):
 *
 *   0 FREE       nobody holds it
 *   1 LOCKED     held; no thread sleeps on the word
 *   2 CONTENDED  held; threads may sleep on the word
 *
 *   lock:   CAS 0 -> 1 (acquire). One RMW, no syscall, when uncontended.
 *           Otherwise spin up to WEFT__SPIN_LIMIT rounds reading the word with
 *           a plain relaxed load and retrying the CAS only when it reads 0 (so
 *           spinners do not bounce the cache line with failing RMWs). Then
 *           loop { if XCHG(2) returned 0: held (acquire); park while == 2 }.
 *           A thread that ever parked takes the lock in state 2, so its
 *           unlock wakes the next sleeper: no wake-up is lost, at the price
 *           of one needless wake when it was the last sleeper.
 *   unlock: XCHG(0) (release); if the old value was 2, wake one sleeper. The
 *           exchange is the store that lets another thread take the lock
 *           (and then free the mutex): after it only the futex wake, a
 *           system call on the address that reads no user memory, touches
 *           the mutex.
 *
 * A waiter that leaves without the lock (deadline passed, task cancelled)
 * may have consumed the wake-up meant for the next sleeper. So before it
 * leaves it tries once more with XCHG(2): if that returns 0 it holds the lock
 * (a timed-out waiter then keeps it and reports success; a cancelled one
 * unlocks, which wakes a sleeper since the word is 2); if not, the word is 2
 * and the current holder's unlock will wake a sleeper. Either way every
 * sleeper still has a pending wake-up.
 *
 * Orderings: the successful CAS/XCHG that takes the lock is acquire and the
 * unlock XCHG is release; they pair, so the critical sections are ordered.
 * Failed attempts are relaxed: they take nothing.
 *
 * Owner: after acquiring, the holder stores its weft__self_id() with a
 * relaxed store; unlock clears it (relaxed) before the releasing XCHG. The
 * owner word is only ever compared with the caller's own id: a thread sees
 * its own stores in order (coherence), so "owner == me" is exact even with
 * relaxed accesses, while another thread's id read there is only a hint
 * (good enough for assertion messages and dumps).
 */
#include "mutex_impl.h"

#include "plat.h"
#include "probe.h"

static void
unlock_raw(weft__mutex_t *m)
{
    /* Release: pairs with the acquire XCHG/CAS of the next holder. */
    uint32_t old = atomic_exchange_explicit(&m->state, WEFT__MUTEX_FREE,
                                            memory_order_release);
    if (old == WEFT__MUTEX_CONTENDED) {
        weft__unpark(&m->state, 1);
    }
}

static bool
try_lock_raw(weft__mutex_t *m)
{
    uint32_t expected = WEFT__MUTEX_FREE;
    /* Acquire on success: pairs with unlock_raw's release exchange. */
    return atomic_compare_exchange_strong_explicit(
        &m->state, &expected, WEFT__MUTEX_LOCKED, memory_order_acquire,
        memory_order_relaxed);
}

static bool
spin_lock(weft__mutex_t *m)
{
    for (int i = 0; i < WEFT__SPIN_LIMIT; i++) {
        if (atomic_load_explicit(&m->state, memory_order_relaxed) ==
                WEFT__MUTEX_FREE &&
            try_lock_raw(m)) {
            return true;
        }
        weft__cpu_relax();
    }
    return false;
}

int
weft__park_nocancel(_Atomic uint32_t *addr, uint32_t expected,
                    weft_time_t deadline)
{
    int rc = weft__park(addr, expected, deadline);
    if (rc == WEFT_ECANCELED) {
        /* The task's cancellation makes weft__park return at once; sleep
         * in the kernel directly so this wait still blocks. */
        rc = weft__plat_futex_wait(addr, expected, deadline);
    }
    return rc;
}

/* Last attempt of a waiter that leaves without the lock; see DESIGN. */
static int
leave_wait(weft__mutex_t *m, int rc)
{
    /* Acquire on success: pairs with unlock_raw's release exchange. */
    if (atomic_exchange_explicit(&m->state, WEFT__MUTEX_CONTENDED,
                                 memory_order_acquire) != WEFT__MUTEX_FREE) {
        return rc;
    }
    if (rc == WEFT_ETIMEDOUT) {
        return WEFT_OK;
    }
    unlock_raw(m);
    return rc;
}

static int
lock_slow(weft__mutex_t *m, uint32_t self, weft_time_t deadline,
          bool cancellable)
{
    uint32_t owner = atomic_load_explicit(&m->owner, memory_order_relaxed);
    if (WEFT__UNLIKELY(owner == self)) {
        weft__assert_fail(__FILE__, __LINE__, "weft_mutex_lock",
                          "mutex %p is already held by the calling thread "
                          "%u: locking it again would deadlock",
                          (void *)m, self);
    }
    if (spin_lock(m)) {
        return WEFT_OK;
    }
    for (;;) {
        /* Acquire on success: pairs with unlock_raw's release exchange. */
        if (atomic_exchange_explicit(&m->state, WEFT__MUTEX_CONTENDED,
                                     memory_order_acquire) ==
            WEFT__MUTEX_FREE) {
            return WEFT_OK;
        }
        weft__wait_begin(WEFT__WAIT_MUTEX, m);
        int rc = cancellable
                     ? weft__park(&m->state, WEFT__MUTEX_CONTENDED, deadline)
                     : weft__park_nocancel(&m->state, WEFT__MUTEX_CONTENDED,
                                           deadline);
        weft__wait_end(WEFT__WAIT_MUTEX, m, rc);
        if (rc != WEFT_OK) {
            return leave_wait(m, rc);
        }
    }
}

static void
set_owner(weft__mutex_t *m, uint32_t self)
{
    /* Relaxed: only the owner compares it with its own id (see DESIGN). */
    atomic_store_explicit(&m->owner, self, memory_order_relaxed);
}

int
weft__mutex_lock_until(weft__mutex_t *x, weft_time_t deadline, bool cancellable)
{
    uint32_t self = weft__self_id();
    if (WEFT__LIKELY(try_lock_raw(x))) {
        set_owner(x, self);
        return WEFT_OK;
    }
    int rc = lock_slow(x, self, deadline, cancellable);
    if (rc == WEFT_OK) {
        set_owner(x, self);
    }
    return rc;
}

bool
weft__mutex_try_lock(weft__mutex_t *x)
{
    if (!try_lock_raw(x)) {
        return false;
    }
    set_owner(x, weft__self_id());
    return true;
}

void
weft__mutex_release(weft__mutex_t *x)
{
    /* Relaxed: ordered before the next owner's store by unlock_raw's
     * release exchange and that owner's acquire. */
    atomic_store_explicit(&x->owner, 0, memory_order_relaxed);
    unlock_raw(x);
}

void
weft__mutex_lock_nocancel(weft_mutex_t *m)
{
    int rc = weft__mutex_lock_until(weft__mutex(m), WEFT_FOREVER, false);
    WEFT_ASSERT(rc == WEFT_OK, "mutex %p: uncancellable lock failed: %s",
                (void *)m, weft_errname(rc));
}

void
weft_mutex_init(weft_mutex_t *m)
{
    WEFT_ASSERT(m != NULL, "weft_mutex_init: NULL mutex");
    weft__mutex_t *x = weft__mutex(m);
    atomic_init(&x->state, WEFT__MUTEX_FREE);
    atomic_init(&x->owner, 0);
}

void
weft_mutex_fini(weft_mutex_t *m)
{
    WEFT_ASSERT(m != NULL, "weft_mutex_fini: NULL mutex");
    weft__mutex_t *x = weft__mutex(m);
    uint32_t state = atomic_load_explicit(&x->state, memory_order_relaxed);
    WEFT_ASSERT(state == WEFT__MUTEX_FREE,
                "weft_mutex_fini: mutex %p is still locked (by thread %u)",
                (void *)m,
                atomic_load_explicit(&x->owner, memory_order_relaxed));
}

int
weft_mutex_lock(weft_mutex_t *m)
{
    WEFT_ASSERT(m != NULL, "weft_mutex_lock: NULL mutex");
    int rc = weft__mutex_lock_until(weft__mutex(m), WEFT_FOREVER, true);
    if (rc == WEFT_OK) {
        WEFT__PROBE_LOCK_ACQUIRED(m, WEFT__WAIT_MUTEX);
    }
    return rc;
}

int
weft_mutex_lock_until(weft_mutex_t *m, weft_time_t deadline)
{
    WEFT_ASSERT(m != NULL, "weft_mutex_lock_until: NULL mutex");
    int rc = weft__mutex_lock_until(weft__mutex(m), deadline, true);
    if (rc == WEFT_OK) {
        WEFT__PROBE_LOCK_ACQUIRED(m, WEFT__WAIT_MUTEX);
    }
    return rc;
}

int
weft_mutex_try_lock(weft_mutex_t *m)
{
    WEFT_ASSERT(m != NULL, "weft_mutex_try_lock: NULL mutex");
    if (!weft__mutex_try_lock(weft__mutex(m))) {
        return WEFT_EAGAIN;
    }
    WEFT__PROBE_LOCK_ACQUIRED(m, WEFT__WAIT_MUTEX);
    return WEFT_OK;
}

WEFT__COLD WEFT__NORETURN static void
unlock_misuse(const weft_mutex_t *m, uint32_t owner, uint32_t self)
{
    if (owner == 0) {
        weft__assert_fail(__FILE__, __LINE__, "weft_mutex_unlock",
                          "mutex %p is not locked (unlock by thread %u)",
                          (const void *)m, self);
    }
    weft__assert_fail(__FILE__, __LINE__, "weft_mutex_unlock",
                      "mutex %p is held by thread %u, not by the calling "
                      "thread %u",
                      (const void *)m, owner, self);
}

void
weft_mutex_unlock(weft_mutex_t *m)
{
    WEFT_ASSERT(m != NULL, "weft_mutex_unlock: NULL mutex");
    weft__mutex_t *x = weft__mutex(m);
    uint32_t self = weft__self_id();
    uint32_t owner = atomic_load_explicit(&x->owner, memory_order_relaxed);
    if (WEFT__UNLIKELY(owner != self)) {
        unlock_misuse(m, owner, self);
    }
    WEFT__PROBE_LOCK_RELEASED(m, WEFT__WAIT_MUTEX);
    weft__mutex_release(x);
}

bool
weft_mutex_is_held(const weft_mutex_t *m)
{
    WEFT_ASSERT(m != NULL, "weft_mutex_is_held: NULL mutex");
    const weft__mutex_t *x = (const weft__mutex_t *)(const void *)m;
    /* Relaxed: exact for the caller's own id (see DESIGN). */
    return atomic_load_explicit(&x->owner, memory_order_relaxed) ==
           weft__self_id();
}
