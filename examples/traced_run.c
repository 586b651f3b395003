/* SPDX-License-Identifier: MIT */
/*
 * Tracing a run: a small pipeline on a thread pool, recorded with
 * weft_trace_start/stop and written as a Chrome Trace Event file that
 * Perfetto, chrome://tracing and `weft trace-view` open.
 *
 * "parse" tasks each crunch a chunk of numbers, submit a "render" task for
 * their result (a child: the trace links it to its parent) and hand the
 * result to a "collect" thread through a bounded queue; all of them share one
 * lock for the totals, so the trace shows lock waits, queue waits, future
 * waits, steals and parks besides the tasks.
 *
 * Usage: ex_traced_run [TRACE.json]. Without an argument the trace goes to
 * traced_run.json in a temporary directory (kept, so it can be opened).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <weft/weft.h>

#include "example.h"

#define CHUNKS (EX_SANITIZED ? 24 : 64)
#define CHUNK_WORK (EX_SANITIZED ? 20000 : 200000)

typedef struct run {
    weft_executor_t *pool;
    weft_queue_t *results; /* parse -> collect */
    weft_mutex_t lock;     /* guards the totals */
    uint64_t total;        /* sum of every chunk's result */
    uint64_t rendered;     /* render tasks that ran */
    uint64_t checksum;     /* of the renders' results */
    weft_future_t *render[CHUNKS];
} run_t;

typedef struct chunk {
    run_t *run;
    unsigned no;
} chunk_t;

static uint64_t
crunch(unsigned seed, unsigned n)
{
    uint64_t x = seed * 2654435761u + 1, sum = 0;
    for (unsigned i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        sum += x & 0xff;
    }
    return sum;
}

static void *
render(void *arg)
{
    chunk_t *c = arg;
    uint64_t v = crunch(c->no + 1000, CHUNK_WORK / 4);
    EX_OK(weft_mutex_lock(&c->run->lock));
    c->run->rendered++;
    c->run->checksum += v;
    weft_mutex_unlock(&c->run->lock);
    return NULL;
}

static void *
parse(void *arg)
{
    chunk_t *c = arg;
    run_t *r = c->run;
    uint64_t v = crunch(c->no, CHUNK_WORK);
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.label = "render";
    if (weft_executor_submit(r->pool, render, c, &o, &r->render[c->no]) !=
        WEFT_OK) {
        return weft_task_fail(WEFT_EAGAIN, "cannot submit render %u", c->no);
    }
    EX_OK(weft_mutex_lock(&r->lock));
    r->total += v;
    weft_mutex_unlock(&r->lock);
    if (weft_queue_put(r->results, &v) != WEFT_OK) {
        return weft_task_fail(WEFT_ECLOSED, "results closed");
    }
    return NULL;
}

/* A thread of its own (not a pool task: it blocks for the whole run) that
 * takes CHUNKS results off the queue, waiting for each. */
static void *
collect(void *arg)
{
    run_t *r = arg;
    uint64_t v, sum = 0;
    for (int i = 0; i < CHUNKS; i++) {
        EX_OK(weft_queue_get(r->results, &v));
        sum += v;
    }
    return (void *)(uintptr_t)(sum & 0xffffffffu);
}

static void
run_pipeline(run_t *r, chunk_t *chunks)
{
    weft_future_t *parsers[CHUNKS];
    weft_thread_t *collector;
    weft_thread_opts_t to = WEFT_THREAD_OPTS_INIT;
    to.name = "collect";
    EX_OK(weft_thread_create(&to, collect, r, &collector));
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.label = "parse";
    for (unsigned i = 0; i < CHUNKS; i++) {
        chunks[i] = (chunk_t){r, i};
        EX_OK(
            weft_executor_submit(r->pool, parse, &chunks[i], &o, &parsers[i]));
    }
    for (unsigned i = 0; i < CHUNKS; i++) {
        EX_OK(weft_future_wait(parsers[i]));
        EX_CHECK(weft_future_code(parsers[i]) == WEFT_OK, "parse %u: %s", i,
                 weft_future_error(parsers[i]));
        weft_future_release(parsers[i]);
    }
    void *sum;
    EX_OK(weft_thread_join(collector, &sum));
    for (unsigned i = 0; i < CHUNKS; i++) {
        EX_OK(weft_future_wait(r->render[i]));
        weft_future_release(r->render[i]);
    }
    EX_CHECK((uintptr_t)sum == (r->total & 0xffffffffu),
             "collect saw %lu, the parsers summed %lu",
             (unsigned long)(uintptr_t)sum,
             (unsigned long)(r->total & 0xffffffffu));
    EX_CHECK(r->rendered == CHUNKS, "%llu renders ran, expected %d",
             (unsigned long long)r->rendered, CHUNKS);
}

static void
default_path(char *out, size_t n)
{
    const char *tmp = getenv("TMPDIR");
    char dir[512];
    snprintf(dir, sizeof dir, "%s/weft-trace-XXXXXX",
             tmp != NULL && *tmp ? tmp : "/tmp");
    EX_CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
    int w = snprintf(out, n, "%s/traced_run.json", dir);
    EX_CHECK(w > 0 && (size_t)w < n, "path too long");
}

int
main(int argc, char **argv)
{
    static run_t r;
    static chunk_t chunks[CHUNKS];
    char path[600];
    weft_pool_opts_t po = WEFT_POOL_OPTS_INIT;
    weft_queue_opts_t qo = WEFT_QUEUE_OPTS_INIT;

    if (argc > 2) {
        fprintf(stderr, "usage: %s [TRACE.json]\n", argv[0]);
        return 2;
    }
    if (argc == 2) {
        snprintf(path, sizeof path, "%s", argv[1]);
    } else {
        default_path(path, sizeof path);
    }
    po.name = "work";
    po.workers = 4;
    EX_OK(weft_pool_create(&po, &r.pool));
    qo.capacity = 4; /* small: parsers wait for the collector */
    qo.elem_size = sizeof(uint64_t);
    qo.name = "results";
    EX_OK(weft_queue_create(&qo, &r.results));
    weft_mutex_init(&r.lock);

    EX_OK(weft_trace_start(NULL));
    weft_time_t t0 = weft_now();
    run_pipeline(&r, chunks);
    double secs = ex_seconds_since(t0);
    weft_trace_stop();

    EX_OK(weft_trace_write(path));
    struct stat st;
    EX_CHECK(stat(path, &st) == 0 && st.st_size > 0, "%s is empty", path);
    printf("Traced %d parse and %d render tasks on 4 workers in "
           "%.3f s:\n",
           CHUNKS, CHUNKS, secs);
    printf("  %llu events recorded (%llu dropped), %lld bytes of JSON in\n"
           "  %s\n",
           (unsigned long long)weft_trace_events(),
           (unsigned long long)weft_trace_dropped(), (long long)st.st_size,
           path);
    printf("  render checksum %016llx\n", (unsigned long long)r.checksum);
    printf("  open it in ui.perfetto.dev or chrome://tracing, or run\n"
           "  weft trace-view %s trace.html\n",
           path);
    EX_CHECK(weft_trace_events() >= 3 * CHUNKS, "too few events");
    weft_mutex_fini(&r.lock);
    weft_queue_destroy(r.results);
    weft_executor_destroy(r.pool);
    return 0;
}
