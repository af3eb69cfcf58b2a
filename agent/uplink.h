/*
 * uplink.h — the agent's connection to its collector.
 *
 * Connects (resolving the name off the loop), says Hello, sends every series definition,
 * then every batch not yet acknowledged, in sequence order, and afterwards each new batch
 * as the batcher hands it over. Acknowledged batches are dropped; the rest survive a lost
 * connection and are sent again after reconnecting (backoff from 1 s up to a maximum).
 * When more than max_queue batches wait, the oldest is dropped, counted and logged.
 */
#ifndef KVL_UPLINK_H
#define KVL_UPLINK_H

#include <stdint.h>
#include <uv.h>

#include "agent_config.h"
#include "buf.h"

typedef struct kvl_uplink kvl_uplink_t;
struct kvl_batcher;

kvl_uplink_t *kvl_uplink_new(uv_loop_t *loop, const kvl_agent_cfg_t *cfg);
/* The batcher whose definitions are sent at each (re)connect. */
void kvl_uplink_set_batcher(kvl_uplink_t *u, struct kvl_batcher *b);
/* Starts connecting. */
void kvl_uplink_start(kvl_uplink_t *u);
/* Takes a new sequence number for a batch about to be encoded. */
uint64_t kvl_uplink_next_seq(kvl_uplink_t *u);
/* Takes ownership of an encoded batch frame (its bytes move out of `frame`). */
void kvl_uplink_push(kvl_uplink_t *u, uint64_t seq, kvl_buf_t *frame);
/* Batches waiting for an acknowledgement. */
size_t kvl_uplink_pending(const kvl_uplink_t *u);
/* Closes the connection and handles; frees once closes complete. NULL-safe. */
void kvl_uplink_free(kvl_uplink_t *u);

#endif
