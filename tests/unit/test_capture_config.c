/*
 * test_capture_config.c — the `capture:` section of agent.yaml (agent/capture/capture_config.h)
 * through the agent's own parser: defaults, every key read, the flow table's settings made
 * from them, and each refusal naming file:line:column (interfaces and file together or
 * neither, bad names and networks, a filter libpcap refuses, bounds, sketch_size below top_n,
 * active_timeout below idle_timeout, unknown keys).
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

#include "agent_config.h"
#include "kvl.h"

#include "cfg_text.h"

#define HEAD "id: a1\nsite: tvm-north\ncollector: 127.0.0.1:5140\n"

KVL_CFG_TEXT_HELPERS(kvl_agent_cfg_t, kvl_agent_cfg_parse, kvl_agent_cfg_free, "a.yaml")

static void test_absent(void **state)
{
    KVL_UNUSED(state);
    kvl_agent_cfg_t *c = parse_ok(HEAD);
    assert_false(c->capture.enabled);
    assert_int_equal(c->capture.snaplen, 1600);
    kvl_agent_cfg_free(c);
}

static void test_all_keys(void **state)
{
    KVL_UNUSED(state);
    kvl_agent_cfg_t *c = parse_ok(HEAD "capture:\n"
                                       "  interfaces: [eth1, mirror0]\n"
                                       "  filter: not port 22 and not arp\n"
                                       "  snaplen: 256\n"
                                       "  promiscuous: false\n"
                                       "  sampling: 4\n"
                                       "  local_networks: [10.0.0.0/8, 2001:db8::/32, 192.0.2.1]\n"
                                       "  max_flows: 1000\n"
                                       "  top_n: 20\n"
                                       "  sketch_size: 200\n"
                                       "  handshake_ports: 8\n"
                                       "  idle_timeout: 15s\n"
                                       "  active_timeout: 2m\n");
    const kvl_capture_cfg_t *k = &c->capture;
    assert_true(k->enabled);
    assert_int_equal(k->n_interfaces, 2);
    assert_string_equal(k->interfaces[1], "mirror0");
    assert_null(k->file);
    assert_string_equal(k->filter, "not port 22 and not arp");
    assert_int_equal(k->snaplen, 256);
    assert_false(k->promiscuous);
    assert_int_equal(k->sampling, 4);
    assert_int_equal(k->n_local, 3);
    assert_int_equal(k->local[1].ver, 6);
    assert_int_equal(k->local[2].len, 32);
    kvl_flows_cfg_t f;
    kvl_capture_cfg_flows(k, &f);
    assert_int_equal(f.max_flows, 1000);
    assert_int_equal(f.top_capacity, 200);
    assert_int_equal(f.max_ports, 8);
    assert_int_equal(f.idle_ns, 15000000000ll);
    assert_int_equal(f.active_ns, 120000000000ll);
    assert_int_equal(f.n_local, 3);
    kvl_agent_cfg_free(c);
    c = parse_ok(HEAD "capture: {file: /tmp/x.pcap}\n");
    assert_string_equal(c->capture.file, "/tmp/x.pcap");
    assert_int_equal(c->capture.max_flows, 65536);
    assert_int_equal(c->capture.top_n, 10);
    assert_true(c->capture.promiscuous);
    kvl_agent_cfg_free(c);
}

static void test_errors(void **state)
{
    KVL_UNUSED(state);
    expect_error(HEAD "capture: eth0\n", "a.yaml:4:10: ", "expected a mapping");
    expect_error(HEAD "capture:\n  snaplen: 100\n",
                 "a.yaml:5:3: ", "expected interfaces (e.g. [eth1]) or a pcap file");
    expect_error(HEAD "capture:\n  interfaces: [eth0]\n  file: a.pcap\n",
                 "a.yaml:6:9: ", "not both");
    expect_error(HEAD "capture:\n  interfaces: []\n", "a.yaml:5:15: ", "list of interface");
    expect_error(HEAD "capture:\n  interfaces: [eth0, averyveryverylongname]\n",
                 "a.yaml:5:22: ", "1 to 15 characters");
    expect_error(HEAD "capture:\n  interfaces: [eth0, eth0]\n", "a.yaml:5:22: ", "listed twice");
    expect_error(HEAD "capture:\n  file: a.pcap\n  local_networks: [10.0.0.0/33]\n",
                 "a.yaml:6:20: ", "expected a network");
    expect_error(HEAD "capture:\n  file: a.pcap\n  filter: port nonsense\n",
                 "a.yaml:6:11: ", "BPF filter refused");
    expect_error(HEAD "capture:\n  file: a.pcap\n  snaplen: 10\n", "a.yaml:6:12: ", "");
    expect_error(HEAD "capture:\n  file: a.pcap\n  sampling: 0\n", "a.yaml:6:13: ", "");
    expect_error(HEAD "capture:\n  file: a.pcap\n  top_n: 50\n  sketch_size: 20\n",
                 "a.yaml:7:16: ", "below top_n");
    expect_error(HEAD "capture:\n  file: a.pcap\n  idle_timeout: 60s\n  active_timeout: 30s\n",
                 "a.yaml:7:19: ", "below idle_timeout");
    expect_error(HEAD "capture:\n  file: a.pcap\n  interface: eth0\n", "a.yaml:6:3: ", "interface");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_absent),
        cmocka_unit_test(test_all_keys),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
