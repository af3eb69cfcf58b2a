/*
 * test_latest.c — unit tests for the latest values (collector/board/latest.h): batches
 * built by hand through the sink's interface; gauges and reals held as given, a counter's
 * rate over its last interval and never across a reset (the value going back), an unknown
 * sample (the agent's verdict on a wrap it could not trust), or a gap longer than two
 * intervals; older samples ignored; the agent's own and link series filed under its id;
 * agents lost and back; the series bound; memory per series.
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

#include "kvl.h"
#include "latest.h"

/* ---- a tiny definitions table and batch builder ---- */

static kvl_series_def_t defs[] = {
    {.id = 1,
     .device = "r1",
     .scope = KVL_SCOPE_INTERFACE,
     .instance = "Gi0/1",
     .metric = "in_octets",
     .kind = KVL_KIND_COUNTER,
     .interval_s = 60},
    {.id = 2,
     .device = "r1",
     .scope = KVL_SCOPE_DEVICE,
     .instance = "",
     .metric = "reachable",
     .kind = KVL_KIND_GAUGE,
     .interval_s = 60},
    {.id = 3,
     .device = "ignored",
     .scope = KVL_SCOPE_LINK,
     .instance = "10.0.0.9",
     .metric = "rtt_median_ms",
     .kind = KVL_KIND_GAUGE,
     .interval_s = 60,
     .real = true},
    {.id = 4,
     .device = "ignored",
     .scope = KVL_SCOPE_AGENT,
     .instance = "",
     .metric = "snmp_requests",
     .kind = KVL_KIND_COUNTER,
     .interval_s = 60},
};

static const kvl_series_def_t *def_of(const void *table, uint32_t id)
{
    KVL_UNUSED(table);
    for (size_t i = 0; i < KVL_ARRAY_SIZE(defs); i++) {
        if (defs[i].id == id) {
            return &defs[i];
        }
    }
    return NULL;
}

static const kvl_family_t *fam_of(const void *table, const kvl_series_def_t *d)
{
    KVL_UNUSED(table);
    KVL_UNUSED(d);
    return NULL;
}

static const kvl_sink_defs_t table = {.table = NULL, .def = def_of, .family = fam_of};

static int64_t fake_now = 1700000000000;
static int64_t clock_fn(void)
{
    return fake_now;
}

/* One group at t_ms with one sample of series id: an integer value, or unknown. */
static void put(kvl_latest_t *l, const char *agent, uint32_t id, int64_t t_ms, uint64_t v,
                bool unknown)
{
    uint32_t ids[1] = {id};
    uint64_t vals[1] = {v};
    uint32_t unk[1] = {0};
    kvl_group_t g = {.time_ms = t_ms, .ids = ids, .n_ids = 1};
    if (unknown) {
        g.unknown = unk;
        g.n_unknown = 1;
    } else {
        g.values = vals;
        g.n_values = 1;
    }
    kvl_batch_t b = {.seq = 1, .groups = &g, .n_groups = 1};
    kvl_sink_batch_t sb = {.agent = agent, .site = "dhq-kollam", .defs = &table, .batch = &b};
    assert_int_equal(kvl_latest_batch(l, &sb), 0);
}

static void put_real(kvl_latest_t *l, const char *agent, uint32_t id, int64_t t_ms, double v)
{
    uint32_t ids[1] = {id};
    double reals[1] = {v};
    kvl_group_t g = {.time_ms = t_ms, .ids = ids, .n_ids = 1, .reals = reals, .n_reals = 1};
    kvl_batch_t b = {.seq = 1, .groups = &g, .n_groups = 1};
    kvl_sink_batch_t sb = {.agent = agent, .site = "dhq-kollam", .defs = &table, .batch = &b};
    assert_int_equal(kvl_latest_batch(l, &sb), 0);
}

static kvl_latest_value_t get_if(kvl_latest_t *l, const char *agent)
{
    kvl_latest_value_t v;
    assert_int_equal(kvl_latest_get(l, agent, "r1", KVL_SCOPE_INTERFACE, "Gi0/1", "in_octets", &v),
                     0);
    return v;
}

static kvl_latest_t *make(size_t max)
{
    kvl_latest_t *l;
    char err[200];
    assert_int_equal(kvl_latest_new(max, clock_fn, &l, err, sizeof(err)), 0);
    return l;
}

#define T0 1700000000000LL
#define MIN 60000LL

static void test_rate(void **state)
{
    KVL_UNUSED(state);
    kvl_latest_t *l = make(0);
    put(l, "a1", 1, T0, 1000, false);
    kvl_latest_value_t v = get_if(l, "a1");
    assert_int_equal(v.value, 1000);
    assert_int_equal(v.time_ms, T0);
    assert_false(v.has_rate); /* one sample: no rate yet */
    assert_string_equal(v.site, "dhq-kollam");
    assert_int_equal(v.kind, KVL_KIND_COUNTER);
    put(l, "a1", 1, T0 + MIN, 1600, false);
    v = get_if(l, "a1");
    assert_true(v.has_rate);
    assert_true(v.rate > 9.999 && v.rate < 10.001); /* 600 in 60 s */
    /* an older or equal sample is ignored (the archive refuses it as stale) */
    put(l, "a1", 1, T0 + MIN, 1, false);
    put(l, "a1", 1, T0, 5, false);
    v = get_if(l, "a1");
    assert_int_equal(v.value, 1600);
    assert_true(v.has_rate);
    /* a reset: the value goes back; no rate across it */
    put(l, "a1", 1, T0 + 2 * MIN, 100, false);
    v = get_if(l, "a1");
    assert_int_equal(v.value, 100);
    assert_false(v.has_rate);
    /* and the next interval has one again */
    put(l, "a1", 1, T0 + 3 * MIN, 160, false);
    v = get_if(l, "a1");
    assert_true(v.has_rate);
    assert_true(v.rate > 0.999 && v.rate < 1.001);
    /* a wrap the agent could not trust arrives unknown: no value, no rate, and none for
     * the interval after it either */
    put(l, "a1", 1, T0 + 4 * MIN, 0, true);
    v = get_if(l, "a1");
    assert_true(v.unknown);
    assert_false(v.has_rate);
    put(l, "a1", 1, T0 + 5 * MIN, 4294967000ull, false);
    v = get_if(l, "a1");
    assert_false(v.unknown);
    assert_false(v.has_rate);
    /* a wrap the agent extended (the continuous value grows past 2^32): a rate */
    put(l, "a1", 1, T0 + 6 * MIN, 4294967000ull + 120, false);
    v = get_if(l, "a1");
    assert_true(v.has_rate);
    assert_true(v.rate > 1.999 && v.rate < 2.001);
    /* a gap of more than 2 intervals (the archives' heartbeat): no rate */
    put(l, "a1", 1, T0 + 9 * MIN, 4294967000ull + 240, false);
    v = get_if(l, "a1");
    assert_false(v.has_rate);
    /* exactly 2 intervals: a rate */
    put(l, "a1", 1, T0 + 11 * MIN, 4294967000ull + 480, false);
    v = get_if(l, "a1");
    assert_true(v.has_rate);
    assert_true(v.rate > 1.999 && v.rate < 2.001);
    /* the same series of another agent is another series */
    put(l, "a2", 1, T0, 7, false);
    assert_int_equal(get_if(l, "a2").value, 7);
    assert_int_equal(get_if(l, "a1").value, 4294967000ull + 480);
    kvl_latest_value_t none;
    assert_int_equal(
        kvl_latest_get(l, "a3", "r1", KVL_SCOPE_INTERFACE, "Gi0/1", "in_octets", &none),
        KVL_EINVAL);
    assert_int_equal(kvl_latest_get(l, "a1", "r1", KVL_SCOPE_DEVICE, "Gi0/1", "in_octets", &none),
                     KVL_EINVAL);
    kvl_latest_free(l);
}

static void test_scopes(void **state)
{
    KVL_UNUSED(state);
    kvl_latest_t *l = make(0);
    put(l, "a1", 2, T0, 1, false);
    put_real(l, "a1", 3, T0, 12.5);
    put(l, "a1", 4, T0, 99, false);
    kvl_latest_value_t v;
    assert_int_equal(kvl_latest_get(l, "a1", "r1", KVL_SCOPE_DEVICE, "", "reachable", &v), 0);
    assert_int_equal(v.value, 1);
    assert_int_equal(v.kind, KVL_KIND_GAUGE);
    /* links and the agent's own statistics: under the agent's id, whatever the
     * definition's device says (as the archives file them) */
    assert_int_equal(kvl_latest_get(l, "a1", "a1", KVL_SCOPE_LINK, "10.0.0.9", "rtt_median_ms", &v),
                     0);
    assert_true(v.real);
    assert_true(v.real_value > 12.49 && v.real_value < 12.51);
    assert_int_equal(
        kvl_latest_get(l, "a1", "ignored", KVL_SCOPE_LINK, "10.0.0.9", "rtt_median_ms", &v),
        KVL_EINVAL);
    assert_int_equal(kvl_latest_get(l, "a1", "a1", KVL_SCOPE_AGENT, "", "snmp_requests", &v), 0);
    assert_int_equal(v.value, 99);
    kvl_latest_free(l);
}

typedef struct seen {
    int n;
    kvl_latest_agent_t last;
} seen_t;

static void on_agent(void *ctx, const kvl_latest_agent_t *a)
{
    seen_t *s = ctx;
    s->n++;
    s->last = *a;
}

static int sites_told;
static char site_told[64];

static void on_site(void *ctx, const char *agent, const char *site)
{
    assert_ptr_equal(ctx, &sites_told);
    assert_string_equal(agent, "a1");
    sites_told++;
    snprintf(site_told, sizeof(site_told), "%s", site);
}

static void test_agents(void **state)
{
    KVL_UNUSED(state);
    kvl_latest_t *l = make(0);
    kvl_latest_watch_sites(l, on_site, &sites_told);
    fake_now = T0 + 5000;
    put(l, "a1", 2, T0, 1, false);
    put(l, "a1", 2, T0 + MIN, 1, false);
    assert_int_equal(sites_told, 1); /* first seen: told once */
    assert_string_equal(site_told, "dhq-kollam");
    seen_t s = {0};
    kvl_latest_agents(l, on_agent, &s);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.last.id, "a1");
    assert_string_equal(s.last.site, "dhq-kollam");
    assert_int_equal(s.last.last_batch_ms, T0 + 5000);
    assert_int_equal(s.last.last_sample_ms, T0 + MIN);
    assert_false(s.last.lost);
    kvl_event_t ev = {.time_ms = T0 + 90000, .device = "a1", .kind = "agent_lost"};
    kvl_sink_event_t e = {.agent = "a1", .site = "dhq-kollam", .event = &ev, .synthetic = true};
    kvl_latest_event(l, &e);
    /* an agent's own event of that name is not the ingest's verdict */
    kvl_event_t ev2 = {.time_ms = T0 + 95000, .device = "a1", .kind = "agent_back"};
    kvl_sink_event_t e2 = {.agent = "a1", .site = "dhq-kollam", .event = &ev2};
    kvl_latest_event(l, &e2);
    s.n = 0;
    kvl_latest_agents(l, on_agent, &s);
    assert_true(s.last.lost);
    assert_int_equal(s.last.lost_since_ms, T0 + 90000);
    e2.synthetic = true;
    kvl_latest_event(l, &e2);
    kvl_latest_agents(l, on_agent, &s);
    assert_false(s.last.lost);
    kvl_latest_free(l);
}

static bool count_one(void *ctx, const kvl_latest_value_t *v)
{
    KVL_UNUSED(v);
    (*(int *)ctx)++;
    return true;
}

typedef struct scope_seen {
    int scope; /* the one expected */
    int n, wrong;
    char agents[8][16];
} scope_seen_t;

static bool on_scope(void *ctx, const kvl_latest_value_t *v)
{
    scope_seen_t *s = ctx;
    if (s->n < 8) {
        snprintf(s->agents[s->n], sizeof(s->agents[0]), "%s", v->agent);
    }
    s->n++;
    s->wrong += (int)v->scope != s->scope;
    return true;
}

/* kvl_latest_each_scope gives the series of one scope, all of them, in the order first
 * seen, whatever came in between; a scope without series gives none; a series known but
 * never valued is left out as by kvl_latest_each. */
static void test_each_scope(void **state)
{
    KVL_UNUSED(state);
    kvl_latest_t *l = make(0);
    put_real(l, "a1", 3, T0, 1.5);
    put(l, "a1", 1, T0, 5, false);
    put(l, "a2", 2, T0, 1, false);
    put_real(l, "a2", 3, T0, 1.5);
    put(l, "a1", 2, T0, 1, false);
    put_real(l, "a3", 3, T0, 1.5);
    put_real(l, "a1", 3, T0 + MIN, 1.5); /* known: no new entry */
    scope_seen_t s = {.scope = KVL_SCOPE_LINK};
    kvl_latest_each_scope(l, KVL_SCOPE_LINK, on_scope, &s);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.wrong, 0);
    assert_string_equal(s.agents[0], "a1");
    assert_string_equal(s.agents[1], "a2");
    assert_string_equal(s.agents[2], "a3");
    s = (scope_seen_t){.scope = KVL_SCOPE_DEVICE};
    kvl_latest_each_scope(l, KVL_SCOPE_DEVICE, on_scope, &s);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.wrong, 0);
    assert_string_equal(s.agents[0], "a2");
    assert_string_equal(s.agents[1], "a1");
    s = (scope_seen_t){.scope = KVL_SCOPE_AGENT};
    kvl_latest_each_scope(l, KVL_SCOPE_AGENT, on_scope, &s);
    assert_int_equal(s.n, 0);
    kvl_latest_each_scope(l, (kvl_scope_t)99, on_scope, &s);
    assert_int_equal(s.n, 0);
    int all = 0;
    kvl_latest_each(l, count_one, &all);
    assert_int_equal(all, 6);
    kvl_latest_free(l);
}

/* Past max_series new series are counted, not kept; known ones still update. Memory per
 * series stays within what latest.h states. */
static void test_bound_and_memory(void **state)
{
    KVL_UNUSED(state);
    kvl_latest_t *l = make(3);
    put(l, "a1", 1, T0, 1, false);
    put(l, "a1", 2, T0, 1, false);
    put(l, "a2", 1, T0, 1, false);
    put(l, "a3", 1, T0, 1, false); /* the fourth: refused */
    put(l, "a1", 1, T0 + MIN, 61, false);
    kvl_latest_stats_t st;
    kvl_latest_stats(l, &st);
    assert_int_equal(st.series, 3);
    assert_int_equal(st.refused, 1);
    assert_int_equal(get_if(l, "a1").value, 61);
    int n = 0;
    kvl_latest_each(l, count_one, &n);
    assert_int_equal(n, 3);
    kvl_latest_free(l);

    /* 200,000 interface series of 2,000 agents: at most 96 + 16 bytes each (latest.h), plus
     * names */
    l = make(0);
    char agent[32];
    for (int a = 0; a < 2000; a++) {
        snprintf(agent, sizeof(agent), "agent-%d", a);
        for (int k = 0; k < 100; k++) {
            static char inst[100][16];
            snprintf(inst[k], sizeof(inst[k]), "Gi0/%d", k);
            uint32_t ids[1] = {1};
            uint64_t vals[1] = {(uint64_t)k};
            kvl_group_t g = {.time_ms = T0, .ids = ids, .n_ids = 1, .values = vals, .n_values = 1};
            kvl_batch_t b = {.seq = 1, .groups = &g, .n_groups = 1};
            defs[0].instance = inst[k];
            kvl_sink_batch_t sb = {.agent = agent, .site = "s", .defs = &table, .batch = &b};
            assert_int_equal(kvl_latest_batch(l, &sb), 0);
        }
    }
    defs[0].instance = "Gi0/1";
    kvl_latest_stats(l, &st);
    assert_int_equal(st.series, 200000);
    size_t names_bytes = st.names * (sizeof(char *) + 8 + 32);
    if (st.bytes > 200000 * (96 + 16) + names_bytes + 65536) {
        fail_msg("%zu bytes for %zu series", st.bytes, st.series);
    }
    kvl_latest_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate),       cmocka_unit_test(test_scopes),
        cmocka_unit_test(test_agents),     cmocka_unit_test(test_bound_and_memory),
        cmocka_unit_test(test_each_scope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
