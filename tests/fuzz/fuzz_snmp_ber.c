/*
 * fuzz_snmp_ber.c — libFuzzer target for the v1/v2c Response decoder (agent/snmp/snmp_ber.h),
 * which reads whatever arrives on an agent's SNMP sockets.
 *
 * Beyond "no crash, no sanitizer report", it checks what the header promises:
 *  - the decoder returns 0 or KVL_EDECODE, with a reason on failure;
 *  - a decoded message has at most cap varbinds, OIDs of at most KVL_SNMP_MAX_OID_LEN
 *    sub-identifiers, strings inside the input, oid_value set exactly for OID values and
 *    IpAddress values of 4 bytes;
 *  - the varbind names, encoded again as a request and turned into a Response, decode to
 *    the same names.
 * A broken promise calls abort(), which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "kvl.h"
#include "snmp_ber.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP 128

static kvl_snmp_vb_t vbs[CAP], vbs2[CAP];
static kvl_snmp_oid_t oids[CAP], oids2[CAP], names[CAP];
static uint8_t enc[65536];

/* Skips one tag and length at pos in an encoding of ours; returns the contents' offset. */
static size_t skip_header(const uint8_t *p, size_t pos)
{
    pos++;
    return (p[pos] & 0x80) != 0 ? pos + 1 + (p[pos] & 0x7f) : pos + 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvl_snmp_ber_response_t r;
    const char *why = NULL;
    /* The first byte picks a smaller varbind array now and then. */
    size_t cap = size > 0 && data[0] == 0x31 ? 2 : CAP;
    int rc = kvl_snmp_ber_decode(data, size, &r, vbs, oids, cap, &why);
    if (rc != 0) {
        CHECK(rc == KVL_EDECODE);
        CHECK(why != NULL && why[0] != '\0');
        return 0;
    }
    CHECK(r.version == KVL_SNMP_BER_V1 || r.version == KVL_SNMP_BER_V2C);
    CHECK(r.n_vbs <= cap);
    CHECK(r.community >= data && r.community + r.community_len <= data + size);
    size_t n_names = 0;
    for (size_t i = 0; i < r.n_vbs; i++) {
        const kvl_snmp_vb_t *v = &vbs[i];
        CHECK(v->oid.len <= KVL_SNMP_MAX_OID_LEN);
        CHECK((v->type == KVL_SNMP_T_OID) == (v->oid_value != NULL));
        if (v->oid_value != NULL) {
            CHECK(v->oid_value == &oids[i] && v->oid_value->len <= KVL_SNMP_MAX_OID_LEN);
        }
        if (v->str != NULL) {
            CHECK(v->str >= data && v->str + v->str_len <= data + size);
        } else {
            CHECK(v->str_len == 0);
        }
        if (v->type == KVL_SNMP_T_IPADDRESS) {
            CHECK(v->str_len == 4);
        }
        if (v->type == KVL_SNMP_T_COUNTER32 || v->type == KVL_SNMP_T_GAUGE32 ||
            v->type == KVL_SNMP_T_TIMETICKS) {
            CHECK(v->u <= UINT32_MAX);
        }
        if (v->oid.len >= 2) {
            names[n_names++] = v->oid;
        }
    }
    /* Names again, as a GetRequest whose PDU tag is then made a Response's. */
    kvl_snmp_ber_request_t q = {r.version,    r.community, r.community_len, r.request_id,
                                KVL_SNMP_GET, 0,           names,           n_names};
    int n = kvl_snmp_ber_encode(&q, enc, sizeof(enc), &why);
    CHECK(n > 0);
    size_t pos = skip_header(enc, 0); /* message */
    pos = skip_header(enc, pos) + 1;  /* version, 1 byte */
    pos = skip_header(enc, pos) + r.community_len;
    CHECK(enc[pos] == 0xa0);
    enc[pos] = 0xa2;
    kvl_snmp_ber_response_t r2;
    CHECK(kvl_snmp_ber_decode(enc, (size_t)n, &r2, vbs2, oids2, CAP, &why) == 0);
    CHECK(r2.n_vbs == n_names && r2.request_id == r.request_id && r2.version == r.version);
    for (size_t i = 0; i < n_names; i++) {
        CHECK(kvl_snmp_oid_cmp(&vbs2[i].oid, &names[i]) == 0);
        CHECK(vbs2[i].type == KVL_SNMP_T_NULL);
    }
    return 0;
}
