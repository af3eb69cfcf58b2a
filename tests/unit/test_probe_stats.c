/*
 * test_probe_stats.c — unit tests for the per-interval probe statistics
 * (agent/probe/probe_stats.h).
 *
 * Each test feeds a known sequence of sends and replies (in arrival order) and checks the
 * exact figures: loss, loss bursts, duplicates, reordering, RTT order statistics, the
 * RFC 3550 jitter estimator and the E-model MOS (reference values computed by hand from
 * the formulas in the header, independently of the code).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kvl.h"
#include "probe_stats.h"

#define MS 1000000ll

static void test_in_order(void **state)
{
    KVL_UNUSED(state);
    kvl_pstats_t p = {0};
    kvl_pstats_state_t st;
    kvl_pstats_state_init(&st);
    assert_int_equal(kvl_pstats_reset(&p, 4), 0);
    for (uint32_t i = 0; i < 4; i++) {
        kvl_pstats_sent(&p, i);
        assert_int_equal(kvl_pstats_reply(&p, &st, i, (int64_t)(i + 1) * MS), 0);
    }
    kvl_pstats_result_t r;
    kvl_pstats_finish(&p, &st, &r);
    assert_int_equal(r.sent, 4);
    assert_int_equal(r.received, 4);
    assert_int_equal(r.loss_burst, 0);
    assert_int_equal(r.duplicates, 0);
    assert_int_equal(r.reordered, 0);
    assert_true(r.lost_pct == 0.0);
    assert_true(r.rtt_min_ms == 1.0);
    assert_true(r.rtt_max_ms == 4.0);
    assert_true(r.rtt_mean_ms == 2.5);
    assert_true(r.rtt_median_ms == 2.5); /* even count: mean of 2 and 3 */
    assert_true(fabs(r.rtt_stddev_ms - sqrt(1.25)) < 1e-12);
    /* |D| = 1 ms three times: J = 1/16, then + (1 - J)/16 twice. */
    assert_true(fabs(r.jitter_ms - 0.176025390625) < 1e-12);
    assert_true(fabs(r.mos - 4.403831133298008) < 1e-9);
    kvl_pstats_free(&p);
}

static void test_loss_and_bursts(void **state)
{
    KVL_UNUSED(state);
    kvl_pstats_t p = {0};
    kvl_pstats_state_t st;
    kvl_pstats_state_init(&st);
    assert_int_equal(kvl_pstats_reset(&p, 10), 0);
    for (uint32_t i = 0; i < 10; i++) {
        kvl_pstats_sent(&p, i);
    }
    const uint32_t answered[] = {0, 1, 4, 5, 9};
    for (size_t k = 0; k < KVL_ARRAY_SIZE(answered); k++) {
        assert_int_equal(kvl_pstats_reply(&p, &st, answered[k], 5 * MS), 0);
    }
    kvl_pstats_result_t r;
    kvl_pstats_finish(&p, &st, &r);
    assert_int_equal(r.sent, 10);
    assert_int_equal(r.received, 5);
    assert_true(r.lost_pct == 50.0);
    assert_int_equal(r.loss_burst, 3); /* 6, 7, 8 */
    assert_true(r.rtt_median_ms == 5.0);
    assert_true(r.rtt_stddev_ms == 0.0);
    assert_true(r.jitter_ms == 0.0);
    kvl_pstats_free(&p);
}

static void test_duplicates_and_reordering_are_not_loss(void **state)
{
    KVL_UNUSED(state);
    kvl_pstats_t p = {0};
    kvl_pstats_state_t st;
    kvl_pstats_state_init(&st);
    assert_int_equal(kvl_pstats_reset(&p, 5), 0);
    for (uint32_t i = 0; i < 5; i++) {
        kvl_pstats_sent(&p, i);
    }
    assert_int_equal(kvl_pstats_reply(&p, &st, 0, 10 * MS), 0);
    assert_int_equal(kvl_pstats_reply(&p, &st, 2, 10 * MS), 0);
    assert_int_equal(kvl_pstats_reply(&p, &st, 1, 30 * MS), 2); /* overtaken by 2 */
    assert_int_equal(kvl_pstats_reply(&p, &st, 2, 11 * MS), 1); /* a second copy */
    assert_int_equal(kvl_pstats_reply(&p, &st, 0, 12 * MS), 1);
    assert_int_equal(kvl_pstats_reply(&p, &st, 3, 10 * MS), 0);
    assert_int_equal(kvl_pstats_reply(&p, &st, 4, 10 * MS), 0);
    kvl_pstats_result_t r;
    kvl_pstats_finish(&p, &st, &r);
    assert_int_equal(r.sent, 5);
    assert_int_equal(r.received, 5);
    assert_true(r.lost_pct == 0.0);
    assert_int_equal(r.loss_burst, 0);
    assert_int_equal(r.duplicates, 2);
    assert_int_equal(r.reordered, 1);
    /* Duplicates do not enter the RTT figures: 10, 10, 30, 10, 10. */
    assert_true(r.rtt_max_ms == 30.0);
    assert_true(r.rtt_median_ms == 10.0);
    assert_true(r.rtt_mean_ms == 14.0);
    /* Jitter in arrival order of first replies: D = 0, 20, -20, 0. */
    double j = 0;
    j += (0 - j) / 16;
    j += (20 - j) / 16;
    j += (20 - j) / 16;
    j += (0 - j) / 16;
    assert_true(fabs(r.jitter_ms - j) < 1e-12);
    kvl_pstats_free(&p);
}

static void test_nothing_back(void **state)
{
    KVL_UNUSED(state);
    kvl_pstats_t p = {0};
    kvl_pstats_state_t st;
    kvl_pstats_state_init(&st);
    assert_int_equal(kvl_pstats_reset(&p, 20), 0);
    kvl_pstats_result_t r;
    kvl_pstats_finish(&p, &st, &r);
    assert_int_equal(r.sent, 0);
    assert_true(isnan(r.lost_pct)); /* nothing sent: unknown, not 0 % or 100 % */
    for (uint32_t i = 0; i < 20; i++) {
        kvl_pstats_sent(&p, i);
    }
    kvl_pstats_sent(&p, 3);  /* twice: still one probe */
    kvl_pstats_sent(&p, 20); /* out of range: ignored */
    assert_int_equal(kvl_pstats_reply(&p, &st, 20, MS), -1);
    kvl_pstats_finish(&p, &st, &r);
    assert_int_equal(r.sent, 20);
    assert_int_equal(r.received, 0);
    assert_true(r.lost_pct == 100.0);
    assert_int_equal(r.loss_burst, 20);
    assert_true(isnan(r.rtt_min_ms) && isnan(r.rtt_median_ms) && isnan(r.mos));
    kvl_pstats_free(&p);
}

static void test_unsent_probes_are_neither_sent_nor_lost(void **state)
{
    KVL_UNUSED(state);
    kvl_pstats_t p = {0};
    kvl_pstats_state_t st;
    kvl_pstats_state_init(&st);
    assert_int_equal(kvl_pstats_reset(&p, 4), 0);
    kvl_pstats_sent(&p, 0);
    kvl_pstats_sent(&p, 1);
    kvl_pstats_sent(&p, 3);
    assert_int_equal(kvl_pstats_reply(&p, &st, 2, MS), -1); /* never sent */
    assert_int_equal(kvl_pstats_reply(&p, &st, 0, MS), 0);
    assert_int_equal(kvl_pstats_reply(&p, &st, 3, 3 * MS), 0);
    kvl_pstats_result_t r;
    kvl_pstats_finish(&p, &st, &r);
    assert_int_equal(r.sent, 3);
    assert_int_equal(r.received, 2);
    assert_true(fabs(r.lost_pct - 100.0 / 3.0) < 1e-12);
    assert_int_equal(r.loss_burst, 1);
    assert_true(r.rtt_median_ms == 2.0);
    kvl_pstats_free(&p);
}

static void test_jitter_runs_across_intervals(void **state)
{
    KVL_UNUSED(state);
    kvl_pstats_t p = {0};
    kvl_pstats_state_t st;
    kvl_pstats_state_init(&st);
    assert_int_equal(kvl_pstats_reset(&p, 2), 0);
    kvl_pstats_sent(&p, 0);
    kvl_pstats_sent(&p, 1);
    kvl_pstats_reply(&p, &st, 0, 10 * MS);
    kvl_pstats_reply(&p, &st, 1, 26 * MS);
    kvl_pstats_result_t r;
    kvl_pstats_finish(&p, &st, &r);
    assert_true(r.jitter_ms == 1.0); /* 16 / 16 */
    assert_int_equal(kvl_pstats_reset(&p, 3), 0);
    kvl_pstats_sent(&p, 0);
    kvl_pstats_reply(&p, &st, 0, 10 * MS); /* D = 16 against the previous interval's last */
    kvl_pstats_finish(&p, &st, &r);
    assert_true(r.jitter_ms == 1.0 + 15.0 / 16.0);
    assert_int_equal(r.received, 1);
    assert_int_equal(r.sent, 1);
    assert_int_equal(kvl_pstats_reset(&p, 0), KVL_EINVAL);
    kvl_pstats_free(&p);
    kvl_pstats_free(NULL);
}

static void test_mos_reference_values(void **state)
{
    KVL_UNUSED(state);
    /* d = 10 ms: R = 93.2 - 0.24 = 92.96 */
    assert_true(fabs(kvl_pstats_mos(0, 0, 0) - 4.404592027648) < 1e-9);
    /* d = 210 ms: Id = 5.04 + 0.11 x 32.7 */
    assert_true(fabs(kvl_pstats_mos(400, 0, 0) - 4.184156614789171) < 1e-9);
    /* 5 % loss: Ie = 95 x 5 / 30.1 */
    assert_true(fabs(kvl_pstats_mos(20, 0, 5) - 3.9032589629303365) < 1e-9);
    assert_true(kvl_pstats_mos(2000, 100, 50) == 1.0); /* R < 0 */
    /* Worse latency, jitter or loss never raises the estimate. */
    assert_true(kvl_pstats_mos(100, 0, 0) > kvl_pstats_mos(150, 0, 0));
    assert_true(kvl_pstats_mos(100, 5, 0) > kvl_pstats_mos(100, 10, 0));
    assert_true(kvl_pstats_mos(100, 5, 1) > kvl_pstats_mos(100, 5, 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_loss_and_bursts),
        cmocka_unit_test(test_duplicates_and_reordering_are_not_loss),
        cmocka_unit_test(test_nothing_back),
        cmocka_unit_test(test_unsent_probes_are_neither_sent_nor_lost),
        cmocka_unit_test(test_jitter_runs_across_intervals),
        cmocka_unit_test(test_mos_reference_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
