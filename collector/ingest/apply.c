/*
 * apply.c — from the journal to the sinks: records appended (positions, checkpoints at
 * every new segment), acknowledgements once a commit is on disk, and each agent's batches
 * handed to the sinks (sink.h) one at a time, in order (spilled ones read back first),
 * applied when every sink is done: the APPLIED record that lets the journal release a
 * segment. Events-only batches' events go to the sinks on arrival (protocol.c) and the
 * journal records it (ingest_mark_delivered), so replay.c does not repeat them.
 *
 * A sink's failure that can pass (sink.h: result.retry; the archives' disk read-only or
 * full) pauses applying for that agent: its batch is not applied (no APPLIED record, its
 * segment held), stays first in the agent's queue, and goes again to the sinks that asked,
 * after RETRY_FIRST_MS doubling to RETRY_MAX_MS (one timer for all agents, at the earliest
 * one's time); the agent's later batches wait behind it, other agents go on. Said once when
 * it pauses and once when it recovers. The journal holds the waiting batches: past
 * journal_max_bytes nobody is read (conn.c), as when the archives lag. A batch that cannot
 * be read back from the journal for a reason that can pass waits the same way. On stop a
 * paused batch stays in the journal, replayed (and retried) at the next start.
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
#include "timeutil.h"

/* ---- journal: positions, checkpoints, acknowledgements (begin) ---- */

int ingest_journal_put(kvl_ingest_t *in, const agent_state_t *a, uint8_t type, uint64_t seq,
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

/* A new journal segment begins: what it needs to stand alone. */
void ingest_on_journal_roll(void *ctx)
{
    kvl_ingest_t *in = ctx;
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        uint8_t pos[24];
        kvl_put_le64(pos, a->journaled_seq[KVL_LANE_BULK]);
        kvl_put_le64(pos + 8, a->journaled_seq[KVL_LANE_EVENTS]);
        kvl_put_le64(pos + 16, a->durable_jseq);
        ingest_journal_put(in, a, KVL_JREC_POS, 0, 0, pos, sizeof(pos), false, NULL, NULL);
        if (a->conn == NULL || a->defs == NULL) {
            continue; /* its next batch comes on a new connection, with new definitions */
        }
        kvl_buf_t b = {0};
        if (ingest_journal_put(in, a, KVL_JREC_CONNECT, 0, 0, a->site, strlen(a->site), false, NULL,
                               NULL) != 0 ||
            ingest_defs_encode(a->defs, &b) != 0 ||
            ingest_journal_put(in, a, KVL_JREC_DEFS, 0, 0, b.data, b.len, false, NULL, NULL) != 0) {
            KVL_LOG_ERROR("ingest", a->id,
                          "cannot checkpoint the agent's definitions in the "
                          "journal; closing its connection");
            ingest_conn_close(a->conn, NULL);
        }
        kvl_buf_free(&b);
    }
}

void ingest_send_ack(conn_t *c, uint32_t lane, uint64_t seq)
{
    kvl_msg_t ack = {.type = KVL_MSG_ACK};
    ack.u.ack.seq = seq;
    ack.u.ack.lane = lane;
    ingest_send_msg(c, &ack);
}

/* Acknowledges seq once the journal has jseq on disk. */
int ingest_ack_after(kvl_ingest_t *in, agent_state_t *a, uint32_t lane, uint64_t seq, uint64_t jseq)
{
    /* Acks wait in journal order: on_journal_synced acknowledges a prefix of this list. */
    KVL_ASSERT(in->acks_tail == NULL || in->acks_tail->jseq <= jseq);
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

/* The journal has everything up to synced on disk: acknowledge, and let the sinks have
 * it. */
void ingest_on_journal_synced(void *ctx, uint64_t synced)
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
                ingest_send_ack(c, lane, v);
            }
        }
        ingest_submit_next(in, a);
    }
    ingest_update_pause(in);
}

/* ---- journal: positions, checkpoints, acknowledgements (end) ---- */

/* ----------------------------------------------------------------- to the sinks -------- */

/* Takes the agent's first batch off its queue. */
static pending_t *queue_pop(kvl_ingest_t *in, agent_state_t *a)
{
    pending_t *p = a->q_head;
    a->q_head = p->next;
    if (a->q_head == NULL) {
        a->q_tail = NULL;
    }
    a->q_len--;
    if (p->counted) {
        a->q_mem--;
        in->mem_samples -= p->samples;
    }
    return p;
}

/* Hands the batch's events to the sinks (and to the log), once (sink.h), each marked late or
 * not (watch.c). */
void ingest_deliver_events(kvl_ingest_t *in, agent_state_t *a, pending_t *p)
{
    const kvl_batch_t *b = &p->msg.u.batch;
    p->events_delivered = true;
    for (size_t i = 0; i < b->n_events; i++) {
        bool late = ingest_event_late(in, a, &b->events[i]);
        ingest_log_event(a->id, p->defs->site, &b->events[i], late);
        in->stats.events_late += late;
        kvl_sink_event_t e = {.agent = a->id,
                              .site = p->defs->site,
                              .event = &b->events[i],
                              .seq = p->seq,
                              .lane = p->lane,
                              .replayed = p->replay,
                              .late = late};
        kvl_sinks_event(in->sinks, &e);
    }
}

/* Records in the journal that p's events went to the sinks ahead of its turn (an APPLIED
 * record on the events lane naming p's jseq; see replay.c), so a replay does not hand them
 * over again. The record's segment is held until p is applied. */
void ingest_mark_delivered(kvl_ingest_t *in, agent_state_t *a, pending_t *p)
{
    if (ingest_journal_put(in, a, KVL_JREC_APPLIED, p->jseq, KVL_LANE_EVENTS, NULL, 0, true,
                           &p->mark_seg, NULL) == 0) {
        p->marked = true;
    }
}

/* Lets the journal go of what p holds. */
static void release_segments(kvl_ingest_t *in, const pending_t *p)
{
    kvl_journal_release(in->journal, p->seg);
    if (p->marked) {
        kvl_journal_release(in->journal, p->mark_seg);
    }
}

/* ---- applied, durably (sink.h, durable_after) ---- */

/* A batch applied whose APPLIED record waits for its sinks' durability point. */
typedef struct deferred_applied {
    struct deferred_applied *next;
    agent_state_t *agent; /* agents are never freed before the ingest */
    uint64_t jseq;
    uint64_t point;
    uint64_t seg, mark_seg;
    bool marked;
} deferred_applied_t;

/* The APPLIED record of the agent's batches up to jseq. */
static void record_applied(kvl_ingest_t *in, agent_state_t *a, uint64_t jseq)
{
    ingest_journal_put(in, a, KVL_JREC_APPLIED, jseq, KVL_LANE_BULK, NULL, 0, false, NULL, NULL);
    if (jseq > a->durable_jseq) {
        a->durable_jseq = jseq;
    }
}

/* The durability point the sinks' writes so far wait for; 0: durable already. */
static uint64_t durable_point(const kvl_ingest_t *in)
{
    uint64_t point = 0;
    for (size_t i = 0; i < in->sinks->n; i++) {
        const kvl_sink_t *k = in->sinks->at[i].sink;
        if (k->durable_after != NULL) {
            uint64_t v = k->durable_after(in->sinks->at[i].ctx);
            point = v > point ? v : point;
        }
    }
    return point;
}

/* Keeps p's APPLIED record and segments for kvl_ingest_durable. False when out of memory
 * (then it is recorded at once: a stop before the point may lose what the sink holds). */
static bool defer_applied(kvl_ingest_t *in, agent_state_t *a, const pending_t *p, uint64_t point)
{
    deferred_applied_t *d = malloc(sizeof(*d));
    if (d == NULL) {
        return false;
    }
    *d = (deferred_applied_t){.agent = a,
                              .jseq = p->jseq,
                              .point = point,
                              .seg = p->seg,
                              .mark_seg = p->mark_seg,
                              .marked = p->marked};
    if (in->deferred_tail != NULL) {
        in->deferred_tail->next = d;
    } else {
        in->deferred_head = d;
    }
    in->deferred_tail = d;
    in->n_deferred++;
    return true;
}

void kvl_ingest_durable(kvl_ingest_t *in, uint64_t point)
{
    /* The points only grow, so those waiting are in order of their point. */
    while (in->deferred_head != NULL && in->deferred_head->point <= point) {
        deferred_applied_t *d = in->deferred_head;
        in->deferred_head = d->next;
        if (in->deferred_head == NULL) {
            in->deferred_tail = NULL;
        }
        in->n_deferred--;
        if (!in->journal_closed) {
            if (d->jseq > d->agent->durable_jseq) {
                record_applied(in, d->agent, d->jseq);
            }
            kvl_journal_release(in->journal, d->seg);
            if (d->marked) {
                kvl_journal_release(in->journal, d->mark_seg);
            }
        }
        free(d);
    }
}

/* At the end: what still waits is replayed at the next start (its segments were never
 * released, and the journal is closed by now). */
void ingest_deferred_free(kvl_ingest_t *in)
{
    while (in->deferred_head != NULL) {
        deferred_applied_t *d = in->deferred_head;
        in->deferred_head = d->next;
        free(d);
    }
    in->deferred_tail = NULL;
    in->n_deferred = 0;
}

/* What one round with the sinks did, counted (whether the batch is applied or waits). */
static void count_round(kvl_ingest_t *in, agent_state_t *a, const pending_t *p)
{
    const kvl_sink_result_t *r = &a->result;
    if (r->errors > 0) {
        /* Failures that cannot pass (logged by the sink, once per file): not retried. */
        KVL_LOG_ERROR("ingest", a->id,
                      "batch %" PRIu64 ": %zu archive updates failed for good (not retried)",
                      p->seq, r->errors);
        in->stats.updates_failed += r->errors;
    }
    in->stats.updates_retried += r->retry;
    in->stats.samples_written += r->values;
}

/* The agent's first batch goes to the sinks again later: a sink asked for it (a failure
 * that can pass), or it could not be read back from the journal. why: what failed. */
static void pause_applying(kvl_ingest_t *in, agent_state_t *a, const pending_t *p, const char *why)
{
    uint64_t now = uv_now(in->loop);
    if (a->paused_since_ms == 0) {
        a->paused_since_ms = now;
        a->paused_tries = 1;
        a->retry_delay_ms = RETRY_FIRST_MS;
        in->apply_paused++;
        in->stats.apply_pauses++;
        KVL_LOG_ERROR("ingest", a->id,
                      "applying paused at batch %" PRIu64 " lane %u: %s; the batch stays in the "
                      "journal and is tried again (1 s, doubling to %d s), the agent's later "
                      "batches wait behind it",
                      p->seq, p->lane, why, RETRY_MAX_MS / 1000);
    } else {
        a->paused_tries++;
        a->retry_delay_ms =
            a->retry_delay_ms >= RETRY_MAX_MS / 2 ? RETRY_MAX_MS : a->retry_delay_ms * 2;
        KVL_LOG_DEBUG("ingest", a->id, "batch %" PRIu64 " still waits (try %" PRIu64 "): %s",
                      p->seq, a->paused_tries, why);
    }
    if (in->freeing) {
        return; /* it stays in the journal: replayed at the next start */
    }
    a->retry_at_ms = now + a->retry_delay_ms;
    uint64_t due = a->retry_at_ms;
    for (agent_state_t *o = in->agents; o != NULL; o = o->next) {
        if (o->retry_at_ms != 0 && o->retry_at_ms < due) {
            due = o->retry_at_ms;
        }
    }
    uv_timer_start(&in->retry_timer, ingest_on_retry_timer, due > now ? due - now : 0, 0);
}

/* Applying for the agent goes on after a pause: said once. */
static void resume_applying(kvl_ingest_t *in, agent_state_t *a, const pending_t *p)
{
    uint64_t ms = uv_now(in->loop) - a->paused_since_ms;
    KVL_LOG_INFO("ingest", a->id,
                 "applying resumed: batch %" PRIu64 " is in the archives after %" PRIu64
                 ".%01" PRIu64 " s and %" PRIu64 " failed tries; %zu batches waiting behind it",
                 p->seq, ms / 1000, ms % 1000 / 100, a->paused_tries, a->q_len);
    a->paused_since_ms = 0;
    a->paused_tries = 0;
    a->retry_sinks = 0;
    KVL_ASSERT(in->apply_paused > 0);
    in->apply_paused--;
}

/* The retry timer: every agent whose time has come hands its first batch over again. */
void ingest_on_retry_timer(uv_timer_t *t)
{
    kvl_ingest_t *in = t->data;
    uint64_t now = uv_now(in->loop);
    uint64_t next = 0;
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        if (a->retry_at_ms != 0 && a->retry_at_ms <= now) {
            a->retry_at_ms = 0;
            ingest_submit_next(in, a);
        }
    }
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        if (a->retry_at_ms != 0 && (next == 0 || a->retry_at_ms < next)) {
            next = a->retry_at_ms;
        }
    }
    if (next != 0 && !in->freeing) {
        uv_timer_start(&in->retry_timer, ingest_on_retry_timer, next > now ? next - now : 0, 0);
    }
}

/* The apply lag histogram (kvl_ingest_stats_t.apply_lag_le): bounds in s, and in ms. */
const double kvl_apply_lag_buckets_s[KVL_APPLY_LAG_BUCKETS] = {0.01, 0.05, 0.1, 0.25, 0.5, 1,
                                                               2.5,  5,    10,  30,   60,  300};
static const uint64_t lag_bounds_ms[KVL_APPLY_LAG_BUCKETS] = {
    10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000};
/* The sample age histogram (kvl_ingest_stats_t.sample_age_le): bounds in s, and in ms. */
const double kvl_sample_age_buckets_s[KVL_SAMPLE_AGE_BUCKETS] = {
    0.25, 0.5, 1, 2, 5, 10, 15, 30, 60, 90, 120, 300, 600, 1800};
static const uint64_t age_bounds_ms[KVL_SAMPLE_AGE_BUCKETS] = {
    250, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 90000, 120000, 300000, 600000, 1800000};

/* Each group's age now (sample time to applied), into the sample age histogram. */
static void count_sample_age(kvl_ingest_t *in, const pending_t *p)
{
    if (!p->decoded || p->msg.type != KVL_MSG_BATCH) {
        return;
    }
    int64_t now = kvl_now_ms();
    const kvl_batch_t *b = &p->msg.u.batch;
    for (size_t g = 0; g < b->n_groups; g++) {
        int64_t t = b->groups[g].time_ms;
        uint64_t age = now > t ? (uint64_t)(now - t) : 0;
        in->stats.sample_age_sum_ms += age;
        in->stats.sample_age_count++;
        for (int k = KVL_SAMPLE_AGE_BUCKETS - 1; k >= 0 && age <= age_bounds_ms[k]; k--) {
            in->stats.sample_age_le[k]++;
        }
    }
}

/* Every sink is done with the agent's first batch: it is applied (the journal's APPLIED
 * record, its segment released). */
static void batch_applied(kvl_ingest_t *in, agent_state_t *a)
{
    /* One batch per agent with the sinks at a time, the queue's first. */
    KVL_ASSERT(a->writing && in->writing > 0 && a->q_head != NULL);
    pending_t *p = queue_pop(in, a);
    const kvl_sink_result_t *r = &a->result;
    bool retried = a->paused_since_ms != 0;
    a->writing = false;
    in->writing--;
    count_round(in, a, p);
    if (retried) {
        resume_applying(in, a, p);
    }
    if (r->stale > 0 && retried) {
        /* Written at an earlier try, before the failure that paused it. */
        KVL_LOG_DEBUG("ingest", a->id,
                      "batch %" PRIu64 ": %zu updates were written at an earlier try", p->seq,
                      r->stale);
        in->stats.retry_stale += r->stale;
    } else if (r->stale > 0 && p->replay) {
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
    KVL_LOG_DEBUG("ingest", a->id, "applied batch %" PRIu64 " lane %u: %zu updates, %zu stale%s",
                  p->seq, p->lane, r->rows, r->stale, p->replay ? " (replay)" : "");
    if (!p->events_delivered) {
        ingest_deliver_events(in, a, p);
    }
    in->stats.batches_written++;
    if (p->journaled_ms != 0 && !p->replay) {
        uint64_t now = uv_now(in->loop), lag = now > p->journaled_ms ? now - p->journaled_ms : 0;
        in->stats.apply_lag_last_ms = lag;
        in->stats.apply_lag_sum_ms += lag;
        in->stats.apply_lag_count++;
        for (int b = KVL_APPLY_LAG_BUCKETS - 1; b >= 0 && lag <= lag_bounds_ms[b]; b--) {
            in->stats.apply_lag_le[b]++;
        }
        count_sample_age(in, p);
    }
    if (p->replay) {
        in->stats.replayed_batches++;
    }
    if (p->jseq > a->applied_jseq) {
        a->applied_jseq = p->jseq;
    }
    if (!in->journal_closed) {
        uint64_t point = durable_point(in);
        if (point == 0 || !defer_applied(in, a, p, point)) {
            record_applied(in, a, p->jseq);
            release_segments(in, p);
        }
    }
    ingest_pending_free(p);
}

/* What may change once batches are applied: reading, the pause, the end of the replay. */
static void after_applied(kvl_ingest_t *in, agent_state_t *a)
{
    if (a->conn != NULL) {
        ingest_conn_update_reading(a->conn);
    }
    ingest_update_pause(in);
    ingest_replay_maybe_done(in);
}

/* Every sink has answered for the agent's first batch: applied, or (a sink asked for it
 * again) paused. Returns true when applied. */
static bool round_done(kvl_ingest_t *in, agent_state_t *a)
{
    if (a->retry_next == 0) {
        batch_applied(in, a);
        return true;
    }
    KVL_ASSERT(a->writing && in->writing > 0 && a->q_head != NULL);
    const pending_t *p = a->q_head;
    a->writing = false;
    in->writing--;
    count_round(in, a, p);
    a->retry_sinks = a->retry_next;
    pause_applying(in, a, p, a->result.why[0] ? a->result.why : "a sink asked for it again");
    return false;
}

static void on_sink_done(void *token, const kvl_sink_result_t *r)
{
    sink_call_t *call = token;
    agent_state_t *a = call->agent;
    kvl_ingest_t *in = a->in;
    if (r != NULL) {
        a->result.rows += r->rows;
        a->result.values += r->values;
        a->result.stale += r->stale;
        a->result.errors += r->errors;
        a->result.retry += r->retry;
        if (r->retry > 0) {
            a->retry_next |= 1u << call->sink;
            if (a->result.why[0] == '\0') {
                memcpy(a->result.why, r->why, sizeof(a->result.why));
                a->result.why[sizeof(a->result.why) - 1] = '\0';
            }
        }
    }
    if (a->sinks_left == 0) {
        KVL_LOG_ERROR("ingest", a->id, "a sink called done twice for one batch");
        abort();
    }
    if (--a->sinks_left > 0) {
        return; /* others still owe theirs (or the batch is still being handed over) */
    }
    round_done(in, a);
    ingest_submit_next(in, a);
    after_applied(in, a);
    ingest_maybe_free(in);
}

/* Gives the agent's first batch to every sink; a->sinks_left counts the `done`s owed, plus
 * one that the caller drops once every sink has it. */
static void hand_over(kvl_ingest_t *in, agent_state_t *a, pending_t *p)
{
    kvl_sink_defs_t defs = ingest_defs_view(p->defs);
    /* A retry goes only to the sinks that asked for it: the others have the batch. */
    uint32_t to = a->retry_sinks;
    kvl_sink_batch_t b = {.agent = a->id,
                          .site = p->defs->site,
                          .defs = &defs,
                          .batch = &p->msg.u.batch,
                          .replayed = p->replay,
                          .retry = to != 0,
                          .late = ingest_batch_late(in, a, &p->msg.u.batch)};
    a->writing = true;
    in->writing++;
    a->sinks_left = 1;
    a->retry_next = 0;
    a->result = (kvl_sink_result_t){0};
    if (to != 0) {
        in->stats.apply_retries++;
    }
    for (size_t i = 0; in->sinks != NULL && i < in->sinks->n; i++) {
        const kvl_sink_t *s = in->sinks->at[i].sink;
        if (s->on_batch == NULL || (to != 0 && (to & (1u << i)) == 0)) {
            continue;
        }
        a->sinks_left++;
        a->calls[i] = (sink_call_t){.agent = a, .sink = (uint32_t)i};
        int rc = s->on_batch(in->sinks->at[i].ctx, &b, on_sink_done, &a->calls[i]);
        if (rc != 0) {
            a->sinks_left--;
            a->result.errors++;
            KVL_LOG_ERROR("ingest", a->id, "batch %" PRIu64 ": the %s cannot take it: %s", p->seq,
                          s->name, kvl_strerror(rc));
        }
    }
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
                l->err = r < 0 ? -errno : KVL_EIO; /* short: a damaged journal */
                break;
            }
            got += (size_t)r;
        }
    }
    if (fd >= 0) {
        close(fd);
    }
}

/* A read of the journal that failed for a reason that can pass (not a damaged record). */
static bool read_can_pass(int rc)
{
    return rc == -EIO || rc == KVL_ENOMEM || rc == -ENOMEM || rc == -EMFILE || rc == -ENFILE ||
           rc == -EAGAIN || rc == -EINTR || rc == -EACCES || rc == -EPERM;
}

/* A spilled batch is back from the journal: decoded and checked against its own
 * connection's definitions, it goes to the sinks like any other; a read that failed for a
 * reason that can pass pauses the agent's applying, to read it again later. */
static void on_load_done(uv_work_t *w, int status)
{
    load_t *l = w->data;
    agent_state_t *a = l->agent;
    kvl_ingest_t *in = a->in;
    pending_t *p = a->q_head;
    a->writing = false;
    in->writing--;
    char err[256] = "";
    int l_err = l->err;
    int rc = status != 0 ? status : l->err;
    kvl_msg_t m = {0};
    if (rc == 0 && !in->freeing) {
        rc = kvl_wire_decode(l->buf, l->len, &m, err, sizeof(err));
        if (rc == 0 && m.type != KVL_MSG_BATCH) {
            rc = KVL_EPROTO;
            snprintf(err, sizeof(err), "not a batch");
        }
        uint64_t samples = 0;
        if (rc == 0) {
            rc = ingest_batch_check(p->defs, &m.u.batch, &samples, err, sizeof(err));
        }
    } else if (rc != 0) {
        snprintf(err, sizeof(err), "%s", kvl_strerror(rc));
    }
    free(l->buf);
    free(l);
    if (in->freeing) {
        kvl_msg_clear(&m);
        ingest_maybe_free(in);
        return;
    }
    if (rc != 0 && read_can_pass(status != 0 ? status : l_err)) {
        /* A disk that fails for now: read it back later, in its turn. */
        char why[400];
        snprintf(why, sizeof(why), "cannot read it back from the journal: %s", err);
        pause_applying(in, a, p, why);
    } else if (rc != 0) {
        /* Only a damaged journal can do this: the batch is lost for the sinks. */
        KVL_LOG_ERROR("ingest", a->id,
                      "batch %" PRIu64 ": cannot read it back from the journal: %s", p->seq, err);
        kvl_msg_clear(&m);
        in->stats.updates_failed++;
        queue_pop(in, a);
        release_segments(in, p);
        ingest_pending_free(p);
    } else {
        p->msg = m;
        p->decoded = true;
        in->stats.batches_read_back++;
    }
    ingest_submit_next(in, a);
    ingest_replay_maybe_done(in);
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

/* The agent's next batches go to the sinks once the journal has them on disk, one at a
 * time: the next when every sink is done with this one (at once when they all are before
 * on_batch returns). */
void ingest_submit_next(kvl_ingest_t *in, agent_state_t *a)
{
    bool applied = false;
    while (!a->writing && a->q_head != NULL && !in->freeing && a->retry_at_ms == 0 &&
           a->q_head->jseq <= kvl_journal_synced(in->journal)) {
        pending_t *p = a->q_head;
        if (!p->decoded) {
            load_spilled(in, a, p);
            break;
        }
        /* Each batch is applied once, in journal order. */
        KVL_ASSERT(p->jseq > a->applied_jseq);
        hand_over(in, a, p);
        if (--a->sinks_left > 0) {
            break; /* on_sink_done goes on */
        }
        if (!round_done(in, a)) {
            ingest_update_pause(in);
            ingest_replay_maybe_done(in);
            break; /* paused: the retry timer goes on */
        }
        applied = true;
    }
    if (applied) {
        after_applied(in, a);
    }
}
