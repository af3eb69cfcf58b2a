/*
 * map.h — the map (GET /api/v1/map, viewer): until topology is learned from the network,
 * the site tree (sites_config.h) drawn as a weathermap. Computed on the loop from the
 * board's tree and the latest values (latest.h), never from the archives:
 *
 *   {"time_ms": now,
 *    "nodes": [ /api/v1/sites' entries (name, label, kind, parent, state, own_state, counts,
 *               subtree) with "x" and "y", the placement hints (percent, null: none) ],
 *    "edges": [ one per configured site with a parent:
 *      {"site", "parent",
 *       "uplink": {"agent", "device", "interface"} or null (agent null: no agent reports it),
 *       "speed_bps", "in_bps", "out_bps", "util_in_pct", "util_out_pct",
 *       "util_pct" (the larger of the two), "oper_status" ("up", "down" or another ifOperStatus
 *       name), "link": {"agent", "target"} or null, "loss_pct", "rtt_ms",
 *       "time_ms" (the newest value used), "state"} ]}
 *
 * An edge's numbers are null when unknown. Utilisation: the uplink interface's in_octets and
 * out_octets rates (per second, latest.h) × 8 over its speed_bps, in percent. Loss and RTT:
 * lost_pct and the median round trip (rtt_median_ms; a tcp probe's connect_median_ms, an http
 * probe's total_median_ms) of one link, chosen as docs/configuration.md says (`probe:`
 * first; else an agent at the site probing the parent site — a target named as the parent or
 * as one of its agents — or the reverse; ties in name order). A value older than three of
 * its intervals (or an unknown sample) counts as none.
 *
 * An edge's state: "critical" when the uplink interface is down or the link loses every
 * probe, "major" at KVL_MAP_LOSS_MAJOR % loss or more, "warning" at any loss or
 * KVL_MAP_UTIL_WARNING % utilisation or more, "ok" otherwise, "unknown" with no value at all.
 */
#ifndef KVL_MAP_H
#define KVL_MAP_H

#include <jansson.h>

#include "board.h"
#include "http.h"

#define KVL_MAP_LOSS_MAJOR 10.0
#define KVL_MAP_UTIL_WARNING 90.0
#define KVL_MAP_STALE_INTERVALS 3

/* The map's body (a new reference), or NULL when out of memory. */
json_t *kvl_board_map_json(kvl_board_t *b);

/* The route's handler (ctx: the board), registered by kvl_board_api_register. */
void kvl_board_map_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp);

#endif
