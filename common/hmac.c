/*
 * hmac.c — HMAC-SHA256 with OpenSSL's one-shot HMAC() (see hmac.h).
 */
#include "hmac.h"

#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "kvl.h"

int kvl_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    uint8_t out[KVL_HMAC_SHA256_LEN])
{
    unsigned int n = 0;
    static const uint8_t empty[1];
    if (keylen > (size_t)INT_MAX) {
        return KVL_EINVAL;
    }
    if (HMAC(EVP_sha256(), keylen ? key : empty, (int)keylen, len ? data : empty, len, out, &n) ==
            NULL ||
        n != KVL_HMAC_SHA256_LEN) {
        return KVL_EINVAL;
    }
    return 0;
}

int kvl_hmac_sha256_hex(const void *key, size_t keylen, const void *data, size_t len,
                        char out[2 * KVL_HMAC_SHA256_LEN + 1])
{
    uint8_t mac[KVL_HMAC_SHA256_LEN];
    int rc = kvl_hmac_sha256(key, keylen, data, len, mac);
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < KVL_HMAC_SHA256_LEN; i++) {
        out[2 * i] = rc == 0 ? hex[mac[i] >> 4] : '0';
        out[2 * i + 1] = rc == 0 ? hex[mac[i] & 15] : '0';
    }
    out[2 * KVL_HMAC_SHA256_LEN] = '\0';
    return rc;
}
