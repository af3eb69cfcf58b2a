/*
 * probe_stamp.h — STAMP (RFC 8762) on the agent's loop: the session-reflector every agent
 * runs, and session-sender sessions, one per STAMP target. Packets and arithmetic are in
 * stamp.h.
 *
 * Reflector. One UDP socket per address family bound to the configured port (IPv4
 * 0.0.0.0, IPv6 [::] with IPV6_V6ONLY), answering every STAMP session-sender and
 * TWAMP-Light packet (stateless: the reflected Sequence Number is the sender's). Each
 * answer leaves from the address the test packet was sent to (IP_PKTINFO /
 * IPV6_RECVPKTINFO), to the sender's address and port, with as many octets as it got
 * (at least 44).
 *   T2 (Receive Timestamp) is the kernel's software receive timestamp (SO_TIMESTAMPNS),
 *      taken when the packet reached the stack, so a busy loop adds nothing to it.
 *   T3 (Timestamp) is read from CLOCK_REALTIME after the whole answer is built, written as
 *      its last field, and the packet handed to sendmsg at once: the latest user space can
 *      take it. What the kernel then spends before the wire (microseconds) is counted in
 *      the backward direction; the round trip subtracts T3 - T2 and so includes it.
 *   The Ses-Sender TTL is the received packet's TTL / hop limit (IP_RECVTTL /
 *      IPV6_RECVHOPLIMIT), 0 when the kernel gave none.
 *   The Error Estimate says this host's clock state (kvl_stamp_clock_t): S set only when
 *      synchronised, the scale and multiplier from the estimated error.
 * When the port cannot be bound (a port below 1024 without root or CAP_NET_BIND_SERVICE, or
 * one in use) the reflector logs one line saying why and what to do, and the agent runs on
 * without it.
 *
 * Sender session. A UDP socket connected to the reflector (the kernel drops anything from
 * elsewhere), SO_TIMESTAMPNS on receive: T1 is CLOCK_REALTIME just before sendmsg (written
 * in the packet), T4 the kernel's receive timestamp of the answer. Answers too short or
 * that do not parse are counted (`malformed`) and dropped.
 */
#ifndef KVL_PROBE_STAMP_H
#define KVL_PROBE_STAMP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "stamp.h"

/* This host's clock state, read at most once a second. */
typedef struct kvl_stamp_clock {
    int mode; /* kvl_clock_mode_t */
    int64_t assumed_err_ns;
    int64_t max_err_ns;
    uint64_t read_ms; /* loop time of the last read; 0 never */
    kvl_clock_sync_t state;
} kvl_stamp_clock_t;

void kvl_stamp_clock_init(kvl_stamp_clock_t *c, int mode, int64_t assumed_err_ns,
                          int64_t max_err_ns);
/* The state, re-read when older than a second (now_ms: loop time). */
const kvl_clock_sync_t *kvl_stamp_clock_get(kvl_stamp_clock_t *c, uint64_t now_ms);
/* The Error Estimate this host sends. */
uint16_t kvl_stamp_clock_err(const kvl_clock_sync_t *s);

typedef struct kvl_stamp_reflector kvl_stamp_reflector_t;

typedef struct kvl_stamp_reflector_stats {
    uint64_t answered, malformed, send_errors;
} kvl_stamp_reflector_stats_t;

/* Opens the reflector's sockets on port. Returns NULL when out of memory or when neither
 * family's socket could be bound (logged once, with the reason). clock must outlive it. */
kvl_stamp_reflector_t *kvl_stamp_reflector_new(uv_loop_t *loop, int port, kvl_stamp_clock_t *clock);
/* The clock the reflector's answers read from now on (a reload hands the reflector, its
 * sockets open, to a new prober). NULL-safe. */
void kvl_stamp_reflector_set_clock(kvl_stamp_reflector_t *r, kvl_stamp_clock_t *clock);
/* The port it was asked to listen on (0 for NULL). */
int kvl_stamp_reflector_port(const kvl_stamp_reflector_t *r);
/* Closes; the handles finish closing on the next loop run. NULL-safe. */
void kvl_stamp_reflector_free(kvl_stamp_reflector_t *r);
void kvl_stamp_reflector_get_stats(const kvl_stamp_reflector_t *r,
                                   kvl_stamp_reflector_stats_t *out);

typedef struct kvl_stamp_session kvl_stamp_session_t;

/* One answer of a session: the sender's sequence number and the four timestamps (ns since
 * 1970; t4 the kernel's when rx_kernel). */
typedef struct kvl_stamp_answer {
    uint32_t seq;
    int64_t t1, t2, t3, t4;
    uint16_t refl_err;
    uint8_t ttl;
    bool rx_kernel;
} kvl_stamp_answer_t;

typedef void (*kvl_stamp_answer_cb)(void *arg, const kvl_stamp_answer_t *a);

/* A session to the reflector at `to` (port included). size: octets per test packet
 * (>= 44). Returns NULL with *err set to a negative errno when the socket cannot be made. */
kvl_stamp_session_t *kvl_stamp_session_new(uv_loop_t *loop, const struct sockaddr *to, size_t size,
                                           kvl_stamp_clock_t *clock, kvl_stamp_answer_cb cb,
                                           void *arg, int *err);
/* Sends test packet number seq. Returns 0 or a negative errno (not logged). */
int kvl_stamp_session_send(kvl_stamp_session_t *s, uint32_t seq);
uint64_t kvl_stamp_session_malformed(const kvl_stamp_session_t *s);
/* Closes; NULL-safe. */
void kvl_stamp_session_free(kvl_stamp_session_t *s);

#endif
