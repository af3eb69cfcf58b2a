/*
 * topology.h — the collector's topology: the graph of sites, agents and devices built from
 * what the collector knows (the site tree and its explicit uplinks, the inventory's devices,
 * the agents and their sites), their states from the latest values and the ingest, and
 * reachability from the NOC (topo_graph.h), served as
 *
 *   GET /api/v1/topology   (viewer) every node and link with its state, and the root
 *                          causes with what each cuts off (counts by kind, sites by name);
 *                          a link with a device's interface at an end carries `traffic`:
 *                          that interface's speed, in/out bit rates and utilisation (the
 *                          larger direction, percent) from the latest values, null when
 *                          unknown or older than three of its intervals; and `version`,
 *                          the number of the graph's last change
 *   GET /api/v1/topology/changes?since=V&limit=N   (viewer) what changed after version V
 *                          (links learned or gone, nodes added or gone, cuts and repairs:
 *                          topo_changes.h), oldest first, at most N (1-10000, 1000), the
 *                          newest ones
 *
 * and printed by `kaavalctl topology`.
 *
 * How the graph is made (kvl_topology_refresh, on the loop; the ids of nodes and links stay
 * the same from one refresh to the next):
 *   - a site node per site of the tree and per site an agent reports; the roots are the
 *     sites of kind `noc` (without any: the tree's roots);
 *   - an agent node per agent, linked to its site (member); down while the ingest says the
 *     agent is lost;
 *   - a device node "agent/device" per device of the inventory that is not retired, linked
 *     to its agent's site (member); down while its latest `reachable` is 0 (no value yet:
 *     up);
 *   - per LLDP/CDP neighbour of a device (the inventory's, not gone) that is a known device
 *     (by its LLDP chassis id, else its system name, else its management address), a link
 *     between the two devices with both interfaces, down while the local interface's latest
 *     oper_status is down;
 *   - per site with a parent, the way up: neighbours joining a device of the site to one of
 *     the parent's when there are (a configured uplink is then not used: a warning, once);
 *     else its explicit uplink (`uplink:` naming a device
 *     and interface, usually the parent's router port towards it) as a link from that
 *     device to the site, down while the interface's latest oper_status is down; without
 *     one, a tree link from the parent site, down while every agent of the site is lost
 *     (the agents' own vantage: a site whose agents all went silent is cut off from the
 *     NOC, and whatever hangs below it with it);
 *   - per agent that reports (not lost), a `vantage` link from the first root to it: its
 *     connection to the collector proves the path from the NOC, whatever the graph says;
 *     a device of a lost agent is down (nothing says it is up), so the first such device on
 *     the way from the NOC is where a cut shows;
 *   - per link measurement of an agent (ICMP, STAMP, TCP, HTTP, the mesh) whose target is
 *     named as an agent or a site and answered in its last interval (lost_pct under 100,
 *     not older than three intervals), a `probe` link between the agent and that node: the
 *     mesh tells which side of a cut a site is on (a site whose agent no longer reports
 *     but that another agent still reaches is not cut off: only its agent is lost).
 * The states are read at each refresh; the graph is small (KSWAN: ~5,000 nodes and links)
 * and recomputed in well under a millisecond (tests/bench/topology).
 */
#ifndef KVL_TOPOLOGY_H
#define KVL_TOPOLOGY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "inventory.h"
#include "latest.h"
#include "sites_config.h"
#include "topo_graph.h"

typedef struct kvl_topology kvl_topology_t;
typedef struct kvl_http kvl_http_t;

typedef struct kvl_topology_opts {
    const kvl_sites_cfg_t *sites;     /* NULL: no tree */
    kvl_latest_t *latest;             /* states of devices and interfaces; NULL: none */
    const kvl_inventory_t *inventory; /* the devices; NULL: none */
    kvl_board_agents_fn agents;       /* the ingest's agents (main.c); NULL: the latest's */
    void *agents_src;
    int64_t (*now_ms)(void); /* NULL: the wall clock */
    const char *dir;         /* where the changes are kept (<data_dir>/_topology); NULL: memory */
} kvl_topology_opts_t;

/* Keeps the pointers (they must outlive it). Returns 0 or KVL_ENOMEM with err. */
int kvl_topology_new(const kvl_topology_opts_t *o, kvl_topology_t **out, char *err, size_t errlen);
void kvl_topology_free(kvl_topology_t *t);

/* A reload's site tree (NULL: none; kept by reference, the previous one is no longer used),
 * taken by the next refresh: its sites' nodes and links appear, those of sites gone go. */
void kvl_topology_set_sites(kvl_topology_t *t, const kvl_sites_cfg_t *sites);

/* Rebuilds the graph's nodes, links and states from the sources and recomputes
 * reachability. Returns 0 or a negative KVL_E* (the previous answer is then kept). */
int kvl_topology_refresh(kvl_topology_t *t);

/* The graph (valid until the next refresh or free). */
const kvl_topo_t *kvl_topology_graph(const kvl_topology_t *t);

/* GET /api/v1/topology's body after a refresh (a new reference; NULL when out of memory). */
json_t *kvl_topology_json(kvl_topology_t *t);

/* An element's name: a node's, or a link's "a [a_if] - b [b_if]" with the end nearer the
 * NOC first. */
void kvl_topology_elem_name(const kvl_topo_t *g, kvl_topo_elem_t e, char *buf, size_t len);
/* Why a cause failed, in words ("agent lost", "device unreachable", "not heard of: its
 * agent is lost", "site isolated: all its agents lost", "uplink interface down", ...). */
const char *kvl_topology_cause_reason(const kvl_topo_t *g, kvl_topo_elem_t e);

/* GET /api/v1/topology/changes's body (topo_changes.h), a new reference or NULL. */
json_t *kvl_topology_changes_json(const kvl_topology_t *t, uint64_t since, size_t limit);

/* Registers GET /api/v1/topology. Returns 0 or a negative KVL_E*. */
int kvl_topology_api_register(kvl_topology_t *t, kvl_http_t *http);

#endif
