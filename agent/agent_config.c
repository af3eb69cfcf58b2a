/*
 * agent_config.c — reads agent.yaml into kvl_agent_cfg_t.
 *
 * The top level is one field table: the agent's own keys (id, site, log_level), the ship
 * room's keys (collectors, spool, TLS, batching: rows from ship/ship_config.c), the SNMP
 * keys, remembered here and read by their room (snmp/snmp_config.c, kvl_snmp_cfg_finish),
 * `probes:` (probe/probe_config.c), `traps:` (trap/trap_config.c) and `capture:`
 * (capture/capture_config.c). After the table: the
 * ship room checks its keys (collectors, TLS), then the SNMP keys are read, then the probes
 * and the traps finished, so the first error is the same whatever room reports it. The keys'
 * reference: docs/configuration.md.
 *
 * The id and the site become folder and file names at the collector (common/names.h), which
 * refuses an agent whose id is empty or longer than KVL_AGENT_ID_MAX, whose site is longer
 * than KVL_SITE_MAX, or whose names cannot become a file name: so does this file, at
 * --check-config and at start, rather than an agent that the collector turns away.
 */
#include "agent_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "fileio.h"
#include "kvl.h"
#include "log.h"
#include "names.h"

/* --- the whole file -------------------------------------------------------------------------- */

#define CFG(field) offsetof(kvl_agent_cfg_t, field)

/* The order of the rows is the order "unknown setting" lists them in. Rooms: collector,
 * collectors, mode, flush_interval, max_queue, reconnect_max, heartbeat, spool, tls and insecure
 * are ship's; max_inflight, credentials, defaults, devices, groups, mib_path and metric_groups
 * SNMP's (snmp_config.h); probes the probe room's. */

/* A top-level key of the ship room (ship/ship_config.c): its row is taken from there. */
#define SHIP_KEY(key)                                                                              \
    {                                                                                              \
        key, KVL_CFG_CUSTOM, 0, 0, 0, NULL, NULL, 0, NULL                                          \
    }

static const kvl_cfg_field_t top_fields[] = {
    {"id", KVL_CFG_STR, CFG(id), 0, 0, NULL, NULL, KVL_CFG_REQUIRED, "this agent's identity"},
    {"site", KVL_CFG_STR, CFG(site), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the site the agent stands at"},
    SHIP_KEY("collector"),
    SHIP_KEY("collectors"),
    SHIP_KEY("mode"),
    {"log_level", KVL_CFG_CUSTOM, CFG(log_level), 0, 0, NULL, kvl_cfg_parse_log_level, 0,
     "error, warn, info or debug"},
    SHIP_KEY("flush_interval"),
    SHIP_KEY("max_queue"),
    SHIP_KEY("reconnect_max"),
    SHIP_KEY("heartbeat"),
    {"max_inflight", KVL_CFG_INT, CFG(snmp.max_inflight), 1, 100000, NULL, NULL, 0,
     "SNMP requests in flight at once over all devices (500)"},
    SHIP_KEY("spool"),
    SHIP_KEY("tls"),
    SHIP_KEY("insecure"),
    {"credentials", KVL_CFG_CUSTOM, CFG(snmp.nodes.credentials), 0, 0, NULL, kvl_snmp_cfg_keep, 0,
     "named credential sets"},
    {"defaults", KVL_CFG_CUSTOM, CFG(snmp.nodes.defaults), 0, 0, NULL, kvl_snmp_cfg_keep, 0,
     "device settings defaults"},
    {"devices", KVL_CFG_CUSTOM, CFG(snmp.nodes.devices), 0, 0, NULL, kvl_snmp_cfg_keep, 0,
     "the SNMP devices to poll"},
    {"groups", KVL_CFG_CUSTOM, CFG(snmp.nodes.groups), 0, 0, NULL, kvl_snmp_cfg_keep, 0,
     "groups of devices sharing settings"},
    {"mib_path", KVL_CFG_CUSTOM, CFG(snmp.nodes.mib_path), 0, 0, NULL, kvl_snmp_cfg_keep, 0,
     "folders of MIB files for names in metric groups"},
    {"metric_groups", KVL_CFG_CUSTOM, CFG(snmp.nodes.metric_groups), 0, 0, NULL, kvl_snmp_cfg_keep,
     0, "metric group definitions"},
    {"probes", KVL_CFG_CUSTOM, CFG(probes), 0, 0, NULL, kvl_probe_cfg_parse, 0,
     "link measurement: interval, count, size, targets, mesh, reflector, clock "
     "(probe_config.h)"},
    {"traps", KVL_CFG_CUSTOM, CFG(traps), 0, 0, NULL, kvl_trap_cfg_parse, 0,
     "the trap receiver: listen, credentials, engine_id, engine_ids, max_per_second "
     "(trap_config.h)"},
    {"capture", KVL_CFG_CUSTOM, CFG(capture), 0, 0, NULL, kvl_capture_cfg_parse, 0,
     "passive traffic analysis: interfaces or file, filter, local networks, bounds "
     "(capture_config.h)"},
    {NULL},
};

/* top_fields with the ship room's rows filled in (placed in the agent's kvl_ship_cfg_t). */
static void top_table(kvl_cfg_field_t *out)
{
    for (size_t i = 0; i < KVL_ARRAY_SIZE(top_fields); i++) {
        out[i] = top_fields[i];
        if (top_fields[i].key != NULL && top_fields[i].type == KVL_CFG_CUSTOM &&
            top_fields[i].parse == NULL) {
            kvl_ship_cfg_field(top_fields[i].key, CFG(ship), &out[i]);
        }
    }
}

_Static_assert(KVL_ARRAY_SIZE(top_fields) - 1 <= KVL_AGENT_CFG_KEYS, "room for every key's digest");

const char *kvl_agent_cfg_key(size_t i)
{
    return i < KVL_ARRAY_SIZE(top_fields) ? top_fields[i].key : NULL;
}

/* FNV-1a over a node's content: kinds, keys, scalars and lengths, so that the same content
 * in another layout (flow or block, quoting, comments) digests the same. */
static uint64_t digest_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211ull;
    }
    return h;
}

static uint64_t digest_node(uint64_t h, kvl_cfg_node_t n, unsigned depth)
{
    if (depth > 64) { /* the loader bounds nesting long before this */
        return h;
    }
    if (kvl_cfg_is_scalar(n)) {
        const char *v = kvl_cfg_scalar(n);
        size_t len = strlen(v);
        h = digest_bytes(h, "s", 1);
        h = digest_bytes(h, &len, sizeof(len));
        return digest_bytes(h, v, len);
    }
    if (kvl_cfg_is_seq(n)) {
        size_t len = kvl_cfg_seq_len(n);
        h = digest_bytes(digest_bytes(h, "q", 1), &len, sizeof(len));
        for (size_t i = 0; i < len; i++) {
            h = digest_node(h, kvl_cfg_seq_at(n, i), depth + 1);
        }
        return h;
    }
    size_t len = kvl_cfg_is_map(n) ? kvl_cfg_map_len(n) : 0;
    h = digest_bytes(digest_bytes(h, "m", 1), &len, sizeof(len));
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t k, v;
        if (kvl_cfg_map_at(n, i, &k, &v)) {
            h = digest_node(digest_node(h, k, depth + 1), v, depth + 1);
        }
    }
    return h;
}

static void digest_keys(kvl_cfg_node_t root, kvl_agent_cfg_t *c)
{
    for (size_t i = 0; top_fields[i].key != NULL; i++) {
        kvl_cfg_node_t v;
        if (kvl_cfg_map_get(root, top_fields[i].key, &v)) {
            uint64_t h = digest_node(14695981039346656037ull, v, 0);
            c->key_digest[i] = h != 0 ? h : 1;
        }
    }
}

bool kvl_agent_cfg_key_changed(const kvl_agent_cfg_t *a, const kvl_agent_cfg_t *b, const char *key)
{
    for (size_t i = 0; top_fields[i].key != NULL; i++) {
        if (strcmp(top_fields[i].key, key) == 0) {
            return a->key_digest[i] != b->key_digest[i];
        }
    }
    return true;
}

void kvl_agent_cfg_free(kvl_agent_cfg_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->id);
    free(c->site);
    kvl_ship_cfg_free(&c->ship);
    kvl_snmp_cfg_free(&c->snmp);
    kvl_probe_cfg_free(&c->probes);
    kvl_trap_cfg_free(&c->traps);
    kvl_capture_cfg_free(&c->capture);
    free(c);
}

/* The id and the site as the collector will take them (see the top of this file). */
static int check_identity(kvl_cfg_node_t root, const kvl_agent_cfg_t *t)
{
    static const struct {
        const char *key, *what;
        size_t max;
        bool may_be_empty;
    } names[] = {{"id", "agent", KVL_AGENT_ID_MAX, false}, {"site", "site", KVL_SITE_MAX, true}};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(names); i++) {
        const char *v = i == 0 ? t->id : t->site;
        kvl_cfg_node_t at = root;
        kvl_cfg_map_get(root, names[i].key, &at);
        char why[256];
        if (v[0] == '\0' && !names[i].may_be_empty) {
            return kvl_cfg_error(at, "the %s must not be empty", names[i].key);
        }
        if (strlen(v) > names[i].max) {
            return kvl_cfg_error(at,
                                 "the %s has %zu bytes, at most %zu (the collector refuses "
                                 "longer ones)",
                                 names[i].key, strlen(v), names[i].max);
        }
        if (kvl_name_check(names[i].what, v, why, sizeof(why)) != 0) {
            return kvl_cfg_error(at, "%s", why);
        }
    }
    return 0;
}

static kvl_agent_cfg_t *finish(kvl_cfg_t *y, const char *base_dir, bool standalone, char *err,
                               size_t errlen)
{
    kvl_agent_cfg_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        kvl_cfg_free(y);
        return NULL;
    }
    kvl_agent_cfg_t t;
    memset(&t, 0, sizeof(t));
    t.log_level = KVL_LOG_LEVEL_INFO;
    kvl_ship_cfg_init(&t.ship);
    kvl_snmp_cfg_init(&t.snmp);
    kvl_probe_cfg_init(&t.probes);
    kvl_trap_cfg_init(&t.traps);
    kvl_capture_cfg_init(&t.capture);
    kvl_cfg_field_t fields[KVL_ARRAY_SIZE(top_fields)];
    top_table(fields);
    int rc = kvl_cfg_apply(kvl_cfg_root(y), fields, &t);
    if (rc == 0) {
        rc = check_identity(kvl_cfg_root(y), &t);
    }
    if (rc == 0) {
        rc = kvl_ship_cfg_finish(kvl_cfg_root(y), &t.ship, standalone);
    }
    if (rc == 0) {
        rc = kvl_snmp_cfg_finish(&t.snmp, base_dir);
    }
    if (rc == 0) {
        rc = kvl_probe_cfg_finish(&t.probes, t.id);
    }
    if (rc == 0) {
        rc = kvl_trap_cfg_finish(&t.traps, &t.snmp, t.id);
    }
    *c = t;
    if (rc == 0) {
        digest_keys(kvl_cfg_root(y), c);
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s", kvl_cfg_last_error(y));
        kvl_agent_cfg_free(c);
        c = NULL;
    }
    kvl_cfg_free(y);
    return c;
}

static kvl_agent_cfg_t *load(const char *path, bool standalone, char *err, size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_file(path, err, errlen);
    char dir[4096];
    kvl_path_parent(path, dir, sizeof(dir)); /* relative paths in the file start there */
    return y ? finish(y, dir, standalone, err, errlen) : NULL;
}

kvl_agent_cfg_t *kvl_agent_cfg_load(const char *path, char *err, size_t errlen)
{
    return load(path, false, err, errlen);
}

kvl_agent_cfg_t *kvl_agent_cfg_load_standalone(const char *path, char *err, size_t errlen)
{
    return load(path, true, err, errlen);
}

kvl_agent_cfg_t *kvl_agent_cfg_parse(const char *name, const char *text, char *err, size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_string(name, text, err, errlen);
    return y ? finish(y, ".", false, err, errlen) : NULL;
}

kvl_agent_cfg_t *kvl_agent_cfg_parse_standalone(const char *name, const char *text, char *err,
                                                size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_string(name, text, err, errlen);
    return y ? finish(y, ".", true, err, errlen) : NULL;
}
