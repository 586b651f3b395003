/* SPDX-License-Identifier: MIT */
/*
 * The executor interface: submit/shutdown dispatch, the running task's
 * context (failure, label, cancellation), running a job and finishing its
 * future, and the inline executor.
 */
#include <stdio.h>
#include <string.h>

#include "executor_impl.h"
#include "plat.h"
#include "probe.h"

_Thread_local weft__task_ctx_t *weft__current_task;
#define current_task weft__current_task

#define FAIL_MSG_MAX 1024

void
weft__task_enter(weft__task_ctx_t *ctx, const char *label)
{
    ctx->label = label;
    ctx->code = WEFT_OK;
    ctx->msg = NULL;
    ctx->outer = current_task;
    current_task = ctx;
}

void
weft__task_leave(weft__task_ctx_t *ctx)
{
    WEFT_ASSERT(current_task == ctx, "task contexts left out of order");
    current_task = ctx->outer;
}

void *
weft_task_fail(int code, const char *fmt, ...)
{
    char buf[FAIL_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = fmt != NULL ? vsnprintf(buf, sizeof(buf), fmt, ap) : 0;
    va_end(ap);
    if (n < 0) {
        buf[0] = '\0';
    }
    if (code >= 0) {
        code = WEFT_EINVAL;
    }
    weft__task_ctx_t *t = current_task;
    if (t == NULL) {
        weft_log(WEFT_LOG_WARN, "weft_task_fail outside a task: %s: %s",
                 weft_errname(code), buf);
        return NULL;
    }
    if (t->code == WEFT_OK) { /* the first failure wins */
        t->code = code;
        t->msg = weft__strndup(buf, FAIL_MSG_MAX);
    }
    return NULL;
}

bool
weft_cancelled(void)
{
    return weft__cancel_is_fired(weft__cancel_current());
}

const char *
weft_task_label(void)
{
    return current_task != NULL ? current_task->label : NULL;
}

static int
run_fire_and_forget(const weft__job_t *job)
{
    weft__task_ctx_t ctx;
    weft__task_enter(&ctx, NULL);
    weft__cancel_t *outer = weft__cancel_enter(NULL);
    (void)job->fn(job->arg);
    weft__cancel_enter(outer);
    weft__task_leave(&ctx);
    if (ctx.code != WEFT_OK) {
        weft_log(WEFT_LOG_WARN, "task failed (no future to report it): %s: %s",
                 weft_errname(ctx.code), ctx.msg != NULL ? ctx.msg : "");
        weft__free(ctx.msg);
    }
    return ctx.code;
}

int
weft__job_run(const weft__job_t *job)
{
    weft_future_t *f = job->fut;
    if (f == NULL) {
        return run_fire_and_forget(job);
    }
    if (f->start_by != WEFT_FOREVER && weft_now() > f->start_by) {
        (void)weft__future_set_cancelled(f);
        weft_future_release(f);
        return WEFT_ECANCELED;
    }
    if (!weft__future_claim(f)) {
        weft_future_release(f); /* cancelled, or run inline by a waiter */
        return WEFT_ECANCELED;
    }
    weft__task_ctx_t ctx;
    weft__task_enter(&ctx, f->label);
    weft__cancel_t *outer = weft__cancel_enter(&f->token);
    /* Published for weft__cancel_running (a shutdown that cancels). */
    weft__thread_rec_t *r = weft__self_rec();
    weft__cancel_t *outer_running = atomic_exchange_explicit(
        &r->running_token, &f->token, memory_order_seq_cst);
    void *value = f->fn(f->arg);
    /* seq_cst store, then seq_cst load of cancel_busy: pairs with the
     * canceller's store of cancel_busy and load of running_token, so the
     * future is not released while a canceller still uses its token. */
    atomic_store_explicit(&r->running_token, outer_running,
                          memory_order_seq_cst);
    while (atomic_load_explicit(&r->cancel_busy, memory_order_seq_cst) != 0) {
        weft__plat_thread_yield();
    }
    weft__cancel_enter(outer);
    weft__task_leave(&ctx);
    if (ctx.code != WEFT_OK) {
        if (value != NULL && f->dtor != NULL) {
            f->dtor(value); /* a failed task's value has no taker */
        }
        (void)weft__future_finish(f, ctx.code, NULL, NULL, ctx.msg);
    } else {
        (void)weft__future_finish(f, WEFT_OK, value, f->dtor, NULL);
    }
    weft_future_release(f);
    return ctx.code;
}

static void
cancel_if_ours(weft__thread_rec_t *r, void *ctx)
{
    const void *exec = *(const void *const *)ctx;
    if (atomic_load_explicit(&r->task_exec, memory_order_relaxed) != exec) {
        return;
    }
    atomic_store_explicit(&r->cancel_busy, 1, memory_order_seq_cst);
    weft__cancel_t *tok =
        atomic_load_explicit(&r->running_token, memory_order_seq_cst);
    if (tok != NULL) {
        weft__cancel_fire(tok);
    }
    atomic_store_explicit(&r->cancel_busy, 0, memory_order_release);
}

void
weft__cancel_running(const void *exec)
{
    weft__rec_foreach(cancel_if_ours, (void *)&exec);
}

void
weft__job_stamp(weft__job_t *job)
{
    /* The thread's last id: its weft id above bit 40, a count below. */
    static _Thread_local uint64_t last;
    if (WEFT__PROBING(WEFT__PROBE_TASK | WEFT__PROBE_COUNT)) {
        if (WEFT__UNLIKELY(last == 0)) {
            last = (uint64_t)weft__self_id() << 40;
        }
        uint64_t id = ++last;
        job->id = id;
        /* Only timed tasks read the clock (probe.h: the timing sample). */
        if (weft__probe_task_timed(weft__probe_sampled(id))) {
            job->queued_at = weft_now();
        }
    }
}

/* The sample decision for a job (see probe.h): by its submit id, or for a
 * job without one by a count of the running thread's. */
static bool
job_sampled(const weft__job_t *job)
{
    static _Thread_local uint64_t unstamped;
    return weft__probe_sampled(job->id != 0 ? job->id : ++unstamped);
}

static weft__count_kind_t
end_count(int code)
{
    return code == WEFT_OK          ? WEFT__CNT_OK
           : code == WEFT_ECANCELED ? WEFT__CNT_CANCEL
                                    : WEFT__CNT_FAIL;
}

void
weft__job_run_on(const void *exec, const weft__job_t *job, int worker)
{
    weft__thread_rec_t *r = weft__self_rec();
    const char *label = job->fut != NULL ? job->fut->label : NULL;
    uint64_t id = job->id != 0 ? job->id : (uint64_t)(uintptr_t)job->fut;
    /* One load for the whole task: the begin and end probes agree. */
    uint32_t mask =
        atomic_load_explicit(&weft__probe_mask, memory_order_relaxed);
    bool probing =
        WEFT__UNLIKELY((mask & (WEFT__PROBE_TASK | WEFT__PROBE_COUNT)) != 0);
    bool sampled = false, dispatch = false;
    _Atomic uint64_t *counts = NULL; /* valid while exec lives */
    /* Relaxed: snapshots for dumps, written by this thread only. */
    const char *outer_label =
        atomic_load_explicit(&r->task_label, memory_order_relaxed);
    uint64_t outer_id = atomic_load_explicit(&r->task_id, memory_order_relaxed);
    atomic_store_explicit(&r->task_label, label, memory_order_relaxed);
    atomic_store_explicit(&r->task_id, id, memory_order_relaxed);
    atomic_store_explicit(&r->task_exec, exec, memory_order_relaxed);
    if (probing) {
        sampled = job_sampled(job);
        bool timed = sampled || (mask & WEFT__PROBE_TIMING) != 0;
        atomic_store_explicit(&r->task_since, timed ? weft_now() : 0,
                              memory_order_relaxed);
        if ((mask & WEFT__PROBE_COUNT) != 0) {
            counts = weft__counts_of(exec);
            weft__count_in(counts, WEFT__CNT_START);
        }
        /* The counting sink alone wants only the sampled tasks. */
        dispatch = (mask & WEFT__PROBE_TASK) != 0 || sampled;
        if (dispatch) {
            weft__probe_task_begin(exec, id, label, job->queued_at, worker,
                                   sampled);
        }
    }
    int code = weft__job_run(job);
    if (probing) {
        weft__count_in(counts, end_count(code));
        if (dispatch) {
            weft__probe_task_end(exec, id, code, worker, sampled);
        }
    }
    atomic_store_explicit(&r->task_label, outer_label, memory_order_relaxed);
    atomic_store_explicit(&r->task_id, outer_id, memory_order_relaxed);
}

void
weft__job_cancel(const weft__job_t *job)
{
    if (job->fut != NULL) {
        (void)weft__future_set_cancelled(job->fut);
        weft_future_release(job->fut);
    }
}

void
weft__executor_init(weft_executor_t *ex, const weft__executor_ops_t *ops,
                    const char *name, weft_submit_policy_t policy)
{
    ex->ops = ops;
    snprintf(ex->name, sizeof(ex->name), "%s", name != NULL ? name : "");
    ex->policy = policy == WEFT_SUBMIT_DEFAULT ? WEFT_SUBMIT_BLOCK : policy;
}

/* A future for one task: two references (the caller's, the queue's). */
static int
make_task_future(const weft__job_t *job, const weft_task_opts_t *o,
                 weft_future_t **out)
{
    weft_future_t *f = weft__future_alloc(2);
    if (f == NULL) {
        return WEFT_ENOMEM;
    }
    f->fn = job->fn;
    f->arg = job->arg;
    f->label = o->label;
    f->start_by = o->start_deadline;
    f->dtor = o->result_dtor; /* handed to weft__future_finish */
    f->flags = (o->blocking ? WEFT__TASK_BLOCKING : 0u) |
               (o->priority > 0 ? WEFT__TASK_PRIORITY : 0u);
    *out = f;
    return WEFT_OK;
}

int
weft_executor_submit(weft_executor_t *ex, weft_task_fn fn, void *arg,
                     const weft_task_opts_t *opts, weft_future_t **out)
{
    static const weft_task_opts_t defaults = WEFT_TASK_OPTS_INIT;
    const weft_task_opts_t *o = opts != NULL ? opts : &defaults;
    if (ex == NULL || fn == NULL || (unsigned)o->policy > 3u) {
        return WEFT_EINVAL;
    }
    weft_submit_policy_t policy =
        o->policy == WEFT_SUBMIT_DEFAULT ? ex->policy : o->policy;
    weft__job_t job = {fn, arg, NULL, 0, 0};
    weft__job_stamp(&job);
    bool want_future = out != NULL || o->scope != NULL ||
                       o->start_deadline != WEFT_FOREVER ||
                       o->result_dtor != NULL;
    if (!want_future) {
        return ex->ops->submit(ex, &job, o, policy);
    }
    int rc = make_task_future(&job, o, &job.fut);
    if (rc != WEFT_OK) {
        return rc;
    }
    if (o->scope != NULL) {
        rc = weft__scope_add(o->scope, job.fut);
        if (rc != WEFT_OK) {
            (void)weft__future_set_cancelled(job.fut);
            goto fail;
        }
    }
    /* Two references: the caller's (kept alive across the run) and the
     * queue's (dropped by whoever runs or cancels the job). */
    weft_future_t *f = job.fut;
    rc = ex->ops->submit(ex, &job, o, policy);
    if (rc != WEFT_OK) {
        (void)weft__future_set_cancelled(f); /* the scope must not wait */
        goto fail;
    }
    if (out != NULL) {
        *out = f;
    } else {
        weft_future_release(f);
    }
    return WEFT_OK;
fail:
    weft_future_release(job.fut);
    weft_future_release(job.fut);
    return rc;
}

int
weft_executor_shutdown(weft_executor_t *ex, bool wait, bool cancel_pending)
{
    WEFT_ASSERT(ex != NULL, "weft_executor_shutdown: NULL executor");
    if (wait && ex->ops->is_own_thread(ex)) {
        return WEFT_EDEADLK;
    }
    return ex->ops->shutdown(ex, wait, cancel_pending);
}

void
weft_executor_destroy(weft_executor_t *ex)
{
    if (ex == NULL) {
        return;
    }
    WEFT_ASSERT(!ex->ops->is_own_thread(ex),
                "weft_executor_destroy called from one of %s's own threads",
                ex->name);
    /* Uncancellable: destroy must not leave threads running. */
    weft__cancel_t *outer = weft__cancel_enter(NULL);
    (void)ex->ops->shutdown(ex, true, false);
    weft__cancel_enter(outer);
    ex->ops->destroy(ex);
}

const char *
weft_executor_name(const weft_executor_t *ex)
{
    return ex != NULL ? ex->name : "";
}
