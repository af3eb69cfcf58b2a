/*
 * alerts_config.h — the `alerts:` section of collector.yaml: how the alert book routes
 * alerts to receivers (routes with label globs, grouping and its timings, a default
 * receiver), escalation per severity, and the history's bound. Receivers themselves are
 * the notifiers' `receivers:` section (notify.h); the book checks at start that every
 * receiver named here exists. Every key is documented in docs/configuration.md.
 */
#ifndef KVL_ALERTS_CONFIG_H
#define KVL_ALERTS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "rules.h"

#define KVL_ALERTS_GROUP_BY_MAX 16
#define KVL_ALERTS_ROUTES_MAX 1000

/* One route: alerts whose labels match every glob go to `receiver`, grouped by the values
 * of the group_by labels. */
typedef struct kvl_alerts_route {
    kvl_rule_kv_match_t *match; /* label -> glob ('!glob' negates); a missing label is "" */
    size_t n_match;
    char *receiver;
    char **group_by; /* label names; NULL with n_group_by 0: the section's group_by */
    size_t n_group_by;
    int64_t group_wait_ms; /* -1: the section's value, likewise the next two */
    int64_t group_interval_ms;
    int64_t repeat_interval_ms;
    bool cont; /* `continue: true`: the next routes are tried too */
} kvl_alerts_route_t;

/* A firing alert of `severity` not acknowledged `after_ms` after it paged goes to
 * `receiver` (once). */
typedef struct kvl_alerts_escalation {
    int severity; /* kvl_rule_severity_t */
    int64_t after_ms;
    char *receiver;
} kvl_alerts_escalation_t;

/* Root-cause alerts (collector/topology/rootcause.h): the alerts of what the topology says is
 * cut off are suppressed and one alert per cut is raised instead. */
typedef struct kvl_alerts_root_cause {
    bool enabled;      /* true */
    int64_t hold_ms;   /* a cut stands this long before its alert fires (30s) */
    int64_t settle_ms; /* after a cut is repaired, what it cut off stays quiet this long (2m) */
} kvl_alerts_root_cause_t;

typedef struct kvl_alerts_cfg {
    char *receiver; /* alerts no route takes; NULL: recorded, sent nowhere */
    char **group_by;
    size_t n_group_by;
    int64_t group_wait_ms;      /* a new group gathers alerts this long before its first
                                   notification (1s) */
    int64_t group_interval_ms;  /* later changes of a group at most this often (5s) */
    int64_t repeat_interval_ms; /* still firing, not acknowledged: sent again (4h) */
    kvl_alerts_route_t *routes;
    size_t n_routes;
    kvl_alerts_escalation_t *escalation;
    size_t n_escalation;
    int64_t history_max; /* changes kept in the history (10000) */
    kvl_alerts_root_cause_t root_cause;
} kvl_alerts_cfg_t;

/* A configuration with the defaults (no route, no receiver). NULL when out of memory. */
kvl_alerts_cfg_t *kvl_alerts_cfg_new(void);
void kvl_alerts_cfg_free(kvl_alerts_cfg_t *c);

/* A KVL_CFG_CUSTOM parser for `alerts:`; target is a kvl_alerts_cfg_t ** (allocated here
 * with the defaults, then the section applied). Returns 0 or KVL_ECONFIG. */
int kvl_alerts_cfg_parse(kvl_cfg_node_t n, void *target);

/* The same from a YAML text holding the section's keys at the top (tests, fuzzing).
 * Returns NULL with "name:line:column: message" in err. */
kvl_alerts_cfg_t *kvl_alerts_cfg_parse_text(const char *name, const char *text, char *err,
                                            size_t errlen);

/* Whether every receiver the section names (default, routes, escalation) is one `has`
 * knows (e.g. the `receivers:` section, for --check-config; the book asks the notifier).
 * Returns 0, or KVL_ECONFIG with "alerts: receiver 'x' is not one of `receivers:`". */
int kvl_alerts_cfg_check_receivers(const kvl_alerts_cfg_t *c,
                                   bool (*has)(const void *ctx, const char *name), const void *ctx,
                                   char *err, size_t errlen);

/* A route's effective timings and group_by (its own, else the section's). */
int64_t kvl_alerts_route_wait(const kvl_alerts_cfg_t *c, const kvl_alerts_route_t *r);
int64_t kvl_alerts_route_interval(const kvl_alerts_cfg_t *c, const kvl_alerts_route_t *r);
int64_t kvl_alerts_route_repeat(const kvl_alerts_cfg_t *c, const kvl_alerts_route_t *r);

#endif
