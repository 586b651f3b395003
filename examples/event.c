/* SPDX-License-Identifier: MIT */
/*
 * The event lesson: worker threads wait on a weft_event while main prepares
 * the data they need; one weft_event_set releases them all, and everything
 * main wrote before the set is visible to them. While they wait, the workers
 * use weft_event_wait_until to do something every 25 ms (Python's
 * `while not event.wait(timeout)`), and a wait nobody ends times out.
 */
#include <stdio.h>

#include <weft/weft.h>

#include "example.h"

#define WORKERS 3
#define TABLE_SIZE 1000

/* Written by main before the event is set, read by the workers after: plain
 * memory, ordered by the event (set releases, a successful wait acquires). */
static struct {
    long table[TABLE_SIZE];
    long total;
    weft_time_t set_at;
} data;

static weft_event_t ready = WEFT_EVENT_INIT;

typedef struct worker {
    unsigned timeouts; /* times the 25 ms wait ran out first */
    long total_seen;
    double latency_us; /* from main's set to this worker running */
} worker_t;

static void *
worker(void *arg)
{
    worker_t *w = arg;
    int rc;

    while ((rc = weft_event_wait_until(
                &ready, weft_deadline_in(25 * WEFT_MSEC))) == WEFT_ETIMEDOUT) {
        w->timeouts++; /* a heartbeat, a progress line, a check for work */
    }
    EX_OK(rc);
    w->latency_us = (double)(weft_now() - data.set_at) / (double)WEFT_USEC;
    for (int i = 0; i < TABLE_SIZE; i++) {
        w->total_seen += data.table[i];
    }
    return NULL;
}

static void
prepare_data(void)
{
    /* Slow on purpose: the workers time out a few times meanwhile. */
    EX_OK(weft_sleep_for(120 * WEFT_MSEC));
    for (int i = 0; i < TABLE_SIZE; i++) {
        data.table[i] = (long)i * i;
        data.total += data.table[i];
    }
}

static void
show_release(void)
{
    weft_thread_t *threads[WORKERS];
    worker_t workers[WORKERS] = {{0, 0, 0.0}};

    printf("%d workers wait for main to prepare a table of %d numbers:\n",
           WORKERS, TABLE_SIZE);
    ex_start_threads(threads, WORKERS, "waiter", worker, workers,
                     sizeof workers[0]);
    prepare_data();
    EX_CHECK(!weft_event_is_set(&ready), "nobody set the event yet");
    data.set_at = weft_now();
    weft_event_set(&ready);
    ex_join_threads(threads, WORKERS);
    for (int i = 0; i < WORKERS; i++) {
        printf("  waiter-%d: timed out %u times while waiting, then saw "
               "total %ld, %.0f us after the set\n",
               i, workers[i].timeouts, workers[i].total_seen,
               workers[i].latency_us);
        EX_CHECK(workers[i].total_seen == data.total,
                 "worker %d saw %ld, main wrote %ld", i, workers[i].total_seen,
                 data.total);
    }
    printf("  one set released all %d; each saw the finished table\n", WORKERS);
}

static void
show_timeout(void)
{
    weft_event_t never = WEFT_EVENT_INIT;

    printf("\nA wait with a deadline on an event nobody sets:\n");
    weft_time_t t0 = weft_now();
    weft_time_t deadline = weft_deadline_in(50 * WEFT_MSEC);
    int rc = weft_event_wait_until(&never, deadline);
    printf("  weft_event_wait_until(+50 ms): %s after %.1f ms\n",
           weft_errname(rc), ex_seconds_since(t0) * 1e3);
    EX_CHECK(rc == WEFT_ETIMEDOUT, "the wait must time out");
    EX_CHECK(weft_now() >= deadline, "a timed wait never ends early");

    /* A deadline already past polls: the answer comes at once. */
    rc = weft_event_wait_until(&ready, weft_deadline_in(0));
    printf("  the set event, polled:        %s\n", weft_errname(rc));
    EX_CHECK(rc == WEFT_OK, "a set event releases at once");
    weft_event_clear(&ready);
    rc = weft_event_wait_until(&ready, weft_deadline_in(0));
    printf("  after weft_event_clear:       %s\n", weft_errname(rc));
    EX_CHECK(rc == WEFT_ETIMEDOUT, "a cleared event blocks again");
    weft_event_fini(&never);
}

int
main(void)
{
    show_release();
    show_timeout();
    weft_event_fini(&ready);
    return 0;
}
