/*
 * topo_changes.h — what changed on the map: the topology's versions. Each refresh of the
 * graph is compared with the one before; every difference is one change with a new version
 * number:
 *
 *   {"version": 42, "at_ms": ..., "what": "link_added" | "link_gone" | "node_added" |
 *    "cut" | "repaired", "name": "<element>", "source": "lldp" (links), "reason": (cuts)}
 *
 * Links are those learned from the network and the configuration (LLDP, CDP, uplinks, the
 * tree); membership and vantage links follow devices and agents and are not listed (a new
 * device is a node_added). A cut is a cause with something behind it (topo_graph.h).
 *
 * Kept across restarts in <dir>/changes.log (one JSON line per change, appended; rewritten
 * with the newest `keep` when it holds four times as many) and <dir>/state.json (the links
 * and cuts last seen, replaced through a temporary file when they change), so a restart
 * neither forgets the history nor reports the whole graph as new. These writes are small and
 * rare (a recabling, an outage) and happen on the loop; a damaged line is skipped.
 * state.json carries the format version of both files ("format": KVL_TOPO_FORMAT_VERSION;
 * without it, written before versions were kept: 1); a newer one makes
 * kvl_topo_changes_open fail with a sentence saying what to do, the files untouched.
 */
#ifndef KVL_TOPO_CHANGES_H
#define KVL_TOPO_CHANGES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "topo_graph.h"

#define KVL_TOPO_FORMAT_VERSION 1u /* of state.json and changes.log */

typedef struct kvl_topo_changes kvl_topo_changes_t;

/* Opens (dir made when missing; NULL: in memory only) with the newest `keep` changes
 * (1-1000000) in memory. Returns 0, or a negative KVL_E* with a sentence in err. */
int kvl_topo_changes_open(const char *dir, size_t keep, kvl_topo_changes_t **out, char *err,
                          size_t errlen);
void kvl_topo_changes_free(kvl_topo_changes_t *c);

/* Compares g (computed) with the last graph seen and records the differences at now; a
 * cut's reason comes from reason_fn (kvl_topology_cause_reason). Elements are named by
 * their nodes' names (a link's ends in name order, whatever the states), so a name is the
 * same from one graph, and one run, to the next. */
typedef const char *(*kvl_topo_reason_fn)(const kvl_topo_t *g, kvl_topo_elem_t e);
void kvl_topo_changes_diff(kvl_topo_changes_t *c, const kvl_topo_t *g, int64_t now,
                           kvl_topo_reason_fn reason_fn);

/* The current version (0: nothing recorded yet). */
uint64_t kvl_topo_changes_version(const kvl_topo_changes_t *c);

/* {"version": V, "changes": [the changes with a version above since, oldest first, at most
 * limit (the newest ones)]} (a new reference, NULL when out of memory). */
json_t *kvl_topo_changes_json(const kvl_topo_changes_t *c, uint64_t since, size_t limit);

#endif
