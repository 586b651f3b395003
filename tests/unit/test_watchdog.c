/* SPDX-License-Identifier: MIT */
/* Unit tests for the watchdog: a real lock deadlock and a pool saturated by
 * waiting tasks are each reported once, before the waits time out. */
#include "testutil.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <weft/debug.h>

#define MS 1000000LL

static pthread_mutex_t cap_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_deadlock[16384];
static char last_saturated[16384];
static int n_deadlock;
static int n_saturated;
static weft_time_t first_report_at;

static void
hook(void *ctx, const char *kind, const char *report)
{
    (void)ctx;
    pthread_mutex_lock(&cap_lock);
    if (strcmp(kind, "deadlock") == 0) {
        snprintf(last_deadlock, sizeof(last_deadlock), "%s", report);
        if (n_deadlock++ == 0) {
            first_report_at = weft_now();
        }
    } else if (strcmp(kind, "saturated") == 0) {
        snprintf(last_saturated, sizeof(last_saturated), "%s", report);
        n_saturated++;
    }
    pthread_mutex_unlock(&cap_lock);
}

static int
counts(int *sat)
{
    pthread_mutex_lock(&cap_lock);
    int n = n_deadlock;
    *sat = n_saturated;
    pthread_mutex_unlock(&cap_lock);
    return n;
}

static int
setup(void **state)
{
    (void)state;
    weft_deadlock_set_hook(hook, NULL);
    assert_int_equal(weft_watchdog_start(0, MS), WEFT_EINVAL);
    assert_int_equal(weft_watchdog_start(20 * MS, 200 * MS), WEFT_OK);
    assert_int_equal(weft_watchdog_start(20 * MS, 200 * MS), WEFT_EBUSY);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    weft_watchdog_stop();
    weft_watchdog_stop(); /* no-op */
    return 0;
}

static weft_mutex_t m1 = WEFT_MUTEX_INIT, m2 = WEFT_MUTEX_INIT;
static weft_barrier_t both_hold;
static weft_time_t deadline;

typedef struct side {
    weft_mutex_t *mine;
    weft_mutex_t *theirs;
    int rc;
} side_t;

static void *
side_main(void *arg)
{
    side_t *s = arg;
    assert_int_equal(weft_mutex_lock(s->mine), WEFT_OK);
    int rc = weft_barrier_wait(&both_hold, NULL);
    assert_true(rc == WEFT_OK || rc == WEFT_BARRIER_SERIAL);
    s->rc = weft_mutex_lock_until(s->theirs, deadline);
    if (s->rc == WEFT_OK) {
        weft_mutex_unlock(s->theirs);
    }
    weft_mutex_unlock(s->mine);
    return NULL;
}

static void
test_real_deadlock_reported_before_deadline(void **state)
{
    (void)state;
    assert_int_equal(weft_barrier_init(&both_hold, 2, NULL, NULL), WEFT_OK);
    deadline = weft_deadline_in(4000 * MS);
    side_t a = {&m1, &m2, 1};
    side_t b = {&m2, &m1, 1};
    weft_thread_opts_t o = WEFT_THREAD_OPTS_INIT;
    weft_thread_t *ta = NULL;
    weft_thread_t *tb = NULL;
    o.name = "dl-a";
    assert_int_equal(weft_thread_create(&o, side_main, &a, &ta), WEFT_OK);
    o.name = "dl-b";
    assert_int_equal(weft_thread_create(&o, side_main, &b, &tb), WEFT_OK);
    assert_int_equal(weft_thread_join(ta, NULL), WEFT_OK);
    assert_int_equal(weft_thread_join(tb, NULL), WEFT_OK);
    /* The first to time out lets the other through, maybe before its own
     * deadline. */
    assert_true(a.rc == WEFT_ETIMEDOUT || b.rc == WEFT_ETIMEDOUT);
    assert_true(a.rc == WEFT_ETIMEDOUT || a.rc == WEFT_OK);
    assert_true(b.rc == WEFT_ETIMEDOUT || b.rc == WEFT_OK);
    weft_barrier_fini(&both_hold);

    int sat = 0;
    assert_int_equal(counts(&sat), 1);
    assert_true(first_report_at > 0 && first_report_at < deadline);
    assert_non_null(strstr(last_deadlock, "wait-for cycle of 2 threads"));
    char want[128];
    assert_non_null(strstr(last_deadlock, "  thread \"dl-a\" #"));
    assert_non_null(strstr(last_deadlock, "  thread \"dl-b\" #"));
    snprintf(want, sizeof(want), "waits on mutex %p held by \"dl-a\"",
             (void *)&m1);
    assert_non_null(strstr(last_deadlock, want));
    snprintf(want, sizeof(want), "waits on mutex %p held by \"dl-b\"",
             (void *)&m2);
    assert_non_null(strstr(last_deadlock, want));
    assert_non_null(strstr(last_deadlock, "weft dump: "));
    /* It does not report the same cycle again. */
    weft_sleep_for(100 * MS);
    assert_int_equal(counts(&sat), 1);
}

static weft_event_t never;

static void *
waiter_task(void *arg)
{
    (void)arg;
    int rc = weft_event_wait_until(&never, weft_deadline_in(3000 * MS));
    return (void *)(intptr_t)rc;
}

static void *
queued_task(void *arg)
{
    (void)arg;
    return NULL;
}

static void
test_pool_saturated_by_waiters(void **state)
{
    (void)state;
    weft_event_init(&never);
    weft_pool_opts_t po = WEFT_POOL_OPTS_INIT;
    po.name = "sat";
    po.workers = 1;
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(&po, &ex), WEFT_OK);
    weft_task_opts_t to = WEFT_TASK_OPTS_INIT;
    to.label = "waiter";
    weft_future_t *fw = NULL;
    weft_future_t *fq = NULL;
    assert_int_equal(weft_executor_submit(ex, waiter_task, NULL, &to, &fw),
                     WEFT_OK);
    to.label = "starved";
    assert_int_equal(weft_executor_submit(ex, queued_task, NULL, &to, &fq),
                     WEFT_OK);
    int sat = 0;
    weft_time_t end = weft_deadline_in(2500 * MS);
    while ((void)counts(&sat), sat == 0 && weft_now() < end) {
        weft_sleep_for(10 * MS);
    }
    assert_int_equal(sat, 1);
    assert_false(weft_future_done(fw));
    assert_false(weft_future_done(fq));
    assert_non_null(strstr(last_saturated, "pool \"sat\""));
    assert_non_null(strstr(last_saturated, "saturated by waiters"));
    assert_non_null(strstr(last_saturated, "running task \"waiter\""));
    weft_event_set(&never);
    assert_int_equal(weft_future_wait(fw), WEFT_OK);
    assert_int_equal(weft_future_wait(fq), WEFT_OK);
    void *v = NULL;
    assert_int_equal(weft_future_result(fw, &v), WEFT_OK);
    assert_int_equal((intptr_t)v, WEFT_OK);
    weft_future_release(fw);
    weft_future_release(fq);
    weft_executor_destroy(ex);
    weft_event_fini(&never);
    assert_int_equal(counts(&sat), 1);
    assert_int_equal(sat, 1);
    assert_int_equal(weft_watchdog_reports(), 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_deadlock_reported_before_deadline),
        cmocka_unit_test(test_pool_saturated_by_waiters),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
