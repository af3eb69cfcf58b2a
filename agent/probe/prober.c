/*
 * prober.c — schedules each target's probes, matches replies to intervals, and reports
 * each interval's statistics (see prober.h). ICMP sockets and timestamps live in
 * probe_icmp.c, the arithmetic in probe_stats.c.
 *
 * Sequence numbers: a target's probes are numbered from 0 over its lifetime; probe i of
 * interval k is number k x count + i, sent modulo 2^31 (the top bit marks the confirming
 * probes of reach.h), so a reply's number tells its interval and its place in it. A reply whose
 * number is outside the open interval is late (counted, not used). Replies must come from the
 * target's address.
 *
 * Types: icmp (probe_icmp.c, one shared socket per family), stamp (probe_stamp.c, one
 * connected session per target; the agent's reflector too), tcp (probe_tcp.c, a connect per
 * probe) and http/https (probe_http.c, one curl multi handle). Each type reports its own
 * family; the RTT-like figure of each goes through the same probe_stats accumulator.
 *
 * Reachability (reach.h): every scheduled probe is also shown to the target's kvl_reach_t,
 * which asks for confirmation probes (sent by the same send_probe, numbered apart so that
 * the interval's statistics never see them) and says when the target went down or came
 * back; the prober turns that into the target_down / target_up events (device = the agent's
 * id, fields target, type, address or url, reason or down_s) and, when the agent keeps
 * state (kvl_prober_keep_state), into the targets' down-state file, so a restart neither
 * raises target_down again nor loses the down time. Not in --probe-once mode.
 */
#include "prober.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "downstate.h"
#include "log.h"
#include "probe_http.h"
#include "probe_icmp.h"
#include "probe_stamp.h"
#include "probe_stats.h"
#include "probe_tcp.h"
#include "reach.h"
#include "timeutil.h"

#define MOD "probe"

static const char *const link_metrics[] = {
    "sent",       "received",      "lost_pct",    "loss_burst", "duplicates",    "reordered",
    "rtt_min_ms", "rtt_median_ms", "rtt_mean_ms", "rtt_max_ms", "rtt_stddev_ms", "jitter_ms",
    "mos",        "rtt_p10_ms",    "rtt_p25_ms",  "rtt_p75_ms", "rtt_p90_ms",
};
enum { M_N = 17 };
static const kvl_kind_t link_kinds[M_N] = {
    KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE,
    KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE,
    KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE,
};
static const bool link_reals[M_N] = {false, false, true, false, false, false, true, true, true,
                                     true,  true,  true, true,  true,  true,  true, true};

_Static_assert(KVL_ARRAY_SIZE(link_metrics) == M_N, "link metrics and M_N differ");

const kvl_family_t kvl_link_family = {
    .name = "link", .n = M_N, .metrics = link_metrics, .kinds = link_kinds, .reals = link_reals};

#define GAUGES8                                                                                    \
    KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE,                \
        KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE

/* STAMP: the link figures (on the round trip without the reflector's residence time), then
 * the one-way delays (only when both clocks are synchronised; see prober.h). The link
 * figures are the link family's, in its order (values_of fills both alike). */
static const char *const stamp_metrics[] = {
    "sent",
    "received",
    "lost_pct",
    "loss_burst",
    "duplicates",
    "reordered",
    "rtt_min_ms",
    "rtt_median_ms",
    "rtt_mean_ms",
    "rtt_max_ms",
    "rtt_stddev_ms",
    "jitter_ms",
    "mos",
    "rtt_p10_ms",
    "rtt_p25_ms",
    "rtt_p75_ms",
    "rtt_p90_ms",
    "owd_fwd_min_ms",
    "owd_fwd_median_ms",
    "owd_fwd_max_ms",
    "owd_bwd_min_ms",
    "owd_bwd_median_ms",
    "owd_bwd_max_ms",
    "clock_sync",
    "clock_err_ms",
};
enum { S_N = 25 };
static const kvl_kind_t stamp_kinds[S_N] = {GAUGES8, GAUGES8, GAUGES8, KVL_KIND_GAUGE};
static const bool stamp_reals[S_N] = {false, false, true, false, false, false, true, true, true,
                                      true,  true,  true, true,  true,  true,  true, true, true,
                                      true,  true,  true, true,  true,  false, true};
_Static_assert(KVL_ARRAY_SIZE(stamp_metrics) == S_N, "stamp metrics and S_N differ");
const kvl_family_t kvl_stamp_family = {.name = "stamp",
                                       .n = S_N,
                                       .metrics = stamp_metrics,
                                       .kinds = stamp_kinds,
                                       .reals = stamp_reals};

static const char *const tcp_metrics[] = {
    "sent",
    "received",
    "lost_pct",
    "refused",
    "connect_min_ms",
    "connect_median_ms",
    "connect_mean_ms",
    "connect_max_ms",
    "connect_stddev_ms",
    "jitter_ms",
};
enum { T_N = 10 };
static const kvl_kind_t tcp_kinds[T_N] = {GAUGES8, KVL_KIND_GAUGE, KVL_KIND_GAUGE};
static const bool tcp_reals[T_N] = {false, false, true, false, true, true, true, true, true, true};
const kvl_family_t kvl_tcp_family = {
    .name = "tcp", .n = T_N, .metrics = tcp_metrics, .kinds = tcp_kinds, .reals = tcp_reals};

static const char *const http_metrics[] = {
    "sent",         "received",        "lost_pct",     "status",         "bad_status",
    "total_min_ms", "total_median_ms", "total_max_ms", "ttfb_median_ms", "cert_days",
};
enum { H_N = 10 };
static const kvl_kind_t http_kinds[H_N] = {GAUGES8, KVL_KIND_GAUGE, KVL_KIND_GAUGE};
static const bool http_reals[H_N] = {false, false, true, false, false,
                                     true,  true,  true, true,  true};
const kvl_family_t kvl_http_family = {
    .name = "http", .n = H_N, .metrics = http_metrics, .kinds = http_kinds, .reals = http_reals};

const kvl_family_t *kvl_probe_family(int type)
{
    switch (type) {
    case KVL_PROBE_STAMP:
        return &kvl_stamp_family;
    case KVL_PROBE_TCP:
        return &kvl_tcp_family;
    case KVL_PROBE_HTTP:
    case KVL_PROBE_HTTPS:
        return &kvl_http_family;
    default:
        return &kvl_link_family;
    }
}

typedef struct ptarget {
    kvl_prober_t *p;
    uint32_t idx;
    const kvl_probe_target_t *cfg;
    const kvl_family_t *fam;
    uint32_t count; /* probes per interval */
    struct sockaddr_storage addr;
    int family;
    uv_timer_t timer;
    uint64_t start;  /* loop time (ms) the open interval started */
    uint32_t next;   /* next probe of the open interval */
    uint64_t halved; /* ms the first interval was moved back (see kvl_prober_new), 0 */
    uint64_t number; /* number of the open interval's probe 0 */
    unsigned done;   /* intervals closed */
    uint64_t late;   /* replies after their interval */
    bool send_failing;
    kvl_pstats_t ps;
    kvl_pstats_state_t st;
    uint32_t id; /* batcher instance */
    /* stamp */
    kvl_stamp_session_t *stamp;
    uint32_t ow_synced, ow_unsynced; /* this interval's first replies, by clock state */
    int64_t ow_err_max;
    uint64_t rx_user; /* answers without a kernel receive timestamp */
    /* tcp */
    kvl_tcp_probe_t *tcp;
    uint32_t refused; /* this interval */
    /* http */
    long status; /* the interval's last status code, 0 none */
    uint32_t bad_status;
    double cert_days;   /* NaN: none this interval */
    bool fetch_failing; /* logged once until a response comes */
    /* reachability */
    kvl_reach_t reach;
    uv_timer_t rtimer;     /* kvl_reach_next */
    int64_t down_since_ms; /* Unix ms: the lost probe's send time (or the state file's) */
} ptarget_t;

struct kvl_prober {
    uv_loop_t *loop;
    const kvl_probe_cfg_t *cfg;
    kvl_batcher_t *b;
    const char *agent_id;
    kvl_downstate_t *state; /* NULL: not kept */
    kvl_icmp_t *icmp;
    kvl_http_t *http;
    kvl_stamp_reflector_t *reflector;
    kvl_stamp_clock_t clock;
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
static void on_stamp_answer(void *arg, const kvl_stamp_answer_t *a);
static void on_tcp_done(void *arg, uint32_t seq, int status, int64_t connect_ns);
static void on_http_done(void *arg, const kvl_http_result_t *r);
static void reach_run(ptarget_t *t);
static void on_rtimer(uv_timer_t *h);

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
    return t->start + (uint64_t)((int64_t)i * p->interval_ms / (int64_t)t->count);
}

/* Wake-ups are rounded up to a grid of TICK_MS (at most a tenth of the target's gap
 * between probes), so one loop wake-up sends the probes of every target due in that tick
 * and reads their replies together: with 1,000 targets this divides the loop's wake-ups
 * and empty reads several times. A probe leaves less than a tick after its due time; its
 * RTT comes from kernel timestamps and is not affected. */
#define TICK_MS 20

static void schedule(ptarget_t *t)
{
    kvl_prober_t *p = t->p;
    uint64_t at = t->next < t->count ? due(p, t, t->next) : t->start + (uint64_t)p->interval_ms;
    uint64_t tick = (uint64_t)(p->interval_ms / (int64_t)t->count / 10);
    tick = tick > TICK_MS ? TICK_MS : tick;
    if (tick > 1) {
        at = (at + tick - 1) / tick * tick;
    }
    uint64_t now = uv_now(p->loop);
    uv_timer_start(&t->timer, on_timer, at > now ? at - now : 0, 0);
}

/* Opens what target t's type needs. Returns 0 or a negative error (logged). */
static int open_target(kvl_prober_t *p, ptarget_t *t)
{
    const kvl_probe_target_t *c = t->cfg;
    /* ICMP: no port (a raw IPv6 socket refuses a nonzero one that is not its protocol). */
    int port = c->type == KVL_PROBE_ICMP ? 0 : c->port ? (int)c->port : KVL_STAMP_PORT;
    if (c->type == KVL_PROBE_HTTP || c->type == KVL_PROBE_HTTPS) {
        if (p->http == NULL) {
            p->http = kvl_http_new(p->loop, on_http_done, p);
        }
        return p->http != NULL ? 0 : KVL_ENOMEM;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)&t->addr;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&t->addr;
    if (inet_pton(AF_INET, c->address, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, c->address, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
    }
    t->family = t->addr.ss_family;
    int rc = 0;
    if (c->type == KVL_PROBE_STAMP) {
        t->stamp = kvl_stamp_session_new(p->loop, (const struct sockaddr *)&t->addr,
                                         (size_t)p->cfg->size, &p->clock, on_stamp_answer, t, &rc);
        if (t->stamp == NULL) {
            KVL_LOG_ERROR(MOD, c->name, "cannot open a STAMP session to %s port %d: %s", c->address,
                          port, strerror(-rc));
        }
    } else if (c->type == KVL_PROBE_TCP) {
        t->tcp = kvl_tcp_probe_new(p->loop, (const struct sockaddr *)&t->addr, on_tcp_done, t);
        rc = t->tcp != NULL ? 0 : KVL_ENOMEM;
    } else {
        rc = kvl_icmp_open(p->icmp, t->family);
    }
    return rc;
}

/* kvl_prober_new, with the reflector `given` (already listening, handed over by a reload)
 * instead of a new one when `take` is true. */
static int prober_new(uv_loop_t *loop, const kvl_probe_cfg_t *cfg, const char *agent_id,
                      kvl_batcher_t *b, bool take, kvl_stamp_reflector_t *given, kvl_prober_t **out,
                      char *err, size_t errlen)
{
    const kvl_probe_cfg_t *pc = cfg;
    *out = NULL;
    kvl_prober_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        snprintf(err, errlen, "out of memory creating the prober");
        return KVL_ENOMEM;
    }
    p->loop = loop;
    p->cfg = cfg;
    p->b = b;
    p->agent_id = agent_id;
    p->interval_ms = pc->interval_ms;
    p->count = (uint32_t)pc->count;
    p->n = pc->n_targets;
    p->t = calloc(p->n ? p->n : 1, sizeof(*p->t));
    p->icmp = kvl_icmp_new(loop, (size_t)pc->size, on_reply, p);
    if (p->t == NULL || p->icmp == NULL) {
        kvl_icmp_free(p->icmp);
        free(p->t);
        free(p);
        snprintf(err, errlen, "out of memory creating the prober");
        return KVL_ENOMEM;
    }
    kvl_stamp_clock_init(&p->clock, pc->clock_sync, pc->clock_error_us * 1000,
                         pc->clock_max_error_us * 1000);
    if (take) {
        p->reflector = given; /* answering all along: a mesh peer sees no loss */
        kvl_stamp_reflector_set_clock(given, &p->clock);
    } else if (pc->reflector_enabled) {
        /* NULL: logged; the agent runs on without a reflector. */
        p->reflector = kvl_stamp_reflector_new(loop, (int)pc->reflector_port, &p->clock);
    }
    uint64_t now = uv_now(loop);
    for (size_t i = 0; i < p->n; i++) {
        ptarget_t *t = &p->t[i];
        t->p = p;
        t->idx = (uint32_t)i;
        t->cfg = &pc->targets[i];
        t->fam = kvl_probe_family(t->cfg->type);
        t->count = kvl_probe_target_count(pc, t->cfg);
        t->cert_days = NAN;
        kvl_pstats_state_init(&t->st);
        int rc = open_target(p, t);
        if (rc == 0) {
            rc = kvl_pstats_reset(&t->ps, t->count);
        }
        if (rc != 0) {
            kvl_pstats_free(&t->ps);
            kvl_stamp_session_free(t->stamp);
            kvl_tcp_probe_free(t->tcp);
            p->n = i; /* the earlier ones have timers to close */
            if (take) {
                p->reflector = NULL; /* still the old prober's */
            }
            kvl_prober_free(p);
            snprintf(err, errlen, "cannot set up probe target '%s': %s", t->cfg->name,
                     kvl_strerror(rc));
            return rc;
        }
        uv_timer_init(loop, &t->timer);
        t->timer.data = t;
        uv_timer_init(loop, &t->rtimer);
        t->rtimer.data = t;
        uint64_t gap = (uint64_t)(p->interval_ms / (int64_t)t->count);
        bool web = t->cfg->type == KVL_PROBE_HTTP || t->cfg->type == KVL_PROBE_HTTPS;
        kvl_reach_init(&t->reach, (uint32_t)pc->confirm_count, pc->confirm_spacing_ms,
                       web ? 1000 : 100, (int64_t)(web && gap > 30000 ? 30000 : gap));
        t->reach.patient = web; /* a fetch reports its own failure */
        t->start = now + (gap ? fnv1a(t->cfg->name) % gap : 0);
        /* The first interval is only its second half: it starts half an interval back and
         * its first count / 2 probes are never sent (so neither sent nor lost); the rest go
         * out from now on (a lone probe at once). Its figures then come half an interval
         * after the start instead of a whole one, and a restarted agent leaves no gap in
         * its link archives longer than their heartbeat (two intervals) unless the restart
         * took over half an interval. --probe-once takes whole intervals (set_once). */
        uint64_t half = (uint64_t)p->interval_ms / 2;
        if (t->start > half) {
            t->start -= half;
            t->halved = half;
            t->next = t->count / 2;
        }
        if (b != NULL) {
            const char *where = t->cfg->url != NULL ? t->cfg->url : t->cfg->address;
            kvl_label_t labels[] = {{t->cfg->url != NULL ? "url" : "address", where},
                                    {"type", kvl_probe_type_name(t->cfg->type)}};
            kvl_instance_key_t key = {.device = agent_id,
                                      .scope = KVL_SCOPE_LINK,
                                      .instance = t->cfg->name,
                                      .family = t->fam,
                                      .interval_s = (uint32_t)((p->interval_ms + 999) / 1000),
                                      .labels = labels,
                                      .n_labels = KVL_ARRAY_SIZE(labels)};
            t->id = kvl_batcher_instance(b, &key);
        }
        schedule(t);
    }
    if (p->n > 0) {
        KVL_LOG_INFO(MOD, NULL,
                     "probing %zu targets every %lldms (%u probes per interval unless "
                     "a target says otherwise)",
                     p->n, (long long)p->interval_ms, p->count);
    }
    *out = p;
    return 0;
}

int kvl_prober_new(uv_loop_t *loop, const kvl_probe_cfg_t *cfg, const char *agent_id,
                   kvl_batcher_t *b, kvl_prober_t **out, char *err, size_t errlen)
{
    return prober_new(loop, cfg, agent_id, b, false, NULL, out, err, errlen);
}

int kvl_prober_reload(kvl_prober_t **pp, const kvl_probe_cfg_t *cfg, char *err, size_t errlen)
{
    kvl_prober_t *old = *pp;
    bool take = old->reflector != NULL && cfg->reflector_enabled &&
                kvl_stamp_reflector_port(old->reflector) == (int)cfg->reflector_port;
    kvl_prober_t *p = NULL;
    int rc =
        prober_new(old->loop, cfg, old->agent_id, old->b, take, old->reflector, &p, err, errlen);
    if (rc != 0) {
        return rc; /* the old one runs on, its reflector with it */
    }
    if (take) {
        old->reflector = NULL;
    }
    kvl_prober_free(old);
    *pp = p;
    return 0;
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
    kvl_http_free(p->http);
    p->http = NULL;
    kvl_stamp_reflector_free(p->reflector);
    p->reflector = NULL;
    for (size_t i = 0; i < p->n; i++) {
        kvl_stamp_session_free(p->t[i].stamp);
        p->t[i].stamp = NULL;
        kvl_tcp_probe_free(p->t[i].tcp);
        p->t[i].tcp = NULL;
    }
    kvl_downstate_free(p->state);
    p->state = NULL;
    p->closing = 2 * p->n;
    if (p->n == 0) {
        free(p->t);
        free(p);
        return;
    }
    for (size_t i = 0; i < p->n; i++) {
        uv_close((uv_handle_t *)&p->t[i].timer, on_timer_closed);
        uv_close((uv_handle_t *)&p->t[i].rtimer, on_timer_closed);
    }
}

void kvl_prober_set_once(kvl_prober_t *p, unsigned intervals, bool verbose, FILE *f,
                         void (*done)(void *arg), void *arg)
{
    p->once_intervals = intervals ? intervals : 1;
    /* Whole intervals from the start (nothing has been sent yet: the loop has not run). */
    for (size_t i = 0; i < p->n; i++) {
        ptarget_t *t = &p->t[i];
        t->start += t->halved;
        t->halved = 0;
        t->next = 0;
        schedule(t);
    }
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

/* The family's values for the interval (NaN: unknown); returns how many. */
static size_t values_of(const ptarget_t *t, const kvl_pstats_result_t *r, double *v)
{
    if (t->fam == &kvl_tcp_family) {
        const double tv[T_N] = {r->sent,          r->received,      r->lost_pct,    t->refused,
                                r->rtt_min_ms,    r->rtt_median_ms, r->rtt_mean_ms, r->rtt_max_ms,
                                r->rtt_stddev_ms, r->jitter_ms};
        memcpy(v, tv, sizeof(tv));
        return T_N;
    }
    if (t->fam == &kvl_http_family) {
        const double hv[H_N] = {r->sent,
                                r->received,
                                r->lost_pct,
                                t->status > 0 ? (double)t->status : NAN,
                                t->bad_status,
                                r->rtt_min_ms,
                                r->rtt_median_ms,
                                r->rtt_max_ms,
                                r->extra_median_ms[0],
                                t->cert_days};
        memcpy(v, hv, sizeof(hv));
        return H_N;
    }
    const double lv[M_N] = {r->sent,        r->received,   r->lost_pct,      r->loss_burst,
                            r->duplicates,  r->reordered,  r->rtt_min_ms,    r->rtt_median_ms,
                            r->rtt_mean_ms, r->rtt_max_ms, r->rtt_stddev_ms, r->jitter_ms,
                            r->mos,         r->rtt_p10_ms, r->rtt_p25_ms,    r->rtt_p75_ms,
                            r->rtt_p90_ms};
    memcpy(v, lv, sizeof(lv));
    if (t->fam != &kvl_stamp_family) {
        return M_N;
    }
    /* One-way figures only for an interval whose every answer had both clocks synchronised;
     * clock_sync unknown when nothing came back. */
    bool sync = t->ow_synced > 0 && t->ow_unsynced == 0;
    double sv[S_N - M_N] = {r->extra_min_ms[0],
                            r->extra_median_ms[0],
                            r->extra_max_ms[0],
                            r->extra_min_ms[1],
                            r->extra_median_ms[1],
                            r->extra_max_ms[1],
                            r->received ? (sync ? 1.0 : 0.0) : NAN,
                            sync ? (double)t->ow_err_max / 1e6 : NAN};
    for (size_t k = 0; k < 6 && !sync; k++) {
        sv[k] = NAN;
    }
    memcpy(v + M_N, sv, sizeof(sv));
    return S_N;
}

static void report(ptarget_t *t, const kvl_pstats_result_t *r)
{
    kvl_prober_t *p = t->p;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    double v[KVL_FAMILY_MAX];
    size_t nv = values_of(t, r, v);
    if (p->out != NULL && t->cfg->type == KVL_PROBE_ICMP) {
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
        print_fig(p->out, "rtt_p10_ms", r->rtt_p10_ms, 4);
        print_fig(p->out, "rtt_p25_ms", r->rtt_p25_ms, 4);
        print_fig(p->out, "rtt_p75_ms", r->rtt_p75_ms, 4);
        print_fig(p->out, "rtt_p90_ms", r->rtt_p90_ms, 4);
        fprintf(p->out, " late=%" PRIu64 " tx_kernel=%" PRIu64 " tx_user=%" PRIu64 "\n", t->late,
                st.tx_kernel, st.tx_user);
        fflush(p->out);
        return;
    }
    if (p->out != NULL) {
        fprintf(p->out, "probe %s type=%s %s=%s", t->cfg->name, kvl_probe_type_name(t->cfg->type),
                t->cfg->url != NULL ? "url" : "address",
                t->cfg->url != NULL ? t->cfg->url : t->cfg->address);
        if (t->cfg->type == KVL_PROBE_STAMP || t->cfg->type == KVL_PROBE_TCP) {
            fprintf(p->out, " port=%d",
                    ntohs(t->family == AF_INET ? ((struct sockaddr_in *)&t->addr)->sin_port
                                               : ((struct sockaddr_in6 *)&t->addr)->sin6_port));
        }
        fprintf(p->out, " interval=%u", t->done);
        for (size_t m = 0; m < nv; m++) {
            print_fig(p->out, t->fam->metrics[m], v[m], t->fam->reals[m] ? 4 : 0);
        }
        fprintf(p->out, " late=%" PRIu64, t->late);
        if (t->stamp != NULL) {
            const kvl_clock_sync_t *cs = kvl_stamp_clock_get(&p->clock, uv_now(p->loop));
            fprintf(p->out, " local_clock=%s rx_user=%" PRIu64 " malformed=%" PRIu64,
                    cs->synced ? "synced" : "unsynced", t->rx_user,
                    kvl_stamp_session_malformed(t->stamp));
        }
        if (t->tcp != NULL) {
            fprintf(p->out, " user_timed=%" PRIu64, kvl_tcp_probe_user_timed(t->tcp));
        }
        fprintf(p->out, "\n");
        fflush(p->out);
        return;
    }
    if (p->b == NULL || t->id == 0) {
        return;
    }
    kvl_batcher_group_begin(p->b, now_ms);
    for (uint32_t m = 0; m < nv; m++) {
        if (isnan(v[m])) {
            kvl_batcher_add_unknown(p->b, t->id + m);
        } else if (t->fam->reals[m]) {
            kvl_batcher_add_real(p->b, t->id + m, v[m]);
        } else {
            kvl_batcher_add(p->b, t->id + m, (uint64_t)v[m]);
        }
    }
    kvl_batcher_group_end(p->b);
}

/* Whether targets' reachability is followed: not in --probe-once mode. */
static bool reach_on(const kvl_prober_t *p)
{
    return p->b != NULL && p->out == NULL;
}

/* Sends t's probe numbered seq (scheduled or confirming); timeout_ms bounds an HTTP fetch.
 * Returns 0 or a negative error (then no answer will come). */
static int send_probe(ptarget_t *t, uint32_t seq, int64_t timeout_ms)
{
    kvl_prober_t *p = t->p;
    switch (t->cfg->type) {
    case KVL_PROBE_STAMP:
        return kvl_stamp_session_send(t->stamp, seq);
    case KVL_PROBE_TCP:
        return kvl_tcp_probe_connect(t->tcp, seq);
    case KVL_PROBE_HTTP:
    case KVL_PROBE_HTTPS:
        return kvl_http_get(p->http, t->cfg->url, t->cfg->ca_file, t->idx, seq, (long)timeout_ms);
    default:
        return kvl_icmp_send(p->icmp, (const struct sockaddr *)&t->addr, t->idx, seq);
    }
}

static void reach_event(ptarget_t *t, bool down, int64_t now_ms)
{
    kvl_prober_t *p = t->p;
    const char *where = t->cfg->url != NULL ? t->cfg->url : t->cfg->address;
    char text[600];
    char extra[64];
    if (down) {
        snprintf(extra, sizeof(extra), "no reply to %u probes", t->reach.confirm_n + 1);
        snprintf(text, sizeof(text), "target %s (%s %s) not answering: %s", t->cfg->name,
                 kvl_probe_type_name(t->cfg->type), where, extra);
        KVL_LOG_WARN(MOD, t->cfg->name, "not answering: %s", extra);
    } else {
        int64_t ms = now_ms - t->down_since_ms;
        ms = ms < 0 ? 0 : ms;
        snprintf(extra, sizeof(extra), "%" PRId64, ms / 1000);
        snprintf(text, sizeof(text),
                 "target %s (%s %s) answering again after %" PRId64 ".%03ds down", t->cfg->name,
                 kvl_probe_type_name(t->cfg->type), where, ms / 1000, (int)(ms % 1000));
        KVL_LOG_INFO(MOD, t->cfg->name, "answering again after %" PRId64 ".%03ds down", ms / 1000,
                     (int)(ms % 1000));
    }
    kvl_label_t fields[] = {{"target", t->cfg->name},
                            {"type", kvl_probe_type_name(t->cfg->type)},
                            {t->cfg->url != NULL ? "url" : "address", where},
                            {down ? "reason" : "down_s", extra}};
    kvl_event_t ev = {
        .time_ms = now_ms,
        .device = p->agent_id,
        .kind = down ? "target_down" : "target_up",
        .severity = down ? KVL_SEV_CRITICAL : KVL_SEV_INFO,
        .text = text,
        .fields = fields,
        .n_fields = KVL_ARRAY_SIZE(fields),
    };
    kvl_batcher_event(p->b, &ev);
    /* Now, not at the next flush: the event is the news. */
    kvl_batcher_flush(p->b);
}

/* Does what t's reach asks until it has nothing more to do now, then waits for its next. */
static void reach_run(ptarget_t *t)
{
    kvl_prober_t *p = t->p;
    if (!reach_on(p) || p->freeing) {
        return;
    }
    int64_t now = (int64_t)uv_now(p->loop);
    for (unsigned guard = 0; guard < 4 * KVL_REACH_CONFIRM_MAX + 4; guard++) {
        uint32_t seq = 0;
        kvl_reach_action_t a = kvl_reach_poll(&t->reach, now, &seq);
        if (a == KVL_REACH_NONE) {
            break;
        }
        if (a == KVL_REACH_SEND) {
            if (send_probe(t, seq, kvl_reach_timeout(&t->reach)) != 0) {
                kvl_reach_failed(&t->reach, seq, now);
            }
            continue;
        }
        /* Went down: since the lost probe was sent. */
        int64_t wall = kvl_now_ms();
        t->down_since_ms = wall - (now - t->reach.lost_at);
        reach_event(t, true, wall);
        kvl_downstate_set(p->state, t->cfg->name, 1, t->down_since_ms);
    }
    int64_t next = kvl_reach_next(&t->reach);
    if (next == INT64_MAX) {
        uv_timer_stop(&t->rtimer);
    } else {
        uv_timer_start(&t->rtimer, on_rtimer, next > now ? (uint64_t)(next - now) : 0, 0);
    }
}

static void on_rtimer(uv_timer_t *h)
{
    reach_run(h->data);
}

/* What came back for probe seq of t: an answer (rtt_ns < 0 when unknown) or a failure. */
static void reach_result(ptarget_t *t, uint32_t seq, bool answered, int64_t rtt_ns)
{
    kvl_prober_t *p = t->p;
    if (!reach_on(p)) {
        return;
    }
    int64_t now = (int64_t)uv_now(p->loop);
    bool first = t->reach.state == KVL_REACH_UNKNOWN;
    if (!answered) {
        kvl_reach_failed(&t->reach, seq, now);
    } else if (kvl_reach_answer(&t->reach, seq, rtt_ns, now)) {
        reach_event(t, false, kvl_now_ms());
        kvl_downstate_clear(p->state, t->cfg->name);
    } else if (first && t->reach.state == KVL_REACH_UP) {
        KVL_LOG_DEBUG(MOD, t->cfg->name, "answering");
    }
    reach_run(t);
}

int kvl_prober_keep_state(kvl_prober_t *p, const char *path, char *err, size_t errlen)
{
    if (p->state != NULL) {
        snprintf(err, errlen, "the probe targets' state is already kept");
        return KVL_EINVAL;
    }
    int rc = kvl_downstate_new(p->loop, path, "probe targets' state", &p->state, err, errlen);
    if (rc != 0) {
        return rc;
    }
    const char **names = calloc(p->n ? p->n : 1, sizeof(*names));
    if (names == NULL) {
        kvl_downstate_free(p->state);
        p->state = NULL;
        snprintf(err, errlen, "out of memory loading the probe targets' state");
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < p->n; i++) {
        names[i] = p->t[i].cfg->name;
    }
    size_t gone = kvl_downstate_retain(p->state, names, p->n);
    free(names);
    if (gone > 0) {
        KVL_LOG_INFO(MOD, NULL, "%zu targets no longer configured forgotten from %s", gone, path);
    }
    for (size_t i = 0; i < p->n; i++) {
        ptarget_t *t = &p->t[i];
        int reason;
        int64_t since;
        if (kvl_downstate_get(p->state, t->cfg->name, &reason, &since)) {
            kvl_reach_set_down(&t->reach);
            t->down_since_ms = since;
            KVL_LOG_INFO(MOD, t->cfg->name,
                         "not answering for %" PRId64 "s before this start: down until it answers",
                         (kvl_now_ms() - since) / 1000);
        }
    }
    return 0;
}

static void close_interval(ptarget_t *t)
{
    kvl_prober_t *p = t->p;
    kvl_pstats_result_t r;
    kvl_pstats_finish(&t->ps, &t->st, &r);
    if (t->tcp != NULL) {
        kvl_tcp_probe_cancel(t->tcp); /* still connecting: lost */
    }
    report(t, &r);
    t->done++;
    t->start += (uint64_t)p->interval_ms;
    t->next = 0;
    t->number += t->count;
    kvl_pstats_reset(&t->ps, t->count); /* same size: cannot fail */
    t->ow_synced = t->ow_unsynced = 0;
    t->ow_err_max = 0;
    t->refused = 0;
    t->status = 0;
    t->bad_status = 0;
    t->cert_days = NAN;
}

static void on_timer(uv_timer_t *h)
{
    ptarget_t *t = h->data;
    kvl_prober_t *p = t->p;
    uint64_t now = uv_now(p->loop);
    if (t->next == t->count && now >= t->start + (uint64_t)p->interval_ms) {
        close_interval(t);
        if (p->once_intervals && t->done >= p->once_intervals) {
            if (++p->finished == p->n && p->done != NULL) {
                p->done(p->done_arg);
            }
            return;
        }
    }
    bool watched = false;
    while (t->next < t->count && due(p, t, t->next) <= now) {
        uint32_t i = t->next++;
        uint32_t seq = (uint32_t)(t->number + i) & ~KVL_REACH_CONFIRM_BIT;
        /* Until the next probe is due, at most 30 s (the reach's normal timeout). */
        int rc = send_probe(t, seq, t->reach.normal_ms);
        if (reach_on(p)) {
            kvl_reach_sent(&t->reach, seq, (int64_t)now);
            if (rc != 0) {
                kvl_reach_failed(&t->reach, seq, (int64_t)now);
            }
            watched = true;
        }
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
            KVL_LOG_WARN(MOD, t->cfg->name, "cannot send to %s: %s",
                         t->cfg->url != NULL ? t->cfg->url : t->cfg->address,
                         rc > -4096 && rc < 0 ? strerror(-rc) : "error");
        }
    }
    if (watched) {
        reach_run(t);
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
    reach_result(t, r->seq, true, r->rtt_ns);
    if (kvl_reach_is_confirm(r->seq)) {
        return; /* not in the interval's statistics */
    }
    /* The low 31 bits of the probe's number travel; the open interval is recent. */
    uint32_t rel = (r->seq - (uint32_t)t->number) & ~KVL_REACH_CONFIRM_BIT;
    if (rel >= t->count || rel >= t->next) {
        t->late++;
        return;
    }
    int k = kvl_pstats_reply(&t->ps, &t->st, rel, r->rtt_ns);
    if (p->verbose && p->out != NULL) {
        fprintf(p->out, "reply %s probe=%" PRIu64 " seq16=%u rtt_ms=%.4f tx=%s rx=%s%s\n",
                t->cfg->name, t->number + rel, (unsigned)((t->number + rel) & 0xffff),
                (double)r->rtt_ns / 1e6, r->tx_kernel ? "kernel" : "user",
                r->rx_kernel ? "kernel" : "user",
                k == 1   ? " duplicate"
                : k == 2 ? " reordered"
                         : "");
    }
}

/* The probe number seq's place in t's open interval, or -1 when it is not there (late). */
static int64_t open_slot(ptarget_t *t, uint32_t seq)
{
    if (kvl_reach_is_confirm(seq)) {
        return -1; /* a confirming probe: not in the interval's statistics */
    }
    uint32_t rel = (seq - (uint32_t)t->number) & ~KVL_REACH_CONFIRM_BIT;
    if (rel >= t->count || rel >= t->next) {
        t->late++;
        return -1;
    }
    return rel;
}

static void on_stamp_answer(void *arg, const kvl_stamp_answer_t *a)
{
    ptarget_t *t = arg;
    kvl_prober_t *p = t->p;
    reach_result(t, a->seq, true, a->t4 - a->t1 - (a->t3 - a->t2));
    int64_t rel = open_slot(t, a->seq);
    if (rel < 0) {
        return;
    }
    const kvl_clock_sync_t *cs = kvl_stamp_clock_get(&p->clock, uv_now(p->loop));
    kvl_stamp_times_t tm;
    kvl_stamp_times(a->t1, a->t2, a->t3, a->t4, cs->synced, cs->err_ns, a->refl_err,
                    p->clock.max_err_ns, &tm);
    if (tm.rtt_ns < 0) {
        return; /* T3 before T2 or T4 before T1: not a measurement */
    }
    if (!a->rx_kernel) {
        t->rx_user++;
    }
    int k = kvl_pstats_reply(&t->ps, &t->st, (uint32_t)rel, tm.rtt_ns);
    if (k == 0 || k == 2) {
        if (tm.oneway) {
            t->ow_synced++;
            t->ow_err_max = tm.err_ns > t->ow_err_max ? tm.err_ns : t->ow_err_max;
            kvl_pstats_extra(&t->ps, (uint32_t)rel, 0, tm.fwd_ns);
            kvl_pstats_extra(&t->ps, (uint32_t)rel, 1, tm.bwd_ns);
        } else {
            t->ow_unsynced++;
        }
    }
    if (p->verbose && p->out != NULL) {
        fprintf(p->out, "reply %s probe=%" PRIu64 " rtt_ms=%.4f", t->cfg->name,
                t->number + (uint64_t)rel, (double)tm.rtt_ns / 1e6);
        if (tm.oneway) {
            fprintf(p->out, " fwd_ms=%.4f bwd_ms=%.4f err_ms=%.4f", (double)tm.fwd_ns / 1e6,
                    (double)tm.bwd_ns / 1e6, (double)tm.err_ns / 1e6);
        }
        fprintf(p->out, " residence_ms=%.4f ttl=%u rx=%s%s\n", (double)(a->t3 - a->t2) / 1e6,
                a->ttl, a->rx_kernel ? "kernel" : "user",
                k == 1   ? " duplicate"
                : k == 2 ? " reordered"
                         : "");
    }
}

static void on_tcp_done(void *arg, uint32_t seq, int status, int64_t connect_ns)
{
    ptarget_t *t = arg;
    kvl_prober_t *p = t->p;
    reach_result(t, seq, status == 0, connect_ns);
    int64_t rel = open_slot(t, seq);
    if (rel < 0) {
        return;
    }
    if (status == UV_ECONNREFUSED) {
        t->refused++;
    }
    if (status == 0) {
        kvl_pstats_reply(&t->ps, &t->st, (uint32_t)rel, connect_ns);
    }
    if (p->verbose && p->out != NULL) {
        fprintf(p->out, "reply %s probe=%" PRIu64 " %s", t->cfg->name, t->number + (uint64_t)rel,
                status == 0 ? "connected" : uv_err_name(status));
        if (status == 0) {
            fprintf(p->out, " connect_ms=%.4f", (double)connect_ns / 1e6);
        }
        fprintf(p->out, "\n");
    }
}

static void on_http_done(void *arg, const kvl_http_result_t *r)
{
    kvl_prober_t *p = arg;
    if (r->target >= p->n) {
        return;
    }
    ptarget_t *t = &p->t[r->target];
    reach_result(t, r->seq,
                 r->done && (t->cfg->expect_status == 0 || r->status == t->cfg->expect_status),
                 r->total_ns);
    int64_t rel = open_slot(t, r->seq);
    if (rel < 0) {
        return;
    }
    if (r->done) {
        t->status = r->status;
        if (!isnan(r->cert_days)) {
            t->cert_days = r->cert_days;
        }
        if (t->cfg->expect_status != 0 && r->status != t->cfg->expect_status) {
            t->bad_status++;
        } else {
            kvl_pstats_reply(&t->ps, &t->st, (uint32_t)rel, r->total_ns);
            kvl_pstats_extra(&t->ps, (uint32_t)rel, 0, r->ttfb_ns);
        }
        if (t->fetch_failing) {
            t->fetch_failing = false;
            KVL_LOG_INFO(MOD, t->cfg->name, "GET %s answers again", t->cfg->url);
        }
    } else if (!t->fetch_failing) {
        t->fetch_failing = true;
        KVL_LOG_WARN(MOD, t->cfg->name, "GET %s: %s", t->cfg->url, r->error);
    }
    if (p->verbose && p->out != NULL) {
        fprintf(p->out, "reply %s probe=%" PRIu64 " status=%ld total_ms=%.3f ttfb_ms=%.3f",
                t->cfg->name, t->number + (uint64_t)rel, r->status, (double)r->total_ns / 1e6,
                (double)r->ttfb_ns / 1e6);
        if (!isnan(r->cert_days)) {
            fprintf(p->out, " cert_days=%.3f", r->cert_days);
        }
        fprintf(p->out, "%s%s\n", r->done ? "" : " error=", r->done ? "" : r->error);
    }
}
