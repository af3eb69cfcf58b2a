/*
 * test_capacity.c — the capacity report's figures (collector/capacity/capacity_calc.h) on
 * arrays whose answers are computed by hand: the 95th percentile's rank rule (ceil(p/100 *
 * n) of the sorted known values; unknowns left out), least squares, days to 80 %, daily
 * means by UTC day, availability from state rows; and the report's CSV quoting (RFC 4180,
 * formulas kept as text) and the decoding of archive file names.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "capacity_calc.h"
#include "capacity_int.h"
#include "kvl.h"

#define EPS 1e-9

static void test_percentile(void **state)
{
    KVL_UNUSED(state);
    double v[100];
    for (int i = 0; i < 100; i++) {
        v[i] = (double)(100 - i); /* 100 .. 1, sorted by the call */
    }
    assert_float_equal(kvl_cap_percentile(v, 100, 95.0), 95.0, EPS); /* rank 95 */
    for (int i = 0; i < 20; i++) {
        v[i] = (double)((i * 7) % 20 + 1); /* 1 .. 20 shuffled */
    }
    assert_float_equal(kvl_cap_percentile(v, 20, 95.0), 19.0, EPS); /* rank ceil(19) = 19 */
    assert_float_equal(kvl_cap_percentile(v, 20, 100.0), 20.0, EPS);
    assert_float_equal(kvl_cap_percentile(v, 20, 1.0), 1.0, EPS); /* rank ceil(0.2) = 1 */
    double t[] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
    assert_float_equal(kvl_cap_percentile(t, 10, 95.0), 100.0, EPS); /* rank ceil(9.5) = 10 */
    double f[] = {5, 1, 4, 2, 3};
    assert_float_equal(kvl_cap_percentile(f, 5, 40.0), 2.0, EPS); /* exactly rank 2 */
    assert_float_equal(kvl_cap_percentile(f, 5, 41.0), 3.0, EPS); /* ceil(2.05) = 3 */
    /* unknowns are left out: 3 known values */
    double u[] = {NAN, 3, 1, NAN, 2};
    assert_float_equal(kvl_cap_percentile(u, 5, 95.0), 3.0, EPS); /* ceil(2.85) = 3 */
    double u2[] = {NAN, 3, 1, NAN, 2};
    assert_float_equal(kvl_cap_percentile(u2, 5, 50.0), 2.0, EPS); /* ceil(1.5) = 2 */
    double one[] = {7.5};
    assert_float_equal(kvl_cap_percentile(one, 1, 95.0), 7.5, EPS);
    double none[] = {NAN, NAN};
    assert_true(isnan(kvl_cap_percentile(none, 2, 95.0)));
    assert_true(isnan(kvl_cap_percentile(one, 0, 95.0)));
    assert_true(isnan(kvl_cap_percentile(one, 1, 0.0)));
    assert_true(isnan(kvl_cap_percentile(one, 1, 101.0)));
    /* 8640 five-minute averages (30 days): the 8208th smallest, the top 432 not counted */
    double *m = malloc(8640 * sizeof(*m));
    assert_non_null(m);
    for (int i = 0; i < 8640; i++) {
        m[i] = (double)((i * 4801) % 8640); /* a permutation of 0 .. 8639 (gcd 1) */
    }
    assert_float_equal(kvl_cap_percentile(m, 8640, 95.0), 8207.0, EPS);
    free(m);
}

static void test_stats(void **state)
{
    KVL_UNUSED(state);
    /* a column of two-column rows: 1, NaN, 5, 3 */
    double rows[] = {1, 100, NAN, 100, 5, 100, 3, 100};
    kvl_cap_stats_t st;
    kvl_cap_stats(rows, 4, 2, &st);
    assert_int_equal(st.known, 3);
    assert_int_equal(st.unknown, 1);
    assert_float_equal(st.avg, 3.0, EPS);
    assert_float_equal(st.peak, 5.0, EPS);
    double none[] = {NAN};
    kvl_cap_stats(none, 1, 1, &st);
    assert_int_equal(st.known, 0);
    assert_true(isnan(st.avg) && isnan(st.peak));
}

static void test_fit(void **state)
{
    KVL_UNUSED(state);
    kvl_cap_fit_t f;
    double x[] = {0, 1, 2, 3}, y[] = {1, 3, 5, 7};
    assert_int_equal(kvl_cap_fit(x, y, 4, &f), 0);
    assert_float_equal(f.slope, 2.0, EPS);
    assert_float_equal(f.intercept, 1.0, EPS);
    assert_int_equal(f.n, 4);
    /* by hand: mean x 3, mean y 4, Sxy = 4 + 0 + 0 + 0 + 2 = 6, Sxx = 10 */
    double x2[] = {1, 2, 3, 4, 5}, y2[] = {2, 4, 5, 4, 5};
    assert_int_equal(kvl_cap_fit(x2, y2, 5, &f), 0);
    assert_float_equal(f.slope, 0.6, EPS);
    assert_float_equal(f.intercept, 2.2, EPS);
    /* unknown points left out */
    double x3[] = {0, 1, 2, 3, 4}, y3[] = {1, NAN, 5, NAN, 9};
    assert_int_equal(kvl_cap_fit(x3, y3, 5, &f), 0);
    assert_float_equal(f.slope, 2.0, EPS);
    assert_float_equal(f.intercept, 1.0, EPS);
    assert_int_equal(f.n, 3);
    /* a falling line */
    double y4[] = {9, 7, 5, 3};
    assert_int_equal(kvl_cap_fit(x, y4, 4, &f), 0);
    assert_float_equal(f.slope, -2.0, EPS);
    /* too few points, or one x only */
    assert_int_equal(kvl_cap_fit(x3, y3, 1, &f), -1);
    double same[] = {2, 2, 2}, ys[] = {1, 2, 3};
    assert_int_equal(kvl_cap_fit(same, ys, 3, &f), -1);
    double yn[] = {NAN, NAN, 4};
    assert_int_equal(kvl_cap_fit(x, yn, 3, &f), -1);
    assert_int_equal(f.n, 1);
}

static void test_days_to(void **state)
{
    KVL_UNUSED(state);
    assert_float_equal(kvl_cap_days_to(50.0, 10.0, 80.0), 3.0, EPS);
    assert_float_equal(kvl_cap_days_to(0.0, 0.5, 80.0), 160.0, EPS);
    assert_float_equal(kvl_cap_days_to(80.0, 10.0, 80.0), 0.0, EPS); /* at the limit */
    assert_float_equal(kvl_cap_days_to(90.0, -5.0, 80.0), 0.0, EPS); /* above, falling */
    assert_float_equal(kvl_cap_days_to(10.0, 0.0, 80.0), -1.0, EPS); /* flat: never */
    assert_float_equal(kvl_cap_days_to(10.0, -1.0, 80.0), -1.0, EPS);
    assert_float_equal(kvl_cap_days_to(NAN, 1.0, 80.0), -1.0, EPS);
    assert_float_equal(kvl_cap_days_to(10.0, NAN, 80.0), -1.0, EPS);
    assert_float_equal(kvl_cap_days_to(10.0, 1.0, NAN), -1.0, EPS);
}

static void test_daily(void **state)
{
    KVL_UNUSED(state);
    /* rows of 300 s from the day 1 (86400) on: 288 rows per day; day 1 all 1, day 2 all 3
     * but for a few unknowns, day 3 unknown, day 4's first row 10 */
    enum { N = 288 * 3 + 1 };
    double v[N];
    for (int i = 0; i < N; i++) {
        v[i] = i < 288 ? 1.0 : i < 576 ? 3.0 : NAN;
    }
    v[300] = v[301] = NAN;
    v[N - 1] = 10.0;
    double day[8], mean[8];
    /* the first row ends at 86400 + 300: its interval starts on day 1 */
    size_t n = kvl_cap_daily(86400 + 300, 300, v, N, 1, day, mean, 8);
    assert_int_equal(n, 3);
    assert_float_equal(day[0], 1.0, EPS);
    assert_float_equal(mean[0], 1.0, EPS);
    assert_float_equal(day[1], 2.0, EPS);
    assert_float_equal(mean[1], 3.0, EPS);
    assert_float_equal(day[2], 4.0, EPS);
    assert_float_equal(mean[2], 10.0, EPS);
    /* a row ending at midnight belongs to the day before */
    double w[] = {4.0, 6.0};
    n = kvl_cap_daily(86400 * 2, 300, w, 2, 1, day, mean, 8);
    assert_int_equal(n, 2);
    assert_float_equal(day[0], 1.0, EPS);
    assert_float_equal(day[1], 2.0, EPS);
    /* bounded by max */
    assert_int_equal(kvl_cap_daily(86400 + 300, 300, v, N, 1, day, mean, 1), 1);
}

static void test_avail(void **state)
{
    KVL_UNUSED(state);
    kvl_cap_avail_t a = {0};
    double dev[] = {1.0, 0.0, 0.5, NAN};
    kvl_cap_avail_add(&a, dev, 4, 1, 300.0, -1.0);
    assert_float_equal(a.up_s, 450.0, EPS);
    assert_float_equal(a.down_s, 450.0, EPS);
    assert_float_equal(a.unknown_s, 300.0, EPS);
    assert_float_equal(kvl_cap_avail_pct(&a), 50.0, EPS);
    kvl_cap_avail_t l = {0};
    double lost[] = {0.0, 100.0, 50.0, NAN, 100.0};
    kvl_cap_avail_add(&l, lost, 5, 1, 60.0, 99.999);
    assert_float_equal(l.up_s, 120.0, EPS);
    assert_float_equal(l.down_s, 120.0, EPS);
    assert_float_equal(l.unknown_s, 60.0, EPS);
    assert_float_equal(kvl_cap_avail_pct(&l), 50.0, EPS);
    kvl_cap_avail_t u = {0};
    double unk[] = {NAN, NAN};
    kvl_cap_avail_add(&u, unk, 2, 1, 300.0, -1.0);
    assert_true(isnan(kvl_cap_avail_pct(&u)));
    assert_float_equal(u.unknown_s, 600.0, EPS);
}

static void test_csv(void **state)
{
    KVL_UNUSED(state);
    json_t *answer = json_pack("{s:[{s:s, s:s, s:s, s:s, s:s, s:b, s:f, s:{s:f, s:n}, s:n}]}",
                               "interfaces", "agent", "a,b", "site", "s1", "device", "=cmd",
                               "interface", "eth0", "circuit", "say \"hi\"\nnow", "retired", 0,
                               "speed_bps", 1e9, "in", "avg_bps", 2.5, "p95_bps", "days_to_80");
    assert_non_null(answer);
    size_t len = 0;
    char *csv = kvl_cap_csv(answer, &len);
    assert_non_null(csv);
    assert_int_equal(strlen(csv), len);
    const char *head = "agent,site,device,interface,circuit,retired,speed_bps,";
    assert_true(strncmp(csv, head, strlen(head)) == 0);
    const char *row = strstr(csv, "\r\n");
    assert_non_null(row);
    row += 2;
    const char *want = "\"a,b\",s1,\"'=cmd\",eth0,\"say \"\"hi\"\"\nnow\",false,1000000000,";
    assert_true(strncmp(row, want, strlen(want)) == 0);
    assert_non_null(strstr(row, ",2.5,,")); /* in_avg_bps, an absent in_peak_bps */
    assert_int_equal(memcmp(csv + len - 2, "\r\n", 2), 0);
    free(csv);
    json_decref(answer);
}

static void test_names(void **state)
{
    KVL_UNUSED(state);
    char out[32];
    assert_int_equal(kvl_cap_name_decode("eth0%2F1", out, sizeof(out)), 0);
    assert_string_equal(out, "eth0/1");
    assert_int_equal(kvl_cap_name_decode("%5Fagent", out, sizeof(out)), 0);
    assert_string_equal(out, "_agent");
    assert_int_equal(kvl_cap_name_decode("%00", out, sizeof(out)), 0);
    assert_string_equal(out, "");
    assert_int_equal(kvl_cap_name_decode("bad%G1", out, sizeof(out)), -1);
    assert_int_equal(kvl_cap_name_decode("cut%2", out, sizeof(out)), -1);
    assert_int_equal(kvl_cap_name_decode("nul%00x", out, sizeof(out)), -1);
    assert_int_equal(kvl_cap_name_decode("0123456789", out, 5), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentile), cmocka_unit_test(test_stats),
        cmocka_unit_test(test_fit),        cmocka_unit_test(test_days_to),
        cmocka_unit_test(test_daily),      cmocka_unit_test(test_avail),
        cmocka_unit_test(test_csv),        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
