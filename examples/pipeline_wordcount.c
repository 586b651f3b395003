/* SPDX-License-Identifier: MIT */
/*
 * read -> transform -> persist with weft_pipeline: the lesson of
 * examples/pipeline.c (three threads and two queues) in a dozen lines of
 * set-up, with the middle stage running on every worker of a pool.
 *
 * The source reads a text file line by line (weft_pipeline_source_lines),
 * a parallel stage counts each line's words and computes its FNV-1a
 * checksum, and a serial sink writes "<index> <words> <checksum>" lines to
 * an output file. The first run's sink is ordered: the lines come out in
 * file order although the counting stage finishes them in any order. The
 * second run's sink is not: lines are written as they arrive, and the
 * output is checked to hold every index exactly once. Both are checked
 * against a single-threaded pass over the same file, whose output the
 * ordered run's must equal byte for byte. With metrics on, the
 * pipeline's stats give each stage's items, busy share and the bottleneck.
 *
 * Usage: ex_pipeline_wordcount [INPUT]. Without an argument it writes a
 * deterministic sample of pseudo-random words (12 MB; 2 MB under
 * sanitizers) to a temporary directory; the outputs go there too, and the
 * directory is removed at exit.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <weft/weft.h>

#include "example.h"

#define SAMPLE_BYTES ((size_t)(EX_SANITIZED ? 2 : 12) * 1024 * 1024)
#define MAX_IN_FLIGHT 64

/* What the counting stage makes of one line. */
typedef struct count {
    uint64_t index;
    uint64_t words;
    uint64_t sum; /* FNV-1a of the line's text */
} count_t;

/* What a whole file adds up to, computed the same way by the pipeline's
 * sink, by the single-threaded pass and by the reading back of an output. */
typedef struct totals {
    uint64_t lines;
    uint64_t words;
    uint64_t digest; /* depends on the order of the lines */
    uint64_t mix;    /* does not */
} totals_t;

/* One run of the pipeline. */
typedef struct run {
    const char *name;
    bool ordered;
    const char *input, *output;
    FILE *out;
    totals_t got;     /* the sink's totals */
    uint64_t late;    /* lines the sink received after a later one */
    uint64_t next;    /* 1 + the highest index the sink received */
    atomic_long live; /* counts made and not yet written or dropped */
    atomic_long peak; /* the most alive at once */
    double secs;
} run_t;

/* ---------------------------------------------------------------------- */
/* The work on one line, shared by the pipeline and the checks             */

static uint64_t
count_words(const char *s, size_t n)
{
    uint64_t words = 0;
    bool in_word = false;
    for (size_t i = 0; i < n; i++) {
        bool space = s[i] == ' ' || s[i] == '\t' || s[i] == '\r';
        words += !space && !in_word;
        in_word = !space;
    }
    return words;
}

/* A line's record, folded into the totals. */
static void
totals_add(totals_t *t, uint64_t index, uint64_t words, uint64_t sum)
{
    uint64_t h = (sum ^ (index * 0x9e3779b97f4a7c15u)) + words;

    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9u;
    h ^= h >> 29;
    t->lines++;
    t->words += words;
    t->digest = ex_digest_add(t->digest, h);
    t->mix += h;
}

/* The output's line for one input line. */
static int
write_record(FILE *f, uint64_t index, uint64_t words, uint64_t sum)
{
    return fprintf(f, "%llu %llu %016llx\n", (unsigned long long)index,
                   (unsigned long long)words, (unsigned long long)sum);
}

/* ---------------------------------------------------------------------- */
/* The stages                                                              */

static void
live_add(run_t *run, long d)
{
    long now = atomic_fetch_add(&run->live, d) + d;
    long peak = atomic_load(&run->peak);
    while (now > peak &&
           !atomic_compare_exchange_weak(&run->peak, &peak, now)) {
    }
}

/* Parallel stage: a line in, its count out. */
static int
count_line(void *ctx, void *item, void **out)
{
    run_t *run = ctx;
    weft_line_t *line = item;
    count_t *c = malloc(sizeof *c);

    if (c == NULL) {
        uint64_t index = line->index;
        weft_line_free(line);
        return weft_stage_fail(WEFT_ENOMEM, "no memory for line %llu",
                               (unsigned long long)index);
    }
    c->index = line->index;
    c->words = count_words(line->text, line->len);
    c->sum = ex_fnv1a(line->text, line->len);
    weft_line_free(line);
    live_add(run, 1);
    *out = c;
    return WEFT_OK;
}

/* Serial sink: write the count to the output file. */
static int
write_count(void *ctx, void *item, void **out)
{
    run_t *run = ctx;
    count_t *c = item;
    int n;

    (void)out;
    if (c->index < run->next) {
        run->late++;
    } else {
        run->next = c->index + 1;
    }
    totals_add(&run->got, c->index, c->words, c->sum);
    n = write_record(run->out, c->index, c->words, c->sum);
    free(c);
    live_add(run, -1);
    if (n < 0) {
        return weft_stage_fail(WEFT_EIO, "write %s: %s", run->output,
                               strerror(errno));
    }
    return WEFT_OK;
}

/* What the pipeline frees when it stops early (it does not here: these
 * are for a failed write or a cancel). */
static void
drop_line(void *ctx, void *item)
{
    (void)ctx;
    weft_line_free(item);
}

static void
drop_count(void *ctx, void *item)
{
    free(item);
    live_add(ctx, -1);
}

/* ---------------------------------------------------------------------- */
/* Running it and reading the stats                                        */

static const char *
parallel_text(const weft_stage_stats_t *st, char *buf, size_t n)
{
    if (st->parallel == WEFT_STAGE_PARALLEL) {
        return "all";
    }
    snprintf(buf, n, "%u", st->parallel);
    return buf;
}

/* Print each stage's line of the stats and check it: every line went in
 * and out of every stage (the sink passes nothing on: it has no next
 * stage), and the bottleneck is the busiest stage. */
static void
show_stats(const weft_pipeline_stats_t *s, uint64_t lines)
{
    double most = 0;

    printf("  %-8s %4s %4s %10s %10s %8s %6s %12s\n", "stage", "par", "ord",
           "items in", "items out", "dropped", "busy", "wait/item");
    for (size_t i = 0; i < s->nstages; i++) {
        const weft_stage_stats_t *st = &s->stage[i];
        bool sink = i == s->nstages - 1;
        char par[16], out[24];
        double wait_us = st->items_in > 0
                             ? (double)st->wait_ns / (double)st->items_in / 1e3
                             : 0.0;

        snprintf(out, sizeof out, "%llu", (unsigned long long)st->items_out);
        printf("  %-8s %4s %4s %10llu %10s %8llu %5.0f%% %9.1f us\n", st->name,
               parallel_text(st, par, sizeof par), st->ordered ? "yes" : "no",
               (unsigned long long)st->items_in, sink ? "(sink)" : out,
               (unsigned long long)st->dropped, st->busy_share * 100, wait_us);
        EX_CHECK(st->items_in == lines && (sink || st->items_out == lines),
                 "stage %s: %llu lines in, %llu out, of %llu", st->name,
                 (unsigned long long)st->items_in,
                 (unsigned long long)st->items_out, (unsigned long long)lines);
        EX_CHECK(st->dropped == 0 && st->filtered == 0,
                 "stage %s dropped lines", st->name);
        EX_CHECK(st->busy_share >= 0 && st->busy_share <= 1.0 + 1e-9,
                 "stage %s: busy share %f", st->name, st->busy_share);
        /* Timed on one item in 8: a few lines are enough. */
        EX_CHECK(i == 0 || lines < 64 || st->busy_ns > 0,
                 "stage %s: no busy time with metrics on", st->name);
        most = st->busy_share > most ? st->busy_share : most;
    }
    EX_CHECK(s->bottleneck < s->nstages &&
                 s->stage[s->bottleneck].busy_share == most,
             "the bottleneck (%zu) is not the busiest stage", s->bottleneck);
    printf("  bottleneck: '%s' (busy %.0f%% of the time it could have "
           "run)\n",
           s->stage[s->bottleneck].name,
           s->stage[s->bottleneck].busy_share * 100);
}

static void
run_pipeline(weft_executor_t *pool, run_t *run, off_t input_bytes,
             uint64_t lines)
{
    weft_pipeline_opts_t opts = WEFT_PIPELINE_OPTS_INIT;
    weft_stage_t count = WEFT_STAGE_INIT, sink = WEFT_STAGE_INIT;
    weft_pipeline_stats_t s;
    weft_pipeline_t *p;

    opts.name = run->name;
    opts.executor = pool;
    opts.max_in_flight = MAX_IN_FLIGHT;
    EX_OK(weft_pipeline_create(&opts, &p));
    EX_OK(weft_pipeline_source_lines(p, run->input));
    count.name = "count";
    count.fn = count_line;
    count.ctx = run;
    count.parallel = WEFT_STAGE_PARALLEL;
    count.drop = drop_line;
    EX_OK(weft_pipeline_stage(p, &count));
    sink.name = "write";
    sink.fn = write_count;
    sink.ctx = run;
    sink.ordered = run->ordered; /* serial either way */
    sink.drop = drop_count;
    EX_OK(weft_pipeline_stage(p, &sink));

    run->out = fopen(run->output, "w");
    EX_CHECK(run->out != NULL, "cannot create %s: %s", run->output,
             strerror(errno));
    weft_time_t t0 = weft_now();
    int rc = weft_pipeline_run(p);
    run->secs = ex_seconds_since(t0);
    EX_CHECK(rc == WEFT_OK, "the pipeline failed: %s", weft_pipeline_error(p));
    EX_CHECK(fclose(run->out) == 0, "cannot write %s", run->output);

    printf("%s: source -> count (parallel) -> write (serial, %s)\n", run->name,
           run->ordered ? "ordered" : "unordered");
    printf("  %llu lines, %llu words in %.3f s: %.1f MB/s, %.0f lines/s\n",
           (unsigned long long)run->got.lines,
           (unsigned long long)run->got.words, run->secs,
           (double)input_bytes / run->secs / 1e6,
           (double)run->got.lines / run->secs);
    EX_OK(weft_pipeline_stats(p, &s));
    EX_CHECK(s.finished && s.in_flight == 0 && s.nstages == 3,
             "stats: finished %d, %zu in flight, %zu stages", s.finished,
             s.in_flight, s.nstages);
    EX_CHECK(s.max_in_flight == MAX_IN_FLIGHT, "max_in_flight %zu",
             s.max_in_flight);
    show_stats(&s, lines);
    weft_pipeline_stats_free(&s);
    weft_pipeline_destroy(p);

    printf("  at most %ld counts alive at once (max_in_flight %d); %llu lines "
           "reached the sink after a later line\n",
           atomic_load(&run->peak), MAX_IN_FLIGHT,
           (unsigned long long)run->late);
    EX_CHECK(atomic_load(&run->live) == 0, "%ld counts leaked",
             atomic_load(&run->live));
    EX_CHECK(atomic_load(&run->peak) <= MAX_IN_FLIGHT,
             "%ld items were in flight at once", atomic_load(&run->peak));
    EX_CHECK(!run->ordered || run->late == 0,
             "the ordered sink received %llu lines out of order",
             (unsigned long long)run->late);
}

/* ---------------------------------------------------------------------- */
/* The sample input and the checks                                          */

static uint64_t
next_random(uint64_t *rng)
{
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    return *rng;
}

/* About `bytes` of lines of 0 to 23 words drawn from a small vocabulary;
 * the same file on every run. */
static void
write_sample(const char *path, size_t bytes)
{
    static const char *const vocab[] = {
        "weft",   "warp",   "thread",   "queue", "lock",  "event", "join",
        "pipe",   "stage",  "worker",   "close", "token", "sum",   "order",
        "line",   "file",   "a",        "of",    "the",   "and",   "to",
        "buffer", "stream", "parallel", "cache", "core",  "steal", "park"};
    uint64_t rng = 0x9e3779b97f4a7c15u;
    size_t written = 0;
    FILE *f = fopen(path, "w");

    EX_CHECK(f != NULL, "cannot create %s: %s", path, strerror(errno));
    while (written < bytes) {
        unsigned words = (unsigned)(next_random(&rng) % 24);
        for (unsigned w = 0; w < words; w++) {
            const char *word = vocab[next_random(&rng) % 28];
            if (w > 0) {
                EX_CHECK(fputc(' ', f) != EOF, "cannot write %s", path);
                written++;
            }
            EX_CHECK(fputs(word, f) != EOF, "cannot write %s", path);
            written += strlen(word);
        }
        EX_CHECK(fputc('\n', f) != EOF, "cannot write %s", path);
        written++;
    }
    EX_CHECK(fclose(f) == 0, "cannot write %s", path);
}

static size_t
chomp(const char *s, size_t n)
{
    return n > 0 && s[n - 1] == '\n' ? n - 1 : n;
}

/* The same work from one thread: read, count, write to out_path. */
static totals_t
count_file(const char *path, const char *out_path, double *secs)
{
    totals_t t = {0, 0, 0, 0};
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    weft_time_t t0 = weft_now();
    FILE *f = fopen(path, "r"), *out = fopen(out_path, "w");

    EX_CHECK(f != NULL && out != NULL, "cannot open %s or %s: %s", path,
             out_path, strerror(errno));
    while ((n = getline(&buf, &cap, f)) >= 0) {
        size_t len = chomp(buf, (size_t)n);
        uint64_t words = count_words(buf, len), sum = ex_fnv1a(buf, len);
        EX_CHECK(write_record(out, t.lines, words, sum) > 0, "cannot write %s",
                 out_path);
        totals_add(&t, t.lines, words, sum);
    }
    EX_CHECK(fclose(out) == 0, "cannot write %s", out_path);
    *secs = ex_seconds_since(t0);
    free(buf);
    fclose(f);
    return t;
}

/* Whether two files hold the same bytes. */
static bool
same_files(const char *a, const char *b)
{
    FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
    int ca, cb;

    EX_CHECK(fa != NULL && fb != NULL, "cannot open %s or %s", a, b);
    do {
        ca = getc(fa);
        cb = getc(fb);
    } while (ca == cb && ca != EOF);
    fclose(fa);
    fclose(fb);
    return ca == cb;
}

/* Read an output back. Ordered: the indexes must run 0, 1, 2, ... Either
 * way each index must appear exactly once. */
static totals_t
read_output(const char *path, uint64_t lines, bool ordered)
{
    totals_t t = {0, 0, 0, 0};
    unsigned char *seen = calloc(lines > 0 ? lines : 1, 1);
    unsigned long long index, words, sum;
    FILE *f = fopen(path, "r");

    EX_CHECK(seen != NULL && f != NULL, "cannot open %s", path);
    while (fscanf(f, "%llu %llu %llx", &index, &words, &sum) == 3) {
        EX_CHECK(index < lines && !seen[index],
                 "%s: index %llu out of range or repeated", path, index);
        EX_CHECK(!ordered || index == t.lines, "%s: index %llu at line %llu",
                 path, index, (unsigned long long)t.lines);
        seen[index] = 1;
        totals_add(&t, index, words, sum);
    }
    EX_CHECK(feof(f), "%s: unreadable line after %llu", path,
             (unsigned long long)t.lines);
    fclose(f);
    free(seen);
    return t;
}

/* The temporary files, removed at exit even when a check fails. */
static char tmp_dir[512], tmp_in[600], tmp_single[600], tmp_ordered[600],
    tmp_unordered[600];

static void
remove_temp_files(void)
{
    unlink(tmp_in);
    unlink(tmp_ordered);
    unlink(tmp_unordered);
    unlink(tmp_single);
    rmdir(tmp_dir);
}

static void
make_temp_dir(void)
{
    ex_path_join(tmp_dir, sizeof tmp_dir, ex_tmp_base(),
                 "weft-wordcount-XXXXXX");
    EX_CHECK(mkdtemp(tmp_dir) != NULL, "mkdtemp: %s", strerror(errno));
    EX_CHECK(atexit(remove_temp_files) == 0, "atexit failed");
    ex_path_join(tmp_ordered, sizeof tmp_ordered, tmp_dir, "ordered.txt");
    ex_path_join(tmp_unordered, sizeof tmp_unordered, tmp_dir, "unordered.txt");
    ex_path_join(tmp_single, sizeof tmp_single, tmp_dir, "single.txt");
}

static void
check_totals(const char *what, const totals_t *got, const totals_t *want,
             bool ordered)
{
    EX_CHECK(got->lines == want->lines && got->words == want->words &&
                 got->mix == want->mix,
             "%s: %llu lines, %llu words; expected %llu, %llu", what,
             (unsigned long long)got->lines, (unsigned long long)got->words,
             (unsigned long long)want->lines, (unsigned long long)want->words);
    EX_CHECK(!ordered || got->digest == want->digest,
             "%s: the lines are not in file order", what);
}

int
main(int argc, char **argv)
{
    weft_executor_t *pool;
    struct stat st;
    double single_secs;
    const char *input = tmp_in;

    if (argc > 2) {
        fprintf(stderr, "usage: %s [INPUT]\n", argv[0]);
        return 2;
    }
    make_temp_dir();
    if (argc == 2) {
        input = argv[1];
    } else {
        ex_path_join(tmp_in, sizeof tmp_in, tmp_dir, "input.txt");
        write_sample(tmp_in, SAMPLE_BYTES);
    }
    EX_CHECK(stat(input, &st) == 0, "%s: %s", input, strerror(errno));
    totals_t want = count_file(input, tmp_single, &single_secs);
    printf("input: %.1f MB, %llu lines, %llu words\n"
           "one thread (read, count, write): %.3f s, %.1f MB/s, %.0f "
           "lines/s\n\n",
           (double)st.st_size / 1e6, (unsigned long long)want.lines,
           (unsigned long long)want.words, single_secs,
           (double)st.st_size / single_secs / 1e6,
           (double)want.lines / single_secs);

    weft_metrics_enable(true); /* busy time and waits per stage */
    EX_OK(weft_pool_create(NULL, &pool));
    run_t ordered = {.name = "wordcount",
                     .ordered = true,
                     .input = input,
                     .output = tmp_ordered};
    run_t unordered = {.name = "unordered",
                       .ordered = false,
                       .input = input,
                       .output = tmp_unordered};
    run_pipeline(pool, &ordered, st.st_size, want.lines);
    check_totals("ordered run", &ordered.got, &want, true);
    printf("\n");
    run_pipeline(pool, &unordered, st.st_size, want.lines);
    check_totals("unordered run", &unordered.got, &want, false);
    weft_executor_destroy(pool);

    totals_t back = read_output(tmp_ordered, want.lines, true);
    check_totals("ordered output", &back, &want, true);
    back = read_output(tmp_unordered, want.lines, false);
    check_totals("unordered output", &back, &want, false);
    EX_CHECK(same_files(tmp_ordered, tmp_single),
             "the ordered output differs from the single-threaded one");
    printf("\nboth outputs read back: every index exactly once; the ordered "
           "one is byte for byte the single-threaded output\n");
    return 0;
}
