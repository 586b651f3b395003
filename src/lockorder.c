/* SPDX-License-Identifier: MIT */
/*
 * The lock-order checker: learns the order in which weft mutexes are taken
 * and reports a cycle in that order (AB/BA or longer) the first time it
 * appears, before the threads involved ever deadlock.
 *
 * DESIGN
 * Lock probes (acquired/released) feed a per-thread stack of held locks
 * (address and acquisition site). Acquiring B while holding A adds the edge
 * A -> B to a global graph, a fixed open-addressed table of edges guarded
 * by a spinlock (a weft mutex would recurse into the probes). A new edge
 * A -> B is stored with both sites, the thread and a backtrace taken at the
 * acquisition of B; a breadth-first search for a path B -> ... -> A then
 * tells whether it closed a cycle. Each cycle (its set of locks) is
 * reported once. Reports are formatted and delivered after the spinlock is
 * released. A lock is its address (no probe marks a mutex's fini): a mutex
 * reused at the same address after free is the same lock. Locks taken
 * without a probe (internal relocks after a condition wait) are not on the
 * stack; a release of a lock not on the stack is ignored.
 */
#include <execinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weft/thread.h>

#include "debug_impl.h"

#define MAX_HELD 32
#define MAX_EDGES 4096 /* power of two */
#define MAX_BT 16
#define MAX_NODES 256
#define MAX_CYCLE 16
#define MAX_REPORTED 256

typedef struct held {
    const void *lock;
    const void *site;
} held_t;

typedef struct edge {
    const void *a; /* NULL: free slot */
    const void *b;
    const void *site_a; /* where a was taken */
    const void *site_b; /* where b was taken, a held */
    void *bt[MAX_BT];   /* stack at the acquisition of b */
    int nbt;
    uint32_t tid;
    char thread[32];
} edge_t;

static _Atomic bool enabled;
static _Atomic uint32_t epoch; /* bumped on enable: stale stacks reset */
static _Atomic uint64_t nreports;
static _Atomic uint32_t graph_lock;
static edge_t edges[MAX_EDGES];         /* graph_lock */
static size_t nedges;                   /* graph_lock */
static uint64_t reported[MAX_REPORTED]; /* graph_lock: cycle keys */
static size_t nreported;                /* graph_lock */

static _Thread_local held_t held[MAX_HELD];
static _Thread_local int nheld;
static _Thread_local uint32_t held_epoch;

void
weft_lockorder_enable(bool on)
{
    weft__dbg_init();
    if (on) {
        void *warm[2];
        /* The first backtrace loads the unwinder: not inside a probe. */
        (void)backtrace(warm, 2);
        atomic_fetch_add(&epoch, 1);
    }
    atomic_store(&enabled, on);
    weft__dbg_want_locks(on);
}

bool
weft_lockorder_enabled(void)
{
    return atomic_load(&enabled);
}

uint64_t
weft_lockorder_reports(void)
{
    return atomic_load(&nreports);
}

static size_t
edge_slot(const void *a, const void *b)
{
    uint64_t h = (uint64_t)(uintptr_t)a * 0x9e3779b97f4a7c15ull ^
                 (uint64_t)(uintptr_t)b * 0xc2b2ae3d27d4eb4full;
    return (size_t)(h >> 32) & (MAX_EDGES - 1);
}

/* The edge a -> b, or a free slot for it, or NULL when the table is full
 * (graph_lock held). */
static edge_t *
edge_find(const void *a, const void *b)
{
    size_t i = edge_slot(a, b);
    for (size_t probe = 0; probe < MAX_EDGES; probe++) {
        edge_t *e = &edges[(i + probe) & (MAX_EDGES - 1)];
        if (e->a == NULL || (e->a == a && e->b == b)) {
            return e;
        }
    }
    return NULL;
}

/* A found cycle, copied out of the graph for formatting. */
typedef struct cycle {
    edge_t path[MAX_CYCLE]; /* from the new edge's b back to its a */
    int n;
    edge_t closing; /* the new edge */
} cycle_t;

/* Search a path from -> ... -> to (graph_lock held); fill c->path. */
static bool
find_path(const void *from, const void *to, cycle_t *c)
{
    const void *nodes[MAX_NODES];
    int parent[MAX_NODES]; /* index of the edge that reached the node */
    int prev[MAX_NODES];   /* index of the node it came from */
    int n = 1;
    nodes[0] = from;
    parent[0] = -1;
    prev[0] = -1;
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < MAX_EDGES; k++) {
            const edge_t *e = &edges[k];
            if (e->a != nodes[i]) {
                continue;
            }
            bool seen = false;
            for (int j = 0; j < n && !seen; j++) {
                seen = nodes[j] == e->b;
            }
            if (seen || n == MAX_NODES) {
                continue;
            }
            nodes[n] = e->b;
            parent[n] = (int)k;
            prev[n] = i;
            n++;
            if (e->b != to) {
                continue;
            }
            int len = 0;
            for (int x = n - 1; x > 0; x = prev[x]) {
                len++;
            }
            if (len > MAX_CYCLE) {
                return false;
            }
            c->n = len;
            for (int x = n - 1; x > 0; x = prev[x]) {
                c->path[--len] = edges[parent[x]];
            }
            return true;
        }
    }
    return false;
}

static int
cmp_ptr(const void *x, const void *y)
{
    uintptr_t a = (uintptr_t) * (const void *const *)x;
    uintptr_t b = (uintptr_t) * (const void *const *)y;
    return a < b ? -1 : a > b;
}

/* True the first time this set of locks forms a cycle (graph_lock held). */
static bool
first_report(const cycle_t *c)
{
    const void *locks[MAX_CYCLE + 1];
    for (int i = 0; i < c->n; i++) {
        locks[i] = c->path[i].a;
    }
    locks[c->n] = c->closing.a;
    qsort(locks, (size_t)c->n + 1, sizeof(locks[0]), cmp_ptr);
    uint64_t key = 1469598103934665603ull;
    for (int i = 0; i <= c->n; i++) {
        key = (key ^ (uint64_t)(uintptr_t)locks[i]) * 1099511628211ull;
    }
    for (size_t i = 0; i < nreported; i++) {
        if (reported[i] == key) {
            return false;
        }
    }
    if (nreported < MAX_REPORTED) {
        reported[nreported++] = key;
    }
    return true;
}

static void
print_site(weft__sb_t *sb, const void *site)
{
    void *p = (void *)site; /* backtrace_symbols takes void *const * */
    char **sym = backtrace_symbols(&p, 1);
    weft__sb_printf(sb, "%s", sym != NULL ? sym[0] : "?");
    if (sym == NULL) {
        weft__sb_printf(sb, "%p", site);
    }
    free(sym); // NOLINT: backtrace_symbols allocates with malloc
}

static void
print_edge(weft__sb_t *sb, const edge_t *e, const char *when)
{
    weft__sb_printf(sb, "%s thread \"%s\" #%u took lock %p while holding %p\n",
                    when, e->thread, e->tid, e->b, e->a);
    weft__sb_printf(sb, "    %p taken at ", e->a);
    print_site(sb, e->site_a);
    weft__sb_printf(sb, "\n    %p taken at ", e->b);
    print_site(sb, e->site_b);
    weft__sb_printf(sb, "\n    backtrace:\n");
    /* Start at the caller of the lock call: the frames above it are the
     * checker's own. */
    int first = 0;
    for (int i = 0; i < e->nbt; i++) {
        if (e->bt[i] == e->site_b) {
            first = i;
            break;
        }
    }
    char **sym = backtrace_symbols(e->bt, e->nbt);
    for (int i = first; i < e->nbt; i++) {
        if (sym != NULL) {
            weft__sb_printf(sb, "      #%d %s\n", i - first, sym[i]);
        } else {
            weft__sb_printf(sb, "      #%d %p\n", i - first, e->bt[i]);
        }
    }
    free(sym); // NOLINT: backtrace_symbols allocates with malloc
}

static void
report(const cycle_t *c)
{
    weft__sb_t sb = {NULL, 0, 0, false};
    weft__sb_printf(&sb, "potential deadlock: lock-order cycle of %d locks: %p",
                    c->n + 1, c->closing.a);
    for (int i = 0; i < c->n; i++) {
        weft__sb_printf(&sb, " -> %p", c->path[i].a);
    }
    weft__sb_printf(&sb, " -> %p\n", c->closing.a);
    print_edge(&sb, &c->closing, "  now:");
    for (int i = 0; i < c->n; i++) {
        print_edge(&sb, &c->path[i], "  earlier:");
    }
    if (sb.len > 0 && sb.buf[sb.len - 1] == '\n') {
        sb.buf[--sb.len] = '\0';
    }
    weft__dbg_report("lock-order", sb.oom || sb.buf == NULL
                                       ? "potential deadlock (no memory "
                                         "for the details)"
                                       : sb.buf);
    weft__free(sb.buf);
}

/* Add the edges held[i] -> lock that are new; report closed cycles. */
static void
add_edges(const void *lock, const void *site)
{
    bool missing = false;
    weft__dbg_spin_lock(&graph_lock);
    for (int i = 0; i < nheld && !missing; i++) {
        edge_t *e = held[i].lock != lock ? edge_find(held[i].lock, lock) : NULL;
        missing = e != NULL && e->a == NULL;
    }
    weft__dbg_spin_unlock(&graph_lock);
    if (!missing) {
        return;
    }
    void *bt[MAX_BT];
    int nbt = backtrace(bt, MAX_BT);
    cycle_t *c = weft__malloc(sizeof(*c));
    bool found = false;
    weft__dbg_spin_lock(&graph_lock);
    for (int i = 0; i < nheld; i++) {
        edge_t *e = held[i].lock != lock ? edge_find(held[i].lock, lock) : NULL;
        if (e == NULL || e->a != NULL || nedges >= MAX_EDGES * 3 / 4) {
            continue;
        }
        e->a = held[i].lock;
        e->b = lock;
        e->site_a = held[i].site;
        e->site_b = site;
        e->nbt = nbt > 0 ? nbt : 0;
        memcpy(e->bt, bt, sizeof(bt[0]) * (size_t)e->nbt);
        e->tid = weft__self_id();
        snprintf(e->thread, sizeof(e->thread), "%s", weft_thread_name());
        nedges++;
        if (!found && c != NULL && find_path(lock, e->a, c)) {
            c->closing = *e;
            found = first_report(c);
        }
    }
    weft__dbg_spin_unlock(&graph_lock);
    if (found) {
        atomic_fetch_add(&nreports, 1);
        report(c);
    }
    weft__free(c);
}

void
weft__lockorder_acquired(const void *lock, weft__wait_kind_t kind,
                         const void *site)
{
    (void)kind;
    if (!atomic_load_explicit(&enabled, memory_order_relaxed)) {
        return;
    }
    /* Relaxed: a stack left from before a disable/enable is dropped; which
     * acquisitions straddle the switch does not matter. */
    uint32_t ep = atomic_load_explicit(&epoch, memory_order_relaxed);
    if (held_epoch != ep) {
        held_epoch = ep;
        nheld = 0;
    }
    if (nheld > 0) {
        add_edges(lock, site);
    }
    if (nheld < MAX_HELD) {
        held[nheld].lock = lock;
        held[nheld].site = site;
        nheld++;
    }
}

void
weft__lockorder_released(const void *lock, weft__wait_kind_t kind)
{
    (void)kind;
    for (int i = nheld - 1; i >= 0; i--) {
        if (held[i].lock == lock) {
            memmove(&held[i], &held[i + 1],
                    sizeof(held[0]) * (size_t)(nheld - i - 1));
            nheld--;
            return;
        }
    }
}
