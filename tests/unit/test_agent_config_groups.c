/*
 * test_agent_config_groups.c — metric groups in agent.yaml (agent/agent_config.c) and MIB
 * names resolved with net-snmp's parser (agent/snmp/snmp_mib.c).
 *
 * The MIB folders are tests/mibs/base (stand-ins for the IETF base modules) and
 * tests/mibs/groups (KAAVAL-TEST-MIB, the tests' own module), found from this file's path;
 * the project's mibs/ (KAAVAL-MIB) is the agent's own folder, found without configuration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent_config.h"
#include "kvl.h"
#include "snmp_mib.h"

#define HEAD "id: a1\nsite: tvm-north\ncollector: 127.0.0.1:5140\n"

static char tests_dir[4096]; /* .../tests */

static void find_tests_dir(void)
{
    snprintf(tests_dir, sizeof(tests_dir), "%s", __FILE__);
    char *p = strstr(tests_dir, "/unit/test_agent_config_groups.c");
    assert_non_null(p);
    *p = '\0';
}

/* HEAD + a mib_path line naming the tests' MIB folders + text. */
static char *with_mibs(const char *text)
{
    static char buf[16384];
    snprintf(buf, sizeof(buf), HEAD "mib_path: [%s/mibs/base, %s/mibs/groups]\n%s", tests_dir,
             tests_dir, text);
    return buf;
}

/* Every text gets `insecure: true` after its last line (the uplink's transport is not
 * what these tests are about), so the line numbers of errors stay those of the text. */
static kvl_agent_cfg_t *parse_text(const char *text, char *err, size_t errlen)
{
    static char buf[20000];
    snprintf(buf, sizeof(buf), "%sinsecure: true\n", text);
    return kvl_agent_cfg_parse("a.yaml", buf, err, errlen);
}

static kvl_agent_cfg_t *parse_ok(const char *text)
{
    char err[1024] = "";
    kvl_agent_cfg_t *c = parse_text(text, err, sizeof(err));
    if (c == NULL) {
        fail_msg("unexpected error: %s", err);
    }
    return c;
}

static void expect_error_at(const char *text, const char *where, const char *what, int line)
{
    char err[1024] = "";
    kvl_agent_cfg_t *c = parse_text(text, err, sizeof(err));
    if (c != NULL) {
        kvl_agent_cfg_free(c);
        fail_msg("line %d: expected an error", line);
    }
    if (strncmp(err, where, strlen(where)) != 0 || strstr(err, what) == NULL) {
        fail_msg("line %d: expected '%s...%s', got '%s'", line, where, what, err);
    }
}
#define expect_error(text, where, what) expect_error_at((text), (where), (what), __LINE__)

static void assert_oid(const kvl_mg_oid_t *o, const char *want)
{
    char got[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < o->len; i++) {
        used += (size_t)snprintf(got + used, sizeof(got) - used, ".%u", (unsigned)o->sub[i]);
    }
    assert_string_equal(got, want);
}

static const kvl_mg_metric_t *metric(const kvl_metric_group_t *g, const char *name)
{
    for (size_t i = 0; i < g->n_metrics; i++) {
        if (strcmp(g->metrics[i].name, name) == 0) {
            return &g->metrics[i];
        }
    }
    fail_msg("no metric %s in %s", name, g->name);
    return NULL;
}

static void test_builtins(void **state)
{
    (void)state;
    kvl_agent_cfg_t *c = parse_ok(HEAD "defaults: {metric_groups: [ucd]}\n"
                                       "devices:\n"
                                       "  - {name: s1, address: 10.0.0.1, metric_groups: "
                                       "[host-resources, ucd, hr-cpu]}\n"
                                       "  - {name: s2, address: 10.0.0.2}\n"
                                       "  - {name: s3, address: 10.0.0.3, metric_groups: []}\n");
    const kvl_device_cfg_t *d = &c->snmp.devices[0];
    assert_int_equal(d->n_mgroups, 4); /* host-resources = hr-cpu, hr-storage, hr-system */
    assert_string_equal(d->mgroups[0]->name, "hr-cpu");
    assert_string_equal(d->mgroups[1]->name, "hr-storage");
    assert_string_equal(d->mgroups[2]->name, "hr-system");
    assert_string_equal(d->mgroups[3]->name, "ucd");
    assert_int_equal(c->snmp.devices[1].n_mgroups, 1);
    assert_string_equal(c->snmp.devices[1].mgroups[0]->name, "ucd");
    assert_int_equal(c->snmp.devices[2].n_mgroups, 0);

    const kvl_metric_group_t *ucd = d->mgroups[3];
    assert_false(ucd->table);
    assert_int_equal(ucd->n_metrics, 13);
    assert_string_equal(ucd->family.name, "ucd");
    assert_int_equal(ucd->family.n, 13);
    const kvl_mg_metric_t *m = metric(ucd, "mem_total_bytes");
    assert_oid(&m->oid, ".1.3.6.1.4.1.2021.4.5.0");
    assert_true(m->scale == 1024);
    assert_false(m->real);
    m = metric(ucd, "load15");
    assert_oid(&m->oid, ".1.3.6.1.4.1.2021.10.1.5.3");
    assert_true(m->real);
    assert_int_equal(metric(ucd, "cpu_wait")->kind, KVL_KIND_COUNTER);

    const kvl_metric_group_t *st = d->mgroups[1];
    assert_true(st->table);
    assert_oid(&st->cols[st->instance_col], ".1.3.6.1.2.1.25.2.3.1.3");
    m = metric(st, "used_bytes");
    assert_oid(&st->cols[m->col], ".1.3.6.1.2.1.25.2.3.1.6");
    assert_oid(&st->cols[m->scale_by], ".1.3.6.1.2.1.25.2.3.1.4");
    assert_int_equal(st->n_labels, 1);
    assert_string_equal(st->labels[0].name, "type");
    kvl_agent_cfg_free(c);
}

static void test_user_numeric(void **state)
{
    (void)state;
    kvl_agent_cfg_t *c =
        parse_ok(HEAD "metric_groups:\n"
                      "  - name: ups\n"
                      "    table: .1.3.6.1.2.1.33.1.3.3.1\n"
                      "    instance: .1.3.6.1.2.1.33.1.3.3.1.1\n"
                      "    labels: [{name: phase, oid: .1.3.6.1.2.1.33.1.3.3.1.9}]\n"
                      "    metrics:\n"
                      "      - {name: voltage, oid: .1.3.6.1.2.1.33.1.3.3.1.3}\n"
                      "      - {name: frames, oid: .1.3.6.1.2.1.33.1.3.3.1.2, kind: "
                      "counter, scale: 0.1}\n"
                      "  - name: temps\n"
                      "    metrics:\n"
                      "      - {name: t1, oid: 1.3.6.1.4.1.9.9.13.1.3.1.3.1, real: "
                      "true}\n"
                      "devices:\n"
                      "  - {name: u1, address: 10.0.0.1, metric_groups: temps}\n"
                      "groups:\n"
                      "  - name: g\n"
                      "    metric_groups: [ups, temps]\n"
                      "    devices: [{name: u2, address: 10.0.0.2}]\n");
    assert_int_equal(c->snmp.devices[0].n_mgroups, 1);
    const kvl_metric_group_t *t = c->snmp.devices[0].mgroups[0];
    assert_oid(&t->metrics[0].oid, ".1.3.6.1.4.1.9.9.13.1.3.1.3.1"); /* numeric: as written */
    assert_true(t->metrics[0].real);
    assert_int_equal(t->metrics[0].kind, KVL_KIND_GAUGE);
    assert_int_equal(c->snmp.devices[1].n_mgroups, 2);
    const kvl_metric_group_t *u = c->snmp.devices[1].mgroups[0];
    assert_string_equal(u->name, "ups");
    assert_true(u->table);
    assert_int_equal(u->n_cols, 4); /* instance, label, two metrics */
    assert_int_equal(u->metrics[1].kind, KVL_KIND_COUNTER);
    assert_true(u->metrics[1].real);
    assert_false(u->metrics[0].real);
    assert_string_equal(u->family.metrics[1], "frames");
    assert_true(u->family.reals[1]);
    kvl_agent_cfg_free(c);
}

static void test_mib_names(void **state)
{
    (void)state;
    kvl_agent_cfg_t *c = parse_ok(with_mibs("metric_groups:\n"
                                            "  - name: named\n"
                                            "    metrics:\n"
                                            "      - {name: procs, oid: "
                                            "KAAVAL-TEST-MIB::kvtProcessCount}\n"
                                            "      - {name: reqs, oid: "
                                            "KAAVAL-MIB::kaavalAgentSnmpRequests, kind: counter}\n"
                                            "      - {name: procs2, oid: kvtProcessCount.0}\n"
                                            "  - name: disks\n"
                                            "    table: kvtDiskEntry\n"
                                            "    instance: kvtDiskLabel\n"
                                            "    metrics:\n"
                                            "      - {name: used, oid: kvtDiskFilled, scale_by: "
                                            "KAAVAL-TEST-MIB::kvtDiskBlock}\n"));
    const kvl_metric_group_t *g = &c->snmp.metric_groups[c->snmp.n_metric_groups - 2];
    assert_string_equal(g->name, "named");
    assert_oid(&g->metrics[0].oid, ".1.3.6.1.2.1.25.1.6.0"); /* ".0" added to a scalar */
    assert_oid(&g->metrics[1].oid, ".1.3.6.1.4.1.99999.1.1.1.0");
    assert_oid(&g->metrics[2].oid, ".1.3.6.1.2.1.25.1.6.0"); /* instance given: kept */
    g = &c->snmp.metric_groups[c->snmp.n_metric_groups - 1];
    assert_oid(&g->entry, ".1.3.6.1.2.1.25.2.3.1");
    assert_oid(&g->cols[g->instance_col], ".1.3.6.1.2.1.25.2.3.1.3");
    assert_oid(&g->cols[g->metrics[0].col], ".1.3.6.1.2.1.25.2.3.1.6");
    assert_oid(&g->cols[g->metrics[0].scale_by], ".1.3.6.1.2.1.25.2.3.1.4");
    kvl_agent_cfg_free(c);
}

static void test_resolver(void **state)
{
    (void)state;
    char base[4200], groups[4200], err[1024];
    snprintf(base, sizeof(base), "%s/mibs/base", tests_dir);
    snprintf(groups, sizeof(groups), "%s/mibs/groups", tests_dir);
    const char *dirs[] = {base, groups};
    kvl_snmp_oid_t o;
    bool suffixed = true;
    assert_int_equal(
        kvl_snmp_mib_resolve(dirs, 2, ".1.3.6.1.2.1.1.3.0", &o, &suffixed, err, sizeof(err)), 0);
    assert_int_equal(o.len, 9);
    assert_false(suffixed);
    assert_int_equal(kvl_snmp_mib_resolve(dirs, 2, "1.3..6", &o, &suffixed, err, sizeof(err)),
                     KVL_EINVAL);
    assert_int_equal(kvl_snmp_mib_resolve(dirs, 2, "KAAVAL-TEST-MIB::kvtDiskBlocks.7", &o,
                                          &suffixed, err, sizeof(err)),
                     0);
    assert_true(suffixed);
    assert_int_equal(o.len, 12);
    assert_int_equal(o.sub[10], 5);
    assert_int_equal(o.sub[11], 7);
    assert_int_equal(
        kvl_snmp_mib_resolve(dirs, 2, "kvtNoSuchThing", &o, &suffixed, err, sizeof(err)),
        KVL_EINVAL);
    assert_non_null(strstr(err, "kvtNoSuchThing"));
    assert_non_null(strstr(err, groups));
    kvl_snmp_mib_release();
    /* Everything again after a release. */
    assert_int_equal(kvl_snmp_mib_resolve(dirs, 2, "kvtDiskLabel", &o, &suffixed, err, sizeof(err)),
                     0);
    assert_int_equal(o.len, 11);
    kvl_snmp_mib_release();
    kvl_snmp_mib_release();
}

static void test_errors(void **state)
{
    (void)state;
    expect_error(HEAD "devices:\n  - {name: s1, address: 10.0.0.1, metric_groups: [ucd, upz]}\n",
                 "a.yaml:5:56:", "unknown metric group 'upz'; known: host-resources, hr-cpu");
    expect_error(with_mibs("metric_groups:\n"
                           "  - name: x\n"
                           "    metrics:\n"
                           "      - {name: a, oid: KAAVAL-TEST-MIB::kvtNope}\n"),
                 "a.yaml:8:24:", "MIB name 'KAAVAL-TEST-MIB::kvtNope' not found");
    expect_error(with_mibs("metric_groups:\n"
                           "  - name: x\n"
                           "    metrics:\n"
                           "      - {name: a, oid: upsInputVoltage}\n"),
                 "a.yaml:8:24:", "/mibs/groups)");
    expect_error(HEAD "metric_groups:\n"
                      "  - name: x\n"
                      "    metrics:\n"
                      "      - {name: a, oid: .1.3.6.1.4.1.1.1, kind: derive}\n",
                 "a.yaml:7:48:", "gauge, counter");
    expect_error(HEAD "metric_groups:\n"
                      "  - name: x\n"
                      "    metrics:\n"
                      "      - {name: a, oid: .1.3.6.1.4.1.1.1}\n"
                      "      - {name: a, oid: .1.3.6.1.4.1.1.2}\n",
                 "a.yaml:8:16:", "metric name 'a' is used twice in group 'x'");
    expect_error(HEAD "metric_groups:\n"
                      "  - name: x\n"
                      "    metrics:\n"
                      "      - {name: a_very_long_metric_n, oid: .1.3.6.1.4.1.1.1}\n",
                 "a.yaml:7:16:", "expected 1 to 19 characters");
    expect_error(HEAD "metric_groups:\n"
                      "  - name: x\n"
                      "    metrics:\n"
                      "      - {name: Volts, oid: .1.3.6.1.4.1.1.1}\n",
                 "a.yaml:7:16:", "metric name 'Volts'");
    expect_error(HEAD "metric_groups:\n"
                      "  - name: ucd\n"
                      "    metrics: [{name: a, oid: .1.3.6.1.4.1.1.1}]\n",
                 "a.yaml:5:11:", "a built-in group's name");
    expect_error(HEAD "metric_groups:\n"
                      "  - name: host-resources\n"
                      "    metrics: [{name: a, oid: .1.3.6.1.4.1.1.1}]\n",
                 "a.yaml:5:11:", "a built-in group's name");
    expect_error(HEAD "metric_groups:\n"
                      "  - name: t\n"
                      "    metrics: [{name: a, oid: .1.3.6.1.4.1.1.1}]\n"
                      "  - name: t\n"
                      "    metrics: [{name: a, oid: .1.3.6.1.4.1.1.1}]\n",
                 "a.yaml:7:11:", "used twice");
    expect_error(HEAD "metric_groups:\n"
                      "  - name: t\n"
                      "    table: .1.3.6.1.4.1.5.1\n"
                      "    metrics: [{name: a, oid: .1.3.6.1.4.1.6.1.2}]\n",
                 "a.yaml:7:30:", "not a column of the group's table");
    expect_error(HEAD "metric_groups:\n"
                      "  - name: t\n"
                      "    metrics: [{name: a, oid: .1.3.6.1.4.1.6.1.2, scale_by: .1.3.6.1.4}]\n",
                 "a.yaml:6:60:", "scale_by is for table groups only");
    expect_error(HEAD "metric_groups:\n"
                      "  - name: t\n"
                      "    metrics: [{name: a, oid: .1.3.6.1.4.1.6.1.2, scale: -2}]\n",
                 "a.yaml:6:57:", "positive number");
    expect_error(HEAD "metric_groups:\n"
                      "  - name: t\n"
                      "    instance: .1.3.6.1.4.1.6.1.2\n"
                      "    metrics: [{name: a, oid: .1.3.6.1.4.1.6.1.2}]\n",
                 "a.yaml:6:15:", "need a `table`");
}

int main(void)
{
    find_tests_dir();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtins),  cmocka_unit_test(test_user_numeric),
        cmocka_unit_test(test_mib_names), cmocka_unit_test(test_resolver),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
