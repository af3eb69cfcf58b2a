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

#include "agent_config.h" /* kvl_snmp_version_t */

/* Sub-identifiers kept per OID. The poller holds a few hundred OIDs per device (columns,
 * cursors, requests), so this bounds its memory; IF-MIB OIDs have 11-12. A longer OID in a
 * response is cut to this length, which can only make it compare as outside a column or
 * not increasing, never as a wrong row. (v1/v2c) An OID in a response is also cut before a
 * sub-identifier above 2^32-1, with the same effect. */
#define KVL_SNMP_MAX_OID_LEN 64

typedef struct kvl_snmp_session kvl_snmp_session_t;

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

/* SNMP error-status values the poller cares about. */
enum {
    KVL_SNMP_ERR_NONE = 0,
    KVL_SNMP_ERR_TOO_BIG = 1,
    KVL_SNMP_ERR_NO_SUCH_NAME = 2,
    KVL_SNMP_ERR_GEN_ERR = 5,
};

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

/* MIB names (agent/snmp/snmp_mib.c, net-snmp's MIB parser). Nothing is loaded until the first
 * call, and only from the folders given: never the system's MIB path or module list.
 *
 * Resolves `name` ("MODULE::object", a bare "object", either with a ".1.2" instance suffix,
 * or a numeric ".1.3.6..." which needs no MIB) into o. Folders are searched in order; a
 * bare name loads every module in them the first time one is needed. *suffixed tells
 * whether the name carried an instance suffix. Returns 0, or KVL_EINVAL with the reason
 * (the name and the folders searched) in err. */
int kvl_snmp_mib_resolve(const char *const *dirs, size_t n_dirs, const char *name,
                         kvl_snmp_oid_t *o, bool *suffixed, char *err, size_t errlen);
/* Frees every MIB module loaded (the next resolve starts over). Safe to call always. */
void kvl_snmp_mib_release(void);

/* Fills o from sub-identifiers; returns 0 or KVL_EINVAL when n is too long. */
int kvl_snmp_oid_set(kvl_snmp_oid_t *o, const uint32_t *sub, size_t n);
/* True when o starts with prefix (and is at least as long). */
bool kvl_snmp_oid_has_prefix(const kvl_snmp_oid_t *o, const kvl_snmp_oid_t *prefix);
/* <0, 0, >0 like strcmp, in SNMP lexicographic order. */
int kvl_snmp_oid_cmp(const kvl_snmp_oid_t *a, const kvl_snmp_oid_t *b);
/* Writes ".1.3.6..." into buf (truncated to fit). Returns buf. */
char *kvl_snmp_oid_format(const kvl_snmp_oid_t *o, char *buf, size_t buflen);

#endif
