/*
 * graph_cache.h — drawn graphs kept for the next viewer (graph.h): a map from a query's
 * key (graph_query.h) to the image and what librrd said of its geometry, bounded in bytes
 * (the least recently used entries go first), each entry expiring at a time of its own.
 * Pure (the clock is a parameter), one thread: the loop's.
 */
#ifndef KVL_GRAPH_CACHE_H
#define KVL_GRAPH_CACHE_H

#include <stddef.h>
#include <stdint.h>

/* A drawn graph: the image and rrd_graph_v's info about it. */
typedef struct kvl_graph_image {
    char *bytes; /* malloc'd */
    size_t len;
    int64_t start, end; /* the time range drawn (graph_start, graph_end) */
    long graph_left, graph_top, graph_width, graph_height;
    long image_width, image_height;
    uint32_t step; /* the archive's step (seconds), 0 when unknown */
} kvl_graph_image_t;

typedef struct kvl_graph_cache kvl_graph_cache_t;

typedef struct kvl_graph_cache_stats {
    size_t entries, bytes, max_bytes;
    uint64_t hits, misses, expired, evicted, too_big;
} kvl_graph_cache_stats_t;

/* max_bytes: what the images and keys may hold together. Returns 0 or KVL_ENOMEM. */
int kvl_graph_cache_new(size_t max_bytes, kvl_graph_cache_t **out);
void kvl_graph_cache_free(kvl_graph_cache_t *c);

/* The image under key unless it has expired at now_ms (then dropped), else NULL (a miss).
 * Valid until the next put or free. A hit makes the entry the most recently used. */
const kvl_graph_image_t *kvl_graph_cache_get(kvl_graph_cache_t *c, const char *key, int64_t now_ms);

/* Keeps img (its bytes taken in every case) under key until expires_ms, replacing an entry
 * of the same key and dropping the least recently used ones until it fits. An image larger
 * than a quarter of max_bytes is not kept (counted in too_big). Returns 0, KVL_EINVAL
 * (too big) or KVL_ENOMEM. */
int kvl_graph_cache_put(kvl_graph_cache_t *c, const char *key, kvl_graph_image_t *img,
                        int64_t expires_ms);

void kvl_graph_cache_stats(const kvl_graph_cache_t *c, kvl_graph_cache_stats_t *st);

#endif
