/*
 * alerts_config.c — the `alerts:` section of collector.yaml (alerts_config.h): routes,
 * grouping timings, the default receiver, escalation per severity and the history bound,
 * through field tables; errors at file:line:column.
 */
#include "alerts_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "names.h"

#define DAY_MS (86400 * 1000ll)

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static void route_free(kvl_alerts_route_t *r)
{
    for (size_t i = 0; i < r->n_match; i++) {
        free(r->match[i].key);
        free(r->match[i].m.glob);
    }
    free(r->match);
    free(r->receiver);
    free_strv(r->group_by, r->n_group_by);
}

void kvl_alerts_cfg_free(kvl_alerts_cfg_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->receiver);
    free_strv(c->group_by, c->n_group_by);
    for (size_t i = 0; i < c->n_routes; i++) {
        route_free(&c->routes[i]);
    }
    free(c->routes);
    for (size_t i = 0; i < c->n_escalation; i++) {
        free(c->escalation[i].receiver);
    }
    free(c->escalation);
    free(c);
}

kvl_alerts_cfg_t *kvl_alerts_cfg_new(void)
{
    kvl_alerts_cfg_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->group_wait_ms = 1000;
    c->group_interval_ms = 5000;
    c->repeat_interval_ms = 4 * 3600 * 1000ll;
    c->history_max = 10000;
    c->root_cause.enabled = true;
    c->root_cause.hold_ms = 30 * 1000;
    c->root_cause.settle_ms = 120 * 1000;
    static const char *const by[] = {"alertname", "site"};
    c->group_by = calloc(KVL_ARRAY_SIZE(by), sizeof(char *));
    if (c->group_by == NULL) {
        free(c);
        return NULL;
    }
    for (size_t i = 0; i < KVL_ARRAY_SIZE(by); i++) {
        if ((c->group_by[i] = strdup(by[i])) == NULL) {
            c->n_group_by = i;
            kvl_alerts_cfg_free(c);
            return NULL;
        }
    }
    c->n_group_by = KVL_ARRAY_SIZE(by);
    return c;
}

int64_t kvl_alerts_route_wait(const kvl_alerts_cfg_t *c, const kvl_alerts_route_t *r)
{
    return r != NULL && r->group_wait_ms >= 0 ? r->group_wait_ms : c->group_wait_ms;
}

int64_t kvl_alerts_route_interval(const kvl_alerts_cfg_t *c, const kvl_alerts_route_t *r)
{
    return r != NULL && r->group_interval_ms >= 0 ? r->group_interval_ms : c->group_interval_ms;
}

int64_t kvl_alerts_route_repeat(const kvl_alerts_cfg_t *c, const kvl_alerts_route_t *r)
{
    return r != NULL && r->repeat_interval_ms >= 0 ? r->repeat_interval_ms : c->repeat_interval_ms;
}

int kvl_alerts_cfg_check_receivers(const kvl_alerts_cfg_t *c,
                                   bool (*has)(const void *ctx, const char *name), const void *ctx,
                                   char *err, size_t errlen)
{
    const char *bad = NULL;
    if (c->receiver != NULL && !has(ctx, c->receiver)) {
        bad = c->receiver;
    }
    for (size_t i = 0; bad == NULL && i < c->n_routes; i++) {
        if (!has(ctx, c->routes[i].receiver)) {
            bad = c->routes[i].receiver;
        }
    }
    for (size_t i = 0; bad == NULL && i < c->n_escalation; i++) {
        if (!has(ctx, c->escalation[i].receiver)) {
            bad = c->escalation[i].receiver;
        }
    }
    if (bad != NULL) {
        snprintf(err, errlen, "alerts: receiver '%s' is not one of `receivers:`", bad);
        return KVL_ECONFIG;
    }
    return 0;
}

/* A label name: letters, digits and '_', not starting with a digit, 1-100 bytes. */
static bool label_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 100 || (s[0] >= '0' && s[0] <= '9')) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static int read_receiver(kvl_cfg_node_t n, char **out)
{
    const char *s = kvl_cfg_scalar(n);
    char why[256];
    if (s == NULL || kvl_name_check("receiver", s, why, sizeof(why)) != 0) {
        return kvl_cfg_error(n, "expected a receiver's name (%s)", s == NULL ? "not text" : why);
    }
    return kvl_cfg_read_str(n, out);
}

static int parse_receiver(kvl_cfg_node_t n, void *target)
{
    char **out = target;
    free(*out);
    *out = NULL;
    return read_receiver(n, out);
}

static int parse_group_by_into(kvl_cfg_node_t n, char ***v, size_t *nv)
{
    if (!kvl_cfg_is_seq(n) || kvl_cfg_seq_len(n) > KVL_ALERTS_GROUP_BY_MAX) {
        return kvl_cfg_error(n, "expected a list of at most %d label names, e.g. [alertname, site]",
                             KVL_ALERTS_GROUP_BY_MAX);
    }
    size_t len = kvl_cfg_seq_len(n);
    char **by = calloc(len + 1, sizeof(char *));
    if (by == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(n, i);
        const char *s = kvl_cfg_scalar(item);
        if (s == NULL || !label_name_ok(s)) {
            free_strv(by, i);
            return kvl_cfg_error(item, "expected a label name (letters, digits, _; 1-100)");
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(by[k], s) == 0) {
                free_strv(by, i);
                return kvl_cfg_error(item, "label '%s' is named twice", s);
            }
        }
        if ((by[i] = strdup(s)) == NULL) {
            free_strv(by, i);
            return kvl_cfg_error(item, "out of memory");
        }
    }
    free_strv(*v, *nv);
    *v = by;
    *nv = len;
    return 0;
}

static int parse_match(kvl_cfg_node_t n, void *target)
{
    kvl_alerts_route_t *r = target;
    size_t len = kvl_cfg_map_len(n);
    if (!kvl_cfg_is_map(n) || len > 32) {
        return kvl_cfg_error(n, "expected a mapping of at most 32 labels to globs, e.g. "
                                "{site: 'DHQ-*'}");
    }
    kvl_rule_kv_match_t *m = calloc(len + 1, sizeof(*m));
    if (m == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    int rc = 0;
    size_t i = 0;
    for (; i < len && rc == 0; i++) {
        kvl_cfg_node_t k, v;
        kvl_cfg_map_at(n, i, &k, &v);
        const char *ks = kvl_cfg_scalar(k);
        const char *vs = kvl_cfg_scalar(v);
        char why[256];
        if (ks == NULL || !label_name_ok(ks)) {
            rc = kvl_cfg_error(k, "expected a label name (letters, digits, _; 1-100)");
        } else if (vs == NULL || kvl_rules_glob_check(vs, why, sizeof(why)) != 0) {
            rc = kvl_cfg_error(v, "%s", vs == NULL ? "expected a glob such as 'DHQ-*'" : why);
        } else {
            m[i].key = strdup(ks);
            m[i].m.glob = strdup(vs[0] == '!' ? vs + 1 : vs);
            m[i].m.negate = vs[0] == '!';
            if (m[i].key == NULL || m[i].m.glob == NULL) {
                rc = kvl_cfg_error(v, "out of memory");
            }
        }
    }
    if (rc != 0) {
        for (size_t k = 0; k < i; k++) {
            free(m[k].key);
            free(m[k].m.glob);
        }
        free(m);
        return rc;
    }
    for (size_t k = 0; k < r->n_match; k++) {
        free(r->match[k].key);
        free(r->match[k].m.glob);
    }
    free(r->match);
    r->match = m;
    r->n_match = len;
    return 0;
}

static int parse_route_group_by(kvl_cfg_node_t n, void *target)
{
    kvl_alerts_route_t *r = target;
    return parse_group_by_into(n, &r->group_by, &r->n_group_by);
}

static int parse_cfg_group_by(kvl_cfg_node_t n, void *target)
{
    kvl_alerts_cfg_t *c = target;
    return parse_group_by_into(n, &c->group_by, &c->n_group_by);
}

#define ROFF(f) offsetof(kvl_alerts_route_t, f)

static const kvl_cfg_field_t route_fields[] = {
    {"match", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_match, 0, "label -> glob; all must match"},
    {"receiver", KVL_CFG_CUSTOM, ROFF(receiver), 0, 0, NULL, parse_receiver, KVL_CFG_REQUIRED,
     "a receiver's name (receivers:)"},
    {"group_by", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_route_group_by, 0, "label names"},
    {"group_wait", KVL_CFG_DURATION, ROFF(group_wait_ms), 0, DAY_MS, NULL, NULL, 0,
     "a new group gathers alerts this long"},
    {"group_interval", KVL_CFG_DURATION, ROFF(group_interval_ms), 0, DAY_MS, NULL, NULL, 0,
     "later changes of a group at most this often"},
    {"repeat_interval", KVL_CFG_DURATION, ROFF(repeat_interval_ms), 60 * 1000, 30 * DAY_MS, NULL,
     NULL, 0, "still firing: sent again after this"},
    {"continue", KVL_CFG_BOOL, ROFF(cont), 0, 0, NULL, NULL, 0, "the next routes are tried too"},
    {NULL},
};

static int parse_routes(kvl_cfg_node_t n, void *target)
{
    kvl_alerts_cfg_t *c = target;
    if (!kvl_cfg_is_seq(n) || kvl_cfg_seq_len(n) > KVL_ALERTS_ROUTES_MAX) {
        return kvl_cfg_error(n, "expected a list of at most %d routes", KVL_ALERTS_ROUTES_MAX);
    }
    size_t len = kvl_cfg_seq_len(n);
    kvl_alerts_route_t *r = calloc(len + 1, sizeof(*r));
    if (r == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    int rc = 0;
    size_t i = 0;
    for (; i < len && rc == 0; i++) {
        r[i].group_wait_ms = r[i].group_interval_ms = r[i].repeat_interval_ms = -1;
        kvl_cfg_node_t item = kvl_cfg_seq_at(n, i);
        if (!kvl_cfg_is_map(item)) {
            rc = kvl_cfg_error(item, "expected a route: {match: {...}, receiver: NAME, ...}");
        } else {
            rc = kvl_cfg_apply(item, route_fields, &r[i]);
        }
    }
    if (rc != 0) {
        for (size_t k = 0; k < i; k++) {
            route_free(&r[k]);
        }
        free(r);
        return rc;
    }
    for (size_t k = 0; k < c->n_routes; k++) {
        route_free(&c->routes[k]);
    }
    free(c->routes);
    c->routes = r;
    c->n_routes = len;
    return 0;
}

static int parse_severity(kvl_cfg_node_t n, void *target)
{
    int *sev = target;
    const char *s = kvl_cfg_scalar(n);
    for (int k = KVL_RULE_SEV_CRITICAL; s != NULL && k <= KVL_RULE_SEV_INFO; k++) {
        if (strcmp(s, kvl_rules_severity_name(k)) == 0) {
            *sev = k;
            return 0;
        }
    }
    return kvl_cfg_error(n, "expected critical, major, minor, warning or info");
}

#define EOFF(f) offsetof(kvl_alerts_escalation_t, f)

static const kvl_cfg_field_t escalation_fields[] = {
    {"severity", KVL_CFG_CUSTOM, EOFF(severity), 0, 0, NULL, parse_severity, KVL_CFG_REQUIRED,
     "critical, major, minor, warning or info"},
    {"after", KVL_CFG_DURATION, EOFF(after_ms), 1000, 30 * DAY_MS, NULL, NULL, KVL_CFG_REQUIRED,
     "not acknowledged this long after it paged"},
    {"receiver", KVL_CFG_CUSTOM, EOFF(receiver), 0, 0, NULL, parse_receiver, KVL_CFG_REQUIRED,
     "the next receiver"},
    {NULL},
};

static int parse_escalation(kvl_cfg_node_t n, void *target)
{
    kvl_alerts_cfg_t *c = target;
    if (!kvl_cfg_is_seq(n) || kvl_cfg_seq_len(n) > 5) {
        return kvl_cfg_error(n, "expected a list of at most one entry per severity: "
                                "[{severity: critical, after: 15m, receiver: NAME}]");
    }
    size_t len = kvl_cfg_seq_len(n);
    kvl_alerts_escalation_t *e = calloc(len + 1, sizeof(*e));
    if (e == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    int rc = 0;
    size_t i = 0;
    for (; i < len && rc == 0; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(n, i);
        e[i].severity = -1;
        rc = kvl_cfg_is_map(item) ? kvl_cfg_apply(item, escalation_fields, &e[i])
                                  : kvl_cfg_error(item, "expected {severity, after, receiver}");
        for (size_t k = 0; rc == 0 && k < i; k++) {
            if (e[k].severity == e[i].severity) {
                rc = kvl_cfg_error(item, "severity '%s' has an escalation already",
                                   kvl_rules_severity_name(e[i].severity));
            }
        }
    }
    if (rc != 0) {
        for (size_t k = 0; k < i; k++) {
            free(e[k].receiver);
        }
        free(e);
        return rc;
    }
    for (size_t k = 0; k < c->n_escalation; k++) {
        free(c->escalation[k].receiver);
    }
    free(c->escalation);
    c->escalation = e;
    c->n_escalation = len;
    return 0;
}

#define RCOFF(f) offsetof(kvl_alerts_root_cause_t, f)

static const kvl_cfg_field_t root_cause_fields[] = {
    {"enabled", KVL_CFG_BOOL, RCOFF(enabled), 0, 0, NULL, NULL, 0,
     "suppress what a cut cuts off, page the cut once (true)"},
    {"hold", KVL_CFG_DURATION, RCOFF(hold_ms), 0, DAY_MS, NULL, NULL, 0,
     "a cut stands this long before its alert fires (30s)"},
    {"settle", KVL_CFG_DURATION, RCOFF(settle_ms), 0, DAY_MS, NULL, NULL, 0,
     "after a repair, what was cut off stays quiet this long (2m)"},
    {NULL},
};

static int parse_root_cause(kvl_cfg_node_t n, void *target)
{
    kvl_alerts_cfg_t *c = target;
    if (!kvl_cfg_is_map(n)) {
        return kvl_cfg_error(n, "expected {enabled: true, hold: 30s, settle: 2m}");
    }
    kvl_alerts_root_cause_t rc = c->root_cause;
    int r = kvl_cfg_apply(n, root_cause_fields, &rc);
    if (r == 0) {
        c->root_cause = rc;
    }
    return r;
}

#define COFF(f) offsetof(kvl_alerts_cfg_t, f)

static const kvl_cfg_field_t alerts_fields[] = {
    {"receiver", KVL_CFG_CUSTOM, COFF(receiver), 0, 0, NULL, parse_receiver, 0,
     "the receiver of alerts no route takes"},
    {"group_by", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_cfg_group_by, 0,
     "label names ([alertname, site])"},
    {"group_wait", KVL_CFG_DURATION, COFF(group_wait_ms), 0, DAY_MS, NULL, NULL, 0,
     "a new group gathers alerts this long (1s)"},
    {"group_interval", KVL_CFG_DURATION, COFF(group_interval_ms), 0, DAY_MS, NULL, NULL, 0,
     "later changes of a group at most this often (5s)"},
    {"repeat_interval", KVL_CFG_DURATION, COFF(repeat_interval_ms), 60 * 1000, 30 * DAY_MS, NULL,
     NULL, 0, "still firing, not acknowledged: sent again (4h)"},
    {"routes", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_routes, 0, "first match wins"},
    {"escalation", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_escalation, 0, "per severity"},
    {"history_max", KVL_CFG_INT, COFF(history_max), 100, 10000000, NULL, NULL, 0,
     "changes kept in the history (10000)"},
    {"root_cause", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_root_cause, 0,
     "root-cause alerts from the topology"},
    {NULL},
};

int kvl_alerts_cfg_parse(kvl_cfg_node_t n, void *target)
{
    kvl_alerts_cfg_t **out = target;
    if (!kvl_cfg_is_map(n)) {
        return kvl_cfg_error(n, "expected the alerts section: {routes: [...], receiver: ...}");
    }
    kvl_alerts_cfg_t *c = kvl_alerts_cfg_new();
    if (c == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    int rc = kvl_cfg_apply(n, alerts_fields, c);
    if (rc != 0) {
        kvl_alerts_cfg_free(c);
        return rc;
    }
    kvl_alerts_cfg_free(*out);
    *out = c;
    return 0;
}

kvl_alerts_cfg_t *kvl_alerts_cfg_parse_text(const char *name, const char *text, char *err,
                                            size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_string(name, text, err, errlen);
    if (y == NULL) {
        return NULL;
    }
    kvl_alerts_cfg_t *c = NULL;
    if (kvl_alerts_cfg_parse(kvl_cfg_root(y), &c) != 0) {
        snprintf(err, errlen, "%s", kvl_cfg_last_error(y));
        c = NULL;
    }
    kvl_cfg_free(y);
    return c;
}
