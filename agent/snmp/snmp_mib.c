/*
 * snmp_mib.c — MIB object names to OIDs with net-snmp's MIB parser (see snmp_mib.h).
 *
 * Used while the configuration is read, never on the loop. The parser's tree is global to
 * net-snmp; it is started on the first name that needs it, with exactly the folders the
 * configuration gives (the system's MIB path and default module list are never read, so
 * an agent whose configuration names nothing loads no MIB at all), and freed again by
 * kvl_snmp_mib_release once the configuration is read: a few hundred modules would
 * otherwise stay in the agent's memory for its lifetime.
 *
 * "MODULE::object" loads just that module (and what it imports); a bare "object" loads
 * every module in the folders once, then looks the name up. The parser's own complaints
 * about the modules it reads are turned down to debug level: what matters to the operator
 * is whether the name resolved, and the error says which name and which folders.
 */
#include "snmp_mib.h"

#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "snmp.h" /* kvl_snmp_init, kvl_snmp_log_quiet */

/* net-snmp never frees the parser's table of textual conventions: shutdown_mib forgets it
 * and the next start allocates another, 4.8 KB per configuration load that resolves names
 * (net-snmp 5.9). Under AddressSanitizer the leak checker is told, so that it keeps
 * reporting leaks of our own. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KVL_LSAN_HOOK 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(KVL_LSAN_HOOK)
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:netsnmp_init_mib_internals\n";
}
#endif

static bool mib_started; /* the parser's tree exists */
static bool mib_all;     /* every module of the folders is loaded */

/* ".1.3.6.1" or "1.3.6.1": true when s is a numeric OID, filling o. */
static bool parse_numeric(const char *s, kvl_snmp_oid_t *o, bool *numeric)
{
    const char *p = s[0] == '.' ? s + 1 : s;
    *numeric = p[0] >= '0' && p[0] <= '9';
    if (!*numeric) {
        return false;
    }
    o->len = 0;
    while (*p != '\0') {
        char *end = NULL;
        if (*p < '0' || *p > '9') {
            return false;
        }
        unsigned long v = strtoul(p, &end, 10);
        if (v > 0xfffffffful || o->len == KVL_SNMP_MAX_OID_LEN) {
            return false;
        }
        o->sub[o->len++] = (uint32_t)v;
        p = end;
        if (*p == '.') {
            p++;
            if (*p == '\0') {
                return false;
            }
        } else if (*p != '\0') {
            return false;
        }
    }
    return o->len >= 2;
}

static void list_dirs(const char *const *dirs, size_t n, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%s", i > 0 ? ", " : "", dirs[i]);
        if (w < 0) {
            break;
        }
        used += (size_t)w;
    }
    if (n == 0) {
        snprintf(buf, len, "none");
    }
}

static void start_parser(const char *const *dirs, size_t n)
{
    kvl_snmp_init(); /* log routing, no configuration files */
    netsnmp_ds_set_int(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_MIB_WARNINGS, 0);
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_MIB_ERRORS, 0);
    init_mib_internals();
    for (size_t i = 0; i < n; i++) {
        add_mibdir(dirs[i]); /* a folder that does not exist adds nothing */
    }
    mib_started = true;
    mib_all = false;
}

int kvl_snmp_mib_resolve(const char *const *dirs, size_t n_dirs, const char *name,
                         kvl_snmp_oid_t *o, bool *suffixed, char *err, size_t errlen)
{
    bool numeric = false;
    *suffixed = false;
    if (parse_numeric(name, o, &numeric)) {
        return 0;
    }
    if (numeric) {
        snprintf(err, errlen, "'%s' is not a valid numeric OID (at most %d sub-identifiers)", name,
                 KVL_SNMP_MAX_OID_LEN);
        return KVL_EINVAL;
    }
    if (strlen(name) > 255) {
        snprintf(err, errlen, "MIB name '%.40s...' is longer than 255 characters", name);
        return KVL_EINVAL;
    }
    const char *sep = strstr(name, "::");
    const char *object = sep != NULL ? sep + 2 : name;
    if (object[0] == '\0' || (sep != NULL && sep == name)) {
        snprintf(err, errlen, "'%s' is not a MIB name (MODULE::object or object)", name);
        return KVL_EINVAL;
    }
    *suffixed = strchr(object, '.') != NULL;
    if (!mib_started) {
        start_parser(dirs, n_dirs);
    }
    kvl_snmp_log_quiet(true);
    if (sep == NULL && !mib_all) {
        read_all_mibs();
        mib_all = true;
    }
    oid buf[MAX_OID_LEN];
    size_t len = MAX_OID_LEN;
    int found = get_node(name, buf, &len);
    kvl_snmp_log_quiet(false);
    if (!found) {
        char list[512];
        list_dirs(dirs, n_dirs, list, sizeof(list));
        if (sep != NULL) {
            snprintf(err, errlen,
                     "MIB name '%s' not found: no module %.*s with that object in the MIB "
                     "folders searched (%s)",
                     name, (int)(sep - name), name, list);
        } else {
            snprintf(err, errlen,
                     "MIB name '%s' not found in any module of the MIB folders searched (%s)", name,
                     list);
        }
        return KVL_EINVAL;
    }
    if (len > KVL_SNMP_MAX_OID_LEN) {
        snprintf(err, errlen, "MIB name '%s' resolves to an OID longer than %d", name,
                 KVL_SNMP_MAX_OID_LEN);
        return KVL_EINVAL;
    }
    o->len = len;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] > 0xffffffffu) {
            snprintf(err, errlen, "MIB name '%s' resolves to an invalid OID", name);
            return KVL_EINVAL;
        }
        o->sub[i] = (uint32_t)buf[i];
    }
    return 0;
}

void kvl_snmp_mib_release(void)
{
    if (mib_started) {
        kvl_snmp_log_quiet(true);
        shutdown_mib();
        kvl_snmp_log_quiet(false);
        mib_started = false;
        mib_all = false;
    }
}

/* --- names for the trap receiver (see snmp_mib.h) -------------------------------------------- */

typedef struct mib_name {
    uint32_t *sub;
    size_t len;
    char *name;
} mib_name_t;

typedef struct name_list {
    mib_name_t *v;
    size_t n, cap;
} name_list_t;

struct kvl_snmp_mib_names {
    name_list_t notifs;  /* sorted by OID */
    name_list_t objects; /* sorted by OID, each once */
};

static int name_cmp_oid(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
    size_t n = na < nb ? na : nb;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return a[i] < b[i] ? -1 : 1;
        }
    }
    return na == nb ? 0 : (na < nb ? -1 : 1);
}

static int name_cmp(const void *x, const void *y)
{
    const mib_name_t *a = x, *b = y;
    return name_cmp_oid(a->sub, a->len, b->sub, b->len);
}

/* Adds node's OID and label to l. Returns false when out of memory. */
static bool name_add(name_list_t *l, const struct tree *node)
{
    uint32_t rev[KVL_SNMP_MAX_OID_LEN];
    size_t len = 0;
    for (const struct tree *t = node; t != NULL; t = t->parent) {
        if (len == KVL_SNMP_MAX_OID_LEN || t->subid > 0xffffffffu) {
            return true; /* too long or invalid: left out */
        }
        rev[len++] = (uint32_t)t->subid;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        mib_name_t *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL) {
            return false;
        }
        l->v = v;
        l->cap = cap;
    }
    mib_name_t *e = &l->v[l->n];
    e->sub = malloc(len * sizeof(*e->sub));
    e->name = strdup(node->label != NULL ? node->label : "");
    if (e->sub == NULL || e->name == NULL) {
        free(e->sub);
        free(e->name);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        e->sub[i] = rev[len - 1 - i];
    }
    e->len = len;
    l->n++;
    return true;
}

static void names_free_list(name_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].sub);
        free(l->v[i].name);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Every notification under node (depth first, bounded by the OID length) and the objects
 * its clause lists. Returns false when out of memory. */
static bool names_walk(kvl_snmp_mib_names_t *t, const struct tree *node, unsigned depth)
{
    for (const struct tree *c = node; c != NULL; c = c->next_peer) {
        if (c->type == TYPE_NOTIFTYPE || c->type == TYPE_TRAPTYPE) {
            if (!name_add(&t->notifs, c)) {
                return false;
            }
            for (const struct varbind_list *vb = c->varbinds; vb != NULL; vb = vb->next) {
                const struct tree *o = vb->vblabel != NULL ? find_tree_node(vb->vblabel, -1) : NULL;
                if (o != NULL && !name_add(&t->objects, o)) {
                    return false;
                }
            }
        }
        if (c->child_list != NULL && depth < KVL_SNMP_MAX_OID_LEN &&
            !names_walk(t, c->child_list, depth + 1)) {
            return false;
        }
    }
    return true;
}

int kvl_snmp_mib_names_load(const char *const *dirs, size_t n_dirs, kvl_snmp_mib_names_t **out,
                            char *err, size_t errlen)
{
    *out = NULL;
    kvl_snmp_mib_names_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory loading MIB names");
        return KVL_ENOMEM;
    }
    kvl_snmp_mib_release(); /* a tree of exactly these folders, every module */
    start_parser(dirs, n_dirs);
    kvl_snmp_log_quiet(true);
    read_all_mibs();
    mib_all = true;
    bool ok = names_walk(t, get_tree_head(), 0);
    kvl_snmp_log_quiet(false);
    kvl_snmp_mib_release();
    if (!ok) {
        kvl_snmp_mib_names_free(t);
        snprintf(err, errlen, "out of memory loading MIB names");
        return KVL_ENOMEM;
    }
    if (t->notifs.n > 0) { /* an empty list has no storage: qsort wants a pointer */
        qsort(t->notifs.v, t->notifs.n, sizeof(mib_name_t), name_cmp);
    }
    if (t->objects.n > 0) {
        qsort(t->objects.v, t->objects.n, sizeof(mib_name_t), name_cmp);
    }
    /* An object listed by several notifications: kept once. */
    size_t k = 0;
    for (size_t i = 0; i < t->objects.n; i++) {
        if (k > 0 && name_cmp(&t->objects.v[k - 1], &t->objects.v[i]) == 0) {
            free(t->objects.v[i].sub);
            free(t->objects.v[i].name);
            continue;
        }
        t->objects.v[k++] = t->objects.v[i];
    }
    t->objects.n = k;
    *out = t;
    return 0;
}

size_t kvl_snmp_mib_names_count(const kvl_snmp_mib_names_t *t)
{
    return t != NULL ? t->notifs.n : 0;
}

static const mib_name_t *names_find(const name_list_t *l, const uint32_t *sub, size_t len)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp_oid(l->v[mid].sub, l->v[mid].len, sub, len);
        if (c == 0) {
            return &l->v[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

const char *kvl_snmp_mib_notification(const kvl_snmp_mib_names_t *t, const kvl_snmp_oid_t *o)
{
    const mib_name_t *e = t != NULL ? names_find(&t->notifs, o->sub, o->len) : NULL;
    return e != NULL ? e->name : NULL;
}

const char *kvl_snmp_mib_object(const kvl_snmp_mib_names_t *t, const kvl_snmp_oid_t *o,
                                size_t *prefix_len)
{
    for (size_t len = o->len; t != NULL && len > 0; len--) {
        const mib_name_t *e = names_find(&t->objects, o->sub, len);
        if (e != NULL) {
            *prefix_len = len;
            return e->name;
        }
    }
    return NULL;
}

void kvl_snmp_mib_names_free(kvl_snmp_mib_names_t *t)
{
    if (t == NULL) {
        return;
    }
    names_free_list(&t->notifs);
    names_free_list(&t->objects);
    free(t);
}
