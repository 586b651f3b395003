/* SPDX-License-Identifier: MIT */
/*
 * The floors of the executor benchmarks: the serial versions of fib,
 * parallel_reduce and parallel_for (impl "serial"), the thread pool most
 * C code hand-rolls (impl "naive-pool"): fire-and-forget submits, the
 * submit-then-wait round trip, and its CPU use while idle; and the pipeline
 * most C code hand-rolls (impl "thread-per-stage"): a thread per stage and
 * mutex+condvar queues.
 */
#define _POSIX_C_SOURCE 200809L

#include <semaphore.h>

#include "bench_util.h"
#include "bench_work.h"

/*
 * DESIGN
 * The naive pool is one mutex, one condition variable and a linked list of
 * malloc'd jobs: submit appends under the lock and signals; a worker waits
 * while the list is empty, pops, unlocks and runs the job. Stopping sets a
 * flag and broadcasts; workers drain the list before they exit, so joining
 * them waits for every task submitted. A round trip waits on a hand-rolled
 * future: a flag, a mutex and a condition variable the task sets.
 */

/* ------------------------------------------------------------------------ */
/* The naive pool                                                            */

typedef struct job {
    struct job *next;
    void *(*fn)(void *);
    void *arg;
} job_t;

typedef struct naive_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a job was queued, or stop was set */
    job_t *head;
    job_t *tail;
    bool stop;
    pthread_t threads[WORK_WORKERS];
} naive_pool_t;

static void *
naive_worker(void *arg)
{
    naive_pool_t *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->stop) {
            pthread_cond_wait(&p->cv, &p->mu);
        }
        job_t *j = p->head;
        if (j == NULL) {
            break; /* stopped and drained */
        }
        p->head = j->next;
        if (p->head == NULL) {
            p->tail = NULL;
        }
        pthread_mutex_unlock(&p->mu);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void
naive_start(naive_pool_t *p)
{
    memset(p, 0, sizeof(*p));
    bench_check(pthread_mutex_init(&p->mu, NULL), "pthread_mutex_init");
    bench_check(pthread_cond_init(&p->cv, NULL), "pthread_cond_init");
    for (unsigned i = 0; i < WORK_WORKERS; i++) {
        bench_start(&p->threads[i], naive_worker, p);
    }
}

static void
naive_submit(naive_pool_t *p, void *(*fn)(void *), void *arg)
{
    job_t *j = malloc(sizeof(*j));

    if (j == NULL) {
        bench_fail("out of memory");
    }
    j->next = NULL;
    j->fn = fn;
    j->arg = arg;
    pthread_mutex_lock(&p->mu);
    if (p->tail != NULL) {
        p->tail->next = j;
    } else {
        p->head = j;
    }
    p->tail = j;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Runs every job submitted, then stops the workers and frees the pool. */
static void
naive_stop(naive_pool_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < WORK_WORKERS; i++) {
        bench_join(p->threads[i]);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

/* A hand-rolled future for the round trip. */
typedef struct naive_future {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uintptr_t want;  /* what the task must deliver */
    uintptr_t value; /* what it delivered */
    bool done;
} naive_future_t;

static void *
deliver(void *arg)
{
    naive_future_t *f = arg;

    pthread_mutex_lock(&f->mu);
    f->value = f->want;
    f->done = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* One round trip: submit, wait for the result. Returns ns. */
static uint64_t
naive_round_trip(naive_pool_t *p, naive_future_t *f, uintptr_t want)
{
    f->want = want;
    f->done = false;
    uint64_t start = work_now_ns();
    naive_submit(p, deliver, f);
    pthread_mutex_lock(&f->mu);
    while (!f->done) {
        pthread_cond_wait(&f->cv, &f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    uint64_t ns = work_now_ns() - start;
    if (f->value != want) {
        bench_fail("roundtrip naive-pool: got %" PRIuPTR ", expected %" PRIuPTR,
                   f->value, want);
    }
    return ns;
}

static void
naive_warm(naive_pool_t *p, naive_future_t *f)
{
    bench_check(pthread_mutex_init(&f->mu, NULL), "pthread_mutex_init");
    bench_check(pthread_cond_init(&f->cv, NULL), "pthread_cond_init");
    for (uintptr_t i = 1; i <= WORK_WARM_TRIPS; i++) {
        naive_round_trip(p, f, i);
    }
}

static void
naive_future_fini(naive_future_t *f)
{
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
}

/* ------------------------------------------------------------------------ */
/* naive-pool benchmarks                                                     */

static void
naive_submits(uint64_t n)
{
    unsigned char *hits = calloc((size_t)n, 1);
    naive_pool_t p;
    naive_future_t f;

    if (hits == NULL) {
        bench_fail("out of memory");
    }
    naive_start(&p);
    naive_warm(&p, &f);
    uint64_t start = work_now_ns();
    for (uint64_t i = 0; i < n; i++) {
        naive_submit(&p, work_mark, &hits[i]);
    }
    naive_stop(&p);
    double secs = (double)(work_now_ns() - start) * 1e-9;
    size_t bad = work_marks_check(hits, (size_t)n);
    if (bad != n) {
        bench_fail("submit naive-pool: task %zu ran %u times", bad,
                   (unsigned)hits[bad]);
    }
    naive_future_fini(&f);
    free(hits);
    bench_result("submit", "naive-pool", "workers=2", "tasks_per_s",
                 (double)n / secs);
}

static void
naive_round_trips(uint64_t n)
{
    double *us = malloc((size_t)n * sizeof(*us));
    naive_pool_t p;
    naive_future_t f;

    if (us == NULL) {
        bench_fail("out of memory");
    }
    naive_start(&p);
    naive_warm(&p, &f);
    for (uint64_t i = 0; i < n; i++) {
        us[i] = (double)naive_round_trip(&p, &f, (uintptr_t)i + 1) * 1e-3;
    }
    naive_stop(&p);
    naive_future_fini(&f);
    bench_result("roundtrip", "naive-pool", "workers=2", "us_per_rt",
                 work_median(us, (size_t)n));
    free(us);
}

static void
naive_idle(uint64_t ms)
{
    naive_pool_t p;
    naive_future_t f;

    naive_start(&p);
    naive_warm(&p, &f);
    double cpu = work_cpu_seconds();
    uint64_t start = work_now_ns();
    work_sleep_ns(ms * UINT64_C(1000000));
    double secs = (double)(work_now_ns() - start) * 1e-9;
    cpu = work_cpu_seconds() - cpu;
    naive_stop(&p);
    naive_future_fini(&f);
    bench_result("idle", "naive-pool", "workers=2", "cpu_ms_per_idle_s",
                 cpu * 1e3 / secs);
}

/* ------------------------------------------------------------------------ */
/* The hand-written pipeline                                                 */

/*
 * What a C programmer writes by hand for source -> A -> B -> C: a thread per
 * stage (the parallel stages get WORK_WORKERS threads each), bounded rings
 * with a mutex and two condition variables between them, closed by the last
 * thread of the stage before; the source takes one of WORK_PIPE_IN_FLIGHT
 * tokens (a sem_t) per item and the sink gives it back, so as many items are
 * in flight as in weft and oneTBB. Items carry their sequence number; the
 * sink puts them back in order in a reorder ring of WORK_PIPE_IN_FLIGHT
 * slots (the tokens keep every item in flight within that many of the next
 * one the sink expects).
 */

typedef struct pitem {
    uint64_t seq;
    uint64_t value;
} pitem_t;

typedef struct pqueue {
    pthread_mutex_t mu;
    pthread_cond_t not_full;
    pthread_cond_t not_empty;
    pitem_t buf[WORK_PIPE_IN_FLIGHT];
    size_t head; /* next slot to read */
    size_t count;
    unsigned writers; /* threads still putting; 0: closed */
} pqueue_t;

static void
pq_init(pqueue_t *q, unsigned writers)
{
    bench_check(pthread_mutex_init(&q->mu, NULL), "pthread_mutex_init");
    bench_check(pthread_cond_init(&q->not_full, NULL), "pthread_cond_init");
    bench_check(pthread_cond_init(&q->not_empty, NULL), "pthread_cond_init");
    q->head = 0;
    q->count = 0;
    q->writers = writers;
}

static void
pq_fini(pqueue_t *q)
{
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    pthread_mutex_destroy(&q->mu);
}

static void
pq_put(pqueue_t *q, pitem_t it)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == WORK_PIPE_IN_FLIGHT) {
        pthread_cond_wait(&q->not_full, &q->mu);
    }
    q->buf[(q->head + q->count) % WORK_PIPE_IN_FLIGHT] = it;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

/* false: the queue is closed and empty. */
static bool
pq_get(pqueue_t *q, pitem_t *it)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0 && q->writers > 0) {
        pthread_cond_wait(&q->not_empty, &q->mu);
    }
    bool got = q->count > 0;
    if (got) {
        *it = q->buf[q->head];
        q->head = (q->head + 1) % WORK_PIPE_IN_FLIGHT;
        q->count--;
        pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->mu);
    return got;
}

/* One writer is done; the last one closes the queue. */
static void
pq_close(pqueue_t *q)
{
    pthread_mutex_lock(&q->mu);
    if (--q->writers == 0) {
        pthread_cond_broadcast(&q->not_empty);
    }
    pthread_mutex_unlock(&q->mu);
}

typedef struct hand_pipe {
    uint64_t n;
    unsigned spins;
    sem_t tokens;
    pqueue_t q[3]; /* source -> A -> B -> C */
    bench_gate_t gate;
    uint64_t hash; /* the sink's */
    uint64_t count;
} hand_pipe_t;

typedef struct hand_stage {
    hand_pipe_t *p;
    unsigned stage; /* WORK_PIPE_A or WORK_PIPE_B */
} hand_stage_t;

static void
token_take(sem_t *s)
{
    while (sem_wait(s) != 0) {
        if (errno != EINTR) {
            bench_fail("sem_wait: %s", strerror(errno));
        }
    }
}

static void *
hand_source(void *arg)
{
    hand_pipe_t *p = arg;

    bench_gate_wait(&p->gate);
    for (uint64_t i = 0; i < p->n; i++) {
        token_take(&p->tokens);
        pq_put(&p->q[0], (pitem_t){i, work_pipe_source(i)});
    }
    pq_close(&p->q[0]);
    return NULL;
}

/* A thread of stage A (reads q[0], writes q[1]) or B (q[1] to q[2]). */
static void *
hand_middle(void *arg)
{
    hand_stage_t *s = arg;
    hand_pipe_t *p = s->p;
    pqueue_t *in = &p->q[s->stage - WORK_PIPE_A];
    pitem_t it;

    bench_gate_wait(&p->gate);
    while (pq_get(in, &it)) {
        it.value = work_pipe_stage(it.value, s->stage, p->spins);
        pq_put(in + 1, it);
    }
    pq_close(in + 1);
    return NULL;
}

static void *
hand_sink(void *arg)
{
    hand_pipe_t *p = arg;
    uint64_t slot[WORK_PIPE_IN_FLIGHT];
    bool full[WORK_PIPE_IN_FLIGHT] = {false};
    uint64_t next = 0; /* the sequence number C takes next */
    pitem_t it;

    bench_gate_wait(&p->gate);
    while (pq_get(&p->q[2], &it)) {
        size_t k = (size_t)(it.seq % WORK_PIPE_IN_FLIGHT);
        if (it.seq - next >= WORK_PIPE_IN_FLIGHT || full[k]) {
            bench_fail("pipeline thread-per-stage: item %" PRIu64
                       " out of the reorder window at %" PRIu64,
                       it.seq, next);
        }
        slot[k] = it.value;
        full[k] = true;
        for (k = (size_t)(next % WORK_PIPE_IN_FLIGHT); full[k];
             k = (size_t)(next % WORK_PIPE_IN_FLIGHT)) {
            uint64_t x = work_pipe_stage(slot[k], WORK_PIPE_C, p->spins);
            p->hash = work_pipe_fold(p->hash, x);
            p->count++;
            full[k] = false;
            next++;
            bench_check(sem_post(&p->tokens) != 0 ? errno : 0, "sem_post");
        }
    }
    return NULL;
}

/* Runs n items through new threads; returns the times from the start
 * gate to the last join. */
static work_times_t
hand_run(uint64_t n, unsigned spins)
{
    enum { STAGE_THREADS = 2 * WORK_WORKERS };
    hand_pipe_t p;
    hand_stage_t st[STAGE_THREADS];
    pthread_t src, snk, mid[STAGE_THREADS];

    p.n = n;
    p.spins = spins;
    p.hash = WORK_PIPE_HASH0;
    p.count = 0;
    bench_check(sem_init(&p.tokens, 0, WORK_PIPE_IN_FLIGHT) != 0 ? errno : 0,
                "sem_init");
    pq_init(&p.q[0], 1);
    pq_init(&p.q[1], WORK_WORKERS);
    pq_init(&p.q[2], WORK_WORKERS);
    bench_gate_init(&p.gate, STAGE_THREADS + 3);
    bench_start(&src, hand_source, &p);
    for (unsigned i = 0; i < STAGE_THREADS; i++) {
        st[i].p = &p;
        st[i].stage = i < WORK_WORKERS ? WORK_PIPE_A : WORK_PIPE_B;
        bench_start(&mid[i], hand_middle, &st[i]);
    }
    bench_start(&snk, hand_sink, &p);
    bench_gate_wait(&p.gate);
    work_times_t tm;
    work_times_start(&tm);
    bench_join(src);
    for (unsigned i = 0; i < STAGE_THREADS; i++) {
        bench_join(mid[i]);
    }
    bench_join(snk);
    work_times_stop(&tm);
    bench_gate_fini(&p.gate);
    for (int i = 0; i < 3; i++) {
        pq_fini(&p.q[i]);
    }
    sem_destroy(&p.tokens);
    uint64_t want = work_pipe_expected(n, spins);
    if (p.count != n || p.hash != want) {
        bench_fail("pipeline thread-per-stage: the sink took %" PRIu64
                   " items, hash %#" PRIx64 ", expected %" PRIu64
                   " items, hash %#" PRIx64,
                   p.count, p.hash, n, want);
    }
    return tm;
}

static void
hand_pipeline(const work_pipe_kind_t *kind, uint64_t n)
{
    char params[64];

    (void)hand_run(n < WORK_PIPE_WARM ? n : WORK_PIPE_WARM, kind->spins);
    work_times_t tm = hand_run(n, kind->spins);
    snprintf(params, sizeof(params), "work=%s,workers=%u,in_flight=%u",
             kind->name, WORK_WORKERS, WORK_PIPE_IN_FLIGHT);
    bench_result("pipeline", "thread-per-stage", params, "items_per_s",
                 (double)n / tm.secs);
    bench_result("pipeline", "thread-per-stage", params, "cpu_ns_per_item",
                 tm.cpu * 1e9 / (double)n);
}

/* ------------------------------------------------------------------------ */
/* serial                                                                    */

static void
fib_serial(int n)
{
    uint64_t want = work_fib_expected(n);
    double ms[WORK_INNER];
    char params[64];

    (void)work_fib_opaque(n < 20 ? n : 20); /* warm-up */
    for (int k = 0; k < WORK_INNER; k++) {
        uint64_t start = work_now_ns();
        uint64_t got = work_fib_opaque(n);
        ms[k] = (double)(work_now_ns() - start) * 1e-6;
        if (got != want) {
            bench_fail("fib serial: fib(%d) = %" PRIu64 ", expected %" PRIu64,
                       n, got, want);
        }
    }
    snprintf(params, sizeof(params), "n=%d,workers=1", n);
    bench_result("fib", "serial", params, "ms", work_median(ms, WORK_INNER));
}

/* The serial reduce: sum of x[i]^2. */
static void
reduce_serial(const float *x, size_t n)
{
    double want = work_sumsq_expected(n);
    double ms[WORK_INNER];

    for (int k = -1; k < WORK_INNER; k++) { /* k == -1: warm-up */
        work_escape(x);
        uint64_t start = work_now_ns();
        double got = work_sumsq(x, 0, n);
        uint64_t ns = work_now_ns() - start;
        if (got != want) {
            bench_fail("parallel-reduce serial: sum %.17g, expected %.17g", got,
                       want);
        }
        if (k >= 0) {
            ms[k] = (double)ns * 1e-6;
        }
    }
    bench_result("parallel-reduce", "serial", "workers=1", "ms",
                 work_median(ms, WORK_INNER));
}

/* The serial for: y[i] = a * x[i] + y[i]. */
static void
for_serial(const float *x, float *y, size_t n)
{
    double ms[WORK_INNER];
    unsigned passes = 0;

    work_reset_y(y, n);
    for (int k = -1; k < WORK_INNER; k++) { /* k == -1: warm-up */
        work_escape(y);
        uint64_t start = work_now_ns();
        work_axpy(WORK_AXPY_A, x, y, 0, n);
        work_escape(y);
        uint64_t ns = work_now_ns() - start;
        passes++;
        if (k >= 0) {
            ms[k] = (double)ns * 1e-6;
        }
    }
    size_t bad = work_axpy_check(x, y, n, passes);
    if (bad != n) {
        bench_fail("parallel-for serial: y[%zu] = %g after %u passes", bad,
                   (double)y[bad], passes);
    }
    bench_result("parallel-for", "serial", "workers=1", "ms",
                 work_median(ms, WORK_INNER));
}

static void
parallel_serial(size_t n)
{
    float *x = work_alloc_x(n);
    float *y = malloc(n * sizeof(*y));

    if (x == NULL || y == NULL) {
        bench_fail("out of memory for %zu floats", n);
    }
    reduce_serial(x, n);
    for_serial(x, y, n);
    free(y);
    free(x);
}

int
main(int argc, char **argv)
{
    bench_args_t a = bench_parse_args(argc, argv, "SIZE", 0);
    int ran = 0;

    if (bench_wanted(&a, "fib") && bench_selected(&a, "serial")) {
        uint64_t n = bench_size(&a, WORK_DEFAULT_FIB);
        if (n > WORK_MAX_FIB) {
            bench_fail("fib: n = %" PRIu64 " is too large", n);
        }
        fib_serial((int)n);
        ran++;
    }
    if (bench_wanted(&a, "parallel") && bench_selected(&a, "serial")) {
        parallel_serial((size_t)bench_size(&a, WORK_DEFAULT_ELEMS));
        ran++;
    }
    if (bench_wanted(&a, "submit") && bench_selected(&a, "naive-pool")) {
        naive_submits(bench_size(&a, WORK_DEFAULT_TASKS));
        ran++;
    }
    if (bench_wanted(&a, "roundtrip") && bench_selected(&a, "naive-pool")) {
        naive_round_trips(bench_size(&a, WORK_DEFAULT_TRIPS));
        ran++;
    }
    if (bench_wanted(&a, "idle") && bench_selected(&a, "naive-pool")) {
        naive_idle(bench_size(&a, WORK_DEFAULT_IDLE_MS));
        ran++;
    }
    for (unsigned k = 0; k < WORK_PIPE_KINDS; k++) {
        const work_pipe_kind_t *kind = work_pipe_kind(k);
        char name[32];

        snprintf(name, sizeof(name), "pipeline-%s", kind->name);
        if ((bench_wanted(&a, name) || bench_wanted(&a, "pipeline")) &&
            bench_selected(&a, "thread-per-stage")) {
            hand_pipeline(kind, bench_size(&a, kind->default_n));
            ran++;
        }
    }
    if (ran == 0) {
        bench_fail("nothing to run: no benchmark %s with implementation %s",
                   a.bench != NULL ? a.bench : "(any)",
                   a.only != NULL ? a.only : "(any)");
    }
    return 0;
}
