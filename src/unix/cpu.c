/* SPDX-License-Identifier: MIT */
/*
 * Usable CPUs: the affinity mask and the cgroup CPU quota (v2 cpu.max, v1
 * cpu.cfs_quota_us / cpu.cfs_period_us), the limits containers impose.
 */
#include "internal.h"
#include "plat.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* glibc's CPU_*_S macros mix int and size_t arithmetic. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-conversion"
int
weft__plat_affinity_cpus(void)
{
    for (int ncpu = 1024; ncpu <= 1 << 20; ncpu *= 2) {
        size_t sz = CPU_ALLOC_SIZE(ncpu);
        cpu_set_t *set = CPU_ALLOC(ncpu);
        if (set == NULL) {
            return 1;
        }
        CPU_ZERO_S(sz, set);
        if (sched_getaffinity(0, sz, set) == 0) {
            int n = CPU_COUNT_S(sz, set);
            CPU_FREE(set);
            return n > 0 ? n : 1;
        }
        CPU_FREE(set);
    }
    return 1;
}
#pragma GCC diagnostic pop

/* Read a whole small file into buf; false when it cannot be read. */
static bool
read_small(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return false;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n > 0;
}

/* dst = a + b; false when it does not fit. */
static bool
join_path(char *dst, size_t cap, const char *a, const char *b)
{
    size_t la = strlen(a);
    size_t lb = strlen(b);
    if (la + lb + 1 > cap) {
        return false;
    }
    memcpy(dst, a, la);
    memcpy(dst + la, b, lb);
    dst[la + lb] = '\0';
    return true;
}

static int
ceil_div(long long quota, long long period)
{
    if (quota <= 0 || period <= 0) {
        return 0;
    }
    long long n = (quota + period - 1) / period;
    return n > 4096 ? 4096 : (int)n;
}

/* cgroup v2: "max 100000" (no limit) or "<quota> <period>". */
static int
v2_limit(const char *dir)
{
    char path[4096];
    char buf[128];
    if (!join_path(path, sizeof(path), dir, "/cpu.max") ||
        !read_small(path, buf, sizeof(buf))) {
        return 0;
    }
    long long quota = 0;
    long long period = 0;
    if (strncmp(buf, "max", 3) == 0 ||
        sscanf(buf, "%lld %lld", &quota, &period) != 2) {
        return 0;
    }
    return ceil_div(quota, period);
}

static int
v1_limit(const char *dir)
{
    char path[4096];
    char buf[64];
    if (!join_path(path, sizeof(path), dir, "/cpu.cfs_quota_us") ||
        !read_small(path, buf, sizeof(buf))) {
        return 0;
    }
    long long quota = atoll(buf);
    if (!join_path(path, sizeof(path), dir, "/cpu.cfs_period_us") ||
        !read_small(path, buf, sizeof(buf))) {
        return 0;
    }
    return ceil_div(quota, atoll(buf));
}

static int
min_limit(int a, int b)
{
    if (a == 0) {
        return b;
    }
    return (b != 0 && b < a) ? b : a;
}

/* The tightest limit on dir and each of its ancestors below root. */
static int
walk_up(const char *root, const char *rel, int (*limit)(const char *))
{
    char dir[4096];
    int best = 0;
    if (!join_path(dir, sizeof(dir), root, rel)) {
        return 0;
    }
    size_t rootlen = strlen(root);
    for (;;) {
        best = min_limit(best, limit(dir));
        char *slash = strrchr(dir, '/');
        if (slash == NULL || (size_t)(slash - dir) < rootlen) {
            break;
        }
        *slash = '\0';
    }
    return best;
}

int
weft__cgroup_cpus_from(const char *root, const char *proc_cgroup)
{
    FILE *f = fopen(proc_cgroup, "re");
    if (f == NULL) {
        return 0;
    }
    char line[4096];
    char dir[4096];
    int best = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        /* "hierarchy-id:controllers:path" */
        char *c1 = strchr(line, ':');
        char *c2 = c1 != NULL ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL) {
            continue;
        }
        *c2 = '\0';
        const char *ctrl = c1 + 1;
        const char *rel = c2 + 1;
        if (strcmp(rel, "/") == 0) {
            rel = "";
        }
        if (*ctrl == '\0') { /* v2 unified hierarchy */
            best = min_limit(best, walk_up(root, rel, v2_limit));
        } else if (strstr(ctrl, "cpu") != NULL) {
            char sub[512];
            if (join_path(sub, sizeof(sub), "/", ctrl) &&
                join_path(dir, sizeof(dir), root, sub)) {
                best = min_limit(best, walk_up(dir, rel, v1_limit));
            }
            if (join_path(dir, sizeof(dir), root, "/cpu")) {
                best = min_limit(best, walk_up(dir, rel, v1_limit));
            }
        }
    }
    fclose(f);
    return best;
}

int
weft__plat_cgroup_cpus(void)
{
    const char *root =
        getenv("WEFT_CGROUP_ROOT"); // NOLINT(concurrency-mt-unsafe)
    return weft__cgroup_cpus_from(root != NULL ? root : "/sys/fs/cgroup",
                                  "/proc/self/cgroup");
}
