/*
 * probe_config.h — the `probes:` section of agent.yaml (link measurement), as C structs:
 * interval, count, size, the reflector, the clock, targets and the mesh of agents. Every key
 * with its default and bounds is documented in docs/configuration.md (checked against the
 * field tables in probe_config.c by the config_reference test). Errors name
 * file:line:column like the rest of the configuration.
 */
#ifndef KVL_PROBE_CONFIG_H
#define KVL_PROBE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

typedef enum {
    KVL_PROBE_ICMP = 0,
    KVL_PROBE_STAMP,
    KVL_PROBE_TCP,
    KVL_PROBE_HTTP,
    KVL_PROBE_HTTPS,
} kvl_probe_type_t;

typedef struct kvl_probe_target {
    char *name;
    char *address;
    int type;              /* kvl_probe_type_t */
    int64_t port;          /* stamp, tcp; 0 unset */
    char *url;             /* http, https */
    char *ca_file;         /* https: CA bundle (NULL: the system's) */
    int64_t expect_status; /* http, https; 0: any status counts as answered */
    int64_t count;         /* probes per interval; 0: the section's (http: 1) */
    bool mesh;             /* came from the mesh list */
    kvl_cfg_node_t node;   /* for errors while the file is loaded */
} kvl_probe_target_t;

typedef struct kvl_probe_mesh_agent {
    char *id;
    char *site;
    char *address;
    kvl_cfg_node_t node;
} kvl_probe_mesh_agent_t;

typedef struct kvl_probe_cfg {
    int64_t interval_ms;
    int64_t count;
    int64_t size;
    kvl_probe_target_t *targets; /* `targets`, then the mesh's (after kvl_probe_cfg_finish) */
    size_t n_targets;
    char **mesh_sites; /* NULL: every site */
    size_t n_mesh_sites;
    kvl_probe_mesh_agent_t *mesh; /* as written */
    size_t n_mesh;
    int mesh_type;              /* icmp or stamp */
    bool reflector_enabled;     /* true */
    int64_t reflector_port;     /* 862 */
    int clock_sync;             /* kvl_clock_mode_t (stamp.h), kernel */
    int64_t clock_error_us;     /* `clock.error` in microseconds (100) */
    int64_t clock_max_error_us; /* `clock.max_error` in microseconds (10000) */
    int64_t confirm_count;      /* probes confirming a loss (3), reach.h */
    int64_t confirm_spacing_ms; /* between them (250) */
    kvl_cfg_node_t node;        /* the `probes` mapping, 0 when absent */
} kvl_probe_cfg_t;

/* Defaults: 60 s, 20 probes, 56 bytes, no targets, reflector on 862, clock from the kernel,
 * losses confirmed by 3 probes 250 ms apart. */
void kvl_probe_cfg_init(kvl_probe_cfg_t *p);
/* A KVL_CFG_CUSTOM parser for `probes:` into a kvl_probe_cfg_t. */
int kvl_probe_cfg_parse(kvl_cfg_node_t n, void *target);
/* After the whole file is read: adds the mesh's targets for agent self_id and checks that
 * target names are unique. Returns 0 or KVL_ECONFIG (error recorded at the node). */
int kvl_probe_cfg_finish(kvl_probe_cfg_t *p, const char *self_id);
void kvl_probe_cfg_free(kvl_probe_cfg_t *p);

const char *kvl_probe_type_name(int type);
/* A target's probes per interval (its own count, else 1 for http/https, else the
 * section's). */
uint32_t kvl_probe_target_count(const kvl_probe_cfg_t *p, const kvl_probe_target_t *t);

#endif
