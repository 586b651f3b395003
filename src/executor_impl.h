/* SPDX-License-Identifier: MIT */
/*
 * The executor interface as implementations see it: a table of operations
 * behind weft_executor_t, the per-thread "current task" record that
 * weft_task_fail, weft_cancelled and weft_task_label read, and the helpers
 * every executor uses to run a task and finish its future.
 */
#ifndef WEFT_EXECUTOR_IMPL_H
#define WEFT_EXECUTOR_IMPL_H

#include <weft/executor.h>

#include "future_impl.h"

/* One task handed to an executor: fut is NULL for fire-and-forget. */
typedef struct weft__job {
    weft_task_fn fn;
    void *arg;
    weft_future_t *fut; /* holds the executor's reference */
    /* Set at submit only while task probes are on (else 0): the task's
     * id for traces and, when the task is timed (probe.h), when it was
     * queued, for queue-wait histograms. */
    uint64_t id;
    weft_time_t queued_at;
} weft__job_t;

/* Fire the cancellation token of every future task of exec running now
 * (shutdown with cancel_pending). */
void weft__cancel_running(const void *exec);

/* Stamp a job at submit (id, queue time) when task probes are on. */
void weft__job_stamp(weft__job_t *job);

typedef struct weft__executor_ops {
    /* Queue job according to policy (never WEFT_SUBMIT_DEFAULT here) and
     * opts; on failure nothing is kept. */
    int (*submit)(weft_executor_t *ex, const weft__job_t *job,
                  const weft_task_opts_t *opts, weft_submit_policy_t policy);
    int (*shutdown)(weft_executor_t *ex, bool wait, bool cancel_pending);
    void (*destroy)(weft_executor_t *ex); /* after shutdown(wait) */
    unsigned (*workers)(const weft_executor_t *ex);
    /* True when the calling thread is one of ex's own threads. */
    bool (*is_own_thread)(const weft_executor_t *ex);
} weft__executor_ops_t;

struct weft_executor {
    const weft__executor_ops_t *ops;
    char name[16];
    weft_submit_policy_t policy; /* default for submits */
};

/* What the running task may report; lives on the runner's stack. */
typedef struct weft__task_ctx {
    const char *label;
    int code;  /* failure code, WEFT_OK when none */
    char *msg; /* failure message (heap), or NULL */
    struct weft__task_ctx *outer;
} weft__task_ctx_t;

/* The innermost task context of the calling thread, or NULL. */
extern _Thread_local weft__task_ctx_t *weft__current_task;

/* Enter/leave a task context on the calling thread (nesting allowed). */
void weft__task_enter(weft__task_ctx_t *ctx, const char *label);
void weft__task_leave(weft__task_ctx_t *ctx);

/*
 * weft__job_run: run a job on the calling thread: a fire-and-forget job
 * runs fn (a failure is logged); a job with a future is claimed first
 * (skipped when cancelled or already claimed, or finished CANCELLED when
 * its start deadline has passed), runs under the future's cancellation
 * token, and finishes the future. Drops the job's future reference.
 * Returns the outcome: WEFT_OK, the failure code, or WEFT_ECANCELED when
 * the job did not run.
 */
int weft__job_run(const weft__job_t *job);

/* weft__job_run for a job of executor exec run by pool worker `worker`
 * (-1: not a pool worker): also feeds the task probes and the thread's
 * record (what it runs, since when). */
void weft__job_run_on(const void *exec, const weft__job_t *job, int worker);

/* weft__job_cancel: drop a queued job without running it: its future (if
 * any) becomes CANCELLED and the reference is dropped. */
void weft__job_cancel(const weft__job_t *job);

/*
 * weft__scope_add: make f (a task future not yet queued) a member of s: the
 * scope takes a reference and watches it. WEFT_OK, WEFT_ECANCELED when s is
 * cancelled, WEFT_ENOMEM.
 */
int weft__scope_add(weft_scope_t *s, weft_future_t *f);

/* Common part of every executor's creation. */
void weft__executor_init(weft_executor_t *ex, const weft__executor_ops_t *ops,
                         const char *name, weft_submit_policy_t policy);

#endif /* WEFT_EXECUTOR_IMPL_H */
