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

int
weft__park(_Atomic uint32_t *addr, uint32_t expected, weft_time_t deadline)
{
    if (inject_spurious()) {
        return WEFT_OK;
    }
    return weft__plat_futex_wait(addr, expected, deadline);
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
