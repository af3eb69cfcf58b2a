/*
 * board_query.c — the board API's query parameters (board_query.h): pure checks with a
 * sentence for every refusal, fuzzed by tests/fuzz/fuzz_board_query.c.
 */
#include "board_query.h"

#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "names.h"
#include "timeutil.h"
#include "wire.h"

static const char *const scope_names[] = {NULL, "device", "interface", "agent", "group", "link"};

int kvl_board_scope_parse(const char *s)
{
    for (int i = KVL_SCOPE_DEVICE; i <= KVL_SCOPE_LINK; i++) {
        if (strcmp(s, scope_names[i]) == 0) {
            return i;
        }
    }
    return 0;
}

const char *kvl_board_scope_name(int scope)
{
    return scope >= KVL_SCOPE_DEVICE && scope <= KVL_SCOPE_LINK ? scope_names[scope] : "?";
}

bool kvl_board_glob(const char *glob, const char *s)
{
    return glob == NULL || fnmatch(glob, s, 0) == 0;
}

/* Text of at most max bytes without control characters (empty allowed when empty_ok). */
static bool text_ok(const char *s, size_t max, bool empty_ok)
{
    size_t n = strlen(s);
    if ((n == 0 && !empty_ok) || n > max) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

static int scope_param(kvl_board_param_fn get, const void *ctx, int *out, char *why, size_t whylen)
{
    const char *v = get(ctx, "scope");
    *out = 0;
    if (v != NULL && (*out = kvl_board_scope_parse(v)) == 0) {
        snprintf(why, whylen, "scope must be device, interface, agent, group or link");
        return KVL_EINVAL;
    }
    return 0;
}

/* A whole decimal number in [min, max]. */
static bool int_in(const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (s[0] == '\0' || strlen(s) > 18) {
        return false;
    }
    int64_t v = 0;
    size_t i = s[0] == '-' ? 1 : 0;
    if (s[i] == '\0') {
        return false;
    }
    for (; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    v = s[0] == '-' ? -v : v;
    if (v < min || v > max) {
        return false;
    }
    *out = v;
    return true;
}

int kvl_board_match_parse(kvl_board_param_fn get, const void *ctx, kvl_board_match_t *m, char *why,
                          size_t whylen)
{
    memset(m, 0, sizeof(*m));
    m->limit = KVL_BOARD_LIMIT_DEFAULT;
    static const struct {
        const char *key;
        size_t off;
    } globs[] = {
        {"agent", offsetof(kvl_board_match_t, agent)},
        {"site", offsetof(kvl_board_match_t, site)},
        {"device", offsetof(kvl_board_match_t, device)},
        {"instance", offsetof(kvl_board_match_t, instance)},
        {"metric", offsetof(kvl_board_match_t, metric)},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(globs); i++) {
        const char *v = get(ctx, globs[i].key);
        if (v == NULL) {
            continue;
        }
        if (!text_ok(v, KVL_BOARD_GLOB_MAX, true)) {
            snprintf(why, whylen,
                     "%s must be a glob of at most %d bytes without control characters",
                     globs[i].key, KVL_BOARD_GLOB_MAX);
            return KVL_EINVAL;
        }
        *(const char **)((char *)m + globs[i].off) = v;
    }
    if (scope_param(get, ctx, &m->scope, why, whylen) != 0) {
        return KVL_EINVAL;
    }
    const char *v = get(ctx, "limit");
    int64_t n;
    if (v != NULL) {
        if (!int_in(v, 1, KVL_BOARD_LIMIT_MAX, &n)) {
            snprintf(why, whylen, "limit must be a whole number from 1 to %d", KVL_BOARD_LIMIT_MAX);
            return KVL_EINVAL;
        }
        m->limit = (size_t)n;
    }
    return 0;
}

/* A point in time: unix seconds, "now" or "now-<duration>". */
static bool time_param(const char *s, int64_t now_s, int64_t *out)
{
    if (strcmp(s, "now") == 0) {
        *out = now_s;
        return true;
    }
    if (strncmp(s, "now-", 4) == 0) {
        int64_t ms;
        if (kvl_duration_parse(s + 4, &ms) != 0 || ms < 1000 || ms / 1000 > KVL_BOARD_RANGE_MAX) {
            return false;
        }
        *out = now_s - ms / 1000;
        return true;
    }
    return int_in(s, 0, 1ll << 40, out);
}

int kvl_board_range_parse(kvl_board_param_fn get, const void *ctx, int64_t now_s,
                          kvl_board_range_t *r, char *why, size_t whylen)
{
    memset(r, 0, sizeof(*r));
    r->cf = "AVERAGE";
    r->step = 1;
    static const struct {
        const char *key;
        size_t max;
        bool required;
        size_t off;
    } names[] = {
        {"agent", KVL_AGENT_ID_MAX, true, offsetof(kvl_board_range_t, agent)},
        {"device", KVL_NAME_FILE_MAX, true, offsetof(kvl_board_range_t, device)},
        {"instance", KVL_NAME_FILE_MAX, false, offsetof(kvl_board_range_t, instance)},
        {"metric", 64, true, offsetof(kvl_board_range_t, metric)},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(names); i++) {
        const char *v = get(ctx, names[i].key);
        if (v == NULL) {
            if (names[i].required) {
                snprintf(why, whylen,
                         "agent, device and metric are required (instance for an "
                         "interface, a link's target or a group's row)");
                return KVL_EINVAL;
            }
            continue;
        }
        if (!text_ok(v, names[i].max, !names[i].required)) {
            snprintf(why, whylen, "%s must be 1 to %zu bytes without control characters",
                     names[i].key, names[i].max);
            return KVL_EINVAL;
        }
        *(const char **)((char *)r + names[i].off) = v;
    }
    if (scope_param(get, ctx, &r->scope, why, whylen) != 0) {
        return KVL_EINVAL;
    }
    const char *v = get(ctx, "cf");
    if (v != NULL) {
        static const char *const cfs[] = {"AVERAGE", "MIN", "MAX", "LAST"};
        r->cf = NULL;
        for (size_t i = 0; i < KVL_ARRAY_SIZE(cfs); i++) {
            if (strcmp(v, cfs[i]) == 0) {
                r->cf = cfs[i];
            }
        }
        if (r->cf == NULL) {
            snprintf(why, whylen, "cf must be AVERAGE, MIN, MAX or LAST");
            return KVL_EINVAL;
        }
    }
    r->to = now_s;
    if ((v = get(ctx, "to")) != NULL && !time_param(v, now_s, &r->to)) {
        snprintf(why, whylen, "to must be unix seconds, now or now-<duration> (now-1h)");
        return KVL_EINVAL;
    }
    r->from = r->to - 3600;
    if ((v = get(ctx, "from")) != NULL && !time_param(v, now_s, &r->from)) {
        snprintf(why, whylen, "from must be unix seconds, now or now-<duration> (now-1d)");
        return KVL_EINVAL;
    }
    if (r->from >= r->to || r->to - r->from > KVL_BOARD_RANGE_MAX) {
        snprintf(why, whylen, "from must be before to, at most 10 years before");
        return KVL_EINVAL;
    }
    if ((v = get(ctx, "step")) != NULL) {
        int64_t s;
        int64_t ms;
        if (int_in(v, 1, 366ll * 86400, &s)) {
            r->step = (uint32_t)s;
        } else if (kvl_duration_parse(v, &ms) == 0 && ms >= 1000 && ms <= 366ll * 86400 * 1000) {
            r->step = (uint32_t)(ms / 1000);
        } else {
            snprintf(why, whylen, "step must be seconds or a duration (5m) from 1 s to 1 year");
            return KVL_EINVAL;
        }
        if ((r->to - r->from) / r->step > KVL_BOARD_POINTS_MAX) {
            snprintf(why, whylen,
                     "that is more than %d points: ask for a shorter range or a longer step",
                     KVL_BOARD_POINTS_MAX);
            return KVL_EINVAL;
        }
    }
    return 0;
}
