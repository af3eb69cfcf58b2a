/*
 * agent_config.c — reads agent.yaml into kvl_agent_cfg_t (see agent_config.h for the keys).
 *
 * Top-level keys, credential sets, groups and device keys are field tables. Device settings
 * are applied level by level onto a template: built-in defaults, then `defaults`, then the
 * device's group (if any), then the device itself, whatever their order in the file. Each
 * level is a level_t: the device settings plus what this level itself said about
 * credentials, so that a level naming a credentials set replaces an inherited inline
 * version/community and the other way round. Credential sets are read first, so a
 * reference to an unknown set is an error at the reference.
 *
 * Secrets (communities and passwords) are read as plain text values: the table readers
 * never echo a text value in an error, and the checks here name the key, not its value.
 */
#include "agent_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfg.h"
#include "kvl.h"
#include "log.h"

#define MIN_USM_PASSWORD 8 /* RFC 3414 11.2: at least 8 octets */

/* --- names ----------------------------------------------------------------------------------- */

typedef struct name_value {
    const char *name;
    int value;
} name_value_t;

static const name_value_t level_names[] = {
    {"noAuthNoPriv", KVL_USM_NOAUTH},
    {"authNoPriv", KVL_USM_AUTHNOPRIV},
    {"authPriv", KVL_USM_AUTHPRIV},
    {NULL, 0},
};

/* The first name of each value is its canonical one. */
static const name_value_t auth_names[] = {
    {"MD5", KVL_USM_AUTH_MD5},
    {"SHA", KVL_USM_AUTH_SHA1},
    {"SHA-1", KVL_USM_AUTH_SHA1},
    {"SHA1", KVL_USM_AUTH_SHA1},
    {"SHA-224", KVL_USM_AUTH_SHA224},
    {"SHA224", KVL_USM_AUTH_SHA224},
    {"SHA-256", KVL_USM_AUTH_SHA256},
    {"SHA256", KVL_USM_AUTH_SHA256},
    {"SHA-384", KVL_USM_AUTH_SHA384},
    {"SHA384", KVL_USM_AUTH_SHA384},
    {"SHA-512", KVL_USM_AUTH_SHA512},
    {"SHA512", KVL_USM_AUTH_SHA512},
    {NULL, 0},
};

static const name_value_t priv_names[] = {
    {"DES", KVL_USM_PRIV_DES},
    {"AES", KVL_USM_PRIV_AES128},
    {"AES-128", KVL_USM_PRIV_AES128},
    {"AES128", KVL_USM_PRIV_AES128},
    {"AES-192", KVL_USM_PRIV_AES192},
    {"AES192", KVL_USM_PRIV_AES192},
    {"AES-256", KVL_USM_PRIV_AES256},
    {"AES256", KVL_USM_PRIV_AES256},
    {"AES-192-C", KVL_USM_PRIV_AES192C},
    {"AES192C", KVL_USM_PRIV_AES192C},
    {"AES-256-C", KVL_USM_PRIV_AES256C},
    {"AES256C", KVL_USM_PRIV_AES256C},
    {NULL, 0},
};

/* IANAifType names operators commonly filter on. */
static const name_value_t iftype_names[] = {
    {"other", 1},
    {"ethernetCsmacd", 6},
    {"iso88023Csmacd", 7},
    {"fddi", 15},
    {"propPointToPointSerial", 22},
    {"ppp", 23},
    {"softwareLoopback", 24},
    {"frameRelay", 32},
    {"atm", 37},
    {"sonet", 39},
    {"aal5", 49},
    {"propVirtual", 53},
    {"fastEther", 62},
    {"ieee80211", 71},
    {"gigabitEthernet", 117},
    {"tunnel", 131},
    {"l2vlan", 135},
    {"l3ipvlan", 136},
    {"mplsTunnel", 150},
    {"ieee8023adLag", 161},
    {"mpls", 166},
    {"bridge", 209},
    {NULL, 0},
};

static const char *name_of(const name_value_t *t, int value)
{
    for (; t->name != NULL; t++) {
        if (t->value == value) {
            return t->name;
        }
    }
    return "?";
}

/* Case-insensitive look-up; returns true and sets *value when found. */
static bool value_of(const name_value_t *t, const char *name, int *value)
{
    for (; t->name != NULL; t++) {
        if (strcasecmp(t->name, name) == 0) {
            *value = t->value;
            return true;
        }
    }
    return false;
}

const char *kvl_snmp_version_name(int version)
{
    return version == KVL_SNMP_V1 ? "1" : version == KVL_SNMP_V2C ? "2c" : "3";
}

const char *kvl_usm_level_name(int level)
{
    return name_of(level_names, level);
}

const char *kvl_usm_auth_name(int auth)
{
    return auth == KVL_USM_AUTH_NONE ? "none" : name_of(auth_names, auth);
}

const char *kvl_usm_priv_name(int priv)
{
    return priv == KVL_USM_PRIV_NONE ? "none" : name_of(priv_names, priv);
}

const char *kvl_iftype_name(uint32_t type)
{
    for (const name_value_t *t = iftype_names; t->name != NULL; t++) {
        if ((uint32_t)t->value == type) {
            return t->name;
        }
    }
    return NULL;
}

/* "a list", "a mapping" or the quoted scalar, for error messages about non-secret values. */
static void describe_value(kvl_cfg_node_t n, char *buf, size_t len)
{
    const char *s = kvl_cfg_scalar(n);
    if (s != NULL) {
        snprintf(buf, len, "'%s'", s);
    } else if (kvl_cfg_is_seq(n)) {
        snprintf(buf, len, "a list");
    } else if (kvl_cfg_is_map(n)) {
        snprintf(buf, len, "a mapping");
    } else {
        snprintf(buf, len, "nothing");
    }
}

/* Writes "A, B, C" of a table's canonical names (first name of each value). */
static void list_names(const name_value_t *t, char *buf, size_t len)
{
    size_t used = 0;
    int last = -1;
    buf[0] = '\0';
    for (; t->name != NULL && used < len; t++) {
        if (t->value == last) {
            continue;
        }
        last = t->value;
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", t->name);
        if (w < 0) {
            break;
        }
        used += (size_t)w;
    }
}

static int read_named(kvl_cfg_node_t n, const name_value_t *t, const char *what, int *out)
{
    const char *s = kvl_cfg_scalar(n);
    if (s != NULL && value_of(t, s, out)) {
        return 0;
    }
    char list[256], got[160];
    list_names(t, list, sizeof(list));
    describe_value(n, got, sizeof(got));
    return kvl_cfg_error(n, "expected %s: one of %s, got %s", what, list, got);
}

/* --- small helpers --------------------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static int remember_node(kvl_cfg_node_t n, void *target)
{
    *(kvl_cfg_node_t *)target = n;
    return 0;
}

/* The node of `key` in map, or the map itself when the key is absent. */
static kvl_cfg_node_t node_or(kvl_cfg_node_t map, const char *key)
{
    kvl_cfg_node_t at = map;
    kvl_cfg_map_get(map, key, &at);
    return at;
}

static bool has_key(kvl_cfg_node_t map, const char *key)
{
    kvl_cfg_node_t at;
    return kvl_cfg_map_get(map, key, &at);
}

/* --- credential sets ------------------------------------------------------------------------- */

static int parse_cred_version(kvl_cfg_node_t n, void *target)
{
    static const name_value_t versions[] = {
        {"1", KVL_SNMP_V1}, {"2c", KVL_SNMP_V2C}, {"3", KVL_SNMP_V3}, {NULL, 0}};
    return read_named(n, versions, "an SNMP version", target);
}

static int parse_level(kvl_cfg_node_t n, void *target)
{
    return read_named(n, level_names, "a security level", target);
}

static int parse_auth(kvl_cfg_node_t n, void *target)
{
    return read_named(n, auth_names, "an authentication protocol", target);
}

static int parse_priv(kvl_cfg_node_t n, void *target)
{
    return read_named(n, priv_names, "a privacy protocol", target);
}

#define CRED(field) offsetof(kvl_credentials_t, field)

static const kvl_cfg_field_t cred_fields[] = {
    {"name", KVL_CFG_STR, CRED(name), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the set's name, for `credentials: <name>`"},
    {"version", KVL_CFG_CUSTOM, CRED(version), 0, 0, NULL, parse_cred_version, 0,
     "1, 2c or 3 (3 when a user is given, else 2c)"},
    {"community", KVL_CFG_STR, CRED(community), 0, 0, NULL, NULL, 0, "v1/v2c community"},
    {"user", KVL_CFG_STR, CRED(user), 0, 0, NULL, NULL, 0, "v3 user (USM security name)"},
    {"level", KVL_CFG_CUSTOM, CRED(level), 0, 0, NULL, parse_level, 0,
     "noAuthNoPriv, authNoPriv or authPriv"},
    {"auth_protocol", KVL_CFG_CUSTOM, CRED(auth_protocol), 0, 0, NULL, parse_auth, 0,
     "MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512"},
    {"auth_password", KVL_CFG_STR, CRED(auth_password), 0, 0, NULL, NULL, 0,
     "authentication pass phrase (8 characters or more)"},
    {"priv_protocol", KVL_CFG_CUSTOM, CRED(priv_protocol), 0, 0, NULL, parse_priv, 0,
     "DES, AES, AES-192, AES-256, AES-192-C or AES-256-C"},
    {"priv_password", KVL_CFG_STR, CRED(priv_password), 0, 0, NULL, NULL, 0,
     "privacy pass phrase (8 characters or more)"},
    {"context", KVL_CFG_STR, CRED(context), 0, 0, NULL, NULL, 0, "v3 context name"},
    {NULL},
};

static void cred_free(kvl_credentials_t *c)
{
    free(c->name);
    free(c->community);
    free(c->user);
    free(c->auth_password);
    free(c->priv_password);
    free(c->context);
}

static const char *const v3_keys[] = {
    "user",          "level",         "auth_protocol", "auth_password",
    "priv_protocol", "priv_password", "context",       NULL};

/* Checks one set after its table was applied; item is its mapping node. */
static int check_credentials(kvl_credentials_t *c, kvl_cfg_node_t item)
{
    if (c->name[0] == '\0') {
        return kvl_cfg_error(node_or(item, "name"), "a credentials name must not be empty");
    }
    if (!has_key(item, "version")) {
        c->version = c->user != NULL ? KVL_SNMP_V3 : KVL_SNMP_V2C;
    }
    if (c->version != KVL_SNMP_V3) {
        for (size_t i = 0; v3_keys[i] != NULL; i++) {
            if (has_key(item, v3_keys[i])) {
                return kvl_cfg_error(node_or(item, v3_keys[i]),
                                     "'%s' is an SNMPv3 setting, but credentials '%s' are "
                                     "version %s",
                                     v3_keys[i], c->name, kvl_snmp_version_name(c->version));
            }
        }
        if (c->community == NULL) {
            return kvl_cfg_error(item,
                                 "missing required setting 'community' for version %s "
                                 "credentials '%s'",
                                 kvl_snmp_version_name(c->version), c->name);
        }
        return 0;
    }
    if (c->community != NULL) {
        return kvl_cfg_error(node_or(item, "community"),
                             "'community' is not used by SNMPv3 credentials '%s' (give user, "
                             "level and passwords)",
                             c->name);
    }
    if (c->user == NULL) {
        return kvl_cfg_error(item, "missing required setting 'user' for SNMPv3 credentials '%s'",
                             c->name);
    }
    if (c->user[0] == '\0') {
        return kvl_cfg_error(node_or(item, "user"), "the SNMPv3 user must not be empty");
    }
    if (c->context == NULL && (c->context = strdup("")) == NULL) {
        return kvl_cfg_error(item, "out of memory");
    }
    if (!has_key(item, "level")) {
        c->level = c->priv_password != NULL   ? KVL_USM_AUTHPRIV
                   : c->auth_password != NULL ? KVL_USM_AUTHNOPRIV
                                              : KVL_USM_NOAUTH;
    }
    bool need_auth = c->level >= KVL_USM_AUTHNOPRIV;
    bool need_priv = c->level == KVL_USM_AUTHPRIV;
    static const struct {
        const char *key;
        bool priv;
    } secrets[] = {{"auth_protocol", false},
                   {"auth_password", false},
                   {"priv_protocol", true},
                   {"priv_password", true}};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(secrets); i++) {
        bool needed = secrets[i].priv ? need_priv : need_auth;
        bool given = has_key(item, secrets[i].key);
        if (needed && !given) {
            return kvl_cfg_error(item,
                                 "missing required setting '%s' for level %s (credentials "
                                 "'%s')",
                                 secrets[i].key, kvl_usm_level_name(c->level), c->name);
        }
        if (!needed && given) {
            return kvl_cfg_error(node_or(item, secrets[i].key),
                                 "'%s' is not used at level %s (credentials '%s')", secrets[i].key,
                                 kvl_usm_level_name(c->level), c->name);
        }
    }
    if (need_auth && strlen(c->auth_password) < MIN_USM_PASSWORD) {
        return kvl_cfg_error(node_or(item, "auth_password"),
                             "auth_password of credentials '%s' is too short: SNMPv3 (RFC 3414) "
                             "needs at least %d characters",
                             c->name, MIN_USM_PASSWORD);
    }
    if (need_priv && strlen(c->priv_password) < MIN_USM_PASSWORD) {
        return kvl_cfg_error(node_or(item, "priv_password"),
                             "priv_password of credentials '%s' is too short: SNMPv3 (RFC 3414) "
                             "needs at least %d characters",
                             c->name, MIN_USM_PASSWORD);
    }
    return 0;
}

static int read_credentials(kvl_agent_cfg_t *cfg, kvl_cfg_node_t list)
{
    if (list.index == 0) {
        return 0;
    }
    if (!kvl_cfg_is_seq(list)) {
        return kvl_cfg_error(list, "expected a list of credential sets (each starting with "
                                   "'- name:')");
    }
    size_t n = kvl_cfg_seq_len(list);
    cfg->credentials = calloc(n ? n : 1, sizeof(*cfg->credentials));
    if (cfg->credentials == NULL) {
        return kvl_cfg_error(list, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(list, i);
        kvl_credentials_t *c = &cfg->credentials[i];
        c->version = KVL_SNMP_V2C;
        cfg->n_credentials = i + 1;
        int rc = kvl_cfg_apply(item, cred_fields, c);
        if (rc == 0) {
            rc = check_credentials(c, item);
        }
        if (rc != 0) {
            return rc;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(cfg->credentials[k].name, c->name) == 0) {
                return kvl_cfg_error(node_or(item, "name"),
                                     "credentials name '%s' is used twice (names must be unique)",
                                     c->name);
            }
        }
    }
    return 0;
}

/* --- device levels --------------------------------------------------------------------------- */

/* One level of device settings (defaults, a group or a device) being applied. */
typedef struct level {
    kvl_device_cfg_t d; /* first: the field tables' offsets are device offsets */
    const kvl_agent_cfg_t *cfg;
    bool set_cred;   /* this level named a credentials set */
    bool set_inline; /* this level gave version or community */
    kvl_cfg_node_t cred_node;
    char *group_name;       /* groups only */
    kvl_cfg_node_t devices; /* groups only: the group's device list */
} level_t;

static int parse_dev_version(kvl_cfg_node_t n, void *target)
{
    level_t *l = target;
    const char *s = kvl_cfg_scalar(n);
    if (s != NULL && strcmp(s, "1") == 0) {
        l->d.version = KVL_SNMP_V1;
    } else if (s != NULL && strcmp(s, "2c") == 0) {
        l->d.version = KVL_SNMP_V2C;
    } else {
        char got[160];
        describe_value(n, got, sizeof(got));
        bool v3 = s != NULL && (strcmp(s, "3") == 0 || strcasecmp(s, "v3") == 0);
        return kvl_cfg_error(n, "expected one of 1, 2c, got %s%s", got,
                             v3 ? " (SNMPv3 is set up with a named set under `credentials:` "
                                  "and `credentials: <name>` here)"
                                : "");
    }
    l->set_inline = true;
    return 0;
}

static int parse_dev_community(kvl_cfg_node_t n, void *target)
{
    level_t *l = target;
    l->set_inline = true;
    return kvl_cfg_read_str(n, &l->d.community);
}

static int parse_dev_credentials(kvl_cfg_node_t n, void *target)
{
    level_t *l = target;
    const char *s = kvl_cfg_scalar(n);
    if (s == NULL) {
        char got[32];
        describe_value(n, got, sizeof(got));
        return kvl_cfg_error(n, "expected the name of a credentials set, got %s", got);
    }
    for (size_t i = 0; i < l->cfg->n_credentials; i++) {
        if (strcmp(l->cfg->credentials[i].name, s) == 0) {
            l->d.credentials = &l->cfg->credentials[i];
            l->set_cred = true;
            l->cred_node = n;
            return 0;
        }
    }
    char known[256] = "";
    size_t used = 0;
    for (size_t i = 0; i < l->cfg->n_credentials && used < sizeof(known); i++) {
        int w = snprintf(known + used, sizeof(known) - used, "%s%s", i ? ", " : "",
                         l->cfg->credentials[i].name);
        if (w < 0) {
            break;
        }
        used += (size_t)w;
    }
    return kvl_cfg_error(n, "unknown credentials '%s'; %s%s", s,
                         l->cfg->n_credentials ? "defined under `credentials:` are: "
                                               : "no credentials are defined under "
                                                 "`credentials:`",
                         known);
}

/* A text value or a list of them into a fresh array. */
static int read_str_list(kvl_cfg_node_t n, char ***out, size_t *n_out)
{
    size_t count = kvl_cfg_is_seq(n) ? kvl_cfg_seq_len(n) : 1;
    if (!kvl_cfg_is_seq(n) && kvl_cfg_scalar(n) == NULL) {
        return kvl_cfg_error(n, "expected a pattern or a list of patterns");
    }
    char **v = calloc(count ? count : 1, sizeof(*v));
    if (v == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        kvl_cfg_node_t item = kvl_cfg_is_seq(n) ? kvl_cfg_seq_at(n, i) : n;
        int rc = kvl_cfg_read_str(item, &v[i]);
        if (rc == 0 && v[i][0] == '\0') {
            rc = kvl_cfg_error(item, "an interface name pattern must not be empty");
        }
        if (rc != 0) {
            free_strv(v, count);
            return rc;
        }
    }
    *out = v;
    *n_out = count;
    return 0;
}

/* An ifType name or number, or a list of them, into a fresh array. */
static int read_type_list(kvl_cfg_node_t n, uint32_t **out, size_t *n_out)
{
    size_t count = kvl_cfg_is_seq(n) ? kvl_cfg_seq_len(n) : 1;
    uint32_t *v = calloc(count ? count : 1, sizeof(*v));
    if (v == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        kvl_cfg_node_t item = kvl_cfg_is_seq(n) ? kvl_cfg_seq_at(n, i) : n;
        const char *s = kvl_cfg_scalar(item);
        int value = 0;
        char *end = NULL;
        unsigned long num = s != NULL ? strtoul(s, &end, 10) : 0;
        if (s != NULL && s[0] >= '1' && s[0] <= '9' && *end == '\0' && num <= 2147483647ul) {
            v[i] = (uint32_t)num;
        } else if (s != NULL && value_of(iftype_names, s, &value)) {
            v[i] = (uint32_t)value;
        } else {
            char got[160];
            describe_value(item, got, sizeof(got));
            free(v);
            return kvl_cfg_error(item,
                                 "expected an ifType number (1 or more) or one of: other, "
                                 "ethernetCsmacd, softwareLoopback, propVirtual, tunnel, l2vlan, "
                                 "l3ipvlan, ieee8023adLag (see agent_config.h for more), got %s",
                                 got);
        }
    }
    *out = v;
    *n_out = count;
    return 0;
}

static int parse_if_include(kvl_cfg_node_t n, void *target)
{
    kvl_if_filter_t *f = target;
    char **v = NULL;
    size_t nv = 0;
    int rc = read_str_list(n, &v, &nv);
    if (rc == 0) {
        free_strv(f->include, f->n_include);
        f->include = v;
        f->n_include = nv;
    }
    return rc;
}

static int parse_if_exclude(kvl_cfg_node_t n, void *target)
{
    kvl_if_filter_t *f = target;
    char **v = NULL;
    size_t nv = 0;
    int rc = read_str_list(n, &v, &nv);
    if (rc == 0) {
        free_strv(f->exclude, f->n_exclude);
        f->exclude = v;
        f->n_exclude = nv;
    }
    return rc;
}

static int parse_if_include_types(kvl_cfg_node_t n, void *target)
{
    kvl_if_filter_t *f = target;
    uint32_t *v = NULL;
    size_t nv = 0;
    int rc = read_type_list(n, &v, &nv);
    if (rc == 0) {
        free(f->include_types);
        f->include_types = v;
        f->n_include_types = nv;
    }
    return rc;
}

static int parse_if_exclude_types(kvl_cfg_node_t n, void *target)
{
    kvl_if_filter_t *f = target;
    uint32_t *v = NULL;
    size_t nv = 0;
    int rc = read_type_list(n, &v, &nv);
    if (rc == 0) {
        free(f->exclude_types);
        f->exclude_types = v;
        f->n_exclude_types = nv;
    }
    return rc;
}

static const kvl_cfg_field_t if_fields[] = {
    {"include", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_if_include, 0,
     "name globs to report (all when empty)"},
    {"exclude", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_if_exclude, 0, "name globs to leave out"},
    {"include_types", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_if_include_types, 0,
     "ifTypes to report (all when empty)"},
    {"exclude_types", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_if_exclude_types, 0,
     "ifTypes to leave out"},
    {"skip_admin_down", KVL_CFG_BOOL, offsetof(kvl_if_filter_t, skip_admin_down), 0, 0, NULL, NULL,
     0, "leave out interfaces whose ifAdminStatus is down"},
    {NULL},
};

static int parse_dev_interfaces(kvl_cfg_node_t n, void *target)
{
    level_t *l = target;
    return kvl_cfg_apply(n, if_fields, &l->d.ifs);
}

#define DEV(field) offsetof(level_t, d.field)

/* Settings shared by defaults, groups and devices. */
#define DEVICE_FIELDS                                                                              \
    {"port", KVL_CFG_INT, DEV(port), 1, 65535, NULL, NULL, 0, "UDP port of the SNMP agent (161)"}, \
        {"version",                                                                                \
         KVL_CFG_CUSTOM,                                                                           \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         NULL,                                                                                     \
         parse_dev_version,                                                                        \
         0,                                                                                        \
         "SNMP version: 1 or 2c (v3 through `credentials`)"},                                      \
        {"community", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_dev_community, 0, "SNMP community"},    \
        {"credentials",                                                                            \
         KVL_CFG_CUSTOM,                                                                           \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         NULL,                                                                                     \
         parse_dev_credentials,                                                                    \
         0,                                                                                        \
         "name of a set under `credentials:`"},                                                    \
        {"interval",                                                                               \
         KVL_CFG_DURATION,                                                                         \
         DEV(interval_ms),                                                                         \
         1000,                                                                                     \
         86400000,                                                                                 \
         NULL,                                                                                     \
         NULL,                                                                                     \
         0,                                                                                        \
         "poll interval, also the archive step (60s)"},                                            \
        {"timeout",                                                                                \
         KVL_CFG_DURATION,                                                                         \
         DEV(timeout_ms),                                                                          \
         100,                                                                                      \
         60000,                                                                                    \
         NULL,                                                                                     \
         NULL,                                                                                     \
         0,                                                                                        \
         "time to wait for each answer (2s)"},                                                     \
        {"retries", KVL_CFG_INT, DEV(retries),                                                     \
         0,         10,          NULL,                                                             \
         NULL,      0,           "requests resent after a timeout (1)"},                           \
        {"max_repetitions",                                                                        \
         KVL_CFG_INT,                                                                              \
         DEV(max_repetitions),                                                                     \
         1,                                                                                        \
         200,                                                                                      \
         NULL,                                                                                     \
         NULL,                                                                                     \
         0,                                                                                        \
         "GETBULK max-repetitions upper bound (25)"},                                              \
        {"rediscover",                                                                             \
         KVL_CFG_DURATION,                                                                         \
         DEV(rediscover_ms),                                                                       \
         0,                                                                                        \
         30 * 86400000LL,                                                                          \
         NULL,                                                                                     \
         NULL,                                                                                     \
         0,                                                                                        \
         "interface re-discovery period (1h; 0: every poll)"},                                     \
    {                                                                                              \
        "interfaces", KVL_CFG_CUSTOM, 0, 0, 0, NULL, parse_dev_interfaces, 0,                      \
            "which interfaces to report: include, exclude, include_types, exclude_types, "         \
            "skip_admin_down"                                                                      \
    }

static const kvl_cfg_field_t default_fields[] = {DEVICE_FIELDS, {NULL}};

static const kvl_cfg_field_t device_fields[] = {
    {"name", KVL_CFG_STR, DEV(name), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the device's name, unique within the agent"},
    {"address", KVL_CFG_STR, DEV(address), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "IP address of the device"},
    DEVICE_FIELDS,
    {NULL},
};

static const kvl_cfg_field_t group_fields[] = {
    {"name", KVL_CFG_STR, offsetof(level_t, group_name), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the group's name"},
    DEVICE_FIELDS,
    {"devices", KVL_CFG_CUSTOM, offsetof(level_t, devices), 0, 0, NULL, remember_node,
     KVL_CFG_REQUIRED, "the group's devices"},
    {NULL},
};

static void filter_free(kvl_if_filter_t *f)
{
    free_strv(f->include, f->n_include);
    free_strv(f->exclude, f->n_exclude);
    free(f->include_types);
    free(f->exclude_types);
    memset(f, 0, sizeof(*f));
}

static char **strv_dup(char *const *v, size_t n, bool *ok)
{
    if (n == 0) {
        return NULL;
    }
    char **c = calloc(n, sizeof(*c));
    if (c == NULL) {
        *ok = false;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if ((c[i] = strdup(v[i])) == NULL) {
            *ok = false;
        }
    }
    return c;
}

static uint32_t *u32_dup(const uint32_t *v, size_t n, bool *ok)
{
    if (n == 0) {
        return NULL;
    }
    uint32_t *c = malloc(n * sizeof(*c));
    if (c == NULL) {
        *ok = false;
        return NULL;
    }
    memcpy(c, v, n * sizeof(*c));
    return c;
}

static void device_free(kvl_device_cfg_t *d)
{
    free(d->name);
    free(d->address);
    free(d->community);
    filter_free(&d->ifs);
}

/* Deep copy of the inheritable settings of src (not name or address) into a zeroed dst.
 * Returns false when out of memory (dst is then still safe to free). */
static bool device_inherit(kvl_device_cfg_t *dst, const kvl_device_cfg_t *src)
{
    bool ok = true;
    *dst = *src;
    dst->name = NULL;
    dst->address = NULL;
    dst->community = xstrdup(src->community);
    if (src->community != NULL && dst->community == NULL) {
        ok = false;
    }
    dst->ifs.include = strv_dup(src->ifs.include, src->ifs.n_include, &ok);
    dst->ifs.exclude = strv_dup(src->ifs.exclude, src->ifs.n_exclude, &ok);
    dst->ifs.include_types = u32_dup(src->ifs.include_types, src->ifs.n_include_types, &ok);
    dst->ifs.exclude_types = u32_dup(src->ifs.exclude_types, src->ifs.n_exclude_types, &ok);
    return ok;
}

static void device_init(kvl_device_cfg_t *d)
{
    memset(d, 0, sizeof(*d));
    d->port = 161;
    d->version = KVL_SNMP_V2C;
    d->interval_ms = 60000;
    d->timeout_ms = 2000;
    d->retries = 1;
    d->max_repetitions = 25;
    d->rediscover_ms = 3600000;
}

/* Applies one level's mapping onto l (whose d holds what it inherits). */
static int apply_level(level_t *l, kvl_cfg_node_t map, const kvl_cfg_field_t *fields)
{
    l->set_cred = l->set_inline = false;
    int rc = kvl_cfg_apply(map, fields, l);
    if (rc != 0) {
        return rc;
    }
    if (l->set_cred && l->set_inline) {
        return kvl_cfg_error(l->cred_node, "give either `credentials` or version/community on "
                                           "one entry, not both");
    }
    if (l->set_inline) {
        l->d.credentials = NULL;
    }
    return 0;
}

/* --- the whole file -------------------------------------------------------------------------- */

typedef struct top {
    kvl_agent_cfg_t cfg;
    kvl_cfg_node_t devices;
    kvl_cfg_node_t defaults;
    kvl_cfg_node_t groups;
    kvl_cfg_node_t credentials;
    size_t cap_devices;
} top_t;

static int parse_collector(kvl_cfg_node_t n, void *target)
{
    kvl_agent_cfg_t *c = target;
    const char *s = kvl_cfg_scalar(n);
    if (s == NULL ||
        kvl_parse_hostport(s, c->collector_host, sizeof(c->collector_host), &c->collector_port)) {
        return kvl_cfg_error(n, "expected the collector as host:port, e.g. 127.0.0.1:5140");
    }
    free(c->collector);
    c->collector = strdup(s);
    return 0;
}

/* A size in bytes: a whole number, optionally followed by B, KiB, MiB, GiB or TiB. */
static int parse_size(kvl_cfg_node_t n, int64_t min, int64_t max, int64_t *out)
{
    static const struct {
        const char *unit;
        int shift;
    } units[] = {{"", 0}, {"B", 0}, {"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}};
    const char *s = kvl_cfg_scalar(n);
    char *end = NULL;
    unsigned long long v = 0;
    if (s != NULL && *s >= '0' && *s <= '9') {
        v = strtoull(s, &end, 10);
    }
    if (end != NULL) {
        while (*end == ' ') {
            end++;
        }
        for (size_t i = 0; i < KVL_ARRAY_SIZE(units); i++) {
            if (strcmp(end, units[i].unit) == 0) {
                if (v <= (unsigned long long)max >> units[i].shift &&
                    (int64_t)(v << units[i].shift) >= min) {
                    *out = (int64_t)(v << units[i].shift);
                    return 0;
                }
                break;
            }
        }
    }
    return kvl_cfg_error(n,
                         "expected a size from %lld MiB to %lld GiB, e.g. 2GiB or 512MiB "
                         "(units B, KiB, MiB, GiB, TiB)",
                         (long long)(min >> 20), (long long)(max >> 30));
}

#define SPOOL_MIN_BYTES (16ll << 20)
#define SPOOL_MAX_BYTES (1ll << 40)

static int parse_spool_size(kvl_cfg_node_t n, void *target)
{
    return parse_size(n, SPOOL_MIN_BYTES, SPOOL_MAX_BYTES, target);
}

static const kvl_cfg_field_t spool_fields[] = {
    {"dir", KVL_CFG_STR, offsetof(kvl_spool_cfg_t, dir), 0, 0, NULL, NULL, 0,
     "folder of the spool files (/var/lib/kaaval/spool)"},
    {"max_size", KVL_CFG_CUSTOM, offsetof(kvl_spool_cfg_t, max_bytes), 0, 0, NULL, parse_spool_size,
     0, "bound of the spool files (2GiB)"},
    {"sync_interval", KVL_CFG_DURATION, offsetof(kvl_spool_cfg_t, sync_interval_ms), 0, 3600000,
     NULL, NULL, 0, "how often written batches are forced to disk; 0: every batch (1s)"},
    {NULL},
};

static int parse_spool(kvl_cfg_node_t n, void *target)
{
    kvl_spool_cfg_t *sp = target;
    int rc = kvl_cfg_apply(n, spool_fields, sp);
    if (rc == 0 && (sp->dir == NULL || sp->dir[0] == '\0')) {
        kvl_cfg_node_t d;
        return kvl_cfg_error(kvl_cfg_map_get(n, "dir", &d) ? d : n,
                             "the spool folder must not be empty");
    }
    return rc;
}

#define CFG(field) offsetof(top_t, cfg.field)

static const kvl_cfg_field_t top_fields[] = {
    {"id", KVL_CFG_STR, CFG(id), 0, 0, NULL, NULL, KVL_CFG_REQUIRED, "this agent's identity"},
    {"site", KVL_CFG_STR, CFG(site), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the site the agent stands at"},
    {"collector", KVL_CFG_CUSTOM, offsetof(top_t, cfg), 0, 0, NULL, parse_collector,
     KVL_CFG_REQUIRED, "the collector's host:port"},
    {"log_level", KVL_CFG_CUSTOM, CFG(log_level), 0, 0, NULL, kvl_cfg_parse_log_level, 0,
     "error, warn, info or debug"},
    {"flush_interval", KVL_CFG_DURATION, CFG(flush_interval_ms), 10, 60000, NULL, NULL, 0,
     "how long samples wait to be batched (1s)"},
    {"max_queue", KVL_CFG_INT, CFG(max_queue), 1, 10000000, NULL, NULL, 0,
     "unacknowledged batches kept in memory (100000)"},
    {"reconnect_max", KVL_CFG_DURATION, CFG(reconnect_max_ms), 1000, 3600000, NULL, NULL, 0,
     "longest wait between connection attempts (30s)"},
    {"max_inflight", KVL_CFG_INT, CFG(max_inflight), 1, 100000, NULL, NULL, 0,
     "SNMP requests in flight at once over all devices (500)"},
    {"spool", KVL_CFG_CUSTOM, CFG(spool), 0, 0, NULL, parse_spool, 0,
     "the disk spool: dir, max_size, sync_interval"},
    {"tls", KVL_CFG_CUSTOM, CFG(tls), 0, 0, NULL, kvl_tls_cfg_parse_client, 0,
     "mutual TLS: ca, cert, key, optional server_name"},
    {"insecure", KVL_CFG_BOOL, CFG(tls.insecure), 0, 0, NULL, NULL, 0,
     "true: plain TCP to the collector, no authentication (instead of tls)"},
    {"credentials", KVL_CFG_CUSTOM, offsetof(top_t, credentials), 0, 0, NULL, remember_node, 0,
     "named credential sets"},
    {"defaults", KVL_CFG_CUSTOM, offsetof(top_t, defaults), 0, 0, NULL, remember_node, 0,
     "device settings defaults"},
    {"devices", KVL_CFG_CUSTOM, offsetof(top_t, devices), 0, 0, NULL, remember_node, 0,
     "the SNMP devices to poll"},
    {"groups", KVL_CFG_CUSTOM, offsetof(top_t, groups), 0, 0, NULL, remember_node, 0,
     "groups of devices sharing settings"},
    {NULL},
};

void kvl_agent_cfg_free(kvl_agent_cfg_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->id);
    free(c->site);
    free(c->collector);
    free(c->spool.dir);
    kvl_tls_cfg_free(&c->tls);
    for (size_t i = 0; i < c->n_devices; i++) {
        device_free(&c->devices[i]);
    }
    free(c->devices);
    for (size_t i = 0; i < c->n_credentials; i++) {
        cred_free(&c->credentials[i]);
    }
    free(c->credentials);
    free(c);
}

/* Final checks of one device and its credentials in effect. */
static int finish_device(top_t *t, kvl_device_cfg_t *d, kvl_cfg_node_t item)
{
    kvl_agent_cfg_t *c = &t->cfg;
    if (d->name[0] == '\0') {
        return kvl_cfg_error(node_or(item, "name"), "a device name must not be empty");
    }
    for (size_t k = 0; k + 1 < c->n_devices; k++) {
        if (strcmp(c->devices[k].name, d->name) == 0) {
            return kvl_cfg_error(node_or(item, "name"),
                                 "device name '%s' is used twice (names must be unique)", d->name);
        }
    }
    if (d->timeout_ms * (d->retries + 1) >= d->interval_ms) {
        return kvl_cfg_error(node_or(item, "timeout"),
                             "timeout x (retries + 1) must be shorter than the interval "
                             "(%lldms x %lld >= %lldms)",
                             (long long)d->timeout_ms, (long long)(d->retries + 1),
                             (long long)d->interval_ms);
    }
    if (d->credentials != NULL) {
        d->version = d->credentials->version;
        const char *community =
            d->credentials->version != KVL_SNMP_V3 ? d->credentials->community : "";
        char *copy = strdup(community);
        if (copy == NULL) {
            return kvl_cfg_error(item, "out of memory");
        }
        free(d->community);
        d->community = copy;
    } else if (d->community == NULL && (d->community = strdup("public")) == NULL) {
        return kvl_cfg_error(item, "out of memory");
    }
    return 0;
}

/* Reads a device list, each device starting from parent. */
static int read_devices(top_t *t, kvl_cfg_node_t list, const level_t *parent, const char *what)
{
    kvl_agent_cfg_t *c = &t->cfg;
    if (list.index == 0) {
        return 0;
    }
    if (!kvl_cfg_is_seq(list)) {
        return kvl_cfg_error(list, "expected a list of devices%s (each starting with '- name:')",
                             what);
    }
    size_t n = kvl_cfg_seq_len(list);
    if (c->n_devices + n > t->cap_devices) {
        size_t cap = c->n_devices + n;
        kvl_device_cfg_t *devs = realloc(c->devices, (cap ? cap : 1) * sizeof(*devs));
        if (devs == NULL) {
            return kvl_cfg_error(list, "out of memory");
        }
        c->devices = devs;
        t->cap_devices = cap;
    }
    for (size_t i = 0; i < n; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(list, i);
        level_t l = *parent;
        l.group_name = NULL;
        bool ok = device_inherit(&l.d, &parent->d);
        c->devices[c->n_devices++] = l.d; /* owned by the list from here on, also on error */
        if (!ok) {
            return kvl_cfg_error(item, "out of memory");
        }
        int rc = apply_level(&l, item, device_fields);
        c->devices[c->n_devices - 1] = l.d;
        if (rc == 0) {
            rc = finish_device(t, &c->devices[c->n_devices - 1], item);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int read_groups(top_t *t, const level_t *defaults)
{
    kvl_cfg_node_t list = t->groups;
    if (list.index == 0) {
        return 0;
    }
    if (!kvl_cfg_is_seq(list)) {
        return kvl_cfg_error(list, "expected a list of groups (each starting with '- name:')");
    }
    size_t n = kvl_cfg_seq_len(list);
    char **names = calloc(n ? n : 1, sizeof(*names));
    if (names == NULL) {
        return kvl_cfg_error(list, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(list, i);
        level_t g = *defaults;
        g.group_name = NULL;
        g.devices.index = 0;
        if (!device_inherit(&g.d, &defaults->d)) {
            rc = kvl_cfg_error(item, "out of memory");
        } else {
            rc = apply_level(&g, item, group_fields);
        }
        if (rc == 0 && g.group_name[0] == '\0') {
            rc = kvl_cfg_error(node_or(item, "name"), "a group name must not be empty");
        }
        for (size_t k = 0; rc == 0 && k < i; k++) {
            if (strcmp(names[k], g.group_name) == 0) {
                rc = kvl_cfg_error(node_or(item, "name"),
                                   "group name '%s' is used twice (names must be unique)",
                                   g.group_name);
            }
        }
        if (rc == 0) {
            char what[300];
            snprintf(what, sizeof(what), " for group '%s'", g.group_name);
            rc = read_devices(t, g.devices, &g, what);
        }
        names[i] = g.group_name;
        device_free(&g.d);
    }
    free_strv(names, n);
    return rc;
}

static kvl_agent_cfg_t *finish(kvl_cfg_t *y, char *err, size_t errlen)
{
    kvl_agent_cfg_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        kvl_cfg_free(y);
        return NULL;
    }
    top_t t;
    memset(&t, 0, sizeof(t));
    t.cfg.log_level = KVL_LOG_LEVEL_INFO;
    t.cfg.flush_interval_ms = 1000;
    t.cfg.max_queue = 100000;
    t.cfg.reconnect_max_ms = 30000;
    t.cfg.max_inflight = 500;
    t.cfg.spool.dir = strdup("/var/lib/kaaval/spool");
    t.cfg.spool.max_bytes = 2ll << 30;
    t.cfg.spool.sync_interval_ms = 1000;
    level_t defaults;
    memset(&defaults, 0, sizeof(defaults));
    device_init(&defaults.d);
    defaults.cfg = &t.cfg;
    int rc = kvl_cfg_apply(kvl_cfg_root(y), top_fields, &t);
    if (rc == 0) {
        rc = kvl_tls_cfg_check(kvl_cfg_root(y), &t.cfg.tls);
    }
    if (rc == 0) {
        rc = read_credentials(&t.cfg, t.credentials);
    }
    if (rc == 0 && t.defaults.index != 0) {
        rc = apply_level(&defaults, t.defaults, default_fields);
    }
    if (rc == 0) {
        rc = read_devices(&t, t.devices, &defaults, "");
    }
    if (rc == 0) {
        rc = read_groups(&t, &defaults);
    }
    device_free(&defaults.d);
    *c = t.cfg;
    if (rc != 0) {
        snprintf(err, errlen, "%s", kvl_cfg_last_error(y));
        kvl_agent_cfg_free(c);
        c = NULL;
    }
    kvl_cfg_free(y);
    return c;
}

kvl_agent_cfg_t *kvl_agent_cfg_load(const char *path, char *err, size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_file(path, err, errlen);
    return y ? finish(y, err, errlen) : NULL;
}

kvl_agent_cfg_t *kvl_agent_cfg_parse(const char *name, const char *text, char *err, size_t errlen)
{
    kvl_cfg_t *y = kvl_cfg_load_string(name, text, err, errlen);
    return y ? finish(y, err, errlen) : NULL;
}
