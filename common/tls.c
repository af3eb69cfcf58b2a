/*
 * tls.c — OpenSSL over memory buffers (see tls.h). The only file that includes OpenSSL.
 *
 * Each session owns an SSL object reading from one memory BIO (`in`, filled by
 * kvl_tls_feed) and writing into another (`out`, drained by kvl_tls_take_output). An empty
 * `in` reports "try again" rather than end of file, so OpenSSL asks for more bytes instead
 * of failing. Nothing here waits: every call does what the bytes at hand allow.
 *
 * Error text is gathered from three places, best first: the verify callback (our side
 * rejected the peer's certificate: whose, and why), the info callback (the peer sent a
 * fatal alert: it rejected us, and the alert says why), and OpenSSL's error queue.
 */
#include "tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "kvl.h"

/* TLS 1.2 only: forward secrecy and AEAD. TLS 1.3 keeps OpenSSL's own (all AEAD) list. */
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL"

struct kvl_tls_ctx {
    SSL_CTX *ssl_ctx;
    kvl_tls_role_t role;
    char subject[256];
    char id[256]; /* its own certificate's one CN, "" when none */
};

struct kvl_tls {
    SSL *ssl;
    BIO *in;  /* network bytes for OpenSSL; owned by ssl */
    BIO *out; /* OpenSSL's bytes for the network; owned by ssl */
    bool established;
    bool failed;
    char peer_id[256];
    bool has_peer_id;
    char describe[96];
    char verify_err[512]; /* our verdict on the peer's certificate, if it failed */
    char alert[160];      /* a fatal alert the peer sent, if any */
    char err[768];
};

/* ----------------------------------------------------------------- helpers ------------- */

/* Writes a name as "CN=a1,O=kaaval" into out. */
/* A certificate's subject CN when it has exactly one without a NUL byte (the identity the
 * collector takes), else false. */
static bool cert_cn(X509 *cert, char *out, size_t outlen)
{
    X509_NAME *name = cert != NULL ? X509_get_subject_name(cert) : NULL;
    int at = name != NULL ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    if (at < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, at) >= 0) {
        return false; /* none, or more than one: no identity */
    }
    const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, cn);
    bool ok = n > 0 && (size_t)n < outlen && memchr(utf8, '\0', (size_t)n) == NULL;
    if (ok) {
        memcpy(out, utf8, (size_t)n);
        out[n] = '\0';
    }
    OPENSSL_free(utf8);
    return ok;
}

static void name_text(const X509_NAME *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "?");
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL || name == NULL) {
        BIO_free(b);
        return;
    }
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(b, out, (int)outlen - 1);
        out[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
}

static void time_text(const ASN1_TIME *tm, char *out, size_t outlen)
{
    snprintf(out, outlen, "?");
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL || tm == NULL) {
        BIO_free(b);
        return;
    }
    if (ASN1_TIME_print(b, tm) > 0) {
        int n = BIO_read(b, out, (int)outlen - 1);
        out[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
}

/* The last error on OpenSSL's queue as text (the queue is emptied). */
static void queue_text(char *out, size_t outlen)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0) {
        last = e;
    }
    if (last == 0) {
        snprintf(out, outlen, "unknown TLS error");
        return;
    }
    const char *reason = ERR_reason_error_string(last);
    if (reason != NULL) {
        snprintf(out, outlen, "%s", reason);
    } else {
        ERR_error_string_n(last, out, outlen);
    }
}

/* ----------------------------------------------------------------- context ------------- */

static int verify_cb(int ok, X509_STORE_CTX *store)
{
    if (ok) {
        return 1;
    }
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    kvl_tls_t *t = ssl ? SSL_get_app_data(ssl) : NULL;
    if (t == NULL || t->verify_err[0] != '\0') {
        return 0; /* the first failure explains; later ones follow from it */
    }
    int code = X509_STORE_CTX_get_error(store);
    X509 *cert = X509_STORE_CTX_get_current_cert(store);
    char subject[200], issuer[200], when[64] = "";
    name_text(cert ? X509_get_subject_name(cert) : NULL, subject, sizeof(subject));
    name_text(cert ? X509_get_issuer_name(cert) : NULL, issuer, sizeof(issuer));
    const char *hint = "";
    switch (code) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        time_text(cert ? X509_get0_notAfter(cert) : NULL, when, sizeof(when));
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        time_text(cert ? X509_get0_notBefore(cert) : NULL, when, sizeof(when));
        break;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        hint = " (not signed by the configured CA)";
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        hint = " (no subjectAltName matches the collector address or server_name)";
        break;
    case X509_V_ERR_INVALID_PURPOSE:
        hint = " (an agent needs a clientAuth certificate, the collector a serverAuth one)";
        break;
    default:
        break;
    }
    snprintf(t->verify_err, sizeof(t->verify_err), "certificate '%s' (issuer '%s'): %s%s%s%s",
             subject, issuer, X509_verify_cert_error_string(code), when[0] ? " on " : "", when,
             hint);
    return 0;
}

static void info_cb(const SSL *ssl, int where, int ret)
{
    if ((where & SSL_CB_READ_ALERT) != SSL_CB_READ_ALERT || (ret >> 8) != SSL3_AL_FATAL) {
        return;
    }
    kvl_tls_t *t = SSL_get_app_data(ssl);
    if (t == NULL || t->alert[0] != '\0') {
        return;
    }
    /* OpenSSL 3.0 names no TLS 1.3 alert; the one that matters here is 116 (RFC 8446). */
    int code = ret & 0xff;
    const char *desc = code == 116 ? "certificate required" : SSL_alert_desc_string_long(ret);
    if (strcmp(desc, "unknown") == 0) {
        snprintf(t->alert, sizeof(t->alert), "the peer ended the session with TLS alert %d", code);
    } else {
        snprintf(t->alert, sizeof(t->alert), "the peer ended the session with the alert '%s'",
                 desc);
    }
}

kvl_tls_ctx_t *kvl_tls_ctx_new(kvl_tls_role_t role, const char *ca_file, const char *cert_file,
                               const char *key_file, char *err, size_t errlen)
{
    char why[256];
    ERR_clear_error();
    kvl_tls_ctx_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->ssl_ctx = SSL_CTX_new(TLS_method())) == NULL) {
        snprintf(err, errlen, "out of memory");
        free(c);
        return NULL;
    }
    c->role = role;
    SSL_CTX *sc = c->ssl_ctx;
    SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION);
    SSL_CTX_set_options(sc, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                                SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_num_tickets(sc, 0);
    SSL_CTX_set_info_callback(sc, info_cb);
    const char *what = NULL;
    const char *file = NULL;
    if (SSL_CTX_set_cipher_list(sc, TLS12_CIPHERS) != 1) {
        what = "cannot set the TLS 1.2 ciphers";
    } else if (SSL_CTX_load_verify_locations(sc, ca_file, NULL) != 1) {
        what = "cannot read the CA certificate";
        file = ca_file;
    } else if (cert_file == NULL && role == KVL_TLS_CLIENT) {
        /* A client without a certificate (tests): the collector refuses it. */
    } else if (SSL_CTX_use_certificate_chain_file(sc, cert_file) != 1) {
        what = "cannot read this side's certificate";
        file = cert_file;
    } else if (SSL_CTX_use_PrivateKey_file(sc, key_file, SSL_FILETYPE_PEM) != 1) {
        what = "cannot use the private key (or it does not belong to the certificate)";
        file = key_file;
    } else if (SSL_CTX_check_private_key(sc) != 1) {
        what = "the private key does not belong to the certificate";
        file = key_file;
    }
    if (what == NULL && role == KVL_TLS_SERVER) {
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
        if (names != NULL) {
            SSL_CTX_set_client_CA_list(sc, names); /* takes `names` */
        }
    }
    if (what != NULL) {
        queue_text(why, sizeof(why));
        snprintf(err, errlen, "%s%s%s: %s", what, file ? " " : "", file ? file : "", why);
        kvl_tls_ctx_free(c);
        return NULL;
    }
    int mode = SSL_VERIFY_PEER;
    if (role == KVL_TLS_SERVER) {
        mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(sc, mode, verify_cb);
    SSL_CTX_set_verify_depth(sc, 4);
    X509 *own = SSL_CTX_get0_certificate(sc);
    name_text(own ? X509_get_subject_name(own) : NULL, c->subject, sizeof(c->subject));
    if (!cert_cn(own, c->id, sizeof(c->id))) {
        c->id[0] = '\0';
    }
    return c;
}

void kvl_tls_ctx_free(kvl_tls_ctx_t *ctx)
{
    if (ctx == NULL) {
        return;
    }
    SSL_CTX_free(ctx->ssl_ctx);
    free(ctx);
}

const char *kvl_tls_ctx_subject(const kvl_tls_ctx_t *ctx)
{
    return ctx->subject;
}

const char *kvl_tls_ctx_id(const kvl_tls_ctx_t *ctx)
{
    return ctx->id[0] != '\0' ? ctx->id : NULL;
}

/* ----------------------------------------------------------------- sessions ------------ */

static bool is_ip(const char *s)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

kvl_tls_t *kvl_tls_new(kvl_tls_ctx_t *ctx, const char *peer_name)
{
    kvl_tls_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    ERR_clear_error();
    t->ssl = SSL_new(ctx->ssl_ctx);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->in == NULL || t->out == NULL) {
        goto fail;
    }
    BIO_set_mem_eof_return(t->in, -1);  /* empty means "wait for more", not end of stream */
    SSL_set_bio(t->ssl, t->in, t->out); /* the SSL owns both from here on */
    SSL_set_app_data(t->ssl, t);
    if (ctx->role == KVL_TLS_CLIENT) {
        if (peer_name == NULL || peer_name[0] == '\0') {
            goto fail_owned;
        }
        X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                                   X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
        if (is_ip(peer_name)) {
            if (X509_VERIFY_PARAM_set1_ip_asc(param, peer_name) != 1) {
                goto fail_owned;
            }
        } else if (SSL_set1_host(t->ssl, peer_name) != 1 ||
                   SSL_set_tlsext_host_name(t->ssl, peer_name) != 1) {
            goto fail_owned;
        }
        SSL_set_connect_state(t->ssl);
    } else {
        SSL_set_accept_state(t->ssl);
    }
    return t;
fail:
    BIO_free(t->in);
    BIO_free(t->out);
fail_owned:
    SSL_free(t->ssl);
    ERR_clear_error();
    free(t);
    return NULL;
}

void kvl_tls_free(kvl_tls_t *t)
{
    if (t == NULL) {
        return;
    }
    SSL_free(t->ssl);
    free(t);
}

/* Records why the session failed, from the best source available. */
static int fail(kvl_tls_t *t, int ssl_err)
{
    char q[256];
    if (ssl_err == SSL_ERROR_SYSCALL || ssl_err == SSL_ERROR_SSL) {
        queue_text(q, sizeof(q));
    } else {
        snprintf(q, sizeof(q), "TLS error %d", ssl_err);
        ERR_clear_error();
    }
    if (t->verify_err[0] != '\0') {
        snprintf(t->err, sizeof(t->err), "%s", t->verify_err);
    } else if (t->alert[0] != '\0') {
        snprintf(t->err, sizeof(t->err), "%s", t->alert);
    } else if (strcmp(q, "peer did not return a certificate") == 0) {
        snprintf(t->err, sizeof(t->err),
                 "the peer sent no certificate (one signed by the "
                 "configured CA is required)");
    } else if (strcmp(q, "wrong version number") == 0 || strcmp(q, "http request") == 0 ||
               strcmp(q, "packet length too long") == 0) {
        snprintf(t->err, sizeof(t->err),
                 "%s (the peer does not speak TLS: insecure on one "
                 "side only?)",
                 q);
    } else {
        snprintf(t->err, sizeof(t->err), "%s", q);
    }
    t->failed = true;
    return KVL_ETLS;
}

static void on_established(kvl_tls_t *t)
{
    t->established = true;
    const SSL_CIPHER *cipher = SSL_get_current_cipher(t->ssl);
    snprintf(t->describe, sizeof(t->describe), "%s %s", SSL_get_version(t->ssl),
             cipher ? SSL_CIPHER_get_name(cipher) : "?");
    X509 *peer = SSL_get0_peer_certificate(t->ssl);
    if (peer == NULL || SSL_get_verify_result(t->ssl) != X509_V_OK) {
        return;
    }
    t->has_peer_id = cert_cn(peer, t->peer_id, sizeof(t->peer_id));
}

int kvl_tls_handshake(kvl_tls_t *t)
{
    if (t->failed) {
        return KVL_ETLS;
    }
    if (t->established) {
        return 0;
    }
    ERR_clear_error();
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        on_established(t);
        return 0;
    }
    int e = SSL_get_error(t->ssl, rc);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    return fail(t, e);
}

int kvl_tls_feed(kvl_tls_t *t, const void *data, size_t len, kvl_buf_t *plain)
{
    if (t->failed) {
        return KVL_ETLS;
    }
    if (len > 0 && BIO_write(t->in, data, (int)len) != (int)len) {
        return KVL_ENOMEM;
    }
    int rc = kvl_tls_handshake(t);
    if (rc != 0 || !t->established) {
        return rc;
    }
    for (;;) {
        if (kvl_buf_reserve(plain, 16384) != 0) {
            return KVL_ENOMEM;
        }
        ERR_clear_error();
        int n = SSL_read(t->ssl, plain->data + plain->len, (int)(plain->cap - plain->len));
        if (n > 0) {
            plain->len += (size_t)n;
            continue;
        }
        int e = SSL_get_error(t->ssl, n);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            return 0;
        }
        if (e == SSL_ERROR_ZERO_RETURN) {
            return KVL_ECLOSED;
        }
        return fail(t, e);
    }
}

int kvl_tls_write(kvl_tls_t *t, const void *data, size_t len)
{
    if (t->failed) {
        return KVL_ETLS;
    }
    if (!t->established) {
        return KVL_EINVAL;
    }
    const uint8_t *p = data;
    while (len > 0) {
        int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
        ERR_clear_error();
        int n = SSL_write(t->ssl, p, chunk);
        if (n <= 0) {
            return fail(t, SSL_get_error(t->ssl, n));
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int kvl_tls_take_output(kvl_tls_t *t, kvl_buf_t *out)
{
    size_t waiting = BIO_ctrl_pending(t->out);
    if (waiting == 0) {
        return 0;
    }
    if (kvl_buf_reserve(out, waiting) != 0) {
        return KVL_ENOMEM;
    }
    int n = BIO_read(t->out, out->data + out->len, (int)waiting);
    if (n > 0) {
        out->len += (size_t)n;
    }
    return 0;
}

void kvl_tls_shutdown(kvl_tls_t *t)
{
    if (t->established && !t->failed) {
        ERR_clear_error();
        SSL_shutdown(t->ssl);
        ERR_clear_error();
    }
}

bool kvl_tls_established(const kvl_tls_t *t)
{
    return t->established;
}

const char *kvl_tls_peer_id(const kvl_tls_t *t)
{
    return t->has_peer_id ? t->peer_id : NULL;
}

const char *kvl_tls_describe(const kvl_tls_t *t)
{
    return t->describe;
}

const char *kvl_tls_error(const kvl_tls_t *t)
{
    return t->err;
}
