/* SPDX-License-Identifier: MIT */
/*
 * Items per second through weft's pipeline on a pool of 2 workers: a serial
 * source, two parallel stages and a serial in-order sink, with trivial
 * stages (a hash step) and small ones (~1 us each), at most
 * WORK_PIPE_IN_FLIGHT items in flight. The peers are in bench_tbb.cpp
 * (tbb::parallel_pipeline) and bench_baseline.c (a thread per stage and
 * mutex+condvar queues).
 */
#define _POSIX_C_SOURCE 200809L

#include <weft/pipeline.h>
#include <weft/pool.h>

#include "bench_util.h"
#include "bench_work.h"

/*
 * DESIGN
 * Items are the 64-bit values of bench_work.h carried in the item pointers
 * themselves (never 0, so never NULL): no allocation per item. The pool is
 * created once per work size and warmed up by a pipeline of WORK_PIPE_WARM
 * items; then a pipeline of n items is built (outside the clock) and the
 * clock covers weft_pipeline_run, which returns when the sink has taken
 * the last item. The sink's hash and count must equal work_pipe_expected.
 * The CPU time of the process over the same interval (the workers' and the
 * waiting caller's, spinning included) gives cpu_ns_per_item.
 */

_Static_assert(sizeof(uintptr_t) >= sizeof(uint64_t),
               "items are 64-bit values carried in pointers");

/* One pipeline run: the source's position, the sink's hash. */
typedef struct run {
    uint64_t n;
    uint64_t next; /* the source's next item */
    unsigned spins;
    uint64_t hash; /* the sink's */
    uint64_t count;
} run_t;

/* The context of a parallel stage. */
typedef struct stage_ctx {
    unsigned stage;
    unsigned spins;
} stage_ctx_t;

static int
source(void *ctx, void **item)
{
    run_t *r = ctx;

    if (r->next == r->n) {
        return WEFT_ECLOSED;
    }
    *item = (void *)(uintptr_t)work_pipe_source(r->next++);
    return WEFT_OK;
}

static int
middle(void *ctx, void *item, void **out)
{
    const stage_ctx_t *s = ctx;

    *out =
        (void *)(uintptr_t)work_pipe_stage((uintptr_t)item, s->stage, s->spins);
    return WEFT_OK;
}

static int
sink(void *ctx, void *item, void **out)
{
    run_t *r = ctx;
    uint64_t x = work_pipe_stage((uintptr_t)item, WORK_PIPE_C, r->spins);

    (void)out;
    r->hash = work_pipe_fold(r->hash, x);
    r->count++;
    return WEFT_OK;
}

static void
add_stage(weft_pipeline_t *p, const char *name, stage_ctx_t *ctx)
{
    weft_stage_t st = WEFT_STAGE_INIT;

    st.name = name;
    st.fn = middle;
    st.ctx = ctx;
    st.parallel = WEFT_STAGE_PARALLEL;
    bench_check_weft(weft_pipeline_stage(p, &st), "weft_pipeline_stage");
}

/* Runs n items through a new pipeline on ex; returns its times. */
static work_times_t
run_pipeline(weft_executor_t *ex, uint64_t n, unsigned spins)
{
    weft_pipeline_opts_t o = WEFT_PIPELINE_OPTS_INIT;
    weft_stage_t st = WEFT_STAGE_INIT;
    weft_pipeline_t *p = NULL;
    stage_ctx_t a = {WORK_PIPE_A, spins};
    stage_ctx_t b = {WORK_PIPE_B, spins};
    run_t r = {n, 0, spins, WORK_PIPE_HASH0, 0};

    o.name = "bench";
    o.executor = ex;
    o.max_in_flight = WORK_PIPE_IN_FLIGHT;
    bench_check_weft(weft_pipeline_create(&o, &p), "weft_pipeline_create");
    bench_check_weft(weft_pipeline_source(p, source, &r),
                     "weft_pipeline_source");
    add_stage(p, "A", &a);
    add_stage(p, "B", &b);
    st.name = "C";
    st.fn = sink;
    st.ctx = &r;
    st.ordered = true;
    bench_check_weft(weft_pipeline_stage(p, &st), "weft_pipeline_stage");

    work_times_t tm;
    work_times_start(&tm);
    int rc = weft_pipeline_run(p);
    work_times_stop(&tm);
    if (rc != WEFT_OK) {
        bench_fail("pipeline weft: %s: %s", weft_strerror(rc),
                   weft_pipeline_error(p));
    }
    weft_pipeline_destroy(p);
    uint64_t want = work_pipe_expected(n, spins);
    if (r.count != n || r.hash != want) {
        bench_fail("pipeline weft: the sink took %" PRIu64
                   " items, hash %#" PRIx64 ", expected %" PRIu64
                   " items, hash %#" PRIx64,
                   r.count, r.hash, n, want);
    }
    return tm;
}

static void
pipeline_bench(const work_pipe_kind_t *kind, uint64_t n)
{
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    weft_executor_t *ex = NULL;
    char params[64];

    o.name = "bench";
    o.workers = WORK_WORKERS;
    bench_check_weft(weft_pool_create(&o, &ex), "weft_pool_create");
    (void)run_pipeline(ex, n < WORK_PIPE_WARM ? n : WORK_PIPE_WARM,
                       kind->spins);
    work_times_t tm = run_pipeline(ex, n, kind->spins);
    weft_executor_destroy(ex);
    snprintf(params, sizeof(params), "work=%s,workers=%u,in_flight=%u",
             kind->name, WORK_WORKERS, WORK_PIPE_IN_FLIGHT);
    bench_result("pipeline", "weft", params, "items_per_s",
                 (double)n / tm.secs);
    bench_result("pipeline", "weft", params, "cpu_ns_per_item",
                 tm.cpu * 1e9 / (double)n);
}

int
main(int argc, char **argv)
{
    bench_args_t a = bench_parse_args(argc, argv, "ITEMS", 0);
    char name[32];
    int ran = 0;

    if (!bench_selected(&a, "weft")) {
        return 0;
    }
    for (unsigned k = 0; k < WORK_PIPE_KINDS; k++) {
        const work_pipe_kind_t *kind = work_pipe_kind(k);

        snprintf(name, sizeof(name), "pipeline-%s", kind->name);
        if (bench_wanted(&a, name) || bench_wanted(&a, "pipeline")) {
            pipeline_bench(kind, bench_size(&a, kind->default_n));
            ran++;
        }
    }
    if (ran == 0) {
        bench_fail("nothing to run: no benchmark %s", a.bench);
    }
    fprintf(stderr, "bench: a small stage's spin took %.3g ns here\n",
            work_spin_ns());
    return 0;
}
