/*
 * agent_config.h — the agent's configuration (agent.yaml) as C structs.
 *
 *   id: blk-tvm-north-01          # this agent's identity (required)
 *   site: tvm-north               # where it stands (required)
 *   collector: 127.0.0.1:5140     # host:port of the collector (required)
 *   log_level: info
 *   flush_interval: 1s            # how long samples wait to be batched
 *   max_queue: 100000             # unacknowledged batches kept in memory
 *   defaults:                     # any device setting, applied where a device omits it
 *     interval: 60s
 *   devices:
 *     - name: core-rtr1
 *       address: 10.1.1.1
 *       port: 161
 *       version: 2c               # 1 or 2c
 *       community: public
 *       interval: 60s             # poll interval = archive step
 *       timeout: 2s
 *       retries: 1
 *       max_repetitions: 25       # GETBULK size
 *
 * Parsing lives in agent_config.c; errors name file:line:column.
 */
#ifndef KVL_AGENT_CONFIG_H
#define KVL_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    KVL_SNMP_V1 = 0,
    KVL_SNMP_V2C = 1,
} kvl_snmp_version_t;

typedef struct kvl_device_cfg {
    char *name;
    char *address;
    int64_t port;
    int version; /* kvl_snmp_version_t */
    char *community;
    int64_t interval_ms;
    int64_t timeout_ms;
    int64_t retries;
    int64_t max_repetitions;
} kvl_device_cfg_t;

typedef struct kvl_agent_cfg {
    char *id;
    char *site;
    char *collector; /* "host:port" as written */
    char collector_host[256];
    uint16_t collector_port;
    int log_level;
    int64_t flush_interval_ms;
    int64_t max_queue;
    int64_t reconnect_max_ms;
    kvl_device_cfg_t *devices;
    size_t n_devices;
} kvl_agent_cfg_t;

/* Loads and checks a configuration file. Returns NULL and writes the first error
 * ("file:line:column: what was expected") into err. */
kvl_agent_cfg_t *kvl_agent_cfg_load(const char *path, char *err, size_t errlen);
/* Same from text (for tests); `name` stands for the file name in errors. */
kvl_agent_cfg_t *kvl_agent_cfg_parse(const char *name, const char *text, char *err, size_t errlen);
void kvl_agent_cfg_free(kvl_agent_cfg_t *c);

#endif
