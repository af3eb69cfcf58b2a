/*
 * ingest.h — the collector's side of the agent protocol.
 *
 * Listens for agents, checks each one's Hello, keeps its series definitions for the
 * connection, writes every frame that matters (definitions, batches) to the journal
 * (journal.h), acknowledges a batch once its journal record is on disk (fdatasync, group
 * commit), and then hands it to the sinks (sink.h: the archives, through the store, are
 * the first), one batch of an agent at a time, in order. A batch whose sequence number is already
 * journaled is acknowledged again and not written twice, also across collector restarts (the
 * journal keeps the positions). At start the journal is replayed: batches journaled but not yet in
 * the archives are written before any agent is accepted. When an agent's batches pile up behind the
 * archives, or the journal grows past journal_max_bytes, connections stop being read (TCP
 * backpressure). A malformed, oversized or out-of-place frame closes that one connection with a log
 * line; so do the handshake and idle timeouts; connections beyond max_connections are closed at
 * once.
 *
 * A sink's failure that can pass (sink.h: the archives' disk read-only or full) leaves the
 * batch in the journal and first in its agent's queue, retried later, in order; other
 * agents go on.
 * line; so do the handshake and idle timeouts. Connections still in their handshake (TLS, then
 * the Hello) are bounded apart from connected agents (max_handshakes, and per source address):
 * when full, the oldest of them that has made the least progress is closed to make room, so a
 * flood of connections never locks an agent out; agents beyond max_connections are refused at
 * their Hello. Lines a peer can make repeat are rate-limited, with counts.
 *
 * An agent that misses lost_after heartbeats (the interval its Hello says), or whose
 * connection closed and that is not back within as long, is declared lost: a synthetic
 * agent_lost event to the sinks (sink.h), its connection closed; its next Hello gives
 * agent_back; its events stamped inside the lost period, or older than late_after, are
 * handed over marked late (watch.c).
 */
#ifndef KVL_INGEST_H
#define KVL_INGEST_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "collector_config.h"
#include "sink.h"

typedef struct kvl_ingest kvl_ingest_t;

/* Binds, listens, opens the journal and hands what it holds unapplied to the sinks
 * (sink.h: registered before, kept unchanged, outliving the ingest) before any agent is
 * accepted. Returns 0 and sets *out, or a negative code with a sentence in err (then run
 * the loop: what was opened closes there). */
int kvl_ingest_new(uv_loop_t *loop, const kvl_collector_cfg_t *cfg, const kvl_sinks_t *sinks,
                   kvl_ingest_t **out, char *err, size_t errlen);
/* The apply lag histogram's bucket bounds, in seconds (kvl_ingest_stats_t.apply_lag_le). */
#define KVL_APPLY_LAG_BUCKETS 12
extern const double kvl_apply_lag_buckets_s[KVL_APPLY_LAG_BUCKETS];
/* The sample age histogram's bucket bounds, in seconds (kvl_ingest_stats_t.sample_age_le). */
#define KVL_SAMPLE_AGE_BUCKETS 14
extern const double kvl_sample_age_buckets_s[KVL_SAMPLE_AGE_BUCKETS];

/* A sink's durability point `point` was reached (sink.h, durable_after): the batches
 * waiting for it, or an earlier one, are recorded applied in the journal. On the loop. */
void kvl_ingest_durable(kvl_ingest_t *in, uint64_t point);
typedef struct kvl_ingest_stats {
    uint64_t connections;         /* accepted in all */
    uint64_t connections_refused; /* Hello refused: max_connections agents connected */
    uint64_t idle_closed;         /* closed by idle_timeout */
    uint64_t batches_journaled;   /* batches written to the journal (acknowledged once synced) */
    uint64_t samples_journaled;   /* values in them */
    uint64_t batches_written;     /* batches written into the archives (replayed ones too) */
    uint64_t batches_duplicate;   /* batches acknowledged again without writing */
    uint64_t batches_spilled;     /* not kept in memory (archives lagging): read back later */
    uint64_t batches_read_back;   /* spilled batches read back from the journal */
    uint64_t samples_written;     /* values in written archive updates */
    uint64_t updates_stale;       /* updates the archives refused as out of order */
    uint64_t updates_failed;      /* updates that failed for good (logged; the batch applied) */
    uint64_t protocol_errors;     /* connections closed for an error (bad frame, refusal, limit) */
    uint64_t journal_records;     /* records appended */
    uint64_t journal_commits;     /* group commits that reached the disk */
    uint64_t journal_pauses;      /* times reading stopped for the journal's size */
    uint64_t journal_bytes;       /* size of the journal now */
    uint64_t journal_backlog_bytes; /* appended, not yet on disk */
    uint64_t replay_queued;         /* batches found in the journal at start, not yet applied */
    uint64_t replayed_batches;      /* of those, written */
    uint64_t replay_stale;          /* updates of replayed batches the archives already had */
    uint64_t replay_errors;         /* journal records that could not be replayed */
    uint64_t apply_pauses;          /* times an agent's applying paused (failure that can pass) */
    uint64_t apply_retries;         /* batches handed to a sink again after such a failure */
    uint64_t updates_retried;       /* updates that failed for a reason that can pass, per try */
    uint64_t retry_stale;           /* updates of retried batches written at an earlier try */
    uint64_t apply_paused_agents;   /* agents whose applying is paused now */
    uint64_t batches_refused_seq;   /* numbered beyond max_seq_ahead: refused, not journaled */
    uint64_t duplicates_unexpected; /* of batches_duplicate, not a resend after a reconnect */
    uint64_t seq_rewinds;           /* positions above an agent's own highest number, undone */
    uint64_t handshakes_dropped;    /* closed before their Hello to make room: max_handshakes */
    uint64_t handshakes_dropped_address; /* the same, max_handshakes_per_address */
    uint64_t handshake_timeouts;         /* closed by handshake_timeout */
    uint64_t samples_future;             /* refused: timestamped beyond future_tolerance ahead */
    uint64_t samples_too_old;            /* refused: older than max_sample_age */
    uint64_t agents_lost;                /* agent_lost events raised (lost_after) */
    uint64_t agents_back;                /* agent_back events raised */
    uint64_t events_late;                /* events handed over marked late */
    uint64_t journal_segments;           /* segment files of the journal now */
    uint64_t connections_open;           /* agent connections open now (any stage) */
    uint64_t agents_connected;           /* of those, past their Hello */
    /* apply lag: from a batch's journaling (its acknowledgement follows at the next sync)
     * to its application by every sink; replayed batches are not counted */
    uint64_t apply_lag_last_ms; /* the last applied batch's */
    uint64_t apply_lag_sum_ms;  /* summed over apply_lag_count batches */
    uint64_t apply_lag_count;
    /* of those, applied within kvl_apply_lag_buckets_s[i] (cumulative, as Prometheus has a
     * histogram; the last bucket, +Inf, is apply_lag_count) */
    uint64_t apply_lag_le[KVL_APPLY_LAG_BUCKETS];
    /* sample age: from each group's sample time (the agent's clock) to the application of its
     * batch by every sink, per group of samples (one instant of one device or target); what
     * the agent took to send it is in it, replayed batches are not counted */
    uint64_t sample_age_sum_ms;
    uint64_t sample_age_count;
    uint64_t sample_age_le[KVL_SAMPLE_AGE_BUCKETS]; /* cumulative, as apply_lag_le */
} kvl_ingest_stats_t;

void kvl_ingest_stats(const kvl_ingest_t *in, kvl_ingest_stats_t *out);
/* The TCP port actually listened on (useful with port 0). */
int kvl_ingest_port(const kvl_ingest_t *in);

/* An agent as the ingest knows it now (kvl_ingest_agents), valid for the call only. */
typedef struct kvl_ingest_agent {
    const char *id, *site;
    const char *version;   /* from its last Hello in this run, "" when none came */
    bool connected;        /* a connection past its Hello */
    bool lost;             /* declared lost (lost_after), also across a restart */
    int64_t lost_since_ms; /* when lost: when it was declared (wall clock) */
    int64_t last_seen_ms;  /* its last frame (wall clock), 0: none in this run */
} kvl_ingest_agent_t;

/* Calls fn for every agent the ingest holds state for (the board's /api/v1/agents). */
void kvl_ingest_agents(const kvl_ingest_t *in, void (*fn)(void *ctx, const kvl_ingest_agent_t *a),
                       void *ctx);

/* Stops listening and closes every connection; batches being written finish first.
 * Frees once everything has closed (run the loop). NULL-safe. */
void kvl_ingest_free(kvl_ingest_t *in);

#endif
