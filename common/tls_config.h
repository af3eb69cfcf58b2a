/*
 * tls_config.h — the `tls:` and `insecure:` keys both daemons share, as a C struct, with the
 * check of a private key's mode. What each key means, its defaults and the modes a key file
 * may have are in docs/configuration.md (agent.yaml and collector.yaml, `tls`), the one
 * reference of the configuration.
 *
 * The parsers fill kvl_tls_cfg_t from a `tls:` mapping (the agent's with server_name); the
 * daemon's table reads `insecure`, and kvl_tls_cfg_check then requires exactly one of the
 * two. kvl_tls_key_check is what both daemons call at start and in --check-config.
 */
#ifndef KVL_TLS_CONFIG_H
#define KVL_TLS_CONFIG_H

#include <stdbool.h>

#include "cfg.h"

typedef struct kvl_tls_cfg {
    char *ca;
    char *cert;
    char *key;
    char *server_name; /* agent only; NULL: the collector's host */
    bool insecure;
    bool given; /* a `tls:` mapping was read */
} kvl_tls_cfg_t;

/* KVL_CFG_CUSTOM parsers for `tls:` into a kvl_tls_cfg_t: the agent's (with server_name)
 * and the collector's. Each file named must be readable. */
int kvl_tls_cfg_parse_client(kvl_cfg_node_t n, void *target);
int kvl_tls_cfg_parse_server(kvl_cfg_node_t n, void *target);
/* Whether the private key file at path is kept secret: a regular file that no one but its
 * owner may read or write, except that group read (never group write) is allowed when the
 * group is one of this process's groups and the owner is root or this process's user (the
 * Debian way: root:kaaval 0640 for a daemon running as kaaval). Returns 0, or KVL_ECONFIG
 * (KVL_EIO when the file cannot be examined) with one sentence in why naming the file, its
 * mode and the fix. */
int kvl_tls_key_check(const char *path, char *why, size_t len);
/* After the table is applied to `root`: exactly one of `tls:` and `insecure: true`.
 * Returns 0 or KVL_ECONFIG (recorded). */
int kvl_tls_cfg_check(kvl_cfg_node_t root, const kvl_tls_cfg_t *t);
/* Frees the strings (not the struct). NULL-safe. */
void kvl_tls_cfg_free(kvl_tls_cfg_t *t);

#endif
