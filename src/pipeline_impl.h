/* SPDX-License-Identifier: MIT */
/*
 * Private layout of weft_pipeline_t, shared by the build/lifetime functions
 * (pipeline.c), the engine that moves items through the stages
 * (pipeline_run.c) and the ready-made sources (pipeline_source.c).
 */
#ifndef WEFT_PIPELINE_IMPL_H
#define WEFT_PIPELINE_IMPL_H

#include <weft/pipeline.h>
#include <weft/sync.h>

#include "internal.h"

#define WEFT__PIPE_STAGES_MAX 64u
#define WEFT__PIPE_NAME_MAX 31u

/*
 * A token: the unit that flows through the stages. It carries the items
 * made from source items seq .. seq + span - 1 (span > 1 only after a
 * batch stage merged tokens), n of them (0 after a filter). Tokens come
 * from a fixed set of max_in_flight, recycled through a free stack.
 */
typedef struct weft__token {
    struct weft__token *next; /* free stack, FIFO buffer */
    uint64_t seq;
    uint32_t span;
    uint32_t n, cap; /* items held, capacity of items */
    unsigned stage;  /* the stage it goes to next */
    void **items;    /* &one when cap == 1, else heap */
    void *one;
    weft_time_t parked_at; /* metrics: when it entered a buffer */
    struct weft_pipeline *pipe;
} weft__token_t;

/* Per-thread-slot counters of one stage (updated by the slot's owner). */
typedef struct weft__stage_cell {
    _Atomic uint64_t in, out, dropped, filtered, busy_ns, wait_ns;
} weft__stage_cell_t;

typedef enum weft__stage_kind {
    WEFT__STAGE_MAP = 0,
    WEFT__STAGE_FLAT,
    WEFT__STAGE_BATCH,
} weft__stage_kind_t;

typedef struct weft__stage_rt {
    weft_stage_t cfg;
    char name[WEFT__PIPE_NAME_MAX + 1];
    weft__stage_kind_t kind;
    unsigned limit;   /* concurrent calls allowed (UINT_MAX: unlimited) */
    bool gated;       /* limit or order applies: the buffer is used */
    bool merge;       /* batch stage that may merge waiting tokens */
    bool order_after; /* an ordered stage comes after this one */
    /* Guarded by mu (gated stages only). On lines of their own: carriers
     * read the fields above on every item while a thread holds mu. The
     * stages array is cache-line aligned. */
    WEFT__ALIGNED_CL weft_mutex_t mu;
    unsigned running;
    uint64_t expected;          /* ordered: next sequence number to run */
    weft__token_t **ring;       /* ordered: max_in_flight slots, seq % size */
    size_t nring;               /* ordered: tokens in ring */
    weft__token_t *head, *tail; /* unordered: FIFO of waiting tokens */
    size_t nfifo;
    _Atomic size_t buffered; /* waiting tokens (for stats) */
    _Atomic size_t running_view;
} weft__stage_rt_t;

typedef enum weft__pipe_state {
    WEFT__PIPE_BUILDING = 0,
    WEFT__PIPE_RUNNING,
    WEFT__PIPE_FINISHED,
} weft__pipe_state_t;

struct weft_pipeline {
    /* Set before start, read-only afterwards. */
    char name[WEFT__PIPE_NAME_MAX + 1];
    weft_executor_t *ex;
    unsigned workers;
    size_t max_in_flight;
    size_t low_water; /* the source restarts when in_flight drops to it */
    size_t emit_max;
    bool source_blocking;
    weft_source_fn source;
    void *source_ctx;
    void (*source_fini)(weft_pipeline_t *p); /* ready-made sources */
    void *source_state;
    /* Frees the source's items when the first stage has no drop. */
    weft_item_drop_fn source_drop;
    weft__stage_rt_t *stages; /* nstages (the sink last) */
    unsigned nstages;
    size_t nslots;         /* cell slots: workers + 1 shared */
    size_t cell_stride;    /* bytes per slot (cache-line multiple) */
    unsigned char *cells;  /* nslots x (nstages + 1) cells; stage 0: source */
    weft__token_t *tokens; /* max_in_flight */

    _Atomic int state;
    weft_future_t *fut; /* the pipeline's promise (one reference) */
    weft_time_t started_at;
    _Atomic weft_time_t ended_at;

    /* Flow control: tokens admitted and not retired. */
    WEFT__ALIGNED_CL _Atomic size_t in_flight;
    /* Set once by the thread that ends the run (see pipeline_run.c). */
    _Atomic uint32_t finishing;
    /* The source: at most one thread runs it (owner of running). */
    WEFT__ALIGNED_CL _Atomic uint32_t source_running;
    _Atomic uint32_t source_done;
    uint64_t next_seq; /* owned by the source runner */
    /* Free tokens: the source runner's own list (passed on with
     * source_running), refilled by taking whole per-slot stacks that
     * finishing threads push to (one stack per cell slot, each on its own
     * cache line: see weft__pipe_free_stack). */
    weft__token_t *src_cache;
    unsigned char *free_stacks;
    weft__cancel_t source_token;

    /* Cancellation and the first failure. */
    WEFT__ALIGNED_CL _Atomic uint32_t cancelled;
    weft_mutex_t fail_mu;
    int fail_code;                 /* 0 none; under fail_mu */
    bool fail_external;            /* weft_pipeline_cancel, not a failure */
    char *fail_msg;                /* under fail_mu; "" until a failure */
    weft__cancel_t *worker_tokens; /* one per worker (running calls) */
};

/* Per cell slot, on a cache line of its own: the free-token stack the
 * slot's thread pushes to, and how many times that thread is inside the
 * pipeline's code now (destroy waits for every count to be 0). Slot
 * `workers` is shared by all other threads (atomic read-modify-writes). */
typedef struct weft__pipe_slot {
    _Atomic(weft__token_t *) free;
    _Atomic uint32_t inside;
} weft__pipe_slot_t;

static inline weft__pipe_slot_t *
weft__pipe_slot_of(const weft_pipeline_t *p, size_t slot)
{
    return (weft__pipe_slot_t *)(void *)(p->free_stacks + slot * 64u);
}

static inline _Atomic(weft__token_t *) *
weft__pipe_free_stack(const weft_pipeline_t *p, size_t slot)
{
    return &weft__pipe_slot_of(p, slot)->free;
}

/* Cells of stage s (0: source, 1..nstages) for thread slot k. */
static inline weft__stage_cell_t *
weft__pipe_cell(const weft_pipeline_t *p, size_t slot, unsigned s)
{
    return (weft__stage_cell_t *)(void *)(p->cells + slot * p->cell_stride) + s;
}

/* Engine (pipeline_run.c). */
int weft__pipe_launch(weft_pipeline_t *p);
/* Enter / leave the pipeline's code from the calling thread (slot as from
 * weft__pipe_slot); nests. */
void weft__pipe_enter(weft_pipeline_t *p, size_t slot);
void weft__pipe_leave(weft_pipeline_t *p, size_t slot);
void weft__pipe_finish(weft_pipeline_t *p);
void weft__pipe_cancel(weft_pipeline_t *p, bool external, int code,
                       const char *stage, uint64_t seq, const char *msg);
size_t weft__pipe_slot(const weft_pipeline_t *p);

/* The message weft_stage_fail recorded on this thread (taken: the caller
 * frees it), or NULL. */
char *weft__stage_take_msg(void);

#endif /* WEFT_PIPELINE_IMPL_H */
