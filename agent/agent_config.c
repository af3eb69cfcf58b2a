/*
 * agent_config.c — reads agent.yaml into kvl_agent_cfg_t (see agent_config.h for the keys).
 *
 * The top level is one field table: the agent's own keys (id, site, log_level), the ship
 * part (collectors, spool, TLS, batching; fenced below), the SNMP keys, remembered here and
 * read by their room (snmp_config.c, kvl_snmp_cfg_finish), and `probes:` (probe_config.c).
 * After the table: the collectors and TLS are checked, then the SNMP keys are read, then
 * the probes finished, so the first error is the same whatever room reports it.
 */
#include "agent_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "kvl.h"
#include "log.h"

/* ---- ship (begin): collectors, spool ---- */

static int parse_collector(kvl_cfg_node_t n, void *target)
{
    kvl_agent_cfg_t *c = target;
    const char *s = kvl_cfg_scalar(n);
    if (s == NULL ||
        kvl_parse_hostport(s, c->collector_host, sizeof(c->collector_host), &c->collector_port)) {
        return kvl_cfg_error(n, "expected the collector as host:port, e.g. 127.0.0.1:5140");
    }
    free(c->collector);
    c->collector = strdup(s);
    return 0;
}

/* `collectors:` a list of host:port (up to KVL_MAX_COLLECTORS), or one as a string. */
static int parse_collectors(kvl_cfg_node_t n, void *target)
{
    kvl_agent_cfg_t *c = target;
    size_t count = kvl_cfg_is_seq(n) ? kvl_cfg_seq_len(n) : 1;
    if (count == 0 || count > KVL_MAX_COLLECTORS) {
        return kvl_cfg_error(n, "expected 1 to %d collectors as host:port", KVL_MAX_COLLECTORS);
    }
    for (size_t i = 0; i < count; i++) {
        kvl_cfg_node_t item = kvl_cfg_is_seq(n) ? kvl_cfg_seq_at(n, i) : n;
        const char *s = kvl_cfg_scalar(item);
        kvl_endpoint_t *e = &c->collectors[i];
        if (s == NULL || kvl_parse_hostport(s, e->host, sizeof(e->host), &e->port)) {
            return kvl_cfg_error(item, "expected the collector as host:port, e.g. 127.0.0.1:5140");
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(c->collectors[k].addr, s) == 0) {
                return kvl_cfg_error(item, "collector %s is listed twice", s);
            }
        }
        free(e->addr);
        e->addr = strdup(s);
        c->n_collectors = i + 1;
    }
    return 0;
}

static int parse_collector_mode(kvl_cfg_node_t n, void *target)
{
    int *mode = target;
    const char *s = kvl_cfg_scalar(n);
    if (s != NULL && strcmp(s, "failover") == 0) {
        *mode = KVL_COLLECTORS_FAILOVER;
    } else if (s != NULL && strcmp(s, "dual") == 0) {
        *mode = KVL_COLLECTORS_DUAL;
    } else {
        return kvl_cfg_error(n, "expected failover or dual");
    }
    return 0;
}

/* A size in bytes: a whole number, optionally followed by B, KiB, MiB, GiB or TiB. */
static int parse_size(kvl_cfg_node_t n, int64_t min, int64_t max, int64_t *out)
{
    static const struct {
        const char *unit;
        int shift;
    } units[] = {{"", 0}, {"B", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
    const char *s = kvl_cfg_scalar(n);
    char *end = NULL;
    unsigned long long v = 0;
    if (s != NULL && *s >= '0' && *s <= '9') {
        v = strtoull(s, &end, 10);
    }
    if (end != NULL) {
        while (*end == ' ') {
            end++;
        }
        for (size_t i = 0; i < KVL_ARRAY_SIZE(units); i++) {
            if (strcmp(end, units[i].unit) == 0) {
                if (v <= (unsigned long long)max >> units[i].shift &&
                    (int64_t)(v << units[i].shift) >= min) {
                    *out = (int64_t)(v << units[i].shift);
                    return 0;
                }
                break;
            }
        }
    }
    return kvl_cfg_error(n,
                         "expected a size from %lld MiB to %lld GiB, e.g. 2GiB or 512MiB "
                         "(units B, KiB, MiB, GiB, TiB)",
                         (long long)(min >> 20), (long long)(max >> 30));
}

#define SPOOL_MIN_BYTES (16ll << 20)
#define SPOOL_MAX_BYTES (1ll << 40)

static int parse_spool_size(kvl_cfg_node_t n, void *target)
{
    return parse_size(n, SPOOL_MIN_BYTES, SPOOL_MAX_BYTES, target);
}

static const kvl_cfg_field_t spool_fields[] = {
    {"dir", KVL_CFG_STR, offsetof(kvl_spool_cfg_t, dir), 0, 0, NULL, NULL, 0,
     "folder of the spool files (/var/lib/kaaval/spool)"},
    {"max_size", KVL_CFG_CUSTOM, offsetof(kvl_spool_cfg_t, max_bytes), 0, 0, NULL, parse_spool_size,
     0, "bound of the spool files (2GiB)"},
    {"sync_interval", KVL_CFG_DURATION, offsetof(kvl_spool_cfg_t, sync_interval_ms), 0, 3600000,
     NULL, NULL, 0, "how often written batches are forced to disk; 0: every batch (1s)"},
    {NULL},
};

static int parse_spool(kvl_cfg_node_t n, void *target)
{
    kvl_spool_cfg_t *sp = target;
    int rc = kvl_cfg_apply(n, spool_fields, sp);
    if (rc == 0 && sp->dir == NULL && !kvl_cfg_map_get(n, "dir", &(kvl_cfg_node_t){0})) {
        sp->dir = strdup("/var/lib/kaaval/spool"); /* a section without dir: the default */
    }
    if (rc == 0 && (sp->dir == NULL || sp->dir[0] == '\0')) {
        kvl_cfg_node_t d;
        return kvl_cfg_error(kvl_cfg_map_get(n, "dir", &d) ? d : n,
                             "the spool folder must not be empty");
    }
    return rc;
}

/* Exactly one of `collector` and `collectors`; `collector` is the first endpoint either way. */
static int check_collectors(kvl_cfg_node_t root, kvl_agent_cfg_t *c)
{
    kvl_cfg_node_t one, many;
    bool has_one = kvl_cfg_map_get(root, "collector", &one);
    bool has_many = kvl_cfg_map_get(root, "collectors", &many);
    if (has_one && has_many) {
        return kvl_cfg_error(many, "give either `collector` or `collectors`, not both");
    }
    if (!has_one && !has_many) {
        return kvl_cfg_error(root, "missing required setting 'collector'");
    }
    if (has_one) {
        c->collectors[0].addr = strdup(c->collector);
        snprintf(c->collectors[0].host, sizeof(c->collectors[0].host), "%s", c->collector_host);
        c->collectors[0].port = c->collector_port;
        c->n_collectors = 1;
    } else {
        c->collector = strdup(c->collectors[0].addr);
        snprintf(c->collector_host, sizeof(c->collector_host), "%s", c->collectors[0].host);
        c->collector_port = c->collectors[0].port;
    }
    kvl_cfg_node_t m;
    if (c->collector_mode == KVL_COLLECTORS_DUAL && c->n_collectors < 2) {
        return kvl_cfg_error(kvl_cfg_map_get(root, "mode", &m) ? m : root,
                             "mode dual needs at least two collectors");
    }
    return 0;
}

/* ---- ship (end) ---- */

/* --- the whole file -------------------------------------------------------------------------- */

#define CFG(field) offsetof(kvl_agent_cfg_t, field)

/* The order of the rows is the order "unknown setting" lists them in. Rooms: collector,
 * collectors, mode, flush_interval, max_queue, reconnect_max, spool, tls and insecure are
 * ship's; max_inflight, credentials, defaults, devices, groups, mib_path and metric_groups
 * SNMP's (snmp_config.h); probes the probe room's. */

static const kvl_cfg_field_t top_fields[] = {
    {"id", KVL_CFG_STR, CFG(id), 0, 0, NULL, NULL, KVL_CFG_REQUIRED, "this agent's identity"},
    {"site", KVL_CFG_STR, CFG(site), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the site the agent stands at"},
    {"collector", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_collector, 0,
     "the collector's host:port (or `collectors`)"},
    {"collectors", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_collectors, 0,
     "collector endpoints, host:port each, in order of preference"},
    {"mode", KVL_CFG_CUSTOM, CFG(collector_mode), 0, 0, NULL, parse_collector_mode, 0,
     "failover (one collector at a time) or dual (all at once)"},
    {"log_level", KVL_CFG_CUSTOM, CFG(log_level), 0, 0, NULL, kvl_cfg_parse_log_level, 0,
     "error, warn, info or debug"},
    {"flush_interval", KVL_CFG_DURATION, CFG(flush_interval_ms), 10, 60000, NULL, NULL, 0,
     "how long samples wait to be batched (1s)"},
    {"max_queue", KVL_CFG_INT, CFG(max_queue), 1, 10000000, NULL, NULL, 0,
     "unacknowledged batches kept in memory (100000)"},
    {"reconnect_max", KVL_CFG_DURATION, CFG(reconnect_max_ms), 1000, 3600000, NULL, NULL, 0,
     "longest wait between connection attempts (30s)"},
    {"max_inflight", KVL_CFG_INT, CFG(snmp.max_inflight), 1, 100000, NULL, NULL, 0,
     "SNMP requests in flight at once over all devices (500)"},
    {"spool", KVL_CFG_CUSTOM, CFG(spool), 0, 0, NULL, parse_spool, 0,
     "the disk spool: dir, max_size, sync_interval"},
    {"tls", KVL_CFG_CUSTOM, CFG(tls), 0, 0, NULL, kvl_tls_cfg_parse_client, 0,
     "mutual TLS: ca, cert, key, optional server_name"},
    {"insecure", KVL_CFG_BOOL, CFG(tls.insecure), 0, 0, NULL, NULL, 0,
     "true: plain TCP to the collector, no authentication (instead of tls)"},
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
    {NULL},
};

void kvl_agent_cfg_free(kvl_agent_cfg_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->id);
    free(c->site);
    free(c->collector);
    for (size_t i = 0; i < KVL_MAX_COLLECTORS; i++) {
        free(c->collectors[i].addr);
    }
    free(c->spool.dir);
    kvl_tls_cfg_free(&c->tls);
    kvl_snmp_cfg_free(&c->snmp);
    kvl_probe_cfg_free(&c->probes);
    free(c);
}

static kvl_agent_cfg_t *finish(kvl_cfg_t *y, const char *base_dir, char *err, size_t errlen)
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
    /* ---- ship (begin) ---- */
    t.flush_interval_ms = 1000;
    t.max_queue = 100000;
    t.reconnect_max_ms = 30000;
    t.spool.dir = NULL; /* no spool unless configured */
    t.spool.max_bytes = 2ll << 30;
    t.spool.sync_interval_ms = 1000;
    /* ---- ship (end) ---- */
    kvl_snmp_cfg_init(&t.snmp);
    kvl_probe_cfg_init(&t.probes);
    int rc = kvl_cfg_apply(kvl_cfg_root(y), top_fields, &t);
    /* ---- ship (begin) ---- */
    if (rc == 0) {
        rc = check_collectors(kvl_cfg_root(y), &t);
    }
    if (rc == 0) {
        rc = kvl_tls_cfg_check(kvl_cfg_root(y), &t.tls);
    }
    /* ---- ship (end) ---- */
    if (rc == 0) {
        rc = kvl_snmp_cfg_finish(&t.snmp, base_dir);
    }
    if (rc == 0) {
        rc = kvl_probe_cfg_finish(&t.probes, t.id);
    }
    *c = t;
    if (rc != 0) {
        snprintf(err, errlen, "%s", kvl_cfg_last_error(y));
        kvl_agent_cfg_free(c);
        c = NULL;
    }
    kvl_cfg_free(y);
    return c;
}

kvl_agent_cfg_t *kvl_agent_cfg_load(const char *path, char *err, size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_file(path, err, errlen);
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) {
        snprintf(dir, sizeof(dir), ".");
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }
    return y ? finish(y, dir, err, errlen) : NULL;
}

kvl_agent_cfg_t *kvl_agent_cfg_parse(const char *name, const char *text, char *err, size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_string(name, text, err, errlen);
    return y ? finish(y, ".", err, errlen) : NULL;
}
