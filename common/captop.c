/*
 * captop.c — the top hosts and conversations as text (captop.h): lists and records written
 * and parsed strictly, every read bounded by the text given.
 */
#include "captop.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kvl.h"

int kvl_captop_list_format(const kvl_captop_entry_t *e, size_t n, bool conv, char *out,
                           size_t outlen)
{
    size_t at = 0;
    if (outlen == 0) {
        return KVL_EINVAL;
    }
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (e[i].a[0] == '\0' || (conv && e[i].b[0] == '\0')) {
            out[0] = '\0';
            return KVL_EINVAL;
        }
        int k = conv ? snprintf(out + at, outlen - at, "%s%s %s %" PRIu64 " %" PRIu64 " %" PRIu64,
                                i ? "," : "", e[i].a, e[i].b, e[i].bytes, e[i].err, e[i].packets)
                     : snprintf(out + at, outlen - at, "%s%s %" PRIu64 " %" PRIu64 " %" PRIu64,
                                i ? "," : "", e[i].a, e[i].bytes, e[i].err, e[i].packets);
        if (k < 0 || (size_t)k >= outlen - at) {
            out[0] = '\0';
            return KVL_EINVAL;
        }
        at += (size_t)k;
    }
    return (int)at;
}

/* A decimal number of s[0..n) (1 to 20 digits, at most 2^64 - 1). */
static int parse_u64(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20) {
        return -1;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return -1;
        }
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* An address of s[0..n) into out, checked by inet_pton. */
static int parse_addr(const char *s, size_t n, char *out)
{
    if (n == 0 || n >= KVL_CAPTOP_ADDR || memchr(s, '\0', n) != NULL) {
        return -1;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    unsigned char buf[16];
    return inet_pton(strchr(out, ':') != NULL ? AF_INET6 : AF_INET, out, buf) == 1 ? 0 : -1;
}

/* One entry of s[0..n): its space-separated parts. */
static int parse_entry(const char *s, size_t n, bool conv, kvl_captop_entry_t *e)
{
    const char *part[5];
    size_t len[5], want = conv ? 5 : 4, k = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == ' ') {
            if (k == want) {
                return -1; /* an extra part */
            }
            part[k] = s + start;
            len[k] = i - start;
            k++;
            start = i + 1;
        }
    }
    if (k != want) {
        return -1;
    }
    memset(e, 0, sizeof(*e));
    size_t p = 0;
    if (parse_addr(part[p], len[p], e->a) != 0) {
        return -1;
    }
    p++;
    if (conv) {
        if (parse_addr(part[p], len[p], e->b) != 0) {
            return -1;
        }
        p++;
    }
    if (parse_u64(part[p], len[p], &e->bytes) != 0 ||
        parse_u64(part[p + 1], len[p + 1], &e->err) != 0 ||
        parse_u64(part[p + 2], len[p + 2], &e->packets) != 0 || e->err > e->bytes) {
        return -1;
    }
    return 0;
}

static int list_parse(const char *s, size_t n, bool conv, kvl_captop_entry_t *out, size_t max)
{
    if (n == 0) {
        return 0;
    }
    size_t count = 0, start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == ',') {
            if (count == max || parse_entry(s + start, i - start, conv, &out[count]) != 0) {
                return KVL_EDECODE;
            }
            count++;
            start = i + 1;
        }
    }
    return (int)count;
}

int kvl_captop_list_parse(const char *s, bool conv, kvl_captop_entry_t *out, size_t max)
{
    return list_parse(s, strlen(s), conv, out, max);
}

int kvl_captop_line_format(const kvl_captop_t *t, char *out, size_t outlen)
{
    char hosts[KVL_CAPTOP_LIST_LEN], convs[KVL_CAPTOP_LIST_LEN];
    if (t->n_hosts > KVL_CAPTOP_MAX || t->n_convs > KVL_CAPTOP_MAX ||
        kvl_captop_list_format(t->hosts, t->n_hosts, false, hosts, sizeof(hosts)) < 0 ||
        kvl_captop_list_format(t->convs, t->n_convs, true, convs, sizeof(convs)) < 0 ||
        t->start_ms < 0 || t->end_ms < t->start_ms) {
        return KVL_EINVAL;
    }
    int k = snprintf(out, outlen, "%" PRId64 " %" PRId64 "|%s|%s", t->start_ms, t->end_ms, hosts,
                     convs);
    return k < 0 || (size_t)k >= outlen ? KVL_EINVAL : k;
}

int kvl_captop_line_parse(const char *line, size_t len, kvl_captop_t *t)
{
    const char *bar1 = memchr(line, '|', len);
    if (bar1 == NULL) {
        return KVL_EDECODE;
    }
    size_t rest = len - (size_t)(bar1 + 1 - line);
    const char *bar2 = memchr(bar1 + 1, '|', rest);
    if (bar2 == NULL) {
        return KVL_EDECODE;
    }
    const char *sp = memchr(line, ' ', (size_t)(bar1 - line));
    uint64_t start, end;
    if (sp == NULL || parse_u64(line, (size_t)(sp - line), &start) != 0 ||
        parse_u64(sp + 1, (size_t)(bar1 - sp - 1), &end) != 0 || end < start ||
        end > (uint64_t)INT64_MAX) {
        return KVL_EDECODE;
    }
    memset(t, 0, sizeof(*t));
    t->start_ms = (int64_t)start;
    t->end_ms = (int64_t)end;
    int h = list_parse(bar1 + 1, (size_t)(bar2 - bar1 - 1), false, t->hosts, KVL_CAPTOP_MAX);
    int c = list_parse(bar2 + 1, len - (size_t)(bar2 + 1 - line), true, t->convs, KVL_CAPTOP_MAX);
    if (h < 0 || c < 0) {
        return KVL_EDECODE;
    }
    t->n_hosts = (size_t)h;
    t->n_convs = (size_t)c;
    return 0;
}
