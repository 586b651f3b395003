/* SPDX-License-Identifier: MIT */
/*
 * weft_queue_*: argument checks, the kind chosen at creation (lock-free ring
 * for bounded FIFOs, mutex-based storage for the rest), blocking with spin
 * then eventcount parking, close wake-ups, and task_done/join.
 */

/*
 * DESIGN
 *
 * Three wait conditions, each an eventcount plus a `waking` flag: not_empty
 * (getters wait), not_full (putters wait) and all_done (joiners wait). A
 * successful put notifies one getter per item, a get one putter per item,
 * close every waiter of both, and the task_done that makes done equal to
 * the number of puts every joiner. A notify costs one seq_cst load of the
 * waiter count when nobody waits.
 *
 * Waiting (wait_slow): spin up to WEFT__SPIN_LIMIT pauses, trying whenever
 * the kind says an attempt could succeed; yield the CPU once and try again;
 * then loop { prepare; clear waking; attempt; wait }. The kinds make a
 * condition true with a seq_cst store or RMW (or under their mutex) before the
 * notifier reads the waiter count, and the attempt after prepare re-reads with
 * seq_cst loads (or under the mutex): the eventcount's Dekker pattern, so no
 * wake-up is lost.
 *
 * One wake-up in flight. Between a futex wake and the woken thread running
 * lie microseconds in which every put would see the waiter count non-zero
 * and issue another wake system call. So a targeted notify (wake one, or n
 * for a batch) first sets `waking` 0 -> 1 and only the notifier that set it
 * wakes; the others return. Every thread that enters the wait (after its
 * prepare) and every thread that leaves it clears `waking` with a seq_cst
 * exchange and then checks the condition itself (entering: its attempt;
 * leaving: wait_exit, which notifies one more waiter if the condition still
 * holds). A notifier that skipped read `waking` == 1 after making its
 * condition true; the clear that follows in the seq_cst order comes from a
 * thread that checks afterwards and therefore sees that condition (Dekker
 * on `waking`), and such a thread comes: the set is followed by an
 * eventcount wake (seq bump, then futex wake), so if any thread is inside
 * the wait, at least one returns from it (it sees seq changed, or the futex
 * wakes it) and clears; if none is, the next one to enter clears. Notifies
 * that wake everyone (close, join) ignore the flag.
 *
 * Passing wake-ups on. A wake-up goes to "one waiter", not to the waiter
 * that will use it: the ring can wake a getter for a later item while the
 * put at head is still in flight (the getter sleeps again, the wake is
 * spent), a cancelled waiter leaves without using it, and a woken waiter
 * may find that a spinning thread took the item. wait_exit covers all
 * three. A waiter whose deadline passes tries once more before reporting
 * WEFT_ETIMEDOUT, so a wake-up that raced with its timeout is used. Once the
 * queue is closed a targeted notify wakes every waiter: a get woken by close
 * that finds an in-flight put at head sleeps again, and the publish of that
 * put must then wake every such getter, not just one.
 *
 * Selectors (queue_select.c) watch not_empty / not_full through a watcher
 * list and count themselves in the high bits of ec.waiters, so the notify
 * above stays one load when nobody waits. wake_slow fires them before the
 * `waking` check (which is about plain waiters only) and skips the
 * eventcount wake when only selectors wait.
 */
#include "queue_impl.h"
#include "probe.h"

#include <weft/thread.h>

#define NAME_MAX_LEN 127u
#define WAKE_ALL INT32_MAX

#define CHECK_Q(q, fn) WEFT_ASSERT((q) != NULL, "%s: queue is NULL", fn)
#define CHECK_PTR(p, fn, what)                                                 \
    WEFT_ASSERT((p) != NULL, "%s: %s is NULL", fn, what)

/* ------------------------------------------------------------------------ */
/* Notification and waiting                                                  */

static WEFT__COLD void
wake_slow(weft_queue_t *q, weft__qwait_t *w, int n, uint32_t waiters)
{
    /* Selectors first: the early return below is about plain waiters only
     * (a selector does not clear `waking`), and must not swallow their
     * notification. */
    if (WEFT__QWAIT_WATCHERS(waiters) != 0) {
        weft__qwatch_notify(w, n != WAKE_ALL && q->ops->is_closed(q) ? WAKE_ALL
                                                                     : n);
    }
    if (WEFT__QWAIT_PLAIN(waiters) == 0) {
        return; /* as the fast path: no thread had prepared to park */
    }
    if (n != WAKE_ALL) {
        /* A wake-up already on its way is passed on by whoever receives it
         * (wait_exit), so one in flight is enough. seq_cst: pairs with the
         * waiters' exchanges of waking (Dekker, as for the waiter count). */
        if (atomic_load_explicit(&w->waking, memory_order_seq_cst) != 0 ||
            atomic_exchange_explicit(&w->waking, 1, memory_order_seq_cst) !=
                0) {
            return;
        }
        /* Closed: every waiter must re-check (see DESIGN). */
        if (q->ops->is_closed(q)) {
            n = WAKE_ALL;
        }
    }
    weft__ecount_wake(&w->ec, n);
}

static inline void
wake(weft_queue_t *q, weft__qwait_t *w, size_t n)
{
    /* seq_cst: the load half of the notifier's side of the Dekker pattern
     * (the kinds' seq_cst stores/RMWs are the store half). It counts
     * selectors too (queue_impl.h), so this one load is all a notify costs
     * when nobody waits. */
    uint32_t waiters =
        atomic_load_explicit(&w->ec.waiters, memory_order_seq_cst);
    if (waiters != 0) {
        wake_slow(q, w, n < (size_t)WAKE_ALL ? (int)n : WAKE_ALL, waiters);
    }
}

void
weft__queue_wake(weft_queue_t *q, weft__qwait_t *w, size_t n)
{
    wake(q, w, n);
}

/* One try at what the caller waits for: WEFT_EAGAIN means "wait more". */
typedef int (*attempt_fn)(weft_queue_t *q, void *arg);
/* Whether an attempt could succeed now (closed counts as yes). */
typedef bool (*ready_fn)(const weft_queue_t *q);

typedef struct waiter {
    weft__qwait_t *qw;
    ready_fn ready;
    attempt_fn attempt;
    void *arg;
    bool spin;
} waiter_t;

static bool
deadline_passed(weft_time_t deadline)
{
    return deadline != WEFT_FOREVER && deadline <= weft_now();
}

static int
spin_phase(weft_queue_t *q, const waiter_t *w)
{
    for (int i = 0; w->spin && i < WEFT__SPIN_LIMIT; i++) {
        weft__cpu_relax();
        if (w->ready(q)) {
            int rc = w->attempt(q, w->arg);
            if (rc != WEFT_EAGAIN) {
                return rc;
            }
        }
    }
    return WEFT_EAGAIN;
}

/* The wake-up in flight, if any, may have been ours: clear the flag so
 * later notifies wake again, then pass the wake-up on if the condition
 * still holds. seq_cst exchange, then seq_cst loads in ready(): the waiter
 * half of the Dekker pattern with wake_slow. */
static void
wait_exit(weft_queue_t *q, const waiter_t *w)
{
    (void)atomic_exchange_explicit(&w->qw->waking, 0, memory_order_seq_cst);
    if (w->ready(q)) {
        wake(q, w->qw, 1);
    }
}

/*
 * Wait until w->attempt stops returning WEFT_EAGAIN, or deadline. Returns
 * the attempt's result, WEFT_ETIMEDOUT, WEFT_ECANCELED, or WEFT_EAGAIN when
 * the deadline had already passed at the call (nothing was waited for).
 */
static int
wait_slow(weft_queue_t *q, const waiter_t *w, weft_time_t deadline)
{
    if (deadline_passed(deadline)) {
        return WEFT_EAGAIN;
    }
    int rc = spin_phase(q, w);
    if (rc != WEFT_EAGAIN) {
        return rc;
    }
    if (w->spin) {
        /* When threads outnumber cores, the thread that would make our
         * condition true is often runnable on this CPU: one yield lets it
         * run without a futex sleep and wake (a system call on each side and
         * a scheduler round trip). */
        weft_thread_yield();
        rc = w->attempt(q, w->arg);
        if (rc != WEFT_EAGAIN) {
            return rc;
        }
    }
    weft__ecount_t *ec = &w->qw->ec;
    for (;;) {
        uint32_t key = weft__ecount_prepare(ec);
        /* A thread entering the wait clears a flag that nobody may be left
         * to clear (its receiver could have left already). */
        (void)atomic_exchange_explicit(&w->qw->waking, 0, memory_order_seq_cst);
        rc = w->attempt(q, w->arg);
        if (rc != WEFT_EAGAIN) {
            weft__ecount_cancel(ec);
            break;
        }
        rc = weft__ecount_wait_on(w->qw == &q->not_full ? WEFT__WAIT_QUEUE_PUT
                                                        : WEFT__WAIT_QUEUE_GET,
                                  q, ec, key, deadline);
        if (rc == WEFT_ETIMEDOUT) {
            rc = w->attempt(q, w->arg);
            rc = rc == WEFT_EAGAIN ? WEFT_ETIMEDOUT : rc;
            break;
        }
        if (rc != WEFT_OK) {
            break; /* WEFT_ECANCELED */
        }
    }
    wait_exit(q, w);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Attempts                                                                  */

typedef struct batch {
    const unsigned char *in; /* put_many: the items */
    unsigned char *out;      /* get_many: room for the items */
    size_t n;                /* items wanted */
    size_t done;             /* items moved so far */
} batch_t;

static int
attempt_put(weft_queue_t *q, void *arg)
{
    const void *const *item = arg;
    return q->ops->try_put(q, *item);
}

static int
attempt_get(weft_queue_t *q, void *arg)
{
    return q->ops->try_get(q, arg);
}

/* Put as much of the batch as fits now; consumers are woken for it here, so
 * a producer that waits for room never sits on items nobody knows about. */
static int
attempt_put_many(weft_queue_t *q, void *arg)
{
    batch_t *b = arg;
    size_t before = b->done;
    int rc = WEFT_OK;
    while (b->done < b->n) {
        size_t k;
        rc = q->ops->try_put_many(q, b->in + b->done * q->elem_size,
                                  b->n - b->done, &k);
        if (rc != WEFT_OK) {
            break;
        }
        b->done += k;
    }
    if (b->done > before) {
        wake(q, &q->not_empty, b->done - before);
    }
    return rc;
}

/* Take what is there now, up to the batch size; WEFT_OK when anything. */
static int
attempt_get_many(weft_queue_t *q, void *arg)
{
    batch_t *b = arg;
    int rc = WEFT_OK;
    while (b->done < b->n) {
        size_t k;
        rc = q->ops->try_get_many(q, b->out + b->done * q->elem_size,
                                  b->n - b->done, &k);
        if (rc != WEFT_OK) {
            break;
        }
        b->done += k;
    }
    return b->done > 0 ? WEFT_OK : rc;
}

static bool
all_done(const weft_queue_t *q)
{
    /* done first: puts read later is at least as new, and done <= puts
     * always, so done >= puts means both were equal at that later read. */
    uint64_t d = atomic_load_explicit(&q->done, memory_order_seq_cst);
    return d >= q->ops->puts(q);
}

static int
attempt_join(weft_queue_t *q, void *arg)
{
    (void)arg;
    return all_done(q) ? WEFT_OK : WEFT_EAGAIN;
}

/* ------------------------------------------------------------------------ */
/* Creation                                                                  */

static int
check_opts(const weft_queue_opts_t *o)
{
    if (o->capacity == 0 || o->elem_size == 0 ||
        o->elem_size > WEFT_QUEUE_ELEM_MAX) {
        return WEFT_EINVAL;
    }
    switch (o->order) {
    case WEFT_QUEUE_FIFO:
    case WEFT_QUEUE_LIFO:
        return WEFT_OK;
    case WEFT_QUEUE_PRIORITY:
        return o->cmp != NULL ? WEFT_OK : WEFT_EINVAL;
    default:
        return WEFT_EINVAL;
    }
}

static void
init_header(weft_queue_t *q, const weft_queue_opts_t *o)
{
    memset(q, 0, sizeof(*q));
    q->capacity = o->capacity;
    q->elem_size = o->elem_size;
    q->order = o->order;
    q->cmp = o->cmp;
    q->cmp_ctx = o->cmp_ctx;
    q->drop = o->drop;
    q->drop_ctx = o->drop_ctx;
    bool ring =
        o->order == WEFT_QUEUE_FIFO && o->capacity != WEFT_QUEUE_UNBOUNDED;
    q->ops = ring ? &weft__ring_ops : &weft__lq_ops;
    weft__qwait_t *ws[] = {&q->not_empty, &q->not_full, &q->all_done};
    for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
        atomic_init(&ws[i]->ec.seq, 0);
        atomic_init(&ws[i]->ec.waiters, 0);
        atomic_init(&ws[i]->waking, 0);
        atomic_init(&ws[i]->wlock.state, WEFT__MUTEX_FREE);
        atomic_init(&ws[i]->wlock.owner, 0);
        ws[i]->watch = NULL;
    }
    atomic_init(&q->done, 0);
}

int
weft_queue_create(const weft_queue_opts_t *opts, weft_queue_t **out)
{
    static const weft_queue_opts_t defaults = WEFT_QUEUE_OPTS_INIT;
    const weft_queue_opts_t *o = opts != NULL ? opts : &defaults;
    if (out == NULL || check_opts(o) != WEFT_OK) {
        return WEFT_EINVAL;
    }
    weft_queue_t *q = weft__malloc_aligned(sizeof(*q));
    if (q == NULL) {
        return WEFT_ENOMEM;
    }
    init_header(q, o);
    if (o->name != NULL) {
        q->name = weft__strndup(o->name, NAME_MAX_LEN);
        if (q->name == NULL) {
            goto fail_name;
        }
    }
    bool ring = q->ops == &weft__ring_ops;
    int rc = ring ? weft__ring_init(q) : weft__lq_init(q);
    if (rc != WEFT_OK) {
        goto fail_kind;
    }
    weft__probe_object_event(WEFT__OBJ_QUEUE, q, q->name, true);
    *out = q;
    return WEFT_OK;

fail_kind:
    weft__free(q->name);
fail_name:
    weft__free_aligned(q);
    return WEFT_ENOMEM;
}

void
weft_queue_destroy(weft_queue_t *q)
{
    if (q == NULL) {
        return;
    }
    const weft__qwait_t *ws[] = {&q->not_empty, &q->not_full, &q->all_done};
    for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
        /* Relaxed: a best-effort check for a contract breach; a correct
         * caller has joined every user of q, which orders everything. */
        WEFT_ASSERT(
            atomic_load_explicit(&ws[i]->ec.waiters, memory_order_relaxed) == 0,
            "weft_queue_destroy: threads still wait on queue '%s'",
            q->name != NULL ? q->name : "");
    }
    weft__probe_object_event(WEFT__OBJ_QUEUE, q, q->name, false);
    q->ops->fini(q);
    weft__free(q->name);
    weft__free_aligned(q);
}

/* ------------------------------------------------------------------------ */
/* Put and get                                                               */

static int
put_wait(weft_queue_t *q, const void *item, weft_time_t deadline)
{
    int rc = q->ops->try_put(q, item);
    if (WEFT__UNLIKELY(rc == WEFT_EAGAIN)) {
        waiter_t w = {&q->not_full, q->ops->can_put, attempt_put, &item, true};
        rc = wait_slow(q, &w, deadline);
    }
    if (WEFT__LIKELY(rc == WEFT_OK)) {
        wake(q, &q->not_empty, 1);
    }
    return rc;
}

static int
get_wait(weft_queue_t *q, void *out, weft_time_t deadline)
{
    int rc = q->ops->try_get(q, out);
    if (WEFT__UNLIKELY(rc == WEFT_EAGAIN)) {
        waiter_t w = {&q->not_empty, q->ops->can_get, attempt_get, out, true};
        rc = wait_slow(q, &w, deadline);
    }
    if (WEFT__LIKELY(rc == WEFT_OK)) {
        wake(q, &q->not_full, 1);
    }
    return rc;
}

int
weft_queue_put(weft_queue_t *q, const void *item)
{
    CHECK_Q(q, "weft_queue_put");
    CHECK_PTR(item, "weft_queue_put", "item");
    return put_wait(q, item, WEFT_FOREVER);
}

int
weft_queue_try_put(weft_queue_t *q, const void *item)
{
    CHECK_Q(q, "weft_queue_try_put");
    CHECK_PTR(item, "weft_queue_try_put", "item");
    int rc = q->ops->try_put(q, item);
    if (rc == WEFT_OK) {
        wake(q, &q->not_empty, 1);
    }
    return rc;
}

int
weft_queue_put_until(weft_queue_t *q, const void *item, weft_time_t deadline)
{
    CHECK_Q(q, "weft_queue_put_until");
    CHECK_PTR(item, "weft_queue_put_until", "item");
    int rc = put_wait(q, item, deadline);
    return rc == WEFT_EAGAIN ? WEFT_ETIMEDOUT : rc;
}

int
weft_queue_get(weft_queue_t *q, void *out)
{
    CHECK_Q(q, "weft_queue_get");
    CHECK_PTR(out, "weft_queue_get", "out");
    return get_wait(q, out, WEFT_FOREVER);
}

int
weft_queue_try_get(weft_queue_t *q, void *out)
{
    CHECK_Q(q, "weft_queue_try_get");
    CHECK_PTR(out, "weft_queue_try_get", "out");
    int rc = q->ops->try_get(q, out);
    if (rc == WEFT_OK) {
        wake(q, &q->not_full, 1);
    }
    return rc;
}

int
weft_queue_get_until(weft_queue_t *q, void *out, weft_time_t deadline)
{
    CHECK_Q(q, "weft_queue_get_until");
    CHECK_PTR(out, "weft_queue_get_until", "out");
    int rc = get_wait(q, out, deadline);
    return rc == WEFT_EAGAIN ? WEFT_ETIMEDOUT : rc;
}

/* ------------------------------------------------------------------------ */
/* Batches                                                                   */

int
weft_queue_put_many(weft_queue_t *q, const void *items, size_t n, size_t *done,
                    weft_time_t deadline)
{
    CHECK_Q(q, "weft_queue_put_many");
    WEFT_ASSERT(items != NULL || n == 0, "weft_queue_put_many: items is NULL");
    batch_t b = {items, NULL, n, 0};
    int rc = attempt_put_many(q, &b);
    if (rc == WEFT_EAGAIN) {
        waiter_t w = {&q->not_full, q->ops->can_put, attempt_put_many, &b,
                      true};
        rc = wait_slow(q, &w, deadline);
    }
    if (done != NULL) {
        *done = b.done;
    }
    return rc;
}

int
weft_queue_get_many(weft_queue_t *q, void *out, size_t max, size_t *got,
                    weft_time_t deadline)
{
    CHECK_Q(q, "weft_queue_get_many");
    CHECK_PTR(out, "weft_queue_get_many", "out");
    if (max == 0) {
        if (got != NULL) {
            *got = 0;
        }
        return WEFT_EINVAL;
    }
    batch_t b = {NULL, out, max, 0};
    int rc = attempt_get_many(q, &b);
    if (rc == WEFT_EAGAIN) {
        waiter_t w = {&q->not_empty, q->ops->can_get, attempt_get_many, &b,
                      true};
        rc = wait_slow(q, &w, deadline);
    }
    if (b.done > 0) {
        wake(q, &q->not_full, b.done);
    }
    if (got != NULL) {
        *got = rc == WEFT_OK ? b.done : 0;
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Close, task_done, join                                                    */

void
weft_queue_close(weft_queue_t *q)
{
    CHECK_Q(q, "weft_queue_close");
    q->ops->close(q);
    wake(q, &q->not_full, WAKE_ALL);
    wake(q, &q->not_empty, WAKE_ALL);
}

bool
weft_queue_is_closed(const weft_queue_t *q)
{
    CHECK_Q(q, "weft_queue_is_closed");
    return q->ops->is_closed(q);
}

int
weft_queue_task_done(weft_queue_t *q)
{
    CHECK_Q(q, "weft_queue_task_done");
    uint64_t d = atomic_load_explicit(&q->done, memory_order_seq_cst);
    for (;;) {
        /* puts only grows, so a later read is at least as large. */
        if (d >= q->ops->puts(q)) {
            return WEFT_ERANGE;
        }
        /* seq_cst: the store half of the Dekker pattern with joiners (their
         * re-check in all_done). */
        if (atomic_compare_exchange_weak_explicit(&q->done, &d, d + 1,
                                                  memory_order_seq_cst,
                                                  memory_order_seq_cst)) {
            break;
        }
    }
    if (d + 1 == q->ops->puts(q)) {
        weft__ecount_notify(&q->all_done.ec, WAKE_ALL);
    }
    return WEFT_OK;
}

int
weft_queue_join_until(weft_queue_t *q, weft_time_t deadline)
{
    CHECK_Q(q, "weft_queue_join_until");
    if (all_done(q)) {
        return WEFT_OK;
    }
    waiter_t w = {&q->all_done, all_done, attempt_join, NULL, false};
    int rc = wait_slow(q, &w, deadline);
    return rc == WEFT_EAGAIN ? WEFT_ETIMEDOUT : rc;
}

int
weft_queue_join(weft_queue_t *q)
{
    CHECK_Q(q, "weft_queue_join");
    return weft_queue_join_until(q, WEFT_FOREVER);
}

/* ------------------------------------------------------------------------ */
/* Snapshots                                                                 */

size_t
weft_queue_size(const weft_queue_t *q)
{
    CHECK_Q(q, "weft_queue_size");
    return q->ops->size(q);
}

bool
weft_queue_empty(const weft_queue_t *q)
{
    CHECK_Q(q, "weft_queue_empty");
    return q->ops->size(q) == 0;
}

bool
weft_queue_full(const weft_queue_t *q)
{
    CHECK_Q(q, "weft_queue_full");
    return q->ops->size(q) >= q->capacity;
}

size_t
weft_queue_capacity(const weft_queue_t *q)
{
    CHECK_Q(q, "weft_queue_capacity");
    return q->capacity;
}

size_t
weft_queue_elem_size(const weft_queue_t *q)
{
    CHECK_Q(q, "weft_queue_elem_size");
    return q->elem_size;
}
