/*
 * test_probe_stats.c — unit tests for the per-interval probe statistics
 * (agent/probe/probe_stats.h).
 *
 * Each test feeds a known sequence of sends and replies (in arrival order) and checks the
 * exact figures: loss, loss bursts, duplicates, reordering, RTT order statistics, the
 * RFC 3550 jitter estimator, the RTT quantiles and the E-model MOS (reference values computed by
 * hand from the formulas in the header, independently of the code).
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

/* One interval of `count` probes, all sent; rtt_ms[i] < 0: probe i lost. Replies arrive in
 * probe order; dup >= 0 adds a duplicate reply (RTT 999 ms) to probe dup. */
static void quantile_run(uint32_t count, const double *rtt_ms, int dup, kvl_pstats_result_t *r)
{
    kvl_pstats_t p = {0};
    kvl_pstats_state_t st;
    kvl_pstats_state_init(&st);
    assert_int_equal(kvl_pstats_reset(&p, count), 0);
    for (uint32_t i = 0; i < count; i++) {
        kvl_pstats_sent(&p, i);
        if (rtt_ms[i] >= 0) {
            assert_int_equal(kvl_pstats_reply(&p, &st, i, (int64_t)llround(rtt_ms[i] * MS)), 0);
        }
        if (dup == (int)i) {
            assert_int_equal(kvl_pstats_reply(&p, &st, i, 999 * MS), 1);
        }
    }
    kvl_pstats_finish(&p, &st, r);
    kvl_pstats_free(&p);
}

#define NEAR(got, want) assert_true(fabs((got) - (want)) < 1e-9)

/* The quantiles by linear interpolation between order statistics, h = (n - 1) q, computed
 * by hand for each case. */
static void test_rtt_quantiles(void **state)
{
    KVL_UNUSED(state);
    kvl_pstats_result_t r;

    /* Odd count, out of order: sorted 1 2 3 4 5, h = 4 q. */
    const double odd[] = {5, 1, 4, 2, 3};
    quantile_run(5, odd, -1, &r);
    NEAR(r.rtt_p10_ms, 1.4); /* h 0.4: 1 + 0.4 x (2 - 1) */
    NEAR(r.rtt_p25_ms, 2.0); /* h 1 */
    NEAR(r.rtt_median_ms, 3.0);
    NEAR(r.rtt_p75_ms, 4.0); /* h 3 */
    NEAR(r.rtt_p90_ms, 4.6); /* h 3.6: 4 + 0.6 x (5 - 4) */

    /* Even count, with two probes lost and a duplicate reply (neither counts): sorted
     * 10 20 30 40, h = 3 q. */
    const double even[] = {10, -1, 40, 20, -1, 30};
    quantile_run(6, even, 2, &r);
    assert_int_equal(r.received, 4);
    assert_int_equal(r.duplicates, 1);
    NEAR(r.rtt_p10_ms, 13.0);    /* h 0.3: 10 + 0.3 x 10 */
    NEAR(r.rtt_p25_ms, 17.5);    /* h 0.75 */
    NEAR(r.rtt_median_ms, 25.0); /* h 1.5: the mean of the two middle values */
    NEAR(r.rtt_p75_ms, 32.5);    /* h 2.25 */
    NEAR(r.rtt_p90_ms, 37.0);    /* h 2.7 */
    NEAR(r.rtt_max_ms, 40.0);    /* the duplicate's 999 ms is not the probe's RTT */

    /* Equal RTTs count as often as they occur: sorted 1 3 3 3 9 9, h = 5 q. */
    const double ties[] = {9, 3, 1, 3, 9, 3};
    quantile_run(6, ties, -1, &r);
    NEAR(r.rtt_p10_ms, 2.0);    /* h 0.5: 1 + 0.5 x 2 */
    NEAR(r.rtt_p25_ms, 3.0);    /* h 1.25 */
    NEAR(r.rtt_median_ms, 3.0); /* h 2.5 */
    NEAR(r.rtt_p75_ms, 7.5);    /* h 3.75: 3 + 0.75 x 6 */
    NEAR(r.rtt_p90_ms, 9.0);    /* h 4.5 */

    /* One reply: every quantile is it (sub-millisecond, kept to the nanosecond). */
    const double one[] = {-1, 0.123456, -1};
    quantile_run(3, one, -1, &r);
    assert_int_equal(r.received, 1);
    NEAR(r.rtt_p10_ms, 0.123456);
    NEAR(r.rtt_p25_ms, 0.123456);
    NEAR(r.rtt_median_ms, 0.123456);
    NEAR(r.rtt_p75_ms, 0.123456);
    NEAR(r.rtt_p90_ms, 0.123456);

    /* None: unknown, like the other RTT figures. */
    const double none[] = {-1, -1, -1, -1};
    quantile_run(4, none, -1, &r);
    assert_int_equal(r.sent, 4);
    assert_true(isnan(r.rtt_p10_ms) && isnan(r.rtt_p25_ms) && isnan(r.rtt_p75_ms) &&
                isnan(r.rtt_p90_ms) && isnan(r.rtt_median_ms));

    /* The rule itself at its ends, and between the two middle values. */
    const int64_t v[] = {2, 4, 8, 16};
    NEAR(kvl_pstats_quantile(v, 4, 0.0), 2.0);
    NEAR(kvl_pstats_quantile(v, 4, 1.0), 16.0);
    NEAR(kvl_pstats_quantile(v, 4, 0.5), 6.0);
    NEAR(kvl_pstats_quantile(v, 4, 0.9), 13.6); /* h 2.7: 8 + 0.7 x 8 */
    NEAR(kvl_pstats_quantile(v, 1, 0.9), 2.0);
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
        cmocka_unit_test(test_rtt_quantiles),
        cmocka_unit_test(test_mos_reference_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
