/* SPDX-License-Identifier: MIT */
/*
 * Futures and promises: the one result type of every weft executor (thread
 * pool, process pool, remote), as Python's concurrent.futures.Future.
 *
 * A future is reference counted and moves once through
 *   PENDING -> RUNNING -> DONE | FAILED | CANCELLED
 * (PENDING may go straight to CANCELLED, or to DONE/FAILED through a
 * promise). The outcome of a finished future never changes. A failure
 * carries a weft error code and a message, like a raised exception.
 *
 * Thread safety: every function may be called from any thread at once on
 * the same future, provided the caller holds a reference. Blocking waits
 * honour the calling task's cancellation (WEFT_ECANCELED). A wait made from
 * inside a weft pool worker never deadlocks the pool: if the awaited task is
 * still queued, the waiter runs it inline.
 */
#ifndef WEFT_FUTURE_H
#define WEFT_FUTURE_H

#include <stdbool.h>
#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_future weft_future_t;

typedef enum weft_future_state {
    WEFT_FUTURE_PENDING = 0,
    WEFT_FUTURE_RUNNING = 1,
    WEFT_FUTURE_DONE = 2,
    WEFT_FUTURE_FAILED = 3,
    WEFT_FUTURE_CANCELLED = 4,
} weft_future_state_t;

/* Destroys a result nobody took (weft_future_take_result); called once, on
 * the thread that drops the last reference. */
typedef void (*weft_result_dtor_fn)(void *result);

/* Called once when the future finishes, with a borrowed reference. */
typedef void (*weft_future_cb_fn)(weft_future_t *f, void *ctx);

/* ------------------------------------------------------------------------ */
/* References and state                                                      */

/* weft_future_retain: add a reference; returns f. Never blocks. */
WEFT_API weft_future_t *weft_future_retain(weft_future_t *f);

/*
 * weft_future_release: drop a reference. The last one frees the future and,
 * if nobody took the result, runs its result destructor. NULL is a no-op.
 * Releasing more references than were held is a programmer error (asserted
 * where detectable). Never blocks.
 */
WEFT_API void weft_future_release(weft_future_t *f);

/* weft_future_state: a snapshot of f's state. Never blocks. */
WEFT_API weft_future_state_t weft_future_state(const weft_future_t *f);

/* weft_future_done: true when f is DONE, FAILED or CANCELLED. */
WEFT_API bool weft_future_done(const weft_future_t *f);

/* ------------------------------------------------------------------------ */
/* Waiting and results                                                       */

/*
 * weft_future_wait: block until f is finished. Returns WEFT_OK (whatever the
 * outcome: read it with weft_future_result), WEFT_ECANCELED when the calling
 * task is cancelled first, or WEFT_EDEADLK when the caller is the task that
 * completes f (f is RUNNING on the calling thread; a promise has no such
 * task: any thread may complete it). Parks the caller (after a brief spin);
 * spurious wake-ups are absorbed.
 */
WEFT_API WEFT_NODISCARD int weft_future_wait(weft_future_t *f);

/* weft_future_wait_until: as weft_future_wait, or WEFT_ETIMEDOUT when
 * deadline passes first. */
WEFT_API WEFT_NODISCARD int weft_future_wait_until(weft_future_t *f,
                                                   weft_time_t deadline);

/*
 * weft_future_result: wait for f (as weft_future_wait), then report its
 * outcome: WEFT_OK with *value set to the result (borrowed: it stays owned
 * by f, or by whoever took it with weft_future_take_result), the task's
 * failure code (its message from weft_future_error), or WEFT_ECANCELED when
 * f was cancelled. Errors of the wait itself are returned as they are;
 * *value is untouched on any failure. value may be NULL.
 */
WEFT_API WEFT_NODISCARD int weft_future_result(weft_future_t *f, void **value);

/* weft_future_result_until: weft_future_result with a deadline
 * (WEFT_ETIMEDOUT). */
WEFT_API WEFT_NODISCARD int
weft_future_result_until(weft_future_t *f, void **value, weft_time_t deadline);

/*
 * weft_future_take_result: as weft_future_result, and on WEFT_OK transfer
 * ownership of the value to the caller: the result destructor will not run.
 * A second take returns WEFT_EPERM (*value untouched). WEFT_EINVAL when
 * value is NULL (the taken value would be lost).
 */
WEFT_API WEFT_NODISCARD int weft_future_take_result(weft_future_t *f,
                                                    void **value);

/*
 * weft_future_error: the failure message of a FAILED future ("" when it
 * carries none, or the future is not FAILED). Borrowed: valid while the
 * caller holds a reference. Never blocks.
 */
WEFT_API const char *weft_future_error(const weft_future_t *f);

/* weft_future_code: WEFT_OK for DONE, the failure code for FAILED,
 * WEFT_ECANCELED for CANCELLED, WEFT_EAGAIN while not finished. */
WEFT_API int weft_future_code(const weft_future_t *f);

/*
 * weft_future_on_done: call fn(f, ctx) exactly once when f finishes, on the
 * thread that finishes it; at once on the calling thread if f is already
 * finished. Callbacks registered before f finishes run in registration
 * order; one registered after runs at once, possibly before the finishing
 * thread is through with the earlier ones. Callbacks must not block for
 * long. Returns WEFT_OK, WEFT_EINVAL (fn NULL) or WEFT_ENOMEM (then fn is
 * never called). Lock-free, apart from the allocation of one small node.
 */
WEFT_API WEFT_NODISCARD int
weft_future_on_done(weft_future_t *f, weft_future_cb_fn fn, void *ctx);

/*
 * weft_future_cancel: cancel f. A PENDING future becomes CANCELLED at once
 * (its task never runs) and true is returned. A RUNNING task's cancellation
 * token is set (weft_cancelled() reports it, its weft blocking calls return
 * WEFT_ECANCELED) and false is returned: the task decides how it ends. A
 * finished future is left alone (false). Never blocks for long.
 */
WEFT_API bool weft_future_cancel(weft_future_t *f);

/* ------------------------------------------------------------------------ */
/* Promises: completing a future by hand                                     */

/*
 * weft_promise_create: a new PENDING future (one reference, the caller's) to
 * be completed with weft_promise_* from any thread. Returns WEFT_OK,
 * WEFT_EINVAL (out NULL) or WEFT_ENOMEM (*out untouched).
 */
WEFT_API WEFT_NODISCARD int weft_promise_create(weft_future_t **out);

/*
 * weft_promise_start: PENDING -> RUNNING. WEFT_OK, or WEFT_ECANCELED when f
 * was cancelled first (then do not run the work), WEFT_EPERM when it was
 * already started or finished.
 */
WEFT_API WEFT_NODISCARD int weft_promise_start(weft_future_t *f);

/*
 * weft_promise_set_result: finish f as DONE with value (ownership taken;
 * dtor, may be NULL, destroys it if nobody takes it). Wakes every waiter and
 * runs the callbacks. WEFT_OK, or WEFT_EPERM when f is already finished
 * (then value is not taken; the caller still owns it).
 */
WEFT_API WEFT_NODISCARD int weft_promise_set_result(weft_future_t *f,
                                                    void *value,
                                                    weft_result_dtor_fn dtor);

/* weft_promise_set_failure: finish f as FAILED with code (negative, not
 * WEFT_OK) and a printf-style message (truncated to 1024 bytes; fmt NULL:
 * no message; kept without one when memory runs out). WEFT_OK, WEFT_EINVAL
 * for code >= 0, or WEFT_EPERM when already finished. */
WEFT_API WEFT_NODISCARD int weft_promise_set_failure(weft_future_t *f, int code,
                                                     const char *fmt, ...)
    WEFT_PRINTF(3, 4);

/* ------------------------------------------------------------------------ */
/* Waiting for several                                                       */

typedef enum weft_wait_mode {
    WEFT_FIRST_COMPLETED = 0, /* any one finished */
    WEFT_FIRST_EXCEPTION = 1, /* any one FAILED/CANCELLED, or all finished */
    WEFT_ALL_COMPLETED = 2,   /* all finished */
} weft_wait_mode_t;

/*
 * weft_future_wait_many: wait until mode's condition holds for fs[0..n-1]
 * (borrowed; NULL entries are not allowed). Returns WEFT_OK and, when index
 * is not NULL, the index of a future that satisfied the condition (for
 * ALL_COMPLETED, and FIRST_EXCEPTION when all finished without a failure:
 * n-1), or WEFT_ETIMEDOUT / WEFT_ECANCELED. n == 0 returns WEFT_OK at once
 * (*index untouched). WEFT_EINVAL for a NULL array with n > 0, a NULL entry
 * or a bad mode; WEFT_ENOMEM when the waiter's callbacks cannot be
 * registered; WEFT_EDEADLK when the condition can only be met by a future
 * the calling task is running itself (any of them for ALL_COMPLETED, all
 * of them otherwise). Helps the executors as weft_future_wait does, then
 * parks. A wait that parked and then timed out or was cancelled leaves a
 * small node on each unfinished future, freed when it finishes or is
 * freed; a poll (deadline already passed) registers nothing.
 */
WEFT_API WEFT_NODISCARD int
weft_future_wait_many(weft_future_t *const *fs, size_t n, weft_wait_mode_t mode,
                      weft_time_t deadline, size_t *index);

/* ------------------------------------------------------------------------ */
/* Completion queue: as_completed                                            */

typedef struct weft_completion_queue weft_completion_queue_t;

/* weft_cq_create: an empty completion queue. WEFT_OK, WEFT_EINVAL (out
 * NULL) or WEFT_ENOMEM. */
WEFT_API WEFT_NODISCARD int weft_cq_create(weft_completion_queue_t **out);

/*
 * weft_cq_add: watch f (the queue takes its own reference). When f
 * finishes it becomes available from weft_cq_next, in completion order.
 * f is borrowed. WEFT_OK, WEFT_ENOMEM, or WEFT_ECLOSED when the add
 * overlaps weft_cq_destroy (destroy waits for adds in progress; an add that
 * starts after destroy returned uses freed memory, as any call on a
 * destroyed object). Never blocks (a short internal lock).
 */
WEFT_API WEFT_NODISCARD int weft_cq_add(weft_completion_queue_t *cq,
                                        weft_future_t *f);

/*
 * weft_cq_next_until: hand over the next finished future: *out receives the
 * queue's reference (new reference: the caller releases it). The queue keeps
 * nothing of it afterwards. Returns WEFT_OK, WEFT_ECLOSED when every added
 * future has been handed over (nothing pending), WEFT_ETIMEDOUT,
 * WEFT_ECANCELED, or WEFT_EINVAL (out NULL); *out is untouched on failure.
 * Any number of threads may call it at once; blocks until a watched future
 * finishes.
 */
WEFT_API WEFT_NODISCARD int weft_cq_next_until(weft_completion_queue_t *cq,
                                               weft_future_t **out,
                                               weft_time_t deadline);

/* weft_cq_next: weft_cq_next_until(cq, out, WEFT_FOREVER). */
WEFT_API WEFT_NODISCARD int weft_cq_next(weft_completion_queue_t *cq,
                                         weft_future_t **out);

/* weft_cq_pending: futures added and not yet handed over (a snapshot).
 * Never blocks. */
WEFT_API size_t weft_cq_pending(const weft_completion_queue_t *cq);

/*
 * weft_cq_destroy: free cq. Futures still watched are released (not
 * cancelled) once they finish; a future that finishes later finds the queue
 * gone safely. No thread may be inside weft_cq_next when it is called.
 * NULL is a no-op. May yield while weft_cq_add calls overlap it.
 */
WEFT_API void weft_cq_destroy(weft_completion_queue_t *cq);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_FUTURE_H */
