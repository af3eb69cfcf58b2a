/*
 * http_config.h — the `http:` section of collector.yaml: where the HTTP server listens,
 * whether it speaks TLS (with the collector's own certificate and key from `tls:`) or plain
 * HTTP (allowed on 127.0.0.1 and ::1 only), the users and tokens files, the static files'
 * folder and the server's limits. Every key is documented in docs/configuration.md.
 *
 * Without an `http:` section the server is off (enabled false), but the users and tokens
 * files still have their default places, so `--add-user` and `--add-token` work.
 */
#ifndef KVL_HTTP_CONFIG_H
#define KVL_HTTP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "cfg.h"
#include "tls_config.h"

typedef struct kvl_http_cfg {
    bool enabled;   /* an `http:` section was given */
    char *listen;   /* "127.0.0.1:8080" */
    char host[256]; /* numeric address */
    uint16_t port;  /* 0: any free port (tests only; not from YAML) */
    int tls;        /* -1: not given (TLS when the collector has `tls:`), 0 plain, 1 TLS */
    char *cert;     /* PEM files for TLS (the collector's) */
    char *key;
    char *users_file;  /* default <data_dir>/users */
    char *tokens_file; /* default <data_dir>/tokens */
    char *static_dir;  /* default: the installed dashboards folder, else the source tree's */
    char *collector_id;
    int64_t max_connections;
    int64_t connection_timeout_ms;
    int64_t session_ttl_ms;
    int64_t threads;
    bool anonymous_viewer;  /* GETs without credentials read as a viewer (plain loopback only) */
    bool metrics_anonymous; /* GET /metrics from a loopback address needs no credentials */
} kvl_http_cfg_t;

/* A KVL_CFG_CUSTOM parser for `http:`; target is a `kvl_http_cfg_t *` field holding a
 * config from kvl_http_cfg_new. */
int kvl_http_cfg_parse(kvl_cfg_node_t n, void *target);

/* A config with the defaults (enabled false). NULL when out of memory. */
kvl_http_cfg_t *kvl_http_cfg_new(void);

/* After the whole file is read: fills the defaults that depend on the collector (data_dir,
 * id, the TLS certificate and key) and refuses plain HTTP on an address other than
 * 127.0.0.1/::1, TLS without the collector's `tls:`, or `anonymous_viewer` on anything but
 * plain HTTP on loopback. `where` is the `http:` node (for
 * the error's file:line:column) or an empty node. Returns 0 or KVL_ECONFIG (recorded). */
int kvl_http_cfg_finish(kvl_cfg_node_t where, kvl_http_cfg_t *c, const char *data_dir,
                        const char *id, const kvl_tls_cfg_t *tls);

/* Whether a numeric host is 127.0.0.1 (any of 127/8) or ::1. */
bool kvl_http_host_is_loopback(const char *host);

void kvl_http_cfg_free(kvl_http_cfg_t *c);

#endif
