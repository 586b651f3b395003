/* SPDX-License-Identifier: MIT */
/* Helpers shared by the pipeline tests; see pipe_testutil.h. */
#include "pipe_testutil.h"

#include <stdio.h>

#include <weft/pool.h>

static _Atomic int bad;
static char bad_what[256];

void
wt_pipe_report(const char *what, uint64_t a, int64_t b)
{
    if (atomic_fetch_add(&bad, 1) == 0) {
        snprintf(bad_what, sizeof(bad_what), "%s (%llu, %lld)", what,
                 (unsigned long long)a, (long long)b);
    }
}

int
wt_pipe_take_reports(const char **first)
{
    int n = atomic_exchange(&bad, 0);
    if (first != NULL) {
        *first = bad_what;
    }
    return n;
}

void
wt_pipe_check_no_report(void)
{
    /* Reset first: a failure here must not fail the next tests. */
    int n = wt_pipe_take_reports(NULL);
    if (n != 0) {
        fail_msg("%d problem(s) seen inside the pipeline; first: %s", n,
                 bad_what);
    }
}

void *
wt_pipe_tag(uint64_t v)
{
    return (void *)(uintptr_t)(v + 1);
}

uint64_t
wt_pipe_untag(const void *p)
{
    return (uint64_t)(uintptr_t)p - 1;
}

void
wt_conc_enter(wt_conc_t *c)
{
    int n = atomic_fetch_add(&c->now, 1) + 1;
    int m = atomic_load(&c->max);
    while (n > m && !atomic_compare_exchange_weak(&c->max, &m, n)) {
    }
}

void
wt_conc_leave(wt_conc_t *c)
{
    atomic_fetch_sub(&c->now, 1);
}

void
wt_max_update(_Atomic int64_t *max, int64_t v)
{
    int64_t m = atomic_load(max);
    while (v > m && !atomic_compare_exchange_weak(max, &m, v)) {
    }
}

weft_executor_t *
wt_pipe_pool(const char *name, unsigned workers)
{
    return wt_pool(name, workers);
}

weft_pipeline_t *
wt_pipe_create_opts(const weft_pipeline_opts_t *o)
{
    weft_pipeline_t *p = NULL;
    assert_int_equal(weft_pipeline_create(o, &p), WEFT_OK);
    assert_non_null(p);
    return p;
}

weft_pipeline_t *
wt_pipe_create(weft_executor_t *ex, const char *name, size_t max_in_flight)
{
    weft_pipeline_opts_t o = WEFT_PIPELINE_OPTS_INIT;
    o.name = name;
    o.executor = ex;
    o.max_in_flight = max_in_flight;
    return wt_pipe_create_opts(&o);
}

weft_stage_t
wt_pipe_map_stage(const char *name, weft_stage_fn fn, void *ctx,
                  unsigned parallel)
{
    weft_stage_t s = WEFT_STAGE_INIT;
    s.name = name;
    s.fn = fn;
    s.ctx = ctx;
    s.parallel = parallel;
    return s;
}

void
wt_pipe_add(weft_pipeline_t *p, const weft_stage_t *s)
{
    assert_int_equal(weft_pipeline_stage(p, s), WEFT_OK);
}

weft_future_t *
wt_pipe_start_wait(weft_pipeline_t *p, weft_time_t timeout)
{
    weft_future_t *f = NULL;
    assert_int_equal(weft_pipeline_start(p, &f), WEFT_OK);
    assert_non_null(f);
    assert_int_equal(weft_future_wait_until(f, weft_deadline_in(timeout)),
                     WEFT_OK);
    assert_true(weft_future_done(f));
    return f;
}

void
wt_pipe_expect_done(weft_pipeline_t *p, weft_time_t timeout)
{
    weft_future_t *f = wt_pipe_start_wait(p, timeout);
    if (weft_future_state(f) != WEFT_FUTURE_DONE) {
        fail_msg("pipeline ended %d (%s): %s", (int)weft_future_state(f),
                 weft_errname(weft_future_code(f)), weft_future_error(f));
    }
    assert_int_equal(weft_future_code(f), WEFT_OK);
    weft_future_release(f);
}

int
wt_pipe_sink_count(void *ctx, void *item, void **out)
{
    (void)item;
    (void)out;
    atomic_fetch_add((_Atomic uint64_t *)ctx, 1);
    return WEFT_OK;
}

void
wt_pipe_drop_count(void *ctx, void *item)
{
    (void)item;
    atomic_fetch_add((_Atomic uint64_t *)ctx, 1);
}
