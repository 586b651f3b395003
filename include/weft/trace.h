/* SPDX-License-Identifier: MIT */
/*
 * Timeline traces: every thread records what it does (tasks started and
 * finished, submits, steals, parks, blocking waits) into its own bounded
 * ring, and weft_trace_write turns the rings into a Chrome Trace Event JSON
 * file that Perfetto (ui.perfetto.dev), chrome://tracing and `weft
 * trace-view` open.
 *
 * Any program linked with weft can be traced without a change: with the
 * environment variable WEFT_TRACE=<path> set, tracing starts when the
 * library is loaded and the trace is written to <path> at exit(). The
 * optional WEFT_TRACE_EVENTS=<n> sets the per-thread ring capacity.
 */
#ifndef WEFT_TRACE_H
#define WEFT_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_trace_opts {
    /* Events each thread's ring holds (rounded up to a power of two,
     * 16 .. 16M); when a ring is full its oldest events are dropped and
     * counted. 0: 65536 (2 MiB of address space per thread, committed as
     * it fills). */
    size_t ring_events;
} weft_trace_opts_t;

#define WEFT_TRACE_OPTS_INIT                                                   \
    {                                                                          \
        0                                                                      \
    }

/*
 * weft_trace_start: start a new trace (opts NULL: defaults). The events of
 * the previous trace, if any, are discarded. From now on every thread that
 * runs a weft task or makes a weft blocking wait records into its own ring
 * (allocated at its first event).
 * Errors: WEFT_EBUSY when a trace is already running, WEFT_EINVAL when
 * ring_events is above 16M, WEFT_EAGAIN when the probe sinks are all taken
 * by other observers. opts is borrowed for the call.
 * Thread-safe (serialised with stop and write); never blocks for long.
 */
WEFT_API WEFT_NODISCARD int weft_trace_start(const weft_trace_opts_t *opts);

/*
 * weft_trace_stop: stop recording. The recorded events stay until the next
 * weft_trace_start, so weft_trace_write can still write them. Idempotent.
 * After it returns no new event is recorded (it waits, yielding, for the
 * threads in the middle of writing one). Thread-safe.
 */
WEFT_API void weft_trace_stop(void);

/*
 * weft_trace_active: whether a trace is recording. Thread-safe, lock-free.
 */
WEFT_API bool weft_trace_active(void);

/*
 * weft_trace_write: write the current (or last) trace to path as Chrome
 * Trace Event JSON: {"traceEvents":[...], "displayTimeUnit":"ns",
 * "otherData":{"dropped":N, ...}}. Timestamps are microseconds on the
 * monotonic clock. Tasks are complete events ("ph":"X", args label, id,
 * parent, queued_us), waits are complete events named "wait <kind>" nested
 * in the task they happened in, submits/steals/parks/unparks are instant
 * events ("ph":"i"), thread names are metadata events ("ph":"M"). Slices
 * still open are closed at the trace's last timestamp with args
 * "unfinished":true; ends whose begin was dropped are left out.
 * May be called while tracing (threads keep recording; what they overwrite
 * meanwhile is dropped). Errors: WEFT_EINVAL (path NULL), WEFT_EIO (the
 * file cannot be written), WEFT_ENOMEM. path is borrowed.
 * Thread-safe; blocks on file I/O; allocates about as much memory as the
 * largest ring plus the task slices.
 */
WEFT_API WEFT_NODISCARD int weft_trace_write(const char *path);

/*
 * weft_trace_dropped: events lost in the current (or last) trace: dropped
 * from full rings, or not recorded for lack of memory. Thread-safe,
 * lock-free snapshot.
 */
WEFT_API uint64_t weft_trace_dropped(void);

/*
 * weft_trace_events: events currently held in the rings of the current (or
 * last) trace (at most ring_events per thread). Thread-safe snapshot.
 */
WEFT_API uint64_t weft_trace_events(void);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_TRACE_H */
