/*
 * topo_graph.h — the topology graph and its reachability: sites, agents and devices as
 * nodes, the links between them (from the site tree, explicit uplinks, LLDP and CDP, and
 * membership of a device or agent in its site), and which of them the NOC can still reach.
 *
 * Pure: no I/O, no loop, no clock of its own; one thread at a time (the collector's loop).
 * The room that builds it from the site tree, the inventory and the latest values, keeps it
 * across restarts and serves it is topology/ (later files); this one only holds the graph
 * and computes.
 *
 * Reachability, computed from the roots (the NOC's nodes: kvl_topo_set_root):
 *   - a node is REACHABLE when a path of up links and up nodes leads to it from an up root;
 *   - a failed element (a node marked down, a link marked down, or a root that is itself
 *     down) next to the reachable part is a CAUSE: the first thing that broke on the way
 *     from the NOC. A failed link is a cause when one end is reachable and the other not;
 *     a down node when a reachable node has an up link to it (or it is a root);
 *   - everything else connected to a cause through the unreachable part, up or down,
 *     is UNREACHABLE with the nearest cause (by hops; ties to the cause found first): its
 *     own state cannot be known while the cause stands, so its own alerts are suppressed;
 *   - nodes with no path at all to a root (no topology known for them) are UNCONNECTED:
 *     nothing is said about them, their own alerts stand.
 * A down node that is reachable-adjacent is a cause even when it is a leaf (a device down
 * on its own is the cause of its own alert and of nothing else: cut count 0).
 * kvl_topo_compute is O(nodes + links); kvl_topo_each_cut lists what a cause cuts off.
 *
 * Elements are named by small ids that never change while the graph lives (a link that
 * disappears is forgotten, not reused: kvl_topo_forget_link). Names are unique per kind
 * (a device's name is "agent/device" by the caller's convention).
 */
#ifndef KVL_TOPO_GRAPH_H
#define KVL_TOPO_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVL_TOPO_NONE UINT32_MAX
#define KVL_TOPO_MAX_NODES 1000000u
#define KVL_TOPO_MAX_LINKS 4000000u

typedef enum { KVL_TOPO_SITE = 0, KVL_TOPO_AGENT, KVL_TOPO_DEVICE, KVL_TOPO_KINDS } kvl_topo_kind_t;

/* Where a link was learned. MEMBER: a device or an agent in its site. VANTAGE: an agent
 * that reports to the collector (at the NOC) is reachable from it, whatever the path.
 * PROBE: an agent's link measurement (ICMP, STAMP, TCP, HTTP; the mesh) answered by another
 * agent or a site: the two sides of it reach each other. */
typedef enum {
    KVL_TOPO_SRC_TREE = 0,
    KVL_TOPO_SRC_UPLINK,
    KVL_TOPO_SRC_LLDP,
    KVL_TOPO_SRC_CDP,
    KVL_TOPO_SRC_MEMBER,
    KVL_TOPO_SRC_VANTAGE,
    KVL_TOPO_SRC_PROBE,
    KVL_TOPO_SOURCES
} kvl_topo_source_t;

typedef enum {
    KVL_TOPO_UNCONNECTED = 0, /* no path to a root: nothing known */
    KVL_TOPO_REACHABLE,
    KVL_TOPO_CAUSE,       /* failed, first on the way from the NOC */
    KVL_TOPO_UNREACHABLE, /* behind a cause */
} kvl_topo_reach_t;

/* A node or a link: what a cause is. */
typedef struct kvl_topo_elem {
    bool is_link;
    uint32_t id; /* KVL_TOPO_NONE: none */
} kvl_topo_elem_t;

typedef struct kvl_topo kvl_topo_t;

/* An empty graph. Returns 0 or KVL_ENOMEM. */
int kvl_topo_new(kvl_topo_t **out);
void kvl_topo_free(kvl_topo_t *t);

/* The node of that kind and name, added (up, not a root) when new; *id set. Returns 0,
 * KVL_EINVAL (bad kind, empty name, or a new node past KVL_TOPO_MAX_NODES), KVL_ENOMEM. */
int kvl_topo_add_node(kvl_topo_t *t, kvl_topo_kind_t kind, const char *name, uint32_t *id);

/* The node's id, or KVL_TOPO_NONE. */
uint32_t kvl_topo_find_node(const kvl_topo_t *t, kvl_topo_kind_t kind, const char *name);

/* The link between nodes a and b learned from source, through interfaces a_if of a and
 * b_if of b (either may be NULL or ""), added (up) when that same link is not known yet
 * (a link and its reverse are the same link); its last-seen time set to seen_ms either way.
 * Returns 0, KVL_EINVAL (a == b, a node that does not exist, bad source, or a new link past
 * KVL_TOPO_MAX_LINKS), KVL_ENOMEM. A forgotten link learned again comes back (up). */
int kvl_topo_add_link(kvl_topo_t *t, uint32_t a, uint32_t b, kvl_topo_source_t source,
                      const char *a_if, const char *b_if, int64_t seen_ms, uint32_t *id);

/* The link disappears from the graph (recabling, a neighbour gone); its id stays taken. */
void kvl_topo_forget_link(kvl_topo_t *t, uint32_t link);

/* States and roots; out-of-range ids are ignored. A change takes effect at the next
 * kvl_topo_compute. */
void kvl_topo_set_root(kvl_topo_t *t, uint32_t node, bool root);
void kvl_topo_set_node_up(kvl_topo_t *t, uint32_t node, bool up);
void kvl_topo_set_link_up(kvl_topo_t *t, uint32_t link, bool up);

/* Recomputes reachability from the current states. Returns 0 or KVL_ENOMEM (the previous
 * result is then kept). */
int kvl_topo_compute(kvl_topo_t *t);

/* The last computation's answer for a node or link (a link is REACHABLE when both ends
 * are, CAUSE when it is one, UNREACHABLE when behind a cause, else UNCONNECTED), with the
 * cause (itself for a CAUSE; {.id = KVL_TOPO_NONE} otherwise) when cause is not NULL. */
kvl_topo_reach_t kvl_topo_node_reach(const kvl_topo_t *t, uint32_t node, kvl_topo_elem_t *cause);
kvl_topo_reach_t kvl_topo_link_reach(const kvl_topo_t *t, uint32_t link, kvl_topo_elem_t *cause);

/* Each node the cause cuts off (UNREACHABLE with that cause), in no set order; fn returns
 * false to stop. Returns how many were visited. O(nodes). */
typedef bool (*kvl_topo_node_fn)(void *ctx, uint32_t node);
size_t kvl_topo_each_cut(const kvl_topo_t *t, kvl_topo_elem_t cause, kvl_topo_node_fn fn,
                         void *ctx);

/* Each cause of the last computation; fn returns false to stop. */
typedef bool (*kvl_topo_elem_fn)(void *ctx, kvl_topo_elem_t cause);
void kvl_topo_each_cause(const kvl_topo_t *t, kvl_topo_elem_fn fn, void *ctx);

/* Reading the graph back. */
size_t kvl_topo_nodes(const kvl_topo_t *t);
size_t kvl_topo_links(const kvl_topo_t *t); /* ids handed out, forgotten ones included */
const char *kvl_topo_node_name(const kvl_topo_t *t, uint32_t node); /* NULL: no such node */
kvl_topo_kind_t kvl_topo_node_kind(const kvl_topo_t *t, uint32_t node);
bool kvl_topo_node_is_up(const kvl_topo_t *t, uint32_t node); /* as last set; false: none */
/* An element's name into buf: a node's name; a link's "a [a_if] - b [b_if]", its ends in
 * name order, or (by_reach) the end the NOC reaches first. */
void kvl_topo_elem_name(const kvl_topo_t *t, kvl_topo_elem_t e, bool by_reach, char *buf,
                        size_t len);
/* A number that changes whenever a node or link is added, forgotten or learned again (not
 * with states): whoever compares graphs can skip an unchanged one. */
uint64_t kvl_topo_generation(const kvl_topo_t *t);

typedef struct kvl_topo_link_info {
    uint32_t a, b;
    const char *a_if, *b_if; /* "" when not known */
    kvl_topo_source_t source;
    int64_t seen_ms;
    bool up;
    bool forgotten;
} kvl_topo_link_info_t;

/* Returns false when there is no such link. */
bool kvl_topo_link_get(const kvl_topo_t *t, uint32_t link, kvl_topo_link_info_t *out);

const char *kvl_topo_kind_name(kvl_topo_kind_t kind);  /* "site", "agent", "device" */
const char *kvl_topo_source_name(kvl_topo_source_t s); /* "tree", "uplink", "lldp", ... */
const char *kvl_topo_reach_name(kvl_topo_reach_t r);   /* "reachable", "cause", ... */

#endif
