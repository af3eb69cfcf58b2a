/*
 * outbox.h — what waits to be sent to the collectors: per lane (KVL_LANE_BULK,
 * KVL_LANE_EVENTS) an ordered store of encoded batch frames, each with its sequence number,
 * and per collector endpoint a reader with an acknowledged and a read position.
 *
 * With `spool: {dir: ...}` configured each lane is a disk spool (agent/spool.h) in its own
 * sub-folder of dir: `bulk/` (bounded by spool.max_size) and `events/` (bounded by 16 MiB:
 * events are few and small). The folders are created when missing. Without a spool the
 * lanes are in-memory queues bounded by max_queue batches each; they do not survive an agent
 * restart. Either way, when a bound is reached the oldest batches are dropped, counted per
 * reader and reported (log lines, kvl_outbox_stats).
 *
 * A record is deleted once every reader has acknowledged it. Reading is in sequence order
 * from the reader's position; kvl_outbox_rewind goes back to its first unacknowledged record
 * (after a reconnect). Sequence numbers continue across restarts: kvl_outbox_next_seq returns
 * max(the time-based number the uplink always used, the lane's last number + 1).
 *
 * `spool.lane_max_bytes`, when set, replaces both lanes' bounds (from 1024 bytes up), so
 * the integration tests can fill a spool in seconds; it is logged.
 *
 * Loop thread only; syncing to disk runs on the thread pool every spool.sync_interval.
 */
#ifndef KVL_OUTBOX_H
#define KVL_OUTBOX_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "ship_config.h"
#include "wire.h"

typedef struct kvl_outbox kvl_outbox_t;

#define KVL_OUTBOX_READER_NAME_MAX 64 /* the spool's KVL_SPOOL_READER_NAME_MAX */

typedef struct kvl_outbox_stats {
    uint64_t bytes;   /* bytes held (spool files, or frames in memory), both lanes */
    uint64_t waiting; /* batches not yet acknowledged by the reader furthest behind */
    uint64_t dropped; /* batches dropped by the bound before every reader acknowledged them */
    uint64_t events_waiting;
    uint64_t lost; /* batches the spool lost to damage (a lower bound), since the agent started */
} kvl_outbox_stats_t;

/* Opens the lanes with one reader per name (1 to 8 names, [A-Za-z0-9_.:-]). Returns 0 and
 * sets *out, or a negative code with a sentence in err. */
int kvl_outbox_open(uv_loop_t *loop, const kvl_ship_cfg_t *cfg, const char *const *readers,
                    size_t n_readers, kvl_outbox_t **out, char *err, size_t errlen);
/* Syncs and closes (once a sync in progress has finished). NULL-safe. */
void kvl_outbox_free(kvl_outbox_t *o);

/* True when the lanes live on disk. */
bool kvl_outbox_on_disk(const kvl_outbox_t *o);
/* The spool folder, or NULL in memory. */
const char *kvl_outbox_dir(const kvl_outbox_t *o);

/* The sequence number for the next batch of a lane. */
uint64_t kvl_outbox_next_seq(kvl_outbox_t *o, int lane);
/* Appends an encoded frame (copied), then tells the watcher. Returns 0 or a negative code
 * (logged by the spool). */
int kvl_outbox_append(kvl_outbox_t *o, int lane, uint64_t seq, const void *frame, size_t len);
/* Who is told, on the loop thread, right after each frame is appended (the uplink, which
 * sends it to every endpoint whose turn it is); fn NULL: nobody. One watcher at a time. */
typedef void (*kvl_outbox_notify_fn)(void *arg, int lane);
void kvl_outbox_watch(kvl_outbox_t *o, kvl_outbox_notify_fn fn, void *arg);
/* The next unacknowledged record at the reader's position: 1 with *seq and out filled, 0 when
 * the reader has read everything, or a negative code. */
int kvl_outbox_read(kvl_outbox_t *o, int lane, int reader, uint64_t *seq, kvl_buf_t *out);
/* Every record up to seq is acknowledged by the reader. Returns 0, or KVL_EINVAL (logged,
 * nothing acknowledged) for a number this agent cannot have made: above the lane's last
 * and above KVL_SEQ_IMPOSSIBLE or the clock + KVL_SEQ_AHEAD_DEFAULT_US. One above the last
 * but possible (the spool was removed and the clock is behind) is taken: later numbers go
 * above it. */
int kvl_outbox_ack(kvl_outbox_t *o, int lane, int reader, uint64_t seq);
/* The highest number the lane has handed out or will never hand out below (every batch of
 * it is numbered at most this; the next one above): what the uplink's Hello says. */
uint64_t kvl_outbox_last_seq(kvl_outbox_t *o, int lane);
/* Back to the reader's first unacknowledged record. */
void kvl_outbox_rewind(kvl_outbox_t *o, int lane, int reader);
/* Records the reader has not acknowledged. */
uint64_t kvl_outbox_waiting(const kvl_outbox_t *o, int lane, int reader);
/* Records dropped by the bound before the reader acknowledged them. */
uint64_t kvl_outbox_dropped(const kvl_outbox_t *o, int lane, int reader);
void kvl_outbox_stats(const kvl_outbox_t *o, kvl_outbox_stats_t *st);

#endif
