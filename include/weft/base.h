/* SPDX-License-Identifier: MIT */
/*
 * weft base layer: error codes, monotonic deadlines, the allocator hook and the
 * logging hook. Everything else in weft builds on these.
 */
#ifndef WEFT_BASE_H
#define WEFT_BASE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Symbol export: the shared library hides everything not marked WEFT_API. */
#if defined(WEFT_STATIC_DEFINE)
#define WEFT_API
#elif defined(__GNUC__)
#define WEFT_API __attribute__((visibility("default")))
#else
#define WEFT_API
#endif

#if defined(__GNUC__)
#define WEFT_NODISCARD __attribute__((warn_unused_result))
#define WEFT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define WEFT_NODISCARD
#define WEFT_PRINTF(f, a)
#endif

/*
 * Error codes. Every fallible weft function returns WEFT_OK or one of these.
 * The values are fixed on every host and never reused, because a code travels
 * inside futures and over the network.
 */
enum {
    WEFT_OK = 0,
    WEFT_EINVAL = -1,     /* bad argument (NULL, zero size, out of range) */
    WEFT_ENOMEM = -2,     /* allocation failed */
    WEFT_EAGAIN = -3,     /* would block (try_ forms), or resource full */
    WEFT_ETIMEDOUT = -4,  /* the deadline passed before the wait succeeded */
    WEFT_ECLOSED = -5,    /* the object was closed (queue) */
    WEFT_ECANCELED = -6,  /* the waiting task was cancelled */
    WEFT_EPERM = -7,      /* caller does not own the object (rlock release) */
    WEFT_EBUSY = -8,      /* object in use (destroy with waiters) */
    WEFT_EBROKEN = -9,    /* barrier broken or aborted */
    WEFT_ERANGE = -10,    /* value past a bound (bounded semaphore release) */
    WEFT_ENOSYS = -11,    /* not supported on this platform */
    WEFT_EIO = -12,       /* input/output error */
    WEFT_ENOENT = -13,    /* no such file or entry */
    WEFT_EDEADLK = -14,   /* the operation would deadlock */
    WEFT_ESHUTDOWN = -15, /* the executor was shut down */
    WEFT_EOVERFLOW = -16, /* a counter or size would overflow */
    WEFT_ESYS = -17,      /* unexpected operating system failure */
};

/*
 * weft_strerror: a short English description of code (e.g. "timed out").
 * Returns a static string, never NULL; unknown codes give "unknown error".
 * Thread-safe, never blocks.
 */
WEFT_API const char *weft_strerror(int code);

/*
 * weft_errname: the symbolic name of code ("WEFT_ETIMEDOUT"), for logs and
 * test output. Static string, never NULL. Thread-safe, never blocks.
 */
WEFT_API const char *weft_errname(int code);

/* ------------------------------------------------------------------------ */
/* Time: nanoseconds on the monotonic clock. Deadlines are absolute.         */

typedef int64_t weft_time_t;

/* A deadline that never passes. */
#define WEFT_FOREVER ((weft_time_t)INT64_MAX)

#define WEFT_USEC ((weft_time_t)1000)
#define WEFT_MSEC ((weft_time_t)1000000)
#define WEFT_SEC ((weft_time_t)1000000000)

/*
 * weft_now: the current monotonic time in ns (CLOCK_MONOTONIC). Never goes
 * backwards, unaffected by wall-clock changes. Thread-safe, never blocks
 * (a vDSO call on Linux, no syscall).
 */
WEFT_API weft_time_t weft_now(void);

/*
 * weft_deadline_in: the absolute deadline `ns` nanoseconds from now.
 * Saturates: a result past the clock's range is WEFT_FOREVER; ns <= 0 gives
 * a deadline that has already passed (the "try once" deadline).
 * Thread-safe, never blocks.
 */
WEFT_API weft_time_t weft_deadline_in(weft_time_t ns);

/*
 * weft_sleep_until: sleep until the monotonic clock reaches deadline.
 * Returns WEFT_OK when the deadline has passed, or WEFT_ECANCELED when the
 * calling task is cancelled first. Never wakes early otherwise (an
 * interrupted sleep resumes). Blocks the calling thread.
 */
WEFT_API int weft_sleep_until(weft_time_t deadline);

/* weft_sleep_for: weft_sleep_until(weft_deadline_in(ns)). */
WEFT_API int weft_sleep_for(weft_time_t ns);

/* ------------------------------------------------------------------------ */
/* Allocator hook                                                            */

typedef struct weft_allocator {
    /* Same contracts as malloc/realloc/free; ctx is passed back unchanged. */
    void *(*malloc_fn)(void *ctx, size_t size);
    void *(*realloc_fn)(void *ctx, void *ptr, size_t size);
    void (*free_fn)(void *ctx, void *ptr);
    void *ctx;
} weft_allocator_t;

/*
 * weft_set_allocator: route every allocation weft makes through a.
 * a is copied; NULL restores malloc/realloc/free. All three functions must be
 * set, else WEFT_EINVAL. Must be called before any other weft call allocates
 * (memory from one allocator is never handed to another); process-global.
 * Not thread-safe against concurrent weft calls.
 */
WEFT_API WEFT_NODISCARD int weft_set_allocator(const weft_allocator_t *a);

/* ------------------------------------------------------------------------ */
/* Logging                                                                   */

typedef enum weft_log_level {
    WEFT_LOG_OFF = 0,
    WEFT_LOG_ERROR = 1,
    WEFT_LOG_WARN = 2,
    WEFT_LOG_INFO = 3,
    WEFT_LOG_DEBUG = 4,
    WEFT_LOG_TRACE = 5,
} weft_log_level_t;

/*
 * A log hook receives one finished record: its level, the name of the thread
 * that logged it (never NULL), and the formatted message (no trailing
 * newline). It may be called from any thread at once and must be thread-safe;
 * it must not call weft_log itself.
 */
typedef void (*weft_log_fn)(void *ctx, weft_log_level_t level,
                            const char *thread_name, const char *message);

/*
 * weft_log_set_hook: send log records to fn instead of stderr. fn NULL restores
 * the default writer, which prints one line per record to stderr:
 *   "12:34:56.789012 [thread-name] WARN message"
 *   "12:34:56.789012 [pool/0] [task:fetch] WARN message"
 * (local wall-clock time with microseconds, the weft thread name, the label
 * of the task the logging thread runs when it runs a labelled task, the
 * level). A hook that wants the task label calls weft_task_label() (it runs
 * on the logging thread). Use the hook to route records elsewhere (syslog,
 * a file, a test's buffer).
 * Process-global; safe to call at any time from any thread.
 */
WEFT_API void weft_log_set_hook(weft_log_fn fn, void *ctx);

/*
 * weft_log_set_level / weft_log_level: the most verbose level that is
 * emitted. The initial level comes from the environment variable WEFT_LOG
 * ("off", "error", "warn", "info", "debug", "trace", or 0-5), default "warn".
 * Thread-safe.
 */
WEFT_API void weft_log_set_level(weft_log_level_t level);
WEFT_API weft_log_level_t weft_log_level(void);

/*
 * weft_log: format and emit one record at level, if level is enabled.
 * Messages longer than 1 KiB are truncated (marked with "..."). Thread-safe;
 * the default writer emits each record with one write(2) so lines from
 * different threads never interleave.
 */
WEFT_API void weft_log(weft_log_level_t level, const char *fmt, ...)
    WEFT_PRINTF(2, 3);
WEFT_API void weft_logv(weft_log_level_t level, const char *fmt, va_list ap)
    WEFT_PRINTF(2, 0);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_BASE_H */
