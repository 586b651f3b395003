/* SPDX-License-Identifier: MIT */
/* The allocator hook: every allocation weft makes goes through here. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static void *
std_malloc(void *ctx, size_t size)
{
    (void)ctx;
    return malloc(size);
}

static void *
std_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    return realloc(ptr, size);
}

static void
std_free(void *ctx, void *ptr)
{
    (void)ctx;
    free(ptr);
}

/* Process-global by nature; written only before weft allocates anything
 * (documented on weft_set_allocator), read-only afterwards. */
static weft_allocator_t alloc_hook = {std_malloc, std_realloc, std_free, NULL};

int
weft_set_allocator(const weft_allocator_t *a)
{
    if (a == NULL) {
        alloc_hook =
            (weft_allocator_t){std_malloc, std_realloc, std_free, NULL};
        return WEFT_OK;
    }
    if (a->malloc_fn == NULL || a->realloc_fn == NULL || a->free_fn == NULL) {
        return WEFT_EINVAL;
    }
    alloc_hook = *a;
    return WEFT_OK;
}

void *
weft__malloc(size_t size)
{
    return alloc_hook.malloc_fn(alloc_hook.ctx, size == 0 ? 1 : size);
}

void *
weft__calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size) {
        return NULL;
    }
    void *p = weft__malloc(n * size);
    if (p != NULL) {
        memset(p, 0, n * size);
    }
    return p;
}

void *
weft__realloc(void *ptr, size_t size)
{
    return alloc_hook.realloc_fn(alloc_hook.ctx, ptr, size == 0 ? 1 : size);
}

void
weft__free(void *ptr)
{
    if (ptr != NULL) {
        alloc_hook.free_fn(alloc_hook.ctx, ptr);
    }
}

/* Aligned blocks keep the offset to the real start just before the aligned
 * address, so any allocator hook works. */
void *
weft__malloc_aligned(size_t size)
{
    size_t extra = WEFT__CACHELINE + sizeof(void *);
    if (size > SIZE_MAX - extra) {
        return NULL;
    }
    unsigned char *raw = weft__malloc(size + extra);
    if (raw == NULL) {
        return NULL;
    }
    uintptr_t start = (uintptr_t)(raw + sizeof(void *));
    uintptr_t aligned =
        (start + WEFT__CACHELINE - 1) & ~(uintptr_t)(WEFT__CACHELINE - 1);
    unsigned char *p = raw + (aligned - (uintptr_t)raw);
    ((void **)(void *)p)[-1] = raw;
    return p;
}

void
weft__free_aligned(void *ptr)
{
    if (ptr != NULL) {
        weft__free(((void **)ptr)[-1]);
    }
}

char *
weft__strndup(const char *s, size_t max)
{
    if (s == NULL) {
        return NULL;
    }
    size_t n = strnlen(s, max);
    char *d = weft__malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}
