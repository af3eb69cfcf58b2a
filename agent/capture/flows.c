/*
 * flows.c — the capture's interval counters, bounded flow table, TCP handshake times and
 * top-N sketches (see flows.h).
 *
 * Flows live in one array allocated at start; the free ones are chained through `next`, the
 * used ones sit on a list from the least to the most recently seen (eviction and the idle
 * sweep take from its head). An index (open addressing, linear probing, at least twice the
 * flows, so at most half full) maps a flow's key to its array position; a flow leaves it by
 * backward-shift deletion.
 */
#include "flows.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "wordhash.h"

#define NONE UINT32_MAX
#define HS_BUCKETS (1 + 16 * 27) /* under 1 us, then 16 per octave up to 2^27 us */

typedef struct hist {
    uint64_t n;
    int64_t min, max;
    uint32_t b[HS_BUCKETS];
} hist_t;

typedef struct port_hs {
    uint16_t port;
    hist_t server, client;
} port_hs_t;

enum { HS_NONE, HS_SYN, HS_SYNACK, HS_DONE };

typedef struct flow {
    uint8_t ver, proto;
    uint16_t port_a, port_b;
    uint8_t a[16], b[16]; /* (a, port_a) <= (b, port_b) */
    uint32_t hash, slot;  /* slot: its place in the index */
    uint32_t prev, next;  /* recency list, or the free list (next) */
    int64_t first_ns, last_ns;
    uint64_t pkts[2], bytes[2]; /* [0]: a -> b */
    uint8_t client;             /* 0: a, 1: b (valid from HS_SYN) */
    uint8_t hs;
    bool seq_known[2];
    uint32_t next_seq[2];
    int64_t syn_ns, synack_ns;
    int32_t cls; /* the classifier's handle while undecided, else -1 */
    int16_t app; /* the application, or APP_PENDING / APP_NONE */
    /* While undecided: its frames counted as pending in interval pend_epoch, moved to the
     * application when it is decided in that same interval. */
    uint32_t pend_epoch, pend_pkts;
    uint64_t pend_bytes;
} flow_t;

#define APP_PENDING (-1)
#define APP_NONE (-2)

struct kvl_flows {
    kvl_flows_cfg_t cfg;
    kvl_prefix_t *local;
    flow_t *flows;
    uint32_t *idx;
    uint32_t imask;
    uint32_t free_head, lru_head, lru_tail;
    size_t used;
    port_hs_t *ports; /* cfg.max_ports + 1: the last is port 0, "the others" */
    size_t n_ports;
    kvl_sketch_t *hosts, *convs;
    kvl_flows_classifier_t cl; /* cl.begin NULL: none */
    kvl_count_t *apps;         /* cl.max_app entries */
    uint32_t epoch;            /* intervals started */
    kvl_flows_counts_t c;
};

int kvl_prefix_parse(const char *text, kvl_prefix_t *out)
{
    char buf[64];
    memset(out, 0, sizeof(*out));
    size_t n = strlen(text);
    if (n == 0 || n >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, text, n + 1);
    char *slash = strchr(buf, '/');
    long len = -1;
    if (slash != NULL) {
        *slash = '\0';
        char *end;
        if (slash[1] < '0' || slash[1] > '9') {
            return -1;
        }
        len = strtol(slash + 1, &end, 10);
        if (*end != '\0') {
            return -1;
        }
    }
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->ver = 4;
        if (len > 32) {
            return -1;
        }
        out->len = (uint8_t)(len < 0 ? 32 : len);
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->ver = 6;
        if (len > 128) {
            return -1;
        }
        out->len = (uint8_t)(len < 0 ? 128 : len);
    } else {
        return -1;
    }
    /* Host bits cleared, so "10.1.2.3/8" means 10.0.0.0/8. */
    for (unsigned bit = out->len; bit < 128; bit++) {
        out->addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
    }
    return 0;
}

bool kvl_prefix_has(const kvl_prefix_t *p, uint8_t ver, const uint8_t *addr)
{
    if (p->ver != ver) {
        return false;
    }
    unsigned full = p->len / 8u, rest = p->len % 8u;
    if (memcmp(p->addr, addr, full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (addr[full] & mask) == p->addr[full];
}

static bool is_local(const kvl_flows_t *f, uint8_t ver, const uint8_t *addr)
{
    for (size_t i = 0; i < f->cfg.n_local; i++) {
        if (kvl_prefix_has(&f->local[i], ver, addr)) {
            return true;
        }
    }
    return false;
}

kvl_flows_t *kvl_flows_new(const kvl_flows_cfg_t *cfg)
{
    if (cfg->max_flows < 1 || cfg->max_flows > (1u << 26) || cfg->top_capacity < 1) {
        return NULL;
    }
    kvl_flows_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return NULL;
    }
    f->cfg = *cfg;
    f->lru_head = f->lru_tail = f->free_head = NONE; /* kvl_flows_free walks the list */
    size_t isz = 2;
    while (isz < 2 * cfg->max_flows) {
        isz *= 2;
    }
    f->imask = (uint32_t)(isz - 1);
    f->local = calloc(cfg->n_local + 1, sizeof(*f->local));
    f->flows = calloc(cfg->max_flows, sizeof(*f->flows));
    f->idx = malloc(isz * sizeof(*f->idx));
    f->ports = calloc(cfg->max_ports + 1, sizeof(*f->ports));
    f->hosts = kvl_sketch_new(cfg->top_capacity);
    f->convs = kvl_sketch_new(cfg->top_capacity);
    if (cfg->classifier != NULL && cfg->classifier->max_app > 0) {
        f->cl = *cfg->classifier;
        f->apps = calloc((size_t)f->cl.max_app, sizeof(*f->apps));
    }
    f->cfg.classifier = NULL;
    if (f->local == NULL || f->flows == NULL || f->idx == NULL || f->ports == NULL ||
        f->hosts == NULL || f->convs == NULL || (f->cl.begin != NULL && f->apps == NULL)) {
        kvl_flows_free(f);
        return NULL;
    }
    if (cfg->n_local > 0) {
        memcpy(f->local, cfg->local, cfg->n_local * sizeof(*f->local));
    }
    f->cfg.local = f->local;
    memset(f->idx, 0xff, isz * sizeof(*f->idx));
    for (size_t i = 0; i < cfg->max_flows; i++) {
        f->flows[i].next = i + 1 < cfg->max_flows ? (uint32_t)(i + 1) : NONE;
    }
    f->free_head = 0;
    f->lru_head = f->lru_tail = NONE;
    kvl_flows_interval_reset(f);
    return f;
}

void kvl_flows_free(kvl_flows_t *f)
{
    if (f == NULL) {
        return;
    }
    /* Undecided flows hand their classifier handles back. */
    for (uint32_t i = f->lru_head; f->flows != NULL && i != NONE; i = f->flows[i].next) {
        if (f->flows[i].cls >= 0) {
            (void)f->cl.end(f->cl.ctx, f->flows[i].cls);
        }
    }
    free(f->apps);
    free(f->local);
    free(f->flows);
    free(f->idx);
    free(f->ports);
    kvl_sketch_free(f->hosts);
    kvl_sketch_free(f->convs);
    free(f);
}

/* --- handshake histograms ------------------------------------------------------------ */

static size_t hist_bucket(int64_t ns)
{
    if (ns < 1000) {
        return 0;
    }
    double b = 1.0 + floor(16.0 * log2((double)ns / 1000.0));
    return b >= HS_BUCKETS - 1 ? HS_BUCKETS - 1 : (size_t)b;
}

/* The bucket's middle on a log scale. */
static int64_t hist_value(size_t b)
{
    if (b == 0) {
        return 0;
    }
    return (int64_t)(1000.0 * exp2(((double)b - 1.0 + 0.5) / 16.0));
}

static void hist_add(hist_t *h, int64_t ns)
{
    if (ns < 0) {
        ns = 0;
    }
    if (h->n == 0 || ns < h->min) {
        h->min = ns;
    }
    if (h->n == 0 || ns > h->max) {
        h->max = ns;
    }
    h->n++;
    h->b[hist_bucket(ns)]++;
}

static int64_t hist_quantile(const hist_t *h, double q)
{
    uint64_t rank = (uint64_t)ceil(q * (double)h->n), seen = 0;
    if (rank < 1) {
        rank = 1;
    }
    for (size_t i = 0; i < HS_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            int64_t v = hist_value(i);
            return v < h->min ? h->min : v > h->max ? h->max : v;
        }
    }
    return h->max;
}

static void hist_summary(const hist_t *h, kvl_hs_summary_t *out)
{
    memset(out, 0, sizeof(*out));
    out->n = h->n;
    if (h->n == 0) {
        return;
    }
    out->min_ns = h->min;
    out->max_ns = h->max;
    out->median_ns = hist_quantile(h, 0.5);
    out->p95_ns = hist_quantile(h, 0.95);
}

static port_hs_t *port_of(kvl_flows_t *f, uint16_t port)
{
    for (size_t i = 0; i < f->n_ports; i++) {
        if (f->ports[i].port == port) {
            return &f->ports[i];
        }
    }
    if (f->n_ports < f->cfg.max_ports && port != 0) {
        port_hs_t *p = &f->ports[f->n_ports++];
        memset(p, 0, sizeof(*p));
        p->port = port;
        return p;
    }
    return &f->ports[f->cfg.max_ports]; /* the others, port 0 */
}

/* --- the flow table ------------------------------------------------------------------ */

static uint64_t rd64(const uint8_t *b)
{
    uint64_t v;
    memcpy(&v, b, sizeof(v));
    return v;
}

/* Independent multiplications over the addresses' words, folded, then a finalizer: a few
 * cycles per packet where a byte-at-a-time chain took a hundred. */
static uint32_t flow_hash(const flow_t *k)
{
    uint64_t ports =
        (uint64_t)k->ver << 40 | (uint64_t)k->proto << 32 | (uint64_t)k->port_a << 16 | k->port_b;
    uint64_t a = (rd64(k->a) ^ 0x9e3779b97f4a7c15ull) * 0xff51afd7ed558ccdull;
    uint64_t b = (rd64(k->a + 8) ^ 0xc2b2ae3d27d4eb4full) * 0xc4ceb9fe1a85ec53ull;
    uint64_t c = (rd64(k->b) ^ 0x165667b19e3779f9ull) * 0x9e3779b97f4a7c15ull;
    uint64_t d = (rd64(k->b + 8) ^ 0x27d4eb2f165667c5ull) * 0xd6e8feb86659fd93ull;
    uint64_t e = (ports ^ 0x85ebca77c2b2ae63ull) * 0xff51afd7ed558ccdull;
    uint64_t h = a ^ kvl_rotl64(b, 13) ^ kvl_rotl64(c, 29) ^ kvl_rotl64(d, 43) ^ kvl_rotl64(e, 53);
    return kvl_fmix64(h);
}

static bool same_key(const flow_t *x, const flow_t *y)
{
    return x->ver == y->ver && x->proto == y->proto && x->port_a == y->port_a &&
           x->port_b == y->port_b && memcmp(x->a, y->a, 16) == 0 && memcmp(x->b, y->b, 16) == 0;
}

static void lru_unlink(kvl_flows_t *f, uint32_t i)
{
    flow_t *x = &f->flows[i];
    if (x->prev != NONE) {
        f->flows[x->prev].next = x->next;
    } else {
        f->lru_head = x->next;
    }
    if (x->next != NONE) {
        f->flows[x->next].prev = x->prev;
    } else {
        f->lru_tail = x->prev;
    }
}

static void lru_append(kvl_flows_t *f, uint32_t i)
{
    flow_t *x = &f->flows[i];
    x->prev = f->lru_tail;
    x->next = NONE;
    if (f->lru_tail != NONE) {
        f->flows[f->lru_tail].next = i;
    } else {
        f->lru_head = i;
    }
    f->lru_tail = i;
}

static void index_remove(kvl_flows_t *f, uint32_t i)
{
    uint32_t j = i;
    for (;;) {
        f->idx[i] = NONE;
        for (;;) {
            j = (j + 1) & f->imask;
            if (f->idx[j] == NONE) {
                return;
            }
            uint32_t home = f->flows[f->idx[j]].hash & f->imask;
            if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) {
                continue;
            }
            break;
        }
        f->idx[i] = f->idx[j];
        f->flows[f->idx[i]].slot = i;
        i = j;
    }
}

/* Ends flow i: out of the index and the recency list, onto the free list. */
static void flow_end(kvl_flows_t *f, uint32_t i)
{
    if (f->flows[i].cls >= 0) {
        (void)f->cl.end(f->cl.ctx, f->flows[i].cls);
        f->flows[i].cls = -1;
    }
    index_remove(f, f->flows[i].slot);
    lru_unlink(f, i);
    f->flows[i].next = f->free_head;
    f->free_head = i;
    f->used--;
}

void kvl_flows_expire(kvl_flows_t *f, int64_t now_ns)
{
    /* Bounded by the number of flows: each turn ends one. */
    while (f->lru_head != NONE && now_ns - f->flows[f->lru_head].last_ns >= f->cfg.idle_ns) {
        flow_end(f, f->lru_head);
        f->c.flows_idle++;
    }
    f->c.flows_now = f->used;
}

/* The flow of key k, made (evicting the least recently seen when full) if new. */
static uint32_t flow_get(kvl_flows_t *f, const flow_t *k, int64_t ts)
{
    uint32_t h = flow_hash(k), s = h & f->imask;
    while (f->idx[s] != NONE) {
        flow_t *x = &f->flows[f->idx[s]];
        if (x->hash == h && same_key(x, k)) {
            return f->idx[s];
        }
        s = (s + 1) & f->imask;
    }
    if (f->free_head == NONE) {
        flow_end(f, f->lru_head);
        f->c.flows_evicted++;
        /* The eviction may have shifted the index: find an empty slot again. */
        s = h & f->imask;
        while (f->idx[s] != NONE) {
            s = (s + 1) & f->imask;
        }
    }
    uint32_t i = f->free_head;
    f->free_head = f->flows[i].next;
    flow_t *x = &f->flows[i];
    *x = *k;
    x->hash = h;
    x->slot = s;
    x->first_ns = x->last_ns = ts;
    x->cls = f->cl.begin != NULL ? f->cl.begin(f->cl.ctx) : -1;
    x->app = x->cls >= 0 ? APP_PENDING : APP_NONE;
    f->idx[s] = i;
    lru_append(f, i);
    f->used++;
    f->c.flows_new++;
    return i;
}

static void flow_restart(flow_t *x, int64_t ts)
{
    x->first_ns = ts;
    memset(x->pkts, 0, sizeof(x->pkts));
    memset(x->bytes, 0, sizeof(x->bytes));
    x->hs = HS_NONE;
}

/* Sequence numbers compared modulo 2^32. */
static bool seq_before(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

static void tcp_packet(kvl_flows_t *f, flow_t *x, int d, int64_t ts, const kvl_pkt_t *p)
{
    uint8_t fl = p->tcp_flags;
    if (fl & KVL_TCP_RST) {
        f->c.tcp_resets++;
    }
    bool syn = (fl & KVL_TCP_SYN) != 0, ack = (fl & KVL_TCP_ACK) != 0;
    if (syn && !ack && x->hs == HS_NONE) {
        x->hs = HS_SYN;
        x->client = (uint8_t)d;
        x->syn_ns = ts;
    } else if (syn && ack && x->hs == HS_SYN && d != x->client) {
        x->hs = HS_SYNACK;
        x->synack_ns = ts;
        uint16_t sport = x->client == 0 ? x->port_b : x->port_a;
        hist_add(&port_of(f, sport)->server, ts - x->syn_ns);
    } else if (!syn && ack && !(fl & KVL_TCP_RST) && x->hs == HS_SYNACK && d == x->client) {
        x->hs = HS_DONE;
        uint16_t sport = x->client == 0 ? x->port_b : x->port_a;
        hist_add(&port_of(f, sport)->client, ts - x->synack_ns);
    }
    /* Retransmissions: data below what this direction already sent. */
    uint32_t end = p->seq + p->payload_len + (syn ? 1u : 0u) + ((fl & KVL_TCP_FIN) ? 1u : 0u);
    if (p->payload_len > 0 && x->seq_known[d] && seq_before(p->seq, x->next_seq[d])) {
        f->c.tcp_retrans++;
    }
    if (syn || p->payload_len > 0 || (fl & KVL_TCP_FIN)) {
        if (!x->seq_known[d] || seq_before(x->next_seq[d], end)) {
            x->next_seq[d] = end;
        }
        x->seq_known[d] = true;
    }
}

static void top_add(kvl_flows_t *f, const kvl_pkt_t *p)
{
    uint8_t key[KVL_SKETCH_KEY];
    memset(key, 0, sizeof(key));
    key[0] = p->ip_ver;
    memcpy(key + 1, p->src, 16);
    kvl_sketch_add(f->hosts, key, p->wire);
    memcpy(key + 1, p->dst, 16);
    kvl_sketch_add(f->hosts, key, p->wire);
    bool swap = memcmp(p->src, p->dst, 16) > 0;
    memcpy(key + 1, swap ? p->dst : p->src, 16);
    memcpy(key + 17, swap ? p->src : p->dst, 16);
    kvl_sketch_add(f->convs, key, p->wire);
}

static void count(kvl_count_t *c, uint32_t bytes)
{
    c->pkts++;
    c->bytes += bytes;
}

void kvl_flows_packet(kvl_flows_t *f, int64_t ts, const kvl_pkt_t *p, kvl_dec_reason_t r)
{
    kvl_dec_stats_add(&f->c.dec, r, p);
    if (kvl_dec_reason_malformed(r)) {
        f->c.malformed++;
    }
    count(&f->c.total, p->wire);
    kvl_flows_expire(f, ts);
    if (!p->have_ip) {
        count(&f->c.non_ip, p->wire);
        return;
    }
    bool ls = is_local(f, p->ip_ver, p->src), ld = is_local(f, p->ip_ver, p->dst);
    count(&f->c.dir[ls && ld ? KVL_DIR_INTERNAL
                    : ls     ? KVL_DIR_OUT
                    : ld     ? KVL_DIR_IN
                             : KVL_DIR_EXTERNAL],
          p->wire);
    count(p->ip_ver == 4 ? &f->c.ipv4 : &f->c.ipv6, p->wire);
    int l4 = p->proto == 6                       ? KVL_L4_TCP
             : p->proto == 17                    ? KVL_L4_UDP
             : (p->proto == 1 || p->proto == 58) ? KVL_L4_ICMP
                                                 : KVL_L4_OTHER;
    count(&f->c.l4[l4], p->wire);
    top_add(f, p);
    if (p->later_fragment) {
        if (f->cl.begin != NULL) {
            count(&f->c.app_unclassified, p->wire);
        }
        return; /* no ports: not a flow's packet */
    }
    /* The flow's key: the smaller (address, port) end first. */
    flow_t k;
    memset(&k, 0, sizeof(k));
    k.ver = p->ip_ver;
    k.proto = p->proto;
    uint16_t sp = p->have_l4 ? p->sport : 0, dp = p->have_l4 ? p->dport : 0;
    int c = memcmp(p->src, p->dst, 16);
    int d = c > 0 || (c == 0 && sp > dp);
    memcpy(k.a, d ? p->dst : p->src, 16);
    memcpy(k.b, d ? p->src : p->dst, 16);
    k.port_a = d ? dp : sp;
    k.port_b = d ? sp : dp;
    uint32_t i = flow_get(f, &k, ts);
    flow_t *x = &f->flows[i];
    if (ts < x->last_ns) {
        ts = x->last_ns;
    }
    if (ts - x->first_ns >= f->cfg.active_ns) {
        flow_restart(x, ts);
        f->c.flows_active++;
    }
    x->last_ns = ts;
    /* Its neighbours on the recency list are fetched while the packet is counted; the move to
     * the list's end comes last (nothing in between reads the list). */
    bool move = f->lru_tail != i;
    if (move) {
        if (x->prev != NONE) {
            __builtin_prefetch(&f->flows[x->prev], 1);
        }
        if (x->next != NONE) {
            __builtin_prefetch(&f->flows[x->next], 1);
        }
    }
    x->pkts[d]++;
    x->bytes[d] += p->wire;
    if (p->proto == 6 && p->have_l4) {
        tcp_packet(f, x, d, ts, p);
    }
    if (f->cl.begin != NULL) {
        if (x->app == APP_PENDING) {
            int app = f->cl.packet(f->cl.ctx, x->cls, p, ts);
            /* A closing connection says no more than it has: decided now, so its slot does
             * not wait for the idle timeout. */
            if (app < 0 && p->proto == 6 && p->have_l4 &&
                (p->tcp_flags & (KVL_TCP_FIN | KVL_TCP_RST)) != 0) {
                app = f->cl.end(f->cl.ctx, x->cls);
            }
            if (app >= 0) {
                x->cls = -1;
                x->app = (int16_t)(app < f->cl.max_app && app <= INT16_MAX ? app : 0);
                if (x->pend_epoch == f->epoch && x->pend_pkts > 0) {
                    /* this interval's earlier frames of the flow join its application */
                    f->c.app_pending.pkts -= x->pend_pkts;
                    f->c.app_pending.bytes -= x->pend_bytes;
                    f->apps[x->app].pkts += x->pend_pkts;
                    f->apps[x->app].bytes += x->pend_bytes;
                }
                x->pend_pkts = 0;
                x->pend_bytes = 0;
            }
        }
        if (x->app == APP_PENDING) {
            if (x->pend_epoch != f->epoch) {
                x->pend_epoch = f->epoch;
                x->pend_pkts = 0;
                x->pend_bytes = 0;
            }
            x->pend_pkts++;
            x->pend_bytes += p->wire;
        }
        count(x->app >= 0             ? &f->apps[x->app]
              : x->app == APP_PENDING ? &f->c.app_pending
                                      : &f->c.app_unclassified,
              p->wire);
    }
    if (move) {
        lru_unlink(f, i);
        lru_append(f, i);
    }
    f->c.flows_now = f->used;
}

static int by_bytes(const void *a, const void *b)
{
    const kvl_app_count_t *x = a, *y = b;
    if (x->c.bytes != y->c.bytes) {
        return x->c.bytes > y->c.bytes ? -1 : 1;
    }
    return x->app < y->app ? -1 : x->app > y->app;
}

size_t kvl_flows_apps(const kvl_flows_t *f, kvl_app_count_t *out, size_t n)
{
    if (f->cl.begin == NULL || n == 0) {
        return 0;
    }
    size_t used = 0;
    for (int a = 0; a < f->cl.max_app; a++) {
        used += f->apps[a].pkts > 0;
    }
    kvl_app_count_t *all = calloc(used > 0 ? used : 1, sizeof(*all));
    if (all == NULL) {
        return 0;
    }
    size_t k = 0;
    for (int a = 0; a < f->cl.max_app; a++) {
        if (f->apps[a].pkts > 0) {
            all[k].app = a;
            all[k].name = f->cl.name(f->cl.ctx, a);
            all[k].c = f->apps[a];
            k++;
        }
    }
    qsort(all, k, sizeof(*all), by_bytes);
    if (k > n) {
        k = n;
    }
    memcpy(out, all, k * sizeof(*out));
    free(all);
    return k;
}

const kvl_flows_counts_t *kvl_flows_counts(const kvl_flows_t *f)
{
    return &f->c;
}

static int by_port(const void *a, const void *b)
{
    const kvl_port_hs_t *x = a, *y = b;
    /* Port 0 ("the others") last. */
    unsigned px = x->port == 0 ? 65536u : x->port, py = y->port == 0 ? 65536u : y->port;
    return px < py ? -1 : px > py;
}

size_t kvl_flows_handshakes(const kvl_flows_t *f, kvl_port_hs_t *out, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i <= f->cfg.max_ports && k < n; i++) {
        const port_hs_t *p = &f->ports[i];
        if (i == f->cfg.max_ports ? p->server.n + p->client.n == 0 : i >= f->n_ports) {
            continue;
        }
        out[k].port = i == f->cfg.max_ports ? 0 : p->port;
        hist_summary(&p->server, &out[k].server);
        hist_summary(&p->client, &out[k].client);
        k++;
    }
    qsort(out, k, sizeof(*out), by_port);
    return k;
}

static void hist_merge(hist_t *into, const hist_t *h)
{
    if (h->n == 0) {
        return;
    }
    if (into->n == 0 || h->min < into->min) {
        into->min = h->min;
    }
    if (into->n == 0 || h->max > into->max) {
        into->max = h->max;
    }
    into->n += h->n;
    for (size_t i = 0; i < HS_BUCKETS; i++) {
        into->b[i] += h->b[i];
    }
}

void kvl_flows_handshake_all(const kvl_flows_t *f, kvl_hs_summary_t *server,
                             kvl_hs_summary_t *client)
{
    hist_t s = {0}, c = {0};
    for (size_t i = 0; i <= f->cfg.max_ports; i++) {
        if (i < f->n_ports || i == f->cfg.max_ports) {
            hist_merge(&s, &f->ports[i].server);
            hist_merge(&c, &f->ports[i].client);
        }
    }
    hist_summary(&s, server);
    hist_summary(&c, client);
}

static size_t top_of(const kvl_sketch_t *s, kvl_top_t *out, size_t n, bool pair)
{
    kvl_sketch_entry_t *e = calloc(n > 0 ? n : 1, sizeof(*e));
    if (e == NULL) {
        return 0;
    }
    size_t k = kvl_sketch_top(s, e, n);
    for (size_t i = 0; i < k; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        out[i].ver = e[i].key[0];
        memcpy(out[i].a, e[i].key + 1, 16);
        if (pair) {
            memcpy(out[i].b, e[i].key + 17, 16);
        }
        out[i].bytes = e[i].count;
        out[i].bytes_err = e[i].error;
        out[i].packets = e[i].adds;
    }
    free(e);
    return k;
}

size_t kvl_flows_top_hosts(const kvl_flows_t *f, kvl_top_t *out, size_t n)
{
    return top_of(f->hosts, out, n, false);
}

size_t kvl_flows_top_convs(const kvl_flows_t *f, kvl_top_t *out, size_t n)
{
    return top_of(f->convs, out, n, true);
}

void kvl_flows_interval_reset(kvl_flows_t *f)
{
    memset(&f->c, 0, sizeof(f->c));
    f->c.flows_now = f->used;
    memset(f->ports, 0, (f->cfg.max_ports + 1) * sizeof(*f->ports));
    f->n_ports = 0;
    kvl_sketch_reset(f->hosts);
    kvl_sketch_reset(f->convs);
    if (f->apps != NULL) {
        memset(f->apps, 0, (size_t)f->cl.max_app * sizeof(*f->apps));
    }
    f->epoch++;
}
