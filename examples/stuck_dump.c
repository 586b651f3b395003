/* SPDX-License-Identifier: MIT */
/*
 * A dump shows who waits for whom. The "writer" thread holds the cache
 * lock and waits for a pool task, "refresh", which needs that same lock; a
 * "reader" thread queues for the lock too. Nobody can move: a deadlock
 * through a pool task. The program prints a dump (each thread, the task it
 * runs, what it waits on and who holds it), the watchdog reports the
 * wait-for cycle, and the waits' deadlines then end it all.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <weft/debug.h>
#include <weft/weft.h>

#include "example.h"

#define MS (WEFT_SEC / 1000)

static weft_mutex_t cache_lock = WEFT_MUTEX_INIT;
static weft_executor_t *pool;
static weft_event_t writer_holds = WEFT_EVENT_INIT;
static weft_time_t deadline;

static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static char report[16384];

static void
on_report(void *ctx, const char *kind, const char *text)
{
    (void)ctx;
    pthread_mutex_lock(&report_lock);
    if (strcmp(kind, "deadlock") == 0 && report[0] == '\0') {
        snprintf(report, sizeof report, "%s", text);
    }
    pthread_mutex_unlock(&report_lock);
}

static void *
refresh(void *arg)
{
    (void)arg;
    int rc = weft_mutex_lock_until(&cache_lock, deadline);
    if (rc != WEFT_OK) {
        return weft_task_fail(rc, "refresh: cache lock: %s", weft_errname(rc));
    }
    weft_mutex_unlock(&cache_lock);
    return NULL;
}

static void *
writer(void *arg)
{
    (void)arg;
    weft_task_opts_t to = WEFT_TASK_OPTS_INIT;
    weft_future_t *f = NULL;
    to.label = "refresh";
    EX_OK(weft_mutex_lock(&cache_lock));
    EX_OK(weft_executor_submit(pool, refresh, NULL, &to, &f));
    weft_event_set(&writer_holds);
    /* Waits for a task that waits for our lock: stuck until the task's
     * deadline fails it (a little earlier than ours). */
    int rc = weft_future_wait_until(f, deadline + 500 * MS);
    EX_CHECK(rc == WEFT_OK, "the task ends by its deadline: %s",
             weft_errname(rc));
    EX_CHECK(weft_future_state(f) == WEFT_FUTURE_FAILED, "refresh failed");
    weft_future_release(f);
    weft_mutex_unlock(&cache_lock);
    return NULL;
}

static void *
reader(void *arg)
{
    (void)arg;
    int rc = weft_mutex_lock_until(&cache_lock, deadline + 200 * MS);
    if (rc == WEFT_OK) {
        weft_mutex_unlock(&cache_lock);
    }
    return NULL;
}

static bool
line_has(const char *dump, const char *thread, const char *what)
{
    char key[64];
    snprintf(key, sizeof key, "  thread \"%s\" #", thread);
    const char *p = strstr(dump, key);
    if (p == NULL) {
        return false;
    }
    const char *end = strchr(p, '\n');
    const char *w = strstr(p, what);
    return w != NULL && (end == NULL || w < end);
}

int
main(void)
{
    weft_pool_opts_t po = WEFT_POOL_OPTS_INIT;
    po.name = "app";
    po.workers = 1;
    weft_deadlock_set_hook(on_report, NULL);
    EX_OK(weft_watchdog_start(50 * MS, 300 * MS));
    EX_OK(weft_pool_create(&po, &pool));
    deadline = weft_deadline_in(3 * WEFT_SEC);

    weft_thread_t *threads[2];
    weft_thread_opts_t o = WEFT_THREAD_OPTS_INIT;
    o.name = "writer";
    EX_OK(weft_thread_create(&o, writer, NULL, &threads[0]));
    EX_OK(weft_event_wait(&writer_holds));
    o.name = "reader";
    EX_OK(weft_thread_create(&o, reader, NULL, &threads[1]));

    /* Wait until everyone is parked, then show it. */
    char *dump = NULL;
    for (;;) {
        EX_OK(weft_dump(&dump, NULL, WEFT_DUMP_TEXT));
        if (line_has(dump, "app/0", "held by \"writer\"") &&
            line_has(dump, "reader", "held by \"writer\"") &&
            line_has(dump, "writer", "run by \"app/0\"")) {
            break;
        }
        weft_dump_free(dump);
        EX_CHECK(weft_now() < deadline, "everyone should be parked by now");
        weft_sleep_for(10 * MS);
    }
    weft_dump_free(dump);
    weft_sleep_for(200 * MS); /* so the dump shows how long they waited */
    EX_OK(weft_dump(&dump, NULL, WEFT_DUMP_TEXT));
    EX_CHECK(line_has(dump, "app/0", "held by \"writer\""),
             "the dump names the lock's holder:\n%s", dump);
    printf("%s", dump);
    EX_CHECK(line_has(dump, "app/0", "running task \"refresh\""),
             "the worker runs refresh");
    weft_dump_free(dump);

    ex_join_threads(threads, 2);
    weft_watchdog_stop();
    pthread_mutex_lock(&report_lock);
    EX_CHECK(strstr(report, "wait-for cycle of 2 threads") != NULL,
             "the watchdog saw the cycle:\n%s", report);
    printf("\nthe watchdog reported:\n%.*s\n",
           (int)(strstr(report, "\nweft dump") != NULL
                     ? strstr(report, "\nweft dump") - report
                     : (long)strlen(report)),
           report);
    pthread_mutex_unlock(&report_lock);
    weft_executor_destroy(pool);
    return 0;
}
