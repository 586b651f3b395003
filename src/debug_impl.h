/* SPDX-License-Identifier: MIT */
/*
 * Shared internals of the debugging tools (dump.c, lockorder.c,
 * watchdog.c): the single probe sink they attach, snapshots of the thread
 * records, a growable string and the report hook.
 */
#ifndef WEFT_DEBUG_IMPL_H
#define WEFT_DEBUG_IMPL_H

#include <weft/debug.h>

#include "internal.h"
#include "probe.h"

/* A string that grows; oom is sticky (later appends are dropped). */
typedef struct weft__sb {
    char *buf;
    size_t len;
    size_t cap;
    bool oom;
} weft__sb_t;

void weft__sb_printf(weft__sb_t *sb, const char *fmt, ...) WEFT_PRINTF(2, 3);
/* Append s as a JSON string literal (quotes included); NULL gives null. */
void weft__sb_json(weft__sb_t *sb, const char *s);

/* One thread's record, copied, with the holder of what it waits on. */
typedef struct weft__dbg_thread {
    uint32_t id;
    uint32_t wait_kind;   /* weft__wait_kind_t */
    const void *wait_obj; /* borrowed: only compared or read while live */
    weft_time_t wait_since;
    bool has_task;
    uint64_t task_id;
    weft_time_t task_since; /* 0: unknown (timing was off) */
    const void *task_exec;
    const void *running_token; /* token of the future task it runs */
    size_t obj_size;           /* the queue's size, for queue waits */
    uint32_t holder; /* thread holding / running what it waits on, or 0 */
    char name[32];
    char task_label[48];
    char holder_name[32];
    char obj_label[48]; /* awaited future's label, queue name */
} weft__dbg_thread_t;

/*
 * Copy up to cap thread records into out (holders resolved); returns how
 * many records exist (may exceed cap).
 */
size_t weft__dbg_snapshot(weft__dbg_thread_t *out, size_t cap);

/* Attach the debugging sink (once); idempotent and thread-safe. */
void weft__dbg_init(void);
/* Turn on task timing (the TASK probe bit) for durations in dumps. */
void weft__dbg_want_timing(void);
/* Route lock probes to the lock-order checker (on) or not. */
void weft__dbg_want_locks(bool on);

/* The checker's probe callbacks (lockorder.c). */
void weft__lockorder_acquired(const void *lock, weft__wait_kind_t kind,
                              const void *site);
void weft__lockorder_released(const void *lock, weft__wait_kind_t kind);

/* Append a text or JSON dump to sb. */
void weft__dbg_dump_sb(weft__sb_t *sb, weft_dump_format_t fmt);

/*
 * Visit every registered pool under the registry lock (a pool being
 * destroyed waits for the visit to end): fn(exec, name, ctx).
 */
void weft__dbg_pool_foreach(void (*fn)(const void *exec, const char *name,
                                       void *ctx),
                            void *ctx);

/* If q is a registered queue: copy its name, set *size, true (read under
 * the registry lock, which a destroy waits for). */
bool weft__dbg_queue_info(const void *q, char *name, size_t len, size_t *size);

/* Deliver a report to the deadlock hook (or the log). */
void weft__dbg_report(const char *kind, const char *text);

/* Name of a wait kind ("mutex", "future", ...). */
const char *weft__dbg_wait_name(uint32_t kind);

/* A spinlock for the checker and the registry: they observe weft mutexes
 * and must not use one. */
void weft__dbg_spin_lock(_Atomic uint32_t *l);
void weft__dbg_spin_unlock(_Atomic uint32_t *l);

#endif /* WEFT_DEBUG_IMPL_H */
