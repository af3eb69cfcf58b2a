/*
 * ship_config.h — the shipping part of agent.yaml: collectors, batching, the disk spool and
 * TLS, as the ship room's own struct (kvl_ship_cfg_t) and field table.
 *
 * These keys stand at the top level of agent.yaml; agent/agent_config.c takes their rows
 * from kvl_ship_cfg_field (so it rejects unknown keys with the full list, in its own order),
 * then calls kvl_ship_cfg_finish once the top level is read.
 *
 * Configuration reference (top-level keys)
 * ----------------------------------------
 *   collector: 127.0.0.1:5140     # host:port of the collector (this or `collectors:`)
 *   collectors: [noc-col-1:5140, noc-col-2:5140]   # up to 8 collector endpoints, in order
 *   mode: failover                # failover: send to one collector at a time, the first
 *                                 #   of the list that answers; when it fails, the next
 *                                 #   one (the list starts over from the first after the
 *                                 #   last), and the agent stays with whichever works until
 *                                 #   it fails (no going back while it works: no flapping).
 *                                 #   The spool keeps one position, so what one collector
 *                                 #   acknowledged is not sent to the next.
 *                                 # dual: send everything to every collector at once; each
 *                                 #   has its own position in the spool and acknowledges on
 *                                 #   its own; a batch is kept until all acknowledged it
 *                                 #   (within the bound). TLS settings are shared.
 *   flush_interval: 1s            # how long samples wait to be batched
 *   max_queue: 100000             # without a spool: unacknowledged batches kept in memory
 *                                 #   (per lane; lost when the agent stops)
 *   reconnect_max: 30s            # longest wait between connection attempts
 *
 *   spool:                        # batches on disk until the collectors acknowledge them;
 *                                 #   without this section they wait in memory (max_queue)
 *     dir: /var/lib/kaaval/spool  # must exist, writable by the agent (not created); holds
 *                                 #   bulk/ and events/ (one spool per lane, created) and
 *                                 #   series.defs (the series registry, so ids and replayed
 *                                 #   batches stay valid across agent restarts)
 *     max_size: 2GiB              # bound of the bulk lane's files (bytes, KiB, MiB, GiB or
 *                                 #   TiB; at least 16MiB; the events lane has 16 MiB more);
 *                                 #   when full the oldest batches are dropped, counted and
 *                                 #   logged. 2 GiB holds weeks of a block HQ agent (~5,000
 *                                 #   series at 60 s, ~100 MB a day).
 *     lane_max_bytes: 1048576     # optional: the bound of each lane (bulk and events) in
 *                                 #   bytes, at least 1024, instead of max_size and the
 *                                 #   events lane's 16 MiB; for tests (a spool that fills in
 *                                 #   seconds) and very small disks. Below ~1 MiB every batch
 *                                 #   has a segment of its own, so drops go one at a time
 *     sync_interval: 1s           # how often written batches are forced to disk: a power
 *                                 #   cut loses at most this much; 0: every batch (slow)
 *   tls:                          # mutual TLS to the collector (or `insecure: true`,
 *     ca: /etc/kaaval/ca.crt      #   plain TCP, logged as a warning; one is required)
 *     cert: /etc/kaaval/blk-tvm-north-01.crt   # subject CN must equal `id`
 *     key: /etc/kaaval/blk-tvm-north-01.key    # packaging/kaaval-certs.sh makes these
 *     server_name: noc-col-1      # optional: the name every collector's certificate must
 *                                 #   carry (default: the host or IP of each endpoint in
 *                                 #   `collector:`/`collectors:`; leave it out when the
 *                                 #   collectors' certificates name different hosts)
 */
#ifndef KVL_SHIP_CONFIG_H
#define KVL_SHIP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "tls_config.h"

/* The disk spool (spool.h). */
typedef struct kvl_spool_cfg {
    char *dir;
    int64_t max_bytes;
    int64_t sync_interval_ms;
    int64_t lane_max_bytes; /* 0: max_bytes for bulk, 16 MiB for events; else both lanes */
} kvl_spool_cfg_t;

#define KVL_MAX_COLLECTORS 8

/* A collector endpoint. */
typedef struct kvl_endpoint {
    char *addr; /* "host:port" as written */
    char host[256];
    uint16_t port;
} kvl_endpoint_t;

typedef enum {
    KVL_COLLECTORS_FAILOVER = 0, /* one at a time, the first reachable in list order */
    KVL_COLLECTORS_DUAL = 1,     /* all at once, each acknowledging on its own */
} kvl_collector_mode_t;

typedef struct kvl_ship_cfg {
    char *collector; /* the first endpoint's "host:port" as written */
    char collector_host[256];
    uint16_t collector_port;
    kvl_endpoint_t collectors[KVL_MAX_COLLECTORS]; /* `collectors:`, or `collector:` alone */
    size_t n_collectors;
    int collector_mode; /* kvl_collector_mode_t */
    int64_t flush_interval_ms;
    int64_t max_queue;
    int64_t reconnect_max_ms;
    kvl_spool_cfg_t spool; /* spool.dir NULL: no `spool:` section, batches wait in memory */
    kvl_tls_cfg_t tls;     /* `tls:` or `insecure: true` (see tls_config.h) */
} kvl_ship_cfg_t;

/* Defaults: flush 1s, max_queue 100000, reconnect_max 30s, no spool (2GiB, sync 1s when one
 * is configured). */
void kvl_ship_cfg_init(kvl_ship_cfg_t *s);
/* The field-table row of a top-level key the ship room owns, its offset moved by base (where
 * the kvl_ship_cfg_t sits in the struct the table fills): true, or false for another key. */
bool kvl_ship_cfg_field(const char *key, size_t base, kvl_cfg_field_t *out);
/* After the top level is read: exactly one of `collector` and `collectors`, mode dual with
 * two or more, exactly one of `tls` and `insecure`. Returns 0 or KVL_ECONFIG (error recorded
 * at the node). */
int kvl_ship_cfg_finish(kvl_cfg_node_t root, kvl_ship_cfg_t *s);
void kvl_ship_cfg_free(kvl_ship_cfg_t *s);

#endif
