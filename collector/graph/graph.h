/*
 * graph.h — graphs of the archives drawn by librrd, as images on the collector's HTTP
 * server (http.h; viewer role):
 *
 *   GET /api/v1/graph?kind=K&...   a PNG, an SVG, or JSON {"image": "data:image/png;base64,
 *                                  ...", "start", "end", "graph_left", "graph_top",
 *                                  "graph_width", "graph_height", "image_width",
 *                                  "image_height"} (rrd_graph_v's geometry, so that a page
 *                                  can turn a mouse drag into a time range); the parameters
 *                                  in graph_query.h, what each kind draws in graph_draw.h
 *   GET /api/v1/graph/stats        the cache's and the drawing's counters (JSON)
 *
 * Which file: the agent's site (opts.site_of: the one it reports, or the inventory's
 * record of it) and the store's path functions (store.h): an interface's archive, the
 * agent's link archive (<site>/_links/<agent>/<target>.rrd), a device's, a metric group
 * instance's. Bad parameters: 400 with a sentence; an agent nobody knows, a file that
 * does not exist or lacks the data sources the kind needs: 404.
 *
 * Drawing happens on libuv's thread pool (graph_draw.h), one graph at a time, so that the
 * pool's other threads stay free for the store's writes; requests wait in a queue of at
 * most KVL_GRAPH_QUEUE_MAX distinct graphs (more: 503, try again). Requests for a graph
 * already queued or being drawn wait for that one draw. Drawn images are cached
 * (graph_cache.h; KVL_GRAPH_CACHE_BYTES): the key is every parameter with the range
 * rounded down to the larger of the archive's step (learned at its first draw) and the
 * range's seconds per pixel, and an entry expires after min(60 s, seconds per pixel), so
 * a wall of viewers refreshing the same graph costs one draw per expiry.
 *
 * Threads: the loop's (handlers, the cache); the draw alone on the pool.
 */
#ifndef KVL_GRAPH_H
#define KVL_GRAPH_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define KVL_GRAPH_CACHE_BYTES (64u << 20)
#define KVL_GRAPH_QUEUE_MAX 64
#define KVL_GRAPH_WAITERS_MAX 512 /* requests waiting for one draw */
#define KVL_GRAPH_TTL_MAX_S 60

typedef struct kvl_graph kvl_graph_t;
typedef struct kvl_http kvl_http_t;

/* The site an agent reports (NULL: not known). Valid for the call. */
typedef const char *(*kvl_graph_site_fn)(void *ctx, const char *agent);
/* The current name of an interface known by `interface` now or formerly (renamed on the
 * device: its archive moved), or NULL. Valid for the call. */
typedef const char *(*kvl_graph_name_fn)(void *ctx, const char *agent, const char *device,
                                         const char *interface);
/* A label of a device (interface "") or of an interface ("ifAlias", "sysName"), or NULL. */
typedef const char *(*kvl_graph_label_fn)(void *ctx, const char *agent, const char *device,
                                          const char *interface, const char *key);

typedef struct kvl_graph_opts {
    uv_loop_t *loop;
    const char *data_dir; /* the archives (store.h) */
    kvl_graph_site_fn site_of;
    void *site_ctx;
    kvl_graph_label_fn label_of; /* NULL: titles without labels */
    void *label_ctx;
    kvl_graph_name_fn name_of; /* NULL: interfaces by the name asked only */
    void *name_ctx;
    size_t cache_bytes;      /* 0: KVL_GRAPH_CACHE_BYTES */
    int64_t (*now_ms)(void); /* NULL: the wall clock */
} kvl_graph_opts_t;

typedef struct kvl_graph_stats {
    uint64_t requests;  /* graphs asked for (checked and found) */
    uint64_t hits;      /* answered from the cache */
    uint64_t coalesced; /* waited for a draw already queued or under way */
    uint64_t draws;     /* drawn */
    uint64_t failures;  /* draws that failed (missing file included) */
    uint64_t busy;      /* refused with 503: the queue was full */
    size_t queued;      /* graphs waiting or being drawn */
    size_t entries, bytes, max_bytes;
    uint64_t evicted, expired;
} kvl_graph_stats_t;

/* Copies data_dir. Returns 0 or KVL_ENOMEM / KVL_EINVAL with err. */
int kvl_graph_new(const kvl_graph_opts_t *o, kvl_graph_t **out, char *err, size_t errlen);
/* Registers GET /api/v1/graph (and /stats). Returns 0 or a negative KVL_E*. */
int kvl_graph_api_register(kvl_graph_t *g, kvl_http_t *http);
void kvl_graph_stats(const kvl_graph_t *g, kvl_graph_stats_t *st);
/* Requests still queued get 503; g is freed once the draw under way has finished (its
 * answer still goes out). NULL is a no-op. */
void kvl_graph_free(kvl_graph_t *g);

#endif
