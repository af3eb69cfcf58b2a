/*
 * ingest_internal.h — what the files of the ingest room share (not for use outside it).
 *
 * The room's state (struct kvl_ingest, per connection conn_t, per agent agent_state_t,
 * the definitions of a connection defs_table_t, a batch on its way to the sinks
 * pending_t) and the functions its files call in one another, grouped by the file that
 * defines them. server.c has the design; every function runs on the loop's thread.
 */
#ifndef KVL_INGEST_INTERNAL_H
#define KVL_INGEST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "frame.h"
#include "ingest.h"
#include "journal.h"
#include "liveness.h"
#include "log.h"
#include "sink.h"
#include "stream.h"
#include "tls.h"
#include "wire.h"

#define QUEUE_HIGH 65536            /* stop reading an agent with this many batches waiting */
#define QUEUE_LOW 32768             /* resume at this */
#define MEM_AGENT_HIGH 64           /* batches of an agent kept decoded in memory, at most */
#define MEM_SAMPLES_HIGH (2u << 20) /* samples kept decoded in memory, all agents together */
#define BACKLOG_HIGH (64ull << 20)  /* journal bytes not yet on disk: stop reading anyone */
#define REFUSE_LOG_MS 10000         /* at most one line about max_connections this often */
#define RETRY_FIRST_MS 1000         /* a batch a sink wants again: first retry after this, */
#define RETRY_MAX_MS 30000          /* doubling up to this */
#define SEQ_LOG_MS 10000            /* at most one line about refused or odd seqs this often */
#define PLAUSIBLE_AHEAD_US (60ull * 1000000ull) /* see agent_state_t.plausible_seq */
#define LOG_LIMIT_MS 10000 /* lines a peer can repeat: a few per key this often */
#define LOG_LIMIT_BURST 3  /* lines per key per LOG_LIMIT_MS */
#define LOG_AGENT_BURST 10 /* lines about one agent's connections per LOG_LIMIT_MS */
#define LOG_KEYS 32        /* distinct keys limited on their own; more share one */
#define LOG_KEY_LEN 160

/* ----------------------------------------------------------------- types --------------- */

/* Ids to entries: open addressing with linear probing on a seeded hash of the id (ids
 * are whatever a peer sends, so neither their size nor their spread sizes anything);
 * id 0 marks an empty slot. Memory: 16 bytes per slot, at most twice the entries held
 * (after growing) plus the 3/4 fill bound. */
typedef struct id_slot {
    uint32_t id;
    uint32_t idx; /* series: the id's place in its block */
    void *p;      /* series: its def_block_t; families: its fam_rec_t */
} id_slot_t;

typedef struct id_map {
    id_slot_t *slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
    uint32_t seed;
} id_map_t;

typedef struct def_block def_block_t;

/* An agent's series definitions on one connection: memory proportional to what is held
 * (a block per definition as received, a family's expanded to one entry per metric; a
 * record per family), identical definitions sent again not copied, a changed one
 * replacing the old (freed once no id refers to it), bounded per agent by
 * max_series_per_agent and max_families_per_agent. */
typedef struct defs_table {
    int refs;       /* the agent's, and each queued batch's of this connection */
    char site[256]; /* the agent's site on this connection */
    size_t max_series, max_families;
    id_map_t series;           /* series id -> (block, index) */
    id_map_t families;         /* family id -> family record */
    def_block_t *first, *last; /* blocks in the order received, for the checkpoints */
    size_t bytes;              /* held by the table (blocks, families, maps) */
    char why[320];             /* why the last ingest_store_defs refused */
} defs_table_t;

typedef struct pending {
    struct pending *next;
    defs_table_t *defs; /* of the connection it came on (a reference): for the sinks */
    /* Decoded (msg holds it), or spilled: only its place in the journal is kept and it is
     * read back when its turn comes. */
    bool decoded;
    uint64_t data_off;
    size_t data_len;
    size_t samples; /* values in it */
    bool counted;   /* in the agent's q_mem and the ingest's mem_samples */
    uint64_t seq;
    uint64_t jseq;         /* its BATCH record */
    uint64_t seg;          /* the journal segment it holds */
    uint64_t journaled_ms; /* the loop's clock when journaled (0: replayed), for the lag */
    uint32_t lane;
    bool replay;
    bool events_delivered; /* its events went to the sinks already (the events lane) */
    bool marked;           /* the journal records that (mark_seg is held) */
    uint64_t mark_seg;
    kvl_msg_t msg;
} pending_t;

/* The token a sink's `done` gets: which agent, which sink (apply.c). */
typedef struct sink_call {
    struct agent_state *agent;
    uint32_t sink; /* index in the registry */
} sink_call_t;

typedef struct agent_state {
    struct agent_state *next;
    struct kvl_ingest *in;
    char *id;
    char site[256];
    char version[32];                  /* from its last Hello in this run */
    uint64_t journaled_seq[KVL_LANES]; /* highest seq in the journal (maybe not on disk) */
    uint64_t acked_seq[KVL_LANES];     /* highest seq on disk: acknowledged */
    uint64_t ack_sent[KVL_LANES];      /* highest Ack sent on the current connection */
    uint64_t applied_jseq;             /* its batches up to this jseq are in the archives */
    uint64_t durable_jseq; /* of those, up to this one recorded applied in the journal (below
                              applied_jseq while a sink's writes are not durable: sink.h) */
    defs_table_t *defs;    /* of its current (or last) connection */
    pending_t *q_head, *q_tail;
    size_t q_len;
    size_t q_mem;      /* of those, kept decoded in memory */
    bool writing;      /* a batch with the sinks (or a read-back from the journal) in flight */
    size_t sinks_left; /* sinks (+1 while handing it over) that owe `done` */
    kvl_sink_result_t result; /* their results, added up */
    bool touched;             /* on the list of agents the current on_synced acknowledges */
    struct agent_state *next_touched;
    struct conn *conn; /* the current connection, if any */
    /* Applying paused by a failure that can pass (sink.h, apply.c): the first batch stays
     * first and is handed again at retry_at_ms to the sinks in retry_sinks. */
    sink_call_t calls[KVL_SINKS_MAX]; /* the tokens of the sinks' `done`s */
    uint32_t retry_next;              /* sinks that asked for the batch again in this round */
    uint32_t retry_sinks;             /* sinks the next round goes to (0: all) */
    uint64_t retry_at_ms;             /* 0: no retry waiting (loop time) */
    uint32_t retry_delay_ms;          /* the delay just used */
    uint64_t paused_since_ms;         /* 0: applying is not paused */
    uint64_t paused_tries;            /* rounds that failed during this pause */
    /* Per lane, the highest journaled seq that was not ahead of this collector's clock by
     * more than PLAUSIBLE_AHEAD_US when it came (at start: when replayed): where a rewind
     * goes when the agent says it never made the numbers above (protocol.c). */
    uint64_t plausible_seq[KVL_LANES];
    kvl_log_limit_t log_limit; /* lines about its connections (conn.c ingest_agent_log_limit) */
    uint64_t idle_since_ms;    /* loop time the sweep first found it without connection and
                                  queue (0: not idle); its definitions go after
                                  agent_state_ttl */
    kvl_live_t live;           /* heartbeats, loss and return (watch.c, liveness.h) */
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
    kvl_stream_t *stream; /* TCP, TLS unless insecure, frames; NULL once closed */
    uv_timer_t timer;     /* handshake and hello, then idle */
    kvl_ingest_t *in;
    char peer[64];
    agent_state_t *agent;
    uint64_t last_seq[KVL_LANES]; /* highest seq received on this connection, per lane */
    uint64_t last_frame_ms;
    bool reading;
    bool closing;
    int open_handles; /* the stream and the timer */
    struct conn *prev_conn, *next_conn;
    uint64_t welcome_seq[KVL_LANES]; /* the positions its Welcome told the agent */
    bool in_handshake;               /* on the handshake list: accepted, no Hello accepted yet */
    bool authenticated;              /* its Hello accepted: counted in n_agent_conns */
    struct conn *prev_hs, *next_hs;
    uint8_t addr_key[9]; /* the peer's address for max_handshakes_per_address (IPv6: /64) */
} conn_t;

/* Lines a peer can make the collector repeat (conn.c: refusals, closes, TLS failures) before
 * its Hello, each limited by its key (what it says) to LOG_LIMIT_BURST lines every
 * LOG_LIMIT_MS; keys beyond LOG_KEYS at once share `other`. (Lines about an agent past its
 * Hello have its own limiter, agent_state_t's log_limit.) */
typedef struct ingest_log_key {
    char key[LOG_KEY_LEN];
    kvl_log_limit_t limit;
} ingest_log_key_t;

typedef struct ingest_log_limits {
    ingest_log_key_t keys[LOG_KEYS];
    kvl_log_limit_t other;
} ingest_log_limits_t;

struct kvl_ingest {
    uv_loop_t *loop;
    const kvl_collector_cfg_t *cfg;
    const kvl_sinks_t *sinks;
    kvl_journal_t *journal;
    kvl_tls_ctx_t *tls_ctx; /* NULL when insecure */
    uv_tcp_t server;
    conn_t *conns;
    size_t n_conns;
    agent_state_t *agents;
    ack_wait_t *acks_head, *acks_tail;
    size_t live;          /* connections allocated, including those still closing */
    size_t writing;       /* batches with the sinks and read-backs in flight */
    uint64_t mem_samples; /* values in the batches kept decoded */
    bool replaying;       /* applying the journal's backlog: no agent accepted yet */
    bool accept_waiting;
    bool paused; /* nobody is read (journal too big or too far behind the disk) */
    bool freeing;
    bool server_closed;
    bool journal_closed;
    kvl_ingest_stats_t stats;
    uv_timer_t retry_timer;  /* the earliest paused agent's retry (apply.c) */
    bool retry_timer_closed; /* closed by kvl_ingest_free */
    size_t apply_paused;     /* agents whose applying is paused */
    kvl_log_limit_t seq_log; /* refused sequence numbers (protocol.c, replay.c) */
    kvl_log_limit_t dup_log; /* duplicates an agent had no reason to send (protocol.c) */
    /* the handshake slots (conn.c): connections not past their Hello, oldest first */
    conn_t *hs_head, *hs_tail;
    size_t n_handshakes;
    size_t n_agent_conns; /* connections past their Hello: bounded by max_connections */
    ingest_log_limits_t log;
    uv_timer_t sweep;        /* releases the definitions of agents gone (agents.c) */
    bool sweep_open;         /* the timer is initialised and not yet closed */
    kvl_buf_t times_buf;     /* a batch re-encoded without the groups its times refused */
    kvl_live_cfg_t live_cfg; /* lost_after, idle_timeout (watch.c) */
    uv_timer_t watch;        /* finds the agents lost (watch.c) */
    bool watch_open;         /* the timer is initialised and not yet closed */
    bool watch_dirty;        /* the agents' state file is behind */
    bool watch_busy;         /* a write of it in flight */
    bool watch_after_replay; /* the replay was under way: agents expected get their grace */
    /* Batches applied whose APPLIED record waits for a sink's durability point (sink.h,
     * durable_after; apply.c), oldest first. */
    struct deferred_applied *deferred_head, *deferred_tail;
    size_t n_deferred;
};

/* agents.c */
agent_state_t *ingest_agent_get(kvl_ingest_t *in, const char *id, size_t len);
const char *ingest_who(const conn_t *c);
defs_table_t *ingest_defs_new(const kvl_ingest_t *in, const char *site);
void ingest_defs_free(defs_table_t *t);
int ingest_store_defs(defs_table_t *t, const kvl_family_t *f, size_t nf, const kvl_series_def_t *d,
                      size_t nd, const char **why);
const kvl_series_def_t *ingest_defs_find(const defs_table_t *t, uint32_t id);
size_t ingest_defs_bytes(const defs_table_t *t);
size_t ingest_defs_series(const defs_table_t *t);
size_t ingest_defs_families(const defs_table_t *t);
int ingest_batch_filter_times(kvl_ingest_t *in, agent_state_t *a, kvl_batch_t *b,
                              const uint8_t **payload, size_t *len);
void ingest_sweep_start(kvl_ingest_t *in);
void ingest_sweep_stop(kvl_ingest_t *in);
void ingest_sweep(kvl_ingest_t *in);
int ingest_defs_encode(const defs_table_t *t, kvl_buf_t *out);
int ingest_batch_check(defs_table_t *t, const kvl_batch_t *b, uint64_t *samples, char *err,
                       size_t errlen);
kvl_sink_defs_t ingest_defs_view(const defs_table_t *t);
void ingest_log_event(const char *agent, const char *site, const kvl_event_t *e, bool late);
void ingest_queue_push(agent_state_t *a, pending_t *p);
bool ingest_keep_in_memory(const agent_state_t *a, size_t samples);
void ingest_spill(pending_t *p, uint64_t data_off, size_t data_len);
void ingest_pending_free(pending_t *p);

/* apply.c */
int ingest_journal_put(kvl_ingest_t *in, const agent_state_t *a, uint8_t type, uint64_t seq,
                       uint32_t lane, const void *data, size_t len, bool hold, uint64_t *seg,
                       uint64_t *data_off);
void ingest_on_journal_roll(void *ctx);
void ingest_send_ack(conn_t *c, uint32_t lane, uint64_t seq);
int ingest_ack_after(kvl_ingest_t *in, agent_state_t *a, uint32_t lane, uint64_t seq,
                     uint64_t jseq);
void ingest_on_journal_synced(void *ctx, uint64_t synced);
void ingest_submit_next(kvl_ingest_t *in, agent_state_t *a);
void ingest_deliver_events(kvl_ingest_t *in, agent_state_t *a, pending_t *p);
void ingest_mark_delivered(kvl_ingest_t *in, agent_state_t *a, pending_t *p);
void ingest_deferred_free(kvl_ingest_t *in);
void ingest_on_retry_timer(uv_timer_t *t);

/* conn.c */
kvl_log_limit_t *ingest_log_limit(kvl_ingest_t *in, const char *key);
kvl_log_limit_t *ingest_agent_log_limit(agent_state_t *a);
const char *ingest_check_identity(conn_t *c, const char *agent_id, char *why, size_t len);
int ingest_send_msg(conn_t *c, const kvl_msg_t *m);
void ingest_refuse(conn_t *c, const char *reason);
void ingest_conn_update_reading(conn_t *c);
void ingest_update_pause(kvl_ingest_t *in);
void ingest_conn_close(conn_t *c, const char *why);
void ingest_on_timer(uv_timer_t *t);
void ingest_accept_one(kvl_ingest_t *in);
void ingest_on_connection(uv_stream_t *server, int status);

/* server.c */
void ingest_maybe_free(kvl_ingest_t *in);

/* protocol.c */
void ingest_handle_msg(conn_t *c, kvl_msg_t *m, const uint8_t *payload, size_t len);

/* A limiter of the ingest's (calloc'd), its interval set at first use. */
static inline kvl_log_limit_t *ingest_limit(kvl_log_limit_t *l)
{
    if (l->interval_ms == 0) {
        l->interval_ms = SEQ_LOG_MS;
    }
    return l;
}

/* watch.c */
int ingest_watch_load(kvl_ingest_t *in);
void ingest_watch_start(kvl_ingest_t *in);
void ingest_watch_stop(kvl_ingest_t *in);
void ingest_watch_hello(kvl_ingest_t *in, agent_state_t *a, uint32_t heartbeat_ms);
void ingest_watch_frame(conn_t *c);
void ingest_watch_closed(conn_t *c, const char *why);
void ingest_watch_idle(kvl_ingest_t *in, agent_state_t *a);
bool ingest_time_late(const kvl_ingest_t *in, const agent_state_t *a, int64_t time_ms);
bool ingest_event_late(const kvl_ingest_t *in, const agent_state_t *a, const kvl_event_t *e);
bool ingest_batch_late(const kvl_ingest_t *in, const agent_state_t *a, const kvl_batch_t *b);

/* replay.c */
void ingest_replay_maybe_done(kvl_ingest_t *in);
int ingest_replay_start(kvl_ingest_t *in, char *err, size_t errlen);

#endif
