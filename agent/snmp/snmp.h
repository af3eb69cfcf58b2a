/*
 * snmp.h — asynchronous SNMP v1/v2c/v3 sessions on a libuv loop, in kaaval's own types.
 *
 * This is the only module that includes net-snmp, and only SNMPv3 uses it. A v1/v2c
 * session has its own UDP socket connect()ed to the peer and encodes and decodes messages
 * with kaaval's own BER codec (snmp_ber.h), with no allocation per varbind; a v3 session
 * wraps one net-snmp single-session handle (snmp_sess_*). Either way the socket is watched
 * by a uv_poll_t and retransmissions and timeouts are driven by a uv_timer_t, so nothing
 * ever blocks the loop. (KAAVAL_SNMP_NETSNMP=1 in the environment sends v1/v2c through
 * net-snmp as well, the previous path, for comparison.) A request (GET, GETNEXT or GETBULK)
 * completes exactly once through its callback with either the response's varbinds, a timeout after
 * all tries, an SNMPv3 Report (authentication and other USM failures), or a send failure; a request
 * that fails synchronously returns an error and never calls back.
 *
 * SNMPv3 (USM): the session learns the agent's engine ID with an asynchronous discovery
 * probe before its first request (the request waits for it; it is part of the request as
 * far as the caller can tell), then localizes the keys once. Pass phrases are turned into
 * master keys (Ku, a million hash rounds) once per process and credential set.
 * Credentials are never logged, and no error text carries them.
 *
 * Peer addresses should be numeric (IPv4 or IPv6): a host name is resolved with a blocking
 * getaddrinfo inside kvl_snmp_open.
 */
#ifndef KVL_SNMP_H
#define KVL_SNMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "snmp_types.h"

typedef struct kvl_snmp_session kvl_snmp_session_t;

typedef enum {
    KVL_SNMP_RESPONSE = 0,    /* a response arrived; see error_status */
    KVL_SNMP_TIMEOUT = 1,     /* no response after every try */
    KVL_SNMP_SEND_FAILED = 2, /* a retransmission could not be sent */
    KVL_SNMP_REPORT = 3,      /* SNMPv3: the agent refused the request (see report) */
} kvl_snmp_status_t;

/* Why an SNMPv3 request was refused. */
typedef enum {
    KVL_SNMP_REPORT_NONE = 0,
    KVL_SNMP_REPORT_UNKNOWN_ENGINE_ID,   /* usmStatsUnknownEngineIDs (after a re-discovery) */
    KVL_SNMP_REPORT_UNKNOWN_USER,        /* usmStatsUnknownUserNames */
    KVL_SNMP_REPORT_UNSUPPORTED_LEVEL,   /* usmStatsUnsupportedSecLevels */
    KVL_SNMP_REPORT_WRONG_DIGEST,        /* usmStatsWrongDigests: auth password or protocol */
    KVL_SNMP_REPORT_NOT_IN_TIME_WINDOW,  /* usmStatsNotInTimeWindows (after a re-discovery) */
    KVL_SNMP_REPORT_DECRYPTION_ERROR,    /* usmStatsDecryptionErrors */
    KVL_SNMP_REPORT_NO_ENCRYPTED_ANSWER, /* no Report: the engine answered discovery but
                                            never an encrypted request (an agent drops what
                                            it cannot decrypt: privacy password or protocol) */
    KVL_SNMP_REPORT_OTHER,               /* another Report (snmpInvalidMsgs, ...) */
} kvl_snmp_report_t;

typedef struct kvl_snmp_result {
    kvl_snmp_status_t status;
    int error_status; /* KVL_SNMP_RESPONSE: 0 = noError */
    int error_index;  /* 1-based varbind the error refers to, 0 if none */
    const kvl_snmp_vb_t *vbs;
    size_t n_vbs;
    int tries;                /* transmissions made (1 + retransmissions) */
    double rtt_ms;            /* KVL_SNMP_RESPONSE: time since the last transmission */
    const char *error_text;   /* KVL_SNMP_SEND_FAILED: the system's or net-snmp's reason;
                                 KVL_SNMP_REPORT: what the Report means */
    kvl_snmp_report_t report; /* KVL_SNMP_REPORT only */
} kvl_snmp_result_t;

/* Called on the loop thread once per accepted request. The result and what it points to
 * are valid only during the call. The callback may send further requests on the session;
 * it may also close it (the close then completes after the callback returns). */
typedef void (*kvl_snmp_cb)(kvl_snmp_session_t *s, const kvl_snmp_result_t *r, void *arg);

typedef struct kvl_snmp_target {
    const char *name;    /* for log lines */
    const char *address; /* numeric IPv4 or IPv6 address (see above) */
    uint16_t port;
    kvl_snmp_version_t version;
    const char *community;        /* v1/v2c; never logged */
    const kvl_credentials_t *usm; /* v3: user, level, protocols, pass phrases, context */
    int64_t timeout_ms;           /* per try */
    int retries;                  /* retransmissions after the first try */
} kvl_snmp_target_t;

/* Initialises net-snmp once for the process: no configuration files read, no persistent
 * state, no MIBs loaded, its log lines routed to ours. Idempotent. kvl_snmp_open calls it
 * for the first session that needs net-snmp (SNMPv3), so v1/v2c-only agents never do. */
void kvl_snmp_init(void);

/* Receiving SNMPv3 (snmp_v3rx.c): adds credential set c (v3) to net-snmp's USM users, its
 * keys localized for the engine ID given (this agent's for informs, a sender's for traps);
 * the master keys are made once per pass phrase. The users live as long as the process.
 * Returns NULL, or why not (never a secret). */
const char *kvl_snmp_usm_user_add(const kvl_credentials_t *c, const uint8_t *engine_id,
                                  size_t engine_id_len);

/* While on, net-snmp's own log lines go out at debug level (MIB parsing uses it). */
void kvl_snmp_log_quiet(bool quiet);

/* Opens a session to t on loop; sends nothing yet (v3 discovery happens with the first
 * request). Returns NULL and writes the reason (never a secret) into err on failure. */
kvl_snmp_session_t *kvl_snmp_open(uv_loop_t *loop, const kvl_snmp_target_t *t, char *err,
                                  size_t errlen);

/* Drops every pending request (their callbacks are never called), closes the socket and
 * frees the session once its libuv handles have closed (run the loop afterwards).
 * NULL-safe. */
void kvl_snmp_close(kvl_snmp_session_t *s);

/* Sends a request for the n OIDs in oids. max_reps is used by GETBULK only (non-repeaters
 * is 0). retries: retransmissions after the first try, or -1 for the session's; it applies
 * to every request of the session in flight (callers send one at a time). Returns 0 when
 * the request is on its way (cb will be called once), or a negative KVL_E* code with the
 * reason in err (cb will not be called). */
int kvl_snmp_send(kvl_snmp_session_t *s, kvl_snmp_op_t op, const kvl_snmp_oid_t *oids, size_t n,
                  uint32_t max_reps, int retries, kvl_snmp_cb cb, void *arg, char *err,
                  size_t errlen);

/* The USM counter or condition behind a report, with what it usually means, e.g.
 * "wrong digest (usmStatsWrongDigests): wrong authentication password or protocol". */
const char *kvl_snmp_report_text(kvl_snmp_report_t r);

/* "address:port" (IPv6 in brackets), for log lines. */
const char *kvl_snmp_peer(const kvl_snmp_session_t *s);

/* True when s is cheap to open again (v1/v2c over our own socket to a numeric address: no
 * state beyond the socket), so a caller may close it between uses; false for SNMPv3, whose
 * engine ID and localized keys would have to be learnt again, and for host names, which
 * would be looked up again (a blocking call). */
bool kvl_snmp_reopen_is_cheap(const kvl_snmp_session_t *s);

#endif
