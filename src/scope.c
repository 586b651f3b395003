/* SPDX-License-Identifier: MIT */
/*
 * Scopes (structured concurrency). A scope keeps its unfinished tasks on a
 * list under a mutex; each task's on_done callback takes it off, records
 * the first failure and cancels the siblings. wait sleeps on an eventcount
 * until nothing is pending (or the deadline, which cancels the scope).
 */
#include <string.h>

#include "executor_impl.h"
#include "mutex_impl.h"
#include "probe.h"
#include <weft/scope.h>
#include <weft/sync.h>

typedef struct member {
    weft_future_t *f; /* a reference */
    struct member *prev, *next;
    struct weft_scope *scope;
    bool cancel_sent;
} member_t;

struct weft_scope {
    weft_mutex_t lock;
    member_t *head; /* unfinished tasks */
    size_t pending;
    bool cancelled;
    int error;
    char *msg;
    weft_time_t deadline;
    weft__ecount_t done_ec;
};

int
weft_scope_create(weft_time_t deadline, weft_scope_t **out)
{
    if (out == NULL) {
        return WEFT_EINVAL;
    }
    weft_scope_t *s = weft__calloc(1, sizeof(*s));
    if (s == NULL) {
        return WEFT_ENOMEM;
    }
    weft_mutex_init(&s->lock);
    s->deadline = deadline;
    *out = s;
    return WEFT_OK;
}

/* Lock held: retain up to max members not yet sent a cancel, marking them. */
static size_t
collect(weft_scope_t *s, weft_future_t **fs, size_t max)
{
    size_t n = 0;
    for (member_t *m = s->head; m != NULL && n < max; m = m->next) {
        if (!m->cancel_sent) {
            m->cancel_sent = true;
            fs[n++] = weft_future_retain(m->f);
        }
    }
    return n;
}

/* Cancel every member. The futures are cancelled outside the lock: a
 * queued one finishes at once and its callback takes the lock. */
static void
cancel_members(weft_scope_t *s)
{
    size_t n;
    do {
        weft_future_t *fs[64];
        weft__mutex_lock_nocancel(&s->lock);
        s->cancelled = true;
        n = collect(s, fs, 64);
        weft_mutex_unlock(&s->lock);
        for (size_t i = 0; i < n; i++) {
            (void)weft_future_cancel(fs[i]);
            weft_future_release(fs[i]);
        }
    } while (n == 64);
}

static void
set_error(weft_scope_t *s, int code, const char *msg)
{
    if (s->error == WEFT_OK) {
        s->error = code;
        s->msg = weft__strndup(msg != NULL ? msg : "", 1024);
    }
}

static void
unlink_member(weft_scope_t *s, member_t *m)
{
    if (m->prev != NULL) {
        m->prev->next = m->next;
    } else {
        s->head = m->next;
    }
    if (m->next != NULL) {
        m->next->prev = m->prev;
    }
}

/* A member finished. It stays counted in pending until the end, so the
 * scope cannot be freed by its waiter while this still uses it. */
static void
member_done(weft_future_t *f, void *ctx)
{
    member_t *m = ctx;
    weft_scope_t *s = m->scope;
    int code = weft_future_code(f);
    bool cancel = false;
    weft__mutex_lock_nocancel(&s->lock);
    unlink_member(s, m);
    if (code != WEFT_OK && code != WEFT_ECANCELED && !s->cancelled) {
        set_error(s, code, weft_future_error(f));
        cancel = true;
    }
    weft_mutex_unlock(&s->lock);
    if (cancel) {
        cancel_members(s);
    }
    weft__mutex_lock_nocancel(&s->lock);
    if (--s->pending == 0) {
        weft__ecount_notify(&s->done_ec, INT32_MAX);
    }
    weft_mutex_unlock(&s->lock);
    weft_future_release(m->f);
    weft__free(m);
}

int
weft__scope_add(weft_scope_t *s, weft_future_t *f)
{
    member_t *m = weft__calloc(1, sizeof(*m));
    if (m == NULL) {
        return WEFT_ENOMEM;
    }
    m->f = weft_future_retain(f);
    m->scope = s;
    weft__mutex_lock_nocancel(&s->lock);
    if (s->cancelled) {
        weft_mutex_unlock(&s->lock);
        weft_future_release(f);
        weft__free(m);
        return WEFT_ECANCELED;
    }
    m->next = s->head;
    if (s->head != NULL) {
        s->head->prev = m;
    }
    s->head = m;
    s->pending++;
    weft_mutex_unlock(&s->lock);
    int rc = weft_future_on_done(f, member_done, m);
    if (rc != WEFT_OK) {
        /* Not watched: undo (f is not queued yet, nothing else saw m). */
        weft__mutex_lock_nocancel(&s->lock);
        unlink_member(s, m);
        s->pending--;
        weft_mutex_unlock(&s->lock);
        weft_future_release(f);
        weft__free(m);
    }
    return rc;
}

int
weft_scope_submit(weft_scope_t *s, weft_executor_t *ex, weft_task_fn fn,
                  void *arg, const weft_task_opts_t *opts, weft_future_t **out)
{
    if (s == NULL) {
        return WEFT_EINVAL;
    }
    weft_task_opts_t o = WEFT_TASK_OPTS_INIT;
    if (opts != NULL) {
        o = *opts;
    }
    o.scope = s;
    return weft_executor_submit(ex, fn, arg, &o, out);
}

static size_t
pending_locked(weft_scope_t *s)
{
    weft__mutex_lock_nocancel(&s->lock);
    size_t n = s->pending;
    weft_mutex_unlock(&s->lock);
    return n;
}

int
weft_scope_wait(weft_scope_t *s)
{
    WEFT_ASSERT(s != NULL, "weft_scope_wait: NULL scope");
    bool timed_out = false;
    for (;;) {
        uint32_t key = weft__ecount_prepare(&s->done_ec);
        if (pending_locked(s) == 0) {
            weft__ecount_cancel(&s->done_ec);
            break;
        }
        weft_time_t dl = timed_out ? WEFT_FOREVER : s->deadline;
        int rc =
            weft__ecount_wait_on(WEFT__WAIT_SCOPE, s, &s->done_ec, key, dl);
        if (rc == WEFT_ETIMEDOUT && !timed_out) {
            timed_out = true;
            weft__mutex_lock_nocancel(&s->lock);
            set_error(s, WEFT_ETIMEDOUT, "scope deadline passed");
            weft_mutex_unlock(&s->lock);
            cancel_members(s);
        } else if (rc == WEFT_ECANCELED) {
            /* The waiter was cancelled: cancel the scope, still wait. */
            weft__mutex_lock_nocancel(&s->lock);
            set_error(s, WEFT_ECANCELED, "waiting task cancelled");
            weft_mutex_unlock(&s->lock);
            cancel_members(s);
            weft__cancel_t *outer = weft__cancel_enter(NULL);
            int r2 = weft_scope_wait(s);
            weft__cancel_enter(outer);
            (void)r2;
            break;
        }
    }
    weft__mutex_lock_nocancel(&s->lock);
    int err = s->error;
    if (err == WEFT_OK && s->cancelled) {
        err = WEFT_ECANCELED;
    }
    weft_mutex_unlock(&s->lock);
    return err;
}

void
weft_scope_cancel(weft_scope_t *s)
{
    WEFT_ASSERT(s != NULL, "weft_scope_cancel: NULL scope");
    cancel_members(s);
}

const char *
weft_scope_error(const weft_scope_t *s)
{
    return s != NULL && s->msg != NULL ? s->msg : "";
}

size_t
weft_scope_pending(const weft_scope_t *s)
{
    return s != NULL ? pending_locked((weft_scope_t *)s) : 0;
}

void
weft_scope_destroy(weft_scope_t *s)
{
    if (s == NULL) {
        return;
    }
    cancel_members(s);
    weft__cancel_t *outer = weft__cancel_enter(NULL);
    int rc = weft_scope_wait(s); /* its error is the caller's to have read */
    weft__cancel_enter(outer);
    (void)rc;
    weft__free(s->msg);
    weft_mutex_fini(&s->lock);
    weft__free(s);
}
