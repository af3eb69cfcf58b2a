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
#include "probe_stats.h"

static const char *const type_names[] = {"icmp", NULL};
static const char *const later_types[] = {"stamp", "twamp", "tcp", "http", "https", NULL};

const char *kvl_probe_type_name(int type)
{
    return type == KVL_PROBE_ICMP ? "icmp" : "?";
}

void kvl_probe_cfg_init(kvl_probe_cfg_t *p)
{
    memset(p, 0, sizeof(*p));
    p->interval_ms = 60000;
    p->count = 20;
    p->size = 56;
}

static void target_free(kvl_probe_target_t *t)
{
    free(t->name);
    free(t->address);
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
        return kvl_cfg_error(n, "expected a probe type (icmp)");
    }
    for (int i = 0; type_names[i] != NULL; i++) {
        if (strcmp(s, type_names[i]) == 0) {
            *(int *)target = i;
            return 0;
        }
    }
    for (int i = 0; later_types[i] != NULL; i++) {
        if (strcmp(s, later_types[i]) == 0) {
            return kvl_cfg_error(n, "probe type '%s' is not yet supported (only icmp for now)", s);
        }
    }
    return kvl_cfg_error(n, "unknown probe type '%s' (expected icmp)", s);
}

static const kvl_cfg_field_t target_fields[] = {
    {"name", KVL_CFG_STR, offsetof(kvl_probe_target_t, name), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the target's name (names its archive)"},
    {"address", KVL_CFG_STR, offsetof(kvl_probe_target_t, address), 0, 0, NULL, NULL,
     KVL_CFG_REQUIRED, "numeric IPv4 or IPv6 address"},
    {"type", KVL_CFG_CUSTOM, offsetof(kvl_probe_target_t, type), 0, 0, NULL, parse_type, 0,
     "icmp"},
    {NULL},
};

static int check_target(kvl_cfg_node_t item, const kvl_probe_target_t *t)
{
    if (t->name[0] == '\0') {
        return kvl_cfg_error(at_key(item, "name"), "a target name must not be empty");
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

static const kvl_cfg_field_t mesh_fields[] = {
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

static const kvl_cfg_field_t probe_fields[] = {
    {"interval", KVL_CFG_DURATION, offsetof(kvl_probe_cfg_t, interval_ms), 1000, 3600000, NULL,
     NULL, 0, "one set of statistics per target per interval (60s)"},
    {"count", KVL_CFG_INT, offsetof(kvl_probe_cfg_t, count), 1, KVL_PSTATS_MAX_COUNT, NULL, NULL,
     0, "probes per interval (20)"},
    {"size", KVL_CFG_INT, offsetof(kvl_probe_cfg_t, size), 32, 8192, NULL, NULL, 0,
     "ICMP data bytes, like ping -s (56)"},
    {"targets", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_targets, 0, "the targets probed"},
    {"mesh", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_mesh, 0,
     "every other agent in these sites: {sites, agents}"},
    {NULL},
};

int kvl_probe_cfg_parse(kvl_cfg_node_t n, void *target)
{
    kvl_probe_cfg_t *p = target;
    if (!kvl_cfg_is_map(n)) {
        return kvl_cfg_error(n, "expected a mapping: interval, count, size, targets, mesh");
    }
    p->node = n;
    int rc = kvl_cfg_apply(n, probe_fields, p);
    if (rc == 0 && p->interval_ms < p->count) {
        return kvl_cfg_error(at_key(n, "count"),
                             "%lld probes do not fit in %lldms (at least 1ms apart)",
                             (long long)p->count, (long long)p->interval_ms);
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
            t->type = KVL_PROBE_ICMP;
            t->mesh = true;
            t->node = a->node;
            p->n_targets++;
            if (t->name == NULL || t->address == NULL) {
                return kvl_cfg_error(a->node, "out of memory");
            }
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
