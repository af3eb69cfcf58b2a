/*
 * liveness.c — the agent-lost detector's pure core (see liveness.h): deadlines moved by
 * frames, Hellos and closes, a loss declared once and a return said once, the lost periods
 * that make an agent's events late, and the state file's lines.
 */
#include "liveness.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"

uint64_t kvl_live_window(const kvl_live_t *l, const kvl_live_cfg_t *cfg)
{
    if (l->interval_ms == 0) {
        return cfg->fallback_ms;
    }
    return (uint64_t)cfg->misses * l->interval_ms;
}

bool kvl_live_hello(kvl_live_t *l, const kvl_live_cfg_t *cfg, uint32_t interval_ms, uint64_t now,
                    int64_t wall, int64_t *lost_for_ms)
{
    bool back = l->lost;
    if (back) {
        *lost_for_ms = wall - l->lost_from_ms;
        l->periods[l->next_period] = (kvl_live_period_t){l->lost_from_ms, wall};
        l->next_period = (l->next_period + 1) % KVL_LIVE_PERIODS;
        if (l->n_periods < KVL_LIVE_PERIODS) {
            l->n_periods++;
        }
        l->lost = false;
        l->lost_from_ms = l->lost_at_ms = 0;
    }
    l->interval_ms = interval_ms;
    l->connected = true;
    l->close_reason[0] = '\0';
    kvl_live_frame(l, cfg, now, wall);
    return back;
}

void kvl_live_frame(kvl_live_t *l, const kvl_live_cfg_t *cfg, uint64_t now, int64_t wall)
{
    l->last_seen_ms = wall;
    kvl_live_hold(l, cfg, now);
}

void kvl_live_hold(kvl_live_t *l, const kvl_live_cfg_t *cfg, uint64_t now)
{
    if (l->lost) {
        return; /* only a Hello brings it back */
    }
    if (l->interval_ms == 0 && l->connected) {
        l->watched = false; /* no heartbeats: its idle timeout judges it (kvl_live_idle) */
        return;
    }
    l->watched = true;
    l->deadline_ms = now + kvl_live_window(l, cfg);
}

void kvl_live_closed(kvl_live_t *l, const kvl_live_cfg_t *cfg, uint64_t now, const char *why)
{
    l->connected = false;
    if (l->lost) {
        return; /* closed because it was lost */
    }
    snprintf(l->close_reason, sizeof(l->close_reason), "%s", why ? why : "closed by the agent");
    l->watched = true;
    l->deadline_ms = now + kvl_live_window(l, cfg);
}

void kvl_live_idle(kvl_live_t *l, uint64_t now)
{
    if (!l->lost && l->interval_ms == 0 && !l->connected) {
        l->watched = true;
        l->deadline_ms = now;
    }
}

void kvl_live_expect(kvl_live_t *l, const kvl_live_cfg_t *cfg, uint64_t now, uint64_t grace_ms)
{
    if (l->lost || l->connected) {
        return;
    }
    snprintf(l->close_reason, sizeof(l->close_reason), "not back after a collector restart");
    l->watched = true;
    l->deadline_ms = now + grace_ms + kvl_live_window(l, cfg);
}

bool kvl_live_check(kvl_live_t *l, uint64_t now, int64_t wall, char *why, size_t whylen)
{
    if (l->lost || !l->watched || now < l->deadline_ms) {
        return false;
    }
    l->lost = true;
    l->watched = false;
    l->lost_from_ms = l->last_seen_ms != 0 ? l->last_seen_ms : wall;
    l->lost_at_ms = wall;
    int64_t silent_s = (wall - l->lost_from_ms) / 1000;
    if (l->connected) {
        snprintf(why, whylen, "no heartbeat for %" PRId64 " s", silent_s);
    } else {
        snprintf(why, whylen, "connection closed: %s", l->close_reason);
    }
    return true;
}

bool kvl_live_late(const kvl_live_t *l, int64_t time_ms)
{
    if (l->lost && time_ms >= l->lost_from_ms) {
        return true;
    }
    for (size_t i = 0; i < l->n_periods; i++) {
        if (time_ms >= l->periods[i].from_ms && time_ms <= l->periods[i].to_ms) {
            return true;
        }
    }
    return false;
}

int kvl_live_format_line(const kvl_live_t *l, const char *id, const char *site, char *out,
                         size_t outlen)
{
    size_t idl = strlen(id), sl = strlen(site);
    int n =
        snprintf(out, outlen, "%c %" PRIu32 " %" PRId64 " %" PRId64 " %zu:", l->lost ? 'L' : 'U',
                 l->interval_ms, l->lost ? l->lost_from_ms : 0, l->lost ? l->lost_at_ms : 0, idl);
    if (n < 0 || (size_t)n + idl + 24 + sl + 2 > outlen) {
        return KVL_EINVAL;
    }
    size_t k = (size_t)n;
    memcpy(out + k, id, idl);
    k += idl;
    k += (size_t)snprintf(out + k, outlen - k, " %zu:", sl);
    memcpy(out + k, site, sl);
    k += sl;
    out[k++] = '\n';
    out[k] = '\0';
    return (int)k;
}

/* A decimal number at *p (below end), then one separator byte `sep`. */
static int parse_num(const char **p, const char *end, char sep, bool sign, int64_t *out)
{
    const char *s = *p;
    bool neg = false;
    if (sign && s < end && *s == '-') {
        neg = true;
        s++;
    }
    if (s >= end || *s < '0' || *s > '9') {
        return KVL_EINVAL;
    }
    uint64_t v = 0;
    for (; s < end && *s >= '0' && *s <= '9'; s++) {
        if (v > (uint64_t)INT64_MAX / 10) {
            return KVL_EINVAL;
        }
        v = v * 10 + (uint64_t)(*s - '0');
        if (v > (uint64_t)INT64_MAX) {
            return KVL_EINVAL;
        }
    }
    if (s >= end || *s != sep) {
        return KVL_EINVAL;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    *p = s + 1;
    return 0;
}

/* <length>:<bytes> at *p into out (room outlen, NUL-terminated). */
static int parse_counted(const char **p, const char *end, char *out, size_t outlen)
{
    int64_t n;
    if (parse_num(p, end, ':', false, &n) != 0 || (uint64_t)n >= outlen ||
        (uint64_t)n > (uint64_t)(end - *p)) {
        return KVL_EINVAL;
    }
    memcpy(out, *p, (size_t)n);
    out[n] = '\0';
    if (memchr(out, '\0', (size_t)n) != NULL) {
        return KVL_EINVAL;
    }
    *p += n;
    return 0;
}

int kvl_live_parse_line(const char *line, size_t len, kvl_live_t *l, char *id, size_t idlen,
                        char *site, size_t sitelen)
{
    const char *p = line, *end = line + len;
    memset(l, 0, sizeof(*l));
    if (len < 2 || (line[0] != 'U' && line[0] != 'L') || line[1] != ' ') {
        return KVL_EINVAL;
    }
    p += 2;
    int64_t interval, from, at;
    if (parse_num(&p, end, ' ', false, &interval) != 0 || interval > UINT32_MAX ||
        parse_num(&p, end, ' ', true, &from) != 0 || parse_num(&p, end, ' ', true, &at) != 0 ||
        parse_counted(&p, end, id, idlen) != 0 || id[0] == '\0' || p >= end || *p++ != ' ' ||
        parse_counted(&p, end, site, sitelen) != 0 || p != end) {
        return KVL_EINVAL;
    }
    l->interval_ms = (uint32_t)interval;
    l->lost = line[0] == 'L';
    l->lost_from_ms = l->lost ? from : 0;
    l->lost_at_ms = l->lost ? at : 0;
    l->last_seen_ms = l->lost_from_ms;
    return 0;
}
