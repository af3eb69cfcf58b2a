/*
 * ingest.h — the collector's side of the agent protocol.
 *
 * Listens for agents, checks each one's Hello, keeps its series definitions for the
 * connection, turns every batch into archive rows for the store, and acknowledges a batch
 * once the store has written it. Batches of one agent are written one at a time, in order;
 * a batch whose sequence number is already acknowledged is acknowledged again and not
 * written twice. When an agent's batches pile up behind the store, its connection stops
 * being read (TCP backpressure). A malformed, oversized or out-of-place frame closes that
 * one connection with a log line.
 */
#ifndef KVL_INGEST_H
#define KVL_INGEST_H

#include <stdint.h>
#include <uv.h>

#include "collector_config.h"
#include "store.h"

typedef struct kvl_ingest kvl_ingest_t;

/* Binds and listens. Returns NULL and logs why on failure. */
kvl_ingest_t *kvl_ingest_new(uv_loop_t *loop, const kvl_collector_cfg_t *cfg, kvl_store_t *store);
typedef struct kvl_ingest_stats {
    uint64_t connections;       /* accepted in all */
    uint64_t batches_written;   /* batches written and acknowledged */
    uint64_t batches_duplicate; /* batches acknowledged again without writing */
    uint64_t samples_written;   /* values in written archive updates */
    uint64_t updates_stale;     /* updates the archives refused as out of order */
    uint64_t protocol_errors;   /* connections closed for an error (bad frame, refusal, limit) */
} kvl_ingest_stats_t;

void kvl_ingest_stats(const kvl_ingest_t *in, kvl_ingest_stats_t *out);
/* The TCP port actually listened on (useful with port 0). */
int kvl_ingest_port(const kvl_ingest_t *in);

/* Stops listening and closes every connection; batches being written finish first.
 * Frees once everything has closed (run the loop). NULL-safe. */
void kvl_ingest_free(kvl_ingest_t *in);

#endif
