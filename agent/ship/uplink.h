/*
 * uplink.h — the agent's connections to its collectors.
 *
 * Every batch the batcher makes is first appended to the outbox (outbox.h: the disk spool
 * when one is configured, else an in-memory queue), on its lane: bulk metrics or events; the
 * outbox tells the uplink (kvl_outbox_watch), which sends it. Each collector endpoint connects
 * (resolving the name off the loop), says Hello, sends every series definition, then reads its
 * lanes from its position in the outbox and sends them in sequence order, events ahead of bulk, as
 * they are appended. Acknowledged batches leave the outbox once every endpoint that must get them
 * has acknowledged them; after a lost connection (backoff from 1 s up to reconnect_max) or an agent
 * restart, each endpoint starts again from what it acknowledged. With `mode: failover` one endpoint
 * is connected at a time; with `mode: dual` all of them, each on its own.
 */
#ifndef KVL_UPLINK_H
#define KVL_UPLINK_H

#include <stdint.h>
#include <uv.h>

#include "outbox.h"
#include "registry.h"
#include "ship_config.h"

typedef struct kvl_uplink kvl_uplink_t;

/* The outbox readers the uplink uses for cfg's collectors (one shared by failover, one per
 * endpoint in dual mode): fills names and readers (KVL_MAX_COLLECTORS room), returns how
 * many. Open the outbox with them. */
typedef struct kvl_uplink_reader_names {
    char name[KVL_MAX_COLLECTORS][KVL_OUTBOX_READER_NAME_MAX + 1];
} kvl_uplink_reader_names_t;
size_t kvl_uplink_readers(const kvl_ship_cfg_t *cfg, kvl_uplink_reader_names_t *names,
                          const char **readers);

/* What the uplink works with; everything must outlive it. */
typedef struct kvl_uplink_opts {
    const kvl_ship_cfg_t *cfg;
    const char *agent_id, *site; /* said in the Hello */
    kvl_outbox_t *outbox;        /* opened with kvl_uplink_readers' names */
    kvl_registry_t *registry;    /* its definitions go out at each connection's start */
} kvl_uplink_opts_t;

/* Sends what the outbox holds and what is appended to it later. Returns 0 and sets *out, or a
 * negative code with a sentence in err. */
int kvl_uplink_new(uv_loop_t *loop, const kvl_uplink_opts_t *opts, kvl_uplink_t **out, char *err,
                   size_t errlen);
/* Starts connecting. */
void kvl_uplink_start(kvl_uplink_t *u);
/* What a stopping agent waits for: without a spool, the batches no endpoint has
 * acknowledged yet (they would be lost); with one, the batches sent and not yet
 * acknowledged (the rest stays on disk for the next run). */
size_t kvl_uplink_pending(const kvl_uplink_t *u);
/* Closes the connections and handles; frees once closes complete. NULL-safe. The outbox
 * may be freed right after (the uplink no longer touches it). */
void kvl_uplink_free(kvl_uplink_t *u);

#endif
