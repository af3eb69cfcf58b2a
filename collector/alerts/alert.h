/*
 * alert.h — an alert as every part of the alerts room sees it: the rule engine makes it,
 * the alert book keeps its lifecycle (and persists it), the notifiers deliver it, the
 * HTTP API shows it.
 *
 * An alert is identified by its labels (sorted by key, no key twice, no empty value):
 * `alertname` (the rule's name), `severity`, and of `agent`, `site`, `device`,
 * `interface`, `target`, `group`, `instance` those the alert is about, plus the rule's
 * own labels. The fingerprint is a 64-bit hash of those labels (FNV-1a over
 * "key\0value\0" pairs in order), stable across restarts and versions: it is how the
 * book, the outbox and the API name an alert ("%016llx" in text).
 *
 * Times are sample times (when the agent measured), not when the collector heard of it:
 *   active_at_ms  when the condition began to hold (the start of `for:`)
 *   starts_at_ms  the alert's real start, which Alertmanager's startsAt and every page
 *                 shows: the same as active_at_ms (a page says since when it is true, not
 *                 since when the rule's `for:` ran out)
 *   ends_at_ms    when it stopped holding (resolved), else 0
 *   changed_ms    wall-clock time at the collector of this change
 * `late`: the change was found in data older than the engine's late horizon (an agent's
 * backlog after a cut, events queued while it was lost): it goes to the history, and
 * pages nobody; a resolution of an alert that paged is never late (it is always sent).
 *
 * A kvl_alert_t handed to a callback points into its maker's memory, valid for the call
 * only; kvl_alert_dup makes an owned copy (kvl_alert_free frees it). The JSON forms are
 * what the book and the outbox persist and what the API returns.
 */
#ifndef KVL_ALERT_H
#define KVL_ALERT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define KVL_ALERT_LABELS_MAX 32
#define KVL_ALERT_FIELDS_MAX 16

typedef enum {
    KVL_ALERT_PENDING = 1, /* the condition holds, for `for:` not yet */
    KVL_ALERT_FIRING,
    KVL_ALERT_RESOLVED,
} kvl_alert_status_t;

typedef struct kvl_alert {
    uint64_t fingerprint; /* kvl_alert_fingerprint(labels) */
    kvl_alert_status_t status;
    int severity;     /* kvl_rule_severity_t */
    const char *rule; /* the rule's name (= the alertname label) */
    kvl_label_t labels[KVL_ALERT_LABELS_MAX];
    size_t n_labels;         /* sorted by key */
    const char *summary;     /* the rule's template, rendered */
    const char *description; /* the interface's ifAlias or description, NULL if none */
    double value;            /* the value that made the change (threshold rules) */
    double threshold;
    bool has_value;
    bool has_threshold;
    int64_t active_at_ms;
    int64_t starts_at_ms;
    int64_t ends_at_ms;
    int64_t changed_ms;
    bool late;
    const char *url; /* the graph on the collector's web server (kvl_alert_url), or NULL */
    /* The fields of the event that made or last changed the alert (a device_down's
     * `address`, `reason`, `index`), as the agent sent them; none for an alert of a series
     * no event touched. Not part of the identity (no fingerprint), kept by the book from
     * one change to the next when a change brings none. */
    kvl_label_t fields[KVL_ALERT_FIELDS_MAX];
    size_t n_fields;
} kvl_alert_t;

/* Called on the loop's thread for every status change of an alert (pending, firing,
 * resolved); `a` is valid for the call only. */
typedef void (*kvl_alert_cb)(void *ctx, const kvl_alert_t *a);

/* Sorts a->labels by key and sets a->fingerprint. Returns 0, or KVL_EINVAL when a key
 * appears twice or a key or value is empty. */
int kvl_alert_finish(kvl_alert_t *a);

/* The fingerprint of labels sorted by key. */
uint64_t kvl_alert_fingerprint(const kvl_label_t *labels, size_t n);

/* The value of a label, or NULL. */
const char *kvl_alert_label(const kvl_alert_t *a, const char *key);

/* The value of one of the event's fields, or NULL. */
const char *kvl_alert_field(const kvl_alert_t *a, const char *key);

/* An owned deep copy (strings included), or NULL when out of memory. */
kvl_alert_t *kvl_alert_dup(const kvl_alert_t *a);
void kvl_alert_free(kvl_alert_t *a);

/* "pending", "firing", "resolved". */
const char *kvl_alert_status_name(kvl_alert_status_t s);

/* The alert as a JSON object (a new reference; NULL when out of memory):
 *   {"fingerprint": "<16 hex>", "status": "firing", "rule": ..., "severity": "critical",
 *    "labels": {...}, "summary": ..., "description": ..., "value": 93.2, "threshold": 80,
 *    "active_at": "<RFC 3339, ms>", "starts_at": ..., "ends_at": ... (resolved only),
 *    "changed": ..., "late": false, "url": ...,
 *    "fields": {"address": ..., "index": "3", "reason": "timeout"} (when it has any)} */
json_t *kvl_alert_to_json(const kvl_alert_t *a);

/* The reverse, into an owned alert (kvl_alert_free). Returns NULL with why set when the
 * object is not one kvl_alert_to_json could have made. */
kvl_alert_t *kvl_alert_from_json(const json_t *o, char *why, size_t whylen);

/* The graph URL of an alert (the URL pattern the web server serves):
 *   <base>/graph.html?site=S&device=D&interface=I&target=T&from=<s>&to=<s>
 * with the labels the alert has (percent-encoded), from one hour before starts_at to one
 * hour after ends_at (or "now" while it lasts), in Unix seconds. base without a trailing
 * '/', e.g. "http://127.0.0.1:8080". Returns the length it needed (like snprintf). */
size_t kvl_alert_url(const char *base, const kvl_alert_t *a, char *buf, size_t len);

/* RFC 3339 UTC with milliseconds ("2026-12-05T14:33:00.000Z") into buf (>= 32 bytes). */
void kvl_alert_time_format(int64_t ms, char *buf, size_t len);
/* The reverse (also without fraction, and with a numeric offset); 0 or KVL_EINVAL. */
int kvl_alert_time_parse(const char *s, int64_t *ms);

#endif
