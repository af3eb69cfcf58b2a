/*
 * cfg.h — YAML configuration files as a node tree, read through declarative field tables.
 *
 * A module describes its keys once (kvl_cfg_field_t: key, type, bounds, help) and calls
 * kvl_cfg_apply on a mapping node: unknown keys, duplicates, missing required keys and
 * values out of bounds become errors that name file:line:column and what was expected.
 * Defaults are whatever the caller stored in the target struct before applying.
 * libyaml is used here only; callers see kvl_cfg_node_t handles.
 */
#ifndef KVL_CFG_H
#define KVL_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kvl.h"

typedef struct kvl_cfg kvl_cfg_t;

/* A node of the loaded document; valid while its kvl_cfg_t lives. */
typedef struct kvl_cfg_node {
    kvl_cfg_t *cfg;
    int index; /* libyaml node index, 0 = none */
} kvl_cfg_node_t;

typedef enum {
    KVL_CFG_STR,      /* char *, strdup'd; the previous value is freed */
    KVL_CFG_INT,      /* int64_t within [min, max] */
    KVL_CFG_BOOL,     /* bool: true/false/yes/no/on/off */
    KVL_CFG_DURATION, /* int64_t milliseconds within [min, max] ms */
    KVL_CFG_ENUM,     /* int: index into choices */
    KVL_CFG_CUSTOM,   /* parse(node, target) does the work */
} kvl_cfg_type_t;

enum { KVL_CFG_REQUIRED = 1 };

typedef struct kvl_cfg_field {
    const char *key;
    kvl_cfg_type_t type;
    size_t offset;
    int64_t min;
    int64_t max;
    const char *const *choices; /* NULL-terminated, for KVL_CFG_ENUM */
    /* For KVL_CFG_CUSTOM: returns 0, or the result of kvl_cfg_error. */
    int (*parse)(kvl_cfg_node_t node, void *target);
    unsigned flags;
    const char *help;
} kvl_cfg_field_t;

/* Loads and parses a YAML file. On failure returns NULL and writes
 * "file:line:column: message" (or "file: reason") into err. */
kvl_cfg_t *kvl_cfg_load_file(const char *path, char *err, size_t errlen);
/* Same, from a string; `name` stands in for the file name in messages. */
kvl_cfg_t *kvl_cfg_load_string(const char *name, const char *text, char *err, size_t errlen);
void kvl_cfg_free(kvl_cfg_t *c);

/* The first error recorded by kvl_cfg_error, or "" if none. */
const char *kvl_cfg_last_error(const kvl_cfg_t *c);

kvl_cfg_node_t kvl_cfg_root(kvl_cfg_t *c);
bool kvl_cfg_is_map(kvl_cfg_node_t n);
bool kvl_cfg_is_seq(kvl_cfg_node_t n);
bool kvl_cfg_is_scalar(kvl_cfg_node_t n);
/* Scalar text, or NULL for non-scalars. */
const char *kvl_cfg_scalar(kvl_cfg_node_t n);
size_t kvl_cfg_seq_len(kvl_cfg_node_t n);
kvl_cfg_node_t kvl_cfg_seq_at(kvl_cfg_node_t n, size_t i);
/* Finds `key` in a mapping. Returns true and sets *out when present. */
bool kvl_cfg_map_get(kvl_cfg_node_t map, const char *key, kvl_cfg_node_t *out);
/* Pairs of a mapping, in file order, for keys the caller names (labels and the like):
 * the count (0 for non-mappings), and the i-th key and value nodes (false past the end). */
size_t kvl_cfg_map_len(kvl_cfg_node_t n);
bool kvl_cfg_map_at(kvl_cfg_node_t map, size_t i, kvl_cfg_node_t *key, kvl_cfg_node_t *value);

/* Writes "file:line:column" of the node into buf (to name a place in another message). */
void kvl_cfg_where(kvl_cfg_node_t n, char *buf, size_t len);

/* Records "file:line:column: <message>" for the node (first error wins) and returns
 * KVL_ECONFIG, so parsers can `return kvl_cfg_error(...)`. */
int kvl_cfg_error(kvl_cfg_node_t n, const char *fmt, ...) KVL_PRINTF(2, 3);

/* Applies a field table (terminated by an entry with key NULL) to mapping `map`, storing
 * into `base`. Returns 0 or KVL_ECONFIG with the error recorded. */
int kvl_cfg_apply(kvl_cfg_node_t map, const kvl_cfg_field_t *fields, void *base);

/* Typed readers for custom parsers; each records an error and returns KVL_ECONFIG. */
int kvl_cfg_read_str(kvl_cfg_node_t n, char **out);
int kvl_cfg_read_int(kvl_cfg_node_t n, int64_t min, int64_t max, int64_t *out);
int kvl_cfg_read_duration(kvl_cfg_node_t n, int64_t min_ms, int64_t max_ms, int64_t *out);
/* A KVL_CFG_CUSTOM parser for `log_level`: error, warn, info or debug into an int. */
int kvl_cfg_parse_log_level(kvl_cfg_node_t n, void *target);

/* Splits "host:port" or "[v6]:port" (port required). Returns 0 or KVL_EINVAL. */
int kvl_parse_hostport(const char *s, char *host, size_t hostlen, uint16_t *port);

/* Comparing two loaded configurations (a reload): whether two optional strings are the same
 * (both NULL, or equal text), and two lists of them element by element. */
bool kvl_cfg_str_same(const char *a, const char *b);
bool kvl_cfg_strv_same(char *const *a, size_t na, char *const *b, size_t nb);

#endif
