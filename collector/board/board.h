/*
 * board.h — what the NOC board reads (issue 13's API): the site tree with each site's
 * worst state, the agents, the latest values, the links' probe results and time series
 * from the archives, as JSON routes on the collector's HTTP server (http.h; viewer role):
 *
 *   GET /api/v1/sites    the tree (sites_config.h) and the sites agents report that it does
 *                        not name (under the synthetic root "unplaced"); per site its own
 *                        state and its subtree's worst, and counts of agents, devices and
 *                        firing alerts
 *   GET /api/v1/agents   id, site, version, connected, lost since, last frame, last batch
 *                        applied, newest sample (the ingest's view, main.c hands it over)
 *   GET /api/v1/latest   ?agent=&site=&device=&instance=&metric=&scope=&limit= (globs):
 *                        the latest values (latest.h), at most `limit`, `truncated` beyond
 *   GET /api/v1/links    ?agent=&site=&instance=&limit=: per agent and probe target the
 *                        latest loss, RTT, MOS and every other link metric
 *   GET /api/v1/series   ?agent=&device=&instance=&metric=&scope=&from=&to=&step=&cf=: one
 *                        series from its archive (rrd_fetch on the thread pool, never the
 *                        loop: the same points `rrdtool fetch` prints), at most 10000 points
 *   GET /api/v1/map      the tree as a weathermap: /sites' entries as nodes and each site's
 *                        uplink to its parent as an edge (map.h)
 *
 * States, from best to worst: ok, warning, minor, major, lost, critical; `unknown` for a
 * site where nothing reports (no agent, no alert) — a parent's state is the worst of its
 * own and its children's, where unknown counts for less than ok. A site's own state: the
 * worst severity of the firing alerts labelled with it (info counts as ok), `lost` when
 * one of its agents is lost (the ingest's liveness; and no critical alert fires), else ok
 * when an agent reports there.
 *
 * Every parameter is checked (board_query.h): 400 with a sentence; unknown paths 404.
 * Handlers run on the loop (http.h); archive reads on libuv's thread pool, at most
 * KVL_BOARD_READS_MAX at once (more: 503, try again).
 */
#ifndef KVL_BOARD_H
#define KVL_BOARD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "latest.h"
#include "sites_config.h"

#define KVL_BOARD_READS_MAX 16

typedef struct kvl_board kvl_board_t;
typedef struct kvl_http kvl_http_t;

/* One firing alert: its `site` label (NULL when it has none) and its severity's name
 * (critical, major, minor, warning, info). */
typedef void (*kvl_board_alert_fn)(void *ctx, const char *site, const char *severity);
/* Calls fn for every firing alert (the collector's main.c reads the alert book). */
typedef void (*kvl_board_alerts_fn)(void *src, kvl_board_alert_fn fn, void *ctx);

/* An agent as the ingest knows it (main.c hands kvl_ingest_agents over), valid for the
 * call only. */
typedef struct kvl_board_agent {
    const char *id, *site;
    const char *version; /* "" when unknown */
    bool connected;
    bool lost;
    int64_t lost_since_ms; /* when lost: declared at (wall clock) */
    int64_t last_seen_ms;  /* its last frame, 0: none since the collector started */
} kvl_board_agent_t;
typedef void (*kvl_board_agent_fn)(void *ctx, const kvl_board_agent_t *a);
typedef void (*kvl_board_agents_fn)(void *src, kvl_board_agent_fn fn, void *ctx);

typedef struct kvl_board_opts {
    uv_loop_t *loop;
    const kvl_sites_cfg_t *sites; /* NULL: no tree (every site is unplaced) */
    kvl_latest_t *latest;         /* read, and watched for sites the tree does not name */
    const char *data_dir;         /* the archives (store.h) */
    kvl_board_alerts_fn alerts;
    void *alerts_src; /* alerts NULL: no alerts */
    /* NULL: the agents the latest values saw, lost by the ingest's events (connected
     * means not lost) */
    kvl_board_agents_fn agents;
    void *agents_src;
    int64_t (*now_ms)(void); /* NULL: the wall clock */
} kvl_board_opts_t;

/* Keeps the pointers (they must outlive the board) and watches the latest values for
 * agents reporting a site the tree does not name (logged once per site). Returns 0 or
 * KVL_ENOMEM with err. */
int kvl_board_new(const kvl_board_opts_t *o, kvl_board_t **out, char *err, size_t errlen);
/* Registers the routes above. Returns 0 or a negative KVL_E*. */
int kvl_board_api_register(kvl_board_t *b, kvl_http_t *http);
/* The entries of /api/v1/sites (a new reference; NULL when out of memory): the tree's
 * sites in the list's order (so the first sites->n are the configured ones), then the
 * unplaced ones. */
json_t *kvl_board_sites_json(kvl_board_t *b);
/* The options b was made with, and its clock. */
const kvl_board_opts_t *kvl_board_opts(const kvl_board_t *b);
int64_t kvl_board_now_ms(const kvl_board_t *b);
/* Frees b once the archive reads under way have finished (their answers still go out).
 * NULL is a no-op. */
/* A reload's site tree (NULL: none; kept by reference, the previous one is no longer used). */
void kvl_board_set_sites(kvl_board_t *b, const kvl_sites_cfg_t *sites);
void kvl_board_free(kvl_board_t *b);

#endif
