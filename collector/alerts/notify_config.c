/*
 * notify_config.c — reads the `receivers:` list (see notify_config.h): each item's `type`
 * picks the field table its keys are checked against, so a key of another type is an
 * error at its place, not silently ignored.
 */
#include "notify_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "kvl.h"
#include "names.h"

/* --- the webhook template's placeholders (notify_template.c renders them) ------------- */

const char *const kvl_notify_template_names[] = {
    "receiver",    "group_key", "status",    "count",     "firing",  "rule",
    "severity",    "site",      "device",    "interface", "target",  "summary",
    "description", "value",     "threshold", "starts_at", "ends_at", "url",
    "fingerprint", "alerts",    "json",      NULL};

int kvl_notify_template_placeholder(const char *p, size_t *len)
{
    const char *end = strstr(p, "}}");
    if (end == NULL) {
        return -1;
    }
    size_t n = (size_t)(end - p);
    for (int i = 0; kvl_notify_template_names[i]; i++) {
        if (strlen(kvl_notify_template_names[i]) == n &&
            strncmp(p, kvl_notify_template_names[i], n) == 0) {
            *len = n + 2;
            return i;
        }
    }
    return -1;
}

int kvl_notify_template_check(const char *t, char *why, size_t whylen)
{
    for (const char *p = strstr(t, "{{"); p; p = strstr(p, "{{")) {
        size_t len;
        if (kvl_notify_template_placeholder(p + 2, &len) < 0) {
            const char *end = strstr(p + 2, "}}");
            int n = end ? (int)(end - p) + 2 : (int)strlen(p);
            snprintf(why, whylen,
                     "unknown placeholder %.*s (known: {{receiver}}, {{status}}, "
                     "{{summary}}, {{alerts}}, {{json}}, ... see docs/configuration.md)",
                     n > 60 ? 60 : n, p);
            return KVL_EINVAL;
        }
        p += 2 + len;
    }
    return 0;
}

const char *const kvl_notify_types[] = {"alertmanager", "webhook", "email", "exec",
                                        "syslog",       "snmp",    NULL};
const char *const kvl_notify_facilities[] = {"user",   "daemon", "local0", "local1",
                                             "local2", "local3", "local4", "local5",
                                             "local6", "local7", NULL};
static const char *const ssl_modes[] = {"none", "try", "all", NULL};

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++) {
        free(v[i]);
    }
    free(v);
}

/* A non-empty list of strings into a NULL-terminated vector at target (char ***), its
 * length at target + sizeof(char **) (a size_t). */
static int parse_strv(kvl_cfg_node_t n, char ***out, size_t *n_out, const char *what)
{
    if (!kvl_cfg_is_seq(n) || kvl_cfg_seq_len(n) == 0) {
        return kvl_cfg_error(n, "expected a non-empty list of %s", what);
    }
    size_t len = kvl_cfg_seq_len(n);
    char **v = calloc(len + 1, sizeof(*v));
    if (v == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(n, i);
        const char *s = kvl_cfg_scalar(item);
        if (s == NULL || s[0] == '\0') {
            free_strv(v);
            return kvl_cfg_error(item, "expected %s, a non-empty text", what);
        }
        if ((v[i] = strdup(s)) == NULL) {
            free_strv(v);
            return kvl_cfg_error(item, "out of memory");
        }
    }
    free_strv(*out);
    *out = v;
    *n_out = len;
    return 0;
}

static int parse_to(kvl_cfg_node_t n, void *target)
{
    kvl_notify_receiver_cfg_t *r = target;
    if (kvl_cfg_is_scalar(n)) {
        const char *s = kvl_cfg_scalar(n);
        char **v = calloc(2, sizeof(*v));
        if (v == NULL || s[0] == '\0' || (v[0] = strdup(s)) == NULL) {
            free(v);
            return kvl_cfg_error(n, "expected an address or a list of addresses");
        }
        free_strv(r->to);
        r->to = v;
        r->n_to = 1;
        return 0;
    }
    return parse_strv(n, &r->to, &r->n_to, "e-mail addresses");
}

static int parse_command(kvl_cfg_node_t n, void *target)
{
    kvl_notify_receiver_cfg_t *r = target;
    int rc = parse_strv(n, &r->command, &r->n_command, "the program and its arguments");
    if (rc == 0 && r->command[0][0] != '/') {
        return kvl_cfg_error(n, "the program must be an absolute path, got '%s'", r->command[0]);
    }
    if (rc == 0 && access(r->command[0], X_OK) != 0) {
        return kvl_cfg_error(n, "%s cannot be run: %s", r->command[0], strerror(errno));
    }
    return rc;
}

/* True when s has no control character, space or DEL (what a URL or an address may not
 * carry into a request line or an SMTP command). */
static bool plain_text(const char *s)
{
    for (; s && *s; s++) {
        if ((unsigned char)*s <= 0x20 || *s == 0x7f) {
            return false;
        }
    }
    return true;
}

/* True when s is one line of printable text (a header's value). */
static bool plain_header(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return false;
        }
    }
    return true;
}

static int parse_url(kvl_cfg_node_t n, void *target)
{
    kvl_notify_receiver_cfg_t *r = target;
    const char *s = kvl_cfg_scalar(n);
    const char *const ok[] = {"http://", "https://", "smtp://", "smtps://"};
    size_t first = r->type == KVL_RCV_EMAIL ? 2 : 0;
    bool good = false;
    for (size_t i = first; s && i < first + 2; i++) {
        good = good || (strncmp(s, ok[i], strlen(ok[i])) == 0 && s[strlen(ok[i])] != '\0');
    }
    if (!good || !plain_text(s)) {
        return kvl_cfg_error(n,
                             "expected a URL starting with %s or %s (no spaces or control "
                             "characters)",
                             ok[first], ok[first + 1]);
    }
    free(r->url);
    r->url = strdup(s);
    return r->url ? 0 : kvl_cfg_error(n, "out of memory");
}

static int parse_address(kvl_cfg_node_t n, void *target)
{
    kvl_notify_receiver_cfg_t *r = target;
    const char *s = kvl_cfg_scalar(n);
    char host[256];
    uint16_t port;
    if (s == NULL || kvl_parse_hostport(s, host, sizeof(host), &port) != 0 || port == 0) {
        return kvl_cfg_error(n, "expected the manager's host:port, e.g. 192.0.2.10:162");
    }
    free(r->address);
    r->address = strdup(s);
    return r->address ? 0 : kvl_cfg_error(n, "out of memory");
}

/* --- SNMPv3 protocol names (notify_snmp.h) ------------------------------------------- */

const char *const kvl_usm_auth_names[] = {"none",    "MD5",     "SHA",     "SHA-224",
                                          "SHA-256", "SHA-384", "SHA-512", NULL};
const char *const kvl_usm_priv_names[] = {"none", "DES", "AES", "AES-192", "AES-256", NULL};

static const struct {
    const char *name;
    int v;
} auth_alias[] = {{"SHA-1", KVL_NOTIFY_V3_SHA1},    {"SHA1", KVL_NOTIFY_V3_SHA1},
                  {"SHA224", KVL_NOTIFY_V3_SHA224}, {"SHA256", KVL_NOTIFY_V3_SHA256},
                  {"SHA384", KVL_NOTIFY_V3_SHA384}, {"SHA512", KVL_NOTIFY_V3_SHA512}},
  priv_alias[] = {{"AES-128", KVL_NOTIFY_V3_AES128},
                  {"AES128", KVL_NOTIFY_V3_AES128},
                  {"AES192", KVL_NOTIFY_V3_AES192},
                  {"AES256", KVL_NOTIFY_V3_AES256}};

int kvl_usm_auth_value(const char *name)
{
    for (int i = 1; kvl_usm_auth_names[i] != NULL; i++) {
        if (strcasecmp(name, kvl_usm_auth_names[i]) == 0) {
            return i;
        }
    }
    for (size_t i = 0; i < KVL_ARRAY_SIZE(auth_alias); i++) {
        if (strcasecmp(name, auth_alias[i].name) == 0) {
            return auth_alias[i].v;
        }
    }
    return -1;
}

int kvl_usm_priv_value(const char *name)
{
    for (int i = 1; kvl_usm_priv_names[i] != NULL; i++) {
        if (strcasecmp(name, kvl_usm_priv_names[i]) == 0) {
            return i;
        }
    }
    for (size_t i = 0; i < KVL_ARRAY_SIZE(priv_alias); i++) {
        if (strcasecmp(name, priv_alias[i].name) == 0) {
            return priv_alias[i].v;
        }
    }
    return -1;
}

static int parse_auth_protocol(kvl_cfg_node_t n, void *target)
{
    kvl_notify_receiver_cfg_t *r = target;
    const char *s = kvl_cfg_scalar(n);
    int v = s != NULL ? kvl_usm_auth_value(s) : -1;
    if (v <= 0) {
        return kvl_cfg_error(n, "expected MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512");
    }
    r->auth_protocol = v;
    return 0;
}

static int parse_priv_protocol(kvl_cfg_node_t n, void *target)
{
    kvl_notify_receiver_cfg_t *r = target;
    const char *s = kvl_cfg_scalar(n);
    int v = s != NULL ? kvl_usm_priv_value(s) : -1;
    if (v <= 0) {
        return kvl_cfg_error(n, "expected DES, AES, AES-192 or AES-256");
    }
    r->priv_protocol = v;
    return 0;
}

/* The SNMPv3 keys of an snmp receiver agree with each other and with `version`. */
static int check_snmp(kvl_cfg_node_t item, kvl_notify_receiver_cfg_t *r)
{
    kvl_cfg_node_t n;
    static const char *const v3_keys[] = {"user", "auth_protocol", "auth_password", "priv_protocol",
                                          "priv_password"};
    if (r->version != 3) {
        for (size_t i = 0; i < KVL_ARRAY_SIZE(v3_keys); i++) {
            if (kvl_cfg_map_get(item, v3_keys[i], &n)) {
                return kvl_cfg_error(n, "`%s:` is for SNMPv3: it needs `version: 3`", v3_keys[i]);
            }
        }
        return 0;
    }
    if (kvl_cfg_map_get(item, "community", &n)) {
        return kvl_cfg_error(n, "`community:` is for SNMPv2c; SNMPv3 has `user:`");
    }
    if (kvl_cfg_map_get(item, "inform", &n) && !r->inform) {
        return kvl_cfg_error(n, "SNMPv3 notifications are informs (`inform: false` is v2c only)");
    }
    r->inform = true;
    if (r->user == NULL || r->user[0] == '\0' || strlen(r->user) > 32) {
        return kvl_cfg_error(kvl_cfg_map_get(item, "user", &n) ? n : item,
                             "SNMPv3 needs `user:`, the USM user name (1 to 32 characters)");
    }
    const struct {
        const char *proto, *pw;
        int set;
        const char *have;
    } pairs[] = {{"auth_protocol", "auth_password", r->auth_protocol, r->auth_password},
                 {"priv_protocol", "priv_password", r->priv_protocol, r->priv_password}};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(pairs); i++) {
        if (pairs[i].set && pairs[i].have == NULL) {
            kvl_cfg_map_get(item, pairs[i].proto, &n);
            return kvl_cfg_error(n, "`%s:` needs `%s:`", pairs[i].proto, pairs[i].pw);
        }
        if (!pairs[i].set && pairs[i].have != NULL) {
            kvl_cfg_map_get(item, pairs[i].pw, &n);
            return kvl_cfg_error(n, "`%s:` needs `%s:`", pairs[i].pw, pairs[i].proto);
        }
        if (pairs[i].have != NULL && strlen(pairs[i].have) < 8) {
            kvl_cfg_map_get(item, pairs[i].pw, &n);
            return kvl_cfg_error(n, "`%s:` must have at least 8 characters (RFC 3414)",
                                 pairs[i].pw);
        }
    }
    if (r->priv_protocol != 0 && r->auth_protocol == 0) {
        kvl_cfg_map_get(item, "priv_protocol", &n);
        return kvl_cfg_error(n, "privacy needs authentication: set `auth_protocol:` and "
                                "`auth_password:` too");
    }
    return 0;
}

static int parse_template(kvl_cfg_node_t n, void *target)
{
    kvl_notify_receiver_cfg_t *r = target;
    const char *s = kvl_cfg_scalar(n);
    char why[256];
    if (s == NULL || s[0] == '\0') {
        return kvl_cfg_error(n, "expected the body's text with {{placeholders}}");
    }
    if (kvl_notify_template_check(s, why, sizeof(why)) != 0) {
        return kvl_cfg_error(n, "%s", why);
    }
    free(r->template_);
    r->template_ = strdup(s);
    return r->template_ ? 0 : kvl_cfg_error(n, "out of memory");
}

#define OFF(field) offsetof(kvl_notify_receiver_cfg_t, field)

/* Keys every type has. */
#define COMMON_FIELDS                                                                              \
    {"name",                                                                                       \
     KVL_CFG_STR,                                                                                  \
     OFF(name),                                                                                    \
     0,                                                                                            \
     0,                                                                                            \
     NULL,                                                                                         \
     NULL,                                                                                         \
     KVL_CFG_REQUIRED,                                                                             \
     "the receiver's name routes use"},                                                            \
        {"type",                                                                                   \
         KVL_CFG_ENUM,                                                                             \
         OFF(type),                                                                                \
         0,                                                                                        \
         0,                                                                                        \
         kvl_notify_types,                                                                         \
         NULL,                                                                                     \
         KVL_CFG_REQUIRED,                                                                         \
         "alertmanager, webhook, email, exec, syslog or snmp"},                                    \
        {"max_bytes",                                                                              \
         KVL_CFG_INT,                                                                              \
         OFF(max_bytes),                                                                           \
         4096,                                                                                     \
         1ll << 40,                                                                                \
         NULL,                                                                                     \
         NULL,                                                                                     \
         0,                                                                                        \
         "outbox bound; the oldest notifications are dropped beyond it (64 MiB)"},                 \
    {                                                                                              \
        "timeout", KVL_CFG_DURATION, OFF(timeout_ms), 100, 600 * 1000, NULL, NULL, 0,              \
            "one delivery attempt (10s)"                                                           \
    }

static const kvl_cfg_field_t am_fields[] = {
    COMMON_FIELDS,
    {"url", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_url, KVL_CFG_REQUIRED, "Alertmanager's base URL"},
    {"ca", KVL_CFG_STR, OFF(ca), 0, 0, NULL, NULL, 0, "CA file for https"},
    {"resend", KVL_CFG_DURATION, OFF(resend_ms), 1000, 3600 * 1000, NULL, NULL, 0,
     "firing alerts posted again this often (1m)"},
    {NULL},
};

static const kvl_cfg_field_t webhook_fields[] = {
    COMMON_FIELDS,
    {"url", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_url, KVL_CFG_REQUIRED, "where to POST"},
    {"ca", KVL_CFG_STR, OFF(ca), 0, 0, NULL, NULL, 0, "CA file for https"},
    {"secret", KVL_CFG_STR, OFF(secret), 0, 0, NULL, NULL, 0, "HMAC-SHA256 key"},
    {"template", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_template, 0,
     "the body, with {{placeholders}} (default: the notification's JSON)"},
    {"content_type", KVL_CFG_STR, OFF(content_type), 0, 0, NULL, NULL, 0,
     "Content-Type of the body (application/json)"},
    {NULL},
};

static const kvl_cfg_field_t email_fields[] = {
    COMMON_FIELDS,
    {"url", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_url, KVL_CFG_REQUIRED,
     "smtp://host:port or smtps://host:port"},
    {"ca", KVL_CFG_STR, OFF(ca), 0, 0, NULL, NULL, 0, "CA file for TLS"},
    {"use_ssl", KVL_CFG_ENUM, OFF(use_ssl), 0, 0, ssl_modes, NULL, 0, "STARTTLS: none, try, all"},
    {"user", KVL_CFG_STR, OFF(user), 0, 0, NULL, NULL, 0, "SMTP login"},
    {"password", KVL_CFG_STR, OFF(password), 0, 0, NULL, NULL, 0, "SMTP password"},
    {"from", KVL_CFG_STR, OFF(from), 0, 0, NULL, NULL, KVL_CFG_REQUIRED, "sender address"},
    {"to", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_to, KVL_CFG_REQUIRED, "recipients"},
    {NULL},
};

static const kvl_cfg_field_t exec_fields[] = {
    COMMON_FIELDS,
    {"command", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_command, KVL_CFG_REQUIRED,
     "[/path/to/program, args...]"},
    {NULL},
};

static const kvl_cfg_field_t syslog_fields[] = {
    COMMON_FIELDS,
    {"facility", KVL_CFG_ENUM, OFF(facility), 0, 0, kvl_notify_facilities, NULL, 0,
     "user, daemon, local0..local7 (daemon)"},
    {"ident", KVL_CFG_STR, OFF(ident), 0, 0, NULL, NULL, 0, "syslog tag (kaaval)"},
    {NULL},
};

static const kvl_cfg_field_t snmp_fields[] = {
    COMMON_FIELDS,
    {"address", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_address, KVL_CFG_REQUIRED,
     "the manager's host:port"},
    {"community", KVL_CFG_STR, OFF(community), 0, 0, NULL, NULL, 0, "v2c community (public)"},
    {"inform", KVL_CFG_BOOL, OFF(inform), 0, 0, NULL, NULL, 0,
     "v2c informs the manager acknowledges instead of traps (false)"},
    {"version", KVL_CFG_INT, OFF(version), 2, 3, NULL, NULL, 0,
     "2 (v2c traps or informs) or 3 (SNMPv3 informs) (2)"},
    {"user", KVL_CFG_STR, OFF(user), 0, 0, NULL, NULL, 0, "v3: the USM user name"},
    {"auth_protocol", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_auth_protocol, 0,
     "v3: MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512 (none)"},
    {"auth_password", KVL_CFG_STR, OFF(auth_password), 0, 0, NULL, NULL, 0,
     "v3: at least 8 characters"},
    {"priv_protocol", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_priv_protocol, 0,
     "v3: DES, AES, AES-192 or AES-256 (none; needs auth)"},
    {"priv_password", KVL_CFG_STR, OFF(priv_password), 0, 0, NULL, NULL, 0,
     "v3: at least 8 characters"},
    {NULL},
};

static const kvl_cfg_field_t *const type_fields[] = {am_fields,   webhook_fields, email_fields,
                                                     exec_fields, syslog_fields,  snmp_fields};

static void receiver_free(kvl_notify_receiver_cfg_t *r)
{
    free(r->name);
    free(r->url);
    free(r->ca);
    free(r->secret);
    free(r->template_);
    free(r->content_type);
    free(r->user);
    free(r->password);
    free(r->from);
    free_strv(r->to);
    free_strv(r->command);
    free(r->ident);
    free(r->address);
    free(r->community);
    free(r->auth_password);
    free(r->priv_password);
}

void kvl_notify_cfg_free(kvl_notify_cfg_t *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        receiver_free(&c->receivers[i]);
    }
    free(c->receivers);
    free(c);
}

static int parse_receiver(kvl_cfg_node_t item, kvl_notify_receiver_cfg_t *r)
{
    kvl_cfg_node_t t;
    if (!kvl_cfg_is_map(item)) {
        return kvl_cfg_error(item, "expected a receiver: {name: ..., type: ..., ...}");
    }
    if (!kvl_cfg_map_get(item, "type", &t)) {
        return kvl_cfg_error(item, "a receiver needs `type:` (%s)",
                             "alertmanager, webhook, email, exec, syslog or snmp");
    }
    const char *ts = kvl_cfg_scalar(t);
    int type = -1;
    for (int i = 0; ts && kvl_notify_types[i]; i++) {
        if (strcmp(ts, kvl_notify_types[i]) == 0) {
            type = i;
        }
    }
    if (type < 0) {
        return kvl_cfg_error(t, "expected alertmanager, webhook, email, exec, syslog or snmp");
    }
    r->type = type;
    r->max_bytes = 64ll << 20;
    r->timeout_ms = 10 * 1000;
    r->resend_ms = 60 * 1000;
    r->use_ssl = KVL_RCV_SSL_NONE;
    r->facility = 1; /* daemon */
    r->version = 2;
    int rc = kvl_cfg_apply(item, type_fields[type], r);
    if (rc != 0) {
        return rc;
    }
    char why[256];
    if (r->name[0] == '\0') {
        return kvl_cfg_error(item, "a receiver's name must not be empty");
    }
    if (kvl_name_check("receiver name", r->name, why, sizeof(why)) != 0) {
        return kvl_cfg_error(item, "%s", why);
    }
    for (const char *p = r->name; *p; p++) {
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || (*p == '.' && p > r->name))) {
            return kvl_cfg_error(item,
                                 "receiver name '%s': letters, digits, '-', '_' and '.' "
                                 "(not first) only",
                                 r->name);
        }
    }
    if (r->content_type != NULL && !plain_header(r->content_type)) {
        return kvl_cfg_error(item, "content_type '%s': one line of printable text",
                             r->content_type);
    }
    if ((r->ident == NULL && (r->ident = strdup("kaaval")) == NULL) ||
        (r->content_type == NULL && (r->content_type = strdup("application/json")) == NULL) ||
        (r->community == NULL && (r->community = strdup("public")) == NULL)) {
        return kvl_cfg_error(item, "out of memory");
    }
    if (r->type == KVL_RCV_SNMP && (rc = check_snmp(item, r)) != 0) {
        return rc;
    }
    if (r->type == KVL_RCV_EMAIL && r->password != NULL && r->user == NULL) {
        return kvl_cfg_error(item, "`password:` needs `user:`");
    }
    for (size_t i = 0; r->type == KVL_RCV_EMAIL && i <= r->n_to; i++) {
        const char *a = i < r->n_to ? r->to[i] : r->from;
        if (!plain_text(a) || strchr(a, '@') == NULL) {
            return kvl_cfg_error(item,
                                 "'%s' is not an e-mail address (user@domain, no spaces "
                                 "or control characters)",
                                 a);
        }
    }
    return 0;
}

int kvl_notify_cfg_parse(kvl_cfg_node_t n, void *target)
{
    kvl_notify_cfg_t **out = target;
    if (!kvl_cfg_is_seq(n)) {
        return kvl_cfg_error(n, "expected a list of receivers");
    }
    kvl_notify_cfg_t *c = calloc(1, sizeof(*c));
    size_t len = kvl_cfg_seq_len(n);
    if (c == NULL || (len > 0 && (c->receivers = calloc(len, sizeof(*c->receivers))) == NULL)) {
        free(c);
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < len; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(n, i);
        c->n = i + 1;
        int rc = parse_receiver(item, &c->receivers[i]);
        for (size_t k = 0; rc == 0 && k < i; k++) {
            if (strcmp(c->receivers[k].name, c->receivers[i].name) == 0) {
                rc = kvl_cfg_error(item, "a second receiver named '%s'", c->receivers[i].name);
            }
        }
        if (rc != 0) {
            kvl_notify_cfg_free(c);
            return rc;
        }
    }
    kvl_notify_cfg_free(*out);
    *out = c;
    return 0;
}

static kvl_notify_cfg_t *from_doc(kvl_cfg_t *y, char *err, size_t errlen)
{
    kvl_notify_cfg_t *c = NULL;
    kvl_cfg_node_t n;
    if (!kvl_cfg_map_get(kvl_cfg_root(y), "receivers", &n)) {
        snprintf(err, errlen, "no `receivers:` in the document");
    } else if (kvl_notify_cfg_parse(n, &c) != 0) {
        snprintf(err, errlen, "%s", kvl_cfg_last_error(y));
    }
    kvl_cfg_free(y);
    return c;
}

kvl_notify_cfg_t *kvl_notify_cfg_load(const char *path, char *err, size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_file(path, err, errlen);
    return y ? from_doc(y, err, errlen) : NULL;
}

kvl_notify_cfg_t *kvl_notify_cfg_parse_text(const char *name, const char *text, char *err,
                                            size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_string(name, text, err, errlen);
    return y ? from_doc(y, err, errlen) : NULL;
}
