/* SPDX-License-Identifier: MIT */
/*
 * The `weft` command: `weft demo` runs the examples one after another, each in
 * its own process, saying before each what it shows and summing up at the
 * end; `weft version`, `weft cpus` and `weft help` answer small questions.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <weft/weft.h>

#include "trace_view.h"

#ifndef WEFT_VERSION_STRING
#define WEFT_VERSION_STRING "unknown"
#endif
/* Where the build put the example programs (set by CMake). */
#ifndef WEFT_EXAMPLES_DIR
#define WEFT_EXAMPLES_DIR ""
#endif

#define EXIT_USAGE 2

extern char **environ;

typedef struct demo {
    const char *name; /* the example's file name; the program is ex_<name> */
    const char *title;
    const char *shows;
} demo_t;

static const demo_t demos[] = {
    {"race_condition", "Race conditions",
     "Read-then-write on a shared counter loses updates; a weft_mutex makes "
     "it exact."},
    {"rlock", "Re-entrant locks",
     "Nested calls take one weft_rlock again and again; only the owner may "
     "release it."},
    {"semaphore", "Semaphores",
     "A bounded semaphore of 3 permits lets at most 3 of 5 threads in at "
     "once."},
    {"event", "Events",
     "Workers wait on a weft_event until main's data is ready; timed waits "
     "time out."},
    {"producer_consumer", "Producer and consumer",
     "A bounded queue of 8 holds a fast producer back; close ends the stream."},
    {"fan_in_select", "Fan-out and fan-in with select",
     "Select puts work where a worker has room, and collects results until "
     "all close."},
    {"workers_join", "Worker threads, task_done and join",
     "Producers and consumers share a queue; join waits until every job is "
     "done."},
    {"pipeline", "A three-stage pipeline",
     "read -> transform -> persist through queues, from a real file to "
     "another."},
    {"pipeline_wordcount", "A pipeline on the pool",
     "A 12 MB file's words counted in parallel, ordered or not; the stats "
     "name the bottleneck."},
    {"pipeline_cancel", "Stopping a pipeline",
     "Cancelled half-way, then failing at item 1234: every item made is "
     "accounted for."},
    {"lock_contention", "Minimising lock contention",
     "A lock per element against private sums merged once: same sum, not the "
     "same speed."},
    {"futures_as_completed", "Futures and as_completed",
     "A completion queue hands futures back in the order they finish; "
     "wait_many returns at the first."},
    {"map_ordered", "Executor.map",
     "Results in input order with a bounded window, also from an endless "
     "input."},
    {"periodic", "Timers",
     "call_every runs every 50 ms until cancelled; call_later runs once, "
     "never early."},
    {"scope_first_failure", "Scopes",
     "The first failure cancels the sibling tasks; a scope deadline cancels "
     "them too."},
    {"download_pages", "Downloads on the blocking lane",
     "libcurl fetches 20 pages from a local server one by one, then all at "
     "once."},
    {"primes", "CPU-bound work on threads",
     "Counting primes with weft_parallel_reduce: threads compute in parallel, "
     "no GIL."},
    {"fork_join", "Fork-join",
     "Recursive fib with task groups; parallel_for and an ordered "
     "parallel_reduce."},
};

#define N_DEMOS (sizeof demos / sizeof demos[0])

typedef struct outcome {
    int ok;
    int skipped; /* the program was not built */
    double secs;
    char why[64]; /* how it failed, or why it was skipped */
} outcome_t;

static void
usage(FILE *to)
{
    fprintf(to, "usage: weft <command> [arguments]\n\n"
                "commands:\n"
                "  demo [NAME...]  run the examples (all, or those named), "
                "explaining each\n"
                "  version         print weft's version\n"
                "  cpus            print how many CPUs this process can use\n"
                "  trace-view TRACE.json OUT.html\n"
                "                  write a trace as a self-contained timeline "
                "page\n"
                "  help            print this help\n\n"
                "examples:\n ");
    for (size_t i = 0, col = 1; i < N_DEMOS; i++) {
        size_t len = strlen(demos[i].name) + 1;
        if (col + len > 72) {
            fputs("\n ", to);
            col = 1;
        }
        fprintf(to, " %s", demos[i].name);
        col += len;
    }
    fputc('\n', to);
}

/* ---------------------------------------------------------------------- */
/* Finding the example programs                                            */

static int
example_path(char *out, size_t n, const char *dir, const char *name)
{
    int w = snprintf(out, n, "%s/ex_%s", dir, name);
    return w > 0 && (size_t)w < n;
}

static int
has_examples(const char *dir)
{
    char path[4096];
    return dir[0] != '\0' &&
           example_path(path, sizeof path, dir, demos[0].name) &&
           access(path, X_OK) == 0;
}

/* The directory of path (cut at the last '/'), or "" when it has none. */
static void
dir_of(char *path)
{
    char *slash = strrchr(path, '/');
    if (slash == NULL) {
        path[0] = '\0';
    } else if (slash == path) {
        path[1] = '\0';
    } else {
        *slash = '\0';
    }
}

/* The examples' directory: the one the build recorded, else the directory of
 * this program. Returns 0 when neither holds them. */
static int
find_examples(char *dir, size_t n, const char *argv0)
{
    ssize_t len;

    if (has_examples(WEFT_EXAMPLES_DIR)) {
        snprintf(dir, n, "%s", WEFT_EXAMPLES_DIR);
        return 1;
    }
    len = readlink("/proc/self/exe", dir, n - 1);
    if (len > 0) {
        dir[len] = '\0';
        dir_of(dir);
        if (has_examples(dir)) {
            return 1;
        }
    }
    snprintf(dir, n, "%s", argv0);
    dir_of(dir);
    return has_examples(dir);
}

/* ---------------------------------------------------------------------- */
/* Running them                                                            */

static void
describe_status(outcome_t *o, int status)
{
    o->ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (WIFEXITED(status)) {
        snprintf(o->why, sizeof o->why, "exit status %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        snprintf(o->why, sizeof o->why, "killed by signal %d",
                 WTERMSIG(status));
    } else {
        snprintf(o->why, sizeof o->why, "wait status %d", status);
    }
}

/* Run one example as a child process sharing our stdout and stderr. */
static outcome_t
run_one(const char *dir, const demo_t *d, size_t index, size_t count)
{
    outcome_t o = {0, 0, 0.0, ""};
    char path[4096];
    pid_t pid;
    int status;

    printf("\n=== %zu/%zu  %s  (ex_%s)\n%s\n\n", index, count, d->title,
           d->name, d->shows);
    fflush(stdout);
    if (!example_path(path, sizeof path, dir, d->name)) {
        snprintf(o.why, sizeof o.why, "path too long");
        return o;
    }
    /* An example with an optional dependency is not built when the build
     * did not find it (examples/CMakeLists.txt). */
    if (access(path, X_OK) != 0) {
        o.ok = o.skipped = 1;
        snprintf(o.why, sizeof o.why, "not built");
        printf("--- skipped: ex_%s was not built (it needs an optional "
               "library the build did not find)\n",
               d->name);
        return o;
    }
    char *child_argv[] = {path, NULL};
    weft_time_t t0 = weft_now();
    int rc = posix_spawn(&pid, path, NULL, NULL, child_argv, environ);
    if (rc != 0) {
        snprintf(o.why, sizeof o.why, "cannot start: %s", strerror(rc));
        fprintf(stderr, "weft: %s: %s\n", path, o.why);
        return o;
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            snprintf(o.why, sizeof o.why, "waitpid: %s", strerror(errno));
            return o;
        }
    }
    o.secs = (double)(weft_now() - t0) / (double)WEFT_SEC;
    describe_status(&o, status);
    printf("--- %s in %.2f s%s%s\n", o.ok ? "ok" : "FAILED", o.secs,
           o.ok ? "" : ": ", o.ok ? "" : o.why);
    return o;
}

static const demo_t *
demo_named(const char *name)
{
    for (size_t i = 0; i < N_DEMOS; i++) {
        if (strcmp(demos[i].name, name) == 0) {
            return &demos[i];
        }
    }
    return NULL;
}

static int
summarise(const demo_t *const *run, const outcome_t *out, size_t n,
          double total)
{
    size_t failed = 0, skipped = 0;

    printf("\n=== summary\n");
    for (size_t i = 0; i < n; i++) {
        const char *status = out[i].skipped ? "skipped"
                             : out[i].ok    ? "ok"
                                            : "FAILED";
        int quiet = out[i].ok && !out[i].skipped;
        printf("  %-7s %-20s %6.2f s%s%s\n", status, run[i]->name, out[i].secs,
               quiet ? "" : "  ", quiet ? "" : out[i].why);
        if (out[i].skipped) {
            skipped++;
        } else if (!out[i].ok) {
            failed++;
        }
    }
    printf("%zu example%s: %zu ok, %zu skipped, %zu failed, %.2f s in all\n", n,
           n == 1 ? "" : "s", n - failed - skipped, skipped, failed, total);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

static int
cmd_demo(int argc, char **argv, const char *argv0)
{
    const demo_t *run[N_DEMOS];
    outcome_t out[N_DEMOS];
    size_t n = 0;
    char dir[4096];

    for (int i = 0; i < argc; i++) {
        const demo_t *d = demo_named(argv[i]);
        if (d == NULL || n == N_DEMOS) {
            fprintf(stderr, "weft demo: no example named '%s'\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
        run[n++] = d;
    }
    for (size_t i = 0; argc == 0 && i < N_DEMOS; i++) {
        run[n++] = &demos[i];
    }
    if (!find_examples(dir, sizeof dir, argv0)) {
        fprintf(stderr, "weft demo: cannot find the example programs "
                        "(ex_*): build them, or put them next to weft\n");
        return EXIT_FAILURE;
    }
    printf("weft %s: %zu example%s from %s, %d CPUs usable\n",
           WEFT_VERSION_STRING, n, n == 1 ? "" : "s", dir, weft_cpu_count());
    weft_time_t t0 = weft_now();
    for (size_t i = 0; i < n; i++) {
        out[i] = run_one(dir, run[i], i + 1, n);
    }
    return summarise(run, out, n, (double)(weft_now() - t0) / (double)WEFT_SEC);
}

int
main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";

    if (strcmp(cmd, "demo") == 0) {
        return cmd_demo(argc - 2, argv + 2, argv[0] != NULL ? argv[0] : "");
    }
    if (strcmp(cmd, "trace-view") == 0) {
        int rc = trace_view_main(argc - 2, argv + 2);
        if (rc == EXIT_USAGE) {
            usage(stderr);
        }
        return rc;
    }
    if (strcmp(cmd, "version") == 0 && argc == 2) {
        printf("weft %s\n", WEFT_VERSION_STRING);
        return EXIT_SUCCESS;
    }
    if (strcmp(cmd, "cpus") == 0 && argc == 2) {
        printf("%d\n", weft_cpu_count());
        return EXIT_SUCCESS;
    }
    if ((strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 ||
         strcmp(cmd, "-h") == 0) &&
        argc == 2) {
        usage(stdout);
        return EXIT_SUCCESS;
    }
    if (argc > 1) {
        fprintf(stderr, "weft: unknown command or arguments: '%s'\n", cmd);
    }
    usage(stderr);
    return EXIT_USAGE;
}
