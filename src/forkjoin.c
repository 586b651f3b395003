/* SPDX-License-Identifier: MIT */
/*
 * Fork-join: task groups (spawn/wait), weft_pool_run, parallel_for and
 * parallel_reduce.
 *
 * DESIGN
 * A group lives in the caller's memory. Spawning from a worker of its pool
 * takes a frame from the worker's free list and pushes it on the worker's
 * deque: no allocation, no future. Counting avoids read-modify-writes on the
 * common path: the thread that initialised the group (its owner, the only
 * one that waits) counts its own spawns and the children it runs itself in
 * plain fields; other threads count in atomics. remote_done is also the
 * futex word the owner sleeps on: it counts in steps of 2, bit 0 says "the
 * owner sleeps". A thread finishing a child does one fetch_add and, if the
 * bit was set, a futex wake on the address; it touches the group no further
 * (the owner may return and pop the group's stack frame at once; a futex
 * wake on stale memory is harmless).
 * Isolation: every frame carries the isolation tag of the fork-join tree it
 * belongs to (a fresh tag for a group made outside any spawned child, the
 * running child's tag otherwise). A waiting worker runs only frames with
 * its group's tag: from its own deque (newest first; a foreign frame is put
 * back) and stolen with a filter. So a task waiting while it holds a lock
 * cannot pick up an unrelated task that wants that lock.
 */
#include <string.h>

#include <weft/thread.h>

#include "mutex_impl.h"
#include "pool_impl.h"
#include "probe.h"

typedef struct fj_group {
    weft__pool_t *pool;
    uintptr_t owner; /* weft__thread_key of the initialising thread */
    uint32_t iso;
    uint64_t local_spawned; /* owner only */
    uint64_t local_done;    /* owner only */
    _Atomic uint64_t remote_spawned;
    _Atomic uint32_t remote_done; /* 2 per child; bit 0: owner sleeps */
    _Atomic int first_err;
} fj_group_t;

_Static_assert(sizeof(fj_group_t) <= sizeof(weft_group_t),
               "weft_group_t too small");
_Static_assert(_Alignof(fj_group_t) <= _Alignof(weft_group_t),
               "weft_group_t under-aligned");

/*
 * A spawn runs its child at once, inline, when the spawning worker already
 * has this many frames queued (thieves have enough to take; deeper spawns
 * would only add overhead). Tunable at build time; a huge value disables it.
 */
#ifndef SPAWN_INLINE_QUEUED
#define SPAWN_INLINE_QUEUED 4
#endif

/* How long a group waiter stays active before it sleeps. */
#define GROUP_SPIN_NS (50 * WEFT_USEC)

static _Atomic uint32_t next_iso = 1;

static uint32_t
fresh_iso(void)
{
    uint32_t t;
    do { /* relaxed: only uniqueness matters */
        t = atomic_fetch_add_explicit(&next_iso, 1, memory_order_relaxed);
    } while (t == 0);
    return t;
}

int
weft_group_init(weft_group_t *g, weft_executor_t *pool)
{
    WEFT_ASSERT(g != NULL, "weft_group_init: NULL group");
    weft__worker_t *w = weft__pool_self();
    if (pool == NULL && w != NULL) {
        pool = &w->pool->base;
    }
    if (!weft__is_pool(pool)) {
        return WEFT_EINVAL;
    }
    fj_group_t *x = (fj_group_t *)g;
    x->pool = (weft__pool_t *)pool;
    x->local_spawned = 0;
    x->local_done = 0;
    atomic_init(&x->remote_spawned, 0);
    atomic_init(&x->remote_done, 0);
    atomic_init(&x->first_err, WEFT_OK);
    x->owner = weft__thread_key();
    x->iso = (w != NULL && w->pool == x->pool && w->cur_iso != 0) ? w->cur_iso
                                                                  : fresh_iso();
    return WEFT_OK;
}

static void
record_failure(fj_group_t *g, int code)
{
    int expected = WEFT_OK;
    /* Relaxed: read by the owner after the children's completion, which
     * the remote_done release/acquire pair orders. */
    (void)atomic_compare_exchange_strong_explicit(&g->first_err, &expected,
                                                  code, memory_order_relaxed,
                                                  memory_order_relaxed);
}

/* Run a child's body under its own task context (weft__task_enter/leave,
 * inlined: the spawn fast path); its failure goes to the group. */
static inline void
run_child(fj_group_t *g, weft_spawn_fn fn, void *arg)
{
    weft__task_ctx_t ctx = {NULL, WEFT_OK, NULL, weft__current_task};
    weft__current_task = &ctx;
    fn(arg);
    weft__current_task = ctx.outer;
    if (WEFT__UNLIKELY(ctx.code != WEFT_OK)) {
        record_failure(g, ctx.code);
        weft__free(ctx.msg);
    }
}

static void
child_done(fj_group_t *g)
{
    if (weft__thread_key() == g->owner) {
        g->local_done++;
        return;
    }
    /* Release: publishes the child's effects (and any remote spawns it
     * made) to the owner's acquire load in pending(). */
    uint32_t old =
        atomic_fetch_add_explicit(&g->remote_done, 2, memory_order_acq_rel);
    if (old & 1u) {
        weft__unpark(&g->remote_done, 1);
    }
}

/* Run a spawned child: called by any worker that took its frame. */
void
weft__fj_run_spawn(weft__worker_t *w, weft__frame_t *f)
{
    fj_group_t *g = f->u.spawn.group;
    weft_spawn_fn fn = f->u.spawn.fn;
    void *arg = f->u.spawn.arg;
    uint32_t saved = w->cur_iso;
    w->cur_iso = atomic_load_explicit(&f->iso, memory_order_relaxed);
    weft__frame_put(w, f);
    /* weft__task_enter/leave, inlined: this is the spawn fast path. */
    run_child(g, fn, arg);
    w->cur_iso = saved;
    child_done(g);
}

/* A child spawned from outside the pool travels as a job. */
typedef struct outside_child {
    fj_group_t *g;
    weft_spawn_fn fn;
    void *arg;
} outside_child_t;

static void *
run_outside_child(void *arg)
{
    outside_child_t c = *(outside_child_t *)arg;
    weft__free(arg);
    weft__worker_t *w = weft__pool_self();
    uint32_t saved = w != NULL ? w->cur_iso : 0;
    if (w != NULL) {
        w->cur_iso = c.g->iso;
    }
    run_child(c.g, c.fn, c.arg);
    if (w != NULL) {
        w->cur_iso = saved;
    }
    child_done(c.g);
    return NULL;
}

bool
weft__fj_job_must_run(const weft__job_t *job)
{
    return job->fn == run_outside_child;
}

static void
count_spawn(fj_group_t *g)
{
    if (weft__thread_key() == g->owner) {
        g->local_spawned++;
    } else {
        atomic_fetch_add_explicit(&g->remote_spawned, 1, memory_order_relaxed);
    }
}

static int
spawn_outside(fj_group_t *g, weft_spawn_fn fn, void *arg)
{
    outside_child_t *c = weft__malloc(sizeof(*c));
    if (c == NULL) {
        return WEFT_ENOMEM;
    }
    *c = (outside_child_t){g, fn, arg};
    weft__job_t job = {run_outside_child, c, NULL, 0, 0};
    count_spawn(g);
    int rc = weft__pool_inject(g->pool, &job, false, g->pool->base.policy,
                               WEFT_FOREVER);
    if (rc != WEFT_OK) {
        weft__free(c);
        child_done(g); /* balances count_spawn, wakes nobody wrongly */
    }
    return rc;
}

int
weft_group_spawn(weft_group_t *gp, weft_spawn_fn fn, void *arg)
{
    fj_group_t *g = (fj_group_t *)gp;
    WEFT_ASSERT(g != NULL && fn != NULL, "weft_group_spawn: NULL argument");
    weft__worker_t *w = weft__pool_self();
    if (WEFT__UNLIKELY(w == NULL || w->pool != g->pool)) {
        return spawn_outside(g, fn, arg);
    }
    /* Spawn throttle: with plenty of queued work for thieves already, run
     * the child now (relaxed loads: a stale size only moves the cut). */
    int64_t queued = atomic_load_explicit(&w->dq.bottom, memory_order_relaxed) -
                     atomic_load_explicit(&w->dq.top, memory_order_relaxed);
    if (queued >= SPAWN_INLINE_QUEUED) {
        run_child(g, fn, arg);
        return WEFT_OK;
    }
    weft__frame_t *f = weft__frame_get(w);
    if (WEFT__UNLIKELY(f == NULL)) {
        return WEFT_ENOMEM;
    }
    atomic_store_explicit(&f->iso, g->iso, memory_order_relaxed);
    f->kind = FRAME_SPAWN;
    f->u.spawn.fn = fn;
    f->u.spawn.arg = arg;
    f->u.spawn.group = g;
    count_spawn(g);
    if (WEFT__UNLIKELY(!weft__pool_push_local(w, f))) {
        weft__frame_put(w, f);
        child_done(g);
        return WEFT_ENOMEM;
    }
    return WEFT_OK;
}

/* Children not finished yet (owner only). remote_done is read first: a
 * remote child's spawns happen before its completion. */
static uint32_t
pending(fj_group_t *g, uint32_t *word)
{
    uint32_t d = atomic_load_explicit(&g->remote_done, memory_order_acquire);
    uint64_t rs =
        atomic_load_explicit(&g->remote_spawned, memory_order_acquire);
    *word = d;
    return (uint32_t)((g->local_spawned + rs - g->local_done) * 2u) - (d & ~1u);
}

static bool
same_tree(void *x, void *ctx)
{
    const weft__frame_t *f = x;
    return atomic_load_explicit(&f->iso, memory_order_relaxed) ==
           *(const uint32_t *)ctx;
}

/* Run one frame of g's tree, if there is one. */
static bool
help(weft__worker_t *w, fj_group_t *g)
{
    weft__frame_t *f = weft__deque_pop(&w->dq);
    if (f != NULL) {
        if (same_tree(f, &g->iso)) {
            weft__frame_run(w, f);
            return true;
        }
        /* Not of this tree: isolation forbids running it here, and
         * putting it back would hide the group's own children beneath it.
         * Any other worker (or this one, after the wait) runs it. */
        weft__pool_overflow_push(w->pool, f);
        return true;
    }
    f = weft__pool_steal(w, same_tree, &g->iso);
    if (f != NULL) {
        weft__frame_run(w, f);
        return true;
    }
    return false;
}

/* The outcome of a finished group: its first failure, or the waiter's
 * cancellation. */
static inline int
group_result(fj_group_t *g)
{
    /* Read and reset: the group may be reused for another round. */
    int err =
        atomic_exchange_explicit(&g->first_err, WEFT_OK, memory_order_relaxed);
    if (err == WEFT_OK &&
        WEFT__UNLIKELY(weft__cancel_is_fired(weft__cancel_current()))) {
        err = WEFT_ECANCELED;
    }
    return err;
}

static WEFT__COLD int wait_slow(fj_group_t *g);

int
weft_group_wait(weft_group_t *gp)
{
    fj_group_t *g = (fj_group_t *)gp;
    WEFT_ASSERT(g != NULL && g->owner == weft__thread_key(),
                "weft_group_wait: only the thread that initialised the group "
                "may wait for it");
    uint32_t word;
    if (WEFT__LIKELY(pending(g, &word) == 0)) {
        return group_result(g); /* every child ran inline or here */
    }
    return wait_slow(g);
}

/* Children are still out: help with the group's tree, then sleep. */
static int
wait_slow(fj_group_t *g)
{
    weft__worker_t *w = weft__pool_self();
    if (w != NULL && w->pool != g->pool) {
        w = NULL;
    }
    /* Stay active a while (helping, or watching the count) before
     * sleeping: a stolen child usually finishes within microseconds, and a
     * futex round trip costs more than that. */
    unsigned spins = 0;
    weft_time_t spin_until = 0;
    for (;;) {
        uint32_t word;
        if (pending(g, &word) == 0) {
            break;
        }
        if (w != NULL && help(w, g)) {
            spins = 0;
            spin_until = 0;
            continue;
        }
        if (++spins % 64 != 0) {
            weft__cpu_relax();
            continue;
        }
        weft_time_t now = weft_now();
        if (spin_until == 0) {
            spin_until = now + GROUP_SPIN_NS;
        }
        if (now < spin_until) {
            weft_thread_yield();
            continue;
        }
        if (!(word & 1u) && !atomic_compare_exchange_weak_explicit(
                                &g->remote_done, &word, word | 1u,
                                memory_order_acq_rel, memory_order_acquire)) {
            continue;
        }
        if (pending(g, &word) == 0) {
            break;
        }
        /* Children are always awaited, also by a cancelled task. */
        weft__wait_begin(WEFT__WAIT_GROUP, g);
        (void)weft__park_nocancel(&g->remote_done, word | 1u, WEFT_FOREVER);
        weft__wait_end(WEFT__WAIT_GROUP, g, WEFT_OK);
        atomic_fetch_and_explicit(&g->remote_done, ~1u, memory_order_relaxed);
        spins = 0;
        spin_until = 0;
    }
    return group_result(g);
}
