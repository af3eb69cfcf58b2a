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
 * The BER is written here by a few lines (net-snmp is the agent's, and the agent's BER
 * primitives sit in its SNMP library, which links net-snmp): definite lengths, minimal
 * integers. A trap is not confirmed: delivered once the datagram is sent.
 */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "kvl.h"
#include "notify_int.h"

#define OID_MAX 32

typedef struct snmp {
    uv_udp_t udp;
    struct sockaddr_storage to;
    uint64_t started_ms;
    uint32_t request_id;
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
    put_tlv(&vb, 0x04, s ? s : "", len > 255 ? 255 : len); /* DisplayString (SIZE (0..255)) */
    wrap(&vb, 0x30);
    kvl_buf_append(list, vb.data, vb.len);
    kvl_buf_free(&vb);
}

/* The whole trap message for a (in *out, to be freed with kvl_buf_free). Exposed to tests. */
void kvl_notify_snmp_encode(const char *community, uint32_t request_id, uint32_t uptime_cs,
                            const kvl_alert_t *a, kvl_buf_t *out);
void kvl_notify_snmp_encode(const char *community, uint32_t request_id, uint32_t uptime_cs,
                            const kvl_alert_t *a, kvl_buf_t *out)
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
    wrap(&pdu, 0xa7); /* SNMPv2-Trap-PDU */
    kvl_buf_t msg = {0};
    put_int(&msg, 0x02, 1, false); /* version: 1 = v2c */
    put_tlv(&msg, 0x04, community, strlen(community));
    kvl_buf_append(&msg, pdu.data, pdu.len);
    kvl_buf_free(&pdu);
    wrap(&msg, 0x30);
    *out = msg;
}

static int snmp_send(kvl_notify_rcv_t *r, const kvl_notify_msg_t *m, char *why, size_t whylen)
{
    snmp_t *s = r->priv;
    uint32_t uptime = (uint32_t)((uv_now(r->loop) - s->started_ms) / 10);
    for (size_t i = 0; i < m->n_alerts; i++) {
        kvl_buf_t msg = {0};
        kvl_notify_snmp_encode(r->cfg->community, ++s->request_id & 0x7fffffff, uptime,
                               m->alerts[i], &msg);
        if (msg.data == NULL) {
            snprintf(why, whylen, "out of memory");
            return KVL_ENOMEM;
        }
        uv_buf_t b = uv_buf_init((char *)msg.data, (unsigned)msg.len);
        int rc = uv_udp_try_send(&s->udp, &b, 1, (const struct sockaddr *)&s->to);
        kvl_buf_free(&msg);
        if (rc < 0) {
            snprintf(why, whylen, "cannot send the trap: %s", uv_strerror(rc));
            return KVL_EIO;
        }
    }
    return 1;
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
    int rc = uv_udp_init(r->loop, &s->udp);
    if (rc == 0) {
        s->udp.data = r;
        struct sockaddr_storage any = {.ss_family = s->to.ss_family};
        rc = uv_udp_bind(&s->udp, (const struct sockaddr *)&any, 0);
        if (rc != 0) {
            snprintf(why, whylen, "cannot open a UDP socket: %s", uv_strerror(rc));
            /* closed by close() below, which notify.c calls on failure */
        }
    } else {
        free(s);
        r->priv = NULL;
        snprintf(why, whylen, "cannot open a UDP socket: %s", uv_strerror(rc));
    }
    return rc == 0 ? 0 : KVL_EIO;
}

static void on_closed(uv_handle_t *h)
{
    kvl_notify_closed(h->data);
}

static void snmp_close(kvl_notify_rcv_t *r)
{
    snmp_t *s = r->priv;
    if (s != NULL) {
        kvl_notify_closing(r);
        uv_close((uv_handle_t *)&s->udp, on_closed);
    }
}

const kvl_notify_ops_t kvl_notify_snmp_ops = {
    .open = snmp_open,
    .send = snmp_send,
    .close = snmp_close,
};
