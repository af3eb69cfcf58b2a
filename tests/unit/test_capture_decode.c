/*
 * test_capture_decode.c — unit tests for the capture's packet decoder (agent/capture/decode.h)
 * on frames built here byte by byte: Ethernet, Linux cooked v1/v2 and raw IP; every cut of a
 * frame (snap length and lying lengths told apart); bad IHL and IP lengths; Ethernet padding;
 * IPv4 options; TCP options (including the zero-length one that would loop); VLAN and QinQ
 * tags; IPv6 extension headers and fragments; IPv4 fragments; GRE (IP, Ethernet, nested);
 * UDP lengths, ICMP, ICMPv6, non-IP frames. Every decode reads a heap copy of exactly the
 * captured length, so a read past it trips AddressSanitizer.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "decode.h"
#include "kvl.h"

typedef struct fb {
    uint8_t b[2048];
    size_t n;
} fb_t;

static void put(fb_t *f, const void *p, size_t n)
{
    assert_true(f->n + n <= sizeof(f->b));
    memcpy(f->b + f->n, p, n);
    f->n += n;
}

static void put8(fb_t *f, unsigned v)
{
    uint8_t b = (uint8_t)v;
    put(f, &b, 1);
}

static void put16(fb_t *f, unsigned v)
{
    put8(f, v >> 8);
    put8(f, v);
}

static void put32(fb_t *f, uint32_t v)
{
    put16(f, v >> 16);
    put16(f, v & 0xffff);
}

static void set16(fb_t *f, size_t at, size_t v)
{
    f->b[at] = (uint8_t)(v >> 8);
    f->b[at + 1] = (uint8_t)v;
}

static void zeros(fb_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        put8(f, 0);
    }
}

static void eth(fb_t *f, unsigned etype)
{
    const uint8_t macs[12] = {2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2};
    put(f, macs, sizeof(macs));
    put16(f, etype);
}

static void vlan(fb_t *f, unsigned tci, unsigned next)
{
    put16(f, tci);
    put16(f, next);
}

/* An IPv4 header with `opt` option bytes; returns its offset (ip4_end sets its length). */
static size_t ip4(fb_t *f, unsigned proto, const char *src, const char *dst, const uint8_t *opt,
                  size_t optlen, unsigned frag)
{
    size_t at = f->n;
    put8(f, 0x40 | (unsigned)((20 + optlen) / 4));
    put8(f, 0);
    put16(f, 0); /* total length, set by ip4_end */
    put16(f, 0x1234);
    put16(f, frag);
    put8(f, 64);
    put8(f, proto);
    put16(f, 0);
    uint8_t a[4];
    assert_int_equal(inet_pton(AF_INET, src, a), 1);
    put(f, a, 4);
    assert_int_equal(inet_pton(AF_INET, dst, a), 1);
    put(f, a, 4);
    if (optlen > 0) {
        put(f, opt, optlen);
    }
    return at;
}

static void ip4_end(fb_t *f, size_t at)
{
    set16(f, at + 2, f->n - at);
}

static size_t ip6(fb_t *f, unsigned nh, const char *src, const char *dst)
{
    size_t at = f->n;
    put32(f, 0x60000000);
    put16(f, 0); /* payload length, set by ip6_end */
    put8(f, nh);
    put8(f, 64);
    uint8_t a[16];
    assert_int_equal(inet_pton(AF_INET6, src, a), 1);
    put(f, a, 16);
    assert_int_equal(inet_pton(AF_INET6, dst, a), 1);
    put(f, a, 16);
    return at;
}

static void ip6_end(fb_t *f, size_t at)
{
    set16(f, at + 4, f->n - at - 40);
}

/* An extension header of 8 * (1 + units) bytes. */
static void ext6(fb_t *f, unsigned nh, unsigned units)
{
    put8(f, nh);
    put8(f, units);
    zeros(f, 6 + 8 * (size_t)units);
}

static void tcp(fb_t *f, unsigned sport, unsigned dport, uint32_t seq, uint32_t ack, unsigned flags,
                const uint8_t *opt, size_t optlen)
{
    put16(f, sport);
    put16(f, dport);
    put32(f, seq);
    put32(f, ack);
    put8(f, (unsigned)((20 + optlen) / 4) << 4);
    put8(f, flags);
    put16(f, 64240);
    put16(f, 0);
    put16(f, 0);
    if (optlen > 0) {
        put(f, opt, optlen);
    }
}

static size_t udp(fb_t *f, unsigned sport, unsigned dport)
{
    size_t at = f->n;
    put16(f, sport);
    put16(f, dport);
    put16(f, 0);
    put16(f, 0);
    return at;
}

static void udp_end(fb_t *f, size_t at)
{
    set16(f, at + 4, f->n - at);
}

/* Decodes a heap copy of the first `cap` bytes of a frame that was `wire` long. */
static kvl_dec_reason_t dec(kvl_link_t link, const fb_t *f, size_t cap, size_t wire, kvl_pkt_t *p)
{
    uint8_t *copy = malloc(cap > 0 ? cap : 1);
    assert_non_null(copy);
    memcpy(copy, f->b, cap);
    kvl_dec_reason_t r = kvl_decode(link, copy, cap, wire, p);
    free(copy);
    return r;
}

static kvl_dec_reason_t dec_all(kvl_link_t link, const fb_t *f, kvl_pkt_t *p)
{
    return dec(link, f, f->n, f->n, p);
}

static const uint8_t syn_opts[20] = {2,    4,    0x05, 0xb4, 4, 2, 8, 10, 0, 0,
                                     0x30, 0x39, 0,    0,    0, 0, 1, 3,  3, 7};

static void tcp_syn_frame(fb_t *f)
{
    memset(f, 0, sizeof(*f));
    eth(f, 0x0800);
    size_t ip = ip4(f, 6, "10.1.2.3", "192.0.2.80", NULL, 0, 0x4000);
    tcp(f, 40000, 443, 1000, 0, KVL_TCP_SYN, syn_opts, sizeof(syn_opts));
    ip4_end(f, ip);
}

static void test_tcp_syn(void **state)
{
    KVL_UNUSED(state);
    fb_t f;
    tcp_syn_frame(&f);
    kvl_pkt_t p;
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_true(p.have_ip && p.have_l4);
    assert_int_equal(p.ip_ver, 4);
    assert_int_equal(p.proto, 6);
    assert_int_equal(p.wire, 14 + 40 + 20);
    assert_int_equal(p.ip_len, 60);
    assert_int_equal(p.payload_len, 0);
    const uint8_t src[4] = {10, 1, 2, 3}, dst[4] = {192, 0, 2, 80};
    assert_memory_equal(p.src, src, 4);
    assert_memory_equal(p.dst, dst, 4);
    assert_int_equal(p.sport, 40000);
    assert_int_equal(p.dport, 443);
    assert_int_equal(p.seq, 1000);
    assert_int_equal(p.tcp_flags, KVL_TCP_SYN);
    assert_int_equal(p.mss, 1460);
    assert_true(p.sack_ok);
    assert_true(p.has_ts);
    assert_int_equal(p.ts_val, 12345);
    assert_int_equal(p.wscale, 7);
    assert_false(p.later_fragment || p.first_fragment || p.gre);
    /* The IP header is where the frame has it, and all of the packet was captured. */
    assert_int_equal(kvl_decode(KVL_LINK_EN10MB, f.b, f.n, f.n, &p), KVL_DEC_OK);
    assert_ptr_equal(p.l3, f.b + 14);
    assert_int_equal(p.l3_cap, 60);
    assert_int_equal(kvl_decode(KVL_LINK_EN10MB, f.b, 40, f.n, &p), KVL_DEC_SNAPPED);
    assert_int_equal(p.l3_cap, 26);
}

/* Every cut of the frame: with the wire length kept (the snap length cut it) the result is
 * SNAPPED until the TCP header is whole; with the wire length cut too, a malformed reason. */
static void test_every_cut(void **state)
{
    KVL_UNUSED(state);
    fb_t f;
    tcp_syn_frame(&f);
    kvl_pkt_t p;
    for (size_t cut = 0; cut < f.n; cut++) {
        kvl_dec_reason_t r = dec(KVL_LINK_EN10MB, &f, cut, f.n, &p);
        assert_int_equal(r, KVL_DEC_SNAPPED);
        /* The IP header is usable once it was captured. */
        assert_int_equal(p.have_ip, cut >= 34);
        assert_int_equal(p.have_l4, cut >= 54);
        r = dec(KVL_LINK_EN10MB, &f, cut, cut, &p);
        assert_true(kvl_dec_reason_malformed(r));
        assert_false(p.have_l4);
    }
    assert_int_equal(dec(KVL_LINK_EN10MB, &f, 14, 14, &p), KVL_DEC_IP_SHORT);
    assert_int_equal(dec(KVL_LINK_EN10MB, &f, 10, 10, &p), KVL_DEC_LINK_SHORT);
    /* Cut inside the IP packet: the IP header's length is a lie. */
    assert_int_equal(dec(KVL_LINK_EN10MB, &f, 40, 40, &p), KVL_DEC_IP_LENGTH);
}

static void test_ip_header_lengths(void **state)
{
    KVL_UNUSED(state);
    fb_t f;
    kvl_pkt_t p;
    for (unsigned ihl = 0; ihl < 5; ihl++) {
        tcp_syn_frame(&f);
        f.b[14] = (uint8_t)(0x40 | ihl);
        assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_IP_IHL);
        assert_false(p.have_ip);
    }
    /* IHL 15 (60 bytes) over a 60-byte packet: the TCP header would be missing. */
    tcp_syn_frame(&f);
    f.b[14] = 0x4f;
    kvl_dec_reason_t r = dec_all(KVL_LINK_EN10MB, &f, &p);
    assert_true(kvl_dec_reason_malformed(r));
    assert_false(p.have_l4);
    /* Total length below the header, then beyond the frame. */
    tcp_syn_frame(&f);
    set16(&f, 16, 19);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_IP_LENGTH);
    assert_false(p.have_ip);
    set16(&f, 16, 61);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_IP_LENGTH);
    /* Beyond the frame: the addresses stay usable, no transport. */
    assert_true(p.have_ip);
    assert_false(p.have_l4);
    assert_int_equal(p.ip_len, 60);
    assert_int_equal(p.src[0], 10);
    /* Wrong version for the ethertype. */
    tcp_syn_frame(&f);
    f.b[14] = 0x65;
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_IP_VERSION);
    /* Ethernet padding after a short packet is no error; lengths follow the IP header. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x0800);
    size_t ip = ip4(&f, 6, "10.0.0.1", "10.0.0.2", NULL, 0, 0);
    tcp(&f, 1, 2, 3, 4, KVL_TCP_ACK, NULL, 0);
    ip4_end(&f, ip);
    zeros(&f, 6);
    assert_int_equal(f.n, 60);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_int_equal(p.ip_len, 40);
    assert_int_equal(p.payload_len, 0);
    assert_int_equal(p.wire, 60);
}

static void test_ip_options(void **state)
{
    KVL_UNUSED(state);
    fb_t f;
    kvl_pkt_t p;
    /* NOP, record route (7 bytes, one slot), end of list. */
    const uint8_t good[8] = {1, 7, 7, 4, 0, 0, 0, 0};
    memset(&f, 0, sizeof(f));
    eth(&f, 0x0800);
    size_t ip = ip4(&f, 17, "10.0.0.1", "10.0.0.2", good, sizeof(good), 0);
    size_t u = udp(&f, 53, 5353);
    zeros(&f, 10);
    udp_end(&f, u);
    ip4_end(&f, ip);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_int_equal(p.dport, 5353);
    assert_int_equal(p.payload_len, 10);
    /* An option with length 0, then one running past the header: counted, still decoded. */
    const uint8_t zero[4] = {7, 0, 0, 0}, past[4] = {1, 7, 9, 0};
    const uint8_t *bad[2] = {zero, past};
    for (size_t i = 0; i < 2; i++) {
        memset(&f, 0, sizeof(f));
        eth(&f, 0x0800);
        ip = ip4(&f, 17, "10.0.0.1", "10.0.0.2", bad[i], 4, 0);
        u = udp(&f, 53, 5353);
        udp_end(&f, u);
        ip4_end(&f, ip);
        assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_IP_OPTION);
        assert_true(p.have_ip && p.have_l4);
        assert_int_equal(p.sport, 53);
    }
}

static void tcp_with_opts(fb_t *f, const uint8_t *opt, size_t optlen)
{
    memset(f, 0, sizeof(*f));
    eth(f, 0x0800);
    size_t ip = ip4(f, 6, "10.0.0.1", "10.0.0.2", NULL, 0, 0);
    tcp(f, 1000, 22, 7, 8, KVL_TCP_SYN | KVL_TCP_ACK, opt, optlen);
    ip4_end(f, ip);
}

static void test_tcp_options(void **state)
{
    KVL_UNUSED(state);
    fb_t f;
    kvl_pkt_t p;
    /* Zero length (a naive walk would never advance), length past the header, a known
     * option with the wrong length, an option cut after its kind. */
    const uint8_t loop[4] = {5, 0, 1, 1}, past[4] = {1, 1, 30, 12}, mss3[4] = {2, 3, 5, 1},
                  cut[4] = {1, 1, 1, 19};
    const uint8_t *bad[] = {loop, past, mss3, cut};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        tcp_with_opts(&f, bad[i], 4);
        assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_TCP_OPTION);
        assert_true(p.have_l4);
        assert_int_equal(p.dport, 22);
    }
    /* 40 bytes of NOPs, and an end of list followed by garbage. */
    uint8_t nops[40];
    memset(nops, 1, sizeof(nops));
    tcp_with_opts(&f, nops, sizeof(nops));
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    const uint8_t eol[4] = {0, 0xff, 0, 0};
    tcp_with_opts(&f, eol, sizeof(eol));
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_int_equal(p.mss, 0);
    assert_int_equal(p.wscale, 0xff);
    /* Data offset below 5, and beyond the segment. */
    tcp_with_opts(&f, NULL, 0);
    f.b[14 + 20 + 12] = 0x40;
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_TCP_OFFSET);
    assert_false(p.have_l4);
    assert_true(p.have_ip);
    f.b[14 + 20 + 12] = 0xf0;
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_TCP_OFFSET);
    /* Payload counted from the IP length. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x0800);
    size_t ip = ip4(&f, 6, "10.0.0.1", "10.0.0.2", NULL, 0, 0);
    tcp(&f, 1000, 22, 7, 8, KVL_TCP_ACK | KVL_TCP_PSH, NULL, 0);
    zeros(&f, 100);
    ip4_end(&f, ip);
    assert_int_equal(dec(KVL_LINK_EN10MB, &f, 64, f.n, &p), KVL_DEC_OK);
    assert_int_equal(p.payload_len, 100);
}

static void test_vlan_qinq(void **state)
{
    KVL_UNUSED(state);
    fb_t f;
    kvl_pkt_t p;
    memset(&f, 0, sizeof(f));
    eth(&f, 0x88a8);
    vlan(&f, 100, 0x8100);
    vlan(&f, 200, 0x0800);
    size_t ip = ip4(&f, 17, "10.9.0.1", "10.9.0.2", NULL, 0, 0);
    size_t u = udp(&f, 123, 123);
    zeros(&f, 48);
    udp_end(&f, u);
    ip4_end(&f, ip);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_int_equal(p.tags, 2);
    assert_int_equal(p.sport, 123);
    assert_int_equal(p.payload_len, 48);
    kvl_dec_stats_t st;
    memset(&st, 0, sizeof(st));
    kvl_dec_stats_add(&st, KVL_DEC_OK, &p);
    assert_int_equal(st.tagged, 1);
    assert_int_equal(st.by_reason[KVL_DEC_OK], 1);
    /* Four tags are fine, five are not. */
    for (unsigned n = 4; n <= 5; n++) {
        memset(&f, 0, sizeof(f));
        eth(&f, 0x8100);
        for (unsigned i = 0; i + 1 < n; i++) {
            vlan(&f, i, 0x8100);
        }
        vlan(&f, 9, 0x0800);
        ip = ip4(&f, 17, "10.9.0.1", "10.9.0.2", NULL, 0, 0);
        u = udp(&f, 1, 2);
        udp_end(&f, u);
        ip4_end(&f, ip);
        assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p),
                         n <= KVL_DEC_MAX_TAGS ? KVL_DEC_OK : KVL_DEC_TOO_MANY_TAGS);
    }
    /* A tag cut short. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x8100);
    put16(&f, 5);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_LINK_SHORT);
}

static void test_ipv6_ext(void **state)
{
    KVL_UNUSED(state);
    fb_t f;
    kvl_pkt_t p;
    /* Hop-by-hop, routing (2 units), destination options, then TCP. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x86dd);
    size_t ip = ip6(&f, 0, "2001:db8::1", "2001:db8::2");
    ext6(&f, 43, 0);
    ext6(&f, 60, 2);
    ext6(&f, 6, 0);
    tcp(&f, 5000, 80, 1, 0, KVL_TCP_SYN, NULL, 0);
    zeros(&f, 12);
    ip6_end(&f, ip);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_int_equal(p.ip_ver, 6);
    assert_int_equal(p.ext, 3);
    assert_int_equal(p.proto, 6);
    assert_int_equal(p.dport, 80);
    assert_int_equal(p.payload_len, 12);
    assert_int_equal(p.ip_len, 40 + 8 + 24 + 8 + 20 + 12);
    assert_int_equal(p.src[15], 1);
    assert_int_equal(p.dst[0], 0x20);
    /* Eight extension headers pass, nine do not. */
    for (unsigned n = 8; n <= 9; n++) {
        memset(&f, 0, sizeof(f));
        eth(&f, 0x86dd);
        ip = ip6(&f, 60, "2001:db8::1", "2001:db8::2");
        for (unsigned i = 0; i + 1 < n; i++) {
            ext6(&f, 60, 0);
        }
        ext6(&f, 17, 0);
        size_t u = udp(&f, 1, 2);
        udp_end(&f, u);
        ip6_end(&f, ip);
        assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p),
                         n <= KVL_DEC_MAX_EXT ? KVL_DEC_OK : KVL_DEC_TOO_MANY_EXT);
        assert_true(p.have_ip);
    }
    /* An extension header longer than the packet. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x86dd);
    ip = ip6(&f, 0, "2001:db8::1", "2001:db8::2");
    put8(&f, 17);
    put8(&f, 200);
    zeros(&f, 6);
    ip6_end(&f, ip);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_EXT_SHORT);
    /* Payload length beyond the frame. */
    set16(&f, 14 + 4, 100);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_IP_LENGTH);
}

static void frag6(fb_t *f, unsigned offset8, bool more)
{
    memset(f, 0, sizeof(*f));
    eth(f, 0x86dd);
    size_t ip = ip6(f, 44, "2001:db8::a", "2001:db8::b");
    put8(f, 17);
    put8(f, 0);
    put16(f, offset8 << 3 | (more ? 1 : 0));
    put32(f, 0xabcd);
    size_t u = udp(f, 4000, 53);
    zeros(f, 32);
    udp_end(f, u);
    set16(f, u + 4, 1000); /* the datagram's length, beyond this fragment */
    ip6_end(f, ip);
}

static void test_fragments(void **state)
{
    KVL_UNUSED(state);
    fb_t f;
    kvl_pkt_t p;
    frag6(&f, 0, true);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_true(p.first_fragment && p.have_l4);
    assert_int_equal(p.dport, 53);
    frag6(&f, 185, false);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_true(p.later_fragment);
    assert_false(p.have_l4);
    assert_int_equal(p.proto, 17);
    assert_int_equal(p.sport, 0);
    /* IPv4: the first fragment (MF, offset 0) has ports, a later one none. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x0800);
    size_t ip = ip4(&f, 17, "10.0.0.1", "10.0.0.2", NULL, 0, 0x2000);
    size_t u = udp(&f, 4000, 2049);
    zeros(&f, 64);
    udp_end(&f, u);
    set16(&f, u + 4, 3000);
    ip4_end(&f, ip);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_true(p.first_fragment && p.have_l4);
    assert_int_equal(p.dport, 2049);
    assert_int_equal(p.payload_len, 64); /* this fragment's bytes, not the datagram's */
    set16(&f, 14 + 6, 0x2000 | 9);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_true(p.later_fragment && p.have_ip);
    assert_false(p.have_l4 || p.first_fragment);
    assert_int_equal(p.payload_len, 8 + 64);
    kvl_dec_stats_t st;
    memset(&st, 0, sizeof(st));
    kvl_dec_stats_add(&st, KVL_DEC_OK, &p);
    assert_int_equal(st.later_fragments, 1);
}

static void test_gre(void **state)
{
    KVL_UNUSED(state);
    fb_t f;
    kvl_pkt_t p;
    /* Outer IPv4, GRE with a key, inner IPv4 UDP. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x0800);
    size_t o = ip4(&f, 47, "198.51.100.1", "198.51.100.2", NULL, 0, 0);
    put16(&f, 0x2000);
    put16(&f, 0x0800);
    put32(&f, 42);
    size_t i = ip4(&f, 17, "10.20.0.1", "10.30.0.1", NULL, 0, 0);
    size_t u = udp(&f, 5060, 5060);
    zeros(&f, 20);
    udp_end(&f, u);
    ip4_end(&f, i);
    ip4_end(&f, o);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_true(p.gre && p.have_l4);
    assert_int_equal(p.src[1], 20);
    assert_int_equal(p.dst[1], 30);
    assert_int_equal(p.ip_len, 48);
    assert_int_equal(p.dport, 5060);
    /* A second GRE inside: left as GRE, counted. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x0800);
    o = ip4(&f, 47, "198.51.100.1", "198.51.100.2", NULL, 0, 0);
    put16(&f, 0);
    put16(&f, 0x0800);
    i = ip4(&f, 47, "10.20.0.1", "10.30.0.1", NULL, 0, 0);
    put16(&f, 0);
    put16(&f, 0x0800);
    size_t i2 = ip4(&f, 17, "172.16.0.1", "172.16.0.2", NULL, 0, 0);
    u = udp(&f, 1, 2);
    udp_end(&f, u);
    ip4_end(&f, i2);
    ip4_end(&f, i);
    ip4_end(&f, o);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_GRE_NESTED);
    assert_true(p.gre && p.have_ip);
    assert_int_equal(p.proto, 47);
    assert_int_equal(p.src[1], 20);
    /* GRE carrying Ethernet (with a tag) carrying IPv6 ICMPv6. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x0800);
    o = ip4(&f, 47, "198.51.100.1", "198.51.100.2", NULL, 0, 0);
    put16(&f, 0x8000);
    put16(&f, 0x6558);
    put32(&f, 0);
    eth(&f, 0x8100);
    vlan(&f, 7, 0x86dd);
    size_t i6 = ip6(&f, 58, "fe80::1", "ff02::1");
    put8(&f, 135);
    put8(&f, 0);
    zeros(&f, 22);
    ip6_end(&f, i6);
    ip4_end(&f, o);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_true(p.gre);
    assert_int_equal(p.ip_ver, 6);
    assert_int_equal(p.tags, 1);
    assert_int_equal(p.icmp_type, 135);
    /* A broken inner packet: the outer one stays, the reason is the inner one. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x0800);
    o = ip4(&f, 47, "198.51.100.1", "198.51.100.2", NULL, 0, 0);
    put16(&f, 0);
    put16(&f, 0x0800);
    put8(&f, 0x43);
    zeros(&f, 19);
    ip4_end(&f, o);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_IP_IHL);
    assert_false(p.gre);
    assert_int_equal(p.proto, 47);
    assert_int_equal(p.src[0], 198);
    /* Short GRE header; routing bit. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x0800);
    o = ip4(&f, 47, "198.51.100.1", "198.51.100.2", NULL, 0, 0);
    put16(&f, 0x3000);
    put16(&f, 0x0800);
    put16(&f, 0);
    ip4_end(&f, o);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_GRE_BAD);
    f.b[34] = 0x40;
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_GRE_BAD);
}

static void test_links(void **state)
{
    KVL_UNUSED(state);
    fb_t f;
    kvl_pkt_t p;
    /* Linux cooked v1: packet type, ARPHRD, address length, 8 address bytes, protocol. */
    memset(&f, 0, sizeof(f));
    put16(&f, 4);
    put16(&f, 1);
    put16(&f, 6);
    zeros(&f, 8);
    put16(&f, 0x0800);
    size_t ip = ip4(&f, 1, "10.0.0.1", "10.0.0.2", NULL, 0, 0);
    put8(&f, 8);
    put8(&f, 0);
    zeros(&f, 6);
    ip4_end(&f, ip);
    assert_int_equal(dec_all(KVL_LINK_LINUX_SLL, &f, &p), KVL_DEC_OK);
    assert_int_equal(p.icmp_type, 8);
    assert_int_equal(p.proto, 1);
    /* Linux cooked v2: protocol first, 20 bytes. */
    memset(&f, 0, sizeof(f));
    put16(&f, 0x86dd);
    zeros(&f, 18);
    ip = ip6(&f, 17, "::1", "::2");
    size_t u = udp(&f, 9, 10);
    udp_end(&f, u);
    ip6_end(&f, ip);
    assert_int_equal(dec_all(KVL_LINK_LINUX_SLL2, &f, &p), KVL_DEC_OK);
    assert_int_equal(p.dport, 10);
    assert_int_equal(dec(KVL_LINK_LINUX_SLL2, &f, 19, 19, &p), KVL_DEC_LINK_SHORT);
    /* Raw IP and its version nibble. */
    memset(&f, 0, sizeof(f));
    ip = ip4(&f, 17, "10.0.0.1", "10.0.0.2", NULL, 0, 0);
    u = udp(&f, 9, 10);
    udp_end(&f, u);
    ip4_end(&f, ip);
    assert_int_equal(dec_all(KVL_LINK_RAW, &f, &p), KVL_DEC_OK);
    assert_int_equal(dec_all(KVL_LINK_IPV4, &f, &p), KVL_DEC_OK);
    assert_int_equal(dec_all(KVL_LINK_IPV6, &f, &p), KVL_DEC_IP_VERSION);
    f.b[0] = 0x55;
    assert_int_equal(dec_all(KVL_LINK_RAW, &f, &p), KVL_DEC_IP_VERSION);
    assert_int_equal(dec_all((kvl_link_t)105, &f, &p), KVL_DEC_LINK_UNKNOWN);
    /* ARP, and an 802.3 length field: not IP. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x0806);
    zeros(&f, 28);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_NOT_IP);
    assert_false(p.have_ip);
    f.b[12] = 0;
    f.b[13] = 46;
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_NOT_IP);
    assert_int_equal(dec(KVL_LINK_EN10MB, &f, 0, 0, &p), KVL_DEC_LINK_SHORT);
}

static void test_udp_icmp(void **state)
{
    KVL_UNUSED(state);
    fb_t f;
    kvl_pkt_t p;
    memset(&f, 0, sizeof(f));
    eth(&f, 0x0800);
    size_t ip = ip4(&f, 17, "10.0.0.1", "10.0.0.2", NULL, 0, 0);
    size_t u = udp(&f, 1, 2);
    zeros(&f, 4);
    ip4_end(&f, ip);
    set16(&f, u + 4, 7);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_UDP_LENGTH);
    set16(&f, u + 4, 13);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_UDP_LENGTH);
    set16(&f, u + 4, 12);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_int_equal(p.payload_len, 4);
    /* ICMP of 3 bytes. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x0800);
    ip = ip4(&f, 1, "10.0.0.1", "10.0.0.2", NULL, 0, 0);
    zeros(&f, 3);
    ip4_end(&f, ip);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_L4_SHORT);
    assert_true(p.have_ip);
    /* Another protocol (OSPF): IP only, payload from the IP length. */
    memset(&f, 0, sizeof(f));
    eth(&f, 0x0800);
    ip = ip4(&f, 89, "10.0.0.1", "224.0.0.5", NULL, 0, 0);
    zeros(&f, 44);
    ip4_end(&f, ip);
    assert_int_equal(dec_all(KVL_LINK_EN10MB, &f, &p), KVL_DEC_OK);
    assert_false(p.have_l4);
    assert_int_equal(p.payload_len, 44);
}

/* Random frames (a fixed seed): whatever comes back keeps the header's promises. */
static void test_random(void **state)
{
    KVL_UNUSED(state);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    fb_t f;
    kvl_pkt_t p;
    const kvl_link_t links[] = {KVL_LINK_EN10MB, KVL_LINK_LINUX_SLL, KVL_LINK_LINUX_SLL2,
                                KVL_LINK_RAW};
    for (int n = 0; n < 20000; n++) {
        tcp_syn_frame(&f);
        /* A few random bytes changed in a valid frame reach deeper than pure noise. */
        for (int k = 0; k < 4; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f.b[(x >> 8) % f.n] = (uint8_t)x;
        }
        size_t cap = (size_t)(x >> 40) % (f.n + 1);
        kvl_dec_reason_t r = dec(links[(x >> 20) % 4], &f, cap, f.n, &p);
        assert_true((unsigned)r < KVL_DEC__COUNT);
        assert_true(!p.have_l4 || p.have_ip);
        assert_true(!(p.later_fragment && p.have_l4));
        assert_true(p.ip_len <= p.wire);
        assert_true(p.tags <= KVL_DEC_MAX_TAGS && p.ext <= KVL_DEC_MAX_EXT);
    }
    for (int r = 0; r < KVL_DEC__COUNT; r++) {
        assert_string_not_equal(kvl_dec_reason_name((kvl_dec_reason_t)r), "?");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_syn),
        cmocka_unit_test(test_every_cut),
        cmocka_unit_test(test_ip_header_lengths),
        cmocka_unit_test(test_ip_options),
        cmocka_unit_test(test_tcp_options),
        cmocka_unit_test(test_vlan_qinq),
        cmocka_unit_test(test_ipv6_ext),
        cmocka_unit_test(test_fragments),
        cmocka_unit_test(test_gre),
        cmocka_unit_test(test_links),
        cmocka_unit_test(test_udp_icmp),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
