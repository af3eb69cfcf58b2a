/*
 * test_rules.c — unit tests for the alert rules file (collector/alerts/rules.h).
 *
 * Each condition kind parses into its structure; each kind of mistake fails with the
 * exact "r.yaml:line:column: ..." of the offending node; the built-in rules parse and can
 * be disabled or replaced by name; a folder of files is read in name order and a name
 * defined in two files is refused with both places.
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

#include "kvl.h"
#include "rules.h"

#define M_MS (60 * 1000LL)

static kvl_rules_t *parse_ok(const char *text)
{
    char err[512];
    kvl_rules_t *r = NULL;
    int rc = kvl_rules_parse("r.yaml", text, &r, err, sizeof(err));
    if (rc != 0) {
        fail_msg("unexpected error: %s", err);
    }
    assert_non_null(r);
    return r;
}

/* The error text must start with `want` (file:line:column: and the first words). */
static void parse_bad(const char *text, const char *want)
{
    char err[512];
    kvl_rules_t *r = NULL;
    int rc = kvl_rules_parse("r.yaml", text, &r, err, sizeof(err));
    assert_int_equal(rc, KVL_ECONFIG);
    assert_null(r);
    if (strncmp(err, want, strlen(want)) != 0) {
        fail_msg("expected '%s...', got '%s'", want, err);
    }
}

/* The user's rules only (built-in ones have builtin set). */
static size_t n_builtin(const kvl_rules_t *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->n; i++) {
        n += r->v[i].builtin;
    }
    return n;
}

static void test_defaults(void **state)
{
    (void)state;
    char err[512];
    kvl_rules_t *r = NULL;
    assert_int_equal(kvl_rules_load(NULL, &r, err, sizeof(err)), 0);
    static const char *const names[] = {
        "device_down",        "interface_down", "interface_utilisation",
        "interface_errors",   "link_loss",      "link_down",
        "agent_lost",         "mos_low",        "certificate_expiring",
        "http_probe_failing", "agent_silent",   "spool_dropping",
        "journal_near_bound",
    };
    assert_int_equal(r->n, KVL_ARRAY_SIZE(names));
    for (size_t i = 0; i < KVL_ARRAY_SIZE(names); i++) {
        assert_string_equal(r->v[i].name, names[i]);
        assert_true(r->v[i].builtin);
        assert_int_equal(strncmp(r->v[i].origin, "<defaults>:", 11), 0);
    }
    const kvl_rule_t *u = kvl_rules_find(r, "interface_utilisation");
    assert_int_equal(u->kind, KVL_RULE_THRESHOLD);
    assert_int_equal(u->threshold.source, KVL_THR_DERIVED);
    assert_int_equal(u->threshold.derived, KVL_DERIVED_UTILISATION_PCT);
    assert_true(u->threshold.above.set && u->threshold.above.v == 80);
    assert_true(u->threshold.clear.v == 70);
    assert_int_equal(u->threshold.for_ms, 15 * M_MS);
    const kvl_rule_t *l = kvl_rules_find(r, "link_loss");
    assert_true(l->threshold.derived == KVL_DERIVED_LOSS_PCT && l->threshold.above.v == 2);
    assert_int_equal(l->threshold.for_ms, 5 * M_MS);
    const kvl_rule_t *m = kvl_rules_find(r, "mos_low");
    assert_true(m->threshold.below.set && m->threshold.below.v == 3.6);
    const kvl_rule_t *c = kvl_rules_find(r, "certificate_expiring");
    assert_true(c->threshold.below.v == 14 && c->threshold.clear.v == 14 + 1);
    const kvl_rule_t *s = kvl_rules_find(r, "spool_dropping");
    assert_int_equal(s->threshold.source, KVL_THR_RATE);
    assert_string_equal(s->threshold.metric, "spool_dropped");
    const kvl_rule_t *a = kvl_rules_find(r, "agent_silent");
    assert_int_equal(a->kind, KVL_RULE_STATE);
    assert_int_equal(a->state.state, KVL_STATE_AGENT_SILENT);
    assert_int_equal(a->state.intervals, 3);
    assert_int_equal(kvl_rules_find(r, "device_down")->severity, KVL_RULE_SEV_CRITICAL);
    assert_int_equal(kvl_rules_find(r, "link_down")->kind, KVL_RULE_EVENT);
    /* the probes' link cut (linkDown traps drive interface_down's state instead) */
    assert_string_equal(kvl_rules_find(r, "link_down")->event.name, "target_down");
    /* a pair's first half is cleared by the other, and not held */
    assert_string_equal(kvl_rules_find(r, "link_down")->event.clear, "target_up");
    assert_int_equal(kvl_rules_find(r, "link_down")->event.hold_ms, 0);
    assert_string_equal(kvl_rules_find(r, "agent_lost")->event.clear, "agent_back");
    assert_true(kvl_rules_find(r, "interface_down")->flapping.on);
    kvl_rules_free(r);
}

static void test_threshold(void **state)
{
    (void)state;
    kvl_rules_t *r = parse_ok("rules:\n"
                              "  - name: core_util\n"
                              "    severity: major\n"
                              "    select:\n"
                              "      site: 'hq-*'\n"
                              "      device: '!lab-*'\n"
                              "      interface: 'Gi[0-9]/*'\n"
                              "      metric: 'in_*'\n"
                              "      labels: {district: north, tier: 'c?re'}\n"
                              "    threshold: {derived: utilisation_pct, above: 90, clear: 80, "
                              "for: 2m}\n"
                              "    labels: {team: noc}\n"
                              "    summary: '{{ interface }} on {{device}} {{team}}'\n"
                              "  - name: errs\n"
                              "    severity: minor\n"
                              "    threshold: {rate: in_errors, above: 0.5}\n"
                              "  - name: rtt\n"
                              "    severity: info\n"
                              "    threshold: {value: rtt_median_ms, below: -1.5e1, clear: 0}\n");
    assert_int_equal(r->n, n_builtin(r) + 3);
    const kvl_rule_t *u = kvl_rules_find(r, "core_util");
    assert_false(u->builtin);
    assert_string_equal(u->origin, "r.yaml:2:5");
    assert_int_equal(u->severity, KVL_RULE_SEV_MAJOR);
    assert_string_equal(u->site.glob, "hq-*");
    assert_false(u->site.negate);
    assert_string_equal(u->device.glob, "lab-*");
    assert_true(u->device.negate);
    assert_true(kvl_rules_match(&u->device, "core-1"));
    assert_false(kvl_rules_match(&u->device, "lab-2"));
    assert_true(kvl_rules_match(&u->interface, "Gi1/0/1"));
    assert_true(kvl_rules_match(&u->target, "anything"));
    assert_int_equal(u->n_sel_labels, 2);
    assert_string_equal(u->sel_labels[1].key, "tier");
    assert_true(kvl_rules_match(&u->sel_labels[1].m, "core"));
    assert_int_equal(u->kind, KVL_RULE_THRESHOLD);
    assert_int_equal(u->threshold.derived, KVL_DERIVED_UTILISATION_PCT);
    assert_true(u->threshold.above.v == 90 && u->threshold.clear.v == 80);
    assert_false(u->threshold.below.set);
    assert_int_equal(u->threshold.for_ms, 2 * M_MS);
    assert_int_equal(u->n_labels, 1);
    assert_string_equal(u->labels[0].key, "team");
    assert_string_equal(u->labels[0].value, "noc");
    const kvl_rule_t *e = kvl_rules_find(r, "errs");
    assert_int_equal(e->threshold.source, KVL_THR_RATE);
    assert_string_equal(e->threshold.metric, "in_errors");
    assert_true(e->threshold.clear.v == 0.5); /* the threshold itself */
    assert_int_equal(e->threshold.for_ms, 0);
    const kvl_rule_t *t = kvl_rules_find(r, "rtt");
    assert_int_equal(t->threshold.source, KVL_THR_VALUE);
    assert_true(t->threshold.below.v == -15 && t->threshold.clear.v == 0);
    kvl_rules_free(r);
}

static void test_state_no_data_event_flapping(void **state)
{
    (void)state;
    kvl_rules_t *r = parse_ok("rules:\n"
                              "  - name: ifdown\n"
                              "    severity: major\n"
                              "    state: {condition: oper_down_admin_up, for: 30s}\n"
                              "    flapping: {changes: 10, window: 5m}\n"
                              "  - name: silent\n"
                              "    severity: critical\n"
                              "    state: {condition: agent_silent, intervals: 5}\n"
                              "  - name: gone\n"
                              "    severity: warning\n"
                              "    no_data: {intervals: 4}\n"
                              "  - name: trap\n"
                              "    severity: info\n"
                              "    event:\n"
                              "      name: 'bgp*'\n"
                              "      match: {peer: '10.*', state: '!established'}\n"
                              "  - name: unreach\n"
                              "    severity: critical\n"
                              "    state: device_unreachable\n");
    const kvl_rule_t *f = kvl_rules_find(r, "ifdown");
    assert_int_equal(f->kind, KVL_RULE_STATE);
    assert_int_equal(f->state.state, KVL_STATE_OPER_DOWN_ADMIN_UP);
    assert_int_equal(f->state.for_ms, 30000);
    assert_true(f->flapping.on);
    assert_int_equal(f->flapping.changes, 10);
    assert_int_equal(f->flapping.window_ms, 5 * M_MS);
    assert_int_equal(f->flapping.stable_ms, 5 * M_MS); /* the window when left out */
    const kvl_rule_t *s = kvl_rules_find(r, "silent");
    assert_int_equal(s->state.state, KVL_STATE_AGENT_SILENT);
    assert_int_equal(s->state.intervals, 5);
    const kvl_rule_t *g = kvl_rules_find(r, "gone");
    assert_int_equal(g->kind, KVL_RULE_NO_DATA);
    assert_int_equal(g->no_data.intervals, 4);
    const kvl_rule_t *t = kvl_rules_find(r, "trap");
    assert_int_equal(t->kind, KVL_RULE_EVENT);
    assert_string_equal(t->event.name, "bgp*");
    assert_int_equal(t->event.n_match, 2);
    assert_string_equal(t->event.match[0].key, "peer");
    assert_true(kvl_rules_match(&t->event.match[0].m, "10.1.2.3"));
    assert_true(t->event.match[1].m.negate);
    /* no clearing event: held 5 minutes */
    assert_null(t->event.clear);
    assert_int_equal(t->event.hold_ms, 5 * M_MS);
    const kvl_rule_t *u = kvl_rules_find(r, "unreach");
    assert_int_equal(u->state.state, KVL_STATE_DEVICE_UNREACHABLE);
    assert_int_equal(u->state.intervals, 0);
    assert_false(u->flapping.on);
    kvl_rules_free(r);
}

#define R1 "rules:\n  - name: x\n    severity: minor\n"

static void test_errors(void **state)
{
    (void)state;
    /* unknown key, in a rule and in a condition */
    parse_bad(R1 "    colour: red\n", "r.yaml:4:5: unknown setting 'colour'");
    parse_bad(R1 "    threshold: {value: mos, abve: 3}\n", "r.yaml:4:29: unknown setting 'abve'");
    parse_bad("rule:\n  - name: x\n", "r.yaml:1:1: unknown setting 'rule'");
    /* wrong types */
    parse_bad("rules: {name: x}\n", "r.yaml:1:8: expected a list of rules");
    parse_bad("rules:\n  - just text\n", "r.yaml:2:5: expected a rule");
    parse_bad(R1 "    threshold: {value: mos, above: high}\n",
              "r.yaml:4:36: expected a number such as 90 or 3.6, got 'high'");
    parse_bad(R1 "    no_data: {intervals: [1]}\n", "r.yaml:4:26: expected a whole number");
    parse_bad(R1 "    labels: [a]\n", "r.yaml:4:13: expected a mapping of label names");
    parse_bad("rules:\n  - name: x\n    severity: urgent\n    state: device_unreachable\n",
              "r.yaml:3:15: expected one of critical, major, minor, warning, info, got 'urgent'");
    /* missing pieces */
    parse_bad("rules:\n  - name: x\n    state: device_unreachable\n",
              "r.yaml:2:5: missing required setting 'severity'");
    parse_bad(R1, "r.yaml:2:5: rule 'x' needs a condition");
    parse_bad(R1 "    threshold: {value: mos}\n",
              "r.yaml:4:16: a threshold needs exactly one of above or below");
    parse_bad(R1 "    threshold: {above: 3}\n",
              "r.yaml:4:16: a threshold needs one of value, rate or derived");
    /* unknown metric: in a threshold and as a select glob */
    parse_bad(R1 "    threshold: {value: in_octet, above: 1}\n",
              "r.yaml:4:24: unknown metric 'in_octet'");
    parse_bad(R1 "    select: {metric: 'foo*'}\n    no_data: {intervals: 2}\n",
              "r.yaml:4:22: no built-in metric matches 'foo*'");
    parse_bad(R1 "    threshold: {derived: speed, above: 1}\n",
              "r.yaml:4:26: expected a derived figure");
    /* bad globs */
    parse_bad(R1 "    select: {device: 'core-[a-'}\n    no_data: {intervals: 2}\n",
              "r.yaml:4:22: pattern 'core-[a-': '[' opens a character class that is never "
              "closed");
    parse_bad(R1 "    select: {site: '[z-a]'}\n    no_data: {intervals: 2}\n",
              "r.yaml:4:20: pattern '[z-a]': range z-a is backwards");
    parse_bad(R1 "    select: {site: 'a\\'}\n    no_data: {intervals: 2}\n",
              "r.yaml:4:20: pattern 'a\\' ends with a lone backslash");
    parse_bad(R1 "    select: {target: '!'}\n    no_data: {intervals: 2}\n",
              "r.yaml:4:22: an empty pattern matches nothing");
    /* bad durations */
    parse_bad(R1 "    threshold: {value: mos, below: 3, for: 5 minutes}\n",
              "r.yaml:4:44: expected a duration such as 500ms");
    parse_bad(R1 "    state: oper_down_admin_up\n    flapping: {changes: 3, window: -1s}\n",
              "r.yaml:5:36: expected a duration");
    /* two condition kinds in one rule */
    parse_bad(R1 "    state: device_unreachable\n    no_data: {intervals: 2}\n",
              "r.yaml:5:14: a rule has one condition: this one already has 'state'");
    parse_bad(R1 "    threshold: {value: mos, rate: mos, below: 3}\n",
              "r.yaml:4:35: a threshold compares one figure");
    /* hysteresis on the wrong side */
    parse_bad(R1 "    threshold: {derived: utilisation_pct, above: 80, clear: 90}\n",
              "r.yaml:4:61: clear 90 is above the threshold 80");
    parse_bad(R1 "    threshold: {derived: mos, below: 3.6, clear: 3}\n",
              "r.yaml:4:50: clear 3 is below the threshold 3.6");
    /* state details */
    parse_bad(R1 "    state: down\n", "r.yaml:4:12: expected a state");
    parse_bad(R1 "    state: {condition: device_unreachable, intervals: 2}\n",
              "r.yaml:4:55: only agent_silent takes intervals");
    parse_bad(R1 "    threshold: {value: mos, below: 3}\n    flapping: {changes: 3, window: 1m}\n",
              "r.yaml:5:15: flapping modifies a state rule only");
    /* summary and labels */
    parse_bad(R1 "    state: device_unreachable\n    summary: '{{device}} {{colour}}'\n",
              "r.yaml:5:14: unknown label 'colour' in the summary");
    parse_bad(R1 "    state: device_unreachable\n    summary: 'x {{device'\n",
              "r.yaml:5:14: '{{' at offset 2 is never closed");
    parse_bad(R1 "    state: device_unreachable\n    labels: {site: x}\n",
              "r.yaml:5:14: label 'site' is set by the alert itself");
    parse_bad(R1 "    state: device_unreachable\n    labels: {Team: x}\n",
              "r.yaml:5:14: expected a label name");
    parse_bad(R1 "    event: {name: x, match: {a: '[', b: c}}\n",
              "r.yaml:4:33: pattern '[': '[' opens a character class that is never closed");
    /* an event's clearing event and hold */
    parse_bad(R1 "    event: {name: 'bgp*', clear: bgpUp}\n",
              "r.yaml:4:34: the clearing event 'bgpUp' matches the rule's own name 'bgp*'");
    parse_bad(R1 "    event: {name: x, clear: 'up*'}\n",
              "r.yaml:4:29: expected the name of the event that clears the alert");
    parse_bad(R1 "    event: {name: x, hold: 10ms}\n", "r.yaml:4:28: ");
    /* names */
    parse_bad("rules:\n  - name: 'a b'\n    severity: minor\n    state: device_unreachable\n",
              "r.yaml:2:11: a rule name has letters, digits");
    parse_bad(R1 "    state: device_unreachable\n  - name: x\n    severity: info\n"
                 "    state: device_unreachable\n",
              "r.yaml:5:11: rule 'x' is already defined at r.yaml:2:5");
    /* syntax */
    parse_bad("rules: [\n", "r.yaml:2:1: did not find expected node content");
}

static void test_disable_override(void **state)
{
    (void)state;
    kvl_rules_t *d = NULL;
    char err[512];
    assert_int_equal(kvl_rules_load(NULL, &d, err, sizeof(err)), 0);
    size_t n_def = d->n;
    kvl_rules_free(d);

    kvl_rules_t *r = parse_ok("disable: [mos_low, journal_near_bound]\n"
                              "rules:\n"
                              "  - name: link_loss\n"
                              "    severity: critical\n"
                              "    threshold: {derived: loss_pct, above: 5, for: 1m}\n"
                              "  - name: mine\n"
                              "    severity: info\n"
                              "    no_data: {intervals: 9}\n");
    assert_int_equal(r->n, n_def - 2 + 1);
    assert_null(kvl_rules_find(r, "mos_low"));
    assert_null(kvl_rules_find(r, "journal_near_bound"));
    const kvl_rule_t *l = kvl_rules_find(r, "link_loss");
    assert_false(l->builtin);
    assert_int_equal(l->severity, KVL_RULE_SEV_CRITICAL);
    assert_true(l->threshold.above.v == 5);
    assert_string_equal(l->origin, "r.yaml:3:5");
    /* the override keeps the built-in rule's place; the user's own rules follow */
    assert_string_equal(r->v[4].name, "link_loss");
    assert_string_equal(r->v[r->n - 1].name, "mine");
    assert_int_equal(n_builtin(r), n_def - 3);
    kvl_rules_free(r);

    parse_bad("disable: [no_such]\n", "r.yaml:1:11: 'no_such' is no built-in rule");
    parse_bad("disable: [mos_low, mos_low]\n",
              "r.yaml:1:20: 'mos_low' is already disabled at r.yaml:1:11");
    parse_bad("disable: [mos_low]\nrules:\n  - name: mos_low\n    severity: info\n"
              "    no_data: {intervals: 2}\n",
              "r.yaml:3:5: rule 'mos_low' is defined here and disabled at r.yaml:1:11");
}

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void remove_files(void)
{
    static const char *const names[] = {"a.yaml", "b.yaml", "notes.txt", "c.yaml"};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(names); i++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
}

static void test_folder(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/kvl-rules-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    write_file("b.yaml", "rules:\n  - name: second\n    severity: info\n"
                         "    state: device_unreachable\n");
    write_file("a.yaml", "disable: [link_down]\nrules:\n  - name: first\n    severity: info\n"
                         "    no_data: {intervals: 2}\n");
    write_file("notes.txt", "not: [yaml\n");
    char err[512];
    kvl_rules_t *r = NULL;
    assert_int_equal(kvl_rules_load(tmpdir, &r, err, sizeof(err)), 0);
    assert_null(kvl_rules_find(r, "link_down"));
    assert_string_equal(r->v[r->n - 2].name, "first"); /* a.yaml before b.yaml */
    assert_string_equal(r->v[r->n - 1].name, "second");
    kvl_rules_free(r);

    /* one file alone */
    char path[128];
    snprintf(path, sizeof(path), "%s/b.yaml", tmpdir);
    assert_int_equal(kvl_rules_load(path, &r, err, sizeof(err)), 0);
    assert_non_null(kvl_rules_find(r, "second"));
    assert_null(kvl_rules_find(r, "first"));
    kvl_rules_free(r);

    /* the same name in two files: both places named */
    write_file("c.yaml", "rules:\n  - severity: info\n    name: first\n"
                         "    state: device_unreachable\n");
    r = NULL;
    assert_int_equal(kvl_rules_load(tmpdir, &r, err, sizeof(err)), KVL_ECONFIG);
    assert_null(r);
    char want[512];
    snprintf(want, sizeof(want), "%s/c.yaml:3:11: rule 'first' is already defined at %s/a.yaml:3:5",
             tmpdir, tmpdir);
    assert_string_equal(err, want);

    /* every file's first mistake, one a line, in name order */
    write_file("b.yaml", "rules:\n  - name: second\n    severity: info\n    colour: red\n");
    assert_int_equal(kvl_rules_load(tmpdir, &r, err, sizeof(err)), KVL_ECONFIG);
    snprintf(want, sizeof(want),
             "%s/b.yaml:4:5: unknown setting 'colour'; expected one of: name, severity, select, "
             "threshold, state, no_data, event, flapping, labels, summary\n"
             "%s/c.yaml:3:11: rule 'first' is already defined at %s/a.yaml:3:5",
             tmpdir, tmpdir, tmpdir);
    assert_string_equal(err, want);

    /* a missing path */
    snprintf(path, sizeof(path), "%s/none.yaml", tmpdir);
    assert_int_equal(kvl_rules_load(path, &r, err, sizeof(err)), KVL_EIO);
    assert_non_null(strstr(err, "none.yaml: cannot read the rules"));

    remove_files();
    assert_int_equal(rmdir(tmpdir), 0);
}

/* The n-th ```yaml block of the rules section of docs/configuration.md (malloc'd). */
static char *doc_block(int n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s", __FILE__);
    char *cut = strstr(path, "tests/unit/test_rules.c");
    assert_non_null(cut);
    snprintf(cut, sizeof(path) - (size_t)(cut - path), "docs/configuration.md");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char doc[256 * 1024];
    size_t len = fread(doc, 1, sizeof(doc) - 1, f);
    fclose(f);
    doc[len] = '\0';
    const char *p = strstr(doc, "## Alert rules (rules file)");
    assert_non_null(p);
    for (int i = 0; i <= n; i++) {
        p = strstr(p, "```yaml\n");
        assert_non_null(p);
        p += 8;
    }
    const char *end = strstr(p, "```");
    assert_non_null(end);
    return strndup(p, (size_t)(end - p));
}

/* The reference's example parses; its list of the built-in rules is theirs. */
static void test_documentation(void **state)
{
    (void)state;
    char *example = doc_block(0);
    kvl_rules_t *r = parse_ok(example);
    assert_null(kvl_rules_find(r, "mos_low"));
    assert_int_equal(kvl_rules_find(r, "branch_down")->flapping.changes, 10);
    kvl_rules_free(r);
    free(example);

    char *listed = doc_block(1);
    r = parse_ok(listed);
    free(listed);
    kvl_rules_t *d = NULL;
    char err[512];
    assert_int_equal(kvl_rules_load(NULL, &d, err, sizeof(err)), 0);
    assert_int_equal(r->n, d->n);
    for (size_t i = 0; i < d->n; i++) {
        const kvl_rule_t *a = &r->v[i], *b = &d->v[i];
        assert_false(a->builtin); /* every one replaced by the document's */
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->severity, b->severity);
        assert_int_equal(a->kind, b->kind);
        assert_int_equal(a->threshold.source, b->threshold.source);
        assert_int_equal(a->threshold.derived, b->threshold.derived);
        assert_true(a->threshold.above.v == b->threshold.above.v);
        assert_true(a->threshold.below.v == b->threshold.below.v);
        assert_true(a->threshold.clear.v == b->threshold.clear.v);
        assert_int_equal(a->threshold.for_ms, b->threshold.for_ms);
        assert_int_equal(a->state.state, b->state.state);
        assert_int_equal(a->state.intervals, b->state.intervals);
        assert_int_equal(a->flapping.changes, b->flapping.changes);
        assert_int_equal(a->flapping.window_ms, b->flapping.window_ms);
        assert_int_equal(a->flapping.stable_ms, b->flapping.stable_ms);
    }
    kvl_rules_free(d);
    kvl_rules_free(r);
}

static void test_globs(void **state)
{
    (void)state;
    char why[256];
    assert_int_equal(kvl_rules_glob_check("a[]b]c", why, sizeof(why)), 0);
    assert_int_equal(kvl_rules_glob_check("[!a-c]*", why, sizeof(why)), 0);
    assert_int_equal(kvl_rules_glob_check("x\\*", why, sizeof(why)), 0);
    assert_int_equal(kvl_rules_glob_check("", why, sizeof(why)), KVL_EINVAL);
    assert_int_equal(kvl_rules_glob_check("[abc", why, sizeof(why)), KVL_EINVAL);
    assert_true(kvl_rules_metric_known("spool_dropped"));
    assert_true(kvl_rules_metric_known("oper_status"));
    assert_false(kvl_rules_metric_known("spool_drop"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_state_no_data_event_flapping),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_disable_override),
        cmocka_unit_test(test_folder),
        cmocka_unit_test(test_documentation),
        cmocka_unit_test(test_globs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
