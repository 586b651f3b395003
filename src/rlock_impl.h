/* SPDX-License-Identifier: MIT */
/* The real layout of weft_rlock_t (shared with its tests). */
#ifndef WEFT_RLOCK_IMPL_H
#define WEFT_RLOCK_IMPL_H

#include "mutex_impl.h"

/* Most nested holds of one rlock. */
#define WEFT__RLOCK_DEPTH_MAX 0x7fffffffu

typedef struct WEFT__MAY_ALIAS weft__rlock {
    /* The inner lock: its owner word is the rlock's owner. */
    weft__mutex_t m;
    /* Nested holds; read and written only by the owner while it holds m,
     * so a plain field: the next owner's acquire of m orders it. */
    uint32_t depth;
} weft__rlock_t;

_Static_assert(sizeof(weft__rlock_t) <= sizeof(weft_rlock_t),
               "weft__rlock_t must fit in weft_rlock_t");
_Static_assert(alignof(weft__rlock_t) <= alignof(weft_rlock_t),
               "weft_rlock_t must be aligned for weft__rlock_t");

static inline weft__rlock_t *
weft__rlock(weft_rlock_t *r)
{
    return (weft__rlock_t *)(void *)r;
}

#endif /* WEFT_RLOCK_IMPL_H */
