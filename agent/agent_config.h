/*
 * agent_config.h — the agent's configuration (agent.yaml) as C structs.
 *
 * Configuration reference
 * -----------------------
 *   id: blk-tvm-north-01          # this agent's identity (required)
 *   site: tvm-north               # where it stands (required)
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
 *   log_level: info               # error, warn, info or debug
 *   flush_interval: 1s            # how long samples wait to be batched
 *   max_queue: 100000             # without a spool: unacknowledged batches kept in memory
 *                                 #   (per lane; lost when the agent stops)
 *   reconnect_max: 30s            # longest wait between connection attempts
 *   max_inflight: 500             # SNMP requests in flight at once, all devices together
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
 *                                 #   series at 60 s, ~100 MB a day). Tests only: the
 *                                 #   environment variable KAAVAL_SPOOL_TEST_MAX_BYTES
 *                                 #   replaces the bound of both lanes (agent/outbox.h)
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
 *
 *   (SNMP: credentials, defaults, devices, groups, mib_path, metric_groups; the keys in
 *   detail are in agent/snmp/snmp_config.h)
 *
 *   probes:                       # link measurement; the keys in detail are in
 *     interval: 60s               #   agent/probe/probe_config.h. Statistics per target and
 *     count: 20                   #   interval: probes spread evenly (http: 1 per interval)
 *     size: 56                    # ICMP data bytes, like ping -s
 *     reflector: {enabled: true, port: 862}   # STAMP / TWAMP-Light reflector (default on)
 *     clock: {sync: kernel}       # one-way delays only when both clocks are synchronised
 *     targets:
 *       - {name: dc-core, address: 10.0.0.1, type: icmp}
 *       - {name: dc-rtr, address: 10.0.0.1, type: stamp}        # port 862
 *       - {name: dc-ldap, address: 10.0.0.5, type: tcp, port: 636}
 *       - {name: portal, url: "https://portal.example/", type: https, expect_status: 200}
 *     mesh:                       # every other agent in these sites (one list, shared by
 *       type: stamp               #   every agent's file; an agent skips its own entry;
 *       sites: [tvm]              #   icmp, or stamp to their reflectors)
 *       agents:
 *         - {id: blk-tvm-north-01, site: tvm, address: 10.20.0.2}
 *
 * Secrets (the TLS key's path aside, none at this level) are handed to the rooms; nothing
 * in the agent prints them. Parsing lives in agent_config.c, which dispatches the SNMP keys
 * to snmp_config.c and `probes:` to probe_config.c; errors name file:line:column.
 */
#ifndef KVL_AGENT_CONFIG_H
#define KVL_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "probe_config.h"
#include "snmp_config.h"
#include "tls_config.h"

/* ---- ship (begin): the uplink's settings (collectors, spool, TLS, batching) ---- */

/* The disk spool (agent/spool.h). */
typedef struct kvl_spool_cfg {
    char *dir;
    int64_t max_bytes;
    int64_t sync_interval_ms;
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

/* ---- ship (end) ---- */

typedef struct kvl_agent_cfg {
    char *id;
    char *site;
    int log_level;
    /* ---- ship (begin) ---- */
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
    /* ---- ship (end) ---- */
    kvl_snmp_cfg_t snmp;    /* the SNMP keys (snmp_config.h) */
    kvl_probe_cfg_t probes; /* `probes:` (probe_config.h); no targets when absent */
} kvl_agent_cfg_t;

/* Loads and checks a configuration file. Returns NULL and writes the first error
 * ("file:line:column: what was expected") into err. */
kvl_agent_cfg_t *kvl_agent_cfg_load(const char *path, char *err, size_t errlen);
/* Same from text (for tests); `name` stands for the file name in errors. */
kvl_agent_cfg_t *kvl_agent_cfg_parse(const char *name, const char *text, char *err, size_t errlen);
void kvl_agent_cfg_free(kvl_agent_cfg_t *c);

#endif
