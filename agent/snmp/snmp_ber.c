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
#include "snmp_ber_prim.h"

/* PDU tags (RFC 3416); the value types' tags are in snmp_ber_prim.h. */
enum {
    TAG_GET = 0xa0,
    TAG_GETNEXT = 0xa1,
    TAG_RESPONSE = 0xa2,
    TAG_GETBULK = 0xa5,
};

const char KVL_SNMP_BER_TOO_MANY[] = "more varbinds than fit";

/* --- encoding --------------------------------------------------------------------------------- */

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

static uint8_t *put_subid(uint8_t *w, uint64_t v)
{
    for (size_t i = subid_size(v); i > 0; i--) {
        uint8_t b = (uint8_t)((v >> (7 * (i - 1))) & 0x7f);
        *w++ = i > 1 ? (uint8_t)(b | 0x80) : b;
    }
    return w;
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
        vbl += kvl_ber_tlv_size(kvl_ber_tlv_size(o) + 2);
        if (vbl > cap) {
            *why = "request does not fit the buffer";
            return KVL_EINVAL;
        }
    }
    kvl_ber_msg_head_t head = {.version = req->version,
                               .community = req->community,
                               .community_len = req->community_len,
                               .pdu_tag = tag,
                               .request_id = req->request_id,
                               .second = second,
                               .third = third,
                               .vbl_len = vbl};
    if (kvl_ber_msg_size(&head) > cap) {
        *why = "request does not fit the buffer";
        return KVL_EINVAL;
    }

    uint8_t *w = kvl_ber_put_msg_head(buf, &head);
    for (size_t i = 0; i < req->n_oids; i++) {
        const kvl_snmp_oid_t *o = &req->oids[i];
        size_t os = oid_size(o);
        w = kvl_ber_put_header(w, KVL_BER_TAG_SEQUENCE, kvl_ber_tlv_size(os) + 2);
        w = kvl_ber_put_header(w, KVL_BER_TAG_OID, os);
        w = put_subid(w, (uint64_t)o->sub[0] * 40u + o->sub[1]);
        for (size_t j = 2; j < o->len; j++) {
            w = put_subid(w, o->sub[j]);
        }
        *w++ = KVL_BER_TAG_NULL;
        *w++ = 0;
    }
    return (int)(w - buf);
}

/* --- decoding --------------------------------------------------------------------------------- */

static int get_value(const kvl_ber_tlv_t *t, kvl_snmp_vb_t *vb, kvl_snmp_oid_t *oid_store,
                     const char **why)
{
    kvl_ber_value_t v;
    int rc = kvl_ber_get_value(t, &v, why);
    vb->type = v.type;
    vb->integer = v.integer;
    vb->u = v.u;
    vb->str = v.str;
    vb->str_len = v.str_len;
    vb->oid_value = NULL;
    if (rc == 0 && v.type == KVL_SNMP_T_OID) {
        rc = kvl_ber_get_oid(t, oid_store, NULL, why);
        vb->oid_value = oid_store;
    }
    return rc;
}

int kvl_snmp_ber_decode(const uint8_t *pkt, size_t len, kvl_snmp_ber_response_t *out,
                        kvl_snmp_vb_t *vbs, kvl_snmp_oid_t *oid_values, size_t cap,
                        const char **why)
{
    kvl_ber_reader_t top = {pkt, len, 0};
    kvl_ber_tlv_t t;
    int64_t version;
    int rc;
    out->n_vbs = 0;
    if ((rc = kvl_ber_expect(&top, KVL_BER_TAG_SEQUENCE, &t, why, "message is not a SEQUENCE")) <
            0 ||
        (rc = kvl_ber_end_of(&top, why, "bytes after the message")) < 0) {
        return rc;
    }
    kvl_ber_reader_t m = {t.v, t.len, 0};
    if ((rc = kvl_ber_expect(&m, KVL_BER_TAG_INTEGER, &t, why, "version is not an INTEGER")) < 0 ||
        (rc = kvl_ber_get_int(&t, &version, why)) < 0) {
        return rc;
    }
    if (version != KVL_SNMP_BER_V1 && version != KVL_SNMP_BER_V2C) {
        *why = "not an SNMPv1 or v2c message";
        return KVL_EDECODE;
    }
    out->version = (int)version;
    if ((rc = kvl_ber_expect(&m, KVL_BER_TAG_OCTETS, &t, why, "community is not an OCTET STRING")) <
        0) {
        return rc;
    }
    out->community = t.v;
    out->community_len = t.len;
    if ((rc = kvl_ber_expect(&m, TAG_RESPONSE, &t, why, "not a Response-PDU")) < 0 ||
        (rc = kvl_ber_end_of(&m, why, "bytes after the PDU")) < 0) {
        return rc;
    }
    kvl_ber_reader_t pdu = {t.v, t.len, 0};
    if ((rc = kvl_ber_get_int32(&pdu, &out->request_id, why, "request-id is not an INTEGER")) < 0 ||
        (rc = kvl_ber_get_int32(&pdu, &out->error_status, why, "error-status is not an INTEGER")) <
            0 ||
        (rc = kvl_ber_get_int32(&pdu, &out->error_index, why, "error-index is not an INTEGER")) <
            0 ||
        (rc = kvl_ber_expect(&pdu, KVL_BER_TAG_SEQUENCE, &t, why,
                             "variable-bindings is not a SEQUENCE")) < 0 ||
        (rc = kvl_ber_end_of(&pdu, why, "bytes after the variable-bindings")) < 0) {
        return rc;
    }
    kvl_ber_reader_t list = {t.v, t.len, 0};
    size_t n = 0;
    while (list.pos < list.len) {
        if (n == cap) {
            *why = KVL_SNMP_BER_TOO_MANY;
            return KVL_EDECODE;
        }
        if ((rc = kvl_ber_expect(&list, KVL_BER_TAG_SEQUENCE, &t, why,
                                 "varbind is not a SEQUENCE")) < 0) {
            return rc;
        }
        kvl_ber_reader_t vb = {t.v, t.len, 0};
        if ((rc = kvl_ber_expect(&vb, KVL_BER_TAG_OID, &t, why,
                                 "varbind name is not an OBJECT IDENTIFIER")) < 0 ||
            (rc = kvl_ber_get_oid(&t, &vbs[n].oid, NULL, why)) < 0 ||
            (rc = kvl_ber_read_tlv(&vb, &t, why)) < 0 ||
            (rc = kvl_ber_end_of(&vb, why, "bytes after a varbind value")) < 0 ||
            (rc = get_value(&t, &vbs[n], &oid_values[n], why)) < 0) {
            return rc;
        }
        n++;
    }
    out->n_vbs = n;
    return 0;
}
