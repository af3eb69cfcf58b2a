/*
 * kswan-model.h — a simulated KSWAN for kvl-loadgen --kswan: the state network's site tree,
 * its agents, devices, interfaces and probed links, and how their figures move.
 *
 * Pure: no I/O, no clock of its own (times are passed in), deterministic from a seed. The
 * sizes at scale 1 are the network's: 3 NOCs, 14 district HQs, 152 block HQs, 63 mini POPs
 * and 3 state data centres (6 agents each), 250 agents, 2,000 devices (routers, firewalls,
 * switches) and 100,000 interfaces. A smaller scale F keeps every kind of site and device:
 * about sqrt(F) of the agents of each kind, each with about sqrt(F) of its devices.
 *
 * Series ids of an agent: each device's "device" family (5 ids), then each of its
 * interfaces' "if" family (15 ids), then each link's "link" family (17 ids).
 */
#ifndef KVL_KSWAN_MODEL_H
#define KVL_KSWAN_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef enum { KS_NOC, KS_DHQ, KS_BHQ, KS_MPOP, KS_SDC, KS_KINDS } ks_kind_t;

enum { KS_IF_CTRS = 12, KS_IF_METRICS = 15, KS_DEV_METRICS = 5, KS_LINK_METRICS = 17 };

typedef struct ks_iface {
    char name[40];
    char alias[56];
    uint32_t ifindex;
    uint32_t type;  /* ifType: 6 ethernet, 24 loopback, 53 virtual, 131 tunnel, 161 lag */
    uint64_t speed; /* bits/s, from the name */
    double load;    /* mean share of the speed in use at the daily peak */
    uint64_t ctr[KS_IF_CTRS];
    uint8_t oper, admin;
} ks_iface_t;

typedef struct ks_device {
    char name[64];
    char address[46];
    const char *model;
    ks_iface_t *ifs;
    unsigned n_ifs;
    unsigned index;     /* position in the agent's configuration, from 0 */
    uint32_t id;        /* of its "device" family; its interfaces follow */
    uint32_t phase_ms;  /* when in the step it is polled */
    int64_t boot_ms;    /* for sysUpTime */
    unsigned down_left; /* steps it stays down; 0: up */
    int64_t down_since_ms;
    bool is_switch;
} ks_device_t;

typedef struct ks_link {
    char target[64];
    char address[46];
    uint32_t id;
    uint32_t phase_ms;
    double rtt_ms;   /* base round trip */
    double loss_pct; /* base loss */
} ks_link_t;

typedef struct ks_agent {
    char id[64];
    char site[64];
    ks_kind_t kind;
    ks_device_t *devs;
    unsigned n_devs;
    ks_link_t *links;
    unsigned n_links;
    uint32_t n_ids; /* series ids used, 1 .. n_ids */
    uint32_t rng;
} ks_agent_t;

typedef struct ks_site {
    char name[64];
    const char *parent; /* NULL for a root */
    ks_kind_t kind;
} ks_site_t;

typedef struct ks_net {
    ks_agent_t *agents;
    unsigned n_agents;
    ks_site_t *sites; /* every site of the tree, whether its agents are simulated or not */
    unsigned n_sites;
    unsigned n_devices, n_ifaces, n_links;
    unsigned step_s;
} ks_net_t;

/* Builds the network at scale (0, 1] with seed, polled every step_s. Returns 0, or -1 (out
 * of memory or a bad argument). Free with ks_free. */
int ks_build(ks_net_t *net, double scale, uint32_t seed, unsigned step_s);
void ks_free(ks_net_t *net);

/* The kind's name in the collector's site tree (noc, dhq, bhq, minipop, sdc). */
const char *ks_kind_name(ks_kind_t k);

/* Writes the site tree as collector.yaml's `sites:` list (a sites file). */
void ks_write_sites(const ks_net_t *net, FILE *f);

/* The daily curve at wall time t_ms (India, UTC+5:30): 0.15 at night, 1 at 14:00. */
double ks_diurnal(int64_t t_ms);

/* One poll interval of dt_s seconds ending at t_ms: advances the interface's counters. */
void ks_iface_step(ks_iface_t *f, uint32_t *rng, int64_t t_ms, double dt_s);

/* One interval's link figures at t_ms, in the link family's order (prober.c): ints holds
 * sent received loss_burst duplicates reordered, reals lost_pct and the rest. */
void ks_link_figures(const ks_link_t *l, uint32_t *rng, int64_t t_ms, uint64_t ints[5],
                     double reals[12]);

/* xorshift32 and a uniform [0, 1) from it. */
uint32_t ks_rnd(uint32_t *s);
double ks_rnd01(uint32_t *s);

#endif
