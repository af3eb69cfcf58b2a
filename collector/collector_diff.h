/*
 * collector_diff.h — what differs between the running collector configuration and a new one
 * read on SIGHUP (main.c's reload): the keys that cannot change while the collector runs, and
 * per live section what was added, removed or changed, for the reload's summary line.
 *
 * Live (applied by a reload): `rules` (the file is read again even when its path is the
 * same), `alerts` but for `history_max` and `root_cause`, `receivers`, `sites`, `log_level`,
 * `late_after` and `web_url`. Every other key needs a restart. docs/configuration.md lists
 * the same ("Reloading").
 *
 * Pure functions over the parsed structures: no I/O, no allocation.
 */
#ifndef KVL_COLLECTOR_DIFF_H
#define KVL_COLLECTOR_DIFF_H

#include <stdbool.h>
#include <stddef.h>

#include "collector_config.h"
#include "rules.h"

/* Writes into buf (len bytes, NUL-terminated, cut if short) the keys, comma-separated, whose
 * values differ between old and neu and that a reload cannot apply ("listen, http.listen,
 * alerts.root_cause"). `sites_toggle`: root-cause alerts would start or stop (the site tree
 * goes from none to some or back while `alerts: root_cause: enabled`), named "sites" then.
 * Returns how many keys were written. */
size_t kvl_collector_cfg_restart_keys(const kvl_collector_cfg_t *old,
                                      const kvl_collector_cfg_t *neu, char *buf, size_t len);

/* Counts of a named list's change (rules, receivers, sites). */
typedef struct kvl_names_diff {
    size_t added, removed, changed, kept; /* kept: same name, same settings */
} kvl_names_diff_t;

/* By name; `changed`: a receiver of that name with any other setting different. NULL: none. */
void kvl_receivers_diff(const kvl_notify_cfg_t *old, const kvl_notify_cfg_t *neu,
                        kvl_names_diff_t *d);
/* By name; `changed`: parent, kind, label, uplink or placement different. NULL: none. */
void kvl_sites_diff(const kvl_sites_cfg_t *old, const kvl_sites_cfg_t *neu, kvl_names_diff_t *d);
/* By name; `changed`: any of what makes the rule select, evaluate, fire and read differs
 * (where it is written, its origin, does not count). NULL: none. */
void kvl_rules_diff(const kvl_rules_t *old, const kvl_rules_t *neu, kvl_names_diff_t *d);

/* Whether the routing part of two `alerts:` sections is the same (default receiver,
 * group_by, timings, routes, escalation). NULL stands for the defaults. */
bool kvl_alerts_routing_same(const kvl_alerts_cfg_t *a, const kvl_alerts_cfg_t *b);

/* "2 added, 1 removed, 1 changed" (the non-zero counts), or "unchanged", into buf. */
void kvl_names_diff_format(const kvl_names_diff_t *d, char *buf, size_t len);

#endif
