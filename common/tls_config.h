/*
 * tls_config.h — the `tls:` and `insecure:` keys both daemons share.
 *
 *   tls:                          # mutual TLS (the default way; see README "Securing
 *     ca: /etc/kaaval/ca.crt      #   the stream"): the CA every peer is verified against
 *     cert: /etc/kaaval/me.crt    # this daemon's certificate (PEM; a chain may follow)
 *     key: /etc/kaaval/me.key     # its private key (PEM, unencrypted, mode 0600)
 *     server_name: noc-col-1      # agent only, optional: the name the collector's
 *                                 #   certificate must carry (default: the host or IP
 *                                 #   of `collector:`)
 *   insecure: true                # instead of tls: plain TCP, no authentication at all
 *
 * One of the two is required; both together are an error. The agent's identity is the
 * subject CN of its certificate, which must equal its `id:`.
 *
 * The private key must be secret, as ssh requires of its keys: a key file others may read
 * or write is refused (kvl_tls_key_check), by both daemons at start and by --check-config.
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
