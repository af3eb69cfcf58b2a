/*
 * notify_snmp.h — what the SNMP notifier's two files share: the few BER primitives
 * (notify_snmp.c writes them: definite lengths, minimal integers) and the SNMPv3
 * User-based Security Model of notify_snmpv3.c (RFC 3414, with the SHA-2 authentication
 * of RFC 7860 and the AES privacy of RFC 3826), which wraps a PDU into an authenticated
 * (and encrypted) SNMPv3 message for an authoritative manager and reads its answers.
 *
 * The manager receiving informs is the authoritative engine: kvl_usm_probe makes the
 * discovery message (noAuthNoPriv, empty engine ID, reportable); the manager's Report
 * (usmStatsUnknownEngineIDs) gives its engine ID, boots and time, from which the keys are
 * localized. Nothing here does I/O or blocks beyond hashing: the notifier sends and
 * receives on the loop.
 */
#ifndef KVL_NOTIFY_SNMP_H
#define KVL_NOTIFY_SNMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alert.h"
#include "buf.h"
#include "notify_config.h"

/* --- BER (notify_snmp.c) --------------------------------------------------------------- */

/* Appends tag, length and the n bytes at v. */
void kvl_ber_tlv(kvl_buf_t *b, uint8_t tag, const void *v, size_t n);
/* Two's complement, minimal (INTEGER), or unsigned (application types). */
void kvl_ber_int(kvl_buf_t *b, uint8_t tag, int64_t v, bool is_unsigned);
/* Wraps what b holds in a constructed TLV of tag (b is replaced by the result). */
void kvl_ber_wrap(kvl_buf_t *b, uint8_t tag);
/* Reads one TLV at *p (below end): 0 with its tag and contents (*p moves past it), or -1. */
int kvl_ber_get(const uint8_t **p, const uint8_t *end, uint8_t *tag, const uint8_t **v,
                size_t *len);

/* --- notifications (notify_snmp.c) ------------------------------------------------------ */

/* The PDU for a (a whole TLV in *out, kvl_buf_free): SNMPv2-Trap-PDU, or InformRequest-PDU
 * when inform; kaavalDeviceDown/Up when kvl_notify_snmp_device_index finds the index, else
 * kaavalAlertFiring/Resolved. */
void kvl_notify_snmp_pdu(uint32_t request_id, uint32_t uptime_cs, const kvl_alert_t *a, bool inform,
                         kvl_buf_t *out);
/* 1 with *index when a is about a device and carries the fields of a device_down/device_up
 * event with an index in 1..4294967295, else 0. */
int kvl_notify_snmp_device_index(const kvl_alert_t *a, uint32_t *index);

/* --- USM (notify_snmpv3.c) --------------------------------------------------------------- */

/* The protocols (KVL_NOTIFY_V3_*) and their names: notify_config.h. */

typedef struct kvl_usm kvl_usm_t;

/* A user's security state for one manager from the receiver's user, auth_* and priv_*
 * (the passwords are turned into keys here: 1 MiB of hashing each). 0, or a negative
 * KVL_E* with why (e.g. a privacy protocol this OpenSSL lacks). */
int kvl_usm_new(const kvl_notify_receiver_cfg_t *cfg, kvl_usm_t **out, char *why, size_t whylen);
void kvl_usm_free(kvl_usm_t *u);

/* The engine is known (a discovery answered since the last kvl_usm_forget). */
bool kvl_usm_known(const kvl_usm_t *u);
void kvl_usm_forget(kvl_usm_t *u);

/* The discovery message with msgID and request-id id (an empty GetRequest). */
int kvl_usm_probe(kvl_usm_t *u, uint32_t id, kvl_buf_t *out);

/* pdu (a whole PDU TLV) as an SNMPv3 message with msgID id, authenticated and encrypted as
 * configured, at now_ms (a monotonic clock in ms, for the manager's engine time). 0, or a
 * negative KVL_E* with why. */
int kvl_usm_wrap(kvl_usm_t *u, uint32_t id, const kvl_buf_t *pdu, uint64_t now_ms, kvl_buf_t *out,
                 char *why, size_t whylen);

typedef enum {
    KVL_USM_IGNORE,     /* not an answer to msgID id (or not authentic): ignore it */
    KVL_USM_RESPONSE,   /* the Response to id, authenticated as configured */
    KVL_USM_DISCOVERED, /* a Report with the manager's engine: send the message (again) */
    KVL_USM_RESEND,     /* an authenticated notInTimeWindows Report: times updated, resend */
    KVL_USM_REFUSED,    /* a Report that refuses it (why says which: wrong digest, ...) */
} kvl_usm_result_t;

/* Reads a datagram that may answer msgID id. */
kvl_usm_result_t kvl_usm_read(kvl_usm_t *u, const uint8_t *msg, size_t n, uint32_t id,
                              uint64_t now_ms, char *why, size_t whylen);

/* RFC 3414 A.2 password to key and its localization for engine_id (the unit tests check
 * them against the RFC's vectors): the localized key into out (>= 64 bytes), its length
 * returned, or 0 for an unknown auth protocol. */
size_t kvl_usm_localized_key(int auth, const char *password, const uint8_t *engine_id,
                             size_t engine_id_len, uint8_t *out);

#endif
