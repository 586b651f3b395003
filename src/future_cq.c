/* SPDX-License-Identifier: MIT */
/*
 * The completion queue (Python's as_completed): watched futures become
 * available in the order they finish, to any number of consumers.
 */

/*
 * DESIGN
 *
 * Each weft_cq_add allocates an entry holding the queue's reference to the
 * future and an internal callback node. When the future finishes the
 * callback appends the entry to the ready list (mutex + intrusive FIFO) and
 * notifies one consumer through an eventcount; weft_cq_next pops an entry,
 * frees it and hands its reference over, so the queue keeps nothing of a
 * future it handed over.
 *
 * Lifetime. The queue object is reference counted: one reference for the
 * owner (dropped by weft_cq_destroy) and one per entry whose callback has
 * not finished. So a future that finishes after weft_cq_destroy finds the
 * queue alive, sees it closed, releases its future and frees its entry; the
 * last callback frees the queue. weft_cq_destroy also waits for adds that
 * overlap it (the adders count, Dekker with closed, both seq_cst).
 *
 * Counters. pending (added, not handed over) and nready (entries in the
 * list) change under the lock but are also read without it, by the
 * eventcount's re-check (seq_cst, against the consumers' seq_cst
 * increment of the eventcount's waiters) and by weft_cq_pending.
 * Consumers are notified when an entry arrives (one) and when pending
 * drops to zero (all: they return WEFT_ECLOSED).
 */
#include <limits.h>

#include <weft/thread.h>

#include "future_impl.h"
#include "mutex_impl.h"
#include "probe.h"

#define CHECK_CQ(cq, fn)                                                       \
    WEFT_ASSERT((cq) != NULL, "%s: NULL completion queue", fn)

struct cq_entry {
    struct weft__fcb cb;
    weft_future_t *f; /* the queue's reference */
    struct cq_entry *next;
    weft_completion_queue_t *cq;
};

struct weft_completion_queue {
    _Atomic size_t refs;
    weft_mutex_t lock;
    struct cq_entry *head; /* ready entries, oldest first; under lock */
    struct cq_entry *tail;
    _Atomic size_t pending;
    _Atomic size_t nready;
    _Atomic uint32_t closed;
    _Atomic uint32_t adders; /* weft_cq_add calls in progress */
    weft__ecount_t ec;       /* consumers wait here */
};

int
weft_cq_create(weft_completion_queue_t **out)
{
    if (out == NULL) {
        return WEFT_EINVAL;
    }
    weft_completion_queue_t *cq = weft__malloc(sizeof(*cq));
    if (cq == NULL) {
        return WEFT_ENOMEM;
    }
    atomic_init(&cq->refs, 1);
    weft_mutex_init(&cq->lock);
    cq->head = NULL;
    cq->tail = NULL;
    atomic_init(&cq->pending, 0);
    atomic_init(&cq->nready, 0);
    atomic_init(&cq->closed, 0);
    atomic_init(&cq->adders, 0);
    atomic_init(&cq->ec.seq, 0);
    atomic_init(&cq->ec.waiters, 0);
    *out = cq;
    return WEFT_OK;
}

static void
cq_release(weft_completion_queue_t *cq)
{
    /* Acq_rel: the last holder frees the queue after every other holder's
     * accesses (no fence, which TSan could not see). */
    if (atomic_fetch_sub_explicit(&cq->refs, 1, memory_order_acq_rel) == 1) {
        weft_mutex_fini(&cq->lock);
        weft__free(cq);
    }
}

/* Release an entry's future and free it (the queue is closed). */
static void
entry_discard(struct cq_entry *e)
{
    weft_future_release(e->f);
    weft__free(e);
}

/* The callback: queue the entry, or discard it when the queue is closed. */
static void
cq_fire(weft_future_t *f, void *ctx)
{
    (void)f;
    struct cq_entry *e = ctx;
    weft_completion_queue_t *cq = e->cq;
    weft__mutex_lock_nocancel(&cq->lock);
    /* Relaxed: closed is stored under the lock, which orders it. */
    bool closed = atomic_load_explicit(&cq->closed, memory_order_relaxed);
    if (!closed) {
        e->next = NULL;
        if (cq->tail != NULL) {
            cq->tail->next = e;
        } else {
            cq->head = e;
        }
        cq->tail = e;
        /* seq_cst: pairs with the consumers' eventcount re-check. */
        atomic_fetch_add_explicit(&cq->nready, 1, memory_order_seq_cst);
    }
    weft_mutex_unlock(&cq->lock);
    if (closed) {
        entry_discard(e);
    } else {
        weft__ecount_notify(&cq->ec, 1);
    }
    cq_release(cq);
}

/* Never runs while the entry holds its reference to the future; kept so
 * the node honours the drop contract of future_impl.h. */
static void
cq_drop(struct weft__fcb *cb)
{
    struct cq_entry *e = cb->ctx;
    weft_completion_queue_t *cq = e->cq;
    weft__free(e);
    cq_release(cq);
}

int
weft_cq_add(weft_completion_queue_t *cq, weft_future_t *f)
{
    CHECK_CQ(cq, "weft_cq_add");
    WEFT_ASSERT(f != NULL, "weft_cq_add: NULL future");
    struct cq_entry *e = weft__malloc(sizeof(*e));
    if (e == NULL) {
        return WEFT_ENOMEM;
    }
    /* seq_cst: Dekker with weft_cq_destroy's store of closed and load of
     * adders: either we see closed, or destroy waits for us. */
    atomic_fetch_add_explicit(&cq->adders, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&cq->closed, memory_order_seq_cst)) {
        /* Release: pairs with destroy's acquire load of adders. */
        atomic_fetch_sub_explicit(&cq->adders, 1, memory_order_release);
        weft__free(e);
        return WEFT_ECLOSED;
    }
    e->cb.fn = cq_fire;
    e->cb.ctx = e;
    e->cb.drop = cq_drop;
    e->f = weft_future_retain(f);
    e->cq = cq;
    /* Relaxed: the owner's reference keeps cq alive while we add. */
    atomic_fetch_add_explicit(&cq->refs, 1, memory_order_relaxed);
    /* seq_cst, as every write of pending (read by the consumers' re-check);
     * before the push, so the hand-over never sees it drop below zero. */
    atomic_fetch_add_explicit(&cq->pending, 1, memory_order_seq_cst);
    if (!weft__future_add_cb(f, &e->cb)) {
        cq_fire(f, e);
    }
    /* Release: pairs with destroy's acquire load of adders. */
    atomic_fetch_sub_explicit(&cq->adders, 1, memory_order_release);
    return WEFT_OK;
}

/* Pop the oldest ready entry into *out: WEFT_OK, WEFT_ECLOSED (nothing
 * pending) or WEFT_EAGAIN (futures pending, none finished). */
static int
try_take(weft_completion_queue_t *cq, weft_future_t **out)
{
    weft__mutex_lock_nocancel(&cq->lock);
    struct cq_entry *e = cq->head;
    if (e == NULL) {
        /* Relaxed: decrements happen under the lock we hold, and by
         * coherence every add that happened before this call is seen. */
        bool none =
            atomic_load_explicit(&cq->pending, memory_order_relaxed) == 0;
        weft_mutex_unlock(&cq->lock);
        return none ? WEFT_ECLOSED : WEFT_EAGAIN;
    }
    cq->head = e->next;
    if (cq->head == NULL) {
        cq->tail = NULL;
    }
    /* seq_cst: pairs with the consumers' eventcount re-check. */
    atomic_fetch_sub_explicit(&cq->nready, 1, memory_order_seq_cst);
    size_t left =
        atomic_fetch_sub_explicit(&cq->pending, 1, memory_order_seq_cst) - 1;
    weft_mutex_unlock(&cq->lock);
    *out = e->f;
    weft__free(e);
    if (left == 0) {
        weft__ecount_notify(&cq->ec, INT_MAX);
    }
    return WEFT_OK;
}

int
weft_cq_next_until(weft_completion_queue_t *cq, weft_future_t **out,
                   weft_time_t deadline)
{
    CHECK_CQ(cq, "weft_cq_next_until");
    if (out == NULL) {
        return WEFT_EINVAL;
    }
    for (;;) {
        int rc = try_take(cq, out);
        if (rc != WEFT_EAGAIN) {
            return rc;
        }
        uint32_t key = weft__ecount_prepare(&cq->ec);
        /* seq_cst: the eventcount's re-check, after prepare's increment
         * of waiters (see internal.h). */
        if (atomic_load_explicit(&cq->nready, memory_order_seq_cst) != 0 ||
            atomic_load_explicit(&cq->pending, memory_order_seq_cst) == 0) {
            weft__ecount_cancel(&cq->ec);
            continue;
        }
        rc = weft__ecount_wait_on(WEFT__WAIT_CQ, cq, &cq->ec, key, deadline);
        if (rc != WEFT_OK) {
            /* A future that finished as the wait ended still counts. */
            int again = try_take(cq, out);
            return again == WEFT_EAGAIN ? rc : again;
        }
    }
}

int
weft_cq_next(weft_completion_queue_t *cq, weft_future_t **out)
{
    CHECK_CQ(cq, "weft_cq_next");
    return weft_cq_next_until(cq, out, WEFT_FOREVER);
}

size_t
weft_cq_pending(const weft_completion_queue_t *cq)
{
    CHECK_CQ(cq, "weft_cq_pending");
    /* Relaxed: a snapshot. */
    return atomic_load_explicit(&cq->pending, memory_order_relaxed);
}

void
weft_cq_destroy(weft_completion_queue_t *cq)
{
    if (cq == NULL) {
        return;
    }
    weft__mutex_lock_nocancel(&cq->lock);
    /* seq_cst: Dekker with weft_cq_add (see there). */
    atomic_store_explicit(&cq->closed, 1, memory_order_seq_cst);
    struct cq_entry *e = cq->head;
    cq->head = NULL;
    cq->tail = NULL;
    weft_mutex_unlock(&cq->lock);
    /* seq_cst: Dekker with weft_cq_add (see there); it is also the acquire
     * that pairs with the adds' release decrements. Adds never block, so
     * yielding until they leave is enough. */
    while (atomic_load_explicit(&cq->adders, memory_order_seq_cst) != 0) {
        weft_thread_yield();
    }
    while (e != NULL) {
        struct cq_entry *next = e->next;
        entry_discard(e);
        e = next;
    }
    cq_release(cq);
}
