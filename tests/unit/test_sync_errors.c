/* SPDX-License-Identifier: MIT */
/*
 * Bad input to the synchronization primitives: programmer errors die with a
 * clear message (checked in a child process), runtime errors return their
 * documented code and leave the object untouched. Also WEFT_ECANCELED on
 * every cancellable wait, and waiters that leave (cancelled, or timed out
 * just as they were woken) without stranding the others, through a parking
 * layer this file controls (below).
 */
#include "testutil.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "plat.h"

/* ------------------------------------------------------------------------ */
/*
 * Cancellation. Until the executor layer sets cancellation tokens, weft__park
 * never returns WEFT_ECANCELED. This executable links its own parking layer
 * in place of the library's (it defines every symbol of src/park.c, so the
 * linker never takes that member of the static library). It never returns
 * early on its own (so a lost wake-up still hangs the test); a thread whose
 * flag is set gets WEFT_ECANCELED (or WEFT_ETIMEDOUT), before sleeping, when
 * woken, or when a kicker thread wakes it. Kicks reach only victims: they
 * sleep with futex bitset bit 0 set, every other thread without it, and
 * kicks wake bit 0 only (the library's wakes match every bit).
 */

struct canceller {
    _Atomic int flag; /* CANCELLED, TIMED_OUT: what weft__park returns */
    _Atomic uint32_t *_Atomic parked_on; /* where it sleeps, or NULL */
    _Atomic int finished;                /* the thread is done: stop kicking */
    int victim;     /* sleeps with KICK_BIT: kicks may wake it */
    int kick_value; /* what the kicker stores in flag */
};

/* flag values. TIMED_OUT stands for a deadline that passes just as the
 * thread is woken: the wait returns WEFT_ETIMEDOUT whatever woke it. */
enum { CANCELLED = 1, TIMED_OUT = 2 };

static _Thread_local struct canceller *self_cx;

/* clang-format off */
#define CX_INIT {0, NULL, 0, 1, CANCELLED}
#define CX_OBSERVED {0, NULL, 0, 0, 0} /* never cancelled, not kicked */
/* clang-format on */
#define KICK_BIT 1u

static int
futex_wait_bits(_Atomic uint32_t *addr, uint32_t expected, weft_time_t deadline,
                uint32_t bits)
{
    struct timespec ts;
    struct timespec *tsp = NULL;
    if (deadline != WEFT_FOREVER) {
        if (deadline <= weft_now()) {
            return WEFT_ETIMEDOUT;
        }
        ts.tv_sec = (time_t)(deadline / WEFT_SEC);
        ts.tv_nsec = (long)(deadline % WEFT_SEC);
        tsp = &ts;
    }
    long r = syscall(SYS_futex, (uint32_t *)addr,
                     FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, tsp,
                     NULL, bits);
    return r == -1 && errno == ETIMEDOUT ? WEFT_ETIMEDOUT : WEFT_OK;
}

void
weft__test_spurious_wakeups(unsigned n)
{
    (void)n;
}

int
weft__park(_Atomic uint32_t *addr, uint32_t expected, weft_time_t deadline)
{
    struct canceller *c = self_cx;
    if (c == NULL) {
        return futex_wait_bits(addr, expected, deadline, ~KICK_BIT);
    }
    /* seq_cst store then load, against the kicker's store of flag then
     * load of parked_on: one of them sees the other. */
    atomic_store(&c->parked_on, addr);
    int rc = WEFT_OK;
    if (!atomic_load(&c->flag)) {
        rc = futex_wait_bits(addr, expected, deadline,
                             c->victim ? ~0u : ~KICK_BIT);
    }
    atomic_store(&c->parked_on, NULL);
    switch (atomic_load(&c->flag)) {
    case CANCELLED:
        return WEFT_ECANCELED;
    case TIMED_OUT:
        return WEFT_ETIMEDOUT;
    default:
        return rc;
    }
}

void
weft__unpark(_Atomic uint32_t *addr, int n)
{
    weft__plat_futex_wake(addr, n);
}

int
weft__ecount_wait(weft__ecount_t *ec, uint32_t key, weft_time_t deadline)
{
    int rc = weft__park(&ec->seq, key, deadline);
    atomic_fetch_sub(&ec->waiters, 1);
    return rc;
}

void
weft__ecount_wake(weft__ecount_t *ec, int n)
{
    atomic_fetch_add(&ec->seq, 1);
    weft__unpark(&ec->seq, n);
}

/* In the thread to be cancelled: from now on its waits can be cancelled. */
static void
cancellable_begin(struct canceller *c)
{
    self_cx = c;
}

static void
cancellable_end(struct canceller *c)
{
    self_cx = NULL;
    atomic_store(&c->finished, 1);
}

/* Cancel the thread and kick it out of its sleeps until it finishes. */
static void *
kicker(void *arg)
{
    struct canceller *c = arg;
    atomic_store(&c->flag, c->kick_value);
    while (!atomic_load(&c->finished)) {
        _Atomic uint32_t *addr = atomic_load(&c->parked_on);
        if (addr != NULL) {
            syscall(SYS_futex, (uint32_t *)addr,
                    FUTEX_WAKE_BITSET | FUTEX_PRIVATE_FLAG, INT32_MAX, NULL,
                    NULL, KICK_BIT);
        }
        weft_sleep_for(200 * WEFT_USEC);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */

static void
ignore(int rc)
{
    (void)rc;
}

/* ------------------------------------------------------------------------ */
/* NULL handles: one death test per public function.                         */

static weft_mutex_t a_mutex = WEFT_MUTEX_INIT;
static weft_cond_t a_cond = WEFT_COND_INIT;

static bool
never(void *arg)
{
    (void)arg;
    return false;
}

static void
noop(void *arg)
{
    (void)arg;
}

#define VOID_CASE(name, call)                                                  \
    static void name(void *arg)                                                \
    {                                                                          \
        (void)arg;                                                             \
        (void)(call);                                                          \
    }
#define INT_CASE(name, call)                                                   \
    static void name(void *arg)                                                \
    {                                                                          \
        (void)arg;                                                             \
        ignore(call);                                                          \
    }

VOID_CASE(mutex_init_null, weft_mutex_init(NULL))
VOID_CASE(mutex_fini_null, weft_mutex_fini(NULL))
INT_CASE(mutex_lock_null, weft_mutex_lock(NULL))
INT_CASE(mutex_try_lock_null, weft_mutex_try_lock(NULL))
INT_CASE(mutex_lock_until_null, weft_mutex_lock_until(NULL, 0))
VOID_CASE(mutex_unlock_null, weft_mutex_unlock(NULL))
VOID_CASE(mutex_is_held_null, weft_mutex_is_held(NULL))
VOID_CASE(rlock_init_null, weft_rlock_init(NULL))
VOID_CASE(rlock_fini_null, weft_rlock_fini(NULL))
INT_CASE(rlock_acquire_null, weft_rlock_acquire(NULL))
INT_CASE(rlock_try_acquire_null, weft_rlock_try_acquire(NULL))
INT_CASE(rlock_acquire_until_null, weft_rlock_acquire_until(NULL, 0))
INT_CASE(rlock_release_null, weft_rlock_release(NULL))
VOID_CASE(rlock_depth_null, weft_rlock_depth(NULL))
INT_CASE(sem_init_null, weft_sem_init(NULL, 1))
INT_CASE(sem_init_bounded_null, weft_sem_init_bounded(NULL, 1, 1))
VOID_CASE(sem_fini_null, weft_sem_fini(NULL))
INT_CASE(sem_acquire_null, weft_sem_acquire(NULL))
INT_CASE(sem_try_acquire_null, weft_sem_try_acquire(NULL))
INT_CASE(sem_acquire_until_null, weft_sem_acquire_until(NULL, 0))
INT_CASE(sem_release_null, weft_sem_release(NULL, 1))
VOID_CASE(sem_value_null, weft_sem_value(NULL))
VOID_CASE(event_init_null, weft_event_init(NULL))
VOID_CASE(event_fini_null, weft_event_fini(NULL))
VOID_CASE(event_set_null, weft_event_set(NULL))
VOID_CASE(event_clear_null, weft_event_clear(NULL))
VOID_CASE(event_is_set_null, weft_event_is_set(NULL))
INT_CASE(event_wait_null, weft_event_wait(NULL))
INT_CASE(event_wait_until_null, weft_event_wait_until(NULL, 0))
VOID_CASE(cond_init_null, weft_cond_init(NULL))
VOID_CASE(cond_fini_null, weft_cond_fini(NULL))
INT_CASE(cond_wait_null, weft_cond_wait(NULL, &a_mutex))
INT_CASE(cond_wait_null_mutex, weft_cond_wait(&a_cond, NULL))
INT_CASE(cond_wait_until_null, weft_cond_wait_until(NULL, &a_mutex, 0))
INT_CASE(cond_wait_until_null_mutex, weft_cond_wait_until(&a_cond, NULL, 0))
INT_CASE(cond_wait_for_null, weft_cond_wait_for(NULL, &a_mutex, never, NULL, 0))
INT_CASE(cond_wait_for_null_mutex,
         weft_cond_wait_for(&a_cond, NULL, never, NULL, 0))
INT_CASE(cond_wait_for_null_pred,
         weft_cond_wait_for(&a_cond, &a_mutex, NULL, NULL, 0))
VOID_CASE(cond_signal_null, weft_cond_signal(NULL))
VOID_CASE(cond_broadcast_null, weft_cond_broadcast(NULL))
INT_CASE(barrier_init_null, weft_barrier_init(NULL, 1, NULL, NULL))
VOID_CASE(barrier_fini_null, weft_barrier_fini(NULL))
INT_CASE(barrier_wait_null, weft_barrier_wait(NULL, NULL))
INT_CASE(barrier_wait_until_null, weft_barrier_wait_until(NULL, NULL, 0))
VOID_CASE(barrier_abort_null, weft_barrier_abort(NULL))
VOID_CASE(barrier_reset_null, weft_barrier_reset(NULL))
VOID_CASE(barrier_is_broken_null, weft_barrier_is_broken(NULL))
VOID_CASE(barrier_n_waiting_null, weft_barrier_n_waiting(NULL))
VOID_CASE(once_null, weft_once(NULL, noop, NULL))

static weft_once_t a_once = WEFT_ONCE_INIT;
VOID_CASE(once_null_fn, weft_once(&a_once, NULL, NULL))

struct death {
    void (*fn)(void *);
    const char *expect;
};

static const struct death null_cases[] = {
    {mutex_init_null, "weft_mutex_init: NULL mutex"},
    {mutex_fini_null, "weft_mutex_fini: NULL mutex"},
    {mutex_lock_null, "weft_mutex_lock: NULL mutex"},
    {mutex_try_lock_null, "weft_mutex_try_lock: NULL mutex"},
    {mutex_lock_until_null, "weft_mutex_lock_until: NULL mutex"},
    {mutex_unlock_null, "weft_mutex_unlock: NULL mutex"},
    {mutex_is_held_null, "weft_mutex_is_held: NULL mutex"},
    {rlock_init_null, "weft_rlock_init: NULL rlock"},
    {rlock_fini_null, "weft_rlock_fini: NULL rlock"},
    {rlock_acquire_null, "weft_rlock_acquire: NULL rlock"},
    {rlock_try_acquire_null, "weft_rlock_try_acquire: NULL rlock"},
    {rlock_acquire_until_null, "weft_rlock_acquire_until: NULL rlock"},
    {rlock_release_null, "weft_rlock_release: NULL rlock"},
    {rlock_depth_null, "weft_rlock_depth: NULL rlock"},
    {sem_init_null, "weft_sem_init: NULL semaphore"},
    {sem_init_bounded_null, "weft_sem_init_bounded: NULL semaphore"},
    {sem_fini_null, "weft_sem_fini: NULL semaphore"},
    {sem_acquire_null, "weft_sem_acquire: NULL semaphore"},
    {sem_try_acquire_null, "weft_sem_try_acquire: NULL semaphore"},
    {sem_acquire_until_null, "weft_sem_acquire_until: NULL semaphore"},
    {sem_release_null, "weft_sem_release: NULL semaphore"},
    {sem_value_null, "weft_sem_value: NULL semaphore"},
    {event_init_null, "weft_event_init: NULL event"},
    {event_fini_null, "weft_event_fini: NULL event"},
    {event_set_null, "weft_event_set: NULL event"},
    {event_clear_null, "weft_event_clear: NULL event"},
    {event_is_set_null, "weft_event_is_set: NULL event"},
    {event_wait_null, "weft_event_wait: NULL event"},
    {event_wait_until_null, "weft_event_wait_until: NULL event"},
    {cond_init_null, "weft_cond_init: NULL condition"},
    {cond_fini_null, "weft_cond_fini: NULL condition"},
    {cond_wait_null, "weft_cond_wait: NULL condition"},
    {cond_wait_null_mutex, "weft_cond_wait: NULL mutex"},
    {cond_wait_until_null, "weft_cond_wait_until: NULL condition"},
    {cond_wait_until_null_mutex, "weft_cond_wait_until: NULL mutex"},
    {cond_wait_for_null, "weft_cond_wait_for: NULL condition"},
    {cond_wait_for_null_mutex, "weft_cond_wait_for: NULL mutex"},
    {cond_wait_for_null_pred, "weft_cond_wait_for: NULL predicate"},
    {cond_signal_null, "weft_cond_signal: NULL condition"},
    {cond_broadcast_null, "weft_cond_broadcast: NULL condition"},
    {barrier_init_null, "weft_barrier_init: NULL barrier"},
    {barrier_fini_null, "weft_barrier_fini: NULL barrier"},
    {barrier_wait_null, "weft_barrier_wait: NULL barrier"},
    {barrier_wait_until_null, "weft_barrier_wait_until: NULL barrier"},
    {barrier_abort_null, "weft_barrier_abort: NULL barrier"},
    {barrier_reset_null, "weft_barrier_reset: NULL barrier"},
    {barrier_is_broken_null, "weft_barrier_is_broken: NULL barrier"},
    {barrier_n_waiting_null, "weft_barrier_n_waiting: NULL barrier"},
    {once_null, "weft_once: NULL once"},
    {once_null_fn, "weft_once: NULL function"},
};

static void
test_null_handles(void **state)
{
    (void)state;
    size_t n = sizeof(null_cases) / sizeof(null_cases[0]);
    for (size_t i = 0; i < n; i++) {
        if (!wt_dies_with(null_cases[i].fn, NULL, null_cases[i].expect)) {
            fail_msg("case %zu (%s) did not die as expected", i,
                     null_cases[i].expect);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Other programmer errors: death tests.                                     */

static void *
lock_and_exit(void *arg)
{
    assert_int_equal(weft_mutex_lock(arg), WEFT_OK);
    return NULL;
}

static void
unlock_by_non_owner(void *arg)
{
    (void)arg;
    weft_mutex_t *m = &a_mutex;
    wt_join(wt_start(lock_and_exit, m));
    weft_mutex_unlock(m);
}

static void
unlock_unlocked(void *arg)
{
    (void)arg;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    weft_mutex_unlock(&m);
}

static void
relock_by_owner(void *arg)
{
    (void)arg;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    ignore(weft_mutex_lock(&m));
    ignore(weft_mutex_lock(&m));
}

static void
relock_until_by_owner(void *arg)
{
    (void)arg;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    ignore(weft_mutex_lock(&m));
    ignore(weft_mutex_lock_until(&m, weft_deadline_in(WEFT_MSEC)));
}

static void
fini_held_mutex(void *arg)
{
    (void)arg;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    ignore(weft_mutex_lock(&m));
    weft_mutex_fini(&m);
}

static void
fini_held_rlock(void *arg)
{
    (void)arg;
    weft_rlock_t r = WEFT_RLOCK_INIT;
    ignore(weft_rlock_acquire(&r));
    weft_rlock_fini(&r);
}

static void
cond_wait_unheld(void *arg)
{
    (void)arg;
    weft_mutex_t m = WEFT_MUTEX_INIT;
    weft_cond_t c = WEFT_COND_INIT;
    ignore(weft_cond_wait_until(&c, &m, weft_deadline_in(WEFT_MSEC)));
}

static void
recurse(void *arg)
{
    weft_once(arg, recurse, arg);
}

static void
once_recursion(void *arg)
{
    (void)arg;
    weft_once_t o = WEFT_ONCE_INIT;
    weft_once(&o, recurse, &o);
}

static weft_sem_t a_sem;

static void *
sem_waiter(void *arg)
{
    ignore(weft_sem_acquire(arg));
    return NULL;
}

static void
fini_sem_with_waiter(void *arg)
{
    (void)arg;
    ignore(weft_sem_init(&a_sem, 0));
    weft_thread_t *t = wt_start(sem_waiter, &a_sem);
    (void)t; /* never joined: the process dies */
    weft_sleep_for(20 * WEFT_MSEC);
    weft_sem_fini(&a_sem);
}

static void *
cond_waiter(void *arg)
{
    (void)arg;
    ignore(weft_mutex_lock(&a_mutex));
    for (;;) { /* until the process dies */
        ignore(weft_cond_wait(&a_cond, &a_mutex));
    }
    return NULL;
}

static void
fini_cond_with_waiter(void *arg)
{
    (void)arg;
    weft_thread_t *t = wt_start(cond_waiter, NULL);
    (void)t;
    weft_sleep_for(20 * WEFT_MSEC);
    weft_cond_fini(&a_cond);
}

static weft_barrier_t a_barrier;

static void *
barrier_waiter(void *arg)
{
    ignore(weft_barrier_wait(arg, NULL));
    return NULL;
}

static void
fini_barrier_with_waiter(void *arg)
{
    (void)arg;
    ignore(weft_barrier_init(&a_barrier, 2, NULL, NULL));
    weft_thread_t *t = wt_start(barrier_waiter, &a_barrier);
    (void)t;
    weft_sleep_for(20 * WEFT_MSEC);
    weft_barrier_fini(&a_barrier);
}

static const struct death misuse_cases[] = {
    {unlock_by_non_owner, "not by the calling thread"},
    {unlock_unlocked, "is not locked"},
    {relock_by_owner, "would deadlock"},
    {relock_until_by_owner, "would deadlock"},
    {fini_held_mutex, "weft_mutex_fini: mutex"},
    {fini_held_rlock, "weft_rlock_fini: rlock"},
    {cond_wait_unheld, "is not held by the calling thread"},
    {once_recursion, "called again from its own function"},
    {fini_sem_with_waiter, "has 1 waiters"},
    {fini_cond_with_waiter, "has 1 waiters"},
    {fini_barrier_with_waiter, "has 1 waiters"},
};

static void
test_misuse_dies(void **state)
{
    (void)state;
    size_t n = sizeof(misuse_cases) / sizeof(misuse_cases[0]);
    for (size_t i = 0; i < n; i++) {
        if (!wt_dies_with(misuse_cases[i].fn, NULL, misuse_cases[i].expect)) {
            fail_msg("case %zu (%s) did not die as expected", i,
                     misuse_cases[i].expect);
        }
    }
}

/* The messages name both threads. */
static void
test_unlock_message_names_owner(void **state)
{
    (void)state;
    char expect[96];
    /* The child's first thread keeps the id it had in the parent. */
    snprintf(expect, sizeof(expect), "not by the calling thread %u",
             weft_thread_id());
    assert_true(wt_dies_with(unlock_by_non_owner, NULL, expect));
    assert_true(wt_dies_with(unlock_by_non_owner, NULL, "is held by thread "));
}

/* ------------------------------------------------------------------------ */
/* Runtime errors: documented codes, objects untouched.                      */

struct rlock_other {
    weft_rlock_t *r;
    int release_rc;
    int try_rc;
};

static void *
rlock_other_thread(void *arg)
{
    struct rlock_other *o = arg;
    o->release_rc = weft_rlock_release(o->r);
    o->try_rc = weft_rlock_try_acquire(o->r);
    return NULL;
}

static void
test_rlock_release_by_non_owner(void **state)
{
    (void)state;
    weft_rlock_t r = WEFT_RLOCK_INIT;
    assert_int_equal(weft_rlock_acquire(&r), WEFT_OK);
    assert_int_equal(weft_rlock_acquire(&r), WEFT_OK);
    struct rlock_other o = {&r, 1, 1};
    wt_join(wt_start(rlock_other_thread, &o));
    assert_int_equal(o.release_rc, WEFT_EPERM);
    /* Still held by its owner, at the same depth. */
    assert_int_equal(o.try_rc, WEFT_EAGAIN);
    assert_int_equal(weft_rlock_depth(&r), 2);
    assert_int_equal(weft_rlock_release(&r), WEFT_OK);
    assert_int_equal(weft_rlock_release(&r), WEFT_OK);
    assert_int_equal(weft_rlock_release(&r), WEFT_EPERM);
    weft_rlock_fini(&r);
}

static void
test_runtime_errors(void **state)
{
    (void)state;
    weft_sem_t s;
    assert_int_equal(weft_sem_init_bounded(&s, 3, 2), WEFT_EINVAL);
    assert_int_equal(weft_sem_init_bounded(&s, 0, 0), WEFT_EINVAL);
    assert_int_equal(weft_sem_init(&s, WEFT_SEM_VALUE_MAX + 1u), WEFT_EINVAL);

    assert_int_equal(weft_sem_init_bounded(&s, 1, 2), WEFT_OK);
    assert_int_equal(weft_sem_release(&s, 0), WEFT_EINVAL);
    assert_int_equal(weft_sem_release(&s, 2), WEFT_ERANGE);
    assert_int_equal(weft_sem_value(&s), 1);
    assert_int_equal(weft_sem_release(&s, 1), WEFT_OK);
    assert_int_equal(weft_sem_release(&s, 1), WEFT_ERANGE);
    assert_int_equal(weft_sem_value(&s), 2);
    weft_sem_fini(&s);

    weft_barrier_t b;
    assert_int_equal(weft_barrier_init(&b, 0, NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_barrier_init(&b, (1u << 30) + 1, NULL, NULL),
                     WEFT_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* WEFT_ECANCELED from every cancellable wait.                               */

enum op {
    OP_MUTEX_LOCK,
    OP_MUTEX_LOCK_UNTIL,
    OP_RLOCK_ACQUIRE,
    OP_RLOCK_ACQUIRE_UNTIL,
    OP_SEM_ACQUIRE,
    OP_SEM_ACQUIRE_UNTIL,
    OP_EVENT_WAIT,
    OP_EVENT_WAIT_UNTIL,
    OP_COND_WAIT,
    OP_COND_WAIT_UNTIL,
    OP_COND_WAIT_FOR,
    OP_BARRIER_WAIT,
    OP_BARRIER_WAIT_UNTIL,
    OP_COUNT,
};

/* Every primitive, in the state where the waits below block. */
struct prims {
    weft_mutex_t m;
    weft_rlock_t r;
    weft_sem_t s;
    weft_event_t e;
    weft_mutex_t cm;
    weft_cond_t c;
    weft_barrier_t b;
};

struct victim {
    struct prims *p;
    enum op op;
    struct canceller cx;
    _Atomic int started;
    int rc;
    bool held_after; /* what the caller holds on return */
};

/* Condition waits may return WEFT_OK spuriously: wait on. */
static int
cond_wait_loop(struct prims *p, weft_time_t deadline)
{
    int rc;
    do {
        rc = deadline == WEFT_FOREVER
                 ? weft_cond_wait(&p->c, &p->cm)
                 : weft_cond_wait_until(&p->c, &p->cm, deadline);
    } while (rc == WEFT_OK);
    return rc;
}

static int
blocking_call(struct victim *v)
{
    struct prims *p = v->p;
    weft_time_t far = weft_deadline_in(60 * WEFT_SEC);
    switch (v->op) {
    case OP_MUTEX_LOCK:
        return weft_mutex_lock(&p->m);
    case OP_MUTEX_LOCK_UNTIL:
        return weft_mutex_lock_until(&p->m, far);
    case OP_RLOCK_ACQUIRE:
        return weft_rlock_acquire(&p->r);
    case OP_RLOCK_ACQUIRE_UNTIL:
        return weft_rlock_acquire_until(&p->r, far);
    case OP_SEM_ACQUIRE:
        return weft_sem_acquire(&p->s);
    case OP_SEM_ACQUIRE_UNTIL:
        return weft_sem_acquire_until(&p->s, far);
    case OP_EVENT_WAIT:
        return weft_event_wait(&p->e);
    case OP_EVENT_WAIT_UNTIL:
        return weft_event_wait_until(&p->e, far);
    case OP_COND_WAIT:
        return cond_wait_loop(p, WEFT_FOREVER);
    case OP_COND_WAIT_UNTIL:
        return cond_wait_loop(p, far);
    case OP_COND_WAIT_FOR:
        return weft_cond_wait_for(&p->c, &p->cm, never, NULL, far);
    case OP_BARRIER_WAIT:
        return weft_barrier_wait(&p->b, NULL);
    case OP_BARRIER_WAIT_UNTIL:
        return weft_barrier_wait_until(&p->b, NULL, far);
    case OP_COUNT:
        break;
    }
    return 1;
}

static bool
is_cond_op(enum op op)
{
    return op == OP_COND_WAIT || op == OP_COND_WAIT_UNTIL ||
           op == OP_COND_WAIT_FOR;
}

static void *
victim_thread(void *arg)
{
    struct victim *v = arg;
    cancellable_begin(&v->cx);
    if (is_cond_op(v->op)) {
        assert_int_equal(weft_mutex_lock(&v->p->cm), WEFT_OK);
    }
    atomic_store(&v->started, 1);
    v->rc = blocking_call(v);
    if (is_cond_op(v->op)) {
        v->held_after = weft_mutex_is_held(&v->p->cm);
        weft_mutex_unlock(&v->p->cm);
    } else {
        v->held_after =
            weft_mutex_is_held(&v->p->m) || weft_rlock_depth(&v->p->r) != 0;
    }
    cancellable_end(&v->cx);
    return NULL;
}

/* A thread that waits on the barrier without being cancelled. */
static void *
barrier_partner(void *arg)
{
    struct victim *v = arg;
    v->rc = weft_barrier_wait(&v->p->b, NULL);
    return NULL;
}

static void
cancel_one(enum op op)
{
    static struct prims p;
    weft_mutex_init(&p.m);
    weft_rlock_init(&p.r);
    assert_int_equal(weft_sem_init(&p.s, 0), WEFT_OK);
    weft_event_init(&p.e);
    weft_mutex_init(&p.cm);
    weft_cond_init(&p.c);
    assert_int_equal(weft_barrier_init(&p.b, 3, NULL, NULL), WEFT_OK);
    /* Held by this thread, so the victim blocks. */
    assert_int_equal(weft_mutex_lock(&p.m), WEFT_OK);
    assert_int_equal(weft_rlock_acquire(&p.r), WEFT_OK);

    struct victim partner = {&p, OP_COUNT, CX_INIT, 0, 1, false};
    weft_thread_t *pt = NULL;
    if (op == OP_BARRIER_WAIT || op == OP_BARRIER_WAIT_UNTIL) {
        pt = wt_start(barrier_partner, &partner);
    }
    struct victim v = {&p, op, CX_INIT, 0, 1, true};
    weft_thread_t *t = wt_start(victim_thread, &v);
    while (!atomic_load(&v.started)) {
        weft_sleep_for(100 * WEFT_USEC);
    }
    weft_sleep_for(5 * WEFT_MSEC); /* let it park */
    weft_thread_t *kick;
    if (is_cond_op(op)) {
        /* Cancelled while the mutex is held elsewhere: it must wait for
         * the mutex before it returns. */
        assert_int_equal(weft_mutex_lock(&p.cm), WEFT_OK);
        kick = wt_start(kicker, &v.cx);
        weft_sleep_for(5 * WEFT_MSEC);
        assert_int_equal(v.rc, 1);
        weft_mutex_unlock(&p.cm);
    } else {
        kick = wt_start(kicker, &v.cx);
    }
    wt_join(t);
    wt_join(kick);
    assert_int_equal(v.rc, WEFT_ECANCELED);
    /* Holds the condition's mutex again; holds no lock it waited for. */
    assert_int_equal(v.held_after, is_cond_op(op));
    if (pt != NULL) {
        wt_join(pt);
        assert_int_equal(partner.rc, WEFT_EBROKEN);
        assert_true(weft_barrier_is_broken(&p.b));
    }
    /* The objects are intact: no waiter left registered, locks usable. */
    weft_mutex_unlock(&p.m);
    assert_int_equal(weft_rlock_release(&p.r), WEFT_OK);
    assert_int_equal(weft_sem_value(&p.s), 0);
    assert_int_equal(weft_barrier_n_waiting(&p.b), 0);
    weft_mutex_fini(&p.m);
    weft_rlock_fini(&p.r);
    weft_sem_fini(&p.s);
    weft_event_fini(&p.e);
    weft_cond_fini(&p.c);
    weft_mutex_fini(&p.cm);
    weft_barrier_fini(&p.b);
}

static void
test_cancel_every_wait(void **state)
{
    (void)state;
    for (int op = 0; op < OP_COUNT; op++) {
        cancel_one((enum op)op);
    }
}

/*
 * Start a thread and wait until it sleeps in weft__park, so threads queue
 * in the kernel in start order (futex wakes go first come, first served
 * among equal priorities): the first one gets the next wake-up.
 */
static weft_thread_t *
start_parked(void *(*fn)(void *), void *arg, struct canceller *cx)
{
    weft_thread_t *t = wt_start(fn, arg);
    while (atomic_load(&cx->parked_on) == NULL) {
        weft_sleep_for(100 * WEFT_USEC);
    }
    weft_sleep_for(2 * WEFT_MSEC); /* from parked_on into the kernel */
    return t;
}

static void
join_kicker(weft_thread_t *kick)
{
    if (kick != NULL) {
        wt_join(kick);
    }
}

/* A cancelled waiter on a mutex must not strand the waiters behind it. */
struct mutex_waiter {
    weft_mutex_t *m;
    struct canceller cx;
    int rc;
};

static void *
mutex_waiter_thread(void *arg)
{
    struct mutex_waiter *w = arg;
    cancellable_begin(&w->cx);
    w->rc = weft_mutex_lock_until(w->m, weft_deadline_in(60 * WEFT_SEC));
    if (w->rc == WEFT_OK) {
        weft_mutex_unlock(w->m);
    }
    cancellable_end(&w->cx);
    return NULL;
}

static void
test_cancel_keeps_other_waiters(void **state)
{
    (void)state;
    for (int round = 0; round < 12; round++) {
        weft_mutex_t m = WEFT_MUTEX_INIT;
        assert_int_equal(weft_mutex_lock(&m), WEFT_OK);
        struct mutex_waiter a = {&m, CX_INIT, 1};
        struct mutex_waiter b = {&m, CX_OBSERVED, 1};
        weft_thread_t *ta = start_parked(mutex_waiter_thread, &a, &a.cx);
        weft_thread_t *tb = start_parked(mutex_waiter_thread, &b, &b.cx);
        weft_thread_t *kick = NULL;
        int mode = round < 6 ? CANCELLED : TIMED_OUT;
        a.cx.kick_value = mode;
        switch (round % 3) {
        case 0: /* the unlock wakes a, which is cancelled: b's turn */
            atomic_store(&a.cx.flag, mode);
            weft_mutex_unlock(&m);
            kick = wt_start(kicker, &a.cx); /* in case b was first in line */
            break;
        case 1:
            weft_mutex_unlock(&m);
            kick = wt_start(kicker, &a.cx);
            break;
        default:
            kick = wt_start(kicker, &a.cx);
            weft_mutex_unlock(&m);
            break;
        }
        wt_join(ta);
        join_kicker(kick);
        wt_join(tb); /* hangs (ctest timeout) if b's wake-up was lost */
        assert_true(a.rc == WEFT_OK ||
                    a.rc ==
                        (mode == CANCELLED ? WEFT_ECANCELED : WEFT_ETIMEDOUT));
        assert_int_equal(b.rc, WEFT_OK);
        weft_mutex_fini(&m);
    }
}

/* The same for a semaphore: a cancelled sleeper passes on the wake-up of a
 * permit it does not take. */
struct sem_waiter {
    weft_sem_t *s;
    struct canceller cx;
    int rc;
};

static void *
sem_waiter_thread(void *arg)
{
    struct sem_waiter *w = arg;
    cancellable_begin(&w->cx);
    w->rc = weft_sem_acquire_until(w->s, weft_deadline_in(60 * WEFT_SEC));
    cancellable_end(&w->cx);
    return NULL;
}

static void
test_cancel_keeps_sem_waiters(void **state)
{
    (void)state;
    for (int round = 0; round < 12; round++) {
        weft_sem_t s;
        assert_int_equal(weft_sem_init(&s, 0), WEFT_OK);
        struct sem_waiter a = {&s, CX_INIT, 1};
        struct sem_waiter b = {&s, CX_OBSERVED, 1};
        weft_thread_t *ta = start_parked(sem_waiter_thread, &a, &a.cx);
        weft_thread_t *tb = start_parked(sem_waiter_thread, &b, &b.cx);
        weft_thread_t *kick = NULL;
        int mode = round < 6 ? CANCELLED : TIMED_OUT;
        a.cx.kick_value = mode;
        switch (round % 3) {
        case 0: /* the release wakes a, which is cancelled: b's turn */
            atomic_store(&a.cx.flag, mode);
            assert_int_equal(weft_sem_release(&s, 1), WEFT_OK);
            kick = wt_start(kicker, &a.cx); /* in case b was first in line */
            break;
        case 1:
            assert_int_equal(weft_sem_release(&s, 1), WEFT_OK);
            kick = wt_start(kicker, &a.cx);
            break;
        default:
            kick = wt_start(kicker, &a.cx);
            assert_int_equal(weft_sem_release(&s, 1), WEFT_OK);
            break;
        }
        wt_join(ta);
        join_kicker(kick);
        if (a.rc == WEFT_OK) {
            assert_int_equal(weft_sem_release(&s, 1), WEFT_OK);
        } else {
            assert_int_equal(a.rc, mode == CANCELLED ? WEFT_ECANCELED
                                                     : WEFT_ETIMEDOUT);
        }
        wt_join(tb); /* hangs (ctest timeout) if b's wake-up was lost */
        assert_int_equal(b.rc, WEFT_OK);
        assert_int_equal(weft_sem_value(&s), 0);
        weft_sem_fini(&s);
    }
}

/* And for a condition: a cancelled waiter passes a signal on. */
struct cond_box {
    weft_mutex_t m;
    weft_cond_t c;
    int tokens;
};

struct cond_taker {
    struct cond_box *box;
    struct canceller cx;
    int rc;
};

static bool
box_has_token(void *arg)
{
    return ((struct cond_box *)arg)->tokens > 0;
}

static void *
cond_taker_thread(void *arg)
{
    struct cond_taker *t = arg;
    cancellable_begin(&t->cx);
    assert_int_equal(weft_mutex_lock(&t->box->m), WEFT_OK);
    /* Not wait_for: it would re-check the predicate after a timeout and
     * take the token anyway. A caller that gives up on a timeout must not
     * swallow a signal. */
    weft_time_t deadline = weft_deadline_in(60 * WEFT_SEC);
    int rc = WEFT_OK;
    while (!box_has_token(t->box) && rc == WEFT_OK) {
        rc = weft_cond_wait_until(&t->box->c, &t->box->m, deadline);
    }
    t->rc = rc;
    if (t->rc == WEFT_OK) {
        t->box->tokens--;
    }
    weft_mutex_unlock(&t->box->m);
    cancellable_end(&t->cx);
    return NULL;
}

static void
give_token(struct cond_box *box)
{
    assert_int_equal(weft_mutex_lock(&box->m), WEFT_OK);
    box->tokens++;
    weft_mutex_unlock(&box->m);
    weft_cond_signal(&box->c);
}

static void
test_cancel_keeps_cond_waiters(void **state)
{
    (void)state;
    for (int round = 0; round < 12; round++) {
        struct cond_box box = {WEFT_MUTEX_INIT, WEFT_COND_INIT, 0};
        struct cond_taker a = {&box, CX_INIT, 1};
        struct cond_taker b = {&box, CX_OBSERVED, 1};
        weft_thread_t *ta = start_parked(cond_taker_thread, &a, &a.cx);
        weft_thread_t *tb = start_parked(cond_taker_thread, &b, &b.cx);
        weft_thread_t *kick = NULL;
        int mode = round < 6 ? CANCELLED : TIMED_OUT;
        a.cx.kick_value = mode;
        switch (round % 3) {
        case 0: /* the signal wakes a, which is cancelled: b's turn */
            atomic_store(&a.cx.flag, mode);
            give_token(&box);
            kick = wt_start(kicker, &a.cx); /* in case b was first in line */
            break;
        case 1:
            give_token(&box);
            kick = wt_start(kicker, &a.cx);
            break;
        default:
            kick = wt_start(kicker, &a.cx);
            give_token(&box);
            break;
        }
        wt_join(ta);
        join_kicker(kick);
        if (a.rc == WEFT_OK) {
            give_token(&box);
        } else {
            assert_int_equal(a.rc, mode == CANCELLED ? WEFT_ECANCELED
                                                     : WEFT_ETIMEDOUT);
        }
        wt_join(tb); /* hangs (ctest timeout) if the signal was lost */
        assert_int_equal(b.rc, WEFT_OK);
        assert_int_equal(box.tokens, 0);
        weft_cond_fini(&box.c);
        weft_mutex_fini(&box.m);
    }
}

/* weft_once is not cancellable: a cancelled caller still waits for fn. */
struct once_ctx {
    weft_once_t once;
    weft_event_t inside;
    weft_event_t go;
    int ready;
    struct canceller cx;
    _Atomic int returned;
};

static void
slow_fn(void *arg)
{
    struct once_ctx *c = arg;
    weft_event_set(&c->inside);
    assert_int_equal(weft_event_wait(&c->go), WEFT_OK);
    c->ready = 1;
}

static void *
once_runner(void *arg)
{
    weft_once(&((struct once_ctx *)arg)->once, slow_fn, arg);
    return NULL;
}

static void *
once_cancelled_caller(void *arg)
{
    struct once_ctx *c = arg;
    cancellable_begin(&c->cx);
    weft_once(&c->once, slow_fn, c);
    assert_int_equal(c->ready, 1);
    atomic_store(&c->returned, 1);
    cancellable_end(&c->cx);
    return NULL;
}

static void
test_once_ignores_cancel(void **state)
{
    (void)state;
    static struct once_ctx c = {WEFT_ONCE_INIT,
                                WEFT_EVENT_INIT,
                                WEFT_EVENT_INIT,
                                0,
                                {CANCELLED, NULL, 0, 1, CANCELLED},
                                0};
    weft_thread_t *runner = wt_start(once_runner, &c);
    assert_int_equal(weft_event_wait(&c.inside), WEFT_OK);
    weft_thread_t *caller = wt_start(once_cancelled_caller, &c);
    weft_sleep_for(10 * WEFT_MSEC);
    assert_int_equal(atomic_load(&c.returned), 0);
    weft_event_set(&c.go);
    wt_join(runner);
    wt_join(caller);
    assert_int_equal(atomic_load(&c.returned), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_handles),
        cmocka_unit_test(test_misuse_dies),
        cmocka_unit_test(test_unlock_message_names_owner),
        cmocka_unit_test(test_rlock_release_by_non_owner),
        cmocka_unit_test(test_runtime_errors),
        cmocka_unit_test(test_cancel_every_wait),
        cmocka_unit_test(test_cancel_keeps_other_waiters),
        cmocka_unit_test(test_cancel_keeps_sem_waiters),
        cmocka_unit_test(test_cancel_keeps_cond_waiters),
        cmocka_unit_test(test_once_ignores_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
