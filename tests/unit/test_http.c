/*
 * test_http.c — unit tests for the collector's HTTP server (collector/web/http.h) and its
 * request checks (http_parse.h), with real HTTP requests (libcurl) to a server on a free
 * 127.0.0.1 port.
 *
 * The server runs on this thread's loop (as in the collector); a client thread makes the
 * requests with libcurl, records each status and body, and stops the loop when done (an
 * async handle that frees the server); the checks run here afterwards. Covered: 401
 * without credentials, 403 for a viewer on an operator route, 200 with Basic and Bearer,
 * a session's writes refused without its CSRF token and accepted with it, logout, a kiosk
 * link (viewer tokens only), an address refused ten times throttled (429), 413 for a large
 * body, 400 for bad queries, paths and JSON,
 * 414 for a long target, static files with traversal refused, concurrent requests, and a
 * request still waiting for the loop, or a refusal still waiting its delay, when the server
 * stops (503); request counts and times per class, /metrics and metrics_anonymous.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>

#include "collector_config.h"
#include "http.h"
#include "http_auth.h"
#include "http_config.h"
#include "http_parse.h"
#include "kvl.h"

#define MAX_RESULTS 64

typedef struct result {
    long status;
    char body[1024];
    char cookie[256];
    char type[64];
    size_t len;     /* the body's length as received */
    bool challenge; /* a WWW-Authenticate header came */
} result_t;

typedef struct fixture {
    char dir[256];
    char viewer_token[80], operator_token[80];
    kvl_http_cfg_t *cfg;
    uv_loop_t loop;
    kvl_http_t *h;
    uv_async_t done;
    uint16_t port;
    result_t res[MAX_RESULTS];
    size_t n_res;
    int handled; /* handler calls, counted on the loop */
    void (*script)(struct fixture *f);
    kvl_http_handler_fn extra_route; /* registered as GET /metrics when set */
} fixture_t;

/* ------------------------------------------------------------------ the client side */

typedef struct buf {
    char *p;
    size_t n, cap;
    size_t total;
} buf_t;

static size_t on_body(char *d, size_t sz, size_t nm, void *ud)
{
    buf_t *b = ud;
    size_t n = sz * nm;
    b->total += n;
    size_t room = b->cap - b->n - 1;
    size_t k = n < room ? n : room;
    memcpy(b->p + b->n, d, k);
    b->n += k;
    b->p[b->n] = '\0';
    return n;
}

static size_t on_header(char *d, size_t sz, size_t nm, void *ud)
{
    result_t *r = ud;
    size_t n = sz * nm;
    if (n > 12 && strncasecmp(d, "Set-Cookie: ", 12) == 0) {
        size_t k = strcspn(d + 12, ";\r\n");
        if (k < sizeof(r->cookie)) {
            memcpy(r->cookie, d + 12, k);
            r->cookie[k] = '\0';
        }
    }
    if (n > 18 && strncasecmp(d, "WWW-Authenticate: ", 18) == 0) {
        r->challenge = true;
    }
    if (n > 14 && strncasecmp(d, "Content-Type: ", 14) == 0) {
        size_t k = strcspn(d + 14, "\r\n");
        if (k < sizeof(r->type)) {
            memcpy(r->type, d + 14, k);
            r->type[k] = '\0';
        }
    }
    return n;
}

/* One request; headers is NULL-terminated ("Name: value"). Records and returns the result. */
static result_t *req(fixture_t *f, const char *method, const char *path, const char *const *headers,
                     const char *body, size_t body_len)
{
    result_t *r = &f->res[f->n_res < MAX_RESULTS - 1 ? f->n_res++ : f->n_res];
    memset(r, 0, sizeof(*r));
    char url[8192];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)f->port, path);
    CURL *c = curl_easy_init();
    struct curl_slist *hl = NULL;
    for (size_t i = 0; headers && headers[i]; i++) {
        hl = curl_slist_append(hl, headers[i]);
    }
    hl = curl_slist_append(hl, "Expect:");
    buf_t b = {r->body, 0, sizeof(r->body), 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
    }
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        r->len = b.total;
    } else {
        r->status = -1;
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return r;
}

static result_t *get(fixture_t *f, const char *path, const char *h1)
{
    const char *hs[] = {h1, NULL};
    return req(f, "GET", path, hs, NULL, 0);
}

static result_t *post(fixture_t *f, const char *path, const char *h1, const char *h2,
                      const char *body)
{
    const char *hs[] = {h1, h2, NULL};
    if (h1 == NULL) {
        hs[0] = h2;
        hs[1] = NULL;
    }
    return req(f, "POST", path, hs, body, body ? strlen(body) : 0);
}

static void *client_main(void *arg)
{
    fixture_t *f = arg;
    f->script(f);
    uv_async_send(&f->done);
    return NULL;
}

/* ------------------------------------------------------------------ the server side */

static void on_test_get(void *ctx, const kvl_http_req_t *r, kvl_http_resp_t *resp)
{
    fixture_t *f = ctx;
    f->handled++;
    const char *x = kvl_http_query(r, "x");
    resp->body = json_pack("{s:s, s:s, s:s?, s:i, s:s?}", "user", r->user, "role",
                           kvl_http_role_name(r->role), "x", x, "n_segs", (int)r->n_segs, "seg0",
                           r->n_segs > 0 ? r->segs[0] : NULL);
}

static void on_test_post(void *ctx, const kvl_http_req_t *r, kvl_http_resp_t *resp)
{
    fixture_t *f = ctx;
    f->handled++;
    json_t *v = r->body ? json_object_get(r->body, "v") : NULL;
    if (!json_is_string(v)) {
        kvl_http_error(resp, 400, "expected {\"v\": text}");
        return;
    }
    resp->status = 201;
    resp->body = json_pack("{s:s, s:O}", "user", r->user, "v", v);
}

/* Bytes of the handler's own, with a NUL inside: at once, or later from a timer. */
static char *some_bytes(size_t *len)
{
    static const char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    char *b = malloc(sizeof(png) - 1);
    memcpy(b, png, sizeof(png) - 1);
    *len = sizeof(png) - 1;
    return b;
}

static void on_bytes_later(uv_timer_t *t)
{
    size_t len;
    char *b = some_bytes(&len);
    kvl_http_answer_bytes(t->data, 200, "image/png", b, len);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

static void on_test_bytes(void *ctx, const kvl_http_req_t *r, kvl_http_resp_t *resp)
{
    fixture_t *f = ctx;
    f->handled++;
    const char *how = kvl_http_query(r, "how");
    if (how != NULL && strcmp(how, "later") == 0) {
        uv_timer_t *t = malloc(sizeof(*t));
        uv_timer_init(&f->loop, t);
        t->data = kvl_http_defer(r);
        uv_timer_start(t, on_bytes_later, 10, 0);
        return;
    }
    resp->bytes = some_bytes(&resp->len);
    resp->type = how != NULL && strcmp(how, "badtype") == 0 ? "text/plain\r\nX: y" : "image/png";
}

static void on_done(uv_async_t *a)
{
    fixture_t *f = a->data;
    kvl_http_free(f->h);
    f->h = NULL;
    uv_close((uv_handle_t *)a, NULL);
}

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/kvl-test-http-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char p[600], q[600], err[300];
    snprintf(p, sizeof(p), "%s/users", f->dir);
    assert_int_equal(
        kvl_http_users_set(p, "alice", KVL_ROLE_OPERATOR, "alice-pass-1", err, sizeof(err)), 0);
    assert_int_equal(
        kvl_http_users_set(p, "vera", KVL_ROLE_VIEWER, "vera-pass-1", err, sizeof(err)), 0);
    assert_int_not_equal(
        kvl_http_users_set(p, "../x", KVL_ROLE_VIEWER, "whatever-1", err, sizeof(err)), 0);
    assert_int_not_equal(kvl_http_users_set(p, "bob", KVL_ROLE_VIEWER, "short", err, sizeof(err)),
                         0);
    snprintf(q, sizeof(q), "%s/tokens", f->dir);
    assert_int_equal(kvl_http_tokens_add(q, "wall", KVL_ROLE_VIEWER, f->viewer_token,
                                         sizeof(f->viewer_token), err, sizeof(err)),
                     0);
    assert_int_equal(kvl_http_tokens_add(q, "bot", KVL_ROLE_OPERATOR, f->operator_token,
                                         sizeof(f->operator_token), err, sizeof(err)),
                     0);
    char st[300];
    snprintf(st, sizeof(st), "%s/static", f->dir);
    mkdir(st, 0755);
    snprintf(p, sizeof(p), "%s/index.html", st);
    write_file(p, "<html>board</html>\n");
    snprintf(p, sizeof(p), "%s/secret.txt", f->dir);
    write_file(p, "not for the web\n");
    snprintf(q, sizeof(q), "%s/out.txt", st);
    assert_int_equal(symlink(p, q), 0);

    f->cfg = kvl_http_cfg_new();
    f->cfg->enabled = true;
    f->cfg->port = 0;
    f->cfg->tls = 0;
    f->cfg->threads = 3;
    f->cfg->static_dir = strdup(st);
    assert_int_equal(kvl_http_cfg_finish((kvl_cfg_node_t){0}, f->cfg, f->dir, "test-col", NULL), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    kvl_http_cfg_free(f->cfg);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Starts the server, runs script on a client thread, stops the server, returns. */
static void run(fixture_t *f, void (*script)(fixture_t *))
{
    char err[300];
    f->n_res = 0;
    f->handled = 0;
    f->script = script;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    int rc = kvl_http_new(&f->loop, f->cfg, &f->h, err, sizeof(err));
    if (rc != 0) {
        fail_msg("kvl_http_new: %s", err);
    }
    assert_int_equal(kvl_http_route(f->h, "GET", "/api/v1/test", KVL_ROLE_VIEWER, on_test_get, f),
                     0);
    assert_int_equal(
        kvl_http_route(f->h, "POST", "/api/v1/test", KVL_ROLE_OPERATOR, on_test_post, f), 0);
    assert_int_equal(kvl_http_route(f->h, "GET", "/etc/x", KVL_ROLE_VIEWER, on_test_get, f),
                     KVL_EINVAL);
    assert_int_equal(
        kvl_http_route(f->h, "GET", "/api/v1/bytes", KVL_ROLE_VIEWER, on_test_bytes, f), 0);
    assert_int_equal(kvl_http_route(f->h, "GET", "/metricsx", KVL_ROLE_VIEWER, on_test_get, f),
                     KVL_EINVAL);
    if (f->extra_route != NULL) {
        assert_int_equal(
            kvl_http_route(f->h, "GET", "/metrics", KVL_ROLE_VIEWER, f->extra_route, f), 0);
    }
    rc = kvl_http_start(f->h, err, sizeof(err));
    if (rc != 0) {
        fail_msg("kvl_http_start: %s", err);
    }
    f->port = kvl_http_port(f->h);
    assert_true(f->port > 0);
    uv_async_init(&f->loop, &f->done, on_done);
    f->done.data = f;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static char *basic(char *buf, size_t len, const char *user, const char *pw)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char in[200];
    int n = snprintf(in, sizeof(in), "%s:%s", user, pw);
    char *o = buf + snprintf(buf, len, "Authorization: Basic ");
    for (int i = 0; i < n; i += 3) {
        unsigned v = (unsigned)(unsigned char)in[i] << 16;
        v |= i + 1 < n ? (unsigned)(unsigned char)in[i + 1] << 8 : 0;
        v |= i + 2 < n ? (unsigned)(unsigned char)in[i + 2] : 0;
        *o++ = b64[(v >> 18) & 63];
        *o++ = b64[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? b64[v & 63] : '=';
    }
    *o = '\0';
    return buf;
}

/* ------------------------------------------------------------------ tests */

static void script_auth(fixture_t *f)
{
    char a[300], v[300], bad[300], tok[200], otok[200];
    basic(a, sizeof(a), "alice", "alice-pass-1");
    basic(v, sizeof(v), "vera", "vera-pass-1");
    basic(bad, sizeof(bad), "alice", "wrong-pass");
    snprintf(tok, sizeof(tok), "Authorization: Bearer %s", f->viewer_token);
    snprintf(otok, sizeof(otok), "Authorization: Bearer %s", f->operator_token);
    get(f, "/api/v1/test", NULL);                                                  /* 0 */
    get(f, "/api/v1/test?x=1", a);                                                 /* 1 */
    get(f, "/api/v1/test/ab%20c/d", tok);                                          /* 2 */
    post(f, "/api/v1/test", v, "Content-Type: application/json", "{\"v\":\"w\"}"); /* 3 */
    post(f, "/api/v1/test", a, "Content-Type: application/json", "{\"v\":\"w\"}"); /* 4 */
    post(f, "/api/v1/test", otok, NULL, "{\"v\":\"t\"}");                          /* 5 */
    get(f, "/api/v1/test", bad);                                                   /* 6 */
    get(f, "/api/v1/test", "Authorization: Bearer kvl_nosuchtoken");               /* 7 */
    get(f, "/api/v1/test", "Authorization: Digest x");                             /* 8 */
    get(f, "/api/v1/status", tok);                                                 /* 9 */
    get(f, "/api/v1/whoami", v);                                                   /* 10 */
    get(f, "/api/v1/nothing", a);                                                  /* 11 */
    req(f, "DELETE", "/api/v1/test", (const char *[]){a, NULL}, NULL, 0);          /* 12 */
    post(f, "/api/v1/test", NULL, NULL, "{\"v\":\"anon\"}");                       /* 13 */
    get(f, "/api/v1/test/1/2/3/4/5/6/7/8", a);                                     /* 14 */
    get(f, "/api/v1/test/1/2/3/4/5/6/7/8/9", a);                                   /* 15 */
    get(f, "/api/v1/test", "X-Requested-With: XMLHttpRequest");                    /* 16 */
}

static void test_auth(void **state)
{
    fixture_t *f = *state;
    run(f, script_auth);
    result_t *r = f->res;
    assert_int_equal(r[0].status, 401);
    assert_true(r[0].challenge);
    /* a page's script gets no Basic challenge (the browser would show its own box) */
    assert_int_equal(r[16].status, 401);
    assert_false(r[16].challenge);
    assert_int_equal(r[1].status, 200);
    assert_non_null(strstr(r[1].body, "\"user\":\"alice\""));
    assert_non_null(strstr(r[1].body, "\"x\":\"1\""));
    assert_int_equal(r[2].status, 200);
    assert_non_null(strstr(r[2].body, "\"user\":\"token:wall\""));
    assert_non_null(strstr(r[2].body, "\"n_segs\":2"));
    assert_non_null(strstr(r[2].body, "\"seg0\":\"ab c\""));
    assert_int_equal(r[3].status, 403);
    assert_int_equal(r[4].status, 201);
    assert_non_null(strstr(r[4].body, "\"v\":\"w\""));
    assert_int_equal(r[5].status, 201);
    assert_non_null(strstr(r[5].body, "token:bot"));
    assert_int_equal(r[6].status, 401);
    assert_int_equal(r[7].status, 401);
    assert_int_equal(r[8].status, 400);
    assert_int_equal(r[9].status, 200);
    assert_non_null(strstr(r[9].body, "\"collector\":\"test-col\""));
    assert_non_null(strstr(r[9].body, "\"uptime_s\""));
    assert_int_equal(r[10].status, 200);
    assert_non_null(strstr(r[10].body, "\"role\":\"viewer\""));
    assert_int_equal(r[11].status, 404);
    assert_int_equal(r[12].status, 405);
    assert_int_equal(r[13].status, 401);
    assert_int_equal(r[14].status, 200);
    assert_non_null(strstr(r[14].body, "\"n_segs\":8"));
    assert_int_equal(r[15].status, 404);
    assert_int_equal(f->handled, 5); /* 1, 2, 4, 5, 14: nothing unauthorised reached a handler */
}

static void script_session(fixture_t *f)
{
    result_t *l = post(f, "/api/v1/login", NULL, NULL,
                       "{\"user\":\"alice\",\"password\":\"alice-pass-1\"}"); /* 0 */
    char cookie[300], csrf[200], wrong[200];
    snprintf(cookie, sizeof(cookie), "Cookie: theme=dark; %s", l->cookie);
    const char *c = strstr(l->body, "\"csrf_token\":\"");
    snprintf(csrf, sizeof(csrf), "X-CSRF-Token: %.64s", c ? c + 14 : "none");
    snprintf(wrong, sizeof(wrong), "X-CSRF-Token: %064d", 7);
    get(f, "/api/v1/whoami", cookie);                                                        /* 1 */
    post(f, "/api/v1/test", cookie, NULL, "{\"v\":\"x\"}");                                  /* 2 */
    post(f, "/api/v1/test", cookie, wrong, "{\"v\":\"x\"}");                                 /* 3 */
    post(f, "/api/v1/test", cookie, csrf, "{\"v\":\"x\"}");                                  /* 4 */
    post(f, "/api/v1/login", NULL, NULL, "{\"user\":\"alice\",\"password\":\"nope-nope\"}"); /* 5 */
    post(f, "/api/v1/logout", cookie, NULL, NULL);                                           /* 6 */
    get(f, "/api/v1/whoami", cookie);                                                        /* 7 */
    post(f, "/api/v1/login", NULL, NULL, "{\"user\":\"alice\"}");                            /* 8 */
    char kiosk[200];
    snprintf(kiosk, sizeof(kiosk), "/api/v1/test?kiosk=%s", f->viewer_token);
    get(f, kiosk, NULL); /* 9 */
    snprintf(kiosk, sizeof(kiosk), "/api/v1/test?kiosk=%s", f->operator_token);
    get(f, kiosk, NULL); /* 10 */
    snprintf(kiosk, sizeof(kiosk), "/api/v1/test?kiosk=%s", f->viewer_token);
    post(f, kiosk, NULL, NULL, "{\"v\":\"x\"}");               /* 11 */
    get(f, "/api/v1/whoami", "Cookie: kaaval_session=\"bad;"); /* 12 */
    /* a session follows its user's role in the users file: raised, then lowered again */
    l = post(f, "/api/v1/login", NULL, NULL,
             "{\"user\":\"vera\",\"password\":\"vera-pass-1\"}"); /* 13 */
    snprintf(cookie, sizeof(cookie), "Cookie: %s", l->cookie);
    c = strstr(l->body, "\"csrf_token\":\"");
    snprintf(csrf, sizeof(csrf), "X-CSRF-Token: %.64s", c ? c + 14 : "none");
    post(f, "/api/v1/test", cookie, csrf, "{\"v\":\"x\"}"); /* 14: a viewer */
    char users[600], err[300];
    snprintf(users, sizeof(users), "%s/users", f->dir);
    kvl_http_users_set(users, "vera", KVL_ROLE_OPERATOR, "vera-pass-1", err, sizeof(err));
    post(f, "/api/v1/test", cookie, csrf, "{\"v\":\"x\"}"); /* 15: now an operator */
    kvl_http_users_set(users, "vera", KVL_ROLE_VIEWER, "vera-pass-1", err, sizeof(err));
    post(f, "/api/v1/test", cookie, csrf, "{\"v\":\"x\"}"); /* 16: a viewer again */
}

static void test_session(void **state)
{
    fixture_t *f = *state;
    run(f, script_session);
    result_t *r = f->res;
    assert_int_equal(r[0].status, 200);
    assert_non_null(strstr(r[0].body, "\"csrf_token\""));
    assert_non_null(strstr(r[0].cookie, "kaaval_session="));
    assert_int_equal(r[1].status, 200);
    assert_non_null(strstr(r[1].body, "\"user\":\"alice\""));
    /* a page loaded after the login gets the session's CSRF token from whoami */
    const char *c0 = strstr(r[0].body, "\"csrf_token\":\"");
    assert_non_null(c0);
    char tok[80];
    snprintf(tok, sizeof(tok), "%.78s", c0);
    assert_non_null(strstr(r[1].body, tok));
    assert_int_equal(r[2].status, 403);
    assert_non_null(strstr(r[2].body, "X-CSRF-Token"));
    assert_int_equal(r[3].status, 403);
    assert_int_equal(r[4].status, 201);
    assert_int_equal(r[5].status, 401);
    assert_int_equal(r[6].status, 200);
    assert_int_equal(r[7].status, 401);
    assert_int_equal(r[8].status, 400);
    assert_int_equal(r[9].status, 200);
    assert_non_null(strstr(r[9].body, "kiosk:wall"));
    assert_int_equal(r[10].status, 403);
    assert_int_equal(r[11].status, 403);
    assert_int_equal(r[12].status, 400);
    assert_int_equal(r[13].status, 200);
    assert_int_equal(r[14].status, 403);
    assert_int_equal(r[15].status, 201);
    assert_int_equal(r[16].status, 403);
}

static void script_limits(fixture_t *f)
{
    char a[300];
    basic(a, sizeof(a), "alice", "alice-pass-1");
    size_t big = 70 * 1024;
    char *b = malloc(big + 1);
    memset(b, ' ', big);
    memcpy(b, "{\"v\":\"", 6);
    memcpy(b + big - 2, "\"}", 2);
    b[big] = '\0';
    req(f, "POST", "/api/v1/test", (const char *[]){a, NULL}, b, big); /* 0 */
    free(b);
    get(f, "/api/v1/test?x=%zz", a);    /* 1 */
    get(f, "/api/v1/test?x=1&x=2", a);  /* 2 */
    get(f, "/api/v1/test?x=%00", a);    /* 3 */
    get(f, "/api/v1/test?x=%c3%28", a); /* 4 */
    char deep[200] = "{\"v\":\"d\",\"n\":";
    for (int i = 0; i < 20; i++) {
        strcat(deep, "[");
    }
    for (int i = 0; i < 20; i++) {
        strcat(deep, "]");
    }
    strcat(deep, "}");
    post(f, "/api/v1/test", a, NULL, deep);                /* 5 */
    post(f, "/api/v1/test", a, NULL, "{\"v\": tru");       /* 6 */
    post(f, "/api/v1/test", a, NULL, "\"just a string\""); /* 7 */
    char *longp = malloc(5000);
    strcpy(longp, "/api/v1/test?x=");
    memset(longp + 15, 'a', 4500);
    longp[4515] = '\0';
    get(f, longp, a); /* 8 */
    free(longp);
    get(f, "/api/v1/test?x=caf%C3%A9+au+lait", a);                 /* 9 */
    get(f, "/api/v1/test?b%61d%20key=1", a);                       /* 10 */
    post(f, "/api/v1/test", a, NULL, "{\"v\":\"a\",\"v\":\"b\"}"); /* 11 */
}

static void test_limits(void **state)
{
    fixture_t *f = *state;
    run(f, script_limits);
    result_t *r = f->res;
    assert_int_equal(r[0].status, 413);
    assert_int_equal(r[1].status, 400);
    assert_int_equal(r[2].status, 400);
    assert_non_null(strstr(r[2].body, "twice"));
    assert_int_equal(r[3].status, 400);
    assert_int_equal(r[4].status, 400);
    assert_int_equal(r[5].status, 400);
    assert_non_null(strstr(r[5].body, "nests deeper"));
    assert_int_equal(r[6].status, 400);
    assert_int_equal(r[7].status, 400);
    assert_true(r[8].status == 414);
    assert_int_equal(r[9].status, 200);
    assert_non_null(strstr(r[9].body, "\"x\":\"caf\u00e9 au lait\""));
    assert_true(r[10].status == 400);
    assert_int_equal(r[11].status, 400);
    assert_int_equal(f->handled, 1);
}

static void script_static(fixture_t *f)
{
    get(f, "/", NULL);                             /* 0 */
    get(f, "/index.html", NULL);                   /* 1 */
    get(f, "/../secret.txt", NULL);                /* 2 */
    get(f, "/%2e%2e/secret.txt", NULL);            /* 3 */
    get(f, "/out.txt", NULL);                      /* 4: a symlink out of the folder */
    post(f, "/index.html", NULL, NULL, "{}");      /* 5 */
    get(f, "/nothing.html", NULL);                 /* 6 */
    get(f, "/a//b", NULL);                         /* 7 */
    get(f, "/..%5csecret.txt", NULL);              /* 8 */
    get(f, "/index.html%00.png", NULL);            /* 9 */
    req(f, "PATCH", "/index.html", NULL, NULL, 0); /* 10 */
}

static void test_static(void **state)
{
    fixture_t *f = *state;
    run(f, script_static);
    result_t *r = f->res;
    assert_int_equal(r[0].status, 200);
    assert_non_null(strstr(r[0].body, "board"));
    assert_int_equal(r[1].status, 200);
    for (int i = 2; i <= 9; i++) {
        if (i == 5) {
            assert_int_equal(r[i].status, 405);
            continue;
        }
        assert_true(r[i].status == 400 || r[i].status == 404);
        assert_null(strstr(r[i].body, "not for the web"));
    }
    assert_int_equal(r[2].status, 400);
    assert_int_equal(r[4].status, 404);
    assert_int_equal(r[10].status, 405);
}

#define N_THREADS 8
#define N_PER_THREAD 10

static void *burst(void *arg)
{
    fixture_t *f = arg;
    /* own result slots; only the port and the token are read from f (set before start) */
    fixture_t *mine = calloc(1, sizeof(*mine));
    mine->port = f->port;
    int ok = 0;
    char tok[200];
    snprintf(tok, sizeof(tok), "Authorization: Bearer %s", f->viewer_token);
    for (int i = 0; i < N_PER_THREAD; i++) {
        result_t *r = get(mine, "/api/v1/test?x=c", tok);
        ok += r->status == 200 && strstr(r->body, "\"x\":\"c\"") != NULL;
    }
    free(mine);
    return (void *)(intptr_t)ok;
}

static void script_concurrent(fixture_t *f)
{
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        pthread_create(&t[i], NULL, burst, f);
    }
    long ok = 0;
    for (int i = 0; i < N_THREADS; i++) {
        void *v;
        pthread_join(t[i], &v);
        ok += (intptr_t)v;
    }
    f->res[0].status = ok;
    f->n_res = 1;
}

static void script_bytes(fixture_t *f)
{
    char tok[200];
    snprintf(tok, sizeof(tok), "Authorization: Bearer %s", f->viewer_token);
    get(f, "/api/v1/bytes", tok);
    get(f, "/api/v1/bytes?how=later", tok);
    get(f, "/api/v1/bytes?how=badtype", tok);
}

/* A handler's own bytes (binary, with a NUL) go out whole with their type, at once or
 * later; a type that would inject a header is refused with a 500. */
static void test_bytes(void **state)
{
    fixture_t *f = *state;
    run(f, script_bytes);
    assert_int_equal(f->n_res, 3);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(f->res[i].status, 200);
        assert_string_equal(f->res[i].type, "image/png");
        assert_int_equal(f->res[i].len, 16);
        assert_memory_equal(f->res[i].body, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16);
    }
    assert_int_equal(f->res[2].status, 500);
    assert_string_equal(f->res[2].type, "application/json");
}

/* Request counts per class, read from the client thread (kvl_http_stats may be called from
 * any thread) once the server has counted every request made (bounded wait). */
typedef struct class_seen {
    char name[64];
    uint64_t count, le_last, by_status[4]; /* 200, 401, 404, other */
    double sum_s;
} class_seen_t;

static void collect_class(void *ctx, const kvl_http_class_stats_t *st)
{
    class_seen_t *seen = ctx;
    for (int i = 0; i < 16; i++) {
        if (seen[i].name[0] == '\0' || strcmp(seen[i].name, st->name) == 0) {
            snprintf(seen[i].name, sizeof(seen[i].name), "%s", st->name);
            seen[i].count = st->count;
            seen[i].le_last = st->le[KVL_HTTP_BUCKETS - 1];
            seen[i].sum_s = st->sum_s;
            memset(seen[i].by_status, 0, sizeof(seen[i].by_status));
            for (size_t k = 0; k < st->n_status; k++) {
                int s = st->status[k];
                seen[i].by_status[s == 200   ? 0
                                  : s == 401 ? 1
                                  : s == 404 ? 2
                                             : 3] += st->by_status[k];
            }
            return;
        }
    }
}

static class_seen_t g_seen[16];

static const class_seen_t *seen_class(const char *name)
{
    for (int i = 0; i < 16; i++) {
        if (strcmp(g_seen[i].name, name) == 0) {
            return &g_seen[i];
        }
    }
    return NULL;
}

static void script_stats(fixture_t *f)
{
    char tok[200];
    snprintf(tok, sizeof(tok), "Authorization: Bearer %s", f->viewer_token);
    get(f, "/metrics", NULL);        /* 0: 401, or 200 with metrics_anonymous */
    get(f, "/metrics", tok);         /* 1: 200 */
    get(f, "/api/v1/test", tok);     /* 2 */
    get(f, "/api/v1/test?x=2", tok); /* 3 */
    get(f, "/api/v1/nothing", tok);  /* 4: 404, class other */
    get(f, "/index.html", NULL);     /* 5: static */
    get(f, "/api/v1/test", NULL);    /* 6: 401 */
    get(f, "/metrics/x", tok);       /* 7: 404, no such static file */
    uint64_t total = 0;
    for (int tries = 0; tries < 200 && total < 8; tries++) {
        memset(g_seen, 0, sizeof(g_seen));
        kvl_http_stats(f->h, collect_class, g_seen);
        total = 0;
        for (int i = 0; i < 16; i++) {
            total += g_seen[i].count;
        }
        if (total < 8) {
            usleep(10 * 1000);
        }
    }
}

static void on_metrics_test(void *ctx, const kvl_http_req_t *r, kvl_http_resp_t *resp)
{
    fixture_t *f = ctx;
    f->handled++;
    resp->body = json_pack("{s:s, s:i}", "user", r->user, "segs", (int)r->n_segs);
}

/* Every answered request is counted in its class (a route, static, other) by status, with
 * its time in the histogram; /metrics is the one route allowed outside /api/; with
 * metrics_anonymous a loopback GET of it needs no credentials, and nothing else opens. */
static void test_stats(void **state)
{
    fixture_t *f = *state;
    for (int anon = 0; anon < 2; anon++) {
        f->cfg->metrics_anonymous = anon;
        f->extra_route = on_metrics_test;
        run(f, script_stats);
        assert_int_equal(f->n_res, 8);
        assert_int_equal(f->res[0].status, anon ? 200 : 401);
        if (anon) {
            assert_non_null(strstr(f->res[0].body, "\"anonymous\""));
        }
        assert_int_equal(f->res[1].status, 200);
        assert_non_null(strstr(f->res[1].body, "token:wall"));
        assert_int_equal(f->res[6].status, 401);
        assert_int_equal(f->res[7].status, 404);
        const class_seen_t *t = seen_class("/api/v1/test"), *m = seen_class("/metrics"),
                           *o = seen_class("other"), *s = seen_class("static");
        assert_non_null(t);
        assert_non_null(m);
        assert_non_null(o);
        assert_non_null(s);
        assert_int_equal(t->count, 2);
        assert_int_equal(t->by_status[0], 2);
        assert_true(t->le_last <= t->count && t->sum_s > 0);
        assert_int_equal(m->count, anon ? 2 : 1);
        assert_int_equal(m->by_status[0], anon ? 2 : 1);
        /* no credentials on /metrics (without anon), /api/v1/nothing, /api/v1/test without */
        assert_int_equal(o->count, anon ? 2 : 3);
        assert_int_equal(o->by_status[1], anon ? 1 : 2);
        assert_int_equal(o->by_status[2], 1);
        /* /metrics/x is no route (the prefix is exactly /metrics): a static file's 404 */
        assert_int_equal(s->count, 2);
        assert_int_equal(s->by_status[0], 1);
        assert_int_equal(s->by_status[2], 1);
    }
    f->extra_route = NULL;
}

static void test_concurrent(void **state)
{
    fixture_t *f = *state;
    run(f, script_concurrent);
    assert_int_equal(f->res[0].status, N_THREADS * N_PER_THREAD);
    assert_int_equal(f->handled, N_THREADS * N_PER_THREAD);
}

static void script_one(fixture_t *f)
{
    char tok[200];
    snprintf(tok, sizeof(tok), "Authorization: Bearer %s", f->viewer_token);
    get(f, "/api/v1/test", tok);
}

static void *client_one(void *arg)
{
    script_one(arg);
    return NULL;
}

/* A request waiting for the loop when the server stops is answered 503, and the stop
 * completes (MHD refuses to stop with a suspended connection). */
static void test_stop_in_flight(void **state)
{
    fixture_t *f = *state;
    char err[300];
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(kvl_http_new(&f->loop, f->cfg, &f->h, err, sizeof(err)), 0);
    assert_int_equal(kvl_http_route(f->h, "GET", "/api/v1/test", KVL_ROLE_VIEWER, on_test_get, f),
                     0);
    assert_int_equal(kvl_http_start(f->h, err, sizeof(err)), 0);
    f->port = kvl_http_port(f->h);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_one, f), 0);
    /* the loop does not run: the request stays queued */
    for (int i = 0; i < 400 && kvl_http_queued(f->h) == 0; i++) {
        usleep(50 * 1000);
    }
    assert_int_equal(kvl_http_queued(f->h), 1);
    kvl_http_free(f->h);
    f->h = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_int_equal(f->res[0].status, 503);
    assert_int_equal(f->handled, 0);
}

static kvl_collector_cfg_t *load(const char *http_lines, char *err, size_t errlen)
{
    char text[1024];
    snprintf(text, sizeof(text),
             "listen: 127.0.0.1:5140\ndata_dir: /var/lib/kv\ninsecure: true\n%s", http_lines);
    return kvl_collector_cfg_parse("c.yaml", text, err, errlen);
}

static void script_anonymous(fixture_t *f)
{
    char tok[200];
    snprintf(tok, sizeof(tok), "Authorization: Bearer %s", f->viewer_token);
    get(f, "/api/v1/whoami", NULL);                          /* 0 */
    get(f, "/api/v1/test", NULL);                            /* 1 */
    post(f, "/api/v1/test", NULL, NULL, "{\"v\":\"anon\"}"); /* 2 */
    get(f, "/api/v1/whoami", tok);                           /* 3: credentials still count */
    get(f, "/api/v1/test", "Authorization: Bearer kvl_nosuchtoken"); /* 4: and are checked */
}

/* anonymous_viewer: a read without credentials is a viewer's, a write still needs them. */
static void test_anonymous(void **state)
{
    fixture_t *f = *state;
    f->cfg->anonymous_viewer = true;
    run(f, script_anonymous);
    result_t *r = f->res;
    assert_int_equal(r[0].status, 200);
    assert_non_null(strstr(r[0].body, "\"user\":\"anonymous\""));
    assert_non_null(strstr(r[0].body, "\"role\":\"viewer\""));
    assert_null(strstr(r[0].body, "csrf_token"));
    assert_int_equal(r[1].status, 200);
    assert_int_equal(r[2].status, 401);
    assert_int_equal(r[3].status, 200);
    assert_non_null(strstr(r[3].body, "\"user\":\"token:wall\""));
    assert_int_equal(r[4].status, 401);
}

/* The `http:` section as collector.yaml gives it. */
static void test_config(void **state)
{
    KVL_UNUSED(state);
    char err[600];
    kvl_collector_cfg_t *c = load("", err, sizeof(err));
    assert_non_null(c);
    assert_false(c->http->enabled);
    assert_string_equal(c->http->users_file, "/var/lib/kv/users");
    assert_string_equal(c->http->tokens_file, "/var/lib/kv/tokens");
    kvl_collector_cfg_free(c);

    c = load("http:\n  listen: '[::1]:8081'\n  session_ttl: 1h\n", err, sizeof(err));
    assert_non_null(c);
    assert_true(c->http->enabled);
    assert_string_equal(c->http->host, "::1");
    assert_int_equal(c->http->port, 8081);
    assert_int_equal(c->http->tls, 0);
    assert_int_equal(c->http->session_ttl_ms, 3600 * 1000);
    kvl_collector_cfg_free(c);

    c = load("http:\n  listen: 0.0.0.0:8080\n", err, sizeof(err));
    assert_null(c);
    assert_non_null(strstr(err, "c.yaml:5:11:"));
    assert_non_null(strstr(err, "plain HTTP may listen on 127.0.0.1 or ::1 only, not 0.0.0.0"));

    c = load("http:\n  tls: true\n", err, sizeof(err));
    assert_null(c);
    assert_non_null(strstr(err, "c.yaml:5:8:"));
    assert_non_null(strstr(err, "HTTPS needs the collector's certificate"));

    c = load("http:\n  listen: localhost:8080\n", err, sizeof(err));
    assert_null(c);
    assert_non_null(strstr(err, "c.yaml:5:"));
    assert_non_null(strstr(err, "numeric address"));

    c = load("http:\n  colour: blue\n", err, sizeof(err));
    assert_null(c);
    assert_non_null(strstr(err, "colour"));

    c = load("http:\n  anonymous_viewer: true\n", err, sizeof(err));
    assert_non_null(c);
    assert_true(c->http->anonymous_viewer);
    kvl_collector_cfg_free(c);

    c = load("http:\n  listen: '[::]:8443'\n  tls: true\n  anonymous_viewer: true\n", err,
             sizeof(err));
    assert_null(c);
    assert_non_null(strstr(err, "anonymous_viewer"));

    c = load("http: 8080\n", err, sizeof(err));
    assert_null(c);
    assert_non_null(strstr(err, "expected a mapping"));
}

static void *client_bad(void *arg)
{
    fixture_t *f = arg;
    char bad[300];
    get(f, "/api/v1/test", basic(bad, sizeof(bad), "alice", "wrong-pass"));
    return NULL;
}

/* A refusal waits its delay on the loop's timer, not on a server thread; a stop during the
 * delay answers it 503 at once and completes. */
static void test_stop_in_delay(void **state)
{
    fixture_t *f = *state;
    char err[300];
    f->cfg->threads = 1;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(kvl_http_new(&f->loop, f->cfg, &f->h, err, sizeof(err)), 0);
    assert_int_equal(kvl_http_route(f->h, "GET", "/api/v1/test", KVL_ROLE_VIEWER, on_test_get, f),
                     0);
    assert_int_equal(kvl_http_start(f->h, err, sizeof(err)), 0);
    f->port = kvl_http_port(f->h);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_bad, f), 0);
    int i;
    for (i = 0; i < 400 && kvl_http_queued(f->h) == 0; i++) {
        usleep(50 * 1000);
    }
    assert_int_equal(kvl_http_queued(f->h), 1);
    /* the loop takes it and starts its 250 ms timer, which cannot fire outside uv_run */
    for (i = 0; i < 1000 && kvl_http_queued(f->h) > 0; i++) {
        uv_run(&f->loop, UV_RUN_NOWAIT);
        usleep(10 * 1000);
    }
    assert_int_equal(kvl_http_queued(f->h), 0);
    kvl_http_free(f->h);
    f->h = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_int_equal(f->res[0].status, 503);
    assert_int_equal(f->handled, 0);
}

static void script_throttle(fixture_t *f)
{
    char a[300], bad[300], tok[200], kiosk[200];
    basic(a, sizeof(a), "alice", "alice-pass-1");
    basic(bad, sizeof(bad), "alice", "guess-guess");
    snprintf(tok, sizeof(tok), "Authorization: Bearer %s", f->viewer_token);
    snprintf(kiosk, sizeof(kiosk), "/api/v1/test?kiosk=%s", f->viewer_token);
    get(f, "/api/v1/test", a); /* 0 */
    for (int i = 0; i < 10; i++) {
        get(f, "/api/v1/test", bad); /* 1-10 */
    }
    get(f, "/api/v1/test", a);   /* 11 */
    get(f, "/api/v1/test", tok); /* 12 */
    get(f, kiosk, NULL);         /* 13 */
    post(f, "/api/v1/login", NULL, NULL,
         "{\"user\":\"alice\",\"password\":\"alice-pass-1\"}"); /* 14 */
    get(f, "/api/v1/test", NULL);                               /* 15 */
}

/* Ten refused credentials from one address within a minute: its next credentials, good or
 * bad, are not checked (429) until the minute ends; without credentials still 401. */
static void test_throttle(void **state)
{
    fixture_t *f = *state;
    run(f, script_throttle);
    result_t *r = f->res;
    assert_int_equal(r[0].status, 200);
    for (int i = 1; i <= 10; i++) {
        assert_int_equal(r[i].status, 401);
    }
    for (int i = 11; i <= 14; i++) {
        assert_int_equal(r[i].status, 429);
    }
    assert_non_null(strstr(r[11].body, "try again in a minute"));
    assert_int_equal(r[15].status, 401);
    assert_int_equal(f->handled, 1);
}

static void test_parse(void **state)
{
    KVL_UNUSED(state);
    kvl_http_target_t t;
    char why[200];
    assert_int_equal(kvl_http_target_parse("/a/b%2Fc?k=v+w&e&z=%41", &t, why, sizeof(why)), 0);
    assert_string_equal(t.path, "/a/b/c");
    assert_string_equal(kvl_http_target_param(&t, "k"), "v w");
    assert_string_equal(kvl_http_target_param(&t, "e"), "");
    assert_string_equal(kvl_http_target_param(&t, "z"), "A");
    assert_null(kvl_http_target_param(&t, "q"));
    kvl_http_target_free(&t);
    assert_int_equal(kvl_http_target_parse("x", &t, why, sizeof(why)), KVL_EINVAL);
    assert_int_equal(kvl_http_target_parse("/a/./b", &t, why, sizeof(why)), KVL_EINVAL);
    assert_int_equal(kvl_http_target_parse("/a/%", &t, why, sizeof(why)), KVL_EINVAL);
    assert_int_equal(kvl_http_target_parse("/a/%2", &t, why, sizeof(why)), KVL_EINVAL);
    assert_int_equal(kvl_http_target_parse("/a/%e2%80", &t, why, sizeof(why)), KVL_EINVAL);
    assert_int_equal(kvl_http_target_parse("/a%0a", &t, why, sizeof(why)), KVL_EINVAL);
    assert_int_equal(kvl_http_target_parse("/a/", &t, why, sizeof(why)), 0);
    kvl_http_target_free(&t);

    kvl_http_auth_t a;
    assert_int_equal(kvl_http_auth_parse("Basic YWxpY2U6cHc6eA==", &a, why, sizeof(why)), 0);
    assert_int_equal(a.kind, KVL_HTTP_AUTH_BASIC);
    assert_string_equal(a.user, "alice");
    assert_string_equal(a.password, "pw:x");
    assert_int_equal(kvl_http_auth_parse("bearer  kvl_ab12 ", &a, why, sizeof(why)), 0);
    assert_int_equal(a.kind, KVL_HTTP_AUTH_BEARER);
    assert_string_equal(a.token, "kvl_ab12");
    assert_int_equal(kvl_http_auth_parse("Basic YWxpY2U=", &a, why, sizeof(why)), KVL_EINVAL);
    assert_int_equal(kvl_http_auth_parse("Basic ====", &a, why, sizeof(why)), KVL_EINVAL);
    assert_int_equal(kvl_http_auth_parse("Bearer a\"b", &a, why, sizeof(why)), KVL_EINVAL);
    assert_int_equal(kvl_http_auth_parse(NULL, &a, why, sizeof(why)), 0);
    assert_int_equal(a.kind, KVL_HTTP_AUTH_NONE);

    char v[300];
    assert_int_equal(
        kvl_http_cookie_get("a=1; kaaval_session=abc; b=2", "kaaval_session", v, sizeof(v)), 1);
    assert_string_equal(v, "abc");
    assert_int_equal(kvl_http_cookie_get("a=1", "kaaval_session", v, sizeof(v)), 0);
    assert_int_equal(kvl_http_cookie_get("kaaval_session=a b", "kaaval_session", v, sizeof(v)),
                     KVL_EINVAL);

    json_t *j;
    assert_int_equal(kvl_http_body_parse("{\"a\":[1]}", 9, &j, why, sizeof(why)), 0);
    assert_true(json_is_object(j));
    json_decref(j);
    /* a NUL inside a string is refused (jansson without JSON_ALLOW_NUL) */
    assert_int_equal(kvl_http_body_parse("[\"\\u0000\"]", 10, &j, why, sizeof(why)), KVL_EINVAL);
    assert_int_equal(kvl_http_body_parse("{\"a\":\"\xff\"}", 9, &j, why, sizeof(why)), KVL_EINVAL);
    assert_int_equal(kvl_http_body_parse("1", 1, &j, why, sizeof(why)), KVL_EINVAL);
    assert_int_equal(kvl_http_body_parse("", 0, &j, why, sizeof(why)), 0);
    assert_null(j);

    assert_true(kvl_http_host_is_loopback("127.0.0.1"));
    assert_true(kvl_http_host_is_loopback("127.1.2.3"));
    assert_true(kvl_http_host_is_loopback("::1"));
    assert_false(kvl_http_host_is_loopback("0.0.0.0"));
    assert_false(kvl_http_host_is_loopback("::"));
    assert_false(kvl_http_host_is_loopback("10.0.0.1"));
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_config),
        cmocka_unit_test_setup_teardown(test_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_anonymous, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_static, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_in_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
