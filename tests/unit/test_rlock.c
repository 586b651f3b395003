/* SPDX-License-Identifier: MIT */
/* Unit tests for weft_rlock_t: every public function and error return. */
#include "testutil.h"

#include <string.h>

#include "rlock_impl.h"

static void
wait_contended(weft_rlock_t *r)
{
    while (atomic_load(&weft__rlock(r)->m.state) != WEFT__MUTEX_CONTENDED) {
        weft_sleep_for(100 * WEFT_USEC);
    }
}

static void
test_nested_acquire_release(void **state)
{
    (void)state;
    weft_rlock_t r;
    weft_rlock_init(&r);
    assert_int_equal(weft_rlock_depth(&r), 0);
    for (unsigned i = 1; i <= 5; i++) {
        assert_int_equal(weft_rlock_acquire(&r), WEFT_OK);
        assert_int_equal(weft_rlock_depth(&r), i);
    }
    assert_int_equal(weft_rlock_try_acquire(&r), WEFT_OK);
    assert_int_equal(weft_rlock_acquire_until(&r, 0), WEFT_OK);
    assert_int_equal(weft_rlock_depth(&r), 7);
    for (unsigned i = 7; i > 0; i--) {
        assert_int_equal(weft_rlock_release(&r), WEFT_OK);
        assert_int_equal(weft_rlock_depth(&r), i - 1);
    }
    /* Released more often than acquired: the caller no longer owns it. */
    assert_int_equal(weft_rlock_release(&r), WEFT_EPERM);
    weft_rlock_fini(&r);
}

static void
test_static_and_zero_init(void **state)
{
    (void)state;
    weft_rlock_t a = WEFT_RLOCK_INIT;
    weft_rlock_t b;
    memset(&b, 0, sizeof(b));
    assert_int_equal(weft_rlock_acquire(&a), WEFT_OK);
    assert_int_equal(weft_rlock_try_acquire(&b), WEFT_OK);
    assert_int_equal(weft_rlock_release(&b), WEFT_OK);
    assert_int_equal(weft_rlock_release(&a), WEFT_OK);
    weft_rlock_fini(&a);
    weft_rlock_fini(&b);
}

struct other {
    weft_rlock_t *r;
    int try_rc;
    int until_rc;
    int release_rc;
    unsigned depth;
};

static void *
other_thread(void *arg)
{
    struct other *o = arg;
    o->depth = weft_rlock_depth(o->r);
    o->release_rc = weft_rlock_release(o->r);
    o->try_rc = weft_rlock_try_acquire(o->r);
    o->until_rc =
        weft_rlock_acquire_until(o->r, weft_deadline_in(10 * WEFT_MSEC));
    return NULL;
}

static void
test_other_thread_is_excluded(void **state)
{
    (void)state;
    weft_rlock_t r = WEFT_RLOCK_INIT;
    assert_int_equal(weft_rlock_acquire(&r), WEFT_OK);
    assert_int_equal(weft_rlock_acquire(&r), WEFT_OK);
    struct other o = {&r, 1, 1, 1, 99};
    wt_join(wt_start(other_thread, &o));
    assert_int_equal(o.depth, 0);
    assert_int_equal(o.release_rc, WEFT_EPERM);
    assert_int_equal(o.try_rc, WEFT_EAGAIN);
    assert_int_equal(o.until_rc, WEFT_ETIMEDOUT);
    /* Untouched by the other thread's failed calls. */
    assert_int_equal(weft_rlock_depth(&r), 2);
    assert_int_equal(weft_rlock_release(&r), WEFT_OK);
    assert_int_equal(weft_rlock_release(&r), WEFT_OK);
    weft_rlock_fini(&r);
}

struct blocked {
    weft_rlock_t *r;
    int rc;
    unsigned depth;
};

static void *
blocked_thread(void *arg)
{
    struct blocked *b = arg;
    b->rc = weft_rlock_acquire(b->r);
    b->depth = weft_rlock_depth(b->r);
    if (b->rc == WEFT_OK) {
        assert_int_equal(weft_rlock_release(b->r), WEFT_OK);
    }
    return NULL;
}

static void
test_blocked_acquire_wakes_after_last_release(void **state)
{
    (void)state;
    weft_rlock_t r = WEFT_RLOCK_INIT;
    assert_int_equal(weft_rlock_acquire(&r), WEFT_OK);
    assert_int_equal(weft_rlock_acquire(&r), WEFT_OK);
    struct blocked b = {&r, 1, 0};
    weft_thread_t *t = wt_start(blocked_thread, &b);
    wait_contended(&r);
    assert_int_equal(weft_rlock_release(&r), WEFT_OK);
    /* Still held once: the waiter must not get it yet. */
    weft_sleep_for(5 * WEFT_MSEC);
    assert_int_equal(b.rc, 1);
    assert_int_equal(weft_rlock_release(&r), WEFT_OK);
    wt_join(t);
    assert_int_equal(b.rc, WEFT_OK);
    assert_int_equal(b.depth, 1);
    weft_rlock_fini(&r);
}

static void
test_depth_overflow(void **state)
{
    (void)state;
    weft_rlock_t r = WEFT_RLOCK_INIT;
    assert_int_equal(weft_rlock_acquire(&r), WEFT_OK);
    /* Jump close to the limit instead of looping 2^31 times. */
    weft__rlock(&r)->depth = WEFT__RLOCK_DEPTH_MAX - 1;
    assert_int_equal(weft_rlock_acquire(&r), WEFT_OK);
    assert_int_equal(weft_rlock_depth(&r), WEFT__RLOCK_DEPTH_MAX);
    assert_int_equal(weft_rlock_acquire(&r), WEFT_EOVERFLOW);
    assert_int_equal(weft_rlock_try_acquire(&r), WEFT_EOVERFLOW);
    assert_int_equal(weft_rlock_acquire_until(&r, WEFT_FOREVER),
                     WEFT_EOVERFLOW);
    assert_int_equal(weft_rlock_depth(&r), WEFT__RLOCK_DEPTH_MAX);
    weft__rlock(&r)->depth = 1;
    assert_int_equal(weft_rlock_release(&r), WEFT_OK);
    assert_int_equal(weft_rlock_depth(&r), 0);
    weft_rlock_fini(&r);
}

struct counter {
    weft_rlock_t r;
    long value;
};

static void *
add_nested(void *arg)
{
    struct counter *c = arg;
    for (int i = 0; i < 10000; i++) {
        assert_int_equal(weft_rlock_acquire(&c->r), WEFT_OK);
        assert_int_equal(weft_rlock_acquire(&c->r), WEFT_OK);
        c->value++;
        assert_int_equal(weft_rlock_release(&c->r), WEFT_OK);
        c->value++;
        assert_int_equal(weft_rlock_release(&c->r), WEFT_OK);
    }
    return NULL;
}

static void
test_mutual_exclusion(void **state)
{
    (void)state;
    static struct counter c = {WEFT_RLOCK_INIT, 0};
    weft_thread_t *t[4];
    for (int i = 0; i < 4; i++) {
        t[i] = wt_start(add_nested, &c);
    }
    for (int i = 0; i < 4; i++) {
        wt_join(t[i]);
    }
    assert_int_equal(c.value, 4 * 2 * 10000);
    weft_rlock_fini(&c.r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nested_acquire_release),
        cmocka_unit_test(test_static_and_zero_init),
        cmocka_unit_test(test_other_thread_is_excluded),
        cmocka_unit_test(test_blocked_acquire_wakes_after_last_release),
        cmocka_unit_test(test_depth_overflow),
        cmocka_unit_test(test_mutual_exclusion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
