/* SPDX-License-Identifier: MIT */
/*
 * Scopes: structured concurrency (Go's errgroup, Python's asyncio.TaskGroup)
 * over any executor. Tasks submitted with opts.scope (or weft_scope_submit)
 * belong to the scope; weft_scope_wait waits for all of them and returns
 * the first failure; the first failure, the scope's deadline or
 * weft_scope_cancel cancels every task of the scope (queued ones never run,
 * running ones see weft_cancelled() and WEFT_ECANCELED from blocking calls).
 *
 * Thread safety: submit, cancel and the accessors may be called from any
 * thread, also from the scope's own tasks; wait and destroy from one thread
 * at a time, never from inside the scope's own tasks.
 */
#ifndef WEFT_SCOPE_H
#define WEFT_SCOPE_H

#include <weft/base.h>
#include <weft/executor.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * weft_scope_create: a scope whose tasks must finish by deadline
 * (WEFT_FOREVER: none): when it passes during weft_scope_wait, the scope
 * is cancelled and its error is WEFT_ETIMEDOUT. The deadline is enforced by
 * the waiter (no timer thread): a scope nobody waits for is not cancelled
 * at its deadline. Returns WEFT_OK or WEFT_ENOMEM.
 */
WEFT_API WEFT_NODISCARD int weft_scope_create(weft_time_t deadline,
                                              weft_scope_t **out);

/*
 * weft_scope_submit: weft_executor_submit(ex, fn, arg, opts with scope = s,
 * out). Also WEFT_ECANCELED when s is already cancelled (fn never runs).
 */
WEFT_API WEFT_NODISCARD int
weft_scope_submit(weft_scope_t *s, weft_executor_t *ex, weft_task_fn fn,
                  void *arg, const weft_task_opts_t *opts, weft_future_t **out);

/*
 * weft_scope_wait: wait until every task of s has finished. Returns WEFT_OK
 * when all succeeded, else the scope's error: the first failing task's code
 * (its message from weft_scope_error), WEFT_ETIMEDOUT when the deadline
 * cancelled it, WEFT_ECANCELED when it was cancelled. When the calling
 * task is cancelled, s is cancelled and still awaited. Tasks may still be
 * submitted afterwards (the scope is reusable until destroyed).
 */
WEFT_API WEFT_NODISCARD int weft_scope_wait(weft_scope_t *s);

/* weft_scope_cancel: cancel every task of s, now and later submitted.
 * Idempotent; never blocks for long. */
WEFT_API void weft_scope_cancel(weft_scope_t *s);

/* weft_scope_error: message of the first failure ("" if none). Borrowed,
 * valid until s is destroyed. */
WEFT_API const char *weft_scope_error(const weft_scope_t *s);

/* weft_scope_pending: tasks of s not finished yet. */
WEFT_API size_t weft_scope_pending(const weft_scope_t *s);

/* weft_scope_destroy: cancel s, wait for its tasks, free it. NULL no-op. */
WEFT_API void weft_scope_destroy(weft_scope_t *s);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_SCOPE_H */
