/* SPDX-License-Identifier: MIT */
/*
 * Stopping a pipeline half-way, and accounting for every item.
 *
 * A source of a million numbers feeds a filter (drops multiples of 10), a
 * slow parallel stage (about 50 us per item) and an ordered sink. Main
 * cancels the pipeline about 100 ms after the first item reached the sink:
 * the source is not called again, the items waiting between stages go to
 * their stage's drop function, and the future completes CANCELLED once
 * nothing runs any more. Every item the source made is then in exactly one
 * place: it reached the sink, was filtered, or was dropped; the pipeline's
 * stats and the example's own counts agree exactly, and at most
 * max_in_flight items were dropped (the memory bound).
 *
 * A second run fails at item 1234 (the slow stage returns weft_stage_fail):
 * the pipeline's error names the stage and the item, and the ordered sink
 * never receives an item past the failed one.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/weft.h>

#include "example.h"

#define ITEMS 1000000u
#define WORK_NS (50 * WEFT_USEC)
#define MAX_IN_FLIGHT 32
#define FAIL_AT 1234u
#define NSTAGES 4 /* the source and three stages */

typedef struct item {
    uint64_t index;
    uint64_t value;
} item_t;

/* Where each item ended up, counted by the example itself. */
typedef struct ledger {
    uint64_t fail_at; /* UINT64_MAX: no failure */
    atomic_uint_least64_t made, sunk, filtered, failed;
    atomic_uint_least64_t dropped[NSTAGES]; /* by the stage's drop function */
    atomic_uint_least64_t saw_cancel; /* slow calls cut short by the cancel */
    /* The sink (serial): the next index it must receive, and how many it
     * received out of order or past the failed item. */
    uint64_t expect;
    uint64_t wrong;
} ledger_t;

/* A stage's ctx: which stage, and the ledger. */
typedef struct stage_ctx {
    ledger_t *ledger;
    int stage;
} stage_ctx_t;

static bool
filtered_out(uint64_t index)
{
    return index % 10 == 0;
}

static int
make_item(void *ctx, void **out)
{
    ledger_t *l = ctx;
    uint64_t i = atomic_load(&l->made); /* one caller at a time */
    item_t *it;

    if (i == ITEMS) {
        return WEFT_ECLOSED;
    }
    it = malloc(sizeof *it);
    if (it == NULL) {
        return weft_stage_fail(WEFT_ENOMEM, "no memory for item %llu",
                               (unsigned long long)i);
    }
    it->index = i;
    it->value = i;
    atomic_store(&l->made, i + 1);
    *out = it;
    return WEFT_OK;
}

/* Stage 1, parallel: drop the multiples of 10 (a filter frees what it
 * drops). */
static int
sieve(void *ctx, void *item, void **out)
{
    stage_ctx_t *sc = ctx;
    item_t *it = item;

    if (filtered_out(it->index)) {
        free(it);
        atomic_fetch_add(&sc->ledger->filtered, 1);
        return WEFT_PIPELINE_DROP;
    }
    *out = it;
    return WEFT_OK;
}

/* Stage 2, parallel: about 50 us of CPU per item, cut short when the
 * pipeline is cancelled (its result is then discarded anyway). */
static int
slow_work(void *ctx, void *item, void **out)
{
    stage_ctx_t *sc = ctx;
    item_t *it = item;
    weft_time_t until = weft_now() + WORK_NS;
    uint64_t x = it->value | 1;

    if (it->index == sc->ledger->fail_at) {
        unsigned long long index = it->index;
        free(it); /* a failing stage disposes of its item */
        atomic_fetch_add(&sc->ledger->failed, 1);
        return weft_stage_fail(WEFT_ERANGE, "value %llu is out of range",
                               index);
    }
    while (weft_now() < until) {
        if (weft_cancelled()) {
            atomic_fetch_add(&sc->ledger->saw_cancel, 1);
            break;
        }
        for (int k = 0; k < 64; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    }
    it->value = x;
    *out = it;
    return WEFT_OK;
}

/* The sink, serial and ordered: the items arrive in source order, minus the
 * filtered ones. */
static int
sink(void *ctx, void *item, void **out)
{
    ledger_t *l = ((stage_ctx_t *)ctx)->ledger;
    item_t *it = item;

    (void)out;
    while (filtered_out(l->expect)) {
        l->expect++;
    }
    l->wrong += it->index != l->expect || it->index >= l->fail_at;
    l->expect = it->index + 1;
    free(it);
    atomic_fetch_add(&l->sunk, 1);
    return WEFT_OK;
}

static void
drop_item(void *ctx, void *item)
{
    stage_ctx_t *sc = ctx;

    free(item);
    atomic_fetch_add(&sc->ledger->dropped[sc->stage], 1);
}

/* ---------------------------------------------------------------------- */

static weft_pipeline_t *
build(weft_executor_t *pool, ledger_t *l, stage_ctx_t sc[NSTAGES])
{
    static const char *const names[NSTAGES] = {NULL, "sieve", "work", "sum"};
    weft_stage_fn fns[NSTAGES] = {NULL, sieve, slow_work, sink};
    weft_pipeline_opts_t opts = WEFT_PIPELINE_OPTS_INIT;
    weft_pipeline_t *p;

    opts.name = "numbers";
    opts.executor = pool;
    opts.max_in_flight = MAX_IN_FLIGHT;
    EX_OK(weft_pipeline_create(&opts, &p));
    EX_OK(weft_pipeline_source(p, make_item, l));
    for (int i = 1; i < NSTAGES; i++) {
        weft_stage_t st = WEFT_STAGE_INIT;
        sc[i].ledger = l;
        sc[i].stage = i;
        st.name = names[i];
        st.fn = fns[i];
        st.ctx = &sc[i];
        st.drop = drop_item;
        st.parallel = i < NSTAGES - 1 ? WEFT_STAGE_PARALLEL : 1;
        st.ordered = i == NSTAGES - 1;
        EX_OK(weft_pipeline_stage(p, &st));
    }
    return p;
}

/* Print the stats and check them against the ledger: every item made is
 * in exactly one place. Returns the items dropped. */
static uint64_t
account(const weft_pipeline_t *p, const ledger_t *l)
{
    weft_pipeline_stats_t s;
    uint64_t dropped = 0, filtered = 0, mine = 0;

    EX_OK(weft_pipeline_stats(p, &s));
    EX_CHECK(s.finished && s.in_flight == 0 && s.nstages == NSTAGES,
             "stats: finished %d, %zu in flight, %zu stages", s.finished,
             s.in_flight, s.nstages);
    printf("  %-8s %10s %10s %9s %8s\n", "stage", "items in", "items out",
           "filtered", "dropped");
    for (size_t i = 0; i < s.nstages; i++) {
        const weft_stage_stats_t *st = &s.stage[i];
        char out[24];

        snprintf(out, sizeof out, "%llu", (unsigned long long)st->items_out);
        printf("  %-8s %10llu %10s %9llu %8llu\n", st->name,
               (unsigned long long)st->items_in,
               i == s.nstages - 1 ? "(sink)" : out,
               (unsigned long long)st->filtered,
               (unsigned long long)st->dropped);
        EX_CHECK(st->dropped == atomic_load(&l->dropped[i]),
                 "stage %s: stats say %llu dropped, its drop function ran "
                 "%llu times",
                 st->name, (unsigned long long)st->dropped,
                 (unsigned long long)atomic_load(&l->dropped[i]));
        dropped += st->dropped;
        filtered += st->filtered;
        mine += atomic_load(&l->dropped[i]);
    }
    uint64_t made = atomic_load(&l->made), sunk = atomic_load(&l->sunk);
    uint64_t failed = atomic_load(&l->failed);
    const weft_stage_stats_t *last = &s.stage[s.nstages - 1];
    printf("  made %llu = reached the sink %llu + filtered %llu + dropped "
           "%llu + failed %llu\n",
           (unsigned long long)made, (unsigned long long)sunk,
           (unsigned long long)filtered, (unsigned long long)dropped,
           (unsigned long long)failed);
    EX_CHECK(s.stage[0].items_in == made && last->items_in == sunk &&
                 filtered == atomic_load(&l->filtered),
             "the stats disagree with the counts: made %llu/%llu, sunk "
             "%llu/%llu, filtered %llu/%llu",
             (unsigned long long)s.stage[0].items_in, (unsigned long long)made,
             (unsigned long long)last->items_in, (unsigned long long)sunk,
             (unsigned long long)filtered,
             (unsigned long long)atomic_load(&l->filtered));
    EX_CHECK(made == sunk + filtered + dropped + failed && mine == dropped,
             "items unaccounted for");
    EX_CHECK(dropped <= MAX_IN_FLIGHT,
             "%llu dropped, more than the %d in "
             "flight",
             (unsigned long long)dropped, MAX_IN_FLIGHT);
    EX_CHECK(l->wrong == 0,
             "the ordered sink received %llu items out of order or past the "
             "failure",
             (unsigned long long)l->wrong);
    weft_pipeline_stats_free(&s);
    return dropped;
}

static void
run_cancelled(weft_executor_t *pool)
{
    ledger_t l = {.fail_at = UINT64_MAX};
    stage_ctx_t sc[NSTAGES];
    weft_pipeline_t *p = build(pool, &l, sc);
    weft_future_t *f;

    printf("A source of %u items -> sieve -> work (~50 us each) -> sum "
           "(ordered), max_in_flight %d; cancelled after ~100 ms:\n",
           ITEMS, MAX_IN_FLIGHT);
    EX_OK(weft_pipeline_start(p, &f));
    weft_time_t give_up = weft_deadline_in(30 * WEFT_SEC);
    while (atomic_load(&l.sunk) == 0 && weft_now() < give_up) {
        EX_OK(weft_sleep_for(WEFT_MSEC));
    }
    EX_CHECK(atomic_load(&l.sunk) > 0, "no item reached the sink in 30 s");
    EX_OK(weft_sleep_for(100 * WEFT_MSEC));
    weft_time_t t0 = weft_now();
    weft_pipeline_cancel(p);
    weft_pipeline_cancel(p); /* idempotent */
    EX_OK(weft_future_wait(f));
    double ms = ex_seconds_since(t0) * 1e3;

    printf("  the future is %s (%s) %.1f ms after the cancel; %llu slow "
           "calls saw weft_cancelled()\n",
           weft_future_state(f) == WEFT_FUTURE_CANCELLED ? "CANCELLED"
                                                         : "not cancelled",
           weft_errname(weft_future_code(f)), ms,
           (unsigned long long)atomic_load(&l.saw_cancel));
    EX_CHECK(weft_future_state(f) == WEFT_FUTURE_CANCELLED &&
                 weft_future_code(f) == WEFT_ECANCELED,
             "the future is not CANCELLED");
    EX_CHECK(atomic_load(&l.made) < ITEMS, "the source ran to its end");
    account(p, &l);
    weft_future_release(f);
    weft_pipeline_destroy(p);
}

static void
run_failing(weft_executor_t *pool)
{
    ledger_t l = {.fail_at = FAIL_AT};
    stage_ctx_t sc[NSTAGES];
    weft_pipeline_t *p = build(pool, &l, sc);
    char want[160];

    printf("\nThe same pipeline, with 'work' failing at item %u:\n", FAIL_AT);
    int rc = weft_pipeline_run(p);
    printf("  weft_pipeline_run: %s\n  weft_pipeline_error: \"%s\"\n",
           weft_errname(rc), weft_pipeline_error(p));
    snprintf(want, sizeof want,
             "numbers: stage 'work' item %u: value %u is out of range", FAIL_AT,
             FAIL_AT);
    EX_CHECK(rc == WEFT_ERANGE, "the pipeline returned %s, not WEFT_ERANGE",
             weft_errname(rc));
    EX_CHECK(strcmp(weft_pipeline_error(p), want) == 0,
             "the error should read \"%s\"", want);
    EX_CHECK(atomic_load(&l.failed) == 1,
             "the failing item was seen %llu "
             "times",
             (unsigned long long)atomic_load(&l.failed));
    account(p, &l);
    printf("  the ordered sink received %llu items, all before item %u\n",
           (unsigned long long)atomic_load(&l.sunk), FAIL_AT);
    weft_pipeline_destroy(p);
}

int
main(void)
{
    weft_executor_t *pool;

    EX_OK(weft_pool_create(NULL, &pool));
    run_cancelled(pool);
    run_failing(pool);
    weft_executor_destroy(pool);
    return 0;
}
