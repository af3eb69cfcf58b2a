/*
 * cfg.c — YAML configuration loader and field-table interpreter (see cfg.h).
 *
 * The whole file is loaded with libyaml's document API, which keeps each node's start
 * mark (line and column, 0-based; we print them 1-based). Errors are formatted once, at
 * the node where they are found, and the first one is kept for the caller to print.
 */
#include "cfg.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "log.h"
#include "timeutil.h"

struct kvl_cfg {
    yaml_document_t doc;
    bool have_doc;
    char *name;
    char err[512];
};

static kvl_cfg_t *load(const char *name, yaml_parser_t *p, char *err, size_t errlen)
{
    kvl_cfg_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->name = strdup(name)) == NULL) {
        free(c);
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    if (!yaml_parser_load(p, &c->doc)) {
        const char *what = p->problem ? p->problem : "syntax error";
        snprintf(err, errlen, "%s:%zu:%zu: %s%s%s", name, p->problem_mark.line + 1,
                 p->problem_mark.column + 1, what, p->context ? " " : "",
                 p->context ? p->context : "");
        free(c->name);
        free(c);
        return NULL;
    }
    c->have_doc = true;
    if (yaml_document_get_root_node(&c->doc) == NULL) {
        snprintf(err, errlen, "%s:1:1: the file is empty; expected a mapping of settings", name);
        kvl_cfg_free(c);
        return NULL;
    }
    /* libyaml loads one document per call: make sure nothing follows, or it would be
     * silently ignored. */
    yaml_document_t extra;
    if (!yaml_parser_load(p, &extra)) {
        const char *what = p->problem ? p->problem : "syntax error";
        snprintf(err, errlen, "%s:%zu:%zu: %s%s%s", name, p->problem_mark.line + 1,
                 p->problem_mark.column + 1, what, p->context ? " " : "",
                 p->context ? p->context : "");
        kvl_cfg_free(c);
        return NULL;
    }
    bool more = yaml_document_get_root_node(&extra) != NULL;
    yaml_mark_t at = extra.start_mark;
    yaml_document_delete(&extra);
    if (more) {
        snprintf(err, errlen,
                 "%s:%zu:%zu: a second YAML document starts here; the file must hold one "
                 "mapping of settings",
                 name, at.line + 1, at.column + 1);
        kvl_cfg_free(c);
        return NULL;
    }
    return c;
}

kvl_cfg_t *kvl_cfg_load_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    yaml_parser_set_input_file(&p, f);
    kvl_cfg_t *c = load(path, &p, err, errlen);
    yaml_parser_delete(&p);
    fclose(f);
    return c;
}

kvl_cfg_t *kvl_cfg_load_string(const char *name, const char *text, char *err, size_t errlen)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    kvl_cfg_t *c = load(name, &p, err, errlen);
    yaml_parser_delete(&p);
    return c;
}

void kvl_cfg_free(kvl_cfg_t *c)
{
    if (c == NULL) {
        return;
    }
    if (c->have_doc) {
        yaml_document_delete(&c->doc);
    }
    free(c->name);
    free(c);
}

const char *kvl_cfg_last_error(const kvl_cfg_t *c)
{
    return c->err;
}

static yaml_node_t *node_of(kvl_cfg_node_t n)
{
    if (n.cfg == NULL || n.index == 0) {
        return NULL;
    }
    return yaml_document_get_node(&n.cfg->doc, n.index);
}

kvl_cfg_node_t kvl_cfg_root(kvl_cfg_t *c)
{
    kvl_cfg_node_t n = {c, 1};
    return n;
}

bool kvl_cfg_is_map(kvl_cfg_node_t n)
{
    yaml_node_t *y = node_of(n);
    return y != NULL && y->type == YAML_MAPPING_NODE;
}

bool kvl_cfg_is_seq(kvl_cfg_node_t n)
{
    yaml_node_t *y = node_of(n);
    return y != NULL && y->type == YAML_SEQUENCE_NODE;
}

bool kvl_cfg_is_scalar(kvl_cfg_node_t n)
{
    yaml_node_t *y = node_of(n);
    return y != NULL && y->type == YAML_SCALAR_NODE;
}

const char *kvl_cfg_scalar(kvl_cfg_node_t n)
{
    yaml_node_t *y = node_of(n);
    if (y == NULL || y->type != YAML_SCALAR_NODE) {
        return NULL;
    }
    return (const char *)y->data.scalar.value;
}

size_t kvl_cfg_seq_len(kvl_cfg_node_t n)
{
    yaml_node_t *y = node_of(n);
    if (y == NULL || y->type != YAML_SEQUENCE_NODE) {
        return 0;
    }
    return (size_t)(y->data.sequence.items.top - y->data.sequence.items.start);
}

kvl_cfg_node_t kvl_cfg_seq_at(kvl_cfg_node_t n, size_t i)
{
    kvl_cfg_node_t out = {n.cfg, 0};
    if (i < kvl_cfg_seq_len(n)) {
        out.index = node_of(n)->data.sequence.items.start[i];
    }
    return out;
}

bool kvl_cfg_map_get(kvl_cfg_node_t map, const char *key, kvl_cfg_node_t *out)
{
    yaml_node_t *y = node_of(map);
    if (y == NULL || y->type != YAML_MAPPING_NODE) {
        return false;
    }
    for (yaml_node_pair_t *p = y->data.mapping.pairs.start; p < y->data.mapping.pairs.top; p++) {
        kvl_cfg_node_t k = {map.cfg, p->key};
        const char *ks = kvl_cfg_scalar(k);
        if (ks != NULL && strcmp(ks, key) == 0) {
            out->cfg = map.cfg;
            out->index = p->value;
            return true;
        }
    }
    return false;
}

size_t kvl_cfg_map_len(kvl_cfg_node_t n)
{
    yaml_node_t *y = node_of(n);
    if (y == NULL || y->type != YAML_MAPPING_NODE) {
        return 0;
    }
    return (size_t)(y->data.mapping.pairs.top - y->data.mapping.pairs.start);
}

bool kvl_cfg_map_at(kvl_cfg_node_t map, size_t i, kvl_cfg_node_t *key, kvl_cfg_node_t *value)
{
    if (i >= kvl_cfg_map_len(map)) {
        return false;
    }
    yaml_node_pair_t *p = &node_of(map)->data.mapping.pairs.start[i];
    *key = (kvl_cfg_node_t){map.cfg, p->key};
    *value = (kvl_cfg_node_t){map.cfg, p->value};
    return true;
}

void kvl_cfg_where(kvl_cfg_node_t n, char *buf, size_t len)
{
    yaml_node_t *y = node_of(n);
    snprintf(buf, len, "%s:%zu:%zu", n.cfg ? n.cfg->name : "?", y ? y->start_mark.line + 1 : 1,
             y ? y->start_mark.column + 1 : 1);
}

int kvl_cfg_error(kvl_cfg_node_t n, const char *fmt, ...)
{
    kvl_cfg_t *c = n.cfg;
    if (c == NULL || c->err[0] != '\0') {
        return KVL_ECONFIG;
    }
    yaml_node_t *y = node_of(n);
    size_t line = y ? y->start_mark.line + 1 : 1;
    size_t col = y ? y->start_mark.column + 1 : 1;
    int used = snprintf(c->err, sizeof(c->err), "%s:%zu:%zu: ", c->name, line, col);
    if (used > 0 && (size_t)used < sizeof(c->err)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->err + used, sizeof(c->err) - (size_t)used, fmt, ap);
        va_end(ap);
    }
    return KVL_ECONFIG;
}

static const char *describe(kvl_cfg_node_t n)
{
    yaml_node_t *y = node_of(n);
    if (y == NULL) {
        return "nothing";
    }
    switch (y->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a value";
    }
}

int kvl_cfg_read_str(kvl_cfg_node_t n, char **out)
{
    const char *s = kvl_cfg_scalar(n);
    if (s == NULL) {
        return kvl_cfg_error(n, "expected a text value, got %s", describe(n));
    }
    char *copy = strdup(s);
    if (copy == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    free(*out);
    *out = copy;
    return 0;
}

int kvl_cfg_read_int(kvl_cfg_node_t n, int64_t min, int64_t max, int64_t *out)
{
    const char *s = kvl_cfg_scalar(n);
    if (s == NULL) {
        return kvl_cfg_error(n, "expected a whole number from %" PRId64 " to %" PRId64 ", got %s",
                             min, max, describe(n));
    }
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
        return kvl_cfg_error(n, "expected a whole number from %" PRId64 " to %" PRId64 ", got '%s'",
                             min, max, s);
    }
    *out = v;
    return 0;
}

int kvl_cfg_read_duration(kvl_cfg_node_t n, int64_t min_ms, int64_t max_ms, int64_t *out)
{
    const char *s = kvl_cfg_scalar(n);
    int64_t v = 0;
    if (s == NULL || kvl_duration_parse(s, &v) != 0) {
        return kvl_cfg_error(n,
                             "expected a duration such as 500ms, 30s, 5m or 2h (a bare number is "
                             "seconds), got %s%s%s",
                             s ? "'" : "", s ? s : describe(n), s ? "'" : "");
    }
    if (v < min_ms || v > max_ms) {
        return kvl_cfg_error(
            n, "duration '%s' is out of range: expected %" PRId64 "ms to %" PRId64 "ms", s, min_ms,
            max_ms);
    }
    *out = v;
    return 0;
}

int kvl_cfg_parse_log_level(kvl_cfg_node_t n, void *target)
{
    const char *s = kvl_cfg_scalar(n);
    int level = s ? kvl_log_level_parse(s) : -1;
    if (level < 0) {
        return kvl_cfg_error(n, "expected a log level: error, warn, info or debug");
    }
    *(int *)target = level;
    return 0;
}

static int read_bool(kvl_cfg_node_t n, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    const char *s = kvl_cfg_scalar(n);
    if (s != NULL) {
        for (size_t i = 0; i < KVL_ARRAY_SIZE(yes); i++) {
            if (strcasecmp(s, yes[i]) == 0) {
                *out = true;
                return 0;
            }
            if (strcasecmp(s, no[i]) == 0) {
                *out = false;
                return 0;
            }
        }
    }
    return kvl_cfg_error(n, "expected true or false, got %s%s%s", s ? "'" : "", s ? s : describe(n),
                         s ? "'" : "");
}

static int read_enum(kvl_cfg_node_t n, const char *const *choices, int *out)
{
    const char *s = kvl_cfg_scalar(n);
    if (s != NULL) {
        for (int i = 0; choices[i] != NULL; i++) {
            if (strcmp(s, choices[i]) == 0) {
                *out = i;
                return 0;
            }
        }
    }
    char list[256] = "";
    size_t used = 0;
    for (int i = 0; choices[i] != NULL && used < sizeof(list); i++) {
        int w = snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", choices[i]);
        if (w < 0) {
            break;
        }
        used += (size_t)w;
    }
    return kvl_cfg_error(n, "expected one of %s, got %s%s%s", list, s ? "'" : "",
                         s ? s : describe(n), s ? "'" : "");
}

static int apply_one(kvl_cfg_node_t v, const kvl_cfg_field_t *f, void *base)
{
    void *target = (char *)base + f->offset;
    switch (f->type) {
    case KVL_CFG_STR:
        return kvl_cfg_read_str(v, (char **)target);
    case KVL_CFG_INT:
        return kvl_cfg_read_int(v, f->min, f->max, (int64_t *)target);
    case KVL_CFG_BOOL:
        return read_bool(v, (bool *)target);
    case KVL_CFG_DURATION:
        return kvl_cfg_read_duration(v, f->min, f->max, (int64_t *)target);
    case KVL_CFG_ENUM:
        return read_enum(v, f->choices, (int *)target);
    case KVL_CFG_CUSTOM:
        return f->parse(v, target);
    }
    return kvl_cfg_error(v, "internal error: unknown field type");
}

int kvl_cfg_apply(kvl_cfg_node_t map, const kvl_cfg_field_t *fields, void *base)
{
    yaml_node_t *y = node_of(map);
    if (y == NULL || y->type != YAML_MAPPING_NODE) {
        return kvl_cfg_error(map, "expected a mapping of settings (key: value), got %s",
                             describe(map));
    }
    size_t nfields = 0;
    while (fields[nfields].key != NULL) {
        nfields++;
    }
    unsigned char seen[128] = {0};
    if (nfields > sizeof(seen)) {
        return kvl_cfg_error(map, "internal error: field table too large");
    }
    for (yaml_node_pair_t *p = y->data.mapping.pairs.start; p < y->data.mapping.pairs.top; p++) {
        kvl_cfg_node_t k = {map.cfg, p->key};
        kvl_cfg_node_t v = {map.cfg, p->value};
        const char *ks = kvl_cfg_scalar(k);
        if (ks == NULL) {
            return kvl_cfg_error(k, "expected a setting name, got %s", describe(k));
        }
        size_t i = 0;
        while (i < nfields && strcmp(fields[i].key, ks) != 0) {
            i++;
        }
        if (i == nfields) {
            char list[384] = "";
            size_t used = 0;
            for (size_t j = 0; j < nfields && used < sizeof(list); j++) {
                int w = snprintf(list + used, sizeof(list) - used, "%s%s", j ? ", " : "",
                                 fields[j].key);
                if (w < 0) {
                    break;
                }
                used += (size_t)w;
            }
            return kvl_cfg_error(k, "unknown setting '%s'; expected one of: %s", ks, list);
        }
        if (seen[i]) {
            return kvl_cfg_error(k, "setting '%s' is given twice", ks);
        }
        seen[i] = 1;
        int rc = apply_one(v, &fields[i], base);
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < nfields; i++) {
        if ((fields[i].flags & KVL_CFG_REQUIRED) && !seen[i]) {
            return kvl_cfg_error(map, "missing required setting '%s'%s%s", fields[i].key,
                                 fields[i].help ? ": " : "", fields[i].help ? fields[i].help : "");
        }
    }
    return 0;
}

int kvl_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            return KVL_EINVAL;
        }
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || strchr(s, ':') != colon) {
            return KVL_EINVAL;
        }
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen) {
        return KVL_EINVAL;
    }
    char *end;
    errno = 0;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || p == 0 || p > 65535) {
        return KVL_EINVAL;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

bool kvl_cfg_str_same(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

bool kvl_cfg_strv_same(char *const *a, size_t na, char *const *b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (!kvl_cfg_str_same(a[i], b[i])) {
            return false;
        }
    }
    return true;
}
