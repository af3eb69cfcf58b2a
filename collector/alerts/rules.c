/*
 * rules.c — the alert rules file: field tables, checks and the built-in rules (see rules.h).
 *
 * Files are read with common/cfg.c, so every error names file:line:column. A rule is
 * parsed into a local kvl_rule_t and appended once complete; names are checked against
 * the rules already read (from every file) so a duplicate names both places. The built-in
 * rules are parsed from kvl_rules_defaults() by the same code at every load, then merged:
 * those named by `disable:` are left out, those a user rule names are replaced in place.
 * The metrics a rule may name are the agent's built-in families, listed once in
 * known_metrics below.
 */
#include "rules.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cfg.h"
#include "kvl.h"
#include "wire.h"

#define DEFAULTS_NAME "<defaults>"
#define NAME_MAX_LEN 100
#define DAY_MS (86400LL * 1000)

/* --- what a rule may name ---------------------------------------------------------------- */

/* Every metric of the agent's built-in families (agent/snmp/poller.c, agent/probe/prober.c,
 * agent/stats.c, agent/snmp/snmp_config.c's built-in groups) and the collector's own. */
static const struct {
    const char *family;
    const char *metric;
} known_metrics[] = {
    {"if", "in_octets"},
    {"if", "out_octets"},
    {"if", "in_ucast_pkts"},
    {"if", "out_ucast_pkts"},
    {"if", "in_mcast_pkts"},
    {"if", "out_mcast_pkts"},
    {"if", "in_bcast_pkts"},
    {"if", "out_bcast_pkts"},
    {"if", "in_errors"},
    {"if", "out_errors"},
    {"if", "in_discards"},
    {"if", "out_discards"},
    {"if", "oper_status"},
    {"if", "admin_status"},
    {"if", "speed_bps"},
    {"device", "reachable"},
    {"device", "down_reason"},
    {"device", "uptime_s"},
    {"device", "response_ms"},
    {"device", "interfaces"},
    {"link", "sent"},
    {"link", "received"},
    {"link", "lost_pct"},
    {"link", "loss_burst"},
    {"link", "duplicates"},
    {"link", "reordered"},
    {"link", "rtt_min_ms"},
    {"link", "rtt_median_ms"},
    {"link", "rtt_mean_ms"},
    {"link", "rtt_max_ms"},
    {"link", "rtt_stddev_ms"},
    {"link", "jitter_ms"},
    {"link", "mos"},
    {"link", "rtt_p10_ms"},
    {"link", "rtt_p25_ms"},
    {"link", "rtt_p75_ms"},
    {"link", "rtt_p90_ms"},
    {"stamp", "owd_fwd_min_ms"},
    {"stamp", "owd_fwd_median_ms"},
    {"stamp", "owd_fwd_max_ms"},
    {"stamp", "owd_bwd_min_ms"},
    {"stamp", "owd_bwd_median_ms"},
    {"stamp", "owd_bwd_max_ms"},
    {"stamp", "clock_sync"},
    {"stamp", "clock_err_ms"},
    {"tcp", "refused"},
    {"tcp", "connect_min_ms"},
    {"tcp", "connect_median_ms"},
    {"tcp", "connect_mean_ms"},
    {"tcp", "connect_max_ms"},
    {"tcp", "connect_stddev_ms"},
    {"http", "status"},
    {"http", "bad_status"},
    {"http", "total_min_ms"},
    {"http", "total_median_ms"},
    {"http", "total_max_ms"},
    {"http", "ttfb_median_ms"},
    {"http", "cert_days"},
    {"agent", "snmp_requests"},
    {"agent", "snmp_timeouts"},
    {"agent", "snmp_varbinds"},
    {"agent", "snmp_errors"},
    {"agent", "devices"},
    {"agent", "devices_down"},
    {"agent", "inflight"},
    {"agent", "cycle_ms"},
    {"agent", "lag_ms"},
    {"agent", "spool_bytes"},
    {"agent", "spool_waiting"},
    {"agent", "spool_dropped"},
    {"agent", "names_refused"},
    {"agent", "spool_lost"},
    {"agent", "traps_received"},
    {"agent", "traps_v1"},
    {"agent", "traps_v2c"},
    {"agent", "traps_v3"},
    {"agent", "traps_informs"},
    {"agent", "traps_decode_err"},
    {"agent", "traps_unknown_src"},
    {"agent", "traps_bad_community"},
    {"agent", "traps_v3_auth_fail"},
    {"agent", "traps_rate_limited"},
    {"hr-cpu", "load"},
    {"hr-storage", "size_bytes"},
    {"hr-storage", "used_bytes"},
    {"hr-storage", "alloc_failures"},
    {"hr-system", "processes"},
    {"hr-system", "users"},
    {"hr-system", "memory_bytes"},
    {"ucd", "load1"},
    {"ucd", "load5"},
    {"ucd", "load15"},
    {"ucd", "mem_total_bytes"},
    {"ucd", "mem_avail_bytes"},
    {"ucd", "mem_buffer_bytes"},
    {"ucd", "mem_cached_bytes"},
    {"ucd", "swap_total_bytes"},
    {"ucd", "swap_avail_bytes"},
    {"ucd", "cpu_user"},
    {"ucd", "cpu_system"},
    {"ucd", "cpu_idle"},
    {"ucd", "cpu_wait"},
    {"collector", "journal_used_pct"},
};

/* Labels every alert carries; a summary may name them and a rule may not set them. */
static const char *const alert_labels[] = {"site",     "device", "interface", "target", "rule",
                                           "severity", "value",  "threshold", "alias",  NULL};

static const char *const severity_names[] = {"critical", "major", "minor", "warning", "info", NULL};
static const char *const derived_names[] = {"utilisation_pct", "error_ratio", "loss_pct",
                                            "rtt_ms",          "mos",         "cert_days",
                                            "http_status",     NULL};
static const char *const state_names[] = {"oper_down_admin_up", "device_unreachable",
                                          "agent_silent", NULL};

static const char defaults_yaml[] =
    "# kaaval's built-in alert rules (collector/alerts/rules.c), in the rules file's language.\n"
    "rules:\n"
    "  - name: device_down\n"
    "    severity: critical\n"
    "    state: device_unreachable\n"
    "    summary: \"{{device}} at {{site}} does not answer\"\n"
    "  - name: interface_down\n"
    "    severity: major\n"
    "    state: oper_down_admin_up\n"
    "    flapping: {changes: 6, window: 10m, stable: 10m}\n"
    "    summary: \"{{interface}} ({{alias}}) on {{device}} is down while admin up\"\n"
    "  - name: interface_utilisation\n"
    "    severity: warning\n"
    "    threshold: {derived: utilisation_pct, above: 80, clear: 70, for: 15m}\n"
    "    summary: \"{{interface}} on {{device}} at {{value}} % (above {{threshold}} %)\"\n"
    "  - name: interface_errors\n"
    "    severity: minor\n"
    "    threshold: {derived: error_ratio, above: 1, clear: 0.5, for: 10m}\n"
    "    summary: \"{{interface}} on {{device}}: {{value}} % errors\"\n"
    "  - name: link_loss\n"
    "    severity: major\n"
    "    threshold: {derived: loss_pct, above: 2, clear: 1, for: 5m}\n"
    "    summary: \"{{target}} from {{site}}: {{value}} % loss\"\n"
    "  - name: link_down\n"
    "    severity: critical\n"
    "    event: {name: target_down}\n"
    "    summary: \"{{target}} from {{site}}: link down (probes lost)\"\n"
    "  - name: agent_lost\n"
    "    severity: critical\n"
    "    event: {name: agent_lost}\n"
    "    summary: \"agent of {{site}} lost: no heartbeat\"\n"
    "  - name: mos_low\n"
    "    severity: minor\n"
    "    threshold: {derived: mos, below: 3.6, clear: 3.8, for: 5m}\n"
    "    summary: \"{{target}} from {{site}}: MOS {{value}}\"\n"
    "  - name: certificate_expiring\n"
    "    severity: warning\n"
    "    threshold: {derived: cert_days, below: 14, clear: 15}\n"
    "    summary: \"{{target}}: certificate expires in {{value}} days\"\n"
    "  - name: http_probe_failing\n"
    "    severity: major\n"
    "    threshold: {value: bad_status, above: 0}\n"
    "    summary: \"{{target}}: HTTP probe failing\"\n"
    "  - name: agent_silent\n"
    "    severity: critical\n"
    "    state: {condition: agent_silent, intervals: 3}\n"
    "    summary: \"agent of {{site}} sends nothing\"\n"
    "  - name: spool_dropping\n"
    "    severity: major\n"
    "    threshold: {rate: spool_dropped, above: 0}\n"
    "    summary: \"agent of {{site}} drops data from its spool\"\n"
    "  - name: journal_near_bound\n"
    "    severity: major\n"
    "    threshold: {value: journal_used_pct, above: 90, clear: 80, for: 1m}\n"
    "    summary: \"collector journal {{value}} % full\"\n";

const char *kvl_rules_defaults(void)
{
    return defaults_yaml;
}

const char *kvl_rules_severity_name(int severity)
{
    return severity >= KVL_RULE_SEV_CRITICAL && severity <= KVL_RULE_SEV_INFO
               ? severity_names[severity]
               : "?";
}

bool kvl_rules_metric_known(const char *name)
{
    for (size_t i = 0; i < KVL_ARRAY_SIZE(known_metrics); i++) {
        if (strcmp(known_metrics[i].metric, name) == 0) {
            return true;
        }
    }
    return false;
}

static bool metric_glob_matches(const char *glob)
{
    for (size_t i = 0; i < KVL_ARRAY_SIZE(known_metrics); i++) {
        if (fnmatch(glob, known_metrics[i].metric, 0) == 0) {
            return true;
        }
    }
    return false;
}

int kvl_rules_glob_check(const char *glob, char *why, size_t whylen)
{
    const char *g = glob[0] == '!' ? glob + 1 : glob;
    if (*g == '\0') {
        snprintf(why, whylen,
                 "an empty pattern matches nothing (leave the key out to match "
                 "everything)");
        return KVL_EINVAL;
    }
    for (const char *p = g; *p != '\0'; p++) {
        if (*p == '\\') {
            if (p[1] == '\0') {
                snprintf(why, whylen, "pattern '%s' ends with a lone backslash", glob);
                return KVL_EINVAL;
            }
            p++;
            continue;
        }
        if (*p != '[') {
            continue;
        }
        const char *q = p + 1;
        if (*q == '!' || *q == '^') {
            q++;
        }
        if (*q == ']') {
            q++;
        }
        while (*q != '\0' && *q != ']') {
            if (q[1] == '-' && q[2] != '\0' && q[2] != ']') {
                if ((unsigned char)q[2] < (unsigned char)q[0]) {
                    snprintf(why, whylen, "pattern '%s': range %c-%c is backwards", glob, q[0],
                             q[2]);
                    return KVL_EINVAL;
                }
                q += 3;
            } else {
                q++;
            }
        }
        if (*q == '\0') {
            snprintf(why, whylen, "pattern '%s': '[' opens a character class that is never closed",
                     glob);
            return KVL_EINVAL;
        }
        p = q;
    }
    return 0;
}

bool kvl_rules_match(const kvl_rule_match_t *m, const char *s)
{
    if (m->glob == NULL) {
        return true;
    }
    return (fnmatch(m->glob, s, 0) == 0) != m->negate;
}

/* --- freeing ------------------------------------------------------------------------------ */

static void kv_match_free(kvl_rule_kv_match_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
        free(v[i].m.glob);
    }
    free(v);
}

static void rule_free(kvl_rule_t *r)
{
    free(r->name);
    kvl_rule_match_t *ms[] = {&r->site,  &r->device, &r->interface,
                              &r->group, &r->target, &r->metric};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(ms); i++) {
        free(ms[i]->glob);
    }
    kv_match_free(r->sel_labels, r->n_sel_labels);
    free(r->threshold.metric);
    free(r->event.name);
    free(r->event.clear);
    kv_match_free(r->event.match, r->event.n_match);
    for (size_t i = 0; i < r->n_labels; i++) {
        free(r->labels[i].key);
        free(r->labels[i].value);
    }
    free(r->labels);
    free(r->summary);
    memset(r, 0, sizeof(*r));
}

void kvl_rules_free(kvl_rules_t *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        rule_free(&r->v[i]);
    }
    free(r->v);
    free(r);
}

const kvl_rule_t *kvl_rules_find(const kvl_rules_t *r, const char *name)
{
    for (size_t i = 0; r != NULL && i < r->n; i++) {
        if (strcmp(r->v[i].name, name) == 0) {
            return &r->v[i];
        }
    }
    return NULL;
}

/* --- the loader's state -------------------------------------------------------------------- */

typedef struct {
    char *name;
    char where[300];
} disabled_t;

typedef struct {
    kvl_rules_t rules; /* read so far, every file */
    size_t cap;
    disabled_t *dis;
    size_t n_dis, cap_dis;
    const kvl_rules_t *defaults; /* NULL while the defaults themselves are read */
} loader_t;

static int push_rule(loader_t *ld, kvl_rule_t *r)
{
    if (ld->rules.n == ld->cap) {
        size_t cap = ld->cap ? ld->cap * 2 : 16;
        kvl_rule_t *v = realloc(ld->rules.v, cap * sizeof(*v));
        if (v == NULL) {
            return KVL_ENOMEM;
        }
        ld->rules.v = v;
        ld->cap = cap;
    }
    ld->rules.v[ld->rules.n++] = *r;
    memset(r, 0, sizeof(*r));
    return 0;
}

static void loader_free(loader_t *ld)
{
    for (size_t i = 0; i < ld->rules.n; i++) {
        rule_free(&ld->rules.v[i]);
    }
    free(ld->rules.v);
    for (size_t i = 0; i < ld->n_dis; i++) {
        free(ld->dis[i].name);
    }
    free(ld->dis);
    memset(ld, 0, sizeof(*ld));
}

/* --- field parsers -------------------------------------------------------------------------- */

static kvl_cfg_node_t at_key(kvl_cfg_node_t map, const char *key)
{
    kvl_cfg_node_t at = map;
    kvl_cfg_map_get(map, key, &at);
    return at;
}

static bool in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i] != NULL; i++) {
        if (strcmp(list[i], s) == 0) {
            return true;
        }
    }
    return false;
}

static bool label_name_ok(const char *s)
{
    if (!((*s >= 'a' && *s <= 'z') || *s == '_')) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) {
            return false;
        }
    }
    return strlen(s) <= 64;
}

/* A glob into a kvl_rule_match_t. */
static int read_glob(kvl_cfg_node_t n, kvl_rule_match_t *m)
{
    const char *s = kvl_cfg_scalar(n);
    if (s == NULL) {
        return kvl_cfg_error(n, "expected a pattern (a glob such as 'core-*', or '!glob')");
    }
    char why[256];
    if (kvl_rules_glob_check(s, why, sizeof(why)) != 0) {
        return kvl_cfg_error(n, "%s", why);
    }
    char *g = strdup(s[0] == '!' ? s + 1 : s);
    if (g == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    free(m->glob);
    m->glob = g;
    m->negate = s[0] == '!';
    return 0;
}

static int parse_glob(kvl_cfg_node_t n, void *target)
{
    return read_glob(n, target);
}

static int parse_metric_glob(kvl_cfg_node_t n, void *target)
{
    kvl_rule_match_t *m = target;
    int rc = read_glob(n, m);
    if (rc == 0 && !m->negate && !metric_glob_matches(m->glob)) {
        return kvl_cfg_error(n,
                             "no built-in metric matches '%s' (metrics are named as the agent "
                             "reports them: in_octets, oper_status, lost_pct, rtt_median_ms, "
                             "spool_dropped, ...)",
                             m->glob);
    }
    return rc;
}

/* A mapping of key -> glob. */
static int read_kv_globs(kvl_cfg_node_t n, const char *what, kvl_rule_kv_match_t **out,
                         size_t *nout)
{
    if (!kvl_cfg_is_map(n)) {
        return kvl_cfg_error(n, "expected a mapping of %s to patterns", what);
    }
    size_t len = kvl_cfg_map_len(n);
    kvl_rule_kv_match_t *v = calloc(len ? len : 1, sizeof(*v));
    if (v == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    kv_match_free(*out, *nout);
    *out = v;
    *nout = 0;
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t k, val;
        kvl_cfg_map_at(n, i, &k, &val);
        const char *ks = kvl_cfg_scalar(k);
        if (ks == NULL || ks[0] == '\0') {
            return kvl_cfg_error(k, "expected a %s name", what);
        }
        for (size_t j = 0; j < *nout; j++) {
            if (strcmp(v[j].key, ks) == 0) {
                return kvl_cfg_error(k, "%s '%s' is given twice", what, ks);
            }
        }
        v[*nout].key = strdup(ks);
        if (v[*nout].key == NULL) {
            return kvl_cfg_error(k, "out of memory");
        }
        (*nout)++;
        int rc = read_glob(val, &v[*nout - 1].m);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int parse_sel_labels(kvl_cfg_node_t n, void *target)
{
    kvl_rule_t *r = target;
    return read_kv_globs(n, "label", &r->sel_labels, &r->n_sel_labels);
}

static const kvl_cfg_field_t select_fields[] = {
    {"site", KVL_CFG_CUSTOM, offsetof(kvl_rule_t, site), 0, 0, NULL, parse_glob, 0, "sites (glob)"},
    {"device", KVL_CFG_CUSTOM, offsetof(kvl_rule_t, device), 0, 0, NULL, parse_glob, 0,
     "devices (glob)"},
    {"interface", KVL_CFG_CUSTOM, offsetof(kvl_rule_t, interface), 0, 0, NULL, parse_glob, 0,
     "interfaces (glob)"},
    {"group", KVL_CFG_CUSTOM, offsetof(kvl_rule_t, group), 0, 0, NULL, parse_glob, 0,
     "metric groups (glob)"},
    {"target", KVL_CFG_CUSTOM, offsetof(kvl_rule_t, target), 0, 0, NULL, parse_glob, 0,
     "probe targets (glob)"},
    {"metric", KVL_CFG_CUSTOM, offsetof(kvl_rule_t, metric), 0, 0, NULL, parse_metric_glob, 0,
     "metrics (glob; must match a built-in metric)"},
    {"labels", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_sel_labels, 0, "label -> glob"},
    {NULL},
};

static int parse_select(kvl_cfg_node_t n, void *target)
{
    return kvl_cfg_apply(n, select_fields, target);
}

static int parse_number(kvl_cfg_node_t n, void *target)
{
    kvl_rule_num_t *num = target;
    const char *s = kvl_cfg_scalar(n);
    char *end = NULL;
    double v = 0;
    if (s != NULL && s[0] != '\0') {
        errno = 0;
        v = strtod(s, &end);
    }
    if (s == NULL || s[0] == '\0' || end == s || *end != '\0' || errno != 0 || !isfinite(v)) {
        return kvl_cfg_error(n, "expected a number such as 90 or 3.6, got %s%s%s", s ? "'" : "",
                             s ? s : "a list or mapping", s ? "'" : "");
    }
    num->v = v;
    num->set = true;
    return 0;
}

/* value, rate, derived: exactly one per threshold. */
static int one_source(kvl_cfg_node_t n, kvl_rule_t *r)
{
    if (r->threshold.source >= 0) {
        return kvl_cfg_error(n, "a threshold compares one figure: give one of value, rate or "
                                "derived");
    }
    return 0;
}

static int read_source_metric(kvl_cfg_node_t n, kvl_rule_t *r, int source)
{
    int rc = one_source(n, r);
    if (rc != 0) {
        return rc;
    }
    const char *s = kvl_cfg_scalar(n);
    if (s == NULL) {
        return kvl_cfg_error(n, "expected a metric name");
    }
    if (!kvl_rules_metric_known(s)) {
        return kvl_cfg_error(n,
                             "unknown metric '%s': no built-in family has it (e.g. in_octets, "
                             "in_errors, lost_pct, rtt_median_ms, spool_dropped)",
                             s);
    }
    r->threshold.source = source;
    return kvl_cfg_read_str(n, &r->threshold.metric);
}

static int parse_thr_value(kvl_cfg_node_t n, void *target)
{
    return read_source_metric(n, target, KVL_THR_VALUE);
}

static int parse_thr_rate(kvl_cfg_node_t n, void *target)
{
    return read_source_metric(n, target, KVL_THR_RATE);
}

static int parse_thr_derived(kvl_cfg_node_t n, void *target)
{
    kvl_rule_t *r = target;
    int rc = one_source(n, r);
    if (rc != 0) {
        return rc;
    }
    const char *s = kvl_cfg_scalar(n);
    for (int i = 0; s != NULL && derived_names[i] != NULL; i++) {
        if (strcmp(s, derived_names[i]) == 0) {
            r->threshold.derived = i;
            r->threshold.source = KVL_THR_DERIVED;
            return 0;
        }
    }
    return kvl_cfg_error(n, "expected a derived figure: utilisation_pct, error_ratio, loss_pct, "
                            "rtt_ms, mos, cert_days or http_status");
}

static const kvl_cfg_field_t threshold_fields[] = {
    {"value", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_thr_value, 0, "a metric's value"},
    {"rate", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_thr_rate, 0, "a metric's rate per second"},
    {"derived", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_thr_derived, 0, "a derived figure"},
    {"above", KVL_CFG_CUSTOM, offsetof(kvl_rule_t, threshold.above), 0, 0, NULL, parse_number, 0,
     "fires above this"},
    {"below", KVL_CFG_CUSTOM, offsetof(kvl_rule_t, threshold.below), 0, 0, NULL, parse_number, 0,
     "fires below this"},
    {"clear", KVL_CFG_CUSTOM, offsetof(kvl_rule_t, threshold.clear), 0, 0, NULL, parse_number, 0,
     "clears on the safe side of this (the threshold)"},
    {"for", KVL_CFG_DURATION, offsetof(kvl_rule_t, threshold.for_ms), 0, 30 * DAY_MS, NULL, NULL, 0,
     "how long the condition must hold (0s)"},
    {NULL},
};

static int set_kind(kvl_cfg_node_t n, kvl_rule_t *r, int kind)
{
    static const char *const kinds[] = {"", "threshold", "state", "no_data", "event"};
    if (r->kind != KVL_RULE_NONE) {
        return kvl_cfg_error(n,
                             "a rule has one condition: this one already has '%s' (write two "
                             "rules)",
                             kinds[r->kind]);
    }
    r->kind = kind;
    return 0;
}

static int parse_threshold(kvl_cfg_node_t n, void *target)
{
    kvl_rule_t *r = target;
    int rc = set_kind(n, r, KVL_RULE_THRESHOLD);
    if (rc != 0) {
        return rc;
    }
    r->threshold.source = -1;
    rc = kvl_cfg_apply(n, threshold_fields, r);
    if (rc != 0) {
        return rc;
    }
    if (r->threshold.source < 0) {
        return kvl_cfg_error(n, "a threshold needs one of value, rate or derived");
    }
    const kvl_rule_num_t *above = &r->threshold.above, *below = &r->threshold.below;
    if (above->set == below->set) {
        return kvl_cfg_error(n, "a threshold needs exactly one of above or below");
    }
    kvl_rule_num_t *clear = &r->threshold.clear;
    double limit = above->set ? above->v : below->v;
    if (!clear->set) {
        clear->v = limit;
        clear->set = true;
    } else if (above->set && clear->v > limit) {
        return kvl_cfg_error(at_key(n, "clear"),
                             "clear %g is above the threshold %g: an alert above %g must clear "
                             "at or below it",
                             clear->v, limit, limit);
    } else if (below->set && clear->v < limit) {
        return kvl_cfg_error(at_key(n, "clear"),
                             "clear %g is below the threshold %g: an alert below %g must clear "
                             "at or above it",
                             clear->v, limit, limit);
    }
    return 0;
}

static const kvl_cfg_field_t state_fields[] = {
    {"condition", KVL_CFG_ENUM, offsetof(kvl_rule_t, state.state), 0, 0, state_names, NULL,
     KVL_CFG_REQUIRED, "oper_down_admin_up, device_unreachable or agent_silent"},
    {"intervals", KVL_CFG_INT, offsetof(kvl_rule_t, state.intervals), 1, 1000, NULL, NULL, 0,
     "agent_silent: intervals without a batch (3)"},
    {"for", KVL_CFG_DURATION, offsetof(kvl_rule_t, state.for_ms), 0, 30 * DAY_MS, NULL, NULL, 0,
     "how long the state must hold (0s)"},
    {NULL},
};

static int parse_state(kvl_cfg_node_t n, void *target)
{
    kvl_rule_t *r = target;
    int rc = set_kind(n, r, KVL_RULE_STATE);
    if (rc != 0) {
        return rc;
    }
    const char *s = kvl_cfg_scalar(n);
    if (s != NULL) {
        for (int i = 0; state_names[i] != NULL; i++) {
            if (strcmp(s, state_names[i]) == 0) {
                r->state.state = i;
                r->state.intervals = i == KVL_STATE_AGENT_SILENT ? 3 : 0;
                return 0;
            }
        }
        return kvl_cfg_error(n, "expected a state: oper_down_admin_up, device_unreachable or "
                                "agent_silent (or a mapping with condition:)");
    }
    rc = kvl_cfg_apply(n, state_fields, r);
    if (rc != 0) {
        return rc;
    }
    if (r->state.state == KVL_STATE_AGENT_SILENT) {
        if (r->state.intervals == 0) {
            r->state.intervals = 3;
        }
    } else if (r->state.intervals != 0) {
        return kvl_cfg_error(at_key(n, "intervals"), "only agent_silent takes intervals");
    }
    return 0;
}

static const kvl_cfg_field_t no_data_fields[] = {
    {"intervals", KVL_CFG_INT, offsetof(kvl_rule_t, no_data.intervals), 1, 1000, NULL, NULL,
     KVL_CFG_REQUIRED, "intervals without a sample"},
    {NULL},
};

static int parse_no_data(kvl_cfg_node_t n, void *target)
{
    int rc = set_kind(n, target, KVL_RULE_NO_DATA);
    return rc != 0 ? rc : kvl_cfg_apply(n, no_data_fields, target);
}

static int parse_event_name(kvl_cfg_node_t n, void *target)
{
    kvl_rule_t *r = target;
    kvl_rule_match_t m = {0};
    int rc = read_glob(n, &m);
    if (rc == 0 && m.negate) {
        free(m.glob);
        return kvl_cfg_error(n, "an event name is matched, not excluded: '!' is not allowed here");
    }
    free(r->event.name);
    r->event.name = m.glob;
    return rc;
}

static int parse_event_match(kvl_cfg_node_t n, void *target)
{
    kvl_rule_t *r = target;
    return read_kv_globs(n, "field", &r->event.match, &r->event.n_match);
}

/* The clearing event: a name, not a pattern (it names one event kind). */
static int parse_event_clear(kvl_cfg_node_t n, void *target)
{
    kvl_rule_t *r = target;
    const char *s = kvl_cfg_scalar(n);
    if (s == NULL || s[0] == '\0' || strpbrk(s, "*?[]!\\") != NULL) {
        return kvl_cfg_error(n, "expected the name of the event that clears the alert, e.g. "
                                "linkUp (a name, not a pattern)");
    }
    free(r->event.clear);
    return kvl_cfg_read_str(n, &r->event.clear);
}

static const struct {
    const char *down, *up;
} event_pairs[] = {
    {"linkDown", "linkUp"},
    {"device_down", "device_up"},
    {"target_down", "target_up"},
    {"agent_lost", "agent_back"},
};

const char *kvl_rules_event_pair(const char *name)
{
    for (size_t i = 0; name != NULL && i < KVL_ARRAY_SIZE(event_pairs); i++) {
        if (strcmp(event_pairs[i].down, name) == 0) {
            return event_pairs[i].up;
        }
    }
    return NULL;
}

bool kvl_rules_event_match(const kvl_rule_t *r, const char *kind)
{
    if (r->event.name == NULL || kind == NULL) {
        return false;
    }
    if (kvl_event_is_data(kind)) {
        return strcmp(r->event.name, kind) == 0;
    }
    return fnmatch(r->event.name, kind, 0) == 0;
}

static const kvl_cfg_field_t event_fields[] = {
    {"name", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_event_name, KVL_CFG_REQUIRED,
     "the event's name (glob): linkDown, device_down, a trap OID's name, ..."},
    {"match", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_event_match, 0, "field -> glob"},
    {"clear", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_event_clear, 0,
     "the event that resolves it (the pair's other half: linkDown -> linkUp, ...)"},
    {"hold", KVL_CFG_DURATION, offsetof(kvl_rule_t, event.hold_ms), 1000, 30 * DAY_MS, NULL, NULL,
     0, "resolved this long after the event if nothing cleared it (5m without a clearing event)"},
    {NULL},
};

static int parse_event(kvl_cfg_node_t n, void *target)
{
    kvl_rule_t *r = target;
    int rc = set_kind(n, r, KVL_RULE_EVENT);
    if (rc == 0) {
        rc = kvl_cfg_apply(n, event_fields, r);
    }
    if (rc != 0) {
        return rc;
    }
    const char *pair = kvl_rules_event_pair(r->event.name);
    if (r->event.clear == NULL && pair != NULL && (r->event.clear = strdup(pair)) == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    if (r->event.clear == NULL && r->event.hold_ms == 0) {
        r->event.hold_ms = 5 * 60 * 1000;
    }
    if (r->event.clear != NULL && fnmatch(r->event.name, r->event.clear, 0) == 0) {
        return kvl_cfg_error(at_key(n, "clear"),
                             "the clearing event '%s' matches the rule's own name '%s'",
                             r->event.clear, r->event.name);
    }
    return 0;
}

static const kvl_cfg_field_t flapping_fields[] = {
    {"changes", KVL_CFG_INT, offsetof(kvl_rule_t, flapping.changes), 2, 10000, NULL, NULL,
     KVL_CFG_REQUIRED, "changes of state in the window that make it flapping"},
    {"window", KVL_CFG_DURATION, offsetof(kvl_rule_t, flapping.window_ms), 1000, DAY_MS, NULL, NULL,
     KVL_CFG_REQUIRED, "the window the changes are counted in"},
    {"stable", KVL_CFG_DURATION, offsetof(kvl_rule_t, flapping.stable_ms), 1000, DAY_MS, NULL, NULL,
     0, "how long it must stay stable to end the flapping alert (the window)"},
    {NULL},
};

static int parse_flapping(kvl_cfg_node_t n, void *target)
{
    kvl_rule_t *r = target;
    int rc = kvl_cfg_apply(n, flapping_fields, r);
    if (rc == 0) {
        r->flapping.on = true;
        if (r->flapping.stable_ms == 0) {
            r->flapping.stable_ms = r->flapping.window_ms;
        }
    }
    return rc;
}

static int parse_labels(kvl_cfg_node_t n, void *target)
{
    kvl_rule_t *r = target;
    if (!kvl_cfg_is_map(n)) {
        return kvl_cfg_error(n, "expected a mapping of label names to values");
    }
    size_t len = kvl_cfg_map_len(n);
    r->labels = calloc(len ? len : 1, sizeof(*r->labels));
    if (r->labels == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t k, v;
        kvl_cfg_map_at(n, i, &k, &v);
        const char *ks = kvl_cfg_scalar(k);
        if (ks == NULL || !label_name_ok(ks)) {
            return kvl_cfg_error(k, "expected a label name: a-z, 0-9 and '_', not starting with "
                                    "a digit, at most 64 bytes");
        }
        if (in_list(alert_labels, ks)) {
            return kvl_cfg_error(k, "label '%s' is set by the alert itself", ks);
        }
        for (size_t j = 0; j < r->n_labels; j++) {
            if (strcmp(r->labels[j].key, ks) == 0) {
                return kvl_cfg_error(k, "label '%s' is given twice", ks);
            }
        }
        kvl_rule_label_t *l = &r->labels[r->n_labels];
        if ((l->key = strdup(ks)) == NULL) {
            return kvl_cfg_error(k, "out of memory");
        }
        r->n_labels++;
        int rc = kvl_cfg_read_str(v, &l->value);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* {{name}} references of a summary: known alert labels or this rule's own. */
static int check_summary(kvl_cfg_node_t n, const kvl_rule_t *r)
{
    const char *p = r->summary;
    while ((p = strstr(p, "{{")) != NULL) {
        const char *end = strstr(p + 2, "}}");
        if (end == NULL) {
            return kvl_cfg_error(n, "'{{' at offset %zu is never closed with '}}'",
                                 (size_t)(p - r->summary));
        }
        const char *a = p + 2, *b = end;
        while (a < b && *a == ' ') {
            a++;
        }
        while (b > a && b[-1] == ' ') {
            b--;
        }
        char name[72];
        size_t len = (size_t)(b - a);
        if (len == 0 || len >= sizeof(name)) {
            return kvl_cfg_error(n, "'{{...}}' at offset %zu must name a label",
                                 (size_t)(p - r->summary));
        }
        memcpy(name, a, len);
        name[len] = '\0';
        bool ok = in_list(alert_labels, name);
        for (size_t i = 0; !ok && i < r->n_labels; i++) {
            ok = strcmp(r->labels[i].key, name) == 0;
        }
        if (!ok) {
            return kvl_cfg_error(n,
                                 "unknown label '%s' in the summary: expected site, device, "
                                 "interface, target, rule, severity, value, threshold, alias or "
                                 "one of the rule's labels",
                                 name);
        }
        p = end + 2;
    }
    return 0;
}

static const kvl_cfg_field_t rule_fields[] = {
    {"name", KVL_CFG_STR, offsetof(kvl_rule_t, name), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the rule's unique name"},
    {"severity", KVL_CFG_ENUM, offsetof(kvl_rule_t, severity), 0, 0, severity_names, NULL,
     KVL_CFG_REQUIRED, "critical, major, minor, warning or info"},
    {"select", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_select, 0, "which series (all)"},
    {"threshold", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_threshold, 0, "a threshold condition"},
    {"state", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_state, 0, "a state condition"},
    {"no_data", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_no_data, 0, "a no-data condition"},
    {"event", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_event, 0, "an event condition"},
    {"flapping", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_flapping, 0, "state rules: flapping"},
    {"labels", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_labels, 0, "labels added to the alert"},
    {"summary", KVL_CFG_STR, offsetof(kvl_rule_t, summary), 0, 0, NULL, NULL, 0,
     "text with {{label}} references"},
    {NULL},
};

static int check_rule(kvl_cfg_node_t item, const kvl_rule_t *r)
{
    kvl_cfg_node_t name = at_key(item, "name");
    size_t len = strlen(r->name);
    if (len == 0 || len > NAME_MAX_LEN) {
        return kvl_cfg_error(name, "a rule name has 1 to %d bytes", NAME_MAX_LEN);
    }
    for (const char *p = r->name; *p != '\0'; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_' || *p == '-' || *p == '.';
        if (!ok) {
            return kvl_cfg_error(name, "a rule name has letters, digits, '_', '-' and '.' only");
        }
    }
    if (r->kind == KVL_RULE_NONE) {
        return kvl_cfg_error(item,
                             "rule '%s' needs a condition: threshold, state, no_data or "
                             "event",
                             r->name);
    }
    if (r->flapping.on && r->kind != KVL_RULE_STATE) {
        return kvl_cfg_error(at_key(item, "flapping"), "flapping modifies a state rule only");
    }
    if (r->summary != NULL) {
        return check_summary(at_key(item, "summary"), r);
    }
    return 0;
}

/* The root of one file: `rules:` and `disable:`. */
typedef struct {
    loader_t *ld;
} file_t;

static int parse_rules(kvl_cfg_node_t n, void *target)
{
    loader_t *ld = ((file_t *)target)->ld;
    if (!kvl_cfg_is_seq(n)) {
        return kvl_cfg_error(n, "expected a list of rules");
    }
    for (size_t i = 0; i < kvl_cfg_seq_len(n); i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(n, i);
        if (!kvl_cfg_is_map(item)) {
            return kvl_cfg_error(item, "expected a rule: {name, severity, a condition, ...}");
        }
        kvl_rule_t r = {0};
        r.builtin = ld->defaults == NULL;
        kvl_cfg_where(item, r.origin, sizeof(r.origin));
        int rc = kvl_cfg_apply(item, rule_fields, &r);
        if (rc == 0) {
            rc = check_rule(item, &r);
        }
        for (size_t k = 0; rc == 0 && k < ld->rules.n; k++) {
            if (strcmp(ld->rules.v[k].name, r.name) == 0) {
                rc = kvl_cfg_error(at_key(item, "name"), "rule '%s' is already defined at %s",
                                   r.name, ld->rules.v[k].origin);
            }
        }
        if (rc == 0 && push_rule(ld, &r) != 0) {
            rc = kvl_cfg_error(item, "out of memory");
        }
        if (rc != 0) {
            rule_free(&r);
            return rc;
        }
    }
    return 0;
}

static int parse_disable(kvl_cfg_node_t n, void *target)
{
    loader_t *ld = ((file_t *)target)->ld;
    if (ld->defaults == NULL) {
        return kvl_cfg_error(n, "the built-in rules disable nothing");
    }
    if (!kvl_cfg_is_seq(n)) {
        return kvl_cfg_error(n, "expected a list of built-in rule names");
    }
    for (size_t i = 0; i < kvl_cfg_seq_len(n); i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(n, i);
        const char *s = kvl_cfg_scalar(item);
        if (s == NULL) {
            return kvl_cfg_error(item, "expected a built-in rule's name");
        }
        if (kvl_rules_find(ld->defaults, s) == NULL) {
            return kvl_cfg_error(item, "'%s' is no built-in rule", s);
        }
        for (size_t k = 0; k < ld->n_dis; k++) {
            if (strcmp(ld->dis[k].name, s) == 0) {
                return kvl_cfg_error(item, "'%s' is already disabled at %s", s, ld->dis[k].where);
            }
        }
        if (ld->n_dis == ld->cap_dis) {
            size_t cap = ld->cap_dis ? ld->cap_dis * 2 : 8;
            disabled_t *v = realloc(ld->dis, cap * sizeof(*v));
            if (v == NULL) {
                return kvl_cfg_error(item, "out of memory");
            }
            ld->dis = v;
            ld->cap_dis = cap;
        }
        disabled_t *d = &ld->dis[ld->n_dis];
        if ((d->name = strdup(s)) == NULL) {
            return kvl_cfg_error(item, "out of memory");
        }
        kvl_cfg_where(item, d->where, sizeof(d->where));
        ld->n_dis++;
    }
    return 0;
}

static const kvl_cfg_field_t file_fields[] = {
    {"rules", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_rules, 0, "the list of rules"},
    {"disable", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_disable, 0, "built-in rules left out"},
    {NULL},
};

/* Parses one loaded document into ld. */
static int apply_file(kvl_cfg_t *c, loader_t *ld, char *err, size_t errlen)
{
    file_t f = {ld};
    int rc = kvl_cfg_apply(kvl_cfg_root(c), file_fields, &f);
    if (rc != 0) {
        snprintf(err, errlen, "%s", kvl_cfg_last_error(c));
    }
    kvl_cfg_free(c);
    return rc;
}

static int parse_text(loader_t *ld, const char *name, const char *text, char *err, size_t errlen)
{
    kvl_cfg_t *c = kvl_cfg_load_string(name, text, err, errlen);
    return c == NULL ? KVL_ECONFIG : apply_file(c, ld, err, errlen);
}

static int parse_file(loader_t *ld, const char *path, char *err, size_t errlen)
{
    kvl_cfg_t *c = kvl_cfg_load_file(path, err, errlen);
    return c == NULL ? KVL_ECONFIG : apply_file(c, ld, err, errlen);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_yaml_name(const char *s)
{
    size_t len = strlen(s);
    return s[0] != '.' && len > 5 && strcmp(s + len - 5, ".yaml") == 0;
}

static int parse_dir(loader_t *ld, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, errlen, "%s: cannot open the rules folder: %s", dir, strerror(errno));
        return KVL_EIO;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (!is_yaml_name(e->d_name)) {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **v = realloc(names, ncap * sizeof(*v));
            if (v == NULL) {
                rc = KVL_ENOMEM;
                break;
            }
            names = v;
            cap = ncap;
        }
        if ((names[n] = strdup(e->d_name)) == NULL) {
            rc = KVL_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (rc != 0) {
        snprintf(err, errlen, "%s: out of memory", dir);
    } else if (n > 0) {
        qsort(names, n, sizeof(*names), cmp_str);
    }
    /* Every file is read, so one with a mistake does not hide the next one's: each
     * file's first error, one a line, in name order (rc: the first failure's). */
    size_t used = 0;
    for (size_t i = 0; rc != KVL_ENOMEM && i < n; i++) {
        size_t len = strlen(dir) + strlen(names[i]) + 2;
        char *path = malloc(len);
        if (path == NULL) {
            snprintf(err, errlen, "%s: out of memory", dir);
            rc = KVL_ENOMEM;
            break;
        }
        snprintf(path, len, "%s/%s", dir, names[i]);
        char one[512];
        int frc = parse_file(ld, path, one, sizeof(one));
        free(path);
        if (frc != 0) {
            rc = rc != 0 ? rc : frc;
        }
        if (frc != 0 && used < errlen) {
            int w = snprintf(err + used, errlen - used, "%s%s", used ? "\n" : "", one);
            used = w < 0 ? errlen : used + (size_t)w;
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    return rc;
}

/* The built-in rules less the disabled ones, each replaced by a user rule of its name,
 * then the other user rules. Takes the rules out of both loaders. */
static int merge(loader_t *def, loader_t *user, kvl_rules_t **out, char *err, size_t errlen)
{
    for (size_t i = 0; i < user->n_dis; i++) {
        const kvl_rule_t *u = kvl_rules_find(&user->rules, user->dis[i].name);
        if (u != NULL) {
            snprintf(err, errlen,
                     "%s: rule '%s' is defined here and disabled at %s: disable a built-in "
                     "rule or replace it, not both",
                     u->origin, u->name, user->dis[i].where);
            return KVL_ECONFIG;
        }
    }
    kvl_rules_t *r = calloc(1, sizeof(*r));
    size_t cap = def->rules.n + user->rules.n;
    if (r == NULL || (r->v = calloc(cap ? cap : 1, sizeof(*r->v))) == NULL) {
        free(r);
        snprintf(err, errlen, "rules: out of memory");
        return KVL_ENOMEM;
    }
    bool *taken = calloc(user->rules.n ? user->rules.n : 1, sizeof(bool));
    if (taken == NULL) {
        free(r->v);
        free(r);
        snprintf(err, errlen, "rules: out of memory");
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < def->rules.n; i++) {
        kvl_rule_t *d = &def->rules.v[i];
        bool disabled = false;
        for (size_t k = 0; k < user->n_dis; k++) {
            disabled = disabled || strcmp(user->dis[k].name, d->name) == 0;
        }
        if (disabled) {
            continue;
        }
        size_t k = 0;
        while (k < user->rules.n && strcmp(user->rules.v[k].name, d->name) != 0) {
            k++;
        }
        if (k < user->rules.n) {
            r->v[r->n++] = user->rules.v[k];
            taken[k] = true;
        } else {
            r->v[r->n++] = *d;
            memset(d, 0, sizeof(*d));
        }
    }
    for (size_t k = 0; k < user->rules.n; k++) {
        if (!taken[k]) {
            r->v[r->n++] = user->rules.v[k];
        }
    }
    /* Every user rule moved into r: forget them without freeing. */
    user->rules.n = 0;
    free(taken);
    *out = r;
    return 0;
}

typedef enum { SRC_NONE, SRC_PATH, SRC_TEXT } src_t;

static int load(src_t src, const char *a, const char *b, kvl_rules_t **out, char *err,
                size_t errlen)
{
    *out = NULL;
    if (errlen > 0) {
        err[0] = '\0';
    }
    loader_t def = {0}, user = {0};
    int rc = parse_text(&def, DEFAULTS_NAME, defaults_yaml, err, errlen);
    user.defaults = &def.rules;
    if (rc == 0 && src == SRC_TEXT) {
        rc = parse_text(&user, a, b, err, errlen);
    } else if (rc == 0 && src == SRC_PATH) {
        struct stat st;
        if (stat(a, &st) != 0) {
            snprintf(err, errlen, "%s: cannot read the rules: %s", a, strerror(errno));
            rc = KVL_EIO;
        } else if (S_ISDIR(st.st_mode)) {
            rc = parse_dir(&user, a, err, errlen);
        } else {
            rc = parse_file(&user, a, err, errlen);
        }
    }
    if (rc == 0) {
        rc = merge(&def, &user, out, err, errlen);
    }
    loader_free(&def);
    loader_free(&user);
    return rc;
}

int kvl_rules_load(const char *path_or_dir, kvl_rules_t **out, char *err, size_t errlen)
{
    return load(path_or_dir ? SRC_PATH : SRC_NONE, path_or_dir, NULL, out, err, errlen);
}

int kvl_rules_parse(const char *name, const char *text, kvl_rules_t **out, char *err, size_t errlen)
{
    return load(SRC_TEXT, name, text, out, err, errlen);
}
