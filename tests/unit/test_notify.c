/*
 * test_notify.c — the notifiers' outbox (collector/alerts/notify.h) against a small HTTP
 * receiver run on the test's own loop (a libuv TCP stub answering 200, 503 or 400):
 * delivery in order with the webhook's HMAC signature (and with a body template), retry
 * after failures in the same order, a notification refused for good (HTTP 400) dropped
 * without holding back the next, the bound dropping the oldest (counted), a restart
 * resending only what was not confirmed (and surviving a torn tail), segments rolled over,
 * read back in order and deleted once delivered, the exec receiver's
 * environment, stdin, failure and timeout, Alertmanager's resend, the e-mail subject's
 * bound, and the `receivers:` configuration's errors; the SNMP receiver's PDUs
 * (kaavalDeviceDown/Up from a device event's fields, kaavalAlertFiring otherwise), its USM
 * keys against RFC 3414's vectors, an SNMPv3 round trip (discovery Report, authenticated
 * and encrypted Response, a tampered one ignored, a wrong-digest Report refused) and its
 * SNMPv3 configuration errors.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "crc32c.h"
#include "hmac.h"
#include "kvl.h"
#include "newer_format.h"
#include "notify.h"
#include "notify_config.h"
#include "notify_int.h"
#include "notify_snmp.h"
#include "rules.h"

#define MAX_REQ 256

/* ---- the stub HTTP receiver ---------------------------------------------------------------- */

typedef struct stub {
    uv_tcp_t srv;
    bool listening;
    int port;
    int fail_first;  /* answer 503 to this many requests first */
    int fail_status; /* or this status (0: 503) */
    int requests;
    int n; /* requests answered 200 */
    char *bodies[MAX_REQ];
    char sigs[MAX_REQ][80];
    int open_conns;
} stub_t;

typedef struct conn {
    uv_tcp_t tcp;
    stub_t *s;
    char buf[1 << 16];
    size_t len;
    bool answered;
    uv_write_t wr;
} conn_t;

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    c->s->open_conns--;
    free(c);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    conn_t *c = w->data;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    (void)hint;
    conn_t *c = h->data;
    *b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - 1 - c->len));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    (void)b;
    conn_t *c = st->data;
    if (nread < 0) {
        if (!uv_is_closing((uv_handle_t *)&c->tcp)) {
            uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        }
        return;
    }
    c->len += (size_t)nread;
    c->buf[c->len] = '\0';
    char *end = strstr(c->buf, "\r\n\r\n");
    if (end == NULL || c->answered) {
        return;
    }
    size_t clen = 0;
    for (char *p = c->buf; p && p < end; p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL) {
        if (strncasecmp(p, "Content-Length:", 15) == 0) {
            clen = strtoul(p + 15, NULL, 10);
        }
    }
    char *body = end + 4;
    if ((size_t)(c->buf + c->len - body) < clen) {
        return;
    }
    stub_t *s = c->s;
    c->answered = true;
    s->requests++;
    const char *answer = "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    if (s->fail_status == 400) {
        answer = "HTTP/1.1 400 Bad Request\r\nContent-Length: 22\r\nConnection: close\r\n\r\n"
                 "bad alert\r\nno startsAt";
    }
    if (s->requests > s->fail_first && s->n < MAX_REQ) {
        answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        s->bodies[s->n] = strndup(body, clen);
        s->sigs[s->n][0] = '\0';
        char *sig = strcasestr(c->buf, "X-Kaaval-Signature: ");
        if (sig != NULL && sig < end) {
            sscanf(sig + 20, "%79s", s->sigs[s->n]);
        }
        s->n++;
    }
    uv_buf_t w = uv_buf_init((char *)answer, (unsigned)strlen(answer));
    c->wr.data = c;
    uv_write(&c->wr, st, &w, 1, on_written);
}

static void on_connection(uv_stream_t *srv, int status)
{
    stub_t *s = srv->data;
    assert_int_equal(status, 0);
    conn_t *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->s = s;
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    s->open_conns++;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)&c->tcp), 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Listens on port (0: any free one; s->port tells). */
static void stub_listen(uv_loop_t *loop, stub_t *s, int port)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    uv_tcp_init(loop, &s->srv);
    s->srv.data = s;
    assert_int_equal(uv_tcp_bind(&s->srv, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->srv, 16, on_connection), 0);
    struct sockaddr_storage got;
    int len = sizeof(got);
    uv_tcp_getsockname(&s->srv, (struct sockaddr *)&got, &len);
    s->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
    s->listening = true;
}

static void stub_close(stub_t *s)
{
    if (s->listening) {
        uv_close((uv_handle_t *)&s->srv, NULL);
        s->listening = false;
    }
}

static void stub_clear(stub_t *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->bodies[i]);
        s->bodies[i] = NULL;
    }
    s->n = 0;
    s->requests = 0;
}

/* A port nothing listens on (for a while): bound, then closed. */
static int free_port(uv_loop_t *loop)
{
    stub_t s = {0};
    stub_listen(loop, &s, 0);
    stub_close(&s);
    uv_run(loop, UV_RUN_NOWAIT);
    return s.port;
}

/* ---- helpers ------------------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond(ctx) or timeout_ms; returns cond's last value. */
static bool run_until(uv_loop_t *loop, bool (*cond)(void *), void *ctx, uint64_t timeout_ms)
{
    uv_timer_t tick;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 20, 20);
    uv_update_time(loop);
    uint64_t until = uv_now(loop) + timeout_ms;
    bool ok = cond(ctx);
    while (!ok && uv_now(loop) < until) {
        uv_run(loop, UV_RUN_ONCE);
        ok = cond(ctx);
    }
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return ok;
}

static bool never(void *ctx)
{
    (void)ctx;
    return false;
}

static void run_for(uv_loop_t *loop, uint64_t ms)
{
    run_until(loop, never, NULL, ms);
}

typedef struct want {
    stub_t *s;
    int n;
} want_t;

static bool stub_has(void *ctx)
{
    want_t *w = ctx;
    return w->s->n >= w->n;
}

static void close_all(uv_loop_t *loop, kvl_notify_t *n, stub_t *s)
{
    kvl_notify_free(n);
    if (s) {
        stub_close(s);
    }
    for (int i = 0; i < 200 && uv_loop_alive(loop); i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
    assert_int_equal(uv_loop_alive(loop), 0);
    if (s) {
        stub_clear(s);
    }
}

static char *tmp_dir(void)
{
    char *d = strdup("/tmp/kvl-test-notify-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void rm_rf(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static kvl_notify_cfg_t *cfg_text(const char *text)
{
    char err[512] = "";
    kvl_notify_cfg_t *c = kvl_notify_cfg_parse_text("c.yaml", text, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "config: %s\n", err);
    }
    assert_non_null(c);
    return c;
}

static kvl_notify_cfg_t *webhook_cfg(int port, const char *extra)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "receivers:\n"
             "  - name: hook\n"
             "    type: webhook\n"
             "    url: http://127.0.0.1:%d/hook\n"
             "    secret: k3y\n"
             "    timeout: 5s\n%s",
             port, extra ? extra : "");
    return cfg_text(text);
}

static kvl_notify_t *open_notify(uv_loop_t *loop, const kvl_notify_cfg_t *c, const char *dir)
{
    char err[512] = "";
    kvl_notify_t *n = NULL;
    int rc = kvl_notify_new(loop, c, dir, &n, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "kvl_notify_new: %s\n", err);
    }
    assert_int_equal(rc, 0);
    return n;
}

/* Queues one device_down alert for "rtr<i>" with group key "g<i>", firing or resolved. */
static void enqueue_status(kvl_notify_t *n, const char *receiver, int i, const char *pad,
                           kvl_alert_status_t status)
{
    char device[64], key[32];
    snprintf(device, sizeof(device), "rtr%d", i);
    snprintf(key, sizeof(key), "g%d", i);
    kvl_alert_t a = {
        .status = status,
        .severity = KVL_RULE_SEV_CRITICAL,
        .rule = "device_down",
        .labels = {{"alertname", "device_down"},
                   {"severity", "critical"},
                   {"site", "DHQ-Kollam"},
                   {"device", device}},
        .n_labels = 4,
        .summary = pad ? pad : "device rtr is not answering",
        .active_at_ms = 1764945000000,
        .starts_at_ms = 1764945000000,
        .changed_ms = 1764945001000,
        .ends_at_ms = status == KVL_ALERT_RESOLVED ? 1764945060000 : 0,
    };
    assert_int_equal(kvl_alert_finish(&a), 0);
    const kvl_alert_t *ap = &a;
    kvl_notification_t nt = {.receiver = receiver, .group_key = key, .alerts = &ap, .n_alerts = 1};
    assert_int_equal(kvl_notify_enqueue(n, &nt), 0);
}

static void enqueue(kvl_notify_t *n, const char *receiver, int i, const char *pad)
{
    enqueue_status(n, receiver, i, pad, KVL_ALERT_FIRING);
}

static int body_index(const char *body)
{
    const char *g = strstr(body, "\"group_key\":\"g");
    assert_non_null(g);
    return atoi(g + 14);
}

/* ---- tests --------------------------------------------------------------------------------- */

/* A loop, a stub receiver on a free port, a webhook receiver "hook" for it (the
 * configuration returned) and a new temporary state folder (*dir). */
static kvl_notify_cfg_t *hook_start(uv_loop_t *loop, stub_t *s, char **dir)
{
    uv_loop_init(loop);
    memset(s, 0, sizeof(*s));
    stub_listen(loop, s, 0);
    *dir = tmp_dir();
    return webhook_cfg(s->port, NULL);
}

static void test_order_and_signature(void **state)
{
    (void)state;
    uv_loop_t loop;
    stub_t s;
    char *dir;
    kvl_notify_cfg_t *c = hook_start(&loop, &s, &dir);
    kvl_notify_t *n = open_notify(&loop, c, dir);
    assert_true(kvl_notify_has_receiver(n, "hook"));
    assert_false(kvl_notify_has_receiver(n, "nobody"));
    kvl_notification_t bad = {.receiver = "nobody", .group_key = "g", .n_alerts = 1};
    assert_int_equal(kvl_notify_enqueue(n, &bad), KVL_EINVAL);
    for (int i = 1; i <= 5; i++) {
        enqueue(n, "hook", i, NULL);
    }
    want_t w = {&s, 5};
    assert_true(run_until(&loop, stub_has, &w, 20000));
    for (int i = 0; i < 5; i++) {
        assert_int_equal(body_index(s.bodies[i]), i + 1);
        char hex[2 * KVL_HMAC_SHA256_LEN + 1], want[80];
        kvl_hmac_sha256_hex("k3y", 3, s.bodies[i], strlen(s.bodies[i]), hex);
        snprintf(want, sizeof(want), "sha256=%s", hex);
        assert_string_equal(s.sigs[i], want);
        assert_non_null(strstr(s.bodies[i], "\"receiver\":\"hook\""));
        assert_non_null(strstr(s.bodies[i], "\"status\":\"firing\""));
    }
    run_for(&loop, 100);
    kvl_notify_stats_t st;
    kvl_notify_stats(n, &st);
    assert_int_equal(st.queued, 5);
    assert_int_equal(st.delivered, 5);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(s.n, 5); /* nothing twice */
    close_all(&loop, n, &s);
    kvl_notify_cfg_free(c);
    rm_rf(dir);
    free(dir);
    uv_loop_close(&loop);
}

static void test_retry_keeps_order(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    stub_t s = {.fail_first = 2};
    stub_listen(&loop, &s, 0);
    char *dir = tmp_dir();
    kvl_notify_cfg_t *c = webhook_cfg(s.port, NULL);
    kvl_notify_t *n = open_notify(&loop, c, dir);
    enqueue(n, "hook", 1, NULL);
    enqueue(n, "hook", 2, NULL);
    want_t w = {&s, 2};
    /* 503, wait 1 s, 503, wait 2 s, then both: well within 20 s */
    assert_true(run_until(&loop, stub_has, &w, 20000));
    assert_int_equal(s.requests, 4);
    assert_int_equal(body_index(s.bodies[0]), 1);
    assert_int_equal(body_index(s.bodies[1]), 2);
    kvl_notify_stats_t st;
    kvl_notify_stats(n, &st);
    assert_int_equal(st.failed_attempts, 2);
    assert_int_equal(st.delivered, 2);
    close_all(&loop, n, &s);
    kvl_notify_cfg_free(c);
    rm_rf(dir);
    free(dir);
    uv_loop_close(&loop);
}

/* A webhook with a template: placeholders filled, values JSON-escaped, the signature over
 * the body sent. */
static void test_webhook_template(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    stub_t s = {0};
    stub_listen(&loop, &s, 0);
    char *dir = tmp_dir();
    kvl_notify_cfg_t *c = webhook_cfg(
        s.port, "    template: '{\"text\": \"[{{status}}] {{alerts}}\", \"n\": {{count}},"
                " \"sev\": \"{{severity}}\", \"raw\": {{json}}}'\n"
                "    content_type: application/json; charset=utf-8\n");
    kvl_notify_t *n = open_notify(&loop, c, dir);
    enqueue(n, "hook", 3, "rtr3 says \"down\"\nat once");
    want_t w = {&s, 1};
    assert_true(run_until(&loop, stub_has, &w, 10000));
    json_error_t je;
    json_t *o = json_loads(s.bodies[0], 0, &je);
    if (o == NULL) {
        fprintf(stderr, "not JSON (%s): %s\n", je.text, s.bodies[0]);
    }
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "text")),
                        "[firing] FIRING device_down DHQ-Kollam rtr3: rtr3 says \"down\"\nat once");
    assert_int_equal(json_integer_value(json_object_get(o, "n")), 1);
    assert_string_equal(json_string_value(json_object_get(o, "sev")), "critical");
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "raw"), "group_key")),
                        "g3");
    json_decref(o);
    char hex[2 * KVL_HMAC_SHA256_LEN + 1], want[80];
    kvl_hmac_sha256_hex("k3y", 3, s.bodies[0], strlen(s.bodies[0]), hex);
    snprintf(want, sizeof(want), "sha256=%s", hex);
    assert_string_equal(s.sigs[0], want);
    close_all(&loop, n, &s);
    kvl_notify_cfg_free(c);
    rm_rf(dir);
    free(dir);
    uv_loop_close(&loop);
}

/* A receiver that refuses a notification for good (HTTP 400) does not hold back the next:
 * the refused one is dropped and counted, not retried. */
static void test_refused_for_good(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    stub_t s = {.fail_first = 1, .fail_status = 400};
    stub_listen(&loop, &s, 0);
    char *dir = tmp_dir();
    kvl_notify_cfg_t *c = webhook_cfg(s.port, NULL);
    kvl_notify_t *n = open_notify(&loop, c, dir);
    enqueue(n, "hook", 1, NULL);
    enqueue(n, "hook", 2, NULL);
    want_t w = {&s, 1};
    assert_true(run_until(&loop, stub_has, &w, 10000));
    run_for(&loop, 200);
    assert_int_equal(s.requests, 2);
    assert_int_equal(body_index(s.bodies[0]), 2);
    kvl_notify_stats_t st;
    kvl_notify_stats(n, &st);
    assert_int_equal(st.dropped, 1);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.failed_attempts, 0);
    assert_int_equal(st.waiting, 0);
    close_all(&loop, n, &s);
    kvl_notify_cfg_free(c);
    rm_rf(dir);
    free(dir);
    uv_loop_close(&loop);
}

static void test_bound_drops_oldest(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    int port = free_port(&loop);
    char *dir = tmp_dir();
    kvl_notify_cfg_t *c = webhook_cfg(port, "    max_bytes: 4096\n");
    kvl_notify_t *n = open_notify(&loop, c, dir);
    char pad[501];
    memset(pad, 'x', 500);
    pad[500] = '\0';
    for (int i = 1; i <= 20; i++) { /* ~900 bytes each: about four fit */
        enqueue(n, "hook", i, pad);
    }
    kvl_notify_stats_t st;
    kvl_notify_stats(n, &st);
    assert_true(st.dropped >= 14);
    assert_int_equal(st.waiting + st.dropped, 20);
    assert_true(st.waiting >= 1 && st.waiting <= 5);
    uint64_t waiting = st.waiting;
    run_for(&loop, 300); /* the first attempt is refused */
    stub_t s = {0};
    stub_listen(&loop, &s, port);
    want_t w = {&s, (int)waiting};
    assert_true(run_until(&loop, stub_has, &w, 20000));
    for (int i = 0; i < s.n; i++) { /* the newest, in order */
        assert_int_equal(body_index(s.bodies[i]), 20 - (int)waiting + 1 + i);
    }
    close_all(&loop, n, &s);
    kvl_notify_cfg_free(c);
    rm_rf(dir);
    free(dir);
    uv_loop_close(&loop);
}

/* Appends junk to the newest segment: a torn tail a power cut could leave. */
static void tear_tail(const char *dir)
{
    char path[512], best[256] = "";
    snprintf(path, sizeof(path), "%s/hook", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".nob") && strcmp(e->d_name, best) > 0) {
            snprintf(best, sizeof(best), "%s", e->d_name);
        }
    }
    closedir(d);
    assert_true(best[0] != '\0');
    snprintf(path, sizeof(path), "%s/hook/%s", dir, best);
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "\x40\x00\x00\x00\x12\x34", 6), 6);
    close(fd);
}

static void test_restart_resends_only_unconfirmed(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    stub_t s = {0};
    stub_listen(&loop, &s, 0);
    int port = s.port;
    char *dir = tmp_dir();
    kvl_notify_cfg_t *c = webhook_cfg(port, NULL);
    kvl_notify_t *n = open_notify(&loop, c, dir);
    for (int i = 1; i <= 3; i++) {
        enqueue(n, "hook", i, NULL);
    }
    want_t w = {&s, 3};
    assert_true(run_until(&loop, stub_has, &w, 20000));
    run_for(&loop, 100);
    close_all(&loop, n, &s);
    /* the receiver is down: two more wait */
    n = open_notify(&loop, c, dir);
    enqueue(n, "hook", 4, NULL);
    enqueue(n, "hook", 5, NULL);
    run_for(&loop, 200);
    kvl_notify_stats_t st;
    kvl_notify_stats(n, &st);
    assert_int_equal(st.waiting, 2);
    assert_int_equal(st.delivered, 0);
    close_all(&loop, n, NULL);
    tear_tail(dir);
    /* back: only 4 and 5 come, once */
    stub_listen(&loop, &s, port);
    n = open_notify(&loop, c, dir);
    kvl_notify_stats(n, &st);
    assert_int_equal(st.waiting, 2);
    w.n = 2;
    assert_true(run_until(&loop, stub_has, &w, 20000));
    run_for(&loop, 300);
    assert_int_equal(s.n, 2);
    assert_int_equal(body_index(s.bodies[0]), 4);
    assert_int_equal(body_index(s.bodies[1]), 5);
    close_all(&loop, n, &s);
    /* nothing left for a third start */
    stub_listen(&loop, &s, port);
    n = open_notify(&loop, c, dir);
    kvl_notify_stats(n, &st);
    assert_int_equal(st.waiting, 0);
    run_for(&loop, 200);
    assert_int_equal(s.n, 0);
    close_all(&loop, n, &s);
    kvl_notify_cfg_free(c);
    rm_rf(dir);
    free(dir);
    uv_loop_close(&loop);
}

/* The path of the receiver "hook"'s only outbox segment in dir, into out. */
static void only_segment(const char *dir, char *out, size_t outlen)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/hook", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    out[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        if (strstr(e->d_name, ".nob") != NULL) {
            int k = snprintf(out, outlen, "%s/", path);
            assert_true(k > 0 && (size_t)k + strlen(e->d_name) < outlen);
            memcpy(out + k, e->d_name, strlen(e->d_name) + 1);
        }
    }
    closedir(d);
    assert_true(out[0] != '\0');
}

/* kvl_notify_new is refused with the sentence for a file of a newer version at path, which
 * is left as it was. */
static void refused_newer(uv_loop_t *loop, const kvl_notify_cfg_t *c, const char *dir,
                          const char *path, unsigned version)
{
    char err[1200] = "";
    kvl_notify_t *n = NULL;
    file_bytes_t before = file_bytes(path);
    assert_int_equal(kvl_notify_new(loop, c, dir, &n, err, sizeof(err)), KVL_EPROTO);
    assert_null(n);
    expect_newer_sentence(err, path, version, KVL_NOTIFY_FORMAT_VERSION, "kaaval-collector");
    expect_file_unchanged(path, &before);
}

/* The format version: in the cursor ("format") and the segments' headers; a cursor without it
 * (the format before versions) read as it is, a newer cursor or segment refused with the
 * sentence and left as it is. */
static void test_format_version(void **state)
{
    (void)state;
    uv_loop_t loop;
    stub_t s;
    char *dir, cursor[512], seg[512];
    kvl_notify_cfg_t *c = hook_start(&loop, &s, &dir);
    snprintf(cursor, sizeof(cursor), "%s/hook/cursor", dir);
    kvl_notify_t *n = open_notify(&loop, c, dir);
    enqueue(n, "hook", 1, NULL);
    want_t w = {&s, 1};
    assert_true(run_until(&loop, stub_has, &w, 20000));
    run_for(&loop, 100);
    close_all(&loop, n, &s);
    json_t *cj = json_load_file(cursor, 0, NULL);
    assert_non_null(cj);
    assert_int_equal(json_integer_value(json_object_get(cj, "format")), KVL_NOTIFY_FORMAT_VERSION);

    /* without "format": read as version 1, what was confirmed not sent again */
    json_object_del(cj, "format");
    assert_int_equal(json_dump_file(cj, cursor, JSON_COMPACT), 0);
    n = open_notify(&loop, c, dir);
    kvl_notify_stats_t st;
    kvl_notify_stats(n, &st);
    assert_int_equal(st.waiting, 0);
    close_all(&loop, n, NULL);

    /* a newer cursor */
    json_object_set_new(cj, "format", json_integer(KVL_NOTIFY_FORMAT_VERSION + 1));
    assert_int_equal(json_dump_file(cj, cursor, JSON_COMPACT), 0);
    refused_newer(&loop, c, dir, cursor, KVL_NOTIFY_FORMAT_VERSION + 1);
    json_object_set_new(cj, "format", json_integer(KVL_NOTIFY_FORMAT_VERSION));
    assert_int_equal(json_dump_file(cj, cursor, JSON_COMPACT), 0);
    json_decref(cj);

    /* a newer segment (its header's version, with its CRC) */
    only_segment(dir, seg, sizeof(seg));
    FILE *f = fopen(seg, "r+b");
    assert_non_null(f);
    uint8_t h[16];
    assert_int_equal(fread(h, 1, sizeof(h), f), sizeof(h));
    kvl_put_le32(h + 8, KVL_NOTIFY_FORMAT_VERSION + 1);
    kvl_put_le32(h + 12, kvl_crc32c(0, h, 12));
    rewind(f);
    assert_int_equal(fwrite(h, 1, sizeof(h), f), sizeof(h));
    fclose(f);
    refused_newer(&loop, c, dir, seg, KVL_NOTIFY_FORMAT_VERSION + 1);
    for (int i = 0; i < 50 && uv_loop_alive(&loop); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    kvl_notify_cfg_free(c);
    rm_rf(dir);
    free(dir);
    uv_loop_close(&loop);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return NULL;
    }
    char *b = calloc(1, 1 << 16);
    size_t got = fread(b, 1, (1 << 16) - 1, f);
    b[got] = '\0';
    fclose(f);
    return b;
}

typedef struct file_want {
    const char *path;
} file_want_t;

static bool file_exists(void *ctx)
{
    struct stat sb;
    return stat(((file_want_t *)ctx)->path, &sb) == 0 && sb.st_size > 0;
}

typedef struct exec_want {
    kvl_notify_t *n;
    const char *env_path, *count_path;
} exec_want_t;

/* The env file written, two failed runs of "fails" counted, and a third failure. */
static bool exec_done(void *ctx)
{
    exec_want_t *w = ctx;
    file_want_t fw = {w->env_path};
    char *count = slurp(w->count_path);
    bool twice = count != NULL && strlen(count) >= 4;
    free(count);
    kvl_notify_stats_t st;
    kvl_notify_stats(w->n, &st);
    return file_exists(&fw) && twice && st.failed_attempts >= 3;
}

static int count_segments(const char *dir)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/hook", dir);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += strstr(e->d_name, ".nob") != NULL;
    }
    closedir(d);
    return n;
}

/* Segments roll over at their size (max_bytes / 8, at least 64 KiB), a restart reads them
 * all in order, and the ones wholly delivered are deleted. */
static void test_segments(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    int port = free_port(&loop);
    char *dir = tmp_dir();
    kvl_notify_cfg_t *c = webhook_cfg(port, "    max_bytes: 524288\n");
    kvl_notify_t *n = open_notify(&loop, c, dir);
    char pad[1001];
    memset(pad, 'y', 1000);
    pad[1000] = '\0';
    for (int i = 1; i <= 150; i++) { /* ~1.4 KB each: three segments of 64 KiB and more */
        enqueue(n, "hook", i, pad);
    }
    assert_true(count_segments(dir) >= 3);
    close_all(&loop, n, NULL);
    stub_t s = {0};
    stub_listen(&loop, &s, port);
    n = open_notify(&loop, c, dir);
    kvl_notify_stats_t st;
    kvl_notify_stats(n, &st);
    assert_int_equal(st.waiting, 150);
    want_t w = {&s, 150};
    assert_true(run_until(&loop, stub_has, &w, 60000));
    for (int i = 0; i < 150; i++) {
        assert_int_equal(body_index(s.bodies[i]), i + 1);
    }
    assert_int_equal(count_segments(dir), 1); /* the last stays, to append to */
    close_all(&loop, n, &s);
    kvl_notify_cfg_free(c);
    rm_rf(dir);
    free(dir);
    uv_loop_close(&loop);
}

static void test_exec(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char *dir = tmp_dir();
    char text[4096], env_path[256], in_path[256], count_path[256];
    snprintf(env_path, sizeof(env_path), "%s/env.out", dir);
    snprintf(in_path, sizeof(in_path), "%s/stdin.out", dir);
    snprintf(count_path, sizeof(count_path), "%s/count.out", dir);
    snprintf(text, sizeof(text),
             "receivers:\n"
             "  - name: run\n"
             "    type: exec\n"
             "    command: [/bin/sh, -c, 'cat > %s.tmp; env > %s.tmp2; mv %s.tmp %s; mv %s.tmp2 "
             "%s']\n"
             "  - name: fails\n"
             "    type: exec\n"
             "    command: [/bin/sh, -c, 'echo x >> %s; exit 3']\n"
             "  - name: hangs\n"
             "    type: exec\n"
             "    timeout: 200ms\n"
             "    command: [/bin/sleep, '30']\n",
             in_path, env_path, in_path, in_path, env_path, env_path, count_path);
    kvl_notify_cfg_t *c = cfg_text(text);
    kvl_notify_t *n = open_notify(&loop, c, dir);
    enqueue(n, "run", 7, NULL);
    enqueue(n, "fails", 1, NULL);
    enqueue(n, "hangs", 1, NULL);
    exec_want_t ew = {n, env_path, count_path};
    /* "fails" is tried again after 1 s, "hangs" killed after 200 ms */
    assert_true(run_until(&loop, exec_done, &ew, 20000));
    char *env = slurp(env_path), *in = slurp(in_path), *count = slurp(count_path);
    assert_non_null(env);
    assert_non_null(in);
    assert_non_null(count);
    assert_non_null(strstr(env, "KAAVAL_STATUS=firing\n"));
    assert_non_null(strstr(env, "KAAVAL_RULE=device_down\n"));
    assert_non_null(strstr(env, "KAAVAL_SEVERITY=critical\n"));
    assert_non_null(strstr(env, "KAAVAL_SITE=DHQ-Kollam\n"));
    assert_non_null(strstr(env, "KAAVAL_DEVICE=rtr7\n"));
    assert_non_null(strstr(env, "KAAVAL_INTERFACE=\n"));
    assert_non_null(strstr(env, "KAAVAL_GROUP_KEY=g7\n"));
    assert_non_null(strstr(env, "KAAVAL_REPEAT=false\n"));
    assert_non_null(strstr(env, "KAAVAL_ESCALATED=false\n"));
    assert_non_null(strstr(in, "\"group_key\":\"g7\""));
    assert_non_null(strstr(in, "\"device\":\"rtr7\""));
    assert_true(strlen(count) >= 4); /* "x\nx\n": at least two attempts */
    kvl_notify_stats_t st;
    kvl_notify_stats(n, &st);
    assert_int_equal(st.delivered, 1);
    assert_true(st.failed_attempts >= 3); /* fails twice, hangs killed at least once */
    assert_int_equal(st.waiting, 2);
    free(env);
    free(in);
    free(count);
    close_all(&loop, n, NULL);
    kvl_notify_cfg_free(c);
    rm_rf(dir);
    free(dir);
    uv_loop_close(&loop);
}

static void test_subject(void **state)
{
    (void)state;
    char buf[4096];
    snprintf(buf, sizeof(buf),
             "{\"receiver\":\"m\",\"group_key\":\"k\",\"status\":\"firing\",\"alerts\":[");
    for (int i = 0; i < 6; i++) {
        char a[512];
        snprintf(a, sizeof(a),
                 "%s{\"status\":\"firing\",\"rule\":\"device_down\",\"severity\":\"critical\","
                 "\"labels\":{\"alertname\":\"device_down\",\"severity\":\"critical\","
                 "\"site\":\"DHQ-Kollam\",\"device\":\"block-hq-router-%d\\r\\nBcc: x\"},"
                 "\"active_at\":\"2026-12-05T14:33:00.000Z\","
                 "\"starts_at\":\"2026-12-05T14:33:00.000Z\","
                 "\"changed\":\"2026-12-05T14:33:01.000Z\"}",
                 i ? "," : "", i);
        strncat(buf, a, sizeof(buf) - strlen(buf) - 1);
    }
    strncat(buf, "]}", sizeof(buf) - strlen(buf) - 1);
    kvl_notify_msg_t m;
    char why[256] = "";
    int rc = kvl_notify_msg_parse(buf, strlen(buf), &m, why, sizeof(why));
    if (rc != 0) {
        fprintf(stderr, "%s\n", why);
    }
    assert_int_equal(rc, 0);
    char subject[256];
    kvl_notify_smtp_subject(&m, subject, sizeof(subject));
    assert_true(strlen(subject) <= 78);
    assert_true(strncmp(subject, "[FIRING:6] DHQ-Kollam: device_down block-hq-router-0", 50) == 0);
    assert_null(strchr(subject, '\r'));
    assert_null(strchr(subject, '\n'));
    kvl_notify_msg_clear(&m);
    assert_int_equal(kvl_notify_msg_parse("{\"alerts\":[]}", 13, &m, why, sizeof(why)), KVL_EINVAL);
}

/* The last post the stub took is the resolution of rtr1. */
static bool stub_resolved(void *ctx)
{
    stub_t *s = ctx;
    return s->n > 0 && strstr(s->bodies[s->n - 1], "\"endsAt\":\"2025-12-05T14:31:00.000Z\"");
}

/* Alertmanager: the array it wants, firing alerts posted again every `resend` (also after a
 * restart: the set is kept with the cursor), and no longer once resolved. */
static void test_alertmanager_resend(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    stub_t s = {0};
    stub_listen(&loop, &s, 0);
    char *dir = tmp_dir();
    char text[512];
    snprintf(text, sizeof(text),
             "receivers:\n  - {name: am, type: alertmanager, url: 'http://127.0.0.1:%d/', "
             "resend: 1s}\n",
             s.port);
    kvl_notify_cfg_t *c = cfg_text(text);
    kvl_notify_t *n = open_notify(&loop, c, dir);
    enqueue(n, "am", 1, NULL);
    want_t w = {&s, 3}; /* the notification, then two resends */
    assert_true(run_until(&loop, stub_has, &w, 10000));
    for (int i = 0; i < 3; i++) {
        json_error_t je;
        json_t *arr = json_loads(s.bodies[i], 0, &je);
        assert_true(json_is_array(arr));
        assert_int_equal(json_array_size(arr), 1);
        json_t *a = json_array_get(arr, 0);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(a, "labels"), "device")), "rtr1");
        assert_string_equal(json_string_value(json_object_get(a, "startsAt")),
                            "2025-12-05T14:30:00.000Z");
        int64_t ends = 0;
        assert_int_equal(
            kvl_alert_time_parse(json_string_value(json_object_get(a, "endsAt")), &ends), 0);
        assert_true(ends > 1764945000000 + 86400000ll); /* now + 4 s, not the alert's past */
        json_decref(arr);
    }
    close_all(&loop, n, &s);
    /* a restart keeps re-posting what fires */
    stub_listen(&loop, &s, s.port);
    n = open_notify(&loop, c, dir);
    w.n = 1;
    assert_true(run_until(&loop, stub_has, &w, 5000));
    assert_non_null(strstr(s.bodies[0], "rtr1"));
    enqueue_status(n, "am", 1, NULL, KVL_ALERT_RESOLVED);
    assert_true(run_until(&loop, stub_resolved, &s, 10000)); /* resends may come first */
    int had = s.n;
    run_for(&loop, 2500); /* resolved: nothing fires, nothing re-posted */
    assert_int_equal(s.n, had);
    close_all(&loop, n, &s);
    kvl_notify_cfg_free(c);
    rm_rf(dir);
    free(dir);
    uv_loop_close(&loop);
}

static void config_fails(const char *text, const char *want)
{
    char err[512] = "";
    kvl_notify_cfg_t *c = kvl_notify_cfg_parse_text("c.yaml", text, err, sizeof(err));
    if (c != NULL || strstr(err, want) == NULL) {
        fprintf(stderr, "got '%s', wanted '%s'\n", err, want);
    }
    assert_null(c);
    assert_non_null(strstr(err, want));
}

static void test_config(void **state)
{
    (void)state;
    kvl_notify_cfg_t *c = cfg_text("receivers:\n"
                                   "  - {name: am, type: alertmanager, url: 'http://h:9093'}\n"
                                   "  - {name: m, type: email, url: 'smtp://h:25', from: a@b,\n"
                                   "     to: c@d, use_ssl: try}\n"
                                   "  - {name: s, type: snmp, address: '127.0.0.1:162'}\n"
                                   "  - {name: l, type: syslog, facility: local3}\n");
    assert_int_equal(c->n, 4);
    assert_int_equal(c->receivers[0].resend_ms, 60000);
    assert_int_equal(c->receivers[0].max_bytes, 64ll << 20);
    assert_int_equal(c->receivers[0].timeout_ms, 10000);
    assert_int_equal(c->receivers[1].n_to, 1);
    assert_int_equal(c->receivers[1].use_ssl, KVL_RCV_SSL_TRY);
    assert_string_equal(c->receivers[2].community, "public");
    assert_string_equal(kvl_notify_facilities[c->receivers[3].facility], "local3");
    kvl_notify_cfg_free(c);
    config_fails("receivers:\n  - {name: a, type: webhook, url: 'http://h', resend: 1m}\n",
                 "c.yaml:2:");
    config_fails("receivers:\n  - {name: a, type: webhook}\n", "url");
    config_fails("receivers:\n  - {name: a, type: pager}\n", "c.yaml:2:21: expected alertmanager");
    config_fails("receivers:\n  - {name: a, type: syslog}\n  - {name: a, type: syslog}\n",
                 "a second receiver named 'a'");
    config_fails("receivers:\n  - {name: ../x, type: syslog}\n", "receiver name");
    config_fails("receivers:\n  - {name: '', type: syslog}\n", "must not be empty");
    config_fails("receivers:\n  - {name: a, type: exec, command: [sh]}\n", "absolute path");
    config_fails("receivers:\n  - {name: a, type: exec, command: [/nonexistent/page]}\n",
                 "/nonexistent/page cannot be run");
    config_fails("receivers:\n  - {name: a, type: email, url: 'http://h', from: a, to: b}\n",
                 "smtp://");
    config_fails("receivers:\n  - {name: a, type: snmp, address: nowhere}\n", "host:port");
    config_fails("receivers:\n  - {name: a, type: webhook, url: 'http://h',\n"
                 "     template: '{\"t\": \"{{status}} {{nope}}\"}'}\n",
                 "c.yaml:3:16: unknown placeholder {{nope}}");
    config_fails("receivers:\n  - {name: a, type: webhook, url: \"http://h/x\\r\\nX: y\"}\n",
                 "no spaces or control characters");
    config_fails("receivers:\n  - {name: a, type: email, url: 'smtp://h', from: a@b,\n"
                 "     to: [\"c@d\\r\\nRCPT TO:<e@f>\"]}\n",
                 "is not an e-mail address");
    config_fails("receivers:\n  - {name: a, type: email, url: 'smtp://h', from: nobody, to: c@d}\n",
                 "'nobody' is not an e-mail address");
}

/* ---- SNMP ------------------------------------------------------------------------------- */

static bool has_bytes(const kvl_buf_t *b, const uint8_t *want, size_t n)
{
    for (size_t i = 0; i + n <= b->len; i++) {
        if (memcmp(b->data + i, want, n) == 0) {
            return true;
        }
    }
    return false;
}

/* A device_down alert with the event fields given as key, value pairs (NULL-terminated). */
static kvl_alert_t device_alert(kvl_alert_status_t st, ...)
{
    kvl_alert_t a = {.status = st, .rule = "device_down", .summary = "rtr3 does not answer"};
    a.labels[a.n_labels++] = (kvl_label_t){"alertname", "device_down"};
    a.labels[a.n_labels++] = (kvl_label_t){"device", "rtr3"};
    a.labels[a.n_labels++] = (kvl_label_t){"site", "DHQ"};
    assert_int_equal(kvl_alert_finish(&a), 0);
    va_list ap;
    va_start(ap, st);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL) {
        a.fields[a.n_fields++] = (kvl_label_t){k, va_arg(ap, const char *)};
    }
    va_end(ap);
    return a;
}

#define ENT 0x2b, 6, 1, 4, 1, 0x86, 0x8d, 0x1f /* 1.3.6.1.4.1.99999 */

static void test_snmp_pdu(void **state)
{
    (void)state;
    static const uint8_t down[] = {0x06, 10, ENT, 0, 1}, up[] = {0x06, 10, ENT, 0, 2},
                         firing[] = {0x06, 10, ENT, 0, 3}, resolved[] = {0x06, 10, ENT, 0, 4};
    /* kaavalDeviceName.3 = "rtr3", kaavalDeviceAddress.3, kaavalDeviceDownReason.3 */
    static const uint8_t name[] = {0x06, 13, ENT, 1, 2, 1, 2, 3, 0x04, 4, 'r', 't', 'r', '3'};
    static const uint8_t addr[] = {0x06, 13,  ENT, 1,   2,   1,   3,   3,   0x04,
                                   8,    '1', '0', '.', '0', '.', '0', '.', '9'};
    static const uint8_t auth[] = {0x06, 13, ENT, 1, 2, 1, 5, 3, 0x02, 1, 3};
    static const uint8_t is_up[] = {0x06, 13, ENT, 1, 2, 1, 5, 3, 0x02, 1, 1};
    static const uint8_t site[] = {0x06, 12, ENT, 1, 3, 3, 0, 0x04, 3, 'D', 'H', 'Q'};
    static const uint8_t fp_oid[] = {0x06, 12, ENT, 1, 3, 7, 0, 0x04, 16};
    kvl_buf_t b = {0};
    kvl_alert_t a = device_alert(KVL_ALERT_FIRING, "event", "device_down", "address", "10.0.0.9",
                                 "reason", "authentication failure", "index", "3", NULL);
    uint32_t ix = 0;
    assert_int_equal(kvl_notify_snmp_device_index(&a, &ix), 1);
    assert_int_equal(ix, 3);
    kvl_notify_snmp_pdu(7, 100, &a, false, &b);
    assert_int_equal(b.data[0], 0xa7);
    assert_true(has_bytes(&b, down, sizeof(down)));
    assert_true(has_bytes(&b, name, sizeof(name)));
    assert_true(has_bytes(&b, addr, sizeof(addr)));
    assert_true(has_bytes(&b, auth, sizeof(auth)));
    assert_true(has_bytes(&b, site, sizeof(site)));
    assert_true(has_bytes(&b, fp_oid, sizeof(fp_oid)));
    assert_false(has_bytes(&b, firing, sizeof(firing)));
    kvl_buf_free(&b);
    /* its resolution (with the device_up event's fields): kaavalDeviceUp, reason up(1) */
    a = device_alert(KVL_ALERT_RESOLVED, "event", "device_up", "address", "10.0.0.9", "index", "3",
                     "down_s", "42", NULL);
    kvl_notify_snmp_pdu(8, 100, &a, true, &b);
    assert_int_equal(b.data[0], 0xa6);
    assert_true(has_bytes(&b, up, sizeof(up)));
    assert_true(has_bytes(&b, is_up, sizeof(is_up)));
    kvl_buf_free(&b);
    /* no valid index (a series' alert, an older agent, 0, junk): kaavalAlertFiring/Resolved */
    const char *bad[] = {NULL, "0", "-1", "x3", "4294967296", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        a = bad[i] ? device_alert(KVL_ALERT_FIRING, "event", "device_down", "index", bad[i], NULL)
                   : device_alert(KVL_ALERT_FIRING, NULL);
        assert_int_equal(kvl_notify_snmp_device_index(&a, &ix), 0);
        kvl_notify_snmp_pdu(9, 100, &a, false, &b);
        assert_true(has_bytes(&b, firing, sizeof(firing)));
        assert_false(has_bytes(&b, down, sizeof(down)));
        kvl_buf_free(&b);
    }
    /* another event's index is not a device's */
    a = device_alert(KVL_ALERT_RESOLVED, "event", "linkDown", "index", "3", NULL);
    kvl_notify_snmp_pdu(10, 100, &a, false, &b);
    assert_true(has_bytes(&b, resolved, sizeof(resolved)));
    kvl_buf_free(&b);
}

static void test_usm_keys(void **state)
{
    (void)state;
    /* RFC 3414 A.3.1 and A.3.2: "maplesyrup", engine ID 00..02 */
    static const uint8_t eid[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    static const uint8_t md5[] = {0x52, 0x6f, 0x5e, 0xed, 0x9f, 0xcc, 0xe2, 0x6f,
                                  0x89, 0x64, 0xc2, 0x93, 0x07, 0x87, 0xd8, 0x2b};
    static const uint8_t sha[] = {0x66, 0x95, 0xfe, 0xbc, 0x92, 0x88, 0xe3, 0x62, 0x82, 0x23,
                                  0x5f, 0xc7, 0x15, 0x1f, 0x12, 0x84, 0x97, 0xb3, 0x8f, 0x3f};
    uint8_t k[64];
    assert_int_equal(kvl_usm_localized_key(KVL_NOTIFY_V3_MD5, "maplesyrup", eid, 12, k), 16);
    assert_memory_equal(k, md5, 16);
    assert_int_equal(kvl_usm_localized_key(KVL_NOTIFY_V3_SHA1, "maplesyrup", eid, 12, k), 20);
    assert_memory_equal(k, sha, 20);
    assert_int_equal(kvl_usm_localized_key(KVL_NOTIFY_V3_SHA512, "maplesyrup", eid, 12, k), 64);
    assert_int_equal(kvl_usm_localized_key(0, "maplesyrup", eid, 12, k), 0);
}

/* A Report from the manager's engine eid for msgID id naming usmStats counter c. */
static void report(uint32_t id, uint8_t c, kvl_buf_t *out)
{
    static const uint8_t eid[] = {0x80, 0, 0x1f, 0x88, 0x80, 1, 2, 3, 4, 5, 6, 7, 8};
    const uint8_t oid[] = {0x2b, 6, 1, 6, 3, 15, 1, 1, c, 0};
    kvl_buf_t m = {0}, g = {0}, sp = {0}, sc = {0}, pdu = {0}, vb = {0};
    kvl_ber_int(&g, 0x02, id, false);
    kvl_ber_int(&g, 0x02, 65507, false);
    kvl_ber_tlv(&g, 0x04, "\0", 1);
    kvl_ber_int(&g, 0x02, 3, false);
    kvl_ber_wrap(&g, 0x30);
    kvl_ber_tlv(&sp, 0x04, eid, sizeof(eid));
    kvl_ber_int(&sp, 0x02, 5, false);
    kvl_ber_int(&sp, 0x02, 1000, false);
    kvl_ber_tlv(&sp, 0x04, "", 0);
    kvl_ber_tlv(&sp, 0x04, "", 0);
    kvl_ber_tlv(&sp, 0x04, "", 0);
    kvl_ber_wrap(&sp, 0x30);
    kvl_ber_tlv(&vb, 0x06, oid, sizeof(oid));
    kvl_ber_int(&vb, 0x41, 1, true);
    kvl_ber_wrap(&vb, 0x30);
    kvl_ber_wrap(&vb, 0x30);
    kvl_ber_int(&pdu, 0x02, id, false);
    kvl_ber_int(&pdu, 0x02, 0, false);
    kvl_ber_int(&pdu, 0x02, 0, false);
    kvl_buf_append(&pdu, vb.data, vb.len);
    kvl_ber_wrap(&pdu, 0xa8);
    kvl_ber_tlv(&sc, 0x04, eid, sizeof(eid));
    kvl_ber_tlv(&sc, 0x04, "", 0);
    kvl_buf_append(&sc, pdu.data, pdu.len);
    kvl_ber_wrap(&sc, 0x30);
    kvl_ber_int(&m, 0x02, 3, false);
    kvl_buf_append(&m, g.data, g.len);
    kvl_ber_tlv(&m, 0x04, sp.data, sp.len);
    kvl_buf_append(&m, sc.data, sc.len);
    kvl_ber_wrap(&m, 0x30);
    kvl_buf_free(&g);
    kvl_buf_free(&sp);
    kvl_buf_free(&sc);
    kvl_buf_free(&pdu);
    kvl_buf_free(&vb);
    *out = m;
}

static void test_usm_round_trip(void **state)
{
    (void)state;
    static const int prot[][2] = {{KVL_NOTIFY_V3_SHA1, KVL_NOTIFY_V3_AES128},
                                  {KVL_NOTIFY_V3_MD5, KVL_NOTIFY_V3_DES},
                                  {KVL_NOTIFY_V3_SHA512, KVL_NOTIFY_V3_AES256},
                                  {KVL_NOTIFY_V3_SHA224, 0}};
    for (size_t i = 0; i < sizeof(prot) / sizeof(prot[0]); i++) {
        kvl_notify_receiver_cfg_t cfg = {.version = 3,
                                         .user = "kvluser",
                                         .auth_protocol = prot[i][0],
                                         .auth_password = "auth-pass-123",
                                         .priv_protocol = prot[i][1],
                                         .priv_password = "priv-pass-123"};
        kvl_usm_t *u;
        char why[256] = "";
        int rc = kvl_usm_new(&cfg, &u, why, sizeof(why));
        if (rc != 0) {
            fprintf(stderr, "%s\n", why);
        }
        assert_int_equal(rc, 0);
        assert_false(kvl_usm_known(u));
        kvl_buf_t m = {0};
        assert_int_equal(kvl_usm_probe(u, 1, &m), 0);
        kvl_buf_free(&m);
        report(1, 4, &m); /* usmStatsUnknownEngineIDs */
        assert_int_equal(kvl_usm_read(u, m.data, m.len, 2, 0, why, sizeof(why)), KVL_USM_IGNORE);
        assert_int_equal(kvl_usm_read(u, m.data, m.len, 1, 0, why, sizeof(why)),
                         KVL_USM_DISCOVERED);
        kvl_buf_free(&m);
        assert_true(kvl_usm_known(u));
        /* a Response as the manager would send it: our own wrapping of a Response-PDU */
        kvl_buf_t pdu = {0};
        kvl_ber_int(&pdu, 0x02, 2, false);
        kvl_ber_int(&pdu, 0x02, 0, false);
        kvl_ber_int(&pdu, 0x02, 0, false);
        kvl_ber_tlv(&pdu, 0x30, NULL, 0);
        kvl_ber_wrap(&pdu, 0xa2);
        assert_int_equal(kvl_usm_wrap(u, 2, &pdu, 1500, &m, why, sizeof(why)), 0);
        kvl_buf_free(&pdu);
        assert_int_equal(kvl_usm_read(u, m.data, m.len, 2, 1500, why, sizeof(why)),
                         KVL_USM_RESPONSE);
        m.data[m.len - 3] ^= 1; /* tampered: the HMAC no longer verifies */
        assert_int_equal(kvl_usm_read(u, m.data, m.len, 2, 1500, why, sizeof(why)), KVL_USM_IGNORE);
        kvl_buf_free(&m);
        report(3, 5, &m); /* usmStatsWrongDigests */
        assert_int_equal(kvl_usm_read(u, m.data, m.len, 3, 0, why, sizeof(why)), KVL_USM_REFUSED);
        assert_non_null(strstr(why, "usmStatsWrongDigests"));
        kvl_buf_free(&m);
        /* garbage is ignored, whatever its length */
        uint8_t junk[64];
        for (size_t n = 0; n < sizeof(junk); n++) {
            junk[n] = (uint8_t)(n * 37 + 0x30);
            assert_int_equal(kvl_usm_read(u, junk, n, 3, 0, why, sizeof(why)), KVL_USM_IGNORE);
        }
        kvl_usm_free(u);
    }
}

static void test_snmp_config(void **state)
{
    (void)state;
    kvl_notify_cfg_t *c = cfg_text("receivers:\n"
                                   "  - {name: v3, type: snmp, address: '127.0.0.1:162', "
                                   "version: 3, user: noc,\n"
                                   "     auth_protocol: SHA-256, auth_password: 12345678,\n"
                                   "     priv_protocol: aes-256, priv_password: abcdefgh}\n"
                                   "  - {name: v3n, type: snmp, address: '127.0.0.1:162', "
                                   "version: 3, user: noc}\n");
    assert_int_equal(c->receivers[0].version, 3);
    assert_true(c->receivers[0].inform);
    assert_int_equal(c->receivers[0].auth_protocol, KVL_NOTIFY_V3_SHA256);
    assert_int_equal(c->receivers[0].priv_protocol, KVL_NOTIFY_V3_AES256);
    assert_int_equal(c->receivers[1].auth_protocol, 0);
    kvl_notify_cfg_free(c);
#define V3 "receivers:\n  - {name: a, type: snmp, address: 'h:162', version: 3, user: u,\n"
    config_fails(V3 "     auth_protocol: SHA-3, auth_password: 12345678}\n",
                 "c.yaml:3:21: expected MD5, SHA");
    config_fails(V3 "     priv_protocol: AES, priv_password: 12345678}\n",
                 "c.yaml:3:21: privacy needs authentication");
    config_fails(V3 "     auth_protocol: MD5, auth_password: 1234567}\n",
                 "c.yaml:3:41: `auth_password:` must have at least 8 characters");
    config_fails(V3 "     auth_protocol: MD5, auth_password: 12345678, priv_protocol: DES,\n"
                    "     priv_password: short}\n",
                 "c.yaml:4:21: `priv_password:` must have at least 8");
    config_fails(V3 "     auth_protocol: MD5}\n", "c.yaml:3:21: `auth_protocol:` needs");
    config_fails(V3 "     priv_protocol: 3DES}\n", "c.yaml:3:21: expected DES, AES");
    config_fails(V3 "     community: x}\n", "c.yaml:3:17: `community:` is for SNMPv2c");
    config_fails(V3 "     inform: false}\n", "are informs");
    config_fails("receivers:\n  - {name: a, type: snmp, address: 'h:162', version: 3}\n",
                 "needs `user:`");
    config_fails("receivers:\n  - {name: a, type: snmp, address: 'h:162', version: 1}\n",
                 "c.yaml:2:");
    config_fails("receivers:\n  - {name: a, type: snmp, address: 'h:162', user: u}\n",
                 "needs `version: 3`");
#undef V3
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the collector: an exec program may not read its input */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_snmp_config),
        cmocka_unit_test(test_snmp_pdu),
        cmocka_unit_test(test_usm_keys),
        cmocka_unit_test(test_usm_round_trip),
        cmocka_unit_test(test_subject),
        cmocka_unit_test(test_format_version),
        cmocka_unit_test(test_order_and_signature),
        cmocka_unit_test(test_retry_keeps_order),
        cmocka_unit_test(test_webhook_template),
        cmocka_unit_test(test_refused_for_good),
        cmocka_unit_test(test_bound_drops_oldest),
        cmocka_unit_test(test_restart_resends_only_unconfirmed),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_exec),
        cmocka_unit_test(test_alertmanager_resend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
