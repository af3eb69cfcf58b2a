/*
 * collector_config.h — the collector's configuration (collector.yaml) as C structs: listen
 * address, data folder, archives, limits, journal settings and TLS. Every key with its
 * default and bounds is documented in docs/configuration.md (checked against the field
 * table in collector_config.c by the config_reference test).
 */
#ifndef KVL_COLLECTOR_CONFIG_H
#define KVL_COLLECTOR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alerts_config.h"
#include "http_config.h"
#include "notify_config.h"
#include "rwrite_config.h"
#include "sites_config.h"
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
    char *rrdcached;       /* rrdcached's address; NULL: librrd writes the archives itself */
    int64_t rrdcached_checkpoint_ms; /* rrdcached is made to write what it holds this often */
    /* `rrdcached_files: remote`: the archives live only on rrdcached's host, under its -b
     * folder; the collector reaches them through rrdcached alone (false: `local`) */
    bool rrdcached_remote;
    kvl_tls_cfg_t tls; /* `tls:` or `insecure: true` (see tls_config.h) */
    /* a batch numbered further ahead of this collector's clock is refused */
    int64_t max_seq_ahead_ms;
    int64_t max_handshakes;             /* connections not yet past their Hello, at once */
    int64_t max_handshakes_per_address; /* of those, from one address (IPv6: one /64) */
    int64_t max_series_per_agent;       /* series ids one agent's connection may define */
    int64_t max_families_per_agent;     /* families likewise */
    int64_t agent_state_ttl_ms;         /* definitions of an agent gone are released after this */
    int64_t future_tolerance_ms;        /* samples further ahead of the clock are refused */
    int64_t max_sample_age_ms;          /* samples older than this are refused */
    kvl_alerts_cfg_t *alerts;    /* `alerts:` (alerts_config.h); NULL: absent, the defaults */
    kvl_http_cfg_t *http;        /* `http:` (web/http_config.h); never NULL */
    char *rules;                 /* alert rules file or folder; NULL: the built-in rules alone */
    int64_t late_after_ms;       /* alert changes in data older than this are late (history) */
    char *web_url;               /* base of the graph URLs alerts carry */
    kvl_notify_cfg_t *receivers; /* `receivers:` (notify_config.h), NULL when none */
    int64_t lost_after;          /* heartbeats an agent may miss before it is declared lost */
    kvl_sites_cfg_t *sites;      /* `sites:` (board/sites_config.h), NULL when none */
    kvl_rw_cfg_t *remote_write;  /* `remote_write:` (rwrite/rwrite_config.h), NULL when none */
} kvl_collector_cfg_t;

kvl_collector_cfg_t *kvl_collector_cfg_load(const char *path, char *err, size_t errlen);
kvl_collector_cfg_t *kvl_collector_cfg_parse(const char *name, const char *text, char *err,
                                             size_t errlen);
void kvl_collector_cfg_free(kvl_collector_cfg_t *c);

#endif
