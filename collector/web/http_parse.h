/*
 * http_parse.h — the HTTP server's request checks as pure functions (no server, no I/O), so
 * the server and the fuzz target call the same code: the request target (path decoded and
 * checked, query parameters split, decoded and bounded), the Authorization header (Basic or
 * Bearer), one cookie of a Cookie header, and a JSON body under size and depth bounds.
 *
 * Each returns 0, or KVL_EINVAL with one sentence in `why` saying what is wrong (the server
 * answers 400 with it). Nothing here allocates except kvl_http_target_parse (freed with
 * kvl_http_target_free) and kvl_http_body_parse (a jansson reference for the caller).
 */
#ifndef KVL_HTTP_PARSE_H
#define KVL_HTTP_PARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define KVL_HTTP_URL_MAX 4096         /* request target, bytes, raw */
#define KVL_HTTP_BODY_MAX (64 * 1024) /* request body, bytes */
#define KVL_HTTP_JSON_DEPTH_MAX 16    /* nesting of arrays and objects in a body */
#define KVL_HTTP_QUERY_MAX 32         /* query parameters in one request */
#define KVL_HTTP_QUERY_VALUE_MAX 1024 /* one parameter's decoded value, bytes */
#define KVL_HTTP_TOKEN_MAX 256        /* a Bearer token, a cookie's value, bytes */
#define KVL_HTTP_USER_MAX 64          /* a user's name, bytes */
#define KVL_HTTP_PASSWORD_MAX 256     /* a password, bytes */

typedef struct kvl_http_param {
    char *key;
    char *value;
} kvl_http_param_t;

/* A request target split and decoded: "/a/b%20c?x=1&y" gives path "/a/b c" and the
 * parameters {x: "1"}, {y: ""}. */
typedef struct kvl_http_target {
    char *path;
    kvl_http_param_t params[KVL_HTTP_QUERY_MAX];
    size_t n_params;
} kvl_http_target_t;

/* Whether s[0..len) is valid UTF-8 without control characters (below 0x20, and 0x7f);
 * tab is allowed when allow_tab. */
bool kvl_http_text_ok(const char *s, size_t len, bool allow_tab);

/* Percent-decodes in[0..len) into out (NUL-terminated, outlen bytes); '+' becomes a space
 * when plus_space (query strings). Refuses a bad escape, %00, a result longer than
 * outlen - 1, invalid UTF-8 and control characters. */
int kvl_http_decode(const char *in, size_t len, bool plus_space, char *out, size_t outlen,
                    char *why, size_t whylen);

/* Splits and checks a raw request target (origin form: starts with '/'; at most
 * KVL_HTTP_URL_MAX bytes): the decoded path has no "." or ".." segment, no empty segment
 * but a trailing one, no backslash; at most KVL_HTTP_QUERY_MAX parameters, keys of
 * [A-Za-z0-9_.-] up to 64 bytes, each key once, values up to KVL_HTTP_QUERY_VALUE_MAX. On
 * success fills *t (free with kvl_http_target_free); on failure *t holds nothing. */
int kvl_http_target_parse(const char *raw, kvl_http_target_t *t, char *why, size_t whylen);
void kvl_http_target_free(kvl_http_target_t *t);
/* A parameter's value, or NULL. */
const char *kvl_http_target_param(const kvl_http_target_t *t, const char *key);

typedef enum {
    KVL_HTTP_AUTH_NONE = 0,
    KVL_HTTP_AUTH_BASIC,
    KVL_HTTP_AUTH_BEARER,
} kvl_http_auth_kind_t;

typedef struct kvl_http_auth {
    kvl_http_auth_kind_t kind;
    char user[KVL_HTTP_USER_MAX + 1];         /* Basic */
    char password[KVL_HTTP_PASSWORD_MAX + 1]; /* Basic */
    char token[KVL_HTTP_TOKEN_MAX + 1];       /* Bearer */
} kvl_http_auth_t;

/* Reads an Authorization header's value ("Basic <base64 user:password>" or "Bearer <token>",
 * the scheme case-insensitive). header NULL gives KVL_HTTP_AUTH_NONE and 0. A user name is
 * checked like a users file's (kvl_http_user_name_ok); a token is [A-Za-z0-9_.~+/=-]. */
int kvl_http_auth_parse(const char *header, kvl_http_auth_t *out, char *why, size_t whylen);

/* Whether a user or token name fits the users file: 1 to KVL_HTTP_USER_MAX bytes of
 * [A-Za-z0-9_.@-], not starting with '-' or '.'. */
bool kvl_http_user_name_ok(const char *name);

/* Finds cookie `name` in a Cookie header ("a=1; b=2"). Returns 1 and copies its value
 * (at most KVL_HTTP_TOKEN_MAX bytes of visible ASCII, no ';' ',' '"' '\\') into out
 * (outlen bytes), 0 when absent, or KVL_EINVAL for a malformed header or value. */
int kvl_http_cookie_get(const char *header, const char *name, char *out, size_t outlen);

/* Parses a request body: at most KVL_HTTP_BODY_MAX bytes, nesting at most
 * KVL_HTTP_JSON_DEPTH_MAX, valid UTF-8, an object or an array at the top. len 0 gives
 * *out NULL and 0. */
int kvl_http_body_parse(const char *body, size_t len, json_t **out, char *why, size_t whylen);

#endif
