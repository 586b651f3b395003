/* SPDX-License-Identifier: MIT */
/*
 * Internals shared by the trace recorder (trace.c) and its JSON writer
 * (trace_json.c): the per-thread ring and the layout of an event in it.
 */
#ifndef WEFT_TRACE_IMPL_H
#define WEFT_TRACE_IMPL_H

#include "internal.h"

/* Event types (low byte of word 1). */
enum {
    WEFT__TEV_TASK_B = 1, /* w2 id, w3 queued_at; label in LABEL slots */
    WEFT__TEV_TASK_E,     /* w2 id; code */
    WEFT__TEV_WAIT_B,     /* kind; w2 object */
    WEFT__TEV_WAIT_E,     /* kind; w2 object; code: the wait's result */
    WEFT__TEV_POOL,       /* kind: weft__pool_ev_t; w2 executor */
    WEFT__TEV_LABEL,      /* continuation: label bytes in w0, w2, w3 */
};

#define WEFT__TEV_WORDS 4
#define WEFT__TEV_LABEL_SLOTS 2            /* so labels keep up to 48 bytes */
#define WEFT__TEV_LABEL_CHUNK ((size_t)24) /* label bytes per slot */
#define WEFT__TEV_LABEL_MAX (WEFT__TEV_LABEL_SLOTS * WEFT__TEV_LABEL_CHUNK)

/*
 * One thread's ring. Slot i holds event number i (mod cap); head counts the
 * events ever written, base is head when this trace began. Only the owner
 * thread writes slots, head and base; the JSON writer reads them (see the
 * protocol in trace.c).
 */
typedef struct weft__trace_ring {
    _Atomic uint64_t head;
    _Atomic uint64_t base;
    _Atomic uint32_t gen;          /* trace the events from base on belong to */
    _Atomic uint32_t in_use;       /* an owner thread holds it */
    _Atomic uint32_t tid;          /* the owner's weft thread id */
    _Atomic uint32_t busy;         /* the owner is writing an event */
    size_t cap;                    /* power of two, fixed */
    struct weft__trace_ring *next; /* registry (list lock) */
    char name[32];                 /* owner's name (list lock) */
    _Atomic uint64_t *slots;       /* cap * WEFT__TEV_WORDS words */
} weft__trace_ring_t;

/* A decoded event. */
typedef struct weft__tev {
    weft_time_t ts;
    uint64_t seq; /* event number in its ring */
    uint64_t id;  /* task id or object */
    uint64_t aux; /* queued_at (task begin) */
    int code;
    int worker; /* -1: none */
    uint8_t type;
    uint8_t kind;
    char label[WEFT__TEV_LABEL_MAX + 1];
} weft__tev_t;

/* State of the current (or last) trace, for the writer: the rings that
 * hold its events (a new array, weft__free it), its generation and time
 * span. Call with the control lock held (weft__trace_lock). */
typedef struct weft__trace_snap {
    weft__trace_ring_t **rings;
    size_t n;
    uint32_t gen;
    weft_time_t t0;    /* start */
    weft_time_t t_end; /* stop, or now when still running */
    uint64_t dropped;  /* events not recorded (no memory) */
} weft__trace_snap_t;

void weft__trace_lock(void);
void weft__trace_unlock(void);
int weft__trace_snapshot(weft__trace_snap_t *s);

/* Copy of the name r's owner had when it took the ring. */
void weft__trace_ring_name(weft__trace_ring_t *r, char *buf, size_t len);

/*
 * Copy the events of r that belong to trace gen into out (room for r->cap
 * events); returns how many, and *lost the events the ring dropped.
 * Continuation slots are folded into their task-begin event.
 */
size_t weft__trace_ring_read(weft__trace_ring_t *r, uint32_t gen,
                             weft__tev_t *out, uint64_t *lost);

/* "mutex", "queue get"... for a weft__wait_kind_t; "submit"... for a pool
 * event. */
const char *weft__trace_wait_name(unsigned kind);
const char *weft__trace_pool_name(unsigned ev);

#endif /* WEFT_TRACE_IMPL_H */
