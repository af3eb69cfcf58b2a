/*
 * prober.c — schedules each target's probes, matches replies to intervals, and reports
 * each interval's statistics (see prober.h). ICMP sockets and timestamps live in
 * probe_icmp.c, the arithmetic in probe_stats.c.
 *
 * Sequence numbers: a target's probes are numbered from 0 over its lifetime; probe i of
 * interval k is number k x count + i, so a reply's number tells its interval and its
 * place in it. A reply whose number is outside the open interval is late (counted, not
 * used). Replies must come from the target's address.
 */
#include "prober.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "probe_icmp.h"
#include "probe_stats.h"

#define MOD "probe"

static const char *const link_metrics[] = {
    "sent",          "received",      "lost_pct",    "loss_burst", "duplicates",
    "reordered",     "rtt_min_ms",    "rtt_median_ms", "rtt_mean_ms", "rtt_max_ms",
    "rtt_stddev_ms", "jitter_ms",     "mos",
};
enum { M_N = 13 };
static const kvl_kind_t link_kinds[M_N] = {
    KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE,
    KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE,
    KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE,
};
static const bool link_reals[M_N] = {false, false, true, false, false, false, true,
                                     true,  true,  true, true,  true,  true};

const kvl_family_t kvl_link_family = {
    .name = "link", .n = M_N, .metrics = link_metrics, .kinds = link_kinds, .reals = link_reals};

typedef struct ptarget {
    kvl_prober_t *p;
    uint32_t idx;
    const kvl_probe_target_t *cfg;
    struct sockaddr_storage addr;
    int family;
    uv_timer_t timer;
    uint64_t start;   /* loop time (ms) the open interval started */
    uint32_t next;    /* next probe of the open interval */
    uint64_t number;  /* number of the open interval's probe 0 */
    unsigned done;    /* intervals closed */
    uint64_t late;    /* replies after their interval */
    bool send_failing;
    kvl_pstats_t ps;
    kvl_pstats_state_t st;
    uint32_t id; /* batcher instance */
} ptarget_t;

struct kvl_prober {
    uv_loop_t *loop;
    const kvl_agent_cfg_t *cfg;
    kvl_batcher_t *b;
    kvl_icmp_t *icmp;
    ptarget_t *t;
    size_t n;
    int64_t interval_ms;
    uint32_t count;
    size_t closing;
    bool freeing;
    /* once mode */
    unsigned once_intervals;
    bool verbose;
    FILE *out;
    void (*done)(void *);
    void *done_arg;
    size_t finished;
};

static void on_reply(void *arg, const kvl_icmp_reply_t *r);
static void on_timer(uv_timer_t *h);

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 16777619u;
    }
    return h;
}

static uint64_t due(const kvl_prober_t *p, const ptarget_t *t, uint32_t i)
{
    return t->start + (uint64_t)((int64_t)i * p->interval_ms / (int64_t)p->count);
}

static void schedule(ptarget_t *t)
{
    kvl_prober_t *p = t->p;
    uint64_t at = t->next < p->count ? due(p, t, t->next) : t->start + (uint64_t)p->interval_ms;
    uint64_t now = uv_now(p->loop);
    uv_timer_start(&t->timer, on_timer, at > now ? at - now : 0, 0);
}

kvl_prober_t *kvl_prober_new(uv_loop_t *loop, const kvl_agent_cfg_t *cfg, kvl_batcher_t *b)
{
    const kvl_probe_cfg_t *pc = &cfg->probes;
    kvl_prober_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->loop = loop;
    p->cfg = cfg;
    p->b = b;
    p->interval_ms = pc->interval_ms;
    p->count = (uint32_t)pc->count;
    p->n = pc->n_targets;
    p->t = calloc(p->n ? p->n : 1, sizeof(*p->t));
    p->icmp = kvl_icmp_new(loop, (size_t)pc->size, on_reply, p);
    if (p->t == NULL || p->icmp == NULL) {
        kvl_icmp_free(p->icmp);
        free(p->t);
        free(p);
        return NULL;
    }
    uint64_t now = uv_now(loop);
    uint64_t gap = (uint64_t)(p->interval_ms / (int64_t)p->count);
    for (size_t i = 0; i < p->n; i++) {
        ptarget_t *t = &p->t[i];
        t->p = p;
        t->idx = (uint32_t)i;
        t->cfg = &pc->targets[i];
        kvl_pstats_state_init(&t->st);
        struct sockaddr_in *a4 = (struct sockaddr_in *)&t->addr;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&t->addr;
        if (inet_pton(AF_INET, t->cfg->address, &a4->sin_addr) == 1) {
            a4->sin_family = AF_INET;
        } else if (inet_pton(AF_INET6, t->cfg->address, &a6->sin6_addr) == 1) {
            a6->sin6_family = AF_INET6;
        }
        t->family = t->addr.ss_family;
        int rc = kvl_icmp_open(p->icmp, t->family);
        if (rc == 0) {
            rc = kvl_pstats_reset(&t->ps, p->count);
        }
        if (rc != 0) {
            kvl_pstats_free(&t->ps);
            p->n = i; /* the earlier ones have timers to close */
            kvl_prober_free(p);
            return NULL;
        }
        uv_timer_init(loop, &t->timer);
        t->timer.data = t;
        t->start = now + (gap ? fnv1a(t->cfg->name) % gap : 0);
        if (b != NULL) {
            kvl_label_t labels[] = {{"address", t->cfg->address},
                                    {"type", kvl_probe_type_name(t->cfg->type)}};
            kvl_instance_key_t key = {.device = cfg->id,
                                      .scope = KVL_SCOPE_LINK,
                                      .instance = t->cfg->name,
                                      .family = &kvl_link_family,
                                      .interval_s = (uint32_t)((p->interval_ms + 999) / 1000),
                                      .labels = labels,
                                      .n_labels = KVL_ARRAY_SIZE(labels)};
            t->id = kvl_batcher_instance(b, &key);
        }
        schedule(t);
    }
    if (p->n > 0) {
        KVL_LOG_INFO(MOD, NULL, "probing %zu targets, %u probes every %lldms each", p->n,
                     p->count, (long long)p->interval_ms);
    }
    return p;
}

static void on_timer_closed(uv_handle_t *h)
{
    ptarget_t *t = h->data;
    kvl_prober_t *p = t->p;
    if (--p->closing == 0) {
        for (size_t i = 0; i < p->n; i++) {
            kvl_pstats_free(&p->t[i].ps);
        }
        free(p->t);
        free(p);
    }
}

void kvl_prober_free(kvl_prober_t *p)
{
    if (p == NULL || p->freeing) {
        return;
    }
    p->freeing = true;
    kvl_icmp_free(p->icmp);
    p->icmp = NULL;
    p->closing = p->n;
    if (p->n == 0) {
        free(p->t);
        free(p);
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        uv_close((uv_handle_t *)&p->t[i].timer, on_timer_closed);
    }
}

void kvl_prober_set_once(kvl_prober_t *p, unsigned intervals, bool verbose, FILE *f,
                         void (*done)(void *arg), void *arg)
{
    p->once_intervals = intervals ? intervals : 1;
    p->verbose = verbose;
    p->out = f;
    p->done = done;
    p->done_arg = arg;
    if (p->n == 0 && done != NULL) {
        done(arg);
    }
}

static void print_fig(FILE *f, const char *name, double v, int prec)
{
    if (isnan(v)) {
        fprintf(f, " %s=U", name);
    } else {
        fprintf(f, " %s=%.*f", name, prec, v);
    }
}

static void report(ptarget_t *t, const kvl_pstats_result_t *r)
{
    kvl_prober_t *p = t->p;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    if (p->out != NULL) {
        kvl_icmp_stats_t st;
        kvl_icmp_get_stats(p->icmp, &st);
        fprintf(p->out, "probe %s address=%s interval=%u socket=%s ident=%d sent=%u received=%u",
                t->cfg->name, t->cfg->address, t->done, kvl_icmp_kind(p->icmp, t->family),
                kvl_icmp_ident(p->icmp, t->family), r->sent, r->received);
        print_fig(p->out, "lost_pct", r->lost_pct, 3);
        fprintf(p->out, " loss_burst=%u duplicates=%u reordered=%u", r->loss_burst, r->duplicates,
                r->reordered);
        print_fig(p->out, "rtt_min_ms", r->rtt_min_ms, 4);
        print_fig(p->out, "rtt_median_ms", r->rtt_median_ms, 4);
        print_fig(p->out, "rtt_mean_ms", r->rtt_mean_ms, 4);
        print_fig(p->out, "rtt_max_ms", r->rtt_max_ms, 4);
        print_fig(p->out, "rtt_stddev_ms", r->rtt_stddev_ms, 4);
        print_fig(p->out, "jitter_ms", r->jitter_ms, 4);
        print_fig(p->out, "mos", r->mos, 3);
        fprintf(p->out, " late=%" PRIu64 " tx_kernel=%" PRIu64 " tx_user=%" PRIu64 "\n", t->late,
                st.tx_kernel, st.tx_user);
        fflush(p->out);
        return;
    }
    if (p->b == NULL || t->id == 0) {
        return;
    }
    const double v[M_N] = {r->sent,          r->received,      r->lost_pct,
                           r->loss_burst,    r->duplicates,    r->reordered,
                           r->rtt_min_ms,    r->rtt_median_ms, r->rtt_mean_ms,
                           r->rtt_max_ms,    r->rtt_stddev_ms, r->jitter_ms,
                           r->mos};
    kvl_batcher_group_begin(p->b, now_ms);
    for (uint32_t m = 0; m < M_N; m++) {
        if (isnan(v[m])) {
            kvl_batcher_add_unknown(p->b, t->id + m);
        } else if (link_reals[m]) {
            kvl_batcher_add_real(p->b, t->id + m, v[m]);
        } else {
            kvl_batcher_add(p->b, t->id + m, (uint64_t)v[m]);
        }
    }
    kvl_batcher_group_end(p->b);
}

static void close_interval(ptarget_t *t)
{
    kvl_prober_t *p = t->p;
    kvl_pstats_result_t r;
    kvl_pstats_finish(&t->ps, &t->st, &r);
    report(t, &r);
    t->done++;
    t->start += (uint64_t)p->interval_ms;
    t->next = 0;
    t->number += p->count;
    kvl_pstats_reset(&t->ps, p->count); /* same size: cannot fail */
}

static void on_timer(uv_timer_t *h)
{
    ptarget_t *t = h->data;
    kvl_prober_t *p = t->p;
    uint64_t now = uv_now(p->loop);
    if (t->next == p->count && now >= t->start + (uint64_t)p->interval_ms) {
        close_interval(t);
        if (p->once_intervals && t->done >= p->once_intervals) {
            if (++p->finished == p->n && p->done != NULL) {
                p->done(p->done_arg);
            }
            return;
        }
    }
    while (t->next < p->count && due(p, t, t->next) <= now) {
        uint32_t i = t->next++;
        int rc = kvl_icmp_send(p->icmp, (const struct sockaddr *)&t->addr, t->idx,
                               (uint32_t)(t->number + i));
        /* A probe the kernel refuses (no route, our own link down) is a probe the target
         * did not answer: it counts as sent and lost. */
        kvl_pstats_sent(&t->ps, i);
        if (rc == 0) {
            if (t->send_failing) {
                t->send_failing = false;
                KVL_LOG_INFO(MOD, t->cfg->name, "sending again");
            }
        } else if (!t->send_failing) {
            t->send_failing = true;
            KVL_LOG_WARN(MOD, t->cfg->name, "cannot send to %s: %s", t->cfg->address,
                         strerror(-rc));
        }
    }
    schedule(t);
}

static bool same_address(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    if (a->sa_family != b->ss_family) {
        return false;
    }
    if (a->sa_family == AF_INET) {
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
    }
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

static void on_reply(void *arg, const kvl_icmp_reply_t *r)
{
    kvl_prober_t *p = arg;
    if (r->target >= p->n) {
        return;
    }
    ptarget_t *t = &p->t[r->target];
    if (!same_address(r->from, &t->addr)) {
        return;
    }
    /* The low 32 bits of the probe's number travel; the open interval is recent. */
    uint32_t rel = r->seq - (uint32_t)t->number;
    if (rel >= p->count || rel >= t->next) {
        t->late++;
        return;
    }
    int k = kvl_pstats_reply(&t->ps, &t->st, rel, r->rtt_ns);
    if (p->verbose && p->out != NULL) {
        fprintf(p->out, "reply %s probe=%" PRIu64 " seq16=%u rtt_ms=%.4f tx=%s rx=%s%s\n",
                t->cfg->name, t->number + rel, (unsigned)((t->number + rel) & 0xffff),
                (double)r->rtt_ns / 1e6, r->tx_kernel ? "kernel" : "user",
                r->rx_kernel ? "kernel" : "user",
                k == 1 ? " duplicate" : k == 2 ? " reordered" : "");
    }
}
