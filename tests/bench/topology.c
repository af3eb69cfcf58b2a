/*
 * topology.c — kvl-topology-bench: the time to recompute reachability after a failure and
 * to produce the root-cause alert's content, on a synthetic KSWAN-sized topology graph
 * (collector/topology/topo_graph.h).
 *
 *   build/tests/bench/kvl-topology-bench [--trials 500] [--seed 1]
 *
 * The graph: 3 NOCs, 14 district HQs, 152 block HQs, 63 mini POPs and 1,223 local-government
 * offices as sites (1,455); one router per site and 545 switches spread over the NOCs,
 * districts and blocks (2,000 devices); an agent at every NOC, district, block and mini POP
 * (232); links: each device and agent to its site (member), each router to its parent
 * site's router (uplink: districts dual-homed to two NOCs, blocks to their district, mini
 * POPs to a block, offices to a block or mini POP), the NOCs meshed, and LLDP links between
 * routers and switches of one district until there are 5,000 links. The NOC routers are
 * the roots.
 *
 * Each trial fails one element drawn at random (a district, block or mini-POP router, or a
 * router-to-router link), then times, on this process' clock: kvl_topo_compute, and the
 * root-cause alert's content (every cause, what it cuts off, counted by kind, the sites by
 * name); then, timed apart, what the collector does next with the same graph: the root-cause
 * alerts' update (collector/topology/rootcause.h: the alerts' labels and summaries, what was
 * cut off when) and the comparison with the previous graph (topo_changes.h: the versions);
 * then repairs it and recomputes. Figures: the median, p99 and maximum of each timed part,
 * and the largest cut seen. The last line:
 *   RESULT recompute_ms=<median> recompute_p99_ms=.. recompute_max_ms=.. alerts_ms=<median>
 *          alerts_p99_ms=.. sites=.. devices=.. links=.. agents=.. trials=.. cut_max=..
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvl.h"
#include "rootcause.h"
#include "topo_changes.h"
#include "topo_graph.h"
#include "topology.h"

#define N_NOC 3
#define N_DHQ 14
#define N_BHQ 152
#define N_MINI 63
#define N_OFFICE 1223
#define N_SWITCH 545
#define N_LINKS 5000

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "kvl-topology-bench: %s: %s\n", what, kvl_strerror(rc));
    exit(1);
}

/* The node "<prefix>-<i><suffix>". */
static uint32_t add_node(kvl_topo_t *t, kvl_topo_kind_t kind, const char *prefix, int i,
                         const char *suffix)
{
    char name[64];
    snprintf(name, sizeof(name), "%s-%d%s", prefix, i, suffix);
    uint32_t id;
    int rc = kvl_topo_add_node(t, kind, name, &id);
    if (rc != 0) {
        die("add_node", rc);
    }
    return id;
}

static uint32_t add_link(kvl_topo_t *t, uint32_t a, uint32_t b, kvl_topo_source_t src)
{
    uint32_t id;
    int rc = kvl_topo_add_link(t, a, b, src, "ge-0/0/1", "ge-0/0/2", 0, &id);
    if (rc != 0) {
        die("add_link", rc);
    }
    return id;
}

typedef struct graph {
    kvl_topo_t *t;
    uint32_t routers[N_NOC + N_DHQ + N_BHQ + N_MINI + N_OFFICE];
    int district_of[N_NOC + N_DHQ + N_BHQ + N_MINI + N_OFFICE]; /* -1: a NOC */
    size_t n_routers;
    uint32_t *backbone; /* router-to-router links */
    size_t n_backbone;
    size_t sites, devices, agents, links;
} graph_t;

static void build(graph_t *g)
{
    int rc = kvl_topo_new(&g->t);
    if (rc != 0) {
        die("new", rc);
    }
    kvl_topo_t *t = g->t;
    g->backbone = malloc(N_LINKS * sizeof(*g->backbone));
    if (g->backbone == NULL) {
        die("malloc", KVL_ENOMEM);
    }
    size_t r = 0;
    /* a site with its router (member link) and maybe an agent */
    struct {
        const char *site, *rtr, *agent; /* name prefix, router suffix, agent prefix */
        int n;
    } kinds[] = {{"noc", "/core", "agent-noc", N_NOC},
                 {"dhq", "/rtr", "agent-dhq", N_DHQ},
                 {"bhq", "/rtr", "agent-bhq", N_BHQ},
                 {"mini", "/rtr", "agent-mini", N_MINI},
                 {"lsgi", "/cpe", NULL, N_OFFICE}};
    size_t first[5];
    for (size_t k = 0; k < KVL_ARRAY_SIZE(kinds); k++) {
        first[k] = r;
        for (int i = 0; i < kinds[k].n; i++) {
            uint32_t s = add_node(t, KVL_TOPO_SITE, kinds[k].site, i, "");
            uint32_t d = add_node(t, KVL_TOPO_DEVICE, kinds[k].site, i, kinds[k].rtr);
            add_link(t, s, d, KVL_TOPO_SRC_MEMBER);
            g->sites++;
            g->devices++;
            if (kinds[k].agent != NULL) {
                uint32_t a = add_node(t, KVL_TOPO_AGENT, kinds[k].agent, i, "");
                add_link(t, s, a, KVL_TOPO_SRC_MEMBER);
                g->agents++;
            }
            g->routers[r++] = d;
        }
    }
    g->n_routers = r;
    /* uplinks: NOCs meshed (roots), districts dual-homed, the rest up the tree */
    for (int i = 0; i < N_NOC; i++) {
        kvl_topo_set_root(t, g->routers[first[0] + (size_t)i], true);
        g->district_of[first[0] + (size_t)i] = -1;
        for (int j = i + 1; j < N_NOC; j++) {
            g->backbone[g->n_backbone++] =
                add_link(t, g->routers[first[0] + (size_t)i], g->routers[first[0] + (size_t)j],
                         KVL_TOPO_SRC_LLDP);
        }
    }
    for (int i = 0; i < N_DHQ; i++) {
        size_t me = first[1] + (size_t)i;
        g->district_of[me] = i;
        g->backbone[g->n_backbone++] =
            add_link(t, g->routers[me], g->routers[i % N_NOC], KVL_TOPO_SRC_UPLINK);
        g->backbone[g->n_backbone++] =
            add_link(t, g->routers[me], g->routers[(i + 1) % N_NOC], KVL_TOPO_SRC_LLDP);
    }
    for (int i = 0; i < N_BHQ; i++) {
        size_t me = first[2] + (size_t)i;
        g->district_of[me] = i % N_DHQ;
        g->backbone[g->n_backbone++] = add_link(
            t, g->routers[me], g->routers[first[1] + (size_t)(i % N_DHQ)], KVL_TOPO_SRC_UPLINK);
    }
    for (int i = 0; i < N_MINI; i++) {
        size_t me = first[3] + (size_t)i;
        size_t up = first[2] + (size_t)rnd(N_BHQ);
        g->district_of[me] = g->district_of[up];
        g->backbone[g->n_backbone++] =
            add_link(t, g->routers[me], g->routers[up], KVL_TOPO_SRC_UPLINK);
    }
    for (int i = 0; i < N_OFFICE; i++) {
        size_t me = first[4] + (size_t)i;
        size_t up = rnd(4) == 0 ? first[3] + (size_t)rnd(N_MINI) : first[2] + (size_t)rnd(N_BHQ);
        g->district_of[me] = g->district_of[up];
        g->backbone[g->n_backbone++] =
            add_link(t, g->routers[me], g->routers[up], KVL_TOPO_SRC_UPLINK);
    }
    /* switches at the NOCs, districts and blocks, each on its site's router */
    for (int i = 0; i < N_SWITCH; i++) {
        size_t at = (size_t)rnd((uint32_t)(N_NOC + N_DHQ + N_BHQ));
        uint32_t sw = add_node(t, KVL_TOPO_DEVICE, "switch", i, "");
        g->devices++;
        add_link(t, sw, g->routers[at], KVL_TOPO_SRC_LLDP);
    }
    /* LLDP between routers of one district (rings, backup paths) until N_LINKS */
    size_t links = kvl_topo_links(t);
    for (int tries = 0; links < N_LINKS && tries < 1000000; tries++) {
        size_t a = first[1] + rnd((uint32_t)(first[4] - first[1]));
        size_t b = first[1] + rnd((uint32_t)(first[4] - first[1]));
        if (a == b || g->district_of[a] != g->district_of[b]) {
            continue;
        }
        uint32_t id = add_link(t, g->routers[a], g->routers[b], KVL_TOPO_SRC_LLDP);
        if (id >= links) { /* new (not the same pair again) */
            g->backbone[g->n_backbone++] = id;
            links = kvl_topo_links(t);
        }
    }
    g->links = kvl_topo_links(t);
}

/* The root-cause alert's content: per cause, what it cuts off by kind, the sites named. */
typedef struct summary {
    const kvl_topo_t *t;
    size_t by_kind[KVL_TOPO_KINDS];
    size_t name_bytes;
    size_t total;
} summary_t;

static bool on_cut(void *ctx, uint32_t node)
{
    summary_t *s = ctx;
    kvl_topo_kind_t k = kvl_topo_node_kind(s->t, node);
    s->by_kind[k]++;
    if (k == KVL_TOPO_SITE) {
        s->name_bytes += strlen(kvl_topo_node_name(s->t, node)) + 2;
    }
    return true;
}

static bool on_cause(void *ctx, kvl_topo_elem_t c)
{
    summary_t *s = ctx;
    s->total += kvl_topo_each_cut(s->t, c, on_cut, s);
    return true;
}

static void on_alert(void *ctx, const kvl_alert_t *a)
{
    (void)a;
    (*(size_t *)ctx)++;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int trials = 500;
    static const struct option opts[] = {
        {"trials", required_argument, NULL, 't'}, {"seed", required_argument, NULL, 's'}, {0}};
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        if (c == 't') {
            trials = atoi(optarg);
        } else if (c == 's') {
            rng = strtoull(optarg, NULL, 10) * 0x9e3779b97f4a7c15ULL + 1;
        } else {
            fprintf(stderr, "usage: kvl-topology-bench [--trials N] [--seed N]\n");
            return 2;
        }
    }
    if (trials < 1 || trials > 1000000) {
        fprintf(stderr, "kvl-topology-bench: --trials 1..1000000\n");
        return 2;
    }
    graph_t g = {0};
    double t0 = now_ms();
    build(&g);
    double t1 = now_ms();
    int rc = kvl_topo_compute(g.t);
    double t2 = now_ms();
    if (rc != 0) {
        die("compute", rc);
    }
    printf("graph: %zu sites, %zu devices, %zu agents, %zu links (%zu router-to-router); "
           "built in %.1f ms, first computation (with the adjacency) %.3f ms\n",
           g.sites, g.devices, g.agents, g.links, g.n_backbone, t1 - t0, t2 - t1);
    double *ms = malloc((size_t)trials * sizeof(*ms));
    double *ams = malloc((size_t)trials * sizeof(*ams));
    size_t alerts = 0;
    kvl_rootcause_t *rcause = NULL;
    kvl_topo_changes_t *changes = NULL;
    char err[256];
    kvl_rootcause_opts_t ro = {.hold_ms = 0, .settle_ms = 120000};
    if (kvl_rootcause_new(&ro, on_alert, &alerts, &rcause) != 0 ||
        kvl_topo_changes_open(NULL, 10000, &changes, err, sizeof(err)) != 0) {
        die("rootcause", KVL_ENOMEM);
    }
    kvl_topo_changes_diff(changes, g.t, 0, kvl_topology_cause_reason);
    if (ms == NULL || ams == NULL) {
        die("malloc", KVL_ENOMEM);
    }
    size_t cut_max = 0;
    const char *cut_max_what = "";
    char cut_max_name[128] = "";
    for (int i = 0; i < trials; i++) {
        bool is_link = rnd(2) == 0;
        uint32_t id = is_link ? g.backbone[rnd((uint32_t)g.n_backbone)]
                              : g.routers[N_NOC + rnd((uint32_t)(N_DHQ + N_BHQ + N_MINI))];
        if (is_link) {
            kvl_topo_set_link_up(g.t, id, false);
        } else {
            kvl_topo_set_node_up(g.t, id, false);
        }
        summary_t s = {.t = g.t};
        double a = now_ms();
        rc = kvl_topo_compute(g.t);
        kvl_topo_each_cause(g.t, on_cause, &s);
        double b = now_ms();
        if (rc != 0) {
            die("compute", rc);
        }
        ms[i] = b - a;
        int64_t now = (int64_t)(i + 1) * 2000;
        a = now_ms();
        kvl_rootcause_update(rcause, g.t, now);
        kvl_topo_changes_diff(changes, g.t, now, kvl_topology_cause_reason);
        ams[i] = now_ms() - a;
        if (s.total > cut_max) {
            cut_max = s.total;
            cut_max_what = is_link ? "link" : "router";
            if (is_link) {
                kvl_topo_link_info_t li;
                kvl_topo_link_get(g.t, id, &li);
                snprintf(cut_max_name, sizeof(cut_max_name), "%s - %s",
                         kvl_topo_node_name(g.t, li.a), kvl_topo_node_name(g.t, li.b));
            } else {
                snprintf(cut_max_name, sizeof(cut_max_name), "%s", kvl_topo_node_name(g.t, id));
            }
        }
        if (is_link) {
            kvl_topo_set_link_up(g.t, id, true);
        } else {
            kvl_topo_set_node_up(g.t, id, true);
        }
    }
    /* after the trials everything is up again: nothing may be cut off */
    if (kvl_topo_compute(g.t) != 0) {
        die("compute", KVL_ENOMEM);
    }
    summary_t s = {.t = g.t};
    kvl_topo_each_cause(g.t, on_cause, &s);
    if (s.total != 0) {
        fprintf(stderr, "kvl-topology-bench: %zu nodes cut off with nothing down\n", s.total);
        return 1;
    }
    qsort(ms, (size_t)trials, sizeof(*ms), cmp_double);
    qsort(ams, (size_t)trials, sizeof(*ams), cmp_double);
    double a50 = ams[(size_t)(trials - 1) / 2];
    double a99 = ams[(size_t)((double)(trials - 1) * 0.99)];
    double p50 = ms[(size_t)(trials - 1) / 2];
    double p99 = ms[(size_t)((double)(trials - 1) * 0.99)];
    double max = ms[trials - 1];
    printf("%d failures (a district, block or mini-POP router, or a router-to-router link): "
           "recompute + root-cause content p50 %.3f ms, p99 %.3f ms, max %.3f ms; the largest "
           "cut: %zu nodes behind %s %s\n",
           trials, p50, p99, max, cut_max, cut_max_what, cut_max_name);
    printf("then the root-cause alerts' update and the versions' comparison: p50 %.3f ms, "
           "p99 %.3f ms (%zu alert changes, %llu versions)\n",
           a50, a99, alerts, (unsigned long long)kvl_topo_changes_version(changes));
    printf("RESULT recompute_ms=%.3f recompute_p99_ms=%.3f recompute_max_ms=%.3f alerts_ms=%.3f "
           "alerts_p99_ms=%.3f sites=%zu devices=%zu links=%zu agents=%zu trials=%d "
           "cut_max=%zu\n",
           p50, p99, max, a50, a99, g.sites, g.devices, g.links, g.agents, trials, cut_max);
    kvl_rootcause_free(rcause);
    kvl_topo_changes_free(changes);
    free(ams);
    free(ms);
    free(g.backbone);
    kvl_topo_free(g.t);
    return 0;
}
