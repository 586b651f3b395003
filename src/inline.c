/* SPDX-License-Identifier: MIT */
/* The inline executor: runs every task inside weft_executor_submit. */
#include "executor_impl.h"

typedef struct inline_exec {
    weft_executor_t base;
    _Atomic bool closed;
} inline_exec_t;

static int
inline_submit(weft_executor_t *ex, const weft__job_t *job,
              const weft_task_opts_t *opts, weft_submit_policy_t policy)
{
    (void)opts;
    (void)policy;
    inline_exec_t *ix = (inline_exec_t *)ex;
    if (atomic_load_explicit(&ix->closed, memory_order_acquire)) {
        return WEFT_ESHUTDOWN;
    }
    weft__job_run(job);
    return WEFT_OK;
}

static int
inline_shutdown(weft_executor_t *ex, bool wait, bool cancel_pending)
{
    (void)wait;
    (void)cancel_pending; /* nothing is ever pending */
    inline_exec_t *ix = (inline_exec_t *)ex;
    /* Release: pairs with the acquire load in inline_submit. */
    atomic_store_explicit(&ix->closed, true, memory_order_release);
    return WEFT_OK;
}

static void
inline_destroy(weft_executor_t *ex)
{
    weft__free(ex);
}

static unsigned
inline_workers(const weft_executor_t *ex)
{
    (void)ex;
    return 1;
}

static bool
inline_is_own_thread(const weft_executor_t *ex)
{
    (void)ex;
    return false;
}

static const weft__executor_ops_t inline_ops = {
    inline_submit,  inline_shutdown,      inline_destroy,
    inline_workers, inline_is_own_thread,
};

int
weft_inline_executor_create(weft_executor_t **out)
{
    if (out == NULL) {
        return WEFT_EINVAL;
    }
    inline_exec_t *ix = weft__calloc(1, sizeof(*ix));
    if (ix == NULL) {
        return WEFT_ENOMEM;
    }
    weft__executor_init(&ix->base, &inline_ops, "inline", WEFT_SUBMIT_BLOCK);
    atomic_init(&ix->closed, false);
    *out = &ix->base;
    return WEFT_OK;
}
