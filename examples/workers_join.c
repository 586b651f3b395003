/* SPDX-License-Identifier: MIT */
/*
 * The worker-pool lesson of Python's queue module: several producers put jobs
 * on one queue, several consumer threads take them, and each consumer calls
 * weft_queue_task_done when a job is finished. Main waits with
 * weft_queue_join until every job ever put is done, then closes the queue so
 * the consumers stop. The totals are checked exactly.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include <weft/weft.h>

#include "example.h"

#define PRODUCERS 3
#define CONSUMERS 3
#define PER_PRODUCER (EX_SANITIZED ? 5000u : 20000u)
#define TOTAL ((uint64_t)PRODUCERS * PER_PRODUCER)

typedef struct job {
    uint32_t producer;
    uint32_t seq; /* 0, 1, 2 ... per producer */
    uint64_t value;
} job_t;

typedef struct consumer {
    uint64_t jobs;
    uint64_t sum;
    uint64_t order_errors; /* a producer's jobs seen out of sequence */
} consumer_t;

static weft_queue_t *jobs;

/* Jobs finished, counted just before each task_done. */
static atomic_uint_least64_t processed;

static uint64_t
job_value(uint32_t producer, uint32_t seq)
{
    return (uint64_t)producer * 1000003u + (uint64_t)seq * seq;
}

static void *
produce(void *arg)
{
    uint32_t id = *(uint32_t *)arg;

    for (uint32_t i = 0; i < PER_PRODUCER; i++) {
        job_t j = {id, i, job_value(id, i)};
        EX_OK(weft_queue_put(jobs, &j));
    }
    return NULL;
}

static void *
consume(void *arg)
{
    consumer_t *c = arg;
    int64_t last[PRODUCERS];
    job_t j;
    int rc;

    for (int p = 0; p < PRODUCERS; p++) {
        last[p] = -1;
    }
    while ((rc = weft_queue_get(jobs, &j)) == WEFT_OK) {
        EX_CHECK(j.producer < PRODUCERS, "bad job from producer %u",
                 j.producer);
        /* One producer's jobs come out in the order it put them. */
        if ((int64_t)j.seq <= last[j.producer]) {
            c->order_errors++;
        }
        last[j.producer] = j.seq;
        c->sum += j.value;
        c->jobs++;
        atomic_fetch_add(&processed, 1);
        EX_OK(weft_queue_task_done(jobs));
    }
    EX_CHECK(rc == WEFT_ECLOSED, "get ended with %s", weft_errname(rc));
    return NULL;
}

static uint64_t
expected_sum(void)
{
    uint64_t sum = 0;
    for (uint32_t p = 0; p < PRODUCERS; p++) {
        for (uint32_t i = 0; i < PER_PRODUCER; i++) {
            sum += job_value(p, i);
        }
    }
    return sum;
}

static void
check_totals(const consumer_t *cons, double secs)
{
    uint64_t n = 0, sum = 0, order_errors = 0;

    for (int i = 0; i < CONSUMERS; i++) {
        printf("  consumer-%d did %llu jobs\n", i,
               (unsigned long long)cons[i].jobs);
        n += cons[i].jobs;
        sum += cons[i].sum;
        order_errors += cons[i].order_errors;
    }
    printf("  %llu jobs in all, sum %llu, %llu out of order, %.3f s (%.2f M "
           "jobs/s)\n",
           (unsigned long long)n, (unsigned long long)sum,
           (unsigned long long)order_errors, secs, (double)n / secs / 1e6);
    EX_CHECK(n == TOTAL, "%llu jobs done, %llu put", (unsigned long long)n,
             (unsigned long long)TOTAL);
    EX_CHECK(sum == expected_sum(), "the sum differs from what was put");
    EX_CHECK(order_errors == 0, "a producer's jobs came out of order");
}

int
main(void)
{
    weft_queue_opts_t opts = WEFT_QUEUE_OPTS_INIT;
    weft_thread_t *prod[PRODUCERS], *cons[CONSUMERS];
    uint32_t ids[PRODUCERS];
    consumer_t stats[CONSUMERS] = {{0, 0, 0}};

    opts.capacity = 64;
    opts.elem_size = sizeof(job_t);
    opts.name = "jobs";
    EX_OK(weft_queue_create(&opts, &jobs));
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        ids[i] = i;
    }
    printf("%d producers put %u jobs each on a queue of 64; %d consumers do "
           "them.\n",
           PRODUCERS, PER_PRODUCER, CONSUMERS);

    weft_time_t t0 = weft_now();
    ex_start_threads(cons, CONSUMERS, "consumer", consume, stats,
                     sizeof stats[0]);
    ex_start_threads(prod, PRODUCERS, "producer", produce, ids, sizeof ids[0]);
    ex_join_threads(prod, PRODUCERS);
    /* Every job is put; join waits until each one is also done. */
    EX_OK(weft_queue_join(jobs));
    uint64_t done_at_join = atomic_load(&processed);
    printf("  weft_queue_join returned with %llu of %llu jobs done\n",
           (unsigned long long)done_at_join, (unsigned long long)TOTAL);
    EX_CHECK(done_at_join == TOTAL, "join returned before every task_done");

    /* The consumers are idle in get: closing ends them (no sentinels). */
    weft_queue_close(jobs);
    ex_join_threads(cons, CONSUMERS);
    check_totals(stats, ex_seconds_since(t0));

    int rc = weft_queue_task_done(jobs);
    printf("  one task_done too many: %s (%s)\n", weft_errname(rc),
           weft_strerror(rc));
    EX_CHECK(rc == WEFT_ERANGE, "an extra task_done must fail");
    weft_queue_destroy(jobs);
    return 0;
}
