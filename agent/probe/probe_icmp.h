/*
 * probe_icmp.h — ICMP / ICMPv6 echo on the agent's loop, with kernel timestamps.
 *
 * One socket per address family, opened on first use: an unprivileged ICMP datagram socket
 * (SOCK_DGRAM, IPPROTO_ICMP / IPPROTO_ICMPV6) when the process's group is inside
 * net.ipv4.ping_group_range (the kernel then owns the echo identifier and the checksum and
 * delivers only replies to this socket), otherwise a raw socket (root or CAP_NET_RAW; kaaval
 * picks a random identifier and filters replies itself). Neither: one error naming both
 * reasons. A uv_poll_t watches each socket.
 *
 * Every echo request carries, after the 8-byte echo header, kaaval's payload:
 *   0  cookie    8 bytes, random per process: a reply without it is not ours
 *   8  target    4 bytes, the caller's target number
 *   12 seq       4 bytes, the caller's probe sequence number (the ICMP sequence is its low
 *                16 bits)
 *   16 key       4 bytes, this socket's send counter (the kernel's SOF_TIMESTAMPING_OPT_ID)
 *   20 zero      4 bytes
 *   24 sent_ns   8 bytes, CLOCK_REALTIME just before sendmsg (the fallback send time)
 *   32 ...       zero padding up to the configured size
 * all in host order (only this process reads them back).
 *
 * Timestamps. SO_TIMESTAMPING with software RX and TX stamps: the receive time is the
 * kernel's (taken when the packet reached the stack), the send time the kernel's TX stamp
 * (taken when the driver got the packet), read from the socket's error queue by OPT_ID key.
 * When the kernel gives no TX stamp (before the reply is read), the user-space time taken
 * just before sendmsg is used and counted (kvl_icmp_stats_t.tx_user). Without
 * SO_TIMESTAMPING, SO_TIMESTAMPNS gives the receive time alone.
 */
#ifndef KVL_PROBE_ICMP_H
#define KVL_PROBE_ICMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define KVL_ICMP_PAYLOAD_MIN 32 /* kaaval's part of the echo data */

typedef struct kvl_icmp kvl_icmp_t;

/* A reply recognised as ours. */
typedef struct kvl_icmp_reply {
    uint32_t target;
    uint32_t seq;
    int64_t rtt_ns;
    bool tx_kernel; /* the send time was the kernel's TX stamp */
    bool rx_kernel; /* the receive time was the kernel's */
    const struct sockaddr *from;
} kvl_icmp_reply_t;

typedef void (*kvl_icmp_reply_cb)(void *arg, const kvl_icmp_reply_t *r);

typedef struct kvl_icmp_stats {
    uint64_t sent, send_errors, replies, foreign, tx_kernel, tx_user;
} kvl_icmp_stats_t;

/* size: ICMP data bytes (>= KVL_ICMP_PAYLOAD_MIN). NULL when out of memory. */
kvl_icmp_t *kvl_icmp_new(uv_loop_t *loop, size_t size, kvl_icmp_reply_cb cb, void *arg);
/* Closes the sockets; the handles' close completes on the next loop run. NULL-safe. */
void kvl_icmp_free(kvl_icmp_t *ic);

/* Opens the socket of the family (AF_INET or AF_INET6) if not yet open. Returns 0 or a
 * negative errno (logged once, with both reasons). */
int kvl_icmp_open(kvl_icmp_t *ic, int family);

/* Sends one echo request to `to`. Returns 0 or a negative errno (not logged). */
int kvl_icmp_send(kvl_icmp_t *ic, const struct sockaddr *to, uint32_t target, uint32_t seq);

/* "dgram", "raw" or "closed" for the family's socket; its echo identifier (the kernel's
 * for a datagram socket). */
const char *kvl_icmp_kind(const kvl_icmp_t *ic, int family);
int kvl_icmp_ident(const kvl_icmp_t *ic, int family);
void kvl_icmp_get_stats(const kvl_icmp_t *ic, kvl_icmp_stats_t *out);

/* Pure: recognises one of our echo replies in a received datagram. data: what recvmsg
 * returned (with the IPv4 header first when ip_header); ident: the identifier to match, or
 * -1 to accept any (datagram sockets). On success fills target, seq, key and sent_ns and
 * returns 0; otherwise returns -1. Used on untrusted input (fuzzed: tests/fuzz/fuzz_icmp.c). */
typedef struct kvl_icmp_echo {
    uint32_t target, seq, key;
    int64_t sent_ns;
} kvl_icmp_echo_t;
int kvl_icmp_parse(const uint8_t *data, size_t len, int family, bool ip_header, int ident,
                   uint64_t cookie, kvl_icmp_echo_t *out);

#endif
