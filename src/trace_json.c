/* SPDX-License-Identifier: MIT */
/*
 * weft_trace_write: the rings of the trace recorder (trace.c) as Chrome
 * Trace Event JSON.
 *
 * DESIGN
 * Each thread's events are turned into slices with a stack: a begin opens a
 * slice (slices are therefore in order of their start, and each knows the
 * slice it is nested in), an end closes the innermost open slice it matches.
 * An end that matches no open slice lost its begin to the ring's bound and
 * is left out; an end that matches a deeper slice closes the slices above
 * it too, flagged unfinished; slices still open at the end of the trace are
 * closed at its last timestamp, flagged the same. So every thread's output
 * nests properly whatever was dropped.
 * A task's parent is the task that ran on the submitting thread when it was
 * submitted: the task id carries the submitter's weft thread id (see
 * weft__job_stamp) and the task its submit time, so the parent is the
 * innermost task slice of that thread around that time: found by a binary
 * search on start times, then a walk up the enclosing slices.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft/trace.h>

#include "probe.h"
#include "trace_impl.h"

typedef struct slice {
    weft_time_t b, e;
    uint64_t id;        /* task id; wait object */
    uint64_t queued_at; /* tasks */
    uint64_t parent;    /* task id of the parent, 0: none */
    int32_t encl;       /* enclosing slice, -1: none */
    int32_t label;      /* index in the label table, -1: none */
    int code;
    int16_t worker;
    uint8_t is_task;
    uint8_t kind;
    uint8_t unfinished;
    uint8_t closed;
} slice_t;

typedef struct instant {
    weft_time_t ts;
    int worker;
    uint8_t kind;
} instant_t;

typedef struct thread {
    uint32_t tid;
    char name[32];
    slice_t *sl;
    size_t nsl, capsl;
    instant_t *in;
    size_t nin, capin;
} thread_t;

typedef struct labels {
    char **v;
    size_t n, cap;
} labels_t;

typedef struct writer {
    weft__trace_snap_t snap;
    thread_t *th;
    size_t nth;
    labels_t labels;
    uint64_t lost;
    uint64_t events;
    int32_t *stack;
    size_t depth, capstack;
} writer_t;

/* Grow *v (elements of size sz) to hold one more; false when out of memory. */
static bool
grow(void **v, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap) {
        return true;
    }
    size_t c = *cap != 0 ? *cap * 2 : 64;
    void *p = weft__realloc(*v, c * sz);
    if (p == NULL) {
        return false;
    }
    *v = p;
    *cap = c;
    return true;
}

/* The label's index, added if new (few distinct labels: a linear search
 * from the most recent is fine); -1 for none or out of memory. */
static int32_t
label_index(labels_t *t, const char *s)
{
    if (s[0] == '\0') {
        return -1;
    }
    for (size_t i = t->n; i-- > 0;) {
        if (strcmp(t->v[i], s) == 0) {
            return (int32_t)i;
        }
        if (t->n - i > 256) {
            break; /* many labels: accept duplicates */
        }
    }
    if (t->n >= INT32_MAX ||
        !grow((void **)&t->v, &t->cap, t->n, sizeof *t->v)) {
        return -1;
    }
    char *c = weft__strndup(s, WEFT__TEV_LABEL_MAX);
    if (c == NULL) {
        return -1;
    }
    t->v[t->n] = c;
    return (int32_t)t->n++;
}

/* ------------------------------------------------------------------------ */
/* Events to slices                                                          */

static bool
push(writer_t *w, thread_t *t, const weft__tev_t *e)
{
    if (!grow((void **)&t->sl, &t->capsl, t->nsl, sizeof *t->sl) ||
        !grow((void **)&w->stack, &w->capstack, w->depth, sizeof *w->stack)) {
        return false;
    }
    slice_t *s = &t->sl[t->nsl];
    memset(s, 0, sizeof *s);
    s->b = e->ts;
    s->id = e->id;
    s->is_task = e->type == WEFT__TEV_TASK_B;
    s->kind = e->kind;
    s->worker = (int16_t)e->worker;
    s->queued_at = s->is_task ? e->aux : 0;
    s->encl = w->depth > 0 ? w->stack[w->depth - 1] : -1;
    s->label = s->is_task ? label_index(&w->labels, e->label) : -1;
    w->stack[w->depth++] = (int32_t)t->nsl++;
    return true;
}

static bool
matches(const slice_t *s, const weft__tev_t *e)
{
    if (e->type == WEFT__TEV_TASK_E) {
        return s->is_task && s->id == e->id;
    }
    return !s->is_task && s->kind == e->kind;
}

/* Close the innermost open slice e ends, and those above it (unfinished);
 * an end with no open slice is dropped. */
static void
pop(writer_t *w, thread_t *t, const weft__tev_t *e)
{
    size_t d = w->depth;
    while (d > 0 && !matches(&t->sl[w->stack[d - 1]], e)) {
        d--;
    }
    if (d == 0) {
        return; /* its begin was dropped, or predates the trace */
    }
    while (w->depth >= d) {
        slice_t *s = &t->sl[w->stack[--w->depth]];
        s->e = e->ts;
        s->closed = 1;
        s->unfinished = w->depth + 1 > d;
        if (w->depth + 1 == d) {
            s->code = e->code;
        }
        if (w->depth == 0) {
            break;
        }
    }
}

static bool
add_instant(thread_t *t, const weft__tev_t *e)
{
    if (!grow((void **)&t->in, &t->capin, t->nin, sizeof *t->in)) {
        return false;
    }
    t->in[t->nin++] = (instant_t){e->ts, e->worker, e->kind};
    return true;
}

static int
build_thread(writer_t *w, thread_t *t, const weft__tev_t *ev, size_t n)
{
    w->depth = 0;
    for (size_t i = 0; i < n; i++) {
        const weft__tev_t *e = &ev[i];
        bool ok = true;
        switch (e->type) {
        case WEFT__TEV_TASK_B:
        case WEFT__TEV_WAIT_B:
            ok = push(w, t, e);
            break;
        case WEFT__TEV_TASK_E:
        case WEFT__TEV_WAIT_E:
            pop(w, t, e);
            break;
        case WEFT__TEV_POOL:
            ok = add_instant(t, e);
            break;
        default:
            break;
        }
        if (!ok) {
            return WEFT_ENOMEM;
        }
    }
    while (w->depth > 0) { /* still open: close at the end of the trace */
        slice_t *s = &t->sl[w->stack[--w->depth]];
        s->e = w->snap.t_end > s->b ? w->snap.t_end : s->b;
        s->unfinished = 1;
    }
    return WEFT_OK;
}

static int
build(writer_t *w)
{
    size_t cap = 0;
    for (size_t i = 0; i < w->snap.n; i++) {
        cap = w->snap.rings[i]->cap > cap ? w->snap.rings[i]->cap : cap;
    }
    w->th = weft__calloc(w->snap.n + 1, sizeof *w->th);
    weft__tev_t *ev = weft__calloc(cap + 1, sizeof *ev);
    int rc = w->th != NULL && ev != NULL ? WEFT_OK : WEFT_ENOMEM;
    for (size_t i = 0; rc == WEFT_OK && i < w->snap.n; i++) {
        weft__trace_ring_t *r = w->snap.rings[i];
        thread_t *t = &w->th[w->nth++];
        uint64_t lost;
        size_t n = weft__trace_ring_read(r, w->snap.gen, ev, &lost);
        t->tid = atomic_load_explicit(&r->tid, memory_order_relaxed);
        /* The name the thread has now, if alive, else the one it had. */
        if (!weft__rec_name_of(t->tid, t->name, sizeof t->name)) {
            weft__trace_ring_name(r, t->name, sizeof t->name);
        }
        w->lost += lost;
        w->events += n;
        rc = build_thread(w, t, ev, n);
    }
    weft__free(ev);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Parents                                                                   */

static thread_t *
thread_of(writer_t *w, uint32_t tid)
{
    for (size_t i = 0; i < w->nth; i++) {
        if (w->th[i].tid == tid) {
            return &w->th[i];
        }
    }
    return NULL;
}

/* The id of the innermost task of t running at time ts, or 0. */
static uint64_t
task_at(const thread_t *t, weft_time_t ts)
{
    size_t lo = 0, hi = t->nsl; /* first slice starting after ts */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->sl[mid].b <= ts) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    /* Every slice around ts encloses the last one started before it. */
    for (int32_t i = (int32_t)lo - 1; i >= 0; i = t->sl[i].encl) {
        if (t->sl[i].is_task && t->sl[i].e >= ts) {
            return t->sl[i].id;
        }
    }
    return 0;
}

static void
link_parents(writer_t *w)
{
    for (size_t i = 0; i < w->nth; i++) {
        for (size_t k = 0; k < w->th[i].nsl; k++) {
            slice_t *s = &w->th[i].sl[k];
            if (!s->is_task || s->queued_at == 0 || s->id >> 40 == 0) {
                continue;
            }
            const thread_t *sub = thread_of(w, (uint32_t)(s->id >> 40));
            if (sub != NULL) {
                s->parent = task_at(sub, (weft_time_t)s->queued_at);
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */

static void
put_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', f);
            fputc(*p, f);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(f, "\\u%04x", *p);
        } else {
            fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* Microseconds since the trace start, to the ns. */
static double
us(const writer_t *w, weft_time_t ts)
{
    return ts > w->snap.t0 ? (double)(ts - w->snap.t0) / 1000.0 : 0.0;
}

/* Ids above 2^53 (ids of tasks submitted before the trace started) do not
 * survive a double: written as strings. */
static void
put_id(FILE *f, const char *key, uint64_t id)
{
    if (id < ((uint64_t)1 << 53)) {
        fprintf(f, ",\"%s\":%llu", key, (unsigned long long)id);
    } else {
        fprintf(f, ",\"%s\":\"%llu\"", key, (unsigned long long)id);
    }
}

static void
put_slice(FILE *f, const writer_t *w, const thread_t *t, const slice_t *s,
          int pid)
{
    const char *label = s->label >= 0 ? w->labels.v[s->label] : NULL;
    fputs(",\n{\"ph\":\"X\",\"name\":", f);
    if (s->is_task) {
        put_str(f, label != NULL ? label : "task");
    } else {
        fprintf(f, "\"wait %s\"", weft__trace_wait_name(s->kind));
    }
    fprintf(f,
            ",\"cat\":\"%s\",\"pid\":%d,\"tid\":%u,\"ts\":%.3f,"
            "\"dur\":%.3f,\"args\":{",
            s->is_task ? "task" : "wait", pid, t->tid, us(w, s->b),
            (double)(s->e - s->b) / 1000.0);
    if (s->is_task) {
        fputs("\"label\":", f);
        put_str(f, label != NULL ? label : "");
        put_id(f, "id", s->id);
        if (s->parent != 0) {
            put_id(f, "parent", s->parent);
        }
        if (s->queued_at != 0 && (weft_time_t)s->queued_at <= s->b) {
            fprintf(f, ",\"queued_us\":%.3f",
                    (double)(s->b - (weft_time_t)s->queued_at) / 1000.0);
        }
        if (s->worker >= 0) {
            fprintf(f, ",\"worker\":%d", s->worker);
        }
    } else {
        fprintf(f, "\"obj\":\"0x%llx\"", (unsigned long long)s->id);
    }
    if (s->code != 0 && s->closed) {
        fprintf(f, ",\"code\":\"%s\"", weft_errname(s->code));
    }
    if (s->unfinished) {
        fputs(",\"unfinished\":true", f);
    }
    fputs("}}", f);
}

static void
put_thread(FILE *f, const writer_t *w, const thread_t *t, int pid)
{
    fprintf(f,
            ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%d,"
            "\"tid\":%u,\"args\":{\"name\":",
            pid, t->tid);
    put_str(f, t->name[0] != '\0' ? t->name : "thread");
    fprintf(f,
            "}},\n{\"ph\":\"M\",\"name\":\"thread_sort_index\","
            "\"pid\":%d,\"tid\":%u,\"args\":{\"sort_index\":%u}}",
            pid, t->tid, t->tid);
    for (size_t i = 0; i < t->nsl; i++) {
        put_slice(f, w, t, &t->sl[i], pid);
    }
    for (size_t i = 0; i < t->nin; i++) {
        const instant_t *e = &t->in[i];
        fprintf(f,
                ",\n{\"ph\":\"i\",\"s\":\"t\",\"name\":\"%s\","
                "\"cat\":\"pool\",\"pid\":%d,\"tid\":%u,\"ts\":%.3f,"
                "\"args\":{",
                weft__trace_pool_name(e->kind), pid, t->tid, us(w, e->ts));
        if (e->worker >= 0) {
            fprintf(f, "\"worker\":%d", e->worker);
        }
        fputs("}}", f);
    }
}

static int
put_file(const char *path, const writer_t *w)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return WEFT_EIO;
    }
    int pid = (int)getpid();
    fprintf(f,
            "{\"traceEvents\":[\n{\"ph\":\"M\",\"name\":\"process_name\","
            "\"pid\":%d,\"tid\":0,\"args\":{\"name\":\"weft\"}}",
            pid);
    for (size_t i = 0; i < w->nth; i++) {
        put_thread(f, w, &w->th[i], pid);
    }
    fprintf(f,
            "\n],\n\"displayTimeUnit\":\"ns\",\n\"otherData\":{"
            "\"dropped\":%llu,\"events\":%llu,\"threads\":%zu,"
            "\"duration_us\":%.3f,\"clock\":\"monotonic\"}}\n",
            (unsigned long long)w->lost + w->snap.dropped,
            (unsigned long long)w->events, w->nth, us(w, w->snap.t_end));
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        return WEFT_EIO;
    }
    return WEFT_OK;
}

static void
writer_fini(writer_t *w)
{
    for (size_t i = 0; i < w->nth; i++) {
        weft__free(w->th[i].sl);
        weft__free(w->th[i].in);
    }
    for (size_t i = 0; i < w->labels.n; i++) {
        weft__free(w->labels.v[i]);
    }
    weft__free(w->labels.v);
    weft__free(w->th);
    weft__free(w->stack);
    weft__free(w->snap.rings);
}

int
weft_trace_write(const char *path)
{
    if (path == NULL) {
        return WEFT_EINVAL;
    }
    writer_t w;
    memset(&w, 0, sizeof w);
    weft__trace_lock();
    int rc = weft__trace_snapshot(&w.snap);
    if (rc == WEFT_OK) {
        rc = build(&w);
    }
    weft__trace_unlock();
    if (rc == WEFT_OK) {
        link_parents(&w);
        rc = put_file(path, &w);
    }
    writer_fini(&w);
    return rc;
}
