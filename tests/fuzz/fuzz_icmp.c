/*
 * fuzz_icmp.c — libFuzzer target for what the prober reads from the network: an ICMP or
 * ICMPv6 datagram handed to kvl_icmp_parse (agent/probe/probe_icmp.h) as each socket kind
 * delivers it (IPv4 raw with its IP header, IPv4 and IPv6 without), with and without an
 * identifier to match.
 *
 * The first byte picks the cookie: 0 uses the cookie the input itself carries where a
 * well-formed reply would (so the fuzzer reaches the accepting path), anything else a
 * fixed one. Beyond "no crash, no sanitizer report", it checks what the header promises:
 * the parser returns 0 or -1, and an accepted reply has an echo-reply type, the cookie,
 * the identifier asked for, and a sequence number whose low 16 bits are the header's.
 * A broken promise calls abort(), which libFuzzer reports as a crash.
 */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "fuzz_check.h"
#include "probe_icmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *p, size_t len, int family, bool ip, int ident, uint64_t cookie)
{
    kvl_icmp_echo_t e;
    memset(&e, 0xa5, sizeof(e));
    int rc = kvl_icmp_parse(p, len, family, ip, ident, cookie, &e);
    CHECK(rc == 0 || rc == -1);
    if (rc != 0) {
        return;
    }
    size_t off = ip ? (size_t)(p[0] & 0x0f) * 4 : 0;
    CHECK(len >= off + 8 + KVL_ICMP_PAYLOAD_MIN);
    const uint8_t *icmp = p + off;
    CHECK(icmp[0] == (family == AF_INET ? 0 : 129) && icmp[1] == 0);
    CHECK(memcmp(icmp + 8, &cookie, 8) == 0);
    CHECK(ident < 0 || (icmp[4] << 8 | icmp[5]) == ident);
    CHECK((e.seq & 0xffff) == (uint32_t)(icmp[6] << 8 | icmp[7]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    bool own = data[0] == 0;
    data++;
    size--;
    uint64_t fixed = 0x6b616176616c2121ull, c = fixed;
    /* IPv4 raw: cookie after the IP header and the echo header. */
    if (own && size >= 1) {
        size_t off = (size_t)(data[0] & 0x0f) * 4 + 8;
        if (size >= off + 8) {
            memcpy(&c, data + off, 8);
        }
    }
    one(data, size, AF_INET, true, -1, c);
    if (size >= 6) {
        one(data, size, AF_INET, true, data[4] << 8 | data[5], c);
    }
    c = fixed;
    if (own && size >= 16) {
        memcpy(&c, data + 8, 8);
    }
    one(data, size, AF_INET, false, -1, c);
    one(data, size, AF_INET6, false, -1, c);
    one(data, size, AF_INET6, false, 4660, c);
    return 0;
}
