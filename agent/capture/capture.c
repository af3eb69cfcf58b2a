/*
 * capture.c — the capture room's runs (see capture.h): frames from pcapsrc.c through
 * kvl_decode into the flow table (with nDPI's classifier, classify.c, on its seam): a file
 * at once, or live interfaces on the loop with a timer per interval; the figures printed.
 */
#include "capture.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "classify.h"
#include "decode.h"
#include "flows.h"
#include "kvl.h"
#include "log.h"
#include "pcapsrc.h"

static void addr_text(uint8_t ver, const uint8_t *a, char *buf, size_t len)
{
    if (inet_ntop(ver == 4 ? AF_INET : AF_INET6, a, buf, (socklen_t)len) == NULL) {
        snprintf(buf, len, "?");
    }
}

static void print_count(FILE *out, const char *what, const char *name, const kvl_count_t *c)
{
    fprintf(out, "%s%s%s packets=%" PRIu64 " bytes=%" PRIu64 "\n", what, name[0] ? " " : "", name,
            c->pkts, c->bytes);
}

static void print_hs(FILE *out, const char *side, const kvl_hs_summary_t *s)
{
    fprintf(out, " %s_n=%" PRIu64 " %s_min_ms=%.3f %s_median_ms=%.3f %s_p95_ms=%.3f %s_max_ms=%.3f",
            side, s->n, side, (double)s->min_ns / 1e6, side, (double)s->median_ns / 1e6, side,
            (double)s->p95_ns / 1e6, side, (double)s->max_ns / 1e6);
}

/* --- estimates of all the traffic under sampling ------------------------------------- */

static uint64_t scale_of(const kvl_capture_interval_t *iv)
{
    return iv->scale > 1 ? iv->scale : 1;
}

/* v times k, saturating. */
static uint64_t times(uint64_t v, uint64_t k)
{
    return k != 0 && v > UINT64_MAX / k ? UINT64_MAX : v * k;
}

static void scale_count(kvl_count_t *c, uint64_t k)
{
    c->pkts = times(c->pkts, k);
    c->bytes = times(c->bytes, k);
}

void kvl_capture_counts(const kvl_capture_interval_t *iv, kvl_flows_counts_t *out)
{
    uint64_t k = scale_of(iv);
    *out = *kvl_flows_counts(iv->flows);
    scale_count(&out->total, k);
    scale_count(&out->non_ip, k);
    for (int i = 0; i < KVL_DIR__COUNT; i++) {
        scale_count(&out->dir[i], k);
    }
    scale_count(&out->ipv4, k);
    scale_count(&out->ipv6, k);
    for (int i = 0; i < KVL_L4__COUNT; i++) {
        scale_count(&out->l4[i], k);
    }
    for (int r = 0; r < KVL_DEC__COUNT; r++) {
        out->dec.by_reason[r] = times(out->dec.by_reason[r], k);
    }
    out->dec.tagged = times(out->dec.tagged, k);
    out->dec.later_fragments = times(out->dec.later_fragments, k);
    out->dec.gre = times(out->dec.gre, k);
    out->malformed = times(out->malformed, k);
    out->tcp_retrans = times(out->tcp_retrans, k);
    out->tcp_resets = times(out->tcp_resets, k);
    out->flows_new = times(out->flows_new, k);
    out->flows_idle = times(out->flows_idle, k);
    out->flows_active = times(out->flows_active, k);
    scale_count(&out->app_pending, k);
    scale_count(&out->app_unclassified, k);
    /* flows_now and flows_evicted: the table's own, as it is */
}

static size_t scale_top(const kvl_capture_interval_t *iv, kvl_top_t *t, size_t n)
{
    uint64_t k = scale_of(iv);
    for (size_t i = 0; i < n; i++) {
        t[i].bytes = times(t[i].bytes, k);
        t[i].bytes_err = times(t[i].bytes_err, k);
        t[i].packets = times(t[i].packets, k);
    }
    return n;
}

size_t kvl_capture_top_hosts(const kvl_capture_interval_t *iv, kvl_top_t *out, size_t n)
{
    return scale_top(iv, out, kvl_flows_top_hosts(iv->flows, out, n));
}

size_t kvl_capture_top_convs(const kvl_capture_interval_t *iv, kvl_top_t *out, size_t n)
{
    return scale_top(iv, out, kvl_flows_top_convs(iv->flows, out, n));
}

size_t kvl_capture_apps(const kvl_capture_interval_t *iv, kvl_app_count_t *out, size_t n)
{
    uint64_t k = scale_of(iv);
    n = kvl_flows_apps(iv->flows, out, n);
    for (size_t i = 0; i < n; i++) {
        scale_count(&out[i].c, k);
    }
    return n;
}

/* --- printing --------------------------------------------------------------------------- */

/* The names nDPI read, top_n of them by connections (scaled: connections are flows). */
static void report_names(FILE *out, const kvl_capture_cfg_t *cfg, const kvl_capture_interval_t *iv)
{
    const kvl_classify_t *cl = iv->classify;
    uint64_t k = scale_of(iv);
    size_t n = (size_t)cfg->top_n;
    kvl_classify_name_t *names = calloc(n, sizeof(*names));
    if (names == NULL) {
        return;
    }
    n = kvl_classify_top_names(cl, names, n);
    for (size_t i = 0; i < n; i++) {
        for (char *q = names[i].name; *q != '\0'; q++) {
            *q = *q <= ' ' || *q == '=' || *q > '~' ? '_' : *q; /* one token */
        }
        fprintf(out, "name rank=%zu name=%s connections=%" PRIu64 " error=%" PRIu64 "\n", i + 1,
                names[i].name, times(names[i].connections, k), times(names[i].error, k));
    }
    free(names);
}

/* The applications' lines: the frames not under one, then one per application with frames. */
static void report_apps(FILE *out, const kvl_capture_interval_t *iv)
{
    kvl_flows_counts_t counts;
    const kvl_flows_counts_t *c = &counts;
    kvl_capture_counts(iv, &counts);
    kvl_classify_stats_t st;
    kvl_classify_get_stats(iv->classify, &st);
    fprintf(out,
            "apps pending_packets=%" PRIu64 " pending_bytes=%" PRIu64
            " unclassified_packets=%" PRIu64 " unclassified_bytes=%" PRIu64 " decided=%" PRIu64
            " guessed=%" PRIu64 " unknown=%" PRIu64 " no_slot=%" PRIu64 "\n",
            c->app_pending.pkts, c->app_pending.bytes, c->app_unclassified.pkts,
            c->app_unclassified.bytes, st.decided, st.guessed, st.unknown, st.no_slot);
    kvl_app_count_t apps[512];
    size_t n = kvl_capture_apps(iv, apps, KVL_ARRAY_SIZE(apps));
    for (size_t i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof(name), "%s", apps[i].name);
        for (char *q = name; *q != '\0'; q++) {
            *q = *q == ' ' || *q == '=' ? '_' : *q;
        }
        fprintf(out, "app name=%s id=%d packets=%" PRIu64 " bytes=%" PRIu64 "\n", name, apps[i].app,
                apps[i].c.pkts, apps[i].c.bytes);
    }
}

static void report(FILE *out, const kvl_capture_cfg_t *cfg, const kvl_capture_interval_t *iv)
{
    static const char *const dirs[KVL_DIR__COUNT] = {"in", "out", "internal", "external"};
    static const char *const l4s[KVL_L4__COUNT] = {"tcp", "udp", "icmp", "other"};
    const kvl_flows_t *f = iv->flows;
    kvl_flows_counts_t counts;
    const kvl_flows_counts_t *c = &counts;
    kvl_capture_counts(iv, &counts);
    print_count(out, "total", "", &c->total);
    print_count(out, "non_ip", "", &c->non_ip);
    print_count(out, "ipv4", "", &c->ipv4);
    print_count(out, "ipv6", "", &c->ipv6);
    for (int i = 0; i < KVL_DIR__COUNT; i++) {
        print_count(out, "dir", dirs[i], &c->dir[i]);
    }
    for (int i = 0; i < KVL_L4__COUNT; i++) {
        print_count(out, "transport", l4s[i], &c->l4[i]);
    }
    fprintf(out, "decode");
    for (int r = 0; r < KVL_DEC__COUNT; r++) {
        fprintf(out, " %s=%" PRIu64, kvl_dec_reason_name((kvl_dec_reason_t)r), c->dec.by_reason[r]);
    }
    fprintf(out,
            " malformed=%" PRIu64 " tagged=%" PRIu64 " later_fragments=%" PRIu64 " gre=%" PRIu64
            "\n",
            c->malformed, c->dec.tagged, c->dec.later_fragments, c->dec.gre);
    fprintf(out, "tcp retransmissions=%" PRIu64 " resets=%" PRIu64 "\n", c->tcp_retrans,
            c->tcp_resets);
    fprintf(out,
            "flows new=%" PRIu64 " idle=%" PRIu64 " active=%" PRIu64 " evicted=%" PRIu64
            " now=%" PRIu64 " max=%lld\n",
            c->flows_new, c->flows_idle, c->flows_active, c->flows_evicted, c->flows_now,
            (long long)cfg->max_flows);
    size_t np = (size_t)cfg->handshake_ports + 1;
    kvl_port_hs_t *hs = calloc(np, sizeof(*hs));
    size_t nt = (size_t)cfg->top_n;
    kvl_top_t *top = calloc(nt, sizeof(*top));
    if (hs == NULL || top == NULL) {
        fprintf(out, "error out of memory for the lists\n");
        free(hs);
        free(top);
        return;
    }
    size_t n = kvl_flows_handshakes(f, hs, np);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "handshake port=%u", hs[i].port);
        print_hs(out, "server", &hs[i].server);
        print_hs(out, "client", &hs[i].client);
        fputc('\n', out);
    }
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
    n = kvl_capture_top_hosts(iv, top, nt);
    for (size_t i = 0; i < n; i++) {
        addr_text(top[i].ver, top[i].a, a, sizeof(a));
        fprintf(out,
                "host rank=%zu addr=%s bytes=%" PRIu64 " error=%" PRIu64 " packets=%" PRIu64 "\n",
                i + 1, a, top[i].bytes, top[i].bytes_err, top[i].packets);
    }
    n = kvl_capture_top_convs(iv, top, nt);
    for (size_t i = 0; i < n; i++) {
        addr_text(top[i].ver, top[i].a, a, sizeof(a));
        addr_text(top[i].ver, top[i].b, b, sizeof(b));
        fprintf(out,
                "conv rank=%zu a=%s b=%s bytes=%" PRIu64 " error=%" PRIu64 " packets=%" PRIu64 "\n",
                i + 1, a, b, top[i].bytes, top[i].bytes_err, top[i].packets);
    }
    free(hs);
    free(top);
}

/* " scaled=N" after sampling=N when the figures are estimates (N times those counted). */
static void print_scale(FILE *out, const kvl_capture_interval_t *iv)
{
    if (scale_of(iv) > 1) {
        fprintf(out, " scaled=%" PRIu64, scale_of(iv));
    }
}

void kvl_capture_print(FILE *out, const kvl_capture_cfg_t *cfg, const kvl_capture_interval_t *iv)
{
    if (iv->iface != NULL) {
        fprintf(out, "capture iface=%s start=%.3f end=%.3f frames_read=%" PRIu64 " sampling=%lld",
                iv->iface, (double)iv->start_ns / 1e9, (double)iv->end_ns / 1e9, iv->frames_read,
                (long long)cfg->sampling);
        print_scale(out, iv);
        fputc('\n', out);
        if (iv->drops.known) {
            fprintf(out, "drops received=%" PRIu64 " dropped=%" PRIu64 " if_dropped=%" PRIu64 "\n",
                    iv->drops.received, iv->drops.dropped, iv->drops.if_dropped);
        } else {
            fprintf(out, "drops unknown\n");
        }
    }
    report(out, cfg, iv);
    if (iv->classify != NULL) {
        report_apps(out, iv);
        if (iv->last_iface) {
            report_names(out, cfg, iv);
        }
    }
}

int kvl_capture_once(const kvl_capture_cfg_t *cfg, const char *path, FILE *out, char *err,
                     size_t errlen)
{
    char why[512];
    kvl_pcapsrc_t *src = kvl_pcapsrc_open_file(path, cfg->filter, why, sizeof(why));
    if (src == NULL) {
        snprintf(err, errlen, "%s", why);
        return -1;
    }
    kvl_flows_cfg_t fc;
    kvl_capture_cfg_flows(cfg, &fc);
    kvl_classify_t *cl = NULL;
    kvl_flows_classifier_t seam;
    if (cfg->classify) {
        cl = kvl_classify_new((size_t)cfg->classify_flows, (unsigned)cfg->classify_packets,
                              (size_t)cfg->sketch_size, why, sizeof(why));
        if (cl == NULL) {
            snprintf(err, errlen, "%s", why);
            kvl_pcapsrc_close(src);
            return -1;
        }
        kvl_classify_seam(cl, &seam);
        fc.classifier = &seam;
    }
    kvl_flows_t *f = kvl_flows_new(&fc);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory for a flow table of %lld flows",
                 (long long)cfg->max_flows);
        kvl_classify_free(cl);
        kvl_pcapsrc_close(src);
        return -1;
    }
    kvl_link_t link = kvl_pcapsrc_link(src);
    kvl_frame_t fr;
    uint64_t read = 0;
    int64_t first = 0, last = 0;
    int rc;
    /* Each call returns the next frame or the end: bounded by the file. */
    while ((rc = kvl_pcapsrc_next(src, &fr, why, sizeof(why))) == 1) {
        if (read == 0) {
            first = fr.ts_ns;
        }
        last = fr.ts_ns;
        uint64_t k = read++;
        if (cfg->sampling > 1 && k % (uint64_t)cfg->sampling != 0) {
            continue;
        }
        kvl_pkt_t pk;
        kvl_dec_reason_t r = kvl_decode(link, fr.data, fr.cap, fr.wire, &pk);
        kvl_flows_packet(f, fr.ts_ns, &pk, r);
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, why);
        kvl_flows_free(f);
        kvl_classify_free(cl);
        kvl_pcapsrc_close(src);
        return -1;
    }
    kvl_capture_interval_t iv = {
        .flows = f, .classify = cl, .scale = (uint32_t)cfg->sampling, .last_iface = true};
    fprintf(out, "capture file=%s link=%s frames_read=%" PRIu64 " sampling=%lld", path,
            kvl_pcapsrc_link_name(src), read, (long long)cfg->sampling);
    print_scale(out, &iv);
    fprintf(out, " first_ts=%.9f last_ts=%.9f\n", (double)first / 1e9, (double)last / 1e9);
    kvl_capture_print(out, cfg, &iv);
    kvl_flows_free(f); /* hands the undecided flows' slots back first */
    kvl_classify_free(cl);
    kvl_pcapsrc_close(src);
    return 0;
}

/* --- live capture on the loop --------------------------------------------------------- */

#define TURN_FRAMES 65536 /* frames read per readable event before the loop gets a turn */

typedef struct iface {
    kvl_capture_t *owner;
    const char *name; /* the configuration's */
    kvl_pcapsrc_t *src;
    kvl_flows_t *flows;
    kvl_link_t link;
    uv_poll_t poll;
    bool poll_open;
    bool file;   /* `capture: file`: read to its end at each interval's end */
    bool failed; /* a read error: logged once, no more reading */
    bool have_stats;
    kvl_pcapsrc_stats_t last;
    uint64_t read;          /* frames read since open (sampling) */
    uint64_t read_interval; /* frames read this interval */
} iface_t;

struct kvl_capture {
    uv_loop_t *loop;
    const kvl_capture_cfg_t *cfg;
    kvl_capture_interval_cb cb;
    void *arg;
    kvl_classify_t *cl;
    kvl_flows_classifier_t seam;
    iface_t *ifs;
    size_t n_ifs;
    uv_timer_t timer;
    bool timer_open;
    int closing; /* handles whose close callback is still to come */
    int64_t start_ns;
};

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void on_frame(void *arg, const kvl_frame_t *fr)
{
    iface_t *it = arg;
    it->read_interval++;
    uint64_t sampling = (uint64_t)it->owner->cfg->sampling;
    if (sampling > 1 && it->read++ % sampling != 0) {
        return;
    }
    kvl_pkt_t pk;
    kvl_dec_reason_t r = kvl_decode(it->link, fr->data, fr->cap, fr->wire, &pk);
    kvl_flows_packet(it->flows, fr->ts_ns, &pk, r);
}

/* Reads what the ring holds, at most TURN_FRAMES frames; true when it ran dry (or failed). */
static bool drain(iface_t *it)
{
    char why[512];
    int done = 0;
    /* Each turn hands over at least one frame, or ends: bounded by TURN_FRAMES. */
    while (done < TURN_FRAMES && !it->failed) {
        int n = kvl_pcapsrc_read(it->src, TURN_FRAMES - done, on_frame, it, why, sizeof(why));
        if (n == 0) {
            return true;
        }
        if (n < 0) {
            KVL_LOG_ERROR("capture", it->name, "%s; no more frames read from it", why);
            it->failed = true;
            if (it->poll_open) {
                uv_poll_stop(&it->poll);
            }
            return true;
        }
        done += n;
    }
    return it->failed;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    iface_t *it = h->data;
    KVL_UNUSED(events);
    if (status < 0) {
        KVL_LOG_ERROR("capture", it->name, "watching the capture: %s", uv_strerror(status));
        return;
    }
    drain(it);
}

/* Ends the interval now: each interface's figures to the callback, then the next interval. */
static void end_interval(kvl_capture_t *c)
{
    int64_t end = realtime_ns();
    for (size_t i = 0; i < c->n_ifs; i++) {
        iface_t *it = &c->ifs[i];
        /* A file: read to its end (the first interval has it all); bounded by the file. */
        while (!drain(it) && it->file) {
        }
        kvl_capture_interval_t iv = {.iface = it->name,
                                     .start_ns = c->start_ns,
                                     .end_ns = end,
                                     .frames_read = it->read_interval,
                                     .flows = it->flows,
                                     .classify = c->cl,
                                     .scale = (uint32_t)c->cfg->sampling,
                                     .last_iface = i + 1 == c->n_ifs};
        kvl_pcapsrc_stats_t now;
        if (kvl_pcapsrc_stats(it->src, &now) == 0) {
            /* libpcap's counters are 32 bits: differences modulo 2^32 */
            kvl_pcapsrc_stats_t base = it->have_stats ? it->last : (kvl_pcapsrc_stats_t){0};
            iv.drops.known = true;
            iv.drops.received = (uint32_t)(now.received - base.received);
            iv.drops.dropped = (uint32_t)(now.dropped - base.dropped);
            iv.drops.if_dropped = (uint32_t)(now.if_dropped - base.if_dropped);
            it->last = now;
            it->have_stats = true;
        }
        /* Flows idle by the wall clock end now, so the table's figures are the interval's. */
        kvl_flows_expire(it->flows, end);
        c->cb(c->arg, &iv);
        kvl_flows_interval_reset(it->flows);
        it->read_interval = 0;
    }
    if (c->cl != NULL) {
        kvl_classify_names_reset(c->cl);
    }
    c->start_ns = end;
}

static void on_timer(uv_timer_t *t)
{
    end_interval(t->data);
}

void kvl_capture_flush(kvl_capture_t *c)
{
    if (c != NULL && c->timer_open) {
        end_interval(c);
    }
}

void kvl_capture_move_cfg(kvl_capture_t *c, const kvl_capture_cfg_t *cfg)
{
    if (c != NULL) {
        c->cfg = cfg;
    }
}

static void release(kvl_capture_t *c)
{
    for (size_t i = 0; i < c->n_ifs; i++) {
        kvl_flows_free(c->ifs[i].flows); /* hands classification slots back first */
        kvl_pcapsrc_close(c->ifs[i].src);
    }
    kvl_classify_free(c->cl);
    free(c->ifs);
    free(c);
}

static void on_closed(uv_handle_t *h)
{
    kvl_capture_t *c = h->data;
    if (h->type == UV_POLL) {
        c = ((iface_t *)h->data)->owner;
    }
    if (--c->closing == 0) {
        release(c);
    }
}

void kvl_capture_free(kvl_capture_t *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n_ifs; i++) {
        if (c->ifs[i].poll_open) {
            uv_poll_stop(&c->ifs[i].poll);
            c->closing++;
            uv_close((uv_handle_t *)&c->ifs[i].poll, on_closed);
        }
    }
    if (c->timer_open) {
        uv_timer_stop(&c->timer);
        c->closing++;
        uv_close((uv_handle_t *)&c->timer, on_closed);
    }
    if (c->closing == 0) {
        release(c);
    }
}

int kvl_capture_new(uv_loop_t *loop, const kvl_capture_cfg_t *cfg, kvl_capture_interval_cb cb,
                    void *arg, kvl_capture_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->n_interfaces == 0 && cfg->file == NULL) {
        snprintf(err, errlen, "no interfaces to capture on (capture: interfaces)");
        return -1;
    }
    size_t n_ifs = cfg->file != NULL ? 1 : cfg->n_interfaces;
    kvl_capture_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->loop = loop;
    c->cfg = cfg;
    c->cb = cb;
    c->arg = arg;
    c->ifs = calloc(n_ifs, sizeof(*c->ifs));
    if (c->ifs == NULL) {
        snprintf(err, errlen, "out of memory");
        release(c);
        return -1;
    }
    char why[512];
    kvl_flows_cfg_t fc;
    kvl_capture_cfg_flows(cfg, &fc);
    if (cfg->classify) {
        c->cl = kvl_classify_new((size_t)cfg->classify_flows, (unsigned)cfg->classify_packets,
                                 (size_t)cfg->sketch_size, why, sizeof(why));
        if (c->cl == NULL) {
            snprintf(err, errlen, "%s", why);
            release(c);
            return -1;
        }
        kvl_classify_seam(c->cl, &c->seam);
        fc.classifier = &c->seam;
    }
    for (size_t i = 0; i < n_ifs; i++) {
        iface_t *it = &c->ifs[i];
        c->n_ifs++;
        it->owner = c;
        if (cfg->file != NULL) {
            const char *slash = strrchr(cfg->file, '/');
            it->name = slash != NULL && slash[1] != '\0' ? slash + 1 : cfg->file;
            it->file = true;
            it->src = kvl_pcapsrc_open_file(cfg->file, cfg->filter, why, sizeof(why));
        } else {
            it->name = cfg->interfaces[i];
            it->src = kvl_pcapsrc_open_live(it->name, (int)cfg->snaplen, cfg->promiscuous,
                                            (int)(cfg->buffer_mb * 1024 * 1024), cfg->filter, why,
                                            sizeof(why));
        }
        if (it->src == NULL) {
            snprintf(err, errlen, "%s", why);
            release(c);
            return -1;
        }
        it->link = kvl_pcapsrc_link(it->src);
        it->flows = kvl_flows_new(&fc);
        if (it->flows == NULL) {
            snprintf(err, errlen, "%s: out of memory for a flow table of %lld flows", it->name,
                     (long long)cfg->max_flows);
            release(c);
            return -1;
        }
    }
    /* Everything opened: now the handles, which only kvl_capture_free undoes. */
    for (size_t i = 0; i < c->n_ifs; i++) {
        iface_t *it = &c->ifs[i];
        if (it->file) {
            continue; /* read at the interval's end */
        }
        int rc = uv_poll_init(loop, &it->poll, kvl_pcapsrc_fd(it->src));
        if (rc != 0) {
            snprintf(err, errlen, "%s: watching the capture: %s", it->name, uv_strerror(rc));
            kvl_capture_free(c);
            return -1;
        }
        it->poll.data = it;
        it->poll_open = true;
        uv_poll_start(&it->poll, UV_READABLE, on_readable);
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->timer_open = true;
    c->start_ns = realtime_ns();
    uv_timer_start(&c->timer, on_timer, (uint64_t)cfg->interval_ms, (uint64_t)cfg->interval_ms);
    *out = c;
    return 0;
}
