/*
 * delay_relay.c — the test suite's own delay line between two veth interfaces (for
 * kernels without netem). Runs in a middle network namespace, bridges Ethernet frames
 * between IF_A and IF_B with AF_PACKET sockets, and holds every ICMP / ICMPv6 echo request
 * and reply for a delay drawn from a stated distribution; every other frame (ARP, neighbour
 * discovery) passes at once. It logs, per echo packet, what it imposed, so a test knows the
 * truth packet by packet.
 *
 *   delay_relay IF_A IF_B [-d MEAN_US] [-j HALF_WIDTH_US] [-s SEED] [-l LOG]
 *               [--dup-every N] [--reorder-every N] [--reorder-extra-us US]
 *               [--udp-port P] [--only-ab]
 *
 * --udp-port P: IPv4 and IPv6 UDP datagrams to port P (STAMP test packets, logged as type=8) and
 * from port P (reflected ones, type=0) are held too, with seq the low 16 bits of the
 * payload's first 4 octets (STAMP's sequence number) and id P. Their UDP checksum is
 * computed afresh: a veth hands AF_PACKET a locally sent datagram with the checksum left
 * to offload (only the pseudo-header sum filled in), which the far end would drop. --only-ab: only
 * frames from IF_A to IF_B are held; the other direction passes at once (still logged, drawn_us=0),
 * so a test knows each one-way delay.
 *
 * Distribution: uniform on [MEAN - HALF_WIDTH, MEAN + HALF_WIDTH] microseconds, drawn per
 * (direction, ICMP type, ICMP sequence number) from a seeded hash (splitmix64), so two
 * senders using the same sequence numbers (ping and kaaval's prober) see the same delays.
 * --dup-every N: echo replies whose sequence number is 5 mod N are sent twice (the copy
 * 1 ms later). --reorder-every N: echo requests whose sequence number is 7 mod N are held
 * US microseconds longer (default 25000), so later probes overtake them.
 *
 * Log lines (one per echo packet sent on):
 *   dir=AB type=8 id=4660 seq=12 drawn_us=21345 held_us=21391 copy=0
 * held_us is measured: the kernel's receive timestamp of the frame to the moment sendto
 * returned. A run with -d 0 -j 0 measures the relay's own cost.
 *
 * Stops on SIGINT/SIGTERM. Needs CAP_NET_RAW (the tests run it as root in their namespace).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define QMAX 8192
#define FRAME_MAX 9216

typedef struct pending {
    int64_t release_ns, rx_ns;
    int out; /* 0: to A, 1: to B */
    int len;
    int type, id, seq, copy;
    int64_t drawn_us;
    uint8_t data[FRAME_MAX];
} pending_t;

static pending_t *q;
static size_t nq;
static volatile sig_atomic_t stop;
static int udp_port; /* 0: ICMP echo only */

static void on_signal(int s)
{
    (void)s;
    stop = 1;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static int open_if(const char *name)
{
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    if (fd < 0) {
        perror("socket(AF_PACKET)");
        exit(1);
    }
    struct sockaddr_ll sll = {.sll_family = AF_PACKET,
                              .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = (int)if_nametoindex(name)};
    if (sll.sll_ifindex == 0 || bind(fd, (struct sockaddr *)&sll, sizeof(sll)) != 0) {
        fprintf(stderr, "delay_relay: cannot bind to %s: %s\n", name, strerror(errno));
        exit(1);
    }
    int on = 1;
    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &on, sizeof(on));
    setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on));
    return fd;
}

/* ICMP echo fields of a frame, or type -1. */
static void classify(const uint8_t *f, int len, int *type, int *id, int *seq)
{
    *type = -1;
    if (len < 14) {
        return;
    }
    int et = f[12] << 8 | f[13];
    const uint8_t *icmp = NULL;
    if (udp_port != 0 && ((et == 0x0800 && len >= 34 && f[23] == 17) ||
                          (et == 0x86dd && len >= 54 && f[20] == 17))) {
        int ihl = et == 0x0800 ? (f[14] & 15) * 4 : 40;
        if (len >= 14 + ihl + 8 + 4) {
            const uint8_t *u = f + 14 + ihl;
            int sport = u[0] << 8 | u[1], dport = u[2] << 8 | u[3];
            if (dport == udp_port || sport == udp_port) {
                *type = dport == udp_port ? 8 : 0;
                *id = udp_port;
                *seq = u[8 + 2] << 8 | u[8 + 3];
            }
        }
        return;
    }
    if (et == 0x0800 && len >= 34 && f[23] == 1) {
        int ihl = (f[14] & 15) * 4;
        if (len >= 14 + ihl + 8) {
            icmp = f + 14 + ihl;
            if (icmp[0] != 8 && icmp[0] != 0) {
                return;
            }
        }
    } else if (et == 0x86dd && len >= 14 + 40 + 8 && f[20] == 58) {
        icmp = f + 54;
        if (icmp[0] != 128 && icmp[0] != 129) {
            return;
        }
    }
    if (icmp != NULL) {
        *type = icmp[0];
        *id = icmp[4] << 8 | icmp[5];
        *seq = icmp[6] << 8 | icmp[7];
    }
}

/* Writes the UDP checksum of an IPv4 or IPv6 frame classified as UDP (RFC 768 and RFC 8200
 * pseudo-headers: addresses, length, protocol 17). */
static void udp_fix_checksum(uint8_t *f, int len)
{
    bool v6 = (f[12] << 8 | f[13]) == 0x86dd;
    int ihl = v6 ? 40 : (f[14] & 15) * 4;
    uint8_t *ip = f + 14, *u = f + 14 + ihl;
    int ulen = u[4] << 8 | u[5];
    if (ulen < 8 || 14 + ihl + ulen > len) {
        return;
    }
    u[6] = u[7] = 0;
    uint32_t sum = 17 + (uint32_t)ulen;
    int from = v6 ? 8 : 12, to = v6 ? 40 : 20; /* source and destination addresses */
    for (int i = from; i < to; i += 2) {
        sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
    }
    for (int i = 0; i + 1 < ulen; i += 2) {
        sum += (uint32_t)(u[i] << 8 | u[i + 1]);
    }
    if (ulen & 1) {
        sum += (uint32_t)(u[ulen - 1] << 8);
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    uint16_t c = (uint16_t)~sum;
    if (c == 0) {
        c = 0xffff;
    }
    u[6] = (uint8_t)(c >> 8);
    u[7] = (uint8_t)c;
}

int main(int argc, char **argv)
{
    int64_t mean_us = 0, half_us = 0, reorder_extra_us = 25000;
    uint64_t seed = 1;
    long dup_every = 0, reorder_every = 0;
    bool only_ab = false;
    const char *logpath = NULL;
    static const struct option opts[] = {{"dup-every", required_argument, NULL, 'D'},
                                         {"reorder-every", required_argument, NULL, 'R'},
                                         {"reorder-extra-us", required_argument, NULL, 'X'},
                                         {"udp-port", required_argument, NULL, 'U'},
                                         {"only-ab", no_argument, NULL, 'O'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "d:j:s:l:", opts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            mean_us = atoll(optarg);
            break;
        case 'j':
            half_us = atoll(optarg);
            break;
        case 's':
            seed = strtoull(optarg, NULL, 10);
            break;
        case 'l':
            logpath = optarg;
            break;
        case 'D':
            dup_every = atol(optarg);
            break;
        case 'R':
            reorder_every = atol(optarg);
            break;
        case 'X':
            reorder_extra_us = atoll(optarg);
            break;
        case 'U':
            udp_port = atoi(optarg);
            break;
        case 'O':
            only_ab = true;
            break;
        default:
            fprintf(stderr, "usage: delay_relay IF_A IF_B [-d US] [-j US] [-s SEED] [-l LOG] "
                            "[--dup-every N] [--reorder-every N] [--reorder-extra-us US] "
                            "[--udp-port P] [--only-ab]\n");
            return 2;
        }
    }
    if (argc - optind != 2 || half_us > mean_us) {
        fprintf(stderr, "delay_relay: two interfaces needed, and jitter <= delay\n");
        return 2;
    }
    FILE *log = logpath ? fopen(logpath, "w") : stdout;
    if (log == NULL) {
        perror(logpath);
        return 1;
    }
    setvbuf(log, NULL, _IOLBF, 0);
    q = calloc(QMAX, sizeof(*q));
    if (q == NULL) {
        return 1;
    }
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int fd[2] = {open_if(argv[optind]), open_if(argv[optind + 1])};
    fprintf(stderr, "delay_relay: %s <-> %s, uniform %lld..%lld us, seed %llu\n", argv[optind],
            argv[optind + 1], (long long)(mean_us - half_us), (long long)(mean_us + half_us),
            (unsigned long long)seed);
    while (!stop) {
        /* Earliest release. */
        int64_t now = now_ns(), next = INT64_MAX;
        size_t at = 0;
        for (size_t i = 0; i < nq; i++) {
            if (q[i].release_ns < next) {
                next = q[i].release_ns;
                at = i;
            }
        }
        if (nq > 0 && next <= now) {
            pending_t *p = &q[at];
            ssize_t w = send(fd[p->out], p->data, (size_t)p->len, 0);
            int64_t sent = now_ns();
            if (w < 0) {
                fprintf(stderr, "delay_relay: send: %s\n", strerror(errno));
            } else if (p->type >= 0) {
                fprintf(log, "dir=%s type=%d id=%d seq=%d drawn_us=%lld held_us=%lld copy=%d\n",
                        p->out ? "AB" : "BA", p->type, p->id, p->seq, (long long)p->drawn_us,
                        (long long)((sent - p->rx_ns) / 1000), p->copy);
            }
            q[at] = q[--nq];
            continue;
        }
        struct pollfd pf[2] = {{fd[0], POLLIN, 0}, {fd[1], POLLIN, 0}};
        struct timespec ts, *tp = NULL;
        if (nq > 0) {
            int64_t wait = next - now;
            ts.tv_sec = wait / 1000000000;
            ts.tv_nsec = wait % 1000000000;
            tp = &ts;
        } else {
            ts.tv_sec = 0;
            ts.tv_nsec = 200000000;
            tp = &ts;
        }
        if (ppoll(pf, 2, tp, NULL) <= 0) {
            continue;
        }
        for (int side = 0; side < 2; side++) {
            if (!(pf[side].revents & POLLIN)) {
                continue;
            }
            for (;;) {
                if (nq + 2 > QMAX) {
                    break;
                }
                pending_t *p = &q[nq];
                char ctrl[256];
                struct iovec iov = {p->data, FRAME_MAX};
                struct msghdr msg = {.msg_iov = &iov,
                                     .msg_iovlen = 1,
                                     .msg_control = ctrl,
                                     .msg_controllen = sizeof(ctrl)};
                ssize_t n = recvmsg(fd[side], &msg, MSG_DONTWAIT);
                if (n <= 0) {
                    break;
                }
                int64_t rx = 0;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
                    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
                        struct timespec t;
                        memcpy(&t, CMSG_DATA(c), sizeof(t));
                        rx = (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
                    }
                }
                if (rx == 0) {
                    rx = now_ns();
                }
                p->len = (int)n;
                p->rx_ns = rx;
                p->out = 1 - side;
                p->copy = 0;
                classify(p->data, p->len, &p->type, &p->id, &p->seq);
                if (p->type >= 0 && udp_port != 0 &&
                    ((p->data[12] == 0x08 && p->data[23] == 17) ||
                     (p->data[12] == 0x86 && p->data[20] == 17))) {
                    udp_fix_checksum(p->data, p->len);
                }
                p->drawn_us = 0;
                if (p->type >= 0) {
                    uint64_t h = splitmix(seed ^ ((uint64_t)side << 40) ^
                                          ((uint64_t)p->type << 32) ^ (uint64_t)p->seq);
                    int64_t span = 2 * half_us + 1;
                    p->drawn_us = mean_us - half_us + (int64_t)(h % (uint64_t)span);
                    bool request = p->type == 8 || p->type == 128;
                    if (request && reorder_every > 0 && p->seq % reorder_every == 7) {
                        p->drawn_us += reorder_extra_us;
                    }
                    if (only_ab && side == 1) {
                        p->drawn_us = 0;
                    }
                }
                p->release_ns = rx + p->drawn_us * 1000;
                nq++;
                bool reply = p->type == 0 || p->type == 129;
                if (reply && dup_every > 0 && p->seq % dup_every == 5) {
                    q[nq] = *p;
                    q[nq].copy = 1;
                    q[nq].release_ns += 1000000;
                    nq++;
                }
            }
        }
    }
    fflush(log);
    return 0;
}
