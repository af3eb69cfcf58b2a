/*
 * protocol.c — an agent's messages on a connection: Hello (identity, version, Welcome
 * with the positions to resume from), series definitions, batches (checked against the
 * definitions, journaled, queued, acknowledged later; duplicates acknowledged only).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"
#include "kvl.h"
#include "log.h"

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
    if (h->agent_id[0] == '\0' || strlen(h->agent_id) > 200 ||
        strlen(h->site) >= sizeof(c->agent->site)) {
        ingest_refuse(c, "the hello lacks an agent id, or a name is too long");
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
        KVL_LOG_WARN("ingest", a->id, "agent connected again from %s; closing its older connection",
                     c->peer);
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
    if (ingest_journal_put(in, a, KVL_JREC_CONNECT, 0, 0, a->site, strlen(a->site), false, NULL,
                           NULL) != 0) {
        ingest_refuse(c, "collector cannot write its journal");
        return;
    }
    c->last_frame_ms = uv_now(in->loop);
    uv_timer_start(&c->timer, ingest_on_timer, (uint64_t)in->cfg->idle_timeout_ms, 0);
    KVL_LOG_INFO("ingest", a->id, "agent connected from %s (site %s, version %s)", c->peer, a->site,
                 h->version);
    kvl_msg_t m = {.type = KVL_MSG_WELCOME};
    m.u.welcome = (kvl_welcome_t){.protocol = KVL_PROTOCOL_VERSION,
                                  .collector_id = in->cfg->id,
                                  .version = KVL_VERSION,
                                  .last_acked_seq = a->acked_seq[KVL_LANE_BULK],
                                  .last_acked_event_seq = a->acked_seq[KVL_LANE_EVENTS]};
    ingest_send_msg(c, &m);
}

static void handle_batch(conn_t *c, kvl_msg_t *m, const uint8_t *payload, size_t len)
{
    kvl_ingest_t *in = c->in;
    agent_state_t *a = c->agent;
    kvl_batch_t *b = &m->u.batch;
    const char *why = NULL;
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
        rc = ingest_ack_after(in, a, b->lane, b->seq, p->jseq);
        if (rc != 0) {
            /* journaled: the agent's resend is then a duplicate, acknowledged then */
            snprintf(err, sizeof(err), "out of memory");
        }
        a->journaled_seq[b->lane] = b->seq;
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
    default:
        ingest_conn_close(c, "unexpected message type from an agent");
        return;
    }
}
