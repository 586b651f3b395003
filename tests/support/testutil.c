/* SPDX-License-Identifier: MIT */
/* Shared test helpers; see testutil.h. */
#include "testutil.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int
wt_long(void)
{
    const char *s = getenv("WEFT_STRESS");
    return s != NULL && strcmp(s, "long") == 0;
}

size_t
wt_size(size_t short_n, size_t long_n)
{
    const char *n = getenv("WEFT_STRESS_N");
    if (n != NULL && atoll(n) > 0) {
        return (size_t)atoll(n);
    }
    if (wt_long()) {
        return long_n;
    }
    size_t s = short_n / WEFT_TEST_SLOW;
    return s > 0 ? s : 1;
}

uint64_t
wt_seed(void)
{
    static uint64_t seed;
    static int done;
    if (!done) {
        const char *s = getenv("WEFT_SEED");
        seed = s != NULL ? strtoull(s, NULL, 0) : (uint64_t)weft_now();
        printf("seed: %llu (replay with WEFT_SEED=%llu)\n",
               (unsigned long long)seed, (unsigned long long)seed);
        fflush(stdout);
        done = 1;
    }
    return seed;
}

uint64_t
wt_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void
read_all(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0) {
            break;
        }
        len += (size_t)r;
        if (len == cap - 1) {
            break;
        }
    }
    buf[len] = '\0';
}

int
wt_dies_with(void (*fn)(void *), void *arg, const char *expect)
{
    int fds[2];
    if (pipe(fds) != 0) {
        return 0;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], STDERR_FILENO);
        /* No core files from planted aborts. */
        signal(SIGABRT, SIG_DFL);
        fn(arg);
        _exit(0); /* fn returned: the test fails */
    }
    close(fds[1]);
    static char out[8192];
    read_all(fds[0], out, sizeof(out));
    close(fds[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    int ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT &&
             (expect == NULL || strstr(out, expect) != NULL);
    if (!ok) {
        printf(
            "death test: expected abort with \"%s\"; status %d; stderr:\n%s\n",
            expect != NULL ? expect : "(any)", st, out);
    }
    return ok;
}

void
wt_run_threads(size_t n, void *(*fn)(void *), void *base, size_t stride)
{
    weft_thread_t **t = calloc(n, sizeof(*t));
    assert_non_null(t);
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "test-%zu", i);
        weft_thread_opts_t o = WEFT_THREAD_OPTS_INIT;
        o.name = name;
        assert_int_equal(
            weft_thread_create(&o, fn, (char *)base + i * stride, &t[i]),
            WEFT_OK);
    }
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(weft_thread_join(t[i], NULL), WEFT_OK);
    }
    free(t);
}

weft_thread_t *
wt_start(void *(*fn)(void *), void *arg)
{
    weft_thread_t *t = NULL;
    assert_int_equal(weft_thread_create(NULL, fn, arg, &t), WEFT_OK);
    return t;
}

void *
wt_join(weft_thread_t *t)
{
    void *r = NULL;
    assert_int_equal(weft_thread_join(t, &r), WEFT_OK);
    return r;
}

int
wt_cmp_u64(const void *a, const void *b, void *ctx)
{
    (void)ctx;
    uint64_t x;
    uint64_t y;
    memcpy(&x, a, sizeof(x));
    memcpy(&y, b, sizeof(y));
    return (x > y) - (x < y);
}

weft_queue_t *
wt_queue_u64(weft_queue_order_t order, size_t cap)
{
    weft_queue_opts_t o = WEFT_QUEUE_OPTS_INIT;
    o.order = order;
    o.capacity = cap;
    o.elem_size = sizeof(uint64_t);
    o.cmp = wt_cmp_u64;
    weft_queue_t *q = NULL;
    assert_int_equal(weft_queue_create(&o, &q), WEFT_OK);
    return q;
}

void
wt_put_u64(weft_queue_t *q, uint64_t v)
{
    assert_int_equal(weft_queue_put(q, &v), WEFT_OK);
}

uint64_t
wt_get_u64(weft_queue_t *q)
{
    uint64_t v = 0;
    assert_int_equal(weft_queue_get(q, &v), WEFT_OK);
    return v;
}
