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

struct weft__fcb; /* a registered on_done callback (future.c) */

/* Flags of the task part (executor layer). */
enum {
    WEFT__TASK_BLOCKING = 1u << 0, /* runs on the blocking lane */
    WEFT__TASK_PRIORITY = 1u << 1, /* submitted with priority > 0 */
};

struct weft_future {
    /* Core (future.c). state: a weft_future_state_t; once finished it never
     * changes. wake: futex word waiters park on (bumped at finish). */
    _Atomic uint32_t state;
    _Atomic uint32_t refs;
    _Atomic uint32_t wake;
    _Atomic uint32_t runner; /* weft__self_id of the running thread, or 0 */
    void *value;
    weft_result_dtor_fn dtor;
    char *msg;       /* failure message (heap), or NULL */
    int code;        /* failure code when FAILED */
    _Atomic int taken; /* the result was taken */
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
    void *exec;                /* the executor that owns the task part */
    struct weft_future *next;  /* intrusive link for the executor's lists */
    weft_time_t start_by;      /* start deadline, WEFT_FOREVER if none */
    uint32_t flags;            /* WEFT__TASK_* */
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

#endif /* WEFT_FUTURE_IMPL_H */
