/*
 * sites_config.h — the site tree (`sites:` in collector.yaml, inline or from the file it
 * names) as C structs: every site with its parent, kind, label, uplink (the map's edge,
 * map.h) and placement hints. The keys, what they mean and what is refused at
 * file:line:column (at the collector's start and by --check-config) are documented in
 * docs/configuration.md ("sites:"). Sites that agents report but the tree does not name are
 * not an error: the board puts them under the synthetic root KVL_SITES_UNPLACED (a name the
 * list may not use).
 */
#ifndef KVL_SITES_CONFIG_H
#define KVL_SITES_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

#define KVL_SITES_MAX 100000
#define KVL_SITES_UNPLACED "unplaced"
#define KVL_SITE_NONE SIZE_MAX

typedef enum {
    KVL_SITE_NOC = 0,
    KVL_SITE_DHQ,
    KVL_SITE_BHQ,
    KVL_SITE_MINIPOP,
    KVL_SITE_LSGI,
    KVL_SITE_SDC,
    KVL_SITE_KINDS
} kvl_site_kind_t;

typedef struct kvl_site {
    char *name;
    char *parent_name; /* NULL: a root */
    size_t parent;     /* index into the tree's sites, or KVL_SITE_NONE for a root */
    int kind;          /* kvl_site_kind_t */
    char *label;       /* display name; NULL: the name */
    /* The uplink: all NULL when none is given. device and interface come together; agent
     * NULL: whichever agent reports that device; probe: a probe target's name (a link of
     * /api/v1/links) measuring the uplink, NULL: found by the sites of agents and targets. */
    char *uplink_agent;
    char *uplink_device;
    char *uplink_interface;
    char *uplink_probe;
    int64_t x, y; /* placement hints on the map, percent 0..100; -1: none */
} kvl_site_t;

typedef struct kvl_sites_cfg {
    kvl_site_t *v; /* in file order */
    size_t n;
    char *file; /* the file it came from with `{file: ...}`, else NULL */
} kvl_sites_cfg_t;

/* A KVL_CFG_CUSTOM parser for `sites:`; target is a kvl_sites_cfg_t ** (allocated here,
 * a previous one freed). Returns 0 or KVL_ECONFIG with the error recorded at the node
 * (for the file form: "collector.yaml:L:C: sites file: sites.yaml:L:C: ..."). */
int kvl_sites_cfg_parse(kvl_cfg_node_t n, void *target);

/* The same from a YAML text holding the list (or the {file:} mapping) at its top (tests,
 * fuzzing). Returns NULL with "name:line:column: message" in err. */
kvl_sites_cfg_t *kvl_sites_cfg_parse_text(const char *name, const char *text, char *err,
                                          size_t errlen);

void kvl_sites_cfg_free(kvl_sites_cfg_t *c);

/* The index of a site by name, or KVL_SITE_NONE. Linear: for the board's start, not per
 * request (the board keeps its own index). c may be NULL. */
size_t kvl_sites_find(const kvl_sites_cfg_t *c, const char *name);

/* "noc", "dhq", ... ; "?" out of range. */
const char *kvl_site_kind_name(int kind);

#endif
