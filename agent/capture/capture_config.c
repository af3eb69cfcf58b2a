/*
 * capture_config.c — parsing and checks of the `capture:` section (see capture_config.h).
 *
 * One field table; the lists (interfaces, local_networks) and the filter have parsers of
 * their own; the checks between keys (interfaces or file, sketch_size >= top_n,
 * active_timeout >= idle_timeout) run after the table, each error at the key it names. The
 * BPF filter is compiled once here (pcapsrc.c, libpcap) so a typo fails --check-config.
 */
#include "capture_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "pcapsrc.h"

void kvl_capture_cfg_init(kvl_capture_cfg_t *c)
{
    memset(c, 0, sizeof(*c));
    c->snaplen = 1600;
    c->promiscuous = true;
    c->sampling = 1;
    c->max_flows = 65536;
    c->top_n = 10;
    c->sketch_size = 1024;
    c->handshake_ports = 64;
    c->idle_timeout_ms = 30000;
    c->active_timeout_ms = 300000;
    c->interval_ms = 60000;
    c->buffer_mb = 32;
    c->classify = true;
    c->classify_packets = 32;
    c->classify_flows = 4096;
}

void kvl_capture_cfg_free(kvl_capture_cfg_t *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n_interfaces; i++) {
        free(c->interfaces[i]);
    }
    free(c->interfaces);
    free(c->file);
    free(c->filter);
    free(c->local);
    memset(c, 0, sizeof(*c));
}

void kvl_capture_cfg_flows(const kvl_capture_cfg_t *c, kvl_flows_cfg_t *out)
{
    memset(out, 0, sizeof(*out));
    out->local = c->local;
    out->n_local = c->n_local;
    out->max_flows = (size_t)c->max_flows;
    out->idle_ns = c->idle_timeout_ms * 1000000;
    out->active_ns = c->active_timeout_ms * 1000000;
    out->top_capacity = (size_t)c->sketch_size;
    out->max_ports = (size_t)c->handshake_ports;
}

static int parse_interfaces(kvl_cfg_node_t n, void *target)
{
    kvl_capture_cfg_t *c = target;
    if (!kvl_cfg_is_seq(n) || kvl_cfg_seq_len(n) == 0) {
        return kvl_cfg_error(n, "expected a list of interface names (e.g. [eth1])");
    }
    size_t len = kvl_cfg_seq_len(n);
    if (len > KVL_CAPTURE_MAX_IFACES) {
        return kvl_cfg_error(n, "%zu interfaces, at most %d", len, KVL_CAPTURE_MAX_IFACES);
    }
    c->interfaces = calloc(len, sizeof(*c->interfaces));
    if (c->interfaces == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t e = kvl_cfg_seq_at(n, i);
        const char *s = kvl_cfg_scalar(e);
        /* IFNAMSIZ is 16 with its NUL; no '/' (a name, not a path). */
        if (s == NULL || s[0] == '\0' || strlen(s) > 15 || strchr(s, '/') != NULL) {
            return kvl_cfg_error(e, "expected an interface name (1 to 15 characters, no '/')");
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(c->interfaces[k], s) == 0) {
                return kvl_cfg_error(e, "interface '%s' listed twice", s);
            }
        }
        int rc = kvl_cfg_read_str(e, &c->interfaces[i]);
        if (rc != 0) {
            return rc;
        }
        c->n_interfaces++;
    }
    return 0;
}

static int parse_local(kvl_cfg_node_t n, void *target)
{
    kvl_capture_cfg_t *c = target;
    if (!kvl_cfg_is_seq(n)) {
        return kvl_cfg_error(n, "expected a list of networks (e.g. [10.0.0.0/8, 2001:db8::/32])");
    }
    size_t len = kvl_cfg_seq_len(n);
    if (len > KVL_CAPTURE_MAX_LOCAL) {
        return kvl_cfg_error(n, "%zu networks, at most %d", len, KVL_CAPTURE_MAX_LOCAL);
    }
    c->local = calloc(len > 0 ? len : 1, sizeof(*c->local));
    if (c->local == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t e = kvl_cfg_seq_at(n, i);
        const char *s = kvl_cfg_scalar(e);
        if (s == NULL || kvl_prefix_parse(s, &c->local[i]) != 0) {
            return kvl_cfg_error(e, "expected a network as address/length (e.g. 10.0.0.0/8 or "
                                    "2001:db8::/32) or an address");
        }
        c->n_local++;
    }
    return 0;
}

static int parse_filter(kvl_cfg_node_t n, void *target)
{
    kvl_capture_cfg_t *c = target;
    const char *s = kvl_cfg_scalar(n);
    if (s == NULL) {
        return kvl_cfg_error(n, "expected a BPF filter expression (as tcpdump takes)");
    }
    char why[256];
    if (kvl_pcapsrc_filter_check(s, why, sizeof(why)) != 0) {
        return kvl_cfg_error(n, "BPF filter refused: %s", why);
    }
    return kvl_cfg_read_str(n, &c->filter);
}

static const kvl_cfg_field_t capture_fields[] = {
    {"interfaces", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_interfaces, 0,
     "interfaces to capture on (a mirror port or the agent's own)"},
    {"file", KVL_CFG_STR, offsetof(kvl_capture_cfg_t, file), 0, 0, NULL, NULL, 0,
     "a pcap file read instead of interfaces"},
    {"filter", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_filter, 0, "BPF filter (everything)"},
    {"snaplen", KVL_CFG_INT, offsetof(kvl_capture_cfg_t, snaplen), 64, 262144, NULL, NULL, 0,
     "bytes kept of each frame (1600)"},
    {"promiscuous", KVL_CFG_BOOL, offsetof(kvl_capture_cfg_t, promiscuous), 0, 0, NULL, NULL, 0,
     "put the interfaces in promiscuous mode (true)"},
    {"sampling", KVL_CFG_INT, offsetof(kvl_capture_cfg_t, sampling), 1, 1000000, NULL, NULL, 0,
     "count 1 frame in N (1: all)"},
    {"local_networks", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_local, 0,
     "the site's own networks: they tell in from out"},
    {"max_flows", KVL_CFG_INT, offsetof(kvl_capture_cfg_t, max_flows), 16, 16777216, NULL, NULL, 0,
     "flow table capacity (65536)"},
    {"top_n", KVL_CFG_INT, offsetof(kvl_capture_cfg_t, top_n), 1, 1000, NULL, NULL, 0,
     "top hosts and conversations reported (10)"},
    {"sketch_size", KVL_CFG_INT, offsetof(kvl_capture_cfg_t, sketch_size), 1, 1048576, NULL, NULL,
     0, "counters of each top-N sketch (1024)"},
    {"handshake_ports", KVL_CFG_INT, offsetof(kvl_capture_cfg_t, handshake_ports), 1, 4096, NULL,
     NULL, 0, "server ports with handshake times of their own (64)"},
    {"idle_timeout", KVL_CFG_DURATION, offsetof(kvl_capture_cfg_t, idle_timeout_ms), 1000, 3600000,
     NULL, NULL, 0, "a flow unseen this long ends (30s)"},
    {"active_timeout", KVL_CFG_DURATION, offsetof(kvl_capture_cfg_t, active_timeout_ms), 1000,
     86400000, NULL, NULL, 0, "a flow older than this starts again (300s)"},
    {"interval", KVL_CFG_DURATION, offsetof(kvl_capture_cfg_t, interval_ms), 1000, 3600000, NULL,
     NULL, 0, "figures per interval (60s)"},
    {"buffer_mb", KVL_CFG_INT, offsetof(kvl_capture_cfg_t, buffer_mb), 1, 4096, NULL, NULL, 0,
     "the kernel's capture ring per interface, MiB (32)"},
    {"classify", KVL_CFG_BOOL, offsetof(kvl_capture_cfg_t, classify), 0, 0, NULL, NULL, 0,
     "applications of flows by nDPI (true)"},
    {"classify_packets", KVL_CFG_INT, offsetof(kvl_capture_cfg_t, classify_packets), 1, 1000, NULL,
     NULL, 0, "packets of a flow before nDPI gives up (32)"},
    {"classify_flows", KVL_CFG_INT, offsetof(kvl_capture_cfg_t, classify_flows), 1, 1048576, NULL,
     NULL, 0, "flows being classified at once (4096)"},
    {NULL},
};

/* The node of key `key` in the section, or the section itself. */
static kvl_cfg_node_t at_key(const kvl_capture_cfg_t *c, const char *key)
{
    kvl_cfg_node_t v = c->node;
    kvl_cfg_map_get(c->node, key, &v);
    return v;
}

int kvl_capture_cfg_parse(kvl_cfg_node_t n, void *target)
{
    kvl_capture_cfg_t *c = target;
    if (!kvl_cfg_is_map(n)) {
        return kvl_cfg_error(
            n, "expected a mapping: interfaces or file, filter, snaplen, "
               "promiscuous, sampling, local_networks, max_flows, top_n, "
               "sketch_size, handshake_ports, idle_timeout, active_timeout, interval, "
               "buffer_mb, classify, classify_packets, classify_flows");
    }
    c->node = n;
    c->enabled = true;
    int rc = kvl_cfg_apply(n, capture_fields, c);
    if (rc != 0) {
        return rc;
    }
    if (c->n_interfaces > 0 && c->file != NULL) {
        return kvl_cfg_error(at_key(c, "file"), "give interfaces or a file, not both");
    }
    if (c->n_interfaces == 0 && c->file == NULL) {
        return kvl_cfg_error(n, "expected interfaces (e.g. [eth1]) or a pcap file");
    }
    if (c->file != NULL && c->file[0] == '\0') {
        return kvl_cfg_error(at_key(c, "file"), "expected the path of a pcap file");
    }
    if (c->sketch_size < c->top_n) {
        return kvl_cfg_error(at_key(c, "sketch_size"),
                             "sketch_size %lld is below top_n %lld: the sketch must hold the "
                             "top entries",
                             (long long)c->sketch_size, (long long)c->top_n);
    }
    if (c->active_timeout_ms < c->idle_timeout_ms) {
        return kvl_cfg_error(at_key(c, "active_timeout"), "active_timeout is below idle_timeout");
    }
    return 0;
}
