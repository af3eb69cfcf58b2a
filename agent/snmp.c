/*
 * snmp.c — asynchronous SNMP v1/v2c sessions on a libuv loop (see snmp.h).
 *
 * The only file that includes net-snmp. It uses the single-session API: snmp_sess_open
 * gives a handle with its own UDP socket; snmp_sess_async_send queues a request;
 * snmp_sess_read2 parses what arrived on the socket and calls back; snmp_sess_timeout
 * retransmits or expires requests; snmp_sess_select_info2_flags says when the next
 * retransmission is due. Here the socket is watched by a uv_poll_t and the next due time
 * drives a one-shot uv_timer_t that is re-armed after every read, send and timeout.
 *
 * net-snmp calls back with an op per request: RESEND on each retransmission (we note its
 * time, so rtt_ms is measured from the last try), then exactly one of RECEIVED_MESSAGE,
 * TIMED_OUT or SEND_FAILED (this one also synchronously, inside snmp_sess_async_send,
 * when the first send fails: we then return the error and never call back). It also
 * calls back TIMED_OUT for every pending request inside snmp_sess_close; we swallow those.
 *
 * Initialisation is deliberately minimal: snmp_sess_init runs net-snmp's primordial
 * set-up (transport domains, request ids) and nothing else. init_snmp is not called: it
 * would read /etc/snmp, load MIB files and create persistent-state folders, none of which
 * a numeric-OID v1/v2c client needs.
 */
#include "snmp.h"

#include <net-snmp/net-snmp-config.h> /* first, as net-snmp requires */

#include <net-snmp/net-snmp-includes.h>

#include <net-snmp/library/large_fd_set.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef struct kvl_snmp_req kvl_snmp_req_t;

struct kvl_snmp_req {
    kvl_snmp_req_t *prev, *next;
    kvl_snmp_session_t *s;
    kvl_snmp_cb cb;
    void *arg;
    uint64_t sent_ns; /* uv_hrtime of the last transmission */
    int tries;
    bool in_send; /* inside snmp_sess_async_send: a callback now is a synchronous failure */
    bool fired;   /* net-snmp called back while in_send */
};

struct kvl_snmp_session {
    uv_loop_t *loop;
    void *sessp;
    int fd;
    uv_poll_t poll;
    uv_timer_t timer;
    int open_handles;
    netsnmp_large_fd_set fds;
    bool fds_init;
    char *name;
    char peer[128];
    kvl_snmp_req_t *reqs; /* pending requests */
    kvl_snmp_vb_t *vbs;   /* response conversion buffer */
    size_t vbs_cap;
    kvl_snmp_oid_t *oid_values;
    size_t oid_values_cap;
    int dispatching; /* depth of calls into net-snmp that may call back */
    bool closing;    /* kvl_snmp_close was called */
    bool closed;     /* net-snmp session closed, handles closing */
};

/* --- net-snmp log lines into ours ----------------------------------------------------------- */

static char log_line[1024];
static size_t log_used;

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
                KVL_LOG(netsnmp_priority_to_level(m->priority), "snmp", "net-snmp", "%s", log_line);
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
    snmp_register_callback(SNMP_CALLBACK_LIBRARY, SNMP_CALLBACK_LOGGING, on_netsnmp_log, NULL);
    netsnmp_register_loghandler(NETSNMP_LOGHANDLER_CALLBACK, LOG_DEBUG);
    /* Primordial initialisation only (see the top of this file). */
    netsnmp_session scratch;
    snmp_sess_init(&scratch);
}

/* --- OIDs ------------------------------------------------------------------------------------ */

int kvl_snmp_oid_set(kvl_snmp_oid_t *o, const uint32_t *sub, size_t n)
{
    if (n > KVL_SNMP_MAX_OID_LEN) {
        return KVL_EINVAL;
    }
    memcpy(o->sub, sub, n * sizeof(sub[0]));
    o->len = n;
    return 0;
}

bool kvl_snmp_oid_has_prefix(const kvl_snmp_oid_t *o, const kvl_snmp_oid_t *prefix)
{
    return o->len >= prefix->len &&
           memcmp(o->sub, prefix->sub, prefix->len * sizeof(o->sub[0])) == 0;
}

int kvl_snmp_oid_cmp(const kvl_snmp_oid_t *a, const kvl_snmp_oid_t *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++) {
        if (a->sub[i] != b->sub[i]) {
            return a->sub[i] < b->sub[i] ? -1 : 1;
        }
    }
    return a->len < b->len ? -1 : (a->len > b->len ? 1 : 0);
}

char *kvl_snmp_oid_format(const kvl_snmp_oid_t *o, char *buf, size_t buflen)
{
    size_t used = 0;
    if (buflen == 0) {
        return buf;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < o->len && used < buflen; i++) {
        int n = snprintf(buf + used, buflen - used, ".%u", (unsigned)o->sub[i]);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
    return buf;
}

/* --- session --------------------------------------------------------------------------------- */

const char *kvl_snmp_peer(const kvl_snmp_session_t *s)
{
    return s->peer;
}

static void on_handle_closed(uv_handle_t *h)
{
    kvl_snmp_session_t *s = h->data;
    if (--s->open_handles > 0) {
        return;
    }
    if (s->fds_init) {
        netsnmp_large_fd_set_cleanup(&s->fds);
    }
    free(s->vbs);
    free(s->oid_values);
    free(s->name);
    free(s);
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

/* Closes the net-snmp session and the handles. Runs outside any net-snmp call. */
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
    if (s->sessp != NULL) {
        s->dispatching++;
        snmp_sess_close(s->sessp); /* calls back TIMED_OUT for what is pending: swallowed */
        s->dispatching--;
        s->sessp = NULL;
    }
    while (s->reqs != NULL) {
        kvl_snmp_req_t *r = s->reqs;
        req_unlink(s, r);
        free(r);
    }
}

/* Re-arms the timer for net-snmp's next retransmission or expiry, if any. */
static void on_timer(uv_timer_t *t);

static void arm_timer(kvl_snmp_session_t *s)
{
    if (s->closing || s->sessp == NULL) {
        return;
    }
    int numfds = 0;
    int block = 1;
    struct timeval tv = {0, 0};
    NETSNMP_LARGE_FD_ZERO(&s->fds);
    snmp_sess_select_info2_flags(s->sessp, &numfds, &s->fds, &tv, &block, NETSNMP_SELECT_NOALARMS);
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
        arm_timer(s);
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
    NETSNMP_LARGE_FD_ZERO(&s->fds);
    NETSNMP_LARGE_FD_SET(s->fd, &s->fds);
    s->dispatching++;
    snmp_sess_read2(s->sessp, &s->fds);
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

/* Converts a response's varbinds into the session's buffer. Returns the count, or a
 * negative code when out of memory. */
static int convert_vbs(kvl_snmp_session_t *s, const netsnmp_pdu *pdu)
{
    size_t n = 0;
    for (const netsnmp_variable_list *v = pdu->variables; v != NULL; v = v->next_variable) {
        n++;
    }
    if (n > s->vbs_cap) {
        kvl_snmp_vb_t *vbs = realloc(s->vbs, n * sizeof(*vbs));
        kvl_snmp_oid_t *ov = realloc(s->oid_values, n * sizeof(*ov));
        if (vbs != NULL) {
            s->vbs = vbs;
        }
        if (ov != NULL) {
            s->oid_values = ov;
        }
        if (vbs == NULL || ov == NULL) {
            return KVL_ENOMEM;
        }
        s->vbs_cap = n;
    }
    size_t i = 0;
    for (const netsnmp_variable_list *v = pdu->variables; v != NULL; v = v->next_variable, i++) {
        kvl_snmp_vb_t *vb = &s->vbs[i];
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
                convert_oid(&s->oid_values[i], v->val.objid, v->val_len / sizeof(oid));
                vb->oid_value = &s->oid_values[i];
            }
            break;
        default:
            break;
        }
    }
    return (int)n;
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
    if (op == NETSNMP_CALLBACK_OP_CONNECT) {
        return 1;
    }
    if (r->in_send) {
        r->fired = true; /* kvl_snmp_send reports it and frees r */
        return 1;
    }
    req_unlink(s, r);
    if (!s->closing) {
        kvl_snmp_result_t res;
        memset(&res, 0, sizeof(res));
        res.tries = r->tries;
        char *errstr = NULL;
        if (op == NETSNMP_CALLBACK_OP_RECEIVED_MESSAGE && pdu != NULL) {
            res.status = KVL_SNMP_RESPONSE;
            res.rtt_ms = (double)(uv_hrtime() - r->sent_ns) / 1e6;
            res.error_status = (int)pdu->errstat;
            res.error_index = (int)pdu->errindex;
            int n = convert_vbs(s, pdu);
            if (n < 0) {
                res.status = KVL_SNMP_SEND_FAILED;
                res.error_text = "out of memory converting a response";
            } else {
                res.vbs = s->vbs;
                res.n_vbs = (size_t)n;
            }
        } else if (op == NETSNMP_CALLBACK_OP_TIMED_OUT) {
            res.status = KVL_SNMP_TIMEOUT;
        } else {
            res.status = KVL_SNMP_SEND_FAILED;
            snmp_sess_error(s->sessp, NULL, NULL, &errstr);
            res.error_text = errstr != NULL ? errstr : "send failed";
        }
        r->cb(s, &res, r->arg);
        free(errstr);
    }
    free(r);
    return 1;
}

kvl_snmp_session_t *kvl_snmp_open(uv_loop_t *loop, const kvl_snmp_target_t *t, char *err,
                                  size_t errlen)
{
    kvl_snmp_init();
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

    netsnmp_session sess;
    snmp_sess_init(&sess);
    sess.peername = peername;
    sess.version = t->version == KVL_SNMP_V1 ? SNMP_VERSION_1 : SNMP_VERSION_2c;
    sess.community = (u_char *)(uintptr_t)t->community; /* copied by snmp_sess_open */
    sess.community_len = strlen(t->community);
    sess.timeout = (long)(t->timeout_ms > 0 ? t->timeout_ms : 1000) * 1000L;
    sess.retries = t->retries >= 0 ? t->retries : 0;

    s->sessp = snmp_sess_open(&sess);
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
    netsnmp_transport *tr = snmp_sess_transport(s->sessp);
    s->fd = tr != NULL ? tr->sock : -1;
    int rc = s->fd >= 0 ? uv_poll_init(loop, &s->poll, s->fd) : UV_EBADF;
    if (rc < 0) {
        snprintf(err, errlen, "cannot watch the socket for %s: %s", s->peer, uv_strerror(rc));
        snmp_sess_close(s->sessp);
        free(s->name);
        free(s);
        return NULL;
    }
    s->poll.data = s;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->open_handles = 2;
    netsnmp_large_fd_set_init(&s->fds, s->fd + 1);
    s->fds_init = true;
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
                  uint32_t max_reps, kvl_snmp_cb cb, void *arg, char *err, size_t errlen)
{
    if (s->closing || s->sessp == NULL) {
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
    r->sent_ns = uv_hrtime();
    r->in_send = true;
    r->next = s->reqs;
    if (s->reqs != NULL) {
        s->reqs->prev = r;
    }
    s->reqs = r;

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
        req_unlink(s, r);
        free(r);
        after_dispatch(s);
        return KVL_EIO;
    }
    after_dispatch(s);
    return 0;
}
