/* SPDX-License-Identifier: MIT */
/*
 * Wake-up latency: ping-pong round trips between two threads. A pair of
 * weft_event (wait on one's own, clear it, set the other's) against a pthread
 * mutex + condition variable hand-off with a turn flag; and a pair of
 * weft_sem against a pair of POSIX sem_t.
 */
#define _POSIX_C_SOURCE 200809L

#include <semaphore.h>

#include "bench_util.h"

/*
 * DESIGN
 * Side A (the timing thread) and side B pass a ball, a plain counter that
 * only the side holding the turn touches: A finds it at 2i and makes it
 * 2i+1, B finds it at 2i+1 and makes it 2i+2. The hand-off primitive is the
 * only synchronization, so a lost wake-up hangs the run (bench/run kills it
 * on a timeout) and a hand-off that fails to order memory shows as a wrong
 * ball. One round trip is A -> B -> A.
 */

#define DEFAULT_ROUND_TRIPS UINT64_C(100000)

typedef struct pingpong pingpong_t;

typedef struct pp_impl {
    const char *bench;
    const char *name;
    void (*init)(pingpong_t *pp);
    void (*fini)(pingpong_t *pp);
    void (*pass)(pingpong_t *pp, int to); /* give the turn to side `to` */
    void (*wait)(pingpong_t *pp, int me); /* wait for side `me`'s turn */
} pp_impl_t;

struct pingpong {
    const pp_impl_t *im;
    uint64_t rounds;
    uint64_t ball;
    union {
        weft_event_t ev[2];
        weft_sem_t ws[2];
        sem_t ps[2];
        struct {
            pthread_mutex_t mu;
            pthread_cond_t cv[2];
            int turn;
        } cond;
    } u;
};

/* ------------------------------------------------------------------------ */
/* weft_event: each side waits on its own event, clears it, sets the other's */

static void
event_init(pingpong_t *pp)
{
    weft_event_init(&pp->u.ev[0]);
    weft_event_init(&pp->u.ev[1]);
}

static void
event_fini(pingpong_t *pp)
{
    weft_event_fini(&pp->u.ev[0]);
    weft_event_fini(&pp->u.ev[1]);
}

static void
event_pass(pingpong_t *pp, int to)
{
    weft_event_set(&pp->u.ev[to]);
}

/* The clear cannot swallow the next set: the other side sets this event
 * again only after this side has passed the turn back. */
static void
event_wait(pingpong_t *pp, int me)
{
    bench_check_weft(weft_event_wait(&pp->u.ev[me]), "weft_event_wait");
    weft_event_clear(&pp->u.ev[me]);
}

/* ------------------------------------------------------------------------ */
/* pthread mutex + condition variable with a turn flag                       */

static void
cond_init(pingpong_t *pp)
{
    bench_check(pthread_mutex_init(&pp->u.cond.mu, NULL), "mutex_init");
    bench_check(pthread_cond_init(&pp->u.cond.cv[0], NULL), "cond_init");
    bench_check(pthread_cond_init(&pp->u.cond.cv[1], NULL), "cond_init");
    pp->u.cond.turn = 0;
}

static void
cond_fini(pingpong_t *pp)
{
    pthread_cond_destroy(&pp->u.cond.cv[1]);
    pthread_cond_destroy(&pp->u.cond.cv[0]);
    pthread_mutex_destroy(&pp->u.cond.mu);
}

static void
cond_pass(pingpong_t *pp, int to)
{
    pthread_mutex_lock(&pp->u.cond.mu);
    pp->u.cond.turn = to;
    pthread_cond_signal(&pp->u.cond.cv[to]);
    pthread_mutex_unlock(&pp->u.cond.mu);
}

static void
cond_wait(pingpong_t *pp, int me)
{
    pthread_mutex_lock(&pp->u.cond.mu);
    while (pp->u.cond.turn != me) {
        pthread_cond_wait(&pp->u.cond.cv[me], &pp->u.cond.mu);
    }
    pthread_mutex_unlock(&pp->u.cond.mu);
}

/* ------------------------------------------------------------------------ */
/* weft_sem pair                                                             */

static void
wsem_init(pingpong_t *pp)
{
    bench_check_weft(weft_sem_init(&pp->u.ws[0], 0), "weft_sem_init");
    bench_check_weft(weft_sem_init(&pp->u.ws[1], 0), "weft_sem_init");
}

static void
wsem_fini(pingpong_t *pp)
{
    weft_sem_fini(&pp->u.ws[0]);
    weft_sem_fini(&pp->u.ws[1]);
}

static void
wsem_pass(pingpong_t *pp, int to)
{
    bench_check_weft(weft_sem_release(&pp->u.ws[to], 1), "weft_sem_release");
}

static void
wsem_wait(pingpong_t *pp, int me)
{
    bench_check_weft(weft_sem_acquire(&pp->u.ws[me]), "weft_sem_acquire");
}

/* ------------------------------------------------------------------------ */
/* POSIX sem_t pair                                                          */

static void
psem_init(pingpong_t *pp)
{
    if (sem_init(&pp->u.ps[0], 0, 0) != 0 || sem_init(&pp->u.ps[1], 0, 0)) {
        bench_fail("sem_init: %s", strerror(errno));
    }
}

static void
psem_fini(pingpong_t *pp)
{
    sem_destroy(&pp->u.ps[0]);
    sem_destroy(&pp->u.ps[1]);
}

static void
psem_pass(pingpong_t *pp, int to)
{
    if (sem_post(&pp->u.ps[to]) != 0) {
        bench_fail("sem_post: %s", strerror(errno));
    }
}

static void
psem_wait(pingpong_t *pp, int me)
{
    while (sem_wait(&pp->u.ps[me]) != 0) {
        if (errno != EINTR) {
            bench_fail("sem_wait: %s", strerror(errno));
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Harness                                                                   */

static const pp_impl_t impls[] = {
    {"event", "weft", event_init, event_fini, event_pass, event_wait},
    {"event", "pthread-cond", cond_init, cond_fini, cond_pass, cond_wait},
    {"sem", "weft", wsem_init, wsem_fini, wsem_pass, wsem_wait},
    {"sem", "posix-sem", psem_init, psem_fini, psem_pass, psem_wait},
};
#define N_IMPLS (sizeof(impls) / sizeof(impls[0]))

static void
check_ball(const pingpong_t *pp, uint64_t want)
{
    if (pp->ball != want) {
        bench_fail("%s %s: the ball is at %" PRIu64 ", expected %" PRIu64,
                   pp->im->bench, pp->im->name, pp->ball, want);
    }
}

static void *
side_b(void *arg)
{
    pingpong_t *pp = arg;

    for (uint64_t i = 0; i < pp->rounds; i++) {
        pp->im->wait(pp, 1);
        check_ball(pp, 2 * i + 1);
        pp->ball++;
        pp->im->pass(pp, 0);
    }
    return NULL;
}

/* Runs side A in the calling thread; returns seconds for all round trips. */
static double
side_a(pingpong_t *pp)
{
    weft_time_t start = weft_now();

    for (uint64_t i = 0; i < pp->rounds; i++) {
        check_ball(pp, 2 * i);
        pp->ball++;
        pp->im->pass(pp, 1);
        pp->im->wait(pp, 0);
    }
    double secs = bench_seconds(start, weft_now());
    check_ball(pp, 2 * pp->rounds);
    return secs;
}

static void
measure(const pp_impl_t *im, uint64_t rounds)
{
    pingpong_t pp;
    pthread_t b;
    double secs;

    memset(&pp, 0, sizeof(pp));
    pp.im = im;
    pp.rounds = rounds;
    im->init(&pp);
    bench_start(&b, side_b, &pp);
    secs = side_a(&pp);
    bench_join(b);
    im->fini(&pp);
    bench_result(im->bench, im->name, "threads=2", "rt_per_s",
                 (double)rounds / secs);
    bench_result(im->bench, im->name, "threads=2", "us_per_rt",
                 secs * 1e6 / (double)rounds);
}

int
main(int argc, char **argv)
{
    bench_args_t a =
        bench_parse_args(argc, argv, "ROUND_TRIPS", DEFAULT_ROUND_TRIPS);

    for (size_t k = 0; k < N_IMPLS; k++) {
        const pp_impl_t *im = &impls[bench_order(k, a.rep, N_IMPLS)];

        if (bench_selected(&a, im->name)) {
            measure(im, a.n);
        }
    }
    return 0;
}
