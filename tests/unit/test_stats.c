/*
 * test_stats.c — agent/stats.c against link-time fakes of what it reads and writes: the
 * poller's and the outbox's getters return set figures, and the fake batcher records the
 * series registered and the samples of each group; the registry's count of refused names
 * comes from a real registry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <string.h>
#include <uv.h>

#include "batcher.h"
#include "kvl.h"
#include "log.h"
#include "outbox.h"
#include "poller.h"
#include "registry.h"
#include "stats.h"

/* --- fakes ------------------------------------------------------------------------------- */

static kvl_poller_stats_t poller_figures;
static kvl_outbox_stats_t outbox_figures;

void kvl_poller_stats(kvl_poller_t *p, kvl_poller_stats_t *st)
{
    KVL_UNUSED(p);
    *st = poller_figures;
    poller_figures.any_poll = false; /* a new period */
}

void kvl_outbox_stats(const kvl_outbox_t *o, kvl_outbox_stats_t *st)
{
    KVL_UNUSED(o);
    *st = outbox_figures;
}

#define MAX_SERIES 32
static struct {
    char metric[32];
    kvl_scope_t scope;
    kvl_kind_t kind;
    bool real;
    char device[32];
    uint32_t interval_s;
} series[MAX_SERIES];
static size_t n_series;

typedef struct sample {
    uint32_t id;
    bool unknown, is_real;
    uint64_t v;
    double r;
} sample_t;
static sample_t samples[256];
static size_t n_samples, n_groups;

uint32_t kvl_batcher_series(kvl_batcher_t *b, const kvl_series_key_t *k)
{
    KVL_UNUSED(b);
    assert_true(n_series < MAX_SERIES);
    snprintf(series[n_series].metric, sizeof(series[n_series].metric), "%s", k->metric);
    snprintf(series[n_series].device, sizeof(series[n_series].device), "%s", k->device);
    series[n_series].scope = k->scope;
    series[n_series].kind = k->kind;
    series[n_series].real = k->real;
    series[n_series].interval_s = k->interval_s;
    return (uint32_t)++n_series;
}

void kvl_batcher_group_begin(kvl_batcher_t *b, int64_t time_ms)
{
    KVL_UNUSED(b);
    KVL_UNUSED(time_ms);
    n_groups++;
}

static void add(sample_t s)
{
    assert_true(n_samples < KVL_ARRAY_SIZE(samples));
    samples[n_samples++] = s;
}

void kvl_batcher_add(kvl_batcher_t *b, uint32_t id, uint64_t value)
{
    KVL_UNUSED(b);
    add((sample_t){.id = id, .v = value});
}

void kvl_batcher_add_real(kvl_batcher_t *b, uint32_t id, double value)
{
    KVL_UNUSED(b);
    add((sample_t){.id = id, .is_real = true, .r = value});
}

void kvl_batcher_add_unknown(kvl_batcher_t *b, uint32_t id)
{
    KVL_UNUSED(b);
    add((sample_t){.id = id, .unknown = true});
}

void kvl_batcher_group_end(kvl_batcher_t *b)
{
    KVL_UNUSED(b);
}

/* The last sample of a metric, or NULL. */
static const sample_t *last(const char *metric)
{
    for (size_t i = n_samples; i > 0; i--) {
        const sample_t *s = &samples[i - 1];
        if (strcmp(series[s->id - 1].metric, metric) == 0) {
            return s;
        }
    }
    return NULL;
}

static void reset(void)
{
    n_series = n_samples = n_groups = 0;
    memset(&poller_figures, 0, sizeof(poller_figures));
    memset(&outbox_figures, 0, sizeof(outbox_figures));
}

/* Runs the loop until `groups` groups went out. */
static void run_groups(uv_loop_t *loop, size_t groups)
{
    uint64_t end = uv_now(loop) + 5000;
    while (n_groups < groups && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
    }
    assert_int_equal(n_groups, groups);
}

/* --- tests ------------------------------------------------------------------------------- */

static int dummy; /* the fakes keep their state in statics */

static void test_every_figure(void **state)
{
    KVL_UNUSED(state);
    reset();
    uv_loop_t loop;
    uv_loop_init(&loop);
    poller_figures = (kvl_poller_stats_t){.requests = 10,
                                          .timeouts = 2,
                                          .varbinds = 300,
                                          .errors = 1,
                                          .devices = 5,
                                          .devices_down = 1,
                                          .inflight = 3,
                                          .any_poll = true,
                                          .cycle_max_ms = 12.5,
                                          .lag_max_ms = 0.25};
    outbox_figures = (kvl_outbox_stats_t){.bytes = 4096, .waiting = 7, .dropped = 4, .lost = 2};
    kvl_stats_opts_t o = {.agent_id = "a1",
                          .batcher = (kvl_batcher_t *)&dummy,
                          .poller = (kvl_poller_t *)&dummy,
                          .outbox = (kvl_outbox_t *)&dummy,
                          .period_ms = 50};
    kvl_stats_t *s = NULL;
    char err[100];
    assert_int_equal(kvl_stats_new(&loop, &o, &s, err, sizeof(err)), 0);
    run_groups(&loop, 1);

    static const struct {
        const char *metric;
        kvl_kind_t kind;
        bool real;
        uint64_t v;
    } want[] = {
        {"snmp_requests", KVL_KIND_COUNTER, false, 10},
        {"snmp_timeouts", KVL_KIND_COUNTER, false, 2},
        {"snmp_varbinds", KVL_KIND_COUNTER, false, 300},
        {"snmp_errors", KVL_KIND_COUNTER, false, 1},
        {"devices", KVL_KIND_GAUGE, false, 5},
        {"devices_down", KVL_KIND_GAUGE, false, 1},
        {"inflight", KVL_KIND_GAUGE, false, 3},
        {"cycle_ms", KVL_KIND_GAUGE, true, 0},
        {"lag_ms", KVL_KIND_GAUGE, true, 0},
        {"spool_bytes", KVL_KIND_GAUGE, false, 4096},
        {"spool_waiting", KVL_KIND_GAUGE, false, 7},
        {"spool_dropped", KVL_KIND_GAUGE, false, 4},
        {"spool_lost", KVL_KIND_GAUGE, false, 2},
    };
    assert_int_equal(n_series, KVL_ARRAY_SIZE(want));
    for (size_t i = 0; i < KVL_ARRAY_SIZE(want); i++) {
        assert_string_equal(series[i].metric, want[i].metric); /* registered in this order */
        assert_string_equal(series[i].device, "a1");
        assert_int_equal(series[i].scope, KVL_SCOPE_AGENT);
        assert_int_equal(series[i].kind, want[i].kind);
        assert_int_equal(series[i].real, want[i].real);
        assert_int_equal(series[i].interval_s, 1); /* a 50 ms period: at least 1 s */
        const sample_t *x = last(want[i].metric);
        assert_non_null(x);
        if (!want[i].real) {
            assert_false(x->unknown);
            assert_int_equal(x->v, want[i].v);
        }
    }
    assert_true(last("cycle_ms")->is_real && last("cycle_ms")->r == 12.5);
    assert_true(last("lag_ms")->is_real && last("lag_ms")->r == 0.25);

    /* No poll ended in the next period: its maxima are unknown; no series registered again. */
    run_groups(&loop, 2);
    assert_int_equal(n_series, KVL_ARRAY_SIZE(want));
    assert_true(last("cycle_ms")->unknown);
    assert_true(last("lag_ms")->unknown);
    assert_int_equal(last("snmp_requests")->v, 10);

    kvl_stats_free(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Without an outbox (no spool figures) only the poller's series are reported. */
static void test_without_outbox(void **state)
{
    KVL_UNUSED(state);
    reset();
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_stats_opts_t o = {.agent_id = "a1",
                          .batcher = (kvl_batcher_t *)&dummy,
                          .poller = (kvl_poller_t *)&dummy,
                          .period_ms = 50};
    kvl_stats_t *s = NULL;
    char err[100];
    assert_int_equal(kvl_stats_new(&loop, &o, &s, err, sizeof(err)), 0);
    run_groups(&loop, 1);
    assert_int_equal(n_series, 9);
    assert_null(last("spool_bytes"));
    kvl_stats_free(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* With the series registry: names_refused, the names it refused since the start. */
static void test_names_refused(void **state)
{
    KVL_UNUSED(state);
    reset();
    kvl_log_level = KVL_LOG_LEVEL_ERROR; /* the registry's warning is not this test's */
    kvl_registry_t *r = NULL;
    char err[100];
    assert_int_equal(kvl_registry_new(&r, err, sizeof(err)), 0);
    char name[301];
    memset(name, 'x', 300);
    name[300] = '\0';
    kvl_series_key_t k = {.device = "sw1",
                          .scope = KVL_SCOPE_INTERFACE,
                          .instance = name,
                          .metric = "in_octets",
                          .kind = KVL_KIND_COUNTER,
                          .interval_s = 60};
    assert_int_equal(kvl_registry_series(r, &k), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_stats_opts_t o = {.agent_id = "a1",
                          .batcher = (kvl_batcher_t *)&dummy,
                          .poller = (kvl_poller_t *)&dummy,
                          .registry = r,
                          .period_ms = 50};
    kvl_stats_t *s = NULL;
    assert_int_equal(kvl_stats_new(&loop, &o, &s, err, sizeof(err)), 0);
    run_groups(&loop, 1);
    assert_int_equal(n_series, 10);
    assert_non_null(last("names_refused"));
    assert_int_equal(last("names_refused")->v, 1);
    assert_int_equal(series[9].kind, KVL_KIND_GAUGE);
    name[0] = 'y'; /* another one */
    k.instance = name;
    assert_int_equal(kvl_registry_series(r, &k), 0);
    run_groups(&loop, 2);
    assert_int_equal(last("names_refused")->v, 2);
    kvl_stats_free(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    kvl_registry_free(r);
}

/* With the trap receiver's counters (trap_rx.h): ten counters, read at every tick. */
static void test_trap_counters(void **state)
{
    KVL_UNUSED(state);
    reset();
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_trap_rx_stats_t traps = {.received = 20,
                                 .v1 = 3,
                                 .v2c = 5,
                                 .v3 = 2,
                                 .informs_answered = 4,
                                 .decode_errors = 1,
                                 .unknown_source = 6,
                                 .bad_community = 7,
                                 .v3_auth_failures = 8,
                                 .rate_limited = 9};
    kvl_stats_opts_t o = {
        .agent_id = "a1", .batcher = (kvl_batcher_t *)&dummy, .traps = &traps, .period_ms = 50};
    kvl_stats_t *s = NULL;
    char err[100];
    assert_int_equal(kvl_stats_new(&loop, &o, &s, err, sizeof(err)), 0);
    run_groups(&loop, 1);
    static const struct {
        const char *metric;
        uint64_t v;
    } want[] = {
        {"traps_received", 20},    {"traps_v1", 3},
        {"traps_v2c", 5},          {"traps_v3", 2},
        {"traps_informs", 4},      {"traps_decode_err", 1},
        {"traps_unknown_src", 6},  {"traps_bad_community", 7},
        {"traps_v3_auth_fail", 8}, {"traps_rate_limited", 9},
    };
    assert_int_equal(n_series, KVL_ARRAY_SIZE(want));
    for (size_t i = 0; i < KVL_ARRAY_SIZE(want); i++) {
        assert_string_equal(series[i].metric, want[i].metric);
        assert_int_equal(series[i].kind, KVL_KIND_COUNTER);
        assert_int_equal(series[i].scope, KVL_SCOPE_AGENT);
        assert_true(strlen(want[i].metric) <= 19); /* an RRD data source name */
        assert_int_equal(last(want[i].metric)->v, want[i].v);
    }
    traps.received = 21; /* read again at the next tick */
    run_groups(&loop, 2);
    assert_int_equal(last("traps_received")->v, 21);
    kvl_stats_free(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_figure),
        cmocka_unit_test(test_without_outbox),
        cmocka_unit_test(test_names_refused),
        cmocka_unit_test(test_trap_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
