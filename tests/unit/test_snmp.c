/*
 * test_snmp.c — unit tests for the v1/v2c session transport of agent/snmp/snmp.c, against a fake
 * agent in the same process: a UDP socket on 127.0.0.1 watched on the same libuv loop that
 * answers, drops or garbles requests as each test scripts it.
 *
 * The fake reads a request by turning its PDU tag into a Response's and decoding it with
 * snmp_ber.c; it answers with the same varbinds (NULL values), re-encoded with the request's
 * id or a scripted other id, community or version. Checked: retransmission with the same
 * request-id and an answer to the last try, wrong answers ignored, tries and timeouts,
 * callbacks exactly once, close with requests pending (no callback), a callback that closes
 * its session, and one that sends the next request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvl.h"
#include "snmp.h"
#include "snmp_ber.h"

typedef enum { ANSWER, DROP, WRONG_COMMUNITY, WRONG_ID, WRONG_VERSION, GARBAGE } act_t;

typedef struct fake {
    int fd;
    uint16_t port;
    uv_poll_t poll;
    act_t script[8]; /* what to do with each request received; then ANSWER */
    size_t n_script;
    size_t n_received;
    int32_t ids[8];
} fake_t;

typedef struct outcome {
    int calls;
    kvl_snmp_result_t res;
    size_t n_vbs;
    kvl_snmp_oid_t first;
    bool close_in_cb;
    bool send_again;
    kvl_snmp_session_t *s;
} outcome_t;

static uv_loop_t loop;
static kvl_snmp_oid_t req_oids[3];
static kvl_snmp_vb_t fvbs[64];
static kvl_snmp_oid_t foids[64];

static void reply(fake_t *f, const struct sockaddr_in *to, const kvl_snmp_ber_response_t *q,
                  act_t act)
{
    uint8_t out[2048];
    kvl_snmp_oid_t names[64];
    for (size_t i = 0; i < q->n_vbs; i++) {
        names[i] = fvbs[i].oid;
    }
    kvl_snmp_ber_request_t r = {act == WRONG_VERSION ? 1 - q->version : q->version,
                                act == WRONG_COMMUNITY ? (const uint8_t *)"other" : q->community,
                                act == WRONG_COMMUNITY ? 5 : q->community_len,
                                act == WRONG_ID ? q->request_id + 1 : q->request_id,
                                KVL_SNMP_GET,
                                0,
                                names,
                                q->n_vbs};
    const char *why;
    int n = kvl_snmp_ber_encode(&r, out, sizeof(out), &why);
    assert_true(n > 0);
    out[4 + 1 + 2 + r.community_len] = 0xa2; /* 30 LL 02 01 vv 04 LL community, then the tag */
    if (act == GARBAGE) {
        n = 5;
    }
    assert_int_equal(sendto(f->fd, out, (size_t)n, 0, (const struct sockaddr *)to, sizeof(*to)), n);
}

static void on_fake_readable(uv_poll_t *h, int status, int events)
{
    KVL_UNUSED(events);
    assert_int_equal(status, 0);
    fake_t *f = h->data;
    uint8_t in[65536];
    struct sockaddr_in from;
    socklen_t fl = sizeof(from);
    ssize_t n = recvfrom(f->fd, in, sizeof(in), 0, (struct sockaddr *)&from, &fl);
    if (n <= 0) {
        return;
    }
    /* Our requests use short lengths here: the PDU tag follows the community. */
    size_t tag = 4 + 1 + 2 + in[6];
    assert_true(in[tag] == 0xa0 || in[tag] == 0xa1 || in[tag] == 0xa5);
    in[tag] = 0xa2;
    kvl_snmp_ber_response_t q;
    const char *why;
    assert_int_equal(kvl_snmp_ber_decode(in, (size_t)n, &q, fvbs, foids, 64, &why), 0);
    size_t k = f->n_received++;
    if (k < KVL_ARRAY_SIZE(f->ids)) {
        f->ids[k] = q.request_id;
    }
    act_t act = k < f->n_script ? f->script[k] : ANSWER;
    if (act == DROP) {
        return;
    }
    if (act != ANSWER) {
        reply(f, &from, &q, act); /* something to ignore, then the real answer */
    }
    reply(f, &from, &q, ANSWER);
}

static void fake_open(fake_t *f)
{
    memset(f, 0, sizeof(*f));
    f->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(f->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(uv_poll_init(&loop, &f->poll, f->fd), 0);
    f->poll.data = f;
    assert_int_equal(uv_poll_start(&f->poll, UV_READABLE, on_fake_readable), 0);
}

static void fake_close(fake_t *f)
{
    uv_close((uv_handle_t *)&f->poll, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    close(f->fd);
}

static kvl_snmp_session_t *open_session(uint16_t port, kvl_snmp_version_t v, int retries,
                                        int64_t timeout_ms)
{
    kvl_snmp_target_t t = {
        .name = "fake",
        .address = "127.0.0.1",
        .port = port,
        .version = v,
        .community = "public",
        .timeout_ms = timeout_ms,
        .retries = retries,
    };
    char err[256];
    kvl_snmp_session_t *s = kvl_snmp_open(&loop, &t, err, sizeof(err));
    assert_non_null(s);
    return s;
}

static void on_result(kvl_snmp_session_t *s, const kvl_snmp_result_t *r, void *arg)
{
    outcome_t *o = arg;
    o->calls++;
    o->res = *r;
    o->n_vbs = r->n_vbs;
    if (r->n_vbs > 0) {
        o->first = r->vbs[0].oid;
    }
    if (o->close_in_cb) {
        kvl_snmp_close(s);
    }
    if (o->send_again) {
        o->send_again = false;
        char err[256];
        assert_int_equal(
            kvl_snmp_send(s, KVL_SNMP_GETNEXT, req_oids, 1, 0, -1, on_result, o, err, sizeof(err)),
            0);
    }
}

static void send3(kvl_snmp_session_t *s, kvl_snmp_op_t op, outcome_t *o)
{
    char err[256];
    assert_int_equal(kvl_snmp_send(s, op, req_oids, 3, 5, -1, on_result, o, err, sizeof(err)), 0);
}

static int setup(void **state)
{
    KVL_UNUSED(state);
    kvl_snmp_init();
    uv_loop_init(&loop);
    const uint32_t a[] = {1, 3, 6, 1, 2, 1, 1, 3, 0};
    const uint32_t b[] = {1, 3, 6, 1, 2, 1, 2, 2, 1, 10, 7};
    const uint32_t c[] = {1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 4294967295u};
    kvl_snmp_oid_set(&req_oids[0], a, KVL_ARRAY_SIZE(a));
    kvl_snmp_oid_set(&req_oids[1], b, KVL_ARRAY_SIZE(b));
    kvl_snmp_oid_set(&req_oids[2], c, KVL_ARRAY_SIZE(c));
    return 0;
}

static int teardown(void **state)
{
    KVL_UNUSED(state);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

static void test_answer(void **state)
{
    KVL_UNUSED(state);
    fake_t f;
    fake_open(&f);
    kvl_snmp_session_t *s = open_session(f.port, KVL_SNMP_V2C, 1, 1000);
    outcome_t o = {0};
    send3(s, KVL_SNMP_GETBULK, &o);
    while (o.calls == 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.res.status, KVL_SNMP_RESPONSE);
    assert_int_equal(o.res.tries, 1);
    assert_int_equal(o.n_vbs, 3);
    assert_int_equal(kvl_snmp_oid_cmp(&o.first, &req_oids[0]), 0);
    assert_true(o.res.rtt_ms >= 0 && o.res.rtt_ms < 1000);
    kvl_snmp_close(s);
    fake_close(&f);
    assert_int_equal(o.calls, 1);
}

static void test_retransmit_and_ignore(void **state)
{
    KVL_UNUSED(state);
    fake_t f;
    fake_open(&f);
    /* First try dropped; the second answered after a wrong community, a wrong request-id,
     * a wrong version and garbage (one per run). */
    const act_t wrong[] = {WRONG_COMMUNITY, WRONG_ID, WRONG_VERSION, GARBAGE};
    kvl_snmp_session_t *s = open_session(f.port, KVL_SNMP_V1, 2, 100);
    for (size_t i = 0; i < KVL_ARRAY_SIZE(wrong); i++) {
        f.n_received = 0;
        f.n_script = 2;
        f.script[0] = DROP;
        f.script[1] = wrong[i];
        outcome_t o = {0};
        send3(s, KVL_SNMP_GET, &o);
        while (o.calls == 0) {
            uv_run(&loop, UV_RUN_ONCE);
        }
        assert_int_equal(o.res.status, KVL_SNMP_RESPONSE);
        assert_int_equal(o.res.tries, 2);
        assert_int_equal(o.n_vbs, 3);
        assert_int_equal(f.n_received, 2);
        assert_int_equal(f.ids[0], f.ids[1]); /* a retransmission repeats the request */
        assert_true(o.res.rtt_ms < 100);
    }
    kvl_snmp_close(s);
    fake_close(&f);
}

static void test_timeout(void **state)
{
    KVL_UNUSED(state);
    fake_t f;
    fake_open(&f);
    f.n_script = 8;
    for (size_t i = 0; i < 8; i++) {
        f.script[i] = DROP;
    }
    kvl_snmp_session_t *s = open_session(f.port, KVL_SNMP_V2C, 3, 50);
    outcome_t o = {0};
    /* retries 1 for this request, instead of the session's 3 */
    char err[256];
    uint64_t t0 = uv_hrtime();
    assert_int_equal(
        kvl_snmp_send(s, KVL_SNMP_GET, req_oids, 1, 0, 1, on_result, &o, err, sizeof(err)), 0);
    while (o.calls == 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    double ms = (double)(uv_hrtime() - t0) / 1e6;
    assert_int_equal(o.res.status, KVL_SNMP_TIMEOUT);
    assert_int_equal(o.res.tries, 2);
    assert_int_equal(f.n_received, 2);
    assert_true(ms >= 90 && ms < 1000);
    kvl_snmp_close(s);
    fake_close(&f);
    assert_int_equal(o.calls, 1);
}

static void test_dead_port(void **state)
{
    KVL_UNUSED(state);
    /* A port where nothing listens: ICMP port unreachable comes back; still a timeout. */
    fake_t f;
    fake_open(&f);
    uint16_t port = f.port;
    fake_close(&f);
    kvl_snmp_session_t *s = open_session(port, KVL_SNMP_V2C, 2, 40);
    for (int round = 0; round < 2; round++) {
        outcome_t o = {0};
        send3(s, KVL_SNMP_GET, &o);
        while (o.calls == 0) {
            uv_run(&loop, UV_RUN_ONCE);
        }
        assert_int_equal(o.res.status, KVL_SNMP_TIMEOUT);
        assert_int_equal(o.res.tries, 3);
    }
    kvl_snmp_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
}

static void test_close_pending(void **state)
{
    KVL_UNUSED(state);
    fake_t f;
    fake_open(&f);
    kvl_snmp_session_t *s = open_session(f.port, KVL_SNMP_V2C, 1, 1000);
    outcome_t o = {0};
    send3(s, KVL_SNMP_GET, &o);
    send3(s, KVL_SNMP_GETNEXT, &o);
    kvl_snmp_close(s);
    kvl_snmp_close(NULL);
    fake_close(&f); /* runs the loop: the answers find no session */
    assert_int_equal(o.calls, 0);
}

static void test_close_in_callback(void **state)
{
    KVL_UNUSED(state);
    fake_t f;
    fake_open(&f);
    kvl_snmp_session_t *s = open_session(f.port, KVL_SNMP_V2C, 1, 1000);
    outcome_t o = {.close_in_cb = true};
    outcome_t o2 = {0};
    send3(s, KVL_SNMP_GET, &o);
    send3(s, KVL_SNMP_GET, &o2); /* answered in the same wake-up or later: dropped */
    while (o.calls + o2.calls == 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    fake_close(&f);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.res.status, KVL_SNMP_RESPONSE);
    assert_int_equal(o2.calls, 0);
}

static void test_send_in_callback(void **state)
{
    KVL_UNUSED(state);
    fake_t f;
    fake_open(&f);
    kvl_snmp_session_t *s = open_session(f.port, KVL_SNMP_V2C, 1, 1000);
    outcome_t o = {.send_again = true};
    send3(s, KVL_SNMP_GET, &o);
    while (o.calls < 2) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(o.res.status, KVL_SNMP_RESPONSE);
    assert_int_equal(o.n_vbs, 1);
    assert_int_equal(f.n_received, 2);
    assert_int_not_equal(f.ids[0], f.ids[1]);
    kvl_snmp_close(s);
    fake_close(&f);
    assert_int_equal(o.calls, 2);
}

static void test_sync_failure(void **state)
{
    KVL_UNUSED(state);
    /* GetBulk on v1 cannot be encoded: an error, and no callback. */
    kvl_snmp_session_t *s = open_session(9, KVL_SNMP_V1, 0, 100);
    outcome_t o = {0};
    char err[256] = "";
    assert_true(kvl_snmp_send(s, KVL_SNMP_GETBULK, req_oids, 1, 5, -1, on_result, &o, err,
                              sizeof(err)) < 0);
    assert_true(err[0] != '\0');
    kvl_snmp_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(o.calls, 0);
}

/* Addresses: IPv4 and IPv6 literals are read without a lookup (such sessions may be
 * closed between polls and opened again cheaply); a host name ("localhost", from
 * /etc/hosts: no query leaves the host) is looked up, and its session is not one to open
 * again at every poll. */
static void test_addresses(void **state)
{
    KVL_UNUSED(state);
    static const struct {
        const char *address;
        bool cheap;
    } cases[] = {{"127.0.0.1", true}, {"::1", true}, {"localhost", false}};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(cases); i++) {
        kvl_snmp_target_t t = {.name = "addr",
                               .address = cases[i].address,
                               .port = 9,
                               .version = KVL_SNMP_V2C,
                               .community = "public",
                               .timeout_ms = 100};
        char err[256] = "";
        kvl_snmp_session_t *s = kvl_snmp_open(&loop, &t, err, sizeof(err));
        if (s == NULL) {
            fail_msg("%s: %s", cases[i].address, err);
        }
        assert_int_equal(kvl_snmp_reopen_is_cheap(s), cases[i].cheap);
        kvl_snmp_close(s);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer),           cmocka_unit_test(test_retransmit_and_ignore),
        cmocka_unit_test(test_timeout),          cmocka_unit_test(test_dead_port),
        cmocka_unit_test(test_close_pending),    cmocka_unit_test(test_close_in_callback),
        cmocka_unit_test(test_send_in_callback), cmocka_unit_test(test_sync_failure),
        cmocka_unit_test(test_addresses),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
