/*
 * rwrite_config.h — `remote_write:` in collector.yaml (one endpoint or a list of them) as C
 * structs. Keys, defaults, bounds and what each means: docs/configuration.md
 * ("remote_write: Prometheus remote-write out"). Errors name file:line:column. Secrets named
 * by a file are read when the configuration is (so a reload compares their contents).
 */
#ifndef KVL_RWRITE_CONFIG_H
#define KVL_RWRITE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "wire.h"

#define KVL_RW_ENDPOINTS_MAX 8
#define KVL_RW_SHARDS_MAX 16

typedef struct kvl_rw_endpoint_cfg {
    char *name; /* for log lines and /metrics (default: the URL's host[:port]) */
    char *url;
    int64_t timeout_ms;
    int64_t max_queue;            /* samples queued (all shards) */
    int64_t max_samples_per_send; /* per request */
    int64_t shards;               /* requests in flight at most (series spread by hash) */
    int64_t min_backoff_ms, max_backoff_ms;
    char *username;
    char *password; /* read from password_file */
    char *password_file;
    char *bearer_token; /* read from bearer_token_file */
    char *bearer_token_file;
    char *ca;
    kvl_label_t *external; /* names valid, values non-empty; strings owned */
    size_t n_external;
    char **series_labels; /* the series' own labels carried (keys) */
    size_t n_series_labels;
} kvl_rw_endpoint_cfg_t;

typedef struct kvl_rw_cfg {
    size_t n;
    kvl_rw_endpoint_cfg_t *at;
} kvl_rw_cfg_t;

/* A KVL_CFG_CUSTOM parser for the section into a kvl_rw_cfg_t * at target (replacing one
 * there). Returns 0 or KVL_ECONFIG (error recorded at the node). */
int kvl_rw_cfg_parse(kvl_cfg_node_t n, void *target);
void kvl_rw_cfg_free(kvl_rw_cfg_t *c);
/* Whether two sections are the same (a reload: remote_write needs a restart). NULL: none. */
bool kvl_rw_cfg_same(const kvl_rw_cfg_t *a, const kvl_rw_cfg_t *b);

#endif
