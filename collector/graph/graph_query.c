/*
 * graph_query.c — GET /api/v1/graph's parameters checked (graph_query.h): pure, no
 * allocation, every refusal a sentence.
 */
#include "graph_query.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "names.h"
#include "timeutil.h"

/* The latest a time may be: a year after now (a clock far ahead is a mistake). */
#define FUTURE_MAX (366ll * 86400)

static const char *const kind_names[KVL_GRAPH_KINDS] = {
    "traffic", "errors", "packets", "latency", "owd", "mos", "availability", "group",
};

const char *kvl_graph_kind_name(kvl_graph_kind_t kind)
{
    return (unsigned)kind < KVL_GRAPH_KINDS ? kind_names[kind] : NULL;
}

static int fail(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return KVL_EINVAL;
}

/* A name that becomes a folder of the archive's path (folder true) or a file name. */
static int name_check(const char *what, const char *v, bool folder, char *why, size_t whylen)
{
    if (v == NULL || v[0] == '\0') {
        snprintf(why, whylen, "%s= is required for this kind of graph", what);
        return KVL_EINVAL;
    }
    for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return fail(why, whylen, "%s= holds a control character", what);
        }
    }
    if (folder && (strchr(v, '/') != NULL || strstr(v, "..") != NULL || v[0] == '.')) {
        return fail(why, whylen, "%s= may not hold '/', '..' or start with '.'", what);
    }
    char cause[200];
    if (kvl_name_check(what, v, cause, sizeof(cause)) != 0) {
        snprintf(why, whylen, "%s= is too long: %s", what, cause);
        return KVL_EINVAL;
    }
    return 0;
}

/* Digits only, at most `max`. */
static int uint_parse(const char *s, int64_t max, int64_t *out)
{
    if (s == NULL || s[0] == '\0' || strlen(s) > 12) {
        return KVL_EINVAL;
    }
    int64_t v = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9') {
            return KVL_EINVAL;
        }
        v = v * 10 + (*p - '0');
    }
    if (v > max) {
        return KVL_EINVAL;
    }
    *out = v;
    return 0;
}

/* "now", "-<duration>", "now-<duration>" or unix seconds. */
static int time_parse(const char *what, const char *s, int64_t now_s, int64_t *out, char *why,
                      size_t whylen)
{
    if (strcmp(s, "now") == 0) {
        *out = now_s;
        return 0;
    }
    const char *rel = NULL;
    if (s[0] == '-') {
        rel = s + 1;
    } else if (strncmp(s, "now-", 4) == 0) {
        rel = s + 4;
    }
    if (rel != NULL) {
        int64_t ms = 0;
        if (strlen(rel) > 16 || rel[0] < '0' || rel[0] > '9' || kvl_duration_parse(rel, &ms) != 0 ||
            ms < 1000 || ms / 1000 > 100ll * 366 * 86400) {
            snprintf(why, whylen,
                     "%s=%.40s: a relative time is '-' and a duration (-1h, -7d, -2y) of 1 s to "
                     "100 years",
                     what, s);
            return KVL_EINVAL;
        }
        *out = now_s - ms / 1000;
        return 0;
    }
    int64_t v;
    if (uint_parse(s, now_s + FUTURE_MAX, &v) != 0) {
        snprintf(why, whylen,
                 "%s=%.40s: a time is unix seconds (not after a year from now), 'now' or "
                 "relative (-1h, -7d, -2y)",
                 what, s);
        return KVL_EINVAL;
    }
    *out = v;
    return 0;
}

static int size_parse(const char *what, const char *s, int64_t min, int64_t max, int64_t dflt,
                      uint32_t *out, char *why, size_t whylen)
{
    int64_t v = dflt;
    if (s != NULL && (uint_parse(s, max, &v) != 0 || v < min)) {
        snprintf(why, whylen, "%s=%.20s: a whole number of pixels from %" PRId64 " to %" PRId64,
                 what, s, min, max);
        return KVL_EINVAL;
    }
    *out = (uint32_t)v;
    return 0;
}

int kvl_graph_query_parse(kvl_graph_param_fn get, const void *ctx, int64_t now_s,
                          kvl_graph_query_t *q, char *why, size_t whylen)
{
    memset(q, 0, sizeof(*q));
    const char *kind = get(ctx, "kind");
    if (kind == NULL) {
        return fail(why, whylen, "%s",
                    "kind= is required: traffic, errors, packets, latency, owd, mos, "
                    "availability or group");
    }
    size_t k = 0;
    while (k < KVL_GRAPH_KINDS && strcmp(kind, kind_names[k]) != 0) {
        k++;
    }
    if (k == KVL_GRAPH_KINDS) {
        snprintf(why, whylen,
                 "kind=%.40s is not a graph: traffic, errors, packets, latency, owd, mos, "
                 "availability or group",
                 kind);
        return KVL_EINVAL;
    }
    q->kind = (kvl_graph_kind_t)k;

    int rc;
    q->agent = get(ctx, "agent");
    if ((rc = name_check("agent", q->agent, true, why, whylen)) != 0) {
        return rc;
    }
    switch (q->kind) {
    case KVL_GRAPH_TRAFFIC:
    case KVL_GRAPH_ERRORS:
    case KVL_GRAPH_PACKETS:
        q->device = get(ctx, "device");
        q->interface = get(ctx, "interface");
        if ((rc = name_check("device", q->device, true, why, whylen)) != 0 ||
            (rc = name_check("interface", q->interface, false, why, whylen)) != 0) {
            return rc;
        }
        break;
    case KVL_GRAPH_LATENCY:
    case KVL_GRAPH_OWD:
    case KVL_GRAPH_MOS:
        q->target = get(ctx, "target");
        if ((rc = name_check("target", q->target, false, why, whylen)) != 0) {
            return rc;
        }
        break;
    case KVL_GRAPH_AVAILABILITY:
        q->device = get(ctx, "device");
        if ((rc = name_check("device", q->device, true, why, whylen)) != 0) {
            return rc;
        }
        break;
    case KVL_GRAPH_GROUP:
        q->device = get(ctx, "device");
        q->group = get(ctx, "group");
        q->instance = get(ctx, "instance");
        if (q->instance == NULL) {
            q->instance = "";
        }
        if ((rc = name_check("device", q->device, true, why, whylen)) != 0 ||
            (rc = name_check("group", q->group, true, why, whylen)) != 0 ||
            (q->instance[0] != '\0' &&
             (rc = name_check("instance", q->instance, false, why, whylen)) != 0)) {
            return rc;
        }
        break;
    default:
        return fail(why, whylen, "%s", "unknown kind");
    }

    const char *from = get(ctx, "from"), *to = get(ctx, "to");
    q->to = now_s;
    if (to != NULL && (rc = time_parse("to", to, now_s, &q->to, why, whylen)) != 0) {
        return rc;
    }
    q->from = q->to - KVL_GRAPH_RANGE_DEFAULT;
    if (from != NULL && (rc = time_parse("from", from, now_s, &q->from, why, whylen)) != 0) {
        return rc;
    }
    if (q->from >= q->to) {
        return fail(why, whylen, "%s", "from= must be before to=");
    }
    if (q->to - q->from < KVL_GRAPH_RANGE_MIN) {
        return fail(why, whylen, "%s", "the range from= .. to= must be at least 1 hour");
    }
    if (q->to - q->from > KVL_GRAPH_RANGE_MAX) {
        return fail(why, whylen, "%s", "the range from= .. to= may be 2 years at most");
    }

    if ((rc = size_parse("width", get(ctx, "width"), KVL_GRAPH_WIDTH_MIN, KVL_GRAPH_WIDTH_MAX,
                         KVL_GRAPH_WIDTH_DEFAULT, &q->width, why, whylen)) != 0 ||
        (rc = size_parse("height", get(ctx, "height"), KVL_GRAPH_HEIGHT_MIN, KVL_GRAPH_HEIGHT_MAX,
                         KVL_GRAPH_HEIGHT_DEFAULT, &q->height, why, whylen)) != 0) {
        return rc;
    }

    const char *format = get(ctx, "format"), *theme = get(ctx, "theme");
    if (format == NULL || strcmp(format, "png") == 0) {
        q->format = KVL_GRAPH_PNG;
    } else if (strcmp(format, "svg") == 0) {
        q->format = KVL_GRAPH_SVG;
    } else if (strcmp(format, "json") == 0) {
        q->format = KVL_GRAPH_JSON;
    } else {
        return fail(why, whylen, "format=%.20s: png, svg or json", format);
    }
    if (theme == NULL || strcmp(theme, "dark") == 0) {
        q->theme = KVL_GRAPH_DARK;
    } else if (strcmp(theme, "light") == 0) {
        q->theme = KVL_GRAPH_LIGHT;
    } else {
        return fail(why, whylen, "theme=%.20s: dark or light", theme);
    }
    return 0;
}

static int64_t floor_to(int64_t v, int64_t q)
{
    int64_t r = v % q;
    return r < 0 ? v - r - q : v - r;
}

void kvl_graph_query_round(const kvl_graph_query_t *q, uint32_t quantum, int64_t *from, int64_t *to)
{
    int64_t s = quantum ? quantum : 1;
    *from = floor_to(q->from, s);
    *to = floor_to(q->to, s);
    if (*to <= *from) {
        *to = *from + s;
    }
}

int kvl_graph_query_key(const kvl_graph_query_t *q, int64_t from, int64_t to, char *key,
                        size_t keylen)
{
    /* '\x1f' between names: the server refuses control characters in parameters */
    int n = snprintf(
        key, keylen,
        "%s|%s|%s|%" PRIu32 "x%" PRIu32 "|%" PRId64 "|%" PRId64 "|%s\x1f%s\x1f%s\x1f%s\x1f%s\x1f%s",
        kind_names[q->kind], q->format == KVL_GRAPH_SVG ? "svg" : "png",
        q->theme == KVL_GRAPH_LIGHT ? "light" : "dark", q->width, q->height, from, to,
        q->agent ? q->agent : "", q->device ? q->device : "", q->interface ? q->interface : "",
        q->target ? q->target : "", q->group ? q->group : "", q->instance ? q->instance : "");
    return n < 0 || (size_t)n >= keylen ? KVL_EINVAL : n;
}
