/*
 * ingest.c — agent connections at the collector (see ingest.h).
 *
 * Per connection: a frame reader, the agent's series definitions indexed by id (ids are
 * small and dense, so a plain array), a queue of decoded batches waiting for the store,
 * and at most one store job in flight. Per agent id, across connections: the highest
 * sequence number acknowledged, so a batch resent after a reconnect is not written twice.
 * A connection is freed only once its handle is closed and no store job refers to it.
 *
 * TLS (common/tls.h, unless `insecure: true`): each connection has a session between the
 * socket and the frame reader (tls_read, send_msg); the hello timer covers the handshake.
 * The agent id a Hello claims must equal the CN of the certificate the handshake verified
 * (check_identity); otherwise the agent gets a Refusal and the connection closes.
 */
#include "ingest.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "kvl.h"
#include "log.h"
#include "tls.h"
#include "wire.h"

#define MAX_SERIES_ID (16u * 1024u * 1024u)
#define QUEUE_HIGH 8 /* stop reading an agent with this many batches waiting */
#define QUEUE_LOW 2  /* resume below this */
#define HELLO_TIMEOUT_MS 10000

typedef struct agent_state {
    struct agent_state *next;
    char *id;
    uint64_t acked_seq[KVL_LANES];
    struct conn *conn; /* the current connection, if any */
} agent_state_t;

typedef struct pending {
    struct pending *next;
    uint64_t seq;
    uint32_t lane;
    kvl_store_job_t *job;
    kvl_msg_t msg; /* kept for its events, logged once written */
} pending_t;

typedef struct conn {
    uv_tcp_t tcp;
    uv_timer_t hello_timer;
    kvl_ingest_t *in;
    char peer[64];
    kvl_frame_reader_t reader;
    kvl_tls_t *tls;  /* NULL when insecure */
    kvl_buf_t plain; /* decrypted bytes on their way to the reader */
    agent_state_t *agent;
    char site[256];
    kvl_arena_t defs_arena;
    kvl_series_def_t **defs; /* index = id; a family's definition is expanded to its ids */
    size_t n_defs;
    kvl_family_t **families; /* index = family id */
    size_t n_families;
    uint64_t last_seq[KVL_LANES]; /* highest seq received on this connection, per lane */
    pending_t *q_head, *q_tail;
    size_t q_len;
    bool writing;
    bool reading;
    bool closing;
    int open_handles;
    struct conn *prev_conn, *next_conn;
} conn_t;

struct kvl_ingest {
    uv_loop_t *loop;
    const kvl_collector_cfg_t *cfg;
    kvl_store_t *store;
    kvl_tls_ctx_t *tls_ctx; /* NULL when insecure */
    uv_tcp_t server;
    conn_t *conns;
    size_t n_conns;
    agent_state_t *agents;
    size_t live; /* connections allocated, including those still closing */
    bool freeing;
    bool server_closed;
    kvl_ingest_stats_t stats;
};

static void conn_close(conn_t *c, const char *why);
static void maybe_free_ingest(kvl_ingest_t *in);

/* ----------------------------------------------------------------- agents -------------- */

static agent_state_t *agent_get(kvl_ingest_t *in, const char *id)
{
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        if (strcmp(a->id, id) == 0) {
            return a;
        }
    }
    agent_state_t *a = calloc(1, sizeof(*a));
    if (a == NULL || (a->id = strdup(id)) == NULL) {
        free(a);
        return NULL;
    }
    a->next = in->agents;
    in->agents = a;
    return a;
}

static const char *who(const conn_t *c)
{
    return c->agent ? c->agent->id : c->peer;
}

/* ----------------------------------------------------------------- writing ------------- */

static int send_msg(conn_t *c, const kvl_msg_t *m);

static const kvl_series_def_t *lookup_def(void *ctx, uint32_t id)
{
    conn_t *c = ctx;
    return id < c->n_defs ? c->defs[id] : NULL;
}

#define MAX_FAMILY_ID 65536u

static int store_family(conn_t *c, const kvl_family_t *f)
{
    if (f->id == 0 || f->id > MAX_FAMILY_ID) {
        return KVL_EPROTO;
    }
    if (f->id >= c->n_families) {
        size_t n = c->n_families ? c->n_families : 16;
        while (n <= f->id) {
            n *= 2;
        }
        kvl_family_t **nf = realloc(c->families, n * sizeof(*nf));
        if (nf == NULL) {
            return KVL_ENOMEM;
        }
        memset(nf + c->n_families, 0, (n - c->n_families) * sizeof(*nf));
        c->families = nf;
        c->n_families = n;
    }
    kvl_arena_t *a = &c->defs_arena;
    kvl_family_t *copy = kvl_arena_alloc(a, sizeof(*copy));
    const char **metrics = kvl_arena_alloc(a, f->n * sizeof(*metrics));
    kvl_kind_t *kinds = kvl_arena_alloc(a, f->n * sizeof(*kinds));
    bool *reals = kvl_arena_alloc(a, f->n * sizeof(*reals));
    if (copy == NULL || metrics == NULL || kinds == NULL || reals == NULL ||
        (copy->name = kvl_arena_strdup(a, f->name)) == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < f->n; i++) {
        if ((metrics[i] = kvl_arena_strdup(a, f->metrics[i])) == NULL) {
            return KVL_ENOMEM;
        }
        kinds[i] = f->kinds[i];
        reals[i] = f->reals != NULL && f->reals[i];
    }
    copy->id = f->id;
    copy->n = f->n;
    copy->metrics = metrics;
    copy->kinds = kinds;
    copy->reals = reals;
    c->families[f->id] = copy;
    return 0;
}

static const kvl_family_t *family_of(const conn_t *c, const kvl_series_def_t *d)
{
    return d->family != 0 && d->family < c->n_families ? c->families[d->family] : NULL;
}

static int store_one_def(conn_t *c, const kvl_series_def_t *d, bool owned);

/* A family's definition becomes one entry per metric, so a sample's id finds its metric. */
static int store_def(conn_t *c, const kvl_series_def_t *d)
{
    if (d->family == 0) {
        return store_one_def(c, d, false);
    }
    const kvl_family_t *f = family_of(c, d);
    if (f == NULL) {
        return KVL_EPROTO;
    }
    kvl_series_def_t base = *d;
    base.device = kvl_arena_strdup(&c->defs_arena, d->device);
    base.instance = kvl_arena_strdup(&c->defs_arena, d->instance);
    if (base.device == NULL || base.instance == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < f->n; i++) {
        kvl_series_def_t one = base;
        one.id = d->id + (uint32_t)i;
        one.metric = f->metrics[i];
        one.kind = f->kinds[i];
        one.real = f->reals[i];
        int rc = store_one_def(c, &one, true);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* owned: d's strings already live in the connection's arena. */
static int store_one_def(conn_t *c, const kvl_series_def_t *d, bool owned)
{
    if (d->id == 0 || d->id > MAX_SERIES_ID) {
        return KVL_EPROTO;
    }
    if (d->id >= c->n_defs) {
        size_t n = c->n_defs ? c->n_defs : 1024;
        while (n <= d->id) {
            n *= 2;
        }
        kvl_series_def_t **nd = realloc(c->defs, n * sizeof(*nd));
        if (nd == NULL) {
            return KVL_ENOMEM;
        }
        memset(nd + c->n_defs, 0, (n - c->n_defs) * sizeof(*nd));
        c->defs = nd;
        c->n_defs = n;
    }
    kvl_arena_t *a = &c->defs_arena;
    kvl_series_def_t *copy = kvl_arena_alloc(a, sizeof(*copy));
    if (copy == NULL) {
        return KVL_ENOMEM;
    }
    *copy = *d;
    if (!owned) {
        copy->device = kvl_arena_strdup(a, d->device);
        copy->instance = kvl_arena_strdup(a, d->instance);
        copy->metric = kvl_arena_strdup(a, d->metric);
    }
    copy->labels = NULL; /* labels are descriptive; the archives do not need them */
    copy->n_labels = 0;
    if (copy->device == NULL || copy->instance == NULL || copy->metric == NULL) {
        return KVL_ENOMEM;
    }
    c->defs[d->id] = copy;
    return 0;
}

/* Families first, then the definitions that may name them. Closes the connection on error. */
static int store_defs(conn_t *c, const kvl_family_t *f, size_t nf, const kvl_series_def_t *d,
                      size_t nd)
{
    int rc = 0;
    const char *why = "out of memory";
    for (size_t i = 0; i < nf && rc == 0; i++) {
        rc = store_family(c, &f[i]);
        why = rc == KVL_ENOMEM ? "out of memory" : "family id out of range";
    }
    for (size_t i = 0; i < nd && rc == 0; i++) {
        rc = store_def(c, &d[i]);
        why = rc == KVL_ENOMEM                           ? "out of memory"
              : d[i].family != 0 && !family_of(c, &d[i]) ? "definition names an unknown family"
                                                         : "series id out of range";
    }
    if (rc != 0) {
        conn_close(c, why);
    }
    return rc;
}

/* Turns a batch into store rows: one row per (device, scope, instance) within a group. */
static int batch_to_job(conn_t *c, const kvl_batch_t *b, kvl_store_job_t *job, char *err,
                        size_t errlen)
{
    kvl_store_value_t *vals = NULL;
    const kvl_series_def_t **owners = NULL;
    size_t cap = 0;
    int rc = 0;
    for (size_t g = 0; g < b->n_groups && rc == 0; g++) {
        const kvl_group_t *grp = &b->groups[g];
        if (grp->n_ids > cap) {
            cap = grp->n_ids;
            free(vals);
            free(owners);
            vals = malloc(cap * sizeof(*vals));
            owners = malloc(cap * sizeof(*owners));
            if (vals == NULL || owners == NULL) {
                rc = KVL_ENOMEM;
                break;
            }
        }
        kvl_group_iter_t it;
        kvl_sample_t s;
        size_t n = 0;
        kvl_group_iter_init(&it, grp);
        while ((rc = kvl_group_iter_next(&it, lookup_def, c, &s)) == 1) {
            vals[n] = (kvl_store_value_t){.metric = s.def->metric,
                                          .unknown = s.unknown,
                                          .real = s.def->real,
                                          .value = s.value,
                                          .real_value = s.real};
            owners[n] = s.def;
            n++;
        }
        if (rc < 0) {
            snprintf(err, errlen,
                     "group %zu refers to an undefined series or its values do not "
                     "add up",
                     g);
            break;
        }
        rc = 0;
        /* Rows: consecutive samples of the same file, in order; samples of one file that
         * are not adjacent start another row (still correct, only less compact). */
        size_t start = 0;
        for (size_t i = 1; i <= n && rc == 0; i++) {
            if (i < n && owners[i]->scope == owners[start]->scope &&
                strcmp(owners[i]->device, owners[start]->device) == 0 &&
                strcmp(owners[i]->instance, owners[start]->instance) == 0) {
                continue;
            }
            /* An agent's own statistics and its link measurements are filed under its
             * authenticated id, whatever the definition says. */
            kvl_scope_t sc = owners[start]->scope;
            const char *device = sc == KVL_SCOPE_AGENT || sc == KVL_SCOPE_LINK
                                     ? c->agent->id
                                     : owners[start]->device;
            kvl_store_row_t row = {.site = c->site,
                                   .device = device,
                                   .scope = owners[start]->scope,
                                   .instance = owners[start]->instance,
                                   .family = family_of(c, owners[start]),
                                   .interval_s = owners[start]->interval_s,
                                   .time_ms = grp->time_ms,
                                   .values = vals + start,
                                   .n_values = i - start};
            rc = kvl_store_job_add(job, &row);
            start = i;
        }
    }
    free(vals);
    free(owners);
    return rc;
}

static void submit_next(conn_t *c);

static void log_events(conn_t *c, const kvl_batch_t *b)
{
    static const char *const sev[] = {"", "info", "warning", "critical"};
    for (size_t i = 0; i < b->n_events; i++) {
        const kvl_event_t *e = &b->events[i];
        int s = e->severity >= 1 && e->severity <= 3 ? (int)e->severity : 0;
        if (e->severity >= KVL_SEV_WARNING) {
            KVL_LOG_WARN("event", e->device, "%s (%s, agent %s, site %s): %s", e->kind, sev[s],
                         who(c), c->site, e->text);
        } else {
            KVL_LOG_INFO("event", e->device, "%s (%s, agent %s, site %s): %s", e->kind, sev[s],
                         who(c), c->site, e->text);
        }
    }
}

static void maybe_free_conn(conn_t *c);

static void on_stored(void *arg, const kvl_store_result_t *r)
{
    conn_t *c = arg;
    pending_t *p = c->q_head;
    c->writing = false;
    c->q_head = p->next;
    if (c->q_head == NULL) {
        c->q_tail = NULL;
    }
    c->q_len--;
    if (r->errors > 0) {
        /* Not acknowledged: the agent keeps the batch and sends it again. */
        KVL_LOG_ERROR("ingest", who(c),
                      "batch %" PRIu64 ": %zu archive updates failed; not acknowledged", p->seq,
                      r->errors);
        kvl_msg_clear(&p->msg);
        free(p);
        conn_close(c, NULL);
        maybe_free_conn(c);
        return;
    }
    if (r->stale > 0) {
        KVL_LOG_WARN("ingest", who(c),
                     "batch %" PRIu64 ": %zu updates older than their archive's last one were "
                     "refused by the archive",
                     p->seq, r->stale);
    }
    if (r->created > 0) {
        KVL_LOG_INFO("ingest", who(c), "created %zu archive files", r->created);
    }
    log_events(c, &p->msg.u.batch);
    KVL_LOG_DEBUG("ingest", who(c), "batch %" PRIu64 " lane %u written (%zu values)", p->seq,
                  p->lane, r->values);
    c->in->stats.batches_written++;
    c->in->stats.samples_written += r->values;
    c->in->stats.updates_stale += r->stale;
    if (c->agent != NULL && p->seq > c->agent->acked_seq[p->lane]) {
        c->agent->acked_seq[p->lane] = p->seq;
    }
    if (!c->closing) {
        kvl_msg_t ack = {.type = KVL_MSG_ACK};
        ack.u.ack.seq = p->seq;
        ack.u.ack.lane = p->lane;
        send_msg(c, &ack);
    }
    kvl_msg_clear(&p->msg);
    free(p);
    submit_next(c);
    maybe_free_conn(c);
}

static void submit_next(conn_t *c)
{
    if (c->writing || c->q_head == NULL || c->in->freeing) {
        return;
    }
    pending_t *p = c->q_head;
    kvl_store_job_t *job = p->job;
    p->job = NULL;
    c->writing = true;
    int rc = kvl_store_submit(c->in->store, job, on_stored, c);
    if (rc != 0) {
        c->writing = false;
        KVL_LOG_ERROR("ingest", who(c), "cannot queue archive writes: %s", kvl_strerror(rc));
        conn_close(c, NULL);
        return;
    }
}

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
        conn_close(c, why);
        return rc;
    }
    tls_flush(c);
    if (rc == KVL_ENOMEM) {
        conn_close(c, "out of memory");
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
static const char *check_identity(conn_t *c, const char *agent_id, char *why, size_t len)
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

static int send_msg(conn_t *c, const kvl_msg_t *m)
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

static void refuse(conn_t *c, const char *reason)
{
    kvl_msg_t m = {.type = KVL_MSG_REFUSAL};
    m.u.refusal = reason;
    send_msg(c, &m);
    conn_close(c, reason);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void handle_hello(conn_t *c, const kvl_hello_t *h)
{
    kvl_ingest_t *in = c->in;
    char idwhy[512];
    const char *bad_id = check_identity(c, h->agent_id, idwhy, sizeof(idwhy));
    if (bad_id != NULL) {
        refuse(c, bad_id);
        return;
    }
    if (h->protocol != KVL_PROTOCOL_VERSION) {
        char why[128];
        snprintf(why, sizeof(why),
                 "protocol version %u is not supported (this collector speaks %u)", h->protocol,
                 KVL_PROTOCOL_VERSION);
        refuse(c, why);
        return;
    }
    if (h->agent_id[0] == '\0' || strlen(h->agent_id) > 200 || strlen(h->site) >= sizeof(c->site)) {
        refuse(c, "the hello lacks an agent id, or a name is too long");
        return;
    }
    agent_state_t *a = agent_get(in, h->agent_id);
    if (a == NULL) {
        refuse(c, "collector out of memory");
        return;
    }
    if (a->conn != NULL && a->conn != c) {
        KVL_LOG_WARN("ingest", a->id, "agent connected again from %s; closing its older connection",
                     c->peer);
        conn_t *old = a->conn;
        a->conn = NULL;
        old->agent = NULL;
        conn_close(old, NULL);
    }
    a->conn = c;
    c->agent = a;
    snprintf(c->site, sizeof(c->site), "%s", h->site[0] ? h->site : "default");
    uv_timer_stop(&c->hello_timer);
    KVL_LOG_INFO("ingest", a->id, "agent connected from %s (site %s, version %s)", c->peer, c->site,
                 h->version);
    kvl_msg_t m = {.type = KVL_MSG_WELCOME};
    m.u.welcome = (kvl_welcome_t){.protocol = KVL_PROTOCOL_VERSION,
                                  .collector_id = in->cfg->id,
                                  .version = KVL_VERSION,
                                  .last_acked_seq = a->acked_seq[KVL_LANE_BULK],
                                  .last_acked_event_seq = a->acked_seq[KVL_LANE_EVENTS]};
    send_msg(c, &m);
}

/* True when a batch of the lane waits in the connection's store queue. */
static bool lane_queued(const conn_t *c, uint32_t lane)
{
    for (const pending_t *p = c->q_head; p != NULL; p = p->next) {
        if (p->lane == lane) {
            return true;
        }
    }
    return false;
}

/* Returns 0 to go on reading, or a negative code after closing. `m` may be taken over. */
static int handle_msg(conn_t *c, kvl_msg_t *m)
{
    if (c->agent == NULL && m->type != KVL_MSG_HELLO) {
        conn_close(c, "first message was not a hello");
        return KVL_EPROTO;
    }
    switch (m->type) {
    case KVL_MSG_HELLO:
        if (c->agent != NULL) {
            conn_close(c, "second hello on one connection");
            return KVL_EPROTO;
        }
        handle_hello(c, &m->u.hello);
        return c->closing ? KVL_EPROTO : 0;
    case KVL_MSG_SERIES_DEFS:
        return store_defs(c, m->u.series_defs.families, m->u.series_defs.n_families,
                          m->u.series_defs.defs, m->u.series_defs.n);
    case KVL_MSG_BATCH: {
        kvl_batch_t *b = &m->u.batch;
        int rc = store_defs(c, b->families, b->n_families, b->defs, b->n_defs);
        if (rc != 0) {
            return rc;
        }
        if (b->seq <= c->last_seq[b->lane]) {
            char why[128];
            snprintf(why, sizeof(why), "batch %" PRIu64 " out of order (after %" PRIu64 ")", b->seq,
                     c->last_seq[b->lane]);
            conn_close(c, why);
            return KVL_EPROTO;
        }
        c->last_seq[b->lane] = b->seq;
        if (b->seq <= c->agent->acked_seq[b->lane]) {
            /* Already durable (sent again after a reconnect): acknowledge, write nothing. */
            kvl_msg_t ack = {.type = KVL_MSG_ACK};
            ack.u.ack.seq = b->seq;
            ack.u.ack.lane = b->lane;
            send_msg(c, &ack);
            c->in->stats.batches_duplicate++;
            return 0;
        }
        /* ---- events lane (begin) ---- An events-only batch has nothing to write: it is
         * logged and acknowledged at once, in its lane's order, instead of waiting behind
         * this connection's queued store jobs of bulk batches. */
        if (b->lane == KVL_LANE_EVENTS && b->n_groups == 0 && !lane_queued(c, b->lane)) {
            log_events(c, b);
            c->agent->acked_seq[b->lane] = b->seq;
            kvl_msg_t ack = {.type = KVL_MSG_ACK};
            ack.u.ack.seq = b->seq;
            ack.u.ack.lane = b->lane;
            send_msg(c, &ack);
            c->in->stats.batches_written++;
            return 0;
        }
        /* ---- events lane (end) ---- */
        pending_t *p = calloc(1, sizeof(*p));
        kvl_store_job_t *job = kvl_store_job_new();
        char err[200] = "";
        rc = (p == NULL || job == NULL) ? KVL_ENOMEM : batch_to_job(c, b, job, err, sizeof(err));
        if (rc != 0) {
            free(p);
            kvl_store_job_free(job);
            char why[300];
            snprintf(why, sizeof(why), "batch %" PRIu64 ": %s", b->seq,
                     rc == KVL_ENOMEM ? "out of memory" : err);
            conn_close(c, why);
            return rc;
        }
        p->seq = b->seq;
        p->lane = b->lane;
        p->job = job;
        p->msg = *m; /* keep the decoded batch for its events */
        memset(m, 0, sizeof(*m));
        if (c->q_tail) {
            c->q_tail->next = p;
        } else {
            c->q_head = p;
        }
        c->q_tail = p;
        c->q_len++;
        if (c->q_len >= QUEUE_HIGH && c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = false;
            KVL_LOG_DEBUG("ingest", who(c), "archives lag: pausing this agent's connection");
        }
        submit_next(c);
        return 0;
    }
    default:
        conn_close(c, "unexpected message type from an agent");
        return KVL_EPROTO;
    }
}

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
            conn_close(c, rc == 0 ? NULL : "connection ended inside a frame");
            if (rc == 0) {
                KVL_LOG_INFO("ingest", who(c), "agent disconnected");
            }
        } else {
            char why[128];
            snprintf(why, sizeof(why), "read failed: %s", uv_strerror((int)nread));
            conn_close(c, why);
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
        conn_close(c, "out of memory");
        return;
    }
    const uint8_t *p;
    size_t len;
    while (!c->closing && (rc = kvl_frame_next(&c->reader, &p, &len)) == 1) {
        kvl_msg_t m = {0};
        char err[256];
        if (kvl_wire_decode(p, len, &m, err, sizeof(err)) != 0) {
            char why[320];
            snprintf(why, sizeof(why), "malformed message: %s", err);
            kvl_msg_clear(&m);
            conn_close(c, why);
            return;
        }
        handle_msg(c, &m);
        kvl_msg_clear(&m);
    }
    if (rc < 0 && !c->closing) {
        char why[160];
        snprintf(why, sizeof(why), "bad frame: %s (limit %lld bytes)", kvl_strerror(rc),
                 (long long)c->in->cfg->max_frame);
        conn_close(c, why);
    }
    if (tls_ended && !c->closing) {
        rc = kvl_frame_reader_finish(&c->reader);
        conn_close(c, rc == 0 ? NULL : "TLS session ended inside a frame");
        if (rc == 0) {
            KVL_LOG_INFO("ingest", who(c), "agent disconnected");
        }
    }
}

/* ----------------------------------------------------------------- lifecycle ----------- */

static void maybe_free_conn(conn_t *c)
{
    if (c->closing && !c->writing && c->open_handles == 0) {
        kvl_ingest_t *in = c->in;
        while (c->q_head != NULL) {
            pending_t *p = c->q_head;
            c->q_head = p->next;
            kvl_store_job_free(p->job);
            kvl_msg_clear(&p->msg);
            free(p);
        }
        kvl_frame_reader_free(&c->reader);
        kvl_tls_free(c->tls);
        kvl_buf_free(&c->plain);
        kvl_arena_free(&c->defs_arena);
        free(c->defs);
        free(c->families);
        free(c);
        in->live--;
        maybe_free_ingest(in);
        return;
    }
    if (!c->closing && !c->reading && c->q_len <= QUEUE_LOW) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) {
            c->reading = true;
            KVL_LOG_DEBUG("ingest", who(c), "archives caught up: reading again");
        }
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    c->open_handles--;
    maybe_free_conn(c);
}

static void conn_close(conn_t *c, const char *why)
{
    if (c->closing) {
        return;
    }
    if (why != NULL) {
        KVL_LOG_WARN("ingest", who(c), "closing connection from %s: %s", c->peer, why);
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
    uv_close((uv_handle_t *)&c->hello_timer, on_handle_closed);
}

static void on_hello_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    conn_close(c, c->tls != NULL && !kvl_tls_established(c->tls)
                      ? "TLS handshake not finished within 10 s"
                      : "no hello within 10 s");
}

static void on_connection(uv_stream_t *server, int status)
{
    kvl_ingest_t *in = server->data;
    if (status != 0) {
        KVL_LOG_WARN("ingest", NULL, "accept failed: %s", uv_strerror(status));
        return;
    }
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        KVL_LOG_ERROR("ingest", NULL, "out of memory accepting a connection");
        return;
    }
    c->in = in;
    in->live++;
    in->stats.connections++;
    uv_tcp_init(in->loop, &c->tcp);
    uv_timer_init(in->loop, &c->hello_timer);
    c->tcp.data = c->hello_timer.data = c;
    c->open_handles = 2;
    kvl_frame_reader_init(&c->reader, (size_t)in->cfg->max_frame);
    c->next_conn = in->conns;
    if (in->conns) {
        in->conns->prev_conn = c;
    }
    in->conns = c;
    in->n_conns++;
    snprintf(c->peer, sizeof(c->peer), "unknown peer");
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c, "accept failed");
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
        conn_close(c, "too many connections (max_connections)");
        return;
    }
    if (in->tls_ctx != NULL && (c->tls = kvl_tls_new(in->tls_ctx, NULL)) == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->hello_timer, on_hello_timeout, HELLO_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c, "cannot read");
        return;
    }
    c->reading = true;
}

static void on_server_closed(uv_handle_t *h);

kvl_ingest_t *kvl_ingest_new(uv_loop_t *loop, const kvl_collector_cfg_t *cfg, kvl_store_t *store)
{
    kvl_ingest_t *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        return NULL;
    }
    in->loop = loop;
    in->cfg = cfg;
    in->store = store;
    if (cfg->tls.insecure) {
        KVL_LOG_WARN("ingest", cfg->listen,
                     "INSECURE: plain TCP (insecure: true); agents are not authenticated, any "
                     "peer may claim any agent id, and nothing is encrypted");
    } else {
        char err[512];
        in->tls_ctx = kvl_tls_ctx_new(KVL_TLS_SERVER, cfg->tls.ca, cfg->tls.cert, cfg->tls.key, err,
                                      sizeof(err));
        if (in->tls_ctx == NULL) {
            KVL_LOG_ERROR("ingest", cfg->listen, "TLS: %s", err);
            free(in);
            return NULL;
        }
        KVL_LOG_INFO("ingest", cfg->listen, "mutual TLS as %s; agents need a certificate from %s",
                     kvl_tls_ctx_subject(in->tls_ctx), cfg->tls.ca);
    }
    uv_tcp_init(loop, &in->server);
    in->server.data = in;
    struct sockaddr_storage addr;
    int rc = uv_ip4_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in *)&addr);
    if (rc != 0) {
        rc = uv_ip6_addr(cfg->listen_host, cfg->listen_port, (struct sockaddr_in6 *)&addr);
    }
    if (rc == 0) {
        rc = uv_tcp_bind(&in->server, (const struct sockaddr *)&addr, 0);
    }
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&in->server, 512, on_connection);
    }
    if (rc != 0) {
        KVL_LOG_ERROR("ingest", cfg->listen, "cannot listen: %s%s", uv_strerror(rc),
                      rc == UV_EINVAL ? " (listen needs a numeric IP address)" : "");
        in->freeing = true;
        uv_close((uv_handle_t *)&in->server, on_server_closed);
        return NULL;
    }
    KVL_LOG_INFO("ingest", cfg->listen, "listening for agents");
    return in;
}

/* Frees the ingest once the server and every connection (closing ones too) are gone. */
static void maybe_free_ingest(kvl_ingest_t *in)
{
    if (!in->freeing || !in->server_closed || in->live > 0) {
        return;
    }
    while (in->agents != NULL) {
        agent_state_t *a = in->agents;
        in->agents = a->next;
        free(a->id);
        free(a);
    }
    kvl_tls_ctx_free(in->tls_ctx);
    free(in);
}

static void on_server_closed(uv_handle_t *h)
{
    kvl_ingest_t *in = h->data;
    in->server_closed = true;
    maybe_free_ingest(in);
}

void kvl_ingest_free(kvl_ingest_t *in)
{
    if (in == NULL) {
        return;
    }
    in->freeing = true;
    uv_close((uv_handle_t *)&in->server, on_server_closed);
    while (in->conns != NULL) {
        conn_close(in->conns, NULL);
    }
}

void kvl_ingest_stats(const kvl_ingest_t *in, kvl_ingest_stats_t *out)
{
    *out = in->stats;
}

int kvl_ingest_port(const kvl_ingest_t *in)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getsockname(&in->server, (struct sockaddr *)&ss, &len) != 0) {
        return -1;
    }
    if (ss.ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)&ss)->sin_port);
    }
    return ntohs(((const struct sockaddr_in6 *)&ss)->sin6_port);
}
