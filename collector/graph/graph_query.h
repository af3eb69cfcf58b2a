/*
 * graph_query.h — the parameters of GET /api/v1/graph (graph.h), checked without the HTTP
 * server so that they can be unit-tested and fuzzed alone, and the cache key a checked
 * query gives.
 *
 *   kind=traffic|errors|packets   agent, device, interface
 *   kind=latency|owd|mos          agent, target (a link as /api/v1/links names it)
 *   kind=availability             agent, device
 *   kind=group                    agent, device, group, instance ("" or absent: the
 *                                 group's scalars)
 *   from=, to=    unix seconds, "now", or relative to now: "-1h", "-7d", "-2y" (also
 *                 "now-1h"); default -1d .. now; the range 1 hour .. 2 years
 *   width=        200..3000 (800), height= 80..1500 (250): the plot area's size
 *   format=       png (default), svg, json; theme= dark (default), light
 *
 * Names: an agent's id, a device and a metric group become folders of the archive's path,
 * so a '/', a ".." or a leading '.' in them is refused, besides the store's bound on a
 * path component (names.h); an interface, a link's target and a group's instance become a
 * file name through the store's escaping (names.h: '/' written as %2F, a leading '.'
 * escaped), so they only need to fit. Every refusal is KVL_EINVAL with a sentence for the
 * 400 in why. Unknown parameters are ignored (a browser's cache-buster).
 */
#ifndef KVL_GRAPH_QUERY_H
#define KVL_GRAPH_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVL_GRAPH_WIDTH_MIN 200
#define KVL_GRAPH_WIDTH_MAX 3000
#define KVL_GRAPH_WIDTH_DEFAULT 800
#define KVL_GRAPH_HEIGHT_MIN 80
#define KVL_GRAPH_HEIGHT_MAX 1500
#define KVL_GRAPH_HEIGHT_DEFAULT 250
#define KVL_GRAPH_RANGE_MIN 3600ll
/* 2 years: "-2y" is 730 days (timeutil.h: 1y = 365 d); a leap day more is allowed. */
#define KVL_GRAPH_RANGE_MAX (731ll * 86400)
#define KVL_GRAPH_RANGE_DEFAULT 86400ll
/* The longest cache key kvl_graph_query_key writes. */
#define KVL_GRAPH_KEY_MAX 2048

typedef enum {
    KVL_GRAPH_TRAFFIC,
    KVL_GRAPH_ERRORS,
    KVL_GRAPH_PACKETS,
    KVL_GRAPH_LATENCY,
    KVL_GRAPH_OWD,
    KVL_GRAPH_MOS,
    KVL_GRAPH_AVAILABILITY,
    KVL_GRAPH_GROUP,
    KVL_GRAPH_KINDS
} kvl_graph_kind_t;

typedef enum { KVL_GRAPH_PNG, KVL_GRAPH_SVG, KVL_GRAPH_JSON } kvl_graph_format_t;
typedef enum { KVL_GRAPH_DARK, KVL_GRAPH_LIGHT } kvl_graph_theme_t;

/* A parameter's value, or NULL when absent. */
typedef const char *(*kvl_graph_param_fn)(const void *ctx, const char *key);

typedef struct kvl_graph_query {
    kvl_graph_kind_t kind;
    /* the get function's strings; NULL where the kind has none */
    const char *agent;
    const char *device;    /* traffic, errors, packets, availability, group */
    const char *interface; /* traffic, errors, packets */
    const char *target;    /* latency, owd, mos */
    const char *group;     /* group */
    const char *instance;  /* group: "" for the scalars */
    int64_t from, to;      /* unix seconds, from + 1 h <= to <= from + 2 y */
    uint32_t width, height;
    kvl_graph_format_t format;
    kvl_graph_theme_t theme;
} kvl_graph_query_t;

/* Reads and checks every parameter through get. now_s: the clock. Returns 0, or KVL_EINVAL
 * with a sentence in why. */
int kvl_graph_query_parse(kvl_graph_param_fn get, const void *ctx, int64_t now_s,
                          kvl_graph_query_t *q, char *why, size_t whylen);

/* The kind's name ("traffic", ...), or NULL. */
const char *kvl_graph_kind_name(kvl_graph_kind_t kind);

/* The range rounded to `quantum` seconds (>= 1): from and to both down to a multiple, so
 * that requests within one quantum of each other draw the same picture. */
void kvl_graph_query_round(const kvl_graph_query_t *q, uint32_t quantum, int64_t *from,
                           int64_t *to);

/* The cache key of q drawn over [from, to] (kvl_graph_query_round's): every parameter
 * that changes the picture (format json draws the png). Returns its length, or KVL_EINVAL
 * when it does not fit in keylen (KVL_GRAPH_KEY_MAX always does). */
int kvl_graph_query_key(const kvl_graph_query_t *q, int64_t from, int64_t to, char *key,
                        size_t keylen);

#endif
