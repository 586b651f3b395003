/* SPDX-License-Identifier: MIT */
/*
 * The blocking lane: an elastic, capped set of threads for tasks marked
 * blocking (file and network I/O, sleeps), so they never occupy the CPU
 * workers. A submit starts a thread when none is idle and the cap allows;
 * a thread idle for opts.blocking_idle retires. Retired threads are joined
 * by the next thread start or at destroy.
 */
#include <stdio.h>

#include "pool_impl.h"

static _Thread_local weft__pool_t *lane_pool;

weft__pool_t *
weft__lane_current(void)
{
    return lane_pool;
}

typedef struct lane_start {
    weft__pool_t *pool;
    unsigned slot;
} lane_start_t;

/* Take the next job, or retire after the idle timeout. */
static void *
lane_main(void *arg)
{
    lane_start_t st = *(lane_start_t *)arg;
    weft__free(arg);
    weft__pool_t *p = st.pool;
    weft__lane_t *l = &p->lane;
    lane_pool = p;
    for (;;) {
        weft__job_t job;
        atomic_fetch_add_explicit(&l->idle, 1, memory_order_seq_cst);
        int rc =
            weft_queue_get_until(l->q, &job, weft_deadline_in(l->idle_timeout));
        atomic_fetch_sub_explicit(&l->idle, 1, memory_order_seq_cst);
        if (rc == WEFT_OK) {
            if (atomic_load_explicit(&p->cancelling, memory_order_relaxed)) {
                weft__job_cancel(&job);
            } else {
                weft__job_run_on(p, &job, -1);
            }
            if (atomic_fetch_sub_explicit(&l->pending, 1,
                                          memory_order_seq_cst) == 1 &&
                atomic_load_explicit(&p->state, memory_order_seq_cst) !=
                    POOL_RUNNING) {
                atomic_fetch_add_explicit(&p->quiesce, 1, memory_order_seq_cst);
                weft__unpark(&p->quiesce, INT32_MAX);
            }
            continue;
        }
        /* Timed out or closed: retire, unless work slipped in. */
        weft__mutex_lock_nocancel(&l->lock);
        if (rc == WEFT_ETIMEDOUT && !weft_queue_empty(l->q)) {
            weft_mutex_unlock(&l->lock);
            continue;
        }
        l->exited[st.slot] = true;
        l->nthreads--;
        weft_mutex_unlock(&l->lock);
        break;
    }
    lane_pool = NULL;
    atomic_fetch_add_explicit(&p->quiesce, 1, memory_order_seq_cst);
    weft__unpark(&p->quiesce, INT32_MAX);
    return NULL;
}

/* Join threads that retired; lane lock held. */
static void
reap(weft__lane_t *l)
{
    for (unsigned i = 0; i < l->max; i++) {
        if (l->threads[i] != NULL && l->exited[i]) {
            int rc = weft_thread_join(l->threads[i], NULL);
            WEFT_ASSERT(rc == WEFT_OK, "joining a lane thread: %s",
                        weft_strerror(rc));
            l->threads[i] = NULL;
            l->exited[i] = false;
        }
    }
}

/* More jobs queued than threads waiting for them (a thread handed a job
 * counts as waiting until it wakes, so a burst needs the queue's size, not
 * just "nobody idle"). */
static bool
lane_short(weft__lane_t *l)
{
    return weft_queue_size(l->q) >
           atomic_load_explicit(&l->idle, memory_order_seq_cst);
}

/* Start one more lane thread if the queue outgrows the idle threads and
 * the cap allows. */
static void
maybe_grow(weft__pool_t *p)
{
    weft__lane_t *l = &p->lane;
    if (!lane_short(l)) {
        return;
    }
    weft__mutex_lock_nocancel(&l->lock);
    reap(l);
    if (l->nthreads < l->max && lane_short(l)) {
        unsigned slot = 0;
        while (l->threads[slot] != NULL) {
            slot++;
        }
        lane_start_t *st = weft__malloc(sizeof(*st));
        if (st != NULL) {
            st->pool = p;
            st->slot = slot;
            char name[32];
            snprintf(name, sizeof(name), "%s/io%u", p->base.name, l->seq++);
            weft_thread_opts_t to = WEFT_THREAD_OPTS_INIT;
            to.name = name;
            if (weft_thread_create(&to, lane_main, st, &l->threads[slot]) ==
                WEFT_OK) {
                l->nthreads++;
            } else {
                weft__free(st);
                l->threads[slot] = NULL;
            }
        }
    }
    bool none = l->nthreads == 0;
    weft_mutex_unlock(&l->lock);
    if (none) {
        weft_log(WEFT_LOG_ERROR, "pool %s: cannot start a blocking-lane thread",
                 p->base.name);
    }
}

int
weft__lane_submit(weft__pool_t *p, const weft__job_t *job,
                  weft_submit_policy_t policy, weft_time_t deadline)
{
    weft__lane_t *l = &p->lane;
    /* Counted before it can be taken: pending == 0 means quiet. */
    atomic_fetch_add_explicit(&l->pending, 1, memory_order_seq_cst);
    /* A full queue needs consumers to drain it: grow before waiting. */
    int rc = weft__pool_put(p, l->q, job, policy, deadline, maybe_grow);
    if (rc != WEFT_OK) {
        atomic_fetch_sub_explicit(&l->pending, 1, memory_order_seq_cst);
        if (rc == WEFT_EAGAIN && policy == WEFT_SUBMIT_CALLER_RUNS) {
            weft__job_run(job);
            return WEFT_OK;
        }
        return rc;
    }
    maybe_grow(p);
    return WEFT_OK;
}

int
weft__lane_init(weft__pool_t *p, const weft_pool_opts_t *o)
{
    weft__lane_t *l = &p->lane;
    weft_mutex_init(&l->lock);
    l->max = o->blocking_max != 0 ? o->blocking_max : 64;
    l->idle_timeout = o->blocking_idle != 0 ? o->blocking_idle : 10 * WEFT_SEC;
    l->threads = weft__calloc(l->max, sizeof(weft_thread_t *));
    l->exited = weft__calloc(l->max, sizeof(*l->exited));
    if (l->threads == NULL || l->exited == NULL) {
        return WEFT_ENOMEM;
    }
    weft_queue_opts_t qo = WEFT_QUEUE_OPTS_INIT;
    qo.capacity =
        o->blocking_queue_capacity != 0 ? o->blocking_queue_capacity : 1024;
    qo.elem_size = sizeof(weft__job_t);
    qo.name = "pool-blocking-lane";
    return weft_queue_create(&qo, &l->q);
}

void
weft__lane_close(weft__pool_t *p, bool cancel_pending)
{
    weft__lane_t *l = &p->lane;
    if (l->q == NULL) {
        return;
    }
    weft_queue_close(l->q);
    if (cancel_pending) {
        weft__job_t job;
        while (weft_queue_try_get(l->q, &job) == WEFT_OK) {
            weft__job_cancel(&job);
            atomic_fetch_sub_explicit(&l->pending, 1, memory_order_seq_cst);
        }
    }
}

bool
weft__lane_quiet(weft__pool_t *p)
{
    return atomic_load_explicit(&p->lane.pending, memory_order_seq_cst) == 0;
}

void
weft__lane_fini(weft__pool_t *p)
{
    weft__lane_t *l = &p->lane;
    if (l->q != NULL) {
        weft_queue_close(l->q); /* idle threads see ECLOSED and retire */
    }
    if (l->threads != NULL) {
        for (unsigned i = 0; i < l->max; i++) {
            if (l->threads[i] != NULL) {
                int rc = weft_thread_join(l->threads[i], NULL);
                WEFT_ASSERT(rc == WEFT_OK, "joining a lane thread: %s",
                            weft_strerror(rc));
            }
        }
    }
    weft__free(l->threads);
    weft__free(l->exited);
    weft_queue_destroy(l->q);
    weft_mutex_fini(&l->lock);
}
