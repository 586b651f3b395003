/* SPDX-License-Identifier: MIT */
/*
 * Stress for futures (RELIABILITY R5): completion racing callback
 * registration (each callback exactly once, the value visible in it,
 * registration order kept), cancel racing claim, start and finish (exactly
 * one wins), many waiters woken with and without injected spurious
 * wake-ups, wait_many racing completions, and completion queues fed by
 * many producers (every future handed over exactly once; afterwards the
 * queue holds no reference and no memory: an allocator hook counts live
 * blocks). Worker threads count violations; the main thread asserts.
 */
#include "testutil.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "future_impl.h"

/* ------------------------------------------------------------------------ */
/* Allocation counting                                                       */

static _Atomic long live_blocks;

static void *
count_malloc(void *ctx, size_t size)
{
    (void)ctx;
    void *p = malloc(size);
    if (p != NULL) {
        atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    }
    return p;
}

static void *
count_realloc(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    void *p = realloc(ptr, size);
    if (p != NULL && ptr == NULL) {
        atomic_fetch_add_explicit(&live_blocks, 1, memory_order_relaxed);
    }
    return p;
}

static void
count_free(void *ctx, void *ptr)
{
    (void)ctx;
    if (ptr != NULL) {
        atomic_fetch_sub_explicit(&live_blocks, 1, memory_order_relaxed);
    }
    free(ptr);
}

static long
live(void)
{
    return atomic_load(&live_blocks);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

/* Violations seen off the main thread; asserted zero by the main thread. */
static _Atomic long errors;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            atomic_fetch_add(&errors, 1);                                      \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
        }                                                                      \
    } while (0)

/* Burn a random short time, so threads meet in different phases. */
static void
jitter(uint64_t *rng)
{
    uint64_t r = wt_rand(rng);
    unsigned spins = (r & 3) == 0 ? (unsigned)(r >> 8) % 512 : 0;
    for (unsigned i = 0; i < spins; i++) {
        weft__cpu_relax();
    }
}

/* Spin until *p > i; past a short spin, yield at every turn (threads
 * outnumber cores: the awaited one may be waiting for a CPU). */
static void
await_progress(_Atomic size_t *p, size_t i)
{
    for (unsigned n = 0; atomic_load(p) <= i; n++) {
        if (n < 64) {
            weft__cpu_relax();
        } else {
            weft_thread_yield();
        }
    }
}

/*
 * Two threads meet on item i: each announces it reached i and waits for the
 * other, then each burns a random time and acts, so either may act first.
 */
struct meet {
    _Atomic size_t at[2];
};

static void
meet(struct meet *m, int side, size_t i, uint64_t *rng)
{
    atomic_store(&m->at[side], i + 1);
    await_progress(&m->at[!side], i);
    jitter(rng);
}

static weft_future_t *
promise(void)
{
    weft_future_t *f = NULL;
    assert_int_equal(weft_promise_create(&f), WEFT_OK);
    return f;
}

static void
assert_no_errors(void)
{
    assert_int_equal(atomic_load(&errors), 0);
}

/* ------------------------------------------------------------------------ */
/* Completion racing callback registration                                   */

enum { REG = 2, PER = 2 }; /* registrant threads, callbacks each */

struct cb_rec {
    _Atomic int calls;
    _Atomic uint32_t thread; /* who ran it */
    _Atomic int seq;         /* its rank among f's callbacks */
};

struct reg_race {
    size_t n;
    weft_future_t **fs;
    int *values;                /* fs[i] finishes with &values[i] */
    struct cb_rec *rec;         /* n * REG * PER */
    _Atomic int *ran;           /* per future: callbacks run so far */
    struct meet meet;           /* registrant 0 and the completer */
    _Atomic uint32_t completer; /* the completer's weft id */
    uint64_t seed;
};

struct reg_arg {
    struct reg_race *r;
    size_t who; /* registrant index */
};

struct cb_ctx {
    struct reg_race *r;
    size_t i;
    size_t slot;
};

static void
race_cb(weft_future_t *f, void *ctx)
{
    struct cb_ctx *c = ctx;
    struct reg_race *r = c->r;
    struct cb_rec *rec = &r->rec[c->slot];
    CHECK(weft_future_done(f));
    void *v = NULL;
    CHECK(weft_future_result_until(f, &v, 0) == WEFT_OK);
    CHECK(v == &r->values[c->i]);
    CHECK(*(int *)v == (int)c->i);
    atomic_store(&rec->seq, atomic_fetch_add(&r->ran[c->i], 1));
    atomic_store(&rec->thread, weft__self_id());
    atomic_fetch_add(&rec->calls, 1);
    free(c);
}

static void *
registrant_main(void *arg)
{
    struct reg_arg *a = arg;
    struct reg_race *r = a->r;
    uint64_t rng = r->seed + a->who;
    for (size_t i = 0; i < r->n; i++) {
        if (a->who == 0) {
            meet(&r->meet, 0, i, &rng);
        }
        for (size_t k = 0; k < PER; k++) {
            struct cb_ctx *c = malloc(sizeof(*c));
            CHECK(c != NULL);
            c->r = r;
            c->i = i;
            c->slot = (i * REG + a->who) * PER + k;
            CHECK(weft_future_on_done(r->fs[i], race_cb, c) == WEFT_OK);
        }
        if (a->who != 0) {
            jitter(&rng);
        }
    }
    return NULL;
}

static void *
completer_main(void *arg)
{
    struct reg_race *r = arg;
    atomic_store(&r->completer, weft__self_id());
    uint64_t rng = r->seed ^ 0x5555;
    for (size_t i = 0; i < r->n; i++) {
        /* Meet registrant 0 on item i, then race it. */
        meet(&r->meet, 1, i, &rng);
        CHECK(weft_promise_set_result(r->fs[i], &r->values[i], NULL) ==
              WEFT_OK);
    }
    return NULL;
}

/* One batch; adds to the counts of callbacks run by the completer and by
 * the registrants (both must happen for the race to be exercised). */
static void
reg_batch(struct reg_race *r, size_t *by_completer, size_t *by_registrant)
{
    atomic_store(&r->meet.at[0], 0);
    atomic_store(&r->meet.at[1], 0);
    for (size_t i = 0; i < r->n; i++) {
        r->fs[i] = promise();
        r->values[i] = (int)i;
        atomic_store(&r->ran[i], 0);
    }
    memset(r->rec, 0, r->n * REG * PER * sizeof(*r->rec));
    struct reg_arg args[REG];
    weft_thread_t *t[REG + 1];
    for (size_t k = 0; k < REG; k++) {
        args[k] = (struct reg_arg){r, k};
        t[k] = wt_start(registrant_main, &args[k]);
    }
    t[REG] = wt_start(completer_main, r);
    for (size_t k = 0; k <= REG; k++) {
        wt_join(t[k]);
    }
    uint32_t comp = atomic_load(&r->completer);
    for (size_t i = 0; i < r->n; i++) {
        assert_int_equal(atomic_load(&r->ran[i]), REG * PER);
        for (size_t w = 0; w < REG; w++) {
            struct cb_rec *rec = &r->rec[(i * REG + w) * PER];
            for (size_t k = 0; k < PER; k++) {
                assert_int_equal(atomic_load(&rec[k].calls), 1);
                if (atomic_load(&rec[k].thread) == comp) {
                    (*by_completer)++;
                } else {
                    (*by_registrant)++;
                }
            }
            /* Both registered before the finish: run in order. */
            if (atomic_load(&rec[0].thread) == comp &&
                atomic_load(&rec[1].thread) == comp) {
                assert_true(atomic_load(&rec[0].seq) <
                            atomic_load(&rec[1].seq));
            }
        }
        weft_future_release(r->fs[i]);
    }
}

static void
test_complete_vs_on_done(void **state)
{
    (void)state;
    long base = live();
    size_t total = wt_size(200000, 10000000);
    struct reg_race r;
    memset(&r, 0, sizeof(r));
    r.n = total < 2000 ? total : 2000;
    r.fs = calloc(r.n, sizeof(*r.fs));
    r.values = calloc(r.n, sizeof(*r.values));
    r.rec = calloc(r.n * REG * PER, sizeof(*r.rec));
    r.ran = calloc(r.n, sizeof(*r.ran));
    assert_true(r.fs && r.values && r.rec && r.ran);
    size_t by_completer = 0;
    size_t by_registrant = 0;
    weft_time_t t0 = weft_now();
    uint64_t seed = wt_seed();
    for (size_t done = 0; done < total; done += r.n) {
        r.seed = seed + done;
        reg_batch(&r, &by_completer, &by_registrant);
        assert_no_errors();
    }
    printf("complete vs on_done: %zu futures x %d callbacks, %zu run by the "
           "finisher, %zu at registration, %.2f s\n",
           total, REG * PER, by_completer, by_registrant,
           (double)(weft_now() - t0) / 1e9);
    if (total >= 10000) {
        assert_true(by_completer > 0);
        assert_true(by_registrant > 0);
    }
    free(r.fs);
    free(r.values);
    free(r.rec);
    free(r.ran);
    assert_int_equal(live(), base);
}

/* ------------------------------------------------------------------------ */
/* Cancel racing claim, promise start, and finish                            */

enum race_kind { CLAIM, START, FINISH };

struct cancel_race {
    size_t n;
    enum race_kind kind;
    weft_future_t **fs;
    bool *cancel_won;
    int *other_rc; /* claim/finish: 1 won, 0 lost; start: its code */
    _Atomic int *cb_calls;
    struct meet meet;
    uint64_t seed;
};

static void
count_cb(weft_future_t *f, void *ctx)
{
    (void)f;
    atomic_fetch_add((_Atomic int *)ctx, 1);
}

static void *
canceller_main(void *arg)
{
    struct cancel_race *c = arg;
    uint64_t rng = c->seed;
    for (size_t i = 0; i < c->n; i++) {
        meet(&c->meet, 0, i, &rng);
        c->cancel_won[i] = c->kind == FINISH
                               ? weft__future_set_cancelled(c->fs[i])
                               : weft_future_cancel(c->fs[i]);
    }
    return NULL;
}

static void *
claimer_main(void *arg)
{
    struct cancel_race *c = arg;
    uint64_t rng = c->seed ^ 0xabcdef;
    for (size_t i = 0; i < c->n; i++) {
        meet(&c->meet, 1, i, &rng);
        weft_future_t *f = c->fs[i];
        switch (c->kind) {
        case CLAIM:
            c->other_rc[i] = weft__future_claim(f);
            break;
        case START:
            c->other_rc[i] = weft_promise_start(f);
            break;
        default:
            c->other_rc[i] = weft__future_finish(f, WEFT_OK, c, NULL, NULL);
            break;
        }
    }
    return NULL;
}

static void
check_cancel_item(struct cancel_race *c, size_t i)
{
    weft_future_t *f = c->fs[i];
    bool cancel_won = c->cancel_won[i];
    bool fired = weft__cancel_is_fired(&f->token);
    weft_future_state_t s = weft_future_state(f);
    switch (c->kind) {
    case CLAIM:
    case START: {
        bool other_won =
            c->kind == CLAIM ? c->other_rc[i] == 1 : c->other_rc[i] == WEFT_OK;
        /* Exactly one wins. */
        assert_true(cancel_won != other_won);
        if (cancel_won) {
            assert_int_equal(s, WEFT_FUTURE_CANCELLED);
            assert_false(fired);
            assert_int_equal(atomic_load(&c->cb_calls[i]), 1);
            if (c->kind == START) {
                assert_int_equal(c->other_rc[i], WEFT_ECANCELED);
            }
        } else {
            /* The cancel found it running: it fired the token. */
            assert_int_equal(s, WEFT_FUTURE_RUNNING);
            assert_true(fired);
            assert_int_equal(atomic_load(&c->cb_calls[i]), 0);
            assert_true(weft__future_finish(f, WEFT_OK, NULL, NULL, NULL));
        }
        break;
    }
    default:
        assert_true(cancel_won != (c->other_rc[i] == 1));
        assert_int_equal(s,
                         cancel_won ? WEFT_FUTURE_CANCELLED : WEFT_FUTURE_DONE);
        assert_int_equal(atomic_load(&c->cb_calls[i]), 1);
        break;
    }
}

static void
cancel_batch(struct cancel_race *c, size_t *cancels)
{
    atomic_store(&c->meet.at[0], 0);
    atomic_store(&c->meet.at[1], 0);
    for (size_t i = 0; i < c->n; i++) {
        c->fs[i] = weft__future_alloc(1);
        assert_non_null(c->fs[i]);
        if (c->kind == FINISH) {
            assert_true(weft__future_claim(c->fs[i]));
        }
        atomic_store(&c->cb_calls[i], 0);
        assert_int_equal(
            weft_future_on_done(c->fs[i], count_cb, &c->cb_calls[i]), WEFT_OK);
        c->cancel_won[i] = false;
        c->other_rc[i] = -100;
    }
    weft_thread_t *a = wt_start(canceller_main, c);
    weft_thread_t *b = wt_start(claimer_main, c);
    wt_join(a);
    wt_join(b);
    for (size_t i = 0; i < c->n; i++) {
        check_cancel_item(c, i);
        *cancels += c->cancel_won[i];
        weft_future_release(c->fs[i]);
    }
}

static void
run_cancel_race(enum race_kind kind, const char *name)
{
    long base = live();
    size_t total = wt_size(100000, 10000000);
    struct cancel_race c;
    memset(&c, 0, sizeof(c));
    c.kind = kind;
    c.n = total < 2000 ? total : 2000;
    c.fs = calloc(c.n, sizeof(*c.fs));
    c.cancel_won = calloc(c.n, sizeof(*c.cancel_won));
    c.other_rc = calloc(c.n, sizeof(*c.other_rc));
    c.cb_calls = calloc(c.n, sizeof(*c.cb_calls));
    assert_true(c.fs && c.cancel_won && c.other_rc && c.cb_calls);
    size_t cancels = 0;
    weft_time_t t0 = weft_now();
    for (size_t done = 0; done < total; done += c.n) {
        c.seed = wt_seed() + done;
        cancel_batch(&c, &cancels);
    }
    printf("cancel vs %s: %zu races, cancel won %zu, %.2f s\n", name, total,
           cancels, (double)(weft_now() - t0) / 1e9);
    free(c.fs);
    free(c.cancel_won);
    free(c.other_rc);
    free(c.cb_calls);
    assert_int_equal(live(), base);
}

static void
test_cancel_vs_claim(void **state)
{
    (void)state;
    run_cancel_race(CLAIM, "claim");
}

static void
test_cancel_vs_start(void **state)
{
    (void)state;
    run_cancel_race(START, "promise start");
}

static void
test_cancel_vs_finish(void **state)
{
    (void)state;
    run_cancel_race(FINISH, "finish");
}

/* ------------------------------------------------------------------------ */
/* Many waiters                                                              */

enum { WAITERS = 6 };

struct wake_race {
    size_t rounds;
    weft_future_t **fs;
    weft_future_t *never; /* a future that never finishes */
    int *values;
};

struct wake_arg {
    struct wake_race *w;
    int how;
    size_t seen; /* rounds whose value this waiter saw */
};

static void *
many_waiter_main(void *arg)
{
    struct wake_arg *a = arg;
    struct wake_race *w = a->w;
    for (size_t r = 0; r < w->rounds; r++) {
        weft_future_t *f = w->fs[r];
        void *v = NULL;
        int rc;
        switch (((size_t)a->how + r) % 4) {
        case 0:
            rc = weft_future_wait(f);
            if (rc == WEFT_OK) {
                rc = weft_future_result_until(f, &v, 0);
            }
            break;
        case 1:
            rc = weft_future_result(f, &v);
            break;
        case 2:
            rc = weft_future_result_until(f, &v,
                                          weft_deadline_in(60 * WEFT_SEC));
            break;
        default: {
            weft_future_t *pair[2] = {w->never, f};
            size_t idx = 9;
            rc = weft_future_wait_many(pair, 2, WEFT_FIRST_COMPLETED,
                                       WEFT_FOREVER, &idx);
            CHECK(idx == 1);
            if (rc == WEFT_OK) {
                rc = weft_future_result_until(f, &v, 0);
            }
            break;
        }
        }
        CHECK(rc == WEFT_OK);
        CHECK(v == &w->values[r]);
        a->seen += v == &w->values[r];
    }
    return NULL;
}

static void
run_many_waiters(unsigned spurious)
{
    long base = live();
    struct wake_race w;
    w.rounds = wt_size(20000, 1000000);
    w.fs = calloc(w.rounds, sizeof(*w.fs));
    w.values = calloc(w.rounds, sizeof(*w.values));
    assert_true(w.fs && w.values);
    w.never = promise();
    for (size_t r = 0; r < w.rounds; r++) {
        w.fs[r] = promise();
    }
    weft__test_spurious_wakeups(spurious);
    uint64_t rng = wt_seed();
    struct wake_arg args[WAITERS];
    weft_thread_t *t[WAITERS];
    weft_time_t t0 = weft_now();
    for (int i = 0; i < WAITERS; i++) {
        args[i] = (struct wake_arg){&w, i, 0};
        t[i] = wt_start(many_waiter_main, &args[i]);
    }
    size_t parked = 0;
    for (size_t r = 0; r < w.rounds; r++) {
        jitter(&rng);
        /* Rounds where a waiter got as far as parking. */
        parked += (atomic_load(&w.fs[r]->wake) & WEFT__WAKE_WAITERS) != 0;
        assert_int_equal(weft_promise_set_result(w.fs[r], &w.values[r], NULL),
                         WEFT_OK);
    }
    for (int i = 0; i < WAITERS; i++) {
        wt_join(t[i]);
        assert_int_equal(args[i].seen, w.rounds);
    }
    weft__test_spurious_wakeups(0);
    assert_no_errors();
    printf("many waiters%s: %d waiters x %zu futures, %zu with a parked "
           "waiter, %.2f s\n",
           spurious ? " (spurious wake-ups)" : "", WAITERS, w.rounds, parked,
           (double)(weft_now() - t0) / 1e9);
    if (w.rounds >= 1000) {
        assert_true(parked > 0);
    }
    for (size_t r = 0; r < w.rounds; r++) {
        weft_future_release(w.fs[r]);
    }
    /* The wait_many nodes left on the never-finishing future go with it. */
    weft_future_release(w.never);
    free(w.fs);
    free(w.values);
    assert_int_equal(live(), base);
}

static void
test_many_waiters(void **state)
{
    (void)state;
    run_many_waiters(0);
}

static void
test_many_waiters_spurious(void **state)
{
    (void)state;
    run_many_waiters(3);
}

/* ------------------------------------------------------------------------ */
/* wait_many racing completions, with deadlines                              */

enum { GROUP = 4 };

struct wm_race {
    size_t rounds;
    weft_future_t *(*groups)[GROUP];
    _Atomic size_t next; /* rounds the completer has reached */
    uint64_t seed;
};

static void *
wm_completer_main(void *arg)
{
    struct wm_race *m = arg;
    uint64_t rng = m->seed;
    for (size_t r = 0; r < m->rounds; r++) {
        atomic_store(&m->next, r + 1);
        for (size_t k = 0; k < GROUP; k++) {
            jitter(&rng);
            weft_future_t *f = m->groups[r][k];
            if (wt_rand(&rng) % 8 == 0) {
                CHECK(weft_promise_set_failure(f, WEFT_EIO, "r%zu", r) ==
                      WEFT_OK);
            } else {
                CHECK(weft_promise_set_result(f, NULL, NULL) == WEFT_OK);
            }
        }
    }
    return NULL;
}

static void
check_wait_many(weft_future_t **g, weft_wait_mode_t mode, int rc, size_t idx)
{
    if (rc == WEFT_ETIMEDOUT) {
        return;
    }
    CHECK(rc == WEFT_OK);
    CHECK(idx < GROUP);
    if (rc != WEFT_OK || idx >= GROUP) {
        return;
    }
    CHECK(weft_future_done(g[idx]));
    if (mode == WEFT_ALL_COMPLETED) {
        for (size_t k = 0; k < GROUP; k++) {
            CHECK(weft_future_done(g[k]));
        }
    }
    if (mode == WEFT_FIRST_EXCEPTION &&
        weft_future_state(g[idx]) != WEFT_FUTURE_FAILED) {
        /* No failure reported: then all finished. */
        for (size_t k = 0; k < GROUP; k++) {
            CHECK(weft_future_done(g[k]));
        }
    }
}

static void *
wm_waiter_main(void *arg)
{
    struct wm_race *m = arg;
    uint64_t rng = m->seed ^ 0x77;
    for (size_t r = 0; r < m->rounds; r++) {
        await_progress(&m->next, r);
        weft_wait_mode_t mode = (weft_wait_mode_t)(wt_rand(&rng) % 3);
        weft_time_t dl =
            weft_deadline_in((weft_time_t)(wt_rand(&rng) % 20) * WEFT_USEC);
        size_t idx = 99;
        int rc = weft_future_wait_many(m->groups[r], GROUP, mode, dl, &idx);
        check_wait_many(m->groups[r], mode, rc, idx);
    }
    return NULL;
}

static void
test_wait_many_races(void **state)
{
    (void)state;
    long base = live();
    struct wm_race m;
    m.rounds = wt_size(20000, 1000000);
    m.groups = calloc(m.rounds, sizeof(*m.groups));
    assert_non_null(m.groups);
    for (size_t r = 0; r < m.rounds; r++) {
        for (size_t k = 0; k < GROUP; k++) {
            m.groups[r][k] = promise();
        }
    }
    atomic_store(&m.next, 0);
    m.seed = wt_seed();
    weft_time_t t0 = weft_now();
    weft_thread_t *a = wt_start(wm_completer_main, &m);
    weft_thread_t *b = wt_start(wm_waiter_main, &m);
    wt_join(a);
    wt_join(b);
    assert_no_errors();
    printf("wait_many vs completion: %zu groups of %d, %.2f s\n", m.rounds,
           GROUP, (double)(weft_now() - t0) / 1e9);
    for (size_t r = 0; r < m.rounds; r++) {
        for (size_t k = 0; k < GROUP; k++) {
            weft_future_release(m.groups[r][k]);
        }
    }
    free(m.groups);
    /* Every shared waiter is gone, including those of timed-out waits. */
    assert_int_equal(live(), base);
}

/* ------------------------------------------------------------------------ */
/* Completion queue: many producers and consumers                            */

enum { PRODUCERS = 4, CONSUMERS = 3 };

struct cq_run {
    weft_completion_queue_t *cq;
    size_t n;            /* futures per producer */
    weft_future_t **fs;  /* PRODUCERS * n, each kept by its producer */
    _Atomic int *handed; /* per future: times handed over */
    _Atomic size_t outcomes[3];
    uint64_t seed;
};

struct producer_arg {
    struct cq_run *q;
    size_t p;
};

/* Finish f with a random outcome. */
static void
finish_random(weft_future_t *f, uint64_t *rng)
{
    switch (wt_rand(rng) % 3) {
    case 0:
        CHECK(weft_promise_set_result(f, NULL, NULL) == WEFT_OK);
        break;
    case 1:
        CHECK(weft_promise_set_failure(f, WEFT_EIO, "failed") == WEFT_OK);
        break;
    default:
        CHECK(weft_future_cancel(f));
        break;
    }
}

static void *
producer_main(void *arg)
{
    struct producer_arg *a = arg;
    struct cq_run *q = a->q;
    uint64_t rng = q->seed + a->p;
    for (size_t j = 0; j < q->n; j++) {
        size_t idx = a->p * q->n + j;
        weft_future_t *f = NULL;
        CHECK(weft_promise_create(&f) == WEFT_OK);
        /* Promises leave the task part unused: it carries the index. */
        f->arg = (void *)(uintptr_t)idx;
        q->fs[idx] = f;
        bool before = wt_rand(&rng) % 2 == 0;
        if (before) {
            finish_random(f, &rng);
        }
        CHECK(weft_cq_add(q->cq, f) == WEFT_OK);
        jitter(&rng);
        if (!before) {
            finish_random(f, &rng);
        }
    }
    return NULL;
}

static void *
cq_consumer_main(void *arg)
{
    struct cq_run *q = arg;
    for (;;) {
        weft_future_t *f = NULL;
        int rc = weft_cq_next(q->cq, &f);
        if (rc == WEFT_ECLOSED) {
            return NULL;
        }
        CHECK(rc == WEFT_OK);
        if (rc != WEFT_OK) {
            return NULL;
        }
        CHECK(weft_future_done(f));
        uintptr_t idx = (uintptr_t)f->arg;
        if (idx != UINTPTR_MAX) {
            atomic_fetch_add(&q->handed[idx], 1);
            int s = (int)weft_future_state(f) - WEFT_FUTURE_DONE;
            atomic_fetch_add(&q->outcomes[s], 1);
        }
        weft_future_release(f);
    }
}

static void
test_cq_many_producers(void **state)
{
    (void)state;
    long base = live();
    struct cq_run q;
    memset(&q, 0, sizeof(q));
    q.n = wt_size(50000, 2000000) / PRODUCERS;
    q.fs = calloc(PRODUCERS * q.n, sizeof(*q.fs));
    q.handed = calloc(PRODUCERS * q.n, sizeof(*q.handed));
    assert_true(q.fs && q.handed);
    q.seed = wt_seed();
    assert_int_equal(weft_cq_create(&q.cq), WEFT_OK);
    /* The guard keeps pending above zero until every producer has added
     * its futures, so consumers see WEFT_ECLOSED only at the very end. */
    weft_future_t *guard = promise();
    guard->arg = (void *)UINTPTR_MAX;
    assert_int_equal(weft_cq_add(q.cq, guard), WEFT_OK);
    weft_time_t t0 = weft_now();
    weft_thread_t *c[CONSUMERS];
    for (int i = 0; i < CONSUMERS; i++) {
        c[i] = wt_start(cq_consumer_main, &q);
    }
    struct producer_arg pa[PRODUCERS];
    weft_thread_t *p[PRODUCERS];
    for (size_t i = 0; i < PRODUCERS; i++) {
        pa[i] = (struct producer_arg){&q, i};
        p[i] = wt_start(producer_main, &pa[i]);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        wt_join(p[i]);
    }
    assert_int_equal(weft_promise_set_result(guard, NULL, NULL), WEFT_OK);
    for (int i = 0; i < CONSUMERS; i++) {
        wt_join(c[i]);
    }
    assert_no_errors();
    size_t total = PRODUCERS * q.n;
    printf("completion queue: %zu futures, %d producers, %d consumers "
           "(done %zu, failed %zu, cancelled %zu), %.2f s\n",
           total, PRODUCERS, CONSUMERS, atomic_load(&q.outcomes[0]),
           atomic_load(&q.outcomes[1]), atomic_load(&q.outcomes[2]),
           (double)(weft_now() - t0) / 1e9);
    assert_int_equal(weft_cq_pending(q.cq), 0);
    for (size_t i = 0; i < total; i++) {
        /* Handed over exactly once; the queue kept no reference. */
        assert_int_equal(atomic_load(&q.handed[i]), 1);
        assert_int_equal(atomic_load(&q.fs[i]->refs), 1);
        weft_future_release(q.fs[i]);
    }
    assert_int_equal(atomic_load(&guard->refs), 1);
    weft_future_release(guard);
    /* Only the queue itself is left: no entry, no node. */
    assert_int_equal(live(), base + 1);
    weft_future_t *out = NULL;
    assert_int_equal(weft_cq_next_until(q.cq, &out, 0), WEFT_ECLOSED);
    weft_cq_destroy(q.cq);
    assert_int_equal(live(), base);
    free(q.fs);
    free(q.handed);
}

/* Destroy while producers are still finishing the watched futures. */
struct late_arg {
    weft_future_t **fs;
    size_t n;
    _Atomic size_t done;
    uint64_t seed;
};

static void *
late_finisher_main(void *arg)
{
    struct late_arg *a = arg;
    uint64_t rng = a->seed;
    for (size_t i = 0; i < a->n; i++) {
        jitter(&rng);
        finish_random(a->fs[i], &rng);
        atomic_store(&a->done, i + 1);
    }
    return NULL;
}

static void
test_cq_destroy_races_finish(void **state)
{
    (void)state;
    long base = live();
    size_t rounds = wt_size(200, 5000);
    size_t n = 64;
    weft_future_t **fs = calloc(n, sizeof(*fs));
    assert_non_null(fs);
    uint64_t rng = wt_seed();
    for (size_t r = 0; r < rounds; r++) {
        weft_completion_queue_t *cq = NULL;
        assert_int_equal(weft_cq_create(&cq), WEFT_OK);
        for (size_t i = 0; i < n; i++) {
            fs[i] = promise();
            assert_int_equal(weft_cq_add(cq, fs[i]), WEFT_OK);
        }
        struct late_arg a = {fs, n, 0, wt_rand(&rng)};
        weft_thread_t *t = wt_start(late_finisher_main, &a);
        /* Destroy at a random point of the finishing run. */
        await_progress(&a.done, (size_t)(wt_rand(&rng) % n));
        weft_future_t *out = NULL;
        if (wt_rand(&rng) % 2) {
            int rc = weft_cq_next_until(cq, &out, 0);
            assert_true(rc == WEFT_OK || rc == WEFT_ETIMEDOUT);
            weft_future_release(rc == WEFT_OK ? out : NULL);
        }
        weft_cq_destroy(cq);
        wt_join(t);
        assert_no_errors();
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(atomic_load(&fs[i]->refs), 1);
            weft_future_release(fs[i]);
        }
        assert_int_equal(live(), base);
    }
    printf("completion queue destroyed mid-run: %zu rounds of %zu\n", rounds,
           n);
    free(fs);
}

int
main(void)
{
    weft_allocator_t a = {count_malloc, count_realloc, count_free, NULL};
    if (weft_set_allocator(&a) != WEFT_OK) {
        return 1;
    }
    wt_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_complete_vs_on_done),
        cmocka_unit_test(test_cancel_vs_claim),
        cmocka_unit_test(test_cancel_vs_start),
        cmocka_unit_test(test_cancel_vs_finish),
        cmocka_unit_test(test_many_waiters),
        cmocka_unit_test(test_many_waiters_spurious),
        cmocka_unit_test(test_wait_many_races),
        cmocka_unit_test(test_cq_many_producers),
        cmocka_unit_test(test_cq_destroy_races_finish),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
