/* SPDX-License-Identifier: MIT */
/*
 * The work-stealing deque of a pool worker: Chase-Lev, with the C11
 * orderings of Lê, Pop, Cohen and Zappa Nardelli (PPoPP 2013) and the fixes
 * for the two bugs later found in that published code.
 */

/*
 * DESIGN
 *
 * Layout. top (next index to steal) on its own cache line; bottom (next
 * index to push), buf and the retired list on the owner's line. Indices are
 * int64_t and never wrap (2^63 pushes at 10^9 per second take 292 years);
 * index i lives in cell i & mask of the current buffer, whose capacity
 * mask + 1 is a power of two. Cells are _Atomic(void *), so a thief reading
 * a cell the owner is overwriting a lap later is not a data race.
 *
 * Invariants.
 *   I1 top only grows, and only by a CAS from t to t + 1 (thieves, or the
 *      owner taking the last element). Only the owner writes bottom, buf,
 *      the cells and the retired list.
 *   I2 The elements are the indices [top, bottom). Outside pop,
 *      top <= bottom; inside pop, bottom may be top - 1 for a moment.
 *   I3 bottom - top <= capacity: push grows the buffer before it would
 *      overwrite the cell of a live index.
 *   I4 A buffer, once published, is only written by the owner for indices
 *      it holds; a retired buffer is never written again and is freed only
 *      by fini, so a thief holding a stale buffer pointer reads valid
 *      memory (deferred reclamation; no hazard pointers or epochs needed).
 *   I5 Every cell of a new buffer starts NULL and elements are never NULL,
 *      so a thief that reads NULL had a stale snapshot and will lose its
 *      CAS. steal and pop assert that what they take is not NULL: a broken
 *      publication then stops with a message instead of handing out NULL.
 *
 * Orderings (each pair named; see also the comments at each access).
 *   push:  bottom relaxed (own variable); top acquire, pairing with the
 *          seq_cst CAS that last advanced it, so a thief's read of a cell
 *          happens before the owner's overwrite of that cell a lap later;
 *          cell store relaxed; bottom store release, pairing with the
 *          thief's acquire load of bottom (this is the paper's release
 *          fence followed by a relaxed store, as one release store).
 *   pop:   bottom = b - 1; seq_cst fence; load top. The fence (one mfence
 *          on x86: the only costly instruction of push or pop) pairs with
 *          the thieves' seq_cst fence between their loads of top and
 *          bottom: either the owner sees a thief's new top, or the thief
 *          sees the owner's smaller bottom, never neither (Dekker). For the
 *          last element (t == b) owner and thieves race with a seq_cst CAS
 *          on top. Before all that, pop reads top relaxed: top only grows,
 *          so an old value above b already proves the deque empty, and pop
 *          returns without the fence (an idle worker polls its own deque).
 *   steal: top acquire; seq_cst fence; bottom acquire; buf acquire, pairing
 *          with the release store of buf in grow; cell relaxed (acquire
 *          when a filter is given, see below); CAS top seq_cst.
 *   The paper stores bottom relaxed in take. Here those stores are release:
 *   the paper relies on C11's rule that later stores by the same thread
 *   continue a release sequence (a thief reading pop's bottom still
 *   synchronizes with the last push), a rule C++20 removed. Release stores
 *   cost nothing on x86 and make the argument local.
 *
 * The two known bugs of the published C11 code, and what prevents them here.
 *   B1 Push right after resize. The published push does not reload the
 *      buffer after resize and stores the element into the old one, where
 *      a thief that loads the new buffer never looks: it reads an
 *      uninitialised cell. The buffer pointer also needs release/acquire
 *      publication, else a thief can load the new buffer without seeing
 *      the copies in it (both found by model checking the paper's code,
 *      CDSChecker, Norris and Demsky 2013). Here grow copies the live
 *      elements, then publishes buf with a release store and returns it;
 *      push stores its element into that buffer, then publishes bottom
 *      with release; a thief loads bottom (acquire), then buf (acquire). A
 *      thief that sees the element's bottom therefore sees the new buffer
 *      and its contents; one that sees an older bottom reads either buffer,
 *      and both hold the indices below that bottom (I4). The cells of the
 *      new buffer below the owner's top snapshot are not copied; they hold
 *      NULL (I5) or a newer element, and a thief reading them loses its CAS
 *      since top has moved past its index.
 *   B2 Take racing steal for the last element. When pop takes the last
 *      element it must CAS top; if it loses, a thief has the element: pop
 *      returns NULL (not the element it read before the CAS), and, win or
 *      lose, restores bottom to b + 1 == top, so that I2 holds and the next
 *      push goes to index top, where thieves look. Not restoring bottom
 *      loses the next element pushed; returning the element read before a
 *      lost CAS hands it out twice. The paper's size_t indices add a third
 *      way in: pop on a fresh deque computes b = 0 - 1 = SIZE_MAX, finds
 *      top <= b, and returns a garbage cell without any CAS. Signed indices
 *      make that case plainly empty.
 *
 * TSan cannot see fences. In TSan builds the two seq_cst fences are left
 * out and the accesses on either side of them become seq_cst: the Dekker
 * argument then follows from the single total order of seq_cst accesses.
 *
 * The steal filter sees the candidate before the CAS; refused, nothing is
 * written. A stale candidate (top moved on meanwhile) is reported as RETRY
 * where a re-read of top shows it; REFUSED, like EMPTY, describes a moment
 * that may already have passed.
 */
#include "deque.h"

#define DEFAULT_CAPACITY 256

/* Process-global by contract (tests make it tiny); a setting, read relaxed:
 * no data is published through it. */
static _Atomic size_t initial_capacity = DEFAULT_CAPACITY;

void
weft__deque_set_initial_capacity(size_t cap)
{
    WEFT_ASSERT(cap >= 2 && (cap & (cap - 1)) == 0 && cap <= (1u << 30),
                "weft__deque_set_initial_capacity: %zu is not a power of "
                "two in [2, 2^30]",
                cap);
    atomic_store_explicit(&initial_capacity, cap, memory_order_relaxed);
}

static weft__deque_buf_t *
buf_new(size_t cap)
{
    size_t hdr = offsetof(weft__deque_buf_t, cells);
    if (cap > (SIZE_MAX - hdr) / sizeof(_Atomic(void *)) ||
        cap > (size_t)INT64_MAX) {
        return NULL;
    }
    weft__deque_buf_t *a =
        weft__malloc_aligned(hdr + cap * sizeof(_Atomic(void *)));
    if (a == NULL) {
        return NULL;
    }
    a->mask = (int64_t)cap - 1;
    a->retired_next = NULL;
    for (size_t i = 0; i < cap; i++) {
        atomic_init(&a->cells[i], NULL); /* I5 */
    }
    return a;
}

int
weft__deque_init(weft__deque_t *dq)
{
    WEFT_ASSERT(dq != NULL, "weft__deque_init: NULL deque");
    size_t cap = atomic_load_explicit(&initial_capacity, memory_order_relaxed);
    weft__deque_buf_t *a = buf_new(cap);
    if (a == NULL) {
        return WEFT_ENOMEM;
    }
    atomic_init(&dq->top, 0);
    atomic_init(&dq->bottom, 0);
    atomic_init(&dq->buf, a);
    dq->retired = NULL;
    return WEFT_OK;
}

void
weft__deque_fini(weft__deque_t *dq)
{
    WEFT_ASSERT(dq != NULL, "weft__deque_fini: NULL deque");
    weft__deque_buf_t *a = atomic_load_explicit(&dq->buf, memory_order_relaxed);
    WEFT_ASSERT(a != NULL,
                "weft__deque_fini: deque %p not initialised or already "
                "finalised",
                (void *)dq);
    weft__free_aligned(a);
    for (weft__deque_buf_t *r = dq->retired; r != NULL;) {
        weft__deque_buf_t *next = r->retired_next;
        weft__free_aligned(r);
        r = next;
    }
    atomic_store_explicit(&dq->buf, NULL, memory_order_relaxed);
    dq->retired = NULL;
}

/*
 * Owner, cold path of push: a buffer twice as large holding indices [t, b),
 * published before push stores into it (B1). The old buffer is retired, not
 * freed (I4). NULL when memory runs out; the deque is then unchanged.
 */
weft__deque_buf_t *
weft__deque_grow(weft__deque_t *dq, weft__deque_buf_t *old, int64_t t,
                 int64_t b)
{
    size_t cap = (size_t)old->mask + 1;
    if (cap > SIZE_MAX / 2) {
        return NULL;
    }
    weft__deque_buf_t *a = buf_new(cap * 2);
    if (a == NULL) {
        return NULL;
    }
    for (int64_t i = t; i < b; i++) {
        /* Relaxed both: the owner reads its own stores; thieves see the
         * copies through the release store of buf below. */
        atomic_store_explicit(
            weft__dq_cell(a, i),
            atomic_load_explicit(weft__dq_cell(old, i), memory_order_relaxed),
            memory_order_relaxed);
    }
    old->retired_next = dq->retired;
    dq->retired = old;
    /* Release: pairs with the acquire load of buf in steal, which then sees
     * the initialised cells and the copies. */
    atomic_store_explicit(&dq->buf, a, memory_order_release);
    return a;
}

/* A stale candidate or a real refusal? Re-read top: changed means a steal
 * with this candidate would have lost anyway. */
static weft__steal_t
refused(weft__deque_t *dq, int64_t t)
{
    /* Relaxed: a snapshot, kept after the read of the candidate by that
     * read's acquire (see steal). */
    int64_t now = atomic_load_explicit(&dq->top, memory_order_relaxed);
    return now == t ? WEFT__STEAL_REFUSED : WEFT__STEAL_RETRY;
}

weft__steal_t
weft__deque_steal(weft__deque_t *dq, void **out,
                  bool (*filter)(void *x, void *ctx), void *ctx)
{
    /* Acquire: pairs with the seq_cst CAS that set this top (the paper's
     * ordering). */
    int64_t t =
        atomic_load_explicit(&dq->top, WEFT__DQ_NEAR(memory_order_acquire));
    /* Pairs with the seq_cst fence in pop (Dekker on bottom/top). */
    weft__dq_dekker_fence();
    /* Acquire: pairs with the release stores of bottom in push and pop, so
     * the cells of indices below b are visible. */
    int64_t b =
        atomic_load_explicit(&dq->bottom, WEFT__DQ_NEAR(memory_order_acquire));
    if (t >= b) {
        return WEFT__STEAL_EMPTY;
    }
    /* Acquire: pairs with the release store of buf in grow (B1). */
    weft__deque_buf_t *a = atomic_load_explicit(&dq->buf, memory_order_acquire);
    /* The cell is made visible by the acquire load of bottom above; the
     * owner may overwrite it a lap later, in which case the CAS below
     * fails. Relaxed without a filter; with one, acquire, to keep refused's
     * re-read of top after this read (pairs with no release: it orders
     * the two loads only). */
    void *x;
    if (filter == NULL) {
        x = atomic_load_explicit(weft__dq_cell(a, t), memory_order_relaxed);
    } else {
        x = atomic_load_explicit(weft__dq_cell(a, t), memory_order_acquire);
    }
    /* NULL means a stale snapshot (I5): the CAS below then fails. The
     * filter is never shown NULL. */
    if (x != NULL && filter != NULL && !filter(x, ctx)) {
        return refused(dq, t);
    }
    /* seq_cst: pairs with the owner's CAS for the last element and with the
     * acquire loads of top in push and steal. */
    if (!atomic_compare_exchange_strong_explicit(
            &dq->top, &t, t + 1, memory_order_seq_cst, memory_order_relaxed)) {
        return WEFT__STEAL_RETRY;
    }
    WEFT_ASSERT(x != NULL,
                "weft__deque_steal: deque %p: took index %lld "
                "but read no element (broken publication)",
                (void *)dq, (long long)t);
    *out = x;
    return WEFT__STEAL_OK;
}

size_t
weft__deque_size(const weft__deque_t *dq)
{
    /* Relaxed: a snapshot that publishes nothing. */
    int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed);
    int64_t t = atomic_load_explicit(&dq->top, memory_order_relaxed);
    return b > t ? (size_t)(b - t) : 0;
}
