/*
 * test_tls.c — common/tls.c with both ends in one process: a server and a client session
 * on one libuv loop, over a real TCP connection on 127.0.0.1. Certificates are made at
 * test time by tests/tls/make-test-certs.sh into the folder named by KVL_TLS_CERTS (ctest
 * runs it first, as a fixture).
 *
 * Each end feeds what it reads into its session and writes what the session has; once its
 * handshake is done it sends one message. A failing end closes its socket, so the other
 * sees the alert or the end of the stream. A 5 s timer bounds every case.
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

#include "buf.h"
#include "kvl.h"
#include "test_certs.h"
#include "tls.h"

typedef struct end {
    uv_tcp_t tcp;
    kvl_tls_t *tls;
    kvl_buf_t plain;
    const char *say; /* sent once established */
    int rc;          /* first failure: KVL_ETLS, KVL_ECLOSED, or a libuv code */
    char err[800];
    char peer_id[256];
    char describe[96];
    bool established;
    bool open;
} end_t;

typedef struct pair {
    uv_loop_t loop;
    uv_tcp_t server;
    uv_timer_t deadline;
    end_t srv, cli;
    uv_connect_t connect;
    kvl_tls_ctx_t *srv_ctx;
    kvl_tls_ctx_t *cli_ctx;
    const char *server_name;
} pair_t;

static void on_write(uv_write_t *req, int status)
{
    KVL_UNUSED(status);
    free(req);
}

static void flush(end_t *e)
{
    kvl_buf_t out = {0};
    assert_int_equal(kvl_tls_take_output(e->tls, &out), 0);
    if (out.len > 0 && e->open) {
        uv_write_t *req = malloc(sizeof(*req) + out.len);
        assert_non_null(req);
        memcpy(req + 1, out.data, out.len);
        uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned int)out.len);
        if (uv_write(req, (uv_stream_t *)&e->tcp, &b, 1, on_write) != 0) {
            free(req);
        }
    }
    kvl_buf_free(&out);
}

static void end_close(end_t *e)
{
    if (e->open) {
        e->open = false;
        uv_close((uv_handle_t *)&e->tcp, NULL);
    }
}

static void fail_end(end_t *e, int rc)
{
    if (e->rc == 0) {
        e->rc = rc;
        snprintf(e->err, sizeof(e->err), "%s",
                 rc == KVL_ETLS ? kvl_tls_error(e->tls) : kvl_strerror(rc));
    }
    end_close(e);
}

static void after_input(end_t *e, bool was_established)
{
    flush(e);
    if (!was_established && kvl_tls_established(e->tls)) {
        e->established = true;
        const char *id = kvl_tls_peer_id(e->tls);
        snprintf(e->peer_id, sizeof(e->peer_id), "%s", id ? id : "");
        snprintf(e->describe, sizeof(e->describe), "%s", kvl_tls_describe(e->tls));
        if (e->say != NULL) {
            assert_int_equal(kvl_tls_write(e->tls, e->say, strlen(e->say)), 0);
            flush(e);
        }
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    KVL_UNUSED(h);
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    end_t *e = s->data;
    if (nread < 0) {
        free(buf->base);
        fail_end(e, (int)nread);
        return;
    }
    bool was = kvl_tls_established(e->tls);
    int rc = kvl_tls_feed(e->tls, buf->base, (size_t)nread, &e->plain);
    free(buf->base);
    if (rc != 0) {
        flush(e); /* the alert telling the peer why */
        fail_end(e, rc);
        return;
    }
    after_input(e, was);
}

static void on_connection(uv_stream_t *server, int status)
{
    pair_t *p = server->data;
    assert_int_equal(status, 0);
    end_t *e = &p->srv;
    uv_tcp_init(&p->loop, &e->tcp);
    e->tcp.data = e;
    e->open = true;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&e->tcp), 0);
    e->tls = kvl_tls_new(p->srv_ctx, NULL);
    assert_non_null(e->tls);
    uv_read_start((uv_stream_t *)&e->tcp, on_alloc, on_read);
    uv_close((uv_handle_t *)&p->server, NULL); /* one connection per case */
}

static void on_connect(uv_connect_t *req, int status)
{
    pair_t *p = req->data;
    end_t *e = &p->cli;
    assert_int_equal(status, 0);
    e->tls = kvl_tls_new(p->cli_ctx, p->server_name);
    assert_non_null(e->tls);
    /* Nothing may be sent before the handshake. */
    assert_int_equal(kvl_tls_write(e->tls, "x", 1), KVL_EINVAL);
    int rc = kvl_tls_handshake(e->tls);
    assert_int_equal(rc, 0);
    flush(e);
    uv_read_start((uv_stream_t *)&e->tcp, on_alloc, on_read);
}

static void on_deadline(uv_timer_t *t)
{
    pair_t *p = t->data;
    end_close(&p->srv);
    end_close(&p->cli);
    if (!uv_is_closing((uv_handle_t *)&p->server)) {
        uv_close((uv_handle_t *)&p->server, NULL);
    }
    uv_close((uv_handle_t *)t, NULL);
}

/* Both ends done: each has failed, or has both sent and received its message. */
static void on_check(uv_timer_t *t)
{
    pair_t *p = t->data;
    bool srv_done = p->srv.rc != 0 || (p->srv.established && p->srv.plain.len > 0);
    bool cli_done = p->cli.rc != 0 || (p->cli.established && p->cli.plain.len > 0);
    if (srv_done && cli_done) {
        uv_timer_stop(&p->deadline);
        on_deadline(&p->deadline);
        uv_close((uv_handle_t *)t, NULL);
    }
}

/* Runs one connection: the collector side with collector.crt, the agent side with the
 * given certificate and key (NULL: none), verifying the collector as `server_name`. */
static void run_pair(pair_t *p, const char *cli_cert, const char *cli_key, const char *server_name)
{
    char err[512];
    memset(p, 0, sizeof(*p));
    p->srv_ctx = kvl_tls_ctx_new(KVL_TLS_SERVER, cert_path("ca.crt"), cert_path("collector.crt"),
                                 cert_path("collector.key"), err, sizeof(err));
    if (p->srv_ctx == NULL) {
        fail_msg("server context: %s", err);
    }
    p->cli_ctx =
        kvl_tls_ctx_new(KVL_TLS_CLIENT, cert_path("ca.crt"), cli_cert, cli_key, err, sizeof(err));
    if (p->cli_ctx == NULL) {
        fail_msg("client context: %s", err);
    }
    p->server_name = server_name;
    p->srv.say = "from the collector";
    p->cli.say = "from the agent";
    assert_int_equal(uv_loop_init(&p->loop), 0);
    uv_tcp_init(&p->loop, &p->server);
    p->server.data = p;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_bind(&p->server, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&p->server, 4, on_connection), 0);
    int len = sizeof(addr);
    uv_tcp_getsockname(&p->server, (struct sockaddr *)&addr, &len);

    uv_tcp_init(&p->loop, &p->cli.tcp);
    p->cli.tcp.data = &p->cli;
    p->cli.open = true;
    p->connect.data = p;
    assert_int_equal(
        uv_tcp_connect(&p->connect, &p->cli.tcp, (const struct sockaddr *)&addr, on_connect), 0);
    uv_timer_t check;
    uv_timer_init(&p->loop, &p->deadline);
    uv_timer_init(&p->loop, &check);
    p->deadline.data = check.data = p;
    uv_timer_start(&p->deadline, on_deadline, 5000, 0);
    uv_timer_start(&check, on_check, 10, 10);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    if (!uv_is_closing((uv_handle_t *)&check)) {
        uv_close((uv_handle_t *)&check, NULL);
        uv_run(&p->loop, UV_RUN_DEFAULT);
    }
    assert_int_equal(uv_loop_close(&p->loop), 0);
}

static void pair_free(pair_t *p)
{
    kvl_tls_free(p->srv.tls);
    kvl_tls_free(p->cli.tls);
    kvl_buf_free(&p->srv.plain);
    kvl_buf_free(&p->cli.plain);
    kvl_tls_ctx_free(p->srv_ctx);
    kvl_tls_ctx_free(p->cli_ctx);
}

static void assert_contains(const char *text, const char *part)
{
    if (strstr(text, part) == NULL) {
        fail_msg("expected '%s' in '%s'", part, text);
    }
}

static bool plain_is(const kvl_buf_t *b, const char *s)
{
    return b->len == strlen(s) && memcmp(b->data, s, b->len) == 0;
}

static void test_good(void **state)
{
    KVL_UNUSED(state);
    pair_t p;
    run_pair(&p, cert_path("a1.crt"), cert_path("a1.key"), "127.0.0.1");
    assert_int_equal(p.srv.rc, 0);
    assert_int_equal(p.cli.rc, 0);
    assert_true(p.srv.established && p.cli.established);
    assert_true(plain_is(&p.srv.plain, "from the agent"));
    assert_true(plain_is(&p.cli.plain, "from the collector"));
    assert_string_equal(p.srv.peer_id, "a1"); /* the agent's identity: its CN */
    assert_contains(p.srv.describe, "TLSv1.3");
    assert_contains(kvl_tls_ctx_subject(p.srv_ctx), "CN=127.0.0.1");
    pair_free(&p);

    /* By DNS name too (the collector certificate names localhost). */
    run_pair(&p, cert_path("a2.crt"), cert_path("a2.key"), "localhost");
    assert_int_equal(p.srv.rc, 0);
    assert_int_equal(p.cli.rc, 0);
    assert_string_equal(p.srv.peer_id, "a2");
    pair_free(&p);
}

static void test_other_ca(void **state)
{
    KVL_UNUSED(state);
    pair_t p;
    run_pair(&p, cert_path("other/a1.crt"), cert_path("other/a1.key"), "127.0.0.1");
    assert_int_equal(p.srv.rc, KVL_ETLS);
    assert_false(p.srv.established);
    assert_contains(p.srv.err, "certificate 'CN=a1,O=kaaval'");
    assert_contains(p.srv.err, "not signed by the configured CA");
    assert_int_equal(p.srv.plain.len, 0);
    assert_int_not_equal(p.cli.rc, 0);
    if (p.cli.rc == KVL_ETLS) {
        assert_contains(p.cli.err, "unknown CA");
    }
    assert_int_equal(p.cli.plain.len, 0);
    pair_free(&p);
}

static void test_no_client_cert(void **state)
{
    KVL_UNUSED(state);
    pair_t p;
    run_pair(&p, NULL, NULL, "127.0.0.1");
    assert_int_equal(p.srv.rc, KVL_ETLS);
    assert_contains(p.srv.err, "the peer sent no certificate");
    assert_int_equal(p.srv.plain.len, 0);
    assert_int_not_equal(p.cli.rc, 0);
    if (p.cli.rc == KVL_ETLS) {
        assert_contains(p.cli.err, "certificate required");
    }
    pair_free(&p);
}

static void test_expired(void **state)
{
    KVL_UNUSED(state);
    pair_t p;
    run_pair(&p, cert_path("expired/a1.crt"), cert_path("expired/a1.key"), "127.0.0.1");
    assert_int_equal(p.srv.rc, KVL_ETLS);
    assert_contains(p.srv.err, "certificate has expired");
    assert_contains(p.srv.err, "2020");
    assert_int_equal(p.srv.plain.len, 0);
    if (p.cli.rc == KVL_ETLS) {
        assert_contains(p.cli.err, "certificate expired");
    }
    pair_free(&p);
}

static void test_wrong_server_name(void **state)
{
    KVL_UNUSED(state);
    pair_t p;
    run_pair(&p, cert_path("a1.crt"), cert_path("a1.key"), "collector.example");
    assert_int_equal(p.cli.rc, KVL_ETLS);
    assert_contains(p.cli.err, "hostname mismatch");
    assert_false(p.cli.established);
    assert_int_equal(p.srv.plain.len, 0);
    pair_free(&p);
    run_pair(&p, cert_path("a1.crt"), cert_path("a1.key"), "127.0.0.2");
    assert_int_equal(p.cli.rc, KVL_ETLS);
    assert_contains(p.cli.err, "IP address mismatch");
    pair_free(&p);
}

static void test_bad_files(void **state)
{
    KVL_UNUSED(state);
    char err[512];
    kvl_tls_ctx_t *c =
        kvl_tls_ctx_new(KVL_TLS_SERVER, cert_path("missing.crt"), cert_path("collector.crt"),
                        cert_path("collector.key"), err, sizeof(err));
    assert_null(c);
    assert_contains(err, "missing.crt");
    c = kvl_tls_ctx_new(KVL_TLS_SERVER, cert_path("ca.crt"), cert_path("collector.crt"),
                        cert_path("a1.key"), err, sizeof(err));
    assert_null(c);
    assert_contains(err, "a1.key");
    assert_contains(err, "does not belong to the certificate");
}

int main(void)
{
    if (test_certs_init() != 0) {
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_other_ca),
        cmocka_unit_test(test_no_client_cert),
        cmocka_unit_test(test_expired),
        cmocka_unit_test(test_wrong_server_name),
        cmocka_unit_test(test_bad_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
