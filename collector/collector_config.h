/*
 * collector_config.h — the collector's configuration (collector.yaml) as C structs.
 *
 *   id: noc-collector-1          # name sent to agents (default: the host name)
 *   listen: 0.0.0.0:5140          # where agents connect
 *   data_dir: /var/lib/kaaval     # archives go under <data_dir>/<site>/<device>/
 *   log_level: info
 *   max_connections: 2000         # agent connections at once; more are closed at once
 *   max_frame: 4194304            # bytes; larger frames close the connection
 *   handshake_timeout: 10s        # TLS handshake and Hello must be done within this
 *   idle_timeout: 5m              # a connection with no frame for this long is closed
 *                                 #   (keep it above the agents' longest poll interval)
 *   journal_max_bytes: 1073741824 # journal size (in <data_dir>/_journal/) above which
 *                                 #   agents are not read until the archives catch up
 *                                 #   (at least 4 segments are always allowed)
 *   journal_segment_bytes: 67108864  # size of one journal file
 *   journal_commit_delay: 2ms     # a group commit waits this long for more batches
 *   journal_sync: true            # fdatasync each commit (false: tests only; a power
 *                                 #   cut may then lose acknowledged batches)
 *   archives:                     # resolution:retention, each kept for every consolidation
 *     - step:2d                   #   one poll interval for two days
 *     - 5m:2w
 *     - 30m:62d
 *     - 1d:2y
 *   consolidations: [AVERAGE, MAX]
 *   tls:                          # mutual TLS with every agent (or `insecure: true`: plain
 *     ca: /etc/kaaval/ca.crt      #   TCP, any agent may claim any id; logged as a
 *     cert: /etc/kaaval/collector.crt   # warning). One of the two is required. An agent's
 *     key: /etc/kaaval/collector.key    # certificate CN must equal the id it claims.
 */
#ifndef KVL_COLLECTOR_CONFIG_H
#define KVL_COLLECTOR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "tls_config.h"

typedef struct kvl_collector_cfg {
    char *id;
    char *listen;
    char listen_host[256];
    uint16_t listen_port;
    char *data_dir;
    int log_level;
    int64_t max_connections;
    int64_t max_frame;
    int64_t handshake_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t journal_max_bytes;
    int64_t journal_segment_bytes;
    int64_t journal_commit_delay_ms;
    bool journal_sync;
    kvl_archive_spec_t *archives;
    size_t n_archives;
    char **consolidations; /* NULL-terminated */
    kvl_tls_cfg_t tls;     /* `tls:` or `insecure: true` (see tls_config.h) */
} kvl_collector_cfg_t;

kvl_collector_cfg_t *kvl_collector_cfg_load(const char *path, char *err, size_t errlen);
kvl_collector_cfg_t *kvl_collector_cfg_parse(const char *name, const char *text, char *err,
                                             size_t errlen);
void kvl_collector_cfg_free(kvl_collector_cfg_t *c);

#endif
