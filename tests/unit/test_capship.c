/*
 * test_capship.c — agent/capture/capship.c: the capture's figures as the family "capture",
 * against a link-time fake of the batcher that records what it is given: the instance
 * registered once per interface (scope, device, instance, family), a first group of zeros
 * at the start of the start's step, counters as running totals over intervals, drops and
 * applications unknown when not known, handshake times in ms; nDPI names to the fixed
 * application classes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <arpa/inet.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "batcher.h"
#include "capship.h"
#include "captop.h"
#include "flows.h"
#include "kvl.h"

#define MS 1000000ll
#define SEC 1000000000ll
#define BASE 100u /* the fake's first id */

/* --- the fake batcher -------------------------------------------------------------- */

typedef struct sample {
    bool known, real;
    uint64_t v;
    double r;
} sample_t;

static struct {
    int instances;
    kvl_instance_key_t key;
    char instance[64], device[64];
    int groups;
    int64_t time_ms[8];
    sample_t s[8][KVL_FAMILY_MAX];
    int open; /* the group being filled, -1 none */
    int events;
    char ev_kind[32], ev_device[64], ev_fields[5][KVL_CAPTOP_LIST_LEN];
    char ev_keys[5][16];
    size_t ev_n_fields;
} fk;

void kvl_batcher_event(kvl_batcher_t *b, const kvl_event_t *ev)
{
    KVL_UNUSED(b);
    fk.events++;
    snprintf(fk.ev_kind, sizeof(fk.ev_kind), "%s", ev->kind);
    snprintf(fk.ev_device, sizeof(fk.ev_device), "%s", ev->device);
    assert_int_equal(ev->severity, KVL_SEV_INFO);
    assert_true(ev->n_fields <= 5);
    fk.ev_n_fields = ev->n_fields;
    for (size_t i = 0; i < ev->n_fields; i++) {
        snprintf(fk.ev_keys[i], sizeof(fk.ev_keys[i]), "%s", ev->fields[i].key);
        snprintf(fk.ev_fields[i], sizeof(fk.ev_fields[i]), "%s", ev->fields[i].value);
    }
}

static const char *ev_field(const char *key)
{
    for (size_t i = 0; i < fk.ev_n_fields; i++) {
        if (strcmp(fk.ev_keys[i], key) == 0) {
            return fk.ev_fields[i];
        }
    }
    fail_msg("no field %s", key);
    return NULL;
}

uint32_t kvl_batcher_instance(kvl_batcher_t *b, const kvl_instance_key_t *key)
{
    KVL_UNUSED(b);
    fk.instances++;
    fk.key = *key;
    snprintf(fk.instance, sizeof(fk.instance), "%s", key->instance);
    snprintf(fk.device, sizeof(fk.device), "%s", key->device);
    return BASE;
}

const char *kvl_batcher_intern(kvl_batcher_t *b, const char *s)
{
    KVL_UNUSED(b);
    return s; /* the test's strings live as long as the test */
}

void kvl_batcher_group_begin(kvl_batcher_t *b, int64_t time_ms)
{
    KVL_UNUSED(b);
    assert_int_equal(fk.open, -1);
    assert_true(fk.groups < 8);
    fk.open = fk.groups++;
    fk.time_ms[fk.open] = time_ms;
    memset(fk.s[fk.open], 0, sizeof(fk.s[fk.open]));
}

static sample_t *at(uint32_t id)
{
    assert_true(fk.open >= 0);
    assert_true(id >= BASE && id < BASE + kvl_capture_family.n);
    return &fk.s[fk.open][id - BASE];
}

void kvl_batcher_add(kvl_batcher_t *b, uint32_t id, uint64_t value)
{
    KVL_UNUSED(b);
    *at(id) = (sample_t){.known = true, .v = value};
}

void kvl_batcher_add_real(kvl_batcher_t *b, uint32_t id, double value)
{
    KVL_UNUSED(b);
    *at(id) = (sample_t){.known = true, .real = true, .r = value};
}

void kvl_batcher_add_unknown(kvl_batcher_t *b, uint32_t id)
{
    KVL_UNUSED(b);
    *at(id) = (sample_t){.known = false};
}

void kvl_batcher_group_end(kvl_batcher_t *b)
{
    KVL_UNUSED(b);
    fk.open = -1;
}

/* --- helpers --------------------------------------------------------------------------- */

static size_t metric(const char *name)
{
    for (size_t i = 0; i < kvl_capture_family.n; i++) {
        if (strcmp(kvl_capture_family.metrics[i], name) == 0) {
            return i;
        }
    }
    fail_msg("no metric %s", name);
    return 0;
}

static const sample_t *got(int group, const char *name)
{
    return &fk.s[group][metric(name)];
}

static kvl_pkt_t tcp4(const char *src, const char *dst, uint16_t sp, uint16_t dp, uint8_t flags,
                      uint32_t wire)
{
    kvl_pkt_t p;
    memset(&p, 0, sizeof(p));
    p.have_ip = p.have_l4 = true;
    p.ip_ver = 4;
    p.proto = 6;
    assert_int_equal(inet_pton(AF_INET, src, p.src), 1);
    assert_int_equal(inet_pton(AF_INET, dst, p.dst), 1);
    p.sport = sp;
    p.dport = dp;
    p.wire = wire;
    p.ip_len = wire - 14;
    p.tcp_flags = flags;
    p.payload_len = wire > 54 ? wire - 54 : 0;
    p.seq = flags & KVL_TCP_SYN ? 100 : 101;
    return p;
}

static void reset(void)
{
    memset(&fk, 0, sizeof(fk));
    fk.open = -1;
}

/* --- tests ----------------------------------------------------------------------------- */

static void test_family(void **state)
{
    KVL_UNUSED(state);
    kvl_capship_t *s = kvl_capship_new((kvl_batcher_t *)&fk, "agent1", 60, 0);
    assert_non_null(s);
    assert_true(kvl_capture_family.n <= KVL_FAMILY_MAX);
    for (size_t i = 0; i < kvl_capture_family.n; i++) {
        const char *m = kvl_capture_family.metrics[i];
        /* RRD data source names: at most 19 of [A-Za-z0-9_] */
        assert_true(strlen(m) >= 1 && strlen(m) <= 19);
        assert_int_equal(strspn(m, "abcdefghijklmnopqrstuvwxyz0123456789_"), strlen(m));
        for (size_t j = 0; j < i; j++) {
            assert_string_not_equal(m, kvl_capture_family.metrics[j]);
        }
        bool counter = kvl_capture_family.kinds[i] == KVL_KIND_COUNTER;
        assert_true(counter || kvl_capture_family.kinds[i] == KVL_KIND_GAUGE);
        assert_false(counter && kvl_capture_family.reals[i]);
    }
    assert_int_equal(kvl_capture_family.kinds[metric("bytes_in")], KVL_KIND_COUNTER);
    assert_int_equal(kvl_capture_family.kinds[metric("flows_now")], KVL_KIND_GAUGE);
    assert_true(kvl_capture_family.reals[metric("hs_server_p95_ms")]);
    kvl_capship_free(s);
    kvl_capship_free(NULL);
}

static void test_app_class(void **state)
{
    KVL_UNUSED(state);
    static const struct {
        const char *name, *metric;
    } cases[] = {
        {"HTTP", "app_http"},        {"HTTP_Proxy", "app_http"}, {"TLS", "app_tls"},
        {"QUIC", "app_quic"},        {"DNS", "app_dns"},         {"SSH", "app_ssh"},
        {"RDP", "app_rdp"},          {"SMBv23", "app_smb"},      {"SMBv1", "app_smb"},
        {"NTP", "app_ntp"},          {"SNMP", "app_snmp"},       {"YouTube", "app_video"},
        {"RTP", "app_video"},        {"Unknown", "app_unknown"}, {NULL, "app_unknown"},
        {"BitTorrent", "app_other"}, {"TLSX", "app_other"},      {"DNScrypt", "app_other"},
        {"", "app_other"},
    };
    size_t app0 = metric("app_http");
    for (size_t i = 0; i < KVL_ARRAY_SIZE(cases); i++) {
        int c = kvl_capship_app_class(cases[i].name);
        assert_true(c >= 0 && c < KVL_CAPSHIP_APPS);
        assert_string_equal(kvl_capture_family.metrics[app0 + (size_t)c], cases[i].metric);
    }
}

static void test_intervals(void **state)
{
    KVL_UNUSED(state);
    reset();
    static kvl_prefix_t local;
    assert_int_equal(kvl_prefix_parse("10.0.0.0/8", &local), 0);
    kvl_flows_cfg_t fc = {.local = &local,
                          .n_local = 1,
                          .max_flows = 64,
                          .idle_ns = 30 * SEC,
                          .active_ns = 300 * SEC,
                          .top_capacity = 16,
                          .max_ports = 4};
    kvl_flows_t *f = kvl_flows_new(&fc);
    assert_non_null(f);
    kvl_capship_t *s = kvl_capship_new((kvl_batcher_t *)&fk, "agent1", 60, 0);
    assert_non_null(s);

    /* Interval 1: a handshake (server 4 ms, client 1 ms) and 1000 bytes of data out. */
    kvl_pkt_t p = tcp4("10.0.0.5", "192.0.2.9", 40000, 443, KVL_TCP_SYN, 60);
    kvl_flows_packet(f, 1 * SEC, &p, KVL_DEC_OK);
    p = tcp4("192.0.2.9", "10.0.0.5", 443, 40000, KVL_TCP_SYN | KVL_TCP_ACK, 60);
    kvl_flows_packet(f, 1 * SEC + 4 * MS, &p, KVL_DEC_OK);
    p = tcp4("10.0.0.5", "192.0.2.9", 40000, 443, KVL_TCP_ACK, 1000);
    kvl_flows_packet(f, 1 * SEC + 5 * MS, &p, KVL_DEC_OK);
    kvl_capture_interval_t iv = {.iface = "eth1",
                                 .start_ns = 1000 * SEC + 30 * SEC,
                                 .end_ns = 1000 * SEC + 90 * SEC,
                                 .flows = f,
                                 .drops = {.known = true, .received = 3, .dropped = 2}};
    assert_int_equal(kvl_capship_interval(s, &iv), 0);
    assert_int_equal(fk.instances, 1);
    assert_int_equal(fk.key.scope, KVL_SCOPE_CAPTURE);
    assert_string_equal(fk.device, "agent1");
    assert_string_equal(fk.instance, "eth1");
    assert_ptr_equal(fk.key.family, &kvl_capture_family);
    assert_int_equal(fk.key.interval_s, 60);
    /* zeros at the start of the start's step (1020 s), then the interval at its end */
    assert_int_equal(fk.groups, 2);
    assert_int_equal(fk.time_ms[0], 1020 * 1000);
    assert_true(got(0, "bytes_total")->known);
    assert_int_equal(got(0, "bytes_total")->v, 0);
    assert_false(got(0, "hs_server_min_ms")->known);
    assert_int_equal(fk.time_ms[1], 1090 * 1000);
    assert_int_equal(got(1, "bytes_total")->v, 1120);
    assert_int_equal(got(1, "packets_total")->v, 3);
    assert_int_equal(got(1, "bytes_out")->v, 1060);
    assert_int_equal(got(1, "bytes_in")->v, 60);
    assert_int_equal(got(1, "packets_in")->v, 1);
    assert_int_equal(got(1, "bytes_tcp")->v, 1120);
    assert_int_equal(got(1, "bytes_ipv4")->v, 1120);
    assert_int_equal(got(1, "bytes_udp")->v, 0);
    assert_int_equal(got(1, "drops_kernel")->v, 2);
    assert_int_equal(got(1, "flows_new")->v, 1);
    assert_int_equal(got(1, "flows_now")->v, 1);
    assert_false(got(1, "app_tls")->known); /* no classifier */
    assert_true(got(1, "hs_server_median_ms")->known);
    assert_true(fabs(got(1, "hs_server_min_ms")->r - 4.0) < 1e-9);
    assert_true(fabs(got(1, "hs_client_p95_ms")->r - 1.0) < 1e-9);

    /* Interval 2: 500 bytes more; drops unknown; totals go on, no zeros again. */
    kvl_flows_interval_reset(f);
    p = tcp4("192.0.2.9", "10.0.0.5", 443, 40000, KVL_TCP_ACK, 500);
    kvl_flows_packet(f, 2 * SEC, &p, KVL_DEC_OK);
    iv.start_ns = iv.end_ns;
    iv.end_ns += 60 * SEC;
    iv.drops = (kvl_capture_drops_t){.known = false};
    assert_int_equal(kvl_capship_interval(s, &iv), 0);
    assert_int_equal(fk.instances, 1);
    assert_int_equal(fk.groups, 3);
    assert_int_equal(fk.time_ms[2], 1150 * 1000);
    assert_int_equal(got(2, "bytes_total")->v, 1620);
    assert_int_equal(got(2, "bytes_in")->v, 560);
    assert_int_equal(got(2, "packets_total")->v, 4);
    assert_false(got(2, "drops_kernel")->known);
    assert_false(got(2, "drops_iface")->known);
    assert_false(got(2, "hs_server_min_ms")->known); /* no handshake this interval */

    /* A second interface: an instance of its own, its totals from zero. */
    kvl_flows_interval_reset(f);
    iv.iface = "eth2";
    assert_int_equal(kvl_capship_interval(s, &iv), 0);
    assert_int_equal(fk.instances, 2);
    assert_string_equal(fk.instance, "eth2");
    assert_int_equal(fk.groups, 5);
    assert_int_equal(got(4, "bytes_total")->v, 0);

    kvl_capship_free(s);
    kvl_flows_free(f);
}

/* The top lists as the event capture_top: at most top_n (and KVL_CAPTOP_MAX) entries,
 * largest first, parsed back by common/captop.c. */
static void test_top_event(void **state)
{
    KVL_UNUSED(state);
    reset();
    kvl_flows_cfg_t fc = {.max_flows = 256,
                          .idle_ns = 30 * SEC,
                          .active_ns = 300 * SEC,
                          .top_capacity = 64,
                          .max_ports = 4};
    kvl_flows_t *f = kvl_flows_new(&fc);
    assert_non_null(f);
    kvl_capship_t *s = kvl_capship_new((kvl_batcher_t *)&fk, "agent1", 60, 3);
    assert_non_null(s);
    /* host 10.0.0.i sends i packets of 1000 bytes to 192.0.2.1, i = 1..30 */
    for (int i = 1; i <= 30; i++) {
        char src[32];
        snprintf(src, sizeof(src), "10.0.0.%d", i);
        for (int k = 0; k < i; k++) {
            kvl_pkt_t p = tcp4(src, "192.0.2.1", (uint16_t)(20000 + i), 80, KVL_TCP_ACK, 1000);
            kvl_flows_packet(f, SEC + k * MS, &p, KVL_DEC_OK);
        }
    }
    kvl_capture_interval_t iv = {
        .iface = "eth1", .start_ns = 60 * SEC, .end_ns = 120 * SEC, .flows = f};
    assert_int_equal(kvl_capship_interval(s, &iv), 0);
    assert_int_equal(fk.events, 1);
    assert_string_equal(fk.ev_kind, KVL_CAPTOP_EVENT);
    assert_string_equal(fk.ev_device, "agent1");
    assert_string_equal(ev_field("interface"), "eth1");
    assert_string_equal(ev_field("start_ms"), "60000");
    assert_string_equal(ev_field("end_ms"), "120000");
    kvl_captop_entry_t e[KVL_CAPTOP_MAX];
    assert_int_equal(kvl_captop_list_parse(ev_field("hosts"), false, e, KVL_CAPTOP_MAX), 3);
    assert_string_equal(e[0].a, "192.0.2.1"); /* every byte: 465 frames */
    assert_int_equal(e[0].bytes, 465 * 1000);
    assert_int_equal(e[0].packets, 465);
    assert_int_equal(e[0].err, 0);
    assert_string_equal(e[1].a, "10.0.0.30");
    assert_int_equal(e[1].bytes, 30000);
    assert_string_equal(e[2].a, "10.0.0.29");
    assert_int_equal(kvl_captop_list_parse(ev_field("convs"), true, e, KVL_CAPTOP_MAX), 3);
    assert_string_equal(e[0].a, "10.0.0.30");
    assert_string_equal(e[0].b, "192.0.2.1");
    assert_int_equal(e[0].bytes, 30000);
    kvl_capship_free(s);

    /* top_n above the bound: KVL_CAPTOP_MAX entries; top_n 0: no event */
    reset();
    s = kvl_capship_new((kvl_batcher_t *)&fk, "agent1", 60, 1000);
    assert_int_equal(kvl_capship_interval(s, &iv), 0);
    assert_int_equal(kvl_captop_list_parse(ev_field("hosts"), false, e, KVL_CAPTOP_MAX),
                     KVL_CAPTOP_MAX);
    kvl_capship_free(s);
    reset();
    s = kvl_capship_new((kvl_batcher_t *)&fk, "agent1", 60, 0);
    assert_int_equal(kvl_capship_interval(s, &iv), 0);
    assert_int_equal(fk.events, 0);
    kvl_capship_free(s);
    kvl_flows_free(f);
}

/* Sampling 1 in 10: the counters and the top lists are 10 times what was counted (estimates of
 * all the traffic); the drops are the kernel's own counts, flows_now the table's and the
 * handshake times times, all as they are. */
static void test_sampled(void **state)
{
    KVL_UNUSED(state);
    reset();
    kvl_flows_cfg_t fc = {.max_flows = 64,
                          .idle_ns = 30 * SEC,
                          .active_ns = 300 * SEC,
                          .top_capacity = 16,
                          .max_ports = 4};
    kvl_flows_t *f = kvl_flows_new(&fc);
    assert_non_null(f);
    kvl_capship_t *s = kvl_capship_new((kvl_batcher_t *)&fk, "agent1", 60, 5);
    assert_non_null(s);
    kvl_pkt_t p = tcp4("10.0.0.5", "192.0.2.9", 40000, 443, KVL_TCP_SYN, 60);
    kvl_flows_packet(f, 1 * SEC, &p, KVL_DEC_OK);
    p = tcp4("192.0.2.9", "10.0.0.5", 443, 40000, KVL_TCP_SYN | KVL_TCP_ACK, 60);
    kvl_flows_packet(f, 1 * SEC + 4 * MS, &p, KVL_DEC_OK);
    p = tcp4("10.0.0.5", "192.0.2.9", 40000, 443, KVL_TCP_ACK | KVL_TCP_RST, 1000);
    kvl_flows_packet(f, 1 * SEC + 5 * MS, &p, KVL_DEC_OK);
    kvl_capture_interval_t iv = {
        .iface = "eth1",
        .start_ns = 60 * SEC,
        .end_ns = 120 * SEC,
        .flows = f,
        .drops = {.known = true, .received = 30, .dropped = 7, .if_dropped = 3},
        .scale = 10};
    kvl_flows_counts_t c;
    kvl_capture_counts(&iv, &c);
    assert_int_equal(c.total.bytes, 11200);
    assert_int_equal(c.l4[KVL_L4_TCP].pkts, 30);
    assert_int_equal(c.tcp_resets, 10);
    assert_int_equal(c.flows_new, 10);
    assert_int_equal(c.flows_now, 1); /* the table's own */
    assert_int_equal(kvl_capship_interval(s, &iv), 0);
    assert_int_equal(got(1, "bytes_total")->v, 11200);
    assert_int_equal(got(1, "packets_total")->v, 30);
    assert_int_equal(got(1, "bytes_tcp")->v, 11200);
    assert_int_equal(got(1, "tcp_resets")->v, 10);
    assert_int_equal(got(1, "flows_new")->v, 10);
    assert_int_equal(got(1, "drops_kernel")->v, 7);
    assert_int_equal(got(1, "drops_iface")->v, 3);
    assert_int_equal(got(1, "flows_now")->v, 1);
    assert_true(fabs(got(1, "hs_server_min_ms")->r - 4.0) < 1e-9);
    kvl_captop_entry_t e[KVL_CAPTOP_MAX];
    assert_int_equal(kvl_captop_list_parse(ev_field("hosts"), false, e, KVL_CAPTOP_MAX), 2);
    assert_int_equal(e[0].bytes, 11200);
    assert_int_equal(e[0].packets, 30);
    /* scale 0 (not set) is 1 */
    iv.scale = 0;
    kvl_capture_counts(&iv, &c);
    assert_int_equal(c.total.bytes, 1120);
    kvl_capship_free(s);
    kvl_flows_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family),    cmocka_unit_test(test_app_class),
        cmocka_unit_test(test_intervals), cmocka_unit_test(test_top_event),
        cmocka_unit_test(test_sampled),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
