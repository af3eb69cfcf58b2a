/*
 * conn.c — the ingest's connections: accepting (max_connections), TLS between the
 * socket and the frame reader, sending messages, reading frames, backpressure (which
 * connections are read), handshake and idle timeouts, closing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest_internal.h"
#include "kvl.h"
#include "log.h"

/* ----------------------------------------------------------------- protocol ------------ */

static void on_write(uv_write_t *req, int status)
{
    KVL_UNUSED(status);
    free(req);
}

/* ---- TLS on a connection (begin) ---- */

/* Encrypts `out` in place when the connection has TLS. Returns 0 or a negative code. */
static int tls_wrap(conn_t *c, kvl_buf_t *out)
{
    if (c->tls == NULL) {
        return 0;
    }
    int rc = kvl_tls_write(c->tls, out->data, out->len);
    if (rc != 0) {
        return rc;
    }
    kvl_buf_reset(out);
    return kvl_tls_take_output(c->tls, out);
}

/* Writes what the TLS session has for the network (handshake, close_notify). */
static void tls_flush(conn_t *c)
{
    kvl_buf_t out = {0};
    if (kvl_tls_take_output(c->tls, &out) == 0 && out.len > 0) {
        uv_write_t *req = malloc(sizeof(*req) + out.len);
        if (req != NULL) {
            memcpy(req + 1, out.data, out.len);
            uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned int)out.len);
            if (uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
                free(req);
            }
        }
    }
    kvl_buf_free(&out);
}

/* Decrypts bytes read into c->plain and answers the handshake. Returns 0, or a negative
 * code after closing the connection. */
static int tls_read(conn_t *c, const void *data, size_t len)
{
    bool was_established = kvl_tls_established(c->tls);
    int rc = kvl_tls_feed(c->tls, data, len, &c->plain);
    if (rc == KVL_ETLS) {
        tls_flush(c); /* the alert that tells the agent why */
        char why[900];
        snprintf(why, sizeof(why), "TLS %s failed: %s", was_established ? "session" : "handshake",
                 kvl_tls_error(c->tls));
        ingest_conn_close(c, why);
        return rc;
    }
    tls_flush(c);
    if (rc == KVL_ENOMEM) {
        ingest_conn_close(c, "out of memory");
        return rc;
    }
    if (!was_established && kvl_tls_established(c->tls)) {
        const char *id = kvl_tls_peer_id(c->tls);
        KVL_LOG_INFO("ingest", c->peer, "TLS established (%s), certificate CN '%s'",
                     kvl_tls_describe(c->tls), id ? id : "(none)");
    }
    return rc; /* 0, or KVL_ECLOSED: what came before close_notify is still read */
}

/* Returns NULL when the Hello's agent id may be accepted on this connection, else why not. */
const char *ingest_check_identity(conn_t *c, const char *agent_id, char *why, size_t len)
{
    if (c->tls == NULL) {
        return NULL;
    }
    const char *cn = kvl_tls_peer_id(c->tls);
    if (cn == NULL) {
        return "the agent's certificate has no single subject CN to identify it by";
    }
    if (strcmp(cn, agent_id) != 0) {
        snprintf(why, len, "agent id '%s' does not match its certificate (CN '%s')", agent_id, cn);
        return why;
    }
    return NULL;
}

/* ---- TLS on a connection (end) ---- */

int ingest_send_msg(conn_t *c, const kvl_msg_t *m)
{
    kvl_buf_t out = {0};
    int rc = kvl_wire_encode(m, &out);
    if (rc == 0) {
        rc = tls_wrap(c, &out);
    }
    if (rc != 0) {
        kvl_buf_free(&out);
        return rc;
    }
    uv_write_t *req = malloc(sizeof(*req) + out.len);
    if (req == NULL) {
        kvl_buf_free(&out);
        return KVL_ENOMEM;
    }
    memcpy(req + 1, out.data, out.len);
    uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned int)out.len);
    kvl_buf_free(&out);
    rc = uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, on_write);
    if (rc != 0) {
        free(req);
    }
    return rc;
}

void ingest_refuse(conn_t *c, const char *reason)
{
    kvl_msg_t m = {.type = KVL_MSG_REFUSAL};
    m.u.refusal = reason;
    ingest_send_msg(c, &m);
    ingest_conn_close(c, reason);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    KVL_UNUSED(h);
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (nread < 0) {
        free(buf->base);
        if (nread == UV_EOF) {
            int rc = kvl_frame_reader_finish(&c->reader);
            ingest_conn_close(c, rc == 0 ? NULL : "connection ended inside a frame");
            if (rc == 0) {
                KVL_LOG_INFO("ingest", ingest_who(c), "agent disconnected");
            }
        } else {
            char why[128];
            snprintf(why, sizeof(why), "read failed: %s", uv_strerror((int)nread));
            ingest_conn_close(c, why);
        }
        return;
    }
    int rc;
    bool tls_ended = false;
    if (c->tls != NULL) {
        rc = tls_read(c, buf->base, (size_t)nread);
        free(buf->base);
        if (rc != 0 && rc != KVL_ECLOSED) {
            return; /* closed */
        }
        tls_ended = rc == KVL_ECLOSED;
        rc = kvl_frame_reader_feed(&c->reader, c->plain.data, c->plain.len);
        kvl_buf_reset(&c->plain);
    } else {
        rc = kvl_frame_reader_feed(&c->reader, buf->base, (size_t)nread);
        free(buf->base);
    }
    if (rc != 0) {
        ingest_conn_close(c, "out of memory");
        return;
    }
    const uint8_t *p;
    size_t len;
    while (!c->closing && (rc = kvl_frame_next(&c->reader, &p, &len)) == 1) {
        kvl_msg_t m = {0};
        char err[256];
        c->last_frame_ms = uv_now(c->in->loop);
        if (kvl_wire_decode(p, len, &m, err, sizeof(err)) != 0) {
            char why[320];
            snprintf(why, sizeof(why), "malformed message: %s", err);
            kvl_msg_clear(&m);
            ingest_conn_close(c, why);
            return;
        }
        ingest_handle_msg(c, &m, p, len);
        kvl_msg_clear(&m);
    }
    if (rc < 0 && !c->closing) {
        char why[160];
        snprintf(why, sizeof(why), "bad frame: %s (limit %lld bytes)", kvl_strerror(rc),
                 (long long)c->in->cfg->max_frame);
        ingest_conn_close(c, why);
    }
    if (tls_ended && !c->closing) {
        rc = kvl_frame_reader_finish(&c->reader);
        ingest_conn_close(c, rc == 0 ? NULL : "TLS session ended inside a frame");
        if (rc == 0) {
            KVL_LOG_INFO("ingest", ingest_who(c), "agent disconnected");
        }
    }
}

/* ----------------------------------------------------------------- backpressure -------- */

/* Reads the connection, or not: its agent's queue for the archives, and the journal. */
void ingest_conn_update_reading(conn_t *c)
{
    if (c->closing) {
        return;
    }
    size_t q = c->agent != NULL ? c->agent->q_len : 0;
    bool want = !c->in->paused && (c->reading ? q < QUEUE_HIGH : q <= QUEUE_LOW);
    if (want && !c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) {
            c->reading = true;
            c->last_frame_ms = uv_now(c->in->loop); /* paused time is not idle time */
            KVL_LOG_DEBUG("ingest", ingest_who(c), "archives caught up: reading again");
        }
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
        KVL_LOG_DEBUG("ingest", ingest_who(c), "archives lag: pausing this agent's connection");
    }
}

/* Nobody is read while the journal is too big or too far ahead of the disk. */
void ingest_update_pause(kvl_ingest_t *in)
{
    if (in->journal_closed) {
        return;
    }
    kvl_journal_stats_t st;
    kvl_journal_stats(in->journal, &st);
    /* The segment being appended to goes only once it is full and applied: a bound below a
     * few segments would stop everyone for good. */
    uint64_t max = (uint64_t)in->cfg->journal_max_bytes;
    if (max < 4 * (uint64_t)in->cfg->journal_segment_bytes) {
        max = 4 * (uint64_t)in->cfg->journal_segment_bytes;
    }
    bool paused = in->paused ? st.bytes > max - max / 10 || st.backlog_bytes > BACKLOG_HIGH / 2
                             : st.bytes > max || st.backlog_bytes > BACKLOG_HIGH;
    if (paused == in->paused) {
        return;
    }
    in->paused = paused;
    if (paused) {
        in->stats.journal_pauses++;
        KVL_LOG_WARN("ingest", NULL,
                     "journal at %" PRIu64 " bytes (%" PRIu64 " not yet on disk): not reading "
                     "agents until the archives catch up",
                     st.bytes, st.backlog_bytes);
    } else {
        KVL_LOG_INFO("ingest", NULL, "journal at %" PRIu64 " bytes: reading agents again",
                     st.bytes);
    }
    for (conn_t *c = in->conns; c != NULL; c = c->next_conn) {
        ingest_conn_update_reading(c);
    }
}

/* ----------------------------------------------------------------- lifecycle ----------- */

static void maybe_free_conn(conn_t *c)
{
    if (!c->closing || c->open_handles > 0) {
        return;
    }
    kvl_ingest_t *in = c->in;
    kvl_frame_reader_free(&c->reader);
    kvl_tls_free(c->tls);
    kvl_buf_free(&c->plain);
    free(c);
    in->live--;
    ingest_maybe_free(in);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    c->open_handles--;
    maybe_free_conn(c);
}

void ingest_conn_close(conn_t *c, const char *why)
{
    if (c->closing) {
        return;
    }
    if (why != NULL) {
        KVL_LOG_WARN("ingest", ingest_who(c), "closing connection from %s: %s", c->peer, why);
        c->in->stats.protocol_errors++;
    }
    c->closing = true;
    if (c->agent != NULL && c->agent->conn == c) {
        c->agent->conn = NULL;
    }
    kvl_ingest_t *in = c->in;
    if (c->prev_conn) {
        c->prev_conn->next_conn = c->next_conn;
    } else {
        in->conns = c->next_conn;
    }
    if (c->next_conn) {
        c->next_conn->prev_conn = c->prev_conn;
    }
    in->n_conns--;
    if (c->tls != NULL && kvl_tls_established(c->tls)) {
        kvl_tls_shutdown(c->tls); /* close_notify, best effort */
        tls_flush(c);
    }
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

void ingest_on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    kvl_ingest_t *in = c->in;
    if (c->agent == NULL) {
        char why[96];
        long long ms = (long long)in->cfg->handshake_timeout_ms;
        snprintf(why, sizeof(why), "%s within %lld %s",
                 c->tls != NULL && !kvl_tls_established(c->tls) ? "TLS handshake not finished"
                                                                : "no hello",
                 ms % 1000 == 0 ? ms / 1000 : ms, ms % 1000 == 0 ? "s" : "ms");
        ingest_conn_close(c, why);
        return;
    }
    uint64_t idle = (uint64_t)in->cfg->idle_timeout_ms;
    uint64_t now = uv_now(in->loop);
    if (!c->reading) {
        c->last_frame_ms = now; /* not reading it (backpressure) is not the agent's idleness */
    }
    uint64_t since = now - c->last_frame_ms;
    if (since < idle) {
        uv_timer_start(&c->timer, ingest_on_timer, idle - since, 0);
        return;
    }
    in->stats.idle_closed++;
    char why[96];
    snprintf(why, sizeof(why), "no frame for %llu s (idle_timeout)",
             (unsigned long long)(since / 1000));
    ingest_conn_close(c, why);
}

void ingest_accept_one(kvl_ingest_t *in)
{
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        KVL_LOG_ERROR("ingest", NULL, "out of memory accepting a connection");
        return;
    }
    c->in = in;
    in->live++;
    in->stats.connections++;
    uv_tcp_init(in->loop, &c->tcp);
    uv_timer_init(in->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    kvl_frame_reader_init(&c->reader, (size_t)in->cfg->max_frame);
    c->next_conn = in->conns;
    if (in->conns) {
        in->conns->prev_conn = c;
    }
    in->conns = c;
    in->n_conns++;
    snprintf(c->peer, sizeof(c->peer), "unknown peer");
    if (uv_accept((uv_stream_t *)&in->server, (uv_stream_t *)&c->tcp) != 0) {
        ingest_conn_close(c, "accept failed");
        return;
    }
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        char ip[48] = "?";
        int port = 0;
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
            uv_ip4_name(sin, ip, sizeof(ip));
            port = ntohs(sin->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
            uv_ip6_name(sin6, ip, sizeof(ip));
            port = ntohs(sin6->sin6_port);
        }
        snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, port);
    }
    if ((int64_t)in->n_conns > in->cfg->max_connections) {
        /* Closed at once; one line every REFUSE_LOG_MS at most, however many come. */
        in->stats.connections_refused++;
        in->stats.protocol_errors++;
        in->refused_since_log++;
        uint64_t now = uv_now(in->loop);
        if (in->refused_log_ms == 0 || now - in->refused_log_ms >= REFUSE_LOG_MS) {
            KVL_LOG_WARN("ingest", c->peer,
                         "too many connections (max_connections %lld): closed %" PRIu64
                         " new connection(s) since the last such line",
                         (long long)in->cfg->max_connections, in->refused_since_log);
            in->refused_log_ms = now ? now : 1;
            in->refused_since_log = 0;
        }
        ingest_conn_close(c, NULL);
        return;
    }
    if (in->tls_ctx != NULL && (c->tls = kvl_tls_new(in->tls_ctx, NULL)) == NULL) {
        ingest_conn_close(c, "out of memory");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->timer, ingest_on_timer, (uint64_t)in->cfg->handshake_timeout_ms, 0);
    c->reading = false;
    ingest_conn_update_reading(c);
}

void ingest_on_connection(uv_stream_t *server, int status)
{
    kvl_ingest_t *in = server->data;
    if (status != 0) {
        KVL_LOG_WARN("ingest", NULL, "accept failed: %s", uv_strerror(status));
        return;
    }
    if (in->replaying) {
        /* Left in the listen queue (libuv stops polling it) until the replay is done. */
        in->accept_waiting = true;
        return;
    }
    ingest_accept_one(in);
}
