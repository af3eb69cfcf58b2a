/*
 * tls_config.c — reads `tls:` and checks it against `insecure:` (see tls_config.h).
 * No OpenSSL here: the files are only checked to be readable; tls.c loads them.
 */
#include "tls_config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvl.h"

#define OFF(field) offsetof(kvl_tls_cfg_t, field)

static const kvl_cfg_field_t client_fields[] = {
    {"ca", KVL_CFG_STR, OFF(ca), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "CA certificate (PEM) the collector is verified against"},
    {"cert", KVL_CFG_STR, OFF(cert), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "this agent's certificate (PEM), subject CN = its id"},
    {"key", KVL_CFG_STR, OFF(key), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "this agent's private key (PEM)"},
    {"server_name", KVL_CFG_STR, OFF(server_name), 0, 0, NULL, NULL, 0,
     "name the collector's certificate must carry (default: the collector's host)"},
    {NULL},
};

static const kvl_cfg_field_t server_fields[] = {
    {"ca", KVL_CFG_STR, OFF(ca), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "CA certificate (PEM) agents are verified against"},
    {"cert", KVL_CFG_STR, OFF(cert), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the collector's certificate (PEM)"},
    {"key", KVL_CFG_STR, OFF(key), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the collector's private key (PEM)"},
    {NULL},
};

static int check_readable(kvl_cfg_node_t map, const char *key, const char *path)
{
    kvl_cfg_node_t n;
    if (access(path, R_OK) != 0) {
        kvl_cfg_map_get(map, key, &n);
        return kvl_cfg_error(n, "cannot read %s: %s", path, strerror(errno));
    }
    return 0;
}

static int parse_tls(kvl_cfg_node_t n, void *target, const kvl_cfg_field_t *fields)
{
    kvl_tls_cfg_t *t = target;
    if (!kvl_cfg_is_map(n)) {
        return kvl_cfg_error(n, "expected a mapping with ca, cert and key (file names)");
    }
    int rc = kvl_cfg_apply(n, fields, t);
    if (rc == 0) {
        rc = check_readable(n, "ca", t->ca);
    }
    if (rc == 0) {
        rc = check_readable(n, "cert", t->cert);
    }
    if (rc == 0) {
        rc = check_readable(n, "key", t->key);
    }
    if (rc == 0 && t->server_name != NULL && t->server_name[0] == '\0') {
        kvl_cfg_node_t s;
        kvl_cfg_map_get(n, "server_name", &s);
        rc = kvl_cfg_error(s, "server_name must not be empty (leave it out for the default)");
    }
    t->given = rc == 0;
    return rc;
}

int kvl_tls_cfg_parse_client(kvl_cfg_node_t n, void *target)
{
    return parse_tls(n, target, client_fields);
}

int kvl_tls_cfg_parse_server(kvl_cfg_node_t n, void *target)
{
    return parse_tls(n, target, server_fields);
}

int kvl_tls_cfg_check(kvl_cfg_node_t root, const kvl_tls_cfg_t *t)
{
    kvl_cfg_node_t n;
    if (t->given && t->insecure) {
        kvl_cfg_map_get(root, "insecure", &n);
        return kvl_cfg_error(n, "insecure: true and tls: exclude each other; keep one");
    }
    if (!t->given && !t->insecure) {
        if (!kvl_cfg_map_get(root, "insecure", &n)) {
            n = root;
        }
        return kvl_cfg_error(n, "expected tls: {ca: ..., cert: ..., key: ...} (mutual TLS), "
                                "or insecure: true for plain, unauthenticated TCP");
    }
    return 0;
}

void kvl_tls_cfg_free(kvl_tls_cfg_t *t)
{
    if (t == NULL) {
        return;
    }
    free(t->ca);
    free(t->cert);
    free(t->key);
    free(t->server_name);
    t->ca = t->cert = t->key = t->server_name = NULL;
}
