/*
 * ship_config.c — the shipping keys of agent.yaml (see ship_config.h): collectors and their
 * mode, batching and queueing, the `spool:` section, `tls:` / `insecure:`.
 */
#include "ship_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"

void kvl_ship_cfg_init(kvl_ship_cfg_t *s)
{
    memset(s, 0, sizeof(*s));
    s->flush_interval_ms = 1000;
    s->max_queue = 100000;
    s->reconnect_max_ms = 30000;
    s->heartbeat_ms = 10000;
    s->spool.dir = NULL; /* no spool unless configured */
    s->spool.max_bytes = 2ll << 30;
    s->spool.sync_interval_ms = 1000;
}

void kvl_ship_cfg_free(kvl_ship_cfg_t *s)
{
    free(s->collector);
    for (size_t i = 0; i < KVL_MAX_COLLECTORS; i++) {
        free(s->collectors[i].addr);
    }
    free(s->spool.dir);
    kvl_tls_cfg_free(&s->tls);
}

static int parse_collector(kvl_cfg_node_t n, void *target)
{
    kvl_ship_cfg_t *c = target;
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
    kvl_ship_cfg_t *c = target;
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
    {"lane_max_bytes", KVL_CFG_INT, offsetof(kvl_spool_cfg_t, lane_max_bytes), 1024, 1ll << 40,
     NULL, NULL, 0, "bound of each lane in bytes, instead of max_size (tests, tiny disks)"},
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

#define SHIP(field) offsetof(kvl_ship_cfg_t, field)

/* The top-level keys, in the order agent_config.c lists them. */
static const kvl_cfg_field_t ship_fields[] = {
    {"collector", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_collector, 0,
     "the collector's host:port (or `collectors`)"},
    {"collectors", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_collectors, 0,
     "collector endpoints, host:port each, in order of preference"},
    {"mode", KVL_CFG_CUSTOM, SHIP(collector_mode), 0, 0, NULL, parse_collector_mode, 0,
     "failover (one collector at a time) or dual (all at once)"},
    {"flush_interval", KVL_CFG_DURATION, SHIP(flush_interval_ms), 10, 60000, NULL, NULL, 0,
     "how long samples wait to be batched (1s)"},
    {"max_queue", KVL_CFG_INT, SHIP(max_queue), 1, 10000000, NULL, NULL, 0,
     "unacknowledged batches kept in memory (100000)"},
    {"reconnect_max", KVL_CFG_DURATION, SHIP(reconnect_max_ms), 1000, 3600000, NULL, NULL, 0,
     "longest wait between connection attempts (30s)"},
    {"heartbeat", KVL_CFG_DURATION, SHIP(heartbeat_ms), 1000, 300000, NULL, NULL, 0,
     "a heartbeat to each connected collector this often (10s)"},
    {"spool", KVL_CFG_CUSTOM, SHIP(spool), 0, 0, NULL, parse_spool, 0,
     "the disk spool: dir, max_size, sync_interval"},
    {"tls", KVL_CFG_CUSTOM, SHIP(tls), 0, 0, NULL, kvl_tls_cfg_parse_client, 0,
     "mutual TLS: ca, cert, key, optional server_name"},
    {"insecure", KVL_CFG_BOOL, SHIP(tls.insecure), 0, 0, NULL, NULL, 0,
     "true: plain TCP to the collector, no authentication (instead of tls)"},
    {NULL},
};

bool kvl_ship_cfg_field(const char *key, size_t base, kvl_cfg_field_t *out)
{
    for (const kvl_cfg_field_t *f = ship_fields; f->key != NULL; f++) {
        if (strcmp(f->key, key) == 0) {
            *out = *f;
            out->offset += base;
            return true;
        }
    }
    return false;
}

/* Exactly one of `collector` and `collectors`; `collector` is the first endpoint either way. */
static int check_collectors(kvl_cfg_node_t root, kvl_ship_cfg_t *c)
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

int kvl_ship_cfg_finish(kvl_cfg_node_t root, kvl_ship_cfg_t *s, bool standalone)
{
    kvl_cfg_node_t n;
    if (standalone && !kvl_cfg_map_get(root, "collector", &n) &&
        !kvl_cfg_map_get(root, "collectors", &n) && !s->tls.given && !s->tls.insecure) {
        return 0; /* nothing is shipped: no collector, no TLS needed */
    }
    int rc = check_collectors(root, s);
    if (rc == 0) {
        rc = kvl_tls_cfg_check(root, &s->tls);
    }
    return rc;
}
