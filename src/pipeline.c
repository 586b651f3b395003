/* SPDX-License-Identifier: MIT */
/*
 * weft_pipeline_*: building a pipeline, starting it, waiting for it,
 * cancelling it from outside, its statistics, and freeing it. The engine
 * that moves items is pipeline_run.c.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <weft/thread.h>

#include "future_impl.h"
#include "mutex_impl.h"
#include "pipeline_impl.h"
#include "pool_impl.h"
#include "probe.h"

#define CL 64u

static void
copy_name(char *dst, const char *src, const char *fallback)
{
    snprintf(dst, WEFT__PIPE_NAME_MAX + 1, "%s",
             src != NULL && src[0] != '\0' ? src : fallback);
}

int
weft_pipeline_create(const weft_pipeline_opts_t *opts, weft_pipeline_t **out)
{
    if (opts == NULL || out == NULL || opts->executor == NULL ||
        !weft__is_pool(opts->executor)) {
        return WEFT_EINVAL;
    }
    weft_pipeline_t *p = weft__calloc(1, sizeof(*p));
    if (p == NULL) {
        return WEFT_ENOMEM;
    }
    copy_name(p->name, opts->name, "pipeline");
    p->ex = opts->executor;
    p->workers = weft_pool_workers(opts->executor);
    size_t n = opts->max_in_flight;
    if (n == 0) {
        n = 4u * (size_t)p->workers;
        n = n < 8 ? 8 : n;
    }
    p->max_in_flight = n;
    p->low_water = n / 2;
    p->emit_max = opts->emit_max != 0 ? opts->emit_max : 65536u;
    if (p->emit_max > UINT32_MAX / 2) {
        p->emit_max = UINT32_MAX / 2;
    }
    p->source_blocking = opts->source_blocking;
    weft_mutex_init(&p->fail_mu);
    *out = p;
    return WEFT_OK;
}

static bool
building(const weft_pipeline_t *p)
{
    return atomic_load_explicit(&p->state, memory_order_acquire) ==
           WEFT__PIPE_BUILDING;
}

int
weft_pipeline_source(weft_pipeline_t *p, weft_source_fn fn, void *ctx)
{
    if (p == NULL || fn == NULL || !building(p) || p->source != NULL) {
        return WEFT_EINVAL;
    }
    p->source = fn;
    p->source_ctx = ctx;
    return WEFT_OK;
}

int
weft_pipeline_stage(weft_pipeline_t *p, const weft_stage_t *stage)
{
    if (p == NULL || stage == NULL || !building(p) ||
        p->nstages >= WEFT__PIPE_STAGES_MAX) {
        return WEFT_EINVAL;
    }
    const weft_stage_t *c = stage;
    int kinds = (c->fn != NULL) + (c->flat != NULL) + (c->batch_fn != NULL);
    if (kinds != 1 || (c->batch_fn != NULL && c->batch_max == 0) ||
        (c->ordered && c->parallel != 1)) {
        return WEFT_EINVAL;
    }
    /* Cache-line aligned: each gate's lock and state on lines of their
     * own. Grown by copy (stages are few, and added before start). */
    weft__stage_rt_t *v = weft__malloc_aligned((p->nstages + 1u) * sizeof(*v));
    if (v == NULL) {
        return WEFT_ENOMEM;
    }
    if (p->nstages > 0) {
        memcpy(v, p->stages, p->nstages * sizeof(*v));
    }
    weft__free_aligned(p->stages);
    p->stages = v;
    weft__stage_rt_t *st = &v[p->nstages];
    memset(st, 0, sizeof(*st));
    st->cfg = *c;
    char fallback[16];
    snprintf(fallback, sizeof(fallback), "stage%u", p->nstages + 1u);
    copy_name(st->name, c->name, fallback);
    st->cfg.name = NULL; /* borrowed: use st->name */
    st->kind = c->fn != NULL     ? WEFT__STAGE_MAP
               : c->flat != NULL ? WEFT__STAGE_FLAT
                                 : WEFT__STAGE_BATCH;
    st->limit = c->parallel == WEFT_STAGE_PARALLEL ? UINT_MAX : c->parallel;
    st->gated = c->ordered || c->parallel != WEFT_STAGE_PARALLEL;
    weft_mutex_init(&st->mu);
    p->nstages++;
    return WEFT_OK;
}

static void
stages_fini(weft_pipeline_t *p)
{
    for (unsigned s = 0; s < p->nstages; s++) {
        weft__free(p->stages[s].ring);
        weft_mutex_fini(&p->stages[s].mu);
    }
    weft__free_aligned(p->stages);
}

/* Undo a prepare that failed half-way (start may be tried again). */
static void
unprepare(weft_pipeline_t *p)
{
    for (unsigned s = 0; s < p->nstages; s++) {
        weft__free(p->stages[s].ring);
        p->stages[s].ring = NULL;
    }
    weft__free(p->tokens);
    weft__free_aligned(p->cells);
    weft__free_aligned(p->free_stacks);
    weft__free(p->worker_tokens);
    p->tokens = NULL;
    p->cells = NULL;
    p->free_stacks = NULL;
    p->worker_tokens = NULL;
    p->src_cache = NULL;
}

/* Everything start needs besides the stages themselves. */
static int
prepare(weft_pipeline_t *p)
{
    size_t n = p->max_in_flight;
    bool order_after = false;
    for (unsigned s = p->nstages; s-- > 0;) {
        weft__stage_rt_t *st = &p->stages[s];
        st->order_after = order_after;
        order_after = order_after || st->cfg.ordered;
        /* A batch stage folds waiting tokens into one call when it has a
         * buffer, unless that could mix up the order a later stage needs
         * (an unordered stage sees tokens out of order). */
        st->merge = st->kind == WEFT__STAGE_BATCH && st->gated &&
                    st->cfg.batch_max > 1 &&
                    (st->cfg.ordered || !st->order_after);
        if (st->cfg.ordered) {
            st->ring = weft__calloc(n, sizeof(weft__token_t *));
            if (st->ring == NULL) {
                return WEFT_ENOMEM;
            }
        }
    }
    p->low_water = n / 2;
    p->tokens = weft__calloc(n, sizeof(*p->tokens));
    p->nslots = (size_t)p->workers + 1u;
    size_t row = (size_t)(p->nstages + 1u) * sizeof(weft__stage_cell_t);
    p->cell_stride = (row + CL - 1u) / CL * CL;
    p->cells = weft__malloc_aligned(p->nslots * p->cell_stride);
    p->worker_tokens =
        weft__calloc(p->workers > 0 ? p->workers : 1u, sizeof(weft__cancel_t));
    p->free_stacks = weft__malloc_aligned(p->nslots * CL);
    if (p->tokens == NULL || p->cells == NULL || p->worker_tokens == NULL ||
        p->free_stacks == NULL) {
        return WEFT_ENOMEM;
    }
    memset(p->cells, 0, p->nslots * p->cell_stride);
    for (size_t k = 0; k < p->nslots; k++) {
        atomic_init(weft__pipe_free_stack(p, k), NULL);
        atomic_init(&weft__pipe_slot_of(p, k)->inside, 0);
    }
    for (size_t i = n; i-- > 0;) {
        weft__token_t *t = &p->tokens[i];
        t->items = &t->one;
        t->cap = 1;
        t->pipe = p;
        t->next = p->src_cache;
        p->src_cache = t;
    }
    return weft_promise_create(&p->fut);
}

int
weft_pipeline_start(weft_pipeline_t *p, weft_future_t **out)
{
    if (p == NULL || !building(p) || p->source == NULL || p->nstages == 0) {
        return WEFT_EINVAL;
    }
    int rc = prepare(p);
    if (rc != WEFT_OK) {
        unprepare(p);
        return rc;
    }
    rc = weft_promise_start(p->fut); /* a new promise: cannot fail */
    WEFT_ASSERT(rc == WEFT_OK, "weft_pipeline_start: promise start: %d", rc);
    p->started_at = weft_now();
    atomic_store_explicit(&p->state, WEFT__PIPE_RUNNING, memory_order_release);
    weft__probe_object_event(WEFT__OBJ_PIPELINE, p, p->name, true);
    /* The caller's reference first: once launched, the run may end (and
     * p be destroyed by a waiter) at any time. */
    weft_future_t *mine = out != NULL ? weft_future_retain(p->fut) : NULL;
    rc = weft__pipe_launch(p);
    if (rc != WEFT_OK) {
        if (mine != NULL) {
            weft_future_release(mine);
        }
        weft__probe_object_event(WEFT__OBJ_PIPELINE, p, p->name, false);
        int frc = weft_promise_set_failure(p->fut, rc, "%s: cannot start: %s",
                                           p->name, weft_strerror(rc));
        WEFT_ASSERT(frc == WEFT_OK, "weft_pipeline_start: %d", frc);
        atomic_store_explicit(&p->state, WEFT__PIPE_FINISHED,
                              memory_order_release);
        return rc;
    }
    if (out != NULL) {
        *out = mine;
    }
    return WEFT_OK;
}

/* Wait for the end, whatever happens to the calling task. */
static void
wait_end(weft_pipeline_t *p)
{
    weft__cancel_t *outer = weft__cancel_enter(NULL);
    int rc = weft_future_wait(p->fut);
    WEFT_ASSERT(rc == WEFT_OK, "pipeline %s: wait: %d", p->name, rc);
    weft__cancel_enter(outer);
}

int
weft_pipeline_run(weft_pipeline_t *p)
{
    weft__worker_t *w = weft__pool_self();
    if (p != NULL && p->workers == 1 && w != NULL &&
        (const void *)w->pool == (const void *)p->ex) {
        return WEFT_EDEADLK; /* the only worker would wait for itself */
    }
    int rc = weft_pipeline_start(p, NULL);
    if (rc != WEFT_OK) {
        return rc;
    }
    rc = weft_future_wait(p->fut);
    if (rc == WEFT_ECANCELED) {
        /* The waiting thread's own task was cancelled: stop the pipeline
         * and still wait for it (nothing may run after we return). */
        weft_pipeline_cancel(p);
        wait_end(p);
    }
    return weft_future_code(p->fut);
}

void
weft_pipeline_cancel(weft_pipeline_t *p)
{
    if (p == NULL) {
        return;
    }
    if (building(p)) {
        /* Not started: the run will stop at once. */
        atomic_store_explicit(&p->cancelled, 1, memory_order_release);
        return;
    }
    size_t slot = weft__pipe_slot(p);
    weft__pipe_enter(p, slot);
    /* seq_cst, after the enter: a run that ended before it is seen as
     * ended (and left alone); one that ends later waits for our leave. */
    if (atomic_load_explicit(&p->state, memory_order_seq_cst) !=
        WEFT__PIPE_FINISHED) {
        weft__pipe_cancel(p, true, WEFT_ECANCELED, NULL, 0, NULL);
    }
    weft__pipe_leave(p, slot);
}

const char *
weft_pipeline_error(const weft_pipeline_t *p)
{
    if (p == NULL) {
        return "";
    }
    weft_mutex_t *mu = (weft_mutex_t *)&p->fail_mu;
    weft__mutex_lock_nocancel(mu);
    const char *m = p->fail_msg != NULL ? p->fail_msg : "";
    weft_mutex_unlock(mu);
    return m;
}

/* ------------------------------------------------------------------ stats */

static void
sum_cells(const weft_pipeline_t *p, unsigned s, weft_stage_stats_t *o)
{
    if (p->cells == NULL) {
        return;
    }
    for (size_t k = 0; k < p->nslots; k++) {
        const weft__stage_cell_t *c = weft__pipe_cell(p, k, s);
        o->items_in += atomic_load_explicit(&c->in, memory_order_relaxed);
        o->items_out += atomic_load_explicit(&c->out, memory_order_relaxed);
        o->dropped += atomic_load_explicit(&c->dropped, memory_order_relaxed);
        o->filtered += atomic_load_explicit(&c->filtered, memory_order_relaxed);
        o->busy_ns += atomic_load_explicit(&c->busy_ns, memory_order_relaxed);
        o->wait_ns += atomic_load_explicit(&c->wait_ns, memory_order_relaxed);
    }
}

int
weft_pipeline_stats(const weft_pipeline_t *p, weft_pipeline_stats_t *out)
{
    if (p == NULL || out == NULL) {
        return WEFT_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    size_t n = (size_t)p->nstages + 1u;
    out->stage = weft__calloc(n, sizeof(*out->stage));
    if (out->stage == NULL) {
        return WEFT_ENOMEM;
    }
    out->nstages = n;
    snprintf(out->name, sizeof(out->name), "%s", p->name);
    int state = atomic_load_explicit(&p->state, memory_order_acquire);
    out->finished = state == WEFT__PIPE_FINISHED;
    out->in_flight = atomic_load_explicit(&p->in_flight, memory_order_relaxed);
    out->max_in_flight = p->max_in_flight;
    weft_time_t end =
        out->finished ? atomic_load_explicit(&p->ended_at, memory_order_relaxed)
                      : weft_now();
    if (state != WEFT__PIPE_BUILDING && end > p->started_at) {
        out->elapsed_ns = (uint64_t)(end - p->started_at);
    }
    weft_stage_stats_t *src = &out->stage[0];
    snprintf(src->name, sizeof(src->name), "source");
    src->parallel = 1;
    sum_cells(p, 0, src);
    src->items_in = src->items_out;
    double best = -1.0;
    size_t fullest = 0, most = 0;
    for (unsigned s = 0; s <= p->nstages; s++) {
        weft_stage_stats_t *o = &out->stage[s];
        if (s > 0) {
            const weft__stage_rt_t *st = &p->stages[s - 1];
            snprintf(o->name, sizeof(o->name), "%s", st->name);
            o->parallel = st->cfg.parallel;
            o->ordered = st->cfg.ordered;
            sum_cells(p, s, o);
            o->buffered =
                atomic_load_explicit(&st->buffered, memory_order_relaxed);
            o->running =
                atomic_load_explicit(&st->running_view, memory_order_relaxed);
        }
        /* Usable parallelism: the stage's limit, at most the workers. */
        double width = o->parallel == 0 || o->parallel > p->workers
                           ? (double)(p->workers > 0 ? p->workers : 1u)
                           : (double)o->parallel;
        if (out->elapsed_ns > 0) {
            o->busy_share =
                (double)o->busy_ns / ((double)out->elapsed_ns * width);
            o->busy_share = o->busy_share > 1.0 ? 1.0 : o->busy_share;
        }
        if (o->busy_share > best) {
            best = o->busy_share;
            out->bottleneck = s;
        }
        if (o->buffered > most) {
            most = o->buffered;
            fullest = s;
        }
    }
    if (best <= 0.0) {
        out->bottleneck = fullest; /* no timings: the fullest buffer */
    }
    return WEFT_OK;
}

void
weft_pipeline_stats_free(weft_pipeline_stats_t *s)
{
    if (s != NULL) {
        weft__free(s->stage);
        s->stage = NULL;
        s->nstages = 0;
    }
}

/* ---------------------------------------------------------------- destroy */

void
weft_pipeline_destroy(weft_pipeline_t *p)
{
    if (p == NULL) {
        return;
    }
    if (!building(p) && p->fut != NULL) {
        wait_end(p);
        /* Threads that ended the run may still be on their way out. */
        for (size_t k = 0; k < p->nslots; k++) {
            while (atomic_load_explicit(&weft__pipe_slot_of(p, k)->inside,
                                        memory_order_acquire) != 0) {
                weft_thread_yield();
            }
        }
        weft__probe_object_event(WEFT__OBJ_PIPELINE, p, p->name, false);
    }
    if (p->source_fini != NULL) {
        p->source_fini(p);
    }
    if (p->tokens != NULL) {
        for (size_t i = 0; i < p->max_in_flight; i++) {
            if (p->tokens[i].cap > 1) {
                weft__free(p->tokens[i].items);
            }
        }
    }
    weft__free(p->tokens);
    weft__free_aligned(p->cells);
    weft__free_aligned(p->free_stacks);
    weft__free(p->worker_tokens);
    stages_fini(p);
    weft_mutex_fini(&p->fail_mu);
    weft__free(p->fail_msg);
    if (p->fut != NULL) {
        weft_future_release(p->fut);
    }
    weft__free(p);
}
