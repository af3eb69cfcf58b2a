/*
 * alert.c — the alert value shared by the engine, the book, the notifiers and the API:
 * label order and fingerprint, copies, the JSON form, the graph URL and RFC 3339 times.
 */
#include "alert.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvl.h"
#include "rules.h"

static int label_cmp(const void *x, const void *y)
{
    const kvl_label_t *a = x;
    const kvl_label_t *b = y;
    return strcmp(a->key, b->key);
}

uint64_t kvl_alert_fingerprint(const kvl_label_t *labels, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        const char *parts[2] = {labels[i].key, labels[i].value};
        for (size_t k = 0; k < 2; k++) {
            for (const unsigned char *p = (const unsigned char *)parts[k]; *p != '\0'; p++) {
                h ^= *p;
                h *= 0x100000001b3ull;
            }
            h *= 0x100000001b3ull; /* the NUL after each string: "a","bc" != "ab","c" */
        }
    }
    return h;
}

int kvl_alert_finish(kvl_alert_t *a)
{
    if (a->n_labels > KVL_ALERT_LABELS_MAX) {
        return KVL_EINVAL;
    }
    for (size_t i = 0; i < a->n_labels; i++) {
        if (a->labels[i].key == NULL || a->labels[i].value == NULL || a->labels[i].key[0] == '\0' ||
            a->labels[i].value[0] == '\0') {
            return KVL_EINVAL;
        }
    }
    qsort(a->labels, a->n_labels, sizeof(a->labels[0]), label_cmp);
    for (size_t i = 1; i < a->n_labels; i++) {
        if (strcmp(a->labels[i - 1].key, a->labels[i].key) == 0) {
            return KVL_EINVAL;
        }
    }
    a->fingerprint = kvl_alert_fingerprint(a->labels, a->n_labels);
    return 0;
}

const char *kvl_alert_label(const kvl_alert_t *a, const char *key)
{
    for (size_t i = 0; i < a->n_labels; i++) {
        if (strcmp(a->labels[i].key, key) == 0) {
            return a->labels[i].value;
        }
    }
    return NULL;
}

const char *kvl_alert_field(const kvl_alert_t *a, const char *key)
{
    for (size_t i = 0; i < a->n_fields; i++) {
        if (strcmp(a->fields[i].key, key) == 0) {
            return a->fields[i].value;
        }
    }
    return NULL;
}

const char *kvl_alert_status_name(kvl_alert_status_t s)
{
    switch (s) {
    case KVL_ALERT_PENDING:
        return "pending";
    case KVL_ALERT_FIRING:
        return "firing";
    case KVL_ALERT_RESOLVED:
        return "resolved";
    }
    return "?";
}

/* --- copies: one allocation holding the struct and every string ---------------------------- */

static size_t str_size(const char *s)
{
    return s == NULL ? 0 : strlen(s) + 1;
}

static const char *str_put(char **at, const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    size_t n = strlen(s) + 1;
    memcpy(*at, s, n);
    const char *r = *at;
    *at += n;
    return r;
}

kvl_alert_t *kvl_alert_dup(const kvl_alert_t *a)
{
    if (a->n_labels > KVL_ALERT_LABELS_MAX || a->n_fields > KVL_ALERT_FIELDS_MAX) {
        return NULL;
    }
    size_t need = sizeof(*a) + str_size(a->rule) + str_size(a->summary) + str_size(a->description) +
                  str_size(a->url);
    for (size_t i = 0; i < a->n_labels; i++) {
        need += str_size(a->labels[i].key) + str_size(a->labels[i].value);
    }
    for (size_t i = 0; i < a->n_fields; i++) {
        need += str_size(a->fields[i].key) + str_size(a->fields[i].value);
    }
    kvl_alert_t *c = malloc(need);
    if (c == NULL) {
        return NULL;
    }
    *c = *a;
    char *at = (char *)(c + 1);
    c->rule = str_put(&at, a->rule);
    c->summary = str_put(&at, a->summary);
    c->description = str_put(&at, a->description);
    c->url = str_put(&at, a->url);
    for (size_t i = 0; i < a->n_labels; i++) {
        c->labels[i].key = str_put(&at, a->labels[i].key);
        c->labels[i].value = str_put(&at, a->labels[i].value);
    }
    for (size_t i = 0; i < a->n_fields; i++) {
        c->fields[i].key = str_put(&at, a->fields[i].key);
        c->fields[i].value = str_put(&at, a->fields[i].value);
    }
    return c;
}

void kvl_alert_free(kvl_alert_t *a)
{
    free(a);
}

/* --- times ---------------------------------------------------------------------------------- */

void kvl_alert_time_format(int64_t ms, char *buf, size_t len)
{
    time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int frac = (int)(ms - (int64_t)s * 1000);
    struct tm tm;
    if (gmtime_r(&s, &tm) == NULL) {
        snprintf(buf, len, "1970-01-01T00:00:00.000Z");
        return;
    }
    /* the remainders tell the compiler how wide each field can be */
    snprintf(buf, len, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ",
             (unsigned)(tm.tm_year + 1900) % 10000u, (unsigned)(tm.tm_mon + 1) % 100u,
             (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u,
             (unsigned)tm.tm_sec % 100u, (unsigned)frac % 1000u);
}

static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**p)) {
            return KVL_EINVAL;
        }
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return 0;
}

static int expect(const char **p, char c)
{
    if (**p != c) {
        return KVL_EINVAL;
    }
    (*p)++;
    return 0;
}

int kvl_alert_time_parse(const char *s, int64_t *ms)
{
    const char *p = s;
    int y, mo, d, h, mi, se, frac = 0;
    if (digits(&p, 4, &y) || expect(&p, '-') || digits(&p, 2, &mo) || expect(&p, '-') ||
        digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' ')) {
        return KVL_EINVAL;
    }
    p++;
    if (digits(&p, 2, &h) || expect(&p, ':') || digits(&p, 2, &mi) || expect(&p, ':') ||
        digits(&p, 2, &se)) {
        return KVL_EINVAL;
    }
    if (*p == '.') {
        p++;
        int n = 0;
        while (isdigit((unsigned char)*p)) {
            if (n < 3) {
                frac = frac * 10 + (*p - '0');
            }
            n++;
            p++;
        }
        if (n == 0 || n > 9) {
            return KVL_EINVAL;
        }
        for (; n < 3; n++) {
            frac *= 10;
        }
    }
    int off_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int oh, om;
        if (digits(&p, 2, &oh) || expect(&p, ':') || digits(&p, 2, &om) || oh > 23 || om > 59) {
            return KVL_EINVAL;
        }
        off_min = sign * (oh * 60 + om);
    } else {
        return KVL_EINVAL;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 ||
        y < 1970) {
        return KVL_EINVAL;
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    time_t t = timegm(&tm);
    if (t == (time_t)-1) {
        return KVL_EINVAL;
    }
    *ms = ((int64_t)t - (int64_t)off_min * 60) * 1000 + frac;
    return 0;
}

/* --- JSON ----------------------------------------------------------------------------------- */

static int set_str(json_t *o, const char *key, const char *v)
{
    return v == NULL ? 0 : json_object_set_new(o, key, json_string(v));
}

static int set_time(json_t *o, const char *key, int64_t ms)
{
    char t[40];
    kvl_alert_time_format(ms, t, sizeof(t));
    return json_object_set_new(o, key, json_string(t));
}

json_t *kvl_alert_to_json(const kvl_alert_t *a)
{
    json_t *o = json_object();
    json_t *labels = json_object();
    if (o == NULL || labels == NULL) {
        json_decref(o);
        json_decref(labels);
        return NULL;
    }
    char fp[24];
    snprintf(fp, sizeof(fp), "%016" PRIx64, a->fingerprint);
    int rc = 0;
    for (size_t i = 0; i < a->n_labels; i++) {
        rc |= json_object_set_new(labels, a->labels[i].key, json_string(a->labels[i].value));
    }
    rc |= json_object_set_new(o, "fingerprint", json_string(fp));
    rc |= json_object_set_new(o, "status", json_string(kvl_alert_status_name(a->status)));
    rc |= set_str(o, "rule", a->rule);
    rc |= json_object_set_new(o, "severity", json_string(kvl_rules_severity_name(a->severity)));
    rc |= json_object_set_new(o, "labels", labels);
    rc |= set_str(o, "summary", a->summary);
    rc |= set_str(o, "description", a->description);
    if (a->has_value) {
        rc |= json_object_set_new(o, "value", json_real(a->value));
    }
    if (a->has_threshold) {
        rc |= json_object_set_new(o, "threshold", json_real(a->threshold));
    }
    rc |= set_time(o, "active_at", a->active_at_ms);
    rc |= set_time(o, "starts_at", a->starts_at_ms);
    if (a->status == KVL_ALERT_RESOLVED) {
        rc |= set_time(o, "ends_at", a->ends_at_ms);
    }
    rc |= set_time(o, "changed", a->changed_ms);
    rc |= json_object_set_new(o, "late", json_boolean(a->late));
    rc |= set_str(o, "url", a->url);
    if (a->n_fields > 0) {
        json_t *f = json_object();
        for (size_t i = 0; f != NULL && i < a->n_fields; i++) {
            rc |= json_object_set_new(f, a->fields[i].key, json_string(a->fields[i].value));
        }
        rc |= f == NULL ? -1 : json_object_set_new(o, "fields", f);
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static const char *get_str(const json_t *o, const char *key, bool need, bool *bad)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL || json_is_null(v)) {
        if (need) {
            *bad = true;
        }
        return NULL;
    }
    if (!json_is_string(v)) {
        *bad = true;
        return NULL;
    }
    return json_string_value(v);
}

static int64_t get_time(const json_t *o, const char *key, bool need, bool *bad)
{
    const char *s = get_str(o, key, need, bad);
    int64_t ms = 0;
    if (s != NULL && kvl_alert_time_parse(s, &ms) != 0) {
        *bad = true;
    }
    return ms;
}

kvl_alert_t *kvl_alert_from_json(const json_t *o, char *why, size_t whylen)
{
    if (!json_is_object(o)) {
        snprintf(why, whylen, "an alert is a JSON object");
        return NULL;
    }
    kvl_alert_t a = {0};
    bool bad = false;
    const char *status = get_str(o, "status", true, &bad);
    const char *sev = get_str(o, "severity", true, &bad);
    a.rule = get_str(o, "rule", true, &bad);
    a.summary = get_str(o, "summary", false, &bad);
    a.description = get_str(o, "description", false, &bad);
    a.url = get_str(o, "url", false, &bad);
    a.active_at_ms = get_time(o, "active_at", true, &bad);
    a.starts_at_ms = get_time(o, "starts_at", true, &bad);
    a.ends_at_ms = get_time(o, "ends_at", false, &bad);
    a.changed_ms = get_time(o, "changed", true, &bad);
    if (bad) {
        snprintf(why, whylen, "an alert's field is missing or of the wrong type");
        return NULL;
    }
    a.status = 0;
    for (int s = KVL_ALERT_PENDING; s <= KVL_ALERT_RESOLVED; s++) {
        if (strcmp(status, kvl_alert_status_name(s)) == 0) {
            a.status = s;
        }
    }
    a.severity = -1;
    for (int s = KVL_RULE_SEV_CRITICAL; s <= KVL_RULE_SEV_INFO; s++) {
        if (strcmp(sev, kvl_rules_severity_name(s)) == 0) {
            a.severity = s;
        }
    }
    if (a.status == 0 || a.severity < 0) {
        snprintf(why, whylen, "unknown status '%s' or severity '%s'", status, sev);
        return NULL;
    }
    const json_t *v = json_object_get(o, "value");
    if (v != NULL) {
        if (!json_is_number(v)) {
            snprintf(why, whylen, "'value' is not a number");
            return NULL;
        }
        a.value = json_number_value(v);
        a.has_value = true;
    }
    v = json_object_get(o, "threshold");
    if (v != NULL) {
        if (!json_is_number(v)) {
            snprintf(why, whylen, "'threshold' is not a number");
            return NULL;
        }
        a.threshold = json_number_value(v);
        a.has_threshold = true;
    }
    v = json_object_get(o, "late");
    a.late = v != NULL && json_is_true(v);
    const json_t *labels = json_object_get(o, "labels");
    if (!json_is_object(labels) || json_object_size(labels) > KVL_ALERT_LABELS_MAX) {
        snprintf(why, whylen, "'labels' is not an object of at most %d labels",
                 KVL_ALERT_LABELS_MAX);
        return NULL;
    }
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *)labels, key, val)
    {
        if (!json_is_string(val)) {
            snprintf(why, whylen, "label '%s' is not a string", key);
            return NULL;
        }
        a.labels[a.n_labels].key = key;
        a.labels[a.n_labels].value = json_string_value(val);
        a.n_labels++;
    }
    const json_t *fields = json_object_get(o, "fields");
    if (fields != NULL &&
        (!json_is_object(fields) || json_object_size(fields) > KVL_ALERT_FIELDS_MAX)) {
        snprintf(why, whylen, "'fields' is not an object of at most %d fields",
                 KVL_ALERT_FIELDS_MAX);
        return NULL;
    }
    if (fields != NULL) {
        json_object_foreach((json_t *)fields, key, val)
        {
            if (!json_is_string(val)) {
                snprintf(why, whylen, "field '%s' is not a string", key);
                return NULL;
            }
            a.fields[a.n_fields].key = key;
            a.fields[a.n_fields].value = json_string_value(val);
            a.n_fields++;
        }
    }
    if (kvl_alert_finish(&a) != 0) {
        snprintf(why, whylen, "labels with an empty key or value");
        return NULL;
    }
    const char *fp = get_str(o, "fingerprint", false, &bad);
    char mine[24];
    snprintf(mine, sizeof(mine), "%016" PRIx64, a.fingerprint);
    if (bad || (fp != NULL && strcmp(fp, mine) != 0)) {
        snprintf(why, whylen, "fingerprint does not match the labels");
        return NULL;
    }
    kvl_alert_t *c = kvl_alert_dup(&a);
    if (c == NULL) {
        snprintf(why, whylen, "out of memory");
    }
    return c;
}

/* --- the graph URL -------------------------------------------------------------------------- */

static size_t put_enc(char *buf, size_t len, size_t at, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        bool plain = isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~';
        if (plain) {
            if (at + 1 < len) {
                buf[at] = (char)*p;
            }
            at++;
        } else {
            if (at + 3 < len) {
                buf[at] = '%';
                buf[at + 1] = hex[*p >> 4];
                buf[at + 2] = hex[*p & 15];
            }
            at += 3;
        }
    }
    return at;
}

static size_t put_raw(char *buf, size_t len, size_t at, const char *s)
{
    for (; *s != '\0'; s++) {
        if (at + 1 < len) {
            buf[at] = *s;
        }
        at++;
    }
    return at;
}

size_t kvl_alert_url(const char *base, const kvl_alert_t *a, char *buf, size_t len)
{
    size_t at = put_raw(buf, len, 0, base);
    at = put_raw(buf, len, at, "/graph.html");
    static const char *const keys[] = {"site", "device", "interface", "target"};
    char sep = '?';
    for (size_t i = 0; i < KVL_ARRAY_SIZE(keys); i++) {
        const char *v = kvl_alert_label(a, keys[i]);
        if (v == NULL) {
            continue;
        }
        char head[24];
        snprintf(head, sizeof(head), "%c%s=", sep, keys[i]);
        at = put_raw(buf, len, at, head);
        at = put_enc(buf, len, at, v);
        sep = '&';
    }
    char tail[80];
    if (a->status == KVL_ALERT_RESOLVED) {
        snprintf(tail, sizeof(tail), "%cfrom=%" PRId64 "&to=%" PRId64, sep,
                 a->starts_at_ms / 1000 - 3600, a->ends_at_ms / 1000 + 3600);
    } else {
        snprintf(tail, sizeof(tail), "%cfrom=%" PRId64 "&to=now", sep,
                 a->starts_at_ms / 1000 - 3600);
    }
    at = put_raw(buf, len, at, tail);
    if (len > 0) {
        buf[at < len ? at : len - 1] = '\0';
    }
    return at;
}
