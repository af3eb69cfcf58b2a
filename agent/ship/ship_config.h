/*
 * ship_config.h — the shipping keys of agent.yaml as C structs: `collector`/`collectors`,
 * `mode`, `flush_interval`, `max_queue`, `reconnect_max`, `heartbeat`, the `spool` section and
 * `tls`/`insecure`. They sit at the top level of agent.yaml: agent_config.c takes their rows
 * from kvl_ship_cfg_field (so it rejects unknown keys with the full list, in its own order),
 * then calls kvl_ship_cfg_finish once the top level is read. Every key with its default and
 * bounds is documented in docs/configuration.md (checked by the config_reference test).
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
    int64_t heartbeat_ms;  /* a Heartbeat on each welcomed connection this often (Hello says) */
    kvl_spool_cfg_t spool; /* spool.dir NULL: no `spool:` section, batches wait in memory */
    kvl_tls_cfg_t tls;     /* `tls:` or `insecure: true` (see tls_config.h) */
} kvl_ship_cfg_t;

/* Defaults: flush 1s, max_queue 100000, reconnect_max 30s, heartbeat 10s, no spool (2GiB, sync 1s
 * when one is configured). */
void kvl_ship_cfg_init(kvl_ship_cfg_t *s);
/* The field-table row of a top-level key the ship room owns, its offset moved by base (where
 * the kvl_ship_cfg_t sits in the struct the table fills): true, or false for another key. */
bool kvl_ship_cfg_field(const char *key, size_t base, kvl_cfg_field_t *out);
/* After the top level is read: exactly one of `collector` and `collectors`, mode dual with
 * two or more, exactly one of `tls` and `insecure`. standalone (--poll-once, --probe-once:
 * nothing is shipped): a file without any collector and without tls/insecure is fine (no
 * collector then), one that has them is checked all the same. Returns 0 or KVL_ECONFIG (error
 * recorded at the node). */
int kvl_ship_cfg_finish(kvl_cfg_node_t root, kvl_ship_cfg_t *s, bool standalone);
void kvl_ship_cfg_free(kvl_ship_cfg_t *s);

#endif
