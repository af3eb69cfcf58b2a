/*
 * tls_config.c — reads `tls:` and checks it against `insecure:` (see tls_config.h).
 * No OpenSSL here: the files are only checked to be readable, and the private key to be
 * secret (its owner and mode); tls.c loads them.
 */
#include "tls_config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
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

/* True when gid is this process's effective group or one of its supplementary groups. */
static bool own_group(gid_t gid)
{
    if (gid == getegid()) {
        return true;
    }
    gid_t groups[256];
    int n = getgroups((int)KVL_ARRAY_SIZE(groups), groups);
    for (int i = 0; i < n; i++) {
        if (groups[i] == gid) {
            return true;
        }
    }
    return false;
}

int kvl_tls_key_check(const char *path, char *why, size_t len)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(why, len, "cannot examine the private key %s: %s", path, strerror(errno));
        return KVL_EIO;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(why, len, "the private key %s is not a regular file", path);
        return KVL_ECONFIG;
    }
    unsigned mode = (unsigned)st.st_mode & 07777;
    const char *problem = NULL;
    if ((mode & 007) != 0) {
        problem = (mode & 006) != 0 ? "readable or writable by any user" : "open to any user";
    } else if ((mode & 020) != 0) {
        problem = "writable by its group";
    } else if ((mode & 050) != 0 && !own_group(st.st_gid)) {
        problem = "readable by a group this daemon is not in";
    } else if ((mode & 050) != 0 && st.st_uid != 0 && st.st_uid != geteuid()) {
        problem = "readable by its group and owned by neither root nor this daemon's user";
    }
    if (problem == NULL) {
        return 0;
    }
    snprintf(why, len,
             "the private key %s is %s (mode %04o): run 'chmod 600 %s' (or 640 with the "
             "daemon's group, owned by root or the daemon's user)",
             path, problem, mode, path);
    return KVL_ECONFIG;
}

static int check_key(kvl_cfg_node_t map, const char *path)
{
    char why[1200];
    if (kvl_tls_key_check(path, why, sizeof(why)) != 0) {
        kvl_cfg_node_t n;
        kvl_cfg_map_get(map, "key", &n);
        return kvl_cfg_error(n, "%s", why);
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
    if (rc == 0) {
        rc = check_key(n, t->key);
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
