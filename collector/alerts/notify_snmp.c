/*
 * notify_snmp.c — the SNMP notifications receiver: one SNMPv2c trap (RFC 3416
 * SNMPv2-Trap-PDU over UDP) per alert to an upstream manager, with the notifications of
 * mibs/KAAVAL-MIB.txt:
 *   kaavalAlertFiring   1.3.6.1.4.1.99999.0.3   an alert starts firing
 *   kaavalAlertResolved 1.3.6.1.4.1.99999.0.4   it ended
 * varbinds: sysUpTime.0 (the collector's notifier's uptime), snmpTrapOID.0, then the
 * kaavalAlert objects (1.3.6.1.4.1.99999.1.3.<n>.0): rule (1), severity (2, INTEGER
 * critical(1) .. info(5)), site (3), device (4), interface (5), summary (6),
 * fingerprint (7); a label the alert lacks is an empty string.
 *
 * With `inform: true` each alert goes as an SNMPv2c InformRequest instead, and counts as
 * delivered only when the manager's Response (same request-id) comes back within `timeout`:
 * the alerts of one notification one after the other; a retry of the notification starts
 * after the last one acknowledged.
 *
 * The BER is written here by a few lines (net-snmp is the agent's, and the agent's BER
 * primitives sit in its SNMP library, which links net-snmp): definite lengths, minimal
 * integers; read back only as far as a Response's request-id. A trap is not confirmed:
 * delivered once the datagram is sent.
 */
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

#define OID_MAX 32

typedef struct snmp {
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
#define ALERT_OBJ_LEN 11 /* 1.3.6.1.4.1.99999.1.3.<n>.0 */

/* Appends tag, length and the n bytes at v. */
static void put_tlv(kvl_buf_t *b, uint8_t tag, const void *v, size_t n)
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
static void put_int(kvl_buf_t *b, uint8_t tag, int64_t v, bool is_unsigned)
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
        put_tlv(b, tag, z, 9 - s);
        return;
    }
    put_tlv(b, tag, c + s, 8 - s);
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
    put_tlv(b, 0x06, c, len);
}

/* Wraps what b holds in a constructed TLV of tag (b is replaced by the result). */
static void wrap(kvl_buf_t *b, uint8_t tag)
{
    kvl_buf_t w = {0};
    put_tlv(&w, tag, b->data, b->len);
    kvl_buf_free(b);
    *b = w;
}

static void varbind_oid(kvl_buf_t *list, const uint32_t *name, size_t n, const uint32_t *v,
                        size_t vn)
{
    kvl_buf_t vb = {0};
    put_oid(&vb, name, n);
    put_oid(&vb, v, vn);
    wrap(&vb, 0x30);
    kvl_buf_append(list, vb.data, vb.len);
    kvl_buf_free(&vb);
}

static void varbind_str(kvl_buf_t *list, uint32_t obj, const char *s)
{
    uint32_t name[ALERT_OBJ_LEN] = {1, 3, 6, 1, 4, 1, 99999, 1, 3, obj, 0};
    kvl_buf_t vb = {0};
    put_oid(&vb, name, ALERT_OBJ_LEN);
    size_t len = s ? strlen(s) : 0;
    if (len > 255) { /* DisplayString (SIZE (0..255)), cut between UTF-8 characters */
        len = 255;
        while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80) {
            len--;
        }
    }
    put_tlv(&vb, 0x04, s ? s : "", len);
    wrap(&vb, 0x30);
    kvl_buf_append(list, vb.data, vb.len);
    kvl_buf_free(&vb);
}

/* The whole message for a (in *out, to be freed with kvl_buf_free): an SNMPv2-Trap-PDU, or
 * an InformRequest-PDU when inform. */
static void encode(const char *community, uint32_t request_id, uint32_t uptime_cs,
                   const kvl_alert_t *a, bool inform, kvl_buf_t *out)
{
    kvl_buf_t list = {0}, pdu = {0};
    kvl_buf_t vb = {0};
    put_oid(&vb, sys_uptime, KVL_ARRAY_SIZE(sys_uptime));
    put_int(&vb, 0x43, uptime_cs, true);
    wrap(&vb, 0x30);
    kvl_buf_append(&list, vb.data, vb.len);
    kvl_buf_free(&vb);
    bool resolved = a->status == KVL_ALERT_RESOLVED;
    varbind_oid(&list, trap_oid, KVL_ARRAY_SIZE(trap_oid),
                resolved ? kaaval_alert_resolved : kaaval_alert_firing,
                KVL_ARRAY_SIZE(kaaval_alert_firing));
    varbind_str(&list, 1, a->rule);
    uint32_t sev_name[ALERT_OBJ_LEN] = {1, 3, 6, 1, 4, 1, 99999, 1, 3, 2, 0};
    put_oid(&vb, sev_name, ALERT_OBJ_LEN);
    put_int(&vb, 0x02, a->severity + 1, false);
    wrap(&vb, 0x30);
    kvl_buf_append(&list, vb.data, vb.len);
    kvl_buf_free(&vb);
    varbind_str(&list, 3, kvl_alert_label(a, "site"));
    varbind_str(&list, 4, kvl_alert_label(a, "device"));
    varbind_str(&list, 5, kvl_alert_label(a, "interface"));
    varbind_str(&list, 6, a->summary);
    char fp[24];
    snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)a->fingerprint);
    varbind_str(&list, 7, fp);
    wrap(&list, 0x30);
    put_int(&pdu, 0x02, (int32_t)request_id, false);
    put_int(&pdu, 0x02, 0, false);
    put_int(&pdu, 0x02, 0, false);
    kvl_buf_append(&pdu, list.data, list.len);
    kvl_buf_free(&list);
    wrap(&pdu, inform ? 0xa6 : 0xa7); /* InformRequest-PDU or SNMPv2-Trap-PDU */
    kvl_buf_t msg = {0};
    put_int(&msg, 0x02, 1, false); /* version: 1 = v2c */
    put_tlv(&msg, 0x04, community, strlen(community));
    kvl_buf_append(&msg, pdu.data, pdu.len);
    kvl_buf_free(&pdu);
    wrap(&msg, 0x30);
    *out = msg;
}

/* Reads one TLV at *p (below end): 0 with its tag and contents, or -1. */
static int ber_get(const uint8_t **p, const uint8_t *end, uint8_t *tag, const uint8_t **v,
                   size_t *len)
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
    if (ber_get(&p, end, &tag, &v, &len) != 0 || tag != 0x30) {
        return -1;
    }
    p = v;
    end = v + len;
    if (ber_get(&p, end, &tag, &v, &len) != 0 || tag != 0x02 || len != 1 || v[0] != 1 ||
        ber_get(&p, end, &tag, &v, &len) != 0 || tag != 0x04 ||
        ber_get(&p, end, &tag, &v, &len) != 0 || tag != 0xa2) {
        return -1;
    }
    p = v;
    end = v + len;
    if (ber_get(&p, end, &tag, &v, &len) != 0 || tag != 0x02 || len == 0 || len > 4) {
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

static int send_one(kvl_notify_rcv_t *r, const kvl_alert_t *a, bool inform, char *why,
                    size_t whylen)
{
    snmp_t *s = r->priv;
    kvl_buf_t msg = {0};
    s->request_id = (s->request_id + 1) & 0x7fffffff;
    encode(r->cfg->community, s->request_id, uptime_cs(r), a, inform, &msg);
    if (msg.data == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    uv_buf_t b = uv_buf_init((char *)msg.data, (unsigned)msg.len);
    int rc = uv_udp_try_send(&s->udp, &b, 1, (const struct sockaddr *)&s->to);
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
    char why[128];
    snprintf(why, sizeof(why), "no Response to the inform within %lld ms",
             (long long)r->cfg->timeout_ms);
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
    if (response_id((const uint8_t *)b->base, (size_t)nread) != (int64_t)s->request_id) {
        return;
    }
    uv_timer_stop(&s->timer);
    s->n_acked++;
    inform_next(r);
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
