/* SPDX-License-Identifier: MIT */
/*
 * Parking: every weft wait ends up in weft__park, so deadlines, spurious
 * wake-up injection (tests) and, in the executor layer, cancellation are
 * handled in one place. Also the slow halves of the eventcount.
 */
#include "internal.h"
#include "plat.h"

/* Test hook only; relaxed is enough: tests set it before starting threads. */
static _Atomic unsigned spurious_every;
static _Atomic unsigned spurious_tick;

void
weft__test_spurious_wakeups(unsigned n)
{
    atomic_store_explicit(&spurious_every, n, memory_order_relaxed);
}

static bool
inject_spurious(void)
{
    unsigned every =
        atomic_load_explicit(&spurious_every, memory_order_relaxed);
    if (WEFT__LIKELY(every == 0)) {
        return false;
    }
    unsigned t =
        atomic_fetch_add_explicit(&spurious_tick, 1, memory_order_relaxed);
    return t % every == 0;
}

/* The token of the task the calling thread runs, if any. */
_Thread_local weft__cancel_t *weft__current_token;
#define current_token weft__current_token
/* Called before each sleep (pool workers). */
static _Thread_local void (*park_hook)(void);

void
weft__set_park_hook(void (*fn)(void))
{
    park_hook = fn;
}

weft__cancel_t *
weft__cancel_enter(weft__cancel_t *tok)
{
    weft__cancel_t *prev = current_token;
    current_token = tok;
    return prev;
}

void
weft__cancel_fire(weft__cancel_t *tok)
{
    if (atomic_exchange_explicit(&tok->cancelled, 1, memory_order_seq_cst)) {
        return;
    }
    /* seq_cst load pairs with the parker's seq_cst store of parked_on. */
    for (;;) {
        _Atomic uint32_t *a =
            atomic_load_explicit(&tok->parked_on, memory_order_seq_cst);
        if (a == NULL) {
            return;
        }
        weft__plat_futex_wake(a, INT32_MAX);
        weft__plat_thread_yield();
    }
}

int
weft__park(_Atomic uint32_t *addr, uint32_t expected, weft_time_t deadline)
{
    weft__cancel_t *tok = current_token;
    if (park_hook != NULL) {
        park_hook();
    }
    if (WEFT__LIKELY(tok == NULL)) {
        if (inject_spurious()) {
            return WEFT_OK;
        }
        return weft__plat_futex_wait(addr, expected, deadline);
    }
    /* seq_cst store, then seq_cst load of the flag: pairs with
     * weft__cancel_fire's store of the flag and load of parked_on. */
    atomic_store_explicit(&tok->parked_on, addr, memory_order_seq_cst);
    int rc = WEFT_ECANCELED;
    if (atomic_load_explicit(&tok->cancelled, memory_order_seq_cst) == 0) {
        rc = inject_spurious()
                 ? WEFT_OK
                 : weft__plat_futex_wait(addr, expected, deadline);
        if (atomic_load_explicit(&tok->cancelled, memory_order_acquire)) {
            rc = WEFT_ECANCELED;
        }
    }
    /* Release: the canceller stops waking once it reads NULL. */
    atomic_store_explicit(&tok->parked_on, NULL, memory_order_release);
    return rc;
}

void
weft__unpark(_Atomic uint32_t *addr, int n)
{
    weft__plat_futex_wake(addr, n);
}

int
weft__ecount_wait(weft__ecount_t *ec, uint32_t key, weft_time_t deadline)
{
    int rc = weft__park(&ec->seq, key, deadline);
    /* Relaxed: the count only decides whether notifiers bother to wake; a
     * stale non-zero value costs one needless wake, never a lost one. */
    atomic_fetch_sub_explicit(&ec->waiters, 1, memory_order_relaxed);
    return rc;
}

void
weft__ecount_wake(weft__ecount_t *ec, int n)
{
    /* seq_cst: a waiter that prepared before this increment parks on the old
     * value and is woken (or sees the new one and does not sleep). */
    atomic_fetch_add_explicit(&ec->seq, 1, memory_order_seq_cst);
    weft__unpark(&ec->seq, n);
}
