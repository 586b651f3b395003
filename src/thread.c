/* SPDX-License-Identifier: MIT */
/*
 * Named threads and the calling thread's identity. Each thread's weft name
 * and id live in thread-local storage, set by the thread itself, so reading
 * them never takes a lock.
 */
#include "internal.h"
#include "plat.h"
#include "probe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/thread.h>

struct weft_thread {
    uintptr_t handle;
    weft_thread_fn fn;
    void *arg;
    char name[WEFT_THREAD_NAME_MAX + 1];
};

static _Atomic uint32_t next_id = 1;
static _Thread_local uint32_t self_id;
static _Thread_local char self_name[WEFT_THREAD_NAME_MAX + 1];

uint32_t
weft__self_id(void)
{
    if (WEFT__UNLIKELY(self_id == 0)) {
        /* Relaxed: only uniqueness matters, not ordering. */
        self_id = atomic_fetch_add_explicit(&next_id, 1, memory_order_relaxed);
    }
    return self_id;
}

uint32_t
weft_thread_id(void)
{
    return weft__self_id();
}

static void
set_name_local(const char *name)
{
    size_t n = strnlen(name, WEFT_THREAD_NAME_MAX);
    memcpy(self_name, name, n);
    self_name[n] = '\0';
}

const char *
weft_thread_name(void)
{
    if (self_name[0] == '\0') {
        if (weft__plat_is_main_thread()) {
            set_name_local("main");
        } else {
            char buf[32];
            snprintf(buf, sizeof(buf), "thread-%u", weft__self_id());
            set_name_local(buf);
        }
    }
    return self_name;
}

int
weft_thread_set_name(const char *name)
{
    if (name == NULL || name[0] == '\0') {
        return WEFT_EINVAL;
    }
    set_name_local(name);
    weft__plat_thread_set_kernel_name(self_name);
    return WEFT_OK;
}

static void *
trampoline(void *p)
{
    weft_thread_t *t = p;
    (void)weft__self_id();
    if (t->name[0] != '\0') {
        set_name_local(t->name);
        weft__plat_thread_set_kernel_name(t->name);
    }
    return t->fn(t->arg);
}

int
weft_thread_create(const weft_thread_opts_t *opts, weft_thread_fn fn, void *arg,
                   weft_thread_t **out)
{
    if (fn == NULL || out == NULL) {
        return WEFT_EINVAL;
    }
    weft_thread_t *t = weft__calloc(1, sizeof(*t));
    if (t == NULL) {
        return WEFT_ENOMEM;
    }
    t->fn = fn;
    t->arg = arg;
    if (opts != NULL && opts->name != NULL) {
        size_t n = strnlen(opts->name, WEFT_THREAD_NAME_MAX);
        memcpy(t->name, opts->name, n);
    }
    size_t stack = opts != NULL ? opts->stack_size : 0;
    int rc = weft__plat_thread_start(trampoline, t, stack, &t->handle);
    if (rc != WEFT_OK) {
        weft__free(t);
        return rc;
    }
    *out = t;
    return WEFT_OK;
}

int
weft_thread_join(weft_thread_t *t, void **result)
{
    if (t == NULL) {
        return WEFT_EINVAL;
    }
    void *res = NULL;
    weft__wait_begin(WEFT__WAIT_JOIN, t);
    int rc = weft__plat_thread_join(t->handle, &res);
    weft__wait_end(WEFT__WAIT_JOIN, t, rc);
    if (rc != WEFT_OK) {
        return rc; /* EDEADLK: joining oneself; t stays valid */
    }
    weft__free(t);
    if (result != NULL) {
        *result = res;
    }
    return WEFT_OK;
}

int
weft_cpu_count(void)
{
    const char *env = getenv("WEFT_CPUS"); // NOLINT(concurrency-mt-unsafe)
    if (env != NULL) {
        long v = strtol(env, NULL, 10);
        if (v > 0 && v <= 65536) {
            return (int)v;
        }
    }
    int n = weft__plat_affinity_cpus();
    int quota = weft__plat_cgroup_cpus();
    if (quota > 0 && quota < n) {
        n = quota;
    }
    return n > 0 ? n : 1;
}

void
weft_thread_yield(void)
{
    weft__plat_thread_yield();
}
