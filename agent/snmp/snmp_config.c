/*
 * snmp_config.c — the SNMP part of agent.yaml into kvl_snmp_cfg_t (keys in snmp_config.h):
 * credential sets, `defaults`, `devices`, `groups`, `mib_path` and `metric_groups`.
 *
 * The top level (agent_config.c) remembers these keys' nodes with kvl_snmp_cfg_keep while
 * it applies its own table, then kvl_snmp_cfg_finish reads them, in this order: credential
 * sets, MIB folders, metric groups, defaults, devices, groups.
 *
 * Credential sets, groups and device keys are field tables. Device settings are applied
 * level by level onto a template: built-in defaults, then `defaults`, then the device's
 * group (if any), then the device itself, whatever their order in the file. Each level is a
 * level_t: the device settings plus what this level itself said about credentials, so that
 * a level naming a credentials set replaces an inherited inline version/community and the
 * other way round. Credential sets are read first, so a reference to an unknown set is an
 * error at the reference.
 *
 * Secrets (communities and passwords) are read as plain text values: the table readers
 * never echo a text value in an error, and the checks here name the key, not its value.
 */
#include "snmp_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cfg.h"
#include "kvl.h"
#include "names.h"
#include "snmp_mib.h"

#ifndef KVL_INSTALL_MIB_DIR
#define KVL_INSTALL_MIB_DIR "/usr/share/kaaval/mibs"
#endif
#ifndef KVL_SOURCE_MIB_DIR
#define KVL_SOURCE_MIB_DIR "mibs"
#endif

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

static int read_credentials(kvl_snmp_cfg_t *cfg, kvl_cfg_node_t list)
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
    const kvl_snmp_cfg_t *cfg;
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
            return kvl_cfg_error(
                item,
                "expected an ifType number (1 or more) or one of: other, "
                "ethernetCsmacd, softwareLoopback, propVirtual, tunnel, l2vlan, "
                "l3ipvlan, ieee8023adLag (see docs/configuration.md for more), got %s",
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

static int parse_dev_mgroups(kvl_cfg_node_t n, void *target);

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
        {"max_varbinds",                                                                           \
         KVL_CFG_INT,                                                                              \
         DEV(max_varbinds),                                                                        \
         1,                                                                                        \
         KVL_MAX_VARBINDS,                                                                         \
         NULL,                                                                                     \
         NULL,                                                                                     \
         0,                                                                                        \
         "varbinds per GET between discoveries (120)"},                                            \
        {"rediscover",                                                                             \
         KVL_CFG_DURATION,                                                                         \
         DEV(rediscover_ms),                                                                       \
         0,                                                                                        \
         30 * 86400000LL,                                                                          \
         NULL,                                                                                     \
         NULL,                                                                                     \
         0,                                                                                        \
         "interface re-discovery period (1h; 0: every poll)"},                                     \
        {"neighbours",                                                                             \
         KVL_CFG_BOOL,                                                                             \
         DEV(neighbours),                                                                          \
         0,                                                                                        \
         0,                                                                                        \
         NULL,                                                                                     \
         NULL,                                                                                     \
         0,                                                                                        \
         "LLDP/CDP neighbours read at each discovery (true)"},                                     \
        {"metric_groups",                                                                          \
         KVL_CFG_CUSTOM,                                                                           \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         NULL,                                                                                     \
         parse_dev_mgroups,                                                                        \
         0,                                                                                        \
         "metric groups polled besides the interfaces"},                                           \
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
    free(d->mgroups);
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
    dst->mgroups = NULL;
    if (src->n_mgroups > 0) {
        dst->mgroups = malloc(src->n_mgroups * sizeof(*dst->mgroups));
        if (dst->mgroups == NULL) {
            dst->n_mgroups = 0;
            ok = false;
        } else {
            memcpy(dst->mgroups, src->mgroups, src->n_mgroups * sizeof(*dst->mgroups));
        }
    }
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
    d->max_varbinds = 120;
    d->rediscover_ms = 3600000;
    d->neighbours = true;
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

/* --- reading the SNMP keys ------------------------------------------------------------------ */

typedef struct reading {
    kvl_snmp_cfg_t *cfg;
    kvl_cfg_node_t devices;
    kvl_cfg_node_t defaults;
    kvl_cfg_node_t groups;
    kvl_cfg_node_t credentials;
    kvl_cfg_node_t mib_path;
    kvl_cfg_node_t metric_groups;
    size_t cap_devices;
    char base_dir[4096]; /* the configuration file's folder */
    bool used_mibs;      /* a MIB name was resolved */
} reading_t;

/* --- metric groups --------------------------------------------------------------------------- */

/* Built-in groups, with the standard numeric OIDs (no MIB file needed). A metric's oid is a
 * column of `entry` for tables, the instance to GET for scalars. */
typedef struct builtin_metric {
    const char *name;
    const char *oid;
    kvl_kind_t kind;
    double scale;
    const char *scale_by; /* a column of the same table, or NULL */
} builtin_metric_t;

typedef struct builtin_group {
    const char *name;
    const char *entry;    /* NULL for scalars */
    const char *instance; /* column naming rows, or NULL */
    const char *label;    /* one label column: its name and OID, or NULL */
    const char *label_oid;
    builtin_metric_t metrics[16];
} builtin_group_t;

#define HR "1.3.6.1.2.1.25."
#define UCD "1.3.6.1.4.1.2021."

static const builtin_group_t builtin_groups[] = {
    {"hr-cpu", HR "3.3.1", NULL, NULL, NULL, {{"load", HR "3.3.1.2", KVL_KIND_GAUGE, 1, NULL}}},
    {"hr-storage",
     HR "2.3.1",
     HR "2.3.1.3",
     "type",
     HR "2.3.1.2",
     {{"size_bytes", HR "2.3.1.5", KVL_KIND_GAUGE, 1, HR "2.3.1.4"},
      {"used_bytes", HR "2.3.1.6", KVL_KIND_GAUGE, 1, HR "2.3.1.4"},
      {"alloc_failures", HR "2.3.1.7", KVL_KIND_COUNTER, 1, NULL}}},
    {"hr-system",
     NULL,
     NULL,
     NULL,
     NULL,
     {{"processes", HR "1.6.0", KVL_KIND_GAUGE, 1, NULL},
      {"users", HR "1.5.0", KVL_KIND_GAUGE, 1, NULL},
      {"memory_bytes", HR "2.2.0", KVL_KIND_GAUGE, 1024, NULL}}},
    {"ucd",
     NULL,
     NULL,
     NULL,
     NULL,
     {{"load1", UCD "10.1.5.1", KVL_KIND_GAUGE, 0.01, NULL},
      {"load5", UCD "10.1.5.2", KVL_KIND_GAUGE, 0.01, NULL},
      {"load15", UCD "10.1.5.3", KVL_KIND_GAUGE, 0.01, NULL},
      {"mem_total_bytes", UCD "4.5.0", KVL_KIND_GAUGE, 1024, NULL},
      {"mem_avail_bytes", UCD "4.6.0", KVL_KIND_GAUGE, 1024, NULL},
      {"mem_buffer_bytes", UCD "4.14.0", KVL_KIND_GAUGE, 1024, NULL},
      {"mem_cached_bytes", UCD "4.15.0", KVL_KIND_GAUGE, 1024, NULL},
      {"swap_total_bytes", UCD "4.3.0", KVL_KIND_GAUGE, 1024, NULL},
      {"swap_avail_bytes", UCD "4.4.0", KVL_KIND_GAUGE, 1024, NULL},
      {"cpu_user", UCD "11.50.0", KVL_KIND_COUNTER, 1, NULL},
      {"cpu_system", UCD "11.52.0", KVL_KIND_COUNTER, 1, NULL},
      {"cpu_idle", UCD "11.53.0", KVL_KIND_COUNTER, 1, NULL},
      {"cpu_wait", UCD "11.54.0", KVL_KIND_COUNTER, 1, NULL}}},
};

/* A name standing for several built-in groups. */
static const char *const host_resources[] = {"hr-cpu", "hr-storage", "hr-system", NULL};
#define HOST_RESOURCES "host-resources"

static void mg_free(kvl_metric_group_t *g)
{
    free(g->name);
    for (size_t i = 0; i < g->n_metrics; i++) {
        free(g->metrics[i].name);
    }
    free(g->metrics);
    for (size_t i = 0; i < g->n_labels; i++) {
        free(g->labels[i].name);
    }
    free(g->labels);
    free(g->cols);
    free(g->family_metrics);
    free(g->family_kinds);
    free(g->family_reals);
}

static void mg_oid_from(kvl_mg_oid_t *dst, const kvl_snmp_oid_t *src)
{
    dst->len = src->len;
    memcpy(dst->sub, src->sub, src->len * sizeof(src->sub[0]));
}

static bool mg_oid_eq(const kvl_mg_oid_t *a, const kvl_mg_oid_t *b)
{
    return a->len == b->len && memcmp(a->sub, b->sub, a->len * sizeof(a->sub[0])) == 0;
}

static bool mg_oid_under(const kvl_mg_oid_t *o, const kvl_mg_oid_t *prefix)
{
    return o->len > prefix->len &&
           memcmp(o->sub, prefix->sub, prefix->len * sizeof(o->sub[0])) == 0;
}

/* Index of column o in g->cols, adding it; -1 when out of memory. */
static int mg_col(kvl_metric_group_t *g, const kvl_mg_oid_t *o)
{
    for (size_t i = 0; i < g->n_cols; i++) {
        if (mg_oid_eq(&g->cols[i], o)) {
            return (int)i;
        }
    }
    kvl_mg_oid_t *cols = realloc(g->cols, (g->n_cols + 1) * sizeof(*cols));
    if (cols == NULL) {
        return -1;
    }
    g->cols = cols;
    g->cols[g->n_cols] = *o;
    return (int)g->n_cols++;
}

/* Fills the family from the metrics. Returns false when out of memory. */
static bool mg_family(kvl_metric_group_t *g)
{
    size_t n = g->n_metrics;
    g->family_metrics = calloc(n, sizeof(*g->family_metrics));
    g->family_kinds = calloc(n, sizeof(*g->family_kinds));
    g->family_reals = calloc(n, sizeof(*g->family_reals));
    if (g->family_metrics == NULL || g->family_kinds == NULL || g->family_reals == NULL) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        g->family_metrics[i] = g->metrics[i].name;
        g->family_kinds[i] = (kvl_kind_t)g->metrics[i].kind;
        g->family_reals[i] = g->metrics[i].real;
    }
    g->family.name = g->name;
    g->family.n = n;
    g->family.metrics = g->family_metrics;
    g->family.kinds = g->family_kinds;
    g->family.reals = g->family_reals;
    return true;
}

static bool numeric_oid(const char *s, kvl_mg_oid_t *o)
{
    kvl_snmp_oid_t so;
    bool suffixed;
    char err[64];
    if (kvl_snmp_mib_resolve(NULL, 0, s, &so, &suffixed, err, sizeof(err)) != 0 ||
        so.len > KVL_MG_OID_MAX) {
        return false;
    }
    mg_oid_from(o, &so);
    return true;
}

/* A scale that is not a whole number makes a metric real. */
static bool scale_is_real(double scale)
{
    return scale != (double)(int64_t)scale || scale < 1;
}

static int build_builtins(kvl_snmp_cfg_t *c, kvl_cfg_node_t at)
{
    size_t n = KVL_ARRAY_SIZE(builtin_groups);
    for (size_t i = 0; i < n; i++) {
        const builtin_group_t *bg = &builtin_groups[i];
        kvl_metric_group_t *g = &c->metric_groups[c->n_metric_groups++];
        memset(g, 0, sizeof(*g));
        g->builtin = true;
        g->table = bg->entry != NULL;
        g->instance_col = -1;
        size_t nm = 0;
        while (nm < KVL_ARRAY_SIZE(bg->metrics) && bg->metrics[nm].name != NULL) {
            nm++;
        }
        g->name = strdup(bg->name);
        g->metrics = calloc(nm, sizeof(*g->metrics));
        if (g->name == NULL || g->metrics == NULL) {
            return kvl_cfg_error(at, "out of memory");
        }
        bool ok = true;
        if (g->table) {
            ok = numeric_oid(bg->entry, &g->entry);
            kvl_mg_oid_t o;
            if (ok && bg->instance != NULL) {
                ok = numeric_oid(bg->instance, &o) && (g->instance_col = mg_col(g, &o)) >= 0;
            }
            if (ok && bg->label != NULL) {
                g->labels = calloc(1, sizeof(*g->labels));
                ok = g->labels != NULL && (g->labels[0].name = strdup(bg->label)) != NULL &&
                     numeric_oid(bg->label_oid, &o) && (g->labels[0].col = mg_col(g, &o)) >= 0;
                g->n_labels = ok ? 1 : 0;
            }
        }
        for (size_t k = 0; ok && k < nm; k++) {
            const builtin_metric_t *bm = &bg->metrics[k];
            kvl_mg_metric_t *m = &g->metrics[g->n_metrics];
            m->kind = bm->kind;
            m->scale = bm->scale;
            m->real = scale_is_real(bm->scale);
            m->col = m->scale_by = -1;
            ok = (m->name = strdup(bm->name)) != NULL && numeric_oid(bm->oid, &m->oid);
            g->n_metrics++;
            if (ok && g->table) {
                ok = (m->col = mg_col(g, &m->oid)) >= 0;
                kvl_mg_oid_t o;
                if (ok && bm->scale_by != NULL) {
                    ok = numeric_oid(bm->scale_by, &o) && (m->scale_by = mg_col(g, &o)) >= 0;
                }
            }
        }
        if (!ok || !mg_family(g)) {
            return kvl_cfg_error(at, "out of memory");
        }
    }
    return 0;
}

/* The MIB folders: the project's own, then `mib_path` (relative to the config's folder). */
static int read_mib_path(reading_t *t)
{
    kvl_snmp_cfg_t *c = t->cfg;
    kvl_cfg_node_t list = t->mib_path;
    size_t n = 0;
    if (list.index != 0) {
        if (kvl_cfg_scalar(list) != NULL) {
            n = 1;
        } else if (kvl_cfg_is_seq(list)) {
            n = kvl_cfg_seq_len(list);
        } else {
            return kvl_cfg_error(list, "expected a list of MIB folders");
        }
    }
    c->mib_path = calloc(n + 1, sizeof(*c->mib_path));
    if (c->mib_path == NULL) {
        return kvl_cfg_error(kvl_cfg_root(list.cfg), "out of memory");
    }
    /* The project's own folder (the one holding KAAVAL-MIB.txt): mibs/ beside the
     * configuration, else the installed one, else the source tree's the agent was built
     * from. */
    char own[4200], probe[4300];
    snprintf(own, sizeof(own), "%s/mibs", t->base_dir);
    snprintf(probe, sizeof(probe), "%s/KAAVAL-MIB.txt", own);
    const char *pick = own;
    if (access(probe, R_OK) != 0) {
        pick = access(KVL_INSTALL_MIB_DIR "/KAAVAL-MIB.txt", R_OK) == 0 ? KVL_INSTALL_MIB_DIR
                                                                        : KVL_SOURCE_MIB_DIR;
    }
    if ((c->mib_path[c->n_mib_path++] = strdup(pick)) == NULL) {
        return kvl_cfg_error(list, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        kvl_cfg_node_t item = kvl_cfg_is_seq(list) ? kvl_cfg_seq_at(list, i) : list;
        const char *s = kvl_cfg_scalar(item);
        if (s == NULL || s[0] == '\0') {
            return kvl_cfg_error(item, "expected the path of a folder of MIB files");
        }
        char path[8300];
        if (s[0] == '/') {
            snprintf(path, sizeof(path), "%s", s);
        } else {
            snprintf(path, sizeof(path), "%s/%s", t->base_dir, s);
        }
        if ((c->mib_path[c->n_mib_path++] = strdup(path)) == NULL) {
            return kvl_cfg_error(item, "out of memory");
        }
    }
    return 0;
}

/* Resolves the text of node n (a MIB name or numeric OID) into o. */
static int resolve_oid(reading_t *t, kvl_cfg_node_t n, kvl_mg_oid_t *o, bool *suffixed)
{
    const char *s = kvl_cfg_scalar(n);
    if (s == NULL || s[0] == '\0') {
        char got[64];
        describe_value(n, got, sizeof(got));
        return kvl_cfg_error(n, "expected an OID (.1.3.6...) or a MIB name, got %s", got);
    }
    kvl_snmp_oid_t so;
    char err[1024];
    if (kvl_snmp_mib_resolve((const char *const *)t->cfg->mib_path, t->cfg->n_mib_path, s, &so,
                             suffixed, err, sizeof(err)) != 0) {
        return kvl_cfg_error(n, "%s", err);
    }
    if (so.len > KVL_MG_OID_MAX) {
        return kvl_cfg_error(n, "'%s' is longer than %d sub-identifiers", s, KVL_MG_OID_MAX);
    }
    mg_oid_from(o, &so);
    t->used_mibs = t->used_mibs || !(s[0] == '.' || (s[0] >= '0' && s[0] <= '9'));
    return 0;
}

/* A column of a table group: under the table, given without an instance. */
static int resolve_col(reading_t *t, kvl_metric_group_t *g, kvl_cfg_node_t n, int *col)
{
    kvl_mg_oid_t o;
    bool suffixed = false;
    int rc = resolve_oid(t, n, &o, &suffixed);
    if (rc != 0) {
        return rc;
    }
    if (!mg_oid_under(&o, &g->entry)) {
        return kvl_cfg_error(n, "'%s' is not a column of the group's table", kvl_cfg_scalar(n));
    }
    if (suffixed) {
        return kvl_cfg_error(n, "'%s': give a table's column without an instance",
                             kvl_cfg_scalar(n));
    }
    if ((*col = mg_col(g, &o)) < 0) {
        return kvl_cfg_error(n, "out of memory");
    }
    return 0;
}

static bool name_chars_ok(const char *s, bool dash)
{
    for (; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              (dash && *s == '-'))) {
            return false;
        }
    }
    return true;
}

static int parse_scale(kvl_cfg_node_t n, void *target)
{
    const char *s = kvl_cfg_scalar(n);
    char *end = NULL;
    double v = s != NULL ? strtod(s, &end) : 0;
    if (s == NULL || end == s || *end != '\0' || !(v > 0) || v > 1e15) {
        char got[64];
        describe_value(n, got, sizeof(got));
        return kvl_cfg_error(n, "expected a positive number to multiply values by, got %s", got);
    }
    *(double *)target = v;
    return 0;
}

static const char *const kind_choices[] = {"gauge", "counter", NULL};

typedef struct metric_in {
    char *name;
    kvl_cfg_node_t oid;
    int kind;
    double scale;
    bool real;
    kvl_cfg_node_t scale_by;
} metric_in_t;

static const kvl_cfg_field_t metric_fields[] = {
    {"name", KVL_CFG_STR, offsetof(metric_in_t, name), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the metric's name: [a-z0-9_], at most 19 characters"},
    {"oid", KVL_CFG_CUSTOM, offsetof(metric_in_t, oid), 0, 0, NULL, remember_node, KVL_CFG_REQUIRED,
     "numeric OID or MIB name: a column (table) or the instance to GET (scalars)"},
    {"kind", KVL_CFG_ENUM, offsetof(metric_in_t, kind), 0, 0, kind_choices, NULL, 0,
     "gauge or counter (gauge)"},
    {"scale", KVL_CFG_CUSTOM, offsetof(metric_in_t, scale), 0, 0, NULL, parse_scale, 0,
     "multiplies every value (1)"},
    {"real", KVL_CFG_BOOL, offsetof(metric_in_t, real), 0, 0, NULL, NULL, 0,
     "report as a real number (false; true when scale is not a whole number)"},
    {"scale_by", KVL_CFG_CUSTOM, offsetof(metric_in_t, scale_by), 0, 0, NULL, remember_node, 0,
     "table: a column of the row whose value multiplies this one"},
    {NULL},
};

typedef struct group_in {
    char *name;
    kvl_cfg_node_t table, instance, labels, metrics;
} group_in_t;

static const kvl_cfg_field_t mgroup_fields[] = {
    {"name", KVL_CFG_STR, offsetof(group_in_t, name), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the group's name: [a-z0-9_-]"},
    {"table", KVL_CFG_CUSTOM, offsetof(group_in_t, table), 0, 0, NULL, remember_node, 0,
     "the table (or its entry) walked; left out for scalars"},
    {"instance", KVL_CFG_CUSTOM, offsetof(group_in_t, instance), 0, 0, NULL, remember_node, 0,
     "table: the column naming rows (default: the row's index)"},
    {"labels", KVL_CFG_CUSTOM, offsetof(group_in_t, labels), 0, 0, NULL, remember_node, 0,
     "table: columns reported as labels, {name: oid, ...}"},
    {"metrics", KVL_CFG_CUSTOM, offsetof(group_in_t, metrics), 0, 0, NULL, remember_node,
     KVL_CFG_REQUIRED, "the metrics: name, oid, kind, scale, real, scale_by"},
    {NULL},
};

static const kvl_metric_group_t *find_mgroup(const kvl_snmp_cfg_t *c, const char *name)
{
    for (size_t i = 0; i < c->n_metric_groups; i++) {
        if (strcmp(c->metric_groups[i].name, name) == 0) {
            return &c->metric_groups[i];
        }
    }
    return NULL;
}

static int read_metric(reading_t *t, kvl_metric_group_t *g, kvl_cfg_node_t item)
{
    metric_in_t in;
    memset(&in, 0, sizeof(in));
    in.scale = 1;
    in.kind = 0;
    int rc = kvl_cfg_apply(item, metric_fields, &in);
    kvl_mg_metric_t *m = &g->metrics[g->n_metrics];
    memset(m, 0, sizeof(*m));
    m->name = in.name;
    m->col = m->scale_by = -1;
    if (rc != 0) {
        free(in.name);
        m->name = NULL;
        return rc;
    }
    g->n_metrics++;
    kvl_cfg_node_t name_node = node_or(item, "name");
    if (in.name[0] == '\0' || strlen(in.name) > KVL_MG_METRIC_LEN ||
        !name_chars_ok(in.name, false)) {
        return kvl_cfg_error(name_node,
                             "metric name '%s': expected 1 to %d characters of a-z, 0-9 and _ "
                             "(it names an RRD data source)",
                             in.name, KVL_MG_METRIC_LEN);
    }
    for (size_t i = 0; i + 1 < g->n_metrics; i++) {
        if (strcmp(g->metrics[i].name, in.name) == 0) {
            return kvl_cfg_error(name_node, "metric name '%s' is used twice in group '%s'", in.name,
                                 g->name);
        }
    }
    m->kind = in.kind == 1 ? KVL_KIND_COUNTER : KVL_KIND_GAUGE;
    m->scale = in.scale;
    m->real = in.real || scale_is_real(in.scale);
    kvl_cfg_node_t oid_node = in.oid;
    if (g->table) {
        rc = resolve_col(t, g, oid_node, &m->col);
        if (rc == 0) {
            m->oid = g->cols[m->col];
        }
        if (rc == 0 && in.scale_by.index != 0) {
            rc = resolve_col(t, g, in.scale_by, &m->scale_by);
        }
        return rc;
    }
    if (in.scale_by.index != 0) {
        return kvl_cfg_error(in.scale_by, "scale_by is for table groups only");
    }
    bool suffixed = false;
    rc = resolve_oid(t, oid_node, &m->oid, &suffixed);
    if (rc != 0) {
        return rc;
    }
    const char *s = kvl_cfg_scalar(oid_node);
    bool numeric = s[0] == '.' || (s[0] >= '0' && s[0] <= '9');
    if (!numeric && !suffixed) {
        if (m->oid.len == KVL_MG_OID_MAX) {
            return kvl_cfg_error(oid_node, "'%s.0' is too long", s);
        }
        m->oid.sub[m->oid.len++] = 0; /* a scalar object's instance */
    }
    return 0;
}

typedef struct label_in {
    char *name;
    kvl_cfg_node_t oid;
} label_in_t;

static const kvl_cfg_field_t label_fields[] = {
    {"name", KVL_CFG_STR, offsetof(label_in_t, name), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "the label's key"},
    {"oid", KVL_CFG_CUSTOM, offsetof(label_in_t, oid), 0, 0, NULL, remember_node, KVL_CFG_REQUIRED,
     "the column whose value the label carries"},
    {NULL},
};

static int read_labels(reading_t *t, kvl_metric_group_t *g, kvl_cfg_node_t list)
{
    size_t n = kvl_cfg_is_seq(list) ? kvl_cfg_seq_len(list) : 0;
    if (n == 0 || n > KVL_MG_MAX_LABELS) {
        return kvl_cfg_error(list, "expected a list of 1 to %d labels ('- {name: .., oid: ..}')",
                             KVL_MG_MAX_LABELS);
    }
    g->labels = calloc(n, sizeof(*g->labels));
    if (g->labels == NULL) {
        return kvl_cfg_error(list, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        kvl_cfg_node_t item = kvl_cfg_seq_at(list, i);
        label_in_t in;
        memset(&in, 0, sizeof(in));
        int rc = kvl_cfg_apply(item, label_fields, &in);
        g->labels[g->n_labels].name = in.name;
        g->n_labels += in.name != NULL ? 1 : 0;
        if (rc == 0 && (in.name[0] == '\0' || !name_chars_ok(in.name, false) ||
                        strcmp(in.name, "index") == 0)) {
            rc = kvl_cfg_error(node_or(item, "name"),
                               "label name '%s': expected a-z, 0-9 and _ (and not 'index')",
                               in.name);
        }
        if (rc == 0) {
            rc = resolve_col(t, g, in.oid, &g->labels[g->n_labels - 1].col);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int read_mgroup(reading_t *t, kvl_metric_group_t *g, kvl_cfg_node_t item)
{
    group_in_t in;
    memset(&in, 0, sizeof(in));
    g->instance_col = -1;
    int rc = kvl_cfg_apply(item, mgroup_fields, &in);
    g->name = in.name;
    if (rc != 0) {
        return rc;
    }
    kvl_cfg_node_t name_node = node_or(item, "name");
    if (in.name[0] == '\0' || strlen(in.name) > KVL_MG_NAME_LEN || !name_chars_ok(in.name, true)) {
        return kvl_cfg_error(name_node,
                             "metric group name '%s': expected 1 to %d characters of a-z, 0-9, "
                             "_ and -",
                             in.name, KVL_MG_NAME_LEN);
    }
    if (strcmp(in.name, HOST_RESOURCES) == 0 || find_mgroup(t->cfg, in.name) != g) {
        bool builtin =
            strcmp(in.name, HOST_RESOURCES) == 0 || find_mgroup(t->cfg, in.name)->builtin;
        return kvl_cfg_error(name_node, "metric group name '%s' is %s", in.name,
                             builtin ? "a built-in group's name" : "used twice");
    }
    if (in.table.index != 0) {
        bool suffixed = false;
        g->table = true;
        rc = resolve_oid(t, in.table, &g->entry, &suffixed);
        if (rc != 0) {
            return rc;
        }
    } else if (in.instance.index != 0 || in.labels.index != 0) {
        return kvl_cfg_error(in.instance.index != 0 ? in.instance : in.labels,
                             "`instance` and `labels` need a `table`");
    }
    if (in.instance.index != 0) {
        rc = resolve_col(t, g, in.instance, &g->instance_col);
        if (rc != 0) {
            return rc;
        }
    }
    if (in.labels.index != 0) {
        rc = read_labels(t, g, in.labels);
        if (rc != 0) {
            return rc;
        }
    }
    if (!kvl_cfg_is_seq(in.metrics) || kvl_cfg_seq_len(in.metrics) == 0) {
        return kvl_cfg_error(in.metrics,
                             "expected a list of metrics (each '- {name: .., oid: ..}')");
    }
    size_t n = kvl_cfg_seq_len(in.metrics);
    if (n > KVL_MG_MAX_METRICS) {
        return kvl_cfg_error(in.metrics, "at most %d metrics per group", KVL_MG_MAX_METRICS);
    }
    g->metrics = calloc(n, sizeof(*g->metrics));
    if (g->metrics == NULL) {
        return kvl_cfg_error(item, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        rc = read_metric(t, g, kvl_cfg_seq_at(in.metrics, i));
        if (rc != 0) {
            return rc;
        }
    }
    if (!mg_family(g)) {
        return kvl_cfg_error(item, "out of memory");
    }
    return 0;
}

/* Built-in groups, then the file's `metric_groups` definitions. */
static int read_metric_groups(reading_t *t)
{
    kvl_snmp_cfg_t *c = t->cfg;
    kvl_cfg_node_t list = t->metric_groups;
    size_t n = 0;
    if (list.index != 0) {
        if (!kvl_cfg_is_seq(list)) {
            return kvl_cfg_error(list, "expected a list of metric groups (each '- name: ...')");
        }
        n = kvl_cfg_seq_len(list);
    }
    size_t nb = KVL_ARRAY_SIZE(builtin_groups);
    c->metric_groups = calloc(nb + n, sizeof(*c->metric_groups));
    if (c->metric_groups == NULL) {
        return kvl_cfg_error(kvl_cfg_root(list.cfg), "out of memory");
    }
    int rc = build_builtins(c, list);
    for (size_t i = 0; i < n && rc == 0; i++) {
        kvl_metric_group_t *g = &c->metric_groups[c->n_metric_groups++];
        rc = read_mgroup(t, g, kvl_cfg_seq_at(list, i));
    }
    return rc;
}

/* A device level's `metric_groups: [name, ...]`; replaces what it inherits. */
static int parse_dev_mgroups(kvl_cfg_node_t n, void *target)
{
    level_t *l = target;
    size_t count = kvl_cfg_is_seq(n) ? kvl_cfg_seq_len(n) : 1;
    if (!kvl_cfg_is_seq(n) && kvl_cfg_scalar(n) == NULL) {
        return kvl_cfg_error(n, "expected a list of metric group names");
    }
    const kvl_metric_group_t **v = calloc(count * 3 + 1, sizeof(*v));
    size_t nv = 0;
    if (v == NULL) {
        return kvl_cfg_error(n, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        kvl_cfg_node_t item = kvl_cfg_is_seq(n) ? kvl_cfg_seq_at(n, i) : n;
        const char *s = kvl_cfg_scalar(item);
        const kvl_metric_group_t *found[3] = {NULL, NULL, NULL};
        if (s != NULL && strcmp(s, HOST_RESOURCES) == 0) {
            for (size_t k = 0; host_resources[k] != NULL; k++) {
                found[k] = find_mgroup(l->cfg, host_resources[k]);
            }
        } else if (s != NULL) {
            found[0] = find_mgroup(l->cfg, s);
        }
        if (found[0] == NULL) {
            char known[512] = HOST_RESOURCES;
            size_t used = strlen(known);
            for (size_t k = 0; k < l->cfg->n_metric_groups && used < sizeof(known); k++) {
                int w = snprintf(known + used, sizeof(known) - used, ", %s",
                                 l->cfg->metric_groups[k].name);
                used += w > 0 ? (size_t)w : 0;
            }
            char got[160];
            describe_value(item, got, sizeof(got));
            free(v);
            return kvl_cfg_error(item, "unknown metric group %s; known: %s", got, known);
        }
        for (size_t k = 0; k < 3 && found[k] != NULL; k++) {
            bool dup = false;
            for (size_t j = 0; j < nv; j++) {
                dup = dup || v[j] == found[k];
            }
            if (!dup) {
                v[nv++] = found[k];
            }
        }
    }
    free(l->d.mgroups);
    l->d.mgroups = v;
    l->d.n_mgroups = nv;
    return 0;
}

/* Final checks of one device and its credentials in effect. */
static int finish_device(reading_t *t, kvl_device_cfg_t *d, kvl_cfg_node_t item)
{
    kvl_snmp_cfg_t *c = t->cfg;
    if (d->name[0] == '\0') {
        return kvl_cfg_error(node_or(item, "name"), "a device name must not be empty");
    }
    char why[256];
    if (kvl_name_check("device", d->name, why, sizeof(why)) != 0) {
        return kvl_cfg_error(node_or(item, "name"), "%s", why); /* it names archive files */
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
static int read_devices(reading_t *t, kvl_cfg_node_t list, const level_t *parent, const char *what)
{
    kvl_snmp_cfg_t *c = t->cfg;
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

static int read_groups(reading_t *t, const level_t *defaults)
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

void kvl_snmp_cfg_init(kvl_snmp_cfg_t *s)
{
    memset(s, 0, sizeof(*s));
    s->max_inflight = 500;
}

int kvl_snmp_cfg_keep(kvl_cfg_node_t n, void *target)
{
    return remember_node(n, target);
}

int kvl_snmp_cfg_finish(kvl_snmp_cfg_t *s, const char *base_dir)
{
    reading_t t;
    memset(&t, 0, sizeof(t));
    t.cfg = s;
    t.credentials = s->nodes.credentials;
    t.defaults = s->nodes.defaults;
    t.devices = s->nodes.devices;
    t.groups = s->nodes.groups;
    t.mib_path = s->nodes.mib_path;
    t.metric_groups = s->nodes.metric_groups;
    snprintf(t.base_dir, sizeof(t.base_dir), "%s", base_dir);
    level_t defaults;
    memset(&defaults, 0, sizeof(defaults));
    device_init(&defaults.d);
    defaults.cfg = s;
    int rc = read_credentials(s, t.credentials);
    if (rc == 0) {
        rc = read_mib_path(&t);
    }
    if (rc == 0) {
        rc = read_metric_groups(&t);
    }
    if (t.used_mibs) {
        kvl_snmp_mib_release(); /* every name is resolved: the MIB tree is not needed */
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
    return rc;
}

void kvl_snmp_cfg_free(kvl_snmp_cfg_t *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n_devices; i++) {
        device_free(&s->devices[i]);
    }
    free(s->devices);
    for (size_t i = 0; i < s->n_credentials; i++) {
        cred_free(&s->credentials[i]);
    }
    free(s->credentials);
    free_strv(s->mib_path, s->n_mib_path);
    for (size_t i = 0; i < s->n_metric_groups; i++) {
        mg_free(&s->metric_groups[i]);
    }
    free(s->metric_groups);
    memset(s, 0, sizeof(*s));
}

/* --- comparing two devices' settings (a reload) ---------------------------------------------- */

static bool u32s_same(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof(*a)) == 0);
}

static bool oid_same(const kvl_mg_oid_t *a, const kvl_mg_oid_t *b)
{
    return a->len == b->len && memcmp(a->sub, b->sub, a->len * sizeof(a->sub[0])) == 0;
}

static bool creds_same(const kvl_credentials_t *a, const kvl_credentials_t *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return kvl_cfg_str_same(a->name, b->name) && a->version == b->version &&
           kvl_cfg_str_same(a->community, b->community) && kvl_cfg_str_same(a->user, b->user) &&
           a->level == b->level && a->auth_protocol == b->auth_protocol &&
           kvl_cfg_str_same(a->auth_password, b->auth_password) &&
           a->priv_protocol == b->priv_protocol &&
           kvl_cfg_str_same(a->priv_password, b->priv_password) &&
           kvl_cfg_str_same(a->context, b->context);
}

static bool group_same(const kvl_metric_group_t *a, const kvl_metric_group_t *b)
{
    if (!kvl_cfg_str_same(a->name, b->name) || a->builtin != b->builtin || a->table != b->table ||
        !oid_same(&a->entry, &b->entry) || a->instance_col != b->instance_col ||
        a->n_metrics != b->n_metrics || a->n_labels != b->n_labels || a->n_cols != b->n_cols) {
        return false;
    }
    for (size_t i = 0; i < a->n_metrics; i++) {
        const kvl_mg_metric_t *x = &a->metrics[i], *y = &b->metrics[i];
        if (!kvl_cfg_str_same(x->name, y->name) || !oid_same(&x->oid, &y->oid) ||
            x->kind != y->kind || x->scale != y->scale || x->real != y->real || x->col != y->col ||
            x->scale_by != y->scale_by) {
            return false;
        }
    }
    for (size_t i = 0; i < a->n_labels; i++) {
        if (!kvl_cfg_str_same(a->labels[i].name, b->labels[i].name) ||
            a->labels[i].col != b->labels[i].col) {
            return false;
        }
    }
    for (size_t i = 0; i < a->n_cols; i++) {
        if (!oid_same(&a->cols[i], &b->cols[i])) {
            return false;
        }
    }
    return true;
}

bool kvl_device_cfg_same(const kvl_device_cfg_t *a, const kvl_device_cfg_t *b)
{
    if (!kvl_cfg_str_same(a->name, b->name) || !kvl_cfg_str_same(a->address, b->address) ||
        a->port != b->port || a->version != b->version ||
        !kvl_cfg_str_same(a->community, b->community) ||
        !creds_same(a->credentials, b->credentials) || a->interval_ms != b->interval_ms ||
        a->timeout_ms != b->timeout_ms || a->retries != b->retries ||
        a->max_repetitions != b->max_repetitions || a->max_varbinds != b->max_varbinds ||
        a->rediscover_ms != b->rediscover_ms || a->neighbours != b->neighbours) {
        return false;
    }
    const kvl_if_filter_t *f = &a->ifs, *g = &b->ifs;
    if (!kvl_cfg_strv_same(f->include, f->n_include, g->include, g->n_include) ||
        !kvl_cfg_strv_same(f->exclude, f->n_exclude, g->exclude, g->n_exclude) ||
        !u32s_same(f->include_types, f->n_include_types, g->include_types, g->n_include_types) ||
        !u32s_same(f->exclude_types, f->n_exclude_types, g->exclude_types, g->n_exclude_types) ||
        f->skip_admin_down != g->skip_admin_down || a->n_mgroups != b->n_mgroups) {
        return false;
    }
    for (size_t i = 0; i < a->n_mgroups; i++) {
        if (!group_same(a->mgroups[i], b->mgroups[i])) {
            return false;
        }
    }
    return true;
}
