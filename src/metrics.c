/* SPDX-License-Identifier: MIT */
/*
 * Metrics collection: a probe sink that counts pool and task events into
 * per-thread cells, and the snapshot that merges them with the pools' live
 * gauges and the queues' own counters.
 *
 * DESIGN
 * Registry: fixed tables of pool and queue slots, filled from object
 * events (delivered whatever the mask, so the sink is attached at load
 * time with mask 0 and knows every pool and queue). A slot is reused
 * after its object is destroyed; its generation changes each time.
 * Writers (object events, snapshots) hold reg_lock, a spinlock (object
 * events may come from inside lower-layer locks: no weft mutex here).
 * Cells: each thread owns one block (per-slot cells allocated on first
 * use). Only the owner writes a cell, with relaxed load+store (no
 * read-modify-write, no shared cache line); readers sum all blocks. A
 * cell carries the generation of its slot: the owner resets a stale cell
 * before use, readers skip it. Blocks are never freed: a thread's exit
 * releases its block, the next new thread adopts it (the counts stay,
 * they are sums), so memory is bounded by the peak thread count.
 * Queues need no cells: each counts its puts itself (the queue layer
 * fires no put/get probes), so a snapshot reads them under reg_lock.
 * Lookup: a per-thread cache of the last pool seen and this thread's cell
 * for it, checked against the slot (object and generation), else a scan
 * of the table.
 * Cost: the per-task counters (submitted, started, ended) are exact, but
 * the executor and pool keep them inline (WEFT__PROBE_COUNT: a cached
 * pointer to this thread's cell, a store; no call per task); the sink's
 * callbacks see only the rarer pool events and the sampled tasks. Clocks
 * are read only for the timing sample (probe.h: one task in sample_every;
 * the executor stamps those at submit and start, on_task_end reads the
 * end), so histograms count sampled tasks. Utilisation needs no task
 * clock: a worker's busy spell runs from the pool event BUSY (found work)
 * to IDLE (found none), two clock reads per spell, not per task.
 * See docs/design/metrics-sampling.md.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_impl.h"
#include "pool_impl.h"
#include "plat.h"
#include "probe.h"
#include "queue_impl.h"

#define MAX_POOLS 32
#define MAX_QUEUES 64
#define MAX_PIPELINES 32
#define MAX_WORKERS 256 /* utilisation beyond this index is not tracked */
#define NEST_MAX 8      /* task nesting depth timed (helping waits) */
#define SAMPLE_DEFAULT 64
#define SAMPLE_MAX 65536

/* The first WEFT__CNT_KINDS counters are the ones the executor and pool
 * count inline (probe.h, weft__count): this thread's cell hands them its
 * array (counts_for). */
enum {
    C_SUBMIT = WEFT__CNT_SUBMIT,
    C_START = WEFT__CNT_START,
    C_OK = WEFT__CNT_OK,
    C_FAIL = WEFT__CNT_FAIL,
    C_CANCEL = WEFT__CNT_CANCEL,
    C_REJECT = WEFT__CNT_KINDS,
    C_STEAL,
    C_PARK,
    C_UNPARK,
    C_DROP,
    NCTR
};

typedef struct hist_cell {
    _Atomic uint64_t b[WEFT__HIST_NB];
    _Atomic uint64_t sum, max;
} hist_cell_t;

typedef struct pool_cell {
    char pad_[64]; /* no cache line shared with a neighbouring allocation */
    _Atomic uint32_t gen;
    _Atomic int32_t worker; /* this thread's worker index, or -1 */
    _Atomic uint64_t ctr[NCTR];
    /* Busy time of this worker in one word, so a reader never sees half
     * an update: idle, 2 * busy_ns; busy since t, 2 * (busy_ns - t) + 1
     * (odd), and a reader adds its clock. */
    _Atomic int64_t busy_w;
    uint32_t epoch; /* owner only: the enable epoch busy_w was kept in */
    hist_cell_t wait, run;
    char pad_end_[64];
} pool_cell_t;

typedef struct tblock {
    struct tblock *next; /* list of all blocks (immutable once linked) */
    _Atomic uint32_t in_use;
    _Atomic(pool_cell_t *) pools[MAX_POOLS];
} tblock_t;

typedef struct slot {
    _Atomic(const void *) obj; /* NULL: free */
    _Atomic uint32_t gen;
    bool internal; /* a pool's own queue: not listed */
    char name[32];
    /* Utilisation window state (reg_lock). */
    weft_time_t since;
    uint64_t prev_busy[MAX_WORKERS];
} slot_t;

static slot_t pools[MAX_POOLS], queues[MAX_QUEUES], pipes[MAX_PIPELINES];
static _Atomic uint32_t reg_lock;
static _Atomic(tblock_t *) blocks;
static _Atomic bool enabled;

static pthread_key_t exit_key;
static _Thread_local tblock_t *self_block;
static _Thread_local struct {
    const void *obj;
    pool_cell_t *cell; /* this thread's cell for obj, generation gen */
    unsigned idx;
    uint32_t gen;
} pool_cache;
static _Thread_local weft_time_t nest[NEST_MAX];
static _Thread_local unsigned nest_depth;
/* Bumped by every enable: a thread whose epoch differs forgets its nesting
 * (task ends missed while collection was off). */
static _Atomic uint32_t epoch;
static _Thread_local uint32_t self_epoch;
/* When collection was last turned on and off: a busy spell open at the
 * turn off ends there; a worker whose first spell event after a turn on
 * is "idle" was busy since it. */
static _Atomic weft_time_t on_at, off_at;
static _Atomic uint32_t sample_every = SAMPLE_DEFAULT;

/* Owner-only increment of a cell field: no read-modify-write needed.
 * Release: see merge_pool (a plain store on x86). */
static inline void
bump(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_release);
}

/* ------------------------------------------------------------- blocks */

static void
block_release(void *arg)
{
    tblock_t *b = arg;
    /* Release: the next owner (acquire CAS in block_get) sees our cells. */
    atomic_store_explicit(&b->in_use, 0, memory_order_release);
}

static WEFT__COLD tblock_t *
block_get(void)
{
    tblock_t *b;
    for (b = atomic_load_explicit(&blocks, memory_order_acquire); b != NULL;
         b = b->next) {
        uint32_t free_ = 0;
        if (atomic_compare_exchange_strong_explicit(&b->in_use, &free_, 1,
                                                    memory_order_acquire,
                                                    memory_order_relaxed)) {
            break;
        }
    }
    if (b == NULL) {
        b = weft__calloc(1, sizeof(*b));
        if (b == NULL) {
            return NULL;
        }
        atomic_init(&b->in_use, 1);
        b->next = atomic_load_explicit(&blocks, memory_order_relaxed);
        /* Release: readers walking the list see the block's fields. */
        while (!atomic_compare_exchange_weak_explicit(
            &blocks, &b->next, b, memory_order_release, memory_order_relaxed)) {
        }
    }
    if (pthread_setspecific(exit_key, b) != 0) {
        block_release(b); /* cannot hand it back at exit: do not keep it */
        return NULL;
    }
    self_block = b;
    return b;
}

static inline tblock_t *
block_self(void)
{
    tblock_t *b = self_block;
    return WEFT__LIKELY(b != NULL) ? b : block_get();
}

/* ------------------------------------------------------------ registry */

/* Slot index of obj in table t, or -1. */
static int
slot_find(slot_t *t, unsigned n, const void *obj)
{
    for (unsigned i = 0; i < n; i++) {
        if (atomic_load_explicit(&t[i].obj, memory_order_acquire) == obj) {
            return (int)i;
        }
    }
    return -1;
}

static WEFT__COLD pool_cell_t *
pool_cell_new(tblock_t *b, unsigned s)
{
    pool_cell_t *c = weft__calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    atomic_init(&c->worker, -1);
    atomic_init(&c->gen, UINT32_MAX);
    atomic_store_explicit(&b->pools[s], c, memory_order_release);
    return c;
}

static WEFT__COLD void
pool_cell_reset(pool_cell_t *c, uint32_t gen)
{
    /* Zero, then publish the generation (release: pairs with the reader's
     * acquire load of gen in merge_pool, so it never mixes generations). */
    atomic_store_explicit(&c->gen, UINT32_MAX, memory_order_release);
    for (unsigned k = 0; k < NCTR; k++) {
        atomic_store_explicit(&c->ctr[k], 0, memory_order_relaxed);
    }
    atomic_store_explicit(&c->busy_w, 0, memory_order_relaxed);
    c->epoch = 0; /* no enable has epoch 0: its first spell event catches up */
    atomic_store_explicit(&c->worker, -1, memory_order_relaxed);
    hist_cell_t *hs[2] = {&c->wait, &c->run};
    for (unsigned h = 0; h < 2; h++) {
        for (unsigned k = 0; k < WEFT__HIST_NB; k++) {
            atomic_store_explicit(&hs[h]->b[k], 0, memory_order_relaxed);
        }
        atomic_store_explicit(&hs[h]->sum, 0, memory_order_relaxed);
        atomic_store_explicit(&hs[h]->max, 0, memory_order_relaxed);
    }
    atomic_store_explicit(&c->gen, gen, memory_order_release);
}

static pool_cell_t *
pool_cell_slow(const void *exec)
{
    int s = slot_find(pools, MAX_POOLS, exec);
    tblock_t *b = block_self();
    if (s < 0 || b == NULL) {
        return NULL;
    }
    pool_cell_t *c = atomic_load_explicit(&b->pools[s], memory_order_relaxed);
    if (WEFT__UNLIKELY(c == NULL) &&
        (c = pool_cell_new(b, (unsigned)s)) == NULL) {
        return NULL;
    }
    uint32_t gen = atomic_load_explicit(&pools[s].gen, memory_order_relaxed);
    if (WEFT__UNLIKELY(atomic_load_explicit(&c->gen, memory_order_relaxed) !=
                       gen)) {
        pool_cell_reset(c, gen);
    }
    pool_cache.obj = exec;
    pool_cache.cell = c;
    pool_cache.idx = (unsigned)s;
    pool_cache.gen = gen;
    return c;
}

/* The calling thread's cell for pool exec, or NULL (unknown, no memory). */
static inline pool_cell_t *
pool_cell(const void *exec)
{
    unsigned i = pool_cache.idx;
    /* Acquire on obj: pairs with on_object's release, so a slot reused by
     * a new pool at the same address shows its new generation. */
    if (WEFT__LIKELY(pool_cache.obj == exec && pool_cache.cell != NULL) &&
        atomic_load_explicit(&pools[i].obj, memory_order_acquire) == exec &&
        atomic_load_explicit(&pools[i].gen, memory_order_relaxed) ==
            pool_cache.gen) {
        return pool_cache.cell;
    }
    return pool_cell_slow(exec);
}

static bool
is_internal_queue(const char *name)
{
    return name != NULL && strncmp(name, "pool-", 5) == 0;
}

static void
on_object(weft__obj_kind_t kind, const void *obj, const char *name,
          bool created)
{
    slot_t *t = kind == WEFT__OBJ_POOL    ? pools
                : kind == WEFT__OBJ_QUEUE ? queues
                                          : pipes;
    unsigned n = kind == WEFT__OBJ_POOL    ? MAX_POOLS
                 : kind == WEFT__OBJ_QUEUE ? MAX_QUEUES
                                           : MAX_PIPELINES;
    weft__spin_lock(&reg_lock);
    int s = slot_find(t, n, created ? NULL : obj);
    if (s >= 0 && created) {
        slot_t *sl = &t[s];
        snprintf(sl->name, sizeof(sl->name), "%s", name != NULL ? name : "");
        sl->internal = kind == WEFT__OBJ_QUEUE && is_internal_queue(name);
        sl->since = weft_now();
        memset(sl->prev_busy, 0, sizeof(sl->prev_busy));
        atomic_store_explicit(
            &sl->gen, atomic_load_explicit(&sl->gen, memory_order_relaxed) + 1,
            memory_order_relaxed);
        /* Release: a thread that finds obj here sees the new generation. */
        atomic_store_explicit(&sl->obj, obj, memory_order_release);
    } else if (s >= 0) {
        atomic_store_explicit(&t[s].obj, NULL, memory_order_release);
    }
    if (s >= 0 && kind == WEFT__OBJ_POOL) {
        /* Cached counter arrays of this slot may belong to the old pool. */
        weft__probe_counts_changed();
    }
    weft__spin_unlock(&reg_lock);
}

/* ---------------------------------------------------------- the sink */

static const int ev_ctr[WEFT__POOL_EVS] = {
    [WEFT__POOL_SUBMIT] = C_SUBMIT, [WEFT__POOL_REJECT] = C_REJECT,
    [WEFT__POOL_STEAL] = C_STEAL,   [WEFT__POOL_PARK] = C_PARK,
    [WEFT__POOL_UNPARK] = C_UNPARK, [WEFT__POOL_CANCEL] = C_DROP,
};

/* Closing value of a busy word left open by a spell whose end was missed
 * while collection was off: busy until it was turned off. */
static inline int64_t
busy_closed(int64_t w, weft_time_t end)
{
    return (w & 1) != 0 ? (w - 1) / 2 + end : w / 2;
}

/* A worker's spell changes: busy (found work) or idle (found none). */
static void
busy_mark(pool_cell_t *c, bool busy, int worker)
{
    weft_time_t now = weft_now();
    int64_t w = atomic_load_explicit(&c->busy_w, memory_order_relaxed);
    uint32_t ep = atomic_load_explicit(&epoch, memory_order_relaxed);
    if (WEFT__UNLIKELY(c->epoch != ep)) {
        /* The first spell event since collection was turned on: events
         * were missed while it was off. */
        c->epoch = ep;
        w = 2 *
            busy_closed(w, atomic_load_explicit(&off_at, memory_order_relaxed));
        if (!busy) {
            /* No event since the turn on: busy all along. */
            weft_time_t t = atomic_load_explicit(&on_at, memory_order_relaxed);
            w = 2 * (w / 2 - (t < now ? t : now)) + 1;
        }
    }
    atomic_store_explicit(&c->worker, worker, memory_order_relaxed);
    if (busy && (w & 1) == 0) {
        w = 2 * (w / 2 - now) + 1;
    } else if (!busy && (w & 1) != 0) {
        w = 2 * ((w - 1) / 2 + now);
    }
    atomic_store_explicit(&c->busy_w, w, memory_order_relaxed);
}

static void
on_pool(const void *exec, weft__pool_ev_t ev, int worker)
{
    if (ev == WEFT__POOL_SUBMIT || (unsigned)ev >= WEFT__POOL_EVS) {
        return; /* submits are counted inline (WEFT__PROBE_SUBMIT) */
    }
    pool_cell_t *c = pool_cell(exec);
    if (c == NULL) {
        return;
    }
    if (ev == WEFT__POOL_IDLE || ev == WEFT__POOL_BUSY) {
        if (worker >= 0) {
            busy_mark(c, ev == WEFT__POOL_BUSY, worker);
        }
        return;
    }
    bump(&c->ctr[ev_ctr[ev]], 1);
}

static void
hist_add(hist_cell_t *h, uint64_t v)
{
    bump(&h->b[weft__hist_index(v)], 1);
    bump(&h->sum, v);
    if (v > atomic_load_explicit(&h->max, memory_order_relaxed)) {
        atomic_store_explicit(&h->max, v, memory_order_relaxed);
    }
}

static void
on_task_begin(const void *exec, uint64_t id, const char *label,
              weft_time_t queued_at, int worker, bool sampled)
{
    (void)id;
    (void)label;
    (void)worker;
    uint32_t ep = atomic_load_explicit(&epoch, memory_order_relaxed);
    if (WEFT__UNLIKELY(ep != self_epoch)) {
        self_epoch = ep;
        nest_depth = 0;
    }
    weft_time_t now = 0; /* 0: not timed */
    if (sampled) {
        /* The executor stamped the thread record with the start time just
         * before this probe (weft__job_run_on): one clock read saved. */
        now = atomic_load_explicit(&weft__self_rec()->task_since,
                                   memory_order_relaxed);
        if (WEFT__UNLIKELY(now == 0)) {
            now = weft_now();
        }
    }
    unsigned d = nest_depth++;
    if (d < NEST_MAX) {
        nest[d] = now;
    }
    pool_cell_t *c = pool_cell(exec);
    if (c == NULL) {
        return;
    }
    if (sampled && queued_at != 0 && now >= queued_at) {
        hist_add(&c->wait, (uint64_t)(now - queued_at));
    }
}

static void
on_task_end(const void *exec, uint64_t id, int code, int worker, bool sampled)
{
    (void)id;
    (void)code; /* counted inline */
    (void)worker;
    (void)sampled;
    if (nest_depth == 0) {
        return; /* began before metrics were enabled */
    }
    unsigned d = --nest_depth;
    pool_cell_t *c = pool_cell(exec);
    if (c == NULL) {
        return;
    }
    if (d < NEST_MAX && nest[d] != 0) {
        weft_time_t now = weft_now();
        hist_add(&c->run, now > nest[d] ? (uint64_t)(now - nest[d]) : 0);
    }
}

/* This thread's inline counters for pool exec (probe.h). */
static _Atomic uint64_t *
counts_for(const void *exec)
{
    pool_cell_t *c = pool_cell(exec);
    return c != NULL ? c->ctr : NULL;
}

static const weft__probe_sink_t sink = {
    .pool_event = on_pool,
    .task_begin = on_task_begin,
    .task_end = on_task_end,
    .object_event = on_object,
    .counts = counts_for,
};

static _Atomic uint32_t setup_state; /* 0 no, 1 attached, 2 failed */

static void
setup(void)
{
    weft__spin_lock(&reg_lock);
    if (atomic_load_explicit(&setup_state, memory_order_relaxed) == 0) {
        bool ok = pthread_key_create(&exit_key, block_release) == 0 &&
                  weft__probe_attach(&sink, 0) == WEFT_OK;
        if (ok) {
            weft__probe_set_sample_mask(
                atomic_load_explicit(&sample_every, memory_order_relaxed) - 1);
        }
        atomic_store_explicit(&setup_state, ok ? 1u : 2u, memory_order_release);
    }
    weft__spin_unlock(&reg_lock);
}

/* Attach at load time: object events then list every pool and queue. */
__attribute__((constructor)) static void
metrics_init(void)
{
    setup();
    /* A constructor runs before the program starts threads. */
    const char *every =
        getenv("WEFT_METRICS_SAMPLE"); // NOLINT(concurrency-mt-unsafe)
    if (every != NULL && every[0] != '\0') {
        char *end = NULL;
        unsigned long n = strtoul(every, &end, 10);
        if (end == every || *end != '\0' || n > SAMPLE_MAX ||
            weft_metrics_set_sample((unsigned)n) != WEFT_OK) {
            weft_log(WEFT_LOG_WARN,
                     "WEFT_METRICS_SAMPLE=%s: not a number from 1 to %u; "
                     "the sample stays one task in %u",
                     every, SAMPLE_MAX, weft_metrics_sample());
        }
    }
    const char *env = getenv("WEFT_METRICS"); // NOLINT(concurrency-mt-unsafe)
    if (env != NULL && strcmp(env, "1") == 0) {
        weft_metrics_enable(true);
    }
}

int
weft_metrics_set_sample(unsigned every)
{
    if (every == 0 || every > SAMPLE_MAX) {
        return WEFT_EINVAL;
    }
    unsigned p = 1;
    while (p * 2 <= every) {
        p *= 2;
    }
    /* Under reg_lock: the rate and the probes' mask change together. */
    weft__spin_lock(&reg_lock);
    atomic_store_explicit(&sample_every, p, memory_order_relaxed);
    weft__probe_set_sample_mask(p - 1);
    weft__spin_unlock(&reg_lock);
    return WEFT_OK;
}

unsigned
weft_metrics_sample(void)
{
    return atomic_load_explicit(&sample_every, memory_order_relaxed);
}

void
weft_metrics_enable(bool on)
{
    setup();
    if (atomic_load_explicit(&setup_state, memory_order_acquire) != 1) {
        return;
    }
    if (on) {
        atomic_store_explicit(&on_at, weft_now(), memory_order_relaxed);
        atomic_fetch_add_explicit(&epoch, 1, memory_order_relaxed);
    } else if (atomic_load_explicit(&enabled, memory_order_relaxed)) {
        atomic_store_explicit(&off_at, weft_now(), memory_order_relaxed);
    }
    atomic_store_explicit(&enabled, on, memory_order_relaxed);
    weft__probe_set_mask(&sink, on ? WEFT__PROBE_COUNT : 0);
}

bool
weft_metrics_enabled(void)
{
    return atomic_load_explicit(&enabled, memory_order_relaxed);
}

/* ------------------------------------------------------------ snapshots */

static void
merge_hist(weft__hist_full_t *out, hist_cell_t *h)
{
    for (unsigned k = 0; k < WEFT__HIST_NB; k++) {
        out->b[k] += atomic_load_explicit(&h->b[k], memory_order_relaxed);
    }
    out->sum += atomic_load_explicit(&h->sum, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&h->max, memory_order_relaxed);
    out->max = m > out->max ? m : out->max;
}

/* Sum the cells of pool slot s into p, hs and busy (per worker). */
static void
merge_pool(unsigned s, uint64_t ctr[NCTR], weft__hist_full_t hs[2],
           uint64_t *busy, unsigned nworkers, weft_time_t now)
{
    uint32_t gen = atomic_load_explicit(&pools[s].gen, memory_order_relaxed);
    for (tblock_t *b = atomic_load_explicit(&blocks, memory_order_acquire);
         b != NULL; b = b->next) {
        pool_cell_t *c =
            atomic_load_explicit(&b->pools[s], memory_order_acquire);
        /* Acquire: pairs with the release store of gen in pool_cell_reset
         * (the counters read are of this generation, or later). */
        if (c == NULL ||
            atomic_load_explicit(&c->gen, memory_order_acquire) != gen) {
            continue;
        }
        /* Later events first, with acquire (the owner bumps counters
         * with release, probe.h): a thread counts an unpark after its
         * park and an end after its start, so the sums never show more
         * unparks than parks or more ends than starts. */
        for (unsigned k = NCTR; k-- > 0;) {
            ctr[k] += atomic_load_explicit(&c->ctr[k], memory_order_acquire);
        }
        merge_hist(&hs[0], &c->wait);
        merge_hist(&hs[1], &c->run);
        int w = atomic_load_explicit(&c->worker, memory_order_relaxed);
        if (w >= 0 && (unsigned)w < nworkers && w < MAX_WORKERS) {
            int64_t bw = atomic_load_explicit(&c->busy_w, memory_order_relaxed);
            /* While collection is off an open spell ends when it went
             * off (its end will not be seen). */
            weft_time_t end =
                atomic_load_explicit(&enabled, memory_order_relaxed)
                    ? now
                    : atomic_load_explicit(&off_at, memory_order_relaxed);
            int64_t tb = busy_closed(bw, end);
            busy[w] += tb > 0 ? (uint64_t)tb : 0;
        }
    }
}

void
weft__hist_summarise(const weft__hist_full_t *h, weft_metrics_hist_t *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t n = 0;
    for (unsigned k = 0; k < WEFT__HIST_NB; k++) {
        n += h->b[k];
    }
    out->count = n;
    if (n == 0) {
        return;
    }
    out->sum_ns = h->sum;
    out->max_ns = h->max;
    const unsigned qs[3] = {50, 90, 99};
    uint64_t *dst[3] = {&out->p50_ns, &out->p90_ns, &out->p99_ns};
    for (unsigned q = 0; q < 3; q++) {
        uint64_t rank = (n * qs[q] + 99) / 100, cum = 0;
        for (unsigned k = 0; k < WEFT__HIST_NB; k++) {
            cum += h->b[k];
            if (cum >= rank) {
                uint64_t up = weft__hist_upper(k);
                *dst[q] = up < h->max ? up : h->max;
                break;
            }
        }
    }
}

static void
fill_pool(unsigned s, weft_metrics_pool_t *p, weft__hist_full_t hs[2],
          weft_time_t now)
{
    slot_t *sl = &pools[s];
    const weft_executor_t *ex =
        atomic_load_explicit(&sl->obj, memory_order_relaxed);
    weft__pool_gauges_t g;
    memset(&g, 0, sizeof(g));
    (void)weft__pool_gauges(ex, &g);
    snprintf(p->name, sizeof(p->name), "%s", sl->name);
    p->workers = g.workers;
    p->queue_depth = g.queued + g.deque_frames;
    p->idle = g.idle;
    p->running = g.workers - (g.idle < g.workers ? g.idle : g.workers);
    p->lane_threads = g.lane_threads;
    uint64_t ctr[NCTR] = {0};
    uint64_t busy[MAX_WORKERS] = {0};
    unsigned nw = g.workers < MAX_WORKERS ? g.workers : MAX_WORKERS;
    merge_pool(s, ctr, hs, busy, nw, now);
    p->submitted = ctr[C_SUBMIT];
    p->started = ctr[C_START];
    p->completed = ctr[C_OK];
    p->failed = ctr[C_FAIL];
    p->cancelled = ctr[C_CANCEL] + ctr[C_DROP];
    p->rejected = ctr[C_REJECT];
    p->stolen = ctr[C_STEAL];
    p->parked = ctr[C_PARK];
    p->unparked = ctr[C_UNPARK];
    weft__hist_summarise(&hs[0], &p->wait);
    weft__hist_summarise(&hs[1], &p->run);
    uint64_t win = now > sl->since ? (uint64_t)(now - sl->since) : 1;
    p->window_s = (double)win / 1e9;
    for (unsigned w = 0; w < nw; w++) {
        uint64_t d =
            busy[w] > sl->prev_busy[w] ? busy[w] - sl->prev_busy[w] : 0;
        double u = (double)d / (double)win;
        p->utilisation[w] = u > 1.0 ? 1.0 : u;
        sl->prev_busy[w] = busy[w];
    }
    sl->since = now;
}

static void
fill_queue(unsigned s, weft_metrics_queue_t *q)
{
    slot_t *sl = &queues[s];
    const weft_queue_t *wq =
        atomic_load_explicit(&sl->obj, memory_order_relaxed);
    snprintf(q->name, sizeof(q->name), "%s", sl->name);
    /* The queue counts its own puts (always, whether metrics are on or
     * not; no queue probe needed); gets are puts minus what is held. Size
     * first: puts read later is at least as new, so gets never goes
     * negative and never runs ahead of the real count by more than the
     * puts that raced with the read. */
    size_t depth = weft_queue_size(wq);
    uint64_t puts = wq->ops->puts(wq);
    q->depth = depth;
    q->puts = puts;
    q->gets = puts >= depth ? puts - depth : 0;
    size_t cap = weft_queue_capacity(wq);
    q->capacity = cap == WEFT_QUEUE_UNBOUNDED ? 0 : cap;
}

void
weft__metrics_full_free(weft__metrics_full_t *f)
{
    weft_metrics_snapshot_free(f->s);
    weft__free(f->hist);
    f->s = NULL;
    f->hist = NULL;
}

static int
alloc_full(weft__metrics_full_t *f, size_t np, size_t nq, size_t nl)
{
    weft_metrics_snapshot_t *s = weft__calloc(1, sizeof(*s));
    f->s = s;
    f->hist = weft__calloc(np * 2 + 1, sizeof(weft__hist_full_t));
    if (s == NULL || f->hist == NULL) {
        return WEFT_ENOMEM;
    }
    s->pools = weft__calloc(np + 1, sizeof(*s->pools));
    s->queues = weft__calloc(nq + 1, sizeof(*s->queues));
    s->pipelines = weft__calloc(nl + 1, sizeof(*s->pipelines));
    if (s->pools == NULL || s->queues == NULL || s->pipelines == NULL) {
        return WEFT_ENOMEM;
    }
    return WEFT_OK;
}

int
weft__metrics_take(weft__metrics_full_t *f)
{
    setup();
    /* Holding reg_lock keeps every listed object alive: destroy sends its
     * object event (which takes the lock) before it frees anything. */
    weft__spin_lock(&reg_lock);
    size_t np = 0, nq = 0, nl = 0;
    unsigned ps[MAX_POOLS], qs[MAX_QUEUES], ls[MAX_PIPELINES];
    for (unsigned i = 0; i < MAX_POOLS; i++) {
        if (atomic_load_explicit(&pools[i].obj, memory_order_relaxed)) {
            ps[np++] = i;
        }
    }
    for (unsigned i = 0; i < MAX_QUEUES; i++) {
        if (atomic_load_explicit(&queues[i].obj, memory_order_relaxed) &&
            !queues[i].internal) {
            qs[nq++] = i;
        }
    }
    for (unsigned i = 0; i < MAX_PIPELINES; i++) {
        if (atomic_load_explicit(&pipes[i].obj, memory_order_relaxed)) {
            ls[nl++] = i;
        }
    }
    int rc = alloc_full(f, np, nq, nl);
    for (size_t i = 0; rc == WEFT_OK && i < np; i++) {
        unsigned w = weft_pool_workers(
            atomic_load_explicit(&pools[ps[i]].obj, memory_order_relaxed));
        f->s->pools[i].utilisation = weft__calloc(w + 1, sizeof(double));
        rc = f->s->pools[i].utilisation == NULL ? WEFT_ENOMEM : WEFT_OK;
        f->s->npools = i + 1;
    }
    if (rc != WEFT_OK) {
        weft__spin_unlock(&reg_lock);
        weft__metrics_full_free(f);
        return rc;
    }
    weft_time_t now = weft_now();
    f->s->taken_at = now;
    f->s->sample_every =
        atomic_load_explicit(&sample_every, memory_order_relaxed);
    for (size_t i = 0; i < np; i++) {
        fill_pool(ps[i], &f->s->pools[i], &f->hist[2 * i], now);
    }
    for (size_t i = 0; i < nq; i++) {
        fill_queue(qs[i], &f->s->queues[i]);
    }
    f->s->nqueues = nq;
    for (size_t i = 0; rc == WEFT_OK && i < nl; i++) {
        const weft_pipeline_t *pl =
            atomic_load_explicit(&pipes[ls[i]].obj, memory_order_relaxed);
        rc = weft_pipeline_stats(pl, &f->s->pipelines[i]);
        f->s->npipelines = rc == WEFT_OK ? i + 1 : i;
    }
    weft__spin_unlock(&reg_lock);
    if (rc != WEFT_OK) {
        weft__metrics_full_free(f);
    }
    return rc;
}

int
weft_metrics_snapshot(weft_metrics_snapshot_t **out)
{
    if (out == NULL) {
        return WEFT_EINVAL;
    }
    weft__metrics_full_t f = {NULL, NULL};
    int rc = weft__metrics_take(&f);
    if (rc == WEFT_OK) {
        *out = f.s;
        weft__free(f.hist);
    }
    return rc;
}

void
weft_metrics_snapshot_free(weft_metrics_snapshot_t *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; s->pools != NULL && i < s->npools; i++) {
        weft__free(s->pools[i].utilisation);
    }
    weft__free(s->pools);
    weft__free(s->queues);
    for (size_t i = 0; s->pipelines != NULL && i < s->npipelines; i++) {
        weft_pipeline_stats_free(&s->pipelines[i]);
    }
    weft__free(s->pipelines);
    weft__free(s);
}
