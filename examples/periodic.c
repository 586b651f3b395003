/* SPDX-License-Identifier: MIT */
/*
 * Timers on a pool (Python: threading.Timer, and the loop people write
 * around it for periodic work). weft_pool_call_every runs a function every
 * 50 ms until its future is cancelled; a run that fails ends the series
 * with that failure. weft_pool_call_later runs a function once after a
 * delay, never early, and cancelling it before then means it never runs.
 * No thread polls: an idle worker sleeps until the earliest timer is due.
 * The counts are checked with a tolerance: timers are late under load.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include <weft/pool.h>

#include "example.h"

#define PERIOD (50 * WEFT_MSEC)

typedef struct ticker {
    atomic_int runs;
    int fail_on; /* the run that fails, 0 for none */
} ticker_t;

static void *
tick(void *arg)
{
    ticker_t *t = arg;
    int n = atomic_fetch_add(&t->runs, 1) + 1;
    if (n == t->fail_on) {
        return weft_task_fail(WEFT_EIO, "run %d: sensor unreachable", n);
    }
    return NULL;
}

static void
show_every(weft_executor_t *pool)
{
    static ticker_t t; /* must outlive any run: see the guide */
    weft_future_t *series;

    weft_time_t t0 = weft_now();
    EX_OK(weft_pool_call_every(pool, PERIOD, tick, &t, NULL, &series));
    EX_OK(weft_sleep_for(300 * WEFT_MSEC));
    bool cancelled = weft_future_cancel(series);
    int at_cancel = atomic_load(&t.runs);
    double ms = ex_seconds_since(t0) * 1e3;
    EX_OK(weft_future_wait(series));
    printf("call_every 50 ms, cancelled after %.0f ms: %d runs; the series "
           "future is %s\n",
           ms, at_cancel, weft_errname(weft_future_code(series)));
    weft_future_release(series);

    /* A run already under way when the cancel came may still finish; no
     * new run starts. */
    EX_OK(weft_sleep_for(3 * PERIOD));
    int later = atomic_load(&t.runs);
    printf("  150 ms after the cancel: %d runs\n", later);

    int most = (int)(ms / 50) + 1;
    EX_CHECK(cancelled, "cancelling a running series succeeds");
    EX_CHECK(at_cancel >= 2 && at_cancel <= most,
             "%d runs in %.0f ms (expected 2 to %d)", at_cancel, ms, most);
    EX_CHECK(later <= at_cancel + 1, "the series went on after the cancel");
}

static void
show_failing_series(weft_executor_t *pool)
{
    static ticker_t t = {0, 3};
    weft_future_t *series;

    EX_OK(weft_pool_call_every(pool, 20 * WEFT_MSEC, tick, &t, NULL, &series));
    int rc = weft_future_result(series, NULL); /* ends with the failure */
    printf("call_every whose third run fails: %s (%s) after %d runs\n",
           weft_errname(rc), weft_future_error(series), atomic_load(&t.runs));
    EX_CHECK(rc == WEFT_EIO, "the series carries the run's failure");
    EX_CHECK(atomic_load(&t.runs) == 3, "no run after the failing one");
    weft_future_release(series);
}

static void *
stamp(void *arg)
{
    weft_time_t *at = arg;
    *at = weft_now();
    return at;
}

static void
show_later(weft_executor_t *pool)
{
    static weft_time_t fired_at, never_at;
    weft_future_t *once, *cancelled;
    void *result;

    weft_time_t t0 = weft_now();
    EX_OK(weft_pool_call_later(pool, 100 * WEFT_MSEC, stamp, &fired_at, NULL,
                               &once));
    EX_OK(weft_pool_call_later(pool, 100 * WEFT_MSEC, stamp, &never_at, NULL,
                               &cancelled));
    bool was_pending = weft_future_cancel(cancelled);
    EX_OK(weft_future_result(once, &result));
    EX_OK(weft_sleep_for(100 * WEFT_MSEC)); /* well past the other's time */
    double delay = (double)(fired_at - t0) / (double)WEFT_MSEC;
    printf("call_later 100 ms: ran after %.1f ms; the one cancelled at once: "
           "%s, %s\n",
           delay, weft_errname(weft_future_code(cancelled)),
           never_at == 0 ? "never ran" : "RAN");
    EX_CHECK(result == &fired_at, "the future carries the result");
    EX_CHECK(delay >= 100 && delay < 2000, "ran after %.1f ms", delay);
    EX_CHECK(was_pending && never_at == 0,
             "a timer cancelled before it is due never runs");
    EX_CHECK(weft_future_state(cancelled) == WEFT_FUTURE_CANCELLED,
             "its future is CANCELLED");
    weft_future_release(once);
    weft_future_release(cancelled);
}

int
main(void)
{
    weft_executor_t *pool;

    EX_OK(weft_pool_create(NULL, &pool));
    show_every(pool);
    show_failing_series(pool);
    show_later(pool);
    weft_executor_destroy(pool);
    return 0;
}
