/*
 * test_agent_config_v3.c — unit tests for the agent.yaml keys of SNMPv3 polling
 * (agent/agent_config.h): named credential sets, groups, max_inflight, rediscover and the
 * interface filters.
 *
 * Good files must come back with every value and the precedence device > group >
 * defaults; bad ones must fail with "a.yaml:line:column: " of the offending node (lines
 * and columns counted from 1, as written in the comments beside each case), and an error
 * about a password must never contain the password.
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

/* The three required settings, lines 1 to 3. */
#define HEAD "id: a1\nsite: tvm-north\ncollector: 127.0.0.1:5140\n"

KVL_CFG_TEXT_HELPERS(kvl_agent_cfg_t, kvl_agent_cfg_parse, kvl_agent_cfg_free, "a.yaml")

static const kvl_device_cfg_t *dev(const kvl_agent_cfg_t *c, const char *name)
{
    for (size_t i = 0; i < c->snmp.n_devices; i++) {
        if (strcmp(c->snmp.devices[i].name, name) == 0) {
            return &c->snmp.devices[i];
        }
    }
    fail_msg("no device %s", name);
    return NULL;
}

/* Lines 4 to 22. */
#define CREDS                                                                                      \
    "credentials:\n"                                                                               \
    "  - name: ro\n"                                                                               \
    "    community: campus-s3cret\n"                                                               \
    "  - name: old\n"                                                                              \
    "    version: 1\n"                                                                             \
    "    community: old-s3cret\n"                                                                  \
    "  - name: core\n"                                                                             \
    "    user: kaaval\n"                                                                           \
    "    auth_protocol: sha-256\n"                                                                 \
    "    auth_password: auth-s3cret\n"                                                             \
    "    priv_protocol: AES\n"                                                                     \
    "    priv_password: priv-s3cret\n"                                                             \
    "    context: vrf-a\n"                                                                         \
    "  - name: an\n"                                                                               \
    "    user: mon\n"                                                                              \
    "    auth_protocol: SHA\n"                                                                     \
    "    auth_password: auth-s3cret\n"                                                             \
    "  - name: na\n"                                                                               \
    "    user: guest\n"

static void test_credential_sets(void **state)
{
    KVL_UNUSED(state);
    kvl_agent_cfg_t *c = parse_ok(HEAD CREDS);
    assert_int_equal(c->snmp.n_credentials, 5);
    const kvl_credentials_t *k = &c->snmp.credentials[0];
    assert_string_equal(k->name, "ro");
    assert_int_equal(k->version, KVL_SNMP_V2C);
    assert_string_equal(k->community, "campus-s3cret");
    k = &c->snmp.credentials[1];
    assert_int_equal(k->version, KVL_SNMP_V1);
    k = &c->snmp.credentials[2];
    assert_int_equal(k->version, KVL_SNMP_V3);
    assert_string_equal(k->user, "kaaval");
    assert_int_equal(k->level, KVL_USM_AUTHPRIV);
    assert_int_equal(k->auth_protocol, KVL_USM_AUTH_SHA256);
    assert_string_equal(k->auth_password, "auth-s3cret");
    assert_int_equal(k->priv_protocol, KVL_USM_PRIV_AES128);
    assert_string_equal(k->priv_password, "priv-s3cret");
    assert_string_equal(k->context, "vrf-a");
    assert_null(k->community);
    k = &c->snmp.credentials[3];
    assert_int_equal(k->level, KVL_USM_AUTHNOPRIV);
    assert_int_equal(k->auth_protocol, KVL_USM_AUTH_SHA1);
    assert_int_equal(k->priv_protocol, KVL_USM_PRIV_NONE);
    assert_string_equal(k->context, "");
    k = &c->snmp.credentials[4];
    assert_int_equal(k->level, KVL_USM_NOAUTH);
    assert_int_equal(k->auth_protocol, KVL_USM_AUTH_NONE);
    kvl_agent_cfg_free(c);

    /* Every protocol name, canonical and alternative spellings. */
    static const struct {
        const char *name;
        int value;
    } auths[] = {{"MD5", KVL_USM_AUTH_MD5},
                 {"SHA-1", KVL_USM_AUTH_SHA1},
                 {"SHA224", KVL_USM_AUTH_SHA224},
                 {"SHA-384", KVL_USM_AUTH_SHA384},
                 {"sha-512", KVL_USM_AUTH_SHA512}},
      privs[] = {{"DES", KVL_USM_PRIV_DES},           {"AES-128", KVL_USM_PRIV_AES128},
                 {"AES-192", KVL_USM_PRIV_AES192},    {"aes256", KVL_USM_PRIV_AES256},
                 {"AES-192-C", KVL_USM_PRIV_AES192C}, {"AES-256-C", KVL_USM_PRIV_AES256C}};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(auths); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 HEAD "credentials:\n  - {name: x, user: u, auth_protocol: %s, auth_password: "
                      "12345678, priv_protocol: %s, priv_password: abcdefgh}\n",
                 auths[i].name, privs[i].name);
        c = parse_ok(text);
        assert_int_equal(c->snmp.credentials[0].auth_protocol, auths[i].value);
        assert_int_equal(c->snmp.credentials[0].priv_protocol, privs[i].value);
        assert_string_equal(kvl_usm_level_name(c->snmp.credentials[0].level), "authPriv");
        kvl_agent_cfg_free(c);
    }
    c = parse_ok(HEAD "credentials:\n  - {name: x, user: u, auth_protocol: md5, auth_password: "
                      "12345678, priv_protocol: AES-256-C, priv_password: abcdefgh}\n");
    assert_int_equal(c->snmp.credentials[0].priv_protocol, KVL_USM_PRIV_AES256C);
    assert_string_equal(kvl_usm_priv_name(c->snmp.credentials[0].priv_protocol), "AES-256-C");
    assert_string_equal(kvl_usm_auth_name(c->snmp.credentials[0].auth_protocol), "MD5");
    kvl_agent_cfg_free(c);
}

static void test_references_and_precedence(void **state)
{
    KVL_UNUSED(state);
    kvl_agent_cfg_t *c =
        parse_ok(HEAD CREDS "max_inflight: 64\n"
                            "defaults:\n"
                            "  credentials: ro\n"
                            "  rediscover: 30m\n"
                            "devices:\n"
                            "  - {name: d-default, address: 10.0.0.1}\n"
                            "  - {name: d-v3, address: 10.0.0.2, credentials: core}\n"
                            "  - {name: d-inline, address: 10.0.0.3, community: mine}\n"
                            "  - {name: d-v1, address: 10.0.0.4, version: 1}\n"
                            "groups:\n"
                            "  - name: cores\n"
                            "    credentials: core\n"
                            "    rediscover: 0\n"
                            "    neighbours: false\n"
                            "    retries: 2\n"
                            "    devices:\n"
                            "      - {name: g-1, address: 10.1.0.1}\n"
                            "      - {name: g-2, address: 10.1.0.2, credentials: old}\n"
                            "      - {name: g-3, address: 10.1.0.3, retries: 0, neighbours: yes}\n"
                            "  - name: cpes\n"
                            "    version: 1\n"
                            "    community: cpe\n"
                            "    devices: [{name: c-1, address: 10.2.0.1}]\n");
    assert_int_equal(c->snmp.max_inflight, 64);
    assert_int_equal(c->snmp.n_devices, 8);

    const kvl_device_cfg_t *d = dev(c, "d-default");
    assert_int_equal(d->version, KVL_SNMP_V2C);
    assert_string_equal(d->community, "campus-s3cret");
    assert_ptr_equal(d->credentials, &c->snmp.credentials[0]);
    assert_int_equal(d->rediscover_ms, 1800000);
    assert_true(d->neighbours); /* by default */

    d = dev(c, "d-v3");
    assert_int_equal(d->version, KVL_SNMP_V3);
    assert_string_equal(d->credentials->name, "core");
    assert_string_equal(d->community, "");

    /* Inline community replaces the inherited set; the version stays the built-in 2c. */
    d = dev(c, "d-inline");
    assert_null(d->credentials);
    assert_int_equal(d->version, KVL_SNMP_V2C);
    assert_string_equal(d->community, "mine");

    /* Inline version alone: the inherited set is replaced, the community is the default. */
    d = dev(c, "d-v1");
    assert_null(d->credentials);
    assert_int_equal(d->version, KVL_SNMP_V1);
    assert_string_equal(d->community, "public");

    d = dev(c, "g-1");
    assert_int_equal(d->version, KVL_SNMP_V3);
    assert_int_equal(d->retries, 2);
    assert_int_equal(d->rediscover_ms, 0);
    assert_false(d->neighbours); /* the group's */
    d = dev(c, "g-2");
    assert_int_equal(d->version, KVL_SNMP_V1);
    assert_string_equal(d->community, "old-s3cret");
    d = dev(c, "g-3");
    assert_int_equal(d->retries, 0);
    assert_true(d->neighbours); /* its own, over the group's */
    assert_string_equal(d->credentials->name, "core");

    d = dev(c, "c-1");
    assert_null(d->credentials);
    assert_int_equal(d->version, KVL_SNMP_V1);
    assert_string_equal(d->community, "cpe");
    assert_int_equal(d->rediscover_ms, 1800000);
    kvl_agent_cfg_free(c);

    /* Built-in defaults of the new settings. */
    c = parse_ok(HEAD "devices: [{name: r, address: a}]\n");
    assert_int_equal(c->snmp.max_inflight, 500);
    assert_int_equal(c->snmp.n_credentials, 0);
    assert_int_equal(c->snmp.devices[0].rediscover_ms, 3600000);
    assert_int_equal(c->snmp.devices[0].ifs.n_include, 0);
    assert_false(c->snmp.devices[0].ifs.skip_admin_down);
    kvl_agent_cfg_free(c);
}

static void test_interface_filters(void **state)
{
    KVL_UNUSED(state);
    kvl_agent_cfg_t *c = parse_ok(HEAD "defaults:\n"
                                       "  interfaces:\n"
                                       "    exclude: ['*.32767', 'lo*']\n"
                                       "    exclude_types: [softwareLoopback, 135]\n"
                                       "devices:\n"
                                       "  - name: a\n"
                                       "    address: x\n"
                                       "  - name: b\n"
                                       "    address: x\n"
                                       "    interfaces:\n"
                                       "      include: ge-*\n"
                                       "      include_types: [ethernetCsmacd, IEEE8023ADLAG, 53]\n"
                                       "      skip_admin_down: yes\n"
                                       "  - name: c\n"
                                       "    address: x\n"
                                       "    interfaces: {exclude: [], exclude_types: tunnel}\n");
    const kvl_if_filter_t *f = &dev(c, "a")->ifs;
    assert_int_equal(f->n_include, 0);
    assert_int_equal(f->n_exclude, 2);
    assert_string_equal(f->exclude[0], "*.32767");
    assert_string_equal(f->exclude[1], "lo*");
    assert_int_equal(f->n_exclude_types, 2);
    assert_int_equal(f->exclude_types[0], 24);
    assert_int_equal(f->exclude_types[1], 135);
    assert_false(f->skip_admin_down);

    /* Each key inherited on its own. */
    f = &dev(c, "b")->ifs;
    assert_int_equal(f->n_include, 1);
    assert_string_equal(f->include[0], "ge-*");
    assert_int_equal(f->n_include_types, 3);
    assert_int_equal(f->include_types[0], 6);
    assert_int_equal(f->include_types[1], 161);
    assert_int_equal(f->include_types[2], 53);
    assert_int_equal(f->n_exclude, 2);
    assert_int_equal(f->n_exclude_types, 2);
    assert_true(f->skip_admin_down);

    f = &dev(c, "c")->ifs;
    assert_int_equal(f->n_exclude, 0);
    assert_int_equal(f->n_exclude_types, 1);
    assert_int_equal(f->exclude_types[0], 131);
    kvl_agent_cfg_free(c);

    assert_string_equal(kvl_iftype_name(161), "ieee8023adLag");
    assert_null(kvl_iftype_name(4242));
}

static void test_credential_errors(void **state)
{
    KVL_UNUSED(state);
    /* An unknown set, at the reference. */
    expect_error(HEAD CREDS "devices:\n"             /* 23 */
                            "  - name: r1\n"         /* 24 */
                            "    address: a\n"       /* 25 */
                            "    credentials: rw\n", /* 26 */
                 "a.yaml:26:18: ",
                 "unknown credentials 'rw'; defined under `credentials:` are: "
                 "ro, old, core, an, na");
    expect_error(HEAD "defaults: {credentials: x}\n",
                 "a.yaml:4:25: ", "no credentials are defined");
    expect_error(HEAD CREDS "groups:\n"                /* 23 */
                            "  - name: g\n"            /* 24 */
                            "    credentials: [ro]\n", /* 25 */
                 "a.yaml:25:18: ", "expected the name of a credentials set, got a list");
    /* Both ways on one entry: at `credentials`. */
    expect_error(HEAD CREDS "devices:\n"
                            "  - name: r1\n"
                            "    address: a\n"
                            "    community: x\n"
                            "    credentials: ro\n", /* 27 */
                 "a.yaml:27:18: ", "either `credentials` or version/community");
    expect_error(HEAD CREDS "defaults:\n"
                            "  credentials: ro\n" /* 24 */
                            "  version: 1\n",
                 "a.yaml:24:16: ", "not both");

    /* Inside sets. */
    expect_error(HEAD "credentials:\n"
                      "  - name: x\n" /* 5 */
                      "    user: u\n"
                      "    auth_protocol: SHA\n"
                      "    auth_password: s3cret\n", /* 8 */
                 "a.yaml:8:20: ",
                 "auth_password of credentials 'x' is too short: SNMPv3 (RFC "
                 "3414) needs at least 8 characters");
    expect_error(HEAD "credentials:\n"
                      "  - name: x\n"
                      "    user: u\n"
                      "    auth_protocol: SHA\n"
                      "    auth_password: long-s3cret\n"
                      "    priv_protocol: DES\n"
                      "    priv_password: s3cret7\n", /* 10 */
                 "a.yaml:10:20: ", "priv_password of credentials 'x' is too short");
    expect_error(HEAD "credentials:\n"
                      "  - name: x\n" /* 5 */
                      "    user: u\n"
                      "    level: authPriv\n"
                      "    auth_protocol: SHA\n"
                      "    auth_password: long-s3cret\n",
                 "a.yaml:5:5: ", "missing required setting 'priv_protocol' for level authPriv");
    expect_error(HEAD "credentials:\n"
                      "  - name: x\n" /* 5 */
                      "    user: u\n"
                      "    auth_password: long-s3cret\n",
                 "a.yaml:5:5: ", "missing required setting 'auth_protocol' for level authNoPriv");
    expect_error(HEAD "credentials:\n"
                      "  - name: x\n"
                      "    user: u\n"
                      "    level: noAuthNoPriv\n"
                      "    auth_protocol: SHA\n", /* 8 */
                 "a.yaml:8:20: ", "'auth_protocol' is not used at level noAuthNoPriv");
    expect_error(HEAD "credentials:\n"
                      "  - name: x\n"
                      "    user: u\n"
                      "    auth_protocol: SHA-3\n", /* 7 */
                 "a.yaml:7:20: ",
                 "expected an authentication protocol: one of MD5, SHA, SHA-224, "
                 "SHA-256, SHA-384, SHA-512, got 'SHA-3'");
    expect_error(HEAD "credentials:\n"
                      "  - name: x\n"
                      "    user: u\n"
                      "    priv_protocol: 3DES\n", /* 7 */
                 "a.yaml:7:20: ", "one of DES, AES, AES-192, AES-256, AES-192-C, AES-256-C");
    expect_error(HEAD "credentials:\n"
                      "  - name: x\n"
                      "    user: u\n"
                      "    level: authpriv2\n", /* 7 */
                 "a.yaml:7:12: ", "expected a security level");
    expect_error(HEAD "credentials:\n"
                      "  - name: x\n"
                      "    community: c-s3cret\n"
                      "    user: u\n", /* 7 */
                 "a.yaml:6:16: ", "'community' is not used by SNMPv3 credentials 'x'");
    expect_error(HEAD "credentials:\n"
                      "  - name: x\n"
                      "    version: 2c\n"
                      "    community: c-s3cret\n"
                      "    context: c\n", /* 8 */
                 "a.yaml:8:14: ",
                 "'context' is an SNMPv3 setting, but credentials 'x' are "
                 "version 2c");
    expect_error(HEAD "credentials:\n  - name: x\n    version: 1\n", /* 5 */
                 "a.yaml:5:5: ", "missing required setting 'community' for version 1");
    expect_error(HEAD "credentials:\n  - name: x\n    version: 3\n",
                 "a.yaml:5:5: ", "missing required setting 'user' for SNMPv3");
    expect_error(HEAD "credentials:\n  - {name: x, version: 4}\n",
                 "a.yaml:5:24: ", "expected an SNMP version: one of 1, 2c, 3, got '4'");
    expect_error(HEAD "credentials:\n  - {name: x, user: ''}\n",
                 "a.yaml:5:21: ", "the SNMPv3 user must not be empty");
    expect_error(HEAD "credentials:\n  - {name: '', user: u}\n",
                 "a.yaml:5:12: ", "a credentials name must not be empty");
    expect_error(HEAD "credentials:\n  - {name: x, user: u}\n  - {name: x, user: v}\n",
                 "a.yaml:6:12: ", "credentials name 'x' is used twice");
    expect_error(HEAD "credentials:\n  - {name: x, user: u, password: p}\n",
                 "a.yaml:5:24: ", "unknown setting 'password'");
    expect_error(HEAD "credentials:\n  x: {user: u}\n",
                 "a.yaml:5:3: ", "expected a list of credential sets");
    /* Inline v3 gets a pointer to the way it is done. */
    expect_error(HEAD "devices:\n  - name: r1\n    address: a\n    version: 3\n", "a.yaml:7:14: ",
                 "expected one of 1, 2c, got '3' (SNMPv3 is set up with a named "
                 "set under `credentials:`");
}

static void test_group_and_filter_errors(void **state)
{
    KVL_UNUSED(state);
    expect_error(HEAD "groups:\n  - name: g\n",
                 "a.yaml:5:5: ", "missing required setting 'devices'");
    expect_error(HEAD "groups:\n  - devices: []\n",
                 "a.yaml:5:5: ", "missing required setting 'name'");
    expect_error(HEAD "groups:\n  - {name: g, devices: {name: a}}\n",
                 "a.yaml:5:24: ", "expected a list of devices for group 'g'");
    expect_error(HEAD "groups:\n  - {name: g, devices: [], address: a}\n",
                 "a.yaml:5:28: ", "unknown setting 'address'");
    expect_error(HEAD "groups:\n  - {name: g, devices: []}\n  - {name: g, devices: []}\n",
                 "a.yaml:6:12: ", "group name 'g' is used twice");
    expect_error(HEAD "groups: {name: g}\n", "a.yaml:4:9: ", "expected a list of groups");
    /* Device names are unique across the top-level list and every group. */
    expect_error(HEAD "devices:\n"
                      "  - {name: r1, address: a}\n"
                      "groups:\n"
                      "  - name: g\n"
                      "    devices:\n"
                      "      - {name: r1, address: b}\n", /* 9 */
                 "a.yaml:9:16: ", "device name 'r1' is used twice");
    /* The timing rule with the group's timeout, at the device. */
    expect_error(HEAD "groups:\n"
                      "  - name: g\n"
                      "    timeout: 30s\n"
                      "    devices:\n"
                      "      - {name: r1, address: b}\n", /* 8 */
                 "a.yaml:8:9: ", "(30000ms x 2 >= 60000ms)");

    expect_error(HEAD "defaults:\n  interfaces:\n    exclude_types: [loopback]\n", /* 6 */
                 "a.yaml:6:21: ",
                 "expected an ifType number (1 or more) or one of: other, "
                 "ethernetCsmacd");
    expect_error(HEAD "defaults:\n  interfaces:\n    include_types: 0\n",
                 "a.yaml:6:20: ", "got '0'");
    expect_error(HEAD "defaults:\n  interfaces:\n    include: ['ge-*', '']\n",
                 "a.yaml:6:23: ", "an interface name pattern must not be empty");
    expect_error(HEAD "defaults:\n  interfaces:\n    include: {a: b}\n",
                 "a.yaml:6:14: ", "expected a pattern or a list of patterns");
    expect_error(HEAD "defaults:\n  interfaces:\n    skip_admin_down: maybe\n",
                 "a.yaml:6:22: ", "expected true or false, got 'maybe'");
    expect_error(HEAD "defaults:\n  interfaces:\n    skip_down: true\n", "a.yaml:6:5: ",
                 "unknown setting 'skip_down'; expected one of: include, exclude, include_types, "
                 "exclude_types, skip_admin_down");
    expect_error(HEAD "defaults:\n  interfaces: [a]\n",
                 "a.yaml:5:15: ", "expected a mapping of settings");

    expect_error(HEAD "max_inflight: 0\n", "a.yaml:4:15: ", "from 1 to 100000, got '0'");
    expect_error(HEAD "defaults:\n  rediscover: 31d\n", "a.yaml:5:15: ", "out of range");
    expect_error(HEAD "defaults:\n  rediscover: often\n", "a.yaml:5:15: ", "expected a duration");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_credential_sets),
        cmocka_unit_test(test_references_and_precedence),
        cmocka_unit_test(test_interface_filters),
        cmocka_unit_test(test_credential_errors),
        cmocka_unit_test(test_group_and_filter_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
