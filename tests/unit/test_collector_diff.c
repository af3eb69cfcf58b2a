/*
 * test_collector_diff.c — unit tests for the reload's comparison of two collector
 * configurations (collector/collector_diff.h).
 *
 * Each case parses two texts that differ in one place and checks which restart-only keys
 * are named (none for the live sections) and the counts of rules, receivers and sites
 * added, removed and changed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collector_diff.h"
#include "kvl.h"

#define HEAD "listen: 127.0.0.1:5140\ndata_dir: /tmp\ninsecure: true\n"

static kvl_collector_cfg_t *parse(const char *text)
{
    char err[600];
    kvl_collector_cfg_t *c = kvl_collector_cfg_parse("c.yaml", text, err, sizeof(err));
    if (c == NULL) {
        fail_msg("parse: %s", err);
    }
    return c;
}

/* The restart-only keys between HEAD+a and HEAD+b, as the function writes them. */
static size_t keys(const char *a, const char *b, char *buf, size_t len)
{
    char ta[2048], tb[2048];
    snprintf(ta, sizeof(ta), "%s%s", HEAD, a);
    snprintf(tb, sizeof(tb), "%s%s", HEAD, b);
    kvl_collector_cfg_t *ca = parse(ta), *cb = parse(tb);
    size_t n = kvl_collector_cfg_restart_keys(ca, cb, buf, len);
    kvl_collector_cfg_free(ca);
    kvl_collector_cfg_free(cb);
    return n;
}

static void expect_keys(const char *a, const char *b, const char *want, size_t n_want)
{
    char buf[512];
    size_t n = keys(a, b, buf, sizeof(buf));
    if (n != n_want || strcmp(buf, want) != 0) {
        fail_msg("between '%s' and '%s': expected %zu '%s', got %zu '%s'", a, b, n_want, want, n,
                 buf);
    }
}

static void test_restart_keys(void **state)
{
    KVL_UNUSED(state);
    expect_keys("", "", "", 0);
    expect_keys("max_frame: 65536\n", "max_frame: 131072\n", "max_frame", 1);
    expect_keys("", "journal_sync: false\nlost_after: 5\n", "journal_sync, lost_after", 2);
    expect_keys("archives: [step:1h]\n", "archives: [step:2h]\n", "archives", 1);
    expect_keys("consolidations: [AVERAGE]\n", "consolidations: [AVERAGE, MAX]\n", "consolidations",
                1);
    expect_keys("http: {listen: 127.0.0.1:8080, tls: false}\n",
                "http: {listen: 127.0.0.1:8081, tls: false}\n", "http.listen", 1);
    expect_keys("", "http: {listen: 127.0.0.1:8080, tls: false}\n", "http", 1);
    expect_keys("alerts: {history_max: 100}\n", "alerts: {history_max: 200}\n",
                "alerts.history_max", 1);
    expect_keys("", "alerts: {root_cause: {hold: 1m}}\n", "alerts.root_cause", 1);
    /* a site tree appearing starts root-cause alerts (on by default) */
    expect_keys("", "sites:\n  - {name: noc, kind: noc}\n", "sites (none to some, or back)", 1);
    expect_keys("alerts: {root_cause: {enabled: false}}\n",
                "alerts: {root_cause: {enabled: false}}\nsites:\n  - {name: noc, kind: noc}\n", "",
                0);
}

static void test_live_keys(void **state)
{
    KVL_UNUSED(state);
    expect_keys("log_level: info\nlate_after: 1m\nrules: /a\nweb_url: http://a.example\n",
                "log_level: debug\nlate_after: 5m\nrules: /b\nweb_url: http://b.example\n", "", 0);
    expect_keys("receivers:\n  - {name: h, type: webhook, url: 'http://127.0.0.1:1/'}\n",
                "receivers:\n  - {name: h, type: webhook, url: 'http://127.0.0.1:2/'}\n"
                "alerts: {receiver: h, group_wait: 3s}\n",
                "", 0);
    expect_keys("sites:\n  - {name: noc, kind: noc}\n",
                "sites:\n  - {name: noc, kind: noc}\n  - {name: d, parent: noc, kind: dhq}\n", "",
                0);
}

static void test_key_list_cut(void **state)
{
    KVL_UNUSED(state);
    char buf[8];
    size_t n = keys("", "max_frame: 65536\nlost_after: 5\n", buf, sizeof(buf));
    assert_int_equal(n, 2);
    assert_int_equal(strlen(buf), sizeof(buf) - 1); /* cut, NUL-terminated */
}

static void test_receivers_diff(void **state)
{
    KVL_UNUSED(state);
    kvl_collector_cfg_t *a = parse(HEAD "receivers:\n"
                                        "  - {name: a, type: webhook, url: 'http://127.0.0.1:1/'}\n"
                                        "  - {name: b, type: webhook, url: 'http://127.0.0.1:2/'}\n"
                                        "  - {name: c, type: syslog}\n");
    kvl_collector_cfg_t *b = parse(HEAD "receivers:\n"
                                        "  - {name: a, type: webhook, url: 'http://127.0.0.1:1/'}\n"
                                        "  - {name: b, type: webhook, url: 'http://127.0.0.1:3/'}\n"
                                        "  - {name: d, type: syslog}\n"
                                        "  - {name: e, type: syslog}\n");
    kvl_names_diff_t d;
    kvl_receivers_diff(a->receivers, b->receivers, &d);
    assert_int_equal(d.added, 2);
    assert_int_equal(d.removed, 1);
    assert_int_equal(d.changed, 1);
    assert_int_equal(d.kept, 1);
    char s[128];
    kvl_names_diff_format(&d, s, sizeof(s));
    assert_string_equal(s, "2 added, 1 removed, 1 changed");
    kvl_receivers_diff(a->receivers, a->receivers, &d);
    kvl_names_diff_format(&d, s, sizeof(s));
    assert_string_equal(s, "unchanged");
    kvl_receivers_diff(NULL, a->receivers, &d);
    assert_int_equal(d.added, 3);
    kvl_receivers_diff(a->receivers, NULL, &d);
    assert_int_equal(d.removed, 3);
    kvl_collector_cfg_free(a);
    kvl_collector_cfg_free(b);
}

static void test_sites_diff(void **state)
{
    KVL_UNUSED(state);
    kvl_collector_cfg_t *a = parse(HEAD "sites:\n"
                                        "  - {name: noc, kind: noc}\n"
                                        "  - {name: d1, parent: noc, kind: dhq}\n"
                                        "  - {name: d2, parent: noc, kind: dhq}\n");
    kvl_collector_cfg_t *b = parse(HEAD "sites:\n"
                                        "  - {name: noc, kind: noc}\n"
                                        "  - {name: d1, parent: noc, kind: dhq, label: One}\n"
                                        "  - {name: d3, parent: noc, kind: dhq}\n");
    kvl_names_diff_t d;
    kvl_sites_diff(a->sites, b->sites, &d);
    assert_int_equal(d.added, 1);
    assert_int_equal(d.removed, 1);
    assert_int_equal(d.changed, 1);
    assert_int_equal(d.kept, 1);
    kvl_collector_cfg_free(a);
    kvl_collector_cfg_free(b);
}

static void test_rules_diff(void **state)
{
    KVL_UNUSED(state);
    char err[600];
    kvl_rules_t *a = NULL, *b = NULL;
    assert_int_equal(kvl_rules_parse("a.yaml",
                                     "rules:\n"
                                     "  - {name: x, severity: info, state: device_unreachable}\n",
                                     &a, err, sizeof(err)),
                     0);
    assert_int_equal(kvl_rules_parse("b.yaml",
                                     "rules:\n"
                                     "  - {name: y, severity: info, state: device_unreachable}\n"
                                     "  - {name: z, severity: info, state: device_unreachable}\n",
                                     &b, err, sizeof(err)),
                     0);
    kvl_names_diff_t d;
    kvl_rules_diff(a, b, &d);
    assert_int_equal(d.added, 2);
    assert_int_equal(d.removed, 1);
    assert_int_equal(d.changed, 0);
    assert_int_equal(d.kept, b->n - 2); /* the built-in rules */
    assert_true(d.kept > 0);
    kvl_rules_free(b);
    /* the same rule moved down a line: kept; its severity or its condition changed: changed */
    const char *texts[] = {
        "\nrules:\n  - {name: x, severity: info, state: device_unreachable}\n",
        "rules:\n  - {name: x, severity: major, state: device_unreachable}\n",
        "rules:\n  - {name: x, severity: info, state: agent_silent}\n",
        "rules:\n  - {name: x, severity: info, state: device_unreachable, labels: {team: n}}\n",
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(texts); i++) {
        assert_int_equal(kvl_rules_parse("b.yaml", texts[i], &b, err, sizeof(err)), 0);
        kvl_rules_diff(a, b, &d);
        assert_int_equal(d.added + d.removed, 0);
        assert_int_equal(d.changed, i == 0 ? 0 : 1);
        kvl_rules_free(b);
    }
    kvl_rules_free(a);
}

static void test_routing_same(void **state)
{
    KVL_UNUSED(state);
    const char *rcv = "receivers:\n  - {name: h, type: syslog}\n  - {name: k, type: syslog}\n";
    char t1[512], t2[512], t3[512];
    snprintf(t1, sizeof(t1), HEAD "%salerts: {routes: [{receiver: h}]}\n", rcv);
    snprintf(t2, sizeof(t2), HEAD "%salerts: {routes: [{receiver: k}]}\n", rcv);
    snprintf(t3, sizeof(t3), HEAD "%salerts: {history_max: 500}\n", rcv);
    kvl_collector_cfg_t *a = parse(t1), *b = parse(t2), *c = parse(t3);
    assert_true(kvl_alerts_routing_same(a->alerts, a->alerts));
    assert_false(kvl_alerts_routing_same(a->alerts, b->alerts));
    assert_false(kvl_alerts_routing_same(NULL, a->alerts));
    assert_true(kvl_alerts_routing_same(NULL, c->alerts)); /* no routing either way */
    assert_true(kvl_alerts_routing_same(NULL, NULL));
    kvl_collector_cfg_free(a);
    kvl_collector_cfg_free(b);
    kvl_collector_cfg_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restart_keys), cmocka_unit_test(test_live_keys),
        cmocka_unit_test(test_key_list_cut), cmocka_unit_test(test_receivers_diff),
        cmocka_unit_test(test_sites_diff),   cmocka_unit_test(test_rules_diff),
        cmocka_unit_test(test_routing_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
