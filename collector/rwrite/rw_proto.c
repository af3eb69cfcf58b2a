/*
 * rw_proto.c — remote-write labels, protobuf encoding and snappy (rw_proto.h). The protobuf is
 * small enough to write by hand: varints, length-delimited fields and one fixed64 double.
 */
#include "rw_proto.h"

#include <snappy-c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"

/* ---- labels ---------------------------------------------------------------------------------- */

size_t kvl_rw_sanitize(const char *s, char *out, size_t outlen)
{
    size_t n = 0;
    if (s == NULL || s[0] == '\0' || outlen < 2) {
        return 0;
    }
    if (s[0] >= '0' && s[0] <= '9') {
        out[n++] = '_';
    }
    for (const char *p = s; *p != '\0'; p++) {
        if (n + 1 >= outlen) {
            return 0;
        }
        char c = *p;
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        out[n++] = ok ? c : '_';
    }
    out[n] = '\0';
    return n;
}

/* Copies s (sanitised when `name`) into l's text. Returns it, or NULL when it does not fit. */
static const char *keep(kvl_rw_labels_t *l, const char *s, bool name)
{
    size_t room = sizeof(l->text) - l->used;
    char *at = l->text + l->used;
    size_t n;
    if (name) {
        n = kvl_rw_sanitize(s, at, room);
        if (n == 0) {
            return NULL;
        }
    } else {
        n = strlen(s);
        if (n + 1 > room) {
            return NULL;
        }
        memcpy(at, s, n + 1);
    }
    l->used += n + 1;
    return at;
}

static bool taken(const kvl_rw_labels_t *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->name[i], name) == 0) {
            return true;
        }
    }
    return false;
}

/* Adds name=value unless the name is taken or the value empty. Returns 0 or KVL_EINVAL (no
 * room). */
static int add(kvl_rw_labels_t *l, const char *name, const char *value)
{
    if (value == NULL || value[0] == '\0' || taken(l, name)) {
        return 0;
    }
    if (l->n == KVL_RW_LABELS_MAX) {
        return KVL_EINVAL;
    }
    l->name[l->n] = name;
    l->value[l->n] = value;
    l->n++;
    return 0;
}

static const char *scope_prefix(kvl_scope_t s)
{
    switch (s) {
    case KVL_SCOPE_DEVICE:
        return "device";
    case KVL_SCOPE_INTERFACE:
        return "interface";
    case KVL_SCOPE_AGENT:
        return "agent";
    case KVL_SCOPE_LINK:
        return "link";
    default:
        return NULL;
    }
}

static const char *instance_label(kvl_scope_t s)
{
    return s == KVL_SCOPE_INTERFACE ? "interface" : s == KVL_SCOPE_LINK ? "target" : "instance";
}

size_t kvl_rw_name(const kvl_series_def_t *def, const kvl_family_t *fam, char *out, size_t outlen)
{
    const char *prefix = def->scope == KVL_SCOPE_GROUP
                             ? (fam != NULL && fam->name != NULL ? fam->name : "group")
                             : scope_prefix(def->scope);
    if (prefix == NULL || def->metric == NULL || def->metric[0] == '\0') {
        return 0;
    }
    char raw[512];
    int len = snprintf(raw, sizeof(raw), "kaaval_%s_%s%s", prefix, def->metric,
                       def->kind == KVL_KIND_COUNTER ? "_total" : "");
    if (len < 0 || (size_t)len >= sizeof(raw)) {
        return 0;
    }
    return kvl_rw_sanitize(raw, out, outlen);
}

/* A series label's value, cut to KVL_RW_VALUE_MAX bytes (not inside a UTF-8 sequence) into
 * l's text when longer. NULL when it does not fit. */
static const char *value_of(kvl_rw_labels_t *l, const char *v)
{
    if (strlen(v) <= KVL_RW_VALUE_MAX) {
        return v;
    }
    char cut[KVL_RW_VALUE_MAX + 1];
    size_t n = KVL_RW_VALUE_MAX;
    while (n > 0 && ((unsigned char)v[n] & 0xC0) == 0x80) {
        n--; /* v[n] continues a sequence: cut before its start */
    }
    memcpy(cut, v, n);
    cut[n] = '\0';
    return keep(l, cut, false);
}

int kvl_rw_labels_of(const kvl_rw_map_t *m, const char *site, const char *agent,
                     const kvl_series_def_t *def, kvl_rw_label_fn label, void *label_ctx,
                     kvl_rw_labels_t *out)
{
    out->n = 1;
    out->used = 0;
    out->name[0] = "__name__";
    out->value[0] = NULL;
    bool own = def->scope == KVL_SCOPE_AGENT || def->scope == KVL_SCOPE_LINK;
    int rc = add(out, "site", site);
    rc = rc != 0 ? rc : add(out, "agent", agent);
    rc = rc != 0 ? rc : add(out, "device", own ? agent : def->device);
    rc = rc != 0 ? rc : add(out, instance_label(def->scope), def->instance);
    for (size_t i = 0; rc == 0 && label != NULL && i < m->n_series_labels; i++) {
        const char *key = m->series_labels[i];
        const char *v = label(label_ctx, key);
        if (v == NULL || v[0] == '\0' || strncmp(key, "__", 2) == 0) {
            continue;
        }
        const char *ln = keep(out, key, true);
        const char *lv = ln != NULL ? value_of(out, v) : NULL;
        if (ln != NULL && lv != NULL) {
            rc = add(out, ln, lv);
        }
    }
    for (size_t i = 0; rc == 0 && i < m->n_external; i++) {
        rc = add(out, m->external[i].key, m->external[i].value);
    }
    if (rc != 0) {
        return rc;
    }
    /* sorted by name after __name__ (insertion: a few dozen at most) */
    for (size_t i = 2; i < out->n; i++) {
        const char *n = out->name[i], *v = out->value[i];
        size_t j = i;
        while (j > 1 && strcmp(out->name[j - 1], n) > 0) {
            out->name[j] = out->name[j - 1];
            out->value[j] = out->value[j - 1];
            j--;
        }
        out->name[j] = n;
        out->value[j] = v;
    }
    return 0;
}

/* ---- protobuf -------------------------------------------------------------------------------- */

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* tag, length and bytes of a length-delimited field */
static size_t put_bytes(uint8_t *p, uint8_t tag, const void *s, size_t len)
{
    size_t n = 0;
    p[n++] = tag;
    n += put_varint(p + n, len);
    memcpy(p + n, s, len);
    return n + len;
}

int kvl_rw_encode_labels(const kvl_rw_labels_t *l, kvl_buf_t *out)
{
    for (size_t i = 0; i < l->n; i++) {
        size_t nl = strlen(l->name[i]), vl = strlen(l->value[i]);
        size_t inner = 1 + varint_len(nl) + nl + 1 + varint_len(vl) + vl;
        size_t total = 1 + varint_len(inner) + inner;
        if (kvl_buf_reserve(out, total) != 0) {
            return KVL_ENOMEM;
        }
        uint8_t *p = out->data + out->len;
        size_t n = 0;
        p[n++] = 0x0A; /* TimeSeries.labels = 1, length-delimited */
        n += put_varint(p + n, inner);
        n += put_bytes(p + n, 0x0A, l->name[i], nl);  /* Label.name = 1 */
        n += put_bytes(p + n, 0x12, l->value[i], vl); /* Label.value = 2 */
        out->len += n;
    }
    return 0;
}

/* Sample { double value = 1 (fixed64); int64 timestamp = 2 (varint) }: its body length. */
static size_t sample_len(int64_t t)
{
    return 1 + 8 + 1 + varint_len((uint64_t)t);
}

int kvl_rw_encode_series(kvl_buf_t *out, const uint8_t *labels, size_t labels_len,
                         const int64_t *time_ms, const double *values, size_t n)
{
    size_t inner = labels_len;
    for (size_t i = 0; i < n; i++) {
        size_t sl = sample_len(time_ms[i]);
        inner += 1 + varint_len(sl) + sl;
    }
    if (kvl_buf_reserve(out, 1 + varint_len(inner) + inner) != 0) {
        return KVL_ENOMEM;
    }
    uint8_t *p = out->data + out->len;
    size_t k = 0;
    p[k++] = 0x0A; /* WriteRequest.timeseries = 1 */
    k += put_varint(p + k, inner);
    memcpy(p + k, labels, labels_len);
    k += labels_len;
    for (size_t i = 0; i < n; i++) {
        p[k++] = 0x12; /* TimeSeries.samples = 2 */
        k += put_varint(p + k, sample_len(time_ms[i]));
        uint64_t bits;
        memcpy(&bits, &values[i], sizeof(bits));
        p[k++] = 0x09; /* Sample.value = 1, fixed64 */
        kvl_put_le64(p + k, bits);
        k += 8;
        p[k++] = 0x10; /* Sample.timestamp = 2, varint (two's complement for negatives) */
        k += put_varint(p + k, (uint64_t)time_ms[i]);
    }
    out->len += k;
    return 0;
}

/* ---- snappy ---------------------------------------------------------------------------------- */

int kvl_rw_compress(const uint8_t *in, size_t n, kvl_buf_t *out)
{
    size_t cap = snappy_max_compressed_length(n);
    out->len = 0;
    if (kvl_buf_reserve(out, cap) != 0) {
        return KVL_ENOMEM;
    }
    size_t len = cap;
    if (snappy_compress((const char *)in, n, (char *)out->data, &len) != SNAPPY_OK) {
        return KVL_EINVAL;
    }
    out->len = len;
    return 0;
}

int kvl_rw_uncompress(const uint8_t *in, size_t n, kvl_buf_t *out)
{
    size_t len = 0;
    out->len = 0;
    if (snappy_uncompressed_length((const char *)in, n, &len) != SNAPPY_OK ||
        snappy_validate_compressed_buffer((const char *)in, n) != SNAPPY_OK) {
        return KVL_EDECODE;
    }
    if (kvl_buf_reserve(out, len + 1) != 0) {
        return KVL_ENOMEM;
    }
    if (snappy_uncompress((const char *)in, n, (char *)out->data, &len) != SNAPPY_OK) {
        return KVL_EDECODE;
    }
    out->len = len;
    return 0;
}
