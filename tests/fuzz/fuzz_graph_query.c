/*
 * fuzz_graph_query.c — libFuzzer target for what GET /api/v1/graph takes from outside
 * (collector/graph/): its query parameters (kvl_graph_query_parse), the cache key and range
 * rounding made of an accepted query, rrd_graph_v's arguments built for it (against a fixed
 * set of data sources and a path holding ':'), and the cache holding what the key names.
 *
 * Checked beyond "no crash": every refusal has a sentence; an accepted query has its kind's
 * names (non-empty, no control characters; agent, device and group without '/' or ".."),
 * from + 1 h <= to <= from + 2 y, width and height within bounds, a known format and theme;
 * its key fits KVL_GRAPH_KEY_MAX, the rounded range is whole quanta with from < to; every
 * DEF names the path with its ':' escaped (the title, the agent's text here, is one argument
 * "--title=...", so never one that starts like a DEF); the cache gives back the image put
 * under the key.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "graph_cache.h"
#include "graph_draw.h"
#include "graph_query.h"

#define NOW_S 1796464800LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct params {
    char text[4096];
    const char *key[64], *value[64];
    size_t n;
} params_t;

static const char *get(const void *ctx, const char *key)
{
    const params_t *p = ctx;
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->key[i], key) == 0) {
            return p->value[i];
        }
    }
    return NULL;
}

static void name_ok(const char *s, int folder)
{
    CHECK(s != NULL && s[0] != '\0');
    for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
        CHECK(*c >= 0x20 && *c != 0x7f);
    }
    if (folder) {
        CHECK(strchr(s, '/') == NULL && strstr(s, "..") == NULL && s[0] != '.');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static params_t p;
    if (size >= sizeof(p.text)) {
        return 0;
    }
    memcpy(p.text, data, size);
    p.text[size] = '\0';
    p.n = 0;
    for (char *s = p.text; s != NULL && *s != '\0' && p.n < 64;) {
        char *end = strchr(s, '&');
        if (end != NULL) {
            *end = '\0';
        }
        char *eq = strchr(s, '=');
        if (eq != NULL) {
            *eq = '\0';
            p.key[p.n] = s;
            p.value[p.n++] = eq + 1;
        }
        s = end != NULL ? end + 1 : NULL;
    }
    kvl_graph_query_t q;
    char why[300] = "";
    if (kvl_graph_query_parse(get, &p, NOW_S, &q, why, sizeof(why)) != 0) {
        CHECK(why[0] != '\0');
        return 0;
    }
    CHECK(kvl_graph_kind_name(q.kind) != NULL);
    name_ok(q.agent, 1);
    switch (q.kind) {
    case KVL_GRAPH_TRAFFIC:
    case KVL_GRAPH_ERRORS:
    case KVL_GRAPH_PACKETS:
        name_ok(q.device, 1);
        name_ok(q.interface, 0);
        break;
    case KVL_GRAPH_LATENCY:
    case KVL_GRAPH_OWD:
    case KVL_GRAPH_MOS:
        name_ok(q.target, 0);
        break;
    case KVL_GRAPH_AVAILABILITY:
        name_ok(q.device, 1);
        break;
    case KVL_GRAPH_GROUP:
        name_ok(q.device, 1);
        name_ok(q.group, 1);
        CHECK(q.instance != NULL);
        break;
    default:
        CHECK(0);
    }
    CHECK(q.from + KVL_GRAPH_RANGE_MIN <= q.to && q.to - q.from <= KVL_GRAPH_RANGE_MAX);
    CHECK(q.width >= KVL_GRAPH_WIDTH_MIN && q.width <= KVL_GRAPH_WIDTH_MAX);
    CHECK(q.height >= KVL_GRAPH_HEIGHT_MIN && q.height <= KVL_GRAPH_HEIGHT_MAX);
    CHECK(q.format <= KVL_GRAPH_JSON && q.theme <= KVL_GRAPH_LIGHT);

    uint32_t quantum = (uint32_t)((q.to - q.from) / q.width) + 1;
    int64_t from, to;
    kvl_graph_query_round(&q, quantum, &from, &to);
    CHECK(from < to && from % quantum == 0 && to % quantum == 0);
    static char key[KVL_GRAPH_KEY_MAX];
    CHECK(kvl_graph_query_key(&q, from, to, key, sizeof(key)) > 0);

    static const char *const ds[] = {"in_octets",         "out_octets",
                                     "speed_bps",         "in_errors",
                                     "out_errors",        "in_discards",
                                     "out_discards",      "in_ucast_pkts",
                                     "out_ucast_pkts",    "in_mcast_pkts",
                                     "out_mcast_pkts",    "in_bcast_pkts",
                                     "out_bcast_pkts",    "lost_pct",
                                     "rtt_min_ms",        "rtt_median_ms",
                                     "rtt_max_ms",        "rtt_p10_ms",
                                     "rtt_p25_ms",        "rtt_p75_ms",
                                     "rtt_p90_ms",        "mos",
                                     "reachable",         "owd_fwd_min_ms",
                                     "owd_fwd_median_ms", "owd_fwd_max_ms",
                                     "owd_bwd_min_ms",    "owd_bwd_median_ms",
                                     "owd_bwd_max_ms"};
    kvl_graph_draw_t d = {.kind = q.kind,
                          .path = "/data:1/s/d.rrd",
                          .title = q.agent,
                          .format = q.format == KVL_GRAPH_SVG ? KVL_GRAPH_SVG : KVL_GRAPH_PNG,
                          .theme = q.theme,
                          .from = from,
                          .to = to,
                          .width = q.width,
                          .height = q.height};
    char **argv;
    int argc;
    char err[256];
    size_t n = (size_t)(data[0] % (sizeof(ds) / sizeof(ds[0]) + 1));
    int rc = kvl_graph_args(&d, ds, n, &argv, &argc, err, sizeof(err));
    CHECK(rc == 0 || rc == KVL_GRAPH_NODATA || rc < 0);
    if (rc == 0) {
        for (int i = 0; i < argc; i++) {
            CHECK(argv[i] != NULL);
            if (strncmp(argv[i], "DEF:", 4) == 0) {
                CHECK(strstr(argv[i], "=/data\\:1/s/d.rrd:") != NULL);
            }
        }
        kvl_graph_args_free(argv, argc);
    } else {
        CHECK(err[0] != '\0');
    }

    kvl_graph_cache_t *c;
    if (kvl_graph_cache_new(1 << 20, &c) != 0) {
        return 0;
    }
    kvl_graph_image_t img = {.len = size, .bytes = malloc(size ? size : 1)};
    if (img.bytes != NULL) {
        memcpy(img.bytes, data, size);
        CHECK(kvl_graph_cache_put(c, key, &img, 1000) == 0);
        const kvl_graph_image_t *got = kvl_graph_cache_get(c, key, 999);
        CHECK(got != NULL && got->len == size && memcmp(got->bytes, data, size) == 0);
        CHECK(kvl_graph_cache_get(c, key, 1000) == NULL);
    }
    kvl_graph_cache_free(c);
    return 0;
}
