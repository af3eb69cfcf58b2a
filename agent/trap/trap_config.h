/*
 * trap_config.h — the `traps:` section of agent.yaml (the trap receiver, trap_rx.h) as a C
 * struct: the listening address, the credential sets accepted besides each device's own,
 * the SNMPv3 engine IDs and the rate bound per device. Every key with its default and bounds
 * is documented in docs/configuration.md (checked against the field table in trap_config.c
 * by the config_reference test); errors name file:line:column like the rest of the
 * configuration. Without the section, kvl_trap_cfg_init's defaults stand
 * (KVL_TRAP_DEFAULT_LISTEN); `enabled` is false only when the file turns traps off.
 */
#ifndef KVL_TRAP_CONFIG_H
#define KVL_TRAP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "snmp_config.h"

#define KVL_TRAP_DEFAULT_LISTEN "0.0.0.0:162"
#define KVL_TRAP_ENGINE_ID_MAX 32 /* octets of an SNMP engine ID (RFC 3411: 5..32) */
#define KVL_TRAP_MAX_ENGINE_IDS 64

typedef struct kvl_trap_engine_id {
    uint8_t id[KVL_TRAP_ENGINE_ID_MAX];
    size_t len;
} kvl_trap_engine_id_t;

typedef struct kvl_trap_cfg {
    bool enabled;      /* false: `listen: off` */
    char *listen;      /* "address:port" as written (NULL: the default) */
    char host[64];     /* numeric IPv4 or IPv6 address */
    uint16_t port;     /* 162 */
    char **cred_names; /* `credentials`: sets accepted from every configured device */
    size_t n_cred_names;
    const kvl_credentials_t **creds;  /* the same, resolved by kvl_trap_cfg_finish */
    kvl_trap_engine_id_t engine_id;   /* this agent's (informs); derived from its id unless set */
    kvl_trap_engine_id_t *engine_ids; /* `engine_ids`: v3 trap senders' engine IDs */
    size_t n_engine_ids;
    int64_t max_per_second; /* traps taken per device per second, beyond them dropped (100) */
    kvl_cfg_node_t node;    /* the `traps` mapping, 0 when absent */
    kvl_cfg_node_t creds_node;
} kvl_trap_cfg_t;

/* Defaults: enabled on 0.0.0.0:162, no extra credential sets, 100 traps per second. */
void kvl_trap_cfg_init(kvl_trap_cfg_t *t);
/* A KVL_CFG_CUSTOM parser for `traps:` into a kvl_trap_cfg_t. */
int kvl_trap_cfg_parse(kvl_cfg_node_t n, void *target);
/* After the SNMP keys are read: resolves `credentials` against snmp's credential sets and
 * derives the engine ID from agent_id unless one was given. Returns 0 or KVL_ECONFIG (the
 * error recorded at its node). */
int kvl_trap_cfg_finish(kvl_trap_cfg_t *t, const kvl_snmp_cfg_t *snmp, const char *agent_id);
/* Frees what t owns (not t itself). */
void kvl_trap_cfg_free(kvl_trap_cfg_t *t);

/* Parses an engine ID written in hex ("0x8000...", "80:00:...", or plain hex digits): 5 to
 * 32 octets. Returns 0 or KVL_EINVAL. */
int kvl_trap_engine_id_parse(const char *s, kvl_trap_engine_id_t *out);
/* The engine ID an agent takes by default: net-snmp's enterprise (8072) with the format
 * "octets" (5) followed by 8 octets of a hash of its id, the same after every restart. */
void kvl_trap_engine_id_default(const char *agent_id, kvl_trap_engine_id_t *out);

#endif
