/*
 * test_rwrite.c — unit tests for remote-write's pure parts (collector/rwrite/rw_proto.h,
 * rw_queue.h) and its configuration (rwrite_config.h through collector_config.c).
 *
 * The encoder is checked by decoding its own output with a small protobuf reader written
 * here from the remote-write 1.0 schema (not from the encoder), after a snappy round trip:
 * labels sorted with __name__ first, values and timestamps (negative and large ones, NaN
 * bits), samples grouped per series in queue order. The name mapping: counters with _total,
 * gauges as is, groups by their name, agent and link series filed under the agent, the
 * instance label per scope, sanitising, empty values left out, names taken not overridden,
 * long values cut at a UTF-8 boundary. The queue: its bound drops the oldest and counts
 * them, references are given back (no series left), a request takes at most max samples.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cfg_text.h"
#include "collector_config.h"
#include "collector_diff.h"
#include "kvl.h"
#include "rw_proto.h"
#include "rw_queue.h"

KVL_CFG_TEXT_HELPERS(kvl_collector_cfg_t, kvl_collector_cfg_parse, kvl_collector_cfg_free, "c.yaml")

/* ---- a protobuf reader for WriteRequest --------------------------------------------------- */

typedef struct dec_sample {
    double v;
    int64_t t;
} dec_sample_t;

typedef struct dec_series {
    size_t n_labels;
    char name[32][128], value[32][1100];
    size_t n_samples;
    dec_sample_t samples[64];
} dec_series_t;

static uint64_t rd_varint(const uint8_t **p, const uint8_t *end)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        assert_true(*p < end);
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            return v;
        }
    }
    fail_msg("varint too long");
    return 0;
}

static void rd_string(const uint8_t *p, const uint8_t *end, char *out, size_t cap)
{
    size_t n = (size_t)(end - p);
    assert_true(n < cap);
    memcpy(out, p, n);
    out[n] = '\0';
}

static void rd_label(const uint8_t *p, const uint8_t *end, dec_series_t *s)
{
    assert_true(s->n_labels < 32);
    while (p < end) {
        uint64_t key = rd_varint(&p, end);
        assert_int_equal(key & 7, 2);
        uint64_t len = rd_varint(&p, end);
        assert_true(len <= (uint64_t)(end - p));
        if (key >> 3 == 1) {
            rd_string(p, p + len, s->name[s->n_labels], sizeof(s->name[0]));
        } else {
            assert_int_equal(key >> 3, 2);
            rd_string(p, p + len, s->value[s->n_labels], sizeof(s->value[0]));
        }
        p += len;
    }
    s->n_labels++;
}

static void rd_sample(const uint8_t *p, const uint8_t *end, dec_series_t *s)
{
    assert_true(s->n_samples < 64);
    dec_sample_t *d = &s->samples[s->n_samples++];
    while (p < end) {
        uint64_t key = rd_varint(&p, end);
        if (key == ((1 << 3) | 1)) { /* value, fixed64 */
            assert_true(end - p >= 8);
            uint64_t bits = 0;
            for (int i = 7; i >= 0; i--) {
                bits = bits << 8 | p[i];
            }
            memcpy(&d->v, &bits, sizeof(d->v));
            p += 8;
        } else {
            assert_int_equal(key, (2 << 3) | 0); /* timestamp, varint */
            d->t = (int64_t)rd_varint(&p, end);
        }
    }
}

static size_t decode_request(const uint8_t *p, size_t n, dec_series_t *out, size_t cap)
{
    const uint8_t *end = p + n;
    size_t k = 0;
    while (p < end) {
        assert_int_equal(rd_varint(&p, end), (1 << 3) | 2);
        uint64_t len = rd_varint(&p, end);
        assert_true(len <= (uint64_t)(end - p));
        assert_true(k < cap);
        dec_series_t *s = &out[k++];
        memset(s, 0, sizeof(*s));
        const uint8_t *q = p, *qe = p + len;
        while (q < qe) {
            uint64_t key = rd_varint(&q, qe);
            uint64_t l = rd_varint(&q, qe);
            assert_true(l <= (uint64_t)(qe - q));
            if (key == ((1 << 3) | 2)) {
                rd_label(q, q + l, s);
            } else {
                assert_int_equal(key, (2 << 3) | 2);
                rd_sample(q, q + l, s);
            }
            q += l;
        }
        p += len;
    }
    return k;
}

static const char *dec_label(const dec_series_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_labels; i++) {
        if (strcmp(s->name[i], name) == 0) {
            return s->value[i];
        }
    }
    return NULL;
}

/* ---- the mapping ------------------------------------------------------------------------- */

static const kvl_label_t own[] = {{"ifAlias", "uplink to DHQ"},
                                  {"ifDescr", ""},
                                  {"sysName", "rtr1"},
                                  {"site", "not-this"},
                                  {"bad-name", "x"}};

static const char *own_label(void *ctx, const char *key)
{
    (void)ctx;
    for (size_t i = 0; i < KVL_ARRAY_SIZE(own); i++) {
        if (strcmp(own[i].key, key) == 0) {
            return own[i].value;
        }
    }
    return NULL;
}

static char *carried[] = {"ifAlias", "ifDescr", "sysName", "site", "bad-name", "absent"};
static const kvl_label_t external[] = {{"region", "kerala"}, {"device", "not-this-either"}};
static const kvl_rw_map_t map = {.external = external,
                                 .n_external = KVL_ARRAY_SIZE(external),
                                 .series_labels = carried,
                                 .n_series_labels = KVL_ARRAY_SIZE(carried)};

static const char *label_value(const kvl_rw_labels_t *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->name[i], name) == 0) {
            return l->value[i];
        }
    }
    return NULL;
}

static void test_names(void **state)
{
    (void)state;
    char n[256];
    kvl_series_def_t d = {.device = "rtr1",
                          .scope = KVL_SCOPE_INTERFACE,
                          .instance = "ge-0/0/1",
                          .metric = "in_octets",
                          .kind = KVL_KIND_COUNTER};
    assert_int_equal(kvl_rw_name(&d, NULL, n, sizeof(n)),
                     strlen("kaaval_interface_in_octets_total"));
    assert_string_equal(n, "kaaval_interface_in_octets_total");
    d.metric = "speed_bps";
    d.kind = KVL_KIND_GAUGE;
    kvl_rw_name(&d, NULL, n, sizeof(n));
    assert_string_equal(n, "kaaval_interface_speed_bps");
    kvl_family_t fam = {.name = "cpu-load.5min"};
    d.scope = KVL_SCOPE_GROUP;
    d.metric = "load";
    kvl_rw_name(&d, &fam, n, sizeof(n));
    assert_string_equal(n, "kaaval_cpu_load_5min_load");
    d.scope = KVL_SCOPE_LINK;
    d.metric = "rtt_min_ms";
    kvl_rw_name(&d, NULL, n, sizeof(n));
    assert_string_equal(n, "kaaval_link_rtt_min_ms");
    d.scope = KVL_SCOPE_NEIGHBOUR;
    assert_int_equal(kvl_rw_name(&d, NULL, n, sizeof(n)), 0);
    d.scope = KVL_SCOPE_DEVICE;
    assert_int_equal(kvl_rw_name(&d, NULL, n, 10), 0); /* does not fit */

    assert_int_equal(kvl_rw_sanitize("9lives", n, sizeof(n)), 7);
    assert_string_equal(n, "_9lives");
    kvl_rw_sanitize("a.b-c/d é", n, sizeof(n));
    assert_string_equal(n, "a_b_c_d___");
    assert_int_equal(kvl_rw_sanitize("", n, sizeof(n)), 0);
}

static void test_labels(void **state)
{
    (void)state;
    kvl_rw_labels_t l;
    kvl_series_def_t d = {.device = "rtr1",
                          .scope = KVL_SCOPE_INTERFACE,
                          .instance = "ge-0/0/1",
                          .metric = "in_octets",
                          .kind = KVL_KIND_COUNTER};
    assert_int_equal(kvl_rw_labels_of(&map, "tvm", "agent-1", &d, own_label, NULL, &l), 0);
    assert_string_equal(l.name[0], "__name__");
    assert_null(l.value[0]);
    for (size_t i = 2; i < l.n; i++) {
        assert_true(strcmp(l.name[i - 1], l.name[i]) < 0); /* sorted, no duplicates */
    }
    assert_string_equal(label_value(&l, "site"), "tvm");
    assert_string_equal(label_value(&l, "agent"), "agent-1");
    assert_string_equal(label_value(&l, "device"), "rtr1");
    assert_string_equal(label_value(&l, "interface"), "ge-0/0/1");
    assert_string_equal(label_value(&l, "ifAlias"), "uplink to DHQ");
    assert_string_equal(label_value(&l, "sysName"), "rtr1");
    assert_string_equal(label_value(&l, "bad_name"), "x");
    assert_string_equal(label_value(&l, "region"), "kerala");
    assert_null(label_value(&l, "ifDescr")); /* empty: left out */
    assert_null(label_value(&l, "absent"));
    assert_int_equal(l.n, 9); /* own site and external device: names taken */

    /* the agent's link series: device is the agent; target names the instance */
    d = (kvl_series_def_t){.device = "whatever",
                           .scope = KVL_SCOPE_LINK,
                           .instance = "dc-core",
                           .metric = "rtt_min_ms",
                           .kind = KVL_KIND_GAUGE};
    assert_int_equal(kvl_rw_labels_of(&map, "tvm", "agent-1", &d, NULL, NULL, &l), 0);
    assert_string_equal(label_value(&l, "device"), "agent-1");
    assert_string_equal(label_value(&l, "target"), "dc-core");
    assert_null(label_value(&l, "ifAlias"));
    /* a device: no instance label */
    d = (kvl_series_def_t){.device = "rtr1",
                           .scope = KVL_SCOPE_DEVICE,
                           .instance = "",
                           .metric = "reachable",
                           .kind = KVL_KIND_GAUGE};
    assert_int_equal(kvl_rw_labels_of(&map, "tvm", "agent-1", &d, NULL, NULL, &l), 0);
    assert_int_equal(l.n, 5); /* __name__, agent, device, region, site */
    d.scope = KVL_SCOPE_GROUP;
    d.instance = "3";
    assert_int_equal(kvl_rw_labels_of(&map, "tvm", "agent-1", &d, NULL, NULL, &l), 0);
    assert_string_equal(label_value(&l, "instance"), "3");
}

static char long_value[3000];

static const char *long_label(void *ctx, const char *key)
{
    (void)ctx;
    return strcmp(key, "ifAlias") == 0 ? long_value : NULL;
}

static void test_long_value(void **state)
{
    (void)state;
    /* "é" is two bytes: at an odd cut the last one would be half of it */
    size_t i = 0;
    long_value[i++] = 'x';
    while (i + 2 < sizeof(long_value)) {
        long_value[i++] = (char)0xC3;
        long_value[i++] = (char)0xA9;
    }
    long_value[i] = '\0';
    kvl_rw_labels_t l;
    kvl_series_def_t d = {.device = "r",
                          .scope = KVL_SCOPE_INTERFACE,
                          .instance = "i",
                          .metric = "m",
                          .kind = KVL_KIND_GAUGE};
    assert_int_equal(kvl_rw_labels_of(&map, "s", "a", &d, long_label, NULL, &l), 0);
    const char *v = label_value(&l, "ifAlias");
    assert_non_null(v);
    size_t n = strlen(v);
    assert_true(n <= KVL_RW_VALUE_MAX && n >= KVL_RW_VALUE_MAX - 1);
    assert_int_equal(n % 2, 1); /* 'x' and whole two-byte characters */
    assert_int_equal(memcmp(v, long_value, n), 0);
}

/* ---- encoding and the queue -------------------------------------------------------------- */

static kvl_rw_series_t *series_of(kvl_rw_intern_t *t, const char *name, const char *iface)
{
    kvl_rw_labels_t l;
    kvl_series_def_t d = {.device = "rtr1",
                          .scope = KVL_SCOPE_INTERFACE,
                          .instance = iface,
                          .metric = "x",
                          .kind = KVL_KIND_GAUGE};
    assert_int_equal(kvl_rw_labels_of(&map, "tvm", "agent-1", &d, own_label, NULL, &l), 0);
    l.value[0] = name;
    kvl_buf_t b = {0};
    assert_int_equal(kvl_rw_encode_labels(&l, &b), 0);
    kvl_rw_series_t *s = kvl_rw_intern(t, b.data, b.len);
    kvl_buf_free(&b);
    assert_non_null(s);
    return s;
}

static void test_request_round_trip(void **state)
{
    (void)state;
    kvl_rw_intern_t *t = kvl_rw_intern_new();
    kvl_rw_queue_t q;
    assert_int_equal(kvl_rw_queue_init(&q, 100), 0);
    /* two series interleaved, as a batch gives them */
    const int64_t times[] = {1700000000123, -5, INT64_C(1) << 50, 0};
    const double values[] = {1.5, -0.0, 1e300, NAN};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(
            kvl_rw_queue_push(&q, t, series_of(t, "kaaval_a", "ge-0/0/1"), times[i], values[i]), 0);
        assert_int_equal(
            kvl_rw_queue_push(&q, t, series_of(t, "kaaval_b", "ge-0/0/2"), times[i] + 1, (double)i),
            0);
    }
    assert_int_equal(kvl_rw_intern_count(t), 2); /* interned: the same labels, one series */
    kvl_buf_t raw = {0}, z = {0}, back = {0};
    size_t n = 0, ns = 0;
    int64_t newest = 0;
    assert_int_equal(kvl_rw_queue_take(&q, t, 100, &raw, &n, &ns, &newest), 0);
    assert_int_equal(n, 8);
    assert_int_equal(ns, 2);
    assert_true(newest == (INT64_C(1) << 50) + 1);
    assert_int_equal(q.len, 0);
    assert_int_equal(kvl_rw_intern_count(t), 0); /* every reference given back */

    assert_int_equal(kvl_rw_compress(raw.data, raw.len, &z), 0);
    assert_int_equal(kvl_rw_uncompress(z.data, z.len, &back), 0);
    assert_int_equal(back.len, raw.len);
    assert_memory_equal(back.data, raw.data, raw.len);
    assert_int_equal(kvl_rw_uncompress((const uint8_t *)"\xff\xff\xff", 3, &back), KVL_EDECODE);

    static dec_series_t d[4];
    assert_int_equal(decode_request(raw.data, raw.len, d, 4), 2);
    assert_string_equal(d[0].name[0], "__name__");
    assert_string_equal(d[0].value[0], "kaaval_a");
    assert_string_equal(d[1].value[0], "kaaval_b");
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 2; i < d[k].n_labels; i++) {
            assert_true(strcmp(d[k].name[i - 1], d[k].name[i]) < 0);
        }
    }
    assert_string_equal(dec_label(&d[0], "interface"), "ge-0/0/1");
    assert_string_equal(dec_label(&d[1], "interface"), "ge-0/0/2");
    assert_string_equal(dec_label(&d[0], "ifAlias"), "uplink to DHQ");
    assert_int_equal(d[0].n_samples, 4);
    assert_int_equal(d[1].n_samples, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_true(d[0].samples[i].t == times[i]);
        assert_true(d[1].samples[i].t == times[i] + 1);
        assert_true(d[1].samples[i].v == (double)i);
    }
    assert_true(d[0].samples[0].v == 1.5);
    assert_true(d[0].samples[1].v == 0.0 && signbit(d[0].samples[1].v));
    assert_true(d[0].samples[2].v == 1e300);
    assert_true(isnan(d[0].samples[3].v));

    assert_int_equal(kvl_rw_queue_take(&q, t, 100, &raw, &n, &ns, &newest), 0);
    assert_int_equal(n, 0);
    assert_int_equal(raw.len, 0);
    kvl_buf_free(&raw);
    kvl_buf_free(&z);
    kvl_buf_free(&back);
    kvl_rw_queue_free(&q, t);
    kvl_rw_intern_free(t);
}

static void test_queue_bound(void **state)
{
    (void)state;
    kvl_rw_intern_t *t = kvl_rw_intern_new();
    kvl_rw_queue_t q;
    assert_int_equal(kvl_rw_queue_init(&q, 10), 0);
    size_t dropped = 0;
    for (int i = 0; i < 25; i++) {
        char iface[16];
        snprintf(iface, sizeof(iface), "if%d", i % 3);
        dropped += (size_t)kvl_rw_queue_push(&q, t, series_of(t, "kaaval_x", iface), i, i);
    }
    assert_int_equal(dropped, 15);
    assert_int_equal(q.dropped, 15);
    assert_int_equal(q.len, 10);
    assert_int_equal(kvl_rw_intern_count(t), 3);
    /* the newest ten stay: a request of 4 takes the oldest of those first */
    kvl_buf_t raw = {0};
    size_t n = 0, ns = 0;
    int64_t newest = 0;
    assert_int_equal(kvl_rw_queue_take(&q, t, 4, &raw, &n, &ns, &newest), 0);
    assert_int_equal(n, 4);
    assert_int_equal(ns, 3);
    assert_true(newest == 18);
    static dec_series_t d[4];
    assert_int_equal(decode_request(raw.data, raw.len, d, 4), 3);
    size_t total = 0;
    for (size_t k = 0; k < 3; k++) {
        total += d[k].n_samples;
        for (size_t i = 0; i < d[k].n_samples; i++) {
            assert_true(d[k].samples[i].t >= 15 && d[k].samples[i].t <= 18);
            assert_true(i == 0 || d[k].samples[i].t > d[k].samples[i - 1].t);
        }
    }
    assert_int_equal(total, 4);
    assert_int_equal(q.len, 6);
    kvl_buf_free(&raw);
    kvl_rw_queue_free(&q, t); /* gives the six left back */
    assert_int_equal(kvl_rw_intern_count(t), 0);
    kvl_rw_intern_free(t);
}

/* ---- configuration ----------------------------------------------------------------------- */

#define HEAD "listen: 127.0.0.1:5140\ndata_dir: /tmp/x\n"

static void test_config(void **state)
{
    (void)state;
    kvl_collector_cfg_t *c =
        parse_ok(HEAD "remote_write: {url: http://127.0.0.1:9090/api/v1/write}\n");
    assert_non_null(c->remote_write);
    assert_int_equal(c->remote_write->n, 1);
    const kvl_rw_endpoint_cfg_t *e = &c->remote_write->at[0];
    assert_string_equal(e->name, "127.0.0.1:9090");
    assert_int_equal(e->max_samples_per_send, 2000);
    assert_int_equal(e->shards, 2);
    assert_true(e->n_series_labels > 0);
    kvl_collector_cfg_t *c2 = parse_ok(
        HEAD "remote_write:\n"
             "  - {name: a, url: http://h:1/w, max_queue: 500, max_samples_per_send: 100,\n"
             "     external_labels: {region: k}}\n"
             "  - {name: b, url: https://h:2/w, series_labels: none, shards: 4}\n");
    assert_int_equal(c2->remote_write->n, 2);
    assert_int_equal(c2->remote_write->at[0].max_queue, 500);
    assert_string_equal(c2->remote_write->at[0].external[0].key, "region");
    assert_int_equal(c2->remote_write->at[1].n_series_labels, 0);
    assert_int_equal(c2->remote_write->at[1].shards, 4);
    char keys[512];
    assert_true(kvl_collector_cfg_restart_keys(c, c2, keys, sizeof(keys)) > 0);
    assert_non_null(strstr(keys, "remote_write"));
    kvl_collector_cfg_t *c3 =
        parse_ok(HEAD "remote_write: {url: http://127.0.0.1:9090/api/v1/write}\n");
    assert_int_equal(kvl_collector_cfg_restart_keys(c, c3, keys, sizeof(keys)), 0);
    kvl_collector_cfg_free(c);
    kvl_collector_cfg_free(c2);
    kvl_collector_cfg_free(c3);

    expect_error(HEAD "remote_write: {timeout: 2s}\n", "c.yaml:3:15: ", "url");
    expect_error(HEAD "remote_write: {url: ftp://x/}\n", "c.yaml:3:21: ", "http(s)://");
    expect_error(HEAD "remote_write: {url: http://x/, external_labels: {9a: b}}\n",
                 "c.yaml:3:50: ", "label name");
    expect_error(HEAD "remote_write: {url: http://x/, external_labels: {__a: b}}\n",
                 "c.yaml:3:50: ", "label name");
    expect_error(HEAD "remote_write: [{url: http://x/a}, {url: http://x/b}]\n",
                 "c.yaml:3:35: ", "two remote-write endpoints named 'x'");
    expect_error(HEAD "remote_write: {url: http://x/, username: u}\n",
                 "c.yaml:3:15: ", "username and password_file");
    expect_error(HEAD
                 "remote_write: {url: http://x/, password_file: /nonexistent/p, username: u}\n",
                 "c.yaml:3:15: ", "/nonexistent/p");
    expect_error(HEAD "remote_write: {url: http://x/, max_queue: 100, max_samples_per_send: 200}\n",
                 "c.yaml:3:15: ", "max_queue");
    expect_error(HEAD "remote_write: {url: http://x/, shards: 17}\n",
                 "c.yaml:3:40: ", "from 1 to 16");
    expect_error(HEAD "remote_write: 5\n", "c.yaml:3:15: ", "remote-write endpoint");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),       cmocka_unit_test(test_labels),
        cmocka_unit_test(test_long_value),  cmocka_unit_test(test_request_round_trip),
        cmocka_unit_test(test_queue_bound), cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
