/*
 * fuzz_trap_pdu.c — libFuzzer target for the trap port's codec (agent/trap/trap_pdu.h),
 * which reads whatever anyone sends to the agent's trap port.
 *
 * Beyond "no crash, no sanitizer report", it checks what the header promises:
 *  - the decoder returns 0, KVL_TRAP_V3 or KVL_EDECODE, with "at byte N: ..." on failure
 *    and nothing held;
 *  - a decoded trap holds at most KVL_TRAP_MAX_VBS varbinds and a community of at most
 *    KVL_TRAP_MAX_COMMUNITY bytes, its strings are copies (never pointers into the input)
 *    no longer than the input, oid_value is set exactly for OID values;
 *  - every value renders as text, the kind and ifIndex helpers answer;
 *  - an inform's response, with the Response tag put back to InformRequest, decodes to the
 *    same request-id, community and varbinds.
 * Seeds: packets captured from net-snmp's snmptrap and snmpinform (tests/unit/test_trap_pdu.c
 * says how). A broken promise calls abort(), which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "kvl.h"
#include "trap_pdu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t resp[70000];

static bool inside(const void *p, const uint8_t *data, size_t size)
{
    const uint8_t *b = p;
    return size > 0 && b >= data && b < data + size;
}

/* Offset of the PDU's tag in a message of ours: SEQUENCE header, version, community. */
static size_t pdu_tag_at(const uint8_t *m, size_t community_len)
{
    size_t pos = 1 + ((m[1] & 0x80) != 0 ? 1 + (m[1] & 0x7fu) : 1);
    pos += 3; /* 02 01 01 */
    pos += 1 + (community_len < 0x80 ? 1 : 2) + community_len;
    return pos;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[160];
    kvl_trap_t t;
    int rc = kvl_trap_decode(data, size, &t, why, sizeof(why));
    CHECK(rc == 0 || rc == KVL_TRAP_V3 || rc == KVL_EDECODE);
    if (rc != 0) {
        CHECK(t.mem == NULL && t.n_vbs == 0);
        if (rc == KVL_EDECODE) {
            CHECK(strncmp(why, "at byte ", 8) == 0);
        } else {
            CHECK(t.version == KVL_TRAP_V3);
        }
        kvl_trap_clear(&t);
        return 0;
    }
    CHECK(t.version == KVL_TRAP_V1 || t.version == KVL_TRAP_V2C);
    CHECK(t.n_vbs <= KVL_TRAP_MAX_VBS);
    CHECK(t.community_len <= KVL_TRAP_MAX_COMMUNITY && t.community_len < size);
    CHECK(!inside(t.community, data, size) && !inside(t.raw_vbl, data, size));
    CHECK(t.raw_vbl_len < size);
    CHECK(t.trap_oid.len >= 1 && t.trap_oid.len <= KVL_SNMP_MAX_OID_LEN);
    for (size_t i = 0; i < t.n_vbs; i++) {
        const kvl_trap_vb_t *vb = &t.vbs[i];
        CHECK(vb->oid.len <= KVL_SNMP_MAX_OID_LEN);
        CHECK((vb->type == KVL_SNMP_T_OID) == (vb->oid_value != NULL));
        CHECK(vb->str_len < size);
        CHECK(vb->str == NULL || !inside(vb->str, data, size));
        char *s = kvl_trap_vb_text(vb);
        CHECK(s != NULL);
        free(s);
    }
    kvl_trap_kind_t k = kvl_trap_kind(&t);
    CHECK(kvl_trap_kind_name(k) != NULL);
    uint32_t ifx = 0;
    if (kvl_trap_if_index(&t, &ifx) == 0) {
        CHECK(k == KVL_TRAP_LINK_DOWN || k == KVL_TRAP_LINK_UP);
        CHECK(ifx >= 1 && ifx <= INT32_MAX);
    }
    size_t len = 0;
    int r2 = kvl_trap_inform_response(&t, resp, sizeof(resp), &len);
    if (t.pdu != KVL_TRAP_PDU_INFORM) {
        CHECK(r2 == KVL_EINVAL);
    } else {
        CHECK(r2 == 0 && len > 0 && len <= sizeof(resp));
        size_t at = pdu_tag_at(resp, t.community_len);
        CHECK(at < len && resp[at] == 0xa2);
        resp[at] = 0xa6;
        kvl_trap_t u;
        CHECK(kvl_trap_decode(resp, len, &u, why, sizeof(why)) == 0);
        CHECK(u.pdu == KVL_TRAP_PDU_INFORM && u.request_id == t.request_id);
        CHECK(u.community_len == t.community_len &&
              memcmp(u.community, t.community, t.community_len) == 0);
        CHECK(u.n_vbs == t.n_vbs && u.raw_vbl_len == t.raw_vbl_len &&
              memcmp(u.raw_vbl, t.raw_vbl, t.raw_vbl_len) == 0);
        kvl_trap_clear(&u);
    }
    kvl_trap_clear(&t);
    return 0;
}
