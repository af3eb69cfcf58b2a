/*
 * registry.c — the agent's series registry (see registry.h).
 *
 * Definitions (a single series, or an instance naming a whole family of metrics with
 * consecutive ids) live in an array in id order, with an open-addressing hash over their
 * identity (device, scope, instance, metric or family) for lookups. Every string is
 * interned once, so a definition is a few pointers and identity compares by pointer. A new or
 * changed definition waits, with a copy of its labels, until the batcher takes it into the
 * next batch (kvl_registry_take_new); kvl_registry_save appends what series.defs lacks.
 *
 * Every series passes through here before it gets an id, so this is where names the
 * collector could not turn into archive file names (common/names.h) are refused: a device or
 * instance name (an interface's ifName, a metric group's instance, a probe target) whose
 * file-safe form is longer than KVL_NAME_FILE_MAX gets no id, so its series are never
 * defined or sent (the collector would refuse the definitions). Each refused pair of device
 * and instance (of one scope) is logged and counted once (a set of their hashes, REFUSED_MAX
 * at most; beyond that every refusal is counted, its log line rate-limited).
 */
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fileio.h"
#include "frame.h"
#include "kvl.h"
#include "log.h"
#include "names.h"

/* Interned strings: each distinct one is stored once, in the arena, and compared by
 * pointer, so definitions share one copy of each device and instance name. */
/* Interned strings, each once, numbered from 1 in the order they came. */
typedef struct intern {
    uint32_t *slots;   /* hash table: a string's number; 0 = empty */
    const char **strs; /* the strings by number - 1 (room: cap / 2) */
    size_t n, cap;     /* strings held; slots */
} intern_t;

/* One definition: a single series, or an instance naming all of its family's metrics. Kept
 * small (2,000 devices x 49 interfaces is 98,000 of them): strings are interned, and the
 * labels are held only until the definition has gone out in a batch; after that a hash
 * of them is enough to notice a change. Definitions sent again at a connection's start
 * carry no labels (the collector has them from the batch that first used the series). */
typedef struct fam {
    kvl_family_t f; /* f.id set; f.name and f.metrics interned */
    const kvl_family_t *user;
} fam_t;

typedef struct entry {
    uint32_t id;
    uint32_t interval_s;
    uint32_t labels_hash;
    uint32_t device, instance; /* interned strings' numbers */
    uint32_t what;             /* is_fam ? the family's id : the metric name's number */
    uint8_t scope, kind, real, is_fam;
} entry_t; /* 28 bytes */

typedef struct new_def {
    size_t entry;
    const kvl_label_t *labels; /* in the pending arena */
    size_t n_labels;
} new_def_t;

struct kvl_registry {
    entry_t *entries; /* in id order */
    size_t n_entries, cap_entries;
    uint32_t next_id;
    uint32_t *slots; /* hash over the identity: 0 = empty, else entry index + 1 */
    size_t n_slots;
    fam_t **fams; /* index = family id - 1 */
    size_t n_fams;
    kvl_arena_t pending; /* labels of definitions waiting for the next batch */
    kvl_arena_t names;   /* interned strings and families */
    intern_t strings;
    KVL_VEC(new_def_t) new_defs;
    bool oom_logged;

    /* names refused (see the top): a set of hashes of (device, instance), 0 = empty */
    uint64_t *refused;
    size_t n_refused, cap_refused; /* pairs held; slots (a power of two) */
    uint64_t names_refused;        /* pairs refused since the start */
    kvl_log_limit_t refused_log;   /* once the set is full */

    int persist_fd; /* series.defs, or -1 */
    char *persist_path;
    size_t n_persisted;      /* entries already in the file */
    size_t n_fams_persisted; /* families already in the file */
    bool persist_failing;
};

#define VEC_PUSH(o, vec, val) KVL_VEC_PUSH(vec, val, oom(o))

static void oom(kvl_registry_t *r)
{
    if (!r->oom_logged) {
        KVL_LOG_ERROR("batch", NULL, "out of memory: samples are being lost");
        r->oom_logged = true;
    }
}

int kvl_registry_new(kvl_registry_t **out, char *err, size_t errlen)
{
    kvl_registry_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    r->persist_fd = -1;
    r->refused_log = (kvl_log_limit_t)KVL_LOG_LIMIT_INIT(60000);
    *out = r;
    return 0;
}

void kvl_registry_free(kvl_registry_t *r)
{
    if (r == NULL) {
        return;
    }
    free(r->entries);
    free(r->slots);
    free(r->fams);
    kvl_arena_free(&r->pending);
    free(r->strings.slots);
    free(r->strings.strs);
    kvl_arena_free(&r->names);
    free(r->new_defs.v);
    free(r->refused);
    if (r->persist_fd >= 0) {
        fsync(r->persist_fd);
        close(r->persist_fd);
    }
    free(r->persist_path);
    free(r);
}

/* ----------------------------------------------------------------- registry ------------ */

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ c[i]) * 1099511628211ull;
    }
    return h;
}

#define HASH_SEED 1469598103934665603ull

static uint64_t hash_str(const char *s)
{
    return hash_bytes(HASH_SEED, s, strlen(s));
}

/* Doubles an intern table's slots (and its room for strings). */
static int intern_grow(intern_t *t)
{
    size_t cap = t->cap ? t->cap * 2 : 256;
    const char **strs = realloc(t->strs, cap / 2 * sizeof(*strs));
    if (strs == NULL) {
        return KVL_ENOMEM;
    }
    t->strs = strs;
    uint32_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < t->n; i++) {
        size_t pos = hash_str(strs[i]) & (cap - 1);
        while (slots[pos] != 0) {
            pos = (pos + 1) & (cap - 1);
        }
        slots[pos] = (uint32_t)(i + 1);
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

/* The number of s's interned copy (made now if new), or 0 when out of memory. */
static uint32_t intern_num(kvl_registry_t *r, const char *s)
{
    intern_t *t = &r->strings;
    if (s == NULL) {
        s = "";
    }
    if ((t->n + 1) * 2 > t->cap && intern_grow(t) != 0) {
        return 0;
    }
    size_t pos = hash_str(s) & (t->cap - 1);
    while (t->slots[pos] != 0) {
        uint32_t k = t->slots[pos];
        if (strcmp(t->strs[k - 1], s) == 0) {
            return k;
        }
        pos = (pos + 1) & (t->cap - 1);
    }
    char *copy = kvl_arena_strdup(&r->names, s);
    if (copy == NULL) {
        return 0;
    }
    t->strs[t->n++] = copy;
    t->slots[pos] = (uint32_t)t->n;
    return (uint32_t)t->n;
}

static const char *str_of(const kvl_registry_t *r, uint32_t num)
{
    return r->strings.strs[num - 1];
}

/* Returns the interned copy of s, or NULL when out of memory. */
static const char *intern_str(kvl_registry_t *r, const char *s)
{
    uint32_t k = intern_num(r, s);
    return k != 0 ? str_of(r, k) : NULL;
}

static const fam_t *fam_of(const kvl_registry_t *r, const entry_t *e)
{
    return e->is_fam ? r->fams[e->what - 1] : NULL;
}

/* Identity: the interned device, instance and metric numbers (or family id) and scope. */
static uint64_t hash_identity(const entry_t *e)
{
    uint32_t key[4] = {e->device, e->instance, e->what,
                       (uint32_t)e->scope | (uint32_t)e->is_fam << 8};
    return hash_bytes(HASH_SEED, key, sizeof(key));
}

static bool same_identity(const entry_t *x, const entry_t *y)
{
    return x->device == y->device && x->instance == y->instance && x->what == y->what &&
           x->scope == y->scope && x->is_fam == y->is_fam;
}

static uint32_t width_of(const kvl_registry_t *r, const entry_t *e)
{
    return e->is_fam ? (uint32_t)fam_of(r, e)->f.n : 1;
}

static uint32_t hash_labels_value(const kvl_label_t *l, size_t n)
{
    uint64_t h = HASH_SEED;
    for (size_t i = 0; i < n; i++) {
        const char *k = l[i].key ? l[i].key : "", *v = l[i].value ? l[i].value : "";
        h = hash_bytes(h, k, strlen(k) + 1);
        h = hash_bytes(h, v, strlen(v) + 1);
    }
    return (uint32_t)(h ^ (h >> 32));
}

static int rehash(kvl_registry_t *r, size_t n_slots)
{
    uint32_t *slots = calloc(n_slots, sizeof(*slots));
    if (slots == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < r->n_entries; i++) {
        const entry_t *e = &r->entries[i];
        size_t pos = hash_identity(e) & (n_slots - 1);
        while (slots[pos] != 0) {
            pos = (pos + 1) & (n_slots - 1);
        }
        slots[pos] = (uint32_t)(i + 1);
    }
    free(r->slots);
    r->slots = slots;
    r->n_slots = n_slots;
    return 0;
}

/* Queues the definition for the next batch, with a copy of its labels. */
static void announce(kvl_registry_t *r, size_t idx, const kvl_label_t *l, size_t n)
{
    kvl_label_t *copy = kvl_arena_alloc(&r->pending, sizeof(*copy) * (n ? n : 1));
    if (copy == NULL) {
        oom(r);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        copy[i].key = kvl_arena_strdup(&r->pending, l[i].key ? l[i].key : "");
        copy[i].value = kvl_arena_strdup(&r->pending, l[i].value ? l[i].value : "");
        if (copy[i].key == NULL || copy[i].value == NULL) {
            oom(r);
            return;
        }
    }
    new_def_t nd = {.entry = idx, .labels = copy, .n_labels = n};
    VEC_PUSH(r, r->new_defs, nd);
}

/* Appends the registry's own copy of family u (interned names) with the next id, owned by
 * user (NULL: restored from series.defs, claimed later by content). NULL when it cannot. */
static fam_t *add_family(kvl_registry_t *r, const kvl_family_t *u, const kvl_family_t *user)
{
    if (u->n == 0 || u->n > KVL_FAMILY_MAX || r->n_fams == KVL_REGISTRY_MAX_FAMILIES) {
        return NULL;
    }
    fam_t **nf = realloc(r->fams, (r->n_fams + 1) * sizeof(*nf));
    if (nf == NULL) {
        return NULL;
    }
    r->fams = nf;
    fam_t *f = kvl_arena_alloc(&r->names, sizeof(*f));
    const char **metrics = kvl_arena_alloc(&r->names, u->n * sizeof(*metrics));
    kvl_kind_t *kinds = kvl_arena_alloc(&r->names, u->n * sizeof(*kinds));
    bool *reals = kvl_arena_alloc(&r->names, u->n * sizeof(*reals));
    if (f == NULL || metrics == NULL || kinds == NULL || reals == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < u->n; i++) {
        if ((metrics[i] = intern_str(r, u->metrics[i])) == NULL) {
            return NULL;
        }
        kinds[i] = u->kinds[i];
        reals[i] = u->reals != NULL && u->reals[i];
    }
    f->user = user;
    f->f = (kvl_family_t){.name = intern_str(r, u->name),
                          .n = u->n,
                          .metrics = metrics,
                          .kinds = kinds,
                          .reals = reals,
                          .id = (uint32_t)(r->n_fams + 1)};
    if (f->f.name == NULL) {
        return NULL;
    }
    r->fams[r->n_fams++] = f;
    return f;
}

/* The registry's own copy of a family, made once per family pointer the caller uses. */
static const fam_t *family_get(kvl_registry_t *r, const kvl_family_t *user)
{
    for (size_t i = 0; i < r->n_fams; i++) {
        if (r->fams[i]->user == user) {
            return r->fams[i];
        }
    }
    /* A family restored from series.defs (an earlier run) with the same content: the
     * same id again. */
    for (size_t i = 0; i < r->n_fams; i++) {
        fam_t *f = r->fams[i];
        bool same = f->user == NULL && f->f.n == user->n && strcmp(f->f.name, user->name) == 0;
        for (size_t k = 0; same && k < user->n; k++) {
            same = strcmp(f->f.metrics[k], user->metrics[k]) == 0 &&
                   f->f.kinds[k] == user->kinds[k] &&
                   f->f.reals[k] == (user->reals != NULL && user->reals[k]);
        }
        if (same) {
            f->user = user;
            return f;
        }
    }
    return add_family(r, user, user);
}

/* Appends an entry whose id is set (above every other) and indexes it under hash h. */
static int insert_entry(kvl_registry_t *r, const entry_t *want, uint64_t h)
{
    if (r->n_entries == r->cap_entries) {
        size_t cap = r->cap_entries ? r->cap_entries * 2 : 256;
        entry_t *ne = realloc(r->entries, cap * sizeof(*ne));
        if (ne == NULL) {
            return KVL_ENOMEM;
        }
        r->entries = ne;
        r->cap_entries = cap;
    }
    size_t idx = r->n_entries;
    r->entries[idx] = *want;
    r->n_entries++;
    if (r->n_entries * 4 > r->n_slots * 3) { /* at most 3/4 full: linear probing stays short */
        if (rehash(r, r->n_slots ? r->n_slots * 2 : 1024) != 0) {
            r->n_entries--;
            return KVL_ENOMEM;
        }
    } else {
        size_t pos = h & (r->n_slots - 1);
        while (r->slots[pos] != 0) {
            pos = (pos + 1) & (r->n_slots - 1);
        }
        r->slots[pos] = (uint32_t)(idx + 1);
    }
    r->next_id = want->id + width_of(r, want);
    return 0;
}

/* Finds or adds the entry for an identity; returns its first id or 0. */
static uint32_t lookup_or_add(kvl_registry_t *r, entry_t *want, const kvl_label_t *labels,
                              size_t n_labels)
{
    want->labels_hash = hash_labels_value(labels, n_labels);
    uint64_t h = hash_identity(want);
    if (r->n_slots) {
        size_t pos = h & (r->n_slots - 1);
        while (r->slots[pos] != 0) {
            size_t idx = r->slots[pos] - 1;
            entry_t *e = &r->entries[idx];
            if (same_identity(e, want)) {
                if (e->labels_hash != want->labels_hash || e->interval_s != want->interval_s ||
                    e->kind != want->kind || e->real != want->real) {
                    e->labels_hash = want->labels_hash;
                    e->interval_s = want->interval_s;
                    e->kind = want->kind;
                    e->real = want->real;
                    announce(r, idx, labels, n_labels); /* changed: send it again */
                }
                return e->id;
            }
            pos = (pos + 1) & (r->n_slots - 1);
        }
    }
    if (r->next_id == 0) {
        r->next_id = 1;
    }
    want->id = r->next_id;
    size_t idx = r->n_entries;
    if (insert_entry(r, want, h) != 0) {
        return 0;
    }
    announce(r, idx, labels, n_labels);
    return want->id;
}

/* --- names the collector would refuse ------------------------------------------------------ */

#define REFUSED_MAX 4096 /* pairs remembered; then every refusal is counted */

typedef enum { REFUSED_NEW, REFUSED_SEEN, REFUSED_FULL } refused_t;

/* Whether the pair of hash h was refused before (SEEN); else remembers it (NEW), unless the
 * set is full or cannot grow (FULL). */
static refused_t refused_before(kvl_registry_t *r, uint64_t h)
{
    h = h != 0 ? h : 1;
    for (size_t pos = r->cap_refused ? h & (r->cap_refused - 1) : 0;
         r->cap_refused > 0 && r->refused[pos] != 0; pos = (pos + 1) & (r->cap_refused - 1)) {
        if (r->refused[pos] == h) {
            return REFUSED_SEEN;
        }
    }
    if (r->n_refused >= REFUSED_MAX) {
        return REFUSED_FULL;
    }
    if ((r->n_refused + 1) * 2 > r->cap_refused) {
        size_t cap = r->cap_refused ? r->cap_refused * 2 : 64;
        uint64_t *v = calloc(cap, sizeof(*v));
        if (v == NULL) {
            return REFUSED_FULL;
        }
        for (size_t i = 0; i < r->cap_refused; i++) {
            if (r->refused[i] != 0) {
                size_t pos = r->refused[i] & (cap - 1);
                while (v[pos] != 0) {
                    pos = (pos + 1) & (cap - 1);
                }
                v[pos] = r->refused[i];
            }
        }
        free(r->refused);
        r->refused = v;
        r->cap_refused = cap;
    }
    size_t pos = h & (r->cap_refused - 1);
    while (r->refused[pos] != 0) {
        pos = (pos + 1) & (r->cap_refused - 1);
    }
    r->refused[pos] = h;
    r->n_refused++;
    return REFUSED_NEW;
}

/* What an instance of scope is, in a log line. */
static const char *instance_what(kvl_scope_t scope)
{
    switch (scope) {
    case KVL_SCOPE_INTERFACE:
        return "interface";
    case KVL_SCOPE_GROUP:
        return "metric group instance";
    case KVL_SCOPE_LINK:
        return "probe target";
    default:
        return "instance";
    }
}

/* True when the collector can make archive file names of the key's device and instance;
 * else logs and counts the pair once (see the top of this file) and returns false. */
static bool names_fit(kvl_registry_t *r, const char *device, kvl_scope_t scope,
                      const char *instance)
{
    char why[256];
    const char *what = "device";
    if (kvl_name_check("device", device, why, sizeof(why)) == 0) {
        what = instance_what(scope);
        if (kvl_name_check(what, instance, why, sizeof(why)) == 0) {
            return true;
        }
    }
    uint8_t sc = (uint8_t)scope;
    uint64_t h = hash_bytes(hash_bytes(hash_str(device), "", 1), &sc, 1);
    h = hash_bytes(h, instance, strlen(instance));
    refused_t seen = refused_before(r, h);
    if (seen == REFUSED_SEEN) {
        return false;
    }
    r->names_refused++;
    /* The name itself may be kilobytes: its start is enough to find it. */
    bool dev = strcmp(what, "device") == 0;
    const char *name = dev ? device : instance;
    if (seen == REFUSED_NEW) {
        KVL_LOG_WARN("registry", dev ? NULL : device,
                     "%s ('%.60s...'): its series are not sent (the collector could not "
                     "archive them)",
                     why, name);
    } else {
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &r->refused_log, "registry", dev ? NULL : device,
                        "%s ('%.60s...'): its series are not sent (the collector could not "
                        "archive them)",
                        why, name);
    }
    return false;
}

uint64_t kvl_registry_names_refused(const kvl_registry_t *r)
{
    return r->names_refused;
}

/* --- registering ----------------------------------------------------------------------------- */

uint32_t kvl_registry_series(kvl_registry_t *r, const kvl_series_key_t *k)
{
    if (!names_fit(r, k->device, k->scope, k->instance)) {
        return 0;
    }
    entry_t e = {.device = intern_num(r, k->device),
                 .instance = intern_num(r, k->instance),
                 .what = intern_num(r, k->metric),
                 .scope = (uint8_t)k->scope,
                 .kind = (uint8_t)k->kind,
                 .real = k->real,
                 .interval_s = k->interval_s};
    uint32_t id = 0;
    if (e.device != 0 && e.instance != 0 && e.what != 0) {
        id = lookup_or_add(r, &e, k->labels, k->n_labels);
    }
    if (id == 0) {
        oom(r);
    }
    return id;
}

uint32_t kvl_registry_instance(kvl_registry_t *r, const kvl_instance_key_t *k)
{
    if (!names_fit(r, k->device, k->scope, k->instance)) {
        return 0;
    }
    const fam_t *f = family_get(r, k->family);
    entry_t e = {.device = intern_num(r, k->device),
                 .instance = intern_num(r, k->instance),
                 .what = f != NULL ? f->f.id : 0,
                 .is_fam = 1,
                 .scope = (uint8_t)k->scope,
                 .interval_s = k->interval_s};
    uint32_t id = 0;
    if (e.device != 0 && e.instance != 0 && e.what != 0) {
        id = lookup_or_add(r, &e, k->labels, k->n_labels);
    }
    if (id == 0) {
        oom(r);
    }
    return id;
}

const char *kvl_registry_intern(kvl_registry_t *r, const char *s)
{
    return intern_str(r, s);
}

/* The entry holding id (entries are in id order), or NULL. */
static const entry_t *entry_of(const kvl_registry_t *r, uint32_t id)
{
    const entry_t *v = r->entries;
    size_t lo = 0, hi = r->n_entries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].id + width_of(r, &v[mid]) <= id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < r->n_entries && v[lo].id <= id ? &v[lo] : NULL;
}

int kvl_registry_scope_of(const kvl_registry_t *r, uint32_t id)
{
    const entry_t *e = entry_of(r, id);
    return e != NULL ? (int)e->scope : 0;
}

const char *kvl_registry_instance_of(const kvl_registry_t *r, uint32_t id)
{
    const entry_t *e = entry_of(r, id);
    return e != NULL ? str_of(r, e->instance) : NULL;
}

static kvl_series_def_t def_of(const kvl_registry_t *r, const entry_t *e, const kvl_label_t *labels,
                               size_t n_labels)
{
    return (kvl_series_def_t){.id = e->id,
                              .device = str_of(r, e->device),
                              .scope = (kvl_scope_t)e->scope,
                              .instance = str_of(r, e->instance),
                              .metric = e->is_fam ? "" : str_of(r, e->what),
                              .kind = e->is_fam ? KVL_KIND_GAUGE : (kvl_kind_t)e->kind,
                              .interval_s = e->interval_s,
                              .real = e->real,
                              .labels = labels,
                              .n_labels = n_labels,
                              .family = e->is_fam ? e->what : 0};
}

size_t kvl_registry_n_defs(const kvl_registry_t *r)
{
    return r->n_entries;
}

size_t kvl_registry_defs(const kvl_registry_t *r, size_t off, kvl_series_def_t *out, size_t max)
{
    size_t n = 0;
    for (size_t i = off; i < r->n_entries && n < max; i++) {
        out[n++] = def_of(r, &r->entries[i], NULL, 0);
    }
    return n;
}

void kvl_registry_families(const kvl_registry_t *r, kvl_family_t *out, size_t *n)
{
    size_t k = 0;
    for (; k < r->n_fams && k < *n; k++) {
        out[k] = r->fams[k]->f;
    }
    *n = k;
}

/* ----------------------------------------------------------------- series.defs --------- */

/* The file: a header (8 bytes "kvlsdefs", u32 little-endian format version), then SeriesDefs
 * frames (common/frame.h) appended. A file without the header (written before versions were
 * kept) is read as version 1 and rewritten with one. */
#define DEFS_MAGIC "kvlsdefs"
#define DEFS_HEADER 12u

/* A family from the file: the next id in order, owned by no caller until one registers a
 * family with the same content (family_get). */
static int restore_family(kvl_registry_t *r, const kvl_family_t *u)
{
    if (u->id != r->n_fams + 1 || u->n == 0 || u->n > KVL_FAMILY_MAX ||
        r->n_fams == KVL_REGISTRY_MAX_FAMILIES) {
        return KVL_EPROTO;
    }
    return add_family(r, u, NULL) != NULL ? 0 : KVL_ENOMEM;
}

/* A definition from the file; ids come in increasing order. Its labels hash is left 0, so
 * the first registration in this run sends the definition again with its labels. */
static int restore_def(kvl_registry_t *r, const kvl_series_def_t *d)
{
    if (d->id == 0 || d->id < r->next_id || (d->family != 0 && d->family > r->n_fams)) {
        return KVL_EPROTO;
    }
    entry_t e = {.id = d->id,
                 .interval_s = d->interval_s,
                 .scope = (uint8_t)d->scope,
                 .device = intern_num(r, d->device),
                 .instance = intern_num(r, d->instance)};
    if (d->family != 0) {
        e.what = d->family;
        e.is_fam = 1;
    } else {
        e.what = intern_num(r, d->metric);
        e.kind = (uint8_t)d->kind;
        e.real = d->real;
        if (e.what == 0) {
            return KVL_ENOMEM;
        }
    }
    if (e.device == 0 || e.instance == 0) {
        return KVL_ENOMEM;
    }
    return insert_entry(r, &e, hash_identity(&e));
}

/* Reads the file's frames; returns the length of the good part. */
static size_t load_defs(kvl_registry_t *r, const uint8_t *p, size_t len)
{
    size_t off = 0;
    while (len - off >= KVL_FRAME_HEADER) {
        uint32_t n = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 |
                     (uint32_t)p[off + 2] << 8 | p[off + 3];
        if (n == 0 || n > len - off - KVL_FRAME_HEADER) {
            break;
        }
        kvl_msg_t m = {0};
        char err[200];
        int rc = kvl_wire_decode(p + off + KVL_FRAME_HEADER, n, &m, err, sizeof(err));
        if (rc == 0 && m.type != KVL_MSG_SERIES_DEFS) {
            rc = KVL_EPROTO;
        }
        for (size_t i = 0; rc == 0 && i < m.u.series_defs.n_families; i++) {
            rc = restore_family(r, &m.u.series_defs.families[i]);
        }
        for (size_t i = 0; rc == 0 && i < m.u.series_defs.n; i++) {
            rc = restore_def(r, &m.u.series_defs.defs[i]);
        }
        kvl_msg_clear(&m);
        if (rc != 0) {
            break; /* what was restored of this frame stays; it is also cut off below */
        }
        off += KVL_FRAME_HEADER + n;
    }
    return off;
}

/* Reads all of fd into a malloc'd *data (*len bytes; NULL when empty). Returns 0 or KVL_EIO. */
static int read_whole(int fd, uint8_t **data, size_t *len)
{
    struct stat st;
    *data = NULL;
    *len = 0;
    if (fstat(fd, &st) != 0) {
        return KVL_EIO;
    }
    if (st.st_size == 0) {
        return 0;
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *p = malloc(n);
    while (p != NULL && got < n) {
        ssize_t k = pread(fd, p + got, n - got, (off_t)got);
        if (k <= 0) {
            break;
        }
        got += (size_t)k;
    }
    if (p == NULL || got < n) {
        free(p);
        return KVL_EIO;
    }
    *data = p;
    *len = n;
    return 0;
}

/* Rewrites path as the header of this version and the n bytes of body (a file of an older
 * format, or a new one), then opens it for appending. Returns the descriptor or -errno. */
static int write_with_header(const char *path, const uint8_t *body, size_t n)
{
    uint8_t *p = malloc(DEFS_HEADER + n);
    if (p == NULL) {
        return KVL_ENOMEM;
    }
    memcpy(p, DEFS_MAGIC, 8);
    kvl_put_le32(p + 8, KVL_REGISTRY_FORMAT_VERSION);
    if (n > 0) {
        memcpy(p + DEFS_HEADER, body, n);
    }
    int rc = kvl_file_replace(path, p, DEFS_HEADER + n, 0600);
    free(p);
    if (rc != 0) {
        return rc;
    }
    int fd = open(path, O_RDWR | O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

int kvl_registry_persist(kvl_registry_t *r, const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = -errno;
        KVL_LOG_ERROR("batch", path, "cannot open the series registry: %s", strerror(errno));
        return rc;
    }
    uint8_t *data = NULL;
    size_t len = 0, hdr = 0, good = 0;
    if (read_whole(fd, &data, &len) != 0) {
        KVL_LOG_ERROR("batch", path, "cannot read the series registry");
        close(fd);
        return KVL_EIO;
    }
    if (len >= 8 && memcmp(data, DEFS_MAGIC, 8) == 0) {
        /* A header; one cut short is a file whose first write was torn: it holds nothing. */
        hdr = len >= DEFS_HEADER ? DEFS_HEADER : len;
        uint32_t v = len >= DEFS_HEADER ? kvl_get_le32(data + 8) : KVL_REGISTRY_FORMAT_VERSION;
        char why[4600];
        if (kvl_format_check(path, v, KVL_REGISTRY_FORMAT_VERSION, "kaaval-agent",
                             "batches spooled with its series ids are then refused by the "
                             "collector",
                             why, sizeof(why)) != 0) {
            KVL_LOG_ERROR("batch", path, "%s", why);
            free(data);
            close(fd);
            return KVL_EPROTO;
        }
    }
    /* Without a header: the format before versions (the frames alone), read as version 1. */
    const uint8_t *body = data != NULL ? data + hdr : (const uint8_t *)"";
    good = load_defs(r, body, len - hdr);
    if (good < len - hdr) {
        KVL_LOG_WARN("batch", path,
                     "series registry damaged after byte %zu: %zu bytes cut off (batches of an "
                     "earlier run that use those series cannot be replayed)",
                     hdr + good, len - hdr - good);
    }
    if (hdr != DEFS_HEADER) {
        /* No header yet (new, older or torn): written with one, what was good kept. */
        close(fd);
        fd = write_with_header(path, body, good);
        if (fd < 0) {
            KVL_LOG_ERROR("batch", path, "cannot write the series registry: %s", kvl_strerror(fd));
            free(data);
            return fd;
        }
    } else if (good < len - hdr && ftruncate(fd, (off_t)(hdr + good)) != 0) {
        KVL_LOG_ERROR("batch", path, "cannot cut the damaged tail: %s", strerror(errno));
    }
    free(data);
    if (lseek(fd, (off_t)(DEFS_HEADER + good), SEEK_SET) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    r->persist_fd = fd;
    r->persist_path = strdup(path);
    r->n_persisted = r->n_entries;
    r->n_fams_persisted = r->n_fams;
    if (r->n_entries > 0) {
        KVL_LOG_INFO("batch", path,
                     "%zu series definitions and %zu families kept from earlier runs", r->n_entries,
                     r->n_fams);
    }
    return 0;
}

/* Appends the definitions and families the file lacks. Returns 0 or a negative code. */
static int persist_new(kvl_registry_t *r)
{
    if (r->persist_fd < 0 || (r->n_persisted == r->n_entries && r->n_fams_persisted == r->n_fams)) {
        return 0;
    }
    size_t nd = r->n_entries - r->n_persisted, nf = r->n_fams - r->n_fams_persisted;
    kvl_series_def_t *defs = calloc(nd ? nd : 1, sizeof(*defs));
    kvl_family_t *fams = calloc(nf ? nf : 1, sizeof(*fams));
    int rc = defs == NULL || fams == NULL ? KVL_ENOMEM : 0;
    kvl_buf_t out = {0};
    if (rc == 0) {
        for (size_t i = 0; i < nd; i++) {
            defs[i] = def_of(r, &r->entries[r->n_persisted + i], NULL, 0);
        }
        for (size_t i = 0; i < nf; i++) {
            fams[i] = r->fams[r->n_fams_persisted + i]->f;
        }
        kvl_msg_t m = {.type = KVL_MSG_SERIES_DEFS};
        m.u.series_defs.defs = defs;
        m.u.series_defs.n = nd;
        m.u.series_defs.families = fams;
        m.u.series_defs.n_families = nf;
        rc = kvl_wire_encode(&m, &out);
    }
    size_t done = 0;
    while (rc == 0 && done < out.len) {
        ssize_t w = write(r->persist_fd, out.data + done, out.len - done);
        if (w < 0 && errno != EINTR) {
            rc = -errno;
        } else if (w > 0) {
            done += (size_t)w;
        }
    }
    if (rc == 0 && fdatasync(r->persist_fd) != 0) {
        rc = -errno;
    }
    free(defs);
    free(fams);
    kvl_buf_free(&out);
    if (rc != 0) {
        if (done > 0) {
            /* Never leave half a frame: the next attempt writes it whole. */
            off_t end = lseek(r->persist_fd, -(off_t)done, SEEK_CUR);
            if (end < 0 || ftruncate(r->persist_fd, end) != 0) {
                KVL_LOG_ERROR("batch", r->persist_path, "cannot cut a partial write: %s",
                              strerror(errno));
            }
        }
        if (!r->persist_failing) {
            KVL_LOG_ERROR("batch", r->persist_path,
                          "cannot save new series definitions: %s (retried at each flush; "
                          "batches still go out)",
                          kvl_strerror(rc));
            r->persist_failing = true;
        }
        return rc;
    }
    if (r->persist_failing) {
        KVL_LOG_INFO("batch", r->persist_path, "saving series definitions works again");
        r->persist_failing = false;
    }
    r->n_persisted = r->n_entries;
    r->n_fams_persisted = r->n_fams;
    return 0;
}

/* ----------------------------------------------------------------- for the batcher ----- */

bool kvl_registry_lookup(const kvl_registry_t *r, uint32_t id, kvl_series_def_t *out)
{
    const entry_t *e = entry_of(r, id);
    if (e == NULL) {
        return false;
    }
    *out = def_of(r, e, NULL, 0);
    if (e->is_fam) {
        const fam_t *f = fam_of(r, e);
        size_t i = id - e->id;
        out->metric = f->f.metrics[i];
        out->kind = f->f.kinds[i];
        out->real = f->f.reals[i];
    }
    return true;
}

const kvl_family_t *kvl_registry_family(const kvl_registry_t *r, uint32_t family)
{
    return family != 0 && family <= r->n_fams ? &r->fams[family - 1]->f : NULL;
}

int kvl_registry_take_new(kvl_registry_t *r, kvl_registry_new_t *nw)
{
    *nw = (kvl_registry_new_t){0};
    nw->defs = calloc(r->new_defs.n ? r->new_defs.n : 1, sizeof(*nw->defs));
    nw->families = calloc(r->n_fams ? r->n_fams : 1, sizeof(*nw->families));
    if (nw->defs == NULL || nw->families == NULL) {
        kvl_registry_new_free(nw);
        oom(r);
        return KVL_ENOMEM;
    }
    /* Every family a new definition names goes along (they are few and small). */
    for (size_t i = 0; i < r->new_defs.n; i++) {
        const new_def_t *n = &r->new_defs.v[i];
        const entry_t *e = &r->entries[n->entry];
        nw->defs[nw->n_defs++] = def_of(r, e, n->labels, n->n_labels);
        if (e->is_fam) {
            bool have = false;
            for (size_t k = 0; k < nw->n_families && !have; k++) {
                have = nw->families[k].id == e->what;
            }
            if (!have) {
                nw->families[nw->n_families++] = fam_of(r, e)->f;
            }
        }
    }
    return 0;
}

void kvl_registry_new_free(kvl_registry_new_t *nw)
{
    free(nw->defs);
    free(nw->families);
    *nw = (kvl_registry_new_t){0};
}

void kvl_registry_sent(kvl_registry_t *r)
{
    kvl_arena_free(&r->pending);
    r->new_defs.n = 0;
}

int kvl_registry_save(kvl_registry_t *r)
{
    return persist_new(r);
}
