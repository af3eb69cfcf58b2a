/*
 * snmp_ber.h — kaaval's own BER codec for community-based SNMP (v1, RFC 1157; v2c, RFC 1901
 * and RFC 3416): encodes GetRequest, GetNextRequest and GetBulkRequest messages and decodes
 * Response messages, in kaaval's own types (snmp_types.h).
 *
 * Pure functions: no allocation, no I/O, no libuv. The session layer (snmp.c) uses them for
 * v1/v2c sessions; SNMPv3 stays with net-snmp.
 *
 * Decoding is strict BER (X.690): definite lengths only, every length bounded by the TLV
 * that encloses it, no trailing bytes at any level, INTEGER contents of 1 to 8 bytes
 * (Counter64 up to 9 with a leading zero byte), no high-tag-number form. Anything else is an
 * error with a static reason; no input, however malformed, makes the decoder read outside
 * the bytes it was given.
 */
#ifndef KVL_SNMP_BER_H
#define KVL_SNMP_BER_H

#include <stddef.h>
#include <stdint.h>

#include "snmp_types.h"

/* msgVersion values on the wire. */
enum {
    KVL_SNMP_BER_V1 = 0,
    KVL_SNMP_BER_V2C = 1,
};

/* A request to encode. Varbinds carry NULL values; non-repeaters is always 0. */
typedef struct kvl_snmp_ber_request {
    int version; /* KVL_SNMP_BER_V1 or KVL_SNMP_BER_V2C */
    const uint8_t *community;
    size_t community_len;
    int32_t request_id;
    kvl_snmp_op_t op;
    uint32_t max_reps; /* GETBULK only (v2c); 0 is sent as 0 */
    const kvl_snmp_oid_t *oids;
    size_t n_oids;
} kvl_snmp_ber_request_t;

/* A decoded Response-PDU. community and the varbinds' strings point into the packet. */
typedef struct kvl_snmp_ber_response {
    int version;
    const uint8_t *community;
    size_t community_len;
    int32_t request_id;
    int32_t error_status;
    int32_t error_index;
    size_t n_vbs;
} kvl_snmp_ber_response_t;

/* Encodes req into buf (cap bytes). Returns the message length, or KVL_EINVAL when it does
 * not fit, the version or op is unknown, GETBULK is asked of v1, or an OID cannot be encoded
 * (fewer than two sub-identifiers, first above 2, second above 39 under 0 or 1); *why then
 * says which (static text). */
int kvl_snmp_ber_encode(const kvl_snmp_ber_request_t *req, uint8_t *buf, size_t cap,
                        const char **why);

/* Decodes one message of len bytes at pkt, which must be a v1 or v2c message carrying a
 * Response-PDU. Varbinds go into vbs[0..cap); an OBJECT IDENTIFIER value of vbs[i] is stored
 * in oid_values[i] (also cap entries). OIDs longer than KVL_SNMP_MAX_OID_LEN are cut to that
 * length, and an OID is also cut before a sub-identifier above 2^32-1 (see snmp.h); an
 * unknown value type becomes KVL_SNMP_T_OTHER, as does an IpAddress that is not 4 bytes.
 * Returns 0, or KVL_EDECODE with *why (static text) when the message is malformed, is not
 * a Response, or has more than cap varbinds (then *why is KVL_SNMP_BER_TOO_MANY). */
int kvl_snmp_ber_decode(const uint8_t *pkt, size_t len, kvl_snmp_ber_response_t *out,
                        kvl_snmp_vb_t *vbs, kvl_snmp_oid_t *oid_values, size_t cap,
                        const char **why);

/* The reason kvl_snmp_ber_decode gives when the varbinds do not fit (compare pointers). */
extern const char KVL_SNMP_BER_TOO_MANY[];

#endif
