/* SPDX-License-Identifier: MIT */
/*
 * weft_rlock_t (Python's threading.RLock): a weft mutex plus a depth count
 * kept by the owner. The inner mutex's owner word says who owns the rlock.
 */
#include "rlock_impl.h"

void
weft_rlock_init(weft_rlock_t *r)
{
    WEFT_ASSERT(r != NULL, "weft_rlock_init: NULL rlock");
    weft__rlock_t *x = weft__rlock(r);
    atomic_init(&x->m.state, WEFT__MUTEX_FREE);
    atomic_init(&x->m.owner, 0);
    x->depth = 0;
}

void
weft_rlock_fini(weft_rlock_t *r)
{
    WEFT_ASSERT(r != NULL, "weft_rlock_fini: NULL rlock");
    weft__rlock_t *x = weft__rlock(r);
    uint32_t state = atomic_load_explicit(&x->m.state, memory_order_relaxed);
    WEFT_ASSERT(state == WEFT__MUTEX_FREE,
                "weft_rlock_fini: rlock %p is still held (by thread %u)",
                (void *)r,
                atomic_load_explicit(&x->m.owner, memory_order_relaxed));
}

/* True when the caller owns x. Relaxed: exact for the caller's own id (see
 * the DESIGN of mutex.c). */
static bool
owned(const weft__rlock_t *x)
{
    return atomic_load_explicit(&x->m.owner, memory_order_relaxed) ==
           weft__self_id();
}

/* The owner takes it once more. */
static int
reenter(weft__rlock_t *x)
{
    if (x->depth == WEFT__RLOCK_DEPTH_MAX) {
        return WEFT_EOVERFLOW;
    }
    x->depth++;
    return WEFT_OK;
}

static int
acquire_until(weft_rlock_t *r, weft_time_t deadline)
{
    weft__rlock_t *x = weft__rlock(r);
    if (owned(x)) {
        return reenter(x);
    }
    int rc = weft__mutex_lock_until(&x->m, deadline, true);
    if (rc == WEFT_OK) {
        x->depth = 1;
    }
    return rc;
}

int
weft_rlock_acquire(weft_rlock_t *r)
{
    WEFT_ASSERT(r != NULL, "weft_rlock_acquire: NULL rlock");
    return acquire_until(r, WEFT_FOREVER);
}

int
weft_rlock_acquire_until(weft_rlock_t *r, weft_time_t deadline)
{
    WEFT_ASSERT(r != NULL, "weft_rlock_acquire_until: NULL rlock");
    return acquire_until(r, deadline);
}

int
weft_rlock_try_acquire(weft_rlock_t *r)
{
    WEFT_ASSERT(r != NULL, "weft_rlock_try_acquire: NULL rlock");
    weft__rlock_t *x = weft__rlock(r);
    if (owned(x)) {
        return reenter(x);
    }
    if (!weft__mutex_try_lock(&x->m)) {
        return WEFT_EAGAIN;
    }
    x->depth = 1;
    return WEFT_OK;
}

int
weft_rlock_release(weft_rlock_t *r)
{
    WEFT_ASSERT(r != NULL, "weft_rlock_release: NULL rlock");
    weft__rlock_t *x = weft__rlock(r);
    if (!owned(x)) {
        return WEFT_EPERM;
    }
    if (--x->depth == 0) {
        weft__mutex_release(&x->m);
    }
    return WEFT_OK;
}

unsigned
weft_rlock_depth(const weft_rlock_t *r)
{
    WEFT_ASSERT(r != NULL, "weft_rlock_depth: NULL rlock");
    const weft__rlock_t *x = (const weft__rlock_t *)(const void *)r;
    return owned(x) ? x->depth : 0;
}
