/*
 * notify_config.h — the `receivers:` section of collector.yaml as C structs: a list of
 * receivers, each with its name, its type and the settings of that type (one struct holds
 * the fields of every type; those of other types stay zero). The keys, their defaults and
 * bounds are in docs/configuration.md ("receivers:"). The alert book's routes name
 * receivers; notify.c delivers to them, with an outbox folder per receiver name (so names
 * are unique and file-safe). Errors name file:line:column.
 */
#ifndef KVL_NOTIFY_CONFIG_H
#define KVL_NOTIFY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cfg.h"

typedef enum {
    KVL_RCV_ALERTMANAGER,
    KVL_RCV_WEBHOOK,
    KVL_RCV_EMAIL,
    KVL_RCV_EXEC,
    KVL_RCV_SYSLOG,
    KVL_RCV_SNMP,
} kvl_notify_type_t;

enum { KVL_RCV_SSL_NONE, KVL_RCV_SSL_TRY, KVL_RCV_SSL_ALL }; /* email's use_ssl */

typedef struct kvl_notify_receiver_cfg {
    char *name;
    int type;           /* kvl_notify_type_t */
    int64_t max_bytes;  /* the outbox's bound for this receiver (64 MiB) */
    int64_t timeout_ms; /* one delivery attempt (10 s) */
    char *url;          /* alertmanager (base URL), webhook, email (smtp:// or smtps://) */
    char *ca;           /* CA file for https and smtps (NULL: the system's) */
    int64_t resend_ms;  /* alertmanager: firing alerts posted again this often (1 min) */
    char *secret;       /* webhook: the HMAC-SHA256 key (NULL: no signature) */
    char *template_;    /* webhook: the body's template (NULL: the notification's JSON) */
    char *content_type; /* webhook: of the body (application/json) */
    int use_ssl;        /* email: KVL_RCV_SSL_* (STARTTLS) */
    char *user;         /* email: the login; snmp v3: the USM user name */
    char *password;
    char *from;
    char **to; /* email: recipients; NULL-terminated */
    size_t n_to;
    char **command; /* exec: program and arguments, NULL-terminated */
    size_t n_command;
    int facility;        /* syslog: index into kvl_notify_facilities */
    char *ident;         /* syslog (kaaval) */
    char *address;       /* snmp: host:port of the manager */
    char *community;     /* snmp: v2c community (public) */
    bool inform;         /* snmp: InformRequest, confirmed by the manager, instead of a trap */
    int64_t version;     /* snmp: 2 (v2c) or 3 (USM informs; `user` is the USM user name) */
    int auth_protocol;   /* snmp v3: KVL_NOTIFY_V3_* (MD5, SHA...), 0 none */
    char *auth_password; /* at least 8 characters */
    int priv_protocol;   /* snmp v3: KVL_NOTIFY_V3_* (DES, AES...), 0 none */
    char *priv_password;
} kvl_notify_receiver_cfg_t;

struct kvl_notify_cfg {
    kvl_notify_receiver_cfg_t *receivers;
    size_t n;
};
typedef struct kvl_notify_cfg kvl_notify_cfg_t;

/* The facilities' names, in the order of .facility (user, daemon, local0..local7). */
extern const char *const kvl_notify_facilities[];
/* The types' names, in the order of kvl_notify_type_t. */
extern const char *const kvl_notify_types[];

/* A KVL_CFG_CUSTOM parser for `receivers:`; target is a kvl_notify_cfg_t ** (replaced). */
int kvl_notify_cfg_parse(kvl_cfg_node_t n, void *target);
/* Parses a whole document whose top level has `receivers:` (tests and the send tool). */
kvl_notify_cfg_t *kvl_notify_cfg_load(const char *path, char *err, size_t errlen);
kvl_notify_cfg_t *kvl_notify_cfg_parse_text(const char *name, const char *text, char *err,
                                            size_t errlen);
void kvl_notify_cfg_free(kvl_notify_cfg_t *c);

/* A webhook template's placeholders: the index of the one at p ("{{" already seen, p after
 * it) and its length in *len (up to and with "}}"), or -1; and the check of a whole
 * template (0, or KVL_EINVAL with the unknown one named in why). */
int kvl_notify_template_placeholder(const char *p, size_t *len);
/* Their names, by that index (NULL-terminated). */
extern const char *const kvl_notify_template_names[];
int kvl_notify_template_check(const char *t, char *why, size_t whylen);

/* --- SNMPv3 protocols an snmp receiver names (the USM itself: notify_snmpv3.c) --------- */

enum {
    KVL_NOTIFY_V3_AUTH_NONE,
    KVL_NOTIFY_V3_MD5,
    KVL_NOTIFY_V3_SHA1,
    KVL_NOTIFY_V3_SHA224,
    KVL_NOTIFY_V3_SHA256,
    KVL_NOTIFY_V3_SHA384,
    KVL_NOTIFY_V3_SHA512
};
enum {
    KVL_NOTIFY_V3_PRIV_NONE,
    KVL_NOTIFY_V3_DES,
    KVL_NOTIFY_V3_AES128,
    KVL_NOTIFY_V3_AES192,
    KVL_NOTIFY_V3_AES256
};

/* The protocols' names as `auth_protocol` / `priv_protocol` take them, by value
 * (NULL-terminated; index 0, "none", is what an absent key means). */
extern const char *const kvl_usm_auth_names[];
extern const char *const kvl_usm_priv_names[];
/* Case-insensitive look-up of a name (also SHA-1, SHA1, SHA256, AES-128, AES128, ...):
 * the value, or -1. */
int kvl_usm_auth_value(const char *name);
int kvl_usm_priv_value(const char *name);

#endif
