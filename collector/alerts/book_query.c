/*
 * book_query.c — the alert book's query parameters and path segments (book.h,
 * kvl_book_filter_parse, kvl_book_fp_parse), checked without the HTTP server or the book
 * so the parsing can be unit-tested and fuzzed alone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "book.h"
#include "kvl.h"
#include "names.h"

#define LIMIT_MAX 10000
#define LIMIT_DEFAULT 1000

/* Text of 1..max bytes without control characters. */
static bool param_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

int kvl_book_filter_parse(kvl_book_param_fn get, const void *ctx, kvl_book_filter_t *f, char *why,
                          size_t whylen)
{
    memset(f, 0, sizeof(*f));
    f->severity = -1;
    f->limit = LIMIT_DEFAULT;
    const char *v = get(ctx, "status");
    if (v != NULL) {
        for (int s = KVL_ALERT_PENDING; s <= KVL_ALERT_RESOLVED; s++) {
            if (strcmp(v, kvl_alert_status_name(s)) == 0) {
                f->status = s;
            }
        }
        if (f->status == 0) {
            snprintf(why, whylen, "status must be pending, firing or resolved");
            return KVL_EINVAL;
        }
    }
    if ((v = get(ctx, "severity")) != NULL) {
        for (int s = KVL_RULE_SEV_CRITICAL; s <= KVL_RULE_SEV_INFO; s++) {
            if (strcmp(v, kvl_rules_severity_name(s)) == 0) {
                f->severity = s;
            }
        }
        if (f->severity < 0) {
            snprintf(why, whylen, "severity must be critical, major, minor, warning or info");
            return KVL_EINVAL;
        }
    }
    static const struct {
        const char *key;
        size_t max;
        size_t off;
    } texts[] = {
        {"site", KVL_SITE_MAX, offsetof(kvl_book_filter_t, site)},
        {"device", KVL_NAME_FILE_MAX, offsetof(kvl_book_filter_t, device)},
        {"rule", 100, offsetof(kvl_book_filter_t, rule)},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(texts); i++) {
        v = get(ctx, texts[i].key);
        if (v == NULL) {
            continue;
        }
        if (!param_ok(v, texts[i].max)) {
            snprintf(why, whylen, "%s must be 1 to %zu bytes without control characters",
                     texts[i].key, texts[i].max);
            return KVL_EINVAL;
        }
        *(const char **)((char *)f + texts[i].off) = v;
    }
    if ((v = get(ctx, "state")) != NULL) {
        if (strcmp(v, "history") == 0) {
            f->history = true;
        } else if (strcmp(v, "active") != 0) {
            snprintf(why, whylen, "state must be active or history");
            return KVL_EINVAL;
        }
    }
    if ((v = get(ctx, "since")) != NULL) {
        if (strlen(v) > 64 || kvl_alert_time_parse(v, &f->since_ms) != 0) {
            snprintf(why, whylen, "since must be an RFC 3339 time such as 2026-12-05T14:30:00Z");
            return KVL_EINVAL;
        }
    }
    if ((v = get(ctx, "limit")) != NULL) {
        size_t n = strlen(v);
        unsigned long l =
            n > 0 && n <= 5 && strspn(v, "0123456789") == n ? strtoul(v, NULL, 10) : 0;
        if (l < 1 || l > LIMIT_MAX) {
            snprintf(why, whylen, "limit must be a whole number from 1 to %d", LIMIT_MAX);
            return KVL_EINVAL;
        }
        f->limit = l;
    }
    return 0;
}

int kvl_book_fp_parse(const char *s, uint64_t *fp)
{
    if (s == NULL || strlen(s) != 16 || strspn(s, "0123456789abcdef") != 16) {
        return KVL_EINVAL;
    }
    *fp = strtoull(s, NULL, 16);
    return 0;
}
