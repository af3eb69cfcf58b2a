/*
 * snmp_ber.c — BER encoding of v1/v2c requests and decoding of Response messages (see
 * snmp_ber.h). Written from X.690 (basic encoding rules) and RFC 1157 / RFC 3416 (message
 * and PDU layouts):
 *
 *   Message   ::= SEQUENCE { version INTEGER, community OCTET STRING, data PDU }
 *   PDU       ::= [tag] IMPLICIT SEQUENCE { request-id INTEGER, error-status INTEGER
 *                 (non-repeaters in GetBulk), error-index INTEGER (max-repetitions),
 *                 variable-bindings SEQUENCE OF SEQUENCE { name OBJECT IDENTIFIER, value } }
 *
 * Encoding computes every length first, checks the total against the buffer once, then
 * writes front to back. Decoding walks nested readers, each bounded by its enclosing TLV.
 */
#include "snmp_ber.h"

#include <string.h>

#include "kvl.h"

/* Tags (X.690 identifier octets; application and context tags from RFC 2578, RFC 3416). */
enum {
    TAG_INTEGER = 0x02,
    TAG_OCTETS = 0x04,
    TAG_NULL = 0x05,
    TAG_OID = 0x06,
    TAG_SEQUENCE = 0x30,
    TAG_IPADDRESS = 0x40,
    TAG_COUNTER32 = 0x41,
    TAG_GAUGE32 = 0x42,
    TAG_TIMETICKS = 0x43,
    TAG_OPAQUE = 0x44,
    TAG_COUNTER64 = 0x46,
    TAG_NO_SUCH_OBJECT = 0x80,
    TAG_NO_SUCH_INSTANCE = 0x81,
    TAG_END_OF_MIB_VIEW = 0x82,
    TAG_GET = 0xa0,
    TAG_GETNEXT = 0xa1,
    TAG_RESPONSE = 0xa2,
    TAG_GETBULK = 0xa5,
};

const char KVL_SNMP_BER_TOO_MANY[] = "more varbinds than fit";

/* --- encoding --------------------------------------------------------------------------------- */

/* Bytes of a definite length field for n (short form, or 0x81..0x84 and n's bytes). */
static size_t len_size(size_t n)
{
    return n < 0x80 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : n <= 0xffffff ? 4 : 5;
}

static size_t tlv_size(size_t content)
{
    return 1 + len_size(content) + content;
}

/* Contents length of the shortest two's complement encoding of v. */
static size_t int_size(int64_t v)
{
    size_t n = 1;
    while (n < 8) {
        int64_t half = (int64_t)1 << (8 * n - 1);
        if (v >= -half && v < half) {
            break;
        }
        n++;
    }
    return n;
}

/* Bytes of one sub-identifier in base 128. */
static size_t subid_size(uint64_t v)
{
    size_t n = 1;
    while (n < 10 && (v >> (7 * n)) != 0) {
        n++;
    }
    return n;
}

/* Contents length of o, or 0 when it cannot be encoded. */
static size_t oid_size(const kvl_snmp_oid_t *o)
{
    if (o->len < 2 || o->len > KVL_SNMP_MAX_OID_LEN || o->sub[0] > 2 ||
        (o->sub[0] < 2 && o->sub[1] >= 40)) {
        return 0;
    }
    size_t n = subid_size((uint64_t)o->sub[0] * 40u + o->sub[1]);
    for (size_t i = 2; i < o->len; i++) {
        n += subid_size(o->sub[i]);
    }
    return n;
}

typedef struct writer {
    uint8_t *p;
    size_t pos;
} writer_t;

static void put_header(writer_t *w, uint8_t tag, size_t len)
{
    w->p[w->pos++] = tag;
    size_t k = len_size(len);
    if (k == 1) {
        w->p[w->pos++] = (uint8_t)len;
        return;
    }
    w->p[w->pos++] = (uint8_t)(0x80 | (k - 1));
    for (size_t i = k - 1; i > 0; i--) {
        w->p[w->pos++] = (uint8_t)(len >> (8 * (i - 1)));
    }
}

static void put_int(writer_t *w, int64_t v)
{
    size_t n = int_size(v);
    put_header(w, TAG_INTEGER, n);
    for (size_t i = n; i > 0; i--) {
        w->p[w->pos++] = (uint8_t)((uint64_t)v >> (8 * (i - 1)));
    }
}

static void put_subid(writer_t *w, uint64_t v)
{
    for (size_t i = subid_size(v); i > 0; i--) {
        uint8_t b = (uint8_t)((v >> (7 * (i - 1))) & 0x7f);
        w->p[w->pos++] = i > 1 ? (uint8_t)(b | 0x80) : b;
    }
}

int kvl_snmp_ber_encode(const kvl_snmp_ber_request_t *req, uint8_t *buf, size_t cap,
                        const char **why)
{
    uint8_t tag;
    int64_t second = 0, third = 0;
    switch (req->op) {
    case KVL_SNMP_GET:
        tag = TAG_GET;
        break;
    case KVL_SNMP_GETNEXT:
        tag = TAG_GETNEXT;
        break;
    case KVL_SNMP_GETBULK:
        tag = TAG_GETBULK;
        third = req->max_reps;
        break;
    default:
        *why = "unknown request type";
        return KVL_EINVAL;
    }
    if (req->version != KVL_SNMP_BER_V1 && req->version != KVL_SNMP_BER_V2C) {
        *why = "unknown version";
        return KVL_EINVAL;
    }
    if (req->version == KVL_SNMP_BER_V1 && req->op == KVL_SNMP_GETBULK) {
        *why = "GetBulk does not exist in SNMPv1";
        return KVL_EINVAL;
    }
    if (req->community_len > cap || req->n_oids > cap) {
        *why = "request does not fit the buffer";
        return KVL_EINVAL;
    }
    size_t vbl = 0;
    for (size_t i = 0; i < req->n_oids; i++) {
        size_t o = oid_size(&req->oids[i]);
        if (o == 0) {
            *why = "OID cannot be encoded";
            return KVL_EINVAL;
        }
        vbl += tlv_size(tlv_size(o) + 2);
        if (vbl > cap) {
            *why = "request does not fit the buffer";
            return KVL_EINVAL;
        }
    }
    size_t pdu = tlv_size(int_size(req->request_id)) + tlv_size(int_size(second)) +
                 tlv_size(int_size(third)) + tlv_size(vbl);
    size_t msg = tlv_size(1) + tlv_size(req->community_len) + tlv_size(pdu);
    size_t total = tlv_size(msg);
    if (total > cap) {
        *why = "request does not fit the buffer";
        return KVL_EINVAL;
    }

    writer_t w = {buf, 0};
    put_header(&w, TAG_SEQUENCE, msg);
    put_int(&w, req->version);
    put_header(&w, TAG_OCTETS, req->community_len);
    if (req->community_len > 0) {
        memcpy(w.p + w.pos, req->community, req->community_len);
        w.pos += req->community_len;
    }
    put_header(&w, tag, pdu);
    put_int(&w, req->request_id);
    put_int(&w, second);
    put_int(&w, third);
    put_header(&w, TAG_SEQUENCE, vbl);
    for (size_t i = 0; i < req->n_oids; i++) {
        const kvl_snmp_oid_t *o = &req->oids[i];
        size_t os = oid_size(o);
        put_header(&w, TAG_SEQUENCE, tlv_size(os) + 2);
        put_header(&w, TAG_OID, os);
        put_subid(&w, (uint64_t)o->sub[0] * 40u + o->sub[1]);
        for (size_t j = 2; j < o->len; j++) {
            put_subid(&w, o->sub[j]);
        }
        w.p[w.pos++] = TAG_NULL;
        w.p[w.pos++] = 0;
    }
    return (int)w.pos;
}

/* --- decoding --------------------------------------------------------------------------------- */

typedef struct reader {
    const uint8_t *p;
    size_t len;
    size_t pos;
} reader_t;

typedef struct tlv {
    uint8_t tag;
    const uint8_t *v;
    size_t len;
} tlv_t;

/* Reads the next TLV of r into t. Returns 0, or KVL_EDECODE with *why. */
static int read_tlv(reader_t *r, tlv_t *t, const char **why)
{
    if (r->pos >= r->len) {
        *why = "truncated: identifier missing";
        return KVL_EDECODE;
    }
    t->tag = r->p[r->pos++];
    if ((t->tag & 0x1f) == 0x1f) {
        *why = "high tag number form";
        return KVL_EDECODE;
    }
    if (r->pos >= r->len) {
        *why = "truncated: length missing";
        return KVL_EDECODE;
    }
    uint8_t b = r->p[r->pos++];
    size_t n = b;
    if (b == 0x80) {
        *why = "indefinite length";
        return KVL_EDECODE;
    }
    if (b > 0x80) {
        size_t k = b & 0x7fu;
        if (k > 4) {
            *why = "length field longer than 4 bytes";
            return KVL_EDECODE;
        }
        if (r->len - r->pos < k) {
            *why = "truncated: inside a length";
            return KVL_EDECODE;
        }
        n = 0;
        for (size_t i = 0; i < k; i++) {
            n = (n << 8) | r->p[r->pos++];
        }
    }
    if (n > r->len - r->pos) {
        *why = "length beyond the enclosing value";
        return KVL_EDECODE;
    }
    t->v = r->p + r->pos;
    t->len = n;
    r->pos += n;
    return 0;
}

static int expect(reader_t *r, uint8_t tag, tlv_t *t, const char **why, const char *what)
{
    int rc = read_tlv(r, t, why);
    if (rc < 0) {
        return rc;
    }
    if (t->tag != tag) {
        *why = what;
        return KVL_EDECODE;
    }
    return 0;
}

/* Two's complement contents, sign-extended; n is 1..9 (9 only with the caller's leave). */
static uint64_t twos(const uint8_t *v, size_t n)
{
    uint64_t u = (v[0] & 0x80) != 0 ? UINT64_MAX : 0;
    for (size_t i = 0; i < n; i++) {
        u = (u << 8) | v[i];
    }
    return u;
}

static int get_int(const tlv_t *t, int64_t *out, const char **why)
{
    if (t->len == 0 || t->len > 8) {
        *why = t->len == 0 ? "empty INTEGER" : "INTEGER longer than 8 bytes";
        return KVL_EDECODE;
    }
    *out = (int64_t)twos(t->v, t->len);
    return 0;
}

/* Unsigned application types: 1..8 bytes, or 9 with a leading zero byte. */
static int get_unsigned(const tlv_t *t, uint64_t *out, const char **why)
{
    if (t->len == 0 || t->len > 9 || (t->len == 9 && t->v[0] != 0)) {
        *why = t->len == 0 ? "empty unsigned value" : "unsigned value longer than 64 bits";
        return KVL_EDECODE;
    }
    *out = twos(t->v, t->len);
    return 0;
}

static int get_int32(reader_t *r, int32_t *out, const char **why, const char *what)
{
    tlv_t t;
    int64_t v;
    int rc = expect(r, TAG_INTEGER, &t, why, what);
    if (rc < 0 || (rc = get_int(&t, &v, why)) < 0) {
        return rc;
    }
    if (v < INT32_MIN || v > INT32_MAX) {
        *why = "INTEGER field out of range";
        return KVL_EDECODE;
    }
    *out = (int32_t)v;
    return 0;
}

static void oid_push(kvl_snmp_oid_t *o, uint64_t v, bool *cut)
{
    if (*cut || v > UINT32_MAX || o->len == KVL_SNMP_MAX_OID_LEN) {
        *cut = true;
        return;
    }
    o->sub[o->len++] = (uint32_t)v;
}

/* Decodes OBJECT IDENTIFIER contents into o, cut as snmp_ber.h says. */
static int get_oid(const tlv_t *t, kvl_snmp_oid_t *o, const char **why)
{
    if (t->len == 0) {
        *why = "empty OBJECT IDENTIFIER";
        return KVL_EDECODE;
    }
    if ((t->v[t->len - 1] & 0x80) != 0) {
        *why = "OBJECT IDENTIFIER ends inside a sub-identifier";
        return KVL_EDECODE;
    }
    o->len = 0;
    bool cut = false;
    size_t i = 0;
    bool first = true;
    while (i < t->len) {
        if (t->v[i] == 0x80) {
            *why = "sub-identifier with a leading zero byte";
            return KVL_EDECODE;
        }
        uint64_t x = 0;
        bool big = false;
        uint8_t b;
        do { /* stops at the latest on the last byte, whose high bit is clear */
            b = t->v[i++];
            if (x > (UINT64_MAX >> 7)) {
                big = true;
            } else {
                x = (x << 7) | (b & 0x7fu);
            }
        } while ((b & 0x80) != 0);
        if (big) {
            x = UINT64_MAX;
        }
        if (first) {
            first = false;
            uint64_t arc = x < 40 ? 0 : x < 80 ? 1 : 2;
            oid_push(o, arc, &cut);
            oid_push(o, x - arc * 40u, &cut);
        } else {
            oid_push(o, x, &cut);
        }
    }
    return 0;
}

static int get_value(const tlv_t *t, kvl_snmp_vb_t *vb, kvl_snmp_oid_t *oid_store, const char **why)
{
    vb->integer = 0;
    vb->u = 0;
    vb->str = NULL;
    vb->str_len = 0;
    vb->oid_value = NULL;
    int rc = 0;
    switch (t->tag) {
    case TAG_INTEGER:
        vb->type = KVL_SNMP_T_INTEGER;
        return get_int(t, &vb->integer, why);
    case TAG_NULL:
    case TAG_NO_SUCH_OBJECT:
    case TAG_NO_SUCH_INSTANCE:
    case TAG_END_OF_MIB_VIEW:
        if (t->len != 0) {
            *why = "NULL or exception value with contents";
            return KVL_EDECODE;
        }
        vb->type = t->tag == TAG_NULL               ? KVL_SNMP_T_NULL
                   : t->tag == TAG_NO_SUCH_OBJECT   ? KVL_SNMP_T_NO_SUCH_OBJECT
                   : t->tag == TAG_NO_SUCH_INSTANCE ? KVL_SNMP_T_NO_SUCH_INSTANCE
                                                    : KVL_SNMP_T_END_OF_MIB_VIEW;
        return 0;
    case TAG_OID:
        vb->type = KVL_SNMP_T_OID;
        rc = get_oid(t, oid_store, why);
        vb->oid_value = oid_store;
        return rc;
    case TAG_COUNTER32:
    case TAG_GAUGE32:
    case TAG_TIMETICKS:
        vb->type = t->tag == TAG_COUNTER32 ? KVL_SNMP_T_COUNTER32
                   : t->tag == TAG_GAUGE32 ? KVL_SNMP_T_GAUGE32
                                           : KVL_SNMP_T_TIMETICKS;
        rc = get_unsigned(t, &vb->u, why);
        vb->u &= UINT32_MAX; /* 32-bit types: only the low 32 bits count */
        return rc;
    case TAG_COUNTER64:
        vb->type = KVL_SNMP_T_COUNTER64;
        return get_unsigned(t, &vb->u, why);
    case TAG_OCTETS:
    case TAG_OPAQUE:
    case TAG_IPADDRESS:
        vb->type = t->tag == TAG_OCTETS   ? KVL_SNMP_T_OCTETS
                   : t->tag == TAG_OPAQUE ? KVL_SNMP_T_OPAQUE
                   : t->len == 4          ? KVL_SNMP_T_IPADDRESS
                                          : KVL_SNMP_T_OTHER;
        break;
    default:
        vb->type = KVL_SNMP_T_OTHER;
        break;
    }
    vb->str = t->v;
    vb->str_len = t->len;
    return 0;
}

static int end_of(const reader_t *r, const char **why, const char *what)
{
    if (r->pos != r->len) {
        *why = what;
        return KVL_EDECODE;
    }
    return 0;
}

int kvl_snmp_ber_decode(const uint8_t *pkt, size_t len, kvl_snmp_ber_response_t *out,
                        kvl_snmp_vb_t *vbs, kvl_snmp_oid_t *oid_values, size_t cap,
                        const char **why)
{
    reader_t top = {pkt, len, 0};
    tlv_t t;
    int64_t version;
    int rc;
    out->n_vbs = 0;
    if ((rc = expect(&top, TAG_SEQUENCE, &t, why, "message is not a SEQUENCE")) < 0 ||
        (rc = end_of(&top, why, "bytes after the message")) < 0) {
        return rc;
    }
    reader_t m = {t.v, t.len, 0};
    if ((rc = expect(&m, TAG_INTEGER, &t, why, "version is not an INTEGER")) < 0 ||
        (rc = get_int(&t, &version, why)) < 0) {
        return rc;
    }
    if (version != KVL_SNMP_BER_V1 && version != KVL_SNMP_BER_V2C) {
        *why = "not an SNMPv1 or v2c message";
        return KVL_EDECODE;
    }
    out->version = (int)version;
    if ((rc = expect(&m, TAG_OCTETS, &t, why, "community is not an OCTET STRING")) < 0) {
        return rc;
    }
    out->community = t.v;
    out->community_len = t.len;
    if ((rc = expect(&m, TAG_RESPONSE, &t, why, "not a Response-PDU")) < 0 ||
        (rc = end_of(&m, why, "bytes after the PDU")) < 0) {
        return rc;
    }
    reader_t pdu = {t.v, t.len, 0};
    if ((rc = get_int32(&pdu, &out->request_id, why, "request-id is not an INTEGER")) < 0 ||
        (rc = get_int32(&pdu, &out->error_status, why, "error-status is not an INTEGER")) < 0 ||
        (rc = get_int32(&pdu, &out->error_index, why, "error-index is not an INTEGER")) < 0 ||
        (rc = expect(&pdu, TAG_SEQUENCE, &t, why, "variable-bindings is not a SEQUENCE")) < 0 ||
        (rc = end_of(&pdu, why, "bytes after the variable-bindings")) < 0) {
        return rc;
    }
    reader_t list = {t.v, t.len, 0};
    size_t n = 0;
    while (list.pos < list.len) {
        if (n == cap) {
            *why = KVL_SNMP_BER_TOO_MANY;
            return KVL_EDECODE;
        }
        if ((rc = expect(&list, TAG_SEQUENCE, &t, why, "varbind is not a SEQUENCE")) < 0) {
            return rc;
        }
        reader_t vb = {t.v, t.len, 0};
        if ((rc = expect(&vb, TAG_OID, &t, why, "varbind name is not an OBJECT IDENTIFIER")) < 0 ||
            (rc = get_oid(&t, &vbs[n].oid, why)) < 0 || (rc = read_tlv(&vb, &t, why)) < 0 ||
            (rc = end_of(&vb, why, "bytes after a varbind value")) < 0 ||
            (rc = get_value(&t, &vbs[n], &oid_values[n], why)) < 0) {
            return rc;
        }
        n++;
    }
    out->n_vbs = n;
    return 0;
}
