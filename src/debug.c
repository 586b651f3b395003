/* SPDX-License-Identifier: MIT */
/*
 * Plumbing shared by the debugging tools: the one probe sink they attach,
 * the registry of pools and queues it keeps from object events, the report
 * hook, and the signal-triggered dump thread.
 *
 * DESIGN
 * One sink (probe slots are few): its mask gains WEFT__PROBE_TASK and
 * WEFT__PROBE_TIMING once a dump or the watchdog is wanted (so every task
 * records its start time) and WEFT__PROBE_LOCK while the lock-order checker is
 * on. Object events reach it whatever its mask, so the registry is complete
 * from the moment the sink is attached: at program start, by a constructor,
 * when this module is linked. The registry is a fixed table guarded by a
 * spinlock (not a weft mutex: the checker observes those); a destroy event
 * waits on that spinlock, so a reader holding it may read a registered object.
 * Signals: the handler only write(2)s a byte to a pipe; the dump thread
 * reads it and writes the dump.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft/queue.h>
#include <weft/thread.h>

#include "debug_impl.h"
#include "plat.h"

#define MAX_OBJECTS 256

typedef struct dbg_obj {
    const void *obj; /* NULL: free slot */
    weft__obj_kind_t kind;
    char name[32];
} dbg_obj_t;

static dbg_obj_t objects[MAX_OBJECTS];
static _Atomic uint32_t objects_lock;
static _Atomic uint32_t sink_mask;
static _Atomic uint32_t sink_state; /* 0 none, 1 attaching, 2 attached */
static _Atomic uint32_t mask_lock;

void
weft__dbg_spin_lock(_Atomic uint32_t *l)
{
    while (atomic_exchange_explicit(l, 1, memory_order_acquire) != 0) {
        weft__plat_thread_yield();
    }
}

void
weft__dbg_spin_unlock(_Atomic uint32_t *l)
{
    /* Release: pairs with the acquire exchange of the next locker. */
    atomic_store_explicit(l, 0, memory_order_release);
}

static void
on_object(weft__obj_kind_t kind, const void *obj, const char *name,
          bool created)
{
    weft__dbg_spin_lock(&objects_lock);
    for (size_t i = 0; i < MAX_OBJECTS; i++) {
        if (created && objects[i].obj == NULL) {
            objects[i].obj = obj;
            objects[i].kind = kind;
            snprintf(objects[i].name, sizeof(objects[i].name), "%s",
                     name != NULL ? name : "");
            break;
        }
        if (!created && objects[i].obj == obj) {
            objects[i].obj = NULL;
            break;
        }
    }
    weft__dbg_spin_unlock(&objects_lock);
}

static void
on_lock_acquired(const void *lock, weft__wait_kind_t kind, const void *site)
{
    weft__lockorder_acquired(lock, kind, site);
}

static void
on_lock_released(const void *lock, weft__wait_kind_t kind)
{
    weft__lockorder_released(lock, kind);
}

static const weft__probe_sink_t dbg_sink = {
    .lock_acquired = on_lock_acquired,
    .lock_released = on_lock_released,
    .object_event = on_object,
};

void
weft__dbg_init(void)
{
    uint32_t st = atomic_load_explicit(&sink_state, memory_order_acquire);
    if (st == 2) {
        return;
    }
    uint32_t zero = 0;
    if (atomic_compare_exchange_strong(&sink_state, &zero, 1)) {
        if (weft__probe_attach(&dbg_sink, 0) != WEFT_OK) {
            weft_log(WEFT_LOG_ERROR, "debug: no free probe slot: dumps "
                                     "list no pools or queues, the "
                                     "lock-order checker is off");
        }
        /* Release: pairs with the acquire loads above and below. */
        atomic_store_explicit(&sink_state, 2, memory_order_release);
        return;
    }
    while (atomic_load_explicit(&sink_state, memory_order_acquire) != 2) {
        weft__plat_thread_yield();
    }
}

static void
update_mask(uint32_t set, uint32_t clear)
{
    weft__dbg_init();
    weft__dbg_spin_lock(&mask_lock);
    uint32_t m = atomic_load_explicit(&sink_mask, memory_order_relaxed);
    uint32_t nm = (m | set) & ~clear;
    if (nm != m) {
        atomic_store_explicit(&sink_mask, nm, memory_order_relaxed);
        weft__probe_set_mask(&dbg_sink, nm);
    }
    weft__dbg_spin_unlock(&mask_lock);
}

void
weft__dbg_want_timing(void)
{
    /* Relaxed: a hint; update_mask rechecks under the lock. */
    if ((atomic_load_explicit(&sink_mask, memory_order_relaxed) &
         WEFT__PROBE_TASK) == 0) {
        update_mask(WEFT__PROBE_TASK | WEFT__PROBE_TIMING, 0);
    }
}

void
weft__dbg_want_locks(bool on)
{
    update_mask(on ? WEFT__PROBE_LOCK : 0, on ? 0 : WEFT__PROBE_LOCK);
}

void
weft__dbg_pool_foreach(void (*fn)(const void *exec, const char *name,
                                  void *ctx),
                       void *ctx)
{
    weft__dbg_spin_lock(&objects_lock);
    for (size_t i = 0; i < MAX_OBJECTS; i++) {
        if (objects[i].obj != NULL && objects[i].kind == WEFT__OBJ_POOL) {
            fn(objects[i].obj, objects[i].name, ctx);
        }
    }
    weft__dbg_spin_unlock(&objects_lock);
}

/* Visit every registered object (under the registry lock). */
void weft__dbg_obj_foreach(void (*fn)(weft__obj_kind_t kind, const void *obj,
                                      const char *name, void *ctx),
                           void *ctx);

void
weft__dbg_obj_foreach(void (*fn)(weft__obj_kind_t kind, const void *obj,
                                 const char *name, void *ctx),
                      void *ctx)
{
    weft__dbg_spin_lock(&objects_lock);
    for (size_t i = 0; i < MAX_OBJECTS; i++) {
        if (objects[i].obj != NULL) {
            fn(objects[i].kind, objects[i].obj, objects[i].name, ctx);
        }
    }
    weft__dbg_spin_unlock(&objects_lock);
}

bool
weft__dbg_queue_info(const void *q, char *name, size_t len, size_t *size)
{
    bool found = false;
    weft__dbg_spin_lock(&objects_lock);
    for (size_t i = 0; i < MAX_OBJECTS && !found; i++) {
        if (objects[i].obj == q && objects[i].kind == WEFT__OBJ_QUEUE) {
            snprintf(name, len, "%s", objects[i].name);
            *size = weft_queue_size(q);
            found = true;
        }
    }
    weft__dbg_spin_unlock(&objects_lock);
    return found;
}

/* ------------------------------------------------------------------------ */
/* Strings                                                                   */

void
weft__sb_printf(weft__sb_t *sb, const char *fmt, ...)
{
    if (sb->oom) {
        return;
    }
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = sb->cap - sb->len;
        int n = vsnprintf(sb->buf != NULL ? sb->buf + sb->len : NULL, room, fmt,
                          ap);
        va_end(ap);
        if (n < 0) {
            return;
        }
        if ((size_t)n < room) {
            sb->len += (size_t)n;
            return;
        }
        size_t cap = sb->cap < 1024 ? 1024 : sb->cap;
        while (cap - sb->len <= (size_t)n) {
            cap *= 2;
        }
        char *nb = weft__realloc(sb->buf, cap);
        if (nb == NULL) {
            sb->oom = true;
            return;
        }
        sb->buf = nb;
        sb->cap = cap;
    }
}

void
weft__sb_json(weft__sb_t *sb, const char *s)
{
    if (s == NULL) {
        weft__sb_printf(sb, "null");
        return;
    }
    weft__sb_printf(sb, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            weft__sb_printf(sb, "\\%c", *p);
        } else if (*p < 0x20 || *p >= 0x7f) {
            weft__sb_printf(sb, "\\u%04x", *p);
        } else {
            weft__sb_printf(sb, "%c", *p);
        }
    }
    weft__sb_printf(sb, "\"");
}

/* ------------------------------------------------------------------------ */
/* Reports                                                                   */

static _Atomic uint32_t hook_lock;
static weft_deadlock_fn hook_fn; /* hook_lock */
static void *hook_ctx;           /* hook_lock */

void
weft_deadlock_set_hook(weft_deadlock_fn fn, void *ctx)
{
    weft__dbg_spin_lock(&hook_lock);
    hook_fn = fn;
    hook_ctx = ctx;
    weft__dbg_spin_unlock(&hook_lock);
}

void
weft__dbg_report(const char *kind, const char *text)
{
    weft__dbg_spin_lock(&hook_lock);
    weft_deadlock_fn fn = hook_fn;
    void *ctx = hook_ctx;
    weft__dbg_spin_unlock(&hook_lock);
    if (fn != NULL) {
        fn(ctx, kind, text);
        return;
    }
    /* One record per line: a log record holds at most 1 KiB. */
    const char *p = text;
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        int n = nl != NULL ? (int)(nl - p) : (int)strlen(p);
        weft_log(WEFT_LOG_ERROR, "%s: %.*s", kind, n, p);
        p += n;
        if (*p == '\n') {
            p++;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Dump on a signal                                                          */

static int sig_pipe[2] = {-1, -1};
static _Atomic uint32_t sig_lock;
static weft_thread_t *sig_thread; /* sig_lock; never joined */

static void
on_signal(int signo)
{
    (void)signo;
    int saved = errno;
    char b = 'd';
    /* The only thing a handler may do here: one async-signal-safe write
     * (non-blocking: a full pipe already has a dump pending). */
    ssize_t n = write(sig_pipe[1], &b, 1);
    (void)n;
    errno = saved;
}

static void *
sig_dump_main(void *arg)
{
    (void)arg;
    (void)weft__self_rec(); /* listed in dumps from now on */
    for (;;) {
        char b[16];
        ssize_t n = read(sig_pipe[0], b, sizeof(b));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return NULL;
        }
        int rc = weft_dump_to_fd(2, WEFT_DUMP_TEXT);
        if (rc != WEFT_OK) {
            weft_log(WEFT_LOG_ERROR, "dump on signal: %s", weft_errname(rc));
        }
    }
}

static int
sig_start(void)
{
    if (pipe2(sig_pipe, O_CLOEXEC) != 0) {
        return WEFT_EAGAIN;
    }
    /* The handler must never block: a full pipe means a dump is pending. */
    (void)fcntl(sig_pipe[1], F_SETFL, O_NONBLOCK);
    weft_thread_opts_t o = WEFT_THREAD_OPTS_INIT;
    o.name = "weft-dump";
    int rc = weft_thread_create(&o, sig_dump_main, NULL, &sig_thread);
    if (rc != WEFT_OK) {
        close(sig_pipe[0]);
        close(sig_pipe[1]);
        sig_pipe[0] = sig_pipe[1] = -1;
    }
    return rc;
}

int
weft_dump_on_signal(int signo)
{
    if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP) {
        return WEFT_EINVAL;
    }
    weft__dbg_init();
    weft__dbg_want_timing();
    weft__dbg_spin_lock(&sig_lock);
    int rc = sig_thread == NULL ? sig_start() : WEFT_OK;
    if (rc == WEFT_OK) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(signo, &sa, NULL) != 0) {
            rc = WEFT_EINVAL;
        }
    }
    weft__dbg_spin_unlock(&sig_lock);
    return rc;
}

/* Attach the sink at program start, so the registry sees every pool and
 * queue, and honour WEFT_LOCKORDER=1. */
__attribute__((constructor)) static void
dbg_ctor(void)
{
    weft__dbg_init();
    /* Before main: no thread can call setenv yet. */
    const char *e = getenv("WEFT_LOCKORDER"); // NOLINT(concurrency-mt-unsafe)
    if (e != NULL && e[0] == '1' && e[1] == '\0') {
        weft_lockorder_enable(true);
    }
}
