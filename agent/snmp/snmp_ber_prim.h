/*
 * snmp_ber_prim.h — the BER (X.690) primitives kaaval's two SNMP codecs share: the v1/v2c
 * request and response codec (snmp_ber.c) and the trap port's codec (agent/trap/trap_pdu.c).
 *
 * Reading is strict: definite lengths only, every length bounded by the reader that holds
 * it, no high-tag-number form, INTEGER contents of 1 to 8 bytes (unsigned application types
 * up to 9 with a leading zero byte). A failed call returns KVL_EDECODE and sets *why to a
 * static reason; it never reads outside the reader's bytes. A caller that wants a position
 * in its message takes it from the TLV's `at` (set before anything else is read) or from the
 * reader's position before the call.
 *
 * Writing is into a buffer the caller has already sized with kvl_ber_tlv_size and friends;
 * the put functions return the byte after what they wrote.
 *
 * Pure functions: no allocation, no I/O.
 */
#ifndef KVL_SNMP_BER_PRIM_H
#define KVL_SNMP_BER_PRIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "snmp_types.h"

/* Identifier octets of the types SNMP values use (X.690; application and context tags
 * from RFC 2578 and RFC 3416). PDU tags stay with each codec. */
enum {
    KVL_BER_TAG_INTEGER = 0x02,
    KVL_BER_TAG_OCTETS = 0x04,
    KVL_BER_TAG_NULL = 0x05,
    KVL_BER_TAG_OID = 0x06,
    KVL_BER_TAG_SEQUENCE = 0x30,
    KVL_BER_TAG_IPADDRESS = 0x40,
    KVL_BER_TAG_COUNTER32 = 0x41,
    KVL_BER_TAG_GAUGE32 = 0x42,
    KVL_BER_TAG_TIMETICKS = 0x43,
    KVL_BER_TAG_OPAQUE = 0x44,
    KVL_BER_TAG_COUNTER64 = 0x46,
    KVL_BER_TAG_NO_SUCH_OBJECT = 0x80,
    KVL_BER_TAG_NO_SUCH_INSTANCE = 0x81,
    KVL_BER_TAG_END_OF_MIB_VIEW = 0x82,
};

/* The bytes p[0..len) with a read position; a TLV's contents make a nested reader. */
typedef struct kvl_ber_reader {
    const uint8_t *p;
    size_t len;
    size_t pos;
} kvl_ber_reader_t;

/* One TLV: its tag, its contents v[0..len) (inside the reader's bytes) and its identifier
 * octet `at` (set even when reading it fails). */
typedef struct kvl_ber_tlv {
    uint8_t tag;
    const uint8_t *v;
    size_t len;
    const uint8_t *at;
} kvl_ber_tlv_t;

/* A reader over t's contents. */
kvl_ber_reader_t kvl_ber_inside(const kvl_ber_tlv_t *t);

/* Reads the next TLV of r into t and moves past it. Returns 0 or KVL_EDECODE with *why. */
int kvl_ber_read_tlv(kvl_ber_reader_t *r, kvl_ber_tlv_t *t, const char **why);

/* kvl_ber_read_tlv, then a tag check: a TLV of another tag fails with *why = what. */
int kvl_ber_expect(kvl_ber_reader_t *r, uint8_t tag, kvl_ber_tlv_t *t, const char **why,
                   const char *what);

/* 0 when r has been read to its end, else KVL_EDECODE with *why = what. */
int kvl_ber_end_of(const kvl_ber_reader_t *r, const char **why, const char *what);

/* INTEGER contents of t (1 to 8 bytes, two's complement) into *out. */
int kvl_ber_get_int(const kvl_ber_tlv_t *t, int64_t *out, const char **why);

/* Unsigned application type contents of t (1 to 8 bytes, or 9 with a leading zero byte)
 * into *out; a 1-to-8-byte value with its high bit set is sign-extended, as on the wire. */
int kvl_ber_get_unsigned(const kvl_ber_tlv_t *t, uint64_t *out, const char **why);

/* Reads an INTEGER TLV (another tag fails with *why = what) that must fit 32 bits. */
int kvl_ber_get_int32(kvl_ber_reader_t *r, int32_t *out, const char **why, const char *what);

/* OBJECT IDENTIFIER contents of t into o (NULL: check only). An OID longer than
 * KVL_SNMP_MAX_OID_LEN is cut to that length, and cut before a sub-identifier above
 * 2^32-1; *cut (when cut is not NULL) says whether that happened. */
int kvl_ber_get_oid(const kvl_ber_tlv_t *t, kvl_snmp_oid_t *o, bool *cut, const char **why);

/* A varbind value as far as it stands on its own (kvl_ber_get_value). */
typedef struct kvl_ber_value {
    kvl_snmp_type_t type;
    int64_t integer;    /* KVL_SNMP_T_INTEGER */
    uint64_t u;         /* the unsigned types; the 32-bit ones keep only their low 32 bits */
    bool has_str;       /* OCTET STRING, Opaque, IpAddress, other: */
    const uint8_t *str; /* the contents, str_len bytes inside t */
    size_t str_len;
} kvl_ber_value_t;

/* Decodes the value TLV t into *v (all of it set, zero where unused): its type from the tag
 * (an unknown tag, or an IpAddress that is not 4 bytes, is KVL_SNMP_T_OTHER), INTEGER and the
 * unsigned types decoded, NULL and the exceptions required empty. An OBJECT IDENTIFIER's
 * contents are left to the caller (kvl_ber_get_oid). Returns 0 or KVL_EDECODE with *why. */
int kvl_ber_get_value(const kvl_ber_tlv_t *t, kvl_ber_value_t *v, const char **why);

/* The head of a community-based message (RFC 1157, RFC 3416) up to its varbinds:
 * SEQUENCE { version, community, [pdu_tag] { request_id, second, third, SEQUENCE header } }.
 * second and third are error-status and error-index (non-repeaters, max-repetitions). */
typedef struct kvl_ber_msg_head {
    int64_t version;
    const uint8_t *community;
    size_t community_len;
    uint8_t pdu_tag;
    int64_t request_id;
    int64_t second;
    int64_t third;
    size_t vbl_len; /* bytes of the varbinds, which the caller writes after the head */
} kvl_ber_msg_head_t;

/* Bytes of the whole message h starts, its vbl_len bytes of varbinds included. */
size_t kvl_ber_msg_size(const kvl_ber_msg_head_t *h);

/* Writes h's head at w; returns where the varbinds (h->vbl_len bytes) go. */
uint8_t *kvl_ber_put_msg_head(uint8_t *w, const kvl_ber_msg_head_t *h);

/* Bytes of a definite length field for n (short form, or 0x81..0x84 and n's bytes). */
size_t kvl_ber_len_size(size_t n);

/* Bytes of a TLV with content bytes of contents. */
size_t kvl_ber_tlv_size(size_t content);

/* Contents length of the shortest two's complement encoding of v. */
size_t kvl_ber_int_size(int64_t v);

/* Writes an identifier and a definite length at w; returns the byte after them. */
uint8_t *kvl_ber_put_header(uint8_t *w, uint8_t tag, size_t len);

/* Writes an INTEGER TLV of v at w (kvl_ber_tlv_size(kvl_ber_int_size(v)) bytes). */
uint8_t *kvl_ber_put_int(uint8_t *w, int64_t v);

#endif
