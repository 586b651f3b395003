/* SPDX-License-Identifier: MIT */
/*
 * The bounded FIFO queue: Vyukov's bounded MPMC ring with per-cell sequence
 * numbers, kept to an exact capacity, with a close flag in the enqueue
 * position so that closing and claiming a slot exclude each other.
 */

/*
 * DESIGN
 *
 * Layout. `slots` = the power of two >= max(capacity, 2) cells, each an
 * atomic 64-bit sequence number followed by the item (elem_size bytes,
 * stride a multiple of 8). Two 64-bit positions, each on its own cache line:
 * tail (next position to put; bit 63 = CLOSED) and head (next position to
 * get). Position p lives in cell p & mask. Positions never wrap (2^63 items
 * at 10^9 per second take 292 years).
 *
 * Cell states, for the cell of position p (slots >= 2 keeps them distinct):
 *   seq == p          free for the producer of p
 *   seq == p + 1      holds the item of p (published)
 *   seq == p + slots  item of p taken: free for the producer of p + slots
 *
 * Invariants.
 *   I1 head <= POS(tail), both only grow.
 *   I2 POS(tail) - head <= capacity at every successful claim of a put:
 *      a producer claims position t only after reading some past value h of
 *      head with t + n - h <= capacity; head only grows, so the bound still
 *      holds when its CAS succeeds. When capacity == slots the cell check
 *      alone implies it (seq == t means position t - slots was taken, so
 *      head > t - slots), and head is not read at all.
 *   I3 The producer that claimed p (CAS tail p -> p + n) is the only writer
 *      of the item of p until it publishes seq = p + 1; the consumer that
 *      claimed p (CAS head p -> p + n, which requires seq == p + 1) is the
 *      only reader until it stores seq = p + slots. A batch claims the
 *      run [p, p + n) with one CAS after checking every cell of it: a cell
 *      checked free (published) can only change owner through a CAS of
 *      tail (head) past it, which makes the batch's own CAS fail.
 *   I4 After CLOSED is set no claim succeeds: a claim is a CAS on tail that
 *      expects a value without CLOSED, and close is a fetch_or on the same
 *      word, so in tail's modification order every successful claim comes
 *      before the close, and POS(tail) never changes again.
 *
 * Why close loses no item. A put that returned WEFT_OK claimed its position
 * p before the close (I4) and publishes it whatever happens later. A get
 * returns WEFT_ECLOSED only when the cell at its head position h is not
 * published and it read tail with CLOSED and POS(tail) <= h. By I4 that tail
 * value is final, so every put that ever succeeded has p < POS(tail) <= h,
 * and every position below h was claimed by some consumer (head only moves
 * by claims), which delivers it (I3). A get that finds a claimed but not yet
 * published cell (p < POS(tail)) waits for it instead.
 *
 * Orderings.
 *   - Cell seq loads are seq_cst: they pair (acquire side) with the
 *     publishing/releasing exchanges below, so item bytes written before a
 *     publish are visible to the consumer that reads seq == p + 1, and a
 *     consumer's read of the bytes happens before the next producer's write.
 *     They are seq_cst rather than acquire because the blocked-waiter
 *     re-check (queue.c) is the load half of the eventcount's Dekker pattern;
 *     on x86 and ARMv8 a seq_cst load costs what an acquire load costs.
 *   - Publishing (seq = p + 1) and releasing (seq = p + slots) are seq_cst
 *     exchanges: they make a waiter's condition true, and the notify that
 *     follows reads the eventcount's waiter count (the store half of the
 *     Dekker pattern; an exchange is one locked instruction on x86).
 *   - CAS on tail and head: seq_cst. The head CAS can make a producer's
 *     "within capacity" condition true, and close's fetch_or makes every
 *     waiter's condition true; both pair with the waiters' seq_cst re-check
 *     of tail/head. On x86 every locked RMW is a full barrier anyway.
 *   - head_cache: relaxed load and store. It is only a hint (some past value
 *     of head, so a lower bound); no data depends on it. The exact value is
 *     re-read from head (seq_cst) whenever the hint says "full".
 *
 * Non-blocking forms. try_put returns WEFT_EAGAIN when the cell of tail is
 * still being read by the consumer that took the item a lap earlier, and
 * try_get when the put at head has claimed its cell but not yet published
 * it (even if later puts have finished): the blocking forms wait for those
 * in-flight operations, whose completion notifies them.
 */
#include "queue_impl.h"

#define CLOSED (UINT64_C(1) << 63)
#define POS(t) ((t) & ~CLOSED)

static inline _Atomic uint64_t *
cell_seq(const weft_queue_t *q, uint64_t pos)
{
    return (_Atomic uint64_t *)(void *)(q->cells +
                                        (size_t)(pos & q->mask) * q->stride);
}

static inline unsigned char *
cell_data(const weft_queue_t *q, uint64_t pos)
{
    return q->cells + (size_t)(pos & q->mask) * q->stride + sizeof(uint64_t);
}

static inline uint64_t
load_seq(const weft_queue_t *q, uint64_t pos)
{
    return atomic_load_explicit(cell_seq(q, pos), memory_order_seq_cst);
}

/* Positions from t the exact bound allows a producer to claim. */
static uint64_t
bound_room(weft_queue_t *q, uint64_t t)
{
    weft__ring_t *r = &q->u.ring;
    uint64_t cap = q->capacity;
    if (cap >= q->slots) {
        return UINT64_MAX; /* the cells enforce it (I2) */
    }
    uint64_t h = atomic_load_explicit(&r->head_cache, memory_order_relaxed);
    if ((int64_t)(t - h) >= (int64_t)cap) {
        h = atomic_load_explicit(&r->head, memory_order_seq_cst);
        atomic_store_explicit(&r->head_cache, h, memory_order_relaxed);
    }
    /* A stale t can lag a newer head: count nothing used, the CAS on tail
     * then fails. */
    uint64_t used = (int64_t)(t - h) > 0 ? t - h : 0;
    return used < cap ? cap - used : 0;
}

/* How many cells from t are free for their positions, at most want. */
static uint64_t
free_run(const weft_queue_t *q, uint64_t t, uint64_t want)
{
    uint64_t n = 1;
    while (n < want && load_seq(q, t + n) == t + n) {
        n++;
    }
    return n;
}

/* Claim up to want consecutive positions for putting: *pos, *n. */
static int
claim_put(weft_queue_t *q, uint64_t want, uint64_t *pos, uint64_t *n)
{
    weft__ring_t *r = &q->u.ring;
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_seq_cst);
    for (;;) {
        if (t & CLOSED) {
            return WEFT_ECLOSED;
        }
        int64_t d = (int64_t)(load_seq(q, t) - t);
        if (d > 0) { /* another producer took t */
            t = atomic_load_explicit(&r->tail, memory_order_seq_cst);
            continue;
        }
        if (d < 0) { /* the item of t - slots is not taken yet */
            return WEFT_EAGAIN;
        }
        uint64_t room = bound_room(q, t);
        if (room == 0) {
            return WEFT_EAGAIN;
        }
        uint64_t k = free_run(q, t, want < room ? want : room);
        if (atomic_compare_exchange_weak_explicit(&r->tail, &t, t + k,
                                                  memory_order_seq_cst,
                                                  memory_order_seq_cst)) {
            *pos = t;
            *n = k;
            return WEFT_OK;
        }
    }
}

/* How many cells from h hold published items, at most want. */
static uint64_t
ready_run(const weft_queue_t *q, uint64_t h, uint64_t want)
{
    uint64_t n = 1;
    while (n < want && load_seq(q, h + n) == h + n + 1) {
        n++;
    }
    return n;
}

/* Claim up to want consecutive published positions for getting. */
static int
claim_get(weft_queue_t *q, uint64_t want, uint64_t *pos, uint64_t *n)
{
    weft__ring_t *r = &q->u.ring;
    uint64_t h = atomic_load_explicit(&r->head, memory_order_seq_cst);
    for (;;) {
        int64_t d = (int64_t)(load_seq(q, h) - (h + 1));
        if (d > 0) { /* another consumer took h */
            h = atomic_load_explicit(&r->head, memory_order_seq_cst);
            continue;
        }
        if (d < 0) { /* empty, or the put of h is still in flight */
            uint64_t t = atomic_load_explicit(&r->tail, memory_order_seq_cst);
            return (t & CLOSED) && POS(t) <= h ? WEFT_ECLOSED : WEFT_EAGAIN;
        }
        uint64_t k = ready_run(q, h, want);
        if (atomic_compare_exchange_weak_explicit(&r->head, &h, h + k,
                                                  memory_order_seq_cst,
                                                  memory_order_seq_cst)) {
            *pos = h;
            *n = k;
            return WEFT_OK;
        }
    }
}

static void
publish(weft_queue_t *q, uint64_t pos, const void *item)
{
    weft__q_copy(q, cell_data(q, pos), item);
    /* seq_cst exchange: pairs with load_seq in claim_get (the item bytes),
     * and is the store half of the not-empty Dekker pattern. */
    (void)atomic_exchange_explicit(cell_seq(q, pos), pos + 1,
                                   memory_order_seq_cst);
}

static void
take(weft_queue_t *q, uint64_t pos, void *out)
{
    weft__q_copy(q, out, cell_data(q, pos));
    /* seq_cst exchange: pairs with load_seq in claim_put (our read of the
     * bytes precedes the next producer's write), and is the store half of
     * the not-full Dekker pattern. */
    (void)atomic_exchange_explicit(cell_seq(q, pos), pos + q->slots,
                                   memory_order_seq_cst);
}

static int
ring_try_put(weft_queue_t *q, const void *item)
{
    uint64_t pos;
    uint64_t n;
    int rc = claim_put(q, 1, &pos, &n);
    if (rc == WEFT_OK) {
        publish(q, pos, item);
    }
    return rc;
}

static int
ring_try_get(weft_queue_t *q, void *out)
{
    uint64_t pos;
    uint64_t n;
    int rc = claim_get(q, 1, &pos, &n);
    if (rc == WEFT_OK) {
        take(q, pos, out);
    }
    return rc;
}

static int
ring_try_put_many(weft_queue_t *q, const void *items, size_t n, size_t *done)
{
    uint64_t pos;
    uint64_t k;
    *done = 0;
    int rc = claim_put(q, n, &pos, &k);
    if (rc != WEFT_OK) {
        return rc;
    }
    const unsigned char *src = items;
    for (uint64_t i = 0; i < k; i++) {
        publish(q, pos + i, src + (size_t)i * q->elem_size);
    }
    *done = (size_t)k;
    return WEFT_OK;
}

static int
ring_try_get_many(weft_queue_t *q, void *out, size_t max, size_t *got)
{
    uint64_t pos;
    uint64_t k;
    *got = 0;
    int rc = claim_get(q, max, &pos, &k);
    if (rc != WEFT_OK) {
        return rc;
    }
    unsigned char *dst = out;
    for (uint64_t i = 0; i < k; i++) {
        take(q, pos + i, dst + (size_t)i * q->elem_size);
    }
    *got = (size_t)k;
    return WEFT_OK;
}

static bool
ring_can_get(const weft_queue_t *q)
{
    const weft__ring_t *r = &q->u.ring;
    uint64_t h = atomic_load_explicit(&r->head, memory_order_seq_cst);
    if (load_seq(q, h) == h + 1) {
        return true;
    }
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_seq_cst);
    return (t & CLOSED) && POS(t) <= h;
}

static bool
ring_can_put(const weft_queue_t *q)
{
    const weft__ring_t *r = &q->u.ring;
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_seq_cst);
    if (t & CLOSED) {
        return true;
    }
    if (load_seq(q, t) != t) {
        return false;
    }
    if (q->capacity >= q->slots) {
        return true;
    }
    uint64_t h = atomic_load_explicit(&r->head, memory_order_seq_cst);
    return (int64_t)(t - h) < (int64_t)q->capacity;
}

static void
ring_close(weft_queue_t *q)
{
    /* seq_cst RMW: excludes every later claim (I4) and is the store half of
     * the Dekker pattern for every waiter. */
    (void)atomic_fetch_or_explicit(&q->u.ring.tail, CLOSED,
                                   memory_order_seq_cst);
}

static bool
ring_is_closed(const weft_queue_t *q)
{
    return (atomic_load_explicit(&q->u.ring.tail, memory_order_seq_cst) &
            CLOSED) != 0;
}

static uint64_t
ring_puts(const weft_queue_t *q)
{
    return POS(atomic_load_explicit(&q->u.ring.tail, memory_order_seq_cst));
}

static size_t
ring_size(const weft_queue_t *q)
{
    /* head first: tail read later is at least as new, so t >= h (I1). */
    uint64_t h = atomic_load_explicit(&q->u.ring.head, memory_order_seq_cst);
    uint64_t t = ring_puts(q);
    uint64_t n = (int64_t)(t - h) > 0 ? t - h : 0;
    return n < q->capacity ? (size_t)n : q->capacity;
}

static void
ring_fini(weft_queue_t *q)
{
    /* Relaxed: no thread uses q any more (destroy's contract), so whatever
     * ordered their last operations before this call orders these too. */
    uint64_t h = atomic_load_explicit(&q->u.ring.head, memory_order_relaxed);
    uint64_t t =
        POS(atomic_load_explicit(&q->u.ring.tail, memory_order_relaxed));
    for (uint64_t p = h; p < t; p++) {
        WEFT_ASSERT(load_seq(q, p) == p + 1,
                    "weft_queue_destroy: queue '%s' destroyed during a put",
                    q->name != NULL ? q->name : "");
        if (q->drop != NULL) {
            q->drop(cell_data(q, p), q->drop_ctx);
        }
    }
    weft__free_aligned(q->cells);
    q->cells = NULL;
}

int
weft__ring_init(weft_queue_t *q)
{
    size_t stride = sizeof(uint64_t) + ((q->elem_size + 7u) & ~(size_t)7u);
    /* Refuse sizes whose ring could not be addressed (2x for rounding). */
    if (q->capacity > SIZE_MAX / 4u / stride) {
        return WEFT_ENOMEM;
    }
    uint64_t slots = 2;
    while (slots < q->capacity) {
        slots <<= 1;
    }
    q->cells = weft__malloc_aligned((size_t)slots * stride);
    if (q->cells == NULL) {
        return WEFT_ENOMEM;
    }
    q->slots = slots;
    q->mask = slots - 1;
    q->stride = stride;
    for (uint64_t i = 0; i < slots; i++) {
        atomic_init(cell_seq(q, i), i);
    }
    atomic_init(&q->u.ring.tail, 0);
    atomic_init(&q->u.ring.head_cache, 0);
    atomic_init(&q->u.ring.head, 0);
    return WEFT_OK;
}

const weft__qops_t weft__ring_ops = {
    .try_put = ring_try_put,
    .try_get = ring_try_get,
    .try_put_many = ring_try_put_many,
    .try_get_many = ring_try_get_many,
    .can_get = ring_can_get,
    .can_put = ring_can_put,
    .close = ring_close,
    .is_closed = ring_is_closed,
    .puts = ring_puts,
    .size = ring_size,
    .fini = ring_fini,
};
