/*
 * snmp_v3rx.c — SNMPv3 traps and informs received, through net-snmp (see snmp_v3rx.h).
 *
 * net-snmp reads packets only through a transport, so the session here has a transport of
 * its own: its receive function returns the one datagram kvl_v3rx_process holds (with a
 * copy of its source address as the transport's opaque address data, which net-snmp frees),
 * and its send function hands what net-snmp sends (discovery Reports, Responses) to the
 * receiver's callback with that address. kvl_v3rx_process then calls snmp_sess_read with
 * the transport's descriptor set, and net-snmp runs its whole receive path synchronously:
 * parse, USM, the Report a refused confirmed message asks for, then our post-parse hook
 * (which sees the result of USM) and, for an accepted message, the session callback. The
 * descriptor is never read: it only selects the session (any value >= 0 will do; the
 * receive function does not touch it).
 *
 * The accepted PDU is cloned as SNMPv2c with the community "v3" (net-snmp refuses to encode
 * an empty one) and encoded with snmp_build.
 *
 * Replay (RFC 3414 3.2 step 7b). A trap's sender is the authoritative engine: net-snmp keeps,
 * per sender engine ID, the latest engineBoots and engineTime of an authenticated message
 * (lcd_time.c) and refuses one with lower boots, or with the same boots and a time more
 * than 150 s older than its estimate of the sender's clock (the latest time plus what
 * elapsed here since). That memory is the process's: after an agent restart the first
 * message of each engine would be taken whatever its boots and time, so a captured old trap
 * replayed then would be accepted. So the latest (boots, time) of each listed sender is
 * kept in a file beside the agent's other state (traps.state in the spool folder, the
 * format of common/downstate.h: "<engineTime> <engineBoots> <engine ID>" a line), written
 * when boots change or time advanced KEEP_EVERY_S since the kept value, and handed back to
 * net-snmp at start (set_enginetime, authenticated). A replayed trap older than the kept
 * time by more than the window is then refused across restarts too (the kept time may lag
 * the latest by KEEP_EVERY_S: the window is that much wider after a restart). Such a
 * refusal is logged with its reason; a sender whose boots went back (a replaced device, a
 * reset engine) is refused until its line is removed from the file or it is left out of
 * traps.engine_ids for one start (the file keeps only listed engines). Informs are checked
 * against this agent's own engine (it is their authoritative engine), whose boots net-snmp
 * counts and keeps itself.
 */
#include "snmp_v3rx.h"

#include <net-snmp/net-snmp-config.h> /* first, as net-snmp requires */

#include <net-snmp/net-snmp-includes.h>

#include <net-snmp/library/lcd_time.h>
#include <net-snmp/library/snmp_transport.h>
#include <net-snmp/library/snmpusm.h>
#include <net-snmp/library/snmpv3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

#include "downstate.h"
#include "kvl.h"
#include "snmp.h" /* kvl_snmp_init, kvl_snmp_usm_user_add */

#define V2C_COMMUNITY "v3"
#define KEEP_EVERY_S 30 /* a sender's kept engineTime lags its latest by at most this */
#define ENGINE_ID_MAX 32

struct kvl_v3rx {
    kvl_v3rx_opts_t o;               /* the arrays it points to are the caller's: only during new */
    const kvl_credentials_t **creds; /* a copy of o.creds */
    size_t n_creds;
    void *sessp;
    netsnmp_transport *tr;  /* owned by the session */
    kvl_downstate_t *times; /* the senders' latest boots and time (o.times), or NULL */
    uint8_t own[ENGINE_ID_MAX];
    size_t own_len;
    /* the message being processed */
    const uint8_t *pkt;
    size_t pkt_len;
    bool pkt_taken;
    struct sockaddr_storage from;
    bool sending_response;
    /* its outcome */
    int result;
    int usm_rc; /* what parsing returned (SNMPERR_*) */
    bool discovery;
    char user[64];
    char engine[2 * ENGINE_ID_MAX + 3]; /* the message's security engine ID, "0x..." */
    uint8_t engine_raw[ENGINE_ID_MAX];
    size_t engine_len;
    uint8_t *out;
    size_t cap, *out_len;
    char *why;
    size_t whylen;
};

/* The transport's data: net-snmp frees it with the transport. */
typedef struct box {
    kvl_v3rx_t *v;
} box_t;

static int tr_recv(netsnmp_transport *t, void *buf, int size, void **opaque, int *olen)
{
    kvl_v3rx_t *v = ((box_t *)t->data)->v;
    if (v->pkt == NULL || v->pkt_taken || v->pkt_len > (size_t)size) {
        return -1;
    }
    struct sockaddr_storage *a = malloc(sizeof(*a));
    if (a == NULL) {
        return -1;
    }
    memcpy(a, &v->from, sizeof(*a));
    memcpy(buf, v->pkt, v->pkt_len);
    v->pkt_taken = true;
    *opaque = a;
    *olen = (int)sizeof(*a);
    return (int)v->pkt_len;
}

static int tr_send(netsnmp_transport *t, const void *buf, int size, void **opaque, int *olen)
{
    kvl_v3rx_t *v = ((box_t *)t->data)->v;
    if (size < 0 || opaque == NULL || *opaque == NULL || olen == NULL ||
        *olen < (int)sizeof(struct sockaddr_storage)) {
        return -1;
    }
    v->o.send(v->o.arg, (const struct sockaddr *)*opaque, buf, (size_t)size, v->sending_response);
    return size;
}

static int tr_close(netsnmp_transport *t)
{
    t->sock = -1;
    return 0;
}

static char *tr_fmtaddr(netsnmp_transport *t, const void *data, int len)
{
    KVL_UNUSED(t);
    KVL_UNUSED(data);
    KVL_UNUSED(len);
    return strdup("trap receiver");
}

/* After net-snmp parsed (and USM checked) the message: remembers the outcome. */
static int on_post_parse(netsnmp_session *s, netsnmp_pdu *pdu, int rc)
{
    kvl_v3rx_t *v = s->callback_magic;
    v->usm_rc = rc;
    v->discovery = pdu->securityEngineIDLen == 0;
    size_t n = pdu->securityEngineIDLen < ENGINE_ID_MAX ? pdu->securityEngineIDLen : ENGINE_ID_MAX;
    snprintf(v->engine, sizeof(v->engine), "0x");
    for (size_t i = 0; i < n; i++) {
        snprintf(v->engine + 2 + 2 * i, 3, "%02x", pdu->securityEngineID[i]);
    }
    if (n > 0) {
        memcpy(v->engine_raw, pdu->securityEngineID, n);
    }
    v->engine_len = n;
    snprintf(v->user, sizeof(v->user), "%.*s",
             (int)(pdu->securityNameLen < 63 ? pdu->securityNameLen : 63),
             pdu->securityName != NULL ? pdu->securityName : "");
    return 1;
}

/* The accepted PDU as an SNMPv2c message into v->out: encoded in place (its version and
 * community changed for the time of snmp_build, then put back), since net-snmp 5.9 asserts
 * against cloning a received SNMPv2-Trap with its USM state. */
static void to_v2c(kvl_v3rx_t *v, netsnmp_pdu *pdu)
{
    size_t buf_len = 4096, offset = 0;
    u_char *buf = malloc(buf_len);
    u_char *community = (u_char *)strdup(V2C_COMMUNITY);
    if (buf == NULL || community == NULL) {
        free(buf);
        free(community);
        v->result = KVL_ENOMEM;
        snprintf(v->why, v->whylen, "out of memory");
        return;
    }
    long version = pdu->version;
    u_char *was = pdu->community;
    size_t was_len = pdu->community_len;
    u_long flags = pdu->flags;
    pdu->version = SNMP_VERSION_2c;
    pdu->community = community;
    pdu->community_len = strlen(V2C_COMMUNITY);
    pdu->flags &= ~UCD_MSG_FLAG_FORWARD_ENCODE;
    netsnmp_session s;
    snmp_sess_init(&s);
    s.version = SNMP_VERSION_2c;
    s.community = community;
    s.community_len = strlen(V2C_COMMUNITY);
    int rc = snmp_build(&buf, &buf_len, &offset, &s, pdu);
    pdu->version = version;
    pdu->community = was;
    pdu->community_len = was_len;
    pdu->flags = flags;
    if (rc != 0 || offset > v->cap || offset > buf_len) {
        v->result = KVL_EDECODE;
        snprintf(v->why, v->whylen, "cannot encode the trap again as v2c (%s)",
                 rc != 0 ? snmp_api_errstring(rc) : "too large");
    } else {
        memcpy(v->out, buf + buf_len - offset, offset);
        *v->out_len = offset;
        v->result = KVL_V3RX_DELIVER;
    }
    free(buf);
    free(community);
}

static int on_pdu(int op, netsnmp_session *s, int reqid, netsnmp_pdu *pdu, void *magic)
{
    KVL_UNUSED(reqid);
    kvl_v3rx_t *v = magic;
    if (op != NETSNMP_CALLBACK_OP_RECEIVED_MESSAGE || s->s_snmp_errno != 0) {
        return 1; /* USM's authentication failure: on_post_parse sees it too */
    }
    if (pdu->command != SNMP_MSG_TRAP2 && pdu->command != SNMP_MSG_INFORM) {
        v->result = KVL_EDECODE;
        snprintf(v->why, v->whylen, "a PDU of type %d, not a trap or an inform", pdu->command);
        return 1;
    }
    if (pdu->command == SNMP_MSG_INFORM) {
        netsnmp_pdu *reply = snmp_clone_pdu(pdu);
        if (reply != NULL) {
            reply->command = SNMP_MSG_RESPONSE;
            reply->errstat = 0;
            reply->errindex = 0;
            v->sending_response = true;
            if (snmp_sess_send(v->sessp, reply) == 0) {
                snmp_free_pdu(reply);
            }
            v->sending_response = false;
        }
    }
    to_v2c(v, pdu);
    return 1;
}

static const char *usm_text(int rc)
{
    switch (rc) {
    case SNMPERR_USM_UNKNOWNSECURITYNAME:
        return "unknown user (no SNMPv3 credential set accepted has that name)";
    case SNMPERR_USM_UNKNOWNENGINEID:
        return "unknown engine ID (a trap's sender must be listed in traps.engine_ids)";
    case SNMPERR_USM_AUTHENTICATIONFAILURE:
        return "wrong digest: wrong authentication password or protocol";
    case SNMPERR_USM_DECRYPTIONERROR:
        return "decryption error: wrong privacy password or protocol";
    case SNMPERR_USM_UNSUPPORTEDSECURITYLEVEL:
        return "unsupported security level for that user";
    case SNMPERR_USM_NOTINTIMEWINDOW:
        return "not in the time window";
    default:
        return snmp_api_errstring(rc);
    }
}

/* An engine ID as the file names it: "0x" and its octets in hex. */
static void engine_text(const uint8_t *id, size_t len, char out[2 * ENGINE_ID_MAX + 3])
{
    snprintf(out, 3, "0x");
    for (size_t i = 0; i < len && i < ENGINE_ID_MAX; i++) {
        snprintf(out + 2 + 2 * i, 3, "%02x", id[i]);
    }
}

static bool is_own_engine(const kvl_v3rx_t *v)
{
    return v->engine_len == v->own_len && memcmp(v->engine_raw, v->own, v->own_len) == 0;
}

/* After an accepted message of a sender engine: its latest boots and time (net-snmp's, just
 * updated) kept when they moved on enough. */
static void keep_time(kvl_v3rx_t *v)
{
    u_int boots, est, last;
    if (v->times == NULL || v->engine_len == 0 || is_own_engine(v) ||
        get_enginetime_ex(v->engine_raw, (u_int)v->engine_len, &boots, &est, &last, TRUE) !=
            SNMPERR_SUCCESS) {
        return;
    }
    int kb;
    int64_t kt;
    if (kvl_downstate_get(v->times, v->engine, &kb, &kt) && kb == (int)boots &&
        (int64_t)last >= kt && (int64_t)last < kt + KEEP_EVERY_S) {
        return;
    }
    kvl_downstate_set(v->times, v->engine, (int)boots, (int64_t)last);
}

/* At start: each listed sender's kept boots and time handed to net-snmp; the lines of
 * engines no longer listed dropped. */
static void restore_times(kvl_v3rx_t *v, const kvl_v3rx_opts_t *o)
{
    const char *names[64];
    char text[64][2 * ENGINE_ID_MAX + 3];
    size_t n = 0;
    for (size_t i = 0; i < o->n_sender_ids && n < KVL_ARRAY_SIZE(names); i++) {
        engine_text(o->sender_ids[i], o->sender_id_lens[i], text[n]);
        names[n] = text[n];
        n++;
        int boots;
        int64_t t;
        if (kvl_downstate_get(v->times, text[n - 1], &boots, &t) && boots >= 0 &&
            boots < ENGINEBOOT_MAX && t >= 0 && t <= ENGINETIME_MAX) {
            set_enginetime(o->sender_ids[i], (u_int)o->sender_id_lens[i], (u_int)boots, (u_int)t,
                           TRUE);
        }
    }
    kvl_downstate_retain(v->times, names, n);
}

/* Whether the message's user is one of the credential sets' (then only its engine is
 * unknown). */
static bool known_user(const kvl_v3rx_t *v)
{
    for (size_t i = 0; i < v->n_creds; i++) {
        if (v->creds[i]->user != NULL && strcmp(v->creds[i]->user, v->user) == 0) {
            return true;
        }
    }
    return false;
}

int kvl_v3rx_process(kvl_v3rx_t *v, const uint8_t *p, size_t n, const struct sockaddr *from,
                     uint8_t *out, size_t cap, size_t *out_len, char *why, size_t whylen)
{
    *out_len = 0;
    why[0] = '\0';
    v->pkt = p;
    v->pkt_len = n;
    v->pkt_taken = false;
    memset(&v->from, 0, sizeof(v->from));
    memcpy(&v->from, from,
           from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    v->result = 0;
    v->usm_rc = SNMPERR_GENERR;
    v->discovery = false;
    v->user[0] = '\0';
    v->engine[0] = '\0';
    v->out = out;
    v->cap = cap;
    v->out_len = out_len;
    v->why = why;
    v->whylen = whylen;
    fd_set fds;
    FD_ZERO(&fds);
    FD_SET(v->tr->sock, &fds);
    kvl_snmp_log_quiet(true); /* its complaints ("Authentication failed for ...") are ours */
    snmp_sess_read(v->sessp, &fds);
    kvl_snmp_log_quiet(false);
    v->pkt = NULL;
    if (v->result == KVL_V3RX_DELIVER) {
        keep_time(v);
    }
    if (v->result != 0) {
        return v->result;
    }
    if (v->usm_rc == SNMPERR_USM_UNKNOWNENGINEID && v->discovery) {
        return KVL_V3RX_HANDLED; /* an inform's sender learns our engine ID (RFC 3414 4) */
    }
    if (v->usm_rc == SNMPERR_USM_NOTINTIMEWINDOW && (v->engine_len == 0 || is_own_engine(v))) {
        return KVL_V3RX_HANDLED; /* the Report resynchronises the sender, which resends */
    }
    if (v->usm_rc == SNMPERR_USM_NOTINTIMEWINDOW) {
        u_int boots = 0, est = 0, last = 0;
        get_enginetime_ex(v->engine_raw, (u_int)v->engine_len, &boots, &est, &last, TRUE);
        snprintf(why, whylen,
                 "user '%s' from engine ID %s: not in the time window (engineBoots below %u or "
                 "engineTime over 150 s before %u): replayed or long delayed",
                 v->user, v->engine, boots, est);
        return KVL_V3RX_REFUSED;
    }
    if (v->usm_rc == SNMPERR_USM_UNKNOWNSECURITYNAME && known_user(v)) {
        snprintf(why, whylen,
                 "user '%s' from engine ID %s: that engine is not in traps.engine_ids (a v3 "
                 "trap's sender is the authoritative engine: its users are made for the engine "
                 "IDs listed there)",
                 v->user, v->engine);
        return KVL_V3RX_REFUSED;
    }
    switch (v->usm_rc) {
    case SNMPERR_USM_UNKNOWNSECURITYNAME:
    case SNMPERR_USM_UNKNOWNENGINEID:
    case SNMPERR_USM_AUTHENTICATIONFAILURE:
    case SNMPERR_USM_DECRYPTIONERROR:
    case SNMPERR_USM_UNSUPPORTEDSECURITYLEVEL:
        snprintf(why, whylen, "user '%s': %s", v->user, usm_text(v->usm_rc));
        return KVL_V3RX_REFUSED;
    default:
        snprintf(why, whylen, "%s",
                 v->usm_rc == SNMPERR_SUCCESS ? "no trap or inform in it"
                                              : snmp_api_errstring(v->usm_rc));
        return KVL_EDECODE;
    }
}

/* The users: every credential set for this agent's engine and for each sender's. */
static int add_users(const kvl_v3rx_opts_t *o, char *err, size_t errlen)
{
    for (size_t i = 0; i < o->n_creds; i++) {
        const char *why = kvl_snmp_usm_user_add(o->creds[i], o->engine_id, o->engine_id_len);
        for (size_t k = 0; why == NULL && k < o->n_sender_ids; k++) {
            why = kvl_snmp_usm_user_add(o->creds[i], o->sender_ids[k], o->sender_id_lens[k]);
        }
        if (why != NULL) {
            snprintf(err, errlen, "SNMPv3 credential set '%s' for traps: %s", o->creds[i]->name,
                     why);
            return KVL_EINVAL;
        }
    }
    return 0;
}

int kvl_v3rx_new(const kvl_v3rx_opts_t *o, kvl_v3rx_t **out, char *err, size_t errlen)
{
    *out = NULL;
    kvl_snmp_init();
    kvl_v3rx_t *v = calloc(1, sizeof(*v));
    box_t *box = calloc(1, sizeof(*box));
    netsnmp_transport *t = calloc(1, sizeof(*t));
    if (v == NULL || box == NULL || t == NULL) {
        free(v);
        free(box);
        free(t);
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    v->o = *o;
    v->o.creds = NULL; /* the caller's arrays are not kept */
    v->o.sender_ids = NULL;
    v->o.sender_id_lens = NULL;
    int rc = KVL_ENOMEM;
    v->creds = calloc(o->n_creds > 0 ? o->n_creds : 1, sizeof(*v->creds));
    if (v->creds == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    memcpy(v->creds, o->creds, o->n_creds * sizeof(*v->creds));
    v->n_creds = o->n_creds;
    box->v = v;
    /* This agent is the authoritative engine of the informs it receives. */
    rc = KVL_EINVAL;
    if (set_exact_engineID(o->engine_id, o->engine_id_len) != SNMPERR_SUCCESS) {
        snprintf(err, errlen, "net-snmp refused the engine ID");
        goto fail;
    }
    /* ... and a known one (net-snmp lists the local engine at its start, under the ID it had
     * then). */
    set_enginetime((u_char *)(uintptr_t)o->engine_id, (u_int)o->engine_id_len,
                   snmpv3_local_snmpEngineBoots(), snmpv3_local_snmpEngineTime(), TRUE);
    rc = add_users(o, err, errlen);
    if (rc != 0) {
        goto fail;
    }
    v->own_len = o->engine_id_len < ENGINE_ID_MAX ? o->engine_id_len : ENGINE_ID_MAX;
    memcpy(v->own, o->engine_id, v->own_len);
    v->times = o->times;
    if (v->times != NULL) {
        restore_times(v, o);
    }
    t->domain = netsnmpUDPDomain;
    t->domain_length = (int)netsnmpUDPDomain_len;
    t->sock = 0; /* never read: it selects the session in snmp_sess_read */
    t->flags = NETSNMP_TRANSPORT_FLAG_OPENED;
    t->data = box;
    t->data_length = (int)sizeof(*box);
    t->msgMaxSize = 65507;
    t->f_recv = tr_recv;
    t->f_send = tr_send;
    t->f_close = tr_close;
    t->f_fmtaddr = tr_fmtaddr;
    netsnmp_session s;
    snmp_sess_init(&s);
    s.version = SNMP_VERSION_3;
    s.isAuthoritative = SNMP_SESS_UNKNOWNAUTH; /* informs: authoritative; traps: not */
    s.flags |= SNMP_FLAGS_DONT_PROBE;
    s.callback = on_pdu;
    s.callback_magic = v;
    /* snmp_sess_add_ex owns t from here, also when it fails. */
    v->sessp = snmp_sess_add_ex(&s, t, NULL, NULL, on_post_parse, NULL, NULL, NULL, NULL);
    if (v->sessp == NULL) {
        snprintf(err, errlen, "net-snmp cannot make the SNMPv3 receiving session");
        free(v->creds);
        free(v);
        return KVL_EINVAL;
    }
    v->tr = t;
    *out = v;
    return 0;

fail:
    free(v->creds);
    free(v);
    free(box);
    free(t);
    return rc;
}

void kvl_v3rx_free(kvl_v3rx_t *v)
{
    if (v == NULL) {
        return;
    }
    snmp_sess_close(v->sessp); /* closes and frees the transport (and the box) */
    free(v->creds);
    free(v);
}
