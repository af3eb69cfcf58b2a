/*
 * test_trap_config.c — the `traps:` section of agent.yaml (agent/trap/trap_config.c), read
 * through the agent's whole configuration: the defaults (on 0.0.0.0:162, an engine ID
 * derived from the agent's id), `listen` (off, numeric addresses only), `credentials`
 * resolved against the top-level credential sets, engine IDs in hex and their bounds,
 * `max_per_second`, and errors at file:line:column.
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
#include "trap_config.h"

#include "cfg_text.h"

/* The three required settings, lines 1 to 3. */
#define HEAD "id: a1\nsite: tvm-north\ncollector: 127.0.0.1:5140\n"
#define CREDS                                                                                      \
    "credentials:\n"                                                                               \
    "  - {name: v2, community: traps-only}\n"                                                      \
    "  - {name: v3, user: noc, auth_protocol: SHA, auth_password: s3cret-pass, "                   \
    "priv_protocol: AES, priv_password: s3cret-pass}\n"

KVL_CFG_TEXT_HELPERS(kvl_agent_cfg_t, kvl_agent_cfg_parse, kvl_agent_cfg_free, "a.yaml")

static void test_defaults(void **state)
{
    KVL_UNUSED(state);
    kvl_agent_cfg_t *c = parse_ok(HEAD);
    const kvl_trap_cfg_t *t = &c->traps;
    assert_true(t->enabled);
    assert_string_equal(t->host, "0.0.0.0");
    assert_int_equal(t->port, 162);
    assert_int_equal(t->max_per_second, 100);
    assert_int_equal(t->n_cred_names, 0);
    assert_int_equal(t->n_engine_ids, 0);
    /* net-snmp's enterprise 8072, format 5 (octets), 8 octets of the id's hash */
    static const uint8_t head[] = {0x80, 0x00, 0x1f, 0x88, 0x05};
    assert_int_equal(t->engine_id.len, 13);
    assert_memory_equal(t->engine_id.id, head, sizeof(head));
    kvl_trap_engine_id_t same, other;
    kvl_trap_engine_id_default("a1", &same);
    kvl_trap_engine_id_default("a2", &other);
    assert_memory_equal(same.id, t->engine_id.id, 13);
    assert_memory_not_equal(other.id, t->engine_id.id, 13);
    kvl_agent_cfg_free(c);
}

static void test_listen(void **state)
{
    KVL_UNUSED(state);
    kvl_agent_cfg_t *c = parse_ok(HEAD "traps: {listen: off}\n");
    assert_false(c->traps.enabled);
    kvl_agent_cfg_free(c);
    c = parse_ok(HEAD "traps:\n  listen: 127.0.0.1:1162\n");
    assert_true(c->traps.enabled);
    assert_string_equal(c->traps.host, "127.0.0.1");
    assert_int_equal(c->traps.port, 1162);
    kvl_agent_cfg_free(c);
    c = parse_ok(HEAD "traps:\n  listen: \"[::1]:162\"\n");
    assert_string_equal(c->traps.host, "::1");
    kvl_agent_cfg_free(c);

    expect_error(HEAD "traps:\n  listen: localhost:162\n",
                 "a.yaml:5:11: ", "'localhost' is not a numeric IP address");
    expect_error(HEAD "traps:\n  listen: 127.0.0.1\n", "a.yaml:5:11: ", "address:port");
    expect_error(HEAD "traps:\n  listen: 127.0.0.1:0\n", "a.yaml:5:11: ", "address:port");
    expect_error(HEAD "traps:\n  listen: [1, 2]\n", "a.yaml:5:11: ", "address:port");
    expect_error(HEAD "traps: on\n", "a.yaml:4:8: ", "expected a mapping");
    expect_error(HEAD "traps:\n  port: 162\n", "a.yaml:5:3: ", "port");
}

static void test_credentials(void **state)
{
    KVL_UNUSED(state);
    kvl_agent_cfg_t *c = parse_ok(HEAD "traps:\n  credentials: [v3, v2]\n" CREDS);
    const kvl_trap_cfg_t *t = &c->traps;
    assert_int_equal(t->n_cred_names, 2);
    assert_non_null(t->creds[0]);
    assert_string_equal(t->creds[0]->user, "noc");
    assert_int_equal(t->creds[0]->version, KVL_SNMP_V3);
    assert_string_equal(t->creds[1]->community, "traps-only");
    kvl_agent_cfg_free(c);

    expect_error(HEAD "traps:\n  credentials: [v3, nope]\n" CREDS,
                 "a.yaml:5:21: ", "no credential set named 'nope'");
    expect_error(HEAD "traps:\n  credentials: v3\n" CREDS,
                 "a.yaml:5:16: ", "a list of credential set names");
    expect_error(HEAD "traps:\n  credentials: [{name: v3}]\n" CREDS,
                 "a.yaml:5:17: ", "the name of a credential set");
}

static void test_engine_ids(void **state)
{
    KVL_UNUSED(state);
    kvl_agent_cfg_t *c =
        parse_ok(HEAD "traps:\n"
                      "  engine_id: 0x800000090300AABBCCDDEEFF\n"
                      "  engine_ids: [\"80:00:1f:88:04:6b:76\", 8000000001020304]\n"
                      "  max_per_second: 5\n");
    const kvl_trap_cfg_t *t = &c->traps;
    static const uint8_t own[] = {0x80, 0x00, 0x00, 0x09, 0x03, 0x00,
                                  0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
    assert_int_equal(t->engine_id.len, sizeof(own));
    assert_memory_equal(t->engine_id.id, own, sizeof(own));
    assert_int_equal(t->n_engine_ids, 2);
    static const uint8_t first[] = {0x80, 0x00, 0x1f, 0x88, 0x04, 0x6b, 0x76};
    assert_int_equal(t->engine_ids[0].len, sizeof(first));
    assert_memory_equal(t->engine_ids[0].id, first, sizeof(first));
    assert_int_equal(t->engine_ids[1].len, 8);
    assert_int_equal(t->max_per_second, 5);
    kvl_agent_cfg_free(c);

    expect_error(HEAD "traps:\n  engine_id: 0x80001f\n", "a.yaml:5:14: ", "5 to 32 octets");
    expect_error(HEAD "traps:\n  engine_id: 0x80001f88zz\n", "a.yaml:5:14: ", "in hex");
    expect_error(HEAD "traps:\n  engine_id: 0x80001f8804a\n", "a.yaml:5:14: ", "in hex");
    expect_error(HEAD "traps:\n  engine_ids: [0x8000000001020304, 0x01]\n",
                 "a.yaml:5:36: ", "engine ID");
    expect_error(HEAD "traps:\n  max_per_second: 0\n", "a.yaml:5:19: ", "from 1 to 1000000");

    /* 32 octets is the longest; 33 is refused */
    char hex[2 + 66 + 1] = "0x";
    for (int i = 0; i < 33; i++) {
        memcpy(hex + 2 + 2 * i, "ab", 2);
    }
    kvl_trap_engine_id_t e;
    assert_int_equal(kvl_trap_engine_id_parse(hex, &e), KVL_EINVAL);
    hex[2 + 64] = '\0';
    assert_int_equal(kvl_trap_engine_id_parse(hex, &e), 0);
    assert_int_equal(e.len, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_credentials),
        cmocka_unit_test(test_engine_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
