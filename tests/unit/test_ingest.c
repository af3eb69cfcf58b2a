/*
 * test_ingest.c — the collector's connection limits (collector/ingest/ingest.h) with raw TCP
 * clients on 127.0.0.x: an agent beyond max_connections is refused at its Hello, one that
 * says nothing after its Hello is closed after idle_timeout, one that never says Hello
 * after handshake_timeout; connections before their Hello beyond max_handshakes (or
 * max_handshakes_per_address) close the oldest with the least progress; each counted.
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
#include "ingest_internal.h"
#include "log.h"
#include "timeutil.h"
#include "wire.h"

typedef struct client {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr, wr2;
    kvl_buf_t hello;
    size_t send_first; /* bytes of the hello sent at once (0: all) */
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
        size_t n = c->send_first ? c->send_first : c->hello.len;
        uv_buf_t b = uv_buf_init((char *)c->hello.data, (unsigned)n);
        uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, NULL);
    }
    uv_read_start((uv_stream_t *)&c->tcp, c_alloc, c_read);
}

/* A client from address `from` (127.0.0.x) sending the first `first` bytes of a Hello
 * (0: all of it; no agent id: nothing). */
static void client_start_from(uv_loop_t *loop, client_t *c, int port, const char *agent_id,
                              const char *from, size_t first)
{
    memset(c, 0, sizeof(*c));
    c->send_first = first;
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
    struct sockaddr_in local;
    uv_ip4_addr(from, 0, &local);
    assert_int_equal(uv_tcp_bind(&c->tcp, (const struct sockaddr *)&local, 0), 0);
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", port, &sa);
    assert_int_equal(uv_tcp_connect(&c->conn, &c->tcp, (const struct sockaddr *)&sa, c_connected),
                     0);
}

static void client_start(uv_loop_t *loop, client_t *c, int port, const char *agent_id)
{
    client_start_from(loop, c, port, agent_id, "127.0.0.1", 0);
}

/* The rest of a Hello begun with send_first. */
static void client_send_rest(client_t *c)
{
    uv_buf_t b = uv_buf_init((char *)c->hello.data + c->send_first,
                             (unsigned)(c->hello.len - c->send_first));
    assert_int_equal(uv_write(&c->wr2, (uv_stream_t *)&c->tcp, &b, 1, NULL), 0);
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
             "max_connections: 1\nidle_timeout: 2s\nhandshake_timeout: 500ms\n",
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
    client_start(&loop, &third, port, "agent-third"); /* one agent too many */
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

/* max_handshakes 3, 2 per address: which connection before its Hello makes room. */
static void test_handshake_slots(void **state)
{
    (void)state;
    char dir[64], err[512], text[512];
    snprintf(dir, sizeof(dir), "/tmp/kvl-ingest-XXXXXX");
    assert_non_null(mkdtemp(dir));
    uv_loop_t loop;
    uv_loop_init(&loop);
    snprintf(text, sizeof(text),
             "listen: 127.0.0.1:1\ndata_dir: %s\nlog_level: error\ninsecure: true\n"
             "max_handshakes: 3\nmax_handshakes_per_address: 2\nhandshake_timeout: 30s\n",
             dir);
    kvl_collector_cfg_t *cfg = kvl_collector_cfg_parse("collector.yaml", text, err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->max_handshakes, 3);
    assert_int_equal(cfg->max_handshakes_per_address, 2);
    cfg->listen_port = 0;
    kvl_sinks_t sinks = {0};
    kvl_ingest_t *in = NULL;
    assert_int_equal(kvl_ingest_new(&loop, cfg, &sinks, &in, err, sizeof(err)), 0);
    int port = kvl_ingest_port(in);

    client_t a, b, c, d, e, f;
    client_start_from(&loop, &a, port, "agent-a", "127.0.0.1", 3); /* a Hello under way */
    run_ms(&loop, 100);
    client_start_from(&loop, &b, port, NULL, "127.0.0.1", 0); /* silent */
    run_ms(&loop, 100);
    /* A third from 127.0.0.1: its address is full; the silent one goes, not the older a. */
    client_start_from(&loop, &c, port, NULL, "127.0.0.1", 0);
    run_ms(&loop, 200);
    assert_true(b.closed_by_peer);
    assert_false(a.closed_by_peer);
    assert_false(c.closed_by_peer);
    kvl_ingest_stats_t s;
    kvl_ingest_stats(in, &s);
    assert_int_equal(s.handshakes_dropped_address, 1);
    assert_int_equal(s.handshakes_dropped, 0);

    /* Two more from other addresses: the third slot, then all are full: the oldest silent
     * one (c) goes, a (under way, older) stays. */
    client_start_from(&loop, &d, port, NULL, "127.0.0.2", 0);
    run_ms(&loop, 100);
    client_start_from(&loop, &e, port, NULL, "127.0.0.3", 0);
    run_ms(&loop, 200);
    assert_true(c.closed_by_peer);
    assert_false(a.closed_by_peer);
    assert_false(d.closed_by_peer);
    assert_false(e.closed_by_peer);
    kvl_ingest_stats(in, &s);
    assert_int_equal(s.handshakes_dropped, 1);

    /* a's Hello completes: it leaves the handshake slots, so f fits without evicting. */
    client_send_rest(&a);
    run_ms(&loop, 200);
    client_start_from(&loop, &f, port, NULL, "127.0.0.4", 0);
    run_ms(&loop, 200);
    assert_false(a.closed_by_peer);
    assert_false(d.closed_by_peer);
    assert_false(e.closed_by_peer);
    assert_false(f.closed_by_peer);
    kvl_ingest_stats(in, &s);
    assert_int_equal(s.handshakes_dropped, 1);
    assert_int_equal(s.handshakes_dropped_address, 1);
    assert_int_equal(s.connections, 6);
    assert_int_equal(s.protocol_errors, 0);

    client_end(&a);
    client_end(&b);
    client_end(&c);
    client_end(&d);
    client_end(&e);
    client_end(&f);
    kvl_ingest_free(in);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    kvl_collector_cfg_free(cfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The lines a peer can repeat: a limiter per key up to LOG_KEYS keys, then a shared one;
 * each lets LOG_LIMIT_BURST lines through per interval. */
static void test_log_keys(void **state)
{
    (void)state;
    kvl_ingest_t *in = calloc(1, sizeof(*in));
    assert_non_null(in);
    uint64_t now = (uint64_t)kvl_now_ms(), left = 0; /* the limiters' clock */
    char key[32];
    kvl_log_limit_t *first = NULL;
    for (int i = 0; i < LOG_KEYS; i++) {
        snprintf(key, sizeof(key), "key %d", i);
        kvl_log_limit_t *l = ingest_log_limit(in, key);
        assert_ptr_not_equal(l, &in->log.other);
        assert_true(kvl_log_limit_pass(l, now, &left)); /* a line now: the slot is busy */
        first = first != NULL ? first : l;
    }
    assert_ptr_equal(ingest_log_limit(in, "key 0"), first); /* the same key, the same one */
    /* One key more than there are slots, all busy: the shared limiter. */
    kvl_log_limit_t *extra = ingest_log_limit(in, "one too many");
    assert_ptr_equal(extra, &in->log.other);
    for (int i = 0; i < LOG_LIMIT_BURST; i++) {
        assert_true(kvl_log_limit_pass(extra, now + (uint64_t)i, &left));
    }
    assert_false(kvl_log_limit_pass(extra, now + 100, &left));
    /* A slot idle for an interval goes to a new key. */
    first->last_ms = now - LOG_LIMIT_MS;
    kvl_log_limit_t *reused = ingest_log_limit(in, "a new one");
    assert_ptr_equal(reused, first);
    assert_true(kvl_log_limit_pass(reused, now, &left));
    assert_ptr_equal(ingest_log_limit(in, "key 0"), &in->log.other); /* its slot is gone */
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_handshake_slots),
        cmocka_unit_test(test_log_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
