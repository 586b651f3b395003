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

/* weft__deque_push: owner only; x must not be NULL (asserted). false when
 * growing needed memory that could not be had (the element is not pushed).
 * Wait-free and without atomic read-modify-write; growing copies the
 * elements into a buffer twice as large. */
bool weft__deque_push(weft__deque_t *dq, void *x);

/* weft__deque_pop: owner only. The newest element, or NULL when empty.
 * Wait-free: one seq_cst fence (none when the deque is seen empty), and a
 * CAS only when racing thieves for the last element. */
void *weft__deque_pop(weft__deque_t *dq);

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
