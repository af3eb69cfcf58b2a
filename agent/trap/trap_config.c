/*
 * trap_config.c — parsing and checks of the `traps:` section (see trap_config.h).
 *
 * One field table for the section; `credentials` is kept by name while the file is read
 * (the credential sets may come later in the file) and resolved by kvl_trap_cfg_finish.
 */
#include "trap_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"

void kvl_trap_cfg_init(kvl_trap_cfg_t *t)
{
    memset(t, 0, sizeof(*t));
    t->enabled = true;
    snprintf(t->host, sizeof(t->host), "0.0.0.0");
    t->port = 162;
    t->max_per_second = 100;
}

void kvl_trap_cfg_free(kvl_trap_cfg_t *t)
{
    if (t == NULL) {
        return;
    }
    free(t->listen);
    for (size_t i = 0; i < t->n_cred_names; i++) {
        free(t->cred_names[i]);
    }
    free(t->cred_names);
    free(t->creds);
    free(t->engine_ids);
    memset(t, 0, sizeof(*t));
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int kvl_trap_engine_id_parse(const char *s, kvl_trap_engine_id_t *out)
{
    memset(out, 0, sizeof(*out));
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
    }
    int hi = -1;
    for (; *s != '\0'; s++) {
        if (*s == ':' && hi < 0) {
            continue;
        }
        int v = hexval((unsigned char)*s);
        if (v < 0) {
            return KVL_EINVAL;
        }
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (out->len == KVL_TRAP_ENGINE_ID_MAX) {
            return KVL_EINVAL;
        }
        out->id[out->len++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    return hi < 0 && out->len >= 5 ? 0 : KVL_EINVAL;
}

void kvl_trap_engine_id_default(const char *agent_id, kvl_trap_engine_id_t *out)
{
    static const uint8_t head[] = {0x80, 0x00, 0x1f, 0x88, 0x05}; /* 8072, format octets */
    uint64_t h = 1469598103934665603ull;                          /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)agent_id; *p != '\0'; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out->id, head, sizeof(head));
    for (int i = 0; i < 8; i++) {
        out->id[sizeof(head) + (size_t)i] = (uint8_t)(h >> (56 - 8 * i));
    }
    out->len = sizeof(head) + 8;
}

/* `listen`: "off", or a numeric "address:port" / "[v6]:port". */
static int parse_listen(kvl_cfg_node_t n, void *target)
{
    kvl_trap_cfg_t *t = target;
    const char *s = kvl_cfg_scalar(n);
    if (s == NULL) {
        return kvl_cfg_error(n, "expected \"address:port\" or off");
    }
    if (strcmp(s, "off") == 0 || strcmp(s, "false") == 0) {
        t->enabled = false;
        return 0;
    }
    char host[sizeof(t->host)];
    uint16_t port = 0;
    unsigned char a[16];
    if (kvl_parse_hostport(s, host, sizeof(host), &port) != 0 || port == 0) {
        return kvl_cfg_error(n, "expected \"address:port\" (e.g. 0.0.0.0:162) or off");
    }
    if (inet_pton(AF_INET, host, a) != 1 && inet_pton(AF_INET6, host, a) != 1) {
        return kvl_cfg_error(n, "'%s' is not a numeric IP address", host);
    }
    free(t->listen);
    t->listen = strdup(s);
    if (t->listen == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    t->enabled = true;
    snprintf(t->host, sizeof(t->host), "%s", host);
    t->port = port;
    return 0;
}

static int parse_credentials(kvl_cfg_node_t n, void *target)
{
    kvl_trap_cfg_t *t = target;
    if (!kvl_cfg_is_seq(n)) {
        return kvl_cfg_error(n, "expected a list of credential set names");
    }
    size_t len = kvl_cfg_seq_len(n);
    t->creds_node = n;
    t->cred_names = calloc(len > 0 ? len : 1, sizeof(*t->cred_names));
    if (t->cred_names == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t e = kvl_cfg_seq_at(n, i);
        if (!kvl_cfg_is_scalar(e)) {
            return kvl_cfg_error(e, "expected the name of a credential set");
        }
        int rc = kvl_cfg_read_str(e, &t->cred_names[i]);
        if (rc != 0) {
            return rc;
        }
        t->n_cred_names++;
    }
    return 0;
}

static int read_engine_id(kvl_cfg_node_t n, kvl_trap_engine_id_t *out)
{
    const char *s = kvl_cfg_scalar(n);
    if (s == NULL || kvl_trap_engine_id_parse(s, out) != 0) {
        return kvl_cfg_error(n,
                             "expected an SNMP engine ID in hex (5 to %d octets, e.g. "
                             "0x800000090300aabbccddeeff)",
                             KVL_TRAP_ENGINE_ID_MAX);
    }
    return 0;
}

static int parse_engine_id(kvl_cfg_node_t n, void *target)
{
    kvl_trap_cfg_t *t = target;
    return read_engine_id(n, &t->engine_id);
}

static int parse_engine_ids(kvl_cfg_node_t n, void *target)
{
    kvl_trap_cfg_t *t = target;
    if (!kvl_cfg_is_seq(n)) {
        return kvl_cfg_error(n, "expected a list of SNMP engine IDs in hex");
    }
    size_t len = kvl_cfg_seq_len(n);
    if (len > KVL_TRAP_MAX_ENGINE_IDS) {
        return kvl_cfg_error(n, "%zu engine IDs, at most %d", len, KVL_TRAP_MAX_ENGINE_IDS);
    }
    t->engine_ids = calloc(len > 0 ? len : 1, sizeof(*t->engine_ids));
    if (t->engine_ids == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        int rc = read_engine_id(kvl_cfg_seq_at(n, i), &t->engine_ids[i]);
        if (rc != 0) {
            return rc;
        }
        t->n_engine_ids++;
    }
    return 0;
}

static const kvl_cfg_field_t trap_fields[] = {
    {"listen", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_listen, 0,
     "numeric address:port the traps arrive on (0.0.0.0:162), or off"},
    {"credentials", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_credentials, 0,
     "credential sets accepted from every configured device besides its own"},
    {"engine_id", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_engine_id, 0,
     "this agent's SNMPv3 engine ID for informs (hex; derived from the agent's id)"},
    {"engine_ids", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_engine_ids, 0,
     "the engine IDs of devices sending SNMPv3 traps (hex)"},
    {"max_per_second", KVL_CFG_INT, offsetof(kvl_trap_cfg_t, max_per_second), 1, 1000000, NULL,
     NULL, 0, "traps taken per device per second, the rest dropped and counted (100)"},
    {NULL},
};

int kvl_trap_cfg_parse(kvl_cfg_node_t n, void *target)
{
    kvl_trap_cfg_t *t = target;
    if (!kvl_cfg_is_map(n)) {
        return kvl_cfg_error(n, "expected a mapping: listen, credentials, engine_id, "
                                "engine_ids, max_per_second");
    }
    t->node = n;
    return kvl_cfg_apply(n, trap_fields, t);
}

int kvl_trap_cfg_finish(kvl_trap_cfg_t *t, const kvl_snmp_cfg_t *snmp, const char *agent_id)
{
    if (t->engine_id.len == 0) {
        kvl_trap_engine_id_default(agent_id != NULL ? agent_id : "", &t->engine_id);
    }
    if (t->n_cred_names == 0) {
        return 0;
    }
    t->creds = calloc(t->n_cred_names, sizeof(*t->creds));
    if (t->creds == NULL) {
        return kvl_cfg_error(t->creds_node, "out of memory");
    }
    for (size_t i = 0; i < t->n_cred_names; i++) {
        for (size_t k = 0; k < snmp->n_credentials; k++) {
            if (strcmp(snmp->credentials[k].name, t->cred_names[i]) == 0) {
                t->creds[i] = &snmp->credentials[k];
                break;
            }
        }
        if (t->creds[i] == NULL) {
            return kvl_cfg_error(kvl_cfg_seq_at(t->creds_node, i),
                                 "no credential set named '%s' (see `credentials:` at the top "
                                 "level)",
                                 t->cred_names[i]);
        }
    }
    return 0;
}
