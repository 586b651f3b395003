/* SPDX-License-Identifier: MIT */
/* Linux futex wait/wake with absolute CLOCK_MONOTONIC deadlines. */
#include "plat.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int
weft__plat_futex_wait(_Atomic uint32_t *addr, uint32_t expected,
                      weft_time_t deadline)
{
    struct timespec ts;
    struct timespec *tsp = NULL;
    if (deadline != WEFT_FOREVER) {
        if (deadline <= weft__plat_now()) {
            return WEFT_ETIMEDOUT;
        }
        ts.tv_sec = (time_t)(deadline / WEFT_SEC);
        ts.tv_nsec = (long)(deadline % WEFT_SEC);
        tsp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute deadline on CLOCK_MONOTONIC (the
     * clock of weft_now), so repeated waits never stretch the deadline. */
    long r = syscall(SYS_futex, (uint32_t *)addr,
                     FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, tsp,
                     NULL, FUTEX_BITSET_MATCH_ANY);
    if (r == -1 && errno == ETIMEDOUT) {
        return WEFT_ETIMEDOUT;
    }
    /* Woken, EAGAIN (value already differed) or EINTR: the caller
     * re-checks its condition. */
    return WEFT_OK;
}

void
weft__plat_futex_wake(_Atomic uint32_t *addr, int n)
{
    if (n <= 0) {
        n = INT_MAX;
    }
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n,
            NULL, NULL, 0);
}
