/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the test executables: stress sizes from the environment,
 * printed and replayable seeds, a small PRNG, death tests that run a
 * function in a child process and check it aborts with a given message,
 * threads started and joined under cmocka asserts, and queues of uint64_t.
 */
#ifndef WEFT_TESTUTIL_H
#define WEFT_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <weft/weft.h>

/* True in sanitizer builds, where stress sizes shrink. */
#if defined(WEFT_SANITIZE_THREAD)
#define WEFT_TEST_SLOW 4
#elif defined(WEFT_SANITIZE_ADDRESS)
#define WEFT_TEST_SLOW 2
#else
#define WEFT_TEST_SLOW 1
#endif

/*
 * Size of a stress run: short_n by default (divided by the sanitizer slowdown,
 * at least 1), long_n when WEFT_STRESS=long, or the number given in
 * WEFT_STRESS_N.
 */
size_t wt_size(size_t short_n, size_t long_n);
/* True when WEFT_STRESS=long. */
int wt_long(void);

/* The run's seed: WEFT_SEED if set, else from the clock. Printed once
 * ("seed: N (replay with WEFT_SEED=N)"). */
uint64_t wt_seed(void);

/* splitmix64 PRNG: deterministic from its state. */
uint64_t wt_rand(uint64_t *state);

/*
 * Run fn(arg) in a forked child with stderr captured. Returns 1 when the child
 * died of SIGABRT and its stderr contains `expect` (NULL: any message), else
 * prints what happened and returns 0.
 */
int wt_dies_with(void (*fn)(void *), void *arg, const char *expect);

/* Start n threads running fn(arg_i), with arg_i = base + i * stride, and join
 * them (fails the test if creation fails). */
void wt_run_threads(size_t n, void *(*fn)(void *), void *base, size_t stride);

/* Start a weft thread (default options) running fn(arg); fails the test if
 * creation fails. Call from the test's thread (cmocka asserts). */
weft_thread_t *wt_start(void *(*fn)(void *), void *arg);

/* Join t (started by wt_start or weft_thread_create) and return fn's result;
 * fails the test if the join fails. Call from the test's thread. */
void *wt_join(weft_thread_t *t);

/* Orders uint64_t items (read with memcpy) ascending; ctx unused. */
int wt_cmp_u64(const void *a, const void *b, void *ctx);

/* A queue of uint64_t items of the given order and capacity, ordered by
 * wt_cmp_u64 when a priority queue; fails the test if creation fails. */
weft_queue_t *wt_queue_u64(weft_queue_order_t order, size_t cap);

/* weft_queue_put / weft_queue_get of one uint64_t; fail the test unless
 * WEFT_OK. */
void wt_put_u64(weft_queue_t *q, uint64_t v);
uint64_t wt_get_u64(weft_queue_t *q);

/* A deadline far enough that reaching it means the test hangs. */
#define WT_FAR (30 * WEFT_SEC)

/* A thread pool named name (NULL: the default) with workers workers (0:
 * usable CPUs); fails the test if creation fails. */
weft_executor_t *wt_pool(const char *name, unsigned workers);

/* Submit fn(arg) to ex with options o (NULL: defaults) and return its
 * future; fails the test if the submit fails. */
weft_future_t *wt_submit(weft_executor_t *ex, weft_task_fn fn, void *arg,
                         const weft_task_opts_t *o);

/* Wait for f (at most WT_FAR) and check it is done. */
void wt_wait_done(weft_future_t *f);

#endif /* WEFT_TESTUTIL_H */
