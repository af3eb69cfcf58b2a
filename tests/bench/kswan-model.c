/*
 * kswan-model.c — the simulated KSWAN of kvl-loadgen --kswan (see kswan-model.h): the site
 * tree with district and block names, each site's devices and their interfaces, the links
 * agents probe, and how traffic, round trips and losses move through the day.
 *
 * Names: the 14 districts are the state's; block HQs and mini POPs take plausible place
 * names (a few real ones, the rest made of syllables from the seed), unique in the state.
 * Interfaces are named as IOS names them, and their speed comes from the name.
 */
#include "kswan-model.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"

/* ------------------------------------------------------------------ randomness */

uint32_t ks_rnd(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

double ks_rnd01(uint32_t *s)
{
    return (double)(ks_rnd(s) >> 8) / (double)(1u << 24);
}

/* Copies src into dst of size n, cut to fit. */
static void copy(char *dst, size_t n, const char *src)
{
    size_t len = strnlen(src, n - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/* ------------------------------------------------------------------ the state's sites */

static const struct {
    const char *name;
    unsigned blocks;
    const char *real[4]; /* a few of its real block names, then made-up ones */
} districts[] = {
    {"thiruvananthapuram", 11, {"nemom", "varkala", "vamanapuram", "parassala"}},
    {"kollam", 11, {"chavara", "anchal", "kottarakkara", "pathanapuram"}},
    {"pathanamthitta", 8, {"konni", "ranni", "mallappally", "pandalam"}},
    {"alappuzha", 12, {"haripad", "kayamkulam", "ambalappuzha", "cherthala"}},
    {"kottayam", 11, {"pala", "vaikom", "pampady", "erattupetta"}},
    {"idukki", 8, {"thodupuzha", "adimali", "kattappana", "devikulam"}},
    {"ernakulam", 14, {"aluva", "angamaly", "kothamangalam", "vypin"}},
    {"thrissur", 16, {"chavakkad", "mathilakam", "irinjalakuda", "chalakudy"}},
    {"palakkad", 13, {"ottapalam", "chittur", "alathur", "mannarkkad"}},
    {"malappuram", 15, {"tirur", "perinthalmanna", "nilambur", "kondotty"}},
    {"kozhikode", 12, {"vadakara", "koyilandy", "balussery", "kunnamangalam"}},
    {"wayanad", 4, {"kalpetta", "mananthavady", "sulthanbathery", "panamaram"}},
    {"kannur", 11, {"thalassery", "payyanur", "iritty", "taliparamba"}},
    {"kasaragod", 6, {"kanhangad", "manjeshwar", "nileshwar", "karadka"}},
};
enum { N_DISTRICTS = 14, N_BLOCKS = 152, N_MPOPS = 63, N_NOCS = 3, N_SDCS = 3, SDC_AGENTS = 6 };

static const char *const nocs[N_NOCS] = {"noc-tvm", "noc-kochi", "noc-kozhikode"};
static const char *const sdcs[N_SDCS] = {"sdc1-tvm", "sdc2-tvm", "sdc3-kochi"};
static const unsigned sdc_noc[N_SDCS] = {0, 0, 1};

static void make_place(uint32_t *rng, char *out, size_t len)
{
    static const char *const onset[] = {"ka", "ko", "ku", "pa",  "pu", "ve",  "va",  "ma",
                                        "mu", "ne", "na", "cha", "ka", "thi", "pe",  "eda",
                                        "ar", "ka", "ki", "po",  "ra", "ta",  "ela", "che"};
    static const char *const mid[] = {"na", "la",  "ri",  "tta", "ya", "va",
                                      "ru", "nga", "lla", "",    "",   ""};
    static const char *const suffix[] = {"kara",   "puram", "kulam", "kode",     "pally",
                                         "ssery",  "thara", "nad",   "mala",     "kadu",
                                         "ppuzha", "kavu",  "moodu", "thuruthy", "angadi",
                                         "padam",  "chira", "kunnu", "vila",     "cheri"};
    snprintf(out, len, "%s%s%s", onset[ks_rnd(rng) % KVL_ARRAY_SIZE(onset)],
             mid[ks_rnd(rng) % KVL_ARRAY_SIZE(mid)], suffix[ks_rnd(rng) % KVL_ARRAY_SIZE(suffix)]);
}

/* Place names used so far (block HQs and mini POPs share one namespace). */
typedef struct names {
    char (*v)[32];
    unsigned n;
} names_t;

static bool name_taken(const names_t *u, const char *s)
{
    for (unsigned i = 0; i < u->n; i++) {
        if (strcmp(u->v[i], s) == 0) {
            return true;
        }
    }
    return false;
}

static const char *new_place(names_t *u, uint32_t *rng, const char *real)
{
    char s[32];
    if (real != NULL && !name_taken(u, real)) {
        copy(s, sizeof(s), real);
    } else {
        for (int tries = 0; tries < 1000; tries++) {
            make_place(rng, s, sizeof(s));
            if (!name_taken(u, s)) {
                break;
            }
        }
    }
    copy(u->v[u->n], sizeof(u->v[u->n]), s);
    return u->v[u->n++];
}

const char *ks_kind_name(ks_kind_t k)
{
    static const char *const n[KS_KINDS] = {"noc", "dhq", "bhq", "minipop", "sdc"};
    return (unsigned)k < KS_KINDS ? n[k] : "?";
}

/* ------------------------------------------------------------------ devices */

typedef enum { M_CORE, M_ROUTER, M_FIREWALL, M_SW48, M_SW24, M_DCSW } model_t;

static const char *const model_names[] = {"ASR1002-HX", "ISR4451-X", "FPR-2130",
                                          "C9300-48T",  "C9200-24T", "N9K-C93180YC"};

static uint64_t speed_of(const char *name)
{
    if (strncmp(name, "HundredGigE", 11) == 0) {
        return 100000000000ull;
    }
    if (strncmp(name, "FortyGigabitEthernet", 20) == 0) {
        return 40000000000ull;
    }
    if (strncmp(name, "TenGigabitEthernet", 18) == 0) {
        return 10000000000ull;
    }
    if (strncmp(name, "FastEthernet", 12) == 0) {
        return 100000000ull;
    }
    if (strncmp(name, "Port-channel", 12) == 0) {
        return 20000000000ull; /* two 10G members */
    }
    if (strncmp(name, "Tunnel", 6) == 0) {
        return 100000000ull;
    }
    if (strncmp(name, "Loopback", 8) == 0) {
        return 8000000000ull;
    }
    return 1000000000ull; /* GigabitEthernet, Vlan (IOS reports 1G for an SVI) */
}

static uint32_t type_of(const char *name)
{
    if (strncmp(name, "Vlan", 4) == 0 || strchr(name, '.') != NULL) {
        return 53;
    }
    if (strncmp(name, "Port-channel", 12) == 0) {
        return 161;
    }
    if (strncmp(name, "Loopback", 8) == 0) {
        return 24;
    }
    if (strncmp(name, "Tunnel", 6) == 0) {
        return 131;
    }
    return 6;
}

typedef struct ifs_builder {
    ks_iface_t *v;
    unsigned n, cap;
} ifs_builder_t;

static int add_if(ifs_builder_t *b, uint32_t *rng, const char *alias, const char *fmt, ...)
    KVL_PRINTF(4, 5);

static int add_if(ifs_builder_t *b, uint32_t *rng, const char *alias, const char *fmt, ...)
{
    if (b->n == b->cap) {
        unsigned cap = b->cap ? b->cap * 2 : 64;
        ks_iface_t *v = realloc(b->v, cap * sizeof(*v));
        if (v == NULL) {
            return -1;
        }
        b->v = v;
        b->cap = cap;
    }
    ks_iface_t *f = &b->v[b->n];
    memset(f, 0, sizeof(*f));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->name, sizeof(f->name), fmt, ap);
    va_end(ap);
    copy(f->alias, sizeof(f->alias), alias);
    f->speed = speed_of(f->name);
    f->type = type_of(f->name);
    f->ifindex = b->n < 1000 ? 1 + b->n : 1000 + b->n;
    bool uplink = alias[0] != '\0';
    f->admin = 1;
    f->oper = 1;
    if (f->type == 6 && !uplink) {
        /* Access ports: some unused (admin down), some with nothing plugged in. */
        uint32_t r = ks_rnd(rng) % 100;
        if (r < 8) {
            f->admin = 2;
            f->oper = 2;
        } else if (r < 20) {
            f->oper = 2;
        }
    }
    double u = ks_rnd01(rng);
    if (f->oper != 1 || f->type == 24) {
        f->load = 0;
    } else if (uplink || f->type == 161) {
        f->load = 0.10 + 0.55 * u;
    } else if (f->type == 53 || f->type == 131) {
        f->load = 0.002 + 0.05 * u;
    } else {
        f->load = 0.003 + 0.25 * u * u;
    }
    /* Counters as after months of uptime at half the peak load; 64-bit counters of a 100G
     * port at full load would take 46 years to wrap, so they never do here. */
    double secs = 86400.0 * (30 + 120 * ks_rnd01(rng));
    double octets = 0.5 * f->load * (double)f->speed / 8.0 * secs;
    double pkts = octets / 650.0;
    f->ctr[0] = (uint64_t)octets;
    f->ctr[1] = (uint64_t)(octets * (0.5 + ks_rnd01(rng)));
    f->ctr[2] = (uint64_t)pkts;
    f->ctr[3] = (uint64_t)(pkts * (0.5 + ks_rnd01(rng)));
    f->ctr[4] = (uint64_t)(pkts * 0.002);
    f->ctr[5] = (uint64_t)(pkts * 0.001);
    f->ctr[6] = (uint64_t)(pkts * 0.0005);
    f->ctr[7] = (uint64_t)(pkts * 0.0002);
    for (int k = 8; k < KS_IF_CTRS; k++) {
        f->ctr[k] = ks_rnd(rng) % 5000;
    }
    b->n++;
    return 0;
}

/* The interfaces a model has; parent names its uplink's far end. */
static int build_ifs(ifs_builder_t *b, model_t m, uint32_t *rng, const char *parent)
{
    char up[56];
    snprintf(up, sizeof(up), "uplink to %.40s", parent);
    int rc = 0;
    switch (m) {
    case M_CORE:
        for (unsigned i = 0; i < 8 && rc == 0; i++) {
            rc = add_if(b, rng, i < 4 ? up : "", "TenGigabitEthernet0/0/%u", i);
        }
        for (unsigned i = 0; i < 8 && rc == 0; i++) {
            rc = add_if(b, rng, "", "GigabitEthernet0/1/%u", i);
        }
        for (unsigned i = 1; i <= 14 && rc == 0; i++) {
            rc = add_if(b, rng, "", "TenGigabitEthernet0/0/0.%u", 100 + i);
        }
        for (unsigned i = 1; i <= 2 && rc == 0; i++) {
            rc = add_if(b, rng, up, "Port-channel%u", i);
        }
        for (unsigned i = 0; i < 7 && rc == 0; i++) {
            rc = add_if(b, rng, "", "Tunnel%u", 100 + i);
        }
        rc = rc ? rc : add_if(b, rng, "", "Loopback0");
        break;
    case M_ROUTER:
        for (unsigned i = 0; i < 4 && rc == 0; i++) {
            rc = add_if(b, rng, i == 0 ? up : "", "GigabitEthernet0/0/%u", i);
        }
        for (unsigned i = 0; i < 2 && rc == 0; i++) {
            rc = add_if(b, rng, "", "TenGigabitEthernet0/1/%u", i);
        }
        for (unsigned i = 1; i <= 8 && rc == 0; i++) {
            rc = add_if(b, rng, "", "GigabitEthernet0/0/1.%u", 100 + i * 10);
        }
        for (unsigned i = 0; i < 4 && rc == 0; i++) {
            rc = add_if(b, rng, "", "Tunnel%u", 10 + i);
        }
        rc = rc ? rc : add_if(b, rng, "", "Loopback0");
        rc = rc ? rc : add_if(b, rng, "", "Port-channel1");
        break;
    case M_FIREWALL:
        for (unsigned i = 1; i <= 8 && rc == 0; i++) {
            rc = add_if(b, rng, i == 1 ? up : "", "GigabitEthernet1/%u", i);
        }
        for (unsigned i = 9; i <= 12 && rc == 0; i++) {
            rc = add_if(b, rng, "", "TenGigabitEthernet1/%u", i);
        }
        for (unsigned i = 1; i <= 2 && rc == 0; i++) {
            rc = add_if(b, rng, "", "Port-channel%u", i);
        }
        for (unsigned i = 0; i < 2 && rc == 0; i++) {
            rc = add_if(b, rng, "", "Vlan%u", 10 + i);
        }
        break;
    case M_SW48:
    case M_SW24: {
        unsigned ports = m == M_SW48 ? 48 : 24, tens = m == M_SW48 ? 4 : 2;
        for (unsigned i = 1; i <= ports && rc == 0; i++) {
            rc = add_if(b, rng, "", "GigabitEthernet1/0/%u", i);
        }
        for (unsigned i = 1; i <= tens && rc == 0; i++) {
            rc = add_if(b, rng, i <= 2 ? up : "", "TenGigabitEthernet1/1/%u", i);
        }
        rc = rc ? rc : add_if(b, rng, up, "Port-channel1");
        rc = rc ? rc : add_if(b, rng, "", "Vlan1");
        rc = rc ? rc : add_if(b, rng, "", "Vlan100");
        break;
    }
    case M_DCSW:
        for (unsigned i = 1; i <= 48 && rc == 0; i++) {
            rc = add_if(b, rng, "", "TenGigabitEthernet1/0/%u", i);
        }
        for (unsigned i = 49; i <= 54 && rc == 0; i++) {
            rc = add_if(b, rng, i <= 50 ? up : "", "HundredGigE1/0/%u", i);
        }
        for (unsigned i = 1; i <= 4 && rc == 0; i++) {
            rc = add_if(b, rng, i == 1 ? up : "", "Port-channel%u", i);
        }
        for (unsigned i = 0; i < 4 && rc == 0; i++) {
            rc = add_if(b, rng, "", "Vlan%u", 200 + i);
        }
        break;
    }
    return rc;
}

/* The devices of a site of kind k at full scale, in the order a scale keeps them. */
static unsigned plan_devices(ks_kind_t k, model_t *out, const char **role)
{
    unsigned n = 0;
    switch (k) {
    case KS_NOC:
        for (unsigned i = 0; i < 4; i++) {
            out[n] = M_CORE, role[n++] = "rtr";
        }
        for (unsigned i = 0; i < 2; i++) {
            out[n] = M_FIREWALL, role[n++] = "fw";
        }
        for (unsigned i = 0; i < 30; i++) {
            out[n] = M_SW48, role[n++] = "sw";
        }
        break;
    case KS_DHQ:
        for (unsigned i = 0; i < 2; i++) {
            out[n] = M_ROUTER, role[n++] = "rtr";
        }
        out[n] = M_FIREWALL, role[n++] = "fw";
        for (unsigned i = 0; i < 20; i++) {
            out[n] = M_SW48, role[n++] = "sw";
        }
        break;
    case KS_BHQ:
        out[n] = M_ROUTER, role[n++] = "rtr";
        out[n] = M_SW48, role[n++] = "sw";
        for (unsigned i = 0; i < 3; i++) {
            out[n] = M_SW24, role[n++] = "sw";
        }
        break;
    case KS_MPOP:
        for (unsigned i = 0; i < 2; i++) {
            out[n] = M_SW24, role[n++] = "sw";
        }
        break;
    case KS_SDC:
        for (unsigned i = 0; i < 2; i++) {
            out[n] = M_FIREWALL, role[n++] = "fw";
        }
        for (unsigned i = 0; i < 36; i++) {
            out[n] = M_DCSW, role[n++] = "sw";
        }
        break;
    case KS_KINDS:
        break;
    }
    return n;
}

/* ------------------------------------------------------------------ building */

typedef struct site_plan {
    ks_kind_t kind;
    char site[64];
    char agent[64];
    char devprefix[64]; /* device names are <devprefix>-<role><n> */
    const char *parent;
    const char *targets[3]; /* probed links */
    unsigned n_targets;
    unsigned dev_base; /* SDC agents number their devices from here */
} site_plan_t;

static unsigned scaled(unsigned n, double s)
{
    long v = lround((double)n * s);
    return v < 1 ? 1 : (unsigned)v;
}

static int add_site(ks_net_t *net, const char *name, const char *parent, ks_kind_t k)
{
    ks_site_t *s = &net->sites[net->n_sites++];
    copy(s->name, sizeof(s->name), name);
    s->parent = parent;
    s->kind = k;
    return 0;
}

static int build_agent(ks_net_t *net, const site_plan_t *p, double s, uint32_t seed)
{
    ks_agent_t *a = &net->agents[net->n_agents++];
    memset(a, 0, sizeof(*a));
    copy(a->id, sizeof(a->id), p->agent);
    copy(a->site, sizeof(a->site), p->site);
    a->kind = p->kind;
    a->rng = seed ^ (0x9e3779b9u * (net->n_agents + 7));
    ks_rnd(&a->rng);
    model_t models[64];
    const char *roles[64];
    unsigned full = plan_devices(p->kind, models, roles);
    unsigned n = s >= 1 ? full : scaled(full, s);
    a->devs = calloc(n, sizeof(*a->devs));
    a->links = calloc(p->n_targets ? p->n_targets : 1, sizeof(*a->links));
    if (a->devs == NULL || a->links == NULL) {
        return -1;
    }
    unsigned count[3] = {0};
    unsigned agent_no = net->n_agents;
    for (unsigned i = 0; i < n; i++) {
        ks_device_t *d = &a->devs[i];
        int r = roles[i][0] == 'r' ? 0 : roles[i][0] == 'f' ? 1 : 2;
        snprintf(d->name, sizeof(d->name), "%.48s-%.3s%u", p->devprefix, roles[i],
                 p->dev_base + ++count[r]);
        snprintf(d->address, sizeof(d->address), "10.%u.%u.%u", 10 + agent_no / 200, agent_no % 200,
                 10 + i);
        d->model = model_names[models[i]];
        d->index = i;
        d->is_switch = models[i] == M_SW48 || models[i] == M_SW24 || models[i] == M_DCSW;
        d->boot_ms = -(int64_t)(86400000.0 * (20 + 300 * ks_rnd01(&a->rng)));
        ifs_builder_t b = {0};
        if (build_ifs(&b, models[i], &a->rng, p->parent ? p->parent : p->site) != 0) {
            free(b.v);
            return -1;
        }
        d->ifs = b.v;
        d->n_ifs = b.n;
        a->n_devs++;
    }
    for (unsigned i = 0; i < p->n_targets; i++) {
        ks_link_t *l = &a->links[i];
        copy(l->target, sizeof(l->target), p->targets[i]);
        snprintf(l->address, sizeof(l->address), "10.250.%u.%u", agent_no % 250, 1 + i);
        l->rtt_ms = (p->kind == KS_BHQ || p->kind == KS_MPOP ? 2.0 : 5.0) + 15 * ks_rnd01(&a->rng);
        l->loss_pct = ks_rnd(&a->rng) % 10 == 0 ? 0.5 + 2 * ks_rnd01(&a->rng) : 0;
        a->n_links++;
    }
    return 0;
}

/* Numbers the series, spreads the polls over the step. */
static void assign_ids(ks_net_t *net)
{
    uint32_t step_ms = net->step_s * 1000u;
    for (unsigned i = 0; i < net->n_agents; i++) {
        ks_agent_t *a = &net->agents[i];
        uint32_t id = 1;
        for (unsigned k = 0; k < a->n_devs; k++) {
            ks_device_t *d = &a->devs[k];
            d->id = id;
            id += KS_DEV_METRICS + d->n_ifs * KS_IF_METRICS;
            /* The agent's poll scheduler spreads its devices evenly, with a little jitter. */
            d->phase_ms = (uint32_t)(((uint64_t)k * step_ms) / a->n_devs +
                                     ks_rnd(&a->rng) % (step_ms / (4 * a->n_devs) + 1));
            d->phase_ms %= step_ms;
        }
        for (unsigned k = 0; k < a->n_links; k++) {
            a->links[k].id = id;
            id += KS_LINK_METRICS;
            a->links[k].phase_ms = ks_rnd(&a->rng) % step_ms;
        }
        a->n_ids = id - 1;
    }
}

/* Adds Vlan interfaces to the switches, in turn, until the network has `target`. */
static int fill_ifaces(ks_net_t *net, unsigned target)
{
    unsigned total = 0, vlan = 0;
    for (unsigned i = 0; i < net->n_agents; i++) {
        for (unsigned k = 0; k < net->agents[i].n_devs; k++) {
            total += net->agents[i].devs[k].n_ifs;
        }
    }
    for (unsigned round = 0; total < target && round < 1000; round++) {
        for (unsigned i = 0; i < net->n_agents && total < target; i++) {
            ks_agent_t *a = &net->agents[i];
            for (unsigned k = 0; k < a->n_devs && total < target; k++) {
                ks_device_t *d = &a->devs[k];
                if (!d->is_switch) {
                    continue;
                }
                ifs_builder_t b = {.v = d->ifs, .n = d->n_ifs, .cap = d->n_ifs};
                if (add_if(&b, &a->rng, "", "Vlan%u", 300 + round * 10 + vlan % 10) != 0) {
                    return -1;
                }
                d->ifs = b.v;
                d->n_ifs = b.n;
                total++;
            }
        }
        vlan++;
    }
    net->n_ifaces = total;
    return 0;
}

int ks_build(ks_net_t *net, double scale, uint32_t seed, unsigned step_s)
{
    memset(net, 0, sizeof(*net));
    if (!(scale > 0 && scale <= 1) || step_s == 0) {
        return -1;
    }
    net->step_s = step_s;
    double s = sqrt(scale);
    unsigned max_sites = N_NOCS + N_DISTRICTS + N_BLOCKS + N_MPOPS + N_SDCS;
    unsigned max_agents = N_NOCS + N_DISTRICTS + N_BLOCKS + N_MPOPS + N_SDCS * SDC_AGENTS;
    net->sites = calloc(max_sites, sizeof(*net->sites));
    net->agents = calloc(max_agents, sizeof(*net->agents));
    site_plan_t *plans = calloc(max_agents, sizeof(*plans));
    names_t places = {.v = calloc(N_BLOCKS + N_MPOPS, sizeof(*places.v))};
    static char dhq[N_DISTRICTS][64];
    if (net->sites == NULL || net->agents == NULL || plans == NULL || places.v == NULL) {
        free(plans);
        free(places.v);
        ks_free(net);
        return -1;
    }
    uint32_t rng = seed ? seed : 1;
    unsigned np = 0;
    /* NOCs, meshed: each probes the other two. */
    for (unsigned i = 0; i < N_NOCS; i++) {
        add_site(net, nocs[i], NULL, KS_NOC);
        site_plan_t *p = &plans[np++];
        *p = (site_plan_t){.kind = KS_NOC, .parent = NULL};
        copy(p->site, sizeof(p->site), nocs[i]);
        snprintf(p->agent, sizeof(p->agent), "%.50s-agent", nocs[i]);
        copy(p->devprefix, sizeof(p->devprefix), nocs[i]);
        for (unsigned j = 0; j < N_NOCS; j++) {
            if (j != i) {
                p->targets[p->n_targets++] = nocs[j];
            }
        }
    }
    /* Districts under the NOC of their region; each probes the three NOCs. */
    for (unsigned d = 0; d < N_DISTRICTS; d++) {
        snprintf(dhq[d], sizeof(dhq[d]), "dhq-%s", districts[d].name);
        add_site(net, dhq[d], nocs[d < 5 ? 0 : d < 10 ? 1 : 2], KS_DHQ);
        site_plan_t *p = &plans[np++];
        *p = (site_plan_t){.kind = KS_DHQ, .parent = net->sites[net->n_sites - 1].parent};
        copy(p->site, sizeof(p->site), dhq[d]);
        snprintf(p->agent, sizeof(p->agent), "%.50s-agent", dhq[d]);
        copy(p->devprefix, sizeof(p->devprefix), dhq[d]);
        for (unsigned j = 0; j < N_NOCS; j++) {
            p->targets[p->n_targets++] = nocs[j];
        }
    }
    /* Block HQs, each probing its district HQ. */
    static char site_names[N_BLOCKS + N_MPOPS][64];
    unsigned sn = 0;
    for (unsigned d = 0; d < N_DISTRICTS; d++) {
        for (unsigned b = 0; b < districts[d].blocks; b++) {
            const char *place = new_place(&places, &rng, b < 4 ? districts[d].real[b] : NULL);
            snprintf(site_names[sn], sizeof(site_names[sn]), "bhq-%.20s-%.30s", districts[d].name,
                     place);
            add_site(net, site_names[sn], dhq[d], KS_BHQ);
            site_plan_t *p = &plans[np++];
            *p = (site_plan_t){.kind = KS_BHQ, .parent = dhq[d]};
            copy(p->site, sizeof(p->site), site_names[sn]);
            snprintf(p->agent, sizeof(p->agent), "%.50s-agent", site_names[sn]);
            snprintf(p->devprefix, sizeof(p->devprefix), "bhq-%s", place);
            p->targets[p->n_targets++] = dhq[d];
            sn++;
        }
    }
    /* Mini POPs, spread over the districts, each probing its district HQ. */
    for (unsigned m = 0; m < N_MPOPS; m++) {
        unsigned d = m % N_DISTRICTS;
        const char *place = new_place(&places, &rng, NULL);
        snprintf(site_names[sn], sizeof(site_names[sn]), "mpop-%.20s-%.30s", districts[d].name,
                 place);
        add_site(net, site_names[sn], dhq[d], KS_MPOP);
        site_plan_t *p = &plans[np++];
        *p = (site_plan_t){.kind = KS_MPOP, .parent = dhq[d]};
        copy(p->site, sizeof(p->site), site_names[sn]);
        snprintf(p->agent, sizeof(p->agent), "%.50s-agent", site_names[sn]);
        snprintf(p->devprefix, sizeof(p->devprefix), "mpop-%s", place);
        p->targets[p->n_targets++] = dhq[d];
        sn++;
    }
    /* State data centres: six agents each (one per hall), probing the NOC. */
    for (unsigned c = 0; c < N_SDCS; c++) {
        add_site(net, sdcs[c], nocs[sdc_noc[c]], KS_SDC);
        for (unsigned g = 0; g < SDC_AGENTS; g++) {
            site_plan_t *p = &plans[np++];
            *p = (site_plan_t){.kind = KS_SDC, .parent = nocs[sdc_noc[c]], .dev_base = g * 100};
            copy(p->site, sizeof(p->site), sdcs[c]);
            snprintf(p->agent, sizeof(p->agent), "%.50s-a%u", sdcs[c], g + 1);
            copy(p->devprefix, sizeof(p->devprefix), sdcs[c]);
            p->targets[p->n_targets++] = nocs[sdc_noc[c]];
        }
    }
    /* The agents a scale keeps: about sqrt(scale) of each kind, spread over the kind. */
    int rc = 0;
    for (int k = 0; k < KS_KINDS && rc == 0; k++) {
        unsigned n = 0;
        for (unsigned i = 0; i < np; i++) {
            n += plans[i].kind == (ks_kind_t)k;
        }
        unsigned keep = scale >= 1 ? n : scaled(n, s);
        unsigned seen = 0, kept = 0;
        for (unsigned i = 0; i < np && rc == 0; i++) {
            if (plans[i].kind != (ks_kind_t)k) {
                continue;
            }
            /* the first of each share of n / keep is kept */
            if ((unsigned)(((uint64_t)seen * keep) / n) == kept) {
                rc = build_agent(net, &plans[i], s, rng ^ (uint32_t)i);
                kept++;
            }
            seen++;
        }
    }
    free(plans);
    unsigned devices = 0, links = 0;
    for (unsigned i = 0; i < net->n_agents; i++) {
        devices += net->agents[i].n_devs;
        links += net->agents[i].n_links;
    }
    net->n_devices = devices;
    net->n_links = links;
    /* 100,000 interfaces over 2,000 devices; a scale keeps the average of 50 per device. */
    if (rc == 0) {
        rc = fill_ifaces(net, (unsigned)lround(50.0 * devices));
    }
    free(places.v);
    if (rc != 0) {
        ks_free(net);
        return -1;
    }
    assign_ids(net);
    return 0;
}

void ks_free(ks_net_t *net)
{
    if (net->agents != NULL) {
        for (unsigned i = 0; i < net->n_agents; i++) {
            for (unsigned k = 0; k < net->agents[i].n_devs; k++) {
                free(net->agents[i].devs[k].ifs);
            }
            free(net->agents[i].devs);
            free(net->agents[i].links);
        }
    }
    free(net->agents);
    free(net->sites);
    memset(net, 0, sizeof(*net));
}

void ks_write_sites(const ks_net_t *net, FILE *f)
{
    for (unsigned i = 0; i < net->n_sites; i++) {
        const ks_site_t *s = &net->sites[i];
        fprintf(f, "- {name: %s, kind: %s", s->name, ks_kind_name(s->kind));
        if (s->parent != NULL) {
            fprintf(f, ", parent: %s", s->parent);
        }
        fprintf(f, "}\n");
    }
}

/* ------------------------------------------------------------------ movement */

double ks_diurnal(int64_t t_ms)
{
    double h = fmod((double)t_ms / 3.6e6 + 5.5, 24.0);
    double day = 0;
    if (h > 7 && h < 23) {
        day = pow(sin(M_PI * (h - 7) / 16.0), 1.5);
    }
    return 0.15 + 0.85 * day;
}

void ks_iface_step(ks_iface_t *f, uint32_t *rng, int64_t t_ms, double dt_s)
{
    if (f->oper != 1 || f->load <= 0) {
        return;
    }
    double noise = 0.8 + 0.4 * ks_rnd01(rng);
    double bytes = f->load * ks_diurnal(t_ms) * noise * (double)f->speed / 8.0 * dt_s;
    double in = bytes * (0.8 + 0.4 * ks_rnd01(rng)), out = bytes * (0.5 + 0.5 * ks_rnd01(rng));
    double in_p = in / (500.0 + 500.0 * ks_rnd01(rng)),
           out_p = out / (500.0 + 500.0 * ks_rnd01(rng));
    f->ctr[0] += (uint64_t)in;
    f->ctr[1] += (uint64_t)out;
    f->ctr[2] += (uint64_t)in_p;
    f->ctr[3] += (uint64_t)out_p;
    f->ctr[4] += (uint64_t)(in_p * 0.002 * ks_rnd01(rng));
    f->ctr[5] += (uint64_t)(out_p * 0.001 * ks_rnd01(rng));
    f->ctr[6] += (uint64_t)(in_p * 0.0005 * ks_rnd01(rng));
    f->ctr[7] += (uint64_t)(out_p * 0.0002 * ks_rnd01(rng));
    for (int k = 8; k < KS_IF_CTRS; k++) {
        uint32_t r = ks_rnd(rng);
        if (r % 16 == 0) {
            f->ctr[k] += 1 + (r >> 8) % (k >= 10 ? 100 : 5);
        }
    }
}

void ks_link_figures(const ks_link_t *l, uint32_t *rng, int64_t t_ms, uint64_t ints[5],
                     double reals[12])
{
    const unsigned sent = 20;
    double busy = ks_diurnal(t_ms);
    double loss = l->loss_pct * busy + (ks_rnd(rng) % 50 == 0 ? 5.0 * ks_rnd01(rng) : 0);
    unsigned lost = (unsigned)lround((double)sent * loss / 100.0);
    lost = lost >= sent ? sent - 1 : lost;
    double base = l->rtt_ms * (1.0 + 0.3 * busy);
    double jitter = 0.05 * base + 0.5 * ks_rnd01(rng);
    double min = base * (0.95 + 0.03 * ks_rnd01(rng));
    ints[0] = sent;
    ints[1] = sent - lost;
    ints[2] = lost > 0 ? 1 + ks_rnd(rng) % lost : 0; /* loss_burst */
    ints[3] = 0;                                     /* duplicates */
    ints[4] = ks_rnd(rng) % 200 == 0 ? 1 : 0;        /* reordered */
    double median = min + jitter;
    double rtt[] = {min, median, median + 0.2 * jitter, median + 3 * jitter + ks_rnd01(rng)};
    /* lost_pct rtt_min rtt_median rtt_mean rtt_max rtt_stddev jitter mos p10 p25 p75 p90 */
    reals[0] = 100.0 * lost / sent;
    reals[1] = rtt[0];
    reals[2] = rtt[1];
    reals[3] = rtt[2];
    reals[4] = rtt[3];
    reals[5] = jitter;
    reals[6] = jitter * (0.6 + 0.4 * ks_rnd01(rng));
    reals[7] = 4.4 - 0.02 * median - 0.1 * reals[0];
    reals[8] = min + 0.2 * jitter;
    reals[9] = min + 0.5 * jitter;
    reals[10] = median + 0.8 * jitter;
    reals[11] = median + 1.6 * jitter;
}
