/*
 * probe_icmp.c — ICMP / ICMPv6 echo sockets on the libuv loop (see probe_icmp.h).
 *
 * Per family: a socket (datagram if allowed, else raw), a uv_poll_t on it, a send counter
 * that matches the kernel's OPT_ID timestamp key, and a ring of the kernel's TX stamps by
 * key. A readable (or error) event first drains the error queue (TX stamps), then the
 * receive queue (replies), so a reply normally finds its probe's kernel send time.
 */
#include "probe_icmp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#include <netinet/icmp6.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "kvl.h"
#include "log.h"

#define MOD "probe"
#define TX_RING 4096   /* kernel TX stamps kept, by key */
#define RX_BUF 65536   /* one received datagram */
#define DRAIN_MAX 1024 /* datagrams read per event, each queue */
#ifndef ICMP_FILTER
#define ICMP_FILTER 1 /* Linux raw ICMP sockets: bit mask of types to drop */
#endif
#define ICMP4_ECHO 8
#define ICMP4_ECHOREPLY 0

typedef struct tx_slot {
    uint32_t key;
    bool valid;
    int64_t ns; /* 0: no kernel stamp (yet) */
} tx_slot_t;

typedef struct sock {
    kvl_icmp_t *ic;
    int family;
    int fd;
    bool open;
    bool failed; /* opening failed (logged once) */
    bool raw;
    bool tstamping; /* SO_TIMESTAMPING (else SO_TIMESTAMPNS) */
    int ident;
    uint32_t next_key;
    uv_poll_t poll;
    tx_slot_t ring[TX_RING];
} sock_t;

struct kvl_icmp {
    uv_loop_t *loop;
    size_t size;
    kvl_icmp_reply_cb cb;
    void *arg;
    uint64_t cookie;
    sock_t s4, s6;
    uint8_t *tx;
    uint8_t rx[RX_BUF];
    int closing;
    kvl_icmp_stats_t st;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

kvl_icmp_t *kvl_icmp_new(uv_loop_t *loop, size_t size, kvl_icmp_reply_cb cb, void *arg)
{
    if (size < KVL_ICMP_PAYLOAD_MIN) {
        size = KVL_ICMP_PAYLOAD_MIN;
    }
    kvl_icmp_t *ic = calloc(1, sizeof(*ic));
    if (ic == NULL || (ic->tx = calloc(1, 8 + size)) == NULL) {
        free(ic);
        return NULL;
    }
    ic->loop = loop;
    ic->size = size;
    ic->cb = cb;
    ic->arg = arg;
    if (getrandom(&ic->cookie, sizeof(ic->cookie), 0) != (ssize_t)sizeof(ic->cookie)) {
        ic->cookie = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 32);
    }
    ic->s4 = (sock_t){.ic = ic, .family = AF_INET, .fd = -1};
    ic->s6 = (sock_t){.ic = ic, .family = AF_INET6, .fd = -1};
    return ic;
}

static void on_closed(uv_handle_t *h)
{
    sock_t *s = h->data;
    kvl_icmp_t *ic = s->ic;
    close(s->fd);
    s->fd = -1;
    if (--ic->closing == 0) {
        free(ic->tx);
        free(ic);
    }
}

void kvl_icmp_free(kvl_icmp_t *ic)
{
    if (ic == NULL) {
        return;
    }
    sock_t *socks[2] = {&ic->s4, &ic->s6};
    for (int i = 0; i < 2; i++) {
        if (socks[i]->open) {
            ic->closing++;
        }
    }
    if (ic->closing == 0) {
        free(ic->tx);
        free(ic);
        return;
    }
    for (int i = 0; i < 2; i++) {
        if (socks[i]->open) {
            socks[i]->open = false;
            uv_close((uv_handle_t *)&socks[i]->poll, on_closed);
        }
    }
}

static sock_t *sock_of(kvl_icmp_t *ic, int family)
{
    return family == AF_INET ? &ic->s4 : family == AF_INET6 ? &ic->s6 : NULL;
}

static void ping_group_range(char *out, size_t len)
{
    FILE *f = fopen("/proc/sys/net/ipv4/ping_group_range", "r");
    unsigned lo = 0, hi = 0;
    if (f != NULL && fscanf(f, "%u %u", &lo, &hi) == 2) {
        snprintf(out, len, "%u %u", lo, hi);
    } else {
        snprintf(out, len, "unreadable");
    }
    if (f != NULL) {
        fclose(f);
    }
}

static void on_poll(uv_poll_t *h, int status, int events);
static void drain_errqueue(sock_t *s);

static void setup_timestamps(sock_t *s)
{
    int flags = SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE |
                SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY;
    if (setsockopt(s->fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof(flags)) == 0) {
        s->tstamping = true;
        return;
    }
    int on = 1;
    if (setsockopt(s->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) != 0) {
        KVL_LOG_WARN(MOD, NULL, "no kernel receive timestamps: %s", strerror(errno));
    }
}

int kvl_icmp_open(kvl_icmp_t *ic, int family)
{
    sock_t *s = sock_of(ic, family);
    if (s == NULL) {
        return -EAFNOSUPPORT;
    }
    if (s->open) {
        return 0;
    }
    const char *fam = family == AF_INET ? "ICMP" : "ICMPv6";
    int proto = family == AF_INET ? IPPROTO_ICMP : IPPROTO_ICMPV6;
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
    int dgram_err = fd < 0 ? errno : 0, raw_err = 0;
    bool raw = false;
    if (fd < 0) {
        fd = socket(family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
        raw_err = fd < 0 ? errno : 0;
        raw = true;
    }
    if (fd < 0) {
        if (!s->failed) {
            char range[64];
            ping_group_range(range, sizeof(range));
            KVL_LOG_ERROR(MOD, NULL,
                          "cannot open an %s socket: datagram socket refused (%s; group %u "
                          "must be inside net.ipv4.ping_group_range, now %s) and raw socket "
                          "refused (%s; needs root or CAP_NET_RAW)",
                          fam, strerror(dgram_err), (unsigned)getegid(), range, strerror(raw_err));
        }
        s->failed = true;
        return -raw_err;
    }
    s->fd = fd;
    s->raw = raw;
    s->next_key = 0;
    if (!raw) {
        /* Binding gives the socket its echo identifier now, so it can be reported. */
        struct sockaddr_storage ss;
        memset(&ss, 0, sizeof(ss));
        ss.ss_family = (sa_family_t)family;
        socklen_t sl = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        if (bind(fd, (struct sockaddr *)&ss, sl) == 0 &&
            getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
            s->ident = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                               : ((struct sockaddr_in6 *)&ss)->sin6_port);
        }
    } else {
        s->ident = (int)((ic->cookie >> 16) & 0xffff);
        if (family == AF_INET) {
            uint32_t drop = ~(1u << ICMP4_ECHOREPLY);
            setsockopt(fd, SOL_RAW, ICMP_FILTER, &drop, sizeof(drop));
        } else {
            struct icmp6_filter f;
            ICMP6_FILTER_SETBLOCKALL(&f);
            ICMP6_FILTER_SETPASS(ICMP6_ECHO_REPLY, &f);
            setsockopt(fd, IPPROTO_ICMPV6, ICMP6_FILTER, &f, sizeof(f));
        }
    }
    setup_timestamps(s);
    int rc = uv_poll_init(ic->loop, &s->poll, fd);
    if (rc == 0) {
        s->poll.data = s;
        rc = uv_poll_start(&s->poll, UV_READABLE, on_poll);
    }
    if (rc != 0) {
        KVL_LOG_ERROR(MOD, NULL, "cannot watch the %s socket: %s", fam, uv_strerror(rc));
        close(fd);
        s->fd = -1;
        return rc;
    }
    s->open = true;
    KVL_LOG_INFO(MOD, NULL, "%s echo over a %s socket (identifier %d), %s timestamps", fam,
                 raw ? "raw" : "datagram", s->ident,
                 s->tstamping ? "kernel send and receive" : "kernel receive");
    return 0;
}

const char *kvl_icmp_kind(const kvl_icmp_t *ic, int family)
{
    const sock_t *s = family == AF_INET ? &ic->s4 : &ic->s6;
    return !s->open ? "closed" : s->raw ? "raw" : "dgram";
}

int kvl_icmp_ident(const kvl_icmp_t *ic, int family)
{
    return family == AF_INET ? ic->s4.ident : ic->s6.ident;
}

void kvl_icmp_get_stats(const kvl_icmp_t *ic, kvl_icmp_stats_t *out)
{
    *out = ic->st;
}

static uint16_t inet_checksum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2) {
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    }
    if (len & 1) {
        sum += (uint32_t)p[len - 1] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

int kvl_icmp_send(kvl_icmp_t *ic, const struct sockaddr *to, uint32_t target, uint32_t seq)
{
    sock_t *s = sock_of(ic, to->sa_family);
    if (s == NULL || !s->open) {
        return -EBADF;
    }
    uint8_t *b = ic->tx;
    size_t len = 8 + ic->size;
    b[0] = s->family == AF_INET ? ICMP4_ECHO : ICMP6_ECHO_REQUEST;
    b[1] = 0;
    b[2] = b[3] = 0;
    b[4] = (uint8_t)(s->ident >> 8);
    b[5] = (uint8_t)s->ident;
    b[6] = (uint8_t)(seq >> 8);
    b[7] = (uint8_t)seq;
    uint32_t key = s->next_key, zero = 0;
    memcpy(b + 8, &ic->cookie, 8);
    memcpy(b + 16, &target, 4);
    memcpy(b + 20, &seq, 4);
    memcpy(b + 24, &key, 4);
    memcpy(b + 28, &zero, 4);
    int64_t t = now_ns();
    memcpy(b + 32, &t, 8);
    if (s->family == AF_INET && s->raw) {
        uint16_t c = inet_checksum(b, len);
        b[2] = (uint8_t)(c >> 8);
        b[3] = (uint8_t)c;
    }
    socklen_t tl = s->family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    ssize_t n = sendto(s->fd, b, len, 0, to, tl);
    if (n < 0) {
        ic->st.send_errors++;
        return -errno;
    }
    tx_slot_t *slot = &s->ring[key % TX_RING];
    *slot = (tx_slot_t){.key = key, .valid = true, .ns = 0};
    s->next_key++;
    ic->st.sent++;
    /* A software TX stamp is usually queued by the time sendto returns: take it now, so
     * the error queue rarely wakes the loop on its own. */
    if (s->tstamping) {
        drain_errqueue(s);
    }
    return 0;
}

int kvl_icmp_parse(const uint8_t *data, size_t len, int family, bool ip_header, int ident,
                   uint64_t cookie, kvl_icmp_echo_t *out)
{
    const uint8_t *p = data;
    if (ip_header) {
        if (len < 20 || (p[0] >> 4) != 4) {
            return -1;
        }
        size_t ihl = (size_t)(p[0] & 0x0f) * 4;
        if (ihl < 20 || ihl > len) {
            return -1;
        }
        p += ihl;
        len -= ihl;
    }
    if (len < 8 + KVL_ICMP_PAYLOAD_MIN) {
        return -1;
    }
    uint8_t want = family == AF_INET ? ICMP4_ECHOREPLY : ICMP6_ECHO_REPLY;
    if (p[0] != want || p[1] != 0) {
        return -1;
    }
    if (ident >= 0 && (int)(p[4] << 8 | p[5]) != ident) {
        return -1;
    }
    if (memcmp(p + 8, &cookie, 8) != 0) {
        return -1;
    }
    memcpy(&out->target, p + 16, 4);
    memcpy(&out->seq, p + 20, 4);
    memcpy(&out->key, p + 24, 4);
    memcpy(&out->sent_ns, p + 32, 8);
    if ((out->seq & 0xffff) != (uint32_t)(p[6] << 8 | p[7])) {
        return -1;
    }
    return 0;
}

static int64_t ts_ns(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* TX stamps from the error queue. */
static void drain_errqueue(sock_t *s)
{
    for (int i = 0; i < DRAIN_MAX; i++) {
        char ctrl[512];
        uint8_t dummy[64];
        struct iovec iov = {dummy, sizeof(dummy)};
        struct msghdr msg = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctrl, .msg_controllen = sizeof(ctrl)};
        if (recvmsg(s->fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) {
            return;
        }
        int64_t ns = 0;
        const struct sock_extended_err *ee = NULL;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPING) {
                struct scm_timestamping tss;
                memcpy(&tss, CMSG_DATA(c), sizeof(tss));
                ns = ts_ns(&tss.ts[0]);
            } else if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR) ||
                       (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR)) {
                ee = (const struct sock_extended_err *)CMSG_DATA(c);
            }
        }
        if (ee == NULL || ns == 0) {
            continue;
        }
        struct sock_extended_err e;
        memcpy(&e, ee, sizeof(e));
        if (e.ee_origin != SO_EE_ORIGIN_TIMESTAMPING || e.ee_info != SCM_TSTAMP_SND) {
            continue;
        }
        tx_slot_t *slot = &s->ring[e.ee_data % TX_RING];
        if (slot->valid && slot->key == e.ee_data) {
            slot->ns = ns;
        }
    }
}

static void drain_replies(sock_t *s)
{
    kvl_icmp_t *ic = s->ic;
    for (int i = 0; i < DRAIN_MAX && s->open; i++) {
        char ctrl[512];
        struct sockaddr_storage from;
        struct iovec iov = {ic->rx, sizeof(ic->rx)};
        struct msghdr msg = {.msg_name = &from,
                             .msg_namelen = sizeof(from),
                             .msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = ctrl,
                             .msg_controllen = sizeof(ctrl)};
        ssize_t n = recvmsg(s->fd, &msg, MSG_DONTWAIT);
        if (n < 0) {
            return;
        }
        int64_t rx = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPING) {
                struct scm_timestamping tss;
                memcpy(&tss, CMSG_DATA(c), sizeof(tss));
                rx = ts_ns(&tss.ts[0]);
            } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                struct timespec ts;
                memcpy(&ts, CMSG_DATA(c), sizeof(ts));
                rx = ts_ns(&ts);
            }
        }
        bool rx_kernel = rx != 0;
        if (!rx_kernel) {
            rx = now_ns();
        }
        kvl_icmp_echo_t e;
        if (kvl_icmp_parse(ic->rx, (size_t)n, s->family, s->raw && s->family == AF_INET,
                           s->raw ? s->ident : -1, ic->cookie, &e) != 0) {
            ic->st.foreign++;
            continue;
        }
        const tx_slot_t *slot = &s->ring[e.key % TX_RING];
        bool tx_kernel = slot->valid && slot->key == e.key && slot->ns != 0;
        int64_t tx = tx_kernel ? slot->ns : e.sent_ns;
        ic->st.replies++;
        if (tx_kernel) {
            ic->st.tx_kernel++;
        } else {
            ic->st.tx_user++;
        }
        kvl_icmp_reply_t r = {.target = e.target,
                              .seq = e.seq,
                              .rtt_ns = rx - tx,
                              .tx_kernel = tx_kernel,
                              .rx_kernel = rx_kernel,
                              .from = (const struct sockaddr *)&from};
        ic->cb(ic->arg, &r);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    KVL_UNUSED(events);
    sock_t *s = h->data;
    if (s->tstamping) {
        drain_errqueue(s);
    }
    drain_replies(s);
    /* A TX stamp may be queued after the reply was read; it is for nothing now, but an
     * undrained error queue would wake the loop again at once. */
    if (s->tstamping && s->open) {
        drain_errqueue(s);
    }
    /* libuv reports a pending error queue (POLLERR) as UV_EBADF and stops watching: the
     * queue is drained, so watch again. */
    if (status < 0 && s->open) {
        int rc = uv_poll_start(&s->poll, UV_READABLE, on_poll);
        if (rc != 0) {
            KVL_LOG_ERROR(MOD, NULL, "cannot watch the ICMP socket again: %s", uv_strerror(rc));
        }
    }
}
