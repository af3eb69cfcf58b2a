/*
 * snmp_config.h — the SNMP part of agent.yaml (credential sets, devices, groups, defaults,
 * interface filters, MIB folders, metric groups) as C structs, read by snmp_config.c.
 *
 * These keys sit at the top level of agent.yaml; agent_config.c hands them over. Every key,
 * its default and bounds, the metric group rules, the built-in groups, the precedence of
 * device > group > defaults and the ifType names are documented in docs/configuration.md
 * (the config_reference test checks it against the field tables in snmp_config.c).
 * Secrets (community, passwords) are kept here and handed to the SNMP layer; nothing in the
 * agent prints them, and errors name the offending node, never its value.
 */
#ifndef KVL_SNMP_CONFIG_H
#define KVL_SNMP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "snmp_types.h"
#include "wire.h" /* kvl_family_t, kvl_kind_t */

/* Which interfaces of a device are reported. Empty include lists include everything. */
typedef struct kvl_if_filter {
    char **include; /* fnmatch globs on the interface name */
    size_t n_include;
    char **exclude;
    size_t n_exclude;
    uint32_t *include_types; /* ifType numbers */
    size_t n_include_types;
    uint32_t *exclude_types;
    size_t n_exclude_types;
    bool skip_admin_down;
} kvl_if_filter_t;

/* --- metric groups (see the reference above) --- */

#define KVL_MG_OID_MAX 32     /* sub-identifiers of an OID in a group definition */
#define KVL_MG_METRIC_LEN 19  /* longest metric name: an RRD data source name */
#define KVL_MG_NAME_LEN 32    /* longest group name */
#define KVL_MG_MAX_METRICS 32 /* metrics per group */
#define KVL_MG_MAX_LABELS 4   /* label columns per group */

typedef struct kvl_mg_oid {
    uint32_t sub[KVL_MG_OID_MAX];
    size_t len;
} kvl_mg_oid_t;

typedef struct kvl_mg_metric {
    char *name;
    kvl_mg_oid_t oid; /* table: the column; scalars: the instance GET asks for */
    int kind;         /* kvl_kind_t */
    double scale;     /* 1 unless given */
    bool real;        /* reported as a real: a scale that is not a whole number, or real: true */
    int col;          /* table: index into the group's cols */
    int scale_by;     /* table: index into cols of a column multiplying the value, or -1 */
} kvl_mg_metric_t;

typedef struct kvl_mg_label {
    char *name;
    int col; /* index into the group's cols */
} kvl_mg_label_t;

typedef struct kvl_metric_group {
    char *name;
    bool builtin;
    bool table;
    kvl_mg_oid_t entry; /* table: the table or entry OID every column lies under */
    int instance_col;   /* table: index into cols of the column naming rows, -1: the index */
    kvl_mg_metric_t *metrics;
    size_t n_metrics;
    kvl_mg_label_t *labels;
    size_t n_labels;
    kvl_mg_oid_t *cols; /* table: every column walked, each once */
    size_t n_cols;
    /* The family reported for each instance (name = the group's name); owned here. */
    kvl_family_t family;
    const char **family_metrics;
    kvl_kind_t *family_kinds;
    bool *family_reals;
} kvl_metric_group_t;

#define KVL_MAX_VARBINDS 500

typedef struct kvl_device_cfg {
    char *name;
    char *address;
    int64_t port;
    int version;     /* kvl_snmp_version_t in effect (from the credentials set if any) */
    char *community; /* in effect for v1/v2c; "" for v3; never logged */
    const kvl_credentials_t *credentials; /* the named set in effect, NULL when inline */
    int64_t interval_ms;
    int64_t timeout_ms;
    int64_t retries;
    int64_t max_repetitions;
    int64_t max_varbinds;  /* per GET between discoveries (walks stay at 60 per response) */
    int64_t rediscover_ms; /* 0: walk everything at every poll */
    bool neighbours;       /* LLDP/CDP tables walked at each discovery (nbrwalk.h) */
    kvl_if_filter_t ifs;
    const kvl_metric_group_t **mgroups; /* into kvl_snmp_cfg_t.metric_groups */
    size_t n_mgroups;
} kvl_device_cfg_t;

/* Everything SNMP in agent.yaml. */
typedef struct kvl_snmp_cfg {
    int64_t max_inflight; /* top-level `max_inflight` (500) */
    kvl_credentials_t *credentials;
    size_t n_credentials;
    kvl_device_cfg_t *devices; /* `devices` first, then each group's, in file order */
    size_t n_devices;
    char **mib_path; /* every MIB folder searched, in order (the project's own first) */
    size_t n_mib_path;
    kvl_metric_group_t *metric_groups; /* the built-in ones first, then `metric_groups` */
    size_t n_metric_groups;
    /* The top-level keys' nodes, remembered by kvl_snmp_cfg_keep while the file is read and
     * read by kvl_snmp_cfg_finish (index 0: the key is absent). */
    struct {
        kvl_cfg_node_t credentials;
        kvl_cfg_node_t defaults;
        kvl_cfg_node_t devices;
        kvl_cfg_node_t groups;
        kvl_cfg_node_t mib_path;
        kvl_cfg_node_t metric_groups;
    } nodes;
} kvl_snmp_cfg_t;

/* Defaults: nothing configured, max_inflight 500. */
void kvl_snmp_cfg_init(kvl_snmp_cfg_t *s);
/* A KVL_CFG_CUSTOM parser for the top-level SNMP keys: stores the node in the
 * kvl_cfg_node_t target (one of s->nodes) for kvl_snmp_cfg_finish. Never fails. */
int kvl_snmp_cfg_keep(kvl_cfg_node_t n, void *target);
/* After the top level is applied: reads the remembered keys (credential sets, MIB folders,
 * metric groups, defaults, devices, groups, in that order); relative `mib_path` folders are
 * taken from base_dir, the configuration file's folder. Returns 0 or KVL_ECONFIG (the first
 * error recorded at its node). What was read is freed by kvl_snmp_cfg_free, also on error. */
int kvl_snmp_cfg_finish(kvl_snmp_cfg_t *s, const char *base_dir);
/* Frees what s owns (not s itself); s is left as after kvl_snmp_cfg_init but zeroed. */
void kvl_snmp_cfg_free(kvl_snmp_cfg_t *s);

/* Whether two devices are polled the same way: every setting in effect equal (address,
 * credentials by content, timing, filters, metric groups by definition). A reload keeps the
 * poller's state of a device whose settings are the same (poller.h). */
bool kvl_device_cfg_same(const kvl_device_cfg_t *a, const kvl_device_cfg_t *b);

/* Canonical names, for log lines and --check-config: "2c", "authPriv", "SHA-256", "AES". */
const char *kvl_snmp_version_name(int version);
const char *kvl_usm_level_name(int level);
const char *kvl_usm_auth_name(int auth);
const char *kvl_usm_priv_name(int priv);

/* An IANAifType name known to the configuration ("ethernetCsmacd"), or NULL. */
const char *kvl_iftype_name(uint32_t type);

#endif
