/* SPDX-License-Identifier: MIT */
/*
 * Timers of the pool: call_later and call_every. A binary heap under a
 * mutex, ordered by due time; next_due mirrors its top so workers can
 * check it without the lock. No thread polls: one idle worker (the keeper)
 * sleeps until next_due; adding an earlier timer wakes the sleepers so one
 * of them takes the new deadline. Due timers are queued on the injector
 * (or run by the firing worker when the injector is full).
 */
#include <string.h>

#include "pool_impl.h"

/* call_every's state: shared by the series' runs, freed at its end. */
typedef struct weft__periodic {
    weft_future_t *outer; /* what the caller holds: finishes at the end */
    weft_task_fn fn;
    void *arg;
    weft_time_t period;
    weft__pool_t *pool;
    weft_task_opts_t opts;
} weft__periodic_t;

static void
heap_swap(weft__timer_t *h, size_t a, size_t b)
{
    weft__timer_t t = h[a];
    h[a] = h[b];
    h[b] = t;
}

static void
heap_up(weft__timer_t *h, size_t i)
{
    while (i > 0 && h[(i - 1) / 2].due > h[i].due) {
        heap_swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void
heap_down(weft__timer_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && h[l].due < h[m].due) {
            m = l;
        }
        if (r < n && h[r].due < h[m].due) {
            m = r;
        }
        if (m == i) {
            return;
        }
        heap_swap(h, i, m);
        i = m;
    }
}

static void
publish_next(weft__timers_t *t)
{
    /* Release: pairs with the acquire load in the idle path. */
    atomic_store_explicit(&t->next_due, t->n ? t->heap[0].due : WEFT_FOREVER,
                          memory_order_release);
}

static int
timer_add(weft__pool_t *p, weft_time_t due, weft_future_t *fut,
          weft__periodic_t *per)
{
    weft__timers_t *t = &p->timers;
    weft__mutex_lock_nocancel(&t->lock);
    if (atomic_load_explicit(&p->state, memory_order_acquire) != POOL_RUNNING) {
        weft_mutex_unlock(&t->lock);
        return WEFT_ESHUTDOWN;
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        weft__timer_t *h = weft__realloc(t->heap, cap * sizeof(*h));
        if (h == NULL) {
            weft_mutex_unlock(&t->lock);
            return WEFT_ENOMEM;
        }
        t->heap = h;
        t->cap = cap;
    }
    t->heap[t->n] = (weft__timer_t){due, fut, per};
    heap_up(t->heap, t->n++);
    bool earliest = t->heap[0].fut == fut && t->heap[0].due == due;
    publish_next(t);
    weft_mutex_unlock(&t->lock);
    if (earliest) {
        /* The keeper sleeps for a later deadline: wake the sleepers, one
         * becomes keeper of the new one. Rare (earlier timer only). */
        weft__ecount_wake(&p->idle_ec, INT32_MAX);
    }
    return WEFT_OK;
}

static int periodic_arm(weft__periodic_t *per);

/* End of a series: the outer future finishes (if not yet) and per goes. */
static void
periodic_end(weft__periodic_t *per, int code, const char *why)
{
    if (code == WEFT_ECANCELED) {
        (void)weft__future_set_cancelled(per->outer);
    } else {
        char *msg = weft__strndup(why, 256);
        if (!weft__future_finish(per->outer, code, NULL, NULL, msg)) {
            weft__free(msg);
        }
    }
    weft_future_release(per->outer);
    weft__free(per);
}

/* A run dropped before it ran (shutdown, cancelled timers) ends the
 * series. A run that ran (DONE) has re-armed or ended it already. */
static void
periodic_dropped(weft_future_t *f, void *ctx)
{
    if (weft_future_state(f) == WEFT_FUTURE_CANCELLED) {
        periodic_end(ctx, WEFT_ECANCELED, NULL);
    }
}

/* The task a call_every run executes: the user's fn, then re-arm. */
static void *
periodic_run(void *arg)
{
    weft__periodic_t *per = arg;
    if (weft_future_done(per->outer)) {
        periodic_end(per, WEFT_ECANCELED, NULL); /* cancelled by the user */
        return NULL;
    }
    weft__task_ctx_t ctx;
    weft__task_enter(&ctx, per->opts.label);
    void *r = per->fn(per->arg);
    weft__task_leave(&ctx);
    if (r != NULL && per->opts.result_dtor != NULL) {
        per->opts.result_dtor(r);
    }
    if (ctx.code != WEFT_OK) {
        if (!weft__future_finish(per->outer, ctx.code, NULL, NULL, ctx.msg)) {
            weft__free(ctx.msg);
        }
        periodic_end(per, ctx.code, NULL);
        return NULL;
    }
    (void)periodic_arm(per);
    return NULL;
}

/* Schedule the next run; on failure the series ends (per is consumed). */
static int
periodic_arm(weft__periodic_t *per)
{
    weft_future_t *f = weft__future_alloc(1);
    if (f == NULL) {
        periodic_end(per, WEFT_ENOMEM, "call_every: out of memory");
        return WEFT_ENOMEM;
    }
    f->fn = periodic_run;
    f->arg = per;
    f->label = per->opts.label;
    f->flags = per->opts.blocking ? WEFT__TASK_BLOCKING : 0u;
    if (weft_future_on_done(f, periodic_dropped, per) != WEFT_OK) {
        weft_future_release(f);
        periodic_end(per, WEFT_ENOMEM, "call_every: out of memory");
        return WEFT_ENOMEM;
    }
    int rc = timer_add(per->pool, weft_deadline_in(per->period), f, per);
    if (rc != WEFT_OK) {
        (void)weft__future_set_cancelled(f); /* periodic_dropped ends it */
        weft_future_release(f);
    }
    return rc;
}

/* Queue a due timer's task. */
static void
dispatch(weft__pool_t *p, weft__timer_t *tm)
{
    weft__job_t job = {tm->fut->fn, tm->fut->arg, tm->fut, 0, 0};
    if (weft_future_done(tm->fut)) {
        weft_future_release(tm->fut); /* cancelled while waiting */
        return;
    }
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.blocking = (tm->fut->flags & WEFT__TASK_BLOCKING) != 0;
    int rc = o.blocking
                 ? weft__lane_submit(p, &job, WEFT_SUBMIT_REJECT, WEFT_FOREVER)
                 : weft__pool_inject(p, &job, false, WEFT_SUBMIT_REJECT,
                                     WEFT_FOREVER);
    if (rc == WEFT_EAGAIN) {
        weft__job_run(&job); /* queue full: run it here, late but run */
    } else if (rc != WEFT_OK) {
        weft__job_cancel(&job);
    }
}

weft_time_t
weft__timers_fire(weft__pool_t *p)
{
    weft__timers_t *t = &p->timers;
    for (;;) {
        weft__mutex_lock_nocancel(&t->lock);
        weft_time_t now = weft_now();
        if (t->n == 0 || t->heap[0].due > now) {
            weft_time_t next = t->n ? t->heap[0].due : WEFT_FOREVER;
            weft_mutex_unlock(&t->lock);
            return next;
        }
        weft__timer_t tm = t->heap[0];
        t->heap[0] = t->heap[--t->n];
        heap_down(t->heap, t->n, 0);
        publish_next(t);
        weft_mutex_unlock(&t->lock);
        dispatch(p, &tm);
    }
}

void
weft__timers_cancel_all(weft__pool_t *p)
{
    weft__timers_t *t = &p->timers;
    weft__mutex_lock_nocancel(&t->lock);
    weft__timer_t *h = t->heap;
    size_t n = t->n;
    t->heap = NULL;
    t->n = t->cap = 0;
    publish_next(t);
    weft_mutex_unlock(&t->lock);
    for (size_t i = 0; i < n; i++) {
        (void)weft__future_set_cancelled(h[i].fut);
        weft_future_release(h[i].fut);
    }
    weft__free(h);
}

int
weft__timers_init(weft__pool_t *p)
{
    weft_mutex_init(&p->timers.lock);
    atomic_init(&p->timers.next_due, WEFT_FOREVER);
    return WEFT_OK;
}

void
weft__timers_fini(weft__pool_t *p)
{
    weft__timers_cancel_all(p);
    weft_mutex_fini(&p->timers.lock);
}

static int
check_timer_args(weft_executor_t *ex, weft_time_t t, weft_task_fn fn,
                 const weft_task_opts_t *opts)
{
    if (!weft__is_pool(ex) || fn == NULL || t < 0 ||
        (opts != NULL && opts->scope != NULL)) {
        return WEFT_EINVAL;
    }
    return WEFT_OK;
}

int
weft_pool_call_later(weft_executor_t *ex, weft_time_t delay, weft_task_fn fn,
                     void *arg, const weft_task_opts_t *opts,
                     weft_future_t **out)
{
    int rc = check_timer_args(ex, delay, fn, opts);
    if (rc != WEFT_OK) {
        return rc;
    }
    weft_future_t *f = weft__future_alloc(2);
    if (f == NULL) {
        return WEFT_ENOMEM;
    }
    f->fn = fn;
    f->arg = arg;
    if (opts != NULL) {
        f->label = opts->label;
        f->dtor = opts->result_dtor;
        f->flags = opts->blocking ? WEFT__TASK_BLOCKING : 0u;
    }
    rc = timer_add((weft__pool_t *)ex, weft_deadline_in(delay), f, NULL);
    if (rc != WEFT_OK) {
        weft_future_release(f);
        weft_future_release(f);
        return rc;
    }
    if (out != NULL) {
        *out = f;
    } else {
        weft_future_release(f);
    }
    return WEFT_OK;
}

int
weft_pool_call_every(weft_executor_t *ex, weft_time_t period, weft_task_fn fn,
                     void *arg, const weft_task_opts_t *opts,
                     weft_future_t **out)
{
    int rc = check_timer_args(ex, period, fn, opts);
    if (rc != WEFT_OK || period == 0 || out == NULL) {
        return rc != WEFT_OK ? rc : WEFT_EINVAL;
    }
    weft__periodic_t *per = weft__calloc(1, sizeof(*per));
    weft_future_t *outer = weft__future_alloc(2);
    if (per == NULL || outer == NULL) {
        weft__free(per);
        weft_future_release(outer);
        return WEFT_ENOMEM;
    }
    weft_task_opts_t defaults = WEFT_TASK_OPTS_INIT;
    *per = (weft__periodic_t){outer,
                              fn,
                              arg,
                              period,
                              (weft__pool_t *)ex,
                              opts != NULL ? *opts : defaults};
    rc = periodic_arm(per); /* on failure per is gone, outer finished */
    if (rc != WEFT_OK) {
        weft_future_release(outer);
        return rc;
    }
    *out = outer;
    return WEFT_OK;
}
