/*
 * http_config.c — reads the `http:` section of collector.yaml into kvl_http_cfg_t (see
 * http_config.h) and checks it against the rest of the file once that is read.
 */
#include "http_config.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "kvl.h"

#ifndef KVL_INSTALL_DASHBOARDS_DIR
#define KVL_INSTALL_DASHBOARDS_DIR "/usr/share/kaaval/dashboards"
#endif
#ifndef KVL_SOURCE_DASHBOARDS_DIR
#define KVL_SOURCE_DASHBOARDS_DIR "dashboards"
#endif

static int parse_listen(kvl_cfg_node_t n, void *target)
{
    kvl_http_cfg_t *c = target;
    const char *s = kvl_cfg_scalar(n);
    unsigned char addr[16];
    if (s == NULL || kvl_parse_hostport(s, c->host, sizeof(c->host), &c->port) != 0 ||
        (inet_pton(AF_INET, c->host, addr) != 1 && inet_pton(AF_INET6, c->host, addr) != 1)) {
        return kvl_cfg_error(n, "expected a numeric address and port to listen on, e.g. "
                                "127.0.0.1:8080 or [::]:8443");
    }
    free(c->listen);
    c->listen = strdup(s);
    return c->listen ? 0 : kvl_cfg_error(n, "out of memory");
}

static int parse_tls(kvl_cfg_node_t n, void *target)
{
    int *t = target;
    const char *s = kvl_cfg_scalar(n);
    if (s != NULL && (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "on") == 0)) {
        *t = 1;
    } else if (s != NULL &&
               (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "off") == 0)) {
        *t = 0;
    } else {
        return kvl_cfg_error(n, "expected true (HTTPS with the collector's certificate) or false "
                                "(plain HTTP, on 127.0.0.1 or ::1 only)");
    }
    return 0;
}

#define OFF(field) offsetof(kvl_http_cfg_t, field)

static const kvl_cfg_field_t fields[] = {
    {"listen", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_listen, 0,
     "address:port of the HTTP server (127.0.0.1:8080)"},
    {"tls", KVL_CFG_CUSTOM, OFF(tls), 0, 0, NULL, parse_tls, 0,
     "HTTPS with the collector's certificate (default: when the collector has tls:)"},
    {"users_file", KVL_CFG_STR, OFF(users_file), 0, 0, NULL, NULL, 0,
     "users and their password hashes (<data_dir>/users)"},
    {"tokens_file", KVL_CFG_STR, OFF(tokens_file), 0, 0, NULL, NULL, 0,
     "API tokens, hashed (<data_dir>/tokens)"},
    {"static_dir", KVL_CFG_STR, OFF(static_dir), 0, 0, NULL, NULL, 0,
     "folder of the dashboards' static files"},
    {"max_connections", KVL_CFG_INT, OFF(max_connections), 1, 10000, NULL, NULL, 0,
     "HTTP connections at once (256)"},
    {"connection_timeout", KVL_CFG_DURATION, OFF(connection_timeout_ms), 1000, 3600 * 1000, NULL,
     NULL, 0, "an idle HTTP connection is closed after this (30s)"},
    {"session_ttl", KVL_CFG_DURATION, OFF(session_ttl_ms), 60 * 1000, 30 * 86400 * 1000ll, NULL,
     NULL, 0, "a browser session ends this long after its login (12h)"},
    {"threads", KVL_CFG_INT, OFF(threads), 1, 64, NULL, NULL, 0,
     "server threads parsing requests (2)"},
    {"anonymous_viewer", KVL_CFG_BOOL, OFF(anonymous_viewer), 0, 0, NULL, NULL, 0,
     "reads without credentials get the viewer role (plain HTTP on loopback only; false)"},
    {"metrics_anonymous", KVL_CFG_BOOL, OFF(metrics_anonymous), 0, 0, NULL, NULL, 0,
     "GET /metrics from a loopback address needs no credentials (false)"},
    {NULL},
};

kvl_http_cfg_t *kvl_http_cfg_new(void)
{
    kvl_http_cfg_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->listen = strdup("127.0.0.1:8080");
    snprintf(c->host, sizeof(c->host), "127.0.0.1");
    c->port = 8080;
    c->tls = -1;
    c->max_connections = 256;
    c->connection_timeout_ms = 30 * 1000;
    c->session_ttl_ms = 12ll * 3600 * 1000;
    c->threads = 2;
    if (c->listen == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

int kvl_http_cfg_parse(kvl_cfg_node_t n, void *target)
{
    kvl_http_cfg_t *c = *(kvl_http_cfg_t **)target;
    if (!kvl_cfg_is_map(n)) {
        return kvl_cfg_error(n, "expected a mapping (listen, tls, users_file, ...)");
    }
    c->enabled = true;
    return kvl_cfg_apply(n, fields, c);
}

bool kvl_http_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        return IN6_IS_ADDR_LOOPBACK(&a6);
    }
    return false;
}

static int set_path(char **dst, const char *dir, const char *name)
{
    if (*dst != NULL) {
        return 0;
    }
    size_t n = strlen(dir) + strlen(name) + 2;
    *dst = malloc(n);
    if (*dst == NULL) {
        return KVL_ENOMEM;
    }
    snprintf(*dst, n, "%s/%s", dir, name);
    return 0;
}

static int dup_if(char **dst, const char *src)
{
    free(*dst);
    *dst = NULL;
    if (src != NULL && (*dst = strdup(src)) == NULL) {
        return KVL_ENOMEM;
    }
    return 0;
}

int kvl_http_cfg_finish(kvl_cfg_node_t where, kvl_http_cfg_t *c, const char *data_dir,
                        const char *id, const kvl_tls_cfg_t *tls)
{
    if (set_path(&c->users_file, data_dir, "users") != 0 ||
        set_path(&c->tokens_file, data_dir, "tokens") != 0 || dup_if(&c->collector_id, id) != 0) {
        return kvl_cfg_error(where, "out of memory");
    }
    if (c->static_dir == NULL) {
        struct stat st;
        const char *d = stat(KVL_INSTALL_DASHBOARDS_DIR, &st) == 0 && S_ISDIR(st.st_mode)
                            ? KVL_INSTALL_DASHBOARDS_DIR
                            : KVL_SOURCE_DASHBOARDS_DIR;
        if ((c->static_dir = strdup(d)) == NULL) {
            return kvl_cfg_error(where, "out of memory");
        }
    }
    bool have_tls = tls != NULL && tls->given && tls->cert != NULL && tls->key != NULL;
    if (c->tls < 0) {
        c->tls = have_tls ? 1 : 0;
    }
    if (!c->enabled) {
        return 0;
    }
    kvl_cfg_node_t at;
    if (c->anonymous_viewer && (c->tls != 0 || !kvl_http_host_is_loopback(c->host))) {
        return kvl_cfg_error(kvl_cfg_map_get(where, "anonymous_viewer", &at) ? at : where,
                             "http: anonymous_viewer (reads without logging in) is for a "
                             "demo or a wall screen on this machine: only with `tls: false` "
                             "on 127.0.0.1 or ::1 (elsewhere use a kiosk link, ?kiosk=<viewer "
                             "token>)");
    }
    if (c->tls == 1 && !have_tls) {
        return kvl_cfg_error(kvl_cfg_map_get(where, "tls", &at) ? at : where,
                             "http: HTTPS needs the collector's certificate and key "
                             "(a `tls:` section); or set `tls: false` and listen on "
                             "127.0.0.1");
    }
    if (c->tls == 0 && !kvl_http_host_is_loopback(c->host)) {
        return kvl_cfg_error(kvl_cfg_map_get(where, "listen", &at) ? at : where,
                             "http: plain HTTP may listen on 127.0.0.1 or ::1 only, not %s "
                             "(passwords and tokens would cross the network in clear): use "
                             "`tls: true` with the collector's `tls:` certificate",
                             c->host);
    }
    if (c->tls == 1 && (dup_if(&c->cert, tls->cert) != 0 || dup_if(&c->key, tls->key) != 0)) {
        return kvl_cfg_error(where, "out of memory");
    }
    return 0;
}

void kvl_http_cfg_free(kvl_http_cfg_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->listen);
    free(c->cert);
    free(c->key);
    free(c->users_file);
    free(c->tokens_file);
    free(c->static_dir);
    free(c->collector_id);
    free(c);
}
