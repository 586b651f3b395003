/* SPDX-License-Identifier: MIT */
/*
 * Futures and promises: the state machine, references, results, callbacks
 * and cancellation. Waiting lives in future_wait.c, the completion queue in
 * future_cq.c.
 */

/*
 * DESIGN
 *
 * States. state moves once: PENDING -> RUNNING (claim, promise start) and
 * PENDING|RUNNING -> DONE|FAILED|CANCELLED. Finishing with an outcome goes
 * through COMPLETING | <state left>: the CAS into it elects exactly one
 * finisher, which alone then writes value, dtor, code and msg, and ends
 * with a release store of the final state. Cancelling carries no outcome,
 * so it CASes straight to CANCELLED. A COMPLETING state reads as the state
 * it leaves (weft_future_state) and as unfinished everywhere.
 *
 * Who writes what. value, dtor, code, msg: the elected finisher, before its
 * release store; read only after an acquire load that saw the final state,
 * or by the last release (ordered by the acq_rel decrement of refs).
 * runner: the claiming thread, after its claim; only ever compared with the
 * reader's own id, so relaxed suffices. taken: one exchange elects the
 * taker. The task part belongs to the executor.
 *
 * Finishing, in order: (1) release store of the final state; (2) exchange
 * of the wake word for FINISHED, waking all if a waiter had set WAITERS
 * (an unwaited future costs no system call); (3) exchange of the callback
 * stack for the seal, then the callbacks run in registration order. The
 * finisher holds a reference throughout (every caller must), so waiters
 * and callbacks that drop theirs cannot free f under it.
 *
 * Callbacks: a Treiber stack of nodes pushed with a release CAS; the seal
 * (a sentinel address) makes later pushes fail, and the registrant then
 * runs its callback itself. Exactly once: a node is either in the stack the
 * finisher took, or its push failed. See docs/design/future-callbacks.md.
 *
 * Orderings: the final state store (release) pairs with every acquire load
 * of state; the wake exchange (release) pairs with waiters' acquire reads of
 * the wake word; the seal exchange (acq_rel) pairs with the push CAS
 * (release) and with registrants' acquire loads of the stack head.
 */
#include <stdio.h>
#include <string.h>

#include "future_impl.h"

_Static_assert(sizeof(struct weft_future) <= 128,
               "a future must stay within 136 bytes");

/* The longest failure message kept, in bytes (without the terminator). */
#define MSG_MAX 1024

/* The seal: never dereferenced, only compared. */
static struct weft__fcb seal_mark;
#define SEALED (&seal_mark)

#define CHECK_F(f, fn) WEFT_ASSERT((f) != NULL, "%s: NULL future", fn)

static uint32_t
load_state(const weft_future_t *f)
{
    /* Acquire: pairs with end_finish's release store of the final state,
     * so a caller that sees it finished sees the outcome. */
    return atomic_load_explicit(&f->state, memory_order_acquire);
}

/* ------------------------------------------------------------------------ */
/* Allocation and references                                                 */

weft_future_t *
weft__future_alloc(uint32_t refs)
{
    WEFT_ASSERT(refs > 0, "weft__future_alloc: zero references");
    weft_future_t *f = weft__malloc(sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    memset(f, 0, sizeof(*f));
    atomic_init(&f->state, WEFT_FUTURE_PENDING);
    atomic_init(&f->refs, refs);
    atomic_init(&f->wake, 0);
    atomic_init(&f->runner, 0);
    atomic_init(&f->taken, 0);
    atomic_init(&f->cbs, NULL);
    atomic_init(&f->token.cancelled, 0);
    atomic_init(&f->token.parked_on, NULL);
    f->start_by = WEFT_FOREVER;
    return f;
}

weft_future_t *
weft_future_retain(weft_future_t *f)
{
    CHECK_F(f, "weft_future_retain");
    /* Relaxed: the caller already holds a reference, which keeps f alive;
     * the new one publishes nothing. */
    uint32_t old = atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    WEFT_ASSERT(old != 0 && old != UINT32_MAX,
                "weft_future_retain: future %p has %u references", (void *)f,
                old);
    return f;
}

/* Free the nodes of a future that dies unfinished; their callbacks will
 * never run. */
static void
drop_unrun(struct weft__fcb *cb)
{
    while (cb != NULL) {
        struct weft__fcb *next = cb->next;
        if (cb->drop != NULL) {
            cb->drop(cb);
        } else {
            weft__free(cb);
        }
        cb = next;
    }
}

static void
destroy(weft_future_t *f)
{
    /* Relaxed loads: the acq_rel decrement that made refs zero orders every
     * write other holders made (state, taken, the stack) before them. */
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    int taken = atomic_load_explicit(&f->taken, memory_order_relaxed);
    if (s == WEFT_FUTURE_DONE && !taken && f->dtor != NULL) {
        f->dtor(f->value);
    }
    weft__free(f->msg);
    struct weft__fcb *cbs = atomic_load_explicit(&f->cbs, memory_order_relaxed);
    if (cbs != SEALED) {
        drop_unrun(cbs);
    }
    weft__free(f);
}

void
weft_future_release(weft_future_t *f)
{
    if (f == NULL) {
        return;
    }
    /* Acq_rel: release publishes this holder's writes to the thread that
     * frees; acquire on the last decrement makes all of them visible to
     * destroy (no fence, which TSan could not see). */
    uint32_t old = atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel);
    WEFT_ASSERT(old != 0,
                "weft_future_release: future %p released more times than it "
                "was referenced",
                (void *)f);
    if (old == 1) {
        destroy(f);
    }
}

/* ------------------------------------------------------------------------ */
/* State                                                                     */

weft_future_state_t
weft_future_state(const weft_future_t *f)
{
    CHECK_F(f, "weft_future_state");
    uint32_t s = load_state(f);
    return (weft_future_state_t)(s & ~(uint32_t)WEFT__FUTURE_COMPLETING);
}

bool
weft_future_done(const weft_future_t *f)
{
    CHECK_F(f, "weft_future_done");
    return weft__future_finished(load_state(f));
}

int
weft_future_code(const weft_future_t *f)
{
    CHECK_F(f, "weft_future_code");
    switch (load_state(f)) {
    case WEFT_FUTURE_DONE:
        return WEFT_OK;
    case WEFT_FUTURE_FAILED:
        return f->code;
    case WEFT_FUTURE_CANCELLED:
        return WEFT_ECANCELED;
    default:
        return WEFT_EAGAIN;
    }
}

const char *
weft_future_error(const weft_future_t *f)
{
    CHECK_F(f, "weft_future_error");
    if (load_state(f) == WEFT_FUTURE_FAILED && f->msg != NULL) {
        return f->msg;
    }
    return "";
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */

bool
weft__future_add_cb(weft_future_t *f, struct weft__fcb *cb)
{
    /* Acquire: pairs with run_callbacks' release exchange, so a registrant
     * that finds the seal sees the outcome before it runs its callback. */
    struct weft__fcb *head =
        atomic_load_explicit(&f->cbs, memory_order_acquire);
    do {
        if (head == SEALED) {
            return false;
        }
        cb->next = head;
        /* Release: pairs with run_callbacks' acquire exchange (the node's
         * fields are visible to the finisher); acquire on failure as on
         * the load above. */
    } while (!atomic_compare_exchange_weak_explicit(
        &f->cbs, &head, cb, memory_order_release, memory_order_acquire));
    return true;
}

static void
run_callbacks(weft_future_t *f)
{
    /* Acq_rel: acquire pairs with the release push in weft__future_add_cb;
     * release pairs with its acquire load that finds the seal. */
    struct weft__fcb *cb =
        atomic_exchange_explicit(&f->cbs, SEALED, memory_order_acq_rel);
    WEFT_ASSERT(cb != SEALED, "future %p: callbacks sealed twice", (void *)f);
    /* The stack holds the newest first: reverse it. */
    struct weft__fcb *fifo = NULL;
    while (cb != NULL) {
        struct weft__fcb *next = cb->next;
        cb->next = fifo;
        fifo = cb;
        cb = next;
    }
    while (fifo != NULL) {
        /* An internal node belongs to its callback once called: read what
         * is needed first. */
        struct weft__fcb *next = fifo->next;
        bool ours = fifo->drop == NULL;
        fifo->fn(f, fifo->ctx);
        if (ours) {
            weft__free(fifo);
        }
        fifo = next;
    }
}

int
weft_future_on_done(weft_future_t *f, weft_future_cb_fn fn, void *ctx)
{
    CHECK_F(f, "weft_future_on_done");
    if (fn == NULL) {
        return WEFT_EINVAL;
    }
    /* Acquire: as in weft__future_add_cb; saves the allocation when f is
     * finished already. */
    if (atomic_load_explicit(&f->cbs, memory_order_acquire) == SEALED) {
        fn(f, ctx);
        return WEFT_OK;
    }
    struct weft__fcb *cb = weft__malloc(sizeof(*cb));
    if (cb == NULL) {
        return WEFT_ENOMEM;
    }
    cb->fn = fn;
    cb->ctx = ctx;
    cb->drop = NULL;
    if (!weft__future_add_cb(f, cb)) {
        weft__free(cb);
        fn(f, ctx);
    }
    return WEFT_OK;
}

/* ------------------------------------------------------------------------ */
/* Finishing                                                                 */

/* Elect the caller as f's finisher: PENDING|RUNNING -> COMPLETING | it. */
static bool
begin_finish(weft_future_t *f)
{
    /* Relaxed: the CAS only elects; the finisher reads nothing published
     * through state, and publishes its own writes with end_finish's
     * release store. */
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    while (s == WEFT_FUTURE_PENDING || s == WEFT_FUTURE_RUNNING) {
        if (atomic_compare_exchange_weak_explicit(
                &f->state, &s, s | WEFT__FUTURE_COMPLETING,
                memory_order_relaxed, memory_order_relaxed)) {
            return true;
        }
    }
    return false;
}

static void
wake_waiters(weft_future_t *f)
{
    /* Release: pairs with the waiters' acquire reads of the wake word (one
     * that reads FINISHED sees the final state). The RMW and a waiter's
     * CAS that sets WAITERS are ordered on this one word: either the CAS
     * fails on FINISHED, or this exchange sees WAITERS and wakes. */
    uint32_t old = atomic_exchange_explicit(&f->wake, WEFT__WAKE_FINISHED,
                                            memory_order_release);
    if (old & WEFT__WAKE_WAITERS) {
        weft__unpark(&f->wake, INT32_MAX);
    }
}

/* Publish the final state s, wake the waiters, run the callbacks. */
static void
end_finish(weft_future_t *f, uint32_t s)
{
    /* Release: pairs with load_state's acquire (the outcome is visible to
     * whoever sees s). */
    atomic_store_explicit(&f->state, s, memory_order_release);
    wake_waiters(f);
    run_callbacks(f);
}

bool
weft__future_claim(weft_future_t *f)
{
    CHECK_F(f, "weft__future_claim");
    uint32_t s = WEFT_FUTURE_PENDING;
    /* Relaxed: the claim only elects the runner; what it ran is published
     * by end_finish's release store. */
    if (!atomic_compare_exchange_strong_explicit(
            &f->state, &s, WEFT_FUTURE_RUNNING, memory_order_relaxed,
            memory_order_relaxed)) {
        return false;
    }
    /* Relaxed: only ever compared with the reader's own id; the one thread
     * that can match it wrote it. */
    atomic_store_explicit(&f->runner, weft__self_id(), memory_order_relaxed);
    return true;
}

bool
weft__future_finish(weft_future_t *f, int code, void *value,
                    weft_result_dtor_fn dtor, char *msg)
{
    CHECK_F(f, "weft__future_finish");
    WEFT_ASSERT(code <= 0, "weft__future_finish: code %d is not an error",
                code);
    if (!begin_finish(f)) {
        return false;
    }
    if (code == WEFT_OK) {
        f->value = value;
        f->dtor = dtor;
        weft__free(msg);
        end_finish(f, WEFT_FUTURE_DONE);
    } else {
        f->code = code;
        f->msg = msg;
        end_finish(f, WEFT_FUTURE_FAILED);
    }
    return true;
}

/* PENDING (and, when running is true, RUNNING) -> CANCELLED. */
static bool
cancel_from(weft_future_t *f, bool running)
{
    uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
    while (s == WEFT_FUTURE_PENDING || (running && s == WEFT_FUTURE_RUNNING)) {
        /* Release on success: the state is final at once, and a waiter
         * that reads it (acquire) returns at once, so what the canceller
         * did before cancelling must be visible to it (a promise's owner
         * finishing its own work, then cancelling). */
        if (atomic_compare_exchange_weak_explicit(
                &f->state, &s, WEFT_FUTURE_CANCELLED, memory_order_acq_rel,
                memory_order_relaxed)) {
            end_finish(f, WEFT_FUTURE_CANCELLED);
            return true;
        }
    }
    return false;
}

bool
weft__future_set_cancelled(weft_future_t *f)
{
    CHECK_F(f, "weft__future_set_cancelled");
    return cancel_from(f, true);
}

bool
weft_future_cancel(weft_future_t *f)
{
    CHECK_F(f, "weft_future_cancel");
    if (cancel_from(f, false)) {
        return true;
    }
    /* Relaxed: only decides whether to fire the token (which orders itself,
     * seq_cst); it reads the value our failed CAS saw, or a later one. */
    if (atomic_load_explicit(&f->state, memory_order_relaxed) ==
        WEFT_FUTURE_RUNNING) {
        weft__cancel_fire(&f->token);
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* Promises                                                                  */

int
weft_promise_create(weft_future_t **out)
{
    if (out == NULL) {
        return WEFT_EINVAL;
    }
    weft_future_t *f = weft__future_alloc(1);
    if (f == NULL) {
        return WEFT_ENOMEM;
    }
    *out = f;
    return WEFT_OK;
}

int
weft_promise_start(weft_future_t *f)
{
    CHECK_F(f, "weft_promise_start");
    uint32_t s = WEFT_FUTURE_PENDING;
    /* Relaxed: elects the starter, as weft__future_claim. A promise has no
     * runner thread: any thread may complete it, so waits on it never
     * report WEFT_EDEADLK. */
    if (atomic_compare_exchange_strong_explicit(
            &f->state, &s, WEFT_FUTURE_RUNNING, memory_order_relaxed,
            memory_order_relaxed)) {
        return WEFT_OK;
    }
    return s == WEFT_FUTURE_CANCELLED ? WEFT_ECANCELED : WEFT_EPERM;
}

int
weft_promise_set_result(weft_future_t *f, void *value, weft_result_dtor_fn dtor)
{
    CHECK_F(f, "weft_promise_set_result");
    return weft__future_finish(f, WEFT_OK, value, dtor, NULL) ? WEFT_OK
                                                              : WEFT_EPERM;
}

/* A heap copy of the formatted message, at most MSG_MAX bytes; NULL when
 * fmt is NULL or memory runs out (the failure then carries no message). */
WEFT_PRINTF(1, 0)
static char *
format_msg(const char *fmt, va_list ap)
{
    if (fmt == NULL) {
        return NULL;
    }
    va_list probe;
    va_copy(probe, ap);
    int n = vsnprintf(NULL, 0, fmt, probe);
    va_end(probe);
    if (n < 0) {
        return NULL;
    }
    size_t len = (size_t)n < MSG_MAX ? (size_t)n : MSG_MAX;
    char *msg = weft__malloc(len + 1);
    if (msg != NULL) {
        (void)vsnprintf(msg, len + 1, fmt, ap);
    }
    return msg;
}

int
weft_promise_set_failure(weft_future_t *f, int code, const char *fmt, ...)
{
    CHECK_F(f, "weft_promise_set_failure");
    if (code >= 0) {
        return WEFT_EINVAL;
    }
    if (weft__future_finished(load_state(f))) {
        return WEFT_EPERM;
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg = format_msg(fmt, ap);
    va_end(ap);
    if (!weft__future_finish(f, code, NULL, NULL, msg)) {
        weft__free(msg);
        return WEFT_EPERM;
    }
    return WEFT_OK;
}

/* ------------------------------------------------------------------------ */
/* Results                                                                   */

/* The outcome of a finished future, as weft_future_result reports it. */
static int
outcome(const weft_future_t *f, void **value)
{
    switch (load_state(f)) {
    case WEFT_FUTURE_DONE:
        if (value != NULL) {
            *value = f->value;
        }
        return WEFT_OK;
    case WEFT_FUTURE_FAILED:
        return f->code;
    default:
        return WEFT_ECANCELED;
    }
}

int
weft_future_result_until(weft_future_t *f, void **value, weft_time_t deadline)
{
    CHECK_F(f, "weft_future_result_until");
    int rc = weft_future_wait_until(f, deadline);
    return rc != WEFT_OK ? rc : outcome(f, value);
}

int
weft_future_result(weft_future_t *f, void **value)
{
    CHECK_F(f, "weft_future_result");
    return weft_future_result_until(f, value, WEFT_FOREVER);
}

int
weft_future_take_result(weft_future_t *f, void **value)
{
    CHECK_F(f, "weft_future_take_result");
    if (value == NULL) {
        return WEFT_EINVAL;
    }
    void *v = NULL;
    int rc = weft_future_result_until(f, &v, WEFT_FOREVER);
    if (rc != WEFT_OK) {
        return rc;
    }
    /* Relaxed: the RMW alone elects one taker; destroy reads taken after
     * the acq_rel decrement of refs, which orders this write before it. */
    if (atomic_exchange_explicit(&f->taken, 1, memory_order_relaxed)) {
        return WEFT_EPERM;
    }
    *value = v;
    return WEFT_OK;
}
