/*
 * rootcause.h — root-cause alerts: one page per cut of the network instead of one per thing
 * cut off. The topology (topology.h) says which element failed first on the way from the
 * NOC (a cause) and what is only reachable through it (its cut); this module turns that into
 * one alert per cause and tells the alert book (book.h) which other alerts to hold back.
 *
 * After each computation of the graph, kvl_rootcause_update:
 *   - every cause whose cut is not empty (a site, agent or device only reachable through it)
 *     has one alert `topology_cut`, severity critical: pending when first seen, firing once
 *     it has stood for `hold`, resolved when that cause is gone (repaired, or the cut now
 *     shows at another element: then that one has its own alert). The hold is what makes one
 *     page of a district's outage: its agents are declared lost one by one over about one
 *     heartbeat, so for a moment each block looks isolated on its own; those alerts end
 *     pending, never paged, and the district's fires. Labels: alertname, severity, cause (the
 *     element's name, kvl_topology_elem_name), site (a node's site; a link's far end's), and
 *     agent, device and interface for a device or a link's nearer end. The summary says what
 *     failed and names the sites cut off (sorted; the first 40); the fields carry the counts
 *     (`sites_cut`, `agents_cut`, `devices_cut`), the names (`sites`), `reason` and `kind`:
 *     `isolated` when the cut holds no site but the cause's own (an agent gone silent with its
 *     site), else `cut`;
 *   - the last moment each node and link was cut off is kept (kvl_rootcause_observe does this
 *     alone, for the book's questions between two updates).
 * kvl_rootcause_suppressed says whether an alert is held back, and why:
 *   - its subject is cut off, or was within `settle` (after a repair a child pages only if it
 *     still fails on its own once the settle time is over). The subject, by the alert's
 *     labels: agent + device: that device (interface alerts included); else a `target` that
 *     names an agent or a site; else the agent; else the site;
 *   - it is the cause's own alert (the cause device's alerts, or those of a cause link's two
 *     interfaces) while the cause's topology_cut alert is active or ended within settle: the
 *     cut alert stands for it;
 *   - it is a topology_cut alert whose cause was itself cut off within settle (as a
 *     district's blocks come back one by one after its repair).
 * An alert whose subject is not in the graph is never held back.
 *
 * The first half is pure (no loop, no clock, no I/O: tests drive it with graphs of their
 * own). kvl_rootcause_start runs it in the collector: a one-second timer refreshes the
 * topology, updates, hands the cut alerts to the book and lets the book look again at what
 * it holds back; the book's suppressor refreshes the topology first when it is older than a
 * quarter of a second (an agent just declared lost is in the answer). Alerts restored by the
 * book at start (kvl_rootcause_restore) are resolved at the first update past `hold` after
 * start if their cause is not back by then. One thread: the collector's loop.
 */
#ifndef KVL_ROOTCAUSE_H
#define KVL_ROOTCAUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "alert.h"
#include "topo_graph.h"

#define KVL_ROOTCAUSE_RULE "topology_cut"

typedef struct kvl_rootcause kvl_rootcause_t;
typedef struct kvl_topology kvl_topology_t;
typedef struct kvl_book kvl_book_t;

typedef struct kvl_rootcause_opts {
    int64_t hold_ms;   /* a cut stands this long before its alert fires */
    int64_t settle_ms; /* after a repair, what was cut off stays quiet this long */
} kvl_rootcause_opts_t;

/* cb receives every change of a topology_cut alert (valid for the call only). Returns 0 or
 * KVL_ENOMEM. */
int kvl_rootcause_new(const kvl_rootcause_opts_t *o, kvl_alert_cb cb, void *cb_ctx,
                      kvl_rootcause_t **out);

/* Stops the timer (if started) and frees rc once it is closed (the loop must run). */
void kvl_rootcause_free(kvl_rootcause_t *rc);

/* A topology_cut alert the book held before a restart (others are ignored). 0, KVL_EINVAL
 * or KVL_ENOMEM. */
int kvl_rootcause_restore(kvl_rootcause_t *rc, const kvl_alert_t *a);

/* Records what g (computed) cuts off at now. */
void kvl_rootcause_observe(kvl_rootcause_t *rc, const kvl_topo_t *g, int64_t now);

/* observe, then the cut alerts' changes, handed to cb once rc's own state is consistent
 * (cb may ask kvl_rootcause_suppressed). */
void kvl_rootcause_update(kvl_rootcause_t *rc, const kvl_topo_t *g, int64_t now);

/* Whether alert a is held back now (as of the last observe of g); true with a sentence. */
bool kvl_rootcause_suppressed(const kvl_rootcause_t *rc, const kvl_topo_t *g, const kvl_alert_t *a,
                              int64_t now, char *why, size_t whylen);

typedef struct kvl_rootcause_stats {
    uint64_t cuts_active; /* topology_cut alerts pending or firing */
    uint64_t cuts_fired;  /* since start */
    uint64_t updates;
} kvl_rootcause_stats_t;
void kvl_rootcause_stats(const kvl_rootcause_t *rc, kvl_rootcause_stats_t *out);

/* Runs rc in the collector: its alerts go to the book (cb is then unused), the book asks it
 * before sending, a timer updates it every second. The pointers must outlive rc. Returns 0
 * or a negative KVL_E*. */
int kvl_rootcause_start(kvl_rootcause_t *rc, uv_loop_t *loop, kvl_topology_t *topology,
                        kvl_book_t *book);

#endif
