/*
 * trap_rx.c — the agent's trap receiver (see trap_rx.h): a uv_udp socket, the checks each
 * datagram passes (known source, rate, decoding, community or USM), the inform's answer and
 * the event each accepted trap becomes.
 *
 * One datagram is handled at a time in one buffer owned by the receiver (libuv reads one
 * datagram per callback unless asked for recvmmsg, which is not). SNMPv3 messages go to the
 * SNMP room (snmp_v3rx.h), which hands an accepted one back re-encoded as a v2c message, so
 * every trap reaches the event through the one decoder of trap_pdu.c.
 */
#include "trap_rx.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "downstate.h"
#include "kvl.h"
#include "log.h"
#include "snmp_mib.h"
#include "snmp_v3rx.h"
#include "timeutil.h"
#include "trap_pdu.h"

#define MOD "trap"
#define MAX_FIELDS 40     /* an event's fields: the few of every trap, then varbinds */
#define MAX_VALUE_LEN 256 /* a varbind's value as a field, at most */
#define TEXT_LEN 512
#define LOG_EVERY_MS 10000 /* complaints a sender can repeat: per reason, per 10 s, */
#define LOG_BURST 5        /* at most 5 lines, then one saying how many were left out */

/* Per device: datagrams taken in the current second. */
typedef struct rate {
    int64_t second;
    uint32_t n;
} rate_t;

struct kvl_trap_rx {
    uv_loop_t *loop;
    kvl_trap_rx_opts_t o;
    uv_udp_t udp;
    bool bound;
    bool closing;
    rate_t *rates; /* one per configured device */
    size_t n_devs;
    kvl_snmp_mib_names_t *names;
    kvl_v3rx_t *v3;
    kvl_downstate_t *v3times; /* the v3 senders' latest boots and time (state_path) */
    kvl_trap_rx_stats_t st;
    kvl_log_limit_t lim_unknown, lim_rate, lim_decode, lim_community, lim_v3, lim_io;
    uint8_t buf[KVL_TRAP_MAX_PACKET + 1]; /* one byte more: a larger datagram is cut */
    uint8_t v2[KVL_TRAP_MAX_PACKET];      /* a v3 message re-encoded as v2c */
};

/* --- small helpers --------------------------------------------------------------------------- */

static void addr_text(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        uv_ip4_name((const struct sockaddr_in *)(const void *)sa, host, sizeof(host));
    } else if (sa->sa_family == AF_INET6) {
        uv_ip6_name((const struct sockaddr_in6 *)(const void *)sa, host, sizeof(host));
    }
    snprintf(buf, len, "%s", host);
}

static const char *version_name(int version)
{
    return version == KVL_TRAP_V1 ? "v1" : (version == KVL_TRAP_V2C ? "v2c" : "v3");
}

/* Whether community (len bytes) is cred's (a v1/v2c set). Compared without an early exit. */
static bool community_is(const char *want, const char *got, size_t len)
{
    if (want == NULL || strlen(want) != len) {
        return false;
    }
    unsigned char diff = 0;
    for (size_t i = 0; i < len; i++) {
        diff |= (unsigned char)(want[i] ^ got[i]);
    }
    return diff == 0;
}

static bool community_ok(const kvl_trap_rx_t *rx, const kvl_device_cfg_t *dev, const kvl_trap_t *t)
{
    if (dev->version != KVL_SNMP_V3 &&
        community_is(dev->community, t->community, t->community_len)) {
        return true;
    }
    for (size_t i = 0; i < rx->o.cfg->n_cred_names; i++) {
        const kvl_credentials_t *c = rx->o.cfg->creds[i];
        if (c != NULL && c->version != KVL_SNMP_V3 &&
            community_is(c->community, t->community, t->community_len)) {
            return true;
        }
    }
    return false;
}

/* Whether device i may send one more datagram this second. */
static bool rate_ok(kvl_trap_rx_t *rx, size_t i)
{
    rate_t *r = &rx->rates[i];
    int64_t s = (int64_t)(uv_now(rx->loop) / 1000);
    if (r->second != s) {
        r->second = s;
        r->n = 0;
    }
    if (r->n >= (uint64_t)rx->o.cfg->max_per_second) {
        return false;
    }
    r->n++;
    return true;
}

/* --- the event ------------------------------------------------------------------------------- */

/* Fields and their values (owned strings freed by fields_free). */
typedef struct fields {
    kvl_label_t f[MAX_FIELDS];
    char *own[MAX_FIELDS * 2];
    size_t n, n_own;
} fields_t;

static char *own(fields_t *fs, char *s)
{
    if (s != NULL && fs->n_own < KVL_ARRAY_SIZE(fs->own)) {
        fs->own[fs->n_own++] = s;
        return s;
    }
    free(s);
    return NULL;
}

static void field(fields_t *fs, const char *key, const char *value)
{
    if (key != NULL && value != NULL && fs->n < MAX_FIELDS) {
        fs->f[fs->n++] = (kvl_label_t){key, value};
    }
}

static void fields_free(fields_t *fs)
{
    for (size_t i = 0; i < fs->n_own; i++) {
        free(fs->own[i]);
    }
}

static char *dup_printf(const char *fmt, ...) KVL_PRINTF(1, 2);

static char *dup_printf(const char *fmt, ...)
{
    char buf[TEXT_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return strdup(buf);
}

/* A varbind's value as a field's value: kvl_trap_vb_text cut to MAX_VALUE_LEN bytes. */
static char *vb_value(const kvl_trap_vb_t *vb)
{
    char *s = kvl_trap_vb_text(vb);
    if (s != NULL && strlen(s) > MAX_VALUE_LEN) {
        size_t cut = MAX_VALUE_LEN;
        while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80) {
            cut--; /* not inside a UTF-8 sequence */
        }
        s[cut] = '\0';
    }
    return s;
}

/* The name a varbind's field takes: the object's MIB name (with the instance after it when
 * the trap holds that object twice), else the numeric OID. */
static char *vb_key(const kvl_trap_rx_t *rx, const kvl_trap_t *t, size_t i)
{
    const kvl_trap_vb_t *vb = &t->vbs[i];
    char oid[KVL_SNMP_MAX_OID_LEN * 11 + 1];
    size_t plen = 0;
    const char *name = kvl_snmp_mib_object(rx->names, &vb->oid, &plen);
    if (name == NULL) {
        return strdup(kvl_snmp_oid_format(&vb->oid, oid, sizeof(oid)));
    }
    bool twice = false;
    for (size_t k = 0; k < t->n_vbs && !twice; k++) {
        size_t p2 = 0;
        const char *n2 = k != i ? kvl_snmp_mib_object(rx->names, &t->vbs[k].oid, &p2) : NULL;
        twice = n2 != NULL && n2 == name;
    }
    if (!twice || plen == vb->oid.len) {
        return strdup(name);
    }
    kvl_snmp_oid_t inst = {.len = vb->oid.len - plen};
    memcpy(inst.sub, vb->oid.sub + plen, inst.len * sizeof(inst.sub[0]));
    return dup_printf("%s%s", name, kvl_snmp_oid_format(&inst, oid, sizeof(oid)));
}

/* ifAdminStatus / ifOperStatus values (RFC 2863). */
static const char *if_status_name(int64_t v)
{
    static const char *const names[] = {"?",       "up",      "down",       "testing",
                                        "unknown", "dormant", "notPresent", "lowerLayerDown"};
    return v >= 1 && v <= 7 ? names[v] : "?";
}

/* The value of ifTable column col (7 admin, 8 oper) for ifindex in t's varbinds, or NULL. */
static const char *if_status(const kvl_trap_t *t, uint32_t col, uint32_t ifindex)
{
    static const uint32_t if_entry[] = {1, 3, 6, 1, 2, 1, 2, 2, 1};
    for (size_t i = 0; i < t->n_vbs; i++) {
        const kvl_trap_vb_t *vb = &t->vbs[i];
        if (vb->oid.len == KVL_ARRAY_SIZE(if_entry) + 2 &&
            memcmp(vb->oid.sub, if_entry, sizeof(if_entry)) == 0 &&
            vb->oid.sub[KVL_ARRAY_SIZE(if_entry)] == col &&
            vb->oid.sub[KVL_ARRAY_SIZE(if_entry) + 1] == ifindex &&
            vb->type == KVL_SNMP_T_INTEGER) {
            return if_status_name(vb->integer);
        }
    }
    return NULL;
}

/* A link trap's fields, text and the poll at once. */
static void link_event(kvl_trap_rx_t *rx, size_t dev, const kvl_trap_t *t, const char *ver,
                       const char *name, fields_t *fs, char *text, size_t len, const char *from)
{
    uint32_t ifindex = 0;
    if (kvl_trap_if_index(t, &ifindex) != 0) {
        if (snprintf(text, len, "%s from %s (%s), naming no interface", name, from, ver) >=
            (int)len) {
            KVL_LOG_DEBUG(MOD, NULL, "event text cut at %zu bytes", len);
        }
        kvl_poller_poll_now(rx->o.poller, dev);
        return;
    }
    char ifname[256];
    kvl_poller_if_name(rx->o.poller, dev, ifindex, ifname, sizeof(ifname));
    const char *admin = if_status(t, 7, ifindex), *oper = if_status(t, 8, ifindex);
    field(fs, "interface", own(fs, strdup(ifname)));
    field(fs, "if_index", own(fs, dup_printf("%" PRIu32, ifindex)));
    field(fs, "admin_status", admin);
    field(fs, "oper_status", oper);
    if (snprintf(text, len, "%s: interface %s (ifIndex %" PRIu32 "%s%s%s%s) from %s (%s)", name,
                 ifname, ifindex, admin != NULL ? ", admin " : "", admin != NULL ? admin : "",
                 oper != NULL ? ", oper " : "", oper != NULL ? oper : "", from, ver) >= (int)len) {
        KVL_LOG_DEBUG(MOD, NULL, "event text cut at %zu bytes", len);
    }
    bool polled = kvl_poller_poll_now(rx->o.poller, dev);
    KVL_LOG_DEBUG(MOD, kvl_poller_device(rx->o.poller, dev)->name, "%s %s: %s", name, ifname,
                  polled ? "polled at once" : "poll deferred (one runs or just ran)");
}

/* Any other trap: its varbinds as fields, the first few in the text. */
static void other_event(kvl_trap_rx_t *rx, const kvl_trap_t *t, const char *ver, const char *name,
                        fields_t *fs, char *text, size_t len, const char *from)
{
    size_t used = (size_t)snprintf(text, len, "%s from %s (%s)", name, from, ver);
    for (size_t i = 0; i < t->n_vbs; i++) {
        char *key = own(fs, vb_key(rx, t, i));
        char *value = own(fs, vb_value(&t->vbs[i]));
        field(fs, key, value);
        if (key != NULL && value != NULL && used < len) {
            int w = snprintf(text + used, len - used, "%s%s=%s", i == 0 ? ": " : ", ", key, value);
            used += w > 0 ? (size_t)w : 0;
        }
    }
}

/* The event of trap t (decoded as v1 or v2c; `version` is how it arrived). */
static void emit(kvl_trap_rx_t *rx, size_t dev, const kvl_trap_t *t, int version, const char *from)
{
    const char *ver = version_name(version);
    const kvl_device_cfg_t *d = kvl_poller_device(rx->o.poller, dev);
    kvl_trap_kind_t kind = kvl_trap_kind(t);
    char oid[KVL_SNMP_MAX_OID_LEN * 11 + 1];
    kvl_snmp_oid_format(&t->trap_oid, oid, sizeof(oid));
    const char *name = kind != KVL_TRAP_OTHER ? kvl_trap_kind_name(kind)
                                              : kvl_snmp_mib_notification(rx->names, &t->trap_oid);
    if (name == NULL) {
        name = oid;
    }
    fields_t fs = {.n = 0};
    field(&fs, "source", from);
    field(&fs, "version", ver);
    field(&fs, "trap_oid", oid);
    char text[TEXT_LEN];
    kvl_severity_t sev = KVL_SEV_INFO;
    switch (kind) {
    case KVL_TRAP_LINK_DOWN:
    case KVL_TRAP_LINK_UP:
        sev = kind == KVL_TRAP_LINK_DOWN ? KVL_SEV_WARNING : KVL_SEV_INFO;
        link_event(rx, dev, t, ver, name, &fs, text, sizeof(text), from);
        break;
    case KVL_TRAP_AUTH_FAILURE:
    case KVL_TRAP_EGP_NEIGHBOR_LOSS:
        sev = KVL_SEV_WARNING;
        other_event(rx, t, ver, name, &fs, text, sizeof(text), from);
        break;
    default:
        other_event(rx, t, ver, name, &fs, text, sizeof(text), from);
        break;
    }
    kvl_event_t ev = {
        .time_ms = kvl_now_ms(),
        .device = d->name,
        .kind = name,
        .severity = sev,
        .text = text,
        .fields = fs.f,
        .n_fields = fs.n,
    };
    kvl_batcher_event(rx->o.batcher, &ev);
    KVL_LOG_DEBUG(MOD, d->name, "%s", text);
    fields_free(&fs);
}

/* --- a datagram ------------------------------------------------------------------------------ */

static void send_to(kvl_trap_rx_t *rx, const struct sockaddr *to, const uint8_t *p, size_t n)
{
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)p, (unsigned)n);
    int rc = uv_udp_try_send(&rx->udp, &b, 1, to);
    if (rc < 0) {
        char a[INET6_ADDRSTRLEN];
        addr_text(to, a, sizeof(a));
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &rx->lim_io, MOD, a, "cannot answer: %s",
                        uv_strerror(rc));
    } else {
        rx->st.informs_answered++;
    }
}

static void on_v3_send(void *arg, const struct sockaddr *to, const uint8_t *p, size_t n,
                       bool response)
{
    kvl_trap_rx_t *rx = arg;
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)p, (unsigned)n);
    int rc = uv_udp_try_send(&rx->udp, &b, 1, to);
    if (rc >= 0 && response) {
        rx->st.informs_answered++;
    }
}

/* A v3 message: into a v2c one (rx->v2) when accepted. Returns its length, 0 when there is
 * nothing to deliver. */
static size_t handle_v3(kvl_trap_rx_t *rx, const kvl_device_cfg_t *d, const uint8_t *p, size_t n,
                        const struct sockaddr *from, const char *a)
{
    if (rx->v3 == NULL) {
        rx->st.v3_auth_failures++;
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &rx->lim_v3, MOD, d->name,
                        "SNMPv3 message from %s refused: no SNMPv3 credential set is accepted "
                        "(traps.credentials)",
                        a);
        return 0;
    }
    char why[256];
    size_t len = 0;
    int rc = kvl_v3rx_process(rx->v3, p, n, from, rx->v2, sizeof(rx->v2), &len, why, sizeof(why));
    if (rc == KVL_V3RX_DELIVER) {
        return len;
    }
    if (rc == KVL_V3RX_REFUSED) {
        rx->st.v3_auth_failures++;
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &rx->lim_v3, MOD, d->name,
                        "SNMPv3 message from %s refused: %s", a, why);
    } else if (rc < 0) {
        rx->st.decode_errors++;
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &rx->lim_decode, MOD, d->name,
                        "SNMPv3 message from %s not understood: %s", a, why);
    }
    return 0; /* KVL_V3RX_HANDLED: a discovery answered */
}

static void handle(kvl_trap_rx_t *rx, const uint8_t *p, size_t n, const struct sockaddr *from)
{
    rx->st.received++;
    char a[INET6_ADDRSTRLEN];
    addr_text(from, a, sizeof(a));
    long dev = kvl_poller_device_by_addr(rx->o.poller, from);
    if (dev < 0) {
        rx->st.unknown_source++;
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &rx->lim_unknown, MOD, a,
                        "trap from an address that is no configured device: dropped");
        return;
    }
    const kvl_device_cfg_t *d = kvl_poller_device(rx->o.poller, (size_t)dev);
    if (!rate_ok(rx, (size_t)dev)) {
        rx->st.rate_limited++;
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &rx->lim_rate, MOD, d->name,
                        "more than %" PRId64 " traps a second from %s: the rest dropped",
                        rx->o.cfg->max_per_second, a);
        return;
    }
    kvl_trap_t t = {0};
    char why[160];
    int rc = kvl_trap_decode(p, n, &t, why, sizeof(why));
    int version = t.version;
    if (rc == KVL_TRAP_V3) {
        kvl_trap_clear(&t);
        size_t len = handle_v3(rx, d, p, n, from, a);
        if (len == 0) {
            return;
        }
        rc = kvl_trap_decode(rx->v2, len, &t, why, sizeof(why));
        version = KVL_TRAP_V3; /* decoded in its v2c form */
    }
    if (rc != 0) {
        rx->st.decode_errors++;
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &rx->lim_decode, MOD, d->name,
                        "undecodable trap from %s: %s", a,
                        rc == KVL_ENOMEM ? "out of memory" : why);
        kvl_trap_clear(&t);
        return;
    }
    if (version != KVL_TRAP_V3) {
        if (!community_ok(rx, d, &t)) {
            rx->st.bad_community++;
            KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &rx->lim_community, MOD, d->name,
                            "%s trap from %s with a wrong community: dropped",
                            version_name(t.version), a);
            kvl_trap_clear(&t);
            return;
        }
        if (t.pdu == KVL_TRAP_PDU_INFORM) {
            size_t len = 0; /* rx->v2 is free: this is no v3 message */
            if (kvl_trap_inform_response(&t, rx->v2, sizeof(rx->v2), &len) == 0) {
                send_to(rx, from, rx->v2, len);
            }
        }
    }
    if (version == KVL_TRAP_V1) {
        rx->st.v1++;
    } else if (version == KVL_TRAP_V2C) {
        rx->st.v2c++;
    } else {
        rx->st.v3++;
    }
    emit(rx, (size_t)dev, &t, version, a);
    kvl_trap_clear(&t);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    KVL_UNUSED(suggested);
    kvl_trap_rx_t *rx = h->data;
    *buf = uv_buf_init((char *)rx->buf, sizeof(rx->buf));
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    KVL_UNUSED(buf);
    kvl_trap_rx_t *rx = h->data;
    if (nread < 0) {
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &rx->lim_io, MOD, NULL, "receiving: %s",
                        uv_strerror((int)nread));
        return;
    }
    if (addr == NULL || rx->closing) {
        return; /* nothing more to read now */
    }
    if ((flags & UV_UDP_PARTIAL) != 0 || (size_t)nread > KVL_TRAP_MAX_PACKET) {
        rx->st.received++;
        rx->st.decode_errors++;
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &rx->lim_decode, MOD, NULL,
                        "a datagram larger than %u bytes: dropped", KVL_TRAP_MAX_PACKET);
        return;
    }
    handle(rx, rx->buf, (size_t)nread, addr);
}

/* --- life cycle ------------------------------------------------------------------------------ */

/* The v3 users: the v3 credential sets the devices use, then those traps.credentials names;
 * each once. Returns 0, or a negative code with err set. */
static int start_v3(kvl_trap_rx_t *rx, char *err, size_t errlen)
{
    const kvl_snmp_cfg_t *s = rx->o.snmp;
    const kvl_trap_cfg_t *c = rx->o.cfg;
    const kvl_credentials_t **creds = calloc(s->n_devices + c->n_cred_names + 1, sizeof(*creds));
    if (creds == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->n_devices + c->n_cred_names; i++) {
        const kvl_credentials_t *cr =
            i < s->n_devices ? s->devices[i].credentials : c->creds[i - s->n_devices];
        bool seen = false;
        for (size_t k = 0; k < n && !seen; k++) {
            seen = creds[k] == cr;
        }
        if (cr != NULL && cr->version == KVL_SNMP_V3 && !seen) {
            creds[n++] = cr;
        }
    }
    int rc = 0;
    if (n > 0) {
        kvl_v3rx_opts_t vo = {.creds = creds,
                              .n_creds = n,
                              .engine_id = c->engine_id.id,
                              .engine_id_len = c->engine_id.len,
                              .send = on_v3_send,
                              .arg = rx};
        const uint8_t *ids[KVL_TRAP_MAX_ENGINE_IDS];
        size_t lens[KVL_TRAP_MAX_ENGINE_IDS];
        for (size_t i = 0; i < c->n_engine_ids; i++) {
            ids[i] = c->engine_ids[i].id;
            lens[i] = c->engine_ids[i].len;
        }
        vo.sender_ids = ids;
        vo.sender_id_lens = lens;
        vo.n_sender_ids = c->n_engine_ids;
        if (rx->o.state_path != NULL && c->n_engine_ids > 0) {
            rc = kvl_downstate_new(rx->loop, rx->o.state_path, "SNMPv3 trap senders' engine times",
                                   &rx->v3times, err, errlen);
        }
        vo.times = rx->v3times;
        if (rc == 0) {
            rc = kvl_v3rx_new(&vo, &rx->v3, err, errlen);
        }
    }
    free(creds);
    return rc;
}

static int bind_socket(kvl_trap_rx_t *rx)
{
    const kvl_trap_cfg_t *c = rx->o.cfg;
    struct sockaddr_storage ss;
    int rc = strchr(c->host, ':') != NULL
                 ? uv_ip6_addr(c->host, c->port, (struct sockaddr_in6 *)(void *)&ss)
                 : uv_ip4_addr(c->host, c->port, (struct sockaddr_in *)(void *)&ss);
    if (rc == 0) {
        rc = uv_udp_bind(&rx->udp, (const struct sockaddr *)&ss, 0);
    }
    if (rc == 0) {
        rc = uv_udp_recv_start(&rx->udp, on_alloc, on_recv);
    }
    if (rc != 0) {
        KVL_LOG_WARN(MOD, NULL,
                     "cannot receive traps on udp %s:%u: %s%s; the agent runs on without traps",
                     c->host, c->port, uv_strerror(rc),
                     c->port < 1024 && rc == UV_EACCES
                         ? " (a port below 1024 needs CAP_NET_BIND_SERVICE: "
                           "setcap cap_net_bind_service+ep kaaval-agent, or AmbientCapabilities= "
                           "in its systemd unit)"
                         : "");
        return rc;
    }
    KVL_LOG_INFO(MOD, NULL,
                 "receiving traps and informs on udp %s:%u (%zu MIB notification "
                 "names%s)",
                 c->host, c->port, kvl_snmp_mib_names_count(rx->names),
                 rx->v3 != NULL ? ", SNMPv3 users ready" : "");
    return 0;
}

int kvl_trap_rx_new(uv_loop_t *loop, const kvl_trap_rx_opts_t *opts, kvl_trap_rx_t **out, char *err,
                    size_t errlen)
{
    *out = NULL;
    kvl_trap_rx_t *rx = calloc(1, sizeof(*rx));
    if (rx == NULL) {
        snprintf(err, errlen, "out of memory creating the trap receiver");
        return KVL_ENOMEM;
    }
    rx->loop = loop;
    rx->o = *opts;
    rx->n_devs = opts->snmp->n_devices;
    rx->rates = calloc(rx->n_devs > 0 ? rx->n_devs : 1, sizeof(*rx->rates));
    kvl_log_limit_t lim = KVL_LOG_LIMIT_BURST_INIT(LOG_EVERY_MS, LOG_BURST);
    rx->lim_unknown = rx->lim_rate = rx->lim_decode = rx->lim_community = rx->lim_v3 = rx->lim_io =
        lim;
    if (rx->rates == NULL) {
        free(rx);
        snprintf(err, errlen, "out of memory creating the trap receiver");
        return KVL_ENOMEM;
    }
    uv_udp_init(loop, &rx->udp);
    rx->udp.data = rx;
    *out = rx;
    if (!opts->cfg->enabled) {
        KVL_LOG_INFO(MOD, NULL, "trap receiver off (traps.listen: off)");
        return 0;
    }
    const char *const *dirs = (const char *const *)opts->snmp->mib_path;
    int rc = kvl_snmp_mib_names_load(dirs, opts->snmp->n_mib_path, &rx->names, err, errlen);
    if (rc == 0) {
        rc = start_v3(rx, err, errlen);
    }
    if (rc != 0) {
        kvl_trap_rx_free(rx);
        *out = NULL;
        return rc;
    }
    rx->bound = bind_socket(rx) == 0;
    return 0;
}

bool kvl_trap_rx_listening(const kvl_trap_rx_t *rx)
{
    return rx != NULL && rx->bound;
}

const kvl_trap_rx_stats_t *kvl_trap_rx_counters(const kvl_trap_rx_t *rx)
{
    return &rx->st;
}

static void on_closed(uv_handle_t *h)
{
    kvl_trap_rx_t *rx = h->data;
    kvl_v3rx_free(rx->v3);
    kvl_downstate_free(rx->v3times); /* writes what is not yet written */
    kvl_snmp_mib_names_free(rx->names);
    free(rx->rates);
    free(rx);
}

void kvl_trap_rx_free(kvl_trap_rx_t *rx)
{
    if (rx == NULL || rx->closing) {
        return;
    }
    rx->closing = true;
    uv_udp_recv_stop(&rx->udp);
    uv_close((uv_handle_t *)&rx->udp, on_closed);
}

int kvl_trap_rx_reload(kvl_trap_rx_t *rx, bool mibs_changed, char *err, size_t errlen)
{
    size_t n = rx->o.snmp->n_devices;
    rate_t *rates = calloc(n > 0 ? n : 1, sizeof(*rates));
    if (rates == NULL) {
        snprintf(err, errlen, "out of memory reloading the trap receiver");
        return KVL_ENOMEM;
    }
    free(rx->rates);
    rx->rates = rates; /* per device, by index: the indices may have moved */
    rx->n_devs = n;
    if (!rx->o.cfg->enabled) {
        return 0;
    }
    int rc = 0;
    if (mibs_changed || rx->names == NULL) {
        kvl_snmp_mib_names_t *names = NULL;
        const char *const *dirs = (const char *const *)rx->o.snmp->mib_path;
        rc = kvl_snmp_mib_names_load(dirs, rx->o.snmp->n_mib_path, &names, err, errlen);
        if (rc != 0) {
            return rc; /* the names loaded before stay */
        }
        kvl_snmp_mib_names_free(rx->names);
        rx->names = names;
    }
    /* The v3 users again: credential sets and devices may have changed. */
    kvl_v3rx_free(rx->v3);
    rx->v3 = NULL;
    kvl_downstate_free(rx->v3times); /* written now, read again by start_v3 */
    rx->v3times = NULL;
    return start_v3(rx, err, errlen);
}
