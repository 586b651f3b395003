/* SPDX-License-Identifier: MIT */
/* POSIX threads: start, join, kernel names, ids. */
#include "plat.h"

#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int
weft__plat_thread_start(void *(*fn)(void *), void *arg, size_t stack_size,
                        uintptr_t *handle_out)
{
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc != 0) {
        return weft__plat_err(rc);
    }
    if (stack_size != 0) {
        rc = pthread_attr_setstacksize(&attr, stack_size);
        if (rc != 0) {
            pthread_attr_destroy(&attr);
            return WEFT_EINVAL;
        }
    }
    pthread_t t;
    rc = pthread_create(&t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        return rc == EAGAIN ? WEFT_EAGAIN : weft__plat_err(rc);
    }
    *handle_out = (uintptr_t)t;
    return WEFT_OK;
}

int
weft__plat_thread_join(uintptr_t handle, void **result)
{
    int rc = pthread_join((pthread_t)handle, result);
    return weft__plat_err(rc);
}

void
weft__plat_thread_set_kernel_name(const char *name)
{
    char k[16];
    size_t n = strlen(name);
    if (n <= 15) {
        memcpy(k, name, n + 1);
    } else {
        /* Keep both ends: "worker-pool/12" style suffixes tell threads
         * apart, prefixes tell pools apart. */
        memcpy(k, name, 7);
        k[7] = '~';
        memcpy(k + 8, name + n - 7, 7);
        k[15] = '\0';
    }
    pthread_setname_np(pthread_self(), k);
}

void
weft__plat_thread_yield(void)
{
    sched_yield();
}

int64_t
weft__plat_gettid(void)
{
    return (int64_t)syscall(SYS_gettid);
}

int
weft__plat_is_main_thread(void)
{
    return weft__plat_gettid() == (int64_t)getpid();
}

/* One key: its destructor runs the registered exit function. */
static pthread_key_t exit_key;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;
/* Set by every registration (always the same function): atomic, relaxed. */
static _Atomic(void (*)(void *)) exit_fn;

static void
exit_trampoline(void *arg)
{
    void (*fn)(void *) = atomic_load_explicit(&exit_fn, memory_order_relaxed);
    if (fn != NULL) {
        fn(arg);
    }
}

static void
exit_key_init(void)
{
    if (pthread_key_create(&exit_key, exit_trampoline) != 0) {
        atomic_store_explicit(&exit_fn, NULL, memory_order_relaxed);
    }
}

int
weft__plat_on_thread_exit(void (*fn)(void *), void *arg)
{
    (void)pthread_once(&exit_once, exit_key_init);
    /* One user (the thread registry): the same fn every time. */
    atomic_store_explicit(&exit_fn, fn, memory_order_relaxed);
    return pthread_setspecific(exit_key, arg) == 0 ? WEFT_OK : WEFT_ENOMEM;
}
