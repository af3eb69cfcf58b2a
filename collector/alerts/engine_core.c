/*
 * engine_core.c — the rule engine (see engine.h for what it decides and why): agents,
 * series, rules bound to them, evaluation, the timer, life.
 *
 * Layout: agents (a chained hash by id) each own a table of their series ids (open
 * addressing: id -> series and metric index, with the definition it was bound from);
 * series (a chained hash by "agent, device, scope, instance") own their metrics' last
 * values and rates and the rules bound to them (rstate_t); event alerts are a list.
 * Every alert's life is one astate_t driven by engine_as_bad and engine_as_good
 * (engine_alert.c); events are engine_events.c's.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_internal.h"
#include "kvl.h"
#include "log.h"

static int64_t real_now(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- agents and their id tables ------------------------------------------------------- */

agent_t *engine_agent_find(kvl_engine_t *e, const char *id)
{
    agent_t *a = e->agents[engine_hash(id, 1469598103934665603ull) & 255];
    while (a != NULL && strcmp(a->id, id) != 0) {
        a = a->next;
    }
    return a;
}

agent_t *engine_agent_get(kvl_engine_t *e, const char *id, const char *site)
{
    agent_t *a = engine_agent_find(e, id);
    if (a != NULL) {
        return a;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL || (a->id = strdup(id)) == NULL ||
        (a->site = strdup(site != NULL ? site : "")) == NULL) {
        if (a != NULL) {
            free(a->id);
        }
        free(a);
        return NULL;
    }
    a->subj = (subject_t){.agent = a->id, .site = a->site};
    a->last_arrival = e->now;
    size_t n = 0;
    for (size_t i = 0; i < e->rules->n; i++) {
        const kvl_rule_t *r = &e->rules->v[i];
        n += r->kind == KVL_RULE_STATE && r->state.state == KVL_STATE_AGENT_SILENT;
    }
    a->silent = calloc(n ? n : 1, sizeof(*a->silent));
    if (a->silent == NULL) {
        free(a->id);
        free(a->site);
        free(a);
        return NULL;
    }
    for (size_t i = 0; i < e->rules->n; i++) {
        const kvl_rule_t *r = &e->rules->v[i];
        if (r->kind == KVL_RULE_STATE && r->state.state == KVL_STATE_AGENT_SILENT &&
            kvl_rules_match(&r->site, a->site) && kvl_rules_match(&r->device, a->id)) {
            silent_t *sl = &a->silent[a->n_silent++];
            sl->rule = r;
            if (e->n_restored > 0) {
                engine_restored_take(e, engine_fingerprint(r, &a->subj), &sl->as);
            }
        }
    }
    size_t b = engine_hash(id, 1469598103934665603ull) & 255;
    a->next = e->agents[b];
    e->agents[b] = a;
    return a;
}

/* Agents number their series consecutively (a family's metrics, then the next): ids that
 * follow each other land in slots that do, so a batch walks its agent's table in order
 * instead of missing the cache at every sample; the high bits folded in keep ids a
 * multiple of the table's size apart from piling up. */
static size_t slot_hash(uint32_t id, size_t cap)
{
    return (size_t)((id ^ (id >> 20)) & (uint32_t)(cap - 1));
}

/* The agent's id table rebuilt with cap slots (a power of two; 0: none), without the slots
 * of doomed series when drop_doomed. 0 or KVL_ENOMEM (then the table is as it was). */
static int slots_rehash(agent_t *a, size_t cap, bool drop_doomed)
{
    slot_t *v = NULL;
    if (cap > 0 && (v = calloc(cap, sizeof(*v))) == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < a->cap && cap > 0; i++) {
        if (a->slots[i].s == NULL || (drop_doomed && a->slots[i].s->doomed)) {
            continue;
        }
        size_t h = slot_hash(a->slots[i].id, cap);
        while (v[h].s != NULL) {
            h = (h + 1) & (cap - 1);
        }
        v[h] = a->slots[i];
    }
    free(a->slots);
    a->slots = v;
    a->cap = cap;
    return 0;
}

static int slots_grow(agent_t *a)
{
    return slots_rehash(a, a->cap ? a->cap * 2 : 1024, false);
}

/* --- series ---------------------------------------------------------------------------- */

static void series_free(series_t *s)
{
    for (size_t i = 0; i < s->n_rs; i++) {
        free(s->rs[i].flap);
    }
    free(s->labels);
    free(s->fields);
    free(s->m);
    free(s->rs);
    free(s);
}

kvl_label_t *engine_fields_dup(const char *kind, const kvl_label_t *f, size_t n, size_t *n_out)
{
    size_t bytes = 0, k = 0;
    kvl_label_t first = {"event", kind};
    for (size_t i = kind != NULL ? 0 : 1; i <= n && k < KVL_ALERT_FIELDS_MAX; i++) {
        const kvl_label_t *l = i == 0 ? &first : &f[i - 1];
        if (engine_nonempty(l->key) && l->value != NULL) {
            bytes += sizeof(*f) + strlen(l->key) + strlen(l->value) + 2;
            k++;
        }
    }
    *n_out = 0;
    kvl_label_t *out = k > 0 ? malloc(bytes) : NULL;
    if (out == NULL) {
        return NULL;
    }
    char *p = (char *)(out + k);
    for (size_t i = kind != NULL ? 0 : 1; i <= n && *n_out < k; i++) {
        const kvl_label_t *l = i == 0 ? &first : &f[i - 1];
        if (engine_nonempty(l->key) && l->value != NULL) {
            size_t kl = strlen(l->key) + 1, vl = strlen(l->value) + 1;
            out[*n_out].key = memcpy(p, l->key, kl);
            out[*n_out].value = memcpy(p + kl, l->value, vl);
            p += kl + vl;
            (*n_out)++;
        }
    }
    return out;
}

void engine_series_set_fields(series_t *s, const kvl_event_t *ev)
{
    free(s->fields);
    s->fields = engine_fields_dup(ev->kind, ev->fields, ev->n_fields, &s->subj.n_fields);
    s->subj.fields = s->fields;
}

/* The interned copy of str (the same pointer for the same text), NULL when out of memory. */
static const char *intern(kvl_engine_t *e, const char *str)
{
    intern_t *t = &e->names;
    if ((t->n + 1) * 2 > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        char **v = calloc(cap, sizeof(*v));
        if (v == NULL) {
            return NULL;
        }
        for (size_t i = 0; i < t->cap; i++) {
            if (t->v[i] != NULL) {
                size_t h = engine_hash(t->v[i], 1469598103934665603ull) & (cap - 1);
                while (v[h] != NULL) {
                    h = (h + 1) & (cap - 1);
                }
                v[h] = t->v[i];
            }
        }
        free(t->v);
        t->v = v;
        t->cap = cap;
    }
    size_t h = engine_hash(str, 1469598103934665603ull) & (t->cap - 1);
    while (t->v[h] != NULL) {
        if (strcmp(t->v[h], str) == 0) {
            return t->v[h];
        }
        h = (h + 1) & (t->cap - 1);
    }
    if ((t->v[h] = strdup(str)) == NULL) {
        return NULL;
    }
    t->n++;
    return t->v[h];
}

static int series_rehash(kvl_engine_t *e)
{
    size_t nsb = e->nsb ? e->nsb * 2 : 4096;
    series_t **sb = calloc(nsb, sizeof(*sb));
    if (sb == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < e->nsb; i++) {
        series_t *s = e->sb[i];
        while (s != NULL) {
            series_t *next = s->next;
            size_t b = engine_hash(s->key, 1469598103934665603ull) & (nsb - 1);
            s->next = sb[b];
            sb[b] = s;
            s = next;
        }
    }
    free(e->sb);
    e->sb = sb;
    e->nsb = nsb;
    return 0;
}

/* Takes a definition's labels (once: a series made from an event has none until its
 * definition comes); the alias follows them. Returns 0 or KVL_ENOMEM. */
static int series_set_labels(series_t *s, const kvl_label_t *labels, size_t n_labels)
{
    if (s->n_labels > 0 || n_labels == 0) {
        return 0;
    }
    size_t bytes = n_labels * sizeof(*s->labels);
    for (size_t i = 0; i < n_labels; i++) {
        bytes += strlen(labels[i].key) + strlen(labels[i].value ? labels[i].value : "") + 2;
    }
    free(s->labels);
    s->labels = malloc(bytes);
    if (s->labels == NULL) {
        return KVL_ENOMEM;
    }
    char *p = (char *)(s->labels + n_labels);
    for (size_t i = 0; i < n_labels; i++) {
        const char *v = labels[i].value != NULL ? labels[i].value : "";
        size_t kl = strlen(labels[i].key) + 1, vl = strlen(v) + 1;
        s->labels[i].key = memcpy(p, labels[i].key, kl);
        s->labels[i].value = memcpy(p + kl, v, vl);
        p += kl + vl;
    }
    s->n_labels = n_labels;
    const char *alias = engine_label(s->labels, s->n_labels, "ifAlias");
    if (!engine_nonempty(alias)) {
        alias = engine_label(s->labels, s->n_labels, "ifDescr");
    }
    s->alias = engine_nonempty(alias) ? alias : NULL;
    if (s->scope == KVL_SCOPE_INTERFACE) {
        s->subj.description = s->alias;
    }
    s->dirty = true; /* label selectors may take it now */
    return 0;
}

/* The series of (agent, device, scope, instance), made if new (family: its family's or
 * group's name, labels: its definition's). NULL when out of memory. */
series_t *engine_series_get(kvl_engine_t *e, agent_t *ag, const char *device, kvl_scope_t scope,
                            const char *instance, const char *family, const kvl_label_t *labels,
                            size_t n_labels, uint32_t interval_s)
{
    char key[2048];
    int kl =
        snprintf(key, sizeof(key), "%s\x1f%s\x1f%d\x1f%s", ag->id, device, (int)scope, instance);
    if (kl < 0 || (size_t)kl >= sizeof(key)) {
        /* names are bounded long before this (the ingest's checks): not a series of ours */
        KVL_LOG_WARN("alerts", ag->id, "a series name of %d bytes is not evaluated", kl);
        return NULL;
    }
    if (e->n_series >= e->nsb && series_rehash(e) != 0) {
        return NULL;
    }
    size_t b = engine_hash(key, 1469598103934665603ull) & (e->nsb - 1);
    for (series_t *s = e->sb[b]; s != NULL; s = s->next) {
        if (strcmp(s->key, key) == 0) {
            if (interval_s > 0) {
                s->interval_s = interval_s;
            }
            return series_set_labels(s, labels, n_labels) == 0 ? s : NULL;
        }
    }
    if (e->n_series >= e->cfg.max_series) {
        e->stats.refused++;
        e->refusing = true;
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &e->full_limit, "alerts", ag->id,
                        "%zu series evaluated, the most kept: a new series (device %s) is not "
                        "evaluated (%llu samples and events refused so far)",
                        e->n_series, device, (unsigned long long)e->stats.refused);
        return NULL;
    }
    size_t klen = strlen(key);
    series_t *s = calloc(1, sizeof(*s) + klen + 1);
    if (s == NULL) {
        return NULL;
    }
    memcpy(s->key, key, klen + 1);
    s->instance = s->key + klen - strlen(instance);
    s->device = intern(e, device);
    s->family = intern(e, family != NULL ? family : "");
    if (s->device == NULL || s->family == NULL) {
        series_free(s);
        return NULL;
    }
    s->agent = ag;
    s->scope = scope;
    s->interval_s = interval_s ? interval_s : SERIES_INTERVAL_DEFAULT_S;
    s->last_arrival = e->now;
    s->subj = (subject_t){.agent = ag->id, .site = ag->site};
    switch (scope) {
    case KVL_SCOPE_INTERFACE:
        s->subj.device = s->device;
        s->subj.interface = s->instance;
        break;
    case KVL_SCOPE_DEVICE:
        s->subj.device = s->device;
        s->subj.description = s->reason;
        break;
    case KVL_SCOPE_GROUP:
        s->subj.device = s->device;
        s->subj.group = s->family;
        s->subj.instance = s->instance;
        break;
    case KVL_SCOPE_LINK:
        s->subj.target = s->instance;
        break;
    default:
        break;
    }
    if (series_set_labels(s, labels, n_labels) != 0) {
        series_free(s);
        return NULL;
    }
    s->next = e->sb[b];
    e->sb[b] = s;
    e->n_series++;
    ag->n_series++;
    e->stats.series = e->n_series;
    return s;
}

static int series_metric(const series_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_m; i++) {
        if (strcmp(s->m[i].name, name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

/* The index of a metric in s, added if new; -1 when out of memory. */
int engine_series_add_metric(kvl_engine_t *e, series_t *s, const char *name, bool counter)
{
    int i = series_metric(s, name);
    if (i >= 0) {
        s->m[i].counter = counter;
        return i;
    }
    if (s->n_m == s->cap_m) {
        size_t cap = s->cap_m ? s->cap_m * 2 : 16;
        metric_t *v = realloc(s->m, cap * sizeof(*v));
        if (v == NULL) {
            return -1;
        }
        s->m = v;
        s->cap_m = cap;
    }
    metric_t *m = &s->m[s->n_m];
    *m = (metric_t){.name = intern(e, name), .counter = counter};
    if (m->name == NULL) {
        return -1;
    }
    s->dirty = true;
    return (int)s->n_m++;
}

/* --- binding rules to a series -------------------------------------------------------- */

/* kvl_rules_match with the common cases (no glob, "*", a plain name) without fnmatch. */
static bool match_fast(const kvl_rule_match_t *m, const char *s)
{
    if (m->glob == NULL) {
        return true;
    }
    if (m->glob[0] == '*' && m->glob[1] == '\0') {
        return !m->negate;
    }
    if (strpbrk(m->glob, "*?[\\") == NULL) {
        return (strcmp(m->glob, s) == 0) != m->negate;
    }
    return kvl_rules_match(m, s);
}

/* Whether rule i takes the series' site and device: the series of one device come
 * together, so the answers for the last device are kept (e->dev_ok). */
static bool site_device_ok(kvl_engine_t *e, size_t i, const series_t *s)
{
    if (e->dev_agent != s->agent || strcmp(e->dev_name, s->device) != 0) {
        for (size_t k = 0; k < e->rules->n; k++) {
            const kvl_rule_t *r = &e->rules->v[k];
            e->dev_ok[k] =
                match_fast(&r->site, s->agent->site) && match_fast(&r->device, s->device);
        }
        e->dev_agent = s->agent;
        snprintf(e->dev_name, sizeof(e->dev_name), "%s", s->device);
    }
    return e->dev_ok[i];
}

static bool selects(kvl_engine_t *e, size_t ri, const series_t *s)
{
    const kvl_rule_t *r = &e->rules->v[ri];
    if (!site_device_ok(e, ri, s)) {
        return false;
    }
    const struct {
        const kvl_rule_match_t *m;
        kvl_scope_t scope;
        const char *what;
    } by_scope[] = {{&r->interface, KVL_SCOPE_INTERFACE, s->instance},
                    {&r->group, KVL_SCOPE_GROUP, s->family},
                    {&r->target, KVL_SCOPE_LINK, s->instance}};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(by_scope); i++) {
        if (by_scope[i].m->glob != NULL &&
            (s->scope != by_scope[i].scope || !match_fast(by_scope[i].m, by_scope[i].what))) {
            return false;
        }
    }
    for (size_t i = 0; i < r->n_sel_labels; i++) {
        const char *v = engine_label(s->labels, s->n_labels, r->sel_labels[i].key);
        if (!match_fast(&r->sel_labels[i].m, v != NULL ? v : "")) {
            return false;
        }
    }
    if (r->metric.glob != NULL) {
        bool any = false;
        for (size_t i = 0; !any && i < s->n_m; i++) {
            any = match_fast(&r->metric, s->m[i].name);
        }
        if (!any) {
            return false;
        }
    }
    return true;
}

/* The metrics the condition reads into m; false when the series lacks one. */
static bool needs(const kvl_rule_t *r, const series_t *s, int16_t m[4])
{
    static const char *const derived[][4] = {
        [KVL_DERIVED_UTILISATION_PCT] = {"in_octets", "out_octets", "speed_bps", NULL},
        [KVL_DERIVED_ERROR_RATIO] = {"in_errors", "out_errors", "in_ucast_pkts", "out_ucast_pkts"},
        [KVL_DERIVED_LOSS_PCT] = {"lost_pct", NULL, NULL, NULL},
        [KVL_DERIVED_RTT_MS] = {"rtt_median_ms", NULL, NULL, NULL},
        [KVL_DERIVED_MOS] = {"mos", NULL, NULL, NULL},
        [KVL_DERIVED_CERT_DAYS] = {"cert_days", NULL, NULL, NULL},
        [KVL_DERIVED_HTTP_STATUS] = {"status", NULL, NULL, NULL},
    };
    const char *want[4] = {NULL, NULL, NULL, NULL};
    m[0] = m[1] = m[2] = m[3] = -1;
    switch (r->kind) {
    case KVL_RULE_THRESHOLD:
        if (r->threshold.source != KVL_THR_DERIVED) {
            want[0] = r->threshold.metric;
            if (r->metric.glob != NULL && !kvl_rules_match(&r->metric, want[0])) {
                return false;
            }
            break;
        }
        memcpy(want, derived[r->threshold.derived], sizeof(want));
        if (r->threshold.derived == KVL_DERIVED_RTT_MS && series_metric(s, want[0]) < 0) {
            want[0] = "connect_median_ms";
        }
        break;
    case KVL_RULE_STATE:
        if (r->state.state == KVL_STATE_OPER_DOWN_ADMIN_UP) {
            want[0] = "oper_status";
            want[1] = "admin_status";
        } else if (r->state.state == KVL_STATE_DEVICE_UNREACHABLE) {
            want[0] = "reachable";
            m[1] = (int16_t)series_metric(s, "down_reason");
        } else {
            return false;
        }
        break;
    case KVL_RULE_NO_DATA:
        return s->n_m > 0;
    default:
        return false;
    }
    for (int i = 0; i < 4; i++) {
        if (want[i] != NULL && (m[i] = (int16_t)series_metric(s, want[i])) < 0) {
            return false;
        }
    }
    return true;
}

static int series_bind(kvl_engine_t *e, series_t *s)
{
    s->dirty = false;
    for (size_t i = 0; i < s->n_rs; i++) {
        int16_t m[4];
        if (needs(s->rs[i].rule, s, m)) {
            memcpy(s->rs[i].m, m, sizeof(m));
        }
    }
    /* the rules to add, then one allocation */
    size_t n_new = 0;
    for (size_t i = 0; i < e->rules->n; i++) {
        const kvl_rule_t *r = &e->rules->v[i];
        if (r->kind == KVL_RULE_EVENT ||
            (r->kind == KVL_RULE_STATE && r->state.state == KVL_STATE_AGENT_SILENT)) {
            continue;
        }
        bool bound = false;
        for (size_t k = 0; !bound && k < s->n_rs; k++) {
            bound = s->rs[k].rule == r;
        }
        int16_t m[4];
        if (!bound && selects(e, i, s) && needs(r, s, m)) {
            e->scratch[n_new] = (rstate_t){.rule = r};
            memcpy(e->scratch[n_new].m, m, sizeof(m));
            n_new++;
        }
    }
    if (n_new == 0) {
        return 0;
    }
    rstate_t *v = realloc(s->rs, (s->n_rs + n_new) * sizeof(*v));
    if (v == NULL) {
        return KVL_ENOMEM;
    }
    s->rs = v;
    for (size_t i = 0; i < n_new; i++) {
        const kvl_rule_t *r = e->scratch[i].rule;
        rstate_t *rs = &s->rs[s->n_rs];
        *rs = e->scratch[i];
        if (r->flapping.on &&
            (rs->flap = calloc(1, sizeof(flap_t) + ((size_t)r->flapping.changes + 1) *
                                                       sizeof(int64_t))) == NULL) {
            return KVL_ENOMEM;
        }
        s->n_rs++;
        s->has_nodata = s->has_nodata || r->kind == KVL_RULE_NO_DATA;
        e->stats.bindings++;
        if (e->n_restored > 0) {
            engine_restored_take(e, engine_fingerprint(r, &s->subj), &rs->as);
            subject_t fs = s->subj;
            fs.flapping = true;
            if (rs->flap != NULL &&
                engine_restored_take(e, engine_fingerprint(r, &fs), &rs->flap->as)) {
                rs->flap->flapping = true;
                rs->flap->last_change = rs->flap->as.active_at;
            }
        }
    }
    return 0;
}

/* --- evaluation ---------------------------------------------------------------------- */

static bool fresh_value(const series_t *s, int m, double *v)
{
    if (m < 0 || !s->m[m].fresh) {
        return false;
    }
    *v = s->m[m].v;
    return true;
}

static bool fresh_rate(const series_t *s, int m, double *v)
{
    if (m < 0 || !s->m[m].fresh || !s->m[m].rate_ok) {
        return false;
    }
    *v = s->m[m].rate;
    return true;
}

/* The threshold's figure at this instant; false when unknown. */
static bool figure(const kvl_rule_t *r, const rstate_t *rs, const series_t *s, double *out)
{
    if (r->threshold.source == KVL_THR_VALUE) {
        return fresh_value(s, rs->m[0], out);
    }
    if (r->threshold.source == KVL_THR_RATE) {
        return fresh_rate(s, rs->m[0], out);
    }
    switch (r->threshold.derived) {
    case KVL_DERIVED_UTILISATION_PCT: {
        double in = 0, outr = 0;
        bool a = fresh_rate(s, rs->m[0], &in), b = fresh_rate(s, rs->m[1], &outr);
        const metric_t *sp = &s->m[rs->m[2]];
        if ((!a && !b) || !sp->have || sp->v <= 0) {
            return false;
        }
        *out = (in > outr ? in : outr) * 8.0 / sp->v * 100.0;
        return true;
    }
    case KVL_DERIVED_ERROR_RATIO: {
        double r4[4];
        for (int i = 0; i < 4; i++) {
            if (!fresh_rate(s, rs->m[i], &r4[i])) {
                return false;
            }
        }
        double errs = r4[0] + r4[1], all = errs + r4[2] + r4[3];
        *out = all > 0 ? errs / all * 100.0 : 0;
        return true;
    }
    default:
        return fresh_value(s, rs->m[0], out);
    }
}

static const char *reason_text(double code)
{
    static const char *const names[] = {"up", "timeout", "authentication failure",
                                        "no sysUpTime or sysName", "other"};
    int c = (int)code;
    return c >= 0 && c < (int)KVL_ARRAY_SIZE(names) ? names[c] : "other";
}

/* A state rule's condition at t: feeds flapping, then the plain alert. */
static void state_update(kvl_engine_t *e, series_t *s, rstate_t *rs, bool bad, int64_t t, bool late)
{
    const kvl_rule_t *r = rs->rule;
    flap_t *fl = rs->flap;
    if (fl != NULL) {
        if (fl->bad_known && bad != fl->bad) {
            size_t cap = (size_t)r->flapping.changes + 1;
            fl->ring[fl->ring_head] = t;
            fl->ring_head = (fl->ring_head + 1) % cap;
            fl->ring_n += fl->ring_n < cap;
            fl->last_change = t;
            size_t in_window = 0;
            int64_t first = t;
            for (size_t i = 0; i < fl->ring_n; i++) {
                if (fl->ring[i] > t - r->flapping.window_ms) {
                    in_window++;
                    first = fl->ring[i] < first ? fl->ring[i] : first;
                }
            }
            if (!fl->flapping && in_window > (size_t)r->flapping.changes) {
                fl->flapping = true;
                engine_as_good(e, r, &s->subj, &rs->as, t, late);
                subject_t fs = s->subj;
                fs.flapping = true;
                engine_as_bad(e, r, &fs, &fl->as, first, 0, late, false, 0);
            }
        }
        fl->bad = bad;
        fl->bad_known = true;
        if (fl->flapping) {
            subject_t fs = s->subj;
            fs.flapping = true;
            if (t - fl->last_change < r->flapping.stable_ms) {
                engine_as_bad(e, r, &fs, &fl->as, t, 0, late, false, 0); /* confirms a held one */
                return;
            }
            engine_as_good(e, r, &fs, &fl->as, t, late);
            fl->flapping = false;
            fl->ring_n = fl->ring_head = 0;
        }
    }
    if (bad) {
        engine_as_bad(e, r, &s->subj, &rs->as, t, r->state.for_ms, late, false, 0);
    } else {
        engine_as_good(e, r, &s->subj, &rs->as, t, late);
    }
}

static void eval_rule(kvl_engine_t *e, series_t *s, rstate_t *rs, int64_t t, bool late)
{
    const kvl_rule_t *r = rs->rule;
    double v;
    switch (r->kind) {
    case KVL_RULE_THRESHOLD: {
        if (!figure(r, rs, s, &v)) {
            return;
        }
        bool above = r->threshold.above.set;
        double limit = above ? r->threshold.above.v : r->threshold.below.v;
        double clear = r->threshold.clear.v;
        bool bad = above ? v > limit : v < limit;
        bool good = clear == limit ? !bad : (above ? v < clear : v > clear);
        if (bad) {
            engine_as_bad(e, r, &s->subj, &rs->as, t, r->threshold.for_ms, late, true, v);
        } else if (good || rs->as.st == ST_PENDING) {
            rs->as.value = v;
            engine_as_good(e, r, &s->subj, &rs->as, t, late);
        }
        return;
    }
    case KVL_RULE_STATE:
        if (r->state.state == KVL_STATE_OPER_DOWN_ADMIN_UP) {
            const metric_t *oper = &s->m[rs->m[0]], *admin = &s->m[rs->m[1]];
            if ((!oper->fresh && !admin->fresh) || !oper->have || !admin->have) {
                return;
            }
            bool bad = admin->v == 1 && (oper->v == 2 || oper->v == 7);
            /* A port found down at first sight is a port nobody uses, not news: the
             * state pages on a change (seen up, then down; or a trap saying so). */
            rs->seen_up = rs->seen_up || !bad || s->announced;
            if (rs->seen_up || rs->as.st != ST_OK) {
                state_update(e, s, rs, bad, t, late);
            }
        } else if (fresh_value(s, rs->m[0], &v)) {
            double why;
            if (v == 0 && fresh_value(s, rs->m[1], &why)) {
                snprintf(s->reason, sizeof(s->reason), "%s", reason_text(why));
            }
            state_update(e, s, rs, v == 0, t, late);
        }
        return;
    case KVL_RULE_NO_DATA:
        if (rs->as.st != ST_OK) {
            engine_as_good(e, r, &s->subj, &rs->as, t, late);
        }
        return;
    default:
        return;
    }
}

/* Evaluates the instant t of a series whose samples are in (fresh/unknown flags). */
void engine_series_flush(kvl_engine_t *e, series_t *s, int64_t t, bool late)
{
    s->last_arrival = e->now;
    bool stale = s->seen && t <= s->last_t;
    if (!stale) {
        s->seen = true;
        s->last_t = t;
        for (size_t i = 0; i < s->n_m; i++) {
            metric_t *m = &s->m[i];
            m->rate_ok = false;
            if (m->unknown) {
                m->prev_ok = false;
            } else if (m->fresh) {
                /* a counter that goes back was reset: no rate across; a gauge's may fall
                 * (spool_dropped, a count since the agent started, is a gauge) */
                if (m->prev_ok && (!m->counter || m->v >= m->prev) && t > m->prev_t) {
                    m->rate = (m->v - m->prev) * 1000.0 / (double)(t - m->prev_t);
                    m->rate_ok = true;
                }
                m->prev = m->v;
                m->prev_t = t;
                m->prev_ok = true;
            }
        }
        if (s->dirty && series_bind(e, s) != 0) {
            KVL_LOG_WARN("alerts", s->agent->id, "out of memory binding rules to a series");
        }
        for (size_t i = 0; i < s->n_rs; i++) {
            eval_rule(e, s, &s->rs[i], t, late);
        }
    } else {
        e->stats.stale++;
    }
    for (size_t i = 0; i < s->n_m; i++) {
        s->m[i].fresh = s->m[i].unknown = false;
    }
}

/* Whether a slot still says what def says: the same definition (a replaced one may be
 * allocated where the old one was, so the names are compared too; device and instance
 * once per run of a series' samples, cur being the series of the run). */
static bool slot_current(const slot_t *sl, const kvl_series_def_t *def, const series_t *cur)
{
    const series_t *s = sl->s;
    return sl->def == def && s->scope == def->scope &&
           strcmp(s->m[sl->midx].name, def->metric) == 0 &&
           (s == cur ||
            (strcmp(s->device, def->device) == 0 && strcmp(s->instance, def->instance) == 0));
}

/* The slot of an id, bound to its series and metric (again when the definition
 * changed). NULL when out of memory. */
static slot_t *slot_get(kvl_engine_t *e, agent_t *ag, const kvl_sink_defs_t *defs,
                        const kvl_series_def_t *def, const series_t *cur)
{
    if (ag->cap > 0) {
        size_t h = slot_hash(def->id, ag->cap);
        while (ag->slots[h].s != NULL) {
            if (ag->slots[h].id == def->id) {
                if (slot_current(&ag->slots[h], def, cur)) {
                    return &ag->slots[h];
                }
                break;
            }
            h = (h + 1) & (ag->cap - 1);
        }
    }
    const kvl_family_t *fam = kvl_sink_family(defs, def);
    const char *family = fam != NULL ? fam->name : "";
    series_t *s = engine_series_get(e, ag, def->device, def->scope, def->instance, family,
                                    def->labels, def->n_labels, def->interval_s);
    int midx =
        s != NULL ? engine_series_add_metric(e, s, def->metric, def->kind == KVL_KIND_COUNTER) : -1;
    if (midx < 0) {
        return NULL;
    }
    if (def->interval_s > 0 && (ag->min_interval_s == 0 || def->interval_s < ag->min_interval_s)) {
        ag->min_interval_s = def->interval_s;
    }
    if ((ag->n + 1) * 10 > ag->cap * 7 && slots_grow(ag) != 0) {
        return NULL;
    }
    size_t h = slot_hash(def->id, ag->cap);
    while (ag->slots[h].s != NULL && ag->slots[h].id != def->id) {
        h = (h + 1) & (ag->cap - 1);
    }
    if (ag->slots[h].s == NULL) {
        ag->n++;
    }
    ag->slots[h] = (slot_t){.id = def->id, .def = def, .s = s, .midx = midx};
    return &ag->slots[h];
}

int kvl_engine_batch(kvl_engine_t *e, const kvl_sink_batch_t *b)
{
    e->now = engine_now(e);
    agent_t *ag = engine_agent_get(e, b->agent, b->site);
    if (ag == NULL) {
        return KVL_ENOMEM;
    }
    ag->last_arrival = e->now;
    if (ag->first_batch == 0) {
        ag->first_batch = e->now;
    }
    if (ag->lost && !b->replayed) {
        /* it speaks: it is back, whether or not its agent_back event came first */
        kvl_event_t back = {.time_ms = e->now, .device = "", .kind = "agent_back", .text = ""};
        kvl_sink_event_t se = {.agent = b->agent, .site = b->site, .event = &back};
        kvl_engine_event(e, &se);
        ag->back_at = e->now;
    }
    for (size_t i = 0; i < ag->n_silent; i++) {
        if (ag->silent[i].as.st != ST_OK) {
            ag->back_at = e->now;
            engine_as_good(e, ag->silent[i].rule, &ag->subj, &ag->silent[i].as, e->now, false);
        }
    }
    const kvl_batch_t *bt = b->batch;
    for (size_t g = 0; g < bt->n_groups; g++) {
        const kvl_group_t *grp = &bt->groups[g];
        int64_t t = grp->time_ms;
        bool late = b->replayed || t < e->now - e->cfg.late_after_ms;
        kvl_group_iter_t it;
        kvl_sample_t smp;
        series_t *cur = NULL;
        int rc;
        kvl_group_iter_init(&it, grp);
        while ((rc = kvl_group_iter_next(&it, kvl_sink_def, (void *)b->defs, &smp)) == 1) {
            if (smp.def->scope >= KVL_SCOPE_FIRST_LATER) {
                continue; /* neighbours carry no value a rule looks at */
            }
            e->refusing = false;
            slot_t *sl = slot_get(e, ag, b->defs, smp.def, cur);
            if (sl == NULL && e->refusing) {
                continue; /* a new series beyond max_series: counted, logged, not evaluated */
            }
            if (sl == NULL) {
                if (cur != NULL) {
                    engine_series_flush(e, cur, t, late);
                }
                return KVL_ENOMEM;
            }
            if (sl->s != cur) {
                if (cur != NULL) {
                    engine_series_flush(e, cur, t, late);
                }
                cur = sl->s;
            }
            metric_t *m = &cur->m[sl->midx];
            if (smp.unknown) {
                m->unknown = true;
            } else {
                m->v = smp.def->real ? smp.real : (double)smp.value;
                m->fresh = m->have = true;
            }
            e->stats.samples++;
        }
        if (cur != NULL) {
            engine_series_flush(e, cur, t, late);
        }
        if (rc < 0) {
            return KVL_EPROTO;
        }
    }
    return 0;
}

/* --- the collector's own figures ----------------------------------------------------- */

int kvl_engine_collector_value(kvl_engine_t *e, const char *collector_id, const char *metric,
                               double value, int64_t t_ms)
{
    if (!engine_nonempty(collector_id) || !engine_nonempty(metric)) {
        return KVL_EINVAL;
    }
    e->now = engine_now(e);
    agent_t *ag = engine_agent_get(e, collector_id, "");
    series_t *s = ag != NULL ? engine_series_get(e, ag, collector_id, KVL_SCOPE_AGENT, "",
                                                 "collector", NULL, 0, 0)
                             : NULL;
    int m = s != NULL ? engine_series_add_metric(e, s, metric, false) : -1;
    if (m < 0) {
        return KVL_ENOMEM;
    }
    ag->n_silent = 0; /* the collector itself is never an agent gone silent */
    ag->last_arrival = e->now;
    s->m[m].v = value;
    s->m[m].fresh = s->m[m].have = true;
    engine_series_flush(e, s, t_ms, t_ms < e->now - e->cfg.late_after_ms);
    return 0;
}

/* --- forgetting ------------------------------------------------------------------------ */

static bool series_active(const series_t *s)
{
    for (size_t i = 0; i < s->n_rs; i++) {
        if (s->rs[i].as.st != ST_OK || (s->rs[i].flap != NULL && s->rs[i].flap->as.st != ST_OK)) {
            return true;
        }
    }
    return false;
}

/* How long a series without data and without an active alert is kept: a day, or 3 of its
 * longest no_data window (so that alert is raised first: it keeps the series then). */
static int64_t series_idle_ms(const series_t *s)
{
    int64_t w = 0;
    for (size_t i = 0; i < s->n_rs; i++) {
        const kvl_rule_t *r = s->rs[i].rule;
        if (r->kind == KVL_RULE_NO_DATA) {
            int64_t x = (int64_t)r->no_data.intervals * s->interval_s * 1000;
            w = x > w ? x : w;
        }
    }
    return 3 * w > SERIES_IDLE_MIN_MS ? 3 * w : SERIES_IDLE_MIN_MS;
}

/* The agent's id table without the slots of its doomed series. 0 or KVL_ENOMEM (then the
 * table is as it was). */
static int slots_drop_doomed(agent_t *a)
{
    size_t keep = 0;
    for (size_t i = 0; i < a->cap; i++) {
        keep += a->slots[i].s != NULL && !a->slots[i].s->doomed;
    }
    size_t cap = 0;
    if (keep > 0) {
        cap = 1024;
        while ((keep + 1) * 10 > cap * 7) {
            cap *= 2;
        }
    }
    int rc = slots_rehash(a, cap, true);
    if (rc != 0) {
        return rc;
    }
    a->n = keep;
    return 0;
}

/* Puts an interned string into t (sized for it) unless it is there. */
static void intern_put(intern_t *t, char *str)
{
    size_t h = engine_hash(str, 1469598103934665603ull) & (t->cap - 1);
    while (t->v[h] != NULL) {
        if (t->v[h] == str) {
            return;
        }
        h = (h + 1) & (t->cap - 1);
    }
    t->v[h] = str;
    t->n++;
}

static bool intern_has(const intern_t *t, const char *str)
{
    size_t h = engine_hash(str, 1469598103934665603ull) & (t->cap - 1);
    while (t->v[h] != NULL && t->v[h] != str) {
        h = (h + 1) & (t->cap - 1);
    }
    return t->v[h] == str;
}

/* Frees the interned names no series uses any more (those of forgotten devices). */
static void intern_prune(kvl_engine_t *e)
{
    intern_t nt = {.cap = 256};
    while ((e->names.n + 1) * 2 > nt.cap) {
        nt.cap *= 2;
    }
    if ((nt.v = calloc(nt.cap, sizeof(*nt.v))) == NULL) {
        return; /* kept as they are */
    }
    for (size_t b = 0; b < e->nsb; b++) {
        for (series_t *s = e->sb[b]; s != NULL; s = s->next) {
            intern_put(&nt, (char *)s->device);
            intern_put(&nt, (char *)s->family);
            for (size_t i = 0; i < s->n_m; i++) {
                intern_put(&nt, (char *)s->m[i].name);
            }
        }
    }
    for (size_t i = 0; i < e->names.cap; i++) {
        if (e->names.v[i] != NULL && !intern_has(&nt, e->names.v[i])) {
            free(e->names.v[i]);
        }
    }
    free(e->names.v);
    e->names = nt;
}

static void agent_free(agent_t *a)
{
    free(a->slots);
    free(a->silent);
    free(a->id);
    free(a->site);
    free(a);
}

/* Forgets the series without data and without an active alert for long (series_idle_ms),
 * then the agents left without series, not lost, without an active agent_silent alert and
 * silent for a day. */
static void sweep(kvl_engine_t *e)
{
    if (e->now < e->next_sweep) {
        return;
    }
    e->next_sweep = e->now + SWEEP_EVERY_MS;
    size_t doomed = 0;
    for (size_t b = 0; b < e->nsb; b++) {
        for (series_t *s = e->sb[b]; s != NULL; s = s->next) {
            if (!series_active(s) && e->now - s->last_arrival > series_idle_ms(s)) {
                s->doomed = true;
                s->agent->sweep = true;
                doomed++;
            }
        }
    }
    for (size_t b = 0; doomed > 0 && b < KVL_ARRAY_SIZE(e->agents); b++) {
        for (agent_t *ag = e->agents[b]; ag != NULL; ag = ag->next) {
            if (ag->sweep && slots_drop_doomed(ag) != 0) {
                continue; /* out of memory: its series stay doomed-but-kept below */
            }
            ag->sweep = false;
        }
    }
    size_t freed = 0;
    for (size_t b = 0; doomed > 0 && b < e->nsb; b++) {
        series_t **pp = &e->sb[b];
        while (*pp != NULL) {
            series_t *s = *pp;
            if (!s->doomed || s->agent->sweep) {
                s->doomed = false;
                pp = &s->next;
                continue;
            }
            *pp = s->next;
            s->agent->n_series--;
            series_free(s);
            e->n_series--;
            freed++;
        }
    }
    for (size_t b = 0; b < KVL_ARRAY_SIZE(e->agents); b++) {
        for (agent_t *ag = e->agents[b]; ag != NULL; ag = ag->next) {
            ag->sweep = false;
        }
    }
    size_t agents = 0;
    for (size_t b = 0; b < KVL_ARRAY_SIZE(e->agents); b++) {
        agent_t **pp = &e->agents[b];
        while (*pp != NULL) {
            agent_t *ag = *pp;
            bool keep =
                ag->n_series > 0 || ag->lost || e->now - ag->last_arrival <= SERIES_IDLE_MIN_MS;
            for (size_t i = 0; !keep && i < ag->n_silent; i++) {
                keep = ag->silent[i].as.st != ST_OK;
            }
            if (keep) {
                pp = &ag->next;
                continue;
            }
            *pp = ag->next;
            agent_free(ag);
            agents++;
        }
    }
    if (freed > 0) {
        intern_prune(e);
    }
    if (freed > 0 || agents > 0) {
        e->dev_agent = NULL; /* the cache's agent may be gone, its address reused */
        e->stats.forgotten += freed;
        e->stats.series = e->n_series;
        KVL_LOG_INFO("alerts", NULL,
                     "%zu series and %zu agents without data nor active alerts for long "
                     "forgotten; %zu series kept",
                     freed, agents, e->n_series);
    }
}

/* --- the timer ----------------------------------------------------------------------- */

/* Lost, or silent for one of the agent_silent rules: its series' silence is no news. */
static bool agent_quiet(const agent_t *ag)
{
    if (ag->lost) {
        return true;
    }
    for (size_t i = 0; i < ag->n_silent; i++) {
        if (ag->silent[i].as.st != ST_OK) {
            return true;
        }
    }
    return false;
}

/* Restored alerts no series took although their agent has been sending for
 * RESTORED_GRACE_INTERVALS of its intervals: what they were about is no longer reported
 * (an interface removed, a rule's selection changed), so nothing will ever resolve them
 * but this: resolved now (they paged, so the resolution is sent). */
#define RESTORED_GRACE_INTERVALS 3

static void restored_expire(kvl_engine_t *e)
{
    for (size_t i = 0; i < e->n_restored;) {
        kvl_alert_t *a = e->restored[i].a;
        const char *id = kvl_alert_label(a, "agent");
        const agent_t *ag = id != NULL ? engine_agent_find(e, id) : NULL;
        int64_t iv = ag != NULL && ag->min_interval_s ? ag->min_interval_s * 1000ll
                                                      : SERIES_INTERVAL_DEFAULT_S * 1000ll;
        const kvl_rule_t *r = kvl_rules_find(e->rules, a->rule);
        if (ag == NULL || ag->first_batch == 0 ||
            e->now - ag->first_batch <= RESTORED_GRACE_INTERVALS * iv) {
            i++;
            continue;
        }
        subject_t sj = {.agent = id,
                        .site = kvl_alert_label(a, "site"),
                        .device = kvl_alert_label(a, "device"),
                        .interface = kvl_alert_label(a, "interface"),
                        .target = kvl_alert_label(a, "target"),
                        .group = kvl_alert_label(a, "group"),
                        .instance = kvl_alert_label(a, "instance"),
                        .description = a->description,
                        .flapping = kvl_alert_label(a, "flapping") != NULL};
        astate_t as;
        engine_restored_state(a, &as);
        e->restored[i] = e->restored[--e->n_restored];
        if (r != NULL && engine_fingerprint(r, &sj) == a->fingerprint) {
            engine_as_good(e, r, &sj, &as, e->now, false);
        }
        kvl_alert_free(a);
    }
}

void kvl_engine_tick(kvl_engine_t *e)
{
    e->now = engine_now(e);
    restored_expire(e);
    for (size_t b = 0; b < KVL_ARRAY_SIZE(e->agents); b++) {
        for (agent_t *ag = e->agents[b]; ag != NULL; ag = ag->next) {
            int64_t iv =
                (ag->min_interval_s ? ag->min_interval_s : SERIES_INTERVAL_DEFAULT_S) * 1000ll;
            for (size_t i = 0; !ag->lost && i < ag->n_silent; i++) {
                silent_t *sl = &ag->silent[i];
                if (sl->as.st == ST_OK &&
                    e->now - ag->last_arrival > sl->rule->state.intervals * iv) {
                    engine_as_bad(e, sl->rule, &ag->subj, &sl->as, ag->last_arrival, 0, false,
                                  false, 0);
                }
            }
        }
    }
    /* the series scan only when a no_data rule exists (the built-in rules have none) */
    for (size_t b = 0; e->any_nodata && b < e->nsb; b++) {
        for (series_t *s = e->sb[b]; s != NULL; s = s->next) {
            if (!s->has_nodata || agent_quiet(s->agent)) {
                continue;
            }
            for (size_t i = 0; i < s->n_rs; i++) {
                rstate_t *rs = &s->rs[i];
                int64_t since =
                    s->last_arrival > s->agent->back_at ? s->last_arrival : s->agent->back_at;
                if (rs->rule->kind == KVL_RULE_NO_DATA && rs->as.st == ST_OK &&
                    e->now - since > rs->rule->no_data.intervals * (int64_t)s->interval_s * 1000) {
                    engine_as_bad(e, rs->rule, &s->subj, &rs->as,
                                  s->seen ? s->last_t : s->last_arrival, 0, false, false, 0);
                }
            }
        }
    }
    evalert_t *a = e->evalerts;
    while (a != NULL) {
        evalert_t *next = a->next;
        int64_t hold = a->rule->event.hold_ms;
        if (hold > 0 && e->now >= a->as.active_at + hold) {
            engine_as_good(e, a->rule, &a->subj, &a->as, a->as.active_at + hold, false);
            engine_evalert_remove(e, a);
        }
        a = next;
    }
    sweep(e);
}

static void on_timer(uv_timer_t *t)
{
    kvl_engine_tick(t->data);
}

/* --- life ------------------------------------------------------------------------------ */

int kvl_engine_restore(kvl_engine_t *e, const kvl_alert_t *a)
{
    const kvl_rule_t *r = a != NULL && a->rule != NULL ? kvl_rules_find(e->rules, a->rule) : NULL;
    if (r == NULL || (a->status != KVL_ALERT_FIRING && a->status != KVL_ALERT_PENDING) ||
        (a->status == KVL_ALERT_PENDING && r->kind == KVL_RULE_EVENT)) {
        return KVL_EINVAL;
    }
    e->now = engine_now(e);
    astate_t as;
    engine_restored_state(a, &as);
    if (r->kind == KVL_RULE_EVENT) {
        subject_t s = {.agent = kvl_alert_label(a, "agent"),
                       .site = kvl_alert_label(a, "site"),
                       .device = kvl_alert_label(a, "device"),
                       .interface = kvl_alert_label(a, "interface"),
                       .target = kvl_alert_label(a, "target"),
                       .description = a->description,
                       .fields = a->fields,
                       .n_fields = a->n_fields};
        evalert_t *x = engine_evalert_new(e, r, &s);
        if (x == NULL) {
            return KVL_ENOMEM;
        }
        x->as = as;
        return 0;
    }
    if (r->kind == KVL_RULE_STATE && r->state.state == KVL_STATE_AGENT_SILENT) {
        const char *id = kvl_alert_label(a, "agent");
        agent_t *ag = id != NULL ? engine_agent_get(e, id, kvl_alert_label(a, "site")) : NULL;
        for (size_t i = 0; ag != NULL && i < ag->n_silent; i++) {
            if (ag->silent[i].rule == r) {
                ag->silent[i].as = as;
                return 0;
            }
        }
        return ag == NULL ? KVL_ENOMEM : KVL_EINVAL;
    }
    restored_t *v = realloc(e->restored, (e->n_restored + 1) * sizeof(*v));
    if (v == NULL) {
        return KVL_ENOMEM;
    }
    e->restored = v;
    kvl_alert_t *dup = kvl_alert_dup(a);
    if (dup == NULL) {
        return KVL_ENOMEM;
    }
    e->restored[e->n_restored++] = (restored_t){.fp = a->fingerprint, .a = dup};
    return 0;
}

int kvl_engine_new(uv_loop_t *loop, const kvl_engine_cfg_t *cfg, kvl_alert_cb cb, void *cb_ctx,
                   kvl_engine_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg == NULL || cfg->rules == NULL || cb == NULL) {
        snprintf(err, errlen, "the rule engine needs rules and a callback");
        return KVL_EINVAL;
    }
    kvl_engine_t *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    e->cfg = *cfg;
    e->rules = cfg->rules;
    e->cb = cb;
    e->cb_ctx = cb_ctx;
    if (e->cfg.late_after_ms <= 0) {
        e->cfg.late_after_ms = KVL_ENGINE_LATE_AFTER_DEFAULT_MS;
    }
    if (e->cfg.tick_ms <= 0) {
        e->cfg.tick_ms = 1000;
    }
    if (e->cfg.max_series == 0) {
        e->cfg.max_series = KVL_ENGINE_MAX_SERIES_DEFAULT;
    }
    e->full_limit = (kvl_log_limit_t)KVL_LOG_LIMIT_INIT(60 * 1000);
    if (e->cfg.now_ms == NULL) {
        e->cfg.now_ms = real_now;
    }
    const char *url = cfg->web_url != NULL ? cfg->web_url : KVL_ENGINE_WEB_URL_DEFAULT;
    size_t ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/') {
        ul--;
    }
    e->web_url = strndup(url, ul);
    size_t nr = e->rules->n ? e->rules->n : 1;
    e->event_rules = calloc(nr, sizeof(*e->event_rules));
    e->scratch = calloc(nr, sizeof(*e->scratch));
    e->dev_ok = calloc(nr, sizeof(*e->dev_ok));
    if (e->web_url == NULL || e->event_rules == NULL || e->scratch == NULL || e->dev_ok == NULL ||
        series_rehash(e) != 0) {
        free(e->web_url);
        free(e->event_rules);
        free(e->scratch);
        free(e->dev_ok);
        free(e);
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    e->cfg.web_url = e->web_url;
    for (size_t i = 0; i < e->rules->n; i++) {
        if (e->rules->v[i].kind == KVL_RULE_EVENT) {
            e->event_rules[e->n_event_rules++] = &e->rules->v[i];
        }
        e->any_nodata = e->any_nodata || e->rules->v[i].kind == KVL_RULE_NO_DATA;
    }
    e->loop = loop;
    if (loop != NULL) {
        uv_timer_init(loop, &e->timer);
        e->timer.data = e;
        uv_timer_start(&e->timer, on_timer, (uint64_t)e->cfg.tick_ms, (uint64_t)e->cfg.tick_ms);
    }
    *out = e;
    return 0;
}

static void engine_release(kvl_engine_t *e)
{
    for (size_t b = 0; b < KVL_ARRAY_SIZE(e->agents); b++) {
        agent_t *ag = e->agents[b];
        while (ag != NULL) {
            agent_t *next = ag->next;
            agent_free(ag);
            ag = next;
        }
    }
    for (size_t b = 0; b < e->nsb; b++) {
        series_t *s = e->sb[b];
        while (s != NULL) {
            series_t *next = s->next;
            series_free(s);
            s = next;
        }
    }
    while (e->evalerts != NULL) {
        engine_evalert_remove(e, e->evalerts);
    }
    for (size_t i = 0; i < e->n_restored; i++) {
        kvl_alert_free(e->restored[i].a);
    }
    free(e->restored);
    for (size_t i = 0; i < e->names.cap; i++) {
        free(e->names.v[i]);
    }
    free(e->names.v);
    free(e->sb);
    free(e->event_rules);
    free(e->scratch);
    free(e->dev_ok);
    free(e->web_url);
    free(e);
}

static void on_timer_closed(uv_handle_t *h)
{
    engine_release(h->data);
}

void kvl_engine_free(kvl_engine_t *e)
{
    if (e == NULL) {
        return;
    }
    if (e->loop != NULL) {
        uv_timer_stop(&e->timer);
        uv_close((uv_handle_t *)&e->timer, on_timer_closed);
    } else {
        engine_release(e);
    }
}

void kvl_engine_get_stats(const kvl_engine_t *e, kvl_engine_stats_t *out)
{
    *out = e->stats;
}
