/*
 * agent_config.c — reads agent.yaml into kvl_agent_cfg_t (see agent_config.h).
 *
 * Top-level keys and device keys are field tables; `defaults` is applied to a template
 * device that every entry of `devices` starts from, whatever the order in the file.
 */
#include "agent_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "kvl.h"
#include "log.h"

static const char *const versions[] = {"1", "2c", NULL};

#define DEVICE_FIELDS                                                                              \
    {"port", KVL_CFG_INT, offsetof(kvl_device_cfg_t, port),  1, 65535, NULL,                       \
     NULL,   0,           "UDP port of the SNMP agent (161)"},                                     \
        {"version",                                                                                \
         KVL_CFG_ENUM,                                                                             \
         offsetof(kvl_device_cfg_t, version),                                                      \
         0,                                                                                        \
         0,                                                                                        \
         versions,                                                                                 \
         NULL,                                                                                     \
         0,                                                                                        \
         "SNMP version: 1 or 2c"},                                                                 \
        {"community", KVL_CFG_STR,     offsetof(kvl_device_cfg_t, community), 0, 0, NULL, NULL,    \
         0,           "SNMP community"},                                                           \
        {"interval",                                                                               \
         KVL_CFG_DURATION,                                                                         \
         offsetof(kvl_device_cfg_t, interval_ms),                                                  \
         1000,                                                                                     \
         86400000,                                                                                 \
         NULL,                                                                                     \
         NULL,                                                                                     \
         0,                                                                                        \
         "poll interval, also the archive step (60s)"},                                            \
        {"timeout",                                                                                \
         KVL_CFG_DURATION,                                                                         \
         offsetof(kvl_device_cfg_t, timeout_ms),                                                   \
         100,                                                                                      \
         60000,                                                                                    \
         NULL,                                                                                     \
         NULL,                                                                                     \
         0,                                                                                        \
         "time to wait for each answer (2s)"},                                                     \
        {"retries", KVL_CFG_INT, offsetof(kvl_device_cfg_t, retries),  0, 10, NULL,                \
         NULL,      0,           "requests resent after a timeout (1)"},                           \
    {                                                                                              \
        "max_repetitions", KVL_CFG_INT, offsetof(kvl_device_cfg_t, max_repetitions), 1, 200, NULL, \
            NULL, 0, "GETBULK max-repetitions upper bound (25)"                                    \
    }

static const kvl_cfg_field_t default_fields[] = {DEVICE_FIELDS, {NULL}};

static const kvl_cfg_field_t device_fields[] = {
    {"name", KVL_CFG_STR, offsetof(kvl_device_cfg_t, name), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the device's name, unique within the agent"},
    {"address", KVL_CFG_STR, offsetof(kvl_device_cfg_t, address), 0, 0, NULL, NULL,
     KVL_CFG_REQUIRED, "IP address of the device"},
    DEVICE_FIELDS,
    {NULL},
};

/* What the top level is read into: the config itself plus the two nodes read later. */
typedef struct top {
    kvl_agent_cfg_t cfg;
    kvl_cfg_node_t devices;
    kvl_cfg_node_t defaults;
} top_t;

static int remember_node(kvl_cfg_node_t n, void *target)
{
    *(kvl_cfg_node_t *)target = n;
    return 0;
}

static int parse_level(kvl_cfg_node_t n, void *target)
{
    const char *s = kvl_cfg_scalar(n);
    int level = s ? kvl_log_level_parse(s) : -1;
    if (level < 0) {
        return kvl_cfg_error(n, "expected a log level: error, warn, info or debug");
    }
    *(int *)target = level;
    return 0;
}

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

#define CFG(field) offsetof(top_t, cfg.field)

static const kvl_cfg_field_t top_fields[] = {
    {"id", KVL_CFG_STR, CFG(id), 0, 0, NULL, NULL, KVL_CFG_REQUIRED, "this agent's identity"},
    {"site", KVL_CFG_STR, CFG(site), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the site the agent stands at"},
    {"collector", KVL_CFG_CUSTOM, offsetof(top_t, cfg), 0, 0, NULL, parse_collector,
     KVL_CFG_REQUIRED, "the collector's host:port"},
    {"log_level", KVL_CFG_CUSTOM, CFG(log_level), 0, 0, NULL, parse_level, 0,
     "error, warn, info or debug"},
    {"flush_interval", KVL_CFG_DURATION, CFG(flush_interval_ms), 10, 60000, NULL, NULL, 0,
     "how long samples wait to be batched (1s)"},
    {"max_queue", KVL_CFG_INT, CFG(max_queue), 1, 10000000, NULL, NULL, 0,
     "unacknowledged batches kept in memory (100000)"},
    {"reconnect_max", KVL_CFG_DURATION, CFG(reconnect_max_ms), 1000, 3600000, NULL, NULL, 0,
     "longest wait between connection attempts (30s)"},
    {"defaults", KVL_CFG_CUSTOM, offsetof(top_t, defaults), 0, 0, NULL, remember_node, 0,
     "device settings defaults"},
    {"devices", KVL_CFG_CUSTOM, offsetof(top_t, devices), 0, 0, NULL, remember_node, 0,
     "the SNMP devices to poll"},
    {NULL},
};

static void device_init(kvl_device_cfg_t *d)
{
    memset(d, 0, sizeof(*d));
    d->port = 161;
    d->version = KVL_SNMP_V2C;
    d->interval_ms = 60000;
    d->timeout_ms = 2000;
    d->retries = 1;
    d->max_repetitions = 25;
}

static void device_free(kvl_device_cfg_t *d)
{
    free(d->name);
    free(d->address);
    free(d->community);
}

void kvl_agent_cfg_free(kvl_agent_cfg_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->id);
    free(c->site);
    free(c->collector);
    for (size_t i = 0; i < c->n_devices; i++) {
        device_free(&c->devices[i]);
    }
    free(c->devices);
    free(c);
}

static int read_devices(top_t *t, const kvl_device_cfg_t *defaults)
{
    kvl_agent_cfg_t *c = &t->cfg;
    kvl_cfg_node_t list = t->devices;
    if (list.index == 0) {
        return 0;
    }
    if (!kvl_cfg_is_seq(list)) {
        return kvl_cfg_error(list, "expected a list of devices (each starting with '- name:')");
    }
    size_t n = kvl_cfg_seq_len(list);
    c->devices = calloc(n ? n : 1, sizeof(*c->devices));
    if (c->devices == NULL) {
        return kvl_cfg_error(list, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(list, i);
        kvl_device_cfg_t *d = &c->devices[i];
        *d = *defaults;
        d->community = strdup(defaults->community ? defaults->community : "public");
        d->name = NULL;
        d->address = NULL;
        c->n_devices = i + 1;
        int rc = kvl_cfg_apply(item, device_fields, d);
        if (rc != 0) {
            return rc;
        }
        if (d->name[0] == '\0') {
            kvl_cfg_node_t at;
            kvl_cfg_map_get(item, "name", &at);
            return kvl_cfg_error(at, "a device name must not be empty");
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(c->devices[k].name, d->name) == 0) {
                kvl_cfg_node_t at;
                kvl_cfg_map_get(item, "name", &at);
                return kvl_cfg_error(at, "device name '%s' is used twice (names must be unique)",
                                     d->name);
            }
        }
        if (d->timeout_ms * (d->retries + 1) >= d->interval_ms) {
            kvl_cfg_node_t at = item;
            kvl_cfg_map_get(item, "timeout", &at);
            return kvl_cfg_error(at,
                                 "timeout x (retries + 1) must be shorter than the interval "
                                 "(%lldms x %lld >= %lldms)",
                                 (long long)d->timeout_ms, (long long)(d->retries + 1),
                                 (long long)d->interval_ms);
        }
    }
    return 0;
}

static kvl_agent_cfg_t *finish(kvl_cfg_t *y, char *err, size_t errlen)
{
    kvl_agent_cfg_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        kvl_cfg_free(y);
        return NULL;
    }
    top_t t = {0};
    t.cfg.log_level = KVL_LOG_LEVEL_INFO;
    t.cfg.flush_interval_ms = 1000;
    t.cfg.max_queue = 100000;
    t.cfg.reconnect_max_ms = 30000;
    kvl_device_cfg_t defaults;
    device_init(&defaults);
    defaults.community = strdup("public");
    int rc = kvl_cfg_apply(kvl_cfg_root(y), top_fields, &t);
    if (rc == 0 && t.defaults.index != 0) {
        rc = kvl_cfg_apply(t.defaults, default_fields, &defaults);
    }
    if (rc == 0) {
        rc = read_devices(&t, &defaults);
    }
    free(defaults.community);
    *c = t.cfg;
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
    return y ? finish(y, err, errlen) : NULL;
}

kvl_agent_cfg_t *kvl_agent_cfg_parse(const char *name, const char *text, char *err, size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_string(name, text, err, errlen);
    return y ? finish(y, err, errlen) : NULL;
}
