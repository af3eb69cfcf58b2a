/*
 * engine_events.c — events through the rule engine: device_down/device_up and
 * linkDown/linkUp drive the device's and the interface's state (the series' evaluation),
 * agent_lost/agent_back quiet the agent's silence, and event rules fire on their event
 * and resolve on its clearing event (engine.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "kvl.h"
#include "log.h"

/* --- events ---------------------------------------------------------------------------- */

static const char *field(const kvl_event_t *ev, const char *key)
{
    return engine_label(ev->fields, ev->n_fields, key);
}

static bool fields_match(const kvl_rule_t *r, const kvl_event_t *ev)
{
    for (size_t i = 0; i < r->event.n_match; i++) {
        const char *v = field(ev, r->event.match[i].key);
        if (!kvl_rules_match(&r->event.match[i].m, v != NULL ? v : "")) {
            return false;
        }
    }
    return true;
}

/* The interface an event names: its `interface`, `ifName` or `ifDescr` field. */
static const char *event_interface(const kvl_event_t *ev)
{
    static const char *const keys[] = {"interface", "ifName", "ifDescr"};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(keys); i++) {
        const char *v = field(ev, keys[i]);
        if (engine_nonempty(v)) {
            return v;
        }
    }
    return NULL;
}

static subject_t event_subject(const kvl_sink_event_t *se)
{
    const kvl_event_t *ev = se->event;
    subject_t s = {.agent = se->agent, .site = se->site};
    s.device =
        engine_nonempty(ev->device) && strcmp(ev->device, se->agent) != 0 ? ev->device : NULL;
    s.interface = event_interface(ev);
    s.target = field(ev, "target");
    s.fields = ev->fields;
    s.n_fields = ev->n_fields;
    s.event = ev->kind;
    s.description = field(ev, "ifAlias");
    if (!engine_nonempty(s.description)) {
        s.description = field(ev, "reason");
    }
    if (!engine_nonempty(s.description)) {
        s.description = ev->text;
    }
    return s;
}

static evalert_t *evalert_find(kvl_engine_t *e, const kvl_rule_t *r, uint64_t fp)
{
    for (evalert_t *a = e->evalerts; a != NULL; a = a->next) {
        if (a->rule == r && a->fp == fp) {
            return a;
        }
    }
    return NULL;
}

evalert_t *engine_evalert_new(kvl_engine_t *e, const kvl_rule_t *r, const subject_t *s)
{
    evalert_t *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    const char *src[6] = {s->agent, s->site, s->device, s->interface, s->target, s->description};
    for (int i = 0; i < 6; i++) {
        if (src[i] != NULL && (a->s[i] = strdup(src[i])) == NULL) {
            for (int k = 0; k < i; k++) {
                free(a->s[k]);
            }
            free(a);
            return NULL;
        }
    }
    a->rule = r;
    size_t nf = 0;
    a->fields = engine_fields_dup(s->event, s->fields, s->n_fields, &nf);
    a->subj = (subject_t){.agent = a->s[0],
                          .site = a->s[1],
                          .device = a->s[2],
                          .interface = a->s[3],
                          .target = a->s[4],
                          .description = a->s[5],
                          .fields = a->fields,
                          .n_fields = nf};
    a->n_fields = nf;
    a->fp = engine_fingerprint(r, &a->subj);
    a->next = e->evalerts;
    e->evalerts = a;
    return a;
}

void engine_evalert_remove(kvl_engine_t *e, evalert_t *x)
{
    for (evalert_t **p = &e->evalerts; *p != NULL; p = &(*p)->next) {
        if (*p == x) {
            *p = x->next;
            for (int i = 0; i < 6; i++) {
                free(x->s[i]);
            }
            free(x->fields);
            free(x);
            return;
        }
    }
}

/* device_down / device_up: the device's reachable state at the event's time. */
static void device_event(kvl_engine_t *e, const kvl_sink_event_t *se, bool down, bool late)
{
    const kvl_event_t *ev = se->event;
    agent_t *ag = engine_agent_get(e, se->agent, se->site);
    if (ag == NULL || !engine_nonempty(ev->device)) {
        return;
    }
    series_t *s = engine_series_get(e, ag, ev->device, KVL_SCOPE_DEVICE, "", "device", NULL, 0, 0);
    int mr = s != NULL ? engine_series_add_metric(e, s, "reachable", false) : -1;
    int md = s != NULL ? engine_series_add_metric(e, s, "down_reason", false) : -1;
    if (mr < 0 || md < 0) {
        return;
    }
    s->m[mr].v = down ? 0 : 1;
    s->m[mr].fresh = s->m[mr].have = true;
    engine_series_set_fields(s, ev);
    const char *why = field(ev, "reason");
    if (down) {
        snprintf(s->reason, sizeof(s->reason), "%s", engine_nonempty(why) ? why : "no answer");
    }
    engine_series_flush(e, s, ev->time_ms, late);
}

/* linkDown / linkUp: the interface's oper_status at the trap's time (admin_status from the
 * trap's ifAdminStatus when it has one, else the last known, else up), so
 * oper_down_admin_up pages on the trap and the next poll only confirms it. */
static void interface_event(kvl_engine_t *e, const kvl_sink_event_t *se, bool down, bool late)
{
    const kvl_event_t *ev = se->event;
    const char *name = event_interface(ev);
    agent_t *ag = engine_agent_get(e, se->agent, se->site);
    if (ag == NULL || name == NULL || !engine_nonempty(ev->device)) {
        return;
    }
    series_t *s = engine_series_get(e, ag, ev->device, KVL_SCOPE_INTERFACE, name, "if", NULL, 0, 0);
    int mo = s != NULL ? engine_series_add_metric(e, s, "oper_status", false) : -1;
    int ma = s != NULL ? engine_series_add_metric(e, s, "admin_status", false) : -1;
    if (mo < 0 || ma < 0) {
        return;
    }
    s->m[mo].v = down ? 2 : 1;
    s->m[mo].fresh = s->m[mo].have = true;
    engine_series_set_fields(s, ev);
    const char *admin = field(ev, "ifAdminStatus");
    if (engine_nonempty(admin)) {
        s->m[ma].v = strcmp(admin, "up") == 0 || strcmp(admin, "1") == 0 ? 1 : 2;
        s->m[ma].fresh = s->m[ma].have = true;
    } else if (!s->m[ma].have) {
        s->m[ma].v = 1;
        s->m[ma].have = true;
    }
    s->announced = true;
    engine_series_flush(e, s, ev->time_ms, late);
    s->announced = false;
}

void kvl_engine_event(kvl_engine_t *e, const kvl_sink_event_t *se)
{
    const kvl_event_t *ev = se->event;
    if (ev == NULL || ev->kind == NULL || se->agent == NULL) {
        return;
    }
    e->now = engine_now(e);
    /* A replayed event is judged by its time alone: unlike a batch's samples no later sample
     * confirms it, and a restored alert already stops a second page. */
    bool late = se->late || ev->time_ms < e->now - e->cfg.late_after_ms;
    if (strcmp(ev->kind, "device_down") == 0 || strcmp(ev->kind, "device_up") == 0) {
        device_event(e, se, ev->kind[7] == 'd', late);
    } else if (strcmp(ev->kind, "linkDown") == 0 || strcmp(ev->kind, "linkUp") == 0) {
        interface_event(e, se, ev->kind[4] == 'D', late);
    } else if (strcmp(ev->kind, "agent_lost") == 0 || strcmp(ev->kind, "agent_back") == 0) {
        /* the agent is the problem: its silence and its series' are not news */
        agent_t *ag = engine_agent_get(e, se->agent, se->site);
        if (ag != NULL) {
            ag->lost = ev->kind[6] == 'l';
            if (!ag->lost) {
                ag->last_arrival = ag->back_at = e->now;
            }
        }
    }
    subject_t s = event_subject(se);
    for (size_t i = 0; i < e->n_event_rules; i++) {
        const kvl_rule_t *r = e->event_rules[i];
        if (!kvl_rules_match(&r->site, se->site != NULL ? se->site : "") ||
            !kvl_rules_match(&r->device, engine_nonempty(ev->device) ? ev->device : "") ||
            (r->interface.glob != NULL &&
             !kvl_rules_match(&r->interface, s.interface ? s.interface : "")) ||
            (r->target.glob != NULL && !kvl_rules_match(&r->target, s.target ? s.target : ""))) {
            continue;
        }
        uint64_t fp = engine_fingerprint(r, &s);
        if (kvl_rules_event_match(r, ev->kind) && fields_match(r, ev)) {
            evalert_t *a = evalert_find(e, r, fp);
            if (a == NULL && (a = engine_evalert_new(e, r, &s)) == NULL) {
                KVL_LOG_WARN("alerts", se->agent, "out of memory: event %s not evaluated",
                             ev->kind);
                continue;
            }
            engine_as_bad(e, r, &a->subj, &a->as, ev->time_ms, 0, late, false, 0);
        } else if (r->event.clear != NULL && strcmp(r->event.clear, ev->kind) == 0) {
            evalert_t *a = evalert_find(e, r, fp);
            /* a clearing event older than the alert's is about an earlier outage */
            if (a != NULL && ev->time_ms >= a->as.active_at) {
                engine_as_good(e, r, &a->subj, &a->as, ev->time_ms, late);
                engine_evalert_remove(e, a);
            }
        }
    }
}
