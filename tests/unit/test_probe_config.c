/*
 * test_probe_config.c — unit tests for the `probes:` section (agent/probe/probe_config.h) read
 * through the agent's configuration: defaults, targets, the mesh (self skipped, sites
 * selected), the stamp/tcp/http(s) targets, reflector and clock keys, the STAMP mesh, and
 * errors at file:line:column.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "agent_config.h"
#include "kvl.h"
#include "stamp.h"

/* Lines 1 to 4. */
#define HEAD "id: a1\nsite: tvm-north\ncollector: 127.0.0.1:5140\ninsecure: true\n"

static kvl_agent_cfg_t *load(const char *text, char *err, size_t errlen)
{
    return kvl_agent_cfg_parse("a.yaml", text, err, errlen);
}

static void expect_error_at(const char *text, const char *where, const char *what, int line)
{
    char err[512] = "";
    kvl_agent_cfg_t *c = load(text, err, sizeof(err));
    if (c != NULL) {
        kvl_agent_cfg_free(c);
        fail_msg("line %d: expected an error for:\n%s", line, text);
    }
    if (strncmp(err, where, strlen(where)) != 0 || strstr(err, what) == NULL) {
        fail_msg("line %d: expected '%s...%s', got '%s'", line, where, what, err);
    }
}
#define expect_error(text, where, what) expect_error_at((text), (where), (what), __LINE__)

static void test_defaults(void **state)
{
    KVL_UNUSED(state);
    char err[512] = "";
    kvl_agent_cfg_t *c = load(HEAD, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(c->probes.interval_ms, 60000);
    assert_int_equal(c->probes.count, 20);
    assert_int_equal(c->probes.size, 56);
    assert_int_equal(c->probes.n_targets, 0);
    assert_int_equal(c->probes.confirm_count, 3);
    assert_int_equal(c->probes.confirm_spacing_ms, 250);
    kvl_agent_cfg_free(c);
    c = load(HEAD "probes:\n  confirm_count: 5\n  confirm_spacing: 1s\n", err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(c->probes.confirm_count, 5);
    assert_int_equal(c->probes.confirm_spacing_ms, 1000);
    kvl_agent_cfg_free(c);
}

static const char mesh_text[] = HEAD "probes:\n"
                                     "  interval: 30s\n"
                                     "  count: 10\n"
                                     "  size: 100\n"
                                     "  targets:\n"
                                     "    - {name: dc-core, address: 10.0.0.1, type: icmp}\n"
                                     "    - {name: dc-v6, address: \"2001:db8::1\"}\n"
                                     "  mesh:\n"
                                     "%s"
                                     "    agents:\n"
                                     "      - {id: a1, site: tvm-north, address: 10.1.0.1}\n"
                                     "      - {id: a2, site: tvm-north, address: 10.1.0.2}\n"
                                     "      - {id: a3, site: klm, address: \"fd00::3\"}\n";

static void test_targets_and_mesh(void **state)
{
    KVL_UNUSED(state);
    char text[2048], err[512] = "";
    snprintf(text, sizeof(text), mesh_text, "    sites: [tvm-north]\n");
    kvl_agent_cfg_t *c = load(text, err, sizeof(err));
    if (c == NULL) {
        fail_msg("%s", err);
    }
    const kvl_probe_cfg_t *p = &c->probes;
    assert_int_equal(p->interval_ms, 30000);
    assert_int_equal(p->count, 10);
    assert_int_equal(p->size, 100);
    assert_int_equal(p->n_targets, 3); /* dc-core, dc-v6, a2 (a1 is self, a3 in klm) */
    assert_string_equal(p->targets[0].name, "dc-core");
    assert_string_equal(p->targets[1].address, "2001:db8::1");
    assert_false(p->targets[1].mesh);
    assert_string_equal(p->targets[2].name, "a2");
    assert_string_equal(p->targets[2].address, "10.1.0.2");
    assert_true(p->targets[2].mesh);
    kvl_agent_cfg_free(c);

    /* Without `sites`: every site. */
    snprintf(text, sizeof(text), mesh_text, "");
    c = load(text, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(c->probes.n_targets, 4);
    assert_string_equal(c->probes.targets[3].name, "a3");
    kvl_agent_cfg_free(c);
}

static const char types_text[] =
    HEAD "probes:\n"
         "  reflector: {port: 8620}\n"
         "  clock: {sync: assumed, error: 20us, max_error: 2ms}\n"
         "  targets:\n"
         "    - {name: s1, address: 10.0.0.1, type: stamp}\n"
         "    - {name: s2, address: \"2001:db8::1\", type: stamp, port: 4000, count: 5}\n"
         "    - {name: t1, address: 10.0.0.2, type: tcp, port: 443}\n"
         "    - {name: h1, url: \"https://10.0.0.3/ok\", type: https, expect_status: 200,\n"
         "       ca_file: /tmp/ca.pem}\n"
         "    - {name: h2, url: \"http://10.0.0.3/\", type: http}\n"
         "  mesh:\n"
         "    type: stamp\n"
         "    agents:\n"
         "      - {id: a1, site: tvm, address: 10.1.0.1}\n"
         "      - {id: a2, site: tvm, address: 10.1.0.2}\n";

static void test_types(void **state)
{
    KVL_UNUSED(state);
    char err[512] = "";
    kvl_agent_cfg_t *c = load(types_text, err, sizeof(err));
    if (c == NULL) {
        fail_msg("%s", err);
    }
    const kvl_probe_cfg_t *p = &c->probes;
    assert_true(p->reflector_enabled);
    assert_int_equal(p->reflector_port, 8620);
    assert_int_equal(p->clock_sync, KVL_CLOCK_ASSUMED);
    assert_int_equal(p->clock_error_us, 20);
    assert_int_equal(p->clock_max_error_us, 2000);
    assert_int_equal(p->n_targets, 6);
    assert_int_equal(p->targets[0].type, KVL_PROBE_STAMP);
    assert_int_equal(p->targets[0].port, 0);
    assert_int_equal(kvl_probe_target_count(p, &p->targets[0]), 20);
    assert_int_equal(p->targets[1].port, 4000);
    assert_int_equal(kvl_probe_target_count(p, &p->targets[1]), 5);
    assert_int_equal(p->targets[2].type, KVL_PROBE_TCP);
    assert_int_equal(p->targets[3].type, KVL_PROBE_HTTPS);
    assert_int_equal(p->targets[3].expect_status, 200);
    assert_string_equal(p->targets[3].ca_file, "/tmp/ca.pem");
    assert_int_equal(kvl_probe_target_count(p, &p->targets[3]), 1);
    assert_int_equal(p->targets[4].type, KVL_PROBE_HTTP);
    /* The mesh: a2 only (a1 is this agent), by STAMP to the reflector port. */
    assert_string_equal(p->targets[5].name, "a2");
    assert_int_equal(p->targets[5].type, KVL_PROBE_STAMP);
    assert_int_equal(p->targets[5].port, 8620);
    kvl_agent_cfg_free(c);

    c = load(HEAD, err, sizeof(err));
    assert_non_null(c);
    assert_true(c->probes.reflector_enabled);
    assert_int_equal(c->probes.reflector_port, 862);
    assert_int_equal(c->probes.clock_sync, KVL_CLOCK_KERNEL);
    kvl_agent_cfg_free(c);
}

static void test_errors(void **state)
{
    KVL_UNUSED(state);
    expect_error(HEAD "probes:\n  targets:\n    - {name: x, address: 10.0.0.1, type: twamp}\n",
                 "a.yaml:7:42:", "use stamp");
    expect_error(HEAD "probes:\n  targets:\n    - {name: x, address: 10.0.0.1, type: http}\n",
                 "a.yaml:7:7:", "an http target needs a url");
    expect_error(HEAD "probes:\n  targets:\n    - {name: x, url: http://a/, type: https}\n",
                 "a.yaml:7:22:", "expected a URL starting with https://");
    expect_error(HEAD "probes:\n  targets:\n    - {name: x, address: 10.0.0.1, type: tcp}\n",
                 "a.yaml:7:7:", "a tcp target needs a port");
    expect_error(HEAD "probes:\n  targets:\n    - {name: x, address: 10.0.0.1, port: 9}\n",
                 "a.yaml:7:42:", "icmp targets have no port");
    expect_error(HEAD "probes:\n  targets:\n    - {name: x, address: 10.0.0.1, url: http://a/}\n",
                 "a.yaml:7:41:", "only http and https");
    expect_error(HEAD "probes:\n  targets:\n    - {name: x, address: 10.0.0.1, type: udp}\n",
                 "a.yaml:7:42:", "unknown probe type 'udp' (expected icmp, stamp");
    expect_error(HEAD "probes:\n  clock: {sync: maybe}\n", "a.yaml:6:17:", "kernel");
    expect_error(HEAD "probes:\n  clock: {error: 5}\n", "a.yaml:6:18:", "50us");
    expect_error(HEAD "probes:\n  reflector: {port: 0}\n", "a.yaml:6:21:", "1 to 65535");
    expect_error(HEAD "probes:\n  mesh: {type: tcp, agents: []}\n",
                 "a.yaml:6:16:", "icmp or stamp");
    expect_error(HEAD "probes:\n  targets:\n    - {name: x, address: core.example}\n",
                 "a.yaml:7:26:", "numeric IPv4 or IPv6 address");
    expect_error(HEAD "probes:\n  targets:\n    - {name: x}\n", "a.yaml:7:7:", "address");
    expect_error(HEAD "probes:\n  targets:\n    - {name: x, address: 10.0.0.1, port: 7}\n",
                 "a.yaml:7:", "port");
    expect_error(HEAD "probes:\n  targets:\n    - {name: x, address: 10.0.0.1}\n"
                      "    - {name: x, address: 10.0.0.2}\n",
                 "a.yaml:8:14:", "target name 'x' is used twice");
    expect_error(HEAD "probes:\n  targets:\n    - {name: a2, address: 10.0.0.1}\n"
                      "  mesh:\n    agents:\n      - {id: a2, site: s, address: 10.0.0.2}\n",
                 "a.yaml:10:14:", "target name 'a2' is used twice");
    expect_error(HEAD
                 "probes:\n  mesh:\n    agents:\n      - {id: a2, site: s, address: 10.0.0.2}\n"
                 "      - {id: a2, site: t, address: 10.0.0.3}\n",
                 "a.yaml:9:14:", "agent 'a2' is listed twice");
    expect_error(HEAD "probes:\n  mesh:\n    sites: [s]\n",
                 "a.yaml:7:5:", "missing required setting 'agents'");
    expect_error(HEAD "probes:\n  interval: 1s\n  count: 2000\n",
                 "a.yaml:7:10:", "2000 probes do not fit in 1000ms");
    expect_error(HEAD "probes:\n  size: 8\n", "a.yaml:6:9:", "");
    expect_error(HEAD "probes:\n  interval: 500ms\n", "a.yaml:6:13:", "");
    expect_error(HEAD "probes: [a]\n", "a.yaml:5:9:", "expected a mapping");
    expect_error(HEAD "probes:\n  confirm_count: 0\n", "a.yaml:6:18:", "");
    expect_error(HEAD "probes:\n  confirm_count: 11\n", "a.yaml:6:18:", "");
    expect_error(HEAD "probes:\n  confirm_spacing: 5ms\n", "a.yaml:6:20:", "");
    expect_error(HEAD "probes:\n  confirm_spacing: 6s\n", "a.yaml:6:20:", "");
    expect_error(HEAD "probes:\n  targets: {name: x}\n", "a.yaml:6:12:", "list of targets");
}

/* Names that become archive file names at the collector: a target's name, a mesh agent's id. */
static void test_names(void **state)
{
    KVL_UNUSED(state);
    char text[2048], name[400];
    memset(name, 'n', 251);
    name[251] = '\0';
    snprintf(text, sizeof(text), HEAD "probes:\n  targets:\n    - {name: %s, address: 10.0.0.1}\n",
             name);
    expect_error(text, "a.yaml:7:14:",
                 "probe target name of 251 bytes is too long for an archive file name (251 "
                 "bytes as a file name, at most 250)");
    name[250] = '\0'; /* at the bound: taken */
    snprintf(text, sizeof(text), HEAD "probes:\n  targets:\n    - {name: %s, address: 10.0.0.1}\n",
             name);
    char err[512] = "";
    kvl_agent_cfg_t *c = load(text, err, sizeof(err));
    assert_non_null(c);
    kvl_agent_cfg_free(c);
    /* 100 bytes, but 300 as a file name (each ':' is written %3A). */
    memset(name, ':', 100);
    name[100] = '\0';
    snprintf(text, sizeof(text),
             HEAD "probes:\n  targets:\n    - {name: '%s', address: 10.0.0.1}\n", name);
    expect_error(text, "a.yaml:7:14:", "(300 bytes as a file name, at most 250)");
    /* A mesh agent's id: the collector's bound on ids, and the file name it becomes. */
    memset(name, 'm', 201);
    name[201] = '\0';
    snprintf(text, sizeof(text),
             HEAD "probes:\n  mesh:\n    agents:\n      - {id: %s, site: s, address: 10.0.0.2}\n",
             name);
    expect_error(text, "a.yaml:8:14:", "the agent id has 201 bytes, at most 200");
    memset(name, '%', 100);
    name[100] = '\0';
    snprintf(text, sizeof(text),
             HEAD "probes:\n  mesh:\n    agents:\n      - {id: '%s', site: s, address: 10.0.0.2}\n",
             name);
    expect_error(text, "a.yaml:8:14:", "probe target name of 100 bytes is too long");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_targets_and_mesh),
        cmocka_unit_test(test_types),    cmocka_unit_test(test_errors),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
