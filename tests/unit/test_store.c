/*
 * test_store.c — unit tests for the RRD archive store (collector/store/store.h).
 *
 * kvl_store_path is checked for every scope. Then a real round trip in a temporary
 * folder: rows of an interface (two octet counters growing at known rates, a state gauge,
 * an error counter with one unknown reading, and a metric the schema lacks), of a device
 * and of an agent's own statistics go through kvl_store_submit on a libuv loop, and the files are
 * read back with the rrdtool command line (`rrdtool fetch`, `rrdtool info`) — an independent reader
 * — to check that the archived rates are the rates the counters were made to grow at. A late update
 * must come back as stale, not as an error.
 *
 * A file made before its scope gained metrics (a link file with the link family's data sources
 * of old, made by rrdtool; an interface file lacking some) gains their data sources, keeps its
 * data and stores the whole row; one that cannot gain them stores the rest of the row.
 *
 * Failures: a file that is not an archive fails for good (counted, the job goes on); a
 * failure that can pass (no file descriptor left: RLIMIT_NOFILE lowered to the next free
 * one, which even root cannot pass) stops the job at that row with retry and a reason, and
 * the same rows run again later are written, those written before coming back as stale.
 *
 * A new archive is not left in the page cache: librrd writes it with large write()s, which
 * the kernel may keep in large folios that every later update would rewrite whole; after its
 * creation and first update only the few pages that update touched are cached (mincore).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <uv.h>

#include "kvl.h"
#include "store.h"

/* ------------------------------------------------------------ kvl_store_path ---------- */

static void test_path(void **state)
{
    KVL_UNUSED(state);
    char out[512];
    assert_int_equal(kvl_store_path("/var/lib/kaaval", "tvm-north", "bhq-tvm-north-rtr1",
                                    KVL_SCOPE_INTERFACE, "GigabitEthernet1/0/1", out, sizeof(out)),
                     0);
    assert_string_equal(out, "/var/lib/kaaval/tvm-north/bhq-tvm-north-rtr1/"
                             "GigabitEthernet1%2F0%2F1.rrd");
    assert_int_equal(kvl_store_path("/var/lib/kaaval", "tvm-north", "bhq-tvm-north-rtr1",
                                    KVL_SCOPE_DEVICE, "", out, sizeof(out)),
                     0);
    assert_string_equal(out, "/var/lib/kaaval/tvm-north/bhq-tvm-north-rtr1.rrd");
    /* The instance does not matter for a device. */
    assert_int_equal(kvl_store_path("/d", "s", "r", KVL_SCOPE_DEVICE, "ge-0/0/1", out, sizeof(out)),
                     0);
    assert_string_equal(out, "/d/s/r.rrd");

    /* The agent's own statistics, in a folder no device name can map to. */
    assert_int_equal(kvl_store_path("/d", "tvm-north", "blk-tvm-north-01", KVL_SCOPE_AGENT, "", out,
                                    sizeof(out)),
                     0);
    assert_string_equal(out, "/d/tvm-north/_agent/blk-tvm-north-01.rrd");
    assert_int_equal(kvl_store_path("/d", "tvm-north", "_agent", KVL_SCOPE_INTERFACE,
                                    "blk-tvm-north-01", out, sizeof(out)),
                     0);
    assert_string_equal(out, "/d/tvm-north/%5Fagent/blk-tvm-north-01.rrd");
    assert_int_equal(
        kvl_store_path("/d", "tvm-north", "_agent", KVL_SCOPE_DEVICE, "", out, sizeof(out)), 0);
    assert_string_equal(out, "/d/tvm-north/%5Fagent.rrd");

    /* Capture figures: beside the link measurements, under their own folder. */
    assert_int_equal(kvl_store_path("/d", "tvm-north", "blk-tvm-north-01", KVL_SCOPE_CAPTURE,
                                    "eth1", out, sizeof(out)),
                     0);
    assert_string_equal(out, "/d/tvm-north/_capture/blk-tvm-north-01/eth1.rrd");
    assert_int_equal(kvl_store_path("/d", "s", "a", KVL_SCOPE_CAPTURE, "../x", out, sizeof(out)),
                     0);
    assert_string_equal(out, "/d/s/_capture/a/%2E.%2Fx.rrd");

    /* Names that would escape or hide are escaped. */
    assert_int_equal(
        kvl_store_path("/d", "..", "../etc", KVL_SCOPE_INTERFACE, ".profile", out, sizeof(out)), 0);
    assert_string_equal(out, "/d/%2E./%2E.%2Fetc/%2Eprofile.rrd");
    assert_int_equal(kvl_store_path("/d", "site a", "rtr 1", KVL_SCOPE_INTERFACE, "ge-0/0/4.0", out,
                                    sizeof(out)),
                     0);
    assert_string_equal(out, "/d/site%20a/rtr%201/ge-0%2F0%2F4.0.rrd");

    /* No folder: paths relative to a remote rrdcached's -b folder. */
    assert_int_equal(
        kvl_store_path("", "s", "r", KVL_SCOPE_INTERFACE, "ge-0/0/1", out, sizeof(out)), 0);
    assert_string_equal(out, "s/r/ge-0%2F0%2F1.rrd");
    assert_int_equal(kvl_store_path("", "s", "r", KVL_SCOPE_DEVICE, "", out, sizeof(out)), 0);
    assert_string_equal(out, "s/r.rrd");
    assert_int_equal(kvl_store_path("", "..", "r", KVL_SCOPE_DEVICE, "", out, sizeof(out)), 0);
    assert_string_equal(out, "%2E./r.rrd");
    assert_int_equal(kvl_store_group_path("", "s", "r", "cpu", "1", out, sizeof(out)), 0);
    assert_string_equal(out, "s/r/_cpu/1.rrd");

    /* Output too small, exactly big enough. */
    const char *want = "/d/s/r.rrd";
    assert_int_equal(kvl_store_path("/d", "s", "r", KVL_SCOPE_DEVICE, "", out, strlen(want)),
                     KVL_EINVAL);
    assert_int_equal(kvl_store_path("/d", "s", "r", KVL_SCOPE_DEVICE, "", out, strlen(want) + 1),
                     0);
    assert_string_equal(out, want);

    /* A name too long for the store's own buffers. */
    char longname[1000];
    memset(longname, '/', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(kvl_store_path("/d", "s", longname, KVL_SCOPE_DEVICE, "", out, sizeof(out)),
                     KVL_EINVAL);
}

/* ------------------------------------------------------------ reading files back ------ */

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    KVL_UNUSED(sb);
    KVL_UNUSED(flag);
    KVL_UNUSED(ftw);
    return remove(path);
}

static void rm_tree(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

enum { MAX_DS = 32, MAX_ROWS = 64 }; /* the agent archive has 24 */

typedef struct fetched {
    char names[MAX_DS][32];
    size_t n_ds;
    long ts[MAX_ROWS];
    double v[MAX_ROWS][MAX_DS];
    size_t n_rows;
} fetched_t;

/* Runs `rrdtool fetch path cf -r 60 -s start -e end` and parses its table. */
static void fetch(const char *path, const char *cf, long start, long stop, fetched_t *f)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rrdtool fetch '%s' %s -r 60 -s %ld -e %ld 2>&1", path, cf, start,
             stop);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    memset(f, 0, sizeof(*f));
    char line[4096];
    bool header = false;
    while (fgets(line, sizeof(line), p) != NULL) {
        if (strspn(line, " \n") == strlen(line)) {
            continue;
        }
        if (!header) {
            header = true;
            char *save = NULL;
            for (char *t = strtok_r(line, " \n", &save); t; t = strtok_r(NULL, " \n", &save)) {
                assert_true(f->n_ds < MAX_DS);
                snprintf(f->names[f->n_ds++], sizeof(f->names[0]), "%s", t);
            }
            continue;
        }
        char *end;
        long ts = strtol(line, &end, 10);
        if (*end != ':') {
            fail_msg("unexpected rrdtool output: %s", line);
        }
        assert_true(f->n_rows < MAX_ROWS);
        f->ts[f->n_rows] = ts;
        char *s = end + 1;
        for (size_t i = 0; i < f->n_ds; i++) {
            f->v[f->n_rows][i] = strtod(s, &end);
            assert_true(end != s);
            s = end;
        }
        f->n_rows++;
    }
    assert_int_equal(pclose(p), 0);
    assert_true(header);
}

static double value_at(const fetched_t *f, long ts, const char *ds)
{
    size_t col = 0;
    while (col < f->n_ds && strcmp(f->names[col], ds) != 0) {
        col++;
    }
    if (col == f->n_ds) {
        fail_msg("no data source %s in the file", ds);
    }
    for (size_t r = 0; r < f->n_rows; r++) {
        if (f->ts[r] == ts) {
            return f->v[r][col];
        }
    }
    fail_msg("no row at %ld", ts);
    return NAN;
}

static void assert_near(double got, double want, const char *what, long ts)
{
    if (isnan(got) || fabs(got - want) > 1e-9 * fabs(want) + 1e-12) {
        fail_msg("%s at %ld: %.10g, expected %.10g", what, ts, got, want);
    }
}

/* Returns the value of `key` in `rrdtool info path` (quotes stripped), or fails. */
static void info(const char *path, const char *key, char *out, size_t outlen)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rrdtool info '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[1024];
    bool found = false;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), p) != NULL) {
        if (!found && strncmp(line, key, kl) == 0 && strncmp(line + kl, " = ", 3) == 0) {
            char *v = line + kl + 3;
            v[strcspn(v, "\n")] = '\0';
            if (v[0] == '"') {
                v++;
                v[strcspn(v, "\"")] = '\0';
            }
            snprintf(out, outlen, "%s", v);
            found = true;
        }
    }
    assert_int_equal(pclose(p), 0);
    if (!found) {
        snprintf(out, outlen, "(absent)");
    }
}

static void assert_info(const char *path, const char *key, const char *want)
{
    char got[256];
    info(path, key, got, sizeof(got));
    if (strcmp(got, want) != 0) {
        fail_msg("%s: %s is '%s', expected '%s'", path, key, got, want);
    }
}

/* ------------------------------------------------------------ round trip -------------- */

typedef struct done {
    int calls;
    kvl_store_result_t r;
} done_t;

static void on_done(void *arg, const kvl_store_result_t *r)
{
    done_t *d = arg;
    d->calls++;
    d->r = *r;
}

/* Submits j, runs the loop until it is done, and returns the result. */
static kvl_store_result_t run_job(uv_loop_t *loop, kvl_store_t *s, kvl_store_job_t *j)
{
    done_t d = {0};
    assert_int_equal(kvl_store_submit(s, j, on_done, &d), 0);
    assert_int_equal(kvl_store_busy(s), 1);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(d.calls, 1);
    assert_int_equal(kvl_store_busy(s), 0);
    return d.r;
}

#define T0 1700000040L /* a multiple of 60 */
#define STEP 60
#define IN_RATE 125000.0 /* octets per second: 1 Mbit/s */
#define OUT_RATE 2500.0
#define ERR_RATE 0.1

static const char *const cfs[] = {"AVERAGE", "MAX", NULL};

/* Adds the interface row of poll k (time T0 + k steps) to j. */
static void add_interface_row(kvl_store_job_t *j, int k, int64_t time_ms)
{
    kvl_store_value_t v[] = {
        {.metric = "in_octets",
         .value = 1000000000000ull + (uint64_t)k * (uint64_t)(IN_RATE * STEP)},
        {.metric = "out_octets",
         .value = 5000000000ull + (uint64_t)k * (uint64_t)(OUT_RATE * STEP)},
        {.metric = "oper_status", .value = k == 5 ? 2 : 1},
        {.metric = "in_errors", .value = 100 + (uint64_t)k * 6, .unknown = (k == 4)},
        {.metric = "cpu_temperature", .value = 40}, /* no place for it in an interface file */
    };
    kvl_store_row_t row = {.site = "tvm-north",
                           .device = "rtr 1",
                           .scope = KVL_SCOPE_INTERFACE,
                           .instance = "Gi1/0/1",
                           .interval_s = STEP,
                           .time_ms = time_ms,
                           .values = v,
                           .n_values = KVL_ARRAY_SIZE(v)};
    assert_int_equal(kvl_store_job_add(j, &row), 0);
}

static void add_device_row(kvl_store_job_t *j, int k)
{
    kvl_store_value_t v[] = {
        {.metric = "reachable", .value = 1},
        {.metric = "response_ms", .real = true, .real_value = 3.25 + k},
    };
    kvl_store_row_t row = {.site = "tvm-north",
                           .device = "rtr 1",
                           .scope = KVL_SCOPE_DEVICE,
                           .instance = "",
                           .interval_s = STEP,
                           .time_ms = (T0 + (int64_t)k * STEP) * 1000,
                           .values = v,
                           .n_values = KVL_ARRAY_SIZE(v)};
    assert_int_equal(kvl_store_job_add(j, &row), 0);
}

/* The agent's statistics at poll k: a request counter at 40 per second and a gauge. */
static void add_agent_row(kvl_store_job_t *j, int k)
{
    kvl_store_value_t v[] = {
        {.metric = "snmp_requests", .value = 5000 + (uint64_t)k * 40 * STEP},
        {.metric = "devices", .value = 3},
        {.metric = "in_octets", .value = 1}, /* an interface metric: no place here */
    };
    kvl_store_row_t row = {.site = "tvm-north",
                           .device = "blk-tvm-north-01",
                           .scope = KVL_SCOPE_AGENT,
                           .instance = "",
                           .interval_s = STEP,
                           .time_ms = (T0 + (int64_t)k * STEP) * 1000,
                           .values = v,
                           .n_values = KVL_ARRAY_SIZE(v)};
    assert_int_equal(kvl_store_job_add(j, &row), 0);
}

static void test_round_trip(void **state)
{
    KVL_UNUSED(state);
    char root[] = "/tmp/kvl-test-store-XXXXXX";
    assert_non_null(mkdtemp(root));
    char data_dir[256];
    snprintf(data_dir, sizeof(data_dir), "%s/data", root);

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kvl_archive_spec_t archives[] = {{0, 3600000}}; /* step:1h */
    kvl_store_cfg_t cfg = {
        .data_dir = data_dir, .archives = archives, .n_archives = 1, .consolidations = cfs};
    kvl_store_t *s = NULL;
    char serr[256];
    assert_int_equal(kvl_store_new(&loop, &cfg, &s, serr, sizeof(serr)), 0);
    assert_non_null(s);
    assert_int_equal(kvl_store_busy(s), 0);

    /* Polls 0..5 of the interface, the device and the agent. */
    kvl_store_job_t *j = kvl_store_job_new();
    assert_non_null(j);
    for (int k = 0; k <= 5; k++) {
        add_interface_row(j, k, (T0 + (int64_t)k * STEP) * 1000);
        add_device_row(j, k);
        add_agent_row(j, k);
    }
    assert_int_equal(kvl_store_job_rows(j), 18);
    kvl_store_result_t r = run_job(&loop, s, j);
    assert_int_equal(r.created, 3);
    assert_int_equal(r.rows, 18);
    assert_int_equal(r.values, 6 * 4 + 6 * 2 + 6 * 2);
    assert_int_equal(r.skipped, 6 + 6);
    assert_int_equal(r.stale, 0);
    assert_int_equal(r.errors, 0);

    /* Polls 6..9. */
    j = kvl_store_job_new();
    for (int k = 6; k <= 9; k++) {
        add_interface_row(j, k, (T0 + (int64_t)k * STEP) * 1000);
    }
    r = run_job(&loop, s, j);
    assert_int_equal(r.created, 0);
    assert_int_equal(r.rows, 4);
    assert_int_equal(r.values, 16);
    assert_int_equal(r.skipped, 4);
    assert_int_equal(r.errors, 0);

    /* Late updates: one older than the file's last, one at the same second. They are stale,
     * not errors, and the other rows of the job still go through. */
    j = kvl_store_job_new();
    add_interface_row(j, 3, (T0 + 3 * STEP) * 1000);
    add_interface_row(j, 9, (T0 + 9 * STEP) * 1000);
    add_device_row(j, 6);
    r = run_job(&loop, s, j);
    assert_int_equal(r.stale, 2);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.rows, 1);
    assert_int_equal(r.created, 0);

    /* A row with nothing the schema knows creates no file. */
    j = kvl_store_job_new();
    kvl_store_value_t odd = {.metric = "fan_rpm", .value = 1200};
    kvl_store_row_t row = {.site = "tvm-north",
                           .device = "rtr 1",
                           .scope = KVL_SCOPE_INTERFACE,
                           .instance = "fan0",
                           .interval_s = STEP,
                           .time_ms = T0 * 1000,
                           .values = &odd,
                           .n_values = 1};
    assert_int_equal(kvl_store_job_add(j, &row), 0);
    r = run_job(&loop, s, j);
    assert_int_equal(r.skipped, 1);
    assert_int_equal(r.rows, 0);
    assert_int_equal(r.created, 0);
    assert_int_equal(r.errors, 0);

    kvl_store_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);

    /* The files are where kvl_store_path says, under the names worked out by hand. */
    char ifpath[512], devpath[512], agentpath[512], path[512];
    snprintf(ifpath, sizeof(ifpath), "%s/tvm-north/rtr%%201/Gi1%%2F0%%2F1.rrd", data_dir);
    snprintf(devpath, sizeof(devpath), "%s/tvm-north/rtr%%201.rrd", data_dir);
    snprintf(agentpath, sizeof(agentpath), "%s/tvm-north/_agent/blk-tvm-north-01.rrd", data_dir);
    assert_int_equal(access(agentpath, R_OK), 0);
    assert_info(agentpath, "ds[snmp_requests].type", "DERIVE");
    assert_info(agentpath, "ds[devices].type", "GAUGE");
    assert_info(agentpath, "ds[in_octets].type", "(absent)");
    assert_int_equal(kvl_store_path(data_dir, "tvm-north", "rtr 1", KVL_SCOPE_INTERFACE, "Gi1/0/1",
                                    path, sizeof(path)),
                     0);
    assert_string_equal(path, ifpath);
    assert_int_equal(access(ifpath, R_OK), 0);
    assert_int_equal(access(devpath, R_OK), 0);
    snprintf(path, sizeof(path), "%s/tvm-north/rtr%%201/fan0.rrd", data_dir);
    assert_int_equal(access(path, F_OK), -1);

    /* Layout of the interface file. */
    assert_info(ifpath, "step", "60");
    char want[64];
    snprintf(want, sizeof(want), "%ld", T0 + 9 * STEP);
    assert_info(ifpath, "last_update", want);
    assert_info(ifpath, "ds[in_octets].type", "DERIVE");
    assert_info(ifpath, "ds[in_octets].min", "0.0000000000e+00");
    assert_info(ifpath, "ds[in_octets].minimal_heartbeat", "120");
    assert_info(ifpath, "ds[out_discards].type", "DERIVE");
    assert_info(ifpath, "ds[oper_status].type", "GAUGE");
    assert_info(ifpath, "ds[speed_bps].type", "GAUGE");
    assert_info(ifpath, "ds[cpu_temperature].type", "(absent)");
    assert_info(ifpath, "rra[0].cf", "AVERAGE");
    assert_info(ifpath, "rra[1].cf", "MAX");
    assert_info(ifpath, "rra[2].cf", "(absent)");
    assert_info(ifpath, "rra[0].rows", "60");
    assert_info(ifpath, "rra[0].pdp_per_row", "1");
    assert_info(devpath, "ds[reachable].type", "GAUGE");
    assert_info(devpath, "ds[in_octets].type", "(absent)");
    snprintf(want, sizeof(want), "%ld", T0 + 6 * STEP);
    assert_info(devpath, "last_update", want);

    /* The archived rates are the rates the counters grew at, in both consolidations. */
    static const char *const fetch_cfs[] = {"AVERAGE", "MAX"};
    for (size_t c = 0; c < 2; c++) {
        fetched_t f;
        fetch(ifpath, fetch_cfs[c], T0, T0 + 9 * STEP, &f);
        for (int k = 1; k <= 9; k++) {
            long ts = T0 + (long)k * STEP;
            assert_near(value_at(&f, ts, "in_octets"), IN_RATE, "in_octets", ts);
            assert_near(value_at(&f, ts, "out_octets"), OUT_RATE, "out_octets", ts);
            assert_near(value_at(&f, ts, "oper_status"), k == 5 ? 2.0 : 1.0, "oper_status", ts);
            /* The unknown reading at poll 4 leaves the rate unknown up to poll 5. */
            double e = value_at(&f, ts, "in_errors");
            if (k == 4 || k == 5) {
                if (!isnan(e)) {
                    fail_msg("in_errors at poll %d: %g, expected unknown", k, e);
                }
            } else {
                assert_near(e, ERR_RATE, "in_errors", ts);
            }
            /* Never written: unknown. */
            assert_true(isnan(value_at(&f, ts, "speed_bps")));
        }
        fetch(agentpath, fetch_cfs[c], T0, T0 + 5 * STEP, &f);
        for (int k = 1; k <= 5; k++) {
            long ts = T0 + (long)k * STEP;
            assert_near(value_at(&f, ts, "snmp_requests"), 40.0, "snmp_requests", ts);
            assert_near(value_at(&f, ts, "devices"), 3.0, "devices", ts);
        }
        fetch(devpath, fetch_cfs[c], T0, T0 + 6 * STEP, &f);
        for (int k = 1; k <= 6; k++) {
            long ts = T0 + (long)k * STEP;
            assert_near(value_at(&f, ts, "reachable"), 1.0, "reachable", ts);
            assert_near(value_at(&f, ts, "response_ms"), 3.25 + k, "response_ms", ts);
        }
    }
    rm_tree(root);
}

/* The first update of a series with a sub-second time still lands in its step. */
static void test_fractional_time(void **state)
{
    KVL_UNUSED(state);
    char root[] = "/tmp/kvl-test-store-XXXXXX";
    assert_non_null(mkdtemp(root));
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kvl_archive_spec_t archives[] = {{0, 3600000}};
    kvl_store_cfg_t cfg = {
        .data_dir = root, .archives = archives, .n_archives = 1, .consolidations = cfs};
    kvl_store_t *s = NULL;
    char serr[256];
    assert_int_equal(kvl_store_new(&loop, &cfg, &s, serr, sizeof(serr)), 0);
    assert_non_null(s);
    kvl_store_job_t *j = kvl_store_job_new();
    for (int k = 0; k <= 3; k++) {
        add_interface_row(j, k, (T0 + (int64_t)k * STEP) * 1000 + 250);
    }
    kvl_store_result_t r = run_job(&loop, s, j);
    assert_int_equal(r.rows, 4);
    assert_int_equal(r.errors, 0);
    kvl_store_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);

    char ifpath[512];
    assert_int_equal(kvl_store_path(root, "tvm-north", "rtr 1", KVL_SCOPE_INTERFACE, "Gi1/0/1",
                                    ifpath, sizeof(ifpath)),
                     0);
    fetched_t f;
    fetch(ifpath, "AVERAGE", T0, T0 + 3 * STEP, &f);
    /* Steps 2 and 3 are covered by known rates only. */
    for (int k = 2; k <= 3; k++) {
        long ts = T0 + (long)k * STEP;
        assert_near(value_at(&f, ts, "in_octets"), IN_RATE, "in_octets", ts);
    }
    rm_tree(root);
}

/* A metric group: its family is the file's data sources; rows and scalars have their own
 * paths; a file made with other metrics skips the new ones instead of failing the batch. */
static void test_group(void **state)
{
    KVL_UNUSED(state);
    char root[] = "/tmp/kvl-test-store-XXXXXX";
    assert_non_null(mkdtemp(root));
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kvl_archive_spec_t archives[] = {{0, 3600000}};
    kvl_store_cfg_t cfg = {
        .data_dir = root, .archives = archives, .n_archives = 1, .consolidations = cfs};
    kvl_store_t *s = NULL;
    char serr[256];
    assert_int_equal(kvl_store_new(&loop, &cfg, &s, serr, sizeof(serr)), 0);
    assert_non_null(s);

    static const char *const m1[] = {"used_bytes", "size_bytes", "cpu_idle"};
    static const kvl_kind_t k1[] = {KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_COUNTER};
    kvl_family_t fam = {.name = "hr-storage", .n = 3, .metrics = m1, .kinds = k1, .id = 4};
    kvl_store_job_t *j = kvl_store_job_new();
    for (int k = 0; k <= 3; k++) {
        kvl_store_value_t v[] = {
            {.metric = "used_bytes", .value = 1000 + (uint64_t)k},
            {.metric = "size_bytes", .value = 4096},
            {.metric = "cpu_idle", .value = (uint64_t)k * 600},
        };
        kvl_store_row_t row = {.site = "dc1",
                               .device = "srv1",
                               .scope = KVL_SCOPE_GROUP,
                               .instance = "/var",
                               .family = &fam,
                               .interval_s = STEP,
                               .time_ms = (T0 + (int64_t)k * STEP) * 1000,
                               .values = v,
                               .n_values = 3};
        assert_int_equal(kvl_store_job_add(j, &row), 0);
        row.instance = ""; /* the group's scalars */
        assert_int_equal(kvl_store_job_add(j, &row), 0);
    }
    kvl_store_result_t r = run_job(&loop, s, j);
    assert_int_equal(r.created, 2);
    assert_int_equal(r.rows, 8);
    assert_int_equal(r.errors, 0);

    char path[512], want[512];
    assert_int_equal(
        kvl_store_group_path(root, "dc1", "srv1", "hr-storage", "/var", path, sizeof(path)), 0);
    snprintf(want, sizeof(want), "%s/dc1/srv1/_hr-storage/%%2Fvar.rrd", root);
    assert_string_equal(path, want);
    assert_info(path, "ds[used_bytes].type", "GAUGE");
    assert_info(path, "ds[cpu_idle].type", "DERIVE");
    assert_info(path, "ds[in_octets].type", "(absent)");
    fetched_t f;
    fetch(path, "AVERAGE", T0, T0 + 3 * STEP, &f);
    assert_near(value_at(&f, T0 + 2 * STEP, "used_bytes"), 1002, "used_bytes", T0 + 2 * STEP);
    assert_near(value_at(&f, T0 + 2 * STEP, "cpu_idle"), 10, "cpu_idle", T0 + 2 * STEP);
    assert_int_equal(
        kvl_store_group_path(root, "dc1", "srv1", "hr-storage", "", path, sizeof(path)), 0);
    snprintf(want, sizeof(want), "%s/dc1/srv1/_hr-storage.rrd", root);
    assert_string_equal(path, want);
    assert_int_equal(access(path, R_OK), 0);
    assert_int_equal(kvl_store_path(root, "dc1", "srv1", KVL_SCOPE_GROUP, "", path, sizeof(path)),
                     KVL_EINVAL);

    /* The group gains a metric: the old file gains its data source, and the row is
     * written whole. */
    static const char *const m2[] = {"used_bytes", "size_bytes", "cpu_idle", "files"};
    static const kvl_kind_t k2[] = {KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_COUNTER,
                                    KVL_KIND_GAUGE};
    kvl_family_t fam2 = {.name = "hr-storage", .n = 4, .metrics = m2, .kinds = k2, .id = 4};
    j = kvl_store_job_new();
    kvl_store_value_t v2[] = {{.metric = "used_bytes", .value = 7},
                              {.metric = "files", .value = 9}};
    kvl_store_row_t row2 = {.site = "dc1",
                            .device = "srv1",
                            .scope = KVL_SCOPE_GROUP,
                            .instance = "/var",
                            .family = &fam2,
                            .interval_s = STEP,
                            .time_ms = (T0 + 5 * STEP) * 1000,
                            .values = v2,
                            .n_values = 2};
    assert_int_equal(kvl_store_job_add(j, &row2), 0);
    /* A group row without its family cannot be filed. */
    row2.family = NULL;
    assert_int_equal(kvl_store_job_add(j, &row2), KVL_EINVAL);
    r = run_job(&loop, s, j);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(r.rows, 1);
    assert_int_equal(
        kvl_store_group_path(root, "dc1", "srv1", "hr-storage", "/var", path, sizeof(path)), 0);
    assert_info(path, "ds[files].type", "GAUGE");
    fetch(path, "AVERAGE", T0 + 4 * STEP, T0 + 5 * STEP, &f);
    assert_near(value_at(&f, T0 + 5 * STEP, "files"), 9, "files", T0 + 5 * STEP);
    kvl_store_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
    rm_tree(root);
}

/* The link family before and after it gained the RTT quantiles (agent/probe/prober.c). */
static const char *const link_old[] = {
    "sent",       "received",      "lost_pct",    "loss_burst", "duplicates",    "reordered",
    "rtt_min_ms", "rtt_median_ms", "rtt_mean_ms", "rtt_max_ms", "rtt_stddev_ms", "jitter_ms",
    "mos"};
static const char *const link_new[] = {
    "sent",       "received",      "lost_pct",    "loss_burst", "duplicates",    "reordered",
    "rtt_min_ms", "rtt_median_ms", "rtt_mean_ms", "rtt_max_ms", "rtt_stddev_ms", "jitter_ms",
    "mos",        "rtt_p10_ms",    "rtt_p25_ms",  "rtt_p75_ms", "rtt_p90_ms"};

/* The link row at time t: metric i of link_new is worth base + i. */
static void add_link_row(kvl_store_job_t *j, const kvl_family_t *fam, long t, double base)
{
    kvl_store_value_t v[KVL_ARRAY_SIZE(link_new)];
    for (size_t i = 0; i < fam->n; i++) {
        v[i] = (kvl_store_value_t){
            .metric = fam->metrics[i], .real = true, .real_value = base + (double)i};
    }
    kvl_store_row_t row = {.site = "tvm",
                           .device = "blk-1",
                           .scope = KVL_SCOPE_LINK,
                           .instance = "dc-core",
                           .family = fam,
                           .interval_s = STEP,
                           .time_ms = (int64_t)t * 1000,
                           .values = v,
                           .n_values = fam->n};
    assert_int_equal(kvl_store_job_add(j, &row), 0);
}

static ino_t inode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_ino;
}

/* An archive made before its family gained metrics (a link file with the 13 data sources
 * of old, made here by rrdtool itself): a row with the new metrics adds their data sources
 * to the file once, keeps the old data, and stores every value of the row; the next rows
 * leave the file's layout alone. A file of a fixed schema (an interface file lacking data
 * sources) is completed the same way; a file that cannot be completed takes the rest. */
static void test_archive_gains_metrics(void **state)
{
    KVL_UNUSED(state);
    char root[] = "/tmp/kvl-test-store-XXXXXX";
    assert_non_null(mkdtemp(root));
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kvl_archive_spec_t archives[] = {{0, 3600000}};
    kvl_store_cfg_t cfg = {
        .data_dir = root, .archives = archives, .n_archives = 1, .consolidations = cfs};
    kvl_store_t *s = NULL;
    char serr[256];
    assert_int_equal(kvl_store_new(&loop, &cfg, &s, serr, sizeof(serr)), 0);

    char path[512], dir[512], cmd[4096];
    assert_int_equal(
        kvl_store_path(root, "tvm", "blk-1", KVL_SCOPE_LINK, "dc-core", path, sizeof(path)), 0);
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    int n = snprintf(cmd, sizeof(cmd), "rrdtool create '%s' --step %d --start %ld", path, STEP,
                     T0 - STEP);
    for (size_t i = 0; i < KVL_ARRAY_SIZE(link_old); i++) {
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " DS:%s:GAUGE:%d:U:U", link_old[i],
                      2 * STEP);
    }
    snprintf(cmd + n, sizeof(cmd) - (size_t)n,
             " RRA:AVERAGE:0.5:1:60 RRA:MAX:0.5:1:60 && rrdtool update '%s'"
             " %ld:1:2:3:4:5:6:7:8:9:10:11:12:13 %ld:1:2:3:4:5:6:7:8:9:10:11:12:13",
             path, T0, T0 + STEP);
    assert_int_equal(system(cmd), 0);
    assert_info(path, "ds[rtt_p10_ms].type", "(absent)");

    static const kvl_kind_t kinds[KVL_ARRAY_SIZE(link_new)] = {KVL_KIND_GAUGE};
    kvl_family_t fam = {.name = "link",
                        .n = KVL_ARRAY_SIZE(link_new),
                        .metrics = link_new,
                        .kinds = kinds,
                        .id = 2};
    kvl_store_job_t *j = kvl_store_job_new();
    add_link_row(j, &fam, T0 + 2 * STEP, 100);
    add_link_row(j, &fam, T0 + 3 * STEP, 100);
    kvl_store_result_t r = run_job(&loop, s, j);
    assert_int_equal(r.errors, 0);
    assert_int_equal(r.retry, 0);
    assert_int_equal(r.skipped, 0);
    assert_int_equal(r.created, 0);
    assert_int_equal(r.rows, 2);
    assert_int_equal(r.values, 2 * KVL_ARRAY_SIZE(link_new));
    for (size_t i = 13; i < KVL_ARRAY_SIZE(link_new); i++) {
        char key[64];
        snprintf(key, sizeof(key), "ds[%s].type", link_new[i]);
        assert_info(path, key, "GAUGE");
        snprintf(key, sizeof(key), "ds[%s].minimal_heartbeat", link_new[i]);
        assert_info(path, key, "120");
        snprintf(key, sizeof(key), "ds[%s].index", link_new[i]);
        char want[16];
        snprintf(want, sizeof(want), "%zu", i);
        assert_info(path, key, want);
    }
    assert_info(path, "ds[sent].index", "0");
    assert_info(path, "rra[0].rows", "60");
    fetched_t f;
    fetch(path, "AVERAGE", T0, T0 + 3 * STEP, &f);
    /* the old rows kept, the new data sources unknown in them */
    assert_near(value_at(&f, T0 + STEP, "rtt_median_ms"), 8, "old rtt_median_ms", T0 + STEP);
    assert_near(value_at(&f, T0 + STEP, "mos"), 13, "old mos", T0 + STEP);
    assert_true(isnan(value_at(&f, T0 + STEP, "rtt_p10_ms")));
    /* the new rows whole */
    for (size_t i = 0; i < KVL_ARRAY_SIZE(link_new); i++) {
        assert_near(value_at(&f, T0 + 3 * STEP, link_new[i]), 100.0 + (double)i, link_new[i],
                    T0 + 3 * STEP);
    }

    /* Once completed, the file is not rewritten again; rows with the old family (an agent
     * not yet upgraded) still go into it. */
    ino_t ino = inode_of(path);
    kvl_family_t old = fam;
    old.n = KVL_ARRAY_SIZE(link_old);
    j = kvl_store_job_new();
    add_link_row(j, &fam, T0 + 4 * STEP, 200);
    add_link_row(j, &old, T0 + 5 * STEP, 300);
    r = run_job(&loop, s, j);
    assert_int_equal(r.errors + r.retry + r.skipped, 0);
    assert_int_equal(r.rows, 2);
    assert_true(inode_of(path) == ino);
    fetch(path, "AVERAGE", T0 + 3 * STEP, T0 + 5 * STEP, &f);
    assert_near(value_at(&f, T0 + 4 * STEP, "rtt_p90_ms"), 216, "rtt_p90_ms", T0 + 4 * STEP);
    assert_near(value_at(&f, T0 + 5 * STEP, "rtt_median_ms"), 307, "rtt_median_ms", T0 + 5 * STEP);
    assert_true(isnan(value_at(&f, T0 + 5 * STEP, "rtt_p90_ms")));

    /* An interface file with two data sources of its schema gains the rest. */
    assert_int_equal(kvl_store_path(root, "tvm-north", "rtr 1", KVL_SCOPE_INTERFACE, "Gi1/0/1",
                                    path, sizeof(path)),
                     0);
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    snprintf(cmd, sizeof(cmd),
             "mkdir -p '%s' && rrdtool create '%s' --step %d --start %ld "
             "DS:in_octets:DERIVE:%d:0:U DS:out_octets:DERIVE:%d:0:U RRA:AVERAGE:0.5:1:60 "
             "RRA:MAX:0.5:1:60",
             dir, path, STEP, T0 - STEP, 2 * STEP, 2 * STEP);
    assert_int_equal(system(cmd), 0);
    j = kvl_store_job_new();
    for (int k = 0; k <= 2; k++) {
        add_interface_row(j, k, (T0 + (int64_t)k * STEP) * 1000);
    }
    r = run_job(&loop, s, j);
    assert_int_equal(r.errors + r.retry, 0);
    assert_int_equal(r.rows, 3);
    assert_int_equal(r.skipped, 3); /* cpu_temperature: no interface metric */
    assert_info(path, "ds[oper_status].type", "GAUGE");
    assert_info(path, "ds[in_errors].type", "DERIVE");
    assert_info(path, "ds[in_errors].min", "0.0000000000e+00");
    fetch(path, "AVERAGE", T0, T0 + 2 * STEP, &f);
    assert_near(value_at(&f, T0 + 2 * STEP, "in_octets"), IN_RATE, "in_octets", T0 + 2 * STEP);
    assert_near(value_at(&f, T0 + 2 * STEP, "in_errors"), ERR_RATE, "in_errors", T0 + 2 * STEP);

    /* A data source the file cannot gain (a name of 20 characters: rrdcreate takes 19):
     * its values are left out, the rest of each row is written, the other new metric added. */
    assert_int_equal(kvl_store_group_path(root, "dc1", "srv1", "ups", "", path, sizeof(path)), 0);
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    snprintf(cmd, sizeof(cmd),
             "mkdir -p '%s' && rrdtool create '%s' --step %d --start %ld "
             "DS:load:GAUGE:%d:U:U RRA:AVERAGE:0.5:1:60 RRA:MAX:0.5:1:60",
             dir, path, STEP, T0 - STEP, 2 * STEP);
    assert_int_equal(system(cmd), 0);
    static const char *const ups_m[] = {"load", "battery", "twenty_characters_xx"};
    static const kvl_kind_t ups_k[] = {KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE};
    kvl_family_t ups = {.name = "ups", .n = 3, .metrics = ups_m, .kinds = ups_k, .id = 5};
    j = kvl_store_job_new();
    for (int k = 0; k < 2; k++) {
        kvl_store_value_t v[] = {{.metric = "twenty_characters_xx", .value = 1},
                                 {.metric = "load", .value = 40 + (uint64_t)k},
                                 {.metric = "battery", .value = 90}};
        kvl_store_row_t row = {.site = "dc1",
                               .device = "srv1",
                               .scope = KVL_SCOPE_GROUP,
                               .instance = "",
                               .family = &ups,
                               .interval_s = STEP,
                               .time_ms = (T0 + (int64_t)k * STEP) * 1000,
                               .values = v,
                               .n_values = 3};
        assert_int_equal(kvl_store_job_add(j, &row), 0);
    }
    r = run_job(&loop, s, j);
    assert_int_equal(r.errors + r.retry, 0);
    assert_int_equal(r.rows, 2);
    assert_int_equal(r.values, 4);
    assert_int_equal(r.skipped, 2);
    assert_info(path, "ds[battery].type", "GAUGE");
    assert_info(path, "ds[twenty_characters_x].type", "(absent)"); /* not cut short */
    fetch(path, "AVERAGE", T0, T0 + STEP, &f);
    assert_near(value_at(&f, T0 + STEP, "load"), 41, "load", T0 + STEP);
    assert_near(value_at(&f, T0 + STEP, "battery"), 90, "battery", T0 + STEP);

    kvl_store_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
    rm_tree(root);
}

/* A file that is not an RRD fails for good and the job goes on; a failure that can pass
 * stops the job there, and the rows run again once it has passed. */
static void test_failures(void **state)
{
    KVL_UNUSED(state);
    char root[] = "/tmp/kvl-test-store-XXXXXX";
    assert_non_null(mkdtemp(root));
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kvl_archive_spec_t archives[] = {{0, 3600000}};
    kvl_store_cfg_t cfg = {
        .data_dir = root, .archives = archives, .n_archives = 1, .consolidations = cfs};
    kvl_store_t *s = NULL;
    char serr[256];
    assert_int_equal(kvl_store_new(&loop, &cfg, &s, serr, sizeof(serr)), 0);

    /* Not an archive: the interface's file holds text. */
    char ifpath[512], cmd[1200];
    assert_int_equal(kvl_store_path(root, "tvm-north", "rtr 1", KVL_SCOPE_INTERFACE, "Gi1/0/1",
                                    ifpath, sizeof(ifpath)),
                     0);
    snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\" && echo not-an-rrd > '%s'", ifpath,
             ifpath);
    assert_int_equal(system(cmd), 0);
    for (int round = 0; round < 2; round++) {
        kvl_store_job_t *j = kvl_store_job_new();
        add_interface_row(j, round, (T0 + (int64_t)round * STEP) * 1000);
        add_device_row(j, round);
        kvl_store_result_t r = run_job(&loop, s, j);
        assert_int_equal(r.errors, 1); /* counted each time (logged once) */
        assert_int_equal(r.retry, 0);
        assert_int_equal(r.rows, 1); /* the device row after it went through */
    }

    /* No file descriptor left: the first row fails for now, the rest is not tried. */
    int probe = dup(0);
    assert_true(probe >= 0);
    close(probe);
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    struct rlimit low = {.rlim_cur = (rlim_t)probe, .rlim_max = old.rlim_max};
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    kvl_store_job_t *j = kvl_store_job_new();
    for (int k = 2; k <= 4; k++) {
        add_device_row(j, k);
    }
    kvl_store_result_t r = run_job(&loop, s, j);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(r.retry, 3);
    assert_int_equal(r.rows, 0);
    assert_int_equal(r.errors, 0);
    assert_non_null(strstr(r.why, "rtr%201.rrd"));
    assert_non_null(strstr(r.why, "Too many open files"));

    /* It has passed: the same rows are written, in order. */
    j = kvl_store_job_new();
    for (int k = 2; k <= 4; k++) {
        add_device_row(j, k);
    }
    r = run_job(&loop, s, j);
    assert_int_equal(r.retry, 0);
    assert_int_equal(r.rows, 3);
    /* and once more: written before, so stale (what a retry of a half-done job sees) */
    j = kvl_store_job_new();
    add_device_row(j, 3);
    add_device_row(j, 5);
    r = run_job(&loop, s, j);
    assert_int_equal(r.stale, 1);
    assert_int_equal(r.rows, 1);
    assert_int_equal(r.retry + r.errors, 0);
    kvl_store_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
    rm_tree(root);
}

static void test_new_fails(void **state)
{
    KVL_UNUSED(state);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kvl_archive_spec_t archives[] = {{0, 3600000}};
    kvl_store_cfg_t cfg = {.data_dir = "/nonexistent-kvl-parent/data",
                           .archives = archives,
                           .n_archives = 1,
                           .consolidations = cfs};
    kvl_store_t *s = NULL;
    char err[256];
    assert_true(kvl_store_new(&loop, &cfg, &s, err, sizeof(err)) < 0);
    assert_null(s);
    assert_non_null(strstr(err, "cannot create the data folder"));
    kvl_store_free(NULL);
    kvl_store_job_free(NULL);
    /* A job that is never submitted is freed by its owner. */
    kvl_store_job_t *j = kvl_store_job_new();
    add_device_row(j, 0);
    kvl_store_job_free(j);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ------------------------------------------------------------ a new archive's cache ---- */

/* How many of the file's pages are in the page cache (mincore), and how many it has. */
static void cached_pages(const char *path, size_t *cached, size_t *total)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t len = (size_t)st.st_size;
    *total = (len + page - 1) / page;
    void *m = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    assert_true(m != MAP_FAILED);
    unsigned char *vec = calloc(*total, 1);
    assert_non_null(vec);
    assert_int_equal(mincore(m, len, vec), 0);
    *cached = 0;
    for (size_t i = 0; i < *total; i++) {
        *cached += vec[i] & 1;
    }
    free(vec);
    munmap(m, len);
    close(fd);
}

static void test_new_archive_not_cached(void **state)
{
    KVL_UNUSED(state);
    char root[] = "/tmp/kvl-test-store-XXXXXX";
    assert_non_null(mkdtemp(root));
    struct statfs fs;
    assert_int_equal(statfs(root, &fs), 0);
    if (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC) {
        rm_tree(root);
        skip(); /* a memory file system: its pages are the file, none can be dropped */
    }
    char data_dir[256];
    snprintf(data_dir, sizeof(data_dir), "%s/data", root);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    /* step:2d and 5m:2w, AVERAGE and MAX: 1.6 MB at a 60 s step */
    kvl_archive_spec_t archives[] = {{0, 2 * 86400000LL}, {300000, 14 * 86400000LL}};
    kvl_store_cfg_t cfg = {
        .data_dir = data_dir, .archives = archives, .n_archives = 2, .consolidations = cfs};
    kvl_store_t *s = NULL;
    char serr[256];
    assert_int_equal(kvl_store_new(&loop, &cfg, &s, serr, sizeof(serr)), 0);
    kvl_store_job_t *j = kvl_store_job_new();
    add_interface_row(j, 0, T0 * 1000);
    kvl_store_result_t r = run_job(&loop, s, j);
    assert_int_equal(r.created, 1);
    assert_int_equal(r.rows, 1);

    char path[512];
    assert_int_equal(kvl_store_path(data_dir, "tvm-north", "rtr 1", KVL_SCOPE_INTERFACE, "Gi1/0/1",
                                    path, sizeof(path)),
                     0);
    size_t cached = 0, total = 0;
    cached_pages(path, &cached, &total);
    assert_true(total > 300);
    /* the header's pages and a row of each archive due: a dozen at most */
    if (cached > total / 8) {
        fail_msg("%zu of the new archive's %zu pages are in the page cache", cached, total);
    }
    kvl_store_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
    rm_tree(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_new_archive_not_cached),
        cmocka_unit_test(test_fractional_time),
        cmocka_unit_test(test_group),
        cmocka_unit_test(test_archive_gains_metrics),
        cmocka_unit_test(test_failures),
        cmocka_unit_test(test_new_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
