/*
 * snmp_config.h — the SNMP part of agent.yaml (credential sets, devices, groups, defaults,
 * interface filters, MIB folders, metric groups) as C structs, read by snmp_config.c.
 *
 * These keys sit at the top level of agent.yaml (agent_config.h has the rest):
 *
 *   credentials:                  # named credential sets, referenced by name below
 *     - name: campus-ro           # SNMP v1 / v2c: a community
 *       version: 2c               # 1 or 2c (2c when left out and no user is given)
 *       community: campus-ro
 *     - name: core-v3             # SNMPv3 (USM); version 3 is implied by `user`
 *       user: kaaval
 *       level: authPriv           # noAuthNoPriv | authNoPriv | authPriv (default: what
 *                                 #   the passwords given allow)
 *       auth_protocol: SHA-256    # MD5 | SHA (SHA-1) | SHA-224 | SHA-256 | SHA-384 | SHA-512
 *       auth_password: "..."      # at least 8 characters (RFC 3414)
 *       priv_protocol: AES        # DES | AES (AES-128) | AES-192 | AES-256 (Blumenthal key
 *                                 #   extension) | AES-192-C | AES-256-C (Reeder/Cisco)
 *       priv_password: "..."      # at least 8 characters
 *       context: ""               # SNMPv3 context name (optional)
 *
 *   defaults:                     # any device setting, applied where nothing closer says
 *     interval: 60s
 *     credentials: campus-ro
 *
 *   devices:
 *     - name: core-rtr1           # unique within the agent (required)
 *       address: 10.1.1.1         # numeric IPv4/IPv6 address (required)
 *       port: 161
 *       version: 2c               # 1 or 2c: the inline alternative to `credentials`
 *       community: public         # (inline; a set's `community` when `credentials` is used)
 *       credentials: core-v3      # a named set; excludes version/community on one entry
 *       interval: 60s             # poll interval = archive step
 *       timeout: 2s               # per try
 *       retries: 1                # resends after a timeout
 *       max_repetitions: 25       # GETBULK size upper bound (adapted per device below it)
 *       max_varbinds: 120         # varbinds per GET between discoveries (1..500): fewer
 *                                 #   requests, less CPU; a device whose answer would be
 *                                 #   too big says tooBig and is asked in halves from then
 *       rediscover: 1h            # full interface re-discovery period; 0: at every poll
 *       interfaces:               # which interfaces are reported (all by default)
 *         include: ["ge-*", "xe-*"]     # fnmatch(3) globs on the interface name (ifName,
 *         exclude: ["*.32767"]          #   else ifDescr), case-insensitive; a single
 *                                       #   string is a one-element list
 *         include_types: [ethernetCsmacd, ieee8023adLag]   # IANAifType names or numbers
 *         exclude_types: [softwareLoopback, 135]
 *         skip_admin_down: true         # ifAdminStatus down(2): not reported
 *
 *   groups:                       # devices sharing settings
 *     - name: block-switches      # the group's name (required, unique)
 *       credentials: campus-ro    # any device setting, for the group's devices
 *       interfaces: {skip_admin_down: true}
 *       devices:                  # the group's devices, as under `devices:` (required)
 *         - {name: bhq-sw1, address: 10.20.1.2}
 *
 *   mib_path: [/usr/share/snmp/mibs, vendor-mibs]   # extra MIB folders (relative paths:
 *                                 #   from the configuration file's folder), searched after
 *                                 #   the project's own MIB folder (below)
 *   metric_groups:                # user-defined groups of OIDs, polled after the interfaces
 *     - name: ups                 # [a-z0-9_-], at most 32, unique, not a built-in name
 *       table: UPS-MIB::upsInputEntry   # the table (or its entry) walked; leave `table` out
 *                                 #   for a group of scalars
 *       instance: upsInputLineIndex     # column naming the rows (string or number);
 *                                 #   default: the row's index ("1", "2.5", ...)
 *       labels:                   # columns carried as labels of each row (at most 4)
 *         - {name: phase, oid: upsInputLineIndex}
 *       metrics:                  # at most 32
 *         - {name: voltage, oid: upsInputVoltage, kind: gauge}
 *         - {name: frames, oid: .1.3.6.1.2.1.33.1.3.3.1.2, kind: counter, scale: 0.1}
 *         - {name: bytes, oid: .1.3.6.1.4.1.9.1.5, scale_by: .1.3.6.1.4.1.9.1.4}
 *
 *   and under defaults, a group or a device:
 *     metric_groups: [host-resources, ucd, ups]   # polled besides the interfaces
 *
 *   max_inflight: 500             # SNMP requests in flight at once, all devices together
 *
 * Metric groups. An OID is numeric (".1.3.6.1...") or a MIB name, "MODULE::object" or a bare
 * "object", optionally with an instance suffix ("laLoadInt.1"); names are resolved once, when
 * the file is read, with net-snmp's MIB parser over the MIB folders only (never the
 * system's default MIB path or module list), which is then freed; a file without names
 * loads no MIB. The MIB folders: first the project's own, the first of `mibs/` beside this
 * file, the installed <prefix>/share/kaaval/mibs and the source tree's mibs/ the agent was
 * built from that holds KAAVAL-MIB.txt (the source tree's if none does), then `mib_path`. Modules
 * import the IETF base modules (SNMPv2-SMI, SNMPv2-TC, ...): Debian ships none, so put a folder
 * holding them on the path (e.g. snmp-mibs-downloader's /usr/share/snmp/mibs/ietf). In a table
 * group each metric's `oid` (and `instance`, label and `scale_by` OIDs) is a column of the table,
 * given without an instance. In a group of scalars each `oid` is what a GET asks: a numeric OID
 * exactly as written, a MIB name as written if it has an instance suffix, else with ".0" added.
 * Metric names: a-z, 0-9, _, at most 19 characters (they name RRD data sources), unique in their
 * group. `kind`: gauge (default) or counter (wraps and resets handled, per row and metric). `scale`
 * (default 1) multiplies every value, `scale_by` (tables) multiplies it by another column of the
 * row. A metric is reported as a real number when its scale is not a whole number or `real: true`;
 * an integer gauge whose value is negative is unknown, so give `real: true` to gauges that can be
 * negative. OCTET STRING values holding a number ("0.15") are read as numbers. A device lacking a
 * group is logged once and not asked again until its next interface discovery (`rediscover`). A
 * level's `metric_groups` list replaces what it inherits.
 *
 * Built-in groups (numeric OIDs, no MIB file needed):
 *   hr-cpu      HOST-RESOURCES-MIB hrProcessorTable, one row per processor (index):
 *               load (hrProcessorLoad, %)
 *   hr-storage  hrStorageTable, one row per storage area named by hrStorageDescr, label
 *               `type` (ram, virtualMemory, fixedDisk, ... from hrStorageType): size_bytes
 *               and used_bytes (hrStorageSize/Used x hrStorageAllocationUnits),
 *               alloc_failures (counter)
 *   hr-system   scalars: processes (hrSystemProcesses), users (hrSystemNumUsers),
 *               memory_bytes (hrMemorySize x 1024)
 *   host-resources   stands for hr-cpu, hr-storage and hr-system
 *   ucd         UCD-SNMP-MIB scalars: load1, load5, load15 (laLoadInt.1-3 x 0.01, reals);
 *               mem_total_bytes, mem_avail_bytes, mem_buffer_bytes, mem_cached_bytes,
 *               swap_total_bytes, swap_avail_bytes (memTotalReal, memAvailReal, memBuffer,
 *               memCached, memTotalSwap, memAvailSwap x 1024); counters cpu_user,
 *               cpu_system, cpu_idle, cpu_wait (ssCpuRawUser/System/Idle/Wait, ticks)
 * Each row of a table group is an instance (archived per row, label `index` plus the
 * group's labels); a group of scalars is one instance named "".
 *
 * Precedence, closest wins: device > group > defaults > built-in default. Each setting is
 * inherited on its own; inside `interfaces`, each of its five keys likewise. A level that
 * sets `credentials` replaces an inherited inline version/community and the other way
 * round; one entry may not set both. A device's interface name patterns see the name
 * kaaval archives it under, before any "#<ifIndex>" suffix for duplicates.
 *
 * Names of ifType: other(1) ethernetCsmacd(6) iso88023Csmacd(7) fddi(15)
 * propPointToPointSerial(22) ppp(23) softwareLoopback(24) frameRelay(32) atm(37) sonet(39)
 * aal5(49) propVirtual(53) fastEther(62) ieee80211(71) gigabitEthernet(117) tunnel(131)
 * l2vlan(135) l3ipvlan(136) mplsTunnel(150) ieee8023adLag(161) mpls(166) bridge(209).
 *
 * Secrets (community, passwords) are kept here and handed to the SNMP layer; nothing in the
 * agent prints them, and configuration errors name the offending node, never its value
 * for those keys. Parsing lives in snmp_config.c; errors name file:line:column.
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

/* Canonical names, for log lines and --check-config: "2c", "authPriv", "SHA-256", "AES". */
const char *kvl_snmp_version_name(int version);
const char *kvl_usm_level_name(int level);
const char *kvl_usm_auth_name(int auth);
const char *kvl_usm_priv_name(int priv);

/* An IANAifType name known to the configuration ("ethernetCsmacd"), or NULL. */
const char *kvl_iftype_name(uint32_t type);

#endif
