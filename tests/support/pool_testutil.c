/* SPDX-License-Identifier: MIT */
/* Test helpers for pools and futures (a file of its own: tests that stand
 * in for parts of the library link testutil.c without the pool). */
#include "testutil.h"

weft_executor_t *
wt_pool(const char *name, unsigned workers)
{
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    o.name = name;
    o.workers = workers;
    weft_executor_t *ex = NULL;
    assert_int_equal(weft_pool_create(&o, &ex), WEFT_OK);
    assert_non_null(ex);
    return ex;
}

weft_future_t *
wt_submit(weft_executor_t *ex, weft_task_fn fn, void *arg,
          const weft_task_opts_t *o)
{
    weft_future_t *f = NULL;
    assert_int_equal(weft_executor_submit(ex, fn, arg, o, &f), WEFT_OK);
    assert_non_null(f);
    return f;
}

void
wt_wait_done(weft_future_t *f)
{
    assert_int_equal(weft_future_wait_until(f, weft_deadline_in(WT_FAR)),
                     WEFT_OK);
    assert_true(weft_future_done(f));
}
