/* SPDX-License-Identifier: MIT */
/*
 * weft internals shared by every module: assertions, the allocator, the
 * calling thread's identity, and parking (futex waits that absorb spurious
 * wake-ups, honour deadlines, and are the one place later layers hook
 * cancellation into).
 */
#ifndef WEFT_INTERNAL_H
#define WEFT_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft/base.h>

#if defined(__GNUC__)
#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define WEFT__NORETURN __attribute__((noreturn))
#define WEFT__COLD __attribute__((cold, noinline))
#else
#define WEFT__LIKELY(x) (x)
#define WEFT__UNLIKELY(x) (x)
#define WEFT__NORETURN
#define WEFT__COLD
#endif

#define WEFT__CACHELINE 64
#define WEFT__ALIGNED_CL _Alignas(WEFT__CACHELINE)

/* Report a broken contract and abort. Used through WEFT_ASSERT. */
WEFT__NORETURN WEFT__COLD void weft__assert_fail(const char *file, int line,
                                                 const char *func,
                                                 const char *fmt, ...)
    WEFT_PRINTF(4, 5);

/*
 * WEFT_ASSERT: programmer errors (NULL handle, unlock by non-owner, double
 * destroy). Always on, also in release builds: the check is a predicted
 * branch, and a clear message beats silent corruption.
 */
#define WEFT_ASSERT(cond, ...)                                                 \
    do {                                                                       \
        if (WEFT__UNLIKELY(!(cond))) {                                         \
            weft__assert_fail(__FILE__, __LINE__, __func__, __VA_ARGS__);      \
        }                                                                      \
    } while (0)

/* Allocation through the hook of weft_set_allocator. */
void *weft__malloc(size_t size);
void *weft__calloc(size_t n, size_t size);
void *weft__realloc(void *ptr, size_t size);
void weft__free(void *ptr);
/* Cache-line aligned allocation (size rounded up); free with
 * weft__free_aligned. */
void *weft__malloc_aligned(size_t size);
void weft__free_aligned(void *ptr);
/* Copy of s, truncated to max bytes; NULL when s is NULL or memory runs out. */
char *weft__strndup(const char *s, size_t max);

/* The calling thread's weft id (small, unique, never 0), cached in TLS. */
uint32_t weft__self_id(void);

/* Whether this is a ThreadSanitizer build (TSan does not model fences). */
#if defined(__SANITIZE_THREAD__)
#define WEFT__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define WEFT__TSAN 1
#endif
#endif
#ifndef WEFT__TSAN
#define WEFT__TSAN 0
#endif

/*
 * A full (seq_cst) fence. Under TSan, which rejects fences, a seq_cst
 * read-modify-write of a private word stands in: on x86 it is the same
 * locked instruction, so the Dekker handshakes that need it still hold.
 */
static inline void
weft__fence_seq_cst(void)
{
#if WEFT__TSAN
    static _Atomic uint32_t fence_word;
    atomic_fetch_add_explicit(&fence_word, 0, memory_order_seq_cst);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* Stop the CPU briefly inside a spin loop. */
static inline void
weft__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* How many times contended paths spin before they park. Short, because
 * threads may outnumber cores: a long spin only delays the thread that
 * would make progress. */
#define WEFT__SPIN_LIMIT 64

/*
 * weft__park: sleep while *addr == expected, until a wake or deadline.
 * Returns WEFT_OK (woken, or the value changed: re-check, a spurious return
 * is possible), WEFT_ETIMEDOUT, or WEFT_ECANCELED (the calling task was
 * cancelled; reserved for the executor layer). All weft waits go through
 * here.
 */
int weft__park(_Atomic uint32_t *addr, uint32_t expected, weft_time_t deadline);
/* weft__unpark: wake up to n threads parked on addr (INT32_MAX: all). */
void weft__unpark(_Atomic uint32_t *addr, int n);

/*
 * Cancellation tokens. A token belongs to one task (it lives inside the
 * task's future). While a thread runs the task, weft__cancel_enter makes the
 * token current for that thread: every weft__park the thread makes then
 * returns WEFT_ECANCELED once the token fires, and a thread already asleep in
 * weft__park is woken by weft__cancel_fire. Protocol (Dekker, seq_cst):
 *   parker:    parked_on = addr; if (cancelled) return; futex_wait(addr)
 *   canceller: cancelled = 1; while ((a = parked_on)) futex_wake(a), yield
 * so either the parker sees the flag before sleeping, or the canceller sees
 * where it sleeps and wakes it (repeatedly, until the parker has left the
 * futex: a wake sent before it entered the kernel would be lost).
 */
typedef struct weft__cancel {
    _Atomic uint32_t cancelled;
    _Atomic(_Atomic uint32_t *) parked_on;
} weft__cancel_t;

#define WEFT__CANCEL_INIT                                                      \
    {                                                                          \
        0, NULL                                                                \
    }

/* Make tok the calling thread's current token (NULL: none); returns the
 * previous one, to be restored with another weft__cancel_enter. */
weft__cancel_t *weft__cancel_enter(weft__cancel_t *tok);
/* The calling thread's current token, or NULL. */
extern _Thread_local weft__cancel_t *weft__current_token;

static inline weft__cancel_t *
weft__cancel_current(void)
{
    return weft__current_token;
}
/* Fire tok: idempotent; wakes the thread parked under it, if any. May spin
 * (yielding) until that thread has left the kernel. */
void weft__cancel_fire(weft__cancel_t *tok);

static inline bool
weft__cancel_is_fired(const weft__cancel_t *tok)
{
    return tok != NULL &&
           atomic_load_explicit(&tok->cancelled, memory_order_acquire) != 0;
}

/*
 * weft__set_park_hook: fn (NULL: none) is called by the calling thread
 * before each sleep in weft__park. Pool workers use it so that a task
 * blocking on a worker first hands its queued work to an idle worker.
 * Per thread.
 */
void weft__set_park_hook(void (*fn)(void));

/*
 * Test hook: when n > 0, every n-th weft__park returns WEFT_OK at once
 * without sleeping, to prove callers tolerate spurious wake-ups. 0 turns it
 * off. Process-global.
 */
void weft__test_spurious_wakeups(unsigned n);

/*
 * Eventcount: lets a thread wait for a condition that other threads make true
 * without locks, with no lost wake-ups:
 *   waiter:   key = prepare(ec); if (cond) cancel(ec) else wait(ec, key, dl);
 *   notifier: make cond true (seq_cst store or RMW); notify(ec, n);
 * Dekker-style: the waiter's seq_cst increment of waiters precedes its
 * re-check of cond; the notifier's seq_cst write of cond precedes its read of
 * waiters, so at least one of them sees the other.
 */
typedef struct weft__ecount {
    _Atomic uint32_t seq;
    _Atomic uint32_t waiters;
} weft__ecount_t;

static inline uint32_t
weft__ecount_prepare(weft__ecount_t *ec)
{
    atomic_fetch_add_explicit(&ec->waiters, 1, memory_order_seq_cst);
    return atomic_load_explicit(&ec->seq, memory_order_seq_cst);
}

static inline void
weft__ecount_cancel(weft__ecount_t *ec)
{
    atomic_fetch_sub_explicit(&ec->waiters, 1, memory_order_relaxed);
}

/* Sleep unless a notify happened since prepare; always ends the wait. */
int weft__ecount_wait(weft__ecount_t *ec, uint32_t key, weft_time_t deadline);
/* Slow half of notify: bump seq and wake n waiters. */
void weft__ecount_wake(weft__ecount_t *ec, int n);

static inline void
weft__ecount_notify(weft__ecount_t *ec, int n)
{
    if (atomic_load_explicit(&ec->waiters, memory_order_seq_cst) != 0) {
        weft__ecount_wake(ec, n);
    }
}

#endif /* WEFT_INTERNAL_H */
