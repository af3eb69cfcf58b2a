/*
 * trap_pdu.c — the trap port's codec (see trap_pdu.h). Written from X.690 (BER), RFC 1157
 * (Trap-PDU), RFC 3416 (SNMPv2-Trap-PDU, InformRequest-PDU, Response-PDU) and RFC 3584
 * section 3.1 (v1 to v2 conversion):
 *
 *   Message   ::= SEQUENCE { version INTEGER, community OCTET STRING, data PDU }
 *   Trap-PDU  ::= [4] IMPLICIT SEQUENCE { enterprise OBJECT IDENTIFIER, agent-addr IpAddress,
 *                 generic-trap INTEGER, specific-trap INTEGER, time-stamp TimeTicks,
 *                 variable-bindings }
 *   v2 PDUs   ::= [6] / [7] IMPLICIT SEQUENCE { request-id, error-status, error-index,
 *                 variable-bindings }   (the first two varbinds: sysUpTime.0, snmpTrapOID.0)
 *
 * The varbind list is walked twice: once to check it and count what it holds (varbinds, OID
 * values, string bytes), then, after one allocation of exactly that size, to copy it out.
 */
#include "trap_pdu.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "snmp_ber_prim.h"
#include "snmp_text.h"

/* PDU tags (RFC 1157, RFC 3416); the value types' tags are in snmp_ber_prim.h. */
enum {
    TAG_RESPONSE = 0xa2,
    TAG_V1_TRAP = 0xa4,
    TAG_INFORM = 0xa6,
    TAG_V2_TRAP = 0xa7,
};

/* sysUpTime.0, snmpTrapOID.0, the standard traps' prefix (RFC 3418), ifEntry (RFC 2863). */
static const uint32_t SYS_UPTIME_0[] = {1, 3, 6, 1, 2, 1, 1, 3, 0};
static const uint32_t SNMP_TRAP_OID_0[] = {1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0};
static const uint32_t STD_TRAPS[] = {1, 3, 6, 1, 6, 3, 1, 1, 5};
static const uint32_t IF_ENTRY[] = {1, 3, 6, 1, 2, 1, 2, 2, 1};
#define NSUB(a) (sizeof(a) / sizeof((a)[0]))

typedef struct ctx {
    const uint8_t *base; /* the packet, for offsets in messages */
    char *why;
    size_t whylen;
} ctx_t;

static int fail(const ctx_t *c, const uint8_t *at, const char *what)
{
    if (c->why != NULL && c->whylen > 0) {
        snprintf(c->why, c->whylen, "at byte %zu: %s", (size_t)(at - c->base), what);
    }
    return KVL_EDECODE;
}

/* The shared BER primitives (snmp_ber_prim.h), their static reasons placed in the packet:
 * a TLV's failure at its identifier octet, a reader's at its position before the call. */

static int read_tlv(const ctx_t *c, kvl_ber_reader_t *r, kvl_ber_tlv_t *t)
{
    const char *why;
    return kvl_ber_read_tlv(r, t, &why) < 0 ? fail(c, t->at, why) : 0;
}

static int expect(const ctx_t *c, kvl_ber_reader_t *r, uint8_t tag, kvl_ber_tlv_t *t,
                  const char *what)
{
    const char *why;
    return kvl_ber_expect(r, tag, t, &why, what) < 0 ? fail(c, t->at, why) : 0;
}

static int end_of(const ctx_t *c, const kvl_ber_reader_t *r, const char *what)
{
    const char *why;
    return kvl_ber_end_of(r, &why, what) < 0 ? fail(c, r->p + r->pos, why) : 0;
}

static int get_unsigned(const ctx_t *c, const kvl_ber_tlv_t *t, uint64_t *out)
{
    const char *why;
    return kvl_ber_get_unsigned(t, out, &why) < 0 ? fail(c, t->at, why) : 0;
}

static int get_int32(const ctx_t *c, kvl_ber_reader_t *r, int32_t *out, const char *what)
{
    const uint8_t *at = r->p + r->pos; /* the INTEGER's identifier octet */
    const char *why;
    return kvl_ber_get_int32(r, out, &why, what) < 0 ? fail(c, at, why) : 0;
}

/* OBJECT IDENTIFIER contents into o (o may be NULL: check only); *cut as trap_pdu.h says. */
static int get_oid(const ctx_t *c, const kvl_ber_tlv_t *t, kvl_snmp_oid_t *o, bool *cut)
{
    const char *why;
    return kvl_ber_get_oid(t, o, cut, &why) < 0 ? fail(c, t->at, why) : 0;
}

static bool oid_is(const kvl_snmp_oid_t *o, const uint32_t *sub, size_t n)
{
    return o->len == n && memcmp(o->sub, sub, n * sizeof(sub[0])) == 0;
}

static bool oid_under(const kvl_snmp_oid_t *o, const uint32_t *sub, size_t n)
{
    return o->len >= n && memcmp(o->sub, sub, n * sizeof(sub[0])) == 0;
}

/* What the first walk counts, and where the second walk puts things. */
typedef struct tally {
    size_t n_vbs;
    size_t n_oid_values;
    size_t str_bytes;
} tally_t;

typedef struct sink {
    kvl_trap_vb_t *vbs;
    kvl_snmp_oid_t *oid_values;
    uint8_t *str;
} sink_t;

/* Decodes one value (vb may be NULL: check and count only). */
static int get_value(const ctx_t *c, const kvl_ber_tlv_t *t, kvl_trap_vb_t *vb, tally_t *n,
                     sink_t *s)
{
    kvl_trap_vb_t scratch;
    if (vb == NULL) {
        vb = &scratch;
    }
    memset(&vb->type, 0, sizeof(*vb) - offsetof(kvl_trap_vb_t, type));
    vb->tag = t->tag;
    kvl_ber_value_t v;
    const char *why;
    if (kvl_ber_get_value(t, &v, &why) < 0) {
        return fail(c, t->at, why);
    }
    vb->type = v.type;
    vb->integer = v.integer;
    vb->u = v.u;
    if (v.type == KVL_SNMP_T_OID) {
        kvl_snmp_oid_t *o = s != NULL ? &s->oid_values[n->n_oid_values] : NULL;
        int rc = get_oid(c, t, o, &vb->value_cut);
        n->n_oid_values++;
        vb->oid_value = o;
        return rc;
    }
    if (!v.has_str) {
        return 0;
    }
    if (s != NULL) {
        uint8_t *dst = s->str + n->str_bytes;
        if (v.str_len > 0) {
            memcpy(dst, v.str, v.str_len);
        }
        vb->str = dst;
    }
    vb->str_len = v.str_len;
    n->str_bytes += v.str_len;
    return 0;
}

/* Walks the variable-bindings in vbl: counts into *n, and fills s when it is not NULL. */
static int walk_vbl(const ctx_t *c, const kvl_ber_tlv_t *vbl, tally_t *n, sink_t *s)
{
    kvl_ber_reader_t r = kvl_ber_inside(vbl);
    memset(n, 0, sizeof(*n));
    while (r.pos < r.len) {
        kvl_ber_tlv_t seq, name, value;
        int rc = expect(c, &r, KVL_BER_TAG_SEQUENCE, &seq, "varbind is not a SEQUENCE");
        if (rc < 0) {
            return rc;
        }
        if (n->n_vbs == KVL_TRAP_MAX_VBS) {
            return fail(c, seq.at, "more varbinds than the decoder holds (256)");
        }
        kvl_trap_vb_t *vb = s != NULL ? &s->vbs[n->n_vbs] : NULL;
        kvl_ber_reader_t vr = kvl_ber_inside(&seq);
        bool cut = false;
        if ((rc = expect(c, &vr, KVL_BER_TAG_OID, &name,
                         "varbind name is not an OBJECT IDENTIFIER")) < 0 ||
            (rc = get_oid(c, &name, vb != NULL ? &vb->oid : NULL, &cut)) < 0 ||
            (rc = read_tlv(c, &vr, &value)) < 0 || (rc = get_value(c, &value, vb, n, s)) < 0 ||
            (rc = end_of(c, &vr, "trailing bytes in a varbind")) < 0) {
            return rc;
        }
        if (vb != NULL) {
            vb->oid_cut = cut;
        }
        n->n_vbs++;
    }
    return 0;
}

static size_t align_up(size_t n)
{
    return (n + 15u) & ~(size_t)15u;
}

/* The v1 Trap-PDU's fields before its varbinds. */
static int decode_v1_head(const ctx_t *c, kvl_ber_reader_t *r, kvl_trap_t *out)
{
    kvl_ber_tlv_t t;
    bool cut = false;
    int rc = expect(c, r, KVL_BER_TAG_OID, &t, "enterprise is not an OBJECT IDENTIFIER");
    if (rc < 0 || (rc = get_oid(c, &t, &out->enterprise, &cut)) < 0) {
        return rc;
    }
    if (cut || out->enterprise.len + 2 > KVL_SNMP_MAX_OID_LEN) {
        return fail(c, t.at, "enterprise OID too long to hold");
    }
    if ((rc = expect(c, r, KVL_BER_TAG_IPADDRESS, &t, "agent-addr is not an IpAddress")) < 0) {
        return rc;
    }
    if (t.len != 4) {
        return fail(c, t.at, "agent-addr is not 4 bytes");
    }
    memcpy(out->agent_addr, t.v, 4);
    if ((rc = get_int32(c, r, &out->generic_trap, "generic-trap is not an INTEGER")) < 0) {
        return rc;
    }
    if (out->generic_trap < 0 || out->generic_trap > 6) {
        return fail(c, r->p + r->pos, "generic-trap outside 0..6");
    }
    if ((rc = get_int32(c, r, &out->specific_trap, "specific-trap is not an INTEGER")) < 0) {
        return rc;
    }
    if (out->specific_trap < 0) {
        return fail(c, r->p + r->pos, "specific-trap negative");
    }
    if ((rc = expect(c, r, KVL_BER_TAG_TIMETICKS, &t, "time-stamp is not TimeTicks")) < 0) {
        return rc;
    }
    uint64_t u;
    if ((rc = get_unsigned(c, &t, &u)) < 0) {
        return rc;
    }
    out->uptime = (uint32_t)u;
    /* RFC 3584 section 3.1 */
    kvl_snmp_oid_t *o = &out->trap_oid;
    if (out->generic_trap < 6) {
        (void)kvl_snmp_oid_set(o, STD_TRAPS, NSUB(STD_TRAPS));
        o->sub[o->len++] = (uint32_t)out->generic_trap + 1u;
    } else {
        *o = out->enterprise;
        o->sub[o->len++] = 0;
        o->sub[o->len++] = (uint32_t)out->specific_trap;
    }
    return 0;
}

/* v2c: sysUpTime.0 and snmpTrapOID.0 must lead the list. */
static int check_v2_head(const ctx_t *c, const kvl_ber_tlv_t *vbl, kvl_trap_t *out, const sink_t *s,
                         size_t n_vbs)
{
    if (n_vbs < 2) {
        return fail(c, vbl->at, "sysUpTime.0 and snmpTrapOID.0 missing (fewer than 2 varbinds)");
    }
    const kvl_trap_vb_t *up = &s->vbs[0], *id = &s->vbs[1];
    if (!oid_is(&up->oid, SYS_UPTIME_0, NSUB(SYS_UPTIME_0)) || up->oid_cut) {
        return fail(c, vbl->at, "first varbind is not sysUpTime.0");
    }
    if (up->type != KVL_SNMP_T_TIMETICKS) {
        return fail(c, vbl->at, "sysUpTime.0 is not TimeTicks");
    }
    if (!oid_is(&id->oid, SNMP_TRAP_OID_0, NSUB(SNMP_TRAP_OID_0)) || id->oid_cut) {
        return fail(c, vbl->at, "second varbind is not snmpTrapOID.0");
    }
    if (id->type != KVL_SNMP_T_OID) {
        return fail(c, vbl->at, "snmpTrapOID.0 is not an OBJECT IDENTIFIER");
    }
    if (id->value_cut) {
        return fail(c, vbl->at, "snmpTrapOID.0 value too long to hold");
    }
    out->uptime = (uint32_t)up->u;
    out->trap_oid = *id->oid_value;
    return 0;
}

static int decode(const ctx_t *c, const uint8_t *p, size_t n, kvl_trap_t *out)
{
    if (n > KVL_TRAP_MAX_PACKET) {
        return fail(c, p, "packet longer than 65507 bytes");
    }
    kvl_ber_reader_t top = {.p = p, .len = n, .pos = 0};
    kvl_ber_tlv_t msg, pdu, vbl;
    int rc = expect(c, &top, KVL_BER_TAG_SEQUENCE, &msg, "message is not a SEQUENCE");
    if (rc < 0 || (rc = end_of(c, &top, "trailing bytes after the message")) < 0) {
        return rc;
    }
    kvl_ber_reader_t m = kvl_ber_inside(&msg);
    int32_t version;
    if ((rc = get_int32(c, &m, &version, "version is not an INTEGER")) < 0) {
        return rc;
    }
    if (version == KVL_TRAP_V3) {
        out->version = KVL_TRAP_V3;
        return KVL_TRAP_V3;
    }
    if (version != KVL_TRAP_V1 && version != KVL_TRAP_V2C) {
        return fail(c, m.p, "unknown SNMP version");
    }
    out->version = version;
    kvl_ber_tlv_t comm;
    if ((rc = expect(c, &m, KVL_BER_TAG_OCTETS, &comm, "community is not an OCTET STRING")) < 0) {
        return rc;
    }
    if (comm.len > KVL_TRAP_MAX_COMMUNITY) {
        return fail(c, comm.at, "community longer than 255 bytes");
    }
    if ((rc = read_tlv(c, &m, &pdu)) < 0 ||
        (rc = end_of(c, &m, "trailing bytes after the PDU")) < 0) {
        return rc;
    }
    kvl_ber_reader_t r = kvl_ber_inside(&pdu);
    if (pdu.tag == TAG_V1_TRAP) {
        if (version != KVL_TRAP_V1) {
            return fail(c, pdu.at, "v1 Trap-PDU in a v2c message");
        }
        out->pdu = KVL_TRAP_PDU_V1_TRAP;
        if ((rc = decode_v1_head(c, &r, out)) < 0) {
            return rc;
        }
    } else if (pdu.tag == TAG_V2_TRAP || pdu.tag == TAG_INFORM) {
        if (version != KVL_TRAP_V2C) {
            return fail(c, pdu.at, "v2 trap or inform PDU in a v1 message");
        }
        out->pdu = pdu.tag == TAG_INFORM ? KVL_TRAP_PDU_INFORM : KVL_TRAP_PDU_V2_TRAP;
        int32_t es, ei;
        if ((rc = get_int32(c, &r, &out->request_id, "request-id is not an INTEGER")) < 0 ||
            (rc = get_int32(c, &r, &es, "error-status is not an INTEGER")) < 0 ||
            (rc = get_int32(c, &r, &ei, "error-index is not an INTEGER")) < 0) {
            return rc;
        }
    } else {
        return fail(c, pdu.at, "PDU is neither a trap nor an inform");
    }
    if ((rc = expect(c, &r, KVL_BER_TAG_SEQUENCE, &vbl, "variable-bindings is not a SEQUENCE")) <
            0 ||
        (rc = end_of(c, &r, "trailing bytes after the variable-bindings")) < 0) {
        return rc;
    }

    /* First walk: check and count; then one allocation; then the copy. */
    tally_t cnt;
    if ((rc = walk_vbl(c, &vbl, &cnt, NULL)) < 0) {
        return rc;
    }
    size_t off_vbs = 0;
    size_t off_oids = align_up(off_vbs + cnt.n_vbs * sizeof(kvl_trap_vb_t));
    size_t off_str = align_up(off_oids + cnt.n_oid_values * sizeof(kvl_snmp_oid_t));
    size_t off_comm = off_str + cnt.str_bytes;
    size_t off_raw = off_comm + comm.len + 1;
    size_t total = off_raw + vbl.len + 1;
    uint8_t *mem = calloc(1, total);
    if (mem == NULL) {
        return KVL_ENOMEM;
    }
    out->mem = mem;
    sink_t s = {.vbs = (kvl_trap_vb_t *)(void *)(mem + off_vbs),
                .oid_values = (kvl_snmp_oid_t *)(void *)(mem + off_oids),
                .str = mem + off_str};
    tally_t cnt2;
    rc = walk_vbl(c, &vbl, &cnt2, &s);
    KVL_ASSERT(rc == 0 && cnt2.n_vbs == cnt.n_vbs && cnt2.str_bytes == cnt.str_bytes &&
               cnt2.n_oid_values == cnt.n_oid_values);
    if (comm.len > 0) {
        memcpy(mem + off_comm, comm.v, comm.len);
    }
    out->community = (const char *)(mem + off_comm);
    out->community_len = comm.len;
    if (vbl.len > 0) {
        memcpy(mem + off_raw, vbl.v, vbl.len);
    }
    out->raw_vbl = mem + off_raw;
    out->raw_vbl_len = vbl.len;
    out->vbs = s.vbs;
    out->n_vbs = cnt.n_vbs;
    if (out->pdu != KVL_TRAP_PDU_V1_TRAP) {
        if ((rc = check_v2_head(c, &vbl, out, &s, cnt.n_vbs)) < 0) {
            return rc;
        }
        out->vbs = s.vbs + 2;
        out->n_vbs = cnt.n_vbs - 2;
    }
    return 0;
}

int kvl_trap_decode(const uint8_t *p, size_t n, kvl_trap_t *out, char *why, size_t whylen)
{
    KVL_ASSERT(out != NULL);
    memset(out, 0, sizeof(*out));
    if (why != NULL && whylen > 0) {
        why[0] = '\0';
    }
    if (p == NULL) {
        p = (const uint8_t *)"";
        n = 0;
    }
    ctx_t c = {.base = p, .why = why, .whylen = whylen};
    int rc = decode(&c, p, n, out);
    if (rc < 0) {
        int version = out->version;
        kvl_trap_clear(out);
        out->version = version;
        if (rc == KVL_ENOMEM && why != NULL && whylen > 0) {
            snprintf(why, whylen, "out of memory");
        }
    }
    return rc;
}

void kvl_trap_clear(kvl_trap_t *t)
{
    if (t == NULL) {
        return;
    }
    free(t->mem);
    memset(t, 0, sizeof(*t));
}

/* --- the inform's response ------------------------------------------------------------------ */

int kvl_trap_inform_response(const kvl_trap_t *t, uint8_t *buf, size_t cap, size_t *len)
{
    if (t == NULL || t->version != KVL_TRAP_V2C || t->pdu != KVL_TRAP_PDU_INFORM ||
        (t->raw_vbl == NULL && t->raw_vbl_len > 0) || len == NULL) {
        return KVL_EINVAL;
    }
    /* error-status noError, error-index 0; the varbinds as they came */
    kvl_ber_msg_head_t head = {.version = t->version,
                               .community = (const uint8_t *)t->community,
                               .community_len = t->community_len,
                               .pdu_tag = TAG_RESPONSE,
                               .request_id = t->request_id,
                               .vbl_len = t->raw_vbl_len};
    size_t total = kvl_ber_msg_size(&head);
    if (buf == NULL || total > cap) {
        return KVL_EINVAL;
    }
    uint8_t *w = kvl_ber_put_msg_head(buf, &head);
    if (t->raw_vbl_len > 0) {
        memcpy(w, t->raw_vbl, t->raw_vbl_len);
        w += t->raw_vbl_len;
    }
    KVL_ASSERT((size_t)(w - buf) == total);
    *len = total;
    return 0;
}

/* --- helpers for the events ------------------------------------------------------------------ */

kvl_trap_kind_t kvl_trap_kind(const kvl_trap_t *t)
{
    if (t == NULL || (t->version != KVL_TRAP_V1 && t->version != KVL_TRAP_V2C) ||
        t->trap_oid.len != NSUB(STD_TRAPS) + 1 ||
        !oid_under(&t->trap_oid, STD_TRAPS, NSUB(STD_TRAPS))) {
        return KVL_TRAP_OTHER;
    }
    switch (t->trap_oid.sub[NSUB(STD_TRAPS)]) {
    case 1:
        return KVL_TRAP_COLD_START;
    case 2:
        return KVL_TRAP_WARM_START;
    case 3:
        return KVL_TRAP_LINK_DOWN;
    case 4:
        return KVL_TRAP_LINK_UP;
    case 5:
        return KVL_TRAP_AUTH_FAILURE;
    case 6:
        return KVL_TRAP_EGP_NEIGHBOR_LOSS;
    default:
        return KVL_TRAP_OTHER;
    }
}

const char *kvl_trap_kind_name(kvl_trap_kind_t k)
{
    switch (k) {
    case KVL_TRAP_COLD_START:
        return "coldStart";
    case KVL_TRAP_WARM_START:
        return "warmStart";
    case KVL_TRAP_LINK_DOWN:
        return "linkDown";
    case KVL_TRAP_LINK_UP:
        return "linkUp";
    case KVL_TRAP_AUTH_FAILURE:
        return "authenticationFailure";
    case KVL_TRAP_EGP_NEIGHBOR_LOSS:
        return "egpNeighborLoss";
    case KVL_TRAP_OTHER:
    default:
        return "other";
    }
}

static bool valid_if_index(int64_t v)
{
    return v >= 1 && v <= INT32_MAX;
}

int kvl_trap_if_index(const kvl_trap_t *t, uint32_t *if_index)
{
    kvl_trap_kind_t k = kvl_trap_kind(t);
    if ((k != KVL_TRAP_LINK_DOWN && k != KVL_TRAP_LINK_UP) || if_index == NULL) {
        return KVL_EINVAL;
    }
    /* ifIndex.<n> = n */
    for (size_t i = 0; i < t->n_vbs; i++) {
        const kvl_trap_vb_t *vb = &t->vbs[i];
        if (!vb->oid_cut && vb->oid.len == NSUB(IF_ENTRY) + 2 &&
            oid_under(&vb->oid, IF_ENTRY, NSUB(IF_ENTRY)) && vb->oid.sub[NSUB(IF_ENTRY)] == 1 &&
            vb->type == KVL_SNMP_T_INTEGER && valid_if_index(vb->integer)) {
            *if_index = (uint32_t)vb->integer;
            return 0;
        }
    }
    /* RFC 1157: a v1 link trap's first varbind is the ifIndex instance */
    if (t->version == KVL_TRAP_V1 && t->n_vbs > 0 && t->vbs[0].type == KVL_SNMP_T_INTEGER &&
        valid_if_index(t->vbs[0].integer)) {
        *if_index = (uint32_t)t->vbs[0].integer;
        return 0;
    }
    /* ifAdminStatus.<n>, ifOperStatus.<n>, ...: the instance */
    for (size_t i = 0; i < t->n_vbs; i++) {
        const kvl_trap_vb_t *vb = &t->vbs[i];
        if (!vb->oid_cut && vb->oid.len == NSUB(IF_ENTRY) + 2 &&
            oid_under(&vb->oid, IF_ENTRY, NSUB(IF_ENTRY)) &&
            valid_if_index(vb->oid.sub[NSUB(IF_ENTRY) + 1])) {
            *if_index = vb->oid.sub[NSUB(IF_ENTRY) + 1];
            return 0;
        }
    }
    return KVL_EINVAL;
}

static char *hex_text(const uint8_t *s, size_t n)
{
    char *out = malloc(2 * n + 3);
    if (out == NULL) {
        return NULL;
    }
    static const char digits[] = "0123456789abcdef";
    out[0] = '0';
    out[1] = 'x';
    for (size_t i = 0; i < n; i++) {
        out[2 + 2 * i] = digits[s[i] >> 4];
        out[3 + 2 * i] = digits[s[i] & 0x0f];
    }
    out[2 + 2 * n] = '\0';
    return out;
}

static bool is_binary(const uint8_t *s, size_t n)
{
    if (n > 0 && s[n - 1] == 0) {
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        if ((s[i] < 0x20 && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') || s[i] == 0x7f) {
            return true;
        }
    }
    return false;
}

char *kvl_trap_vb_text(const kvl_trap_vb_t *vb)
{
    char buf[KVL_SNMP_MAX_OID_LEN * 11 + 8];
    KVL_ASSERT(vb != NULL);
    switch (vb->type) {
    case KVL_SNMP_T_NULL:
        return strdup("NULL");
    case KVL_SNMP_T_NO_SUCH_OBJECT:
        return strdup("noSuchObject");
    case KVL_SNMP_T_NO_SUCH_INSTANCE:
        return strdup("noSuchInstance");
    case KVL_SNMP_T_END_OF_MIB_VIEW:
        return strdup("endOfMibView");
    case KVL_SNMP_T_INTEGER:
        snprintf(buf, sizeof(buf), "%" PRId64, vb->integer);
        return strdup(buf);
    case KVL_SNMP_T_COUNTER32:
    case KVL_SNMP_T_GAUGE32:
    case KVL_SNMP_T_TIMETICKS:
    case KVL_SNMP_T_COUNTER64:
        snprintf(buf, sizeof(buf), "%" PRIu64, vb->u);
        return strdup(buf);
    case KVL_SNMP_T_IPADDRESS:
        if (vb->str_len == 4) {
            snprintf(buf, sizeof(buf), "%u.%u.%u.%u", vb->str[0], vb->str[1], vb->str[2],
                     vb->str[3]);
            return strdup(buf);
        }
        return hex_text(vb->str, vb->str_len);
    case KVL_SNMP_T_OID:
        if (vb->oid_value == NULL) {
            return strdup("");
        }
        kvl_snmp_oid_format(vb->oid_value, buf, sizeof(buf));
        return strdup(buf);
    case KVL_SNMP_T_OCTETS:
        if (!is_binary(vb->str, vb->str_len)) {
            return kvl_snmp_text_clean(vb->str, vb->str_len);
        }
        return hex_text(vb->str, vb->str_len);
    case KVL_SNMP_T_OPAQUE:
    case KVL_SNMP_T_OTHER:
    default:
        return hex_text(vb->str, vb->str_len);
    }
}
