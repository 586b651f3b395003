/* SPDX-License-Identifier: MIT */
/* Base layer: error codes, clock and deadlines, sleep, allocator and log
 * hooks, and the parking primitives every wait uses. */
#include "testutil.h"

#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
test_error_codes_fixed(void **state)
{
    (void)state;
    /* The values travel over the network: they must never change. */
    assert_int_equal(WEFT_OK, 0);
    assert_int_equal(WEFT_EINVAL, -1);
    assert_int_equal(WEFT_ETIMEDOUT, -4);
    assert_int_equal(WEFT_ECLOSED, -5);
    assert_int_equal(WEFT_ECANCELED, -6);
    assert_int_equal(WEFT_ESYS, -17);
    for (int c = WEFT_ESYS; c <= WEFT_OK; c++) {
        assert_string_not_equal(weft_strerror(c), "unknown error");
        assert_true(strncmp(weft_errname(c), "WEFT_", 5) == 0);
        assert_string_not_equal(weft_errname(c), "WEFT_E?");
    }
    assert_string_equal(weft_strerror(WEFT_ETIMEDOUT), "timed out");
    assert_string_equal(weft_errname(WEFT_ECLOSED), "WEFT_ECLOSED");
    assert_string_equal(weft_strerror(12345), "unknown error");
    assert_string_equal(weft_errname(-999), "WEFT_E?");
}

static void
test_clock_and_deadlines(void **state)
{
    (void)state;
    weft_time_t a = weft_now();
    weft_time_t b = weft_now();
    assert_true(a > 0);
    assert_true(b >= a);
    weft_time_t d = weft_deadline_in(WEFT_SEC);
    assert_true(d >= b + WEFT_SEC);
    assert_true(d <= weft_now() + WEFT_SEC);
    assert_true(weft_deadline_in(0) <= weft_now());
    assert_true(weft_deadline_in(-5) <= weft_now());
    assert_true(weft_deadline_in(WEFT_FOREVER) == WEFT_FOREVER);
    assert_true(weft_deadline_in(WEFT_FOREVER - 1) == WEFT_FOREVER);
}

static void
test_sleep(void **state)
{
    (void)state;
    weft_time_t t0 = weft_now();
    assert_int_equal(weft_sleep_for(20 * WEFT_MSEC), WEFT_OK);
    weft_time_t el = weft_now() - t0;
    assert_true(el >= 20 * WEFT_MSEC); /* never early */
    assert_true(el < 2 * WEFT_SEC);
    t0 = weft_now();
    assert_int_equal(weft_sleep_until(t0 - WEFT_SEC), WEFT_OK);
    assert_true(weft_now() - t0 < 100 * WEFT_MSEC);
}

static size_t n_alloc;
static size_t n_free;

static void *
count_malloc(void *ctx, size_t size)
{
    (void)ctx;
    n_alloc++;
    return malloc(size);
}

static void *
count_realloc(void *ctx, void *p, size_t size)
{
    (void)ctx;
    if (p == NULL) {
        n_alloc++;
    }
    return realloc(p, size);
}

static void
count_free(void *ctx, void *p)
{
    (void)ctx;
    n_free++;
    free(p);
}

static void
test_allocator_hook(void **state)
{
    (void)state;
    weft_allocator_t bad = {count_malloc, NULL, count_free, NULL};
    assert_int_equal(weft_set_allocator(&bad), WEFT_EINVAL);
    weft_allocator_t a = {count_malloc, count_realloc, count_free, NULL};
    assert_int_equal(weft_set_allocator(&a), WEFT_OK);
    n_alloc = n_free = 0;
    void *p = weft__malloc(10);
    void *q = weft__calloc(4, 8);
    char *s = weft__strndup("hello world", 5);
    void *al = weft__malloc_aligned(100);
    assert_non_null(p);
    assert_non_null(q);
    assert_string_equal(s, "hello");
    assert_true(((uintptr_t)al % WEFT__CACHELINE) == 0);
    assert_null(weft__calloc(SIZE_MAX / 2, 4)); /* overflow caught */
    weft__free(p);
    weft__free(q);
    weft__free(s);
    weft__free_aligned(al);
    assert_int_equal(n_alloc, 4);
    assert_int_equal(n_free, 4);
    /* A thread's handle goes through the hook too. */
    assert_int_equal(weft_set_allocator(NULL), WEFT_OK);
}

struct logcap {
    int count;
    weft_log_level_t level;
    char thread[64];
    char msg[2048];
};

static void
capture(void *ctx, weft_log_level_t level, const char *thread,
        const char *message)
{
    struct logcap *c = ctx;
    c->count++;
    c->level = level;
    snprintf(c->thread, sizeof(c->thread), "%s", thread);
    snprintf(c->msg, sizeof(c->msg), "%s", message);
}

static void
test_log_hook_and_levels(void **state)
{
    (void)state;
    struct logcap c = {0};
    weft_log_set_hook(capture, &c);
    weft_log_set_level(WEFT_LOG_INFO);
    assert_int_equal(weft_log_level(), WEFT_LOG_INFO);
    weft_log(WEFT_LOG_INFO, "value %d", 42);
    assert_int_equal(c.count, 1);
    assert_int_equal(c.level, WEFT_LOG_INFO);
    assert_string_equal(c.msg, "value 42");
    assert_string_equal(c.thread, "main");
    weft_log(WEFT_LOG_DEBUG, "hidden");
    assert_int_equal(c.count, 1);
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    weft_log(WEFT_LOG_ERROR, "%s", big);
    assert_int_equal(c.count, 2);
    assert_int_equal(strlen(c.msg), 1023);
    assert_string_equal(c.msg + 1020, "...");
    weft_log_set_level(WEFT_LOG_OFF);
    weft_log(WEFT_LOG_ERROR, "off");
    assert_int_equal(c.count, 2);
    weft_log_set_hook(NULL, NULL);
    weft_log_set_level(WEFT_LOG_WARN);
}

static void
log_default_child(void *arg)
{
    (void)arg;
    weft_log_set_level(WEFT_LOG_WARN);
    assert_int_equal(weft_thread_set_name("logger-7"), WEFT_OK);
    weft_log(WEFT_LOG_WARN, "disk %s", "full");
    abort(); /* wt_dies_with wants an abort; the output is what we check */
}

static void
test_log_default_format(void **state)
{
    (void)state;
    /* "HH:MM:SS.uuuuuu [thread] LEVEL message" */
    assert_true(
        wt_dies_with(log_default_child, NULL, "[logger-7] WARN disk full"));
}

static const char *self_exe;

/* The level a fresh process started with WEFT_LOG=value reads. */
static int
level_with_env(const char *value)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "WEFT_LOG='%s' '%s' --print-log-level", value,
             self_exe);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int n = -1;
    if (fscanf(p, "%d", &n) != 1) {
        n = -1;
    }
    pclose(p);
    return n;
}

static void
test_log_level_from_env(void **state)
{
    (void)state;
    assert_int_equal(level_with_env("debug"), WEFT_LOG_DEBUG);
    assert_int_equal(level_with_env("ERROR"), WEFT_LOG_ERROR);
    assert_int_equal(level_with_env("5"), WEFT_LOG_TRACE);
    assert_int_equal(level_with_env("off"), WEFT_LOG_OFF);
    assert_int_equal(level_with_env("nonsense"), WEFT_LOG_WARN);
    assert_int_equal(level_with_env(""), WEFT_LOG_WARN);
}

static void
assert_child(void *arg)
{
    (void)arg;
    WEFT_ASSERT(1 + 1 == 3, "arithmetic is broken: %d", 7);
}

static void
test_assert_message(void **state)
{
    (void)state;
    assert_true(
        wt_dies_with(assert_child, NULL, "assertion failed in assert_child()"));
    assert_true(wt_dies_with(assert_child, NULL, "arithmetic is broken: 7"));
    assert_true(wt_dies_with(assert_child, NULL, "[thread main]"));
}

static void
test_park_timeout_and_value(void **state)
{
    (void)state;
    _Atomic uint32_t w = 5;
    /* Value differs: returns at once. */
    assert_int_equal(weft__park(&w, 4, WEFT_FOREVER), WEFT_OK);
    /* Past deadline. */
    assert_int_equal(weft__park(&w, 5, weft_now() - 1), WEFT_ETIMEDOUT);
    weft_time_t t0 = weft_now();
    assert_int_equal(weft__park(&w, 5, weft_deadline_in(10 * WEFT_MSEC)),
                     WEFT_ETIMEDOUT);
    assert_true(weft_now() - t0 >= 10 * WEFT_MSEC);
    /* Spurious injection: every call returns at once. */
    weft__test_spurious_wakeups(1);
    assert_int_equal(weft__park(&w, 5, WEFT_FOREVER), WEFT_OK);
    weft__test_spurious_wakeups(0);
}

struct ping {
    _Atomic uint32_t word;
    weft__ecount_t ec;
    _Atomic int flag;
};

static void *
ecount_waiter(void *arg)
{
    struct ping *p = arg;
    for (;;) {
        if (atomic_load(&p->flag)) {
            break;
        }
        uint32_t key = weft__ecount_prepare(&p->ec);
        if (atomic_load(&p->flag)) {
            weft__ecount_cancel(&p->ec);
            break;
        }
        (void)weft__ecount_wait(&p->ec, key, WEFT_FOREVER);
    }
    return NULL;
}

static void
test_ecount_wakes_waiter(void **state)
{
    (void)state;
    /* No timed wait: a lost wake-up hangs until the ctest timeout. */
    for (int round = 0; round < 200; round++) {
        struct ping p = {0};
        weft_thread_t *t;
        assert_int_equal(weft_thread_create(NULL, ecount_waiter, &p, &t),
                         WEFT_OK);
        if (round % 2) {
            weft_sleep_for(100 * WEFT_USEC);
        }
        atomic_store(&p.flag, 1);
        weft__ecount_notify(&p.ec, 1);
        assert_int_equal(weft_thread_join(t, NULL), WEFT_OK);
        assert_int_equal(atomic_load(&p.ec.waiters), 0);
    }
}

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--print-log-level") == 0) {
        printf("%d\n", (int)weft_log_level());
        return 0;
    }
    self_exe = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_codes_fixed),
        cmocka_unit_test(test_clock_and_deadlines),
        cmocka_unit_test(test_sleep),
        cmocka_unit_test(test_allocator_hook),
        cmocka_unit_test(test_log_hook_and_levels),
        cmocka_unit_test(test_log_default_format),
        cmocka_unit_test(test_log_level_from_env),
        cmocka_unit_test(test_assert_message),
        cmocka_unit_test(test_park_timeout_and_value),
        cmocka_unit_test(test_ecount_wakes_waiter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
