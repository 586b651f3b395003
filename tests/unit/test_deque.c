/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for the work-stealing deque (src/deque.h), single-threaded:
 * LIFO pop, FIFO steal, empty behaviours, growth and wraparound from
 * capacity 2, the steal filter, size, allocation failure while growing, and
 * the contract assertions.
 */
#include "testutil.h"

#include <stdlib.h>

#include "deque.h"

/* Elements are small integers disguised as pointers (never NULL). */
static void *
el(uintptr_t i)
{
    return (void *)(i + 1);
}

static uintptr_t
idx(void *x)
{
    return (uintptr_t)x - 1;
}

static weft__deque_t *
new_deque(size_t cap)
{
    weft__deque_set_initial_capacity(cap);
    weft__deque_t *dq = weft__malloc_aligned(sizeof(*dq));
    assert_non_null(dq);
    assert_int_equal(weft__deque_init(dq), WEFT_OK);
    return dq;
}

static void
free_deque(weft__deque_t *dq)
{
    weft__deque_fini(dq);
    weft__free_aligned(dq);
    weft__deque_set_initial_capacity(256);
}

static void *
steal_one(weft__deque_t *dq)
{
    void *x = NULL;
    assert_int_equal(weft__deque_steal(dq, &x, NULL, NULL), WEFT__STEAL_OK);
    return x;
}

static void
test_push_pop_lifo(void **state)
{
    (void)state;
    weft__deque_t *dq = new_deque(256);
    for (uintptr_t i = 0; i < 100; i++) {
        assert_true(weft__deque_push(dq, el(i)));
    }
    for (uintptr_t i = 100; i-- > 0;) {
        assert_ptr_equal(weft__deque_pop(dq), el(i));
    }
    assert_null(weft__deque_pop(dq));
    free_deque(dq);
}

static void
test_steal_fifo(void **state)
{
    (void)state;
    weft__deque_t *dq = new_deque(256);
    for (uintptr_t i = 0; i < 100; i++) {
        assert_true(weft__deque_push(dq, el(i)));
    }
    for (uintptr_t i = 0; i < 100; i++) {
        assert_ptr_equal(steal_one(dq), el(i));
    }
    void *x = el(999);
    assert_int_equal(weft__deque_steal(dq, &x, NULL, NULL), WEFT__STEAL_EMPTY);
    assert_ptr_equal(x, el(999)); /* untouched */
    free_deque(dq);
}

static void
test_empty_behaviours(void **state)
{
    (void)state;
    weft__deque_t *dq = new_deque(2);
    void *x = el(7);
    /* A fresh deque: pop must not read a cell at index -1. */
    assert_null(weft__deque_pop(dq));
    assert_int_equal(weft__deque_steal(dq, &x, NULL, NULL), WEFT__STEAL_EMPTY);
    assert_ptr_equal(x, el(7));
    assert_int_equal(weft__deque_size(dq), 0);
    /* Repeated empty pops leave bottom where it was. */
    for (int i = 0; i < 10; i++) {
        assert_null(weft__deque_pop(dq));
    }
    assert_true(weft__deque_push(dq, el(1)));
    assert_ptr_equal(steal_one(dq), el(1));
    assert_null(weft__deque_pop(dq));
    /* Ends meet in the middle. */
    for (uintptr_t i = 0; i < 3; i++) {
        assert_true(weft__deque_push(dq, el(i)));
    }
    assert_ptr_equal(steal_one(dq), el(0));
    assert_ptr_equal(weft__deque_pop(dq), el(2));
    assert_ptr_equal(weft__deque_pop(dq), el(1)); /* the last, by CAS */
    assert_null(weft__deque_pop(dq));
    assert_int_equal(weft__deque_steal(dq, &x, NULL, NULL), WEFT__STEAL_EMPTY);
    /* The last element taken by steal, then pop finds nothing. */
    assert_true(weft__deque_push(dq, el(5)));
    assert_ptr_equal(steal_one(dq), el(5));
    assert_null(weft__deque_pop(dq));
    assert_int_equal(weft__deque_size(dq), 0);
    /* And the deque still works. */
    assert_true(weft__deque_push(dq, el(6)));
    assert_int_equal(weft__deque_size(dq), 1);
    assert_ptr_equal(weft__deque_pop(dq), el(6));
    free_deque(dq);
}

static void
test_growth_from_two_keeps_order(void **state)
{
    (void)state;
    weft__deque_t *dq = new_deque(2);
    enum { N = 1000 };
    for (uintptr_t i = 0; i < N; i++) {
        assert_true(weft__deque_push(dq, el(i)));
        assert_int_equal(weft__deque_size(dq), i + 1);
    }
    for (uintptr_t i = 0; i < 10; i++) {
        assert_ptr_equal(steal_one(dq), el(i));
    }
    for (uintptr_t i = N; i-- > 10;) {
        assert_ptr_equal(weft__deque_pop(dq), el(i));
    }
    assert_null(weft__deque_pop(dq));
    free_deque(dq);
}

/* Wraparound at capacity 2, then a grow while the live indices straddle the
 * wrap: the copy must put every index in its new cell. */
static void
test_wraparound_then_grow(void **state)
{
    (void)state;
    weft__deque_t *dq = new_deque(2);
    uintptr_t next_in = 0;
    uintptr_t next_out = 0;
    for (int lap = 0; lap < 50; lap++) { /* never more than 2 live */
        assert_true(weft__deque_push(dq, el(next_in++)));
        assert_true(weft__deque_push(dq, el(next_in++)));
        assert_ptr_equal(steal_one(dq), el(next_out++));
        assert_true(weft__deque_push(dq, el(next_in++)));
        assert_ptr_equal(steal_one(dq), el(next_out++));
        assert_ptr_equal(steal_one(dq), el(next_out++));
    }
    /* top is odd now: fill past the capacity so the live range wraps. */
    assert_true(weft__deque_push(dq, el(next_in++)));
    assert_ptr_equal(steal_one(dq), el(next_out++));
    for (int i = 0; i < 37; i++) {
        assert_true(weft__deque_push(dq, el(next_in++)));
    }
    assert_int_equal(weft__deque_size(dq), next_in - next_out);
    while (next_out < next_in) {
        assert_ptr_equal(steal_one(dq), el(next_out++));
    }
    assert_null(weft__deque_pop(dq));
    free_deque(dq);
}

typedef struct filt {
    int calls;
    void *shown;
} filt_t;

static bool
accept_even(void *x, void *ctx)
{
    filt_t *f = ctx;
    f->calls++;
    f->shown = x;
    return idx(x) % 2 == 0;
}

static void
test_filter(void **state)
{
    (void)state;
    weft__deque_t *dq = new_deque(2);
    filt_t f = {0, NULL};
    void *x = el(99);
    assert_int_equal(weft__deque_steal(dq, &x, accept_even, &f),
                     WEFT__STEAL_EMPTY);
    assert_int_equal(f.calls, 0); /* nothing to show */
    for (uintptr_t i = 1; i <= 3; i++) {
        assert_true(weft__deque_push(dq, el(i)));
    }
    /* Refused: the element stays, *out is untouched. */
    assert_int_equal(weft__deque_steal(dq, &x, accept_even, &f),
                     WEFT__STEAL_REFUSED);
    assert_int_equal(f.calls, 1);
    assert_ptr_equal(f.shown, el(1));
    assert_ptr_equal(x, el(99));
    assert_int_equal(weft__deque_size(dq), 3);
    assert_int_equal(weft__deque_steal(dq, &x, accept_even, &f),
                     WEFT__STEAL_REFUSED);
    assert_int_equal(f.calls, 2);
    /* Taken by a plain steal, the next candidate is accepted. */
    assert_ptr_equal(steal_one(dq), el(1));
    assert_int_equal(weft__deque_steal(dq, &x, accept_even, &f),
                     WEFT__STEAL_OK);
    assert_int_equal(f.calls, 3);
    assert_ptr_equal(f.shown, el(2));
    assert_ptr_equal(x, el(2));
    /* The owner still has what the filter left. */
    assert_ptr_equal(weft__deque_pop(dq), el(3));
    assert_null(weft__deque_pop(dq));
    free_deque(dq);
}

static void
test_size(void **state)
{
    (void)state;
    weft__deque_t *dq = new_deque(4);
    assert_int_equal(weft__deque_size(dq), 0);
    for (uintptr_t i = 0; i < 9; i++) {
        assert_true(weft__deque_push(dq, el(i)));
    }
    assert_int_equal(weft__deque_size(dq), 9);
    (void)steal_one(dq);
    assert_int_equal(weft__deque_size(dq), 8);
    assert_non_null(weft__deque_pop(dq));
    assert_int_equal(weft__deque_size(dq), 7);
    while (weft__deque_pop(dq) != NULL) {
    }
    assert_int_equal(weft__deque_size(dq), 0);
    assert_null(weft__deque_pop(dq));
    assert_int_equal(weft__deque_size(dq), 0);
    free_deque(dq);
}

/* An allocator that fails once armed. */
static int fail_allocs;

static void *
failing_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return fail_allocs ? NULL : malloc(size);
}

static void *
plain_realloc(void *ctx, void *p, size_t size)
{
    (void)ctx;
    return realloc(p, size);
}

static void
plain_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

static void
test_push_fails_when_grow_cannot_allocate(void **state)
{
    (void)state;
    weft_allocator_t a = {failing_malloc, plain_realloc, plain_free, NULL};
    assert_int_equal(weft_set_allocator(&a), WEFT_OK);
    weft__deque_t *dq = new_deque(2);
    assert_true(weft__deque_push(dq, el(0)));
    assert_true(weft__deque_push(dq, el(1)));
    fail_allocs = 1;
    assert_false(weft__deque_push(dq, el(2))); /* needs a bigger buffer */
    assert_int_equal(weft__deque_size(dq), 2);
    fail_allocs = 0;
    assert_true(weft__deque_push(dq, el(2)));
    assert_ptr_equal(steal_one(dq), el(0));
    assert_ptr_equal(weft__deque_pop(dq), el(2));
    assert_ptr_equal(weft__deque_pop(dq), el(1));
    assert_null(weft__deque_pop(dq));
    free_deque(dq);
    /* init itself reports the failure. */
    weft__deque_t *dq2 = weft__malloc_aligned(sizeof(*dq2));
    assert_non_null(dq2);
    fail_allocs = 1;
    assert_int_equal(weft__deque_init(dq2), WEFT_ENOMEM);
    fail_allocs = 0;
    weft__free_aligned(dq2);
    assert_int_equal(weft_set_allocator(NULL), WEFT_OK);
}

static void
push_null(void *arg)
{
    (void)arg;
    weft__deque_t *dq = new_deque(2);
    (void)weft__deque_push(dq, NULL);
}

static void
fini_twice(void *arg)
{
    (void)arg;
    weft__deque_t *dq = new_deque(2);
    weft__deque_fini(dq);
    weft__deque_fini(dq);
}

static void
bad_capacity(void *arg)
{
    weft__deque_set_initial_capacity(*(size_t *)arg);
}

static void
test_contract_assertions(void **state)
{
    (void)state;
    assert_true(wt_dies_with(push_null, NULL, "NULL element"));
    assert_true(wt_dies_with(fini_twice, NULL, "already finalised"));
    size_t bad[] = {0, 1, 3, 6, 100};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_true(
            wt_dies_with(bad_capacity, &bad[i], "is not a power of two"));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_pop_lifo),
        cmocka_unit_test(test_steal_fifo),
        cmocka_unit_test(test_empty_behaviours),
        cmocka_unit_test(test_growth_from_two_keeps_order),
        cmocka_unit_test(test_wraparound_then_grow),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_push_fails_when_grow_cannot_allocate),
        cmocka_unit_test(test_contract_assertions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
