/*
 * notify_snmpv3.c — the SNMPv3 User-based Security Model for the SNMP notifier's informs
 * (notify_snmp.h): keys from passwords (RFC 3414 A.2, the auth protocol's hash, 1 MiB of
 * the repeated password, then localized as H(Ku | engineID | Ku)), HMAC authentication
 * (HMAC-MD5-96 and HMAC-SHA-96 of RFC 3414, HMAC-SHA-2 of RFC 7860 truncated to 16, 24, 32
 * or 48 bytes), privacy by CBC-DES (RFC 3414 8.1) or CFB128-AES (RFC 3826; AES-192 and
 * AES-256 with the key extension net-snmp uses for them: Kul | H(Kul) | ...), and the
 * reading of the manager's answers: Reports (engine discovery, time window, refusals by
 * name) and Responses.
 *
 * Written here with OpenSSL's hashes and ciphers and the notifier's BER primitives rather
 * than with net-snmp: the collector keeps one SNMP encoder, net-snmp's session layer would
 * bring its global state and its blocking engine probe into the collector, and what an
 * inform needs of USM is short. A Response counts only when its HMAC verifies; an
 * unauthenticated Report is believed only for the engine discovery and to name a refusal
 * (which the notifier then retries with backoff, as any failed delivery).
 */
#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/provider.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kvl.h"
#include "notify_snmp.h"
#include "timeutil.h"

#define KEY_MAX 64
#define ENGINE_ID_MAX 32
#define MSG_MAX_SIZE 65507

struct kvl_usm {
    int auth, priv;
    const EVP_MD *md;
    size_t mac_len; /* the truncated HMAC in msgAuthenticationParameters */
    char *user;
    uint8_t ku_auth[KEY_MAX], ku_priv[KEY_MAX];
    size_t ku_len;
    /* the manager's engine, once discovered */
    bool known;
    uint8_t engine_id[ENGINE_ID_MAX];
    size_t engine_id_len;
    uint32_t boots, time;
    uint64_t time_at_ms; /* our clock when time was its engine time */
    uint8_t kul_auth[KEY_MAX], kul_priv[2 * KEY_MAX];
    size_t kul_priv_len;
    uint64_t salt;
};

static const EVP_MD *md_of(int auth, size_t *mac_len)
{
    switch (auth) {
    case KVL_NOTIFY_V3_MD5:
        *mac_len = 12;
        return EVP_md5();
    case KVL_NOTIFY_V3_SHA1:
        *mac_len = 12;
        return EVP_sha1();
    case KVL_NOTIFY_V3_SHA224:
        *mac_len = 16;
        return EVP_sha224();
    case KVL_NOTIFY_V3_SHA256:
        *mac_len = 24;
        return EVP_sha256();
    case KVL_NOTIFY_V3_SHA384:
        *mac_len = 32;
        return EVP_sha384();
    case KVL_NOTIFY_V3_SHA512:
        *mac_len = 48;
        return EVP_sha512();
    default:
        return NULL;
    }
}

/* Single DES lives in OpenSSL 3's legacy provider: fetched from a library context of its
 * own, so the process's default context (TLS elsewhere) is left as it is. Made once, kept
 * for the life of the process; NULL when the legacy provider is not installed. */
static const EVP_CIPHER *des_cbc(void)
{
    static EVP_CIPHER *des;
    static bool tried;
    if (!tried) {
        tried = true;
        OSSL_LIB_CTX *ctx = OSSL_LIB_CTX_new();
        if (ctx != NULL && OSSL_PROVIDER_load(ctx, "legacy") != NULL) {
            des = EVP_CIPHER_fetch(ctx, "DES-CBC", NULL);
        }
    }
    return des;
}

static const EVP_CIPHER *cipher_of(int priv, size_t *key_len)
{
    switch (priv) {
    case KVL_NOTIFY_V3_DES:
        *key_len = 16; /* 8 of key, 8 of pre-IV */
        return des_cbc();
    case KVL_NOTIFY_V3_AES128:
        *key_len = 16;
        return EVP_aes_128_cfb128();
    case KVL_NOTIFY_V3_AES192:
        *key_len = 24;
        return EVP_aes_192_cfb128();
    case KVL_NOTIFY_V3_AES256:
        *key_len = 32;
        return EVP_aes_256_cfb128();
    default:
        return NULL;
    }
}

/* RFC 3414 A.2.1: the hash of 1 MiB of the password repeated. */
static size_t password_to_key(const EVP_MD *md, const char *pw, uint8_t *ku)
{
    size_t pl = strlen(pw), at = 0;
    uint8_t chunk[64];
    unsigned int len = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL || pl == 0 || EVP_DigestInit_ex(c, md, NULL) != 1) {
        EVP_MD_CTX_free(c);
        return 0;
    }
    for (size_t done = 0; done < 1048576; done += sizeof(chunk)) {
        for (size_t i = 0; i < sizeof(chunk); i++) {
            chunk[i] = (uint8_t)pw[at++ % pl];
        }
        EVP_DigestUpdate(c, chunk, sizeof(chunk));
    }
    EVP_DigestFinal_ex(c, ku, &len);
    EVP_MD_CTX_free(c);
    return len;
}

/* H(ku | engine_id | ku) into out; its length. */
static size_t localize(const EVP_MD *md, const uint8_t *ku, size_t ku_len, const uint8_t *eid,
                       size_t eid_len, uint8_t *out)
{
    unsigned int len = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL || EVP_DigestInit_ex(c, md, NULL) != 1) {
        EVP_MD_CTX_free(c);
        return 0;
    }
    EVP_DigestUpdate(c, ku, ku_len);
    EVP_DigestUpdate(c, eid, eid_len);
    EVP_DigestUpdate(c, ku, ku_len);
    EVP_DigestFinal_ex(c, out, &len);
    EVP_MD_CTX_free(c);
    return len;
}

size_t kvl_usm_localized_key(int auth, const char *password, const uint8_t *engine_id,
                             size_t engine_id_len, uint8_t *out)
{
    size_t mac_len;
    const EVP_MD *md = md_of(auth, &mac_len);
    uint8_t ku[KEY_MAX];
    size_t n = md != NULL ? password_to_key(md, password, ku) : 0;
    return n > 0 ? localize(md, ku, n, engine_id, engine_id_len, out) : 0;
}

int kvl_usm_new(const kvl_notify_receiver_cfg_t *cfg, kvl_usm_t **out, char *why, size_t whylen)
{
    *out = NULL;
    kvl_usm_t *u = calloc(1, sizeof(*u));
    if (u == NULL || (u->user = strdup(cfg->user != NULL ? cfg->user : "")) == NULL) {
        free(u);
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    u->auth = cfg->auth_protocol;
    u->priv = cfg->priv_protocol;
    if (u->auth != KVL_NOTIFY_V3_AUTH_NONE) {
        u->md = md_of(u->auth, &u->mac_len);
        u->ku_len = u->md != NULL ? password_to_key(u->md, cfg->auth_password, u->ku_auth) : 0;
        if (u->ku_len == 0) {
            snprintf(why, whylen, "cannot derive the %s key", kvl_usm_auth_names[u->auth]);
            kvl_usm_free(u);
            return KVL_EINVAL;
        }
    }
    if (u->priv != KVL_NOTIFY_V3_PRIV_NONE) {
        size_t kl;
        const EVP_CIPHER *ci = cipher_of(u->priv, &kl);
        EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
        uint8_t key[32] = {0}, iv[16] = {0};
        bool ok = ci != NULL && c != NULL && EVP_EncryptInit_ex(c, ci, NULL, key, iv) == 1;
        EVP_CIPHER_CTX_free(c);
        if (!ok) {
            snprintf(why, whylen, "privacy protocol %s is not available in this OpenSSL",
                     kvl_usm_priv_names[u->priv]);
            kvl_usm_free(u);
            return KVL_EINVAL;
        }
        if (password_to_key(u->md, cfg->priv_password, u->ku_priv) != u->ku_len) {
            snprintf(why, whylen, "cannot derive the privacy key");
            kvl_usm_free(u);
            return KVL_EINVAL;
        }
    }
    if (RAND_bytes((unsigned char *)&u->salt, sizeof(u->salt)) != 1) {
        u->salt = (uint64_t)(uintptr_t)u ^ (uint64_t)kvl_now_ms() << 20;
    }
    *out = u;
    return 0;
}

void kvl_usm_free(kvl_usm_t *u)
{
    if (u != NULL) {
        free(u->user);
        memset(u, 0, sizeof(*u));
        free(u);
    }
}

bool kvl_usm_known(const kvl_usm_t *u)
{
    return u->known;
}

void kvl_usm_forget(kvl_usm_t *u)
{
    u->known = false;
}

/* Localizes the keys for the engine just learned. */
static void learn_engine(kvl_usm_t *u, const uint8_t *eid, size_t eid_len)
{
    memcpy(u->engine_id, eid, eid_len);
    u->engine_id_len = eid_len;
    if (u->auth != KVL_NOTIFY_V3_AUTH_NONE) {
        localize(u->md, u->ku_auth, u->ku_len, eid, eid_len, u->kul_auth);
    }
    if (u->priv != KVL_NOTIFY_V3_PRIV_NONE) {
        size_t need;
        cipher_of(u->priv, &need);
        size_t n = localize(u->md, u->ku_priv, u->ku_len, eid, eid_len, u->kul_priv);
        while (n < need) { /* Kul | H(Kul) | ... for a key longer than the hash */
            unsigned int l = 0;
            EVP_Digest(u->kul_priv, n, u->kul_priv + n, &l, u->md, NULL);
            n += l;
        }
        u->kul_priv_len = n;
    }
    u->known = true;
}

static uint32_t engine_time(const kvl_usm_t *u, uint64_t now_ms)
{
    return u->time + (uint32_t)((now_ms - u->time_at_ms) / 1000);
}

static void put_sec_params(kvl_buf_t *msg, const uint8_t *eid, size_t eid_len, uint32_t boots,
                           uint32_t time, const char *user, size_t mac_len, const uint8_t *priv,
                           size_t priv_len)
{
    static const uint8_t zeros[48];
    kvl_buf_t sp = {0};
    kvl_ber_tlv(&sp, 0x04, eid, eid_len);
    kvl_ber_int(&sp, 0x02, boots, false);
    kvl_ber_int(&sp, 0x02, time, false);
    kvl_ber_tlv(&sp, 0x04, user, strlen(user));
    kvl_ber_tlv(&sp, 0x04, zeros, mac_len);
    kvl_ber_tlv(&sp, 0x04, priv, priv_len);
    kvl_ber_wrap(&sp, 0x30);
    kvl_ber_tlv(msg, 0x04, sp.data, sp.len);
    kvl_buf_free(&sp);
}

static void put_global(kvl_buf_t *msg, uint32_t id, uint8_t flags)
{
    kvl_buf_t g = {0};
    kvl_ber_int(&g, 0x02, id, false);
    kvl_ber_int(&g, 0x02, MSG_MAX_SIZE, false);
    kvl_ber_tlv(&g, 0x04, &flags, 1);
    kvl_ber_int(&g, 0x02, 3, false); /* USM */
    kvl_ber_wrap(&g, 0x30);
    kvl_buf_append(msg, g.data, g.len);
    kvl_buf_free(&g);
}

int kvl_usm_probe(kvl_usm_t *u, uint32_t id, kvl_buf_t *out)
{
    KVL_UNUSED(u); /* the same for every user: no user name, no engine (RFC 3414 4) */
    kvl_buf_t m = {0}, sc = {0};
    kvl_ber_int(&m, 0x02, 3, false);
    put_global(&m, id, 0x04); /* reportable, noAuthNoPriv */
    put_sec_params(&m, NULL, 0, 0, 0, "", 0, NULL, 0);
    kvl_buf_t pdu = {0};
    kvl_ber_int(&pdu, 0x02, (int32_t)id, false);
    kvl_ber_int(&pdu, 0x02, 0, false);
    kvl_ber_int(&pdu, 0x02, 0, false);
    kvl_ber_tlv(&pdu, 0x30, NULL, 0);
    kvl_ber_wrap(&pdu, 0xa0); /* GetRequest-PDU */
    kvl_ber_tlv(&sc, 0x04, NULL, 0);
    kvl_ber_tlv(&sc, 0x04, NULL, 0);
    kvl_buf_append(&sc, pdu.data, pdu.len);
    kvl_buf_free(&pdu);
    kvl_ber_wrap(&sc, 0x30);
    kvl_buf_append(&m, sc.data, sc.len);
    kvl_buf_free(&sc);
    kvl_ber_wrap(&m, 0x30);
    *out = m;
    return m.data != NULL ? 0 : KVL_ENOMEM;
}

/* One pass of the privacy cipher over in (n bytes) into out with the salt/IV rules of the
 * protocol; enc: encrypt. Returns the output length, or 0. */
static size_t crypt_scoped(const kvl_usm_t *u, bool enc, uint32_t boots, uint32_t time,
                           const uint8_t salt[8], const uint8_t *in, size_t n, uint8_t *out)
{
    size_t kl;
    const EVP_CIPHER *ci = cipher_of(u->priv, &kl);
    uint8_t iv[16];
    const uint8_t *key = u->kul_priv;
    if (u->priv == KVL_NOTIFY_V3_DES) {
        for (int i = 0; i < 8; i++) {
            iv[i] = u->kul_priv[8 + i] ^ salt[i];
        }
        if (n % 8 != 0) {
            return 0;
        }
    } else {
        for (int i = 0; i < 4; i++) {
            iv[i] = (uint8_t)(boots >> (24 - 8 * i));
            iv[4 + i] = (uint8_t)(time >> (24 - 8 * i));
        }
        memcpy(iv + 8, salt, 8);
    }
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;
    bool ok = c != NULL && EVP_CipherInit_ex(c, ci, NULL, key, iv, enc) == 1 &&
              EVP_CIPHER_CTX_set_padding(c, 0) == 1 &&
              EVP_CipherUpdate(c, out, &l1, in, (int)n) == 1 &&
              EVP_CipherFinal_ex(c, out + l1, &l2) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? (size_t)(l1 + l2) : 0;
}

/* HMAC of msg with the localized auth key, truncated, into mac. */
static bool sign(const kvl_usm_t *u, const uint8_t *msg, size_t n, uint8_t *mac)
{
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (HMAC(u->md, u->kul_auth, (int)u->ku_len, msg, n, full, &len) == NULL || len < u->mac_len) {
        return false;
    }
    memcpy(mac, full, u->mac_len);
    return true;
}

/* The parts of an SNMPv3 message, as pointers into it. */
typedef struct parts {
    int64_t msg_id;
    uint8_t flags;
    const uint8_t *eid, *user, *auth, *priv, *data; /* data: the scopedPDU's TLV contents */
    size_t eid_len, user_len, auth_len, priv_len, data_len;
    uint8_t data_tag; /* 0x30 plain, 0x04 encrypted */
    int64_t boots, time;
} parts_t;

static int get_int(const uint8_t **p, const uint8_t *end, int64_t *out)
{
    uint8_t tag;
    const uint8_t *v;
    size_t len;
    if (kvl_ber_get(p, end, &tag, &v, &len) != 0 || tag != 0x02 || len == 0 || len > 5) {
        return -1;
    }
    int64_t x = (v[0] & 0x80) ? -1 : 0;
    for (size_t i = 0; i < len; i++) {
        x = (int64_t)((uint64_t)x << 8) | v[i];
    }
    *out = x;
    return 0;
}

static int get_str(const uint8_t **p, const uint8_t *end, const uint8_t **v, size_t *len)
{
    uint8_t tag;
    return kvl_ber_get(p, end, &tag, v, len) == 0 && tag == 0x04 ? 0 : -1;
}

static int split(const uint8_t *msg, size_t n, parts_t *x)
{
    const uint8_t *p = msg, *end = msg + n, *v, *flags;
    size_t len, fl;
    uint8_t tag;
    int64_t ver, max, model;
    if (kvl_ber_get(&p, end, &tag, &v, &len) != 0 || tag != 0x30) {
        return -1;
    }
    p = v;
    end = v + len;
    if (get_int(&p, end, &ver) != 0 || ver != 3 || kvl_ber_get(&p, end, &tag, &v, &len) != 0 ||
        tag != 0x30) {
        return -1;
    }
    const uint8_t *g = v, *gend = v + len;
    if (get_int(&g, gend, &x->msg_id) != 0 || get_int(&g, gend, &max) != 0 ||
        get_str(&g, gend, &flags, &fl) != 0 || fl != 1 || get_int(&g, gend, &model) != 0 ||
        model != 3) {
        return -1;
    }
    x->flags = flags[0];
    if (get_str(&p, end, &v, &len) != 0) {
        return -1;
    }
    const uint8_t *s = v, *send = v + len;
    if (kvl_ber_get(&s, send, &tag, &v, &len) != 0 || tag != 0x30) {
        return -1;
    }
    s = v;
    send = v + len;
    if (get_str(&s, send, &x->eid, &x->eid_len) != 0 || get_int(&s, send, &x->boots) != 0 ||
        get_int(&s, send, &x->time) != 0 || get_str(&s, send, &x->user, &x->user_len) != 0 ||
        get_str(&s, send, &x->auth, &x->auth_len) != 0 ||
        get_str(&s, send, &x->priv, &x->priv_len) != 0) {
        return -1;
    }
    if (kvl_ber_get(&p, end, &x->data_tag, &x->data, &x->data_len) != 0 ||
        (x->data_tag != 0x30 && x->data_tag != 0x04)) {
        return -1;
    }
    return 0;
}

int kvl_usm_wrap(kvl_usm_t *u, uint32_t id, const kvl_buf_t *pdu, uint64_t now_ms, kvl_buf_t *out,
                 char *why, size_t whylen)
{
    KVL_ASSERT(u->known);
    kvl_buf_t sc = {0}, m = {0};
    uint32_t time = engine_time(u, now_ms);
    kvl_ber_tlv(&sc, 0x04, u->engine_id, u->engine_id_len); /* contextEngineID */
    kvl_ber_tlv(&sc, 0x04, NULL, 0);                        /* contextName */
    kvl_buf_append(&sc, pdu->data, pdu->len);
    kvl_ber_wrap(&sc, 0x30);
    if (sc.data == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    uint8_t flags = 0x04, salt[8] = {0};
    if (u->auth != KVL_NOTIFY_V3_AUTH_NONE) {
        flags |= 0x01;
    }
    kvl_buf_t enc = {0};
    if (u->priv != KVL_NOTIFY_V3_PRIV_NONE) {
        flags |= 0x02;
        u->salt++;
        if (u->priv == KVL_NOTIFY_V3_DES) {
            for (int i = 0; i < 4; i++) {
                salt[i] = (uint8_t)(u->boots >> (24 - 8 * i));
                salt[4 + i] = (uint8_t)(u->salt >> (24 - 8 * i));
            }
        } else {
            for (int i = 0; i < 8; i++) {
                salt[i] = (uint8_t)(u->salt >> (56 - 8 * i));
            }
        }
        size_t padded = u->priv == KVL_NOTIFY_V3_DES ? (sc.len + 7) / 8 * 8 : sc.len;
        uint8_t *in = calloc(1, padded + 16), *ct = calloc(1, padded + 16);
        size_t cl = 0;
        if (in != NULL && ct != NULL) {
            memcpy(in, sc.data, sc.len);
            cl = crypt_scoped(u, true, u->boots, time, salt, in, padded, ct);
        }
        if (cl > 0) {
            kvl_ber_tlv(&enc, 0x04, ct, cl);
        }
        free(in);
        free(ct);
        if (enc.data == NULL) {
            kvl_buf_free(&sc);
            snprintf(why, whylen, "cannot encrypt the inform (%s)", kvl_usm_priv_names[u->priv]);
            return KVL_EIO;
        }
        kvl_buf_free(&sc);
        sc = enc;
    }
    kvl_ber_int(&m, 0x02, 3, false);
    put_global(&m, id, flags);
    put_sec_params(&m, u->engine_id, u->engine_id_len, u->boots, time, u->user,
                   u->auth != KVL_NOTIFY_V3_AUTH_NONE ? u->mac_len : 0, salt,
                   u->priv != KVL_NOTIFY_V3_PRIV_NONE ? 8 : 0);
    kvl_buf_append(&m, sc.data, sc.len);
    kvl_buf_free(&sc);
    kvl_ber_wrap(&m, 0x30);
    parts_t x;
    if (m.data == NULL || split(m.data, m.len, &x) != 0) {
        kvl_buf_free(&m);
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    if (u->auth != KVL_NOTIFY_V3_AUTH_NONE) {
        uint8_t mac[48];
        if (!sign(u, m.data, m.len, mac)) {
            kvl_buf_free(&m);
            snprintf(why, whylen, "cannot compute the inform's HMAC");
            return KVL_EIO;
        }
        memcpy((uint8_t *)x.auth, mac, u->mac_len);
    }
    *out = m;
    return 0;
}

/* True when the message's HMAC is right (x points into msg). */
static bool verify(const kvl_usm_t *u, const uint8_t *msg, size_t n, const parts_t *x)
{
    if (x->auth_len != u->mac_len) {
        return false;
    }
    uint8_t *copy = malloc(n), mac[48];
    if (copy == NULL) {
        return false;
    }
    memcpy(copy, msg, n);
    memset(copy + (x->auth - msg), 0, x->auth_len);
    bool ok = sign(u, copy, n, mac) && CRYPTO_memcmp(mac, x->auth, u->mac_len) == 0;
    free(copy);
    return ok;
}

/* The usmStats counter a Report names (1.3.6.1.6.3.15.1.1.<n>.0), or 0 (another report). */
static int report_counter(const uint8_t *vbl, size_t len)
{
    static const uint8_t usm_stats[] = {0x2b, 6, 1, 6, 3, 15, 1, 1};
    const uint8_t *p = vbl, *end = vbl + len, *v, *o;
    size_t l, ol;
    uint8_t tag;
    if (kvl_ber_get(&p, end, &tag, &v, &l) != 0 || tag != 0x30) {
        return 0;
    }
    p = v;
    if (kvl_ber_get(&p, v + l, &tag, &o, &ol) != 0 || tag != 0x06 || ol != sizeof(usm_stats) + 2 ||
        memcmp(o, usm_stats, sizeof(usm_stats)) != 0 || o[ol - 1] != 0) {
        return 0;
    }
    return o[sizeof(usm_stats)];
}

kvl_usm_result_t kvl_usm_read(kvl_usm_t *u, const uint8_t *msg, size_t n, uint32_t id,
                              uint64_t now_ms, char *why, size_t whylen)
{
    parts_t x;
    if (split(msg, n, &x) != 0 || x.msg_id != (int64_t)id) {
        return KVL_USM_IGNORE;
    }
    bool authentic = false;
    if (x.flags & 0x01) {
        if (u->auth == KVL_NOTIFY_V3_AUTH_NONE || !u->known || !verify(u, msg, n, &x)) {
            return KVL_USM_IGNORE;
        }
        authentic = true;
    }
    uint8_t *plain = NULL;
    const uint8_t *sp = x.data;
    size_t sl = x.data_len;
    if (x.data_tag == 0x04) {
        if (!(x.flags & 0x02) || !authentic || u->priv == KVL_NOTIFY_V3_PRIV_NONE ||
            x.priv_len != 8 || (plain = malloc(x.data_len + 16)) == NULL) {
            return KVL_USM_IGNORE;
        }
        sl = crypt_scoped(u, false, (uint32_t)x.boots, (uint32_t)x.time, x.priv, x.data, x.data_len,
                          plain);
        sp = plain;
    } else if (x.flags & 0x02) {
        return KVL_USM_IGNORE;
    }
    /* scopedPDU: contextEngineID, contextName, PDU */
    const uint8_t *p = sp, *end = sp + sl, *v, *pdu;
    size_t len, pl;
    uint8_t tag, ptag;
    kvl_usm_result_t res = KVL_USM_IGNORE;
    int64_t rid = -1, err = 0;
    if (plain != NULL) { /* the decrypted scopedPDU is a whole SEQUENCE; plain, its contents */
        if (sl == 0 || kvl_ber_get(&p, end, &tag, &v, &len) != 0 || tag != 0x30) {
            goto out;
        }
        p = v;
        end = v + len;
    }
    if (get_str(&p, end, &v, &len) != 0 || get_str(&p, end, &v, &len) != 0 ||
        kvl_ber_get(&p, end, &ptag, &pdu, &pl) != 0) {
        goto out;
    }
    p = pdu;
    end = pdu + pl;
    int64_t idx;
    if (get_int(&p, end, &rid) != 0 || get_int(&p, end, &err) != 0 || get_int(&p, end, &idx) != 0 ||
        kvl_ber_get(&p, end, &tag, &v, &len) != 0 || tag != 0x30) {
        goto out;
    }
    if (ptag == 0xa2) { /* Response-PDU */
        if (rid == (int64_t)id && (authentic || u->auth == KVL_NOTIFY_V3_AUTH_NONE)) {
            res = KVL_USM_RESPONSE;
        }
        goto out;
    }
    if (ptag != 0xa8) { /* Report-PDU */
        goto out;
    }
    int c = report_counter(v, len);
    static const char *const names[] = {
        [1] = "usmStatsUnsupportedSecLevels: the manager refuses this security level",
        [2] = "usmStatsNotInTimeWindows",
        [3] = "usmStatsUnknownUserNames: the manager does not know this user",
        [4] = "usmStatsUnknownEngineIDs",
        [5] = "usmStatsWrongDigests: wrong auth_password or auth_protocol for this user",
        [6] = "usmStatsDecryptionErrors: wrong priv_password or priv_protocol for this user",
    };
    if (c == 4 && x.eid_len > 0 && x.eid_len <= ENGINE_ID_MAX) {
        if (!u->known || x.eid_len != u->engine_id_len ||
            memcmp(x.eid, u->engine_id, x.eid_len) != 0) {
            learn_engine(u, x.eid, x.eid_len);
        }
        u->boots = (uint32_t)x.boots;
        u->time = (uint32_t)x.time;
        u->time_at_ms = now_ms;
        res = KVL_USM_DISCOVERED;
    } else if (c == 2 && authentic) {
        u->boots = (uint32_t)x.boots;
        u->time = (uint32_t)x.time;
        u->time_at_ms = now_ms;
        res = KVL_USM_RESEND;
    } else {
        if (c >= 1 && c <= 6) {
            snprintf(why, whylen, "the manager refused the inform: %s", names[c]);
        } else {
            snprintf(why, whylen, "the manager refused the inform with a Report");
        }
        res = KVL_USM_REFUSED;
    }
out:
    free(plain);
    return res;
}
