/*
 * test_collector_config.c — unit tests for collector.yaml parsing
 * (collector/collector_config.h).
 *
 * Good files come back with every value and the documented defaults; bad ones fail with
 * "c.yaml:line:column: ..." pointing at the offending node, worked out from the text of
 * each case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "collector_config.h"
#include "kvl.h"
#include "log.h"

#include "cfg_text.h"

#define S_MS 1000LL
#define M_MS (60 * S_MS)
#define D_MS (86400 * S_MS)

/* The two required settings, lines 1 and 2. */
#define HEAD "listen: 0.0.0.0:5140\ndata_dir: /var/lib/kaaval\n"

KVL_CFG_TEXT_HELPERS(kvl_collector_cfg_t, kvl_collector_cfg_parse, kvl_collector_cfg_free, "c.yaml")

static void assert_archive(const kvl_archive_spec_t *a, int64_t res, int64_t ret)
{
    assert_int_equal(a->resolution_ms, res);
    assert_int_equal(a->retention_ms, ret);
}

static size_t count_cfs(char **cfs)
{
    size_t n = 0;
    while (cfs[n] != NULL) {
        n++;
    }
    return n;
}

static void test_example(void **state)
{
    KVL_UNUSED(state);
    kvl_collector_cfg_t *c = parse_ok("# collector\n"
                                      "id: noc-collector-1\n"
                                      "listen: 0.0.0.0:5140\n"
                                      "data_dir: /srv/kaaval\n"
                                      "log_level: warn\n"
                                      "max_connections: 500\n"
                                      "max_frame: 1048576\n"
                                      "archives:\n"
                                      "  - step:2d\n"
                                      "  - 5m:2w\n"
                                      "  - 30m:62d\n"
                                      "  - 1d:2y\n"
                                      "  - 10s:10s\n"
                                      "consolidations: [MAX, LAST, MIN]\n");
    assert_string_equal(c->id, "noc-collector-1");
    assert_string_equal(c->listen, "0.0.0.0:5140");
    assert_string_equal(c->listen_host, "0.0.0.0");
    assert_int_equal(c->listen_port, 5140);
    assert_string_equal(c->data_dir, "/srv/kaaval");
    assert_int_equal(c->log_level, KVL_LOG_LEVEL_WARN);
    assert_int_equal(c->max_connections, 500);
    assert_int_equal(c->max_frame, 1048576);
    assert_int_equal(c->n_archives, 5);
    assert_archive(&c->archives[0], 0, 2 * D_MS);
    assert_archive(&c->archives[1], 5 * M_MS, 14 * D_MS);
    assert_archive(&c->archives[2], 30 * M_MS, 62 * D_MS);
    assert_archive(&c->archives[3], D_MS, 2 * 365 * D_MS);
    assert_archive(&c->archives[4], 10 * S_MS, 10 * S_MS);
    assert_int_equal(count_cfs(c->consolidations), 3);
    assert_string_equal(c->consolidations[0], "MAX");
    assert_string_equal(c->consolidations[1], "LAST");
    assert_string_equal(c->consolidations[2], "MIN");
    kvl_collector_cfg_free(c);
    kvl_collector_cfg_free(NULL);
}

static void test_defaults(void **state)
{
    KVL_UNUSED(state);
    kvl_collector_cfg_t *c = parse_ok(HEAD);
    char host[256];
    assert_int_equal(gethostname(host, sizeof(host)), 0);
    host[sizeof(host) - 1] = '\0';
    assert_string_equal(c->id, host);
    assert_int_equal(c->log_level, KVL_LOG_LEVEL_INFO);
    assert_int_equal(c->max_connections, 2000);
    assert_int_equal(c->max_frame, 4194304);
    assert_int_equal(c->n_archives, 4);
    assert_archive(&c->archives[0], 0, 2 * D_MS);
    assert_archive(&c->archives[1], 5 * M_MS, 14 * D_MS);
    assert_archive(&c->archives[2], 30 * M_MS, 62 * D_MS);
    assert_archive(&c->archives[3], D_MS, 2 * 365 * D_MS);
    assert_int_equal(count_cfs(c->consolidations), 2);
    assert_string_equal(c->consolidations[0], "AVERAGE");
    assert_string_equal(c->consolidations[1], "MAX");
    assert_int_equal(c->max_seq_ahead_ms, D_MS);
    assert_null(c->rules);
    assert_int_equal(c->late_after_ms, 2 * M_MS);
    assert_string_equal(c->web_url, "http://127.0.0.1:8080");
    kvl_collector_cfg_free(c);

    c = parse_ok(HEAD "rules: /etc/kaaval/rules.d\nlate_after: 5m\nweb_url: https://noc:8443/k\n");
    assert_string_equal(c->rules, "/etc/kaaval/rules.d");
    assert_int_equal(c->late_after_ms, 5 * M_MS);
    assert_string_equal(c->web_url, "https://noc:8443/k");
    kvl_collector_cfg_free(c);

    c = parse_ok(HEAD "max_seq_ahead: 2h\n");
    assert_int_equal(c->max_seq_ahead_ms, 2 * 3600 * S_MS);
    kvl_collector_cfg_free(c);

    /* A given list replaces the default one entirely. */
    c = parse_ok(HEAD "archives: [step:1h]\nconsolidations: [LAST]\n");
    assert_int_equal(c->n_archives, 1);
    assert_archive(&c->archives[0], 0, 3600 * S_MS);
    assert_int_equal(count_cfs(c->consolidations), 1);
    assert_string_equal(c->consolidations[0], "LAST");
    kvl_collector_cfg_free(c);

    c = parse_ok("data_dir: d\nlisten: '[::]:5140'\n");
    assert_string_equal(c->listen_host, "::");
    assert_int_equal(c->listen_port, 5140);
    kvl_collector_cfg_free(c);
}

static void test_bad_archives(void **state)
{
    KVL_UNUSED(state);
    static const char *const bad[] = {
        "5m",                /* no retention */
        "0s:1d",             /* resolution below a second */
        "500ms:1d", "5m:1m", /* retention shorter than the resolution */
        "step:0",            /* no retention */
        "step:",    ":2d",   "abc:2d", "5m:2x", "step:2d:3d", "5m:-1d", "STEP:2d",
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        char text[256];
        snprintf(text, sizeof(text), HEAD "archives:\n  - step:2d\n  - '%s'\n  - 1d:2y\n", bad[i]);
        char what[256];
        snprintf(what, sizeof(what),
                 "expected resolution:retention such as step:2d or 5m:2w "
                 "(resolution 'step' or at least 1s, retention at least the "
                 "resolution), got '%s'",
                 bad[i]);
        expect_error(text, "c.yaml:5:5: ", what);
    }
    /* Unquoted, in flow style. */
    expect_error(HEAD "archives: [step:2d, 5m]\n", "c.yaml:3:21: ", "got '5m'");
    expect_error(HEAD "archives: [step:2d, 0s:1d]\n", "c.yaml:3:21: ", "got '0s:1d'");
    expect_error(HEAD "archives:\n  - [5m, 2w]\n", "c.yaml:4:5: ", "got a non-text value");
    expect_error(HEAD "archives: []\n", "c.yaml:3:11: ", "or a non-empty list");
    /* a scalar is a profile's name */
    expect_error(HEAD "archives: step:2d\n",
                 "c.yaml:3:11: ", "expected a retention profile (standard, compact or planning)");
    expect_error(HEAD "archives: Standard\n", "c.yaml:3:11: ", "expected a retention profile");
}

/* `archives: NAME`: the named profiles, the first of them the default. */
static void test_archive_profiles(void **state)
{
    KVL_UNUSED(state);
    kvl_collector_cfg_t *c = parse_ok(HEAD "archives: compact\n");
    assert_int_equal(c->n_archives, 4);
    assert_archive(&c->archives[0], 0, D_MS);
    assert_archive(&c->archives[1], 5 * M_MS, 7 * D_MS);
    assert_archive(&c->archives[2], 60 * M_MS, 62 * D_MS);
    assert_archive(&c->archives[3], D_MS, 365 * D_MS);
    kvl_collector_cfg_free(c);
    c = parse_ok(HEAD "archives: planning\n");
    assert_int_equal(c->n_archives, 4);
    assert_archive(&c->archives[0], 0, 2 * D_MS);
    assert_archive(&c->archives[1], 5 * M_MS, 35 * D_MS);
    assert_archive(&c->archives[2], 60 * M_MS, 365 * D_MS);
    assert_archive(&c->archives[3], D_MS, 5 * 365 * D_MS);
    kvl_collector_cfg_free(c);
    kvl_collector_cfg_t *d = parse_ok(HEAD);
    c = parse_ok(HEAD "archives: standard\n");
    assert_int_equal(c->n_archives, d->n_archives);
    for (size_t i = 0; i < c->n_archives; i++) {
        assert_int_equal(c->archives[i].resolution_ms, d->archives[i].resolution_ms);
        assert_int_equal(c->archives[i].retention_ms, d->archives[i].retention_ms);
    }
    kvl_collector_cfg_free(c);
    kvl_collector_cfg_free(d);
}

static void test_bad_consolidations(void **state)
{
    KVL_UNUSED(state);
    expect_error(HEAD "consolidations: [AVERAGE, MEDIAN]\n",
                 "c.yaml:3:27: ", "expected AVERAGE, MAX, MIN or LAST");
    expect_error(HEAD "consolidations:\n  - MAX\n  - average\n",
                 "c.yaml:5:5: ", "expected AVERAGE, MAX, MIN or LAST");
    expect_error(HEAD "consolidations: [MAX, [MIN]]\n",
                 "c.yaml:3:23: ", "expected AVERAGE, MAX, MIN or LAST");
    expect_error(HEAD "consolidations: []\n",
                 "c.yaml:3:17: ", "expected a non-empty list such as [AVERAGE, MAX]");
    expect_error(HEAD "consolidations: MAX\n", "c.yaml:3:17: ", "expected a non-empty list");
}

static void test_bad_values(void **state)
{
    KVL_UNUSED(state);
    expect_error("listen: 0.0.0.0\ndata_dir: d\n",
                 "c.yaml:1:9: ", "expected a numeric address to listen on as host:port");
    /* a name is not looked up: start-up would refuse it, so the file is refused */
    expect_error("listen: localhost:5140\ndata_dir: d\n",
                 "c.yaml:1:9: ", "expected a numeric address to listen on as host:port");
    expect_error("listen: 0.0.0.0:99999\ndata_dir: d\n", "c.yaml:1:9: ", "host:port");
    expect_error("# collector\nlisten: 0.0.0.0:1\n",
                 "c.yaml:2:1: ", "missing required setting 'data_dir'");
    expect_error("data_dir: d\n", "c.yaml:1:1: ", "missing required setting 'listen'");
    expect_error(HEAD "max_frame: 100\n", "c.yaml:3:12: ", "from 1024 to 67108864, got '100'");
    expect_error(HEAD "max_connections: 0\n", "c.yaml:3:18: ", "from 1 to 100000");
    expect_error(HEAD "web_url: 127.0.0.1:8080\n",
                 "c.yaml:3:10: ", "expected the collector's web address");
    expect_error(HEAD "web_url: 'http://'\n", "c.yaml:3:10: ", "http(s)://host");
    expect_error(HEAD "web_url: 'http://a b'\n", "c.yaml:3:10: ", "http(s)://host");
    expect_error(HEAD "late_after: 0s\n", "c.yaml:3:13: ", "out of range");
    expect_error(HEAD "log_level: verbose\n", "c.yaml:3:12: ", "expected a log level");
    expect_error(HEAD "max_seq_ahead: 10s\n", "c.yaml:3:16: ", "10s");
    expect_error(HEAD "max_seq_ahead: 31d\n", "c.yaml:3:16: ", "31d");
    expect_error(HEAD "data_dir: again\n", "c.yaml:3:1: ", "setting 'data_dir' is given twice");
    expect_error(HEAD "datadir: x\n", "c.yaml:3:1: ", "unknown setting 'datadir'");
    expect_error("listen: 0.0.0.0:1\ndata_dir: [a]\n", "c.yaml:2:11: ", "expected a text value");
}

/* rrdcached's address: the three forms librrd's client takes, each kept as written; none
 * means direct writes; the checkpoint's default and bounds. */
static void test_rrdcached(void **state)
{
    KVL_UNUSED(state);
    kvl_collector_cfg_t *c = parse_ok(HEAD);
    assert_null(c->rrdcached);
    assert_int_equal(c->rrdcached_checkpoint_ms, 5 * M_MS);
    kvl_collector_cfg_free(c);
    const char *good[] = {
        "unix:/run/rrdcached.sock", "/tmp/r.sock", "storage1", "storage1:42217", "10.0.0.5:1",
        "'[2001:db8::5]:42217'",    "'[::1]'"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), HEAD "rrdcached: %s\nrrdcached_checkpoint: 30s\n", good[i]);
        c = parse_ok(text);
        char want[128];
        snprintf(want, sizeof(want), "%.*s", (int)strlen(good[i]) - (good[i][0] == '\'' ? 2 : 0),
                 good[i] + (good[i][0] == '\''));
        assert_string_equal(c->rrdcached, want);
        assert_int_equal(c->rrdcached_checkpoint_ms, 30 * S_MS);
        kvl_collector_cfg_free(c);
    }
    expect_error(HEAD "rrdcached: unix:run/r.sock\n", "c.yaml:3:12: ", "absolute path");
    expect_error(HEAD "rrdcached: 'unix:/'\n", "c.yaml:3:12: ", "absolute path");
    expect_error(HEAD "rrdcached: storage1:0\n", "c.yaml:3:12: ", "from 1 to 65535");
    expect_error(HEAD "rrdcached: storage1:x\n", "c.yaml:3:12: ", "from 1 to 65535");
    expect_error(HEAD "rrdcached: 'storage1:'\n", "c.yaml:3:12: ", "from 1 to 65535");
    expect_error(HEAD "rrdcached: '2001:db8::5'\n", "c.yaml:3:12: ", "IPv6 address in brackets");
    expect_error(HEAD "rrdcached: '[::1'\n", "c.yaml:3:12: ", "[IPv6 address]:port");
    expect_error(HEAD "rrdcached: ''\n", "c.yaml:3:12: ", "expected rrdcached's address");
    expect_error(HEAD "rrdcached: 'a b'\n", "c.yaml:3:12: ", "without spaces");
    expect_error(HEAD "rrdcached: [a]\n", "c.yaml:3:12: ", "expected rrdcached's address");
    expect_error(HEAD "rrdcached_checkpoint: 500ms\n", "c.yaml:3:23: ", "500ms");
    expect_error(HEAD "rrdcached_checkpoint: 2h\n", "c.yaml:3:23: ", "2h");
}

/* rrdcached_files: local by default; remote needs rrdcached at host:port (librrd's client
 * resolves a path sent over a unix socket on this host); the error names the key's value. */
static void test_rrdcached_files(void **state)
{
    KVL_UNUSED(state);
    kvl_collector_cfg_t *c = parse_ok(HEAD "rrdcached: storage1:42217\n");
    assert_false(c->rrdcached_remote);
    kvl_collector_cfg_free(c);
    c = parse_ok(HEAD "rrdcached: storage1:42217\nrrdcached_files: remote\n");
    assert_true(c->rrdcached_remote);
    kvl_collector_cfg_free(c);
    c = parse_ok(HEAD "rrdcached_files: local\n");
    assert_false(c->rrdcached_remote);
    kvl_collector_cfg_free(c);
    expect_error(HEAD "rrdcached_files: remote\n", "c.yaml:3:18: ", "needs `rrdcached:`");
    expect_error(HEAD "rrdcached: unix:/run/r.sock\nrrdcached_files: remote\n",
                 "c.yaml:4:18: ", "not a unix socket");
    expect_error(HEAD "rrdcached: /run/r.sock\nrrdcached_files: remote\n",
                 "c.yaml:4:18: ", "not a unix socket");
    expect_error(HEAD "rrdcached_files: nfs\n", "c.yaml:3:18: ", "expected local or remote");
}

static void test_syntax_and_empty(void **state)
{
    KVL_UNUSED(state);
    expect_error(HEAD "archives:\n  - step:2d\n - 5m:2w\n",
                 "c.yaml:5:2: ", "did not find expected key");
    expect_error(HEAD "consolidations: [MAX\n", "c.yaml:4:1: ", "did not find expected ',' or ']'");
    expect_error("", "c.yaml:1:1: ", "the file is empty");
    expect_error("\n# comments only\n", "c.yaml:1:1: ", "the file is empty");
}

static void test_load_file(void **state)
{
    KVL_UNUSED(state);
    char path[] = "/tmp/kvl-test-collector-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = HEAD "archives:\n  - step:1d\n  - 5m\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    char err[512] = "";
    assert_null(kvl_collector_cfg_load(path, err, sizeof(err)));
    char want[600];
    snprintf(want, sizeof(want), "%s:5:5: ", path);
    assert_int_equal(strncmp(err, want, strlen(want)), 0);
    unlink(path);
    assert_null(kvl_collector_cfg_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bad_archives),
        cmocka_unit_test(test_archive_profiles),
        cmocka_unit_test(test_bad_consolidations),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_rrdcached),
        cmocka_unit_test(test_rrdcached_files),
        cmocka_unit_test(test_syntax_and_empty),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
