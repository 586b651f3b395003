/* SPDX-License-Identifier: MIT */
/*
 * Executors: Python's concurrent.futures.Executor in C. One interface for
 * every kind of executor (the work-stealing thread pool of <weft/pool.h>, an
 * inline executor for tests, and later process pools and remote workers);
 * all of them produce the futures of <weft/future.h>.
 *
 * A task is `void *fn(void *arg)`. Its return value becomes the future's
 * result; it fails like a Python exception with
 *   return weft_task_fail(WEFT_EIO, "GET %s: %d", url, status);
 * and the future then carries the code and the message.
 *
 * Thread safety: every function here may be called from any thread,
 * including from inside tasks, unless its comment says otherwise.
 */
#ifndef WEFT_EXECUTOR_H
#define WEFT_EXECUTOR_H

#include <stdbool.h>
#include <weft/base.h>
#include <weft/future.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_executor weft_executor_t;
typedef struct weft_scope weft_scope_t;

typedef void *(*weft_task_fn)(void *arg);

/* What a submit does when the executor's bounded submission queue is full. */
typedef enum weft_submit_policy {
    WEFT_SUBMIT_DEFAULT = 0,    /* the executor's policy (per submit only) */
    WEFT_SUBMIT_BLOCK = 1,      /* wait for room (until the deadline) */
    WEFT_SUBMIT_REJECT = 2,     /* fail at once with WEFT_EAGAIN */
    WEFT_SUBMIT_CALLER_RUNS = 3 /* run the task on the submitting thread */
} weft_submit_policy_t;

/* Options of one submit. Start from WEFT_TASK_OPTS_INIT. */
typedef struct weft_task_opts {
    /* Shown in traces, dumps and logs. Borrowed: must outlive the task
     * (a string literal is typical). NULL: no label. */
    const char *label;
    /* > 0: run before tasks of priority 0 that were queued from outside
     * the pool. Tasks spawned inside the pool ignore it. */
    int priority;
    /* If the task has not started by this deadline it never runs and its
     * future becomes CANCELLED. WEFT_FOREVER: no deadline. */
    weft_time_t start_deadline;
    /* The task blocks (file or network I/O, sleeps): run it on the
     * blocking lane so it cannot starve CPU-bound work. */
    bool blocking;
    /* Destroys the result if nobody takes it (weft_future_take_result). */
    weft_result_dtor_fn result_dtor;
    /* The task belongs to this scope (<weft/scope.h>): the scope waits
     * for it, and its failure cancels the scope. Borrowed. */
    weft_scope_t *scope;
    /* When the submission queue is full; WEFT_SUBMIT_DEFAULT: the
     * executor's own policy. */
    weft_submit_policy_t policy;
    /* How long WEFT_SUBMIT_BLOCK may wait (absolute), WEFT_FOREVER. */
    weft_time_t submit_deadline;
} weft_task_opts_t;

#define WEFT_TASK_OPTS_INIT                                                    \
    {                                                                          \
        NULL, 0, WEFT_FOREVER, false, NULL, NULL, WEFT_SUBMIT_DEFAULT,         \
            WEFT_FOREVER                                                       \
    }

/*
 * weft_executor_submit: run fn(arg) on ex. opts may be NULL (defaults).
 * With out != NULL, *out receives a new future (one reference, the
 * caller's); with out == NULL the task is fire-and-forget (cheaper: no
 * future is made, a failure is logged at WARN level).
 * Returns WEFT_OK, WEFT_EINVAL (NULL ex or fn, bad policy), WEFT_ESHUTDOWN
 * after shutdown began, WEFT_EAGAIN (queue full under WEFT_SUBMIT_REJECT),
 * WEFT_ETIMEDOUT (full until submit_deadline), WEFT_ECANCELED (the
 * submitting task was cancelled while it waited for room), WEFT_ENOMEM.
 * On failure fn is never called and *out is untouched. Under
 * WEFT_SUBMIT_CALLER_RUNS the task has run when this returns.
 * Blocks only under WEFT_SUBMIT_BLOCK while the queue is full.
 */
WEFT_API WEFT_NODISCARD int weft_executor_submit(weft_executor_t *ex,
                                                 weft_task_fn fn, void *arg,
                                                 const weft_task_opts_t *opts,
                                                 weft_future_t **out);

/*
 * weft_executor_shutdown: stop accepting work (later submits fail with
 * WEFT_ESHUTDOWN). cancel_pending: queued tasks that have not started never
 * run and their futures become CANCELLED (running tasks finish; their
 * tokens are set). wait: block until every accepted task has finished (or
 * was cancelled). Idempotent; may be called from several threads. Calling
 * it with wait from inside one of ex's own tasks returns WEFT_EDEADLK.
 * Returns WEFT_OK, WEFT_EDEADLK or WEFT_ECANCELED.
 */
WEFT_API WEFT_NODISCARD int
weft_executor_shutdown(weft_executor_t *ex, bool wait, bool cancel_pending);

/*
 * weft_executor_destroy: shutdown(wait=true, cancel_pending=false), then
 * free ex. No thread may use ex afterwards; futures it produced stay valid
 * (their references are the holders'). NULL is a no-op. Must not be called
 * from one of ex's own tasks (asserted).
 */
WEFT_API void weft_executor_destroy(weft_executor_t *ex);

/* weft_executor_name: the name given at creation ("pool", "inline"...). */
WEFT_API const char *weft_executor_name(const weft_executor_t *ex);

/*
 * weft_inline_executor_create: an executor that runs each task on the
 * submitting thread inside weft_executor_submit (deterministic tests and
 * debugging). Futures are finished when submit returns. WEFT_OK or
 * WEFT_ENOMEM.
 */
WEFT_API WEFT_NODISCARD int weft_inline_executor_create(weft_executor_t **out);

/* ------------------------------------------------------------------------ */
/* Inside a task                                                             */

/*
 * weft_task_fail: record the running task's failure (code < 0, a printf
 * style message truncated to 1 KiB) and return NULL, so a task ends with
 *   return weft_task_fail(WEFT_EIO, "read %s", path);
 * The future becomes FAILED with that code and message whatever fn then
 * returns. Outside a task, it logs the message at WARN level. A code >= 0
 * is turned into WEFT_EINVAL.
 */
WEFT_API void *weft_task_fail(int code, const char *fmt, ...) WEFT_PRINTF(2, 3);

/*
 * weft_cancelled: true when the task the calling thread is running was
 * cancelled (weft_future_cancel, its scope, a shutdown that cancels).
 * False outside tasks. Cheap: poll it in long loops.
 */
WEFT_API bool weft_cancelled(void);

/* weft_task_label: the running task's label, or NULL outside a task or
 * when it has none. */
WEFT_API const char *weft_task_label(void);

/* ------------------------------------------------------------------------ */
/* map: lazy, ordered, bounded                                               */

typedef struct weft_map weft_map_t;

/*
 * Produces the next input: set *arg and return true, or return false at the
 * end of the input (called from the thread calling weft_map_next only).
 */
typedef bool (*weft_map_input_fn)(void *ctx, void **arg);

/*
 * weft_executor_map: start applying fn to each input that next yields,
 * with at most window tasks in flight (window 0: twice the executor's
 * workers). Inputs are pulled lazily as results are consumed, so an
 * endless input works and memory stays bounded. opts as for submit (may be
 * NULL; scope is not allowed). Returns WEFT_OK with *out, WEFT_EINVAL,
 * WEFT_ESHUTDOWN, WEFT_ENOMEM.
 */
WEFT_API WEFT_NODISCARD int
weft_executor_map(weft_executor_t *ex, weft_task_fn fn, weft_map_input_fn next,
                  void *ctx, size_t window, const weft_task_opts_t *opts,
                  weft_map_t **out);

/*
 * weft_map_next: wait for the next result in input order. WEFT_OK with
 * *result (ownership taken by the caller: the result destructor does not
 * run) and *future_code WEFT_OK; when that task failed, WEFT_OK with
 * *future_code its code (message in *error, borrowed until the next call,
 * may be NULL to ignore) and *result NULL. Returns WEFT_ECLOSED after the
 * last result, WEFT_ECANCELED when the caller is cancelled. When a submit
 * fails (WEFT_ESHUTDOWN, WEFT_ENOMEM...), the input item it carried is
 * lost and no more input is pulled: the results already in flight are
 * handed over first, then that error is returned once, then WEFT_ECLOSED.
 * Not thread-safe: one consumer per map.
 */
WEFT_API WEFT_NODISCARD int weft_map_next(weft_map_t *m, void **result,
                                          int *future_code, const char **error);

/* weft_map_destroy: cancel the tasks still in flight, wait for them, free m
 * (results not consumed are destroyed with the result destructor). */
WEFT_API void weft_map_destroy(weft_map_t *m);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_EXECUTOR_H */
