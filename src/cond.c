/* SPDX-License-Identifier: MIT */
/*
 * weft_cond_t (Python's threading.Condition, used with a weft_mutex_t): a
 * sequence-number futex with a waiter count in the same 64-bit word.
 */

/*
 * DESIGN
 *
 * word = seq (low 32 bits) | waiters (high 32 bits).
 *
 * wait: with m held, register as a waiter with one RMW that also returns the
 * current seq; unlock m; park while seq is unchanged; unregister; relock m
 * (ignoring cancellation: m is held on return whatever happens).
 * signal/broadcast: read the word; with no waiter return (no RMW, no system
 * call); else bump seq (CAS, so it wraps inside its half) and wake one/all.
 *
 * No lost wake-up: a waiter registers while it holds m, so a signaller that
 * changed the predicate under m afterwards sees the registration (the mutex
 * orders them). If the signal's seq bump comes after the waiter read seq,
 * the waiter's park fails or is woken. The kernel re-checks the seq half
 * atomically with respect to the wake; registration changes only the other
 * half, so it never makes a parked thread's wait fail.
 *
 * A waiter that leaves for a deadline or cancellation may have consumed a
 * wake meant for another. When seq moved during its wait, a timed-out
 * waiter reports WEFT_OK (it was signalled), and a cancelled one passes a
 * signal on, so no signal is swallowed.
 *
 * Orderings: the word only decides whether and when threads wake; the data
 * the predicate reads is ordered by m. Registration and the signaller's read
 * are seq_cst so the argument above also holds for a signal sent without m
 * (a plain MOV on x86); the rest is relaxed where marked.
 */
#include <limits.h>

#include "mutex_impl.h"
#include "probe.h"

#define SEQ_MASK UINT64_C(0xffffffff)
#define WAITER UINT64_C(0x100000000)

typedef struct WEFT__MAY_ALIAS weft__cond {
    _Atomic uint64_t word; /* seq | waiters << 32 */
} weft__cond_t;

_Static_assert(sizeof(weft__cond_t) <= sizeof(weft_cond_t),
               "weft__cond_t must fit in weft_cond_t");
_Static_assert(alignof(weft__cond_t) <= alignof(weft_cond_t),
               "weft_cond_t must be aligned for weft__cond_t");

static _Atomic uint64_t *
word_of(weft_cond_t *c)
{
    return &((weft__cond_t *)(void *)c)->word;
}

/* The seq half of the word, for the futex. */
static _Atomic uint32_t *
futex_word(_Atomic uint64_t *w)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (_Atomic uint32_t *)(void *)((char *)w + 4);
#else
    return (_Atomic uint32_t *)(void *)w;
#endif
}

void
weft_cond_init(weft_cond_t *c)
{
    WEFT_ASSERT(c != NULL, "weft_cond_init: NULL condition");
    atomic_init(word_of(c), 0);
}

void
weft_cond_fini(weft_cond_t *c)
{
    WEFT_ASSERT(c != NULL, "weft_cond_fini: NULL condition");
    uint64_t w = atomic_load_explicit(word_of(c), memory_order_relaxed);
    WEFT_ASSERT(w < WAITER, "weft_cond_fini: condition %p has %u waiters",
                (void *)c, (unsigned)(w >> 32));
}

static void
notify(_Atomic uint64_t *w, int n)
{
    uint64_t v = atomic_load_explicit(w, memory_order_seq_cst);
    if (v < WAITER) {
        return;
    }
    uint64_t next;
    do {
        next = (v & ~SEQ_MASK) | (uint32_t)(v + 1);
    } while (!atomic_compare_exchange_weak_explicit(
        w, &v, next, memory_order_seq_cst, memory_order_seq_cst));
    weft__unpark(futex_word(w), n);
}

void
weft_cond_signal(weft_cond_t *c)
{
    WEFT_ASSERT(c != NULL, "weft_cond_signal: NULL condition");
    notify(word_of(c), 1);
}

void
weft_cond_broadcast(weft_cond_t *c)
{
    WEFT_ASSERT(c != NULL, "weft_cond_broadcast: NULL condition");
    notify(word_of(c), INT_MAX);
}

/* A signal often follows soon (hand-offs): wait briefly before parking. */
static bool
spin_for_signal(_Atomic uint64_t *w, uint32_t seq)
{
    for (int i = 0; i < WEFT__SPIN_LIMIT; i++) {
        weft__cpu_relax();
        /* Relaxed: only whether seq moved matters; m orders the data. */
        if ((uint32_t)atomic_load_explicit(w, memory_order_relaxed) != seq) {
            return true;
        }
    }
    return false;
}

static int
wait_until(weft_cond_t *c, weft_mutex_t *m, weft_time_t deadline)
{
    WEFT_ASSERT(weft_mutex_is_held(m),
                "weft_cond_wait: mutex %p is not held by the calling thread",
                (void *)m);
    _Atomic uint64_t *w = word_of(c);
    uint32_t seq =
        (uint32_t)atomic_fetch_add_explicit(w, WAITER, memory_order_seq_cst);
    weft_mutex_unlock(m);
    int rc =
        spin_for_signal(w, seq)
            ? WEFT_OK
            : weft__park_on(WEFT__WAIT_COND, c, futex_word(w), seq, deadline);
    /* Relaxed: the count only decides whether signallers wake; the seq
     * read here is compared with our own snapshot only. */
    uint32_t now =
        (uint32_t)atomic_fetch_sub_explicit(w, WAITER, memory_order_relaxed);
    weft__mutex_lock_nocancel(m);
    if (rc != WEFT_OK && now != seq) {
        if (rc == WEFT_ETIMEDOUT) {
            return WEFT_OK;
        }
        notify(w, 1);
    }
    return rc;
}

int
weft_cond_wait(weft_cond_t *c, weft_mutex_t *m)
{
    WEFT_ASSERT(c != NULL, "weft_cond_wait: NULL condition");
    WEFT_ASSERT(m != NULL, "weft_cond_wait: NULL mutex");
    return wait_until(c, m, WEFT_FOREVER);
}

int
weft_cond_wait_until(weft_cond_t *c, weft_mutex_t *m, weft_time_t deadline)
{
    WEFT_ASSERT(c != NULL, "weft_cond_wait_until: NULL condition");
    WEFT_ASSERT(m != NULL, "weft_cond_wait_until: NULL mutex");
    return wait_until(c, m, deadline);
}

int
weft_cond_wait_for(weft_cond_t *c, weft_mutex_t *m, weft_pred_fn pred,
                   void *arg, weft_time_t deadline)
{
    WEFT_ASSERT(c != NULL, "weft_cond_wait_for: NULL condition");
    WEFT_ASSERT(m != NULL, "weft_cond_wait_for: NULL mutex");
    WEFT_ASSERT(pred != NULL, "weft_cond_wait_for: NULL predicate");
    while (!pred(arg)) {
        int rc = wait_until(c, m, deadline);
        if (rc == WEFT_ETIMEDOUT) {
            return pred(arg) ? WEFT_OK : WEFT_ETIMEDOUT;
        }
        if (rc != WEFT_OK) {
            return rc;
        }
    }
    return WEFT_OK;
}
