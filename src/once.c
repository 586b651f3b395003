/* SPDX-License-Identifier: MIT */
/*
 * weft_once: run a function exactly once per weft_once_t, with a one-load
 * fast path once it has run.
 */

/*
 * DESIGN
 *
 * The futex word: 0 not run, 1 running, 2 running with sleepers, 3 done.
 * The first caller moves 0 -> 1 and runs fn; the others spin briefly, mark 2
 * and park while it reads 2; the runner's exchange to 3 tells whether to
 * wake them. Done is final, so the fast path is one acquire load.
 *
 * Orderings: the runner's exchange to 3 is release and every read that can
 * see 3 is acquire; they pair, so what fn did is visible to every caller
 * that returns.
 *
 * Recursion (fn calling weft_once on the same o) would wait for itself. The
 * 32-bit word has no room for an owner, so each thread keeps a list of the
 * onces it is running (on its stack, linked from a thread-local head) and a
 * caller that finds o running checks it is not its own.
 */
#include <limits.h>

#include "mutex_impl.h"
#include "probe.h"

enum {
    NOT_RUN = 0,
    RUNNING = 1,
    SLEEPERS = 2,
    DONE = 3,
};

_Static_assert(sizeof(_Atomic uint32_t) <= sizeof(weft_once_t),
               "the once word must fit in weft_once_t");
_Static_assert(alignof(_Atomic uint32_t) <= alignof(weft_once_t),
               "weft_once_t must be aligned for the once word");

struct running {
    const weft_once_t *once;
    struct running *next;
};

/* The onces this thread is running, innermost first. */
static _Thread_local struct running *running_top;

static _Atomic uint32_t *
word_of(weft_once_t *o)
{
    return (_Atomic uint32_t *)(void *)o;
}

static void
run(weft_once_t *o, weft_once_fn fn, void *arg)
{
    struct running me = {o, running_top};
    running_top = &me;
    fn(arg);
    running_top = me.next;
    _Atomic uint32_t *w = word_of(o);
    /* Release: pairs with the acquire loads that see DONE. */
    if (atomic_exchange_explicit(w, DONE, memory_order_release) == SLEEPERS) {
        weft__unpark(w, INT_MAX);
    }
}

static void
check_recursion(const weft_once_t *o)
{
    for (const struct running *r = running_top; r != NULL; r = r->next) {
        WEFT_ASSERT(r->once != o,
                    "weft_once: once %p called again from its own function "
                    "(it would wait for itself)",
                    (const void *)o);
    }
}

static uint32_t
spin_while_running(_Atomic uint32_t *w, uint32_t v)
{
    for (int i = 0; i < WEFT__SPIN_LIMIT && v != DONE; i++) {
        weft__cpu_relax();
        /* Acquire: pairs with run's release exchange. */
        v = atomic_load_explicit(w, memory_order_acquire);
    }
    return v;
}

/* Wait until the running fn returns; v is the word last read. */
static void
wait_done(_Atomic uint32_t *w, uint32_t v)
{
    v = spin_while_running(w, v);
    while (v != DONE) {
        /* Acquire on both: the value read may be DONE, pairing with run's
         * release exchange. */
        if (v == RUNNING &&
            !atomic_compare_exchange_weak_explicit(
                w, &v, SLEEPERS, memory_order_acquire, memory_order_acquire)) {
            continue;
        }
        weft__wait_begin(WEFT__WAIT_ONCE, w);
        (void)weft__park_nocancel(w, SLEEPERS, WEFT_FOREVER);
        weft__wait_end(WEFT__WAIT_ONCE, w, WEFT_OK);
        v = atomic_load_explicit(w, memory_order_acquire);
    }
}

void
weft_once(weft_once_t *o, weft_once_fn fn, void *arg)
{
    WEFT_ASSERT(o != NULL, "weft_once: NULL once");
    WEFT_ASSERT(fn != NULL, "weft_once: NULL function");
    _Atomic uint32_t *w = word_of(o);
    /* Acquire: pairs with run's release exchange. */
    uint32_t v = atomic_load_explicit(w, memory_order_acquire);
    if (WEFT__LIKELY(v == DONE)) {
        return;
    }
    if (v == NOT_RUN &&
        atomic_compare_exchange_strong_explicit(
            w, &v, RUNNING, memory_order_acquire, memory_order_acquire)) {
        run(o, fn, arg);
        return;
    }
    check_recursion(o);
    wait_done(w, v);
}
