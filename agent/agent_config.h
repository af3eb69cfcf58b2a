/*
 * agent_config.h — the agent's configuration (agent.yaml) as C structs.
 *
 * Configuration reference
 * -----------------------
 *   id: blk-tvm-north-01          # this agent's identity (required)
 *   site: tvm-north               # where it stands (required)
 *   collector: 127.0.0.1:5140     # host:port of the collector (required)
 *   log_level: info               # error, warn, info or debug
 *   flush_interval: 1s            # how long samples wait to be batched
 *   max_queue: 100000             # unacknowledged batches kept in memory
 *   reconnect_max: 30s            # longest wait between connection attempts
 *   max_inflight: 500             # SNMP requests in flight at once, all devices together
 *
 *   spool:                        # batches on disk until the collector acknowledges them
 *     dir: /var/lib/kaaval/spool  # must exist, writable by the agent (not created)
 *     max_size: 2GiB              # bound of the files (bytes, KiB, MiB, GiB or TiB; at
 *                                 #   least 16MiB); when full the oldest batches are
 *                                 #   dropped, counted and logged. 2 GiB holds weeks of a
 *                                 #   block HQ agent (~5,000 series at 60 s, ~100 MB a day)
 *     sync_interval: 1s           # how often written batches are forced to disk: a power
 *                                 #   cut loses at most this much; 0: every batch (slow)
 *   tls:                          # mutual TLS to the collector (or `insecure: true`,
 *     ca: /etc/kaaval/ca.crt      #   plain TCP, logged as a warning; one is required)
 *     cert: /etc/kaaval/blk-tvm-north-01.crt   # subject CN must equal `id`
 *     key: /etc/kaaval/blk-tvm-north-01.key    # packaging/kaaval-certs.sh makes these
 *     server_name: noc-col-1      # optional: the name the collector's certificate must
 *                                 #   carry (default: the host or IP of `collector:`)
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
 * for those keys. Parsing lives in agent_config.c; errors name file:line:column.
 */
#ifndef KVL_AGENT_CONFIG_H
#define KVL_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tls_config.h"

typedef enum {
    KVL_SNMP_V1 = 0,
    KVL_SNMP_V2C = 1,
    KVL_SNMP_V3 = 2,
} kvl_snmp_version_t;

/* USM security level. */
typedef enum {
    KVL_USM_NOAUTH = 0,     /* noAuthNoPriv */
    KVL_USM_AUTHNOPRIV = 1, /* authNoPriv */
    KVL_USM_AUTHPRIV = 2,   /* authPriv */
} kvl_usm_level_t;

typedef enum {
    KVL_USM_AUTH_NONE = 0,
    KVL_USM_AUTH_MD5,
    KVL_USM_AUTH_SHA1,
    KVL_USM_AUTH_SHA224,
    KVL_USM_AUTH_SHA256,
    KVL_USM_AUTH_SHA384,
    KVL_USM_AUTH_SHA512,
} kvl_usm_auth_t;

typedef enum {
    KVL_USM_PRIV_NONE = 0,
    KVL_USM_PRIV_DES,
    KVL_USM_PRIV_AES128,
    KVL_USM_PRIV_AES192,  /* draft-blumenthal-aes-usm-04 key extension */
    KVL_USM_PRIV_AES256,  /* likewise */
    KVL_USM_PRIV_AES192C, /* draft-reeder (Cisco) key extension */
    KVL_USM_PRIV_AES256C, /* likewise */
} kvl_usm_priv_t;

/* One named credential set. v1/v2c: community; v3: the USM fields. */
typedef struct kvl_credentials {
    char *name;
    int version;     /* kvl_snmp_version_t */
    char *community; /* v1/v2c; never logged */
    char *user;      /* v3 */
    int level;       /* kvl_usm_level_t */
    int auth_protocol;
    char *auth_password; /* never logged */
    int priv_protocol;
    char *priv_password; /* never logged */
    char *context;       /* "" by default */
} kvl_credentials_t;

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
    int64_t rediscover_ms; /* 0: walk everything at every poll */
    kvl_if_filter_t ifs;
} kvl_device_cfg_t;

/* The disk spool (agent/spool.h). */
typedef struct kvl_spool_cfg {
    char *dir;
    int64_t max_bytes;
    int64_t sync_interval_ms;
} kvl_spool_cfg_t;

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
    int64_t max_inflight;
    kvl_spool_cfg_t spool;
    kvl_tls_cfg_t tls; /* `tls:` or `insecure: true` (see tls_config.h) */
    kvl_credentials_t *credentials;
    size_t n_credentials;
    kvl_device_cfg_t *devices; /* `devices` first, then each group's, in file order */
    size_t n_devices;
} kvl_agent_cfg_t;

/* Loads and checks a configuration file. Returns NULL and writes the first error
 * ("file:line:column: what was expected") into err. */
kvl_agent_cfg_t *kvl_agent_cfg_load(const char *path, char *err, size_t errlen);
/* Same from text (for tests); `name` stands for the file name in errors. */
kvl_agent_cfg_t *kvl_agent_cfg_parse(const char *name, const char *text, char *err, size_t errlen);
void kvl_agent_cfg_free(kvl_agent_cfg_t *c);

/* Canonical names, for log lines and --check-config: "2c", "authPriv", "SHA-256", "AES". */
const char *kvl_snmp_version_name(int version);
const char *kvl_usm_level_name(int level);
const char *kvl_usm_auth_name(int auth);
const char *kvl_usm_priv_name(int priv);

/* An IANAifType name known to the configuration ("ethernetCsmacd"), or NULL. */
const char *kvl_iftype_name(uint32_t type);

#endif
