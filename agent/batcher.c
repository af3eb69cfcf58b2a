/*
 * batcher.c — series registry and batch assembly for the agent (see batcher.h).
 *
 * Series live in an array indexed by id-1 with an open-addressing hash over their key
 * (device, scope, instance, metric) for lookups. The open batch keeps samples in flat
 * arrays with per-group offsets; at flush it is turned into a kvl_batch_t that points into
 * those arrays, encoded once, and its bytes handed to the uplink (or, in --poll-once mode,
 * printed). Definitions ride in the first batch that uses them; the uplink also sends the
 * full set at the start of every connection.
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

typedef struct series {
    kvl_series_def_t def; /* strings owned: device, instance, metric, labels */
    char *key;
    bool announced; /* definition already placed in a batch */
} series_t;

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

    series_t *series;
    size_t n_series, cap_series;
    uint32_t *slots;        /* hash: 0 = empty, else id */
    kvl_series_def_t *view; /* kvl_batcher_all_defs' answer */
    size_t view_cap;
    size_t n_slots;

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
    for (size_t i = 0; i < b->n_series; i++) {
        series_t *s = &b->series[i];
        free((char *)s->def.device);
        free((char *)s->def.instance);
        free((char *)s->def.metric);
        for (size_t k = 0; k < s->def.n_labels; k++) {
            free((char *)s->def.labels[k].key);
            free((char *)s->def.labels[k].value);
        }
        free((kvl_label_t *)s->def.labels);
        free(s->key);
    }
    free(b->series);
    free(b->slots);
    free(b->view);
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

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

static char *make_key(const kvl_series_key_t *k)
{
    size_t n = strlen(k->device) + strlen(k->instance ? k->instance : "") + strlen(k->metric) + 16;
    char *key = malloc(n);
    if (key != NULL) {
        snprintf(key, n, "%s\x1f%d\x1f%s\x1f%s", k->device, (int)k->scope,
                 k->instance ? k->instance : "", k->metric);
    }
    return key;
}

static int rehash(kvl_batcher_t *b, size_t n_slots)
{
    uint32_t *slots = calloc(n_slots, sizeof(*slots));
    if (slots == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < b->n_series; i++) {
        size_t pos = hash_str(b->series[i].key) & (n_slots - 1);
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

static bool labels_equal(const kvl_series_def_t *d, const kvl_series_key_t *k)
{
    if (d->n_labels != k->n_labels) {
        return false;
    }
    for (size_t i = 0; i < k->n_labels; i++) {
        if (strcmp(d->labels[i].key, k->labels[i].key) != 0 ||
            strcmp(d->labels[i].value, k->labels[i].value ? k->labels[i].value : "") != 0) {
            return false;
        }
    }
    return true;
}

static int copy_labels(kvl_series_def_t *d, const kvl_series_key_t *k)
{
    kvl_label_t *l = calloc(k->n_labels ? k->n_labels : 1, sizeof(*l));
    if (l == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < k->n_labels; i++) {
        l[i].key = strdup(k->labels[i].key);
        l[i].value = strdup(k->labels[i].value ? k->labels[i].value : "");
    }
    for (size_t i = 0; i < d->n_labels; i++) {
        free((char *)d->labels[i].key);
        free((char *)d->labels[i].value);
    }
    free((kvl_label_t *)d->labels);
    d->labels = l;
    d->n_labels = k->n_labels;
    return 0;
}

uint32_t kvl_batcher_series(kvl_batcher_t *b, const kvl_series_key_t *k)
{
    char *key = make_key(k);
    if (key == NULL) {
        oom(b);
        return 0;
    }
    if (b->n_slots) {
        size_t pos = hash_str(key) & (b->n_slots - 1);
        while (b->slots[pos] != 0) {
            series_t *s = &b->series[b->slots[pos] - 1];
            if (strcmp(s->key, key) == 0) {
                free(key);
                if (!labels_equal(&s->def, k) || s->def.interval_s != k->interval_s ||
                    s->def.kind != k->kind || s->def.real != k->real) {
                    copy_labels(&s->def, k);
                    s->def.interval_s = k->interval_s;
                    s->def.kind = k->kind;
                    s->def.real = k->real;
                    if (s->announced) {
                        s->announced = false;
                        VEC_PUSH(b, b->new_defs, s->def.id);
                    }
                }
                return s->def.id;
            }
            pos = (pos + 1) & (b->n_slots - 1);
        }
    }
    if (b->n_series == b->cap_series) {
        size_t cap = b->cap_series ? b->cap_series * 2 : 256;
        series_t *ns = realloc(b->series, cap * sizeof(*ns));
        if (ns == NULL) {
            free(key);
            oom(b);
            return 0;
        }
        b->series = ns;
        b->cap_series = cap;
    }
    series_t *s = &b->series[b->n_series];
    memset(s, 0, sizeof(*s));
    s->key = key;
    s->def.id = (uint32_t)(b->n_series + 1);
    s->def.device = strdup(k->device);
    s->def.scope = k->scope;
    s->def.instance = strdup(k->instance ? k->instance : "");
    s->def.metric = strdup(k->metric);
    s->def.kind = k->kind;
    s->def.interval_s = k->interval_s;
    s->def.real = k->real;
    if (s->def.device == NULL || s->def.instance == NULL || s->def.metric == NULL ||
        copy_labels(&s->def, k) != 0) {
        oom(b);
        return 0;
    }
    b->n_series++;
    if (b->n_series * 2 > b->n_slots) {
        if (rehash(b, b->n_slots ? b->n_slots * 2 : 1024) != 0) {
            b->n_series--;
            oom(b);
            return 0;
        }
    } else {
        size_t pos = hash_str(key) & (b->n_slots - 1);
        while (b->slots[pos] != 0) {
            pos = (pos + 1) & (b->n_slots - 1);
        }
        b->slots[pos] = s->def.id;
    }
    VEC_PUSH(b, b->new_defs, s->def.id);
    return s->def.id;
}

void kvl_batcher_all_defs(kvl_batcher_t *b, const kvl_series_def_t **defs, size_t *n)
{
    /* The registry is an array of series_t; hand out a contiguous copy of the defs. */
    if (b->view_cap < b->n_series) {
        kvl_series_def_t *nv = realloc(b->view, b->n_series * sizeof(*nv));
        if (nv == NULL) {
            oom(b);
            *defs = NULL;
            *n = 0;
            return;
        }
        b->view = nv;
        b->view_cap = b->n_series;
    }
    for (size_t i = 0; i < b->n_series; i++) {
        b->view[i] = b->series[i].def;
    }
    *defs = b->view;
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
    return id >= 1 && id <= b->n_series ? &b->series[id - 1].def : NULL;
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
        series_t *s = &b->series[b->new_defs.v[i] - 1];
        if (!s->announced) {
            defs[nd++] = s->def;
            s->announced = true;
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
