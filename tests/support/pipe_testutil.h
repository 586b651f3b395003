/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the pipeline tests: problems seen on pool workers
 * (where cmocka must not assert) kept for the test thread, tagged integer
 * items, per-stage concurrency counters, and pipelines, stages, pools and
 * runs created under cmocka asserts.
 */
#ifndef WEFT_PIPE_TESTUTIL_H
#define WEFT_PIPE_TESTUTIL_H

#include "testutil.h"

#include <stdatomic.h>

#include <weft/pipeline.h>

/* Record a problem seen inside a pipeline (any thread); the first one's
 * text is kept. */
void wt_pipe_report(const char *what, uint64_t a, int64_t b);

/* The number of problems reported since the last call or check (the
 * count is reset to 0), and in *first (when not NULL) the first one's text,
 * valid until the next report. For a test that frees what it holds before
 * it fails. */
int wt_pipe_take_reports(const char **first);

/* Fail the test if a problem was reported since the last call, with the
 * count and the first one's text; resets the count first, so that a
 * failure does not carry over into the next test. Test thread only. */
void wt_pipe_check_no_report(void);

/* Tagged integer items: v + 1, so never NULL. */
void *wt_pipe_tag(uint64_t v);
uint64_t wt_pipe_untag(const void *p);

/* Concurrency of one stage: calls running now and the most seen. */
typedef struct wt_conc {
    _Atomic int now;
    _Atomic int max;
} wt_conc_t;

void wt_conc_enter(wt_conc_t *c);
void wt_conc_leave(wt_conc_t *c);

/* *max = the larger of *max and v, atomically. */
void wt_max_update(_Atomic int64_t *max, int64_t v);

/* A pool of `workers` workers named `name` (NULL: the default); fails the
 * test if creation fails. */
weft_executor_t *wt_pipe_pool(const char *name, unsigned workers);

/* A pipeline of options o; fails the test if creation fails. */
weft_pipeline_t *wt_pipe_create_opts(const weft_pipeline_opts_t *o);

/* A pipeline on ex; fails the test if creation fails. */
weft_pipeline_t *wt_pipe_create(weft_executor_t *ex, const char *name,
                                size_t max_in_flight);

/* A stage of fn (a map stage) with the given name, ctx and parallelism;
 * the other fields as in WEFT_STAGE_INIT. */
weft_stage_t wt_pipe_map_stage(const char *name, weft_stage_fn fn, void *ctx,
                               unsigned parallel);

/* weft_pipeline_stage; fails the test unless WEFT_OK. */
void wt_pipe_add(weft_pipeline_t *p, const weft_stage_t *s);

/* Start p and wait for its future until `timeout` ns from now (a hang is
 * a failure, not a timeout); fails the test unless the future completed.
 * Returns the future (the caller's reference). */
weft_future_t *wt_pipe_start_wait(weft_pipeline_t *p, weft_time_t timeout);

/* Start p and wait as wt_pipe_start_wait; fails the test unless the
 * future ended DONE with WEFT_OK (the message says how it ended). */
void wt_pipe_expect_done(weft_pipeline_t *p, weft_time_t timeout);

/* A stage function that counts its items into ctx (an _Atomic uint64_t)
 * and keeps none (tagged items only). */
int wt_pipe_sink_count(void *ctx, void *item, void **out);

/* A drop function that counts its items into ctx (an _Atomic uint64_t). */
void wt_pipe_drop_count(void *ctx, void *item);

#endif /* WEFT_PIPE_TESTUTIL_H */
