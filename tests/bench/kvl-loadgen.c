/*
 * kvl-loadgen.c — many simulated agents against one kaaval-collector, for tests/bench/ingest.
 *
 *   kvl-loadgen --port 5140 --agents 100 --interfaces 48 --window 4 --duration 10
 *
 * Each agent is one TCP connection (plain: the collector runs with `insecure: true`)
 * speaking protocol v1 as kaaval-agent does: a Hello with its own agent id and site, then
 * SeriesDefs (the "if" family of 15 metrics, and one definition per interface naming it,
 * with the labels the poller sends), then Batches on the bulk lane: one group per
 * interface per poll, 12 counters increasing by plausible amounts for the interface's
 * speed and load plus oper/admin status and speed, the groups of one poll a few ms apart
 * (as an SNMP walk answers) and each poll `--interval` seconds after the previous one in
 * the samples' time. Simulated time runs as fast as the collector acknowledges, so the
 * archives see many polls per wall-clock second.
 *
 * Each agent keeps up to `--window` batches unacknowledged (pipelining); an Ack frees the
 * slots of every batch up to its seq, and the time from sending to the Ack is a latency
 * sample. Measurement starts once every agent has had its first batch acknowledged (the
 * archive files exist) and `--warmup` seconds have passed, and lasts `--duration` seconds;
 * then no new batches are sent and the outstanding ones are waited for (at most
 * `--drain` seconds). Lines "MEASURE start" and "MEASURE end" go to stdout (flushed) at
 * those instants so the caller can read the collector's CPU time then. With `--batches N`
 * each agent sends N batches and closes once they are acknowledged, or with `--linger`
 * stays connected and idle until the window ends (connections held, memory at rest).
 *
 * Figures: acknowledged samples per second in the window, wire bytes per sample of the
 * steady batches (frame payload, definitions excluded; also with the 4-byte frame header)
 * and what they are spent on, ack latency percentiles, the most connections that were
 * established and welcomed at once, and this process' own CPU time. The last line is
 *   LOADGEN key=value ...
 * for the benchmark script. Exit status 0 when every agent was welcomed and nothing went
 * wrong, 1 otherwise (the figures are printed anyway), 2 for usage errors. With
 * `--defs-in-batch` the definitions travel in each agent's first batch, as kaaval-agent
 * sends them, so that the collector's inventory learns every device (tests/bench/web).
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "frame.h"
#include "kswan-model.h"
#include "kvl.h"
#include "timeutil.h"
#include "wire.h"

enum { N_CTR = 12, N_IF_METRICS = 15, IF_OPER = 12, IF_ADMIN = 13, IF_SPEED = 14 };

static const char *const if_metrics[N_IF_METRICS] = {
    "in_octets",      "out_octets",    "in_ucast_pkts",  "out_ucast_pkts", "in_mcast_pkts",
    "out_mcast_pkts", "in_bcast_pkts", "out_bcast_pkts", "in_errors",      "out_errors",
    "in_discards",    "out_discards",  "oper_status",    "admin_status",   "speed_bps",
};

static const kvl_kind_t if_kinds[N_IF_METRICS] = {
    KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_COUNTER,
    KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_COUNTER,
    KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_GAUGE,   KVL_KIND_GAUGE,   KVL_KIND_GAUGE,
};

#define IF_FAMILY_ID 1u
#define IFS_PER_DEVICE 48u   /* a device is a 48-port switch; an agent polls several */
#define CONNECT_PARALLEL 128 /* connections being set up at once */
#define MAX_LATENCIES (4u * 1024u * 1024u)

typedef struct opts {
    const char *host;
    int port;
    unsigned agents;
    unsigned interfaces;
    unsigned window;
    uint64_t batches;   /* per agent; 0 = until the window ends */
    bool linger;        /* with batches: stay connected, idle, until the window ends */
    bool defs_in_batch; /* definitions in the first batch, as kaaval-agent sends them */
    double duration_s;
    double warmup_s;
    double drain_s;
    double setup_s; /* longest wait for every agent's first ack */
    unsigned interval_s;
    const char *site;
    const char *prefix;
    /* --kswan: the simulated state network at a real step (kswan-model.h) */
    bool kswan;
    double scale;
    uint32_t seed;
    unsigned step_s;
    double minutes;       /* 0: until SIGTERM or SIGINT */
    double down_pct;      /* share of devices down at a time */
    unsigned quiet_steps; /* no device goes down in the first steps */
    const char *sites_out;
    bool plan; /* print the network's sizes (and write --sites-out), then exit */
} opts_t;

typedef struct iface {
    uint64_t ctr[N_CTR];
    uint64_t speed_bps;
    double load; /* share of the speed in use, in each direction on average */
    uint64_t oper;
} iface_t;

typedef enum { A_IDLE, A_CONNECTING, A_HELLO, A_READY, A_DONE } agent_phase_t;

typedef struct agent {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    struct loadgen *lg;
    unsigned index;
    char id[64];
    agent_phase_t phase;
    kvl_frame_reader_t reader;
    iface_t *ifs;
    uint32_t rng;
    int64_t t_ms;         /* sample time of the next poll */
    uint64_t next_seq;    /* seq of the next batch to send */
    uint64_t acked_seq;   /* highest seq acknowledged */
    uint64_t sent;        /* batches sent on this connection */
    uint64_t *sent_ns;    /* send time per slot (seq % window) */
    uint32_t *samples_of; /* samples per slot */
    bool first_acked;
    bool closed;
    struct defs *pending; /* --defs-in-batch: the definitions the first batch carries */
    const char *site;
    ks_agent_t *ks;       /* --kswan: what it polls */
    uint64_t ev_next_seq; /* events lane */
    uint64_t ev_acked_seq;
} agent_t;

/* --kswan: one poll due in each step (a device, or a probed link), by its phase. */
typedef struct ks_poll {
    uint32_t phase_ms;
    uint16_t agent;
    int16_t dev; /* >= 0: a device; < 0: link -1 - dev */
} ks_poll_t;

typedef struct loadgen {
    uv_loop_t *loop;
    opts_t o;
    agent_t *agents;
    uv_timer_t tick;
    unsigned next_to_connect;
    unsigned connecting;
    unsigned ready_now, ready_max;
    unsigned welcomed, first_acked;
    unsigned failures; /* connections that failed or closed before the end */
    bool measuring, stopping, finished;
    uint64_t t_setup_ns, t_start_ns, t_end_ns, t_stop_ns;
    uint64_t samples_window, batches_window, samples_total, batches_total;
    uint64_t unacked; /* batches sent and not yet acknowledged, all agents */
    /* wire size of steady batches (not the first one of a connection) */
    uint64_t wire_payload, wire_samples, wire_batches;
    uint64_t sz_values, sz_ids, sz_time, sz_groups;
    uint32_t *lat_us;
    size_t n_lat;
    uint64_t lat_seen;
    /* reused for every batch */
    kvl_group_t *groups;
    uint32_t *ids;
    uint64_t *vals;
    double *reals;
    kvl_buf_t frame;
    /* --kswan */
    ks_net_t net;
    ks_poll_t *polls;
    size_t n_polls, cursor;
    uint64_t step; /* the step being polled, from 0 */
    int64_t t0_ms; /* wall-clock start of step 0 */
    uint64_t ks_polls, ks_skipped, ks_late, ks_samples, ks_link_samples, ks_batches;
    uint64_t ks_downs, ks_ups, ks_events_acked, ks_down_now;
    uv_signal_t sig_term, sig_int;
} loadgen_t;

/* ----------------------------------------------------------------- helpers ------------- */

static uint32_t rnd(uint32_t *s)
{
    /* xorshift32: plenty for plausible noise. */
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static double rnd01(uint32_t *s)
{
    return (double)(rnd(s) >> 8) / (double)(1u << 24);
}

static size_t varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static void fail(loadgen_t *lg, agent_t *a, const char *what, const char *why)
{
    if (lg->failures++ < 10) {
        fprintf(stderr, "kvl-loadgen: %s: %s: %s\n", a->id, what, why);
    }
}

/* ----------------------------------------------------------------- the simulated device - */

static void iface_init(iface_t *f, uint32_t *rng, unsigned k)
{
    static const uint64_t speeds[] = {100000000ull, 1000000000ull, 1000000000ull, 10000000000ull};
    f->speed_bps = speeds[rnd(rng) % KVL_ARRAY_SIZE(speeds)];
    f->oper = (k % 10 == 9) ? 2 : 1; /* a tenth of the ports are down */
    f->load = f->oper == 1 ? 0.005 + 0.3 * rnd01(rng) * rnd01(rng) : 0;
    /* Counters as after months of uptime: about 90 days at this load. */
    double secs = 90.0 * 86400.0 * (0.5 + rnd01(rng));
    double octets = f->load * (double)f->speed_bps / 8.0 * secs;
    double pkts = octets / 700.0;
    f->ctr[0] = (uint64_t)octets;
    f->ctr[1] = (uint64_t)(octets * (0.6 + 0.8 * rnd01(rng)));
    f->ctr[2] = (uint64_t)pkts;
    f->ctr[3] = (uint64_t)(pkts * (0.6 + 0.8 * rnd01(rng)));
    f->ctr[4] = (uint64_t)(pkts * 0.002);
    f->ctr[5] = (uint64_t)(pkts * 0.001);
    f->ctr[6] = (uint64_t)(pkts * 0.0005);
    f->ctr[7] = (uint64_t)(pkts * 0.0002);
    f->ctr[8] = rnd(rng) % 2000;
    f->ctr[9] = rnd(rng) % 200;
    f->ctr[10] = rnd(rng) % 50000;
    f->ctr[11] = rnd(rng) % 500000;
}

/* One poll interval of traffic: load varies +-50 % around the port's mean. */
static void iface_step(iface_t *f, uint32_t *rng, unsigned interval_s)
{
    if (f->oper != 1) {
        return;
    }
    double bytes = f->load * (double)f->speed_bps / 8.0 * interval_s;
    double in = bytes * (0.5 + rnd01(rng)), out = bytes * (0.5 + rnd01(rng));
    double in_p = in / (400.0 + 600.0 * rnd01(rng)), out_p = out / (400.0 + 600.0 * rnd01(rng));
    f->ctr[0] += (uint64_t)in;
    f->ctr[1] += (uint64_t)out;
    f->ctr[2] += (uint64_t)in_p;
    f->ctr[3] += (uint64_t)out_p;
    f->ctr[4] += (uint64_t)(in_p * 0.002 * rnd01(rng));
    f->ctr[5] += (uint64_t)(out_p * 0.001 * rnd01(rng));
    f->ctr[6] += (uint64_t)(in_p * 0.0005 * rnd01(rng));
    f->ctr[7] += (uint64_t)(out_p * 0.0002 * rnd01(rng));
    /* Errors and discards: mostly nothing, now and then a few. */
    for (int k = 8; k < N_CTR; k++) {
        uint32_t r = rnd(rng);
        if (r % 8 == 0) {
            f->ctr[k] += 1 + (r >> 8) % (k >= 10 ? 200 : 5);
        }
    }
}

/* ----------------------------------------------------------------- sending ------------- */

static void on_write(uv_write_t *req, int status)
{
    agent_t *a = req->data;
    if (status != 0 && !a->closed) {
        fail(a->lg, a, "write", uv_strerror(status));
    }
    free(req);
}

/* Sends the frame in lg->frame on a's connection (copied). Returns 0 or a negative code. */
static int send_frame(agent_t *a, const kvl_buf_t *frame)
{
    uv_write_t *req = malloc(sizeof(*req) + frame->len);
    if (req == NULL) {
        return KVL_ENOMEM;
    }
    char *copy = (char *)(req + 1);
    memcpy(copy, frame->data, frame->len);
    req->data = a;
    uv_buf_t b = uv_buf_init(copy, (unsigned)frame->len);
    int rc = uv_write(req, (uv_stream_t *)&a->tcp, &b, 1, on_write);
    if (rc != 0) {
        free(req);
    }
    return rc;
}

static int send_msg(agent_t *a, const kvl_msg_t *m)
{
    loadgen_t *lg = a->lg;
    kvl_buf_reset(&lg->frame);
    int rc = kvl_wire_encode(m, &lg->frame);
    return rc != 0 ? rc : send_frame(a, &lg->frame);
}

static int send_hello(agent_t *a)
{
    kvl_msg_t m = {.type = KVL_MSG_HELLO};
    m.u.hello = (kvl_hello_t){.protocol = KVL_PROTOCOL_VERSION,
                              .agent_id = a->id,
                              .version = "kvl-loadgen",
                              .site = a->site,
                              .boot_id = ((uint64_t)a->index << 32) | (uint64_t)kvl_now_ms()};
    return send_msg(a, &m);
}

/* The "if" family and one definition per interface, with the poller's labels. */
static const kvl_family_t if_family = {
    .name = "if", .n = N_IF_METRICS, .metrics = if_metrics, .kinds = if_kinds, .id = IF_FAMILY_ID};

/* An agent's definitions and the names and labels they point at. */
typedef struct defs {
    kvl_series_def_t *defs;
    char (*names)[48];
    char (*devs)[96];
    char (*idx)[16];
    kvl_label_t (*labels)[5];
    unsigned n;
} defs_t;

static void defs_free(defs_t *d)
{
    if (d != NULL) {
        free(d->defs);
        free(d->names);
        free(d->devs);
        free(d->idx);
        free(d->labels);
        free(d);
    }
}

/* The definitions of agent a's interfaces (devices are 48-port switches), or NULL. */
static defs_t *defs_build(const agent_t *a)
{
    unsigned n = a->lg->o.interfaces;
    defs_t *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        return NULL;
    }
    d->n = n;
    d->defs = calloc(n, sizeof(*d->defs));
    d->names = calloc(n, sizeof(*d->names));
    d->devs = calloc(n, sizeof(*d->devs));
    d->idx = calloc(n, sizeof(*d->idx));
    d->labels = calloc(n, sizeof(*d->labels));
    if (d->defs == NULL || d->names == NULL || d->devs == NULL || d->idx == NULL ||
        d->labels == NULL) {
        defs_free(d);
        return NULL;
    }
    for (unsigned k = 0; k < n; k++) {
        unsigned port = k % IFS_PER_DEVICE;
        snprintf(d->devs[k], sizeof(d->devs[k]), "%s-sw%u", a->id, k / IFS_PER_DEVICE + 1);
        snprintf(d->names[k], sizeof(d->names[k]), "GigabitEthernet1/0/%u", port + 1);
        snprintf(d->idx[k], sizeof(d->idx[k]), "%u", 10101 + port);
        d->labels[k][0] = (kvl_label_t){"ifIndex", d->idx[k]};
        d->labels[k][1] = (kvl_label_t){"ifName", d->names[k]};
        d->labels[k][2] = (kvl_label_t){"ifDescr", d->names[k]};
        d->labels[k][3] = (kvl_label_t){"ifAlias", port % 4 == 0 ? "uplink to core" : ""};
        d->labels[k][4] = (kvl_label_t){"ifType", "6"};
        d->defs[k] = (kvl_series_def_t){.id = 1 + k * N_IF_METRICS,
                                        .device = d->devs[k],
                                        .scope = KVL_SCOPE_INTERFACE,
                                        .instance = d->names[k],
                                        .interval_s = a->lg->o.interval_s,
                                        .labels = d->labels[k],
                                        .n_labels = 5,
                                        .family = IF_FAMILY_ID};
    }
    return d;
}

/* Sends the definitions as a SeriesDefs message, or with --defs-in-batch keeps them for the
 * first batch (the collector's inventory learns devices and interfaces from those). */
static int send_defs(agent_t *a)
{
    defs_t *d = defs_build(a);
    if (d == NULL) {
        return KVL_ENOMEM;
    }
    if (a->lg->o.defs_in_batch) {
        defs_free(a->pending);
        a->pending = d;
        return 0;
    }
    kvl_msg_t m = {.type = KVL_MSG_SERIES_DEFS};
    m.u.series_defs.defs = d->defs;
    m.u.series_defs.n = d->n;
    m.u.series_defs.families = &if_family;
    m.u.series_defs.n_families = 1;
    int rc = send_msg(a, &m);
    defs_free(d);
    return rc;
}

/* Counts what a steady batch spends its bytes on, as protobuf lays it out. */
static void account_size(loadgen_t *lg, const kvl_batch_t *b, size_t payload)
{
    int64_t base = b->n_groups ? b->groups[0].time_ms : 0;
    uint64_t samples = 0;
    for (size_t g = 0; g < b->n_groups; g++) {
        const kvl_group_t *grp = &b->groups[g];
        size_t ids = 0, vals = 0, t = 0;
        uint32_t prev = 0;
        for (size_t k = 0; k < grp->n_ids; k++) {
            ids += varint_size(zigzag((int64_t)grp->ids[k] - (int64_t)prev));
            prev = grp->ids[k];
        }
        for (size_t k = 0; k < grp->n_values; k++) {
            vals += varint_size(grp->values[k]);
        }
        if (grp->time_ms != base) {
            t = 1 + varint_size(zigzag(grp->time_ms - base));
        }
        /* tag + length of each packed field, and of the group itself */
        size_t body = t + 1 + varint_size(ids) + ids + 1 + varint_size(vals) + vals;
        lg->sz_ids += ids;
        lg->sz_values += vals;
        lg->sz_time += t;
        lg->sz_groups += body - ids - vals - t + 1 + varint_size(body);
        samples += grp->n_ids;
    }
    lg->wire_payload += payload;
    lg->wire_samples += samples;
    lg->wire_batches++;
}

/* One poll of every interface of the agent, as one batch. Returns 0 or a negative code. */
static int send_batch(agent_t *a)
{
    loadgen_t *lg = a->lg;
    unsigned n = lg->o.interfaces;
    uint64_t samples = 0;
    for (unsigned k = 0; k < n; k++) {
        iface_t *f = &a->ifs[k];
        iface_step(f, &a->rng, lg->o.interval_s);
        uint32_t *ids = lg->ids + (size_t)k * N_IF_METRICS;
        uint64_t *v = lg->vals + (size_t)k * N_IF_METRICS;
        for (unsigned m = 0; m < N_IF_METRICS; m++) {
            ids[m] = 1 + k * N_IF_METRICS + m;
        }
        memcpy(v, f->ctr, sizeof(f->ctr));
        v[IF_OPER] = f->oper;
        v[IF_ADMIN] = 1;
        v[IF_SPEED] = f->speed_bps;
        /* One walk answers over a few hundred milliseconds: ~50 rows per 13 ms. */
        lg->groups[k] = (kvl_group_t){.time_ms = a->t_ms + (int64_t)(k / 50) * 13 + (k % 7),
                                      .ids = ids,
                                      .n_ids = N_IF_METRICS,
                                      .values = v,
                                      .n_values = N_IF_METRICS};
        samples += N_IF_METRICS;
    }
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    m.u.batch = (kvl_batch_t){
        .seq = a->next_seq, .lane = KVL_LANE_BULK, .groups = lg->groups, .n_groups = n};
    if (a->pending != NULL) {
        m.u.batch.families = &if_family;
        m.u.batch.n_families = 1;
        m.u.batch.defs = a->pending->defs;
        m.u.batch.n_defs = a->pending->n;
    }
    kvl_buf_reset(&lg->frame);
    int rc = kvl_wire_encode(&m, &lg->frame);
    defs_free(a->pending);
    a->pending = NULL;
    if (rc != 0) {
        return rc;
    }
    if (a->sent > 0) {
        account_size(lg, &m.u.batch, lg->frame.len - KVL_FRAME_HEADER);
    }
    rc = send_frame(a, &lg->frame);
    if (rc != 0) {
        return rc;
    }
    size_t slot = a->next_seq % lg->o.window;
    a->sent_ns[slot] = kvl_mono_ns();
    a->samples_of[slot] = (uint32_t)samples;
    a->next_seq++;
    a->sent++;
    a->t_ms += (int64_t)lg->o.interval_s * 1000;
    lg->unacked++;
    return 0;
}

static void agent_close(agent_t *a);

/* Keeps the window full unless the run is stopping or the agent's batches are all sent. */
static void fill_window(agent_t *a)
{
    loadgen_t *lg = a->lg;
    while (a->phase == A_READY && !lg->stopping && a->next_seq - a->acked_seq - 1 < lg->o.window &&
           (lg->o.batches == 0 || a->sent < lg->o.batches)) {
        int rc = send_batch(a);
        if (rc != 0) {
            fail(lg, a, "sending a batch", kvl_strerror(rc));
            agent_close(a);
            return;
        }
    }
}

/* ----------------------------------------------------------------- receiving ----------- */

static int ks_send_defs(agent_t *a);
static void ks_tick(loadgen_t *lg);

static void on_ack(agent_t *a, uint64_t seq, uint32_t lane)
{
    loadgen_t *lg = a->lg;
    if (lane == KVL_LANE_EVENTS && lg->o.kswan && seq > a->ev_acked_seq && seq < a->ev_next_seq) {
        lg->ks_events_acked += seq - a->ev_acked_seq;
        a->ev_acked_seq = seq;
        return;
    }
    if (lane != KVL_LANE_BULK || seq <= a->acked_seq || seq >= a->next_seq) {
        fail(lg, a, "ack", "unexpected sequence number or lane");
        agent_close(a);
        return;
    }
    uint64_t now = kvl_mono_ns();
    for (uint64_t s = a->acked_seq + 1; s <= seq; s++) {
        size_t slot = s % lg->o.window;
        lg->unacked--;
        lg->batches_total++;
        lg->samples_total += a->samples_of[slot];
        if (lg->measuring) {
            lg->batches_window++;
            lg->samples_window += a->samples_of[slot];
            lg->lat_seen++;
            uint32_t us = (uint32_t)((now - a->sent_ns[slot]) / 1000u);
            if (lg->n_lat < MAX_LATENCIES) {
                lg->lat_us[lg->n_lat++] = us;
            } else {
                /* Reservoir sampling keeps the percentiles fair past the cap. */
                uint64_t j = ((uint64_t)rnd(&a->rng) << 32 | rnd(&a->rng)) % lg->lat_seen;
                if (j < MAX_LATENCIES) {
                    lg->lat_us[j] = us;
                }
            }
        }
    }
    a->acked_seq = seq;
    if (!a->first_acked) {
        a->first_acked = true;
        lg->first_acked++;
    }
    if (lg->o.kswan) {
        return; /* polls are sent by the clock (ks_tick) */
    }
    if (lg->o.batches != 0 && !lg->o.linger && a->sent >= lg->o.batches &&
        a->acked_seq + 1 == a->next_seq) {
        agent_close(a);
        return;
    }
    fill_window(a);
}

static void on_welcome(agent_t *a, const kvl_welcome_t *w)
{
    loadgen_t *lg = a->lg;
    a->phase = A_READY;
    a->acked_seq = w->last_acked_seq;
    a->next_seq = w->last_acked_seq + 1;
    lg->welcomed++;
    if (++lg->ready_now > lg->ready_max) {
        lg->ready_max = lg->ready_now;
    }
    a->ev_acked_seq = w->last_acked_event_seq;
    a->ev_next_seq = w->last_acked_event_seq + 1;
    int rc = lg->o.kswan ? ks_send_defs(a) : send_defs(a);
    if (rc != 0) {
        fail(lg, a, "sending definitions", kvl_strerror(rc));
        agent_close(a);
        return;
    }
    if (!lg->o.kswan) {
        fill_window(a);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    KVL_UNUSED(h);
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    agent_t *a = s->data;
    loadgen_t *lg = a->lg;
    if (nread < 0) {
        free(buf->base);
        if (!lg->finished) {
            fail(lg, a, "connection",
                 nread == UV_EOF ? "closed by the collector" : uv_strerror((int)nread));
        }
        agent_close(a);
        return;
    }
    int rc = kvl_frame_reader_feed(&a->reader, buf->base, (size_t)nread);
    free(buf->base);
    const uint8_t *p;
    size_t len;
    while (rc == 0 && !a->closed && (rc = kvl_frame_next(&a->reader, &p, &len)) == 1) {
        kvl_msg_t m = {0};
        char err[256];
        rc = kvl_wire_decode(p, len, &m, err, sizeof(err));
        if (rc != 0) {
            fail(lg, a, "decoding", err);
        } else if (m.type == KVL_MSG_WELCOME && a->phase == A_HELLO) {
            on_welcome(a, &m.u.welcome);
        } else if (m.type == KVL_MSG_ACK && a->phase == A_READY) {
            on_ack(a, m.u.ack.seq, m.u.ack.lane);
        } else if (m.type == KVL_MSG_REFUSAL) {
            fail(lg, a, "refused", m.u.refusal);
            rc = KVL_EPROTO;
        } else {
            fail(lg, a, "protocol", "unexpected message");
            rc = KVL_EPROTO;
        }
        kvl_msg_clear(&m);
        rc = rc < 0 ? rc : 0;
    }
    if (rc < 0) {
        agent_close(a);
    }
}

/* ----------------------------------------------------------------- connections --------- */

static void connect_more(loadgen_t *lg);

static void on_closed(uv_handle_t *h)
{
    KVL_UNUSED(h);
}

static void agent_close(agent_t *a)
{
    loadgen_t *lg = a->lg;
    if (a->closed) {
        return;
    }
    a->closed = true;
    defs_free(a->pending);
    a->pending = NULL;
    if (a->phase == A_READY) {
        lg->ready_now--;
        lg->unacked -= a->next_seq - a->acked_seq - 1;
    }
    if (a->phase == A_CONNECTING) {
        lg->connecting--;
    }
    a->phase = A_DONE;
    uv_close((uv_handle_t *)&a->tcp, on_closed);
}

static void on_connect(uv_connect_t *req, int status)
{
    agent_t *a = req->data;
    loadgen_t *lg = a->lg;
    if (a->closed) {
        return;
    }
    lg->connecting--;
    connect_more(lg);
    if (status != 0) {
        a->phase = A_DONE;
        fail(lg, a, "connect", uv_strerror(status));
        a->closed = true;
        uv_close((uv_handle_t *)&a->tcp, on_closed);
        return;
    }
    a->phase = A_HELLO;
    uv_tcp_nodelay(&a->tcp, 1);
    int rc = uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read);
    if (rc == 0) {
        rc = send_hello(a);
    }
    if (rc != 0) {
        fail(lg, a, "hello", kvl_strerror(rc));
        agent_close(a);
    }
}

static void connect_more(loadgen_t *lg)
{
    struct sockaddr_in addr;
    if (uv_ip4_addr(lg->o.host, lg->o.port, &addr) != 0) {
        return; /* checked in main */
    }
    while (!lg->stopping && lg->connecting < CONNECT_PARALLEL &&
           lg->next_to_connect < lg->o.agents) {
        agent_t *a = &lg->agents[lg->next_to_connect++];
        uv_tcp_init(lg->loop, &a->tcp);
        a->tcp.data = a;
        a->connect_req.data = a;
        a->phase = A_CONNECTING;
        int rc =
            uv_tcp_connect(&a->connect_req, &a->tcp, (const struct sockaddr *)&addr, on_connect);
        if (rc != 0) {
            fail(lg, a, "connect", uv_strerror(rc));
            a->phase = A_DONE;
            a->closed = true;
            uv_close((uv_handle_t *)&a->tcp, on_closed);
            continue;
        }
        lg->connecting++;
    }
}

/* ----------------------------------------------------------------- the run ------------- */

static void finish(loadgen_t *lg)
{
    if (lg->finished) {
        return;
    }
    lg->finished = true;
    lg->t_stop_ns = kvl_mono_ns();
    uv_timer_stop(&lg->tick);
    uv_close((uv_handle_t *)&lg->tick, NULL);
    if (lg->o.kswan) {
        uv_close((uv_handle_t *)&lg->sig_term, NULL);
        uv_close((uv_handle_t *)&lg->sig_int, NULL);
    }
    for (unsigned i = 0; i < lg->o.agents; i++) {
        agent_t *a = &lg->agents[i];
        if (a->phase == A_CONNECTING) {
            /* uv_close cancels the pending connect; its callback sees a->closed. */
            lg->connecting--;
            a->phase = A_DONE;
            a->closed = true;
            uv_close((uv_handle_t *)&a->tcp, on_closed);
        } else {
            agent_close(a);
        }
    }
}

static void on_tick(uv_timer_t *t)
{
    loadgen_t *lg = t->data;
    uint64_t now = kvl_mono_ns();
    if (lg->o.kswan) {
        if (!lg->stopping) {
            ks_tick(lg);
        }
        if (lg->stopping &&
            (lg->unacked == 0 || (double)(now - lg->t_end_ns) / 1e9 >= lg->o.drain_s)) {
            finish(lg);
        }
        return;
    }
    double since_setup = (double)(now - lg->t_setup_ns) / 1e9;
    unsigned alive = 0;
    for (unsigned i = 0; i < lg->o.agents; i++) {
        alive += lg->agents[i].phase != A_DONE;
    }
    if (!lg->measuring && !lg->stopping) {
        bool all_started = lg->first_acked + lg->failures >= lg->o.agents;
        if ((all_started && since_setup >= lg->o.warmup_s) || since_setup >= lg->o.setup_s) {
            if (!all_started) {
                fprintf(stderr,
                        "kvl-loadgen: only %u of %u agents had a batch acknowledged after "
                        "%.0f s; measuring anyway\n",
                        lg->first_acked, lg->o.agents, lg->o.setup_s);
            }
            lg->measuring = true;
            lg->t_start_ns = now;
            printf("MEASURE start\n");
            fflush(stdout);
        }
    } else if (lg->measuring && (double)(now - lg->t_start_ns) / 1e9 >= lg->o.duration_s) {
        lg->measuring = false;
        lg->stopping = true;
        lg->t_end_ns = now;
        printf("MEASURE end\n");
        fflush(stdout);
    }
    if (lg->stopping && (lg->unacked == 0 || (double)(now - lg->t_end_ns) / 1e9 >= lg->o.drain_s)) {
        finish(lg);
        return;
    }
    if (alive == 0 && !lg->stopping) {
        /* Everybody finished (--batches) or failed: end the window now. */
        if (lg->measuring) {
            lg->t_end_ns = now;
            printf("MEASURE end\n");
            fflush(stdout);
        } else {
            lg->t_start_ns = lg->t_end_ns = now;
        }
        lg->measuring = false;
        lg->stopping = true;
        finish(lg);
    }
}

static int cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

static double pct(const uint32_t *v, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    return v[i == 0 ? 0 : i - 1] / 1000.0;
}

static void report(loadgen_t *lg)
{
    double window_s = lg->t_end_ns > lg->t_start_ns ? (lg->t_end_ns - lg->t_start_ns) / 1e9 : 0;
    double sps = window_s > 0 ? (double)lg->samples_window / window_s : 0;
    double bps = lg->wire_samples ? (double)lg->wire_payload / (double)lg->wire_samples : 0;
    double bps_framed = lg->wire_samples
                            ? (double)(lg->wire_payload + lg->wire_batches * KVL_FRAME_HEADER) /
                                  (double)lg->wire_samples
                            : 0;
    double ws = lg->wire_samples ? (double)lg->wire_samples : 1;
    qsort(lg->lat_us, lg->n_lat, sizeof(*lg->lat_us), cmp_u32);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    uint64_t series = (uint64_t)lg->o.agents * lg->o.interfaces * N_IF_METRICS;

    printf("agents %u (welcomed %u, most connected at once %u, failures %u), %u interfaces "
           "each, %" PRIu64 " series\n",
           lg->o.agents, lg->welcomed, lg->ready_max, lg->failures, lg->o.interfaces, series);
    printf("window %.2f s: %" PRIu64 " batches, %" PRIu64 " samples acknowledged = %.0f "
           "samples/s (%.0f batches/s)\n",
           window_s, lg->batches_window, lg->samples_window, sps,
           window_s > 0 ? lg->batches_window / window_s : 0);
    printf("all run: %" PRIu64 " batches, %" PRIu64 " samples acknowledged, %" PRIu64
           " unacknowledged at the end\n",
           lg->batches_total, lg->samples_total, lg->unacked);
    printf("wire: %.3f bytes/sample (payload of %" PRIu64 " steady batches), %.3f with frame "
           "headers\n",
           bps, lg->wire_batches, bps_framed);
    printf("  spent on: values %.3f, ids %.3f, group times %.3f, group and field framing "
           "%.3f, batch header %.3f\n",
           lg->sz_values / ws, lg->sz_ids / ws, lg->sz_time / ws, lg->sz_groups / ws,
           ((double)lg->wire_payload - lg->sz_values - lg->sz_ids - lg->sz_time - lg->sz_groups) /
               ws);
    printf("ack latency ms: p50 %.2f p90 %.2f p99 %.2f max %.2f (%zu samples)\n",
           pct(lg->lat_us, lg->n_lat, 50), pct(lg->lat_us, lg->n_lat, 90),
           pct(lg->lat_us, lg->n_lat, 99), pct(lg->lat_us, lg->n_lat, 100), lg->n_lat);
    printf("loadgen cpu %.2f s over %.2f s\n", cpu_s, (lg->t_stop_ns - lg->t_setup_ns) / 1e9);
    printf("LOADGEN samples_per_s=%.0f samples=%" PRIu64 " batches=%" PRIu64 " window_s=%.3f "
           "bytes_per_sample=%.3f bytes_per_sample_framed=%.3f values_bps=%.3f ids_bps=%.3f "
           "time_bps=%.3f framing_bps=%.3f connections=%u welcomed=%u failures=%u "
           "series=%" PRIu64 " lat_p50_ms=%.2f lat_p90_ms=%.2f lat_p99_ms=%.2f "
           "lat_max_ms=%.2f unacked=%" PRIu64 " loadgen_cpu_s=%.2f\n",
           sps, lg->samples_window, lg->batches_window, window_s, bps, bps_framed,
           lg->sz_values / ws, lg->sz_ids / ws, lg->sz_time / ws, lg->sz_groups / ws, lg->ready_max,
           lg->welcomed, lg->failures, series, pct(lg->lat_us, lg->n_lat, 50),
           pct(lg->lat_us, lg->n_lat, 90), pct(lg->lat_us, lg->n_lat, 99),
           pct(lg->lat_us, lg->n_lat, 100), lg->unacked, cpu_s);
    fflush(stdout);
}

/* ----------------------------------------------------------------- --kswan ------------ */

enum { F_IF = 1, F_DEV = 2, F_LINK = 3 };

static const char *const dev_metrics[KS_DEV_METRICS] = {"reachable", "down_reason", "uptime_s",
                                                        "response_ms", "interfaces"};
static const kvl_kind_t dev_kinds[KS_DEV_METRICS] = {KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE,
                                                     KVL_KIND_GAUGE, KVL_KIND_GAUGE};
static const bool dev_reals[KS_DEV_METRICS] = {false, false, false, true, false};

static const char *const link_metrics[KS_LINK_METRICS] = {
    "sent",       "received",      "lost_pct",    "loss_burst", "duplicates",    "reordered",
    "rtt_min_ms", "rtt_median_ms", "rtt_mean_ms", "rtt_max_ms", "rtt_stddev_ms", "jitter_ms",
    "mos",        "rtt_p10_ms",    "rtt_p25_ms",  "rtt_p75_ms", "rtt_p90_ms",
};
static const kvl_kind_t link_kinds[KS_LINK_METRICS] = {
    KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE,
    KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE,
    KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE, KVL_KIND_GAUGE,
};
static const bool link_reals[KS_LINK_METRICS] = {false, false, true, false, false, false,
                                                 true,  true,  true, true,  true,  true,
                                                 true,  true,  true, true,  true};

static const kvl_family_t ks_families[3] = {
    {.name = "if", .n = N_IF_METRICS, .metrics = if_metrics, .kinds = if_kinds, .id = F_IF},
    {.name = "device",
     .n = KS_DEV_METRICS,
     .metrics = dev_metrics,
     .kinds = dev_kinds,
     .reals = dev_reals,
     .id = F_DEV},
    {.name = "link",
     .n = KS_LINK_METRICS,
     .metrics = link_metrics,
     .kinds = link_kinds,
     .reals = link_reals,
     .id = F_LINK},
};

/* The strings one definition's labels point at. */
typedef struct ks_defstr {
    char a[24], b[24], c[32], d[96];
    kvl_label_t labels[7];
} ks_defstr_t;

/* Sends the agent's definitions as one SeriesDefs message, with the labels the poller and
 * the prober send. Returns 0 or a negative code. */
static int ks_send_defs(agent_t *a)
{
    const ks_agent_t *ka = a->ks;
    size_t n = ka->n_links;
    for (unsigned k = 0; k < ka->n_devs; k++) {
        n += 1 + ka->devs[k].n_ifs;
    }
    kvl_series_def_t *defs = calloc(n, sizeof(*defs));
    ks_defstr_t *str = calloc(n, sizeof(*str));
    if (defs == NULL || str == NULL) {
        free(defs);
        free(str);
        return KVL_ENOMEM;
    }
    size_t j = 0;
    uint32_t interval = a->lg->o.step_s;
    for (unsigned k = 0; k < ka->n_devs; k++) {
        const ks_device_t *d = &ka->devs[k];
        ks_defstr_t *s = &str[j];
        snprintf(s->a, sizeof(s->a), "%s", d->model);
        snprintf(s->b, sizeof(s->b), "FOC%08X", ks_rnd(&a->rng));
        snprintf(s->d, sizeof(s->d), "Cisco IOS XE Software, %s", d->model);
        s->labels[0] = (kvl_label_t){"sysName", d->name};
        s->labels[1] = (kvl_label_t){"sysDescr", s->d};
        s->labels[2] = (kvl_label_t){"sysLocation", ka->site};
        s->labels[3] = (kvl_label_t){"address", d->address};
        s->labels[4] = (kvl_label_t){"model", s->a};
        s->labels[5] = (kvl_label_t){"serial", s->b};
        defs[j++] = (kvl_series_def_t){.id = d->id,
                                       .device = d->name,
                                       .scope = KVL_SCOPE_DEVICE,
                                       .instance = "",
                                       .interval_s = interval,
                                       .labels = s->labels,
                                       .n_labels = 6,
                                       .family = F_DEV};
        for (unsigned i = 0; i < d->n_ifs; i++) {
            const ks_iface_t *f = &d->ifs[i];
            s = &str[j];
            snprintf(s->a, sizeof(s->a), "%" PRIu32, f->ifindex);
            snprintf(s->b, sizeof(s->b), "%" PRIu32, f->type);
            snprintf(s->c, sizeof(s->c), "%" PRIu64, f->speed);
            snprintf(s->d, sizeof(s->d), "00:1c:%02x:%02x:%02x:%02x", (a->index >> 8) & 0xffu,
                     a->index & 0xffu, k & 0xffu, i & 0xffu);
            s->labels[0] = (kvl_label_t){"ifIndex", s->a};
            s->labels[1] = (kvl_label_t){"ifName", f->name};
            s->labels[2] = (kvl_label_t){"ifDescr", f->name};
            s->labels[3] = (kvl_label_t){"ifAlias", f->alias};
            s->labels[4] = (kvl_label_t){"ifType", s->b};
            s->labels[5] = (kvl_label_t){"ifSpeed", s->c};
            s->labels[6] = (kvl_label_t){"ifPhysAddress", f->type == 6 ? s->d : ""};
            defs[j++] = (kvl_series_def_t){.id = d->id + KS_DEV_METRICS + i * N_IF_METRICS,
                                           .device = d->name,
                                           .scope = KVL_SCOPE_INTERFACE,
                                           .instance = f->name,
                                           .interval_s = interval,
                                           .labels = s->labels,
                                           .n_labels = 7,
                                           .family = F_IF};
        }
    }
    for (unsigned k = 0; k < ka->n_links; k++) {
        const ks_link_t *l = &ka->links[k];
        ks_defstr_t *s = &str[j];
        s->labels[0] = (kvl_label_t){"address", l->address};
        s->labels[1] = (kvl_label_t){"type", "icmp"};
        defs[j++] = (kvl_series_def_t){.id = l->id,
                                       .device = ka->id,
                                       .scope = KVL_SCOPE_LINK,
                                       .instance = l->target,
                                       .interval_s = interval,
                                       .labels = s->labels,
                                       .n_labels = 2,
                                       .family = F_LINK};
    }
    kvl_msg_t m = {.type = KVL_MSG_SERIES_DEFS};
    m.u.series_defs.defs = defs;
    m.u.series_defs.n = j;
    m.u.series_defs.families = ks_families;
    m.u.series_defs.n_families = KVL_ARRAY_SIZE(ks_families);
    int rc = send_msg(a, &m);
    free(defs);
    free(str);
    return rc;
}

/* Sends b (lane bulk) and books it in the agent's window. Returns 0 or a negative code. */
static int ks_send_bulk(agent_t *a, kvl_batch_t *b, uint32_t samples)
{
    loadgen_t *lg = a->lg;
    b->seq = a->next_seq;
    b->lane = KVL_LANE_BULK;
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    m.u.batch = *b;
    kvl_buf_reset(&lg->frame);
    int rc = kvl_wire_encode(&m, &lg->frame);
    if (rc == 0) {
        rc = send_frame(a, &lg->frame);
    }
    if (rc != 0) {
        return rc;
    }
    size_t slot = a->next_seq % lg->o.window;
    a->sent_ns[slot] = kvl_mono_ns();
    a->samples_of[slot] = samples;
    a->next_seq++;
    a->sent++;
    lg->unacked++;
    lg->ks_batches++;
    return 0;
}

/* A device_down or device_up event on the events lane, as the poller sends them. */
static int ks_send_event(agent_t *a, const ks_device_t *d, bool down, int64_t now)
{
    char index[16], secs[32], text[160];
    snprintf(index, sizeof(index), "%u", d->index + 1);
    kvl_label_t fields[3] = {{"address", d->address}, {"index", index}, {"reason", "timeout"}};
    if (down) {
        snprintf(text, sizeof(text), "not answering: no reply from %s:161 after 2 tries",
                 d->address);
    } else {
        int64_t s = (now - d->down_since_ms) / 1000;
        snprintf(secs, sizeof(secs), "%" PRId64, s);
        snprintf(text, sizeof(text), "answering again after %" PRId64 "m%02" PRId64 "s down",
                 s / 60, s % 60);
        fields[2] = (kvl_label_t){"down_s", secs};
    }
    kvl_event_t ev = {.time_ms = now,
                      .device = d->name,
                      .kind = down ? "device_down" : "device_up",
                      .severity = down ? KVL_SEV_CRITICAL : KVL_SEV_INFO,
                      .text = text,
                      .fields = fields,
                      .n_fields = 3};
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    m.u.batch = (kvl_batch_t){
        .seq = a->ev_next_seq++, .lane = KVL_LANE_EVENTS, .events = &ev, .n_events = 1};
    return send_msg(a, &m);
}

/* One poll of device d at wall time now: its device group and, when it answers, every
 * interface's; or it goes down or comes back (with the event). */
static int ks_poll_device(agent_t *a, ks_device_t *d, int64_t now)
{
    loadgen_t *lg = a->lg;
    int rc = 0;
    if (d->down_left > 0) {
        if (--d->down_left == 0) {
            rc = ks_send_event(a, d, false, now);
            lg->ks_ups++;
            lg->ks_down_now--;
        }
    } else if (lg->step >= lg->o.quiet_steps && lg->o.down_pct > 0 &&
               ks_rnd01(&a->rng) < lg->o.down_pct / 100.0 / 8.0) {
        /* Outages of 2 to 14 steps, 8 on average: down_pct of the devices down at a time. */
        d->down_left = 2 + ks_rnd(&a->rng) % 13;
        d->down_since_ms = now;
        rc = ks_send_event(a, d, true, now);
        lg->ks_downs++;
        lg->ks_down_now++;
    }
    if (rc != 0) {
        return rc;
    }
    bool up = d->down_left == 0;
    uint32_t *ids = lg->ids;
    uint64_t *v = lg->vals;
    double *r = lg->reals;
    uint32_t samples = 0;
    for (unsigned m = 0; m < (up ? KS_DEV_METRICS : 2u); m++) {
        ids[m] = d->id + m;
    }
    v[0] = up ? 1 : 0;
    v[1] = up ? 0 : 1; /* down_reason: timeout */
    size_t nv = 2, nr = 0;
    if (up) {
        v[nv++] = (uint64_t)((now - d->boot_ms) / 1000);
        v[nv++] = d->n_ifs;
        r[nr++] = 2.0 + 20.0 * ks_rnd01(&a->rng) * ks_rnd01(&a->rng);
    }
    lg->groups[0] = (kvl_group_t){.time_ms = now,
                                  .ids = ids,
                                  .n_ids = up ? KS_DEV_METRICS : 2u,
                                  .values = v,
                                  .n_values = nv,
                                  .reals = r,
                                  .n_reals = nr};
    samples += up ? KS_DEV_METRICS : 2u;
    size_t ng = 1;
    if (up) {
        for (unsigned i = 0; i < d->n_ifs; i++) {
            ks_iface_t *f = &d->ifs[i];
            ks_iface_step(f, &a->rng, now, (double)lg->o.step_s);
            uint32_t *fi = ids + KS_DEV_METRICS + (size_t)i * N_IF_METRICS;
            uint64_t *fv = v + KS_DEV_METRICS + (size_t)i * N_IF_METRICS;
            for (unsigned m = 0; m < N_IF_METRICS; m++) {
                fi[m] = d->id + KS_DEV_METRICS + i * N_IF_METRICS + m;
            }
            memcpy(fv, f->ctr, sizeof(f->ctr));
            fv[IF_OPER] = f->oper;
            fv[IF_ADMIN] = f->admin;
            fv[IF_SPEED] = f->speed;
            /* A walk answers over a few hundred milliseconds: ~50 rows per 13 ms. */
            lg->groups[ng++] = (kvl_group_t){.time_ms = now + 5 + (int64_t)(i / 50) * 13,
                                             .ids = fi,
                                             .n_ids = N_IF_METRICS,
                                             .values = fv,
                                             .n_values = N_IF_METRICS};
            samples += N_IF_METRICS;
        }
    }
    kvl_batch_t b = {.groups = lg->groups, .n_groups = ng};
    rc = ks_send_bulk(a, &b, samples);
    if (rc == 0) {
        lg->ks_samples += samples;
    }
    return rc;
}

static int ks_poll_link(agent_t *a, const ks_link_t *l, int64_t now)
{
    loadgen_t *lg = a->lg;
    uint64_t ints[5];
    double reals[12];
    ks_link_figures(l, &a->rng, now, ints, reals);
    for (unsigned m = 0; m < KS_LINK_METRICS; m++) {
        lg->ids[m] = l->id + m;
    }
    memcpy(lg->vals, ints, sizeof(ints));
    memcpy(lg->reals, reals, sizeof(reals));
    lg->groups[0] = (kvl_group_t){.time_ms = now,
                                  .ids = lg->ids,
                                  .n_ids = KS_LINK_METRICS,
                                  .values = lg->vals,
                                  .n_values = 5,
                                  .reals = lg->reals,
                                  .n_reals = 12};
    kvl_batch_t b = {.groups = lg->groups, .n_groups = 1};
    int rc = ks_send_bulk(a, &b, KS_LINK_METRICS);
    if (rc == 0) {
        lg->ks_samples += KS_LINK_METRICS;
        lg->ks_link_samples += KS_LINK_METRICS;
    }
    return rc;
}

static void ks_step_line(loadgen_t *lg)
{
    printf("KSWAN step=%" PRIu64 " polls=%" PRIu64 " samples=%" PRIu64 " batches=%" PRIu64
           " acked=%" PRIu64 " unacked=%" PRIu64 " skipped=%" PRIu64 " late=%" PRIu64
           " downs=%" PRIu64 " ups=%" PRIu64 " down_now=%" PRIu64 "\n",
           lg->step, lg->ks_polls, lg->ks_samples, lg->ks_batches, lg->batches_total, lg->unacked,
           lg->ks_skipped, lg->ks_late, lg->ks_downs, lg->ks_ups, lg->ks_down_now);
    fflush(stdout);
}

/* Sends every poll that is due by now; at most a step's polls per call (the loop stays
 * responsive when it falls behind; those are counted late). */
static void ks_tick(loadgen_t *lg)
{
    int64_t now = kvl_now_ms();
    int64_t step_ms = (int64_t)lg->o.step_s * 1000;
    if (now < lg->t0_ms) {
        return;
    }
    if (lg->o.minutes > 0 && now >= lg->t0_ms + (int64_t)(lg->o.minutes * 60000.0)) {
        lg->stopping = true;
        lg->t_end_ns = kvl_mono_ns();
        return;
    }
    for (size_t budget = lg->n_polls; budget > 0; budget--) {
        if (lg->cursor == lg->n_polls) {
            lg->cursor = 0;
            lg->step++;
            ks_step_line(lg);
        }
        const ks_poll_t *p = &lg->polls[lg->cursor];
        int64_t due = lg->t0_ms + (int64_t)lg->step * step_ms + p->phase_ms;
        if (due > now) {
            return;
        }
        lg->cursor++;
        lg->ks_polls++;
        lg->ks_late += now - due > step_ms / 2;
        agent_t *a = &lg->agents[p->agent];
        if (a->phase != A_READY || a->next_seq - a->acked_seq - 1 >= lg->o.window) {
            lg->ks_skipped++; /* not connected, or its window is full */
            continue;
        }
        int rc = p->dev >= 0 ? ks_poll_device(a, &a->ks->devs[p->dev], now)
                             : ks_poll_link(a, &a->ks->links[-1 - p->dev], now);
        if (rc != 0) {
            fail(lg, a, "sending a poll", kvl_strerror(rc));
            agent_close(a);
        }
    }
}

static int cmp_poll(const void *x, const void *y)
{
    const ks_poll_t *a = x, *b = y;
    return a->phase_ms < b->phase_ms ? -1 : a->phase_ms > b->phase_ms;
}

/* Builds the network, the agents and the schedule. Returns 0 or -1 (reported). */
static int ks_setup(loadgen_t *lg)
{
    if (ks_build(&lg->net, lg->o.scale, lg->o.seed, lg->o.step_s) != 0) {
        fprintf(stderr, "kvl-loadgen: cannot build the network (out of memory?)\n");
        return -1;
    }
    ks_net_t *net = &lg->net;
    if (lg->o.sites_out != NULL) {
        FILE *f = fopen(lg->o.sites_out, "w");
        if (f == NULL) {
            perror(lg->o.sites_out);
            return -1;
        }
        ks_write_sites(net, f);
        if (fclose(f) != 0) {
            perror(lg->o.sites_out);
            return -1;
        }
    }
    lg->o.agents = net->n_agents;
    unsigned most = 0;
    uint64_t series = 0;
    for (unsigned i = 0; i < net->n_agents; i++) {
        const ks_agent_t *ka = &net->agents[i];
        lg->n_polls += ka->n_devs + ka->n_links;
        series += ka->n_ids;
        for (unsigned k = 0; k < ka->n_devs; k++) {
            most = ka->devs[k].n_ifs > most ? ka->devs[k].n_ifs : most;
        }
    }
    lg->polls = calloc(lg->n_polls, sizeof(*lg->polls));
    size_t per_batch = KS_DEV_METRICS + (size_t)most * N_IF_METRICS + KS_LINK_METRICS;
    lg->groups = calloc(most + 1, sizeof(*lg->groups));
    lg->ids = calloc(per_batch, sizeof(*lg->ids));
    lg->vals = calloc(per_batch, sizeof(*lg->vals));
    lg->reals = calloc(per_batch, sizeof(*lg->reals));
    if (lg->polls == NULL || lg->groups == NULL || lg->ids == NULL || lg->vals == NULL ||
        lg->reals == NULL) {
        fprintf(stderr, "kvl-loadgen: out of memory\n");
        return -1;
    }
    size_t j = 0;
    for (unsigned i = 0; i < net->n_agents; i++) {
        const ks_agent_t *ka = &net->agents[i];
        for (unsigned k = 0; k < ka->n_devs; k++) {
            lg->polls[j++] = (ks_poll_t){ka->devs[k].phase_ms, (uint16_t)i, (int16_t)k};
        }
        for (unsigned k = 0; k < ka->n_links; k++) {
            lg->polls[j++] =
                (ks_poll_t){ka->links[k].phase_ms, (uint16_t)i, (int16_t)(-1 - (int)k)};
        }
    }
    qsort(lg->polls, lg->n_polls, sizeof(*lg->polls), cmp_poll);
    unsigned per_kind[KS_KINDS] = {0};
    for (unsigned i = 0; i < net->n_agents; i++) {
        per_kind[net->agents[i].kind]++;
    }
    printf("KSWAN agents=%u sites=%u devices=%u interfaces=%u links=%u series=%" PRIu64
           " step_s=%u scale=%g seed=%" PRIu32 " nocs=%u dhqs=%u bhqs=%u minipops=%u "
           "sdc_agents=%u\n",
           net->n_agents, net->n_sites, net->n_devices, net->n_ifaces, net->n_links, series,
           lg->o.step_s, lg->o.scale, lg->o.seed, per_kind[KS_NOC], per_kind[KS_DHQ],
           per_kind[KS_BHQ], per_kind[KS_MPOP], per_kind[KS_SDC]);
    fflush(stdout);
    return 0;
}

static void ks_on_signal(uv_signal_t *s, int signum)
{
    loadgen_t *lg = s->data;
    KVL_UNUSED(signum);
    if (!lg->stopping) {
        lg->stopping = true;
        lg->t_end_ns = kvl_mono_ns();
    }
}

static void ks_report(loadgen_t *lg)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                   (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    double wall_s = (double)(kvl_mono_ns() - lg->t_setup_ns) / 1e9;
    qsort(lg->lat_us, lg->n_lat, sizeof(*lg->lat_us), cmp_u32);
    ks_step_line(lg);
    printf("sent %" PRIu64 " polls (%" PRIu64
           " skipped: agent not connected or window full, %" PRIu64
           " late by over half a step) in %" PRIu64 " batches, %" PRIu64 " samples (%" PRIu64
           " of links); %" PRIu64 " device_down and %" PRIu64 " device_up events (%" PRIu64
           " acknowledged)\n",
           lg->ks_polls, lg->ks_skipped, lg->ks_late, lg->ks_batches, lg->ks_samples,
           lg->ks_link_samples, lg->ks_downs, lg->ks_ups, lg->ks_events_acked);
    printf("ack latency ms: p50 %.2f p99 %.2f max %.2f; loadgen cpu %.2f s over %.1f s (%.1f %% "
           "of a core)\n",
           pct(lg->lat_us, lg->n_lat, 50), pct(lg->lat_us, lg->n_lat, 99),
           pct(lg->lat_us, lg->n_lat, 100), cpu_s, wall_s, wall_s > 0 ? 100 * cpu_s / wall_s : 0);
    printf("LOADGEN kswan=1 agents=%u welcomed=%u failures=%u devices=%u interfaces=%u links=%u "
           "steps=%" PRIu64 " polls=%" PRIu64 " skipped=%" PRIu64 " late=%" PRIu64
           " batches=%" PRIu64 " batches_acked=%" PRIu64 " samples=%" PRIu64
           " link_samples=%" PRIu64 " downs=%" PRIu64 " ups=%" PRIu64 " events_acked=%" PRIu64
           " unacked=%" PRIu64 " lat_p50_ms=%.2f lat_p99_ms=%.2f loadgen_cpu_s=%.2f "
           "loadgen_cpu_pct=%.1f\n",
           lg->o.agents, lg->welcomed, lg->failures, lg->net.n_devices, lg->net.n_ifaces,
           lg->net.n_links, lg->step, lg->ks_polls, lg->ks_skipped, lg->ks_late, lg->ks_batches,
           lg->batches_total, lg->ks_samples, lg->ks_link_samples, lg->ks_downs, lg->ks_ups,
           lg->ks_events_acked, lg->unacked, pct(lg->lat_us, lg->n_lat, 50),
           pct(lg->lat_us, lg->n_lat, 99), cpu_s, wall_s > 0 ? 100 * cpu_s / wall_s : 0);
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: kvl-loadgen [options]\n"
               "  --host IP          collector address (default 127.0.0.1)\n"
               "  --port N           collector port (default 5140)\n"
               "  --agents N         simulated agents = connections (default 100)\n"
               "  --interfaces N     interfaces per agent, 15 series each (default 48)\n"
               "  --window N         unacknowledged batches per agent (default 4)\n"
               "  --batches N        batches per agent, then close (default 0: until the end)\n"
               "  --linger           with --batches: stay connected, idle, until the end\n"
               "  --duration S       measured seconds (default 10)\n"
               "  --warmup S         seconds before measuring, after every first ack (default 2)\n"
               "  --drain S          longest wait for outstanding acks at the end (default 10)\n"
               "  --setup-timeout S  longest wait for every agent's first ack (default 120)\n"
               "  --interval S       poll interval in the samples' time (default 60)\n"
               "  --site NAME        site in the hellos (default bench)\n"
               "  --prefix NAME      agent ids are NAME-<n> (default lg)\n"
               "  --defs-in-batch    definitions in the first batch, as kaaval-agent sends\n"
               "                     them (the collector's inventory learns from those)\n"
               "KSWAN mode (the state network, polled at a real step in wall-clock time):\n"
               "  --kswan            250 agents, 2,000 devices, 100,000 interfaces, links\n"
               "  --scale F          shrink it (0 < F <= 1; about sqrt(F) of the agents of\n"
               "                     each kind, each with about sqrt(F) of its devices)\n"
               "  --seed N           names and figures (default 16)\n"
               "  --step S           poll interval in seconds, real time (default 60)\n"
               "  --minutes M        run time (default 0: until SIGTERM or SIGINT)\n"
               "  --down-pct P       share of devices down at a time (default 1)\n"
               "  --quiet-steps N    no device goes down in the first N steps (default 2)\n"
               "  --sites-out FILE   write the site tree as a collector `sites:` file\n"
               "  --plan             print the network's sizes (KSWAN line) and exit\n"
               "  --window N         here: unacknowledged bulk batches per agent (512)\n");
}

/* Frees what ks_setup and ks_main allocated (agents that were never made included). */
static void ks_release(loadgen_t *lg)
{
    for (unsigned i = 0; lg->agents != NULL && i < lg->o.agents; i++) {
        kvl_frame_reader_free(&lg->agents[i].reader);
        free(lg->agents[i].sent_ns);
        free(lg->agents[i].samples_of);
    }
    kvl_buf_free(&lg->frame);
    free(lg->agents);
    free(lg->groups);
    free(lg->ids);
    free(lg->vals);
    free(lg->reals);
    free(lg->polls);
    free(lg->lat_us);
    ks_free(&lg->net);
}

/* --kswan: runs the simulated network until --minutes or a signal. Returns the exit status. */
static int ks_main(loadgen_t *lg, bool window_given)
{
    if (!window_given) {
        lg->o.window = 512; /* a real agent's spool is deeper still */
    }
    lg->o.drain_s = lg->o.drain_s > 30 ? lg->o.drain_s : 30;
    if (ks_setup(lg) != 0) {
        return 1;
    }
    if (lg->o.plan) {
        ks_release(lg);
        return 0;
    }
    lg->agents = calloc(lg->o.agents, sizeof(*lg->agents));
    lg->lat_us = calloc(MAX_LATENCIES, sizeof(*lg->lat_us));
    if (lg->agents == NULL || lg->lat_us == NULL) {
        fprintf(stderr, "kvl-loadgen: out of memory\n");
        return 1;
    }
    for (unsigned i = 0; i < lg->o.agents; i++) {
        agent_t *a = &lg->agents[i];
        a->lg = lg;
        a->index = i;
        a->ks = &lg->net.agents[i];
        a->site = a->ks->site;
        snprintf(a->id, sizeof(a->id), "%s", a->ks->id);
        a->rng = a->ks->rng ^ 0x5bd1e995u;
        a->sent_ns = calloc(lg->o.window, sizeof(*a->sent_ns));
        a->samples_of = calloc(lg->o.window, sizeof(*a->samples_of));
        if (a->sent_ns == NULL || a->samples_of == NULL) {
            fprintf(stderr, "kvl-loadgen: out of memory\n");
            return 1;
        }
        kvl_frame_reader_init(&a->reader, KVL_FRAME_MAX_DEFAULT);
    }
    lg->measuring = true; /* every acknowledgement's latency counts */
    lg->loop = uv_default_loop();
    uv_timer_init(lg->loop, &lg->tick);
    lg->tick.data = lg;
    uv_signal_init(lg->loop, &lg->sig_term);
    uv_signal_init(lg->loop, &lg->sig_int);
    lg->sig_term.data = lg->sig_int.data = lg;
    uv_signal_start(&lg->sig_term, ks_on_signal, SIGTERM);
    uv_signal_start(&lg->sig_int, ks_on_signal, SIGINT);
    lg->t_setup_ns = kvl_mono_ns();
    /* Step 0 starts on the next whole second after the connections had a second. */
    lg->t0_ms = (kvl_now_ms() / 1000 + 2) * 1000;
    uv_timer_start(&lg->tick, on_tick, 10, 10);
    connect_more(lg);
    uv_run(lg->loop, UV_RUN_DEFAULT);
    ks_report(lg);
    bool ok = lg->failures == 0 && lg->welcomed == lg->o.agents && lg->unacked == 0;
    ks_release(lg);
    uv_loop_close(lg->loop);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},
        {"agents", required_argument, NULL, 'a'},
        {"interfaces", required_argument, NULL, 'i'},
        {"window", required_argument, NULL, 'w'},
        {"batches", required_argument, NULL, 'b'},
        {"duration", required_argument, NULL, 'd'},
        {"warmup", required_argument, NULL, 'W'},
        {"drain", required_argument, NULL, 'D'},
        {"setup-timeout", required_argument, NULL, 'S'},
        {"interval", required_argument, NULL, 'I'},
        {"site", required_argument, NULL, 's'},
        {"prefix", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},
        {"linger", no_argument, NULL, 'L'},
        {"defs-in-batch", no_argument, NULL, 'B'},
        {"kswan", no_argument, NULL, 1000},
        {"scale", required_argument, NULL, 1001},
        {"seed", required_argument, NULL, 1002},
        {"step", required_argument, NULL, 1003},
        {"minutes", required_argument, NULL, 1004},
        {"down-pct", required_argument, NULL, 1005},
        {"quiet-steps", required_argument, NULL, 1006},
        {"sites-out", required_argument, NULL, 1007},
        {"plan", no_argument, NULL, 1008},
        {NULL, 0, NULL, 0},
    };
    loadgen_t lg = {0};
    lg.o = (opts_t){.host = "127.0.0.1",
                    .port = 5140,
                    .agents = 100,
                    .interfaces = 48,
                    .window = 4,
                    .duration_s = 10,
                    .warmup_s = 2,
                    .drain_s = 10,
                    .setup_s = 120,
                    .interval_s = 60,
                    .site = "bench",
                    .prefix = "lg",
                    .scale = 1,
                    .seed = 16,
                    .step_s = 60,
                    .down_pct = 1,
                    .quiet_steps = 2};
    bool window_given = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'H':
            lg.o.host = optarg;
            break;
        case 'p':
            lg.o.port = atoi(optarg);
            break;
        case 'a':
            lg.o.agents = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'i':
            lg.o.interfaces = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'w':
            lg.o.window = (unsigned)strtoul(optarg, NULL, 10);
            window_given = true;
            break;
        case 'b':
            lg.o.batches = strtoull(optarg, NULL, 10);
            break;
        case 'd':
            lg.o.duration_s = atof(optarg);
            break;
        case 'W':
            lg.o.warmup_s = atof(optarg);
            break;
        case 'D':
            lg.o.drain_s = atof(optarg);
            break;
        case 'S':
            lg.o.setup_s = atof(optarg);
            break;
        case 'I':
            lg.o.interval_s = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            lg.o.site = optarg;
            break;
        case 'P':
            lg.o.prefix = optarg;
            break;
        case 'L':
            lg.o.linger = true;
            break;
        case 'B':
            lg.o.defs_in_batch = true;
            break;
        case 1000:
            lg.o.kswan = true;
            break;
        case 1001:
            lg.o.scale = atof(optarg);
            break;
        case 1002:
            lg.o.seed = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 1003:
            lg.o.step_s = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 1004:
            lg.o.minutes = atof(optarg);
            break;
        case 1005:
            lg.o.down_pct = atof(optarg);
            break;
        case 1006:
            lg.o.quiet_steps = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 1007:
            lg.o.sites_out = optarg;
            break;
        case 1008:
            lg.o.plan = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    struct sockaddr_in probe;
    if (optind != argc || lg.o.agents == 0 || lg.o.interfaces == 0 || lg.o.window == 0 ||
        lg.o.interval_s == 0 || lg.o.duration_s <= 0 || lg.o.port <= 0 || lg.o.port > 65535 ||
        lg.o.interfaces > 100000 || uv_ip4_addr(lg.o.host, lg.o.port, &probe) != 0 ||
        (lg.o.kswan &&
         (!(lg.o.scale > 0 && lg.o.scale <= 1) || lg.o.step_s == 0 || lg.o.step_s > 3600 ||
          lg.o.minutes < 0 || lg.o.down_pct < 0 || lg.o.down_pct > 50))) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    if (lg.o.kswan) {
        return ks_main(&lg, window_given);
    }
    size_t per_batch = (size_t)lg.o.interfaces * N_IF_METRICS;
    lg.agents = calloc(lg.o.agents, sizeof(*lg.agents));
    lg.groups = calloc(lg.o.interfaces, sizeof(*lg.groups));
    lg.ids = calloc(per_batch, sizeof(*lg.ids));
    lg.vals = calloc(per_batch, sizeof(*lg.vals));
    lg.lat_us = calloc(MAX_LATENCIES, sizeof(*lg.lat_us));
    if (lg.agents == NULL || lg.groups == NULL || lg.ids == NULL || lg.vals == NULL ||
        lg.lat_us == NULL) {
        fprintf(stderr, "kvl-loadgen: out of memory\n");
        return 1;
    }
    /* Sample times start a week ago and run forward by the interval per poll. */
    int64_t t0 = (kvl_now_ms() / 60000 - 7 * 24 * 60) * 60000;
    for (unsigned i = 0; i < lg.o.agents; i++) {
        agent_t *a = &lg.agents[i];
        a->lg = &lg;
        a->index = i;
        snprintf(a->id, sizeof(a->id), "%s-%u", lg.o.prefix, i + 1);
        a->rng = 2463534242u ^ (i * 2654435761u);
        a->t_ms = t0 + (int64_t)(i % 1000) * 37;
        a->ifs = calloc(lg.o.interfaces, sizeof(*a->ifs));
        a->sent_ns = calloc(lg.o.window, sizeof(*a->sent_ns));
        a->samples_of = calloc(lg.o.window, sizeof(*a->samples_of));
        if (a->ifs == NULL || a->sent_ns == NULL || a->samples_of == NULL) {
            fprintf(stderr, "kvl-loadgen: out of memory\n");
            return 1;
        }
        for (unsigned k = 0; k < lg.o.interfaces; k++) {
            iface_init(&a->ifs[k], &a->rng, k);
        }
        kvl_frame_reader_init(&a->reader, KVL_FRAME_MAX_DEFAULT);
    }
    lg.loop = uv_default_loop();
    uv_timer_init(lg.loop, &lg.tick);
    lg.tick.data = &lg;
    lg.t_setup_ns = kvl_mono_ns();
    uv_timer_start(&lg.tick, on_tick, 20, 20);
    connect_more(&lg);
    uv_run(lg.loop, UV_RUN_DEFAULT);
    report(&lg);
    bool ok = lg.failures == 0 && lg.welcomed == lg.o.agents && lg.unacked == 0;
    for (unsigned i = 0; i < lg.o.agents; i++) {
        kvl_frame_reader_free(&lg.agents[i].reader);
        free(lg.agents[i].ifs);
        free(lg.agents[i].sent_ns);
        free(lg.agents[i].samples_of);
    }
    kvl_buf_free(&lg.frame);
    free(lg.agents);
    free(lg.groups);
    free(lg.ids);
    free(lg.vals);
    free(lg.lat_us);
    uv_loop_close(lg.loop);
    return ok ? 0 : 1;
}
