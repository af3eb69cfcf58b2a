/*
 * fuzz_stamp.c — libFuzzer target for what the STAMP code reads from the network (agent/
 * stamp.h): any datagram is handed to the reflector's path (kvl_stamp_sender_parse, then
 * kvl_stamp_reflect into a buffer just large enough) and to the sender's path
 * (kvl_stamp_reflector_parse, the error estimates decoded, kvl_stamp_times on the decoded
 * timestamps with a synchronised local clock).
 *
 * Beyond "no crash, no sanitizer report" it checks what the header promises: parsers
 * return 0 or -1 and accept exactly the lengths they say; a reflected packet is
 * max(length, 44) octets, carries the sender's sequence number, timestamp and error
 * estimate where RFC 8762 puts them, and is zero after octet 44; the RTT is -1 or not
 * negative, and one-way figures come only with both S bits set. A broken promise calls
 * abort(), which libFuzzer reports as a crash.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "stamp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[KVL_STAMP_MAX];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvl_stamp_sender_pkt_t s;
    int rc = kvl_stamp_sender_parse(data, size, &s);
    CHECK(rc == 0 || rc == -1);
    CHECK((rc == 0) == (size >= KVL_STAMP_MIN_RX && size <= KVL_STAMP_MAX));
    if (rc == 0) {
        size_t want = size < KVL_STAMP_BASE ? KVL_STAMP_BASE : size;
        int len = kvl_stamp_reflect(out, want, size, &s, 0x0102030405060708ull, 0x8F84, 64);
        CHECK(len == (int)want);
        kvl_stamp_reflect_set_t3(out, 0x1112131415161718ull);
        CHECK(memcmp(out, data, 4) == 0);      /* stateless sequence number */
        CHECK(memcmp(out + 24, data, 4) == 0); /* sender's sequence number */
        CHECK(memcmp(out + 28, data + 4, 8) == 0);
        CHECK(memcmp(out + 36, data + 12, 2) == 0);
        for (size_t i = KVL_STAMP_BASE; i < want; i++) {
            CHECK(out[i] == 0);
        }
        kvl_stamp_reflector_pkt_t back;
        CHECK(kvl_stamp_reflector_parse(out, want, &back) == 0);
        CHECK(back.sender_seq == s.seq && back.t1 == s.t1 && back.ttl == 64);
    }
    kvl_stamp_reflector_pkt_t r;
    rc = kvl_stamp_reflector_parse(data, size, &r);
    CHECK(rc == 0 || rc == -1);
    CHECK((rc == 0) == (size >= KVL_STAMP_BASE && size <= KVL_STAMP_MAX));
    if (rc == 0) {
        kvl_stamp_err_t e;
        kvl_stamp_err_decode(r.err, &e);
        CHECK(e.err_ns >= -1);
        kvl_stamp_err_decode(r.sender_err, &e);
        kvl_stamp_times_t t;
        int64_t t1 = kvl_stamp_ns_from_ntp(r.t1), t2 = kvl_stamp_ns_from_ntp(r.t2);
        int64_t t3 = kvl_stamp_ns_from_ntp(r.t3);
        kvl_stamp_times(t1, t2, t3, t1 + 1000000, true, 1000, r.err, 10000000, &t);
        CHECK(t.rtt_ns == -1 || t.rtt_ns >= 0);
        /* The PTP reading of the same stamps (a reflector with Z set). */
        t2 = kvl_stamp_ns_from_ptp(r.t2);
        t3 = kvl_stamp_ns_from_ptp(r.t3);
        kvl_stamp_times(t1, t2, t3, t1 + 1000000, true, 1000, r.err, 10000000, &t);
        CHECK(t.rtt_ns == -1 || t.rtt_ns >= 0);
        kvl_stamp_err_decode(r.err, &e);
        CHECK(!t.oneway || (e.synced && !e.ptp && t.err_ns <= 10000000));
    }
    return 0;
}
