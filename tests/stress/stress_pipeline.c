/* SPDX-License-Identifier: MIT */
/*
 * Stress (RELIABILITY R7): pipelines keep memory bounded, stop every stage
 * on failure or cancellation, and keep order where promised. A million
 * items through parallel and ordered stages (each exactly once, in order
 * at an ordered sink; at most N calls at once in a stage of parallelism
 * N); gigabytes of 4 KiB items through max_in_flight 64 (live items and
 * peak memory stay bounded); and hundreds of random pipelines that fail
 * at a random stage and item or are cancelled at a random time (every
 * item freed exactly once, nothing runs after the future completed).
 */
#include "pipe_testutil.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/pipeline.h>
#include <weft/pool.h>

#if defined(WEFT_SANITIZE_ADDRESS) || defined(WEFT_SANITIZE_THREAD)
/* From the sanitizer runtime (<sanitizer/allocator_interface.h>, which gcc
 * does not always install): bytes the program holds allocated now. */
size_t __sanitizer_get_current_allocated_bytes(void);
#define HAVE_ALLOC_STATS 1
#else
#define HAVE_ALLOC_STATS 0
#endif

/*
 * DESIGN
 * Stage functions run on pool workers, where cmocka must not assert: they
 * count problems with wt_pipe_report (keeping the first message) and the test
 * thread checks after the future completed. Exactly-once is a per-item counter
 * (fetch_add must see 0); order is a strictly increasing key at each
 * ordered stage; concurrency is a counter of calls running and its
 * maximum. Memory: in sanitizer builds the allocator's own count of live
 * heap bytes is sampled from the source (a freed block sits in ASan's
 * quarantine, so the process's peak RSS says little there); in release
 * builds the peak RSS (VmHWM, reset through /proc/self/clear_refs) is
 * compared with the RSS before the run.
 */

#define WORKERS 4u
#define FAR (300 * WEFT_SEC)

/* Release size n; sanitizer builds run n / 5 (wt_size divides by the
 * slowdown itself). */
static size_t
stress_n(size_t n)
{
    size_t s = WEFT_TEST_SLOW > 1 ? n / 5 * WEFT_TEST_SLOW : n;
    return wt_size(s, n * 10);
}

/* ------------------------------------------------------------------------ */
/* (1) A million items: exactly once, in order, bounded parallelism         */

/* Items are tagged integers: v + 1. Stage a: v -> 2v + 1; stage b:
 * w -> w + 4 (so the sink gets 2v + 5 and checks the chain). */
typedef struct flow {
    uint64_t n, next;
    _Atomic uint8_t *seen;
    _Atomic uint64_t count;
    uint64_t expect_next;
    bool ordered;
    bool b_ordered; /* stage b serial and ordered */
    uint64_t b_next;
    uint64_t nap_every; /* 0: never; else 1 call in nap_every naps 20 us */
    wt_conc_t ca, cb, ck;
} flow_t;

/* A short sleep in some calls: its worker yields the core, so others
 * take the next items and calls of one stage overlap (with the stages'
 * tiny work alone, two cores rarely run two calls of a stage at once). */
static void
flow_nap(const flow_t *f, uint64_t v)
{
    if (f->nap_every != 0 &&
        (v * 0x9e3779b97f4a7c15ull >> 40) % f->nap_every == 0) {
        (void)weft_sleep_for(20 * WEFT_USEC);
    }
}

static int
flow_src(void *ctx, void **item)
{
    flow_t *f = ctx;
    if (f->next == f->n) {
        return WEFT_ECLOSED;
    }
    *item = wt_pipe_tag(f->next++);
    return WEFT_OK;
}

static int
flow_a(void *ctx, void *item, void **out)
{
    flow_t *f = ctx;
    wt_conc_enter(&f->ca);
    flow_nap(f, wt_pipe_untag(item));
    *out = wt_pipe_tag(2 * wt_pipe_untag(item) + 1);
    wt_conc_leave(&f->ca);
    return WEFT_OK;
}

static int
flow_b(void *ctx, void *item, void **out)
{
    flow_t *f = ctx;
    wt_conc_enter(&f->cb);
    uint64_t w = wt_pipe_untag(item);
    if (w % 2 != 1) {
        wt_pipe_report("stage b: input not from stage a", w, 0);
    }
    if (f->b_ordered) {
        if (w != 2 * f->b_next + 1) {
            wt_pipe_report("ordered stage b: got, expected", (w - 1) / 2,
                           (int64_t)f->b_next);
        }
        f->b_next = (w - 1) / 2 + 1;
    }
    flow_nap(f, w);
    *out = wt_pipe_tag(w + 4);
    wt_conc_leave(&f->cb);
    return WEFT_OK;
}

static int
flow_sink(void *ctx, void *item, void **out)
{
    (void)out;
    flow_t *f = ctx;
    wt_conc_enter(&f->ck);
    uint64_t w = wt_pipe_untag(item);
    uint64_t v = (w - 5) / 2;
    if (w < 5 || (w - 5) % 2 != 0 || v >= f->n) {
        wt_pipe_report("sink: input not from stage b", w, 0);
    } else {
        flow_nap(f, w + 1);
        if (atomic_fetch_add(&f->seen[v], 1) != 0) {
            wt_pipe_report("sink: item seen twice", v, 0);
        }
        if (f->ordered) {
            if (v != f->expect_next) {
                wt_pipe_report("ordered sink: got, expected", v,
                               (int64_t)f->expect_next);
            }
            f->expect_next = v + 1;
        }
    }
    atomic_fetch_add(&f->count, 1);
    wt_conc_leave(&f->ck);
    return WEFT_OK;
}

/* A flow of n items on a new pipeline on ex (*pp): stages a, b and the
 * sink of parallelism par[0..2]; when `ordered`, an ordered sink, and an
 * ordered b too when b is serial. */
static flow_t *
flow_new(weft_executor_t *ex, size_t n, const unsigned par[3], bool ordered,
         size_t max_in_flight, uint64_t nap_every, weft_pipeline_t **pp)
{
    flow_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->n = n;
    f->ordered = ordered;
    f->nap_every = nap_every;
    f->seen = calloc(n, sizeof(*f->seen));
    assert_non_null(f->seen);
    weft_pipeline_t *p = wt_pipe_create(ex, "flow", max_in_flight);
    assert_int_equal(weft_pipeline_source(p, flow_src, f), WEFT_OK);
    weft_stage_t a = wt_pipe_map_stage("a", flow_a, f, par[0]);
    wt_pipe_add(p, &a);
    weft_stage_t b = wt_pipe_map_stage("b", flow_b, f, par[1]);
    b.ordered = f->b_ordered = par[1] == 1 && ordered;
    wt_pipe_add(p, &b);
    weft_stage_t k = wt_pipe_map_stage("sink", flow_sink, f, par[2]);
    k.ordered = ordered;
    wt_pipe_add(p, &k);
    *pp = p;
    return f;
}

/* Pipeline `which` of flow f delivered every item exactly once, and no
 * stage ran more calls at once than its parallelism par[0..2]. */
static void
flow_check(const flow_t *f, const unsigned par[3], int which)
{
    assert_int_equal(atomic_load(&f->count), f->n);
    for (size_t i = 0; i < f->n; i++) {
        if (atomic_load(&f->seen[i]) != 1) {
            fail_msg("pipeline %d: item %zu seen %d times", which, i,
                     (int)atomic_load(&f->seen[i]));
        }
    }
    const int most[3] = {atomic_load(&f->ca.max), atomic_load(&f->cb.max),
                         atomic_load(&f->ck.max)};
    for (int i = 0; i < 3; i++) {
        if (par[i] != WEFT_STAGE_PARALLEL && most[i] > (int)par[i]) {
            fail_msg("pipeline %d stage %d: %d calls at once, parallel %u",
                     which, i, most[i], par[i]);
        }
    }
}

static void
flow_free(flow_t *f)
{
    free((void *)f->seen);
    free(f);
}

/* pa, pb, pk: parallelism of stages a, b and the sink. */
static void
run_flow(size_t n, unsigned pa, unsigned pb, unsigned pk, bool ordered,
         size_t max_in_flight, uint64_t nap_every)
{
    weft_executor_t *ex = wt_pipe_pool("plstress", WORKERS);
    const unsigned par[3] = {pa, pb, pk};
    weft_pipeline_t *p = NULL;
    flow_t *f = flow_new(ex, n, par, ordered, max_in_flight, nap_every, &p);
    weft_time_t t0 = weft_now();
    wt_pipe_expect_done(p, FAR);
    double secs = (double)(weft_now() - t0) / (double)WEFT_SEC;
    printf("flow n=%zu parallel %u/%u/%u ordered=%d: %.2f s (%.0f items/s), "
           "most calls at once %d/%d/%d\n",
           n, pa, pb, pk, ordered, secs, (double)n / secs,
           atomic_load(&f->ca.max), atomic_load(&f->cb.max),
           atomic_load(&f->ck.max));
    fflush(stdout);
    wt_pipe_check_no_report();
    flow_check(f, par, 0);
    weft_pipeline_stats_t s;
    assert_int_equal(weft_pipeline_stats(p, &s), WEFT_OK);
    for (size_t i = 0; i < s.nstages; i++) {
        assert_int_equal(s.stage[i].items_in, n);
    }
    weft_pipeline_stats_free(&s);
    weft_pipeline_destroy(p);
    weft_executor_destroy(ex);
    flow_free(f);
}

static void
test_million_ordered(void **state)
{
    (void)state;
    run_flow(stress_n(1000000), WEFT_STAGE_PARALLEL, WEFT_STAGE_PARALLEL, 1,
             true, 0, 0);
    run_flow(stress_n(200000), WEFT_STAGE_PARALLEL, WEFT_STAGE_PARALLEL, 1,
             true, 0, 64);
    /* An ordered serial stage in the middle too (after the parallel one),
     * then the ordered sink. */
    run_flow(stress_n(500000), WEFT_STAGE_PARALLEL, 1, 1, true, 0, 0);
    run_flow(stress_n(100000), WEFT_STAGE_PARALLEL, 1, 1, true, 16, 32);
}

static void
test_million_unordered(void **state)
{
    (void)state;
    run_flow(stress_n(1000000), WEFT_STAGE_PARALLEL, WEFT_STAGE_PARALLEL,
             WEFT_STAGE_PARALLEL, false, 0, 0);
    run_flow(stress_n(200000), WEFT_STAGE_PARALLEL, WEFT_STAGE_PARALLEL,
             WEFT_STAGE_PARALLEL, false, 0, 64);
}

static void
test_limited_parallelism(void **state)
{
    (void)state;
    /* Parallel 3, a serial unordered middle, parallel 3 sink, on a pool
     * of 4 workers and a window that allows more. */
    run_flow(stress_n(500000), 3, 1, 3, false, 64, 0);
    run_flow(stress_n(200000), 3, 1, 3, false, 64, 16);
    /* A tight window: at most 2 items anywhere. */
    run_flow(stress_n(100000), 3, 1, 3, false, 2, 16);
}

/* Four pipelines share one pool at once, each with its own mix of stages:
 * each delivers every item once, the ordered ones in order, whatever the
 * others do. */
static void
test_concurrent_pipelines(void **state)
{
    (void)state;
    enum { NP = 4 };
    static const unsigned cfg[NP][4] = {
        /* parallel a, b, sink; ordered sink */
        {WEFT_STAGE_PARALLEL, WEFT_STAGE_PARALLEL, 1, 1},
        {3, 1, 3, 0},
        {1, WEFT_STAGE_PARALLEL, 1, 1},
        {WEFT_STAGE_PARALLEL, 2, WEFT_STAGE_PARALLEL, 0},
    };
    size_t n = stress_n(250000);
    weft_executor_t *ex = wt_pipe_pool("plstress", WORKERS);
    flow_t *f[NP];
    weft_pipeline_t *p[NP];
    weft_future_t *fut[NP];
    for (int i = 0; i < NP; i++) {
        f[i] = flow_new(ex, n, cfg[i], cfg[i][3] != 0, (size_t)(4 + 20 * i),
                        i == 1 ? 256 : 0, &p[i]);
    }
    weft_time_t t0 = weft_now();
    for (int i = 0; i < NP; i++) {
        assert_int_equal(weft_pipeline_start(p[i], &fut[i]), WEFT_OK);
    }
    for (int i = 0; i < NP; i++) {
        assert_int_equal(weft_future_wait_until(fut[i], weft_deadline_in(FAR)),
                         WEFT_OK);
        if (weft_future_state(fut[i]) != WEFT_FUTURE_DONE) {
            fail_msg("pipeline %d ended %d: %s", i,
                     (int)weft_future_state(fut[i]), weft_future_error(fut[i]));
        }
        weft_future_release(fut[i]);
    }
    printf("%d pipelines of %zu items at once: %.2f s\n", NP, n,
           (double)(weft_now() - t0) / (double)WEFT_SEC);
    wt_pipe_check_no_report();
    for (int i = 0; i < NP; i++) {
        flow_check(f[i], cfg[i], i);
        weft_pipeline_destroy(p[i]);
        flow_free(f[i]);
    }
    weft_executor_destroy(ex);
}

/* ------------------------------------------------------------------------ */
/* (2) Bounded memory                                                        */

#define BLOCK 4096u
#define WINDOW 64u
#define MIB (1024.0 * 1024.0)

typedef struct mem {
    uint64_t n, next;
    _Atomic int64_t live;
    _Atomic int64_t live_max;
    _Atomic int64_t heap_max; /* sanitizer builds: live heap bytes */
    int64_t heap_base;
    _Atomic uint64_t sum; /* checksum of first bytes, source vs sink */
    uint64_t sum_made;
    _Atomic uint64_t sunk;
} mem_t;

static int
mem_src(void *ctx, void **item)
{
    mem_t *m = ctx;
    if (m->next == m->n) {
        return WEFT_ECLOSED;
    }
#if HAVE_ALLOC_STATS
    if (m->next % 16 == 0) {
        wt_max_update(&m->heap_max,
                      (int64_t)__sanitizer_get_current_allocated_bytes() -
                          m->heap_base);
    }
#endif
    unsigned char *b = malloc(BLOCK);
    if (b == NULL) {
        return weft_stage_fail(WEFT_ENOMEM, "block %llu",
                               (unsigned long long)m->next);
    }
    /* Touch every page: the block is resident. */
    memset(b, (int)(m->next & 0xff), BLOCK);
    memcpy(b, &m->next, sizeof(m->next));
    m->sum_made += m->next;
    m->next++;
    wt_max_update(&m->live_max, atomic_fetch_add(&m->live, 1) + 1);
    *item = b;
    return WEFT_OK;
}

static int
mem_touch(void *ctx, void *item, void **out)
{
    (void)ctx;
    unsigned char *b = item;
    /* Read the block's last byte against its index. */
    uint64_t idx;
    memcpy(&idx, b, sizeof(idx));
    if (b[BLOCK - 1] != (unsigned char)(idx & 0xff)) {
        wt_pipe_report("block corrupted", idx, b[BLOCK - 1]);
    }
    *out = item;
    return WEFT_OK;
}

static int
mem_sink(void *ctx, void *item, void **out)
{
    (void)out;
    mem_t *m = ctx;
    uint64_t idx;
    memcpy(&idx, item, sizeof(idx));
    atomic_fetch_add(&m->sum, idx);
    uint64_t k = atomic_fetch_add(&m->sunk, 1);
    if (k % 1024 == 0) {
        /* Slow-ish: the source outruns the sink and must be held back. */
        (void)weft_sleep_for(200 * WEFT_USEC);
    }
    atomic_fetch_sub(&m->live, 1);
    free(item);
    return WEFT_OK;
}

static void
mem_drop(void *ctx, void *item)
{
    (void)ctx;
    (void)item;
    wt_pipe_report(
        "an item was dropped in a run that neither fails nor cancels", 0, 0);
}

/* kB from a "Name:   123 kB" line of /proc/self/status (-1 if absent). */
static long
status_kb(const char *name)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return -1;
    }
    char line[256];
    long kb = -1;
    size_t nl = strlen(name);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
            kb = strtol(line + nl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

/* Reset the peak RSS to the current RSS; false if the kernel cannot. */
static bool
reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f == NULL) {
        return false;
    }
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

static void
test_bounded_memory(void **state)
{
    (void)state;
    const uint64_t n = stress_n(1000000);
    weft_executor_t *ex = wt_pipe_pool("plstress", WORKERS);
    mem_t *m = calloc(1, sizeof(*m));
    assert_non_null(m);
    m->n = n;
    weft_pipeline_t *p = wt_pipe_create(ex, "memory", WINDOW);
    assert_int_equal(weft_pipeline_source(p, mem_src, m), WEFT_OK);
    weft_stage_t a =
        wt_pipe_map_stage("touch", mem_touch, NULL, WEFT_STAGE_PARALLEL);
    a.drop = mem_drop;
    wt_pipe_add(p, &a);
    weft_stage_t b = wt_pipe_map_stage("again", mem_touch, NULL, 2);
    b.drop = mem_drop;
    wt_pipe_add(p, &b);
    weft_stage_t k = wt_pipe_map_stage("free", mem_sink, m, 1);
    k.ordered = true;
    k.drop = mem_drop;
    wt_pipe_add(p, &k);

#if HAVE_ALLOC_STATS
    m->heap_base = (int64_t)__sanitizer_get_current_allocated_bytes();
#endif
    bool peak_ok = reset_peak_rss();
    long rss0 = status_kb("VmRSS");
    weft_time_t t0 = weft_now();
    wt_pipe_expect_done(p, FAR);
    double secs = (double)(weft_now() - t0) / (double)WEFT_SEC;
    long hwm = status_kb("VmHWM");

    double volume = (double)n * BLOCK / MIB;
    double growth =
        peak_ok && rss0 > 0 && hwm > 0 ? (double)(hwm - rss0) / 1024.0 : -1.0;
    printf("memory: %llu blocks of %u B (%.0f MiB) in %.2f s; live items at "
           "most %lld (bound %u); peak RSS growth %.1f MiB\n",
           (unsigned long long)n, BLOCK, volume, secs,
           (long long)atomic_load(&m->live_max), WINDOW, growth);
#if HAVE_ALLOC_STATS
    printf("memory: live heap growth at most %.1f MiB (sampled)\n",
           (double)atomic_load(&m->heap_max) / MIB);
#endif
    fflush(stdout);
    wt_pipe_check_no_report();
    assert_int_equal(atomic_load(&m->sunk), n);
    assert_int_equal(atomic_load(&m->sum), m->sum_made);
    assert_int_equal(atomic_load(&m->live), 0);
    /* The contract's bound: never more than max_in_flight items between
     * the source and the end of the sink. */
    assert_true(atomic_load(&m->live_max) <= (int64_t)WINDOW);
    assert_true(atomic_load(&m->live_max) >= 1);
    /* The volume is far above the bound (WINDOW blocks). */
    assert_true(n >= 50 * WINDOW);
#if HAVE_ALLOC_STATS
    assert_true((double)atomic_load(&m->heap_max) < 64.0 * MIB);
#else
    if (growth < 0) {
        print_message("peak RSS not measurable here; skipped that check\n");
    } else {
        assert_true(growth < 64.0);
    }
#endif
    weft_pipeline_destroy(p);
    weft_executor_destroy(ex);
    free(m);
}

/* ------------------------------------------------------------------------ */
/* (3) Random failures and cancellations: every item freed exactly once,    */
/* nothing runs after the future completed.                                 */

enum { K_MAP, K_FILTER, K_FLAT, K_BATCH, K_KINDS };

#define MAX_STAGES 5
#define FAIL_CODE WEFT_EIO

typedef struct item {
    uint64_t id;  /* allocation number: index into freed[] */
    uint64_t seq; /* the source item it comes from */
    uint32_t sub; /* 0: the source's item; 1: a flat stage's child */
    uint32_t magic;
} item_t;

#define MAGIC 0x17e3a11du

struct run;

typedef struct sstage {
    struct run *r;
    int index; /* 1.. (0 is the source) */
    int kind;
    unsigned parallel;
    bool ordered;
    bool check_order; /* ordered, and no batch stage before it */
    bool after_batch; /* a batch stage comes before it */
    bool after_flat;  /* a flat stage comes before it */
    char name[16];
    wt_conc_t conc;
    uint64_t last_seq; /* ordered stages: seq of the last item + 1 */
} sstage_t;

typedef struct run {
    uint64_t n, next_seq;
    size_t cap; /* ids */
    _Atomic uint64_t next_id;
    _Atomic uint8_t *freed;
    _Atomic int64_t live;
    _Atomic uint64_t sunk, dropped, filtered, failed;
    int nstages; /* stages after the source */
    sstage_t st[MAX_STAGES + 1];
    int fail_stage; /* -1: none; 0: the source */
    uint64_t fail_seq;
    int cancel_stage; /* -1: none; cancels from inside at cancel_seq */
    uint64_t cancel_seq;
    weft_pipeline_t *p;
    _Atomic int finished;
    _Atomic int after_finish;                /* calls that started after it */
    _Atomic int after_finish_src;            /* of them, source calls */
    _Atomic int after_finish_drop;           /* of them, drop calls */
    _Atomic uint64_t source_calls_after_end; /* after it returned ECLOSED */
    bool source_ended;
} run_t;

static void
watch(run_t *r)
{
    if (atomic_load(&r->finished)) {
        atomic_fetch_add(&r->after_finish, 1);
    }
}

static item_t *
item_new(run_t *r, uint64_t seq, uint32_t sub)
{
    uint64_t id = atomic_fetch_add(&r->next_id, 1);
    if (id >= r->cap) {
        wt_pipe_report("more items than planned", id, 0);
        return NULL;
    }
    item_t *it = malloc(sizeof(*it));
    if (it == NULL) {
        return NULL;
    }
    it->id = id;
    it->seq = seq;
    it->sub = sub;
    it->magic = MAGIC;
    atomic_fetch_add(&r->live, 1);
    return it;
}

static void
item_free(run_t *r, item_t *it)
{
    if (it->magic != MAGIC || it->id >= r->cap) {
        wt_pipe_report("freeing something that is not a live item", 0, 0);
        return;
    }
    if (atomic_fetch_add(&r->freed[it->id], 1) != 0) {
        wt_pipe_report("item freed twice", it->id, 0);
        return;
    }
    it->magic = 0;
    free(it);
    atomic_fetch_sub(&r->live, 1);
}

static int
inject(sstage_t *s, const item_t *it)
{
    return weft_stage_fail(FAIL_CODE, "injected at %s %llu", s->name,
                           (unsigned long long)it->seq);
}

/* 1 call in 64 sleeps 20 us: cancels and failures then find calls
 * running in every stage. */
static void
chaos_nap(const item_t *it, int stage)
{
    uint64_t h = (it->id * 4 + (uint64_t)stage) * 0x9e3779b97f4a7c15ull;
    if ((h >> 40) % 64 == 0) {
        (void)weft_sleep_for(20 * WEFT_USEC);
    }
}

static bool
fails_here(const sstage_t *s, const item_t *it)
{
    chaos_nap(it, s->index);
    run_t *r = s->r;
    if (r->cancel_stage == s->index && it->seq == r->cancel_seq) {
        weft_pipeline_cancel(r->p);
    }
    return r->fail_stage == s->index && it->seq == r->fail_seq;
}

static void
check_order(sstage_t *s, const item_t *it)
{
    if (!s->check_order) {
        return;
    }
    /* Source order; items a flat stage made for one input share its
     * sequence number. */
    uint64_t seq = it->seq + 1;
    if (seq < s->last_seq || (seq == s->last_seq && !s->after_flat)) {
        wt_pipe_report("ordered stage: out of order (seq, last)", it->seq,
                       (int64_t)s->last_seq - 1);
    }
    s->last_seq = seq;
}

static int
r_source(void *ctx, void **item)
{
    run_t *r = ctx;
    if (atomic_load(&r->finished)) {
        atomic_fetch_add(&r->after_finish_src, 1);
    }
    watch(r);
    if (r->source_ended) {
        atomic_fetch_add(&r->source_calls_after_end, 1);
    }
    if (r->fail_stage == 0 && r->next_seq == r->fail_seq) {
        r->next_seq++;
        return weft_stage_fail(FAIL_CODE, "injected at source %llu",
                               (unsigned long long)r->fail_seq);
    }
    if (r->next_seq >= r->n) {
        r->source_ended = true;
        return WEFT_ECLOSED;
    }
    if (r->cancel_stage == 0 && r->next_seq == r->cancel_seq) {
        /* The item made now is never passed on. */
        weft_pipeline_cancel(r->p);
    }
    item_t *it = item_new(r, r->next_seq, 0);
    if (it == NULL) {
        return WEFT_ENOMEM;
    }
    r->next_seq++;
    *item = it;
    return WEFT_OK;
}

/* The start of a map or flat stage's call on `it` (the stage then leaves
 * s->conc): true when the call fails at it, with *rc its code and `it`
 * freed; else *rc = WEFT_OK. */
static bool
stage_enter(sstage_t *s, item_t *it, int *rc)
{
    run_t *r = s->r;
    watch(r);
    wt_conc_enter(&s->conc);
    check_order(s, it);
    *rc = WEFT_OK;
    if (!fails_here(s, it)) {
        return false;
    }
    atomic_fetch_add(&r->failed, 1);
    *rc = inject(s, it);
    item_free(r, it);
    return true;
}

static int
r_map(void *ctx, void *item, void **out)
{
    sstage_t *s = ctx;
    run_t *r = s->r;
    item_t *it = item;
    int rc;
    if (stage_enter(s, it, &rc)) {
        /* Failed at it: freed. */
    } else if (s->kind == K_FILTER && it->seq % 7 == 3) {
        atomic_fetch_add(&r->filtered, 1);
        item_free(r, it);
        rc = WEFT_PIPELINE_DROP;
    } else if (s->index == r->nstages) {
        atomic_fetch_add(&r->sunk, 1);
        item_free(r, it);
    } else {
        *out = it;
    }
    wt_conc_leave(&s->conc);
    return rc;
}

/* Emits the item itself and, for every third seq, a new child after it. */
static int
r_flat(void *ctx, void *item, weft_emit_t *em)
{
    sstage_t *s = ctx;
    run_t *r = s->r;
    item_t *it = item;
    int rc;
    if (stage_enter(s, it, &rc)) {
        goto out;
    }
    item_t *child = NULL;
    if (it->sub == 0 && it->seq % 3 == 0) {
        child = item_new(r, it->seq, 1);
        if (child == NULL) {
            rc = WEFT_ENOMEM;
            item_free(r, it);
            goto out;
        }
    }
    rc = weft_emit(em, it);
    if (rc != WEFT_OK) {
        wt_pipe_report("weft_emit of a flat stage failed", it->seq, rc);
        item_free(r, it);
        if (child != NULL) {
            item_free(r, child);
        }
        goto out;
    }
    if (child != NULL) {
        rc = weft_emit(em, child);
        if (rc != WEFT_OK) {
            wt_pipe_report("weft_emit of a child failed", it->seq, rc);
            item_free(r, child);
        }
    }
out:
    wt_conc_leave(&s->conc);
    return rc;
}

static int
r_batch(void *ctx, void **items, size_t n, weft_emit_t *em)
{
    sstage_t *s = ctx;
    run_t *r = s->r;
    watch(r);
    wt_conc_enter(&s->conc);
    int rc = WEFT_OK;
    if (n < 1 || n > 4) {
        wt_pipe_report("batch size out of 1..batch_max", n, 0);
    }
    for (size_t i = 0; i < n; i++) {
        check_order(s, items[i]);
        (void)fails_here(s, items[i]); /* never fails: may cancel */
        if (rc == WEFT_OK) {
            rc = weft_emit(em, items[i]);
            if (rc != WEFT_OK) {
                wt_pipe_report("weft_emit of a batch stage failed", i, rc);
                item_free(r, items[i]);
            }
        } else {
            item_free(r, items[i]);
        }
    }
    wt_conc_leave(&s->conc);
    return rc;
}

static void
r_drop(void *ctx, void *item)
{
    sstage_t *s = ctx;
    if (atomic_load(&s->r->finished)) {
        atomic_fetch_add(&s->r->after_finish_drop, 1);
    }
    watch(s->r);
    atomic_fetch_add(&s->r->dropped, 1);
    item_free(s->r, item);
}

static void
configure(run_t *r, uint64_t *rng, weft_pipeline_t *p)
{
    r->nstages = 2 + (int)(wt_rand(rng) % (MAX_STAGES - 1));
    bool batch_before = false;
    bool flat_before = false;
    for (int i = 1; i <= r->nstages; i++) {
        sstage_t *s = &r->st[i];
        s->r = r;
        s->index = i;
        bool sink = i == r->nstages;
        s->kind = sink ? K_MAP : (int)(wt_rand(rng) % K_KINDS);
        unsigned choice = (unsigned)(wt_rand(rng) % 4);
        s->parallel = choice == 0 ? WEFT_STAGE_PARALLEL : choice == 1 ? 3u : 1u;
        s->ordered = s->parallel == 1 && wt_rand(rng) % 2 == 0;
        s->check_order = s->ordered && !batch_before;
        s->after_batch = batch_before;
        s->after_flat = flat_before;
        batch_before = batch_before || s->kind == K_BATCH;
        flat_before = flat_before || s->kind == K_FLAT;
        snprintf(s->name, sizeof(s->name), "s%d", i);
        weft_stage_t ws = WEFT_STAGE_INIT;
        ws.name = s->name;
        ws.ctx = s;
        ws.parallel = s->parallel;
        ws.ordered = s->ordered;
        ws.drop = r_drop;
        if (s->kind == K_FLAT) {
            ws.flat = r_flat;
        } else if (s->kind == K_BATCH) {
            ws.batch_fn = r_batch;
            ws.batch_max = 4;
        } else {
            ws.fn = r_map;
        }
        wt_pipe_add(p, &ws);
    }
}

static const char *const kind_names[K_KINDS] = {"map", "filter", "flat",
                                                "batch"};

/* Records the first problem of a run (the run is freed before the test
 * fails, so that a failure leaks nothing). */
typedef struct verdict {
    char why[512];
} verdict_t;

static void note(verdict_t *v, const char *fmt, ...) WEFT_PRINTF(2, 3);

static void
note(verdict_t *v, const char *fmt, ...)
{
    if (v->why[0] != '\0') {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->why, sizeof(v->why), fmt, ap);
    va_end(ap);
}

static void
describe(const run_t *r, size_t window, int mode, char *desc, size_t cap)
{
    int len = snprintf(desc, cap, "n=%llu window=%zu mode=%d",
                       (unsigned long long)r->n, window, mode);
    for (int i = 1; i <= r->nstages && len > 0 && (size_t)len < cap; i++) {
        len += snprintf(desc + len, cap - (size_t)len, " %s/%u%s",
                        kind_names[r->st[i].kind], r->st[i].parallel,
                        r->st[i].ordered ? "o" : "");
    }
}

/* The outcome a mode must have, and the failure's message. */
static void
check_outcome(const run_t *r, weft_future_t *f, int mode, const char *desc,
              verdict_t *v)
{
    weft_future_state_t st = weft_future_state(f);
    if (mode == 0) {
        if (st != WEFT_FUTURE_FAILED || weft_future_code(f) != FAIL_CODE) {
            note(v, "[%s] fail at %d/%llu: state %d code %s", desc,
                 r->fail_stage, (unsigned long long)r->fail_seq, (int)st,
                 weft_errname(weft_future_code(f)));
        }
        const char *msg = weft_future_error(f);
        char want[128];
        if (r->fail_stage > 0 && !r->st[r->fail_stage].after_batch) {
            snprintf(want, sizeof(want),
                     "chaos: stage 's%d' item %llu: injected at s%d %llu",
                     r->fail_stage, (unsigned long long)r->fail_seq,
                     r->fail_stage, (unsigned long long)r->fail_seq);
            if (strcmp(msg, want) != 0) {
                note(v, "[%s] message '%s', expected '%s'", desc, msg, want);
            }
        } else {
            /* The source's name, or the sequence number of an item a
             * batch stage emitted, is not fixed by the contract. */
            if (r->fail_stage == 0) {
                snprintf(want, sizeof(want), ": injected at source %llu",
                         (unsigned long long)r->fail_seq);
            } else {
                snprintf(want, sizeof(want), "s%d' item ", r->fail_stage);
            }
            if (strncmp(msg, "chaos: stage '", 14) != 0 ||
                strstr(msg, want) == NULL) {
                note(v, "[%s] message '%s'", desc, msg);
            }
        }
    } else if (mode == 1) {
        if (st != WEFT_FUTURE_CANCELLED && st != WEFT_FUTURE_DONE) {
            note(v, "[%s] cancelled run ended %d (%s)", desc, (int)st,
                 weft_future_error(f));
        }
    } else if (mode == 2) {
        /* The cancel came while a stage function ran: the run cannot have
         * ended before. */
        if (st != WEFT_FUTURE_CANCELLED) {
            note(v, "[%s] cancel from stage %d at item %llu: ended %d (%s)",
                 desc, r->cancel_stage, (unsigned long long)r->cancel_seq,
                 (int)st, weft_future_error(f));
        }
    } else if (st != WEFT_FUTURE_DONE) {
        note(v, "[%s] plain run ended %d (%s)", desc, (int)st,
             weft_future_error(f));
    }
    if (st == WEFT_FUTURE_DONE &&
        (atomic_load(&r->dropped) != 0 || r->next_seq != r->n)) {
        note(v, "[%s] done with %llu drops, %llu of %llu items made", desc,
             (unsigned long long)atomic_load(&r->dropped),
             (unsigned long long)r->next_seq, (unsigned long long)r->n);
    }
}

/* Every item freed once, the counts add up, the stats agree. */
static void
check_items(run_t *r, weft_pipeline_t *p, const char *desc, verdict_t *v)
{
    uint64_t made = atomic_load(&r->next_id);
    for (uint64_t i = 0; i < made; i++) {
        if (atomic_load(&r->freed[i]) != 1) {
            note(v, "[%s] item %llu freed %d times", desc,
                 (unsigned long long)i, (int)atomic_load(&r->freed[i]));
            break;
        }
    }
    uint64_t gone = atomic_load(&r->sunk) + atomic_load(&r->dropped) +
                    atomic_load(&r->filtered) + atomic_load(&r->failed);
    if (made != gone) {
        note(v, "[%s] %llu items made, %llu sunk, dropped, filtered or failed",
             desc, (unsigned long long)made, (unsigned long long)gone);
    }
    /* Serial stages: one call at a time; parallel 3: three. */
    for (int i = 1; i <= r->nstages; i++) {
        int most = atomic_load(&r->st[i].conc.max);
        if (r->st[i].parallel != WEFT_STAGE_PARALLEL &&
            most > (int)r->st[i].parallel) {
            note(v, "[%s] stage %d: %d calls at once", desc, i, most);
        }
    }
    weft_pipeline_stats_t s;
    if (weft_pipeline_stats(p, &s) != WEFT_OK) {
        note(v, "[%s] stats failed", desc);
        return;
    }
    uint64_t dropped = 0;
    bool idle = s.finished && s.in_flight == 0;
    for (size_t i = 0; i < s.nstages; i++) {
        dropped += s.stage[i].dropped;
        idle = idle && s.stage[i].running == 0 && s.stage[i].buffered == 0;
    }
    if (!idle) {
        note(v,
             "[%s] stats after the end: finished %d, in flight %zu, or a "
             "stage running or buffering",
             desc, s.finished, s.in_flight);
    }
    if (dropped != atomic_load(&r->dropped)) {
        note(v, "[%s] stats count %llu drops, the drop functions %llu", desc,
             (unsigned long long)dropped,
             (unsigned long long)atomic_load(&r->dropped));
    }
    weft_pipeline_stats_free(&s);
}

/* One run; returns its outcome. mode 0: fail; 1: cancel from outside at
 * a random time; 2: cancel from inside a random stage (or the source) at
 * a random item; 3: neither. */
static weft_future_state_t
chaos_round(weft_executor_t *ex, uint64_t *rng, int mode)
{
    run_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    r->n = 50 + wt_rand(rng) % 3000;
    r->cap = (MAX_STAGES + 1) * r->n + 16; /* flat stages add items */
    r->freed = calloc(r->cap, sizeof(*r->freed));
    assert_non_null(r->freed);
    r->fail_stage = -1;
    r->cancel_stage = -1;
    size_t window = 1 + (size_t)(wt_rand(rng) % 48);
    weft_pipeline_t *p = wt_pipe_create(ex, "chaos", window);
    r->p = p;
    assert_int_equal(weft_pipeline_source(p, r_source, r), WEFT_OK);
    configure(r, rng, p);
    if (mode == 0) {
        /* A stage that is not a batch (whose message item is any of its
         * inputs), at an item that no filter drops. */
        do {
            r->fail_stage = (int)(wt_rand(rng) % (uint64_t)(r->nstages + 1));
        } while (r->fail_stage > 0 && r->st[r->fail_stage].kind == K_BATCH);
        do {
            r->fail_seq = wt_rand(rng) % r->n;
        } while (r->fail_seq % 7 == 3);
    } else if (mode == 2) {
        r->cancel_stage = (int)(wt_rand(rng) % (uint64_t)(r->nstages + 1));
        do {
            r->cancel_seq = wt_rand(rng) % r->n;
        } while (r->cancel_seq % 7 == 3);
    }
    weft_future_t *f = NULL;
    assert_int_equal(weft_pipeline_start(p, &f), WEFT_OK);
    if (mode == 1) {
        weft_time_t after = (weft_time_t)(wt_rand(rng) % 3000) * WEFT_USEC;
        (void)weft_sleep_for(after);
        weft_pipeline_cancel(p);
    }
    if (weft_future_wait_until(f, weft_deadline_in(FAR)) != WEFT_OK) {
        fail_msg("the future did not complete");
    }
    /* From here on, any call is one that started after the future
     * completed. (Set by this thread, not a done callback: the waiter may
     * wake before the callbacks have run.) Nothing is left alive. */
    atomic_store(&r->finished, 1);
    int64_t live = atomic_load(&r->live);
    weft_future_state_t st = weft_future_state(f);
    char desc[160];
    describe(r, window, mode, desc, sizeof(desc));
    verdict_t v;
    v.why[0] = '\0';
    if (live != 0) {
        note(&v, "[%s] %lld items alive when the future completed", desc,
             (long long)live);
    }
    const char *first_problem = NULL;
    int problems = wt_pipe_take_reports(&first_problem);
    if (problems != 0) {
        note(&v, "[%s] fail at stage %d item %llu: %d problem(s), first: %s",
             desc, r->fail_stage, (unsigned long long)r->fail_seq, problems,
             first_problem);
    }
    check_outcome(r, f, mode, desc, &v);
    check_items(r, p, desc, &v);
    /* Nothing starts later either. */
    (void)weft_sleep_for(200 * WEFT_USEC);
    if (atomic_load(&r->after_finish) != 0) {
        note(&v,
             "[%s] %d calls after the future completed (%d of the source, %d "
             "of drop functions)",
             desc, atomic_load(&r->after_finish),
             atomic_load(&r->after_finish_src),
             atomic_load(&r->after_finish_drop));
    }
    /* The stream ended: the source is not called again. */
    if (atomic_load(&r->source_calls_after_end) != 0) {
        note(&v,
             "[%s] source called %llu times after it returned "
             "WEFT_ECLOSED",
             desc, (unsigned long long)atomic_load(&r->source_calls_after_end));
    }
    weft_future_release(f);
    weft_pipeline_destroy(p);
    free((void *)r->freed);
    free(r);
    if (v.why[0] != '\0') {
        fail_msg("%s", v.why);
    }
    return st;
}

/* Start, cancel, destroy at once, thousands of times, with windows of 1..8
 * that the source fills (so it is often parked at a full window when the
 * cancel comes): destroy must wait until nothing touches the pipeline any
 * more (the sanitizer builds see any access after the free), and every
 * item is freed exactly once by then. */
typedef struct churn {
    _Atomic int64_t live;
    _Atomic uint64_t made, freed;
} churn_t;

static int
churn_source(void *ctx, void **item)
{
    churn_t *c = ctx;
    uint64_t *it = malloc(sizeof(*it));
    if (it == NULL) {
        return WEFT_ENOMEM;
    }
    *it = atomic_fetch_add(&c->made, 1);
    atomic_fetch_add(&c->live, 1);
    *item = it;
    return WEFT_OK;
}

static void
churn_free(churn_t *c, void *item)
{
    free(item);
    atomic_fetch_add(&c->freed, 1);
    atomic_fetch_sub(&c->live, 1);
}

static int
churn_sink(void *ctx, void *item, void **out)
{
    (void)out;
    churn_free(ctx, item);
    return WEFT_OK;
}

static int
churn_pass(void *ctx, void *item, void **out)
{
    (void)ctx;
    *out = item;
    return WEFT_OK;
}

static void
churn_drop(void *ctx, void *item)
{
    churn_free(ctx, item);
}

static void
test_cancel_destroy_churn(void **state)
{
    (void)state;
    uint64_t rng = wt_seed() ^ 0x5bd1e995u;
    size_t rounds = wt_size(3000 * WEFT_TEST_SLOW, 30000);
    weft_executor_t *ex = wt_pipe_pool("plstress", WORKERS);
    churn_t c;
    memset(&c, 0, sizeof(c));
    for (size_t i = 0; i < rounds; i++) {
        weft_pipeline_t *p = wt_pipe_create(ex, "churn", 1 + (size_t)(i % 8));
        assert_int_equal(weft_pipeline_source(p, churn_source, &c), WEFT_OK);
        if (i % 2 == 0) {
            weft_stage_t a =
                wt_pipe_map_stage(NULL, churn_pass, &c, WEFT_STAGE_PARALLEL);
            a.drop = churn_drop;
            wt_pipe_add(p, &a);
        }
        weft_stage_t k =
            wt_pipe_map_stage(NULL, churn_sink, &c, (unsigned)(i % 3));
        k.drop = churn_drop;
        wt_pipe_add(p, &k);
        assert_int_equal(weft_pipeline_start(p, NULL), WEFT_OK);
        uint64_t r = wt_rand(&rng) % 4;
        if (r > 0) {
            (void)weft_sleep_for((weft_time_t)(r * 20) * WEFT_USEC);
        }
        weft_pipeline_cancel(p);
        weft_pipeline_destroy(p);
        if (atomic_load(&c.live) != 0) {
            fail_msg("round %zu: %lld items alive after destroy", i,
                     (long long)atomic_load(&c.live));
        }
    }
    weft_executor_destroy(ex);
    assert_int_equal(atomic_load(&c.freed), atomic_load(&c.made));
    printf("%zu start-cancel-destroy rounds, %llu items\n", rounds,
           (unsigned long long)atomic_load(&c.made));
}

static void
test_fail_and_cancel(void **state)
{
    (void)state;
    uint64_t rng = wt_seed();
    size_t rounds = wt_size(1000, 10000);
    /* Static: reachable (not a leak) if a round fails the test. */
    static weft_executor_t *ex;
    ex = wt_pipe_pool("plstress", WORKERS);
    size_t outcome[5] = {0, 0, 0, 0, 0};
    weft_time_t t0 = weft_now();
    for (size_t i = 0; i < rounds; i++) {
        uint64_t m = wt_rand(&rng) % 20;
        int mode = m < 7 ? 0 : m < 12 ? 1 : m < 17 ? 2 : 3;
        outcome[chaos_round(ex, &rng, mode)]++;
    }
    printf("%zu runs in %.2f s: %zu done, %zu failed, %zu cancelled\n", rounds,
           (double)(weft_now() - t0) / (double)WEFT_SEC,
           outcome[WEFT_FUTURE_DONE], outcome[WEFT_FUTURE_FAILED],
           outcome[WEFT_FUTURE_CANCELLED]);
    weft_executor_destroy(ex);
    assert_true(outcome[WEFT_FUTURE_FAILED] > 0);
    assert_true(outcome[WEFT_FUTURE_CANCELLED] > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_million_ordered),
        cmocka_unit_test(test_million_unordered),
        cmocka_unit_test(test_limited_parallelism),
        cmocka_unit_test(test_concurrent_pipelines),
        cmocka_unit_test(test_bounded_memory),
        cmocka_unit_test(test_cancel_destroy_churn),
        cmocka_unit_test(test_fail_and_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
