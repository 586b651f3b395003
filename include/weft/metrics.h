/* SPDX-License-Identifier: MIT */
/*
 * Metrics: counters, gauges, latency histograms and worker utilisation for
 * every thread pool and queue, read as plain-struct snapshots or exported
 * as Prometheus text (format 0.0.4) or JSON, optionally served over HTTP on
 * 127.0.0.1 for a Prometheus scraper.
 *
 * Collection is off by default and then costs nothing beyond the probes'
 * one predicted branch. Enabled (weft_metrics_enable(true), or the
 * environment variable WEFT_METRICS=1 at startup), every task costs a few
 * uncontended stores into the submitting and the running thread's own
 * cells (the counters are exact); readers merge the cells of all threads.
 * Clock reads are kept off the per-task path: only one task in
 * weft_metrics_sample() (64 by default; weft_metrics_set_sample, or
 * WEFT_METRICS_SAMPLE=<n> at startup) is timed, with three clock reads
 * (submit, start, end), so the latency histograms count sampled tasks
 * only: their sums and quantiles are unbiased estimates of all tasks'
 * (multiply counts and sums by the rate, which snapshots and exports
 * carry). Utilisation reads the clock twice per busy spell of a worker
 * (from finding work to finding none), not per task.
 *
 * The library registers its probe sink when it is loaded (a constructor),
 * so pools and queues created before collection is enabled are listed
 * too. With the static library that object is linked only into programs
 * that call a weft_metrics_* function; WEFT_METRICS=1 needs that (or the
 * shared library). Up to 32 pools, 64 queues and 32 pipelines are
 * tracked at a time.
 */
#ifndef WEFT_METRICS_H
#define WEFT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft/base.h>
#include <weft/pipeline.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Latency histogram summary (ns) of the sampled tasks (see above: count
 * and sum_ns times the snapshot's sample_every estimate all tasks').
 * Quantiles are upper bounds of the log-linear bucket holding them (8
 * buckets per power of two: within 12.5%); max is the exact maximum of
 * the sample. All 0 when count is 0. */
typedef struct weft_metrics_hist {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t p50_ns, p90_ns, p99_ns, max_ns;
} weft_metrics_hist_t;

/* One thread pool. Counters count the pool's events that happened while
 * collection was on. */
typedef struct weft_metrics_pool {
    char name[32];
    unsigned workers;
    /* Counters. started counts tasks dispatched to run, including queued
     * futures found cancelled at dispatch, which end as cancelled;
     * started = completed + failed + (cancelled - dropped) + running. */
    uint64_t submitted; /* queued (CPU workers; not blocking-lane tasks) */
    uint64_t started;
    uint64_t completed; /* ended WEFT_OK */
    uint64_t failed;    /* ended with a failure code */
    uint64_t cancelled; /* ended WEFT_ECANCELED, or dropped by shutdown */
    uint64_t rejected;  /* submits refused: queue full or deadline passed */
    uint64_t stolen, parked, unparked;
    /* Gauges (live, at the time of the snapshot). */
    uint64_t queue_depth; /* queued in the injectors and on the deques */
    unsigned running;     /* workers awake (running or searching) */
    unsigned idle;        /* workers parked */
    unsigned lane_threads;
    /* Histograms of the sampled tasks: queue wait (submit to start) and
     * run time. */
    weft_metrics_hist_t wait, run;
    /* Busy share of each worker (0..1) over the window ending now (see
     * weft_metrics_snapshot); workers entries. A worker is busy from the
     * moment it finds work until it finds none (running tasks, including
     * tasks that block, and the moves between them), idle while it
     * searches and sleeps. */
    double *utilisation;
    double window_s; /* the window's length */
} weft_metrics_pool_t;

/* One queue (internal queues of pools are not listed). */
typedef struct weft_metrics_queue {
    char name[32];
    uint64_t puts, gets; /* items */
    uint64_t depth;
    uint64_t capacity; /* 0: unbounded */
} weft_metrics_queue_t;

typedef struct weft_metrics_snapshot {
    weft_time_t taken_at;
    /* One task in sample_every is timed (weft_metrics_sample() when the
     * snapshot was taken): histogram counts and sums times this estimate
     * all tasks'. */
    unsigned sample_every;
    size_t npools, nqueues;
    weft_metrics_pool_t *pools;
    weft_metrics_queue_t *queues;
    /* Pipelines started and not yet destroyed (<weft/pipeline.h>): each
     * with its stages' counters, busy shares and bottleneck. */
    size_t npipelines;
    weft_pipeline_stats_t *pipelines;
} weft_metrics_snapshot_t;

/*
 * weft_metrics_enable: turn collection on or off (process-wide). Counts
 * gathered so far are kept; while off nothing is updated. Any thread;
 * does not block (a short spin against concurrent enables).
 */
WEFT_API void weft_metrics_enable(bool on);

/* weft_metrics_enabled: whether collection is on. Any thread. */
WEFT_API bool weft_metrics_enabled(void);

/*
 * weft_metrics_set_sample: time one task in `every` (1: every task) for
 * the latency histograms, from the tasks submitted after the call on
 * (process-wide). every is rounded down to a power of two (the sample is
 * the tasks whose per-thread submit count is a multiple of it). Counters
 * and utilisation are not sampled. Samples already in the histograms
 * stay: a reader scaling counts by the rate should set it before the
 * tasks it measures. Returns WEFT_OK, or WEFT_EINVAL when every is 0 or
 * above 65536 (nothing changed). Any thread.
 */
WEFT_API WEFT_NODISCARD int weft_metrics_set_sample(unsigned every);

/* weft_metrics_sample: the sample rate in effect (one task in this many is
 * timed; 64 unless set). Any thread. */
WEFT_API unsigned weft_metrics_sample(void);

/*
 * weft_metrics_snapshot: merge every thread's cells into a new snapshot of
 * all live pools and queues (*out, owned by the caller: free with
 * weft_metrics_snapshot_free). Utilisation covers the interval since the
 * previous snapshot or export (the first covers the pool's life). Returns
 * WEFT_OK, WEFT_EINVAL (out NULL) or WEFT_ENOMEM (*out untouched). Any
 * thread; takes the registry lock (pool/queue creation waits meanwhile),
 * never blocks a task's hot path.
 */
WEFT_API WEFT_NODISCARD int
weft_metrics_snapshot(weft_metrics_snapshot_t **out);

/* weft_metrics_snapshot_free: free a snapshot (NULL: nothing). */
WEFT_API void weft_metrics_snapshot_free(weft_metrics_snapshot_t *s);

/*
 * weft_metrics_prometheus: the current metrics as Prometheus text
 * exposition (format 0.0.4) in a new NUL-terminated buffer (*out, free
 * with free(); *len its length without the NUL). Same errors and
 * thread-safety as weft_metrics_snapshot.
 */
WEFT_API WEFT_NODISCARD int weft_metrics_prometheus(char **out, size_t *len);

/* weft_metrics_json: the same as one JSON object {"pools":[..],
 * "queues":[..]}; as weft_metrics_prometheus. */
WEFT_API WEFT_NODISCARD int weft_metrics_json(char **out, size_t *len);

typedef struct weft_metrics_server weft_metrics_server_t;

/*
 * weft_metrics_serve: start an HTTP/1.1 server thread on 127.0.0.1:port
 * (0: an ephemeral port, see weft_metrics_server_port) answering
 * GET /metrics (Prometheus text) and GET /metrics.json; 404 for other
 * paths, 405 for other methods, 400 for requests over 8 KiB. One client
 * at a time, each connection closed after its answer. Does not enable
 * collection. Returns WEFT_OK with *out (stop with
 * weft_metrics_server_stop), WEFT_EINVAL, WEFT_ENOMEM, or WEFT_ESYS when
 * the port cannot be bound.
 */
WEFT_API WEFT_NODISCARD int weft_metrics_serve(uint16_t port,
                                               weft_metrics_server_t **out);

/* weft_metrics_server_port: the port s listens on. */
WEFT_API uint16_t weft_metrics_server_port(const weft_metrics_server_t *s);

/* weft_metrics_server_stop: stop s, wait for its thread (at most the
 * current answer, whose client has 2 s to read or send) and free it.
 * NULL: nothing. Not from a task of s (there are none). */
WEFT_API void weft_metrics_server_stop(weft_metrics_server_t *s);

#ifdef __cplusplus
}
#endif

#endif /* WEFT_METRICS_H */
