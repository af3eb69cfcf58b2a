/*
 * test_trap_rx.c — the trap receiver (agent/trap/trap_rx.c) on a real UDP socket on
 * 127.0.0.1, against link-time fakes of the poller's lookups and of the batcher's events.
 *
 * Packets are built here (v1 and v2c BER) and sent from 127.0.0.1 (a configured device) or
 * 127.0.0.2 (none). Checked: the event each trap becomes (name, severity, device, fields:
 * interface by the poller's name, if_index, admin and oper status, source, version,
 * trap_oid, varbinds named from the project's MIB or by OID), the poll at once asked for a
 * link trap, the inform's Response (same request id) and no answer to an unknown source,
 * wrong communities, undecodable packets and the rate bound counted and dropped, and a
 * second receiver on a taken port running on without a socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "batcher.h"
#include "kvl.h"
#include "log.h"
#include "poller.h"
#include "trap_config.h"
#include "trap_rx.h"

/* --- fakes: the poller's lookups (one device, sw1 at 127.0.0.1) and the batcher ------------ */

static kvl_device_cfg_t devices[1];
static size_t polls_asked;

long kvl_poller_device_by_addr(kvl_poller_t *p, const struct sockaddr *sa)
{
    KVL_UNUSED(p);
    const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
    return sa->sa_family == AF_INET && ntohl(in->sin_addr.s_addr) == 0x7f000001 ? 0 : -1;
}

const kvl_device_cfg_t *kvl_poller_device(const kvl_poller_t *p, size_t i)
{
    KVL_UNUSED(p);
    assert_true(i == 0);
    return &devices[0];
}

const char *kvl_poller_if_name(const kvl_poller_t *p, size_t i, uint32_t ifindex, char *buf,
                               size_t len)
{
    KVL_UNUSED(p);
    assert_true(i == 0);
    snprintf(buf, len, "Gi0/%u", (unsigned)ifindex);
    return buf;
}

bool kvl_poller_poll_now(kvl_poller_t *p, size_t i)
{
    KVL_UNUSED(p);
    assert_true(i == 0);
    polls_asked++;
    return true;
}

#define MAX_EVENTS 64
#define MAX_FIELDS 48

typedef struct fevent {
    char kind[128], device[64], text[600];
    kvl_severity_t severity;
    char keys[MAX_FIELDS][128], values[MAX_FIELDS][300];
    size_t n_fields;
} fevent_t;

static fevent_t events[MAX_EVENTS];
static size_t n_events;

void kvl_batcher_event(kvl_batcher_t *b, const kvl_event_t *ev)
{
    KVL_UNUSED(b);
    assert_true(n_events < MAX_EVENTS);
    fevent_t *e = &events[n_events++];
    snprintf(e->kind, sizeof(e->kind), "%s", ev->kind);
    snprintf(e->device, sizeof(e->device), "%s", ev->device);
    snprintf(e->text, sizeof(e->text), "%s", ev->text);
    e->severity = ev->severity;
    assert_true(ev->n_fields <= MAX_FIELDS);
    for (size_t i = 0; i < ev->n_fields; i++) {
        snprintf(e->keys[i], sizeof(e->keys[i]), "%s", ev->fields[i].key);
        snprintf(e->values[i], sizeof(e->values[i]), "%s", ev->fields[i].value);
    }
    e->n_fields = ev->n_fields;
}

static const char *field(const fevent_t *e, const char *key)
{
    for (size_t i = 0; i < e->n_fields; i++) {
        if (strcmp(e->keys[i], key) == 0) {
            return e->values[i];
        }
    }
    return NULL;
}

/* --- packets --------------------------------------------------------------------------------- */

typedef struct pkt {
    uint8_t b[2048];
    size_t n;
} pkt_t;

/* tag, length, body into out (short and one-byte long lengths: enough here). */
static void tlv(pkt_t *out, uint8_t tag, const pkt_t *body)
{
    size_t n = body->n;
    assert_true(n < 65536 && out->n + n + 4 <= sizeof(out->b));
    out->b[out->n++] = tag;
    if (n < 128) {
        out->b[out->n++] = (uint8_t)n;
    } else if (n < 256) {
        out->b[out->n++] = 0x81;
        out->b[out->n++] = (uint8_t)n;
    } else {
        out->b[out->n++] = 0x82;
        out->b[out->n++] = (uint8_t)(n >> 8);
        out->b[out->n++] = (uint8_t)n;
    }
    memcpy(out->b + out->n, body->b, n);
    out->n += n;
}

static void raw(pkt_t *out, uint8_t tag, const void *p, size_t n)
{
    pkt_t body = {.n = n};
    memcpy(body.b, p, n);
    tlv(out, tag, &body);
}

static void integer(pkt_t *out, int32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    raw(out, 0x02, b, 4);
}

static void oid(pkt_t *out, const char *dotted)
{
    uint32_t arcs[64] = {0};
    size_t n = 0;
    for (const char *p = dotted[0] == '.' ? dotted + 1 : dotted; *p != '\0' && n < 64;) {
        char *end = NULL;
        arcs[n++] = (uint32_t)strtoul(p, &end, 10);
        p = *end == '.' ? end + 1 : end;
    }
    uint8_t b[320];
    size_t k = 0;
    b[k++] = (uint8_t)(40 * arcs[0] + arcs[1]);
    for (size_t i = 2; i < n; i++) {
        uint8_t tmp[5];
        size_t t = 0;
        uint32_t a = arcs[i];
        do {
            tmp[t++] = (uint8_t)(a & 0x7f);
            a >>= 7;
        } while (a != 0);
        while (t > 0) {
            t--;
            b[k++] = (uint8_t)(tmp[t] | (t > 0 ? 0x80 : 0));
        }
    }
    raw(out, 0x06, b, k);
}

/* One varbind: OID and an INTEGER, a string or an OID value (by `kind`: 'i', 's', 'o'). */
static void vb(pkt_t *list, const char *name, char kind, const char *value)
{
    pkt_t one = {.n = 0};
    oid(&one, name);
    if (kind == 'i') {
        integer(&one, (int32_t)strtol(value, NULL, 10));
    } else if (kind == 's') {
        raw(&one, 0x04, value, strlen(value));
    } else {
        oid(&one, value);
    }
    tlv(list, 0x30, &one);
}

/* A v2c SNMPv2-Trap (pdu 0xA7) or InformRequest (0xA6) of trap_oid with the extra varbinds
 * in `more` (already encoded). */
static void v2c(pkt_t *out, const char *community, uint8_t pdu_tag, int32_t request_id,
                const char *trap_oid, const pkt_t *more)
{
    pkt_t vbs = {.n = 0}, pdu = {.n = 0}, msg = {.n = 0};
    pkt_t up = {.n = 0};
    oid(&up, "1.3.6.1.2.1.1.3.0");
    raw(&up, 0x43, "\x01", 1);
    tlv(&vbs, 0x30, &up);
    vb(&vbs, "1.3.6.1.6.3.1.1.4.1.0", 'o', trap_oid);
    if (more != NULL) {
        memcpy(vbs.b + vbs.n, more->b, more->n);
        vbs.n += more->n;
    }
    integer(&pdu, request_id);
    integer(&pdu, 0);
    integer(&pdu, 0);
    tlv(&pdu, 0x30, &vbs);
    integer(&msg, 1);
    raw(&msg, 0x04, community, strlen(community));
    tlv(&msg, pdu_tag, &pdu);
    out->n = 0;
    tlv(out, 0x30, &msg);
}

/* A v1 Trap-PDU: generic-trap g (specific s) of enterprise ent with the varbinds in vbs. */
static void v1(pkt_t *out, const char *community, const char *ent, int g, int s, const pkt_t *vbs)
{
    pkt_t pdu = {.n = 0}, msg = {.n = 0};
    oid(&pdu, ent);
    raw(&pdu, 0x40, "\x7f\x00\x00\x01", 4);
    integer(&pdu, g);
    integer(&pdu, s);
    raw(&pdu, 0x43, "\x05", 1);
    tlv(&pdu, 0x30, vbs);
    integer(&msg, 0);
    raw(&msg, 0x04, community, strlen(community));
    tlv(&msg, 0xA4, &pdu);
    out->n = 0;
    tlv(out, 0x30, &msg);
}

/* --- the world: a loop, the receiver, a sending socket -------------------------------------- */

typedef struct world {
    uv_loop_t loop;
    kvl_trap_cfg_t cfg;
    kvl_snmp_cfg_t snmp;
    char *mib_dirs[2];
    kvl_trap_rx_t *rx;
    int sock; /* the sender's, bound to `from` */
    struct sockaddr_in to;
} world_t;

static int dummy; /* the fakes keep their state in statics */

/* A port free on 127.0.0.1 right now. */
static uint16_t free_port(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    getsockname(s, (struct sockaddr *)&a, &len);
    close(s);
    return ntohs(a.sin_port);
}

static void world_start(world_t *w, int64_t max_per_second)
{
    memset(w, 0, sizeof(*w));
    n_events = polls_asked = 0;
    const char *lvl = getenv("KVL_TEST_LOG");
    kvl_log_level = lvl != NULL ? kvl_log_level_parse(lvl) : KVL_LOG_LEVEL_ERROR;
    assert_int_equal(uv_loop_init(&w->loop), 0);
    devices[0] = (kvl_device_cfg_t){.name = (char *)"sw1",
                                    .address = (char *)"127.0.0.1",
                                    .version = KVL_SNMP_V2C,
                                    .community = (char *)"secret"};
    w->snmp.devices = devices;
    w->snmp.n_devices = 1;
    /* the project's MIB and the SMI modules it imports, from the source tree */
    char here[4096];
    snprintf(here, sizeof(here), "%s", __FILE__);
    char *slash = strrchr(here, '/');
    *slash = '\0'; /* tests/unit */
    char dirs[2][4200];
    snprintf(dirs[0], sizeof(dirs[0]), "%s/../../mibs", here);
    snprintf(dirs[1], sizeof(dirs[1]), "%s/../mibs/base", here);
    w->mib_dirs[0] = strdup(dirs[0]);
    w->mib_dirs[1] = strdup(dirs[1]);
    w->snmp.mib_path = w->mib_dirs;
    w->snmp.n_mib_path = 2;
    kvl_trap_cfg_init(&w->cfg);
    snprintf(w->cfg.host, sizeof(w->cfg.host), "127.0.0.1");
    w->cfg.port = free_port();
    w->cfg.max_per_second = max_per_second;
    kvl_trap_engine_id_default("test", &w->cfg.engine_id);
    kvl_trap_rx_opts_t o = {.cfg = &w->cfg,
                            .snmp = &w->snmp,
                            .poller = (kvl_poller_t *)&dummy,
                            .batcher = (kvl_batcher_t *)&dummy};
    char err[256];
    assert_int_equal(kvl_trap_rx_new(&w->loop, &o, &w->rx, err, sizeof(err)), 0);
    assert_true(kvl_trap_rx_listening(w->rx));
    w->to = (struct sockaddr_in){.sin_family = AF_INET,
                                 .sin_port = htons(w->cfg.port),
                                 .sin_addr.s_addr = htonl(0x7f000001)};
    w->sock = -1;
}

/* A sender bound to 127.0.0.<host>. */
static void sender(world_t *w, int host)
{
    if (w->sock >= 0) {
        close(w->sock);
    }
    w->sock = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000000 | host)};
    assert_int_equal(bind(w->sock, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 300000};
    setsockopt(w->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

static void on_wake(uv_timer_t *t)
{
    KVL_UNUSED(t);
}

/* Sends p and runs the loop until the receiver's totals show it received `received`
 * datagrams (2 s at most). */
static void send_and_wait(world_t *w, const pkt_t *p)
{
    uint64_t before = kvl_trap_rx_counters(w->rx)->received;
    assert_int_equal(sendto(w->sock, p->b, p->n, 0, (struct sockaddr *)&w->to, sizeof(w->to)),
                     (ssize_t)p->n);
    uv_timer_t wake;
    uv_timer_init(&w->loop, &wake);
    uv_timer_start(&wake, on_wake, 10, 10);
    uint64_t deadline = uv_now(&w->loop) + 2000;
    while (kvl_trap_rx_counters(w->rx)->received == before && uv_now(&w->loop) < deadline) {
        uv_run(&w->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    assert_int_equal(kvl_trap_rx_counters(w->rx)->received, before + 1);
}

static void world_stop(world_t *w)
{
    kvl_trap_rx_free(w->rx);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    if (w->sock >= 0) {
        close(w->sock);
    }
    free(w->mib_dirs[0]);
    free(w->mib_dirs[1]);
}

#define IFX "1.3.6.1.2.1.2.2.1."

/* --- tests ----------------------------------------------------------------------------------- */

static void test_link_traps(void **state)
{
    KVL_UNUSED(state);
    world_t w;
    world_start(&w, 100);
    sender(&w, 1);
    pkt_t more = {.n = 0}, p;
    vb(&more, IFX "1.2", 'i', "2");
    vb(&more, IFX "7.2", 'i', "1");
    vb(&more, IFX "8.2", 'i', "2");
    v2c(&p, "secret", 0xA7, 7, "1.3.6.1.6.3.1.1.5.3", &more);
    send_and_wait(&w, &p);
    assert_int_equal(n_events, 1);
    const fevent_t *e = &events[0];
    assert_string_equal(e->kind, "linkDown");
    assert_string_equal(e->device, "sw1");
    assert_int_equal(e->severity, KVL_SEV_WARNING);
    assert_string_equal(field(e, "interface"), "Gi0/2");
    assert_string_equal(field(e, "if_index"), "2");
    assert_string_equal(field(e, "admin_status"), "up");
    assert_string_equal(field(e, "oper_status"), "down");
    assert_string_equal(field(e, "source"), "127.0.0.1");
    assert_string_equal(field(e, "version"), "v2c");
    assert_string_equal(field(e, "trap_oid"), ".1.3.6.1.6.3.1.1.5.3");
    assert_non_null(strstr(e->text, "interface Gi0/2 (ifIndex 2, admin up, oper down)"));
    assert_int_equal(polls_asked, 1);

    /* v1 linkUp (generic-trap 3), the ifIndex as its first varbind */
    pkt_t vbs = {.n = 0};
    vb(&vbs, IFX "1.5", 'i', "5");
    v1(&p, "secret", "1.3.6.1.4.1.8072.3.2.10", 3, 0, &vbs);
    send_and_wait(&w, &p);
    assert_int_equal(n_events, 2);
    e = &events[1];
    assert_string_equal(e->kind, "linkUp");
    assert_int_equal(e->severity, KVL_SEV_INFO);
    assert_string_equal(field(e, "interface"), "Gi0/5");
    assert_null(field(e, "admin_status"));
    assert_string_equal(field(e, "version"), "v1");
    assert_int_equal(polls_asked, 2);

    const kvl_trap_rx_stats_t *st = kvl_trap_rx_counters(w.rx);
    assert_int_equal(st->v2c, 1);
    assert_int_equal(st->v1, 1);
    world_stop(&w);
}

static void test_named_and_numeric(void **state)
{
    KVL_UNUSED(state);
    world_t w;
    world_start(&w, 100);
    sender(&w, 1);
    /* KAAVAL-MIB::kaavalDeviceDown with kaavalDeviceName.7, named from mibs/ */
    pkt_t more = {.n = 0}, p;
    vb(&more, "1.3.6.1.4.1.99999.1.2.1.2.7", 's', "core-sw-9");
    v2c(&p, "secret", 0xA7, 8, "1.3.6.1.4.1.99999.0.1", &more);
    send_and_wait(&w, &p);
    assert_int_equal(n_events, 1);
    assert_string_equal(events[0].kind, "kaavalDeviceDown");
    assert_string_equal(field(&events[0], "kaavalDeviceName"), "core-sw-9");
    assert_int_equal(events[0].severity, KVL_SEV_INFO);

    /* unknown to every MIB: the numeric OIDs */
    more.n = 0;
    vb(&more, "1.3.6.1.4.1.9.9.9.1.0", 'i', "42");
    v2c(&p, "secret", 0xA7, 9, "1.3.6.1.4.1.9.9.9.0.3", &more);
    send_and_wait(&w, &p);
    assert_int_equal(n_events, 2);
    assert_string_equal(events[1].kind, ".1.3.6.1.4.1.9.9.9.0.3");
    assert_string_equal(field(&events[1], ".1.3.6.1.4.1.9.9.9.1.0"), "42");
    assert_int_equal(polls_asked, 0);

    /* coldStart and authenticationFailure by their names */
    v2c(&p, "secret", 0xA7, 10, "1.3.6.1.6.3.1.1.5.1", NULL);
    send_and_wait(&w, &p);
    v2c(&p, "secret", 0xA7, 11, "1.3.6.1.6.3.1.1.5.5", NULL);
    send_and_wait(&w, &p);
    assert_string_equal(events[2].kind, "coldStart");
    assert_int_equal(events[2].severity, KVL_SEV_INFO);
    assert_string_equal(events[3].kind, "authenticationFailure");
    assert_int_equal(events[3].severity, KVL_SEV_WARNING);
    world_stop(&w);
}

static void test_inform_and_refusals(void **state)
{
    KVL_UNUSED(state);
    world_t w;
    world_start(&w, 100);
    sender(&w, 1);
    pkt_t p;
    v2c(&p, "secret", 0xA6, 4242, "1.3.6.1.6.3.1.1.5.2", NULL);
    send_and_wait(&w, &p);
    uint8_t resp[2048];
    ssize_t n = recv(w.sock, resp, sizeof(resp), 0);
    assert_true(n > 10);
    /* a Response-PDU (0xA2) with the request id 4242, in its shortest form (02 02 10 92) */
    static const uint8_t id[] = {0x02, 0x02, 0x10, 0x92};
    assert_non_null(memchr(resp, 0xA2, (size_t)n));
    bool found = false;
    for (size_t i = 0; i + sizeof(id) <= (size_t)n && !found; i++) {
        found = memcmp(resp + i, id, sizeof(id)) == 0;
    }
    assert_true(found);
    assert_int_equal(kvl_trap_rx_counters(w.rx)->informs_answered, 1);
    assert_int_equal(n_events, 1);
    assert_string_equal(events[0].kind, "warmStart");

    /* a wrong community: counted, dropped, not answered */
    v2c(&p, "guess", 0xA6, 4243, "1.3.6.1.6.3.1.1.5.2", NULL);
    send_and_wait(&w, &p);
    assert_int_equal(kvl_trap_rx_counters(w.rx)->bad_community, 1);
    assert_true(recv(w.sock, resp, sizeof(resp), 0) < 0);
    /* not a packet */
    pkt_t junk = {.n = 5, .b = {0x30, 0x03, 0x02, 0x01, 0x07}};
    send_and_wait(&w, &junk);
    assert_int_equal(kvl_trap_rx_counters(w.rx)->decode_errors, 1);

    /* from 127.0.0.2, no configured device: counted, dropped, not answered */
    sender(&w, 2);
    v2c(&p, "secret", 0xA6, 4244, "1.3.6.1.6.3.1.1.5.2", NULL);
    send_and_wait(&w, &p);
    assert_int_equal(kvl_trap_rx_counters(w.rx)->unknown_source, 1);
    assert_true(recv(w.sock, resp, sizeof(resp), 0) < 0);
    assert_int_equal(n_events, 1);
    assert_int_equal(kvl_trap_rx_counters(w.rx)->informs_answered, 1);
    world_stop(&w);
}

static void test_rate_and_taken_port(void **state)
{
    KVL_UNUSED(state);
    world_t w;
    world_start(&w, 3);
    sender(&w, 1);
    pkt_t p;
    v2c(&p, "secret", 0xA7, 1, "1.3.6.1.6.3.1.1.5.1", NULL);
    /* 8 in a row (well within one second but for a second that turns meanwhile: then up to
     * 6 are taken) */
    for (int i = 0; i < 8; i++) {
        send_and_wait(&w, &p);
    }
    const kvl_trap_rx_stats_t *st = kvl_trap_rx_counters(w.rx);
    assert_true(n_events >= 3 && n_events <= 6);
    assert_int_equal(st->rate_limited + n_events, 8);
    assert_int_equal(st->received, 8);

    /* a second receiver on the same port: logged, no socket, no failure */
    kvl_trap_rx_t *second = NULL;
    kvl_trap_rx_opts_t o = {.cfg = &w.cfg,
                            .snmp = &w.snmp,
                            .poller = (kvl_poller_t *)&dummy,
                            .batcher = (kvl_batcher_t *)&dummy};
    char err[256];
    assert_int_equal(kvl_trap_rx_new(&w.loop, &o, &second, err, sizeof(err)), 0);
    assert_non_null(second);
    assert_false(kvl_trap_rx_listening(second));
    kvl_trap_rx_free(second);
    world_stop(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_link_traps),
        cmocka_unit_test(test_named_and_numeric),
        cmocka_unit_test(test_inform_and_refusals),
        cmocka_unit_test(test_rate_and_taken_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
