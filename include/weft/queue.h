/* SPDX-License-Identifier: MIT */
/*
 * Thread-safe queues: Python's queue.Queue, LifoQueue, PriorityQueue and
 * multiprocessing.JoinableQueue semantics, for any number of producers and
 * consumers, with close instead of sentinel values, and Go's select over
 * several queues.
 *
 * Items are fixed-size values (elem_size bytes, default one pointer) copied in
 * and out, so no allocation happens per item. Queues are bounded by default.
 * The bounded FIFO is lock-free on its fast path (per-cell sequence numbers)
 * and parks a thread only when the queue is really full or empty; the other
 * kinds use a futex mutex. Every function here is thread-safe.
 *
 * Blocking calls spin briefly, then sleep until woken; they wake one waiter
 * per item moved (every waiter on close) and never lose a wake-up. Waiters
 * are not served in arrival order. Passing a NULL queue (or a NULL item or
 * out buffer) is a programmer error: weft aborts with a message naming the
 * function.
 */
#ifndef WEFT_QUEUE_H
#define WEFT_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_queue weft_queue_t;

typedef enum weft_queue_order {
    WEFT_QUEUE_FIFO = 0,     /* queue.Queue: first in, first out */
    WEFT_QUEUE_LIFO = 1,     /* queue.LifoQueue: last in, first out */
    WEFT_QUEUE_PRIORITY = 2, /* queue.PriorityQueue: smallest first */
} weft_queue_order_t;

/* Compare two items (pointers to elem_size bytes): negative when a comes
 * before b. Items that compare equal come out in no particular order. Called
 * with the queue's internal lock held: it must not use the queue. */
typedef int (*weft_cmp_fn)(const void *a, const void *b, void *ctx);

/* Called on each item still queued when the queue is destroyed, in the
 * destroying thread; item points into the queue's storage (borrowed). */
typedef void (*weft_drop_fn)(void *item, void *ctx);

/* capacity value for a queue without bound (use with care: nothing then
 * slows a producer that outruns its consumers). */
#define WEFT_QUEUE_UNBOUNDED ((size_t)-1)

/* Largest elem_size accepted. */
#define WEFT_QUEUE_ELEM_MAX 4096u

typedef struct weft_queue_opts {
    size_t capacity;          /* most items held; default 1024 */
    size_t elem_size;         /* bytes per item; default sizeof(void *) */
    weft_queue_order_t order; /* default FIFO */
    weft_cmp_fn cmp;          /* required for PRIORITY, else ignored */
    void *cmp_ctx;
    weft_drop_fn drop; /* may be NULL: leftover items are then discarded */
    void *drop_ctx;
    const char *name; /* copied; for logs and dumps; may be NULL */
} weft_queue_opts_t;

#define WEFT_QUEUE_OPTS_INIT                                                   \
    {                                                                          \
        1024, sizeof(void *), WEFT_QUEUE_FIFO, NULL, NULL, NULL, NULL, NULL    \
    }

/*
 * weft_queue_create: a new empty queue; *out receives it (destroy it with
 * weft_queue_destroy). opts borrowed; NULL gives a bounded FIFO of 1024
 * pointers. Errors: WEFT_EINVAL (out NULL, capacity 0, elem_size 0 or above
 * WEFT_QUEUE_ELEM_MAX, PRIORITY without cmp, unknown order), WEFT_ENOMEM;
 * *out is untouched on failure. A bounded FIFO allocates its whole ring here
 * (capacity rounded up to a power of two, at least 2, internally; the bound
 * stays exactly capacity). The other kinds start small and grow (doubling)
 * up to their capacity as items arrive.
 */
WEFT_API WEFT_NODISCARD int weft_queue_create(const weft_queue_opts_t *opts,
                                              weft_queue_t **out);

/*
 * weft_queue_destroy: free q, passing each item still queued to opts.drop
 * (exactly once each). No thread may use q any more: a thread still blocked
 * in q is a programmer error, asserted. NULL is a no-op.
 */
WEFT_API void weft_queue_destroy(weft_queue_t *q);

/*
 * weft_queue_put: copy elem_size bytes from item (borrowed) into q, blocking
 * while q is full. Returns WEFT_OK, WEFT_ECLOSED (q closed before or while
 * waiting; the item was not added), WEFT_ECANCELED, or WEFT_ENOMEM (LIFO,
 * PRIORITY and unbounded FIFO queues only: their storage could not grow).
 * An item put with WEFT_OK is delivered to exactly one get, or to opts.drop.
 */
WEFT_API WEFT_NODISCARD int weft_queue_put(weft_queue_t *q, const void *item);
/*
 * weft_queue_try_put: as put, but WEFT_EAGAIN instead of blocking when full.
 * On the bounded FIFO it may also say WEFT_EAGAIN, with fewer than capacity
 * items queued, while the get that took the item a lap earlier from the slot
 * it needs is still copying it out. The mutex-based kinds may wait briefly
 * for their internal lock.
 */
WEFT_API WEFT_NODISCARD int weft_queue_try_put(weft_queue_t *q,
                                               const void *item);
/* weft_queue_put_until: as put, or WEFT_ETIMEDOUT when deadline passes. */
WEFT_API WEFT_NODISCARD int
weft_queue_put_until(weft_queue_t *q, const void *item, weft_time_t deadline);

/*
 * weft_queue_get: move the next item into out (elem_size bytes), blocking
 * while q is empty. Returns WEFT_OK, WEFT_ECLOSED (q is closed and empty:
 * every item put before the close has been taken), or WEFT_ECANCELED.
 */
WEFT_API WEFT_NODISCARD int weft_queue_get(weft_queue_t *q, void *out);
/*
 * weft_queue_try_get: as get, but WEFT_EAGAIN instead of blocking when empty
 * (WEFT_ECLOSED when closed and empty). On the bounded FIFO it may also say
 * WEFT_EAGAIN while the put of the oldest item is still copying it in, even
 * if later puts have returned: the blocking forms wait for it.
 */
WEFT_API WEFT_NODISCARD int weft_queue_try_get(weft_queue_t *q, void *out);
/* weft_queue_get_until: as get, or WEFT_ETIMEDOUT. */
WEFT_API WEFT_NODISCARD int weft_queue_get_until(weft_queue_t *q, void *out,
                                                 weft_time_t deadline);

/*
 * weft_queue_put_many: put n items (an array of n * elem_size bytes), in
 * order, waiting for room until deadline (WEFT_FOREVER to block; a past
 * deadline means "what fits now"). Waiters are woken once per batch, not per
 * item. *done (may be NULL) receives how many were put, also on error.
 * Returns WEFT_OK when all n went in, else the error that stopped it
 * (WEFT_ETIMEDOUT, or WEFT_EAGAIN for a deadline already past at the call,
 * WEFT_ECLOSED, WEFT_ECANCELED, WEFT_ENOMEM as for put). Items of one batch
 * may interleave with other producers', but keep their order in a FIFO.
 * n == 0 returns WEFT_OK at once.
 */
WEFT_API WEFT_NODISCARD int weft_queue_put_many(weft_queue_t *q,
                                                const void *items, size_t n,
                                                size_t *done,
                                                weft_time_t deadline);

/*
 * weft_queue_get_many: wait until at least one item is available (or
 * deadline), then take up to max items without waiting further, into out
 * (room for max * elem_size bytes), in queue order. *got (may be NULL)
 * receives the count (0 on error). Returns WEFT_OK (*got >= 1),
 * WEFT_ETIMEDOUT (deadline passed while waiting) or WEFT_EAGAIN (deadline
 * already past at the call, nothing there), WEFT_ECLOSED (closed and empty),
 * WEFT_ECANCELED. WEFT_EINVAL when max is 0. Waiting producers are woken
 * once per batch.
 */
WEFT_API WEFT_NODISCARD int weft_queue_get_many(weft_queue_t *q, void *out,
                                                size_t max, size_t *got,
                                                weft_time_t deadline);

/*
 * weft_queue_close: no more items may be put (puts fail with WEFT_ECLOSED,
 * including those blocked now); gets drain what is left, then fail with
 * WEFT_ECLOSED. Every blocked waiter wakes. A put that was already adding its
 * item when close came completes with WEFT_OK, and its item is delivered.
 * Idempotent. Never blocks. Does not affect task_done/join.
 */
WEFT_API void weft_queue_close(weft_queue_t *q);
/* weft_queue_is_closed: whether close has been called. */
WEFT_API bool weft_queue_is_closed(const weft_queue_t *q);

/*
 * weft_queue_task_done: a consumer says one item it took is fully processed
 * (Python's task_done). Errors: WEFT_ERANGE when called more times than
 * items were put (Python raises ValueError); the count is then unchanged.
 * Lock-free, never blocks; wakes joiners when the last item is done.
 */
WEFT_API WEFT_NODISCARD int weft_queue_task_done(weft_queue_t *q);
/* weft_queue_join: block until every item ever put (with WEFT_OK) has been
 * marked done; at once if none is pending. Returns WEFT_OK or
 * WEFT_ECANCELED. Puts cost nothing extra for it. */
WEFT_API WEFT_NODISCARD int weft_queue_join(weft_queue_t *q);
/* weft_queue_join_until: as join, or WEFT_ETIMEDOUT. */
WEFT_API WEFT_NODISCARD int weft_queue_join_until(weft_queue_t *q,
                                                  weft_time_t deadline);

/* Snapshots: stale as soon as they return, exact when nothing runs. Never
 * block. size counts puts in progress on the bounded FIFO; full is always
 * false for an unbounded queue. */
WEFT_API size_t weft_queue_size(const weft_queue_t *q);
WEFT_API bool weft_queue_empty(const weft_queue_t *q);
WEFT_API bool weft_queue_full(const weft_queue_t *q);
/* weft_queue_capacity: the bound given at creation (WEFT_QUEUE_UNBOUNDED
 * for none). */
WEFT_API size_t weft_queue_capacity(const weft_queue_t *q);
/* weft_queue_elem_size: bytes per item. */
WEFT_API size_t weft_queue_elem_size(const weft_queue_t *q);

/* ------------------------------------------------------------------------ */
/* Select over several queues                                                */

/* What a select case does with its queue. */
typedef enum weft_select_op {
    WEFT_SELECT_GET = 1, /* take one item into item */
    WEFT_SELECT_PUT = 2, /* put the item at item */
} weft_select_op_t;

/* One case of weft_select: an operation on one queue. */
typedef struct weft_select_case {
    weft_queue_t *q;     /* borrowed; NULL disables the case (Go's nil
                            channel): it is never chosen */
    weft_select_op_t op; /* WEFT_SELECT_GET or WEFT_SELECT_PUT */
    void *item;          /* GET: room for elem_size bytes, written only when
                            this case is chosen with WEFT_OK; PUT: the item
                            (elem_size bytes), read when it is tried */
} weft_select_case_t;

/* Most cases one select takes. */
#define WEFT_SELECT_MAX 64u

/*
 * weft_select: Go's select over queues. Wait until one enabled case can
 * proceed (GET: an item is there or the queue is closed and drained; PUT:
 * there is room or the queue is closed), perform that one operation and no
 * other, and set *index to its position in cases. When several cases can
 * proceed, each is chosen with equal probability (a random starting case at
 * every try), so no queue is starved.
 *
 * Returns the chosen case's result with *index set: WEFT_OK, WEFT_ECLOSED
 * (GET: the queue is closed and drained; PUT: the queue is closed, the item
 * was not added) -- a closed queue keeps firing, like a closed Go channel,
 * so a caller that loops sets that case's q to NULL -- or an error of that
 * queue's own operation (WEFT_ENOMEM: a put whose growable storage could
 * not grow; WEFT_ECANCELED: the calling task was cancelled while a
 * mutex-based kind waited for its internal lock; nothing was moved).
 * Without a chosen case (*index untouched): WEFT_ETIMEDOUT (deadline passed,
 * WEFT_FOREVER never), WEFT_ECANCELED (the calling task was cancelled while
 * waiting), WEFT_EINVAL (index NULL, cases NULL with n > 0, n above
 * WEFT_SELECT_MAX, or an enabled case with an unknown op or a NULL item).
 * When every case is disabled (or n is 0): WEFT_ECLOSED with *index set to
 * SIZE_MAX, at once -- a select never blocks forever on nothing.
 *
 * cases is borrowed for the call; the same queue may appear in several
 * cases. Thread-safe; the queues may be used by plain puts and gets, other
 * selects and close at the same time. Blocks (spins briefly, then sleeps
 * until a queue it watches is notified); no lost wake-ups. Items moved by a
 * select notify waiters exactly as weft_queue_put/get do.
 */
WEFT_API WEFT_NODISCARD int weft_select(weft_select_case_t *cases, size_t n,
                                        weft_time_t deadline, size_t *index);

/*
 * weft_try_select: as weft_select, but never waits for a queue: WEFT_EAGAIN
 * (*index untouched) when no enabled case can proceed now. Same fairness,
 * same other returns (never WEFT_ETIMEDOUT). The mutex-based kinds may wait
 * briefly for their internal lock, as weft_queue_try_get does.
 */
WEFT_API WEFT_NODISCARD int weft_try_select(weft_select_case_t *cases, size_t n,
                                            size_t *index);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_QUEUE_H */
