/*
 * snmp_types.h — the SNMP values kaaval's modules share: protocol versions, the USM
 * security levels and protocols, a credential set, OIDs (their helpers are in snmp_oid.c,
 * free of net-snmp), request kinds and the varbinds of a response.
 *
 * Types only (and the pure OID helpers): the session layer (snmp.h), the BER codec
 * (snmp_ber.h), the MIB name resolver (snmp_mib.h) and the configuration (snmp_config.h)
 * all include this header and none of them includes another for its types.
 */
#ifndef KVL_SNMP_TYPES_H
#define KVL_SNMP_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    KVL_SNMP_V1 = 0,
    KVL_SNMP_V2C = 1,
    KVL_SNMP_V3 = 2,
} kvl_snmp_version_t;

/* USM security level. */
typedef enum {
    KVL_USM_NOAUTH = 0,     /* noAuthNoPriv */
    KVL_USM_AUTHNOPRIV = 1, /* authNoPriv */
    KVL_USM_AUTHPRIV = 2,   /* authPriv */
} kvl_usm_level_t;

typedef enum {
    KVL_USM_AUTH_NONE = 0,
    KVL_USM_AUTH_MD5,
    KVL_USM_AUTH_SHA1,
    KVL_USM_AUTH_SHA224,
    KVL_USM_AUTH_SHA256,
    KVL_USM_AUTH_SHA384,
    KVL_USM_AUTH_SHA512,
} kvl_usm_auth_t;

typedef enum {
    KVL_USM_PRIV_NONE = 0,
    KVL_USM_PRIV_DES,
    KVL_USM_PRIV_AES128,
    KVL_USM_PRIV_AES192,  /* draft-blumenthal-aes-usm-04 key extension */
    KVL_USM_PRIV_AES256,  /* likewise */
    KVL_USM_PRIV_AES192C, /* draft-reeder (Cisco) key extension */
    KVL_USM_PRIV_AES256C, /* likewise */
} kvl_usm_priv_t;

/* One named credential set. v1/v2c: community; v3: the USM fields. */
typedef struct kvl_credentials {
    char *name;
    int version;     /* kvl_snmp_version_t */
    char *community; /* v1/v2c; never logged */
    char *user;      /* v3 */
    int level;       /* kvl_usm_level_t */
    int auth_protocol;
    char *auth_password; /* never logged */
    int priv_protocol;
    char *priv_password; /* never logged */
    char *context;       /* "" by default */
} kvl_credentials_t;

/* Sub-identifiers kept per OID. The poller holds a few hundred OIDs per device (columns,
 * cursors, requests), so this bounds its memory; IF-MIB OIDs have 11-12. A longer OID in a
 * response is cut to this length, which can only make it compare as outside a column or
 * not increasing, never as a wrong row. (v1/v2c) An OID in a response is also cut before a
 * sub-identifier above 2^32-1, with the same effect. */
#define KVL_SNMP_MAX_OID_LEN 64

typedef struct kvl_snmp_oid {
    uint32_t sub[KVL_SNMP_MAX_OID_LEN];
    size_t len;
} kvl_snmp_oid_t;

typedef enum {
    KVL_SNMP_GET = 0,
    KVL_SNMP_GETNEXT = 1,
    KVL_SNMP_GETBULK = 2,
} kvl_snmp_op_t;

typedef enum {
    KVL_SNMP_T_NULL = 0,
    KVL_SNMP_T_INTEGER,   /* .integer (signed) */
    KVL_SNMP_T_OCTETS,    /* .str, .str_len */
    KVL_SNMP_T_OID,       /* .oid_value */
    KVL_SNMP_T_IPADDRESS, /* .str (4 bytes) */
    KVL_SNMP_T_COUNTER32, /* .u */
    KVL_SNMP_T_GAUGE32,   /* .u (also Unsigned32) */
    KVL_SNMP_T_TIMETICKS, /* .u, hundredths of a second */
    KVL_SNMP_T_OPAQUE,    /* .str */
    KVL_SNMP_T_COUNTER64, /* .u */
    KVL_SNMP_T_NO_SUCH_OBJECT,
    KVL_SNMP_T_NO_SUCH_INSTANCE,
    KVL_SNMP_T_END_OF_MIB_VIEW,
    KVL_SNMP_T_OTHER,
} kvl_snmp_type_t;

/* One variable binding of a response. Valid only during the completion callback. */
typedef struct kvl_snmp_vb {
    kvl_snmp_oid_t oid;
    kvl_snmp_type_t type;
    int64_t integer;
    uint64_t u;
    const uint8_t *str;
    size_t str_len;
    const kvl_snmp_oid_t *oid_value; /* KVL_SNMP_T_OID only, else NULL */
} kvl_snmp_vb_t;

/* SNMP error-status values the poller cares about. */
enum {
    KVL_SNMP_ERR_NONE = 0,
    KVL_SNMP_ERR_TOO_BIG = 1,
    KVL_SNMP_ERR_NO_SUCH_NAME = 2,
    KVL_SNMP_ERR_GEN_ERR = 5,
};

/* Fills o from sub-identifiers; returns 0 or KVL_EINVAL when n is too long. */
int kvl_snmp_oid_set(kvl_snmp_oid_t *o, const uint32_t *sub, size_t n);
/* True when o starts with prefix (and is at least as long). */
bool kvl_snmp_oid_has_prefix(const kvl_snmp_oid_t *o, const kvl_snmp_oid_t *prefix);
/* <0, 0, >0 like strcmp, in SNMP lexicographic order. */
int kvl_snmp_oid_cmp(const kvl_snmp_oid_t *a, const kvl_snmp_oid_t *b);
/* Writes ".1.3.6..." into buf (truncated to fit). Returns buf. */
char *kvl_snmp_oid_format(const kvl_snmp_oid_t *o, char *buf, size_t buflen);

#endif
