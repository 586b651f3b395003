/* SPDX-License-Identifier: MIT */
/*
 * The work-stealing pool's internals, shared by pool.c (workers, injector,
 * parking, shutdown), pool_lane.c (the blocking lane), pool_timer.c (timers)
 * and forkjoin.c (groups, parallel_for/reduce).
 */
#ifndef WEFT_POOL_IMPL_H
#define WEFT_POOL_IMPL_H

#include <weft/pool.h>
#include <weft/queue.h>
#include <weft/sync.h>
#include <weft/thread.h>

#include "deque.h"
#include "mutex_impl.h"
#include "executor_impl.h"

struct fj_group;

enum { FRAME_JOB = 0, FRAME_SPAWN = 1 };

/*
 * A unit of work on a worker's deque. Frames come from per-worker free lists
 * (no allocation once warm) and go back to the free list of whichever worker
 * ran them. iso is atomic because thieves' steal filters read it from frames
 * that may be recycled under them (see weft__deque_steal).
 */
typedef struct weft__frame {
    _Atomic uint32_t iso; /* isolation tag; 0: none */
    uint32_t kind;        /* FRAME_JOB or FRAME_SPAWN */
    union {
        weft__job_t job;
        struct {
            weft_spawn_fn fn;
            void *arg;
            struct fj_group *group;
        } spawn;
    } u;
    struct weft__frame *next; /* free list */
} weft__frame_t;

typedef struct weft__worker {
    weft__deque_t dq;
    struct weft__pool *pool;
    weft__frame_t *free; /* owner only */
    size_t nfree;
    uint64_t rng;
    uint32_t cur_iso; /* isolation tag of the frame being run */
    unsigned index;
    weft_thread_t *thread;
} weft__worker_t;

/* Blocking lane (pool_lane.c). */
typedef struct weft__lane {
    weft_queue_t *q;   /* of weft__job_t */
    weft_mutex_t lock; /* guards the thread table */
    weft_thread_t **threads;
    bool *exited;
    unsigned max, nthreads, seq;
    _Atomic uint32_t idle;    /* threads waiting for work */
    _Atomic uint64_t pending; /* submitted and not finished */
    weft_time_t idle_timeout;
} weft__lane_t;

/* Timers (pool_timer.c): a binary heap ordered by due time. */
typedef struct weft__timer {
    weft_time_t due;
    weft_future_t *fut;              /* the task (a reference) */
    struct weft__periodic *periodic; /* call_every, or NULL */
} weft__timer_t;

typedef struct weft__timers {
    weft_mutex_t lock;
    weft__timer_t *heap;
    size_t n, cap;
    _Atomic weft_time_t next_due; /* WEFT_FOREVER when empty */
    _Atomic uint32_t keeper;      /* a worker sleeps until next_due */
} weft__timers_t;

enum { POOL_RUNNING = 0, POOL_CLOSING = 1, POOL_STOPPING = 2 };

typedef struct weft__pool {
    weft_executor_t base;
    unsigned n;
    weft__worker_t *workers;
    weft_queue_t *inj;    /* of weft__job_t, from outside the pool */
    weft_queue_t *inj_hi; /* priority > 0 */
    WEFT__ALIGNED_CL _Atomic uint32_t nsearching;
    _Atomic uint32_t nidle;
    weft__ecount_t idle_ec;
    WEFT__ALIGNED_CL _Atomic uint32_t state; /* POOL_* */
    _Atomic bool cancelling;
    _Atomic uint32_t quiesce; /* bumped when a worker idles while closing */
    _Atomic uint64_t dropped; /* fire-and-forget jobs dropped by shutdown */
    _Atomic uint64_t wakes;   /* times a worker left its idle sleep */
    unsigned ndeques;         /* initialised deques (creation unwinding) */
    weft_mutex_t shut_lock;
    bool stopped;
    weft_mutex_t spare_lock; /* guards spare and overflow */
    weft__frame_t *spare;    /* frames no worker holds, in batches */
    /* Frames a group waiter set aside (not of its tree): any worker runs
     * them. A list, FIFO, unbounded (bounded in practice by the deques). */
    weft__frame_t *overflow_head, *overflow_tail;
    _Atomic size_t overflow_n;
    weft__lane_t lane;
    weft__timers_t timers;
} weft__pool_t;

/* The pool worker the calling thread is, or NULL. */
extern _Thread_local weft__worker_t *weft__self_worker;

static inline weft__worker_t *
weft__pool_self(void)
{
    return weft__self_worker;
}

/* A cheap identity of the calling thread: the address of one of its
 * thread-locals (unique among live threads). */
static inline uintptr_t
weft__thread_key(void)
{
    return (uintptr_t)&weft__self_worker;
}

/*
 * Frames. Each worker keeps a free list; surplus frames go to the pool's
 * spare list in batches and come back from it, and none is freed before
 * the pool is: a thief's steal filter may read a frame another thread has
 * just taken (see weft__deque_steal), so frame memory must stay valid.
 */
#define WEFT__FRAME_FREE_MAX 1024
#define WEFT__FRAME_BATCH 256

/* Slow paths: move a batch to / from the pool's spare list. */
weft__frame_t *weft__frame_refill(weft__worker_t *w);
void weft__frame_spill(weft__worker_t *w);

static inline weft__frame_t *
weft__frame_get(weft__worker_t *w)
{
    weft__frame_t *f = w->free;
    if (WEFT__LIKELY(f != NULL)) {
        w->free = f->next;
        w->nfree--;
        return f;
    }
    return weft__frame_refill(w);
}

static inline void
weft__frame_put(weft__worker_t *w, weft__frame_t *f)
{
    f->next = w->free;
    w->free = f;
    if (WEFT__UNLIKELY(++w->nfree > WEFT__FRAME_FREE_MAX)) {
        weft__frame_spill(w);
    }
}

/* Run one frame taken from a deque on worker w. */
void weft__frame_run(weft__worker_t *w, weft__frame_t *f);

/* Push a frame on w's deque and wake an idle worker if none is searching.
 * False when the deque could not grow (the frame is not queued). */
static inline bool
weft__pool_push_local(weft__worker_t *w, weft__frame_t *f)
{
    if (WEFT__UNLIKELY(!weft__deque_push(&w->dq, f))) {
        return false;
    }
    struct weft__pool *p = w->pool;
    /* Relaxed: a missed wake here strands nothing: the owner runs its own
     * deque, and it wakes a sleeper before it blocks (park hook). */
    if (atomic_load_explicit(&p->idle_ec.waiters, memory_order_relaxed) != 0 &&
        atomic_load_explicit(&p->nsearching, memory_order_relaxed) == 0) {
        weft__ecount_notify(&p->idle_ec, 1);
    }
    return true;
}

/* Wake one idle worker unless one is already searching (strict: no lost
 * wake-up; pairs with the seq_cst fence in the idle path). */
void weft__pool_wake_one(weft__pool_t *p);

/*
 * Put job on q (an injector or the lane's queue) under policy: REJECT and
 * CALLER_RUNS try once (WEFT_EAGAIN when full: a CALLER_RUNS caller then
 * runs the job itself); BLOCK waits for room until deadline, calling
 * on_full (may be NULL) once first. A closed queue gives WEFT_ESHUTDOWN.
 */
int weft__pool_put(weft__pool_t *p, weft_queue_t *q, const weft__job_t *job,
                   weft_submit_policy_t policy, weft_time_t deadline,
                   void (*on_full)(weft__pool_t *p));

/* Queue job from outside the workers (injector), with policy. */
int weft__pool_inject(weft__pool_t *p, const weft__job_t *job, bool priority,
                      weft_submit_policy_t policy, weft_time_t deadline);

/* Steal a frame for w from another worker (filter as weft__deque_steal).
 * NULL when nothing was found after one sweep. */
weft__frame_t *weft__pool_steal(weft__worker_t *w,
                                bool (*filter)(void *x, void *ctx), void *ctx);

/* Live gauges of a pool, for observability (snapshots, no lock). */
typedef struct weft__pool_gauges {
    unsigned workers;      /* CPU workers */
    unsigned idle;         /* parked with nothing to do */
    unsigned searching;    /* awake, looking for work */
    size_t queued;         /* jobs in the injectors */
    size_t deque_frames;   /* frames on the workers' deques */
    unsigned lane_threads; /* blocking-lane threads alive */
    unsigned lane_idle;    /* of which waiting for work */
    size_t lane_queued;    /* jobs queued for the lane */
} weft__pool_gauges_t;

/* Fill g for pool ex (false when ex is not a pool). Any thread. */
bool weft__pool_gauges(const weft_executor_t *ex, weft__pool_gauges_t *g);

/* Hand a frame to any worker through the pool's overflow list. */
void weft__pool_overflow_push(weft__pool_t *p, weft__frame_t *f);

/* Whether a queued job must run even when shutdown cancels pending work
 * (a fork-join child: its group waits for it). */
bool weft__fj_job_must_run(const weft__job_t *job);

/* Run a spawned child (forkjoin.c). */
void weft__fj_run_spawn(weft__worker_t *w, weft__frame_t *f);

extern const weft__executor_ops_t weft__pool_ops;

/* Whether ex is a thread pool. */
static inline bool
weft__is_pool(const weft_executor_t *ex)
{
    return ex != NULL && ex->ops == &weft__pool_ops;
}

/* The pool whose blocking-lane thread calls it, or NULL. */
weft__pool_t *weft__lane_current(void);

/* Blocking lane. */
int weft__lane_init(weft__pool_t *p, const weft_pool_opts_t *o);
int weft__lane_submit(weft__pool_t *p, const weft__job_t *job,
                      weft_submit_policy_t policy, weft_time_t deadline);
void weft__lane_close(weft__pool_t *p, bool cancel_pending);
bool weft__lane_quiet(weft__pool_t *p);
void weft__lane_fini(weft__pool_t *p);

/* Timers. */
int weft__timers_init(weft__pool_t *p);
/* Fire due timers (any thread of the pool); returns the next due time. */
weft_time_t weft__timers_fire(weft__pool_t *p);
void weft__timers_cancel_all(weft__pool_t *p);
void weft__timers_fini(weft__pool_t *p);

#endif /* WEFT_POOL_IMPL_H */
