/*
 * probe_stamp.c — the STAMP reflector and sender sessions on the libuv loop (see
 * probe_stamp.h). Packet layouts and arithmetic live in stamp.c.
 *
 * Both sides watch their sockets with uv_poll_t and read with recvmsg, for the kernel's
 * receive timestamp (SCM_TIMESTAMPNS), the received TTL and, on the reflector, the address
 * the packet was sent to (so the answer leaves from it).
 */
#include "probe_stamp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kvl.h"
#include "log.h"

#define MOD "stamp"
#define DRAIN_MAX 256 /* datagrams read per event */
#define CTRL_LEN 256

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------------------ clock ----------- */

void kvl_stamp_clock_init(kvl_stamp_clock_t *c, int mode, int64_t assumed_err_ns,
                          int64_t max_err_ns)
{
    memset(c, 0, sizeof(*c));
    c->mode = mode;
    c->assumed_err_ns = assumed_err_ns;
    c->max_err_ns = max_err_ns;
}

const kvl_clock_sync_t *kvl_stamp_clock_get(kvl_stamp_clock_t *c, uint64_t now_ms)
{
    if (c->read_ms == 0 || now_ms >= c->read_ms + 1000) {
        bool was = c->state.synced, first = c->read_ms == 0;
        kvl_clock_sync_read(c->mode, c->assumed_err_ns, c->max_err_ns, &c->state);
        c->read_ms = now_ms ? now_ms : 1;
        if (first || was != c->state.synced) {
            KVL_LOG_INFO(MOD, NULL, "clock %s: %s (estimated error %lldus)",
                         c->state.synced ? "synchronised" : "not synchronised", c->state.why,
                         (long long)(c->state.err_ns / 1000));
        }
    }
    return &c->state;
}

uint16_t kvl_stamp_clock_err(const kvl_clock_sync_t *s)
{
    /* Unsynchronised with no estimate: the largest error the field can say. */
    if (s->err_ns < 0) {
        return (uint16_t)((s->synced ? 0x8000u : 0u) | 0x3fffu);
    }
    return kvl_stamp_err_encode(s->synced, s->err_ns);
}

/* Reads one datagram with its kernel receive time, TTL and destination address. Returns
 * the length or -1 (errno). */
typedef struct rx_meta {
    int64_t rx_ns;
    bool rx_kernel;
    int ttl;
    bool have_dst;
    struct in_addr dst4;
    struct in6_addr dst6;
    int ifindex;
} rx_meta_t;

static ssize_t recv_one(int fd, uint8_t *buf, size_t cap, struct sockaddr_storage *from,
                        rx_meta_t *m)
{
    char ctrl[CTRL_LEN];
    struct iovec iov = {buf, cap};
    struct msghdr msg = {.msg_name = from,
                         .msg_namelen = sizeof(*from),
                         .msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = ctrl,
                         .msg_controllen = sizeof(ctrl)};
    ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) {
        return -1;
    }
    memset(m, 0, sizeof(*m));
    m->ttl = -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof(ts));
            m->rx_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
            m->rx_kernel = true;
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) {
            int v;
            memcpy(&v, CMSG_DATA(c), sizeof(v));
            m->ttl = v;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT) {
            int v;
            memcpy(&v, CMSG_DATA(c), sizeof(v));
            m->ttl = v;
        } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            m->dst4 = pi.ipi_addr;
            m->ifindex = pi.ipi_ifindex;
            m->have_dst = true;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            m->dst6 = pi.ipi6_addr;
            m->ifindex = (int)pi.ipi6_ifindex;
            m->have_dst = true;
        }
    }
    if (!m->rx_kernel) {
        m->rx_ns = now_ns();
    }
    return n;
}

/* --------------------------------------------------------------- reflector ---------- */

typedef struct rsock {
    kvl_stamp_reflector_t *r;
    int family;
    int fd;
    bool open;
    uv_poll_t poll;
} rsock_t;

struct kvl_stamp_reflector {
    uv_loop_t *loop;
    kvl_stamp_clock_t *clock;
    int port;
    rsock_t s4, s6;
    int closing;
    kvl_stamp_reflector_stats_t st;
    uint8_t rx[KVL_STAMP_MAX + 1];
    uint8_t tx[KVL_STAMP_MAX];
};

/* Answers one datagram. Returns false when the socket had nothing more to read. */
static bool reflect_one(rsock_t *s)
{
    kvl_stamp_reflector_t *r = s->r;
    struct sockaddr_storage from;
    rx_meta_t m;
    ssize_t n = recv_one(s->fd, r->rx, sizeof(r->rx), &from, &m);
    if (n < 0) {
        return errno != EAGAIN && errno != EWOULDBLOCK;
    }
    kvl_stamp_sender_pkt_t in;
    if (kvl_stamp_sender_parse(r->rx, (size_t)n, &in) != 0) {
        r->st.malformed++;
        return true;
    }
    const kvl_clock_sync_t *cs = kvl_stamp_clock_get(r->clock, uv_now(r->loop));
    int len = kvl_stamp_reflect(r->tx, sizeof(r->tx), (size_t)n, &in,
                                kvl_stamp_ntp_from_ns(m.rx_ns), kvl_stamp_clock_err(cs),
                                (uint8_t)(m.ttl >= 0 && m.ttl <= 255 ? m.ttl : 0));
    if (len < 0) {
        r->st.malformed++;
        return true;
    }
    char ctrl[CTRL_LEN];
    memset(ctrl, 0, sizeof(ctrl));
    struct iovec iov = {r->tx, (size_t)len};
    struct msghdr msg = {.msg_name = &from,
                         .msg_namelen = s->family == AF_INET ? sizeof(struct sockaddr_in)
                                                             : sizeof(struct sockaddr_in6),
                         .msg_iov = &iov,
                         .msg_iovlen = 1};
    if (m.have_dst) {
        msg.msg_control = ctrl;
        struct cmsghdr *c = (struct cmsghdr *)ctrl;
        if (s->family == AF_INET) {
            struct in_pktinfo pi = {.ipi_ifindex = 0, .ipi_spec_dst = m.dst4};
            c->cmsg_level = IPPROTO_IP;
            c->cmsg_type = IP_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof(pi));
            memcpy(CMSG_DATA(c), &pi, sizeof(pi));
            msg.msg_controllen = CMSG_SPACE(sizeof(pi));
        } else {
            struct in6_pktinfo pi = {.ipi6_addr = m.dst6, .ipi6_ifindex = 0};
            /* A link-local destination needs its interface. */
            if (IN6_IS_ADDR_LINKLOCAL(&m.dst6)) {
                pi.ipi6_ifindex = (unsigned)m.ifindex;
            }
            c->cmsg_level = IPPROTO_IPV6;
            c->cmsg_type = IPV6_PKTINFO;
            c->cmsg_len = CMSG_LEN(sizeof(pi));
            memcpy(CMSG_DATA(c), &pi, sizeof(pi));
            msg.msg_controllen = CMSG_SPACE(sizeof(pi));
        }
    }
    /* T3: the last field written, then straight to the kernel. */
    kvl_stamp_reflect_set_t3(r->tx, kvl_stamp_ntp_from_ns(now_ns()));
    if (sendmsg(s->fd, &msg, MSG_DONTWAIT) < 0) {
        r->st.send_errors++;
    } else {
        r->st.answered++;
    }
    return true;
}

/* libuv reports a pending socket error (POLLERR: an ICMP error queued on the socket) as a
 * negative status and stops watching; reading clears it, so watch again. */
static void rewatch(uv_poll_t *h, int status, bool open, uv_poll_cb cb)
{
    if (status < 0 && open) {
        int rc = uv_poll_start(h, UV_READABLE, cb);
        if (rc != 0) {
            KVL_LOG_ERROR(MOD, NULL, "cannot watch a STAMP socket again: %s", uv_strerror(rc));
        }
    }
}

static void on_reflector_poll(uv_poll_t *h, int status, int events)
{
    KVL_UNUSED(events);
    rsock_t *s = h->data;
    for (int i = 0; i < DRAIN_MAX && s->open && reflect_one(s); i++) {
    }
    rewatch(h, status, s->open, on_reflector_poll);
}

static int open_reflector_sock(kvl_stamp_reflector_t *r, rsock_t *s, int family)
{
    s->r = r;
    s->family = family;
    s->fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        return -errno;
    }
    int on = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)r->port);
        a->sin_addr.s_addr = htonl(INADDR_ANY);
        len = sizeof(*a);
        setsockopt(s->fd, IPPROTO_IP, IP_RECVTTL, &on, sizeof(on));
        setsockopt(s->fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on));
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)r->port);
        a->sin6_addr = in6addr_any;
        len = sizeof(*a);
        setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
        setsockopt(s->fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &on, sizeof(on));
        setsockopt(s->fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on));
    }
    if (bind(s->fd, (struct sockaddr *)&ss, len) != 0) {
        int e = errno;
        close(s->fd);
        s->fd = -1;
        return -e;
    }
    uv_poll_init(r->loop, &s->poll, s->fd);
    s->poll.data = s;
    s->open = true;
    uv_poll_start(&s->poll, UV_READABLE, on_reflector_poll);
    return 0;
}

kvl_stamp_reflector_t *kvl_stamp_reflector_new(uv_loop_t *loop, int port, kvl_stamp_clock_t *clock)
{
    kvl_stamp_reflector_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->loop = loop;
    r->clock = clock;
    r->port = port;
    int e4 = open_reflector_sock(r, &r->s4, AF_INET);
    int e6 = open_reflector_sock(r, &r->s6, AF_INET6);
    if (e4 != 0 && e6 != 0) {
        int e = e4 != -EAFNOSUPPORT ? e4 : e6;
        if (e == -EACCES || e == -EPERM) {
            KVL_LOG_ERROR(MOD, NULL,
                          "cannot bind UDP port %d for the STAMP reflector: %s (ports below 1024 "
                          "need root or CAP_NET_BIND_SERVICE, e.g. AmbientCapabilities= in the "
                          "systemd unit, or set probes.reflector.port); running without a "
                          "reflector",
                          port, strerror(-e));
        } else {
            KVL_LOG_WARN(MOD, NULL,
                         "cannot bind UDP port %d for the STAMP reflector: %s; running without "
                         "a reflector",
                         port, strerror(-e));
        }
        free(r);
        return NULL;
    }
    if (e6 != 0 && e6 != -EAFNOSUPPORT) {
        KVL_LOG_WARN(MOD, NULL, "STAMP reflector: IPv6 port %d: %s (IPv4 only)", port,
                     strerror(-e6));
    }
    kvl_stamp_clock_get(clock, uv_now(loop));
    KVL_LOG_INFO(MOD, NULL, "STAMP reflector on UDP port %d (%s)", port,
                 e4 == 0 && e6 == 0 ? "IPv4 and IPv6"
                 : e4 == 0          ? "IPv4"
                                    : "IPv6");
    return r;
}

static void on_reflector_closed(uv_handle_t *h)
{
    rsock_t *s = h->data;
    kvl_stamp_reflector_t *r = s->r;
    close(s->fd);
    s->fd = -1;
    if (--r->closing == 0) {
        free(r);
    }
}

void kvl_stamp_reflector_free(kvl_stamp_reflector_t *r)
{
    if (r == NULL) {
        return;
    }
    rsock_t *socks[2] = {&r->s4, &r->s6};
    for (int i = 0; i < 2; i++) {
        r->closing += socks[i]->open ? 1 : 0;
    }
    if (r->closing == 0) {
        free(r);
        return;
    }
    for (int i = 0; i < 2; i++) {
        if (socks[i]->open) {
            socks[i]->open = false;
            uv_close((uv_handle_t *)&socks[i]->poll, on_reflector_closed);
        }
    }
}

void kvl_stamp_reflector_get_stats(const kvl_stamp_reflector_t *r, kvl_stamp_reflector_stats_t *out)
{
    *out = r->st;
}

/* ----------------------------------------------------------------- sender ----------- */

struct kvl_stamp_session {
    uv_loop_t *loop;
    kvl_stamp_clock_t *clock;
    int fd;
    bool open;
    size_t size;
    uv_poll_t poll;
    kvl_stamp_answer_cb cb;
    void *arg;
    uint64_t malformed;
    uint8_t buf[KVL_STAMP_MAX + 1];
};

static void on_session_poll(uv_poll_t *h, int status, int events)
{
    KVL_UNUSED(events);
    kvl_stamp_session_t *s = h->data;
    for (int i = 0; i < DRAIN_MAX && s->open; i++) {
        struct sockaddr_storage from;
        rx_meta_t m;
        ssize_t n = recv_one(s->fd, s->buf, sizeof(s->buf), &from, &m);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            continue; /* ECONNREFUSED and the like: a lost probe, nothing to read */
        }
        kvl_stamp_reflector_pkt_t p;
        if (kvl_stamp_reflector_parse(s->buf, (size_t)n, &p) != 0) {
            s->malformed++;
            continue;
        }
        /* The reflector's own stamps may be PTP format (Z); T1 is ours, always NTP. */
        bool ptp = (p.err & 0x4000u) != 0;
        kvl_stamp_answer_t a = {
            .seq = p.sender_seq,
            .t1 = kvl_stamp_ns_from_ntp(p.t1),
            .t2 = ptp ? kvl_stamp_ns_from_ptp(p.t2) : kvl_stamp_ns_from_ntp(p.t2),
            .t3 = ptp ? kvl_stamp_ns_from_ptp(p.t3) : kvl_stamp_ns_from_ntp(p.t3),
            .t4 = m.rx_ns,
            .refl_err = p.err,
            .ttl = p.ttl,
            .rx_kernel = m.rx_kernel};
        s->cb(s->arg, &a);
    }
    rewatch(h, status, s->open, on_session_poll);
}

kvl_stamp_session_t *kvl_stamp_session_new(uv_loop_t *loop, const struct sockaddr *to, size_t size,
                                           kvl_stamp_clock_t *clock, kvl_stamp_answer_cb cb,
                                           void *arg, int *err)
{
    kvl_stamp_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    s->loop = loop;
    s->clock = clock;
    s->size = size < KVL_STAMP_BASE ? KVL_STAMP_BASE : size > KVL_STAMP_MAX ? KVL_STAMP_MAX : size;
    s->cb = cb;
    s->arg = arg;
    s->fd = socket(to->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        *err = -errno;
        free(s);
        return NULL;
    }
    int on = 1;
    setsockopt(s->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
    socklen_t len =
        to->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if (connect(s->fd, to, len) != 0) {
        *err = -errno;
        close(s->fd);
        free(s);
        return NULL;
    }
    uv_poll_init(loop, &s->poll, s->fd);
    s->poll.data = s;
    s->open = true;
    uv_poll_start(&s->poll, UV_READABLE, on_session_poll);
    return s;
}

int kvl_stamp_session_send(kvl_stamp_session_t *s, uint32_t seq)
{
    const kvl_clock_sync_t *cs = kvl_stamp_clock_get(s->clock, uv_now(s->loop));
    uint16_t err = kvl_stamp_clock_err(cs);
    kvl_stamp_sender_encode(s->buf, s->size, seq, 0, err);
    /* T1 last, then straight to the kernel. */
    uint64_t t1 = kvl_stamp_ntp_from_ns(now_ns());
    for (int i = 0; i < 8; i++) {
        s->buf[4 + i] = (uint8_t)(t1 >> (56 - 8 * i));
    }
    if (send(s->fd, s->buf, s->size, MSG_DONTWAIT) < 0) {
        return -errno;
    }
    return 0;
}

uint64_t kvl_stamp_session_malformed(const kvl_stamp_session_t *s)
{
    return s->malformed;
}

static void on_session_closed(uv_handle_t *h)
{
    kvl_stamp_session_t *s = h->data;
    close(s->fd);
    free(s);
}

void kvl_stamp_session_free(kvl_stamp_session_t *s)
{
    if (s == NULL) {
        return;
    }
    s->open = false;
    uv_close((uv_handle_t *)&s->poll, on_session_closed);
}

void kvl_stamp_reflector_set_clock(kvl_stamp_reflector_t *r, kvl_stamp_clock_t *clock)
{
    if (r != NULL) {
        r->clock = clock;
    }
}

int kvl_stamp_reflector_port(const kvl_stamp_reflector_t *r)
{
    return r != NULL ? r->port : 0;
}
