/*
 * ingest.c — agent connections at the collector (see ingest.h).
 *
 * Per connection: a frame reader, TLS, timers (handshake, then idle), and whether it is
 * being read. Per agent id, across connections (agent_state_t): its site, the series
 * definitions of its current connection (ids are small and dense, so plain arrays), its
 * positions per lane (journaled, acknowledged) and in the journal (applied), and the queue
 * of its batches waiting for the archives, one store job in flight at a time, in order.
 *
 * The path of a batch (journal.h has the why):
 *   read → decode → definitions → archive rows (a store job, built at once, so a batch that
 *   does not fit its definitions closes the connection before anything is written)
 *   → journal append (BATCH record, its segment held) → the agent's queue
 *   → group commit on disk (on_synced): Ack to the agent's current connection, and the
 *     batch may go to the archives → store job → on_stored: APPLIED record, segment
 *     released.
 * So an agent is acknowledged as soon as its batch is on disk in the journal, before the
 * archives have it; the archives follow in order, and after a crash the journal's replay
 * (replay_*) puts in them what was not applied yet, before any agent is accepted. A batch
 * whose seq is already journaled (resent after a reconnect) is acknowledged (once the
 * journal has it on disk) and not written again; the journal keeps these positions across
 * restarts, so Welcome tells an agent where to resume.
 *
 * Bounds: the journal is the buffer between agents and archives. A batch waiting for the
 * archives is kept decoded in memory (its store job built) while its agent has fewer than
 * MEM_AGENT_HIGH such and all agents fewer than MEM_SAMPLES_HIGH samples; otherwise it is
 * "spilled": only its place in the journal is kept (with a reference to its connection's
 * definitions) and it is read back on the thread pool when its turn comes. Nobody is read
 * (TCP backpressure) while the journal is above journal_max_bytes (segments go only when
 * all their batches are applied) or more than BACKLOG_HIGH bytes wait for the disk; an
 * agent with QUEUE_HIGH batches waiting is not read until QUEUE_LOW. More than max_connections
 * connections: the new one is closed at once (logged at most every 10 s). No frame for idle_timeout
 * (time spent not reading, for backpressure, does not count): closed.
 *
 * TLS (common/tls.h, unless `insecure: true`): each connection has a session between the
 * socket and the frame reader (tls_read, send_msg); the timer covers the handshake.
 * The agent id a Hello claims must equal the CN of the certificate the handshake verified
 * (check_identity); otherwise the agent gets a Refusal and the connection closes.
 */
#include "ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "journal.h"
#include "kvl.h"
#include "log.h"
#include "tls.h"
#include "wire.h"

#define MAX_SERIES_ID (16u * 1024u * 1024u)
#define MAX_FAMILY_ID 65536u
#define QUEUE_HIGH 65536            /* stop reading an agent with this many batches waiting */
#define QUEUE_LOW 32768             /* resume at this */
#define MEM_AGENT_HIGH 64           /* batches of an agent kept decoded in memory, at most */
#define MEM_SAMPLES_HIGH (2u << 20) /* samples kept decoded in memory, all agents together */
#define BACKLOG_HIGH (64ull << 20)  /* journal bytes not yet on disk: stop reading anyone */
#define REFUSE_LOG_MS 10000         /* at most one line about max_connections this often */

/* ----------------------------------------------------------------- types --------------- */

/* An agent's series definitions on one connection. */
typedef struct defs_table {
    int refs; /* the agent's, and each spilled batch's of this connection */
    kvl_arena_t arena;
    kvl_series_def_t **defs; /* index = id; a family's definition is expanded to its ids */
    size_t n_defs;
    kvl_family_t **families; /* index = family id */
    size_t n_families;
    kvl_series_def_t **orig; /* index = id: definitions as received (a family's once), for
                                the journal's checkpoints */
} defs_table_t;

typedef struct pending {
    struct pending *next;
    /* Spilled (job NULL, defs set): not kept decoded, read back from the journal when its
     * turn comes, with the definitions and site of its connection. */
    defs_table_t *defs;
    char *site;
    uint64_t data_off;
    size_t data_len;
    size_t samples; /* in memory: values in its job */
    bool counted;   /* in the agent's q_mem and the ingest's mem_samples */
    uint64_t seq;
    uint64_t jseq; /* its BATCH record */
    uint64_t seg;  /* the journal segment it holds */
    uint32_t lane;
    bool replay;
    bool events_logged; /* an events-only batch: its events were logged when it arrived */
    kvl_store_job_t *job;
    kvl_msg_t msg; /* kept for its events, logged once written */
} pending_t;

typedef struct agent_state {
    struct agent_state *next;
    struct kvl_ingest *in;
    char *id;
    char site[256];
    uint64_t journaled_seq[KVL_LANES]; /* highest seq in the journal (maybe not on disk) */
    uint64_t acked_seq[KVL_LANES];     /* highest seq on disk: acknowledged */
    uint64_t ack_sent[KVL_LANES];      /* highest Ack sent on the current connection */
    uint64_t applied_jseq;             /* its batches up to this jseq are in the archives */
    defs_table_t *defs;                /* of its current (or last) connection */
    pending_t *q_head, *q_tail;
    size_t q_len;
    size_t q_mem; /* of those, kept decoded in memory */
    bool writing; /* a store job (or a read-back from the journal) in flight */
    bool touched; /* on the list of agents the current on_synced acknowledges */
    struct agent_state *next_touched;
    struct conn *conn; /* the current connection, if any */
} agent_state_t;

/* An acknowledgement waiting for the journal's commit of jseq. */
typedef struct ack_wait {
    struct ack_wait *next;
    agent_state_t *agent;
    uint64_t seq;
    uint64_t jseq;
    uint32_t lane;
} ack_wait_t;

typedef struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* handshake and hello, then idle */
    kvl_ingest_t *in;
    char peer[64];
    kvl_frame_reader_t reader;
    kvl_tls_t *tls;  /* NULL when insecure */
    kvl_buf_t plain; /* decrypted bytes on their way to the reader */
    agent_state_t *agent;
    uint64_t last_seq[KVL_LANES]; /* highest seq received on this connection, per lane */
    uint64_t last_frame_ms;
    bool reading;
    bool closing;
    int open_handles;
    struct conn *prev_conn, *next_conn;
} conn_t;

struct kvl_ingest {
    uv_loop_t *loop;
    const kvl_collector_cfg_t *cfg;
    kvl_store_t *store;
    kvl_journal_t *journal;
    kvl_tls_ctx_t *tls_ctx; /* NULL when insecure */
    uv_tcp_t server;
    conn_t *conns;
    size_t n_conns;
    agent_state_t *agents;
    ack_wait_t *acks_head, *acks_tail;
    size_t live;          /* connections allocated, including those still closing */
    size_t writing;       /* store jobs and read-backs in flight */
    uint64_t mem_samples; /* values in the jobs kept in memory */
    bool replaying;       /* applying the journal's backlog: no agent accepted yet */
    bool accept_waiting;
    bool paused; /* nobody is read (journal too big or too far behind the disk) */
    bool freeing;
    bool server_closed;
    bool journal_closed;
    uint64_t refused_since_log;
    uint64_t refused_log_ms;
    kvl_ingest_stats_t stats;
};

static void conn_close(conn_t *c, const char *why);
static void maybe_free_ingest(kvl_ingest_t *in);
static void conn_update_reading(conn_t *c);
static void update_pause(kvl_ingest_t *in);
static void submit_next(kvl_ingest_t *in, agent_state_t *a);
static int send_msg(conn_t *c, const kvl_msg_t *m);
static void replay_maybe_done(kvl_ingest_t *in);

/* ----------------------------------------------------------------- agents -------------- */

static agent_state_t *agent_find(kvl_ingest_t *in, const char *id, size_t len)
{
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        if (strlen(a->id) == len && memcmp(a->id, id, len) == 0) {
            return a;
        }
    }
    return NULL;
}

static agent_state_t *agent_get(kvl_ingest_t *in, const char *id, size_t len)
{
    agent_state_t *a = agent_find(in, id, len);
    if (a != NULL) {
        return a;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL || (a->id = strndup(id, len)) == NULL) {
        free(a);
        return NULL;
    }
    snprintf(a->site, sizeof(a->site), "default");
    a->in = in;
    a->next = in->agents;
    in->agents = a;
    return a;
}

static const char *who(const conn_t *c)
{
    return c->agent ? c->agent->id : c->peer;
}

/* ----------------------------------------------------------------- definitions --------- */

static defs_table_t *defs_new(void)
{
    defs_table_t *t = calloc(1, sizeof(*t));
    if (t != NULL) {
        t->refs = 1;
    }
    return t;
}

/* Drops a reference; frees with the last. NULL-safe. */
static void defs_free(defs_table_t *t)
{
    if (t == NULL || --t->refs > 0) {
        return;
    }
    kvl_arena_free(&t->arena);
    free(t->defs);
    free(t->families);
    free(t->orig);
    free(t);
}

static const kvl_series_def_t *lookup_def(void *ctx, uint32_t id)
{
    defs_table_t *t = ctx;
    return id < t->n_defs ? t->defs[id] : NULL;
}

/* Makes the pointer array arr (n entries) hold index idx, new entries NULL. Evaluates to 0
 * or KVL_ENOMEM. */
#define GROW(arr, n, idx, first) grow_ptrs((void **)&(arr), sizeof(*(arr)), &(n), (idx), (first))

static int grow_ptrs(void **arr, size_t size, size_t *n, size_t idx, size_t first)
{
    if (idx < *n) {
        return 0;
    }
    size_t m = *n ? *n : first;
    while (m <= idx) {
        m *= 2;
    }
    char *na = realloc(*arr, m * size);
    if (na == NULL) {
        return KVL_ENOMEM;
    }
    memset(na + *n * size, 0, (m - *n) * size);
    *arr = na;
    *n = m;
    return 0;
}

static int store_family(defs_table_t *t, const kvl_family_t *f)
{
    if (f->id == 0 || f->id > MAX_FAMILY_ID) {
        return KVL_EPROTO;
    }
    if (GROW(t->families, t->n_families, f->id, 16) != 0) {
        return KVL_ENOMEM;
    }
    kvl_arena_t *a = &t->arena;
    kvl_family_t *copy = kvl_arena_alloc(a, sizeof(*copy));
    const char **metrics = kvl_arena_alloc(a, (f->n ? f->n : 1) * sizeof(*metrics));
    kvl_kind_t *kinds = kvl_arena_alloc(a, (f->n ? f->n : 1) * sizeof(*kinds));
    bool *reals = kvl_arena_alloc(a, (f->n ? f->n : 1) * sizeof(*reals));
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
    t->families[f->id] = copy;
    return 0;
}

static const kvl_family_t *family_of(const defs_table_t *t, const kvl_series_def_t *d)
{
    return d->family != 0 && d->family < t->n_families ? t->families[d->family] : NULL;
}

/* owned: d's strings already live in the table's arena. */
static int store_one_def(defs_table_t *t, const kvl_series_def_t *d, bool owned)
{
    if (d->id == 0 || d->id > MAX_SERIES_ID) {
        return KVL_EPROTO;
    }
    if (GROW(t->defs, t->n_defs, d->id, 1024) != 0) {
        return KVL_ENOMEM;
    }
    kvl_arena_t *a = &t->arena;
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
    t->defs[d->id] = copy;
    return 0;
}

/* A family's definition becomes one entry per metric, so a sample's id finds its metric;
 * the definition as received is kept too (orig), for the journal's checkpoints. Ids are
 * stable for an agent's lifetime, so one entry per id is enough. */
static int store_def(defs_table_t *t, const kvl_series_def_t *d)
{
    if (d->id == 0 || d->id > MAX_SERIES_ID) {
        return KVL_EPROTO;
    }
    size_t n_orig = t->n_defs;
    if (GROW(t->orig, n_orig, d->id, 1024) != 0) {
        return KVL_ENOMEM;
    }
    if (d->family == 0) {
        int rc = store_one_def(t, d, false);
        if (rc == 0) {
            t->orig[d->id] = t->defs[d->id];
        }
        return rc;
    }
    const kvl_family_t *f = family_of(t, d);
    if (f == NULL) {
        return KVL_EPROTO;
    }
    kvl_series_def_t *base = kvl_arena_alloc(&t->arena, sizeof(*base));
    if (base == NULL) {
        return KVL_ENOMEM;
    }
    *base = *d;
    base->device = kvl_arena_strdup(&t->arena, d->device);
    base->instance = kvl_arena_strdup(&t->arena, d->instance);
    base->metric = "";
    base->labels = NULL;
    base->n_labels = 0;
    if (base->device == NULL || base->instance == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < f->n; i++) {
        kvl_series_def_t one = *base;
        one.id = d->id + (uint32_t)i;
        one.metric = f->metrics[i];
        one.kind = f->kinds[i];
        one.real = f->reals[i];
        int rc = store_one_def(t, &one, true);
        if (rc != 0) {
            return rc;
        }
    }
    /* defs grew past orig's size: keep them the same length */
    if (GROW(t->orig, n_orig, t->n_defs - 1, 1024) != 0) {
        return KVL_ENOMEM;
    }
    t->orig[d->id] = base;
    return 0;
}

/* Families first, then the definitions that may name them. Returns 0, or a negative code
 * with *why saying what was wrong. */
static int store_defs(defs_table_t *t, const kvl_family_t *f, size_t nf, const kvl_series_def_t *d,
                      size_t nd, const char **why)
{
    int rc = 0;
    for (size_t i = 0; i < nf && rc == 0; i++) {
        rc = store_family(t, &f[i]);
        *why = rc == KVL_ENOMEM ? "out of memory" : "family id out of range";
    }
    for (size_t i = 0; i < nd && rc == 0; i++) {
        rc = store_def(t, &d[i]);
        *why = rc == KVL_ENOMEM                           ? "out of memory"
               : d[i].family != 0 && !family_of(t, &d[i]) ? "definition names an unknown family"
                                                          : "series id out of range";
    }
    return rc;
}

/* The whole table as one SeriesDefs payload (a checkpoint). Returns 0 or KVL_ENOMEM. */
static int defs_encode(const defs_table_t *t, kvl_buf_t *out)
{
    size_t nf = 0, nd = 0;
    for (size_t i = 0; i < t->n_families; i++) {
        nf += t->families[i] != NULL;
    }
    for (size_t i = 0; i < t->n_defs && t->orig != NULL; i++) {
        nd += t->orig[i] != NULL;
    }
    kvl_family_t *fams = calloc(nf ? nf : 1, sizeof(*fams));
    kvl_series_def_t *defs = calloc(nd ? nd : 1, sizeof(*defs));
    int rc = fams && defs ? 0 : KVL_ENOMEM;
    if (rc == 0) {
        nf = nd = 0;
        for (size_t i = 0; i < t->n_families; i++) {
            if (t->families[i] != NULL) {
                fams[nf++] = *t->families[i];
            }
        }
        for (size_t i = 0; i < t->n_defs && t->orig != NULL; i++) {
            if (t->orig[i] != NULL) {
                defs[nd++] = *t->orig[i];
            }
        }
        kvl_msg_t m = {.type = KVL_MSG_SERIES_DEFS};
        m.u.series_defs.defs = defs;
        m.u.series_defs.n = nd;
        m.u.series_defs.families = fams;
        m.u.series_defs.n_families = nf;
        rc = kvl_wire_encode(&m, out);
        if (rc == 0) {
            kvl_buf_consume(out, KVL_FRAME_HEADER); /* the record holds the payload only */
        }
    }
    free(fams);
    free(defs);
    return rc;
}

/* ----------------------------------------------------------------- batches → rows ------ */

/* Turns a batch into store rows: one row per (device, scope, instance) within a group.
 * *samples counts the values. */
static int batch_to_job(const defs_table_t *t, const char *agent_id, const char *site,
                        const kvl_batch_t *b, kvl_store_job_t *job, uint64_t *samples, char *err,
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
        while ((rc = kvl_group_iter_next(&it, lookup_def, (void *)t, &s)) == 1) {
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
        *samples += n;
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
            const char *device =
                sc == KVL_SCOPE_AGENT || sc == KVL_SCOPE_LINK ? agent_id : owners[start]->device;
            kvl_store_row_t row = {.site = site,
                                   .device = device,
                                   .scope = owners[start]->scope,
                                   .instance = owners[start]->instance,
                                   .family = family_of(t, owners[start]),
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

static void log_events(const agent_state_t *a, const kvl_batch_t *b)
{
    static const char *const sev[] = {"", "info", "warning", "critical"};
    for (size_t i = 0; i < b->n_events; i++) {
        const kvl_event_t *e = &b->events[i];
        int s = e->severity >= 1 && e->severity <= 3 ? (int)e->severity : 0;
        if (e->severity >= KVL_SEV_WARNING) {
            KVL_LOG_WARN("event", e->device, "%s (%s, agent %s, site %s): %s", e->kind, sev[s],
                         a->id, a->site, e->text);
        } else {
            KVL_LOG_INFO("event", e->device, "%s (%s, agent %s, site %s): %s", e->kind, sev[s],
                         a->id, a->site, e->text);
        }
    }
}

static void queue_push(agent_state_t *a, pending_t *p)
{
    if (p->job != NULL) {
        p->counted = true;
        a->q_mem++;
        a->in->mem_samples += p->samples;
    }
    if (a->q_tail) {
        a->q_tail->next = p;
    } else {
        a->q_head = p;
    }
    a->q_tail = p;
    a->q_len++;
}

/* Whether a new batch of the agent is kept decoded in memory or spilled (read back from
 * the journal later): memory stays bounded however far the archives lag. */
static bool keep_in_memory(const agent_state_t *a, size_t samples)
{
    return a->q_mem < MEM_AGENT_HIGH && a->in->mem_samples + samples <= MEM_SAMPLES_HIGH;
}

/* Turns p into a spilled entry: its job goes, a reference to the definitions stays. */
static int spill(pending_t *p, defs_table_t *defs, const char *site, uint64_t data_off,
                 size_t data_len)
{
    if ((p->site = strdup(site)) == NULL) {
        return KVL_ENOMEM;
    }
    kvl_store_job_free(p->job);
    p->job = NULL;
    kvl_msg_clear(&p->msg);
    p->defs = defs;
    defs->refs++;
    p->data_off = data_off;
    p->data_len = data_len;
    return 0;
}

static void pending_free(pending_t *p)
{
    defs_free(p->defs);
    free(p->site);
    kvl_store_job_free(p->job);
    kvl_msg_clear(&p->msg);
    free(p);
}

/* ---- journal: positions, checkpoints, acknowledgements (begin) ---- */

static int journal_put(kvl_ingest_t *in, const agent_state_t *a, uint8_t type, uint64_t seq,
                       uint32_t lane, const void *data, size_t len, bool hold, uint64_t *seg,
                       uint64_t *data_off)
{
    kvl_jrec_t r = {.seq = seq,
                    .type = type,
                    .lane = (uint8_t)lane,
                    .agent = a->id,
                    .agent_len = strlen(a->id),
                    .data = data,
                    .len = len};
    int rc = kvl_journal_append(in->journal, &r, hold, seg);
    if (rc == 0) {
        in->stats.journal_records++;
        if (data_off != NULL) {
            *data_off = r.off + KVL_JOURNAL_RECORD_HEADER + r.agent_len;
        }
    }
    return rc;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

/* A new journal segment begins: what it needs to stand alone. */
static void on_journal_roll(void *ctx)
{
    kvl_ingest_t *in = ctx;
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        uint8_t pos[24];
        put_le64(pos, a->journaled_seq[KVL_LANE_BULK]);
        put_le64(pos + 8, a->journaled_seq[KVL_LANE_EVENTS]);
        put_le64(pos + 16, a->applied_jseq);
        journal_put(in, a, KVL_JREC_POS, 0, 0, pos, sizeof(pos), false, NULL, NULL);
        if (a->conn == NULL || a->defs == NULL) {
            continue; /* its next batch comes on a new connection, with new definitions */
        }
        kvl_buf_t b = {0};
        if (journal_put(in, a, KVL_JREC_CONNECT, 0, 0, a->site, strlen(a->site), false, NULL,
                        NULL) != 0 ||
            defs_encode(a->defs, &b) != 0 ||
            journal_put(in, a, KVL_JREC_DEFS, 0, 0, b.data, b.len, false, NULL, NULL) != 0) {
            KVL_LOG_ERROR("ingest", a->id,
                          "cannot checkpoint the agent's definitions in the "
                          "journal; closing its connection");
            conn_close(a->conn, NULL);
        }
        kvl_buf_free(&b);
    }
}

static void send_ack(conn_t *c, uint32_t lane, uint64_t seq)
{
    kvl_msg_t ack = {.type = KVL_MSG_ACK};
    ack.u.ack.seq = seq;
    ack.u.ack.lane = lane;
    send_msg(c, &ack);
}

/* Acknowledges seq once the journal has jseq on disk. */
static int ack_after(kvl_ingest_t *in, agent_state_t *a, uint32_t lane, uint64_t seq, uint64_t jseq)
{
    ack_wait_t *w = malloc(sizeof(*w));
    if (w == NULL) {
        return KVL_ENOMEM;
    }
    *w = (ack_wait_t){.agent = a, .seq = seq, .jseq = jseq, .lane = lane};
    if (in->acks_tail) {
        in->acks_tail->next = w;
    } else {
        in->acks_head = w;
    }
    in->acks_tail = w;
    return 0;
}

/* The journal has everything up to synced on disk: acknowledge, and let the archives have
 * it. */
static void on_journal_synced(void *ctx, uint64_t synced)
{
    kvl_ingest_t *in = ctx;
    agent_state_t *touched = NULL;
    while (in->acks_head != NULL && in->acks_head->jseq <= synced) {
        ack_wait_t *w = in->acks_head;
        in->acks_head = w->next;
        if (in->acks_head == NULL) {
            in->acks_tail = NULL;
        }
        agent_state_t *a = w->agent;
        if (w->seq > a->acked_seq[w->lane]) {
            a->acked_seq[w->lane] = w->seq;
        }
        if (!a->touched) {
            a->touched = true;
            a->next_touched = touched;
            touched = a;
        }
        free(w);
    }
    while (touched != NULL) {
        agent_state_t *a = touched;
        touched = a->next_touched;
        a->touched = false;
        conn_t *c = a->conn;
        for (uint32_t lane = 0; lane < KVL_LANES && c != NULL && !c->closing; lane++) {
            /* Cumulative, and only for what this connection carried. */
            uint64_t v =
                a->acked_seq[lane] < c->last_seq[lane] ? a->acked_seq[lane] : c->last_seq[lane];
            if (v > a->ack_sent[lane]) {
                a->ack_sent[lane] = v;
                send_ack(c, lane, v);
            }
        }
        submit_next(in, a);
    }
    update_pause(in);
}

/* ---- journal: positions, checkpoints, acknowledgements (end) ---- */

/* ----------------------------------------------------------------- archives ------------ */

static void on_stored(void *arg, const kvl_store_result_t *r)
{
    agent_state_t *a = arg;
    kvl_ingest_t *in = a->in;
    pending_t *p = a->q_head;
    a->writing = false;
    in->writing--;
    a->q_head = p->next;
    if (a->q_head == NULL) {
        a->q_tail = NULL;
    }
    a->q_len--;
    if (p->counted) {
        a->q_mem--;
        in->mem_samples -= p->samples;
    }
    if (r->errors > 0) {
        /* Acknowledged already (it is in the journal): these updates are lost. */
        KVL_LOG_ERROR("ingest", a->id, "batch %" PRIu64 ": %zu archive updates failed", p->seq,
                      r->errors);
        in->stats.updates_failed += r->errors;
    }
    if (r->stale > 0 && p->replay) {
        /* Applied just before the collector stopped, not yet recorded as applied. */
        KVL_LOG_INFO("ingest", a->id,
                     "replay: batch %" PRIu64 ": %zu updates were already in the archives", p->seq,
                     r->stale);
        in->stats.replay_stale += r->stale;
    } else if (r->stale > 0) {
        KVL_LOG_WARN("ingest", a->id,
                     "batch %" PRIu64 ": %zu updates older than their archive's last one were "
                     "refused by the archive",
                     p->seq, r->stale);
        in->stats.updates_stale += r->stale;
    }
    if (r->created > 0) {
        KVL_LOG_INFO("ingest", a->id, "created %zu archive files", r->created);
    }
    KVL_LOG_DEBUG("ingest", a->id, "applied batch %" PRIu64 " lane %u: %zu updates, %zu stale%s",
                  p->seq, p->lane, r->rows, r->stale, p->replay ? " (replay)" : "");
    if (!p->events_logged) {
        log_events(a, &p->msg.u.batch);
    }
    in->stats.batches_written++;
    in->stats.samples_written += r->values;
    if (p->replay) {
        in->stats.replayed_batches++;
    }
    if (p->jseq > a->applied_jseq) {
        a->applied_jseq = p->jseq;
    }
    if (!in->journal_closed) {
        journal_put(in, a, KVL_JREC_APPLIED, p->jseq, 0, NULL, 0, false, NULL, NULL);
        kvl_journal_release(in->journal, p->seg);
    }
    pending_free(p);
    submit_next(in, a);
    if (a->conn != NULL) {
        conn_update_reading(a->conn);
    }
    update_pause(in);
    replay_maybe_done(in);
    maybe_free_ingest(in);
}

/* ---- journal: spilled batches read back (begin) ---- */

typedef struct load {
    uv_work_t work;
    agent_state_t *agent;
    char path[4200];
    uint64_t off;
    size_t len;
    uint8_t *buf;
    int err; /* 0 or -errno */
} load_t;

static void on_load_work(uv_work_t *w)
{
    load_t *l = w->data;
    int fd = open(l->path, O_RDONLY | O_CLOEXEC);
    l->buf = malloc(l->len ? l->len : 1);
    if (fd < 0 || l->buf == NULL) {
        l->err = fd < 0 ? -errno : KVL_ENOMEM;
    } else {
        size_t got = 0;
        while (got < l->len) {
            ssize_t r = pread(fd, l->buf + got, l->len - got, (off_t)(l->off + got));
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r <= 0) {
                l->err = r < 0 ? -errno : UV_EIO;
                break;
            }
            got += (size_t)r;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
}

/* A spilled batch is back from the journal: decoded and turned into rows with its own
 * connection's definitions, it goes to the archives like any other. */
static void on_load_done(uv_work_t *w, int status)
{
    load_t *l = w->data;
    agent_state_t *a = l->agent;
    kvl_ingest_t *in = a->in;
    pending_t *p = a->q_head;
    a->writing = false;
    in->writing--;
    char err[256] = "";
    int rc = status != 0 ? status : l->err;
    kvl_msg_t m = {0};
    kvl_store_job_t *job = NULL;
    if (rc == 0 && !in->freeing) {
        rc = kvl_wire_decode(l->buf, l->len, &m, err, sizeof(err));
        if (rc == 0 && m.type != KVL_MSG_BATCH) {
            rc = KVL_EPROTO;
            snprintf(err, sizeof(err), "not a batch");
        }
        uint64_t samples = 0;
        job = rc == 0 ? kvl_store_job_new() : NULL;
        if (rc == 0) {
            rc = job ? batch_to_job(p->defs, a->id, p->site, &m.u.batch, job, &samples, err,
                                    sizeof(err))
                     : KVL_ENOMEM;
        }
    } else if (rc != 0) {
        snprintf(err, sizeof(err), "%s", kvl_strerror(rc));
    }
    free(l->buf);
    free(l);
    if (in->freeing) {
        kvl_store_job_free(job);
        kvl_msg_clear(&m);
        maybe_free_ingest(in);
        return;
    }
    if (rc != 0) {
        /* Only a damaged disk can do this: the batch is lost for the archives. */
        KVL_LOG_ERROR("ingest", a->id,
                      "batch %" PRIu64 ": cannot read it back from the journal: %s", p->seq, err);
        kvl_store_job_free(job);
        kvl_msg_clear(&m);
        in->stats.updates_failed++;
        a->q_head = p->next;
        if (a->q_head == NULL) {
            a->q_tail = NULL;
        }
        a->q_len--;
        kvl_journal_release(in->journal, p->seg);
        pending_free(p);
    } else {
        defs_free(p->defs);
        p->defs = NULL;
        p->job = job;
        p->msg = m;
        in->stats.batches_read_back++;
    }
    submit_next(in, a);
    replay_maybe_done(in);
}

static void load_spilled(kvl_ingest_t *in, agent_state_t *a, pending_t *p)
{
    load_t *l = calloc(1, sizeof(*l));
    if (l == NULL || kvl_journal_path(in->journal, p->seg, l->path, sizeof(l->path)) != 0) {
        free(l);
        return; /* tried again at the next commit or write */
    }
    l->agent = a;
    l->off = p->data_off;
    l->len = p->data_len;
    l->work.data = l;
    if (uv_queue_work(in->loop, &l->work, on_load_work, on_load_done) != 0) {
        free(l);
        return;
    }
    a->writing = true;
    in->writing++;
}

/* ---- journal: spilled batches read back (end) ---- */

/* The agent's next batch goes to the archives once the journal has it on disk. */
static void submit_next(kvl_ingest_t *in, agent_state_t *a)
{
    if (a->writing || a->q_head == NULL || in->freeing ||
        a->q_head->jseq > kvl_journal_synced(in->journal)) {
        return;
    }
    pending_t *p = a->q_head;
    if (p->job == NULL) {
        load_spilled(in, a, p);
        return;
    }
    kvl_store_job_t *job = p->job;
    p->job = NULL;
    a->writing = true;
    int rc = kvl_store_submit(in->store, job, on_stored, a);
    if (rc != 0) {
        a->writing = false;
        KVL_LOG_ERROR("ingest", a->id, "cannot queue archive writes: %s", kvl_strerror(rc));
        return;
    }
    in->writing++;
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
static void on_timer(uv_timer_t *t);

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
    if (h->agent_id[0] == '\0' || strlen(h->agent_id) > 200 ||
        strlen(h->site) >= sizeof(c->agent->site)) {
        refuse(c, "the hello lacks an agent id, or a name is too long");
        return;
    }
    agent_state_t *a = agent_get(in, h->agent_id, strlen(h->agent_id));
    defs_table_t *defs = defs_new();
    if (a == NULL || defs == NULL) {
        free(defs);
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
    defs_free(a->defs); /* its batches in the queue carry their own copies */
    a->defs = defs;
    memset(a->ack_sent, 0, sizeof(a->ack_sent));
    snprintf(a->site, sizeof(a->site), "%s", h->site[0] ? h->site : "default");
    if (journal_put(in, a, KVL_JREC_CONNECT, 0, 0, a->site, strlen(a->site), false, NULL, NULL) !=
        0) {
        refuse(c, "collector cannot write its journal");
        return;
    }
    c->last_frame_ms = uv_now(in->loop);
    uv_timer_start(&c->timer, on_timer, (uint64_t)in->cfg->idle_timeout_ms, 0);
    KVL_LOG_INFO("ingest", a->id, "agent connected from %s (site %s, version %s)", c->peer, a->site,
                 h->version);
    kvl_msg_t m = {.type = KVL_MSG_WELCOME};
    m.u.welcome = (kvl_welcome_t){.protocol = KVL_PROTOCOL_VERSION,
                                  .collector_id = in->cfg->id,
                                  .version = KVL_VERSION,
                                  .last_acked_seq = a->acked_seq[KVL_LANE_BULK],
                                  .last_acked_event_seq = a->acked_seq[KVL_LANE_EVENTS]};
    send_msg(c, &m);
}

static void handle_batch(conn_t *c, kvl_msg_t *m, const uint8_t *payload, size_t len)
{
    kvl_ingest_t *in = c->in;
    agent_state_t *a = c->agent;
    kvl_batch_t *b = &m->u.batch;
    const char *why = NULL;
    if (store_defs(a->defs, b->families, b->n_families, b->defs, b->n_defs, &why) != 0) {
        conn_close(c, why);
        return;
    }
    if (b->seq <= c->last_seq[b->lane]) {
        char w[128];
        snprintf(w, sizeof(w), "batch %" PRIu64 " out of order (after %" PRIu64 ")", b->seq,
                 c->last_seq[b->lane]);
        conn_close(c, w);
        return;
    }
    c->last_seq[b->lane] = b->seq;
    if (b->seq <= a->journaled_seq[b->lane]) {
        /* In the journal already (sent again after a reconnect): acknowledge it once it is on
         * disk, write nothing. */
        in->stats.batches_duplicate++;
        if (b->seq <= a->acked_seq[b->lane]) {
            if (b->seq > a->ack_sent[b->lane]) {
                a->ack_sent[b->lane] = b->seq;
            }
            send_ack(c, b->lane, b->seq);
        } else if (ack_after(in, a, b->lane, b->seq, kvl_journal_last_jseq(in->journal)) != 0) {
            conn_close(c, "out of memory");
        }
        return;
    }
    pending_t *p = calloc(1, sizeof(*p));
    kvl_store_job_t *job = kvl_store_job_new();
    char err[200] = "";
    uint64_t samples = 0, journal_data_off = 0;
    int rc = (p == NULL || job == NULL)
                 ? KVL_ENOMEM
                 : batch_to_job(a->defs, a->id, a->site, b, job, &samples, err, sizeof(err));
    if (rc == 0) {
        rc = journal_put(in, a, KVL_JREC_BATCH, b->seq, b->lane, payload, len, true, &p->seg,
                         &journal_data_off);
        snprintf(err, sizeof(err), "cannot write the journal: %s", kvl_strerror(rc));
    }
    if (rc == 0) {
        p->jseq = kvl_journal_last_jseq(in->journal);
        rc = ack_after(in, a, b->lane, b->seq, p->jseq);
        if (rc != 0) {
            /* journaled: the agent's resend is then a duplicate, acknowledged then */
            snprintf(err, sizeof(err), "out of memory");
        }
        a->journaled_seq[b->lane] = b->seq;
        p->seq = b->seq;
        p->lane = b->lane;
        p->job = job;
        p->samples = samples;
        /* ---- events lane (begin) ---- An events-only batch (state changes, traps) is
         * logged as soon as it is journaled, not when its turn in the agent's archive queue
         * comes, so an alarm is never held behind a backlog of metrics. */
        if (b->lane == KVL_LANE_EVENTS && b->n_groups == 0) {
            log_events(a, b);
            p->events_logged = true;
        }
        /* ---- events lane (end) ---- */
        p->msg = *m; /* keep the decoded batch for its events */
        memset(m, 0, sizeof(*m));
        if (!keep_in_memory(a, samples)) {
            if (spill(p, a->defs, a->site, journal_data_off, len) == 0) {
                in->stats.batches_spilled++;
            } else if (rc == 0) {
                rc = KVL_ENOMEM; /* kept in memory after all; the connection closes */
            }
        }
        queue_push(a, p);
        in->stats.batches_journaled++;
        in->stats.samples_journaled += samples;
        if (rc == 0) {
            conn_update_reading(c);
            update_pause(in);
            return;
        }
    } else {
        free(p);
        kvl_store_job_free(job);
    }
    char w[300];
    snprintf(w, sizeof(w), "batch %" PRIu64 ": %s", b->seq,
             rc == KVL_ENOMEM ? "out of memory" : err);
    conn_close(c, w);
}

/* Returns after handling one message; the connection may be closing then. `m` may be taken
 * over. payload: the frame as received, for the journal. */
static void handle_msg(conn_t *c, kvl_msg_t *m, const uint8_t *payload, size_t len)
{
    if (c->agent == NULL && m->type != KVL_MSG_HELLO) {
        conn_close(c, "first message was not a hello");
        return;
    }
    switch (m->type) {
    case KVL_MSG_HELLO:
        if (c->agent != NULL) {
            conn_close(c, "second hello on one connection");
            return;
        }
        handle_hello(c, &m->u.hello);
        return;
    case KVL_MSG_SERIES_DEFS: {
        const char *why = NULL;
        if (store_defs(c->agent->defs, m->u.series_defs.families, m->u.series_defs.n_families,
                       m->u.series_defs.defs, m->u.series_defs.n, &why) != 0) {
            conn_close(c, why);
        } else if (journal_put(c->in, c->agent, KVL_JREC_DEFS, 0, 0, payload, len, false, NULL,
                               NULL) != 0) {
            conn_close(c, "cannot write the journal");
        }
        return;
    }
    case KVL_MSG_BATCH:
        handle_batch(c, m, payload, len);
        return;
    default:
        conn_close(c, "unexpected message type from an agent");
        return;
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
        c->last_frame_ms = uv_now(c->in->loop);
        if (kvl_wire_decode(p, len, &m, err, sizeof(err)) != 0) {
            char why[320];
            snprintf(why, sizeof(why), "malformed message: %s", err);
            kvl_msg_clear(&m);
            conn_close(c, why);
            return;
        }
        handle_msg(c, &m, p, len);
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

/* ----------------------------------------------------------------- backpressure -------- */

/* Reads the connection, or not: its agent's queue for the archives, and the journal. */
static void conn_update_reading(conn_t *c)
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
            KVL_LOG_DEBUG("ingest", who(c), "archives caught up: reading again");
        }
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
        KVL_LOG_DEBUG("ingest", who(c), "archives lag: pausing this agent's connection");
    }
}

/* Nobody is read while the journal is too big or too far ahead of the disk. */
static void update_pause(kvl_ingest_t *in)
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
        conn_update_reading(c);
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
    maybe_free_ingest(in);
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
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_timer(uv_timer_t *t)
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
        conn_close(c, why);
        return;
    }
    uint64_t idle = (uint64_t)in->cfg->idle_timeout_ms;
    uint64_t now = uv_now(in->loop);
    if (!c->reading) {
        c->last_frame_ms = now; /* not reading it (backpressure) is not the agent's idleness */
    }
    uint64_t since = now - c->last_frame_ms;
    if (since < idle) {
        uv_timer_start(&c->timer, on_timer, idle - since, 0);
        return;
    }
    in->stats.idle_closed++;
    char why[96];
    snprintf(why, sizeof(why), "no frame for %llu s (idle_timeout)",
             (unsigned long long)(since / 1000));
    conn_close(c, why);
}

static void accept_one(kvl_ingest_t *in)
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
        conn_close(c, NULL);
        return;
    }
    if (in->tls_ctx != NULL && (c->tls = kvl_tls_new(in->tls_ctx, NULL)) == NULL) {
        conn_close(c, "out of memory");
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_start(&c->timer, on_timer, (uint64_t)in->cfg->handshake_timeout_ms, 0);
    c->reading = false;
    conn_update_reading(c);
}

static void on_connection(uv_stream_t *server, int status)
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
    accept_one(in);
}

/* ---- journal: replay at start (begin) ---- */

/* First pass: positions (what is journaled, what is applied). */
static int replay_positions(void *ctx, const kvl_jrec_t *r, uint64_t seg)
{
    kvl_ingest_t *in = ctx;
    KVL_UNUSED(seg);
    if (r->agent_len == 0) {
        return 0;
    }
    agent_state_t *a = agent_get(in, r->agent, r->agent_len);
    if (a == NULL) {
        return KVL_ENOMEM;
    }
    if (r->type == KVL_JREC_POS && r->len >= 24) {
        for (int lane = 0; lane < KVL_LANES; lane++) {
            uint64_t v = get_le64(r->data + 8 * lane);
            if (v > a->journaled_seq[lane]) {
                a->journaled_seq[lane] = v;
            }
        }
        uint64_t applied = get_le64(r->data + 16);
        if (applied > a->applied_jseq) {
            a->applied_jseq = applied;
        }
    } else if (r->type == KVL_JREC_BATCH && r->lane < KVL_LANES) {
        if (r->seq > a->journaled_seq[r->lane]) {
            a->journaled_seq[r->lane] = r->seq;
        }
    } else if (r->type == KVL_JREC_APPLIED && r->seq > a->applied_jseq) {
        a->applied_jseq = r->seq;
    }
    return 0;
}

/* Second pass: definitions in order, and the batches not yet applied into the queues. */
static int replay_batches(void *ctx, const kvl_jrec_t *r, uint64_t seg)
{
    kvl_ingest_t *in = ctx;
    if (r->agent_len == 0) {
        return 0;
    }
    agent_state_t *a = agent_get(in, r->agent, r->agent_len);
    if (a == NULL) {
        return KVL_ENOMEM;
    }
    if (r->type == KVL_JREC_CONNECT) {
        defs_free(a->defs);
        a->defs = defs_new();
        snprintf(a->site, sizeof(a->site), "%.*s", (int)(r->len < 255 ? r->len : 255),
                 (const char *)r->data);
        return a->defs != NULL ? 0 : KVL_ENOMEM;
    }
    if (r->type != KVL_JREC_DEFS && r->type != KVL_JREC_BATCH) {
        return 0;
    }
    if (a->defs == NULL && (a->defs = defs_new()) == NULL) {
        return KVL_ENOMEM;
    }
    kvl_msg_t m = {0};
    char err[256] = "";
    const char *why = NULL;
    int rc = kvl_wire_decode(r->data, r->len, &m, err, sizeof(err));
    if (rc == 0 && r->type == KVL_JREC_DEFS && m.type == KVL_MSG_SERIES_DEFS) {
        rc = store_defs(a->defs, m.u.series_defs.families, m.u.series_defs.n_families,
                        m.u.series_defs.defs, m.u.series_defs.n, &why);
    } else if (rc == 0 && r->type == KVL_JREC_BATCH && m.type == KVL_MSG_BATCH) {
        kvl_batch_t *b = &m.u.batch;
        rc = store_defs(a->defs, b->families, b->n_families, b->defs, b->n_defs, &why);
        if (rc == 0 && r->jseq > a->applied_jseq) {
            pending_t *p = calloc(1, sizeof(*p));
            kvl_store_job_t *job = kvl_store_job_new();
            uint64_t samples = 0;
            rc = p && job
                     ? batch_to_job(a->defs, a->id, a->site, b, job, &samples, err, sizeof(err))
                     : KVL_ENOMEM;
            why = err;
            if (rc == 0) {
                *p = (pending_t){.seq = b->seq,
                                 .jseq = r->jseq,
                                 .seg = seg,
                                 .lane = b->lane,
                                 .replay = true,
                                 .job = job,
                                 .samples = samples,
                                 .msg = m};
                memset(&m, 0, sizeof(m));
                if (!keep_in_memory(a, samples) &&
                    spill(p, a->defs, a->site, r->off + KVL_JOURNAL_RECORD_HEADER + r->agent_len,
                          r->len) != 0) {
                    pending_free(p);
                    return KVL_ENOMEM;
                }
                kvl_journal_hold(in->journal, seg);
                queue_push(a, p);
                in->stats.replay_queued++;
            } else {
                free(p);
                kvl_store_job_free(job);
            }
        }
    } else if (rc == 0) {
        rc = KVL_EPROTO;
        why = "record type and message type differ";
    } else {
        why = err;
    }
    kvl_msg_clear(&m);
    if (rc == KVL_ENOMEM) {
        return rc;
    }
    if (rc != 0) {
        /* Cannot happen for what this collector wrote; a damaged journal skips the record. */
        KVL_LOG_ERROR("ingest", a->id, "journal record %" PRIu64 " cannot be replayed: %s", r->jseq,
                      why ? why : kvl_strerror(rc));
        in->stats.replay_errors++;
    }
    return 0;
}

static void replay_maybe_done(kvl_ingest_t *in)
{
    if (!in->replaying || in->writing > 0) {
        return;
    }
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        if (a->q_head != NULL) {
            return;
        }
    }
    in->replaying = false;
    if (in->stats.replay_queued > 0) {
        KVL_LOG_INFO("ingest", NULL,
                     "replay done: %" PRIu64 " journaled batches applied to the archives (%" PRIu64
                     " updates were already there), %" PRIu64 " unreadable",
                     in->stats.replayed_batches, in->stats.replay_stale, in->stats.replay_errors);
    }
    KVL_LOG_INFO("ingest", in->cfg->listen, "listening for agents");
    if (in->accept_waiting && !in->freeing) {
        in->accept_waiting = false;
        accept_one(in);
    }
}

/* Opens the journal, reads it back and queues what the archives lack. Returns 0 or a
 * negative code (logged). */
static int replay_start(kvl_ingest_t *in)
{
    char dir[4096], err[600];
    snprintf(dir, sizeof(dir), "%s/_journal", in->cfg->data_dir);
    kvl_journal_opts_t o = {.dir = dir,
                            .segment_bytes = (uint64_t)in->cfg->journal_segment_bytes,
                            .commit_delay_ms = in->cfg->journal_commit_delay_ms,
                            .no_sync = !in->cfg->journal_sync};
    int rc = kvl_journal_open(&o, &in->journal, err, sizeof(err));
    if (rc != 0) {
        KVL_LOG_ERROR("journal", dir, "%s", err);
        return rc;
    }
    rc = kvl_journal_replay(in->journal, replay_positions, in);
    if (rc == 0) {
        rc = kvl_journal_replay(in->journal, replay_batches, in);
    }
    if (rc != 0) {
        KVL_LOG_ERROR("journal", dir, "cannot replay: %s", kvl_strerror(rc));
        return rc;
    }
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        memcpy(a->acked_seq, a->journaled_seq, sizeof(a->acked_seq));
    }
    if (in->stats.replay_queued > 0) {
        KVL_LOG_INFO("ingest", NULL,
                     "journal: %" PRIu64 " batches not yet in the archives; applying them before "
                     "accepting agents",
                     in->stats.replay_queued);
    }
    rc = kvl_journal_start(in->journal, in->loop, on_journal_synced, on_journal_roll, in);
    if (rc != 0) {
        KVL_LOG_ERROR("journal", dir, "cannot start: %s", kvl_strerror(rc));
        return rc;
    }
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        submit_next(in, a);
    }
    return 0;
}

/* ---- journal: replay at start (end) ---- */

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
    in->journal_closed = true; /* until it is open */
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
    }
    in->replaying = true;
    if (rc == 0) {
        rc = replay_start(in);
        in->journal_closed = in->journal == NULL || rc != 0;
    }
    if (rc != 0) {
        kvl_ingest_free(in);
        return NULL;
    }
    replay_maybe_done(in);
    return in;
}

/* Frees the ingest once the server and every connection (closing ones too) are gone and no
 * archive write is in flight; the journal's last commit is written then. */
static void maybe_free_ingest(kvl_ingest_t *in)
{
    if (!in->freeing || !in->server_closed || in->live > 0 || in->writing > 0) {
        return;
    }
    if (!in->journal_closed) {
        in->journal_closed = true;
        kvl_journal_close(in->journal); /* batches still queued are replayed next time */
    } else if (in->journal != NULL && in->replaying) {
        kvl_journal_close(in->journal); /* opened, never started: freed at once */
    }
    in->journal = NULL;
    while (in->acks_head != NULL) {
        ack_wait_t *w = in->acks_head;
        in->acks_head = w->next;
        free(w);
    }
    while (in->agents != NULL) {
        agent_state_t *a = in->agents;
        in->agents = a->next;
        while (a->q_head != NULL) {
            pending_t *p = a->q_head;
            a->q_head = p->next;
            pending_free(p);
        }
        defs_free(a->defs);
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
    if (in == NULL || in->freeing) {
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
    if (!in->journal_closed) {
        kvl_journal_stats_t st;
        kvl_journal_stats(in->journal, &st);
        out->journal_commits = st.commits;
        out->journal_bytes = st.bytes;
        out->journal_backlog_bytes = st.backlog_bytes;
    }
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
