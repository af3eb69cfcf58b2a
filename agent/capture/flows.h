/*
 * flows.h — what the capture counts in an interval, from decoded packets (pure: no
 * libpcap, no clock; times come with the packets).
 *
 * Per interval: frames and bytes (on-the-wire frame lengths, as tshark counts them) in
 * total, by direction (the local networks decide: in, out, internal, external), by IP
 * version and by transport; malformed and other decoder outcomes by reason; TCP
 * retransmissions, resets, handshake times per server port; top hosts and conversations
 * by bytes (sketch.h); with a classifier, frames and bytes per application.
 *
 * Flows: a table of at most `max_flows` flows (a 5-tuple, both directions in one flow),
 * allocated once. A flow unseen for `idle` ends; one older than `active` ends and starts
 * again as a new flow (its counters and handshake anew). When the table is full the flow
 * seen least recently is evicted and counted. Memory: max_flows * ~152 bytes plus an index
 * of 4 bytes per slot (2 to 4 slots per flow).
 *
 * TCP:
 *   - handshake: the first SYN (without ACK) makes its sender the client; the first SYN-ACK
 *     from the other side gives the server's time (SYN -> SYN-ACK, the network beyond the
 *     capture point and the server), the client's next ACK the client's time (SYN-ACK ->
 *     ACK); both recorded under the server's port. A re-sent SYN keeps the first one's time.
 *   - retransmission: a segment carrying data whose sequence number is below the highest
 *     sequence number already seen in its direction (a re-sent or overlapping segment; a
 *     segment reordered by the network counts too).
 *   - reset: every segment with RST.
 * Handshake times go into fixed histograms per server port (at most `max_ports` ports, the
 * rest under port 0): 16 buckets per octave from 1 us to 134 s, so a reported median or
 * p95 is within 2.2 % of the sample the nearest rank picks (below 1 us: reported as under
 * 1 us); min and max are exact, and quantiles are clamped between them (one sample: exact).
 */
#ifndef KVL_CAPTURE_FLOWS_H
#define KVL_CAPTURE_FLOWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode.h"
#include "sketch.h"

/* A network prefix (local networks). */
typedef struct kvl_prefix {
    uint8_t ver; /* 4 or 6 */
    uint8_t len; /* prefix length in bits */
    uint8_t addr[16];
} kvl_prefix_t;

/* Parses "10.0.0.0/8", "2001:db8::/32" or a bare address (a host). Returns 0 or -1. */
int kvl_prefix_parse(const char *text, kvl_prefix_t *out);
/* Whether addr (of IP version ver, as in kvl_pkt_t) is inside p. */
bool kvl_prefix_has(const kvl_prefix_t *p, uint8_t ver, const uint8_t *addr);

/* A classifier of flows' applications, the seam between the flow table and nDPI
 * (classify.h implements it); all its calls are on the flow table's thread. */
typedef struct kvl_flows_classifier {
    void *ctx;
    /* A flow starts: a handle (>= 0), or -1 when none is free (the flow stays unclassified). */
    int32_t (*begin)(void *ctx);
    /* A packet of an undecided flow: the application (0: unknown) once decided, the handle
     * then released; -1 while undecided. */
    int (*packet)(void *ctx, int32_t handle, const kvl_pkt_t *p, int64_t ts_ns);
    /* An undecided flow ends, or its TCP connection closes (FIN, RST): the classifier gives
     * up, returns its best answer (0: unknown) and releases the handle. */
    int (*end)(void *ctx, int32_t handle);
    /* An application's name ("TLS"), never NULL. */
    const char *(*name)(void *ctx, int app);
    int max_app; /* applications are 0 .. max_app - 1 */
} kvl_flows_classifier_t;

typedef struct kvl_flows_cfg {
    const kvl_prefix_t *local; /* copied by _new */
    size_t n_local;
    size_t max_flows;                         /* flow table capacity, >= 1 */
    int64_t idle_ns;                          /* a flow ends after this long unseen */
    int64_t active_ns;                        /* a flow restarts after this long */
    size_t top_capacity;                      /* counters of each top-N sketch */
    size_t max_ports;                         /* server ports with handshake times of their own */
    const kvl_flows_classifier_t *classifier; /* copied by _new; NULL: no applications */
} kvl_flows_cfg_t;

enum { KVL_DIR_IN, KVL_DIR_OUT, KVL_DIR_INTERNAL, KVL_DIR_EXTERNAL, KVL_DIR__COUNT };
enum { KVL_L4_TCP, KVL_L4_UDP, KVL_L4_ICMP, KVL_L4_OTHER, KVL_L4__COUNT };

typedef struct kvl_count {
    uint64_t pkts, bytes;
} kvl_count_t;

/* One interval's counters. */
typedef struct kvl_flows_counts {
    kvl_count_t total;               /* every frame */
    kvl_count_t non_ip;              /* frames without a usable IP header */
    kvl_count_t dir[KVL_DIR__COUNT]; /* IP frames by direction */
    kvl_count_t ipv4, ipv6;
    kvl_count_t l4[KVL_L4__COUNT]; /* IP frames by transport */
    kvl_dec_stats_t dec;           /* decoder outcomes */
    uint64_t malformed;            /* frames whose decode ended malformed */
    uint64_t tcp_retrans, tcp_resets;
    uint64_t flows_new, flows_idle, flows_active, flows_evicted;
    uint64_t flows_now; /* flows in the table at the last packet */
    /* With a classifier, IP frames not under an application (kvl_flows_apps): */
    kvl_count_t app_pending;      /* of flows still undecided */
    kvl_count_t app_unclassified; /* of flows without a classification slot, and fragments
                                     after the first (no ports: no flow) */
} kvl_flows_counts_t;

/* Frames and bytes of one application in the interval. */
typedef struct kvl_app_count {
    int app;
    const char *name; /* the classifier's */
    kvl_count_t c;
} kvl_app_count_t;

typedef struct kvl_hs_summary {
    uint64_t n;
    int64_t min_ns, median_ns, p95_ns, max_ns; /* 0 when n == 0 */
} kvl_hs_summary_t;

typedef struct kvl_port_hs {
    uint16_t port;           /* the server's port; 0: ports beyond max_ports */
    kvl_hs_summary_t server; /* SYN -> SYN-ACK */
    kvl_hs_summary_t client; /* SYN-ACK -> ACK */
} kvl_port_hs_t;

/* One top-N entry: a host (b unused) or a conversation (a < b by address bytes). */
typedef struct kvl_top {
    uint8_t ver;
    uint8_t a[16], b[16];
    uint64_t bytes;     /* upper bound */
    uint64_t bytes_err; /* bytes - bytes_err is a lower bound */
    uint64_t packets;   /* frames since the entry took its counter (all when bytes_err is 0) */
} kvl_top_t;

typedef struct kvl_flows kvl_flows_t;

/* NULL when out of memory or a bound is 0. */
kvl_flows_t *kvl_flows_new(const kvl_flows_cfg_t *cfg);
void kvl_flows_free(kvl_flows_t *f); /* NULL-safe */

/* Counts one decoded frame seen at ts_ns (times must not go back by much: a packet older
 * than its flow's last one counts with its flow's time). r: what kvl_decode returned. */
void kvl_flows_packet(kvl_flows_t *f, int64_t ts_ns, const kvl_pkt_t *p, kvl_dec_reason_t r);

/* Ends the flows idle at now_ns (the packets' clock). */
void kvl_flows_expire(kvl_flows_t *f, int64_t now_ns);

const kvl_flows_counts_t *kvl_flows_counts(const kvl_flows_t *f);
/* Handshake times per server port, ports ascending (port 0 last); returns how many. */
size_t kvl_flows_handshakes(const kvl_flows_t *f, kvl_port_hs_t *out, size_t n);
/* Handshake times of every server port together (the ports' histograms merged): the same
 * bounds as per port. */
void kvl_flows_handshake_all(const kvl_flows_t *f, kvl_hs_summary_t *server,
                             kvl_hs_summary_t *client);
/* Top hosts and conversations by bytes, largest first; return how many. */
size_t kvl_flows_top_hosts(const kvl_flows_t *f, kvl_top_t *out, size_t n);
size_t kvl_flows_top_convs(const kvl_flows_t *f, kvl_top_t *out, size_t n);
/* The interval's applications with frames, by bytes (largest first), at most n; returns
 * how many. Every IP frame of a classified flow counts under its flow's application (0,
 * "Unknown", when nDPI could not tell): at the decision its frames of the same interval move
 * there from app_pending; frames of an undecided flow stay in app_pending of their interval
 * when it ends first. */
size_t kvl_flows_apps(const kvl_flows_t *f, kvl_app_count_t *out, size_t n);
/* Starts a new interval: counters, handshake times and sketches cleared; flows kept. */
void kvl_flows_interval_reset(kvl_flows_t *f);

#endif
