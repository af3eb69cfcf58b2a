/*
 * hmac.h — HMAC-SHA256 (RFC 2104 over SHA-256), for signing what kaaval sends (the webhook
 * receiver's X-Kaaval-Signature). A pure function over OpenSSL, which only common/ includes.
 */
#ifndef KVL_HMAC_H
#define KVL_HMAC_H

#include <stddef.h>
#include <stdint.h>

#define KVL_HMAC_SHA256_LEN 32

/* out = HMAC-SHA256(key, data). Returns 0, or KVL_EINVAL when OpenSSL refuses. */
int kvl_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    uint8_t out[KVL_HMAC_SHA256_LEN]);

/* The same as 64 lowercase hex digits and a NUL. */
int kvl_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                        char out[2 * KVL_HMAC_SHA256_LEN + 1]);

#endif
