/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the test executables: stress sizes from the environment,
 * printed and replayable seeds, a small PRNG, and death tests that run a
 * function in a child process and check it aborts with a given message.
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

#endif /* WEFT_TESTUTIL_H */
