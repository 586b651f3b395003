/* SPDX-License-Identifier: MIT */
/*
 * Dumps: every weft thread with the task it runs and what it waits on (and
 * which thread holds or runs that), then the pools and queues, as text or
 * JSON.
 *
 * DESIGN
 * The thread records (probe.h) are copied under the record registry's
 * spinlock; the objects they wait on are then read outside it: a mutex's
 * owner id, a future's state, runner and label, a queue's name and size.
 * A thread blocked on an object keeps it alive, but the object may be
 * freed just after that thread wakes: dumps are a debugging aid and read
 * such snapshots without a lifetime guarantee (documented in debug.h).
 * Names are resolved from weft ids with weft__rec_name_of.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <weft/queue.h>

#include "debug_impl.h"
#include "future_impl.h"
#include "mutex_impl.h"
#include "pool_impl.h"
#include "queue_impl.h"

#define MAX_THREADS 1024

void weft__dbg_obj_foreach(void (*fn)(weft__obj_kind_t kind, const void *obj,
                                      const char *name, void *ctx),
                           void *ctx);

static const char *const wait_names[WEFT__WAIT_KINDS] = {
    [WEFT__WAIT_NONE] = "nothing",        [WEFT__WAIT_MUTEX] = "mutex",
    [WEFT__WAIT_RLOCK] = "rlock",         [WEFT__WAIT_SEM] = "semaphore",
    [WEFT__WAIT_EVENT] = "event",         [WEFT__WAIT_COND] = "condition",
    [WEFT__WAIT_BARRIER] = "barrier",     [WEFT__WAIT_ONCE] = "once",
    [WEFT__WAIT_QUEUE_GET] = "queue-get", [WEFT__WAIT_QUEUE_PUT] = "queue-put",
    [WEFT__WAIT_FUTURE] = "future",       [WEFT__WAIT_GROUP] = "group",
    [WEFT__WAIT_SCOPE] = "scope",         [WEFT__WAIT_CQ] = "completion-queue",
    [WEFT__WAIT_SLEEP] = "sleep",         [WEFT__WAIT_JOIN] = "join",
    [WEFT__WAIT_IDLE] = "idle",           [WEFT__WAIT_SELECT] = "select",
};

const char *
weft__dbg_wait_name(uint32_t kind)
{
    return kind < WEFT__WAIT_KINDS ? wait_names[kind] : "unknown";
}

typedef struct snap_ctx {
    weft__dbg_thread_t *out;
    size_t cap;
    size_t n;
} snap_ctx_t;

static void
copy_rec(weft__thread_rec_t *r, void *arg)
{
    snap_ctx_t *c = arg;
    if (c->n < c->cap) {
        weft__dbg_thread_t *t = &c->out[c->n];
        memset(t, 0, sizeof(*t));
        t->id = atomic_load_explicit(&r->id, memory_order_relaxed);
        /* Acquire: pairs with weft__wait_begin's release store of the kind,
         * so the object's fields written before the wait are visible. */
        t->wait_kind =
            atomic_load_explicit(&r->wait_kind, memory_order_acquire);
        t->wait_obj = atomic_load_explicit(&r->wait_obj, memory_order_relaxed);
        t->wait_since =
            atomic_load_explicit(&r->wait_since, memory_order_relaxed);
        /* Relaxed: snapshots written by the running thread only. */
        t->task_id = atomic_load_explicit(&r->task_id, memory_order_relaxed);
        const char *label =
            atomic_load_explicit(&r->task_label, memory_order_relaxed);
        t->has_task = t->task_id != 0 || label != NULL;
        if (t->has_task) {
            snprintf(t->task_label, sizeof(t->task_label), "%s",
                     label != NULL ? label : "");
            t->task_since =
                atomic_load_explicit(&r->task_since, memory_order_relaxed);
            t->task_exec =
                atomic_load_explicit(&r->task_exec, memory_order_relaxed);
        }
        /* Seq_cst: as the canceller reads it (executor.c); compared only. */
        t->running_token = atomic_load(&r->running_token);
        snprintf(t->name, sizeof(t->name), "%s", r->name);
    }
    c->n++;
}

/* The thread running the future task f: the one whose running token is
 * f's. Found by address, without reading f, which its waiter may free as
 * soon as it wakes. */
static const weft__dbg_thread_t *
runner_of(const weft__dbg_thread_t *ts, size_t n, const void *f)
{
    const void *token = (const char *)f + offsetof(struct weft_future, token);
    for (size_t i = 0; i < n; i++) {
        if (ts[i].running_token == token) {
            return &ts[i];
        }
    }
    return NULL;
}

/* Who holds or runs what t waits on, and a label for the object. */
static void
resolve(weft__dbg_thread_t *t, const weft__dbg_thread_t *ts, size_t n)
{
    if (t->wait_obj == NULL) {
        return;
    }
    switch (t->wait_kind) {
    case WEFT__WAIT_MUTEX: {
        /* The mutex is read: a waiter's mutex outlives the wait in any
         * correct program (a destroy with waiters is a bug), though it
         * may be freed right after (documented). */
        const weft__mutex_t *m = t->wait_obj;
        t->holder = atomic_load_explicit(&m->owner, memory_order_relaxed);
        break;
    }
    case WEFT__WAIT_FUTURE: {
        const weft__dbg_thread_t *r = runner_of(ts, n, t->wait_obj);
        if (r != NULL) {
            t->holder = r->id;
            snprintf(t->obj_label, sizeof(t->obj_label), "%s", r->task_label);
        }
        break;
    }
    case WEFT__WAIT_QUEUE_GET:
    case WEFT__WAIT_QUEUE_PUT:
        if (!weft__dbg_queue_info(t->wait_obj, t->obj_label,
                                  sizeof(t->obj_label), &t->obj_size)) {
            snprintf(t->obj_label, sizeof(t->obj_label), "?");
        }
        break;
    default:
        break;
    }
    if (t->holder != 0 &&
        !weft__rec_name_of(t->holder, t->holder_name, sizeof(t->holder_name))) {
        snprintf(t->holder_name, sizeof(t->holder_name), "thread #%u",
                 t->holder);
    }
}

size_t
weft__dbg_snapshot(weft__dbg_thread_t *out, size_t cap)
{
    snap_ctx_t c = {out, cap, 0};
    weft__rec_foreach(copy_rec, &c);
    size_t n = c.n < cap ? c.n : cap;
    for (size_t i = 0; i < n; i++) {
        resolve(&out[i], out, n);
    }
    return c.n;
}

/* ------------------------------------------------------------------------ */
/* Text                                                                      */

static double
secs(weft_time_t now, weft_time_t since)
{
    return since > 0 && now >= since ? (double)(now - since) / 1e9 : 0.0;
}

static void
text_wait(weft__sb_t *sb, const weft__dbg_thread_t *t, weft_time_t now)
{
    if (t->wait_kind == WEFT__WAIT_IDLE) {
        weft__sb_printf(sb, "idle (pool worker with nothing to do)");
        return;
    }
    weft__sb_printf(sb, "waiting on %s %p", weft__dbg_wait_name(t->wait_kind),
                    t->wait_obj);
    if (t->wait_kind == WEFT__WAIT_FUTURE && t->holder != 0) {
        weft__sb_printf(sb, " (task \"%s\")", t->obj_label);
    }
    if (t->wait_kind == WEFT__WAIT_QUEUE_GET ||
        t->wait_kind == WEFT__WAIT_QUEUE_PUT) {
        weft__sb_printf(sb, " \"%s\" (%zu items)", t->obj_label, t->obj_size);
    }
    if (t->holder != 0) {
        weft__sb_printf(sb, " %s by \"%s\" #%u",
                        t->wait_kind == WEFT__WAIT_MUTEX ? "held" : "run",
                        t->holder_name, t->holder);
    } else if (t->wait_kind == WEFT__WAIT_FUTURE && t->wait_obj != NULL) {
        weft__sb_printf(sb, " not running (queued or finishing)");
    }
    weft__sb_printf(sb, " for %.3f s", secs(now, t->wait_since));
}

static void
text_thread(weft__sb_t *sb, const weft__dbg_thread_t *t, weft_time_t now)
{
    weft__sb_printf(sb, "  thread \"%s\" #%u: ", t->name, t->id);
    if (t->has_task) {
        weft__sb_printf(sb, "running task \"%s\" id %llu", t->task_label,
                        (unsigned long long)t->task_id);
        if (t->task_since > 0) {
            weft__sb_printf(sb, " for %.3f s", secs(now, t->task_since));
        }
        weft__sb_printf(sb, t->wait_kind != WEFT__WAIT_NONE ? ", " : "");
    }
    if (t->wait_kind != WEFT__WAIT_NONE) {
        text_wait(sb, t, now);
    } else if (!t->has_task) {
        weft__sb_printf(sb, "running (not in a weft wait)");
    }
    weft__sb_printf(sb, "\n");
}

typedef struct obj_ctx {
    weft__sb_t *sb;
    weft_dump_format_t fmt;
    int pools;
    int queues;
    bool queue_pass;
} obj_ctx_t;

static void
print_pool(obj_ctx_t *c, const void *obj, const char *name)
{
    weft__pool_gauges_t g;
    if (!weft__pool_gauges(obj, &g)) {
        return;
    }
    if (c->fmt == WEFT_DUMP_TEXT) {
        weft__sb_printf(c->sb,
                        "  pool \"%s\" %p: %u workers, %u idle, %u searching, "
                        "%zu queued, %zu on deques; blocking lane: %u threads "
                        "(%u idle), %zu queued\n",
                        name, obj, g.workers, g.idle, g.searching, g.queued,
                        g.deque_frames, g.lane_threads, g.lane_idle,
                        g.lane_queued);
        return;
    }
    weft__sb_printf(c->sb, "%s{\"name\":", c->pools++ > 0 ? "," : "");
    weft__sb_json(c->sb, name);
    weft__sb_printf(c->sb,
                    ",\"addr\":\"%p\",\"workers\":%u,\"idle\":%u,"
                    "\"searching\":%u,\"queued\":%zu,\"deque_frames\":%zu,"
                    "\"lane_threads\":%u,\"lane_idle\":%u,\"lane_queued\":%zu}",
                    obj, g.workers, g.idle, g.searching, g.queued,
                    g.deque_frames, g.lane_threads, g.lane_idle, g.lane_queued);
}

static void
print_queue(obj_ctx_t *c, const void *obj)
{
    const weft_queue_t *q = obj;
    const char *name = q->name != NULL ? q->name : "";
    size_t size = weft_queue_size(q);
    bool bounded = q->capacity != WEFT_QUEUE_UNBOUNDED;
    if (c->fmt == WEFT_DUMP_TEXT) {
        if (bounded) {
            weft__sb_printf(c->sb, "  queue \"%s\" %p: %zu/%zu items\n", name,
                            obj, size, q->capacity);
        } else {
            weft__sb_printf(c->sb, "  queue \"%s\" %p: %zu items (unbounded)\n",
                            name, obj, size);
        }
        return;
    }
    weft__sb_printf(c->sb, "%s{\"name\":", c->queues++ > 0 ? "," : "");
    weft__sb_json(c->sb, name);
    weft__sb_printf(c->sb, ",\"addr\":\"%p\",\"size\":%zu", obj, size);
    if (bounded) {
        weft__sb_printf(c->sb, ",\"capacity\":%zu}", q->capacity);
    } else {
        weft__sb_printf(c->sb, ",\"capacity\":null}");
    }
}

static void
print_obj(weft__obj_kind_t kind, const void *obj, const char *name, void *arg)
{
    obj_ctx_t *c = arg;
    if (kind == WEFT__OBJ_POOL && !c->queue_pass) {
        print_pool(c, obj, name);
    } else if (kind == WEFT__OBJ_QUEUE && c->queue_pass) {
        print_queue(c, obj);
    }
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */

static void
json_thread(weft__sb_t *sb, const weft__dbg_thread_t *t, weft_time_t now,
            bool first)
{
    weft__sb_printf(sb, "%s{\"name\":", first ? "" : ",");
    weft__sb_json(sb, t->name);
    weft__sb_printf(sb, ",\"id\":%u,\"task\":", t->id);
    if (t->has_task) {
        weft__sb_printf(sb, "{\"label\":");
        weft__sb_json(sb, t->task_label);
        weft__sb_printf(
            sb, ",\"id\":%llu,\"running_s\":", (unsigned long long)t->task_id);
        if (t->task_since > 0) {
            weft__sb_printf(sb, "%.6f}", secs(now, t->task_since));
        } else {
            weft__sb_printf(sb, "null}");
        }
    } else {
        weft__sb_printf(sb, "null");
    }
    weft__sb_printf(sb, ",\"state\":\"%s\",\"wait\":",
                    t->wait_kind == WEFT__WAIT_IDLE   ? "idle"
                    : t->wait_kind != WEFT__WAIT_NONE ? "waiting"
                                                      : "running");
    if (t->wait_kind == WEFT__WAIT_NONE || t->wait_kind == WEFT__WAIT_IDLE) {
        weft__sb_printf(sb, "null}");
        return;
    }
    weft__sb_printf(sb, "{\"kind\":\"%s\",\"object\":\"%p\",\"for_s\":%.6f",
                    weft__dbg_wait_name(t->wait_kind), t->wait_obj,
                    secs(now, t->wait_since));
    bool queue = t->wait_kind == WEFT__WAIT_QUEUE_GET ||
                 t->wait_kind == WEFT__WAIT_QUEUE_PUT;
    if ((t->wait_kind == WEFT__WAIT_FUTURE && t->holder != 0) || queue) {
        weft__sb_printf(sb, ",\"label\":");
        weft__sb_json(sb, t->obj_label);
    }
    if (queue) {
        weft__sb_printf(sb, ",\"size\":%zu", t->obj_size);
    }
    if (t->holder != 0) {
        weft__sb_printf(sb, ",\"holder\":{\"name\":");
        weft__sb_json(sb, t->holder_name);
        weft__sb_printf(sb, ",\"id\":%u}", t->holder);
    } else {
        weft__sb_printf(sb, ",\"holder\":null");
    }
    weft__sb_printf(sb, "}}");
}

void
weft__dbg_dump_sb(weft__sb_t *sb, weft_dump_format_t fmt)
{
    weft__dbg_thread_t *ts = weft__calloc(MAX_THREADS, sizeof(*ts));
    if (ts == NULL) {
        sb->oom = true;
        return;
    }
    size_t total = weft__dbg_snapshot(ts, MAX_THREADS);
    size_t n = total < MAX_THREADS ? total : MAX_THREADS;
    weft_time_t now = weft_now();
    obj_ctx_t oc = {sb, fmt, 0, 0, false};
    if (fmt == WEFT_DUMP_TEXT) {
        weft__sb_printf(sb, "weft dump: %zu threads\n", total);
        for (size_t i = n; i-- > 0;) {
            text_thread(sb, &ts[i], now);
        }
        weft__sb_printf(sb, "pools:\n");
        weft__dbg_obj_foreach(print_obj, &oc);
        weft__sb_printf(sb, "queues:\n");
        oc.queue_pass = true;
        weft__dbg_obj_foreach(print_obj, &oc);
    } else {
        weft__sb_printf(sb, "{\"threads\":[");
        for (size_t i = n; i-- > 0;) {
            json_thread(sb, &ts[i], now, i == n - 1);
        }
        weft__sb_printf(sb, "],\"pools\":[");
        weft__dbg_obj_foreach(print_obj, &oc);
        weft__sb_printf(sb, "],\"queues\":[");
        oc.queue_pass = true;
        weft__dbg_obj_foreach(print_obj, &oc);
        weft__sb_printf(sb, "]}\n");
    }
    weft__free(ts);
}

int
weft_dump(char **out, size_t *len, weft_dump_format_t fmt)
{
    if (out == NULL || (fmt != WEFT_DUMP_TEXT && fmt != WEFT_DUMP_JSON)) {
        return WEFT_EINVAL;
    }
    weft__dbg_want_timing();
    weft__sb_t sb = {NULL, 0, 0, false};
    weft__dbg_dump_sb(&sb, fmt);
    if (sb.oom || sb.buf == NULL) {
        weft__free(sb.buf);
        return WEFT_ENOMEM;
    }
    *out = sb.buf;
    if (len != NULL) {
        *len = sb.len;
    }
    return WEFT_OK;
}

void
weft_dump_free(char *dump)
{
    weft__free(dump);
}

int
weft_dump_to_fd(int fd, weft_dump_format_t fmt)
{
    if (fd < 0) {
        return WEFT_EINVAL;
    }
    char *s = NULL;
    size_t len = 0;
    int rc = weft_dump(&s, &len, fmt);
    if (rc != WEFT_OK) {
        return rc;
    }
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, s + off, len - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            rc = WEFT_EIO;
            break;
        }
        off += (size_t)w;
    }
    weft_dump_free(s);
    return rc;
}
