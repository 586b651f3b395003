/* SPDX-License-Identifier: MIT */
/*
 * The platform contract: everything weft needs from the operating system.
 * Prototypes only; src/unix/ implements them for Linux. errno is translated
 * to WEFT_E* codes here and nowhere else.
 */
#ifndef WEFT_PLAT_H
#define WEFT_PLAT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <weft/base.h>

/* Translate an errno value to a WEFT_E* code. */
int weft__plat_err(int errnum);

/* Monotonic clock in ns. */
weft_time_t weft__plat_now(void);

/*
 * Sleep while *addr == expected, until woken by weft__plat_futex_wake or the
 * absolute monotonic deadline passes. Returns WEFT_OK (woken, value differed,
 * or interrupted: callers re-check) or WEFT_ETIMEDOUT. Process-private.
 */
int weft__plat_futex_wait(_Atomic uint32_t *addr, uint32_t expected,
                          weft_time_t deadline);
/* Wake up to n threads sleeping on addr (n <= 0 or INT32_MAX: all). */
void weft__plat_futex_wake(_Atomic uint32_t *addr, int n);

/* Threads. */
int weft__plat_thread_start(void *(*fn)(void *), void *arg, size_t stack_size,
                            uintptr_t *handle_out);
int weft__plat_thread_join(uintptr_t handle, void **result);
/* Set the calling thread's kernel name (at most 15 bytes are kept). */
void weft__plat_thread_set_kernel_name(const char *name);
void weft__plat_thread_yield(void);

/* A test-and-set lock that yields while taken: for the observability
 * registries, whose critical sections are short and never block. */
static inline void
weft__spin_lock(_Atomic uint32_t *l)
{
    while (atomic_exchange_explicit(l, 1, memory_order_acquire) != 0) {
        weft__plat_thread_yield();
    }
}

static inline void
weft__spin_unlock(_Atomic uint32_t *l)
{
    atomic_store_explicit(l, 0, memory_order_release);
}
/* Call fn(arg) when the calling thread exits (once per thread; a second
 * registration replaces the first). WEFT_OK or WEFT_ENOMEM. */
int weft__plat_on_thread_exit(void (*fn)(void *), void *arg);
/* Kernel thread id of the caller, for dumps. */
int64_t weft__plat_gettid(void);
/* True in the process's initial thread. */
int weft__plat_is_main_thread(void);

/* CPUs in the caller's affinity mask (>= 1). */
int weft__plat_affinity_cpus(void);
/* CPU limit from the cgroup quota, rounded up; 0 when there is none. The
 * cgroup file system root is /sys/fs/cgroup, or $WEFT_CGROUP_ROOT. */
int weft__plat_cgroup_cpus(void);
/* The same, from a given cgroup root and /proc/<pid>/cgroup file (tests). */
int weft__cgroup_cpus_from(const char *root, const char *proc_cgroup);

/* Write the whole buffer to stderr with one write(2) where possible. */
void weft__plat_write_stderr(const char *buf, size_t len);

#endif /* WEFT_PLAT_H */
