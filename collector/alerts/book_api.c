/*
 * book_api.c — the alert book's HTTP API (book.h, kvl_book_api_register): handlers that
 * run on the loop (collector/web/http.h), every parameter and body checked
 * (book_query.c, silence.c) with a sentence in a 400, unknown things a 404.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "book_int.h"
#include "http.h"
#include "kvl.h"
#include "log.h"

static const char *const MOD = "alerts";

static const char *req_param(const void *ctx, const char *key)
{
    return kvl_http_query(ctx, key);
}

static json_t *time_json(int64_t ms)
{
    char t[40];
    kvl_alert_time_format(ms, t, sizeof(t));
    return json_string(t);
}

static json_t *entry_json(const kvl_book_t *b, const book_entry_t *e, int64_t now)
{
    json_t *o = kvl_alert_to_json(e->a);
    if (o == NULL) {
        return NULL;
    }
    if (e->acked) {
        json_object_set_new(o, "ack",
                            json_pack("{s:s, s:o, s:s}", "by", e->ack_by, "at",
                                      time_json(e->ack_ms), "comment", e->ack_comment));
    } else {
        json_object_set_new(o, "ack", json_null());
    }
    json_object_set_new(o, "silenced", json_boolean(book_silenced(b, e->a, now)));
    json_object_set_new(o, "maintenance", json_boolean(book_in_maint(b, e->a, now)));
    char why[400];
    json_object_set_new(o, "suppressed",
                        e->a->status != KVL_ALERT_RESOLVED &&
                                book_suppressed(b, e->a, why, sizeof(why))
                            ? json_string(why)
                            : json_null());
    json_object_set_new(o, "escalated", json_boolean(e->escalated));
    json_t *sent = json_array();
    for (size_t i = 0; sent != NULL && i < e->n_t; i++) {
        if (e->t[i].fired) {
            json_array_append_new(sent, json_string(e->t[i].receiver));
        }
    }
    json_object_set_new(o, "notified", sent);
    return o;
}

static bool label_is(const json_t *labels, const char *key, const char *want)
{
    if (want == NULL) {
        return true;
    }
    const char *v = json_string_value(json_object_get(labels, key));
    return v != NULL && strcmp(v, want) == 0;
}

static bool active_matches(const kvl_book_filter_t *f, const book_entry_t *e)
{
    const kvl_alert_t *a = e->a;
    const char *site = kvl_alert_label(a, "site");
    const char *device = kvl_alert_label(a, "device");
    return a->status != KVL_ALERT_RESOLVED && (f->status == 0 || (int)a->status == f->status) &&
           (f->severity < 0 || a->severity == f->severity) &&
           (f->site == NULL || (site != NULL && strcmp(site, f->site) == 0)) &&
           (f->device == NULL || (device != NULL && strcmp(device, f->device) == 0)) &&
           (f->rule == NULL || (a->rule != NULL && strcmp(a->rule, f->rule) == 0));
}

static bool history_matches(const kvl_book_filter_t *f, const json_t *rec)
{
    const json_t *labels = json_object_get(rec, "labels");
    const char *event = json_string_value(json_object_get(rec, "event"));
    json_int_t at = json_integer_value(json_object_get(rec, "at"));
    return at >= f->since_ms &&
           (f->status == 0 ||
            (event != NULL && strcmp(event, kvl_alert_status_name(f->status)) == 0)) &&
           (f->severity < 0 ||
            label_is(labels, "severity", kvl_rules_severity_name(f->severity))) &&
           label_is(labels, "site", f->site) && label_is(labels, "device", f->device) &&
           label_is(labels, "alertname", f->rule);
}

static void list_history(kvl_book_t *b, const kvl_book_filter_t *f, kvl_http_resp_t *resp)
{
    /* the last `limit` matching records, oldest first */
    size_t start = b->hist_n, found = 0;
    while (start > 0 && found < f->limit) {
        start--;
        if (history_matches(f, book_history_at(b, start))) {
            found++;
        }
    }
    json_t *arr = json_array();
    for (size_t i = start; arr != NULL && i < b->hist_n; i++) {
        json_t *rec = book_history_at(b, i);
        if (!history_matches(f, rec)) {
            continue;
        }
        json_t *c = json_copy(rec);
        if (c != NULL) {
            json_object_set_new(c, "at", time_json(json_integer_value(json_object_get(rec, "at"))));
            json_array_append_new(arr, c);
        }
    }
    if (arr == NULL) {
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    resp->status = 200;
    resp->body = arr;
}

static void alerts_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_book_t *b = ctx;
    kvl_book_filter_t f;
    char why[256];
    bool history = req->n_segs == 1 && strcmp(req->segs[0], "history") == 0;
    if (req->n_segs > 0 && !history) {
        kvl_http_error(resp, 404,
                       "no such resource (GET /api/v1/alerts or "
                       "/api/v1/alerts/history)");
        return;
    }
    if (kvl_book_filter_parse(req_param, req, &f, why, sizeof(why)) != 0) {
        kvl_http_error(resp, 400, "%s", why);
        return;
    }
    if (history || f.history) {
        list_history(b, &f, resp);
        return;
    }
    int64_t now = kvl_book_now(b);
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < b->n_e && json_array_size(arr) < f.limit; i++) {
        if (active_matches(&f, b->e[i])) {
            json_array_append_new(arr, entry_json(b, b->e[i], now));
        }
    }
    if (arr == NULL) {
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    resp->status = 200;
    resp->body = arr;
}

/* A comment from an optional body {"comment": "..."}: 0 or KVL_EINVAL with why. */
static int ack_comment(const json_t *body, const char **out, char *why, size_t whylen)
{
    *out = "";
    if (body == NULL) {
        return 0;
    }
    if (!json_is_object(body)) {
        snprintf(why, whylen, "the body must be an object {\"comment\": \"...\"}");
        return KVL_EINVAL;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)body, key, v)
    {
        if (strcmp(key, "comment") != 0) {
            snprintf(why, whylen, "unknown field '%.64s' (only comment)", key);
            return KVL_EINVAL;
        }
        const char *s = json_string_value(v);
        if (s == NULL || json_string_length(v) != strlen(s) || strlen(s) > KVL_COMMENT_MAX) {
            snprintf(why, whylen, "comment must be text of at most %d bytes", KVL_COMMENT_MAX);
            return KVL_EINVAL;
        }
        for (const char *p = s; *p != '\0'; p++) {
            if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t') {
                snprintf(why, whylen, "comment must not hold control characters");
                return KVL_EINVAL;
            }
        }
        *out = s;
    }
    return 0;
}

static void alerts_post(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_book_t *b = ctx;
    uint64_t fp;
    if (req->n_segs != 2 || strcmp(req->segs[1], "ack") != 0) {
        kvl_http_error(resp, 404, "no such resource (POST /api/v1/alerts/<fingerprint>/ack)");
        return;
    }
    if (kvl_book_fp_parse(req->segs[0], &fp) != 0) {
        kvl_http_error(resp, 400, "a fingerprint is 16 lowercase hex digits");
        return;
    }
    const char *comment;
    char why[256];
    if (ack_comment(req->body, &comment, why, sizeof(why)) != 0) {
        kvl_http_error(resp, 400, "%s", why);
        return;
    }
    int rc = kvl_book_ack(b, fp, req->user, comment);
    if (rc == KVL_EINVAL) {
        kvl_http_error(resp, 404, "no active alert %016" PRIx64, fp);
        return;
    }
    if (rc != 0) {
        kvl_http_error(resp, 500, "the acknowledgement could not be stored: %s", kvl_strerror(rc));
        return;
    }
    KVL_LOG_INFO(MOD, req->user, "alert %016" PRIx64 " acknowledged", fp);
    book_entry_t *e = book_find(b, fp);
    resp->status = 200;
    resp->body = e != NULL ? entry_json(b, e, kvl_book_now(b)) : NULL;
}

/* --- silences and maintenance: one set of handlers, two kinds -------------------------------- */

typedef struct api_ctx {
    kvl_book_t *b;
    bool maint;
} api_ctx_t;

static void mute_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    api_ctx_t *c = ctx;
    kvl_book_t *b = c->b;
    if (req->n_segs > 1) {
        kvl_http_error(resp, 404, "no such resource");
        return;
    }
    json_t *arr = json_array();
    size_t n = c->maint ? b->n_m : b->n_s;
    for (size_t i = 0; arr != NULL && i < n; i++) {
        const char *id = c->maint ? b->m[i]->id : b->s[i]->id;
        if (req->n_segs == 1 && strcmp(req->segs[0], id) != 0) {
            continue;
        }
        json_t *o = c->maint ? kvl_maint_to_json(b->m[i]) : kvl_silence_to_json(b->s[i]);
        if (c->maint && o != NULL) {
            json_object_set_new(o, "active",
                                json_boolean(kvl_maint_active(b->m[i], kvl_book_now(b))));
        }
        json_array_append_new(arr, o);
    }
    if (arr == NULL) {
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    if (req->n_segs == 1) {
        if (json_array_size(arr) == 0) {
            json_decref(arr);
            kvl_http_error(resp, 404, "no such id");
            return;
        }
        resp->body = json_incref(json_array_get(arr, 0));
        json_decref(arr);
    } else {
        resp->body = arr;
    }
    resp->status = 200;
}

static void mute_post(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    api_ctx_t *c = ctx;
    kvl_book_t *b = c->b;
    char why[256];
    if (req->n_segs != 0) {
        kvl_http_error(resp, 404, "no such resource (POST to the collection)");
        return;
    }
    int64_t now = kvl_book_now(b);
    int rc;
    char id[KVL_SILENCE_ID_LEN + 1];
    json_t *out = NULL;
    if (c->maint) {
        kvl_maint_t *m;
        rc = kvl_maint_from_json(req->body, false, req->user, now, &m, why, sizeof(why));
        if (rc == 0) {
            memcpy(id, m->id, sizeof(id));
            out = kvl_maint_to_json(m);
            rc = kvl_book_maint_add(b, m);
        }
    } else {
        kvl_silence_t *s;
        rc = kvl_silence_from_json(req->body, false, req->user, now, &s, why, sizeof(why));
        if (rc == 0) {
            memcpy(id, s->id, sizeof(id));
            out = kvl_silence_to_json(s);
            rc = kvl_book_silence_add(b, s);
        }
    }
    if (rc == KVL_EINVAL && out == NULL) {
        kvl_http_error(resp, 400, "%s", why);
        return;
    }
    if (rc == KVL_EINVAL) {
        json_decref(out);
        kvl_http_error(resp, 400, "too many %s already",
                       c->maint ? "maintenance windows" : "silences");
        return;
    }
    if (rc != 0) {
        json_decref(out);
        kvl_http_error(resp, 500, "not stored: %s", kvl_strerror(rc));
        return;
    }
    KVL_LOG_INFO(MOD, req->user, "%s %s added", c->maint ? "maintenance window" : "silence", id);
    resp->status = 201;
    resp->body = out;
}

static void mute_delete(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    api_ctx_t *c = ctx;
    if (req->n_segs != 1) {
        kvl_http_error(resp, 404, "no such resource (DELETE .../<id>)");
        return;
    }
    const char *id = req->segs[0];
    if (strlen(id) != KVL_SILENCE_ID_LEN || strspn(id, "0123456789abcdef") != KVL_SILENCE_ID_LEN) {
        kvl_http_error(resp, 400, "an id is %d lowercase hex digits", KVL_SILENCE_ID_LEN);
        return;
    }
    int rc = c->maint ? kvl_book_maint_del(c->b, id) : kvl_book_silence_del(c->b, id);
    if (rc == KVL_EINVAL) {
        kvl_http_error(resp, 404, "no such id");
        return;
    }
    if (rc != 0) {
        kvl_http_error(resp, 500, "not stored: %s", kvl_strerror(rc));
        return;
    }
    KVL_LOG_INFO(MOD, req->user, "%s %s removed", c->maint ? "maintenance window" : "silence", id);
    resp->status = 200;
    resp->body = json_pack("{s:s}", "deleted", id);
}

static api_ctx_t *api_ctx(kvl_book_t *b, bool maint)
{
    /* two per book (silences, maintenance), freed with the book */
    api_ctx_t *c = calloc(1, sizeof(*c));
    if (c != NULL) {
        c->b = b;
        c->maint = maint;
    }
    return c;
}

int kvl_book_api_register(kvl_book_t *b, kvl_http_t *http)
{
    for (int k = 0; k < 2; k++) {
        if (b->api[k] == NULL) {
            b->api[k] = api_ctx(b, k == 1);
        }
        if (b->api[k] == NULL) {
            return KVL_ENOMEM;
        }
    }
    int rc = 0;
    rc |= kvl_http_route(http, "GET", "/api/v1/alerts", KVL_ROLE_VIEWER, alerts_get, b);
    rc |= kvl_http_route(http, "POST", "/api/v1/alerts", KVL_ROLE_OPERATOR, alerts_post, b);
    static const char *const paths[2] = {"/api/v1/silences", "/api/v1/maintenance"};
    for (int k = 0; k < 2; k++) {
        rc |= kvl_http_route(http, "GET", paths[k], KVL_ROLE_VIEWER, mute_get, b->api[k]);
        rc |= kvl_http_route(http, "POST", paths[k], KVL_ROLE_OPERATOR, mute_post, b->api[k]);
        rc |= kvl_http_route(http, "DELETE", paths[k], KVL_ROLE_OPERATOR, mute_delete, b->api[k]);
    }
    return rc != 0 ? KVL_EINVAL : 0;
}
