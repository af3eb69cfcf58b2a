/*
 * curl_uv.c — libcurl's multi interface on a libuv loop (see curl_uv.h).
 *
 * Each socket curl asks to watch gets a sock_t with a uv_poll_t (its address given to curl with
 * curl_multi_assign, so the next call for that socket finds it); CURL_POLL_REMOVE stops and
 * closes it. curl's timer is one uv_timer_t. Every transfer under way is a xfer_t in a doubly
 * linked list (CURLOPT_PRIVATE points at it), so a cancel finds it and the end frees it.
 *
 * Teardown: curl calls its socket and timer functions from inside curl_multi_remove_handle and
 * curl_multi_cleanup too. The struct stays until every uv handle it owns has closed (open
 * counts them: the timer and each socket's poll handle), and while closing the timer function
 * starts nothing. A completion callback may free the whole thing: the reading of finished
 * transfers stops at the first callback after which the object is closing.
 */
#include "curl_uv.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "kvl.h"

typedef struct sock {
    kvl_curl_uv_t *cu;
    curl_socket_t fd;
    uv_poll_t poll;
} sock_t;

typedef struct xfer {
    struct xfer *next, *prev;
    CURL *e;
    kvl_curl_uv_done_cb done;
    void *arg;
} xfer_t;

struct kvl_curl_uv {
    uv_loop_t *loop;
    const kvl_curl_uv_api_t *api;
    CURLM *multi;
    uv_timer_t timer;
    xfer_t *xfers; /* under way */
    unsigned open; /* uv handles not yet closed: the timer and each sock_t's poll */
    bool closing;
};

static void xfer_unlink(kvl_curl_uv_t *cu, xfer_t *x)
{
    if (x->prev != NULL) {
        x->prev->next = x->next;
    } else {
        KVL_ASSERT(cu->xfers == x);
        cu->xfers = x->next;
    }
    if (x->next != NULL) {
        x->next->prev = x->prev;
    }
    x->next = x->prev = NULL;
}

/* One handle of cu has closed; the last one frees cu once it is closing. */
static void handle_closed(kvl_curl_uv_t *cu)
{
    KVL_ASSERT(cu->open > 0);
    cu->open--;
    if (cu->closing && cu->open == 0) {
        free(cu);
    }
}

static void on_sock_closed(uv_handle_t *hd)
{
    sock_t *s = hd->data;
    kvl_curl_uv_t *cu = s->cu;
    free(s);
    handle_closed(cu);
}

static void on_timer_closed(uv_handle_t *hd)
{
    handle_closed(hd->data);
}

/* Calls back every finished transfer (each leaves the multi handle first). */
static void check_done(kvl_curl_uv_t *cu)
{
    CURLMsg *m;
    int left;
    while (!cu->closing && (m = cu->api->multi_info_read(cu->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        CURL *e = m->easy_handle; /* m is curl's until the next call: read it now */
        CURLcode rc = m->data.result;
        xfer_t *x = NULL;
        cu->api->easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        KVL_ASSERT(x != NULL && x->e == e);
        cu->api->multi_remove_handle(cu->multi, e);
        xfer_unlink(cu, x);
        kvl_curl_uv_done_cb done = x->done;
        void *arg = x->arg;
        free(x);
        done(arg, e, rc); /* may add, cancel, or free cu (then the loop ends: closing) */
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_t *s = p->data;
    kvl_curl_uv_t *cu = s->cu;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
        flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
    }
    int running;
    cu->api->multi_socket_action(cu->multi, s->fd, flags, &running);
    check_done(cu); /* s may be closing from here on: not read again */
}

static int on_curl_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    KVL_UNUSED(e);
    kvl_curl_uv_t *cu = userp;
    sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            uv_poll_stop(&s->poll);
            cu->api->multi_assign(cu->multi, fd, NULL);
            uv_close((uv_handle_t *)&s->poll, on_sock_closed);
        }
        return 0;
    }
    if (cu->closing) {
        return 0; /* nothing new is watched while closing */
    }
    if (s == NULL) {
        if ((s = calloc(1, sizeof(*s))) == NULL) {
            return -1;
        }
        if (uv_poll_init_socket(cu->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->cu = cu;
        s->fd = fd;
        s->poll.data = s;
        cu->open++;
        cu->api->multi_assign(cu->multi, fd, s);
    }
    int ev = 0;
    ev |= (what & CURL_POLL_IN) ? UV_READABLE : 0;
    ev |= (what & CURL_POLL_OUT) ? UV_WRITABLE : 0;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    kvl_curl_uv_t *cu = t->data;
    int running;
    cu->api->multi_socket_action(cu->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(cu);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    KVL_UNUSED(multi);
    kvl_curl_uv_t *cu = userp;
    if (cu->closing) {
        return 0;
    }
    if (timeout_ms < 0) {
        uv_timer_stop(&cu->timer);
    } else {
        /* 0: act soon, but from the loop, not from inside curl. */
        uv_timer_start(&cu->timer, on_timer, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

int kvl_curl_uv_new(uv_loop_t *loop, const kvl_curl_uv_api_t *api, kvl_curl_uv_t **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    kvl_curl_uv_t *cu = calloc(1, sizeof(*cu));
    if (cu == NULL || (cu->multi = api->multi_init()) == NULL) {
        free(cu);
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    cu->loop = loop;
    cu->api = api;
    uv_timer_init(loop, &cu->timer);
    cu->timer.data = cu;
    cu->open = 1; /* the timer */
    api->multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    api->multi_setopt(cu->multi, CURLMOPT_SOCKETDATA, cu);
    api->multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    api->multi_setopt(cu->multi, CURLMOPT_TIMERDATA, cu);
    *out = cu;
    return 0;
}

int kvl_curl_uv_add(kvl_curl_uv_t *cu, CURL *e, kvl_curl_uv_done_cb done, void *arg, char *err,
                    size_t errlen)
{
    if (cu->closing) {
        snprintf(err, errlen, "the transfers are closing");
        return KVL_EINVAL;
    }
    xfer_t *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    *x = (xfer_t){.e = e, .done = done, .arg = arg};
    CURLMcode mc = cu->api->multi_add_handle(cu->multi, e);
    if (mc != CURLM_OK) {
        snprintf(err, errlen, "%s", cu->api->multi_strerror(mc));
        free(x);
        return mc == CURLM_OUT_OF_MEMORY ? KVL_ENOMEM : KVL_EINVAL;
    }
    /* Only now: a handle curl refused (one added already) keeps the xfer_t it points at. The
     * transfer has not started (curl acts from its timer, on the loop). */
    cu->api->easy_setopt(e, CURLOPT_PRIVATE, x);
    x->next = cu->xfers;
    if (cu->xfers != NULL) {
        cu->xfers->prev = x;
    }
    cu->xfers = x;
    return 0;
}

int kvl_curl_uv_cancel(kvl_curl_uv_t *cu, CURL *e)
{
    xfer_t *x = cu->xfers;
    while (x != NULL && x->e != e) {
        x = x->next;
    }
    if (x == NULL) {
        return KVL_EINVAL;
    }
    cu->api->multi_remove_handle(cu->multi, e); /* its pending end message goes with it */
    xfer_unlink(cu, x);
    free(x);
    return 0;
}

void kvl_curl_uv_free(kvl_curl_uv_t *cu, kvl_curl_uv_drop_cb drop)
{
    if (cu == NULL || cu->closing) {
        return;
    }
    cu->closing = true;
    /* Removing a handle closes its sockets: curl calls on_curl_socket to stop watching them. */
    while (cu->xfers != NULL) {
        xfer_t *x = cu->xfers;
        CURL *e = x->e;
        void *arg = x->arg;
        xfer_unlink(cu, x);
        free(x);
        cu->api->multi_remove_handle(cu->multi, e);
        if (drop != NULL) {
            drop(arg, e);
        } else {
            cu->api->easy_cleanup(e);
        }
    }
    cu->api->multi_cleanup(cu->multi); /* the connections it kept: their sockets removed too */
    cu->multi = NULL;
    uv_close((uv_handle_t *)&cu->timer, on_timer_closed);
}
