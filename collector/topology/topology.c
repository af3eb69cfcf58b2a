/*
 * topology.c — the collector's topology (topology.h): the graph made from the site tree,
 * the agents and the inventory at each refresh, the states read from the latest values and
 * the ingest, and its JSON.
 *
 * A refresh first marks every node up and every link seen this time up (add_node and
 * add_link find what is already there, so ids stay), then lowers what the sources say is
 * down, forgets the links not seen this time (a site moved in the tree, an uplink changed,
 * a device retired: its member link goes, its node stays unconnected), and recomputes.
 */
#include "topology.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inventory_each.h"
#include "kvl.h"
#include "log.h"
#include "names.h"
#include "timeutil.h"
#include "topo_changes.h"

struct kvl_topology {
    kvl_topology_opts_t o;
    kvl_topo_t *g;
    kvl_topo_changes_t *changes;
    uint8_t *seen; /* per link id: seen in this refresh */
    size_t seen_cap;
    int64_t refreshed_ms;
    json_t *device_by_name; /* this refresh: device name -> node id (the first agent's) */
    json_t *ident;          /* this refresh: "c:"chassis id, "n:"system name, "a:"address -> id */
    json_t *site_of;        /* this refresh: device node id (decimal) -> its site */
    json_t *nbr_sites;      /* this refresh: "child|parent" site pairs joined by LLDP/CDP */
    json_t *conflicts;      /* sites whose uplink and neighbours disagree, logged once */
    json_t *site_agents;    /* this refresh: site -> [agents seen, agents lost] */
    json_t *lost_agents;    /* this refresh: the agents the ingest says are lost */
    uint32_t root;          /* this refresh: the first root (the collector's side) */
    bool failed;            /* this refresh ran out of memory */
};

static int64_t now_ms(const kvl_topology_t *t)
{
    return t->o.now_ms != NULL ? t->o.now_ms() : kvl_now_ms();
}

int kvl_topology_new(const kvl_topology_opts_t *o, kvl_topology_t **out, char *err, size_t errlen)
{
    *out = NULL;
    kvl_topology_t *t = calloc(1, sizeof(*t));
    if (t == NULL || kvl_topo_new(&t->g) != 0) {
        free(t);
        snprintf(err, errlen, "topology: out of memory");
        return KVL_ENOMEM;
    }
    t->o = *o;
    t->o.dir = NULL;
    int rc = kvl_topo_changes_open(o->dir, 10000, &t->changes, err, errlen);
    if (rc != 0) {
        kvl_topo_free(t->g);
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void kvl_topology_set_sites(kvl_topology_t *t, const kvl_sites_cfg_t *sites)
{
    t->o.sites = sites;
}

void kvl_topology_free(kvl_topology_t *t)
{
    if (t == NULL) {
        return;
    }
    kvl_topo_free(t->g);
    kvl_topo_changes_free(t->changes);
    free(t->seen);
    json_decref(t->device_by_name);
    json_decref(t->site_agents);
    json_decref(t->lost_agents);
    json_decref(t->ident);
    json_decref(t->site_of);
    json_decref(t->nbr_sites);
    json_decref(t->conflicts);
    free(t);
}

const kvl_topo_t *kvl_topology_graph(const kvl_topology_t *t)
{
    return t->g;
}

/* ------------------------------------------------------------- building -------------- */

static uint32_t node(kvl_topology_t *t, kvl_topo_kind_t kind, const char *name)
{
    uint32_t id = KVL_TOPO_NONE;
    if (kvl_topo_add_node(t->g, kind, name, &id) != 0) {
        t->failed = true;
        return KVL_TOPO_NONE;
    }
    return id;
}

/* A link seen in this refresh (up unless told otherwise later). */
static uint32_t add_link(kvl_topology_t *t, uint32_t a, uint32_t b, kvl_topo_source_t src,
                         const char *a_if, const char *b_if)
{
    uint32_t id = KVL_TOPO_NONE;
    if (a == KVL_TOPO_NONE || b == KVL_TOPO_NONE ||
        kvl_topo_add_link(t->g, a, b, src, a_if, b_if, t->refreshed_ms, &id) != 0) {
        t->failed = t->failed || (a != KVL_TOPO_NONE && b != KVL_TOPO_NONE && a != b);
        return KVL_TOPO_NONE;
    }
    if (id >= t->seen_cap) {
        size_t ncap = t->seen_cap == 0 ? 256 : t->seen_cap;
        while (ncap <= id) {
            ncap *= 2;
        }
        uint8_t *ns = realloc(t->seen, ncap);
        if (ns == NULL) {
            t->failed = true;
            return id;
        }
        memset(ns + t->seen_cap, 0, ncap - t->seen_cap);
        t->seen = ns;
        t->seen_cap = ncap;
    }
    t->seen[id] = 1;
    kvl_topo_set_link_up(t->g, id, true);
    return id;
}

/* The node of device `device` of `agent` ("agent/device"), added when add is true (else
 * KVL_TOPO_NONE when not known). */
static uint32_t device_node(kvl_topology_t *t, const char *agent, const char *device, bool add)
{
    size_t len = strlen(agent) + strlen(device) + 2;
    char *name = malloc(len);
    if (name == NULL) {
        t->failed = true;
        return KVL_TOPO_NONE;
    }
    snprintf(name, len, "%s/%s", agent, device);
    uint32_t d =
        add ? node(t, KVL_TOPO_DEVICE, name) : kvl_topo_find_node(t->g, KVL_TOPO_DEVICE, name);
    free(name);
    return d;
}

/* site -> [seen, lost] counts of its agents */
static void count_agent(kvl_topology_t *t, const char *site, bool lost)
{
    json_t *c = json_object_get(t->site_agents, site);
    if (c == NULL) {
        c = json_pack("[ii]", 0, 0);
        if (c == NULL || json_object_set_new(t->site_agents, site, c) != 0) {
            t->failed = true;
            return;
        }
    }
    json_array_set_new(c, 0, json_integer(json_integer_value(json_array_get(c, 0)) + 1));
    if (lost) {
        json_array_set_new(c, 1, json_integer(json_integer_value(json_array_get(c, 1)) + 1));
    }
}

static void on_agent(void *ctx, const kvl_board_agent_t *a)
{
    kvl_topology_t *t = ctx;
    const char *site = a->site != NULL && a->site[0] != '\0' ? a->site : KVL_SITES_UNPLACED;
    uint32_t s = node(t, KVL_TOPO_SITE, site);
    uint32_t n = node(t, KVL_TOPO_AGENT, a->id);
    if (n != KVL_TOPO_NONE) {
        kvl_topo_set_node_up(t->g, n, !a->lost);
    }
    add_link(t, s, n, KVL_TOPO_SRC_MEMBER, NULL, NULL);
    count_agent(t, site, a->lost);
    if (a->lost) {
        if (json_object_set_new(t->lost_agents, a->id, json_true()) != 0) {
            t->failed = true;
        }
    } else if (t->root != KVL_TOPO_NONE && s != t->root) {
        /* it reports to the collector: the path from the NOC to it works, whichever it is */
        add_link(t, t->root, n, KVL_TOPO_SRC_VANTAGE, NULL, NULL);
    }
}

/* Without the ingest's view: the agents the latest values saw. */
static void on_latest_agent(void *ctx, const kvl_latest_agent_t *a)
{
    kvl_board_agent_t v = {.id = a->id, .site = a->site, .lost = a->lost};
    on_agent(ctx, &v);
}

/* A link measurement of an agent (scope link, instance = its target's name) whose target is
 * an agent (the mesh names targets by agent id) or a site, answered in its last interval
 * (lost_pct under 100, not older than three intervals): a probe link between the two. A
 * target that loses everything adds nothing: the absence of an answer proves no cut (the
 * other evidence decides). */
static bool on_probe(void *ctx, const kvl_latest_value_t *v)
{
    kvl_topology_t *t = ctx;
    if (strcmp(v->metric, "lost_pct") != 0 || v->unknown ||
        t->refreshed_ms - v->time_ms > 3 * (int64_t)v->interval_s * 1000 ||
        json_object_get(t->lost_agents, v->agent) != NULL) {
        return true;
    }
    double lost = v->real ? v->real_value : (double)v->value;
    if (!(lost < 100.0)) {
        return true;
    }
    uint32_t a = kvl_topo_find_node(t->g, KVL_TOPO_AGENT, v->agent);
    uint32_t b = kvl_topo_find_node(t->g, KVL_TOPO_AGENT, v->instance);
    if (b == KVL_TOPO_NONE) {
        b = kvl_topo_find_node(t->g, KVL_TOPO_SITE, v->instance);
    }
    if (a != KVL_TOPO_NONE && b != KVL_TOPO_NONE && a != b) {
        add_link(t, a, b, KVL_TOPO_SRC_PROBE, NULL, NULL);
    }
    return true;
}

/* Whether a latest integer value says "down": `reachable` 0, oper_status 2 (down) or
 * 7 (lowerLayerDown). No value, or an unknown one: not down. */
static bool latest_down(const kvl_topology_t *t, const char *agent, const char *device,
                        kvl_scope_t scope, const char *instance, const char *metric)
{
    kvl_latest_value_t v;
    if (t->o.latest == NULL ||
        kvl_latest_get(t->o.latest, agent, device, scope, instance, metric, &v) != 0 || v.unknown ||
        v.real) {
        return false;
    }
    if (strcmp(metric, "reachable") == 0) {
        return v.value == 0;
    }
    return v.value == 2 || v.value == 7;
}

static void on_item(void *ctx, const kvl_inventory_item_t *it)
{
    kvl_topology_t *t = ctx;
    if (it->interface != NULL || it->retired) {
        return;
    }
    uint32_t d = device_node(t, it->agent, it->device, true);
    if (d == KVL_TOPO_NONE) {
        return;
    }
    /* a device whose agent is lost is not known to be up: nothing tells */
    kvl_topo_set_node_up(
        t->g, d,
        json_object_get(t->lost_agents, it->agent) == NULL &&
            !latest_down(t, it->agent, it->device, KVL_SCOPE_DEVICE, "", "reachable"));
    const char *site = it->site != NULL && it->site[0] != '\0' ? it->site : KVL_SITES_UNPLACED;
    add_link(t, node(t, KVL_TOPO_SITE, site), d, KVL_TOPO_SRC_MEMBER, NULL, NULL);
    if (json_object_get(t->device_by_name, it->device) == NULL &&
        json_object_set_new(t->device_by_name, it->device, json_integer(d)) != 0) {
        t->failed = true;
    }
    const struct {
        const char *prefix, *value;
    } keys[] = {{"c:", it->lldp_chassis_id},
                {"n:", it->lldp_sys_name},
                {"n:", it->sys_name},
                {"a:", it->address}};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(keys); i++) {
        if (keys[i].value == NULL) {
            continue;
        }
        char key[600];
        snprintf(key, sizeof(key), "%s%s", keys[i].prefix, keys[i].value);
        /* the first device with that identity keeps it (one device polled by two agents) */
        if (json_object_get(t->ident, key) == NULL &&
            json_object_set_new(t->ident, key, json_integer(d)) != 0) {
            t->failed = true;
        }
    }
    char id[16];
    snprintf(id, sizeof(id), "%u", d);
    if (json_object_set_new(t->site_of, id, json_string(site)) != 0) {
        t->failed = true;
    }
}

static uint32_t ident_get(const kvl_topology_t *t, const char *prefix, const char *value)
{
    if (value == NULL || value[0] == '\0') {
        return KVL_TOPO_NONE;
    }
    char key[600];
    snprintf(key, sizeof(key), "%s%s", prefix, value);
    json_t *v = json_object_get(t->ident, key);
    return v != NULL ? (uint32_t)json_integer_value(v) : KVL_TOPO_NONE;
}

static const char *site_of(const kvl_topology_t *t, uint32_t d)
{
    char id[16];
    snprintf(id, sizeof(id), "%u", d);
    return json_string_value(json_object_get(t->site_of, id));
}

/* A neighbour that is a known device: a link between the two devices, down while the local
 * interface is down. The remote device is found by its LLDP chassis id, else its system
 * name (LLDP's or sysName), else its management address; the remote port by its ifName (port
 * id subtype 5), else its description, else its id. */
static void on_neighbour(void *ctx, const kvl_inventory_nbr_t *n)
{
    kvl_topology_t *t = ctx;
    if (n->gone_ms != 0) {
        return;
    }
    uint32_t a = device_node(t, n->agent, n->device, false);
    uint32_t b = ident_get(t, "c:", n->chassis_id);
    if (b == KVL_TOPO_NONE) {
        b = ident_get(t, "n:", n->sys_name);
    }
    if (b == KVL_TOPO_NONE) {
        b = ident_get(t, "a:", n->mgmt_addr);
    }
    if (a == KVL_TOPO_NONE || b == KVL_TOPO_NONE || a == b) {
        return;
    }
    const char *rport = strcmp(n->port_id_subtype, "5") == 0 ? n->port_id
                        : n->port_desc[0] != '\0'            ? n->port_desc
                                                             : n->port_id;
    kvl_topo_source_t src = strcmp(n->protocol, "cdp") == 0 ? KVL_TOPO_SRC_CDP : KVL_TOPO_SRC_LLDP;
    uint32_t l = add_link(t, a, b, src, n->local_if, rport);
    if (l != KVL_TOPO_NONE && n->local_if[0] != '\0') {
        kvl_topo_set_link_up(
            t->g, l,
            !latest_down(t, n->agent, n->device, KVL_SCOPE_INTERFACE, n->local_if, "oper_status"));
    }
    const char *sa = site_of(t, a), *sb = site_of(t, b);
    if (sa != NULL && sb != NULL && strcmp(sa, sb) != 0) {
        char key[2 * KVL_SITE_MAX + 4];
        snprintf(key, sizeof(key), "%s|%s", sa, sb);
        json_object_set_new(t->nbr_sites, key, json_true());
        snprintf(key, sizeof(key), "%s|%s", sb, sa);
        json_object_set_new(t->nbr_sites, key, json_true());
    }
}

/* The way up of site i: its explicit uplink, else a tree link down when all its agents
 * are lost. */
static void site_up(kvl_topology_t *t, const kvl_sites_cfg_t *sc, size_t i, uint32_t s,
                    const uint32_t *site_nodes)
{
    const kvl_site_t *site = &sc->v[i];
    if (site->parent == KVL_SITE_NONE) {
        return;
    }
    /* neighbours joining a device of the site to one of its parent's: they are the way up */
    char key[2 * KVL_SITE_MAX + 4];
    snprintf(key, sizeof(key), "%s|%s", site->name, sc->v[site->parent].name);
    if (json_object_get(t->nbr_sites, key) != NULL) {
        if (site->uplink_device != NULL && json_object_get(t->conflicts, site->name) == NULL) {
            /* the configured uplink is not used: say so once per site (and run) */
            KVL_LOG_WARN("topology", site->name,
                         "LLDP/CDP neighbours join site '%s' to its parent '%s': they are used, "
                         "not its configured uplink (%s %s)",
                         site->name, sc->v[site->parent].name, site->uplink_device,
                         site->uplink_interface != NULL ? site->uplink_interface : "");
            json_object_set_new(t->conflicts, site->name, json_true());
        }
        return;
    }
    if (site->uplink_device != NULL && site->uplink_interface != NULL) {
        uint32_t d = KVL_TOPO_NONE;
        const char *agent = site->uplink_agent;
        if (agent != NULL) {
            d = device_node(t, agent, site->uplink_device, false);
        } else {
            json_t *v = json_object_get(t->device_by_name, site->uplink_device);
            d = v != NULL ? (uint32_t)json_integer_value(v) : KVL_TOPO_NONE;
        }
        if (d != KVL_TOPO_NONE) {
            uint32_t l = add_link(t, d, s, KVL_TOPO_SRC_UPLINK, site->uplink_interface, NULL);
            const char *dn = kvl_topo_node_name(t->g, d);
            const char *slash = strchr(dn, '/');
            if (l != KVL_TOPO_NONE && slash != NULL) {
                char ag[KVL_AGENT_ID_MAX + 1];
                snprintf(ag, sizeof(ag), "%.*s", (int)(slash - dn), dn);
                kvl_topo_set_link_up(t->g, l,
                                     !latest_down(t, ag, slash + 1, KVL_SCOPE_INTERFACE,
                                                  site->uplink_interface, "oper_status"));
            }
            return;
        }
        /* the uplink's device is not known (yet): the tree link stands in */
    }
    uint32_t l = add_link(t, site_nodes[site->parent], s, KVL_TOPO_SRC_TREE, NULL, NULL);
    json_t *c = json_object_get(t->site_agents, site->name);
    if (l != KVL_TOPO_NONE && c != NULL) {
        json_int_t seen = json_integer_value(json_array_get(c, 0));
        json_int_t lost = json_integer_value(json_array_get(c, 1));
        kvl_topo_set_link_up(t->g, l, !(seen > 0 && lost == seen));
    }
}

int kvl_topology_refresh(kvl_topology_t *t)
{
    t->failed = false;
    t->refreshed_ms = now_ms(t);
    json_decref(t->device_by_name);
    json_decref(t->site_agents);
    json_decref(t->lost_agents);
    json_decref(t->ident);
    json_decref(t->site_of);
    json_decref(t->nbr_sites);
    t->device_by_name = json_object();
    t->site_agents = json_object();
    t->lost_agents = json_object();
    t->ident = json_object();
    t->site_of = json_object();
    t->nbr_sites = json_object();
    if (t->conflicts == NULL) {
        t->conflicts = json_object();
    }
    if (t->device_by_name == NULL || t->site_agents == NULL || t->lost_agents == NULL ||
        t->ident == NULL || t->site_of == NULL || t->nbr_sites == NULL || t->conflicts == NULL) {
        return KVL_ENOMEM;
    }
    if (t->seen != NULL) {
        memset(t->seen, 0, t->seen_cap);
    }
    for (size_t i = 0; i < kvl_topo_nodes(t->g); i++) { /* lowered again below */
        kvl_topo_set_node_up(t->g, (uint32_t)i, true);
        kvl_topo_set_root(t->g, (uint32_t)i, false);
    }
    const kvl_sites_cfg_t *sc = t->o.sites;
    size_t n_sites = sc != NULL ? sc->n : 0;
    uint32_t *site_nodes = calloc(n_sites + 1, sizeof(*site_nodes));
    if (site_nodes == NULL) {
        return KVL_ENOMEM;
    }
    bool any_noc = false;
    for (size_t i = 0; i < n_sites; i++) {
        site_nodes[i] = node(t, KVL_TOPO_SITE, sc->v[i].name);
        any_noc = any_noc || sc->v[i].kind == KVL_SITE_NOC;
    }
    t->root = KVL_TOPO_NONE;
    for (size_t i = 0; i < n_sites; i++) {
        bool root = any_noc ? sc->v[i].kind == KVL_SITE_NOC : sc->v[i].parent == KVL_SITE_NONE;
        kvl_topo_set_root(t->g, site_nodes[i], root);
        if (root && t->root == KVL_TOPO_NONE) {
            t->root = site_nodes[i];
        }
    }
    if (t->o.agents != NULL) {
        t->o.agents(t->o.agents_src, on_agent, t);
    } else if (t->o.latest != NULL) {
        kvl_latest_agents(t->o.latest, on_latest_agent, t);
    }
    kvl_inventory_each(t->o.inventory, on_item, t);
    kvl_inventory_each_neighbour(t->o.inventory, NULL, on_neighbour, t);
    if (t->o.latest != NULL) {
        kvl_latest_each_scope(t->o.latest, KVL_SCOPE_LINK, on_probe, t);
    }
    for (size_t i = 0; i < n_sites; i++) {
        site_up(t, sc, i, site_nodes[i], site_nodes);
    }
    free(site_nodes);
    if (t->failed) {
        return KVL_ENOMEM;
    }
    size_t nl = kvl_topo_links(t->g);
    for (size_t i = 0; i < nl; i++) {
        if (i >= t->seen_cap || !t->seen[i]) {
            kvl_topo_forget_link(t->g, (uint32_t)i);
        }
    }
    int rc = kvl_topo_compute(t->g);
    if (rc == 0) {
        kvl_topo_changes_diff(t->changes, t->g, t->refreshed_ms, kvl_topology_cause_reason);
    }
    return rc;
}

json_t *kvl_topology_changes_json(const kvl_topology_t *t, uint64_t since, size_t limit)
{
    return kvl_topo_changes_json(t->changes, since, limit);
}

/* ------------------------------------------------------------- JSON ------------------ */

void kvl_topology_elem_name(const kvl_topo_t *g, kvl_topo_elem_t e, char *buf, size_t len)
{
    kvl_topo_elem_name(g, e, true, buf, len);
}

/* "agent-a/rtr1 [ge-0/0/1] - dhq-tvm" */
static json_t *elem_name(const kvl_topo_t *g, kvl_topo_elem_t e)
{
    if (e.id == KVL_TOPO_NONE) {
        return json_null();
    }
    char buf[1024];
    kvl_topology_elem_name(g, e, buf, sizeof(buf));
    return json_string(buf);
}

static json_t *elem_json(const kvl_topo_t *g, kvl_topo_elem_t e)
{
    if (e.id == KVL_TOPO_NONE) {
        return json_null();
    }
    return json_pack("{s:s, s:I, s:o}", "type", e.is_link ? "link" : "node", "id", (json_int_t)e.id,
                     "name", elem_name(g, e));
}

/* A figure of the latest values when fresh (three of its intervals), else NaN. */
static double fresh_value(const kvl_topology_t *t, const char *agent, const char *device,
                          const char *iface, const char *metric, bool rate, int64_t now)
{
    kvl_latest_value_t v;
    if (t->o.latest == NULL ||
        kvl_latest_get(t->o.latest, agent, device, KVL_SCOPE_INTERFACE, iface, metric, &v) != 0 ||
        v.unknown || now - v.time_ms > 3 * (int64_t)v.interval_s * 1000) {
        return NAN;
    }
    if (rate) {
        return v.has_rate ? v.rate : NAN;
    }
    return v.real ? v.real_value : (double)v.value;
}

static json_t *num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* A link's traffic as its end device's interface counts it (the first end with a device and
 * an interface): {"agent", "device", "interface", "speed_bps", "in_bps", "out_bps",
 * "util_pct"} (numbers null when unknown), or JSON null. */
static json_t *link_traffic(const kvl_topology_t *t, const kvl_topo_link_info_t *li, int64_t now)
{
    const uint32_t ends[2] = {li->a, li->b};
    const char *ifs[2] = {li->a_if, li->b_if};
    for (int k = 0; k < 2; k++) {
        const char *n = kvl_topo_node_name(t->g, ends[k]);
        const char *slash = n != NULL ? strchr(n, '/') : NULL;
        if (ifs[k][0] == '\0' || kvl_topo_node_kind(t->g, ends[k]) != KVL_TOPO_DEVICE ||
            slash == NULL || (size_t)(slash - n) > KVL_AGENT_ID_MAX) {
            continue;
        }
        char ag[KVL_AGENT_ID_MAX + 1];
        snprintf(ag, sizeof(ag), "%.*s", (int)(slash - n), n);
        double speed = fresh_value(t, ag, slash + 1, ifs[k], "speed_bps", false, now);
        double in = fresh_value(t, ag, slash + 1, ifs[k], "in_octets", true, now) * 8;
        double out = fresh_value(t, ag, slash + 1, ifs[k], "out_octets", true, now) * 8;
        double util = NAN;
        if (isfinite(speed) && speed > 0) {
            double hi = isfinite(in) && (!isfinite(out) || in >= out) ? in : out;
            util = isfinite(hi) ? 100.0 * hi / speed : NAN;
        }
        return json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o}", "agent", ag, "device", slash + 1,
                         "interface", ifs[k], "speed_bps", num(speed), "in_bps", num(in), "out_bps",
                         num(out), "util_pct", num(util));
    }
    return json_null();
}

typedef struct cut_ctx {
    const kvl_topo_t *g;
    size_t by_kind[KVL_TOPO_KINDS];
    json_t *sites;
} cut_ctx_t;

static bool on_cut(void *ctx, uint32_t n)
{
    cut_ctx_t *c = ctx;
    kvl_topo_kind_t k = kvl_topo_node_kind(c->g, n);
    c->by_kind[k]++;
    if (k == KVL_TOPO_SITE) {
        json_array_append_new(c->sites, json_string(kvl_topo_node_name(c->g, n)));
    }
    return true;
}

typedef struct causes_ctx {
    const kvl_topo_t *g;
    json_t *arr;
} causes_ctx_t;

/* The agent node of a device node ("agent/device"), KVL_TOPO_NONE when not known. */
static uint32_t agent_of_device(const kvl_topo_t *g, uint32_t d)
{
    const char *n = kvl_topo_node_name(g, d);
    const char *slash = n != NULL ? strchr(n, '/') : NULL;
    if (slash == NULL || (size_t)(slash - n) > KVL_AGENT_ID_MAX) {
        return KVL_TOPO_NONE;
    }
    char ag[KVL_AGENT_ID_MAX + 1];
    snprintf(ag, sizeof(ag), "%.*s", (int)(slash - n), n);
    return kvl_topo_find_node(g, KVL_TOPO_AGENT, ag);
}

const char *kvl_topology_cause_reason(const kvl_topo_t *g, kvl_topo_elem_t e)
{
    if (!e.is_link) {
        switch (kvl_topo_node_kind(g, e.id)) {
        case KVL_TOPO_AGENT:
            return "agent lost";
        case KVL_TOPO_DEVICE: {
            uint32_t ag = agent_of_device(g, e.id);
            return ag != KVL_TOPO_NONE && !kvl_topo_node_is_up(g, ag)
                       ? "not heard of: its agent is lost"
                       : "device unreachable";
        }
        default:
            return "down";
        }
    }
    kvl_topo_link_info_t li;
    if (!kvl_topo_link_get(g, e.id, &li)) {
        return "down";
    }
    switch (li.source) {
    case KVL_TOPO_SRC_TREE:
        return "site isolated: all its agents lost";
    case KVL_TOPO_SRC_UPLINK:
        return "uplink interface down";
    default:
        return "link down";
    }
}

static bool on_cause(void *ctx, kvl_topo_elem_t e)
{
    causes_ctx_t *c = ctx;
    cut_ctx_t cc = {.g = c->g, .sites = json_array()};
    kvl_topo_each_cut(c->g, e, on_cut, &cc);
    json_t *o = elem_json(c->g, e);
    if (o != NULL && cc.sites != NULL) {
        json_object_set_new(o, "cut",
                            json_pack("{s:I, s:I, s:I}", "sites",
                                      (json_int_t)cc.by_kind[KVL_TOPO_SITE], "agents",
                                      (json_int_t)cc.by_kind[KVL_TOPO_AGENT], "devices",
                                      (json_int_t)cc.by_kind[KVL_TOPO_DEVICE]));
        json_object_set_new(o, "sites_cut", cc.sites);
        json_object_set_new(o, "reason", json_string(kvl_topology_cause_reason(c->g, e)));
        cc.sites = NULL;
        json_array_append_new(c->arr, o);
    } else {
        json_decref(o);
    }
    json_decref(cc.sites);
    return true;
}

json_t *kvl_topology_json(kvl_topology_t *t)
{
    const kvl_topo_t *g = t->g;
    json_t *nodes = json_array(), *links = json_array(), *causes = json_array();
    json_t *out = json_pack("{s:I, s:I, s:o, s:o, s:o}", "computed_ms", (json_int_t)t->refreshed_ms,
                            "version", (json_int_t)kvl_topo_changes_version(t->changes), "nodes",
                            nodes, "links", links, "causes", causes);
    if (out == NULL) {
        return NULL;
    }
    const kvl_sites_cfg_t *sc = t->o.sites;
    int64_t now = now_ms(t);
    for (size_t i = 0; i < kvl_topo_nodes(g); i++) {
        kvl_topo_elem_t why;
        kvl_topo_reach_t r = kvl_topo_node_reach(g, (uint32_t)i, &why);
        kvl_topo_kind_t k = kvl_topo_node_kind(g, (uint32_t)i);
        json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:o}", "id", (json_int_t)i, "kind",
                              kvl_topo_kind_name(k), "name", kvl_topo_node_name(g, (uint32_t)i),
                              "state", kvl_topo_reach_name(r), "cause",
                              r == KVL_TOPO_UNREACHABLE ? elem_json(g, why) : json_null());
        if (o != NULL && k == KVL_TOPO_SITE) {
            size_t si = kvl_sites_find(sc, kvl_topo_node_name(g, (uint32_t)i));
            const kvl_site_t *s = si != KVL_SITE_NONE ? &sc->v[si] : NULL;
            json_object_set_new(o, "site_kind",
                                s != NULL && s->kind >= 0 ? json_string(kvl_site_kind_name(s->kind))
                                                          : json_null());
            json_object_set_new(o, "parent",
                                s != NULL && s->parent != KVL_SITE_NONE
                                    ? json_string(sc->v[s->parent].name)
                                    : json_null());
        }
        if (o == NULL || json_array_append_new(nodes, o) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    for (size_t i = 0; i < kvl_topo_links(g); i++) {
        kvl_topo_link_info_t li;
        if (!kvl_topo_link_get(g, (uint32_t)i, &li) || li.forgotten) {
            continue;
        }
        kvl_topo_elem_t why;
        kvl_topo_reach_t r = kvl_topo_link_reach(g, (uint32_t)i, &why);
        json_t *o =
            json_pack("{s:I, s:I, s:I, s:s, s:s, s:s, s:I, s:b, s:s, s:o, s:o}", "id",
                      (json_int_t)i, "a", (json_int_t)li.a, "b", (json_int_t)li.b, "a_if", li.a_if,
                      "b_if", li.b_if, "source", kvl_topo_source_name(li.source), "seen_ms",
                      (json_int_t)li.seen_ms, "up", li.up, "state", kvl_topo_reach_name(r), "cause",
                      r == KVL_TOPO_UNREACHABLE ? elem_json(g, why) : json_null(), "traffic",
                      link_traffic(t, &li, now));
        if (o == NULL || json_array_append_new(links, o) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    causes_ctx_t cc = {.g = g, .arr = causes};
    kvl_topo_each_cause(g, on_cause, &cc);
    return out;
}
