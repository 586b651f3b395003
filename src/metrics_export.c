/* SPDX-License-Identifier: MIT */
/*
 * Metrics export: Prometheus text exposition (format 0.0.4) and JSON, both
 * rendered from one full snapshot into a growing buffer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics_impl.h"

typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf_t;

static WEFT_PRINTF(2, 3) void put(buf_t *b, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !b->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap + (size_t)n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* A label value or JSON string: escape backslash, quote, newline and
 * control characters (names are short, so one put per character is fine). */
static void
put_escaped(buf_t *b, const char *s, bool json)
{
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\' || c == '"') {
            put(b, "\\%c", c);
        } else if (c == '\n') {
            put(b, "\\n");
        } else if (c < 0x20) {
            put(b, json ? "\\u%04x" : " ", c);
        } else {
            put(b, "%c", c);
        }
    }
}

static int
finish(buf_t *b, char **out, size_t *len)
{
    if (b->oom) {
        free(b->p);
        return WEFT_ENOMEM;
    }
    *out = b->p;
    *len = b->len;
    return WEFT_OK;
}

/* Check an exporter's arguments, take a full snapshot and an empty buffer
 * (both released by the exporter: weft__metrics_full_free, finish). */
static int
start(char **out, size_t *len, buf_t *b, weft__metrics_full_t *f)
{
    if (out == NULL || len == NULL) {
        return WEFT_EINVAL;
    }
    memset(b, 0, sizeof(*b));
    b->cap = 4096;
    b->p = malloc(b->cap);
    if (b->p == NULL) {
        return WEFT_ENOMEM;
    }
    b->p[0] = '\0';
    int rc = weft__metrics_take(f);
    if (rc != WEFT_OK) {
        free(b->p);
    }
    return rc;
}

/* ---------------------------------------------------------- Prometheus */

typedef struct pcounter {
    const char *name, *help;
    size_t off; /* offset of the uint64_t in weft_metrics_pool_t */
} pcounter_t;

#define PC(n, f, h)                                                            \
    {                                                                          \
        "weft_pool_" n, h, offsetof(weft_metrics_pool_t, f)                    \
    }
static const pcounter_t pool_counters[] = {
    PC("tasks_submitted_total", submitted, "Tasks queued to the pool."),
    PC("tasks_started_total", started, "Tasks dispatched to run."),
    PC("tasks_completed_total", completed, "Tasks that ended WEFT_OK."),
    PC("tasks_failed_total", failed, "Tasks that ended with a failure."),
    PC("tasks_cancelled_total", cancelled,
       "Tasks cancelled or dropped by shutdown."),
    PC("tasks_rejected_total", rejected, "Submits refused (queue full)."),
    PC("tasks_stolen_total", stolen, "Frames stolen between workers."),
    PC("worker_parks_total", parked, "Times a worker went to sleep idle."),
    PC("worker_unparks_total", unparked, "Times a worker woke."),
};

static void
prom_pool_gauges(buf_t *b, const weft_metrics_snapshot_t *s)
{
    static const char *const names[] = {"queue_depth", "workers",
                                        "workers_running", "workers_idle",
                                        "blocking_threads"};
    static const char *const helps[] = {
        "Tasks queued and not yet started.", "CPU workers.",
        "Workers awake (running or searching).", "Workers parked idle.",
        "Blocking-lane threads alive."};
    for (unsigned g = 0; g < 5; g++) {
        put(b, "# HELP weft_pool_%s %s\n# TYPE weft_pool_%s gauge\n", names[g],
            helps[g], names[g]);
        for (size_t i = 0; i < s->npools; i++) {
            const weft_metrics_pool_t *p = &s->pools[i];
            uint64_t v = g == 0   ? p->queue_depth
                         : g == 1 ? p->workers
                         : g == 2 ? p->running
                         : g == 3 ? p->idle
                                  : p->lane_threads;
            put(b, "weft_pool_%s{pool=\"", names[g]);
            put_escaped(b, p->name, false);
            put(b, "\"} %llu\n", (unsigned long long)v);
        }
    }
}

/* ns as exact decimal seconds ("0.000001024", "68.719476736"). */
static void
format_seconds(uint64_t ns, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%llu.%09llu",
                     (unsigned long long)(ns / 1000000000u),
                     (unsigned long long)(ns % 1000000000u));
    while (n > 2 && out[n - 1] == '0' && out[n - 2] != '.') {
        out[--n] = '\0';
    }
}

/* Buckets at every power of two from 2^10 ns (~1 us) to 2^36 ns (~69 s):
 * exact bucket edges of the log-linear histogram. */
static void
prom_hist(buf_t *b, const char *name, const char *help,
          const weft_metrics_snapshot_t *s, const weft__hist_full_t *hs,
          unsigned which)
{
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < s->npools; i++) {
        const weft__hist_full_t *h = &hs[2 * i + which];
        uint64_t cum = 0;
        unsigned k = 0;
        for (unsigned e = 10; e <= 36; e++) {
            uint64_t edge = (uint64_t)1 << e;
            while (k < WEFT__HIST_NB && weft__hist_upper(k) <= edge) {
                cum += h->b[k++];
            }
            char le[32];
            format_seconds(edge, le, sizeof(le));
            put(b, "%s_bucket{pool=\"", name);
            put_escaped(b, s->pools[i].name, false);
            put(b, "\",le=\"%s\"} %llu\n", le, (unsigned long long)cum);
        }
        for (; k < WEFT__HIST_NB; k++) {
            cum += h->b[k];
        }
        put(b, "%s_bucket{pool=\"", name);
        put_escaped(b, s->pools[i].name, false);
        put(b, "\",le=\"+Inf\"} %llu\n%s_sum{pool=\"", (unsigned long long)cum,
            name);
        put_escaped(b, s->pools[i].name, false);
        put(b, "\"} %.9f\n%s_count{pool=\"", (double)h->sum / 1e9, name);
        put_escaped(b, s->pools[i].name, false);
        put(b, "\"} %llu\n", (unsigned long long)cum);
    }
}

static void
prom_queues(buf_t *b, const weft_metrics_snapshot_t *s)
{
    static const char *const names[] = {"puts_total", "gets_total", "depth",
                                        "capacity"};
    static const char *const helps[] = {
        "Items put into the queue.", "Items taken from the queue.",
        "Items in the queue.", "Capacity of the queue (0: unbounded)."};
    for (unsigned g = 0; g < 4; g++) {
        put(b, "# HELP weft_queue_%s %s\n# TYPE weft_queue_%s %s\n", names[g],
            helps[g], names[g], g < 2 ? "counter" : "gauge");
        for (size_t i = 0; i < s->nqueues; i++) {
            const weft_metrics_queue_t *q = &s->queues[i];
            uint64_t v = g == 0   ? q->puts
                         : g == 1 ? q->gets
                         : g == 2 ? q->depth
                                  : q->capacity;
            put(b, "weft_queue_%s{queue=\"", names[g]);
            put_escaped(b, q->name, false);
            put(b, "\"} %llu\n", (unsigned long long)v);
        }
    }
}

/* Per-stage series of every pipeline: one family per field. */
typedef struct scounter {
    const char *name, *help, *type;
    size_t off;
    int fmt; /* 0 uint64 count, 1 ns as seconds, 2 double, 3 size_t */
} scounter_t;

#define SC(n, h, t, f, k)                                                      \
    {                                                                          \
        n, h, t, offsetof(weft_stage_stats_t, f), k                            \
    }
static const scounter_t stage_series[] = {
    SC("weft_pipeline_stage_items_in_total", "Items a stage received.",
       "counter", items_in, 0),
    SC("weft_pipeline_stage_items_out_total", "Items a stage passed on.",
       "counter", items_out, 0),
    SC("weft_pipeline_stage_dropped_total",
       "Items dropped before a stage received them (cancel, failure).",
       "counter", dropped, 0),
    SC("weft_pipeline_stage_filtered_total", "Items a stage filtered out.",
       "counter", filtered, 0),
    SC("weft_pipeline_stage_busy_seconds_total",
       "Time spent inside a stage's function.", "counter", busy_ns, 1),
    SC("weft_pipeline_stage_wait_seconds_total",
       "Time items waited in a stage's buffer.", "counter", wait_ns, 1),
    SC("weft_pipeline_stage_busy_share",
       "Busy time over elapsed time and usable parallelism (0..1).", "gauge",
       busy_share, 2),
    SC("weft_pipeline_stage_buffered", "Items waiting at a stage's input.",
       "gauge", buffered, 3),
};

static void
prom_pipelines(buf_t *b, const weft_metrics_snapshot_t *s)
{
    size_t ns = sizeof(stage_series) / sizeof(stage_series[0]);
    for (size_t c = 0; c < ns; c++) {
        const scounter_t *sc = &stage_series[c];
        put(b, "# HELP %s %s\n# TYPE %s %s\n", sc->name, sc->help, sc->name,
            sc->type);
        for (size_t i = 0; i < s->npipelines; i++) {
            const weft_pipeline_stats_t *pl = &s->pipelines[i];
            for (size_t k = 0; k < pl->nstages; k++) {
                const char *base = (const char *)&pl->stage[k] + sc->off;
                put(b, "%s{pipeline=\"", sc->name);
                put_escaped(b, pl->name, false);
                put(b, "\",stage=\"");
                put_escaped(b, pl->stage[k].name, false);
                put(b, "\"} ");
                if (sc->fmt == 0 || sc->fmt == 1) {
                    uint64_t v;
                    memcpy(&v, base, sizeof(v));
                    if (sc->fmt == 0) {
                        put(b, "%llu\n", (unsigned long long)v);
                    } else {
                        put(b, "%.9f\n", (double)v / 1e9);
                    }
                } else if (sc->fmt == 2) {
                    double v;
                    memcpy(&v, base, sizeof(v));
                    put(b, "%.4f\n", v);
                } else {
                    size_t v;
                    memcpy(&v, base, sizeof(v));
                    put(b, "%zu\n", v);
                }
            }
        }
    }
    put(b, "# HELP weft_pipeline_in_flight Items between source and sink.\n"
           "# TYPE weft_pipeline_in_flight gauge\n");
    for (size_t i = 0; i < s->npipelines; i++) {
        put(b, "weft_pipeline_in_flight{pipeline=\"");
        put_escaped(b, s->pipelines[i].name, false);
        put(b, "\"} %zu\n", s->pipelines[i].in_flight);
    }
}

int
weft_metrics_prometheus(char **out, size_t *len)
{
    buf_t b;
    weft__metrics_full_t f;
    int rc = start(out, len, &b, &f);
    if (rc != WEFT_OK) {
        return rc;
    }
    const weft_metrics_snapshot_t *s = f.s;
    put(&b,
        "# HELP weft_metrics_sample_every One task in this many is timed "
        "for the latency histograms.\n# TYPE weft_metrics_sample_every "
        "gauge\nweft_metrics_sample_every %u\n",
        s->sample_every);
    size_t nc = sizeof(pool_counters) / sizeof(pool_counters[0]);
    for (size_t c = 0; c < nc; c++) {
        const pcounter_t *pc = &pool_counters[c];
        put(&b, "# HELP %s %s\n# TYPE %s counter\n", pc->name, pc->help,
            pc->name);
        for (size_t i = 0; i < s->npools; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&s->pools[i] + pc->off, sizeof(v));
            put(&b, "%s{pool=\"", pc->name);
            put_escaped(&b, s->pools[i].name, false);
            put(&b, "\"} %llu\n", (unsigned long long)v);
        }
    }
    prom_pool_gauges(&b, s);
    put(&b, "# HELP weft_pool_worker_utilisation Busy share of a worker over "
            "the last window.\n# TYPE weft_pool_worker_utilisation gauge\n");
    for (size_t i = 0; i < s->npools; i++) {
        for (unsigned w = 0; w < s->pools[i].workers; w++) {
            put(&b, "weft_pool_worker_utilisation{pool=\"");
            put_escaped(&b, s->pools[i].name, false);
            put(&b, "\",worker=\"%u\"} %.4f\n", w, s->pools[i].utilisation[w]);
        }
    }
    prom_hist(&b, "weft_pool_queue_wait_seconds",
              "Time from submit to start of a task (sampled tasks).", s, f.hist,
              0);
    prom_hist(&b, "weft_pool_run_seconds",
              "Run time of a task (sampled tasks).", s, f.hist, 1);
    prom_queues(&b, s);
    prom_pipelines(&b, s);
    weft__metrics_full_free(&f);
    return finish(&b, out, len);
}

/* ---------------------------------------------------------------- JSON */

static void
json_hist(buf_t *b, const char *key, const weft_metrics_hist_t *h)
{
    put(b,
        "\"%s\":{\"count\":%llu,\"sum_ns\":%llu,\"p50_ns\":%llu,"
        "\"p90_ns\":%llu,\"p99_ns\":%llu,\"max_ns\":%llu}",
        key, (unsigned long long)h->count, (unsigned long long)h->sum_ns,
        (unsigned long long)h->p50_ns, (unsigned long long)h->p90_ns,
        (unsigned long long)h->p99_ns, (unsigned long long)h->max_ns);
}

static void
json_pool(buf_t *b, const weft_metrics_pool_t *p)
{
    put(b, "{\"name\":\"");
    put_escaped(b, p->name, true);
    put(b, "\",\"workers\":%u", p->workers);
    size_t nc = sizeof(pool_counters) / sizeof(pool_counters[0]);
    for (size_t c = 0; c < nc; c++) {
        uint64_t v;
        memcpy(&v, (const char *)p + pool_counters[c].off, sizeof(v));
        put(b, ",\"%s\":%llu", pool_counters[c].name + strlen("weft_pool_"),
            (unsigned long long)v);
    }
    put(b,
        ",\"queue_depth\":%llu,\"workers_running\":%u,\"workers_idle\":%u,"
        "\"blocking_threads\":%u,",
        (unsigned long long)p->queue_depth, p->running, p->idle,
        p->lane_threads);
    json_hist(b, "queue_wait", &p->wait);
    put(b, ",");
    json_hist(b, "run", &p->run);
    put(b, ",\"window_s\":%.6f,\"utilisation\":[", p->window_s);
    for (unsigned w = 0; w < p->workers; w++) {
        put(b, "%s%.4f", w ? "," : "", p->utilisation[w]);
    }
    put(b, "]}");
}

static void
json_pipeline(buf_t *b, const weft_pipeline_stats_t *pl)
{
    put(b, "{\"name\":\"");
    put_escaped(b, pl->name, true);
    put(b,
        "\",\"in_flight\":%zu,\"max_in_flight\":%zu,\"elapsed_ns\":%llu,"
        "\"finished\":%s,\"bottleneck\":\"",
        pl->in_flight, pl->max_in_flight, (unsigned long long)pl->elapsed_ns,
        pl->finished ? "true" : "false");
    put_escaped(b, pl->nstages > 0 ? pl->stage[pl->bottleneck].name : "", true);
    put(b, "\",\"stages\":[");
    for (size_t k = 0; k < pl->nstages; k++) {
        const weft_stage_stats_t *st = &pl->stage[k];
        put(b, "%s{\"name\":\"", k ? "," : "");
        put_escaped(b, st->name, true);
        put(b,
            "\",\"parallel\":%u,\"ordered\":%s,\"items_in\":%llu,"
            "\"items_out\":%llu,\"dropped\":%llu,\"filtered\":%llu,"
            "\"buffered\":%zu,\"running\":%zu,\"busy_ns\":%llu,"
            "\"wait_ns\":%llu,\"busy_share\":%.4f}",
            st->parallel, st->ordered ? "true" : "false",
            (unsigned long long)st->items_in, (unsigned long long)st->items_out,
            (unsigned long long)st->dropped, (unsigned long long)st->filtered,
            st->buffered, st->running, (unsigned long long)st->busy_ns,
            (unsigned long long)st->wait_ns, st->busy_share);
    }
    put(b, "]}");
}

int
weft_metrics_json(char **out, size_t *len)
{
    buf_t b;
    weft__metrics_full_t f;
    int rc = start(out, len, &b, &f);
    if (rc != WEFT_OK) {
        return rc;
    }
    const weft_metrics_snapshot_t *s = f.s;
    put(&b, "{\"taken_at_ns\":%llu,\"sample_every\":%u,\"pools\":[",
        (unsigned long long)s->taken_at, s->sample_every);
    for (size_t i = 0; i < s->npools; i++) {
        put(&b, "%s", i ? "," : "");
        json_pool(&b, &s->pools[i]);
    }
    put(&b, "],\"queues\":[");
    for (size_t i = 0; i < s->nqueues; i++) {
        const weft_metrics_queue_t *q = &s->queues[i];
        put(&b, "%s{\"name\":\"", i ? "," : "");
        put_escaped(&b, q->name, true);
        put(&b,
            "\",\"puts\":%llu,\"gets\":%llu,\"depth\":%llu,"
            "\"capacity\":%llu}",
            (unsigned long long)q->puts, (unsigned long long)q->gets,
            (unsigned long long)q->depth, (unsigned long long)q->capacity);
    }
    put(&b, "],\"pipelines\":[");
    for (size_t i = 0; i < s->npipelines; i++) {
        put(&b, "%s", i ? "," : "");
        json_pipeline(&b, &s->pipelines[i]);
    }
    put(&b, "]}\n");
    weft__metrics_full_free(&f);
    return finish(&b, out, len);
}
