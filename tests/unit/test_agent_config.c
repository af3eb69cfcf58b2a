/*
 * test_agent_config.c — unit tests for agent.yaml parsing (agent/agent_config.h).
 *
 * Good files must come back with every value, including the defaults the file leaves
 * out; bad ones must fail with an error that names "a.yaml:line:column" of the offending
 * node. The line and column expected in each case are worked out from the text of the
 * case (lines counted from 1, columns from 1 at the first character).
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

#include "agent_config.h"
#include "kvl.h"
#include "log.h"

#include "cfg_text.h"

/* The three required settings, lines 1 to 3. */
#define HEAD "id: a1\nsite: tvm-north\ncollector: 127.0.0.1:5140\n"

KVL_CFG_TEXT_HELPERS(kvl_agent_cfg_t, kvl_agent_cfg_parse, kvl_agent_cfg_free, "a.yaml")

static void assert_device_defaults(const kvl_device_cfg_t *d)
{
    assert_int_equal(d->port, 161);
    assert_int_equal(d->version, KVL_SNMP_V2C);
    assert_string_equal(d->community, "public");
    assert_int_equal(d->interval_ms, 60000);
    assert_int_equal(d->timeout_ms, 2000);
    assert_int_equal(d->retries, 1);
    assert_int_equal(d->max_repetitions, 25);
    assert_int_equal(d->max_varbinds, 120);
}

static const char example[] = "# kaaval-agent example configuration.\n"
                              "id: blk-tvm-north-01          # this agent's identity\n"
                              "site: tvm-north\n"
                              "collector: 127.0.0.1:5140\n"
                              "log_level: debug\n"
                              "flush_interval: 250ms\n"
                              "max_queue: 5000\n"
                              "reconnect_max: 2m\n"
                              "\n"
                              "defaults:\n"
                              "  version: 2c\n"
                              "  community: campus-ro\n"
                              "  interval: 30s\n"
                              "  timeout: 3s\n"
                              "  retries: 2\n"
                              "  max_repetitions: 50\n"
                              "\n"
                              "devices:\n"
                              "  - name: bhq-tvm-north-rtr1\n"
                              "    address: 10.20.1.1\n"
                              "  - name: bhq-tvm-north-sw1\n"
                              "    address: 10.20.1.2\n"
                              "    community: other\n"
                              "    port: 1161\n"
                              "  - name: lsg-office-cpe7\n"
                              "    address: 10.20.7.1\n"
                              "    version: 1\n"
                              "    timeout: 5s\n"
                              "    retries: 0\n"
                              "    interval: 120s\n"
                              "    max_repetitions: 200\n"
                              "insecure: true\n";

static void test_example(void **state)
{
    KVL_UNUSED(state);
    kvl_agent_cfg_t *c = parse_ok(example);
    assert_string_equal(c->id, "blk-tvm-north-01");
    assert_string_equal(c->site, "tvm-north");
    assert_string_equal(c->ship.collector, "127.0.0.1:5140");
    assert_string_equal(c->ship.collector_host, "127.0.0.1");
    assert_int_equal(c->ship.collector_port, 5140);
    assert_int_equal(c->log_level, KVL_LOG_LEVEL_DEBUG);
    assert_int_equal(c->ship.flush_interval_ms, 250);
    assert_int_equal(c->ship.max_queue, 5000);
    assert_int_equal(c->ship.reconnect_max_ms, 120000);
    assert_int_equal(c->snmp.n_devices, 3);

    const kvl_device_cfg_t *d = &c->snmp.devices[0];
    assert_string_equal(d->name, "bhq-tvm-north-rtr1");
    assert_string_equal(d->address, "10.20.1.1");
    assert_int_equal(d->port, 161);
    assert_int_equal(d->version, KVL_SNMP_V2C);
    assert_string_equal(d->community, "campus-ro");
    assert_int_equal(d->interval_ms, 30000);
    assert_int_equal(d->timeout_ms, 3000);
    assert_int_equal(d->retries, 2);
    assert_int_equal(d->max_repetitions, 50);

    d = &c->snmp.devices[1];
    assert_string_equal(d->name, "bhq-tvm-north-sw1");
    assert_string_equal(d->community, "other");
    assert_int_equal(d->port, 1161);
    assert_int_equal(d->interval_ms, 30000);

    d = &c->snmp.devices[2];
    assert_string_equal(d->name, "lsg-office-cpe7");
    assert_string_equal(d->address, "10.20.7.1");
    assert_int_equal(d->version, KVL_SNMP_V1);
    assert_string_equal(d->community, "campus-ro");
    assert_int_equal(d->timeout_ms, 5000);
    assert_int_equal(d->retries, 0);
    assert_int_equal(d->interval_ms, 120000);
    assert_int_equal(d->max_repetitions, 200);
    kvl_agent_cfg_free(c);
}

static void test_defaults(void **state)
{
    KVL_UNUSED(state);
    /* Only the required settings. */
    kvl_agent_cfg_t *c = parse_ok(HEAD);
    assert_string_equal(c->id, "a1");
    assert_string_equal(c->site, "tvm-north");
    assert_int_equal(c->log_level, KVL_LOG_LEVEL_INFO);
    assert_int_equal(c->ship.flush_interval_ms, 1000);
    assert_int_equal(c->ship.max_queue, 100000);
    assert_int_equal(c->ship.reconnect_max_ms, 30000);
    assert_int_equal(c->snmp.n_devices, 0);
    kvl_agent_cfg_free(c);

    /* A device with only name and address gets every default. */
    c = parse_ok(HEAD "devices:\n  - {name: r1, address: 10.0.0.1}\n");
    assert_int_equal(c->snmp.n_devices, 1);
    assert_string_equal(c->snmp.devices[0].name, "r1");
    assert_device_defaults(&c->snmp.devices[0]);
    kvl_agent_cfg_free(c);

    /* `defaults` applies whatever its place in the file, and only where a device is silent. */
    c = parse_ok(HEAD "devices:\n"
                      "  - name: r1\n"
                      "    address: 10.0.0.1\n"
                      "  - name: r2\n"
                      "    address: 10.0.0.2\n"
                      "    retries: 3\n"
                      "defaults:\n"
                      "  retries: 0\n"
                      "  port: 10161\n");
    assert_int_equal(c->snmp.n_devices, 2);
    assert_int_equal(c->snmp.devices[0].retries, 0);
    assert_int_equal(c->snmp.devices[0].port, 10161);
    assert_string_equal(c->snmp.devices[0].community, "public");
    assert_int_equal(c->snmp.devices[1].retries, 3);
    assert_int_equal(c->snmp.devices[1].port, 10161);
    kvl_agent_cfg_free(c);

    /* The timing rule at its edge: 1s x 2 < 2001ms. */
    c = parse_ok(HEAD "devices:\n  - {name: r1, address: a, interval: 2001ms, timeout: 1s}\n");
    assert_int_equal(c->snmp.devices[0].interval_ms, 2001);
    kvl_agent_cfg_free(c);

    kvl_agent_cfg_free(NULL);
}

static void test_bad_version(void **state)
{
    KVL_UNUSED(state);
    expect_error(HEAD "devices:\n"        /* 4 */
                      "  - name: r1\n"    /* 5 */
                      "    address: a\n"  /* 6 */
                      "    version: 3\n", /* 7 */
                 "a.yaml:7:14: ", "expected one of 1, 2c, got '3'");
    expect_error(HEAD "devices:\n  - name: r1\n    address: a\n    version: 2\n",
                 "a.yaml:7:14: ", "got '2'");
    expect_error(HEAD "defaults:\n  version: v3\n", "a.yaml:5:12: ", "got 'v3'");
    expect_error(HEAD "defaults:\n  version: [2c]\n", "a.yaml:5:12: ", "got a list");
}

static void test_duplicate_device(void **state)
{
    KVL_UNUSED(state);
    expect_error(HEAD "devices:\n"
                      "  - name: r1\n" /* 5 */
                      "    address: a\n"
                      "  - name: r2\n" /* 7 */
                      "    address: b\n"
                      "  - address: c\n" /* 9 */
                      "    name: r1\n",  /* 10 */
                 "a.yaml:10:11: ", "device name 'r1' is used twice");
    expect_error(HEAD "devices: [{name: x, address: a}, {address: b, name: x}]\n",
                 "a.yaml:4:53: ", "device name 'x' is used twice");
    /* A key given twice inside one device. */
    expect_error(HEAD "devices:\n  - name: r1\n    address: a\n    name: r2\n",
                 "a.yaml:7:5: ", "setting 'name' is given twice");
}

/* --poll-once and --probe-once ship nothing: a file without collector and TLS is fine for
 * them (and only for them); one that has a collector is checked all the same. */
static void test_standalone(void **state)
{
    KVL_UNUSED(state);
    const char *lone = "id: a\nsite: s\ndevices:\n  - {name: r1, address: 10.0.0.1}\n";
    char err[512];
    kvl_agent_cfg_t *c = kvl_agent_cfg_parse_standalone("a.yaml", lone, err, sizeof(err));
    if (c == NULL) {
        fail_msg("standalone: %s", err);
    }
    assert_int_equal(c->ship.n_collectors, 0);
    assert_int_equal(c->snmp.n_devices, 1);
    kvl_agent_cfg_free(c);
    assert_null(kvl_agent_cfg_parse("a.yaml", lone, err, sizeof(err)));
    assert_non_null(strstr(err, "missing required setting 'collector'"));
    /* a collector without TLS or insecure: still an error */
    assert_null(kvl_agent_cfg_parse_standalone(
        "a.yaml", "id: a\nsite: s\ncollector: 10.0.0.9:5140\n", err, sizeof(err)));
    assert_non_null(strstr(err, "insecure: true"));
}

/* What a reload compares: top-level keys by content (not layout), devices by every setting
 * in effect (a credential set's content, the defaults they inherit). */
static void test_reload_compare(void **state)
{
    KVL_UNUSED(state);
    const char *v1 = "id: a\nsite: s\ncollector: 10.0.0.9:5140\ninsecure: true\n"
                     "credentials:\n  - {name: ro, version: 2c, community: pub}\n"
                     "defaults: {timeout: 1s}\n"
                     "devices:\n  - {name: r1, address: 10.0.0.1, credentials: ro}\n"
                     "  - {name: r2, address: 10.0.0.2, credentials: ro}\n";
    /* the same content laid out otherwise, a comment more */
    const char *v2 = "id: a\nsite: s\ncollector: 10.0.0.9:5140\ninsecure: true # plain\n"
                     "credentials: [{name: ro, version: 2c, community: pub}]\n"
                     "defaults:\n  timeout: 1s\n"
                     "devices:\n  - name: r1\n    address: 10.0.0.1\n    credentials: ro\n"
                     "  - {name: r2, address: 10.0.0.2, credentials: ro}\n";
    /* r2's timeout changed; the community of the set both use changed */
    const char *v3 = "id: a\nsite: s\ncollector: 10.0.0.9:5140\ninsecure: true\n"
                     "credentials:\n  - {name: ro, version: 2c, community: pub}\n"
                     "defaults: {timeout: 1s}\n"
                     "devices:\n  - {name: r1, address: 10.0.0.1, credentials: ro}\n"
                     "  - {name: r2, address: 10.0.0.2, credentials: ro, timeout: 2s}\n";
    const char *v4 = "id: a\nsite: s\ncollector: 10.0.0.9:5140\ninsecure: true\n"
                     "credentials:\n  - {name: ro, version: 2c, community: other}\n"
                     "defaults: {timeout: 1s}\n"
                     "devices:\n  - {name: r1, address: 10.0.0.1, credentials: ro}\n"
                     "  - {name: r2, address: 10.0.0.2, credentials: ro}\n";
    char err[512];
    kvl_agent_cfg_t *a = kvl_agent_cfg_parse("a.yaml", v1, err, sizeof(err));
    kvl_agent_cfg_t *b = kvl_agent_cfg_parse("a.yaml", v2, err, sizeof(err));
    kvl_agent_cfg_t *c = kvl_agent_cfg_parse("a.yaml", v3, err, sizeof(err));
    kvl_agent_cfg_t *d = kvl_agent_cfg_parse("a.yaml", v4, err, sizeof(err));
    if (a == NULL || b == NULL || c == NULL || d == NULL) {
        fail_msg("parse: %s", err);
    }
    for (size_t i = 0; kvl_agent_cfg_key(i) != NULL; i++) {
        assert_false(kvl_agent_cfg_key_changed(a, b, kvl_agent_cfg_key(i)));
    }
    assert_true(kvl_agent_cfg_key_changed(a, c, "devices"));
    assert_false(kvl_agent_cfg_key_changed(a, c, "credentials"));
    assert_false(kvl_agent_cfg_key_changed(a, c, "probes")); /* absent in both */
    assert_true(kvl_agent_cfg_key_changed(a, d, "credentials"));
    assert_false(kvl_agent_cfg_key_changed(a, d, "devices"));
    for (size_t i = 0; i < 2; i++) {
        assert_true(kvl_device_cfg_same(&a->snmp.devices[i], &b->snmp.devices[i]));
        assert_false(kvl_device_cfg_same(&a->snmp.devices[i], &d->snmp.devices[i]));
    }
    assert_true(kvl_device_cfg_same(&a->snmp.devices[0], &c->snmp.devices[0]));
    assert_false(kvl_device_cfg_same(&a->snmp.devices[1], &c->snmp.devices[1]));
    assert_false(kvl_device_cfg_same(&a->snmp.devices[0], &a->snmp.devices[1]));
    kvl_agent_cfg_free(a);
    kvl_agent_cfg_free(b);
    kvl_agent_cfg_free(c);
    kvl_agent_cfg_free(d);
}

static void test_missing(void **state)
{
    KVL_UNUSED(state);
    /* At the device's mapping, which starts at its first key. */
    expect_error(HEAD "devices:\n  - name: r1\n    port: 161\n",
                 "a.yaml:5:5: ", "missing required setting 'address'");
    expect_error(HEAD "devices:\n  - address: 10.0.0.1\n",
                 "a.yaml:5:5: ", "missing required setting 'name'");
    expect_error(HEAD "devices:\n  - {}\n", "a.yaml:5:5: ", "missing required setting 'name'");
    expect_error("# agent\nsite: s\ncollector: c:1\n",
                 "a.yaml:2:1: ", "missing required setting 'id'");
    expect_error("id: a\nsite: s\n", "a.yaml:1:1: ", "missing required setting 'collector'");
    expect_error(HEAD "devices:\n  - name: ''\n    address: a\n",
                 "a.yaml:5:11: ", "a device name must not be empty");
}

/* What becomes a folder or file name at the collector (common/names.h): the agent's id and
 * site, device names; each refused with the reason, at the node. */
static void test_names(void **state)
{
    KVL_UNUSED(state);
    char text[2048], name[400];
    expect_error("id: ''\nsite: s\ncollector: c:1\n", "a.yaml:1:5: ", "the id must not be empty");
    memset(name, 'a', 201);
    name[201] = '\0';
    snprintf(text, sizeof(text), "id: %s\nsite: s\ncollector: c:1\n", name);
    expect_error(text, "a.yaml:1:5: ",
                 "the id has 201 bytes, at most 200 (the collector refuses longer ones)");
    snprintf(text, sizeof(text), "id: a1\nsite: %s\ncollector: c:1\n", name);
    expect_error(text, "a.yaml:2:7: ", "the site has 201 bytes, at most 200");
    memset(name, ' ', 100); /* each space is %20 in a file name */
    name[100] = '\0';
    snprintf(text, sizeof(text), "id: a1\nsite: 'x%sx'\ncollector: c:1\n", name);
    expect_error(text, "a.yaml:2:7: ",
                 "site name of 102 bytes is too long for an archive file name (302 bytes as a "
                 "file name, at most 250)");
    snprintf(text, sizeof(text), "id: 'x%sx'\nsite: s\ncollector: c:1\n", name);
    expect_error(text, "a.yaml:1:5: ", "agent name of 102 bytes is too long");
    /* At the bounds: taken; an empty site too (the collector files it as "default"). */
    memset(name, 'a', 200);
    name[200] = '\0';
    snprintf(text, sizeof(text), "id: %s\nsite: %s\ncollector: c:1\n", name, name);
    kvl_agent_cfg_t *c = parse_ok(text);
    assert_int_equal(strlen(c->id), 200);
    kvl_agent_cfg_free(c);
    c = parse_ok("id: a1\nsite: ''\ncollector: c:1\n");
    assert_string_equal(c->site, "");
    kvl_agent_cfg_free(c);

    /* Device names: 300 bytes; 100 bytes that are 300 as a file name; 250 is the bound. */
    memset(name, 'd', 300);
    name[300] = '\0';
    snprintf(text, sizeof(text), HEAD "devices:\n  - name: %s\n    address: a\n", name);
    expect_error(text, "a.yaml:5:11: ",
                 "device name of 300 bytes is too long for an archive file name (300 bytes as "
                 "a file name, at most 250)");
    memset(name, '/', 100);
    name[100] = '\0';
    snprintf(text, sizeof(text), HEAD "devices:\n  - name: %s\n    address: a\n", name);
    expect_error(text, "a.yaml:5:11: ", "(300 bytes as a file name, at most 250)");
    memset(name, 'd', 250);
    name[250] = '\0';
    snprintf(text, sizeof(text), HEAD "devices:\n  - name: %s\n    address: a\n", name);
    c = parse_ok(text);
    assert_int_equal(strlen(c->snmp.devices[0].name), 250);
    kvl_agent_cfg_free(c);
    /* In a group too. */
    memset(name, 'd', 251);
    name[251] = '\0';
    snprintf(text, sizeof(text),
             HEAD "groups:\n  - name: g\n    devices:\n      - {name: %s, address: a}\n", name);
    expect_error(text, "a.yaml:7:16: ", "device name of 251 bytes is too long");
}

static void test_bad_collector(void **state)
{
    KVL_UNUSED(state);
    static const char *const bad[] = {"localhost", "10.0.0.1:0", "10.0.0.1:65536",
                                      ":5140",     "::1:5140",   "host:port"};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        char text[256];
        snprintf(text, sizeof(text), "id: a1\nsite: s\ncollector: %s\n", bad[i]);
        expect_error(text,
                     "a.yaml:3:12: ", "expected the collector as host:port, e.g. 127.0.0.1:5140");
    }
    expect_error("id: a1\nsite: s\ncollector: [a, 1]\n", "a.yaml:3:12: ", "host:port");
    kvl_agent_cfg_t *c = parse_ok("id: a1\nsite: s\ncollector: '[2001:db8::5]:5140'\n");
    assert_string_equal(c->ship.collector_host, "2001:db8::5");
    assert_int_equal(c->ship.collector_port, 5140);
    kvl_agent_cfg_free(c);
}

static void test_timing(void **state)
{
    KVL_UNUSED(state);
    /* 2s x (1 + 1) >= 4s: at the timeout. */
    expect_error(HEAD "devices:\n"
                      "  - name: r1\n"
                      "    address: a\n"
                      "    interval: 4s\n"
                      "    timeout: 2s\n" /* 8 */
                      "    retries: 1\n",
                 "a.yaml:8:14: ",
                 "timeout x (retries + 1) must be shorter than the interval (2000ms x 2 >= "
                 "4000ms)");
    /* With the timeout from the defaults, at the device. */
    expect_error(HEAD "defaults:\n"
                      "  timeout: 5s\n"
                      "  retries: 2\n"
                      "devices:\n"
                      "  - name: r1\n" /* 8 */
                      "    address: a\n"
                      "    interval: 10s\n",
                 "a.yaml:8:5: ", "(5000ms x 3 >= 10000ms)");
    /* Zero retries: one try must fit. */
    expect_error(HEAD "devices:\n  - {name: r1, address: a, interval: 1s, timeout: 1s, retries: "
                      "0}\n",
                 "a.yaml:5:51: ", "(1000ms x 1 >= 1000ms)");
}

static void test_bad_values(void **state)
{
    KVL_UNUSED(state);
    expect_error(HEAD "devices:\n  - name: r1\n    adress: a\n",
                 "a.yaml:6:5: ", "unknown setting 'adress'");
    expect_error(HEAD "devices:\n  - name: r1\n    address: a\n    port: 0\n",
                 "a.yaml:7:11: ", "from 1 to 65535, got '0'");
    expect_error(HEAD "devices:\n  - name: r1\n    address: a\n    port: 70000\n",
                 "a.yaml:7:11: ", "got '70000'");
    expect_error(HEAD "devices:\n  - name: r1\n    address: a\n    interval: 5q\n",
                 "a.yaml:7:15: ", "expected a duration");
    expect_error(HEAD "devices:\n  - name: r1\n    address: a\n    interval: 500ms\n",
                 "a.yaml:7:15: ", "duration '500ms' is out of range");
    expect_error(HEAD "devices:\n  - name: r1\n    address: a\n    retries: 11\n",
                 "a.yaml:7:14: ", "from 0 to 10");
    expect_error(HEAD "devices:\n  - name: r1\n    address: a\n    max_repetitions: 0\n",
                 "a.yaml:7:22: ", "from 1 to 200");
    expect_error(HEAD "devices:\n  - name: r1\n    address: a\n    max_varbinds: 501\n",
                 "a.yaml:7:19: ", "from 1 to 500");
    expect_error(HEAD "devices:\n  name: r1\n", "a.yaml:5:3: ", "expected a list of devices");
    expect_error(HEAD "devices:\n  - r1\n", "a.yaml:5:5: ", "expected a mapping of settings");
    expect_error(HEAD "defaults:\n  name: r1\n", "a.yaml:5:3: ", "unknown setting 'name'");
    expect_error(HEAD "defaults: 5\n", "a.yaml:4:11: ", "expected a mapping of settings");
    expect_error(HEAD "log_level: loud\n", "a.yaml:4:12: ", "expected a log level");
    expect_error(HEAD "max_queue: 0\n", "a.yaml:4:12: ", "from 1 to 10000000");
    expect_error(HEAD "flush_interval: 5ms\n", "a.yaml:4:17: ", "out of range");
    expect_error(HEAD "colector: 1.2.3.4:5\n", "a.yaml:4:1: ", "unknown setting 'colector'");
}

static void test_syntax_and_empty(void **state)
{
    KVL_UNUSED(state);
    expect_error("id: a1\nsite: s\n  collector: c:1\n",
                 "a.yaml:3:12: ", "mapping values are not allowed in this context");
    expect_error(HEAD "devices:\n  - name: r1\n   address: a\n",
                 "a.yaml:6:4: ", "did not find expected '-' indicator");
    expect_error("", "a.yaml:1:1: ", "the file is empty");
    expect_error("# nothing yet\n", "a.yaml:1:1: ", "the file is empty");
    expect_error("- id: a1\n", "a.yaml:1:1: ", "expected a mapping of settings");
}

static void test_load_file(void **state)
{
    KVL_UNUSED(state);
    char path[] = "/tmp/kvl-test-agent-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, example, strlen(example)), (ssize_t)strlen(example));
    close(fd);
    char err[512] = "";
    kvl_agent_cfg_t *c = kvl_agent_cfg_load(path, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(c->snmp.n_devices, 3);
    kvl_agent_cfg_free(c);

    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(HEAD "max_queue: lots\n", f);
    fclose(f);
    assert_null(kvl_agent_cfg_load(path, err, sizeof(err)));
    char want[600];
    snprintf(want, sizeof(want), "%s:4:12: ", path);
    assert_int_equal(strncmp(err, want, strlen(want)), 0);
    unlink(path);
    assert_null(kvl_agent_cfg_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, "cannot open"));
}

static void test_collectors(void **state)
{
    KVL_UNUSED(state);
    kvl_agent_cfg_t *c = parse_ok(HEAD);
    assert_int_equal(c->ship.n_collectors, 1);
    assert_string_equal(c->ship.collectors[0].addr, "127.0.0.1:5140");
    assert_int_equal(c->ship.collectors[0].port, 5140);
    assert_int_equal(c->ship.collector_mode, KVL_COLLECTORS_FAILOVER);
    kvl_agent_cfg_free(c);

    c = parse_ok("id: a1\nsite: s\ncollectors: [noc-col-1:5140, '10.0.0.2:5141']\nmode: dual\n");
    assert_int_equal(c->ship.n_collectors, 2);
    assert_string_equal(c->ship.collectors[1].host, "10.0.0.2");
    assert_int_equal(c->ship.collectors[1].port, 5141);
    assert_string_equal(c->ship.collector, "noc-col-1:5140"); /* the first, for log lines */
    assert_string_equal(c->ship.collector_host, "noc-col-1");
    assert_int_equal(c->ship.collector_mode, KVL_COLLECTORS_DUAL);
    kvl_agent_cfg_free(c);

    expect_error("id: a1\nsite: s\ncollector: a:1\ncollectors: [b:2]\n",
                 "a.yaml:4:13: ", "give either `collector` or `collectors`, not both");
    expect_error("id: a1\nsite: s\ncollectors: [a:1, b]\n",
                 "a.yaml:3:19: ", "expected the collector as host:port");
    expect_error("id: a1\nsite: s\ncollectors: [a:1, a:1]\n",
                 "a.yaml:3:19: ", "collector a:1 is listed twice");
    expect_error("id: a1\nsite: s\ncollectors: [a:1]\nmode: dual\n",
                 "a.yaml:4:7: ", "mode dual needs at least two collectors");
    expect_error("id: a1\nsite: s\ncollectors: [a:1, b:2]\nmode: both\n",
                 "a.yaml:4:7: ", "expected failover or dual");
}

static void test_spool_section(void **state)
{
    KVL_UNUSED(state);
    kvl_agent_cfg_t *c = parse_ok(HEAD);
    assert_null(c->ship.spool.dir); /* no section: batches wait in memory */
    assert_int_equal(c->ship.spool.max_bytes, 2ll << 30);
    assert_int_equal(c->ship.spool.sync_interval_ms, 1000);
    kvl_agent_cfg_free(c);

    c = parse_ok(HEAD "spool: {dir: /srv/spool, max_size: 512MiB, sync_interval: 0}\n");
    assert_string_equal(c->ship.spool.dir, "/srv/spool");
    assert_int_equal(c->ship.spool.max_bytes, 512ll << 20);
    assert_int_equal(c->ship.spool.sync_interval_ms, 0);
    kvl_agent_cfg_free(c);

    c = parse_ok(HEAD "spool:\n  max_size: 1TiB\n");
    assert_int_equal(c->ship.spool.max_bytes, 1ll << 40);
    assert_string_equal(c->ship.spool.dir, "/var/lib/kaaval/spool");
    kvl_agent_cfg_free(c);
    c = parse_ok(HEAD "spool:\n  max_size: 20000000\n");
    assert_int_equal(c->ship.spool.max_bytes, 20000000);
    kvl_agent_cfg_free(c);
    c = parse_ok(HEAD "spool:\n  lane_max_bytes: 1024\n"); /* a tiny bound for tests */
    assert_int_equal(c->ship.spool.lane_max_bytes, 1024);
    assert_int_equal(c->ship.spool.max_bytes, 2ll << 30);
    kvl_agent_cfg_free(c);
    expect_error(HEAD "spool:\n  lane_max_bytes: 1000\n", "a.yaml:5:19: ", "from 1024");

    expect_error(HEAD "spool:\n  max_size: 2GB\n", "a.yaml:5:13: ", "expected a size");
    expect_error(HEAD "spool:\n  max_size: 1MiB\n", "a.yaml:5:13: ", "from 16 MiB");
    expect_error(HEAD "spool:\n  max_size: 2TiB\n", "a.yaml:5:13: ", "to 1024 GiB");
    expect_error(HEAD "spool:\n  max_size: -1\n", "a.yaml:5:13: ", "expected a size");
    expect_error(HEAD "spool:\n  max_size: 99999999999999999999999GiB\n",
                 "a.yaml:5:13: ", "expected a size");
    expect_error(HEAD "spool:\n  dir: ''\n", "a.yaml:5:8: ", "must not be empty");
    expect_error(HEAD "spool:\n  size: 1GiB\n", "a.yaml:5:3: ", "size");
    expect_error(HEAD "spool: /var/spool\n", "a.yaml:4:8: ", "mapping");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bad_version),
        cmocka_unit_test(test_duplicate_device),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_standalone),
        cmocka_unit_test(test_reload_compare),
        cmocka_unit_test(test_bad_collector),
        cmocka_unit_test(test_timing),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_syntax_and_empty),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_collectors),
        cmocka_unit_test(test_spool_section),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
