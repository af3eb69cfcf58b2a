/*
 * engine_alert.c — an alert of the rule engine: its labels and fingerprint, its summary
 * and graph URL, and its life (engine_as_bad, engine_as_good), which alone decide what is
 * reported to the alert book and whether it is late (engine.h, "Late data"); the alerts
 * the book handed back at start (engine_restored_take).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "kvl.h"
#include "log.h"

/* --- reporting ----------------------------------------------------------------------- */

static void fmt_num(double v, char *buf, size_t len)
{
    snprintf(buf, len, "%.4g", v);
}

/* Labels of the alert `rule` makes about `s` into a (labels and fingerprint). */
static int build_labels(const kvl_rule_t *r, const subject_t *s, kvl_alert_t *a)
{
    size_t n = 0;
    kvl_label_t *l = a->labels;
    l[n++] = (kvl_label_t){"alertname", r->name};
    l[n++] = (kvl_label_t){"severity", kvl_rules_severity_name(r->severity)};
    const struct {
        const char *k, *v;
    } std[] = {{"agent", s->agent},         {"site", s->site},     {"device", s->device},
               {"interface", s->interface}, {"target", s->target}, {"group", s->group},
               {"instance", s->instance}};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(std); i++) {
        if (engine_nonempty(std[i].v)) {
            l[n++] = (kvl_label_t){std[i].k, std[i].v};
        }
    }
    if (s->flapping) {
        l[n++] = (kvl_label_t){"flapping", "true"};
    }
    for (size_t i = 0; i < r->n_labels && n < KVL_ALERT_LABELS_MAX; i++) {
        if (engine_nonempty(r->labels[i].value) && strcmp(r->labels[i].key, "flapping") != 0) {
            bool dup = false;
            for (size_t k = 0; k < n; k++) {
                dup = dup || strcmp(l[k].key, r->labels[i].key) == 0;
            }
            if (!dup) {
                l[n++] = (kvl_label_t){r->labels[i].key, r->labels[i].value};
            }
        }
    }
    a->n_labels = n;
    return kvl_alert_finish(a);
}

uint64_t engine_fingerprint(const kvl_rule_t *r, const subject_t *s)
{
    kvl_alert_t a = {0};
    return build_labels(r, s, &a) == 0 ? a.fingerprint : 0;
}

static bool threshold_of(const kvl_rule_t *r, double *out)
{
    if (r->kind != KVL_RULE_THRESHOLD) {
        return false;
    }
    *out = r->threshold.above.set ? r->threshold.above.v : r->threshold.below.v;
    return true;
}

/* The summary template with {{label}} replaced. */
static void render(const kvl_rule_t *r, const kvl_alert_t *a, char *out, size_t len)
{
    const char *p = r->summary != NULL ? r->summary : r->name;
    size_t o = 0;
    while (*p != '\0' && o + 1 < len) {
        const char *end;
        if (p[0] != '{' || p[1] != '{' || (end = strstr(p + 2, "}}")) == NULL) {
            out[o++] = *p++;
            continue;
        }
        const char *x = p + 2, *y = end;
        while (x < y && *x == ' ') {
            x++;
        }
        while (y > x && y[-1] == ' ') {
            y--;
        }
        char name[72], num[32];
        size_t nl = (size_t)(y - x) < sizeof(name) - 1 ? (size_t)(y - x) : sizeof(name) - 1;
        memcpy(name, x, nl);
        name[nl] = '\0';
        const char *v = NULL;
        if (strcmp(name, "value") == 0 && a->has_value) {
            fmt_num(a->value, num, sizeof(num));
            v = num;
        } else if (strcmp(name, "threshold") == 0 && a->has_threshold) {
            fmt_num(a->threshold, num, sizeof(num));
            v = num;
        } else if (strcmp(name, "alias") == 0) {
            v = a->description;
        } else if (strcmp(name, "rule") == 0) {
            v = r->name;
        } else {
            v = kvl_alert_label(a, name);
        }
        for (; v != NULL && *v != '\0' && o + 1 < len; v++) {
            out[o++] = *v;
        }
        p = end + 2;
    }
    out[o] = '\0';
}

static void emit(kvl_engine_t *e, const kvl_rule_t *r, const subject_t *s, const astate_t *as,
                 kvl_alert_status_t status, int64_t t_end, bool late)
{
    kvl_alert_t a = {0};
    if (build_labels(r, s, &a) != 0) {
        KVL_LOG_WARN("alerts", r->name, "an alert's labels do not add up: not reported");
        return;
    }
    a.status = status;
    a.severity = r->severity;
    a.rule = r->name;
    a.description = engine_nonempty(s->description) ? s->description : NULL;
    for (size_t i = 0; i < s->n_fields && i < KVL_ALERT_FIELDS_MAX; i++) {
        a.fields[a.n_fields++] = s->fields[i];
    }
    a.has_value = as->has_value && !s->flapping;
    a.value = as->value;
    a.has_threshold = !s->flapping && threshold_of(r, &a.threshold);
    a.active_at_ms = as->active_at;
    a.starts_at_ms = as->active_at;
    a.ends_at_ms =
        status == KVL_ALERT_RESOLVED ? (t_end > as->active_at ? t_end : as->active_at) : 0;
    a.changed_ms = e->now;
    a.late = late;
    char summary[SUMMARY_MAX], url[URL_MAX];
    char flap[SUMMARY_MAX + 16];
    render(r, &a, summary, sizeof(summary));
    if (s->flapping) {
        snprintf(flap, sizeof(flap), "flapping: %s", summary);
        a.summary = flap;
    } else {
        a.summary = summary;
    }
    a.url = kvl_alert_url(e->web_url, &a, url, sizeof(url)) < sizeof(url) ? url : NULL;
    e->stats.changes++;
    e->stats.late += late;
    KVL_LOG_DEBUG("alerts", r->name, "%s%s %016llx since %lld: %s", kvl_alert_status_name(status),
                  late ? " (late)" : "", (unsigned long long)a.fingerprint,
                  (long long)a.starts_at_ms, a.summary);
    e->cb(e->cb_ctx, &a);
}

/* The condition holds at t (value v, if has_v). */
void engine_as_bad(kvl_engine_t *e, const kvl_rule_t *r, const subject_t *s, astate_t *as,
                   int64_t t, int64_t for_ms, bool late, bool has_v, double v)
{
    if (has_v) {
        as->value = v;
        as->has_value = true;
    }
    switch (as->st) {
    case ST_OK:
        *as = (astate_t){.st = ST_PENDING, .active_at = t, .value = v, .has_value = has_v};
        if (for_ms > 0) {
            if (!late) {
                emit(e, r, s, as, KVL_ALERT_PENDING, 0, false);
                as->pend_told = true;
            }
            return;
        }
        /* no for: it fires at once */
        __attribute__((fallthrough));
    case ST_PENDING:
        if (t - as->active_at < for_ms) {
            return;
        }
        as->st = ST_FIRING;
        if (late) {
            as->held = true;
        } else {
            emit(e, r, s, as, KVL_ALERT_FIRING, 0, false);
            as->paged = true;
        }
        return;
    default:
        KVL_ASSERT(as->st == ST_FIRING);
        if (as->held && !late) {
            /* confirmed by fresh data: pages once, with its real start */
            emit(e, r, s, as, KVL_ALERT_FIRING, 0, false);
            as->held = false;
            as->paged = true;
        }
        return;
    }
}

/* The condition is over at t. */
void engine_as_good(kvl_engine_t *e, const kvl_rule_t *r, const subject_t *s, astate_t *as,
                    int64_t t, bool late)
{
    KVL_ASSERT(!(as->held && as->paged)); /* held: never told; paged: told */
    if (as->st == ST_PENDING && as->pend_told) {
        emit(e, r, s, as, KVL_ALERT_RESOLVED, t, late);
    } else if (as->st == ST_FIRING && as->held) {
        /* began and ended where nobody was told: history only */
        emit(e, r, s, as, KVL_ALERT_FIRING, 0, true);
        emit(e, r, s, as, KVL_ALERT_RESOLVED, t, true);
    } else if (as->st == ST_FIRING) {
        emit(e, r, s, as, KVL_ALERT_RESOLVED, t, !as->paged);
    }
    *as = (astate_t){.st = ST_OK};
}

/* --- restored alerts ------------------------------------------------------------------ */

/* The life of an alert the book handed back: firing (paged, or held when late), or pending
 * (reported pending, so its end is reported too) since its active_at. */
void engine_restored_state(const kvl_alert_t *a, astate_t *as)
{
    if (a->status == KVL_ALERT_PENDING) {
        *as = (astate_t){.st = ST_PENDING,
                         .pend_told = true,
                         .active_at = a->active_at_ms,
                         .value = a->value,
                         .has_value = a->has_value};
        return;
    }
    *as = (astate_t){.st = ST_FIRING,
                     .paged = !a->late,
                     .held = a->late,
                     .active_at = a->starts_at_ms,
                     .value = a->value,
                     .has_value = a->has_value};
}

/* Takes the restored alert of fingerprint fp into as; true if there was one. */
bool engine_restored_take(kvl_engine_t *e, uint64_t fp, astate_t *as)
{
    for (size_t i = 0; i < e->n_restored; i++) {
        if (e->restored[i].fp != fp) {
            continue;
        }
        kvl_alert_t *a = e->restored[i].a;
        engine_restored_state(a, as);
        kvl_alert_free(a);
        e->restored[i] = e->restored[--e->n_restored];
        return true;
    }
    return false;
}
