/*
 * decode.c — the capture's packet decoder (see decode.h): link header, VLAN tags, IPv4 or
 * IPv6 with its extension headers, one GRE decapsulation, TCP, UDP, ICMP.
 *
 * Each layer gets a window of the frame: `at` (where the layer starts), `cap_end` (how far
 * the capture goes) and `wire_end` (how far the frame, or the IP packet holding the layer,
 * went on the wire). need() turns "the header ends at x" into a verdict: inside the capture,
 * cut by the snap length, or a lie about lengths (malformed).
 */
#include "decode.h"

#include <string.h>

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86dd
#define ETH_VLAN 0x8100
#define ETH_QINQ 0x88a8
#define ETH_QINQ_OLD 0x9100
#define ETH_BRIDGED 0x6558 /* transparent Ethernet bridging inside GRE */

#define IP_HOPOPT 0
#define IP_ICMP 1
#define IP_TCP 6
#define IP_UDP 17
#define IP_ROUTING 43
#define IP_FRAGMENT 44
#define IP_GRE 47
#define IP_AH 51
#define IP_ICMPV6 58
#define IP_DSTOPTS 60
#define IP_MOBILITY 135
#define IP_HIP 139
#define IP_SHIM6 140

/* Where a layer may read: data[at .. cap_end) was captured, data[at .. wire_end) existed. */
typedef struct win {
    const uint8_t *d;
    size_t at, cap_end, wire_end;
} win_t;

static const char *const reason_names[KVL_DEC__COUNT] = {
    [KVL_DEC_OK] = "ok",
    [KVL_DEC_NOT_IP] = "not_ip",
    [KVL_DEC_SNAPPED] = "snapped",
    [KVL_DEC_LINK_SHORT] = "link_short",
    [KVL_DEC_LINK_UNKNOWN] = "link_unknown",
    [KVL_DEC_TOO_MANY_TAGS] = "too_many_tags",
    [KVL_DEC_IP_SHORT] = "ip_short",
    [KVL_DEC_IP_VERSION] = "ip_version",
    [KVL_DEC_IP_IHL] = "ip_ihl",
    [KVL_DEC_IP_LENGTH] = "ip_length",
    [KVL_DEC_IP_OPTION] = "ip_option",
    [KVL_DEC_EXT_SHORT] = "ext_short",
    [KVL_DEC_TOO_MANY_EXT] = "too_many_ext",
    [KVL_DEC_GRE_BAD] = "gre_bad",
    [KVL_DEC_GRE_NESTED] = "gre_nested",
    [KVL_DEC_L4_SHORT] = "l4_short",
    [KVL_DEC_TCP_OFFSET] = "tcp_offset",
    [KVL_DEC_TCP_OPTION] = "tcp_option",
    [KVL_DEC_UDP_LENGTH] = "udp_length",
};

const char *kvl_dec_reason_name(kvl_dec_reason_t r)
{
    if ((unsigned)r >= KVL_DEC__COUNT) {
        return "?";
    }
    return reason_names[r];
}

bool kvl_dec_reason_malformed(kvl_dec_reason_t r)
{
    return r != KVL_DEC_OK && r != KVL_DEC_NOT_IP && r != KVL_DEC_SNAPPED;
}

void kvl_dec_stats_add(kvl_dec_stats_t *s, kvl_dec_reason_t r, const kvl_pkt_t *p)
{
    if ((unsigned)r < KVL_DEC__COUNT) {
        s->by_reason[r]++;
    }
    if (p->tags > 0) {
        s->tagged++;
    }
    if (p->later_fragment) {
        s->later_fragments++;
    }
    if (p->gre) {
        s->gre++;
    }
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Whether data[w->at .. w->at + n) can be read: KVL_DEC_OK, KVL_DEC_SNAPPED when the wire
 * had it but the capture stopped, `bad` when not even the wire had it. */
static kvl_dec_reason_t need(const win_t *w, size_t n, kvl_dec_reason_t bad)
{
    if (w->at > w->wire_end || n > w->wire_end - w->at) {
        return bad;
    }
    if (w->at > w->cap_end || n > w->cap_end - w->at) {
        return KVL_DEC_SNAPPED;
    }
    return KVL_DEC_OK;
}

static kvl_dec_reason_t decode_ether(win_t w, uint16_t etype, kvl_pkt_t *out, int depth);
static kvl_dec_reason_t decode_ip(win_t w, int version, kvl_pkt_t *out, int depth);

/* IPv4 options: each turn advances by one byte at least, over at most 40 bytes. */
static bool ip4_options_ok(const uint8_t *o, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (o[i] == 0) {
            return true; /* end of list */
        }
        if (o[i] == 1) {
            i++; /* no-operation */
            continue;
        }
        if (n - i < 2 || o[i + 1] < 2 || o[i + 1] > n - i) {
            return false;
        }
        i += o[i + 1];
    }
    return true;
}

/* TCP options into out; false when the list is malformed (what came before stays). */
static bool tcp_options(const uint8_t *o, size_t n, kvl_pkt_t *out)
{
    size_t i = 0;
    while (i < n) {
        uint8_t kind = o[i];
        if (kind == 0) {
            return true;
        }
        if (kind == 1) {
            i++;
            continue;
        }
        if (n - i < 2) {
            return false;
        }
        uint8_t len = o[i + 1];
        if (len < 2 || len > n - i) {
            return false; /* a zero length would never advance: refused here */
        }
        const uint8_t *v = o + i + 2;
        switch (kind) {
        case 2:
            if (len != 4) {
                return false;
            }
            out->mss = rd16(v);
            break;
        case 3:
            if (len != 3) {
                return false;
            }
            out->wscale = v[0];
            break;
        case 4:
            if (len != 2) {
                return false;
            }
            out->sack_ok = true;
            break;
        case 8:
            if (len != 10) {
                return false;
            }
            out->has_ts = true;
            out->ts_val = rd32(v);
            out->ts_ecr = rd32(v + 4);
            break;
        default:
            break;
        }
        i += len;
    }
    return true;
}

static kvl_dec_reason_t decode_tcp(win_t w, bool first_fragment, kvl_pkt_t *out)
{
    kvl_dec_reason_t r = need(&w, 20, KVL_DEC_L4_SHORT);
    if (r != KVL_DEC_OK) {
        return r;
    }
    const uint8_t *t = w.d + w.at;
    size_t doff = (size_t)(t[12] >> 4) * 4;
    if (doff < 20 || (!first_fragment && doff > w.wire_end - w.at)) {
        return KVL_DEC_TCP_OFFSET;
    }
    out->sport = rd16(t);
    out->dport = rd16(t + 2);
    out->seq = rd32(t + 4);
    out->ack = rd32(t + 8);
    out->tcp_flags = t[13];
    out->window = rd16(t + 14);
    out->have_l4 = true;
    out->payload_len = doff <= w.wire_end - w.at ? (uint32_t)(w.wire_end - w.at - doff) : 0;
    r = need(&w, doff, KVL_DEC_TCP_OFFSET);
    if (r != KVL_DEC_OK) {
        return r;
    }
    return tcp_options(t + 20, doff - 20, out) ? KVL_DEC_OK : KVL_DEC_TCP_OPTION;
}

static kvl_dec_reason_t decode_udp(win_t w, bool first_fragment, kvl_pkt_t *out)
{
    kvl_dec_reason_t r = need(&w, 8, KVL_DEC_L4_SHORT);
    if (r != KVL_DEC_OK) {
        return r;
    }
    const uint8_t *u = w.d + w.at;
    size_t ulen = rd16(u + 4);
    if (ulen < 8 || (!first_fragment && ulen > w.wire_end - w.at)) {
        return KVL_DEC_UDP_LENGTH;
    }
    out->sport = rd16(u);
    out->dport = rd16(u + 2);
    /* A first fragment carries part of the datagram: its own bytes count. */
    out->payload_len = (uint32_t)(first_fragment ? w.wire_end - w.at - 8 : ulen - 8);
    out->have_l4 = true;
    return KVL_DEC_OK;
}

static kvl_dec_reason_t decode_icmp(win_t w, kvl_pkt_t *out)
{
    kvl_dec_reason_t r = need(&w, 4, KVL_DEC_L4_SHORT);
    if (r != KVL_DEC_OK) {
        return r;
    }
    out->icmp_type = w.d[w.at];
    out->icmp_code = w.d[w.at + 1];
    out->payload_len = (uint32_t)(w.wire_end - w.at - 4);
    out->have_l4 = true;
    return KVL_DEC_OK;
}

/* GRE version 0: the inner packet decoded into a copy; kept when it yields an IP header,
 * else the outer packet stays (proto 47) and the inner reason is returned. */
static kvl_dec_reason_t decode_gre(win_t w, kvl_pkt_t *out, int depth)
{
    kvl_dec_reason_t r = need(&w, 4, KVL_DEC_GRE_BAD);
    if (r != KVL_DEC_OK) {
        return r;
    }
    uint16_t flags = rd16(w.d + w.at), ptype = rd16(w.d + w.at + 2);
    if ((flags & 0x7) != 0) {
        return KVL_DEC_OK; /* version 1 (PPTP) and others: left as GRE */
    }
    if (depth > 0) {
        return KVL_DEC_GRE_NESTED;
    }
    if ((flags & 0x4000) != 0) {
        return KVL_DEC_GRE_BAD; /* source routing, deprecated by RFC 2784 */
    }
    size_t hl = 4;
    hl += (flags & 0x8000) ? 4 : 0; /* checksum and reserved */
    hl += (flags & 0x2000) ? 4 : 0; /* key */
    hl += (flags & 0x1000) ? 4 : 0; /* sequence number */
    r = need(&w, hl, KVL_DEC_GRE_BAD);
    if (r != KVL_DEC_OK) {
        return r;
    }
    win_t in = w;
    in.at += hl;
    kvl_pkt_t inner;
    memset(&inner, 0, sizeof(inner));
    inner.wire = out->wire;
    inner.tags = out->tags;
    inner.wscale = 0xff;
    if (ptype == ETH_IPV4) {
        r = decode_ip(in, 4, &inner, depth + 1);
    } else if (ptype == ETH_IPV6) {
        r = decode_ip(in, 6, &inner, depth + 1);
    } else if (ptype == ETH_BRIDGED) {
        r = need(&in, 14, KVL_DEC_LINK_SHORT);
        if (r == KVL_DEC_OK) {
            uint16_t et = rd16(in.d + in.at + 12);
            in.at += 14;
            r = decode_ether(in, et, &inner, depth + 1);
        }
    } else {
        return KVL_DEC_OK; /* other payloads: left as GRE */
    }
    if (inner.have_ip) {
        *out = inner;
        out->gre = true;
    }
    return r;
}

static kvl_dec_reason_t decode_l4(win_t w, bool first_fragment, kvl_pkt_t *out, int depth)
{
    switch (out->proto) {
    case IP_TCP:
        return decode_tcp(w, first_fragment, out);
    case IP_UDP:
        return decode_udp(w, first_fragment, out);
    case IP_ICMP:
    case IP_ICMPV6:
        return decode_icmp(w, out);
    case IP_GRE:
        return decode_gre(w, out, depth);
    default:
        out->payload_len = (uint32_t)(w.wire_end - w.at);
        return KVL_DEC_OK;
    }
}

static kvl_dec_reason_t decode_ip4(win_t w, kvl_pkt_t *out, int depth)
{
    kvl_dec_reason_t r = need(&w, 20, KVL_DEC_IP_SHORT);
    if (r != KVL_DEC_OK) {
        return r;
    }
    const uint8_t *h = w.d + w.at;
    if (h[0] >> 4 != 4) {
        return KVL_DEC_IP_VERSION;
    }
    size_t ihl = (size_t)(h[0] & 0x0f) * 4;
    if (ihl < 20) {
        return KVL_DEC_IP_IHL;
    }
    size_t total = rd16(h + 2);
    if (total < ihl) {
        return KVL_DEC_IP_LENGTH;
    }
    out->have_ip = true;
    out->ip_ver = 4;
    out->ttl = h[8];
    out->proto = h[9];
    memcpy(out->src, h + 12, 4);
    memcpy(out->dst, h + 16, 4);
    if (total > w.wire_end - w.at) {
        /* Longer than the frame: the addresses count (as tshark counts them), nothing more. */
        out->ip_len = (uint32_t)(w.wire_end - w.at);
        return KVL_DEC_IP_LENGTH;
    }
    out->ip_len = (uint32_t)total;
    out->payload_len = (uint32_t)(total - ihl);
    out->l3 = h;
    /* The IP packet ends here on the wire; what follows is link padding. */
    w.wire_end = w.at + total;
    if (w.cap_end > w.wire_end) {
        w.cap_end = w.wire_end;
    }
    out->l3_cap = (uint32_t)(w.cap_end - w.at);
    r = need(&w, ihl, KVL_DEC_IP_IHL);
    if (r != KVL_DEC_OK) {
        return r;
    }
    kvl_dec_reason_t warn = ip4_options_ok(h + 20, ihl - 20) ? KVL_DEC_OK : KVL_DEC_IP_OPTION;
    uint16_t frag = rd16(h + 6);
    if ((frag & 0x1fff) != 0) {
        out->later_fragment = true;
        return warn;
    }
    out->first_fragment = (frag & 0x2000) != 0;
    w.at += ihl;
    r = decode_l4(w, out->first_fragment, out, depth);
    return r != KVL_DEC_OK ? r : warn;
}

static bool ip6_is_ext(uint8_t nh)
{
    return nh == IP_HOPOPT || nh == IP_ROUTING || nh == IP_FRAGMENT || nh == IP_AH ||
           nh == IP_DSTOPTS || nh == IP_MOBILITY || nh == IP_HIP || nh == IP_SHIM6;
}

static kvl_dec_reason_t decode_ip6(win_t w, kvl_pkt_t *out, int depth)
{
    kvl_dec_reason_t r = need(&w, 40, KVL_DEC_IP_SHORT);
    if (r != KVL_DEC_OK) {
        return r;
    }
    const uint8_t *h = w.d + w.at;
    if (h[0] >> 4 != 6) {
        return KVL_DEC_IP_VERSION;
    }
    size_t total = 40 + (size_t)rd16(h + 4);
    out->have_ip = true;
    out->ip_ver = 6;
    out->ttl = h[7];
    out->proto = h[6];
    memcpy(out->src, h + 8, 16);
    memcpy(out->dst, h + 24, 16);
    if (total > w.wire_end - w.at) {
        out->ip_len = (uint32_t)(w.wire_end - w.at);
        return KVL_DEC_IP_LENGTH;
    }
    out->ip_len = (uint32_t)total;
    w.wire_end = w.at + total;
    if (w.cap_end > w.wire_end) {
        w.cap_end = w.wire_end;
    }
    out->l3 = h;
    out->l3_cap = (uint32_t)(w.cap_end - w.at);
    uint8_t nh = h[6];
    w.at += 40;
    bool first = false;
    /* At most KVL_DEC_MAX_EXT headers; each moves `at` forward by 8 bytes or more. */
    for (unsigned n = 0; ip6_is_ext(nh); n++) {
        out->proto = nh;
        out->payload_len = (uint32_t)(w.wire_end - w.at);
        if (n >= KVL_DEC_MAX_EXT) {
            return KVL_DEC_TOO_MANY_EXT;
        }
        r = need(&w, 8, KVL_DEC_EXT_SHORT);
        if (r != KVL_DEC_OK) {
            return r;
        }
        const uint8_t *e = w.d + w.at;
        size_t len;
        if (nh == IP_FRAGMENT) {
            len = 8;
            uint16_t offm = rd16(e + 2);
            if ((offm & 0xfff8) != 0) {
                out->ext = (uint8_t)(n + 1);
                out->proto = e[0];
                out->later_fragment = true;
                out->payload_len = (uint32_t)(w.wire_end - w.at - 8);
                return KVL_DEC_OK;
            }
            first = (offm & 1) != 0;
        } else if (nh == IP_AH) {
            len = ((size_t)e[1] + 2) * 4;
        } else {
            len = ((size_t)e[1] + 1) * 8;
        }
        r = need(&w, len, KVL_DEC_EXT_SHORT);
        if (r != KVL_DEC_OK) {
            return r;
        }
        nh = e[0];
        w.at += len;
        out->ext = (uint8_t)(n + 1);
    }
    out->proto = nh;
    out->first_fragment = first;
    out->payload_len = (uint32_t)(w.wire_end - w.at);
    return decode_l4(w, first, out, depth);
}

static kvl_dec_reason_t decode_ip(win_t w, int version, kvl_pkt_t *out, int depth)
{
    kvl_dec_reason_t r = need(&w, 1, KVL_DEC_IP_SHORT);
    if (r != KVL_DEC_OK) {
        return r;
    }
    if (w.d[w.at] >> 4 != version) {
        return KVL_DEC_IP_VERSION;
    }
    return version == 4 ? decode_ip4(w, out, depth) : decode_ip6(w, out, depth);
}

/* After the link header: VLAN tags (at most KVL_DEC_MAX_TAGS), then IPv4 or IPv6. */
static kvl_dec_reason_t decode_ether(win_t w, uint16_t etype, kvl_pkt_t *out, int depth)
{
    for (unsigned n = 0; etype == ETH_VLAN || etype == ETH_QINQ || etype == ETH_QINQ_OLD; n++) {
        if (n >= KVL_DEC_MAX_TAGS) {
            return KVL_DEC_TOO_MANY_TAGS;
        }
        kvl_dec_reason_t r = need(&w, 4, KVL_DEC_LINK_SHORT);
        if (r != KVL_DEC_OK) {
            return r;
        }
        etype = rd16(w.d + w.at + 2);
        w.at += 4;
        out->tags++;
    }
    if (etype == ETH_IPV4) {
        return decode_ip(w, 4, out, depth);
    }
    if (etype == ETH_IPV6) {
        return decode_ip(w, 6, out, depth);
    }
    return KVL_DEC_NOT_IP;
}

kvl_dec_reason_t kvl_decode(kvl_link_t link, const uint8_t *data, size_t cap, size_t wire,
                            kvl_pkt_t *out)
{
    memset(out, 0, sizeof(*out));
    out->wscale = 0xff;
    if (wire < cap) {
        wire = cap;
    }
    out->wire = wire > UINT32_MAX ? UINT32_MAX : (uint32_t)wire;
    win_t w = {.d = data, .at = 0, .cap_end = cap, .wire_end = wire};
    kvl_dec_reason_t r;
    switch (link) {
    case KVL_LINK_EN10MB:
        r = need(&w, 14, KVL_DEC_LINK_SHORT);
        if (r != KVL_DEC_OK) {
            return r;
        }
        w.at = 14;
        return decode_ether(w, rd16(data + 12), out, 0);
    case KVL_LINK_LINUX_SLL:
        r = need(&w, 16, KVL_DEC_LINK_SHORT);
        if (r != KVL_DEC_OK) {
            return r;
        }
        w.at = 16;
        return decode_ether(w, rd16(data + 14), out, 0);
    case KVL_LINK_LINUX_SLL2:
        r = need(&w, 20, KVL_DEC_LINK_SHORT);
        if (r != KVL_DEC_OK) {
            return r;
        }
        w.at = 20;
        return decode_ether(w, rd16(data), out, 0);
    case KVL_LINK_RAW:
        r = need(&w, 1, KVL_DEC_IP_SHORT);
        if (r != KVL_DEC_OK) {
            return r;
        }
        if (data[0] >> 4 == 4) {
            return decode_ip(w, 4, out, 0);
        }
        if (data[0] >> 4 == 6) {
            return decode_ip(w, 6, out, 0);
        }
        return KVL_DEC_IP_VERSION;
    case KVL_LINK_IPV4:
        return decode_ip(w, 4, out, 0);
    case KVL_LINK_IPV6:
        return decode_ip(w, 6, out, 0);
    }
    return KVL_DEC_LINK_UNKNOWN;
}
