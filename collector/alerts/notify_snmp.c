/*
 * notify_snmp.c — the SNMP notifications receiver: one notification per alert to an
 * upstream manager, as an SNMPv2c trap (RFC 3416 SNMPv2-Trap-PDU over UDP), an SNMPv2c
 * inform (`inform: true`), or an SNMPv3 inform (`version: 3`, USM in notify_snmpv3.c),
 * with the notifications of mibs/KAAVAL-MIB.txt:
 *   kaavalDeviceDown    1.3.6.1.4.1.99999.0.1   a device stopped answering
 *   kaavalDeviceUp      1.3.6.1.4.1.99999.0.2   its resolution
 *   kaavalAlertFiring   1.3.6.1.4.1.99999.0.3   any other alert starts firing
 *   kaavalAlertResolved 1.3.6.1.4.1.99999.0.4   it ended
 * varbinds: sysUpTime.0 (the collector's notifier's uptime), snmpTrapOID.0, then
 *  - Device: kaavalDeviceName.<i>, kaavalDeviceAddress.<i>, kaavalDeviceDownReason.<i>
 *    (INTEGER up(1) for DeviceUp, else timeout(2), authFailure(3), noSuchName(4), other(5)
 *    from the event's `reason`), kaavalAlertSite.0, kaavalAlertFingerprint.0 (a manager
 *    pairs Down and Up by it), where <i> is kaavalDeviceIndex, the `index` field of the
 *    agent's device_down/device_up event the alert carries (alert.h, `fields`). An alert
 *    without a device event or without a valid index (from a series, an older agent) goes
 *    as kaavalAlertFiring/Resolved: an index outside 1..4294967295 is not one the MIB allows.
 *  - Alert: the kaavalAlert objects (1.3.6.1.4.1.99999.1.3.<n>.0): rule (1), severity (2,
 *    INTEGER critical(1) .. info(5)), site (3), device (4), interface (5), summary (6),
 *    fingerprint (7); a label the alert lacks is an empty string.
 *
 * An inform counts as delivered only when the manager's Response (same request-id; for v3
 * also the same msgID and a good HMAC) comes back within `timeout`: the alerts of one
 * notification one after the other; a retry of the notification starts after the last one
 * acknowledged. SNMPv3 first discovers the manager's engine (it is the authoritative one
 * for informs): a probe whose Report carries its engine ID, boots and time, all on the
 * loop; a Report refusing the inform (wrong digest, unknown user, ...) fails the delivery
 * with its name, and the outbox retries it with backoff. The two versions are a small ops
 * table (snmp_version_t): the message around a PDU and the reading of an answer.
 *
 * The BER is written here by a few lines (net-snmp is the agent's, and the agent's BER
 * primitives sit in its SNMP library, which links net-snmp): definite lengths, minimal
 * integers; read back only as far as a Response's request-id. A trap is not confirmed:
 * delivered once the datagram is sent.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "kvl.h"
#include "notify.h"
#include "notify_config.h"
#include "notify_int.h"
#include "notify_snmp.h"

#define OID_MAX 32

struct snmp_version;

typedef struct snmp {
    const struct snmp_version *ver; /* v2c or v3 */
    kvl_usm_t *usm;                 /* v3 */
    unsigned n_again;               /* v3: Reports answered by a resend, for this inform */
    uv_udp_t udp;
    uv_timer_t timer; /* informs: the wait for the Response */
    struct sockaddr_storage to;
    uint64_t started_ms;
    uint32_t request_id;
    /* informs under way */
    bool waiting;
    const kvl_notify_msg_t *m;
    uint64_t seq;      /* the outbox record they belong to */
    size_t n_acked;    /* of its alerts, acknowledged (kept across retries of seq) */
    bool timer_closed; /* open failed before the socket existed: handles already closed */
    char recv_buf[2048];
} snmp_t;

static const uint32_t sys_uptime[] = {1, 3, 6, 1, 2, 1, 1, 3, 0};
static const uint32_t trap_oid[] = {1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0};
static const uint32_t kaaval_alert_firing[] = {1, 3, 6, 1, 4, 1, 99999, 0, 3};
static const uint32_t kaaval_alert_resolved[] = {1, 3, 6, 1, 4, 1, 99999, 0, 4};
static const uint32_t kaaval_device_down[] = {1, 3, 6, 1, 4, 1, 99999, 0, 1};
static const uint32_t kaaval_device_up[] = {1, 3, 6, 1, 4, 1, 99999, 0, 2};
#define DEVICE_OBJ_LEN 12 /* 1.3.6.1.4.1.99999.1.2.1.<n>.<kaavalDeviceIndex> */
#define ALERT_OBJ_LEN 11  /* 1.3.6.1.4.1.99999.1.3.<n>.0 */

/* Appends tag, length and the n bytes at v. */
void kvl_ber_tlv(kvl_buf_t *b, uint8_t tag, const void *v, size_t n)
{
    uint8_t h[6] = {tag};
    size_t hl = 2;
    if (n < 0x80) {
        h[1] = (uint8_t)n;
    } else if (n < 0x100) {
        h[1] = 0x81;
        h[2] = (uint8_t)n;
        hl = 3;
    } else if (n < 0x10000) {
        h[1] = 0x82;
        h[2] = (uint8_t)(n >> 8);
        h[3] = (uint8_t)n;
        hl = 4;
    } else {
        KVL_ASSERT(n < 0x1000000);
        h[1] = 0x83;
        h[2] = (uint8_t)(n >> 16);
        h[3] = (uint8_t)(n >> 8);
        h[4] = (uint8_t)n;
        hl = 5;
    }
    kvl_buf_append(b, h, hl);
    kvl_buf_append(b, v, n);
}

/* Two's complement, minimal (tag INTEGER) or unsigned with a leading zero byte when the
 * top bit is set (the application types). */
void kvl_ber_int(kvl_buf_t *b, uint8_t tag, int64_t v, bool is_unsigned)
{
    uint8_t c[9];
    size_t n = 0;
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        c[n++] = (uint8_t)(u >> (8 * i));
    }
    size_t s = 0;
    while (s < 7 && ((c[s] == 0x00 && !(c[s + 1] & 0x80)) ||
                     (!is_unsigned && c[s] == 0xff && (c[s + 1] & 0x80)))) {
        s++;
    }
    if (is_unsigned && (c[s] & 0x80)) {
        uint8_t z[9] = {0};
        memcpy(z + 1, c + s, 8 - s);
        kvl_ber_tlv(b, tag, z, 9 - s);
        return;
    }
    kvl_ber_tlv(b, tag, c + s, 8 - s);
}

static void put_oid(kvl_buf_t *b, const uint32_t *arcs, size_t n)
{
    uint8_t c[OID_MAX * 5];
    size_t len = 0;
    KVL_ASSERT(n >= 2 && n <= OID_MAX);
    for (size_t i = 1; i < n; i++) {
        uint32_t v = i == 1 ? arcs[0] * 40 + arcs[1] : arcs[i];
        uint8_t t[5];
        size_t k = 0;
        do {
            t[k++] = (uint8_t)(v & 0x7f);
            v >>= 7;
        } while (v);
        while (k > 0) {
            k--;
            c[len++] = (uint8_t)(t[k] | (k ? 0x80 : 0));
        }
    }
    kvl_ber_tlv(b, 0x06, c, len);
}

/* Wraps what b holds in a constructed TLV of tag (b is replaced by the result). */
void kvl_ber_wrap(kvl_buf_t *b, uint8_t tag)
{
    kvl_buf_t w = {0};
    kvl_ber_tlv(&w, tag, b->data, b->len);
    kvl_buf_free(b);
    *b = w;
}

/* Appends the varbind name = value, value already BER (one TLV) in v. */
static void varbind(kvl_buf_t *list, const uint32_t *name, size_t n, const kvl_buf_t *v)
{
    kvl_buf_t vb = {0};
    put_oid(&vb, name, n);
    kvl_buf_append(&vb, v->data, v->len);
    kvl_ber_wrap(&vb, 0x30);
    kvl_buf_append(list, vb.data, vb.len);
    kvl_buf_free(&vb);
}

static void varbind_oid(kvl_buf_t *list, const uint32_t *name, size_t n, const uint32_t *v,
                        size_t vn)
{
    kvl_buf_t val = {0};
    put_oid(&val, v, vn);
    varbind(list, name, n, &val);
    kvl_buf_free(&val);
}

static void varbind_int(kvl_buf_t *list, const uint32_t *name, size_t n, int64_t v)
{
    kvl_buf_t val = {0};
    kvl_ber_int(&val, 0x02, v, false);
    varbind(list, name, n, &val);
    kvl_buf_free(&val);
}

/* A DisplayString (SIZE (0..255)) value, cut between UTF-8 characters. */
static void varbind_text(kvl_buf_t *list, const uint32_t *name, size_t n, const char *s)
{
    size_t len = s ? strlen(s) : 0;
    if (len > 255) {
        len = 255;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80) {
            len--;
        }
    }
    kvl_buf_t val = {0};
    kvl_ber_tlv(&val, 0x04, s ? s : "", len);
    varbind(list, name, n, &val);
    kvl_buf_free(&val);
}

static void varbind_str(kvl_buf_t *list, uint32_t obj, const char *s)
{
    uint32_t name[ALERT_OBJ_LEN] = {1, 3, 6, 1, 4, 1, 99999, 1, 3, obj, 0};
    varbind_text(list, name, ALERT_OBJ_LEN, s);
}

/* kaavalDeviceDownReason of a device_down event's `reason` (agent/snmp/poller.c's names). */
static int device_reason(const char *reason)
{
    static const struct {
        const char *name;
        int v;
    } map[] = {{"timeout", 2}, {"authentication failure", 3}, {"no such name", 4}};
    for (size_t i = 0; reason != NULL && i < KVL_ARRAY_SIZE(map); i++) {
        if (strcmp(reason, map[i].name) == 0) {
            return map[i].v;
        }
    }
    return 5; /* other(5) */
}

int kvl_notify_snmp_device_index(const kvl_alert_t *a, uint32_t *index)
{
    const char *ev = kvl_alert_field(a, "event");
    const char *ix = kvl_alert_field(a, "index");
    if (ev == NULL || (strcmp(ev, "device_down") != 0 && strcmp(ev, "device_up") != 0) ||
        ix == NULL || kvl_alert_label(a, "device") == NULL) {
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(ix, &end, 10);
    if (errno != 0 || end == ix || *end != '\0' || ix[0] == '-' || v == 0 || v > UINT32_MAX) {
        return 0; /* kaavalDeviceIndex is 1..4294967295 */
    }
    *index = (uint32_t)v;
    return 1;
}

/* The varbinds after snmpTrapOID.0 of kaavalDeviceDown/Up for device index i. */
static void device_varbinds(kvl_buf_t *list, const kvl_alert_t *a, uint32_t i, bool resolved)
{
    uint32_t name[DEVICE_OBJ_LEN] = {1, 3, 6, 1, 4, 1, 99999, 1, 2, 1, 2, i};
    varbind_text(list, name, DEVICE_OBJ_LEN, kvl_alert_label(a, "device"));
    name[10] = 3; /* kaavalDeviceAddress */
    varbind_text(list, name, DEVICE_OBJ_LEN, kvl_alert_field(a, "address"));
    name[10] = 5; /* kaavalDeviceDownReason */
    varbind_int(list, name, DEVICE_OBJ_LEN,
                resolved ? 1 : device_reason(kvl_alert_field(a, "reason")));
}

/* The PDU for a (in *out): an SNMPv2-Trap-PDU, or an InformRequest-PDU when inform:
 * kaavalDeviceDown/Up for a device alert that knows its kaavalDeviceIndex, else
 * kaavalAlertFiring/Resolved. */
void kvl_notify_snmp_pdu(uint32_t request_id, uint32_t uptime_cs, const kvl_alert_t *a, bool inform,
                         kvl_buf_t *out)
{
    kvl_buf_t list = {0}, pdu = {0};
    kvl_buf_t val = {0};
    kvl_ber_int(&val, 0x43, uptime_cs, true);
    varbind(&list, sys_uptime, KVL_ARRAY_SIZE(sys_uptime), &val);
    kvl_buf_free(&val);
    bool resolved = a->status == KVL_ALERT_RESOLVED;
    uint32_t index;
    char fp[24];
    snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)a->fingerprint);
    if (kvl_notify_snmp_device_index(a, &index)) {
        varbind_oid(&list, trap_oid, KVL_ARRAY_SIZE(trap_oid),
                    resolved ? kaaval_device_up : kaaval_device_down,
                    KVL_ARRAY_SIZE(kaaval_device_down));
        device_varbinds(&list, a, index, resolved);
        varbind_str(&list, 3, kvl_alert_label(a, "site"));
        varbind_str(&list, 7, fp);
    } else {
        varbind_oid(&list, trap_oid, KVL_ARRAY_SIZE(trap_oid),
                    resolved ? kaaval_alert_resolved : kaaval_alert_firing,
                    KVL_ARRAY_SIZE(kaaval_alert_firing));
        varbind_str(&list, 1, a->rule);
        uint32_t sev_name[ALERT_OBJ_LEN] = {1, 3, 6, 1, 4, 1, 99999, 1, 3, 2, 0};
        varbind_int(&list, sev_name, ALERT_OBJ_LEN, a->severity + 1);
        varbind_str(&list, 3, kvl_alert_label(a, "site"));
        varbind_str(&list, 4, kvl_alert_label(a, "device"));
        varbind_str(&list, 5, kvl_alert_label(a, "interface"));
        varbind_str(&list, 6, a->summary);
        varbind_str(&list, 7, fp);
    }
    kvl_ber_wrap(&list, 0x30);
    kvl_ber_int(&pdu, 0x02, (int32_t)request_id, false);
    kvl_ber_int(&pdu, 0x02, 0, false);
    kvl_ber_int(&pdu, 0x02, 0, false);
    kvl_buf_append(&pdu, list.data, list.len);
    kvl_buf_free(&list);
    kvl_ber_wrap(&pdu, inform ? 0xa6 : 0xa7); /* InformRequest-PDU or SNMPv2-Trap-PDU */
    *out = pdu;
}

/* The v2c message around a PDU (pdu is consumed). */
static void v2c_message(const char *community, kvl_buf_t *pdu, kvl_buf_t *out)
{
    kvl_buf_t msg = {0};
    kvl_ber_int(&msg, 0x02, 1, false); /* version: 1 = v2c */
    kvl_ber_tlv(&msg, 0x04, community, strlen(community));
    kvl_buf_append(&msg, pdu->data, pdu->len);
    kvl_buf_free(pdu);
    kvl_ber_wrap(&msg, 0x30);
    *out = msg;
}

/* Reads one TLV at *p (below end): 0 with its tag and contents, or -1. */
int kvl_ber_get(const uint8_t **p, const uint8_t *end, uint8_t *tag, const uint8_t **v, size_t *len)
{
    const uint8_t *q = *p;
    if (end - q < 2) {
        return -1;
    }
    *tag = *q++;
    size_t n = *q++;
    if (n & 0x80) {
        size_t k = n & 0x7f;
        if (k == 0 || k > 3 || (size_t)(end - q) < k) {
            return -1;
        }
        for (n = 0; k > 0; k--) {
            n = (n << 8) | *q++;
        }
    }
    if ((size_t)(end - q) < n) {
        return -1;
    }
    *v = q;
    *len = n;
    *p = q + n;
    return 0;
}

/* The request-id of a v2c Response-PDU, or -1 when the datagram is not one. */
static int64_t response_id(const uint8_t *p, size_t n)
{
    const uint8_t *end = p + n, *v;
    size_t len;
    uint8_t tag;
    if (kvl_ber_get(&p, end, &tag, &v, &len) != 0 || tag != 0x30) {
        return -1;
    }
    p = v;
    end = v + len;
    if (kvl_ber_get(&p, end, &tag, &v, &len) != 0 || tag != 0x02 || len != 1 || v[0] != 1 ||
        kvl_ber_get(&p, end, &tag, &v, &len) != 0 || tag != 0x04 ||
        kvl_ber_get(&p, end, &tag, &v, &len) != 0 || tag != 0xa2) {
        return -1;
    }
    p = v;
    end = v + len;
    if (kvl_ber_get(&p, end, &tag, &v, &len) != 0 || tag != 0x02 || len == 0 || len > 4) {
        return -1;
    }
    int64_t id = (v[0] & 0x80) ? -1 : 0;
    for (size_t i = 0; i < len; i++) {
        id = (int64_t)((uint64_t)id << 8) | v[i];
    }
    return id;
}

static uint32_t uptime_cs(kvl_notify_rcv_t *r)
{
    snmp_t *s = r->priv;
    return (uint32_t)((uv_now(r->loop) - s->started_ms) / 10);
}

/* --- the two versions: the message around a PDU and the reading of an answer ------------ */

/* What an answer to the datagram sent with id means. */
enum { ANS_IGNORE, ANS_ACK, ANS_AGAIN, ANS_REFUSED };

typedef struct snmp_version {
    /* The message for a (request-id id), or why not. 0 or a negative KVL_E*. */
    int (*message)(kvl_notify_rcv_t *r, const kvl_alert_t *a, bool inform, uint32_t id,
                   kvl_buf_t *out, char *why, size_t whylen);
    /* An answer to id: ANS_* (why set for ANS_REFUSED). */
    int (*answer)(kvl_notify_rcv_t *r, const uint8_t *p, size_t n, uint32_t id, char *why,
                  size_t whylen);
} snmp_version_t;

static int v2c_build(kvl_notify_rcv_t *r, const kvl_alert_t *a, bool inform, uint32_t id,
                     kvl_buf_t *out, char *why, size_t whylen)
{
    kvl_buf_t pdu = {0};
    kvl_notify_snmp_pdu(id, uptime_cs(r), a, inform, &pdu);
    v2c_message(r->cfg->community, &pdu, out);
    if (out->data == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    return 0;
}

static int v2c_answer(kvl_notify_rcv_t *r, const uint8_t *p, size_t n, uint32_t id, char *why,
                      size_t whylen)
{
    KVL_UNUSED(r);
    KVL_UNUSED(why);
    KVL_UNUSED(whylen);
    return response_id(p, n) == (int64_t)id ? ANS_ACK : ANS_IGNORE;
}

/* v3: the engine discovery first (its probe takes the inform's place until the Report
 * comes), then the inform itself. */
static int v3_build(kvl_notify_rcv_t *r, const kvl_alert_t *a, bool inform, uint32_t id,
                    kvl_buf_t *out, char *why, size_t whylen)
{
    snmp_t *s = r->priv;
    KVL_ASSERT(inform);
    if (!kvl_usm_known(s->usm)) {
        return kvl_usm_probe(s->usm, id, out);
    }
    kvl_buf_t pdu = {0};
    kvl_notify_snmp_pdu(id, uptime_cs(r), a, true, &pdu);
    if (pdu.data == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    int rc = kvl_usm_wrap(s->usm, id, &pdu, uv_now(r->loop), out, why, whylen);
    kvl_buf_free(&pdu);
    return rc;
}

static int v3_answer(kvl_notify_rcv_t *r, const uint8_t *p, size_t n, uint32_t id, char *why,
                     size_t whylen)
{
    snmp_t *s = r->priv;
    switch (kvl_usm_read(s->usm, p, n, id, uv_now(r->loop), why, whylen)) {
    case KVL_USM_RESPONSE:
        return ANS_ACK;
    case KVL_USM_DISCOVERED:
    case KVL_USM_RESEND:
        return ANS_AGAIN;
    case KVL_USM_REFUSED:
        return ANS_REFUSED;
    default:
        return ANS_IGNORE;
    }
}

static const snmp_version_t v2c = {.message = v2c_build, .answer = v2c_answer};
static const snmp_version_t v3 = {.message = v3_build, .answer = v3_answer};

/* --- delivery ------------------------------------------------------------------------ */

static int send_one(kvl_notify_rcv_t *r, const kvl_alert_t *a, bool inform, char *why,
                    size_t whylen)
{
    snmp_t *s = r->priv;
    kvl_buf_t msg = {0};
    s->request_id = (s->request_id + 1) & 0x7fffffff;
    int rc = s->ver->message(r, a, inform, s->request_id, &msg, why, whylen);
    if (rc != 0) {
        kvl_buf_free(&msg);
        return rc;
    }
    uv_buf_t b = uv_buf_init((char *)msg.data, (unsigned)msg.len);
    rc = uv_udp_try_send(&s->udp, &b, 1, (const struct sockaddr *)&s->to);
    kvl_buf_free(&msg);
    if (rc < 0) {
        snprintf(why, whylen, "cannot send the %s: %s", inform ? "inform" : "trap",
                 uv_strerror(rc));
        return KVL_EIO;
    }
    return 0;
}

static void on_inform_timeout(uv_timer_t *t)
{
    kvl_notify_rcv_t *r = t->data;
    snmp_t *s = r->priv;
    if (!s->waiting) {
        return;
    }
    s->waiting = false;
    char why[160];
    if (s->usm != NULL && !kvl_usm_known(s->usm)) {
        snprintf(why, sizeof(why), "no Report to the SNMPv3 engine discovery within %lld ms",
                 (long long)r->cfg->timeout_ms);
    } else {
        snprintf(why, sizeof(why), "no Response to the inform within %lld ms",
                 (long long)r->cfg->timeout_ms);
    }
    kvl_notify_rcv_done(r, false, why);
}

/* Sends the next unacknowledged inform of s->m, or ends the delivery when none is left. */
static void inform_next(kvl_notify_rcv_t *r)
{
    snmp_t *s = r->priv;
    if (s->n_acked >= s->m->n_alerts) {
        s->waiting = false;
        s->n_acked = 0;
        s->seq = 0;
        kvl_notify_rcv_done(r, true, NULL);
        return;
    }
    char why[256];
    if (send_one(r, s->m->alerts[s->n_acked], true, why, sizeof(why)) != 0) {
        s->waiting = false;
        kvl_notify_rcv_done(r, false, why);
        return;
    }
    s->waiting = true;
    uv_timer_start(&s->timer, on_inform_timeout, (uint64_t)r->cfg->timeout_ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    KVL_UNUSED(hint);
    kvl_notify_rcv_t *r = h->data;
    snmp_t *s = r->priv;
    *b = uv_buf_init(s->recv_buf, sizeof(s->recv_buf));
}

/* Resends at most this many times per inform on a discovery or a time-window Report. */
#define AGAIN_MAX 3

static void on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *b, const struct sockaddr *from,
                    unsigned flags)
{
    KVL_UNUSED(flags);
    KVL_UNUSED(from); /* the socket is ours alone; a stray datagram must match the id too */
    kvl_notify_rcv_t *r = u->data;
    snmp_t *s = r->priv;
    if (nread <= 0 || !s->waiting || r->closing) {
        return;
    }
    char why[256] = "";
    int ans =
        s->ver->answer(r, (const uint8_t *)b->base, (size_t)nread, s->request_id, why, sizeof(why));
    if (ans == ANS_IGNORE) {
        return;
    }
    uv_timer_stop(&s->timer);
    if (ans == ANS_ACK) {
        s->n_again = 0;
        s->n_acked++;
        inform_next(r);
    } else if (ans == ANS_AGAIN && ++s->n_again <= AGAIN_MAX) {
        inform_next(r); /* the same inform, now with the manager's engine and time */
    } else {
        s->waiting = false;
        s->n_again = 0;
        if (ans == ANS_AGAIN) {
            snprintf(why, sizeof(why), "the manager keeps answering with Reports (%d in a row)",
                     AGAIN_MAX + 1);
        }
        kvl_notify_rcv_done(r, false, why);
    }
}

static int snmp_send(kvl_notify_rcv_t *r, const kvl_notify_msg_t *m, char *why, size_t whylen)
{
    snmp_t *s = r->priv;
    if (r->cfg->inform) {
        if (s->seq != r->busy_seq) { /* a new notification, not a retry */
            s->seq = r->busy_seq;
            s->n_acked = 0;
        }
        s->m = m;
        s->n_again = 0;
        inform_next(r);
        return 0;
    }
    for (size_t i = 0; i < m->n_alerts; i++) {
        int rc = send_one(r, m->alerts[i], false, why, whylen);
        if (rc != 0) {
            return rc;
        }
    }
    return 1;
}

static void on_closed(uv_handle_t *h)
{
    kvl_notify_closed(h->data);
}

static int snmp_open(kvl_notify_rcv_t *r, char *why, size_t whylen)
{
    char host[256], port_s[8];
    uint16_t port;
    if (kvl_parse_hostport(r->cfg->address, host, sizeof(host), &port) != 0) {
        snprintf(why, whylen, "bad address %s", r->cfg->address);
        return KVL_EINVAL;
    }
    snprintf(port_s, sizeof(port_s), "%u", port);
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai = NULL;
    int grc = getaddrinfo(host, port_s, &hints, &ai);
    if (grc != 0 || ai == NULL) {
        snprintf(why, whylen, "cannot resolve %s: %s", host, gai_strerror(grc));
        return KVL_EINVAL;
    }
    snmp_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        freeaddrinfo(ai);
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    memcpy(&s->to, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    s->ver = &v2c;
    if (r->cfg->version == 3) {
        int urc = kvl_usm_new(r->cfg, &s->usm, why, whylen);
        if (urc != 0) {
            free(s);
            return urc;
        }
        s->ver = &v3;
    }
    r->priv = s;
    s->started_ms = uv_now(r->loop);
    uv_timer_init(r->loop, &s->timer);
    s->timer.data = r;
    int rc = uv_udp_init(r->loop, &s->udp);
    if (rc == 0) {
        s->udp.data = r;
        struct sockaddr_storage any = {.ss_family = s->to.ss_family};
        rc = uv_udp_bind(&s->udp, (const struct sockaddr *)&any, 0);
        if (rc == 0 && r->cfg->inform) {
            rc = uv_udp_recv_start(&s->udp, on_alloc, on_recv);
        }
        if (rc != 0) {
            snprintf(why, whylen, "cannot open a UDP socket: %s", uv_strerror(rc));
            /* closed by close() below, which notify.c calls on failure */
        }
    } else {
        snprintf(why, whylen, "cannot open a UDP socket: %s", uv_strerror(rc));
        kvl_notify_closing(r);
        uv_close((uv_handle_t *)&s->timer, on_closed);
        s->timer_closed = true; /* and the socket was never opened: close() skips both */
    }
    return rc == 0 ? 0 : KVL_EIO;
}

static void snmp_close(kvl_notify_rcv_t *r)
{
    snmp_t *s = r->priv;
    if (s != NULL) {
        kvl_usm_free(s->usm); /* no callback reads it once its handles are closing */
        s->usm = NULL;
    }
    if (s != NULL && !s->timer_closed) {
        kvl_notify_closing(r);
        uv_close((uv_handle_t *)&s->udp, on_closed);
        kvl_notify_closing(r);
        uv_close((uv_handle_t *)&s->timer, on_closed);
    }
}

const kvl_notify_ops_t kvl_notify_snmp_ops = {
    .open = snmp_open,
    .send = snmp_send,
    .close = snmp_close,
};
