/* SPDX-License-Identifier: MIT */
/* The monotonic clock. */
#include "plat.h"

#include <time.h>

weft_time_t
weft__plat_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (weft_time_t)ts.tv_sec * WEFT_SEC + (weft_time_t)ts.tv_nsec;
}
