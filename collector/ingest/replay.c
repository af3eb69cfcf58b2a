/*
 * replay.c — the journal read back at start: positions first (what each agent has
 * journaled and applied), then definitions in order and the batches not yet applied,
 * queued for the sinks before any agent is accepted.
 *
 * APPLIED records come in two kinds, told apart by their lane byte: lane 0 (bulk) says
 * the agent's batches up to the jseq in seq are applied (a position, the only kind older
 * collectors wrote); lane 1 (events) says only that the events of the one batch at that
 * jseq went to the sinks when it arrived (the events lane, apply.c), so its replay hands
 * the batch to on_batch, in order, but not its events to on_event again. An older
 * collector would read the second kind as the first: a journal is not to be given back
 * to one.
 *
 * A replayed batch a sink cannot take for now (sink.h: result.retry) pauses applying for
 * its agent as at any other time (apply.c); the replay is done when every agent's queue is
 * empty or paused, so one unwritable archive does not keep every agent out.
 *
 * Positions are what no agent can have exceeded: one beyond max_seq_ahead of the clock
 * found in the journal (an older collector adopted any number) is left out with a log
 * line, and a POS record sets them (a rewind, protocol.c, is one), so a bogus batch
 * record before it does not bring a rewound position back.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"
#include "kvl.h"
#include "log.h"
#include "sdnotify.h"
#include "timeutil.h"

/* ---- journal: replay at start (begin) ---- */

/* A position found in the journal, unless no agent can have sent it (an older collector
 * took any number): then it is logged and left out, and the agent's Hello says where it
 * is. */
static bool position_possible(kvl_ingest_t *in, const agent_state_t *a, uint32_t lane, uint64_t v,
                              uint64_t now_us)
{
    uint64_t limit = now_us + (uint64_t)in->cfg->max_seq_ahead_ms * 1000u;
    if (v <= limit && v <= KVL_SEQ_IMPOSSIBLE) {
        return true;
    }
    KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, ingest_limit(&in->seq_log), "ingest", a->id,
                    "journal: position %" PRIu64 " on lane %u is beyond max_seq_ahead of this "
                    "collector's clock: not taken",
                    v, lane);
    return false;
}

/* First pass: positions (what is journaled, what is applied). A POS record (a checkpoint,
 * or a rewind by protocol.c) sets them as they were then; a batch's raises them. */
static int replay_positions(void *ctx, const kvl_jrec_t *r, uint64_t seg)
{
    kvl_ingest_t *in = ctx;
    KVL_UNUSED(seg);
    if (r->agent_len == 0) {
        return 0;
    }
    agent_state_t *a = ingest_agent_get(in, r->agent, r->agent_len);
    if (a == NULL) {
        return KVL_ENOMEM;
    }
    uint64_t now_us = (uint64_t)kvl_now_ms() * 1000u;
    if (r->type == KVL_JREC_POS && r->len >= 24) {
        for (uint32_t lane = 0; lane < KVL_LANES; lane++) {
            uint64_t v = kvl_get_le64(r->data + 8 * lane);
            if (!position_possible(in, a, lane, v, now_us)) {
                continue;
            }
            a->journaled_seq[lane] = v;
            if (v <= now_us + PLAUSIBLE_AHEAD_US || v < a->plausible_seq[lane]) {
                a->plausible_seq[lane] = v;
            }
        }
        uint64_t applied = kvl_get_le64(r->data + 16);
        if (applied > a->applied_jseq) {
            a->applied_jseq = a->durable_jseq = applied;
        }
    } else if (r->type == KVL_JREC_BATCH && r->lane < KVL_LANES) {
        if (r->seq > a->journaled_seq[r->lane] &&
            position_possible(in, a, r->lane, r->seq, now_us)) {
            a->journaled_seq[r->lane] = r->seq;
            if (r->seq <= now_us + PLAUSIBLE_AHEAD_US) {
                a->plausible_seq[r->lane] = r->seq;
            }
        }
    } else if (r->type == KVL_JREC_APPLIED && r->lane == KVL_LANE_BULK &&
               r->seq > a->applied_jseq) {
        a->applied_jseq = a->durable_jseq = r->seq;
    }
    return 0;
}

/* An events-only batch whose events went to the sinks when it arrived (the record follows
 * the batch's, so the batch is queued already unless it was applied): not again. */
static void mark_delivered(kvl_ingest_t *in, agent_state_t *a, uint64_t jseq, uint64_t seg)
{
    for (pending_t *p = a->q_head; p != NULL; p = p->next) {
        if (p->jseq == jseq && !p->marked) {
            p->events_delivered = true;
            p->marked = true;
            p->mark_seg = seg;
            kvl_journal_hold(in->journal, seg);
            return;
        }
    }
}

/* Second pass: definitions in order, and the batches not yet applied into the queues. */
static int replay_batches(void *ctx, const kvl_jrec_t *r, uint64_t seg)
{
    kvl_ingest_t *in = ctx;
    if (r->agent_len == 0) {
        return 0;
    }
    agent_state_t *a = ingest_agent_get(in, r->agent, r->agent_len);
    if (a == NULL) {
        return KVL_ENOMEM;
    }
    if (r->type == KVL_JREC_CONNECT) {
        snprintf(a->site, sizeof(a->site), "%.*s", (int)(r->len < 255 ? r->len : 255),
                 (const char *)r->data);
        ingest_defs_free(a->defs);
        a->defs = ingest_defs_new(in, a->site);
        return a->defs != NULL ? 0 : KVL_ENOMEM;
    }
    if (r->type == KVL_JREC_APPLIED && r->lane == KVL_LANE_EVENTS) {
        mark_delivered(in, a, r->seq, seg);
        return 0;
    }
    if (r->type != KVL_JREC_DEFS && r->type != KVL_JREC_BATCH) {
        return 0;
    }
    if (a->defs == NULL && (a->defs = ingest_defs_new(in, a->site)) == NULL) {
        return KVL_ENOMEM;
    }
    kvl_msg_t m = {0};
    char err[256] = "";
    const char *why = NULL;
    int rc = kvl_wire_decode(r->data, r->len, &m, err, sizeof(err));
    if (rc == 0 && r->type == KVL_JREC_DEFS && m.type == KVL_MSG_SERIES_DEFS) {
        rc = ingest_store_defs(a->defs, m.u.series_defs.families, m.u.series_defs.n_families,
                               m.u.series_defs.defs, m.u.series_defs.n, &why);
    } else if (rc == 0 && r->type == KVL_JREC_BATCH && m.type == KVL_MSG_BATCH) {
        kvl_batch_t *b = &m.u.batch;
        rc = ingest_store_defs(a->defs, b->families, b->n_families, b->defs, b->n_defs, &why);
        if (rc == 0 && r->jseq > a->applied_jseq) {
            pending_t *p = calloc(1, sizeof(*p));
            uint64_t samples = 0;
            rc = p ? ingest_batch_check(a->defs, b, &samples, err, sizeof(err)) : KVL_ENOMEM;
            why = err;
            if (rc == 0) {
                *p = (pending_t){.seq = b->seq,
                                 .jseq = r->jseq,
                                 .seg = seg,
                                 .lane = b->lane,
                                 .replay = true,
                                 .defs = a->defs,
                                 .decoded = true,
                                 .samples = samples,
                                 .msg = m};
                a->defs->refs++;
                memset(&m, 0, sizeof(m));
                if (!ingest_keep_in_memory(a, samples)) {
                    ingest_spill(p, r->off + KVL_JOURNAL_RECORD_HEADER + r->agent_len, r->len);
                }
                kvl_journal_hold(in->journal, seg);
                ingest_queue_push(a, p);
                in->stats.replay_queued++;
            } else {
                free(p);
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

void ingest_replay_maybe_done(kvl_ingest_t *in)
{
    if (!in->replaying || in->writing > 0) {
        return;
    }
    /* An agent whose applying is paused (a failure that can pass, apply.c) does not hold
     * everyone back: its batches wait in order, and its new ones queue behind them. */
    size_t paused = 0;
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        if (a->q_head != NULL && a->paused_since_ms == 0) {
            return;
        }
        paused += a->q_head != NULL;
    }
    in->replaying = false;
    if (in->stats.replay_queued > 0) {
        KVL_LOG_INFO("ingest", NULL,
                     "replay done: %" PRIu64 " journaled batches applied to the archives (%" PRIu64
                     " updates were already there), %" PRIu64 " unreadable",
                     in->stats.replayed_batches, in->stats.replay_stale, in->stats.replay_errors);
    }
    if (paused > 0) {
        KVL_LOG_WARN("ingest", NULL,
                     "replay: the batches of %zu agents wait until their archives can be "
                     "written; accepting agents meanwhile",
                     paused);
    }
    KVL_LOG_INFO("ingest", in->cfg->listen, "listening for agents");
    char st[300];
    snprintf(st, sizeof(st), "listening for agents on %s", in->cfg->listen);
    kvl_sd_status(st); /* systemctl status shows it (sdnotify.h) */
    if (in->accept_waiting && !in->freeing) {
        in->accept_waiting = false;
        ingest_accept_one(in);
    }
}

/* Opens the journal, reads it back and queues what the sinks lack. Returns 0 or a
 * negative code with err saying why. */
int ingest_replay_start(kvl_ingest_t *in, char *err, size_t errlen)
{
    char dir[4096], jerr[1200];
    snprintf(dir, sizeof(dir), "%s/_journal", in->cfg->data_dir);
    kvl_journal_opts_t o = {.dir = dir,
                            .segment_bytes = (uint64_t)in->cfg->journal_segment_bytes,
                            .commit_delay_ms = in->cfg->journal_commit_delay_ms,
                            .no_sync = !in->cfg->journal_sync};
    int rc = kvl_journal_open(&o, &in->journal, jerr, sizeof(jerr));
    if (rc != 0) {
        snprintf(err, errlen, "journal %s: %s", dir, jerr);
        return rc;
    }
    rc = kvl_journal_replay(in->journal, replay_positions, in);
    if (rc == 0) {
        rc = kvl_journal_replay(in->journal, replay_batches, in);
    }
    if (rc != 0) {
        snprintf(err, errlen, "journal %s: cannot replay: %s", dir, kvl_strerror(rc));
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
    rc = kvl_journal_start(in->journal, in->loop, ingest_on_journal_synced, ingest_on_journal_roll,
                           in);
    if (rc != 0) {
        snprintf(err, errlen, "journal %s: cannot start: %s", dir, kvl_strerror(rc));
        return rc;
    }
    in->journal_closed = false; /* batches may be applied from here on */
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        ingest_submit_next(in, a);
    }
    return 0;
}

/* ---- journal: replay at start (end) ---- */
