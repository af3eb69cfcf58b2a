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
} agent_t;

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
    kvl_buf_t frame;
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
                              .site = a->lg->o.site,
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

static void on_ack(agent_t *a, uint64_t seq, uint32_t lane)
{
    loadgen_t *lg = a->lg;
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
    int rc = send_defs(a);
    if (rc != 0) {
        fail(lg, a, "sending definitions", kvl_strerror(rc));
        agent_close(a);
        return;
    }
    fill_window(a);
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
               "                     them (the collector's inventory learns from those)\n");
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
                    .prefix = "lg"};
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
        lg.o.interfaces > 100000 || uv_ip4_addr(lg.o.host, lg.o.port, &probe) != 0) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
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
