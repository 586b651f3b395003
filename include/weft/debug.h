/* SPDX-License-Identifier: MIT */
/*
 * Debugging aids: dumps of every weft thread (what it runs, what it waits
 * on and who holds that), a lock-order checker that reports potential
 * deadlocks before they happen, and a watchdog that finds real ones.
 */
#ifndef WEFT_DEBUG_H
#define WEFT_DEBUG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum weft_dump_format {
    WEFT_DUMP_TEXT = 0, /* human-readable, one thread per line */
    WEFT_DUMP_JSON = 1, /* one JSON object (see docs/guide) */
} weft_dump_format_t;

/*
 * weft_dump: describe every thread weft knows (threads that ran a weft task
 * or blocked in a weft call): name, weft id, the task it runs (label, id,
 * for how long), what it waits on (mutex and the thread holding it, future
 * and the thread running it, queue name and size, ...) and since when;
 * then every pool (gauges) and queue (size/capacity) created after the
 * debug module was loaded. Task durations appear only for tasks that
 * started after the first debug call (dumps turn on task timing).
 * *out receives a NUL-terminated string of *len bytes (without the NUL),
 * ownership to the caller: free it with weft_dump_free (it comes from the
 * weft allocator, see weft_set_allocator). len may be NULL.
 * The dump is a snapshot of fields other threads write concurrently: it may
 * be slightly torn. It reads the owner of each mutex a thread waits on: a
 * mutex freed by its last waiter during the dump may be read after the
 * free (futures and queues are never read through a waiter's pointer). Returns
 * WEFT_OK, WEFT_EINVAL (out NULL or bad fmt) or WEFT_ENOMEM
 * (*out untouched). Thread-safe; does not block on weft locks held by
 * other threads (it takes short internal spinlocks).
 */
WEFT_API WEFT_NODISCARD int weft_dump(char **out, size_t *len,
                                      weft_dump_format_t fmt);

/* weft_dump_free: free a string from weft_dump. NULL is a no-op. */
WEFT_API void weft_dump_free(char *dump);

/*
 * weft_dump_to_fd: write a dump to the file descriptor fd (with write(2),
 * retried on EINTR and short writes). Returns WEFT_OK, WEFT_EINVAL,
 * WEFT_ENOMEM or WEFT_EIO (a write failed). Thread-safe.
 */
WEFT_API WEFT_NODISCARD int weft_dump_to_fd(int fd, weft_dump_format_t fmt);

/*
 * weft_dump_on_signal: install a handler for signo (SIGUSR1 is typical)
 * that writes a text dump to stderr. The handler itself only write(2)s one
 * byte to a pipe (async-signal-safe); a dump thread named "weft-dump",
 * started by the first call and living until the process exits, wakes and
 * writes the dump. A second call with another signal adds that signal.
 * Returns WEFT_OK, WEFT_EINVAL (bad signo), WEFT_EAGAIN / WEFT_ENOMEM (the
 * pipe or thread could not be made). Thread-safe.
 */
WEFT_API WEFT_NODISCARD int weft_dump_on_signal(int signo);

/*
 * weft_lockorder_enable: turn the lock-order checker on or off. While on,
 * every weft_mutex acquisition records, for each mutex the thread already
 * holds, the edge "held -> acquired" in a process-wide graph (first seen
 * with both acquisition sites and a backtrace). The first time an edge
 * closes a cycle (AB/BA inversion or longer), a report goes to the hook of
 * weft_deadlock_set_hook, once per cycle, before any real deadlock. A lock
 * is identified by its address: a mutex freed and another one created at
 * the same address count as one lock. Off by default; the environment
 * variable WEFT_LOCKORDER=1 turns it on at program start (when the program
 * links this module: always with the shared library). Cost when on: a
 * spinlock and a small search per acquisition while holding locks; a
 * backtrace per new edge. Thread-safe; acquisitions already in progress
 * may be missed.
 */
WEFT_API void weft_lockorder_enable(bool on);

/* weft_lockorder_enabled: whether the checker is on. */
WEFT_API bool weft_lockorder_enabled(void);

/* weft_lockorder_reports: the number of cycles reported so far. */
WEFT_API uint64_t weft_lockorder_reports(void);

/*
 * A deadlock report: one finished text (several lines, no trailing
 * newline). kind: "lock-order" (checker), "deadlock" (a real wait-for
 * cycle, followed by a dump) or "saturated" (a pool whose every worker
 * waits while work is queued). Called on the thread that found it (for
 * the checker: the thread that took the inverting lock, while it holds
 * its locks); must not block on weft locks.
 */
typedef void (*weft_deadlock_fn)(void *ctx, const char *kind,
                                 const char *report);

/*
 * weft_deadlock_set_hook: route reports to fn(ctx, ...). fn NULL restores
 * the default: weft_log at WEFT_LOG_ERROR. Thread-safe; process-global.
 */
WEFT_API void weft_deadlock_set_hook(weft_deadlock_fn fn, void *ctx);

/*
 * weft_watchdog_start: start a thread ("weft-watchdog") that every period
 * ns looks at what every weft thread waits on and reports (through the
 * deadlock hook, with a text dump):
 *  - each wait-for cycle, once: threads blocked on mutexes held by each
 *    other, or on futures the other runs, every wait older than stuck_after;
 *  - each thread pool whose every CPU worker has been blocked (not idle)
 *    for longer than stuck_after while tasks are queued: those tasks cannot
 *    run until a waiter wakes ("saturated"), once until it clears.
 * Returns WEFT_OK, WEFT_EINVAL (period or stuck_after <= 0), WEFT_EBUSY
 * (already running) or a thread creation error. Thread-safe.
 */
WEFT_API WEFT_NODISCARD int weft_watchdog_start(weft_time_t period,
                                                weft_time_t stuck_after);

/* weft_watchdog_stop: stop the watchdog and wait for its thread; no-op when
 * not running or when another stop is under way (a start before that stop
 * ends fails with WEFT_EBUSY). Blocks for at most one scan. */
WEFT_API void weft_watchdog_stop(void);

/* weft_watchdog_reports: the number of reports the watchdog made. */
WEFT_API uint64_t weft_watchdog_reports(void);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_DEBUG_H */
