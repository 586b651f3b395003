/* SPDX-License-Identifier: MIT */
/*
 * weft_executor_map: lazy, ordered, bounded. A ring of at most `window`
 * futures in input order; each weft_map_next tops the window up from the
 * input, then waits for the oldest.
 */
#include "executor_impl.h"

struct weft_map {
    weft_executor_t *ex;
    weft_task_fn fn;
    weft_map_input_fn next;
    void *ctx;
    weft_task_opts_t opts;
    weft_future_t **ring;
    size_t window, head, count;
    bool input_done;
    int submit_err;      /* a submit that failed: reported after the rest */
    weft_future_t *last; /* keeps the last failure's message alive */
};

int
weft_executor_map(weft_executor_t *ex, weft_task_fn fn, weft_map_input_fn next,
                  void *ctx, size_t window, const weft_task_opts_t *opts,
                  weft_map_t **out)
{
    if (ex == NULL || fn == NULL || next == NULL || out == NULL ||
        (opts != NULL && opts->scope != NULL)) {
        return WEFT_EINVAL;
    }
    if (window == 0) {
        unsigned w = ex->ops->workers(ex);
        window = (size_t)(w ? w : 1) * 2;
    }
    weft_map_t *m = weft__calloc(1, sizeof(*m));
    if (m == NULL) {
        return WEFT_ENOMEM;
    }
    m->ring = weft__calloc(window, sizeof(weft_future_t *));
    if (m->ring == NULL) {
        weft__free(m);
        return WEFT_ENOMEM;
    }
    weft_task_opts_t defaults = WEFT_TASK_OPTS_INIT;
    *m = (weft_map_t){ex,      fn,     next, ctx, opts ? *opts : defaults,
                      m->ring, window, 0,    0,   false,
                      WEFT_OK, NULL};
    *out = m;
    return WEFT_OK;
}

/* Submit tasks for new inputs until the window is full or input ends. */
static int
top_up(weft_map_t *m)
{
    while (m->count < m->window && !m->input_done) {
        void *arg = NULL;
        if (!m->next(m->ctx, &arg)) {
            m->input_done = true;
            break;
        }
        weft_future_t *f = NULL;
        int rc = weft_executor_submit(m->ex, m->fn, arg, &m->opts, &f);
        if (rc != WEFT_OK) {
            /* The input item pulled is lost: say why, once the results
             * already in flight have been handed over. */
            m->input_done = true;
            m->submit_err = rc;
            return rc;
        }
        m->ring[(m->head + m->count) % m->window] = f;
        m->count++;
    }
    return WEFT_OK;
}

int
weft_map_next(weft_map_t *m, void **result, int *future_code,
              const char **error)
{
    if (m == NULL || result == NULL || future_code == NULL) {
        return WEFT_EINVAL;
    }
    weft_future_release(m->last);
    m->last = NULL;
    (void)top_up(m);
    if (m->count == 0) {
        if (m->submit_err != WEFT_OK) {
            int err = m->submit_err;
            m->submit_err = WEFT_OK; /* reported once; then closed */
            return err;
        }
        return WEFT_ECLOSED;
    }
    int rc;
    weft_future_t *f = m->ring[m->head];
    rc = weft_future_wait(f);
    if (rc != WEFT_OK) {
        return rc; /* f stays first: the next call waits for it again */
    }
    m->head = (m->head + 1) % m->window;
    m->count--;
    int code = weft_future_code(f);
    void *value = NULL;
    if (code == WEFT_OK && weft_future_take_result(f, &value) == WEFT_OK) {
        weft_future_release(f);
    } else {
        m->last = f;
        if (error != NULL) {
            *error = weft_future_error(f);
        }
    }
    *result = value;
    *future_code = code;
    return WEFT_OK;
}

void
weft_map_destroy(weft_map_t *m)
{
    if (m == NULL) {
        return;
    }
    for (size_t i = 0; i < m->count; i++) {
        (void)weft_future_cancel(m->ring[(m->head + i) % m->window]);
    }
    weft__cancel_t *outer = weft__cancel_enter(NULL);
    for (size_t i = 0; i < m->count; i++) {
        weft_future_t *f = m->ring[(m->head + i) % m->window];
        int rc = weft_future_wait(f);
        WEFT_ASSERT(rc == WEFT_OK, "map: waiting for a task: %s",
                    weft_strerror(rc));
        weft_future_release(f); /* an untaken result meets its dtor here */
    }
    weft__cancel_enter(outer);
    weft_future_release(m->last);
    weft__free(m->ring);
    weft__free(m);
}
