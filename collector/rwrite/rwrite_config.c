/*
 * rwrite_config.c — parses `remote_write:` (rwrite_config.h) with a field table per endpoint;
 * the labels and the secrets by hand.
 */
#include "rwrite_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"

/* A Prometheus label name: [a-zA-Z_][a-zA-Z0-9_]*, not starting with __ (reserved). */
static bool label_name_ok(const char *s)
{
    if (s == NULL || s[0] == '\0' || (s[0] >= '0' && s[0] <= '9') || strncmp(s, "__", 2) == 0) {
        return false;
    }
    for (const char *p = s; *p != '\0'; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            return false;
        }
    }
    return strlen(s) < 256;
}

static const char *const default_series_labels[] = {"ifAlias", "ifDescr", "ifType", "sysName",
                                                    "model",   "address", "type",   "url"};

static void strv_free(char **v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static void endpoint_free(kvl_rw_endpoint_cfg_t *e)
{
    free(e->name);
    free(e->url);
    free(e->username);
    free(e->password);
    free(e->password_file);
    free(e->bearer_token);
    free(e->bearer_token_file);
    free(e->ca);
    for (size_t i = 0; i < e->n_external; i++) {
        free((char *)e->external[i].key);
        free((char *)e->external[i].value);
    }
    free(e->external);
    strv_free(e->series_labels, e->n_series_labels);
}

void kvl_rw_cfg_free(kvl_rw_cfg_t *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        endpoint_free(&c->at[i]);
    }
    free(c->at);
    free(c);
}

static int parse_url(kvl_cfg_node_t n, void *target)
{
    kvl_rw_endpoint_cfg_t *e = target;
    const char *s = kvl_cfg_scalar(n);
    bool ok = s != NULL && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0) &&
              strlen(s) < 2048 && strpbrk(s, " \t\r\n\"<>") == NULL &&
              s[strncmp(s, "https", 5) == 0 ? 8 : 7] != '\0';
    if (!ok) {
        return kvl_cfg_error(n, "expected the receiver's write URL, http(s)://host[:port]/path, "
                                "e.g. http://127.0.0.1:9090/api/v1/write");
    }
    free(e->url);
    e->url = strdup(s);
    return e->url != NULL ? 0 : kvl_cfg_error(n, "out of memory");
}

static int parse_external(kvl_cfg_node_t n, void *target)
{
    kvl_rw_endpoint_cfg_t *e = target;
    size_t len = kvl_cfg_map_len(n);
    if (!kvl_cfg_is_map(n)) {
        return kvl_cfg_error(n, "expected a mapping of label names to values, e.g. "
                                "{region: kerala}");
    }
    kvl_label_t *l = calloc(len > 0 ? len : 1, sizeof(*l));
    if (l == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    size_t k = 0;
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        kvl_cfg_node_t kn, vn;
        kvl_cfg_map_at(n, i, &kn, &vn);
        const char *key = kvl_cfg_scalar(kn), *value = kvl_cfg_scalar(vn);
        if (!label_name_ok(key)) {
            rc = kvl_cfg_error(kn, "a label name is [a-zA-Z_][a-zA-Z0-9_]* and does not start "
                                   "with __");
        } else if (value == NULL || value[0] == '\0') {
            rc = kvl_cfg_error(vn, "expected a non-empty text for label %s", key);
        } else {
            l[k].key = strdup(key);
            l[k].value = strdup(value);
            k++;
            if (l[k - 1].key == NULL || l[k - 1].value == NULL) {
                rc = kvl_cfg_error(vn, "out of memory");
            }
        }
    }
    for (size_t i = 0; i < e->n_external; i++) {
        free((char *)e->external[i].key);
        free((char *)e->external[i].value);
    }
    free(e->external);
    e->external = l;
    e->n_external = k;
    return rc;
}

static int parse_series_labels(kvl_cfg_node_t n, void *target)
{
    kvl_rw_endpoint_cfg_t *e = target;
    const char *s = kvl_cfg_scalar(n);
    strv_free(e->series_labels, e->n_series_labels);
    e->series_labels = NULL;
    e->n_series_labels = 0;
    if (s != NULL && strcmp(s, "none") == 0) {
        return 0;
    }
    if (!kvl_cfg_is_seq(n)) {
        return kvl_cfg_error(n, "expected none or a list of label names, e.g. "
                                "[ifAlias, sysName]");
    }
    size_t len = kvl_cfg_seq_len(n);
    e->series_labels = calloc(len + 1, sizeof(char *));
    if (e->series_labels == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(n, i);
        const char *v = kvl_cfg_scalar(item);
        if (v == NULL || v[0] == '\0') {
            return kvl_cfg_error(item, "expected a label name");
        }
        if ((e->series_labels[i] = strdup(v)) == NULL) {
            return kvl_cfg_error(item, "out of memory");
        }
        e->n_series_labels = i + 1;
    }
    return 0;
}

#define OFF(field) offsetof(kvl_rw_endpoint_cfg_t, field)

static const kvl_cfg_field_t endpoint_fields[] = {
    {"name", KVL_CFG_STR, OFF(name), 0, 0, NULL, NULL, 0, "for log lines and /metrics"},
    {"url", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_url, KVL_CFG_REQUIRED, "the write URL"},
    {"timeout", KVL_CFG_DURATION, OFF(timeout_ms), 100, 600 * 1000, NULL, NULL, 0,
     "one request's time (30s)"},
    {"max_queue", KVL_CFG_INT, OFF(max_queue), 100, 100000000, NULL, NULL, 0,
     "samples queued; the oldest are dropped past it (1000000)"},
    {"max_samples_per_send", KVL_CFG_INT, OFF(max_samples_per_send), 1, 100000, NULL, NULL, 0,
     "samples per request (2000)"},
    {"shards", KVL_CFG_INT, OFF(shards), 1, KVL_RW_SHARDS_MAX, NULL, NULL, 0,
     "requests in flight at most (2)"},
    {"min_backoff", KVL_CFG_DURATION, OFF(min_backoff_ms), 10, 600 * 1000, NULL, NULL, 0,
     "first wait before a retry (500ms)"},
    {"max_backoff", KVL_CFG_DURATION, OFF(max_backoff_ms), 10, 3600 * 1000, NULL, NULL, 0,
     "longest wait between retries (30s)"},
    {"username", KVL_CFG_STR, OFF(username), 0, 0, NULL, NULL, 0, "basic auth user"},
    {"password_file", KVL_CFG_STR, OFF(password_file), 0, 0, NULL, NULL, 0,
     "basic auth password, in a file"},
    {"bearer_token_file", KVL_CFG_STR, OFF(bearer_token_file), 0, 0, NULL, NULL, 0,
     "Authorization: Bearer token, in a file"},
    {"ca", KVL_CFG_STR, OFF(ca), 0, 0, NULL, NULL, 0, "CA bundle for an https URL"},
    {"external_labels", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_external, 0,
     "labels added to every series"},
    {"series_labels", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_series_labels, 0,
     "which of a series' own labels are carried"},
    {NULL},
};

/* The first line of a secret's file, into *out. Returns 0 or the node's error. */
static int read_secret(kvl_cfg_node_t n, const char *path, char **out)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return kvl_cfg_error(n, "%s: %s", path, strerror(errno));
    }
    char line[4096];
    bool got = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    line[got ? strcspn(line, "\r\n") : 0] = '\0';
    if (line[0] == '\0') {
        return kvl_cfg_error(n, "%s: empty (expected the secret on its first line)", path);
    }
    *out = strdup(line);
    return *out != NULL ? 0 : kvl_cfg_error(n, "out of memory");
}

static int parse_endpoint(kvl_cfg_node_t item, kvl_rw_endpoint_cfg_t *e)
{
    if (!kvl_cfg_is_map(item)) {
        return kvl_cfg_error(item, "expected a remote-write endpoint: {url: ..., ...}");
    }
    e->timeout_ms = 30 * 1000;
    e->max_queue = 1000000;
    e->max_samples_per_send = 2000;
    e->shards = 2;
    e->min_backoff_ms = 500;
    e->max_backoff_ms = 30 * 1000;
    size_t nd = KVL_ARRAY_SIZE(default_series_labels);
    e->series_labels = calloc(nd + 1, sizeof(char *));
    if (e->series_labels == NULL) {
        return kvl_cfg_error(item, "out of memory");
    }
    for (size_t i = 0; i < nd; i++) {
        if ((e->series_labels[i] = strdup(default_series_labels[i])) == NULL) {
            return kvl_cfg_error(item, "out of memory");
        }
        e->n_series_labels = i + 1;
    }
    int rc = kvl_cfg_apply(item, endpoint_fields, e);
    if (rc != 0) {
        return rc;
    }
    if (e->max_backoff_ms < e->min_backoff_ms) {
        return kvl_cfg_error(item, "max_backoff must not be shorter than min_backoff");
    }
    if (e->max_queue < e->max_samples_per_send) {
        return kvl_cfg_error(item, "max_queue must hold at least max_samples_per_send");
    }
    if ((e->password_file != NULL) != (e->username != NULL)) {
        return kvl_cfg_error(item, "username and password_file go together");
    }
    if (e->password_file != NULL && e->bearer_token_file != NULL) {
        return kvl_cfg_error(item, "either basic auth or a bearer token, not both");
    }
    if (e->password_file != NULL && (rc = read_secret(item, e->password_file, &e->password))) {
        return rc;
    }
    if (e->bearer_token_file != NULL &&
        (rc = read_secret(item, e->bearer_token_file, &e->bearer_token))) {
        return rc;
    }
    if (e->name == NULL) {
        const char *h = strstr(e->url, "://") + 3;
        size_t hl = strcspn(h, "/?#");
        e->name = strndup(h, hl);
    }
    if (e->name == NULL || e->name[0] == '\0') {
        return kvl_cfg_error(item, "an endpoint's name must not be empty");
    }
    return 0;
}

int kvl_rw_cfg_parse(kvl_cfg_node_t n, void *target)
{
    kvl_rw_cfg_t **out = target;
    bool one = kvl_cfg_is_map(n);
    if (!one && !kvl_cfg_is_seq(n)) {
        return kvl_cfg_error(n, "expected a remote-write endpoint {url: ...} or a list of them");
    }
    size_t len = one ? 1 : kvl_cfg_seq_len(n);
    if (len > KVL_RW_ENDPOINTS_MAX) {
        return kvl_cfg_error(n, "at most %d remote-write endpoints", KVL_RW_ENDPOINTS_MAX);
    }
    kvl_rw_cfg_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->at = calloc(len > 0 ? len : 1, sizeof(*c->at))) == NULL) {
        free(c);
        return kvl_cfg_error(n, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        c->n = i + 1;
        rc = parse_endpoint(one ? n : kvl_cfg_seq_at(n, i), &c->at[i]);
        for (size_t j = 0; rc == 0 && j < i; j++) {
            if (strcmp(c->at[j].name, c->at[i].name) == 0) {
                rc = kvl_cfg_error(kvl_cfg_seq_at(n, i),
                                   "two remote-write endpoints named '%s': give each a name",
                                   c->at[i].name);
            }
        }
    }
    if (rc != 0) {
        kvl_rw_cfg_free(c);
        return rc;
    }
    kvl_rw_cfg_free(*out);
    *out = c;
    return 0;
}

static bool labels_same(const kvl_rw_endpoint_cfg_t *a, const kvl_rw_endpoint_cfg_t *b)
{
    if (a->n_external != b->n_external) {
        return false;
    }
    for (size_t i = 0; i < a->n_external; i++) {
        if (strcmp(a->external[i].key, b->external[i].key) != 0 ||
            strcmp(a->external[i].value, b->external[i].value) != 0) {
            return false;
        }
    }
    return kvl_cfg_strv_same(a->series_labels, a->n_series_labels, b->series_labels,
                             b->n_series_labels);
}

bool kvl_rw_cfg_same(const kvl_rw_cfg_t *a, const kvl_rw_cfg_t *b)
{
    size_t na = a != NULL ? a->n : 0, nb = b != NULL ? b->n : 0;
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        const kvl_rw_endpoint_cfg_t *x = &a->at[i], *y = &b->at[i];
        if (!kvl_cfg_str_same(x->name, y->name) || !kvl_cfg_str_same(x->url, y->url) ||
            x->timeout_ms != y->timeout_ms || x->max_queue != y->max_queue ||
            x->max_samples_per_send != y->max_samples_per_send || x->shards != y->shards ||
            x->min_backoff_ms != y->min_backoff_ms || x->max_backoff_ms != y->max_backoff_ms ||
            !kvl_cfg_str_same(x->username, y->username) ||
            !kvl_cfg_str_same(x->password, y->password) ||
            !kvl_cfg_str_same(x->bearer_token, y->bearer_token) ||
            !kvl_cfg_str_same(x->ca, y->ca) || !labels_same(x, y)) {
            return false;
        }
    }
    return true;
}
