/* SPDX-License-Identifier: MIT */
/*
 * weft_sem_t (Python's threading.Semaphore and BoundedSemaphore): a permit
 * count and a sleeper count in one 64-bit atomic word, futex on the count.
 */

/*
 * DESIGN
 *
 * word = count (low 32 bits) | sleepers (high 32 bits). Both live in one
 * atomic so that release is a single RMW that both publishes the permits
 * and tells whether anyone may sleep: after that RMW the releaser touches
 * the semaphore only through the futex wake (a system call that reads no
 * user memory), so a woken waiter may free the semaphore at once.
 *
 * The futex word is the count half (its address depends on byte order):
 * a waiter parks while the count reads 0, and registering as a sleeper only
 * changes the other half, so it never makes a parked thread's wait fail.
 *
 * No lost wake-up: a waiter registers (RMW on the word) before it re-reads
 * the count and parks on count == 0; release's RMW on the same word comes
 * either before the registration (then the waiter sees the permits) or after
 * it (then release sees sleepers > 0 and wakes). All RMWs on one location are
 * totally ordered, and the kernel re-checks count == 0 atomically with
 * respect to the wake.
 *
 * A waiter that leaves without a permit (deadline, cancellation) may have
 * consumed a wake meant for a permit that is still there; it then passes
 * the wake on to another sleeper.
 *
 * Orderings: taking a permit is acquire and release is release (they pair,
 * so what a releaser did before release is visible to the thread that takes
 * its permit). Sleeper registration and the leaving check are seq_cst for
 * simplicity; they are on the slow path.
 */
#include <limits.h>

#include "mutex_impl.h"
#include "probe.h"

#define COUNT_MASK UINT64_C(0xffffffff)
#define SLEEPER UINT64_C(0x100000000)

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");

typedef struct WEFT__MAY_ALIAS weft__sem {
    _Atomic uint64_t word; /* count | sleepers << 32 */
    uint32_t max;          /* largest count allowed */
    uint32_t bounded;      /* 1: release past max is WEFT_ERANGE */
} weft__sem_t;

_Static_assert(sizeof(weft__sem_t) <= sizeof(weft_sem_t),
               "weft__sem_t must fit in weft_sem_t");
_Static_assert(alignof(weft__sem_t) <= alignof(weft_sem_t),
               "weft_sem_t must be aligned for weft__sem_t");

static weft__sem_t *
sem_of(weft_sem_t *s)
{
    return (weft__sem_t *)(void *)s;
}

static uint32_t
count_of(uint64_t w)
{
    return (uint32_t)(w & COUNT_MASK);
}

/* The count half of the word, for the futex. */
static _Atomic uint32_t *
futex_word(weft__sem_t *s)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return (_Atomic uint32_t *)(void *)((char *)&s->word + 4);
#else
    return (_Atomic uint32_t *)(void *)&s->word;
#endif
}

static void
init(weft__sem_t *s, unsigned value, unsigned max, bool bounded)
{
    atomic_init(&s->word, value);
    s->max = max;
    s->bounded = bounded ? 1 : 0;
}

int
weft_sem_init(weft_sem_t *s, unsigned value)
{
    WEFT_ASSERT(s != NULL, "weft_sem_init: NULL semaphore");
    if (value > WEFT_SEM_VALUE_MAX) {
        return WEFT_EINVAL;
    }
    init(sem_of(s), value, WEFT_SEM_VALUE_MAX, false);
    return WEFT_OK;
}

int
weft_sem_init_bounded(weft_sem_t *s, unsigned value, unsigned max)
{
    WEFT_ASSERT(s != NULL, "weft_sem_init_bounded: NULL semaphore");
    if (max == 0 || max > WEFT_SEM_VALUE_MAX || value > max) {
        return WEFT_EINVAL;
    }
    init(sem_of(s), value, max, true);
    return WEFT_OK;
}

void
weft_sem_fini(weft_sem_t *s)
{
    WEFT_ASSERT(s != NULL, "weft_sem_fini: NULL semaphore");
    uint64_t w = atomic_load_explicit(&sem_of(s)->word, memory_order_relaxed);
    WEFT_ASSERT(w < SLEEPER, "weft_sem_fini: semaphore %p has %u waiters",
                (void *)s, (unsigned)(w >> 32));
}

/* Take one permit if there is one. `sleeper` is SLEEPER when the caller is
 * a registered sleeper: taking the permit then also unregisters it. */
static bool
try_take(weft__sem_t *s, uint64_t sleeper)
{
    uint64_t w = atomic_load_explicit(&s->word, memory_order_relaxed);
    while (count_of(w) != 0) {
        /* Acquire: pairs with the release RMW of weft_sem_release. */
        if (atomic_compare_exchange_weak_explicit(&s->word, &w, w - 1 - sleeper,
                                                  memory_order_acquire,
                                                  memory_order_relaxed)) {
            return true;
        }
    }
    return false;
}

static bool
spin_take(weft__sem_t *s)
{
    for (int i = 0; i < WEFT__SPIN_LIMIT; i++) {
        if (count_of(atomic_load_explicit(&s->word, memory_order_relaxed)) !=
                0 &&
            try_take(s, 0)) {
            return true;
        }
        weft__cpu_relax();
    }
    return false;
}

/* A registered sleeper gives up (rc is why); see DESIGN. */
static int
leave(weft__sem_t *s, int rc)
{
    if (rc == WEFT_ETIMEDOUT && try_take(s, SLEEPER)) {
        return WEFT_OK;
    }
    uint64_t w =
        atomic_fetch_sub_explicit(&s->word, SLEEPER, memory_order_seq_cst) -
        SLEEPER;
    if (count_of(w) != 0 && w >= SLEEPER) {
        weft__unpark(futex_word(s), 1);
    }
    return rc;
}

static int
acquire_slow(weft__sem_t *s, weft_time_t deadline)
{
    if (spin_take(s)) {
        return WEFT_OK;
    }
    atomic_fetch_add_explicit(&s->word, SLEEPER, memory_order_seq_cst);
    for (;;) {
        if (try_take(s, SLEEPER)) {
            return WEFT_OK;
        }
        int rc = weft__park_on(WEFT__WAIT_SEM, s, futex_word(s), 0, deadline);
        if (rc != WEFT_OK) {
            return leave(s, rc);
        }
    }
}

int
weft_sem_try_acquire(weft_sem_t *s)
{
    WEFT_ASSERT(s != NULL, "weft_sem_try_acquire: NULL semaphore");
    return try_take(sem_of(s), 0) ? WEFT_OK : WEFT_EAGAIN;
}

int
weft_sem_acquire(weft_sem_t *s)
{
    WEFT_ASSERT(s != NULL, "weft_sem_acquire: NULL semaphore");
    weft__sem_t *x = sem_of(s);
    if (WEFT__LIKELY(try_take(x, 0))) {
        return WEFT_OK;
    }
    return acquire_slow(x, WEFT_FOREVER);
}

int
weft_sem_acquire_until(weft_sem_t *s, weft_time_t deadline)
{
    WEFT_ASSERT(s != NULL, "weft_sem_acquire_until: NULL semaphore");
    weft__sem_t *x = sem_of(s);
    if (try_take(x, 0)) {
        return WEFT_OK;
    }
    return acquire_slow(x, deadline);
}

int
weft_sem_release(weft_sem_t *s, unsigned n)
{
    WEFT_ASSERT(s != NULL, "weft_sem_release: NULL semaphore");
    if (n == 0) {
        return WEFT_EINVAL;
    }
    weft__sem_t *x = sem_of(s);
    /* Read before the RMW: after it the semaphore may be freed. */
    uint32_t max = x->max;
    int over = x->bounded ? WEFT_ERANGE : WEFT_EOVERFLOW;
    uint64_t w = atomic_load_explicit(&x->word, memory_order_relaxed);
    do {
        if (n > max - count_of(w)) {
            return over;
        }
        /* Release: pairs with try_take's acquire. */
    } while (!atomic_compare_exchange_weak_explicit(
        &x->word, &w, w + n, memory_order_release, memory_order_relaxed));
    if (w >= SLEEPER) {
        weft__unpark(futex_word(x), n > INT_MAX ? INT_MAX : (int)n);
    }
    return WEFT_OK;
}

unsigned
weft_sem_value(const weft_sem_t *s)
{
    WEFT_ASSERT(s != NULL, "weft_sem_value: NULL semaphore");
    const weft__sem_t *x = (const weft__sem_t *)(const void *)s;
    /* Relaxed: a snapshot, stale at once anyway. */
    return count_of(atomic_load_explicit(&x->word, memory_order_relaxed));
}
