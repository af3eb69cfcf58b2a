/*
 * wire.c — encode and decode agent<->collector messages (see wire.h).
 *
 * The only file that includes the protoc-c output. Encoding builds the generated structs
 * on a scratch arena, packs them after a frame header, and frees the scratch. Decoding
 * unpacks with protobuf-c, copies into kaaval's types on the message's arena, checks what
 * protobuf cannot (array sizes that must agree, ids that must fit), and frees the unpacked
 * tree in the same function.
 */
#include "wire.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "frame.h"
#include "kaaval.pb-c.h"
#include "kvl.h"

typedef Kaaval__V1__Envelope pb_env_t;

/* ---------------------------------------------------------------- encoding ------------- */

#define NEW(a, type, n) ((type *)kvl_arena_alloc((a), sizeof(type) * ((n) ? (n) : 1)))

static Kaaval__V1__Label **labels_to_pb(kvl_arena_t *a, const kvl_label_t *l, size_t n)
{
    Kaaval__V1__Label **out = NEW(a, Kaaval__V1__Label *, n);
    Kaaval__V1__Label *items = NEW(a, Kaaval__V1__Label, n);
    if (out == NULL || items == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        kaaval__v1__label__init(&items[i]);
        items[i].key = (char *)(l[i].key ? l[i].key : "");
        items[i].value = (char *)(l[i].value ? l[i].value : "");
        out[i] = &items[i];
    }
    return out;
}

/* The definitions of d of later scopes (later true) or of the others, as protobuf; *n_out
 * how many. NULL when out of memory. */
static Kaaval__V1__SeriesDef **defs_to_pb(kvl_arena_t *a, const kvl_series_def_t *d, size_t n,
                                          bool later, size_t *n_out)
{
    Kaaval__V1__SeriesDef **out = NEW(a, Kaaval__V1__SeriesDef *, n);
    Kaaval__V1__SeriesDef *items = NEW(a, Kaaval__V1__SeriesDef, n);
    if (out == NULL || items == NULL) {
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if ((d[i].scope >= KVL_SCOPE_FIRST_LATER) != later) {
            continue;
        }
        Kaaval__V1__SeriesDef *p = &items[k];
        kaaval__v1__series_def__init(p);
        p->id = d[i].id;
        p->device = (char *)(d[i].device ? d[i].device : "");
        p->scope = (Kaaval__V1__Scope)d[i].scope;
        p->instance = (char *)(d[i].instance ? d[i].instance : "");
        p->metric = (char *)(d[i].metric ? d[i].metric : "");
        p->kind = (Kaaval__V1__Kind)d[i].kind;
        p->interval_s = d[i].interval_s;
        p->real = d[i].real;
        p->family = d[i].family;
        p->n_labels = d[i].n_labels;
        p->labels = labels_to_pb(a, d[i].labels, d[i].n_labels);
        if (p->labels == NULL) {
            return NULL;
        }
        out[k++] = p;
    }
    *n_out = k;
    return out;
}

static Kaaval__V1__Family **families_to_pb(kvl_arena_t *a, const kvl_family_t *f, size_t n)
{
    Kaaval__V1__Family **out = NEW(a, Kaaval__V1__Family *, n);
    Kaaval__V1__Family *items = NEW(a, Kaaval__V1__Family, n);
    if (out == NULL || items == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        Kaaval__V1__Family *p = &items[i];
        kaaval__v1__family__init(p);
        p->id = f[i].id;
        p->name = (char *)(f[i].name ? f[i].name : "");
        p->n_metrics = f[i].n;
        p->metrics = (char **)f[i].metrics;
        p->n_kinds = f[i].n;
        p->kinds = NEW(a, Kaaval__V1__Kind, f[i].n);
        if (p->kinds == NULL) {
            return NULL;
        }
        for (size_t k = 0; k < f[i].n; k++) {
            p->kinds[k] = (Kaaval__V1__Kind)f[i].kinds[k];
        }
        if (f[i].reals != NULL) {
            p->n_reals = f[i].n;
            p->reals = (protobuf_c_boolean *)NEW(a, protobuf_c_boolean, f[i].n);
            if (p->reals == NULL) {
                return NULL;
            }
            for (size_t k = 0; k < f[i].n; k++) {
                p->reals[k] = f[i].reals[k];
            }
        }
        out[i] = p;
    }
    return out;
}

static int batch_to_pb(kvl_arena_t *a, const kvl_batch_t *b, Kaaval__V1__Batch *p)
{
    kaaval__v1__batch__init(p);
    p->seq = b->seq;
    p->lane = b->lane;
    int64_t base = b->n_groups ? b->groups[0].time_ms : 0;
    p->base_time_ms = base;
    if ((p->defs = defs_to_pb(a, b->defs, b->n_defs, false, &p->n_defs)) == NULL ||
        (p->later_defs = defs_to_pb(a, b->defs, b->n_defs, true, &p->n_later_defs)) == NULL) {
        return KVL_ENOMEM;
    }
    p->n_families = b->n_families;
    if ((p->families = families_to_pb(a, b->families, b->n_families)) == NULL) {
        return KVL_ENOMEM;
    }
    p->groups = NEW(a, Kaaval__V1__Group *, b->n_groups);
    p->later_groups = NEW(a, Kaaval__V1__Group *, b->n_groups);
    Kaaval__V1__Group *gs = NEW(a, Kaaval__V1__Group, b->n_groups);
    if (p->groups == NULL || p->later_groups == NULL || gs == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < b->n_groups; i++) {
        const kvl_group_t *g = &b->groups[i];
        Kaaval__V1__Group *q = &gs[i];
        kaaval__v1__group__init(q);
        if (g->n_values + g->n_reals + g->n_unknown != g->n_ids) {
            return KVL_EINVAL;
        }
        /* Times and ids the decoder would refuse are refused here, or the batch could
         * never be delivered. */
        if (__builtin_sub_overflow(g->time_ms, base, &q->t_offset_ms)) {
            return KVL_EINVAL;
        }
        q->n_id_deltas = g->n_ids;
        q->id_deltas = NEW(a, int32_t, g->n_ids);
        if (q->id_deltas == NULL) {
            return KVL_ENOMEM;
        }
        uint32_t prev = 0;
        for (size_t k = 0; k < g->n_ids; k++) {
            int64_t delta = (int64_t)g->ids[k] - (int64_t)prev;
            if (g->ids[k] == 0 || delta < INT32_MIN || delta > INT32_MAX) {
                return KVL_EINVAL;
            }
            q->id_deltas[k] = (int32_t)delta;
            prev = g->ids[k];
        }
        for (size_t k = 0; k < g->n_unknown; k++) {
            if (g->unknown[k] >= g->n_ids || (k > 0 && g->unknown[k] <= g->unknown[k - 1])) {
                return KVL_EINVAL;
            }
        }
        q->n_values = g->n_values;
        q->values = (uint64_t *)g->values;
        q->n_reals = g->n_reals;
        q->reals = (double *)g->reals;
        q->n_unknown = g->n_unknown;
        q->unknown = (uint32_t *)g->unknown;
        if (g->later) {
            p->later_groups[p->n_later_groups++] = q;
        } else {
            p->groups[p->n_groups++] = q;
        }
    }
    p->n_events = b->n_events;
    p->events = NEW(a, Kaaval__V1__Event *, b->n_events);
    Kaaval__V1__Event *es = NEW(a, Kaaval__V1__Event, b->n_events);
    if (p->events == NULL || es == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < b->n_events; i++) {
        const kvl_event_t *e = &b->events[i];
        Kaaval__V1__Event *q = &es[i];
        kaaval__v1__event__init(q);
        q->time_ms = e->time_ms;
        q->device = (char *)(e->device ? e->device : "");
        q->kind = (char *)(e->kind ? e->kind : "");
        q->severity = (Kaaval__V1__Severity)e->severity;
        q->text = (char *)(e->text ? e->text : "");
        q->n_fields = e->n_fields;
        if ((q->fields = labels_to_pb(a, e->fields, e->n_fields)) == NULL) {
            return KVL_ENOMEM;
        }
        p->events[i] = q;
    }
    return 0;
}

int kvl_wire_encode(const kvl_msg_t *m, kvl_buf_t *out)
{
    kvl_arena_t a = {0};
    pb_env_t env = KAAVAL__V1__ENVELOPE__INIT;
    Kaaval__V1__Hello hello = KAAVAL__V1__HELLO__INIT;
    Kaaval__V1__Positions positions = KAAVAL__V1__POSITIONS__INIT;
    Kaaval__V1__Welcome welcome = KAAVAL__V1__WELCOME__INIT;
    Kaaval__V1__Refusal refusal = KAAVAL__V1__REFUSAL__INIT;
    Kaaval__V1__SeriesDefs defs = KAAVAL__V1__SERIES_DEFS__INIT;
    Kaaval__V1__Batch batch = KAAVAL__V1__BATCH__INIT;
    Kaaval__V1__Ack ack = KAAVAL__V1__ACK__INIT;
    Kaaval__V1__Heartbeat heartbeat = KAAVAL__V1__HEARTBEAT__INIT;
    int rc = 0;

    switch (m->type) {
    case KVL_MSG_HELLO:
        hello.protocol = m->u.hello.protocol;
        hello.agent_id = (char *)(m->u.hello.agent_id ? m->u.hello.agent_id : "");
        hello.version = (char *)(m->u.hello.version ? m->u.hello.version : "");
        hello.site = (char *)(m->u.hello.site ? m->u.hello.site : "");
        hello.boot_id = m->u.hello.boot_id;
        if (m->u.hello.has_last_seq) {
            positions.bulk = m->u.hello.last_seq;
            positions.events = m->u.hello.last_event_seq;
            hello.last_seqs = &positions;
        }
        hello.heartbeat_ms = m->u.hello.heartbeat_ms;
        env.msg_case = KAAVAL__V1__ENVELOPE__MSG_HELLO;
        env.hello = &hello;
        break;
    case KVL_MSG_WELCOME:
        welcome.protocol = m->u.welcome.protocol;
        welcome.collector_id = (char *)(m->u.welcome.collector_id ? m->u.welcome.collector_id : "");
        welcome.version = (char *)(m->u.welcome.version ? m->u.welcome.version : "");
        welcome.last_acked_seq = m->u.welcome.last_acked_seq;
        welcome.last_acked_event_seq = m->u.welcome.last_acked_event_seq;
        welcome.takes_heartbeats = m->u.welcome.takes_heartbeats;
        env.msg_case = KAAVAL__V1__ENVELOPE__MSG_WELCOME;
        env.welcome = &welcome;
        break;
    case KVL_MSG_REFUSAL:
        refusal.reason = (char *)(m->u.refusal ? m->u.refusal : "");
        env.msg_case = KAAVAL__V1__ENVELOPE__MSG_REFUSAL;
        env.refusal = &refusal;
        break;
    case KVL_MSG_SERIES_DEFS:
        defs.defs = defs_to_pb(&a, m->u.series_defs.defs, m->u.series_defs.n, false, &defs.n_defs);
        defs.later_defs =
            defs_to_pb(&a, m->u.series_defs.defs, m->u.series_defs.n, true, &defs.n_later_defs);
        defs.n_families = m->u.series_defs.n_families;
        defs.families = families_to_pb(&a, m->u.series_defs.families, m->u.series_defs.n_families);
        if (defs.defs == NULL || defs.later_defs == NULL || defs.families == NULL) {
            rc = KVL_ENOMEM;
        }
        env.msg_case = KAAVAL__V1__ENVELOPE__MSG_SERIES_DEFS;
        env.series_defs = &defs;
        break;
    case KVL_MSG_BATCH:
        rc = batch_to_pb(&a, &m->u.batch, &batch);
        env.msg_case = KAAVAL__V1__ENVELOPE__MSG_BATCH;
        env.batch = &batch;
        break;
    case KVL_MSG_ACK:
        ack.seq = m->u.ack.seq;
        ack.lane = m->u.ack.lane;
        env.msg_case = KAAVAL__V1__ENVELOPE__MSG_ACK;
        env.ack = &ack;
        break;
    case KVL_MSG_HEARTBEAT:
        heartbeat.time_ms = m->u.heartbeat.time_ms;
        positions.bulk = m->u.heartbeat.last_seq;
        positions.events = m->u.heartbeat.last_event_seq;
        heartbeat.last_seqs = &positions;
        env.msg_case = KAAVAL__V1__ENVELOPE__MSG_HEARTBEAT;
        env.heartbeat = &heartbeat;
        break;
    default:
        rc = KVL_EINVAL;
        break;
    }
    if (rc == 0) {
        size_t n = kaaval__v1__envelope__get_packed_size(&env);
        if (n == 0 || n > UINT32_MAX) {
            rc = KVL_EINVAL;
        } else if ((rc = kvl_buf_reserve(out, KVL_FRAME_HEADER + n)) == 0) {
            kvl_frame_put_header(out->data + out->len, (uint32_t)n);
            kaaval__v1__envelope__pack(&env, out->data + out->len + KVL_FRAME_HEADER);
            out->len += KVL_FRAME_HEADER + n;
        }
    }
    kvl_arena_free(&a);
    return rc;
}

/* ---------------------------------------------------------------- decoding ------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...) KVL_PRINTF(3, 4);
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return KVL_EDECODE;
}

static const kvl_label_t *labels_from_pb(kvl_arena_t *a, Kaaval__V1__Label **l, size_t n)
{
    kvl_label_t *out = NEW(a, kvl_label_t, n);
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        out[i].key = kvl_arena_strdup(a, l[i]->key);
        out[i].value = kvl_arena_strdup(a, l[i]->value);
        if (out[i].key == NULL || out[i].value == NULL) {
            return NULL;
        }
    }
    return out;
}

/* The definitions of d (scopes up to SCOPE_LINK) then of later (later scopes, see
 * proto/kaaval.proto), in one array. */
static int defs_from_pb(kvl_arena_t *a, Kaaval__V1__SeriesDef **d, size_t n_early,
                        Kaaval__V1__SeriesDef **later, size_t n_later,
                        const kvl_series_def_t **outp, size_t *n_out, char *err, size_t errlen)
{
    size_t n = n_early + n_later;
    kvl_series_def_t *out = NEW(a, kvl_series_def_t, n);
    if (out == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        bool is_later = i >= n_early;
        const Kaaval__V1__SeriesDef *p = is_later ? later[i - n_early] : d[i];
        if (p->id == 0) {
            return fail(err, errlen, "series definition with id 0");
        }
        int sc = (int)p->scope;
        if (is_later ? (sc < KVL_SCOPE_FIRST_LATER || sc > KVL_SCOPE_LAST)
                     : (sc < KVL_SCOPE_DEVICE || sc >= KVL_SCOPE_FIRST_LATER)) {
            return fail(err, errlen, "series %u has unknown scope %d%s", p->id, sc,
                        is_later ? " (in later_defs)" : "");
        }
        if (p->family == 0 && p->kind != KAAVAL__V1__KIND__KIND_COUNTER &&
            p->kind != KAAVAL__V1__KIND__KIND_GAUGE) {
            return fail(err, errlen, "series %u has unknown kind %d", p->id, (int)p->kind);
        }
        if (p->device[0] == '\0' || (p->family == 0 && p->metric[0] == '\0')) {
            return fail(err, errlen, "series %u lacks a device or metric name", p->id);
        }
        if (p->family != 0 && p->id > UINT32_MAX - KVL_FAMILY_MAX) {
            return fail(err, errlen, "series %u: id out of range for a family", p->id);
        }
        out[i].id = p->id;
        out[i].device = kvl_arena_strdup(a, p->device);
        out[i].scope = (kvl_scope_t)p->scope;
        out[i].instance = kvl_arena_strdup(a, p->instance);
        out[i].metric = kvl_arena_strdup(a, p->metric);
        out[i].kind = (kvl_kind_t)p->kind;
        out[i].interval_s = p->interval_s;
        out[i].real = p->real;
        out[i].family = p->family;
        out[i].n_labels = p->n_labels;
        out[i].labels = labels_from_pb(a, p->labels, p->n_labels);
        if (out[i].device == NULL || out[i].instance == NULL || out[i].metric == NULL ||
            out[i].labels == NULL) {
            return KVL_ENOMEM;
        }
    }
    *outp = out;
    *n_out = n;
    return 0;
}

static bool valid_metric_name(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            return false;
        }
    }
    return n > 0 && n <= 19; /* an RRD data source name */
}

static int families_from_pb(kvl_arena_t *a, Kaaval__V1__Family **f, size_t n,
                            const kvl_family_t **outp, char *err, size_t errlen)
{
    kvl_family_t *out = NEW(a, kvl_family_t, n);
    if (out == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const Kaaval__V1__Family *p = f[i];
        size_t m = p->n_metrics;
        if (p->id == 0) {
            return fail(err, errlen, "family with id 0");
        }
        if (m == 0 || m > KVL_FAMILY_MAX || p->n_kinds != m ||
            (p->n_reals != 0 && p->n_reals != m)) {
            return fail(err, errlen, "family %u: %zu metrics, %zu kinds, %zu reals", p->id, m,
                        p->n_kinds, p->n_reals);
        }
        char **metrics = NEW(a, char *, m);
        kvl_kind_t *kinds = NEW(a, kvl_kind_t, m);
        bool *reals = NEW(a, bool, m);
        out[i].name = kvl_arena_strdup(a, p->name);
        if (metrics == NULL || kinds == NULL || reals == NULL || out[i].name == NULL) {
            return KVL_ENOMEM;
        }
        for (size_t k = 0; k < m; k++) {
            if (!valid_metric_name(p->metrics[k])) {
                return fail(err, errlen, "family %u: bad metric name", p->id);
            }
            for (size_t j = 0; j < k; j++) {
                if (strcmp(p->metrics[j], p->metrics[k]) == 0) {
                    return fail(err, errlen, "family %u: metric %s twice", p->id, p->metrics[k]);
                }
            }
            if (p->kinds[k] != KAAVAL__V1__KIND__KIND_COUNTER &&
                p->kinds[k] != KAAVAL__V1__KIND__KIND_GAUGE) {
                return fail(err, errlen, "family %u: unknown kind %d", p->id, (int)p->kinds[k]);
            }
            if ((metrics[k] = kvl_arena_strdup(a, p->metrics[k])) == NULL) {
                return KVL_ENOMEM;
            }
            kinds[k] = (kvl_kind_t)p->kinds[k];
            reals[k] = p->n_reals ? p->reals[k] : false;
        }
        out[i].id = p->id;
        out[i].n = m;
        out[i].metrics = (const char *const *)metrics;
        out[i].kinds = kinds;
        out[i].reals = reals;
    }
    *outp = out;
    return 0;
}

static int batch_from_pb(kvl_arena_t *a, const Kaaval__V1__Batch *p, kvl_batch_t *b, char *err,
                         size_t errlen)
{
    b->seq = p->seq;
    b->lane = p->lane;
    if (p->seq == 0) {
        return fail(err, errlen, "batch with sequence number 0");
    }
    if (p->lane >= KVL_LANES) {
        return fail(err, errlen, "batch %" PRIu64 " on unknown lane %u", p->seq, p->lane);
    }
    int rc = defs_from_pb(a, p->defs, p->n_defs, p->later_defs, p->n_later_defs, &b->defs,
                          &b->n_defs, err, errlen);
    if (rc != 0) {
        return rc;
    }
    if ((rc = families_from_pb(a, p->families, p->n_families, &b->families, err, errlen)) != 0) {
        return rc;
    }
    b->n_families = p->n_families;
    size_t n_groups = p->n_groups + p->n_later_groups;
    kvl_group_t *gs = NEW(a, kvl_group_t, n_groups);
    if (gs == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < n_groups; i++) {
        const Kaaval__V1__Group *q =
            i < p->n_groups ? p->groups[i] : p->later_groups[i - p->n_groups];
        kvl_group_t *g = &gs[i];
        g->later = i >= p->n_groups;
        if (q->n_values + q->n_reals + q->n_unknown != q->n_id_deltas) {
            return fail(err, errlen, "group %zu: %zu ids but %zu values, %zu reals and %zu unknown",
                        i, q->n_id_deltas, q->n_values, q->n_reals, q->n_unknown);
        }
        if (__builtin_add_overflow(p->base_time_ms, q->t_offset_ms, &g->time_ms)) {
            return fail(err, errlen, "group %zu: time out of range", i);
        }
        uint32_t *ids = NEW(a, uint32_t, q->n_id_deltas);
        if (ids == NULL) {
            return KVL_ENOMEM;
        }
        int64_t id = 0;
        for (size_t k = 0; k < q->n_id_deltas; k++) {
            id += q->id_deltas[k];
            if (id <= 0 || id > UINT32_MAX) {
                return fail(err, errlen, "group %zu: series id out of range", i);
            }
            ids[k] = (uint32_t)id;
        }
        for (size_t k = 0; k < q->n_unknown; k++) {
            if (q->unknown[k] >= q->n_id_deltas || (k > 0 && q->unknown[k] <= q->unknown[k - 1])) {
                return fail(err, errlen, "group %zu: bad unknown-value position", i);
            }
        }
        g->ids = ids;
        g->n_ids = q->n_id_deltas;
        uint64_t *vals = NEW(a, uint64_t, q->n_values);
        double *reals = NEW(a, double, q->n_reals);
        uint32_t *unk = NEW(a, uint32_t, q->n_unknown);
        if (vals == NULL || reals == NULL || unk == NULL) {
            return KVL_ENOMEM;
        }
        if (q->n_values) {
            memcpy(vals, q->values, sizeof(uint64_t) * q->n_values);
        }
        if (q->n_reals) {
            memcpy(reals, q->reals, sizeof(double) * q->n_reals);
        }
        if (q->n_unknown) {
            memcpy(unk, q->unknown, sizeof(uint32_t) * q->n_unknown);
        }
        g->values = vals;
        g->n_values = q->n_values;
        g->reals = reals;
        g->n_reals = q->n_reals;
        g->unknown = unk;
        g->n_unknown = q->n_unknown;
    }
    b->groups = gs;
    b->n_groups = n_groups;
    kvl_event_t *es = NEW(a, kvl_event_t, p->n_events);
    if (es == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < p->n_events; i++) {
        const Kaaval__V1__Event *q = p->events[i];
        es[i].time_ms = q->time_ms;
        es[i].device = kvl_arena_strdup(a, q->device);
        es[i].kind = kvl_arena_strdup(a, q->kind);
        es[i].severity = (kvl_severity_t)q->severity;
        es[i].text = kvl_arena_strdup(a, q->text);
        es[i].n_fields = q->n_fields;
        es[i].fields = labels_from_pb(a, q->fields, q->n_fields);
        if (es[i].device == NULL || es[i].kind == NULL || es[i].text == NULL ||
            es[i].fields == NULL) {
            return KVL_ENOMEM;
        }
    }
    b->events = es;
    b->n_events = p->n_events;
    return 0;
}

int kvl_wire_decode(const uint8_t *payload, size_t len, kvl_msg_t *m, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }
    pb_env_t *env = kaaval__v1__envelope__unpack(NULL, len, payload);
    if (env == NULL) {
        return fail(err, errlen, "payload of %zu bytes is not a kaaval message", len);
    }
    kvl_arena_t *a = &m->arena;
    int rc = 0;
    switch (env->msg_case) {
    case KAAVAL__V1__ENVELOPE__MSG_HELLO:
        m->type = KVL_MSG_HELLO;
        m->u.hello.protocol = env->hello->protocol;
        m->u.hello.agent_id = kvl_arena_strdup(a, env->hello->agent_id);
        m->u.hello.version = kvl_arena_strdup(a, env->hello->version);
        m->u.hello.site = kvl_arena_strdup(a, env->hello->site);
        m->u.hello.boot_id = env->hello->boot_id;
        if (env->hello->last_seqs != NULL) {
            m->u.hello.has_last_seq = true;
            m->u.hello.last_seq = env->hello->last_seqs->bulk;
            m->u.hello.last_event_seq = env->hello->last_seqs->events;
        }
        m->u.hello.heartbeat_ms = env->hello->heartbeat_ms;
        if (!m->u.hello.agent_id || !m->u.hello.version || !m->u.hello.site) {
            rc = KVL_ENOMEM;
        }
        break;
    case KAAVAL__V1__ENVELOPE__MSG_WELCOME:
        m->type = KVL_MSG_WELCOME;
        m->u.welcome.protocol = env->welcome->protocol;
        m->u.welcome.collector_id = kvl_arena_strdup(a, env->welcome->collector_id);
        m->u.welcome.version = kvl_arena_strdup(a, env->welcome->version);
        m->u.welcome.last_acked_seq = env->welcome->last_acked_seq;
        m->u.welcome.last_acked_event_seq = env->welcome->last_acked_event_seq;
        m->u.welcome.takes_heartbeats = env->welcome->takes_heartbeats;
        if (!m->u.welcome.collector_id || !m->u.welcome.version) {
            rc = KVL_ENOMEM;
        }
        break;
    case KAAVAL__V1__ENVELOPE__MSG_REFUSAL:
        m->type = KVL_MSG_REFUSAL;
        if ((m->u.refusal = kvl_arena_strdup(a, env->refusal->reason)) == NULL) {
            rc = KVL_ENOMEM;
        }
        break;
    case KAAVAL__V1__ENVELOPE__MSG_SERIES_DEFS:
        m->type = KVL_MSG_SERIES_DEFS;
        rc = defs_from_pb(a, env->series_defs->defs, env->series_defs->n_defs,
                          env->series_defs->later_defs, env->series_defs->n_later_defs,
                          &m->u.series_defs.defs, &m->u.series_defs.n, err, errlen);
        if (rc == 0) {
            rc = families_from_pb(a, env->series_defs->families, env->series_defs->n_families,
                                  &m->u.series_defs.families, err, errlen);
            m->u.series_defs.n_families = env->series_defs->n_families;
        }
        break;
    case KAAVAL__V1__ENVELOPE__MSG_BATCH:
        m->type = KVL_MSG_BATCH;
        rc = batch_from_pb(a, env->batch, &m->u.batch, err, errlen);
        break;
    case KAAVAL__V1__ENVELOPE__MSG_ACK:
        m->type = KVL_MSG_ACK;
        m->u.ack.seq = env->ack->seq;
        m->u.ack.lane = env->ack->lane;
        if (env->ack->lane >= KVL_LANES) {
            rc = fail(err, errlen, "ack for unknown lane %u", env->ack->lane);
        }
        break;
    case KAAVAL__V1__ENVELOPE__MSG_HEARTBEAT:
        m->type = KVL_MSG_HEARTBEAT;
        m->u.heartbeat.time_ms = env->heartbeat->time_ms;
        if (env->heartbeat->last_seqs != NULL) {
            m->u.heartbeat.last_seq = env->heartbeat->last_seqs->bulk;
            m->u.heartbeat.last_event_seq = env->heartbeat->last_seqs->events;
        }
        break;
    default:
        rc = fail(err, errlen, "message of an unknown type");
        break;
    }
    kaaval__v1__envelope__free_unpacked(env, NULL);
    if (rc == KVL_ENOMEM) {
        fail(err, errlen, "out of memory decoding a message");
    }
    if (rc != 0) {
        m->type = KVL_MSG_NONE;
    }
    return rc;
}

void kvl_msg_clear(kvl_msg_t *m)
{
    if (m == NULL) {
        return;
    }
    kvl_arena_free(&m->arena);
    memset(m, 0, sizeof(*m));
}

/* ---------------------------------------------------------------- iteration ------------ */

void kvl_group_iter_init(kvl_group_iter_t *it, const kvl_group_t *g)
{
    memset(it, 0, sizeof(*it));
    it->g = g;
}

int kvl_group_iter_next(kvl_group_iter_t *it,
                        const kvl_series_def_t *(*lookup)(void *ctx, uint32_t id), void *ctx,
                        kvl_sample_t *s)
{
    const kvl_group_t *g = it->g;
    if (it->pos >= g->n_ids) {
        return 0;
    }
    memset(s, 0, sizeof(*s));
    s->id = g->ids[it->pos];
    s->def = lookup(ctx, s->id);
    if (s->def == NULL) {
        return KVL_EPROTO;
    }
    if (it->ui < g->n_unknown && g->unknown[it->ui] == it->pos) {
        s->unknown = true;
        it->ui++;
    } else if (s->def->real) {
        if (it->ri >= g->n_reals) {
            return KVL_EPROTO;
        }
        s->real = g->reals[it->ri++];
    } else {
        if (it->vi >= g->n_values) {
            return KVL_EPROTO;
        }
        s->value = g->values[it->vi++];
    }
    it->pos++;
    return 1;
}

bool kvl_event_is_data(const char *kind)
{
    static const char *const data[] = {"capture_top", "devices_configured"};
    for (size_t i = 0; kind != NULL && i < KVL_ARRAY_SIZE(data); i++) {
        if (strcmp(data[i], kind) == 0) {
            return true;
        }
    }
    return false;
}
