/* SPDX-License-Identifier: MIT */
/* Monotonic time and absolute deadlines. */
#include "internal.h"
#include "plat.h"
#include "probe.h"

weft_time_t
weft_now(void)
{
    return weft__plat_now();
}

weft_time_t
weft_deadline_in(weft_time_t ns)
{
    weft_time_t now = weft__plat_now();
    if (ns <= 0) {
        return now;
    }
    if (ns >= WEFT_FOREVER - now) {
        return WEFT_FOREVER;
    }
    return now + ns;
}

int
weft_sleep_until(weft_time_t deadline)
{
    /* Park on a private word nobody wakes: only the deadline ends it, and a
     * spurious or interrupted return just loops. */
    _Atomic uint32_t never = 0;
    while (weft__plat_now() < deadline) {
        int rc = weft__park_on(WEFT__WAIT_SLEEP, NULL, &never, 0, deadline);
        if (rc == WEFT_ECANCELED) {
            return rc;
        }
    }
    return WEFT_OK;
}

int
weft_sleep_for(weft_time_t ns)
{
    return weft_sleep_until(weft_deadline_in(ns));
}
