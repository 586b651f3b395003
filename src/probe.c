/* SPDX-License-Identifier: MIT */
/*
 * Probe dispatch and the per-thread records (see probe.h).
 *
 * DESIGN
 * Sinks: a fixed array of at most MAX_SINKS, appended under a spinlock and
 * never removed, so dispatchers read it without a lock (the count is
 * published with release after the slot is written). A sink's mask is
 * atomic; the global mask is the union, recomputed on every change.
 * Records: one record per thread, in its static TLS, on a global list
 * guarded by a spinlock (not a weft mutex: the mutex's slow path itself
 * records waits, which would recurse into the registry). The platform's
 * thread-exit hook unlinks it. Readers (dumps) walk the list under the
 * spinlock and read the fields as relaxed snapshots.
 */
#include <stdio.h>
#include <string.h>

#include <weft/thread.h>

#include "plat.h"
#include "probe.h"

#define MAX_SINKS 4

_Atomic uint32_t weft__probe_mask;
_Atomic uint64_t weft__probe_sample_mask;
_Atomic uint32_t weft__counts_gen = 1; /* the caches start at 0: a miss */
_Thread_local weft__counts_cache_t weft__counts_cache;

typedef struct sink_slot {
    const weft__probe_sink_t *sink;
    _Atomic uint32_t mask;
} sink_slot_t;

static sink_slot_t sinks[MAX_SINKS];
static _Atomic unsigned nsinks;
static _Atomic uint32_t sink_lock;

static void
recompute_mask(void)
{
    uint32_t m = 0;
    unsigned n = atomic_load_explicit(&nsinks, memory_order_acquire);
    for (unsigned i = 0; i < n; i++) {
        m |= atomic_load_explicit(&sinks[i].mask, memory_order_relaxed);
    }
    atomic_store_explicit(&weft__probe_mask, m, memory_order_release);
}

int
weft__probe_attach(const weft__probe_sink_t *sink, uint32_t mask)
{
    weft__spin_lock(&sink_lock);
    unsigned n = atomic_load_explicit(&nsinks, memory_order_relaxed);
    if (n == MAX_SINKS) {
        weft__spin_unlock(&sink_lock);
        return WEFT_EAGAIN;
    }
    sinks[n].sink = sink;
    atomic_store_explicit(&sinks[n].mask, mask, memory_order_relaxed);
    /* Release: dispatchers that read the new count see the slot. */
    atomic_store_explicit(&nsinks, n + 1, memory_order_release);
    recompute_mask();
    weft__spin_unlock(&sink_lock);
    return WEFT_OK;
}

void
weft__probe_set_mask(const weft__probe_sink_t *sink, uint32_t mask)
{
    weft__spin_lock(&sink_lock);
    unsigned n = atomic_load_explicit(&nsinks, memory_order_relaxed);
    for (unsigned i = 0; i < n; i++) {
        if (sinks[i].sink == sink) {
            atomic_store_explicit(&sinks[i].mask, mask, memory_order_relaxed);
        }
    }
    recompute_mask();
    weft__spin_unlock(&sink_lock);
}

void
weft__probe_set_sample_mask(uint64_t mask)
{
    atomic_store_explicit(&weft__probe_sample_mask, mask, memory_order_relaxed);
}

/* Iterate the sinks that want bit and have the callback. */
#define FOR_SINKS(bit, cb, call)                                               \
    do {                                                                       \
        unsigned n_ = atomic_load_explicit(&nsinks, memory_order_acquire);     \
        for (unsigned i_ = 0; i_ < n_; i_++) {                                 \
            const weft__probe_sink_t *s_ = sinks[i_].sink;                     \
            if ((atomic_load_explicit(&sinks[i_].mask, memory_order_relaxed) & \
                 (bit)) != 0 &&                                                \
                s_->cb != NULL) {                                              \
                s_->call;                                                      \
            }                                                                  \
        }                                                                      \
    } while (0)

void
weft__probe_pool_event(const void *exec, weft__pool_ev_t ev, int worker)
{
    FOR_SINKS(WEFT__PROBE_TASK | WEFT__PROBE_COUNT, pool_event,
              pool_event(exec, ev, worker));
}

/* Task begin and end: every one for TASK sinks, the sampled ones for the
 * counting sink. */
void
weft__probe_task_begin(const void *exec, uint64_t id, const char *label,
                       weft_time_t queued_at, int worker, bool sampled)
{
    FOR_SINKS(sampled ? WEFT__PROBE_TASK | WEFT__PROBE_COUNT : WEFT__PROBE_TASK,
              task_begin,
              task_begin(exec, id, label, queued_at, worker, sampled));
}

void
weft__probe_task_end(const void *exec, uint64_t id, int code, int worker,
                     bool sampled)
{
    FOR_SINKS(sampled ? WEFT__PROBE_TASK | WEFT__PROBE_COUNT : WEFT__PROBE_TASK,
              task_end, task_end(exec, id, code, worker, sampled));
}

_Atomic uint64_t *
weft__counts_lookup(const void *exec)
{
    /* The generation first: a change during the lookup leaves the cache
     * stale, to be looked up again. */
    uint32_t gen =
        atomic_load_explicit(&weft__counts_gen, memory_order_acquire);
    _Atomic uint64_t *c = NULL;
    unsigned n = atomic_load_explicit(&nsinks, memory_order_acquire);
    for (unsigned i = 0; i < n; i++) {
        const weft__probe_sink_t *s = sinks[i].sink;
        if ((atomic_load_explicit(&sinks[i].mask, memory_order_relaxed) &
             WEFT__PROBE_COUNT) != 0 &&
            s->counts != NULL) {
            c = s->counts(exec);
            break;
        }
    }
    weft__counts_cache.exec = exec;
    weft__counts_cache.counts = c;
    weft__counts_cache.gen = gen;
    return c;
}

void
weft__probe_counts_changed(void)
{
    atomic_fetch_add_explicit(&weft__counts_gen, 1, memory_order_release);
}

void
weft__probe_wait_begin(weft__wait_kind_t kind, const void *obj)
{
    FOR_SINKS(WEFT__PROBE_WAIT, wait_begin, wait_begin(kind, obj));
}

void
weft__probe_wait_end(weft__wait_kind_t kind, const void *obj, int rc)
{
    FOR_SINKS(WEFT__PROBE_WAIT, wait_end, wait_end(kind, obj, rc));
}

void
weft__probe_lock_acquired(const void *lock, weft__wait_kind_t kind,
                          const void *site)
{
    FOR_SINKS(WEFT__PROBE_LOCK, lock_acquired, lock_acquired(lock, kind, site));
}

void
weft__probe_lock_released(const void *lock, weft__wait_kind_t kind)
{
    FOR_SINKS(WEFT__PROBE_LOCK, lock_released, lock_released(lock, kind));
}

void
weft__probe_object_event(weft__obj_kind_t kind, const void *obj,
                         const char *name, bool created)
{
    unsigned n = atomic_load_explicit(&nsinks, memory_order_acquire);
    for (unsigned i = 0; i < n; i++) {
        if (sinks[i].sink->object_event != NULL) {
            sinks[i].sink->object_event(kind, obj, name, created);
        }
    }
}

void
weft__probe_queue_event(const void *queue, weft__queue_ev_t ev, size_t n)
{
    FOR_SINKS(WEFT__PROBE_QUEUE, queue_event, queue_event(queue, ev, n));
}

/* ------------------------------------------------------------------------ */
/* Thread records                                                            */

static weft__thread_rec_t *records;
static _Atomic uint32_t records_lock;
static weft__thread_rec_t dummy_rec; /* when a record cannot be linked */
/* The record lives in the thread's own static TLS: no allocation (tests
 * count allocations), and glibc runs key destructors, which unlink it,
 * before it frees a thread's TLS. */
static _Thread_local weft__thread_rec_t self_storage;
static _Thread_local weft__thread_rec_t *self_rec;

static void
rec_exit(void *arg)
{
    weft__thread_rec_t *r = arg;
    weft__spin_lock(&records_lock);
    for (weft__thread_rec_t **p = &records; *p != NULL; p = &(*p)->next) {
        if (*p == r) {
            *p = r->next;
            break;
        }
    }
    weft__spin_unlock(&records_lock);
    self_rec = &dummy_rec; /* late waits during exit land here */
}

static WEFT__COLD weft__thread_rec_t *
rec_register(void)
{
    weft__thread_rec_t *r = &self_storage;
    atomic_init(&r->id, weft__self_id());
    snprintf(r->name, sizeof(r->name), "%s", weft_thread_name());
    if (weft__plat_on_thread_exit(rec_exit, r) != WEFT_OK) {
        self_rec = &dummy_rec;
        return self_rec;
    }
    weft__spin_lock(&records_lock);
    r->next = records;
    records = r;
    weft__spin_unlock(&records_lock);
    self_rec = r;
    return r;
}

weft__thread_rec_t *
weft__self_rec(void)
{
    weft__thread_rec_t *r = self_rec;
    return WEFT__LIKELY(r != NULL) ? r : rec_register();
}

void
weft__rec_foreach(void (*fn)(weft__thread_rec_t *r, void *ctx), void *ctx)
{
    weft__spin_lock(&records_lock);
    for (weft__thread_rec_t *r = records; r != NULL; r = r->next) {
        fn(r, ctx);
    }
    weft__spin_unlock(&records_lock);
}

bool
weft__rec_name_of(uint32_t id, char *buf, size_t len)
{
    bool found = false;
    weft__spin_lock(&records_lock);
    for (weft__thread_rec_t *r = records; r != NULL; r = r->next) {
        if (atomic_load_explicit(&r->id, memory_order_relaxed) == id) {
            snprintf(buf, len, "%s", r->name);
            found = true;
            break;
        }
    }
    weft__spin_unlock(&records_lock);
    return found;
}

void
weft__wait_begin(weft__wait_kind_t kind, const void *obj)
{
    weft__thread_rec_t *r = weft__self_rec();
    /* Relaxed: snapshots for dumps; wait_kind last, so a reader that sees
     * the kind usually sees its object too (a torn view is only cosmetic). */
    atomic_store_explicit(&r->wait_obj, obj, memory_order_relaxed);
    atomic_store_explicit(&r->wait_since, weft_now(), memory_order_relaxed);
    atomic_store_explicit(&r->wait_kind, (uint32_t)kind, memory_order_release);
    if (WEFT__PROBING(WEFT__PROBE_WAIT)) {
        weft__probe_wait_begin(kind, obj);
    }
}

void
weft__wait_end(weft__wait_kind_t kind, const void *obj, int rc)
{
    weft__thread_rec_t *r = weft__self_rec();
    atomic_store_explicit(&r->wait_kind, WEFT__WAIT_NONE, memory_order_release);
    atomic_store_explicit(&r->wait_obj, NULL, memory_order_relaxed);
    if (WEFT__PROBING(WEFT__PROBE_WAIT)) {
        weft__probe_wait_end(kind, obj, rc);
    }
}
