/*
 * rule-eval.c — the rule engine's cost per sample (collector/alerts/engine.h).
 *
 *   build/tests/bench/kvl-rule-eval [--runs N] [--devices D] [--interfaces I] [--rules R]
 *
 * 100 rules (the built-in ones plus generated ones: some select every interface, some a
 * tenth of them, some a few by ifAlias, some nothing of this agent), one agent's batch of
 * D x I interfaces (default 50 x 49 = 2,450) with the 15 metrics of the if family, counters
 * moving as traffic does (a few interfaces busy, a few down) so rules pend, fire and
 * resolve. The first batch binds the rules to the series (timed apart); then N batches a
 * minute apart are timed one by one (the thread's CPU time, so that other work on a shared
 * machine counts less) through kvl_engine_batch, on one core. Prints the median and the
 * spread, then:
 *   RESULT eval_ns_per_sample=... rules=100 samples=... bind_ms=... alerts=...
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine.h"
#include "kvl.h"

static const char *const if_metrics[15] = {
    "in_octets",      "out_octets",    "in_ucast_pkts",  "out_ucast_pkts", "in_mcast_pkts",
    "out_mcast_pkts", "in_bcast_pkts", "out_bcast_pkts", "in_errors",      "out_errors",
    "in_discards",    "out_discards",  "oper_status",    "admin_status",   "speed_bps"};

typedef struct bench {
    kvl_series_def_t *defs; /* by id - 1 */
    kvl_label_t *labels;    /* 2 per interface */
    char **names;
    size_t n_ids;
    uint64_t changes;
} bench_t;

static const kvl_series_def_t *def_of(const void *table, uint32_t id)
{
    const bench_t *b = table;
    return id >= 1 && id <= b->n_ids ? &b->defs[id - 1] : NULL;
}

static const kvl_family_t *family_of(const void *table, const kvl_series_def_t *def)
{
    (void)table;
    (void)def;
    return NULL;
}

static void on_alert(void *ctx, const kvl_alert_t *a)
{
    (void)a;
    ((bench_t *)ctx)->changes++;
}

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The generated rules after the built-in ones, up to n rules in all. */
static char *rules_text(size_t n_builtin, size_t n)
{
    size_t cap = 256 + n * 256, used = 0;
    char *t = malloc(cap);
    if (t == NULL) {
        return NULL;
    }
    used += (size_t)snprintf(t + used, cap - used, n_builtin >= n ? "rules: []\n" : "rules:\n");
    for (size_t i = 0; n_builtin + i < n; i++) {
        const char *body;
        char buf[200];
        switch (i % 4) {
        case 0: /* every interface */
            snprintf(buf, sizeof(buf),
                     "select: {device: 'dev-*'}\n    threshold: {rate: in_errors, above: %zu}",
                     i + 1);
            break;
        case 1: /* a tenth of them */
            snprintf(buf, sizeof(buf),
                     "select: {interface: 'if-1*'}\n    threshold: {derived: utilisation_pct, "
                     "above: %zu, clear: %zu, for: 5m}",
                     50 + i % 40, 40 + i % 40);
            break;
        case 2: /* another site's */
            snprintf(buf, sizeof(buf),
                     "select: {site: 'other-*'}\n    threshold: {value: in_discards, above: %zu}",
                     i);
            break;
        default: /* a few, by ifAlias */
            snprintf(buf, sizeof(buf),
                     "select: {device: 'dev-00[0-4]', labels: {ifAlias: '*core*'}}\n"
                     "    state: oper_down_admin_up");
            break;
        }
        body = buf;
        used += (size_t)snprintf(t + used, cap - used,
                                 "  - name: gen_%zu\n    severity: minor\n    %s\n", i, body);
    }
    return t;
}

int main(int argc, char **argv)
{
    int runs = 21;
    size_t devices = 50, interfaces = 49, n_rules = 100;
    static const struct option opts[] = {{"runs", required_argument, NULL, 'r'},
                                         {"devices", required_argument, NULL, 'd'},
                                         {"interfaces", required_argument, NULL, 'i'},
                                         {"rules", required_argument, NULL, 'R'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (ch) {
        case 'r':
            runs = atoi(optarg);
            break;
        case 'd':
            devices = (size_t)atol(optarg);
            break;
        case 'i':
            interfaces = (size_t)atol(optarg);
            break;
        case 'R':
            n_rules = (size_t)atol(optarg);
            break;
        default:
            fprintf(stderr, "usage: %s [--runs N] [--devices D] [--interfaces I] [--rules R]\n",
                    argv[0]);
            return 2;
        }
    }
    if (runs < 1 || runs > 1000 || devices < 1 || devices > 10000 || interfaces < 1 ||
        interfaces > 1000 || n_rules < 1 || n_rules > 10000) {
        fprintf(stderr, "rule-eval: --runs 1-1000, --devices 1-10000, --interfaces 1-1000, "
                        "--rules 1-10000\n");
        return 2;
    }
    char err[1024];
    kvl_rules_t *builtin = NULL, *rules = NULL;
    if (kvl_rules_load(NULL, &builtin, err, sizeof(err)) != 0) {
        fprintf(stderr, "rule-eval: %s\n", err);
        return 1;
    }
    char *text = rules_text(builtin->n, n_rules);
    if (text == NULL || kvl_rules_parse("bench.yaml", text, &rules, err, sizeof(err)) != 0) {
        fprintf(stderr, "rule-eval: %s\n", text ? err : "out of memory");
        return 1;
    }
    free(text);

    bench_t b = {0};
    size_t n_if = devices * interfaces;
    b.n_ids = n_if * 15;
    b.defs = calloc(b.n_ids, sizeof(*b.defs));
    b.labels = calloc(n_if * 2, sizeof(*b.labels));
    b.names = calloc(n_if * 3 + devices, sizeof(*b.names));
    uint64_t *values = calloc(b.n_ids, sizeof(*values));
    uint32_t *ids = calloc(b.n_ids, sizeof(*ids));
    if (b.defs == NULL || b.labels == NULL || b.names == NULL || values == NULL || ids == NULL) {
        fprintf(stderr, "rule-eval: out of memory\n");
        return 1;
    }
    size_t nn = 0;
    for (size_t d = 0; d < devices; d++) {
        char dev[32];
        snprintf(dev, sizeof(dev), "dev-%03zu", d);
        char *devname = b.names[nn++] = strdup(dev);
        for (size_t i = 0; i < interfaces; i++) {
            size_t k = d * interfaces + i;
            char name[32], alias[48];
            snprintf(name, sizeof(name), "if-%zu", i);
            snprintf(alias, sizeof(alias), i % 7 == 0 ? "core uplink %zu" : "access %zu", i);
            char *ifname = b.names[nn++] = strdup(name);
            b.labels[2 * k] = (kvl_label_t){"ifName", ifname};
            b.labels[2 * k + 1] = (kvl_label_t){"ifAlias", b.names[nn++] = strdup(alias)};
            for (size_t m = 0; m < 15; m++) {
                uint32_t id = (uint32_t)(k * 15 + m + 1);
                b.defs[id - 1] = (kvl_series_def_t){
                    .id = id,
                    .device = devname,
                    .scope = KVL_SCOPE_INTERFACE,
                    .instance = ifname,
                    .metric = if_metrics[m],
                    .kind = m < 12 ? KVL_KIND_COUNTER : KVL_KIND_GAUGE,
                    .interval_s = 60,
                    .labels = &b.labels[2 * k],
                    .n_labels = 2,
                };
                ids[id - 1] = id;
            }
        }
    }
    kvl_engine_t *e = NULL;
    kvl_engine_cfg_t cfg = {.rules = rules};
    if (kvl_engine_new(NULL, &cfg, on_alert, &b, &e, err, sizeof(err)) != 0) {
        fprintf(stderr, "rule-eval: %s\n", err);
        return 1;
    }
    kvl_sink_defs_t sdefs = {.table = &b, .def = def_of, .family = family_of};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t t0 = (int64_t)ts.tv_sec * 1000 - (int64_t)(runs + 1) * 60000;
    double *ns = calloc((size_t)runs, sizeof(*ns));
    double bind_ms = 0;
    for (int run = 0; run <= runs; run++) {
        /* traffic: 1 Gbit/s links, every 10th interface near full, a few erroring, every
         * 50th going down and up on alternate minutes */
        for (size_t k = 0; k < n_if; k++) {
            uint64_t *v = &values[k * 15];
            double load = k % 10 == 0 ? (run % 3 ? 0.95 : 0.2) : 0.05;
            v[0] += (uint64_t)(load * 125000000.0 * 60);
            v[1] += (uint64_t)(load * 0.5 * 125000000.0 * 60);
            for (size_t m = 2; m < 8; m++) {
                v[m] += 1000 + k;
            }
            v[8] += k % 13 == 0 ? (uint64_t)(run * 50) : 0;
            v[12] = k % 50 == 0 && run % 2 ? 2 : 1;
            v[13] = 1;
            v[14] = 1000000000;
        }
        kvl_group_t g = {.time_ms = t0 + run * 60000,
                         .ids = ids,
                         .n_ids = b.n_ids,
                         .values = values,
                         .n_values = b.n_ids};
        kvl_batch_t bt = {.seq = (uint64_t)run + 1, .groups = &g, .n_groups = 1};
        kvl_sink_batch_t sb = {
            .agent = "agent-bench", .site = "blk-bench", .defs = &sdefs, .batch = &bt};
        int64_t a = cpu_ns();
        if (kvl_engine_batch(e, &sb) != 0) {
            fprintf(stderr, "rule-eval: the engine refused a batch\n");
            return 1;
        }
        int64_t z = cpu_ns();
        if (run == 0) {
            bind_ms = (double)(z - a) / 1e6;
        } else {
            ns[run - 1] = (double)(z - a) / (double)b.n_ids;
        }
    }
    kvl_engine_stats_t st;
    kvl_engine_get_stats(e, &st);
    qsort(ns, (size_t)runs, sizeof(*ns), cmp_dbl);
    double median = ns[runs / 2];
    printf("rule-eval: %zu rules, %zu series, %llu bindings, %zu samples a batch, %d batches: "
           "min %.1f, median %.1f, max %.1f ns per sample; first batch (binding) %.1f ms\n",
           rules->n, (size_t)st.series, (unsigned long long)st.bindings, b.n_ids, runs, ns[0],
           median, ns[runs - 1], bind_ms);
    printf("RESULT eval_ns_per_sample=%.1f rules=%zu samples=%zu bind_ms=%.1f alerts=%llu\n",
           median, rules->n, b.n_ids, bind_ms, (unsigned long long)b.changes);
    kvl_engine_free(e);
    kvl_rules_free(rules);
    kvl_rules_free(builtin);
    for (size_t i = 0; i < nn; i++) {
        free(b.names[i]);
    }
    free(b.names);
    free(b.labels);
    free(b.defs);
    free(values);
    free(ids);
    free(ns);
    return 0;
}
