/* SPDX-License-Identifier: MIT */
/*
 * The watchdog: a thread that periodically builds the wait-for graph of the
 * weft threads and reports real deadlocks (cycles) and thread pools whose
 * workers are all blocked while tasks wait in their queues.
 *
 * DESIGN
 * Each scan copies the thread records (weft__dbg_snapshot, which resolves
 * the holder of a mutex and the runner of a running future). A thread
 * points at the thread it waits for, so the graph has at most one edge out
 * of each node and its cycles are found by following the edges with three
 * colours. Only waits older than stuck_after count: the records are read
 * one at a time, and a transient edge from a torn view must not make a
 * false cycle. A cycle is reported once (keyed by its threads and
 * objects); a saturated pool once until it recovers. Reports are delivered
 * with a text dump through the deadlock hook.
 */
#include <stdio.h>
#include <string.h>

#include <weft/sync.h>
#include <weft/thread.h>

#include "debug_impl.h"
#include "pool_impl.h"

#define MAX_THREADS 1024
#define MAX_KEYS 256
#define MAX_POOLS 64

typedef struct wd_state {
    weft_time_t period;
    weft_time_t stuck_after;
    uint64_t keys[MAX_KEYS]; /* cycles reported */
    size_t nkeys;
    const void *saturated[MAX_POOLS]; /* pools reported and still stuck */
    size_t nsaturated;
    weft__dbg_thread_t *ts;
    size_t nts;
    weft_time_t now;
} wd_state_t;

static _Atomic uint32_t wd_lock;
static weft_thread_t *wd_thread; /* wd_lock; set until the join ends */
static bool wd_stopping;         /* wd_lock: a stop is joining */
static weft_event_t wd_stop;     /* set to stop the thread */
static _Atomic uint64_t wd_reports;

uint64_t
weft_watchdog_reports(void)
{
    return atomic_load(&wd_reports);
}

static void
deliver(const char *kind, weft__sb_t *sb)
{
    weft__sb_printf(sb, "\n");
    weft__dbg_dump_sb(sb, WEFT_DUMP_TEXT);
    if (sb->len > 0 && sb->buf[sb->len - 1] == '\n') {
        sb->buf[--sb->len] = '\0';
    }
    atomic_fetch_add(&wd_reports, 1);
    weft__dbg_report(kind, sb->oom || sb->buf == NULL
                               ? "deadlock found (no memory for the details)"
                               : sb->buf);
    weft__free(sb->buf);
}

static bool
stuck(const wd_state_t *s, const weft__dbg_thread_t *t)
{
    return t->wait_kind != WEFT__WAIT_NONE && t->wait_kind != WEFT__WAIT_IDLE &&
           t->wait_since > 0 && s->now - t->wait_since >= s->stuck_after;
}

/* Index of the thread t waits for, or -1. */
static int
next_of(const wd_state_t *s, size_t i)
{
    const weft__dbg_thread_t *t = &s->ts[i];
    if (t->holder == 0 || !stuck(s, t) ||
        (t->wait_kind != WEFT__WAIT_MUTEX &&
         t->wait_kind != WEFT__WAIT_FUTURE)) {
        return -1;
    }
    for (size_t j = 0; j < s->nts; j++) {
        if (s->ts[j].id == t->holder) {
            return (int)j;
        }
    }
    return -1;
}

static bool
first_cycle(wd_state_t *s, uint64_t key)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        if (s->keys[i] == key) {
            return false;
        }
    }
    if (s->nkeys < MAX_KEYS) {
        s->keys[s->nkeys++] = key;
    }
    return true;
}

/* The cycle through `start` (every node on it): report it once. */
static void
report_cycle(wd_state_t *s, const int *next, int start)
{
    /* Key: sum and xor of per-thread hashes, so the rotation does not
     * matter. */
    uint64_t sum = 0;
    uint64_t xr = 0;
    int n = 0;
    int i = start;
    do {
        const weft__dbg_thread_t *t = &s->ts[i];
        uint64_t h =
            ((uint64_t)t->id << 32 ^ (uint64_t)(uintptr_t)t->wait_obj) *
            0x9e3779b97f4a7c15ull;
        sum += h;
        xr ^= h;
        n++;
        i = next[i];
    } while (i != start);
    if (!first_cycle(s, sum ^ (xr << 1))) {
        return;
    }
    weft__sb_t sb = {NULL, 0, 0, false};
    weft__sb_printf(&sb, "deadlock: wait-for cycle of %d threads:", n);
    i = start;
    do {
        const weft__dbg_thread_t *t = &s->ts[i];
        weft__sb_printf(
            &sb,
            "\n  thread \"%s\" #%u waits on %s %p %s by \"%s\" "
            "#%u (for %.3f s)",
            t->name, t->id, weft__dbg_wait_name(t->wait_kind), t->wait_obj,
            t->wait_kind == WEFT__WAIT_MUTEX ? "held" : "run", t->holder_name,
            t->holder, (double)(s->now - t->wait_since) / 1e9);
        i = next[i];
    } while (i != start);
    deliver("deadlock", &sb);
}

static void
find_cycles(wd_state_t *s)
{
    int *next = weft__calloc(s->nts, sizeof(int));
    unsigned char *colour = weft__calloc(s->nts, 1);
    if (next == NULL || colour == NULL) {
        goto out;
    }
    for (size_t i = 0; i < s->nts; i++) {
        next[i] = next_of(s, i);
    }
    /* colour: 0 unvisited, 1 on the current walk, 2 done. */
    for (size_t i = 0; i < s->nts; i++) {
        int x = (int)i;
        while (x >= 0 && colour[x] == 0) {
            colour[x] = 1;
            x = next[x];
        }
        if (x >= 0 && colour[x] == 1) {
            report_cycle(s, next, x);
        }
        for (int y = (int)i; y >= 0 && colour[y] == 1; y = next[y]) {
            colour[y] = 2;
        }
    }
out:
    weft__free(colour);
    weft__free(next);
}

/* ------------------------------------------------------------------------ */
/* Saturated pools                                                           */

typedef struct sat_ctx {
    wd_state_t *s;
    const void *found[MAX_POOLS];
    char names[MAX_POOLS][32];
    unsigned blocked[MAX_POOLS];
    size_t queued[MAX_POOLS];
    size_t n;
    const void *stuck_now[MAX_POOLS];
    size_t nstuck;
} sat_ctx_t;

/* A CPU worker of pool `name`: named "<name>/<digits>" (lane threads are
 * "<name>/io<n>"). */
static bool
is_worker_of(const char *thread, const char *name)
{
    size_t n = strlen(name);
    return strncmp(thread, name, n) == 0 && thread[n] == '/' &&
           thread[n + 1] >= '0' && thread[n + 1] <= '9';
}

static void
check_pool(const void *exec, const char *name, void *arg)
{
    sat_ctx_t *c = arg;
    weft__pool_gauges_t g;
    if (!weft__pool_gauges(exec, &g) || g.workers == 0) {
        return;
    }
    unsigned blocked = 0;
    for (size_t i = 0; i < c->s->nts; i++) {
        const weft__dbg_thread_t *t = &c->s->ts[i];
        if (t->has_task && t->task_exec == exec && stuck(c->s, t) &&
            is_worker_of(t->name, name)) {
            blocked++;
        }
    }
    size_t queued = g.queued + g.deque_frames;
    if (blocked < g.workers || g.idle != 0 || queued == 0) {
        return;
    }
    if (c->nstuck < MAX_POOLS) {
        c->stuck_now[c->nstuck++] = exec;
    }
    for (size_t i = 0; i < c->s->nsaturated; i++) {
        if (c->s->saturated[i] == exec) {
            return; /* already reported */
        }
    }
    if (c->n < MAX_POOLS) {
        c->found[c->n] = exec;
        snprintf(c->names[c->n], sizeof(c->names[0]), "%s", name);
        c->blocked[c->n] = blocked;
        c->queued[c->n] = queued;
        c->n++;
    }
}

static void
find_saturated(wd_state_t *s)
{
    sat_ctx_t *c = weft__calloc(1, sizeof(*c));
    if (c == NULL) {
        return;
    }
    c->s = s;
    weft__dbg_pool_foreach(check_pool, c);
    memcpy(s->saturated, c->stuck_now, sizeof(c->stuck_now[0]) * c->nstuck);
    s->nsaturated = c->nstuck;
    for (size_t i = 0; i < c->n; i++) {
        weft__sb_t sb = {NULL, 0, 0, false};
        weft__sb_printf(&sb,
                        "pool \"%s\" %p saturated by waiters: all %u of its "
                        "workers have been blocked for more than %.3f s "
                        "while %zu tasks wait in its queues (a task they "
                        "wait for may be one of those and can never run)",
                        c->names[i], c->found[i], c->blocked[i],
                        (double)s->stuck_after / 1e9, c->queued[i]);
        deliver("saturated", &sb);
    }
    weft__free(c);
}

static void
scan(wd_state_t *s)
{
    size_t total = weft__dbg_snapshot(s->ts, MAX_THREADS);
    s->nts = total < MAX_THREADS ? total : MAX_THREADS;
    s->now = weft_now();
    find_cycles(s);
    find_saturated(s);
}

static void *
wd_main(void *arg)
{
    wd_state_t *s = arg;
    for (;;) {
        int rc = weft_event_wait_until(&wd_stop, weft_deadline_in(s->period));
        if (rc != WEFT_ETIMEDOUT) {
            break;
        }
        scan(s);
    }
    weft__free(s->ts);
    weft__free(s);
    return NULL;
}

int
weft_watchdog_start(weft_time_t period, weft_time_t stuck_after)
{
    if (period <= 0 || stuck_after <= 0) {
        return WEFT_EINVAL;
    }
    weft__dbg_init();
    weft__dbg_want_timing();
    wd_state_t *s = weft__calloc(1, sizeof(*s));
    weft__dbg_thread_t *ts = weft__calloc(MAX_THREADS, sizeof(*ts));
    if (s == NULL || ts == NULL) {
        weft__free(ts);
        weft__free(s);
        return WEFT_ENOMEM;
    }
    s->period = period;
    s->stuck_after = stuck_after;
    s->ts = ts;
    int rc = WEFT_EBUSY;
    weft__dbg_spin_lock(&wd_lock);
    if (wd_thread == NULL) {
        weft_event_init(&wd_stop);
        weft_thread_opts_t o = WEFT_THREAD_OPTS_INIT;
        o.name = "weft-watchdog";
        rc = weft_thread_create(&o, wd_main, s, &wd_thread);
    }
    weft__dbg_spin_unlock(&wd_lock);
    if (rc != WEFT_OK) {
        weft__free(ts);
        weft__free(s);
    }
    return rc;
}

void
weft_watchdog_stop(void)
{
    weft__dbg_spin_lock(&wd_lock);
    weft_thread_t *t = wd_stopping ? NULL : wd_thread;
    if (t != NULL) {
        wd_stopping = true;
        weft_event_set(&wd_stop);
    }
    weft__dbg_spin_unlock(&wd_lock);
    if (t == NULL) {
        return;
    }
    int rc = weft_thread_join(t, NULL);
    WEFT_ASSERT(rc == WEFT_OK, "watchdog join: %s", weft_errname(rc));
    weft__dbg_spin_lock(&wd_lock);
    weft_event_fini(&wd_stop);
    wd_thread = NULL;
    wd_stopping = false;
    weft__dbg_spin_unlock(&wd_lock);
}
