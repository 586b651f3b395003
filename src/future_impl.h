/* SPDX-License-Identifier: MIT */
/*
 * The future's layout and the internal calls executors make on it. A future
 * submitted to an executor is also the queued task: the task fields below
 * travel with it, so a submit with a future is one allocation.
 */
#ifndef WEFT_FUTURE_IMPL_H
#define WEFT_FUTURE_IMPL_H

#include <weft/future.h>

#include "internal.h"

/*
 * A registered callback, one node of the future's lock-free stack. drop ==
 * NULL: a weft_future_on_done node, allocated and freed by the future.
 * Otherwise an internal node in its owner's memory (wait_many, completion
 * queue): once fn is called the future never touches the node again (fn
 * disposes of it), and a future freed unfinished calls drop(node) instead.
 */
struct weft__fcb {
    struct weft__fcb *next;
    weft_future_cb_fn fn;
    void *ctx;
    void (*drop)(struct weft__fcb *cb);
};

/* While a finisher writes the outcome, state is COMPLETING | the state it
 * leaves (PENDING or RUNNING); readers treat that as not finished. */
enum { WEFT__FUTURE_COMPLETING = 8u };

/* Bits of the wake word: WAITERS is set by a waiter before it parks; the
 * finisher exchanges the word for FINISHED and wakes all if it saw
 * WAITERS. */
enum { WEFT__WAKE_WAITERS = 1u, WEFT__WAKE_FINISHED = 2u };

/* Flags of the task part (executor layer). */
enum {
    WEFT__TASK_BLOCKING = 1u << 0, /* runs on the blocking lane */
    WEFT__TASK_PRIORITY = 1u << 1, /* submitted with priority > 0 */
};

struct weft_future {
    /* Core (future.c). state: a weft_future_state_t (or COMPLETING | it,
     * transiently); once finished it never changes. wake: futex word
     * waiters park on (WEFT__WAKE_* bits). */
    _Atomic uint32_t state;
    _Atomic uint32_t refs;
    _Atomic uint32_t wake;
    _Atomic uint32_t runner; /* weft__self_id of the running thread, or 0 */
    void *value;
    weft_result_dtor_fn dtor;
    char *msg;                       /* failure message (heap), or NULL */
    int code;                        /* failure code when FAILED */
    _Atomic int taken;               /* the result was taken */
    _Atomic(struct weft__fcb *) cbs; /* callbacks; sealed at finish */
    weft__cancel_t token;            /* the running task's token */

    /* Task part (executor layer); unused by promises. */
    void *(*fn)(void *arg);
    void *arg;
    const char *label; /* borrowed, outlives the task */
    /*
     * help: set by the executor. weft_future_wait calls it before sleeping
     * on a future that is not finished; the executor may run the task
     * inline (when still queued and the waiter is one of its workers) and
     * returns true if f is finished on return.
     */
    bool (*help)(weft_future_t *f);
    weft_time_t start_by; /* start deadline, WEFT_FOREVER if none */
    uint32_t flags;       /* WEFT__TASK_* */
    uint32_t pad_;
};

/*
 * weft__future_alloc: a PENDING future with refs references, task part
 * zeroed (start_by WEFT_FOREVER). NULL when memory runs out.
 */
weft_future_t *weft__future_alloc(uint32_t refs);

/*
 * weft__future_claim: PENDING -> RUNNING by the calling thread (records it
 * as runner). False when the future was cancelled or already claimed or
 * finished: the caller must then not run the task.
 */
bool weft__future_claim(weft_future_t *f);

/*
 * weft__future_finish: RUNNING (or PENDING) -> DONE when code == WEFT_OK
 * (value, dtor kept), FAILED otherwise (msg: heap string, ownership taken,
 * may be NULL). Wakes waiters, runs callbacks. False (and nothing taken)
 * when already finished.
 */
bool weft__future_finish(weft_future_t *f, int code, void *value,
                         weft_result_dtor_fn dtor, char *msg);

/*
 * weft__future_set_cancelled: finish f as CANCELLED if not finished (used by
 * executors for tasks dropped at shutdown or past their start deadline).
 * True when this call finished it.
 */
bool weft__future_set_cancelled(weft_future_t *f);

/*
 * weft__future_add_cb: push cb (fn, ctx and drop set by the caller) on f's
 * callbacks; it runs when f finishes. False when f is already finished:
 * nothing was registered and the caller runs the callback itself. Lock-free.
 */
bool weft__future_add_cb(weft_future_t *f, struct weft__fcb *cb);

/* True for DONE, FAILED and CANCELLED (not for a COMPLETING state). */
static inline bool
weft__future_finished(uint32_t s)
{
    return s >= WEFT_FUTURE_DONE && s < WEFT__FUTURE_COMPLETING;
}

#endif /* WEFT_FUTURE_IMPL_H */
