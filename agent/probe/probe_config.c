/*
 * probe_config.c — parsing and checks of the `probes:` section (see probe_config.h).
 *
 * Field tables for the section, a target and a mesh entry; the mesh is kept as written
 * while the file is read (this agent's id may come later in the file) and turned into
 * targets by kvl_probe_cfg_finish.
 */
#include "probe_config.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "names.h"
#include "probe_stats.h"
#include "reach.h"
#include "stamp.h"

/* Indexed by kvl_probe_type_t. */
static const char *const type_names[] = {"icmp", "stamp", "tcp", "http", "https", NULL};
static const char *const clock_names[] = {"kernel", "assumed", "none", NULL};

const char *kvl_probe_type_name(int type)
{
    return type >= 0 && type <= KVL_PROBE_HTTPS ? type_names[type] : "?";
}

uint32_t kvl_probe_target_count(const kvl_probe_cfg_t *p, const kvl_probe_target_t *t)
{
    if (t->count > 0) {
        return (uint32_t)t->count;
    }
    if (t->type == KVL_PROBE_HTTP || t->type == KVL_PROBE_HTTPS) {
        return 1;
    }
    return (uint32_t)p->count;
}

void kvl_probe_cfg_init(kvl_probe_cfg_t *p)
{
    memset(p, 0, sizeof(*p));
    p->interval_ms = 60000;
    p->count = 20;
    p->size = 56;
    p->reflector_enabled = true;
    p->reflector_port = KVL_STAMP_PORT;
    p->clock_sync = KVL_CLOCK_KERNEL;
    p->clock_error_us = 100;
    p->clock_max_error_us = 10000;
    p->confirm_count = 3;
    p->confirm_spacing_ms = 250;
}

static void target_free(kvl_probe_target_t *t)
{
    free(t->name);
    free(t->address);
    free(t->url);
    free(t->ca_file);
}

void kvl_probe_cfg_free(kvl_probe_cfg_t *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->n_targets; i++) {
        target_free(&p->targets[i]);
    }
    free(p->targets);
    for (size_t i = 0; i < p->n_mesh_sites; i++) {
        free(p->mesh_sites[i]);
    }
    free(p->mesh_sites);
    for (size_t i = 0; i < p->n_mesh; i++) {
        free(p->mesh[i].id);
        free(p->mesh[i].site);
        free(p->mesh[i].address);
    }
    free(p->mesh);
    memset(p, 0, sizeof(*p));
}

static kvl_cfg_node_t at_key(kvl_cfg_node_t map, const char *key)
{
    kvl_cfg_node_t at = map;
    kvl_cfg_map_get(map, key, &at);
    return at;
}

static bool numeric_address(const char *s)
{
    unsigned char b[16];
    return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static int parse_type(kvl_cfg_node_t n, void *target)
{
    const char *s = kvl_cfg_scalar(n);
    if (s == NULL) {
        return kvl_cfg_error(n, "expected a probe type (icmp, stamp, tcp, http, https)");
    }
    for (int i = 0; type_names[i] != NULL; i++) {
        if (strcmp(s, type_names[i]) == 0) {
            *(int *)target = i;
            return 0;
        }
    }
    if (strcmp(s, "twamp") == 0) {
        return kvl_cfg_error(n, "probe type 'twamp' is not supported: use stamp (its "
                                "unauthenticated packets are TWAMP-Light's)");
    }
    return kvl_cfg_error(n, "unknown probe type '%s' (expected icmp, stamp, tcp, http or https)",
                         s);
}

static const kvl_cfg_field_t target_fields[] = {
    {"name", KVL_CFG_STR, offsetof(kvl_probe_target_t, name), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the target's name (names its archive)"},
    {"address", KVL_CFG_STR, offsetof(kvl_probe_target_t, address), 0, 0, NULL, NULL, 0,
     "numeric IPv4 or IPv6 address (all types but http/https)"},
    {"type", KVL_CFG_CUSTOM, offsetof(kvl_probe_target_t, type), 0, 0, NULL, parse_type, 0,
     "icmp, stamp, tcp, http or https (icmp)"},
    {"port", KVL_CFG_INT, offsetof(kvl_probe_target_t, port), 1, 65535, NULL, NULL, 0,
     "stamp: the reflector's UDP port (862); tcp: the port connected to"},
    {"url", KVL_CFG_STR, offsetof(kvl_probe_target_t, url), 0, 0, NULL, NULL, 0,
     "http/https: the URL fetched"},
    {"ca_file", KVL_CFG_STR, offsetof(kvl_probe_target_t, ca_file), 0, 0, NULL, NULL, 0,
     "https: a CA bundle to trust instead of the system's"},
    {"expect_status", KVL_CFG_INT, offsetof(kvl_probe_target_t, expect_status), 100, 599, NULL,
     NULL, 0, "http/https: the status code expected (any)"},
    {"count", KVL_CFG_INT, offsetof(kvl_probe_target_t, count), 1, KVL_PSTATS_MAX_COUNT, NULL, NULL,
     0, "this target's probes per interval (the section's; http/https 1)"},
    {NULL},
};

static int check_target(kvl_cfg_node_t item, const kvl_probe_target_t *t)
{
    if (t->name[0] == '\0') {
        return kvl_cfg_error(at_key(item, "name"), "a target name must not be empty");
    }
    bool web = t->type == KVL_PROBE_HTTP || t->type == KVL_PROBE_HTTPS;
    if (web) {
        const char *scheme = t->type == KVL_PROBE_HTTPS ? "https://" : "http://";
        if (t->url == NULL) {
            return kvl_cfg_error(item, "an %s target needs a url", kvl_probe_type_name(t->type));
        }
        if (strncmp(t->url, scheme, strlen(scheme)) != 0 || t->url[strlen(scheme)] == '\0') {
            return kvl_cfg_error(at_key(item, "url"), "expected a URL starting with %s, not '%s'",
                                 scheme, t->url);
        }
        if (t->address != NULL) {
            return kvl_cfg_error(at_key(item, "address"), "an %s target has a url, not an address",
                                 kvl_probe_type_name(t->type));
        }
        return 0;
    }
    if (t->url != NULL || t->expect_status != 0 || t->ca_file != NULL) {
        return kvl_cfg_error(at_key(item, t->url != NULL       ? "url"
                                          : t->ca_file != NULL ? "ca_file"
                                                               : "expect_status"),
                             "only http and https targets take this key");
    }
    if (t->address == NULL) {
        return kvl_cfg_error(item, "a %s target needs an address", kvl_probe_type_name(t->type));
    }
    if (t->type == KVL_PROBE_TCP && t->port == 0) {
        return kvl_cfg_error(item, "a tcp target needs a port");
    }
    if (t->type == KVL_PROBE_ICMP && t->port != 0) {
        return kvl_cfg_error(at_key(item, "port"), "icmp targets have no port");
    }
    if (!numeric_address(t->address)) {
        return kvl_cfg_error(at_key(item, "address"),
                             "expected a numeric IPv4 or IPv6 address, not '%s'", t->address);
    }
    return 0;
}

static int parse_targets(kvl_cfg_node_t n, void *target)
{
    kvl_probe_cfg_t *p = target;
    if (!kvl_cfg_is_seq(n)) {
        return kvl_cfg_error(n, "expected a list of targets");
    }
    size_t len = kvl_cfg_seq_len(n);
    kvl_probe_target_t *v = calloc(len ? len : 1, sizeof(*v));
    if (v == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    p->targets = v;
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(n, i);
        if (!kvl_cfg_is_map(item)) {
            return kvl_cfg_error(item, "expected a target: {name, address, type}");
        }
        kvl_probe_target_t *t = &v[p->n_targets++];
        t->type = KVL_PROBE_ICMP;
        t->node = item;
        int rc = kvl_cfg_apply(item, target_fields, t);
        if (rc == 0) {
            rc = check_target(item, t);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int parse_sites(kvl_cfg_node_t n, void *target)
{
    kvl_probe_cfg_t *p = target;
    if (!kvl_cfg_is_seq(n)) {
        return kvl_cfg_error(n, "expected a list of site names");
    }
    size_t len = kvl_cfg_seq_len(n);
    p->mesh_sites = calloc(len ? len : 1, sizeof(char *));
    if (p->mesh_sites == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(n, i);
        int rc = kvl_cfg_read_str(item, &p->mesh_sites[p->n_mesh_sites]);
        if (rc != 0) {
            return rc;
        }
        p->n_mesh_sites++;
    }
    return 0;
}

static const kvl_cfg_field_t mesh_agent_fields[] = {
    {"id", KVL_CFG_STR, offsetof(kvl_probe_mesh_agent_t, id), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the agent's id"},
    {"site", KVL_CFG_STR, offsetof(kvl_probe_mesh_agent_t, site), 0, 0, NULL, NULL,
     KVL_CFG_REQUIRED, "the agent's site"},
    {"address", KVL_CFG_STR, offsetof(kvl_probe_mesh_agent_t, address), 0, 0, NULL, NULL,
     KVL_CFG_REQUIRED, "the address other agents probe it at"},
    {NULL},
};

static int parse_mesh_agents(kvl_cfg_node_t n, void *target)
{
    kvl_probe_cfg_t *p = target;
    if (!kvl_cfg_is_seq(n)) {
        return kvl_cfg_error(n, "expected a list of agents: {id, site, address}");
    }
    size_t len = kvl_cfg_seq_len(n);
    p->mesh = calloc(len ? len : 1, sizeof(*p->mesh));
    if (p->mesh == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(n, i);
        if (!kvl_cfg_is_map(item)) {
            return kvl_cfg_error(item, "expected an agent: {id, site, address}");
        }
        kvl_probe_mesh_agent_t *a = &p->mesh[p->n_mesh++];
        a->node = item;
        int rc = kvl_cfg_apply(item, mesh_agent_fields, a);
        if (rc != 0) {
            return rc;
        }
        if (a->id[0] == '\0') {
            return kvl_cfg_error(at_key(item, "id"), "an agent id must not be empty");
        }
        if (strlen(a->id) > KVL_AGENT_ID_MAX) {
            return kvl_cfg_error(at_key(item, "id"),
                                 "the agent id has %zu bytes, at most %d (the collector refuses "
                                 "longer ones)",
                                 strlen(a->id), KVL_AGENT_ID_MAX);
        }
        if (!numeric_address(a->address)) {
            return kvl_cfg_error(at_key(item, "address"),
                                 "expected a numeric IPv4 or IPv6 address, not '%s'", a->address);
        }
        for (size_t k = 0; k + 1 < p->n_mesh; k++) {
            if (strcmp(p->mesh[k].id, a->id) == 0) {
                return kvl_cfg_error(at_key(item, "id"), "agent '%s' is listed twice in the mesh",
                                     a->id);
            }
        }
    }
    return 0;
}

static int parse_mesh_type(kvl_cfg_node_t n, void *target)
{
    const char *s = kvl_cfg_scalar(n);
    if (s != NULL && strcmp(s, "icmp") == 0) {
        *(int *)target = KVL_PROBE_ICMP;
        return 0;
    }
    if (s != NULL && strcmp(s, "stamp") == 0) {
        *(int *)target = KVL_PROBE_STAMP;
        return 0;
    }
    return kvl_cfg_error(n, "expected the mesh's probe type: icmp or stamp");
}

static const kvl_cfg_field_t mesh_fields[] = {
    {"type", KVL_CFG_CUSTOM, offsetof(kvl_probe_cfg_t, mesh_type), 0, 0, NULL, parse_mesh_type, 0,
     "icmp or stamp (icmp)"},
    {"sites", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_sites, 0,
     "the sites whose agents this agent probes (all when left out)"},
    {"agents", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_mesh_agents, KVL_CFG_REQUIRED,
     "every agent of the mesh: {id, site, address}"},
    {NULL},
};

static int parse_mesh(kvl_cfg_node_t n, void *target)
{
    return kvl_cfg_apply(n, mesh_fields, target);
}

static const kvl_cfg_field_t reflector_fields[] = {
    {"enabled", KVL_CFG_BOOL, offsetof(kvl_probe_cfg_t, reflector_enabled), 0, 0, NULL, NULL, 0,
     "answer STAMP and TWAMP-Light test packets (true)"},
    {"port", KVL_CFG_INT, offsetof(kvl_probe_cfg_t, reflector_port), 1, 65535, NULL, NULL, 0,
     "the UDP port (862)"},
    {NULL},
};

static int parse_reflector(kvl_cfg_node_t n, void *target)
{
    return kvl_cfg_apply(n, reflector_fields, target);
}

/* A duration in microseconds: a number followed by us, ms or s. */
static int parse_us(kvl_cfg_node_t n, void *target)
{
    const char *s = kvl_cfg_scalar(n);
    char *end = NULL;
    double v = s != NULL ? strtod(s, &end) : -1;
    double mul = 0;
    if (end != NULL && end != s) {
        mul = strcmp(end, "us") == 0   ? 1
              : strcmp(end, "ms") == 0 ? 1e3
              : strcmp(end, "s") == 0  ? 1e6
                                       : 0;
    }
    if (mul == 0 || !(v >= 0) || v * mul > 1e9) {
        return kvl_cfg_error(n, "expected a clock error such as 50us, 2ms or 1s (at most 1000s)");
    }
    *(int64_t *)target = (int64_t)(v * mul + 0.5);
    return 0;
}

static const kvl_cfg_field_t clock_fields[] = {
    {"sync", KVL_CFG_ENUM, offsetof(kvl_probe_cfg_t, clock_sync), 0, 0, clock_names, NULL, 0,
     "kernel (ntp_adjtime), assumed or none (kernel)"},
    {"error", KVL_CFG_CUSTOM, offsetof(kvl_probe_cfg_t, clock_error_us), 0, 0, NULL, parse_us, 0,
     "the clock error claimed when sync is assumed (100us)"},
    {"max_error", KVL_CFG_CUSTOM, offsetof(kvl_probe_cfg_t, clock_max_error_us), 0, 0, NULL,
     parse_us, 0, "one-way delays only when both ends' errors sum to at most this (10ms)"},
    {NULL},
};

static int parse_clock(kvl_cfg_node_t n, void *target)
{
    return kvl_cfg_apply(n, clock_fields, target);
}

static const kvl_cfg_field_t probe_fields[] = {
    {"interval", KVL_CFG_DURATION, offsetof(kvl_probe_cfg_t, interval_ms), 1000, 3600000, NULL,
     NULL, 0, "one set of statistics per target per interval (60s)"},
    {"count", KVL_CFG_INT, offsetof(kvl_probe_cfg_t, count), 1, KVL_PSTATS_MAX_COUNT, NULL, NULL, 0,
     "probes per interval (20)"},
    {"size", KVL_CFG_INT, offsetof(kvl_probe_cfg_t, size), 32, 8192, NULL, NULL, 0,
     "ICMP data bytes, like ping -s (56)"},
    {"targets", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_targets, 0, "the targets probed"},
    {"mesh", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_mesh, 0,
     "every other agent in these sites: {type, sites, agents}"},
    {"reflector", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_reflector, 0,
     "the STAMP reflector: {enabled, port}"},
    {"clock", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_clock, 0,
     "clock synchronisation for one-way delays: {sync, error, max_error}"},
    {"confirm_count", KVL_CFG_INT, offsetof(kvl_probe_cfg_t, confirm_count), 1,
     KVL_REACH_CONFIRM_MAX, NULL, NULL, 0, "probes confirming a lost probe at once (3)"},
    {"confirm_spacing", KVL_CFG_DURATION, offsetof(kvl_probe_cfg_t, confirm_spacing_ms), 10, 5000,
     NULL, NULL, 0, "between the confirming probes (250ms)"},
    {NULL},
};

int kvl_probe_cfg_parse(kvl_cfg_node_t n, void *target)
{
    kvl_probe_cfg_t *p = target;
    if (!kvl_cfg_is_map(n)) {
        return kvl_cfg_error(n, "expected a mapping: interval, count, size, targets, mesh, "
                                "reflector, clock, confirm_count, confirm_spacing");
    }
    p->node = n;
    int rc = kvl_cfg_apply(n, probe_fields, p);
    if (rc == 0 && p->interval_ms < p->count) {
        return kvl_cfg_error(at_key(n, "count"),
                             "%lld probes do not fit in %lldms (at least 1ms apart)",
                             (long long)p->count, (long long)p->interval_ms);
    }
    for (size_t i = 0; rc == 0 && i < p->n_targets; i++) {
        if ((int64_t)kvl_probe_target_count(p, &p->targets[i]) > p->interval_ms) {
            return kvl_cfg_error(at_key(p->targets[i].node, "count"),
                                 "%u probes do not fit in %lldms (at least 1ms apart)",
                                 kvl_probe_target_count(p, &p->targets[i]),
                                 (long long)p->interval_ms);
        }
    }
    return rc;
}

static bool site_selected(const kvl_probe_cfg_t *p, const char *site)
{
    if (p->mesh_sites == NULL) {
        return true;
    }
    for (size_t i = 0; i < p->n_mesh_sites; i++) {
        if (strcmp(p->mesh_sites[i], site) == 0) {
            return true;
        }
    }
    return false;
}

int kvl_probe_cfg_finish(kvl_probe_cfg_t *p, const char *self_id)
{
    if (p->n_mesh > 0) {
        kvl_probe_target_t *v =
            realloc(p->targets, (p->n_targets + p->n_mesh) * sizeof(*p->targets));
        if (v == NULL) {
            return kvl_cfg_error(p->node, "out of memory");
        }
        p->targets = v;
        for (size_t i = 0; i < p->n_mesh; i++) {
            const kvl_probe_mesh_agent_t *a = &p->mesh[i];
            if (strcmp(a->id, self_id) == 0 || !site_selected(p, a->site)) {
                continue;
            }
            kvl_probe_target_t *t = &p->targets[p->n_targets];
            memset(t, 0, sizeof(*t));
            t->name = strdup(a->id);
            t->address = strdup(a->address);
            t->type = p->mesh_type;
            t->port = p->mesh_type == KVL_PROBE_STAMP ? p->reflector_port : 0;
            t->mesh = true;
            t->node = a->node;
            p->n_targets++;
            if (t->name == NULL || t->address == NULL) {
                return kvl_cfg_error(a->node, "out of memory");
            }
        }
    }
    for (size_t i = 0; i < p->n_targets; i++) {
        /* A target's name is its archive's file name (mesh targets: the agent's id). */
        char why[256];
        if (kvl_name_check("probe target", p->targets[i].name, why, sizeof(why)) != 0) {
            return kvl_cfg_error(at_key(p->targets[i].node, p->targets[i].mesh ? "id" : "name"),
                                 "%s", why);
        }
    }
    for (size_t i = 1; i < p->n_targets; i++) {
        for (size_t k = 0; k < i; k++) {
            if (strcmp(p->targets[k].name, p->targets[i].name) == 0) {
                return kvl_cfg_error(at_key(p->targets[i].node, p->targets[i].mesh ? "id" : "name"),
                                     "target name '%s' is used twice (names must be unique; "
                                     "mesh targets are named by agent id)",
                                     p->targets[i].name);
            }
        }
    }
    return 0;
}
