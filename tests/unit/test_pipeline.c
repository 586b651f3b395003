/* SPDX-License-Identifier: MIT */
/*
 * Pipelines (RELIABILITY R7): argument checks, what map, filter, flat and
 * batch stages deliver and in which order, the emit bound, the queue and
 * file sources, failures (code, message, who stops), cancellation (every
 * item reaches the sink or a drop function exactly once), the in-flight
 * bound, stats and destroy.
 */
#include "pipe_testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft/metrics.h>
#include <weft/pipeline.h>
#include <weft/pool.h>
#include <weft/queue.h>

/*
 * DESIGN
 * Stage functions run on pool workers, where cmocka's asserts must not be
 * used: they record what they see in atomics (and problems with
 * wt_pipe_report), and the test thread asserts on those once the pipeline's
 * future has completed. Most items are tagged integers (sequence number + 1, so
 * never NULL): the pipeline never looks inside an item. The tests that
 * count frees use malloc'd items.
 */

#define WORKERS 4u
#define FAR (60 * WEFT_SEC)

static weft_executor_t *pool;

static int
setup(void **state)
{
    (void)state;
    pool = wt_pipe_pool("pltest", WORKERS);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    weft_executor_destroy(pool);
    pool = NULL;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                            */

/* An address no pipeline or future has: out-parameters that must stay
 * untouched are set to it first. */
static int sentinel_obj;

/* A pipeline on the shared pool. */
static weft_pipeline_t *
mk(const char *name, size_t max_in_flight)
{
    return wt_pipe_create(pool, name, max_in_flight);
}

/* A pipeline on ex, its source_blocking option as given. */
static weft_pipeline_t *
mk_source_blocking(weft_executor_t *ex, const char *name, bool blocking)
{
    weft_pipeline_opts_t o = WEFT_PIPELINE_OPTS_INIT;
    o.name = name;
    o.executor = ex;
    o.source_blocking = blocking;
    return wt_pipe_create_opts(&o);
}

/* Start p and wait (with a far deadline: a hang is a failure, not a
 * timeout) for its future; returns the future (caller's reference). */
static weft_future_t *
start_wait(weft_pipeline_t *p)
{
    return wt_pipe_start_wait(p, FAR);
}

static void
expect_done(weft_pipeline_t *p)
{
    wt_pipe_expect_done(p, FAR);
}

/* A source of n tagged sequence numbers (n == UINT64_MAX: endless). */
typedef struct src {
    uint64_t n;
    uint64_t next;
    _Atomic uint64_t calls;
    _Atomic int stop_seen; /* set by the test: calls after it are counted */
    _Atomic uint64_t calls_after_stop;
    wt_conc_t conc;
} src_t;

static int
src_fn(void *ctx, void **item)
{
    src_t *s = ctx;
    wt_conc_enter(&s->conc);
    atomic_fetch_add(&s->calls, 1);
    if (atomic_load(&s->stop_seen)) {
        atomic_fetch_add(&s->calls_after_stop, 1);
    }
    int rc = WEFT_ECLOSED;
    if (s->next < s->n) {
        *item = wt_pipe_tag(s->next++);
        rc = WEFT_OK;
    }
    wt_conc_leave(&s->conc);
    return rc;
}

static void
set_source(weft_pipeline_t *p, src_t *s, uint64_t n)
{
    memset(s, 0, sizeof(*s));
    s->n = n;
    assert_int_equal(weft_pipeline_source(p, src_fn, s), WEFT_OK);
}

static int
map_identity(void *ctx, void *item, void **out)
{
    (void)ctx;
    *out = item;
    return WEFT_OK;
}

/* A sink that records what it sees: each value once, and whether values
 * came in strictly increasing steps of 1 (checked when `ordered`). */
typedef struct sink {
    size_t cap;
    _Atomic uint8_t *seen;
    _Atomic uint64_t count;
    uint64_t expect_next; /* serial sinks only */
    bool ordered;
    wt_conc_t conc;
    weft_time_t sleep;
} sink_t;

static void
sink_init(sink_t *k, size_t cap, bool ordered)
{
    memset(k, 0, sizeof(*k));
    k->cap = cap;
    k->seen = calloc(cap > 0 ? cap : 1, sizeof(*k->seen));
    assert_non_null(k->seen);
    k->ordered = ordered;
}

static void
sink_fini(sink_t *k)
{
    free((void *)k->seen);
    k->seen = NULL;
}

static void
sink_value(sink_t *k, uint64_t v)
{
    if (v >= k->cap) {
        wt_pipe_report("sink: value out of range", v, 0);
    } else if (atomic_fetch_add(&k->seen[v], 1) != 0) {
        wt_pipe_report("sink: value seen twice", v, 0);
    }
    if (k->ordered) {
        if (v != k->expect_next) {
            wt_pipe_report("sink: out of order (got, expected)", v,
                           (int64_t)k->expect_next);
        }
        k->expect_next = v + 1;
    }
    atomic_fetch_add(&k->count, 1);
}

static int
sink_fn(void *ctx, void *item, void **out)
{
    (void)out;
    sink_t *k = ctx;
    wt_conc_enter(&k->conc);
    if (k->sleep > 0) {
        (void)weft_sleep_for(k->sleep);
    }
    sink_value(k, wt_pipe_untag(item));
    wt_conc_leave(&k->conc);
    return WEFT_OK;
}

/* The first value below n not seen exactly once (UINT64_MAX: none). */
static uint64_t
sink_first_missing(sink_t *k, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        if (atomic_load(&k->seen[i]) != 1) {
            return i;
        }
    }
    return UINT64_MAX;
}

/* Every value below n was seen exactly once. */
static void
sink_check_all(sink_t *k, uint64_t n)
{
    assert_int_equal(atomic_load(&k->count), n);
    for (uint64_t i = 0; i < n; i++) {
        if (atomic_load(&k->seen[i]) != 1) {
            fail_msg("value %llu seen %d times", (unsigned long long)i,
                     (int)atomic_load(&k->seen[i]));
        }
    }
}

static weft_stage_t
sink_stage(sink_t *k)
{
    weft_stage_t s = wt_pipe_map_stage("sink", sink_fn, k, 1);
    s.ordered = k->ordered;
    return s;
}

/* Add a serial stage that counts its items into *got, and the items
 * dropped at it too when `with_drop` (each item then counts once, sunk or
 * dropped). */
static void
add_counter(weft_pipeline_t *p, _Atomic uint64_t *got, bool with_drop)
{
    weft_stage_t k = wt_pipe_map_stage(NULL, wt_pipe_sink_count, got, 1);
    if (with_drop) {
        k.drop = wt_pipe_drop_count;
    }
    wt_pipe_add(p, &k);
}

/* ------------------------------------------------------------------------ */
/* Argument checks                                                           */

static void
test_create_errors(void **state)
{
    (void)state;
    weft_pipeline_t *sentinel = (weft_pipeline_t *)&sentinel_obj;
    weft_pipeline_t *p = sentinel;
    weft_pipeline_opts_t o = WEFT_PIPELINE_OPTS_INIT;
    o.executor = pool;
    assert_int_equal(weft_pipeline_create(NULL, &p), WEFT_EINVAL);
    assert_ptr_equal(p, sentinel);
    assert_int_equal(weft_pipeline_create(&o, NULL), WEFT_EINVAL);
    o.executor = NULL;
    assert_int_equal(weft_pipeline_create(&o, &p), WEFT_EINVAL);
    assert_ptr_equal(p, sentinel);

    weft_executor_t *inl = NULL;
    assert_int_equal(weft_inline_executor_create(&inl), WEFT_OK);
    o.executor = inl;
    assert_int_equal(weft_pipeline_create(&o, &p), WEFT_EINVAL);
    assert_ptr_equal(p, sentinel);
    weft_executor_destroy(inl);
}

static void
test_source_errors(void **state)
{
    (void)state;
    weft_pipeline_t *p = mk("src-errors", 0);
    src_t s;
    assert_int_equal(weft_pipeline_source(p, NULL, &s), WEFT_EINVAL);
    set_source(p, &s, 3);
    /* Already set. */
    assert_int_equal(weft_pipeline_source(p, src_fn, &s), WEFT_EINVAL);
    weft_pipeline_destroy(p);
    /* The rejected calls never called anything. */
    assert_int_equal(atomic_load(&s.calls), 0);
}

static int
flat_identity(void *ctx, void *item, weft_emit_t *em)
{
    (void)ctx;
    return weft_emit(em, item);
}

static int
batch_identity(void *ctx, void **items, size_t n, weft_emit_t *em)
{
    (void)ctx;
    for (size_t i = 0; i < n; i++) {
        int rc = weft_emit(em, items[i]);
        if (rc != WEFT_OK) {
            return rc;
        }
    }
    return WEFT_OK;
}

static void
test_stage_errors(void **state)
{
    (void)state;
    weft_pipeline_t *p = mk("stage-errors", 0);
    weft_stage_t s = WEFT_STAGE_INIT;
    /* None of fn / flat / batch_fn. */
    assert_int_equal(weft_pipeline_stage(p, &s), WEFT_EINVAL);
    /* Two or three of them. */
    s.fn = map_identity;
    s.flat = flat_identity;
    assert_int_equal(weft_pipeline_stage(p, &s), WEFT_EINVAL);
    s.flat = NULL;
    s.batch_fn = batch_identity;
    s.batch_max = 4;
    assert_int_equal(weft_pipeline_stage(p, &s), WEFT_EINVAL);
    s.fn = NULL;
    s.flat = flat_identity;
    assert_int_equal(weft_pipeline_stage(p, &s), WEFT_EINVAL);
    s.fn = map_identity;
    assert_int_equal(weft_pipeline_stage(p, &s), WEFT_EINVAL);
    /* batch_fn with batch_max 0. */
    weft_stage_t b = WEFT_STAGE_INIT;
    b.batch_fn = batch_identity;
    b.batch_max = 0;
    assert_int_equal(weft_pipeline_stage(p, &b), WEFT_EINVAL);
    /* ordered with parallel != 1, for each kind of stage. */
    weft_stage_t m = wt_pipe_map_stage(NULL, map_identity, NULL, 2);
    m.ordered = true;
    assert_int_equal(weft_pipeline_stage(p, &m), WEFT_EINVAL);
    m.parallel = WEFT_STAGE_PARALLEL;
    assert_int_equal(weft_pipeline_stage(p, &m), WEFT_EINVAL);
    weft_stage_t fl = WEFT_STAGE_INIT;
    fl.flat = flat_identity;
    fl.ordered = true;
    fl.parallel = 3;
    assert_int_equal(weft_pipeline_stage(p, &fl), WEFT_EINVAL);
    b.batch_max = 2;
    b.ordered = true;
    b.parallel = WEFT_STAGE_PARALLEL;
    assert_int_equal(weft_pipeline_stage(p, &b), WEFT_EINVAL);

    /* None of the rejected stages was appended: the valid ones below are
     * the only stages (nstages counts the source). */
    m.parallel = 1;
    wt_pipe_add(p, &m);
    b.parallel = 1;
    wt_pipe_add(p, &b);
    weft_pipeline_stats_t st;
    assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
    assert_int_equal(st.nstages, 3);
    assert_true(st.stage[1].ordered);
    assert_int_equal(st.stage[1].parallel, 1);
    weft_pipeline_stats_free(&st);
    weft_pipeline_destroy(p);
}

static void
test_start_errors(void **state)
{
    (void)state;
    weft_future_t *sentinel = (weft_future_t *)&sentinel_obj;
    weft_future_t *f = sentinel;
    src_t s;
    sink_t k;
    sink_init(&k, 10, true);
    weft_stage_t ks = sink_stage(&k);

    /* Neither source nor stage. */
    weft_pipeline_t *p = mk("start-errors", 0);
    assert_int_equal(weft_pipeline_start(p, &f), WEFT_EINVAL);
    assert_ptr_equal(f, sentinel);
    /* A stage, no source. */
    wt_pipe_add(p, &ks);
    assert_int_equal(weft_pipeline_start(p, &f), WEFT_EINVAL);
    assert_ptr_equal(f, sentinel);
    weft_pipeline_destroy(p);

    /* A source, no stage. */
    p = mk("start-errors", 0);
    set_source(p, &s, 10);
    assert_int_equal(weft_pipeline_start(p, &f), WEFT_EINVAL);
    assert_ptr_equal(f, sentinel);
    assert_int_equal(atomic_load(&s.calls), 0);
    /* Now complete: it starts once. */
    wt_pipe_add(p, &ks);
    f = NULL;
    assert_int_equal(weft_pipeline_start(p, &f), WEFT_OK);
    weft_future_t *g = sentinel;
    assert_int_equal(weft_pipeline_start(p, &g), WEFT_EINVAL);
    assert_ptr_equal(g, sentinel);
    assert_int_equal(weft_pipeline_start(p, NULL), WEFT_EINVAL);
    assert_int_equal(weft_pipeline_run(p), WEFT_EINVAL);
    /* No stage and no source after start. */
    assert_int_equal(weft_pipeline_stage(p, &ks), WEFT_EINVAL);
    assert_int_equal(weft_pipeline_source(p, src_fn, &s), WEFT_EINVAL);
    assert_int_equal(weft_future_wait_until(f, weft_deadline_in(FAR)), WEFT_OK);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    weft_future_release(f);
    /* Nor after the end. */
    assert_int_equal(weft_pipeline_stage(p, &ks), WEFT_EINVAL);
    assert_int_equal(weft_pipeline_start(p, NULL), WEFT_EINVAL);
    weft_pipeline_stats_t st;
    assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
    assert_int_equal(st.nstages, 2); /* the stage added after start is not */
    assert_true(st.finished);
    weft_pipeline_stats_free(&st);
    weft_pipeline_destroy(p);
    wt_pipe_check_no_report();
    /* The single start ran the stream once. */
    sink_check_all(&k, 10);
    sink_fini(&k);
}

static void
test_start_on_shut_down_pool(void **state)
{
    (void)state;
    weft_executor_t *ex = wt_pipe_pool(NULL, 1);
    weft_pipeline_t *p = wt_pipe_create(ex, NULL, 0);
    src_t s;
    set_source(p, &s, 10);
    sink_t k;
    sink_init(&k, 10, false);
    weft_stage_t ks = sink_stage(&k);
    wt_pipe_add(p, &ks);
    assert_int_equal(weft_executor_shutdown(ex, true, false), WEFT_OK);
    weft_future_t *f = NULL;
    assert_int_equal(weft_pipeline_start(p, &f), WEFT_ESHUTDOWN);
    assert_null(f);
    weft_pipeline_destroy(p);
    weft_executor_destroy(ex);
    assert_int_equal(atomic_load(&s.calls), 0);
    assert_int_equal(atomic_load(&k.count), 0);
    sink_fini(&k);
}

static void
test_stats_errors(void **state)
{
    (void)state;
    weft_pipeline_t *p = mk("stats-errors", 0);
    assert_int_equal(weft_pipeline_stats(p, NULL), WEFT_EINVAL);
    /* Before any stage: nothing running, no failure. */
    weft_pipeline_stats_t st;
    assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
    assert_string_equal(st.name, "stats-errors");
    assert_false(st.finished);
    assert_int_equal(st.in_flight, 0);
    weft_pipeline_stats_free(&st);
    assert_string_equal(weft_pipeline_error(p), "");
    weft_pipeline_destroy(p);
    weft_pipeline_destroy(NULL);
}

/* ------------------------------------------------------------------------ */
/* What stages deliver                                                       */

/* Live items: ++ in the source, -- at the end of the sink; the most seen
 * must stay within max_in_flight. */
typedef struct live {
    _Atomic int64_t now;
    _Atomic int64_t max;
} live_t;

static void
live_inc(live_t *l)
{
    int64_t n = atomic_fetch_add(&l->now, 1) + 1;
    int64_t m = atomic_load(&l->max);
    while (n > m && !atomic_compare_exchange_weak(&l->max, &m, n)) {
    }
}

typedef struct three {
    src_t src;
    live_t live;
    wt_conc_t c1, c2;
    sink_t sink;
} three_t;

static int
three_src(void *ctx, void **item)
{
    three_t *t = ctx;
    int rc = src_fn(&t->src, item);
    if (rc == WEFT_OK) {
        live_inc(&t->live);
    }
    return rc;
}

/* x -> 3x (parallel) */
static int
three_a(void *ctx, void *item, void **out)
{
    three_t *t = ctx;
    wt_conc_enter(&t->c1);
    *out = wt_pipe_tag(wt_pipe_untag(item) * 3);
    wt_conc_leave(&t->c1);
    return WEFT_OK;
}

/* 3x -> 3x + 7 (serial, unordered) */
static int
three_b(void *ctx, void *item, void **out)
{
    three_t *t = ctx;
    wt_conc_enter(&t->c2);
    uint64_t v = wt_pipe_untag(item);
    if (v % 3 != 0) {
        wt_pipe_report("stage b: input not from stage a", v, 0);
    }
    *out = wt_pipe_tag(v + 7);
    wt_conc_leave(&t->c2);
    return WEFT_OK;
}

/* 3x + 7 -> x, then the ordered sink. */
static int
three_sink(void *ctx, void *item, void **out)
{
    three_t *t = ctx;
    uint64_t v = wt_pipe_untag(item);
    if (v < 7 || (v - 7) % 3 != 0) {
        wt_pipe_report("sink: input not from stage b", v, 0);
        v = 7;
    }
    int rc = sink_fn(&t->sink, wt_pipe_tag((v - 7) / 3), out);
    atomic_fetch_sub(&t->live.now, 1);
    return rc;
}

static void
run_three(size_t max_in_flight, uint64_t n, bool use_run)
{
    three_t t;
    memset(&t, 0, sizeof(t));
    t.src.n = n;
    sink_init(&t.sink, n, true);
    weft_pipeline_t *p = mk("three", max_in_flight);
    assert_int_equal(weft_pipeline_source(p, three_src, &t), WEFT_OK);
    weft_stage_t a =
        wt_pipe_map_stage("times3", three_a, &t, WEFT_STAGE_PARALLEL);
    wt_pipe_add(p, &a);
    weft_stage_t b = wt_pipe_map_stage("plus7", three_b, &t, 1);
    wt_pipe_add(p, &b);
    weft_stage_t k = wt_pipe_map_stage("sink", three_sink, &t, 1);
    k.ordered = true;
    wt_pipe_add(p, &k);
    if (use_run) {
        assert_int_equal(weft_pipeline_run(p), WEFT_OK);
        assert_string_equal(weft_pipeline_error(p), "");
    } else {
        expect_done(p);
    }
    wt_pipe_check_no_report();
    sink_check_all(&t.sink, n);
    assert_int_equal(atomic_load(&t.live.now), 0);
    /* 0: the default, 4 x the pool's workers, at least 8. */
    size_t bound = max_in_flight > 0 ? max_in_flight : 4 * WORKERS;
    bound = max_in_flight == 0 && bound < 8 ? 8 : bound;
    if (atomic_load(&t.live.max) > (int64_t)bound) {
        fail_msg("%lld items in flight, max_in_flight %zu",
                 (long long)atomic_load(&t.live.max), bound);
    }
    /* Serial stages: one call at a time; the source too. */
    int one = n > 0 ? 1 : 0;
    assert_int_equal(atomic_load(&t.c2.max), one);
    assert_int_equal(atomic_load(&t.sink.conc.max), one);
    assert_int_equal(atomic_load(&t.src.conc.max), 1);
    /* The source was called once more than it made items (the end). */
    assert_int_equal(atomic_load(&t.src.calls), n + 1);
    weft_pipeline_destroy(p);
    sink_fini(&t.sink);
}

static void
test_three_stages(void **state)
{
    (void)state;
    run_three(4, 1000, false);
    run_three(1, 300, false);
    run_three(0, 5000, true);
    run_three(0, 0, false);
}

/* Filter: odd values are dropped by the stage. */
typedef struct filt {
    _Atomic uint64_t kept, dropped;
} filt_t;

static int
filter_odd(void *ctx, void *item, void **out)
{
    filt_t *f = ctx;
    if (wt_pipe_untag(item) % 2 == 1) {
        atomic_fetch_add(&f->dropped, 1);
        return WEFT_PIPELINE_DROP;
    }
    atomic_fetch_add(&f->kept, 1);
    *out = item;
    return WEFT_OK;
}

static int
sink_even(void *ctx, void *item, void **out)
{
    uint64_t v = wt_pipe_untag(item);
    if (v % 2 != 0) {
        wt_pipe_report("sink: an odd value passed the filter", v, 0);
    }
    return sink_fn(ctx, wt_pipe_tag(v / 2), out);
}

static void
test_filter(void **state)
{
    (void)state;
    const uint64_t n = 2001;
    weft_pipeline_t *p = mk("filter", 16);
    src_t s;
    set_source(p, &s, n);
    filt_t fc = {0, 0};
    weft_stage_t f = wt_pipe_map_stage("odd-out", filter_odd, &fc, 2);
    wt_pipe_add(p, &f);
    sink_t k;
    sink_init(&k, (n + 1) / 2, true);
    weft_stage_t ks = sink_stage(&k);
    ks.fn = sink_even;
    wt_pipe_add(p, &ks);
    expect_done(p);
    wt_pipe_check_no_report();
    sink_check_all(&k, (n + 1) / 2);
    assert_int_equal(atomic_load(&fc.dropped), n / 2);

    weft_pipeline_stats_t st;
    assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
    assert_int_equal(st.nstages, 3);
    assert_string_equal(st.stage[1].name, "odd-out");
    assert_int_equal(st.stage[1].items_in, n);
    assert_int_equal(st.stage[1].filtered, n / 2);
    assert_int_equal(st.stage[1].items_out, (n + 1) / 2);
    assert_int_equal(st.stage[1].dropped, 0);
    assert_int_equal(st.stage[2].items_in, (n + 1) / 2);
    assert_int_equal(st.stage[2].filtered, 0);
    weft_pipeline_stats_free(&st);
    weft_pipeline_destroy(p);
    sink_fini(&k);
}

/* Flat: each x becomes FAN values FAN x .. FAN x + FAN - 1, emitted in that
 * order by a parallel stage; after a parallel map, an ordered sink sees
 * 0, 1, 2, ... */
#define FAN 3u

static int
flat_fan(void *ctx, void *item, weft_emit_t *em)
{
    (void)ctx;
    uint64_t x = wt_pipe_untag(item);
    for (uint64_t k = 0; k < FAN; k++) {
        int rc = weft_emit(em, wt_pipe_tag(x * FAN + k));
        if (rc != WEFT_OK) {
            wt_pipe_report("flat: weft_emit failed", x, rc);
            return rc;
        }
        if (k == 0 && x % 7 == 0) {
            /* Let siblings of other items overtake this one. */
            (void)weft_sleep_for(20 * WEFT_USEC);
        }
    }
    return WEFT_OK;
}

/* between: a parallel map between the flat stage and the sink (the
 * siblings "travel together" through it). */
static void
run_flat(bool between)
{
    const uint64_t n = 3000;
    weft_pipeline_t *p = mk("flat", 8);
    src_t s;
    set_source(p, &s, n);
    weft_stage_t f = WEFT_STAGE_INIT;
    f.name = "fan";
    f.flat = flat_fan;
    f.parallel = WEFT_STAGE_PARALLEL;
    wt_pipe_add(p, &f);
    if (between) {
        weft_stage_t id = wt_pipe_map_stage("identity", map_identity, NULL, 3);
        wt_pipe_add(p, &id);
    }
    sink_t k;
    sink_init(&k, n * FAN, true);
    weft_stage_t ks = sink_stage(&k);
    wt_pipe_add(p, &ks);
    expect_done(p);
    wt_pipe_check_no_report();
    sink_check_all(&k, n * FAN);

    weft_pipeline_stats_t st;
    assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
    assert_int_equal(st.nstages, between ? 4 : 3);
    assert_int_equal(st.stage[1].items_in, n);
    assert_int_equal(st.stage[1].items_out, n * FAN);
    assert_int_equal(st.stage[2].items_in, n * FAN);
    if (between) {
        assert_int_equal(st.stage[2].items_out, n * FAN);
        assert_int_equal(st.stage[3].items_in, n * FAN);
    }
    weft_pipeline_stats_free(&st);
    weft_pipeline_destroy(p);
    sink_fini(&k);
}

static void
test_flat_ordered(void **state)
{
    (void)state;
    run_flat(false);
}

static void
test_flat_ordered_through_parallel(void **state)
{
    (void)state;
    run_flat(true);
}

/* Batch: sizes 1..BATCH; an ordered batch stage gets consecutive values in
 * source order; a parallel one gets every value once. */
#define BATCH 7u

typedef struct batcher {
    bool ordered;
    size_t max; /* batch_max (<= BATCH) */
    uint64_t expect_next;
    _Atomic uint64_t calls, items;
    _Atomic uint64_t sizes[BATCH + 1];
} batcher_t;

static int
batch_check(void *ctx, void **items, size_t n, weft_emit_t *em)
{
    batcher_t *b = ctx;
    atomic_fetch_add(&b->calls, 1);
    if (n < 1 || n > b->max) {
        wt_pipe_report("batch: size out of 1..batch_max (n, batch_max)", n,
                       (int64_t)b->max);
        /* Pass the items on all the same: only the size is wrong. */
        for (size_t i = 0; i < n; i++) {
            int rc = weft_emit(em, items[i]);
            if (rc != WEFT_OK) {
                return rc;
            }
        }
        return WEFT_OK;
    }
    atomic_fetch_add(&b->sizes[n], 1);
    atomic_fetch_add(&b->items, n);
    for (size_t i = 0; i < n; i++) {
        uint64_t v = wt_pipe_untag(items[i]);
        if (b->ordered) {
            if (v != b->expect_next) {
                wt_pipe_report("ordered batch: out of order (got, expected)", v,
                               (int64_t)b->expect_next);
            }
            b->expect_next = v + 1;
        }
        int rc = weft_emit(em, items[i]);
        if (rc != WEFT_OK) {
            wt_pipe_report("batch: weft_emit failed", v, rc);
            return rc;
        }
    }
    return WEFT_OK;
}

static void
run_batch(bool ordered, unsigned parallel, uint64_t n)
{
    weft_pipeline_t *p = mk("batch", 32);
    src_t s;
    set_source(p, &s, n);
    /* A parallel first stage so that items reach the batch stage out of
     * order and in bursts. */
    weft_stage_t id =
        wt_pipe_map_stage(NULL, map_identity, NULL, WEFT_STAGE_PARALLEL);
    wt_pipe_add(p, &id);
    batcher_t *b = calloc(1, sizeof(*b));
    assert_non_null(b);
    b->ordered = ordered;
    b->max = BATCH;
    weft_stage_t bs = WEFT_STAGE_INIT;
    bs.name = "batch";
    bs.batch_fn = batch_check;
    bs.batch_max = BATCH;
    bs.ctx = b;
    bs.ordered = ordered;
    bs.parallel = parallel;
    wt_pipe_add(p, &bs);
    sink_t k;
    sink_init(&k, n, ordered);
    weft_stage_t ks = sink_stage(&k);
    wt_pipe_add(p, &ks);
    expect_done(p);
    wt_pipe_check_no_report();
    sink_check_all(&k, n);
    assert_int_equal(atomic_load(&b->items), n);
    uint64_t calls = 0;
    for (size_t i = 1; i <= BATCH; i++) {
        calls += atomic_load(&b->sizes[i]);
    }
    assert_int_equal(calls, atomic_load(&b->calls));
    print_message("batch ordered=%d parallel=%u: %llu items in %llu calls\n",
                  ordered, parallel, (unsigned long long)n,
                  (unsigned long long)calls);
    weft_pipeline_stats_t st;
    assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
    assert_int_equal(st.stage[2].items_in, n);
    assert_int_equal(st.stage[2].items_out, n);
    weft_pipeline_stats_free(&st);
    weft_pipeline_destroy(p);
    sink_fini(&k);
    free(b);
}

/* A batch stage behind a stage that emits several items per input (a flat
 * stage, or another batch stage with a larger batch_max) still gets at
 * most batch_max items per call. */
static void
run_batch_behind(bool behind_batch, bool ordered)
{
    const uint64_t n = 300;
    weft_pipeline_t *p = mk("batch-behind", 16);
    src_t s;
    set_source(p, &s, n);
    batcher_t *first = calloc(1, sizeof(*first));
    batcher_t *b = calloc(1, sizeof(*b));
    assert_non_null(first);
    assert_non_null(b);
    first->max = BATCH;
    first->ordered = ordered;
    b->max = 2;
    b->ordered = ordered;
    weft_stage_t fs = WEFT_STAGE_INIT;
    fs.name = behind_batch ? "batch7" : "fan";
    if (behind_batch) {
        fs.batch_fn = batch_check;
        fs.batch_max = BATCH;
        fs.ctx = first;
    } else {
        fs.flat = flat_fan;
    }
    fs.ordered = ordered;
    wt_pipe_add(p, &fs);
    weft_stage_t bs = WEFT_STAGE_INIT;
    bs.name = "batch2";
    bs.batch_fn = batch_check;
    bs.batch_max = 2;
    bs.ctx = b;
    bs.ordered = ordered;
    wt_pipe_add(p, &bs);
    uint64_t total = behind_batch ? n : n * FAN;
    sink_t k;
    sink_init(&k, total, ordered);
    weft_stage_t ks = sink_stage(&k);
    wt_pipe_add(p, &ks);
    expect_done(p);
    /* Free everything before checking, so that a failure leaks nothing
     * (the sanitizer build then reports only the library's leaks). */
    const char *first_problem = NULL;
    int problems = wt_pipe_take_reports(&first_problem);
    uint64_t items = atomic_load(&b->items);
    uint64_t got = atomic_load(&k.count);
    uint64_t missing = sink_first_missing(&k, total);
    weft_pipeline_destroy(p);
    sink_fini(&k);
    free(first);
    free(b);
    if (problems != 0) {
        fail_msg("%d problem(s) seen inside the pipeline; first: %s", problems,
                 first_problem);
    }
    assert_int_equal(got, total);
    assert_int_equal(missing, UINT64_MAX);
    assert_int_equal(items, total);
}

static void
test_batch_behind_flat(void **state)
{
    (void)state;
    run_batch_behind(false, false);
    run_batch_behind(false, true);
}

static void
test_batch_behind_batch(void **state)
{
    (void)state;
    run_batch_behind(true, false);
    run_batch_behind(true, true);
}

static void
test_batch(void **state)
{
    (void)state;
    run_batch(true, 1, 5000);
    run_batch(false, 1, 5000);
    run_batch(false, 3, 5000);
    run_batch(true, 1, 1);
}

/* ------------------------------------------------------------------------ */
/* The emit bound                                                            */

typedef struct over {
    uint64_t fail_at; /* the item that emits one too many */
    size_t limit;
    _Atomic int last_rc;
    _Atomic uint64_t ok_emits_of_fail_at;
} over_t;

static int
flat_over(void *ctx, void *item, weft_emit_t *em)
{
    over_t *o = ctx;
    uint64_t x = wt_pipe_untag(item);
    size_t k = x == o->fail_at ? o->limit + 1 : o->limit;
    for (size_t i = 0; i < k; i++) {
        int rc = weft_emit(em, wt_pipe_tag(x));
        if (rc != WEFT_OK) {
            if (x != o->fail_at || i != o->limit) {
                wt_pipe_report("emit failed before the bound (item, index)", x,
                               (int64_t)i);
            }
            atomic_store(&o->last_rc, rc);
            return rc;
        }
        if (x == o->fail_at) {
            atomic_fetch_add(&o->ok_emits_of_fail_at, 1);
        }
    }
    if (x == o->fail_at) {
        wt_pipe_report("emit past the bound succeeded", x, (int64_t)k);
    }
    return WEFT_OK;
}

static void
run_overflow(size_t emit_max, size_t limit, uint64_t fail_at, uint64_t n)
{
    weft_pipeline_opts_t o = WEFT_PIPELINE_OPTS_INIT;
    o.name = "over";
    o.executor = pool;
    o.emit_max = emit_max;
    weft_pipeline_t *p = wt_pipe_create_opts(&o);
    src_t s;
    set_source(p, &s, n);
    over_t ov = {fail_at, limit, WEFT_OK, 0};
    weft_stage_t f = WEFT_STAGE_INIT;
    f.name = "fan";
    f.flat = flat_over;
    f.ctx = &ov;
    wt_pipe_add(p, &f);
    _Atomic uint64_t got = 0;
    add_counter(p, &got, false);
    weft_future_t *fu = start_wait(p);
    wt_pipe_check_no_report();
    assert_int_equal(atomic_load(&ov.last_rc), WEFT_EOVERFLOW);
    assert_int_equal(atomic_load(&ov.ok_emits_of_fail_at), limit);
    assert_int_equal(weft_future_state(fu), WEFT_FUTURE_FAILED);
    assert_int_equal(weft_future_code(fu), WEFT_EOVERFLOW);
    char want[64];
    snprintf(want, sizeof(want), "stage 'fan' item %llu",
             (unsigned long long)fail_at);
    if (strstr(weft_future_error(fu), want) == NULL) {
        fail_msg("message '%s' lacks \"%s\"", weft_future_error(fu), want);
    }
    weft_future_release(fu);
    weft_pipeline_destroy(p);
}

static void
test_emit_overflow(void **state)
{
    (void)state;
    /* emit_max 4: four emits per call pass, the fifth of item 5 fails. */
    run_overflow(4, 4, 5, 20);
    /* The default, 65536, for the only item. */
    run_overflow(0, 65536, 0, 1);
}

/* ------------------------------------------------------------------------ */
/* Sources: a queue, a file                                                  */

typedef struct producer {
    weft_queue_t *q;
    uint64_t n;
    int rc;
} producer_t;

static void *
produce(void *arg)
{
    producer_t *pr = arg;
    for (uint64_t i = 0; i < pr->n && pr->rc == WEFT_OK; i++) {
        void *v = wt_pipe_tag(i);
        pr->rc = weft_queue_put(pr->q, &v);
    }
    weft_queue_close(pr->q);
    return NULL;
}

static weft_queue_t *
ptr_queue(size_t cap)
{
    weft_queue_opts_t qo = WEFT_QUEUE_OPTS_INIT;
    qo.capacity = cap;
    qo.elem_size = sizeof(void *);
    weft_queue_t *q = NULL;
    assert_int_equal(weft_queue_create(&qo, &q), WEFT_OK);
    return q;
}

static void
test_source_queue(void **state)
{
    (void)state;
    const uint64_t n = 5000;
    weft_queue_t *q = ptr_queue(16);
    weft_pipeline_t *p = mk("from-queue", 8);
    assert_int_equal(weft_pipeline_source_queue(p, q), WEFT_OK);
    weft_stage_t id =
        wt_pipe_map_stage(NULL, map_identity, NULL, WEFT_STAGE_PARALLEL);
    wt_pipe_add(p, &id);
    sink_t k;
    sink_init(&k, n, true);
    weft_stage_t ks = sink_stage(&k);
    wt_pipe_add(p, &ks);
    producer_t pr = {q, n, WEFT_OK};
    weft_thread_t *t = NULL;
    weft_future_t *f = NULL;
    assert_int_equal(weft_pipeline_start(p, &f), WEFT_OK);
    assert_int_equal(weft_thread_create(NULL, produce, &pr, &t), WEFT_OK);
    assert_int_equal(weft_future_wait_until(f, weft_deadline_in(FAR)), WEFT_OK);
    assert_int_equal(weft_thread_join(t, NULL), WEFT_OK);
    assert_int_equal(pr.rc, WEFT_OK);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    weft_future_release(f);
    wt_pipe_check_no_report();
    sink_check_all(&k, n);
    assert_int_equal(weft_queue_size(q), 0);
    weft_pipeline_destroy(p);
    sink_fini(&k);

    /* A queue closed before start, empty: no item, DONE. */
    weft_queue_t *q2 = ptr_queue(4);
    weft_queue_close(q2);
    p = mk("from-queue", 0);
    assert_int_equal(weft_pipeline_source_queue(p, q2), WEFT_OK);
    sink_init(&k, 1, true);
    ks = sink_stage(&k);
    wt_pipe_add(p, &ks);
    expect_done(p);
    assert_int_equal(atomic_load(&k.count), 0);
    weft_pipeline_destroy(p);
    sink_fini(&k);
    weft_queue_destroy(q2);
    weft_queue_destroy(q);
}

/* Start a pipeline on a queue source of capacity 4 that holds one item,
 * the tagged 0, and stays open (*q: the queue, *v: the item, *f: the
 * future). Its sink and the sink's drop function count into one counter,
 * *got: the item must reach exactly one of them. */
static weft_pipeline_t *
start_queue_one_item(const char *name, weft_queue_t **q, void **v,
                     _Atomic uint64_t *got, weft_future_t **f)
{
    *q = ptr_queue(4);
    *v = wt_pipe_tag(0);
    assert_int_equal(weft_queue_put(*q, v), WEFT_OK);
    weft_pipeline_t *p = mk(name, 0);
    assert_int_equal(weft_pipeline_source_queue(p, *q), WEFT_OK);
    add_counter(p, got, true);
    assert_int_equal(weft_pipeline_start(p, f), WEFT_OK);
    return p;
}

/* A pipeline whose queue source waits on an open queue, after one item,
 * stops when cancelled and leaves the queue open; the one item reached
 * the sink or its drop function. */
static void
test_source_queue_cancel(void **state)
{
    (void)state;
    weft_queue_t *q = NULL;
    void *v = NULL;
    _Atomic uint64_t got = 0;
    weft_future_t *f = NULL;
    weft_pipeline_t *p = start_queue_one_item("queue-cancel", &q, &v, &got, &f);
    /* Until the source has taken the item and waits for the next. */
    weft_time_t until = weft_deadline_in(5 * WEFT_SEC);
    while (weft_queue_size(q) > 0 && weft_now() < until) {
        (void)weft_sleep_for(100 * WEFT_USEC);
    }
    (void)weft_sleep_for(20 * WEFT_MSEC);
    bool done_early = weft_future_done(f);
    weft_pipeline_cancel(p);
    weft_pipeline_cancel(p); /* idempotent */
    int wrc = weft_future_wait_until(f, weft_deadline_in(FAR));
    weft_future_state_t st = weft_future_state(f);
    int code = weft_future_code(f);
    bool closed = weft_queue_is_closed(q);
    weft_future_release(f);
    if (wrc == WEFT_OK) {
        weft_pipeline_destroy(p);
    }
    uint64_t total = atomic_load(&got);
    assert_int_equal(wrc, WEFT_OK);
    assert_false(done_early);
    assert_int_equal(st, WEFT_FUTURE_CANCELLED);
    assert_int_equal(code, WEFT_ECANCELED);
    assert_false(closed);
    assert_int_equal(total, 1);
    /* The queue still works after the pipeline is gone, and the pipeline
     * took nothing more from it. */
    assert_int_equal(weft_queue_size(q), 0);
    assert_int_equal(weft_queue_put(q, &v), WEFT_OK);
    void *w = NULL;
    assert_int_equal(weft_queue_try_get(q, &w), WEFT_OK);
    assert_ptr_equal(w, v);
    weft_queue_destroy(q);
}

/* An item taken from a queue that stays open reaches the sink while the
 * source waits for the next one: a source fed by other threads (the
 * queue, a socket) may get its next item only after the sink has handled
 * this one (a request and its reply). */
static void
test_source_queue_item_not_held(void **state)
{
    (void)state;
    weft_queue_t *q = NULL;
    void *v = NULL;
    _Atomic uint64_t got = 0;
    weft_future_t *f = NULL;
    weft_pipeline_t *p =
        start_queue_one_item("queue-latency", &q, &v, &got, &f);
    weft_time_t t0 = weft_now();
    weft_time_t until = weft_deadline_in(5 * WEFT_SEC);
    while (atomic_load(&got) < 1 && weft_now() < until) {
        (void)weft_sleep_for(100 * WEFT_USEC);
    }
    uint64_t in_time = atomic_load(&got);
    weft_time_t took = weft_now() - t0;
    /* Clean up first (the item is sunk or dropped either way). */
    weft_pipeline_cancel(p);
    assert_int_equal(weft_future_wait_until(f, weft_deadline_in(FAR)), WEFT_OK);
    weft_future_release(f);
    weft_pipeline_destroy(p);
    weft_queue_destroy(q);
    assert_int_equal(atomic_load(&got), 1);
    if (in_time != 1) {
        fail_msg("the item taken from the open queue did not reach the sink "
                 "in %.1f s (the source holds it while it waits for more)",
                 (double)took / (double)WEFT_SEC);
    }
}

/* Lines: the sink (ordered) compares each line with the expected ones. */
typedef struct lines {
    const char **want;
    size_t nwant;
    _Atomic uint64_t got;
} lines_t;

static int
line_sink(void *ctx, void *item, void **out)
{
    (void)out;
    lines_t *l = ctx;
    weft_line_t *line = item;
    uint64_t i = atomic_load(&l->got);
    if (line->index != i) {
        wt_pipe_report("line: index (got, expected)", line->index, (int64_t)i);
    } else if (i >= l->nwant) {
        wt_pipe_report("line: more lines than written", i, 0);
    } else {
        size_t wl = strlen(l->want[i]);
        if (line->len != wl) {
            wt_pipe_report("line: length (line, len)", i, (int64_t)line->len);
        } else if (memcmp(line->text, l->want[i], wl) != 0) {
            wt_pipe_report("line: text differs", i, 0);
        } else if (line->text[wl] != '\0') {
            wt_pipe_report("line: text not NUL-terminated", i, 0);
        }
    }
    atomic_fetch_add(&l->got, 1);
    weft_line_free(line);
    return WEFT_OK;
}

static void
line_drop(void *ctx, void *item)
{
    (void)ctx;
    weft_line_free(item);
}

static void
write_file(char *path, const char *data, size_t len)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, 256, "%s/weft_pipeline_XXXXXX",
             dir != NULL && dir[0] != '\0' ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        assert_true(w > 0);
        off += (size_t)w;
    }
    assert_int_equal(close(fd), 0);
}

static void
run_lines(const char *data, size_t len, const char **want, size_t nwant)
{
    char path[256];
    write_file(path, data, len);
    weft_pipeline_t *p = mk("lines", 4);
    assert_int_equal(weft_pipeline_source_lines(p, path), WEFT_OK);
    weft_stage_t id =
        wt_pipe_map_stage(NULL, map_identity, NULL, WEFT_STAGE_PARALLEL);
    id.drop = line_drop;
    wt_pipe_add(p, &id);
    lines_t l = {want, nwant, 0};
    weft_stage_t k = wt_pipe_map_stage(NULL, line_sink, &l, 1);
    k.ordered = true;
    k.drop = line_drop;
    wt_pipe_add(p, &k);
    expect_done(p);
    wt_pipe_check_no_report();
    assert_int_equal(atomic_load(&l.got), nwant);
    weft_pipeline_destroy(p);
    assert_int_equal(unlink(path), 0);
}

static void
test_source_lines(void **state)
{
    (void)state;
    /* A long line (1 MiB), an empty line, no newline at the end. */
    const size_t big = 1u << 20;
    char *longline = malloc(big + 1);
    assert_non_null(longline);
    for (size_t i = 0; i < big; i++) {
        longline[i] = (char)('a' + (char)(i % 26));
    }
    longline[big] = '\0';
    size_t cap = big + 64;
    char *data = malloc(cap);
    assert_non_null(data);
    int len = snprintf(data, cap, "alpha\n\nbeta gamma\n%s\n\nlast", longline);
    assert_true(len > 0);
    const char *want1[] = {"alpha", "", "beta gamma", longline, "", "last"};
    run_lines(data, (size_t)len, want1, 6);

    /* A newline at the end: no extra empty line. */
    const char *want2[] = {"one", "two"};
    run_lines("one\ntwo\n", 8, want2, 2);
    /* Only a newline: one empty line. */
    const char *want3[] = {""};
    run_lines("\n", 1, want3, 1);
    /* An empty file: no item. */
    run_lines("", 0, NULL, 0);
    /* The long line last, without newline. */
    const char *want4[] = {"x", longline};
    len = snprintf(data, cap, "x\n%s", longline);
    run_lines(data, (size_t)len, want4, 2);
    free(data);
    free(longline);
}

/* Cancelling a file source mid-file: every line made reaches the sink or
 * a drop function, once (the sanitizer build checks that each is freed
 * exactly once). */
typedef struct lcount {
    _Atomic uint64_t sunk, dropped;
} lcount_t;

static int
lc_sink(void *ctx, void *item, void **out)
{
    (void)out;
    lcount_t *c = ctx;
    weft_line_t *line = item;
    if (line->len != 7 || memcmp(line->text, "line-", 5) != 0) {
        wt_pipe_report("cancelled file: bad line", line->index,
                       (int64_t)line->len);
    }
    (void)weft_sleep_for(20 * WEFT_USEC);
    atomic_fetch_add(&c->sunk, 1);
    weft_line_free(line);
    return WEFT_OK;
}

static void
lc_drop(void *ctx, void *item)
{
    atomic_fetch_add(&((lcount_t *)ctx)->dropped, 1);
    weft_line_free(item);
}

static void
test_source_lines_cancel(void **state)
{
    (void)state;
    const size_t nlines = 100000;
    char *data = malloc(nlines * 8 + 1); /* snprintf adds a NUL */
    assert_non_null(data);
    for (size_t i = 0; i < nlines; i++) {
        snprintf(data + 8 * i, 9, "line-%02zu\n", i % 100);
    }
    char path[256];
    write_file(path, data, nlines * 8);
    free(data);
    for (int round = 0; round < 3; round++) {
        weft_pipeline_t *p = mk("lines-cancel", 16);
        assert_int_equal(weft_pipeline_source_lines(p, path), WEFT_OK);
        lcount_t c = {0, 0};
        weft_stage_t a =
            wt_pipe_map_stage(NULL, map_identity, &c, WEFT_STAGE_PARALLEL);
        a.drop = lc_drop;
        wt_pipe_add(p, &a);
        weft_stage_t k = wt_pipe_map_stage(NULL, lc_sink, &c, 1);
        k.drop = lc_drop;
        k.ordered = true;
        wt_pipe_add(p, &k);
        weft_future_t *f = NULL;
        assert_int_equal(weft_pipeline_start(p, &f), WEFT_OK);
        (void)weft_sleep_for(round * 3 * WEFT_MSEC);
        weft_pipeline_cancel(p);
        assert_int_equal(weft_future_wait_until(f, weft_deadline_in(FAR)),
                         WEFT_OK);
        assert_int_equal(weft_future_state(f), WEFT_FUTURE_CANCELLED);
        weft_future_release(f);
        weft_pipeline_stats_t st;
        assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
        uint64_t made = st.stage[0].items_in;
        weft_pipeline_stats_free(&st);
        weft_pipeline_destroy(p);
        wt_pipe_check_no_report();
        print_message("lines cancelled after %d ms: made %llu, sunk %llu, "
                      "dropped %llu\n",
                      round * 3, (unsigned long long)made,
                      (unsigned long long)c.sunk,
                      (unsigned long long)c.dropped);
        assert_true(made < nlines);
        assert_int_equal(atomic_load(&c.sunk) + atomic_load(&c.dropped), made);
    }
    assert_int_equal(unlink(path), 0);
}

/* A blocking source (it sleeps) on a pool of one worker: the stages keep
 * running while it waits. */
typedef struct slowsrc {
    uint64_t next, n;
    _Atomic uint64_t sunk_while_waiting;
    _Atomic uint64_t sunk;
} slowsrc_t;

static int
slow_source(void *ctx, void **item)
{
    slowsrc_t *s = ctx;
    if (s->next == s->n) {
        return WEFT_ECLOSED;
    }
    uint64_t before = atomic_load(&s->sunk);
    (void)weft_sleep_for(2 * WEFT_MSEC);
    if (atomic_load(&s->sunk) != before) {
        atomic_fetch_add(&s->sunk_while_waiting, 1);
    }
    *item = wt_pipe_tag(s->next++);
    return WEFT_OK;
}

static void
test_blocking_source(void **state)
{
    (void)state;
    weft_executor_t *ex = wt_pipe_pool(NULL, 1);
    weft_pipeline_t *p = mk_source_blocking(ex, "blocking", true);
    slowsrc_t s;
    memset(&s, 0, sizeof(s));
    s.n = 50;
    assert_int_equal(weft_pipeline_source(p, slow_source, &s), WEFT_OK);
    weft_stage_t k = wt_pipe_map_stage(NULL, wt_pipe_sink_count, &s.sunk, 1);
    wt_pipe_add(p, &k);
    expect_done(p);
    weft_pipeline_destroy(p);
    weft_executor_destroy(ex);
    assert_int_equal(atomic_load(&s.sunk), 50);
    /* The sink ran while the source slept (on another thread than the
     * only worker's), for most items. */
    print_message("items sunk while the source slept: %llu of 49\n",
                  (unsigned long long)atomic_load(&s.sunk_while_waiting));
    /* On the only worker the source would keep the sink from running
     * until it returned: 0. (The source may hand its items on in groups,
     * so not every sleep sees the sink run.) */
    assert_true(atomic_load(&s.sunk_while_waiting) >= 2);
}

static void
test_source_lines_missing(void **state)
{
    (void)state;
    char path[256];
    write_file(path, "", 0);
    assert_int_equal(unlink(path), 0); /* a name that surely is missing */
    weft_pipeline_t *p = mk("lines", 0);
    assert_int_equal(weft_pipeline_source_lines(p, path), WEFT_OK);
    lines_t l = {NULL, 0, 0};
    weft_stage_t k = wt_pipe_map_stage(NULL, line_sink, &l, 1);
    k.drop = line_drop;
    wt_pipe_add(p, &k);
    assert_int_equal(weft_pipeline_run(p), WEFT_ESYS);
    const char *msg = weft_pipeline_error(p);
    if (strstr(msg, path) == NULL) {
        fail_msg("message '%s' does not name %s", msg, path);
    }
    assert_int_equal(atomic_load(&l.got), 0);
    weft_pipeline_destroy(p);
}

/* ------------------------------------------------------------------------ */
/* Failures                                                                  */

typedef struct failer {
    uint64_t fail_at;
    int code;
    src_t *src;
    _Atomic uint64_t calls_with_fail_at;
} failer_t;

static int
fail_middle(void *ctx, void *item, void **out)
{
    failer_t *fl = ctx;
    uint64_t x = wt_pipe_untag(item);
    if (x == fl->fail_at) {
        atomic_fetch_add(&fl->calls_with_fail_at, 1);
        atomic_store(&fl->src->stop_seen, 1);
        return weft_stage_fail(fl->code, "bad record %llu (%s)",
                               (unsigned long long)x, "checksum");
    }
    *out = item;
    return WEFT_OK;
}

/* Stage calls that start after the future completed: counted. The flag
 * is set by the test thread once its wait returned (a done callback could
 * run later than that: waiters may wake before the callbacks have run). */
static _Atomic int finished_flag;
static _Atomic int calls_after_finish;

/* Before a run: nothing finished, no call counted. */
static void
watch_reset(void)
{
    atomic_store(&finished_flag, 0);
    atomic_store(&calls_after_finish, 0);
}

/* At the start of each such call. */
static void
watch_finish(void)
{
    if (atomic_load(&finished_flag)) {
        atomic_fetch_add(&calls_after_finish, 1);
    }
}

static int
watch_identity(void *ctx, void *item, void **out)
{
    (void)ctx;
    watch_finish();
    *out = item;
    return WEFT_OK;
}

static int
watch_sink(void *ctx, void *item, void **out)
{
    watch_finish();
    return wt_pipe_sink_count(ctx, item, out);
}

static weft_pipeline_t *
mk_failing(src_t *s, failer_t *fl, _Atomic uint64_t *got, bool ordered)
{
    weft_pipeline_t *p = mk("orders", 8);
    set_source(p, s, UINT64_MAX); /* endless: only the failure stops it */
    weft_stage_t a =
        wt_pipe_map_stage("parse", watch_identity, NULL, WEFT_STAGE_PARALLEL);
    wt_pipe_add(p, &a);
    weft_stage_t m = wt_pipe_map_stage("validate", fail_middle, fl, 1);
    m.ordered = ordered;
    wt_pipe_add(p, &m);
    weft_stage_t k = wt_pipe_map_stage("store", watch_sink, got, 1);
    wt_pipe_add(p, &k);
    return p;
}

static void
check_failure_message(const char *msg, uint64_t at)
{
    char want[160];
    snprintf(want, sizeof(want),
             "orders: stage 'validate' item %llu: bad record %llu (checksum)",
             (unsigned long long)at, (unsigned long long)at);
    assert_string_equal(msg, want);
}

static void
test_stage_failure(void **state)
{
    (void)state;
    for (int ordered = 0; ordered <= 1; ordered++) {
        src_t s;
        failer_t fl = {137, WEFT_EIO, &s, 0};
        _Atomic uint64_t got = 0;
        weft_pipeline_t *p = mk_failing(&s, &fl, &got, ordered);
        assert_string_equal(weft_pipeline_error(p), "");
        watch_reset();
        weft_future_t *f = NULL;
        assert_int_equal(weft_pipeline_start(p, &f), WEFT_OK);
        assert_int_equal(weft_future_wait_until(f, weft_deadline_in(FAR)),
                         WEFT_OK);
        atomic_store(&finished_flag, 1);
        assert_int_equal(weft_future_state(f), WEFT_FUTURE_FAILED);
        assert_int_equal(weft_future_code(f), WEFT_EIO);
        check_failure_message(weft_future_error(f), 137);
        check_failure_message(weft_pipeline_error(p), 137);
        assert_int_equal(atomic_load(&fl.calls_with_fail_at), 1);
        /* Nothing runs once the future completed, the source included. */
        uint64_t calls = atomic_load(&s.calls);
        (void)weft_sleep_for(20 * WEFT_MSEC);
        assert_int_equal(atomic_load(&s.calls), calls);
        assert_int_equal(atomic_load(&calls_after_finish), 0);
        print_message("ordered=%d: source calls %llu, after the failing "
                      "call %llu; sink got %llu\n",
                      ordered, (unsigned long long)calls,
                      (unsigned long long)atomic_load(&s.calls_after_stop),
                      (unsigned long long)atomic_load(&got));
        if (ordered) {
            /* Items enter the ordered stage in source order and, once the
             * failure is kept, the ones waiting in its buffer go to drop:
             * only items 0..136 can have passed it. */
            assert_true(atomic_load(&got) <= 137);
        }
        weft_pipeline_stats_t st;
        assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
        assert_true(st.finished);
        assert_int_equal(st.in_flight, 0);
        weft_pipeline_stats_free(&st);
        weft_future_release(f);
        weft_pipeline_destroy(p);
    }

    /* The same through weft_pipeline_run. */
    src_t s;
    failer_t fl = {3, WEFT_ERANGE, &s, 0};
    _Atomic uint64_t got = 0;
    weft_pipeline_t *p = mk_failing(&s, &fl, &got, true);
    assert_int_equal(weft_pipeline_run(p), WEFT_ERANGE);
    check_failure_message(weft_pipeline_error(p), 3);
    weft_pipeline_destroy(p);
}

/* The source fails: its code and message, and it is not called again. */
typedef struct failsrc {
    uint64_t next, fail_at;
    _Atomic uint64_t calls_after;
} failsrc_t;

static int
failing_source(void *ctx, void **item)
{
    failsrc_t *s = ctx;
    if (s->next > s->fail_at) {
        atomic_fetch_add(&s->calls_after, 1);
        return WEFT_ECLOSED;
    }
    if (s->next == s->fail_at) {
        s->next++;
        return weft_stage_fail(WEFT_ENOENT, "no record after %llu",
                               (unsigned long long)s->fail_at - 1);
    }
    *item = wt_pipe_tag(s->next++);
    return WEFT_OK;
}

static void
test_source_failure(void **state)
{
    (void)state;
    failsrc_t s = {0, 50, 0};
    weft_pipeline_t *p = mk("feed", 4);
    assert_int_equal(weft_pipeline_source(p, failing_source, &s), WEFT_OK);
    _Atomic uint64_t got = 0;
    add_counter(p, &got, false);
    weft_future_t *f = start_wait(p);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_FAILED);
    assert_int_equal(weft_future_code(f), WEFT_ENOENT);
    const char *msg = weft_future_error(f);
    const char *suffix = ": no record after 49";
    size_t ml = strlen(msg);
    size_t sl = strlen(suffix);
    if (strncmp(msg, "feed: stage '", 13) != 0 || ml < sl ||
        strcmp(msg + ml - sl, suffix) != 0) {
        fail_msg("source failure message: '%s'", msg);
    }
    assert_string_equal(weft_pipeline_error(p), msg);
    assert_int_equal(atomic_load(&s.calls_after), 0);
    weft_future_release(f);
    weft_pipeline_destroy(p);
}

/* A stage function running when another fails sees the cancellation: its
 * weft_sleep_for returns WEFT_ECANCELED early and weft_cancelled() is
 * true. Item 0 sleeps; item 1 waits until item 0 sleeps, then fails. */
typedef struct sleeper {
    _Atomic int sleeping;
    _Atomic int sleep_rc;
    _Atomic int cancelled_seen;
    _Atomic int64_t slept_ns;
    _Atomic uint64_t got;
    _Atomic int drops;
} sleeper_t;

static int
sleep_or_fail(void *ctx, void *item, void **out)
{
    sleeper_t *sl = ctx;
    uint64_t x = wt_pipe_untag(item);
    if (x == 0) {
        weft_time_t t0 = weft_now();
        atomic_store(&sl->sleeping, 1);
        atomic_store(&sl->sleep_rc, weft_sleep_for(20 * WEFT_SEC));
        atomic_store(&sl->slept_ns, weft_now() - t0);
        atomic_store(&sl->cancelled_seen, weft_cancelled());
        *out = item;
        return WEFT_OK;
    }
    if (x == 1) {
        weft_time_t until = weft_deadline_in(10 * WEFT_SEC);
        while (!atomic_load(&sl->sleeping) && weft_now() < until) {
            (void)weft_sleep_for(50 * WEFT_USEC);
        }
        (void)weft_sleep_for(2 * WEFT_MSEC);
        return weft_stage_fail(WEFT_EIO, "item one");
    }
    *out = item;
    return WEFT_OK;
}

/* The sink of that test: counts what it gets and what it is given to
 * drop. */
static int
sleepy_sink(void *ctx, void *item, void **out)
{
    return wt_pipe_sink_count(&((sleeper_t *)ctx)->got, item, out);
}

static void
sleepy_drop(void *ctx, void *item)
{
    if (wt_pipe_untag(item) != 0) {
        wt_pipe_report("dropped an item other than 0", wt_pipe_untag(item), 0);
    }
    atomic_fetch_add(&((sleeper_t *)ctx)->drops, 1);
}

static void
test_running_stage_sees_cancel(void **state)
{
    (void)state;
    weft_pipeline_t *p = mk("sleepy", 2);
    src_t s;
    set_source(p, &s, 2);
    sleeper_t sl;
    memset(&sl, 0, sizeof(sl));
    weft_stage_t a = wt_pipe_map_stage("work", sleep_or_fail, &sl, 2);
    wt_pipe_add(p, &a);
    weft_stage_t k = wt_pipe_map_stage(NULL, sleepy_sink, &sl, 1);
    k.drop = sleepy_drop;
    wt_pipe_add(p, &k);
    weft_time_t t0 = weft_now();
    weft_future_t *f = start_wait(p);
    weft_time_t took = weft_now() - t0;
    wt_pipe_check_no_report();
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_FAILED);
    assert_int_equal(weft_future_code(f), WEFT_EIO);
    assert_int_equal(atomic_load(&sl.sleep_rc), WEFT_ECANCELED);
    assert_true(atomic_load(&sl.cancelled_seen));
    assert_true(atomic_load(&sl.slept_ns) < 10 * WEFT_SEC);
    assert_true(took < 10 * WEFT_SEC);
    /* What item 0's call returned was not passed on: the sink was to
     * receive it and never will, so its drop function got it. Item 1
     * failed: it was the failing stage's to dispose of. */
    assert_int_equal(atomic_load(&sl.got), 0);
    assert_int_equal(atomic_load(&sl.drops), 1);
    weft_future_release(f);
    weft_pipeline_destroy(p);
}

/* ------------------------------------------------------------------------ */
/* Cancel from outside: every item the source made reaches the sink or a   */
/* drop function exactly once.                                               */

#define CAP_ITEMS (1u << 20)

typedef struct citem {
    uint64_t idx;
    uint64_t magic;
} citem_t;

#define MAGIC 0x5eed5eed5eed5eedull

typedef struct ctrack {
    uint64_t next;
    _Atomic int64_t live;
    _Atomic uint8_t *freed; /* per index */
    _Atomic uint64_t sink_seen, drops, made;
    weft_time_t sink_sleep;
} ctrack_t;

static int
c_source(void *ctx, void **item)
{
    ctrack_t *t = ctx;
    if (t->next >= CAP_ITEMS) {
        return WEFT_ECLOSED;
    }
    citem_t *it = malloc(sizeof(*it));
    if (it == NULL) {
        return WEFT_ENOMEM;
    }
    it->idx = t->next++;
    it->magic = MAGIC;
    atomic_fetch_add(&t->live, 1);
    atomic_fetch_add(&t->made, 1);
    *item = it;
    return WEFT_OK;
}

static void
c_free(ctrack_t *t, citem_t *it)
{
    if (it->magic != MAGIC || it->idx >= CAP_ITEMS) {
        wt_pipe_report("free: not an item", 0, 0);
        return;
    }
    if (atomic_fetch_add(&t->freed[it->idx], 1) != 0) {
        wt_pipe_report("item freed twice", it->idx, 0);
        return;
    }
    it->magic = 0;
    free(it);
    atomic_fetch_sub(&t->live, 1);
}

static void
c_drop(void *ctx, void *item)
{
    ctrack_t *t = ctx;
    watch_finish();
    atomic_fetch_add(&t->drops, 1);
    c_free(t, item);
}

static int
c_sink(void *ctx, void *item, void **out)
{
    (void)out;
    ctrack_t *t = ctx;
    watch_finish();
    if (t->sink_sleep > 0) {
        (void)weft_sleep_for(t->sink_sleep);
    }
    atomic_fetch_add(&t->sink_seen, 1);
    c_free(t, item);
    return WEFT_OK;
}

static ctrack_t *
ctrack_new(void)
{
    ctrack_t *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    t->freed = calloc(CAP_ITEMS, sizeof(*t->freed));
    assert_non_null(t->freed);
    return t;
}

static void
ctrack_free(ctrack_t *t)
{
    free((void *)t->freed);
    free(t);
}

/* After the source: a parallel watched identity stage, then a serial sink,
 * ordered or not; both free what they are given to drop. */
static void
add_tracked_stages(weft_pipeline_t *p, ctrack_t *t, bool ordered)
{
    weft_stage_t a =
        wt_pipe_map_stage(NULL, watch_identity, t, WEFT_STAGE_PARALLEL);
    a.drop = c_drop;
    wt_pipe_add(p, &a);
    weft_stage_t k = wt_pipe_map_stage(NULL, c_sink, t, 1);
    k.drop = c_drop;
    k.ordered = ordered;
    wt_pipe_add(p, &k);
}

static void
cancel_round(weft_time_t after)
{
    ctrack_t *t = ctrack_new();
    t->sink_sleep = 50 * WEFT_USEC;
    weft_pipeline_t *p = mk("cancelme", 16);
    assert_int_equal(weft_pipeline_source(p, c_source, t), WEFT_OK);
    weft_stage_t a =
        wt_pipe_map_stage("a", watch_identity, t, WEFT_STAGE_PARALLEL);
    a.drop = c_drop;
    wt_pipe_add(p, &a);
    weft_stage_t b = wt_pipe_map_stage("b", watch_identity, t, 1);
    b.drop = c_drop;
    b.ordered = true;
    wt_pipe_add(p, &b);
    weft_stage_t k = wt_pipe_map_stage("k", c_sink, t, 2);
    k.drop = c_drop;
    wt_pipe_add(p, &k);
    watch_reset();
    weft_future_t *f = NULL;
    assert_int_equal(weft_pipeline_start(p, &f), WEFT_OK);
    (void)weft_sleep_for(after);
    weft_pipeline_cancel(p);
    assert_int_equal(weft_future_wait_until(f, weft_deadline_in(FAR)), WEFT_OK);
    atomic_store(&finished_flag, 1);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_CANCELLED);
    /* Right when the future completed: every item gone, exactly once. */
    assert_int_equal(atomic_load(&t->live), 0);
    wt_pipe_check_no_report();
    uint64_t made = atomic_load(&t->made);
    assert_int_equal(made, t->next);
    for (uint64_t i = 0; i < made; i++) {
        assert_int_equal(atomic_load(&t->freed[i]), 1);
    }
    assert_int_equal(atomic_load(&t->sink_seen) + atomic_load(&t->drops), made);
    weft_pipeline_cancel(p); /* after the end: nothing */
    weft_pipeline_stats_t st;
    assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
    assert_true(st.finished);
    assert_int_equal(st.stage[0].items_in, made);
    uint64_t dropped = 0;
    for (size_t i = 0; i < st.nstages; i++) {
        dropped += st.stage[i].dropped;
    }
    assert_int_equal(dropped, atomic_load(&t->drops));
    assert_int_equal(st.stage[3].items_in, atomic_load(&t->sink_seen));
    weft_pipeline_stats_free(&st);
    (void)weft_sleep_for(5 * WEFT_MSEC);
    assert_int_equal(atomic_load(&calls_after_finish), 0);
    weft_future_release(f);
    weft_pipeline_destroy(p);
    print_message("cancel after %lld us: made %llu, sink %llu, dropped "
                  "%llu\n",
                  (long long)(after / WEFT_USEC), (unsigned long long)made,
                  (unsigned long long)atomic_load(&t->sink_seen),
                  (unsigned long long)atomic_load(&t->drops));
    ctrack_free(t);
}

static void
test_cancel_outside(void **state)
{
    (void)state;
    cancel_round(0);
    cancel_round(200 * WEFT_USEC);
    cancel_round(5 * WEFT_MSEC);
    cancel_round(30 * WEFT_MSEC);
}

/* Start without a future, cancel, destroy at once: destroy waits for the
 * end, and by then every item is freed exactly once. */
static void
test_cancel_then_destroy(void **state)
{
    (void)state;
    ctrack_t *t = ctrack_new();
    for (int round = 0; round < 40; round++) {
        memset((void *)t->freed, 0, CAP_ITEMS * sizeof(*t->freed));
        t->next = 0;
        atomic_store(&t->made, 0);
        atomic_store(&t->sink_seen, 0);
        atomic_store(&t->drops, 0);
        t->sink_sleep = (round % 4) * 20 * WEFT_USEC;
        weft_pipeline_t *p = mk("cancel-destroy", 1 + (size_t)round % 16);
        assert_int_equal(weft_pipeline_source(p, c_source, t), WEFT_OK);
        add_tracked_stages(p, t, round % 2 == 0);
        watch_reset();
        assert_int_equal(weft_pipeline_start(p, NULL), WEFT_OK);
        (void)weft_sleep_for((round % 5) * 100 * WEFT_USEC);
        weft_pipeline_cancel(p);
        weft_pipeline_destroy(p);
        atomic_store(&finished_flag, 1);
        assert_int_equal(atomic_load(&t->live), 0);
        wt_pipe_check_no_report();
        uint64_t made = atomic_load(&t->made);
        for (uint64_t i = 0; i < made; i++) {
            assert_int_equal(atomic_load(&t->freed[i]), 1);
        }
        assert_int_equal(atomic_load(&t->sink_seen) + atomic_load(&t->drops),
                         made);
        (void)weft_sleep_for(200 * WEFT_USEC);
        assert_int_equal(atomic_load(&calls_after_finish), 0);
    }
    ctrack_free(t);
}

/* A source blocked in a weft wait when the pipeline is cancelled: the wait
 * returns WEFT_ECANCELED, the source returns that, and the outcome is the
 * cancellation (not a failure of the source). */
typedef struct blocksrc {
    uint64_t next;
    _Atomic int blocked;
    _Atomic int wait_rc;
} blocksrc_t;

static int
blocking_source(void *ctx, void **item)
{
    blocksrc_t *s = ctx;
    if (s->next == 5) {
        atomic_store(&s->blocked, 1);
        int rc = weft_sleep_for(20 * WEFT_SEC);
        atomic_store(&s->wait_rc, rc);
        if (rc != WEFT_OK) {
            return rc;
        }
    }
    *item = wt_pipe_tag(s->next++);
    return WEFT_OK;
}

static void
test_cancel_blocked_source(void **state)
{
    (void)state;
    for (int blocking = 0; blocking <= 1; blocking++) {
        weft_pipeline_t *p = mk_source_blocking(pool, "blocked", blocking);
        blocksrc_t s;
        memset(&s, 0, sizeof(s));
        atomic_store(&s.wait_rc, 99);
        assert_int_equal(weft_pipeline_source(p, blocking_source, &s), WEFT_OK);
        /* Sunk and dropped items count into one counter. */
        _Atomic uint64_t got = 0;
        add_counter(p, &got, true);
        weft_future_t *f = NULL;
        assert_int_equal(weft_pipeline_start(p, &f), WEFT_OK);
        weft_time_t until = weft_deadline_in(FAR);
        while (!atomic_load(&s.blocked) && weft_now() < until) {
            (void)weft_sleep_for(100 * WEFT_USEC);
        }
        (void)weft_sleep_for(2 * WEFT_MSEC);
        weft_time_t t0 = weft_now();
        weft_pipeline_cancel(p);
        assert_int_equal(weft_future_wait_until(f, weft_deadline_in(FAR)),
                         WEFT_OK);
        weft_time_t took = weft_now() - t0;
        weft_future_state_t st = weft_future_state(f);
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", weft_future_error(f));
        weft_future_release(f);
        weft_pipeline_destroy(p);
        assert_int_equal(atomic_load(&s.wait_rc), WEFT_ECANCELED);
        assert_true(took < 10 * WEFT_SEC);
        if (st != WEFT_FUTURE_CANCELLED) {
            fail_msg("blocking=%d: ended %d (%s)", blocking, (int)st, msg);
        }
        /* The 5 items made before the source blocked: sunk or dropped,
         * each once. */
        assert_int_equal(atomic_load(&got), 5);
    }
}

/* weft_pipeline_run from a task of the same pool (not of the pipeline). */
static void *
run_in_task(void *arg)
{
    (void)arg;
    weft_pipeline_t *p = mk("in-task", 8);
    src_t s;
    set_source(p, &s, 2000);
    sink_t k;
    sink_init(&k, 2000, true);
    weft_stage_t a =
        wt_pipe_map_stage(NULL, map_identity, NULL, WEFT_STAGE_PARALLEL);
    wt_pipe_add(p, &a);
    weft_stage_t ks = sink_stage(&k);
    wt_pipe_add(p, &ks);
    int rc = weft_pipeline_run(p);
    weft_pipeline_destroy(p);
    uint64_t count = atomic_load(&k.count);
    uint64_t missing = sink_first_missing(&k, 2000);
    sink_fini(&k);
    if (rc != WEFT_OK) {
        return weft_task_fail(rc, "run: %s", weft_errname(rc));
    }
    if (count != 2000 || missing != UINT64_MAX) {
        return weft_task_fail(WEFT_EIO, "sink got %llu, first missing %llu",
                              (unsigned long long)count,
                              (unsigned long long)missing);
    }
    return wt_pipe_tag(7);
}

static void
test_run_from_pool_task(void **state)
{
    (void)state;
    weft_future_t *f = NULL;
    assert_int_equal(weft_executor_submit(pool, run_in_task, NULL, NULL, &f),
                     WEFT_OK);
    void *v = NULL;
    int rc = weft_future_result_until(f, &v, weft_deadline_in(FAR));
    if (rc != WEFT_OK) {
        fail_msg("task ended %s: %s", weft_errname(rc), weft_future_error(f));
    }
    assert_ptr_equal(v, wt_pipe_tag(7));
    weft_future_release(f);
    wt_pipe_check_no_report();
}

/* weft_future_cancel on the pipeline's future cancels the pipeline (at
 * the next item boundary): CANCELLED, every item sunk or dropped once,
 * the source stops. */
static void
test_future_cancel(void **state)
{
    (void)state;
    ctrack_t *t = ctrack_new();
    t->sink_sleep = 20 * WEFT_USEC;
    weft_pipeline_t *p = mk("future-cancel", 8);
    assert_int_equal(weft_pipeline_source(p, c_source, t), WEFT_OK);
    add_tracked_stages(p, t, true);
    watch_reset();
    weft_future_t *f = NULL;
    assert_int_equal(weft_pipeline_start(p, &f), WEFT_OK);
    (void)weft_sleep_for(5 * WEFT_MSEC);
    (void)weft_future_cancel(f);
    assert_int_equal(weft_future_wait_until(f, weft_deadline_in(FAR)), WEFT_OK);
    atomic_store(&finished_flag, 1);
    weft_future_state_t st = weft_future_state(f);
    int64_t live = atomic_load(&t->live);
    uint64_t made = atomic_load(&t->made);
    uint64_t gone = atomic_load(&t->sink_seen) + atomic_load(&t->drops);
    uint64_t once = 0;
    for (uint64_t i = 0; i < made; i++) {
        once += atomic_load(&t->freed[i]) == 1;
    }
    (void)weft_sleep_for(2 * WEFT_MSEC);
    uint64_t made_later = atomic_load(&t->made);
    weft_future_release(f);
    weft_pipeline_destroy(p);
    ctrack_free(t);
    wt_pipe_check_no_report();
    assert_int_equal(st, WEFT_FUTURE_CANCELLED);
    assert_int_equal(live, 0);
    assert_int_equal(once, made);
    assert_int_equal(gone, made);
    assert_int_equal(made_later, made);
    assert_true(made < CAP_ITEMS);
    assert_int_equal(atomic_load(&calls_after_finish), 0);
}

/* weft_pipeline_run from the only worker of the pipeline's own pool:
 * WEFT_EDEADLK, and nothing started. */
typedef struct deadlk {
    weft_executor_t *ex;
    src_t src;
    _Atomic uint64_t got;
} deadlk_t;

static void *
run_on_own_worker(void *arg)
{
    deadlk_t *d = arg;
    weft_pipeline_opts_t o = WEFT_PIPELINE_OPTS_INIT;
    o.executor = d->ex;
    weft_pipeline_t *p = NULL;
    if (weft_pipeline_create(&o, &p) != WEFT_OK) {
        return weft_task_fail(WEFT_ENOMEM, "create");
    }
    int rc = weft_pipeline_source(p, src_fn, &d->src);
    weft_stage_t k = wt_pipe_map_stage(NULL, wt_pipe_sink_count, &d->got, 1);
    if (rc == WEFT_OK) {
        rc = weft_pipeline_stage(p, &k);
    }
    if (rc == WEFT_OK) {
        rc = weft_pipeline_run(p);
    }
    weft_pipeline_destroy(p);
    return wt_pipe_tag((uint64_t)(int64_t)(-rc));
}

static void
test_run_on_own_single_worker(void **state)
{
    (void)state;
    deadlk_t d;
    memset(&d, 0, sizeof(d));
    d.src.n = 100;
    d.ex = wt_pipe_pool(NULL, 1);
    weft_future_t *f = NULL;
    assert_int_equal(
        weft_executor_submit(d.ex, run_on_own_worker, &d, NULL, &f), WEFT_OK);
    void *v = NULL;
    assert_int_equal(weft_future_result_until(f, &v, weft_deadline_in(FAR)),
                     WEFT_OK);
    weft_future_release(f);
    weft_executor_destroy(d.ex);
    assert_int_equal(-(int)wt_pipe_untag(v), WEFT_EDEADLK);
    assert_int_equal(atomic_load(&d.src.calls), 0);
    assert_int_equal(atomic_load(&d.got), 0);
}

/* weft_pipeline_run returns WEFT_ECANCELED when another thread cancels. */
static void *
cancel_later(void *arg)
{
    (void)weft_sleep_for(10 * WEFT_MSEC);
    weft_pipeline_cancel(arg);
    return NULL;
}

static void
test_run_cancelled(void **state)
{
    (void)state;
    weft_pipeline_t *p = mk("run-cancel", 0);
    src_t s;
    set_source(p, &s, UINT64_MAX);
    _Atomic uint64_t got = 0;
    add_counter(p, &got, false);
    weft_thread_t *t = NULL;
    assert_int_equal(weft_thread_create(NULL, cancel_later, p, &t), WEFT_OK);
    assert_int_equal(weft_pipeline_run(p), WEFT_ECANCELED);
    assert_int_equal(weft_thread_join(t, NULL), WEFT_OK);
    /* The source is not called once the run returned. */
    uint64_t calls = atomic_load(&s.calls);
    assert_true(calls >= atomic_load(&got));
    (void)weft_sleep_for(10 * WEFT_MSEC);
    assert_int_equal(atomic_load(&s.calls), calls);
    /* A cancel is no failure: no failure message. */
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", weft_pipeline_error(p));
    weft_pipeline_destroy(p);
    assert_string_equal(msg, "");
}

/* ------------------------------------------------------------------------ */
/* Stats                                                                     */

static int
filter_mult3(void *ctx, void *item, void **out)
{
    (void)ctx;
    if (wt_pipe_untag(item) % 3 == 0) {
        return WEFT_PIPELINE_DROP;
    }
    *out = item;
    return WEFT_OK;
}

static int
flat_two(void *ctx, void *item, weft_emit_t *em)
{
    (void)ctx;
    int rc = weft_emit(em, item);
    if (rc == WEFT_OK) {
        rc = weft_emit(em, item);
    }
    return rc;
}

static void
test_stats_exact(void **state)
{
    (void)state;
    const uint64_t n = 1000; /* 334 multiples of 3 in 0..999 */
    weft_pipeline_t *p = mk("counted", 6);
    src_t s;
    set_source(p, &s, n);
    weft_stage_t f = wt_pipe_map_stage("no-threes", filter_mult3, NULL, 3);
    wt_pipe_add(p, &f);
    weft_stage_t d = WEFT_STAGE_INIT;
    d.name = "double";
    d.flat = flat_two;
    d.parallel = WEFT_STAGE_PARALLEL;
    wt_pipe_add(p, &d);
    _Atomic uint64_t got = 0;
    weft_stage_t k = wt_pipe_map_stage("count", wt_pipe_sink_count, &got, 1);
    k.ordered = true;
    wt_pipe_add(p, &k);
    expect_done(p);
    assert_int_equal(atomic_load(&got), 1332);

    weft_pipeline_stats_t st;
    assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
    assert_string_equal(st.name, "counted");
    assert_true(st.finished);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.max_in_flight, 6);
    assert_true(st.elapsed_ns > 0);
    assert_int_equal(st.nstages, 4);
    assert_non_null(st.stage);
    assert_int_equal(st.stage[0].items_in, n);
    assert_int_equal(st.stage[0].items_out, n);
    assert_string_equal(st.stage[1].name, "no-threes");
    assert_int_equal(st.stage[1].parallel, 3);
    assert_false(st.stage[1].ordered);
    assert_int_equal(st.stage[1].items_in, n);
    assert_int_equal(st.stage[1].filtered, 334);
    assert_int_equal(st.stage[1].items_out, 666);
    assert_string_equal(st.stage[2].name, "double");
    assert_int_equal(st.stage[2].parallel, WEFT_STAGE_PARALLEL);
    assert_int_equal(st.stage[2].items_in, 666);
    assert_int_equal(st.stage[2].items_out, 1332);
    assert_int_equal(st.stage[2].filtered, 0);
    assert_string_equal(st.stage[3].name, "count");
    assert_true(st.stage[3].ordered);
    assert_int_equal(st.stage[3].parallel, 1);
    assert_int_equal(st.stage[3].items_in, 1332);
    /* The sink passes nothing on. */
    assert_int_equal(st.stage[3].items_out, 0);
    for (size_t i = 0; i < st.nstages; i++) {
        assert_int_equal(st.stage[i].dropped, 0);
        assert_int_equal(st.stage[i].buffered, 0);
        assert_int_equal(st.stage[i].running, 0);
    }
    /* The elapsed time is frozen at the end. */
    uint64_t el = st.elapsed_ns;
    weft_pipeline_stats_free(&st);
    (void)weft_sleep_for(2 * WEFT_MSEC);
    assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
    assert_int_equal(st.elapsed_ns, el);
    weft_pipeline_stats_free(&st);
    weft_pipeline_destroy(p);
}

static void
test_stats_default_bound(void **state)
{
    (void)state;
    weft_pipeline_t *p = mk(NULL, 0);
    weft_pipeline_stats_t st;
    assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
    size_t want = 4 * (size_t)weft_pool_workers(pool);
    assert_int_equal(st.max_in_flight, want < 8 ? 8 : want);
    assert_string_equal(st.name, "pipeline");
    weft_pipeline_stats_free(&st);
    /* Unnamed stages are "stage<number>", each its own (whether the
     * number counts the source is not fixed). */
    weft_stage_t a = wt_pipe_map_stage(NULL, map_identity, NULL, 1);
    wt_pipe_add(p, &a);
    wt_pipe_add(p, &a);
    assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
    assert_int_equal(st.nstages, 3);
    for (size_t i = 1; i <= 2; i++) {
        const char *nm = st.stage[i].name;
        if (strncmp(nm, "stage", 5) != 0 || nm[5] < '0' || nm[5] > '9' ||
            strspn(nm + 5, "0123456789") != strlen(nm + 5)) {
            fail_msg("unnamed stage %zu is '%s'", i, nm);
        }
    }
    assert_string_not_equal(st.stage[1].name, st.stage[2].name);
    weft_pipeline_stats_free(&st);
    weft_pipeline_destroy(p);
}

/* A stage that sleeps 200 us per item among two quick ones is the
 * bottleneck. */
static int
slow_map(void *ctx, void *item, void **out)
{
    (void)ctx;
    (void)weft_sleep_for(200 * WEFT_USEC);
    *out = item;
    return WEFT_OK;
}

static void
test_bottleneck(void **state)
{
    (void)state;
    const uint64_t n = 300;
    bool was = weft_metrics_enabled();
    weft_metrics_enable(true);
    weft_pipeline_t *p = mk("slowpoke", 8);
    src_t s;
    set_source(p, &s, n);
    weft_stage_t a = wt_pipe_map_stage("quick", map_identity, NULL, 1);
    wt_pipe_add(p, &a);
    weft_stage_t b = wt_pipe_map_stage("slow", slow_map, NULL, 1);
    wt_pipe_add(p, &b);
    sink_t k;
    sink_init(&k, n, true);
    weft_stage_t ks = sink_stage(&k);
    wt_pipe_add(p, &ks);
    expect_done(p);
    wt_pipe_check_no_report();
    sink_check_all(&k, n);
    weft_pipeline_stats_t st;
    assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
    /* Checked after everything is freed (a failure then leaks nothing). */
    weft_pipeline_destroy(p);
    sink_fini(&k);
    weft_metrics_enable(was);
    weft_stage_stats_t sg[4];
    size_t nst = st.nstages;
    size_t bottleneck = st.bottleneck;
    uint64_t elapsed = st.elapsed_ns;
    memcpy(sg, st.stage, sizeof(sg[0]) * (nst < 4 ? nst : 4));
    weft_pipeline_stats_free(&st);
    assert_int_equal(nst, 4);
    for (size_t i = 0; i < nst; i++) {
        print_message("%zu %-8s busy %9llu ns share %.3f wait %llu ns\n", i,
                      sg[i].name, (unsigned long long)sg[i].busy_ns,
                      sg[i].busy_share, (unsigned long long)sg[i].wait_ns);
        assert_true(sg[i].busy_share >= 0.0);
        assert_true(sg[i].busy_share <= 1.0);
    }
    print_message("elapsed %llu ns\n", (unsigned long long)elapsed);
    assert_int_equal(bottleneck, 2);
    assert_string_equal(sg[bottleneck].name, "slow");
    /* busy_ns is measured on the items whose sequence number is a
     * multiple of 8 and scaled by 8: ceil(n / 8) calls of at least
     * 200 us each (sleeps never end early), times 8, is at least
     * n x 200 us. (An estimate: it may exceed the elapsed time.) */
    assert_true(sg[2].busy_ns >= n * 200 * 1000);
    assert_true(sg[2].busy_share > sg[1].busy_share);
    assert_true(sg[2].busy_share > sg[3].busy_share);
}

/* The in-flight bound, seen from outside through stats while it runs. */
static void
test_in_flight_bound(void **state)
{
    (void)state;
    const uint64_t n = 400;
    weft_pipeline_t *p = mk("bounded", 3);
    src_t s;
    set_source(p, &s, n);
    weft_stage_t a =
        wt_pipe_map_stage(NULL, map_identity, NULL, WEFT_STAGE_PARALLEL);
    wt_pipe_add(p, &a);
    sink_t k;
    sink_init(&k, n, false);
    k.sleep = 100 * WEFT_USEC;
    weft_stage_t ks = sink_stage(&k);
    wt_pipe_add(p, &ks);
    weft_future_t *f = NULL;
    assert_int_equal(weft_pipeline_start(p, &f), WEFT_OK);
    size_t most = 0;
    int samples = 0;
    while (!weft_future_done(f)) {
        weft_pipeline_stats_t st;
        assert_int_equal(weft_pipeline_stats(p, &st), WEFT_OK);
        if (st.in_flight > most) {
            most = st.in_flight;
        }
        /* Each counter is within the bound (a snapshot of several need
         * not be taken at one instant, so their sum may not be). */
        for (size_t i = 0; i < st.nstages; i++) {
            assert_true(st.stage[i].buffered <= 3);
            assert_true(st.stage[i].running <= 3);
        }
        assert_int_equal(st.max_in_flight, 3);
        weft_pipeline_stats_free(&st);
        samples++;
        (void)weft_sleep_for(200 * WEFT_USEC);
    }
    assert_int_equal(weft_future_wait_until(f, weft_deadline_in(FAR)), WEFT_OK);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    weft_future_release(f);
    print_message("in flight at most %zu over %d samples\n", most, samples);
    assert_true(most <= 3);
    wt_pipe_check_no_report();
    sink_check_all(&k, n);
    weft_pipeline_destroy(p);
    sink_fini(&k);
}

/* ------------------------------------------------------------------------ */
/* Destroy                                                                   */

static void
test_destroy(void **state)
{
    (void)state;
    /* Empty, never started. */
    weft_pipeline_destroy(mk("empty", 0));
    /* Complete, never started: nothing called. */
    weft_pipeline_t *p = mk("unstarted", 0);
    src_t s;
    set_source(p, &s, 10);
    sink_t k;
    sink_init(&k, 10, true);
    weft_stage_t ks = sink_stage(&k);
    wt_pipe_add(p, &ks);
    weft_pipeline_destroy(p);
    assert_int_equal(atomic_load(&s.calls), 0);
    assert_int_equal(atomic_load(&k.count), 0);
    sink_fini(&k);

    /* Started, future dropped at once: destroy waits for the end. */
    p = mk("waited", 4);
    set_source(p, &s, 2000);
    sink_init(&k, 2000, true);
    k.sleep = 10 * WEFT_USEC;
    ks = sink_stage(&k);
    wt_pipe_add(p, &ks);
    assert_int_equal(weft_pipeline_start(p, NULL), WEFT_OK);
    weft_pipeline_destroy(p);
    wt_pipe_check_no_report();
    sink_check_all(&k, 2000);
    sink_fini(&k);

    /* After run. */
    p = mk("ran", 0);
    set_source(p, &s, 100);
    sink_init(&k, 100, true);
    ks = sink_stage(&k);
    wt_pipe_add(p, &ks);
    assert_int_equal(weft_pipeline_run(p), WEFT_OK);
    weft_pipeline_destroy(p);
    sink_check_all(&k, 100);
    sink_fini(&k);

    /* The future outlives the pipeline. */
    p = mk("outlived", 0);
    set_source(p, &s, 100);
    sink_init(&k, 100, false);
    ks = sink_stage(&k);
    wt_pipe_add(p, &ks);
    weft_future_t *f = start_wait(p);
    weft_pipeline_destroy(p);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    weft_future_release(f);
    sink_fini(&k);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_source_errors),
        cmocka_unit_test(test_stage_errors),
        cmocka_unit_test(test_start_errors),
        cmocka_unit_test(test_start_on_shut_down_pool),
        cmocka_unit_test(test_stats_errors),
        cmocka_unit_test(test_three_stages),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_flat_ordered),
        cmocka_unit_test(test_flat_ordered_through_parallel),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_batch_behind_flat),
        cmocka_unit_test(test_batch_behind_batch),
        cmocka_unit_test(test_emit_overflow),
        cmocka_unit_test(test_source_queue),
        cmocka_unit_test(test_source_queue_cancel),
        cmocka_unit_test(test_source_queue_item_not_held),
        cmocka_unit_test(test_source_lines),
        cmocka_unit_test(test_source_lines_missing),
        cmocka_unit_test(test_source_lines_cancel),
        cmocka_unit_test(test_blocking_source),
        cmocka_unit_test(test_stage_failure),
        cmocka_unit_test(test_source_failure),
        cmocka_unit_test(test_running_stage_sees_cancel),
        cmocka_unit_test(test_cancel_outside),
        cmocka_unit_test(test_cancel_then_destroy),
        cmocka_unit_test(test_cancel_blocked_source),
        cmocka_unit_test(test_run_from_pool_task),
        cmocka_unit_test(test_future_cancel),
        cmocka_unit_test(test_run_on_own_single_worker),
        cmocka_unit_test(test_run_cancelled),
        cmocka_unit_test(test_stats_exact),
        cmocka_unit_test(test_stats_default_bound),
        cmocka_unit_test(test_bottleneck),
        cmocka_unit_test(test_in_flight_bound),
        cmocka_unit_test(test_destroy),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
