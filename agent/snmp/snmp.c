/*
 * snmp.c — asynchronous SNMP v1/v2c/v3 sessions on a libuv loop (see snmp.h).
 *
 * Two transports behind one session type, each a small table of functions (transport_t:
 * send, arm the timer, close). v1/v2c sessions ("v1/v2c: our own codec and
 * socket" below) encode and decode with snmp_ber.c over their own connected UDP socket and
 * keep their requests, retransmissions and timeouts here; net-snmp is not involved. SNMPv3
 * sessions, and v1/v2c ones when KAAVAL_SNMP_NETSNMP=1, go through net-snmp as follows.
 *
 * The only file that includes net-snmp. It uses the single-session API: snmp_sess_open
 * gives a handle with its own UDP socket; snmp_sess_async_send queues a request;
 * snmp_sess_read2 parses what arrived on the socket and calls back; snmp_sess_timeout
 * retransmits or expires requests; snmp_sess_select_info2_flags says when the next
 * retransmission is due. Here the socket is watched by a uv_poll_t and the next due time
 * drives a one-shot uv_timer_t that is re-armed after every read, send and timeout.
 *
 * net-snmp calls back with an op per request: RESEND on each retransmission (we note its
 * time, so rtt_ms is measured from the last try), SEC_ERROR before a v3 Report (ignored:
 * the Report itself follows as a received message), then exactly one of RECEIVED_MESSAGE,
 * TIMED_OUT or SEND_FAILED (this one also synchronously, inside snmp_sess_async_send,
 * when the first send fails: we then return the error and never call back). It also
 * calls back TIMED_OUT for every pending request inside snmp_sess_close; we swallow those.
 *
 * SNMPv3 engine ID discovery without blocking. net-snmp learns a v3 agent's engine ID
 * inside snmp_sess_open (snmpv3_engineID_probe -> usm_discover_engineid ->
 * snmp_sess_synch_response, a synchronous exchange of up to timeout x (retries + 1)), and
 * 5.9 repeats that "delayed probe" inside snmp_sess_async_send while the ID is unknown.
 * Both are skipped when the session has SNMP_FLAGS_DONT_PROBE; snmp_sess_open clears the
 * flag on its way out, so we set it again on the open session and keep it. Discovery is
 * then ours and asynchronous: a session's first request waits (`waiting`) while a probe, an
 * empty noAuthNoPriv GET with an empty user (RFC 3414 section 4), goes out like any other
 * request. net-snmp copies the engine ID of the Report that answers it into the session
 * (we do it when it does not), and create_user_from_session localizes the keys for that
 * engine, once; the expensive part, turning pass phrases into master keys (Ku: a million
 * hash rounds, about 3 ms), is done once per process and pass phrase (ku_for). The waiting
 * requests are then sent. A Report of unknownEngineID or notInTimeWindow to a later request
 * (the agent was replaced or rebooted) makes one re-discovery and one resend. An agent
 * drops a request it cannot decrypt (no Report comes back), so an authPriv request that
 * times out right after a discovery, with no authenticated answer since, is reported as
 * KVL_SNMP_REPORT_NO_ENCRYPTED_ANSWER; after two timeouts in a row the next request first
 * verifies the engine with a fresh discovery.
 *
 * Initialisation is deliberately minimal: snmp_sess_init runs net-snmp's primordial
 * set-up (transport domains, request ids); init_snmpv3 and the library's
 * post-configuration callbacks set up USM (among others the template user that parses
 * discovery Reports). init_snmp is not called: it would read /etc/snmp, load MIB files
 * and create persistent-state folders, none of which a numeric-OID client needs.
 */
#include "snmp.h"

#include <net-snmp/net-snmp-config.h> /* first, as net-snmp requires */

#include <net-snmp/net-snmp-includes.h>

#include <net-snmp/library/keytools.h>
#include <net-snmp/library/large_fd_set.h>
#include <net-snmp/library/snmpusm.h>
#include <net-snmp/library/snmpv3.h>
#include <net-snmp/library/transform_oids.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "snmp_ber.h"

typedef struct kvl_snmp_req kvl_snmp_req_t;

struct kvl_snmp_req {
    kvl_snmp_req_t *prev, *next;
    kvl_snmp_session_t *s;
    kvl_snmp_cb cb;
    void *arg;
    netsnmp_pdu *pdu; /* v3: the request as built; copies of it are sent (owned) */
    uint64_t sent_ns; /* uv_hrtime of the last transmission */
    int tries;
    int retries;          /* retransmissions, -1: the session's */
    bool in_send;         /* inside snmp_sess_async_send: a callback now is a synchronous failure */
    bool fired;           /* net-snmp called back while in_send */
    bool is_probe;        /* v3 engine ID discovery (no cb) */
    bool waiting;         /* v3: not sent yet, waits for the discovery */
    bool batch;           /* v3: among the waiting ones being released now */
    bool after_discovery; /* v3: sent right after a discovery */
    bool resent;          /* v3: already sent again after a re-discovery */
    /* v1/v2c through our own codec (see "v1/v2c" below) */
    int32_t reqid;   /* request-id, the same on every try */
    uint64_t due_ms; /* loop time at which the current try expires */
    size_t pkt_len;  /* the encoded request in pkt[] */
    size_t pkt_cap;
    uint8_t pkt[];
};

/* What differs between the two transports a session runs over: v1/v2c over our own socket
 * and BER codec (own_transport), or net-snmp (ns_transport: SNMPv3, and v1/v2c with
 * KAAVAL_SNMP_NETSNMP=1). Everything else here (requests, completion, closing) is shared. */
typedef struct transport {
    /* Queues a request (see kvl_snmp_send): 0, or a negative code with err and no callback. */
    int (*send)(kvl_snmp_session_t *s, kvl_snmp_op_t op, const kvl_snmp_oid_t *oids, size_t n,
                uint32_t max_reps, int retries, kvl_snmp_cb cb, void *arg, char *err,
                size_t errlen);
    /* Re-arms the session's timer for the next retransmission or expiry, if any. */
    void (*arm_timer)(kvl_snmp_session_t *s);
    /* Closes the socket or net-snmp session, once the poll handle no longer watches it. */
    void (*close)(kvl_snmp_session_t *s);
    /* Nothing but a socket to set up again (cheap to reopen), and finished requests' packet
     * buffers worth keeping for the next request. */
    bool own_socket;
} transport_t;

struct kvl_snmp_session {
    uv_loop_t *loop;
    void *sessp;
    int fd;
    uv_poll_t poll;
    uv_timer_t timer;
    int open_handles;
    netsnmp_large_fd_set *fds; /* net-snmp sessions only (allocated at open) */
    char *name;
    char peer[128];
    int retries;          /* the target's */
    kvl_snmp_req_t *reqs; /* pending requests (in flight or waiting) */
    int dispatching;      /* depth of calls into net-snmp that may call back */
    bool closing;         /* kvl_snmp_close was called */
    bool closed;          /* net-snmp session closed, handles closing */
    /* SNMPv3 */
    bool v3;
    bool authpriv;
    bool engine_known;     /* engine ID discovered and keys localized */
    bool probing;          /* a discovery probe is in flight */
    bool auth_seen;        /* an authenticated answer arrived since the last discovery */
    bool last_ok;          /* the last request that completed got an answer */
    const transport_t *tr; /* &own_transport or &ns_transport */
    /* v1/v2c through our own codec and socket (see "v1/v2c" below) */
    bool numeric_address; /* no name lookup to open it again */
    int ber_version;      /* KVL_SNMP_BER_V1 or KVL_SNMP_BER_V2C */
    uint8_t *community;   /* never logged */
    size_t community_len;
    uint32_t next_reqid;   /* random start, then incremented, within 1..2^31-1 */
    uint64_t timeout_ms;   /* per try */
    kvl_snmp_req_t *spare; /* a finished request kept for the next one (its pkt[] too) */
    uint64_t n_ignored;    /* datagrams not matching a pending request, or malformed */
};

static const transport_t own_transport; /* defined after their functions, below */
static const transport_t ns_transport;

/* KAAVAL_SNMP_NETSNMP=1 in the environment: v1/v2c through net-snmp too (the previous path,
 * kept for comparison and as a fallback). Read once, at the first session. */
static bool netsnmp_for_v2c(void)
{
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("KAAVAL_SNMP_NETSNMP");
        v = e != NULL && strcmp(e, "1") == 0;
    }
    return v == 1;
}

/* --- net-snmp log lines into ours ----------------------------------------------------------- */

static char log_line[1024];
static size_t log_used;
static bool log_quiet; /* during start-up: the library's set-up chatter goes to debug */

static int netsnmp_priority_to_level(int priority)
{
    if (priority <= LOG_ERR) {
        return KVL_LOG_LEVEL_ERROR;
    }
    if (priority == LOG_WARNING) {
        return KVL_LOG_LEVEL_WARN;
    }
    if (priority == LOG_NOTICE) {
        return KVL_LOG_LEVEL_INFO;
    }
    return KVL_LOG_LEVEL_DEBUG;
}

/* net-snmp may log a line in several pieces; we emit whole lines. */
static int on_netsnmp_log(int major, int minor, void *server_arg, void *client_arg)
{
    KVL_UNUSED(major);
    KVL_UNUSED(minor);
    KVL_UNUSED(client_arg);
    const struct snmp_log_message *m = server_arg;
    if (m == NULL || m->msg == NULL) {
        return 0;
    }
    for (const char *c = m->msg; *c != '\0'; c++) {
        if (*c == '\n' || log_used == sizeof(log_line) - 1) {
            log_line[log_used] = '\0';
            if (log_used > 0) {
                KVL_LOG(log_quiet ? KVL_LOG_LEVEL_DEBUG : netsnmp_priority_to_level(m->priority),
                        "snmp", "net-snmp", "%s", log_line);
            }
            log_used = 0;
            if (*c == '\n') {
                continue;
            }
        }
        log_line[log_used++] = *c;
    }
    return 0;
}

void kvl_snmp_init(void)
{
    static bool done;
    if (done) {
        return;
    }
    done = true;
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_READ_CONFIGS, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_PERSIST_STATE, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_LOAD, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DISABLE_PERSISTENT_SAVE, 1);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_NO_TOKEN_WARNINGS, 1);
    netsnmp_ds_set_string(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_APPTYPE, "kaaval");
    snmp_register_callback(SNMP_CALLBACK_LIBRARY, SNMP_CALLBACK_LOGGING, on_netsnmp_log, NULL);
    netsnmp_register_loghandler(NETSNMP_LOGHANDLER_CALLBACK, LOG_DEBUG);
    log_quiet = true;
    /* Primordial initialisation (see the top of this file). */
    netsnmp_session scratch;
    snmp_sess_init(&scratch);
    /* USM: security module, then what reading the configuration would have triggered. */
    init_snmpv3("kaaval");
    snmp_call_callbacks(SNMP_CALLBACK_LIBRARY, SNMP_CALLBACK_POST_PREMIB_READ_CONFIG, NULL);
    snmp_call_callbacks(SNMP_CALLBACK_LIBRARY, SNMP_CALLBACK_POST_READ_CONFIG, NULL);
    log_quiet = false;
}

void kvl_snmp_log_quiet(bool quiet)
{
    log_quiet = quiet;
}

/* --- OIDs ------------------------------------------------------------------------------------ */

/* --- SNMPv3 keys ------------------------------------------------------------------------------ */

static const oid *auth_oid(int auth, size_t *len)
{
    switch (auth) {
    case KVL_USM_AUTH_MD5:
        *len = KVL_ARRAY_SIZE(usmHMACMD5AuthProtocol);
        return usmHMACMD5AuthProtocol;
    case KVL_USM_AUTH_SHA1:
        *len = KVL_ARRAY_SIZE(usmHMACSHA1AuthProtocol);
        return usmHMACSHA1AuthProtocol;
    case KVL_USM_AUTH_SHA224:
        *len = KVL_ARRAY_SIZE(usmHMAC128SHA224AuthProtocol);
        return usmHMAC128SHA224AuthProtocol;
    case KVL_USM_AUTH_SHA256:
        *len = KVL_ARRAY_SIZE(usmHMAC192SHA256AuthProtocol);
        return usmHMAC192SHA256AuthProtocol;
    case KVL_USM_AUTH_SHA384:
        *len = KVL_ARRAY_SIZE(usmHMAC256SHA384AuthProtocol);
        return usmHMAC256SHA384AuthProtocol;
    case KVL_USM_AUTH_SHA512:
        *len = KVL_ARRAY_SIZE(usmHMAC384SHA512AuthProtocol);
        return usmHMAC384SHA512AuthProtocol;
    default:
        *len = 0;
        return NULL;
    }
}

static const oid *priv_oid(int priv, size_t *len)
{
    switch (priv) {
    case KVL_USM_PRIV_DES:
        *len = KVL_ARRAY_SIZE(usmDESPrivProtocol);
        return usmDESPrivProtocol;
    case KVL_USM_PRIV_AES128:
        *len = KVL_ARRAY_SIZE(usmAESPrivProtocol);
        return usmAESPrivProtocol;
    case KVL_USM_PRIV_AES192:
        *len = KVL_ARRAY_SIZE(usmAES192PrivProtocol);
        return usmAES192PrivProtocol;
    case KVL_USM_PRIV_AES256:
        *len = KVL_ARRAY_SIZE(usmAES256PrivProtocol);
        return usmAES256PrivProtocol;
    case KVL_USM_PRIV_AES192C:
        *len = KVL_ARRAY_SIZE(usmAES192CiscoPrivProtocol);
        return usmAES192CiscoPrivProtocol;
    case KVL_USM_PRIV_AES256C:
        *len = KVL_ARRAY_SIZE(usmAES256CiscoPrivProtocol);
        return usmAES256CiscoPrivProtocol;
    default:
        *len = 0;
        return NULL;
    }
}

/* Master keys (Ku) already computed, per hash and pass phrase; lives as long as the process
 * (a handful of entries: one per credential set). */
typedef struct ku_entry {
    struct ku_entry *next;
    int auth;
    char *pass;
    size_t ku_len;
    u_char ku[USM_AUTH_KU_LEN];
} ku_entry_t;

static ku_entry_t *ku_cache;

/* Copies the master key of pass for hash auth into out (out_len: its size, then the key's
 * length). Returns 0, or -1 when net-snmp cannot make it. */
static int ku_for(int auth, const char *pass, u_char *out, size_t *out_len)
{
    ku_entry_t *e = ku_cache;
    while (e != NULL && !(e->auth == auth && strcmp(e->pass, pass) == 0)) {
        e = e->next;
    }
    if (e == NULL) {
        size_t olen = 0;
        const oid *o = auth_oid(auth, &olen);
        e = calloc(1, sizeof(*e));
        if (o == NULL || e == NULL || (e->pass = strdup(pass)) == NULL) {
            free(e);
            return -1;
        }
        e->auth = auth;
        e->ku_len = sizeof(e->ku);
        if (generate_Ku(o, (u_int)olen, (const u_char *)pass, strlen(pass), e->ku, &e->ku_len) !=
            SNMPERR_SUCCESS) {
            free(e->pass);
            free(e);
            return -1;
        }
        e->next = ku_cache;
        ku_cache = e;
    }
    if (e->ku_len > *out_len) {
        return -1;
    }
    memcpy(out, e->ku, e->ku_len);
    *out_len = e->ku_len;
    return 0;
}

const char *kvl_snmp_report_text(kvl_snmp_report_t r)
{
    switch (r) {
    case KVL_SNMP_REPORT_UNKNOWN_ENGINE_ID:
        return "unknown engine ID (usmStatsUnknownEngineIDs), also after a new discovery";
    case KVL_SNMP_REPORT_UNKNOWN_USER:
        return "unknown user name (usmStatsUnknownUserNames): the agent has no such user";
    case KVL_SNMP_REPORT_UNSUPPORTED_LEVEL:
        return "unsupported security level (usmStatsUnsupportedSecLevels): the user is not "
               "set up for this level on the agent";
    case KVL_SNMP_REPORT_WRONG_DIGEST:
        return "wrong digest (usmStatsWrongDigests): wrong authentication password or protocol";
    case KVL_SNMP_REPORT_NOT_IN_TIME_WINDOW:
        return "not in time window (usmStatsNotInTimeWindows), also after a new discovery";
    case KVL_SNMP_REPORT_DECRYPTION_ERROR:
        return "decryption error (usmStatsDecryptionErrors): wrong privacy password or protocol";
    case KVL_SNMP_REPORT_NO_ENCRYPTED_ANSWER:
        return "no answer to encrypted requests although the engine answers discovery: wrong "
               "privacy password or protocol (the agent drops what it cannot decrypt)";
    case KVL_SNMP_REPORT_OTHER:
        return "refused with an SNMPv3 Report";
    default:
        return "no report";
    }
}

static kvl_snmp_report_t report_kind(int type)
{
    switch (type) {
    case SNMPERR_UNKNOWN_ENG_ID:
        return KVL_SNMP_REPORT_UNKNOWN_ENGINE_ID;
    case SNMPERR_UNKNOWN_USER_NAME:
        return KVL_SNMP_REPORT_UNKNOWN_USER;
    case SNMPERR_UNSUPPORTED_SEC_LEVEL:
        return KVL_SNMP_REPORT_UNSUPPORTED_LEVEL;
    case SNMPERR_AUTHENTICATION_FAILURE:
        return KVL_SNMP_REPORT_WRONG_DIGEST;
    case SNMPERR_NOT_IN_TIME_WINDOW:
        return KVL_SNMP_REPORT_NOT_IN_TIME_WINDOW;
    case SNMPERR_DECRYPTION_ERR:
        return KVL_SNMP_REPORT_DECRYPTION_ERROR;
    default:
        return KVL_SNMP_REPORT_OTHER;
    }
}

/* --- session --------------------------------------------------------------------------------- */

const char *kvl_snmp_peer(const kvl_snmp_session_t *s)
{
    return s->peer;
}

bool kvl_snmp_reopen_is_cheap(const kvl_snmp_session_t *s)
{
    return s->tr->own_socket && s->numeric_address; /* a host name: looked up again, blocking */
}

static void on_handle_closed(uv_handle_t *h)
{
    kvl_snmp_session_t *s = h->data;
    if (--s->open_handles > 0) {
        return;
    }
    if (s->fds != NULL) {
        netsnmp_large_fd_set_cleanup(s->fds);
        free(s->fds);
    }
    if (s->community != NULL) {
        memset(s->community, 0, s->community_len);
        free(s->community);
    }
    free(s->spare);
    free(s->name);
    free(s);
}

static void req_link(kvl_snmp_session_t *s, kvl_snmp_req_t *r)
{
    r->prev = NULL;
    r->next = s->reqs;
    if (s->reqs != NULL) {
        s->reqs->prev = r;
    }
    s->reqs = r;
}

static void req_unlink(kvl_snmp_session_t *s, kvl_snmp_req_t *r)
{
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        s->reqs = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    r->prev = r->next = NULL;
}

static void req_free(kvl_snmp_req_t *r)
{
    if (r->pdu != NULL) {
        snmp_free_pdu(r->pdu);
    }
    free(r);
}

/* net-snmp: closes the session (and its socket). */
static void ns_close(kvl_snmp_session_t *s)
{
    if (s->sessp != NULL) {
        s->dispatching++;
        snmp_sess_close(s->sessp); /* calls back TIMED_OUT for what is pending: swallowed */
        s->dispatching--;
        s->sessp = NULL;
    }
}

/* Closes the transport and the handles. Runs outside any net-snmp call. */
static void session_shutdown(kvl_snmp_session_t *s)
{
    if (s->closed) {
        return;
    }
    s->closed = true;
    uv_timer_stop(&s->timer);
    /* The poll handle stops watching the fd in uv_close, before net-snmp closes it. */
    uv_close((uv_handle_t *)&s->poll, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    s->tr->close(s); /* after uv_close, which stopped watching the socket */
    while (s->reqs != NULL) {
        kvl_snmp_req_t *r = s->reqs;
        req_unlink(s, r);
        req_free(r);
    }
}

static void on_timer(uv_timer_t *t);

/* net-snmp: re-arms the timer for its next retransmission or expiry, if any. */
static void ns_arm_timer(kvl_snmp_session_t *s)
{
    if (s->sessp == NULL) {
        return;
    }
    int numfds = 0;
    int block = 1;
    struct timeval tv = {0, 0};
    NETSNMP_LARGE_FD_ZERO(s->fds);
    snmp_sess_select_info2_flags(s->sessp, &numfds, s->fds, &tv, &block, NETSNMP_SELECT_NOALARMS);
    if (block) {
        uv_timer_stop(&s->timer);
        return;
    }
    /* Round up and add a millisecond: libuv's cached loop time may lag the clock net-snmp
     * reads, and firing early only costs another round. */
    uint64_t ms = (uint64_t)tv.tv_sec * 1000u + ((uint64_t)tv.tv_usec + 999u) / 1000u + 1u;
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

/* Called after every entry into net-snmp that may have called back. */
static void after_dispatch(kvl_snmp_session_t *s)
{
    if (s->dispatching > 0) {
        return;
    }
    if (s->closing) {
        session_shutdown(s);
    } else {
        s->tr->arm_timer(s);
    }
}

static void on_timer(uv_timer_t *t)
{
    kvl_snmp_session_t *s = t->data;
    if (s->closing || s->sessp == NULL) {
        return;
    }
    s->dispatching++;
    snmp_sess_timeout(s->sessp);
    s->dispatching--;
    after_dispatch(s);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    kvl_snmp_session_t *s = h->data;
    KVL_UNUSED(events);
    if (s->closing || s->sessp == NULL) {
        return;
    }
    if (status < 0) {
        KVL_LOG_ERROR("snmp", s->name, "socket poll failed: %s", uv_strerror(status));
        uv_poll_stop(&s->poll);
        return;
    }
    NETSNMP_LARGE_FD_ZERO(s->fds);
    NETSNMP_LARGE_FD_SET(s->fd, s->fds);
    s->dispatching++;
    snmp_sess_read2(s->sessp, s->fds);
    s->dispatching--;
    after_dispatch(s);
}

static kvl_snmp_type_t convert_type(u_char t)
{
    switch (t) {
    case ASN_NULL:
        return KVL_SNMP_T_NULL;
    case ASN_INTEGER:
        return KVL_SNMP_T_INTEGER;
    case ASN_OCTET_STR:
        return KVL_SNMP_T_OCTETS;
    case ASN_OBJECT_ID:
        return KVL_SNMP_T_OID;
    case ASN_IPADDRESS:
        return KVL_SNMP_T_IPADDRESS;
    case ASN_COUNTER:
        return KVL_SNMP_T_COUNTER32;
    case ASN_GAUGE:
        return KVL_SNMP_T_GAUGE32;
    case ASN_TIMETICKS:
        return KVL_SNMP_T_TIMETICKS;
    case ASN_OPAQUE:
        return KVL_SNMP_T_OPAQUE;
    case ASN_COUNTER64:
        return KVL_SNMP_T_COUNTER64;
    case SNMP_NOSUCHOBJECT:
        return KVL_SNMP_T_NO_SUCH_OBJECT;
    case SNMP_NOSUCHINSTANCE:
        return KVL_SNMP_T_NO_SUCH_INSTANCE;
    case SNMP_ENDOFMIBVIEW:
        return KVL_SNMP_T_END_OF_MIB_VIEW;
    default:
        return KVL_SNMP_T_OTHER;
    }
}

static void convert_oid(kvl_snmp_oid_t *o, const oid *name, size_t len)
{
    if (len > KVL_SNMP_MAX_OID_LEN) {
        len = KVL_SNMP_MAX_OID_LEN;
    }
    for (size_t i = 0; i < len; i++) {
        o->sub[i] = (uint32_t)name[i];
    }
    o->len = len;
}

/* One conversion buffer for every session: responses are handled one at a time on the loop
 * thread and their varbinds are valid only during the callback, so sessions need not each
 * keep one (with 2,000 devices that was ~100 MB). Grown as needed, kept for the process. */
static struct {
    kvl_snmp_vb_t *vbs;
    kvl_snmp_oid_t *oid_values;
    size_t cap;
} conv;

/* Makes room for n varbinds in the shared buffer. Returns 0 or KVL_ENOMEM. */
static int conv_reserve(size_t n)
{
    if (n > conv.cap) {
        kvl_snmp_vb_t *vbs = realloc(conv.vbs, n * sizeof(*vbs));
        kvl_snmp_oid_t *ov = realloc(conv.oid_values, n * sizeof(*ov));
        if (vbs != NULL) {
            conv.vbs = vbs;
        }
        if (ov != NULL) {
            conv.oid_values = ov;
        }
        if (vbs == NULL || ov == NULL) {
            return KVL_ENOMEM;
        }
        conv.cap = n;
    }
    return 0;
}

/* Converts a response's varbinds into the shared buffer. Returns the count, or a negative
 * code when out of memory. */
static int convert_vbs(const netsnmp_pdu *pdu)
{
    size_t n = 0;
    for (const netsnmp_variable_list *v = pdu->variables; v != NULL; v = v->next_variable) {
        n++;
    }
    if (conv_reserve(n) < 0) {
        return KVL_ENOMEM;
    }
    size_t i = 0;
    for (const netsnmp_variable_list *v = pdu->variables; v != NULL; v = v->next_variable, i++) {
        kvl_snmp_vb_t *vb = &conv.vbs[i];
        convert_oid(&vb->oid, v->name, v->name_length);
        vb->type = convert_type(v->type);
        vb->integer = 0;
        vb->u = 0;
        vb->str = NULL;
        vb->str_len = 0;
        vb->oid_value = NULL;
        switch (vb->type) {
        case KVL_SNMP_T_INTEGER:
            if (v->val.integer != NULL) {
                vb->integer = (int64_t)*v->val.integer;
            }
            break;
        case KVL_SNMP_T_COUNTER32:
        case KVL_SNMP_T_GAUGE32:
        case KVL_SNMP_T_TIMETICKS:
            if (v->val.integer != NULL) {
                vb->u = (uint64_t)((unsigned long)*v->val.integer & 0xffffffffUL);
            }
            break;
        case KVL_SNMP_T_COUNTER64:
            if (v->val.counter64 != NULL) {
                vb->u = ((uint64_t)(v->val.counter64->high & 0xffffffffUL) << 32) |
                        (uint64_t)(v->val.counter64->low & 0xffffffffUL);
            }
            break;
        case KVL_SNMP_T_OCTETS:
        case KVL_SNMP_T_IPADDRESS:
        case KVL_SNMP_T_OPAQUE:
            vb->str = v->val.string;
            vb->str_len = v->val.string != NULL ? v->val_len : 0;
            break;
        case KVL_SNMP_T_OID:
            if (v->val.objid != NULL) {
                convert_oid(&conv.oid_values[i], v->val.objid, v->val_len / sizeof(oid));
                vb->oid_value = &conv.oid_values[i];
            }
            break;
        default:
            break;
        }
    }
    return (int)n;
}

static int on_netsnmp_event(int op, netsnmp_session *ss, int reqid, netsnmp_pdu *pdu, void *magic);

/* Sends pdu (taken) for r, which is linked. Returns 0, or KVL_EIO with net-snmp's reason in
 * err (r stays linked, pdu is freed, nothing calls back). */
static int transmit(kvl_snmp_session_t *s, kvl_snmp_req_t *r, netsnmp_pdu *pdu, char *err,
                    size_t errlen)
{
    snmp_sess_session(s->sessp)->retries = r->retries >= 0 ? r->retries : s->retries;
    r->tries = 1;
    r->sent_ns = uv_hrtime();
    r->in_send = true;
    r->fired = false;
    s->dispatching++;
    int reqid = snmp_sess_async_send(s->sessp, pdu, on_netsnmp_event, r);
    s->dispatching--;
    r->in_send = false;
    if (reqid == 0) {
        char *e = NULL;
        snmp_sess_error(s->sessp, NULL, NULL, &e);
        snprintf(err, errlen, "%s", e != NULL && e[0] != '\0' ? e : "send failed");
        free(e);
        snmp_free_pdu(pdu); /* not taken on failure */
        return KVL_EIO;
    }
    return 0;
}

/* v3: sends a fresh copy of r's request (new request and message ids). */
static int transmit_copy(kvl_snmp_session_t *s, kvl_snmp_req_t *r, char *err, size_t errlen)
{
    netsnmp_pdu *copy = snmp_clone_pdu(r->pdu);
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    copy->reqid = snmp_get_next_reqid();
    copy->msgid = snmp_get_next_msgid();
    return transmit(s, r, copy, err, errlen);
}

/* v3: sends an engine ID discovery probe. Returns 0 or a negative code with err. */
static int send_probe(kvl_snmp_session_t *s, int retries, char *err, size_t errlen)
{
    netsnmp_pdu *pdu = snmp_pdu_create(SNMP_MSG_GET);
    kvl_snmp_req_t *r = calloc(1, sizeof(*r));
    if (pdu == NULL || r == NULL || (pdu->securityName = strdup("")) == NULL) {
        if (pdu != NULL) {
            snmp_free_pdu(pdu);
        }
        free(r);
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    pdu->version = SNMP_VERSION_3;
    pdu->securityModel = SNMP_SEC_MODEL_USM;
    pdu->securityLevel = SNMP_SEC_LEVEL_NOAUTH;
    pdu->securityNameLen = 0;
    r->s = s;
    r->is_probe = true;
    r->retries = retries;
    req_link(s, r);
    int rc = transmit(s, r, pdu, err, errlen);
    if (rc < 0) {
        req_unlink(s, r);
        free(r);
        return rc;
    }
    s->probing = true;
    return 0;
}

/* v3: forgets the agent's engine ID, so that the next request discovers it again. */
static void forget_engine(kvl_snmp_session_t *s)
{
    netsnmp_session *ss = snmp_sess_session(s->sessp);
    free(ss->securityEngineID);
    ss->securityEngineID = NULL;
    ss->securityEngineIDLen = 0;
    free(ss->contextEngineID);
    ss->contextEngineID = NULL;
    ss->contextEngineIDLen = 0;
    s->engine_known = false;
}

/* v3: takes the engine ID from a discovery answer and localizes the keys for it. Returns
 * NULL, or why it could not. */
static const char *learn_engine(kvl_snmp_session_t *s, const netsnmp_pdu *pdu)
{
    netsnmp_session *ss = snmp_sess_session(s->sessp);
    if (ss->securityEngineIDLen == 0 && pdu->securityEngineIDLen > 0) {
        /* net-snmp normally does this itself when it parses the Report. */
        ss->securityEngineID = malloc(pdu->securityEngineIDLen);
        if (ss->securityEngineID == NULL) {
            return "out of memory";
        }
        memcpy(ss->securityEngineID, pdu->securityEngineID, pdu->securityEngineIDLen);
        ss->securityEngineIDLen = pdu->securityEngineIDLen;
    }
    if (ss->securityEngineIDLen == 0) {
        return "engine ID discovery failed: the answer carried no engine ID";
    }
    if (ss->contextEngineIDLen == 0) {
        ss->contextEngineID = malloc(ss->securityEngineIDLen);
        if (ss->contextEngineID == NULL) {
            return "out of memory";
        }
        memcpy(ss->contextEngineID, ss->securityEngineID, ss->securityEngineIDLen);
        ss->contextEngineIDLen = ss->securityEngineIDLen;
    }
    /* One USM user entry per engine and user name: replace what an earlier discovery (or
     * another session to a clone of this engine) left, so the keys are this session's. */
    struct usmUser *u =
        usm_get_user(ss->securityEngineID, ss->securityEngineIDLen, ss->securityName);
    if (u != NULL) {
        usm_remove_user(u);
        usm_free_user(u);
    }
    ss->flags &= ~SNMP_FLAGS_USER_CREATED;
    if (create_user_from_session(ss) != SNMPERR_SUCCESS) {
        return "cannot localize the SNMPv3 keys for the agent's engine ID";
    }
    s->engine_known = true;
    s->auth_seen = false;
    return NULL;
}

/* Completes r (unlinked) with res and frees it. */
static void complete(kvl_snmp_session_t *s, kvl_snmp_req_t *r, kvl_snmp_result_t *res)
{
    if (!s->closing) {
        res->tries = res->tries > 0 ? res->tries : r->tries;
        r->cb(s, res, r->arg);
    }
    /* Kept for the next request only while the session is busy (a poll goes on): an idle
     * session holds no request, so 2,000 devices between polls do not keep 2,000 packets. */
    if (s->tr->own_socket && !s->closed && s->reqs != NULL && s->spare == NULL) {
        s->spare = r;
        return;
    }
    req_free(r);
    if (s->reqs == NULL && s->spare != NULL) {
        req_free(s->spare);
        s->spare = NULL;
    }
}

/* The next request marked for release, or NULL. */
static kvl_snmp_req_t *next_batch(kvl_snmp_session_t *s)
{
    kvl_snmp_req_t *found = NULL;
    for (kvl_snmp_req_t *r = s->reqs; r != NULL; r = r->next) {
        if (r->batch) {
            found = r; /* the list is newest first: keep going for the oldest */
        }
    }
    return found;
}

static void mark_batch(kvl_snmp_session_t *s)
{
    for (kvl_snmp_req_t *r = s->reqs; r != NULL; r = r->next) {
        r->batch = r->waiting;
    }
}

/* v3: the discovery probe finished: send what waited for it, or fail it with why not. */
static void probe_done(kvl_snmp_session_t *s, int op, const netsnmp_pdu *pdu, int tries)
{
    s->probing = false;
    if (s->closing) {
        return;
    }
    kvl_snmp_result_t res;
    memset(&res, 0, sizeof(res));
    res.tries = tries;
    char *errstr = NULL;
    if (op == NETSNMP_CALLBACK_OP_RECEIVED_MESSAGE && pdu != NULL) {
        const char *why = learn_engine(s, pdu);
        if (why == NULL) {
            mark_batch(s);
            kvl_snmp_req_t *r;
            while (!s->closing && (r = next_batch(s)) != NULL) {
                char err[256];
                r->batch = r->waiting = false;
                r->after_discovery = true;
                if (transmit_copy(s, r, err, sizeof(err)) < 0) {
                    kvl_snmp_result_t fail;
                    memset(&fail, 0, sizeof(fail));
                    fail.status = KVL_SNMP_SEND_FAILED;
                    fail.error_text = err;
                    req_unlink(s, r);
                    complete(s, r, &fail);
                }
            }
            return;
        }
        res.status = KVL_SNMP_SEND_FAILED;
        res.error_text = why;
    } else if (op == NETSNMP_CALLBACK_OP_TIMED_OUT) {
        res.status = KVL_SNMP_TIMEOUT;
    } else {
        res.status = KVL_SNMP_SEND_FAILED;
        snmp_sess_error(s->sessp, NULL, NULL, &errstr);
        res.error_text = errstr != NULL ? errstr : "send failed";
    }
    s->last_ok = false;
    mark_batch(s);
    kvl_snmp_req_t *r;
    while (!s->closing && (r = next_batch(s)) != NULL) {
        req_unlink(s, r);
        complete(s, r, &res);
    }
    free(errstr);
}

static int on_netsnmp_event(int op, netsnmp_session *ss, int reqid, netsnmp_pdu *pdu, void *magic)
{
    KVL_UNUSED(ss);
    KVL_UNUSED(reqid);
    kvl_snmp_req_t *r = magic;
    kvl_snmp_session_t *s = r->s;

    if (op == NETSNMP_CALLBACK_OP_RESEND) {
        r->tries++;
        r->sent_ns = uv_hrtime();
        return 1;
    }
    if (op == NETSNMP_CALLBACK_OP_CONNECT || op == NETSNMP_CALLBACK_OP_SEC_ERROR) {
        return 1; /* SEC_ERROR: the Report that caused it is delivered next */
    }
    if (r->in_send) {
        r->fired = true; /* kvl_snmp_send reports it and frees r */
        return 1;
    }
    req_unlink(s, r);
    if (r->is_probe) {
        int tries = r->tries;
        req_free(r);
        probe_done(s, op, pdu, tries);
        return 1;
    }
    if (s->closing) {
        req_free(r);
        return 1;
    }
    kvl_snmp_result_t res;
    memset(&res, 0, sizeof(res));
    res.tries = r->tries;
    char *errstr = NULL;
    if (op == NETSNMP_CALLBACK_OP_RECEIVED_MESSAGE && pdu != NULL &&
        pdu->command == SNMP_MSG_REPORT) {
        int type = snmpv3_get_report_type(pdu);
        if ((type == SNMPERR_UNKNOWN_ENG_ID || type == SNMPERR_NOT_IN_TIME_WINDOW) && s->v3 &&
            !r->resent && r->pdu != NULL) {
            /* The agent was replaced or restarted: discover it again, then send again. */
            char err[256];
            r->resent = true;
            r->waiting = true;
            forget_engine(s);
            req_link(s, r);
            if (s->probing || send_probe(s, r->retries, err, sizeof(err)) == 0) {
                return 1;
            }
            req_unlink(s, r);
            r->waiting = false;
            res.status = KVL_SNMP_SEND_FAILED;
            res.error_text = err;
            complete(s, r, &res);
            return 1;
        }
        res.status = KVL_SNMP_REPORT;
        res.report = report_kind(type);
        res.error_text = kvl_snmp_report_text(res.report);
        s->last_ok = false;
    } else if (op == NETSNMP_CALLBACK_OP_RECEIVED_MESSAGE && pdu != NULL) {
        res.status = KVL_SNMP_RESPONSE;
        res.rtt_ms = (double)(uv_hrtime() - r->sent_ns) / 1e6;
        res.error_status = (int)pdu->errstat;
        res.error_index = (int)pdu->errindex;
        if (pdu->securityLevel >= SNMP_SEC_LEVEL_AUTHNOPRIV) {
            s->auth_seen = true;
        }
        s->last_ok = true;
        int n = convert_vbs(pdu);
        if (n < 0) {
            res.status = KVL_SNMP_SEND_FAILED;
            res.error_text = "out of memory converting a response";
        } else {
            res.vbs = conv.vbs;
            res.n_vbs = (size_t)n;
        }
    } else if (op == NETSNMP_CALLBACK_OP_TIMED_OUT) {
        res.status = KVL_SNMP_TIMEOUT;
        if (s->authpriv && r->after_discovery && !s->auth_seen) {
            res.status = KVL_SNMP_REPORT;
            res.report = KVL_SNMP_REPORT_NO_ENCRYPTED_ANSWER;
            res.error_text = kvl_snmp_report_text(res.report);
            forget_engine(s); /* so the next request tells the same story again */
        } else if (s->authpriv && !s->last_ok && s->engine_known) {
            forget_engine(s); /* twice in a row: verify the engine before the next request */
        }
        s->last_ok = false;
    } else {
        res.status = KVL_SNMP_SEND_FAILED;
        snmp_sess_error(s->sessp, NULL, NULL, &errstr);
        res.error_text = errstr != NULL ? errstr : "send failed";
        s->last_ok = false;
    }
    complete(s, r, &res);
    free(errstr);
    return 1;
}

/* --- v1/v2c: our own codec and socket ---------------------------------------------------------
 *
 * Community-based sessions do not use net-snmp: its per-varbind allocations and parsing cost
 * more CPU than everything else the agent does. Each session has its own non-blocking UDP
 * socket connect()ed to the peer, so only the peer's datagrams arrive, watched by the same
 * uv_poll_t; requests are encoded by snmp_ber.c into their request (pkt[]), which a busy
 * session keeps one of for the next request (spare; freed when the session goes idle). Request-ids
 * start at a random value and increase; a retransmission repeats the same datagram, so an answer to
 * any try completes the request. The session timer fires at the earliest due time of its requests:
 * a request that still has tries left is sent again (rtt_ms then counts from that try), else it
 * completes with KVL_SNMP_TIMEOUT. Datagrams that do not decode as a Response, or carry
 * another version, community or an unknown request-id, are ignored and counted (debug).
 * Responses are decoded into the shared conversion buffer (conv) and a shared receive
 * buffer, both valid during the callback only, as with net-snmp. */

#define OWN_DATAGRAM_MAX 65535u /* IPv4 UDP payloads stop at 65,507 bytes */
#define OWN_READS_PER_WAKEUP 64

static uint8_t own_rx[OWN_DATAGRAM_MAX];
static uint8_t own_tx[OWN_DATAGRAM_MAX];

static void own_on_timer(uv_timer_t *t);

static void own_arm_timer(kvl_snmp_session_t *s)
{
    uint64_t due = UINT64_MAX;
    for (const kvl_snmp_req_t *r = s->reqs; r != NULL; r = r->next) {
        if (r->due_ms < due) {
            due = r->due_ms;
        }
    }
    if (due == UINT64_MAX) {
        uv_timer_stop(&s->timer);
        return;
    }
    uint64_t now = uv_now(s->loop);
    uv_timer_start(&s->timer, own_on_timer, due > now ? due - now : 0, 0);
}

/* Sends r's datagram. Returns 0, or KVL_EIO with the reason in err. */
static int own_transmit(kvl_snmp_session_t *s, kvl_snmp_req_t *r, char *err, size_t errlen)
{
    ssize_t n = send(s->fd, r->pkt, r->pkt_len, 0);
    if (n < 0 && errno == ECONNREFUSED) {
        /* An ICMP port unreachable for an earlier datagram was pending on the connected
         * socket and failed this send instead; net-snmp's unconnected socket never saw
         * those, and a closed port must look like a timeout, so send again. */
        n = send(s->fd, r->pkt, r->pkt_len, 0);
    }
    if (n < 0) {
        snprintf(err, errlen, "send to %s: %s", s->peer, strerror(errno));
        return KVL_EIO;
    }
    r->sent_ns = uv_hrtime();
    uv_update_time(s->loop);
    r->due_ms = uv_now(s->loop) + s->timeout_ms;
    return 0;
}

static int own_send(kvl_snmp_session_t *s, kvl_snmp_op_t op, const kvl_snmp_oid_t *oids, size_t n,
                    uint32_t max_reps, int retries, kvl_snmp_cb cb, void *arg, char *err,
                    size_t errlen)
{
    kvl_snmp_ber_request_t q = {
        .version = s->ber_version,
        .community = s->community,
        .community_len = s->community_len,
        .request_id = (int32_t)s->next_reqid,
        .op = op,
        .max_reps = op == KVL_SNMP_GETBULK ? (max_reps > 0 ? max_reps : 1) : 0,
        .oids = oids,
        .n_oids = n,
    };
    const char *why = NULL;
    int len = kvl_snmp_ber_encode(&q, own_tx, sizeof(own_tx), &why);
    if (len < 0) {
        snprintf(err, errlen, "cannot encode the request: %s", why);
        return len;
    }
    s->next_reqid = s->next_reqid >= INT32_MAX ? 1 : s->next_reqid + 1;
    kvl_snmp_req_t *r = s->spare;
    if (r != NULL && r->pkt_cap >= (size_t)len) {
        s->spare = NULL;
        size_t cap = r->pkt_cap;
        memset(r, 0, sizeof(*r));
        r->pkt_cap = cap;
    } else {
        r = calloc(1, sizeof(*r) + (size_t)len);
        if (r == NULL) {
            snprintf(err, errlen, "out of memory");
            return KVL_ENOMEM;
        }
        r->pkt_cap = (size_t)len;
    }
    memcpy(r->pkt, own_tx, (size_t)len);
    r->pkt_len = (size_t)len;
    r->reqid = q.request_id;
    r->s = s;
    r->cb = cb;
    r->arg = arg;
    r->tries = 1;
    r->retries = retries >= 0 ? retries : s->retries;
    int rc = own_transmit(s, r, err, errlen);
    if (rc < 0) {
        if (s->spare == NULL) {
            s->spare = r;
        } else {
            free(r);
        }
        return rc;
    }
    req_link(s, r);
    return 0;
}

static void own_on_timer(uv_timer_t *t)
{
    kvl_snmp_session_t *s = t->data;
    if (s->closing) {
        return;
    }
    uint64_t now = uv_now(s->loop);
    s->dispatching++;
    bool again = true;
    while (again && !s->closing) {
        again = false; /* a callback may change the list: rescan after each completion */
        for (kvl_snmp_req_t *r = s->reqs; r != NULL; r = r->next) {
            if (r->due_ms > now) {
                continue;
            }
            kvl_snmp_result_t res;
            memset(&res, 0, sizeof(res));
            char err[256];
            if (r->tries <= r->retries) {
                r->tries++;
                if (own_transmit(s, r, err, sizeof(err)) == 0) {
                    continue;
                }
                res.status = KVL_SNMP_SEND_FAILED;
                res.error_text = err;
            } else {
                res.status = KVL_SNMP_TIMEOUT;
            }
            req_unlink(s, r);
            complete(s, r, &res);
            again = true;
            break;
        }
    }
    s->dispatching--;
    after_dispatch(s);
}

/* One datagram from the peer: completes the request it answers, or is ignored. */
static void own_received(kvl_snmp_session_t *s, const uint8_t *pkt, size_t len)
{
    kvl_snmp_ber_response_t resp;
    const char *why = NULL;
    if (conv_reserve(len / 7 + 1) < 0) { /* a varbind takes at least 7 bytes */
        s->n_ignored++;
        KVL_LOG_WARN("snmp", s->name, "out of memory decoding a response: ignored");
        return;
    }
    if (kvl_snmp_ber_decode(pkt, len, &resp, conv.vbs, conv.oid_values, conv.cap, &why) < 0) {
        s->n_ignored++;
        KVL_LOG_DEBUG("snmp", s->name, "datagram of %zu bytes ignored (%" PRIu64 " so far): %s",
                      len, s->n_ignored, why);
        return;
    }
    if (resp.version != s->ber_version || resp.community_len != s->community_len ||
        memcmp(resp.community, s->community, s->community_len) != 0) {
        s->n_ignored++;
        KVL_LOG_DEBUG("snmp", s->name,
                      "response ignored (%" PRIu64 " so far): other version or community",
                      s->n_ignored);
        return;
    }
    kvl_snmp_req_t *r = s->reqs;
    while (r != NULL && r->reqid != resp.request_id) {
        r = r->next;
    }
    if (r == NULL) {
        s->n_ignored++;
        KVL_LOG_DEBUG("snmp", s->name,
                      "response ignored (%" PRIu64 " so far): no request with request-id %" PRId32
                      " pending (a late answer?)",
                      s->n_ignored, resp.request_id);
        return;
    }
    req_unlink(s, r);
    kvl_snmp_result_t res;
    memset(&res, 0, sizeof(res));
    res.status = KVL_SNMP_RESPONSE;
    res.rtt_ms = (double)(uv_hrtime() - r->sent_ns) / 1e6;
    res.error_status = resp.error_status;
    res.error_index = resp.error_index;
    res.vbs = conv.vbs;
    res.n_vbs = resp.n_vbs;
    complete(s, r, &res);
}

static void own_on_readable(uv_poll_t *h, int status, int events)
{
    kvl_snmp_session_t *s = h->data;
    KVL_UNUSED(events);
    if (s->closing) {
        return;
    }
    if (status < 0) {
        /* libuv reports POLLERR as UV_EBADF and stops the handle. On our connected socket
         * that is an ICMP error (port or host unreachable) for an earlier datagram: clear it
         * and watch again; the request simply times out, as it did with net-snmp's
         * unconnected socket. */
        int soerr = 0;
        socklen_t optlen = sizeof(soerr);
        if (status != UV_EBADF || getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &optlen) < 0 ||
            (status = uv_poll_start(&s->poll, UV_READABLE, own_on_readable)) < 0) {
            KVL_LOG_ERROR("snmp", s->name, "socket poll failed: %s", uv_strerror(status));
            uv_poll_stop(&s->poll);
            return;
        }
        KVL_LOG_DEBUG("snmp", s->name, "socket error from the peer's side ignored: %s",
                      strerror(soerr));
    }
    s->dispatching++;
    for (int k = 0; k < OWN_READS_PER_WAKEUP && !s->closing; k++) {
        ssize_t n = recv(s->fd, own_rx, sizeof(own_rx), MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR || errno == ECONNREFUSED || errno == EHOSTUNREACH ||
                errno == ENETUNREACH) {
                continue; /* ICMP errors: the request simply times out, as before */
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                KVL_LOG_DEBUG("snmp", s->name, "receive: %s", strerror(errno));
            }
            break;
        }
        if ((size_t)n > sizeof(own_rx)) {
            s->n_ignored++;
            KVL_LOG_DEBUG("snmp", s->name, "datagram of %zd bytes ignored: larger than %u", n,
                          OWN_DATAGRAM_MAX);
            continue;
        }
        own_received(s, own_rx, (size_t)n);
    }
    s->dispatching--;
    after_dispatch(s);
}

/* Sets up s (allocated, name and peer set) for t over our own socket. Returns 0, or -1 with
 * err (s is then still to be freed by the caller, no handle initialised). */
static int own_open(kvl_snmp_session_t *s, uv_loop_t *loop, const kvl_snmp_target_t *t, char *err,
                    size_t errlen)
{
    const char *community = t->community != NULL ? t->community : "";
    s->tr = &own_transport;
    s->fd = -1;
    s->ber_version = t->version == KVL_SNMP_V1 ? KVL_SNMP_BER_V1 : KVL_SNMP_BER_V2C;
    s->community_len = strlen(community);
    s->community = malloc(s->community_len + 1);
    if (s->community == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(s->community, community, s->community_len + 1);
    s->timeout_ms = (uint64_t)(t->timeout_ms > 0 ? t->timeout_ms : 1000);
    s->retries = t->retries >= 0 ? t->retries : 0;
    uint64_t seed = uv_hrtime() ^ (uint64_t)(uintptr_t)s;
    seed = (seed ^ (seed >> 31)) * 0x9e3779b97f4a7c15u;
    s->next_reqid = (uint32_t)(seed >> 33) % (uint32_t)INT32_MAX + 1u;

    /* A session is opened for every poll (poller.c), so a numeric address (the norm) is
     * read directly; getaddrinfo only for the rest (host names, IPv6 with a zone). */
    struct sockaddr_storage ss;
    socklen_t ss_len = 0;
    struct addrinfo *ai = NULL;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&ss;
    if (inet_pton(AF_INET, t->address, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(t->port);
        ss_len = sizeof(*sin);
        s->numeric_address = true;
    } else if (inet_pton(AF_INET6, t->address, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(t->port);
        ss_len = sizeof(*sin6);
        s->numeric_address = true;
    } else {
        char port[8];
        snprintf(port, sizeof(port), "%u", (unsigned)t->port);
        struct addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_DGRAM;
        hints.ai_flags = AI_NUMERICSERV;
        int grc = getaddrinfo(t->address, port, &hints, &ai); /* blocks only for host names */
        if (grc != 0 || ai == NULL || ai->ai_addrlen > sizeof(ss)) {
            snprintf(err, errlen, "cannot open a session to %s: %s", s->peer,
                     grc != 0 ? gai_strerror(grc) : "no address");
            if (ai != NULL) {
                freeaddrinfo(ai);
            }
            return -1;
        }
        memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
        ss_len = (socklen_t)ai->ai_addrlen;
        freeaddrinfo(ai);
    }
    s->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&ss, ss_len) < 0) {
        snprintf(err, errlen, "cannot open a session to %s: %s", s->peer, strerror(errno));
        if (s->fd >= 0) {
            close(s->fd);
        }
        return -1;
    }
    int rc = uv_poll_init(loop, &s->poll, s->fd);
    if (rc < 0) {
        snprintf(err, errlen, "cannot watch the socket for %s: %s", s->peer, uv_strerror(rc));
        close(s->fd);
        return -1;
    }
    s->poll.data = s;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->open_handles = 2;
    rc = uv_poll_start(&s->poll, UV_READABLE, own_on_readable);
    if (rc < 0) {
        snprintf(err, errlen, "cannot watch the socket for %s: %s", s->peer, uv_strerror(rc));
        s->closing = true;
        session_shutdown(s); /* closes the socket, frees s once the handles have closed */
        return 1;
    }
    return 0;
}

/* Fills the USM part of sess from c. Returns NULL, or why not (never a secret). */
static const char *setup_usm(netsnmp_session *sess, const kvl_credentials_t *c)
{
    sess->version = SNMP_VERSION_3;
    sess->securityModel = SNMP_SEC_MODEL_USM;
    sess->securityName = c->user; /* copied by snmp_sess_open, like the rest */
    sess->securityNameLen = strlen(c->user);
    sess->contextName = c->context != NULL ? c->context : (char *)"";
    sess->contextNameLen = strlen(sess->contextName);
    sess->securityLevel = c->level == KVL_USM_AUTHPRIV     ? SNMP_SEC_LEVEL_AUTHPRIV
                          : c->level == KVL_USM_AUTHNOPRIV ? SNMP_SEC_LEVEL_AUTHNOPRIV
                                                           : SNMP_SEC_LEVEL_NOAUTH;
    sess->flags |= SNMP_FLAGS_DONT_PROBE;
    if (c->level == KVL_USM_NOAUTH) {
        return NULL;
    }
    size_t len = 0;
    const oid *a = auth_oid(c->auth_protocol, &len);
    if (a == NULL || c->auth_password == NULL) {
        return "no authentication protocol";
    }
    sess->securityAuthProto = (oid *)(uintptr_t)a;
    sess->securityAuthProtoLen = len;
    sess->securityAuthKeyLen = sizeof(sess->securityAuthKey);
    if (ku_for(c->auth_protocol, c->auth_password, sess->securityAuthKey,
               &sess->securityAuthKeyLen) != 0) {
        return "cannot derive the authentication key from the pass phrase";
    }
    if (c->level != KVL_USM_AUTHPRIV) {
        return NULL;
    }
    const oid *p = priv_oid(c->priv_protocol, &len);
    if (p == NULL || c->priv_password == NULL) {
        return "no privacy protocol";
    }
    sess->securityPrivProto = (oid *)(uintptr_t)p;
    sess->securityPrivProtoLen = len;
    sess->securityPrivKeyLen = sizeof(sess->securityPrivKey);
    /* The privacy key is made with the authentication protocol's hash (RFC 3414, 3826). */
    if (ku_for(c->auth_protocol, c->priv_password, sess->securityPrivKey,
               &sess->securityPrivKeyLen) != 0) {
        return "cannot derive the privacy key from the pass phrase";
    }
    return NULL;
}

const char *kvl_snmp_usm_user_add(const kvl_credentials_t *c, const uint8_t *engine_id,
                                  size_t engine_id_len)
{
    kvl_snmp_init();
    netsnmp_session sess;
    snmp_sess_init(&sess);
    const char *why = setup_usm(&sess, c);
    if (why != NULL) {
        return why;
    }
    sess.securityEngineID = (u_char *)(uintptr_t)engine_id;
    sess.securityEngineIDLen = engine_id_len;
    if (usm_create_user_from_session(&sess) != SNMPERR_SUCCESS) {
        return "net-snmp cannot create the USM user";
    }
    return NULL;
}

/* own_transport's close: the socket, unless it was never opened. */
static void own_close(kvl_snmp_session_t *s)
{
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

/* net-snmp: builds the PDU and sends it, or (v3) holds it until the engine is discovered. */
static int ns_send(kvl_snmp_session_t *s, kvl_snmp_op_t op, const kvl_snmp_oid_t *oids, size_t n,
                   uint32_t max_reps, int retries, kvl_snmp_cb cb, void *arg, char *err,
                   size_t errlen)
{
    if (s->sessp == NULL) {
        snprintf(err, errlen, "session is closing");
        return KVL_EINVAL;
    }
    int command = op == KVL_SNMP_GET       ? SNMP_MSG_GET
                  : op == KVL_SNMP_GETNEXT ? SNMP_MSG_GETNEXT
                                           : SNMP_MSG_GETBULK;
    netsnmp_pdu *pdu = snmp_pdu_create(command);
    if (pdu == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    if (op == KVL_SNMP_GETBULK) {
        pdu->non_repeaters = 0;
        pdu->max_repetitions = (long)(max_reps > 0 ? max_reps : 1);
    }
    for (size_t i = 0; i < n; i++) {
        oid name[KVL_SNMP_MAX_OID_LEN];
        for (size_t j = 0; j < oids[i].len; j++) {
            name[j] = oids[i].sub[j];
        }
        if (snmp_add_null_var(pdu, name, oids[i].len) == NULL) {
            snmp_free_pdu(pdu);
            snprintf(err, errlen, "out of memory");
            return KVL_ENOMEM;
        }
    }
    kvl_snmp_req_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snmp_free_pdu(pdu);
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    r->s = s;
    r->cb = cb;
    r->arg = arg;
    r->tries = 1;
    r->retries = retries;
    req_link(s, r);

    int rc;
    if (!s->v3) {
        rc = transmit(s, r, pdu, err, errlen);
    } else {
        r->pdu = pdu;
        if (s->engine_known) {
            rc = transmit_copy(s, r, err, errlen);
        } else {
            r->waiting = true;
            rc = s->probing ? 0 : send_probe(s, retries, err, errlen);
        }
    }
    if (rc < 0) {
        req_unlink(s, r);
        req_free(r);
    }
    return rc;
}

static const transport_t own_transport = {
    .send = own_send,
    .arm_timer = own_arm_timer,
    .close = own_close,
    .own_socket = true,
};

static const transport_t ns_transport = {
    .send = ns_send,
    .arm_timer = ns_arm_timer,
    .close = ns_close,
    .own_socket = false,
};

kvl_snmp_session_t *kvl_snmp_open(uv_loop_t *loop, const kvl_snmp_target_t *t, char *err,
                                  size_t errlen)
{
    kvl_snmp_session_t *s = calloc(1, sizeof(*s));
    char peername[300];
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->name = strdup(t->name != NULL ? t->name : "");
    if (s->name == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    bool v6 = strchr(t->address, ':') != NULL;
    snprintf(s->peer, sizeof(s->peer), v6 ? "[%s]:%u" : "%s:%u", t->address, (unsigned)t->port);
    snprintf(peername, sizeof(peername), v6 ? "udp6:[%s]:%u" : "udp:%s:%u", t->address,
             (unsigned)t->port);
    if (t->version != KVL_SNMP_V3 && !netsnmp_for_v2c()) {
        int rc = own_open(s, loop, t, err, errlen);
        if (rc == 0) {
            return s;
        }
        if (rc < 0) {
            free(s->community);
            free(s->name);
            free(s);
        }
        return NULL;
    }

    /* net-snmp (and through it OpenSSL's libcrypto) is set up only now, for the first
     * SNMPv3 session: an agent polling v1/v2c devices alone never touches it. */
    s->tr = &ns_transport;
    kvl_snmp_init();
    netsnmp_session sess;
    snmp_sess_init(&sess);
    sess.peername = peername;
    sess.timeout = (long)(t->timeout_ms > 0 ? t->timeout_ms : 1000) * 1000L;
    sess.retries = t->retries >= 0 ? t->retries : 0;
    s->retries = sess.retries;
    if (t->version == KVL_SNMP_V3) {
        const char *why = t->usm != NULL ? setup_usm(&sess, t->usm) : "no SNMPv3 credentials";
        if (why != NULL) {
            snprintf(err, errlen, "cannot set up SNMPv3 for %s: %s", s->peer, why);
            free(s->name);
            free(s);
            return NULL;
        }
        s->v3 = true;
        s->authpriv = t->usm->level == KVL_USM_AUTHPRIV;
    } else {
        const char *community = t->community != NULL ? t->community : "";
        sess.version = t->version == KVL_SNMP_V1 ? SNMP_VERSION_1 : SNMP_VERSION_2c;
        sess.community = (u_char *)(uintptr_t)community; /* copied by snmp_sess_open */
        sess.community_len = strlen(community);
    }

    s->sessp = snmp_sess_open(&sess);
    /* The keys were copied (or not); wipe ours. */
    memset(sess.securityAuthKey, 0, sizeof(sess.securityAuthKey));
    memset(sess.securityPrivKey, 0, sizeof(sess.securityPrivKey));
    if (s->sessp == NULL) {
        char *e = NULL;
        snmp_error(&sess, NULL, NULL, &e);
        snprintf(err, errlen, "cannot open a session to %s: %s", s->peer,
                 e != NULL && e[0] != '\0' ? e : "unknown error");
        free(e);
        free(s->name);
        free(s);
        return NULL;
    }
    if (s->v3) {
        /* snmp_sess_open cleared it: keep net-snmp from ever probing synchronously. */
        snmp_sess_session(s->sessp)->flags |= SNMP_FLAGS_DONT_PROBE;
    }
    netsnmp_transport *tr = snmp_sess_transport(s->sessp);
    s->fd = tr != NULL ? tr->sock : -1;
    s->fds = malloc(sizeof(*s->fds));
    int rc = s->fd < 0        ? UV_EBADF
             : s->fds == NULL ? UV_ENOMEM
                              : uv_poll_init(loop, &s->poll, s->fd);
    if (rc < 0) {
        snprintf(err, errlen, "cannot watch the socket for %s: %s", s->peer, uv_strerror(rc));
        snmp_sess_close(s->sessp);
        free(s->fds);
        free(s->name);
        free(s);
        return NULL;
    }
    s->poll.data = s;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->open_handles = 2;
    netsnmp_large_fd_set_init(s->fds, s->fd + 1);
    rc = uv_poll_start(&s->poll, UV_READABLE, on_readable);
    if (rc < 0) {
        snprintf(err, errlen, "cannot watch the socket for %s: %s", s->peer, uv_strerror(rc));
        s->closing = true;
        session_shutdown(s); /* frees s once the handles have closed */
        return NULL;
    }
    return s;
}

void kvl_snmp_close(kvl_snmp_session_t *s)
{
    if (s == NULL || s->closing) {
        return;
    }
    s->closing = true;
    if (s->dispatching == 0) {
        session_shutdown(s);
    }
    /* else after_dispatch finishes the job when net-snmp returns */
}

int kvl_snmp_send(kvl_snmp_session_t *s, kvl_snmp_op_t op, const kvl_snmp_oid_t *oids, size_t n,
                  uint32_t max_reps, int retries, kvl_snmp_cb cb, void *arg, char *err,
                  size_t errlen)
{
    if (s->closing) {
        snprintf(err, errlen, "session is closing");
        return KVL_EINVAL;
    }
    int rc = s->tr->send(s, op, oids, n, max_reps, retries, cb, arg, err, errlen);
    after_dispatch(s);
    return rc;
}
