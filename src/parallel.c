/* SPDX-License-Identifier: MIT */
/*
 * weft_pool_run, parallel_for and parallel_reduce, built on task groups:
 * ranges are split in halves recursively (one spawn per split, the other
 * half continued inline), down to the grain.
 */
#include <string.h>

#include "pool_impl.h"

#define ACC_MAX 256

/* ------------------------------------------------------------ pool_run */

typedef struct run_call {
    weft_spawn_fn fn;
    void *arg;
    int rc;
} run_call_t;

/* Runs on a worker: fn, then the failure it reported (if any). */
static void *
run_on_worker(void *arg)
{
    run_call_t *c = arg;
    weft__task_ctx_t ctx;
    weft__task_enter(&ctx, NULL);
    c->fn(c->arg);
    weft__task_leave(&ctx);
    c->rc = ctx.code;
    weft__free(ctx.msg);
    return NULL;
}

int
weft_pool_run(weft_executor_t *ex, weft_spawn_fn fn, void *arg)
{
    if (!weft__is_pool(ex) || fn == NULL) {
        return WEFT_EINVAL;
    }
    run_call_t c = {fn, arg, WEFT_OK};
    weft__worker_t *w = weft__pool_self();
    if (w != NULL && &w->pool->base == ex) {
        (void)run_on_worker(&c);
        return c.rc;
    }
    weft_future_t *f = NULL;
    int rc = weft_executor_submit(ex, run_on_worker, &c, NULL, &f);
    if (rc != WEFT_OK) {
        return rc;
    }
    /* c lives on this stack: wait even if this thread is cancelled. */
    weft__cancel_t *outer = weft__cancel_enter(NULL);
    rc = weft_future_wait(f);
    weft__cancel_enter(outer);
    if (rc == WEFT_OK) {
        rc = weft_future_code(f);
    }
    weft_future_release(f);
    return rc == WEFT_OK ? c.rc : rc;
}

/* ---------------------------------------------------------- parallel_for */

typedef struct pfor {
    weft_range_fn body;
    void *ctx;
    size_t grain;
} pfor_t;

typedef struct pfor_part {
    const pfor_t *pf;
    size_t lo, hi;
} pfor_part_t;

static void
pfor_run(void *arg)
{
    pfor_part_t *part = arg;
    const pfor_t *pf = part->pf;
    size_t lo = part->lo, hi = part->hi;
    if (hi - lo <= pf->grain) {
        pf->body(lo, hi, pf->ctx);
        return;
    }
    weft_group_t g;
    if (weft_group_init(&g, NULL) != WEFT_OK) {
        pf->body(lo, hi, pf->ctx);
        return;
    }
    size_t mid = lo + (hi - lo) / 2;
    pfor_part_t right = {pf, mid, hi};
    if (weft_group_spawn(&g, pfor_run, &right) != WEFT_OK) {
        pfor_run(&right); /* no memory for a frame: do it here */
    }
    pfor_part_t left = {pf, lo, mid};
    pfor_run(&left);
    int rc = weft_group_wait(&g);
    if (rc != WEFT_OK) {
        (void)weft_task_fail(rc, "parallel_for: a body failed");
    }
}

static size_t
auto_grain(weft_executor_t *ex, size_t n, size_t grain)
{
    if (grain != 0) {
        return grain;
    }
    size_t chunks = (size_t)weft_pool_workers(ex) * 8;
    size_t g = n / (chunks ? chunks : 1);
    return g ? g : 1;
}

int
weft_parallel_for(weft_executor_t *ex, size_t lo, size_t hi, size_t grain,
                  weft_range_fn body, void *ctx)
{
    if (!weft__is_pool(ex) || body == NULL || lo > hi) {
        return WEFT_EINVAL;
    }
    if (lo == hi) {
        return WEFT_OK;
    }
    pfor_t pf = {body, ctx, auto_grain(ex, hi - lo, grain)};
    pfor_part_t all = {&pf, lo, hi};
    return weft_pool_run(ex, pfor_run, &all);
}

/* ------------------------------------------------------- parallel_reduce */

typedef struct pred {
    weft_reduce_fn body;
    weft_merge_fn merge;
    void *ctx;
    size_t grain, acc_size;
    const unsigned char *identity;
} pred_t;

typedef struct pred_part {
    const pred_t *pr;
    size_t lo, hi;
    unsigned char *acc; /* starts as the identity */
} pred_part_t;

static void
pred_run(void *arg)
{
    pred_part_t *part = arg;
    const pred_t *pr = part->pr;
    if (part->hi - part->lo <= pr->grain) {
        pr->body(part->lo, part->hi, part->acc, pr->ctx);
        return;
    }
    weft_group_t g;
    if (weft_group_init(&g, NULL) != WEFT_OK) {
        pr->body(part->lo, part->hi, part->acc, pr->ctx);
        return;
    }
    size_t mid = part->lo + (part->hi - part->lo) / 2;
    _Alignas(16) unsigned char racc[ACC_MAX];
    memcpy(racc, pr->identity, pr->acc_size);
    pred_part_t right = {pr, mid, part->hi, racc};
    if (weft_group_spawn(&g, pred_run, &right) != WEFT_OK) {
        pred_run(&right);
    }
    pred_part_t left = {pr, part->lo, mid, part->acc};
    pred_run(&left);
    int rc = weft_group_wait(&g);
    if (rc != WEFT_OK) {
        (void)weft_task_fail(rc, "parallel_reduce: a body failed");
        return;
    }
    pr->merge(part->acc, racc, pr->ctx); /* left then right: index order */
}

int
weft_parallel_reduce(weft_executor_t *ex, size_t lo, size_t hi, size_t grain,
                     void *result, size_t acc_size, weft_reduce_fn body,
                     weft_merge_fn merge, void *ctx)
{
    if (!weft__is_pool(ex) || body == NULL || merge == NULL || result == NULL ||
        acc_size == 0 || acc_size > ACC_MAX || lo > hi) {
        return WEFT_EINVAL;
    }
    if (lo == hi) {
        return WEFT_OK;
    }
    _Alignas(16) unsigned char identity[ACC_MAX];
    memcpy(identity, result, acc_size);
    pred_t pr = {body,     merge,   ctx, auto_grain(ex, hi - lo, grain),
                 acc_size, identity};
    pred_part_t all = {&pr, lo, hi, result};
    return weft_pool_run(ex, pred_run, &all);
}
