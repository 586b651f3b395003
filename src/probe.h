/* SPDX-License-Identifier: MIT */
/*
 * Probes: the cheap hooks through which the lower layers (sync, queue,
 * future, executors) feed observability (metrics, traces, dumps, the
 * lock-order checker). A lower layer calls a probe macro; when no sink has
 * asked for that kind of event the cost is one relaxed load and a predicted
 * branch. Sinks (layer 7) attach with weft__probe_attach; no lower layer
 * includes an observability header.
 *
 * Besides the event probes, every thread keeps a record of what it is doing
 * (weft__self_rec): the task it runs and the object it waits on. Lower
 * layers fill it on their slow paths only (before parking), so it is always
 * on; dumps and the deadlock watchdog read it from other threads.
 */
#ifndef WEFT_PROBE_H
#define WEFT_PROBE_H

#include "internal.h"

/* Kinds of event a sink subscribes to (a mask). */
enum {
    WEFT__PROBE_TASK = 1u << 0,  /* every task's lifecycle; pool events */
    WEFT__PROBE_WAIT = 1u << 1,  /* blocking waits begin/end */
    WEFT__PROBE_LOCK = 1u << 2,  /* lock acquire/release */
    WEFT__PROBE_QUEUE = 1u << 3, /* queue puts and gets */
    WEFT__PROBE_SLICE = 1u << 4, /* task_begin/end for each pipeline stage
                                    call (traces) */
    /* With WEFT__PROBE_TASK: time every task (its submit and start stamps,
     * see weft__probe_task_timed), not only the sampled ones. */
    WEFT__PROBE_TIMING = 1u << 5,
    /* Exact per-thread task counts kept inline by the executor and pool
     * (weft__count: no call per task), pool events except submits, and
     * the begin and end of the sampled tasks only. One sink at most (it
     * provides the counters: the sink's counts callback). */
    WEFT__PROBE_COUNT = 1u << 6,
};

/* Task counts kept inline (WEFT__PROBE_COUNT), indexes of the counter
 * array the counting sink provides. */
typedef enum weft__count_kind {
    WEFT__CNT_SUBMIT = 0, /* queued to CPU workers */
    WEFT__CNT_START,      /* dispatched to run */
    WEFT__CNT_OK,         /* ended WEFT_OK */
    WEFT__CNT_FAIL,       /* ended with a failure code */
    WEFT__CNT_CANCEL,     /* ended WEFT_ECANCELED */
    WEFT__CNT_KINDS
} weft__count_kind_t;

/* What a thread waits on (weft__wait_begin). */
typedef enum weft__wait_kind {
    WEFT__WAIT_NONE = 0,
    WEFT__WAIT_MUTEX,
    WEFT__WAIT_RLOCK,
    WEFT__WAIT_SEM,
    WEFT__WAIT_EVENT,
    WEFT__WAIT_COND,
    WEFT__WAIT_BARRIER,
    WEFT__WAIT_ONCE,
    WEFT__WAIT_QUEUE_GET,
    WEFT__WAIT_QUEUE_PUT,
    WEFT__WAIT_FUTURE,
    WEFT__WAIT_GROUP,
    WEFT__WAIT_SCOPE,
    WEFT__WAIT_CQ, /* completion queue */
    WEFT__WAIT_SLEEP,
    WEFT__WAIT_JOIN,
    WEFT__WAIT_IDLE,   /* a pool worker with nothing to do */
    WEFT__WAIT_SELECT, /* weft_select over several queues */
    WEFT__WAIT_KINDS
} weft__wait_kind_t;

/* Pool events (pool_event probe). */
typedef enum weft__pool_ev {
    WEFT__POOL_SUBMIT = 0, /* a task was queued (WEFT__PROBE_SUBMIT) */
    WEFT__POOL_REJECT,     /* a submit failed because the queue was full */
    WEFT__POOL_STEAL,      /* a worker stole a frame */
    WEFT__POOL_PARK,       /* a worker went to sleep idle */
    WEFT__POOL_UNPARK,     /* a worker woke */
    WEFT__POOL_CANCEL,     /* a queued task was dropped or cancelled */
    /* A worker found no work and starts searching (then sleeping), and a
     * searching worker found work: its busy and idle spells. */
    WEFT__POOL_IDLE,
    WEFT__POOL_BUSY,
    WEFT__POOL_EVS
} weft__pool_ev_t;

/* Objects observability may list (object_event probe). */
typedef enum weft__obj_kind {
    WEFT__OBJ_POOL = 0,     /* a weft_executor_t thread pool */
    WEFT__OBJ_QUEUE = 1,    /* a weft_queue_t */
    WEFT__OBJ_PIPELINE = 2, /* a weft_pipeline_t (started) */
} weft__obj_kind_t;

/* Queue events (queue_event probe). */
typedef enum weft__queue_ev {
    WEFT__QUEUE_PUT = 0, /* n items went in */
    WEFT__QUEUE_GET,     /* n items came out */
    WEFT__QUEUE_CLOSE,
} weft__queue_ev_t;

/*
 * A sink's callbacks; any may be NULL. They run on the thread that hit the
 * probe, possibly inside a lock of the lower layer (lock probes run right
 * after the acquisition / before the release): they must be fast, must not
 * block and must not call back into weft except through other sinks' own
 * lock-free paths. exec is the executor (opaque here), worker its worker
 * index or -1.
 */
typedef struct weft__probe_sink {
    void (*pool_event)(const void *exec, weft__pool_ev_t ev, int worker);
    /* A task starts running; queued_at is its submit time (0 unknown).
     * sampled: the task is in the timing sample (weft__probe_task_timed);
     * when it is, or when WEFT__PROBE_TIMING is on, the thread record's
     * task_since holds its start time, else 0. */
    void (*task_begin)(const void *exec, uint64_t id, const char *label,
                       weft_time_t queued_at, int worker, bool sampled);
    /* It ended: code WEFT_OK, a failure code, or WEFT_ECANCELED; sampled
     * as at its begin. */
    void (*task_end)(const void *exec, uint64_t id, int code, int worker,
                     bool sampled);
    void (*wait_begin)(weft__wait_kind_t kind, const void *obj);
    void (*wait_end)(weft__wait_kind_t kind, const void *obj, int rc);
    /* site: the caller's return address (for reports). */
    void (*lock_acquired)(const void *lock, weft__wait_kind_t kind,
                          const void *site);
    void (*lock_released)(const void *lock, weft__wait_kind_t kind);
    void (*queue_event)(const void *queue, weft__queue_ev_t ev, size_t n);
    /* A pool or queue was created (created true; name borrowed for the
     * call) or is about to be destroyed (created false). Delivered to every
     * sink, whatever its mask. */
    void (*object_event)(weft__obj_kind_t kind, const void *obj,
                         const char *name, bool created);
    /* The counting sink (WEFT__PROBE_COUNT): the calling thread's counter
     * array for pool exec (WEFT__CNT_KINDS entries the thread alone
     * writes), or NULL not to count it. Called on a miss of the thread's
     * cache; the array must stay valid until the sink calls
     * weft__probe_counts_changed. */
    _Atomic uint64_t *(*counts)(const void *exec);
} weft__probe_sink_t;

/* The union of the attached sinks' masks. */
extern _Atomic uint32_t weft__probe_mask;

#define WEFT__PROBING(bit)                                                     \
    WEFT__UNLIKELY(                                                            \
        atomic_load_explicit(&weft__probe_mask, memory_order_relaxed) & (bit))

/*
 * Task timing sample. Clock reads are the main cost of task probes, so
 * tasks are timed (stamped at submit and start, and their end timed by the
 * sinks that want it) only in a sample: the task whose id has its low bits
 * under weft__probe_sample_mask all zero, i.e. one in (mask + 1) of each
 * submitting thread's tasks (ids count per thread, see weft__job_stamp);
 * tasks without a submit id (run inline, timers, fork-join children)
 * count by the running thread instead. Mask 0 samples every task. The
 * metrics sink sets it; WEFT__PROBE_TIMING (traces, dumps) times every
 * task whatever the mask, and the sample stays the same for the others.
 */
extern _Atomic uint64_t weft__probe_sample_mask;

void weft__probe_set_sample_mask(uint64_t mask);

/* Whether the task with this id (or running-thread count) is sampled. */
static inline bool
weft__probe_sampled(uint64_t seq)
{
    return (seq & atomic_load_explicit(&weft__probe_sample_mask,
                                       memory_order_relaxed)) == 0;
}

/* ------------------------------------------------------------------------ */
/* Inline counts (WEFT__PROBE_COUNT)                                         */

typedef struct weft__counts_cache {
    const void *exec;
    _Atomic uint64_t *counts; /* NULL: not counted */
    uint32_t gen;
} weft__counts_cache_t;

/* The calling thread's last lookup, valid while weft__counts_gen has not
 * moved on. */
extern _Thread_local weft__counts_cache_t weft__counts_cache;
extern _Atomic uint32_t weft__counts_gen;

/* Ask the counting sink and fill the cache. */
_Atomic uint64_t *weft__counts_lookup(const void *exec);

/* The counting sink's arrays changed (a pool came or went): every
 * thread's cache is stale. */
void weft__probe_counts_changed(void);

/* The calling thread's counter array for exec (NULL: not counted): a
 * cache check, no call. Stays valid while exec lives. */
static inline _Atomic uint64_t *
weft__counts_of(const void *exec)
{
    if (WEFT__UNLIKELY(weft__counts_cache.exec != exec ||
                       weft__counts_cache.gen !=
                           atomic_load_explicit(&weft__counts_gen,
                                                memory_order_relaxed))) {
        return weft__counts_lookup(exec);
    }
    return weft__counts_cache.counts;
}

/* Count one event of kind k in c (from weft__counts_of; NULL: nothing):
 * an owner-only load and store, no shared write. Release: a reader that
 * loads a later count with acquire sees the earlier ones (a plain store on
 * x86). */
static inline void
weft__count_in(_Atomic uint64_t *c, weft__count_kind_t k)
{
    if (c != NULL) {
        atomic_store_explicit(
            &c[k], atomic_load_explicit(&c[k], memory_order_relaxed) + 1,
            memory_order_release);
    }
}

/* Count one event of kind k for exec on the calling thread. */
static inline void
weft__count(const void *exec, weft__count_kind_t k)
{
    weft__count_in(weft__counts_of(exec), k);
}

/* Whether a task probed with this sample decision gets clock stamps. */
static inline bool
weft__probe_task_timed(bool sampled)
{
    return sampled ||
           (atomic_load_explicit(&weft__probe_mask, memory_order_relaxed) &
            WEFT__PROBE_TIMING) != 0;
}

/*
 * weft__probe_attach: add a sink for the events in mask (at most 4 sinks;
 * WEFT_EAGAIN beyond). The sink is borrowed and must stay valid for the
 * life of the process (sinks are never detached while threads may be
 * inside them; weft__probe_set_mask can silence one).
 */
int weft__probe_attach(const weft__probe_sink_t *sink, uint32_t mask);

/* Change an attached sink's mask (0 silences it). */
void weft__probe_set_mask(const weft__probe_sink_t *sink, uint32_t mask);

/* Dispatchers: call every interested sink. Use through the macros. */
void weft__probe_pool_event(const void *exec, weft__pool_ev_t ev, int worker);
void weft__probe_task_begin(const void *exec, uint64_t id, const char *label,
                            weft_time_t queued_at, int worker, bool sampled);
void weft__probe_task_end(const void *exec, uint64_t id, int code, int worker,
                          bool sampled);
void weft__probe_wait_begin(weft__wait_kind_t kind, const void *obj);
void weft__probe_wait_end(weft__wait_kind_t kind, const void *obj, int rc);
void weft__probe_lock_acquired(const void *lock, weft__wait_kind_t kind,
                               const void *site);
void weft__probe_lock_released(const void *lock, weft__wait_kind_t kind);
void weft__probe_queue_event(const void *queue, weft__queue_ev_t ev, size_t n);
void weft__probe_object_event(weft__obj_kind_t kind, const void *obj,
                              const char *name, bool created);

#define WEFT__PROBE_POOL(exec, ev, worker)                                     \
    do {                                                                       \
        if (WEFT__PROBING(WEFT__PROBE_TASK | WEFT__PROBE_COUNT)) {             \
            weft__probe_pool_event((exec), (ev), (worker));                    \
        }                                                                      \
    } while (0)

/* A task was queued to exec's CPU workers: counted inline, and a pool
 * event for the sinks that want every one. */
#define WEFT__PROBE_SUBMIT(exec, worker)                                       \
    do {                                                                       \
        uint32_t m_ =                                                          \
            atomic_load_explicit(&weft__probe_mask, memory_order_relaxed);     \
        if (WEFT__UNLIKELY(m_ & (WEFT__PROBE_TASK | WEFT__PROBE_COUNT))) {     \
            if (m_ & WEFT__PROBE_COUNT) {                                      \
                weft__count((exec), WEFT__CNT_SUBMIT);                         \
            }                                                                  \
            if (m_ & WEFT__PROBE_TASK) {                                       \
                weft__probe_pool_event((exec), WEFT__POOL_SUBMIT, (worker));   \
            }                                                                  \
        }                                                                      \
    } while (0)

#define WEFT__PROBE_LOCK_ACQUIRED(lock, kind)                                  \
    do {                                                                       \
        if (WEFT__PROBING(WEFT__PROBE_LOCK)) {                                 \
            weft__probe_lock_acquired((lock), (kind),                          \
                                      __builtin_return_address(0));            \
        }                                                                      \
    } while (0)

#define WEFT__PROBE_LOCK_RELEASED(lock, kind)                                  \
    do {                                                                       \
        if (WEFT__PROBING(WEFT__PROBE_LOCK)) {                                 \
            weft__probe_lock_released((lock), (kind));                         \
        }                                                                      \
    } while (0)

#define WEFT__PROBE_QUEUE(q, ev, n)                                            \
    do {                                                                       \
        if (WEFT__PROBING(WEFT__PROBE_QUEUE)) {                                \
            weft__probe_queue_event((q), (ev), (n));                           \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Per-thread records (always on)                                            */

/*
 * One per thread that used weft's blocking paths or ran a weft task:
 * registered on first use, linked in a global list, unlinked when the
 * thread exits. Fields are atomics: other threads read them as snapshots.
 */
typedef struct weft__thread_rec {
    _Atomic uint32_t id;              /* weft__self_id */
    _Atomic uint32_t wait_kind;       /* weft__wait_kind_t */
    _Atomic(const void *) wait_obj;   /* what it waits on */
    _Atomic weft_time_t wait_since;   /* when the wait began */
    _Atomic(const char *) task_label; /* the task it runs, or NULL */
    _Atomic uint64_t task_id;
    _Atomic weft_time_t task_since;
    _Atomic(const void *) task_exec;       /* that task's executor */
    _Atomic(struct weft_future *) awaited; /* future waited on, if any */
    /* The token of the future task running here, and a flag a canceller
     * raises while it uses that pointer (see weft__job_run). */
    _Atomic(weft__cancel_t *) running_token;
    _Atomic uint32_t cancel_busy;
    struct weft__thread_rec *next; /* registry list (registry lock) */
    char name[32];                 /* copy, refreshed on rename */
} weft__thread_rec_t;

/* The calling thread's record (registered on first call; never NULL: a
 * shared dummy record if it cannot be registered). */
weft__thread_rec_t *weft__self_rec(void);

/* Visit every registered record under the registry lock (fn must not call
 * weft__self_rec of a new thread or block). */
void weft__rec_foreach(void (*fn)(weft__thread_rec_t *r, void *ctx), void *ctx);

/* Record of the thread with weft id `id`, or NULL; only valid inside
 * weft__rec_foreach's lock -- use weft__rec_name_of for a copy. */
bool weft__rec_name_of(uint32_t id, char *buf, size_t len);

/*
 * The slow-path wait record: call begin before parking on obj and end
 * after the wait. Cheap (a few relaxed stores), and also fires the WAIT
 * probe when a sink wants it.
 */
void weft__wait_begin(weft__wait_kind_t kind, const void *obj);
void weft__wait_end(weft__wait_kind_t kind, const void *obj, int rc);

/* weft__park / weft__ecount_wait with the wait recorded. */
static inline int
weft__park_on(weft__wait_kind_t kind, const void *obj, _Atomic uint32_t *addr,
              uint32_t expected, weft_time_t deadline)
{
    weft__wait_begin(kind, obj);
    int rc = weft__park(addr, expected, deadline);
    weft__wait_end(kind, obj, rc);
    return rc;
}

static inline int
weft__ecount_wait_on(weft__wait_kind_t kind, const void *obj,
                     weft__ecount_t *ec, uint32_t key, weft_time_t deadline)
{
    weft__wait_begin(kind, obj);
    int rc = weft__ecount_wait(ec, key, deadline);
    weft__wait_end(kind, obj, rc);
    return rc;
}

#endif /* WEFT_PROBE_H */
