/* SPDX-License-Identifier: MIT */
/*
 * Waiting for futures: one future (a park on its wake word), or several
 * (weft_future_wait_many, through callbacks into a shared waiter).
 */

/*
 * DESIGN
 *
 * One future. The wake word holds WAITERS (set by a waiter before it parks)
 * and FINISHED (stored by the finisher's exchange, after the final state).
 * A waiter parks while the word is exactly WAITERS; the finisher wakes all
 * only when its exchange saw WAITERS. Both are RMWs on one word, so one
 * precedes the other: no lost wake-up. The state stays the truth: after
 * every return from weft__park the waiter re-reads it (spurious wake-ups,
 * deadlines and cancellation all come back through that loop). Before
 * parking a waiter refuses to wait for the task it is running itself
 * (WEFT_EDEADLK), lets the executor help (run the task inline), and spins
 * briefly.
 *
 * Several futures. The waiter registers one internal callback per future;
 * the callbacks count finished futures and, once the mode's condition
 * holds, set the waiter's word (event-like: SET and SLEEPERS bits) and wake
 * it. The callbacks may run long after the wait returned (or never, when a
 * future is freed unfinished: then its node's drop runs), so the waiter's
 * state is a heap block with a reference count: one reference for the
 * waiting thread, one per registered callback, and whoever drops the last
 * frees it. The nodes live in the same block. A wait that returns early
 * leaves its nodes on the futures that have not finished, until they finish
 * or die: a loop of timed waits over long-running futures accumulates them.
 * Polls (deadline passed) and already-cancelled tasks register nothing.
 */
#include <limits.h>

#include "future_impl.h"
#include "probe.h"

#define CHECK_F(f, fn) WEFT_ASSERT((f) != NULL, "%s: NULL future", fn)

static bool
is_finished(const weft_future_t *f)
{
    /* Acquire: pairs with the finisher's release store of the final state
     * (future.c, end_finish): who sees it finished sees the outcome. */
    return weft__future_finished(
        atomic_load_explicit(&f->state, memory_order_acquire));
}

/* True when f is RUNNING on the calling thread: waiting would deadlock. */
static bool
waits_on_itself(const weft_future_t *f)
{
    /* Relaxed: runner can only equal our id if we wrote it. */
    return atomic_load_explicit(&f->state, memory_order_relaxed) ==
               WEFT_FUTURE_RUNNING &&
           atomic_load_explicit(&f->runner, memory_order_relaxed) ==
               weft__self_id();
}

/* Whether a wait must end now, before it marks or registers anything: the
 * deadline has passed, or the calling task is cancelled. */
static int
ends_at_once(weft_time_t deadline)
{
    if (deadline != WEFT_FOREVER && deadline <= weft_now()) {
        return WEFT_ETIMEDOUT;
    }
    if (weft__cancel_is_fired(weft__cancel_current())) {
        return WEFT_ECANCELED;
    }
    return WEFT_OK;
}

/* Let the executor run f inline; true when f is finished afterwards. */
static bool
help(weft_future_t *f)
{
    return f->help != NULL && f->help(f) && is_finished(f);
}

/* Record WAITERS; false when the word already says FINISHED. */
static bool
mark_waiter(weft_future_t *f)
{
    /* Acquire (load and CAS): pairs with wake_waiters' release exchange in
     * future.c, so reading FINISHED means the final state is visible. */
    uint32_t v = atomic_load_explicit(&f->wake, memory_order_acquire);
    while (v == 0) {
        if (atomic_compare_exchange_weak_explicit(
                &f->wake, &v, WEFT__WAKE_WAITERS, memory_order_acquire,
                memory_order_acquire)) {
            return true;
        }
    }
    return (v & WEFT__WAKE_FINISHED) == 0;
}

static int
wait_slow(weft_future_t *f, weft_time_t deadline)
{
    if (waits_on_itself(f)) {
        return WEFT_EDEADLK;
    }
    if (help(f)) {
        return WEFT_OK;
    }
    for (int i = 0; i < WEFT__SPIN_LIMIT; i++) {
        weft__cpu_relax();
        if (is_finished(f)) {
            return WEFT_OK;
        }
    }
    /* A poll (deadline passed) leaves no waiter bit behind, which would
     * cost the finisher a needless wake. */
    int rc = ends_at_once(deadline);
    if (rc != WEFT_OK) {
        return rc;
    }
    for (;;) {
        if (!mark_waiter(f)) {
            return WEFT_OK;
        }
        rc = weft__park_on(WEFT__WAIT_FUTURE, f, &f->wake, WEFT__WAKE_WAITERS,
                           deadline);
        /* A finish that raced with the deadline or a cancel still
         * counts. */
        if (is_finished(f)) {
            return WEFT_OK;
        }
        if (rc != WEFT_OK) {
            return rc;
        }
    }
}

int
weft_future_wait_until(weft_future_t *f, weft_time_t deadline)
{
    CHECK_F(f, "weft_future_wait_until");
    if (WEFT__LIKELY(is_finished(f))) {
        return WEFT_OK;
    }
    return wait_slow(f, deadline);
}

int
weft_future_wait(weft_future_t *f)
{
    CHECK_F(f, "weft_future_wait");
    return weft_future_wait_until(f, WEFT_FOREVER);
}

/* ------------------------------------------------------------------------ */
/* Several futures                                                           */

#define WM_SET 1u
#define WM_SLEEPERS 2u
#define WM_NONE SIZE_MAX

struct wm_node {
    struct weft__fcb cb;
    struct wm *w;
    size_t i; /* index in the caller's array */
};

/* The shared waiter: the waiting thread and the callbacks. */
struct wm {
    _Atomic size_t refs;
    _Atomic uint32_t word; /* WM_SET | WM_SLEEPERS, the futex word */
    _Atomic size_t count;  /* callbacks that ran */
    _Atomic size_t index;  /* the index that met the condition, or NONE */
    size_t n;
    weft_wait_mode_t mode;
    struct wm_node nodes[];
};

static bool
failed_state(uint32_t s)
{
    return s == WEFT_FUTURE_FAILED || s == WEFT_FUTURE_CANCELLED;
}

/* Whether the condition holds now; *idx gets the index to report. */
static bool
condition_met(weft_future_t *const *fs, size_t n, weft_wait_mode_t mode,
              size_t *idx)
{
    size_t done = 0;
    for (size_t i = 0; i < n; i++) {
        /* Acquire: as in is_finished. */
        uint32_t s = atomic_load_explicit(&fs[i]->state, memory_order_acquire);
        if (!weft__future_finished(s)) {
            continue;
        }
        if (mode == WEFT_FIRST_COMPLETED ||
            (mode == WEFT_FIRST_EXCEPTION && failed_state(s))) {
            *idx = i;
            return true;
        }
        done++;
    }
    *idx = n - 1;
    return done == n;
}

/* WEFT_EDEADLK when the condition needs a future the caller runs itself:
 * any of them for ALL_COMPLETED, all of them otherwise (another may still
 * finish or fail). */
static bool
would_deadlock(weft_future_t *const *fs, size_t n, weft_wait_mode_t mode)
{
    size_t own = 0;
    for (size_t i = 0; i < n; i++) {
        if (waits_on_itself(fs[i])) {
            own++;
        }
    }
    return mode == WEFT_ALL_COMPLETED ? own > 0 : own == n;
}

static void
wm_release(struct wm *w)
{
    /* Acq_rel: the last holder frees the block after every other holder's
     * accesses (no fence, which TSan could not see). */
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) == 1) {
        weft__free(w);
    }
}

static void
wm_signal(struct wm *w, size_t idx)
{
    size_t none = WM_NONE;
    /* Relaxed: the first index wins; it is published to the waiter by the
     * release exchange below. */
    (void)atomic_compare_exchange_strong_explicit(
        &w->index, &none, idx, memory_order_relaxed, memory_order_relaxed);
    /* Release: pairs with the waiter's acquire reads of the word. */
    if (atomic_exchange_explicit(&w->word, WM_SET, memory_order_release) &
        WM_SLEEPERS) {
        weft__unpark(&w->word, 1);
    }
}

/* The callback: count f and signal once the mode's condition holds. */
static void
wm_fire(weft_future_t *f, void *ctx)
{
    struct wm_node *node = ctx;
    struct wm *w = node->w;
    /* Relaxed: the counter is only compared with n; each callback adds
     * exactly one. */
    size_t c = atomic_fetch_add_explicit(&w->count, 1, memory_order_relaxed);
    /* Acquire: as in is_finished; callbacks run after the final state
     * store, so this reads the final state. */
    uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);
    if (w->mode == WEFT_FIRST_COMPLETED ||
        (w->mode == WEFT_FIRST_EXCEPTION && failed_state(s))) {
        wm_signal(w, node->i);
    } else if (c + 1 == w->n) {
        wm_signal(w, w->n - 1);
    }
    wm_release(w);
}

static void
wm_drop(struct weft__fcb *cb)
{
    wm_release(((struct wm_node *)cb->ctx)->w);
}

static struct wm *
wm_create(size_t n, weft_wait_mode_t mode)
{
    if (n > (SIZE_MAX - sizeof(struct wm)) / sizeof(struct wm_node)) {
        return NULL;
    }
    struct wm *w = weft__malloc(sizeof(*w) + n * sizeof(struct wm_node));
    if (w == NULL) {
        return NULL;
    }
    atomic_init(&w->refs, 1);
    atomic_init(&w->word, 0);
    atomic_init(&w->count, 0);
    atomic_init(&w->index, WM_NONE);
    w->n = n;
    w->mode = mode;
    return w;
}

/* Register a callback on each future, until the condition is met. */
static void
wm_register(struct wm *w, weft_future_t *const *fs)
{
    for (size_t i = 0; i < w->n; i++) {
        struct wm_node *node = &w->nodes[i];
        node->cb.fn = wm_fire;
        node->cb.ctx = node;
        node->cb.drop = wm_drop;
        node->w = w;
        node->i = i;
        /* Relaxed: the waiter holds a reference, so this one cannot
         * resurrect a freed block; the push publishes the node. */
        atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
        if (!weft__future_add_cb(fs[i], &node->cb)) {
            wm_fire(fs[i], node);
        }
        /* Acquire: pairs with wm_signal's release exchange. */
        if (atomic_load_explicit(&w->word, memory_order_acquire) & WM_SET) {
            return;
        }
    }
}

/* Wait for the word to say SET; the waiter's reference keeps w alive. */
static int
wm_wait(struct wm *w, weft_time_t deadline)
{
    for (;;) {
        /* Acquire: pairs with wm_signal's release exchange. */
        uint32_t v = atomic_load_explicit(&w->word, memory_order_acquire);
        if (v & WM_SET) {
            return WEFT_OK;
        }
        if (v == 0 && !atomic_compare_exchange_weak_explicit(
                          &w->word, &v, WM_SLEEPERS, memory_order_acquire,
                          memory_order_acquire)) {
            continue;
        }
        int rc = weft__park_on(WEFT__WAIT_FUTURE, NULL, &w->word, WM_SLEEPERS,
                               deadline);
        /* A signal that raced with the deadline or a cancel still counts;
         * acquire as above. */
        if (atomic_load_explicit(&w->word, memory_order_acquire) & WM_SET) {
            return WEFT_OK;
        }
        if (rc != WEFT_OK) {
            return rc;
        }
    }
}

static int
check_many(weft_future_t *const *fs, size_t n, weft_wait_mode_t mode)
{
    if (mode != WEFT_FIRST_COMPLETED && mode != WEFT_FIRST_EXCEPTION &&
        mode != WEFT_ALL_COMPLETED) {
        return WEFT_EINVAL;
    }
    if (n > 0 && fs == NULL) {
        return WEFT_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (fs[i] == NULL) {
            return WEFT_EINVAL;
        }
    }
    return WEFT_OK;
}

/* The cheap paths: condition met now, or after the executors helped. */
static bool
met_without_waiting(weft_future_t *const *fs, size_t n, weft_wait_mode_t mode,
                    size_t *idx)
{
    if (condition_met(fs, n, mode, idx)) {
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_finished(fs[i]) && !waits_on_itself(fs[i]) && help(fs[i]) &&
            condition_met(fs, n, mode, idx)) {
            return true;
        }
    }
    return false;
}

int
weft_future_wait_many(weft_future_t *const *fs, size_t n, weft_wait_mode_t mode,
                      weft_time_t deadline, size_t *index)
{
    int rc = check_many(fs, n, mode);
    if (rc != WEFT_OK || n == 0) {
        return rc;
    }
    size_t idx = 0;
    if (met_without_waiting(fs, n, mode, &idx)) {
        goto out;
    }
    if (would_deadlock(fs, n, mode)) {
        return WEFT_EDEADLK;
    }
    /* A poll registers nothing, so it leaves no node behind. */
    rc = ends_at_once(deadline);
    if (rc != WEFT_OK) {
        return rc;
    }
    struct wm *w = wm_create(n, mode);
    if (w == NULL) {
        return WEFT_ENOMEM;
    }
    wm_register(w, fs);
    rc = wm_wait(w, deadline);
    /* Relaxed: ordered after the signal's CAS by wm_wait's acquire read of
     * the word. */
    idx = atomic_load_explicit(&w->index, memory_order_relaxed);
    wm_release(w);
    if (rc != WEFT_OK) {
        return rc;
    }
out:
    if (index != NULL) {
        *index = idx;
    }
    return WEFT_OK;
}
