/*
 * uplink.h — the agent's connections to its collectors.
 *
 * Every batch the batcher hands over is first appended to the outbox (agent/outbox.h: the
 * disk spool when one is configured, else an in-memory queue), on its lane: bulk metrics or
 * events. Each collector endpoint connects (resolving the name off the loop), says Hello,
 * sends every series definition, then reads its lanes from its position in the outbox and
 * sends them in sequence order, events ahead of bulk, as they are appended. Acknowledged
 * batches leave the outbox once every endpoint that must get them has acknowledged them;
 * after a lost connection (backoff from 1 s up to reconnect_max) or an agent restart, each
 * endpoint starts again from what it acknowledged. With `mode: failover` one endpoint is
 * connected at a time; with `mode: dual` all of them, each on its own.
 */
#ifndef KVL_UPLINK_H
#define KVL_UPLINK_H

#include <stdint.h>
#include <uv.h>

#include "agent_config.h"
#include "buf.h"
#include "outbox.h"

typedef struct kvl_uplink kvl_uplink_t;
struct kvl_batcher;

/* Opens the outbox too (the spool, when configured). NULL after logging why. */
kvl_uplink_t *kvl_uplink_new(uv_loop_t *loop, const kvl_agent_cfg_t *cfg);
/* The batcher whose definitions are sent at each (re)connect. */
void kvl_uplink_set_batcher(kvl_uplink_t *u, struct kvl_batcher *b);
/* Starts connecting. */
void kvl_uplink_start(kvl_uplink_t *u);
/* Takes a new sequence number of a lane (KVL_LANE_*) for a batch about to be encoded. */
uint64_t kvl_uplink_next_seq(kvl_uplink_t *u, int lane);
/* Takes an encoded batch frame of a lane (its bytes are freed and `frame` emptied): appended
 * to the outbox, then sent to every connected endpoint whose turn it is. */
void kvl_uplink_push(kvl_uplink_t *u, int lane, uint64_t seq, kvl_buf_t *frame);
/* What a stopping agent waits for: without a spool, the batches no endpoint has
 * acknowledged yet (they would be lost); with one, the batches sent and not yet
 * acknowledged (the rest stays on disk for the next run). */
size_t kvl_uplink_pending(const kvl_uplink_t *u);
/* The outbox's counters (bytes, batches waiting, dropped). */
void kvl_uplink_stats(const kvl_uplink_t *u, kvl_outbox_stats_t *st);
/* Closes the connections and handles; frees once closes complete. NULL-safe. */
void kvl_uplink_free(kvl_uplink_t *u);

#endif
