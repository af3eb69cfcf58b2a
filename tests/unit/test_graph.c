/*
 * test_graph.c — unit tests for the graphs (collector/graph/): the query's parameters
 * (every kind's names, times absolute and relative, the range's bounds, sizes, format,
 * theme, names that would climb out of the archive folder), the cache key and its
 * rounding, the cache (hits, expiry, the least recently used dropped by bytes, an image
 * too big), and real draws by librrd of archives made here: PNG and SVG of the asked
 * size, the geometry rrd_graph_v reports, a link with and without the RTT quantiles, a
 * kind the file has no data for, a missing file, and a data folder whose path holds ':';
 * the route (graph_api.c) with the HTTP server faked at link time (kvl_http_route,
 * kvl_http_query, kvl_http_error, kvl_http_defer, kvl_http_answer*): refusals, requests for
 * one graph waiting for one draw, the cache's answer on the spot, its expiry, the queue's
 * bound (503) and kvl_graph_free with a draw under way and others queued.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "graph.h"
#include "graph_cache.h"
#include "graph_draw.h"
#include "graph_query.h"
#include "http.h"
#include "kvl.h"
#include "rrd_store.h"
#include "store.h"

#define NOW 1796464800LL

/* ---- parameters from a "k=v&k=v" string ---- */

typedef struct params {
    char text[4096];
    const char *key[32], *value[32];
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

static int parse(const char *qs, kvl_graph_query_t *q, char *why, size_t whylen)
{
    static params_t p;
    memset(&p, 0, sizeof(p));
    snprintf(p.text, sizeof(p.text), "%s", qs);
    for (char *s = p.text; s != NULL && *s != '\0' && p.n < 32;) {
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
    why[0] = '\0';
    return kvl_graph_query_parse(get, &p, NOW, q, why, whylen);
}

static void refused(const char *qs, const char *words)
{
    kvl_graph_query_t q;
    char why[300];
    int rc = parse(qs, &q, why, sizeof(why));
    if (rc != KVL_EINVAL || strstr(why, words) == NULL) {
        fail_msg("%s: rc %d, why '%s' (wanted '%s')", qs, rc, why, words);
    }
}

static void test_query_defaults(void **state)
{
    (void)state;
    kvl_graph_query_t q;
    char why[300];
    assert_int_equal(parse("kind=traffic&agent=a1&device=r1&interface=Gi0/1", &q, why, sizeof(why)),
                     0);
    assert_int_equal(q.kind, KVL_GRAPH_TRAFFIC);
    assert_string_equal(q.agent, "a1");
    assert_string_equal(q.device, "r1");
    assert_string_equal(q.interface, "Gi0/1");
    assert_null(q.target);
    assert_int_equal(q.to, NOW);
    assert_int_equal(q.from, NOW - 86400);
    assert_int_equal(q.width, 800);
    assert_int_equal(q.height, 250);
    assert_int_equal(q.format, KVL_GRAPH_PNG);
    assert_int_equal(q.theme, KVL_GRAPH_DARK);
    assert_string_equal(kvl_graph_kind_name(q.kind), "traffic");
}

static void test_query_kinds(void **state)
{
    (void)state;
    kvl_graph_query_t q;
    char why[300];
    assert_int_equal(
        parse("kind=latency&agent=a1&target=10.0.0.1&format=svg&theme=light", &q, why, sizeof(why)),
        0);
    assert_int_equal(q.kind, KVL_GRAPH_LATENCY);
    assert_string_equal(q.target, "10.0.0.1");
    assert_null(q.device);
    assert_int_equal(q.format, KVL_GRAPH_SVG);
    assert_int_equal(q.theme, KVL_GRAPH_LIGHT);
    /* a URL target of an http probe: a file name through the store's escaping */
    assert_int_equal(parse("kind=owd&agent=a1&target=https://x/y", &q, why, sizeof(why)), 0);
    assert_int_equal(parse("kind=mos&agent=a1&target=t&format=json", &q, why, sizeof(why)), 0);
    assert_int_equal(q.format, KVL_GRAPH_JSON);
    assert_int_equal(parse("kind=availability&agent=a1&device=r1", &q, why, sizeof(why)), 0);
    assert_int_equal(
        parse("kind=group&agent=a1&device=r1&group=cpu&instance=0", &q, why, sizeof(why)), 0);
    assert_string_equal(q.group, "cpu");
    assert_string_equal(q.instance, "0");
    assert_int_equal(parse("kind=group&agent=a1&device=r1&group=cpu", &q, why, sizeof(why)), 0);
    assert_string_equal(q.instance, "");
    assert_int_equal(parse("kind=errors&agent=a&device=d&interface=..&_=123", &q, why, sizeof(why)),
                     0);
    assert_int_equal(parse("kind=packets&agent=a&device=d&interface=i", &q, why, sizeof(why)), 0);
}

static void test_query_refused(void **state)
{
    (void)state;
    refused("agent=a", "kind= is required");
    refused("kind=pie&agent=a", "kind=pie is not a graph");
    refused("kind=traffic&device=d&interface=i", "agent= is required");
    refused("kind=traffic&agent=a&interface=i", "device= is required");
    refused("kind=traffic&agent=a&device=d", "interface= is required");
    refused("kind=traffic&agent=a&device=d&interface=", "interface= is required");
    refused("kind=latency&agent=a", "target= is required");
    refused("kind=group&agent=a&device=d", "group= is required");
    refused("kind=traffic&agent=../x&device=d&interface=i", "agent= may not hold");
    refused("kind=traffic&agent=a/b&device=d&interface=i", "agent= may not hold");
    refused("kind=traffic&agent=.a&device=d&interface=i", "agent= may not hold");
    refused("kind=traffic&agent=a&device=../../etc&interface=i", "device= may not hold");
    refused("kind=group&agent=a&device=d&group=../g", "group= may not hold");
    refused("kind=traffic&agent=a&device=d&interface=i&width=99999", "width=99999");
    refused("kind=traffic&agent=a&device=d&interface=i&width=199", "from 200 to 3000");
    refused("kind=traffic&agent=a&device=d&interface=i&width=-5", "width=-5");
    refused("kind=traffic&agent=a&device=d&interface=i&width=8x", "width=8x");
    refused("kind=traffic&agent=a&device=d&interface=i&height=79", "height=79");
    refused("kind=traffic&agent=a&device=d&interface=i&height=1501", "height=1501");
    refused("kind=traffic&agent=a&device=d&interface=i&from=-1h&to=-2h", "before to=");
    refused("kind=traffic&agent=a&device=d&interface=i&from=-30m", "at least 1 hour");
    refused("kind=traffic&agent=a&device=d&interface=i&from=-3y", "2 years at most");
    refused("kind=traffic&agent=a&device=d&interface=i&from=yesterday", "from=yesterday");
    refused("kind=traffic&agent=a&device=d&interface=i&from=-", "a relative time");
    refused("kind=traffic&agent=a&device=d&interface=i&from=-1h1", "a relative time");
    refused("kind=traffic&agent=a&device=d&interface=i&to=99999999999", "unix seconds");
    refused("kind=traffic&agent=a&device=d&interface=i&format=gif", "format=gif");
    refused("kind=traffic&agent=a&device=d&interface=i&theme=pink", "theme=pink");
    char long_name[400];
    memset(long_name, 'x', 300);
    long_name[300] = '\0';
    char qs[600];
    snprintf(qs, sizeof(qs), "kind=traffic&agent=a&device=d&interface=%s", long_name);
    refused(qs, "interface= is too long");
}

static void test_query_times(void **state)
{
    (void)state;
    kvl_graph_query_t q;
    char why[300];
    assert_int_equal(parse("kind=mos&agent=a&target=t&from=-7d&to=now", &q, why, sizeof(why)), 0);
    assert_int_equal(q.from, NOW - 7 * 86400);
    assert_int_equal(q.to, NOW);
    assert_int_equal(parse("kind=mos&agent=a&target=t&from=-2y", &q, why, sizeof(why)), 0);
    assert_int_equal(q.from, NOW - 730 * 86400LL);
    assert_int_equal(parse("kind=mos&agent=a&target=t&from=now-1h", &q, why, sizeof(why)), 0);
    assert_int_equal(q.from, NOW - 3600);
    assert_int_equal(
        parse("kind=mos&agent=a&target=t&from=1700000000&to=1700003600", &q, why, sizeof(why)), 0);
    assert_int_equal(q.from, 1700000000);
    assert_int_equal(q.to, 1700003600);
    /* to alone: the default range ends there */
    assert_int_equal(parse("kind=mos&agent=a&target=t&to=-1d", &q, why, sizeof(why)), 0);
    assert_int_equal(q.to, NOW - 86400);
    assert_int_equal(q.from, NOW - 2 * 86400);
    assert_int_equal(
        parse("kind=mos&agent=a&target=t&width=3000&height=1500", &q, why, sizeof(why)), 0);
    assert_int_equal(q.width, 3000);
    assert_int_equal(q.height, 1500);
}

static void test_query_key(void **state)
{
    (void)state;
    kvl_graph_query_t q, r;
    char why[300], k1[KVL_GRAPH_KEY_MAX], k2[KVL_GRAPH_KEY_MAX];
    int64_t f1, t1, f2, t2;
    assert_int_equal(parse("kind=traffic&agent=a&device=d&interface=i&from=1700000045&to="
                           "1700086445",
                           &q, why, sizeof(why)),
                     0);
    assert_int_equal(parse("kind=traffic&agent=a&device=d&interface=i&from=1700000095&to="
                           "1700086495",
                           &r, why, sizeof(why)),
                     0);
    kvl_graph_query_round(&q, 60, &f1, &t1);
    kvl_graph_query_round(&r, 60, &f2, &t2);
    assert_int_equal(f1 % 60, 0);
    assert_int_equal(t1 % 60, 0);
    assert_true(kvl_graph_query_key(&q, f1, t1, k1, sizeof(k1)) > 0);
    assert_true(kvl_graph_query_key(&r, f2, t2, k2, sizeof(k2)) > 0);
    assert_string_equal(k1, k2); /* within one step: one picture */
    /* json draws the png: the same key; svg or another size: another */
    assert_int_equal(parse("kind=traffic&agent=a&device=d&interface=i&from=1700000045&to="
                           "1700086410&format=json",
                           &r, why, sizeof(why)),
                     0);
    assert_true(kvl_graph_query_key(&r, f1, t1, k2, sizeof(k2)) > 0);
    assert_string_equal(k1, k2);
    const char *others[] = {"format=svg", "width=801", "theme=light", "height=251"};
    for (size_t i = 0; i < 4; i++) {
        char qs[300];
        snprintf(qs, sizeof(qs),
                 "kind=traffic&agent=a&device=d&interface=i&from=1700000045&to=1700086445&%s",
                 others[i]);
        assert_int_equal(parse(qs, &r, why, sizeof(why)), 0);
        assert_true(kvl_graph_query_key(&r, f1, t1, k2, sizeof(k2)) > 0);
        assert_string_not_equal(k1, k2);
    }
    /* names do not run into each other */
    assert_int_equal(parse("kind=traffic&agent=a&device=d1&interface=i", &q, why, sizeof(why)), 0);
    assert_int_equal(parse("kind=traffic&agent=a&device=d&interface=1i", &r, why, sizeof(why)), 0);
    assert_true(kvl_graph_query_key(&q, f1, t1, k1, sizeof(k1)) > 0);
    assert_true(kvl_graph_query_key(&r, f1, t1, k2, sizeof(k2)) > 0);
    assert_string_not_equal(k1, k2);
    assert_int_equal(kvl_graph_query_key(&q, f1, t1, k1, 10), KVL_EINVAL);
}

/* ---- the cache ---- */

static kvl_graph_image_t image(size_t len, char fill)
{
    kvl_graph_image_t img = {.len = len, .image_width = 100};
    img.bytes = malloc(len);
    memset(img.bytes, fill, len);
    return img;
}

static void test_cache(void **state)
{
    (void)state;
    kvl_graph_cache_t *c;
    assert_int_equal(kvl_graph_cache_new(40000, &c), 0);
    assert_null(kvl_graph_cache_get(c, "a", 0));
    kvl_graph_image_t img = image(5000, 'a');
    assert_int_equal(kvl_graph_cache_put(c, "a", &img, 1000), 0);
    assert_null(img.bytes); /* taken */
    const kvl_graph_image_t *got = kvl_graph_cache_get(c, "a", 999);
    assert_non_null(got);
    assert_int_equal(got->len, 5000);
    assert_int_equal(got->bytes[4999], 'a');
    /* expired at its time: dropped */
    assert_null(kvl_graph_cache_get(c, "a", 1000));
    kvl_graph_cache_stats_t st;
    kvl_graph_cache_stats(c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);

    /* bounded by bytes: the least recently used goes */
    const char *keys[] = {"k1", "k2", "k3", "k4", "k5", "k6", "k7"};
    for (size_t i = 0; i < 7; i++) {
        img = image(6000, (char)('1' + i));
        assert_int_equal(kvl_graph_cache_put(c, keys[i], &img, 10000), 0);
        if (i == 4) {
            assert_non_null(kvl_graph_cache_get(c, "k1", 0)); /* k1 used: k2 is the oldest */
        }
    }
    kvl_graph_cache_stats(c, &st);
    assert_true(st.bytes <= 40000);
    assert_true(st.evicted >= 1);
    assert_null(kvl_graph_cache_get(c, "k2", 0));
    assert_non_null(kvl_graph_cache_get(c, "k1", 0));
    assert_non_null(kvl_graph_cache_get(c, "k7", 0));
    /* replaced under the same key */
    img = image(100, 'z');
    assert_int_equal(kvl_graph_cache_put(c, "k7", &img, 10000), 0);
    got = kvl_graph_cache_get(c, "k7", 0);
    assert_int_equal(got->len, 100);
    /* too big for a quarter of the bound: not kept, counted */
    img = image(20000, 'b');
    assert_int_equal(kvl_graph_cache_put(c, "big", &img, 10000), KVL_EINVAL);
    assert_null(img.bytes);
    assert_null(kvl_graph_cache_get(c, "big", 0));
    kvl_graph_cache_stats(c, &st);
    assert_int_equal(st.too_big, 1);
    /* many keys: the table grows, every one found */
    kvl_graph_cache_free(c);
    assert_int_equal(kvl_graph_cache_new(100u << 20, &c), 0);
    char key[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        img = image(10, 'x');
        assert_int_equal(kvl_graph_cache_put(c, key, &img, 10000), 0);
    }
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "key%d", i);
        assert_non_null(kvl_graph_cache_get(c, key, 0));
    }
    kvl_graph_cache_free(c);
}

/* ---- drawing real archives ---- */

static char dir[256];

static const kvl_rrd_ds_t if_ds[] = {
    {"in_octets", 1},     {"out_octets", 1},     {"in_ucast_pkts", 1}, {"out_ucast_pkts", 1},
    {"in_mcast_pkts", 1}, {"out_mcast_pkts", 1}, {"in_bcast_pkts", 1}, {"out_bcast_pkts", 1},
    {"in_errors", 1},     {"out_errors", 1},     {"in_discards", 1},   {"out_discards", 1},
    {"oper_status", 0},   {"admin_status", 0},   {"speed_bps", 0},
};

static const kvl_rrd_ds_t link_ds[] = {
    {"lost_pct", 0},   {"rtt_min_ms", 0}, {"rtt_median_ms", 0}, {"rtt_max_ms", 0}, {"mos", 0},
    {"rtt_p10_ms", 0}, {"rtt_p25_ms", 0}, {"rtt_p75_ms", 0},    {"rtt_p90_ms", 0},
};

static int64_t t_end;

/* An archive of ds filled with 200 minutes of values (fn gives each). */
static void make_rrd(const char *path, const kvl_rrd_ds_t *ds, size_t n,
                     double (*fn)(size_t i, size_t k))
{
    char err[512];
    kvl_rrd_rra_t rra = {"AVERAGE", 1, 1000};
    int64_t t0 = 1700000000 - 60;
    assert_int_equal(kvl_rrd_create(path, 60, t0, ds, n, &rra, 1, err, sizeof(err)), KVL_RRD_OK);
    char tmpl[1024] = "", upd[2048];
    for (size_t k = 0; k < n; k++) {
        strcat(tmpl, k ? ":" : "");
        strcat(tmpl, ds[k].name);
    }
    for (size_t i = 1; i <= 200; i++) {
        int len = snprintf(upd, sizeof(upd), "%lld", (long long)(t0 + 60 * (int64_t)i));
        for (size_t k = 0; k < n; k++) {
            double v = fn(i, k);
            len += ds[k].counter
                       ? snprintf(upd + len, sizeof(upd) - (size_t)len, ":%lld", (long long)v)
                       : snprintf(upd + len, sizeof(upd) - (size_t)len, ":%.3f", v);
        }
        if (kvl_rrd_update(path, tmpl, upd, err, sizeof(err)) != KVL_RRD_OK) {
            fail_msg("%s: %s", upd, err);
        }
    }
    t_end = t0 + 60 * 200;
}

static double if_value(size_t i, size_t k)
{
    if (k == 14) {
        return 1e9; /* speed */
    }
    return k >= 12 ? 1 : (double)i * 1000.0 * (double)(k + 1);
}

static double link_value(size_t i, size_t k)
{
    static const double base[] = {0, 1, 5, 20, 4.2, 2, 3, 8, 12};
    return k == 0 ? (double)(i % 7) * 3 : base[k] + (double)(i % 5);
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void draw_ok(kvl_graph_draw_t *d, kvl_graph_image_t *img)
{
    char err[512] = "";
    int rc = kvl_graph_draw(d, img, err, sizeof(err));
    if (rc != 0) {
        fail_msg("draw %s: %d %s", d->path, rc, err);
    }
    assert_non_null(img->bytes);
    assert_true(img->graph_width > 0 && img->image_width > img->graph_width);
    assert_true(img->image_height > img->graph_height);
    assert_int_equal(img->graph_width, (long)d->width);
    assert_int_equal(img->graph_height, (long)d->height);
    assert_int_equal(img->step, 60);
    if (d->format == KVL_GRAPH_PNG) {
        assert_true(img->len > 24);
        assert_memory_equal(img->bytes, "\x89PNG\r\n\x1a\n", 8);
        assert_memory_equal(img->bytes + 12, "IHDR", 4);
        assert_int_equal(be32((const unsigned char *)img->bytes + 16), img->image_width);
        assert_int_equal(be32((const unsigned char *)img->bytes + 20), img->image_height);
    } else {
        assert_non_null(strstr(img->bytes, "<svg"));
    }
}

static void test_draw(void **state)
{
    (void)state;
    /* a ':' in the data folder's path: escaped in DEF */
    snprintf(dir, sizeof(dir), "/tmp/kvl-test-graph-%d:x", (int)getpid());
    assert_int_equal(mkdir(dir, 0755), 0);
    char ifp[512], lnp[512], oldp[512], missing[512];
    snprintf(ifp, sizeof(ifp), "%s/Gi0%%2F1.rrd", dir);
    snprintf(lnp, sizeof(lnp), "%s/link.rrd", dir);
    snprintf(oldp, sizeof(oldp), "%s/old-link.rrd", dir);
    snprintf(missing, sizeof(missing), "%s/none.rrd", dir);
    make_rrd(ifp, if_ds, KVL_ARRAY_SIZE(if_ds), if_value);
    make_rrd(lnp, link_ds, KVL_ARRAY_SIZE(link_ds), link_value);
    make_rrd(oldp, link_ds, 5, link_value); /* without the quantiles */

    kvl_graph_draw_t d = {.kind = KVL_GRAPH_TRAFFIC,
                          .path = ifp,
                          .title = "r1 Gi0/1 (uplink: to \"core\"\n) — traffic",
                          .format = KVL_GRAPH_PNG,
                          .from = t_end - 3 * 3600,
                          .to = t_end,
                          .width = 400,
                          .height = 100};
    kvl_graph_image_t img, wide;
    draw_ok(&d, &img);
    d.width = 800;
    draw_ok(&d, &wide);
    assert_true(wide.image_width >= img.image_width + 400);
    assert_true(img.start <= d.from + 60 && img.end >= d.to - 60);
    free(img.bytes);
    free(wide.bytes);
    d.format = KVL_GRAPH_SVG;
    d.theme = KVL_GRAPH_LIGHT;
    draw_ok(&d, &img);
    free(img.bytes);
    d.format = KVL_GRAPH_PNG;
    kvl_graph_kind_t if_kinds[] = {KVL_GRAPH_ERRORS, KVL_GRAPH_PACKETS};
    for (size_t i = 0; i < 2; i++) {
        d.kind = if_kinds[i];
        draw_ok(&d, &img);
        free(img.bytes);
    }
    kvl_graph_kind_t link_kinds[] = {KVL_GRAPH_LATENCY, KVL_GRAPH_MOS, KVL_GRAPH_GROUP};
    const char *links[] = {lnp, oldp};
    for (size_t l = 0; l < 2; l++) {
        for (size_t i = 0; i < 3; i++) {
            d.kind = link_kinds[i];
            d.path = links[l];
            draw_ok(&d, &img);
            free(img.bytes);
        }
    }
    /* what the file lacks, and a file that is not there */
    char err[512];
    d.kind = KVL_GRAPH_OWD;
    d.path = lnp;
    assert_int_equal(kvl_graph_draw(&d, &img, err, sizeof(err)), KVL_GRAPH_NODATA);
    assert_non_null(strstr(err, "STAMP"));
    assert_null(img.bytes);
    d.kind = KVL_GRAPH_AVAILABILITY;
    assert_int_equal(kvl_graph_draw(&d, &img, err, sizeof(err)), KVL_GRAPH_NODATA);
    d.kind = KVL_GRAPH_TRAFFIC;
    assert_int_equal(kvl_graph_draw(&d, &img, err, sizeof(err)), KVL_GRAPH_NODATA);
    d.path = missing;
    assert_int_equal(kvl_graph_draw(&d, &img, err, sizeof(err)), KVL_GRAPH_MISSING);

    unlink(ifp);
    unlink(lnp);
    unlink(oldp);
    rmdir(dir);
}

/* The arguments: the path's ':' escaped in every DEF; the quantiles used only when there. */
static void test_args(void **state)
{
    (void)state;
    const char *ds[] = {"lost_pct",   "rtt_min_ms", "rtt_median_ms", "rtt_max_ms",
                        "rtt_p10_ms", "rtt_p25_ms", "rtt_p75_ms",    "rtt_p90_ms"};
    kvl_graph_draw_t d = {.kind = KVL_GRAPH_LATENCY,
                          .path = "/data:x/s/a/_links/t.rrd",
                          .title = "t",
                          .from = 1700000000,
                          .to = 1700003600,
                          .width = 800,
                          .height = 250};
    char **argv;
    int argc;
    char err[256];
    assert_int_equal(kvl_graph_args(&d, ds, 8, &argv, &argc, err, sizeof(err)), 0);
    int defs = 0, q = 0;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "DEF:", 4) == 0) {
            defs++;
            assert_non_null(strstr(argv[i], "=/data\\:x/s/a/_links/t.rrd:"));
        }
        q += strstr(argv[i], "rtt_p10_ms") != NULL;
    }
    assert_int_equal(defs, 8);
    assert_int_equal(q, 1);
    kvl_graph_args_free(argv, argc);
    assert_int_equal(kvl_graph_args(&d, ds, 4, &argv, &argc, err, sizeof(err)), 0);
    for (int i = 0; i < argc; i++) {
        assert_null(strstr(argv[i], "rtt_p10_ms"));
    }
    kvl_graph_args_free(argv, argc);
    /* tcp's connect times are a link's delays too; nothing at all is refused */
    const char *tcp[] = {"lost_pct", "connect_min_ms", "connect_median_ms", "connect_max_ms"};
    assert_int_equal(kvl_graph_args(&d, tcp, 4, &argv, &argc, err, sizeof(err)), 0);
    kvl_graph_args_free(argv, argc);
    assert_int_equal(kvl_graph_args(&d, tcp, 1, &argv, &argc, err, sizeof(err)), KVL_GRAPH_NODATA);
    assert_null(argv);
}

/* ---- the route, with the HTTP server faked ---- */

struct kvl_http_later {
    bool answered;
    int status;
    const char *type;
    char *bytes;
    size_t len;
    json_t *body;
};

#define LATERS_MAX 128
static struct kvl_http_later laters[LATERS_MAX];
static size_t n_laters;
static kvl_http_handler_fn route_fn;
static void *route_ctx;

int kvl_http_route(kvl_http_t *h, const char *method, const char *prefix, kvl_role_t min_role,
                   kvl_http_handler_fn fn, void *ctx)
{
    (void)h;
    assert_string_equal(method, "GET");
    assert_string_equal(prefix, "/api/v1/graph");
    assert_int_equal(min_role, KVL_ROLE_VIEWER);
    route_fn = fn;
    route_ctx = ctx;
    return 0;
}

const char *kvl_http_query(const kvl_http_req_t *req, const char *key)
{
    return get(req->priv, key);
}

void kvl_http_error(kvl_http_resp_t *resp, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    resp->status = status;
    resp->body = json_pack("{s:s}", "error", msg);
}

kvl_http_later_t *kvl_http_defer(const kvl_http_req_t *req)
{
    (void)req;
    assert_true(n_laters < LATERS_MAX);
    memset(&laters[n_laters], 0, sizeof(laters[0]));
    return &laters[n_laters++];
}

void kvl_http_answer(kvl_http_later_t *later, int status, json_t *body)
{
    assert_false(later->answered);
    later->answered = true;
    later->status = status;
    later->body = body;
}

void kvl_http_answer_bytes(kvl_http_later_t *later, int status, const char *type, void *bytes,
                           size_t len)
{
    assert_false(later->answered);
    later->answered = true;
    later->status = status;
    later->type = type;
    later->bytes = bytes;
    later->len = len;
}

static void laters_clear(void)
{
    for (size_t i = 0; i < n_laters; i++) {
        assert_true(laters[i].answered); /* every deferred request answered, once */
        free(laters[i].bytes);
        json_decref(laters[i].body);
    }
    n_laters = 0;
}

static int64_t api_now_ms;
static int64_t api_now(void)
{
    return api_now_ms;
}

static const char *site_of(void *ctx, const char *agent)
{
    (void)ctx;
    return strcmp(agent, "a1") == 0 ? "s1" : NULL;
}

static const char *label_of(void *ctx, const char *agent, const char *device, const char *iface,
                            const char *key)
{
    (void)ctx;
    (void)agent;
    (void)device;
    return iface != NULL && strcmp(key, "ifAlias") == 0 ? "uplink to core" : NULL;
}

/* Calls the route with query qs: the response (status 0 when deferred). */
static kvl_http_resp_t call(const char *qs, const char *seg)
{
    static params_t p[LATERS_MAX];
    static size_t next;
    params_t *pp = &p[next++ % LATERS_MAX]; /* the draw keeps no pointer into it, but a
                                               request's strings live until it is answered */
    memset(pp, 0, sizeof(*pp));
    snprintf(pp->text, sizeof(pp->text), "%s", qs);
    for (char *s = pp->text; s != NULL && *s != '\0' && pp->n < 32;) {
        char *end = strchr(s, '&');
        if (end != NULL) {
            *end = '\0';
        }
        char *eq = strchr(s, '=');
        if (eq != NULL) {
            *eq = '\0';
            pp->key[pp->n] = s;
            pp->value[pp->n++] = eq + 1;
        }
        s = end != NULL ? end + 1 : NULL;
    }
    kvl_http_req_t req = {.method = "GET", .path = "/api/v1/graph", .priv = pp};
    if (seg != NULL) {
        req.segs[0] = seg;
        req.n_segs = 1;
    }
    kvl_http_resp_t resp = {0};
    route_fn(route_ctx, &req, &resp);
    return resp;
}

static void resp_free(kvl_http_resp_t *r)
{
    json_decref(r->body);
    free(r->bytes);
}

static json_int_t stat_of(const char *key)
{
    kvl_http_resp_t r = call("", "stats");
    assert_int_equal(r.status, 200);
    json_int_t v = json_integer_value(json_object_get(r.body, key));
    resp_free(&r);
    return v;
}

static void test_api(void **state)
{
    (void)state;
    char data[256], path[1024];
    snprintf(data, sizeof(data), "/tmp/kvl-test-graph-api-%d", (int)getpid());
    assert_int_equal(mkdir(data, 0755), 0);
    assert_int_equal(
        kvl_store_path(data, "s1", "r1", KVL_SCOPE_INTERFACE, "Gi0/1", path, sizeof(path)), 0);
    char dirs[1024];
    snprintf(dirs, sizeof(dirs), "%s/s1", data);
    assert_int_equal(mkdir(dirs, 0755), 0);
    snprintf(dirs, sizeof(dirs), "%s/s1/r1", data);
    assert_int_equal(mkdir(dirs, 0755), 0);
    make_rrd(path, if_ds, KVL_ARRAY_SIZE(if_ds), if_value);
    api_now_ms = t_end * 1000;

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kvl_graph_opts_t o = {.loop = &loop,
                          .data_dir = data,
                          .site_of = site_of,
                          .label_of = label_of,
                          .now_ms = api_now};
    kvl_graph_t *g;
    char err[256];
    assert_int_equal(kvl_graph_new(&o, &g, err, sizeof(err)), 0);
    assert_int_equal(kvl_graph_api_register(g, NULL), 0);

    /* refusals on the spot */
    kvl_http_resp_t r = call("kind=traffic&agent=a1&device=r1&interface=Gi0/1&width=99999", NULL);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(json_string_value(json_object_get(r.body, "error")), "width"));
    resp_free(&r);
    r = call("kind=traffic&agent=zz&device=r1&interface=Gi0/1", NULL);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    r = call("", "nothing");
    assert_int_equal(r.status, 404);
    resp_free(&r);
    /* a file that is not there: 404 after the draw tried */
    r = call("kind=traffic&agent=a1&device=r1&interface=Gi0/2", NULL);
    assert_int_equal(r.status, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(n_laters, 1);
    assert_int_equal(laters[0].status, 404);
    laters_clear();

    /* the archive's first draw teaches the route its step (60 s): the keys round to it */
    r = call("kind=packets&agent=a1&device=r1&interface=Gi0/1", NULL);
    assert_int_equal(r.status, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(laters[0].status, 200);
    laters_clear();

    /* two requests for one graph (png, json) before the loop runs: one draw answers both */
    const char *q = "kind=traffic&agent=a1&device=r1&interface=Gi0/1&from=-3h&width=400";
    char qj[300];
    snprintf(qj, sizeof(qj), "%s&format=json", q);
    r = call(q, NULL);
    assert_int_equal(r.status, 0);
    r = call(qj, NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(stat_of("queued"), 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(n_laters, 2);
    assert_int_equal(laters[0].status, 200);
    assert_string_equal(laters[0].type, "image/png");
    assert_memory_equal(laters[0].bytes, "\x89PNG", 4);
    assert_int_equal(laters[1].status, 200);
    assert_non_null(laters[1].body);
    assert_int_equal(json_integer_value(json_object_get(laters[1].body, "graph_width")), 400);
    assert_int_equal(be32((const unsigned char *)laters[0].bytes + 16),
                     json_integer_value(json_object_get(laters[1].body, "image_width")));
    assert_int_equal(stat_of("draws"), 2);
    assert_int_equal(stat_of("coalesced"), 1);
    /* the same again: from the cache, on the spot, the same bytes */
    r = call(q, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, laters[0].len);
    assert_memory_equal(r.bytes, laters[0].bytes, r.len);
    resp_free(&r);
    assert_int_equal(stat_of("hits"), 1);
    laters_clear();
    /* a minute later the entry has expired: drawn again */
    api_now_ms += 61000;
    r = call(q, NULL);
    assert_int_equal(r.status, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(laters[0].status, 200);
    assert_int_equal(stat_of("draws"), 3);
    laters_clear();

    /* the queue's bound: KVL_GRAPH_QUEUE_MAX distinct graphs wait, the next is refused */
    char qs[300];
    for (int i = 0; i <= KVL_GRAPH_QUEUE_MAX; i++) {
        snprintf(qs, sizeof(qs), "kind=errors&agent=a1&device=r1&interface=Gi0/1&width=%d",
                 500 + i);
        r = call(qs, NULL);
        assert_int_equal(r.status, i < KVL_GRAPH_QUEUE_MAX ? 0 : 503);
        resp_free(&r);
    }
    assert_int_equal(stat_of("busy"), 1);
    assert_int_equal(n_laters, KVL_GRAPH_QUEUE_MAX);
    /* freed with one draw under way: the queued ones get 503 now, that one its image */
    kvl_graph_free(g);
    for (size_t i = 1; i < n_laters; i++) {
        assert_true(laters[i].answered);
        assert_int_equal(laters[i].status, 503);
    }
    assert_false(laters[0].answered);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(laters[0].status, 200);
    laters_clear();
    assert_int_equal(uv_loop_close(&loop), 0);

    unlink(path);
    snprintf(dirs, sizeof(dirs), "%s/s1/r1", data);
    rmdir(dirs);
    snprintf(dirs, sizeof(dirs), "%s/s1", data);
    rmdir(dirs);
    rmdir(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_defaults),
        cmocka_unit_test(test_query_kinds),
        cmocka_unit_test(test_query_refused),
        cmocka_unit_test(test_query_times),
        cmocka_unit_test(test_query_key),
        cmocka_unit_test(test_cache),
        cmocka_unit_test(test_draw),
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_api),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
