/*
 * probe_config.h — the `probes:` section of agent.yaml (link measurement), as C structs.
 *
 *   probes:
 *     interval: 60s          # one set of statistics per target per interval (1s .. 1h)
 *     count: 20              # probes per interval, spread evenly (interval / count apart;
 *                            #   at least 1 ms apart)
 *     size: 56               # ICMP data bytes after the 8-byte echo header, like ping -s
 *                            #   (32 .. 8192; the first 32 carry kaaval's cookie)
 *     targets:
 *       - name: dc-core      # unique among the agent's targets: names the archive
 *         address: 10.0.0.1  # numeric IPv4 or IPv6 address
 *         type: icmp         # icmp (echo); stamp, tcp and http are not yet supported
 *     mesh:                  # "every other agent in these sites": the same list in every
 *       sites: [tvm, klm]    #   agent's file; this agent probes each listed agent whose
 *       agents:              #   site is in `sites` (all sites when left out), except the
 *         - {id: blk-tvm-1, site: tvm, address: 10.1.0.2}   # entry with its own id;
 *         - {id: blk-klm-1, site: klm, address: 10.2.0.2}   # target name = the agent id
 *
 * Errors name file:line:column like the rest of the configuration.
 */
#ifndef KVL_PROBE_CONFIG_H
#define KVL_PROBE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

typedef enum {
    KVL_PROBE_ICMP = 0,
} kvl_probe_type_t;

typedef struct kvl_probe_target {
    char *name;
    char *address;
    int type;  /* kvl_probe_type_t */
    bool mesh; /* came from the mesh list */
    kvl_cfg_node_t node; /* for errors while the file is loaded */
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
    kvl_cfg_node_t node; /* the `probes` mapping, 0 when absent */
} kvl_probe_cfg_t;

/* Defaults: 60 s, 20 probes, 56 bytes, no targets. */
void kvl_probe_cfg_init(kvl_probe_cfg_t *p);
/* A KVL_CFG_CUSTOM parser for `probes:` into a kvl_probe_cfg_t. */
int kvl_probe_cfg_parse(kvl_cfg_node_t n, void *target);
/* After the whole file is read: adds the mesh's targets for agent self_id and checks that
 * target names are unique. Returns 0 or KVL_ECONFIG (error recorded at the node). */
int kvl_probe_cfg_finish(kvl_probe_cfg_t *p, const char *self_id);
void kvl_probe_cfg_free(kvl_probe_cfg_t *p);

const char *kvl_probe_type_name(int type);

#endif
