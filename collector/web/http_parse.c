/*
 * http_parse.c — the request checks of http_parse.h: UTF-8 and control characters,
 * percent-decoding, the request target and its query, the Authorization header, cookies
 * and JSON bodies. Pure functions: the server (http.c) and tests/fuzz/fuzz_http_req.c call
 * them alike.
 */
#include "http_parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvl.h"

static int fail(char *why, size_t whylen, const char *fmt, ...) KVL_PRINTF(3, 4);

static int fail(char *why, size_t whylen, const char *fmt, ...)
{
    if (why != NULL && whylen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, whylen, fmt, ap);
        va_end(ap);
    }
    return KVL_EINVAL;
}

bool kvl_http_text_ok(const char *s, size_t len, bool allow_tab)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) {
            if ((c < 0x20 && !(allow_tab && c == '\t')) || c == 0x7f) {
                return false;
            }
            i++;
            continue;
        }
        size_t n;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n) {
            return false;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        /* overlong forms, surrogates, beyond U+10FFFF; C1 controls */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f)) {
            return false;
        }
        i += n + 1;
    }
    return true;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int kvl_http_decode(const char *in, size_t len, bool plus_space, char *out, size_t outlen,
                    char *why, size_t whylen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(in[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(in[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                return fail(why, whylen, "a bad percent escape");
            }
            c = (char)(hi * 16 + lo);
            if (c == '\0') {
                return fail(why, whylen, "a NUL byte (%%00)");
            }
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        } else if (c == '\0') {
            return fail(why, whylen, "a NUL byte");
        }
        if (o + 1 >= outlen) {
            return fail(why, whylen, "too long (at most %zu bytes)", outlen - 1);
        }
        out[o++] = c;
    }
    if (outlen == 0) {
        return fail(why, whylen, "no room");
    }
    out[o] = '\0';
    if (!kvl_http_text_ok(out, o, false)) {
        return fail(why, whylen, "not valid UTF-8, or a control character");
    }
    return 0;
}

static bool key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > 64) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-')) {
            return false;
        }
    }
    return true;
}

void kvl_http_target_free(kvl_http_target_t *t)
{
    if (t == NULL) {
        return;
    }
    free(t->path);
    for (size_t i = 0; i < t->n_params; i++) {
        free(t->params[i].key);
        free(t->params[i].value);
    }
    memset(t, 0, sizeof(*t));
}

const char *kvl_http_target_param(const kvl_http_target_t *t, const char *key)
{
    for (size_t i = 0; i < t->n_params; i++) {
        if (strcmp(t->params[i].key, key) == 0) {
            return t->params[i].value;
        }
    }
    return NULL;
}

/* Checks a decoded path's segments. */
static int path_check(const char *p, char *why, size_t whylen)
{
    if (strchr(p, '\\') != NULL) {
        return fail(why, whylen, "the path holds a backslash");
    }
    const char *s = p + 1;
    while (*s != '\0') {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) {
            return fail(why, whylen, "the path holds a '.' or '..' segment");
        }
        if (n == 0 && e != NULL) {
            return fail(why, whylen, "the path holds an empty segment ('//')");
        }
        if (e == NULL) {
            break;
        }
        s = e + 1;
    }
    return 0;
}

static int param_add(kvl_http_target_t *t, const char *s, size_t n, char *why, size_t whylen)
{
    if (n == 0) {
        return 0; /* "a=1&&b=2": an empty piece is nothing */
    }
    if (t->n_params == KVL_HTTP_QUERY_MAX) {
        return fail(why, whylen, "more than %d query parameters", KVL_HTTP_QUERY_MAX);
    }
    const char *eq = memchr(s, '=', n);
    size_t kl = eq ? (size_t)(eq - s) : n;
    char key[65];
    char sub[128];
    if (kvl_http_decode(s, kl, true, key, sizeof(key), sub, sizeof(sub)) != 0 || !key_ok(key)) {
        return fail(why, whylen, "a query parameter's name must be 1 to 64 of A-Z a-z 0-9 _ . -");
    }
    if (kvl_http_target_param(t, key) != NULL) {
        return fail(why, whylen, "query parameter '%s' given twice", key);
    }
    char *val = malloc(KVL_HTTP_QUERY_VALUE_MAX + 1);
    if (val == NULL) {
        return fail(why, whylen, "out of memory");
    }
    val[0] = '\0';
    if (eq != NULL && kvl_http_decode(eq + 1, n - kl - 1, true, val, KVL_HTTP_QUERY_VALUE_MAX + 1,
                                      sub, sizeof(sub)) != 0) {
        free(val);
        return fail(why, whylen, "query parameter '%s': %s", key, sub);
    }
    char *k = strdup(key);
    if (k == NULL) {
        free(val);
        return fail(why, whylen, "out of memory");
    }
    t->params[t->n_params].key = k;
    t->params[t->n_params].value = val;
    t->n_params++;
    return 0;
}

int kvl_http_target_parse(const char *raw, kvl_http_target_t *t, char *why, size_t whylen)
{
    memset(t, 0, sizeof(*t));
    size_t len = strnlen(raw, KVL_HTTP_URL_MAX + 1);
    if (len > KVL_HTTP_URL_MAX) {
        return fail(why, whylen, "the request target is longer than %d bytes", KVL_HTTP_URL_MAX);
    }
    if (raw[0] != '/') {
        return fail(why, whylen, "the request target must start with '/'");
    }
    const char *q = strchr(raw, '?');
    size_t pl = q ? (size_t)(q - raw) : len;
    const char *hash = memchr(raw, '#', len);
    if (hash != NULL) {
        return fail(why, whylen, "the request target holds a '#'");
    }
    char sub[128];
    t->path = malloc(pl + 1);
    if (t->path == NULL) {
        return fail(why, whylen, "out of memory");
    }
    if (kvl_http_decode(raw, pl, false, t->path, pl + 1, sub, sizeof(sub)) != 0) {
        kvl_http_target_free(t);
        return fail(why, whylen, "the path: %s", sub);
    }
    if (path_check(t->path, why, whylen) != 0) {
        kvl_http_target_free(t);
        return KVL_EINVAL;
    }
    if (q != NULL) {
        const char *s = q + 1;
        const char *end = raw + len;
        while (s <= end) {
            const char *amp = memchr(s, '&', (size_t)(end - s));
            const char *e = amp ? amp : end;
            if (param_add(t, s, (size_t)(e - s), why, whylen) != 0) {
                kvl_http_target_free(t);
                return KVL_EINVAL;
            }
            s = e + 1;
        }
    }
    return 0;
}

bool kvl_http_user_name_ok(const char *name)
{
    size_t n = strnlen(name, KVL_HTTP_USER_MAX + 1);
    if (n == 0 || n > KVL_HTTP_USER_MAX || name[0] == '-' || name[0] == '.') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '@' || c == '-')) {
            return false;
        }
    }
    return true;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+') {
        return 62;
    }
    if (c == '/') {
        return 63;
    }
    return -1;
}

/* Standard base64 with padding; returns the decoded length or -1. */
static long b64_decode(const char *in, size_t len, unsigned char *out, size_t outlen)
{
    if (len % 4 != 0) {
        return -1;
    }
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            if (in[i + k] == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
            } else if (pad > 0 || (v[k] = b64val(in[i + k])) < 0) {
                return -1;
            }
        }
        unsigned long w = ((unsigned long)v[0] << 18) | ((unsigned long)v[1] << 12) |
                          ((unsigned long)v[2] << 6) | (unsigned long)v[3];
        unsigned char b[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8), (unsigned char)w};
        for (int k = 0; k < 3 - pad; k++) {
            if (o == outlen) {
                return -1;
            }
            out[o++] = b[k];
        }
    }
    return (long)o;
}

static bool token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           strchr("_.~+/=-", c) != NULL;
}

int kvl_http_auth_parse(const char *header, kvl_http_auth_t *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (header == NULL) {
        return 0;
    }
    size_t hl = strnlen(header, 1024);
    if (hl >= 1024) {
        return fail(why, whylen, "the Authorization header is too long");
    }
    const char *sp = strchr(header, ' ');
    if (sp == NULL) {
        return fail(why, whylen, "the Authorization header must be 'Basic ...' or 'Bearer ...'");
    }
    size_t sl = (size_t)(sp - header);
    const char *cred = sp + 1;
    while (*cred == ' ') {
        cred++;
    }
    size_t cl = strlen(cred);
    while (cl > 0 && cred[cl - 1] == ' ') {
        cl--;
    }
    if (sl == 5 && strncasecmp(header, "Basic", 5) == 0) {
        unsigned char buf[KVL_HTTP_USER_MAX + KVL_HTTP_PASSWORD_MAX + 2];
        long n = b64_decode(cred, cl, buf, sizeof(buf));
        if (n < 0) {
            return fail(why, whylen,
                        "the Basic credentials are not base64 of user:password "
                        "(or too long)");
        }
        unsigned char *colon = memchr(buf, ':', (size_t)n);
        if (colon == NULL) {
            return fail(why, whylen, "the Basic credentials hold no ':'");
        }
        size_t ul = (size_t)(colon - buf);
        size_t pl = (size_t)n - ul - 1;
        if (ul > KVL_HTTP_USER_MAX || pl > KVL_HTTP_PASSWORD_MAX) {
            return fail(why, whylen, "the user name or password is too long");
        }
        memcpy(out->user, buf, ul);
        out->user[ul] = '\0';
        memcpy(out->password, colon + 1, pl);
        out->password[pl] = '\0';
        if (!kvl_http_user_name_ok(out->user) || memchr(out->password, '\0', pl) != NULL ||
            !kvl_http_text_ok(out->password, pl, false)) {
            memset(out, 0, sizeof(*out));
            return fail(why, whylen, "the user name or password holds characters not allowed");
        }
        out->kind = KVL_HTTP_AUTH_BASIC;
        return 0;
    }
    if (sl == 6 && strncasecmp(header, "Bearer", 6) == 0) {
        if (cl == 0 || cl > KVL_HTTP_TOKEN_MAX) {
            return fail(why, whylen, "the Bearer token is empty or too long");
        }
        for (size_t i = 0; i < cl; i++) {
            if (!token_char(cred[i])) {
                return fail(why, whylen, "the Bearer token holds characters not allowed");
            }
        }
        memcpy(out->token, cred, cl);
        out->token[cl] = '\0';
        out->kind = KVL_HTTP_AUTH_BEARER;
        return 0;
    }
    return fail(why, whylen, "the Authorization header must be 'Basic ...' or 'Bearer ...'");
}

int kvl_http_cookie_get(const char *header, const char *name, char *out, size_t outlen)
{
    if (header == NULL) {
        return 0;
    }
    size_t nl = strlen(name);
    const char *s = header;
    size_t guard = 0;
    while (*s != '\0' && guard++ < 256) {
        while (*s == ' ' || *s == '\t') {
            s++;
        }
        const char *semi = strchr(s, ';');
        size_t len = semi ? (size_t)(semi - s) : strlen(s);
        const char *eq = memchr(s, '=', len);
        if (eq != NULL && (size_t)(eq - s) == nl && memcmp(s, name, nl) == 0) {
            const char *v = eq + 1;
            size_t vl = len - nl - 1;
            while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) {
                vl--;
            }
            if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
                v++;
                vl -= 2;
            }
            if (vl > KVL_HTTP_TOKEN_MAX || vl >= outlen) {
                return KVL_EINVAL;
            }
            for (size_t i = 0; i < vl; i++) {
                unsigned char c = (unsigned char)v[i];
                if (c <= 0x20 || c >= 0x7f || c == ';' || c == ',' || c == '"' || c == '\\') {
                    return KVL_EINVAL;
                }
            }
            memcpy(out, v, vl);
            out[vl] = '\0';
            return 1;
        }
        if (semi == NULL) {
            break;
        }
        s = semi + 1;
    }
    return 0;
}

/* Nesting depth of a JSON text, strings skipped; -1 when a string is unterminated. */
static int json_depth(const char *s, size_t len)
{
    int depth = 0, max = 0;
    bool in_str = false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_str = false;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max) {
                max = depth;
            }
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return in_str ? -1 : max;
}

int kvl_http_body_parse(const char *body, size_t len, json_t **out, char *why, size_t whylen)
{
    *out = NULL;
    if (len == 0) {
        return 0;
    }
    if (len > KVL_HTTP_BODY_MAX) {
        return fail(why, whylen, "the body is larger than %d bytes", KVL_HTTP_BODY_MAX);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)body[i];
        if (c < 0x20 && c != '\n' && c != '\r' && c != '\t') {
            return fail(why, whylen, "the body holds a control character");
        }
    }
    /* UTF-8: jansson refuses invalid sequences below */
    int d = json_depth(body, len);
    if (d > KVL_HTTP_JSON_DEPTH_MAX) {
        return fail(why, whylen, "the body nests deeper than %d levels", KVL_HTTP_JSON_DEPTH_MAX);
    }
    json_error_t e;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (j == NULL) {
        return fail(why, whylen, "the body is not JSON: %s at line %d column %d", e.text, e.line,
                    e.column);
    }
    if (!json_is_object(j) && !json_is_array(j)) {
        json_decref(j);
        return fail(why, whylen, "the body must be a JSON object or array");
    }
    *out = j;
    return 0;
}
