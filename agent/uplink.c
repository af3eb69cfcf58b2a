/*
 * uplink.c — the agent's TCP connection to the collector (see uplink.h).
 *
 * States: idle (waiting to reconnect) → resolving (uv_getaddrinfo, off the loop) →
 * connecting → TLS handshake (unless insecure) → hello sent (waiting for Welcome) → ready. In
 * ready, queued batches are written in sequence order with at most WINDOW_BYTES in flight; an Ack
 * drops every batch up to its sequence number. Any error closes the connection; all unacknowledged
 * batches become unsent again and the next attempt follows a backoff of 1 s doubling up to
 * reconnect_max.
 *
 * TLS (common/tls.h) sits between the socket and the frames: bytes read go through
 * kvl_tls_feed before the frame reader, and every write goes through kvl_tls_write; the
 * hello timer covers the handshake too. With `insecure: true` both are skipped.
 */
#include "uplink.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "batcher.h"
#include "frame.h"
#include "kvl.h"
#include "log.h"
#include "timeutil.h"
#include "tls.h"
#include "wire.h"

#define WINDOW_BYTES (1u << 20)
#define HELLO_TIMEOUT_MS 10000
#define DEFS_PER_FRAME 5000 /* a definition encodes to ~100-200 bytes */

typedef struct entry {
    struct entry *next;
    uint64_t seq;
    kvl_buf_t frame;
} entry_t;

typedef enum {
    ST_IDLE,
    ST_RESOLVING,
    ST_CONNECTING,
    ST_TLS,
    ST_HELLO,
    ST_READY,
    ST_CLOSING
} state_t;

typedef struct conn {
    uv_tcp_t tcp;
    uv_connect_t connect;
    kvl_uplink_t *up;
    kvl_frame_reader_t reader;
    kvl_tls_t *tls;  /* NULL when insecure */
    kvl_buf_t plain; /* decrypted bytes on their way to the reader */
    bool closing;
} conn_t;

struct kvl_uplink {
    uv_loop_t *loop;
    const kvl_agent_cfg_t *cfg;
    kvl_tls_ctx_t *tls_ctx; /* NULL when insecure */
    struct kvl_batcher *batcher;
    state_t state;
    conn_t *conn;
    uv_getaddrinfo_t resolver;
    bool resolver_busy;
    uv_timer_t retry;
    uv_timer_t hello_timer;
    int64_t backoff_ms;
    bool logged_down; /* a failure was logged and no success since */
    bool freeing;
    bool timers_closed;

    entry_t *head, *tail, *next_unsent;
    size_t n_pending;
    size_t inflight_bytes;
    uint64_t next_seq;
    uint64_t dropped;
    uint64_t acked_seq;
};

typedef struct write_req {
    uv_write_t req;
    kvl_uplink_t *up;
    size_t len;
    uint8_t data[];
} write_req_t;

static void schedule_retry(kvl_uplink_t *u);
static void pump(kvl_uplink_t *u);
static int flush_tls(kvl_uplink_t *u);
static void send_close_notify(conn_t *c);

kvl_uplink_t *kvl_uplink_new(uv_loop_t *loop, const kvl_agent_cfg_t *cfg)
{
    kvl_uplink_t *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        return NULL;
    }
    u->loop = loop;
    u->cfg = cfg;
    u->backoff_ms = 1000;
    if (cfg->tls.insecure) {
        KVL_LOG_WARN("uplink", cfg->collector,
                     "INSECURE: plain TCP to the collector (insecure: true); nothing is "
                     "encrypted and the collector is not authenticated");
    } else {
        char err[512];
        u->tls_ctx = kvl_tls_ctx_new(KVL_TLS_CLIENT, cfg->tls.ca, cfg->tls.cert, cfg->tls.key, err,
                                     sizeof(err));
        if (u->tls_ctx == NULL) {
            KVL_LOG_ERROR("uplink", cfg->collector, "TLS: %s", err);
            free(u);
            return NULL;
        }
        KVL_LOG_INFO("uplink", cfg->collector, "mutual TLS as %s, collector verified as %s",
                     kvl_tls_ctx_subject(u->tls_ctx),
                     cfg->tls.server_name ? cfg->tls.server_name : cfg->collector_host);
    }
    /* Microseconds since the epoch: strictly above any number a previous run used, so the
     * collector's duplicate check works across agent restarts without stored state. */
    u->next_seq = (uint64_t)kvl_now_ms() * 1000u;
    uv_timer_init(loop, &u->retry);
    u->retry.data = u;
    uv_timer_init(loop, &u->hello_timer);
    u->hello_timer.data = u;
    return u;
}

void kvl_uplink_set_batcher(kvl_uplink_t *u, struct kvl_batcher *b)
{
    u->batcher = b;
}

uint64_t kvl_uplink_next_seq(kvl_uplink_t *u)
{
    return ++u->next_seq;
}

size_t kvl_uplink_pending(const kvl_uplink_t *u)
{
    return u->n_pending;
}

static void entry_free(entry_t *e)
{
    kvl_buf_free(&e->frame);
    free(e);
}

void kvl_uplink_push(kvl_uplink_t *u, uint64_t seq, kvl_buf_t *frame)
{
    entry_t *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        KVL_LOG_ERROR("uplink", NULL, "out of memory: batch %" PRIu64 " lost", seq);
        kvl_buf_free(frame);
        return;
    }
    e->seq = seq;
    e->frame = *frame;
    *frame = (kvl_buf_t){0};
    if (u->tail) {
        u->tail->next = e;
    } else {
        u->head = e;
    }
    u->tail = e;
    u->n_pending++;
    if (u->next_unsent == NULL) {
        u->next_unsent = e;
    }
    while (u->n_pending > (size_t)u->cfg->max_queue && u->head != NULL) {
        entry_t *old = u->head;
        if (old == u->next_unsent) {
            u->next_unsent = old->next;
        }
        u->head = old->next;
        if (u->head == NULL) {
            u->tail = NULL;
        }
        u->n_pending--;
        u->dropped++;
        if (u->dropped == 1 || u->dropped % 1000 == 0) {
            KVL_LOG_ERROR("uplink", u->cfg->collector,
                          "queue full (%lld batches): dropped the oldest, %" PRIu64
                          " dropped so far",
                          (long long)u->cfg->max_queue, u->dropped);
        }
        entry_free(old);
    }
    pump(u);
}

/* ----------------------------------------------------------------- connection ---------- */

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    kvl_frame_reader_free(&c->reader);
    kvl_tls_free(c->tls);
    kvl_buf_free(&c->plain);
    free(c);
}

static void drop_conn(kvl_uplink_t *u, const char *why, int code)
{
    if (u->conn == NULL) {
        return;
    }
    if (why != NULL) {
        if (!u->logged_down) {
            KVL_LOG_WARN("uplink", u->cfg->collector, "%s%s%s; %zu batches wait, retrying", why,
                         code ? ": " : "", code ? kvl_strerror(code) : "", u->n_pending);
            u->logged_down = true;
        } else {
            KVL_LOG_DEBUG("uplink", u->cfg->collector, "%s%s%s", why, code ? ": " : "",
                          code ? kvl_strerror(code) : "");
        }
    }
    conn_t *c = u->conn;
    if (c->tls != NULL && kvl_tls_established(c->tls)) {
        send_close_notify(c);
    }
    u->conn = NULL;
    c->closing = true;
    uv_timer_stop(&u->hello_timer);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    u->next_unsent = u->head; /* everything unacknowledged goes again */
    u->state = ST_IDLE;
    if (!u->freeing) {
        schedule_retry(u);
    }
}

static void on_write_detached(uv_write_t *req, int status)
{
    KVL_UNUSED(status);
    free(req);
}

/* Queues close_notify, best effort (uv_write tries the socket at once). Its write request
 * refers to nothing else, so the uplink may be freed before it completes. */
static void send_close_notify(conn_t *c)
{
    kvl_buf_t out = {0};
    kvl_tls_shutdown(c->tls);
    if (kvl_tls_take_output(c->tls, &out) == 0 && out.len > 0) {
        uv_write_t *req = malloc(sizeof(*req) + out.len);
        if (req != NULL) {
            memcpy(req + 1, out.data, out.len);
            uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned int)out.len);
            if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_write_detached) != 0) {
                free(req);
            }
        }
    }
    kvl_buf_free(&out);
}

static void on_write(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    kvl_uplink_t *u = w->up;
    u->inflight_bytes -= w->len;
    free(w);
    if (status != 0) {
        if (status != UV_ECANCELED) {
            drop_conn(u, "write to collector failed", status);
        }
        return;
    }
    pump(u);
}

/* Writes bytes to the socket as they are (already encrypted when TLS is on). */
static int write_raw(kvl_uplink_t *u, const uint8_t *data, size_t len)
{
    write_req_t *w = malloc(sizeof(*w) + len);
    if (w == NULL) {
        return KVL_ENOMEM;
    }
    w->up = u;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned int)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&u->conn->tcp, &b, 1, on_write);
    if (rc != 0) {
        free(w);
        return rc;
    }
    u->inflight_bytes += len;
    return 0;
}

/* Writes what the TLS session has for the network. Returns 0 or a negative code. */
static int flush_tls(kvl_uplink_t *u)
{
    kvl_buf_t out = {0};
    int rc = kvl_tls_take_output(u->conn->tls, &out);
    if (rc == 0 && out.len > 0) {
        rc = write_raw(u, out.data, out.len);
    }
    kvl_buf_free(&out);
    return rc;
}

/* Sends application bytes: through TLS when it is on. */
static int send_bytes(kvl_uplink_t *u, const uint8_t *data, size_t len)
{
    if (u->conn->tls == NULL) {
        return write_raw(u, data, len);
    }
    int rc = kvl_tls_write(u->conn->tls, data, len);
    return rc != 0 ? rc : flush_tls(u);
}

static int send_msg(kvl_uplink_t *u, const kvl_msg_t *m)
{
    kvl_buf_t out = {0};
    int rc = kvl_wire_encode(m, &out);
    if (rc == 0) {
        rc = send_bytes(u, out.data, out.len);
    }
    kvl_buf_free(&out);
    return rc;
}

/* Writes queued batches while the window allows. */
static void pump(kvl_uplink_t *u)
{
    if (u->state != ST_READY || u->conn == NULL) {
        return;
    }
    while (u->next_unsent != NULL && u->inflight_bytes < WINDOW_BYTES) {
        entry_t *e = u->next_unsent;
        int rc = send_bytes(u, e->frame.data, e->frame.len);
        if (rc != 0) {
            drop_conn(u, "write to collector failed", rc);
            return;
        }
        u->next_unsent = e->next;
    }
}

static void handle_ack(kvl_uplink_t *u, uint64_t seq)
{
    if (seq > u->acked_seq) {
        u->acked_seq = seq;
    }
    while (u->head != NULL && u->head->seq <= seq) {
        entry_t *e = u->head;
        if (e == u->next_unsent) {
            /* Acknowledged before we (re)sent it, e.g. after Welcome.last_acked_seq. */
            u->next_unsent = e->next;
        }
        u->head = e->next;
        if (u->head == NULL) {
            u->tail = NULL;
        }
        u->n_pending--;
        entry_free(e);
    }
}

static void on_ready(kvl_uplink_t *u, const kvl_welcome_t *w)
{
    uv_timer_stop(&u->hello_timer);
    KVL_LOG_INFO("uplink", u->cfg->collector,
                 "connected to collector %s (protocol %u); %zu batches to send", w->collector_id,
                 w->protocol, u->n_pending);
    u->logged_down = false;
    u->backoff_ms = 1000;
    handle_ack(u, w->last_acked_seq);
    u->state = ST_READY;
    if (u->batcher != NULL) {
        /* In slices, so no frame comes near the collector's maximum frame size; the
         * families go with the first. */
        size_t n = kvl_batcher_n_defs(u->batcher), nf = KVL_BATCHER_MAX_FAMILIES;
        kvl_series_def_t *defs = malloc(sizeof(*defs) * DEFS_PER_FRAME);
        kvl_family_t *fams = malloc(sizeof(*fams) * nf);
        if (defs == NULL || fams == NULL) {
            free(defs);
            free(fams);
            drop_conn(u, "cannot send series definitions", KVL_ENOMEM);
            return;
        }
        kvl_batcher_families(u->batcher, fams, &nf);
        for (size_t off = 0; off < n || (off == 0 && nf > 0); off += DEFS_PER_FRAME) {
            kvl_msg_t m = {.type = KVL_MSG_SERIES_DEFS};
            m.u.series_defs.defs = defs;
            m.u.series_defs.n = kvl_batcher_defs(u->batcher, off, defs, DEFS_PER_FRAME);
            m.u.series_defs.families = off == 0 ? fams : NULL;
            m.u.series_defs.n_families = off == 0 ? nf : 0;
            int rc = send_msg(u, &m);
            if (rc != 0) {
                free(defs);
                free(fams);
                drop_conn(u, "cannot send series definitions", rc);
                return;
            }
        }
        free(defs);
        free(fams);
    }
    pump(u);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    KVL_UNUSED(h);
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static int send_hello(kvl_uplink_t *u)
{
    kvl_msg_t m = {.type = KVL_MSG_HELLO};
    m.u.hello = (kvl_hello_t){.protocol = KVL_PROTOCOL_VERSION,
                              .agent_id = u->cfg->id,
                              .version = KVL_VERSION,
                              .site = u->cfg->site,
                              .boot_id = u->next_seq};
    int rc = send_msg(u, &m);
    if (rc == 0) {
        u->state = ST_HELLO;
    }
    return rc;
}

/* A TLS failure, logged as an error (a certificate problem does not fix itself) the first
 * time in a row, then at debug level like other repeated failures. */
static void drop_tls(kvl_uplink_t *u, const char *what, const kvl_tls_t *t)
{
    char why[900];
    snprintf(why, sizeof(why), "%s: %s", what, kvl_tls_error(t));
    flush_tls(u); /* the alert that tells the collector why */
    if (!u->logged_down) {
        KVL_LOG_ERROR("uplink", u->cfg->collector, "%s; %zu batches wait, retrying", why,
                      u->n_pending);
        u->logged_down = true;
    }
    drop_conn(u, why, 0);
}

/* Decrypts bytes read into c->plain, answers the handshake, and says Hello once it is
 * done. Returns 0, 1 when the collector ended the session (the bytes before its
 * close_notify are in c->plain), or -1 after dropping the connection. */
static int tls_read(kvl_uplink_t *u, conn_t *c, const void *data, size_t len)
{
    bool was_established = kvl_tls_established(c->tls);
    int rc = kvl_tls_feed(c->tls, data, len, &c->plain);
    if (rc == KVL_ETLS) {
        drop_tls(u, was_established ? "TLS session failed" : "TLS handshake failed", c->tls);
        return -1;
    }
    if (rc == 0 || rc == KVL_ECLOSED) {
        int frc = flush_tls(u);
        rc = rc == 0 ? frc : rc;
    }
    if (rc != 0 && rc != KVL_ECLOSED) {
        drop_conn(u, "TLS write failed", rc);
        return -1;
    }
    if (!was_established && kvl_tls_established(c->tls)) {
        KVL_LOG_INFO("uplink", u->cfg->collector, "TLS established (%s), collector verified",
                     kvl_tls_describe(c->tls));
        int hrc = send_hello(u);
        if (hrc != 0) {
            drop_conn(u, "cannot start the session", hrc);
            return -1;
        }
    }
    return rc == KVL_ECLOSED ? 1 : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    kvl_uplink_t *u = c->up;
    if (nread < 0) {
        free(buf->base);
        if (!c->closing) {
            drop_conn(u, nread == UV_EOF ? "collector closed the connection" : "read failed",
                      nread == UV_EOF ? 0 : (int)nread);
        }
        return;
    }
    int rc;
    bool tls_ended = false;
    if (c->tls != NULL) {
        int trc = tls_read(u, c, buf->base, (size_t)nread);
        if (trc < 0) {
            free(buf->base);
            return; /* dropped */
        }
        tls_ended = trc == 1;
        rc = kvl_frame_reader_feed(&c->reader, c->plain.data, c->plain.len);
        kvl_buf_reset(&c->plain);
    } else {
        rc = kvl_frame_reader_feed(&c->reader, buf->base, (size_t)nread);
    }
    free(buf->base);
    if (rc != 0) {
        drop_conn(u, "out of memory", rc);
        return;
    }
    const uint8_t *p;
    size_t len;
    while (!c->closing && (rc = kvl_frame_next(&c->reader, &p, &len)) == 1) {
        kvl_msg_t m = {0};
        char err[256];
        if (kvl_wire_decode(p, len, &m, err, sizeof(err)) != 0) {
            KVL_LOG_ERROR("uplink", u->cfg->collector, "bad message from collector: %s", err);
            kvl_msg_clear(&m);
            drop_conn(u, NULL, 0);
            return;
        }
        switch (m.type) {
        case KVL_MSG_WELCOME:
            if (u->state == ST_HELLO) {
                on_ready(u, &m.u.welcome);
            }
            break;
        case KVL_MSG_REFUSAL:
            KVL_LOG_ERROR("uplink", u->cfg->collector, "collector refused this agent: %s",
                          m.u.refusal);
            u->logged_down = true;
            kvl_msg_clear(&m);
            drop_conn(u, NULL, 0);
            return;
        case KVL_MSG_ACK:
            handle_ack(u, m.u.ack.seq);
            break;
        default:
            KVL_LOG_WARN("uplink", u->cfg->collector, "unexpected message type %d ignored",
                         (int)m.type);
            break;
        }
        kvl_msg_clear(&m);
    }
    if (rc < 0 && !c->closing) {
        drop_conn(u, "bad frame from collector", rc);
        return;
    }
    if (tls_ended && !c->closing) {
        drop_conn(u, "collector ended the TLS session", 0);
    }
}

static void on_hello_timeout(uv_timer_t *t)
{
    kvl_uplink_t *u = t->data;
    drop_conn(u,
              u->state == ST_TLS ? "TLS handshake with the collector did not finish"
                                 : "collector did not answer the hello",
              UV_ETIMEDOUT);
}

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    kvl_uplink_t *u = c->up;
    if (c->closing) {
        return;
    }
    if (status != 0) {
        drop_conn(u, "cannot connect to collector", status);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 60);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc == 0 && u->tls_ctx != NULL) {
        /* Hello follows once the handshake is done (tls_read). */
        const char *name =
            u->cfg->tls.server_name ? u->cfg->tls.server_name : u->cfg->collector_host;
        c->tls = kvl_tls_new(u->tls_ctx, name);
        rc = c->tls == NULL ? KVL_ENOMEM : kvl_tls_handshake(c->tls);
        if (rc == KVL_ETLS) {
            drop_tls(u, "TLS handshake failed", c->tls);
            return;
        }
        if (rc == 0) {
            rc = flush_tls(u);
        }
        u->state = ST_TLS;
    } else if (rc == 0) {
        rc = send_hello(u);
    }
    if (rc != 0) {
        drop_conn(u, "cannot start the session", rc);
        return;
    }
    uv_timer_start(&u->hello_timer, on_hello_timeout, HELLO_TIMEOUT_MS, 0);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    kvl_uplink_t *u = req->data;
    u->resolver_busy = false;
    if (u->freeing) {
        uv_freeaddrinfo(res);
        if (u->timers_closed) {
            kvl_tls_ctx_free(u->tls_ctx);
            free(u);
        }
        return;
    }
    if (status != 0 || res == NULL) {
        if (!u->logged_down) {
            KVL_LOG_WARN("uplink", u->cfg->collector, "cannot resolve %s: %s",
                         u->cfg->collector_host, uv_strerror(status));
            u->logged_down = true;
        }
        uv_freeaddrinfo(res);
        u->state = ST_IDLE;
        schedule_retry(u);
        return;
    }
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        uv_freeaddrinfo(res);
        u->state = ST_IDLE;
        schedule_retry(u);
        return;
    }
    c->up = u;
    kvl_frame_reader_init(&c->reader, KVL_FRAME_MAX_DEFAULT);
    uv_tcp_init(u->loop, &c->tcp);
    c->tcp.data = c;
    c->connect.data = c;
    u->conn = c;
    u->state = ST_CONNECTING;
    int rc = uv_tcp_connect(&c->connect, &c->tcp, res->ai_addr, on_connect);
    uv_freeaddrinfo(res);
    if (rc != 0) {
        drop_conn(u, "cannot connect to collector", rc);
    }
}

static void connect_now(kvl_uplink_t *u)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    char port[8];
    snprintf(port, sizeof(port), "%u", u->cfg->collector_port);
    u->resolver.data = u;
    u->state = ST_RESOLVING;
    int rc =
        uv_getaddrinfo(u->loop, &u->resolver, on_resolved, u->cfg->collector_host, port, &hints);
    if (rc != 0) {
        KVL_LOG_WARN("uplink", u->cfg->collector, "cannot resolve %s: %s", u->cfg->collector_host,
                     uv_strerror(rc));
        u->state = ST_IDLE;
        schedule_retry(u);
        return;
    }
    u->resolver_busy = true;
}

static void on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

static void schedule_retry(kvl_uplink_t *u)
{
    uv_timer_start(&u->retry, on_retry, (uint64_t)u->backoff_ms, 0);
    u->backoff_ms *= 2;
    if (u->backoff_ms > u->cfg->reconnect_max_ms) {
        u->backoff_ms = u->cfg->reconnect_max_ms;
    }
}

void kvl_uplink_start(kvl_uplink_t *u)
{
    connect_now(u);
}

/* ----------------------------------------------------------------- teardown ------------ */

static void on_timer_closed(uv_handle_t *h)
{
    kvl_uplink_t *u = h->data;
    if (h == (uv_handle_t *)&u->hello_timer) {
        while (u->head != NULL) {
            entry_t *e = u->head;
            u->head = e->next;
            entry_free(e);
        }
        u->timers_closed = true;
        if (!u->resolver_busy) {
            kvl_tls_ctx_free(u->tls_ctx);
            free(u);
        }
    }
}

void kvl_uplink_free(kvl_uplink_t *u)
{
    if (u == NULL) {
        return;
    }
    u->freeing = true;
    if (u->n_pending > 0) {
        KVL_LOG_WARN("uplink", u->cfg->collector,
                     "stopping with %zu batches not acknowledged by the collector", u->n_pending);
    }
    drop_conn(u, NULL, 0);
    if (u->resolver_busy) {
        uv_cancel((uv_req_t *)&u->resolver);
    }
    uv_close((uv_handle_t *)&u->retry, NULL);
    uv_close((uv_handle_t *)&u->hello_timer, on_timer_closed);
}
