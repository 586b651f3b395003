/* SPDX-License-Identifier: MIT */
/* Threads: create/join with results, names (weft and kernel), ids, usable
 * CPU count under affinity masks and cgroup quotas. */
#include "testutil.h"

#include "plat.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *self_exe;

static void *
return_arg(void *arg)
{
    return arg;
}

static void
test_create_join_result(void **state)
{
    (void)state;
    weft_thread_t *t;
    int x = 0;
    assert_int_equal(weft_thread_create(NULL, return_arg, &x, &t), WEFT_OK);
    void *res = NULL;
    assert_int_equal(weft_thread_join(t, &res), WEFT_OK);
    assert_ptr_equal(res, &x);
    /* NULL result pointer is allowed. */
    assert_int_equal(weft_thread_create(NULL, return_arg, &x, &t), WEFT_OK);
    assert_int_equal(weft_thread_join(t, NULL), WEFT_OK);
}

static void
test_bad_inputs(void **state)
{
    (void)state;
    weft_thread_t *t = (weft_thread_t *)0x1;
    assert_int_equal(weft_thread_create(NULL, NULL, NULL, &t), WEFT_EINVAL);
    assert_ptr_equal(t, (weft_thread_t *)0x1); /* untouched on failure */
    assert_int_equal(weft_thread_create(NULL, return_arg, NULL, NULL),
                     WEFT_EINVAL);
    assert_int_equal(weft_thread_join(NULL, NULL), WEFT_EINVAL);
    assert_int_equal(weft_thread_set_name(NULL), WEFT_EINVAL);
    assert_int_equal(weft_thread_set_name(""), WEFT_EINVAL);
    weft_thread_opts_t o = WEFT_THREAD_OPTS_INIT;
    o.stack_size = 1; /* below PTHREAD_STACK_MIN */
    assert_int_equal(weft_thread_create(&o, return_arg, NULL, &t), WEFT_EINVAL);
}

struct names {
    char weft[WEFT_THREAD_NAME_MAX + 1];
    char kernel[32];
    uint32_t id;
};

static void *
record_names(void *arg)
{
    struct names *n = arg;
    snprintf(n->weft, sizeof(n->weft), "%s", weft_thread_name());
    pthread_getname_np(pthread_self(), n->kernel, sizeof(n->kernel));
    n->id = weft_thread_id();
    return NULL;
}

static void
run_named(const char *name, struct names *out)
{
    weft_thread_opts_t o = WEFT_THREAD_OPTS_INIT;
    o.name = name;
    weft_thread_t *t;
    assert_int_equal(weft_thread_create(&o, record_names, out, &t), WEFT_OK);
    assert_int_equal(weft_thread_join(t, NULL), WEFT_OK);
}

static void
test_names(void **state)
{
    (void)state;
    struct names n;
    run_named("io-1", &n);
    assert_string_equal(n.weft, "io-1");
    assert_string_equal(n.kernel, "io-1");

    /* Longer than the kernel's 15 bytes: weft keeps it whole, the kernel
     * gets both ends so the index stays visible. */
    run_named("download-pool/12", &n);
    assert_string_equal(n.weft, "download-pool/12");
    assert_string_equal(n.kernel, "downloa~pool/12");
    assert_int_equal(strlen(n.kernel), 15);

    char longname[200];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    run_named(longname, &n);
    assert_int_equal(strlen(n.weft), WEFT_THREAD_NAME_MAX);

    /* Unnamed threads get thread-<id>; the first thread is "main". */
    run_named(NULL, &n);
    char want[32];
    snprintf(want, sizeof(want), "thread-%u", n.id);
    assert_string_equal(n.weft, want);
    assert_string_equal(weft_thread_name(), "main");
}

static void
test_set_name(void **state)
{
    (void)state;
    assert_int_equal(weft_thread_set_name("renamed-main"), WEFT_OK);
    assert_string_equal(weft_thread_name(), "renamed-main");
    char k[32];
    pthread_getname_np(pthread_self(), k, sizeof(k));
    assert_string_equal(k, "renamed-main");
    assert_int_equal(weft_thread_set_name("main"), WEFT_OK);
}

static void
test_ids_unique(void **state)
{
    (void)state;
    struct names n[16];
    weft_thread_t *t[16];
    for (int i = 0; i < 16; i++) {
        assert_int_equal(weft_thread_create(NULL, record_names, &n[i], &t[i]),
                         WEFT_OK);
    }
    for (int i = 0; i < 16; i++) {
        assert_int_equal(weft_thread_join(t[i], NULL), WEFT_OK);
    }
    for (int i = 0; i < 16; i++) {
        assert_true(n[i].id != 0);
        assert_true(n[i].id != weft_thread_id());
        for (int j = 0; j < i; j++) {
            assert_true(n[i].id != n[j].id);
        }
    }
    assert_int_equal(weft_thread_id(), weft_thread_id());
}

static weft_thread_t *_Atomic self_handle;

static void *
join_self(void *arg)
{
    (void)arg;
    weft_thread_t *me;
    while ((me = atomic_load(&self_handle)) == NULL) {
        weft_thread_yield();
    }
    return (void *)(intptr_t)weft_thread_join(me, NULL);
}

static void
test_join_self_is_edeadlk(void **state)
{
    (void)state;
    weft_thread_t *t;
    assert_int_equal(weft_thread_create(NULL, join_self, NULL, &t), WEFT_OK);
    atomic_store(&self_handle, t);
    void *res;
    assert_int_equal(weft_thread_join(t, &res), WEFT_OK);
    assert_int_equal((int)(intptr_t)res, WEFT_EDEADLK);
}

/* Run this test binary as "<exe> --print-cpus" under a shell command and
 * read the count it prints. */
static int
cpus_of(const char *prefix_cmd)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s '%s' --print-cpus", prefix_cmd, self_exe);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int n = -1;
    if (fscanf(p, "%d", &n) != 1) {
        n = -1;
    }
    pclose(p);
    return n;
}

static void
test_cpu_count(void **state)
{
    (void)state;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int n = weft_cpu_count();
    assert_true(n >= 1);
    assert_true(n <= online);
    setenv("WEFT_CPUS", "7", 1);
    assert_int_equal(weft_cpu_count(), 7);
    setenv("WEFT_CPUS", "junk", 1);
    assert_int_equal(weft_cpu_count(), n);
    unsetenv("WEFT_CPUS");
    if (system("command -v taskset >/dev/null 2>&1") == 0) {
        assert_int_equal(cpus_of("taskset -c 0"), 1);
        if (online >= 2) {
            assert_int_equal(cpus_of("taskset -c 0,1"), 2);
        }
    } else {
        printf("taskset not installed: affinity checked in-process only\n");
    }
    /* In-process: narrow the affinity mask of a child. */
    pid_t pid = fork();
    if (pid == 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(0, &set);
        sched_setaffinity(0, sizeof(set), &set);
        _exit(weft_cpu_count() == 1 ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
test_cgroup_quota(void **state)
{
    (void)state;
    char root[] = "/tmp/weft-cg-XXXXXX";
    assert_non_null(mkdtemp(root));
    char p[512];
    char proc[512];
    snprintf(proc, sizeof(proc), "%s/proc-cgroup", root);

    /* v2: the tightest of the cgroup and its ancestors, rounded up. */
    snprintf(p, sizeof(p), "%s/a", root);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/a/b", root);
    mkdir(p, 0700);
    write_file(proc, "0::/a/b\n");
    snprintf(p, sizeof(p), "%s/a/b/cpu.max", root);
    write_file(p, "150000 100000\n");
    assert_int_equal(weft__cgroup_cpus_from(root, proc), 2);
    snprintf(p, sizeof(p), "%s/a/cpu.max", root);
    write_file(p, "50000 100000\n");
    assert_int_equal(weft__cgroup_cpus_from(root, proc), 1);
    write_file(p, "max 100000\n");
    snprintf(p, sizeof(p), "%s/a/b/cpu.max", root);
    write_file(p, "max 100000\n");
    assert_int_equal(weft__cgroup_cpus_from(root, proc), 0);

    /* v1: cpu,cpuacct controller with cfs quota and period. */
    snprintf(p, sizeof(p), "%s/cpu,cpuacct", root);
    mkdir(p, 0700);
    snprintf(p, sizeof(p), "%s/cpu,cpuacct/x", root);
    mkdir(p, 0700);
    write_file(proc, "4:memory:/x\n3:cpu,cpuacct:/x\n");
    snprintf(p, sizeof(p), "%s/cpu,cpuacct/x/cpu.cfs_quota_us", root);
    write_file(p, "300000\n");
    snprintf(p, sizeof(p), "%s/cpu,cpuacct/x/cpu.cfs_period_us", root);
    write_file(p, "100000\n");
    assert_int_equal(weft__cgroup_cpus_from(root, proc), 3);
    snprintf(p, sizeof(p), "%s/cpu,cpuacct/x/cpu.cfs_quota_us", root);
    write_file(p, "-1\n");
    assert_int_equal(weft__cgroup_cpus_from(root, proc), 0);

    /* Missing files mean no limit. */
    assert_int_equal(weft__cgroup_cpus_from(root, "/nonexistent"), 0);

    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--print-cpus") == 0) {
        printf("%d\n", weft_cpu_count());
        return 0;
    }
    self_exe = argv[0];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_join_result),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_set_name),
        cmocka_unit_test(test_ids_unique),
        cmocka_unit_test(test_join_self_is_edeadlk),
        cmocka_unit_test(test_cpu_count),
        cmocka_unit_test(test_cgroup_quota),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
