/* SPDX-License-Identifier: MIT */
/*
 * Python's as_completed and wait(FIRST_COMPLETED) in C. Eight jobs of
 * different lengths go to a pool; a completion queue (weft_cq_*) hands
 * their futures back in the order they finish, not the order they were
 * submitted, and each result is taken exactly once. One job fails like a
 * raised exception: its future carries the code and the message. Then
 * weft_future_wait_many returns as soon as the first of three futures is
 * done.
 *
 * The jobs sleep, so they are marked blocking and run on the pool's
 * blocking lane, all at once, instead of taking turns on the CPU workers.
 */
#include <stdbool.h>
#include <stdio.h>

#include <weft/future.h>
#include <weft/pool.h>

#include "example.h"

#define JOBS 8
#define FAILING_JOB 5

typedef struct job {
    int id;
    int ms;     /* how long it works */
    int answer; /* written by the task */
} job_t;

static job_t jobs[JOBS] = {
    {0, 400, 0}, {1, 100, 0}, {2, 300, 0}, {3, 50, 0},
    {4, 250, 0}, {5, 150, 0}, {6, 350, 0}, {7, 200, 0},
};

static void *
work(void *arg)
{
    job_t *j = arg;
    int rc = weft_sleep_for(j->ms * WEFT_MSEC);
    if (rc != WEFT_OK) {
        return weft_task_fail(rc, "job %d interrupted", j->id);
    }
    if (j->id == FAILING_JOB) {
        return weft_task_fail(WEFT_EIO, "job %d: disk on fire", j->id);
    }
    j->answer = j->id * j->id;
    return j; /* the future's result: borrowed memory, nothing to free */
}

static weft_future_t *
submit(weft_executor_t *pool, job_t *j)
{
    weft_task_opts_t opts = WEFT_TASK_OPTS_INIT;
    weft_future_t *f;

    opts.blocking = true; /* it sleeps: keep it off the CPU workers */
    opts.label = "job";
    /* weft_executor_submit, waiting until the task has started (see
     * example.h) */
    EX_OK(ex_submit_started(pool, work, j, &opts, &f));
    return f;
}

/* Take one finished future from the queue and check its outcome. */
static int
consume(weft_future_t *f, bool *seen)
{
    void *value = NULL;
    int rc = weft_future_result(f, &value); /* done already: no wait */

    EX_CHECK(weft_future_done(f), "the queue handed over a running future");
    if (rc != WEFT_OK) {
        printf("  failed:   %s (%s)\n", weft_errname(rc), weft_future_error(f));
        EX_CHECK(rc == WEFT_EIO, "only job %d fails", FAILING_JOB);
        EX_CHECK(!seen[FAILING_JOB], "job %d handed over twice", FAILING_JOB);
        seen[FAILING_JOB] = true;
        return FAILING_JOB;
    }
    job_t *j = value;
    printf("  finished: job %d after %3d ms -> %d\n", j->id, j->ms, j->answer);
    EX_CHECK(j->answer == j->id * j->id, "job %d: wrong answer", j->id);
    EX_CHECK(!seen[j->id], "job %d handed over twice", j->id);
    seen[j->id] = true;
    return j->id;
}

static void
show_as_completed(weft_executor_t *pool)
{
    weft_completion_queue_t *cq;
    weft_future_t *f;
    bool seen[JOBS] = {false};
    int order[JOBS], n = 0, rc;

    EX_OK(weft_cq_create(&cq));
    printf("Submitted in this order:");
    for (int i = 0; i < JOBS; i++) {
        printf(" %d", jobs[i].id);
        f = submit(pool, &jobs[i]);
        EX_OK(weft_cq_add(cq, f)); /* the queue keeps its own reference */
        weft_future_release(f);
    }
    printf("\n");
    /* Python: for f in as_completed(fs): ... */
    while ((rc = weft_cq_next(cq, &f)) == WEFT_OK) {
        EX_CHECK(n < JOBS, "more futures than jobs");
        order[n++] = consume(f, seen);
        weft_future_release(f); /* the reference handed over is ours */
    }
    EX_CHECK(rc == WEFT_ECLOSED, "cq_next ended with %s", weft_errname(rc));
    weft_cq_destroy(cq);

    printf("Completed in this order:");
    for (int i = 0; i < n; i++) {
        printf(" %d", order[i]);
    }
    printf("\n");
    EX_CHECK(n == JOBS, "%d of %d futures handed over", n, JOBS);
    for (int i = 0; i < JOBS; i++) {
        EX_CHECK(seen[i], "job %d never handed over", i);
    }
    /* 50 ms against 400 ms: the shortest job comes out long before the
     * longest, whatever the machine is doing. */
    int pos3 = 0, pos0 = 0;
    for (int i = 0; i < n; i++) {
        pos3 = order[i] == 3 ? i : pos3;
        pos0 = order[i] == 0 ? i : pos0;
    }
    EX_CHECK(pos3 < pos0, "the 50 ms job came out after the 400 ms job");
}

static void
show_first_completed(weft_executor_t *pool)
{
    job_t three[3] = {{10, 300, 0}, {11, 60, 0}, {12, 200, 0}};
    weft_future_t *fs[3];
    size_t index = 99;

    printf("\nwait_many over jobs of 300, 60 and 200 ms:\n");
    weft_time_t t0 = weft_now();
    for (int i = 0; i < 3; i++) {
        fs[i] = submit(pool, &three[i]);
    }
    int rc = weft_future_wait_many(fs, 3, WEFT_FIRST_COMPLETED,
                                   weft_deadline_in(10 * WEFT_MSEC), &index);
    printf("  FIRST_COMPLETED, 10 ms deadline: %s\n", weft_errname(rc));
    EX_CHECK(rc == WEFT_ETIMEDOUT, "nothing finishes within 10 ms");

    EX_OK(weft_future_wait_many(fs, 3, WEFT_FIRST_COMPLETED, WEFT_FOREVER,
                                &index));
    printf("  FIRST_COMPLETED: index %zu (the %d ms job) after %.0f ms; "
           "done: %d %d %d\n",
           index, three[index].ms, ex_seconds_since(t0) * 1e3,
           weft_future_done(fs[0]), weft_future_done(fs[1]),
           weft_future_done(fs[2]));
    EX_CHECK(index == 1, "the 60 ms job finishes first");
    EX_CHECK(weft_future_done(fs[1]), "the future it names is done");

    EX_OK(weft_future_wait_many(fs, 3, WEFT_ALL_COMPLETED, WEFT_FOREVER, NULL));
    printf("  ALL_COMPLETED after %.0f ms\n", ex_seconds_since(t0) * 1e3);
    for (int i = 0; i < 3; i++) {
        EX_CHECK(weft_future_state(fs[i]) == WEFT_FUTURE_DONE, "job %d",
                 three[i].id);
        weft_future_release(fs[i]);
    }
}

int
main(void)
{
    weft_executor_t *pool;

    EX_OK(weft_pool_create(NULL, &pool));
    show_as_completed(pool);
    show_first_completed(pool);
    weft_executor_destroy(pool);
    return 0;
}
