/*
 * conn.c — the ingest's connections: accepting, each one a framed stream (common/stream.h:
 * TCP, TLS unless insecure, frames) whose frames go to protocol.c, sending messages,
 * backpressure (which connections are read), handshake and idle timeouts, closing.
 *
 * Handshake slots: a connection is "in its handshake" from accept until its Hello is
 * accepted (the TLS handshake, then the Hello). Those are bounded apart from connected
 * agents: max_handshakes in all, max_handshakes_per_address from one source address (an
 * IPv6 /64 counts as one). When a new connection finds them full, the oldest connection that
 * has made the least progress (silent first, then TLS unfinished, then TLS done but no
 * Hello) is closed to make room: a flood of half-open connections evicts only its own kind,
 * and a real agent, which finishes in a few round trips, gets in. handshake_timeout bounds
 * each one anyway. Agents past their Hello are bounded by max_connections (refused at the
 * Hello, unless the agent replaces its own older connection).
 *
 * Every line a peer can make repeat goes through a limiter, the next line written telling
 * how many were left out: before its Hello (closes with a reason, refusals, TLS failures,
 * peers leaving, evictions, accept failures) one keyed by what the line says
 * (ingest_log_limit: LOG_LIMIT_BURST lines per key every LOG_LIMIT_MS; at most LOG_KEYS keys
 * at once, the rest share one limiter); after it, the agent's own (ingest_agent_log_limit:
 * connected, disconnected, closed and why).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"
#include "kvl.h"
#include "log.h"
#include "timeutil.h"

/* ----------------------------------------------------------------- limited lines ------- */

/* The limiter for lines keyed `key` (what the line says): its own while a slot is free or
 * idle for an interval (an idle slot's untold count goes to the shared limiter), else the
 * shared one. */
kvl_log_limit_t *ingest_log_limit(kvl_ingest_t *in, const char *key)
{
    ingest_log_limits_t *l = &in->log;
    uint64_t now = (uint64_t)kvl_now_ms();
    ingest_log_key_t *reuse = NULL;
    for (size_t i = 0; i < LOG_KEYS; i++) {
        ingest_log_key_t *k = &l->keys[i];
        if (k->key[0] != '\0' && strncmp(k->key, key, LOG_KEY_LEN - 1) == 0) {
            return &k->limit;
        }
        if (reuse == NULL && (k->key[0] == '\0' || now - k->limit.last_ms >= LOG_LIMIT_MS)) {
            reuse = k;
        }
    }
    if (l->other.interval_ms == 0) {
        l->other = (kvl_log_limit_t)KVL_LOG_LIMIT_BURST_INIT(LOG_LIMIT_MS, LOG_LIMIT_BURST);
    }
    if (reuse == NULL) {
        return &l->other;
    }
    l->other.left_out += reuse->limit.left_out;
    snprintf(reuse->key, sizeof(reuse->key), "%s", key);
    reuse->limit = (kvl_log_limit_t)KVL_LOG_LIMIT_BURST_INIT(LOG_LIMIT_MS, LOG_LIMIT_BURST);
    return &reuse->limit;
}

/* The limiter for lines about an agent's connections (connected, closed and why): one per
 * agent, LOG_AGENT_BURST lines every LOG_LIMIT_MS (a connection makes two or three). */
kvl_log_limit_t *ingest_agent_log_limit(agent_state_t *a)
{
    if (a->log_limit.interval_ms == 0) {
        a->log_limit = (kvl_log_limit_t)KVL_LOG_LIMIT_BURST_INIT(LOG_LIMIT_MS, LOG_AGENT_BURST);
    }
    return &a->log_limit;
}

/* ----------------------------------------------------------------- handshake slots ----- */

static void hs_unlink(kvl_ingest_t *in, conn_t *c)
{
    if (!c->in_handshake) {
        return;
    }
    if (c->prev_hs) {
        c->prev_hs->next_hs = c->next_hs;
    } else {
        in->hs_head = c->next_hs;
    }
    if (c->next_hs) {
        c->next_hs->prev_hs = c->prev_hs;
    } else {
        in->hs_tail = c->prev_hs;
    }
    c->prev_hs = c->next_hs = NULL;
    c->in_handshake = false;
    KVL_ASSERT(in->n_handshakes > 0);
    in->n_handshakes--;
}

static void hs_append(kvl_ingest_t *in, conn_t *c)
{
    KVL_ASSERT(!c->in_handshake && !c->authenticated);
    c->prev_hs = in->hs_tail;
    c->next_hs = NULL;
    if (in->hs_tail) {
        in->hs_tail->next_hs = c;
    } else {
        in->hs_head = c;
    }
    in->hs_tail = c;
    c->in_handshake = true;
    in->n_handshakes++;
}

/* How far a connection in its handshake got: 0 nothing received, 1 bytes (TLS under way, or a
 * Hello arriving), 2 TLS done, no Hello yet. The least progress is evicted first. */
static int hs_progress(const conn_t *c)
{
    if (c->stream == NULL) {
        return 0;
    }
    const kvl_tls_t *t = kvl_stream_tls(c->stream);
    if (t != NULL && kvl_tls_established(t)) {
        return 2;
    }
    kvl_stream_stats_t st;
    kvl_stream_stats(c->stream, &st);
    return st.bytes_in > 0 ? 1 : 0;
}

/* The peer's address as a key: IPv4 (also IPv4-mapped IPv6) whole, IPv6 its /64 (one site's
 * allocation: a peer has all of it). */
static void addr_key(conn_t *c)
{
    memset(c->addr_key, 0, sizeof(c->addr_key));
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(kvl_stream_tcp(c->stream), (struct sockaddr *)&ss, &len) != 0) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        c->addr_key[0] = 4;
        memcpy(c->addr_key + 1, &((const struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
        static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
            c->addr_key[0] = 4;
            memcpy(c->addr_key + 1, a + 12, 4);
        } else {
            c->addr_key[0] = 6;
            memcpy(c->addr_key + 1, a, 8);
        }
    }
}

/* Before the new connection c joins the handshake list: closes one connection in its
 * handshake when c's address or everyone's would pass its bound. */
static void hs_make_room(kvl_ingest_t *in, conn_t *c)
{
    size_t same = 0;
    conn_t *oldest_same = NULL, *oldest = NULL;
    int p_same = 3, p_all = 3;
    for (conn_t *h = in->hs_head; h != NULL; h = h->next_hs) {
        int p = hs_progress(h); /* the list is oldest first: the first of the least wins */
        if (p < p_all) {
            p_all = p;
            oldest = h;
        }
        if (memcmp(h->addr_key, c->addr_key, sizeof(c->addr_key)) == 0) {
            same++;
            if (p < p_same) {
                p_same = p;
                oldest_same = h;
            }
        }
    }
    conn_t *victim = NULL;
    const char *bound = NULL;
    long long max = 0;
    if ((int64_t)same >= in->cfg->max_handshakes_per_address && oldest_same != NULL) {
        victim = oldest_same;
        bound = "max_handshakes_per_address";
        max = (long long)in->cfg->max_handshakes_per_address;
        in->stats.handshakes_dropped_address++;
    } else if ((int64_t)in->n_handshakes >= in->cfg->max_handshakes && oldest != NULL) {
        victim = oldest;
        bound = "max_handshakes";
        max = (long long)in->cfg->max_handshakes;
        in->stats.handshakes_dropped++;
    }
    if (victim == NULL) {
        return;
    }
    static const char *const progress[] = {"silent", "in its TLS handshake",
                                           "TLS done, no hello yet"};
    KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, ingest_log_limit(in, bound), "ingest", victim->peer,
                    "too many connections before their hello (%s %lld): closed the oldest "
                    "(%s) for one from %s",
                    bound, max, progress[hs_progress(victim)], c->peer);
    ingest_conn_close(victim, NULL);
}

/* c's Hello was accepted: it leaves the handshake slots for the agents'. */
static void conn_authenticated(conn_t *c)
{
    hs_unlink(c->in, c);
    c->authenticated = true;
    c->in->n_agent_conns++;
}

/* True when a Hello claiming agent_id may take a slot among the agents: below
 * max_connections, or replacing that agent's own connection. */
static bool agent_slot_free(kvl_ingest_t *in, const char *agent_id)
{
    if ((int64_t)in->n_agent_conns < in->cfg->max_connections) {
        return true;
    }
    for (conn_t *o = in->conns; o != NULL && agent_id != NULL; o = o->next_conn) {
        if (o->authenticated && o->agent != NULL && strcmp(o->agent->id, agent_id) == 0) {
            return true;
        }
    }
    return false;
}

/* ----------------------------------------------------------------- the stream ---------- */

static void on_frame(kvl_stream_t *s, const uint8_t *p, size_t len)
{
    conn_t *c = kvl_stream_data(s);
    kvl_msg_t m = {0};
    char err[256];
    c->last_frame_ms = uv_now(c->in->loop);
    ingest_watch_frame(c);
    if (kvl_wire_decode(p, len, &m, err, sizeof(err)) != 0) {
        char why[320];
        snprintf(why, sizeof(why), "malformed message: %s", err);
        kvl_msg_clear(&m);
        ingest_conn_close(c, why);
        return;
    }
    if (c->in_handshake && m.type == KVL_MSG_HELLO && !agent_slot_free(c->in, m.u.hello.agent_id)) {
        char why[96];
        snprintf(why, sizeof(why), "too many agents connected (max_connections %lld)",
                 (long long)c->in->cfg->max_connections);
        c->in->stats.connections_refused++;
        kvl_msg_clear(&m);
        ingest_refuse(c, why);
        return;
    }
    ingest_handle_msg(c, &m, p, len);
    kvl_msg_clear(&m);
    if (c->in_handshake && !c->closing && c->agent != NULL) {
        conn_authenticated(c);
    }
}

/* The TLS handshake is done (the agent's certificate verified). */
static void on_ready(kvl_stream_t *s)
{
    conn_t *c = kvl_stream_data(s);
    const kvl_tls_t *t = kvl_stream_tls(s);
    const char *id = kvl_tls_peer_id(t);
    /* One key for all: the agent's Hello has a line of its own (its agent's limiter). */
    KVL_LOG_LIMITED(KVL_LOG_LEVEL_INFO, ingest_log_limit(c->in, "TLS established"), "ingest",
                    c->peer, "TLS established (%s), certificate CN '%s'", kvl_tls_describe(t),
                    id ? id : "(none)");
}

static void on_end(kvl_stream_t *s, int code, const char *why)
{
    conn_t *c = kvl_stream_data(s);
    agent_state_t *agent = c->agent;
    kvl_ingest_t *in = c->in;
    char peer[sizeof(c->peer)];
    snprintf(peer, sizeof(peer), "%s", c->peer);
    ingest_conn_close(c, code == 0 ? NULL : why);
    if (code == 0 && agent != NULL) {
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_INFO, ingest_agent_log_limit(agent), "ingest", agent->id,
                        "agent disconnected");
    } else if (code == 0) {
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_INFO, ingest_log_limit(in, "closed before hello"), "ingest",
                        peer, "the peer closed its connection before its hello");
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
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN,
                        c->agent != NULL ? ingest_agent_log_limit(c->agent)
                                         : ingest_log_limit(c->in, why),
                        "ingest", ingest_who(c), "closing connection from %s: %s", c->peer, why);
        c->in->stats.protocol_errors++;
    }
    c->closing = true;
    ingest_watch_closed(c, why);
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
    hs_unlink(in, c);
    if (c->authenticated) {
        c->authenticated = false;
        KVL_ASSERT(in->n_agent_conns > 0);
        in->n_agent_conns--;
    }
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
        in->stats.handshake_timeouts++;
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
    agent_state_t *a = c->agent;
    ingest_conn_close(c, why);
    ingest_watch_idle(in, a); /* an agent without heartbeats: lost now */
}

void ingest_accept_one(kvl_ingest_t *in)
{
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_ERROR, ingest_log_limit(in, "accept"), "ingest", NULL,
                        "out of memory accepting a connection");
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
    addr_key(c);
    hs_make_room(in, c);
    hs_append(in, c);
    uv_timer_start(&c->timer, ingest_on_timer, (uint64_t)in->cfg->handshake_timeout_ms, 0);
    c->reading = false;
    ingest_conn_update_reading(c);
}

void ingest_on_connection(uv_stream_t *server, int status)
{
    kvl_ingest_t *in = server->data;
    if (status != 0) {
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, ingest_log_limit(in, "accept"), "ingest", NULL,
                        "accept failed: %s", uv_strerror(status));
        return;
    }
    if (in->replaying) {
        /* Left in the listen queue (libuv stops polling it) until the replay is done. */
        in->accept_waiting = true;
        return;
    }
    ingest_accept_one(in);
}
