/*
 * agent_config.h — the agent's configuration (agent.yaml) as C structs: the top level.
 *
 * The reference of every key is docs/configuration.md (checked against the field tables by
 * the config_reference test). This file holds the top-level keys (id, site, log_level) and
 * hands each other key to the room that owns it: the shipping keys (collectors, mode,
 * batching, spool, tls/insecure) to ship/ship_config.[ch], the SNMP keys (credentials,
 * defaults, devices, groups, max_inflight, mib_path, metric_groups) to
 * snmp/snmp_config.[ch], `probes:` to probe/probe_config.[ch], `traps:` to
 * trap/trap_config.[ch], `capture:` to capture/capture_config.[ch]. Errors name
 * file:line:column; secrets are never printed.
 */
#ifndef KVL_AGENT_CONFIG_H
#define KVL_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capture_config.h"
#include "probe_config.h"
#include "ship_config.h"
#include "snmp_config.h"
#include "trap_config.h"

#define KVL_AGENT_CFG_KEYS 24

typedef struct kvl_agent_cfg {
    char *id;
    char *site;
    int log_level;
    kvl_ship_cfg_t ship;       /* collectors, batching, spool, tls (ship/ship_config.h) */
    kvl_snmp_cfg_t snmp;       /* the SNMP keys (snmp/snmp_config.h) */
    kvl_probe_cfg_t probes;    /* `probes:` (probe/probe_config.h); no targets when absent */
    kvl_trap_cfg_t traps;      /* `traps:` (trap/trap_config.h); on 0.0.0.0:162 when absent */
    kvl_capture_cfg_t capture; /* `capture:` (capture/capture_config.h); off when absent */
    /* A digest of each top-level key's text as the file wrote it (0: absent), in the order
     * of kvl_agent_cfg_key; what a reload compares to know which parts changed. */
    uint64_t key_digest[KVL_AGENT_CFG_KEYS];
} kvl_agent_cfg_t;

/* The top-level keys of agent.yaml (index < KVL_AGENT_CFG_KEYS), NULL past the last. */
const char *kvl_agent_cfg_key(size_t i);
/* Whether top-level key `key` is written differently in a and b (added, removed, changed;
 * the same text in another layout counts as the same). */
bool kvl_agent_cfg_key_changed(const kvl_agent_cfg_t *a, const kvl_agent_cfg_t *b, const char *key);

/* Loads and checks a configuration file. Returns NULL and writes the first error
 * ("file:line:column: what was expected") into err. */
kvl_agent_cfg_t *kvl_agent_cfg_load(const char *path, char *err, size_t errlen);
/* The same for a run that ships nothing (--poll-once, --probe-once): collectors and TLS may
 * be left out (ship_config.h); then ship.n_collectors is 0. */
kvl_agent_cfg_t *kvl_agent_cfg_load_standalone(const char *path, char *err, size_t errlen);
/* Same from text (for tests); `name` stands for the file name in errors. */
kvl_agent_cfg_t *kvl_agent_cfg_parse(const char *name, const char *text, char *err, size_t errlen);
kvl_agent_cfg_t *kvl_agent_cfg_parse_standalone(const char *name, const char *text, char *err,
                                                size_t errlen);
void kvl_agent_cfg_free(kvl_agent_cfg_t *c);

#endif
