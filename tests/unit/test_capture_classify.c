/*
 * test_capture_classify.c — nDPI behind the flow table's seam (agent/capture/classify.h) on
 * raw IPv4 packets built here: a DNS query and answer named DNS at the first packet, an HTTP
 * request named HTTP with the handshake before it moved from pending (within an interval,
 * not across one), a flow of noise given up after
 * `give_up` packets (guessed by port, or unknown) and a TCP connection of noise decided when
 * it closes, slots running out (flows unclassified, counted), every slot handed back when
 * flows end and when the table is freed.
 */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "classify.h"
#include "decode.h"
#include "flows.h"
#include "kvl.h"

#define MS 1000000ll

static size_t ip4_udp(uint8_t *b, const char *src, const char *dst, uint16_t sp, uint16_t dp,
                      const uint8_t *pl, size_t n)
{
    memset(b, 0, 28);
    b[0] = 0x45;
    b[2] = (uint8_t)((28 + n) >> 8);
    b[3] = (uint8_t)(28 + n);
    b[8] = 64;
    b[9] = 17;
    assert_int_equal(inet_pton(AF_INET, src, b + 12), 1);
    assert_int_equal(inet_pton(AF_INET, dst, b + 16), 1);
    b[20] = (uint8_t)(sp >> 8);
    b[21] = (uint8_t)sp;
    b[22] = (uint8_t)(dp >> 8);
    b[23] = (uint8_t)dp;
    b[24] = (uint8_t)((8 + n) >> 8);
    b[25] = (uint8_t)(8 + n);
    memcpy(b + 28, pl, n);
    return 28 + n;
}

static size_t ip4_tcp(uint8_t *b, const char *src, const char *dst, uint16_t sp, uint16_t dp,
                      uint8_t flags, uint32_t seq, uint32_t ack, const uint8_t *pl, size_t n)
{
    memset(b, 0, 40);
    b[0] = 0x45;
    b[2] = (uint8_t)((40 + n) >> 8);
    b[3] = (uint8_t)(40 + n);
    b[8] = 64;
    b[9] = 6;
    assert_int_equal(inet_pton(AF_INET, src, b + 12), 1);
    assert_int_equal(inet_pton(AF_INET, dst, b + 16), 1);
    uint8_t *t = b + 20;
    t[0] = (uint8_t)(sp >> 8);
    t[1] = (uint8_t)sp;
    t[2] = (uint8_t)(dp >> 8);
    t[3] = (uint8_t)dp;
    for (int i = 0; i < 4; i++) {
        t[4 + i] = (uint8_t)(seq >> (24 - 8 * i));
        t[8 + i] = (uint8_t)(ack >> (24 - 8 * i));
    }
    t[12] = 0x50;
    t[13] = flags;
    t[14] = 0xff;
    if (n > 0) {
        memcpy(b + 40, pl, n);
    }
    return 40 + n;
}

static void feed(kvl_flows_t *f, const uint8_t *b, size_t n, int64_t ts)
{
    kvl_pkt_t p;
    assert_int_equal(kvl_decode(KVL_LINK_RAW, b, n, n, &p), KVL_DEC_OK);
    kvl_flows_packet(f, ts, &p, KVL_DEC_OK);
}

static kvl_flows_t *table(kvl_classify_t *c, kvl_flows_classifier_t *seam)
{
    kvl_classify_seam(c, seam);
    kvl_flows_cfg_t cfg = {.max_flows = 64,
                           .idle_ns = 30000 * MS,
                           .active_ns = 300000 * MS,
                           .top_capacity = 16,
                           .max_ports = 4,
                           .classifier = seam};
    kvl_flows_t *f = kvl_flows_new(&cfg);
    assert_non_null(f);
    return f;
}

/* The application named `name` among the interval's, or NULL. */
static const kvl_app_count_t *app(const kvl_flows_t *f, const char *name)
{
    static kvl_app_count_t a[64];
    size_t n = kvl_flows_apps(f, a, 64);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a[i].name, name) == 0) {
            return &a[i];
        }
    }
    return NULL;
}

/* A DNS query for www.kerala.gov.in, type A, and its answer (192.0.2.80). */
static const uint8_t query[] = {0x12, 0x34, 0x01, 0x00, 0,   1,   0,   0,   0,   0,   0,   0,
                                3,    'w',  'w',  'w',  6,   'k', 'e', 'r', 'a', 'l', 'a', 3,
                                'g',  'o',  'v',  2,    'i', 'n', 0,   0,   1,   0,   1};
static const uint8_t answer[] = {
    0x12, 0x34, 0x81, 0x80, 0,   1,   0, 1,   0,   0,   0,  0,   3,   'w', 'w', 'w', 6,
    'k',  'e',  'r',  'a',  'l', 'a', 3, 'g', 'o', 'v', 2,  'i', 'n', 0,   0,   1,   0,
    1,    0xc0, 0x0c, 0,    1,   0,   1, 0,   0,   0,   60, 0,   4,   192, 0,   2,   80};

static void test_dns_http(void **state)
{
    KVL_UNUSED(state);
    char err[256];
    kvl_classify_t *c = kvl_classify_new(16, 8, 8, err, sizeof(err));
    assert_non_null(c);
    kvl_flows_classifier_t seam;
    kvl_flows_t *f = table(c, &seam);
    uint8_t b[1600];
    size_t n = ip4_udp(b, "10.1.0.5", "10.1.0.53", 40000, 53, query, sizeof(query));
    feed(f, b, n, 1000 * MS);
    size_t m = ip4_udp(b, "10.1.0.53", "10.1.0.5", 53, 40000, answer, sizeof(answer));
    feed(f, b, m, 1001 * MS);
    const kvl_app_count_t *a = app(f, "DNS");
    assert_non_null(a);
    assert_int_equal(a->c.pkts, 2);
    assert_int_equal(a->c.bytes, n + m);
    /* HTTP: the handshake is pending until the request names it. */
    feed(f, b, ip4_tcp(b, "10.1.0.5", "192.0.2.80", 41000, 80, 0x02, 100, 0, NULL, 0), 1100 * MS);
    feed(f, b, ip4_tcp(b, "192.0.2.80", "10.1.0.5", 80, 41000, 0x12, 900, 101, NULL, 0), 1101 * MS);
    feed(f, b, ip4_tcp(b, "10.1.0.5", "192.0.2.80", 41000, 80, 0x10, 101, 901, NULL, 0), 1102 * MS);
    assert_int_equal(kvl_flows_counts(f)->app_pending.pkts, 3);
    static const char get[] = "GET /index.html HTTP/1.1\r\nHost: www.kerala.gov.in\r\n"
                              "User-Agent: kaaval-test\r\nAccept: */*\r\n\r\n";
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                             "Content-Length: 2\r\n\r\nok";
    feed(f, b,
         ip4_tcp(b, "10.1.0.5", "192.0.2.80", 41000, 80, 0x18, 101, 901, (const uint8_t *)get,
                 strlen(get)),
         1103 * MS);
    feed(f, b,
         ip4_tcp(b, "192.0.2.80", "10.1.0.5", 80, 41000, 0x18, 901, 101 + (uint32_t)strlen(get),
                 (const uint8_t *)ok, strlen(ok)),
         1104 * MS);
    /* Decided: the whole connection is HTTP, its handshake moved there from pending. */
    a = app(f, "HTTP");
    assert_non_null(a);
    assert_int_equal(a->c.pkts, 5);
    assert_int_equal(kvl_flows_counts(f)->app_pending.pkts, 0);
    /* A flow undecided when an interval ends: its frames stay that interval's pending; after
     * the decision, only the new interval's frames count under the application. */
    feed(f, b, ip4_tcp(b, "10.1.0.5", "192.0.2.80", 41001, 80, 0x02, 500, 0, NULL, 0), 1200 * MS);
    assert_int_equal(kvl_flows_counts(f)->app_pending.pkts, 1);
    kvl_flows_interval_reset(f);
    feed(f, b, ip4_tcp(b, "192.0.2.80", "10.1.0.5", 80, 41001, 0x12, 700, 501, NULL, 0), 1201 * MS);
    feed(f, b,
         ip4_tcp(b, "10.1.0.5", "192.0.2.80", 41001, 80, 0x18, 501, 701, (const uint8_t *)get,
                 strlen(get)),
         1202 * MS);
    a = app(f, "HTTP");
    assert_non_null(a);
    assert_int_equal(a->c.pkts, 2);
    assert_int_equal(kvl_flows_counts(f)->app_pending.pkts, 0);
    /* The names nDPI read: the DNS query's and the HTTP Host (two connections). */
    kvl_classify_name_t names[4];
    size_t nn = kvl_classify_top_names(c, names, 4);
    assert_int_equal(nn, 1);
    assert_string_equal(names[0].name, "www.kerala.gov.in");
    assert_int_equal(names[0].connections, 3);
    assert_int_equal(names[0].error, 0);
    kvl_classify_names_reset(c);
    assert_int_equal(kvl_classify_top_names(c, names, 4), 0);
    kvl_classify_stats_t st;
    kvl_classify_get_stats(c, &st);
    assert_int_equal(st.decided, 3);
    assert_int_equal(st.in_use, 0);
    kvl_flows_free(f);
    kvl_classify_free(c);
}

static void test_give_up_and_slots(void **state)
{
    KVL_UNUSED(state);
    char err[256];
    kvl_classify_t *c = kvl_classify_new(2, 3, 8, err, sizeof(err));
    assert_non_null(c);
    kvl_flows_classifier_t seam;
    kvl_flows_t *f = table(c, &seam);
    uint8_t b[256], noise[40];
    for (size_t i = 0; i < sizeof(noise); i++) {
        noise[i] = (uint8_t)(i * 37 + 11);
    }
    /* Three flows of noise: two take the slots, the third finds none. */
    for (uint16_t k = 0; k < 3; k++) {
        feed(f, b, ip4_udp(b, "10.1.0.5", "10.1.0.6", (uint16_t)(34567 + k), 45678, noise, 40),
             2000 * MS + k);
    }
    kvl_classify_stats_t st;
    kvl_classify_get_stats(c, &st);
    assert_int_equal(st.in_use, 2);
    assert_int_equal(st.no_slot, 1);
    assert_int_equal(kvl_flows_counts(f)->app_unclassified.pkts, 1);
    assert_int_equal(kvl_flows_counts(f)->app_pending.pkts, 2);
    /* Two more packets of the first flow: given up at the third, its slot handed back. */
    for (int k = 0; k < 2; k++) {
        feed(f, b, ip4_udp(b, "10.1.0.5", "10.1.0.6", 34567, 45678, noise, 40), 2100 * MS + k);
    }
    kvl_classify_get_stats(c, &st);
    assert_int_equal(st.guessed + st.unknown, 1);
    assert_int_equal(st.in_use, 1);
    /* The second flow ends idle: its slot comes back too. */
    kvl_flows_expire(f, 2000 * MS + 30000 * MS + 10);
    kvl_classify_get_stats(c, &st);
    assert_int_equal(st.in_use, 0);
    /* A TCP connection of noise that closes is decided at its FIN, its slot handed back. */
    uint64_t before = st.guessed + st.unknown;
    feed(f, b, ip4_tcp(b, "10.1.0.8", "10.1.0.6", 34000, 45000, 0x02, 1, 0, NULL, 0), 3000 * MS);
    feed(f, b, ip4_tcp(b, "10.1.0.8", "10.1.0.6", 34000, 45000, 0x18, 2, 0, noise, 40), 3001 * MS);
    kvl_classify_get_stats(c, &st);
    assert_int_equal(st.in_use, 1);
    feed(f, b, ip4_tcp(b, "10.1.0.8", "10.1.0.6", 34000, 45000, 0x11, 42, 0, NULL, 0), 3002 * MS);
    kvl_classify_get_stats(c, &st);
    assert_int_equal(st.in_use, 0);
    assert_int_equal(st.guessed + st.unknown, before + 1);
    /* Freeing the table hands back what is still undecided. */
    feed(f, b, ip4_udp(b, "10.1.0.7", "10.1.0.6", 34567, 45678, noise, 40), 40000 * MS);
    kvl_classify_get_stats(c, &st);
    assert_int_equal(st.in_use, 1);
    kvl_flows_free(f);
    kvl_classify_get_stats(c, &st);
    assert_int_equal(st.in_use, 0);
    kvl_classify_free(c);
    assert_null(kvl_classify_new(0, 3, 8, err, sizeof(err)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dns_http),
        cmocka_unit_test(test_give_up_and_slots),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
