/*
 * probe_config.h — the `probes:` section of agent.yaml (link measurement), as C structs.
 *
 *   probes:
 *     interval: 60s          # one set of statistics per target per interval (1s .. 1h)
 *     count: 20              # probes per interval, spread evenly (interval / count apart;
 *                            #   at least 1 ms apart); http targets default to 1
 *     size: 56               # ICMP data bytes after the 8-byte echo header, like ping -s
 *                            #   (32 .. 8192; the first 32 carry kaaval's cookie); STAMP
 *                            #   packets are 44 octets + max(0, size - 44) of padding
 *     reflector:             # every agent answers STAMP (and TWAMP-Light) test packets
 *       enabled: true        #   on this UDP port, IPv4 and IPv6; ports below 1024 need
 *       port: 862            #   root or CAP_NET_BIND_SERVICE (else one log line, and the
 *                            #   agent runs on without a reflector)
 *     clock:                 # the synchronisation STAMP's one-way delays rely on
 *       sync: kernel         # kernel: ntp_adjtime() (STA_UNSYNC clear, maxerror within
 *                            #   max_error; chrony, ntpd, systemd-timesyncd set these);
 *                            # assumed: synchronised with `error` by means the kernel does
 *                            #   not see (PTP via phc2sys; namespaces of one host);
 *                            # none: never report one-way delays
 *       error: 100us         # the error claimed when sync is `assumed`
 *       max_error: 10ms      # one-way figures only when both ends' errors sum to at most
 *     targets:
 *       - name: dc-core      # unique among the agent's targets: names the archive
 *         address: 10.0.0.1  # numeric IPv4 or IPv6 address (not for http/https)
 *         type: icmp         # icmp (echo), stamp (RFC 8762 session-sender to a STAMP or
 *                            #   TWAMP-Light reflector), tcp (connect time), http, https
 *         port: 862          # stamp: the reflector's UDP port (862); tcp: required
 *         url: https://dc/ok # http/https only: the URL fetched (GET), instead of address
 *         expect_status: 200 # http/https, optional: other status codes count as failed
 *         ca_file: /etc/kaaval/dc-ca.pem  # https, optional: CAs trusted (the system's)
 *         count: 1           # optional: this target's probes per interval
 *     mesh:                  # "every other agent in these sites": the same list in every
 *       type: stamp          #   agent's file; this agent probes each listed agent whose
 *       sites: [tvm, klm]    #   site is in `sites` (all sites when left out), except the
 *       agents:              #   entry with its own id; target name = the agent id; type
 *         - {id: blk-tvm-1, site: tvm, address: 10.1.0.2}   # icmp (default) or stamp (to
 *         - {id: blk-klm-1, site: klm, address: 10.2.0.2}   # the other agents' reflectors
 *                                                           # on reflector.port)
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
    KVL_PROBE_STAMP,
    KVL_PROBE_TCP,
    KVL_PROBE_HTTP,
    KVL_PROBE_HTTPS,
} kvl_probe_type_t;

typedef struct kvl_probe_target {
    char *name;
    char *address;
    int type;  /* kvl_probe_type_t */
    int64_t port;          /* stamp, tcp; 0 unset */
    char *url;             /* http, https */
    char *ca_file;         /* https: CA bundle (NULL: the system's) */
    int64_t expect_status; /* http, https; 0: any status counts as answered */
    int64_t count;         /* probes per interval; 0: the section's (http: 1) */
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
    int mesh_type; /* icmp or stamp */
    bool reflector_enabled; /* true */
    int64_t reflector_port; /* 862 */
    int clock_sync;         /* kvl_clock_mode_t (stamp.h), kernel */
    int64_t clock_error_us;  /* `clock.error` in microseconds (100) */
    int64_t clock_max_error_us;    /* `clock.max_error` in microseconds (10000) */
    kvl_cfg_node_t node; /* the `probes` mapping, 0 when absent */
} kvl_probe_cfg_t;

/* Defaults: 60 s, 20 probes, 56 bytes, no targets, reflector on 862, clock from the kernel. */
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
