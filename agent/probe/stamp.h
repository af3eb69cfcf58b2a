/*
 * stamp.h — STAMP (RFC 8762) test packets in unauthenticated mode, their timestamps and
 * error estimates, the four-timestamp arithmetic, and the clock synchronisation state the
 * one-way figures depend on. Pure functions except kvl_clock_sync_read (ntp_adjtime).
 *
 * Session-Sender test packet (RFC 8762 section 4.2.1, 44 octets; network byte order):
 *    0  Sequence Number          4
 *    4  Timestamp (T1)           8   NTP 64-bit format: seconds since 1900, 2^-32 fraction
 *   12  Error Estimate           2
 *   14  MBZ                     30
 * Session-Reflector test packet (section 4.3.1, 44 octets):
 *    0  Sequence Number          4   this reflector is stateless: the sender's number
 *    4  Timestamp (T3)           8   transmit time
 *   12  Error Estimate           2
 *   14  MBZ                      2
 *   16  Receive Timestamp (T2)   8
 *   24  Session-Sender Sequence Number   4
 *   28  Session-Sender Timestamp (T1)    8
 *   36  Session-Sender Error Estimate    2
 *   38  MBZ                      2
 *   40  Ses-Sender TTL           1   TTL / hop limit of the received packet
 *   41  MBZ                      3
 *
 * TWAMP-Light (RFC 5357 section 4.1.2 and appendix I) test packets in unauthenticated mode
 * have the same first 14 octets and the same reflected layout up to the TTL, followed by
 * padding instead of STAMP's MBZ: RFC 8762 made the unauthenticated formats compatible on
 * purpose (its section "Interoperability with TWAMP Light"). So the reflector accepts any
 * sender packet of at least 14 octets and answers with the reflected layout above, as long
 * as the packet it got but never shorter than 44 octets (symmetric size, RFC 6038), the
 * bytes after octet 44 zero. Packets longer than KVL_STAMP_MAX are refused.
 *
 * Error Estimate (RFC 4656 section 4.1.2): S (1 bit: the clock is synchronised to UTC by an
 * external source), Z (1 bit: 0 = NTP timestamp format; kaaval always sends 0 and refuses
 * Z = 1 from peers for one-way figures), Scale (6 bits), Multiplier (8 bits, nonzero);
 * the error is Multiplier x 2^(Scale - 32) seconds.
 *
 * Arithmetic (section 4 of RFC 8762 / RFC 5357): with T1 the sender's transmit time, T2
 * the reflector's receive time, T3 the reflector's transmit time, T4 the sender's receive
 * time, round trip = (T4 - T1) - (T3 - T2) (correct whatever the two clocks' offset),
 * forward one-way = T2 - T1, backward one-way = T4 - T3 (only meaningful when both clocks
 * are synchronised; kvl_stamp_times says whether they may be reported).
 */
#ifndef KVL_STAMP_H
#define KVL_STAMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVL_STAMP_BASE 44   /* octets of the unauthenticated packets */
#define KVL_STAMP_MIN_RX 14 /* shortest sender packet answered (TWAMP-Light without padding) */
#define KVL_STAMP_MAX 9000  /* longest packet answered */
#define KVL_STAMP_PORT 862

/* Nanoseconds since 1970 (CLOCK_REALTIME) <-> NTP 64-bit timestamps. */
uint64_t kvl_stamp_ntp_from_ns(int64_t unix_ns);
int64_t kvl_stamp_ns_from_ntp(uint64_t ntp);
/* A reflector whose Error Estimate has Z set sends PTPv2 truncated timestamps (32-bit
 * seconds since its epoch, 32-bit nanoseconds): nanoseconds on that scale. Only differences
 * of two such stamps are used (T3 - T2); the one-way figures are never given for them. */
int64_t kvl_stamp_ns_from_ptp(uint64_t ptp);

/* Error Estimate: encodes an error of err_ns (rounded up; at least the format's smallest
 * step) with the S bit; decodes one into its parts. An error too large for the format
 * becomes the largest it can say. */
uint16_t kvl_stamp_err_encode(bool synced, int64_t err_ns);
typedef struct kvl_stamp_err {
    bool synced;    /* S */
    bool ptp;       /* Z */
    int64_t err_ns; /* -1 when Multiplier is 0 (invalid per RFC 4656) */
} kvl_stamp_err_t;
void kvl_stamp_err_decode(uint16_t v, kvl_stamp_err_t *out);

/* Writes a Session-Sender packet of `len` octets (>= KVL_STAMP_BASE, zero beyond) into buf.
 * Returns len, or -1 when len is out of range. */
int kvl_stamp_sender_encode(uint8_t *buf, size_t len, uint32_t seq, uint64_t t1_ntp, uint16_t err);

/* A received Session-Sender (or TWAMP-Light) packet. */
typedef struct kvl_stamp_sender_pkt {
    uint32_t seq;
    uint64_t t1; /* NTP */
    uint16_t err;
} kvl_stamp_sender_pkt_t;
/* Parses a sender packet; 0, or -1 when shorter than KVL_STAMP_MIN_RX or longer than
 * KVL_STAMP_MAX. Untrusted input (fuzzed). */
int kvl_stamp_sender_parse(const uint8_t *buf, size_t len, kvl_stamp_sender_pkt_t *out);

/* Builds the reflected packet for a parsed sender packet: out gets max(rx_len,
 * KVL_STAMP_BASE) octets (outcap must hold them; else -1). T3 is left zero: write it with
 * kvl_stamp_reflect_set_t3 just before sending. Returns the length. */
int kvl_stamp_reflect(uint8_t *out, size_t outcap, size_t rx_len, const kvl_stamp_sender_pkt_t *in,
                      uint64_t t2_ntp, uint16_t err, uint8_t ttl);
void kvl_stamp_reflect_set_t3(uint8_t *out, uint64_t t3_ntp);

/* A received Session-Reflector packet. */
typedef struct kvl_stamp_reflector_pkt {
    uint32_t seq;
    uint64_t t3, t2, t1; /* NTP */
    uint16_t err;        /* the reflector's */
    uint32_t sender_seq;
    uint16_t sender_err;
    uint8_t ttl;
} kvl_stamp_reflector_pkt_t;
/* Parses a reflector packet (>= KVL_STAMP_BASE octets, at most KVL_STAMP_MAX); 0 or -1.
 * Untrusted input (fuzzed). */
int kvl_stamp_reflector_parse(const uint8_t *buf, size_t len, kvl_stamp_reflector_pkt_t *out);

/* What one reflected packet measured. */
typedef struct kvl_stamp_times {
    int64_t rtt_ns; /* (T4 - T1) - (T3 - T2); -1 when negative (a broken reflector) */
    int64_t fwd_ns; /* T2 - T1, when oneway */
    int64_t bwd_ns; /* T4 - T3, when oneway */
    bool oneway;    /* both ends synchronised: the one-way figures may be reported */
    int64_t err_ns; /* sum of both ends' error estimates, when oneway */
} kvl_stamp_times_t;
/* t1..t4 in ns since 1970 (t4 the sender's kernel receive time). local_synced and
 * local_err_ns: this agent's clock; refl_err: the reflector's Error Estimate. One-way
 * figures are given only when both S bits are set, neither end uses the PTP format and the
 * sum of the two errors is at most max_err_ns. */
void kvl_stamp_times(int64_t t1, int64_t t2, int64_t t3, int64_t t4, bool local_synced,
                     int64_t local_err_ns, uint16_t refl_err, int64_t max_err_ns,
                     kvl_stamp_times_t *out);

/* The clock's synchronisation state. */
typedef enum {
    KVL_CLOCK_KERNEL = 0, /* from ntp_adjtime(): chrony/ntpd/systemd-timesyncd keep it */
    KVL_CLOCK_ASSUMED,    /* configured: synchronised by means the kernel does not report
                           * (PTP via phc2sys), or one host's clock shared by test
                           * namespaces */
    KVL_CLOCK_NONE,       /* configured: never claim synchronisation */
} kvl_clock_mode_t;

typedef struct kvl_clock_sync {
    bool synced;
    int64_t err_ns;    /* estimated error (kernel esterror, or the configured one) */
    int64_t maxerr_ns; /* kernel maxerror, or the configured error */
    const char *why;   /* a short reason for the state, for logs and --probe-once */
} kvl_clock_sync_t;
/* Pure: the state from ntp_adjtime()'s result (rc: its return value; status, maxerror and
 * esterror in microseconds as in struct timex). Synchronised when rc is not TIME_ERROR,
 * STA_UNSYNC is clear and maxerror <= max_err_ns. */
void kvl_clock_sync_from_timex(int rc, int status, long maxerror_us, long esterror_us,
                               int64_t max_err_ns, kvl_clock_sync_t *out);
/* Reads the state for the mode (ntp_adjtime for KVL_CLOCK_KERNEL). assumed_err_ns: the
 * error claimed in KVL_CLOCK_ASSUMED mode. */
void kvl_clock_sync_read(int mode, int64_t assumed_err_ns, int64_t max_err_ns,
                         kvl_clock_sync_t *out);

#endif
