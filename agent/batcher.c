/*
 * batcher.c — series registry and batch assembly for the agent (see batcher.h).
 *
 * Series definitions live in an array indexed by id-1, with an open-addressing hash over
 * their identity (device, scope, instance, metric) for lookups. Every string and label set
 * is interned once, so a definition is a few pointers and identity compares by pointer. The open
 * batch keeps samples in flat arrays with per-group offsets; at flush it is turned into a
 * kvl_batch_t that points into those arrays, encoded once, and its bytes handed to the uplink (or,
 * in --poll-once mode, printed). Definitions ride in the first batch that uses them; the uplink
 * also sends the full set at the start of every connection.
 */
#include "batcher.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvl.h"
#include "log.h"
#include "uplink.h"

#define FLUSH_SAMPLES 20000 /* flush early when a batch holds this many samples */

/* Interned strings and label sets: each distinct one is stored once, in the arena, and
 * compared by pointer. An interface's 15 series then share one device name, one interface
 * name and one label set instead of holding copies. */
typedef struct intern {
    const void **slots; /* strings or label sets; NULL = empty */
    size_t n, cap;
} intern_t;

typedef struct label_set {
    size_t n;
    kvl_label_t labels[]; /* interned keys and values */
} label_set_t;

typedef struct group_span {
    int64_t time_ms;
    size_t first_id, n_ids;
    size_t first_value, n_values;
    size_t first_real, n_reals;
    size_t first_unknown, n_unknown;
} group_span_t;

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

    kvl_series_def_t *defs; /* index = id - 1; strings and labels interned */
    uint8_t *announced;     /* definition already placed in a batch */
    size_t n_series, cap_series;
    uint32_t *slots; /* hash over (device, scope, instance, metric): 0 = empty, else id */
    size_t n_slots;
    kvl_arena_t names; /* interned strings and label sets */
    intern_t strings, label_sets;

    VEC(group_span_t) groups;
    VEC(uint32_t) ids;
    VEC(uint64_t) values;
    VEC(double) reals;
    VEC(uint32_t) unknown;
    VEC(uint32_t) new_defs;
    VEC(kvl_event_t) events;
    kvl_arena_t event_arena;
    bool in_group;
    bool oom_logged;
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
    free(b->defs);
    free(b->announced);
    free(b->slots);
    free(b->strings.slots);
    free(b->label_sets.slots);
    kvl_arena_free(&b->names);
    free(b->groups.v);
    free(b->ids.v);
    free(b->values.v);
    free(b->reals.v);
    free(b->unknown.v);
    free(b->new_defs.v);
    free(b->events.v);
    kvl_arena_free(&b->event_arena);
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

static uint64_t hash_label_set(const kvl_label_t *l, size_t n)
{
    uint64_t h = hash_bytes(HASH_SEED, &n, sizeof(n));
    for (size_t i = 0; i < n; i++) {
        h = hash_bytes(h, &l[i].key, sizeof(l[i].key));
        h = hash_bytes(h, &l[i].value, sizeof(l[i].value));
    }
    return h;
}

/* Grows an intern table; `hash` recomputes an entry's hash. */
static int intern_grow(intern_t *t, uint64_t (*hash)(const void *))
{
    size_t cap = t->cap ? t->cap * 2 : 256;
    const void **slots = calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < t->cap; i++) {
        if (t->slots[i] != NULL) {
            size_t pos = hash(t->slots[i]) & (cap - 1);
            while (slots[pos] != NULL) {
                pos = (pos + 1) & (cap - 1);
            }
            slots[pos] = t->slots[i];
        }
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 0;
}

static uint64_t hash_string_entry(const void *e)
{
    return hash_bytes(HASH_SEED, e, strlen(e));
}

static uint64_t hash_set_entry(const void *e)
{
    const label_set_t *ls = e;
    return hash_label_set(ls->labels, ls->n);
}

/* Returns the interned copy of s, or NULL when out of memory. */
static const char *intern_str(kvl_batcher_t *b, const char *s)
{
    intern_t *t = &b->strings;
    if (s == NULL) {
        s = "";
    }
    if ((t->n + 1) * 2 > t->cap && intern_grow(t, hash_string_entry) != 0) {
        return NULL;
    }
    size_t pos = hash_bytes(HASH_SEED, s, strlen(s)) & (t->cap - 1);
    while (t->slots[pos] != NULL) {
        if (strcmp(t->slots[pos], s) == 0) {
            return t->slots[pos];
        }
        pos = (pos + 1) & (t->cap - 1);
    }
    char *copy = kvl_arena_strdup(&b->names, s);
    if (copy != NULL) {
        t->slots[pos] = copy;
        t->n++;
    }
    return copy;
}

/* Returns the interned label set equal to l[0..n), or NULL when out of memory. */
static const label_set_t *intern_labels(kvl_batcher_t *b, const kvl_label_t *l, size_t n)
{
    kvl_label_t tmp[32]; /* labels beyond 32 per series are dropped */
    if (n > KVL_ARRAY_SIZE(tmp)) {
        n = KVL_ARRAY_SIZE(tmp);
    }
    for (size_t i = 0; i < n; i++) {
        tmp[i].key = intern_str(b, l[i].key);
        tmp[i].value = intern_str(b, l[i].value);
        if (tmp[i].key == NULL || tmp[i].value == NULL) {
            return NULL;
        }
    }
    intern_t *t = &b->label_sets;
    if ((t->n + 1) * 2 > t->cap && intern_grow(t, hash_set_entry) != 0) {
        return NULL;
    }
    size_t pos = hash_label_set(tmp, n) & (t->cap - 1);
    while (t->slots[pos] != NULL) {
        const label_set_t *ls = t->slots[pos];
        if (ls->n == n && memcmp(ls->labels, tmp, n * sizeof(*tmp)) == 0) {
            return ls;
        }
        pos = (pos + 1) & (t->cap - 1);
    }
    label_set_t *ls = kvl_arena_alloc(&b->names, sizeof(*ls) + n * sizeof(kvl_label_t));
    if (ls != NULL) {
        ls->n = n;
        memcpy(ls->labels, tmp, n * sizeof(*tmp));
        t->slots[pos] = ls;
        t->n++;
    }
    return ls;
}

/* Identity of a series: its interned device, instance and metric pointers and its scope. */
static uint64_t hash_identity(const char *device, kvl_scope_t scope, const char *instance,
                              const char *metric)
{
    uint64_t h = hash_bytes(HASH_SEED, &device, sizeof(device));
    h = hash_bytes(h, &scope, sizeof(scope));
    h = hash_bytes(h, &instance, sizeof(instance));
    return hash_bytes(h, &metric, sizeof(metric));
}

static uint64_t hash_def(const kvl_series_def_t *d)
{
    return hash_identity(d->device, d->scope, d->instance, d->metric);
}

static int rehash(kvl_batcher_t *b, size_t n_slots)
{
    uint32_t *slots = calloc(n_slots, sizeof(*slots));
    if (slots == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < b->n_series; i++) {
        size_t pos = hash_def(&b->defs[i]) & (n_slots - 1);
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

static void announce(kvl_batcher_t *b, uint32_t id)
{
    b->announced[id - 1] = 0;
    VEC_PUSH(b, b->new_defs, id);
}

uint32_t kvl_batcher_series(kvl_batcher_t *b, const kvl_series_key_t *k)
{
    const char *device = intern_str(b, k->device);
    const char *instance = intern_str(b, k->instance);
    const char *metric = intern_str(b, k->metric);
    const label_set_t *ls = intern_labels(b, k->labels, k->n_labels);
    if (device == NULL || instance == NULL || metric == NULL || ls == NULL) {
        oom(b);
        return 0;
    }
    uint64_t h = hash_identity(device, k->scope, instance, metric);
    if (b->n_slots) {
        size_t pos = h & (b->n_slots - 1);
        while (b->slots[pos] != 0) {
            kvl_series_def_t *d = &b->defs[b->slots[pos] - 1];
            if (d->device == device && d->scope == k->scope && d->instance == instance &&
                d->metric == metric) {
                if (d->labels != ls->labels || d->interval_s != k->interval_s ||
                    d->kind != k->kind || d->real != k->real) {
                    d->labels = ls->labels;
                    d->n_labels = ls->n;
                    d->interval_s = k->interval_s;
                    d->kind = k->kind;
                    d->real = k->real;
                    if (b->announced[d->id - 1]) {
                        announce(b, d->id); /* changed: send the definition again */
                    }
                }
                return d->id;
            }
            pos = (pos + 1) & (b->n_slots - 1);
        }
    }
    if (b->n_series == b->cap_series) {
        size_t cap = b->cap_series ? b->cap_series * 2 : 256;
        kvl_series_def_t *nd = realloc(b->defs, cap * sizeof(*nd));
        if (nd == NULL) {
            oom(b);
            return 0;
        }
        b->defs = nd;
        uint8_t *na = realloc(b->announced, cap);
        if (na == NULL) {
            oom(b);
            return 0;
        }
        b->announced = na;
        b->cap_series = cap;
    }
    uint32_t id = (uint32_t)(b->n_series + 1);
    b->defs[id - 1] = (kvl_series_def_t){.id = id,
                                         .device = device,
                                         .scope = k->scope,
                                         .instance = instance,
                                         .metric = metric,
                                         .kind = k->kind,
                                         .interval_s = k->interval_s,
                                         .real = k->real,
                                         .labels = ls->labels,
                                         .n_labels = ls->n};
    b->n_series++;
    if (b->n_series * 2 > b->n_slots) {
        if (rehash(b, b->n_slots ? b->n_slots * 2 : 1024) != 0) {
            b->n_series--;
            oom(b);
            return 0;
        }
    } else {
        size_t pos = h & (b->n_slots - 1);
        while (b->slots[pos] != 0) {
            pos = (pos + 1) & (b->n_slots - 1);
        }
        b->slots[pos] = id;
    }
    announce(b, id);
    return id;
}

uint32_t kvl_batcher_instance(kvl_batcher_t *b, const kvl_instance_key_t *k)
{
    const kvl_family_t *f = k->family;
    uint32_t first = 0;
    for (size_t i = 0; i < f->n; i++) {
        kvl_series_key_t sk = {.device = k->device,
                               .scope = k->scope,
                               .instance = k->instance,
                               .metric = f->metrics[i],
                               .kind = f->kinds[i],
                               .interval_s = k->interval_s,
                               .real = f->reals[i],
                               .labels = k->labels,
                               .n_labels = k->n_labels};
        uint32_t id = kvl_batcher_series(b, &sk);
        if (id == 0 || (i > 0 && id != first + i)) {
            oom(b);
            return 0;
        }
        if (i == 0) {
            first = id;
        }
    }
    return first;
}

void kvl_batcher_all_defs(kvl_batcher_t *b, const kvl_series_def_t **defs, size_t *n)
{
    *defs = b->defs;
    *n = b->n_series;
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

static const kvl_series_def_t *lookup(void *ctx, uint32_t id)
{
    kvl_batcher_t *b = ctx;
    return id >= 1 && id <= b->n_series ? &b->defs[id - 1] : NULL;
}

static void dump_batch(kvl_batcher_t *b, const kvl_batch_t *batch)
{
    FILE *f = b->dump;
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
        while (kvl_group_iter_next(&it, lookup, b, &s) == 1) {
            if (first) {
                fprintf(f, "%" PRId64 ".%03d %s %s \"%s\"", g->time_ms / 1000,
                        (int)(g->time_ms % 1000), s.def->device,
                        s.def->scope == KVL_SCOPE_INTERFACE ? "if" : "device", s.def->instance);
                if (s.def->scope == KVL_SCOPE_INTERFACE) {
                    for (size_t k = 0; k < s.def->n_labels; k++) {
                        fprintf(f, " %s=\"%s\"", s.def->labels[k].key, s.def->labels[k].value);
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
}

void kvl_batcher_flush(kvl_batcher_t *b)
{
    if (b->in_group || (b->groups.n == 0 && b->events.n == 0)) {
        return;
    }
    kvl_group_t *groups = calloc(b->groups.n ? b->groups.n : 1, sizeof(*groups));
    kvl_series_def_t *defs = calloc(b->new_defs.n ? b->new_defs.n : 1, sizeof(*defs));
    if (groups == NULL || defs == NULL) {
        free(groups);
        free(defs);
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
    size_t nd = 0;
    for (size_t i = 0; i < b->new_defs.n; i++) {
        uint32_t id = b->new_defs.v[i];
        if (!b->announced[id - 1]) {
            defs[nd++] = b->defs[id - 1];
            b->announced[id - 1] = 1;
        }
    }
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    m.u.batch = (kvl_batch_t){.defs = defs,
                              .n_defs = nd,
                              .groups = groups,
                              .n_groups = b->groups.n,
                              .events = b->events.v,
                              .n_events = b->events.n};
    if (b->up != NULL) {
        m.u.batch.seq = kvl_uplink_next_seq(b->up);
        kvl_buf_t frame = {0};
        int rc = kvl_wire_encode(&m, &frame);
        if (rc != 0) {
            KVL_LOG_ERROR("batch", NULL, "cannot encode a batch of %zu groups: %s", b->groups.n,
                          kvl_strerror(rc));
            kvl_buf_free(&frame);
        } else {
            kvl_uplink_push(b->up, m.u.batch.seq, &frame);
        }
    } else if (b->dump != NULL) {
        dump_batch(b, &m.u.batch);
    }
    free(groups);
    free(defs);
    b->groups.n = b->ids.n = b->values.n = b->reals.n = b->unknown.n = 0;
    b->new_defs.n = b->events.n = 0;
    kvl_arena_free(&b->event_arena);
}
