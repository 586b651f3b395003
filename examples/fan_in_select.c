/* SPDX-License-Identifier: MIT */
/*
 * Fan-out and fan-in with weft_select, Go's select over queues. A
 * dispatcher hands work items to 4 workers of different latency (worker i
 * takes 2^i ms per item, like a call to a slower service), each
 * with its own small work queue: one select over the 4 PUT cases puts each
 * item wherever there is room first, so the faster workers get more. Each
 * worker puts its results on its own result queue and closes it when done; a
 * collector selects over the 4 result queues (GET cases) until every one is
 * closed and drained, disabling each as it fires WEFT_ECLOSED. The program
 * checks that every item came back exactly once with the right result.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft/weft.h>

#include "example.h"

#define WORKERS 4
/* Workers wait 1, 2, 4 and 8 ms per item: long enough that they, not the
 * dispatcher, are the bottleneck, also under sanitizers on a busy machine
 * (the work then goes where the room is). */
#define ITEMS (EX_SANITIZED ? 400u : 1000u)
#define LATENCY WEFT_MSEC
#define WORK_CAP 4
#define RESULT_CAP 4

typedef struct result {
    uint64_t item;
    uint64_t value;
} result_t;

typedef struct worker {
    size_t id;
    weft_time_t latency; /* per item: LATENCY << id */
    weft_queue_t *work;
    weft_queue_t *results;
} worker_t;

/* The work: a little arithmetic on the item. */
static uint64_t
compute(uint64_t item)
{
    uint64_t h = item;
    for (unsigned r = 0; r < 200u; r++) {
        h = h * 6364136223846793005u + 1442695040888963407u;
    }
    return h;
}

static void *
worker_main(void *arg)
{
    worker_t *w = arg;
    uint64_t item;
    int rc;
    while ((rc = weft_queue_get(w->work, &item)) == WEFT_OK) {
        /* Every worker computes the same result, after its own wait. */
        EX_OK(weft_sleep_for(w->latency));
        result_t r = {item, compute(item)};
        EX_OK(weft_queue_put(w->results, &r));
    }
    EX_CHECK(rc == WEFT_ECLOSED, "worker %zu: get ended with %s", w->id,
             weft_errname(rc));
    weft_queue_close(w->results); /* fan-in: "this worker is done" */
    return NULL;
}

typedef struct dispatch {
    worker_t *workers;
    uint64_t sent[WORKERS]; /* items given to each worker */
    uint64_t no_room;       /* times every work queue was full */
} dispatch_t;

static void *
dispatcher_main(void *arg)
{
    dispatch_t *d = arg;
    uint64_t item = 0;
    weft_select_case_t cases[WORKERS];
    for (size_t i = 0; i < WORKERS; i++) {
        cases[i] =
            (weft_select_case_t){d->workers[i].work, WEFT_SELECT_PUT, &item};
    }
    for (item = 0; item < ITEMS; item++) {
        size_t i;
        int rc = weft_try_select(cases, WORKERS, &i);
        if (rc == WEFT_EAGAIN) {
            d->no_room++; /* backpressure: wait for the first free worker */
            rc = weft_select(cases, WORKERS, WEFT_FOREVER, &i);
        }
        EX_OK(rc);
        d->sent[i]++;
    }
    for (size_t i = 0; i < WORKERS; i++) {
        weft_queue_close(d->workers[i].work);
    }
    return NULL;
}

static weft_queue_t *
new_queue(size_t cap, size_t elem_size)
{
    weft_queue_opts_t o = WEFT_QUEUE_OPTS_INIT;
    o.capacity = cap;
    o.elem_size = elem_size;
    weft_queue_t *q;
    EX_OK(weft_queue_create(&o, &q));
    return q;
}

int
main(void)
{
    worker_t workers[WORKERS];
    for (size_t i = 0; i < WORKERS; i++) {
        workers[i] =
            (worker_t){i, LATENCY << i, new_queue(WORK_CAP, sizeof(uint64_t)),
                       new_queue(RESULT_CAP, sizeof(result_t))};
    }
    printf("A dispatcher fans %u items out to %d workers (worker i takes "
           "2^i ms per item)\nwith a select over their work queues; a "
           "collector "
           "fans the results in\nwith a select over their result queues.\n",
           ITEMS, WORKERS);

    weft_time_t t0 = weft_now();
    weft_thread_t *wt[WORKERS];
    weft_thread_t *dt;
    dispatch_t d = {.workers = workers};
    ex_start_threads(wt, WORKERS, "worker", worker_main, workers,
                     sizeof(worker_t));
    ex_start_threads(&dt, 1, "dispatcher", dispatcher_main, &d, 0);

    /* The collector: GET cases on every result queue until all closed. */
    uint8_t *seen = calloc(ITEMS, 1);
    EX_CHECK(seen != NULL, "out of memory");
    result_t r;
    weft_select_case_t cases[WORKERS];
    for (size_t i = 0; i < WORKERS; i++) {
        cases[i] =
            (weft_select_case_t){workers[i].results, WEFT_SELECT_GET, &r};
    }
    uint64_t got[WORKERS] = {0};
    uint64_t total = 0, wrong = 0, twice = 0;
    size_t closed = 0;
    for (;;) {
        size_t i;
        int rc = weft_select(cases, WORKERS, WEFT_FOREVER, &i);
        if (rc == WEFT_ECLOSED && i == SIZE_MAX) {
            break; /* every case disabled: all workers done */
        }
        if (rc == WEFT_ECLOSED) {
            cases[i].q = NULL; /* like a nil channel: never chosen again */
            closed++;
            continue;
        }
        EX_OK(rc);
        EX_CHECK(r.item < ITEMS, "result for unknown item %llu",
                 (unsigned long long)r.item);
        twice += seen[r.item]++ != 0;
        wrong += r.value != compute(r.item);
        got[i]++;
        total++;
    }
    ex_join_threads(&dt, 1);
    ex_join_threads(wt, WORKERS);
    double secs = ex_seconds_since(t0);

    printf("  %-8s %10s %10s\n", "worker", "sent", "collected");
    for (size_t i = 0; i < WORKERS; i++) {
        printf("  %-8zu %10llu %10llu\n", i, (unsigned long long)d.sent[i],
               (unsigned long long)got[i]);
    }
    printf("  %llu results in %.3f s; the dispatcher found every worker busy "
           "%llu times and waited;\n  the collector saw %zu result queues "
           "close, then select returned WEFT_ECLOSED\n  with index "
           "SIZE_MAX: nothing left to wait for\n",
           (unsigned long long)total, secs, (unsigned long long)d.no_room,
           closed);

    EX_CHECK(total == ITEMS, "collected %llu of %u results",
             (unsigned long long)total, ITEMS);
    EX_CHECK(twice == 0 && wrong == 0, "%llu duplicate, %llu wrong results",
             (unsigned long long)twice, (unsigned long long)wrong);
    EX_CHECK(closed == WORKERS, "%zu result queues closed", closed);
    uint64_t sent = 0;
    for (size_t i = 0; i < WORKERS; i++) {
        EX_CHECK(d.sent[i] == got[i], "worker %zu: sent %llu, collected %llu",
                 i, (unsigned long long)d.sent[i], (unsigned long long)got[i]);
        sent += d.sent[i];
        weft_queue_destroy(workers[i].work);
        weft_queue_destroy(workers[i].results);
    }
    EX_CHECK(sent == ITEMS, "sent %llu of %u", (unsigned long long)sent, ITEMS);
    /* Work went where there was room: the fastest worker did more than the
     * slowest (about eight times as much). */
    EX_CHECK(d.sent[0] > d.sent[WORKERS - 1],
             "fastest worker got %llu items, slowest %llu",
             (unsigned long long)d.sent[0],
             (unsigned long long)d.sent[WORKERS - 1]);
    free(seen);
    return 0;
}
