/*
 * snmp_ber_prim.c — the BER primitives of snmp_ber_prim.h: TLV reading in nested readers,
 * INTEGER, unsigned and OBJECT IDENTIFIER contents, and the length arithmetic and header
 * and INTEGER writing of the encoders. Written from X.690.
 */
#include "snmp_ber_prim.h"

#include <string.h>

#include "kvl.h"

/* --- reading ---------------------------------------------------------------------------------- */

kvl_ber_reader_t kvl_ber_inside(const kvl_ber_tlv_t *t)
{
    return (kvl_ber_reader_t){.p = t->v, .len = t->len, .pos = 0};
}

int kvl_ber_read_tlv(kvl_ber_reader_t *r, kvl_ber_tlv_t *t, const char **why)
{
    t->at = r->p + r->pos;
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
        *why = "length beyond the enclosing value (truncated or forged)";
        return KVL_EDECODE;
    }
    t->v = r->p + r->pos;
    t->len = n;
    r->pos += n;
    return 0;
}

int kvl_ber_expect(kvl_ber_reader_t *r, uint8_t tag, kvl_ber_tlv_t *t, const char **why,
                   const char *what)
{
    int rc = kvl_ber_read_tlv(r, t, why);
    if (rc < 0) {
        return rc;
    }
    if (t->tag != tag) {
        *why = what;
        return KVL_EDECODE;
    }
    return 0;
}

int kvl_ber_end_of(const kvl_ber_reader_t *r, const char **why, const char *what)
{
    if (r->pos != r->len) {
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

int kvl_ber_get_int(const kvl_ber_tlv_t *t, int64_t *out, const char **why)
{
    if (t->len == 0 || t->len > 8) {
        *why = t->len == 0 ? "empty INTEGER" : "INTEGER longer than 8 bytes";
        return KVL_EDECODE;
    }
    *out = (int64_t)twos(t->v, t->len);
    return 0;
}

int kvl_ber_get_unsigned(const kvl_ber_tlv_t *t, uint64_t *out, const char **why)
{
    if (t->len == 0 || t->len > 9 || (t->len == 9 && t->v[0] != 0)) {
        *why = t->len == 0 ? "empty unsigned value" : "unsigned value longer than 64 bits";
        return KVL_EDECODE;
    }
    *out = twos(t->v, t->len);
    return 0;
}

int kvl_ber_get_int32(kvl_ber_reader_t *r, int32_t *out, const char **why, const char *what)
{
    kvl_ber_tlv_t t;
    int64_t v;
    int rc = kvl_ber_expect(r, KVL_BER_TAG_INTEGER, &t, why, what);
    if (rc < 0 || (rc = kvl_ber_get_int(&t, &v, why)) < 0) {
        return rc;
    }
    if (v < INT32_MIN || v > INT32_MAX) {
        *why = "INTEGER field out of 32-bit range";
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

int kvl_ber_get_oid(const kvl_ber_tlv_t *t, kvl_snmp_oid_t *o, bool *cut, const char **why)
{
    kvl_snmp_oid_t scratch;
    bool scratch_cut;
    if (o == NULL) {
        o = &scratch;
    }
    if (cut == NULL) {
        cut = &scratch_cut;
    }
    if (t->len == 0) {
        *why = "empty OBJECT IDENTIFIER";
        return KVL_EDECODE;
    }
    if ((t->v[t->len - 1] & 0x80) != 0) {
        *why = "OBJECT IDENTIFIER ends inside a sub-identifier";
        return KVL_EDECODE;
    }
    o->len = 0;
    *cut = false;
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
            oid_push(o, arc, cut);
            oid_push(o, x - arc * 40u, cut);
        } else {
            oid_push(o, x, cut);
        }
    }
    return 0;
}

int kvl_ber_get_value(const kvl_ber_tlv_t *t, kvl_ber_value_t *v, const char **why)
{
    memset(v, 0, sizeof(*v));
    switch (t->tag) {
    case KVL_BER_TAG_INTEGER:
        v->type = KVL_SNMP_T_INTEGER;
        return kvl_ber_get_int(t, &v->integer, why);
    case KVL_BER_TAG_NULL:
    case KVL_BER_TAG_NO_SUCH_OBJECT:
    case KVL_BER_TAG_NO_SUCH_INSTANCE:
    case KVL_BER_TAG_END_OF_MIB_VIEW:
        if (t->len != 0) {
            *why = "NULL or exception value with contents";
            return KVL_EDECODE;
        }
        v->type = t->tag == KVL_BER_TAG_NULL               ? KVL_SNMP_T_NULL
                  : t->tag == KVL_BER_TAG_NO_SUCH_OBJECT   ? KVL_SNMP_T_NO_SUCH_OBJECT
                  : t->tag == KVL_BER_TAG_NO_SUCH_INSTANCE ? KVL_SNMP_T_NO_SUCH_INSTANCE
                                                           : KVL_SNMP_T_END_OF_MIB_VIEW;
        return 0;
    case KVL_BER_TAG_OID:
        v->type = KVL_SNMP_T_OID;
        return 0;
    case KVL_BER_TAG_COUNTER32:
    case KVL_BER_TAG_GAUGE32:
    case KVL_BER_TAG_TIMETICKS: {
        v->type = t->tag == KVL_BER_TAG_COUNTER32 ? KVL_SNMP_T_COUNTER32
                  : t->tag == KVL_BER_TAG_GAUGE32 ? KVL_SNMP_T_GAUGE32
                                                  : KVL_SNMP_T_TIMETICKS;
        int rc = kvl_ber_get_unsigned(t, &v->u, why);
        v->u &= UINT32_MAX; /* 32-bit types: only the low 32 bits count */
        return rc;
    }
    case KVL_BER_TAG_COUNTER64:
        v->type = KVL_SNMP_T_COUNTER64;
        return kvl_ber_get_unsigned(t, &v->u, why);
    case KVL_BER_TAG_OCTETS:
    case KVL_BER_TAG_OPAQUE:
    case KVL_BER_TAG_IPADDRESS:
        v->type = t->tag == KVL_BER_TAG_OCTETS   ? KVL_SNMP_T_OCTETS
                  : t->tag == KVL_BER_TAG_OPAQUE ? KVL_SNMP_T_OPAQUE
                  : t->len == 4                  ? KVL_SNMP_T_IPADDRESS
                                                 : KVL_SNMP_T_OTHER;
        break;
    default:
        v->type = KVL_SNMP_T_OTHER;
        break;
    }
    v->has_str = true;
    v->str = t->v;
    v->str_len = t->len;
    return 0;
}

/* --- writing ---------------------------------------------------------------------------------- */

size_t kvl_ber_len_size(size_t n)
{
    return n < 0x80 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : n <= 0xffffff ? 4 : 5;
}

size_t kvl_ber_tlv_size(size_t content)
{
    return 1 + kvl_ber_len_size(content) + content;
}

size_t kvl_ber_int_size(int64_t v)
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

uint8_t *kvl_ber_put_header(uint8_t *w, uint8_t tag, size_t len)
{
    *w++ = tag;
    size_t k = kvl_ber_len_size(len);
    if (k == 1) {
        *w++ = (uint8_t)len;
        return w;
    }
    *w++ = (uint8_t)(0x80u | (k - 1));
    for (size_t i = k - 1; i > 0; i--) {
        *w++ = (uint8_t)(len >> (8 * (i - 1)));
    }
    return w;
}

uint8_t *kvl_ber_put_int(uint8_t *w, int64_t v)
{
    size_t n = kvl_ber_int_size(v);
    w = kvl_ber_put_header(w, KVL_BER_TAG_INTEGER, n);
    for (size_t i = n; i > 0; i--) {
        *w++ = (uint8_t)((uint64_t)v >> (8 * (i - 1)));
    }
    return w;
}

/* Contents length of h's PDU. */
static size_t pdu_size(const kvl_ber_msg_head_t *h)
{
    return kvl_ber_tlv_size(kvl_ber_int_size(h->request_id)) +
           kvl_ber_tlv_size(kvl_ber_int_size(h->second)) +
           kvl_ber_tlv_size(kvl_ber_int_size(h->third)) + kvl_ber_tlv_size(h->vbl_len);
}

/* Contents length of h's message. */
static size_t msg_size(const kvl_ber_msg_head_t *h)
{
    return kvl_ber_tlv_size(kvl_ber_int_size(h->version)) + kvl_ber_tlv_size(h->community_len) +
           kvl_ber_tlv_size(pdu_size(h));
}

size_t kvl_ber_msg_size(const kvl_ber_msg_head_t *h)
{
    return kvl_ber_tlv_size(msg_size(h));
}

uint8_t *kvl_ber_put_msg_head(uint8_t *w, const kvl_ber_msg_head_t *h)
{
    w = kvl_ber_put_header(w, KVL_BER_TAG_SEQUENCE, msg_size(h));
    w = kvl_ber_put_int(w, h->version);
    w = kvl_ber_put_header(w, KVL_BER_TAG_OCTETS, h->community_len);
    if (h->community_len > 0) {
        memcpy(w, h->community, h->community_len);
        w += h->community_len;
    }
    w = kvl_ber_put_header(w, h->pdu_tag, pdu_size(h));
    w = kvl_ber_put_int(w, h->request_id);
    w = kvl_ber_put_int(w, h->second);
    w = kvl_ber_put_int(w, h->third);
    return kvl_ber_put_header(w, KVL_BER_TAG_SEQUENCE, h->vbl_len);
}
