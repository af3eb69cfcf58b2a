/*
 * test_sites_config.c — unit tests for the site tree (collector/board/sites_config.h):
 * a good list with parents, kinds, labels and uplinks; uplinks in both forms with the map's
 * x/y hints, and every uplink refusal (a root, half an uplink, no device nor probe, a bad
 * name, a hint out of range); the file form (relative to
 * collector.yaml); and every refusal at the offending node's file:line:column: a bad kind,
 * a duplicate, an unknown parent, a cycle, the reserved name, a name that is not
 * file-safe, a missing file, and a mistake inside a sites file.
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
#include "sites_config.h"

static kvl_sites_cfg_t *ok(const char *text)
{
    char err[1024] = "";
    kvl_sites_cfg_t *c = kvl_sites_cfg_parse_text("s.yaml", text, err, sizeof(err));
    if (c == NULL) {
        fail_msg("unexpected error: %s", err);
    }
    return c;
}

static void bad(const char *text, const char *want)
{
    char err[1024] = "";
    kvl_sites_cfg_t *c = kvl_sites_cfg_parse_text("s.yaml", text, err, sizeof(err));
    if (c != NULL) {
        kvl_sites_cfg_free(c);
        fail_msg("accepted, expected: %s", want);
    }
    if (strstr(err, want) == NULL) {
        fail_msg("error '%s' lacks '%s'", err, want);
    }
}

static void test_tree(void **state)
{
    KVL_UNUSED(state);
    kvl_sites_cfg_t *c = ok("- {name: noc, kind: noc, label: State NOC}\n"
                            "- name: dhq-kollam\n"
                            "  parent: noc\n"
                            "  kind: dhq\n"
                            "  uplink: {device: kollam-rtr1, interface: Gi0/1}\n"
                            "- {name: bhq-1, parent: dhq-kollam, kind: bhq}\n"
                            "- {name: pop-1, parent: bhq-1, kind: minipop}\n"
                            "- {name: lsgi-1, parent: bhq-1, kind: lsgi}\n"
                            "- {name: sdc, kind: sdc}\n");
    assert_int_equal(c->n, 6);
    assert_string_equal(c->v[0].name, "noc");
    assert_string_equal(c->v[0].label, "State NOC");
    assert_int_equal(c->v[0].kind, KVL_SITE_NOC);
    assert_true(c->v[0].parent == KVL_SITE_NONE);
    assert_int_equal(c->v[1].parent, 0);
    assert_int_equal(c->v[1].kind, KVL_SITE_DHQ);
    assert_string_equal(c->v[1].uplink_device, "kollam-rtr1");
    assert_string_equal(c->v[1].uplink_interface, "Gi0/1");
    assert_null(c->v[1].label);
    assert_int_equal(c->v[2].parent, 1);
    assert_int_equal(c->v[3].parent, 2);
    assert_int_equal(c->v[3].kind, KVL_SITE_MINIPOP);
    assert_int_equal(c->v[4].kind, KVL_SITE_LSGI);
    assert_true(c->v[5].parent == KVL_SITE_NONE);
    assert_int_equal(c->v[5].kind, KVL_SITE_SDC);
    assert_int_equal(kvl_sites_find(c, "bhq-1"), 2);
    assert_true(kvl_sites_find(c, "nope") == KVL_SITE_NONE);
    assert_string_equal(kvl_site_kind_name(KVL_SITE_LSGI), "lsgi");
    kvl_sites_cfg_free(c);
    /* a parent given after its child is fine */
    c = ok("- {name: b, parent: a, kind: bhq}\n- {name: a, kind: dhq}\n");
    assert_int_equal(c->v[0].parent, 1);
    kvl_sites_cfg_free(c);
    c = ok("[]\n");
    assert_int_equal(c->n, 0);
    kvl_sites_cfg_free(c);
}

static void test_errors(void **state)
{
    KVL_UNUSED(state);
    bad("- {name: a, kind: castle}\n", "s.yaml:1:19: ");
    bad("- {name: a, kind: noc}\n- {name: a, kind: dhq}\n",
        "s.yaml:2:10: site 'a' is named twice (first at s.yaml:1:3)");
    bad("- {name: a, kind: noc}\n- {name: b, kind: dhq, parent: x}\n",
        "s.yaml:2:32: parent 'x' of site 'b' is not a site of the list");
    bad("- {name: a, kind: noc, parent: c}\n- {name: b, kind: dhq, parent: a}\n"
        "- {name: c, kind: dhq, parent: b}\n",
        "s.yaml:1:32: site 'a' is its own ancestor");
    bad("- {name: a, kind: noc, parent: a}\n", "s.yaml:1:32: site 'a' is its own ancestor");
    bad("- {name: unplaced, kind: noc}\n", "s.yaml:1:10: the site name 'unplaced' is reserved");
    char longname[400];
    snprintf(longname, sizeof(longname), "- {name: %0201d, kind: noc}\n", 7);
    bad(longname, "s.yaml:1:10: site is longer than 200 bytes");
    bad("- {name: a}\n", "s.yaml:1:3: ");                      /* kind is required */
    bad("- {kind: noc}\n", "s.yaml:1:3: ");                    /* name is required */
    bad("- {name: a, kind: noc, colour: red}\n", "s.yaml:1:"); /* an unknown key */
    bad("- {name: a, kind: noc}\n- {name: b, kind: dhq, parent: a, uplink: r1}\n",
        "s.yaml:2:43: expected a mapping");
    bad("- {name: a, kind: noc}\n- {name: b, kind: dhq, parent: a, uplink: {interface: x}}\n",
        "s.yaml:2:43: the uplink of site 'b' names an interface without its device");
    bad("name: a\n", "s.yaml:1:1: expected a list of sites or {file: path} alone");
    bad("- a\n", "s.yaml:1:3: expected a site");
    bad("{file: /nonexistent/sites.yaml}\n", "s.yaml:1:8: sites file: /nonexistent/sites.yaml");
}

static void test_uplink(void **state)
{
    KVL_UNUSED(state);
    kvl_sites_cfg_t *c =
        ok("- {name: noc, kind: noc, x: 50, y: 0}\n"
           "- name: dhq-1\n"
           "  parent: noc\n"
           "  kind: dhq\n"
           "  uplink: {agent: ag-1, device: rtr1, interface: Gi0/1, probe: noc-gw}\n"
           "- {name: dhq-2, parent: noc, kind: dhq, uplink: [ag-2, rtr2, \"ge-0/0/1.0\"]}\n"
           "- {name: bhq-1, parent: dhq-1, kind: bhq, uplink: {probe: dhq-1-gw}}\n"
           "- {name: bhq-2, parent: dhq-1, kind: bhq, uplink: {device: sw, interface: "
           "p1}, x: 100}\n");
    assert_int_equal(c->n, 5);
    assert_int_equal(c->v[0].x, 50);
    assert_int_equal(c->v[0].y, 0);
    assert_null(c->v[0].uplink_device);
    assert_string_equal(c->v[1].uplink_agent, "ag-1");
    assert_string_equal(c->v[1].uplink_device, "rtr1");
    assert_string_equal(c->v[1].uplink_interface, "Gi0/1");
    assert_string_equal(c->v[1].uplink_probe, "noc-gw");
    assert_int_equal(c->v[1].x, -1);
    assert_int_equal(c->v[1].y, -1);
    assert_string_equal(c->v[2].uplink_agent, "ag-2");
    assert_string_equal(c->v[2].uplink_device, "rtr2");
    assert_string_equal(c->v[2].uplink_interface, "ge-0/0/1.0");
    assert_null(c->v[2].uplink_probe);
    assert_null(c->v[3].uplink_device);
    assert_null(c->v[3].uplink_agent);
    assert_string_equal(c->v[3].uplink_probe, "dhq-1-gw");
    assert_null(c->v[4].uplink_agent);
    assert_string_equal(c->v[4].uplink_interface, "p1");
    assert_int_equal(c->v[4].x, 100);
    assert_int_equal(c->v[4].y, -1);
    kvl_sites_cfg_free(c);

    const char *a = "- {name: a, kind: noc}\n";
    char t[600];
    /* a root has no uplink: it leads nowhere */
    bad("- {name: a, kind: noc, uplink: {device: r, interface: i}}\n",
        "s.yaml:1:32: site 'a' has no parent: an uplink leads to the parent site");
    snprintf(t, sizeof(t), "%s- {name: b, kind: dhq, parent: a, uplink: {device: r}}\n", a);
    bad(t, "s.yaml:2:43: the uplink of site 'b' names a device without its interface");
    snprintf(t, sizeof(t), "%s- {name: b, kind: dhq, parent: a, uplink: {agent: g}}\n", a);
    bad(t, "s.yaml:2:43: the uplink of site 'b' names neither a device and interface nor a "
           "probe target");
    snprintf(t, sizeof(t), "%s- {name: b, kind: dhq, parent: a, uplink: [g, r]}\n", a);
    bad(t, "s.yaml:2:43: expected [agent, device, interface] (three names)");
    snprintf(t, sizeof(t), "%s- {name: b, kind: dhq, parent: a, uplink: [g, [r], i]}\n", a);
    bad(t, "s.yaml:2:");
    snprintf(t, sizeof(t), "%s- {name: b, kind: dhq, parent: a, uplink: {device: r, port: 1}}\n",
             a);
    bad(t, "s.yaml:2:"); /* an unknown key */
    snprintf(t, sizeof(t), "%s- {name: b, kind: dhq, parent: a, uplink: {probe: \"\"}}\n", a);
    bad(t, "s.yaml:2:43: uplink: the probe target name is empty");
    snprintf(t, sizeof(t), "%s- {name: b, kind: dhq, parent: a, x: 101}\n", a);
    bad(t, "s.yaml:2:38: expected a whole number from 0 to 100");
    snprintf(t, sizeof(t), "%s- {name: b, kind: dhq, parent: a, y: -3}\n", a);
    bad(t, "s.yaml:2:38: expected a whole number from 0 to 100");
    char agent[300], text[800];
    memset(agent, 'g', 201);
    agent[201] = '\0';
    snprintf(text, sizeof(text), "%s- {name: b, kind: dhq, parent: a, uplink: [%s, r, i]}\n", a,
             agent);
    bad(text, "s.yaml:2:43: an agent id is at most 200 bytes");
    /* an uplink on a site whose parent is not in the tree: the parent is the error */
    bad("- {name: b, kind: dhq, parent: zz, uplink: {probe: p}}\n",
        "s.yaml:1:32: parent 'zz' of site 'b' is not a site of the list");
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* `sites: {file: ...}` in collector.yaml, relative to its folder; a mistake in the sites
 * file names both places. */
static void test_file(void **state)
{
    KVL_UNUSED(state);
    char dir[] = "/tmp/kvl-test-sites-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[300], q[300], err[2048];
    snprintf(p, sizeof(p), "%s/sites.yaml", dir);
    write_file(p, "# the tree\n- {name: noc, kind: noc}\n- {name: d1, parent: noc, kind: dhq}\n");
    snprintf(q, sizeof(q), "%s/collector.yaml", dir);
    write_file(q, "listen: 127.0.0.1:5140\ndata_dir: /tmp\ninsecure: true\n"
                  "sites: {file: sites.yaml}\n");
    kvl_collector_cfg_t *c = kvl_collector_cfg_load(q, err, sizeof(err));
    if (c == NULL) {
        fail_msg("%s", err);
    }
    assert_non_null(c->sites);
    assert_int_equal(c->sites->n, 2);
    assert_string_equal(c->sites->file, p);
    assert_int_equal(c->sites->v[1].parent, 0);
    kvl_collector_cfg_free(c);

    write_file(p, "- {name: noc, kind: noc}\n- {name: d1, parent: nowhere, kind: dhq}\n");
    assert_null(kvl_collector_cfg_load(q, err, sizeof(err)));
    char want[700];
    snprintf(want, sizeof(want), "%s:4:15: sites file: %s:2:22: parent 'nowhere'", q, p);
    if (strstr(err, want) == NULL) {
        fail_msg("error '%s' lacks '%s'", err, want);
    }
    /* in collector.yaml itself */
    write_file(q, "listen: 127.0.0.1:5140\ndata_dir: /tmp\ninsecure: true\n"
                  "sites:\n  - {name: a, kind: noc}\n  - {name: b, kind: nope}\n");
    assert_null(kvl_collector_cfg_load(q, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s:6:21: ", q);
    if (strstr(err, want) == NULL) {
        fail_msg("error '%s' lacks '%s'", err, want);
    }
    unlink(p);
    unlink(q);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_uplink),
        cmocka_unit_test(test_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
