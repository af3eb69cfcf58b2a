/*
 * probe_tcp.c — TCP connect-time probes (see probe_tcp.h).
 *
 * Every attempt owns a uv_tcp_t and a uv_connect_t, linked in its probe's list until the
 * handle has closed; the probe itself is freed when its list is empty after
 * kvl_tcp_probe_free.
 */
#include "probe_tcp.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"

typedef struct attempt {
    struct attempt *next, *prev;
    kvl_tcp_probe_t *t;
    uv_tcp_t h;
    uv_connect_t req;
    uint32_t seq;
    uint64_t started; /* uv_hrtime */
    bool cancelled;
    bool closing;
} attempt_t;

struct kvl_tcp_probe {
    uv_loop_t *loop;
    struct sockaddr_storage to;
    kvl_tcp_probe_cb cb;
    void *arg;
    attempt_t *list;
    bool freeing;
    uint64_t user_timed;
};

kvl_tcp_probe_t *kvl_tcp_probe_new(uv_loop_t *loop, const struct sockaddr *to, kvl_tcp_probe_cb cb,
                                   void *arg)
{
    kvl_tcp_probe_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    t->loop = loop;
    memcpy(&t->to, to,
           to->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    t->cb = cb;
    t->arg = arg;
    return t;
}

static void on_attempt_closed(uv_handle_t *h)
{
    attempt_t *a = h->data;
    kvl_tcp_probe_t *t = a->t;
    if (a->prev != NULL) {
        a->prev->next = a->next;
    } else {
        t->list = a->next;
    }
    if (a->next != NULL) {
        a->next->prev = a->prev;
    }
    free(a);
    if (t->freeing && t->list == NULL) {
        free(t);
    }
}

static void close_attempt(attempt_t *a)
{
    if (!a->closing) {
        a->closing = true;
        uv_close((uv_handle_t *)&a->h, on_attempt_closed);
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    attempt_t *a = req->data;
    kvl_tcp_probe_t *t = a->t;
    if (!a->cancelled && status != UV_ECANCELED) {
        int64_t ns = (int64_t)(uv_hrtime() - a->started);
        if (status == 0) {
            uv_os_fd_t fd;
            struct tcp_info ti;
            socklen_t len = sizeof(ti);
            memset(&ti, 0, sizeof(ti));
            if (uv_fileno((uv_handle_t *)&a->h, &fd) == 0 &&
                getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_rtt > 0) {
                ns = (int64_t)ti.tcpi_rtt * 1000;
            } else {
                t->user_timed++;
            }
        }
        t->cb(t->arg, a->seq, status, ns);
    }
    close_attempt(a);
}

int kvl_tcp_probe_connect(kvl_tcp_probe_t *t, uint32_t seq)
{
    attempt_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return UV_ENOMEM;
    }
    a->t = t;
    a->seq = seq;
    int rc = uv_tcp_init(t->loop, &a->h);
    if (rc != 0) {
        free(a);
        return rc;
    }
    a->h.data = a;
    a->req.data = a;
    a->next = t->list;
    if (t->list != NULL) {
        t->list->prev = a;
    }
    t->list = a;
    a->started = uv_hrtime();
    rc = uv_tcp_connect(&a->req, &a->h, (const struct sockaddr *)&t->to, on_connect);
    if (rc != 0) {
        a->cancelled = true;
        close_attempt(a);
        return rc;
    }
    return 0;
}

void kvl_tcp_probe_cancel(kvl_tcp_probe_t *t)
{
    for (attempt_t *a = t->list; a != NULL; a = a->next) {
        a->cancelled = true;
        close_attempt(a); /* the pending connect then completes with UV_ECANCELED */
    }
}

uint64_t kvl_tcp_probe_user_timed(const kvl_tcp_probe_t *t)
{
    return t->user_timed;
}

void kvl_tcp_probe_free(kvl_tcp_probe_t *t)
{
    if (t == NULL) {
        return;
    }
    t->freeing = true;
    if (t->list == NULL) {
        free(t);
        return;
    }
    kvl_tcp_probe_cancel(t);
}
