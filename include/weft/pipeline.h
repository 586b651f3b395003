/* SPDX-License-Identifier: MIT */
/*
 * Pipelines: staged streaming on a thread pool, with backpressure.
 *
 * A pipeline is a source, any number of stages and a sink (the last stage).
 * Items are `void *` (the pipeline never looks inside them). The source
 * hands each item a sequence number (its index, from 0). At most
 * max_in_flight items are between the source and the end of the sink at any
 * time: when that many are in flight the source is not called again until
 * one leaves, so a slow stage slows the source and memory stays bounded
 * whatever the input size (every buffer between stages holds at most
 * max_in_flight items).
 *
 * Stages:
 *  - parallel = 1 (serial, the default): one item at a time. With ordered,
 *    items enter the stage in source order (a reorder buffer in front of it
 *    holds the ones that arrive early); without, in arrival order.
 *  - parallel = N > 1: up to N items at a time, in any order; parallel = 0:
 *    as many as the pool runs. A later ordered stage puts items back into
 *    source order.
 *  - A map stage (fn) turns one item into one, or drops it (filter); a
 *    flat stage (flat) emits any number of items per input; a batch stage
 *    (batch_fn, batch_max) receives up to batch_max items at once and
 *    emits any number. Items emitted for one input travel together and
 *    keep their parent's sequence number (and so its place in the order).
 *
 * How it runs (the oneTBB model): an item is carried through consecutive
 * stages by one pool task, so its data stays in that core's cache; a
 * serial stage that is busy (or an ordered stage waiting for an earlier
 * item) parks the item in its buffer and the carrying thread moves on; the
 * thread that finishes a serial stage hands the next parked item on. Stage
 * functions run on the pool's workers: one that blocks on I/O for long
 * should be given to a pool with spare workers (or read through a blocking
 * source, see weft_pipeline_opts_t.source_blocking).
 *
 * End of stream: the source returns WEFT_ECLOSED; the pipeline finishes
 * when every item has left the sink. No sentinel items.
 *
 * Errors and cancellation: a stage (or the source) that returns a negative
 * code fails the pipeline. The first failure is kept (its stage's name,
 * the item's sequence number, the code and the message set with
 * weft_stage_fail), and the pipeline is cancelled: the source is not
 * called again, items waiting in buffers are handed to their stage's drop
 * function, stage functions still running see weft_cancelled() true and
 * WEFT_ECANCELED from weft's blocking calls, and nothing they return is
 * passed on. weft_pipeline_cancel does the same from outside. Either way
 * the pipeline's future completes only when no stage function is running
 * any more and every item has been dropped or has left the sink.
 * weft_future_cancel on the pipeline's future cancels it too, noticed at
 * the next item boundary (it does not wake a stage call or a source that
 * is blocked: weft_pipeline_cancel does).
 *
 * Metrics and traces: with metrics on (<weft/metrics.h>), every stage
 * reports items in / out / dropped, its buffer depth, its busy share and
 * the time items waited in its buffer (weft_pipeline_stats and the
 * metrics exports); with tracing on, each stage call is a slice labelled
 * with the stage's name.
 *
 * The pool must stay up while the pipeline runs: shutting it down with
 * cancel_pending would discard queued work of the pipeline, which then
 * never ends. Cancel the pipeline and wait for it first.
 *
 * Thread safety: build a pipeline (create, add stages) from one thread;
 * then start it once. cancel, stats and the future may be used from any
 * thread. destroy after the future completed (it waits for that).
 */
#ifndef WEFT_PIPELINE_H
#define WEFT_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/base.h>
#include <weft/executor.h>
#include <weft/future.h>
#include <weft/queue.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_pipeline weft_pipeline_t;

/* Where a flat or batch stage puts the items it makes. */
typedef struct weft_emit weft_emit_t;

/*
 * A source: store the next item in *item and return WEFT_OK; return
 * WEFT_ECLOSED at the end of the stream; any other negative code fails
 * the pipeline (see weft_stage_fail). Called by one thread at a time.
 */
typedef int (*weft_source_fn)(void *ctx, void **item);

/*
 * A map stage: turn item into *out and return WEFT_OK; return
 * WEFT_PIPELINE_DROP to drop it (a filter: the stage has disposed of
 * item itself); a negative code fails the pipeline (item is then the
 * stage's to dispose of as well). A sink is a map stage whose *out is
 * ignored.
 */
typedef int (*weft_stage_fn)(void *ctx, void *item, void **out);

/* A flat stage: call weft_emit zero or more times for item; return WEFT_OK
 * or a negative code. */
typedef int (*weft_flat_fn)(void *ctx, void *item, weft_emit_t *em);

/* A batch stage: n (1..batch_max) items in source order when the stage
 * is ordered; emit any number; return WEFT_OK or a negative code. */
typedef int (*weft_batch_fn)(void *ctx, void **items, size_t n,
                             weft_emit_t *em);

/* Frees an item the pipeline drops (cancellation, failure). */
typedef void (*weft_item_drop_fn)(void *ctx, void *item);

/* A map stage's "drop this item" answer (not an error). */
#define WEFT_PIPELINE_DROP 1

/* Parallelism of a stage that runs as many items at once as the pool
 * has workers. */
#define WEFT_STAGE_PARALLEL 0u

/* One stage. Start from WEFT_STAGE_INIT; set exactly one of fn, flat,
 * batch_fn. */
typedef struct weft_stage {
    /* Shown in errors, metrics and traces ("stage3" when NULL). Copied. */
    const char *name;
    weft_stage_fn fn;
    weft_flat_fn flat;
    weft_batch_fn batch_fn;
    size_t batch_max; /* batch_fn only: items per call, >= 1 */
    void *ctx;        /* passed to the functions */
    /* 1: serial; N: at most N at once; WEFT_STAGE_PARALLEL: unlimited. */
    unsigned parallel;
    /* Serial stages only: items enter in source order. */
    bool ordered;
    /* Frees an item this stage was to receive but never will (NULL:
     * items are not freed). */
    weft_item_drop_fn drop;
} weft_stage_t;

#define WEFT_STAGE_INIT                                                        \
    {                                                                          \
        NULL, NULL, NULL, NULL, 0, NULL, 1u, false, NULL                       \
    }

typedef struct weft_pipeline_opts {
    /* Shown in errors, metrics and traces ("pipeline" when NULL). Copied. */
    const char *name;
    /* The pool the stages run on (<weft/pool.h>). Required. Borrowed: must
     * outlive the pipeline. */
    weft_executor_t *executor;
    /* Items in flight at most; 0: 4 x the pool's workers (at least 8). */
    size_t max_in_flight;
    /* The source blocks (reads a socket, a pipe, a queue fed by other
     * threads): call it on the pool's blocking lane. */
    bool source_blocking;
    /* Items one flat or batch call may emit at most (0: 65536); more is
     * a failure of that stage with WEFT_EOVERFLOW. */
    size_t emit_max;
} weft_pipeline_opts_t;

#define WEFT_PIPELINE_OPTS_INIT                                                \
    {                                                                          \
        NULL, NULL, 0, false, 0                                                \
    }

/*
 * weft_pipeline_create: a new, empty pipeline. Returns WEFT_OK with *out,
 * WEFT_EINVAL (opts, out or opts->executor NULL; executor not a pool) or
 * WEFT_ENOMEM.
 */
WEFT_API WEFT_NODISCARD int
weft_pipeline_create(const weft_pipeline_opts_t *opts, weft_pipeline_t **out);

/*
 * weft_pipeline_source: set the source (once, before start). Items the
 * source made that the first stage never receives (cancellation) go to
 * the first stage's drop function. Returns WEFT_OK, WEFT_EINVAL (NULL fn,
 * already set, already started).
 */
WEFT_API WEFT_NODISCARD int weft_pipeline_source(weft_pipeline_t *p,
                                                 weft_source_fn fn, void *ctx);

/*
 * weft_pipeline_source_queue: the source is q, whose items must be
 * pointer-sized (elem_size == sizeof(void *)): each weft_queue_get is one
 * item, and the stream ends when q is closed and drained. Implies
 * source_blocking. q is borrowed: it must outlive the pipeline. A
 * cancelled pipeline stops taking from q (it does not close it).
 */
WEFT_API WEFT_NODISCARD int weft_pipeline_source_queue(weft_pipeline_t *p,
                                                       weft_queue_t *q);

/* One line of a text file, as weft_pipeline_source_lines makes them. */
typedef struct weft_line {
    uint64_t index; /* 0 for the first line */
    size_t len;     /* bytes, without the newline */
    char text[];    /* len bytes and a NUL */
} weft_line_t;

/*
 * weft_pipeline_source_lines: the source reads the file at path line by
 * line (a last line without a newline counts; lines of any length). Each
 * item is a weft_line_t allocated through weft's allocator hook: the stage
 * that is done with it frees it with weft_line_free (lines the first stage
 * never receives are freed with weft_line_free unless it has a drop
 * function). The file is opened at start; a failure to open or read fails
 * the pipeline with WEFT_ESYS (the message names the file and errno).
 */
WEFT_API WEFT_NODISCARD int weft_pipeline_source_lines(weft_pipeline_t *p,
                                                       const char *path);

/* weft_line_free: free a weft_line_t (NULL: nothing). */
WEFT_API void weft_line_free(weft_line_t *line);

/*
 * weft_pipeline_stage: append a stage (the last one appended is the sink).
 * *stage is copied. Returns WEFT_OK, WEFT_EINVAL (not exactly one of
 * fn / flat / batch_fn; batch_max 0 with batch_fn; ordered with parallel
 * != 1; already started) or WEFT_ENOMEM. At most 64 stages.
 */
WEFT_API WEFT_NODISCARD int weft_pipeline_stage(weft_pipeline_t *p,
                                                const weft_stage_t *stage);

/*
 * weft_pipeline_start: start the pipeline on its pool. *out (may be NULL)
 * receives a future (the caller's reference) that completes when the
 * pipeline has finished: DONE when the source ended and every item left
 * the sink; FAILED with the first failure's code and the message
 * "<pipeline>: stage '<name>' item <index>: <message>"; CANCELLED after
 * weft_pipeline_cancel. Returns WEFT_OK, WEFT_EINVAL (no source or no
 * stage, started before), WEFT_ESHUTDOWN (the pool is shut down),
 * WEFT_ENOMEM.
 */
WEFT_API WEFT_NODISCARD int weft_pipeline_start(weft_pipeline_t *p,
                                                weft_future_t **out);

/*
 * weft_pipeline_run: start, then wait for the end. Returns WEFT_OK, the
 * first failure's code (message from weft_pipeline_error), WEFT_ECANCELED,
 * or an error of weft_pipeline_start; WEFT_EDEADLK (nothing started) from
 * a task of a one-worker pool that is the pipeline's own (the waiting
 * worker is not available to the stages meanwhile). Not from a stage.
 */
WEFT_API WEFT_NODISCARD int weft_pipeline_run(weft_pipeline_t *p);

/*
 * weft_pipeline_cancel: stop the pipeline (see the top of this file).
 * Idempotent; any thread, also a stage function; never blocks.
 */
WEFT_API void weft_pipeline_cancel(weft_pipeline_t *p);

/* weft_pipeline_error: the first failure's message ("" if none). Borrowed,
 * valid until destroy. */
WEFT_API const char *weft_pipeline_error(const weft_pipeline_t *p);

/*
 * weft_stage_fail: from inside a stage or source function: record the
 * message of the failure it is about to return (printf format) and return
 * code, as in `return weft_stage_fail(WEFT_EINVAL, "bad field %d", k);`.
 */
WEFT_API int weft_stage_fail(int code, const char *fmt, ...) WEFT_PRINTF(2, 3);

/*
 * weft_emit: from inside a flat or batch stage function: pass item on
 * (after the items emitted before it for the same call). Returns WEFT_OK,
 * WEFT_EOVERFLOW (emit_max reached: the item is not taken, return the code to
 * fail the stage), WEFT_ENOMEM.
 */
WEFT_API WEFT_NODISCARD int weft_emit(weft_emit_t *em, void *item);

/* Counters of one stage (index 0 is the source). */
typedef struct weft_stage_stats {
    char name[32];
    unsigned parallel; /* as configured (0: unlimited) */
    bool ordered;
    uint64_t items_in;  /* calls' input items (the source: items made) */
    uint64_t items_out; /* items passed on */
    uint64_t dropped;   /* items given to drop (cancel, failure) */
    uint64_t filtered;  /* items a map stage answered WEFT_PIPELINE_DROP */
    size_t buffered;    /* items waiting at the stage's input now */
    size_t running;     /* calls running now */
    /* With metrics on (else 0): time inside the stage's function, summed
     * over all calls, and time items waited in the buffer. Measured on one
     * item in 8 (by sequence number) and scaled by 8: estimates. */
    uint64_t busy_ns;
    uint64_t wait_ns;
    /* busy_ns / (elapsed x usable parallelism), 0..1 */
    double busy_share;
} weft_stage_stats_t;

typedef struct weft_pipeline_stats {
    char name[32];
    size_t in_flight; /* now */
    size_t max_in_flight;
    uint64_t elapsed_ns; /* since start (until the end, once finished) */
    bool finished;
    size_t nstages;            /* including the source */
    weft_stage_stats_t *stage; /* nstages entries */
    size_t bottleneck;         /* index of the stage with the largest busy
                                  share (metrics on) or the fullest buffer */
} weft_pipeline_stats_t;

/*
 * weft_pipeline_stats: a snapshot of p's counters into *out (free its
 * stage array with weft_pipeline_stats_free). Any thread, any time after
 * create. Returns WEFT_OK, WEFT_EINVAL, WEFT_ENOMEM.
 */
WEFT_API WEFT_NODISCARD int weft_pipeline_stats(const weft_pipeline_t *p,
                                                weft_pipeline_stats_t *out);

/* weft_pipeline_stats_free: free what weft_pipeline_stats allocated. */
WEFT_API void weft_pipeline_stats_free(weft_pipeline_stats_t *s);

/*
 * weft_pipeline_destroy: wait for the pipeline to finish if it was started
 * (cancel it first to stop it early), then free it. NULL: nothing. Not
 * from a task of the pipeline.
 */
WEFT_API void weft_pipeline_destroy(weft_pipeline_t *p);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_PIPELINE_H */
