/*
 * test_uplink_heartbeat.c — the agent's heartbeats (agent/ship/uplink.c) against a fake
 * collector on 127.0.0.1 that decodes every frame: the Hello says the configured interval;
 * a collector whose Welcome says it takes heartbeats gets one every interval (none sooner
 * than the interval, with the agent's clock and positions) on one lasting connection; an
 * older collector (its Welcome says nothing) gets none, so it never closes the connection
 * for a message it does not know.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four headers above first. */
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agent_config.h"
#include "frame.h"
#include "log.h"
#include "outbox.h"
#include "registry.h"
#include "timeutil.h"
#include "uplink.h"
#include "wire.h"

#define MAX_BEATS 64

typedef struct fake {
    uv_loop_t *loop;
    uv_tcp_t server;
    kvl_buf_t welcome; /* a framed Welcome */
    size_t accepts;
    uint32_t hello_heartbeat_ms;
    bool hello_seen;
    uint64_t beat_at[MAX_BEATS]; /* loop time of each heartbeat */
    int64_t beat_time[MAX_BEATS];
    size_t beats;
    size_t other; /* frames neither Hello nor Heartbeat */
    bool bad;     /* a frame that did not decode */
} fake_t;

typedef struct peer {
    uv_tcp_t tcp;
    uv_write_t wr;
    fake_t *f;
    kvl_buf_t in;
} peer_t;

static void peer_closed(uv_handle_t *h)
{
    peer_t *p = h->data;
    kvl_buf_free(&p->in);
    free(p);
}

static void peer_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    (void)n;
    static char buf[65536];
    *b = uv_buf_init(buf, sizeof(buf));
}

static void on_written(uv_write_t *w, int status)
{
    (void)w;
    (void)status;
}

/* Whole frames: the Hello gets the Welcome; heartbeats are counted. */
static void peer_frames(peer_t *p)
{
    fake_t *f = p->f;
    while (p->in.len >= KVL_FRAME_HEADER) {
        const uint8_t *d = p->in.data;
        size_t len = (size_t)d[0] << 24 | (size_t)d[1] << 16 | (size_t)d[2] << 8 | d[3];
        if (p->in.len < KVL_FRAME_HEADER + len) {
            return;
        }
        kvl_msg_t m = {0};
        char err[256];
        if (kvl_wire_decode(d + KVL_FRAME_HEADER, len, &m, err, sizeof(err)) != 0) {
            f->bad = true;
        } else if (m.type == KVL_MSG_HELLO) {
            f->hello_seen = true;
            f->hello_heartbeat_ms = m.u.hello.heartbeat_ms;
            uv_buf_t w = uv_buf_init((char *)f->welcome.data, (unsigned)f->welcome.len);
            p->wr.data = p;
            assert_int_equal(uv_write(&p->wr, (uv_stream_t *)&p->tcp, &w, 1, on_written), 0);
        } else if (m.type == KVL_MSG_HEARTBEAT) {
            if (f->beats < MAX_BEATS) {
                f->beat_at[f->beats] = uv_now(f->loop);
                f->beat_time[f->beats] = m.u.heartbeat.time_ms;
            }
            f->beats++;
        } else {
            f->other++;
        }
        kvl_msg_clear(&m);
        kvl_buf_consume(&p->in, KVL_FRAME_HEADER + len);
    }
}

static void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    peer_t *p = s->data;
    if (n < 0) {
        uv_close((uv_handle_t *)&p->tcp, peer_closed);
        return;
    }
    assert_int_equal(kvl_buf_append(&p->in, b->base, (size_t)n), 0);
    peer_frames(p);
}

static void on_accept(uv_stream_t *server, int status)
{
    fake_t *f = server->data;
    assert_int_equal(status, 0);
    peer_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->f = f;
    uv_tcp_init(f->loop, &p->tcp);
    p->tcp.data = p;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&p->tcp), 0);
    f->accepts++;
    uv_read_start((uv_stream_t *)&p->tcp, peer_alloc, peer_read);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void run_ms(uv_loop_t *loop, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, on_tick, 50, 50);
    uint64_t end = uv_now(loop) + ms;
    while (uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* An agent (heartbeat 1 s) against a fake collector whose Welcome says takes_heartbeats or
 * not, for run_for ms. */
static void run_agent(fake_t *f, bool takes, uint64_t run_for)
{
    kvl_log_level = KVL_LOG_LEVEL_ERROR;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    f->loop = &loop;
    kvl_msg_t m = {.type = KVL_MSG_WELCOME};
    m.u.welcome = (kvl_welcome_t){.protocol = KVL_PROTOCOL_VERSION,
                                  .collector_id = "fake",
                                  .version = "test",
                                  .takes_heartbeats = takes};
    assert_int_equal(kvl_wire_encode(&m, &f->welcome), 0);
    uv_tcp_init(&loop, &f->server);
    f->server.data = f;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&f->server, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f->server, 16, on_accept), 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    assert_int_equal(uv_tcp_getsockname(&f->server, (struct sockaddr *)&ss, &len), 0);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);

    char text[256], err[600];
    snprintf(text, sizeof(text),
             "id: hb-agent\nsite: lab\ncollector: 127.0.0.1:%d\ninsecure: true\nheartbeat: 1s\n",
             port);
    kvl_agent_cfg_t *acfg = kvl_agent_cfg_parse("agent.yaml", text, err, sizeof(err));
    assert_non_null(acfg);
    assert_int_equal(acfg->ship.heartbeat_ms, 1000);
    kvl_uplink_reader_names_t names;
    const char *readers[KVL_MAX_COLLECTORS];
    size_t n = kvl_uplink_readers(&acfg->ship, &names, readers);
    kvl_registry_t *reg = NULL;
    kvl_outbox_t *outbox = NULL;
    kvl_uplink_t *up = NULL;
    assert_int_equal(kvl_registry_new(&reg, err, sizeof(err)), 0);
    assert_int_equal(kvl_outbox_open(&loop, &acfg->ship, readers, n, &outbox, err, sizeof(err)), 0);
    kvl_uplink_opts_t uo = {.cfg = &acfg->ship,
                            .agent_id = acfg->id,
                            .site = acfg->site,
                            .outbox = outbox,
                            .registry = reg};
    assert_int_equal(kvl_uplink_new(&loop, &uo, &up, err, sizeof(err)), 0);
    kvl_uplink_start(up);
    run_ms(&loop, run_for);

    kvl_uplink_free(up);
    kvl_outbox_free(outbox);
    uv_close((uv_handle_t *)&f->server, NULL);
    run_ms(&loop, 300); /* the fake's connection sees the end and closes */
    uv_run(&loop, UV_RUN_DEFAULT);
    kvl_registry_free(reg);
    kvl_agent_cfg_free(acfg);
    kvl_buf_free(&f->welcome);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_heartbeats_to_a_collector_that_takes_them(void **state)
{
    (void)state;
    fake_t f = {0};
    int64_t t0 = kvl_now_ms();
    run_agent(&f, true, 4600);
    assert_true(f.hello_seen);
    assert_false(f.bad);
    assert_int_equal(f.hello_heartbeat_ms, 1000);
    assert_int_equal(f.accepts, 1); /* one lasting connection */
    fprintf(stderr, "%zu heartbeats in 4.6 s\n", f.beats);
    /* every second once welcomed: 4 in 4.6 s, at least 2 on a starved machine */
    assert_true(f.beats >= 2 && f.beats <= 5);
    for (size_t i = 0; i < f.beats && i < MAX_BEATS; i++) {
        assert_true(f.beat_time[i] >= t0 && f.beat_time[i] <= kvl_now_ms());
        if (i > 0) {
            assert_true(f.beat_at[i] - f.beat_at[i - 1] >= 900); /* never sooner */
        }
    }
}

static void test_no_heartbeats_to_an_older_collector(void **state)
{
    (void)state;
    fake_t f = {0};
    run_agent(&f, false, 3500);
    assert_true(f.hello_seen);
    assert_false(f.bad);
    assert_int_equal(f.hello_heartbeat_ms, 1000); /* said anyway: the collector may watch */
    assert_int_equal(f.accepts, 1);
    assert_int_equal(f.beats, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeats_to_a_collector_that_takes_them),
        cmocka_unit_test(test_no_heartbeats_to_an_older_collector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
