/*
 * test_engine.c — unit tests for the rule engine (collector/alerts/engine.h), driven as the
 * ingest drives a sink: synthetic definitions (an interface of the if family, a device, a
 * probe target), batches of samples at chosen sample times, events, and a fake wall clock
 * for the timer's checks. Every change the engine reports is recorded and checked: status,
 * late, start and end times, labels.
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

#include "engine.h"
#include "kvl.h"

#define S_MS 1000LL
#define M_MS (60 * S_MS)
#define T0 (1800000000000LL) /* a sample time, ms */

/* --- definitions --------------------------------------------------------------------- */

enum {
    ID_IN_OCT = 1,
    ID_OUT_OCT,
    ID_IN_ERR,
    ID_OUT_ERR,
    ID_IN_UC,
    ID_OUT_UC,
    ID_OPER,
    ID_ADMIN,
    ID_SPEED,
    ID_REACH = 20,
    ID_REASON,
    ID_LOST = 30,
    N_IDS = 32
};

static const kvl_label_t if_labels[] = {{"ifName", "Gi0/1"}, {"ifAlias", "uplink to HQ"}};
static kvl_series_def_t defs[N_IDS];

static void def_if(uint32_t id, const char *metric, kvl_kind_t kind)
{
    defs[id] = (kvl_series_def_t){.id = id,
                                  .device = "r1",
                                  .scope = KVL_SCOPE_INTERFACE,
                                  .instance = "Gi0/1",
                                  .metric = metric,
                                  .kind = kind,
                                  .interval_s = 60,
                                  .labels = if_labels,
                                  .n_labels = 2};
}

static void defs_init(void)
{
    memset(defs, 0, sizeof(defs));
    def_if(ID_IN_OCT, "in_octets", KVL_KIND_COUNTER);
    def_if(ID_OUT_OCT, "out_octets", KVL_KIND_COUNTER);
    def_if(ID_IN_ERR, "in_errors", KVL_KIND_COUNTER);
    def_if(ID_OUT_ERR, "out_errors", KVL_KIND_COUNTER);
    def_if(ID_IN_UC, "in_ucast_pkts", KVL_KIND_COUNTER);
    def_if(ID_OUT_UC, "out_ucast_pkts", KVL_KIND_COUNTER);
    def_if(ID_OPER, "oper_status", KVL_KIND_GAUGE);
    def_if(ID_ADMIN, "admin_status", KVL_KIND_GAUGE);
    def_if(ID_SPEED, "speed_bps", KVL_KIND_GAUGE);
    defs[ID_REACH] = (kvl_series_def_t){.id = ID_REACH,
                                        .device = "r1",
                                        .scope = KVL_SCOPE_DEVICE,
                                        .instance = "",
                                        .metric = "reachable",
                                        .kind = KVL_KIND_GAUGE,
                                        .interval_s = 60};
    defs[ID_REASON] = defs[ID_REACH];
    defs[ID_REASON].id = ID_REASON;
    defs[ID_REASON].metric = "down_reason";
    defs[ID_LOST] = (kvl_series_def_t){.id = ID_LOST,
                                       .device = "agent1",
                                       .scope = KVL_SCOPE_LINK,
                                       .instance = "10.9.9.9",
                                       .metric = "lost_pct",
                                       .kind = KVL_KIND_GAUGE,
                                       .real = true,
                                       .interval_s = 60};
}

static const kvl_series_def_t *def_of(const void *table, uint32_t id)
{
    (void)table;
    return id < N_IDS && defs[id].metric != NULL ? &defs[id] : NULL;
}

static const kvl_family_t *family_of(const void *table, const kvl_series_def_t *def)
{
    (void)table;
    (void)def;
    return NULL;
}

static const kvl_sink_defs_t sink_defs = {.table = NULL, .def = def_of, .family = family_of};

/* --- the fixture --------------------------------------------------------------------- */

typedef struct rec {
    char rule[64];
    kvl_alert_status_t status;
    bool late, flapping;
    int64_t starts, ends;
    double value;
    char interface[32], description[64], summary[256];
    kvl_alert_t *copy;
} rec_t;

typedef struct fx {
    kvl_rules_t *rules;
    kvl_engine_t *e;
    int64_t now;
    rec_t rec[64];
    size_t n;
} fx_t;

static int64_t fake_now(void *ctx)
{
    return ((fx_t *)ctx)->now;
}

static void on_alert(void *ctx, const kvl_alert_t *a)
{
    fx_t *f = ctx;
    assert_true(f->n < KVL_ARRAY_SIZE(f->rec));
    rec_t *r = &f->rec[f->n++];
    snprintf(r->rule, sizeof(r->rule), "%s", a->rule);
    r->status = a->status;
    r->late = a->late;
    r->flapping = kvl_alert_label(a, "flapping") != NULL;
    r->starts = a->starts_at_ms;
    r->ends = a->ends_at_ms;
    r->value = a->value;
    const char *i = kvl_alert_label(a, "interface");
    snprintf(r->interface, sizeof(r->interface), "%s", i ? i : "");
    snprintf(r->description, sizeof(r->description), "%s", a->description ? a->description : "");
    snprintf(r->summary, sizeof(r->summary), "%s", a->summary ? a->summary : "");
    assert_non_null(a->url);
    assert_int_equal(a->fingerprint, kvl_alert_fingerprint(a->labels, a->n_labels));
    r->copy = kvl_alert_dup(a);
    assert_non_null(r->copy);
}

#define DISABLE_ALL                                                                                \
    "disable: [device_down, interface_down, interface_utilisation, interface_errors, "             \
    "link_loss, link_down, agent_lost, mos_low, certificate_expiring, "                            \
    "http_probe_failing, agent_silent, spool_dropping, journal_near_bound]\n"

static void fx_clear(fx_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        kvl_alert_free(f->rec[i].copy);
    }
    f->n = 0;
}

static size_t g_max_series; /* the engine's max_series (0: its default) */

static void fx_start(fx_t *f, const char *rules_yaml, int64_t now)
{
    char err[512];
    memset(f, 0, sizeof(*f));
    defs_init();
    f->now = now;
    if (kvl_rules_parse("t.yaml", rules_yaml, &f->rules, err, sizeof(err)) != 0) {
        fail_msg("rules: %s", err);
    }
    kvl_engine_cfg_t cfg = {
        .rules = f->rules, .now_ms = fake_now, .now_ctx = f, .max_series = g_max_series};
    assert_int_equal(kvl_engine_new(NULL, &cfg, on_alert, f, &f->e, err, sizeof(err)), 0);
}

static void fx_stop(fx_t *f)
{
    kvl_engine_free(f->e);
    kvl_rules_free(f->rules);
    fx_clear(f);
}

typedef struct sv {
    uint32_t id;
    double v;
    bool unknown;
} sv_t;

/* One batch of one group at sample time t. */
static void batch_at(fx_t *f, int64_t t, const sv_t *sv, size_t n, bool replayed)
{
    uint32_t ids[N_IDS], unknown[N_IDS];
    uint64_t values[N_IDS];
    double reals[N_IDS];
    size_t nv = 0, nr = 0, nu = 0;
    for (size_t i = 0; i < n; i++) {
        ids[i] = sv[i].id;
        if (sv[i].unknown) {
            unknown[nu++] = (uint32_t)i;
        } else if (defs[sv[i].id].real) {
            reals[nr++] = sv[i].v;
        } else {
            values[nv++] = (uint64_t)sv[i].v;
        }
    }
    kvl_group_t g = {.time_ms = t,
                     .ids = ids,
                     .n_ids = n,
                     .values = values,
                     .n_values = nv,
                     .reals = reals,
                     .n_reals = nr,
                     .unknown = unknown,
                     .n_unknown = nu};
    kvl_batch_t b = {.seq = 1, .groups = &g, .n_groups = 1};
    if (t > f->now) {
        f->now = t; /* live data arrives as it is measured */
    }
    kvl_sink_batch_t sb = {
        .agent = "agent1", .site = "blk-a", .defs = &sink_defs, .batch = &b, .replayed = replayed};
    assert_int_equal(kvl_engine_batch(f->e, &sb), 0);
}

static void lost_at(fx_t *f, int64_t t, double pct)
{
    sv_t sv[] = {{ID_LOST, pct, false}};
    batch_at(f, t, sv, 1, false);
}

static void event_at(fx_t *f, int64_t t, const char *kind, const char *ifname, bool late)
{
    kvl_label_t fields[] = {{"ifName", ifname}, {"reason", "timeout"}};
    kvl_event_t ev = {.time_ms = t,
                      .device = "r1",
                      .kind = kind,
                      .text = kind,
                      .fields = fields,
                      .n_fields = ifname != NULL ? 2 : 0};
    if (ifname == NULL) {
        ev.fields = fields + 1;
        ev.n_fields = 1;
    }
    kvl_sink_event_t se = {.agent = "agent1", .site = "blk-a", .event = &ev, .late = late};
    kvl_engine_event(f->e, &se);
}

static size_t count(const fx_t *f, const char *rule, kvl_alert_status_t st, int late)
{
    size_t n = 0;
    for (size_t i = 0; i < f->n; i++) {
        n += strcmp(f->rec[i].rule, rule) == 0 && f->rec[i].status == st &&
             (late < 0 || f->rec[i].late == (bool)late);
    }
    return n;
}

/* --- tests ------------------------------------------------------------------------------- */

static void test_threshold_for_hysteresis(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: loss\n"
                         "    severity: major\n"
                         "    threshold: {value: lost_pct, above: 10, clear: 5, for: 2m}\n"
                         "    summary: '{{target}} at {{site}}: {{value}} % loss'\n",
             T0);
    lost_at(&f, T0, 1);
    assert_int_equal(f.n, 0);
    /* crossed, dips below before for: ran out: pending, then resolved, never firing */
    lost_at(&f, T0 + 1 * M_MS, 20);
    assert_int_equal(count(&f, "loss", KVL_ALERT_PENDING, 0), 1);
    lost_at(&f, T0 + 2 * M_MS, 9);
    assert_int_equal(count(&f, "loss", KVL_ALERT_RESOLVED, -1), 1);
    fx_clear(&f);
    /* crossed for 2 minutes: fires with the start of the crossing */
    lost_at(&f, T0 + 3 * M_MS, 20);
    lost_at(&f, T0 + 4 * M_MS, 25);
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, -1), 0);
    lost_at(&f, T0 + 5 * M_MS, 30);
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, 0), 1);
    rec_t *r = &f.rec[f.n - 1];
    assert_int_equal(r->starts, T0 + 3 * M_MS);
    assert_string_equal(r->summary, "10.9.9.9 at blk-a: 30 % loss");
    /* between clear and the threshold: still firing (hysteresis) */
    lost_at(&f, T0 + 6 * M_MS, 7);
    lost_at(&f, T0 + 7 * M_MS, 12);
    assert_int_equal(count(&f, "loss", KVL_ALERT_RESOLVED, -1), 0);
    lost_at(&f, T0 + 8 * M_MS, 4);
    assert_int_equal(count(&f, "loss", KVL_ALERT_RESOLVED, 0), 1);
    r = &f.rec[f.n - 1];
    assert_int_equal(r->starts, T0 + 3 * M_MS);
    assert_int_equal(r->ends, T0 + 8 * M_MS);
    /* an instant not newer than the last one is skipped */
    lost_at(&f, T0 + 8 * M_MS, 50);
    lost_at(&f, T0 + 7 * M_MS, 50);
    assert_int_equal(count(&f, "loss", KVL_ALERT_PENDING, -1), 1);
    kvl_engine_stats_t st;
    kvl_engine_get_stats(f.e, &st);
    assert_int_equal(st.stale, 2);
    fx_stop(&f);
}

static void test_rate_counter_reset(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: errs\n"
                         "    severity: minor\n"
                         "    threshold: {rate: in_errors, above: 5, clear: 2}\n",
             T0);
    sv_t a[] = {{ID_IN_ERR, 1000, false}};
    batch_at(&f, T0, a, 1, false);
    a[0].v = 1600; /* 10 per second */
    batch_at(&f, T0 + M_MS, a, 1, false);
    assert_int_equal(count(&f, "errs", KVL_ALERT_FIRING, 0), 1);
    assert_true(f.rec[0].value > 9.99 && f.rec[0].value < 10.01);
    /* the device rebooted: the agent reports unknown, then a small count: no rate across */
    a[0].unknown = true;
    batch_at(&f, T0 + 2 * M_MS, a, 1, false);
    a[0] = (sv_t){ID_IN_ERR, 3, false};
    batch_at(&f, T0 + 3 * M_MS, a, 1, false);
    /* a counter that goes back without a word is no rate either */
    a[0].v = 1;
    batch_at(&f, T0 + 4 * M_MS, a, 1, false);
    assert_int_equal(f.n, 1);
    a[0].v = 61; /* 1 per second */
    batch_at(&f, T0 + 5 * M_MS, a, 1, false);
    assert_int_equal(count(&f, "errs", KVL_ALERT_RESOLVED, 0), 1);
    assert_int_equal(f.n, 2);
    fx_stop(&f);
}

static void test_rate_of_gauge(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, "rules: []\n", T0); /* spool_dropping: rate of spool_dropped above 0 */
    static const kvl_series_def_t drop = {.id = 31,
                                          .device = "agent1",
                                          .scope = KVL_SCOPE_AGENT,
                                          .instance = "",
                                          .metric = "spool_dropped",
                                          .kind = KVL_KIND_GAUGE,
                                          .interval_s = 60};
    defs[31] = drop;
    sv_t a[] = {{31, 0, false}};
    batch_at(&f, T0, a, 1, false);
    a[0].v = 120;
    batch_at(&f, T0 + M_MS, a, 1, false);
    assert_int_equal(count(&f, "spool_dropping", KVL_ALERT_FIRING, 0), 1);
    assert_true(f.rec[0].value > 1.99 && f.rec[0].value < 2.01);
    batch_at(&f, T0 + 2 * M_MS, a, 1, false);
    assert_int_equal(count(&f, "spool_dropping", KVL_ALERT_RESOLVED, 0), 1);
    fx_stop(&f);
}

static void test_utilisation(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: util\n"
                         "    severity: warning\n"
                         "    threshold: {derived: utilisation_pct, above: 80, clear: 70}\n"
                         "    summary: '{{interface}} ({{alias}}) at {{value}} %'\n",
             T0);
    /* 1 Mbit/s; 90 % of it is 112500 bytes/s, 6750000 in a minute */
    sv_t a[] = {{ID_IN_OCT, 0, false}, {ID_OUT_OCT, 0, false}, {ID_SPEED, 1000000, false}};
    batch_at(&f, T0, a, 3, false);
    a[0].v = 6750000;
    a[1].v = 100;
    batch_at(&f, T0 + M_MS, a, 3, false);
    assert_int_equal(count(&f, "util", KVL_ALERT_FIRING, 0), 1);
    assert_true(f.rec[0].value > 89.99 && f.rec[0].value < 90.01);
    assert_string_equal(f.rec[0].interface, "Gi0/1");
    assert_string_equal(f.rec[0].description, "uplink to HQ");
    assert_string_equal(f.rec[0].summary, "Gi0/1 (uplink to HQ) at 90 %");
    a[0].v = 6750000 + 3375000; /* 45 % */
    batch_at(&f, T0 + 2 * M_MS, a, 3, false);
    assert_int_equal(count(&f, "util", KVL_ALERT_RESOLVED, 0), 1);
    fx_stop(&f);
}

static void test_no_data(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: gone\n"
                         "    severity: warning\n"
                         "    select: {target: '10.*'}\n"
                         "    no_data: {intervals: 3}\n",
             T0);
    lost_at(&f, T0, 0);
    f.now = T0 + 2 * M_MS;
    kvl_engine_tick(f.e);
    lost_at(&f, T0 + 2 * M_MS, 0);
    f.now = T0 + 5 * M_MS;
    kvl_engine_tick(f.e);
    assert_int_equal(f.n, 0);
    f.now = T0 + 5 * M_MS + 1;
    kvl_engine_tick(f.e);
    kvl_engine_tick(f.e);
    assert_int_equal(count(&f, "gone", KVL_ALERT_FIRING, 0), 1);
    assert_int_equal(f.rec[0].starts, T0 + 2 * M_MS);
    lost_at(&f, T0 + 6 * M_MS, 0);
    assert_int_equal(count(&f, "gone", KVL_ALERT_RESOLVED, 0), 1);
    assert_int_equal(f.n, 2);
    fx_stop(&f);
}

static void test_event_fire_clear_hold(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: ldown\n"
                         "    severity: critical\n"
                         "    event: {name: linkDown}\n"
                         "    summary: '{{interface}} on {{device}}: link down'\n"
                         "  - name: rebooted\n"
                         "    severity: info\n"
                         "    event: {name: coldStart, hold: 5m}\n",
             T0);
    event_at(&f, T0, "linkDown", "Gi0/1", false);
    assert_int_equal(count(&f, "ldown", KVL_ALERT_FIRING, 0), 1);
    assert_string_equal(f.rec[0].interface, "Gi0/1");
    assert_string_equal(f.rec[0].summary, "Gi0/1 on r1: link down");
    /* the same again: the same alert, no second page */
    event_at(&f, T0 + S_MS, "linkDown", "Gi0/1", false);
    /* another interface coming up clears nothing */
    event_at(&f, T0 + 2 * S_MS, "linkUp", "Gi0/2", false);
    assert_int_equal(f.n, 1);
    /* a linkUp older than the linkDown is about an earlier outage */
    event_at(&f, T0 - S_MS, "linkUp", "Gi0/1", false);
    assert_int_equal(f.n, 1);
    event_at(&f, T0 + 3 * S_MS, "linkUp", "Gi0/1", false);
    assert_int_equal(count(&f, "ldown", KVL_ALERT_RESOLVED, 0), 1);
    assert_int_equal(f.rec[1].ends, T0 + 3 * S_MS);
    /* an event without a clearing one: resolved after its hold */
    event_at(&f, T0 + 10 * S_MS, "coldStart", NULL, false);
    assert_int_equal(count(&f, "rebooted", KVL_ALERT_FIRING, 0), 1);
    f.now = T0 + 10 * S_MS + 5 * M_MS - 1;
    kvl_engine_tick(f.e);
    assert_int_equal(count(&f, "rebooted", KVL_ALERT_RESOLVED, -1), 0);
    f.now += 1;
    kvl_engine_tick(f.e);
    assert_int_equal(count(&f, "rebooted", KVL_ALERT_RESOLVED, 0), 1);
    /* a late linkDown (queued while the agent was lost) and its linkUp: history only */
    fx_clear(&f);
    event_at(&f, T0 + 20 * S_MS, "linkDown", "Gi0/3", true);
    assert_int_equal(f.n, 0);
    event_at(&f, T0 + 21 * S_MS, "linkUp", "Gi0/3", true);
    assert_int_equal(count(&f, "ldown", KVL_ALERT_FIRING, 1), 1);
    assert_int_equal(count(&f, "ldown", KVL_ALERT_RESOLVED, 1), 1);
    assert_int_equal(f.n, 2);
    fx_stop(&f);
}

/* Data events (the capture's top lists, an agent's configured devices) travel as events but
 * are no incident: a catch-all or a glob that happens to fit never fires on them; a rule naming
 * one exactly does; every other event still reaches the catch-all. */
static void test_event_catch_all_skips_data(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: anything\n"
                         "    severity: info\n"
                         "    event: {name: '*'}\n"
                         "  - name: capture_glob\n"
                         "    severity: info\n"
                         "    event: {name: 'capture_*'}\n"
                         "  - name: devices_glob\n"
                         "    severity: info\n"
                         "    event: {name: 'devices_[c]onfigured'}\n",
             T0);
    event_at(&f, T0, "capture_top", NULL, false);
    event_at(&f, T0 + S_MS, "devices_configured", NULL, false);
    assert_int_equal(f.n, 0);
    event_at(&f, T0 + 2 * S_MS, "coldStart", NULL, false);
    assert_int_equal(count(&f, "anything", KVL_ALERT_FIRING, 0), 1);
    assert_int_equal(f.n, 1);
    fx_stop(&f);
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: top_lists\n"
                         "    severity: info\n"
                         "    event: {name: capture_top}\n",
             T0);
    event_at(&f, T0, "capture_top", NULL, false);
    assert_int_equal(count(&f, "top_lists", KVL_ALERT_FIRING, 0), 1);
    fx_stop(&f);
    assert_true(kvl_event_is_data("capture_top"));
    assert_true(kvl_event_is_data("devices_configured"));
    assert_false(kvl_event_is_data("linkDown"));
    assert_false(kvl_event_is_data(NULL));
}

static void test_device_down_event_and_state(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: dev_down\n"
                         "    severity: critical\n"
                         "    state: device_unreachable\n",
             T0 + M_MS);
    sv_t a[] = {{ID_REACH, 1, false}, {ID_REASON, 0, false}};
    batch_at(&f, T0, a, 2, false);
    /* the event arrives first (events lane): it pages at once, with its reason */
    event_at(&f, T0 + 30 * S_MS, "device_down", NULL, false);
    assert_int_equal(count(&f, "dev_down", KVL_ALERT_FIRING, 0), 1);
    assert_string_equal(f.rec[0].description, "timeout");
    assert_int_equal(f.rec[0].starts, T0 + 30 * S_MS);
    /* the alert carries the event's fields, its kind first */
    assert_int_equal(f.rec[0].copy->n_fields, 2);
    assert_string_equal(kvl_alert_field(f.rec[0].copy, "event"), "device_down");
    assert_string_equal(kvl_alert_field(f.rec[0].copy, "reason"), "timeout");
    /* the interval's samples say the same: nothing new */
    a[0].v = 0;
    a[1].v = 1;
    batch_at(&f, T0 + M_MS, a, 2, false);
    assert_int_equal(f.n, 1);
    a[0].v = 1;
    a[1].v = 0;
    batch_at(&f, T0 + 2 * M_MS, a, 2, false);
    assert_int_equal(count(&f, "dev_down", KVL_ALERT_RESOLVED, 0), 1);
    assert_int_equal(f.n, 2);
    /* resolved by a poll, not an event: still the fields of the event that made it */
    assert_string_equal(kvl_alert_field(f.rec[1].copy, "event"), "device_down");
    fx_stop(&f);
}

static void oper_at(fx_t *f, int64_t t, bool down)
{
    sv_t a[] = {{ID_OPER, down ? 2 : 1, false}, {ID_ADMIN, 1, false}};
    batch_at(f, t, a, 2, false);
}

static void test_flapping(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: if_down\n"
                         "    severity: major\n"
                         "    state: oper_down_admin_up\n"
                         "    flapping: {changes: 6, window: 10m, stable: 10m}\n",
             T0);
    oper_at(&f, T0, false);
    /* 10 transitions in 5 minutes */
    for (int i = 1; i <= 10; i++) {
        oper_at(&f, T0 + i * 30 * S_MS, i % 2 == 1);
    }
    size_t flap_firing = 0, flap_resolved = 0, plain_firing = 0;
    for (size_t i = 0; i < f.n; i++) {
        flap_firing += f.rec[i].flapping && f.rec[i].status == KVL_ALERT_FIRING;
        plain_firing += !f.rec[i].flapping && f.rec[i].status == KVL_ALERT_FIRING;
        flap_resolved += f.rec[i].flapping && f.rec[i].status == KVL_ALERT_RESOLVED;
    }
    assert_int_equal(flap_firing, 1);
    assert_int_equal(flap_resolved, 0);
    /* changes: 6 lets the first three cuts page (each resolved) before the seventh change
     * shows the flapping; the last three cuts page nobody */
    assert_int_equal(plain_firing, 3);
    size_t before = f.n;
    /* stable (up) for 10 minutes: the flapping alert resolves, nothing else */
    for (int i = 1; i <= 21; i++) {
        oper_at(&f, T0 + 5 * M_MS + i * 30 * S_MS, false);
    }
    assert_int_equal(f.n, before + 1);
    assert_true(f.rec[f.n - 1].flapping);
    assert_int_equal(f.rec[f.n - 1].status, KVL_ALERT_RESOLVED);
    assert_false(f.rec[f.n - 1].late);
    fx_stop(&f);
}

static void test_interface_down_at_first_sight(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, "rules: []\n", T0);
    /* admin up, oper down from the first poll on: an unused port, no page */
    oper_at(&f, T0, true);
    oper_at(&f, T0 + M_MS, true);
    assert_int_equal(f.n, 0);
    /* once it was up, going down pages */
    oper_at(&f, T0 + 2 * M_MS, false);
    oper_at(&f, T0 + 3 * M_MS, true);
    assert_int_equal(count(&f, "interface_down", KVL_ALERT_FIRING, 0), 1);
    assert_int_equal(f.rec[0].starts, T0 + 3 * M_MS);
    fx_stop(&f);
}

static void test_link_traps_drive_interface_state(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, "rules: []\n", T0); /* the built-in rules */
    oper_at(&f, T0, false);
    /* the trap pages at once, named as the poller names the interface, with its alias */
    event_at(&f, T0 + 5 * S_MS, "linkDown", "Gi0/1", false);
    assert_int_equal(count(&f, "interface_down", KVL_ALERT_FIRING, 0), 1);
    assert_string_equal(f.rec[0].interface, "Gi0/1");
    assert_string_equal(f.rec[0].description, "uplink to HQ");
    assert_int_equal(f.rec[0].starts, T0 + 5 * S_MS);
    /* the next poll says the same: no second page */
    oper_at(&f, T0 + M_MS, true);
    assert_int_equal(f.n, 1);
    /* linkUp resolves it before any poll */
    event_at(&f, T0 + M_MS + 10 * S_MS, "linkUp", "Gi0/1", false);
    assert_int_equal(count(&f, "interface_down", KVL_ALERT_RESOLVED, 0), 1);
    /* an interface not polled yet: the trap alone pages */
    event_at(&f, T0 + 2 * M_MS, "linkDown", "Gi0/9", false);
    assert_int_equal(count(&f, "interface_down", KVL_ALERT_FIRING, 0), 2);
    assert_string_equal(f.rec[f.n - 1].interface, "Gi0/9");
    /* the probes' link cut: link_down, cleared by target_up */
    kvl_label_t tf[] = {{"target", "10.9.9.9"}};
    kvl_event_t ev = {.time_ms = T0 + 3 * M_MS,
                      .device = "agent1",
                      .kind = "target_down",
                      .fields = tf,
                      .n_fields = 1};
    kvl_sink_event_t se = {.agent = "agent1", .site = "blk-a", .event = &ev};
    kvl_engine_event(f.e, &se);
    assert_int_equal(count(&f, "link_down", KVL_ALERT_FIRING, 0), 1);
    assert_string_equal(f.rec[f.n - 1].summary, "10.9.9.9 from blk-a: link down (probes lost)");
    ev.kind = "target_up";
    ev.time_ms += 20 * S_MS;
    kvl_engine_event(f.e, &se);
    assert_int_equal(count(&f, "link_down", KVL_ALERT_RESOLVED, 0), 1);
    fx_stop(&f);
}

static const char loss_rule[] = DISABLE_ALL "rules:\n"
                                            "  - name: loss\n"
                                            "    severity: major\n"
                                            "    threshold: {value: lost_pct, above: 10, "
                                            "clear: 5, for: 5m}\n";

static void test_late_backlog(void **state)
{
    (void)state;
    fx_t f;
    int64_t now = T0 + 60 * M_MS;
    fx_start(&f, loss_rule, now);
    /* an hour of backlog: crossed for 10 minutes and recovered inside it */
    for (int i = 0; i < 60; i++) {
        lost_at(&f, T0 + i * M_MS, i >= 10 && i < 20 ? 30 : 0);
    }
    assert_int_equal(f.n, 2);
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, 1), 1);
    assert_int_equal(count(&f, "loss", KVL_ALERT_RESOLVED, 1), 1);
    assert_int_equal(f.rec[0].starts, T0 + 10 * M_MS);
    assert_int_equal(f.rec[1].ends, T0 + 20 * M_MS);
    fx_stop(&f);

    /* crossed at minute 40 and still crossed when the data catches up: one page, not
     * late, with the real start */
    fx_start(&f, loss_rule, now);
    for (int i = 0; i < 58; i++) {
        lost_at(&f, T0 + i * M_MS, i >= 40 ? 30 : 0);
    }
    assert_int_equal(f.n, 0);
    lost_at(&f, T0 + 58 * M_MS, 30); /* within late_after (2m) of now: fresh */
    assert_int_equal(f.n, 1);
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, 0), 1);
    assert_int_equal(f.rec[0].starts, T0 + 40 * M_MS);
    lost_at(&f, T0 + 59 * M_MS, 30);
    lost_at(&f, now + M_MS, 30);
    assert_int_equal(f.n, 1);
    /* its resolution pages (never late: it paged) */
    f.now += M_MS;
    lost_at(&f, now + 2 * M_MS, 0);
    assert_int_equal(count(&f, "loss", KVL_ALERT_RESOLVED, 0), 1);
    fx_stop(&f);

    /* a replayed batch is late whatever its time */
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: loss\n"
                         "    severity: major\n"
                         "    threshold: {value: lost_pct, above: 10}\n",
             T0);
    sv_t sv[] = {{ID_LOST, 30, false}};
    batch_at(&f, T0, sv, 1, true);
    assert_int_equal(f.n, 0);
    sv[0].v = 0;
    batch_at(&f, T0 + M_MS, sv, 1, true);
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, 1), 1);
    assert_int_equal(count(&f, "loss", KVL_ALERT_RESOLVED, 1), 1);
    fx_stop(&f);
}

static void test_restore(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, loss_rule, T0);
    for (int i = 0; i <= 6; i++) {
        lost_at(&f, T0 + i * M_MS, 30);
    }
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, 0), 1);
    kvl_alert_t *firing = NULL;
    for (size_t i = 0; i < f.n; i++) {
        if (f.rec[i].status == KVL_ALERT_FIRING) {
            firing = f.rec[i].copy;
            f.rec[i].copy = NULL;
        }
    }
    fx_stop(&f);

    /* the collector restarts: the book hands the firing alert back */
    fx_start(&f, loss_rule, T0 + 7 * M_MS);
    assert_int_equal(kvl_engine_restore(f.e, firing), 0);
    kvl_alert_t bad = *firing;
    bad.status = KVL_ALERT_RESOLVED;
    assert_int_equal(kvl_engine_restore(f.e, &bad), KVL_EINVAL);
    bad.status = KVL_ALERT_FIRING;
    bad.rule = "no_such_rule";
    assert_int_equal(kvl_engine_restore(f.e, &bad), KVL_EINVAL);
    for (int i = 7; i <= 12; i++) {
        lost_at(&f, T0 + i * M_MS, 30);
    }
    assert_int_equal(f.n, 0); /* continued silently: no second page, no pending */
    lost_at(&f, T0 + 13 * M_MS, 0);
    assert_int_equal(f.n, 1);
    assert_int_equal(count(&f, "loss", KVL_ALERT_RESOLVED, 0), 1);
    assert_int_equal(f.rec[0].starts, firing->starts_at_ms);
    assert_int_equal(f.rec[0].ends, T0 + 13 * M_MS);
    kvl_alert_free(firing);
    fx_stop(&f);

    /* restored, but its target is no longer probed while the agent goes on: resolved
     * once the agent has been sending for three intervals */
    fx_start(&f, loss_rule, T0 + 20 * M_MS);
    kvl_alert_t *orphan = NULL;
    {
        fx_t g;
        fx_start(&g, loss_rule, T0);
        for (int i = 0; i <= 6; i++) {
            lost_at(&g, T0 + i * M_MS, 30);
        }
        orphan = g.rec[g.n - 1].copy;
        g.rec[g.n - 1].copy = NULL;
        assert_int_equal(orphan->status, KVL_ALERT_FIRING);
        fx_stop(&g);
    }
    assert_int_equal(kvl_engine_restore(f.e, orphan), 0);
    defs[ID_LOST].instance = "10.8.8.8";
    lost_at(&f, T0 + 20 * M_MS, 0);
    f.now = T0 + 23 * M_MS;
    kvl_engine_tick(f.e);
    assert_int_equal(f.n, 0);
    f.now += 1;
    kvl_engine_tick(f.e);
    assert_int_equal(count(&f, "loss", KVL_ALERT_RESOLVED, 0), 1);
    assert_int_equal(f.rec[0].starts, orphan->starts_at_ms);
    assert_int_equal(f.rec[0].ends, f.now);
    assert_int_equal(f.rec[0].copy->fingerprint, orphan->fingerprint);
    kvl_alert_free(orphan);
    fx_stop(&f);

    /* an event alert: the event handed over again after the restart (replayed) does not
     * page again; its clearing event resolves it */
    fx_start(&f, "rules: []\n", T0);
    event_at(&f, T0, "linkDown", "Gi0/1", false);
    kvl_label_t tf[] = {{"target", "10.9.9.9"}};
    kvl_event_t ev = {
        .time_ms = T0, .device = "agent1", .kind = "target_down", .fields = tf, .n_fields = 1};
    kvl_sink_event_t se = {.agent = "agent1", .site = "blk-a", .event = &ev};
    kvl_engine_event(f.e, &se);
    assert_int_equal(f.n, 2);
    kvl_alert_t *ifdown = f.rec[0].copy, *linkdown = f.rec[1].copy;
    f.rec[0].copy = f.rec[1].copy = NULL;
    fx_stop(&f);
    fx_start(&f, "rules: []\n", T0 + 5 * S_MS);
    assert_int_equal(kvl_engine_restore(f.e, ifdown), 0);
    assert_int_equal(kvl_engine_restore(f.e, linkdown), 0);
    se.replayed = true;
    kvl_engine_event(f.e, &se);
    oper_at(&f, T0 + 10 * S_MS, true);
    assert_int_equal(f.n, 0);
    ev.kind = "target_up";
    ev.time_ms = T0 + 20 * S_MS;
    se.replayed = false;
    kvl_engine_event(f.e, &se);
    oper_at(&f, T0 + 30 * S_MS, false);
    assert_int_equal(count(&f, "link_down", KVL_ALERT_RESOLVED, 0), 1);
    assert_int_equal(count(&f, "interface_down", KVL_ALERT_RESOLVED, 0), 1);
    assert_int_equal(f.n, 2);
    kvl_alert_free(ifdown);
    kvl_alert_free(linkdown);
    fx_stop(&f);

    /* a recent event found in the journal at start, never paged: it pages */
    fx_start(&f, "rules: []\n", T0 + 5 * S_MS);
    ev.kind = "target_down";
    se.replayed = true;
    kvl_engine_event(f.e, &se);
    assert_int_equal(count(&f, "link_down", KVL_ALERT_FIRING, 0), 1);
    fx_stop(&f);
}

/* A pending alert kept by the book across a restart continues its for: from its real start:
 * still holding, it fires at active_at + for with that start; over, it is resolved. */
static void test_restore_pending(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, loss_rule, T0);
    lost_at(&f, T0, 30);
    lost_at(&f, T0 + 1 * M_MS, 30);
    assert_int_equal(f.n, 1);
    assert_int_equal(f.rec[0].status, KVL_ALERT_PENDING);
    kvl_alert_t *pending = f.rec[0].copy;
    f.rec[0].copy = NULL;
    assert_int_equal(pending->active_at_ms, T0);
    fx_stop(&f);

    /* the restart: the condition still holds; it fires 5 minutes after T0, not after the
     * restart, and with the real start */
    fx_start(&f, loss_rule, T0 + 2 * M_MS);
    assert_int_equal(kvl_engine_restore(f.e, pending), 0);
    for (int i = 2; i <= 4; i++) {
        lost_at(&f, T0 + i * M_MS, 30);
    }
    assert_int_equal(f.n, 0); /* no second pending */
    lost_at(&f, T0 + 5 * M_MS, 30);
    assert_int_equal(f.n, 1);
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, 0), 1);
    assert_int_equal(f.rec[0].starts, T0);
    assert_int_equal(f.rec[0].copy->fingerprint, pending->fingerprint);
    fx_stop(&f);

    /* the restart: the condition is over; the pending alert is resolved (never paged), and
     * a new crossing starts a new for: */
    fx_start(&f, loss_rule, T0 + 2 * M_MS);
    assert_int_equal(kvl_engine_restore(f.e, pending), 0);
    lost_at(&f, T0 + 2 * M_MS, 1);
    assert_int_equal(f.n, 1);
    assert_int_equal(count(&f, "loss", KVL_ALERT_RESOLVED, 0), 1);
    assert_int_equal(f.rec[0].starts, T0);
    lost_at(&f, T0 + 3 * M_MS, 30);
    assert_int_equal(count(&f, "loss", KVL_ALERT_PENDING, 0), 1);
    assert_int_equal(f.rec[1].starts, T0 + 3 * M_MS);
    lost_at(&f, T0 + 7 * M_MS, 30);
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, 0), 0);
    lost_at(&f, T0 + 8 * M_MS, 30);
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, 0), 1);
    fx_stop(&f);

    /* the restart: what it was about is no longer reported: resolved after the grace */
    fx_start(&f, loss_rule, T0 + 2 * M_MS);
    assert_int_equal(kvl_engine_restore(f.e, pending), 0);
    defs[ID_LOST].instance = "10.8.8.8";
    lost_at(&f, T0 + 2 * M_MS, 0);
    f.now = T0 + 5 * M_MS + 1;
    kvl_engine_tick(f.e);
    assert_int_equal(count(&f, "loss", KVL_ALERT_RESOLVED, 0), 1);
    assert_int_equal(f.n, 1);
    fx_stop(&f);

    /* a pending alert of no rule, or resolved, is refused */
    fx_start(&f, loss_rule, T0 + 2 * M_MS);
    kvl_alert_t bad = *pending;
    bad.rule = "no_such_rule";
    assert_int_equal(kvl_engine_restore(f.e, &bad), KVL_EINVAL);
    bad = *pending;
    bad.status = KVL_ALERT_RESOLVED;
    assert_int_equal(kvl_engine_restore(f.e, &bad), KVL_EINVAL);
    fx_stop(&f);
    kvl_alert_free(pending);
}

static void test_agent_silent(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: silent\n"
                         "    severity: critical\n"
                         "    state: {condition: agent_silent, intervals: 2}\n"
                         "  - name: gone\n"
                         "    severity: warning\n"
                         "    no_data: {intervals: 3}\n",
             T0);
    lost_at(&f, T0, 0);
    f.now = T0 + 2 * M_MS;
    kvl_engine_tick(f.e);
    assert_int_equal(f.n, 0);
    f.now = T0 + 2 * M_MS + 1;
    kvl_engine_tick(f.e);
    assert_int_equal(count(&f, "silent", KVL_ALERT_FIRING, 0), 1);
    assert_int_equal(f.rec[0].starts, T0);
    /* its series have no data either, but the agent is the problem: no second page */
    f.now = T0 + 10 * M_MS;
    kvl_engine_tick(f.e);
    assert_int_equal(f.n, 1);
    lost_at(&f, T0 + 10 * M_MS, 0);
    assert_int_equal(count(&f, "silent", KVL_ALERT_RESOLVED, 0), 1);
    assert_int_equal(f.n, 2);
    /* a lost agent (its heartbeat missed: agent_lost) is neither silent nor without data */
    event_at(&f, T0 + 11 * M_MS, "agent_lost", NULL, false);
    f.now = T0 + 30 * M_MS;
    kvl_engine_tick(f.e);
    assert_int_equal(f.n, 2);
    /* back: its series have their intervals again for the backlog to arrive */
    event_at(&f, T0 + 30 * M_MS, "agent_back", NULL, false);
    f.now = T0 + 32 * M_MS;
    kvl_engine_tick(f.e);
    assert_int_equal(f.n, 2);
    /* back but sending nothing: silent again */
    f.now += 1;
    kvl_engine_tick(f.e);
    assert_int_equal(count(&f, "silent", KVL_ALERT_FIRING, 0), 2);
    assert_int_equal(count(&f, "gone", KVL_ALERT_FIRING, -1), 0);
    fx_stop(&f);
}

static void test_redefined_id(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: loss\n"
                         "    severity: major\n"
                         "    threshold: {value: lost_pct, above: 10}\n",
             T0);
    lost_at(&f, T0, 30);
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, 0), 1);
    /* the agent gives the id to another target (in the same memory, as a table that freed
     * the old definition might): its samples are that target's, not the old one's */
    defs[ID_LOST].instance = "10.8.8.8";
    lost_at(&f, T0 + M_MS, 0);
    assert_int_equal(f.n, 1);
    lost_at(&f, T0 + 2 * M_MS, 40);
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, 0), 2);
    kvl_engine_stats_t st;
    kvl_engine_get_stats(f.e, &st);
    assert_int_equal(st.series, 2);
    fx_stop(&f);
}

static void test_collector_value(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f, "rules: []\n", T0); /* journal_near_bound: above 90, clear 80, for 1m */
    assert_int_equal(kvl_engine_collector_value(f.e, "", "journal_used_pct", 1, T0), KVL_EINVAL);
    assert_int_equal(kvl_engine_collector_value(f.e, "noc-1", "journal_used_pct", 95, T0), 0);
    f.now = T0 + M_MS;
    assert_int_equal(kvl_engine_collector_value(f.e, "noc-1", "journal_used_pct", 96, f.now), 0);
    assert_int_equal(count(&f, "journal_near_bound", KVL_ALERT_FIRING, 0), 1);
    assert_int_equal(f.rec[f.n - 1].starts, T0);
    f.now = T0 + 10 * M_MS;
    kvl_engine_tick(f.e); /* the collector is no silent agent */
    assert_int_equal(count(&f, "agent_silent", KVL_ALERT_FIRING, -1), 0);
    assert_int_equal(kvl_engine_collector_value(f.e, "noc-1", "journal_used_pct", 50, f.now), 0);
    assert_int_equal(count(&f, "journal_near_bound", KVL_ALERT_RESOLVED, 0), 1);
    fx_stop(&f);
}

static int g_done;

static void on_done(void *token, const kvl_sink_result_t *r)
{
    assert_ptr_equal(token, &g_done);
    assert_null(r);
    g_done++;
}

/* Through the sink as the ingest calls it: done once, before on_batch returns. */
static void test_sink_calls(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: loss\n"
                         "    severity: major\n"
                         "    threshold: {value: lost_pct, above: 10}\n",
             T0);
    uint32_t ids[] = {ID_LOST};
    double reals[] = {30};
    kvl_group_t g = {.time_ms = T0, .ids = ids, .n_ids = 1, .reals = reals, .n_reals = 1};
    kvl_batch_t b = {.seq = 1, .groups = &g, .n_groups = 1};
    kvl_sink_batch_t sb = {.agent = "agent1", .site = "blk-a", .defs = &sink_defs, .batch = &b};
    g_done = 0;
    assert_int_equal(kvl_engine_sink.on_batch(f.e, &sb, on_done, &g_done), 0);
    assert_int_equal(g_done, 1);
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, 0), 1);
    /* a group naming an id nobody defined: refused, done not called */
    uint32_t bad[] = {7777};
    g.ids = bad;
    g.time_ms = T0 + M_MS;
    assert_int_equal(kvl_engine_sink.on_batch(f.e, &sb, on_done, &g_done), KVL_EPROTO);
    assert_int_equal(g_done, 1);
    assert_string_equal(kvl_engine_sink.name, "rule engine");
    fx_stop(&f);

    /* agent_lost pages; the agent's next live batch ends it even without agent_back */
    fx_start(&f, "rules: []\n", T0);
    kvl_event_t ev = {.time_ms = T0, .device = "", .kind = "agent_lost"};
    kvl_sink_event_t se = {.agent = "agent1", .site = "blk-a", .event = &ev};
    kvl_engine_sink.on_event(f.e, &se);
    assert_int_equal(count(&f, "agent_lost", KVL_ALERT_FIRING, 0), 1);
    f.now = T0 + 5 * M_MS;
    kvl_engine_tick(f.e); /* lost: not silent as well */
    assert_int_equal(f.n, 1);
    lost_at(&f, T0 + 5 * M_MS, 0);
    assert_int_equal(count(&f, "agent_lost", KVL_ALERT_RESOLVED, 0), 1);
    assert_int_equal(f.rec[1].ends, T0 + 5 * M_MS);
    assert_int_equal(f.n, 2);
    fx_stop(&f);
}

/* --- many series: forgotten when gone, bounded ------------------------------------------ */

#define MANY 1000
#define MANY_ID0 1000
static kvl_series_def_t many_defs[MANY];
static char many_inst[MANY][24];

static const kvl_series_def_t *many_def_of(const void *table, uint32_t id)
{
    (void)table;
    return id >= MANY_ID0 && id < MANY_ID0 + MANY ? &many_defs[id - MANY_ID0] : def_of(NULL, id);
}

static const kvl_sink_defs_t many_sink = {.table = NULL, .def = many_def_of, .family = family_of};

/* One batch at t: loss `pct` on probe targets 10.1.x.y [first, first + n) of agent `agent`
 * (and on 10.9.9.9 too when with_lost). */
static void many_at(fx_t *f, const char *agent, int64_t t, size_t first, size_t n, double pct,
                    bool with_lost)
{
    static uint32_t ids[MANY + 1];
    static double reals[MANY + 1];
    size_t k = 0;
    for (size_t i = first; i < first + n; i++) {
        snprintf(many_inst[i], sizeof(many_inst[i]), "10.1.%u.%u", (unsigned)(i / 250 % 256),
                 (unsigned)(i % 250));
        many_defs[i] = (kvl_series_def_t){.id = (uint32_t)(MANY_ID0 + i),
                                          .device = agent, /* its name freed when forgotten */
                                          .scope = KVL_SCOPE_LINK,
                                          .instance = many_inst[i],
                                          .metric = "lost_pct",
                                          .kind = KVL_KIND_GAUGE,
                                          .real = true,
                                          .interval_s = 60};
        ids[k] = (uint32_t)(MANY_ID0 + i);
        reals[k++] = pct;
    }
    if (with_lost) {
        ids[k] = ID_LOST;
        reals[k++] = 0;
    }
    kvl_group_t g = {.time_ms = t, .ids = ids, .n_ids = k, .reals = reals, .n_reals = k};
    kvl_batch_t b = {.seq = 1, .groups = &g, .n_groups = 1};
    f->now = t > f->now ? t : f->now;
    kvl_sink_batch_t sb = {.agent = agent, .site = "blk-a", .defs = &many_sink, .batch = &b};
    assert_int_equal(kvl_engine_batch(f->e, &sb), 0);
}

static uint64_t series_now(fx_t *f)
{
    kvl_engine_stats_t st;
    kvl_engine_get_stats(f->e, &st);
    return st.series;
}

#define DAY_MS (24 * 60 * M_MS)

static void test_series_forgotten(void **state)
{
    (void)state;
    fx_t f;
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: loss\n"
                         "    severity: major\n"
                         "    threshold: {value: lost_pct, above: 50}\n"
                         "  - name: gone\n"
                         "    severity: warning\n"
                         "    select: {target: '10.9.*'}\n"
                         "    no_data: {intervals: 3}\n",
             T0);
    many_at(&f, "agent1", T0, 0, MANY, 0, true);
    many_at(&f, "agent1", T0 + M_MS, 0, MANY, 0, true);
    many_at(&f, "agent2", T0 + M_MS, 0, 10, 0, false);
    assert_int_equal(series_now(&f), MANY + 1 + 10);
    assert_int_equal(f.n, 0);
    /* the agents stop sending: the no_data rule still fires first */
    f.now = T0 + 4 * M_MS + 1;
    kvl_engine_tick(f.e);
    assert_int_equal(count(&f, "gone", KVL_ALERT_FIRING, 0), 1);
    assert_int_equal(series_now(&f), MANY + 1 + 10);
    /* a day without data: what has no active alert is forgotten, the no_data one kept */
    f.now = T0 + M_MS + DAY_MS;
    kvl_engine_tick(f.e);
    assert_int_equal(series_now(&f), MANY + 1 + 10); /* not yet a day */
    f.now = T0 + M_MS + DAY_MS + 10 * M_MS + 1;
    kvl_engine_tick(f.e);
    assert_int_equal(series_now(&f), 1);
    kvl_engine_stats_t st;
    kvl_engine_get_stats(f.e, &st);
    assert_int_equal(st.forgotten, MANY + 10);
    assert_int_equal(f.n, 1); /* nothing reported by forgetting */
    /* its data comes back: resolved; when it stops again, no_data fires again before any
     * forgetting, and keeps it */
    lost_at(&f, f.now, 0);
    assert_int_equal(count(&f, "gone", KVL_ALERT_RESOLVED, 0), 1);
    f.now += DAY_MS + 10 * M_MS + 1;
    kvl_engine_tick(f.e);
    assert_int_equal(count(&f, "gone", KVL_ALERT_FIRING, 0), 2);
    assert_int_equal(series_now(&f), 1);
    /* a forgotten series (and agent) that comes back starts afresh and is evaluated */
    many_at(&f, "agent1", f.now, 5, 3, 0, false);
    many_at(&f, "agent2", f.now + M_MS, 5, 3, 0, false);
    assert_int_equal(series_now(&f), 7);
    many_at(&f, "agent1", f.now + 2 * M_MS, 5, 3, 80, false);
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, 0), 3);
    /* ... and one with an active alert is never forgotten */
    f.now += 3 * DAY_MS;
    kvl_engine_tick(f.e);
    assert_int_equal(series_now(&f), 4);
    fx_stop(&f);

    /* at most max_series: the rest refused (counted), the batch still taken, the kept
     * series evaluated */
    g_max_series = 100;
    fx_start(&f,
             DISABLE_ALL "rules:\n"
                         "  - name: loss\n"
                         "    severity: major\n"
                         "    threshold: {value: lost_pct, above: 50}\n",
             T0);
    many_at(&f, "agent1", T0, 0, MANY, 0, false);
    assert_int_equal(series_now(&f), 100);
    kvl_engine_get_stats(f.e, &st);
    assert_int_equal(st.refused, MANY - 100);
    many_at(&f, "agent1", T0 + M_MS, 0, 10, 80, false);
    assert_int_equal(count(&f, "loss", KVL_ALERT_FIRING, 0), 10);
    /* forgotten ones make room */
    f.now = T0 + 2 * DAY_MS;
    kvl_engine_tick(f.e);
    assert_int_equal(series_now(&f), 10);
    many_at(&f, "agent1", f.now, 500, 90, 0, false);
    assert_int_equal(series_now(&f), 100);
    g_max_series = 0;
    fx_stop(&f);
}

static void test_builtin_rules_bind(void **state)
{
    (void)state;
    char err[256];
    kvl_rules_t *r = NULL;
    assert_int_equal(kvl_rules_load(NULL, &r, err, sizeof(err)), 0);
    kvl_engine_t *e = NULL;
    assert_int_equal(
        kvl_engine_new(NULL, &(kvl_engine_cfg_t){0}, on_alert, NULL, &e, err, sizeof(err)),
        KVL_EINVAL);
    fx_t f;
    fx_start(&f, "rules: []\n", T0 + M_MS);
    sv_t a[] = {{ID_IN_OCT, 0, false},  {ID_OUT_OCT, 0, false}, {ID_IN_ERR, 0, false},
                {ID_OUT_ERR, 0, false}, {ID_IN_UC, 0, false},   {ID_OUT_UC, 0, false},
                {ID_OPER, 1, false},    {ID_ADMIN, 1, false},   {ID_SPEED, 1e9, false}};
    batch_at(&f, T0, a, KVL_ARRAY_SIZE(a), false);
    kvl_engine_stats_t st;
    kvl_engine_get_stats(f.e, &st);
    /* interface_down, interface_utilisation, interface_errors */
    assert_int_equal(st.series, 1);
    assert_int_equal(st.bindings, 3);
    a[6].v = 2;
    batch_at(&f, T0 + M_MS, a, KVL_ARRAY_SIZE(a), false);
    assert_int_equal(count(&f, "interface_down", KVL_ALERT_FIRING, 0), 1);
    fx_stop(&f);
    kvl_rules_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_for_hysteresis),
        cmocka_unit_test(test_rate_counter_reset),
        cmocka_unit_test(test_rate_of_gauge),
        cmocka_unit_test(test_utilisation),
        cmocka_unit_test(test_no_data),
        cmocka_unit_test(test_event_fire_clear_hold),
        cmocka_unit_test(test_device_down_event_and_state),
        cmocka_unit_test(test_flapping),
        cmocka_unit_test(test_interface_down_at_first_sight),
        cmocka_unit_test(test_link_traps_drive_interface_state),
        cmocka_unit_test(test_late_backlog),
        cmocka_unit_test(test_restore),
        cmocka_unit_test(test_restore_pending),
        cmocka_unit_test(test_series_forgotten),
        cmocka_unit_test(test_agent_silent),
        cmocka_unit_test(test_redefined_id),
        cmocka_unit_test(test_collector_value),
        cmocka_unit_test(test_sink_calls),
        cmocka_unit_test(test_builtin_rules_bind),
        cmocka_unit_test(test_event_catch_all_skips_data),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
