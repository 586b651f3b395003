/* SPDX-License-Identifier: MIT */
/*
 * The work-stealing thread pool: workers, the injector, idle parking,
 * submission and shutdown.
 *
 * DESIGN
 * Each worker owns a Chase-Lev deque of frames. Work from outside the pool
 * goes into a bounded injector (weft's lock-free ring, items copied by
 * value, so an outside submit allocates nothing without a future); a worker
 * whose deque is empty takes a batch from the injector (its share: queue
 * size / workers, at most 32), keeps one job and pushes the rest on its
 * deque where others can steal them; then it tries to steal.
 *
 * Idle protocol (no lost wake-ups, at most one wake per submit): a worker
 * that finds nothing becomes "searching" (nsearching), spins a little
 * while retrying, then prepares to sleep on the idle eventcount, stops
 * searching, issues a seq_cst fence and looks at every queue once more
 * before it sleeps. A producer makes its work visible, issues a seq_cst
 * fence, and wakes one sleeper only when nobody is searching. Either the
 * producer sees a searcher (whose later re-check, after the fence, sees the
 * work), or it sees none and wakes one: the sleeper prepared before it
 * stopped searching, so the eventcount wake reaches it.
 * A searcher that finds work stops searching; if it was the last and work
 * remains it wakes another, so a burst spreads over the workers.
 * A worker that blocks inside a task (any weft__park) wakes a sleeper when
 * its own deque is not empty, so no queued work is stranded behind it.
 *
 * Shutdown: the injectors are closed (later submits fail), timers are
 * cancelled; with cancel_pending, queued jobs with futures are cancelled
 * and fire-and-forget jobs from outside are dropped (counted and logged).
 * Waiting means: every worker idle and every queue empty (the pool is then
 * quiescent: no running task can add work). Then workers are told to stop
 * and joined.
 */
#include <stdio.h>
#include <string.h>

#include "plat.h"
#include "pool_impl.h"
#include "probe.h"
#include "probe.h"

#define BATCH_MAX 32
#define SPIN_ROUNDS 48

_Thread_local weft__worker_t *weft__self_worker;
#define self_worker weft__self_worker

static inline weft__pool_t *
as_pool(weft_executor_t *ex)
{
    return (weft__pool_t *)ex;
}

/* ------------------------------------------------------------------ frames */

/* ------------------------------------------------------------------ frames */

weft__frame_t *
weft__frame_refill(weft__worker_t *w)
{
    weft__pool_t *p = w->pool;
    weft__mutex_lock_nocancel(&p->spare_lock);
    weft__frame_t *f = p->spare;
    size_t n = 0;
    weft__frame_t *last = NULL;
    while (f != NULL && n < WEFT__FRAME_BATCH) {
        last = f;
        f = f->next;
        n++;
    }
    weft__frame_t *batch = p->spare;
    p->spare = f;
    weft_mutex_unlock(&p->spare_lock);
    if (n == 0) {
        return weft__malloc(sizeof(weft__frame_t));
    }
    last->next = NULL;
    w->free = batch->next;
    w->nfree = n - 1;
    return batch;
}

void
weft__frame_spill(weft__worker_t *w)
{
    weft__pool_t *p = w->pool;
    weft__frame_t *first = w->free, *last = first;
    for (size_t i = 1; i < WEFT__FRAME_BATCH; i++) {
        last = last->next;
    }
    w->free = last->next;
    w->nfree -= WEFT__FRAME_BATCH;
    weft__mutex_lock_nocancel(&p->spare_lock);
    last->next = p->spare;
    p->spare = first;
    weft_mutex_unlock(&p->spare_lock);
}

void
weft__pool_overflow_push(weft__pool_t *p, weft__frame_t *f)
{
    f->next = NULL;
    weft__mutex_lock_nocancel(&p->spare_lock);
    if (p->overflow_tail != NULL) {
        p->overflow_tail->next = f;
    } else {
        p->overflow_head = f;
    }
    p->overflow_tail = f;
    atomic_fetch_add_explicit(&p->overflow_n, 1, memory_order_seq_cst);
    weft_mutex_unlock(&p->spare_lock);
    weft__pool_wake_one(p);
}

static weft__frame_t *
overflow_pop(weft__pool_t *p)
{
    if (atomic_load_explicit(&p->overflow_n, memory_order_relaxed) == 0) {
        return NULL;
    }
    weft__mutex_lock_nocancel(&p->spare_lock);
    weft__frame_t *f = p->overflow_head;
    if (f != NULL) {
        p->overflow_head = f->next;
        if (p->overflow_head == NULL) {
            p->overflow_tail = NULL;
        }
        atomic_fetch_sub_explicit(&p->overflow_n, 1, memory_order_relaxed);
    }
    weft_mutex_unlock(&p->spare_lock);
    return f;
}

static void
free_frames(weft__frame_t *f)
{
    while (f != NULL) {
        weft__frame_t *next = f->next;
        weft__free(f);
        f = next;
    }
}

/* --------------------------------------------------------------- wake-ups */

void
weft__pool_wake_one(weft__pool_t *p)
{
    /* Pairs with the fence in idle_wait: see DESIGN. */
    weft__fence_seq_cst();
    if (atomic_load_explicit(&p->nsearching, memory_order_seq_cst) == 0) {
        weft__ecount_notify(&p->idle_ec, 1);
    }
}

/* Called from weft__park on pool workers: do not sleep on queued work. */
static void
park_hook(void)
{
    weft__worker_t *w = self_worker;
    if (w != NULL && weft__deque_size(&w->dq) != 0) {
        weft__pool_wake_one(w->pool);
    }
}

/* ------------------------------------------------------------ running jobs */

static void
run_job(weft__pool_t *p, const weft__job_t *job)
{
    if (WEFT__UNLIKELY(
            atomic_load_explicit(&p->cancelling, memory_order_relaxed)) &&
        !weft__fj_job_must_run(job)) {
        if (job->fut == NULL) {
            atomic_fetch_add_explicit(&p->dropped, 1, memory_order_relaxed);
        }
        weft__job_cancel(job);
        WEFT__PROBE_POOL(p, WEFT__POOL_CANCEL, -1);
        return;
    }
    weft__worker_t *w = self_worker;
    weft__job_run_on(p, job, w != NULL ? (int)w->index : -1);
}

void
weft__frame_run(weft__worker_t *w, weft__frame_t *f)
{
    if (f->kind == FRAME_JOB) {
        weft__job_t job = f->u.job;
        weft__frame_put(w, f);
        run_job(w->pool, &job);
        return;
    }
    weft__fj_run_spawn(w, f);
}

/* --------------------------------------------------------------- stealing */

weft__frame_t *
weft__pool_steal(weft__worker_t *w, bool (*filter)(void *x, void *ctx),
                 void *ctx)
{
    weft__pool_t *p = w->pool;
    unsigned n = p->n;
    if (n < 2) {
        return NULL;
    }
    /* xorshift: a cheap per-worker random start. */
    w->rng ^= w->rng << 13;
    w->rng ^= w->rng >> 7;
    w->rng ^= w->rng << 17;
    unsigned start = (unsigned)(w->rng % n);
    for (int round = 0; round < 2; round++) {
        bool contended = false;
        for (unsigned i = 0; i < n; i++) {
            weft__worker_t *v = &p->workers[(start + i) % n];
            if (v == w) {
                continue;
            }
            void *x;
            weft__steal_t r = weft__deque_steal(&v->dq, &x, filter, ctx);
            if (r == WEFT__STEAL_OK) {
                WEFT__PROBE_POOL(p, WEFT__POOL_STEAL, (int)w->index);
                return x;
            }
            contended |= r == WEFT__STEAL_RETRY;
        }
        if (!contended) {
            break;
        }
    }
    return NULL;
}

/* ---------------------------------------------------------------- injector */

/* Take this worker's share of the injector: one job for the caller to run,
 * the rest queued on the worker's deque. */
static bool
take_injected(weft__worker_t *w, weft_queue_t *q, weft__job_t *first)
{
    weft__pool_t *p = w->pool;
    size_t avail = weft_queue_size(q);
    if (avail == 0) {
        return false;
    }
    size_t want = avail / p->n + 1;
    if (want > BATCH_MAX) {
        want = BATCH_MAX;
    }
    weft__job_t jobs[BATCH_MAX];
    size_t got = 0;
    int rc = weft_queue_get_many(q, jobs, want, &got, 0);
    if (rc != WEFT_OK || got == 0) {
        return false;
    }
    for (size_t i = 1; i < got; i++) {
        weft__frame_t *f = weft__frame_get(w);
        if (f == NULL ||
            (atomic_store_explicit(&f->iso, 0, memory_order_relaxed),
             f->kind = FRAME_JOB, f->u.job = jobs[i],
             !weft__deque_push(&w->dq, f))) {
            /* No memory to queue it: run it here, in order. */
            if (f != NULL) {
                weft__frame_put(w, f);
            }
            run_job(p, &jobs[i]);
        }
    }
    if (got > 1) {
        weft__pool_wake_one(p);
    }
    *first = jobs[0];
    return true;
}

int
weft__pool_put(weft__pool_t *p, weft_queue_t *q, const weft__job_t *job,
               weft_submit_policy_t policy, weft_time_t deadline,
               void (*on_full)(weft__pool_t *p))
{
    int rc = weft_queue_try_put(q, job);
    if (rc == WEFT_EAGAIN && policy != WEFT_SUBMIT_REJECT &&
        policy != WEFT_SUBMIT_CALLER_RUNS) {
        if (on_full != NULL) {
            on_full(p);
        }
        rc = weft_queue_put_until(q, job, deadline);
    }
    return rc == WEFT_ECLOSED ? WEFT_ESHUTDOWN : rc;
}

int
weft__pool_inject(weft__pool_t *p, const weft__job_t *job, bool priority,
                  weft_submit_policy_t policy, weft_time_t deadline)
{
    weft_queue_t *q = priority ? p->inj_hi : p->inj;
    int rc = weft__pool_put(p, q, job, policy, deadline, NULL);
    if (rc == WEFT_EAGAIN && policy == WEFT_SUBMIT_CALLER_RUNS) {
        weft__job_run(job);
        return WEFT_OK;
    }
    if (rc == WEFT_OK) {
        weft__pool_wake_one(p);
        WEFT__PROBE_SUBMIT(p, -1);
    } else if (rc == WEFT_EAGAIN || rc == WEFT_ETIMEDOUT) {
        WEFT__PROBE_POOL(p, WEFT__POOL_REJECT, -1);
    }
    return rc;
}

/* ---------------------------------------------------------------- workers */

/* Something found to run: a job from an injector or a stolen frame. */
typedef struct found {
    weft__job_t job;
    weft__frame_t *frame; /* NULL: run job */
} found_t;

static void
run_found(weft__worker_t *w, found_t *x)
{
    if (x->frame != NULL) {
        weft__frame_run(w, x->frame);
    } else {
        run_job(w->pool, &x->job);
    }
}

/* Look for work outside the own deque. The caller runs what is found
 * (after it stops searching: a searching worker running a task that
 * blocks would keep every submit from waking a sleeper). */
static bool
find_work(weft__worker_t *w, found_t *x)
{
    weft__pool_t *p = w->pool;
    weft_time_t due =
        atomic_load_explicit(&p->timers.next_due, memory_order_relaxed);
    if (WEFT__UNLIKELY(due != WEFT_FOREVER) && weft_now() >= due) {
        (void)weft__timers_fire(p);
    }
    x->frame = NULL;
    if (take_injected(w, p->inj_hi, &x->job) ||
        take_injected(w, p->inj, &x->job)) {
        return true;
    }
    x->frame = overflow_pop(p);
    if (x->frame != NULL) {
        return true;
    }
    x->frame = weft__pool_steal(w, NULL, NULL);
    return x->frame != NULL;
}

static bool
work_visible(weft__pool_t *p)
{
    if (!weft_queue_empty(p->inj) || !weft_queue_empty(p->inj_hi) ||
        atomic_load_explicit(&p->overflow_n, memory_order_seq_cst) != 0) {
        return true;
    }
    for (unsigned i = 0; i < p->n; i++) {
        if (weft__deque_size(&p->workers[i].dq) != 0) {
            return true;
        }
    }
    return false;
}

/* Stop searching; if this was the last searcher and work is left, pass
 * the search on. */
static void
stop_searching(weft__pool_t *p, bool found)
{
    uint32_t left =
        atomic_fetch_sub_explicit(&p->nsearching, 1, memory_order_seq_cst) - 1;
    if (found && left == 0 && work_visible(p)) {
        weft__ecount_notify(&p->idle_ec, 1);
    }
}

/* 1: found and ran work; 0: the pool stops; -1: woken, search again. */
static int
search_then_sleep(weft__worker_t *w)
{
    weft__pool_t *p = w->pool;
    atomic_fetch_add_explicit(&p->nsearching, 1, memory_order_seq_cst);
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        found_t x;
        if (find_work(w, &x)) {
            stop_searching(p, true);
            WEFT__PROBE_POOL(p, WEFT__POOL_BUSY, (int)w->index);
            run_found(w, &x);
            return 1;
        }
        if (i % 8 == 7) {
            weft__plat_thread_yield();
        } else {
            for (int k = 0; k < 16; k++) {
                weft__cpu_relax();
            }
        }
    }
    uint32_t key = weft__ecount_prepare(&p->idle_ec);
    atomic_fetch_add_explicit(&p->nidle, 1, memory_order_seq_cst);
    stop_searching(p, false);
    /* Pairs with the fence in weft__pool_wake_one (DESIGN). */
    weft__fence_seq_cst();
    uint32_t state = atomic_load_explicit(&p->state, memory_order_acquire);
    if (state == POOL_STOPPING || work_visible(p)) {
        weft__ecount_cancel(&p->idle_ec);
        atomic_fetch_sub_explicit(&p->nidle, 1, memory_order_seq_cst);
        return state == POOL_STOPPING ? 0 : -1;
    }
    if (state == POOL_CLOSING) {
        atomic_fetch_add_explicit(&p->quiesce, 1, memory_order_seq_cst);
        weft__unpark(&p->quiesce, INT32_MAX);
    }
    /* One sleeper keeps the timers: it sleeps until the earliest is due. */
    weft_time_t deadline = WEFT_FOREVER;
    bool keeper = false;
    weft_time_t due =
        atomic_load_explicit(&p->timers.next_due, memory_order_acquire);
    if (due != WEFT_FOREVER &&
        atomic_exchange_explicit(&p->timers.keeper, 1, memory_order_acq_rel) ==
            0) {
        keeper = true;
        deadline = due;
    }
    WEFT__PROBE_POOL(p, WEFT__POOL_PARK, (int)w->index);
    (void)weft__ecount_wait_on(WEFT__WAIT_IDLE, p, &p->idle_ec, key, deadline);
    WEFT__PROBE_POOL(p, WEFT__POOL_UNPARK, (int)w->index);
    /* Before this worker can take work: see quiescent(). */
    atomic_fetch_add_explicit(&p->wakes, 1, memory_order_seq_cst);
    if (keeper) {
        atomic_store_explicit(&p->timers.keeper, 0, memory_order_release);
        /* Woken for work before the timer was due: hand the keeping on to
         * another sleeper, which re-parks with the deadline. */
        if (atomic_load_explicit(&p->timers.next_due, memory_order_acquire) !=
            WEFT_FOREVER) {
            weft__ecount_notify(&p->idle_ec, 1);
        }
    }
    atomic_fetch_sub_explicit(&p->nidle, 1, memory_order_seq_cst);
    return -1;
}

/*
 * Nothing to do: search (spin briefly), then sleep; a worker woken from
 * its sleep searches again, so that when it finds work it passes the
 * search on if work remains (stop_searching): one wake per submit then
 * reaches as many workers as there are jobs. Returns after running what
 * it found; false when the pool stops. The worker is idle from here until
 * it finds work (pool events IDLE and BUSY: metrics' utilisation).
 */
static bool
idle_wait(weft__worker_t *w)
{
    WEFT__PROBE_POOL(w->pool, WEFT__POOL_IDLE, (int)w->index);
    for (;;) {
        int r = search_then_sleep(w);
        if (r >= 0) {
            return r != 0;
        }
    }
}

static void *
worker_main(void *arg)
{
    weft__worker_t *w = arg;
    self_worker = w;
    weft__set_park_hook(park_hook);
    /* Busy until it first finds no work (idle_wait). */
    WEFT__PROBE_POOL(w->pool, WEFT__POOL_BUSY, (int)w->index);
    for (;;) {
        weft__frame_t *f = weft__deque_pop(&w->dq);
        if (f != NULL) {
            weft__frame_run(w, f);
            continue;
        }
        found_t x;
        if (find_work(w, &x)) {
            run_found(w, &x);
            continue;
        }
        if (!idle_wait(w)) {
            break;
        }
    }
    weft__set_park_hook(NULL);
    self_worker = NULL;
    return NULL;
}

/* ---------------------------------------------------------------- shutdown */

/* Every worker asleep, nothing queued, the lane idle, and no worker woke
 * while we looked (a woken worker counts itself before it takes work). */
static bool
quiescent(weft__pool_t *p)
{
    uint64_t before = atomic_load_explicit(&p->wakes, memory_order_seq_cst);
    bool idle = atomic_load_explicit(&p->nidle, memory_order_seq_cst) == p->n &&
                !work_visible(p) && weft__lane_quiet(p);
    return idle &&
           atomic_load_explicit(&p->wakes, memory_order_seq_cst) == before;
}

static void
drain_injector(weft__pool_t *p, weft_queue_t *q)
{
    weft__job_t job;
    while (weft_queue_try_get(q, &job) == WEFT_OK) {
        if (weft__fj_job_must_run(&job)) {
            /* A fork-join child: its group waits for it. Back in line:
             * the injector is closed to submits, so hand it over as an
             * overflow frame. */
            weft__frame_t *f = weft__malloc(sizeof(*f));
            WEFT_ASSERT(f != NULL, "out of memory keeping a group's child");
            atomic_init(&f->iso, 0);
            f->kind = FRAME_JOB;
            f->u.job = job;
            weft__pool_overflow_push(p, f);
            continue;
        }
        if (job.fut == NULL) {
            atomic_fetch_add_explicit(&p->dropped, 1, memory_order_relaxed);
        }
        weft__job_cancel(&job);
    }
}

static int
pool_shutdown(weft_executor_t *ex, bool wait, bool cancel_pending)
{
    weft__pool_t *p = as_pool(ex);
    uint32_t running = POOL_RUNNING;
    (void)atomic_compare_exchange_strong_explicit(
        &p->state, &running, POOL_CLOSING, memory_order_seq_cst,
        memory_order_seq_cst);
    weft_queue_close(p->inj);
    weft_queue_close(p->inj_hi);
    weft__lane_close(p, cancel_pending);
    weft__timers_cancel_all(p);
    if (cancel_pending) {
        atomic_store_explicit(&p->cancelling, true, memory_order_seq_cst);
        drain_injector(p, p->inj_hi);
        drain_injector(p, p->inj);
        weft__cancel_running(p);
    }
    /* Wake every sleeper so each re-checks and reports idleness. */
    weft__ecount_wake(&p->idle_ec, INT32_MAX);
    if (!wait) {
        return WEFT_OK;
    }
    for (;;) {
        uint32_t key = atomic_load_explicit(&p->quiesce, memory_order_seq_cst);
        if (quiescent(p)) {
            break;
        }
        int rc = weft__park_on(WEFT__WAIT_JOIN, p, &p->quiesce, key,
                               weft_deadline_in(WEFT_MSEC));
        if (rc == WEFT_ECANCELED) {
            return rc;
        }
    }
    uint64_t dropped = atomic_load_explicit(&p->dropped, memory_order_relaxed);
    if (dropped != 0) {
        weft_log(WEFT_LOG_INFO,
                 "pool %s: shutdown dropped %llu queued fire-and-forget tasks",
                 p->base.name, (unsigned long long)dropped);
    }
    return WEFT_OK;
}

static void
stop_workers(weft__pool_t *p, unsigned started)
{
    atomic_store_explicit(&p->state, POOL_STOPPING, memory_order_seq_cst);
    weft__ecount_wake(&p->idle_ec, INT32_MAX);
    for (unsigned i = 0; i < started; i++) {
        int rc = weft_thread_join(p->workers[i].thread, NULL);
        WEFT_ASSERT(rc == WEFT_OK, "joining worker %u: %s", i,
                    weft_strerror(rc));
    }
}

static void
free_pool(weft__pool_t *p)
{
    for (unsigned i = 0; i < p->ndeques; i++) {
        weft__worker_t *w = &p->workers[i];
        void *x;
        while ((x = weft__deque_pop(&w->dq)) != NULL) {
            weft__free(x); /* only on a failed start: nothing ran */
        }
        weft__deque_fini(&w->dq);
        free_frames(w->free);
    }
    weft__timers_fini(p);
    weft__lane_fini(p);
    weft_queue_destroy(p->inj);
    weft_queue_destroy(p->inj_hi);
    free_frames(p->spare);
    weft_mutex_fini(&p->spare_lock);
    weft_mutex_fini(&p->shut_lock);
    weft__free_aligned(p->workers);
    weft__free_aligned(p);
}

static void
pool_destroy(weft_executor_t *ex)
{
    weft__pool_t *p = as_pool(ex);
    weft__probe_object_event(WEFT__OBJ_POOL, p, p->base.name, false);
    stop_workers(p, p->n);
    free_pool(p);
}

static unsigned
pool_workers(const weft_executor_t *ex)
{
    return ((const weft__pool_t *)ex)->n;
}

static bool
pool_is_own_thread(const weft_executor_t *ex)
{
    return weft_pool_current() == ex;
}

weft_executor_t *
weft_pool_current(void)
{
    weft__worker_t *w = self_worker;
    if (w != NULL) {
        return &w->pool->base;
    }
    weft__pool_t *p = weft__lane_current();
    return p != NULL ? &p->base : NULL;
}

/*
 * The deadlock guard of weft_future_wait (future_impl.h's help hook): a
 * pool thread waiting for a task that is still queued runs it itself, so
 * tasks waiting on tasks cannot fill every worker with waiters. The queued
 * copy then finds the future claimed and is skipped.
 */
static bool
pool_help(weft_future_t *f)
{
    if (weft_pool_current() == NULL ||
        weft_future_state(f) != WEFT_FUTURE_PENDING) {
        return false;
    }
    weft__job_t job = {f->fn, f->arg, weft_future_retain(f), 0, 0};
    weft__worker_t *w = self_worker;
    /* Drops the reference taken above; probes see the task run here. */
    weft__job_run_on(weft_pool_current(), &job, w != NULL ? (int)w->index : -1);
    return weft_future_done(f);
}

static int
pool_submit(weft_executor_t *ex, const weft__job_t *job,
            const weft_task_opts_t *o, weft_submit_policy_t policy)
{
    weft__pool_t *p = as_pool(ex);
    if (job->fut != NULL) {
        job->fut->help = pool_help; /* published with the job */
    }
    if (WEFT__UNLIKELY(atomic_load_explicit(&p->state, memory_order_relaxed) !=
                       POOL_RUNNING)) {
        return WEFT_ESHUTDOWN;
    }
    if (o->blocking) {
        return weft__lane_submit(p, job, policy, o->submit_deadline);
    }
    weft__worker_t *w = self_worker;
    if (w != NULL && w->pool == p) {
        /* From inside: the worker's own deque (no bound: the submitting
         * task is itself the backpressure). */
        weft__frame_t *f = weft__frame_get(w);
        if (f == NULL) {
            return WEFT_ENOMEM;
        }
        atomic_store_explicit(&f->iso, 0, memory_order_relaxed);
        f->kind = FRAME_JOB;
        f->u.job = *job;
        if (!weft__deque_push(&w->dq, f)) {
            weft__frame_put(w, f);
            return WEFT_ENOMEM;
        }
        weft__pool_wake_one(p);
        WEFT__PROBE_SUBMIT(p, (int)w->index);
        return WEFT_OK;
    }
    return weft__pool_inject(p, job, o->priority > 0, policy,
                             o->submit_deadline);
}

const weft__executor_ops_t weft__pool_ops = {
    pool_submit, pool_shutdown, pool_destroy, pool_workers, pool_is_own_thread,
};

/* ----------------------------------------------------------------- create */

static int
make_queue(size_t cap, const char *name, weft_queue_t **out)
{
    weft_queue_opts_t qo = WEFT_QUEUE_OPTS_INIT;
    qo.capacity = cap;
    qo.elem_size = sizeof(weft__job_t);
    qo.name = name;
    return weft_queue_create(&qo, out);
}

static int
start_workers(weft__pool_t *p, unsigned *started)
{
    for (unsigned i = 0; i < p->n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%s/%u", p->base.name, i);
        weft_thread_opts_t to = WEFT_THREAD_OPTS_INIT;
        to.name = name;
        int rc = weft_thread_create(&to, worker_main, &p->workers[i],
                                    &p->workers[i].thread);
        if (rc != WEFT_OK) {
            return rc == WEFT_ENOMEM ? rc : WEFT_ESYS;
        }
        *started = i + 1;
    }
    return WEFT_OK;
}

static int
check_opts(const weft_pool_opts_t *o)
{
    if (o->workers > 1024 || (unsigned)o->policy > 3u ||
        o->blocking_max > 4096 || o->blocking_idle < 0 ||
        (o->queue_capacity != 0 && o->queue_capacity > (1u << 30))) {
        return WEFT_EINVAL;
    }
    return WEFT_OK;
}

static int
init_pool(weft__pool_t *p, const weft_pool_opts_t *o)
{
    int ncpu = weft_cpu_count();
    p->n = o->workers != 0 ? o->workers : (unsigned)(ncpu > 0 ? ncpu : 1);
    weft__executor_init(&p->base, &weft__pool_ops, o->name ? o->name : "pool",
                        o->policy);
    p->base.name[10] = '\0';
    weft_mutex_init(&p->shut_lock);
    weft_mutex_init(&p->spare_lock);
    atomic_init(&p->timers.next_due, WEFT_FOREVER);
    p->workers = weft__malloc_aligned(sizeof(weft__worker_t) * p->n);
    if (p->workers == NULL) {
        return WEFT_ENOMEM;
    }
    memset(p->workers, 0, sizeof(weft__worker_t) * p->n);
    for (unsigned i = 0; i < p->n; i++) {
        weft__worker_t *w = &p->workers[i];
        w->pool = p;
        w->index = i;
        w->rng = 0x9e3779b97f4a7c15ull * (i + 1);
        if (weft__deque_init(&w->dq) != WEFT_OK) {
            return WEFT_ENOMEM;
        }
        p->ndeques = i + 1;
    }
    size_t cap =
        o->queue_capacity != 0 ? o->queue_capacity : (size_t)4096 * p->n;
    int rc = make_queue(cap, "pool-injector", &p->inj);
    if (rc == WEFT_OK) {
        rc = make_queue(cap, "pool-injector-hi", &p->inj_hi);
    }
    if (rc == WEFT_OK) {
        rc = weft__lane_init(p, o);
    }
    if (rc == WEFT_OK) {
        rc = weft__timers_init(p);
    }
    return rc;
}

int
weft_pool_create(const weft_pool_opts_t *opts, weft_executor_t **out)
{
    static const weft_pool_opts_t defaults = WEFT_POOL_OPTS_INIT;
    const weft_pool_opts_t *o = opts != NULL ? opts : &defaults;
    if (out == NULL || check_opts(o) != WEFT_OK) {
        return WEFT_EINVAL;
    }
    weft__pool_t *p = weft__malloc_aligned(sizeof(*p));
    if (p == NULL) {
        return WEFT_ENOMEM;
    }
    memset(p, 0, sizeof(*p));
    unsigned started = 0;
    int rc = init_pool(p, o);
    if (rc != WEFT_OK) {
        stop_workers(p, started);
        free_pool(p);
        return rc;
    }
    /* Listed before its workers start, so observers see their first
     * events (a worker may park before this function returns). */
    weft__probe_object_event(WEFT__OBJ_POOL, p, p->base.name, true);
    rc = start_workers(p, &started);
    if (rc != WEFT_OK) {
        stop_workers(p, started);
        weft__probe_object_event(WEFT__OBJ_POOL, p, p->base.name, false);
        free_pool(p);
        return rc;
    }
    *out = &p->base;
    return WEFT_OK;
}

unsigned
weft_pool_workers(const weft_executor_t *ex)
{
    return ex != NULL && ex->ops == &weft__pool_ops
               ? as_pool((weft_executor_t *)ex)->n
               : 0;
}

bool
weft__pool_gauges(const weft_executor_t *ex, weft__pool_gauges_t *g)
{
    if (!weft__is_pool(ex)) {
        return false;
    }
    weft__pool_t *p = (weft__pool_t *)ex;
    memset(g, 0, sizeof(*g));
    g->workers = p->n;
    /* Relaxed: snapshots. */
    g->idle = atomic_load_explicit(&p->nidle, memory_order_relaxed);
    g->searching = atomic_load_explicit(&p->nsearching, memory_order_relaxed);
    g->queued = weft_queue_size(p->inj) + weft_queue_size(p->inj_hi);
    for (unsigned i = 0; i < p->n; i++) {
        g->deque_frames += weft__deque_size(&p->workers[i].dq);
    }
    weft__mutex_lock_nocancel(&p->lane.lock);
    g->lane_threads = p->lane.nthreads;
    weft_mutex_unlock(&p->lane.lock);
    g->lane_idle = atomic_load_explicit(&p->lane.idle, memory_order_relaxed);
    g->lane_queued = weft_queue_size(p->lane.q);
    return true;
}
