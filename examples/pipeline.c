/* SPDX-License-Identifier: MIT */
/*
 * The pipeline lesson: three threads, read -> transform -> persist, joined by
 * two bounded weft_queues. Stage 1 reads a text file line by line, stage 2
 * uppercases each line and computes its checksum, stage 3 writes the results
 * to an output file. Each stage closes its output queue when its input ends,
 * so the end of the stream flows down the pipeline without sentinels; a stage
 * that fails closes its input too, so the stages before it stop.
 *
 * Usage: ex_pipeline [INPUT OUTPUT]. Without arguments it writes a sample
 * input of several hundred KB to a temporary directory and removes it after.
 * The output is read back and checked line by line.
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weft/weft.h>

#include "example.h"

#define SAMPLE_LINES 10000
#define QUEUE_CAPACITY 64

/* One line travelling down the pipeline. Queues carry pointers to it, and
 * whoever takes the pointer from a queue owns the line. */
typedef struct line {
    uint64_t no;  /* 1-based line number */
    uint64_t sum; /* checksum of the transformed text (stage 2) */
    size_t len;
    char text[];
} line_t;

typedef struct stage {
    const char *path;  /* file read (stage 1) or written (stage 3) */
    weft_queue_t *in;  /* NULL for stage 1 */
    weft_queue_t *out; /* NULL for stage 3 */
    uint64_t lines;
    uint64_t bytes;
    uint64_t digest; /* stage 3: checksum of all lines, in order */
    char error[160]; /* empty unless the stage failed */
} stage_t;

static void
upcase(char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        s[i] = (char)toupper((unsigned char)s[i]);
    }
}

static size_t
chomp(char *s, size_t n)
{
    return n > 0 && s[n - 1] == '\n' ? n - 1 : n;
}

/* Stop the pipeline after an error in st: closing the input makes the
 * previous stage's puts fail, closing the output ends the next stage. */
static void
stage_fail(stage_t *st, const char *what)
{
    snprintf(st->error, sizeof st->error, "%s %s: %s", what, st->path,
             strerror(errno));
    if (st->in != NULL) {
        weft_queue_close(st->in);
    }
    if (st->out != NULL) {
        weft_queue_close(st->out);
    }
}

static line_t *
line_new(uint64_t no, const char *text, size_t len)
{
    line_t *l = malloc(sizeof *l + len + 1);
    EX_CHECK(l != NULL, "out of memory");
    l->no = no;
    l->sum = 0;
    l->len = len;
    memcpy(l->text, text, len);
    l->text[len] = '\0';
    return l;
}

/* Stage 1: read lines from the file into st->out. */
static void *
reader(void *arg)
{
    stage_t *st = arg;
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    FILE *f = fopen(st->path, "r");

    if (f == NULL) {
        stage_fail(st, "cannot open");
        return NULL;
    }
    while ((n = getline(&buf, &cap, f)) >= 0) {
        line_t *l = line_new(st->lines + 1, buf, chomp(buf, (size_t)n));
        if (weft_queue_put(st->out, &l) != WEFT_OK) {
            free(l); /* a later stage failed and closed the queue */
            break;
        }
        st->lines++;
        st->bytes += (uint64_t)n;
    }
    if (ferror(f)) {
        stage_fail(st, "cannot read");
    }
    free(buf);
    fclose(f);
    weft_queue_close(st->out); /* end of stream */
    return NULL;
}

/* Stage 2: uppercase each line and compute its checksum. */
static void *
transformer(void *arg)
{
    stage_t *st = arg;
    line_t *l;

    while (weft_queue_get(st->in, &l) == WEFT_OK) {
        upcase(l->text, l->len);
        l->sum = ex_fnv1a(l->text, l->len);
        if (weft_queue_put(st->out, &l) != WEFT_OK) {
            free(l);
            weft_queue_close(st->in);
            break;
        }
        st->lines++;
    }
    weft_queue_close(st->out); /* pass the end of stream on */
    return NULL;
}

/* Stage 3: write "<number> <checksum> <TEXT>" lines to the output file. */
static void *
writer(void *arg)
{
    stage_t *st = arg;
    line_t *l;
    FILE *f = fopen(st->path, "w");

    if (f == NULL) {
        stage_fail(st, "cannot create");
        return NULL;
    }
    while (weft_queue_get(st->in, &l) == WEFT_OK) {
        int n = fprintf(f, "%llu %016llx %s\n", (unsigned long long)l->no,
                        (unsigned long long)l->sum, l->text);
        st->digest = ex_digest_add(st->digest, l->sum);
        free(l);
        if (n < 0) {
            stage_fail(st, "cannot write");
            break;
        }
        st->lines++;
        st->bytes += (uint64_t)n;
    }
    if (fclose(f) != 0 && st->error[0] == '\0') {
        stage_fail(st, "cannot write");
    }
    return NULL;
}

static void
drop_line(void *item, void *ctx)
{
    (void)ctx;
    free(*(line_t **)item);
}

static weft_queue_t *
make_queue(const char *name)
{
    weft_queue_opts_t opts = WEFT_QUEUE_OPTS_INIT;
    weft_queue_t *q;

    opts.capacity = QUEUE_CAPACITY;
    opts.elem_size = sizeof(line_t *);
    opts.drop = drop_line; /* lines left behind if a stage stops early */
    opts.name = name;
    EX_OK(weft_queue_create(&opts, &q));
    return q;
}

/* Run the three stages; returns the seconds taken. */
static double
run_pipeline(stage_t st[3])
{
    weft_thread_t *t[3];
    weft_thread_fn fns[3] = {reader, transformer, writer};
    const char *names[3] = {"read", "transform", "persist"};

    st[0].out = st[1].in = make_queue("lines");
    st[1].out = st[2].in = make_queue("results");
    weft_time_t t0 = weft_now();
    for (int i = 0; i < 3; i++) {
        ex_start_threads(&t[i], 1, names[i], fns[i], &st[i], 0);
    }
    ex_join_threads(t, 3);
    double secs = ex_seconds_since(t0);
    weft_queue_destroy(st[0].out);
    weft_queue_destroy(st[1].out);
    for (int i = 0; i < 3; i++) {
        EX_CHECK(st[i].error[0] == '\0', "stage %s: %s", names[i], st[i].error);
    }
    return secs;
}

/* ---------------------------------------------------------------------- */
/* The sample input and the check of the output                            */

static void
write_sample(const char *path)
{
    static const char *const words[] = {
        "weft", "warp",     "thread", "queue",  "lock",  "event",
        "join", "pipeline", "stage",  "worker", "close", "backpressure",
        "sum",  "order",    "line",   "file"};
    uint64_t rng = 0x9e3779b97f4a7c15u;
    FILE *f = fopen(path, "w");

    EX_CHECK(f != NULL, "cannot create %s: %s", path, strerror(errno));
    for (int i = 0; i < SAMPLE_LINES; i++) {
        fprintf(f, "line %d:", i + 1);
        for (int w = 0; w < 8; w++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            fprintf(f, " %s", words[rng % 16]);
        }
        fputc('\n', f);
    }
    EX_CHECK(fclose(f) == 0, "cannot write %s", path);
}

/* What the output must hold, computed from the input in one thread. */
static void
expected_from_input(const char *path, uint64_t *lines, uint64_t *digest)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    FILE *f = fopen(path, "r");

    EX_CHECK(f != NULL, "cannot open %s", path);
    *lines = 0;
    *digest = 0;
    while ((n = getline(&buf, &cap, f)) >= 0) {
        size_t len = chomp(buf, (size_t)n);
        upcase(buf, len);
        *digest = ex_digest_add(*digest, ex_fnv1a(buf, len));
        ++*lines;
    }
    free(buf);
    fclose(f);
}

/* Read the output back: numbers in sequence, each checksum matching its
 * text. Returns the line count; *digest gets the combined checksum. */
static uint64_t
check_output(const char *path, uint64_t *digest)
{
    char *buf = NULL, *end;
    size_t cap = 0;
    ssize_t n;
    uint64_t lines = 0;
    FILE *f = fopen(path, "r");

    EX_CHECK(f != NULL, "cannot open %s", path);
    *digest = 0;
    while ((n = getline(&buf, &cap, f)) >= 0) {
        size_t len = chomp(buf, (size_t)n);
        buf[len] = '\0';
        unsigned long long no = strtoull(buf, &end, 10);
        EX_CHECK(*end == ' ' && no == lines + 1, "bad line %llu", no);
        unsigned long long sum = strtoull(end + 1, &end, 16);
        EX_CHECK(*end == ' ', "bad checksum on line %llu", no);
        const char *text = end + 1;
        EX_CHECK(ex_fnv1a(text, strlen(text)) == sum, "line %llu: checksum",
                 no);
        *digest = ex_digest_add(*digest, sum);
        lines++;
    }
    free(buf);
    fclose(f);
    return lines;
}

static void
check_and_report(stage_t st[3], double secs)
{
    uint64_t want_lines, want_digest, got_digest;

    expected_from_input(st[0].path, &want_lines, &want_digest);
    uint64_t got_lines = check_output(st[2].path, &got_digest);
    printf("  read %llu lines (%.0f KB), transformed %llu, wrote %llu (%.0f "
           "KB)\n",
           (unsigned long long)st[0].lines, (double)st[0].bytes / 1024.0,
           (unsigned long long)st[1].lines, (unsigned long long)st[2].lines,
           (double)st[2].bytes / 1024.0);
    printf("  %.3f s: %.0f lines/s, %.1f MB/s of input\n", secs,
           (double)st[0].lines / secs, (double)st[0].bytes / secs / 1e6);
    printf("  output read back: %llu lines, checksum %016llx (expected "
           "%016llx)\n",
           (unsigned long long)got_lines, (unsigned long long)got_digest,
           (unsigned long long)want_digest);
    EX_CHECK(got_lines == want_lines, "output has %llu lines, input %llu",
             (unsigned long long)got_lines, (unsigned long long)want_lines);
    EX_CHECK(st[0].lines == want_lines && st[2].lines == want_lines,
             "a stage lost lines");
    EX_CHECK(got_digest == want_digest && st[2].digest == want_digest,
             "the output's checksum differs from the input's");
}

/* The sample's temporary files, removed at exit even when a check fails. */
static char tmp_dir[512], tmp_in[600], tmp_out[600];

static void
remove_temp_files(void)
{
    unlink(tmp_in);
    unlink(tmp_out);
    rmdir(tmp_dir);
}

static void
make_sample(stage_t st[3])
{
    ex_path_join(tmp_dir, sizeof tmp_dir, ex_tmp_base(),
                 "weft-pipeline-XXXXXX");
    EX_CHECK(mkdtemp(tmp_dir) != NULL, "mkdtemp: %s", strerror(errno));
    ex_path_join(tmp_in, sizeof tmp_in, tmp_dir, "input.txt");
    ex_path_join(tmp_out, sizeof tmp_out, tmp_dir, "output.txt");
    EX_CHECK(atexit(remove_temp_files) == 0, "atexit failed");
    write_sample(tmp_in);
    st[0].path = tmp_in;
    st[2].path = tmp_out;
}

int
main(int argc, char **argv)
{
    stage_t st[3] = {{0}};

    if (argc != 1 && argc != 3) {
        fprintf(stderr, "usage: %s [INPUT OUTPUT]\n", argv[0]);
        return 2;
    }
    if (argc == 3) {
        st[0].path = argv[1];
        st[2].path = argv[2];
    } else {
        make_sample(st);
    }
    st[1].path = "(memory)";
    printf("Pipeline read -> transform -> persist, one thread per stage, "
           "queues of %d:\n",
           QUEUE_CAPACITY);
    check_and_report(st, run_pipeline(st));
    printf("  end of stream travelled as weft_queue_close, stage by stage\n");
    return 0;
}
