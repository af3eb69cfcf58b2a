/*
 * fuzz_engine.c — libFuzzer target for the rule engine (collector/alerts/engine.h): the
 * input is a program of operations on one engine (samples of an interface, a device and a
 * probe target at moving times, live or replayed; events, live or late, at any time; timer
 * ticks; the collector's own figure; a restart that hands the firing alerts back through
 * kvl_engine_restore), run with the built-in rules and a few more (for:, rates, no_data,
 * flapping).
 *
 * Beyond "no crash, no leak, no sanitizer report", what the engine promises the alert book,
 * checked on every change it reports, across restarts: an alert never pages twice (no
 * second non-late firing before its resolution); a resolution follows a pending or firing
 * of the same alert; the resolution of an alert that paged is not late; a late firing is
 * history, resolved at once and late; an alert ends no earlier than it starts. A broken
 * promise calls abort().
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "fuzz_check.h"
#include "kvl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T0 1800000000000LL
#define MAX_TRACKED 256

enum { ID_IN_ERR = 1, ID_OPER, ID_ADMIN, ID_REACH, ID_REASON, ID_LOST, N_IDS };

static const kvl_label_t if_labels[] = {{"ifAlias", "uplink"}};
static const kvl_series_def_t defs[N_IDS] = {
    [ID_IN_ERR] = {.id = ID_IN_ERR,
                   .device = "r1",
                   .scope = KVL_SCOPE_INTERFACE,
                   .instance = "Gi0/1",
                   .metric = "in_errors",
                   .kind = KVL_KIND_COUNTER,
                   .interval_s = 60,
                   .labels = if_labels,
                   .n_labels = 1},
    [ID_OPER] = {.id = ID_OPER,
                 .device = "r1",
                 .scope = KVL_SCOPE_INTERFACE,
                 .instance = "Gi0/1",
                 .metric = "oper_status",
                 .kind = KVL_KIND_GAUGE,
                 .interval_s = 60,
                 .labels = if_labels,
                 .n_labels = 1},
    [ID_ADMIN] = {.id = ID_ADMIN,
                  .device = "r1",
                  .scope = KVL_SCOPE_INTERFACE,
                  .instance = "Gi0/1",
                  .metric = "admin_status",
                  .kind = KVL_KIND_GAUGE,
                  .interval_s = 60,
                  .labels = if_labels,
                  .n_labels = 1},
    [ID_REACH] = {.id = ID_REACH,
                  .device = "r1",
                  .scope = KVL_SCOPE_DEVICE,
                  .instance = "",
                  .metric = "reachable",
                  .kind = KVL_KIND_GAUGE,
                  .interval_s = 60},
    [ID_REASON] = {.id = ID_REASON,
                   .device = "r1",
                   .scope = KVL_SCOPE_DEVICE,
                   .instance = "",
                   .metric = "down_reason",
                   .kind = KVL_KIND_GAUGE,
                   .interval_s = 60},
    [ID_LOST] = {.id = ID_LOST,
                 .device = "a1",
                 .scope = KVL_SCOPE_LINK,
                 .instance = "10.0.0.9",
                 .metric = "lost_pct",
                 .kind = KVL_KIND_GAUGE,
                 .real = true,
                 .interval_s = 60},
};

static const kvl_series_def_t *def_of(const void *table, uint32_t id)
{
    (void)table;
    return id > 0 && id < N_IDS ? &defs[id] : NULL;
}

static const kvl_family_t *family_of(const void *table, const kvl_series_def_t *def)
{
    (void)table;
    (void)def;
    return NULL;
}

static const kvl_sink_defs_t sink_defs = {.def = def_of, .family = family_of};

static const char extra_rules[] =
    "rules:\n"
    "  - name: loss_for\n"
    "    severity: major\n"
    "    threshold: {value: lost_pct, above: 50, clear: 20, for: 2m}\n"
    "  - name: errs\n"
    "    severity: minor\n"
    "    threshold: {rate: in_errors, above: 1, clear: 0.5}\n"
    "  - name: gone\n"
    "    severity: warning\n"
    "    no_data: {intervals: 2}\n"
    "  - name: flappy\n"
    "    severity: minor\n"
    "    state: oper_down_admin_up\n"
    "    flapping: {changes: 2, window: 5m, stable: 3m}\n"
    "  - name: cold\n"
    "    severity: info\n"
    "    event: {name: coldStart, hold: 2m}\n";

/* What the book would know of each alert. */
typedef struct tracked {
    uint64_t fp;
    int open;            /* 0 closed, 1 pending, 2 firing (paged), 3 firing late (history) */
    kvl_alert_t *firing; /* the paged firing, to hand back at a restart */
} tracked_t;

typedef struct run {
    kvl_rules_t *rules;
    kvl_engine_t *e;
    int64_t now;
    tracked_t t[MAX_TRACKED];
    size_t n;
} run_t;

static int64_t run_now(void *ctx)
{
    return ((run_t *)ctx)->now;
}

static tracked_t *track(run_t *r, uint64_t fp)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->t[i].fp == fp) {
            return &r->t[i];
        }
    }
    if (r->n == MAX_TRACKED) {
        return NULL;
    }
    r->t[r->n] = (tracked_t){.fp = fp};
    return &r->t[r->n++];
}

static void on_alert(void *ctx, const kvl_alert_t *a)
{
    run_t *r = ctx;
    tracked_t *t = track(r, a->fingerprint);
    if (t == NULL) {
        return;
    }
    CHECK(a->fingerprint == kvl_alert_fingerprint(a->labels, a->n_labels));
    switch (a->status) {
    case KVL_ALERT_PENDING:
        CHECK(!a->late);
        CHECK(t->open == 0);
        t->open = 1;
        break;
    case KVL_ALERT_FIRING:
        CHECK(t->open == 0 || t->open == 1); /* never twice */
        t->open = a->late ? 3 : 2;
        if (!a->late) {
            kvl_alert_free(t->firing);
            t->firing = kvl_alert_dup(a);
            CHECK(t->firing != NULL);
        }
        break;
    case KVL_ALERT_RESOLVED:
        CHECK(t->open != 0);
        CHECK(t->open != 2 || !a->late); /* a page's resolution is sent */
        CHECK(t->open != 3 || a->late);  /* history stays history */
        CHECK(a->ends_at_ms >= a->starts_at_ms);
        t->open = 0;
        kvl_alert_free(t->firing);
        t->firing = NULL;
        break;
    default:
        CHECK(0);
    }
}

static void engine_start(run_t *r)
{
    char err[256];
    kvl_engine_cfg_t cfg = {.rules = r->rules, .now_ms = run_now, .now_ctx = r};
    CHECK(kvl_engine_new(NULL, &cfg, on_alert, r, &r->e, err, sizeof(err)) == 0);
}

/* The book hands back what is firing; pending alerts are forgotten by a restart. */
static void restart(run_t *r)
{
    kvl_engine_free(r->e);
    engine_start(r);
    for (size_t i = 0; i < r->n; i++) {
        if (r->t[i].open == 1 || r->t[i].open == 3) {
            r->t[i].open = 0;
        }
        if (r->t[i].open == 2) {
            CHECK(kvl_engine_restore(r->e, r->t[i].firing) == 0);
        }
    }
}

static void sample(run_t *r, uint32_t id, uint8_t v, int64_t t, bool replayed)
{
    uint32_t ids[1] = {id};
    uint64_t values[1] = {v};
    double reals[1] = {(double)v};
    uint32_t unknown[1] = {0};
    bool unk = v == 255;
    kvl_group_t g = {
        .time_ms = t, .ids = ids, .n_ids = 1, .unknown = unknown, .n_unknown = unk ? 1 : 0};
    if (!unk && defs[id].real) {
        g.reals = reals;
        g.n_reals = 1;
    } else if (!unk) {
        g.values = values;
        g.n_values = 1;
    }
    kvl_batch_t b = {.seq = 1, .groups = &g, .n_groups = 1};
    kvl_sink_batch_t sb = {
        .agent = "a1", .site = "s1", .defs = &sink_defs, .batch = &b, .replayed = replayed};
    CHECK(kvl_engine_batch(r->e, &sb) == 0);
}

static void event(run_t *r, uint8_t kind, uint8_t arg, int64_t t, bool late)
{
    static const char *const kinds[] = {"linkDown",    "linkUp",     "device_down", "device_up",
                                        "target_down", "target_up",  "agent_lost",  "agent_back",
                                        "coldStart",   "bgpWhatever"};
    kvl_label_t fields[] = {{"ifName", arg & 1 ? "Gi0/1" : "Gi0/2"},
                            {"target", arg & 2 ? "10.0.0.9" : "10.0.0.8"},
                            {"reason", "timeout"},
                            {"ifAdminStatus", arg & 4 ? "down" : "up"}};
    kvl_event_t ev = {.time_ms = t,
                      .device = arg & 8 ? "r1" : "a1",
                      .kind = kinds[kind % KVL_ARRAY_SIZE(kinds)],
                      .text = "x",
                      .fields = fields,
                      .n_fields = (size_t)(arg >> 4) % 5};
    kvl_sink_event_t se = {
        .agent = "a1", .site = "s1", .event = &ev, .late = late, .replayed = arg & 0x80};
    kvl_engine_event(r->e, &se);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static kvl_rules_t *rules;
    if (rules == NULL) {
        char err[512];
        CHECK(kvl_rules_parse("f.yaml", extra_rules, &rules, err, sizeof(err)) == 0);
    }
    run_t *r = calloc(1, sizeof(*r));
    CHECK(r != NULL);
    r->rules = rules;
    r->now = T0;
    engine_start(r);
    int64_t clock = T0; /* the agent's measurement clock */
    for (size_t i = 0; i + 3 <= size && i < 3 * 400; i += 3) {
        uint8_t op = data[i], a = data[i + 1], b = data[i + 2];
        switch (op % 6) {
        case 0: /* a sample, the clock moving on (or back: an old instant) */
            clock += (int64_t)(op >> 3) * 5000 - 20000;
            sample(r, 1 + a % (N_IDS - 1), b, clock, op & 4);
            break;
        case 1: /* an event, maybe old */
            event(r, a, b, clock - (int64_t)(op >> 4) * 30000, op & 8);
            break;
        case 2: /* time passes at the collector; the timer runs */
            r->now += (int64_t)a * 1000;
            clock += (int64_t)b * 1000;
            kvl_engine_tick(r->e);
            break;
        case 3: /* the collector's clock and the agent's apart: a backlog */
            r->now = clock + (int64_t)a * 10000;
            break;
        case 4:
            kvl_engine_collector_value(r->e, "c1", "journal_used_pct", b, r->now);
            break;
        default:
            restart(r);
            break;
        }
    }
    kvl_engine_free(r->e);
    for (size_t i = 0; i < r->n; i++) {
        kvl_alert_free(r->t[i].firing);
    }
    free(r);
    return 0;
}
