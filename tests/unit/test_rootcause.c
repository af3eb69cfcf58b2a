/*
 * test_rootcause.c — unit tests for root-cause alerts (collector/topology/rootcause.h) over a
 * district built by hand as the topology builds it (sites, agents, devices, member links,
 * LLDP links, a vantage link per reporting agent; a lost agent's device down): the
 * district's uplink cut pages once (pending, then firing after the hold) and holds back the
 * blocks' own alerts; blocks declared lost one by one before their district make no page of
 * their own; the repair resolves once and a block device still down pages by itself after
 * the settle time only; an isolated block is said `isolated`; a link cause's own interface
 * alert is replaced, its other interfaces are not; an alert restored at start is resolved
 * once the hold after start has passed without its cause.
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

#include "alert.h"
#include "kvl.h"
#include "rootcause.h"
#include "topo_graph.h"

#define BLOCKS 3
#define HOLD 3000
#define SETTLE 10000

typedef struct district {
    kvl_topo_t *g;
    uint32_t noc, dhq, blk[BLOCKS];
    uint32_t noc_ag, dhq_ag, blk_ag[BLOCKS];
    uint32_t noc_core, dhq_core, blk_rtr[BLOCKS];
    uint32_t up_link, blk_link[BLOCKS];
} district_t;

typedef struct seen {
    kvl_alert_t *v[256];
    size_t n;
} seen_t;

static void on_alert(void *ctx, const kvl_alert_t *a)
{
    seen_t *s = ctx;
    assert_true(s->n < 256);
    s->v[s->n++] = kvl_alert_dup(a);
}

static void seen_clear(seen_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        kvl_alert_free(s->v[i]);
    }
    s->n = 0;
}

static size_t count(const seen_t *s, kvl_alert_status_t st)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        n += s->v[i]->status == st;
    }
    return n;
}

static const kvl_alert_t *last(const seen_t *s, kvl_alert_status_t st)
{
    for (size_t i = s->n; i > 0; i--) {
        if (s->v[i - 1]->status == st) {
            return s->v[i - 1];
        }
    }
    return NULL;
}

static uint32_t node(kvl_topo_t *g, kvl_topo_kind_t k, const char *name)
{
    uint32_t id;
    assert_int_equal(kvl_topo_add_node(g, k, name, &id), 0);
    return id;
}

static uint32_t add_link(kvl_topo_t *g, uint32_t a, uint32_t b, kvl_topo_source_t src,
                         const char *aif, const char *bif)
{
    uint32_t id;
    assert_int_equal(kvl_topo_add_link(g, a, b, src, aif, bif, 1, &id), 0);
    return id;
}

static void build(district_t *d)
{
    assert_int_equal(kvl_topo_new(&d->g), 0);
    kvl_topo_t *g = d->g;
    d->noc = node(g, KVL_TOPO_SITE, "noc");
    d->dhq = node(g, KVL_TOPO_SITE, "dhq-kollam");
    d->noc_ag = node(g, KVL_TOPO_AGENT, "noc-ag");
    d->dhq_ag = node(g, KVL_TOPO_AGENT, "dhq-ag");
    d->noc_core = node(g, KVL_TOPO_DEVICE, "noc-ag/noc-core");
    d->dhq_core = node(g, KVL_TOPO_DEVICE, "dhq-ag/dhq-core");
    kvl_topo_set_root(g, d->noc, true);
    add_link(g, d->noc, d->noc_ag, KVL_TOPO_SRC_MEMBER, NULL, NULL);
    add_link(g, d->noc, d->noc_core, KVL_TOPO_SRC_MEMBER, NULL, NULL);
    add_link(g, d->dhq, d->dhq_ag, KVL_TOPO_SRC_MEMBER, NULL, NULL);
    add_link(g, d->dhq, d->dhq_core, KVL_TOPO_SRC_MEMBER, NULL, NULL);
    d->up_link = add_link(g, d->noc_core, d->dhq_core, KVL_TOPO_SRC_LLDP, "up0", "wan0");
    for (int i = 0; i < BLOCKS; i++) {
        char n[64];
        snprintf(n, sizeof(n), "b%02d", i + 1);
        d->blk[i] = node(g, KVL_TOPO_SITE, n);
        snprintf(n, sizeof(n), "b%02d-ag", i + 1);
        d->blk_ag[i] = node(g, KVL_TOPO_AGENT, n);
        snprintf(n, sizeof(n), "b%02d-ag/b%02d-rtr", i + 1, i + 1);
        d->blk_rtr[i] = node(g, KVL_TOPO_DEVICE, n);
        add_link(g, d->blk[i], d->blk_ag[i], KVL_TOPO_SRC_MEMBER, NULL, NULL);
        add_link(g, d->blk[i], d->blk_rtr[i], KVL_TOPO_SRC_MEMBER, NULL, NULL);
        snprintf(n, sizeof(n), "to-b%02d", i + 1);
        d->blk_link[i] = add_link(g, d->dhq_core, d->blk_rtr[i], KVL_TOPO_SRC_LLDP, n, "wan0");
    }
}

/* The states as the topology sets them: lost agents (no vantage link, down, their device
 * down), devices down on their own. */
static void states(district_t *d, bool dhq_lost, const bool blk_lost[BLOCKS],
                   const bool rtr_down[BLOCKS])
{
    kvl_topo_t *g = d->g;
    uint32_t v;
    kvl_topo_set_node_up(g, d->dhq_ag, !dhq_lost);
    kvl_topo_set_node_up(g, d->dhq_core, !dhq_lost);
    if (dhq_lost) {
        uint32_t l;
        assert_int_equal(
            kvl_topo_add_link(g, d->noc, d->dhq_ag, KVL_TOPO_SRC_VANTAGE, NULL, NULL, 1, &l), 0);
        kvl_topo_forget_link(g, l);
    } else {
        add_link(g, d->noc, d->dhq_ag, KVL_TOPO_SRC_VANTAGE, NULL, NULL);
    }
    for (int i = 0; i < BLOCKS; i++) {
        kvl_topo_set_node_up(g, d->blk_ag[i], !blk_lost[i]);
        kvl_topo_set_node_up(g, d->blk_rtr[i], !blk_lost[i] && !rtr_down[i]);
        v = add_link(g, d->noc, d->blk_ag[i], KVL_TOPO_SRC_VANTAGE, NULL, NULL);
        if (blk_lost[i]) {
            kvl_topo_forget_link(g, v);
        }
    }
    assert_int_equal(kvl_topo_compute(g), 0);
}

static kvl_alert_t *child(const char *rule, const char *agent, const char *device,
                          const char *iface, const char *site)
{
    kvl_alert_t a = {.rule = rule, .status = KVL_ALERT_FIRING};
    a.labels[a.n_labels++] = (kvl_label_t){"alertname", rule};
    a.labels[a.n_labels++] = (kvl_label_t){"severity", "critical"};
    if (agent != NULL) {
        a.labels[a.n_labels++] = (kvl_label_t){"agent", agent};
    }
    if (device != NULL) {
        a.labels[a.n_labels++] = (kvl_label_t){"device", device};
    }
    if (iface != NULL) {
        a.labels[a.n_labels++] = (kvl_label_t){"interface", iface};
    }
    if (site != NULL) {
        a.labels[a.n_labels++] = (kvl_label_t){"site", site};
    }
    assert_int_equal(kvl_alert_finish(&a), 0);
    return kvl_alert_dup(&a);
}

static bool held(const kvl_rootcause_t *rc, const district_t *d, const kvl_alert_t *a, int64_t now)
{
    char why[400] = "";
    bool r = kvl_rootcause_suppressed(rc, d->g, a, now, why, sizeof(why));
    assert_true(!r || why[0] != '\0');
    return r;
}

static kvl_rootcause_t *new_rc(seen_t *s)
{
    kvl_rootcause_t *rc;
    kvl_rootcause_opts_t o = {.hold_ms = HOLD, .settle_ms = SETTLE};
    assert_int_equal(kvl_rootcause_new(&o, on_alert, s, &rc), 0);
    return rc;
}

static const bool NONE[BLOCKS] = {false, false, false};
static const bool ALL[BLOCKS] = {true, true, true};

static void test_district_cut_pages_once(void **state)
{
    (void)state;
    district_t d;
    build(&d);
    seen_t s = {0};
    kvl_rootcause_t *rc = new_rc(&s);
    kvl_alert_t *b1_lost = child("agent_lost", "b01-ag", NULL, NULL, "b01");
    kvl_alert_t *b2_down = child("device_down", "b02-ag", "b02-rtr", NULL, "b02");
    kvl_alert_t *b3_if = child("interface_down", "b03-ag", "b03-rtr", "ge0", "b03");
    kvl_alert_t *noc_if = child("interface_down", "noc-ag", "noc-core", "ge5", "noc");
    kvl_alert_t *dhq_lost = child("agent_lost", "dhq-ag", NULL, NULL, "dhq-kollam");

    states(&d, false, NONE, NONE);
    kvl_rootcause_update(rc, d.g, 1000);
    assert_int_equal(s.n, 0);
    assert_false(held(rc, &d, b1_lost, 1000));

    /* block 1 declared lost first: for a moment it looks isolated (pending, no page) */
    bool first[BLOCKS] = {true, false, false};
    states(&d, false, first, NONE);
    kvl_rootcause_update(rc, d.g, 2000);
    assert_int_equal(count(&s, KVL_ALERT_PENDING), 1);
    assert_string_equal(kvl_alert_field(last(&s, KVL_ALERT_PENDING), "kind"), "isolated");
    assert_true(held(rc, &d, b1_lost, 2000));

    /* then the district and the others: one cause, the district's router */
    states(&d, true, ALL, NONE);
    kvl_rootcause_update(rc, d.g, 2500);
    assert_int_equal(count(&s, KVL_ALERT_RESOLVED), 1); /* block 1's pending alert ended */
    assert_int_equal(count(&s, KVL_ALERT_PENDING), 2);
    const kvl_alert_t *p = last(&s, KVL_ALERT_PENDING);
    assert_string_equal(kvl_alert_label(p, "device"), "dhq-core");
    assert_string_equal(kvl_alert_label(p, "site"), "dhq-kollam");
    assert_int_equal(count(&s, KVL_ALERT_FIRING), 0);
    for (int64_t t = 3000; t < 2500 + HOLD; t += 500) {
        kvl_rootcause_update(rc, d.g, t);
    }
    assert_int_equal(count(&s, KVL_ALERT_FIRING), 0);
    kvl_rootcause_update(rc, d.g, 2500 + HOLD);
    assert_int_equal(count(&s, KVL_ALERT_FIRING), 1);
    const kvl_alert_t *f = last(&s, KVL_ALERT_FIRING);
    assert_string_equal(f->rule, KVL_ROOTCAUSE_RULE);
    assert_int_equal(f->severity, 0);
    assert_string_equal(kvl_alert_field(f, "kind"), "cut");
    assert_string_equal(kvl_alert_field(f, "sites_cut"), "4");
    assert_string_equal(kvl_alert_field(f, "agents_cut"), "4");
    assert_string_equal(kvl_alert_field(f, "devices_cut"), "3");
    assert_string_equal(kvl_alert_field(f, "sites"), "b01, b02, b03, dhq-kollam");
    assert_non_null(strstr(f->summary, "b01, b02, b03"));
    assert_int_equal(f->active_at_ms, 2500);
    for (int64_t t = 6000; t < 20000; t += 1000) { /* it stands: nothing more */
        kvl_rootcause_update(rc, d.g, t);
    }
    assert_int_equal(count(&s, KVL_ALERT_FIRING), 1);
    int64_t now = 20000;
    kvl_rootcause_update(rc, d.g, now); /* the last moment the blocks are seen cut off */
    assert_true(held(rc, &d, b1_lost, now));
    assert_true(held(rc, &d, b2_down, now));
    assert_true(held(rc, &d, b3_if, now));
    assert_true(held(rc, &d, dhq_lost, now));
    assert_false(held(rc, &d, noc_if, now));
    assert_false(held(rc, &d, f, now)); /* the page itself goes */

    /* repaired, block 2's router still down on its own */
    bool down2[BLOCKS] = {false, true, false};
    uint64_t paged = f->fingerprint;
    seen_clear(&s); /* f goes with it */
    states(&d, false, NONE, down2);
    kvl_rootcause_update(rc, d.g, 21000);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.v[0]->status, KVL_ALERT_RESOLVED);
    assert_int_equal(s.v[0]->fingerprint, paged);
    assert_true(held(rc, &d, b2_down, 21000)); /* settling */
    assert_true(held(rc, &d, b2_down, 20000 + SETTLE - 1));
    assert_false(held(rc, &d, b2_down, 20000 + SETTLE));
    assert_false(held(rc, &d, b1_lost, 20000 + SETTLE));
    for (int64_t t = 22000; t < 40000; t += 1000) {
        kvl_rootcause_update(rc, d.g, t);
    }
    assert_int_equal(s.n, 1); /* a device down on its own cuts nothing: no cut alert */
    kvl_rootcause_stats_t st;
    kvl_rootcause_stats(rc, &st);
    assert_int_equal(st.cuts_fired, 1);
    assert_int_equal(st.cuts_active, 0);

    kvl_alert_free(b1_lost);
    kvl_alert_free(b2_down);
    kvl_alert_free(b3_if);
    kvl_alert_free(noc_if);
    kvl_alert_free(dhq_lost);
    seen_clear(&s);
    kvl_rootcause_free(rc);
    kvl_topo_free(d.g);
}

static void test_isolated_block(void **state)
{
    (void)state;
    district_t d;
    build(&d);
    seen_t s = {0};
    kvl_rootcause_t *rc = new_rc(&s);
    kvl_alert_t *b3_lost = child("agent_lost", "b03-ag", NULL, NULL, "b03");
    kvl_alert_t *b1_lost = child("agent_lost", "b01-ag", NULL, NULL, "b01");
    bool only3[BLOCKS] = {false, false, true};
    states(&d, false, only3, NONE);
    for (int64_t t = 0; t <= HOLD; t += 1000) {
        kvl_rootcause_update(rc, d.g, t);
    }
    assert_int_equal(count(&s, KVL_ALERT_FIRING), 1);
    const kvl_alert_t *f = last(&s, KVL_ALERT_FIRING);
    assert_string_equal(kvl_alert_field(f, "kind"), "isolated");
    assert_non_null(strstr(f->summary, "site b03 isolated"));
    assert_string_equal(kvl_alert_label(f, "site"), "b03");
    assert_true(held(rc, &d, b3_lost, HOLD));
    assert_false(held(rc, &d, b1_lost, HOLD));
    states(&d, false, NONE, NONE);
    kvl_rootcause_update(rc, d.g, HOLD + 1000);
    assert_int_equal(count(&s, KVL_ALERT_RESOLVED), 1);
    kvl_alert_free(b3_lost);
    kvl_alert_free(b1_lost);
    seen_clear(&s);
    kvl_rootcause_free(rc);
    kvl_topo_free(d.g);
}

static void test_link_cause_replaces_its_interfaces(void **state)
{
    (void)state;
    district_t d;
    build(&d);
    seen_t s = {0};
    kvl_rootcause_t *rc = new_rc(&s);
    /* the district router's port to block 2 down; block 2's agent silent behind it */
    bool lost2[BLOCKS] = {false, true, false};
    kvl_topo_set_link_up(d.g, d.blk_link[1], false);
    states(&d, false, lost2, NONE);
    kvl_rootcause_update(rc, d.g, 0);
    kvl_rootcause_update(rc, d.g, HOLD);
    const kvl_alert_t *f = last(&s, KVL_ALERT_FIRING);
    assert_non_null(f);
    assert_string_equal(kvl_alert_label(f, "device"), "dhq-core");
    assert_string_equal(kvl_alert_label(f, "interface"), "to-b02");
    assert_string_equal(kvl_alert_label(f, "site"), "b02");
    kvl_alert_t *own = child("interface_down", "dhq-ag", "dhq-core", "to-b02", "dhq-kollam");
    kvl_alert_t *other = child("interface_down", "dhq-ag", "dhq-core", "to-b01", "dhq-kollam");
    kvl_alert_t *far = child("interface_down", "b02-ag", "b02-rtr", "wan0", "b02");
    assert_true(held(rc, &d, own, HOLD));
    assert_false(held(rc, &d, other, HOLD));
    assert_true(held(rc, &d, far, HOLD)); /* cut off, and the link's other end */
    kvl_alert_free(own);
    kvl_alert_free(other);
    kvl_alert_free(far);
    seen_clear(&s);
    kvl_rootcause_free(rc);
    kvl_topo_free(d.g);
}

static void test_restored_alert_resolved_after_hold(void **state)
{
    (void)state;
    district_t d;
    build(&d);
    seen_t s = {0};
    kvl_rootcause_t *rc = new_rc(&s);
    kvl_alert_t *old = child(KVL_ROOTCAUSE_RULE, "dhq-ag", "dhq-core", NULL, "dhq-kollam");
    assert_int_equal(kvl_rootcause_restore(rc, old), 0);
    kvl_alert_t *other = child("agent_lost", "b01-ag", NULL, NULL, "b01");
    assert_int_equal(kvl_rootcause_restore(rc, other), KVL_EINVAL);
    states(&d, false, NONE, NONE);
    kvl_rootcause_update(rc, d.g, 100000);
    kvl_rootcause_update(rc, d.g, 100000 + HOLD - 1);
    assert_int_equal(s.n, 0);
    kvl_rootcause_update(rc, d.g, 100000 + HOLD);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.v[0]->status, KVL_ALERT_RESOLVED);
    assert_int_equal(s.v[0]->fingerprint, old->fingerprint);
    kvl_alert_free(old);
    kvl_alert_free(other);
    seen_clear(&s);
    kvl_rootcause_free(rc);
    kvl_topo_free(d.g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_district_cut_pages_once),
        cmocka_unit_test(test_isolated_block),
        cmocka_unit_test(test_link_cause_replaces_its_interfaces),
        cmocka_unit_test(test_restored_alert_resolved_after_hold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
