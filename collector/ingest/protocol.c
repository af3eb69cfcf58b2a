/*
 * protocol.c — an agent's messages on a connection: Hello (identity, version, Welcome
 * with the positions to resume from; its heartbeat interval to watch.c), heartbeats (the
 * frame is the news: conn.c tells watch.c of every frame), series definitions, batches
 * (checked against the definitions, journaled, queued, acknowledged later; duplicates
 * acknowledged only).
 *
 * Sequence numbers are the agent's clock in microseconds, so they are checked against what
 * the agent can have sent. A batch numbered more than max_seq_ahead beyond this
 * collector's clock is refused (the agent logs the Refusal's reason and keeps it): never
 * journaled, never acknowledged, the agent's position unchanged. A Hello says the agent's
 * highest number per lane; a position above it (numbers the agent never made: another peer
 * under its id, an older collector's journal) is rewound (to the highest journaled number
 * that was plausible when it came, at most the agent's), journaled as a POS record that
 * replay.c takes as it is, and the Welcome says the rewound position, so the agent's
 * batches are not taken for duplicates and acknowledged unwritten. A duplicate is expected
 * right after a (re)connect, for batches journaled whose acknowledgement the agent had not
 * seen (above what the Welcome said); one at or below what the Welcome said is counted and
 * logged. (Once a connection has sent a new batch no duplicate can follow on it: its
 * numbers must increase.)
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"
#include "kvl.h"
#include "log.h"
#include "names.h"
#include "timeutil.h"

static const char *lane_name(uint32_t lane)
{
    return lane == KVL_LANE_EVENTS ? "events" : "bulk";
}

/* NULL when the Hello's id and site can be taken (they name archive folders), else why
 * not (in why). */
static const char *check_names(const kvl_hello_t *h, char *why, size_t len)
{
    size_t id_len = strlen(h->agent_id), site_len = strlen(h->site);
    if (id_len == 0) {
        return "the hello has no agent id";
    }
    if (id_len > KVL_AGENT_ID_MAX) {
        snprintf(why, len, "agent id of %zu bytes is longer than this collector accepts (%d)",
                 id_len, KVL_AGENT_ID_MAX);
        return why;
    }
    if (site_len > KVL_SITE_MAX) {
        snprintf(why, len, "site name of %zu bytes is longer than this collector accepts (%d)",
                 site_len, KVL_SITE_MAX);
        return why;
    }
    if (kvl_name_check("agent id", h->agent_id, why, len) != 0 ||
        (site_len > 0 && kvl_name_check("site", h->site, why, len) != 0)) {
        return why;
    }
    return NULL;
}

/* The agent says no batch of it is numbered above h's positions: a position of ours above
 * one goes back (see the top of the file). Returns 0 or a negative code (the journal). */
static int rewind_positions(kvl_ingest_t *in, agent_state_t *a, const kvl_hello_t *h)
{
    if (!h->has_last_seq) {
        return 0; /* an older agent: it does not say */
    }
    const uint64_t told[KVL_LANES] = {
        [KVL_LANE_BULK] = h->last_seq, [KVL_LANE_EVENTS] = h->last_event_seq};
    bool any = false;
    for (uint32_t lane = 0; lane < KVL_LANES; lane++) {
        if (a->journaled_seq[lane] <= told[lane]) {
            continue;
        }
        uint64_t to = a->plausible_seq[lane] < told[lane] ? a->plausible_seq[lane] : told[lane];
        KVL_LOG_WARN("ingest", a->id,
                     "position %" PRIu64 " on the %s lane is above the agent's own highest "
                     "number %" PRIu64 " (numbers it never made: another peer under its id?); "
                     "going back to %" PRIu64,
                     a->journaled_seq[lane], lane_name(lane), told[lane], to);
        a->journaled_seq[lane] = to;
        a->acked_seq[lane] = a->acked_seq[lane] < to ? a->acked_seq[lane] : to;
        a->plausible_seq[lane] = to;
        /* Acknowledgements still waiting for the journal must not raise it again. */
        for (ack_wait_t *w = in->acks_head; w != NULL; w = w->next) {
            if (w->agent == a && w->lane == lane && w->seq > to) {
                w->seq = to;
            }
        }
        in->stats.seq_rewinds++;
        any = true;
    }
    if (!any) {
        return 0;
    }
    /* The new positions as a checkpoint: replay takes a POS record as it is, so a batch
     * record above it, earlier in the journal, does not bring the old position back. */
    uint8_t pos[24];
    kvl_put_le64(pos, a->journaled_seq[KVL_LANE_BULK]);
    kvl_put_le64(pos + 8, a->journaled_seq[KVL_LANE_EVENTS]);
    kvl_put_le64(pos + 16, a->durable_jseq);
    return ingest_journal_put(in, a, KVL_JREC_POS, 0, 0, pos, sizeof(pos), false, NULL, NULL);
}

static void handle_hello(conn_t *c, const kvl_hello_t *h)
{
    kvl_ingest_t *in = c->in;
    char idwhy[512];
    const char *bad_id = ingest_check_identity(c, h->agent_id, idwhy, sizeof(idwhy));
    if (bad_id != NULL) {
        ingest_refuse(c, bad_id);
        return;
    }
    if (h->protocol != KVL_PROTOCOL_VERSION) {
        char why[128];
        snprintf(why, sizeof(why),
                 "protocol version %u is not supported (this collector speaks %u)", h->protocol,
                 KVL_PROTOCOL_VERSION);
        ingest_refuse(c, why);
        return;
    }
    const char *bad_name = check_names(h, idwhy, sizeof(idwhy));
    if (bad_name != NULL) {
        ingest_refuse(c, bad_name);
        return;
    }
    agent_state_t *a = ingest_agent_get(in, h->agent_id, strlen(h->agent_id));
    defs_table_t *defs = ingest_defs_new(in, h->site[0] ? h->site : "default");
    if (a == NULL || defs == NULL) {
        free(defs);
        ingest_refuse(c, "collector out of memory");
        return;
    }
    if (a->conn != NULL && a->conn != c) {
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, ingest_agent_log_limit(a), "ingest", a->id,
                        "agent connected again from %s; closing its older connection", c->peer);
        conn_t *old = a->conn;
        a->conn = NULL;
        old->agent = NULL;
        ingest_conn_close(old, NULL);
    }
    a->conn = c;
    c->agent = a;
    ingest_defs_free(a->defs); /* its batches in the queue carry their own copies */
    a->defs = defs;
    memset(a->ack_sent, 0, sizeof(a->ack_sent));
    snprintf(a->site, sizeof(a->site), "%s", h->site[0] ? h->site : "default");
    snprintf(a->version, sizeof(a->version), "%s", h->version != NULL ? h->version : "");
    if (rewind_positions(in, a, h) != 0 ||
        ingest_journal_put(in, a, KVL_JREC_CONNECT, 0, 0, a->site, strlen(a->site), false, NULL,
                           NULL) != 0) {
        ingest_refuse(c, "collector cannot write its journal");
        return;
    }
    memcpy(c->welcome_seq, a->acked_seq, sizeof(c->welcome_seq));
    c->last_frame_ms = uv_now(in->loop);
    ingest_watch_hello(in, a, h->heartbeat_ms);
    uv_timer_start(&c->timer, ingest_on_timer, (uint64_t)in->cfg->idle_timeout_ms, 0);
    KVL_LOG_LIMITED(KVL_LOG_LEVEL_INFO, ingest_agent_log_limit(a), "ingest", a->id,
                    "agent connected from %s (site %s, version %s)", c->peer, a->site, h->version);
    kvl_msg_t m = {.type = KVL_MSG_WELCOME};
    m.u.welcome = (kvl_welcome_t){.protocol = KVL_PROTOCOL_VERSION,
                                  .collector_id = in->cfg->id,
                                  .version = KVL_VERSION,
                                  .last_acked_seq = a->acked_seq[KVL_LANE_BULK],
                                  .last_acked_event_seq = a->acked_seq[KVL_LANE_EVENTS],
                                  .takes_heartbeats = true};
    ingest_send_msg(c, &m);
}

/* A batch numbered beyond what its agent can have sent is refused: logged (rate-limited),
 * the connection told why and closed; nothing journaled, acknowledged or adopted. Returns
 * true when it was. */
static bool refuse_seq(conn_t *c, const kvl_batch_t *b, uint64_t now_us)
{
    kvl_ingest_t *in = c->in;
    uint64_t ahead_us = (uint64_t)in->cfg->max_seq_ahead_ms * 1000u;
    if (b->seq <= now_us + ahead_us && b->seq <= KVL_SEQ_IMPOSSIBLE) {
        return false;
    }
    char why[300];
    snprintf(why, sizeof(why),
             "batch %" PRIu64 " on the %s lane is numbered %" PRIu64
             " s ahead of the collector's clock (max_seq_ahead %" PRId64
             " s): not made by an agent whose clock is right; refused, not acknowledged",
             b->seq, lane_name(b->lane), (b->seq - now_us) / 1000000u,
             in->cfg->max_seq_ahead_ms / 1000);
    in->stats.batches_refused_seq++;
    in->stats.protocol_errors++;
    KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, ingest_limit(&in->seq_log), "ingest", c->agent->id,
                    "closing connection from %s: %s (position stays %" PRIu64 ")", c->peer, why,
                    c->agent->journaled_seq[b->lane]);
    kvl_msg_t m = {.type = KVL_MSG_REFUSAL};
    m.u.refusal = why;
    ingest_send_msg(c, &m);
    ingest_conn_close(c, NULL);
    return true;
}

static void handle_batch(conn_t *c, kvl_msg_t *m, const uint8_t *payload, size_t len)
{
    kvl_ingest_t *in = c->in;
    agent_state_t *a = c->agent;
    kvl_batch_t *b = &m->u.batch;
    const char *why = NULL;
    uint64_t now_us = (uint64_t)kvl_now_ms() * 1000u;
    if (refuse_seq(c, b, now_us)) {
        return;
    }
    if (ingest_store_defs(a->defs, b->families, b->n_families, b->defs, b->n_defs, &why) != 0) {
        ingest_refuse(c, why);
        return;
    }
    if (b->seq <= c->last_seq[b->lane]) {
        char w[128];
        snprintf(w, sizeof(w), "batch %" PRIu64 " out of order (after %" PRIu64 ")", b->seq,
                 c->last_seq[b->lane]);
        ingest_conn_close(c, w);
        return;
    }
    c->last_seq[b->lane] = b->seq;
    if (b->seq <= a->journaled_seq[b->lane]) {
        /* In the journal already (sent again after a reconnect): acknowledge it once it is on
         * disk, write nothing. */
        in->stats.batches_duplicate++;
        if (b->seq <= c->welcome_seq[b->lane]) {
            in->stats.duplicates_unexpected++;
            KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, ingest_limit(&in->dup_log), "ingest", a->id,
                            "batch %" PRIu64 " on the %s lane sent again though the Welcome "
                            "said it was durable (%" PRIu64 "): acknowledged, not written",
                            b->seq, lane_name(b->lane), c->welcome_seq[b->lane]);
        }
        if (b->seq <= a->acked_seq[b->lane]) {
            if (b->seq > a->ack_sent[b->lane]) {
                a->ack_sent[b->lane] = b->seq;
            }
            ingest_send_ack(c, b->lane, b->seq);
        } else if (ingest_ack_after(in, a, b->lane, b->seq, kvl_journal_last_jseq(in->journal)) !=
                   0) {
            ingest_conn_close(c, "out of memory");
        }
        return;
    }
    if (ingest_batch_filter_times(in, a, b, &payload, &len) != 0) {
        ingest_conn_close(c, "out of memory");
        return;
    }
    pending_t *p = calloc(1, sizeof(*p));
    char err[200] = "";
    uint64_t samples = 0, journal_data_off = 0;
    int rc = p == NULL ? KVL_ENOMEM : ingest_batch_check(a->defs, b, &samples, err, sizeof(err));
    if (rc == 0) {
        rc = ingest_journal_put(in, a, KVL_JREC_BATCH, b->seq, b->lane, payload, len, true, &p->seg,
                                &journal_data_off);
        snprintf(err, sizeof(err), "cannot write the journal: %s", kvl_strerror(rc));
    }
    if (rc == 0) {
        p->jseq = kvl_journal_last_jseq(in->journal);
        p->journaled_ms = uv_now(in->loop);
        rc = ingest_ack_after(in, a, b->lane, b->seq, p->jseq);
        if (rc != 0) {
            /* journaled: the agent's resend is then a duplicate, acknowledged then */
            snprintf(err, sizeof(err), "out of memory");
        }
        a->journaled_seq[b->lane] = b->seq;
        if (b->seq <= now_us + PLAUSIBLE_AHEAD_US) {
            a->plausible_seq[b->lane] = b->seq;
        }
        p->seq = b->seq;
        p->lane = b->lane;
        p->samples = samples;
        p->defs = a->defs;
        a->defs->refs++;
        p->msg = *m; /* the decoded batch, for the sinks */
        p->decoded = true;
        memset(m, 0, sizeof(*m));
        /* ---- events lane (begin) ---- An events-only batch (state changes, traps) goes
         * to the sinks as soon as it is journaled, not when its turn in the agent's queue
         * comes, so an alarm is never held behind a backlog of metrics. */
        if (p->lane == KVL_LANE_EVENTS && p->msg.u.batch.n_groups == 0) {
            ingest_deliver_events(in, a, p);
            ingest_mark_delivered(in, a, p);
        }
        /* ---- events lane (end) ---- */
        if (!ingest_keep_in_memory(a, samples)) {
            ingest_spill(p, journal_data_off, len);
            in->stats.batches_spilled++;
        }
        ingest_queue_push(a, p);
        in->stats.batches_journaled++;
        in->stats.samples_journaled += samples;
        if (rc == 0) {
            ingest_conn_update_reading(c);
            ingest_update_pause(in);
            return;
        }
    } else {
        free(p);
    }
    char w[300];
    snprintf(w, sizeof(w), "batch %" PRIu64 ": %s", b->seq,
             rc == KVL_ENOMEM ? "out of memory" : err);
    ingest_conn_close(c, w);
}

/* Returns after handling one message; the connection may be closing then. `m` may be taken
 * over. payload: the frame as received, for the journal. */
void ingest_handle_msg(conn_t *c, kvl_msg_t *m, const uint8_t *payload, size_t len)
{
    if (c->agent == NULL && m->type != KVL_MSG_HELLO) {
        ingest_conn_close(c, "first message was not a hello");
        return;
    }
    switch (m->type) {
    case KVL_MSG_HELLO:
        if (c->agent != NULL) {
            ingest_conn_close(c, "second hello on one connection");
            return;
        }
        handle_hello(c, &m->u.hello);
        return;
    case KVL_MSG_SERIES_DEFS: {
        const char *why = NULL;
        if (ingest_store_defs(c->agent->defs, m->u.series_defs.families,
                              m->u.series_defs.n_families, m->u.series_defs.defs,
                              m->u.series_defs.n, &why) != 0) {
            ingest_refuse(c, why);
        } else if (ingest_journal_put(c->in, c->agent, KVL_JREC_DEFS, 0, 0, payload, len, false,
                                      NULL, NULL) != 0) {
            ingest_conn_close(c, "cannot write the journal");
        }
        return;
    }
    case KVL_MSG_BATCH:
        handle_batch(c, m, payload, len);
        return;
    case KVL_MSG_HEARTBEAT:
        return; /* the frame itself was the news (conn.c on_frame, watch.c) */
    default:
        ingest_conn_close(c, "unexpected message type from an agent");
        return;
    }
}
