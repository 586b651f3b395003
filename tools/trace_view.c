/* SPDX-License-Identifier: MIT */
/*
 * `weft trace-view TRACE.json OUT.html`: writes one self-contained HTML page
 * (inline CSS and JavaScript, the trace embedded, no external asset) that
 * draws the trace as a timeline: a row per thread, tasks as coloured bars,
 * waits in red, zoom and pan, details on hover. The page's template is
 * tools/trace_view.html, compiled in.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace_view.h"

extern const char weft_trace_view_html[];
extern const size_t weft_trace_view_html_len;

#define PLACEHOLDER "@TRACE_JSON@"
#define MAX_TRACE ((size_t)1 << 30)

/* The whole file at path, NUL-terminated, in *out (free it); its length in
 * *len. Returns 0 or an errno value. */
static int
read_all(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return errno;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    int err = buf == NULL ? ENOMEM : 0;
    while (err == 0) {
        if (n + 1 == cap) {
            char *p = cap < MAX_TRACE ? realloc(buf, cap * 2) : NULL;
            if (p == NULL) {
                err = cap < MAX_TRACE ? ENOMEM : EFBIG;
                break;
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) {
            err = ferror(f) ? EIO : 0;
            break;
        }
    }
    fclose(f);
    if (err != 0) {
        free(buf);
        return err;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* A Chrome trace is a JSON object with "traceEvents" or a JSON array. */
static int
looks_like_trace(const char *s)
{
    s += strspn(s, " \t\r\n");
    return *s == '[' || (*s == '{' && strstr(s, "\"traceEvents\"") != NULL);
}

/* The JSON inside a <script> element: '<' only occurs inside JSON strings,
 * where \u003c means the same, so no "</script>" or "<!--" can end or
 * confuse the element. */
static void
put_json(FILE *f, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *lt = memchr(s + i, '<', n - i);
        size_t run = lt != NULL ? (size_t)(lt - (s + i)) : n - i;
        fwrite(s + i, 1, run, f);
        i += run;
        if (lt != NULL) {
            fputs("\\u003c", f);
            i++;
        }
    }
}

static int
write_page(const char *path, const char *json, size_t len)
{
    const char *tpl = weft_trace_view_html;
    const char *at = strstr(tpl, PLACEHOLDER);
    if (at == NULL) {
        fprintf(stderr, "weft trace-view: broken page template\n");
        return 1;
    }
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        fprintf(stderr, "weft trace-view: cannot create %s: %s\n", path,
                strerror(errno));
        return 1;
    }
    fwrite(tpl, 1, (size_t)(at - tpl), f);
    put_json(f, json, len);
    const char *rest = at + strlen(PLACEHOLDER);
    fwrite(rest, 1, weft_trace_view_html_len - (size_t)(rest - tpl), f);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "weft trace-view: cannot write %s\n", path);
        return 1;
    }
    return 0;
}

int
trace_view_main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: weft trace-view TRACE.json OUT.html\n");
        return 2;
    }
    char *json = NULL;
    size_t len = 0;
    int err = read_all(argv[0], &json, &len);
    if (err != 0) {
        fprintf(stderr, "weft trace-view: cannot read %s: %s\n", argv[0],
                strerror(err));
        return 1;
    }
    if (!looks_like_trace(json)) {
        fprintf(stderr,
                "weft trace-view: %s is not a Chrome Trace Event file\n",
                argv[0]);
        free(json);
        return 1;
    }
    int rc = write_page(argv[1], json, len);
    free(json);
    if (rc == 0) {
        printf("wrote %s (%zu KB of trace); open it in a browser\n", argv[1],
               (len + 1023) / 1024);
    }
    return rc;
}
