/*
 * batcher.c — batch assembly for the agent (see batcher.h).
 *
 * The open batch keeps samples in flat arrays with per-group offsets; at flush it is turned
 * into a kvl_batch_t that points into those arrays, together with the definitions the
 * registry (registry.h) has waiting, encoded once, and its frame appended to the outbox (or,
 * in --poll-once mode, printed). Definitions ride in the first batch that uses them; the
 * uplink also sends the full set at the start of every connection.
 */
#include "batcher.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kvl.h"
#include "log.h"

#define FLUSH_SAMPLES 20000 /* flush early when a batch holds this many samples */

typedef struct group_span {
    int64_t time_ms;
    size_t first_id, n_ids;
    size_t first_value, n_values;
    size_t first_real, n_reals;
    size_t first_unknown, n_unknown;
    bool later; /* of a later scope (wire.h): the wire's later_groups */
} group_span_t;

struct kvl_batcher {
    uv_loop_t *loop;
    kvl_registry_t *reg;
    kvl_outbox_t *outbox; /* NULL: --poll-once, batches printed to dump */
    FILE *dump;
    uv_timer_t timer;
    uv_timer_t events_timer; /* an event goes out at the next turn of the loop, not at flush */
    int closing;             /* timers whose close has not called back yet (kvl_batcher_free) */
    int64_t flush_ms;

    KVL_VEC(group_span_t) groups;
    KVL_VEC(uint32_t) ids;
    KVL_VEC(uint64_t) values;
    KVL_VEC(double) reals;
    KVL_VEC(uint32_t) unknown;
    KVL_VEC(kvl_event_t) events;
    kvl_arena_t event_arena;
    bool in_group;
    bool oom_logged;
};

#define VEC_PUSH(o, vec, val) KVL_VEC_PUSH(vec, val, oom(o))

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

static void flush_events(kvl_batcher_t *b);

/* Events are news: they leave on the events lane as soon as the loop comes round, all those
 * queued in the same turn in one batch (a trap flood makes batches, not a batch per trap). */
static void on_events_timer(uv_timer_t *t)
{
    kvl_batcher_t *b = t->data;
    if (b->outbox != NULL && b->events.n > 0) {
        flush_events(b);
    }
}

int kvl_batcher_new(uv_loop_t *loop, kvl_registry_t *reg, kvl_outbox_t *outbox, int64_t flush_ms,
                    kvl_batcher_t **out, char *err, size_t errlen)
{
    kvl_batcher_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    b->loop = loop;
    b->reg = reg;
    b->outbox = outbox;
    b->flush_ms = flush_ms > 0 ? flush_ms : 1000;
    uv_timer_init(loop, &b->timer);
    b->timer.data = b;
    uv_timer_start(&b->timer, on_flush_timer, (uint64_t)b->flush_ms, (uint64_t)b->flush_ms);
    uv_timer_init(loop, &b->events_timer);
    b->events_timer.data = b;
    *out = b;
    return 0;
}

void kvl_batcher_set_dump(kvl_batcher_t *b, FILE *f)
{
    b->dump = f;
}

/* Both timers' close callback: the last of the two to close frees b (libuv runs close
 * callbacks newest first, so neither may assume it is the last). */
static void on_timer_closed(uv_handle_t *h)
{
    kvl_batcher_t *b = h->data;
    if (--b->closing > 0) {
        return;
    }
    free(b->groups.v);
    free(b->ids.v);
    free(b->values.v);
    free(b->reals.v);
    free(b->unknown.v);
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
    b->closing = 2;
    uv_close((uv_handle_t *)&b->events_timer, on_timer_closed);
    uv_close((uv_handle_t *)&b->timer, on_timer_closed);
}

/* ----------------------------------------------------------------- registry ------------ */

uint32_t kvl_batcher_series(kvl_batcher_t *b, const kvl_series_key_t *key)
{
    return kvl_registry_series(b->reg, key);
}

uint32_t kvl_batcher_instance(kvl_batcher_t *b, const kvl_instance_key_t *key)
{
    return kvl_registry_instance(b->reg, key);
}

const char *kvl_batcher_intern(kvl_batcher_t *b, const char *s)
{
    return kvl_registry_intern(b->reg, s);
}

const char *kvl_batcher_instance_of(const kvl_batcher_t *b, uint32_t id)
{
    return kvl_registry_instance_of(b->reg, id);
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
    } else if (g != NULL) {
        /* A group holds one instance's series, so its first id tells the scope. */
        g->later = kvl_registry_scope_of(b->reg, b->ids.v[g->first_id]) >= KVL_SCOPE_FIRST_LATER;
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
    if (b->outbox != NULL && !uv_is_active((uv_handle_t *)&b->events_timer)) {
        uv_timer_start(&b->events_timer, on_events_timer, 0, 0);
    }
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
    return kvl_registry_lookup(dc->b->reg, id, &dc->def) ? &dc->def : NULL;
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
    const kvl_family_t *fam = kvl_registry_family(dc->b->reg, c->family);
    if (fam != NULL) {
        width = (uint32_t)fam->n;
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
                if (s.def->scope == KVL_SCOPE_NEIGHBOUR) {
                    fprintf(f, "%" PRId64 ".%03d %s neighbour \"%s\"", g->time_ms / 1000,
                            (int)(g->time_ms % 1000), s.def->device, s.def->instance);
                } else if (s.def->scope == KVL_SCOPE_GROUP || s.def->scope == KVL_SCOPE_LINK) {
                    const kvl_family_t *fam = kvl_registry_family(b->reg, s.def->family);
                    fprintf(f, "%" PRId64 ".%03d %s %s %s \"%s\"", g->time_ms / 1000,
                            (int)(g->time_ms % 1000), s.def->device,
                            s.def->scope == KVL_SCOPE_LINK ? "link" : "group", fam->name,
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

/* Numbers m's batch with its lane's next sequence number, encodes it and appends it to the
 * outbox (which tells the uplink); a batch that cannot be encoded or queued is logged (`n`
 * `what`) and dropped. */
static void push_batch(kvl_batcher_t *b, kvl_msg_t *m, size_t n, const char *what)
{
    int lane = m->u.batch.lane;
    uint64_t seq = m->u.batch.seq = kvl_outbox_next_seq(b->outbox, lane);
    kvl_buf_t frame = {0};
    int rc = kvl_wire_encode(m, &frame);
    if (rc != 0) {
        KVL_LOG_ERROR("batch", NULL, "cannot encode a batch of %zu %s: %s", n, what,
                      kvl_strerror(rc));
        kvl_buf_free(&frame);
        return;
    }
    size_t len = frame.len;
    rc = kvl_outbox_append(b->outbox, lane, seq, frame.data, frame.len);
    kvl_buf_free(&frame);
    if (rc != 0) {
        KVL_LOG_ERROR("uplink", NULL, "batch %" PRIu64 " (%s lane) lost: cannot queue it: %s", seq,
                      lane == KVL_LANE_EVENTS ? "events" : "bulk", kvl_strerror(rc));
    } else {
        KVL_LOG_DEBUG("uplink", NULL, "batch %" PRIu64 " lane %d queued (%zu bytes)", seq, lane,
                      len);
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
    if (b->outbox != NULL && b->events.n > 0) {
        flush_events(b);
    }
    if (b->in_group || (b->groups.n == 0 && b->events.n == 0)) {
        return;
    }
    kvl_group_t *groups = calloc(b->groups.n ? b->groups.n : 1, sizeof(*groups));
    if (groups == NULL) {
        oom(b);
        return;
    }
    kvl_registry_new_t nw;
    if (kvl_registry_take_new(b->reg, &nw) != 0) {
        free(groups);
        return;
    }
    for (size_t i = 0; i < b->groups.n; i++) {
        const group_span_t *s = &b->groups.v[i];
        groups[i] = (kvl_group_t){
            .time_ms = s->time_ms,
            /* An empty vector has no storage yet (NULL): no pointer arithmetic on it. */
            .ids = s->n_ids ? b->ids.v + s->first_id : NULL,
            .n_ids = s->n_ids,
            .values = s->n_values ? b->values.v + s->first_value : NULL,
            .n_values = s->n_values,
            .reals = s->n_reals ? b->reals.v + s->first_real : NULL,
            .n_reals = s->n_reals,
            .unknown = s->n_unknown ? b->unknown.v + s->first_unknown : NULL,
            .n_unknown = s->n_unknown,
            .later = s->later,
        };
    }
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    m.u.batch = (kvl_batch_t){.defs = nw.defs,
                              .n_defs = nw.n_defs,
                              .families = nw.families,
                              .n_families = nw.n_families,
                              .groups = groups,
                              .n_groups = b->groups.n,
                              .events = b->events.v,
                              .n_events = b->events.n};
    if (b->outbox != NULL) {
        kvl_registry_save(b->reg); /* the definitions are on disk before the batch using them */
        push_batch(b, &m, b->groups.n, "groups");
    } else if (b->dump != NULL) {
        dump_batch(b, &m.u.batch);
    }
    free(groups);
    kvl_registry_new_free(&nw);
    kvl_registry_sent(b->reg);
    b->groups.n = b->ids.n = b->values.n = b->reals.n = b->unknown.n = 0;
    b->events.n = 0;
    kvl_arena_free(&b->event_arena);
}
