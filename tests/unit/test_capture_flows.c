/*
 * test_capture_flows.c — unit tests for the capture's counters and flow table
 * (agent/capture/flows.h) and its space-saving sketch (agent/capture/sketch.h), on packets
 * made here as kvl_pkt_t: directions from the local networks, IP versions and transports,
 * TCP handshake times against the times put in (exact for one sample, within the stated
 * 2.2 % for many), retransmissions and resets, the table's bound (eviction, idle and active
 * timeouts), and the sketch's guarantees against exact counts of a skewed random stream.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flows.h"
#include "kvl.h"
#include "sketch.h"

#define MS 1000000ll
#define SEC 1000000000ll

static kvl_pkt_t pkt4(const char *src, const char *dst, uint8_t proto, uint16_t sp, uint16_t dp,
                      uint32_t wire)
{
    kvl_pkt_t p;
    memset(&p, 0, sizeof(p));
    p.have_ip = p.have_l4 = true;
    p.ip_ver = 4;
    p.proto = proto;
    assert_int_equal(inet_pton(AF_INET, src, p.src), 1);
    assert_int_equal(inet_pton(AF_INET, dst, p.dst), 1);
    p.sport = sp;
    p.dport = dp;
    p.wire = wire;
    p.ip_len = wire > 14 ? wire - 14 : 0;
    return p;
}

static kvl_pkt_t tcp4(const char *src, const char *dst, uint16_t sp, uint16_t dp, uint8_t flags,
                      uint32_t seq, uint32_t payload)
{
    kvl_pkt_t p = pkt4(src, dst, 6, sp, dp, 54 + payload);
    p.tcp_flags = flags;
    p.seq = seq;
    p.payload_len = payload;
    return p;
}

static kvl_flows_t *flows(size_t max_flows, const char *local)
{
    static kvl_prefix_t pfx;
    kvl_flows_cfg_t cfg = {.max_flows = max_flows,
                           .idle_ns = 30 * SEC,
                           .active_ns = 300 * SEC,
                           .top_capacity = 64,
                           .max_ports = 4};
    if (local != NULL) {
        assert_int_equal(kvl_prefix_parse(local, &pfx), 0);
        cfg.local = &pfx;
        cfg.n_local = 1;
    }
    kvl_flows_t *f = kvl_flows_new(&cfg);
    assert_non_null(f);
    return f;
}

static void test_prefix(void **state)
{
    KVL_UNUSED(state);
    kvl_prefix_t p;
    assert_int_equal(kvl_prefix_parse("10.1.2.3/8", &p), 0);
    assert_int_equal(p.ver, 4);
    assert_int_equal(p.len, 8);
    assert_int_equal(p.addr[1], 0);
    uint8_t a[16] = {10, 200, 1, 1};
    assert_true(kvl_prefix_has(&p, 4, a));
    a[0] = 11;
    assert_false(kvl_prefix_has(&p, 4, a));
    assert_false(kvl_prefix_has(&p, 6, a));
    assert_int_equal(kvl_prefix_parse("2001:db8::/33", &p), 0);
    uint8_t b[16] = {0x20, 0x01, 0x0d, 0xb8, 0x7f};
    assert_true(kvl_prefix_has(&p, 6, b));
    b[4] = 0x80;
    assert_false(kvl_prefix_has(&p, 6, b));
    assert_int_equal(kvl_prefix_parse("192.0.2.7", &p), 0);
    assert_int_equal(p.len, 32);
    const char *bad[] = {"",           "10.0.0.0/33", "::/129",       "10.0.0.0/",
                         "10.0.0.0/x", "host",        "10.0.0.0/8/8", "10.0.0.0/-1"};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        assert_int_equal(kvl_prefix_parse(bad[i], &p), -1);
    }
}

static void test_directions(void **state)
{
    KVL_UNUSED(state);
    kvl_flows_t *f = flows(16, "10.0.0.0/8");
    kvl_pkt_t p = pkt4("10.0.0.1", "192.0.2.1", 17, 1000, 53, 100);
    kvl_flows_packet(f, 1 * SEC, &p, KVL_DEC_OK);
    p = pkt4("192.0.2.1", "10.0.0.1", 17, 53, 1000, 200);
    kvl_flows_packet(f, 1 * SEC, &p, KVL_DEC_OK);
    p = pkt4("10.0.0.1", "10.0.0.2", 1, 0, 0, 98);
    kvl_flows_packet(f, 2 * SEC, &p, KVL_DEC_OK);
    p = pkt4("192.0.2.1", "198.51.100.1", 47, 0, 0, 300);
    p.have_l4 = false;
    kvl_flows_packet(f, 2 * SEC, &p, KVL_DEC_OK);
    kvl_pkt_t arp;
    memset(&arp, 0, sizeof(arp));
    arp.wire = 60;
    kvl_flows_packet(f, 2 * SEC, &arp, KVL_DEC_NOT_IP);
    kvl_pkt_t bad = pkt4("10.0.0.9", "10.0.0.8", 6, 0, 0, 70);
    bad.have_l4 = false;
    kvl_flows_packet(f, 2 * SEC, &bad, KVL_DEC_TCP_OFFSET);
    const kvl_flows_counts_t *c = kvl_flows_counts(f);
    assert_int_equal(c->total.pkts, 6);
    assert_int_equal(c->total.bytes, 100 + 200 + 98 + 300 + 60 + 70);
    assert_int_equal(c->non_ip.pkts, 1);
    assert_int_equal(c->non_ip.bytes, 60);
    assert_int_equal(c->dir[KVL_DIR_OUT].bytes, 100);
    assert_int_equal(c->dir[KVL_DIR_IN].bytes, 200);
    assert_int_equal(c->dir[KVL_DIR_INTERNAL].bytes, 98 + 70);
    assert_int_equal(c->dir[KVL_DIR_EXTERNAL].bytes, 300);
    assert_int_equal(c->ipv4.pkts, 5);
    assert_int_equal(c->l4[KVL_L4_UDP].pkts, 2);
    assert_int_equal(c->l4[KVL_L4_ICMP].pkts, 1);
    assert_int_equal(c->l4[KVL_L4_OTHER].pkts, 1);
    assert_int_equal(c->l4[KVL_L4_TCP].pkts, 1);
    assert_int_equal(c->malformed, 1);
    assert_int_equal(c->dec.by_reason[KVL_DEC_TCP_OFFSET], 1);
    assert_int_equal(c->dec.by_reason[KVL_DEC_NOT_IP], 1);
    assert_int_equal(c->flows_new, 4); /* the DNS exchange is one flow */
    /* Top hosts: 10.0.0.1 (100 + 200 + 98) and 192.0.2.1 (100 + 200 + 300) lead. */
    kvl_top_t t[8];
    size_t n = kvl_flows_top_hosts(f, t, 8);
    assert_int_equal(n, 6);
    assert_int_equal(t[0].a[0], 192);
    assert_int_equal(t[0].bytes, 600);
    assert_int_equal(t[1].a[0], 10);
    assert_int_equal(t[1].bytes, 398);
    assert_int_equal(t[0].bytes_err, 0);
    assert_int_equal(t[0].packets, 3);
    n = kvl_flows_top_convs(f, t, 1);
    assert_int_equal(n, 1);
    assert_int_equal(t[0].bytes, 300);
    n = kvl_flows_top_convs(f, t, 8);
    assert_int_equal(n, 4);
    /* A tie at 300 bytes, ordered by key: 10.0.0.1 <-> 192.0.2.1 (100 + 200) first, then
     * 192.0.2.1 <-> 198.51.100.1. */
    assert_int_equal(t[0].bytes, 300);
    assert_int_equal(t[0].a[0], 10);
    assert_int_equal(t[0].b[0], 192);
    assert_int_equal(t[1].bytes, 300);
    assert_int_equal(t[1].a[0], 192);
    assert_int_equal(t[1].b[0], 198);
    kvl_flows_interval_reset(f);
    assert_int_equal(kvl_flows_counts(f)->total.pkts, 0);
    assert_int_equal(kvl_flows_counts(f)->flows_now, 4);
    assert_int_equal(kvl_flows_top_hosts(f, t, 8), 0);
    kvl_flows_free(f);
}

/* One handshake per client port: SYN at t, SYN-ACK after srv, ACK after cli. */
static void handshake(kvl_flows_t *f, uint16_t cport, uint16_t sport, int64_t t, int64_t srv,
                      int64_t cli)
{
    kvl_pkt_t p = tcp4("10.0.0.5", "192.0.2.9", cport, sport, KVL_TCP_SYN, 100, 0);
    kvl_flows_packet(f, t, &p, KVL_DEC_OK);
    p = tcp4("192.0.2.9", "10.0.0.5", sport, cport, KVL_TCP_SYN | KVL_TCP_ACK, 900, 0);
    kvl_flows_packet(f, t + srv, &p, KVL_DEC_OK);
    p = tcp4("10.0.0.5", "192.0.2.9", cport, sport, KVL_TCP_ACK, 101, 0);
    kvl_flows_packet(f, t + srv + cli, &p, KVL_DEC_OK);
}

/* Every port's handshakes together: the histograms merged (min and max exact, quantiles
 * within 2.2 % of the nearest rank over all samples), ports beyond max_ports included. */
static void test_handshake_all(void **state)
{
    KVL_UNUSED(state);
    kvl_flows_t *f = flows(1024, "10.0.0.0/8");
    kvl_hs_summary_t srv, cli;
    kvl_flows_handshake_all(f, &srv, &cli);
    assert_int_equal(srv.n, 0);
    assert_int_equal(cli.n, 0);
    /* server times 1..100 ms over 8 ports (4 of them beyond max_ports), client 2 ms */
    for (int i = 1; i <= 100; i++) {
        handshake(f, (uint16_t)(30000 + i), (uint16_t)(8000 + i % 8), 1 * SEC + i * 100 * MS,
                  i * MS, 2 * MS);
    }
    kvl_flows_handshake_all(f, &srv, &cli);
    assert_int_equal(srv.n, 100);
    assert_int_equal(cli.n, 100);
    assert_int_equal(srv.min_ns, 1 * MS);
    assert_int_equal(srv.max_ns, 100 * MS);
    assert_true(llabs(srv.median_ns - 50 * MS) <= 50 * MS * 22 / 1000);
    assert_true(llabs(srv.p95_ns - 95 * MS) <= 95 * MS * 22 / 1000);
    assert_true(llabs(cli.median_ns - 2 * MS) <= 2 * MS * 22 / 1000);
    kvl_port_hs_t hs[16];
    uint64_t sum = 0;
    size_t n = kvl_flows_handshakes(f, hs, 16);
    for (size_t i = 0; i < n; i++) {
        sum += hs[i].server.n;
    }
    assert_int_equal(sum, srv.n);
    kvl_flows_interval_reset(f);
    kvl_flows_handshake_all(f, &srv, &cli);
    assert_int_equal(srv.n, 0);
    kvl_flows_free(f);
}

static void test_handshakes(void **state)
{
    KVL_UNUSED(state);
    kvl_flows_t *f = flows(1024, "10.0.0.0/8");
    handshake(f, 40000, 443, 1 * SEC, 5 * MS, 2 * MS);
    kvl_port_hs_t hs[8];
    size_t n = kvl_flows_handshakes(f, hs, 8);
    assert_int_equal(n, 1);
    assert_int_equal(hs[0].port, 443);
    assert_int_equal(hs[0].server.n, 1);
    assert_int_equal(hs[0].server.min_ns, 5 * MS);
    assert_int_equal(hs[0].server.median_ns, 5 * MS);
    assert_int_equal(hs[0].server.p95_ns, 5 * MS);
    assert_int_equal(hs[0].client.median_ns, 2 * MS);
    /* 100 handshakes on port 80 with server times 1..100 ms: median 50 ms, p95 95 ms. */
    for (int i = 1; i <= 100; i++) {
        handshake(f, (uint16_t)(41000 + i), 80, 2 * SEC + i * 200 * MS, i * MS, 3 * MS);
    }
    /* A SYN re-sent keeps the first SYN's time; a SYN-ACK from the client is ignored. */
    kvl_pkt_t p = tcp4("10.0.0.5", "192.0.2.9", 50000, 22, KVL_TCP_SYN, 7, 0);
    kvl_flows_packet(f, 60 * SEC, &p, KVL_DEC_OK);
    kvl_flows_packet(f, 61 * SEC, &p, KVL_DEC_OK);
    p = tcp4("10.0.0.5", "192.0.2.9", 50000, 22, KVL_TCP_SYN | KVL_TCP_ACK, 7, 0);
    kvl_flows_packet(f, 61 * SEC + 1, &p, KVL_DEC_OK);
    p = tcp4("192.0.2.9", "10.0.0.5", 22, 50000, KVL_TCP_SYN | KVL_TCP_ACK, 70, 0);
    kvl_flows_packet(f, 61 * SEC + 10 * MS, &p, KVL_DEC_OK);
    /* Ports beyond max_ports (4) go under port 0. */
    for (uint16_t sp = 1000; sp < 1004; sp++) {
        handshake(f, (uint16_t)(sp + 20000), sp, 70 * SEC, 1 * MS, 1 * MS);
    }
    n = kvl_flows_handshakes(f, hs, 8);
    assert_int_equal(n, 5);
    assert_int_equal(hs[0].port, 22);
    assert_int_equal(hs[0].server.n, 1);
    assert_int_equal(hs[0].server.min_ns, 1 * SEC + 10 * MS);
    assert_int_equal(hs[0].client.n, 0);
    assert_int_equal(hs[1].port, 80);
    assert_int_equal(hs[1].server.n, 100);
    assert_int_equal(hs[1].server.min_ns, 1 * MS);
    assert_int_equal(hs[1].server.max_ns, 100 * MS);
    assert_true(llabs(hs[1].server.median_ns - 50 * MS) <= 50 * MS * 22 / 1000);
    assert_true(llabs(hs[1].server.p95_ns - 95 * MS) <= 95 * MS * 22 / 1000);
    assert_true(llabs(hs[1].client.median_ns - 3 * MS) <= 3 * MS * 22 / 1000);
    assert_int_equal(hs[2].port, 443);
    assert_int_equal(hs[3].port, 1000);
    assert_int_equal(hs[4].port, 0);
    assert_int_equal(hs[4].server.n, 3);
    kvl_flows_free(f);
}

static void test_retrans_resets(void **state)
{
    KVL_UNUSED(state);
    kvl_flows_t *f = flows(64, NULL);
    handshake(f, 40000, 8080, SEC, MS, MS);
    uint32_t seq = 101;
    for (int i = 0; i < 10; i++) {
        kvl_pkt_t p = tcp4("10.0.0.5", "192.0.2.9", 40000, 8080, KVL_TCP_ACK, seq, 1000);
        kvl_flows_packet(f, 2 * SEC + i, &p, KVL_DEC_OK);
        if (i == 3 || i == 7) {
            kvl_flows_packet(f, 2 * SEC + i + 1, &p, KVL_DEC_OK); /* re-sent */
        }
        seq += 1000;
    }
    /* Pure ACKs and the other direction's first data are no retransmissions. */
    kvl_pkt_t a = tcp4("192.0.2.9", "10.0.0.5", 8080, 40000, KVL_TCP_ACK, 901, 0);
    kvl_flows_packet(f, 3 * SEC, &a, KVL_DEC_OK);
    kvl_flows_packet(f, 3 * SEC, &a, KVL_DEC_OK);
    a.payload_len = 500;
    kvl_flows_packet(f, 3 * SEC, &a, KVL_DEC_OK);
    /* Sequence numbers wrap. */
    kvl_pkt_t w = tcp4("10.0.0.6", "192.0.2.9", 1, 2, KVL_TCP_ACK, 0xfffffc00u, 1024);
    kvl_flows_packet(f, 4 * SEC, &w, KVL_DEC_OK);
    w.seq = 0;
    kvl_flows_packet(f, 4 * SEC, &w, KVL_DEC_OK);
    kvl_pkt_t r = tcp4("192.0.2.9", "10.0.0.5", 8080, 40000, KVL_TCP_RST | KVL_TCP_ACK, 1401, 0);
    kvl_flows_packet(f, 5 * SEC, &r, KVL_DEC_OK);
    const kvl_flows_counts_t *c = kvl_flows_counts(f);
    assert_int_equal(c->tcp_retrans, 2);
    assert_int_equal(c->tcp_resets, 1);
    kvl_flows_free(f);
}

static void test_table_bound(void **state)
{
    KVL_UNUSED(state);
    kvl_flows_t *f = flows(4, NULL);
    for (uint16_t i = 0; i < 10; i++) {
        kvl_pkt_t p = pkt4("10.0.0.1", "10.0.0.2", 17, (uint16_t)(1000 + i), 53, 80);
        kvl_flows_packet(f, SEC + i, &p, KVL_DEC_OK);
    }
    const kvl_flows_counts_t *c = kvl_flows_counts(f);
    assert_int_equal(c->flows_new, 10);
    assert_int_equal(c->flows_evicted, 6);
    assert_int_equal(c->flows_now, 4);
    /* The most recent four remain: seeing port 1009 again makes no new flow. */
    kvl_pkt_t p = pkt4("10.0.0.2", "10.0.0.1", 17, 53, 1009, 80);
    kvl_flows_packet(f, 2 * SEC, &p, KVL_DEC_OK);
    assert_int_equal(c->flows_new, 10);
    /* Port 1006 was touched last but one... refresh it, then a new flow evicts 1007. */
    p = pkt4("10.0.0.1", "10.0.0.2", 17, 1006, 53, 80);
    kvl_flows_packet(f, 3 * SEC, &p, KVL_DEC_OK);
    p = pkt4("10.0.0.1", "10.0.0.2", 17, 2000, 53, 80);
    kvl_flows_packet(f, 4 * SEC, &p, KVL_DEC_OK);
    assert_int_equal(c->flows_evicted, 7);
    p = pkt4("10.0.0.1", "10.0.0.2", 17, 1006, 53, 80);
    kvl_flows_packet(f, 5 * SEC, &p, KVL_DEC_OK);
    assert_int_equal(c->flows_new, 11);
    /* Idle: 30 s later everything but what is seen then has ended. */
    kvl_flows_expire(f, 5 * SEC + 30 * SEC);
    assert_int_equal(c->flows_idle, 4);
    assert_int_equal(c->flows_now, 0);
    /* Active: one flow seen every 10 s for 20 minutes restarts every 300 s. */
    for (int i = 0; i <= 120; i++) {
        p = pkt4("10.0.0.1", "10.0.0.2", 6, 1, 2, 80);
        kvl_flows_packet(f, 100 * SEC + i * 10 * SEC, &p, KVL_DEC_OK);
    }
    assert_int_equal(c->flows_active, 4);
    assert_int_equal(c->flows_now, 1);
    /* Thousands of flows through a table of 4: the index stays consistent. */
    for (uint32_t i = 0; i < 5000; i++) {
        p = pkt4("10.0.0.1", "10.0.0.2", 17, (uint16_t)(i % 7), (uint16_t)(i % 11), 80);
        kvl_flows_packet(f, 2000 * SEC + i, &p, KVL_DEC_OK);
        assert_true(c->flows_now <= 4);
    }
    kvl_flows_free(f);
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_sketch(void **state)
{
    KVL_UNUSED(state);
    enum { K = 64, KEYS = 5000, HEAVY = 8 };
    kvl_sketch_t *s = kvl_sketch_new(K);
    assert_non_null(s);
    uint64_t *truth = calloc(KEYS, sizeof(*truth));
    assert_non_null(truth);
    uint64_t x = 88172645463325252ull;
    uint8_t key[KVL_SKETCH_KEY];
    /* Heavy keys 0..7 get weights growing with their number; the rest a uniform tail. */
    for (int i = 0; i < 200000; i++) {
        uint64_t r = rnd(&x);
        uint32_t k = (r % 4 == 0) ? (uint32_t)((r >> 8) % HEAVY) : (uint32_t)((r >> 8) % KEYS);
        uint64_t w = 40 + (r >> 32) % 1400 + (k < HEAVY ? 100u * k : 0u);
        memset(key, 0, sizeof(key));
        memcpy(key, &k, sizeof(k));
        kvl_sketch_add(s, key, w);
        truth[k] += w;
    }
    uint64_t n = kvl_sketch_total(s);
    kvl_sketch_entry_t top[K];
    size_t got = kvl_sketch_top(s, top, K);
    assert_int_equal(got, K);
    for (size_t i = 0; i < got; i++) {
        uint32_t k;
        memcpy(&k, top[i].key, sizeof(k));
        assert_true(k < KEYS);
        assert_true(top[i].count >= truth[k]);
        assert_true(top[i].count - top[i].error <= truth[k]);
        assert_true(top[i].error <= n / K);
        assert_true(i == 0 || top[i - 1].count >= top[i].count);
    }
    /* Every key above N / k is present, and the heavy ones rank first, heaviest first. */
    for (uint32_t k = 0; k < KEYS; k++) {
        if (truth[k] <= n / K) {
            continue;
        }
        bool found = false;
        for (size_t i = 0; i < got; i++) {
            found = found || memcmp(top[i].key, &k, sizeof(k)) == 0;
        }
        assert_true(found);
    }
    for (uint32_t i = 0; i < HEAVY; i++) {
        uint32_t k;
        memcpy(&k, top[i].key, sizeof(k));
        assert_int_equal(k, HEAVY - 1 - i);
    }
    /* Within capacity, counts are exact. */
    kvl_sketch_reset(s);
    assert_int_equal(kvl_sketch_total(s), 0);
    for (uint32_t k = 0; k < K; k++) {
        memset(key, 0, sizeof(key));
        memcpy(key, &k, sizeof(k));
        kvl_sketch_add(s, key, k + 1);
        kvl_sketch_add(s, key, k + 1);
    }
    got = kvl_sketch_top(s, top, 3);
    assert_int_equal(got, 3);
    assert_int_equal(top[0].count, 2 * K);
    assert_int_equal(top[0].error, 0);
    assert_int_equal(top[2].count, 2 * (K - 2));
    free(truth);
    kvl_sketch_free(s);
    kvl_sketch_free(NULL);
    assert_null(kvl_sketch_new(0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix),         cmocka_unit_test(test_directions),
        cmocka_unit_test(test_handshakes),     cmocka_unit_test(test_handshake_all),
        cmocka_unit_test(test_retrans_resets), cmocka_unit_test(test_table_bound),
        cmocka_unit_test(test_sketch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
