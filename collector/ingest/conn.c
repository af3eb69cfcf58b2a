/*
 * conn.c — the ingest's connections: accepting (max_connections), each one a framed stream
 * (common/stream.h: TCP, TLS unless insecure, frames) whose frames go to protocol.c,
 * sending messages, backpressure (which connections are read), handshake and idle
 * timeouts, closing.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"
#include "kvl.h"
#include "log.h"

/* ----------------------------------------------------------------- the stream ---------- */

static void on_frame(kvl_stream_t *s, const uint8_t *p, size_t len)
{
    conn_t *c = kvl_stream_data(s);
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

/* The TLS handshake is done (the agent's certificate verified). */
static void on_ready(kvl_stream_t *s)
{
    conn_t *c = kvl_stream_data(s);
    const kvl_tls_t *t = kvl_stream_tls(s);
    const char *id = kvl_tls_peer_id(t);
    KVL_LOG_INFO("ingest", c->peer, "TLS established (%s), certificate CN '%s'",
                 kvl_tls_describe(t), id ? id : "(none)");
}

static void on_end(kvl_stream_t *s, int code, const char *why)
{
    conn_t *c = kvl_stream_data(s);
    ingest_conn_close(c, code == 0 ? NULL : why);
    if (code == 0) {
        KVL_LOG_INFO("ingest", ingest_who(c), "agent disconnected");
    }
}

static void maybe_free_conn(conn_t *c);

static void on_stream_closed(kvl_stream_t *s)
{
    conn_t *c = kvl_stream_data(s);
    c->stream = NULL;
    c->open_handles--;
    maybe_free_conn(c);
}

static const kvl_stream_cbs_t stream_cbs = {
    .on_frame = on_frame, .on_ready = on_ready, .on_end = on_end, .on_closed = on_stream_closed};

/* Returns NULL when the Hello's agent id may be accepted on this connection, else why not. */
const char *ingest_check_identity(conn_t *c, const char *agent_id, char *why, size_t len)
{
    const kvl_tls_t *t = kvl_stream_tls(c->stream);
    if (t == NULL) {
        return NULL;
    }
    const char *cn = kvl_tls_peer_id(t);
    if (cn == NULL) {
        return "the agent's certificate has no single subject CN to identify it by";
    }
    if (strcmp(cn, agent_id) != 0) {
        snprintf(why, len, "agent id '%s' does not match its certificate (CN '%s')", agent_id, cn);
        return why;
    }
    return NULL;
}

int ingest_send_msg(conn_t *c, const kvl_msg_t *m)
{
    if (c->stream == NULL || c->closing) {
        return KVL_EINVAL;
    }
    kvl_buf_t out = {0};
    int rc = kvl_wire_encode(m, &out);
    if (rc == 0) {
        rc = kvl_stream_send(c->stream, out.data, out.len);
    }
    kvl_buf_free(&out);
    return rc;
}

void ingest_refuse(conn_t *c, const char *reason)
{
    kvl_msg_t m = {.type = KVL_MSG_REFUSAL};
    m.u.refusal = reason;
    ingest_send_msg(c, &m);
    ingest_conn_close(c, reason);
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
        if (kvl_stream_read(c->stream, true) == 0) {
            c->reading = true;
            c->last_frame_ms = uv_now(c->in->loop); /* paused time is not idle time */
            KVL_LOG_DEBUG("ingest", ingest_who(c), "archives caught up: reading again");
        }
    } else if (!want && c->reading) {
        kvl_stream_read(c->stream, false);
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
    free(c);
    in->live--;
    ingest_maybe_free(in);
}

static void on_timer_closed(uv_handle_t *h)
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
    kvl_stream_close(c->stream); /* close_notify first under TLS, best effort */
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

void ingest_on_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    kvl_ingest_t *in = c->in;
    if (c->agent == NULL) {
        char why[96];
        long long ms = (long long)in->cfg->handshake_timeout_ms;
        snprintf(why, sizeof(why), "%s within %lld %s",
                 kvl_stream_tls(c->stream) != NULL &&
                         !kvl_tls_established(kvl_stream_tls(c->stream))
                     ? "TLS handshake not finished"
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
    uv_timer_init(in->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    c->next_conn = in->conns;
    if (in->conns) {
        in->conns->prev_conn = c;
    }
    in->conns = c;
    in->n_conns++;
    snprintf(c->peer, sizeof(c->peer), "unknown peer");
    kvl_stream_opts_t o = {.tls = in->tls_ctx, .max_frame = (size_t)in->cfg->max_frame, .data = c};
    char err[160];
    if (kvl_stream_accept((uv_stream_t *)&in->server, &o, &stream_cbs, &c->stream, err,
                          sizeof(err)) != 0) {
        ingest_conn_close(c, err);
        return;
    }
    c->open_handles++;
    snprintf(c->peer, sizeof(c->peer), "%s", kvl_stream_peer(c->stream));
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
