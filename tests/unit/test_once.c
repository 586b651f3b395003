/* SPDX-License-Identifier: MIT */
/* Unit tests for weft_once: exactly once, callers wait for fn, nesting. */
#include "testutil.h"

#include <stdatomic.h>
#include <string.h>

static void
count(void *arg)
{
    (*(int *)arg)++;
}

static void
test_runs_once(void **state)
{
    (void)state;
    weft_once_t o = WEFT_ONCE_INIT;
    int n = 0;
    weft_once(&o, count, &n);
    assert_int_equal(n, 1);
    weft_once(&o, count, &n);
    weft_once(&o, count, &n);
    assert_int_equal(n, 1);

    weft_once_t z;
    memset(&z, 0, sizeof(z));
    weft_once(&z, count, &n);
    weft_once(&z, count, &n);
    assert_int_equal(n, 2);
}

struct nested {
    weft_once_t inner;
    int n;
};

static void
outer_fn(void *arg)
{
    struct nested *x = arg;
    /* A different once inside fn is fine. */
    weft_once(&x->inner, count, &x->n);
    x->n += 10;
}

static void
test_nested_different_once(void **state)
{
    (void)state;
    weft_once_t outer = WEFT_ONCE_INIT;
    struct nested x = {WEFT_ONCE_INIT, 0};
    weft_once(&outer, outer_fn, &x);
    weft_once(&outer, outer_fn, &x);
    weft_once(&x.inner, count, &x.n);
    assert_int_equal(x.n, 11);
}

struct shared {
    weft_once_t once;
    _Atomic int runs;
    int ready; /* plain: written by fn, read by every caller after once */
};

static void
slow_init(void *arg)
{
    struct shared *s = arg;
    atomic_fetch_add(&s->runs, 1);
    weft_sleep_for(10 * WEFT_MSEC);
    s->ready = 1;
}

static void *
caller(void *arg)
{
    struct shared *s = arg;
    weft_once(&s->once, slow_init, s);
    /* Returns only after fn returned, and sees what it wrote. */
    assert_int_equal(s->ready, 1);
    return NULL;
}

static void
test_concurrent_callers_wait(void **state)
{
    (void)state;
    for (int round = 0; round < 5; round++) {
        struct shared s = {WEFT_ONCE_INIT, 0, 0};
        wt_run_threads(6, caller, &s, 0);
        assert_int_equal(atomic_load(&s.runs), 1);
        assert_int_equal(s.ready, 1);
    }
}

static void
quick_init(void *arg)
{
    struct shared *s = arg;
    atomic_fetch_add(&s->runs, 1);
    s->ready = 1;
}

static void *
quick_caller(void *arg)
{
    struct shared *s = arg;
    weft_once(&s->once, quick_init, s);
    assert_int_equal(s->ready, 1);
    return NULL;
}

static void
test_racing_callers(void **state)
{
    (void)state;
    for (int round = 0; round < 200; round++) {
        struct shared s = {WEFT_ONCE_INIT, 0, 0};
        wt_run_threads(4, quick_caller, &s, 0);
        assert_int_equal(atomic_load(&s.runs), 1);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runs_once),
        cmocka_unit_test(test_nested_different_once),
        cmocka_unit_test(test_concurrent_callers_wait),
        cmocka_unit_test(test_racing_callers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
