/* SPDX-License-Identifier: MIT */
/*
 * Named threads, join with a result, and the number of CPUs this process may
 * really use (affinity masks and cgroup CPU quotas respected).
 */
#ifndef WEFT_THREAD_H
#define WEFT_THREAD_H

#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest thread name weft keeps (bytes, without the terminating NUL). */
#define WEFT_THREAD_NAME_MAX 63

typedef struct weft_thread weft_thread_t;
typedef void *(*weft_thread_fn)(void *arg);

typedef struct weft_thread_opts {
    /* Thread name, copied. NULL gives "thread-<id>". Names longer than
     * WEFT_THREAD_NAME_MAX are truncated. The kernel (ps, top, gdb) keeps only
     * 15 bytes: weft shows long names there as the first 7 bytes, '~' and the
     * last 7 bytes, so "worker-pool/12" style suffixes stay visible. */
    const char *name;
    /* Stack size in bytes; 0 means the system default. */
    size_t stack_size;
} weft_thread_opts_t;

#define WEFT_THREAD_OPTS_INIT                                                  \
    {                                                                          \
        NULL, 0                                                                \
    }

/*
 * weft_thread_create: start a thread running fn(arg).
 * opts: borrowed, may be NULL (defaults). *out receives a new handle that must
 * be passed to weft_thread_join exactly once.
 * Errors: WEFT_EINVAL (fn or out NULL), WEFT_ENOMEM, WEFT_EAGAIN (the system
 * refused another thread). On failure fn is never called and *out untouched.
 * Thread-safe.
 */
WEFT_API WEFT_NODISCARD int weft_thread_create(const weft_thread_opts_t *opts,
                                               weft_thread_fn fn, void *arg,
                                               weft_thread_t **out);

/*
 * weft_thread_join: wait for t to finish, store fn's return value in *result
 * (if result is not NULL) and free t. Blocks until the thread ends.
 * Errors: WEFT_EINVAL (t NULL), WEFT_EDEADLK (t is the calling thread; t is
 * not freed). Joining the same handle twice is a programmer error.
 */
WEFT_API WEFT_NODISCARD int weft_thread_join(weft_thread_t *t, void **result);

/*
 * weft_thread_name: the calling thread's weft name. Threads weft did not
 * create are named "main" (the process's first thread) or "thread-<id>" until
 * weft_thread_set_name is called. The string belongs to the thread and stays
 * valid until it exits or renames itself. Never blocks.
 */
WEFT_API const char *weft_thread_name(void);

/*
 * weft_thread_set_name: rename the calling thread (copied; truncated to
 * WEFT_THREAD_NAME_MAX; the kernel name shortened as described above).
 * Errors: WEFT_EINVAL (name NULL or empty).
 */
WEFT_API WEFT_NODISCARD int weft_thread_set_name(const char *name);

/*
 * weft_thread_id: a small integer unique to the calling thread for the life of
 * the process (never reused, never 0). Never blocks.
 */
WEFT_API uint32_t weft_thread_id(void);

/*
 * weft_cpu_count: how many CPUs this process can really use: the smaller of
 * the CPUs in its affinity mask (taskset, cpusets) and the cgroup CPU quota
 * (cgroup v2 cpu.max or v1 cfs_quota_us / cfs_period_us, rounded up), at least
 * 1. The environment variable WEFT_CPUS, when set to a positive integer,
 * overrides both. Re-read on every call (affinity may change).
 * Thread-safe, never blocks.
 */
WEFT_API int weft_cpu_count(void);

/* weft_thread_yield: give up the CPU to another ready thread. */
WEFT_API void weft_thread_yield(void);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_THREAD_H */
