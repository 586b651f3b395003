/* SPDX-License-Identifier: MIT */
/*
 * Fork-join on the pool. A recursive Fibonacci spawns one half of each call
 * into a weft_group_t on its stack and computes the other half itself, then
 * waits for the group: no future and no allocation per spawn, and the wait
 * runs the group's own children instead of blocking. weft_pool_run is the
 * way in from the main thread. Then weft_parallel_for fills an array in
 * parallel chunks, and weft_parallel_reduce hashes it with a merge that is
 * not commutative: partial results are merged in index order, so the
 * parallel hash equals the sequential one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <weft/pool.h>

#include "example.h"

#define FIB_N (EX_SANITIZED ? 27 : 36)
#define CUTOFF 20 /* below this, plain recursion: a spawn costs more */
#define ARRAY_N ((size_t)(EX_SANITIZED ? 1 : 8) * 1000 * 1000)

/* ------------------------------------------------------------ fib */

static uint64_t
fib_seq(int n)
{
    return n < 2 ? (uint64_t)n : fib_seq(n - 1) + fib_seq(n - 2);
}

typedef struct fib {
    int n;
    uint64_t result;
} fib_t;

static void
fib_task(void *arg)
{
    fib_t *f = arg;
    weft_group_t g;

    if (f->n < CUTOFF) {
        f->result = fib_seq(f->n);
        return;
    }
    int rc = weft_group_init(&g, NULL); /* NULL: this worker's pool */
    if (rc != WEFT_OK) {
        (void)weft_task_fail(rc, "fib(%d): no group", f->n);
        return;
    }
    fib_t a = {f->n - 1, 0}, b = {f->n - 2, 0};
    rc = weft_group_spawn(&g, fib_task, &a); /* maybe run by another worker */
    if (rc != WEFT_OK) {
        fib_task(&a); /* could not spawn: do it here */
    }
    fib_task(&b);             /* this half right here */
    rc = weft_group_wait(&g); /* a and b live on this stack until here */
    if (rc != WEFT_OK) {
        (void)weft_task_fail(rc, "fib(%d): a child failed", f->n);
        return;
    }
    f->result = a.result + b.result;
}

static void
show_fib(weft_executor_t *pool)
{
    fib_t f = {FIB_N, 0};

    weft_time_t t0 = weft_now();
    uint64_t want = fib_seq(FIB_N);
    double seq = ex_seconds_since(t0);
    t0 = weft_now();
    EX_OK(weft_pool_run(pool, fib_task, &f));
    double par = ex_seconds_since(t0);
    printf("fib(%d) = %llu: %.3f s in one thread, %.3f s with groups "
           "(spawning below fib(%d) stops)\n",
           FIB_N, (unsigned long long)f.result, seq, par, CUTOFF);
    EX_CHECK(f.result == want, "fib(%d): %llu, expected %llu", FIB_N,
             (unsigned long long)f.result, (unsigned long long)want);
}

/* ---------------------------------------------------- parallel_for */

static void
fill(size_t lo, size_t hi, void *ctx)
{
    uint32_t *a = ctx;
    for (size_t i = lo; i < hi; i++) {
        a[i] = (uint32_t)(i * 2654435761u); /* any function of i */
    }
}

/* A polynomial hash: hash(x ++ y) = hash(x) * B^len(y) + hash(y). Merging
 * two halves in the wrong order gives a different number. */
#define HASH_B 1099511628211u

typedef struct hash {
    uint64_t h;
    uint64_t pow; /* B^len */
} hash_t;

static void
hash_range(size_t lo, size_t hi, void *acc, void *ctx)
{
    hash_t *x = acc;
    const uint32_t *a = ctx;
    for (size_t i = lo; i < hi; i++) {
        x->h = x->h * HASH_B + a[i];
        x->pow *= HASH_B;
    }
}

static void
hash_merge(void *into, const void *from, void *ctx)
{
    hash_t *x = into;
    const hash_t *y = from;
    (void)ctx;
    x->h = x->h * y->pow + y->h; /* into covers the indices before from */
    x->pow *= y->pow;
}

static void
show_parallel_for(weft_executor_t *pool)
{
    uint32_t *a = calloc(ARRAY_N, sizeof *a);
    hash_t seq = {0, 1}, par = {0, 1}; /* the identity */

    EX_CHECK(a != NULL, "out of memory");
    weft_time_t t0 = weft_now();
    EX_OK(weft_parallel_for(pool, 0, ARRAY_N, 0, fill, a));
    double secs = ex_seconds_since(t0);
    size_t wrong = 0;
    for (size_t i = 0; i < ARRAY_N; i++) {
        wrong += a[i] != (uint32_t)(i * 2654435761u);
    }
    printf("parallel_for filled %zu elements in %.3f s; %zu wrong\n", ARRAY_N,
           secs, wrong);
    EX_CHECK(wrong == 0, "%zu elements wrong", wrong);

    hash_range(0, ARRAY_N, &seq, a);
    EX_OK(weft_parallel_reduce(pool, 0, ARRAY_N, 0, &par, sizeof par,
                               hash_range, hash_merge, a));
    printf("parallel_reduce hash %016llx, sequential %016llx\n",
           (unsigned long long)par.h, (unsigned long long)seq.h);
    EX_CHECK(par.h == seq.h && par.pow == seq.pow,
             "the ordered merge gives the sequential hash");
    free(a);
}

int
main(void)
{
    weft_executor_t *pool;

    EX_OK(weft_pool_create(NULL, &pool));
    show_fib(pool);
    show_parallel_for(pool);
    weft_executor_destroy(pool);
    return 0;
}
