/* SPDX-License-Identifier: MIT */
/*
 * The metrics endpoint: a small HTTP/1.1 server on 127.0.0.1 for a
 * Prometheus scraper (GET /metrics) or a person (GET /metrics.json).
 *
 * DESIGN
 * One thread polls the listening socket and a wake pipe; it serves one
 * client at a time: read the request head (at most 8 KiB, 2 s), answer,
 * close. stop writes to the pipe and joins the thread. The sockets are
 * plain POSIX calls, confined to this file.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft/thread.h>

#include "metrics_impl.h"

#define REQ_MAX 8192
#define IO_TIMEOUT_MS 2000

struct weft_metrics_server {
    int fd;
    int wake[2]; /* pipe: stop writes, the thread polls */
    uint16_t port;
    weft_thread_t *thread;
};

/* Write all of p, giving up after the I/O timeout. */
static void
send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        struct pollfd pf = {fd, POLLOUT, 0};
        if (poll(&pf, 1, IO_TIMEOUT_MS) <= 0) {
            return;
        }
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return;
        }
        p += k;
        n -= (size_t)k;
    }
}

static void
respond(int fd, int status, const char *ctype, const char *body, size_t len)
{
    const char *reason = status == 200   ? "OK"
                         : status == 404 ? "Not Found"
                         : status == 405 ? "Method Not Allowed"
                         : status == 400 ? "Bad Request"
                                         : "Internal Server Error";
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, reason, ctype, len);
    send_all(fd, head, (size_t)n);
    send_all(fd, body, len);
}

/* Read the request head into req (NUL-terminated); false when it is too
 * long, the client is too slow, or it closed. */
static bool
read_head(int fd, char *req, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, IO_TIMEOUT_MS) <= 0) {
            return false;
        }
        ssize_t k = recv(fd, req + n, cap - 1 - n, 0);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return false;
        }
        n += (size_t)k;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL || strstr(req, "\n\n") != NULL) {
            return true;
        }
    }
    return false;
}

static void
serve_one(int fd)
{
    static const char text[] = "text/plain; charset=utf-8";
    char *req = malloc(REQ_MAX);
    if (req == NULL) {
        return;
    }
    if (!read_head(fd, req, REQ_MAX)) {
        respond(fd, 400, text, "bad request\n", 12);
        free(req);
        return;
    }
    char path[256];
    bool get = strncmp(req, "GET ", 4) == 0;
    size_t plen = strcspn(req + 4, " ?\r\n");
    snprintf(path, sizeof(path), "%.*s", (int)(plen < 255 ? plen : 255),
             req + 4);
    free(req);
    if (!get) {
        respond(fd, 405, text, "method not allowed\n", 19);
        return;
    }
    bool prom = strcmp(path, "/metrics") == 0;
    if (!prom && strcmp(path, "/metrics.json") != 0) {
        respond(fd, 404, text, "not found\n", 10);
        return;
    }
    char *body = NULL;
    size_t len = 0;
    int rc = prom ? weft_metrics_prometheus(&body, &len)
                  : weft_metrics_json(&body, &len);
    if (rc != WEFT_OK) {
        respond(fd, 500, text, "error\n", 6);
        return;
    }
    respond(fd, 200,
            prom ? "text/plain; version=0.0.4; charset=utf-8"
                 : "application/json",
            body, len);
    free(body);
}

static void *
server_main(void *arg)
{
    weft_metrics_server_t *s = arg;
    for (;;) {
        struct pollfd pf[2] = {{s->fd, POLLIN, 0}, {s->wake[0], POLLIN, 0}};
        int n = poll(pf, 2, -1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 || pf[1].revents != 0) {
            break;
        }
        int c = accept(s->fd, NULL, NULL);
        if (c >= 0) {
            serve_one(c);
            close(c);
        }
    }
    return NULL;
}

static int
listen_on(uint16_t port, int *fd_out, uint16_t *port_out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return WEFT_ESYS;
    }
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        listen(fd, 16) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        close(fd);
        return WEFT_ESYS;
    }
    *fd_out = fd;
    *port_out = ntohs(a.sin_port);
    return WEFT_OK;
}

int
weft_metrics_serve(uint16_t port, weft_metrics_server_t **out)
{
    if (out == NULL) {
        return WEFT_EINVAL;
    }
    weft_metrics_server_t *s = weft__calloc(1, sizeof(*s));
    if (s == NULL) {
        return WEFT_ENOMEM;
    }
    int rc = listen_on(port, &s->fd, &s->port);
    if (rc != WEFT_OK) {
        goto fail_listen;
    }
    if (pipe(s->wake) != 0) {
        rc = WEFT_ESYS;
        goto fail_pipe;
    }
    weft_thread_opts_t to = WEFT_THREAD_OPTS_INIT;
    to.name = "weft-metrics";
    rc = weft_thread_create(&to, server_main, s, &s->thread);
    if (rc != WEFT_OK) {
        goto fail_thread;
    }
    *out = s;
    return WEFT_OK;

fail_thread:
    close(s->wake[0]);
    close(s->wake[1]);
fail_pipe:
    close(s->fd);
fail_listen:
    weft__free(s);
    return rc;
}

uint16_t
weft_metrics_server_port(const weft_metrics_server_t *s)
{
    WEFT_ASSERT(s != NULL, "weft_metrics_server_port: NULL server");
    return s->port;
}

void
weft_metrics_server_stop(weft_metrics_server_t *s)
{
    if (s == NULL) {
        return;
    }
    char c = 1;
    while (write(s->wake[1], &c, 1) < 0 && errno == EINTR) {
    }
    int rc = weft_thread_join(s->thread, NULL);
    WEFT_ASSERT(rc == WEFT_OK, "metrics server: join failed: %d", rc);
    close(s->wake[0]);
    close(s->wake[1]);
    close(s->fd);
    weft__free(s);
}
