/* SPDX-License-Identifier: MIT */
/*
 * Python's Executor.map in C: weft_executor_map applies a function to each
 * input on a pool, with at most `window` tasks in flight, and hands the
 * results back in input order although the tasks finish in another order.
 * A failing input does not end the map: its slot carries the failure.
 * The input is pulled lazily, so it may be endless (a generator): here the
 * first K results of an endless input are consumed, then weft_map_destroy
 * cancels what is still in flight.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <weft/pool.h>

#include "example.h"

#define INPUTS 20
#define WINDOW 6
#define UNLUCKY 13
#define FIRST_K 10

/* ---------------------------------------------------------- finite input */

typedef struct range {
    uintptr_t next, end;
} range_t;

/* The input: 0, 1, ... end-1 (Python: iter(range(end))). */
static bool
next_in_range(void *ctx, void **arg)
{
    range_t *r = ctx;
    if (r->next == r->end) {
        return false;
    }
    *arg = (void *)r->next++;
    return true;
}

static atomic_int running, most_running;
static atomic_int finish_seq;
static int finished_as[INPUTS]; /* the order each input's task finished in */

/* Squares its input after a delay that varies with it (0 to 40 ms), so
 * later inputs often finish before earlier ones. */
static void *
slow_square(void *arg)
{
    uintptr_t x = (uintptr_t)arg;
    int now = atomic_fetch_add(&running, 1) + 1;
    int most = atomic_load(&most_running);
    while (now > most &&
           !atomic_compare_exchange_weak(&most_running, &most, now)) {
    }
    int rc = weft_sleep_for((weft_time_t)(x * 7 % 5) * 10 * WEFT_MSEC);
    finished_as[x] = atomic_fetch_add(&finish_seq, 1);
    atomic_fetch_sub(&running, 1);
    if (rc != WEFT_OK) {
        return weft_task_fail(rc, "input %zu interrupted", (size_t)x);
    }
    if (x == UNLUCKY) {
        return weft_task_fail(WEFT_ERANGE, "input %zu is unlucky", (size_t)x);
    }
    return (void *)(x * x);
}

static void
show_ordered(weft_executor_t *pool)
{
    weft_task_opts_t opts = WEFT_TASK_OPTS_INIT;
    range_t input = {0, INPUTS};
    weft_map_t *m;
    void *result;
    const char *error;
    int code, rc;
    uintptr_t i = 0;

    opts.blocking = true; /* the tasks sleep */
    EX_OK(weft_executor_map(pool, slow_square, next_in_range, &input, WINDOW,
                            &opts, &m));
    printf("map(square, range(%d)) with at most %d tasks in flight:\n ", INPUTS,
           WINDOW);
    while ((rc = weft_map_next(m, &result, &code, &error)) == WEFT_OK) {
        if (code != WEFT_OK) {
            printf(" [%s: %s]", weft_errname(code), error);
            EX_CHECK(i == UNLUCKY && code == WEFT_ERANGE, "input %zu failed",
                     (size_t)i);
        } else {
            printf(" %zu", (size_t)(uintptr_t)result);
            EX_CHECK((uintptr_t)result == i * i, "input %zu: got %zu",
                     (size_t)i, (size_t)(uintptr_t)result);
        }
        i++;
    }
    EX_CHECK(rc == WEFT_ECLOSED, "map_next ended with %s", weft_errname(rc));
    weft_map_destroy(m);

    int overtaken = 0, by_finish[INPUTS];
    for (int x = 0; x < INPUTS; x++) {
        by_finish[finished_as[x]] = x;
        for (int y = x + 1; y < INPUTS; y++) {
            overtaken += finished_as[y] < finished_as[x]; /* y overtook x */
        }
    }
    printf("\n  results came in input order; the tasks finished in this "
           "order:\n ");
    for (int k = 0; k < INPUTS; k++) {
        printf(" %d", by_finish[k]);
    }
    printf("\n  %d overtakes; at most %d tasks ran at once\n", overtaken,
           atomic_load(&most_running));
    EX_CHECK(i == INPUTS, "%zu results for %d inputs", (size_t)i, INPUTS);
    EX_CHECK(atomic_load(&most_running) <= WINDOW, "the window was exceeded");
    /* Inputs 1, 2, 3 sleep 20, 40, 10 ms: 3 overtakes 1 and 2. */
    EX_CHECK(overtaken > 0, "every task finished in input order");
}

/* --------------------------------------------------------- endless input */

static uintptr_t pulled; /* inputs the generator produced */

/* 1, 2, 3, ... for ever (Python: itertools.count(1)). Called only from
 * the thread calling weft_map_next. */
static bool
count_up(void *ctx, void **arg)
{
    (void)ctx;
    *arg = (void *)++pulled;
    return true;
}

/* A small CPU job: the number of Collatz steps from x down to 1. */
static void *
collatz_steps(void *arg)
{
    uint64_t x = (uintptr_t)arg, steps = 0;
    while (x != 1) {
        x = x % 2 ? 3 * x + 1 : x / 2;
        steps++;
    }
    return (void *)(uintptr_t)steps;
}

static void
show_endless(weft_executor_t *pool)
{
    static const uintptr_t want[FIRST_K] = {0, 1, 7, 2, 5, 8, 16, 3, 19, 6};
    weft_map_t *m;
    void *result;
    int code;

    EX_OK(weft_executor_map(pool, collatz_steps, count_up, NULL, WINDOW, NULL,
                            &m));
    printf("\nmap(collatz_steps, count(1)), the first %d results:\n ", FIRST_K);
    for (int k = 0; k < FIRST_K; k++) {
        EX_OK(weft_map_next(m, &result, &code, NULL));
        EX_OK(code);
        printf(" %zu", (size_t)(uintptr_t)result);
        EX_CHECK((uintptr_t)result == want[k], "steps(%d)", k + 1);
    }
    printf("\n");
    weft_map_destroy(m); /* cancels and awaits the tasks still in flight */
    printf("  the endless input was pulled %zu times for %d results "
           "(window %d)\n",
           (size_t)pulled, FIRST_K, WINDOW);
    EX_CHECK(pulled <= FIRST_K + WINDOW, "the input was not pulled lazily");
}

int
main(void)
{
    weft_executor_t *pool;

    EX_OK(weft_pool_create(NULL, &pool));
    show_ordered(pool);
    show_endless(pool);
    weft_executor_destroy(pool);
    return 0;
}
