/*
 * snmp_v3rx.h — SNMPv3 traps and informs received (for the trap receiver, agent/trap/):
 * USM authentication and decryption through net-snmp, which only this room includes.
 *
 * The receiver owns the socket and hands each v3 datagram over with its source address;
 * net-snmp processes it in one session of its own whose transport reads that datagram and
 * sends through the receiver's socket (the `send` callback), so net-snmp's USM does all of
 * RFC 3414: engine ID discovery and time synchronisation Reports for informs (this agent
 * is then the authoritative engine, with the engine ID given), the timeliness and digest
 * checks, decryption, and the inform's Response. The users are the v3 credential sets
 * given, each localized for this agent's engine ID (informs) and for every sender's engine
 * ID given (traps, whose sender is the authoritative engine); each sender's latest
 * engineBoots and engineTime are kept in `times` so a replayed old trap is refused after a
 * restart too. An accepted trap or inform is
 * handed back re-encoded as an SNMPv2c message (community "", the same PDU and varbinds),
 * so that the receiver reads every version with one decoder (trap_pdu.h).
 *
 * Loop thread only; net-snmp's state is global, so there is one kvl_v3rx_t per process.
 */
#ifndef KVL_SNMP_V3RX_H
#define KVL_SNMP_V3RX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "downstate.h"
#include "snmp_types.h"

typedef struct kvl_v3rx kvl_v3rx_t;

/* Sends n bytes to `to` through the receiver's socket; response: an inform's Response (not a
 * discovery Report). */
typedef void (*kvl_v3rx_send_cb)(void *arg, const struct sockaddr *to, const uint8_t *p, size_t n,
                                 bool response);

typedef struct kvl_v3rx_opts {
    const kvl_credentials_t *const *creds; /* v3 credential sets (must outlive the kvl_v3rx_t) */
    size_t n_creds;
    const uint8_t *engine_id; /* this agent's, 5..32 octets */
    size_t engine_id_len;
    const uint8_t *const *sender_ids; /* engine IDs of trap senders */
    const size_t *sender_id_lens;
    size_t n_sender_ids;
    kvl_v3rx_send_cb send;
    void *arg;
    /* Where each sender's latest engineBoots and engineTime are kept across restarts (replay
     * protection, snmp_v3rx.c); NULL: in memory only. Outlives the kvl_v3rx_t. */
    kvl_downstate_t *times;
} kvl_v3rx_opts_t;

/* Makes the users and the session. Returns 0 and sets *out, or a negative code with the
 * reason in err (never a secret). */
int kvl_v3rx_new(const kvl_v3rx_opts_t *o, kvl_v3rx_t **out, char *err, size_t errlen);
void kvl_v3rx_free(kvl_v3rx_t *v);

/* What kvl_v3rx_process made of a message. */
enum {
    KVL_V3RX_DELIVER = 1, /* an accepted trap or inform: its v2c form is in out */
    KVL_V3RX_HANDLED = 2, /* a discovery or time synchronisation, answered: nothing more */
    KVL_V3RX_REFUSED = 3, /* refused by USM (unknown user or engine, wrong digest, ...): why */
};

/* Processes the v3 message p (n bytes) from `from`. Returns KVL_V3RX_DELIVER with the
 * message's v2c form in out (cap bytes, *out_len set), KVL_V3RX_HANDLED, KVL_V3RX_REFUSED
 * with why, or KVL_EDECODE with why (not a v3 message net-snmp can parse, or no trap or
 * inform in it). */
int kvl_v3rx_process(kvl_v3rx_t *v, const uint8_t *p, size_t n, const struct sockaddr *from,
                     uint8_t *out, size_t cap, size_t *out_len, char *why, size_t whylen);

#endif
