/* SPDX-License-Identifier: MIT */
/*
 * The mutex-based queue kinds: unbounded FIFO, LIFO and priority (a binary
 * min-heap ordered by the caller's comparator), bounded or not, in growable
 * storage guarded by one weft_mutex_t.
 */

/*
 * DESIGN
 *
 * Every item operation runs under q->u.lq.mu. Storage starts small and
 * doubles up to the capacity, so a large bound costs nothing until used.
 * FIFO keeps a circular buffer (first, count); LIFO a stack; PRIORITY a heap
 * whose sifts move items through the hole left by the removed or inserted
 * one, so no scratch item is needed.
 *
 * Waiting is the generic layer's: waiters re-check under the mutex after
 * incrementing the eventcount's waiter count, and notifiers read that count
 * after their critical section, so the mutex's release/acquire pairs order
 * the two (whichever critical section comes second sees the other's effect).
 *
 * closed is written without the mutex (close never blocks), but every
 * decision that depends on it is taken under the mutex: a put that saw it
 * clear completed its critical section before any later critical section,
 * so a get that sees "closed and empty" comes after every put that will
 * ever succeed. Its seq_cst store and loads are the two halves of the
 * eventcount Dekker pattern for waiters woken by close.
 *
 * count_view and nput mirror count and the number of puts for lock-free
 * readers (snapshots, task_done, join, the pass-on hints). They are stored
 * under the mutex by its holder only; see the orderings at each access.
 */
#include "queue_impl.h"

#define INITIAL_SLOTS 16u

static inline unsigned char *
slot(const weft_queue_t *q, size_t i)
{
    return q->u.lq.buf + i * q->elem_size;
}

/* Double the storage (up to capacity), keeping FIFO items in order. */
static int
grow(weft_queue_t *q)
{
    weft__lq_t *lq = &q->u.lq;
    size_t es = q->elem_size;
    if (lq->slots > SIZE_MAX / 2u / es) {
        return WEFT_ENOMEM;
    }
    size_t want = lq->slots * 2u;
    if (want > q->capacity) {
        want = q->capacity;
    }
    unsigned char *nb = weft__malloc(want * es);
    if (nb == NULL) {
        return WEFT_ENOMEM;
    }
    size_t lead = lq->count;
    if (q->order == WEFT_QUEUE_FIFO && lq->first + lead > lq->slots) {
        lead = lq->slots - lq->first;
    }
    memcpy(nb, slot(q, lq->first), lead * es);
    memcpy(nb + lead * es, lq->buf, (lq->count - lead) * es);
    weft__free(lq->buf);
    lq->buf = nb;
    lq->slots = want;
    lq->first = 0;
    return WEFT_OK;
}

static void
heap_push(weft_queue_t *q, const void *item)
{
    size_t i = q->u.lq.count;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (q->cmp(item, slot(q, parent), q->cmp_ctx) >= 0) {
            break;
        }
        memcpy(slot(q, i), slot(q, parent), q->elem_size);
        i = parent;
    }
    memcpy(slot(q, i), item, q->elem_size);
}

/* Remove the root into out; count already excludes the removed item, and
 * the last item (at slot count, outside the heap now) fills the hole. */
static void
heap_pop(weft_queue_t *q, void *out)
{
    size_t n = q->u.lq.count;
    memcpy(out, slot(q, 0), q->elem_size);
    if (n == 0) {
        return;
    }
    const unsigned char *last = slot(q, n);
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) {
            break;
        }
        if (c + 1 < n && q->cmp(slot(q, c + 1), slot(q, c), q->cmp_ctx) < 0) {
            c++;
        }
        if (q->cmp(slot(q, c), last, q->cmp_ctx) >= 0) {
            break;
        }
        memcpy(slot(q, i), slot(q, c), q->elem_size);
        i = c;
    }
    memcpy(slot(q, i), last, q->elem_size);
}

/* Under mu: add one item. WEFT_OK, WEFT_EAGAIN (full) or WEFT_ENOMEM. */
static int
push(weft_queue_t *q, const void *item)
{
    weft__lq_t *lq = &q->u.lq;
    if (lq->count >= q->capacity) {
        return WEFT_EAGAIN;
    }
    if (lq->count == lq->slots) {
        int rc = grow(q);
        if (rc != WEFT_OK) {
            return rc;
        }
    }
    if (q->order == WEFT_QUEUE_PRIORITY) {
        heap_push(q, item);
    } else {
        size_t i =
            q->order == WEFT_QUEUE_FIFO ? lq->first + lq->count : lq->count;
        weft__q_copy(q, slot(q, i < lq->slots ? i : i - lq->slots), item);
    }
    lq->count++;
    return WEFT_OK;
}

/* Under mu, with count > 0: remove the next item into out. */
static void
pop(weft_queue_t *q, void *out)
{
    weft__lq_t *lq = &q->u.lq;
    lq->count--;
    if (q->order == WEFT_QUEUE_PRIORITY) {
        heap_pop(q, out);
    } else if (q->order == WEFT_QUEUE_LIFO) {
        weft__q_copy(q, out, slot(q, lq->count));
    } else {
        weft__q_copy(q, out, slot(q, lq->first));
        lq->first = lq->first + 1 == lq->slots ? 0 : lq->first + 1;
    }
}

static bool
lq_closed_now(const weft_queue_t *q)
{
    /* seq_cst: the load half of the Dekker pattern with lq_close. */
    return atomic_load_explicit(&q->u.lq.closed, memory_order_seq_cst);
}

/* Unlock after publishing the lock-free views of what changed. */
static void
unlock_views(weft_queue_t *q, uint64_t added)
{
    weft__lq_t *lq = &q->u.lq;
    /* Relaxed: snapshot and hint only; its readers order nothing by it. */
    atomic_store_explicit(&lq->count_view, lq->count, memory_order_relaxed);
    if (added != 0) {
        /* Only the mutex holder writes nput, so load + store is exact.
         * Release: pairs with the acquire load in lq_puts, so task_done
         * sees the put of any item its caller took. */
        uint64_t n = atomic_load_explicit(&lq->nput, memory_order_relaxed);
        atomic_store_explicit(&lq->nput, n + added, memory_order_release);
    }
    weft_mutex_unlock(&lq->mu);
}

static int
lq_try_put_many(weft_queue_t *q, const void *items, size_t n, size_t *done)
{
    *done = 0;
    int rc = weft_mutex_lock(&q->u.lq.mu);
    if (rc != WEFT_OK) {
        return rc;
    }
    const unsigned char *src = items;
    size_t k = 0;
    if (lq_closed_now(q)) {
        rc = WEFT_ECLOSED;
    } else {
        while (k < n && (rc = push(q, src + k * q->elem_size)) == WEFT_OK) {
            k++;
        }
        rc = k > 0 ? WEFT_OK : rc;
    }
    unlock_views(q, k);
    *done = k;
    return rc;
}

static int
lq_try_put(weft_queue_t *q, const void *item)
{
    size_t done;
    return lq_try_put_many(q, item, 1, &done);
}

static int
lq_try_get_many(weft_queue_t *q, void *out, size_t max, size_t *got)
{
    *got = 0;
    int rc = weft_mutex_lock(&q->u.lq.mu);
    if (rc != WEFT_OK) {
        return rc;
    }
    unsigned char *dst = out;
    size_t k = 0;
    while (k < max && q->u.lq.count > 0) {
        pop(q, dst + k * q->elem_size);
        k++;
    }
    if (k > 0) {
        rc = WEFT_OK;
    } else {
        rc = lq_closed_now(q) ? WEFT_ECLOSED : WEFT_EAGAIN;
    }
    unlock_views(q, 0);
    *got = k;
    return rc;
}

static int
lq_try_get(weft_queue_t *q, void *out)
{
    size_t got;
    return lq_try_get_many(q, out, 1, &got);
}

static bool
lq_can_get(const weft_queue_t *q)
{
    /* Relaxed hint: a stale answer costs one needless wake, or none when
     * the change it missed came with its own notify. */
    return atomic_load_explicit(&q->u.lq.count_view, memory_order_relaxed) >
               0 ||
           lq_closed_now(q);
}

static bool
lq_can_put(const weft_queue_t *q)
{
    /* Relaxed hint, as in lq_can_get. */
    return atomic_load_explicit(&q->u.lq.count_view, memory_order_relaxed) <
               q->capacity ||
           lq_closed_now(q);
}

static void
lq_close(weft_queue_t *q)
{
    /* seq_cst: the store half of the Dekker pattern with waiters (see
     * DESIGN for why no mutex is needed). */
    atomic_store_explicit(&q->u.lq.closed, true, memory_order_seq_cst);
}

static uint64_t
lq_puts(const weft_queue_t *q)
{
    /* Acquire: pairs with the release store in unlock_views. */
    return atomic_load_explicit(&q->u.lq.nput, memory_order_acquire);
}

static size_t
lq_size(const weft_queue_t *q)
{
    /* Relaxed: a snapshot, stale as soon as it returns anyway. */
    return atomic_load_explicit(&q->u.lq.count_view, memory_order_relaxed);
}

static void
lq_fini(weft_queue_t *q)
{
    weft__lq_t *lq = &q->u.lq;
    for (size_t i = 0; q->drop != NULL && i < lq->count; i++) {
        size_t s = q->order == WEFT_QUEUE_FIFO ? lq->first + i : i;
        q->drop(slot(q, s < lq->slots ? s : s - lq->slots), q->drop_ctx);
    }
    weft__free(lq->buf);
    lq->buf = NULL;
    weft_mutex_fini(&lq->mu);
}

int
weft__lq_init(weft_queue_t *q)
{
    weft__lq_t *lq = &q->u.lq;
    size_t slots = q->capacity < INITIAL_SLOTS ? q->capacity : INITIAL_SLOTS;
    lq->buf = weft__malloc(slots * q->elem_size);
    if (lq->buf == NULL) {
        return WEFT_ENOMEM;
    }
    weft_mutex_init(&lq->mu);
    lq->slots = slots;
    lq->first = 0;
    lq->count = 0;
    atomic_init(&lq->count_view, 0);
    atomic_init(&lq->nput, 0);
    atomic_init(&lq->closed, false);
    return WEFT_OK;
}

const weft__qops_t weft__lq_ops = {
    .try_put = lq_try_put,
    .try_get = lq_try_get,
    .try_put_many = lq_try_put_many,
    .try_get_many = lq_try_get_many,
    .can_get = lq_can_get,
    .can_put = lq_can_put,
    .close = lq_close,
    .is_closed = lq_closed_now,
    .puts = lq_puts,
    .size = lq_size,
    .fini = lq_fini,
};
