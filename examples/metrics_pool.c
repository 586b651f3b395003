/* SPDX-License-Identifier: MIT */
/*
 * Seeing a pool at work: with metrics on, a pool runs a mixed workload
 * (quick tasks, 1 ms sleepers, a few that fail), then the program prints
 * a snapshot (counters, queue wait and run time p50/p99 of the timed
 * sample, utilisation), starts the metrics endpoint on 127.0.0.1 (an
 * ephemeral port) and scrapes itself with libcurl, the way Prometheus
 * would. It checks the counts and that the scrape holds the pool's
 * metrics.
 *
 * Built only when libcurl is found (Debian: libcurl4-openssl-dev).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include <weft/metrics.h>
#include <weft/pool.h>

#include "example.h"

#define QUICK 20000
#define SLEEPERS 500
#define FAILING 10

static void *
quick(void *arg)
{
    (void)arg;
    return NULL;
}

static void *
sleeper(void *arg)
{
    (void)arg;
    EX_OK(weft_sleep_for(WEFT_MSEC));
    return NULL;
}

static void *
failing(void *arg)
{
    return weft_task_fail(WEFT_EIO, "task %d: no such file",
                          (int)(intptr_t)arg);
}

static size_t
collect(char *data, size_t size, size_t n, void *ctx)
{
    char **body = ctx;
    size_t old = *body != NULL ? strlen(*body) : 0;
    char *p = realloc(*body, old + size * n + 1);
    EX_CHECK(p != NULL, "out of memory");
    memcpy(p + old, data, size * n);
    p[old + size * n] = '\0';
    *body = p;
    return size * n;
}

/* GET url with libcurl into *body (NULL before; the caller frees it). */
static void
scrape(const char *url, char **body)
{
    CURL *c = curl_easy_init();
    EX_CHECK(c != NULL, "curl_easy_init failed");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    CURLcode rc = curl_easy_perform(c);
    EX_CHECK(rc == CURLE_OK, "GET %s: %s", url, curl_easy_strerror(rc));
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    EX_CHECK(status == 200, "GET %s: status %ld", url, status);
    curl_easy_cleanup(c);
    EX_CHECK(*body != NULL, "GET %s: empty body", url);
}

static void
run_workload(weft_executor_t *ex)
{
    weft_future_t *fails[FAILING];
    for (int i = 0; i < QUICK; i++) {
        EX_OK(weft_executor_submit(ex, quick, NULL, NULL, NULL));
    }
    for (int i = 0; i < SLEEPERS; i++) {
        EX_OK(weft_executor_submit(ex, sleeper, NULL, NULL, NULL));
    }
    for (int i = 0; i < FAILING; i++) {
        EX_OK(weft_executor_submit(ex, failing, (void *)(intptr_t)i, NULL,
                                   &fails[i]));
    }
    for (int i = 0; i < FAILING; i++) {
        EX_OK(weft_future_wait(fails[i]));
        EX_CHECK(weft_future_code(fails[i]) == WEFT_EIO, "task %d: code %d", i,
                 weft_future_code(fails[i]));
        weft_future_release(fails[i]);
    }
    /* Every task has ended (and been counted) once shutdown returns. */
    EX_OK(weft_executor_shutdown(ex, true, false));
}

/* Tasks timed for the histograms: one in sample_every (of the submits of
 * each thread: here all come from main). */
static uint64_t timed;

static void
print_snapshot(void)
{
    weft_metrics_snapshot_t *s = NULL;
    EX_OK(weft_metrics_snapshot(&s));
    EX_CHECK(s->npools == 1, "%zu pools listed, expected 1", s->npools);
    const weft_metrics_pool_t *p = &s->pools[0];
    printf("pool %s, %u workers\n", p->name, p->workers);
    printf("  submitted %llu, started %llu, completed %llu, failed %llu\n",
           (unsigned long long)p->submitted, (unsigned long long)p->started,
           (unsigned long long)p->completed, (unsigned long long)p->failed);
    printf("  timed one task in %u: %llu samples in the histograms\n",
           s->sample_every, (unsigned long long)p->run.count);
    printf("  queue wait p50 %.1f us, p99 %.1f us, max %.1f us\n",
           (double)p->wait.p50_ns / 1e3, (double)p->wait.p99_ns / 1e3,
           (double)p->wait.max_ns / 1e3);
    printf("  run time   p50 %.1f us, p99 %.1f us, max %.1f us\n",
           (double)p->run.p50_ns / 1e3, (double)p->run.p99_ns / 1e3,
           (double)p->run.max_ns / 1e3);
    for (unsigned w = 0; w < p->workers; w++) {
        printf("  worker %u busy %.0f%% of the last %.2f s\n", w,
               p->utilisation[w] * 100, p->window_s);
    }
    const uint64_t all = QUICK + SLEEPERS + FAILING;
    EX_CHECK(p->submitted == all && p->started == all, "submitted %llu",
             (unsigned long long)p->submitted);
    EX_CHECK(p->completed == QUICK + SLEEPERS && p->failed == FAILING,
             "completed %llu, failed %llu", (unsigned long long)p->completed,
             (unsigned long long)p->failed);
    /* Counters count every task, the histograms the sample. */
    EX_CHECK(
        p->run.count == all / s->sample_every && p->wait.count == p->run.count,
        "%llu run samples, %llu wait samples, expected %llu",
        (unsigned long long)p->run.count, (unsigned long long)p->wait.count,
        (unsigned long long)(all / s->sample_every));
    timed = p->run.count;
    /* 2.4% of the tasks slept 1 ms: p99 is at least about that. */
    EX_CHECK(p->run.max_ns >= WEFT_MSEC && p->run.p99_ns >= WEFT_MSEC / 2,
             "run time p99 %llu ns", (unsigned long long)p->run.p99_ns);
    weft_metrics_snapshot_free(s);
}

int
main(void)
{
    weft_metrics_enable(true);
    weft_pool_opts_t o = WEFT_POOL_OPTS_INIT;
    o.name = "demo";
    o.workers = 2;
    weft_executor_t *ex = NULL;
    EX_OK(weft_pool_create(&o, &ex));
    run_workload(ex);
    print_snapshot();

    weft_metrics_server_t *srv = NULL;
    EX_OK(weft_metrics_serve(0, &srv));
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics",
             weft_metrics_server_port(srv));
    printf("serving %s\n", url);
    EX_CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == 0, "curl init");
    char *body = NULL;
    scrape(url, &body);
    char run_count[96], wait_count[96];
    snprintf(run_count, sizeof(run_count),
             "weft_pool_run_seconds_count{pool=\"demo\"} %llu\n",
             (unsigned long long)timed);
    snprintf(wait_count, sizeof(wait_count),
             "weft_pool_queue_wait_seconds_bucket{pool=\"demo\",le=\"+Inf\"} "
             "%llu\n",
             (unsigned long long)timed);
    const char *want[] = {
        "weft_pool_tasks_completed_total{pool=\"demo\"} 20500\n",
        "weft_pool_tasks_failed_total{pool=\"demo\"} 10\n",
        "\nweft_metrics_sample_every ",
        run_count,
        wait_count,
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        EX_CHECK(strstr(body, want[i]) != NULL, "scrape lacks %s", want[i]);
    }
    printf("scraped %zu bytes; for example:\n", strlen(body));
    const char *line = strstr(body, "weft_pool_run_seconds_bucket");
    for (int i = 0; line != NULL && i < 4; i++) {
        const char *end = strchr(line, '\n');
        printf("  %.*s\n", (int)(end - line), line);
        line = end + 1;
    }
    free(body);
    curl_global_cleanup();
    weft_metrics_server_stop(srv);
    weft_executor_destroy(ex);
    return 0;
}
