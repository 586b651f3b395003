/* SPDX-License-Identifier: MIT */
/*
 * The producer/consumer lesson: one producer, one slower consumer, and a
 * bounded weft_queue of 8 items between them. The bound is backpressure: when
 * the queue is full the producer waits instead of piling items up in memory
 * (the program counts how often). At the end the producer closes the queue
 * rather than sending a sentinel; the consumer drains it and stops on
 * WEFT_ECLOSED, and checks that every item arrived, in order.
 */
#include <stdint.h>
#include <stdio.h>

#include <weft/weft.h>

#include "example.h"

#define CAPACITY 8
#define ITEMS (EX_SANITIZED ? 20000u : 100000u)

typedef struct stats {
    uint64_t put_full;     /* producer: try_put found the queue full */
    size_t fullest;        /* producer: most items seen queued after a put */
    uint64_t received;     /* consumer: items taken */
    uint64_t out_of_order; /* consumer: items not equal to the next expected */
    uint64_t checksum;     /* consumer: what the work computed */
} stats_t;

static weft_queue_t *queue;

static void *
producer(void *arg)
{
    stats_t *st = arg;

    for (uint64_t i = 0; i < ITEMS; i++) {
        int rc = weft_queue_try_put(queue, &i);
        if (rc == WEFT_EAGAIN) {
            st->put_full++; /* full: wait for the consumer to make room */
            rc = weft_queue_put(queue, &i);
        }
        EX_OK(rc);
        size_t n = weft_queue_size(queue);
        if (n > st->fullest) {
            st->fullest = n;
        }
    }
    /* End of stream: no sentinel value, the queue itself says "no more". */
    weft_queue_close(queue);
    return NULL;
}

/* The consumer's work per item: a little arithmetic, so it is the slower
 * side and the queue fills up. */
static uint64_t
work(uint64_t item)
{
    uint64_t h = item;
    for (int i = 0; i < 128; i++) {
        h = h * 6364136223846793005u + 1442695040888963407u;
    }
    return h;
}

static void *
consumer(void *arg)
{
    stats_t *st = arg;
    uint64_t item;
    int rc;

    while ((rc = weft_queue_get(queue, &item)) == WEFT_OK) {
        if (item != st->received) {
            st->out_of_order++;
        }
        st->received++;
        st->checksum += work(item);
    }
    /* WEFT_ECLOSED comes only after every item put before the close. */
    EX_CHECK(rc == WEFT_ECLOSED, "get ended with %s", weft_errname(rc));
    return NULL;
}

int
main(void)
{
    weft_queue_opts_t opts = WEFT_QUEUE_OPTS_INIT;
    weft_thread_t *prod, *cons;
    stats_t ps = {0}, cs = {0};

    opts.capacity = CAPACITY;
    opts.elem_size = sizeof(uint64_t);
    opts.name = "numbers";
    EX_OK(weft_queue_create(&opts, &queue));
    printf("One producer sends %u numbers to one slower consumer through a "
           "queue of %d.\n",
           ITEMS, CAPACITY);

    weft_time_t t0 = weft_now();
    ex_start_threads(&cons, 1, "consumer", consumer, &cs, 0);
    ex_start_threads(&prod, 1, "producer", producer, &ps, 0);
    ex_join_threads(&prod, 1);
    ex_join_threads(&cons, 1);
    double secs = ex_seconds_since(t0);

    uint64_t expect_sum = 0;
    for (uint64_t i = 0; i < ITEMS; i++) {
        expect_sum += work(i);
    }
    printf("  consumer received %llu items, %llu out of order, in %.3f s "
           "(%.2f M items/s)\n",
           (unsigned long long)cs.received, (unsigned long long)cs.out_of_order,
           secs, (double)cs.received / secs / 1e6);
    printf("  the producer found the queue full %llu times and waited "
           "(backpressure);\n  the queue never held more than %zu items\n",
           (unsigned long long)ps.put_full, ps.fullest);
    printf("  end of stream by weft_queue_close: the consumer's get returned "
           "WEFT_ECLOSED\n  after the last item, no sentinel needed\n");
    EX_CHECK(cs.received == ITEMS, "received %llu of %u",
             (unsigned long long)cs.received, ITEMS);
    EX_CHECK(cs.out_of_order == 0, "items arrived out of order");
    EX_CHECK(cs.checksum == expect_sum, "the work's checksum differs");
    EX_CHECK(ps.fullest <= CAPACITY, "the queue held %zu items", ps.fullest);
    EX_CHECK(ps.put_full > 0, "a faster producer must meet a full queue");
    EX_CHECK(weft_queue_put(queue, &(uint64_t){1}) == WEFT_ECLOSED,
             "a closed queue refuses puts");
    weft_queue_destroy(queue);
    return 0;
}
