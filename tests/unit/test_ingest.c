/*
 * test_ingest.c — the collector's connection limits (collector/ingest/ingest.h) with raw TCP
 * clients on 127.0.0.1: a connection beyond max_connections is closed at once, one that
 * says nothing after its Hello is closed after idle_timeout, one that never says Hello
 * after handshake_timeout; each counted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "collector_config.h"
#include "ingest.h"
#include "log.h"
#include "wire.h"

typedef struct client {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    kvl_buf_t hello;
    bool connected;
    bool closed_by_peer;
    uint64_t closed_at;
} client_t;

static void c_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    (void)n;
    static char buf[4096];
    *b = uv_buf_init(buf, sizeof(buf));
}

static void c_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    client_t *c = s->data;
    if (n < 0 && !c->closed_by_peer) {
        c->closed_by_peer = true;
        c->closed_at = uv_now(s->loop);
        uv_close((uv_handle_t *)s, NULL);
    }
}

static void c_connected(uv_connect_t *req, int status)
{
    client_t *c = req->data;
    assert_int_equal(status, 0);
    c->connected = true;
    if (c->hello.len > 0) {
        uv_buf_t b = uv_buf_init((char *)c->hello.data, (unsigned)c->hello.len);
        uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, NULL);
    }
    uv_read_start((uv_stream_t *)&c->tcp, c_alloc, c_read);
}

static void client_start(uv_loop_t *loop, client_t *c, int port, const char *agent_id)
{
    memset(c, 0, sizeof(*c));
    if (agent_id != NULL) {
        kvl_msg_t m = {.type = KVL_MSG_HELLO};
        m.u.hello = (kvl_hello_t){.protocol = KVL_PROTOCOL_VERSION,
                                  .agent_id = agent_id,
                                  .version = "test",
                                  .site = "lab"};
        assert_int_equal(kvl_wire_encode(&m, &c->hello), 0);
    }
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->conn.data = c;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    assert_int_equal(uv_tcp_connect(&c->conn, &c->tcp, (const struct sockaddr *)&sa, c_connected),
                     0);
}

static void client_end(client_t *c)
{
    if (!c->closed_by_peer) {
        uv_close((uv_handle_t *)&c->tcp, NULL);
    }
    kvl_buf_free(&c->hello);
}

static void run_ms(uv_loop_t *loop, uint64_t ms)
{
    uint64_t end = uv_now(loop) + ms;
    while (uv_now(loop) < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        uv_sleep(5);
        uv_update_time(loop);
    }
}

static void test_limits(void **state)
{
    (void)state;
    char dir[64], err[512], text[512];
    snprintf(dir, sizeof(dir), "/tmp/kvl-ingest-XXXXXX");
    assert_non_null(mkdtemp(dir));
    uv_loop_t loop;
    uv_loop_init(&loop);
    snprintf(text, sizeof(text),
             "listen: 127.0.0.1:1\ndata_dir: %s\nlog_level: error\ninsecure: true\n"
             "max_connections: 2\nidle_timeout: 2s\nhandshake_timeout: 500ms\n",
             dir);
    kvl_collector_cfg_t *cfg = kvl_collector_cfg_parse("collector.yaml", text, err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->idle_timeout_ms, 2000);
    assert_int_equal(cfg->handshake_timeout_ms, 500);
    cfg->listen_port = 0;
    kvl_sinks_t sinks = {0}; /* no batches here: no sink */
    kvl_ingest_t *in = NULL;
    assert_int_equal(kvl_ingest_new(&loop, cfg, &sinks, &in, err, sizeof(err)), 0);
    int port = kvl_ingest_port(in);

    client_t quiet, mute, third;
    client_start(&loop, &quiet, port, "agent-quiet"); /* hello, then nothing */
    client_start(&loop, &mute, port, NULL);           /* never a hello */
    run_ms(&loop, 200);
    client_start(&loop, &third, port, "agent-third"); /* one too many */
    run_ms(&loop, 200);
    assert_true(third.closed_by_peer);
    assert_false(quiet.closed_by_peer);
    assert_false(mute.closed_by_peer);
    run_ms(&loop, 600);
    assert_true(mute.closed_by_peer); /* handshake_timeout */
    assert_false(quiet.closed_by_peer);
    /* idle_timeout: the idle check runs on a timer, so wait for it (at most 5 s) rather than
     * a fixed time a loaded machine may overrun */
    for (int i = 0; i < 50 && !quiet.closed_by_peer; i++) {
        run_ms(&loop, 100);
    }
    assert_true(quiet.closed_by_peer);
    assert_true(quiet.closed_at - mute.closed_at >= 300);

    kvl_ingest_stats_t s;
    kvl_ingest_stats(in, &s);
    assert_int_equal(s.connections, 3);
    assert_int_equal(s.connections_refused, 1);
    assert_int_equal(s.idle_closed, 1);

    client_end(&quiet);
    client_end(&mute);
    client_end(&third);
    kvl_ingest_free(in);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    kvl_collector_cfg_free(cfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
