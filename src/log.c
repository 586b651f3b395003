/* SPDX-License-Identifier: MIT */
/*
 * Logging: levels from WEFT_LOG, a replaceable hook, and a default writer
 * that labels every line with the time, the thread's weft name and the
 * label of the task the thread runs, if any.
 */
#include "internal.h"
#include "plat.h"
#include "probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <weft/thread.h>

#define LEVEL_UNSET (-1)

static _Atomic int log_level = LEVEL_UNSET;

/* The hook pair is published under a sequence lock so a reader never sees
 * one writer's fn with another's ctx. seq_cst throughout: logging is not a
 * fast path, and the plain orderings keep TSan fully informed. */
static _Atomic unsigned hook_seq;
static _Atomic(weft_log_fn) hook_fn;
static _Atomic(void *) hook_ctx;
static _Atomic int hook_writer; /* 0 free, 1 a setter is writing */

static const char *const level_names[] = {"OFF",  "ERROR", "WARN",
                                          "INFO", "DEBUG", "TRACE"};

static int
parse_level(const char *s)
{
    if (s == NULL || *s == '\0') {
        return WEFT_LOG_WARN;
    }
    if (s[0] >= '0' && s[0] <= '5' && s[1] == '\0') {
        return s[0] - '0';
    }
    for (int i = 0; i <= WEFT_LOG_TRACE; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            return i;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        return WEFT_LOG_WARN;
    }
    return WEFT_LOG_WARN;
}

weft_log_level_t
weft_log_level(void)
{
    int l = atomic_load(&log_level);
    if (l == LEVEL_UNSET) {
        /* weft never calls setenv, so reading the environment is safe. */
        int want =
            parse_level(getenv("WEFT_LOG")); // NOLINT(concurrency-mt-unsafe)
        int expected = LEVEL_UNSET;
        atomic_compare_exchange_strong(&log_level, &expected, want);
        l = atomic_load(&log_level);
    }
    return (weft_log_level_t)l;
}

void
weft_log_set_level(weft_log_level_t level)
{
    int l = (int)level;
    atomic_store(&log_level, l < 0 ? 0 : (l > WEFT_LOG_TRACE ? 5 : l));
}

void
weft_log_set_hook(weft_log_fn fn, void *ctx)
{
    int free_state = 0;
    while (!atomic_compare_exchange_weak(&hook_writer, &free_state, 1)) {
        free_state = 0;
        weft__cpu_relax();
    }
    atomic_fetch_add(&hook_seq, 1); /* odd: write in progress */
    atomic_store(&hook_fn, fn);
    atomic_store(&hook_ctx, ctx);
    atomic_fetch_add(&hook_seq, 1);
    atomic_store(&hook_writer, 0);
}

static void
read_hook(weft_log_fn *fn, void **ctx)
{
    for (;;) {
        unsigned s1 = atomic_load(&hook_seq);
        if ((s1 & 1u) == 0) {
            *fn = atomic_load(&hook_fn);
            *ctx = atomic_load(&hook_ctx);
            if (atomic_load(&hook_seq) == s1) {
                return;
            }
        }
        weft__cpu_relax();
    }
}

static void
default_writer(weft_log_level_t level, const char *thread, const char *message)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    /* Relaxed: this thread's own record, written by this thread. */
    const char *task = atomic_load_explicit(&weft__self_rec()->task_label,
                                            memory_order_relaxed);
    char tag[80] = "";
    if (task != NULL) {
        snprintf(tag, sizeof(tag), " [task:%.64s]", task);
    }
    char line[1480];
    int n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%06ld [%s]%s %s %s\n",
                     tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000,
                     thread, tag, level_names[level], message);
    if (n > 0) {
        size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
        if ((size_t)n >= sizeof(line)) {
            line[len - 1] = '\n';
        }
        weft__plat_write_stderr(line, len);
    }
}

void
weft_logv(weft_log_level_t level, const char *fmt, va_list ap)
{
    if (level <= WEFT_LOG_OFF || level > weft_log_level() || fmt == NULL) {
        return;
    }
    char msg[1024];
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n >= (int)sizeof(msg)) {
        memcpy(msg + sizeof(msg) - 4, "...", 4);
    }
    weft_log_fn fn;
    void *ctx;
    read_hook(&fn, &ctx);
    if (fn != NULL) {
        fn(ctx, level, weft_thread_name(), msg);
    } else {
        default_writer(level, weft_thread_name(), msg);
    }
}

void
weft_log(weft_log_level_t level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    weft_logv(level, fmt, ap);
    va_end(ap);
}
