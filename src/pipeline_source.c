/* SPDX-License-Identifier: MIT */
/*
 * Ready-made pipeline sources: a weft_queue of pointers, and the lines of
 * a text file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline_impl.h"

/* ------------------------------------------------------------------ queue */

static int
queue_source(void *ctx, void **item)
{
    /* WEFT_ECLOSED once the queue is closed and drained: the end. */
    return weft_queue_get(ctx, item);
}

int
weft_pipeline_source_queue(weft_pipeline_t *p, weft_queue_t *q)
{
    if (p == NULL || q == NULL || weft_queue_elem_size(q) != sizeof(void *)) {
        return WEFT_EINVAL;
    }
    int rc = weft_pipeline_source(p, queue_source, q);
    if (rc == WEFT_OK) {
        p->source_blocking = true;
    }
    return rc;
}

/* ------------------------------------------------------------------ lines */

typedef struct lines {
    char *path;
    FILE *f;
    bool failed;
    uint64_t index;
    char *buf;
    size_t cap;
} lines_t;

/* strerror, thread-safe (the message goes into a per-thread buffer). */
static const char *
errtext(int err)
{
    static _Thread_local char buf[128];
    return strerror_r(err, buf, sizeof(buf)); /* GNU: may return another */
}

static int
lines_source(void *ctx, void **item)
{
    lines_t *l = ctx;
    if (l->failed) {
        return WEFT_ECLOSED;
    }
    if (l->f == NULL) {
        l->f = fopen(l->path, "rb");
        if (l->f == NULL) {
            l->failed = true;
            return weft_stage_fail(WEFT_ESYS, "cannot open %s: %s", l->path,
                                   errtext(errno));
        }
    }
    errno = 0;
    ssize_t n = getline(&l->buf, &l->cap, l->f);
    if (n < 0) {
        if (ferror(l->f)) {
            l->failed = true;
            return weft_stage_fail(WEFT_ESYS, "cannot read %s: %s", l->path,
                                   errtext(errno != 0 ? errno : EIO));
        }
        return WEFT_ECLOSED;
    }
    size_t len = (size_t)n;
    if (len > 0 && l->buf[len - 1] == '\n') {
        len--;
    }
    weft_line_t *line = weft__malloc(sizeof(*line) + len + 1u);
    if (line == NULL) {
        return weft_stage_fail(WEFT_ENOMEM, "line %llu of %s: out of memory",
                               (unsigned long long)l->index, l->path);
    }
    line->index = l->index++;
    line->len = len;
    memcpy(line->text, l->buf, len);
    line->text[len] = '\0';
    *item = line;
    return WEFT_OK;
}

static void
lines_fini(weft_pipeline_t *p)
{
    lines_t *l = p->source_state;
    if (l->f != NULL) {
        fclose(l->f);
    }
    free(l->buf); /* getline's buffer: the C library's allocator */
    weft__free(l->path);
    weft__free(l);
}

static void
drop_line(void *ctx, void *item)
{
    (void)ctx;
    weft_line_free(item);
}

int
weft_pipeline_source_lines(weft_pipeline_t *p, const char *path)
{
    if (p == NULL || path == NULL || p->source != NULL) {
        return WEFT_EINVAL;
    }
    lines_t *l = weft__calloc(1, sizeof(*l));
    char *copy = weft__strndup(path, 4096);
    if (l == NULL || copy == NULL) {
        weft__free(l);
        weft__free(copy);
        return WEFT_ENOMEM;
    }
    l->path = copy;
    int rc = weft_pipeline_source(p, lines_source, l);
    if (rc != WEFT_OK) {
        weft__free(copy);
        weft__free(l);
        return rc;
    }
    p->source_state = l;
    p->source_fini = lines_fini;
    p->source_drop = drop_line;
    return WEFT_OK;
}

void
weft_line_free(weft_line_t *line)
{
    weft__free(line);
}
