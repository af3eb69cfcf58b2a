/*
 * fuzz_http_req.c — libFuzzer target for the HTTP server's request checks
 * (collector/web/http_parse.h), without a server: the input, as a request target, an
 * Authorization header, a Cookie header and a JSON body. Beyond not crashing, each accepted
 * result must keep the promises of the header: a decoded path starts with '/' and holds no
 * "." or ".." segment and no control character; parameters are within their bounds; a
 * decoded text encodes back to itself; credentials hold only their allowed characters; a
 * body is an object or an array.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_path(const char *p)
{
    CHECK(p[0] == '/');
    CHECK(kvl_http_text_ok(p, strlen(p), false));
    CHECK(strstr(p, "/../") == NULL && strstr(p, "/./") == NULL && strstr(p, "//") == NULL);
    size_t n = strlen(p);
    CHECK(!(n >= 3 && strcmp(p + n - 3, "/..") == 0) && !(n >= 2 && strcmp(p + n - 2, "/.") == 0));
    CHECK(strchr(p, '\\') == NULL);
}

static void check_target(const char *s)
{
    kvl_http_target_t t;
    char why[200];
    if (kvl_http_target_parse(s, &t, why, sizeof(why)) != 0) {
        CHECK(why[0] != '\0');
        CHECK(t.path == NULL && t.n_params == 0);
        return;
    }
    check_path(t.path);
    CHECK(t.n_params <= KVL_HTTP_QUERY_MAX);
    for (size_t i = 0; i < t.n_params; i++) {
        size_t kl = strlen(t.params[i].key);
        CHECK(kl >= 1 && kl <= 64);
        CHECK(strlen(t.params[i].value) <= KVL_HTTP_QUERY_VALUE_MAX);
        CHECK(kvl_http_text_ok(t.params[i].value, strlen(t.params[i].value), false));
        CHECK(kvl_http_target_param(&t, t.params[i].key) == t.params[i].value);
    }
    kvl_http_target_free(&t);
}

/* Decoding, then percent-encoding every byte and decoding again, gives the same text. */
static void check_decode(const char *s, size_t len)
{
    char out[512], again[512], why[200];
    if (kvl_http_decode(s, len, false, out, sizeof(out), why, sizeof(why)) != 0) {
        return;
    }
    size_t ol = strlen(out);
    CHECK(ol <= len);
    char enc[3 * sizeof(out) + 1];
    for (size_t i = 0; i < ol; i++) {
        snprintf(enc + 3 * i, 4, "%%%02X", (unsigned char)out[i]);
    }
    CHECK(kvl_http_decode(enc, 3 * ol, false, again, sizeof(again), why, sizeof(why)) == 0);
    CHECK(strcmp(out, again) == 0);
}

static void check_auth(const char *s)
{
    kvl_http_auth_t a;
    char why[200];
    if (kvl_http_auth_parse(s, &a, why, sizeof(why)) != 0) {
        CHECK(a.kind == KVL_HTTP_AUTH_NONE);
        return;
    }
    if (a.kind == KVL_HTTP_AUTH_BASIC) {
        CHECK(kvl_http_user_name_ok(a.user));
        CHECK(strlen(a.password) <= KVL_HTTP_PASSWORD_MAX);
    } else if (a.kind == KVL_HTTP_AUTH_BEARER) {
        size_t n = strlen(a.token);
        CHECK(n >= 1 && n <= KVL_HTTP_TOKEN_MAX);
        CHECK(strspn(a.token, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                              "_.~+/=-") == n);
    }
}

static void check_cookie(const char *s)
{
    char v[KVL_HTTP_TOKEN_MAX + 1];
    int rc = kvl_http_cookie_get(s, "kaaval_session", v, sizeof(v));
    CHECK(rc == 0 || rc == 1 || rc < 0);
    if (rc == 1) {
        CHECK(strlen(v) <= KVL_HTTP_TOKEN_MAX);
        CHECK(strpbrk(v, " ;,\"\\") == NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * KVL_HTTP_BODY_MAX) {
        return 0;
    }
    char *s = malloc(size + 1);
    if (s == NULL) {
        return 0;
    }
    memcpy(s, data, size);
    s[size] = '\0'; /* a NUL inside ends the text early, as in a header */
    check_target(s);
    check_decode(s, strnlen(s, size));
    check_auth(s);
    check_cookie(s);
    json_t *j = NULL;
    char why[200];
    if (kvl_http_body_parse((const char *)data, size, &j, why, sizeof(why)) == 0 && j != NULL) {
        CHECK(json_is_object(j) || json_is_array(j));
    } else {
        CHECK(j == NULL);
    }
    json_decref(j);
    free(s);
    return 0;
}
