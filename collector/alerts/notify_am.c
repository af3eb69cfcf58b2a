/*
 * notify_am.c — the Alertmanager receiver (API v2): POST <url>/api/v2/alerts with a JSON
 * array, one element per alert:
 *   {"labels": {...the alert's labels...},
 *    "annotations": {"summary", "description", "value", "threshold", "url"} (those known),
 *    "startsAt": <RFC 3339>, "endsAt": <RFC 3339>, "generatorURL": <the graph URL>}
 * endsAt is the alert's end when resolved; while it fires, now + 4 x `resend`, so
 * Alertmanager keeps it active for as long as this receiver keeps re-posting it, whatever
 * its own resolve_timeout, and lets it expire if the collector is gone for good.
 *
 * Alertmanager forgets an alert nobody re-posts, so this receiver keeps the set of alerts
 * it has delivered as firing (updated as notifications are confirmed, persisted with the
 * outbox cursor: notify.c's state_save) and re-posts them every `resend`, when no
 * notification of the outbox is waiting (those post the same alerts anyway). A resend
 * holds the receiver busy like a delivery, so a resolution is never overtaken by an older
 * resend; a failed resend is logged and tried again at the next tick.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvl.h"
#include "log.h"
#include "notify.h"
#include "notify_config.h"
#include "notify_int.h"
#include "rules.h"

#define MOD "notify-am"

typedef struct am {
    json_t *firing; /* fingerprint -> kvl_alert_to_json of the alert as last delivered */
    uv_timer_t resend;
    bool resending;
    bool resend_failing;
} am_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_str(json_t *o, const char *key, const char *v)
{
    return v == NULL ? 0 : json_object_set_new(o, key, json_string(v));
}

static int set_num(json_t *o, const char *key, double v)
{
    char b[64];
    snprintf(b, sizeof(b), "%.6g", v);
    return json_object_set_new(o, key, json_string(b));
}

/* One alert in Alertmanager's form (a new reference, or NULL). */
static json_t *am_alert(const kvl_notify_rcv_t *r, const kvl_alert_t *a)
{
    json_t *o = json_object(), *labels = json_object(), *ann = json_object();
    int rc = o && labels && ann ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < a->n_labels; i++) {
        rc |= json_object_set_new(labels, a->labels[i].key, json_string(a->labels[i].value));
    }
    if (rc == 0 && json_object_get(labels, "alertname") == NULL && a->rule) {
        rc |= json_object_set_new(labels, "alertname", json_string(a->rule));
    }
    if (rc == 0 && json_object_get(labels, "severity") == NULL) {
        rc |= json_object_set_new(labels, "severity",
                                  json_string(kvl_rules_severity_name(a->severity)));
    }
    rc |= set_str(ann, "summary", a->summary);
    rc |= set_str(ann, "description", a->description);
    rc |= a->has_value ? set_num(ann, "value", a->value) : 0;
    rc |= a->has_threshold ? set_num(ann, "threshold", a->threshold) : 0;
    rc |= set_str(ann, "url", a->url);
    char t[40];
    kvl_alert_time_format(a->starts_at_ms, t, sizeof(t));
    rc |= set_str(o, "startsAt", t);
    int64_t end = a->status == KVL_ALERT_RESOLVED ? (a->ends_at_ms > 0 ? a->ends_at_ms : now_ms())
                                                  : now_ms() + 4 * r->cfg->resend_ms;
    kvl_alert_time_format(end, t, sizeof(t));
    rc |= set_str(o, "endsAt", t);
    rc |= set_str(o, "generatorURL", a->url);
    if (rc == 0) {
        rc |= json_object_set(o, "labels", labels);
        rc |= json_object_set(o, "annotations", ann);
    }
    json_decref(labels);
    json_decref(ann);
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* POSTs the array (stolen) to <url>/api/v2/alerts. */
static int post(kvl_notify_rcv_t *r, json_t *arr, kvl_notify_xfer_cb done, char *why, size_t whylen)
{
    char *body = json_dumps(arr, JSON_COMPACT);
    json_decref(arr);
    CURL *e = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    size_t ul = strlen(r->cfg->url);
    char *url = malloc(ul + 32);
    if (body == NULL || e == NULL || h == NULL || url == NULL) {
        free(body);
        free(url);
        curl_easy_cleanup(e);
        curl_slist_free_all(h);
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    snprintf(url, ul + 32, "%s%s", r->cfg->url,
             r->cfg->url[ul - 1] == '/' ? "api/v2/alerts" : "/api/v2/alerts");
    curl_easy_setopt(e, CURLOPT_URL, url); /* curl copies it */
    free(url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    return kvl_notify_xfer(r, e, h, body, done, why, whylen);
}

static void on_sent(kvl_notify_rcv_t *r, int result, const char *why)
{
    kvl_notify_rcv_result(r, result, why);
}

static int am_send(kvl_notify_rcv_t *r, const kvl_notify_msg_t *m, char *why, size_t whylen)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < m->n_alerts; i++) {
        json_t *a = am_alert(r, m->alerts[i]);
        if (a == NULL || json_array_append_new(arr, a) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    if (arr == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    int rc = post(r, arr, on_sent, why, whylen);
    return rc == 0 ? 0 : rc;
}

static void am_confirmed(kvl_notify_rcv_t *r, const kvl_notify_msg_t *m)
{
    am_t *am = r->priv;
    json_t *alerts = json_object_get(m->json, "alerts");
    for (size_t i = 0; i < m->n_alerts; i++) {
        char fp[24];
        snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)m->alerts[i]->fingerprint);
        if (m->alerts[i]->status == KVL_ALERT_RESOLVED) {
            json_object_del(am->firing, fp);
        } else {
            json_object_set(am->firing, fp, json_array_get(alerts, i));
        }
    }
}

static void on_resent(kvl_notify_rcv_t *r, int result, const char *why)
{
    am_t *am = r->priv;
    bool ok = result == KVL_NOTIFY_DELIVERED;
    r->busy = false;
    am->resending = false;
    if (!ok && !am->resend_failing) {
        KVL_LOG_WARN(MOD, r->cfg->name, "re-posting the firing alerts failed: %s", why);
    } else if (ok && am->resend_failing) {
        KVL_LOG_INFO(MOD, r->cfg->name, "re-posting the firing alerts works again");
    }
    am->resend_failing = !ok;
    if (!ok) {
        kvl_notify_count_failed(r);
    }
    kvl_notify_kick(r);
}

static void on_resend_tick(uv_timer_t *t)
{
    kvl_notify_rcv_t *r = t->data;
    am_t *am = r->priv;
    if (r->busy || r->closing || r->head != NULL || json_object_size(am->firing) == 0) {
        return;
    }
    json_t *arr = json_array();
    const char *key;
    json_t *v;
    json_object_foreach(am->firing, key, v)
    {
        char why[256];
        kvl_alert_t *a = kvl_alert_from_json(v, why, sizeof(why));
        json_t *o = a ? am_alert(r, a) : NULL;
        kvl_alert_free(a);
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            return;
        }
    }
    char why[512];
    r->busy = true;
    am->resending = true;
    if (post(r, arr, on_resent, why, sizeof(why)) != 0) {
        on_resent(r, KVL_NOTIFY_FAILED, why);
    }
}

static int am_open(kvl_notify_rcv_t *r, char *why, size_t whylen)
{
    am_t *am = calloc(1, sizeof(*am));
    if (am == NULL || (am->firing = json_object()) == NULL) {
        free(am);
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    r->priv = am;
    uv_timer_init(r->loop, &am->resend);
    am->resend.data = r;
    uint64_t every = (uint64_t)r->cfg->resend_ms;
    uv_timer_start(&am->resend, on_resend_tick, every, every);
    return 0;
}

static json_t *am_state_save(kvl_notify_rcv_t *r)
{
    am_t *am = r->priv;
    json_t *o = json_object();
    if (o != NULL && json_object_set(o, "firing", am->firing) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static void am_state_load(kvl_notify_rcv_t *r, const json_t *state)
{
    am_t *am = r->priv;
    json_t *f = json_object_get(state, "firing");
    if (json_is_object(f)) {
        json_object_update(am->firing, f);
    }
}

static void on_closed(uv_handle_t *h)
{
    kvl_notify_closed(h->data);
}

static void am_close(kvl_notify_rcv_t *r)
{
    am_t *am = r->priv;
    if (am == NULL) {
        return;
    }
    json_decref(am->firing);
    am->firing = NULL;
    kvl_notify_closing(r);
    uv_close((uv_handle_t *)&am->resend, on_closed);
}

const kvl_notify_ops_t kvl_notify_am_ops = {
    .open = am_open,
    .send = am_send,
    .confirmed = am_confirmed,
    .state_save = am_state_save,
    .state_load = am_state_load,
    .close = am_close,
};
