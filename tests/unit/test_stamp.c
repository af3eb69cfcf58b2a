/*
 * test_stamp.c — unit tests for STAMP packets and arithmetic (agent/probe/stamp.h): packets
 * compared byte by byte with layouts built by hand from RFC 8762 sections 4.2.1 and 4.3.1,
 * TWAMP-Light sizes, NTP timestamps, RFC 4656 error estimates, the four-timestamp
 * arithmetic and its sync gating, the kernel clock state from ntp_adjtime's figures, the
 * probe_stats extra figures STAMP uses for one-way delays, and the HTTP probe's
 * certificate date.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/timex.h>

#include <cmocka.h>

#include "kvl.h"
#include "probe_http.h"
#include "probe_stats.h"
#include "stamp.h"

static void test_ntp(void **state)
{
    KVL_UNUSED(state);
    /* 1970-01-01 is 2,208,988,800 s after 1900-01-01 (0x83AA7E80). */
    assert_true(kvl_stamp_ntp_from_ns(0) == 0x83AA7E8000000000ull);
    /* Half a second is a fraction of 2^31. */
    assert_true(kvl_stamp_ntp_from_ns(1500000000ll) == 0x83AA7E8180000000ull);
    assert_int_equal(kvl_stamp_ns_from_ntp(0x83AA7E8180000000ull), 1500000000ll);
    const int64_t v[] = {1, 999999999, 1763900000123456789ll, 1000000000ll * 2000000000ll};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(v); i++) {
        assert_int_equal(kvl_stamp_ns_from_ntp(kvl_stamp_ntp_from_ns(v[i])), v[i]);
    }
    /* PTPv2 truncated: 5 s and 250,000,000 ns. */
    assert_int_equal(kvl_stamp_ns_from_ptp(0x000000050EE6B280ull), 5250000000ll);
}

static void test_error_estimate(void **state)
{
    KVL_UNUSED(state);
    /* 1 ms = 4,294,967.3 units of 2^-32 s; / 2^15 = 131.07, rounded up to 132:
     * S=1 Z=0 Scale=15 Multiplier=132 -> 1000 1111 1000 0100. */
    assert_int_equal(kvl_stamp_err_encode(true, 1000000), 0x8F84);
    kvl_stamp_err_t e;
    kvl_stamp_err_decode(0x8F84, &e);
    assert_true(e.synced);
    assert_false(e.ptp);
    /* 132 x 2^15 / 2^32 s = 1.007080078125 ms, rounded up to the nanosecond. */
    assert_int_equal(e.err_ns, 1007081);
    /* 1 ns is 4.29 units: Scale 0, Multiplier 5, S clear. */
    assert_int_equal(kvl_stamp_err_encode(false, 1), 0x0005);
    kvl_stamp_err_decode(0x4001, &e);
    assert_true(e.ptp);
    assert_false(e.synced);
    kvl_stamp_err_decode(0x8000, &e); /* Multiplier 0: invalid */
    assert_int_equal(e.err_ns, -1);
    /* Never below the error asked for. */
    for (int64_t ns = 1; ns < 100000000000ll; ns = ns * 3 + 1) {
        kvl_stamp_err_decode(kvl_stamp_err_encode(true, ns), &e);
        assert_true(e.err_ns >= ns);
        assert_true((double)e.err_ns <= (double)ns * 1.01 + 1);
    }
}

static void test_sender_packet(void **state)
{
    KVL_UNUSED(state);
    uint8_t buf[64];
    memset(buf, 0xee, sizeof(buf));
    assert_int_equal(kvl_stamp_sender_encode(buf, 44, 0x01020304, 0x1122334455667788ull, 0x8F84),
                     44);
    uint8_t want[44] = {0x01, 0x02, 0x03, 0x04,                         /* Sequence Number */
                        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, /* Timestamp */
                        0x8F, 0x84};                                    /* Error Estimate */
    assert_memory_equal(buf, want, 44);                                 /* then 30 octets MBZ */
    assert_int_equal(kvl_stamp_sender_encode(buf, 43, 1, 2, 3), -1);

    kvl_stamp_sender_pkt_t p;
    assert_int_equal(kvl_stamp_sender_parse(want, 44, &p), 0);
    assert_int_equal(p.seq, 0x01020304);
    assert_true(p.t1 == 0x1122334455667788ull);
    assert_int_equal(p.err, 0x8F84);
    /* TWAMP-Light unauthenticated without padding: 14 octets are enough; 13 are not. */
    assert_int_equal(kvl_stamp_sender_parse(want, 14, &p), 0);
    assert_int_equal(kvl_stamp_sender_parse(want, 13, &p), -1);
    static uint8_t big[KVL_STAMP_MAX + 1];
    assert_int_equal(kvl_stamp_sender_parse(big, sizeof(big), &p), -1);
}

static void test_reflect(void **state)
{
    KVL_UNUSED(state);
    kvl_stamp_sender_pkt_t in = {.seq = 0xA0B0C0D0, .t1 = 0x0102030405060708ull, .err = 0x0005};
    uint8_t out[200];
    memset(out, 0xee, sizeof(out));
    /* A 14-octet TWAMP-Light packet gets the 44-octet reflected layout. */
    assert_int_equal(
        kvl_stamp_reflect(out, sizeof(out), 14, &in, 0x1112131415161718ull, 0x8F84, 63), 44);
    kvl_stamp_reflect_set_t3(out, 0x2122232425262728ull);
    const uint8_t want[44] = {
        0xA0, 0xB0, 0xC0, 0xD0,                         /* 0  Sequence Number (stateless) */
        0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, /* 4  Timestamp T3 */
        0x8F, 0x84,                                     /* 12 Error Estimate */
        0x00, 0x00,                                     /* 14 MBZ */
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, /* 16 Receive Timestamp T2 */
        0xA0, 0xB0, 0xC0, 0xD0,                         /* 24 Session-Sender Seq */
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* 28 Session-Sender Timestamp */
        0x00, 0x05,                                     /* 36 Session-Sender Error Estimate */
        0x00, 0x00,                                     /* 38 MBZ */
        63,                                             /* 40 Ses-Sender TTL */
        0x00, 0x00, 0x00};                              /* 41 MBZ */
    assert_memory_equal(out, want, 44);
    /* Symmetric size: a 100-octet packet gets 100, zero after the layout. */
    assert_int_equal(kvl_stamp_reflect(out, sizeof(out), 100, &in, 1, 2, 3), 100);
    for (int i = 44; i < 100; i++) {
        assert_int_equal(out[i], 0);
    }
    assert_int_equal(kvl_stamp_reflect(out, 50, 100, &in, 1, 2, 3), -1);

    kvl_stamp_reflector_pkt_t r;
    assert_int_equal(kvl_stamp_reflector_parse(want, 44, &r), 0);
    assert_int_equal(r.seq, 0xA0B0C0D0);
    assert_true(r.t3 == 0x2122232425262728ull);
    assert_int_equal(r.err, 0x8F84);
    assert_true(r.t2 == 0x1112131415161718ull);
    assert_int_equal(r.sender_seq, 0xA0B0C0D0);
    assert_true(r.t1 == 0x0102030405060708ull);
    assert_int_equal(r.sender_err, 0x0005);
    assert_int_equal(r.ttl, 63);
    assert_int_equal(kvl_stamp_reflector_parse(want, 43, &r), -1);
}

static void test_times(void **state)
{
    KVL_UNUSED(state);
    kvl_stamp_times_t t;
    const uint16_t synced_1ms = kvl_stamp_err_encode(true, 1000000);
    /* The reflector's clock 10 s ahead: T1 0, T2 10.003 s (3 ms forward), T3 10.004 s
     * (1 ms residence), T4 9 ms (5 ms back). RTT = 9 - 1 = 8 ms whatever the offset. */
    const int64_t S = 1000000000, M = 1000000;
    kvl_stamp_times(0, 10 * S + 3 * M, 10 * S + 4 * M, 9 * M, false, 1000, synced_1ms, 10 * M, &t);
    assert_int_equal(t.rtt_ns, 8 * M);
    assert_false(t.oneway); /* our clock unsynchronised */
    /* Both synchronised (same clock): forward 3 ms, backward 5 ms, error 1 ms + ours. */
    kvl_stamp_times(0, 3 * M, 4 * M, 9 * M, true, 100000, synced_1ms, 10 * M, &t);
    assert_true(t.oneway);
    assert_int_equal(t.rtt_ns, 8 * M);
    assert_int_equal(t.fwd_ns, 3 * M);
    assert_int_equal(t.bwd_ns, 5 * M);
    assert_int_equal(t.err_ns, 100000 + 1007081);
    /* The reflector says S = 0, or PTP format, or the errors are too large: no one-way. */
    kvl_stamp_times(0, 3 * M, 4 * M, 9 * M, true, 1000, kvl_stamp_err_encode(false, 1000), 10 * M,
                    &t);
    assert_false(t.oneway);
    kvl_stamp_times(0, 3 * M, 4 * M, 9 * M, true, 1000, (uint16_t)(synced_1ms | 0x4000), 10 * M,
                    &t);
    assert_false(t.oneway);
    kvl_stamp_times(0, 3 * M, 4 * M, 9 * M, true, 1000, synced_1ms, M, &t);
    assert_false(t.oneway);
    /* T3 - T2 larger than T4 - T1: not a measurement. */
    kvl_stamp_times(0, 1 * M, 9 * M, 2 * M, true, 1000, synced_1ms, 10 * M, &t);
    assert_int_equal(t.rtt_ns, -1);
}

static void test_clock_sync(void **state)
{
    KVL_UNUSED(state);
    kvl_clock_sync_t c;
    const int64_t max = 10000000; /* 10 ms */
    kvl_clock_sync_from_timex(TIME_OK, 0, 2000, 300, max, &c);
    assert_true(c.synced);
    assert_int_equal(c.err_ns, 2000000); /* the bound, maxerror, is what is claimed */
    kvl_clock_sync_from_timex(TIME_OK, STA_UNSYNC, 2000, 300, max, &c);
    assert_false(c.synced);
    kvl_clock_sync_from_timex(TIME_ERROR, 0, 2000, 300, max, &c);
    assert_false(c.synced);
    kvl_clock_sync_from_timex(TIME_OK, 0, 16000000, 16000000, max, &c);
    assert_false(c.synced);
    kvl_clock_sync_from_timex(-1, 0, 0, 0, max, &c);
    assert_false(c.synced);
    kvl_clock_sync_read(KVL_CLOCK_ASSUMED, 50000, max, &c);
    assert_true(c.synced);
    assert_int_equal(c.err_ns, 50000);
    kvl_clock_sync_read(KVL_CLOCK_NONE, 50000, max, &c);
    assert_false(c.synced);
}

static void test_extra_figures(void **state)
{
    KVL_UNUSED(state);
    kvl_pstats_t p = {0};
    kvl_pstats_state_t st;
    kvl_pstats_state_init(&st);
    assert_int_equal(kvl_pstats_reset(&p, 5), 0);
    for (uint32_t i = 0; i < 5; i++) {
        kvl_pstats_sent(&p, i);
    }
    assert_int_equal(kvl_pstats_extra(&p, 0, 0, 1000000), -1); /* not answered yet */
    const int64_t fwd[] = {3000000, 1000000, 2000000, 5000000};
    for (uint32_t i = 0; i < 4; i++) {
        kvl_pstats_reply(&p, &st, i, 8000000);
        assert_int_equal(kvl_pstats_extra(&p, i, 0, fwd[i]), 0);
    }
    kvl_pstats_result_t r;
    kvl_pstats_finish(&p, &st, &r);
    assert_true(r.extra_min_ms[0] == 1.0);
    assert_true(r.extra_median_ms[0] == 2.5);
    assert_true(r.extra_max_ms[0] == 5.0);
    assert_true(isnan(r.extra_median_ms[1]));
    /* A new interval forgets them. */
    kvl_pstats_reset(&p, 5);
    kvl_pstats_finish(&p, &st, &r);
    assert_true(isnan(r.extra_median_ms[0]));
    kvl_pstats_free(&p);
}

static void test_cert_days(void **state)
{
    KVL_UNUSED(state);
    /* 2026-11-23 14:00:00 UTC */
    const int64_t now = 1795442400;
    assert_true(fabs(kvl_http_cert_days("Expire date:Nov 23 14:00:00 2027 GMT", now) - 365.0) <
                1e-9);
    assert_true(fabs(kvl_http_cert_days("Nov 24 02:00:00 2026 GMT", now) - 0.5) < 1e-9);
    assert_true(kvl_http_cert_days("Expire date:Nov 22 14:00:00 2026 GMT", now) < 0);
    assert_true(isnan(kvl_http_cert_days("Expire date:tomorrow", now)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ntp),           cmocka_unit_test(test_error_estimate),
        cmocka_unit_test(test_sender_packet), cmocka_unit_test(test_reflect),
        cmocka_unit_test(test_times),         cmocka_unit_test(test_clock_sync),
        cmocka_unit_test(test_extra_figures), cmocka_unit_test(test_cert_days),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
