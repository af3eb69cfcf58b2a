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
    uint64_t jseq; /* its BATCH record */
    uint64_t seg;  /* the journal segment it holds */
    uint32_t lane;
    bool replay;
    bool events_delivered; /* its events went to the sinks already (the events lane) */
    bool marked;           /* the journal records that (mark_seg is held) */
    uint64_t mark_seg;
    kvl_msg_t msg;
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
    size_t q_mem;      /* of those, kept decoded in memory */
    bool writing;      /* a batch with the sinks (or a read-back from the journal) in flight */
    size_t sinks_left; /* sinks (+1 while handing it over) that owe `done` */
    kvl_sink_result_t result; /* their results, added up */
    bool touched;             /* on the list of agents the current on_synced acknowledges */
    struct agent_state *next_touched;
    struct conn *conn;      /* the current connection, if any */
    uint64_t idle_since_ms; /* loop time the sweep first found it without connection and
                               queue (0: not idle); its definitions go after
                               agent_state_ttl */
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
} conn_t;

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
    uint64_t refused_since_log;
    uint64_t refused_log_ms;
    kvl_ingest_stats_t stats;
    uv_timer_t sweep;    /* releases the definitions of agents gone (agents.c) */
    bool sweep_open;     /* the timer is initialised and not yet closed */
    kvl_buf_t times_buf; /* a batch re-encoded without the groups its times refused */
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
void ingest_log_events(const char *agent, const char *site, const kvl_batch_t *b);
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

/* conn.c */
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

/* replay.c */
void ingest_replay_maybe_done(kvl_ingest_t *in);
int ingest_replay_start(kvl_ingest_t *in, char *err, size_t errlen);

#endif
