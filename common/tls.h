/*
 * tls.h — mutual TLS between agent and collector, driven by bytes rather than sockets.
 *
 * A context (kvl_tls_ctx_t) is made once per daemon from its TLS settings: the CA that
 * signs every kaaval certificate, this daemon's own certificate chain and key. Both sides
 * verify the other against that CA; the collector requires a client certificate. TLS 1.2
 * is the floor, TLS 1.3 is chosen whenever both ends have it, and TLS 1.2 is limited to
 * ECDHE key exchange with AEAD ciphers.
 *
 * A session (kvl_tls_t) sits between a libuv stream and the frame reader: the caller feeds
 * it what the stream read (kvl_tls_feed, which hands back decrypted bytes), gives it what
 * should be sent (kvl_tls_write), and writes whatever the session has for the network
 * (kvl_tls_take_output) after each of those calls. The session never touches a socket
 * and never blocks; OpenSSL works on two memory buffers (one in, one out).
 *
 * Identity: the peer's identity is the commonName (CN) of its certificate's subject, taken
 * only from a certificate that verified. The collector compares it with the agent id the
 * Hello claims. CN rather than a subjectAltName because agent ids are free text (an id
 * need not be a valid DNS name) and because `openssl x509 -subject` shows it to operators.
 * The agent checks the collector's certificate against the name or IP address it
 * connects to (or a configured server_name): a DNS or IP subjectAltName must match.
 *
 * Errors are kept as text in the session (kvl_tls_error): which certificate (its subject)
 * and why (expired, unknown CA, no certificate, name mismatch, the alert the peer sent).
 * This module is the only user of OpenSSL.
 */
#ifndef KVL_TLS_H
#define KVL_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

typedef struct kvl_tls_ctx kvl_tls_ctx_t;
typedef struct kvl_tls kvl_tls_t;

typedef enum {
    KVL_TLS_CLIENT, /* the agent */
    KVL_TLS_SERVER, /* the collector: requires and verifies a client certificate */
} kvl_tls_role_t;

/* Makes a context from PEM files: the CA certificate(s) peers are verified against, this
 * side's certificate (chain) and its private key. A client may pass NULL for both (it then
 * shows no certificate, which the collector refuses; for tests). Returns NULL and writes
 * why (naming the file) into err. */
kvl_tls_ctx_t *kvl_tls_ctx_new(kvl_tls_role_t role, const char *ca_file, const char *cert_file,
                               const char *key_file, char *err, size_t errlen);
/* NULL-safe. Sessions made from the context keep it alive until they are freed. */
void kvl_tls_ctx_free(kvl_tls_ctx_t *ctx);

/* The subject of the context's own certificate ("CN=..."), for log lines. */
const char *kvl_tls_ctx_subject(const kvl_tls_ctx_t *ctx);
/* Its own certificate's CN, the identity its peer takes (the same rule as kvl_tls_peer_id);
 * NULL when it has none. */
const char *kvl_tls_ctx_id(const kvl_tls_ctx_t *ctx);

/* A new session. For a client, `peer_name` is the collector's host name or IP address the
 * certificate must match (required); for a server it is ignored. Returns NULL when out of
 * memory. */
kvl_tls_t *kvl_tls_new(kvl_tls_ctx_t *ctx, const char *peer_name);
/* NULL-safe. */
void kvl_tls_free(kvl_tls_t *t);

/* Starts (client) or continues the handshake. Returns 0, or KVL_ETLS (see kvl_tls_error). */
int kvl_tls_handshake(kvl_tls_t *t);
/* Takes bytes read from the network; appends the decrypted application bytes to `plain`.
 * Runs the handshake first while it is not done. Returns 0, KVL_ECLOSED once the peer has
 * sent close_notify (what came before it is in `plain`), KVL_ETLS (see kvl_tls_error) or
 * KVL_ENOMEM. Call kvl_tls_take_output afterwards: the handshake may have answers. */
int kvl_tls_feed(kvl_tls_t *t, const void *data, size_t len, kvl_buf_t *plain);
/* Encrypts application bytes; only once the handshake is done. Returns 0, KVL_EINVAL
 * before the handshake is done, or KVL_ETLS. */
int kvl_tls_write(kvl_tls_t *t, const void *data, size_t len);
/* Appends everything waiting for the network to `out` (left empty when nothing waits).
 * Returns 0 or KVL_ENOMEM. */
int kvl_tls_take_output(kvl_tls_t *t, kvl_buf_t *out);
/* Queues close_notify (take the output afterwards). Harmless before the handshake. */
void kvl_tls_shutdown(kvl_tls_t *t);

/* True once the handshake completed (the peer's certificate verified). */
bool kvl_tls_established(const kvl_tls_t *t);
/* The peer certificate's subject CN once established; NULL before or when it has none
 * (or more than one, or one with a NUL byte: treated as having none). */
const char *kvl_tls_peer_id(const kvl_tls_t *t);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" once established, for log lines. */
const char *kvl_tls_describe(const kvl_tls_t *t);
/* Why the last call failed, as a sentence fragment; "" when nothing failed. */
const char *kvl_tls_error(const kvl_tls_t *t);

#endif
