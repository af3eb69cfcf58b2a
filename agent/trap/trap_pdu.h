/*
 * trap_pdu.h — decoding of what arrives on the agent's trap port (SNMPv1 Trap-PDU, RFC 1157;
 * SNMPv2c SNMPv2-Trap-PDU and InformRequest-PDU, RFC 3416 and RFC 1901) and encoding of the
 * Response-PDU a v2c inform needs. SNMPv3 messages are recognised (msgVersion 3) and left
 * to net-snmp, which holds the USM users.
 *
 * A decoded trap is always in the v2 form: the trap's identity is snmpTrapOID, and a v1 trap
 * is converted as RFC 3584 section 3.1 says (generic-trap 0..5 become the standard trap
 * OIDs 1.3.6.1.6.3.1.1.5.1..6, generic-trap 6 becomes enterprise.0.specific-trap). The v1
 * fields (enterprise, agent-addr, generic-trap, specific-trap) are kept beside it.
 *
 * Decoding is strict BER (definite lengths, each bounded by its enclosing TLV, no trailing
 * bytes, no high tag numbers) with these caps: a packet of at most KVL_TRAP_MAX_PACKET bytes,
 * a community of at most KVL_TRAP_MAX_COMMUNITY bytes, at most KVL_TRAP_MAX_VBS varbinds.
 * OIDs longer than KVL_SNMP_MAX_OID_LEN sub-identifiers (or with one above 2^32-1) are cut
 * and flagged (`oid_cut`, `value_cut`); snmpTrapOID and the v1 enterprise are never cut:
 * such a trap is refused. Everything the result holds (community, strings, OIDs, the raw
 * varbind list an inform's response echoes) is copied out of the packet into one
 * allocation sized by what was actually found, so memory follows the packet's own size,
 * never a length it claims: a varbind costs about 330 bytes (600 with an OID value), and
 * strings and the raw list at most twice the packet, so about 280 KiB at the very worst.
 * Pure functions otherwise: no I/O, no libuv.
 */
#ifndef KVL_TRAP_PDU_H
#define KVL_TRAP_PDU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snmp_types.h"

/* Caps of the decoder (see above). 65507 is the largest UDP payload over IPv4. */
#define KVL_TRAP_MAX_PACKET 65507u
#define KVL_TRAP_MAX_COMMUNITY 255u
#define KVL_TRAP_MAX_VBS 256u

/* msgVersion values; KVL_TRAP_V3 is also what kvl_trap_decode returns for a v3 message. */
enum {
    KVL_TRAP_V1 = 0,
    KVL_TRAP_V2C = 1,
    KVL_TRAP_V3 = 3,
};

typedef enum {
    KVL_TRAP_PDU_V1_TRAP = 0, /* Trap-PDU, tag [4] */
    KVL_TRAP_PDU_V2_TRAP,     /* SNMPv2-Trap-PDU, tag [7] */
    KVL_TRAP_PDU_INFORM,      /* InformRequest-PDU, tag [6]: wants a Response */
} kvl_trap_pdu_t;

/* The standard traps (RFC 3418 / RFC 2863 names), from snmpTrapOID. */
typedef enum {
    KVL_TRAP_OTHER = 0,
    KVL_TRAP_COLD_START,
    KVL_TRAP_WARM_START,
    KVL_TRAP_LINK_DOWN,
    KVL_TRAP_LINK_UP,
    KVL_TRAP_AUTH_FAILURE,
    KVL_TRAP_EGP_NEIGHBOR_LOSS,
} kvl_trap_kind_t;

/* One varbind. For str and oid_value, see kvl_snmp_vb_t; here they are owned by the trap. */
typedef struct kvl_trap_vb {
    kvl_snmp_oid_t oid;
    bool oid_cut; /* the name was longer than oid can hold */
    kvl_snmp_type_t type;
    uint8_t tag; /* the value's BER tag as received (for KVL_SNMP_T_OTHER) */
    int64_t integer;
    uint64_t u;
    const uint8_t *str; /* OCTET STRING, Opaque, IpAddress, other: str_len bytes */
    size_t str_len;
    const kvl_snmp_oid_t *oid_value; /* KVL_SNMP_T_OID only, else NULL */
    bool value_cut;                  /* oid_value was cut */
} kvl_trap_vb_t;

/* A decoded trap or inform. All pointers point into `mem`, freed by kvl_trap_clear. */
typedef struct kvl_trap {
    int version; /* KVL_TRAP_V1, KVL_TRAP_V2C or KVL_TRAP_V3 (then nothing else is set) */
    kvl_trap_pdu_t pdu;
    const char *community; /* NUL-terminated copy; may hold NULs (community_len) */
    size_t community_len;
    int32_t request_id;      /* v2c only; 0 for v1 */
    kvl_snmp_oid_t trap_oid; /* snmpTrapOID.0, or the v1 trap's converted identity */
    uint32_t uptime;         /* sysUpTime.0, or the v1 time-stamp, hundredths of a second */
    /* v1 only (zero for v2c): */
    kvl_snmp_oid_t enterprise;
    uint8_t agent_addr[4];
    int32_t generic_trap;
    int32_t specific_trap;
    /* The trap's own varbinds: for v2c those after sysUpTime.0 and snmpTrapOID.0. */
    const kvl_trap_vb_t *vbs;
    size_t n_vbs;
    /* The variable-bindings as received (v2c: including the first two), for the response. */
    const uint8_t *raw_vbl;
    size_t raw_vbl_len;
    void *mem;
} kvl_trap_t;

/* Decodes the n bytes at p into *out (which the caller frees with kvl_trap_clear, whatever
 * the result). Returns 0 for a decoded v1 or v2c trap or inform, KVL_TRAP_V3 for a v3
 * message (only out->version is set), or KVL_EDECODE with why (whylen bytes) saying what is
 * wrong and at which byte offset, or KVL_ENOMEM. */
int kvl_trap_decode(const uint8_t *p, size_t n, kvl_trap_t *out, char *why, size_t whylen);

/* Frees what t holds and zeroes it; harmless on a zeroed or cleared trap. */
void kvl_trap_clear(kvl_trap_t *t);

/* Encodes the Response-PDU for a v2c inform t into buf (cap bytes): same version,
 * community and request-id, error-status and error-index 0, the varbinds echoed as
 * received (RFC 3416 section 4.2.7). Returns 0 with *len set, or KVL_EINVAL when t is not
 * a v2c inform or the response does not fit in cap. */
int kvl_trap_inform_response(const kvl_trap_t *t, uint8_t *buf, size_t cap, size_t *len);

/* The standard trap t is, from its snmpTrapOID; KVL_TRAP_OTHER for anything else. */
kvl_trap_kind_t kvl_trap_kind(const kvl_trap_t *t);

/* A static name for a kind ("coldStart", "linkDown", ..., "other"). */
const char *kvl_trap_kind_name(kvl_trap_kind_t k);

/* The ifIndex a linkDown/linkUp trap is about: the value of its ifIndex varbind
 * (1.3.6.1.2.1.2.2.1.1.<n>), else for v1 the first varbind's INTEGER value, else the
 * instance of an ifTable column varbind (1.3.6.1.2.1.2.2.1.<c>.<n>). Returns 0 with
 * *if_index set (1..2^31-1), or KVL_EINVAL when t is no link trap or names no ifIndex. */
int kvl_trap_if_index(const kvl_trap_t *t, uint32_t *if_index);

/* The varbind's value as text, in a new string the caller frees (NULL when out of
 * memory): integers in decimal, TimeTicks in hundredths, IpAddress dotted, OIDs as
 * ".1.3.6...", OCTET STRING as text (snmp_text.h) unless it holds control bytes (other
 * than tab, CR, LF and one trailing NUL), then, like Opaque and unknown types, as hex
 * "0x00a0c9..."; exceptions by their names ("noSuchObject", ...), NULL as "NULL". */
char *kvl_trap_vb_text(const kvl_trap_vb_t *vb);

#endif
