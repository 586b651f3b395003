/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for weft_queue_t, one thread at a time: every function, every
 * documented error, each queue kind, item sizes, exact capacities, drop.
 */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "queue_impl.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */

static int
cmp_u64(const void *a, const void *b, void *ctx)
{
    uint64_t x;
    uint64_t y;
    memcpy(&x, a, sizeof(x));
    memcpy(&y, b, sizeof(y));
    int r = (x > y) - (x < y);
    return ctx != NULL ? -r : r; /* ctx non-NULL: largest first */
}

/* Compares items of any size by their first byte. */
static int
cmp_first_byte(const void *a, const void *b, void *ctx)
{
    (void)ctx;
    const unsigned char *x = a;
    const unsigned char *y = b;
    return (int)x[0] - (int)y[0];
}

static weft_queue_t *
mk_cmp(weft_queue_order_t order, size_t cap, size_t es, weft_cmp_fn cmp)
{
    weft_queue_opts_t o = WEFT_QUEUE_OPTS_INIT;
    o.order = order;
    o.capacity = cap;
    o.elem_size = es;
    o.cmp = cmp;
    weft_queue_t *q = NULL;
    assert_int_equal(weft_queue_create(&o, &q), WEFT_OK);
    assert_non_null(q);
    return q;
}

static weft_queue_t *
mk(weft_queue_order_t order, size_t cap, size_t es)
{
    return mk_cmp(order, cap, es, cmp_u64);
}

typedef struct kind {
    const char *name;
    weft_queue_order_t order;
    size_t cap;
} kind_t;

/* Every kind, bounded (8) and unbounded. */
static const kind_t kinds[] = {
    {"ring", WEFT_QUEUE_FIFO, 8},
    {"fifo-unbounded", WEFT_QUEUE_FIFO, WEFT_QUEUE_UNBOUNDED},
    {"lifo", WEFT_QUEUE_LIFO, 8},
    {"lifo-unbounded", WEFT_QUEUE_LIFO, WEFT_QUEUE_UNBOUNDED},
    {"priority", WEFT_QUEUE_PRIORITY, 8},
    {"priority-unbounded", WEFT_QUEUE_PRIORITY, WEFT_QUEUE_UNBOUNDED},
};
#define N_KINDS (sizeof(kinds) / sizeof(kinds[0]))

/* ------------------------------------------------------------------------ */
/* Creation and snapshots                                                    */

static void
test_create_defaults(void **state)
{
    (void)state;
    weft_queue_t *q = NULL;
    assert_int_equal(weft_queue_create(NULL, &q), WEFT_OK);
    assert_int_equal(weft_queue_capacity(q), 1024);
    assert_int_equal(weft_queue_elem_size(q), sizeof(void *));
    assert_int_equal(weft_queue_size(q), 0);
    assert_true(weft_queue_empty(q));
    assert_false(weft_queue_full(q));
    assert_false(weft_queue_is_closed(q));
    assert_ptr_equal(q->ops, &weft__ring_ops);
    assert_null(q->name);
    weft_queue_destroy(q);
    weft_queue_destroy(NULL); /* a no-op */
}

static void
expect_einval(const weft_queue_opts_t *o)
{
    static char sentinel;
    weft_queue_t *q = (weft_queue_t *)(void *)&sentinel;
    assert_int_equal(weft_queue_create(o, &q), WEFT_EINVAL);
    assert_ptr_equal(q, (void *)&sentinel); /* untouched */
}

static void
test_create_errors(void **state)
{
    (void)state;
    weft_queue_opts_t o = WEFT_QUEUE_OPTS_INIT;
    o.capacity = 0;
    expect_einval(&o);
    o = (weft_queue_opts_t)WEFT_QUEUE_OPTS_INIT;
    o.elem_size = 0;
    expect_einval(&o);
    o.elem_size = WEFT_QUEUE_ELEM_MAX + 1;
    expect_einval(&o);
    o = (weft_queue_opts_t)WEFT_QUEUE_OPTS_INIT;
    o.order = WEFT_QUEUE_PRIORITY; /* no cmp */
    expect_einval(&o);
    o.order = (weft_queue_order_t)7;
    expect_einval(&o);
    o = (weft_queue_opts_t)WEFT_QUEUE_OPTS_INIT;
    assert_int_equal(weft_queue_create(&o, NULL), WEFT_EINVAL);
    /* cmp is ignored for the other orders, and the largest item is fine. */
    o.cmp = cmp_u64;
    o.elem_size = WEFT_QUEUE_ELEM_MAX;
    weft_queue_t *q = NULL;
    assert_int_equal(weft_queue_create(&o, &q), WEFT_OK);
    weft_queue_destroy(q);
}

static void
test_create_enomem(void **state)
{
    (void)state;
    weft_queue_opts_t o = WEFT_QUEUE_OPTS_INIT;
    o.capacity = SIZE_MAX / 2; /* a ring that size cannot exist */
    weft_queue_t *q = NULL;
    assert_int_equal(weft_queue_create(&o, &q), WEFT_ENOMEM);
    assert_null(q);
    /* The mutex-based kinds allocate lazily: a huge bound is fine. */
    o.order = WEFT_QUEUE_LIFO;
    assert_int_equal(weft_queue_create(&o, &q), WEFT_OK);
    assert_int_equal(weft_queue_capacity(q), SIZE_MAX / 2);
    weft_queue_destroy(q);
}

static void
test_name_copied(void **state)
{
    (void)state;
    char buf[32] = "jobs";
    weft_queue_opts_t o = WEFT_QUEUE_OPTS_INIT;
    o.name = buf;
    weft_queue_t *q = NULL;
    assert_int_equal(weft_queue_create(&o, &q), WEFT_OK);
    strcpy(buf, "changed");
    assert_non_null(q->name);
    assert_ptr_not_equal(q->name, buf);
    assert_string_equal(q->name, "jobs");
    weft_queue_destroy(q);
}

static void
test_kind_choice(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *q = mk(kinds[k].order, kinds[k].cap, 8);
        bool ring = kinds[k].order == WEFT_QUEUE_FIFO &&
                    kinds[k].cap != WEFT_QUEUE_UNBOUNDED;
        assert_ptr_equal(q->ops, ring ? &weft__ring_ops : &weft__lq_ops);
        assert_int_equal(weft_queue_capacity(q), kinds[k].cap);
        weft_queue_destroy(q);
    }
}

static void
test_snapshots(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *q = mk(kinds[k].order, kinds[k].cap, 8);
        assert_true(weft_queue_empty(q));
        for (uint64_t i = 0; i < 8; i++) {
            assert_int_equal(weft_queue_size(q), i);
            wt_put_u64(q, i);
            assert_false(weft_queue_empty(q));
        }
        assert_int_equal(weft_queue_size(q), 8);
        /* Only the bounded ones are full; unbounded never is. */
        assert_true(weft_queue_full(q) == (kinds[k].cap == 8));
        (void)wt_get_u64(q);
        assert_int_equal(weft_queue_size(q), 7);
        assert_false(weft_queue_full(q));
        assert_int_equal(weft_queue_elem_size(q), 8);
        weft_queue_destroy(q);
    }
}

/* ------------------------------------------------------------------------ */
/* Order                                                                     */

static void
test_fifo_order(void **state)
{
    (void)state;
    weft_queue_t *qs[2] = {mk(WEFT_QUEUE_FIFO, 5, 8),
                           mk(WEFT_QUEUE_FIFO, WEFT_QUEUE_UNBOUNDED, 8)};
    for (int k = 0; k < 2; k++) {
        /* Interleave so the ring's positions wrap many times. */
        uint64_t next_put = 0;
        uint64_t next_get = 0;
        for (int round = 0; round < 100; round++) {
            for (int i = 0; i < 1 + round % 5; i++) {
                wt_put_u64(qs[k], next_put++);
            }
            while (next_get < next_put) {
                assert_int_equal(wt_get_u64(qs[k]), next_get++);
            }
        }
        weft_queue_destroy(qs[k]);
    }
}

static void
test_lifo_order(void **state)
{
    (void)state;
    size_t caps[2] = {100, WEFT_QUEUE_UNBOUNDED};
    for (int k = 0; k < 2; k++) {
        weft_queue_t *q = mk(WEFT_QUEUE_LIFO, caps[k], 8);
        for (uint64_t i = 0; i < 100; i++) {
            wt_put_u64(q, i);
        }
        for (uint64_t i = 100; i-- > 50;) {
            assert_int_equal(wt_get_u64(q), i);
        }
        wt_put_u64(q, 1000);
        assert_int_equal(wt_get_u64(q), 1000);
        assert_int_equal(wt_get_u64(q), 49);
        weft_queue_destroy(q);
    }
}

static void
check_priority(size_t cap, void *ctx)
{
    weft_queue_opts_t o = WEFT_QUEUE_OPTS_INIT;
    o.order = WEFT_QUEUE_PRIORITY;
    o.capacity = cap;
    o.elem_size = 8;
    o.cmp = cmp_u64;
    o.cmp_ctx = ctx;
    weft_queue_t *q = NULL;
    assert_int_equal(weft_queue_create(&o, &q), WEFT_OK);
    uint64_t rs = 42;
    uint64_t prev = ctx != NULL ? UINT64_MAX : 0;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 50; i++) {
            wt_put_u64(q, wt_rand(&rs) % 100); /* many equal keys */
        }
        prev = ctx != NULL ? UINT64_MAX : 0;
        for (int i = 0; i < 40; i++) {
            uint64_t v = wt_get_u64(q);
            assert_true(ctx != NULL ? v <= prev : v >= prev);
            prev = v;
        }
    }
    prev = ctx != NULL ? UINT64_MAX : 0;
    uint64_t v;
    size_t left = 0;
    while (weft_queue_try_get(q, &v) == WEFT_OK) {
        assert_true(ctx != NULL ? v <= prev : v >= prev);
        prev = v;
        left++;
    }
    assert_int_equal(left, 20 * 10);
    weft_queue_destroy(q);
}

static void
test_priority_order(void **state)
{
    (void)state;
    int ctx = 1;
    check_priority(1000, NULL);
    check_priority(WEFT_QUEUE_UNBOUNDED, NULL);
    check_priority(WEFT_QUEUE_UNBOUNDED, &ctx); /* cmp_ctx is passed */
}

/* ------------------------------------------------------------------------ */
/* Item sizes and capacities                                                 */

static void
fill_item(unsigned char *p, size_t es, unsigned seed)
{
    for (size_t i = 0; i < es; i++) {
        p[i] = (unsigned char)((size_t)seed * 31u + i * 7u);
    }
    p[0] = (unsigned char)seed; /* priority key: ascending with seed */
}

static void
check_elem_size(const kind_t *k, size_t es)
{
    weft_queue_t *q = mk_cmp(k->order, k->cap, es, cmp_first_byte);
    unsigned char *in = malloc(es);
    unsigned char *out = malloc(es);
    unsigned char *want = malloc(es);
    assert_non_null(in);
    assert_non_null(out);
    assert_non_null(want);
    for (unsigned round = 0; round < 5; round++) {
        for (unsigned i = 0; i < 6; i++) {
            fill_item(in, es, round * 6 + i);
            assert_int_equal(weft_queue_put(q, in), WEFT_OK);
        }
        for (unsigned i = 0; i < 6; i++) {
            memset(out, 0xEE, es);
            assert_int_equal(weft_queue_get(q, out), WEFT_OK);
            unsigned seed =
                k->order == WEFT_QUEUE_LIFO ? round * 6 + 5 - i : round * 6 + i;
            fill_item(want, es, seed);
            assert_memory_equal(out, want, es);
        }
    }
    free(in);
    free(out);
    free(want);
    weft_queue_destroy(q);
}

static void
test_elem_sizes(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 8, 24, 4096};
    for (size_t k = 0; k < N_KINDS; k++) {
        for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
            check_elem_size(&kinds[k], sizes[s]);
        }
    }
}

static void
check_capacity(weft_queue_order_t order, size_t cap)
{
    weft_queue_t *q = mk(order, cap, 8);
    uint64_t v = 0;
    /* Several rounds, so the ring's positions pass its power-of-two size. */
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < cap; i++) {
            assert_int_equal(weft_queue_try_put(q, &v), WEFT_OK);
        }
        assert_int_equal(weft_queue_size(q), cap);
        assert_true(weft_queue_full(q));
        assert_int_equal(weft_queue_try_put(q, &v), WEFT_EAGAIN);
        assert_int_equal(weft_queue_put_until(q, &v, 0), WEFT_ETIMEDOUT);
        size_t done = 99;
        assert_int_equal(weft_queue_put_many(q, &v, 1, &done, 0), WEFT_EAGAIN);
        assert_int_equal(done, 0);
        /* One out, exactly one in. */
        assert_int_equal(weft_queue_try_get(q, &v), WEFT_OK);
        assert_int_equal(weft_queue_try_put(q, &v), WEFT_OK);
        assert_int_equal(weft_queue_try_put(q, &v), WEFT_EAGAIN);
        for (size_t i = 0; i < cap; i++) {
            assert_int_equal(weft_queue_try_get(q, &v), WEFT_OK);
        }
        assert_int_equal(weft_queue_try_get(q, &v), WEFT_EAGAIN);
        assert_true(weft_queue_empty(q));
    }
    weft_queue_destroy(q);
}

static void
test_capacity_exact(void **state)
{
    (void)state;
    static const size_t caps[] = {1, 2, 3, 5, 1000, 1024};
    for (size_t c = 0; c < sizeof(caps) / sizeof(caps[0]); c++) {
        check_capacity(WEFT_QUEUE_FIFO, caps[c]);
        check_capacity(WEFT_QUEUE_LIFO, caps[c]);
        check_capacity(WEFT_QUEUE_PRIORITY, caps[c]);
    }
}

static void
test_unbounded_grows(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        if (kinds[k].cap != WEFT_QUEUE_UNBOUNDED) {
            continue;
        }
        weft_queue_t *q = mk(kinds[k].order, kinds[k].cap, 8);
        const uint64_t n = 100000;
        /* FIFO: start mid-buffer so growth has to unwrap the items. */
        wt_put_u64(q, 0);
        (void)wt_get_u64(q);
        for (uint64_t i = 0; i < n; i++) {
            wt_put_u64(q,
                       kinds[k].order == WEFT_QUEUE_PRIORITY ? n - 1 - i : i);
        }
        assert_int_equal(weft_queue_size(q), n);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t want = kinds[k].order == WEFT_QUEUE_LIFO ? n - 1 - i : i;
            assert_int_equal(wt_get_u64(q), want);
        }
        weft_queue_destroy(q);
    }
}

/* ------------------------------------------------------------------------ */
/* try_, _until, close                                                       */

static void
test_try_on_empty_and_full(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *q = mk(kinds[k].order, kinds[k].cap, 8);
        uint64_t v = 7;
        assert_int_equal(weft_queue_try_get(q, &v), WEFT_EAGAIN);
        assert_int_equal(v, 7); /* out untouched */
        assert_int_equal(weft_queue_try_put(q, &v), WEFT_OK);
        v = 0;
        assert_int_equal(weft_queue_try_get(q, &v), WEFT_OK);
        assert_int_equal(v, 7);
        if (kinds[k].cap != WEFT_QUEUE_UNBOUNDED) {
            for (size_t i = 0; i < kinds[k].cap; i++) {
                assert_int_equal(weft_queue_try_put(q, &v), WEFT_OK);
            }
            assert_int_equal(weft_queue_try_put(q, &v), WEFT_EAGAIN);
        }
        weft_queue_destroy(q);
    }
}

static void
expect_elapsed(weft_time_t t0, weft_time_t wait)
{
    weft_time_t took = weft_now() - t0;
    assert_true(took >= wait);
    assert_true(took < wait + 3 * WEFT_SEC); /* generous: shared machines */
}

static void
test_until_timeouts(void **state)
{
    (void)state;
    const weft_time_t wait = 30 * WEFT_MSEC;
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *q = mk(kinds[k].order, kinds[k].cap, 8);
        uint64_t v = 1;
        weft_time_t t0 = weft_now();
        assert_int_equal(weft_queue_get_until(q, &v, t0 + wait),
                         WEFT_ETIMEDOUT);
        expect_elapsed(t0, wait);
        size_t got = 5;
        t0 = weft_now();
        assert_int_equal(weft_queue_get_many(q, &v, 1, &got, t0 + wait),
                         WEFT_ETIMEDOUT);
        expect_elapsed(t0, wait);
        assert_int_equal(got, 0);
        /* A deadline already past: no wait at all. */
        assert_int_equal(weft_queue_get_until(q, &v, 0), WEFT_ETIMEDOUT);
        assert_int_equal(weft_queue_get_many(q, &v, 1, &got, 0), WEFT_EAGAIN);
        if (kinds[k].cap != WEFT_QUEUE_UNBOUNDED) {
            for (size_t i = 0; i < kinds[k].cap; i++) {
                wt_put_u64(q, i);
            }
            t0 = weft_now();
            assert_int_equal(weft_queue_put_until(q, &v, t0 + wait),
                             WEFT_ETIMEDOUT);
            expect_elapsed(t0, wait);
            size_t done = 5;
            t0 = weft_now();
            assert_int_equal(weft_queue_put_many(q, &v, 1, &done, t0 + wait),
                             WEFT_ETIMEDOUT);
            expect_elapsed(t0, wait);
            assert_int_equal(done, 0);
        }
        /* With something there, _until returns at once. */
        if (kinds[k].cap == WEFT_QUEUE_UNBOUNDED) {
            wt_put_u64(q, 1);
        }
        assert_int_equal(weft_queue_get_until(q, &v, WEFT_FOREVER), WEFT_OK);
        assert_int_equal(weft_queue_put_until(q, &v, 0), WEFT_OK);
        weft_queue_destroy(q);
    }
}

static void
test_close(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *q = mk(kinds[k].order, kinds[k].cap, 8);
        for (uint64_t i = 0; i < 5; i++) {
            wt_put_u64(q, i);
        }
        assert_false(weft_queue_is_closed(q));
        weft_queue_close(q);
        weft_queue_close(q); /* idempotent */
        assert_true(weft_queue_is_closed(q));
        uint64_t v = 99;
        size_t done = 9;
        assert_int_equal(weft_queue_put(q, &v), WEFT_ECLOSED);
        assert_int_equal(weft_queue_try_put(q, &v), WEFT_ECLOSED);
        assert_int_equal(weft_queue_put_until(q, &v, WEFT_FOREVER),
                         WEFT_ECLOSED);
        assert_int_equal(weft_queue_put_many(q, &v, 1, &done, WEFT_FOREVER),
                         WEFT_ECLOSED);
        assert_int_equal(done, 0);
        /* What was put before the close drains, by every get form. */
        uint64_t sum = 0;
        assert_int_equal(weft_queue_get(q, &v), WEFT_OK);
        sum += v;
        assert_int_equal(weft_queue_try_get(q, &v), WEFT_OK);
        sum += v;
        assert_int_equal(weft_queue_get_until(q, &v, 0), WEFT_OK);
        sum += v;
        uint64_t two[2];
        size_t got = 0;
        assert_int_equal(weft_queue_get_many(q, two, 2, &got, WEFT_FOREVER),
                         WEFT_OK);
        assert_int_equal(got, 2);
        sum += two[0] + two[1];
        assert_int_equal(sum, 0 + 1 + 2 + 3 + 4);
        assert_int_equal(weft_queue_get(q, &v), WEFT_ECLOSED);
        assert_int_equal(weft_queue_try_get(q, &v), WEFT_ECLOSED);
        assert_int_equal(weft_queue_get_until(q, &v, WEFT_FOREVER),
                         WEFT_ECLOSED);
        got = 9;
        assert_int_equal(weft_queue_get_many(q, two, 2, &got, WEFT_FOREVER),
                         WEFT_ECLOSED);
        assert_int_equal(got, 0);
        assert_true(weft_queue_empty(q));
        weft_queue_destroy(q);
    }
}

/* ------------------------------------------------------------------------ */
/* Batches                                                                   */

static void
test_put_get_many(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *q = mk(kinds[k].order, kinds[k].cap, 8);
        uint64_t in[12];
        uint64_t out[12];
        for (uint64_t i = 0; i < 12; i++) {
            in[i] = 100 + i;
        }
        size_t done = 0;
        size_t got = 0;
        bool bounded = kinds[k].cap != WEFT_QUEUE_UNBOUNDED;
        /* A past deadline puts what fits now. */
        int rc = weft_queue_put_many(q, in, 12, &done, 0);
        assert_int_equal(rc, bounded ? WEFT_EAGAIN : WEFT_OK);
        assert_int_equal(done, bounded ? 8 : 12);
        assert_int_equal(weft_queue_size(q), done);
        assert_int_equal(weft_queue_get_many(q, out, 0, &got, 0), WEFT_EINVAL);
        assert_int_equal(weft_queue_get_many(q, out, 3, &got, 0), WEFT_OK);
        assert_int_equal(got, 3);
        if (kinds[k].order != WEFT_QUEUE_LIFO) {
            assert_int_equal(out[0], 100);
            assert_int_equal(out[2], 102);
        } else {
            assert_int_equal(out[0], 100 + done - 1);
        }
        /* Take the rest with a larger max than what is there. */
        assert_int_equal(weft_queue_get_many(q, out, 12, &got, WEFT_FOREVER),
                         WEFT_OK);
        assert_int_equal(got, done - 3);
        assert_true(weft_queue_empty(q));
        /* n == 0 and a NULL done are fine. */
        assert_int_equal(weft_queue_put_many(q, in, 0, NULL, 0), WEFT_OK);
        assert_int_equal(weft_queue_put_many(q, in, 2, NULL, 0), WEFT_OK);
        assert_int_equal(weft_queue_get_many(q, out, 5, NULL, 0), WEFT_OK);
        assert_true(weft_queue_empty(q));
        weft_queue_destroy(q);
    }
}

static void
test_ring_batch_wraps(void **state)
{
    (void)state;
    /* Capacity 5 (ring of 8): batches cross the end of the ring. */
    weft_queue_t *q = mk(WEFT_QUEUE_FIFO, 5, 8);
    uint64_t next_put = 0;
    uint64_t next_get = 0;
    for (int round = 0; round < 200; round++) {
        uint64_t in[5];
        uint64_t out[5];
        size_t n = 1 + (size_t)round % 5;
        for (size_t i = 0; i < n; i++) {
            in[i] = next_put + i;
        }
        size_t done = 0;
        assert_int_equal(weft_queue_put_many(q, in, n, &done, 0), WEFT_OK);
        next_put += done;
        size_t got = 0;
        assert_int_equal(
            weft_queue_get_many(q, out, 1 + (size_t)round % 3, &got, 0),
            WEFT_OK);
        for (size_t i = 0; i < got; i++) {
            assert_int_equal(out[i], next_get++);
        }
        while (weft_queue_size(q) > 0) {
            assert_int_equal(wt_get_u64(q), next_get++);
        }
    }
    assert_int_equal(next_get, next_put);
    weft_queue_destroy(q);
}

/* ------------------------------------------------------------------------ */
/* task_done / join                                                          */

static void
test_task_done_join(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *q = mk(kinds[k].order, kinds[k].cap, 8);
        assert_int_equal(weft_queue_join(q), WEFT_OK); /* nothing put */
        assert_int_equal(weft_queue_task_done(q), WEFT_ERANGE);
        for (uint64_t i = 0; i < 3; i++) {
            wt_put_u64(q, i);
        }
        weft_time_t t0 = weft_now();
        assert_int_equal(weft_queue_join_until(q, t0 + 20 * WEFT_MSEC),
                         WEFT_ETIMEDOUT);
        expect_elapsed(t0, 20 * WEFT_MSEC);
        assert_int_equal(weft_queue_join_until(q, 0), WEFT_ETIMEDOUT);
        /* task_done counts against puts, taken or not (as in Python). */
        for (int i = 0; i < 3; i++) {
            (void)wt_get_u64(q);
            assert_int_equal(weft_queue_task_done(q), WEFT_OK);
        }
        assert_int_equal(weft_queue_task_done(q), WEFT_ERANGE);
        assert_int_equal(weft_queue_join(q), WEFT_OK);
        assert_int_equal(weft_queue_join_until(q, 0), WEFT_OK);
        /* Failed puts do not count. */
        weft_queue_close(q);
        uint64_t v = 0;
        assert_int_equal(weft_queue_put(q, &v), WEFT_ECLOSED);
        assert_int_equal(weft_queue_task_done(q), WEFT_ERANGE);
        assert_int_equal(weft_queue_join(q), WEFT_OK);
        weft_queue_destroy(q);
    }
}

/* ------------------------------------------------------------------------ */
/* destroy and drop                                                          */

typedef struct drops {
    unsigned seen[64];
    size_t calls;
} drops_t;

static void
count_drop(void *item, void *ctx)
{
    drops_t *d = ctx;
    uint64_t v;
    memcpy(&v, item, sizeof(v));
    assert_true(v < 64);
    d->seen[v]++;
    d->calls++;
}

static void
test_drop_leftovers(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        drops_t d;
        memset(&d, 0, sizeof(d));
        weft_queue_opts_t o = WEFT_QUEUE_OPTS_INIT;
        o.order = kinds[k].order;
        o.capacity = kinds[k].cap;
        o.elem_size = 8;
        o.cmp = cmp_u64;
        o.drop = count_drop;
        o.drop_ctx = &d;
        weft_queue_t *q = NULL;
        assert_int_equal(weft_queue_create(&o, &q), WEFT_OK);
        /* Move the ring's head off zero so the leftovers wrap. */
        for (uint64_t i = 0; i < 6; i++) {
            wt_put_u64(q, 60);
            (void)wt_get_u64(q);
        }
        for (uint64_t i = 0; i < 8; i++) {
            wt_put_u64(q, i);
        }
        (void)wt_get_u64(q);
        assert_int_equal(d.calls, 0); /* gets do not drop */
        weft_queue_destroy(q);
        assert_int_equal(d.calls, 7);
        unsigned total = 0;
        for (int i = 0; i < 64; i++) {
            assert_true(d.seen[i] <= 1);
            total += d.seen[i];
        }
        assert_int_equal(total, 7);
        assert_int_equal(d.seen[60], 0);
    }
}

static void
test_destroy_without_drop(void **state)
{
    (void)state;
    for (size_t k = 0; k < N_KINDS; k++) {
        weft_queue_t *q = mk(kinds[k].order, kinds[k].cap, 24);
        unsigned char item[24] = {1, 2, 3};
        assert_int_equal(weft_queue_put(q, item), WEFT_OK);
        weft_queue_destroy(q); /* leftovers discarded, nothing leaks */
    }
}

/* ------------------------------------------------------------------------ */
/* Programmer errors: NULL handles abort with a clear message                */

/* gcc ignores a (void) cast on a warn_unused_result call. */
static void
ignore(int rc)
{
    (void)rc;
}

static void
null_put(void *a)
{
    (void)a;
    uint64_t v = 0;
    ignore(weft_queue_put(NULL, &v));
}

static void
null_try_put(void *a)
{
    (void)a;
    uint64_t v = 0;
    ignore(weft_queue_try_put(NULL, &v));
}

static void
null_put_until(void *a)
{
    (void)a;
    uint64_t v = 0;
    ignore(weft_queue_put_until(NULL, &v, 0));
}

static void
null_get(void *a)
{
    (void)a;
    uint64_t v = 0;
    ignore(weft_queue_get(NULL, &v));
}

static void
null_try_get(void *a)
{
    (void)a;
    uint64_t v = 0;
    ignore(weft_queue_try_get(NULL, &v));
}

static void
null_get_until(void *a)
{
    (void)a;
    uint64_t v = 0;
    ignore(weft_queue_get_until(NULL, &v, 0));
}

static void
null_put_many(void *a)
{
    (void)a;
    uint64_t v = 0;
    ignore(weft_queue_put_many(NULL, &v, 1, NULL, 0));
}

static void
null_get_many(void *a)
{
    (void)a;
    uint64_t v = 0;
    ignore(weft_queue_get_many(NULL, &v, 1, NULL, 0));
}

static void
null_close(void *a)
{
    (void)a;
    weft_queue_close(NULL);
}

static void
null_is_closed(void *a)
{
    (void)a;
    (void)weft_queue_is_closed(NULL);
}

static void
null_task_done(void *a)
{
    (void)a;
    ignore(weft_queue_task_done(NULL));
}

static void
null_join(void *a)
{
    (void)a;
    ignore(weft_queue_join(NULL));
}

static void
null_join_until(void *a)
{
    (void)a;
    ignore(weft_queue_join_until(NULL, 0));
}

static void
null_size(void *a)
{
    (void)a;
    (void)weft_queue_size(NULL);
}

static void
null_empty(void *a)
{
    (void)a;
    (void)weft_queue_empty(NULL);
}

static void
null_full(void *a)
{
    (void)a;
    (void)weft_queue_full(NULL);
}

static void
null_capacity(void *a)
{
    (void)a;
    (void)weft_queue_capacity(NULL);
}

static void
null_elem_size(void *a)
{
    (void)a;
    (void)weft_queue_elem_size(NULL);
}

static void
null_item(void *a)
{
    weft_queue_t *q = a;
    ignore(weft_queue_put(q, NULL));
}

static void
null_out(void *a)
{
    weft_queue_t *q = a;
    ignore(weft_queue_get(q, NULL));
}

static void
null_items(void *a)
{
    weft_queue_t *q = a;
    ignore(weft_queue_put_many(q, NULL, 2, NULL, 0));
}

typedef struct death {
    void (*fn)(void *);
    const char *expect;
} death_t;

static void
test_null_handles_die(void **state)
{
    (void)state;
    static const death_t cases[] = {
        {null_put, "weft_queue_put: queue is NULL"},
        {null_try_put, "weft_queue_try_put: queue is NULL"},
        {null_put_until, "weft_queue_put_until: queue is NULL"},
        {null_get, "weft_queue_get: queue is NULL"},
        {null_try_get, "weft_queue_try_get: queue is NULL"},
        {null_get_until, "weft_queue_get_until: queue is NULL"},
        {null_put_many, "weft_queue_put_many: queue is NULL"},
        {null_get_many, "weft_queue_get_many: queue is NULL"},
        {null_close, "weft_queue_close: queue is NULL"},
        {null_is_closed, "weft_queue_is_closed: queue is NULL"},
        {null_task_done, "weft_queue_task_done: queue is NULL"},
        {null_join, "weft_queue_join: queue is NULL"},
        {null_join_until, "weft_queue_join_until: queue is NULL"},
        {null_size, "weft_queue_size: queue is NULL"},
        {null_empty, "weft_queue_empty: queue is NULL"},
        {null_full, "weft_queue_full: queue is NULL"},
        {null_capacity, "weft_queue_capacity: queue is NULL"},
        {null_elem_size, "weft_queue_elem_size: queue is NULL"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_true(wt_dies_with(cases[i].fn, NULL, cases[i].expect));
    }
    weft_queue_t *q = mk(WEFT_QUEUE_FIFO, 4, 8);
    assert_true(wt_dies_with(null_item, q, "weft_queue_put: item is NULL"));
    assert_true(wt_dies_with(null_out, q, "weft_queue_get: out is NULL"));
    assert_true(
        wt_dies_with(null_items, q, "weft_queue_put_many: items is NULL"));
    weft_queue_destroy(q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_defaults),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_create_enomem),
        cmocka_unit_test(test_name_copied),
        cmocka_unit_test(test_kind_choice),
        cmocka_unit_test(test_snapshots),
        cmocka_unit_test(test_fifo_order),
        cmocka_unit_test(test_lifo_order),
        cmocka_unit_test(test_priority_order),
        cmocka_unit_test(test_elem_sizes),
        cmocka_unit_test(test_capacity_exact),
        cmocka_unit_test(test_unbounded_grows),
        cmocka_unit_test(test_try_on_empty_and_full),
        cmocka_unit_test(test_until_timeouts),
        cmocka_unit_test(test_close),
        cmocka_unit_test(test_put_get_many),
        cmocka_unit_test(test_ring_batch_wraps),
        cmocka_unit_test(test_task_done_join),
        cmocka_unit_test(test_drop_leftovers),
        cmocka_unit_test(test_destroy_without_drop),
        cmocka_unit_test(test_null_handles_die),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
