/*
 * capship.c — the capture's figures (capture.h) into the batcher as the family "capture",
 * one instance per interface, counters kept as totals since the interface's first interval
 * (see capship.h for the metrics).
 */
#include "capship.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "captop.h"
#include "kvl.h"
#include "log.h"

#define MOD "capture"
#define MAX_IFACES 17 /* KVL_CAPTURE_MAX_IFACES, or one file */

enum {
    C_BYTES_IN,
    C_BYTES_OUT,
    C_PKTS_IN,
    C_PKTS_OUT,
    C_BYTES_TOTAL,
    C_PKTS_TOTAL,
    C_BYTES_V4,
    C_BYTES_V6,
    C_BYTES_NON_IP,
    C_BYTES_TCP,
    C_BYTES_UDP,
    C_BYTES_ICMP,
    C_BYTES_OTHER_L4,
    C_APP0, /* KVL_CAPSHIP_APPS of them */
    C_DROPS_KERNEL = C_APP0 + KVL_CAPSHIP_APPS,
    C_DROPS_IFACE,
    C_FLOWS_NEW,
    C_FLOWS_EVICTED,
    C_TCP_RETRANS,
    C_TCP_RESETS,
    C_N_COUNTERS,
    G_FLOWS_NOW = C_N_COUNTERS,
    G_HS0, /* six handshake figures */
    CAP_N = G_HS0 + 6
};

static const char *const cap_metrics[CAP_N] = {
    "bytes_in",
    "bytes_out",
    "packets_in",
    "packets_out",
    "bytes_total",
    "packets_total",
    "bytes_ipv4",
    "bytes_ipv6",
    "bytes_non_ip",
    "bytes_tcp",
    "bytes_udp",
    "bytes_icmp",
    "bytes_other_l4",
    "app_http",
    "app_tls",
    "app_quic",
    "app_dns",
    "app_ssh",
    "app_rdp",
    "app_smb",
    "app_ntp",
    "app_snmp",
    "app_video",
    "app_unknown",
    "app_other",
    "drops_kernel",
    "drops_iface",
    "flows_new",
    "flows_evicted",
    "tcp_retrans",
    "tcp_resets",
    "flows_now",
    "hs_server_min_ms",
    "hs_server_median_ms",
    "hs_server_p95_ms",
    "hs_client_min_ms",
    "hs_client_median_ms",
    "hs_client_p95_ms",
};
static kvl_kind_t cap_kinds[CAP_N];
static bool cap_reals[CAP_N];

const kvl_family_t kvl_capture_family = {
    .name = "capture", .n = CAP_N, .metrics = cap_metrics, .kinds = cap_kinds, .reals = cap_reals};

/* The app_* classes in metric order; APP_UNKNOWN and APP_OTHER last. */
enum { APP_VIDEO = KVL_CAPSHIP_APPS - 3, APP_UNKNOWN, APP_OTHER };
static const char *const app_prefix[] = {"HTTP", "TLS", "QUIC", "DNS", "SSH",
                                         "RDP",  "SMB", "NTP",  "SNMP"};
/* nDPI's names of video services and streaming protocols. */
static const char *const video_names[] = {
    "YouTube",     "NetFlix", "Twitch",      "AmazonVideo", "Hulu", "DisneyPlus",
    "Dailymotion", "Vevo",    "RTSP",        "RTMP",        "RTP",  "RTCP",
    "MPEG_TS",     "Vimeo",   "GoogleVideo", "MPEG-DASH",   "HBO",  "Tiktok",
};

int kvl_capship_app_class(const char *name)
{
    if (name == NULL || strcasecmp(name, "Unknown") == 0) {
        return APP_UNKNOWN;
    }
    for (size_t i = 0; i < KVL_ARRAY_SIZE(video_names); i++) {
        if (strcasecmp(name, video_names[i]) == 0) {
            return APP_VIDEO;
        }
    }
    for (size_t i = 0; i < KVL_ARRAY_SIZE(app_prefix); i++) {
        size_t n = strlen(app_prefix[i]);
        /* "HTTP", "HTTP_Proxy"; "SMBv1", "SMBv23"; "TLS" but not "TLSomething" */
        if (strncasecmp(name, app_prefix[i], n) == 0 &&
            (name[n] == '\0' || name[n] == '_' || name[n] == '.' || (i == 6 && name[n] == 'v'))) {
            return (int)i;
        }
    }
    return APP_OTHER;
}

typedef struct ship_if {
    const char *name; /* interned */
    uint32_t id;      /* 0: not registered (yet, or refused) */
    bool failed;      /* registration refused: logged once */
    uint64_t total[C_N_COUNTERS];
} ship_if_t;

struct kvl_capship {
    kvl_batcher_t *b;
    char *agent;
    uint32_t interval_s;
    size_t top_n; /* entries of each top list sent (at most KVL_CAPTOP_MAX) */
    ship_if_t ifs[MAX_IFACES];
    size_t n_ifs;
};

static void init_family(void)
{
    for (size_t i = 0; i < CAP_N; i++) {
        cap_kinds[i] = i < C_N_COUNTERS ? KVL_KIND_COUNTER : KVL_KIND_GAUGE;
        cap_reals[i] = i >= G_HS0;
    }
}

kvl_capship_t *kvl_capship_new(kvl_batcher_t *b, const char *agent_id, uint32_t interval_s,
                               size_t top_n)
{
    _Static_assert(KVL_ARRAY_SIZE(cap_metrics) == CAP_N, "capture metrics and CAP_N differ");
    _Static_assert(CAP_N <= KVL_FAMILY_MAX, "too many capture metrics");
    _Static_assert(C_APP0 + APP_OTHER == C_DROPS_KERNEL - 1, "app classes misplaced");
    init_family();
    kvl_capship_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->agent = strdup(agent_id)) == NULL) {
        free(s);
        return NULL;
    }
    s->b = b;
    s->interval_s = interval_s > 0 ? interval_s : 1;
    s->top_n = top_n;
    return s;
}

void kvl_capship_free(kvl_capship_t *s)
{
    if (s == NULL) {
        return;
    }
    free(s->agent);
    free(s);
}

void kvl_capship_configure(kvl_capship_t *s, uint32_t interval_s, size_t top_n)
{
    s->interval_s = interval_s > 0 ? interval_s : 1;
    s->top_n = top_n;
}

static ship_if_t *iface_of(kvl_capship_t *s, const char *name)
{
    for (size_t i = 0; i < s->n_ifs; i++) {
        if (strcmp(s->ifs[i].name, name) == 0) {
            return &s->ifs[i];
        }
    }
    if (s->n_ifs == MAX_IFACES) {
        return NULL;
    }
    const char *in = kvl_batcher_intern(s->b, name);
    if (in == NULL) {
        return NULL;
    }
    ship_if_t *it = &s->ifs[s->n_ifs++];
    memset(it, 0, sizeof(*it));
    it->name = in;
    return it;
}

/* The interval's counts, to be added to the totals: estimates of all the traffic under
 * sampling (kvl_capture_counts), the drops as the kernel counted them. */
static void interval_counts(const kvl_capture_interval_t *iv, uint64_t *c, bool *apps_known,
                            bool *drops_known)
{
    kvl_flows_counts_t counts;
    const kvl_flows_counts_t *k = &counts;
    kvl_capture_counts(iv, &counts);
    memset(c, 0, sizeof(*c) * C_N_COUNTERS);
    c[C_BYTES_IN] = k->dir[KVL_DIR_IN].bytes;
    c[C_BYTES_OUT] = k->dir[KVL_DIR_OUT].bytes;
    c[C_PKTS_IN] = k->dir[KVL_DIR_IN].pkts;
    c[C_PKTS_OUT] = k->dir[KVL_DIR_OUT].pkts;
    c[C_BYTES_TOTAL] = k->total.bytes;
    c[C_PKTS_TOTAL] = k->total.pkts;
    c[C_BYTES_V4] = k->ipv4.bytes;
    c[C_BYTES_V6] = k->ipv6.bytes;
    c[C_BYTES_NON_IP] = k->non_ip.bytes;
    c[C_BYTES_TCP] = k->l4[KVL_L4_TCP].bytes;
    c[C_BYTES_UDP] = k->l4[KVL_L4_UDP].bytes;
    c[C_BYTES_ICMP] = k->l4[KVL_L4_ICMP].bytes;
    c[C_BYTES_OTHER_L4] = k->l4[KVL_L4_OTHER].bytes;
    *apps_known = iv->classify != NULL;
    if (*apps_known) {
        kvl_app_count_t apps[64];
        size_t n = kvl_capture_apps(iv, apps, KVL_ARRAY_SIZE(apps));
        uint64_t listed = 0;
        for (size_t i = 0; i < n; i++) {
            c[C_APP0 + kvl_capship_app_class(apps[i].name)] += apps[i].c.bytes;
            listed += apps[i].c.bytes;
        }
        c[C_APP0 + APP_UNKNOWN] += k->app_pending.bytes + k->app_unclassified.bytes;
        /* Applications beyond the 64 listed: IP bytes not accounted for otherwise. */
        uint64_t ip = k->ipv4.bytes + k->ipv6.bytes;
        uint64_t seen = listed + k->app_pending.bytes + k->app_unclassified.bytes;
        if (n == KVL_ARRAY_SIZE(apps) && ip > seen) {
            c[C_APP0 + APP_OTHER] += ip - seen;
        }
    }
    *drops_known = iv->drops.known;
    c[C_DROPS_KERNEL] = iv->drops.dropped;
    c[C_DROPS_IFACE] = iv->drops.if_dropped;
    c[C_FLOWS_NEW] = k->flows_new;
    c[C_FLOWS_EVICTED] = k->flows_evicted;
    c[C_TCP_RETRANS] = k->tcp_retrans;
    c[C_TCP_RESETS] = k->tcp_resets;
}

static void add_hs(kvl_batcher_t *b, uint32_t id, const kvl_hs_summary_t *h)
{
    if (h->n == 0) {
        for (uint32_t i = 0; i < 3; i++) {
            kvl_batcher_add_unknown(b, id + i);
        }
        return;
    }
    kvl_batcher_add_real(b, id, (double)h->min_ns / 1e6);
    kvl_batcher_add_real(b, id + 1, (double)h->median_ns / 1e6);
    kvl_batcher_add_real(b, id + 2, (double)h->p95_ns / 1e6);
}

static void entry_of(const kvl_top_t *t, bool conv, kvl_captop_entry_t *e)
{
    int af = t->ver == 6 ? AF_INET6 : AF_INET;
    memset(e, 0, sizeof(*e));
    inet_ntop(af, t->a, e->a, sizeof(e->a));
    if (conv) {
        inet_ntop(af, t->b, e->b, sizeof(e->b));
    }
    e->bytes = t->bytes;
    e->err = t->bytes_err;
    e->packets = t->packets;
}

/* The interval's top hosts and conversations as the event `capture_top` (captop.h). */
static void send_top(kvl_capship_t *s, const char *name, const kvl_capture_interval_t *iv)
{
    kvl_top_t top[KVL_CAPTOP_MAX];
    kvl_captop_entry_t e[KVL_CAPTOP_MAX];
    size_t n = s->top_n < KVL_CAPTOP_MAX ? s->top_n : KVL_CAPTOP_MAX;
    char hosts[KVL_CAPTOP_LIST_LEN], convs[KVL_CAPTOP_LIST_LEN];
    size_t k = kvl_capture_top_hosts(iv, top, n);
    for (size_t i = 0; i < k; i++) {
        entry_of(&top[i], false, &e[i]);
    }
    int rh = kvl_captop_list_format(e, k, false, hosts, sizeof(hosts));
    k = kvl_capture_top_convs(iv, top, n);
    for (size_t i = 0; i < k; i++) {
        entry_of(&top[i], true, &e[i]);
    }
    int rc = kvl_captop_list_format(e, k, true, convs, sizeof(convs));
    if (rh < 0 || rc < 0) {
        return; /* cannot happen: the buffers hold the longest lists */
    }
    char start[24], end[24], text[160];
    snprintf(start, sizeof(start), "%" PRId64, iv->start_ns / 1000000);
    snprintf(end, sizeof(end), "%" PRId64, iv->end_ns / 1000000);
    snprintf(text, sizeof(text), "top hosts and conversations on %s", name);
    kvl_label_t fields[] = {{"interface", name},
                            {"start_ms", start},
                            {"end_ms", end},
                            {"hosts", hosts},
                            {"convs", convs}};
    kvl_event_t ev = {.time_ms = iv->end_ns / 1000000,
                      .device = s->agent,
                      .kind = KVL_CAPTOP_EVENT,
                      .severity = KVL_SEV_INFO,
                      .text = text,
                      .fields = fields,
                      .n_fields = KVL_ARRAY_SIZE(fields)};
    kvl_batcher_event(s->b, &ev);
}

int kvl_capship_interval(kvl_capship_t *s, const kvl_capture_interval_t *iv)
{
    const char *name = iv->iface != NULL ? iv->iface : "file";
    ship_if_t *it = iface_of(s, name);
    if (it == NULL) {
        return -1;
    }
    bool first = it->id == 0;
    if (first) {
        if (it->failed) {
            return -1;
        }
        kvl_label_t labels[] = {{"interface", name}};
        kvl_instance_key_t key = {.device = s->agent,
                                  .scope = KVL_SCOPE_CAPTURE,
                                  .instance = name,
                                  .family = &kvl_capture_family,
                                  .interval_s = s->interval_s,
                                  .labels = labels,
                                  .n_labels = KVL_ARRAY_SIZE(labels)};
        it->id = kvl_batcher_instance(s->b, &key);
        if (it->id == 0) {
            it->failed = true;
            KVL_LOG_ERROR(MOD, name, "its series could not be registered; not reported");
            return -1;
        }
        /* The totals start at zero with the capture, so the first interval has a rate;
         * stamped at the start of the step (interval_s) holding the start (nothing was
         * counted in between), so that the archive's first step is whole and its rates add
         * up to the counts. */
        int64_t step_ms = (int64_t)s->interval_s * 1000;
        kvl_batcher_group_begin(s->b, iv->start_ns / 1000000 / step_ms * step_ms);
        for (uint32_t m = 0; m < CAP_N; m++) {
            if (m < C_N_COUNTERS) {
                kvl_batcher_add(s->b, it->id + m, 0);
            } else {
                kvl_batcher_add_unknown(s->b, it->id + m);
            }
        }
        kvl_batcher_group_end(s->b);
    }
    uint64_t c[C_N_COUNTERS];
    bool apps_known, drops_known;
    interval_counts(iv, c, &apps_known, &drops_known);
    kvl_batcher_group_begin(s->b, iv->end_ns / 1000000);
    for (uint32_t m = 0; m < C_N_COUNTERS; m++) {
        it->total[m] += c[m];
        bool unknown = (!apps_known && m >= C_APP0 && m < C_APP0 + KVL_CAPSHIP_APPS) ||
                       (!drops_known && (m == C_DROPS_KERNEL || m == C_DROPS_IFACE));
        if (unknown) {
            kvl_batcher_add_unknown(s->b, it->id + m);
        } else {
            kvl_batcher_add(s->b, it->id + m, it->total[m]);
        }
    }
    kvl_batcher_add(s->b, it->id + G_FLOWS_NOW, kvl_flows_counts(iv->flows)->flows_now);
    kvl_hs_summary_t server, client;
    kvl_flows_handshake_all(iv->flows, &server, &client);
    add_hs(s->b, it->id + G_HS0, &server);
    add_hs(s->b, it->id + G_HS0 + 3, &client);
    kvl_batcher_group_end(s->b);
    if (s->top_n > 0) {
        send_top(s, name, iv);
    }
    return 0;
}
