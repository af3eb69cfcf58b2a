/*
 * fuzz_wire.c — libFuzzer target for what the collector reads from the network: the frame
 * reader, the message decoder and group iteration (common/frame.h, common/wire.h).
 *
 * The input is used twice: as one frame payload handed straight to the decoder, and as a
 * byte stream fed to a frame reader in chunks of varying size, each frame decoded. Beyond
 * "no crash, no sanitizer report", it checks what the headers promise:
 *  - the reader returns 0, 1 or a KVL_EFRAME_* code, frames within the maximum;
 *  - the decoder returns 0 or KVL_EDECODE, and a decoded batch's groups add up with
 *    non-zero ids;
 *  - iterating a group either visits every id, using up exactly its values, reals and
 *    unknowns, or stops with KVL_EPROTO;
 *  - a decoded message encodes again and decodes to the same message.
 * A broken promise calls abort(), which libFuzzer reports as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "fuzz_check.h"
#include "kvl.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FRAME_MAX 65536u

typedef struct defs {
    const kvl_series_def_t *d;
    size_t n;
} defs_t;

static const kvl_series_def_t *lookup_in(void *ctx, uint32_t id)
{
    const defs_t *t = ctx;
    for (size_t i = 0; i < t->n; i++) {
        if (t->d[i].id == id) {
            return &t->d[i];
        }
    }
    return NULL;
}

/* Every id is known; odd ids are real-valued. */
static const kvl_series_def_t int_def = {
    .id = 2, .device = "d", .scope = KVL_SCOPE_DEVICE, .metric = "m", .kind = KVL_KIND_GAUGE};
static const kvl_series_def_t real_def = {.id = 1,
                                          .device = "d",
                                          .scope = KVL_SCOPE_DEVICE,
                                          .metric = "m",
                                          .kind = KVL_KIND_GAUGE,
                                          .real = true};

static const kvl_series_def_t *lookup_parity(void *ctx, uint32_t id)
{
    (void)ctx;
    return (id & 1u) ? &real_def : &int_def;
}

static void iterate(const kvl_group_t *g, const kvl_series_def_t *(*lookup)(void *ctx, uint32_t id),
                    void *ctx)
{
    kvl_group_iter_t it;
    kvl_sample_t s;
    kvl_group_iter_init(&it, g);
    size_t seen = 0;
    int rc;
    while ((rc = kvl_group_iter_next(&it, lookup, ctx, &s)) == 1) {
        CHECK(seen < g->n_ids);
        CHECK(s.id == g->ids[seen]);
        CHECK(s.def != NULL && s.def == lookup(ctx, s.id));
        seen++;
    }
    CHECK(rc == 0 || rc == KVL_EPROTO);
    if (rc == 0) {
        CHECK(seen == g->n_ids);
        CHECK(it.vi == g->n_values && it.ri == g->n_reals && it.ui == g->n_unknown);
        CHECK(kvl_group_iter_next(&it, lookup, ctx, &s) == 0);
    }
}

static int str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static void check_labels(const kvl_label_t *a, size_t na, const kvl_label_t *b, size_t nb)
{
    CHECK(na == nb);
    for (size_t i = 0; i < na; i++) {
        CHECK(str_eq(a[i].key, b[i].key) && str_eq(a[i].value, b[i].value));
    }
}

static void check_defs(const kvl_series_def_t *a, size_t na, const kvl_series_def_t *b, size_t nb)
{
    CHECK(na == nb);
    for (size_t i = 0; i < na; i++) {
        CHECK(a[i].id == b[i].id && a[i].scope == b[i].scope && a[i].kind == b[i].kind);
        CHECK(a[i].interval_s == b[i].interval_s && a[i].real == b[i].real);
        CHECK(a[i].family == b[i].family);
        CHECK(str_eq(a[i].device, b[i].device) && str_eq(a[i].instance, b[i].instance) &&
              str_eq(a[i].metric, b[i].metric));
        check_labels(a[i].labels, a[i].n_labels, b[i].labels, b[i].n_labels);
    }
}

static void check_families(const kvl_family_t *a, size_t na, const kvl_family_t *b, size_t nb)
{
    CHECK(na == nb);
    for (size_t i = 0; i < na; i++) {
        CHECK(a[i].id == b[i].id && a[i].n == b[i].n && str_eq(a[i].name, b[i].name));
        for (size_t k = 0; k < a[i].n; k++) {
            CHECK(str_eq(a[i].metrics[k], b[i].metrics[k]) && a[i].kinds[k] == b[i].kinds[k] &&
                  a[i].reals[k] == b[i].reals[k]);
        }
    }
}

/* Field-by-field equality of two decoded messages. */
static void check_same(const kvl_msg_t *a, const kvl_msg_t *b)
{
    CHECK(a->type == b->type);
    switch (a->type) {
    case KVL_MSG_HELLO:
        CHECK(a->u.hello.protocol == b->u.hello.protocol);
        CHECK(a->u.hello.boot_id == b->u.hello.boot_id);
        CHECK(str_eq(a->u.hello.agent_id, b->u.hello.agent_id));
        CHECK(str_eq(a->u.hello.version, b->u.hello.version));
        CHECK(str_eq(a->u.hello.site, b->u.hello.site));
        CHECK(a->u.hello.has_last_seq == b->u.hello.has_last_seq);
        CHECK(a->u.hello.last_seq == b->u.hello.last_seq);
        CHECK(a->u.hello.last_event_seq == b->u.hello.last_event_seq);
        CHECK(a->u.hello.heartbeat_ms == b->u.hello.heartbeat_ms);
        break;
    case KVL_MSG_WELCOME:
        CHECK(a->u.welcome.protocol == b->u.welcome.protocol);
        CHECK(a->u.welcome.last_acked_seq == b->u.welcome.last_acked_seq);
        CHECK(a->u.welcome.last_acked_event_seq == b->u.welcome.last_acked_event_seq);
        CHECK(a->u.welcome.takes_heartbeats == b->u.welcome.takes_heartbeats);
        CHECK(str_eq(a->u.welcome.collector_id, b->u.welcome.collector_id));
        CHECK(str_eq(a->u.welcome.version, b->u.welcome.version));
        break;
    case KVL_MSG_REFUSAL:
        CHECK(str_eq(a->u.refusal, b->u.refusal));
        break;
    case KVL_MSG_SERIES_DEFS:
        check_defs(a->u.series_defs.defs, a->u.series_defs.n, b->u.series_defs.defs,
                   b->u.series_defs.n);
        check_families(a->u.series_defs.families, a->u.series_defs.n_families,
                       b->u.series_defs.families, b->u.series_defs.n_families);
        break;
    case KVL_MSG_BATCH: {
        const kvl_batch_t *x = &a->u.batch, *y = &b->u.batch;
        CHECK(x->seq == y->seq && x->lane == y->lane);
        check_defs(x->defs, x->n_defs, y->defs, y->n_defs);
        check_families(x->families, x->n_families, y->families, y->n_families);
        CHECK(x->n_groups == y->n_groups && x->n_events == y->n_events);
        for (size_t i = 0; i < x->n_groups; i++) {
            const kvl_group_t *g = &x->groups[i], *h = &y->groups[i];
            CHECK(g->time_ms == h->time_ms && g->n_ids == h->n_ids);
            CHECK(g->n_values == h->n_values && g->n_reals == h->n_reals &&
                  g->n_unknown == h->n_unknown);
            CHECK(g->n_ids == 0 || memcmp(g->ids, h->ids, g->n_ids * sizeof(*g->ids)) == 0);
            CHECK(g->n_values == 0 ||
                  memcmp(g->values, h->values, g->n_values * sizeof(*g->values)) == 0);
            CHECK(g->n_reals == 0 ||
                  memcmp(g->reals, h->reals, g->n_reals * sizeof(*g->reals)) == 0);
            CHECK(g->n_unknown == 0 ||
                  memcmp(g->unknown, h->unknown, g->n_unknown * sizeof(*g->unknown)) == 0);
        }
        for (size_t i = 0; i < x->n_events; i++) {
            const kvl_event_t *e = &x->events[i], *f = &y->events[i];
            CHECK(e->time_ms == f->time_ms && e->severity == f->severity);
            CHECK(str_eq(e->device, f->device) && str_eq(e->kind, f->kind) &&
                  str_eq(e->text, f->text));
            check_labels(e->fields, e->n_fields, f->fields, f->n_fields);
        }
        break;
    }
    case KVL_MSG_ACK:
        CHECK(a->u.ack.seq == b->u.ack.seq && a->u.ack.lane == b->u.ack.lane);
        break;
    case KVL_MSG_HEARTBEAT:
        CHECK(a->u.heartbeat.time_ms == b->u.heartbeat.time_ms);
        CHECK(a->u.heartbeat.last_seq == b->u.heartbeat.last_seq);
        CHECK(a->u.heartbeat.last_event_seq == b->u.heartbeat.last_event_seq);
        break;
    default:
        CHECK(!"decoded message of no type");
    }
}

static void check_defs_valid(const kvl_series_def_t *d, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        CHECK(d[i].id != 0);
        CHECK(d[i].scope == KVL_SCOPE_DEVICE || d[i].scope == KVL_SCOPE_INTERFACE ||
              d[i].scope == KVL_SCOPE_AGENT || d[i].scope == KVL_SCOPE_GROUP ||
              d[i].scope == KVL_SCOPE_LINK);
        CHECK(d[i].device != NULL && d[i].device[0] != '\0');
        CHECK(d[i].instance != NULL);
        if (d[i].family == 0) { /* a family's definition takes kind and metric from it */
            CHECK(d[i].kind == KVL_KIND_COUNTER || d[i].kind == KVL_KIND_GAUGE);
            CHECK(d[i].metric != NULL && d[i].metric[0] != '\0');
        }
    }
}

static void check_families_valid(const kvl_family_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        CHECK(f[i].id != 0 && f[i].n >= 1 && f[i].n <= KVL_FAMILY_MAX);
        for (size_t k = 0; k < f[i].n; k++) {
            CHECK(f[i].metrics[k] != NULL && f[i].metrics[k][0] != '\0');
            CHECK(f[i].kinds[k] == KVL_KIND_COUNTER || f[i].kinds[k] == KVL_KIND_GAUGE);
        }
    }
}

static void decode_one(const uint8_t *p, size_t n)
{
    kvl_msg_t m = {0};
    char err[128];
    int rc = kvl_wire_decode(p, n, &m, err, sizeof(err));
    CHECK(rc == 0 || rc == KVL_EDECODE);
    if (rc != 0) {
        CHECK(m.type == KVL_MSG_NONE);
        CHECK(err[0] != '\0');
        kvl_msg_clear(&m);
        return;
    }
    if (m.type == KVL_MSG_SERIES_DEFS) {
        check_defs_valid(m.u.series_defs.defs, m.u.series_defs.n);
        check_families_valid(m.u.series_defs.families, m.u.series_defs.n_families);
    } else if (m.type == KVL_MSG_BATCH) {
        const kvl_batch_t *b = &m.u.batch;
        CHECK(b->seq != 0 && b->lane < KVL_LANES);
        check_defs_valid(b->defs, b->n_defs);
        check_families_valid(b->families, b->n_families);
        defs_t t = {b->defs, b->n_defs};
        for (size_t i = 0; i < b->n_groups; i++) {
            const kvl_group_t *g = &b->groups[i];
            CHECK(g->n_values + g->n_reals + g->n_unknown == g->n_ids);
            for (size_t k = 0; k < g->n_ids; k++) {
                CHECK(g->ids[k] != 0);
            }
            for (size_t k = 0; k < g->n_unknown; k++) {
                CHECK(g->unknown[k] < g->n_ids);
                CHECK(k == 0 || g->unknown[k] > g->unknown[k - 1]);
            }
            iterate(g, lookup_in, &t);
            iterate(g, lookup_parity, NULL);
        }
    }

    /* Encode again: what was decoded is representable, unless the ids or times only fit
     * the wire as the sender wrote them, which the encoder refuses with KVL_EINVAL. */
    kvl_buf_t out = {0};
    rc = kvl_wire_encode(&m, &out);
    CHECK(rc == 0 || (rc == KVL_EINVAL && m.type == KVL_MSG_BATCH));
    if (rc == 0) {
        CHECK(out.len > KVL_FRAME_HEADER);
        kvl_frame_reader_t r;
        kvl_frame_reader_init(&r, 0);
        CHECK(kvl_frame_reader_feed(&r, out.data, out.len) == 0);
        const uint8_t *q;
        size_t qn;
        CHECK(kvl_frame_next(&r, &q, &qn) == 1);
        CHECK(qn + KVL_FRAME_HEADER == out.len);
        kvl_msg_t again = {0};
        CHECK(kvl_wire_decode(q, qn, &again, err, sizeof(err)) == 0);
        check_same(&m, &again);
        kvl_msg_clear(&again);
        CHECK(kvl_frame_next(&r, &q, &qn) == 0);
        CHECK(kvl_frame_reader_finish(&r) == 0);
        kvl_frame_reader_free(&r);
    }
    kvl_buf_free(&out);
    kvl_msg_clear(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 1. The whole input as one payload. */
    decode_one(data, size);

    /* 2. The input as a stream, in chunks whose sizes depend on the input's length. */
    static const size_t chunks[] = {1, 3, 7, 64, 4096};
    size_t chunk = chunks[size % KVL_ARRAY_SIZE(chunks)];
    kvl_frame_reader_t r;
    kvl_frame_reader_init(&r, FRAME_MAX);
    int rc = 0;
    for (size_t off = 0; off < size && rc >= 0; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        CHECK(kvl_frame_reader_feed(&r, data + off, n) == 0);
        const uint8_t *p;
        size_t len;
        while ((rc = kvl_frame_next(&r, &p, &len)) == 1) {
            CHECK(len >= 1 && len <= FRAME_MAX);
            decode_one(p, len);
        }
        CHECK(rc == 0 || rc == KVL_EFRAME_EMPTY || rc == KVL_EFRAME_TOO_BIG);
    }
    if (rc == 0) {
        int fin = kvl_frame_reader_finish(&r);
        CHECK(fin == 0 || fin == KVL_EFRAME_TRUNCATED);
    }
    kvl_frame_reader_free(&r);
    return 0;
}
