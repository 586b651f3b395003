/* SPDX-License-Identifier: MIT */
/*
 * The "threads for I/O" lesson of concurrent.futures: download 20 pages one
 * after another, then all at once on a pool, with libcurl. Each download
 * mostly waits for the network, so the tasks are marked blocking: they run
 * on the pool's blocking lane (elastic threads for I/O) and never occupy
 * the CPU workers. The pages come from a small HTTP server this program
 * starts on 127.0.0.1 (an ephemeral port): it answers each request after
 * 100 ms, like a slow remote site, with HTTP/1.0, a Content-Length and
 * Connection: close. Every page is checked byte for byte.
 *
 * Built only when libcurl is found (Debian: libcurl4-openssl-dev).
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include <weft/pool.h>

#include "example.h"

#define PAGES 20
#define DELAY (100 * WEFT_MSEC) /* the server's think time per page */

/* Page n's body: deterministic, 2 to 4 KB, so the client can check it. */
static size_t
page_body(int n, char *out, size_t cap)
{
    size_t len = 2000 + (size_t)n * 97;
    EX_CHECK(len <= cap, "page %d too long", n);
    for (size_t i = 0; i < len; i++) {
        out[i] = i % 64 == 63 ? '\n' : (char)('a' + ((size_t)n * 31 + i) % 26);
    }
    return len;
}

/* ------------------------------------------------------------------ */
/* The server: an accept loop on a thread; each connection is served by a
 * blocking task on the server's own pool. */

typedef struct server {
    int fd; /* listening socket */
    unsigned short port;
    weft_executor_t *handlers;
    weft_thread_t *acceptor;
    atomic_uint served;
} server_t;

static server_t server;

static void
send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return; /* the client went away */
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Read the request head; returns the page number asked for, or -1. */
static int
read_request(int fd)
{
    char req[1024];
    size_t got = 0;
    int n = -1;

    while (got < sizeof req - 1) {
        ssize_t r = recv(fd, req + got, sizeof req - 1 - got, 0);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return -1;
        }
        got += (size_t)r;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL) {
            break;
        }
    }
    if (sscanf(req, "GET /page/%d HTTP/1.", &n) != 1 || n < 0 || n >= PAGES) {
        return -1;
    }
    return n;
}

static void *
serve(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char body[4096], head[256];
    int n = read_request(fd);

    if (weft_sleep_for(DELAY) == WEFT_OK && n >= 0) {
        size_t len = page_body(n, body, sizeof body);
        int h = snprintf(head, sizeof head,
                         "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                         len);
        send_all(fd, head, (size_t)h);
        send_all(fd, body, len);
        atomic_fetch_add(&server.served, 1);
    } else {
        static const char nf[] =
            "HTTP/1.0 404 Not Found\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n";
        send_all(fd, nf, sizeof nf - 1);
    }
    close(fd);
    return NULL;
}

static void *
accept_loop(void *arg)
{
    weft_task_opts_t opts = WEFT_TASK_OPTS_INIT;
    (void)arg;
    opts.blocking = true; /* a handler sleeps and waits on its socket */
    for (;;) {
        int fd = accept(server.fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            return NULL; /* the listening socket was shut down */
        }
        if (ex_submit_started(server.handlers, serve, (void *)(intptr_t)fd,
                              &opts, NULL) != WEFT_OK) {
            close(fd);
        }
    }
}

static void
server_start(void)
{
    struct sockaddr_in a;
    socklen_t alen = sizeof a;
    weft_pool_opts_t po = WEFT_POOL_OPTS_INIT;
    weft_thread_opts_t to = WEFT_THREAD_OPTS_INIT;

    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0; /* any free port */
    server.fd = socket(AF_INET, SOCK_STREAM, 0);
    EX_CHECK(server.fd >= 0, "socket: %s", strerror(errno));
    EX_CHECK(bind(server.fd, (struct sockaddr *)&a, sizeof a) == 0 &&
                 listen(server.fd, 64) == 0 &&
                 getsockname(server.fd, (struct sockaddr *)&a, &alen) == 0,
             "cannot listen on 127.0.0.1: %s", strerror(errno));
    server.port = ntohs(a.sin_port);
    po.name = "server";
    po.workers = 1;
    EX_OK(weft_pool_create(&po, &server.handlers));
    to.name = "acceptor";
    EX_OK(weft_thread_create(&to, accept_loop, NULL, &server.acceptor));
}

static void
server_stop(void)
{
    shutdown(server.fd, SHUT_RDWR); /* accept() returns: the loop ends */
    EX_OK(weft_thread_join(server.acceptor, NULL));
    close(server.fd);
    weft_executor_destroy(server.handlers); /* waits for the handlers */
}

/* ------------------------------------------------------------------ */
/* The client */

typedef struct page {
    int n;
    size_t len;
    char data[]; /* len bytes */
} page_t;

typedef struct buf {
    char *data;
    size_t len;
} buf_t;

static size_t
on_data(char *p, size_t size, size_t nmemb, void *ctx)
{
    buf_t *b = ctx;
    size_t n = size * nmemb;
    char *d = realloc(b->data, b->len + n);
    if (d == NULL) {
        return 0; /* libcurl stops with CURLE_WRITE_ERROR */
    }
    memcpy(d + b->len, p, n);
    b->data = d;
    b->len += n;
    return n;
}

/* GET page n. Returns WEFT_OK and a new page, or WEFT_EIO with why. */
static int
download(int n, page_t **out, char *why, size_t why_len)
{
    char url[64];
    buf_t b = {NULL, 0};
    long status = 0;
    CURL *c = curl_easy_init();

    if (c == NULL) {
        snprintf(why, why_len, "curl_easy_init failed");
        return WEFT_ENOMEM;
    }
    snprintf(url, sizeof url, "http://127.0.0.1:%u/page/%d",
             (unsigned)server.port, n);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* required with threads */
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*"); /* never via http_proxy */
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    page_t *p =
        cc == CURLE_OK && status == 200 ? malloc(sizeof *p + b.len + 1) : NULL;
    if (p == NULL) {
        snprintf(why, why_len, "GET %s: %s, HTTP %ld", url,
                 curl_easy_strerror(cc), status);
        free(b.data);
        return WEFT_EIO;
    }
    p->n = n;
    p->len = b.len;
    memcpy(p->data, b.data, b.len);
    free(b.data);
    *out = p;
    return WEFT_OK;
}

/* The same download as a pool task: a failure becomes the future's. */
static void *
download_task(void *arg)
{
    char why[256];
    page_t *p = NULL;
    int rc = download((int)(intptr_t)arg, &p, why, sizeof why);
    return rc == WEFT_OK ? p : weft_task_fail(rc, "%s", why);
}

static void
check_page(const page_t *p, int n)
{
    char want[4096];
    size_t len = page_body(n, want, sizeof want);
    EX_CHECK(p->n == n && p->len == len && memcmp(p->data, want, len) == 0,
             "page %d: wrong body (%zu bytes)", n, p->len);
}

static double
sequential(void)
{
    weft_time_t t0 = weft_now();
    for (int n = 0; n < PAGES; n++) {
        char why[256];
        page_t *p = NULL;
        int rc = download(n, &p, why, sizeof why);
        EX_CHECK(rc == WEFT_OK, "%s", why);
        check_page(p, n);
        free(p);
    }
    return ex_seconds_since(t0);
}

static double
on_pool(weft_executor_t *pool)
{
    weft_task_opts_t opts = WEFT_TASK_OPTS_INIT;
    weft_future_t *fs[PAGES];

    opts.blocking = true;    /* waits on the network: the blocking lane */
    opts.result_dtor = free; /* frees a page nobody takes */
    opts.label = "download";
    weft_time_t t0 = weft_now();
    for (int n = 0; n < PAGES; n++) {
        EX_OK(ex_submit_started(pool, download_task, (void *)(intptr_t)n, &opts,
                                &fs[n]));
    }
    for (int n = 0; n < PAGES; n++) {
        void *v;
        int rc = weft_future_take_result(fs[n], &v); /* waits; v is ours */
        EX_CHECK(rc == WEFT_OK, "page %d: %s: %s", n, weft_errname(rc),
                 weft_future_error(fs[n]));
        check_page(v, n);
        free(v);
        weft_future_release(fs[n]);
    }
    return ex_seconds_since(t0);
}

int
main(void)
{
    weft_executor_t *pool;

    EX_CHECK(curl_global_init(CURL_GLOBAL_DEFAULT) == 0, "curl_global_init");
    server_start();
    EX_OK(weft_pool_create(NULL, &pool));
    printf("A local server on 127.0.0.1:%u answers each page after %lld "
           "ms.\n",
           (unsigned)server.port, (long long)(DELAY / WEFT_MSEC));

    double seq = sequential();
    printf("  %d pages one after another: %.2f s\n", PAGES, seq);
    double par = on_pool(pool);
    printf("  %d pages on the pool's blocking lane: %.2f s\n", PAGES, par);
    printf("  speed-up: %.1fx (every page checked byte for byte)\n", seq / par);

    weft_executor_destroy(pool);
    server_stop();
    curl_global_cleanup();
    EX_CHECK(atomic_load(&server.served) == 2 * PAGES, "served %u pages",
             atomic_load(&server.served));
    EX_CHECK(seq / par > 3.0, "the concurrent downloads are not faster");
    return 0;
}
