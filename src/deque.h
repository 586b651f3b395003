/* SPDX-License-Identifier: MIT */
/*
 * Work-stealing deque (Chase-Lev), one per pool worker. The owner pushes and
 * pops at the bottom (LIFO); any other thread steals from the top (FIFO).
 * Elements are non-NULL pointers. The buffer grows when full; old buffers
 * are retired, not freed, until the deque is finalised (a thief may still
 * read them).
 */
#ifndef WEFT_DEQUE_H
#define WEFT_DEQUE_H

#include "internal.h"

typedef struct weft__deque_buf weft__deque_buf_t;

struct weft__deque_buf {
    int64_t mask;                    /* capacity - 1; immutable */
    weft__deque_buf_t *retired_next; /* owner only, once retired */
    _Atomic(void *) cells[];
};

/* top is written by thieves, the rest by the owner only: two cache lines.
 * Heap-allocated deques need weft__malloc_aligned. */
typedef struct weft__deque {
    WEFT__ALIGNED_CL _Atomic int64_t top;    /* thieves */
    WEFT__ALIGNED_CL _Atomic int64_t bottom; /* owner */
    _Atomic(weft__deque_buf_t *) buf;
    weft__deque_buf_t *retired; /* owner only: list of old buffers */
} weft__deque_t;

/* Result of a steal. */
typedef enum weft__steal {
    WEFT__STEAL_OK = 0,
    WEFT__STEAL_EMPTY = 1,   /* nothing to steal */
    WEFT__STEAL_RETRY = 2,   /* lost a race with another thief or the owner */
    WEFT__STEAL_REFUSED = 3, /* the filter declined the top element */
} weft__steal_t;

/*
 * Initial capacity of new deques (a power of two, at least 2 and at most
 * 2^30; asserted). Default 256. Tests set it tiny so that wraparound and
 * growth happen constantly. Process-global; read by weft__deque_init.
 */
void weft__deque_set_initial_capacity(size_t cap);

/* weft__deque_init: empty deque. WEFT_OK or WEFT_ENOMEM. */
int weft__deque_init(weft__deque_t *dq);

/* weft__deque_fini: free all buffers. No thread may use dq any more;
 * elements still in it are dropped (the caller drains it first). A second
 * fini, or fini of a zero-filled deque, is asserted. */
void weft__deque_fini(weft__deque_t *dq);

/* Internal: push's slow path, growing the buffer. The new buffer, or NULL
 * when memory runs out. */
weft__deque_buf_t *weft__deque_grow(weft__deque_t *dq, weft__deque_buf_t *old,
                                    int64_t t, int64_t b);

/* TSan does not model fences: under it the fences become seq_cst accesses
 * (see deque.c's DESIGN). Push and pop are inline: they are the fork-join
 * fast path. */
#if defined(__SANITIZE_THREAD__)
#define WEFT__DQ_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT__DQ_TSAN 1
#endif
#endif
#ifndef WEFT__DQ_TSAN
#define WEFT__DQ_TSAN 0
#endif

/* Order of an access next to one of the seq_cst fences: as written in
 * normal builds, seq_cst where the fence is left out (TSan). */
#define WEFT__DQ_NEAR(mo) (WEFT__DQ_TSAN ? memory_order_seq_cst : (mo))

static inline void
weft__dq_dekker_fence(void)
{
#if !WEFT__DQ_TSAN
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

static inline _Atomic(void *) *
weft__dq_cell(weft__deque_buf_t *a, int64_t i)
{
    return &a->cells[(size_t)(i & a->mask)];
}

/* weft__deque_push: owner only; x must not be NULL (asserted). false when
 * growing needed memory that could not be had (the element is not pushed).
 * Wait-free and without atomic read-modify-write; growing copies the
 * elements into a buffer twice as large. */

/* weft__deque_pop: owner only. The newest element, or NULL when empty.
 * Wait-free: one seq_cst fence (none when the deque is seen empty), and a
 * CAS only when racing thieves for the last element. */

static inline bool
weft__deque_push(weft__deque_t *dq, void *x)
{
    WEFT_ASSERT(x != NULL, "weft__deque_push: NULL element");
    /* Relaxed: only the owner writes bottom and buf. */
    int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed);
    weft__deque_buf_t *a = atomic_load_explicit(&dq->buf, memory_order_relaxed);
    /* Acquire: pairs with the seq_cst CAS that advanced top past b - cap,
     * so the thief's read of that index's cell happens before the store
     * below overwrites it. */
    int64_t t = atomic_load_explicit(&dq->top, memory_order_acquire);
    if (WEFT__UNLIKELY(b - t > a->mask)) {
        a = weft__deque_grow(dq, a, t, b);
        if (a == NULL) {
            return false;
        }
    }
    /* Relaxed: published by the release store of bottom that follows. */
    atomic_store_explicit(weft__dq_cell(a, b), x, memory_order_relaxed);
    /* Release: pairs with the acquire load of bottom in steal; makes the
     * cell (and, after a grow, the new buf) visible with the index. */
    atomic_store_explicit(&dq->bottom, b + 1, memory_order_release);
    return true;
}

static inline void *
weft__deque_pop(weft__deque_t *dq)
{
    /* Relaxed: only the owner writes bottom and buf. */
    int64_t b = atomic_load_explicit(&dq->bottom, memory_order_relaxed) - 1;
    /* Empty fast path, without the fence: top only grows, so an old value
     * t > b already proves the deque empty (pairs with nothing; no element
     * is read). */
    if (atomic_load_explicit(&dq->top, memory_order_relaxed) > b) {
        return NULL;
    }
    weft__deque_buf_t *a = atomic_load_explicit(&dq->buf, memory_order_relaxed);
    /* Release (see DESIGN); claims index b before top is read. */
    atomic_store_explicit(&dq->bottom, b, WEFT__DQ_NEAR(memory_order_release));
    /* Pairs with the seq_cst fence in steal (Dekker on bottom/top). */
    weft__dq_dekker_fence();
    /* Relaxed: ordered after the store above by the fence. */
    int64_t t =
        atomic_load_explicit(&dq->top, WEFT__DQ_NEAR(memory_order_relaxed));
    if (t > b) {
        /* Thieves took everything meanwhile. Release: see DESIGN. */
        atomic_store_explicit(&dq->bottom, b + 1, memory_order_release);
        return NULL;
    }
    /* Relaxed: the owner's own store. */
    void *x = atomic_load_explicit(weft__dq_cell(a, b), memory_order_relaxed);
    WEFT_ASSERT(x != NULL,
                "weft__deque_pop: deque %p: no element at index %lld",
                (void *)dq, (long long)b);
    if (t == b) {
        /* The last element: race the thieves for it (B2). seq_cst pairs
         * with the thieves' CAS on top; the failure load is unused. */
        if (!atomic_compare_exchange_strong_explicit(&dq->top, &t, t + 1,
                                                     memory_order_seq_cst,
                                                     memory_order_relaxed)) {
            x = NULL; /* a thief has it */
        }
        /* Either way top == b + 1 now. Release: see DESIGN. */
        atomic_store_explicit(&dq->bottom, b + 1, memory_order_release);
    }
    return x;
}

/*
 * weft__deque_steal: any thread but the owner. The oldest element into
 * *out (untouched unless WEFT__STEAL_OK). filter (may be NULL) is shown the
 * candidate before it is taken; returning false leaves it in place
 * (WEFT__STEAL_REFUSED). The candidate may be an element another thread is
 * taking at that moment: filter must only read fields of it that are
 * atomic, and its answer is used only if the steal then wins. EMPTY and
 * REFUSED describe a moment that may already have passed. Lock-free: one
 * seq_cst fence and one CAS; RETRY means another thread made progress.
 */
weft__steal_t weft__deque_steal(weft__deque_t *dq, void **out,
                                bool (*filter)(void *x, void *ctx), void *ctx);

/* weft__deque_size: approximate number of elements (a snapshot; any
 * thread). */
size_t weft__deque_size(const weft__deque_t *dq);

#endif /* WEFT_DEQUE_H */
