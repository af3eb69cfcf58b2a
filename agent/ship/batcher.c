/*
 * batcher.c — series registry and batch assembly for the agent (see batcher.h).
 *
 * Definitions (a single series, or an instance naming a whole family of metrics with
 * consecutive ids) live in an array in id order, with an open-addressing hash over their
 * identity (device, scope, instance, metric or family) for lookups. Every string is
 * interned once, so a definition is a few pointers and identity compares by pointer. The open
 * batch keeps samples in flat arrays with per-group offsets; at flush it is turned into a
 * kvl_batch_t that points into those arrays, encoded once, and its bytes handed to the uplink (or,
 * in --poll-once mode, printed). Definitions ride in the first batch that uses them; the uplink
 * also sends the full set at the start of every connection.
 */
#include "batcher.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "kvl.h"
#include "log.h"
#include "uplink.h"

#define FLUSH_SAMPLES 20000 /* flush early when a batch holds this many samples */

/* Interned strings: each distinct one is stored once, in the arena, and compared by
 * pointer, so definitions share one copy of each device and instance name. */
/* Interned strings, each once, numbered from 1 in the order they came. */
typedef struct intern {
    uint32_t *slots;   /* hash table: a string's number; 0 = empty */
    const char **strs; /* the strings by number - 1 (room: cap / 2) */
    size_t n, cap;     /* strings held; slots */
} intern_t;

typedef struct group_span {
    int64_t time_ms;
    size_t first_id, n_ids;
    size_t first_value, n_values;
    size_t first_real, n_reals;
    size_t first_unknown, n_unknown;
} group_span_t;

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

#define VEC(type)                                                                                  \
    struct {                                                                                       \
        type *v;                                                                                   \
        size_t n, cap;                                                                             \
    }

struct kvl_batcher {
    uv_loop_t *loop;
    struct kvl_uplink *up;
    FILE *dump;
    uv_timer_t timer;
    int64_t flush_ms;

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

    VEC(group_span_t) groups;
    VEC(uint32_t) ids;
    VEC(uint64_t) values;
    VEC(double) reals;
    VEC(uint32_t) unknown;
    VEC(new_def_t) new_defs;
    VEC(kvl_event_t) events;
    kvl_arena_t event_arena;
    bool in_group;
    bool oom_logged;

    int persist_fd; /* series.defs, or -1 */
    char *persist_path;
    size_t n_persisted;      /* entries already in the file */
    size_t n_fams_persisted; /* families already in the file */
    bool persist_failing;
};

#define VEC_PUSH(b, vec, val)                                                                      \
    do {                                                                                           \
        if ((vec).n == (vec).cap) {                                                                \
            size_t ncap_ = (vec).cap ? (vec).cap * 2 : 64;                                         \
            void *nv_ = realloc((vec).v, ncap_ * sizeof(*(vec).v));                                \
            if (nv_ == NULL) {                                                                     \
                oom(b);                                                                            \
                break;                                                                             \
            }                                                                                      \
            (vec).v = nv_;                                                                         \
            (vec).cap = ncap_;                                                                     \
        }                                                                                          \
        (vec).v[(vec).n++] = (val);                                                                \
    } while (0)

static void oom(kvl_batcher_t *b)
{
    if (!b->oom_logged) {
        KVL_LOG_ERROR("batch", NULL, "out of memory: samples are being lost");
        b->oom_logged = true;
    }
}

static void on_flush_timer(uv_timer_t *t)
{
    kvl_batcher_flush(t->data);
}

kvl_batcher_t *kvl_batcher_new(uv_loop_t *loop, struct kvl_uplink *up, int64_t flush_ms)
{
    kvl_batcher_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        return NULL;
    }
    b->loop = loop;
    b->up = up;
    b->flush_ms = flush_ms > 0 ? flush_ms : 1000;
    b->persist_fd = -1;
    uv_timer_init(loop, &b->timer);
    b->timer.data = b;
    uv_timer_start(&b->timer, on_flush_timer, (uint64_t)b->flush_ms, (uint64_t)b->flush_ms);
    return b;
}

void kvl_batcher_set_dump(kvl_batcher_t *b, FILE *f)
{
    b->dump = f;
}

static void on_timer_closed(uv_handle_t *h)
{
    kvl_batcher_t *b = h->data;
    free(b->entries);
    free(b->slots);
    free(b->fams);
    kvl_arena_free(&b->pending);
    free(b->strings.slots);
    free(b->strings.strs);
    kvl_arena_free(&b->names);
    free(b->groups.v);
    free(b->ids.v);
    free(b->values.v);
    free(b->reals.v);
    free(b->unknown.v);
    free(b->new_defs.v);
    free(b->events.v);
    kvl_arena_free(&b->event_arena);
    if (b->persist_fd >= 0) {
        fsync(b->persist_fd);
        close(b->persist_fd);
    }
    free(b->persist_path);
    free(b);
}

void kvl_batcher_free(kvl_batcher_t *b)
{
    if (b == NULL) {
        return;
    }
    kvl_batcher_flush(b);
    uv_timer_stop(&b->timer);
    uv_close((uv_handle_t *)&b->timer, on_timer_closed);
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
static uint32_t intern_num(kvl_batcher_t *b, const char *s)
{
    intern_t *t = &b->strings;
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
    char *copy = kvl_arena_strdup(&b->names, s);
    if (copy == NULL) {
        return 0;
    }
    t->strs[t->n++] = copy;
    t->slots[pos] = (uint32_t)t->n;
    return (uint32_t)t->n;
}

static const char *str_of(const kvl_batcher_t *b, uint32_t num)
{
    return b->strings.strs[num - 1];
}

/* Returns the interned copy of s, or NULL when out of memory. */
static const char *intern_str(kvl_batcher_t *b, const char *s)
{
    uint32_t k = intern_num(b, s);
    return k != 0 ? str_of(b, k) : NULL;
}

static const fam_t *fam_of(const kvl_batcher_t *b, const entry_t *e)
{
    return e->is_fam ? b->fams[e->what - 1] : NULL;
}

/* Identity: the interned device, instance and metric numbers (or family id) and scope. */
static uint64_t hash_identity(const entry_t *e)
{
    uint32_t key[4] = {e->device, e->instance, e->what,
                       (uint32_t)e->scope | (uint32_t)e->is_fam << 8};
    return hash_bytes(HASH_SEED, key, sizeof(key));
}

static bool same_identity(const entry_t *a, const entry_t *b)
{
    return a->device == b->device && a->instance == b->instance && a->what == b->what &&
           a->scope == b->scope && a->is_fam == b->is_fam;
}

static uint32_t width_of(const kvl_batcher_t *b, const entry_t *e)
{
    return e->is_fam ? (uint32_t)fam_of(b, e)->f.n : 1;
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

static int rehash(kvl_batcher_t *b, size_t n_slots)
{
    uint32_t *slots = calloc(n_slots, sizeof(*slots));
    if (slots == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < b->n_entries; i++) {
        const entry_t *e = &b->entries[i];
        size_t pos = hash_identity(e) & (n_slots - 1);
        while (slots[pos] != 0) {
            pos = (pos + 1) & (n_slots - 1);
        }
        slots[pos] = (uint32_t)(i + 1);
    }
    free(b->slots);
    b->slots = slots;
    b->n_slots = n_slots;
    return 0;
}

/* Queues the definition for the next batch, with a copy of its labels. */
static void announce(kvl_batcher_t *b, size_t idx, const kvl_label_t *l, size_t n)
{
    kvl_label_t *copy = kvl_arena_alloc(&b->pending, sizeof(*copy) * (n ? n : 1));
    if (copy == NULL) {
        oom(b);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        copy[i].key = kvl_arena_strdup(&b->pending, l[i].key ? l[i].key : "");
        copy[i].value = kvl_arena_strdup(&b->pending, l[i].value ? l[i].value : "");
        if (copy[i].key == NULL || copy[i].value == NULL) {
            oom(b);
            return;
        }
    }
    new_def_t nd = {.entry = idx, .labels = copy, .n_labels = n};
    VEC_PUSH(b, b->new_defs, nd);
}

/* Appends the batcher's own copy of family u (interned names) with the next id, owned by
 * user (NULL: restored from series.defs, claimed later by content). NULL when it cannot. */
static fam_t *add_family(kvl_batcher_t *b, const kvl_family_t *u, const kvl_family_t *user)
{
    if (u->n == 0 || u->n > KVL_FAMILY_MAX || b->n_fams == KVL_BATCHER_MAX_FAMILIES) {
        return NULL;
    }
    fam_t **nf = realloc(b->fams, (b->n_fams + 1) * sizeof(*nf));
    if (nf == NULL) {
        return NULL;
    }
    b->fams = nf;
    fam_t *f = kvl_arena_alloc(&b->names, sizeof(*f));
    const char **metrics = kvl_arena_alloc(&b->names, u->n * sizeof(*metrics));
    kvl_kind_t *kinds = kvl_arena_alloc(&b->names, u->n * sizeof(*kinds));
    bool *reals = kvl_arena_alloc(&b->names, u->n * sizeof(*reals));
    if (f == NULL || metrics == NULL || kinds == NULL || reals == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < u->n; i++) {
        if ((metrics[i] = intern_str(b, u->metrics[i])) == NULL) {
            return NULL;
        }
        kinds[i] = u->kinds[i];
        reals[i] = u->reals != NULL && u->reals[i];
    }
    f->user = user;
    f->f = (kvl_family_t){.name = intern_str(b, u->name),
                          .n = u->n,
                          .metrics = metrics,
                          .kinds = kinds,
                          .reals = reals,
                          .id = (uint32_t)(b->n_fams + 1)};
    if (f->f.name == NULL) {
        return NULL;
    }
    b->fams[b->n_fams++] = f;
    return f;
}

/* The batcher's own copy of a family, made once per family pointer the caller uses. */
static const fam_t *family_get(kvl_batcher_t *b, const kvl_family_t *user)
{
    for (size_t i = 0; i < b->n_fams; i++) {
        if (b->fams[i]->user == user) {
            return b->fams[i];
        }
    }
    /* A family restored from series.defs (an earlier run) with the same content: the
     * same id again. */
    for (size_t i = 0; i < b->n_fams; i++) {
        fam_t *f = b->fams[i];
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
    return add_family(b, user, user);
}

/* Appends an entry whose id is set (above every other) and indexes it under hash h. */
static int insert_entry(kvl_batcher_t *b, const entry_t *want, uint64_t h)
{
    if (b->n_entries == b->cap_entries) {
        size_t cap = b->cap_entries ? b->cap_entries * 2 : 256;
        entry_t *ne = realloc(b->entries, cap * sizeof(*ne));
        if (ne == NULL) {
            return KVL_ENOMEM;
        }
        b->entries = ne;
        b->cap_entries = cap;
    }
    size_t idx = b->n_entries;
    b->entries[idx] = *want;
    b->n_entries++;
    if (b->n_entries * 4 > b->n_slots * 3) { /* at most 3/4 full: linear probing stays short */
        if (rehash(b, b->n_slots ? b->n_slots * 2 : 1024) != 0) {
            b->n_entries--;
            return KVL_ENOMEM;
        }
    } else {
        size_t pos = h & (b->n_slots - 1);
        while (b->slots[pos] != 0) {
            pos = (pos + 1) & (b->n_slots - 1);
        }
        b->slots[pos] = (uint32_t)(idx + 1);
    }
    b->next_id = want->id + width_of(b, want);
    return 0;
}

/* Finds or adds the entry for an identity; returns its first id or 0. */
static uint32_t lookup_or_add(kvl_batcher_t *b, entry_t *want, const kvl_label_t *labels,
                              size_t n_labels)
{
    want->labels_hash = hash_labels_value(labels, n_labels);
    uint64_t h = hash_identity(want);
    if (b->n_slots) {
        size_t pos = h & (b->n_slots - 1);
        while (b->slots[pos] != 0) {
            size_t idx = b->slots[pos] - 1;
            entry_t *e = &b->entries[idx];
            if (same_identity(e, want)) {
                if (e->labels_hash != want->labels_hash || e->interval_s != want->interval_s ||
                    e->kind != want->kind || e->real != want->real) {
                    e->labels_hash = want->labels_hash;
                    e->interval_s = want->interval_s;
                    e->kind = want->kind;
                    e->real = want->real;
                    announce(b, idx, labels, n_labels); /* changed: send it again */
                }
                return e->id;
            }
            pos = (pos + 1) & (b->n_slots - 1);
        }
    }
    if (b->next_id == 0) {
        b->next_id = 1;
    }
    want->id = b->next_id;
    size_t idx = b->n_entries;
    if (insert_entry(b, want, h) != 0) {
        return 0;
    }
    announce(b, idx, labels, n_labels);
    return want->id;
}

uint32_t kvl_batcher_series(kvl_batcher_t *b, const kvl_series_key_t *k)
{
    entry_t e = {.device = intern_num(b, k->device),
                 .instance = intern_num(b, k->instance),
                 .what = intern_num(b, k->metric),
                 .scope = (uint8_t)k->scope,
                 .kind = (uint8_t)k->kind,
                 .real = k->real,
                 .interval_s = k->interval_s};
    uint32_t id = 0;
    if (e.device != 0 && e.instance != 0 && e.what != 0) {
        id = lookup_or_add(b, &e, k->labels, k->n_labels);
    }
    if (id == 0) {
        oom(b);
    }
    return id;
}

uint32_t kvl_batcher_instance(kvl_batcher_t *b, const kvl_instance_key_t *k)
{
    const fam_t *f = family_get(b, k->family);
    entry_t e = {.device = intern_num(b, k->device),
                 .instance = intern_num(b, k->instance),
                 .what = f != NULL ? f->f.id : 0,
                 .is_fam = 1,
                 .scope = (uint8_t)k->scope,
                 .interval_s = k->interval_s};
    uint32_t id = 0;
    if (e.device != 0 && e.instance != 0 && e.what != 0) {
        id = lookup_or_add(b, &e, k->labels, k->n_labels);
    }
    if (id == 0) {
        oom(b);
    }
    return id;
}

const char *kvl_batcher_intern(kvl_batcher_t *b, const char *s)
{
    return intern_str(b, s);
}

/* The entry holding id (entries are in id order), or NULL. */
static const entry_t *entry_of(const kvl_batcher_t *b, uint32_t id)
{
    const entry_t *v = b->entries;
    size_t lo = 0, hi = b->n_entries;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].id + width_of(b, &v[mid]) <= id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < b->n_entries && v[lo].id <= id ? &v[lo] : NULL;
}

const char *kvl_batcher_instance_of(const kvl_batcher_t *b, uint32_t id)
{
    const entry_t *e = entry_of(b, id);
    return e != NULL ? str_of(b, e->instance) : NULL;
}

static kvl_series_def_t def_of(const kvl_batcher_t *b, const entry_t *e, const kvl_label_t *labels,
                               size_t n_labels)
{
    return (kvl_series_def_t){.id = e->id,
                              .device = str_of(b, e->device),
                              .scope = (kvl_scope_t)e->scope,
                              .instance = str_of(b, e->instance),
                              .metric = e->is_fam ? "" : str_of(b, e->what),
                              .kind = e->is_fam ? KVL_KIND_GAUGE : (kvl_kind_t)e->kind,
                              .interval_s = e->interval_s,
                              .real = e->real,
                              .labels = labels,
                              .n_labels = n_labels,
                              .family = e->is_fam ? e->what : 0};
}

size_t kvl_batcher_n_defs(const kvl_batcher_t *b)
{
    return b->n_entries;
}

size_t kvl_batcher_defs(const kvl_batcher_t *b, size_t off, kvl_series_def_t *out, size_t max)
{
    size_t n = 0;
    for (size_t i = off; i < b->n_entries && n < max; i++) {
        out[n++] = def_of(b, &b->entries[i], NULL, 0);
    }
    return n;
}

void kvl_batcher_families(const kvl_batcher_t *b, kvl_family_t *out, size_t *n)
{
    size_t k = 0;
    for (; k < b->n_fams && k < *n; k++) {
        out[k] = b->fams[k]->f;
    }
    *n = k;
}

/* ----------------------------------------------------------------- series.defs --------- */

/* A family from the file: the next id in order, owned by no caller until one registers a
 * family with the same content (family_get). */
static int restore_family(kvl_batcher_t *b, const kvl_family_t *u)
{
    if (u->id != b->n_fams + 1 || u->n == 0 || u->n > KVL_FAMILY_MAX ||
        b->n_fams == KVL_BATCHER_MAX_FAMILIES) {
        return KVL_EPROTO;
    }
    return add_family(b, u, NULL) != NULL ? 0 : KVL_ENOMEM;
}

/* A definition from the file; ids come in increasing order. Its labels hash is left 0, so
 * the first registration in this run sends the definition again with its labels. */
static int restore_def(kvl_batcher_t *b, const kvl_series_def_t *d)
{
    if (d->id == 0 || d->id < b->next_id || (d->family != 0 && d->family > b->n_fams)) {
        return KVL_EPROTO;
    }
    entry_t e = {.id = d->id,
                 .interval_s = d->interval_s,
                 .scope = (uint8_t)d->scope,
                 .device = intern_num(b, d->device),
                 .instance = intern_num(b, d->instance)};
    if (d->family != 0) {
        e.what = d->family;
        e.is_fam = 1;
    } else {
        e.what = intern_num(b, d->metric);
        e.kind = (uint8_t)d->kind;
        e.real = d->real;
        if (e.what == 0) {
            return KVL_ENOMEM;
        }
    }
    if (e.device == 0 || e.instance == 0) {
        return KVL_ENOMEM;
    }
    return insert_entry(b, &e, hash_identity(&e));
}

/* Reads the file's frames; returns the length of the good part. */
static size_t load_defs(kvl_batcher_t *b, const uint8_t *p, size_t len)
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
            rc = restore_family(b, &m.u.series_defs.families[i]);
        }
        for (size_t i = 0; rc == 0 && i < m.u.series_defs.n; i++) {
            rc = restore_def(b, &m.u.series_defs.defs[i]);
        }
        kvl_msg_clear(&m);
        if (rc != 0) {
            break; /* what was restored of this frame stays; it is also cut off below */
        }
        off += KVL_FRAME_HEADER + n;
    }
    return off;
}

int kvl_batcher_persist(kvl_batcher_t *b, const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        int rc = -errno;
        KVL_LOG_ERROR("batch", path, "cannot open the series registry: %s", strerror(errno));
        return rc;
    }
    struct stat st;
    uint8_t *data = NULL;
    size_t len = 0, good = 0;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        len = (size_t)st.st_size;
        data = malloc(len);
        size_t got = 0;
        while (data != NULL && got < len) {
            ssize_t r = pread(fd, data + got, len - got, (off_t)got);
            if (r <= 0) {
                break;
            }
            got += (size_t)r;
        }
        if (data == NULL || got < len) {
            KVL_LOG_ERROR("batch", path, "cannot read the series registry");
            free(data);
            close(fd);
            return KVL_EIO;
        }
        good = load_defs(b, data, len);
        free(data);
    }
    if (good < len) {
        KVL_LOG_WARN("batch", path,
                     "series registry damaged after byte %zu: %zu bytes cut off (batches of an "
                     "earlier run that use those series cannot be replayed)",
                     good, len - good);
        if (ftruncate(fd, (off_t)good) != 0) {
            KVL_LOG_ERROR("batch", path, "cannot cut the damaged tail: %s", strerror(errno));
        }
    }
    if (lseek(fd, (off_t)good, SEEK_SET) < 0) {
        close(fd);
        return -errno;
    }
    b->persist_fd = fd;
    b->persist_path = strdup(path);
    b->n_persisted = b->n_entries;
    b->n_fams_persisted = b->n_fams;
    if (b->n_entries > 0) {
        KVL_LOG_INFO("batch", path,
                     "%zu series definitions and %zu families kept from earlier runs", b->n_entries,
                     b->n_fams);
    }
    return 0;
}

/* Appends the definitions and families the file lacks. Returns 0 or a negative code. */
static int persist_new(kvl_batcher_t *b)
{
    if (b->persist_fd < 0 || (b->n_persisted == b->n_entries && b->n_fams_persisted == b->n_fams)) {
        return 0;
    }
    size_t nd = b->n_entries - b->n_persisted, nf = b->n_fams - b->n_fams_persisted;
    kvl_series_def_t *defs = calloc(nd ? nd : 1, sizeof(*defs));
    kvl_family_t *fams = calloc(nf ? nf : 1, sizeof(*fams));
    int rc = defs == NULL || fams == NULL ? KVL_ENOMEM : 0;
    kvl_buf_t out = {0};
    if (rc == 0) {
        for (size_t i = 0; i < nd; i++) {
            defs[i] = def_of(b, &b->entries[b->n_persisted + i], NULL, 0);
        }
        for (size_t i = 0; i < nf; i++) {
            fams[i] = b->fams[b->n_fams_persisted + i]->f;
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
        ssize_t w = write(b->persist_fd, out.data + done, out.len - done);
        if (w < 0 && errno != EINTR) {
            rc = -errno;
        } else if (w > 0) {
            done += (size_t)w;
        }
    }
    if (rc == 0 && fdatasync(b->persist_fd) != 0) {
        rc = -errno;
    }
    free(defs);
    free(fams);
    kvl_buf_free(&out);
    if (rc != 0) {
        if (done > 0) {
            /* Never leave half a frame: the next attempt writes it whole. */
            off_t end = lseek(b->persist_fd, -(off_t)done, SEEK_CUR);
            if (end < 0 || ftruncate(b->persist_fd, end) != 0) {
                KVL_LOG_ERROR("batch", b->persist_path, "cannot cut a partial write: %s",
                              strerror(errno));
            }
        }
        if (!b->persist_failing) {
            KVL_LOG_ERROR("batch", b->persist_path,
                          "cannot save new series definitions: %s (retried at each flush; "
                          "batches still go out)",
                          kvl_strerror(rc));
            b->persist_failing = true;
        }
        return rc;
    }
    if (b->persist_failing) {
        KVL_LOG_INFO("batch", b->persist_path, "saving series definitions works again");
        b->persist_failing = false;
    }
    b->n_persisted = b->n_entries;
    b->n_fams_persisted = b->n_fams;
    return 0;
}

/* ----------------------------------------------------------------- samples ------------- */

void kvl_batcher_group_begin(kvl_batcher_t *b, int64_t time_ms)
{
    group_span_t g = {.time_ms = time_ms,
                      .first_id = b->ids.n,
                      .first_value = b->values.n,
                      .first_real = b->reals.n,
                      .first_unknown = b->unknown.n};
    VEC_PUSH(b, b->groups, g);
    b->in_group = true;
}

static group_span_t *cur(kvl_batcher_t *b)
{
    return b->in_group && b->groups.n ? &b->groups.v[b->groups.n - 1] : NULL;
}

void kvl_batcher_add(kvl_batcher_t *b, uint32_t id, uint64_t value)
{
    group_span_t *g = cur(b);
    if (g == NULL || id == 0) {
        return;
    }
    VEC_PUSH(b, b->ids, id);
    VEC_PUSH(b, b->values, value);
    g->n_ids++;
    g->n_values++;
}

void kvl_batcher_add_real(kvl_batcher_t *b, uint32_t id, double value)
{
    group_span_t *g = cur(b);
    if (g == NULL || id == 0) {
        return;
    }
    VEC_PUSH(b, b->ids, id);
    VEC_PUSH(b, b->reals, value);
    g->n_ids++;
    g->n_reals++;
}

void kvl_batcher_add_unknown(kvl_batcher_t *b, uint32_t id)
{
    group_span_t *g = cur(b);
    if (g == NULL || id == 0) {
        return;
    }
    VEC_PUSH(b, b->unknown, (uint32_t)g->n_ids);
    VEC_PUSH(b, b->ids, id);
    g->n_ids++;
    g->n_unknown++;
}

void kvl_batcher_group_end(kvl_batcher_t *b)
{
    group_span_t *g = cur(b);
    b->in_group = false;
    if (g != NULL && g->n_ids == 0) {
        b->groups.n--; /* nothing reported */
    }
    if (b->ids.n >= FLUSH_SAMPLES) {
        kvl_batcher_flush(b);
    }
}

void kvl_batcher_event(kvl_batcher_t *b, const kvl_event_t *ev)
{
    kvl_arena_t *a = &b->event_arena;
    kvl_event_t e = *ev;
    e.device = kvl_arena_strdup(a, ev->device);
    e.kind = kvl_arena_strdup(a, ev->kind);
    e.text = kvl_arena_strdup(a, ev->text);
    kvl_label_t *f = kvl_arena_alloc(a, sizeof(*f) * (ev->n_fields ? ev->n_fields : 1));
    if (e.device == NULL || e.kind == NULL || e.text == NULL || f == NULL) {
        oom(b);
        return;
    }
    for (size_t i = 0; i < ev->n_fields; i++) {
        f[i].key = kvl_arena_strdup(a, ev->fields[i].key);
        f[i].value = kvl_arena_strdup(a, ev->fields[i].value);
    }
    e.fields = f;
    VEC_PUSH(b, b->events, e);
}

/* ----------------------------------------------------------------- flushing ------------ */

/* For --poll-once: the definition of one id (a family's metric expanded). */
typedef struct dump_ctx {
    kvl_batcher_t *b;
    kvl_series_def_t def;
} dump_ctx_t;

static const kvl_series_def_t *lookup(void *ctx, uint32_t id)
{
    dump_ctx_t *dc = ctx;
    const entry_t *e = entry_of(dc->b, id);
    if (e == NULL) {
        return NULL;
    }
    dc->def = def_of(dc->b, e, NULL, 0);
    if (e->is_fam) {
        const fam_t *f = fam_of(dc->b, e);
        size_t i = id - e->id;
        dc->def.metric = f->f.metrics[i];
        dc->def.kind = f->f.kinds[i];
        dc->def.real = f->f.reals[i];
    }
    return &dc->def;
}

static int cmp_def_id(const void *x, const void *y)
{
    uint32_t a = ((const kvl_series_def_t *)x)->id, c = ((const kvl_series_def_t *)y)->id;
    return a < c ? -1 : a > c;
}

/* The batch's own definition covering id (it has the labels), or NULL. */
static const kvl_series_def_t *batch_def(const kvl_series_def_t *d, size_t n, uint32_t id,
                                         const dump_ctx_t *dc)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (d[mid].id <= id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0) {
        return NULL;
    }
    const kvl_series_def_t *c = &d[lo - 1];
    uint32_t width = 1;
    if (c->family != 0 && c->family <= dc->b->n_fams) {
        width = (uint32_t)dc->b->fams[c->family - 1]->f.n;
    }
    return id < c->id + width ? c : NULL;
}

static void dump_batch(kvl_batcher_t *b, const kvl_batch_t *batch)
{
    FILE *f = b->dump;
    dump_ctx_t dc = {.b = b};
    kvl_series_def_t *sorted = malloc(sizeof(*sorted) * (batch->n_defs ? batch->n_defs : 1));
    if (sorted == NULL) {
        oom(b);
        return;
    }
    memcpy(sorted, batch->defs, sizeof(*sorted) * batch->n_defs);
    qsort(sorted, batch->n_defs, sizeof(*sorted), cmp_def_id);
    for (size_t i = 0; i < batch->n_events; i++) {
        const kvl_event_t *e = &batch->events[i];
        fprintf(f, "event %" PRId64 ".%03d %s %s %s\n", e->time_ms / 1000, (int)(e->time_ms % 1000),
                e->device, e->kind, e->text);
    }
    for (size_t i = 0; i < batch->n_groups; i++) {
        const kvl_group_t *g = &batch->groups[i];
        kvl_group_iter_t it;
        kvl_sample_t s;
        kvl_group_iter_init(&it, g);
        bool first = true;
        while (kvl_group_iter_next(&it, lookup, &dc, &s) == 1) {
            if (first) {
                const kvl_series_def_t *bd = batch_def(sorted, batch->n_defs, s.id, &dc);
                if (s.def->scope == KVL_SCOPE_GROUP || s.def->scope == KVL_SCOPE_LINK) {
                    const fam_t *fam = b->fams[s.def->family - 1];
                    fprintf(f, "%" PRId64 ".%03d %s %s %s \"%s\"", g->time_ms / 1000,
                            (int)(g->time_ms % 1000), s.def->device,
                            s.def->scope == KVL_SCOPE_LINK ? "link" : "group", fam->f.name,
                            s.def->instance);
                } else {
                    fprintf(f, "%" PRId64 ".%03d %s %s \"%s\"", g->time_ms / 1000,
                            (int)(g->time_ms % 1000), s.def->device,
                            s.def->scope == KVL_SCOPE_INTERFACE ? "if" : "device", s.def->instance);
                }
                if (s.def->scope != KVL_SCOPE_DEVICE && bd != NULL) {
                    for (size_t k = 0; k < bd->n_labels; k++) {
                        fprintf(f, " %s=\"%s\"", bd->labels[k].key, bd->labels[k].value);
                    }
                }
                first = false;
            }
            if (s.unknown) {
                fprintf(f, " %s=U", s.def->metric);
            } else if (s.def->real) {
                fprintf(f, " %s=%.3f", s.def->metric, s.real);
            } else {
                fprintf(f, " %s=%" PRIu64, s.def->metric, s.value);
            }
        }
        fputc('\n', f);
    }
    fflush(f);
    free(sorted);
}

/* Numbers m's batch with its lane's next sequence number, encodes it and hands it to the
 * uplink; a batch that cannot be encoded is logged (`n` `what`) and dropped. */
static void push_batch(kvl_batcher_t *b, kvl_msg_t *m, size_t n, const char *what)
{
    m->u.batch.seq = kvl_uplink_next_seq(b->up, m->u.batch.lane);
    kvl_buf_t frame = {0};
    int rc = kvl_wire_encode(m, &frame);
    if (rc != 0) {
        KVL_LOG_ERROR("batch", NULL, "cannot encode a batch of %zu %s: %s", n, what,
                      kvl_strerror(rc));
        kvl_buf_free(&frame);
    } else {
        kvl_uplink_push(b->up, m->u.batch.lane, m->u.batch.seq, &frame);
    }
}

/* Events travel in batches of their own on the events lane (their own sequence numbers),
 * which the uplink sends ahead of any bulk backlog. */
static void flush_events(kvl_batcher_t *b)
{
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    m.u.batch =
        (kvl_batch_t){.lane = KVL_LANE_EVENTS, .events = b->events.v, .n_events = b->events.n};
    push_batch(b, &m, b->events.n, "events");
    b->events.n = 0;
    kvl_arena_free(&b->event_arena);
}

void kvl_batcher_flush(kvl_batcher_t *b)
{
    if (b->up != NULL && b->events.n > 0) {
        flush_events(b);
    }
    if (b->in_group || (b->groups.n == 0 && b->events.n == 0)) {
        return;
    }
    kvl_group_t *groups = calloc(b->groups.n ? b->groups.n : 1, sizeof(*groups));
    kvl_series_def_t *defs = calloc(b->new_defs.n ? b->new_defs.n : 1, sizeof(*defs));
    kvl_family_t *fams = calloc(b->n_fams ? b->n_fams : 1, sizeof(*fams));
    if (groups == NULL || defs == NULL || fams == NULL) {
        free(groups);
        free(defs);
        free(fams);
        oom(b);
        return;
    }
    for (size_t i = 0; i < b->groups.n; i++) {
        const group_span_t *s = &b->groups.v[i];
        groups[i] = (kvl_group_t){
            .time_ms = s->time_ms,
            .ids = b->ids.v + s->first_id,
            .n_ids = s->n_ids,
            .values = b->values.v + s->first_value,
            .n_values = s->n_values,
            .reals = b->reals.v + s->first_real,
            .n_reals = s->n_reals,
            .unknown = b->unknown.v + s->first_unknown,
            .n_unknown = s->n_unknown,
        };
    }
    /* Every family a new definition names goes along (they are few and small). */
    size_t nd = 0, nf = 0;
    for (size_t i = 0; i < b->new_defs.n; i++) {
        const new_def_t *n = &b->new_defs.v[i];
        const entry_t *e = &b->entries[n->entry];
        defs[nd++] = def_of(b, e, n->labels, n->n_labels);
        if (e->is_fam) {
            bool have = false;
            for (size_t k = 0; k < nf && !have; k++) {
                have = fams[k].id == e->what;
            }
            if (!have) {
                fams[nf++] = fam_of(b, e)->f;
            }
        }
    }
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    m.u.batch = (kvl_batch_t){.defs = defs,
                              .n_defs = nd,
                              .families = fams,
                              .n_families = nf,
                              .groups = groups,
                              .n_groups = b->groups.n,
                              .events = b->events.v,
                              .n_events = b->events.n};
    if (b->up != NULL) {
        persist_new(b); /* the definitions are on disk before the batch using them */
        push_batch(b, &m, b->groups.n, "groups");
    } else if (b->dump != NULL) {
        dump_batch(b, &m.u.batch);
    }
    free(groups);
    free(defs);
    free(fams);
    kvl_arena_free(&b->pending);
    b->groups.n = b->ids.n = b->values.n = b->reals.n = b->unknown.n = 0;
    b->new_defs.n = b->events.n = 0;
    kvl_arena_free(&b->event_arena);
}
