/*
 * sites_config.c — the `sites:` section (sites_config.h): a list of sites read through a
 * field table per entry, or {file: path} read from another YAML file; then the tree's
 * checks (names, duplicates, parents, cycles, uplinks) with the offending node's position.
 * An uplink is a mapping {agent, device, interface, probe} or the compact list
 * [agent, device, interface].
 */
#include "sites_config.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "names.h"

static const char *const kind_names[] = {"noc", "dhq", "bhq", "minipop", "lsgi", "sdc", NULL};

const char *kvl_site_kind_name(int kind)
{
    return kind >= 0 && kind < KVL_SITE_KINDS ? kind_names[kind] : "?";
}

static void site_free(kvl_site_t *s)
{
    free(s->name);
    free(s->parent_name);
    free(s->label);
    free(s->uplink_agent);
    free(s->uplink_device);
    free(s->uplink_interface);
    free(s->uplink_probe);
}

void kvl_sites_cfg_free(kvl_sites_cfg_t *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        site_free(&c->v[i]);
    }
    free(c->v);
    free(c->file);
    free(c);
}

size_t kvl_sites_find(const kvl_sites_cfg_t *c, const char *name)
{
    for (size_t i = 0; c != NULL && i < c->n; i++) {
        if (strcmp(c->v[i].name, name) == 0) {
            return i;
        }
    }
    return KVL_SITE_NONE;
}

#define SOFF(f) offsetof(kvl_site_t, f)

static const kvl_cfg_field_t uplink_fields[] = {
    {"agent", KVL_CFG_STR, SOFF(uplink_agent), 0, 0, NULL, NULL, 0,
     "the agent polling the device (default: whichever reports it)"},
    {"device", KVL_CFG_STR, SOFF(uplink_device), 0, 0, NULL, NULL, 0,
     "the device at the site's end of its uplink"},
    {"interface", KVL_CFG_STR, SOFF(uplink_interface), 0, 0, NULL, NULL, 0,
     "that device's interface (its archive's name)"},
    {"probe", KVL_CFG_STR, SOFF(uplink_probe), 0, 0, NULL, NULL, 0,
     "the probe target measuring the uplink's loss and RTT"},
    {NULL},
};

/* {agent, device, interface, probe} or [agent, device, interface]. */
static int parse_uplink(kvl_cfg_node_t n, void *target)
{
    kvl_site_t *s = target;
    if (kvl_cfg_is_seq(n)) {
        char **slot[3] = {&s->uplink_agent, &s->uplink_device, &s->uplink_interface};
        if (kvl_cfg_seq_len(n) != 3) {
            return kvl_cfg_error(n, "expected [agent, device, interface] (three names)");
        }
        for (size_t i = 0; i < 3; i++) {
            free(*slot[i]);
            *slot[i] = NULL;
            int rc = kvl_cfg_read_str(kvl_cfg_seq_at(n, i), slot[i]);
            if (rc != 0) {
                return rc;
            }
        }
        return 0;
    }
    if (!kvl_cfg_is_map(n)) {
        return kvl_cfg_error(n, "expected a mapping {agent, device, interface, probe} or a list "
                                "[agent, device, interface]");
    }
    return kvl_cfg_apply(n, uplink_fields, target);
}

static const kvl_cfg_field_t site_fields[] = {
    {"name", KVL_CFG_STR, SOFF(name), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the site's name, as agents report it"},
    {"parent", KVL_CFG_STR, SOFF(parent_name), 0, 0, NULL, NULL, 0,
     "the parent site's name (none: a root)"},
    {"kind", KVL_CFG_ENUM, SOFF(kind), 0, 0, kind_names, NULL, KVL_CFG_REQUIRED,
     "noc, dhq, bhq, minipop, lsgi or sdc"},
    {"label", KVL_CFG_STR, SOFF(label), 0, 0, NULL, NULL, 0, "display name (the name)"},
    {"uplink", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_uplink, 0,
     "the site's link to its parent: {agent, device, interface, probe} (the map's edge)"},
    {"x", KVL_CFG_INT, SOFF(x), 0, 100, NULL, NULL, 0,
     "the map's placement hint: percent of its width"},
    {"y", KVL_CFG_INT, SOFF(y), 0, 100, NULL, NULL, 0,
     "the map's placement hint: percent of its height"},
    {NULL},
};

/* The value node of `key` in entry, or the entry itself (for an error's position). */
static kvl_cfg_node_t at_key(kvl_cfg_node_t entry, const char *key)
{
    kvl_cfg_node_t v;
    return kvl_cfg_map_get(entry, key, &v) ? v : entry;
}

static int check_text(kvl_cfg_node_t entry, const char *key, const char *what, const char *s,
                      size_t max)
{
    char why[256];
    if (s == NULL) {
        return 0;
    }
    if (kvl_name_check(what, s, why, sizeof(why)) != 0) {
        return kvl_cfg_error(at_key(entry, key), "%s", why);
    }
    if (strlen(s) > max) {
        return kvl_cfg_error(at_key(entry, key), "%s is longer than %zu bytes", what, max);
    }
    return 0;
}

/* An uplink's names (file-safe, bounded) and completeness; it needs a parent to lead to. */
static int check_uplink(kvl_cfg_node_t entry, const kvl_site_t *s)
{
    kvl_cfg_node_t at = at_key(entry, "uplink");
    bool any = s->uplink_agent != NULL || s->uplink_device != NULL || s->uplink_interface != NULL ||
               s->uplink_probe != NULL;
    if (!any) {
        return 0;
    }
    if (s->parent_name == NULL) {
        return kvl_cfg_error(at, "site '%s' has no parent: an uplink leads to the parent site",
                             s->name);
    }
    if ((s->uplink_device == NULL) != (s->uplink_interface == NULL)) {
        return kvl_cfg_error(at, "the uplink of site '%s' names %s without %s", s->name,
                             s->uplink_device != NULL ? "a device" : "an interface",
                             s->uplink_device != NULL ? "its interface" : "its device");
    }
    if (s->uplink_device == NULL && s->uplink_probe == NULL) {
        return kvl_cfg_error(at,
                             "the uplink of site '%s' names neither a device and interface "
                             "nor a probe target",
                             s->name);
    }
    if (s->uplink_agent != NULL && strlen(s->uplink_agent) > KVL_AGENT_ID_MAX) {
        return kvl_cfg_error(at, "an agent id is at most %d bytes", KVL_AGENT_ID_MAX);
    }
    static const struct {
        const char *what;
        size_t off;
    } names[] = {{"agent", SOFF(uplink_agent)},
                 {"device", SOFF(uplink_device)},
                 {"interface", SOFF(uplink_interface)},
                 {"probe target", SOFF(uplink_probe)}};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(names); i++) {
        const char *v = *(char *const *)((const char *)s + names[i].off);
        char why[256];
        if (v != NULL && v[0] == '\0') {
            return kvl_cfg_error(at, "uplink: the %s name is empty", names[i].what);
        }
        if (v != NULL && kvl_name_check(names[i].what, v, why, sizeof(why)) != 0) {
            return kvl_cfg_error(at, "uplink: %s", why);
        }
    }
    return 0;
}

/* Parents resolved to indexes, then every chain of parents walked: one longer than the
 * tree has sites is a cycle. */
static int check_tree(kvl_cfg_node_t seq, kvl_sites_cfg_t *c)
{
    for (size_t i = 0; i < c->n; i++) {
        kvl_site_t *s = &c->v[i];
        kvl_cfg_node_t e = kvl_cfg_seq_at(seq, i);
        if (strcmp(s->name, KVL_SITES_UNPLACED) == 0) {
            return kvl_cfg_error(at_key(e, "name"),
                                 "the site name '%s' is reserved (sites agents report that "
                                 "the tree does not name)",
                                 KVL_SITES_UNPLACED);
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(c->v[k].name, s->name) == 0) {
                char where[300];
                kvl_cfg_where(kvl_cfg_seq_at(seq, k), where, sizeof(where));
                return kvl_cfg_error(at_key(e, "name"), "site '%s' is named twice (first at %s)",
                                     s->name, where);
            }
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        kvl_site_t *s = &c->v[i];
        s->parent = KVL_SITE_NONE;
        if (s->parent_name == NULL) {
            continue;
        }
        s->parent = kvl_sites_find(c, s->parent_name);
        if (s->parent == KVL_SITE_NONE) {
            return kvl_cfg_error(at_key(kvl_cfg_seq_at(seq, i), "parent"),
                                 "parent '%s' of site '%s' is not a site of the list",
                                 s->parent_name, s->name);
        }
    }
    for (size_t i = 0; i < c->n; i++) {
        size_t at = c->v[i].parent;
        for (size_t steps = 0; at != KVL_SITE_NONE; steps++) {
            if (at == i || steps > c->n) {
                return kvl_cfg_error(at_key(kvl_cfg_seq_at(seq, i), "parent"),
                                     "site '%s' is its own ancestor (a cycle of parents through "
                                     "'%s')",
                                     c->v[i].name, c->v[i].parent_name);
            }
            at = c->v[at].parent;
        }
    }
    return 0;
}

static int parse_list(kvl_cfg_node_t n, kvl_sites_cfg_t *c)
{
    if (!kvl_cfg_is_seq(n)) {
        return kvl_cfg_error(n, "expected a list of sites ({name, parent, kind}) or "
                                "{file: path}");
    }
    size_t len = kvl_cfg_seq_len(n);
    if (len > KVL_SITES_MAX) {
        return kvl_cfg_error(n, "at most %d sites", KVL_SITES_MAX);
    }
    c->v = calloc(len ? len : 1, sizeof(*c->v));
    if (c->v == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t e = kvl_cfg_seq_at(n, i);
        kvl_site_t *s = &c->v[i];
        c->n = i + 1;
        if (!kvl_cfg_is_map(e)) {
            return kvl_cfg_error(e, "expected a site {name, parent, kind}");
        }
        s->x = s->y = -1;
        int rc = kvl_cfg_apply(e, site_fields, s);
        if (rc == 0) {
            rc = check_text(e, "name", "site", s->name, KVL_SITE_MAX);
        }
        if (rc == 0) {
            rc = check_text(e, "parent", "parent", s->parent_name, KVL_SITE_MAX);
        }
        if (rc == 0 && s->label != NULL && strlen(s->label) > 200) {
            rc = kvl_cfg_error(at_key(e, "label"), "a label is at most 200 bytes");
        }
        if (rc == 0) {
            rc = check_uplink(e, s);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return check_tree(n, c);
}

/* The folder of the file a node is in ("" when it has none), for a relative path. */
static void node_dir(kvl_cfg_node_t n, char *out, size_t len)
{
    char where[PATH_MAX + 64];
    kvl_cfg_where(n, where, sizeof(where));
    /* "file:line:column": drop the two numbers, then the file name */
    for (int k = 0; k < 2; k++) {
        char *colon = strrchr(where, ':');
        if (colon != NULL) {
            *colon = '\0';
        }
    }
    char *slash = strrchr(where, '/');
    if (slash == NULL) {
        out[0] = '\0';
        return;
    }
    slash[1] = '\0';
    size_t wl = strlen(where);
    if (wl >= len) {
        out[0] = '\0'; /* cannot be: a path longer than PATH_MAX was never loaded */
        return;
    }
    memcpy(out, where, wl + 1);
}

static int parse_file(kvl_cfg_node_t n, kvl_sites_cfg_t *c)
{
    kvl_cfg_node_t f;
    if (kvl_cfg_map_len(n) != 1 || !kvl_cfg_map_get(n, "file", &f) || kvl_cfg_scalar(f) == NULL ||
        kvl_cfg_scalar(f)[0] == '\0') {
        return kvl_cfg_error(n, "expected a list of sites or {file: path} alone");
    }
    const char *p = kvl_cfg_scalar(f);
    char dir[PATH_MAX], path[PATH_MAX * 2];
    dir[0] = '\0';
    if (p[0] != '/') {
        node_dir(n, dir, sizeof(dir));
    }
    snprintf(path, sizeof(path), "%s%s", dir, p);
    if ((c->file = strdup(path)) == NULL) {
        return kvl_cfg_error(f, "out of memory");
    }
    char err[1024];
    kvl_cfg_t *y = kvl_cfg_load_file(path, err, sizeof(err));
    if (y == NULL) {
        return kvl_cfg_error(f, "sites file: %s", err);
    }
    int rc = parse_list(kvl_cfg_root(y), c);
    if (rc != 0) {
        rc = kvl_cfg_error(f, "sites file: %s", kvl_cfg_last_error(y));
    }
    kvl_cfg_free(y);
    return rc;
}

int kvl_sites_cfg_parse(kvl_cfg_node_t n, void *target)
{
    kvl_sites_cfg_t **out = target;
    kvl_sites_cfg_free(*out);
    *out = NULL;
    kvl_sites_cfg_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    int rc = kvl_cfg_is_map(n) ? parse_file(n, c) : parse_list(n, c);
    if (rc != 0) {
        kvl_sites_cfg_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

kvl_sites_cfg_t *kvl_sites_cfg_parse_text(const char *name, const char *text, char *err,
                                          size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_string(name, text, err, errlen);
    if (y == NULL) {
        return NULL;
    }
    kvl_sites_cfg_t *c = NULL;
    if (kvl_sites_cfg_parse(kvl_cfg_root(y), &c) != 0) {
        snprintf(err, errlen, "%s", kvl_cfg_last_error(y));
    }
    kvl_cfg_free(y);
    return c;
}
