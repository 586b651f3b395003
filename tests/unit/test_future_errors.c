/* SPDX-License-Identifier: MIT */
/*
 * Bad input to futures, promises, wait_many and the completion queue
 * (RELIABILITY R6): runtime errors return their documented code and leave
 * the objects as they were; programmer errors (NULL handles, references
 * released once too often) die with a clear message, checked in a child
 * process.
 */
#include "testutil.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "future_impl.h"

static void
ignore(int rc)
{
    (void)rc;
}

static weft_future_t *
promise(void)
{
    weft_future_t *f = NULL;
    assert_int_equal(weft_promise_create(&f), WEFT_OK);
    return f;
}

static int value_a = 1;
static int value_b = 2;
static _Atomic int dtor_calls;

static void
count_dtor(void *v)
{
    (void)v;
    atomic_fetch_add(&dtor_calls, 1);
}

static void
noop_cb(weft_future_t *f, void *ctx)
{
    (void)f;
    (void)ctx;
}

/* ------------------------------------------------------------------------ */
/* Runtime errors: one case per row, each checks the code and that nothing  */
/* changed.                                                                  */

static int
promise_create_null_out(void)
{
    return weft_promise_create(NULL);
}

static int
cq_create_null_out(void)
{
    return weft_cq_create(NULL);
}

static int
on_done_null_fn(void)
{
    weft_future_t *f = promise();
    int rc = weft_future_on_done(f, NULL, NULL);
    assert_null(atomic_load(&f->cbs));
    weft_future_release(f);
    return rc;
}

static int
take_into_null(void)
{
    atomic_store(&dtor_calls, 0);
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_result(f, &value_a, count_dtor), WEFT_OK);
    int rc = weft_future_take_result(f, NULL);
    assert_int_equal(atomic_load(&f->taken), 0);
    weft_future_release(f);
    /* Not taken: the destructor ran. */
    assert_int_equal(atomic_load(&dtor_calls), 1);
    return rc;
}

static int
take_twice(void)
{
    atomic_store(&dtor_calls, 0);
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_result(f, &value_a, count_dtor), WEFT_OK);
    void *v = NULL;
    assert_int_equal(weft_future_take_result(f, &v), WEFT_OK);
    assert_ptr_equal(v, &value_a);
    v = &value_b;
    int rc = weft_future_take_result(f, &v);
    assert_ptr_equal(v, &value_b);
    weft_future_release(f);
    assert_int_equal(atomic_load(&dtor_calls), 0);
    return rc;
}

static int
set_result_twice(void)
{
    atomic_store(&dtor_calls, 0);
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_result(f, &value_a, NULL), WEFT_OK);
    int rc = weft_promise_set_result(f, &value_b, count_dtor);
    void *v = NULL;
    assert_int_equal(weft_future_result(f, &v), WEFT_OK);
    assert_ptr_equal(v, &value_a);
    weft_future_release(f);
    /* The refused value stayed the caller's. */
    assert_int_equal(atomic_load(&dtor_calls), 0);
    return rc;
}

static int
set_result_after_failure(void)
{
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_failure(f, WEFT_EIO, "first"), WEFT_OK);
    int rc = weft_promise_set_result(f, &value_b, NULL);
    assert_int_equal(weft_future_code(f), WEFT_EIO);
    assert_string_equal(weft_future_error(f), "first");
    weft_future_release(f);
    return rc;
}

static int
set_failure_with(int code)
{
    weft_future_t *f = promise();
    int rc = weft_promise_set_failure(f, code, "code %d", code);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_PENDING);
    weft_future_release(f);
    return rc;
}

static int
set_failure_code_ok(void)
{
    return set_failure_with(WEFT_OK);
}

static int
set_failure_code_positive(void)
{
    return set_failure_with(5);
}

static int
set_failure_code_int_max(void)
{
    return set_failure_with(INT_MAX);
}

static int
set_failure_after_done(void)
{
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_result(f, &value_a, NULL), WEFT_OK);
    int rc = weft_promise_set_failure(f, WEFT_EIO, "late");
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    assert_string_equal(weft_future_error(f), "");
    weft_future_release(f);
    return rc;
}

static int
set_failure_after_cancel(void)
{
    weft_future_t *f = promise();
    assert_true(weft_future_cancel(f));
    int rc = weft_promise_set_failure(f, WEFT_EIO, "late");
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_CANCELLED);
    weft_future_release(f);
    return rc;
}

static int
start_after_cancel(void)
{
    weft_future_t *f = promise();
    assert_true(weft_future_cancel(f));
    int rc = weft_promise_start(f);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_CANCELLED);
    weft_future_release(f);
    return rc;
}

static int
start_twice(void)
{
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_start(f), WEFT_OK);
    int rc = weft_promise_start(f);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_RUNNING);
    assert_int_equal(weft_promise_set_result(f, NULL, NULL), WEFT_OK);
    weft_future_release(f);
    return rc;
}

static int
start_after_done(void)
{
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_result(f, NULL, NULL), WEFT_OK);
    int rc = weft_promise_start(f);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    weft_future_release(f);
    return rc;
}

static int
wait_many_with(weft_future_t *const *fs, size_t n, int mode)
{
    size_t idx = 77;
    int rc = weft_future_wait_many(fs, n, (weft_wait_mode_t)mode, 0, &idx);
    assert_int_equal(idx, 77);
    return rc;
}

static int
wait_many_mode_too_big(void)
{
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_result(f, NULL, NULL), WEFT_OK);
    int rc = wait_many_with(&f, 1, WEFT_ALL_COMPLETED + 1);
    weft_future_release(f);
    return rc;
}

static int
wait_many_mode_negative(void)
{
    weft_future_t *f = promise();
    int rc = wait_many_with(&f, 1, -1);
    assert_null(atomic_load(&f->cbs));
    weft_future_release(f);
    return rc;
}

static int
wait_many_mode_bad_empty(void)
{
    return wait_many_with(NULL, 0, 42);
}

static int
wait_many_null_array(void)
{
    return wait_many_with(NULL, 2, WEFT_FIRST_COMPLETED);
}

static int
wait_many_null_entry(void)
{
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_result(f, NULL, NULL), WEFT_OK);
    weft_future_t *fs[3] = {f, NULL, f};
    int rc = wait_many_with(fs, 3, WEFT_FIRST_COMPLETED);
    weft_future_release(f);
    return rc;
}

static int
cq_next_null_out(void)
{
    weft_completion_queue_t *cq = NULL;
    assert_int_equal(weft_cq_create(&cq), WEFT_OK);
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_result(f, NULL, NULL), WEFT_OK);
    assert_int_equal(weft_cq_add(cq, f), WEFT_OK);
    int rc = weft_cq_next(cq, NULL);
    assert_int_equal(weft_cq_next_until(cq, NULL, 0), rc);
    /* Nothing was handed over. */
    assert_int_equal(weft_cq_pending(cq), 1);
    assert_int_equal(atomic_load(&f->refs), 2);
    weft_cq_destroy(cq);
    assert_int_equal(atomic_load(&f->refs), 1);
    weft_future_release(f);
    return rc;
}

static int
wait_on_own_task(void)
{
    weft_future_t *f = weft__future_alloc(1);
    assert_true(weft__future_claim(f));
    void *v = &value_a;
    int rc = weft_future_result(f, &v);
    assert_ptr_equal(v, &value_a);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_RUNNING);
    assert_true(weft__future_finish(f, WEFT_OK, NULL, NULL, NULL));
    weft_future_release(f);
    return rc;
}

struct error_case {
    const char *name;
    int (*fn)(void);
    int expect;
};

static const struct error_case error_cases[] = {
    {"promise_create(NULL)", promise_create_null_out, WEFT_EINVAL},
    {"cq_create(NULL)", cq_create_null_out, WEFT_EINVAL},
    {"on_done(f, NULL fn)", on_done_null_fn, WEFT_EINVAL},
    {"take_result(f, NULL)", take_into_null, WEFT_EINVAL},
    {"take_result twice", take_twice, WEFT_EPERM},
    {"set_result twice", set_result_twice, WEFT_EPERM},
    {"set_result after failure", set_result_after_failure, WEFT_EPERM},
    {"set_failure(WEFT_OK)", set_failure_code_ok, WEFT_EINVAL},
    {"set_failure(5)", set_failure_code_positive, WEFT_EINVAL},
    {"set_failure(INT_MAX)", set_failure_code_int_max, WEFT_EINVAL},
    {"set_failure after done", set_failure_after_done, WEFT_EPERM},
    {"set_failure after cancel", set_failure_after_cancel, WEFT_EPERM},
    {"start after cancel", start_after_cancel, WEFT_ECANCELED},
    {"start twice", start_twice, WEFT_EPERM},
    {"start after done", start_after_done, WEFT_EPERM},
    {"wait_many mode 3", wait_many_mode_too_big, WEFT_EINVAL},
    {"wait_many mode -1", wait_many_mode_negative, WEFT_EINVAL},
    {"wait_many bad mode, n 0", wait_many_mode_bad_empty, WEFT_EINVAL},
    {"wait_many(NULL, 2)", wait_many_null_array, WEFT_EINVAL},
    {"wait_many NULL entry", wait_many_null_entry, WEFT_EINVAL},
    {"cq_next(cq, NULL)", cq_next_null_out, WEFT_EINVAL},
    {"wait on own task", wait_on_own_task, WEFT_EDEADLK},
};

static void
test_runtime_errors(void **state)
{
    (void)state;
    size_t n = sizeof(error_cases) / sizeof(error_cases[0]);
    for (size_t i = 0; i < n; i++) {
        int rc = error_cases[i].fn();
        if (rc != error_cases[i].expect) {
            fail_msg("%s: got %s, expected %s", error_cases[i].name,
                     weft_errname(rc), weft_errname(error_cases[i].expect));
        }
    }
    /* NULL is a no-op for the two releasing calls. */
    weft_future_release(NULL);
    weft_cq_destroy(NULL);
}

/* ------------------------------------------------------------------------ */
/* NULL handles: one death test per public function.                         */

#define VOID_CASE(name, call)                                                  \
    static void name(void *arg)                                                \
    {                                                                          \
        (void)arg;                                                             \
        (void)(call);                                                          \
    }
#define INT_CASE(name, call)                                                   \
    static void name(void *arg)                                                \
    {                                                                          \
        (void)arg;                                                             \
        ignore(call);                                                          \
    }

static void *a_value;
static size_t a_size;

static weft_completion_queue_t *
a_cq(void)
{
    weft_completion_queue_t *cq = NULL;
    ignore(weft_cq_create(&cq));
    return cq;
}

VOID_CASE(retain_null, weft_future_retain(NULL))
VOID_CASE(state_null, weft_future_state(NULL))
VOID_CASE(done_null, weft_future_done(NULL))
INT_CASE(wait_null, weft_future_wait(NULL))
INT_CASE(wait_until_null, weft_future_wait_until(NULL, 0))
INT_CASE(result_null, weft_future_result(NULL, &a_value))
INT_CASE(result_until_null, weft_future_result_until(NULL, &a_value, 0))
INT_CASE(take_result_null, weft_future_take_result(NULL, &a_value))
VOID_CASE(error_null, weft_future_error(NULL))
INT_CASE(code_null, weft_future_code(NULL))
INT_CASE(on_done_null, weft_future_on_done(NULL, noop_cb, NULL))
VOID_CASE(cancel_null, weft_future_cancel(NULL))
INT_CASE(promise_start_null, weft_promise_start(NULL))
INT_CASE(set_result_null, weft_promise_set_result(NULL, NULL, NULL))
INT_CASE(set_failure_null, weft_promise_set_failure(NULL, WEFT_EIO, "x"))
INT_CASE(cq_add_null, weft_cq_add(NULL, NULL))
INT_CASE(cq_add_null_future, weft_cq_add(a_cq(), NULL))
INT_CASE(cq_next_null, weft_cq_next(NULL, NULL))
INT_CASE(cq_next_until_null, weft_cq_next_until(NULL, NULL, 0))
VOID_CASE(cq_pending_null, a_size = weft_cq_pending(NULL))

struct death {
    void (*fn)(void *);
    const char *expect;
};

static const struct death null_cases[] = {
    {retain_null, "weft_future_retain: NULL future"},
    {state_null, "weft_future_state: NULL future"},
    {done_null, "weft_future_done: NULL future"},
    {wait_null, "weft_future_wait: NULL future"},
    {wait_until_null, "weft_future_wait_until: NULL future"},
    {result_null, "weft_future_result: NULL future"},
    {result_until_null, "weft_future_result_until: NULL future"},
    {take_result_null, "weft_future_take_result: NULL future"},
    {error_null, "weft_future_error: NULL future"},
    {code_null, "weft_future_code: NULL future"},
    {on_done_null, "weft_future_on_done: NULL future"},
    {cancel_null, "weft_future_cancel: NULL future"},
    {promise_start_null, "weft_promise_start: NULL future"},
    {set_result_null, "weft_promise_set_result: NULL future"},
    {set_failure_null, "weft_promise_set_failure: NULL future"},
    {cq_add_null, "weft_cq_add: NULL completion queue"},
    {cq_add_null_future, "weft_cq_add: NULL future"},
    {cq_next_null, "weft_cq_next: NULL completion queue"},
    {cq_next_until_null, "weft_cq_next_until: NULL completion queue"},
    {cq_pending_null, "weft_cq_pending: NULL completion queue"},
};

static void
test_null_handles(void **state)
{
    (void)state;
    size_t n = sizeof(null_cases) / sizeof(null_cases[0]);
    for (size_t i = 0; i < n; i++) {
        if (!wt_dies_with(null_cases[i].fn, NULL, null_cases[i].expect)) {
            fail_msg("case %zu (%s) did not die as expected", i,
                     null_cases[i].expect);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Other programmer errors                                                   */

/*
 * A released future's memory is gone, so an extra release is only
 * detectable while the memory still holds the count. The child keeps every
 * block (its free does nothing), which makes the count readable after the
 * last release, as it may be in a real program before the block is reused.
 */
static void *
keep_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size);
}

static void *
keep_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    return realloc(ptr, size);
}

static void
keep_free(void *ctx, void *ptr)
{
    (void)ctx;
    (void)ptr;
}

static void
keep_all_memory(void)
{
    weft_allocator_t a = {keep_malloc, keep_realloc, keep_free, NULL};
    assert_int_equal(weft_set_allocator(&a), WEFT_OK);
}

static void
over_release(void *arg)
{
    (void)arg;
    keep_all_memory();
    weft_future_t *f = promise();
    weft_future_retain(f);
    weft_future_release(f);
    weft_future_release(f);
    weft_future_release(f);
}

static void
retain_released(void *arg)
{
    (void)arg;
    keep_all_memory();
    weft_future_t *f = promise();
    weft_future_release(f);
    weft_future_retain(f);
}

static void
finish_with_positive_code(void *arg)
{
    (void)arg;
    weft_future_t *f = weft__future_alloc(1);
    ignore(weft__future_finish(f, 3, NULL, NULL, NULL));
}

static void
alloc_zero_refs(void *arg)
{
    (void)arg;
    (void)weft__future_alloc(0);
}

static const struct death misuse_cases[] = {
    {over_release, "weft_future_release: future"},
    {retain_released, "weft_future_retain: future"},
    {finish_with_positive_code, "weft__future_finish: code 3 is not an error"},
    {alloc_zero_refs, "weft__future_alloc: zero references"},
};

static void
test_misuse_dies(void **state)
{
    (void)state;
    size_t n = sizeof(misuse_cases) / sizeof(misuse_cases[0]);
    for (size_t i = 0; i < n; i++) {
        if (!wt_dies_with(misuse_cases[i].fn, NULL, misuse_cases[i].expect)) {
            fail_msg("case %zu (%s) did not die as expected", i,
                     misuse_cases[i].expect);
        }
    }
}

/* The over-release message says what happened. */
static void
test_over_release_message(void **state)
{
    (void)state;
    assert_true(wt_dies_with(over_release, NULL,
                             "released more times than it was referenced"));
    assert_true(wt_dies_with(retain_released, NULL, "has 0 references"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_runtime_errors),
        cmocka_unit_test(test_null_handles),
        cmocka_unit_test(test_misuse_dies),
        cmocka_unit_test(test_over_release_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
