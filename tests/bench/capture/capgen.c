/*
 * capgen.c — writes a pcap file of enterprise-like traffic for tests/bench/capture.
 *
 *   kvl-capgen --out FILE.pcap [--packets N] [--hosts N] [--remote N] [--seed S]
 *              [--concurrency K] [--pps R]
 *
 * The file is made of whole sessions, interleaved as on a mirror port: local hosts
 * (10.x.y.z, a few on 802.1Q VLANs, a few with IPv6 addresses in fd10::/16) talk to local
 * servers and to remote ones, and remote clients reach the local portal. Each session is a
 * small script of messages (who sends how many bytes, what the first bytes look like), cut
 * into segments and acknowledged as TCP does:
 *   HTTPS 443   handshake, a TLS 1.3 ClientHello with SNI, ServerHello, requests, responses
 *   HTTP 80     handshake, GET with a Host header, responses
 *   SSH 22      banners, key exchange, keystrokes and echoes, now and then a bulk copy
 *   RDP 3389    X.224 connection request with a cookie, then screen updates and input
 *   SMB 445     SMB2 negotiate, session and tree set-up, reads of 64 KiB to 1 MiB
 *   DNS 53      a query and its answer (A or AAAA)
 *   NTP 123     client request and server reply
 *   SNMP 161    v2c GetRequests of 1-10 varbinds from the NMS and their responses
 *   QUIC 443    Initial-like long-header packets padded to 1200 bytes (the payload is not a
 *               real encrypted ClientHello), then short-header data and small acks
 * TCP sessions close with FIN (a few with RST); 0.2 % of data segments are sent twice.
 * Response sizes are heavy-tailed, so the packet mix is many 60-100 byte ACKs, many
 * 1514-byte full segments and some in between. Frames shorter than 60 bytes are padded to
 * 60 (as a mirror port delivers them); every frame is captured whole (caplen = len), with
 * correct IPv4, TCP and UDP checksums.
 *
 * Everything follows from --seed (splitmix64): the same options give the same file, byte for
 * byte. Timestamps start at 2026-01-05 09:00:00 UTC and advance by exponential gaps of mean
 * 1/--pps seconds. At the end it prints the truth on stdout:
 *   TRUTH packets=N bytes=N flows=N tcp_flows=N udp_flows=N ipv6_packets=N vlan_packets=N
 *         retransmissions=N duration_s=F mean_bytes=F
 *   SIZES le100=N 101_500=N 501_1000=N 1001_1400=N gt1400=N
 *   APPS https=N http=N ... (packets per application)
 * flows = sessions that sent a packet, each its own 5-tuple: client ports are handed out
 * per client in turn from a random start, wrapping from 60999 to 32768 (port_wraps=N counts
 * the wraps), so a 5-tuple could come back only after 28,232 sessions of one client. Bytes are
 * on-the-wire frame lengths. Exit status 0, 1 when the file cannot be written, 2 for usage errors.
 */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum app {
    APP_HTTPS,
    APP_HTTP,
    APP_SSH,
    APP_RDP,
    APP_SMB,
    APP_DNS,
    APP_NTP,
    APP_SNMP,
    APP_QUIC,
    APP_N
};

static const char *const app_names[APP_N] = {"https", "http", "ssh",  "rdp", "smb",
                                             "dns",   "ntp",  "snmp", "quic"};
static const uint16_t app_ports[APP_N] = {443, 80, 22, 3389, 445, 53, 123, 161, 443};

/* Session starts per 1,000 (sums to 1,000). */
static const unsigned app_weights[APP_N] = {240, 60, 25, 25, 50, 300, 40, 190, 70};

/* What the first bytes of a segment look like. */
enum kind {
    K_RAND,
    K_TLS_CH,
    K_TLS_SH,
    K_TLS_APP,
    K_HTTP_REQ,
    K_HTTP_RESP,
    K_SSH_CBANNER,
    K_SSH_SBANNER,
    K_SSH_PKT,
    K_RDP_CR,
    K_RDP_CC,
    K_SMB_NEG,
    K_SMB_NEGR,
    K_SMB_CMD,
    K_SMB_READR,
    K_DNS_Q,
    K_DNS_A,
    K_NTP_REQ,
    K_NTP_RESP,
    K_SNMP_GET,
    K_SNMP_RESP,
    K_QUIC_INIT,
    K_QUIC_SINIT,
    K_QUIC_SHORT,
};

static const char *const names[] = {
    "eoffice.kerala.gov.in",
    "portal.lsgkerala.gov.in",
    "mail.kerala.gov.in",
    "www.youtube.com",
    "rr3.googlevideo.com",
    "www.google.com",
    "update.microsoft.com",
    "login.microsoftonline.com",
    "outlook.office365.com",
    "web.whatsapp.com",
    "zoom.us",
    "meet.google.com",
    "www.facebook.com",
    "static.xx.fbcdn.net",
    "api.github.com",
    "deb.debian.org",
    "security.debian.org",
    "www.wikipedia.org",
    "cdn.jsdelivr.net",
    "fonts.gstatic.com",
    "www.amazon.in",
    "accounts.google.com",
    "teams.microsoft.com",
    "drive.google.com",
    "treasury.kerala.gov.in",
    "sevana.lsgkerala.gov.in",
    "www.irctc.co.in",
    "www.sbi.co.in",
    "netflix.com",
    "www.instagram.com",
    "ocsp.digicert.com",
    "time.windows.com",
};
enum { N_NAMES = sizeof(names) / sizeof(names[0]) };

/* ---- deterministic randomness ---- */

static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A number in [0, n). */
static uint32_t below(uint32_t n)
{
    return (uint32_t)(((rnd() >> 32) * (uint64_t)n) >> 32);
}

/* A number in [lo, hi]. */
static uint32_t between(uint32_t lo, uint32_t hi)
{
    return lo + below(hi - lo + 1);
}

/* A number in [0, 1). */
static double unit(void)
{
    return (double)(rnd() >> 11) * (1.0 / 9007199254740992.0);
}

static bool chance(double p)
{
    return unit() < p;
}

/* Heavy-tailed object size: most small, a few megabytes. */
static uint32_t object_size(void)
{
    double u = unit();
    if (u < 0.85) {
        return between(300, 12000);
    }
    if (u < 0.99) {
        return between(12000, 150000);
    }
    return between(150000, 3000000);
}

/* ---- sessions ---- */

typedef struct {
    uint8_t v6, proto, app, closing; /* closing: 0 no, 1..3 FIN steps, 9 = RST */
    uint8_t cip[16], sip[16];
    uint8_t cmac[6], smac[6];
    uint16_t cport, sport, vlan, name;
    uint8_t cttl, sttl;
    uint16_t ipid[2];
    uint32_t seq[2];                   /* next sequence number per direction (0 client, 1 server) */
    uint32_t hs;                       /* TCP handshake step 0..3, 3 = done */
    uint32_t msg;                      /* index of the current message */
    uint32_t nmsg;                     /* messages planned */
    uint32_t m_left;                   /* bytes of the current message still to send */
    uint32_t m_len;                    /* its whole length */
    uint8_t m_dir, m_kind, owed, retx; /* owed: receiver sends a pure ACK next */
    uint32_t segs_since_ack;
    uint32_t retx_len, retx_seq;
    uint32_t bulk_at; /* SSH: message index of the bulk copy, 0 none */
    uint32_t snmp_vbs;
    uint64_t pkts; /* sent so far: the flow counts from its first packet */
} sess_t;

typedef struct {
    uint64_t packets, bytes, flows, tcp_flows, udp_flows, v6_packets, vlan_packets, retx;
    uint64_t sizes[5], apps[APP_N], port_wraps;
} truth_t;

typedef struct {
    uint32_t hosts, remote, concurrency;
    double pps;
    uint16_t *lport;   /* next client port per local host */
    uint16_t *rport;   /* per remote client */
    uint16_t nms_port; /* the NMS's (SNMP) */
    FILE *out;
    int64_t t_ns;
    truth_t t;
    uint8_t fill[65536]; /* random bytes: encrypted payloads */
    uint8_t frame[2048];
} gen_t;

static const uint8_t gw_mac[6] = {0x00, 0x1b, 0x54, 0x0a, 0x00, 0x01};

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v);
}

static void le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t r = rnd();
        size_t k = n - i < 8 ? n - i : 8;
        memcpy(p + i, &r, k);
    }
}

/* Local host i: 10.S.U.H with 250 hosts per /24 (H 1..250); its subnet's index. */
static void local_v4(uint32_t i, uint8_t *ip, uint32_t *subnet)
{
    uint32_t sn = i / 250 + 16; /* 10.0.0.0/20 is for the servers */
    ip[0] = 10;
    ip[1] = (uint8_t)(sn >> 8);
    ip[2] = (uint8_t)sn;
    ip[3] = (uint8_t)(i % 250 + 1);
    *subnet = sn;
}

static void local_v6(uint32_t sn, uint32_t h, uint8_t *ip)
{
    memset(ip, 0, 16);
    ip[0] = 0xfd;
    ip[1] = 0x10;
    put16(ip + 6, sn);
    put32(ip + 12, h);
}

/* Remote address i: spread over public-looking space, never private or reserved. */
static void remote_v4(uint32_t i, uint8_t *ip)
{
    uint32_t h = i * 2654435761u + 0x5bd1e995u;
    uint8_t a = (uint8_t)(h >> 24);
    if (a == 0 || a == 10 || a == 127 || a == 172 || a == 192 || a == 169 || a == 100 || a >= 224) {
        a = (uint8_t)(a % 90 + 11); /* 11..100 minus the ones above: fine either way */
        if (a == 100) {
            a = 99;
        }
    }
    ip[0] = a;
    ip[1] = (uint8_t)(h >> 16);
    ip[2] = (uint8_t)(h >> 8);
    ip[3] = (uint8_t)(i % 253 + 1);
}

static void remote_v6(uint32_t i, uint8_t *ip)
{
    memset(ip, 0, 16);
    ip[0] = 0x20;
    ip[1] = 0x01;
    ip[2] = 0x0d;
    ip[3] = 0xb8;
    put32(ip + 4, i * 2654435761u);
    put32(ip + 12, i + 1);
}

static void mac_of(const uint8_t *ip, bool v6, uint8_t *mac)
{
    mac[0] = 0x02;
    mac[1] = 0x00;
    memcpy(mac + 2, v6 ? ip + 12 : ip, 4);
}

/* Skewed choice of a local host: a few busy, many quiet. */
static uint32_t pick_host(const gen_t *g)
{
    double u = unit();
    return (uint32_t)((double)g->hosts * u * u * u) % g->hosts;
}

static uint16_t next_port(uint16_t *slot, truth_t *t)
{
    uint16_t p = *slot;
    *slot = p >= 60999 ? 32768 : (uint16_t)(p + 1);
    if (p >= 60999) {
        t->port_wraps++;
    }
    return p;
}

static void plan_msg(sess_t *s);

/* Starts a new session of a random application in s. */
static void sess_start(gen_t *g, sess_t *s)
{
    memset(s, 0, sizeof(*s));
    uint32_t w = below(1000), app = 0;
    while (app < APP_N - 1 && w >= app_weights[app]) {
        w -= app_weights[app];
        app++;
    }
    s->app = (uint8_t)app;
    s->proto = app >= APP_DNS ? 17 : 6; /* DNS, NTP, SNMP, QUIC */
    s->sport = app_ports[app];
    s->name = (uint16_t)below(N_NAMES);
    bool v6able = app == APP_HTTPS || app == APP_DNS || app == APP_QUIC;
    s->v6 = v6able && chance(0.08);
    uint32_t host = pick_host(g), sn;
    local_v4(host, s->cip, &sn);
    uint16_t *pslot = &g->lport[host];
    bool inbound = false;
    if (sn % 5 == 0) {
        s->vlan = (uint16_t)(100 + sn % 1000);
    }
    /* Where the server is. */
    uint8_t srv[4] = {10, 0, 0, 0};
    bool local_srv = false;
    switch (app) {
    case APP_SMB:
        srv[2] = 1;
        srv[3] = (uint8_t)between(10, 19);
        local_srv = true;
        break;
    case APP_RDP:
        srv[2] = 2;
        srv[3] = (uint8_t)between(10, 40);
        local_srv = true;
        break;
    case APP_SSH:
        local_srv = chance(0.7);
        srv[2] = 3;
        srv[3] = (uint8_t)between(10, 60);
        break;
    case APP_DNS:
        local_srv = chance(0.85);
        srv[2] = 0;
        srv[3] = (uint8_t)between(53, 54);
        break;
    case APP_NTP:
        local_srv = chance(0.5);
        srv[2] = 0;
        srv[3] = 123;
        break;
    case APP_SNMP:
        /* The NMS polls devices: it is the client. */
        s->cip[1] = 0;
        s->cip[2] = 0;
        s->cip[3] = 5;
        s->vlan = 0;
        pslot = &g->nms_port;
        srv[1] = (uint8_t)between(8, 15);
        srv[2] = (uint8_t)below(256);
        srv[3] = (uint8_t)between(1, 8);
        local_srv = true;
        s->snmp_vbs = between(1, 10);
        break;
    case APP_HTTPS:
    case APP_HTTP:
        if (chance(0.15)) {
            inbound = true; /* the citizen portal, reached from outside */
        }
        break;
    default:
        break;
    }
    if (inbound) {
        uint32_t rc = below(g->remote);
        remote_v4(rc + g->remote, s->cip);
        if (s->v6) {
            remote_v6(rc + g->remote, s->cip);
        }
        s->vlan = 0;
        pslot = &g->rport[rc];
        uint8_t portal[4] = {10, 0, 4, (uint8_t)between(80, 81)};
        memcpy(s->sip, portal, 4);
        if (s->v6) {
            local_v6(4, portal[3], s->sip);
        }
        s->name = 1;
        s->cttl = 52;
        s->sttl = 64;
        memcpy(s->cmac, gw_mac, 6);
        mac_of(s->sip, s->v6, s->smac);
    } else {
        if (s->v6) {
            local_v6(sn, host, s->cip);
        }
        if (local_srv) {
            memcpy(s->sip, srv, 4);
            if (s->v6) {
                local_v6(srv[2], srv[3], s->sip);
            }
            s->sttl = 64;
            mac_of(s->sip, s->v6, s->smac);
        } else {
            uint32_t r = below(g->remote);
            if (s->v6) {
                remote_v6(r, s->sip);
            } else {
                remote_v4(r, s->sip);
            }
            s->name = (uint16_t)(r % N_NAMES);
            s->sttl = 54;
            memcpy(s->smac, gw_mac, 6);
        }
        s->cttl = 64;
        mac_of(s->cip, s->v6, s->cmac);
    }
    s->cport = next_port(pslot, &g->t);
    s->seq[0] = (uint32_t)rnd();
    s->seq[1] = (uint32_t)rnd();
    s->ipid[0] = (uint16_t)rnd();
    s->ipid[1] = (uint16_t)rnd();
    s->hs = s->proto == 6 ? 0 : 3;
    switch (app) {
    case APP_HTTPS:
        s->nmsg = 3 + 2 * between(1, 6);
        break;
    case APP_HTTP:
        s->nmsg = 2 * between(1, 4);
        break;
    case APP_SSH:
        s->nmsg = 6 + between(10, 200);
        s->bulk_at = chance(0.1) ? 6 + below(s->nmsg - 6) : 0;
        break;
    case APP_RDP:
        s->nmsg = 4 + between(20, 300);
        break;
    case APP_SMB:
        s->nmsg = 6 + 2 * between(1, 8);
        break;
    case APP_SNMP:
        s->nmsg = 2 * between(1, 3);
        break;
    case APP_QUIC:
        s->nmsg = 3 + 2 * between(1, 5);
        break;
    default:
        s->nmsg = 2;
        break;
    }
    if (s->proto == 17) {
        plan_msg(s);
    }
}

/* Who sends message i of s: 0 the client, 1 the server. */
static uint8_t msg_dir(const sess_t *s, uint32_t i)
{
    if (s->app == APP_HTTPS || s->app == APP_QUIC) {
        return i < 2 ? (uint8_t)i : i == 2 ? 0 : (uint8_t)((i - 3) % 2);
    }
    if (s->app == APP_SSH && s->bulk_at != 0 && i == s->bulk_at) {
        return 1;
    }
    return (uint8_t)(i % 2);
}

/* Plans message s->msg: its direction, kind and length (0: the kind's own length). */
static void plan_msg(sess_t *s)
{
    uint32_t i = s->msg;
    uint8_t dir = msg_dir(s, i), kind = K_RAND;
    uint32_t len = 0;
    switch (s->app) {
    case APP_HTTPS:
        if (i == 0) {
            kind = K_TLS_CH;
        } else if (i == 1) {
            kind = K_TLS_SH, len = between(2500, 4500);
        } else if (i == 2) {
            kind = K_TLS_APP, len = between(64, 80);
        } else {
            kind = K_TLS_APP;
            len = dir == 0 ? between(200, 900) : object_size();
        }
        break;
    case APP_HTTP:
        kind = dir == 0 ? K_HTTP_REQ : K_HTTP_RESP;
        len = dir == 0 ? between(180, 420) : object_size();
        break;
    case APP_SSH:
        if (i < 2) {
            kind = i == 0 ? K_SSH_CBANNER : K_SSH_SBANNER;
        } else if (i < 6) {
            kind = K_SSH_PKT;
            static const uint32_t lo[4] = {1400, 1000, 48, 500}, hi[4] = {1600, 1100, 48, 1000};
            len = between(lo[i - 2], hi[i - 2]);
        } else if (s->bulk_at != 0 && i == s->bulk_at) {
            kind = K_SSH_PKT, len = between(1000000, 20000000);
        } else {
            kind = K_SSH_PKT;
            len = dir == 0 ? 36 + 16 * below(4) : between(36, 300);
        }
        break;
    case APP_RDP:
        if (i < 2) {
            kind = i == 0 ? K_RDP_CR : K_RDP_CC;
        } else if (i < 4) {
            kind = K_TLS_APP, len = i == 2 ? between(250, 350) : between(1500, 3000);
        } else {
            kind = K_TLS_APP;
            len = dir == 0 ? between(40, 120)
                           : (chance(0.7) ? between(100, 1400) : between(1400, 12000));
        }
        break;
    case APP_SMB:
        if (i < 6) {
            static const uint8_t kinds[6] = {K_SMB_NEG, K_SMB_NEGR, K_SMB_CMD,
                                             K_SMB_CMD, K_SMB_CMD,  K_SMB_CMD};
            static const uint32_t lo[6] = {178, 240, 150, 150, 100, 80};
            static const uint32_t hi[6] = {178, 260, 300, 300, 110, 90};
            kind = kinds[i], len = between(lo[i], hi[i]);
        } else {
            kind = dir == 0 ? K_SMB_CMD : K_SMB_READR;
            len = dir == 0 ? 121 : 84 + (chance(0.9) ? 4096u << below(5) : 1048576u);
        }
        break;
    case APP_DNS:
        kind = dir == 0 ? K_DNS_Q : K_DNS_A;
        break;
    case APP_NTP:
        kind = dir == 0 ? K_NTP_REQ : K_NTP_RESP, len = 48;
        break;
    case APP_SNMP:
        kind = dir == 0 ? K_SNMP_GET : K_SNMP_RESP;
        break;
    case APP_QUIC:
        if (i == 0) {
            kind = K_QUIC_INIT, len = 1200;
        } else if (i == 1) {
            kind = K_QUIC_SINIT, len = 1200 * between(2, 4);
        } else if (i == 2) {
            kind = K_QUIC_SHORT, len = between(40, 90);
        } else {
            kind = K_QUIC_SHORT;
            len = dir == 0 ? between(60, 400) : object_size();
        }
        break;
    default:
        break;
    }
    s->m_dir = dir;
    s->m_kind = kind;
    s->m_len = len; /* 0: the kind's own length, fixed when its first segment is built */
    s->m_left = len;
}

/* ---- payload builders: each writes the first bytes of a message at p (room: cap) and
 * returns how many it wrote (its natural length). ---- */

static size_t b_name(uint8_t *p, const char *name)
{
    /* DNS labels */
    size_t o = 0;
    const char *c = name;
    while (*c != '\0') {
        const char *dot = strchr(c, '.');
        size_t l = dot != NULL ? (size_t)(dot - c) : strlen(c);
        p[o++] = (uint8_t)l;
        memcpy(p + o, c, l);
        o += l;
        c += l;
        if (*c == '.') {
            c++;
        }
    }
    p[o++] = 0;
    return o;
}

static size_t b_client_hello(uint8_t *p, const char *name)
{
    size_t nl = strlen(name), o = 0;
    p[o++] = 0x16, p[o++] = 3, p[o++] = 1;
    o += 2; /* record length at 3 */
    p[o++] = 1;
    o += 3; /* handshake length at 6 */
    p[o++] = 3, p[o++] = 3;
    fill_random(p + o, 32), o += 32;
    p[o++] = 32;
    fill_random(p + o, 32), o += 32;
    static const uint8_t suites[] = {0x00, 0x10, 0x13, 0x01, 0x13, 0x02, 0x13, 0x03, 0xc0, 0x2b,
                                     0xc0, 0x2f, 0xc0, 0x2c, 0xc0, 0x30, 0xcc, 0xa9, 0x01, 0x00};
    memcpy(p + o, suites, sizeof(suites)), o += sizeof(suites);
    size_t ext = o;
    o += 2;
    /* server_name */
    put16(p + o, 0), put16(p + o + 2, (uint32_t)(nl + 5)), put16(p + o + 4, (uint32_t)(nl + 3));
    p[o + 6] = 0, put16(p + o + 7, (uint32_t)nl);
    memcpy(p + o + 9, name, nl), o += 9 + nl;
    static const uint8_t
        fixed[] =
            {
                0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, /* ec_point_formats */
                0x00, 0x0a, 0x00, 0x08, 0x00, 0x06, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18, /* groups */
                0x00, 0x10, 0x00, 0x0e, 0x00, 0x0c, 0x02, 'h',  '2',  0x08, 'h',  't',
                't',  'p',  '/',  '1',  '.',  '1', /* alpn */
                0x00, 0x0d, 0x00, 0x0a, 0x00, 0x08, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
                0x05, 0x01,                                                 /* sigalgs
                                                                             */
                0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04,                   /* versions */
                0x00, 0x33, 0x00, 0x26, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20, /* key_share */
            };
    memcpy(p + o, fixed, sizeof(fixed)), o += sizeof(fixed);
    fill_random(p + o, 32), o += 32;
    /* padding to a 512-byte handshake, as browsers do */
    size_t pad = o + 4 < 517 ? 517 - o - 4 : 0;
    put16(p + o, 0x15), put16(p + o + 2, (uint32_t)pad);
    memset(p + o + 4, 0, pad), o += 4 + pad;
    put16(p + ext, (uint32_t)(o - ext - 2));
    put16(p + 3, (uint32_t)(o - 5));
    put24(p + 6, (uint32_t)(o - 9));
    return o;
}

static size_t b_server_hello(uint8_t *p)
{
    size_t o = 0;
    p[o++] = 0x16, p[o++] = 3, p[o++] = 3;
    put16(p + o, 122), o += 2;
    p[o++] = 2;
    put24(p + o, 118), o += 3;
    p[o++] = 3, p[o++] = 3;
    fill_random(p + o, 32), o += 32;
    p[o++] = 32;
    fill_random(p + o, 32), o += 32;
    static const uint8_t rest[] = {0x13, 0x01, 0x00, 0x00, 0x2e, 0x00, 0x2b, 0x00, 0x02, 0x03,
                                   0x04, 0x00, 0x33, 0x00, 0x24, 0x00, 0x1d, 0x00, 0x20};
    memcpy(p + o, rest, sizeof(rest)), o += sizeof(rest);
    fill_random(p + o, 32), o += 32;
    static const uint8_t ccs[] = {0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0x17, 0x03, 0x03};
    memcpy(p + o, ccs, sizeof(ccs)), o += sizeof(ccs);
    return o; /* the application data record's length follows in the caller's bytes */
}

static size_t b_dns(uint8_t *p, const sess_t *s, bool answer)
{
    size_t o = 0;
    put16(p, (uint32_t)(s->cport * 7919u));
    put16(p + 2, answer ? 0x8180 : 0x0100);
    put16(p + 4, 1), put16(p + 6, answer ? 2 : 0), put16(p + 8, 0), put16(p + 10, 0);
    o = 12;
    o += b_name(p + o, names[s->name]);
    uint16_t qtype = s->v6 ? 28 : 1;
    put16(p + o, qtype), put16(p + o + 2, 1), o += 4;
    if (answer) {
        for (int k = 0; k < 2; k++) {
            put16(p + o, 0xc00c), put16(p + o + 2, qtype), put16(p + o + 4, 1);
            put32(p + o + 6, 300);
            uint32_t rl = s->v6 ? 16 : 4;
            put16(p + o + 10, rl), o += 12;
            fill_random(p + o, rl), o += rl;
        }
    }
    return o;
}

/* BER: tag, short length, content assumed below 128 bytes except the outer sequence. */
static size_t b_snmp(uint8_t *p, const sess_t *s, bool resp)
{
    uint8_t vb[512];
    size_t v = 0;
    for (uint32_t k = 0; k < s->snmp_vbs; k++) {
        /* ifHCInOctets.N: 1.3.6.1.2.1.31.1.1.1.6.N */
        static const uint8_t oid[] = {0x06, 0x0c, 0x2b, 0x06, 0x01, 0x02, 0x01,
                                      0x1f, 0x01, 0x01, 0x01, 0x06, 0x81, 0x00};
        size_t vlen = resp ? 10 : 2;
        vb[v++] = 0x30, vb[v++] = (uint8_t)(sizeof(oid) + vlen);
        memcpy(vb + v, oid, sizeof(oid));
        vb[v + sizeof(oid) - 1] = (uint8_t)(k + 1);
        v += sizeof(oid);
        if (resp) {
            vb[v++] = 0x46, vb[v++] = 8;
            fill_random(vb + v, 8), v += 8;
        } else {
            vb[v++] = 0x05, vb[v++] = 0;
        }
    }
    uint8_t pdu[600];
    size_t d = 0;
    pdu[d++] = 0x02, pdu[d++] = 4;
    put32(pdu + d, (uint32_t)s->cport * 31u + s->msg), d += 4;
    pdu[d++] = 0x02, pdu[d++] = 1, pdu[d++] = 0;
    pdu[d++] = 0x02, pdu[d++] = 1, pdu[d++] = 0;
    pdu[d++] = 0x30, pdu[d++] = 0x82;
    put16(pdu + d, (uint32_t)v), d += 2;
    memcpy(pdu + d, vb, v), d += v;
    size_t o = 0;
    p[o++] = 0x30, p[o++] = 0x82;
    size_t outer = o;
    o += 2;
    static const uint8_t hdr[] = {0x02, 0x01, 0x01, 0x04, 0x06, 'p', 'u', 'b', 'l', 'i', 'c'};
    memcpy(p + o, hdr, sizeof(hdr)), o += sizeof(hdr);
    p[o++] = resp ? 0xa2 : 0xa0, p[o++] = 0x82;
    put16(p + o, (uint32_t)d), o += 2;
    memcpy(p + o, pdu, d), o += d;
    put16(p + outer, (uint32_t)(o - 4));
    return o;
}

static size_t b_quic_long(uint8_t *p, bool server, uint32_t len)
{
    size_t o = 0;
    p[o++] = 0xc3;
    put32(p + o, 1), o += 4;
    p[o++] = 8;
    fill_random(p + o, 8), o += 8;
    p[o++] = server ? 8 : 0;
    if (server) {
        fill_random(p + o, 8), o += 8;
    }
    if (!server) {
        p[o++] = 0; /* token length */
    }
    uint32_t rest = len > o + 2 ? len - (uint32_t)o - 2 : 4;
    put16(p + o, 0x4000 | (rest & 0x3fff)), o += 2;
    return o;
}

/* Writes the first bytes of a segment of s's current message at p (2,048 bytes of room)
 * and returns how many: the kind's header when first (the message's first segment), for
 * some kinds (QUIC) on every segment, else 0. */
static size_t build_head(const sess_t *s, uint8_t *p, bool first)
{
    const char *name = names[s->name];
    char buf[600];
    int n;
    switch (s->m_kind) {
    case K_TLS_CH:
        return first ? b_client_hello(p, name) : 0;
    case K_TLS_SH:
        return first ? b_server_hello(p) : 0;
    case K_TLS_APP:
        if (!first) {
            return 0;
        }
        p[0] = 0x17, p[1] = 3, p[2] = 3;
        put16(p + 3, s->m_len > 5 ? (s->m_len - 5 > 16384 ? 16384 : s->m_len - 5) : 0);
        return 5;
    case K_HTTP_REQ:
        if (!first) {
            return 0;
        }
        n = snprintf(buf, sizeof(buf),
                     "GET /app/%u/index.html HTTP/1.1\r\nHost: %s\r\nUser-Agent: Mozilla/5.0 "
                     "(Windows NT 10.0; Win64; x64)\r\nAccept: */*\r\nConnection: "
                     "keep-alive\r\n\r\n",
                     (unsigned)s->cport, name);
        memcpy(p, buf, (size_t)n);
        return (size_t)n;
    case K_HTTP_RESP: {
        if (!first) {
            return 0;
        }
        /* the body is what the message has after the header (whose length depends on it) */
        unsigned body = s->m_len;
        for (int k = 0; k < 3; k++) {
            n = snprintf(buf, sizeof(buf),
                         "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: "
                         "application/octet-stream\r\nContent-Length: %u\r\n\r\n",
                         body);
            body = s->m_len > (unsigned)n ? s->m_len - (unsigned)n : 0;
        }
        memcpy(p, buf, (size_t)n);
        return (size_t)n;
    }
    case K_SSH_CBANNER:
        memcpy(p, "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", 41);
        return 41;
    case K_SSH_SBANNER:
        memcpy(p, "SSH-2.0-OpenSSH_8.4p1 Debian-5\r\n", 33);
        return 33;
    case K_SSH_PKT:
        if (!first) {
            return 0;
        }
        put32(p, s->m_len > 4 ? s->m_len - 4 : 0);
        return 4;
    case K_RDP_CR: {
        static const char cookie[] = "Cookie: mstshash=user01\r\n";
        size_t cl = sizeof(cookie) - 1, o = 0;
        p[o++] = 3, p[o++] = 0;
        put16(p + o, (uint32_t)(4 + 7 + cl + 8)), o += 2;
        p[o++] = (uint8_t)(6 + cl + 8), p[o++] = 0xe0;
        memset(p + o, 0, 5), o += 5;
        memcpy(p + o, cookie, cl), o += cl;
        static const uint8_t neg[] = {0x01, 0x00, 0x08, 0x00, 0x03, 0x00, 0x00, 0x00};
        memcpy(p + o, neg, sizeof(neg)), o += sizeof(neg);
        return o;
    }
    case K_RDP_CC: {
        static const uint8_t cc[] = {0x03, 0x00, 0x00, 0x13, 0x0e, 0xd0, 0x00, 0x00, 0x12, 0x34,
                                     0x00, 0x02, 0x1f, 0x08, 0x00, 0x02, 0x00, 0x00, 0x00};
        memcpy(p, cc, sizeof(cc));
        return sizeof(cc);
    }
    case K_SMB_NEG:
    case K_SMB_NEGR:
    case K_SMB_CMD:
    case K_SMB_READR: {
        if (!first) {
            return 0;
        }
        p[0] = 0;
        put24(p + 1, s->m_len - 4);
        uint8_t *h = p + 4;
        memset(h, 0, 64);
        h[0] = 0xfe, h[1] = 'S', h[2] = 'M', h[3] = 'B';
        h[4] = 64;
        uint16_t cmd = s->m_kind == K_SMB_NEG || s->m_kind == K_SMB_NEGR ? 0
                       : s->msg < 4                                      ? 1
                       : s->msg < 6                                      ? 3
                                                                         : 8;
        h[12] = (uint8_t)cmd;
        h[14] = 1;
        if (s->m_dir == 1) {
            h[16] = 1; /* response */
        }
        le32(h + 24, s->msg);
        size_t o = 68;
        if (s->m_kind == K_SMB_READR) {
            /* READ response: structure size 17, data at offset 80, its length */
            memset(p + o, 0, 16);
            p[o] = 17, p[o + 2] = 80;
            le32(p + o + 4, s->m_len - 84);
            o += 16;
        }
        if (s->m_kind == K_SMB_NEG) {
            static const uint8_t neg[] = {0x24, 0x00, 0x04, 0x00, 0x01, 0x00,
                                          0x00, 0x00, 0x7f, 0x00, 0x00, 0x00};
            memcpy(p + o, neg, sizeof(neg)), o += sizeof(neg);
            fill_random(p + o, 16), o += 16; /* client GUID */
            memset(p + o, 0, 8), o += 8;
            static const uint8_t dialects[] = {0x02, 0x02, 0x10, 0x02, 0x00, 0x03, 0x02, 0x03};
            memcpy(p + o, dialects, sizeof(dialects)), o += sizeof(dialects);
        }
        return o;
    }
    case K_DNS_Q:
        return b_dns(p, s, false);
    case K_DNS_A:
        return b_dns(p, s, true);
    case K_NTP_REQ:
    case K_NTP_RESP:
        memset(p, 0, 48);
        p[0] = s->m_kind == K_NTP_REQ ? 0x23 : 0x24;
        if (s->m_kind == K_NTP_RESP) {
            p[1] = 2, p[2] = 6, p[3] = 0xe9;
            fill_random(p + 16, 32);
        } else {
            fill_random(p + 40, 8);
        }
        return 48;
    case K_SNMP_GET:
        return b_snmp(p, s, false);
    case K_SNMP_RESP:
        return b_snmp(p, s, true);
    case K_QUIC_INIT:
        return b_quic_long(p, false, 1200);
    case K_QUIC_SINIT:
        return b_quic_long(p, true, 1200);
    case K_QUIC_SHORT:
        p[0] = (uint8_t)(0x40 | below(32));
        fill_random(p + 1, 8);
        return 9;
    default:
        return 0;
    }
}

/* ---- frames ---- */

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    }
    if (i < n) {
        sum += (uint32_t)(p[i] << 8);
    }
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

static int write_record(gen_t *g, size_t len)
{
    uint8_t rec[16];
    int64_t us = g->t_ns / 1000;
    le32(rec, (uint32_t)(us / 1000000));
    le32(rec + 4, (uint32_t)(us % 1000000));
    le32(rec + 8, (uint32_t)len);
    le32(rec + 12, (uint32_t)len);
    if (fwrite(rec, 1, 16, g->out) != 16 || fwrite(g->frame, 1, len, g->out) != len) {
        return -1;
    }
    truth_t *t = &g->t;
    t->packets++;
    t->bytes += len;
    t->sizes[len <= 100 ? 0 : len <= 500 ? 1 : len <= 1000 ? 2 : len <= 1400 ? 3 : 4]++;
    return 0;
}

/* Builds and writes one packet of s in direction dir (0 client to server) with TCP flags
 * (ignored for UDP) and paylen payload bytes; head_first: the message's first segment. */
static int emit(gen_t *g, sess_t *s, int dir, uint8_t flags, uint32_t seq, size_t paylen,
                bool head_first, bool head)
{
    uint8_t *f = g->frame;
    size_t o = 0;
    memcpy(f, dir == 0 ? s->smac : s->cmac, 6);
    memcpy(f + 6, dir == 0 ? s->cmac : s->smac, 6);
    o = 12;
    if (s->vlan != 0) {
        put16(f + o, 0x8100), put16(f + o + 2, s->vlan), o += 4;
        g->t.vlan_packets++;
    }
    put16(f + o, s->v6 ? 0x86dd : 0x0800), o += 2;
    size_t ip = o, iphl = s->v6 ? 40 : 20;
    size_t l4 = ip + iphl;
    size_t l4hl;
    bool syn = (flags & 0x02) != 0;
    if (s->proto == 6) {
        l4hl = syn ? 40 : 32;
    } else {
        l4hl = 8;
    }
    size_t pay = l4 + l4hl;
    if (pay + paylen > sizeof(g->frame)) {
        paylen = sizeof(g->frame) - pay;
    }
    /* payload: random bytes, the kind's head over them */
    if (paylen > 0) {
        memcpy(f + pay, g->fill + below((uint32_t)(sizeof(g->fill) - paylen)), paylen);
        if (head) {
            uint8_t tmp[2048];
            size_t h = build_head(s, tmp, head_first);
            memcpy(f + pay, tmp, h < paylen ? h : paylen);
        }
    }
    size_t l4len = l4hl + paylen;
    const uint8_t *src = dir == 0 ? s->cip : s->sip, *dst = dir == 0 ? s->sip : s->cip;
    size_t alen = s->v6 ? 16 : 4;
    if (s->v6) {
        put32(f + ip, 0x60000000u | (s->cport & 0xfffff));
        put16(f + ip + 4, (uint32_t)l4len);
        f[ip + 6] = s->proto;
        f[ip + 7] = dir == 0 ? s->cttl : s->sttl;
        memcpy(f + ip + 8, src, 16);
        memcpy(f + ip + 24, dst, 16);
        g->t.v6_packets++;
    } else {
        f[ip] = 0x45, f[ip + 1] = 0;
        put16(f + ip + 2, (uint32_t)(20 + l4len));
        put16(f + ip + 4, s->ipid[dir]++);
        put16(f + ip + 6, 0x4000);
        f[ip + 8] = dir == 0 ? s->cttl : s->sttl;
        f[ip + 9] = s->proto;
        put16(f + ip + 10, 0);
        memcpy(f + ip + 12, src, 4);
        memcpy(f + ip + 16, dst, 4);
        put16(f + ip + 10, csum_fold(csum_add(0, f + ip, 20)));
    }
    uint16_t sp = dir == 0 ? s->cport : s->sport, dp = dir == 0 ? s->sport : s->cport;
    put16(f + l4, sp);
    put16(f + l4 + 2, dp);
    size_t ck;
    if (s->proto == 6) {
        put32(f + l4 + 4, seq);
        put32(f + l4 + 8, (flags & 0x10) != 0 ? s->seq[1 - dir] : 0);
        f[l4 + 12] = (uint8_t)((l4hl / 4) << 4);
        f[l4 + 13] = flags;
        put16(f + l4 + 14, syn ? 64240 : 502);
        put16(f + l4 + 16, 0);
        put16(f + l4 + 18, 0);
        uint8_t *op = f + l4 + 20;
        uint32_t tsv = (uint32_t)(g->t_ns / 1000000) + (dir == 0 ? 0u : 7777u);
        if (syn) {
            static const uint8_t so[] = {0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0,   0, 0,
                                         0,    0,    0,    0,    0,    0x01, 0x03, 0x03, 0x07};
            memcpy(op, so, sizeof(so));
            put32(op + 8, tsv);
        } else {
            op[0] = 1, op[1] = 1, op[2] = 8, op[3] = 10;
            put32(op + 4, tsv);
            put32(op + 8, tsv - 3);
        }
        ck = l4 + 16;
    } else {
        put16(f + l4 + 4, (uint32_t)l4len);
        put16(f + l4 + 6, 0);
        ck = l4 + 6;
    }
    uint32_t sum = csum_add(0, src, alen);
    sum = csum_add(sum, dst, alen);
    sum += s->proto;
    sum += (uint32_t)l4len;
    uint16_t c = csum_fold(csum_add(sum, f + l4, l4len));
    if (s->proto == 17 && c == 0) {
        c = 0xffff;
    }
    put16(f + ck, c);
    size_t len = l4 + l4len;
    if (len < 60) {
        memset(f + len, 0, 60 - len);
        len = 60;
    }
    g->t.apps[s->app]++;
    if (s->pkts++ == 0) {
        g->t.flows++;
        if (s->proto == 6) {
            g->t.tcp_flows++;
        } else {
            g->t.udp_flows++;
        }
    }
    return write_record(g, len);
}

/* Emits the next packet of s; returns 1 when the session is over, -1 on a write error. */
static int step(gen_t *g, sess_t *s)
{
    int rc;
    if (s->hs < 3) {
        /* SYN, SYN-ACK, ACK */
        static const uint8_t fl[3] = {0x02, 0x12, 0x10};
        int dir = s->hs == 1 ? 1 : 0;
        rc = emit(g, s, dir, fl[s->hs], s->seq[dir], 0, false, false);
        if (s->hs < 2) {
            s->seq[dir]++;
        }
        s->hs++;
        if (s->hs == 3) {
            plan_msg(s);
        }
        return rc;
    }
    if (s->closing != 0) {
        if (s->closing == 9) {
            rc = emit(g, s, 1, 0x14, s->seq[1], 0, false, false);
            return rc < 0 ? rc : 1;
        }
        /* FIN from the client, FIN from the server, last ACK */
        int dir = s->closing == 2 ? 1 : 0;
        uint8_t flags = s->closing == 3 ? 0x10 : 0x11;
        rc = emit(g, s, dir, flags, s->seq[dir], 0, false, false);
        if (s->closing < 3) {
            s->seq[dir]++;
        }
        s->closing++;
        return rc < 0 ? rc : s->closing > 3;
    }
    if (s->retx) {
        s->retx = 0;
        g->t.retx++;
        return emit(g, s, s->m_dir, 0x18, s->retx_seq, s->retx_len, false, false);
    }
    if (s->owed) {
        s->owed = 0;
        s->segs_since_ack = 0;
        int dir = 1 - s->m_dir;
        if (s->proto == 6) {
            rc = emit(g, s, dir, 0x10, s->seq[dir], 0, false, false);
        } else {
            /* QUIC: a small short-header packet carries the ack */
            uint8_t k = s->m_kind;
            s->m_kind = K_QUIC_SHORT;
            rc = emit(g, s, dir, 0, 0, between(30, 45), true, true);
            s->m_kind = k;
        }
        if (rc == 0 && s->m_left == 0) {
            goto next_message;
        }
        return rc;
    }
    {
        bool first = s->m_left == s->m_len;
        if (s->m_len == 0) {
            /* natural length: the kind decides */
            uint8_t tmp[2048];
            s->m_len = (uint32_t)build_head(s, tmp, true);
            s->m_left = s->m_len;
            first = true;
        }
        uint32_t mss = s->proto == 6 ? 1448 : (s->v6 ? 1232 : 1252);
        if (s->app == APP_QUIC && s->m_kind != K_QUIC_SHORT) {
            mss = 1200;
        }
        uint32_t seg = s->m_left < mss ? s->m_left : mss;
        bool head = first || s->app == APP_QUIC;
        uint8_t flags = (uint8_t)(seg == s->m_left ? 0x18 : 0x10);
        uint32_t seq = s->seq[s->m_dir];
        rc = emit(g, s, s->m_dir, flags, seq, seg, first, head);
        if (rc < 0) {
            return rc;
        }
        s->m_left -= seg;
        if (s->proto == 6) {
            s->seq[s->m_dir] += seg;
            if (s->m_left > 0 && chance(0.002)) {
                s->retx = 1, s->retx_seq = seq, s->retx_len = seg;
                return 0;
            }
        }
        s->segs_since_ack++;
        bool tcp_or_quic = s->proto == 6 || s->app == APP_QUIC;
        if (tcp_or_quic && s->m_left > 0 && s->segs_since_ack >= 2) {
            s->owed = 1;
            return 0;
        }
        if (s->m_left > 0) {
            return 0;
        }
        /* message done: a pure ACK unless the other side answers next */
        if (tcp_or_quic && !(s->msg + 1 < s->nmsg && msg_dir(s, s->msg + 1) != s->m_dir)) {
            s->owed = 1;
            return 0;
        }
    }
next_message:
    s->msg++;
    s->segs_since_ack = 0;
    if (s->msg >= s->nmsg) {
        if (s->proto == 17) {
            return 1;
        }
        s->closing = chance(0.03) ? 9 : 1;
        return 0;
    }
    plan_msg(s);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: kvl-capgen --out FILE.pcap [--packets N (5000000)] [--hosts N (5000)]\n"
               "                  [--remote N (4000)] [--seed S (1)] [--concurrency K (2000)]\n"
               "                  [--pps R (150000, for the timestamps)]\n");
}

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *v)
{
    char *end;
    unsigned long long x = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || x < lo || x > hi) {
        return false;
    }
    *v = x;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, NULL, 'o'},
        {"packets", required_argument, NULL, 'n'},
        {"hosts", required_argument, NULL, 'H'},
        {"remote", required_argument, NULL, 'r'},
        {"seed", required_argument, NULL, 's'},
        {"concurrency", required_argument, NULL, 'k'},
        {"pps", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static gen_t g;
    const char *out = NULL;
    uint64_t packets = 5000000, hosts = 5000, remote = 4000, seed = 1, conc = 2000, pps = 150000;
    int c, li = 0;
    while ((c = getopt_long(argc, argv, "", opts, &li)) != -1) {
        bool ok = true;
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 'n':
            ok = parse_u64(optarg, 1, 4000000000ULL, &packets);
            break;
        case 'H':
            ok = parse_u64(optarg, 1, 4000000, &hosts);
            break;
        case 'r':
            ok = parse_u64(optarg, 1, 4000000, &remote);
            break;
        case 's':
            ok = parse_u64(optarg, 0, UINT64_MAX, &seed);
            break;
        case 'k':
            ok = parse_u64(optarg, 1, 1000000, &conc);
            break;
        case 'p':
            ok = parse_u64(optarg, 1, 100000000, &pps);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "kvl-capgen: bad value for --%s: %s\n", opts[li].name, optarg);
            return 2;
        }
    }
    if (out == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    rng_state = seed;
    g.hosts = (uint32_t)hosts;
    g.remote = (uint32_t)remote;
    g.concurrency = (uint32_t)conc;
    g.pps = (double)pps;
    g.lport = calloc(hosts, sizeof(uint16_t));
    g.rport = calloc(remote, sizeof(uint16_t));
    sess_t *ss = calloc(conc, sizeof(sess_t));
    if (g.lport == NULL || g.rport == NULL || ss == NULL) {
        fprintf(stderr, "kvl-capgen: out of memory\n");
        return 1;
    }
    for (uint64_t i = 0; i < hosts; i++) {
        g.lport[i] = (uint16_t)(32768 + below(28000));
    }
    for (uint64_t i = 0; i < remote; i++) {
        g.rport[i] = (uint16_t)(32768 + below(28000));
    }
    g.nms_port = (uint16_t)(32768 + below(28000));
    fill_random(g.fill, sizeof(g.fill));
    g.out = fopen(out, "wb");
    if (g.out == NULL) {
        perror(out);
        return 1;
    }
    static char obuf[1 << 20];
    setvbuf(g.out, obuf, _IOFBF, sizeof(obuf));
    uint8_t hdr[24];
    le32(hdr, 0xa1b2c3d4u);
    hdr[4] = 2, hdr[5] = 0, hdr[6] = 4, hdr[7] = 0;
    memset(hdr + 8, 0, 8);
    le32(hdr + 16, 65535);
    le32(hdr + 20, 1);
    int rc = fwrite(hdr, 1, sizeof(hdr), g.out) == sizeof(hdr) ? 0 : -1;
    g.t_ns = INT64_C(1767603600) * 1000000000; /* 2026-01-05 09:00:00 UTC */
    int64_t start = g.t_ns;
    for (uint64_t i = 0; i < conc; i++) {
        sess_start(&g, &ss[i]);
    }
    double mean_gap_ns = 1e9 / g.pps;
    /* One packet per turn, from a session picked at random: bounded by --packets. */
    while (rc == 0 && g.t.packets < packets) {
        sess_t *s = &ss[below((uint32_t)conc)];
        int r = step(&g, s);
        if (r < 0) {
            rc = -1;
            break;
        }
        if (r == 1) {
            sess_start(&g, s);
        }
        g.t_ns += (int64_t)(-log(1.0 - unit()) * mean_gap_ns) + 1;
    }
    if (rc != 0 || fclose(g.out) != 0) {
        perror(out);
        return 1;
    }
    double dur = (double)(g.t_ns - start) / 1e9;
    printf("TRUTH packets=%" PRIu64 " bytes=%" PRIu64 " flows=%" PRIu64 " tcp_flows=%" PRIu64
           " udp_flows=%" PRIu64 " ipv6_packets=%" PRIu64 " vlan_packets=%" PRIu64
           " retransmissions=%" PRIu64 " duration_s=%.3f mean_bytes=%.1f port_wraps=%" PRIu64 "\n",
           g.t.packets, g.t.bytes, g.t.flows, g.t.tcp_flows, g.t.udp_flows, g.t.v6_packets,
           g.t.vlan_packets, g.t.retx, dur, (double)g.t.bytes / (double)g.t.packets,
           g.t.port_wraps);
    printf("SIZES le100=%" PRIu64 " 101_500=%" PRIu64 " 501_1000=%" PRIu64 " 1001_1400=%" PRIu64
           " gt1400=%" PRIu64 "\n",
           g.t.sizes[0], g.t.sizes[1], g.t.sizes[2], g.t.sizes[3], g.t.sizes[4]);
    printf("APPS");
    for (int a = 0; a < APP_N; a++) {
        printf(" %s=%" PRIu64, app_names[a], g.t.apps[a]);
    }
    printf("\n");
    free(ss);
    free(g.lport);
    free(g.rport);
    return 0;
}
