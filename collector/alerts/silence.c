/*
 * silence.c — label matchers, silences and maintenance windows (silence.h): checked
 * parsing from JSON, JSON output, activity at a time, matching an alert.
 */
#include "silence.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "kvl.h"
#include "timeutil.h"

#define MIN_MS (60 * 1000ll)
#define DAY_MS (86400 * 1000ll)
#define WEEK_MS (7 * DAY_MS)
#define YEAR_MS (366 * DAY_MS)
#define REGEX_MAX 256

static const char *const op_names[] = {"=", "!=", "=~", "!~"};
static const char *const day_names[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

void kvl_silence_new_id(char out[KVL_SILENCE_ID_LEN + 1])
{
    uint64_t r = 0;
    if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
        static uint64_t counter;
        r = (uint64_t)kvl_now_ms() * 6364136223846793005ull + kvl_mono_ns() + ++counter;
    }
    snprintf(out, KVL_SILENCE_ID_LEN + 1, "%016" PRIx64, r);
}

/* --- matchers ------------------------------------------------------------------------------ */

static void matchers_clear(kvl_matchers_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->v[i].name);
        free(m->v[i].value);
        if (m->v[i].has_re) {
            regfree(&m->v[i].re);
        }
    }
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

static bool matcher_match(const kvl_matcher_t *m, const char *s)
{
    switch (m->op) {
    case KVL_MATCH_EQ:
        return strcmp(s, m->value) == 0;
    case KVL_MATCH_NE:
        return strcmp(s, m->value) != 0;
    case KVL_MATCH_RE:
        return regexec(&m->re, s, 0, NULL, 0) == 0;
    case KVL_MATCH_NRE:
        return regexec(&m->re, s, 0, NULL, 0) != 0;
    }
    return false;
}

bool kvl_matchers_match(const kvl_matchers_t *m, const kvl_alert_t *a)
{
    for (size_t i = 0; i < m->n; i++) {
        const char *v = kvl_alert_label(a, m->v[i].name);
        if (!matcher_match(&m->v[i], v == NULL ? "" : v)) {
            return false;
        }
    }
    return true;
}

static bool label_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 100 || (s[0] >= '0' && s[0] <= '9')) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* A string without control characters, at most max bytes. */
static bool text_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

static int matcher_parse(const json_t *o, size_t idx, kvl_matcher_t *m, char *why, size_t whylen)
{
    if (!json_is_object(o)) {
        snprintf(why, whylen, "matcher %zu is not an object {name, value, op}", idx + 1);
        return KVL_EINVAL;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)o, key, v)
    {
        if (strcmp(key, "name") != 0 && strcmp(key, "value") != 0 && strcmp(key, "op") != 0) {
            snprintf(why, whylen, "matcher %zu: unknown field (expected name, value, op)", idx + 1);
            return KVL_EINVAL;
        }
    }
    const json_t *jn = json_object_get(o, "name");
    const json_t *jv = json_object_get(o, "value");
    const json_t *jo = json_object_get(o, "op");
    if (!json_is_string(jn) || !label_name_ok(json_string_value(jn))) {
        snprintf(why, whylen,
                 "matcher %zu: 'name' must be a label name (letters, digits, _; 1-100)", idx + 1);
        return KVL_EINVAL;
    }
    if (!json_is_string(jv) || json_string_length(jv) != strlen(json_string_value(jv)) ||
        !text_ok(json_string_value(jv), KVL_MATCH_VALUE_MAX)) {
        snprintf(why, whylen,
                 "matcher %zu: 'value' must be text of at most %d bytes without control "
                 "characters",
                 idx + 1, KVL_MATCH_VALUE_MAX);
        return KVL_EINVAL;
    }
    int op = -1;
    if (jo == NULL) {
        op = KVL_MATCH_EQ;
    } else if (json_is_string(jo)) {
        for (int k = 0; k < (int)KVL_ARRAY_SIZE(op_names); k++) {
            if (strcmp(json_string_value(jo), op_names[k]) == 0) {
                op = k;
            }
        }
    }
    if (op < 0) {
        snprintf(why, whylen, "matcher %zu: 'op' must be one of = != =~ !~", idx + 1);
        return KVL_EINVAL;
    }
    const char *value = json_string_value(jv);
    m->op = op;
    if (op == KVL_MATCH_RE || op == KVL_MATCH_NRE) {
        size_t n = strlen(value);
        if (n > REGEX_MAX) {
            snprintf(why, whylen, "matcher %zu: a regular expression has at most %d bytes", idx + 1,
                     REGEX_MAX);
            return KVL_EINVAL;
        }
        /* what could make regcomp or regexec costly: back-references, and intervals that
         * multiply (glibc copies the repeated part) */
        int intervals = 0;
        for (size_t i = 0; i < n; i++) {
            if (value[i] == '\\' && i + 1 < n) {
                if (value[i + 1] >= '0' && value[i + 1] <= '9') {
                    snprintf(why, whylen, "matcher %zu: back-references are not allowed", idx + 1);
                    return KVL_EINVAL;
                }
                i++;
            } else if (value[i] == '{') {
                char *end;
                unsigned long lo = strtoul(value + i + 1, &end, 10);
                unsigned long hi = *end == ',' ? strtoul(end + 1, &end, 10) : lo;
                if (++intervals > 2 || lo > 32 || hi > 32) {
                    snprintf(why, whylen, "matcher %zu: at most two intervals {m,n}, each up to 32",
                             idx + 1);
                    return KVL_EINVAL;
                }
            }
        }
        char anchored[REGEX_MAX + 8];
        snprintf(anchored, sizeof(anchored), "^(%s)$", value);
        int rc = regcomp(&m->re, anchored, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char e[128];
            regerror(rc, &m->re, e, sizeof(e));
            snprintf(why, whylen, "matcher %zu: bad regular expression '%s': %s", idx + 1, value,
                     e);
            return KVL_EINVAL;
        }
        m->has_re = true;
    }
    m->name = strdup(json_string_value(jn));
    m->value = strdup(value);
    if (m->name == NULL || m->value == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    return 0;
}

static int matchers_parse(const json_t *o, kvl_matchers_t *out, char *why, size_t whylen)
{
    const json_t *arr = json_object_get(o, "matchers");
    if (!json_is_array(arr) || json_array_size(arr) == 0 ||
        json_array_size(arr) > KVL_MATCHERS_MAX) {
        snprintf(why, whylen, "'matchers' must be a list of 1 to %d matchers {name, value, op}",
                 KVL_MATCHERS_MAX);
        return KVL_EINVAL;
    }
    size_t n = json_array_size(arr);
    out->v = calloc(n, sizeof(*out->v));
    if (out->v == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    bool selective = false;
    for (size_t i = 0; i < n; i++) {
        out->n = i + 1;
        int rc = matcher_parse(json_array_get(arr, i), i, &out->v[i], why, whylen);
        if (rc != 0) {
            matchers_clear(out);
            return rc;
        }
        selective = selective || !matcher_match(&out->v[i], "");
    }
    if (!selective) {
        snprintf(why, whylen,
                 "at least one matcher must not match an empty value (this would "
                 "match every alert)");
        matchers_clear(out);
        return KVL_EINVAL;
    }
    return 0;
}

static json_t *matchers_json(const kvl_matchers_t *m)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < m->n; i++) {
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "name", m->v[i].name, "value",
                                             m->v[i].value, "op", op_names[m->v[i].op]));
    }
    return arr;
}

/* --- common fields ------------------------------------------------------------------------- */

static bool key_in(const char *key, const char *const *keys)
{
    for (; *keys != NULL; keys++) {
        if (strcmp(key, *keys) == 0) {
            return true;
        }
    }
    return false;
}

/* Refuses fields not in `keys` (and the stored ones only when stored). */
static int check_keys(const json_t *o, const char *const *keys, bool stored, char *why,
                      size_t whylen)
{
    static const char *const stored_keys[] = {"id", "created_by", "created_at", NULL};
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)o, key, v)
    {
        if (!key_in(key, keys) && !(stored && key_in(key, stored_keys))) {
            snprintf(why, whylen, "unknown field '%.64s'", key);
            return KVL_EINVAL;
        }
    }
    return 0;
}

/* An optional RFC 3339 time field: 0 (absent: *ms unchanged) or KVL_EINVAL. */
static int time_field(const json_t *o, const char *key, int64_t *ms, char *why, size_t whylen)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL) {
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) > 64 ||
        kvl_alert_time_parse(json_string_value(v), ms) != 0) {
        snprintf(why, whylen, "'%s' must be an RFC 3339 time such as 2026-12-05T14:30:00Z", key);
        return KVL_EINVAL;
    }
    return 0;
}

static int text_field(const json_t *o, const char *key, bool need, size_t max, char **out,
                      char *why, size_t whylen)
{
    const json_t *v = json_object_get(o, key);
    if (v == NULL && !need) {
        return 0;
    }
    if (!json_is_string(v) || json_string_length(v) != strlen(json_string_value(v)) ||
        (need && json_string_length(v) == 0) || !text_ok(json_string_value(v), max)) {
        snprintf(why, whylen, "'%s' must be %stext of at most %zu bytes without control characters",
                 key, need ? "non-empty " : "", max);
        return KVL_EINVAL;
    }
    *out = strdup(json_string_value(v));
    if (*out == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    return 0;
}

/* id, created_by, created_at of a stored record, or made now for an API body. */
static int origin_fields(const json_t *o, bool stored, const char *author, int64_t now_ms, char *id,
                         char **by, int64_t *created, char *why, size_t whylen)
{
    if (!stored) {
        kvl_silence_new_id(id);
        *created = now_ms;
        *by = strdup(author != NULL && author[0] != '\0' ? author : "unknown");
        if (*by != NULL && strlen(*by) > KVL_AUTHOR_MAX) {
            (*by)[KVL_AUTHOR_MAX] = '\0';
        }
        return *by == NULL ? KVL_ENOMEM : 0;
    }
    const json_t *jid = json_object_get(o, "id");
    if (!json_is_string(jid) || json_string_length(jid) != KVL_SILENCE_ID_LEN ||
        strspn(json_string_value(jid), "0123456789abcdef") != KVL_SILENCE_ID_LEN) {
        snprintf(why, whylen, "'id' must be %d hex digits", KVL_SILENCE_ID_LEN);
        return KVL_EINVAL;
    }
    memcpy(id, json_string_value(jid), KVL_SILENCE_ID_LEN + 1);
    int rc = text_field(o, "created_by", true, KVL_AUTHOR_MAX, by, why, whylen);
    if (rc == 0) {
        rc = time_field(o, "created_at", created, why, whylen);
    }
    return rc;
}

/* --- silences ------------------------------------------------------------------------------ */

void kvl_silence_free(kvl_silence_t *s)
{
    if (s == NULL) {
        return;
    }
    matchers_clear(&s->m);
    free(s->author);
    free(s->comment);
    free(s);
}

int kvl_silence_from_json(const json_t *o, bool stored, const char *author, int64_t now_ms,
                          kvl_silence_t **out, char *why, size_t whylen)
{
    static const char *const keys[] = {"matchers", "starts_at", "ends_at", "comment", NULL};
    *out = NULL;
    if (!json_is_object(o)) {
        snprintf(why, whylen, "a silence is a JSON object {matchers, starts_at, ends_at, comment}");
        return KVL_EINVAL;
    }
    int rc = check_keys(o, keys, stored, why, whylen);
    if (rc != 0) {
        return rc;
    }
    kvl_silence_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    s->starts_ms = now_ms;
    s->ends_ms = INT64_MIN;
    rc = matchers_parse(o, &s->m, why, whylen);
    if (rc == 0) {
        rc = time_field(o, "starts_at", &s->starts_ms, why, whylen);
    }
    if (rc == 0) {
        rc = time_field(o, "ends_at", &s->ends_ms, why, whylen);
    }
    if (rc == 0 && s->ends_ms == INT64_MIN) {
        snprintf(why, whylen, "'ends_at' is required (an RFC 3339 time)");
        rc = KVL_EINVAL;
    }
    if (rc == 0) {
        rc = text_field(o, "comment", true, KVL_COMMENT_MAX, &s->comment, why, whylen);
    }
    if (rc == 0) {
        rc = origin_fields(o, stored, author, now_ms, s->id, &s->author, &s->created_ms, why,
                           whylen);
    }
    if (rc == 0 && s->ends_ms <= s->starts_ms) {
        snprintf(why, whylen, "'ends_at' must be after 'starts_at'");
        rc = KVL_EINVAL;
    }
    if (rc == 0 && !stored && (s->ends_ms <= now_ms || s->ends_ms - now_ms > YEAR_MS)) {
        snprintf(why, whylen, "'ends_at' must be in the future, within a year");
        rc = KVL_EINVAL;
    }
    if (rc != 0) {
        kvl_silence_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void put_time(json_t *o, const char *key, int64_t ms)
{
    char t[40];
    kvl_alert_time_format(ms, t, sizeof(t));
    json_object_set_new(o, key, json_string(t));
}

json_t *kvl_silence_to_json(const kvl_silence_t *s)
{
    json_t *o = json_object();
    if (o == NULL) {
        return NULL;
    }
    json_object_set_new(o, "id", json_string(s->id));
    json_object_set_new(o, "matchers", matchers_json(&s->m));
    put_time(o, "starts_at", s->starts_ms);
    put_time(o, "ends_at", s->ends_ms);
    json_object_set_new(o, "comment", json_string(s->comment));
    json_object_set_new(o, "created_by", json_string(s->author));
    put_time(o, "created_at", s->created_ms);
    return o;
}

bool kvl_silence_active(const kvl_silence_t *s, int64_t now_ms)
{
    return now_ms >= s->starts_ms && now_ms < s->ends_ms;
}

/* --- maintenance windows ------------------------------------------------------------------- */

void kvl_maint_free(kvl_maint_t *m)
{
    if (m == NULL) {
        return;
    }
    matchers_clear(&m->m);
    free(m->author);
    free(m->comment);
    free(m);
}

/* "+05:30" or "-03:00" into minutes. */
static int offset_parse(const char *s, int *out)
{
    if (strlen(s) != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') {
        return KVL_EINVAL;
    }
    for (int i = 1; i < 6; i++) {
        if (i != 3 && (s[i] < '0' || s[i] > '9')) {
            return KVL_EINVAL;
        }
    }
    int h = (s[1] - '0') * 10 + (s[2] - '0');
    int m = (s[4] - '0') * 10 + (s[5] - '0');
    if (h > 14 || m > 59) {
        return KVL_EINVAL;
    }
    *out = (s[0] == '-' ? -1 : 1) * (h * 60 + m);
    return 0;
}

static int weekly_parse(const json_t *w, kvl_maint_t *m, char *why, size_t whylen)
{
    static const char *const keys[] = {"days", "at", "duration", "offset", NULL};
    if (!json_is_object(w)) {
        snprintf(why, whylen, "'weekly' must be {days, at, duration, offset}");
        return KVL_EINVAL;
    }
    int rc = check_keys(w, keys, false, why, whylen);
    if (rc != 0) {
        return rc;
    }
    const json_t *days = json_object_get(w, "days");
    if (!json_is_array(days) || json_array_size(days) == 0 || json_array_size(days) > 7) {
        snprintf(why, whylen,
                 "'weekly.days' must be a list of 1 to 7 of mon tue wed thu fri "
                 "sat sun");
        return KVL_EINVAL;
    }
    for (size_t i = 0; i < json_array_size(days); i++) {
        const json_t *d = json_array_get(days, i);
        int k = -1;
        for (int j = 0; json_is_string(d) && j < 7; j++) {
            if (strcmp(json_string_value(d), day_names[j]) == 0) {
                k = j;
            }
        }
        if (k < 0 || (m->days & (1u << k)) != 0) {
            snprintf(why, whylen, "'weekly.days' entry %zu is not a day (mon..sun) or named twice",
                     i + 1);
            return KVL_EINVAL;
        }
        m->days |= 1u << k;
    }
    const json_t *at = json_object_get(w, "at");
    const char *a = json_is_string(at) ? json_string_value(at) : "";
    if (strlen(a) != 5 || a[2] != ':' || a[0] < '0' || a[0] > '2' || a[1] < '0' || a[1] > '9' ||
        a[3] < '0' || a[3] > '5' || a[4] < '0' || a[4] > '9' ||
        (a[0] - '0') * 10 + (a[1] - '0') > 23) {
        snprintf(why, whylen, "'weekly.at' must be a time of day HH:MM (00:00 to 23:59)");
        return KVL_EINVAL;
    }
    m->minute_of_day = ((a[0] - '0') * 10 + (a[1] - '0')) * 60 + (a[3] - '0') * 10 + (a[4] - '0');
    const json_t *dur = json_object_get(w, "duration");
    if (!json_is_string(dur) || json_string_length(dur) > 32 ||
        kvl_duration_parse(json_string_value(dur), &m->duration_ms) != 0 ||
        m->duration_ms < MIN_MS || m->duration_ms > WEEK_MS) {
        snprintf(why, whylen, "'weekly.duration' must be a duration from 1m to 7d, e.g. \"2h\"");
        return KVL_EINVAL;
    }
    const json_t *off = json_object_get(w, "offset");
    if (off != NULL &&
        (!json_is_string(off) || offset_parse(json_string_value(off), &m->offset_min) != 0)) {
        snprintf(why, whylen, "'weekly.offset' must be a UTC offset such as \"+05:30\"");
        return KVL_EINVAL;
    }
    m->weekly = true;
    return 0;
}

int kvl_maint_from_json(const json_t *o, bool stored, const char *author, int64_t now_ms,
                        kvl_maint_t **out, char *why, size_t whylen)
{
    static const char *const keys[] = {"matchers", "starts_at", "ends_at",
                                       "weekly",   "comment",   NULL};
    *out = NULL;
    if (!json_is_object(o)) {
        snprintf(why, whylen,
                 "a maintenance window is a JSON object {matchers, comment, "
                 "starts_at and ends_at or weekly}");
        return KVL_EINVAL;
    }
    int rc = check_keys(o, keys, stored, why, whylen);
    if (rc != 0) {
        return rc;
    }
    kvl_maint_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    const json_t *w = json_object_get(o, "weekly");
    bool once = json_object_get(o, "starts_at") != NULL || json_object_get(o, "ends_at") != NULL;
    rc = matchers_parse(o, &m->m, why, whylen);
    if (rc == 0 && (w != NULL) == once) {
        snprintf(why, whylen, "give either 'starts_at' and 'ends_at', or 'weekly'");
        rc = KVL_EINVAL;
    }
    if (rc == 0 && w != NULL) {
        rc = weekly_parse(w, m, why, whylen);
    }
    if (rc == 0 && once) {
        m->starts_ms = m->ends_ms = INT64_MIN;
        rc = time_field(o, "starts_at", &m->starts_ms, why, whylen);
        if (rc == 0) {
            rc = time_field(o, "ends_at", &m->ends_ms, why, whylen);
        }
        if (rc == 0 && (m->starts_ms == INT64_MIN || m->ends_ms == INT64_MIN)) {
            snprintf(why, whylen, "a one-off window needs both 'starts_at' and 'ends_at'");
            rc = KVL_EINVAL;
        }
        if (rc == 0 && m->ends_ms <= m->starts_ms) {
            snprintf(why, whylen, "'ends_at' must be after 'starts_at'");
            rc = KVL_EINVAL;
        }
        if (rc == 0 && !stored && (m->ends_ms <= now_ms || m->ends_ms - now_ms > YEAR_MS)) {
            snprintf(why, whylen, "'ends_at' must be in the future, within a year");
            rc = KVL_EINVAL;
        }
    }
    if (rc == 0) {
        rc = text_field(o, "comment", true, KVL_COMMENT_MAX, &m->comment, why, whylen);
    }
    if (rc == 0) {
        rc = origin_fields(o, stored, author, now_ms, m->id, &m->author, &m->created_ms, why,
                           whylen);
    }
    if (rc != 0) {
        kvl_maint_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

json_t *kvl_maint_to_json(const kvl_maint_t *m)
{
    json_t *o = json_object();
    if (o == NULL) {
        return NULL;
    }
    json_object_set_new(o, "id", json_string(m->id));
    json_object_set_new(o, "matchers", matchers_json(&m->m));
    if (m->weekly) {
        json_t *days = json_array();
        for (int k = 0; k < 7; k++) {
            if (m->days & (1u << k)) {
                json_array_append_new(days, json_string(day_names[k]));
            }
        }
        char at[24], dur[32], off[24];
        snprintf(at, sizeof(at), "%02d:%02d", m->minute_of_day / 60, m->minute_of_day % 60);
        snprintf(dur, sizeof(dur), "%" PRId64 "s", m->duration_ms / 1000);
        int a = m->offset_min < 0 ? -m->offset_min : m->offset_min;
        snprintf(off, sizeof(off), "%c%02d:%02d", m->offset_min < 0 ? '-' : '+', a / 60, a % 60);
        json_object_set_new(o, "weekly",
                            json_pack("{s:o, s:s, s:s, s:s}", "days", days, "at", at, "duration",
                                      dur, "offset", off));
    } else {
        put_time(o, "starts_at", m->starts_ms);
        put_time(o, "ends_at", m->ends_ms);
    }
    json_object_set_new(o, "comment", json_string(m->comment));
    json_object_set_new(o, "created_by", json_string(m->author));
    put_time(o, "created_at", m->created_ms);
    return o;
}

static int64_t pos_mod(int64_t a, int64_t m)
{
    int64_t r = a % m;
    return r < 0 ? r + m : r;
}

/* Where now_ms falls in a weekly window's week (ms since Monday 00:00, its local time). */
static int64_t week_pos(const kvl_maint_t *m, int64_t now_ms)
{
    int64_t local = now_ms + m->offset_min * MIN_MS;
    int64_t day = (local - pos_mod(local, DAY_MS)) / DAY_MS;
    /* 1970-01-01 was a Thursday: day 0 is index 3 with Monday 0 */
    return pos_mod(day + 3, 7) * DAY_MS + pos_mod(local, DAY_MS);
}

bool kvl_maint_active(const kvl_maint_t *m, int64_t now_ms)
{
    if (!m->weekly) {
        return now_ms >= m->starts_ms && now_ms < m->ends_ms;
    }
    int64_t in_week = week_pos(m, now_ms);
    for (int k = 0; k < 7; k++) {
        if ((m->days & (1u << k)) == 0) {
            continue;
        }
        int64_t start = k * DAY_MS + m->minute_of_day * MIN_MS;
        if (pos_mod(in_week - start, WEEK_MS) < m->duration_ms) {
            return true;
        }
    }
    return false;
}

/* The first of start and end after now_ms (INT64_MAX: both past). */
static int64_t next_edge(int64_t starts_ms, int64_t ends_ms, int64_t now_ms)
{
    if (now_ms < starts_ms) {
        return starts_ms;
    }
    return now_ms < ends_ms ? ends_ms : INT64_MAX;
}

int64_t kvl_silence_next_change(const kvl_silence_t *s, int64_t now_ms)
{
    return next_edge(s->starts_ms, s->ends_ms, now_ms);
}

int64_t kvl_maint_next_change(const kvl_maint_t *m, int64_t now_ms)
{
    if (!m->weekly) {
        return next_edge(m->starts_ms, m->ends_ms, now_ms);
    }
    /* every day's start and end, as distances from now within one week (an edge exactly
     * now is a week away: the next change after now) */
    int64_t in_week = week_pos(m, now_ms), best = INT64_MAX;
    for (int k = 0; k < 7; k++) {
        if ((m->days & (1u << k)) == 0) {
            continue;
        }
        int64_t start = k * DAY_MS + m->minute_of_day * MIN_MS;
        int64_t edges[2] = {start, start + m->duration_ms};
        for (int i = 0; i < 2; i++) {
            int64_t d = pos_mod(edges[i] - in_week, WEEK_MS);
            d = d == 0 ? WEEK_MS : d;
            best = d < best ? d : best;
        }
    }
    return best == INT64_MAX ? INT64_MAX : now_ms + best;
}

bool kvl_maint_current(const kvl_maint_t *m, int64_t now_ms)
{
    return m->weekly || m->ends_ms > now_ms;
}
