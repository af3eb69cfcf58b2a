/*
 * test_capacity.c — the capacity report's figures (collector/capacity/capacity_calc.h) on
 * arrays whose answers are computed by hand: the 95th percentile's rank rule (ceil(p/100 *
 * n) of the sorted known values; unknowns left out), least squares, days to 80 %, daily
 * means by UTC day, availability from state rows; and the report's CSV quoting (RFC 4180,
 * formulas kept as text), the decoding of archive file names, and one report run over small
 * archives written here (a device's `reachable`, two links' `lost_pct`, a file that is not
 * an archive): availability and outage minutes per device, link and site, the error of the
 * file that is not one, the agent filter, and the bound on archives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capacity_calc.h"
#include "capacity_int.h"
#include "kvl.h"
#include "rrd_store.h"

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

/* ---------------------------------------------------------------- a report run -------- */

#define T0 1799999700LL /* a multiple of 300 */

static void make_state(const char *path, const char *ds, const double *v, size_t n)
{
    kvl_rrd_ds_t d[] = {{ds, 0}};
    kvl_rrd_rra_t r[] = {{"AVERAGE", 1, 100}};
    char err[256], upd[64];
    assert_int_equal(kvl_rrd_create(path, 300, T0, d, 1, r, 1, err, sizeof(err)), KVL_RRD_OK);
    for (size_t i = 0; i < n; i++) {
        if (isnan(v[i])) {
            snprintf(upd, sizeof(upd), "%lld:U", T0 + 300 * (long long)(i + 1));
        } else {
            snprintf(upd, sizeof(upd), "%lld:%g", T0 + 300 * (long long)(i + 1), v[i]);
        }
        assert_int_equal(kvl_rrd_update(path, ds, upd, err, sizeof(err)), KVL_RRD_OK);
    }
}

static const json_t *find(const json_t *arr, const char *key, const char *value)
{
    size_t i;
    const json_t *o;
    json_array_foreach(arr, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, key)), value) == 0) {
            return o;
        }
    }
    return NULL;
}

static double num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static void test_report_run(void **state)
{
    KVL_UNUSED(state);
    char dir[64], path[256];
    snprintf(dir, sizeof(dir), "/tmp/kvl_capacity_XXXXXX");
    assert_non_null(mkdtemp(dir));
    /* the store's layout: <site>/<device>.rrd, <site>/<agent>/_links/<target>.rrd */
    snprintf(path, sizeof(path), "%s/s1", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/s1/ag%%2F1", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    snprintf(path, sizeof(path), "%s/s1/ag%%2F1/_links", dir);
    assert_int_equal(mkdir(path, 0755), 0);
    /* 12 rows of 5 minutes: the device down for one row and half of another, one unknown */
    double dev[12] = {1, 1, 0, 0.5, 1, 1, NAN, 1, 1, 1, 1, 1};
    double l1[12] = {0, 0, 100, 100, 50, 0, 0, 0, 0, 0, 0, 0}; /* 10 minutes out */
    double l2[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100, 99.9}; /* 5 minutes out */
    char devpath[256];
    snprintf(devpath, sizeof(devpath), "%s/s1/dev1.rrd", dir);
    make_state(devpath, "reachable", dev, 12);
    snprintf(path, sizeof(path), "%s/s1/ag%%2F1/_links/t1.rrd", dir);
    make_state(path, "lost_pct", l1, 12);
    snprintf(path, sizeof(path), "%s/s1/ag%%2F1/_links/t2.rrd", dir);
    make_state(path, "lost_pct", l2, 12);

    /* a file that is not an archive: its row says why, the report goes on */
    snprintf(path, sizeof(path), "%s/s1/ag%%2F1/_links/t3.rrd", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not an archive\n", f);
    fclose(f);

    cap_job_t job = {.data_dir = dir,
                     .days = 30,
                     .from = T0,
                     .to = T0 + 12 * 300,
                     .ifaces = json_array(),
                     .devices = json_pack("[{s:s, s:s, s:s, s:b, s:s}]", "agent", "ag/1", "site",
                                          "s1", "device", "dev1", "retired", 0, "_path", devpath),
                     .links = true,
                     .files_max = 10};
    kvl_cap_report_run(&job);
    assert_int_equal(job.status, 200);
    assert_non_null(job.answer);
    const json_t *a = job.answer;
    const json_t *d = find(json_object_get(a, "devices"), "device", "dev1");
    assert_non_null(d);
    assert_null(json_object_get(d, "_path")); /* private keys removed */
    assert_float_equal(num(d, "outage_minutes"), 7.5, EPS);
    assert_float_equal(num(d, "up_minutes"), 47.5, EPS);
    assert_float_equal(num(d, "unknown_minutes"), 5.0, EPS);
    assert_float_equal(num(d, "availability_pct"), 100.0 * 47.5 / 55.0, EPS);
    const json_t *l = find(json_object_get(a, "links"), "target", "t1");
    assert_non_null(l);
    assert_string_equal(json_string_value(json_object_get(l, "agent")), "ag/1");
    assert_float_equal(num(l, "outage_minutes"), 10.0, EPS);
    assert_float_equal(num(l, "up_minutes"), 50.0, EPS);
    l = find(json_object_get(a, "links"), "target", "t2");
    assert_non_null(l);
    assert_float_equal(num(l, "outage_minutes"), 5.0, EPS); /* 99.9 % lost is not out */
    l = find(json_object_get(a, "links"), "target", "t3");
    assert_non_null(l);
    assert_true(json_is_string(json_object_get(l, "error")));
    assert_true(json_is_null(json_object_get(l, "availability_pct")));
    assert_float_equal(num(l, "outage_minutes"), 0.0, EPS);
    const json_t *s = find(json_object_get(a, "sites"), "site", "s1");
    assert_non_null(s);
    assert_int_equal(json_integer_value(json_object_get(s, "devices")), 1);
    assert_int_equal(json_integer_value(json_object_get(s, "links")), 3);
    assert_float_equal(num(s, "outage_minutes"), 22.5, EPS);
    assert_float_equal(num(s, "availability_pct"), 100.0 * (47.5 + 50 + 55) / (55 + 60 + 60), EPS);
    json_decref(job.answer);
    job.answer = NULL;

    /* another agent: no links (a job runs once: its device list made again) */
    json_decref(job.devices);
    job.devices = json_array();
    job.agent = "other";
    kvl_cap_report_run(&job);
    assert_int_equal(job.status, 200);
    assert_int_equal(json_array_size(json_object_get(job.answer, "links")), 0);
    json_decref(job.answer);
    job.answer = NULL;
    job.agent = NULL;

    /* more archives than the bound: 400 with a sentence */
    job.files_max = 1;
    kvl_cap_report_run(&job);
    assert_null(job.answer);
    assert_int_equal(job.status, 400);
    assert_non_null(strstr(job.err, "narrow it with site="));
    json_decref(job.ifaces);
    json_decref(job.devices);

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_percentile), cmocka_unit_test(test_stats),
        cmocka_unit_test(test_fit),        cmocka_unit_test(test_days_to),
        cmocka_unit_test(test_daily),      cmocka_unit_test(test_avail),
        cmocka_unit_test(test_csv),        cmocka_unit_test(test_names),
        cmocka_unit_test(test_report_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
