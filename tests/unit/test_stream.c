/*
 * test_stream.c — common/stream.c with both ends in one process: a listening server that
 * accepts streams and a client stream that connects, over 127.0.0.1, plain and with mutual
 * TLS (certificates from tests/tls/make-test-certs.sh in KVL_TLS_CERTS, a ctest fixture).
 * Frames go both ways (bare payloads and pre-framed bytes); an oversized frame ends the
 * receiving stream with "bad frame"; a peer that closes is seen as a clean end; a TLS
 * client the server does not trust ends with a handshake failure. A client's on_connected
 * comes before anything is read (socket options can be set there, the stream closed), and
 * kvl_stream_ended_by names each kind of end. A 5 s timer bounds every case.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "frame.h"
#include "kvl.h"
#include "stream.h"
#include "test_certs.h"
#include "tls.h"

/* One end: what it received, how it ended. */
typedef struct end {
    struct pair *pair;
    kvl_stream_t *s;
    char got[8][64]; /* frames received, as strings */
    int n_got;
    size_t biggest;
    bool ready, ended, closed;
    int end_code;
    kvl_stream_end_t ended_by;
    int connected;        /* on_connected calls */
    bool close_connected; /* the client closes in on_connected */
    char end_why[900];
    const char *say;  /* sent when ready */
    bool also_two;    /* then "one" and "two", pre-framed, in one write */
    bool echo;        /* the server answers every frame with "re:" + it */
    bool close_after; /* the server closes after its first frame */
    size_t oversize;  /* the client sends a frame this big when ready */
} end_t;

typedef struct pair {
    uv_loop_t loop;
    uv_tcp_t server;
    uv_timer_t deadline;
    end_t srv, cli;
    kvl_stream_opts_t srv_opts, cli_opts;
    const kvl_stream_cbs_t *cli_cbs; /* run_pair's client callbacks; NULL: cbs */
    bool timed_out;
} pair_t;

static void on_frame(kvl_stream_t *s, const uint8_t *p, size_t len)
{
    end_t *e = kvl_stream_data(s);
    if (len > e->biggest) {
        e->biggest = len;
    }
    if (e->n_got < 8) {
        snprintf(e->got[e->n_got++], 64, "%.*s", (int)(len < 60 ? len : 60), (const char *)p);
    }
    if (e->echo) {
        char re[80];
        int n = snprintf(re, sizeof(re), "re:%.*s", (int)(len < 60 ? len : 60), (const char *)p);
        assert_int_equal(kvl_stream_write_frame(s, re, (size_t)n), 0);
    }
    if (e->close_after) {
        kvl_stream_close(s);
    }
}

static void send_hello(end_t *e)
{
    if (e->say != NULL) {
        assert_int_equal(kvl_stream_write_frame(e->s, e->say, strlen(e->say)), 0);
    }
    if (e->also_two) {
        /* two frames at once, already framed */
        uint8_t two[2 * KVL_FRAME_HEADER + 6];
        kvl_frame_put_header(two, 3);
        memcpy(two + KVL_FRAME_HEADER, "one", 3);
        kvl_frame_put_header(two + KVL_FRAME_HEADER + 3, 3);
        memcpy(two + 2 * KVL_FRAME_HEADER + 3, "two", 3);
        assert_int_equal(kvl_stream_send(e->s, two, sizeof(two)), 0);
    }
    if (e->oversize > 0) {
        uint8_t *big = calloc(1, e->oversize);
        assert_non_null(big);
        memset(big, 'x', e->oversize);
        assert_int_equal(kvl_stream_write_frame(e->s, big, e->oversize), 0);
        free(big);
    }
}

static void on_ready(kvl_stream_t *s)
{
    end_t *e = kvl_stream_data(s);
    assert_int_equal(kvl_stream_ended_by(s), KVL_STREAM_END_NONE);
    e->ready = true;
    send_hello(e);
}

static void on_end(kvl_stream_t *s, int code, const char *why)
{
    end_t *e = kvl_stream_data(s);
    e->ended = true;
    e->end_code = code;
    e->ended_by = kvl_stream_ended_by(s);
    snprintf(e->end_why, sizeof(e->end_why), "%s", why ? why : "");
    kvl_stream_close(s);
}

static void on_closed(kvl_stream_t *s)
{
    end_t *e = kvl_stream_data(s);
    e->closed = true;
    e->s = NULL;
    pair_t *p = e->pair;
    if (p->srv.closed && p->cli.closed) {
        uv_close((uv_handle_t *)&p->server, NULL);
        uv_timer_stop(&p->deadline);
    }
}

static const kvl_stream_cbs_t cbs = {
    .on_frame = on_frame, .on_ready = on_ready, .on_end = on_end, .on_closed = on_closed};

static void on_connection(uv_stream_t *server, int status)
{
    pair_t *p = server->data;
    assert_int_equal(status, 0);
    char err[256];
    p->srv_opts.data = &p->srv;
    assert_int_equal(kvl_stream_accept(server, &p->srv_opts, &cbs, &p->srv.s, err, sizeof(err)), 0);
    assert_string_not_equal(kvl_stream_peer(p->srv.s), "unknown peer");
    assert_int_equal(kvl_stream_read(p->srv.s, true), 0);
    if (kvl_stream_tls(p->srv.s) == NULL) {
        p->srv.ready = true; /* a plain server stream is ready at once */
        send_hello(&p->srv);
    }
}

static void on_deadline(uv_timer_t *t)
{
    pair_t *p = t->data;
    p->timed_out = true;
    if (p->srv.s != NULL) {
        kvl_stream_close(p->srv.s);
    }
    if (p->cli.s != NULL) {
        kvl_stream_close(p->cli.s);
    }
    uv_close((uv_handle_t *)&p->server, NULL);
}

/* Runs the pair until both streams closed (or the deadline). */
static void run_pair(pair_t *p)
{
    char err[256];
    p->srv.pair = p->cli.pair = p;
    assert_int_equal(uv_loop_init(&p->loop), 0);
    uv_tcp_init(&p->loop, &p->server);
    p->server.data = p;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&p->server, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&p->server, 8, on_connection), 0);
    int len = sizeof(addr);
    uv_tcp_getsockname(&p->server, (struct sockaddr *)&addr, &len);
    uv_timer_init(&p->loop, &p->deadline);
    p->deadline.data = p;
    uv_timer_start(&p->deadline, on_deadline, 5000, 0);
    p->cli_opts.data = &p->cli;
    assert_int_equal(kvl_stream_connect(&p->loop, (const struct sockaddr *)&addr, &p->cli_opts,
                                        p->cli_cbs ? p->cli_cbs : &cbs, &p->cli.s, err,
                                        sizeof(err)),
                     0);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&p->deadline, NULL);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&p->loop), 0);
    assert_false(p->timed_out);
}

static void on_frame_client_counting(kvl_stream_t *s, const uint8_t *p, size_t len);

static const kvl_stream_cbs_t client_cbs = {.on_frame = on_frame_client_counting,
                                            .on_ready = on_ready,
                                            .on_end = on_end,
                                            .on_closed = on_closed};

static void on_frame_client_counting(kvl_stream_t *s, const uint8_t *p, size_t len)
{
    end_t *e = kvl_stream_data(s);
    on_frame(s, p, len);
    if (e->n_got == 3) {
        kvl_stream_stats_t st;
        kvl_stream_stats(s, &st);
        assert_int_equal(st.frames_in, 3);
        assert_int_equal(st.frames_out, 3);
        assert_true(st.bytes_in > 0 && st.bytes_out > 0);
        kvl_stream_close(s);
    }
}

/* run_pair with the client counting its answers. */
static void run_counting(pair_t *p)
{
    p->cli_cbs = &client_cbs;
    run_pair(p);
}

static void test_plain_frames_both_ways(void **state)
{
    (void)state;
    pair_t p = {0};
    p.cli.say = "hello";
    p.cli.also_two = true;
    p.srv.echo = true;
    run_counting(&p);
    assert_int_equal(p.srv.n_got, 3);
    assert_int_equal(p.cli.n_got, 3);
    assert_string_equal(p.cli.got[1], "re:one");
    assert_true(p.srv.ended);
    assert_int_equal(p.srv.end_code, 0);
}

static kvl_tls_ctx_t *ctx(kvl_tls_role_t role, const char *ca, const char *cert, const char *key)
{
    char err[512];
    kvl_tls_ctx_t *c = kvl_tls_ctx_new(role, cert_path(ca), cert ? cert_path(cert) : NULL,
                                       key ? cert_path(key) : NULL, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "%s\n", err);
    }
    assert_non_null(c);
    return c;
}

static void test_tls_frames_both_ways(void **state)
{
    (void)state;
    pair_t p = {0};
    p.srv_opts.tls = ctx(KVL_TLS_SERVER, "ca.crt", "collector.crt", "collector.key");
    p.cli_opts.tls = ctx(KVL_TLS_CLIENT, "ca.crt", "a1.crt", "a1.key");
    p.cli_opts.peer_name = "127.0.0.1";
    p.cli.say = "hello";
    p.cli.also_two = true;
    p.srv.echo = true;
    run_counting(&p);
    assert_true(p.srv.ready && p.cli.ready);
    assert_int_equal(p.srv.n_got, 3);
    assert_string_equal(p.srv.got[0], "hello");
    assert_int_equal(p.cli.n_got, 3);
    assert_string_equal(p.cli.got[2], "re:two");
    /* the client's close_notify, then its end of the stream: a clean end */
    assert_true(p.srv.ended);
    assert_int_equal(p.srv.end_code, 0);
    kvl_tls_ctx_free(p.srv_opts.tls);
    kvl_tls_ctx_free(p.cli_opts.tls);
}

static void test_tls_untrusted_client(void **state)
{
    (void)state;
    pair_t p = {0};
    p.srv_opts.tls = ctx(KVL_TLS_SERVER, "ca.crt", "collector.crt", "collector.key");
    p.cli_opts.tls = ctx(KVL_TLS_CLIENT, "ca.crt", "other/a1.crt", "other/a1.key");
    p.cli_opts.peer_name = "127.0.0.1";
    p.cli.say = "hello";
    run_pair(&p);
    assert_true(p.srv.ended);
    assert_int_equal(p.srv.end_code, KVL_ETLS);
    assert_non_null(strstr(p.srv.end_why, "TLS handshake failed"));
    assert_int_equal(p.srv.n_got, 0);
    assert_true(p.cli.ended);
    assert_true(p.cli.end_code != 0);
    kvl_tls_ctx_free(p.srv_opts.tls);
    kvl_tls_ctx_free(p.cli_opts.tls);
}

/* The server takes at most 100 bytes a frame: the client's 101 end the server's stream
 * before the payload is read; the client sees the server close. */
static void oversize(bool tls)
{
    pair_t p = {0};
    if (tls) {
        p.srv_opts.tls = ctx(KVL_TLS_SERVER, "ca.crt", "collector.crt", "collector.key");
        p.cli_opts.tls = ctx(KVL_TLS_CLIENT, "ca.crt", "a1.crt", "a1.key");
        p.cli_opts.peer_name = "127.0.0.1";
    }
    p.srv_opts.max_frame = 100;
    p.cli.oversize = 101;
    run_pair(&p);
    assert_true(p.srv.ended);
    assert_int_equal(p.srv.end_code, KVL_EFRAME_TOO_BIG);
    assert_non_null(strstr(p.srv.end_why, "bad frame"));
    assert_non_null(strstr(p.srv.end_why, "limit 100 bytes"));
    assert_int_equal(p.srv.n_got, 0);
    assert_true(p.cli.ended); /* the peer's close, seen */
    kvl_tls_ctx_free(p.srv_opts.tls);
    kvl_tls_ctx_free(p.cli_opts.tls);
}

static void test_oversize_refused(void **state)
{
    (void)state;
    oversize(false);
    oversize(true);
}

/* The server closes after the first frame: the client sees a clean end (EOF, or TLS
 * close_notify then EOF). */
static void peer_close(bool tls)
{
    pair_t p = {0};
    if (tls) {
        p.srv_opts.tls = ctx(KVL_TLS_SERVER, "ca.crt", "collector.crt", "collector.key");
        p.cli_opts.tls = ctx(KVL_TLS_CLIENT, "ca.crt", "a1.crt", "a1.key");
        p.cli_opts.peer_name = "127.0.0.1";
    }
    p.cli.say = "bye";
    p.srv.close_after = true;
    run_pair(&p);
    assert_int_equal(p.srv.n_got, 1);
    assert_false(p.srv.ended); /* it closed itself: no on_end */
    assert_true(p.cli.ended);
    assert_int_equal(p.cli.end_code, 0);
    kvl_tls_ctx_free(p.srv_opts.tls);
    kvl_tls_ctx_free(p.cli_opts.tls);
}

static void test_peer_close_seen(void **state)
{
    (void)state;
    peer_close(false);
    peer_close(true);
}

static void test_connect_refused(void **state)
{
    (void)state;
    /* a port nobody listens on: bind one, close it, connect there */
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_tcp_t t;
    uv_tcp_init(&loop, &t);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&t, (const struct sockaddr *)&addr, 0), 0);
    int len = sizeof(addr);
    uv_tcp_getsockname(&t, (struct sockaddr *)&addr, &len);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    pair_t p = {0};
    p.srv.closed = true; /* no server end here */
    p.cli.pair = &p;
    p.cli_opts.data = &p.cli;
    char err[256];
    uv_tcp_init(&loop, &p.server); /* closed by on_closed */
    uv_timer_init(&loop, &p.deadline);
    assert_int_equal(kvl_stream_connect(&loop, (const struct sockaddr *)&addr, &p.cli_opts, &cbs,
                                        &p.cli.s, err, sizeof(err)),
                     0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(p.cli.ended);
    assert_int_equal(p.cli.end_code, UV_ECONNREFUSED);
    assert_non_null(strstr(p.cli.end_why, "cannot connect"));
    assert_true(p.cli.closed);
    uv_close((uv_handle_t *)&p.deadline, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The client's on_connected: TCP is up, nothing read, no TLS session yet, socket options
 * can be set; closing there ends the attempt quietly (on_closed only). */
static void on_connected(kvl_stream_t *s)
{
    end_t *e = kvl_stream_data(s);
    assert_false(e->ready);
    assert_int_equal(kvl_stream_ended_by(s), KVL_STREAM_END_NONE);
    const kvl_tls_t *t = kvl_stream_tls(s);
    if (t != NULL) {
        assert_false(kvl_tls_established(t));
    }
    uv_os_fd_t fd;
    assert_int_equal(uv_fileno((uv_handle_t *)kvl_stream_tcp(s), &fd), 0);
    assert_int_equal(uv_tcp_keepalive(kvl_stream_tcp(s), 1, 60), 0);
    e->connected++;
    if (e->close_connected) {
        kvl_stream_close(s);
    }
}

static const kvl_stream_cbs_t connected_cbs = {.on_frame = on_frame,
                                               .on_ready = on_ready,
                                               .on_end = on_end,
                                               .on_closed = on_closed,
                                               .on_connected = on_connected};

static void connected_first(bool tls)
{
    pair_t p = {0};
    if (tls) {
        p.srv_opts.tls = ctx(KVL_TLS_SERVER, "ca.crt", "collector.crt", "collector.key");
        p.cli_opts.tls = ctx(KVL_TLS_CLIENT, "ca.crt", "a1.crt", "a1.key");
        p.cli_opts.peer_name = "127.0.0.1";
    }
    p.cli_cbs = &connected_cbs;
    p.cli.say = "bye";
    p.srv.close_after = true;
    run_pair(&p);
    assert_int_equal(p.cli.connected, 1);
    assert_true(p.cli.ready);
    assert_int_equal(p.srv.n_got, 1);
    /* the server's close: EOF, or close_notify under TLS */
    assert_true(p.cli.ended);
    assert_int_equal(p.cli.end_code, 0);
    assert_int_equal(p.cli.ended_by, tls ? KVL_STREAM_END_TLS_CLOSE : KVL_STREAM_END_EOF);
    kvl_tls_ctx_free(p.srv_opts.tls);
    kvl_tls_ctx_free(p.cli_opts.tls);
}

static void test_connected_before_ready(void **state)
{
    (void)state;
    connected_first(false);
    connected_first(true);
    /* closed in on_connected: nothing more for the client, a plain EOF for the server */
    pair_t p = {0};
    p.cli_cbs = &connected_cbs;
    p.cli.close_connected = true;
    run_pair(&p);
    assert_int_equal(p.cli.connected, 1);
    assert_false(p.cli.ready);
    assert_false(p.cli.ended);
    assert_true(p.cli.closed);
    assert_true(p.srv.ended);
    assert_int_equal(p.srv.end_code, 0);
    assert_int_equal(p.srv.ended_by, KVL_STREAM_END_EOF);
}

/* Each kind of end, named: a bad frame and a refused handshake at the server, a refused
 * connect at the client (which never saw on_connected). */
static void test_ended_by(void **state)
{
    (void)state;
    pair_t p = {0};
    p.srv_opts.max_frame = 100;
    p.cli.oversize = 101;
    run_pair(&p);
    assert_int_equal(p.srv.ended_by, KVL_STREAM_END_BAD_FRAME);

    pair_t t = {0};
    t.srv_opts.tls = ctx(KVL_TLS_SERVER, "ca.crt", "collector.crt", "collector.key");
    t.cli_opts.tls = ctx(KVL_TLS_CLIENT, "ca.crt", "other/a1.crt", "other/a1.key");
    t.cli_opts.peer_name = "127.0.0.1";
    run_pair(&t);
    assert_int_equal(t.srv.ended_by, KVL_STREAM_END_TLS_HANDSHAKE);
    assert_true(t.cli.ended_by == KVL_STREAM_END_TLS_HANDSHAKE ||
                t.cli.ended_by == KVL_STREAM_END_TLS_SESSION); /* TLS 1.3: after its Finished */
    kvl_tls_ctx_free(t.srv_opts.tls);
    kvl_tls_ctx_free(t.cli_opts.tls);

    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_tcp_t tcp;
    uv_tcp_init(&loop, &tcp);
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&tcp, (const struct sockaddr *)&addr, 0), 0);
    int len = sizeof(addr);
    uv_tcp_getsockname(&tcp, (struct sockaddr *)&addr, &len);
    uv_close((uv_handle_t *)&tcp, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    pair_t r = {0};
    r.srv.closed = true; /* no server end here */
    r.cli.pair = &r;
    r.cli_opts.data = &r.cli;
    char err[256];
    uv_tcp_init(&loop, &r.server); /* closed by on_closed */
    uv_timer_init(&loop, &r.deadline);
    assert_int_equal(kvl_stream_connect(&loop, (const struct sockaddr *)&addr, &r.cli_opts,
                                        &connected_cbs, &r.cli.s, err, sizeof(err)),
                     0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.cli.connected, 0);
    assert_int_equal(r.cli.ended_by, KVL_STREAM_END_CONNECT);
    uv_close((uv_handle_t *)&r.deadline, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    if (test_certs_init() != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_frames_both_ways), cmocka_unit_test(test_tls_frames_both_ways),
        cmocka_unit_test(test_tls_untrusted_client),   cmocka_unit_test(test_oversize_refused),
        cmocka_unit_test(test_peer_close_seen),        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_connected_before_ready), cmocka_unit_test(test_ended_by),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
