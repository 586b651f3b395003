/* SPDX-License-Identifier: MIT */
/*
 * Synchronization primitives, Python's threading module in C: Lock (mutex),
 * RLock, Semaphore and BoundedSemaphore, Event, Condition, Barrier, and once.
 *
 * All are futex based: an uncontended acquire or release is one atomic
 * instruction and no system call; a contended waiter spins briefly, then
 * sleeps in the kernel until woken. All may live in the caller's memory (the
 * types below are opaque storage of fixed size). Waits come in three forms:
 * blocking (`x_lock`), non-blocking (`x_try_lock`, WEFT_EAGAIN when it would
 * block) and until an absolute monotonic deadline (`x_lock_until`,
 * WEFT_ETIMEDOUT when it passes; WEFT_FOREVER never passes). Spurious wake-ups
 * are absorbed inside weft: a wait returns only for the reason it documents.
 *
 * A primitive must not be fini'd or freed while a thread still uses it. A
 * thread that a mutex unlock, semaphore release or event set lets through
 * may fini and free the object at once: the waking thread no longer touches
 * it by then. A wait whose deadline has already passed still succeeds when
 * it would not have to block. NULL handles are programmer errors (asserted).
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include <stdbool.h>
#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Mutex (threading.Lock): not recursive, owned by the thread that locked it. */

typedef struct weft_mutex {
    uint64_t opaque_[2];
} weft_mutex_t;

/* Static initializer; a zero-filled weft_mutex_t is also a valid unlocked
 * mutex. */
#define WEFT_MUTEX_INIT                                                        \
    {                                                                          \
        {                                                                      \
            0, 0                                                               \
        }                                                                      \
    }

/* weft_mutex_init: make m an unlocked mutex. Never fails. */
WEFT_API void weft_mutex_init(weft_mutex_t *m);

/* weft_mutex_fini: end m's life. m must be unlocked (asserted). */
WEFT_API void weft_mutex_fini(weft_mutex_t *m);

/*
 * weft_mutex_lock: acquire m, blocking until it is free (after a short spin).
 * Returns WEFT_OK, or WEFT_ECANCELED when the calling task is cancelled while
 * it waits (then m is not held). Locking a mutex the caller already holds is
 * a programmer error (asserted: it would deadlock). Fair enough for
 * throughput, not FIFO: a releasing thread may reacquire at once.
 */
WEFT_API WEFT_NODISCARD int weft_mutex_lock(weft_mutex_t *m);

/* weft_mutex_try_lock: acquire m if free: WEFT_OK, else WEFT_EAGAIN (also
 * when the caller itself holds m). Never blocks. */
WEFT_API WEFT_NODISCARD int weft_mutex_try_lock(weft_mutex_t *m);

/* weft_mutex_lock_until: as weft_mutex_lock (including the assertion when
 * the caller holds m), or WEFT_ETIMEDOUT when deadline passes first (then m
 * is not held). */
WEFT_API WEFT_NODISCARD int weft_mutex_lock_until(weft_mutex_t *m,
                                                  weft_time_t deadline);

/*
 * weft_mutex_unlock: release m and wake one waiter if any. Only the owning
 * thread may unlock: unlocking a mutex one does not hold is a programmer
 * error (asserted with a message naming the owner and the caller). Never
 * blocks.
 */
WEFT_API void weft_mutex_unlock(weft_mutex_t *m);

/* weft_mutex_is_held: true when the calling thread holds m (for asserts). */
WEFT_API bool weft_mutex_is_held(const weft_mutex_t *m);

/* ------------------------------------------------------------------------ */
/* Recursive lock (threading.RLock): the owner may acquire again; it is free  */
/* after as many releases as acquisitions.                                    */

typedef struct weft_rlock {
    uint64_t opaque_[4];
} weft_rlock_t;

/* Static initializer; a zero-filled weft_rlock_t is also a free rlock. */
#define WEFT_RLOCK_INIT                                                        \
    {                                                                          \
        {                                                                      \
            0, 0, 0, 0                                                         \
        }                                                                      \
    }

WEFT_API void weft_rlock_init(weft_rlock_t *r);
/* weft_rlock_fini: r must not be held (asserted). */
WEFT_API void weft_rlock_fini(weft_rlock_t *r);

/* weft_rlock_acquire: acquire r (again, if the caller owns it). Returns
 * WEFT_OK, WEFT_ECANCELED, or WEFT_EOVERFLOW past 2^31-1 nested holds. */
WEFT_API WEFT_NODISCARD int weft_rlock_acquire(weft_rlock_t *r);
/* weft_rlock_try_acquire: WEFT_OK, WEFT_EAGAIN (another thread owns it) or
 * WEFT_EOVERFLOW. Never blocks. */
WEFT_API WEFT_NODISCARD int weft_rlock_try_acquire(weft_rlock_t *r);
/* weft_rlock_acquire_until: as acquire, or WEFT_ETIMEDOUT (not held). */
WEFT_API WEFT_NODISCARD int weft_rlock_acquire_until(weft_rlock_t *r,
                                                     weft_time_t deadline);
/*
 * weft_rlock_release: undo one acquisition. Returns WEFT_OK, or WEFT_EPERM when
 * the caller does not own r (Python raises RuntimeError there); the lock is
 * then left untouched. Never blocks.
 */
WEFT_API WEFT_NODISCARD int weft_rlock_release(weft_rlock_t *r);
/* weft_rlock_depth: how many times the calling thread holds r (0 if not). */
WEFT_API unsigned weft_rlock_depth(const weft_rlock_t *r);

/* ------------------------------------------------------------------------ */
/* Semaphore (threading.Semaphore / BoundedSemaphore)                        */

typedef struct weft_sem {
    uint64_t opaque_[2];
} weft_sem_t;

/* Largest count a semaphore holds. */
#define WEFT_SEM_VALUE_MAX 0x7fffffffu

/* weft_sem_init: a semaphore holding value permits, unbounded (release never
 * fails below WEFT_SEM_VALUE_MAX). Errors: WEFT_EINVAL (value too large).
 * There is no static initializer: a semaphore must be initialized. */
WEFT_API WEFT_NODISCARD int weft_sem_init(weft_sem_t *s, unsigned value);

/*
 * weft_sem_init_bounded: a semaphore holding value permits that may never hold
 * more than max (Python's BoundedSemaphore has max == value): a release past
 * max fails with WEFT_ERANGE, catching "released more than acquired" bugs.
 * Errors: WEFT_EINVAL (max 0, value > max, or max too large).
 */
WEFT_API WEFT_NODISCARD int weft_sem_init_bounded(weft_sem_t *s, unsigned value,
                                                  unsigned max);
/* weft_sem_fini: end s's life; no thread may be waiting on it (asserted). */
WEFT_API void weft_sem_fini(weft_sem_t *s);

/* weft_sem_acquire: take one permit, blocking while there is none.
 * WEFT_OK or WEFT_ECANCELED. */
WEFT_API WEFT_NODISCARD int weft_sem_acquire(weft_sem_t *s);
/* weft_sem_try_acquire: WEFT_OK, or WEFT_EAGAIN when no permit is free. */
WEFT_API WEFT_NODISCARD int weft_sem_try_acquire(weft_sem_t *s);
/* weft_sem_acquire_until: as acquire, or WEFT_ETIMEDOUT (no permit taken). */
WEFT_API WEFT_NODISCARD int weft_sem_acquire_until(weft_sem_t *s,
                                                   weft_time_t deadline);
/*
 * weft_sem_release: return n permits (n >= 1) and wake up to n waiters.
 * Errors: WEFT_EINVAL (n 0), WEFT_ERANGE (would pass the bound; nothing is
 * released), WEFT_EOVERFLOW (past WEFT_SEM_VALUE_MAX). Any thread may release.
 * Never blocks.
 */
WEFT_API WEFT_NODISCARD int weft_sem_release(weft_sem_t *s, unsigned n);
/* weft_sem_value: a snapshot of the free permits (stale at once). */
WEFT_API unsigned weft_sem_value(const weft_sem_t *s);

/* ------------------------------------------------------------------------ */
/* Event (threading.Event): a flag threads wait for.                          */

typedef struct weft_event {
    uint64_t opaque_[1];
} weft_event_t;

/* Static initializer: a clear event. A zero-filled event is also clear. */
#define WEFT_EVENT_INIT                                                        \
    {                                                                          \
        {                                                                      \
            0                                                                  \
        }                                                                      \
    }

WEFT_API void weft_event_init(weft_event_t *e);
WEFT_API void weft_event_fini(weft_event_t *e);
/* weft_event_set: set the flag and wake every waiter. Never blocks. */
WEFT_API void weft_event_set(weft_event_t *e);
/* weft_event_clear: clear the flag; later waits block. Never blocks. */
WEFT_API void weft_event_clear(weft_event_t *e);
/* weft_event_is_set: the flag's value (acquire: what happened before the set
 * is visible when this returns true). Never blocks. */
WEFT_API bool weft_event_is_set(const weft_event_t *e);
/* weft_event_wait: block until the flag is set. WEFT_OK or WEFT_ECANCELED. */
WEFT_API WEFT_NODISCARD int weft_event_wait(weft_event_t *e);
/* weft_event_wait_until: as wait, or WEFT_ETIMEDOUT. A set followed at once by
 * a clear may or may not release a waiter (as in Python). On WEFT_OK, what
 * the setter did before set is visible. */
WEFT_API WEFT_NODISCARD int weft_event_wait_until(weft_event_t *e,
                                                  weft_time_t deadline);

/* ------------------------------------------------------------------------ */
/* Condition variable (threading.Condition), used with a weft_mutex_t.        */

typedef struct weft_cond {
    uint64_t opaque_[1];
} weft_cond_t;

/* Static initializer; a zero-filled weft_cond_t is also valid. */
#define WEFT_COND_INIT                                                         \
    {                                                                          \
        {                                                                      \
            0                                                                  \
        }                                                                      \
    }

WEFT_API void weft_cond_init(weft_cond_t *c);
/* weft_cond_fini: no thread may be waiting on c (asserted). */
WEFT_API void weft_cond_fini(weft_cond_t *c);

/*
 * weft_cond_wait: atomically release m (which the caller must hold, asserted)
 * and wait for a signal; m is held again on return, whatever the result.
 * Returns WEFT_OK (signalled; like every condition variable it may also
 * return without a matching signal, so re-check the predicate, or use
 * weft_cond_wait_for), or WEFT_ECANCELED. Relocking m after the wait
 * ignores cancellation, so it may block until m is free.
 */
WEFT_API WEFT_NODISCARD int weft_cond_wait(weft_cond_t *c, weft_mutex_t *m);
/* weft_cond_wait_until: as wait, or WEFT_ETIMEDOUT when deadline passes
 * without a signal (a wait that was signalled as its deadline passed reports
 * WEFT_OK, so no signal is lost). */
WEFT_API WEFT_NODISCARD int
weft_cond_wait_until(weft_cond_t *c, weft_mutex_t *m, weft_time_t deadline);

/* Predicate for weft_cond_wait_for: called with the mutex held. */
typedef bool (*weft_pred_fn)(void *arg);

/*
 * weft_cond_wait_for: Python's Condition.wait_for. With m held, wait until
 * pred(arg) is true (checked first, then after each wake-up) or deadline
 * passes. Returns WEFT_OK when pred is true, WEFT_ETIMEDOUT (pred still
 * false), or WEFT_ECANCELED. m is held on return.
 */
WEFT_API WEFT_NODISCARD int weft_cond_wait_for(weft_cond_t *c, weft_mutex_t *m,
                                               weft_pred_fn pred, void *arg,
                                               weft_time_t deadline);

/* weft_cond_signal: wake at least one waiter, if any. Holding the mutex is
 * allowed, not required. Never blocks. */
WEFT_API void weft_cond_signal(weft_cond_t *c);
/* weft_cond_broadcast: wake every waiter. Never blocks. */
WEFT_API void weft_cond_broadcast(weft_cond_t *c);

/* ------------------------------------------------------------------------ */
/* Barrier (threading.Barrier)                                                */

typedef struct weft_barrier {
    uint64_t opaque_[8];
} weft_barrier_t;

/* Returned by weft_barrier_wait to exactly one thread of each round. */
#define WEFT_BARRIER_SERIAL 1

/* Run by the last thread to arrive, before the others are released. */
typedef void (*weft_barrier_action_fn)(void *arg);

/*
 * weft_barrier_init: a barrier for parties threads (>= 1). action (may be
 * NULL) runs once per round in the last arriving thread before any waiter is
 * released. Errors: WEFT_EINVAL (parties 0 or above 2^30).
 */
WEFT_API WEFT_NODISCARD int weft_barrier_init(weft_barrier_t *b,
                                              unsigned parties,
                                              weft_barrier_action_fn action,
                                              void *arg);
/* weft_barrier_fini: no thread may be waiting on b (asserted). */
WEFT_API void weft_barrier_fini(weft_barrier_t *b);

/*
 * weft_barrier_wait: wait until parties threads have called it.
 * Returns WEFT_BARRIER_SERIAL in the one thread that arrived last (it ran the
 * action), WEFT_OK in the others, or WEFT_EBROKEN when the barrier is or
 * becomes broken (aborted, or a waiter timed out or was cancelled) while
 * waiting. Reusable: each round starts when the last thread arrives.
 * *index (may be NULL) receives the arrival index, 0 .. parties-1, distinct
 * in each round, as Python's wait() returns (untouched on failure).
 * Cancellation breaks the barrier once the caller has joined the round; a
 * caller cancelled before that (while taking the barrier's internal lock)
 * gets WEFT_ECANCELED and breaks nothing. The action runs with that lock
 * held: the next round's arrivals wait for it.
 */
WEFT_API WEFT_NODISCARD int weft_barrier_wait(weft_barrier_t *b,
                                              unsigned *index);
/*
 * weft_barrier_wait_until: as wait. When deadline passes first, the barrier
 * breaks (as in Python: the other waiters get WEFT_EBROKEN) and this call
 * returns WEFT_ETIMEDOUT. Cancellation breaks it the same way and returns
 * WEFT_ECANCELED.
 */
WEFT_API WEFT_NODISCARD int weft_barrier_wait_until(weft_barrier_t *b,
                                                    unsigned *index,
                                                    weft_time_t deadline);
/* weft_barrier_abort: break the barrier: every current and future waiter gets
 * WEFT_EBROKEN until weft_barrier_reset. Blocks only for the internal lock
 * (briefly, unless an action is running). */
WEFT_API void weft_barrier_abort(weft_barrier_t *b);
/* weft_barrier_reset: break the current round (its waiters get WEFT_EBROKEN)
 * and make the barrier usable again, empty. */
WEFT_API void weft_barrier_reset(weft_barrier_t *b);
/* weft_barrier_is_broken: snapshot of the broken state. */
WEFT_API bool weft_barrier_is_broken(weft_barrier_t *b);
/* weft_barrier_n_waiting: snapshot of how many threads wait in this round. */
WEFT_API unsigned weft_barrier_n_waiting(weft_barrier_t *b);

/* ------------------------------------------------------------------------ */
/* Once                                                                       */

typedef struct weft_once {
    uint32_t opaque_;
} weft_once_t;

/* Static initializer; a zero-filled weft_once_t has not run. */
#define WEFT_ONCE_INIT                                                         \
    {                                                                          \
        0                                                                      \
    }

typedef void (*weft_once_fn)(void *arg);

/*
 * weft_once: run fn(arg) exactly once for o, however many threads call this;
 * every caller returns only after fn has returned. The fast path after
 * completion is one acquire load. fn must not call weft_once on the same o
 * (asserted). Not cancellable: callers wait for fn to finish.
 */
WEFT_API void weft_once(weft_once_t *o, weft_once_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_SYNC_H */
