/*
 * test_snmp_ber.c — unit tests for the v1/v2c BER codec (agent/snmp/snmp_ber.h).
 *
 * Requests are compared with bytes derived by hand from X.690 and RFC 3416 (the derivation
 * is in the comments). Responses are either written out byte by byte or assembled with a
 * small TLV helper from hand-written contents; then every prefix of a valid response, and
 * every single-byte change of one, is decoded to show that malformed input is an error and
 * never a crash (run under ASan to see out-of-bounds reads).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kvl.h"
#include "snmp_ber.h"

#define CAP 8

static kvl_snmp_vb_t vbs[CAP];
static kvl_snmp_oid_t oidv[CAP];

static kvl_snmp_oid_t mkoid(size_t n, const uint32_t *sub)
{
    kvl_snmp_oid_t o;
    assert_int_equal(kvl_snmp_oid_set(&o, sub, n), 0);
    return o;
}

#define OID(...)                                                                                   \
    mkoid(sizeof((uint32_t[]){__VA_ARGS__}) / sizeof(uint32_t), (uint32_t[]){__VA_ARGS__})

static int decode(const uint8_t *p, size_t n, kvl_snmp_ber_response_t *r, size_t cap,
                  const char **why)
{
    *why = NULL;
    return kvl_snmp_ber_decode(p, n, r, vbs, oidv, cap, why);
}

/* --- encoding ----------------------------------------------------------------------------- */

static void test_encode_get(void **state)
{
    KVL_UNUSED(state);
    /* v2c GetRequest, community "public", request-id 1, sysUpTime.0 (1.3.6.1.2.1.1.3.0):
     * OID contents 2B(1*40+3) 06 01 02 01 01 03 00 = 8 bytes; varbind 30 0C {06 08 .., 05 00};
     * list 30 0E; PDU A0 19 {02 01 01, 02 01 00, 02 01 00, list(16)}: 9 + 16 = 25;
     * message 30 26 {02 01 01, 04 06 "public", PDU(27)}: 3 + 8 + 27 = 38. */
    static const uint8_t want[] = {
        0x30, 0x26, 0x02, 0x01, 0x01, 0x04, 0x06, 'p',  'u',  'b',  'l',  'i',  'c',  0xa0,
        0x19, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x0e, 0x30, 0x0c,
        0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x03, 0x00, 0x05, 0x00,
    };
    kvl_snmp_oid_t o = OID(1, 3, 6, 1, 2, 1, 1, 3, 0);
    kvl_snmp_ber_request_t q = {
        KVL_SNMP_BER_V2C, (const uint8_t *)"public", 6, 1, KVL_SNMP_GET, 0, &o, 1};
    uint8_t buf[64];
    const char *why = NULL;
    assert_int_equal(kvl_snmp_ber_encode(&q, buf, sizeof(buf), &why), sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
    /* Exactly the size fits; one byte less does not. */
    assert_int_equal(kvl_snmp_ber_encode(&q, buf, sizeof(want), &why), sizeof(want));
    assert_int_equal(kvl_snmp_ber_encode(&q, buf, sizeof(want) - 1, &why), KVL_EINVAL);
    assert_non_null(why);
}

static void test_encode_getbulk(void **state)
{
    KVL_UNUSED(state);
    /* v2c GetBulkRequest, community "ab", request-id 0x12345678 (02 04 12 34 56 78),
     * non-repeaters 0, max-repetitions 10, two columns: ifInOctets 1.3.6.1.2.1.2.2.1.10
     * (2B 06 01 02 01 02 02 01 0A, 9 bytes) and ifOutOctets ..16 (.. 10).
     * varbind 30 0D {06 09 .., 05 00}; list 30 1E (2 x 15); PDU A5 2C: 6 + 3 + 3 + 32 = 44;
     * message 30 35 {02 01 01, 04 02 'a' 'b', PDU(46)}: 3 + 4 + 46 = 53. */
    static const uint8_t want[] = {
        0x30, 0x35, 0x02, 0x01, 0x01, 0x04, 0x02, 'a',  'b',  0xa5, 0x2c, 0x02, 0x04, 0x12,
        0x34, 0x56, 0x78, 0x02, 0x01, 0x00, 0x02, 0x01, 0x0a, 0x30, 0x1e, 0x30, 0x0d, 0x06,
        0x09, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x02, 0x02, 0x01, 0x0a, 0x05, 0x00, 0x30, 0x0d,
        0x06, 0x09, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x02, 0x02, 0x01, 0x10, 0x05, 0x00,
    };
    kvl_snmp_oid_t o[2] = {OID(1, 3, 6, 1, 2, 1, 2, 2, 1, 10), OID(1, 3, 6, 1, 2, 1, 2, 2, 1, 16)};
    kvl_snmp_ber_request_t q = {
        KVL_SNMP_BER_V2C, (const uint8_t *)"ab", 2, 0x12345678, KVL_SNMP_GETBULK, 10, o, 2};
    uint8_t buf[128];
    const char *why = NULL;
    assert_int_equal(kvl_snmp_ber_encode(&q, buf, sizeof(buf), &why), sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
    /* GetBulk does not exist in v1. */
    q.version = KVL_SNMP_BER_V1;
    assert_int_equal(kvl_snmp_ber_encode(&q, buf, sizeof(buf), &why), KVL_EINVAL);
}

static void test_encode_getnext_subids(void **state)
{
    KVL_UNUSED(state);
    /* v1 GetNextRequest, empty community, request-id 128 (02 02 00 80: a leading zero keeps
     * it positive), OID 2.999.128.4294967295.127:
     * first sub-identifier 2*40+999 = 1079 = 8*128+55: 88 37; 128: 81 00;
     * 2^32-1 = 0F 7F 7F 7F 7F in 7-bit groups: 8F FF FF FF 7F; 127: 7F. 10 bytes.
     * varbind 30 0E; list 30 10; PDU A1 1C: 4 + 3 + 3 + 18 = 28;
     * message 30 23 {02 01 00, 04 00, PDU(30)}: 3 + 2 + 30 = 35. */
    static const uint8_t want[] = {
        0x30, 0x23, 0x02, 0x01, 0x00, 0x04, 0x00, 0xa1, 0x1c, 0x02, 0x02, 0x00, 0x80,
        0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x10, 0x30, 0x0e, 0x06, 0x0a, 0x88,
        0x37, 0x81, 0x00, 0x8f, 0xff, 0xff, 0xff, 0x7f, 0x7f, 0x05, 0x00,
    };
    kvl_snmp_oid_t o = OID(2, 999, 128, 4294967295u, 127);
    kvl_snmp_ber_request_t q = {
        KVL_SNMP_BER_V1, (const uint8_t *)"", 0, 128, KVL_SNMP_GETNEXT, 0, &o, 1};
    uint8_t buf[64];
    const char *why = NULL;
    assert_int_equal(kvl_snmp_ber_encode(&q, buf, sizeof(buf), &why), sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));

    /* OIDs that have no encoding. */
    kvl_snmp_oid_t bad[] = {OID(1), OID(3, 1), OID(1, 40)};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        q.oids = &bad[i];
        assert_int_equal(kvl_snmp_ber_encode(&q, buf, sizeof(buf), &why), KVL_EINVAL);
    }
}

static void test_encode_long_lengths(void **state)
{
    KVL_UNUSED(state);
    /* 60 OIDs of 12 sub-identifiers: the list needs a two-byte long-form length (82 ..). */
    kvl_snmp_oid_t o[60];
    for (size_t i = 0; i < 60; i++) {
        o[i] = OID(1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 1000);
        o[i].sub[11] = (uint32_t)(1000 + i);
    }
    kvl_snmp_ber_request_t q = {
        KVL_SNMP_BER_V2C, (const uint8_t *)"public", 6, -5, KVL_SNMP_GET, 0, o, 60};
    uint8_t buf[2048];
    const char *why = NULL;
    int n = kvl_snmp_ber_encode(&q, buf, sizeof(buf), &why);
    /* varbind: OID 10 + 2 bytes (1000.. = 87 68..) = 12, TLV 14, +2 NULL = 16, TLV 18;
     * list 60 * 18 = 1080 (30 82 04 38); PDU 3+3+3+1084 = 1093 (A0 82 04 45);
     * message 3 + 8 + 1097 = 1108 (30 82 04 54), total 1112. */
    assert_int_equal(n, 1112);
    static const uint8_t head[] = {0x30, 0x82, 0x04, 0x54};
    assert_memory_equal(buf, head, 4);
    static const uint8_t pdu[] = {0xa0, 0x82, 0x04, 0x45, 0x02, 0x01, 0xfb}; /* id -5 */
    assert_memory_equal(buf + 4 + 3 + 8, pdu, sizeof(pdu));
}

/* --- decoding ----------------------------------------------------------------------------- */

/* A v2c Response "public", request-id 1, sysUpTime.0 = TimeTicks 0x01020304, by hand:
 * varbind {06 08 .., 43 04 ..} 16 bytes; list 30 12; PDU A2 1D (9 + 20); message 30 2A
 * (3 + 8 + 31). */
static const uint8_t small_resp[] = {
    0x30, 0x2a, 0x02, 0x01, 0x01, 0x04, 0x06, 'p',  'u',  'b',  'l',  'i',  'c',  0xa2, 0x1d,
    0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x12, 0x30, 0x10, 0x06, 0x08,
    0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x03, 0x00, 0x43, 0x04, 0x01, 0x02, 0x03, 0x04,
};

static void test_decode_small(void **state)
{
    KVL_UNUSED(state);
    kvl_snmp_ber_response_t r;
    const char *why;
    assert_int_equal(decode(small_resp, sizeof(small_resp), &r, CAP, &why), 0);
    assert_int_equal(r.version, KVL_SNMP_BER_V2C);
    assert_int_equal(r.community_len, 6);
    assert_memory_equal(r.community, "public", 6);
    assert_int_equal(r.request_id, 1);
    assert_int_equal(r.error_status, 0);
    assert_int_equal(r.error_index, 0);
    assert_int_equal(r.n_vbs, 1);
    kvl_snmp_oid_t want = OID(1, 3, 6, 1, 2, 1, 1, 3, 0);
    assert_int_equal(kvl_snmp_oid_cmp(&vbs[0].oid, &want), 0);
    assert_int_equal(vbs[0].type, KVL_SNMP_T_TIMETICKS);
    assert_int_equal(vbs[0].u, 0x01020304u);
}

/* Writes tag, a definite length and n content bytes at out; returns the bytes written. */
static size_t tlv(uint8_t *out, uint8_t tag, const uint8_t *c, size_t n)
{
    size_t k = 0;
    out[k++] = tag;
    if (n < 0x80) {
        out[k++] = (uint8_t)n;
    } else if (n <= 0xff) {
        out[k++] = 0x81;
        out[k++] = (uint8_t)n;
    } else {
        out[k++] = 0x82;
        out[k++] = (uint8_t)(n >> 8);
        out[k++] = (uint8_t)n;
    }
    memmove(out + k, c, n);
    return k + n;
}

/* A response: version, community "c", request-id 7, error-status es, error-index ei and the
 * varbind list contents l (n bytes) into out; returns its length. */
static size_t response(uint8_t *out, uint8_t version, uint8_t es, uint8_t ei, const uint8_t *l,
                       size_t n)
{
    uint8_t pdu[4096], msg[4096];
    size_t p = 0, m = 0;
    const uint8_t hdr[] = {0x02, 0x01, 0x07, 0x02, 0x01, es, 0x02, 0x01, ei};
    memcpy(pdu, hdr, sizeof(hdr));
    p = sizeof(hdr);
    p += tlv(pdu + p, 0x30, l, n);
    msg[m++] = 0x02;
    msg[m++] = 0x01;
    msg[m++] = version;
    m += tlv(msg + m, 0x04, (const uint8_t *)"c", 1);
    m += tlv(msg + m, 0xa2, pdu, p);
    return tlv(out, 0x30, msg, m);
}

/* Appends a varbind with name 1.3.6.1.4.1.<i> (2B 06 01 04 01 i) and the value TLV v. */
static size_t add_vb(uint8_t *list, size_t at, uint8_t i, const uint8_t *v, size_t vn)
{
    uint8_t vb[512];
    const uint8_t name[] = {0x06, 0x06, 0x2b, 0x06, 0x01, 0x04, 0x01, i};
    memcpy(vb, name, sizeof(name));
    memcpy(vb + sizeof(name), v, vn);
    return at + tlv(list + at, 0x30, vb, sizeof(name) + vn);
}

#define ADD(list, at, i, ...)                                                                      \
    add_vb(list, at, i, (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__}))

static size_t every_type(uint8_t *out)
{
    uint8_t l[1024];
    size_t n = 0;
    n = ADD(l, n, 1, 0x02, 0x01, 0xff);                               /* INTEGER -1 */
    n = ADD(l, n, 2, 0x02, 0x02, 0xff, 0x7f);                         /* INTEGER -129 */
    n = ADD(l, n, 3, 0x04, 0x03, 'a', 0x00, 'b');                     /* OCTET STRING */
    n = ADD(l, n, 4, 0x05, 0x00);                                     /* NULL */
    n = ADD(l, n, 5, 0x06, 0x04, 0x2b, 0x06, 0x81, 0x00);             /* OID 1.3.6.128 */
    n = ADD(l, n, 6, 0x40, 0x04, 10, 0, 0, 1);                        /* IpAddress */
    n = ADD(l, n, 7, 0x41, 0x05, 0x00, 0xff, 0xff, 0xff, 0xff);       /* Counter32 max */
    n = ADD(l, n, 8, 0x42, 0x01, 0x2a);                               /* Gauge32 42 */
    n = ADD(l, n, 9, 0x43, 0x03, 0x01, 0x00, 0x00);                   /* TimeTicks 65536 */
    n = ADD(l, n, 10, 0x44, 0x02, 0x9f, 0x78);                        /* Opaque */
    n = ADD(l, n, 11, 0x46, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, /* Counter64 max */
            0xff, 0xff, 0xff);
    n = ADD(l, n, 12, 0x80, 0x00);                            /* noSuchObject */
    n = ADD(l, n, 13, 0x81, 0x00);                            /* noSuchInstance */
    n = ADD(l, n, 14, 0x82, 0x00);                            /* endOfMibView */
    n = ADD(l, n, 15, 0x02, 0x08, 0x80, 0, 0, 0, 0, 0, 0, 0); /* INTEGER min */
    n = ADD(l, n, 16, 0x40, 0x03, 1, 2, 3);                   /* IpAddress, 3 bytes */
    n = ADD(l, n, 17, 0x47, 0x01, 0x05);                      /* unknown tag */
    return response(out, 1, 0, 0, l, n);
}

static void test_decode_every_type(void **state)
{
    KVL_UNUSED(state);
    static kvl_snmp_vb_t many[32];
    static kvl_snmp_oid_t many_oids[32];
    uint8_t p[2048];
    size_t n = every_type(p);
    kvl_snmp_ber_response_t r;
    const char *why = NULL;
    assert_int_equal(kvl_snmp_ber_decode(p, n, &r, many, many_oids, 32, &why), 0);
    assert_int_equal(r.n_vbs, 17);
    assert_int_equal(r.request_id, 7);
    for (size_t i = 0; i < r.n_vbs; i++) {
        kvl_snmp_oid_t want = OID(1, 3, 6, 1, 4, 1, 0);
        want.sub[6] = (uint32_t)(i + 1);
        assert_int_equal(kvl_snmp_oid_cmp(&many[i].oid, &want), 0);
    }
    assert_int_equal(many[0].type, KVL_SNMP_T_INTEGER);
    assert_int_equal(many[0].integer, -1);
    assert_int_equal(many[1].integer, -129);
    assert_int_equal(many[2].type, KVL_SNMP_T_OCTETS);
    assert_int_equal(many[2].str_len, 3);
    assert_memory_equal(many[2].str, "a\0b", 3);
    assert_int_equal(many[3].type, KVL_SNMP_T_NULL);
    assert_int_equal(many[4].type, KVL_SNMP_T_OID);
    kvl_snmp_oid_t ov = OID(1, 3, 6, 128);
    assert_non_null(many[4].oid_value);
    assert_int_equal(kvl_snmp_oid_cmp(many[4].oid_value, &ov), 0);
    assert_int_equal(many[5].type, KVL_SNMP_T_IPADDRESS);
    assert_int_equal(many[5].str_len, 4);
    assert_int_equal(many[5].str[0], 10);
    assert_int_equal(many[6].type, KVL_SNMP_T_COUNTER32);
    assert_int_equal(many[6].u, 0xffffffffu);
    assert_int_equal(many[7].type, KVL_SNMP_T_GAUGE32);
    assert_int_equal(many[7].u, 42);
    assert_int_equal(many[8].type, KVL_SNMP_T_TIMETICKS);
    assert_int_equal(many[8].u, 65536);
    assert_int_equal(many[9].type, KVL_SNMP_T_OPAQUE);
    assert_int_equal(many[9].str_len, 2);
    assert_int_equal(many[10].type, KVL_SNMP_T_COUNTER64);
    assert_true(many[10].u == UINT64_MAX);
    assert_int_equal(many[11].type, KVL_SNMP_T_NO_SUCH_OBJECT);
    assert_int_equal(many[12].type, KVL_SNMP_T_NO_SUCH_INSTANCE);
    assert_int_equal(many[13].type, KVL_SNMP_T_END_OF_MIB_VIEW);
    assert_true(many[14].integer == INT64_MIN);
    assert_int_equal(many[15].type, KVL_SNMP_T_OTHER);
    assert_int_equal(many[16].type, KVL_SNMP_T_OTHER);
    for (size_t i = 0; i < r.n_vbs; i++) {
        assert_true(many[i].type == KVL_SNMP_T_OID || many[i].oid_value == NULL);
    }

    /* Every prefix is an error; every one-byte change decodes or fails, never crashes. */
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(kvl_snmp_ber_decode(p, k, &r, many, many_oids, 32, &why), KVL_EDECODE);
        assert_non_null(why);
    }
    for (size_t k = 0; k < n; k++) {
        uint8_t saved = p[k];
        for (unsigned b = 0; b < 256; b++) {
            p[k] = (uint8_t)b;
            (void)kvl_snmp_ber_decode(p, n, &r, many, many_oids, 32, &why);
        }
        p[k] = saved;
    }
}

static void test_decode_truncated_small(void **state)
{
    KVL_UNUSED(state);
    kvl_snmp_ber_response_t r;
    const char *why;
    /* Copied to the heap at exactly k bytes so ASan sees a read past the end. */
    for (size_t k = 0; k < sizeof(small_resp); k++) {
        uint8_t *p = malloc(k > 0 ? k : 1);
        assert_non_null(p);
        memcpy(p, small_resp, k);
        assert_int_equal(decode(p, k, &r, CAP, &why), KVL_EDECODE);
        assert_non_null(why);
        free(p);
    }
}

static void expect_error(const uint8_t *p, size_t n)
{
    kvl_snmp_ber_response_t r;
    const char *why;
    assert_int_equal(decode(p, n, &r, CAP, &why), KVL_EDECODE);
    assert_non_null(why);
}

static void test_decode_lying_lengths(void **state)
{
    KVL_UNUSED(state);
    uint8_t p[sizeof(small_resp) + 4];
    memcpy(p, small_resp, sizeof(small_resp));
    /* Outer length one too long, then one too short (a byte left after the message). */
    p[1] = 0x2b;
    expect_error(p, sizeof(small_resp));
    p[1] = 0x29;
    expect_error(p, sizeof(small_resp));
    p[1] = 0x2a;
    /* A byte after the message. */
    p[sizeof(small_resp)] = 0;
    expect_error(p, sizeof(small_resp) + 1);
    /* Varbind length beyond its list. */
    memcpy(p, small_resp, sizeof(small_resp));
    p[27] = 0x11;
    expect_error(p, sizeof(small_resp));
    /* Value length beyond its varbind, and short of it. */
    memcpy(p, small_resp, sizeof(small_resp));
    p[39] = 0x05;
    expect_error(p, sizeof(small_resp));
    p[39] = 0x03;
    expect_error(p, sizeof(small_resp));
    /* Indefinite length; a 5-byte length field; long form with a huge length. */
    memcpy(p, small_resp, sizeof(small_resp));
    p[1] = 0x80;
    expect_error(p, sizeof(small_resp));
    p[1] = 0x85;
    expect_error(p, sizeof(small_resp));
    static const uint8_t huge[] = {0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x02, 0x01, 0x01};
    expect_error(huge, sizeof(huge));
    /* Non-minimal long form is still BER: 30 81 2A. */
    uint8_t q[sizeof(small_resp) + 1];
    q[0] = 0x30;
    q[1] = 0x81;
    memcpy(q + 2, small_resp + 1, sizeof(small_resp) - 1);
    kvl_snmp_ber_response_t r;
    const char *why;
    assert_int_equal(decode(q, sizeof(q), &r, CAP, &why), 0);
    /* High tag number form. */
    memcpy(p, small_resp, sizeof(small_resp));
    p[38] = 0x5f;
    expect_error(p, sizeof(small_resp));
}

static void test_decode_not_response(void **state)
{
    KVL_UNUSED(state);
    uint8_t p[sizeof(small_resp)];
    memcpy(p, small_resp, sizeof(small_resp));
    const uint8_t others[] = {0xa0, 0xa1, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8};
    for (size_t i = 0; i < sizeof(others); i++) {
        p[13] = others[i];
        expect_error(p, sizeof(p));
    }
    memcpy(p, small_resp, sizeof(small_resp));
    p[4] = 3; /* SNMPv3 */
    expect_error(p, sizeof(p));
    p[4] = 0; /* v1 is fine */
    kvl_snmp_ber_response_t r;
    const char *why;
    assert_int_equal(decode(p, sizeof(p), &r, CAP, &why), 0);
    assert_int_equal(r.version, KVL_SNMP_BER_V1);
}

static void test_decode_integers(void **state)
{
    KVL_UNUSED(state);
    uint8_t p[512], l[256];
    kvl_snmp_ber_response_t r;
    const char *why;
    size_t n;
    /* INTEGER of 9 bytes, empty INTEGER, Counter64 of 9 bytes without the leading zero,
     * Counter64 of 10 bytes, NULL with contents: each an error. */
    n = ADD(l, 0, 1, 0x02, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 1);
    expect_error(p, response(p, 1, 0, 0, l, n));
    n = ADD(l, 0, 1, 0x02, 0x00);
    expect_error(p, response(p, 1, 0, 0, l, n));
    n = ADD(l, 0, 1, 0x46, 0x09, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    expect_error(p, response(p, 1, 0, 0, l, n));
    n = ADD(l, 0, 1, 0x46, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
    expect_error(p, response(p, 1, 0, 0, l, n));
    n = ADD(l, 0, 1, 0x05, 0x01, 0x00);
    expect_error(p, response(p, 1, 0, 0, l, n));
    n = ADD(l, 0, 1, 0x82, 0x01, 0x00);
    expect_error(p, response(p, 1, 0, 0, l, n));
    /* Counter64 of 8 bytes with the top bit set is still its unsigned value. */
    n = ADD(l, 0, 1, 0x46, 0x08, 0x80, 0, 0, 0, 0, 0, 0, 1);
    assert_int_equal(decode(p, response(p, 1, 0, 0, l, n), &r, CAP, &why), 0);
    assert_true(vbs[0].u == 0x8000000000000001ull);
    /* Counter32 beyond 32 bits keeps its low 32 bits. */
    n = ADD(l, 0, 1, 0x41, 0x05, 0x01, 0, 0, 0, 7);
    assert_int_equal(decode(p, response(p, 1, 0, 0, l, n), &r, CAP, &why), 0);
    assert_int_equal(vbs[0].u, 7);
    /* error-status and error-index come through. */
    n = ADD(l, 0, 1, 0x05, 0x00);
    assert_int_equal(decode(p, response(p, 1, 2, 1, l, n), &r, CAP, &why), 0);
    assert_int_equal(r.error_status, KVL_SNMP_ERR_NO_SUCH_NAME);
    assert_int_equal(r.error_index, 1);
    /* A request-id beyond 32 bits is an error. */
    static const uint8_t bigid[] = {0x30, 0x16, 0x02, 0x01, 0x01, 0x04, 0x00, 0xa2,
                                    0x0f, 0x02, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00,
                                    0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x00};
    expect_error(bigid, sizeof(bigid));
    /* The same with a 4-byte id decodes, with no varbinds. */
    static const uint8_t id4[] = {0x30, 0x15, 0x02, 0x01, 0x01, 0x04, 0x00, 0xa2,
                                  0x0e, 0x02, 0x04, 0x80, 0x00, 0x00, 0x00, 0x02,
                                  0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x00};
    assert_int_equal(decode(id4, sizeof(id4), &r, CAP, &why), 0);
    assert_int_equal(r.request_id, INT32_MIN);
    assert_int_equal(r.n_vbs, 0);
}

static void test_decode_oids(void **state)
{
    KVL_UNUSED(state);
    uint8_t p[1024], l[512];
    kvl_snmp_ber_response_t r;
    const char *why;
    size_t n;
    /* Value OIDs: 0x80 leading a sub-identifier, and an OID ending inside one: errors. */
    n = ADD(l, 0, 1, 0x06, 0x03, 0x2b, 0x80, 0x01);
    expect_error(p, response(p, 1, 0, 0, l, n));
    n = ADD(l, 0, 1, 0x06, 0x02, 0x2b, 0x81);
    expect_error(p, response(p, 1, 0, 0, l, n));
    n = ADD(l, 0, 1, 0x06, 0x00);
    expect_error(p, response(p, 1, 0, 0, l, n));
    /* 127 is one byte, 128 two (81 00), 16383 two (FF 7F), 16384 three (81 80 00). */
    n = ADD(l, 0, 1, 0x06, 0x09, 0x2b, 0x7f, 0x81, 0x00, 0xff, 0x7f, 0x81, 0x80, 0x00);
    assert_int_equal(decode(p, response(p, 1, 0, 0, l, n), &r, CAP, &why), 0);
    kvl_snmp_oid_t want = OID(1, 3, 127, 128, 16383, 16384);
    assert_int_equal(kvl_snmp_oid_cmp(vbs[0].oid_value, &want), 0);
    /* First sub-identifier: 0 -> 0.0, 79 -> 1.39, 80 -> 2.0, 1079 -> 2.999. */
    n = ADD(l, 0, 1, 0x06, 0x01, 0x00);
    n = ADD(l, n, 2, 0x06, 0x01, 0x4f);
    n = ADD(l, n, 3, 0x06, 0x01, 0x50);
    n = ADD(l, n, 4, 0x06, 0x02, 0x88, 0x37);
    assert_int_equal(decode(p, response(p, 1, 0, 0, l, n), &r, CAP, &why), 0);
    kvl_snmp_oid_t w0 = OID(0, 0), w1 = OID(1, 39), w2 = OID(2, 0), w3 = OID(2, 999);
    assert_int_equal(kvl_snmp_oid_cmp(vbs[0].oid_value, &w0), 0);
    assert_int_equal(kvl_snmp_oid_cmp(vbs[1].oid_value, &w1), 0);
    assert_int_equal(kvl_snmp_oid_cmp(vbs[2].oid_value, &w2), 0);
    assert_int_equal(kvl_snmp_oid_cmp(vbs[3].oid_value, &w3), 0);
    /* 2^32 (90 80 80 80 00) cuts the OID before it; so does a 12-byte sub-identifier. */
    n = ADD(l, 0, 1, 0x06, 0x08, 0x2b, 0x06, 0x90, 0x80, 0x80, 0x80, 0x00, 0x05);
    n = ADD(l, n, 2, 0x06, 0x0e, 0x2b, 0x06, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0x7f);
    assert_int_equal(decode(p, response(p, 1, 0, 0, l, n), &r, CAP, &why), 0);
    kvl_snmp_oid_t cut = OID(1, 3, 6);
    assert_int_equal(kvl_snmp_oid_cmp(vbs[0].oid_value, &cut), 0);
    assert_int_equal(kvl_snmp_oid_cmp(vbs[1].oid_value, &cut), 0);
    /* A name of 70 sub-identifiers is cut to KVL_SNMP_MAX_OID_LEN. */
    uint8_t name[80], vb[100];
    name[0] = 0x2b;
    for (size_t i = 1; i < 69; i++) {
        name[i] = (uint8_t)i;
    }
    size_t vn = tlv(vb, 0x06, name, 69);
    vb[vn++] = 0x05;
    vb[vn++] = 0x00;
    n = tlv(l, 0x30, vb, vn);
    assert_int_equal(decode(p, response(p, 1, 0, 0, l, n), &r, CAP, &why), 0);
    assert_int_equal(vbs[0].oid.len, KVL_SNMP_MAX_OID_LEN);
    assert_int_equal(vbs[0].oid.sub[KVL_SNMP_MAX_OID_LEN - 1], KVL_SNMP_MAX_OID_LEN - 2);
}

static void test_decode_too_many(void **state)
{
    KVL_UNUSED(state);
    uint8_t p[512], l[256];
    kvl_snmp_ber_response_t r;
    const char *why;
    size_t n = ADD(l, 0, 1, 0x05, 0x00);
    n = ADD(l, n, 2, 0x05, 0x00);
    n = ADD(l, n, 3, 0x05, 0x00);
    size_t len = response(p, 1, 0, 0, l, n);
    assert_int_equal(decode(p, len, &r, 3, &why), 0);
    assert_int_equal(r.n_vbs, 3);
    assert_int_equal(decode(p, len, &r, 2, &why), KVL_EDECODE);
    assert_ptr_equal(why, KVL_SNMP_BER_TOO_MANY);
    assert_int_equal(decode(p, len, &r, 0, &why), KVL_EDECODE);
}

static void test_roundtrip_request_shape(void **state)
{
    KVL_UNUSED(state);
    /* Our own request turned into a Response (tag A2) decodes to the same OIDs. */
    kvl_snmp_oid_t o[3] = {OID(1, 3, 6, 1, 2, 1, 1, 3, 0), OID(1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 7),
                           OID(1, 3, 6, 1, 4, 1, 9, 9, 4294967295u)};
    kvl_snmp_ber_request_t q = {
        KVL_SNMP_BER_V2C, (const uint8_t *)"x", 1, 99, KVL_SNMP_GET, 0, o, 3};
    uint8_t buf[256];
    const char *why;
    int n = kvl_snmp_ber_encode(&q, buf, sizeof(buf), &why);
    assert_true(n > 0);
    assert_int_equal(buf[7], 'x'); /* 30 43 02 01 01 04 01 'x' A0 .. */
    buf[8] = 0xa2;
    kvl_snmp_ber_response_t r;
    assert_int_equal(decode(buf, (size_t)n, &r, CAP, &why), 0);
    assert_int_equal(r.request_id, 99);
    assert_int_equal(r.n_vbs, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(kvl_snmp_oid_cmp(&vbs[i].oid, &o[i]), 0);
        assert_int_equal(vbs[i].type, KVL_SNMP_T_NULL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_get),
        cmocka_unit_test(test_encode_getbulk),
        cmocka_unit_test(test_encode_getnext_subids),
        cmocka_unit_test(test_encode_long_lengths),
        cmocka_unit_test(test_decode_small),
        cmocka_unit_test(test_decode_every_type),
        cmocka_unit_test(test_decode_truncated_small),
        cmocka_unit_test(test_decode_lying_lengths),
        cmocka_unit_test(test_decode_not_response),
        cmocka_unit_test(test_decode_integers),
        cmocka_unit_test(test_decode_oids),
        cmocka_unit_test(test_decode_too_many),
        cmocka_unit_test(test_roundtrip_request_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
