/*
 * capture_config.h — the `capture:` section of agent.yaml (passive traffic analysis,
 * capture.h) as a C struct: the interfaces or a pcap file, the BPF filter, snap length,
 * promiscuous mode, sampling, the local networks and the bounds of the flow table, the
 * handshake ports and the top-N sketches. Every key with its default and bounds is
 * documented in docs/configuration.md (checked against the field table in capture_config.c
 * by the config_reference test); errors name file:line:column. Without the section nothing
 * is captured (`enabled` false).
 */
#ifndef KVL_CAPTURE_CONFIG_H
#define KVL_CAPTURE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "flows.h"

#define KVL_CAPTURE_MAX_IFACES 16
#define KVL_CAPTURE_MAX_LOCAL 256

typedef struct kvl_capture_cfg {
    bool enabled;      /* the section is present */
    char **interfaces; /* `interfaces`: names as the host knows them */
    size_t n_interfaces;
    char *file;          /* `file`: a pcap file read instead (tests, forensics) */
    char *filter;        /* `filter`: BPF expression (NULL: everything) */
    int64_t snaplen;     /* bytes kept of each frame (1600) */
    bool promiscuous;    /* (true) */
    int64_t sampling;    /* 1 in N frames counted (1: all) */
    kvl_prefix_t *local; /* `local_networks` */
    size_t n_local;
    int64_t max_flows;         /* flow table capacity (65536) */
    int64_t top_n;             /* entries reported per list (10) */
    int64_t sketch_size;       /* counters per top-N sketch (1024, >= top_n) */
    int64_t handshake_ports;   /* server ports with handshake times of their own (64) */
    int64_t idle_timeout_ms;   /* (30 s) */
    int64_t active_timeout_ms; /* (300 s, >= idle_timeout) */
    int64_t interval_ms;       /* figures per interval (60 s) */
    int64_t buffer_mb;         /* the kernel ring per interface, MiB (32) */
    bool classify;             /* applications by nDPI (true) */
    int64_t classify_packets;  /* packets of a flow before nDPI gives up (32) */
    int64_t classify_flows;    /* flows classified at once (4096) */
    kvl_cfg_node_t node;       /* the `capture` mapping, 0 when absent */
} kvl_capture_cfg_t;

/* Defaults, not enabled. */
void kvl_capture_cfg_init(kvl_capture_cfg_t *c);
/* A KVL_CFG_CUSTOM parser for `capture:` into a kvl_capture_cfg_t. */
int kvl_capture_cfg_parse(kvl_cfg_node_t n, void *target);
/* The flow table's settings from c (pointing into c's local networks). */
void kvl_capture_cfg_flows(const kvl_capture_cfg_t *c, kvl_flows_cfg_t *out);
/* Frees what c owns (not c itself). */
void kvl_capture_cfg_free(kvl_capture_cfg_t *c);

#endif
