/* SPDX-License-Identifier: MIT */
/*
 * Private layout of weft_queue_t, shared by the generic layer (queue.c: the
 * public functions, waiting, task_done/join), the lock-free bounded FIFO
 * (queue_ring.c) and the mutex-based kinds (queue_locked.c).
 */
#ifndef WEFT_QUEUE_IMPL_H
#define WEFT_QUEUE_IMPL_H

#include <string.h>

#include <weft/queue.h>
#include <weft/sync.h>

#include "internal.h"
#include "mutex_impl.h"

/*
 * What a queue kind provides. The try operations never wait for the queue's
 * state (the mutex-based kinds may wait briefly for their lock) and return
 * WEFT_OK, WEFT_EAGAIN (nothing could be done now), WEFT_ECLOSED, or an error
 * of their own (WEFT_ENOMEM, WEFT_ECANCELED). Notifying waiters is the
 * generic layer's job, after a try operation succeeded.
 */
typedef struct weft__qops {
    int (*try_put)(weft_queue_t *q, const void *item);
    int (*try_get)(weft_queue_t *q, void *out);
    /* Put up to n items (at least one on WEFT_OK); *done gets the count. */
    int (*try_put_many)(weft_queue_t *q, const void *items, size_t n,
                        size_t *done);
    /* Get up to max items (at least one on WEFT_OK); *got gets the count. */
    int (*try_get_many)(weft_queue_t *q, void *out, size_t max, size_t *got);
    /* Whether a get (put) would not find the queue empty (full) now, closed
     * counting as "would not wait". Used to pass wake-ups on. */
    bool (*can_get)(const weft_queue_t *q);
    bool (*can_put)(const weft_queue_t *q);
    /* Mark closed; the generic layer wakes every waiter afterwards. */
    void (*close)(weft_queue_t *q);
    bool (*is_closed)(const weft_queue_t *q);
    /* Items ever put (each successful put counts once). */
    uint64_t (*puts)(const weft_queue_t *q);
    size_t (*size)(const weft_queue_t *q);
    /* Free the storage, passing each leftover item to opts.drop. */
    void (*fini)(weft_queue_t *q);
} weft__qops_t;

/* A selector watching a wait condition (queue_select.c): one per enabled
 * case of a blocked weft_select, linked in the condition's watcher list
 * under its lock. sel points to the selector's futex word. */
typedef struct weft__qwatch {
    struct weft__qwatch *prev;
    struct weft__qwatch *next;
    _Atomic uint32_t *sel;
} weft__qwatch_t;

/*
 * ec.waiters counts two kinds of waiter in one word, so that a notify still
 * costs one load when nobody waits: threads parked (or about to park) on ec
 * add 1 (the eventcount's own prepare), selectors watching the condition add
 * WEFT__QWATCH_ONE. The plain count stays far below WEFT__QWATCH_ONE (it is
 * bounded by the number of threads); the watcher count is asserted to fit.
 */
#define WEFT__QWATCH_SHIFT 18u
#define WEFT__QWATCH_ONE (UINT32_C(1) << WEFT__QWATCH_SHIFT)
#define WEFT__QWAIT_PLAIN(v) ((v) & (WEFT__QWATCH_ONE - 1u))
#define WEFT__QWAIT_WATCHERS(v) ((v) >> WEFT__QWATCH_SHIFT)

/* A wait condition: an eventcount, plus a flag that is set while a wake-up
 * is on its way to a waiter (see queue.c), so that notifiers do not issue
 * one futex wake per item while the woken thread is still being scheduled,
 * plus the selectors watching it (wlock guards the list; both are touched
 * only when ec.waiters says a selector watches). */
typedef struct weft__qwait {
    weft__ecount_t ec;
    _Atomic uint32_t waking;
    weft__mutex_t wlock;
    weft__qwatch_t *watch; /* first watcher, under wlock */
} weft__qwait_t;

/* Lock-free bounded FIFO (queue_ring.c). */
typedef struct weft__ring {
    /* Enqueue position; bit 63 is the CLOSED flag. head_cache is a lower
     * bound of head that producers keep on their own line so that the exact
     * capacity check rarely reads the consumers' line. */
    WEFT__ALIGNED_CL _Atomic uint64_t tail;
    _Atomic uint64_t head_cache;
    /* Dequeue position. */
    WEFT__ALIGNED_CL _Atomic uint64_t head;
} weft__ring_t;

/* Mutex-based FIFO, LIFO and priority queues (queue_locked.c). */
typedef struct weft__lq {
    weft_mutex_t mu;
    unsigned char *buf; /* slots * elem_size bytes */
    size_t slots;       /* allocated item slots */
    size_t first;       /* FIFO: slot of the oldest item */
    size_t count;       /* items held, under mu */
    /* Lock-free views for snapshots and task_done/join: written under mu. */
    _Atomic size_t count_view;
    _Atomic uint64_t nput;
    _Atomic bool closed;
} weft__lq_t;

struct weft_queue {
    /* Read-only after create: shared by every thread, never written. */
    const weft__qops_t *ops;
    size_t capacity;  /* as given (WEFT_QUEUE_UNBOUNDED for none) */
    size_t elem_size; /* bytes per item */
    weft_queue_order_t order;
    weft_cmp_fn cmp;
    void *cmp_ctx;
    weft_drop_fn drop;
    void *drop_ctx;
    char *name;
    unsigned char *cells; /* ring: the cells */
    uint64_t mask;        /* ring: slots - 1 */
    uint64_t slots;       /* ring: power of two >= max(capacity, 2) */
    size_t stride;        /* ring: bytes per cell */

    /* One wait condition per line: getters, putters, joiners. */
    WEFT__ALIGNED_CL weft__qwait_t not_empty;
    WEFT__ALIGNED_CL weft__qwait_t not_full;
    WEFT__ALIGNED_CL weft__qwait_t all_done;
    _Atomic uint64_t done; /* task_done calls */

    union {
        weft__ring_t ring;
        weft__lq_t lq;
    } u;
};

extern const weft__qops_t weft__ring_ops;
extern const weft__qops_t weft__lq_ops;

/* Set up q->u for the kind (the header fields are already filled). */
int weft__ring_init(weft_queue_t *q);
int weft__lq_init(weft_queue_t *q);

/* Wake waiters of w after making its condition true: up to n plain
 * waiters (INT32_MAX: all) and as many selectors (queue.c). */
void weft__queue_wake(weft_queue_t *q, weft__qwait_t *w, size_t n);
/* Fire up to n selectors watching w that are not already fired
 * (INT32_MAX: all); queue_select.c. Called only when ec.waiters says some
 * selector watches. */
void weft__qwatch_notify(weft__qwait_t *w, int n);

/* Copy one item; a constant size lets the compiler use one move for the
 * common pointer-sized item. */
static inline void
weft__q_copy(const weft_queue_t *q, void *dst, const void *src)
{
    if (WEFT__LIKELY(q->elem_size == sizeof(uint64_t))) {
        memcpy(dst, src, sizeof(uint64_t));
    } else {
        memcpy(dst, src, q->elem_size);
    }
}

#endif /* WEFT_QUEUE_IMPL_H */
