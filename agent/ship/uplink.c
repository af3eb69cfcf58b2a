/*
 * uplink.c — the agent's connections to its collectors (see uplink.h).
 *
 * Order by construction. Every batch is appended to the outbox (agent/outbox.c: the disk
 * spool, or memory) before anything is sent, and an endpoint only ever sends what it reads
 * from its outbox position, in sequence order. So a backlog (after a cut link, a collector
 * restart or an agent restart) always drains before newer batches of the same lane: no
 * sample of a series reaches the collector after a later one, which an RRD would refuse.
 * When the endpoint has caught up, a new batch is read (from the spool's page cache) right
 * after it is appended.
 *
 * Lanes. Events (device down/up, later traps) travel in batches of their own on the events
 * lane, with their own sequence numbers and acknowledgements. Before every bulk batch the
 * endpoint sends whatever the events lane holds, and it keeps at most UNACKED_BULK_BYTES
 * (and UNACKED_BULK_BATCHES) of bulk batches sent but not acknowledged, so an event waits
 * behind at most that much bulk data, never behind the whole backlog.
 *
 * Endpoints. One per configured collector, each with its own connection, timers and
 * backoff. States: idle (waiting to reconnect) → resolving (uv_getaddrinfo, off the loop) →
 * connecting → TLS handshake (unless insecure) → hello sent (waiting for Welcome) → ready.
 * The Hello says the outbox's highest number per lane, so a collector whose position for
 * this agent is above it (numbers this agent never made) goes back to it instead of taking
 * this agent's batches for duplicates. An acknowledgement of a number this agent cannot
 * have made is never taken (kvl_outbox_ack refuses it: the numbering stays ours).
 * On Welcome the endpoint acknowledges in the outbox what the collector says is durable
 * (Welcome.last_acked_seq and last_acked_event_seq), rewinds both lanes to its first
 * unacknowledged batch, sends every series definition, then pumps. An Ack advances the
 * endpoint's outbox position of that lane. Any error closes the connection; the next
 * Welcome rewinds.
 *   - mode failover: the endpoints share one outbox reader, and one endpoint at a time
 *     connects: the current one. When it fails, the next in the list becomes current (after
 *     the last, the first), at once, until a whole round failed, then with the backoff.
 *     A working endpoint is kept while it works, also when an earlier one comes back (no
 *     flapping between collectors; the data order is the same either way).
 *   - mode dual: every endpoint connects, each with its own outbox reader; a batch leaves
 *     the outbox once all acknowledged it (or the bound dropped it).
 *
 * Definitions after an agent restart. The collector learns series from the SeriesDefs sent
 * at each connection's start and from the definitions a batch carries; both come from the
 * series registry (registry.h). Batches spooled by an earlier run refer to that run's ids, so
 * the registry itself is kept on disk next to the spool (kvl_registry_persist, series.defs):
 * a restarted agent loads it before registering anything, so every series keeps its id,
 * new ones get ids above the old ones, and the definitions sent at connection start cover
 * both the replayed batches and the new ones. (Making every spooled batch self-contained
 * would repeat up to 100,000 definitions per batch; spooling definition records would need
 * them re-sent per segment and in the right place among the replayed batches.)
 *
 * Heartbeats. Once welcomed, an endpoint sends a Heartbeat every `heartbeat` (the Hello says
 * how often), whatever else it sends and regardless of its windows (a frame of a few bytes
 * straight to the stream), so the collector tells an agent that is gone (its host stopped, its
 * link cut) from one with nothing to say, within a few intervals, instead of after its idle
 * timeout.
 *
 * The connection is a common/stream.h stream (the collector's ingest uses the same): TCP,
 * TLS between the socket and the frames (unless `insecure: true`), whole frames in, frames
 * out; the uplink words the stream's ends as its own log lines. The hello timer starts once
 * TCP is connected (on_connected, where the keepalive and TCP_USER_TIMEOUT options are set)
 * and covers the handshake and the Welcome; connecting itself is bounded by the kernel.
 */
#include "uplink.h"

#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "kvl.h"
#include "log.h"
#include "stream.h"
#include "timeutil.h"
#include "tls.h"
#include "wire.h"

#define WINDOW_BYTES (1u << 20) /* written to the socket, write not completed */
#define UNACKED_BULK_BYTES (512u << 10)
#define UNACKED_BULK_BATCHES 64u
#define HELLO_TIMEOUT_MS 10000    /* connect, TLS handshake and Welcome together */
#define TCP_USER_TIMEOUT_MS 30000 /* sent data unacknowledged by TCP this long: link dead */
#define DEFS_PER_FRAME 5000       /* a definition encodes to ~100-200 bytes */
#define STATS_LOG_MS 30000        /* outbox counters logged this often while something waits */
#define FLAP_MS 5000 /* a connection lost this soon after its attempt began is a failed attempt */

typedef enum {
    ST_IDLE,
    ST_RESOLVING,
    ST_CONNECTING,
    ST_TLS,
    ST_HELLO,
    ST_READY,
} state_t;

typedef struct sent {
    uint64_t seq;
    size_t len;
} sent_t;

/* One collector endpoint. */
typedef struct ep {
    kvl_uplink_t *up;
    const kvl_endpoint_t *cfg;
    int reader; /* outbox reader */
    state_t state;
    kvl_stream_t *conn; /* NULL when not connected; closed (never freed) by the uplink */
    uv_getaddrinfo_t resolver;
    bool resolver_busy;
    uv_timer_t retry;
    uv_timer_t hello_timer;
    uv_timer_t hb_timer; /* heartbeats while ready */
    int64_t backoff_ms;
    bool logged_down; /* a failure was logged and no success since */
    /* Bulk batches sent on this connection and not yet acknowledged, oldest first. */
    sent_t *sent;
    size_t sent_cap, sent_head, sent_n;
    size_t unacked_bytes;
    kvl_buf_t rbuf; /* the frame just read from the outbox */
    /* When the current attempt began, with the backoff and logged_down then: a Welcome
     * resets both, a connection lost within FLAP_MS gets them back (conn_lost). */
    uint64_t attempt_ms;
    int64_t attempt_backoff_ms;
    bool attempt_logged_down;
} ep_t;

struct kvl_uplink {
    uv_loop_t *loop;
    const kvl_ship_cfg_t *cfg;
    const char *agent_id, *site; /* said in the Hello */
    kvl_tls_ctx_t *tls_ctx;      /* NULL when insecure */
    kvl_registry_t *reg;         /* definitions sent at each connection's start */
    kvl_outbox_t *outbox;        /* not ours */
    bool dual;
    ep_t eps[KVL_MAX_COLLECTORS];
    size_t n_eps;
    size_t cur;         /* failover: the endpoint in use */
    size_t round_fails; /* failover: endpoints failed in a row without a Welcome */
    uint64_t boot_id;
    uv_timer_t stats_timer;
    uint64_t logged_dropped;
    bool freeing;
    size_t open_handles; /* timers not yet closed */
};

static void schedule_retry(ep_t *e);
static void pump(ep_t *e);
static void connect_now(ep_t *e);

static const char *name_of(const ep_t *e)
{
    return e->cfg->addr;
}

/* A spool reader name for an endpoint: its host:port with other bytes as '_'. */
static void reader_name(const char *addr, char *out, size_t n)
{
    size_t k = 0;
    for (const char *p = addr; *p != '\0' && k + 1 < n && k < KVL_OUTBOX_READER_NAME_MAX; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == ':' || (c == '.' && k > 0);
        out[k++] = ok ? c : '_';
    }
    out[k] = '\0';
}

static void log_stats(kvl_uplink_t *u, const char *when)
{
    kvl_outbox_stats_t st;
    kvl_outbox_stats(u->outbox, &st);
    KVL_LOG_INFO("uplink", NULL,
                 "%s: %s holds %" PRIu64 " bytes, %" PRIu64 " batches waiting (%" PRIu64
                 " events), %" PRIu64 " dropped by its bound",
                 when, kvl_outbox_on_disk(u->outbox) ? "spool" : "memory queue", st.bytes,
                 st.waiting, st.events_waiting, st.dropped);
    u->logged_dropped = st.dropped;
}

static void on_stats_timer(uv_timer_t *t)
{
    kvl_uplink_t *u = t->data;
    kvl_outbox_stats_t st;
    kvl_outbox_stats(u->outbox, &st);
    if (st.waiting > 0 || st.dropped != u->logged_dropped) {
        log_stats(u, "outbox");
    }
}

size_t kvl_uplink_readers(const kvl_ship_cfg_t *cfg, kvl_uplink_reader_names_t *names,
                          const char **readers)
{
    bool dual = cfg->collector_mode == KVL_COLLECTORS_DUAL;
    size_t n = dual ? cfg->n_collectors : 1;
    for (size_t i = 0; i < n; i++) {
        if (dual) {
            reader_name(cfg->collectors[i].addr, names->name[i], sizeof(names->name[i]));
        } else {
            snprintf(names->name[i], sizeof(names->name[i]), "failover");
        }
        readers[i] = names->name[i];
    }
    return n;
}

static void pump_all(kvl_uplink_t *u);

/* The outbox has a new frame: every connected endpoint whose turn it is sends it. */
static void on_appended(void *arg, int lane)
{
    KVL_UNUSED(lane);
    pump_all(arg);
}

int kvl_uplink_new(uv_loop_t *loop, const kvl_uplink_opts_t *opts, kvl_uplink_t **out, char *err,
                   size_t errlen)
{
    const kvl_ship_cfg_t *cfg = opts->cfg;
    kvl_uplink_t *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    u->loop = loop;
    u->cfg = cfg;
    u->agent_id = opts->agent_id;
    u->site = opts->site;
    u->outbox = opts->outbox;
    u->reg = opts->registry;
    u->dual = cfg->collector_mode == KVL_COLLECTORS_DUAL;
    u->n_eps = cfg->n_collectors;
    if (cfg->tls.insecure) {
        KVL_LOG_WARN("uplink", cfg->collector,
                     "INSECURE: plain TCP to the collector (insecure: true); nothing is "
                     "encrypted and the collector is not authenticated");
    } else {
        char why[512];
        u->tls_ctx = kvl_tls_ctx_new(KVL_TLS_CLIENT, cfg->tls.ca, cfg->tls.cert, cfg->tls.key, why,
                                     sizeof(why));
        if (u->tls_ctx == NULL) {
            snprintf(err, errlen, "TLS: %s", why);
            free(u);
            return KVL_ETLS;
        }
        KVL_LOG_INFO("uplink", cfg->collector, "mutual TLS as %s, collectors verified as %s",
                     kvl_tls_ctx_subject(u->tls_ctx),
                     cfg->tls.server_name ? cfg->tls.server_name : "their host names");
    }
    u->boot_id = (uint64_t)kvl_now_ms() * 1000u;
    for (size_t i = 0; i < u->n_eps; i++) {
        ep_t *e = &u->eps[i];
        e->up = u;
        e->cfg = &cfg->collectors[i];
        e->reader = u->dual ? (int)i : 0;
        e->backoff_ms = 1000;
        uv_timer_init(loop, &e->retry);
        e->retry.data = e;
        uv_timer_init(loop, &e->hello_timer);
        e->hello_timer.data = e;
        uv_timer_init(loop, &e->hb_timer);
        e->hb_timer.data = e;
        u->open_handles += 3;
    }
    uv_timer_init(loop, &u->stats_timer);
    u->stats_timer.data = u;
    u->open_handles++;
    uv_timer_start(&u->stats_timer, on_stats_timer, STATS_LOG_MS, STATS_LOG_MS);
    if (u->n_eps > 1) {
        KVL_LOG_INFO("uplink", NULL, "%zu collectors, mode %s", u->n_eps,
                     u->dual ? "dual (all at once)" : "failover (one at a time, in order)");
    }
    kvl_outbox_watch(u->outbox, on_appended, u);
    *out = u;
    return 0;
}

static bool active(const ep_t *e)
{
    return e->up->dual || e == &e->up->eps[e->up->cur];
}

size_t kvl_uplink_pending(const kvl_uplink_t *u)
{
    size_t n = 0;
    if (kvl_outbox_on_disk(u->outbox)) {
        for (size_t i = 0; i < u->n_eps; i++) {
            n += u->eps[i].state == ST_READY ? u->eps[i].sent_n : 0;
        }
        return n;
    }
    for (size_t i = 0; i < u->n_eps; i++) {
        const ep_t *e = &u->eps[i];
        size_t w = (size_t)(kvl_outbox_waiting(u->outbox, KVL_LANE_BULK, e->reader) +
                            kvl_outbox_waiting(u->outbox, KVL_LANE_EVENTS, e->reader));
        n = w > n ? w : n;
    }
    return n;
}

static size_t waiting(const ep_t *e)
{
    return (size_t)(kvl_outbox_waiting(e->up->outbox, KVL_LANE_BULK, e->reader) +
                    kvl_outbox_waiting(e->up->outbox, KVL_LANE_EVENTS, e->reader));
}

static void pump_all(kvl_uplink_t *u)
{
    for (size_t i = 0; i < u->n_eps; i++) {
        if (active(&u->eps[i])) {
            pump(&u->eps[i]);
        }
    }
}

/* ----------------------------------------------------------------- connection ---------- */

/* Failover: the endpoint after e becomes current and connects (at once unless a whole
 * round failed). */
static void fail_over(ep_t *e)
{
    kvl_uplink_t *u = e->up;
    u->round_fails++;
    u->cur = (u->cur + 1) % u->n_eps;
    ep_t *next = &u->eps[u->cur];
    if (u->round_fails < u->n_eps) {
        if (!next->logged_down) { /* once per outage, not at every round */
            KVL_LOG_INFO("uplink", name_of(e), "failing over to collector %s", name_of(next));
        } else {
            KVL_LOG_DEBUG("uplink", name_of(e), "failing over to collector %s", name_of(next));
        }
        uv_timer_stop(&next->retry);
        connect_now(next);
    } else {
        u->round_fails = 0;
        schedule_retry(next);
    }
}

/* The endpoint has no connection (it was lost or never came): logs why (a warning the
 * first time in a row, then at debug level; nothing when why is NULL), forgets what it
 * sent unacknowledged, and tries again: the next endpoint in failover, else after the
 * backoff. */
static void conn_lost(ep_t *e, const char *why, int code)
{
    kvl_uplink_t *u = e->up;
    /* A collector that welcomes the agent and drops it at once (flapping, or refusing what it
     * is sent) must not get a reconnection and its log lines every second: a connection lost
     * within FLAP_MS of its attempt keeps the backoff growing and is not logged as new. */
    if (uv_now(u->loop) - e->attempt_ms < FLAP_MS) {
        if (e->backoff_ms < e->attempt_backoff_ms) {
            e->backoff_ms = e->attempt_backoff_ms;
        }
        e->logged_down = e->logged_down || e->attempt_logged_down;
    }
    if (why != NULL) {
        if (!e->logged_down) {
            KVL_LOG_WARN("uplink", name_of(e), "%s%s%s; %zu batches wait, retrying", why,
                         code ? ": " : "", code ? kvl_strerror(code) : "", waiting(e));
            e->logged_down = true;
        } else {
            KVL_LOG_DEBUG("uplink", name_of(e), "%s%s%s", why, code ? ": " : "",
                          code ? kvl_strerror(code) : "");
        }
    }
    uv_timer_stop(&e->hello_timer);
    uv_timer_stop(&e->hb_timer);
    e->sent_n = e->sent_head = 0;
    e->unacked_bytes = 0;
    e->state = ST_IDLE;
    if (u->freeing) {
        return;
    }
    if (!u->dual && u->n_eps > 1) {
        fail_over(e);
    } else {
        schedule_retry(e);
    }
}

/* Closes the endpoint's connection (TLS close_notify first, best effort; the stream calls
 * the uplink no more, so the uplink may be freed before the close completes), then
 * conn_lost. Nothing without a connection. */
static void drop_conn(ep_t *e, const char *why, int code)
{
    kvl_stream_t *c = e->conn;
    if (c == NULL) {
        return;
    }
    e->conn = NULL;
    kvl_stream_close(c);
    conn_lost(e, why, code);
}

/* Bytes handed to the socket whose write has not completed (TLS records included). */
static uint64_t queued_bytes(const ep_t *e)
{
    kvl_stream_stats_t st;
    kvl_stream_stats(e->conn, &st);
    return st.queued_bytes;
}

static int send_msg(ep_t *e, const kvl_msg_t *m)
{
    kvl_buf_t out = {0};
    int rc = kvl_wire_encode(m, &out);
    if (rc == 0) {
        rc = kvl_stream_send(e->conn, out.data, out.len);
    }
    kvl_buf_free(&out);
    return rc;
}

static int sent_push(ep_t *e, uint64_t seq, size_t len)
{
    /* Bulk goes out in increasing order (a rewind empties the list first). */
    KVL_ASSERT(e->sent_n == 0 || e->sent[(e->sent_head + e->sent_n - 1) % e->sent_cap].seq < seq);
    if (e->sent_n == e->sent_cap) {
        size_t cap = e->sent_cap ? e->sent_cap * 2 : 64;
        sent_t *ns = malloc(cap * sizeof(*ns));
        if (ns == NULL) {
            return KVL_ENOMEM;
        }
        for (size_t i = 0; i < e->sent_n; i++) {
            ns[i] = e->sent[(e->sent_head + i) % e->sent_cap];
        }
        free(e->sent);
        e->sent = ns;
        e->sent_cap = cap;
        e->sent_head = 0;
    }
    e->sent[(e->sent_head + e->sent_n) % e->sent_cap] = (sent_t){.seq = seq, .len = len};
    e->sent_n++;
    e->unacked_bytes += len;
    return 0;
}

/* Sends the next batch of a lane from the endpoint's outbox position. Returns 1 when one
 * went, 0 when the lane has nothing more, or -1 after dropping the connection. */
static int send_next(ep_t *e, int lane)
{
    uint64_t seq;
    int rc = kvl_outbox_read(e->up->outbox, lane, e->reader, &seq, &e->rbuf);
    if (rc == 0) {
        return 0;
    }
    if (rc > 0) {
        /* the outbox holds whole frames, headers included */
        rc = kvl_stream_send(e->conn, e->rbuf.data, e->rbuf.len);
    } else {
        KVL_LOG_ERROR("uplink", name_of(e), "cannot read the outbox: %s", kvl_strerror(rc));
        drop_conn(e, NULL, 0);
        return -1;
    }
    if (rc == 0 && lane == KVL_LANE_BULK) {
        rc = sent_push(e, seq, e->rbuf.len);
    }
    if (rc != 0) {
        drop_conn(e, "write to collector failed", rc);
        return -1;
    }
    return 1;
}

/* Writes waiting batches while the windows allow: every event first, then bulk. */
static void pump(ep_t *e)
{
    while (e->state == ST_READY && e->conn != NULL && queued_bytes(e) < WINDOW_BYTES) {
        int rc = send_next(e, KVL_LANE_EVENTS);
        if (rc != 0) {
            if (rc < 0) {
                return;
            }
            continue;
        }
        if (e->unacked_bytes >= UNACKED_BULK_BYTES || e->sent_n >= UNACKED_BULK_BATCHES) {
            return;
        }
        if (send_next(e, KVL_LANE_BULK) <= 0) {
            return;
        }
    }
}

static void handle_ack(ep_t *e, int lane, uint64_t seq)
{
    if (kvl_outbox_ack(e->up->outbox, lane, e->reader, seq) != 0) {
        /* a number this agent never made (logged by the outbox): start afresh */
        drop_conn(e, "collector acknowledged a batch this agent never sent", 0);
        return;
    }
    if (lane == KVL_LANE_BULK) {
        while (e->sent_n > 0 && e->sent[e->sent_head].seq <= seq) {
            KVL_ASSERT(e->unacked_bytes >= e->sent[e->sent_head].len);
            e->unacked_bytes -= e->sent[e->sent_head].len;
            e->sent_head = (e->sent_head + 1) % e->sent_cap;
            e->sent_n--;
        }
        KVL_ASSERT(e->sent_n > 0 || e->unacked_bytes == 0);
    }
    KVL_LOG_DEBUG("uplink", name_of(e), "acknowledged: lane %d up to %" PRIu64, lane, seq);
}

static int send_defs(ep_t *e)
{
    kvl_registry_t *r = e->up->reg;
    /* In slices, so no frame comes near the collector's maximum frame size; the families go
     * with the first. */
    size_t n = kvl_registry_n_defs(r), nf = KVL_REGISTRY_MAX_FAMILIES;
    kvl_series_def_t *defs = malloc(sizeof(*defs) * DEFS_PER_FRAME);
    kvl_family_t *fams = malloc(sizeof(*fams) * nf);
    int rc = defs == NULL || fams == NULL ? KVL_ENOMEM : 0;
    if (rc == 0) {
        kvl_registry_families(r, fams, &nf);
    }
    for (size_t off = 0; rc == 0 && (off < n || (off == 0 && nf > 0)); off += DEFS_PER_FRAME) {
        kvl_msg_t m = {.type = KVL_MSG_SERIES_DEFS};
        m.u.series_defs.defs = defs;
        m.u.series_defs.n = kvl_registry_defs(r, off, defs, DEFS_PER_FRAME);
        m.u.series_defs.families = off == 0 ? fams : NULL;
        m.u.series_defs.n_families = off == 0 ? nf : 0;
        rc = send_msg(e, &m);
    }
    free(defs);
    free(fams);
    return rc;
}

/* Tells the collector the agent is alive (see the top of the file). */
static void on_heartbeat(uv_timer_t *t)
{
    ep_t *e = t->data;
    kvl_uplink_t *u = e->up;
    if (e->state != ST_READY || e->conn == NULL) {
        return;
    }
    kvl_msg_t m = {.type = KVL_MSG_HEARTBEAT};
    m.u.heartbeat =
        (kvl_heartbeat_t){.time_ms = kvl_now_ms(),
                          .last_seq = kvl_outbox_last_seq(u->outbox, KVL_LANE_BULK),
                          .last_event_seq = kvl_outbox_last_seq(u->outbox, KVL_LANE_EVENTS)};
    int rc = send_msg(e, &m);
    if (rc != 0) {
        drop_conn(e, "write to collector failed", rc);
    }
}

static void on_welcome(ep_t *e, const kvl_welcome_t *w)
{
    kvl_uplink_t *u = e->up;
    uv_timer_stop(&e->hello_timer);
    /* A position this agent cannot have reached is not taken (the outbox logs it): its
     * batches are sent again from its own. */
    kvl_outbox_ack(u->outbox, KVL_LANE_BULK, e->reader, w->last_acked_seq);
    kvl_outbox_ack(u->outbox, KVL_LANE_EVENTS, e->reader, w->last_acked_event_seq);
    kvl_outbox_rewind(u->outbox, KVL_LANE_BULK, e->reader);
    kvl_outbox_rewind(u->outbox, KVL_LANE_EVENTS, e->reader);
    KVL_LOG_INFO("uplink", name_of(e),
                 "connected to collector %s (protocol %u); %" PRIu64 " batches to send (%" PRIu64
                 " events)",
                 w->collector_id, w->protocol,
                 kvl_outbox_waiting(u->outbox, KVL_LANE_BULK, e->reader) +
                     kvl_outbox_waiting(u->outbox, KVL_LANE_EVENTS, e->reader),
                 kvl_outbox_waiting(u->outbox, KVL_LANE_EVENTS, e->reader));
    e->logged_down = false;
    e->backoff_ms = 1000;
    u->round_fails = 0;
    e->state = ST_READY;
    if (u->cfg->heartbeat_ms > 0 && w->takes_heartbeats) {
        uv_timer_start(&e->hb_timer, on_heartbeat, (uint64_t)u->cfg->heartbeat_ms,
                       (uint64_t)u->cfg->heartbeat_ms);
    }
    int rc = send_defs(e);
    if (rc != 0) {
        drop_conn(e, "cannot send series definitions", rc);
        return;
    }
    pump(e);
}

static int send_hello(ep_t *e)
{
    kvl_uplink_t *u = e->up;
    kvl_msg_t m = {.type = KVL_MSG_HELLO};
    m.u.hello = (kvl_hello_t){.protocol = KVL_PROTOCOL_VERSION,
                              .agent_id = u->agent_id,
                              .version = KVL_VERSION,
                              .site = u->site,
                              .boot_id = u->boot_id,
                              .has_last_seq = true,
                              .last_seq = kvl_outbox_last_seq(u->outbox, KVL_LANE_BULK),
                              .last_event_seq = kvl_outbox_last_seq(u->outbox, KVL_LANE_EVENTS),
                              .heartbeat_ms =
                                  u->cfg->heartbeat_ms > 0 ? (uint32_t)u->cfg->heartbeat_ms : 0};
    int rc = send_msg(e, &m);
    if (rc == 0) {
        e->state = ST_HELLO;
    }
    return rc;
}

/* A TLS failure (the stream has sent the alert that tells the collector why), logged as an
 * error (a certificate problem does not fix itself) the first time in a row, then at debug
 * level like other repeated failures. */
static void drop_tls(ep_t *e, const char *what, const kvl_tls_t *t)
{
    char why[900];
    snprintf(why, sizeof(why), "%s: %s", what, kvl_tls_error(t));
    if (!e->logged_down) {
        KVL_LOG_ERROR("uplink", name_of(e), "%s; %zu batches wait, retrying", why, waiting(e));
        e->logged_down = true;
    }
    drop_conn(e, why, 0);
}

static void on_hello_timeout(uv_timer_t *t)
{
    ep_t *e = t->data;
    drop_conn(e,
              e->state == ST_CONNECTING ? "connecting to the collector did not finish"
              : e->state == ST_TLS      ? "TLS handshake with the collector did not finish"
                                        : "collector did not answer the hello",
              UV_ETIMEDOUT);
}

/* ------------------------------------------------------- the stream's callbacks -------- */

/* TCP is up, nothing read yet: socket options, and the hello timer covering the TLS
 * handshake and the Welcome. */
static void on_stream_connected(kvl_stream_t *s)
{
    ep_t *e = kvl_stream_data(s);
    uv_tcp_t *tcp = kvl_stream_tcp(s);
    uv_tcp_keepalive(tcp, 1, 60);
#ifdef TCP_USER_TIMEOUT
    /* A cut link shows as data TCP cannot deliver: give up after this long instead of
     * retransmitting for a quarter of an hour, and reconnect (the outbox keeps the data). */
    uv_os_fd_t fd;
    unsigned int ut = TCP_USER_TIMEOUT_MS;
    if (uv_fileno((uv_handle_t *)tcp, &fd) == 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ut, sizeof(ut));
    }
#endif
    if (kvl_stream_tls(s) != NULL) {
        e->state = ST_TLS; /* Hello follows once the handshake is done (on_stream_ready) */
    }
    uv_timer_start(&e->hello_timer, on_hello_timeout, HELLO_TIMEOUT_MS, 0);
}

/* Connected, and with TLS the collector verified: say Hello. */
static void on_stream_ready(kvl_stream_t *s)
{
    ep_t *e = kvl_stream_data(s);
    const kvl_tls_t *t = kvl_stream_tls(s);
    if (t != NULL) {
        KVL_LOG_INFO("uplink", name_of(e), "TLS established (%s), collector verified",
                     kvl_tls_describe(t));
    }
    int rc = send_hello(e);
    if (rc != 0) {
        drop_conn(e, "cannot start the session", rc);
    }
}

static void on_stream_frame(kvl_stream_t *s, const uint8_t *p, size_t len)
{
    ep_t *e = kvl_stream_data(s);
    kvl_msg_t m = {0};
    char err[256];
    if (kvl_wire_decode(p, len, &m, err, sizeof(err)) != 0) {
        KVL_LOG_ERROR("uplink", name_of(e), "bad message from collector: %s", err);
        kvl_msg_clear(&m);
        drop_conn(e, NULL, 0);
        return;
    }
    bool acked = false;
    switch (m.type) {
    case KVL_MSG_WELCOME:
        if (e->state == ST_HELLO) {
            on_welcome(e, &m.u.welcome);
        }
        break;
    case KVL_MSG_REFUSAL:
        KVL_LOG_ERROR("uplink", name_of(e), "collector refused this agent: %s", m.u.refusal);
        e->logged_down = true;
        kvl_msg_clear(&m);
        drop_conn(e, NULL, 0);
        return;
    case KVL_MSG_ACK:
        if (m.u.ack.lane < KVL_LANES && e->state == ST_READY) {
            handle_ack(e, (int)m.u.ack.lane, m.u.ack.seq);
            acked = true;
        }
        break;
    default:
        KVL_LOG_WARN("uplink", name_of(e), "unexpected message type %d ignored", (int)m.type);
        break;
    }
    kvl_msg_clear(&m);
    if (acked) {
        pump(e);
    }
}

/* A write completed: room in the window, perhaps. */
static void on_stream_drained(kvl_stream_t *s)
{
    pump(kvl_stream_data(s));
}

/* The stream can carry no more: the uplink's own words for why, then the next attempt. */
static void on_stream_end(kvl_stream_t *s, int code, const char *why)
{
    ep_t *e = kvl_stream_data(s);
    KVL_UNUSED(why);
    switch (kvl_stream_ended_by(s)) {
    case KVL_STREAM_END_EOF:
        drop_conn(e, "collector closed the connection", 0);
        break;
    case KVL_STREAM_END_TLS_CLOSE:
        drop_conn(e, "collector ended the TLS session", 0);
        break;
    case KVL_STREAM_END_CONNECT:
        drop_conn(e, "cannot connect to collector", code);
        break;
    case KVL_STREAM_END_READ:
        drop_conn(e, "read failed", code);
        break;
    case KVL_STREAM_END_WRITE:
        drop_conn(e, "write to collector failed", code);
        break;
    case KVL_STREAM_END_TLS_HANDSHAKE:
        drop_tls(e, "TLS handshake failed", kvl_stream_tls(s));
        break;
    case KVL_STREAM_END_TLS_SESSION:
        drop_tls(e, "TLS session failed", kvl_stream_tls(s));
        break;
    case KVL_STREAM_END_BAD_FRAME:
        drop_conn(e, "bad frame from collector", code);
        break;
    case KVL_STREAM_END_NOMEM:
    case KVL_STREAM_END_NONE:
        drop_conn(e, "out of memory", code);
        break;
    }
}

/* No on_closed: once the uplink closes a stream it forgets it (the stream frees itself). */
static const kvl_stream_cbs_t stream_cbs = {.on_frame = on_stream_frame,
                                            .on_ready = on_stream_ready,
                                            .on_end = on_stream_end,
                                            .on_drained = on_stream_drained,
                                            .on_connected = on_stream_connected};

static void maybe_free(kvl_uplink_t *u);

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    ep_t *e = req->data;
    kvl_uplink_t *u = e->up;
    e->resolver_busy = false;
    if (u->freeing) {
        uv_freeaddrinfo(res);
        maybe_free(u);
        return;
    }
    if (status != 0 || res == NULL) {
        if (!e->logged_down) {
            KVL_LOG_WARN("uplink", name_of(e), "cannot resolve %s: %s", e->cfg->host,
                         uv_strerror(status));
            e->logged_down = true;
        }
        uv_freeaddrinfo(res);
        e->state = ST_IDLE;
        if (!u->dual && u->n_eps > 1) {
            fail_over(e);
        } else {
            schedule_retry(e);
        }
        return;
    }
    kvl_stream_opts_t o = {
        .tls = u->tls_ctx, /* NULL when insecure */
        .peer_name = u->cfg->tls.server_name ? u->cfg->tls.server_name : e->cfg->host,
        .data = e,
    };
    char err[256];
    e->state = ST_CONNECTING;
    int rc = kvl_stream_connect(u->loop, res->ai_addr, &o, &stream_cbs, &e->conn, err, sizeof(err));
    uv_freeaddrinfo(res);
    if (rc != 0) {
        conn_lost(e, rc == KVL_ENOMEM ? "cannot start the session" : "cannot connect to collector",
                  rc);
    }
}

static void connect_now(ep_t *e)
{
    kvl_uplink_t *u = e->up;
    if (e->state != ST_IDLE || e->resolver_busy || u->freeing) {
        return;
    }
    e->attempt_ms = uv_now(u->loop);
    e->attempt_backoff_ms = e->backoff_ms;
    e->attempt_logged_down = e->logged_down;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    char port[8];
    snprintf(port, sizeof(port), "%u", e->cfg->port);
    e->resolver.data = e;
    e->state = ST_RESOLVING;
    int rc = uv_getaddrinfo(u->loop, &e->resolver, on_resolved, e->cfg->host, port, &hints);
    if (rc != 0) {
        KVL_LOG_WARN("uplink", name_of(e), "cannot resolve %s: %s", e->cfg->host, uv_strerror(rc));
        e->state = ST_IDLE;
        schedule_retry(e);
        return;
    }
    e->resolver_busy = true;
}

static void on_retry(uv_timer_t *t)
{
    ep_t *e = t->data;
    if (active(e)) {
        connect_now(e);
    }
}

static void schedule_retry(ep_t *e)
{
    uv_timer_start(&e->retry, on_retry, (uint64_t)e->backoff_ms, 0);
    e->backoff_ms *= 2;
    if (e->backoff_ms > e->up->cfg->reconnect_max_ms) {
        e->backoff_ms = e->up->cfg->reconnect_max_ms;
    }
}

void kvl_uplink_start(kvl_uplink_t *u)
{
    for (size_t i = 0; i < u->n_eps; i++) {
        if (active(&u->eps[i])) {
            connect_now(&u->eps[i]);
        }
    }
}

/* ----------------------------------------------------------------- teardown ------------ */

static void maybe_free(kvl_uplink_t *u)
{
    if (u->open_handles > 0) {
        return;
    }
    for (size_t i = 0; i < u->n_eps; i++) {
        if (u->eps[i].resolver_busy) {
            return;
        }
    }
    for (size_t i = 0; i < u->n_eps; i++) {
        free(u->eps[i].sent);
        kvl_buf_free(&u->eps[i].rbuf);
    }
    kvl_tls_ctx_free(u->tls_ctx);
    free(u);
}

static void on_handle_closed(uv_handle_t *h)
{
    kvl_uplink_t *u = h->data;
    u->open_handles--;
    maybe_free(u);
}

void kvl_uplink_free(kvl_uplink_t *u)
{
    if (u == NULL) {
        return;
    }
    u->freeing = true;
    kvl_outbox_watch(u->outbox, NULL, NULL);
    log_stats(u, "stopping");
    for (size_t i = 0; i < u->n_eps; i++) {
        ep_t *e = &u->eps[i];
        drop_conn(e, NULL, 0);
        if (e->resolver_busy) {
            uv_cancel((uv_req_t *)&e->resolver);
        }
        e->retry.data = u;
        e->hello_timer.data = u;
        e->hb_timer.data = u;
        uv_close((uv_handle_t *)&e->retry, on_handle_closed);
        uv_close((uv_handle_t *)&e->hello_timer, on_handle_closed);
        uv_close((uv_handle_t *)&e->hb_timer, on_handle_closed);
    }
    uv_close((uv_handle_t *)&u->stats_timer, on_handle_closed);
}
