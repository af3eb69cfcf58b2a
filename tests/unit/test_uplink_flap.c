/*
 * test_uplink_flap.c — the agent's uplink (agent/ship/uplink.h) against a collector that
 * flaps: a fake one on 127.0.0.1 that answers every Hello with a Welcome and closes the
 * connection at once. The agent must back off as from a failed attempt (1, 2, 4 s: four
 * connections in 8 s, not one a second); once a connection lasts (6 s), its loss is
 * followed by a reconnection after the first backoff step again (about 1 s).
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
#include "log.h"
#include "outbox.h"
#include "registry.h"
#include "uplink.h"
#include "wire.h"

#define MAX_ACCEPTS 64

typedef struct fake {
    uv_loop_t *loop;
    uv_tcp_t server;
    kvl_buf_t welcome; /* a framed Welcome */
    bool hold;         /* keep the next connection for hold_ms instead of closing it */
    uint64_t hold_ms;
    uint64_t accepted_at[MAX_ACCEPTS];
    size_t accepts;
    uint64_t closed_at; /* when the fake last closed a connection */
} fake_t;

typedef struct peer {
    uv_tcp_t tcp;
    uv_write_t wr;
    uv_timer_t hold;
    fake_t *f;
    bool welcomed;
    bool closing;
    int handles;
} peer_t;

static void peer_handle_closed(uv_handle_t *h)
{
    peer_t *p = h->data;
    if (--p->handles == 0) {
        free(p);
    }
}

static void peer_close(peer_t *p)
{
    if (p->closing) {
        return;
    }
    p->closing = true;
    p->f->closed_at = uv_now(p->f->loop);
    uv_close((uv_handle_t *)&p->tcp, peer_handle_closed);
    uv_close((uv_handle_t *)&p->hold, peer_handle_closed);
}

static void on_hold_end(uv_timer_t *t)
{
    peer_close(t->data);
}

static void on_welcome_written(uv_write_t *w, int status)
{
    (void)status;
    peer_t *p = w->data;
    if (p->f->hold) {
        p->f->hold = false;
        uv_timer_start(&p->hold, on_hold_end, p->f->hold_ms, 0);
    } else {
        peer_close(p);
    }
}

static void peer_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    (void)n;
    static char buf[65536];
    *b = uv_buf_init(buf, sizeof(buf));
}

/* Any bytes (the Hello) get the Welcome; the end of the stream closes. */
static void peer_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    peer_t *p = s->data;
    if (n < 0) {
        peer_close(p);
        return;
    }
    if (n > 0 && !p->welcomed && !p->closing) {
        p->welcomed = true;
        uv_buf_t w = uv_buf_init((char *)p->f->welcome.data, (unsigned)p->f->welcome.len);
        p->wr.data = p;
        assert_int_equal(uv_write(&p->wr, s, &w, 1, on_welcome_written), 0);
    }
}

static void on_accept(uv_stream_t *server, int status)
{
    fake_t *f = server->data;
    assert_int_equal(status, 0);
    peer_t *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->f = f;
    uv_tcp_init(f->loop, &p->tcp);
    uv_timer_init(f->loop, &p->hold);
    p->tcp.data = p;
    p->hold.data = p;
    p->handles = 2;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&p->tcp), 0);
    if (f->accepts < MAX_ACCEPTS) {
        f->accepted_at[f->accepts] = uv_now(f->loop);
    }
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

static void test_flapping_collector(void **state)
{
    (void)state;
    kvl_log_level = KVL_LOG_LEVEL_ERROR;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    fake_t f = {.loop = &loop};
    kvl_msg_t m = {.type = KVL_MSG_WELCOME};
    m.u.welcome = (kvl_welcome_t){
        .protocol = KVL_PROTOCOL_VERSION, .collector_id = "flapper", .version = "test"};
    assert_int_equal(kvl_wire_encode(&m, &f.welcome), 0);
    uv_tcp_init(&loop, &f.server);
    f.server.data = &f;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&f.server, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&f.server, 16, on_accept), 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    assert_int_equal(uv_tcp_getsockname(&f.server, (struct sockaddr *)&ss, &len), 0);
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);

    char text[256], err[600];
    snprintf(text, sizeof(text),
             "id: flap-agent\nsite: lab\ncollector: 127.0.0.1:%d\ninsecure: true\n"
             "reconnect_max: 30s\n",
             port);
    kvl_agent_cfg_t *acfg = kvl_agent_cfg_parse("agent.yaml", text, err, sizeof(err));
    assert_non_null(acfg);
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

    /* Flapping for 8.5 s: attempts at about 0, 1, 3 and 7 s (a reset backoff: nine). */
    run_ms(&loop, 8500);
    size_t flaps = f.accepts;
    for (size_t i = 0; i < flaps && i < MAX_ACCEPTS; i++) {
        fprintf(stderr, "connection %zu at %llu ms\n", i + 1,
                (unsigned long long)(f.accepted_at[i] - f.accepted_at[0]));
    }
    assert_true(flaps >= 3);
    assert_true(flaps <= 5);
    if (flaps >= 3) {
        assert_true(f.accepted_at[2] - f.accepted_at[1] >= 1500); /* it grew */
    }

    /* The next connection lasts 6 s: its loss is followed by a reconnection after the
     * first backoff step (1 s), not the grown one (8 s and more). */
    f.hold = true;
    f.hold_ms = 6000;
    size_t before = f.accepts;
    for (int i = 0; i < 200 && f.accepts == before; i++) {
        run_ms(&loop, 100); /* the next attempt: at most 8 s away */
    }
    assert_true(f.accepts == before + 1);
    run_ms(&loop, 6000 + 100);
    assert_false(f.hold); /* held, then closed */
    uint64_t closed = f.closed_at;
    for (int i = 0; i < 50 && f.accepts == before + 1; i++) {
        run_ms(&loop, 100);
    }
    assert_true(f.accepts == before + 2);
    uint64_t gap = f.accepted_at[before + 1 < MAX_ACCEPTS ? before + 1 : 0] - closed;
    fprintf(stderr, "after a 6 s connection: reconnected %llu ms after its loss\n",
            (unsigned long long)gap);
    assert_true(gap <= 2500);

    kvl_uplink_free(up);
    kvl_outbox_free(outbox);
    uv_close((uv_handle_t *)&f.server, NULL);
    run_ms(&loop, 300); /* the fake's last connection closes */
    uv_run(&loop, UV_RUN_DEFAULT);
    kvl_registry_free(reg);
    assert_int_equal(uv_loop_close(&loop), 0);
    kvl_buf_free(&f.welcome);
    kvl_agent_cfg_free(acfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flapping_collector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
