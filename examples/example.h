/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the examples: checks that stop the program with a clear
 * message when what an example claims does not hold, thread start and join,
 * elapsed time, checksums of text, and paths of temporary files. Each example
 * checks its own claims, so a failure is loud.
 */
#ifndef WEFT_EXAMPLE_H
#define WEFT_EXAMPLE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/executor.h>
#include <weft/weft.h>

/* Sanitizers slow every atomic and every lock: examples shrink their sizes
 * there so each still runs in a few seconds. */
#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define EX_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define EX_SANITIZED 1
#endif
#endif
#ifndef EX_SANITIZED
#define EX_SANITIZED 0
#endif

#if defined(__GNUC__)
#define EX_NORETURN __attribute__((noreturn))
#define EX_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define EX_NORETURN
#define EX_PRINTF(f, a)
#endif

static inline EX_NORETURN EX_PRINTF(3, 4) void ex_fail(const char *file,
                                                       int line,
                                                       const char *fmt, ...);

static inline void
ex_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    const char *base = strrchr(file, '/');

    fflush(stdout);
    fprintf(stderr, "FAILED (%s:%d): ", base != NULL ? base + 1 : file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(EXIT_FAILURE);
}

/* EX_CHECK(cond, "what should hold, with %d numbers", ...): the example's
 * claim; the program fails with the message when cond is false. */
#define EX_CHECK(cond, ...)                                                    \
    do {                                                                       \
        if (!(cond)) {                                                         \
            ex_fail(__FILE__, __LINE__, __VA_ARGS__);                          \
        }                                                                      \
    } while (0)

/* EX_OK(call): a weft call that must return WEFT_OK. */
#define EX_OK(call)                                                            \
    do {                                                                       \
        int ex_rc_ = (call);                                                   \
        if (ex_rc_ != WEFT_OK) {                                               \
            ex_fail(__FILE__, __LINE__, "%s returned %s (%s)", #call,          \
                    weft_errname(ex_rc_), weft_strerror(ex_rc_));              \
        }                                                                      \
    } while (0)

/* Seconds elapsed since t0 (a weft_now() reading). */
static inline double
ex_seconds_since(weft_time_t t0)
{
    return (double)(weft_now() - t0) / (double)WEFT_SEC;
}

/* dir + "/" + file into out[n]; the program fails if it does not fit. */
static inline void
ex_path_join(char *out, size_t n, const char *dir, const char *file)
{
    int w = snprintf(out, n, "%s/%s", dir, file);
    EX_CHECK(w > 0 && (size_t)w < n, "path too long");
}

/* Where temporary files go: $TMPDIR when set and not empty, else /tmp. */
static inline const char *
ex_tmp_base(void)
{
    const char *tmp = getenv("TMPDIR");
    return tmp != NULL && *tmp ? tmp : "/tmp";
}

/* 64-bit FNV-1a of the n bytes at s. */
static inline uint64_t
ex_fnv1a(const char *s, size_t n)
{
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211u;
    }
    return h;
}

/* Order-sensitive combination of per-line checksums: digest, then sum. */
static inline uint64_t
ex_digest_add(uint64_t digest, uint64_t sum)
{
    return (digest ^ sum) * 1099511628211u + 1;
}

/* Start n threads named "<prefix>-<i>" running fn(arg_i), with arg_i =
 * (char *)base + i * stride (NULL when base is NULL). */
static inline void
ex_start_threads(weft_thread_t **threads, size_t n, const char *prefix,
                 weft_thread_fn fn, void *base, size_t stride)
{
    for (size_t i = 0; i < n; i++) {
        char name[WEFT_THREAD_NAME_MAX + 1];
        weft_thread_opts_t opts = WEFT_THREAD_OPTS_INIT;
        void *arg = base != NULL ? (char *)base + i * stride : NULL;

        snprintf(name, sizeof name, "%s-%zu", prefix, i);
        opts.name = name;
        EX_OK(weft_thread_create(&opts, fn, arg, &threads[i]));
    }
}

/* Join n threads started by ex_start_threads. */
static inline void
ex_join_threads(weft_thread_t **threads, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        EX_OK(weft_thread_join(threads[i], NULL));
    }
}

/*
 * ex_submit_started: weft_executor_submit, then wait until the task has
 * started. The examples use it where what they show needs the task to be
 * running already (a running task being cancelled, a server thread
 * accepting before the client connects), not just queued.
 */
typedef struct ex_start {
    weft_task_fn fn;
    void *arg;
    weft_event_t started;
} ex_start_t;

static inline void *
ex_run_started(void *arg)
{
    ex_start_t *s = arg;
    weft_task_fn fn = s->fn;
    void *fn_arg = s->arg;

    weft_event_set(&s->started); /* s may be gone from here on */
    return fn(fn_arg);
}

static inline int
ex_submit_started(weft_executor_t *ex, weft_task_fn fn, void *arg,
                  const weft_task_opts_t *opts, weft_future_t **out)
{
    ex_start_t s = {fn, arg, WEFT_EVENT_INIT};
    weft_future_t *f;
    int rc = weft_executor_submit(ex, ex_run_started, &s, opts, &f);

    if (rc != WEFT_OK) {
        return rc;
    }
    /* Until it starts, or finishes without starting (cancelled). */
    while (weft_event_wait_until(&s.started, weft_deadline_in(WEFT_MSEC)) ==
               WEFT_ETIMEDOUT &&
           !weft_future_done(f)) {
    }
    if (out != NULL) {
        *out = f;
    } else {
        weft_future_release(f);
    }
    return WEFT_OK;
}

#endif /* WEFT_EXAMPLE_H */
