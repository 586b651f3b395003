/* SPDX-License-Identifier: MIT */
/*
 * Structured concurrency (Python's asyncio.TaskGroup, Go's errgroup): a
 * scope owns a set of tasks and weft_scope_wait waits for all of them. The
 * first task to fail cancels its siblings: two are blocked in
 * weft_event_wait on an event nobody will set, and return WEFT_ECANCELED
 * from it; one computes in a loop and stops when weft_cancelled() turns
 * true. weft_scope_wait returns the failure's code, weft_scope_error its
 * message. Then a scope with a deadline: when it passes, the scope cancels
 * what is still running and its wait returns WEFT_ETIMEDOUT.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include <weft/pool.h>
#include <weft/scope.h>

#include "example.h"

static weft_event_t never = WEFT_EVENT_INIT; /* nobody sets it */
static atomic_int waiters_cancelled;
static atomic_long loops; /* rounds the computing task did */

/* Waits for something that does not come; ends when cancelled. */
static void *
wait_forever(void *arg)
{
    (void)arg;
    int rc = weft_event_wait(&never);
    if (rc == WEFT_ECANCELED) {
        atomic_fetch_add(&waiters_cancelled, 1);
    }
    return weft_task_fail(rc, "waiting for the event: %s", weft_strerror(rc));
}

/* Computes in slices and polls weft_cancelled() between them. */
static void *
compute(void *arg)
{
    volatile double x = 1.0;
    (void)arg;
    while (!weft_cancelled()) {
        for (int i = 0; i < 10000; i++) {
            x = x * 1.0000001 + 1e-9;
        }
        atomic_fetch_add(&loops, 1);
    }
    return weft_task_fail(WEFT_ECANCELED, "stopped after %ld rounds",
                          atomic_load(&loops));
}

/* Works 50 ms, then fails like a raised exception. */
static void *
fail_soon(void *arg)
{
    const char *path = arg;
    int rc = weft_sleep_for(50 * WEFT_MSEC);
    if (rc != WEFT_OK) {
        return weft_task_fail(rc, "interrupted");
    }
    return weft_task_fail(WEFT_EIO, "cannot read %s", path);
}

/* weft_scope_submit(s, pool, fn, arg, &opts, out) is a submit with
 * opts.scope = s; this one also waits until the task has started (see
 * ex_submit_started in example.h), so the siblings are running when the
 * failure cancels them. Blocking tasks go on the blocking
 * lane, the others on a CPU worker. */
static weft_future_t *
submit(weft_scope_t *s, weft_executor_t *pool, weft_task_fn fn, void *arg,
       bool blocking)
{
    weft_task_opts_t opts = WEFT_TASK_OPTS_INIT;
    weft_future_t *f;

    opts.scope = s;
    opts.blocking = blocking;
    EX_OK(ex_submit_started(pool, fn, arg, &opts, &f));
    return f;
}

static void
show_first_failure(weft_executor_t *pool)
{
    weft_scope_t *s;

    EX_OK(weft_scope_create(WEFT_FOREVER, &s));
    weft_future_t *w1 = submit(s, pool, wait_forever, NULL, true);
    weft_future_t *w2 = submit(s, pool, wait_forever, NULL, true);
    weft_future_t *c = submit(s, pool, compute, NULL, false);
    weft_future_t *f = submit(s, pool, fail_soon, "/data/input.csv", true);
    printf("A scope of four tasks: two wait on an event, one computes, one "
           "fails after 50 ms.\n");

    weft_time_t t0 = weft_now();
    int rc = weft_scope_wait(s);
    printf("  weft_scope_wait returned %s after %.0f ms: \"%s\"\n",
           weft_errname(rc), ex_seconds_since(t0) * 1e3, weft_scope_error(s));
    printf("  waiter 1: %s (%s)\n", weft_errname(weft_future_code(w1)),
           weft_future_error(w1));
    printf("  waiter 2: %s (%s)\n", weft_errname(weft_future_code(w2)),
           weft_future_error(w2));
    printf("  computer: %s (%s)\n", weft_errname(weft_future_code(c)),
           weft_future_error(c));
    EX_CHECK(rc == WEFT_EIO, "the scope reports the first failure");
    EX_CHECK(strcmp(weft_scope_error(s), "cannot read /data/input.csv") == 0,
             "the scope keeps the failure's message");
    EX_CHECK(weft_future_code(f) == WEFT_EIO, "the failing task's future");
    EX_CHECK(atomic_load(&waiters_cancelled) == 2,
             "both waiters saw WEFT_ECANCELED");
    EX_CHECK(weft_future_code(w1) == WEFT_ECANCELED &&
                 weft_future_code(w2) == WEFT_ECANCELED &&
                 weft_future_code(c) == WEFT_ECANCELED,
             "the siblings end cancelled");

    /* The scope is cancelled now: new tasks are refused, never run. */
    rc = weft_scope_submit(s, pool, compute, NULL, NULL, NULL);
    printf("  a submit to the cancelled scope: %s\n", weft_errname(rc));
    EX_CHECK(rc == WEFT_ECANCELED, "a cancelled scope takes no new task");

    weft_future_release(w1);
    weft_future_release(w2);
    weft_future_release(c);
    weft_future_release(f);
    weft_scope_destroy(s);
}

static void *
quick(void *arg)
{
    (void)arg;
    return weft_sleep_for(10 * WEFT_MSEC) == WEFT_OK ? (void *)"done" : NULL;
}

static void *
slow(void *arg)
{
    (void)arg;
    int rc = weft_sleep_for(10 * WEFT_SEC); /* ends early when cancelled */
    return rc == WEFT_OK ? (void *)"done" : weft_task_fail(rc, "slow task");
}

static void
show_deadline(weft_executor_t *pool)
{
    weft_scope_t *s;

    weft_time_t t0 = weft_now();
    EX_OK(weft_scope_create(weft_deadline_in(100 * WEFT_MSEC), &s));
    weft_future_t *q = submit(s, pool, quick, NULL, true);
    weft_future_t *sl = submit(s, pool, slow, NULL, true);
    printf("\nA scope with a 100 ms deadline: a 10 ms task and a 10 s "
           "task.\n");

    int rc = weft_scope_wait(s);
    double ms = ex_seconds_since(t0) * 1e3;
    printf("  weft_scope_wait returned %s after %.0f ms: \"%s\"\n",
           weft_errname(rc), ms, weft_scope_error(s));
    printf("  10 ms task: %s; 10 s task: %s\n",
           weft_errname(weft_future_code(q)),
           weft_errname(weft_future_code(sl)));
    EX_CHECK(rc == WEFT_ETIMEDOUT, "the deadline cancels the scope");
    EX_CHECK(ms >= 100 && ms < 5000, "the wait took %.0f ms", ms);
    EX_CHECK(weft_future_code(q) == WEFT_OK, "the quick task finished");
    EX_CHECK(weft_future_code(sl) == WEFT_ECANCELED, "the slow task stopped");
    weft_future_release(q);
    weft_future_release(sl);
    weft_scope_destroy(s);
}

int
main(void)
{
    weft_executor_t *pool;

    EX_OK(weft_pool_create(NULL, &pool));
    show_first_failure(pool);
    show_deadline(pool);
    weft_executor_destroy(pool);
    return 0;
}
