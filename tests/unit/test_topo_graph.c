/*
 * test_topo_graph.c — unit tests for the topology graph's reachability
 * (collector/topology/topo_graph.h): a district behind its router (router down: one cause,
 * the blocks cut off by it), the uplink cut (the link is the cause), a redundant path (a
 * cut link that cuts nothing), two cuts in series (the one nearer the NOC is the cause), a
 * leaf device down, a root down, nodes with no path (unconnected), forgetting and
 * relearning a link, bad arguments; and random graphs checked against a naive fixed point
 * computed here (what is reachable, and that every unreachable node's cause is a cause
 * connected to it through the unreached part).
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

#include "kvl.h"
#include "topo_graph.h"

static uint32_t node(kvl_topo_t *t, kvl_topo_kind_t kind, const char *name)
{
    uint32_t id;
    assert_int_equal(kvl_topo_add_node(t, kind, name, &id), 0);
    return id;
}

static uint32_t link(kvl_topo_t *t, uint32_t a, uint32_t b, kvl_topo_source_t src)
{
    uint32_t id;
    assert_int_equal(kvl_topo_add_link(t, a, b, src, "eth0", "eth1", 1000, &id), 0);
    return id;
}

static void assert_node(const kvl_topo_t *t, uint32_t n, kvl_topo_reach_t want, bool cause_is_link,
                        uint32_t cause_id)
{
    kvl_topo_elem_t c;
    kvl_topo_reach_t r = kvl_topo_node_reach(t, n, &c);
    if (r != want) {
        fail_msg("%s: %s, wanted %s", kvl_topo_node_name(t, n), kvl_topo_reach_name(r),
                 kvl_topo_reach_name(want));
    }
    if (want == KVL_TOPO_CAUSE || want == KVL_TOPO_UNREACHABLE) {
        assert_int_equal(c.is_link, cause_is_link);
        assert_int_equal(c.id, cause_id);
    } else {
        assert_int_equal(c.id, KVL_TOPO_NONE);
    }
}

static size_t cut(const kvl_topo_t *t, bool is_link, uint32_t id)
{
    return kvl_topo_each_cut(t, (kvl_topo_elem_t){.is_link = is_link, .id = id}, NULL, NULL);
}

static bool count_cause(void *ctx, kvl_topo_elem_t c)
{
    KVL_UNUSED(c);
    (*(size_t *)ctx)++;
    return true;
}

static size_t causes(const kvl_topo_t *t)
{
    size_t n = 0;
    kvl_topo_each_cause(t, count_cause, &n);
    return n;
}

/* NOC router (root) - DHQ router - 3 BHQ routers, each with a switch behind it */
typedef struct district {
    kvl_topo_t *t;
    uint32_t noc, dhq, bhq[3], sw[3];
    uint32_t l_up, l_b[3], l_sw[3];
} district_t;

static void district(district_t *d)
{
    assert_int_equal(kvl_topo_new(&d->t), 0);
    d->noc = node(d->t, KVL_TOPO_DEVICE, "noc/rtr");
    d->dhq = node(d->t, KVL_TOPO_DEVICE, "dhq/rtr");
    kvl_topo_set_root(d->t, d->noc, true);
    d->l_up = link(d->t, d->noc, d->dhq, KVL_TOPO_SRC_LLDP);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "bhq%d/rtr", i);
        d->bhq[i] = node(d->t, KVL_TOPO_DEVICE, name);
        snprintf(name, sizeof(name), "bhq%d/sw", i);
        d->sw[i] = node(d->t, KVL_TOPO_DEVICE, name);
        d->l_b[i] = link(d->t, d->dhq, d->bhq[i], KVL_TOPO_SRC_UPLINK);
        d->l_sw[i] = link(d->t, d->bhq[i], d->sw[i], KVL_TOPO_SRC_CDP);
    }
}

static void all_reachable(void **state)
{
    KVL_UNUSED(state);
    district_t d;
    district(&d);
    assert_int_equal(kvl_topo_compute(d.t), 0);
    for (uint32_t i = 0; i < kvl_topo_nodes(d.t); i++) {
        assert_node(d.t, i, KVL_TOPO_REACHABLE, false, KVL_TOPO_NONE);
    }
    assert_int_equal(kvl_topo_link_reach(d.t, d.l_up, NULL), KVL_TOPO_REACHABLE);
    kvl_topo_free(d.t);
}

static void router_down_is_the_cause(void **state)
{
    KVL_UNUSED(state);
    district_t d;
    district(&d);
    kvl_topo_set_node_up(d.t, d.dhq, false);
    kvl_topo_set_node_up(d.t, d.bhq[1], false); /* down too, but behind the router */
    assert_int_equal(kvl_topo_compute(d.t), 0);
    assert_node(d.t, d.noc, KVL_TOPO_REACHABLE, false, KVL_TOPO_NONE);
    assert_node(d.t, d.dhq, KVL_TOPO_CAUSE, false, d.dhq);
    for (int i = 0; i < 3; i++) {
        assert_node(d.t, d.bhq[i], KVL_TOPO_UNREACHABLE, false, d.dhq);
        assert_node(d.t, d.sw[i], KVL_TOPO_UNREACHABLE, false, d.dhq);
    }
    assert_int_equal(cut(d.t, false, d.dhq), 6);
    /* the link to the down router leads to a cause: unreachable by it */
    kvl_topo_elem_t c;
    assert_int_equal(kvl_topo_link_reach(d.t, d.l_up, &c), KVL_TOPO_UNREACHABLE);
    assert_int_equal(c.id, d.dhq);
    assert_int_equal(causes(d.t), 1); /* the router only: BHQ 1 is behind it */
    kvl_topo_free(d.t);
}

static void uplink_cut_is_the_cause(void **state)
{
    KVL_UNUSED(state);
    district_t d;
    district(&d);
    kvl_topo_set_link_up(d.t, d.l_up, false);
    /* behind the cut the DHQ router and its agent look dead too: still not causes */
    kvl_topo_set_node_up(d.t, d.dhq, false);
    assert_int_equal(kvl_topo_compute(d.t), 0);
    assert_int_equal(kvl_topo_link_reach(d.t, d.l_up, NULL), KVL_TOPO_CAUSE);
    assert_node(d.t, d.dhq, KVL_TOPO_UNREACHABLE, true, d.l_up);
    assert_node(d.t, d.sw[2], KVL_TOPO_UNREACHABLE, true, d.l_up);
    assert_int_equal(cut(d.t, true, d.l_up), 7);
    assert_int_equal(causes(d.t), 1);
    /* repaired */
    kvl_topo_set_link_up(d.t, d.l_up, true);
    kvl_topo_set_node_up(d.t, d.dhq, true);
    assert_int_equal(kvl_topo_compute(d.t), 0);
    assert_int_equal(causes(d.t), 0);
    assert_node(d.t, d.sw[2], KVL_TOPO_REACHABLE, false, KVL_TOPO_NONE);
    kvl_topo_free(d.t);
}

static void redundant_path_cuts_nothing(void **state)
{
    KVL_UNUSED(state);
    district_t d;
    district(&d);
    uint32_t backup = link(d.t, d.noc, d.bhq[0], KVL_TOPO_SRC_LLDP);
    kvl_topo_set_link_up(d.t, d.l_up, false);
    assert_int_equal(kvl_topo_compute(d.t), 0);
    /* the DHQ is reached through BHQ 0's backup link */
    assert_node(d.t, d.dhq, KVL_TOPO_REACHABLE, false, KVL_TOPO_NONE);
    assert_node(d.t, d.sw[2], KVL_TOPO_REACHABLE, false, KVL_TOPO_NONE);
    assert_int_equal(kvl_topo_link_reach(d.t, d.l_up, NULL), KVL_TOPO_CAUSE);
    assert_int_equal(cut(d.t, true, d.l_up), 0);
    assert_int_equal(kvl_topo_link_reach(d.t, backup, NULL), KVL_TOPO_REACHABLE);
    kvl_topo_free(d.t);
}

static void nearest_cut_wins(void **state)
{
    KVL_UNUSED(state);
    district_t d;
    district(&d);
    kvl_topo_set_link_up(d.t, d.l_b[1], false);
    kvl_topo_set_link_up(d.t, d.l_up, false);
    assert_int_equal(kvl_topo_compute(d.t), 0);
    assert_node(d.t, d.bhq[1], KVL_TOPO_UNREACHABLE, true, d.l_up);
    /* the second cut is behind the first: not a cause of its own */
    kvl_topo_elem_t c;
    assert_int_equal(kvl_topo_link_reach(d.t, d.l_b[1], &c), KVL_TOPO_UNREACHABLE);
    assert_true(c.is_link);
    assert_int_equal(c.id, d.l_up);
    assert_int_equal(causes(d.t), 1);
    /* the first repaired: now the second is the cause of BHQ 1 and its switch */
    kvl_topo_set_link_up(d.t, d.l_up, true);
    assert_int_equal(kvl_topo_compute(d.t), 0);
    assert_node(d.t, d.bhq[1], KVL_TOPO_UNREACHABLE, true, d.l_b[1]);
    assert_node(d.t, d.sw[1], KVL_TOPO_UNREACHABLE, true, d.l_b[1]);
    assert_node(d.t, d.bhq[0], KVL_TOPO_REACHABLE, false, KVL_TOPO_NONE);
    assert_int_equal(cut(d.t, true, d.l_b[1]), 2);
    kvl_topo_free(d.t);
}

static void leaf_down_and_root_down(void **state)
{
    KVL_UNUSED(state);
    district_t d;
    district(&d);
    kvl_topo_set_node_up(d.t, d.sw[0], false);
    assert_int_equal(kvl_topo_compute(d.t), 0);
    assert_node(d.t, d.sw[0], KVL_TOPO_CAUSE, false, d.sw[0]);
    assert_int_equal(cut(d.t, false, d.sw[0]), 0);
    assert_int_equal(causes(d.t), 1);
    kvl_topo_set_node_up(d.t, d.sw[0], true);
    kvl_topo_set_node_up(d.t, d.noc, false);
    assert_int_equal(kvl_topo_compute(d.t), 0);
    assert_node(d.t, d.noc, KVL_TOPO_CAUSE, false, d.noc);
    assert_node(d.t, d.sw[0], KVL_TOPO_UNREACHABLE, false, d.noc);
    assert_int_equal(cut(d.t, false, d.noc), 7);
    kvl_topo_free(d.t);
}

static void unconnected_and_forgotten(void **state)
{
    KVL_UNUSED(state);
    district_t d;
    district(&d);
    uint32_t lone = node(d.t, KVL_TOPO_AGENT, "lone");
    kvl_topo_set_node_up(d.t, lone, false);
    kvl_topo_forget_link(d.t, d.l_b[2]); /* recabled away */
    assert_int_equal(kvl_topo_compute(d.t), 0);
    assert_node(d.t, lone, KVL_TOPO_UNCONNECTED, false, KVL_TOPO_NONE);
    assert_node(d.t, d.bhq[2], KVL_TOPO_UNCONNECTED, false, KVL_TOPO_NONE);
    assert_node(d.t, d.sw[2], KVL_TOPO_UNCONNECTED, false, KVL_TOPO_NONE);
    assert_int_equal(kvl_topo_link_reach(d.t, d.l_b[2], NULL), KVL_TOPO_UNCONNECTED);
    /* learned again, the reverse way round: the same link, back and up */
    uint32_t id;
    assert_int_equal(
        kvl_topo_add_link(d.t, d.bhq[2], d.dhq, KVL_TOPO_SRC_UPLINK, "eth1", "eth0", 2000, &id), 0);
    assert_int_equal(id, d.l_b[2]);
    kvl_topo_link_info_t li;
    assert_true(kvl_topo_link_get(d.t, id, &li));
    assert_false(li.forgotten);
    assert_int_equal(li.seen_ms, 2000);
    assert_string_equal(li.a_if, "eth0"); /* the DHQ's side */
    assert_int_equal(kvl_topo_compute(d.t), 0);
    assert_node(d.t, d.sw[2], KVL_TOPO_REACHABLE, false, KVL_TOPO_NONE);
    /* another source between the same two: another link */
    assert_int_equal(
        kvl_topo_add_link(d.t, d.dhq, d.bhq[2], KVL_TOPO_SRC_LLDP, "eth0", "eth1", 3000, &id), 0);
    assert_int_not_equal(id, d.l_b[2]);
    kvl_topo_free(d.t);
}

static void bad_arguments(void **state)
{
    KVL_UNUSED(state);
    kvl_topo_t *t;
    assert_int_equal(kvl_topo_new(&t), 0);
    uint32_t a, b, id;
    assert_int_equal(kvl_topo_add_node(t, KVL_TOPO_SITE, "", &a), KVL_EINVAL);
    assert_int_equal(kvl_topo_add_node(t, KVL_TOPO_KINDS, "x", &a), KVL_EINVAL);
    assert_int_equal(kvl_topo_add_node(t, KVL_TOPO_SITE, "x", &a), 0);
    assert_int_equal(kvl_topo_add_node(t, KVL_TOPO_SITE, "x", &b), 0);
    assert_int_equal(a, b);
    assert_int_equal(kvl_topo_add_node(t, KVL_TOPO_DEVICE, "x", &b), 0); /* other kind */
    assert_int_not_equal(a, b);
    assert_int_equal(kvl_topo_find_node(t, KVL_TOPO_DEVICE, "x"), b);
    assert_int_equal(kvl_topo_find_node(t, KVL_TOPO_AGENT, "x"), KVL_TOPO_NONE);
    assert_int_equal(kvl_topo_add_link(t, a, a, KVL_TOPO_SRC_TREE, NULL, NULL, 0, &id), KVL_EINVAL);
    assert_int_equal(kvl_topo_add_link(t, a, 99, KVL_TOPO_SRC_TREE, NULL, NULL, 0, &id),
                     KVL_EINVAL);
    assert_int_equal(kvl_topo_add_link(t, a, b, KVL_TOPO_SOURCES, NULL, NULL, 0, &id), KVL_EINVAL);
    /* interface names with the key's separator stay apart */
    uint32_t l1, l2;
    assert_int_equal(kvl_topo_add_link(t, a, b, KVL_TOPO_SRC_LLDP, "x|y", "z", 0, &l1), 0);
    assert_int_equal(kvl_topo_add_link(t, a, b, KVL_TOPO_SRC_LLDP, "x", "y|z", 0, &l2), 0);
    assert_int_not_equal(l1, l2);
    /* ids out of range are ignored or answered as unconnected */
    kvl_topo_set_node_up(t, 1234, false);
    kvl_topo_set_link_up(t, 1234, false);
    assert_int_equal(kvl_topo_node_reach(t, 1234, NULL), KVL_TOPO_UNCONNECTED);
    assert_int_equal(kvl_topo_compute(t), 0);
    assert_null(kvl_topo_node_name(t, 1234));
    assert_false(kvl_topo_link_get(t, 1234, &(kvl_topo_link_info_t){0}));
    kvl_topo_free(t);
    kvl_topo_free(NULL);
}

/* ---- random graphs against a naive fixed point ---- */

static uint64_t rng_state = 88172645463325252ULL;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

static void random_graphs(void **state)
{
    KVL_UNUSED(state);
    for (int round = 0; round < 300; round++) {
        kvl_topo_t *t;
        assert_int_equal(kvl_topo_new(&t), 0);
        uint32_t nn = 2 + rnd(40), nl = rnd(80);
        bool up[64], root[64], reach[64];
        for (uint32_t i = 0; i < nn; i++) {
            char name[16];
            snprintf(name, sizeof(name), "n%u", i);
            node(t, KVL_TOPO_DEVICE, name);
            up[i] = rnd(5) != 0;
            root[i] = rnd(10) == 0;
            kvl_topo_set_node_up(t, i, up[i]);
            kvl_topo_set_root(t, i, root[i]);
        }
        uint32_t la[128], lb[128];
        bool lup[128];
        uint32_t made = 0;
        for (uint32_t k = 0; k < nl; k++) {
            uint32_t a = rnd(nn), b = rnd(nn), id;
            if (a == b) {
                continue;
            }
            char ifn[16];
            snprintf(ifn, sizeof(ifn), "e%u", k);
            assert_int_equal(kvl_topo_add_link(t, a, b, KVL_TOPO_SRC_LLDP, ifn, "", 0, &id), 0);
            assert_int_equal(id, made);
            la[made] = a;
            lb[made] = b;
            lup[made] = rnd(6) != 0;
            kvl_topo_set_link_up(t, id, lup[made]);
            made++;
        }
        assert_int_equal(kvl_topo_compute(t), 0);
        /* reachable: the least fixed point, by repeated sweeps */
        for (uint32_t i = 0; i < nn; i++) {
            reach[i] = root[i] && up[i];
        }
        for (bool changed = true; changed;) {
            changed = false;
            for (uint32_t k = 0; k < made; k++) {
                if (!lup[k]) {
                    continue;
                }
                if (reach[la[k]] && !reach[lb[k]] && up[lb[k]]) {
                    reach[lb[k]] = changed = true;
                }
                if (reach[lb[k]] && !reach[la[k]] && up[la[k]]) {
                    reach[la[k]] = changed = true;
                }
            }
        }
        for (uint32_t i = 0; i < nn; i++) {
            kvl_topo_elem_t c;
            kvl_topo_reach_t r = kvl_topo_node_reach(t, i, &c);
            assert_int_equal(r == KVL_TOPO_REACHABLE, reach[i]);
            if (r == KVL_TOPO_CAUSE) {
                assert_false(up[i]);
                assert_false(c.is_link);
                assert_int_equal(c.id, i);
            }
            if (r == KVL_TOPO_UNREACHABLE) {
                /* its cause is a cause */
                if (c.is_link) {
                    assert_int_equal(kvl_topo_link_reach(t, c.id, NULL), KVL_TOPO_CAUSE);
                    assert_false(lup[c.id]);
                } else {
                    assert_int_equal(kvl_topo_node_reach(t, c.id, NULL), KVL_TOPO_CAUSE);
                }
                /* and connected to it: some link joins i to a node with the same cause or
                 * to the cause itself */
                bool joined = false;
                for (uint32_t k = 0; k < made && !joined; k++) {
                    uint32_t o = la[k] == i ? lb[k] : lb[k] == i ? la[k] : UINT32_MAX;
                    if (o == UINT32_MAX) {
                        continue;
                    }
                    kvl_topo_elem_t oc;
                    kvl_topo_reach_t orr = kvl_topo_node_reach(t, o, &oc);
                    joined = (c.is_link && c.id == k) ||
                             ((orr == KVL_TOPO_UNREACHABLE || orr == KVL_TOPO_CAUSE) &&
                              oc.is_link == c.is_link && oc.id == c.id);
                }
                assert_true(joined);
            }
            if (r == KVL_TOPO_UNCONNECTED) {
                /* no link to anything reached, a cause or behind one */
                for (uint32_t k = 0; k < made; k++) {
                    uint32_t o = la[k] == i ? lb[k] : lb[k] == i ? la[k] : UINT32_MAX;
                    if (o != UINT32_MAX) {
                        assert_int_equal(kvl_topo_node_reach(t, o, NULL), KVL_TOPO_UNCONNECTED);
                    }
                }
                assert_false(root[i]);
            }
        }
        /* a down link next to the reached part is a cause */
        for (uint32_t k = 0; k < made; k++) {
            if (!lup[k] && (reach[la[k]] || reach[lb[k]])) {
                assert_int_equal(kvl_topo_link_reach(t, k, NULL), KVL_TOPO_CAUSE);
            }
        }
        kvl_topo_free(t);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(all_reachable),
        cmocka_unit_test(router_down_is_the_cause),
        cmocka_unit_test(uplink_cut_is_the_cause),
        cmocka_unit_test(redundant_path_cuts_nothing),
        cmocka_unit_test(nearest_cut_wins),
        cmocka_unit_test(leaf_down_and_root_down),
        cmocka_unit_test(unconnected_and_forgotten),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(random_graphs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
