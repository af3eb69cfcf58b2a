/*
 * test_map.c — unit tests for the map (collector/board/map.h) without the HTTP server: a
 * site tree with uplinks and hints, latest values fed by hand through the sink's interface,
 * and the map's JSON: nodes with the board's states, counts and hints; per edge the
 * utilisation from the uplink's rates and speed (computed here by hand), loss and RTT from
 * the link the rules choose (a configured probe and its preferred agent; the site probing
 * its parent by the parent's agent's name or the parent's name; the parent probing the
 * site), the uplink's agent found when the configuration names none, and the states:
 * unknown without data, ok, warning (utilisation, some loss), major, critical (interface
 * down, all probes lost), and unknown again once the values are stale.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "board.h"
#include "kvl.h"
#include "latest.h"
#include "map.h"

#define T0 1700000000000LL
#define IVL 60 /* seconds */

/* ---- definitions: ids by (device, scope, instance, metric) ---- */

enum {
    KOL_IN = 1,
    KOL_OUT,
    KOL_SPEED,
    KOL_OPER,
    KOL_LOSS, /* a-kol's link to "a-noc" (the parent's agent) */
    KOL_RTT,
    ANC_IN, /* anchal-sw, uplink without an agent named */
    ANC_OUT,
    ANC_SPEED,
    NOC_LOSS_PAT, /* a-noc's link to "pat" (the site's name): the reverse direction */
    NOC_RTT_PAT,
    NOC_LOSS_GW, /* a-noc's link to "kol-gw": the configured probe of site "kot" */
    KOT_LOSS_GW, /* a-kot's link to "kol-gw", the same probe from the site's agent */
    KOT_RTT_GW,
    NOC_LOSS_IDK, /* a-noc's link to "a-idk", an agent at site idk (a mesh target's name) */
    IDK_SPEED,    /* a-idk reports a device that is not idk's uplink */
    N_DEFS
};

static kvl_series_def_t defs[N_DEFS];

static void def(uint32_t id, const char *dev, kvl_scope_t scope, const char *inst,
                const char *metric, kvl_kind_t kind, bool real)
{
    defs[id] = (kvl_series_def_t){.id = id,
                                  .device = dev,
                                  .scope = scope,
                                  .instance = inst,
                                  .metric = metric,
                                  .kind = kind,
                                  .interval_s = IVL,
                                  .real = real};
}

static void defs_init(void)
{
    def(KOL_IN, "kol-rtr", KVL_SCOPE_INTERFACE, "Gi0/1", "in_octets", KVL_KIND_COUNTER, false);
    def(KOL_OUT, "kol-rtr", KVL_SCOPE_INTERFACE, "Gi0/1", "out_octets", KVL_KIND_COUNTER, false);
    def(KOL_SPEED, "kol-rtr", KVL_SCOPE_INTERFACE, "Gi0/1", "speed_bps", KVL_KIND_GAUGE, false);
    def(KOL_OPER, "kol-rtr", KVL_SCOPE_INTERFACE, "Gi0/1", "oper_status", KVL_KIND_GAUGE, false);
    def(KOL_LOSS, "a-kol", KVL_SCOPE_LINK, "a-noc", "lost_pct", KVL_KIND_GAUGE, true);
    def(KOL_RTT, "a-kol", KVL_SCOPE_LINK, "a-noc", "rtt_median_ms", KVL_KIND_GAUGE, true);
    def(ANC_IN, "anchal-sw", KVL_SCOPE_INTERFACE, "ge-0/0/1", "in_octets", KVL_KIND_COUNTER, false);
    def(ANC_OUT, "anchal-sw", KVL_SCOPE_INTERFACE, "ge-0/0/1", "out_octets", KVL_KIND_COUNTER,
        false);
    def(ANC_SPEED, "anchal-sw", KVL_SCOPE_INTERFACE, "ge-0/0/1", "speed_bps", KVL_KIND_GAUGE,
        false);
    def(NOC_LOSS_PAT, "a-noc", KVL_SCOPE_LINK, "pat", "lost_pct", KVL_KIND_GAUGE, true);
    def(NOC_RTT_PAT, "a-noc", KVL_SCOPE_LINK, "pat", "rtt_median_ms", KVL_KIND_GAUGE, true);
    def(NOC_LOSS_GW, "a-noc", KVL_SCOPE_LINK, "kol-gw", "lost_pct", KVL_KIND_GAUGE, true);
    def(KOT_LOSS_GW, "a-kot", KVL_SCOPE_LINK, "kol-gw", "lost_pct", KVL_KIND_GAUGE, true);
    def(KOT_RTT_GW, "a-kot", KVL_SCOPE_LINK, "kol-gw", "rtt_median_ms", KVL_KIND_GAUGE, true);
    def(NOC_LOSS_IDK, "a-noc", KVL_SCOPE_LINK, "a-idk", "lost_pct", KVL_KIND_GAUGE, true);
    def(IDK_SPEED, "other-rtr", KVL_SCOPE_INTERFACE, "Gi0/0", "speed_bps", KVL_KIND_GAUGE, false);
}

static const kvl_series_def_t *def_of(const void *table, uint32_t id)
{
    KVL_UNUSED(table);
    return id > 0 && id < N_DEFS ? &defs[id] : NULL;
}

static const kvl_family_t *fam_of(const void *table, const kvl_series_def_t *d)
{
    KVL_UNUSED(table);
    KVL_UNUSED(d);
    return NULL;
}

static const kvl_sink_defs_t table = {.table = NULL, .def = def_of, .family = fam_of};

static int64_t fake_now = T0;
static int64_t clock_fn(void)
{
    return fake_now;
}

static void put(kvl_latest_t *l, const char *agent, const char *site, uint32_t id, int64_t t_ms,
                double v)
{
    uint32_t ids[1] = {id};
    uint64_t vals[1] = {(uint64_t)v};
    double reals[1] = {v};
    kvl_group_t g = {.time_ms = t_ms, .ids = ids, .n_ids = 1};
    if (defs[id].real) {
        g.reals = reals;
        g.n_reals = 1;
    } else {
        g.values = vals;
        g.n_values = 1;
    }
    kvl_batch_t b = {.seq = 1, .groups = &g, .n_groups = 1};
    kvl_sink_batch_t sb = {.agent = agent, .site = site, .defs = &table, .batch = &b};
    assert_int_equal(kvl_latest_batch(l, &sb), 0);
}

static const char *tree_text =
    "- {name: noc, kind: noc, x: 50, y: 0}\n"
    "- {name: kol, parent: noc, kind: dhq, uplink: [a-kol, kol-rtr, Gi0/1]}\n"
    "- {name: anchal, parent: kol, kind: bhq, uplink: {device: anchal-sw, interface: "
    "ge-0/0/1}}\n"
    "- {name: pat, parent: noc, kind: dhq}\n"
    "- {name: kot, parent: kol, kind: bhq, uplink: {agent: a-kot, probe: kol-gw}}\n"
    "- {name: idk, parent: noc, kind: dhq, uplink: {device: idk-rtr, interface: Gi0/0}, y: 70}\n";

typedef struct fx {
    kvl_sites_cfg_t *sites;
    kvl_latest_t *latest;
    kvl_board_t *board;
} fx_t;

static void fx_new(fx_t *f)
{
    char err[512] = "";
    defs_init();
    fake_now = T0;
    f->sites = kvl_sites_cfg_parse_text("sites.yaml", tree_text, err, sizeof(err));
    if (f->sites == NULL) {
        fail_msg("sites: %s", err);
    }
    assert_int_equal(kvl_latest_new(0, clock_fn, &f->latest, err, sizeof(err)), 0);
    kvl_board_opts_t o = {.sites = f->sites, .latest = f->latest, .now_ms = clock_fn};
    assert_int_equal(kvl_board_new(&o, &f->board, err, sizeof(err)), 0);
}

static void fx_free(fx_t *f)
{
    kvl_board_free(f->board);
    kvl_latest_free(f->latest);
    kvl_sites_cfg_free(f->sites);
}

static json_t *find(json_t *arr, const char *key, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, key)), name) == 0) {
            return o;
        }
    }
    fail_msg("no %s '%s' in the map", key, name);
    return NULL;
}

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v)) {
        fail_msg("'%s' is not a number", key);
    }
    return json_number_value(v);
}

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (s == NULL) {
        fail_msg("'%s' is not a string", key);
    }
    return s;
}

static void assert_near(double got, double want)
{
    if (fabs(got - want) > 1e-9 * (fabs(want) + 1)) {
        fail_msg("got %.12g, want %.12g", got, want);
    }
}

/* kol's uplink: 100 Mbit/s, its state, and its link's loss and RTT at t. */
static void feed_kol(kvl_latest_t *l, int64_t t, double loss, double oper)
{
    put(l, "a-kol", "kol", KOL_SPEED, t, 100e6);
    put(l, "a-kol", "kol", KOL_OPER, t, oper);
    put(l, "a-kol", "kol", KOL_LOSS, t, loss);
    put(l, "a-kol", "kol", KOL_RTT, t, 12.5);
}

static void test_edges(void **state)
{
    KVL_UNUSED(state);
    fx_t f;
    fx_new(&f);
    /* nothing reported yet: every edge unknown, every number null */
    json_t *m = kvl_board_map_json(f.board);
    assert_non_null(m);
    json_t *edges = json_object_get(m, "edges"), *nodes = json_object_get(m, "nodes");
    assert_int_equal(json_array_size(nodes), 6);
    assert_int_equal(json_array_size(edges), 5); /* every site but the root */
    json_t *e = find(edges, "site", "kol");
    assert_string_equal(str(e, "parent"), "noc");
    assert_string_equal(str(e, "state"), "unknown");
    assert_true(json_is_null(json_object_get(e, "util_pct")));
    assert_true(json_is_null(json_object_get(e, "link")));
    assert_string_equal(str(json_object_get(e, "uplink"), "agent"), "a-kol");
    assert_true(json_is_null(json_object_get(find(edges, "site", "pat"), "uplink")));
    json_t *n = find(nodes, "name", "noc");
    assert_int_equal(num(n, "x"), 50);
    assert_int_equal(num(n, "y"), 0);
    assert_string_equal(str(n, "state"), "unknown");
    assert_true(json_is_null(json_object_get(find(nodes, "name", "kol"), "x")));
    assert_int_equal(num(find(nodes, "name", "idk"), "y"), 70);
    json_decref(m);

    /* two samples a minute apart: rates; the map's figures from them by hand */
    const double in0 = 1e9, in1 = 1e9 + 45e6 * 6; /* 4.5 MB/s: 36 Mbit/s of 100: 36 % */
    const double out0 = 5e8, out1 = 5e8 + 75e5 * 6;
    put(f.latest, "a-kol", "kol", KOL_IN, T0, in0);
    put(f.latest, "a-kol", "kol", KOL_OUT, T0, out0);
    put(f.latest, "a-kol", "kol", KOL_IN, T0 + IVL * 1000, in1);
    put(f.latest, "a-kol", "kol", KOL_OUT, T0 + IVL * 1000, out1);
    feed_kol(f.latest, T0 + IVL * 1000, 0, 1);
    put(f.latest, "a-noc", "noc", NOC_LOSS_GW, T0 + IVL * 1000, 50); /* another target */
    fake_now = T0 + IVL * 1000 + 5000;
    m = kvl_board_map_json(f.board);
    edges = json_object_get(m, "edges");
    e = find(edges, "site", "kol");
    double in_bps = (in1 - in0) / IVL * 8, out_bps = (out1 - out0) / IVL * 8;
    assert_near(num(e, "in_bps"), in_bps);
    assert_near(num(e, "out_bps"), out_bps);
    assert_near(num(e, "speed_bps"), 100e6);
    assert_near(num(e, "util_in_pct"), 100.0 * in_bps / 100e6);
    assert_near(num(e, "util_out_pct"), 100.0 * out_bps / 100e6);
    assert_near(num(e, "util_pct"), 36.0);
    assert_string_equal(str(e, "oper_status"), "up");
    /* a-kol at kol probes a-noc, an agent at the parent */
    assert_string_equal(str(json_object_get(e, "link"), "agent"), "a-kol");
    assert_string_equal(str(json_object_get(e, "link"), "target"), "a-noc");
    assert_near(num(e, "loss_pct"), 0);
    assert_near(num(e, "rtt_ms"), 12.5);
    assert_int_equal(num(e, "time_ms"), T0 + IVL * 1000);
    assert_string_equal(str(e, "state"), "ok");
    /* nodes: the board's states (agents at kol and noc report) */
    nodes = json_object_get(m, "nodes");
    assert_string_equal(str(find(nodes, "name", "kol"), "state"), "ok");
    assert_string_equal(str(find(nodes, "name", "noc"), "state"), "ok");
    assert_string_equal(str(find(nodes, "name", "pat"), "state"), "unknown");
    json_decref(m);

    /* loss: some is a warning, 10 % major, all critical; the interface down critical */
    static const struct {
        double loss, oper;
        const char *state;
    } cases[] = {{5, 1, "warning"},
                 {10, 1, "major"},
                 {100, 1, "critical"},
                 {0, 2, "critical"},
                 {0, 7, "critical"}};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(cases); i++) {
        int64_t t = T0 + (int64_t)(i + 2) * IVL * 1000;
        feed_kol(f.latest, t, cases[i].loss, cases[i].oper);
        fake_now = t + 1000;
        m = kvl_board_map_json(f.board);
        e = find(json_object_get(m, "edges"), "site", "kol");
        assert_string_equal(str(e, "state"), cases[i].state);
        json_decref(m);
    }
    /* utilisation at 90 % or more: a warning */
    int64_t t = T0 + 10 * IVL * 1000;
    feed_kol(f.latest, t, 0, 1);
    put(f.latest, "a-kol", "kol", KOL_IN, t - IVL * 1000, 0);
    put(f.latest, "a-kol", "kol", KOL_IN, t, 95e6 / 8 * IVL);
    fake_now = t;
    m = kvl_board_map_json(f.board);
    e = find(json_object_get(m, "edges"), "site", "kol");
    assert_near(num(e, "util_pct"), 95.0);
    assert_true(json_is_null(json_object_get(e, "util_out_pct")));
    assert_string_equal(str(e, "state"), "warning");
    json_decref(m);
    /* three intervals later nothing is fresh: unknown again */
    fake_now = t + 3 * IVL * 1000 + 1;
    m = kvl_board_map_json(f.board);
    e = find(json_object_get(m, "edges"), "site", "kol");
    assert_string_equal(str(e, "state"), "unknown");
    assert_true(json_is_null(json_object_get(e, "loss_pct")));
    assert_true(json_is_null(json_object_get(e, "speed_bps")));
    json_decref(m);
    fx_free(&f);
}

static void test_choices(void **state)
{
    KVL_UNUSED(state);
    fx_t f;
    fx_new(&f);
    int64_t t1 = T0 + IVL * 1000;
    /* anchal names no agent: whichever reports the device (a-anchal, the first by name) */
    put(f.latest, "a-zz", "anchal", ANC_SPEED, T0, 1e9);
    put(f.latest, "a-zz", "anchal", ANC_IN, T0, 0);
    put(f.latest, "a-anchal", "anchal", ANC_SPEED, T0, 1e9);
    put(f.latest, "a-anchal", "anchal", ANC_IN, T0, 0);
    put(f.latest, "a-anchal", "anchal", ANC_IN, t1, 1e9 / 8 * IVL / 4); /* 25 % of 1 Gbit/s */
    put(f.latest, "a-anchal", "anchal", ANC_OUT, T0, 0);
    put(f.latest, "a-anchal", "anchal", ANC_OUT, t1, 0);
    /* pat has no agent probing the NOC, but a-noc probes "pat" (the site's name) */
    put(f.latest, "a-noc", "noc", NOC_LOSS_PAT, t1, 0);
    put(f.latest, "a-noc", "noc", NOC_RTT_PAT, t1, 3.25);
    /* kot's configured probe kol-gw: a-noc measures it too, but a-kot is the uplink's agent */
    put(f.latest, "a-noc", "noc", NOC_LOSS_GW, t1, 50);
    put(f.latest, "a-kot", "kot", KOT_LOSS_GW, t1, 0);
    put(f.latest, "a-kot", "kot", KOT_RTT_GW, t1, 7.0);
    fake_now = t1;
    json_t *m = kvl_board_map_json(f.board);
    json_t *edges = json_object_get(m, "edges");
    json_t *e = find(edges, "site", "anchal");
    assert_string_equal(str(json_object_get(e, "uplink"), "agent"), "a-anchal");
    assert_near(num(e, "util_in_pct"), 25.0);
    assert_near(num(e, "util_out_pct"), 0.0);
    assert_near(num(e, "util_pct"), 25.0);
    assert_true(json_is_null(json_object_get(e, "link")));
    assert_string_equal(str(e, "state"), "ok");
    e = find(edges, "site", "pat");
    assert_string_equal(str(json_object_get(e, "link"), "agent"), "a-noc");
    assert_string_equal(str(json_object_get(e, "link"), "target"), "pat");
    assert_near(num(e, "rtt_ms"), 3.25);
    assert_string_equal(str(e, "state"), "ok");
    e = find(edges, "site", "kot");
    assert_true(json_is_null(json_object_get(e, "uplink")));
    assert_string_equal(str(json_object_get(e, "link"), "agent"), "a-kot");
    assert_near(num(e, "loss_pct"), 0);
    assert_near(num(e, "rtt_ms"), 7.0);
    /* idk's uplink device reports nothing, and no link measures it */
    e = find(edges, "site", "idk");
    assert_true(json_is_null(json_object_get(json_object_get(e, "uplink"), "agent")));
    assert_true(json_is_null(json_object_get(e, "link")));
    assert_string_equal(str(e, "state"), "unknown");
    json_decref(m);
    /* a-idk reports from idk, and a-noc probes it (named by its id, as the mesh names it):
     * the parent probing the site; 25 % loss is major */
    put(f.latest, "a-idk", "idk", IDK_SPEED, t1, 1e9);
    put(f.latest, "a-noc", "noc", NOC_LOSS_IDK, t1, 25);
    m = kvl_board_map_json(f.board);
    e = find(json_object_get(m, "edges"), "site", "idk");
    assert_string_equal(str(json_object_get(e, "link"), "agent"), "a-noc");
    assert_string_equal(str(json_object_get(e, "link"), "target"), "a-idk");
    assert_near(num(e, "loss_pct"), 25);
    assert_true(json_is_null(json_object_get(e, "rtt_ms")));
    assert_string_equal(str(e, "state"), "major");
    json_decref(m);
    /* a-kot's value goes stale while a-noc's of the same probe is fresh: the choice stays
     * with a-kot (its value null), so the edge does not flip between two measurements */
    int64_t t5 = T0 + 5 * IVL * 1000;
    put(f.latest, "a-noc", "noc", NOC_LOSS_GW, t5, 50);
    fake_now = t5;
    m = kvl_board_map_json(f.board);
    e = find(json_object_get(m, "edges"), "site", "kot");
    assert_string_equal(str(json_object_get(e, "link"), "agent"), "a-kot");
    assert_true(json_is_null(json_object_get(e, "loss_pct")));
    assert_string_equal(str(e, "state"), "unknown");
    json_decref(m);
    fx_free(&f);
}

/* Without a site tree: the sites agents report, unplaced, and no edges. */
static void test_no_tree(void **state)
{
    KVL_UNUSED(state);
    char err[256];
    kvl_latest_t *l;
    kvl_board_t *b;
    defs_init();
    assert_int_equal(kvl_latest_new(0, clock_fn, &l, err, sizeof(err)), 0);
    kvl_board_opts_t o = {.latest = l, .now_ms = clock_fn};
    assert_int_equal(kvl_board_new(&o, &b, err, sizeof(err)), 0);
    put(l, "a-kol", "kol", KOL_SPEED, T0, 1e8);
    json_t *m = kvl_board_map_json(b);
    assert_non_null(m);
    assert_int_equal(json_array_size(json_object_get(m, "edges")), 0);
    json_t *nodes = json_object_get(m, "nodes");
    assert_int_equal(json_array_size(nodes), 2); /* "unplaced" and kol */
    assert_string_equal(str(find(nodes, "name", "kol"), "parent"), KVL_SITES_UNPLACED);
    assert_true(json_is_null(json_object_get(find(nodes, "name", "kol"), "x")));
    json_decref(m);
    kvl_board_free(b);
    kvl_latest_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_choices),
        cmocka_unit_test(test_no_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
