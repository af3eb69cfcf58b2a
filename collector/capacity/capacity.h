/*
 * capacity.h — capacity for planners: per interface (and its circuit, the ifAlias planners
 * know a link by) over the last 30, 90 or 365 days, the average, peak and 95th percentile
 * of the 5-minute averages in each direction in bit/s and as a share of the interface's
 * speed, the growth trend and the days until 80 % of the speed at that trend; per device,
 * link and site the availability and outage minutes. One route on the collector's HTTP
 * server (http.h; viewer):
 *
 *   GET /api/v1/capacity?days=30|90|365&site=&agent=&device=&format=json|csv
 *
 * site= selects the site and every site under it in the site tree (sites_config.h; a site
 * the tree does not name: that site only), agent= and device= one agent or device (exact
 * names). The interfaces and devices are the inventory's (inventory_each.h), the links
 * those whose archives exist (<data_dir>/<site>/<agent>/_links/). The figures
 * (capacity_calc.h, README "Capacity"):
 *   - each archive read once with rrd_fetch of AVERAGE at 300 s over the period; librrd
 *     takes the finest archive that covers it and falls back to the one covering most of
 *     it, so a row says which resolution it was computed at (`resolution_s`);
 *   - in/out: avg, peak (the highest average of one row) and p95 (rank rule) of
 *     in_octets/out_octets x 8, unknown rows left out; utilisation = figure / speed;
 *   - speed: the archive's last known speed_bps in the period, else the inventory's
 *     ifSpeed label, else unknown (utilisation and days to 80 % are then null);
 *   - trend: least squares over the daily means (the whole UTC days of the period, each
 *     placed at its middle) of
 *     the busier direction (the higher average): bit/s per day; days_to_80: from the
 *     trend's value at the period's end to 80 % of the speed (0: already there; null: a
 *     flat or falling trend, or no speed);
 *   - circuits: the interfaces grouped by circuit name (both ends of a circuit when both
 *     are polled) with the worst of their figures (highest speed, p95 and peak, steepest
 *     trend, fewest days to 80 %);
 *   - availability: devices from the `reachable` data source (a row's average is the
 *     fraction of its time up), links from `lost_pct` (a row at 100 %: every probe lost,
 *     down; else up); unknown rows counted as unknown minutes, never as up; availability =
 *     up / (up + down); a site's: its devices' and links' time summed (outage minutes are
 *     device- and link-minutes).
 *
 * The work runs on libuv's thread pool (kvl_http_defer), never on the loop: at most
 * KVL_CAP_RUNS_MAX reports at once, so that the store's writes keep the pool's other
 * threads (a request with the parameters of the report under way waits for its answer;
 * other parameters: 503, try again), at most `files_max` archives
 * per report (more: 400 asking to narrow it by site, agent or device). Answers are cached
 * for `cache_s` seconds per (days, site, agent, device); the CSV comes from the same
 * answer: one line per interface after a header line, RFC 4180 quoting, CRLF line ends.
 */
#ifndef KVL_CAPACITY_H
#define KVL_CAPACITY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "inventory.h"
#include "sites_config.h"

#define KVL_CAP_FILES_MAX 5000 /* archives read by one report (opts.files_max 0) */
#define KVL_CAP_CACHE_S 300    /* seconds an answer is kept (opts.cache_s 0) */
#define KVL_CAP_CACHE_N 16     /* answers kept */
#define KVL_CAP_RUNS_MAX 1     /* reports computed at once (each holds a thread of the pool) */
#define KVL_CAP_WAITERS_MAX                                                                        \
    64 /* requests waiting for the report under way with their parameters                          \
        */

typedef struct kvl_capacity kvl_capacity_t;
typedef struct kvl_http kvl_http_t;

typedef struct kvl_capacity_opts {
    uv_loop_t *loop;
    const char *data_dir;             /* the archives (store.h) */
    const kvl_sites_cfg_t *sites;     /* NULL: no tree (site= selects that site only) */
    const kvl_inventory_t *inventory; /* the interfaces and devices; NULL: none */
    size_t files_max;                 /* 0: KVL_CAP_FILES_MAX */
    int cache_s;                      /* 0: KVL_CAP_CACHE_S; < 0: no cache */
    int64_t (*now_ms)(void);          /* NULL: the wall clock */
} kvl_capacity_opts_t;

/* Keeps the pointers (they must outlive it). Returns 0 or KVL_ENOMEM with err. */
int kvl_capacity_new(const kvl_capacity_opts_t *o, kvl_capacity_t **out, char *err, size_t errlen);
/* Registers GET /api/v1/capacity. Returns 0 or a negative KVL_E*. */
int kvl_capacity_api_register(kvl_capacity_t *c, kvl_http_t *http);
/* Frees c once the reports under way have finished (their answers still go out). NULL is a
 * no-op. */
/* A reload's site tree (NULL: none; kept by reference, the previous one is no longer used);
 * a report under way keeps the sites it selected when it began. */
void kvl_capacity_set_sites(kvl_capacity_t *c, const kvl_sites_cfg_t *sites);
void kvl_capacity_free(kvl_capacity_t *c);

#endif
