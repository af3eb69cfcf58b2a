/*
 * engine_internal.h — what the rule engine's files share (engine.h says what the engine
 * does): its state types, small helpers and the functions one file calls in another.
 * engine_core.c: agents, series, binding, evaluation, the timer, life; engine_alert.c: an
 * alert's labels, summary and life (engine_as_bad, engine_as_good: they alone decide what
 * is reported and whether it is late), restored alerts; engine_events.c: events.
 */
#ifndef KVL_ENGINE_INTERNAL_H
#define KVL_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "engine.h"
#include "log.h"

#define SERIES_INTERVAL_DEFAULT_S 60
/* A series without data and without an active alert for this long (or 3 of its longest
 * no_data window, if longer) is forgotten; looked for every SWEEP_EVERY_MS. */
#define SERIES_IDLE_MIN_MS (24 * 3600 * 1000LL)
#define SWEEP_EVERY_MS (10 * 60 * 1000LL)
#define SUMMARY_MAX 1024
#define URL_MAX 2048

enum { ST_OK, ST_PENDING, ST_FIRING };

/* One alert's life. */
typedef struct astate {
    uint8_t st;
    bool paged;     /* reported firing, not late */
    bool held;      /* firing reached in late data, not reported yet */
    bool pend_told; /* pending reported */
    bool has_value;
    int64_t active_at; /* sample time the condition began */
    double value;
} astate_t;

/* What an alert is about: its labels' values (NULL or "" left out). */
typedef struct subject {
    const char *agent, *site, *device, *interface, *target, *group, *instance;
    const char *description;
    const kvl_label_t *fields; /* of the event that last touched it (kvl_alert_t.fields) */
    size_t n_fields;
    const char *event; /* engine_evalert_new: the kind to put first in fields, or NULL */
    bool flapping;
} subject_t;

typedef struct metric {
    const char *name; /* interned */
    bool counter;
    bool fresh, unknown; /* in the instant being evaluated */
    bool have;           /* v holds a value (the last known) */
    bool prev_ok, rate_ok;
    double v, prev, rate;
    int64_t prev_t;
} metric_t;

/* The flapping modifier's state (state rules with it only). */
typedef struct flap {
    bool bad, bad_known, flapping;
    astate_t as; /* the flapping alert */
    int64_t last_change;
    size_t ring_n, ring_head;
    int64_t ring[]; /* change times, changes + 1 of them */
} flap_t;

/* A rule bound to a series (kept small: a series has one per rule that selects it). */
typedef struct rstate {
    const kvl_rule_t *rule;
    int16_t m[4]; /* the metrics the condition reads, -1 if absent */
    astate_t as;
    bool seen_up; /* oper_down_admin_up: the interface was seen up (or a trap said down) */
    flap_t *flap; /* NULL without the flapping modifier */
} rstate_t;

struct agent;

typedef struct series {
    struct series *next;
    struct agent *agent;
    kvl_scope_t scope;
    const char *device, *family; /* interned */
    const char *instance;        /* the end of key */
    const char *alias;           /* ifAlias (or ifDescr) label, NULL if none */
    kvl_label_t *labels;         /* one block with their strings */
    size_t n_labels;
    char reason[64];     /* device: why it is down */
    kvl_label_t *fields; /* the last device or link event's fields (engine_fields_dup) */
    subject_t subj;
    uint32_t interval_s;
    metric_t *m;
    size_t n_m, cap_m;
    rstate_t *rs;
    size_t n_rs;
    bool dirty;     /* metrics added since the rules were bound */
    bool announced; /* this instant is a linkDown/linkUp trap: a change the device told */
    bool has_nodata;
    bool doomed;          /* the sweep forgets it */
    bool seen;            /* last_t is set */
    int64_t last_t;       /* sample time of the last instant evaluated */
    int64_t last_arrival; /* wall time it last arrived */
    char key[];           /* "agent \x1f device \x1f scope \x1f instance" */
} series_t;

typedef struct slot {
    const kvl_series_def_t *def;
    series_t *s; /* NULL: empty */
    uint32_t id;
    int32_t midx;
} slot_t;

typedef struct silent {
    const kvl_rule_t *rule;
    astate_t as;
} silent_t;

typedef struct agent {
    struct agent *next;
    char *id, *site;
    slot_t *slots;
    size_t cap, n;
    int64_t last_arrival;
    uint32_t min_interval_s;
    silent_t *silent;
    size_t n_silent;
    subject_t subj;
    bool lost;           /* an agent_lost event came, no agent_back nor batch since */
    int64_t first_batch; /* wall time of its first batch (since the engine started), or 0 */
    int64_t back_at;     /* wall time it was last back from lost or silent: no_data counts from
                            there, so its backlog has time to arrive */
    size_t n_series;     /* its series (their `agent` points here) */
    bool sweep;          /* the sweep forgets some of its series */
} agent_t;

typedef struct evalert {
    struct evalert *next;
    const kvl_rule_t *rule;
    uint64_t fp;
    char *s[6];          /* agent, site, device, interface, target, description */
    kvl_label_t *fields; /* the firing event's (engine_fields_dup) */
    size_t n_fields;
    subject_t subj;
    astate_t as;
} evalert_t;

typedef struct restored {
    uint64_t fp;
    kvl_alert_t *a;
} restored_t;

/* Strings many series share (metric, family and device names), kept once. */
typedef struct intern {
    char **v; /* open addressing; NULL: empty */
    size_t cap, n;
} intern_t;

struct kvl_engine {
    uv_loop_t *loop;
    intern_t names;
    uv_timer_t timer;
    kvl_engine_cfg_t cfg;
    char *web_url;
    kvl_alert_cb cb;
    void *cb_ctx;
    const kvl_rules_t *rules;
    const kvl_rule_t **event_rules;
    size_t n_event_rules;
    agent_t *agents[256];
    series_t **sb; /* series buckets */
    size_t nsb, n_series;
    int64_t next_sweep;         /* wall time of the next look for forgotten series */
    kvl_log_limit_t full_limit; /* the log line of a series refused at max_series */
    bool refusing;              /* engine_series_get refused a new series (max_series) */
    evalert_t *evalerts;
    restored_t *restored;
    size_t n_restored;
    int64_t now; /* wall time of the call being handled */
    kvl_engine_stats_t stats;
    bool any_nodata;   /* a no_data rule exists: the timer scans the series */
    rstate_t *scratch; /* series_bind's rules to add, one per rule */
    bool *dev_ok;      /* per rule: takes the site and device of dev_agent, dev_name */
    const agent_t *dev_agent;
    char dev_name[512];
};

static inline int64_t engine_now(kvl_engine_t *e)
{
    return e->cfg.now_ms(e->cfg.now_ctx);
}

static inline uint64_t engine_hash(const char *s, uint64_t h)
{
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return (h ^ 0x1f) * 1099511628211ull;
}

static inline bool engine_nonempty(const char *s)
{
    return s != NULL && s[0] != '\0';
}

static inline const char *engine_label(const kvl_label_t *l, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(l[i].key, key) == 0) {
            return l[i].value;
        }
    }
    return NULL;
}

/* engine_alert.c: an alert's labels and life */
uint64_t engine_fingerprint(const kvl_rule_t *r, const subject_t *s);
/* The condition holds at t (value v, if has_v): pending, firing, or a held one confirmed. */
void engine_as_bad(kvl_engine_t *e, const kvl_rule_t *r, const subject_t *s, astate_t *as,
                   int64_t t, int64_t for_ms, bool late, bool has_v, double v);
/* The condition is over at t: resolved (late when it never paged), or a late pair. */
void engine_as_good(kvl_engine_t *e, const kvl_rule_t *r, const subject_t *s, astate_t *as,
                    int64_t t, bool late);
/* The life of a restored alert (firing or pending). */
void engine_restored_state(const kvl_alert_t *a, astate_t *as);
/* Takes the restored alert of fingerprint fp into as; true if there was one. */
bool engine_restored_take(kvl_engine_t *e, uint64_t fp, astate_t *as);

/* engine_core.c: agents and series */
agent_t *engine_agent_get(kvl_engine_t *e, const char *id, const char *site);
agent_t *engine_agent_find(kvl_engine_t *e, const char *id);
series_t *engine_series_get(kvl_engine_t *e, agent_t *ag, const char *device, kvl_scope_t scope,
                            const char *instance, const char *family, const kvl_label_t *labels,
                            size_t n_labels, uint32_t interval_s);
int engine_series_add_metric(kvl_engine_t *e, series_t *s, const char *name, bool counter);
/* Evaluates the instant t of a series whose samples are in (fresh/unknown flags). */
void engine_series_flush(kvl_engine_t *e, series_t *s, int64_t t, bool late);

/* An event's fields as an alert carries them: `event` (its kind, when not NULL) first, then
 * its own (those with a key and a value; at most KVL_ALERT_FIELDS_MAX in all), as one
 * allocation to free(); *n_out their number. NULL when none or out of memory. */
kvl_label_t *engine_fields_dup(const char *kind, const kvl_label_t *f, size_t n, size_t *n_out);
/* The series' fields become those of the event ev (s->subj points at them). */
void engine_series_set_fields(series_t *s, const kvl_event_t *ev);

/* engine_events.c: event alerts */
evalert_t *engine_evalert_new(kvl_engine_t *e, const kvl_rule_t *r, const subject_t *s);
void engine_evalert_remove(kvl_engine_t *e, evalert_t *x);

#endif
