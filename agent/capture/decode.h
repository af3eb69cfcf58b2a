/*
 * decode.h — the capture's packet decoder (pure: no libpcap, no nDPI, no allocation).
 *
 * One captured frame in, one small kvl_pkt_t out. The frame comes as libpcap hands it:
 * `cap` bytes captured of a frame that was `wire` bytes long on the wire (cap < wire when
 * the snap length cut it). Layers decoded:
 *   link      Ethernet (EN10MB), Linux cooked v1 (LINUX_SLL) and v2 (LINUX_SLL2), raw IP;
 *             802.1Q / 802.1ad / old QinQ (0x9100) tags skipped, at most KVL_DEC_MAX_TAGS
 *   IP        IPv4 (IHL and total length checked, options walked, fragments: a first fragment
 *             decoded like a whole packet, a later one marked with no ports); IPv6 with its
 *             extension headers walked (hop-by-hop, routing, fragment, destination options,
 *             AH, mobility; at most KVL_DEC_MAX_EXT); GRE version 0 carrying IPv4, IPv6 or
 *             Ethernet decapsulated once (the packet then describes the inner IP header; a
 *             GRE inside the tunnel stays GRE, counted)
 *   transport TCP (data offset checked, flags, sequence and acknowledgement numbers, options
 *             walked: MSS, window scale, SACK permitted, timestamps), UDP, ICMP, ICMPv6
 *
 * Every read is checked against `cap`. A length that overruns what was captured is told
 * apart by whether the frame on the wire was long enough: if it was, the snap length cut
 * it (KVL_DEC_SNAPPED: what was decoded stays usable); if not, the packet lies about its
 * lengths and is malformed. Ethernet padding after the IP packet is allowed.
 *
 * Loops: the VLAN tags, the IPv6 extension headers and the GRE decapsulation are bounded by
 * counts; the IPv4 and TCP option walks advance by at least one byte each turn within at
 * most 40 bytes, so no input can make them loop.
 */
#ifndef KVL_CAPTURE_DECODE_H
#define KVL_CAPTURE_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVL_DEC_MAX_TAGS 4 /* VLAN tags skipped before the frame is called malformed */
#define KVL_DEC_MAX_EXT 8  /* IPv6 extension headers walked before the same */

/* Link types: the values of the pcap file format's LINKTYPE_* (what a pcap file stores);
 * capture.c maps libpcap's DLT_* to them. */
typedef enum kvl_link {
    KVL_LINK_EN10MB = 1,
    KVL_LINK_RAW = 101,
    KVL_LINK_LINUX_SLL = 113,
    KVL_LINK_IPV4 = 228,
    KVL_LINK_IPV6 = 229,
    KVL_LINK_LINUX_SLL2 = 276,
} kvl_link_t;

/* What one decode ended with. KVL_DEC_OK and KVL_DEC_NOT_IP are normal; SNAPPED and the
 * warnings (ip_option, tcp_option) leave the decoded layers usable; the rest are malformed
 * packets (kvl_pkt_t.have_ip / have_l4 say what, if anything, was decoded before). */
typedef enum kvl_dec_reason {
    KVL_DEC_OK = 0,
    KVL_DEC_NOT_IP,        /* ARP, LLDP, 802.3 LLC... counted, not decoded */
    KVL_DEC_SNAPPED,       /* the snap length cut a header the wire had */
    KVL_DEC_LINK_SHORT,    /* frame shorter than its link header */
    KVL_DEC_LINK_UNKNOWN,  /* a link type the decoder does not know */
    KVL_DEC_TOO_MANY_TAGS, /* more than KVL_DEC_MAX_TAGS VLAN tags */
    KVL_DEC_IP_SHORT,      /* shorter than the IP header */
    KVL_DEC_IP_VERSION,    /* version is not the one the link layer said */
    KVL_DEC_IP_IHL,        /* IPv4 IHL below 5 */
    KVL_DEC_IP_LENGTH,     /* IP length below its header, or beyond the frame (then the
                              addresses are kept: have_ip, as tshark counts such a frame) */
    KVL_DEC_IP_OPTION,     /* IPv4 option list malformed (the packet is still decoded) */
    KVL_DEC_EXT_SHORT,     /* an IPv6 extension header beyond the packet */
    KVL_DEC_TOO_MANY_EXT,  /* more than KVL_DEC_MAX_EXT IPv6 extension headers */
    KVL_DEC_GRE_BAD,       /* GRE header short or with a version other than 0 */
    KVL_DEC_GRE_NESTED,    /* GRE inside GRE: the inner one left as GRE */
    KVL_DEC_L4_SHORT,      /* shorter than the TCP, UDP or ICMP header */
    KVL_DEC_TCP_OFFSET,    /* TCP data offset below 5 or beyond the segment */
    KVL_DEC_TCP_OPTION,    /* TCP option list malformed (the packet is still decoded) */
    KVL_DEC_UDP_LENGTH,    /* UDP length below 8 or beyond the IP payload */
    KVL_DEC__COUNT
} kvl_dec_reason_t;

/* A short stable name for a reason ("tcp_option"), for counters and logs. */
const char *kvl_dec_reason_name(kvl_dec_reason_t r);
/* Whether a reason marks a malformed packet (not OK, NOT_IP or SNAPPED). */
bool kvl_dec_reason_malformed(kvl_dec_reason_t r);

/* TCP flags as in the header's low byte. */
enum {
    KVL_TCP_FIN = 0x01,
    KVL_TCP_SYN = 0x02,
    KVL_TCP_RST = 0x04,
    KVL_TCP_PSH = 0x08,
    KVL_TCP_ACK = 0x10,
    KVL_TCP_URG = 0x20,
};

/* One decoded packet. Addresses in network order: IPv4 in the first 4 bytes, the rest 0. */
typedef struct kvl_pkt {
    uint32_t wire;        /* frame length on the wire */
    uint32_t ip_len;      /* IP packet length its header says (IPv6: 40 + payload length),
                             at most what the frame holds (KVL_DEC_IP_LENGTH) */
    uint32_t payload_len; /* transport payload bytes, from the IP lengths (not the capture) */
    bool have_ip;         /* ip_ver, proto, addresses valid */
    bool have_l4;         /* the transport header was decoded (ports, TCP fields, ICMP type) */
    bool later_fragment;  /* a fragment with a non-zero offset: no transport header */
    bool first_fragment;  /* offset 0 with more fragments following */
    bool gre;             /* decapsulated from GRE: the fields describe the inner packet */
    uint8_t ip_ver;       /* 4 or 6 */
    uint8_t proto;        /* transport protocol number (after the IPv6 extension headers) */
    uint8_t tags;         /* VLAN tags skipped */
    uint8_t ext;          /* IPv6 extension headers walked */
    uint8_t ttl;          /* TTL or hop limit */
    uint8_t src[16], dst[16];
    uint16_t sport, dport; /* TCP and UDP; 0 otherwise */
    /* TCP */
    uint8_t tcp_flags;
    uint8_t wscale; /* window scale option, 0xff when absent */
    bool sack_ok;
    bool has_ts;
    uint16_t mss; /* MSS option, 0 when absent */
    uint16_t window;
    uint32_t seq, ack;
    uint32_t ts_val, ts_ecr;
    /* ICMP and ICMPv6 */
    uint8_t icmp_type, icmp_code;
    /* The IP header in the caller's frame (the inner one after GRE) and the bytes of the IP
     * packet captured from there: for a classifier, valid while the frame is. NULL when the
     * IP length was a lie (KVL_DEC_IP_LENGTH). */
    const uint8_t *l3;
    uint32_t l3_cap;
} kvl_pkt_t;

/* Decodes one frame. data: the `cap` captured bytes; wire: its length on the wire (>= cap;
 * a smaller value is taken as cap). Fills *out (zeroed first) and returns the reason the
 * decode ended with (KVL_DEC_OK for a complete decode). Never reads outside data[0..cap). */
kvl_dec_reason_t kvl_decode(kvl_link_t link, const uint8_t *data, size_t cap, size_t wire,
                            kvl_pkt_t *out);

/* Counts by reason, kept by the caller. */
typedef struct kvl_dec_stats {
    uint64_t by_reason[KVL_DEC__COUNT];
    uint64_t tagged;          /* frames that carried at least one VLAN tag */
    uint64_t later_fragments; /* IP fragments with a non-zero offset */
    uint64_t gre;             /* packets decapsulated from GRE */
} kvl_dec_stats_t;

/* Adds one decode's result to the counts. */
void kvl_dec_stats_add(kvl_dec_stats_t *s, kvl_dec_reason_t r, const kvl_pkt_t *p);

#endif
