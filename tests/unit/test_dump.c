/* SPDX-License-Identifier: MIT */
/* Unit tests for dumps (text, JSON, on a signal) and task-labelled logs. */
#include "testutil.h"

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft/debug.h>

static weft_thread_t *
start(const char *name, void *(*fn)(void *), void *arg)
{
    weft_thread_opts_t o = WEFT_THREAD_OPTS_INIT;
    o.name = name;
    weft_thread_t *t = NULL;
    assert_int_equal(weft_thread_create(&o, fn, arg, &t), WEFT_OK);
    return t;
}

static char *
dump(weft_dump_format_t fmt)
{
    char *s = NULL;
    size_t len = 0;
    assert_int_equal(weft_dump(&s, &len, fmt), WEFT_OK);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    return s;
}

/* The line of the dump about thread `name` (copied into line), or false. */
static bool
thread_line(const char *d, const char *name, char *line, size_t cap)
{
    char key[64];
    snprintf(key, sizeof(key), "  thread \"%s\" #", name);
    const char *p = strstr(d, key);
    if (p == NULL) {
        return false;
    }
    const char *nl = strchr(p, '\n');
    size_t n = nl != NULL ? (size_t)(nl - p) : strlen(p);
    n = n < cap - 1 ? n : cap - 1;
    memcpy(line, p, n);
    line[n] = '\0';
    return true;
}

/* Poll dumps until thread `name`'s line contains `want` (5 s at most). */
static void
await_line(const char *name, const char *want, char *line, size_t cap)
{
    weft_time_t end = weft_deadline_in(5000000000);
    for (;;) {
        char *d = dump(WEFT_DUMP_TEXT);
        bool ok = thread_line(d, name, line, cap) && strstr(line, want) != NULL;
        weft_dump_free(d);
        if (ok) {
            return;
        }
        if (weft_now() > end) {
            fail_msg("no dump line for \"%s\" with \"%s\"", name, want);
        }
        weft_sleep_for(5000000);
    }
}

static bool
json_valid(const char *s)
{
    FILE *p = popen("python3 -c 'import json,sys; json.load(sys.stdin)'", "w");
    assert_non_null(p);
    fputs(s, p);
    return pclose(p) == 0;
}

static weft_mutex_t m = WEFT_MUTEX_INIT;
static weft_event_t locked = WEFT_EVENT_INIT;
static weft_event_t release = WEFT_EVENT_INIT;

static void *
holder_main(void *arg)
{
    (void)arg;
    assert_int_equal(weft_mutex_lock(&m), WEFT_OK);
    weft_event_set(&locked);
    assert_int_equal(weft_event_wait(&release), WEFT_OK);
    weft_mutex_unlock(&m);
    return NULL;
}

static void *
blocker_main(void *arg)
{
    (void)arg;
    assert_int_equal(weft_mutex_lock(&m), WEFT_OK);
    weft_mutex_unlock(&m);
    return NULL;
}

static void
test_dump_names_mutex_holder(void **state)
{
    (void)state;
    weft_thread_t *a = start("holder", holder_main, NULL);
    assert_int_equal(weft_event_wait(&locked), WEFT_OK);
    weft_thread_t *b = start("blocker", blocker_main, NULL);
    char line[512];
    char want[64];
    snprintf(want, sizeof(want), "waiting on mutex %p held by \"holder\" #",
             (void *)&m);
    await_line("blocker", want, line, sizeof(line));
    assert_non_null(strstr(line, " for "));
    /* The holder waits on the event, with no holder. */
    await_line("holder", "waiting on event", line, sizeof(line));

    char *j = dump(WEFT_DUMP_JSON);
    assert_true(json_valid(j));
    assert_non_null(strstr(j, "\"name\":\"blocker\""));
    assert_non_null(strstr(j, "\"kind\":\"mutex\""));
    assert_non_null(strstr(j, "\"holder\":{\"name\":\"holder\""));
    weft_dump_free(j);

    weft_event_set(&release);
    assert_int_equal(weft_thread_join(a, NULL), WEFT_OK);
    assert_int_equal(weft_thread_join(b, NULL), WEFT_OK);
}

static weft_event_t task_go = WEFT_EVENT_INIT;

static void *
labelled_task(void *arg)
{
    (void)arg;
    assert_int_equal(weft_event_wait(&task_go), WEFT_OK);
    return NULL;
}

static void *
awaiter_main(void *arg)
{
    assert_int_equal(weft_future_wait(arg), WEFT_OK);
    return NULL;
}

static void *
consumer_main(void *arg)
{
    uintptr_t item = 0;
    assert_int_equal(weft_queue_get(arg, &item), WEFT_OK);
    assert_int_equal(item, 7);
    return NULL;
}

static void
test_dump_task_label_duration_pool_queue(void **state)
{
    (void)state;
    weft_dump_free(dump(WEFT_DUMP_TEXT)); /* turns task timing on */
    weft_pool_opts_t po = WEFT_POOL_OPTS_INIT;
    po.name = "dp";
    po.workers = 1;
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(&po, &ex), WEFT_OK);
    weft_queue_opts_t qo = WEFT_QUEUE_OPTS_INIT;
    qo.capacity = 8;
    qo.name = "jobs";
    weft_queue_t *q = NULL;
    assert_int_equal(weft_queue_create(&qo, &q), WEFT_OK);
    for (uintptr_t i = 1; i <= 3; i++) {
        assert_int_equal(weft_queue_put(q, &i), WEFT_OK);
    }

    weft_task_opts_t to = WEFT_TASK_OPTS_INIT;
    to.label = "fetch";
    weft_future_t *f = NULL;
    assert_int_equal(weft_executor_submit(ex, labelled_task, NULL, &to, &f),
                     WEFT_OK);
    char line[512];
    await_line("dp/0", "running task \"fetch\"", line, sizeof(line));
    weft_sleep_for(100000000);
    await_line("dp/0", "waiting on event", line, sizeof(line));
    const char *p = strstr(line, "\"fetch\" id ");
    assert_non_null(p);
    p = strstr(p, " for ");
    assert_non_null(p);
    double secs = strtod(p + 5, NULL);
    assert_true(secs >= 0.1 && secs < 60.0);

    /* A thread waiting on that future: the dump names its runner. */
    weft_thread_t *aw = start("awaiter", awaiter_main, f);
    char want[128];
    snprintf(want, sizeof(want),
             "waiting on future %p (task \"fetch\") run by \"dp/0\" #",
             (void *)f);
    await_line("awaiter", want, line, sizeof(line));
    /* A thread waiting on an empty named queue. */
    weft_queue_t *inbox = NULL;
    qo.name = "inbox";
    assert_int_equal(weft_queue_create(&qo, &inbox), WEFT_OK);
    weft_thread_t *co = start("consumer", consumer_main, inbox);
    snprintf(want, sizeof(want), "waiting on queue-get %p \"inbox\" (0 items)",
             (void *)inbox);
    await_line("consumer", want, line, sizeof(line));

    char *d = dump(WEFT_DUMP_TEXT);
    assert_non_null(strstr(d, "pool \"dp\""));
    assert_non_null(strstr(d, ": 1 workers, 0 idle"));
    char qline[128];
    snprintf(qline, sizeof(qline), "queue \"jobs\" %p: 3/8 items", (void *)q);
    assert_non_null(strstr(d, qline));
    weft_dump_free(d);
    char *j = dump(WEFT_DUMP_JSON);
    assert_true(json_valid(j));
    assert_non_null(strstr(j, "\"label\":\"fetch\""));
    assert_non_null(strstr(j, "\"capacity\":8"));
    assert_non_null(strstr(j, "\"kind\":\"queue-get\""));
    assert_non_null(strstr(j, "\"label\":\"inbox\",\"size\":0"));
    assert_non_null(strstr(j, "\"holder\":{\"name\":\"dp/0\""));
    weft_dump_free(j);

    weft_event_set(&task_go);
    assert_int_equal(weft_thread_join(aw, NULL), WEFT_OK);
    uintptr_t seven = 7;
    assert_int_equal(weft_queue_put(inbox, &seven), WEFT_OK);
    assert_int_equal(weft_thread_join(co, NULL), WEFT_OK);
    weft_queue_destroy(inbox);
    assert_int_equal(weft_future_wait(f), WEFT_OK);
    weft_future_release(f);
    weft_executor_destroy(ex);
    weft_queue_destroy(q);
    d = dump(WEFT_DUMP_TEXT);
    assert_null(strstr(d, "pool \"dp\""));
    assert_null(strstr(d, "queue \"jobs\""));
    weft_dump_free(d);
}

/* Run fn with stderr sent to a pipe; return what it wrote once `until`
 * appears (or after 5 s). */
static char *
capture_stderr(void (*fn)(void *), void *arg, const char *until)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fds[1], 2), 2);
    fn(arg);
    size_t cap = 1 << 16;
    size_t len = 0;
    char *buf = calloc(1, cap);
    assert_non_null(buf);
    weft_time_t end = weft_deadline_in(5000000000);
    while (strstr(buf, until) == NULL && weft_now() < end && len < cap - 1) {
        struct pollfd pfd = {fds[0], POLLIN, 0};
        if (poll(&pfd, 1, 50) == 1) {
            ssize_t n = read(fds[0], buf + len, cap - 1 - len);
            assert_true(n > 0);
            len += (size_t)n;
        }
    }
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    close(fds[0]);
    close(fds[1]);
    return buf;
}

static void
raise_usr1(void *arg)
{
    (void)arg;
    assert_int_equal(raise(SIGUSR1), 0);
}

static void
test_dump_on_signal(void **state)
{
    (void)state;
    assert_int_equal(weft_dump_on_signal(0), WEFT_EINVAL);
    assert_int_equal(weft_dump_on_signal(SIGUSR1), WEFT_OK);
    char *out = capture_stderr(raise_usr1, NULL, "queues:\n");
    assert_non_null(strstr(out, "weft dump: "));
    assert_non_null(strstr(out, "  thread \"weft-dump\" #"));
    assert_non_null(strstr(out, "queues:\n"));
    free(out);
}

static void *
logging_task(void *arg)
{
    (void)arg;
    weft_log(WEFT_LOG_WARN, "hello %d", 42);
    return NULL;
}

static void
log_from_task(void *arg)
{
    weft_executor_t *ex = arg;
    weft_task_opts_t to = WEFT_TASK_OPTS_INIT;
    to.label = "fetch";
    weft_future_t *f = NULL;
    assert_int_equal(weft_executor_submit(ex, logging_task, NULL, &to, &f),
                     WEFT_OK);
    assert_int_equal(weft_future_wait(f), WEFT_OK);
    weft_future_release(f);
    weft_log(WEFT_LOG_WARN, "outside");
}

static void
test_log_line_has_task_label(void **state)
{
    (void)state;
    weft_pool_opts_t po = WEFT_POOL_OPTS_INIT;
    po.name = "lp";
    po.workers = 1;
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(&po, &ex), WEFT_OK);
    char *out = capture_stderr(log_from_task, ex, "outside\n");
    assert_non_null(strstr(out, " [lp/0] [task:fetch] WARN hello 42\n"));
    assert_non_null(strstr(out, " [main] WARN outside\n"));
    free(out);
    weft_executor_destroy(ex);
}

static void
test_dump_errors(void **state)
{
    (void)state;
    size_t len = 0;
    char *s = NULL;
    assert_int_equal(weft_dump(NULL, &len, WEFT_DUMP_TEXT), WEFT_EINVAL);
    assert_int_equal(weft_dump(&s, &len, (weft_dump_format_t)7), WEFT_EINVAL);
    assert_null(s);
    assert_int_equal(weft_dump_to_fd(-1, WEFT_DUMP_TEXT), WEFT_EINVAL);
    weft_dump_free(NULL);
    /* Without len. */
    assert_int_equal(weft_dump(&s, NULL, WEFT_DUMP_JSON), WEFT_OK);
    assert_true(json_valid(s));
    weft_dump_free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dump_names_mutex_holder),
        cmocka_unit_test(test_dump_task_label_duration_pool_queue),
        cmocka_unit_test(test_dump_on_signal),
        cmocka_unit_test(test_log_line_has_task_label),
        cmocka_unit_test(test_dump_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
