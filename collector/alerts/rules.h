/*
 * rules.h — alert rules: the rules file's language, parsed and checked into a rule list.
 *
 * A rules file (or every *.yaml file of a folder, in name order) holds `rules:`, a list of
 * rules, and optionally `disable:`, names of built-in rules to leave out. A rule has a
 * unique name, a severity, matchers selecting series (globs, `!glob` negates), exactly one
 * condition (threshold, state, no_data or event), an optional flapping modifier (state
 * rules only), labels to add and a summary template. The built-in rules are YAML text in
 * the same language (kvl_rules_defaults), parsed by the same code; a user rule with the
 * name of a built-in one replaces it. Errors name file:line:column. Nothing here
 * evaluates a rule: this is the checked structure an engine works from.
 */
#ifndef KVL_RULES_H
#define KVL_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    KVL_RULE_SEV_CRITICAL,
    KVL_RULE_SEV_MAJOR,
    KVL_RULE_SEV_MINOR,
    KVL_RULE_SEV_WARNING,
    KVL_RULE_SEV_INFO,
} kvl_rule_severity_t;

typedef enum {
    KVL_RULE_NONE,
    KVL_RULE_THRESHOLD,
    KVL_RULE_STATE,
    KVL_RULE_NO_DATA,
    KVL_RULE_EVENT,
} kvl_rule_kind_t;

/* What a threshold compares: a metric's value, its rate per second, or a derived figure. */
typedef enum { KVL_THR_VALUE, KVL_THR_RATE, KVL_THR_DERIVED } kvl_thr_source_t;

typedef enum {
    KVL_DERIVED_UTILISATION_PCT, /* interface: octets per second against speed_bps */
    KVL_DERIVED_ERROR_RATIO,     /* interface: errors per packet, in % */
    KVL_DERIVED_LOSS_PCT,        /* probe: lost_pct */
    KVL_DERIVED_RTT_MS,          /* probe: rtt_median_ms (connect_median_ms for tcp) */
    KVL_DERIVED_MOS,             /* probe: mos */
    KVL_DERIVED_CERT_DAYS,       /* https probe: cert_days */
    KVL_DERIVED_HTTP_STATUS,     /* http probe: status */
} kvl_derived_t;

typedef enum {
    KVL_STATE_OPER_DOWN_ADMIN_UP,
    KVL_STATE_DEVICE_UNREACHABLE,
    KVL_STATE_AGENT_SILENT,
} kvl_state_t;

/* A glob (fnmatch syntax, checked); NULL glob: matches everything. */
typedef struct {
    char *glob;
    bool negate; /* written "!glob": matches what the glob does not */
} kvl_rule_match_t;

typedef struct {
    char *key;
    kvl_rule_match_t m;
} kvl_rule_kv_match_t;

typedef struct {
    char *key;
    char *value;
} kvl_rule_label_t;

/* A number given or not. */
typedef struct {
    double v;
    bool set;
} kvl_rule_num_t;

typedef struct kvl_rule {
    char *name;
    char origin[300]; /* "file:line:column" of the rule, "<defaults>:..." for built-in ones */
    bool builtin;
    int severity; /* kvl_rule_severity_t */

    /* select: */
    kvl_rule_match_t site, device, interface, group, target, metric;
    kvl_rule_kv_match_t *sel_labels;
    size_t n_sel_labels;

    int kind; /* kvl_rule_kind_t */
    struct {
        int source;   /* kvl_thr_source_t */
        char *metric; /* value, rate */
        int derived;  /* kvl_derived_t */
        kvl_rule_num_t above, below, clear;
        int64_t for_ms;
    } threshold;
    struct {
        int state;         /* kvl_state_t */
        int64_t intervals; /* agent_silent: intervals without a batch (3) */
        int64_t for_ms;
    } state;
    struct {
        int64_t intervals;
    } no_data;
    struct {
        char *name; /* glob over event names */
        kvl_rule_kv_match_t *match;
        size_t n_match;
        /* The event that resolves the alert (same agent, device, interface and target):
         * `clear:`, else the pair's other half when `name` is one of a known pair
         * (linkDown/linkUp, device_down/device_up, target_down/target_up,
         * agent_lost/agent_back), else NULL. */
        char *clear;
        /* Resolved this long after its event when no clearing event came first: `hold:`;
         * 0 with a clearing event and no `hold:` (held until it comes); 5m without one. */
        int64_t hold_ms;
    } event;
    struct {
        bool on;
        int64_t changes;
        int64_t window_ms;
        int64_t stable_ms;
    } flapping;

    kvl_rule_label_t *labels; /* added to the alert */
    size_t n_labels;
    char *summary; /* template; {{label}} references checked */
} kvl_rule_t;

typedef struct kvl_rules {
    kvl_rule_t *v;
    size_t n;
} kvl_rules_t;

/* The built-in rules, as YAML text in the rules file's language. */
const char *kvl_rules_defaults(void);

/* Loads a rules file, or every *.yaml file of a folder (sorted by name), merged with the
 * built-in rules (less those named by `disable:` or replaced by a user rule of the same
 * name). path NULL: the built-in rules alone. Returns 0, or KVL_ECONFIG / KVL_ENOMEM /
 * KVL_EIO with "file:line:column: message" (or "path: reason") in err. */
int kvl_rules_load(const char *path_or_dir, kvl_rules_t **out, char *err, size_t errlen);

/* The same from one text; `name` stands in for the file name in messages. */
int kvl_rules_parse(const char *name, const char *text, kvl_rules_t **out, char *err,
                    size_t errlen);

void kvl_rules_free(kvl_rules_t *r);

/* The rule of that name, or NULL. */
const kvl_rule_t *kvl_rules_find(const kvl_rules_t *r, const char *name);

/* The clearing event of a known pair ("linkDown" -> "linkUp", "device_down" ->
 * "device_up", "target_down" -> "target_up", "agent_lost" -> "agent_back"), or NULL. */
const char *kvl_rules_event_pair(const char *name);

/* Whether event rule r fires on an event of this kind: its name's glob matches, except that a
 * data event (kvl_event_is_data, wire.h) is matched only by a rule naming it exactly, so that
 * `name: '*'` and other catch-alls never page on data. */
bool kvl_rules_event_match(const kvl_rule_t *r, const char *kind);

/* Whether `name` is a metric of a built-in family (the table in rules.c). */
bool kvl_rules_metric_known(const char *name);

/* Checks glob syntax: 0, or KVL_EINVAL and a sentence in why. */
int kvl_rules_glob_check(const char *glob, char *why, size_t whylen);

/* Whether s matches m (NULL glob matches everything; negation applied). */
bool kvl_rules_match(const kvl_rule_match_t *m, const char *s);

const char *kvl_rules_severity_name(int severity);

#endif
