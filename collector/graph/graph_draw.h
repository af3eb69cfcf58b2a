/*
 * graph_draw.h — one graph drawn by librrd's rrd_graph_v from one archive file: the
 * arguments built from a checked query (graph_query.h) and the file's own data sources
 * (read first with rrd_info_r: a link's delays are rtt_*, connect_* or http's total_*; its
 * RTT quantiles rtt_p10_ms .. rtt_p90_ms only in archives made or extended since they
 * exist; a metric group's are its metrics). Runs on a thread of the pool, never the
 * loop's; rrd_graph_v is not reentrant in every path (fonts, its argument parser), so the
 * calls into librrd here are serialised by one lock.
 *
 * What each kind draws:
 *   traffic       in (area) and out (line) in bit/s, each direction's 95th percentile
 *                 (VDEF PERCENTNAN) as a dashed line, the interface's speed (its archive's
 *                 speed_bps) as a line; legend last/avg/max/95th
 *   errors        in/out errors and discards per second
 *   packets       in/out unicast, multicast, broadcast packets per second
 *   latency       SmokePing's picture: the interval's spread as grey smoke (bands
 *                 min..p10..p25..median..p75..p90..max when the file has the quantiles,
 *                 else min..max), the median as a line coloured by the interval's loss (0,
 *                 <=5, <=10, <=20, <=50, >50 %), the loss also as a coloured strip along
 *                 the bottom
 *   owd           STAMP's one-way delays, forward and backward: min..max bands and medians
 *   mos           the link's MOS (1 .. 4.5) with the 3.6 line
 *   availability  the device archive's `reachable` as a percentage, red where it was
 *                 down, grey where nothing is known
 *   group         every data source of a metric group's instance as a line
 * Dark (the wall screen) or light (printing) colours; PNG or SVG.
 */
#ifndef KVL_GRAPH_DRAW_H
#define KVL_GRAPH_DRAW_H

#include <stddef.h>
#include <stdint.h>

#include "graph_cache.h"
#include "graph_query.h"

/* What kvl_graph_draw returns besides 0 and negative codes. */
#define KVL_GRAPH_MISSING 1 /* the archive file does not exist */
#define KVL_GRAPH_NODATA 2  /* it lacks the data sources the kind needs (err says which) */

typedef struct kvl_graph_draw {
    kvl_graph_kind_t kind;
    const char *path;          /* the archive file */
    const char *title;         /* any text (control characters are replaced) */
    kvl_graph_format_t format; /* png or svg (json: png) */
    kvl_graph_theme_t theme;
    int64_t from, to;
    uint32_t width, height;
} kvl_graph_draw_t;

/* Draws d. Returns 0 with *out filled (free out->bytes), KVL_GRAPH_MISSING, KVL_GRAPH_NODATA
 * or KVL_EIO / KVL_ENOMEM with a sentence in err. */
int kvl_graph_draw(const kvl_graph_draw_t *d, kvl_graph_image_t *out, char *err, size_t errlen);

/* The arguments kvl_graph_draw hands rrd_graph_v for d and a file with the data sources
 * ds (n of their names), for tests: *argv (free
 * with kvl_graph_args_free) of *argc. Returns 0, KVL_GRAPH_NODATA (err says which) or
 * KVL_ENOMEM. */
int kvl_graph_args(const kvl_graph_draw_t *d, const char *const *ds, size_t n, char ***argv,
                   int *argc, char *err, size_t errlen);
void kvl_graph_args_free(char **argv, int argc);

#endif
