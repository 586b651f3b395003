/* SPDX-License-Identifier: MIT */
/*
 * Metrics internals shared by metrics.c (collection, snapshots),
 * metrics_export.c (Prometheus text, JSON) and metrics_http.c (endpoint):
 * the log-linear histogram buckets and the full snapshot the exporters
 * read (the public snapshot plus the bucket counts).
 */
#ifndef WEFT_METRICS_IMPL_H
#define WEFT_METRICS_IMPL_H

#include <weft/metrics.h>

#include "internal.h"

/*
 * Histogram buckets: values 0..8 ns get one bucket each (0 and 1 share
 * bucket 0); above, every power of two is split in 8 equal buckets, up to
 * 2^42 ns (~73 min; beyond, the last bucket). Bucket i holds the values v
 * with lo(i) < v <= hi(i), so a power of two is an exact upper bound
 * (Prometheus "le" is inclusive).
 */
#define WEFT__HIST_SUB 8
#define WEFT__HIST_MAXEXP 42
#define WEFT__HIST_NB (WEFT__HIST_SUB * (WEFT__HIST_MAXEXP - 3 + 2))

static inline unsigned
weft__hist_index(uint64_t v)
{
    if (v <= 1) {
        return 0;
    }
    uint64_t x = v - 1; /* buckets are (lo, hi] */
    if (x < WEFT__HIST_SUB) {
        return (unsigned)x;
    }
    unsigned e = 63u - (unsigned)__builtin_clzll(x); /* >= 3 */
    if (e > WEFT__HIST_MAXEXP) {
        return WEFT__HIST_NB - 1;
    }
    unsigned sub = (unsigned)(x >> (e - 3)) & (WEFT__HIST_SUB - 1);
    return WEFT__HIST_SUB + (e - 3) * WEFT__HIST_SUB + sub;
}

/* The inclusive upper bound of bucket i. */
static inline uint64_t
weft__hist_upper(unsigned i)
{
    if (i < WEFT__HIST_SUB) {
        return (uint64_t)i + 1;
    }
    unsigned e = (i - WEFT__HIST_SUB) / WEFT__HIST_SUB + 3;
    uint64_t sub = (i - WEFT__HIST_SUB) % WEFT__HIST_SUB;
    return ((WEFT__HIST_SUB + sub + 1) << (e - 3));
}

/* A merged histogram. */
typedef struct weft__hist_full {
    uint64_t b[WEFT__HIST_NB];
    uint64_t sum, max;
} weft__hist_full_t;

/* A snapshot with the bucket counts of every pool (hist[2*i] the wait and
 * hist[2*i+1] the run time of pools[i]). */
typedef struct weft__metrics_full {
    weft_metrics_snapshot_t *s;
    weft__hist_full_t *hist;
} weft__metrics_full_t;

/* Take a full snapshot (metrics.c). */
int weft__metrics_take(weft__metrics_full_t *f);
void weft__metrics_full_free(weft__metrics_full_t *f);

/* Count, quantiles and max of a merged histogram. */
void weft__hist_summarise(const weft__hist_full_t *h, weft_metrics_hist_t *out);

#endif /* WEFT_METRICS_IMPL_H */
