/* SPDX-License-Identifier: MIT */
/*
 * The work-stealing thread pool: weft's executor for CPU work, with a
 * blocking lane for I/O, timers (call_later, call_every) and fork-join
 * (task groups, parallel_for, parallel_reduce).
 *
 * Workers (one per usable CPU by default, named "<pool>/<n>") each own a
 * Chase-Lev deque; submissions from outside go through a bounded injector
 * that workers drain in batches; idle workers spin briefly, then park, and
 * a submit wakes at most one of them. Tasks marked blocking run on an
 * elastic, capped set of extra threads ("<pool>/io<n>") that retire when
 * idle. An idle pool uses no CPU.
 */
#ifndef WEFT_POOL_H
#define WEFT_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <weft/base.h>
#include <weft/executor.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_pool_opts {
    /* Thread name prefix (at most 10 bytes are used). NULL: "pool". */
    const char *name;
    /* CPU workers; 0: weft_cpu_count(). At most 1024. */
    unsigned workers;
    /* Capacity of the submission queue for tasks from outside the pool
     * (exactly this many queued tasks); 0: 4096 per worker. */
    size_t queue_capacity;
    /* What a submit does when that queue is full; WEFT_SUBMIT_DEFAULT
     * means WEFT_SUBMIT_BLOCK. */
    weft_submit_policy_t policy;
    /* Most threads of the blocking lane; 0: 64. */
    unsigned blocking_max;
    /* Capacity of the blocking lane's queue; 0: 1024. */
    size_t blocking_queue_capacity;
    /* An idle blocking-lane thread retires after this long; 0: 10 s. */
    weft_time_t blocking_idle;
} weft_pool_opts_t;

#define WEFT_POOL_OPTS_INIT                                                    \
    {                                                                          \
        NULL, 0, 0, WEFT_SUBMIT_DEFAULT, 0, 0, 0                               \
    }

/*
 * weft_pool_create: start a pool (opts NULL: defaults). Returns WEFT_OK with
 * *out, WEFT_EINVAL for out-of-range options, WEFT_ENOMEM, or WEFT_ESYS when
 * threads cannot be started (nothing is left running). Destroy with
 * weft_executor_destroy.
 */
WEFT_API WEFT_NODISCARD int weft_pool_create(const weft_pool_opts_t *opts,
                                             weft_executor_t **out);

/* weft_pool_workers: the number of CPU workers of a pool (0 if ex is not
 * a pool). */
WEFT_API unsigned weft_pool_workers(const weft_executor_t *ex);

/*
 * weft_pool_current: the pool whose worker (or blocking-lane thread) calls
 * it, or NULL on any other thread. Borrowed.
 */
WEFT_API weft_executor_t *weft_pool_current(void);

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */

/*
 * weft_pool_call_later: submit fn(arg) to ex once delay ns from now. *out
 * (may be NULL) receives the task's future; cancelling it before the delay
 * passes means fn never runs. Returns as weft_executor_submit, plus
 * WEFT_EINVAL for a negative delay. opts: label, blocking, result_dtor
 * are used. No thread polls: the pool's idle workers sleep until the
 * earliest timer.
 */
WEFT_API WEFT_NODISCARD int weft_pool_call_later(weft_executor_t *ex,
                                                 weft_time_t delay,
                                                 weft_task_fn fn, void *arg,
                                                 const weft_task_opts_t *opts,
                                                 weft_future_t **out);

/*
 * weft_pool_call_every: run fn(arg) repeatedly until cancelled: the first
 * run one period from now, each next one a period after the previous run
 * ended (fixed delay: runs never overlap). *out receives a future that
 * finishes CANCELLED after weft_future_cancel, or FAILED with the failure
 * of a run (a failing run stops the series). Cancelling does not interrupt
 * a run in progress (it is not a task of the future); at most that one run
 * still happens after the cancel, and none after weft_executor_shutdown
 * returns: keep arg valid until then. WEFT_EINVAL for period <= 0 or out
 * NULL.
 */
WEFT_API WEFT_NODISCARD int weft_pool_call_every(weft_executor_t *ex,
                                                 weft_time_t period,
                                                 weft_task_fn fn, void *arg,
                                                 const weft_task_opts_t *opts,
                                                 weft_future_t **out);

/* ------------------------------------------------------------------------ */
/* Fork-join                                                                 */

typedef void (*weft_spawn_fn)(void *arg);

/*
 * A task group: spawn children, then wait for them all. Lives in the
 * caller's memory (typically the stack of a recursive function): spawning
 * needs no future and no allocation. Failures of children (weft_task_fail)
 * are collected: the first one is returned by weft_group_wait.
 */
typedef struct weft_group {
    uint64_t opaque_[8];
} weft_group_t;

/*
 * weft_group_init: an empty group that runs children on pool (NULL: the
 * calling worker's pool; from outside a pool, NULL is WEFT_EINVAL).
 * Returns WEFT_OK or WEFT_EINVAL.
 */
WEFT_API WEFT_NODISCARD int weft_group_init(weft_group_t *g,
                                            weft_executor_t *pool);

/*
 * weft_group_spawn: run fn(arg) as a child of g, maybe in parallel. From a
 * worker of the group's pool the child goes on that worker's own deque
 * (no allocation, no atomic read-modify-write unless stolen) -- or, when
 * that worker already has a few children queued for thieves, it runs at
 * once, inline, before the spawn returns (a spawn throttle, as OpenMP
 * runtimes have). So, as in any fork-join program, a child must not wait
 * for something its parent does after spawning it. From any other thread
 * the child is submitted to the pool (and may block as a submit does).
 * Returns WEFT_OK, WEFT_ESHUTDOWN, WEFT_ENOMEM.
 */
WEFT_API WEFT_NODISCARD int weft_group_spawn(weft_group_t *g, weft_spawn_fn fn,
                                             void *arg);

/*
 * weft_group_wait: wait until every child of g has finished, then the
 * group may be reused or dropped. On a worker the wait helps: it runs g's
 * children and their descendants itself, never unrelated tasks (so a task
 * waiting while it holds a lock cannot pick up a task that needs that
 * lock). Returns WEFT_OK or the first child failure's code. Children are
 * always awaited (a cancelled caller still waits for them, then gets
 * WEFT_ECANCELED).
 */
WEFT_API WEFT_NODISCARD int weft_group_wait(weft_group_t *g);

/*
 * weft_pool_run: run fn(arg) on a worker of ex and wait for it (and, if it
 * uses groups, for all their children): the way into fork-join from an
 * outside thread. From one of ex's workers, calls fn directly.
 * Returns WEFT_OK, WEFT_EINVAL, WEFT_ESHUTDOWN, WEFT_ENOMEM, or the code
 * fn failed with.
 */
WEFT_API WEFT_NODISCARD int weft_pool_run(weft_executor_t *ex, weft_spawn_fn fn,
                                          void *arg);

/* Body of parallel_for: process indices [lo, hi). */
typedef void (*weft_range_fn)(size_t lo, size_t hi, void *ctx);

/*
 * weft_parallel_for: call body over disjoint sub-ranges covering [lo, hi)
 * on ex's workers, and wait. grain: ranges are split in halves until a
 * piece has at most grain indices (0: automatic, about 8 pieces per
 * worker). Callable from inside
 * or outside the pool. Returns WEFT_OK, WEFT_EINVAL (NULL ex or body,
 * lo > hi), WEFT_ESHUTDOWN, or the first failure a body reported.
 */
WEFT_API WEFT_NODISCARD int weft_parallel_for(weft_executor_t *ex, size_t lo,
                                              size_t hi, size_t grain,
                                              weft_range_fn body, void *ctx);

/*
 * Body of parallel_reduce: fold [lo, hi) into the partial result at acc
 * (which starts as a copy of the identity).
 */
typedef void (*weft_reduce_fn)(size_t lo, size_t hi, void *acc, void *ctx);
/* Merge: *into = *into (+) *from. Must be associative. */
typedef void (*weft_merge_fn)(void *into, const void *from, void *ctx);

/*
 * weft_parallel_reduce: reduce [lo, hi) with body and merge into *result
 * (acc_size bytes, at most 256; it holds the identity on entry). Partial
 * results are merged in index order, so a merge that is associative but
 * not commutative gives the sequential answer. Returns as
 * weft_parallel_for.
 */
WEFT_API WEFT_NODISCARD int
weft_parallel_reduce(weft_executor_t *ex, size_t lo, size_t hi, size_t grain,
                     void *result, size_t acc_size, weft_reduce_fn body,
                     weft_merge_fn merge, void *ctx);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_POOL_H */
