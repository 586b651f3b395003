/* SPDX-License-Identifier: MIT */
/*
 * The pipeline engine: the source loop, the tasks that carry tokens through
 * the stages, the gates of serial and ordered stages, cancellation and the
 * end of the run.
 */

/*
 * DESIGN
 *
 * Tokens. The source turns each item into a token (sequence number seq,
 * span 1). A pool task (a carrier) takes a token through consecutive
 * stages. Ungated stages (parallel, unordered, unlimited) are called
 * directly. A gated stage (serial, limited or ordered) has a mutex, a
 * count of running calls and a buffer: a carrier that may not enter parks
 * its token in the buffer and ends; the carrier that leaves the stage
 * takes the next runnable token from the buffer (for an ordered stage, the
 * one whose seq is the expected one), keeps running the stage with it, and
 * hands its own token on to a new carrier. Only one stage lock is ever
 * held, never across a stage call.
 *
 * Order. An ordered stage runs tokens in seq order: expected starts at 0
 * and advances by each token's span. Every token, also one a filter
 * emptied, passes every ordered stage (an empty token skips straight to
 * the next ordered stage), so expected never waits for a number that will
 * not come. While token e has not passed an ordered stage, every token
 * after it is still in flight, so the tokens waiting there have distinct
 * seq modulo max_in_flight: the reorder buffer is a ring of that size.
 *
 * Flow control. in_flight counts source items admitted and not finished
 * (sum of spans). The source reserves what is free up to max_in_flight,
 * fills it and stops at the limit: source_running 1 -> 0, then re-reads
 * in_flight (seq_cst both). A token that finishes decrements in_flight and,
 * when that leaves it at or below low_water, reads source_running (seq_cst)
 * and restarts the source if it is stopped (a CAS elects one restarter).
 * Dekker on (source_running, in_flight): the source stopping sees the
 * decrement, or the finisher sees the stop. Restarting at low water rather
 * than at every finish lets the source refill in bursts.
 *
 * Lifetime and the end. The run ends when no token is in flight and the
 * source is done (source_done, set only by the holder of source_running
 * when the source ended, failed or saw the cancellation). The last token
 * to finish decrements in_flight to 0 and then reads source_done; the
 * source sets source_done and then reads in_flight (seq_cst both): one of
 * them sees both conditions (maybe both do: an exchange of `finishing`
 * elects who completes the future). Threads may still be in the
 * pipeline's code afterwards (the one that ended it, a canceller): every
 * thread counts itself in its slot's `inside` while it is (slot counters
 * on cache lines of their own, written by their own thread), and destroy
 * waits for every count to be 0 before it frees anything. A thread enters
 * before it can take part in the run (a carrier before its token is
 * retired, the source before it sets source_done), so destroy, which
 * waits for the end first, sees its count.
 *
 * Cancellation. cancelled is set once (first failure, weft_pipeline_cancel
 * or a cancel of the future). Then every worker's token and the source's
 * token fire (stage calls see weft_cancelled(), their blocking calls
 * return WEFT_ECANCELED), buffers are swept (each parked token's items go
 * to the drop function of the stage they were waiting for), carriers drop
 * their tokens at the next stage boundary, the source stops, and outputs
 * of calls that were running are dropped. A carrier checks cancelled under
 * the stage lock before it parks, the sweep takes the lock after setting
 * it: no token is parked after its stage's sweep.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mutex_impl.h"
#include "pipeline_impl.h"
#include "pool_impl.h"
#include "probe.h"

#define FAIL_MSG_MAX 1024

/* ------------------------------------------------------------------------ */
/* weft_stage_fail and emit                                                  */

static _Thread_local char *stage_msg;

int
weft_stage_fail(int code, const char *fmt, ...)
{
    char buf[FAIL_MSG_MAX];
    int n = 0;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
    }
    if (n < 0) {
        n = 0;
    }
    buf[(size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1] = '\0';
    weft__free(stage_msg);
    stage_msg = weft__strndup(buf, FAIL_MSG_MAX);
    return code < 0 ? code : WEFT_EINVAL;
}

char *
weft__stage_take_msg(void)
{
    char *m = stage_msg;
    stage_msg = NULL;
    return m;
}

struct weft_emit {
    void **v;
    uint32_t n, cap;
    size_t max;
    void *one;
};

int
weft_emit(weft_emit_t *em, void *item)
{
    if (em == NULL) {
        return WEFT_EINVAL;
    }
    if (em->n >= em->max) {
        return WEFT_EOVERFLOW;
    }
    if (em->n == em->cap) {
        uint32_t cap = em->cap < 8 ? 8 : em->cap * 2;
        void **v = weft__malloc((size_t)cap * sizeof(void *));
        if (v == NULL) {
            return WEFT_ENOMEM;
        }
        memcpy(v, em->v, (size_t)em->n * sizeof(void *));
        if (em->v != &em->one) {
            weft__free(em->v);
        }
        em->v = v;
        em->cap = cap;
    }
    em->v[em->n++] = item;
    return WEFT_OK;
}

static void
emit_init(weft_emit_t *em, size_t max)
{
    em->v = &em->one;
    em->n = 0;
    em->cap = 1;
    em->max = max;
    em->one = NULL;
}

/* ------------------------------------------------------------------------ */
/* Tokens                                                                    */

static void
token_set_items(weft__token_t *t, weft_emit_t *em)
{
    if (t->cap > 1) {
        weft__free(t->items);
    }
    if (em->v == &em->one) {
        t->one = em->one;
        t->items = &t->one;
        t->cap = 1;
    } else {
        t->items = em->v;
        t->cap = em->cap;
    }
    t->n = em->n;
}

static void
token_reset(weft__token_t *t)
{
    if (t->cap > 1) {
        weft__free(t->items);
    }
    t->items = &t->one;
    t->cap = 1;
    t->n = 0;
}

/* Give t back: onto the free stack of the calling thread's slot (its own
 * cache line, written by that thread and emptied by the source). */
static void
token_free_push(weft_pipeline_t *p, weft__token_t *t, size_t slot)
{
    token_reset(t);
    _Atomic(weft__token_t *) *stack = weft__pipe_free_stack(p, slot);
    weft__token_t *head = atomic_load_explicit(stack, memory_order_relaxed);
    do {
        t->next = head;
        /* Release: the taker reads t->next after its acquire exchange. */
    } while (!atomic_compare_exchange_weak_explicit(
        stack, &head, t, memory_order_release, memory_order_relaxed));
}

/* A free token, for the thread holding source_running: from its own list,
 * refilled with whole stacks (an exchange each: no ABA). One exists: the
 * source admits only within max_in_flight, and a token is pushed back
 * before its span leaves in_flight. */
static weft__token_t *
token_free_pop(weft_pipeline_t *p)
{
    for (size_t k = 0; p->src_cache == NULL && k < p->nslots; k++) {
        _Atomic(weft__token_t *) *stack = weft__pipe_free_stack(p, k);
        if (atomic_load_explicit(stack, memory_order_relaxed) != NULL) {
            p->src_cache =
                atomic_exchange_explicit(stack, NULL, memory_order_acquire);
        }
    }
    weft__token_t *t = p->src_cache;
    WEFT_ASSERT(t != NULL, "pipeline %s: no free token", p->name);
    p->src_cache = t->next;
    return t;
}

/* ------------------------------------------------------------------------ */
/* Counters                                                                  */

size_t
weft__pipe_slot(const weft_pipeline_t *p)
{
    weft__worker_t *w = weft__pool_self();
    if (w != NULL && (const void *)w->pool == (const void *)p->ex) {
        return w->index;
    }
    return p->workers; /* shared by every other thread */
}

static void
count(const weft_pipeline_t *p, size_t slot, _Atomic uint64_t *c, uint64_t v)
{
    if (v == 0) {
        return;
    }
    if (slot < p->workers) { /* the slot's own worker: no RMW needed */
        atomic_store_explicit(c,
                              atomic_load_explicit(c, memory_order_relaxed) + v,
                              memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(c, v, memory_order_relaxed);
    }
}

#define CELL(p, slot, s) weft__pipe_cell((p), (slot), (s))

/* With collection on, stage calls (and waits in buffers) of one token in
 * SAMPLE are timed, and the times scaled by SAMPLE: two clock reads per
 * call would cost more than a trivial stage. */
#define SAMPLE 8u

static bool
timing(uint64_t seq)
{
    /* COUNT: metrics are on; TASK: a trace or dumps. */
    return WEFT__PROBING(WEFT__PROBE_TASK | WEFT__PROBE_COUNT) &&
           seq % SAMPLE == 0;
}

/* ------------------------------------------------------------------------ */
/* Cancellation                                                              */

static bool
is_cancelled(const weft_pipeline_t *p)
{
    return atomic_load_explicit(&p->cancelled, memory_order_acquire) != 0 ||
           weft__cancel_is_fired(&p->fut->token);
}

/* Drop t's items: they were for stage s (nstages: past the sink, nothing
 * to drop). */
static void
drop_items(weft_pipeline_t *p, weft__token_t *t, unsigned s, size_t slot)
{
    if (s < p->nstages && t->n > 0) {
        const weft__stage_rt_t *st = &p->stages[s];
        if (st->cfg.drop != NULL) {
            for (uint32_t i = 0; i < t->n; i++) {
                st->cfg.drop(st->cfg.ctx, t->items[i]);
            }
        } else if (s == 0 && p->source_drop != NULL) {
            for (uint32_t i = 0; i < t->n; i++) {
                p->source_drop(NULL, t->items[i]);
            }
        }
        count(p, slot, &CELL(p, slot, s + 1)->dropped, t->n);
    }
    t->n = 0;
}

static void retire(weft_pipeline_t *p, weft__token_t *t);

static void
sweep_stage(weft_pipeline_t *p, unsigned s)
{
    weft__stage_rt_t *st = &p->stages[s];
    weft__token_t *list = NULL;
    weft__mutex_lock_nocancel(&st->mu);
    if (st->ring != NULL) {
        for (size_t i = 0; i < p->max_in_flight && st->nring > 0; i++) {
            if (st->ring[i] != NULL) {
                st->ring[i]->next = list;
                list = st->ring[i];
                st->ring[i] = NULL;
                st->nring--;
            }
        }
    }
    while (st->head != NULL) {
        weft__token_t *t = st->head;
        st->head = t->next;
        t->next = list;
        list = t;
    }
    st->tail = NULL;
    st->nfifo = 0;
    atomic_store_explicit(&st->buffered, 0, memory_order_relaxed);
    weft_mutex_unlock(&st->mu);
    size_t slot = weft__pipe_slot(p);
    while (list != NULL) {
        weft__token_t *t = list;
        list = t->next;
        drop_items(p, t, s, slot);
        retire(p, t);
    }
}

static void source_finish(weft_pipeline_t *p);

/* The caller is inside (weft__pipe_enter). */
void
weft__pipe_cancel(weft_pipeline_t *p, bool external, int code,
                  const char *stage, uint64_t seq, const char *msg)
{
    weft__mutex_lock_nocancel(&p->fail_mu);
    if (p->fail_code == 0 &&
        atomic_load_explicit(&p->cancelled, memory_order_relaxed) == 0) {
        if (external) {
            p->fail_external = true; /* not a failure: no code, no message */
        } else {
            char buf[FAIL_MSG_MAX + 128];
            snprintf(buf, sizeof(buf), "%s: stage '%s' item %llu: %s", p->name,
                     stage, (unsigned long long)seq,
                     msg != NULL && msg[0] != '\0' ? msg : weft_strerror(code));
            p->fail_code = code;
            weft__free(p->fail_msg);
            p->fail_msg = weft__strndup(buf, sizeof(buf));
        }
    }
    weft_mutex_unlock(&p->fail_mu);
    if (atomic_exchange_explicit(&p->cancelled, 1, memory_order_seq_cst) != 0) {
        return;
    }
    for (unsigned i = 0; i < p->workers; i++) {
        weft__cancel_fire(&p->worker_tokens[i]);
    }
    weft__cancel_fire(&p->source_token);
    for (unsigned s = 0; s < p->nstages; s++) {
        if (p->stages[s].gated) {
            sweep_stage(p, s);
        }
    }
    uint32_t idle = 0;
    if (atomic_compare_exchange_strong_explicit(&p->source_running, &idle, 1,
                                                memory_order_seq_cst,
                                                memory_order_seq_cst)) {
        source_finish(p);
    }
}

/* Whether the run is cancelled; a cancel of its future cancels it here.
 * The caller is inside. */
static bool
check_cancel(weft_pipeline_t *p)
{
    if (WEFT__LIKELY(!is_cancelled(p))) {
        return false;
    }
    if (atomic_load_explicit(&p->cancelled, memory_order_acquire) == 0) {
        weft__pipe_cancel(p, true, WEFT_ECANCELED, NULL, 0, NULL);
    }
    return true;
}

static void
fail(weft_pipeline_t *p, int code, const char *stage, uint64_t seq)
{
    char *msg = weft__stage_take_msg();
    weft__pipe_cancel(p, false, code, stage, seq, msg);
    weft__free(msg);
}

/* ------------------------------------------------------------------------ */
/* The end                                                                   */

void
weft__pipe_finish(weft_pipeline_t *p)
{
    atomic_store_explicit(&p->ended_at, weft_now(), memory_order_relaxed);
    weft__mutex_lock_nocancel(&p->fail_mu);
    int code = p->fail_code;
    bool external =
        p->fail_external ||
        (code == 0 &&
         (atomic_load_explicit(&p->cancelled, memory_order_relaxed) != 0 ||
          weft__cancel_is_fired(&p->fut->token)));
    char *msg = p->fail_msg != NULL ? weft__strndup(p->fail_msg, 2048) : NULL;
    weft_mutex_unlock(&p->fail_mu);
    weft_future_t *f = weft_future_retain(p->fut);
    /* seq_cst: weft_pipeline_cancel reads it after entering. */
    atomic_store_explicit(&p->state, WEFT__PIPE_FINISHED, memory_order_seq_cst);
    /* From here on p may be freed by a thread that waited for f. */
    if (external) {
        (void)weft__future_set_cancelled(f);
    } else if (code != 0) {
        int rc =
            weft_promise_set_failure(f, code, "%s", msg != NULL ? msg : "");
        WEFT_ASSERT(rc == WEFT_OK, "pipeline end: %d", rc);
    } else {
        int rc = weft_promise_set_result(f, NULL, NULL);
        WEFT_ASSERT(rc == WEFT_OK, "pipeline end: %d", rc);
    }
    weft__free(msg);
    weft_future_release(f);
}

void
weft__pipe_enter(weft_pipeline_t *p, size_t slot)
{
    _Atomic uint32_t *c = &weft__pipe_slot_of(p, slot)->inside;
    if (slot < p->workers) { /* the slot's own thread: no RMW needed */
        atomic_store_explicit(c,
                              atomic_load_explicit(c, memory_order_relaxed) + 1,
                              memory_order_seq_cst);
    } else {
        atomic_fetch_add_explicit(c, 1, memory_order_seq_cst);
    }
}

void
weft__pipe_leave(weft_pipeline_t *p, size_t slot)
{
    _Atomic uint32_t *c = &weft__pipe_slot_of(p, slot)->inside;
    /* Release: the last touch of p; destroy reads it with acquire. */
    if (slot < p->workers) {
        atomic_store_explicit(c,
                              atomic_load_explicit(c, memory_order_relaxed) - 1,
                              memory_order_release);
    } else {
        atomic_fetch_sub_explicit(c, 1, memory_order_release);
    }
}

/* Both end conditions were seen: end the run unless another thread that
 * saw them too got there first. */
static void
try_finish(weft_pipeline_t *p)
{
    if (atomic_exchange_explicit(&p->finishing, 1, memory_order_acq_rel) == 0) {
        weft__pipe_finish(p);
    }
}

/* ------------------------------------------------------------------------ */
/* The source                                                                */

static void source_loop(weft_pipeline_t *p);

static void *
source_task(void *arg)
{
    source_loop(arg);
    return NULL;
}

/* The caller holds source_running: run the source here, or on the lane. */
static int
source_go(weft_pipeline_t *p, bool inline_ok)
{
    if (inline_ok && !p->source_blocking) {
        source_loop(p);
        return WEFT_OK;
    }
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    o.label = "pipeline source";
    o.blocking = p->source_blocking;
    return weft_executor_submit(p->ex, source_task, p, &o, NULL);
}

static void
source_finish(weft_pipeline_t *p)
{
    /* seq_cst store, then seq_cst load: against the last token's
     * decrement of in_flight and its load of source_done. */
    atomic_store_explicit(&p->source_done, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&p->in_flight, memory_order_seq_cst) == 0) {
        try_finish(p);
    }
}

static int spawn_carrier(weft_pipeline_t *p, weft__token_t *t);

/* Items the source turns into tokens before it sends them off together. */
#define SOURCE_BATCH 16u

/* Turn a freshly made item into a token. */
static weft__token_t *
admit(weft_pipeline_t *p, void *item, size_t slot)
{
    weft__token_t *t = token_free_pop(p);
    t->seq = p->next_seq++;
    t->span = 1;
    t->stage = 0;
    t->one = item;
    t->items = &t->one;
    t->cap = 1;
    t->n = 1;
    count(p, slot, &CELL(p, slot, 0)->out, 1);
    return t;
}

/* Send the batch's tokens off in carriers. A worker's own deque runs the
 * newest first, so a worker pushes them newest first: it then carries
 * them in source order (thieves take the oldest pushed, the latest items).
 * Elsewhere carriers queue first in, first out. */
static void
send_batch(weft_pipeline_t *p, weft__token_t **batch, size_t n, size_t slot)
{
    bool newest_first = slot < p->workers;
    for (size_t i = 0; i < n; i++) {
        weft__token_t *t = batch[newest_first ? n - 1 - i : i];
        int rc = spawn_carrier(p, t);
        if (rc != WEFT_OK) {
            weft__pipe_cancel(p, false, rc, "source", t->seq,
                              "cannot queue the item on the pool");
            drop_items(p, t, 0, slot);
            retire(p, t);
        }
    }
}

static void
source_loop(weft_pipeline_t *p)
{
    /* Counted inside: once we give source_running up, another thread may
     * end the run, yet we still read p to decide whether to take it back.
     * The caller holds source_running, so the run has not ended yet. */
    size_t slot = weft__pipe_slot(p);
    weft__pipe_enter(p, slot);
    weft__cancel_t *outer = weft__cancel_enter(&p->source_token);
    /* Batches keep a worker's own deque in source order; a blocking source
     * sends each item at once (it may wait long for the next one, and its
     * carriers queue first in, first out anyway). */
    size_t batch_max = slot < p->workers ? SOURCE_BATCH : 1u;
    size_t n_max = p->max_in_flight;
    for (;;) {
        if (check_cancel(p)) {
            source_finish(p);
            break;
        }
        size_t cur = atomic_load_explicit(&p->in_flight, memory_order_seq_cst);
        if (cur >= n_max) {
            atomic_store_explicit(&p->source_running, 0, memory_order_seq_cst);
            cur = atomic_load_explicit(&p->in_flight, memory_order_seq_cst);
            bool wake =
                cur <= p->low_water ||
                atomic_load_explicit(&p->cancelled, memory_order_seq_cst) != 0;
            uint32_t idle = 0;
            if (!wake || !atomic_compare_exchange_strong_explicit(
                             &p->source_running, &idle, 1, memory_order_seq_cst,
                             memory_order_seq_cst)) {
                break; /* a finisher restarts us (or already did) */
            }
            continue;
        }
        size_t k = n_max - cur; /* only the source raises in_flight */
        atomic_fetch_add_explicit(&p->in_flight, k, memory_order_seq_cst);
        size_t made = 0, nbatch = 0;
        weft__token_t *batch[SOURCE_BATCH];
        bool end = false;
        for (; made < k; made++) {
            if (nbatch == batch_max) {
                send_batch(p, batch, nbatch, slot);
                nbatch = 0;
            }
            if (check_cancel(p)) {
                break;
            }
            void *item = NULL;
            bool timed = timing(p->next_seq);
            weft_time_t t0 = timed ? weft_now() : 0;
            int rc = p->source(p->source_ctx, &item);
            if (timed) {
                count(p, slot, &CELL(p, slot, 0)->busy_ns,
                      SAMPLE * (uint64_t)(weft_now() - t0));
            }
            if (rc == WEFT_OK) {
                batch[nbatch++] = admit(p, item, slot);
                continue;
            }
            end = true;
            if (rc != WEFT_ECLOSED) {
                if (rc >= 0) {
                    rc = weft_stage_fail(WEFT_EINVAL, "the source returned %d",
                                         rc);
                }
                fail(p, rc, "source", p->next_seq);
            }
            break;
        }
        send_batch(p, batch, nbatch, slot);
        if (made < k) {
            size_t unused = k - made;
            atomic_fetch_sub_explicit(&p->in_flight, unused,
                                      memory_order_seq_cst);
        }
        if (end) {
            source_finish(p);
            break;
        }
    }
    weft__cancel_enter(outer);
    weft__pipe_leave(p, slot); /* the last use of p */
}

/* A token finished (or was dropped): recycle it, restart the source if it
 * waits for room, end the run if this was the last one. The caller is
 * inside. */
static void
retire(weft_pipeline_t *p, weft__token_t *t)
{
    size_t span = t->span;
    token_free_push(p, t, weft__pipe_slot(p));
    size_t left =
        atomic_fetch_sub_explicit(&p->in_flight, span, memory_order_seq_cst) -
        span;
    if (left <= p->low_water &&
        atomic_load_explicit(&p->source_running, memory_order_seq_cst) == 0 &&
        atomic_load_explicit(&p->source_done, memory_order_acquire) == 0) {
        uint32_t idle = 0;
        if (atomic_compare_exchange_strong_explicit(&p->source_running, &idle,
                                                    1, memory_order_seq_cst,
                                                    memory_order_seq_cst)) {
            int rc = source_go(p, true);
            if (rc != WEFT_OK) {
                weft__pipe_cancel(p, false, rc, "source", p->next_seq,
                                  "cannot queue the source on the pool");
                source_finish(p);
            }
            /* `left` is stale now (the source may have admitted more).
             * The source was not done when we took it over (only its
             * holder sets source_done), and whoever set it since checked
             * in_flight itself (source_finish). */
            return;
        }
    }
    if (left == 0 &&
        atomic_load_explicit(&p->source_done, memory_order_seq_cst) != 0) {
        try_finish(p);
    }
}

/* ------------------------------------------------------------------------ */
/* Gates of serial, limited and ordered stages                               */

typedef enum { GATE_RUN, GATE_PARKED, GATE_DROP } gate_t;

static void
fifo_push(weft__stage_rt_t *st, weft__token_t *t)
{
    t->next = NULL;
    if (st->tail != NULL) {
        st->tail->next = t;
    } else {
        st->head = t;
    }
    st->tail = t;
    st->nfifo++;
}

static weft__token_t *
fifo_pop(weft__stage_rt_t *st)
{
    weft__token_t *t = st->head;
    if (t != NULL) {
        st->head = t->next;
        if (st->head == NULL) {
            st->tail = NULL;
        }
        st->nfifo--;
    }
    return t;
}

static gate_t
gate_enter(weft_pipeline_t *p, weft__stage_rt_t *st, weft__token_t *t)
{
    weft__mutex_lock_nocancel(&st->mu);
    if (atomic_load_explicit(&p->cancelled, memory_order_relaxed) != 0) {
        weft_mutex_unlock(&st->mu);
        return GATE_DROP;
    }
    bool run = st->cfg.ordered ? t->seq == st->expected && st->running == 0
                               : st->running < st->limit;
    if (run) {
        st->running++;
        atomic_store_explicit(&st->running_view, st->running,
                              memory_order_relaxed);
        weft_mutex_unlock(&st->mu);
        return GATE_RUN;
    }
    t->parked_at = timing(t->seq) ? weft_now() : 0;
    if (st->cfg.ordered) {
        size_t i = (size_t)(t->seq % p->max_in_flight);
        WEFT_ASSERT(st->ring[i] == NULL, "pipeline %s: reorder slot taken",
                    p->name);
        st->ring[i] = t;
        st->nring++;
    } else {
        fifo_push(st, t);
    }
    atomic_fetch_add_explicit(&st->buffered, 1, memory_order_relaxed);
    weft_mutex_unlock(&st->mu);
    return GATE_PARKED;
}

/* Append u's items to m (a merge of a batch stage): false when memory runs
 * out (then nothing changed). */
static bool
token_merge(weft__token_t *m, const weft__token_t *u)
{
    uint32_t n = m->n + u->n;
    if (n > m->cap) {
        uint32_t cap = m->cap;
        while (cap < n) {
            cap = cap < 8 ? 8 : cap * 2;
        }
        void **v = weft__malloc((size_t)cap * sizeof(void *));
        if (v == NULL) {
            return false;
        }
        memcpy(v, m->items, (size_t)m->n * sizeof(void *));
        if (m->cap > 1) {
            weft__free(m->items);
        }
        m->items = v;
        m->cap = cap;
    }
    memcpy(m->items + m->n, u->items, (size_t)u->n * sizeof(void *));
    m->n = n;
    m->span += u->span;
    return true;
}

/* Under st->mu: the next runnable waiting token, or NULL. */
static weft__token_t *
take_next(weft_pipeline_t *p, weft__stage_rt_t *st)
{
    if (!st->cfg.ordered) {
        return fifo_pop(st);
    }
    if (st->nring == 0) {
        return NULL;
    }
    size_t i = (size_t)(st->expected % p->max_in_flight);
    weft__token_t *t = st->ring[i];
    if (t == NULL || t->seq != st->expected) {
        return NULL;
    }
    st->ring[i] = NULL;
    st->nring--;
    return t;
}

/* Under st->mu, for a merging batch stage: fold waiting tokens into m
 * while its items stay within batch_max. Returns the tokens folded in (to
 * recycle outside the lock). */
static weft__token_t *
gather(weft_pipeline_t *p, weft__stage_rt_t *st, weft__token_t *m)
{
    weft__token_t *spent = NULL;
    for (;;) {
        weft__token_t *u;
        if (st->cfg.ordered) {
            uint64_t want = m->seq + m->span;
            size_t i = (size_t)(want % p->max_in_flight);
            u = st->ring[i];
            if (u == NULL || u->seq != want ||
                m->n + u->n > st->cfg.batch_max) {
                break;
            }
            if (!token_merge(m, u)) {
                break;
            }
            st->ring[i] = NULL;
            st->nring--;
        } else {
            u = st->head;
            if (u == NULL || m->n + u->n > st->cfg.batch_max) {
                break;
            }
            if (!token_merge(m, u)) {
                break;
            }
            (void)fifo_pop(st);
        }
        atomic_fetch_sub_explicit(&st->buffered, 1, memory_order_relaxed);
        u->span = 0; /* its sequence numbers now belong to m */
        u->next = spent;
        spent = u;
    }
    return spent;
}

/* t finished its call of st: the next waiting token to run (its running
 * slot taken), or NULL. */
static weft__token_t *
gate_leave(weft_pipeline_t *p, weft__stage_rt_t *st, const weft__token_t *t,
           size_t slot, unsigned s)
{
    weft__token_t *next = NULL, *spent = NULL;
    weft__mutex_lock_nocancel(&st->mu);
    st->running--;
    if (st->cfg.ordered) {
        st->expected = t->seq + t->span;
    }
    if (atomic_load_explicit(&p->cancelled, memory_order_relaxed) == 0) {
        next = take_next(p, st);
        if (next != NULL) {
            atomic_fetch_sub_explicit(&st->buffered, 1, memory_order_relaxed);
            if (st->merge) {
                spent = gather(p, st, next);
            }
            st->running++;
        }
    }
    atomic_store_explicit(&st->running_view, st->running, memory_order_relaxed);
    weft_mutex_unlock(&st->mu);
    while (spent != NULL) {
        weft__token_t *u = spent;
        spent = u->next;
        u->n = 0;
        token_free_push(p, u, slot); /* span 0: no flow or lifetime change */
    }
    if (next != NULL && next->parked_at != 0) {
        weft_time_t now = weft_now();
        count(p, slot, &CELL(p, slot, s + 1)->wait_ns,
              now > next->parked_at ? SAMPLE * (uint64_t)(now - next->parked_at)
                                    : 0);
    }
    return next;
}

/* ------------------------------------------------------------------------ */
/* Calling a stage                                                           */

/* Call stage s on t's items, leaving its outputs in t. Returns WEFT_OK or
 * the failure code (already recorded; t is then empty). */
static int
call_stage(weft_pipeline_t *p, unsigned s, weft__token_t *t, size_t slot)
{
    weft__stage_rt_t *st = &p->stages[s];
    const weft_stage_t *c = &st->cfg;
    bool sink = s + 1 == p->nstages;
    bool timed = timing(t->seq);
    bool slice = WEFT__PROBING(WEFT__PROBE_SLICE);
    weft_time_t t0 = timed ? weft_now() : 0;
    uint64_t id = ((uint64_t)(s + 1) << 48) ^ t->seq;
    if (slice) {
        /* Not sampled: only the sinks that want every task see slices. */
        weft__probe_task_begin(p, id, st->name, 0, (int)slot, false);
    }
    uint32_t n_in = t->n;
    uint64_t filtered = 0;
    int rc = WEFT_OK;
    uint32_t at = 0; /* input items consumed */
    if (st->kind == WEFT__STAGE_MAP) {
        uint32_t k = 0;
        for (; at < n_in; at++) {
            void *out = NULL;
            rc = c->fn(c->ctx, t->items[at], &out);
            if (rc == WEFT_OK) {
                if (!sink) {
                    t->items[k++] = out;
                }
            } else if (rc == WEFT_PIPELINE_DROP) {
                filtered++;
                rc = WEFT_OK;
            } else {
                if (rc > 0) {
                    rc = weft_stage_fail(WEFT_EINVAL, "the stage returned %d",
                                         rc);
                }
                at++; /* the failing item is the stage's */
                break;
            }
        }
        /* On failure: items after the failing one go to this stage's
         * drop, outputs made so far to the next stage's. */
        if (rc != WEFT_OK) {
            for (uint32_t j = at; j < n_in; j++) {
                if (c->drop != NULL) {
                    c->drop(c->ctx, t->items[j]);
                }
            }
            count(p, slot, &CELL(p, slot, s + 1)->dropped, n_in - at);
        }
        t->n = k;
    } else {
        weft_emit_t em;
        emit_init(&em, p->emit_max);
        if (st->kind == WEFT__STAGE_FLAT) {
            for (; at < n_in && rc == WEFT_OK; at++) {
                rc = c->flat(c->ctx, t->items[at], &em);
            }
            if (rc != WEFT_OK) {
                for (uint32_t j = at; j < n_in; j++) {
                    if (c->drop != NULL) {
                        c->drop(c->ctx, t->items[j]);
                    }
                }
                count(p, slot, &CELL(p, slot, s + 1)->dropped, n_in - at);
            }
        } else {
            /* A token may hold more than batch_max items (a flat stage
             * before, a merge): calls of at most batch_max each. */
            for (; at < n_in && rc == WEFT_OK;) {
                uint32_t take = n_in - at;
                if (take > c->batch_max) {
                    take = (uint32_t)c->batch_max;
                }
                rc = c->batch_fn(c->ctx, t->items + at, take, &em);
                at += take;
            }
            if (rc != WEFT_OK) {
                for (uint32_t j = at; j < n_in; j++) {
                    if (c->drop != NULL) {
                        c->drop(c->ctx, t->items[j]);
                    }
                }
                count(p, slot, &CELL(p, slot, s + 1)->dropped, n_in - at);
            }
        }
        if (rc > 0) {
            rc = weft_stage_fail(WEFT_EINVAL, "the stage returned %d", rc);
        }
        token_set_items(t, &em);
        if (sink) {
            t->n = 0;
        }
    }
    if (timed) {
        count(p, slot, &CELL(p, slot, s + 1)->busy_ns,
              SAMPLE * (uint64_t)(weft_now() - t0));
    }
    if (slice) {
        weft__probe_task_end(p, id, rc, (int)slot, false);
    }
    weft__stage_cell_t *cell = CELL(p, slot, s + 1);
    count(p, slot, &cell->in, n_in);
    count(p, slot, &cell->filtered, filtered);
    if (rc != WEFT_OK) {
        drop_items(p, t, s + 1, slot);
        fail(p, rc, st->name, t->seq);
        return rc;
    }
    count(p, slot, &cell->out, sink ? 0 : t->n);
    return WEFT_OK;
}

/* ------------------------------------------------------------------------ */
/* Carriers                                                                  */

static void
carry(weft_pipeline_t *p, weft__token_t *t)
{
    size_t slot = weft__pipe_slot(p);
    weft__pipe_enter(p, slot);
    weft__cancel_t *outer =
        weft__cancel_enter(slot < p->workers ? &p->worker_tokens[slot] : NULL);
    bool admitted = false;
    for (;;) {
        unsigned s = t->stage;
        if (s < p->nstages && check_cancel(p)) {
            if (admitted) { /* give the running slot back */
                (void)gate_leave(p, &p->stages[s], t, slot, s);
            }
            drop_items(p, t, s, slot);
            s = t->stage = p->nstages;
        }
        if (s >= p->nstages) {
            retire(p, t);
            break;
        }
        weft__stage_rt_t *st = &p->stages[s];
        if (t->n == 0 && !admitted) {
            /* Emptied by a filter: only ordered stages must see it. */
            unsigned to = s;
            while (to < p->nstages && !p->stages[to].cfg.ordered) {
                to++;
            }
            if (to != s) {
                t->stage = to;
                continue;
            }
        }
        if (st->gated && !admitted) {
            gate_t g = gate_enter(p, st, t);
            if (g == GATE_PARKED) {
                break; /* the token is the stage's now */
            }
            if (g == GATE_DROP) {
                drop_items(p, t, s, slot);
                t->stage = p->nstages;
                continue;
            }
        }
        admitted = false;
        if (t->n > 0) {
            (void)call_stage(p, s, t, slot);
        }
        weft__token_t *next = st->gated ? gate_leave(p, st, t, slot, s) : NULL;
        t->stage = s + 1;
        if (next == NULL) {
            continue;
        }
        /* Keep this thread on the serial stage with the next token; the
         * finished one goes on in a new carrier (or retires here). */
        if (t->stage >= p->nstages || check_cancel(p)) {
            drop_items(p, t, t->stage, slot);
            retire(p, t);
        } else {
            int rc = spawn_carrier(p, t);
            if (rc != WEFT_OK) {
                weft__pipe_cancel(p, false, rc, st->name, t->seq,
                                  "cannot queue the item on the pool");
                drop_items(p, t, t->stage, slot);
                retire(p, t);
            }
        }
        t = next;
        admitted = true;
    }
    weft__cancel_enter(outer);
    weft__pipe_leave(p, slot);
}

static void *
carrier_task(void *arg)
{
    weft__token_t *t = arg;
    carry(t->pipe, t);
    return NULL;
}

static int
spawn_carrier(weft_pipeline_t *p, weft__token_t *t)
{
    t->pipe = p;
    return weft_executor_submit(p->ex, carrier_task, t, NULL, NULL);
}

/* ------------------------------------------------------------------------ */
/* Start                                                                     */

int
weft__pipe_launch(weft_pipeline_t *p)
{
    atomic_store_explicit(&p->source_running, 1, memory_order_relaxed);
    return source_go(p, false);
}
