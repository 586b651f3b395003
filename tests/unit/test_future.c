/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for futures, promises, wait_many and the completion queue:
 * every public function and the internal calls executors make. An
 * allocator hook counts live blocks (to prove nothing leaks or stays
 * behind) and can fail allocations on demand.
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "future_impl.h"

/* ------------------------------------------------------------------------ */
/* Allocator hook: live block count, injected failures                       */

static _Atomic long live_blocks;
static _Atomic int fail_allocs; /* fail this many of the next allocations */

static bool
should_fail(void)
{
    int n = atomic_load(&fail_allocs);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&fail_allocs, &n, n - 1)) {
            return true;
        }
    }
    return false;
}

static void *
count_malloc(void *ctx, size_t size)
{
    (void)ctx;
    if (should_fail()) {
        return NULL;
    }
    void *p = malloc(size);
    if (p != NULL) {
        atomic_fetch_add(&live_blocks, 1);
    }
    return p;
}

static void *
count_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    if (should_fail()) {
        return NULL;
    }
    void *p = realloc(ptr, size);
    if (p != NULL && ptr == NULL) {
        atomic_fetch_add(&live_blocks, 1);
    }
    return p;
}

static void
count_free(void *ctx, void *ptr)
{
    (void)ctx;
    if (ptr != NULL) {
        atomic_fetch_sub(&live_blocks, 1);
    }
    free(ptr);
}

static long
live(void)
{
    return atomic_load(&live_blocks);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static weft_future_t *
promise(void)
{
    weft_future_t *f = NULL;
    assert_int_equal(weft_promise_create(&f), WEFT_OK);
    assert_non_null(f);
    return f;
}

static weft_future_t *
done_with(void *value)
{
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_result(f, value, NULL), WEFT_OK);
    return f;
}

static uint32_t
refs_of(weft_future_t *f)
{
    return atomic_load(&f->refs);
}

/* Block until a thread has announced that it parks on f. */
static void
await_waiter(weft_future_t *f)
{
    while (!(atomic_load(&f->wake) & WEFT__WAKE_WAITERS)) {
        weft_thread_yield();
    }
}

static int value_a = 1;
static int value_b = 2;

/* ------------------------------------------------------------------------ */
/* Layout and the internal calls                                             */

static void
test_alloc_layout(void **state)
{
    (void)state;
    assert_true(sizeof(struct weft_future) <= 136);
    long base = live();
    weft_future_t *f = weft__future_alloc(3);
    assert_non_null(f);
    assert_int_equal(live(), base + 1);
    assert_int_equal(refs_of(f), 3);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_PENDING);
    assert_int_equal(atomic_load(&f->wake), 0);
    assert_int_equal(atomic_load(&f->runner), 0);
    assert_null(atomic_load(&f->cbs));
    assert_null(f->fn);
    assert_null(f->arg);
    assert_null(f->label);
    assert_null(f->help);
    assert_true(f->start_by == WEFT_FOREVER);
    assert_int_equal(f->flags, 0);
    assert_int_equal(atomic_load(&f->token.cancelled), 0);
    weft_future_release(f);
    weft_future_release(f);
    assert_int_equal(live(), base + 1);
    weft_future_release(f);
    assert_int_equal(live(), base);
}

static void
test_claim(void **state)
{
    (void)state;
    weft_future_t *f = weft__future_alloc(1);
    assert_true(weft__future_claim(f));
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_RUNNING);
    assert_int_equal(atomic_load(&f->runner), weft__self_id());
    assert_false(weft__future_claim(f));
    assert_int_equal(weft_promise_start(f), WEFT_EPERM);
    assert_true(weft__future_finish(f, WEFT_OK, &value_a, NULL, NULL));
    assert_false(weft__future_claim(f));
    weft_future_release(f);

    f = weft__future_alloc(1);
    assert_true(weft_future_cancel(f));
    assert_false(weft__future_claim(f));
    assert_int_equal(atomic_load(&f->runner), 0);
    weft_future_release(f);
}

static void
test_finish_internal(void **state)
{
    (void)state;
    long base = live();
    weft_future_t *f = weft__future_alloc(1);
    assert_true(weft__future_claim(f));
    char *msg = weft__strndup("disk on fire", 100);
    assert_true(weft__future_finish(f, WEFT_EIO, NULL, NULL, msg));
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_FAILED);
    assert_int_equal(weft_future_code(f), WEFT_EIO);
    assert_string_equal(weft_future_error(f), "disk on fire");
    /* A second finish takes nothing: the caller still owns its message. */
    char *msg2 = weft__strndup("late", 100);
    assert_false(weft__future_finish(f, WEFT_OK, &value_a, NULL, msg2));
    assert_false(weft__future_set_cancelled(f));
    assert_int_equal(weft_future_code(f), WEFT_EIO);
    weft__free(msg2);
    weft_future_release(f);
    assert_int_equal(live(), base);

    /* DONE with a message: the message is freed (ownership was taken). */
    f = weft__future_alloc(1);
    assert_true(weft__future_finish(f, WEFT_OK, &value_b, NULL,
                                    weft__strndup("ignored", 100)));
    void *v = NULL;
    assert_int_equal(weft_future_result(f, &v), WEFT_OK);
    assert_ptr_equal(v, &value_b);
    assert_string_equal(weft_future_error(f), "");
    weft_future_release(f);
    assert_int_equal(live(), base);
}

static void
test_set_cancelled(void **state)
{
    (void)state;
    weft_future_t *f = weft__future_alloc(1);
    assert_true(weft__future_set_cancelled(f));
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_CANCELLED);
    assert_false(weft__future_set_cancelled(f));
    weft_future_release(f);

    /* Unlike weft_future_cancel, it also ends a RUNNING task's future. */
    f = weft__future_alloc(1);
    assert_true(weft__future_claim(f));
    assert_true(weft__future_set_cancelled(f));
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_CANCELLED);
    assert_int_equal(weft_future_result(f, NULL), WEFT_ECANCELED);
    weft_future_release(f);
}

static void
test_completing_reads_as_unfinished(void **state)
{
    (void)state;
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_start(f), WEFT_OK);
    /* What a reader sees while a finisher writes the outcome. */
    atomic_store(&f->state, WEFT__FUTURE_COMPLETING | WEFT_FUTURE_RUNNING);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_RUNNING);
    assert_false(weft_future_done(f));
    assert_int_equal(weft_future_code(f), WEFT_EAGAIN);
    assert_int_equal(weft_future_wait_until(f, 0), WEFT_ETIMEDOUT);
    assert_false(weft_future_cancel(f));
    assert_int_equal(weft_promise_set_result(f, NULL, NULL), WEFT_EPERM);
    atomic_store(&f->state, WEFT_FUTURE_RUNNING);
    assert_int_equal(weft_promise_set_result(f, NULL, NULL), WEFT_OK);
    weft_future_release(f);
}

/* ------------------------------------------------------------------------ */
/* Promises and outcomes                                                     */

static void
test_promise_done(void **state)
{
    (void)state;
    long base = live();
    weft_future_t *f = promise();
    assert_int_equal(refs_of(f), 1);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_PENDING);
    assert_false(weft_future_done(f));
    assert_int_equal(weft_future_code(f), WEFT_EAGAIN);
    assert_string_equal(weft_future_error(f), "");
    assert_int_equal(weft_promise_start(f), WEFT_OK);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_RUNNING);
    assert_false(weft_future_done(f));
    assert_int_equal(weft_promise_start(f), WEFT_EPERM);
    assert_int_equal(weft_promise_set_result(f, &value_a, NULL), WEFT_OK);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    assert_true(weft_future_done(f));
    assert_int_equal(weft_future_code(f), WEFT_OK);
    assert_string_equal(weft_future_error(f), "");
    void *v = NULL;
    assert_int_equal(weft_future_result(f, &v), WEFT_OK);
    assert_ptr_equal(v, &value_a);
    assert_int_equal(weft_future_result(f, NULL), WEFT_OK);
    v = NULL;
    assert_int_equal(weft_future_result_until(f, &v, 0), WEFT_OK);
    assert_ptr_equal(v, &value_a);
    assert_int_equal(weft_future_wait(f), WEFT_OK);
    assert_int_equal(weft_future_wait_until(f, 0), WEFT_OK);
    /* Finished futures stay as they are. */
    assert_int_equal(weft_promise_start(f), WEFT_EPERM);
    assert_int_equal(weft_promise_set_result(f, &value_b, NULL), WEFT_EPERM);
    assert_int_equal(weft_promise_set_failure(f, WEFT_EIO, "x"), WEFT_EPERM);
    assert_false(weft_future_cancel(f));
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    assert_int_equal(atomic_load(&f->token.cancelled), 0);
    assert_int_equal(weft_future_result(f, &v), WEFT_OK);
    assert_ptr_equal(v, &value_a);
    assert_ptr_equal(weft_future_retain(f), f);
    assert_int_equal(refs_of(f), 2);
    weft_future_release(f);
    assert_int_equal(refs_of(f), 1);
    weft_future_release(f);
    weft_future_release(NULL);
    assert_int_equal(live(), base);
}

static void
test_promise_set_result_from_pending(void **state)
{
    (void)state;
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_result(f, NULL, NULL), WEFT_OK);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    void *v = &value_a;
    assert_int_equal(weft_future_result(f, &v), WEFT_OK);
    assert_null(v);
    weft_future_release(f);
}

static void
test_promise_failed(void **state)
{
    (void)state;
    long base = live();
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_start(f), WEFT_OK);
    assert_int_equal(
        weft_promise_set_failure(f, WEFT_EIO, "read %s: %d", "disk", 5),
        WEFT_OK);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_FAILED);
    assert_true(weft_future_done(f));
    assert_int_equal(weft_future_code(f), WEFT_EIO);
    assert_string_equal(weft_future_error(f), "read disk: 5");
    void *v = &value_b;
    assert_int_equal(weft_future_result(f, &v), WEFT_EIO);
    assert_ptr_equal(v, &value_b);
    assert_int_equal(weft_future_result_until(f, &v, 0), WEFT_EIO);
    assert_int_equal(weft_future_take_result(f, &v), WEFT_EIO);
    assert_ptr_equal(v, &value_b);
    assert_int_equal(weft_future_wait(f), WEFT_OK);
    assert_int_equal(weft_promise_set_failure(f, WEFT_EINVAL, "again"),
                     WEFT_EPERM);
    assert_string_equal(weft_future_error(f), "read disk: 5");
    weft_future_release(f);
    assert_int_equal(live(), base);
}

static void
test_failure_message_truncated(void **state)
{
    (void)state;
    char *big = malloc(3001);
    assert_non_null(big);
    memset(big, 'x', 3000);
    big[3000] = '\0';
    big[1023] = 'y';
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_failure(f, WEFT_EIO, "%s", big), WEFT_OK);
    const char *m = weft_future_error(f);
    assert_int_equal(strlen(m), 1024);
    assert_int_equal(m[1023], 'y');
    assert_int_equal(strncmp(m, big, 1024), 0);
    weft_future_release(f);
    free(big);

    /* Exactly at the limit and one short of it: kept whole. */
    char exact[1025];
    memset(exact, 'z', 1024);
    exact[1024] = '\0';
    f = promise();
    assert_int_equal(weft_promise_set_failure(f, WEFT_EIO, "%s", exact),
                     WEFT_OK);
    assert_string_equal(weft_future_error(f), exact);
    weft_future_release(f);
    exact[1023] = '\0';
    f = promise();
    assert_int_equal(weft_promise_set_failure(f, WEFT_EIO, "%s", exact),
                     WEFT_OK);
    assert_string_equal(weft_future_error(f), exact);
    weft_future_release(f);
}

static void
test_failure_without_message(void **state)
{
    (void)state;
    long base = live();
    weft_future_t *f = promise();
    /* Through a pointer without the printf attribute: a NULL format is
     * allowed and means "no message". */
    int (*set_failure)(weft_future_t *, int, const char *, ...) =
        weft_promise_set_failure;
    assert_int_equal(set_failure(f, WEFT_EIO, NULL), WEFT_OK);
    assert_string_equal(weft_future_error(f), "");
    assert_int_equal(weft_future_code(f), WEFT_EIO);
    weft_future_release(f);

    /* No memory for the message: still FAILED, with no message. */
    f = promise();
    atomic_store(&fail_allocs, 1);
    assert_int_equal(weft_promise_set_failure(f, WEFT_ENOSYS, "lost %d", 1),
                     WEFT_OK);
    assert_int_equal(atomic_load(&fail_allocs), 0);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_FAILED);
    assert_int_equal(weft_future_code(f), WEFT_ENOSYS);
    assert_string_equal(weft_future_error(f), "");
    weft_future_release(f);
    assert_int_equal(live(), base);
}

/* ------------------------------------------------------------------------ */
/* Cancellation                                                              */

static void
test_cancel_pending(void **state)
{
    (void)state;
    weft_future_t *f = promise();
    assert_true(weft_future_cancel(f));
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_CANCELLED);
    assert_true(weft_future_done(f));
    assert_int_equal(weft_future_code(f), WEFT_ECANCELED);
    assert_string_equal(weft_future_error(f), "");
    void *v = &value_a;
    assert_int_equal(weft_future_result(f, &v), WEFT_ECANCELED);
    assert_ptr_equal(v, &value_a);
    assert_int_equal(weft_future_take_result(f, &v), WEFT_ECANCELED);
    assert_int_equal(weft_future_wait(f), WEFT_OK);
    assert_false(weft_future_cancel(f));
    assert_int_equal(weft_promise_start(f), WEFT_ECANCELED);
    assert_int_equal(weft_promise_set_result(f, &value_a, NULL), WEFT_EPERM);
    assert_int_equal(weft_promise_set_failure(f, WEFT_EIO, "no"), WEFT_EPERM);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_CANCELLED);
    /* Nothing was running: no token to fire. */
    assert_int_equal(atomic_load(&f->token.cancelled), 0);
    weft_future_release(f);
}

static void
test_cancel_running(void **state)
{
    (void)state;
    weft_future_t *f = weft__future_alloc(1);
    assert_true(weft__future_claim(f));
    assert_false(weft_future_cancel(f));
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_RUNNING);
    assert_true(weft__cancel_is_fired(&f->token));
    /* The task decides how it ends. */
    assert_false(weft_future_cancel(f));
    assert_true(weft__future_finish(f, WEFT_OK, &value_a, NULL, NULL));
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_DONE);
    weft_future_release(f);

    f = promise();
    assert_int_equal(weft_promise_start(f), WEFT_OK);
    assert_false(weft_future_cancel(f));
    assert_true(weft__cancel_is_fired(&f->token));
    assert_int_equal(weft_promise_set_failure(f, WEFT_ECANCELED, "stopped"),
                     WEFT_OK);
    assert_int_equal(weft_future_state(f), WEFT_FUTURE_FAILED);
    weft_future_release(f);
}

/* ------------------------------------------------------------------------ */
/* Results: take and the destructor                                          */

static _Atomic int dtor_calls;
static _Atomic uint32_t dtor_thread;
static void *dtor_arg;

static void
count_dtor(void *v)
{
    dtor_arg = v;
    atomic_store(&dtor_thread, weft__self_id());
    atomic_fetch_add(&dtor_calls, 1);
}

static void
test_take_result(void **state)
{
    (void)state;
    atomic_store(&dtor_calls, 0);
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_result(f, &value_a, count_dtor), WEFT_OK);
    void *v = NULL;
    assert_int_equal(weft_future_take_result(f, &v), WEFT_OK);
    assert_ptr_equal(v, &value_a);
    v = &value_b;
    assert_int_equal(weft_future_take_result(f, &v), WEFT_EPERM);
    assert_ptr_equal(v, &value_b);
    weft_future_release(f);
    assert_int_equal(atomic_load(&dtor_calls), 0);
}

static void
test_dtor_once_on_last_release(void **state)
{
    (void)state;
    atomic_store(&dtor_calls, 0);
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_result(f, &value_b, count_dtor), WEFT_OK);
    weft_future_retain(f);
    void *v = NULL;
    assert_int_equal(weft_future_result(f, &v), WEFT_OK);
    weft_future_release(f);
    assert_int_equal(atomic_load(&dtor_calls), 0);
    weft_future_release(f);
    assert_int_equal(atomic_load(&dtor_calls), 1);
    assert_ptr_equal(dtor_arg, &value_b);

    /* A refused value stays the caller's: its destructor never runs. */
    atomic_store(&dtor_calls, 0);
    f = promise();
    assert_int_equal(weft_promise_set_failure(f, WEFT_EIO, "no"), WEFT_OK);
    assert_int_equal(weft_promise_set_result(f, &value_a, count_dtor),
                     WEFT_EPERM);
    weft_future_release(f);
    f = promise();
    assert_true(weft_future_cancel(f));
    assert_int_equal(weft_promise_set_result(f, &value_a, count_dtor),
                     WEFT_EPERM);
    weft_future_release(f);
    /* A failure never keeps a value, whatever the finisher passes. */
    f = weft__future_alloc(1);
    assert_true(weft__future_finish(f, WEFT_EIO, &value_a, count_dtor, NULL));
    weft_future_release(f);
    assert_int_equal(atomic_load(&dtor_calls), 0);
}

static void *
release_it(void *arg)
{
    weft_future_release(arg);
    return NULL;
}

static void
test_dtor_on_releasing_thread(void **state)
{
    (void)state;
    atomic_store(&dtor_calls, 0);
    atomic_store(&dtor_thread, 0);
    weft_future_t *f = promise();
    assert_int_equal(weft_promise_set_result(f, &value_a, count_dtor), WEFT_OK);
    wt_join(wt_start(release_it, f));
    assert_int_equal(atomic_load(&dtor_calls), 1);
    assert_int_not_equal(atomic_load(&dtor_thread), 0);
    assert_int_not_equal(atomic_load(&dtor_thread), weft__self_id());
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                   */

static void
test_wait_times_out(void **state)
{
    (void)state;
    weft_future_t *f = promise();
    assert_int_equal(weft_future_wait_until(f, 0), WEFT_ETIMEDOUT);
    assert_int_equal(weft_future_wait_until(f, weft_now() - WEFT_SEC),
                     WEFT_ETIMEDOUT);
    /* Polls leave no waiter mark (the finish would make a needless wake). */
    assert_int_equal(atomic_load(&f->wake), 0);
    weft_time_t t0 = weft_now();
    assert_int_equal(weft_future_wait_until(f, t0 + 20 * WEFT_MSEC),
                     WEFT_ETIMEDOUT);
    assert_true(weft_now() - t0 >= 20 * WEFT_MSEC);
    void *v = &value_a;
    assert_int_equal(
        weft_future_result_until(f, &v, weft_deadline_in(WEFT_MSEC)),
        WEFT_ETIMEDOUT);
    assert_ptr_equal(v, &value_a);
    assert_false(weft_future_done(f));
    /* The timed-out waiter left its mark; the finish still works. */
    assert_int_equal(atomic_load(&f->wake), WEFT__WAKE_WAITERS);
    assert_int_equal(weft_promise_set_result(f, &value_b, NULL), WEFT_OK);
    assert_int_equal(atomic_load(&f->wake), WEFT__WAKE_FINISHED);
    assert_int_equal(weft_future_wait_until(f, 0), WEFT_OK);
    weft_future_release(f);
}

static void
test_unwaited_finish_leaves_no_mark(void **state)
{
    (void)state;
    weft_future_t *f = promise();
    assert_int_equal(atomic_load(&f->wake), 0);
    assert_int_equal(weft_promise_set_result(f, NULL, NULL), WEFT_OK);
    assert_int_equal(atomic_load(&f->wake), WEFT__WAKE_FINISHED);
    weft_future_release(f);
}

struct waiter {
    weft_future_t *f;
    int how; /* 0 wait, 1 result, 2 result_until, 3 take */
    int rc;
    void *value;
};

static void *
waiter_main(void *arg)
{
    struct waiter *w = arg;
    switch (w->how) {
    case 0:
        w->rc = weft_future_wait(w->f);
        if (w->rc == WEFT_OK) {
            w->rc = weft_future_result_until(w->f, &w->value, 0);
        }
        break;
    case 1:
        w->rc = weft_future_result(w->f, &w->value);
        break;
    case 2:
        w->rc = weft_future_result_until(w->f, &w->value,
                                         weft_deadline_in(60 * WEFT_SEC));
        break;
    default:
        w->rc = weft_future_take_result(w->f, &w->value);
        break;
    }
    return NULL;
}

static void
run_waiters(unsigned spurious)
{
    enum { N = 8 };
    weft__test_spurious_wakeups(spurious);
    weft_future_t *f = promise();
    struct waiter w[N];
    weft_thread_t *t[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct waiter){f, i % 3, -100, NULL};
        t[i] = wt_start(waiter_main, &w[i]);
    }
    await_waiter(f);
    weft_thread_yield();
    assert_false(weft_future_done(f));
    assert_int_equal(weft_promise_set_result(f, &value_a, NULL), WEFT_OK);
    for (int i = 0; i < N; i++) {
        wt_join(t[i]);
        assert_int_equal(w[i].rc, WEFT_OK);
        assert_ptr_equal(w[i].value, &value_a);
    }
    weft__test_spurious_wakeups(0);
    weft_future_release(f);
}

static void
test_waiters_woken(void **state)
{
    (void)state;
    run_waiters(0);
}

static void
test_waiters_spurious(void **state)
{
    (void)state;
    run_waiters(2);
}

static void
test_take_from_another_thread(void **state)
{
    (void)state;
    weft_future_t *f = promise();
    struct waiter w = {f, 3, -100, NULL};
    weft_thread_t *t = wt_start(waiter_main, &w);
    await_waiter(f);
    assert_int_equal(weft_promise_set_result(f, &value_b, NULL), WEFT_OK);
    wt_join(t);
    assert_int_equal(w.rc, WEFT_OK);
    assert_ptr_equal(w.value, &value_b);
    void *v = NULL;
    assert_int_equal(weft_future_take_result(f, &v), WEFT_EPERM);
    weft_future_release(f);
}

/* A thread whose waits are cancelled through a token. */
struct cancelled_wait {
    weft__cancel_t tok;
    weft_future_t *f;
    weft_completion_queue_t *cq;
    int which; /* 0 wait, 1 result_until, 2 wait_many, 3 cq_next */
    int rc;
};

static void *
cancelled_main(void *arg)
{
    struct cancelled_wait *c = arg;
    weft__cancel_t *prev = weft__cancel_enter(&c->tok);
    void *v = NULL;
    weft_future_t *out = NULL;
    switch (c->which) {
    case 0:
        c->rc = weft_future_wait(c->f);
        break;
    case 1:
        c->rc = weft_future_result_until(c->f, &v, WEFT_FOREVER);
        break;
    case 2:
        c->rc = weft_future_wait_many(&c->f, 1, WEFT_ALL_COMPLETED,
                                      WEFT_FOREVER, NULL);
        break;
    default:
        c->rc = weft_cq_next(c->cq, &out);
        if (c->rc == WEFT_OK) {
            assert_ptr_equal(out, c->f);
            weft_future_release(out);
        }
        break;
    }
    weft__cancel_enter(prev);
    return NULL;
}

static void
test_wait_cancelled(void **state)
{
    (void)state;
    for (int which = 0; which < 4; which++) {
        weft_future_t *f = promise();
        weft_completion_queue_t *cq = NULL;
        assert_int_equal(weft_cq_create(&cq), WEFT_OK);
        assert_int_equal(weft_cq_add(cq, f), WEFT_OK);
        struct cancelled_wait c = {WEFT__CANCEL_INIT, f, cq, which, -100};
        weft_thread_t *t = wt_start(cancelled_main, &c);
        /* Wait until the thread sleeps under its token. */
        while (atomic_load(&c.tok.parked_on) == NULL) {
            weft_thread_yield();
        }
        weft__cancel_fire(&c.tok);
        wt_join(t);
        assert_int_equal(c.rc, WEFT_ECANCELED);
        assert_int_equal(weft_future_state(f), WEFT_FUTURE_PENDING);
        /* A cancelled task still sees a finished future as finished. */
        assert_int_equal(weft_promise_set_result(f, &value_a, NULL), WEFT_OK);
        c.rc = -100;
        t = wt_start(cancelled_main, &c);
        wt_join(t);
        assert_int_equal(c.rc, WEFT_OK);
        weft_cq_destroy(cq);
        weft_future_release(f);
    }
}

/* A task cancelled before it waits: nothing is marked or registered. */
static void
test_wait_cancelled_before(void **state)
{
    (void)state;
    long base = live();
    weft_future_t *f = promise();
    weft_completion_queue_t *cq = NULL;
    assert_int_equal(weft_cq_create(&cq), WEFT_OK);
    assert_int_equal(weft_cq_add(cq, f), WEFT_OK);
    weft__cancel_t tok = WEFT__CANCEL_INIT;
    weft__cancel_fire(&tok);
    weft__cancel_t *prev = weft__cancel_enter(&tok);
    void *v = &value_a;
    weft_future_t *out = NULL;
    int rc_wait = weft_future_wait(f);
    int rc_result = weft_future_result_until(f, &v, WEFT_FOREVER);
    int rc_many =
        weft_future_wait_many(&f, 1, WEFT_ALL_COMPLETED, WEFT_FOREVER, NULL);
    int rc_next = weft_cq_next(cq, &out);
    weft__cancel_enter(prev);
    assert_int_equal(rc_wait, WEFT_ECANCELED);
    assert_int_equal(rc_result, WEFT_ECANCELED);
    assert_int_equal(rc_many, WEFT_ECANCELED);
    assert_int_equal(rc_next, WEFT_ECANCELED);
    assert_ptr_equal(v, &value_a);
    assert_null(out);
    assert_int_equal(atomic_load(&f->wake), 0);
    /* Only the queue's node sits on f. */
    struct weft__fcb *cb = atomic_load(&f->cbs);
    assert_non_null(cb);
    assert_null(cb->next);
    weft_cq_destroy(cq);
    assert_true(weft_future_cancel(f));
    weft_future_release(f);
    assert_int_equal(live(), base);
}

static void
test_wait_on_itself(void **state)
{
    (void)state;
    weft_future_t *f = weft__future_alloc(1);
    weft_future_t *g = promise();
    assert_true(weft__future_claim(f));
    void *v = &value_a;
    assert_int_equal(weft_future_wait(f), WEFT_EDEADLK);
    assert_int_equal(weft_future_wait_until(f, 0), WEFT_EDEADLK);
    assert_int_equal(weft_future_result(f, &v), WEFT_EDEADLK);
    assert_int_equal(weft_future_take_result(f, &v), WEFT_EDEADLK);
    assert_ptr_equal(v, &value_a);
    weft_future_t *fs[2] = {f, g};
    size_t idx = 99;
    assert_int_equal(
        weft_future_wait_many(fs, 1, WEFT_FIRST_COMPLETED, WEFT_FOREVER, &idx),
        WEFT_EDEADLK);
    assert_int_equal(
        weft_future_wait_many(fs, 2, WEFT_ALL_COMPLETED, WEFT_FOREVER, &idx),
        WEFT_EDEADLK);
    /* g may still finish (or fail): not a deadlock. */
    assert_int_equal(
        weft_future_wait_many(fs, 2, WEFT_FIRST_COMPLETED, 0, &idx),
        WEFT_ETIMEDOUT);
    assert_int_equal(
        weft_future_wait_many(fs, 2, WEFT_FIRST_EXCEPTION, 0, &idx),
        WEFT_ETIMEDOUT);
    assert_int_equal(idx, 99);
    /* Another thread may wait for it. */
    struct waiter w = {f, 1, -100, NULL};
    weft_thread_t *t = wt_start(waiter_main, &w);
    await_waiter(f);
    assert_true(weft__future_finish(f, WEFT_OK, &value_b, NULL, NULL));
    wt_join(t);
    assert_int_equal(w.rc, WEFT_OK);
    assert_ptr_equal(w.value, &value_b);
    assert_int_equal(weft_future_wait(f), WEFT_OK);
    assert_int_equal(weft_promise_set_result(g, NULL, NULL), WEFT_OK);
    weft_future_release(f);
    weft_future_release(g);
}

static _Atomic int help_calls;

static bool
help_runs_it(weft_future_t *f)
{
    atomic_fetch_add(&help_calls, 1);
    return weft__future_claim(f) &&
           weft__future_finish(f, WEFT_OK, &value_b, NULL, NULL);
}

static bool
help_declines(weft_future_t *f)
{
    (void)f;
    atomic_fetch_add(&help_calls, 1);
    return false;
}

static void
test_wait_helps(void **state)
{
    (void)state;
    atomic_store(&help_calls, 0);
    weft_future_t *f = weft__future_alloc(1);
    f->help = help_runs_it;
    void *v = NULL;
    assert_int_equal(weft_future_result(f, &v), WEFT_OK);
    assert_ptr_equal(v, &value_b);
    assert_int_equal(atomic_load(&help_calls), 1);
    /* Finished: no more help. */
    assert_int_equal(weft_future_wait(f), WEFT_OK);
    assert_int_equal(atomic_load(&help_calls), 1);
    weft_future_release(f);

    atomic_store(&help_calls, 0);
    f = weft__future_alloc(1);
    f->help = help_declines;
    assert_int_equal(weft_future_wait_until(f, weft_deadline_in(WEFT_MSEC)),
                     WEFT_ETIMEDOUT);
    assert_int_equal(atomic_load(&help_calls), 1);
    size_t idx = 7;
    assert_int_equal(weft_future_wait_many(&f, 1, WEFT_ALL_COMPLETED, 0, &idx),
                     WEFT_ETIMEDOUT);
    assert_int_equal(atomic_load(&help_calls), 2);
    f->help = help_runs_it;
    assert_int_equal(weft_future_wait_many(&f, 1, WEFT_ALL_COMPLETED, 0, &idx),
                     WEFT_OK);
    assert_int_equal(idx, 0);
    assert_int_equal(atomic_load(&help_calls), 3);
    weft_future_release(f);
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                 */

struct cb_log {
    _Atomic int n;
    int order[16];
    uint32_t thread[16];
    void *seen[16];
    int calls[16];
};

struct cb_arg {
    struct cb_log *log;
    int id;
};

static void
log_cb(weft_future_t *f, void *ctx)
{
    struct cb_arg *a = ctx;
    int k = atomic_fetch_add(&a->log->n, 1);
    a->log->order[k] = a->id;
    a->log->thread[a->id] = weft__self_id();
    a->log->calls[a->id]++;
    void *v = NULL;
    /* The outcome is visible to the callback; no wait needed. */
    assert_true(weft_future_done(f));
    if (weft_future_result_until(f, &v, 0) == WEFT_OK) {
        a->log->seen[a->id] = v;
    }
}

struct finisher {
    weft_future_t *f;
    uint32_t id;
};

static void *
finisher_main(void *arg)
{
    struct finisher *fin = arg;
    fin->id = weft__self_id();
    assert_int_equal(weft_promise_set_result(fin->f, &value_a, NULL), WEFT_OK);
    return NULL;
}

static void
test_on_done_order_and_thread(void **state)
{
    (void)state;
    long base = live();
    struct cb_log log;
    memset(&log, 0, sizeof(log));
    struct cb_arg args[8];
    weft_future_t *f = promise();
    for (int i = 0; i < 5; i++) {
        args[i] = (struct cb_arg){&log, i};
        assert_int_equal(weft_future_on_done(f, log_cb, &args[i]), WEFT_OK);
    }
    assert_int_equal(atomic_load(&log.n), 0);
    struct finisher fin = {f, 0};
    wt_join(wt_start(finisher_main, &fin));
    assert_int_equal(atomic_load(&log.n), 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(log.order[i], i);
        assert_int_equal(log.calls[i], 1);
        assert_int_equal(log.thread[i], fin.id);
        assert_ptr_equal(log.seen[i], &value_a);
    }
    /* After the finish: at once, on the caller, before on_done returns. */
    for (int i = 5; i < 8; i++) {
        args[i] = (struct cb_arg){&log, i};
        assert_int_equal(weft_future_on_done(f, log_cb, &args[i]), WEFT_OK);
        assert_int_equal(atomic_load(&log.n), i + 1);
        assert_int_equal(log.thread[i], weft__self_id());
        assert_int_equal(log.calls[i], 1);
    }
    weft_future_release(f);
    assert_int_equal(live(), base);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(log.calls[i], 1);
    }
}

static void
test_on_done_failed_and_cancelled(void **state)
{
    (void)state;
    struct cb_log log;
    memset(&log, 0, sizeof(log));
    struct cb_arg a0 = {&log, 0};
    struct cb_arg a1 = {&log, 1};
    weft_future_t *f = promise();
    weft_future_t *g = promise();
    assert_int_equal(weft_future_on_done(f, log_cb, &a0), WEFT_OK);
    assert_int_equal(weft_future_on_done(g, log_cb, &a1), WEFT_OK);
    assert_int_equal(weft_promise_set_failure(f, WEFT_EIO, "x"), WEFT_OK);
    assert_true(weft_future_cancel(g));
    assert_int_equal(atomic_load(&log.n), 2);
    assert_int_equal(log.calls[0], 1);
    assert_int_equal(log.calls[1], 1);
    assert_null(log.seen[0]);
    assert_null(log.seen[1]);
    weft_future_release(f);
    weft_future_release(g);
}

static void
test_on_done_enomem(void **state)
{
    (void)state;
    long base = live();
    struct cb_log log;
    memset(&log, 0, sizeof(log));
    struct cb_arg a0 = {&log, 0};
    weft_future_t *f = promise();
    atomic_store(&fail_allocs, 1);
    assert_int_equal(weft_future_on_done(f, log_cb, &a0), WEFT_ENOMEM);
    assert_int_equal(weft_promise_set_result(f, NULL, NULL), WEFT_OK);
    assert_int_equal(atomic_load(&log.n), 0);
    /* Finished: nothing to allocate, so it cannot fail. */
    atomic_store(&fail_allocs, 1);
    assert_int_equal(weft_future_on_done(f, log_cb, &a0), WEFT_OK);
    assert_int_equal(atomic_load(&fail_allocs), 1);
    atomic_store(&fail_allocs, 0);
    assert_int_equal(atomic_load(&log.n), 1);
    weft_future_release(f);
    assert_int_equal(live(), base);
}

static void
test_on_done_never_finished(void **state)
{
    (void)state;
    long base = live();
    struct cb_log log;
    memset(&log, 0, sizeof(log));
    struct cb_arg a0 = {&log, 0};
    weft_future_t *f = promise();
    assert_int_equal(weft_future_on_done(f, log_cb, &a0), WEFT_OK);
    assert_int_equal(weft_future_on_done(f, log_cb, &a0), WEFT_OK);
    assert_int_equal(live(), base + 3);
    weft_future_release(f);
    assert_int_equal(live(), base);
    assert_int_equal(atomic_load(&log.n), 0);
}

/* A callback may register another one: it runs at once (f is sealed). */
static struct cb_arg nested_arg;

static void
nesting_cb(weft_future_t *f, void *ctx)
{
    (void)ctx;
    assert_int_equal(weft_future_on_done(f, log_cb, &nested_arg), WEFT_OK);
}

static void
test_on_done_nested(void **state)
{
    (void)state;
    struct cb_log log;
    memset(&log, 0, sizeof(log));
    nested_arg = (struct cb_arg){&log, 3};
    weft_future_t *f = promise();
    assert_int_equal(weft_future_on_done(f, nesting_cb, NULL), WEFT_OK);
    assert_int_equal(weft_promise_set_result(f, &value_b, NULL), WEFT_OK);
    assert_int_equal(atomic_load(&log.n), 1);
    assert_ptr_equal(log.seen[3], &value_b);
    weft_future_release(f);
}

/* ------------------------------------------------------------------------ */
/* wait_many                                                                 */

static void
test_wait_many_already(void **state)
{
    (void)state;
    weft_future_t *p = promise();
    weft_future_t *d = done_with(&value_a);
    weft_future_t *x = promise();
    assert_int_equal(weft_promise_set_failure(x, WEFT_EIO, "x"), WEFT_OK);
    weft_future_t *c = promise();
    assert_true(weft_future_cancel(c));
    size_t idx = 99;

    weft_future_t *a1[] = {p, d, x};
    assert_int_equal(
        weft_future_wait_many(a1, 3, WEFT_FIRST_COMPLETED, 0, &idx), WEFT_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(
        weft_future_wait_many(a1, 3, WEFT_FIRST_EXCEPTION, 0, &idx), WEFT_OK);
    assert_int_equal(idx, 2);
    idx = 99;
    assert_int_equal(weft_future_wait_many(a1, 3, WEFT_ALL_COMPLETED, 0, &idx),
                     WEFT_ETIMEDOUT);
    assert_int_equal(idx, 99);
    /* A poll registers nothing. */
    assert_null(atomic_load(&p->cbs));

    weft_future_t *a2[] = {d, p, c};
    assert_int_equal(
        weft_future_wait_many(a2, 3, WEFT_FIRST_EXCEPTION, 0, &idx), WEFT_OK);
    assert_int_equal(idx, 2);

    weft_future_t *a3[] = {d, d, x, c};
    assert_int_equal(weft_future_wait_many(a3, 4, WEFT_ALL_COMPLETED, 0, &idx),
                     WEFT_OK);
    assert_int_equal(idx, 3);
    weft_future_t *a4[] = {d, d};
    assert_int_equal(
        weft_future_wait_many(a4, 2, WEFT_FIRST_EXCEPTION, 0, &idx), WEFT_OK);
    assert_int_equal(idx, 1);
    assert_int_equal(
        weft_future_wait_many(a4, 2, WEFT_FIRST_COMPLETED, 0, NULL), WEFT_OK);

    idx = 99;
    assert_int_equal(
        weft_future_wait_many(NULL, 0, WEFT_ALL_COMPLETED, 0, &idx), WEFT_OK);
    assert_int_equal(idx, 99);
    weft_future_t *a5[] = {p};
    assert_int_equal(weft_future_wait_many(a5, 1, WEFT_FIRST_COMPLETED,
                                           weft_deadline_in(WEFT_MSEC), &idx),
                     WEFT_ETIMEDOUT);
    assert_int_equal(idx, 99);

    assert_true(weft_future_cancel(p));
    weft_future_release(p);
    weft_future_release(d);
    weft_future_release(x);
    weft_future_release(c);
}

struct many_waiter {
    weft_future_t **fs;
    size_t n;
    weft_wait_mode_t mode;
    int rc;
    size_t idx;
    weft_future_t *parked_on; /* a future whose callbacks to watch */
};

static void *
many_main(void *arg)
{
    struct many_waiter *m = arg;
    m->rc = weft_future_wait_many(m->fs, m->n, m->mode,
                                  weft_deadline_in(60 * WEFT_SEC), &m->idx);
    return NULL;
}

/* Wait until the waiter's callbacks sit on f. */
static void
await_registered(weft_future_t *f)
{
    while (atomic_load(&f->cbs) == NULL) {
        weft_thread_yield();
    }
}

static void
test_wait_many_blocks(void **state)
{
    (void)state;
    long base = live();
    weft_future_t *fs[3] = {promise(), promise(), promise()};
    struct many_waiter m = {fs, 3, WEFT_FIRST_COMPLETED, -100, 99, NULL};
    weft_thread_t *t = wt_start(many_main, &m);
    await_registered(fs[2]);
    assert_int_equal(weft_promise_set_result(fs[2], NULL, NULL), WEFT_OK);
    wt_join(t);
    assert_int_equal(m.rc, WEFT_OK);
    assert_int_equal(m.idx, 2);

    m = (struct many_waiter){fs, 3, WEFT_FIRST_EXCEPTION, -100, 99, NULL};
    t = wt_start(many_main, &m);
    await_registered(fs[1]);
    assert_int_equal(weft_promise_set_failure(fs[1], WEFT_EIO, "x"), WEFT_OK);
    wt_join(t);
    assert_int_equal(m.rc, WEFT_OK);
    assert_int_equal(m.idx, 1);

    m = (struct many_waiter){fs, 3, WEFT_ALL_COMPLETED, -100, 99, NULL};
    t = wt_start(many_main, &m);
    await_registered(fs[0]);
    assert_int_equal(weft_promise_set_result(fs[0], NULL, NULL), WEFT_OK);
    wt_join(t);
    assert_int_equal(m.rc, WEFT_OK);
    assert_int_equal(m.idx, 2);
    for (int i = 0; i < 3; i++) {
        weft_future_release(fs[i]);
    }
    assert_int_equal(live(), base);
}

static void
test_wait_many_first_exception_all_ok(void **state)
{
    (void)state;
    weft_future_t *fs[2] = {promise(), promise()};
    struct many_waiter m = {fs, 2, WEFT_FIRST_EXCEPTION, -100, 99, NULL};
    weft_thread_t *t = wt_start(many_main, &m);
    await_registered(fs[1]);
    assert_int_equal(weft_promise_set_result(fs[1], NULL, NULL), WEFT_OK);
    assert_int_equal(weft_promise_set_result(fs[0], NULL, NULL), WEFT_OK);
    wt_join(t);
    assert_int_equal(m.rc, WEFT_OK);
    assert_int_equal(m.idx, 1);
    weft_future_release(fs[0]);
    weft_future_release(fs[1]);
}

/* The waiter's nodes outlive an early return and go when the futures
 * finish or die: nothing leaks either way. */
static void
test_wait_many_leftovers(void **state)
{
    (void)state;
    long base = live();
    weft_future_t *fs[3] = {promise(), promise(), promise()};
    for (int round = 0; round < 3; round++) {
        assert_int_equal(weft_future_wait_many(fs, 3, WEFT_ALL_COMPLETED,
                                               weft_deadline_in(WEFT_MSEC),
                                               NULL),
                         WEFT_ETIMEDOUT);
    }
    /* Three futures and three shared waiters. */
    assert_int_equal(live(), base + 6);
    assert_int_equal(weft_promise_set_result(fs[0], NULL, NULL), WEFT_OK);
    assert_int_equal(live(), base + 6);
    weft_future_release(fs[1]);
    assert_int_equal(live(), base + 5);
    assert_int_equal(weft_promise_set_result(fs[2], NULL, NULL), WEFT_OK);
    assert_int_equal(live(), base + 2);
    weft_future_release(fs[0]);
    weft_future_release(fs[2]);
    assert_int_equal(live(), base);
}

static void
test_wait_many_enomem(void **state)
{
    (void)state;
    long base = live();
    weft_future_t *f = promise();
    atomic_store(&fail_allocs, 1);
    size_t idx = 99;
    assert_int_equal(
        weft_future_wait_many(&f, 1, WEFT_ALL_COMPLETED, WEFT_FOREVER, &idx),
        WEFT_ENOMEM);
    assert_int_equal(idx, 99);
    assert_null(atomic_load(&f->cbs));
    weft_future_release(f);
    assert_int_equal(live(), base);
}

/* ------------------------------------------------------------------------ */
/* Completion queue                                                          */

static void
test_cq_completion_order(void **state)
{
    (void)state;
    long base = live();
    weft_completion_queue_t *cq = NULL;
    assert_int_equal(weft_cq_create(&cq), WEFT_OK);
    assert_int_equal(weft_cq_pending(cq), 0);
    weft_future_t *out = NULL;
    assert_int_equal(weft_cq_next(cq, &out), WEFT_ECLOSED);
    assert_null(out);
    weft_future_t *fs[3] = {promise(), promise(), promise()};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(weft_cq_add(cq, fs[i]), WEFT_OK);
        assert_int_equal(refs_of(fs[i]), 2);
    }
    assert_int_equal(weft_cq_pending(cq), 3);
    assert_int_equal(weft_cq_next_until(cq, &out, 0), WEFT_ETIMEDOUT);
    assert_int_equal(weft_cq_next_until(cq, &out, weft_deadline_in(WEFT_MSEC)),
                     WEFT_ETIMEDOUT);
    assert_null(out);
    assert_int_equal(weft_promise_set_result(fs[1], NULL, NULL), WEFT_OK);
    assert_int_equal(weft_promise_set_failure(fs[2], WEFT_EIO, "x"), WEFT_OK);
    assert_true(weft_future_cancel(fs[0]));
    int expect[3] = {1, 2, 0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(weft_cq_next_until(cq, &out, 0), WEFT_OK);
        assert_ptr_equal(out, fs[expect[i]]);
        assert_int_equal(weft_cq_pending(cq), (size_t)(2 - i));
        /* The queue's reference is now the caller's. */
        assert_int_equal(refs_of(out), 2);
        weft_future_release(out);
        assert_int_equal(refs_of(out), 1);
    }
    out = NULL;
    assert_int_equal(weft_cq_next(cq, &out), WEFT_ECLOSED);
    assert_null(out);
    for (int i = 0; i < 3; i++) {
        weft_future_release(fs[i]);
    }
    /* Only the queue itself is left. */
    assert_int_equal(live(), base + 1);
    weft_cq_destroy(cq);
    assert_int_equal(live(), base);
    weft_cq_destroy(NULL);
}

static void
test_cq_add_finished(void **state)
{
    (void)state;
    weft_completion_queue_t *cq = NULL;
    assert_int_equal(weft_cq_create(&cq), WEFT_OK);
    weft_future_t *f = done_with(&value_a);
    assert_int_equal(weft_cq_add(cq, f), WEFT_OK);
    assert_int_equal(weft_cq_add(cq, f), WEFT_OK); /* twice: two hand-overs */
    assert_int_equal(weft_cq_pending(cq), 2);
    assert_int_equal(refs_of(f), 3);
    weft_future_t *out = NULL;
    assert_int_equal(weft_cq_next(cq, &out), WEFT_OK);
    assert_ptr_equal(out, f);
    weft_future_release(out);
    assert_int_equal(weft_cq_next(cq, &out), WEFT_OK);
    weft_future_release(out);
    assert_int_equal(weft_cq_next(cq, &out), WEFT_ECLOSED);
    assert_int_equal(refs_of(f), 1);
    weft_cq_destroy(cq);
    weft_future_release(f);
}

struct consumer {
    weft_completion_queue_t *cq;
    int got;
    int closed;
    int other;
};

static void *
consumer_main(void *arg)
{
    struct consumer *c = arg;
    for (;;) {
        weft_future_t *out = NULL;
        int rc = weft_cq_next(c->cq, &out);
        if (rc == WEFT_OK) {
            assert_true(weft_future_done(out));
            weft_future_release(out);
            c->got++;
        } else if (rc == WEFT_ECLOSED) {
            c->closed++;
            return NULL;
        } else {
            c->other++;
            return NULL;
        }
    }
}

static void
test_cq_consumers_block(void **state)
{
    (void)state;
    enum { C = 3, N = 5 };
    weft_completion_queue_t *cq = NULL;
    assert_int_equal(weft_cq_create(&cq), WEFT_OK);
    weft_future_t *fs[N];
    for (int i = 0; i < N; i++) {
        fs[i] = promise();
        assert_int_equal(weft_cq_add(cq, fs[i]), WEFT_OK);
    }
    struct consumer c[C];
    weft_thread_t *t[C];
    for (int i = 0; i < C; i++) {
        c[i] = (struct consumer){cq, 0, 0, 0};
        t[i] = wt_start(consumer_main, &c[i]);
    }
    for (int i = 0; i < N; i++) {
        weft_sleep_for(WEFT_MSEC);
        assert_int_equal(weft_promise_set_result(fs[i], NULL, NULL), WEFT_OK);
    }
    int got = 0;
    for (int i = 0; i < C; i++) {
        wt_join(t[i]);
        got += c[i].got;
        /* Every consumer learns that nothing is pending any more. */
        assert_int_equal(c[i].closed, 1);
        assert_int_equal(c[i].other, 0);
    }
    assert_int_equal(got, N);
    assert_int_equal(weft_cq_pending(cq), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(refs_of(fs[i]), 1);
        weft_future_release(fs[i]);
    }
    weft_cq_destroy(cq);
}

static void
test_cq_destroy_with_pending(void **state)
{
    (void)state;
    long base = live();
    weft_completion_queue_t *cq = NULL;
    assert_int_equal(weft_cq_create(&cq), WEFT_OK);
    weft_future_t *a = promise();
    weft_future_t *b = promise();
    weft_future_t *c = done_with(NULL);
    assert_int_equal(weft_cq_add(cq, a), WEFT_OK);
    assert_int_equal(weft_cq_add(cq, b), WEFT_OK);
    assert_int_equal(weft_cq_add(cq, c), WEFT_OK);
    weft_cq_destroy(cq);
    /* The ready one is released at once, not cancelled; the others when
     * they finish. The queue's memory stays until then. */
    assert_int_equal(refs_of(c), 1);
    assert_int_equal(refs_of(a), 2);
    assert_int_equal(weft_future_state(a), WEFT_FUTURE_PENDING);
    assert_int_equal(weft_promise_set_result(a, NULL, NULL), WEFT_OK);
    assert_int_equal(refs_of(a), 1);
    struct finisher fin = {b, 0};
    wt_join(wt_start(finisher_main, &fin));
    assert_int_equal(refs_of(b), 1);
    weft_future_release(a);
    weft_future_release(b);
    weft_future_release(c);
    assert_int_equal(live(), base);
}

static void
test_cq_enomem(void **state)
{
    (void)state;
    long base = live();
    weft_completion_queue_t *cq = NULL;
    atomic_store(&fail_allocs, 1);
    assert_int_equal(weft_cq_create(&cq), WEFT_ENOMEM);
    assert_null(cq);
    assert_int_equal(weft_cq_create(&cq), WEFT_OK);
    weft_future_t *f = promise();
    atomic_store(&fail_allocs, 1);
    assert_int_equal(weft_cq_add(cq, f), WEFT_ENOMEM);
    assert_int_equal(weft_cq_pending(cq), 0);
    assert_int_equal(refs_of(f), 1);
    assert_null(atomic_load(&f->cbs));
    weft_future_t *out = NULL;
    assert_int_equal(weft_cq_next(cq, &out), WEFT_ECLOSED);
    weft_cq_destroy(cq);
    weft_future_release(f);
    assert_int_equal(live(), base);
}

static void
test_promise_enomem(void **state)
{
    (void)state;
    long base = live();
    weft_future_t *f = NULL;
    atomic_store(&fail_allocs, 1);
    assert_int_equal(weft_promise_create(&f), WEFT_ENOMEM);
    assert_null(f);
    atomic_store(&fail_allocs, 1);
    assert_null(weft__future_alloc(1));
    assert_int_equal(live(), base);
}

int
main(void)
{
    weft_allocator_t a = {count_malloc, count_realloc, count_free, NULL};
    if (weft_set_allocator(&a) != WEFT_OK) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_layout),
        cmocka_unit_test(test_claim),
        cmocka_unit_test(test_finish_internal),
        cmocka_unit_test(test_set_cancelled),
        cmocka_unit_test(test_completing_reads_as_unfinished),
        cmocka_unit_test(test_promise_done),
        cmocka_unit_test(test_promise_set_result_from_pending),
        cmocka_unit_test(test_promise_failed),
        cmocka_unit_test(test_failure_message_truncated),
        cmocka_unit_test(test_failure_without_message),
        cmocka_unit_test(test_cancel_pending),
        cmocka_unit_test(test_cancel_running),
        cmocka_unit_test(test_take_result),
        cmocka_unit_test(test_dtor_once_on_last_release),
        cmocka_unit_test(test_dtor_on_releasing_thread),
        cmocka_unit_test(test_wait_times_out),
        cmocka_unit_test(test_unwaited_finish_leaves_no_mark),
        cmocka_unit_test(test_waiters_woken),
        cmocka_unit_test(test_waiters_spurious),
        cmocka_unit_test(test_take_from_another_thread),
        cmocka_unit_test(test_wait_cancelled),
        cmocka_unit_test(test_wait_cancelled_before),
        cmocka_unit_test(test_wait_on_itself),
        cmocka_unit_test(test_wait_helps),
        cmocka_unit_test(test_on_done_order_and_thread),
        cmocka_unit_test(test_on_done_failed_and_cancelled),
        cmocka_unit_test(test_on_done_enomem),
        cmocka_unit_test(test_on_done_never_finished),
        cmocka_unit_test(test_on_done_nested),
        cmocka_unit_test(test_wait_many_already),
        cmocka_unit_test(test_wait_many_blocks),
        cmocka_unit_test(test_wait_many_first_exception_all_ok),
        cmocka_unit_test(test_wait_many_leftovers),
        cmocka_unit_test(test_wait_many_enomem),
        cmocka_unit_test(test_cq_completion_order),
        cmocka_unit_test(test_cq_add_finished),
        cmocka_unit_test(test_cq_consumers_block),
        cmocka_unit_test(test_cq_destroy_with_pending),
        cmocka_unit_test(test_cq_enomem),
        cmocka_unit_test(test_promise_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
