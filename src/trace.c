/* SPDX-License-Identifier: MIT */
/*
 * Timeline trace recorder: a probe sink that appends every task, pool event
 * and blocking wait to a bounded ring of the thread that hit the probe.
 * trace_json.c writes the rings out.
 *
 * DESIGN
 * Rings: one per thread, allocated at the thread's first event and linked
 * on a global list under a spinlock (list_lock). A ring is never freed while
 * a thread may write it or the writer may read it: it is reused. When its
 * owner exits (a pthread key destructor) the ring keeps its events, which
 * belong to the current trace, and becomes free for another thread once a
 * later trace starts (only then are its events stale). Rings of a capacity
 * no longer asked for are freed by weft_trace_start, when no thread owns
 * them and the control lock keeps the writer out.
 * Generations: each weft_trace_start bumps gen. A thread that finds its
 * ring's gen stale resets it itself (base = head) before its next event, so
 * start never touches a ring another thread writes.
 * Ring protocol (single writer, one reader at a time): the owner stores an
 * event's words with release, then head = i + 1 with release. The reader
 * loads head (acquire), copies slots with acquire loads, then loads head
 * again: a slot it copied is valid only if its event number is above
 * head - cap, since the owner overwrites event j only after publishing
 * head = j + cap, and the release store of the overwriting word, once seen
 * by an acquire copy, makes that head visible to the second load.
 * Stopping: a recorder raises its ring's busy flag, then checks active;
 * weft_trace_stop clears active, then waits for every busy flag to fall
 * (both seq_cst: Dekker), so no event lands after stop returns.
 * Lock order: ctl (a pthread mutex: start, stop, write) before list_lock.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/thread.h>
#include <weft/trace.h>

#include "plat.h"
#include "probe.h"
#include "trace_impl.h"

#define DEFAULT_EVENTS ((size_t)1 << 16)
#define MIN_EVENTS ((size_t)16)
#define MAX_EVENTS ((size_t)1 << 24)

static pthread_mutex_t ctl = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint32_t list_lock;
static weft__trace_ring_t *rings; /* list_lock */

static _Atomic uint32_t gen;        /* current trace; 0: none yet */
static _Atomic uint32_t active;     /* recording */
static _Atomic size_t ring_cap;     /* capacity for the current trace */
static _Atomic uint64_t no_memory;  /* events lost for lack of a ring */
static weft_time_t t_start, t_stop; /* ctl */
static bool attached;               /* ctl */

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
static bool key_ok;

/* A thread's ring; &exited once its exit destructor ran. */
static _Thread_local weft__trace_ring_t *self_ring;
static weft__trace_ring_t exited;

/* ------------------------------------------------------------------------ */
/* Ring ownership                                                            */

static void
on_thread_exit(void *arg)
{
    weft__trace_ring_t *r = arg;
    self_ring = &exited; /* later events of this thread are not recorded */
    /* Release: pairs with the acquire load in adopt_free, so a thread that
     * adopts the ring sees the last writes of this one. */
    atomic_store_explicit(&r->in_use, 0, memory_order_release);
}

static void
key_init(void)
{
    key_ok = pthread_key_create(&exit_key, on_thread_exit) == 0;
}

/* Make r the caller's ring for trace g (r owned by the caller). */
static void
ring_reset(weft__trace_ring_t *r, uint32_t g)
{
    uint64_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
    atomic_store_explicit(&r->base, h, memory_order_relaxed);
    /* Release: the writer that sees gen g (acquire) sees the new base. */
    atomic_store_explicit(&r->gen, g, memory_order_release);
}

static void
ring_name_self(weft__trace_ring_t *r)
{
    snprintf(r->name, sizeof r->name, "%s", weft_thread_name());
}

/* A free ring of capacity cap from an earlier trace, now owned by the
 * caller; NULL when there is none. */
static weft__trace_ring_t *
adopt_free(size_t cap, uint32_t g)
{
    weft__trace_ring_t *found = NULL;
    weft__spin_lock(&list_lock);
    for (weft__trace_ring_t *r = rings; r != NULL; r = r->next) {
        /* Acquire: pairs with the release in on_thread_exit. */
        if (r->cap == cap &&
            atomic_load_explicit(&r->in_use, memory_order_acquire) == 0 &&
            atomic_load_explicit(&r->gen, memory_order_relaxed) != g) {
            atomic_store_explicit(&r->in_use, 1, memory_order_relaxed);
            atomic_store_explicit(&r->tid, weft__self_id(),
                                  memory_order_relaxed);
            ring_name_self(r);
            found = r;
            break;
        }
    }
    weft__spin_unlock(&list_lock);
    return found;
}

static weft__trace_ring_t *
ring_new(size_t cap)
{
    weft__trace_ring_t *r = weft__calloc(1, sizeof *r);
    if (r == NULL) {
        return NULL;
    }
    /* calloc: large rings come from fresh mappings, committed as they
     * fill, so a thread with few events costs little memory. */
    r->slots = weft__calloc(cap * WEFT__TEV_WORDS, sizeof(uint64_t));
    if (r->slots == NULL) {
        weft__free(r);
        return NULL;
    }
    r->cap = cap;
    atomic_init(&r->in_use, 1);
    atomic_init(&r->tid, weft__self_id());
    ring_name_self(r);
    weft__spin_lock(&list_lock);
    r->next = rings;
    rings = r;
    weft__spin_unlock(&list_lock);
    return r;
}

/* The caller's ring for trace g, or NULL (not recording). */
static WEFT__COLD weft__trace_ring_t *
ring_acquire(weft__trace_ring_t *old, uint32_t g)
{
    if (old == &exited) {
        return NULL;
    }
    size_t cap = atomic_load_explicit(&ring_cap, memory_order_relaxed);
    if (old != NULL && old->cap == cap) {
        ring_reset(old, g);
        return old;
    }
    if (old != NULL) { /* capacity changed: give the old ring up */
        atomic_store_explicit(&old->in_use, 0, memory_order_release);
    }
    (void)pthread_once(&key_once, key_init);
    weft__trace_ring_t *r = adopt_free(cap, g);
    if (r == NULL) {
        r = ring_new(cap);
    }
    if (r == NULL || !key_ok || pthread_setspecific(exit_key, r) != 0) {
        if (r != NULL) {
            atomic_store_explicit(&r->in_use, 0, memory_order_release);
        }
        self_ring = NULL;
        return NULL;
    }
    ring_reset(r, g);
    self_ring = r;
    return r;
}

static inline weft__trace_ring_t *
ring_self(void)
{
    uint32_t g = atomic_load_explicit(&gen, memory_order_relaxed);
    weft__trace_ring_t *r = self_ring;
    /* Relaxed: the owner reads its own ring's gen. */
    if (WEFT__LIKELY(r != NULL && r != &exited &&
                     atomic_load_explicit(&r->gen, memory_order_relaxed) ==
                         g)) {
        return r;
    }
    return ring_acquire(r, g);
}

/* ------------------------------------------------------------------------ */
/* Recording                                                                 */

static inline void
put_words(weft__trace_ring_t *r, uint64_t i, const uint64_t w[4])
{
    _Atomic uint64_t *s = &r->slots[(i & (r->cap - 1)) * WEFT__TEV_WORDS];
    for (int k = 0; k < WEFT__TEV_WORDS; k++) {
        /* Release: pairs with the writer's acquire copy (see DESIGN). */
        atomic_store_explicit(&s[k], w[k], memory_order_release);
    }
}

static inline uint64_t
meta(unsigned type, unsigned kind, int worker, int code)
{
    return (uint64_t)type | (uint64_t)(kind & 0xffu) << 8 |
           (uint64_t)((uint32_t)(worker + 1) & 0xffffu) << 16 |
           (uint64_t)(uint32_t)code << 32;
}

/* Append one event and up to WEFT__TEV_LABEL_SLOTS label slots. */
static void
record(unsigned type, unsigned kind, int worker, int code, uint64_t id,
       uint64_t aux, const char *label)
{
    if (atomic_load_explicit(&active, memory_order_relaxed) == 0) {
        return; /* a probe that raced with weft_trace_stop */
    }
    /* The time first: a thread's first event waits for its ring. */
    uint64_t ts = (uint64_t)weft_now();
    weft__trace_ring_t *r = ring_self();
    if (r == NULL) {
        atomic_fetch_add_explicit(&no_memory, 1, memory_order_relaxed);
        return;
    }
    /* Seq_cst store then load, against weft_trace_stop's store of active
     * then load of busy (Dekker): either we see the stop, or it waits for
     * this event. */
    atomic_store_explicit(&r->busy, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&active, memory_order_seq_cst) == 0) {
        atomic_store_explicit(&r->busy, 0, memory_order_release);
        return;
    }
    uint64_t i = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t w[4] = {ts, meta(type, kind, worker, code), id, aux};
    put_words(r, i++, w);
    if (label != NULL) {
        size_t len = strnlen(label, WEFT__TEV_LABEL_MAX);
        for (size_t k = 0; k * WEFT__TEV_LABEL_CHUNK < len; k++) {
            char b[WEFT__TEV_LABEL_CHUNK] = {0};
            size_t off = k * WEFT__TEV_LABEL_CHUNK;
            size_t n = len - off < sizeof b ? len - off : sizeof b;
            memcpy(b, label + off, n);
            memcpy(&w[0], b, 8);
            memcpy(&w[2], b + 8, 8);
            memcpy(&w[3], b + 16, 8);
            w[1] = meta(WEFT__TEV_LABEL, (unsigned)k, -1, 0);
            put_words(r, i++, w);
        }
    }
    /* Release: the writer that reads this head (acquire) sees the words. */
    atomic_store_explicit(&r->head, i, memory_order_release);
    /* Release: pairs with the acquire load in wait_recorders. */
    atomic_store_explicit(&r->busy, 0, memory_order_release);
}

static void
sink_pool(const void *exec, weft__pool_ev_t ev, int worker)
{
    if (ev == WEFT__POOL_IDLE || ev == WEFT__POOL_BUSY) {
        return; /* the task slices show the busy spells */
    }
    record(WEFT__TEV_POOL, (unsigned)ev, worker, 0, (uintptr_t)exec, 0, NULL);
}

static void
sink_task_begin(const void *exec, uint64_t id, const char *label,
                weft_time_t queued_at, int worker, bool sampled)
{
    (void)exec;
    (void)sampled; /* tracing times every task (WEFT__PROBE_TIMING) */
    record(WEFT__TEV_TASK_B, 0, worker, 0, id, (uint64_t)queued_at, label);
}

static void
sink_task_end(const void *exec, uint64_t id, int code, int worker, bool sampled)
{
    (void)exec;
    (void)sampled;
    record(WEFT__TEV_TASK_E, 0, worker, code, id, 0, NULL);
}

static void
sink_wait_begin(weft__wait_kind_t kind, const void *obj)
{
    record(WEFT__TEV_WAIT_B, (unsigned)kind, -1, 0, (uintptr_t)obj, 0, NULL);
}

static void
sink_wait_end(weft__wait_kind_t kind, const void *obj, int rc)
{
    record(WEFT__TEV_WAIT_E, (unsigned)kind, -1, rc, (uintptr_t)obj, 0, NULL);
}

static const weft__probe_sink_t sink = {
    .pool_event = sink_pool,
    .task_begin = sink_task_begin,
    .task_end = sink_task_end,
    .wait_begin = sink_wait_begin,
    .wait_end = sink_wait_end,
};

/* ------------------------------------------------------------------------ */
/* Control                                                                   */

void
weft__trace_lock(void)
{
    (void)pthread_mutex_lock(&ctl);
}

void
weft__trace_unlock(void)
{
    (void)pthread_mutex_unlock(&ctl);
}

/* Free the rings nobody owns whose capacity is not cap (ctl held: the
 * writer is out; in_use 0: no thread writes them). */
static void
free_unused(size_t cap)
{
    weft__trace_ring_t *dead = NULL;
    weft__spin_lock(&list_lock);
    for (weft__trace_ring_t **p = &rings; *p != NULL;) {
        weft__trace_ring_t *r = *p;
        if (r->cap != cap &&
            atomic_load_explicit(&r->in_use, memory_order_acquire) == 0) {
            *p = r->next;
            r->next = dead;
            dead = r;
        } else {
            p = &r->next;
        }
    }
    weft__spin_unlock(&list_lock);
    while (dead != NULL) {
        weft__trace_ring_t *r = dead;
        dead = r->next;
        weft__free(r->slots);
        weft__free(r);
    }
}

static size_t
round_cap(size_t n)
{
    size_t cap = MIN_EVENTS;
    while (cap < n) {
        cap <<= 1;
    }
    return cap;
}

int
weft_trace_start(const weft_trace_opts_t *opts)
{
    size_t want = opts != NULL && opts->ring_events != 0 ? opts->ring_events
                                                         : DEFAULT_EVENTS;
    if (want > MAX_EVENTS) {
        return WEFT_EINVAL;
    }
    int rc = WEFT_OK;
    weft__trace_lock();
    if (atomic_load_explicit(&active, memory_order_relaxed) != 0) {
        rc = WEFT_EBUSY;
        goto out;
    }
    if (!attached) {
        rc = weft__probe_attach(&sink, 0);
        if (rc != WEFT_OK) {
            goto out;
        }
        attached = true;
    }
    size_t cap = round_cap(want);
    free_unused(cap);
    atomic_store_explicit(&ring_cap, cap, memory_order_relaxed);
    atomic_store_explicit(&no_memory, 0, memory_order_relaxed);
    t_start = weft_now();
    /* Seq_cst: a thread that sees the new gen (or active) also sees the
     * capacity stored above. */
    atomic_fetch_add_explicit(&gen, 1, memory_order_seq_cst);
    atomic_store_explicit(&active, 1, memory_order_seq_cst);
    /* POOL events come with the TASK mask. */
    weft__probe_set_mask(&sink, WEFT__PROBE_TASK | WEFT__PROBE_WAIT |
                                    WEFT__PROBE_TIMING | WEFT__PROBE_SLICE);
out:
    weft__trace_unlock();
    return rc;
}

/* Wait until no thread is writing an event (after active was cleared: see
 * record). Recorders take no lock while they write, so holding list_lock
 * here cannot block them. */
static void
wait_recorders(void)
{
    weft__spin_lock(&list_lock);
    for (weft__trace_ring_t *r = rings; r != NULL; r = r->next) {
        while (atomic_load_explicit(&r->busy, memory_order_seq_cst) != 0) {
            weft_thread_yield();
        }
    }
    weft__spin_unlock(&list_lock);
}

void
weft_trace_stop(void)
{
    weft__trace_lock();
    if (atomic_load_explicit(&active, memory_order_relaxed) != 0) {
        weft__probe_set_mask(&sink, 0);
        atomic_store_explicit(&active, 0, memory_order_seq_cst);
        wait_recorders();
        t_stop = weft_now();
    }
    weft__trace_unlock();
}

bool
weft_trace_active(void)
{
    return atomic_load_explicit(&active, memory_order_acquire) != 0;
}

/* How many rings hold events of trace g. */
static size_t
count_rings(uint32_t g)
{
    size_t n = 0;
    weft__spin_lock(&list_lock);
    for (weft__trace_ring_t *r = rings; r != NULL; r = r->next) {
        n += atomic_load_explicit(&r->gen, memory_order_acquire) == g;
    }
    weft__spin_unlock(&list_lock);
    return n;
}

void
weft__trace_ring_name(weft__trace_ring_t *r, char *buf, size_t len)
{
    weft__spin_lock(&list_lock);
    snprintf(buf, len, "%s", r->name);
    weft__spin_unlock(&list_lock);
}

int
weft__trace_snapshot(weft__trace_snap_t *s)
{
    uint32_t g = atomic_load_explicit(&gen, memory_order_acquire);
    memset(s, 0, sizeof *s);
    s->gen = g;
    s->t0 = t_start;
    s->t_end = atomic_load_explicit(&active, memory_order_relaxed) != 0
                   ? weft_now()
                   : t_stop;
    s->dropped = atomic_load_explicit(&no_memory, memory_order_relaxed);
    if (g == 0) {
        return WEFT_OK;
    }
    /* New rings may join between the count and the copy: count again. */
    for (;;) {
        size_t n = count_rings(g);
        weft__trace_ring_t **v =
            weft__calloc(n + 1, sizeof(weft__trace_ring_t *));
        if (v == NULL) {
            return WEFT_ENOMEM;
        }
        weft__spin_lock(&list_lock);
        size_t m = 0;
        for (weft__trace_ring_t *r = rings; r != NULL; r = r->next) {
            if (atomic_load_explicit(&r->gen, memory_order_acquire) == g) {
                if (m == n) {
                    m++;
                    break;
                }
                v[m++] = r;
            }
        }
        weft__spin_unlock(&list_lock);
        if (m <= n) {
            s->rings = v;
            s->n = m;
            return WEFT_OK;
        }
        weft__free(v);
    }
}

/* Events held and dropped by r in trace g. */
static void
ring_counts(weft__trace_ring_t *r, uint32_t g, uint64_t *held, uint64_t *lost)
{
    if (atomic_load_explicit(&r->gen, memory_order_acquire) != g) {
        return;
    }
    uint64_t b = atomic_load_explicit(&r->base, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t n = h - b;
    *held += n < r->cap ? n : r->cap;
    *lost += n > r->cap ? n - r->cap : 0;
}

static void
totals(uint64_t *held, uint64_t *lost)
{
    uint32_t g = atomic_load_explicit(&gen, memory_order_acquire);
    *held = 0;
    *lost = atomic_load_explicit(&no_memory, memory_order_relaxed);
    if (g == 0) {
        return;
    }
    weft__spin_lock(&list_lock);
    for (weft__trace_ring_t *r = rings; r != NULL; r = r->next) {
        ring_counts(r, g, held, lost);
    }
    weft__spin_unlock(&list_lock);
}

uint64_t
weft_trace_dropped(void)
{
    uint64_t held, lost;
    totals(&held, &lost);
    return lost;
}

uint64_t
weft_trace_events(void)
{
    uint64_t held, lost;
    totals(&held, &lost);
    return held;
}

/* ------------------------------------------------------------------------ */
/* Reading a ring (the writer)                                               */

static void
decode(const uint64_t w[4], weft__tev_t *e)
{
    e->ts = (weft_time_t)w[0];
    e->type = (uint8_t)(w[1] & 0xffu);
    e->kind = (uint8_t)(w[1] >> 8 & 0xffu);
    e->worker = (int)(w[1] >> 16 & 0xffffu) - 1;
    e->code = (int)(int32_t)(uint32_t)(w[1] >> 32);
    e->id = w[2];
    e->aux = w[3];
    e->label[0] = '\0';
}

/* Append a label slot's bytes to e's label. */
static void
add_label(weft__tev_t *e, const uint64_t w[4])
{
    size_t k = (size_t)(w[1] >> 8 & 0xffu);
    if (k >= WEFT__TEV_LABEL_SLOTS ||
        strlen(e->label) != k * WEFT__TEV_LABEL_CHUNK) {
        return; /* not the next part */
    }
    char *d = e->label + k * WEFT__TEV_LABEL_CHUNK;
    memcpy(d, &w[0], 8);
    memcpy(d + 8, &w[2], 8);
    memcpy(d + 16, &w[3], 8);
    d[24] = '\0';
}

size_t
weft__trace_ring_read(weft__trace_ring_t *r, uint32_t gen_, weft__tev_t *out,
                      uint64_t *lost)
{
    *lost = 0;
    if (atomic_load_explicit(&r->gen, memory_order_acquire) != gen_) {
        return 0;
    }
    uint64_t b = atomic_load_explicit(&r->base, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t lo = h - b > r->cap ? h - r->cap : b;
    size_t n = 0;
    for (uint64_t i = lo; i < h; i++) {
        const _Atomic uint64_t *s =
            &r->slots[(i & (r->cap - 1)) * WEFT__TEV_WORDS];
        uint64_t w[4];
        for (int k = 0; k < WEFT__TEV_WORDS; k++) {
            w[k] = atomic_load_explicit(&s[k], memory_order_acquire);
        }
        if ((w[1] & 0xffu) == WEFT__TEV_LABEL) {
            if (n > 0 && out[n - 1].type == WEFT__TEV_TASK_B) {
                add_label(&out[n - 1], w);
            }
            continue;
        }
        decode(w, &out[n]);
        out[n++].seq = i;
    }
    /* Events the owner may have overwritten while we copied are invalid:
     * keep those numbered above head - cap (see DESIGN). Their label slots
     * come after them, so a kept event has its whole label. */
    uint64_t h2 = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t valid_from = h2 >= r->cap ? h2 - r->cap + 1 : 0;
    *lost = h2 - b > r->cap ? h2 - b - r->cap : 0;
    size_t skip = 0;
    while (skip < n && out[skip].seq < valid_from) {
        skip++;
    }
    if (skip > 0) {
        memmove(out, out + skip, (n - skip) * sizeof *out);
    }
    return n - skip;
}

/* ------------------------------------------------------------------------ */
/* Names                                                                     */

const char *
weft__trace_wait_name(unsigned kind)
{
    static const char *const names[WEFT__WAIT_KINDS] = {
        "none",      "mutex",
        "rlock",     "sem",
        "event",     "cond",
        "barrier",   "once",
        "queue get", "queue put",
        "future",    "group",
        "scope",     "completion queue",
        "sleep",     "join",
        "idle",      "select"};
    return kind < WEFT__WAIT_KINDS ? names[kind] : "other";
}

const char *
weft__trace_pool_name(unsigned ev)
{
    static const char *const names[WEFT__POOL_EVS] = {
        "submit", "reject", "steal", "park",
        "unpark", "cancel", "idle",  "busy"};
    return ev < WEFT__POOL_EVS ? names[ev] : "pool";
}

/* ------------------------------------------------------------------------ */
/* WEFT_TRACE=<path>: trace the whole run of any program linked with weft   */

static char env_path[4096];

static void
env_write(void)
{
    weft_trace_stop();
    int rc = weft_trace_write(env_path);
    if (rc != WEFT_OK) {
        weft_log(WEFT_LOG_ERROR, "WEFT_TRACE: cannot write %s: %s", env_path,
                 weft_strerror(rc));
    } else {
        weft_log(WEFT_LOG_INFO,
                 "WEFT_TRACE: wrote %s (%llu events, %llu "
                 "dropped)",
                 env_path, (unsigned long long)weft_trace_events(),
                 (unsigned long long)weft_trace_dropped());
    }
}

__attribute__((constructor)) static void
env_start(void)
{
    /* At load time, before the program starts threads. */
    const char *path = getenv("WEFT_TRACE"); // NOLINT(concurrency-mt-unsafe)
    if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof env_path) {
        return;
    }
    snprintf(env_path, sizeof env_path, "%s", path);
    weft_trace_opts_t o = WEFT_TRACE_OPTS_INIT;
    const char *events =
        getenv("WEFT_TRACE_EVENTS"); // NOLINT(concurrency-mt-unsafe)
    if (events != NULL) {
        o.ring_events = (size_t)strtoull(events, NULL, 10);
    }
    int rc = weft_trace_start(&o);
    if (rc != WEFT_OK || atexit(env_write) != 0) {
        weft_log(WEFT_LOG_ERROR, "WEFT_TRACE: cannot start tracing: %s",
                 weft_strerror(rc));
    }
}
