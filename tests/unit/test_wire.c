/*
 * test_wire.c — unit tests for the agent<->collector codec (common/wire.h).
 *
 * Every message type is encoded, the frame is read back through the frame reader, and
 * the decoded message is compared field by field with what went in. Group iteration is
 * checked for pairing ids with integer values, real values and unknowns. Malformed
 * payloads are written by hand with a tiny protobuf writer below (the generated code is
 * the codec's business only), so each one breaks exactly one rule the decoder must check.
 * A later scope (neighbour) travels in the fields an older collector skips: the generated
 * code reads the frame as such a collector would. Finally the size of a realistic batch is
 * measured and printed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"
#include "kaaval.pb-c.h"
#include "kvl.h"
#include "wire.h"

/* ------------------------------------------------------------ helpers ----------------- */

/* Encodes m, checks the frame header, and decodes the payload into out (zeroed here). */
static int round_trip(const kvl_msg_t *m, kvl_msg_t *out, size_t *frame_len)
{
    kvl_buf_t b = {0};
    assert_int_equal(kvl_wire_encode(m, &b), 0);
    assert_true(b.len > KVL_FRAME_HEADER);
    if (frame_len != NULL) {
        *frame_len = b.len;
    }
    kvl_frame_reader_t r;
    kvl_frame_reader_init(&r, 0);
    assert_int_equal(kvl_frame_reader_feed(&r, b.data, b.len), 0);
    const uint8_t *p;
    size_t n;
    assert_int_equal(kvl_frame_next(&r, &p, &n), 1);
    assert_int_equal(n + KVL_FRAME_HEADER, b.len);
    memset(out, 0, sizeof(*out));
    char err[256] = "x";
    int rc = kvl_wire_decode(p, n, out, err, sizeof(err));
    if (rc == 0) {
        assert_string_equal(err, "");
    }
    assert_int_equal(kvl_frame_next(&r, &p, &n), 0);
    assert_int_equal(kvl_frame_reader_finish(&r), 0);
    kvl_frame_reader_free(&r);
    kvl_buf_free(&b);
    return rc;
}

static const char *nz(const char *s)
{
    return s ? s : "";
}

static void assert_labels_equal(const kvl_label_t *a, size_t na, const kvl_label_t *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_string_equal(nz(a[i].key), b[i].key);
        assert_string_equal(nz(a[i].value), b[i].value);
    }
}

static void assert_defs_equal(const kvl_series_def_t *a, size_t na, const kvl_series_def_t *b,
                              size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(a[i].id, b[i].id);
        assert_string_equal(nz(a[i].device), b[i].device);
        assert_int_equal(a[i].scope, b[i].scope);
        assert_string_equal(nz(a[i].instance), b[i].instance);
        assert_string_equal(nz(a[i].metric), b[i].metric);
        assert_int_equal(a[i].kind, b[i].kind);
        assert_int_equal(a[i].interval_s, b[i].interval_s);
        assert_int_equal(a[i].real, b[i].real);
        assert_labels_equal(a[i].labels, a[i].n_labels, b[i].labels, b[i].n_labels);
    }
}

static void assert_groups_equal(const kvl_group_t *a, size_t na, const kvl_group_t *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(a[i].time_ms, b[i].time_ms);
        assert_int_equal(a[i].n_ids, b[i].n_ids);
        assert_int_equal(a[i].n_values, b[i].n_values);
        assert_int_equal(a[i].n_reals, b[i].n_reals);
        assert_int_equal(a[i].n_unknown, b[i].n_unknown);
        for (size_t k = 0; k < a[i].n_ids; k++) {
            assert_int_equal(a[i].ids[k], b[i].ids[k]);
        }
        for (size_t k = 0; k < a[i].n_values; k++) {
            assert_int_equal(a[i].values[k], b[i].values[k]);
        }
        for (size_t k = 0; k < a[i].n_reals; k++) {
            assert_memory_equal(&a[i].reals[k], &b[i].reals[k], sizeof(double));
        }
        for (size_t k = 0; k < a[i].n_unknown; k++) {
            assert_int_equal(a[i].unknown[k], b[i].unknown[k]);
        }
    }
}

static void assert_events_equal(const kvl_event_t *a, size_t na, const kvl_event_t *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(a[i].time_ms, b[i].time_ms);
        assert_string_equal(nz(a[i].device), b[i].device);
        assert_string_equal(nz(a[i].kind), b[i].kind);
        assert_int_equal(a[i].severity, b[i].severity);
        assert_string_equal(nz(a[i].text), b[i].text);
        assert_labels_equal(a[i].fields, a[i].n_fields, b[i].fields, b[i].n_fields);
    }
}

/* A definition table to look ids up in during group iteration. */
typedef struct def_table {
    const kvl_series_def_t *defs;
    size_t n;
} def_table_t;

static const kvl_series_def_t *lookup(void *ctx, uint32_t id)
{
    const def_table_t *t = ctx;
    for (size_t i = 0; i < t->n; i++) {
        if (t->defs[i].id == id) {
            return &t->defs[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ a hand protobuf writer --- */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2 };

static void pb_varint(kvl_buf_t *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) {
            tmp[n] |= 0x80;
        }
        n++;
    } while (v);
    assert_int_equal(kvl_buf_append(b, tmp, n), 0);
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static void pb_key(kvl_buf_t *b, unsigned field, unsigned wt)
{
    pb_varint(b, (uint64_t)field << 3 | wt);
}

static void pb_uint(kvl_buf_t *b, unsigned field, uint64_t v)
{
    pb_key(b, field, WT_VARINT);
    pb_varint(b, v);
}

static void pb_sint(kvl_buf_t *b, unsigned field, int64_t v)
{
    pb_uint(b, field, zigzag(v));
}

static void pb_bytes(kvl_buf_t *b, unsigned field, const void *p, size_t n)
{
    pb_key(b, field, WT_LEN);
    pb_varint(b, n);
    assert_int_equal(kvl_buf_append(b, p, n), 0);
}

static void pb_str(kvl_buf_t *b, unsigned field, const char *s)
{
    pb_bytes(b, field, s, strlen(s));
}

/* Wraps inner as field `field` of b and frees inner. */
static void pb_msg(kvl_buf_t *b, unsigned field, kvl_buf_t *inner)
{
    pb_bytes(b, field, inner->data, inner->len);
    kvl_buf_free(inner);
}

static void pb_packed_sint(kvl_buf_t *b, unsigned field, const int64_t *v, size_t n)
{
    kvl_buf_t tmp = {0};
    for (size_t i = 0; i < n; i++) {
        pb_varint(&tmp, zigzag(v[i]));
    }
    pb_msg(b, field, &tmp);
}

static void pb_packed_uint(kvl_buf_t *b, unsigned field, const uint64_t *v, size_t n)
{
    kvl_buf_t tmp = {0};
    for (size_t i = 0; i < n; i++) {
        pb_varint(&tmp, v[i]);
    }
    pb_msg(b, field, &tmp);
}

/* A SeriesDef message. */
static void pb_def(kvl_buf_t *b, unsigned field, uint32_t id, const char *device, int scope,
                   const char *metric, int kind)
{
    kvl_buf_t d = {0};
    pb_uint(&d, 1, id);
    pb_str(&d, 2, device);
    pb_uint(&d, 3, (uint64_t)scope);
    pb_str(&d, 4, scope == KVL_SCOPE_INTERFACE ? "ge-0/0/1" : "");
    pb_str(&d, 5, metric);
    pb_uint(&d, 6, (uint64_t)kind);
    pb_uint(&d, 7, 60);
    pb_msg(b, field, &d);
}

/* A Group message: t_offset, id deltas, integer values and unknown positions. */
static void pb_group(kvl_buf_t *b, int64_t t_off, const int64_t *deltas, size_t nd,
                     const uint64_t *values, size_t nv, const uint64_t *unknown, size_t nu)
{
    kvl_buf_t g = {0};
    pb_sint(&g, 1, t_off);
    if (nd) {
        pb_packed_sint(&g, 2, deltas, nd);
    }
    if (nv) {
        pb_packed_uint(&g, 3, values, nv);
    }
    if (nu) {
        pb_packed_uint(&g, 5, unknown, nu);
    }
    pb_msg(b, 4, &g);
}

/* Envelope{batch{seq, base, def id 1 and 2, one group}} with the group given. */
static void pb_batch_with_group(kvl_buf_t *env, uint64_t seq, int64_t base, int64_t t_off,
                                const int64_t *deltas, size_t nd, const uint64_t *values, size_t nv,
                                const uint64_t *unknown, size_t nu)
{
    kvl_buf_t batch = {0};
    pb_uint(&batch, 1, seq);
    pb_uint(&batch, 2, (uint64_t)base);
    pb_def(&batch, 3, 1, "rtr1", KVL_SCOPE_DEVICE, "reachable", KVL_KIND_GAUGE);
    pb_def(&batch, 3, 2, "rtr1", KVL_SCOPE_DEVICE, "uptime_s", KVL_KIND_GAUGE);
    pb_group(&batch, t_off, deltas, nd, values, nv, unknown, nu);
    pb_msg(env, 5, &batch);
}

static int decode_buf(const kvl_buf_t *b, char *err, size_t errlen)
{
    kvl_msg_t m = {0};
    int rc = kvl_wire_decode(b->data, b->len, &m, err, errlen);
    if (rc != 0) {
        assert_int_equal(m.type, KVL_MSG_NONE);
    }
    kvl_msg_clear(&m);
    return rc;
}

/* ------------------------------------------------------------ round trips ------------- */

static void test_hello(void **state)
{
    KVL_UNUSED(state);
    kvl_msg_t in = {.type = KVL_MSG_HELLO};
    in.u.hello = (kvl_hello_t){.protocol = KVL_PROTOCOL_VERSION,
                               .agent_id = "blk-tvm-north-01",
                               .version = "0.1.0",
                               .site = "tvm-north",
                               .boot_id = 0xdeadbeefcafef00dull};
    kvl_msg_t out;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_int_equal(out.type, KVL_MSG_HELLO);
    assert_int_equal(out.u.hello.protocol, 1);
    assert_string_equal(out.u.hello.agent_id, "blk-tvm-north-01");
    assert_string_equal(out.u.hello.version, "0.1.0");
    assert_string_equal(out.u.hello.site, "tvm-north");
    assert_int_equal(out.u.hello.boot_id, 0xdeadbeefcafef00dull);
    kvl_msg_clear(&out);
    assert_int_equal(out.type, KVL_MSG_NONE);

    /* Missing strings travel as empty ones. */
    in.u.hello.site = NULL;
    in.u.hello.boot_id = 0;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_string_equal(out.u.hello.site, "");
    assert_int_equal(out.u.hello.boot_id, 0);
    assert_false(out.u.hello.has_last_seq); /* not sent: an older agent */
    kvl_msg_clear(&out);

    /* The agent's positions travel when it has them, zero included. */
    in.u.hello.has_last_seq = true;
    in.u.hello.last_seq = 1764930000123456ull;
    in.u.hello.last_event_seq = 0;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_true(out.u.hello.has_last_seq);
    assert_int_equal(out.u.hello.last_seq, 1764930000123456ull);
    assert_int_equal(out.u.hello.last_event_seq, 0);
    assert_int_equal(out.u.hello.heartbeat_ms, 0); /* not said: an agent without heartbeats */
    kvl_msg_clear(&out);

    /* The heartbeat interval travels. */
    in.u.hello.heartbeat_ms = 10000;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_int_equal(out.u.hello.heartbeat_ms, 10000);
    kvl_msg_clear(&out);
}

/* A heartbeat: the agent's time and positions, extremes included; none without positions
 * decodes as zeros. */
static void test_heartbeat(void **state)
{
    KVL_UNUSED(state);
    static const struct {
        int64_t t;
        uint64_t bulk, events;
    } cases[] = {{1764930000123, 1764930000123456ull, 1764930000000001ull},
                 {0, 0, 0},
                 {-1, 1, UINT64_MAX},
                 {INT64_MAX, UINT64_MAX, 0},
                 {INT64_MIN, 42, 43}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        kvl_msg_t in = {.type = KVL_MSG_HEARTBEAT}, out;
        in.u.heartbeat = (kvl_heartbeat_t){
            .time_ms = cases[i].t, .last_seq = cases[i].bulk, .last_event_seq = cases[i].events};
        assert_int_equal(round_trip(&in, &out, NULL), 0);
        assert_int_equal(out.type, KVL_MSG_HEARTBEAT);
        assert_true(out.u.heartbeat.time_ms == cases[i].t);
        assert_true(out.u.heartbeat.last_seq == cases[i].bulk);
        assert_true(out.u.heartbeat.last_event_seq == cases[i].events);
        kvl_msg_clear(&out);
    }
    /* Envelope field 7 holding a Heartbeat with only its time (field 1). */
    char err[256] = "";
    kvl_buf_t env = {0}, hb = {0};
    pb_uint(&hb, 1, 5);
    pb_msg(&env, 7, &hb);
    kvl_msg_t m = {0};
    assert_int_equal(kvl_wire_decode(env.data, env.len, &m, err, sizeof(err)), 0);
    assert_int_equal(m.type, KVL_MSG_HEARTBEAT);
    assert_int_equal(m.u.heartbeat.time_ms, 5);
    assert_int_equal(m.u.heartbeat.last_seq, 0);
    assert_int_equal(m.u.heartbeat.last_event_seq, 0);
    kvl_msg_clear(&m);
    kvl_buf_free(&env);
    kvl_buf_free(&hb);
}

/* An older agent's Hello (fields 1 to 5) decodes without positions; an empty Positions
 * message is positions of zero. */
static void test_hello_positions_optional(void **state)
{
    KVL_UNUSED(state);
    char err[256] = "";
    kvl_buf_t env = {0}, hello = {0};
    pb_uint(&hello, 1, 1);
    pb_str(&hello, 2, "old-agent");
    pb_uint(&hello, 5, 7);
    pb_msg(&env, 1, &hello);
    kvl_msg_t m = {0};
    assert_int_equal(kvl_wire_decode(env.data, env.len, &m, err, sizeof(err)), 0);
    assert_int_equal(m.type, KVL_MSG_HELLO);
    assert_false(m.u.hello.has_last_seq);
    assert_int_equal(m.u.hello.last_seq, 0);
    kvl_msg_clear(&m);
    kvl_buf_free(&env);

    kvl_buf_t pos = {0};
    pb_uint(&hello, 1, 1);
    pb_str(&hello, 2, "empty-positions");
    pb_msg(&hello, 6, &pos);
    pb_msg(&env, 1, &hello);
    assert_int_equal(kvl_wire_decode(env.data, env.len, &m, err, sizeof(err)), 0);
    assert_true(m.u.hello.has_last_seq);
    assert_int_equal(m.u.hello.last_seq, 0);
    assert_int_equal(m.u.hello.last_event_seq, 0);
    kvl_msg_clear(&m);
    kvl_buf_free(&env);

    pb_uint(&hello, 1, 1);
    pb_str(&hello, 2, "new-agent");
    pb_uint(&pos, 1, 99);
    pb_msg(&hello, 6, &pos);
    pb_msg(&env, 1, &hello);
    assert_int_equal(kvl_wire_decode(env.data, env.len, &m, err, sizeof(err)), 0);
    assert_true(m.u.hello.has_last_seq);
    assert_int_equal(m.u.hello.last_seq, 99);
    assert_int_equal(m.u.hello.last_event_seq, 0);
    kvl_msg_clear(&m);
    kvl_buf_free(&env);
}

static void test_welcome_refusal_ack(void **state)
{
    KVL_UNUSED(state);
    kvl_msg_t in = {.type = KVL_MSG_WELCOME};
    in.u.welcome = (kvl_welcome_t){.protocol = 1,
                                   .collector_id = "noc-collector-1",
                                   .version = "0.1.0",
                                   .last_acked_seq = 123456789012ull};
    kvl_msg_t out;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_int_equal(out.type, KVL_MSG_WELCOME);
    assert_int_equal(out.u.welcome.protocol, 1);
    assert_string_equal(out.u.welcome.collector_id, "noc-collector-1");
    assert_string_equal(out.u.welcome.version, "0.1.0");
    assert_int_equal(out.u.welcome.last_acked_seq, 123456789012ull);
    assert_false(out.u.welcome.takes_heartbeats); /* an older collector's */
    kvl_msg_clear(&out);
    in.u.welcome.takes_heartbeats = true;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_true(out.u.welcome.takes_heartbeats);
    kvl_msg_clear(&out);

    in = (kvl_msg_t){.type = KVL_MSG_REFUSAL};
    in.u.refusal = "protocol 2 not supported; this collector speaks 1";
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_int_equal(out.type, KVL_MSG_REFUSAL);
    assert_string_equal(out.u.refusal, "protocol 2 not supported; this collector speaks 1");
    kvl_msg_clear(&out);

    in = (kvl_msg_t){.type = KVL_MSG_ACK};
    in.u.ack.seq = (1ull << 63) + 5;
    in.u.ack.lane = KVL_LANE_EVENTS;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_int_equal(out.type, KVL_MSG_ACK);
    assert_int_equal(out.u.ack.seq, (1ull << 63) + 5);
    assert_int_equal(out.u.ack.lane, KVL_LANE_EVENTS);
    kvl_msg_clear(&out);
}

static const kvl_label_t if_labels[] = {
    {"ifIndex", "3"},
    {"ifDescr", "GigabitEthernet1/0/1"},
    {"ifAlias", "uplink to core"},
    {"ifType", "6"},
};

static const kvl_series_def_t sample_defs[] = {
    {1, "rtr1", KVL_SCOPE_DEVICE, "", "reachable", KVL_KIND_GAUGE, 60, false, NULL, 0},
    {2, "rtr1", KVL_SCOPE_INTERFACE, "Gi1/0/1", "in_octets", KVL_KIND_COUNTER, 60, false, if_labels,
     4},
    {3, "rtr1", KVL_SCOPE_DEVICE, "", "response_ms", KVL_KIND_GAUGE, 60, true, NULL, 0},
    {5, "rtr1", KVL_SCOPE_INTERFACE, "Gi1/0/1", "out_octets", KVL_KIND_COUNTER, 60, false,
     if_labels, 2},
    {7, "sw-2", KVL_SCOPE_INTERFACE, "ge-0/0/4.0", "temperature", KVL_KIND_GAUGE, 300, true, NULL,
     0},
    {8, "blk-tvm-north-01", KVL_SCOPE_AGENT, "", "snmp_requests", KVL_KIND_COUNTER, 10, false, NULL,
     0},
};

static void test_series_defs(void **state)
{
    KVL_UNUSED(state);
    kvl_msg_t in = {.type = KVL_MSG_SERIES_DEFS};
    in.u.series_defs.defs = sample_defs;
    in.u.series_defs.n = KVL_ARRAY_SIZE(sample_defs);
    kvl_msg_t out;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_int_equal(out.type, KVL_MSG_SERIES_DEFS);
    assert_defs_equal(sample_defs, KVL_ARRAY_SIZE(sample_defs), out.u.series_defs.defs,
                      out.u.series_defs.n);
    kvl_msg_clear(&out);

    /* No definitions at all is a valid (if useless) message. */
    in.u.series_defs.n = 0;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_int_equal(out.type, KVL_MSG_SERIES_DEFS);
    assert_int_equal(out.u.series_defs.n, 0);
    kvl_msg_clear(&out);
}

/* Families: a definition naming one stands for all of its metrics (ids id .. id+n-1). */
static const char *const if_metrics[] = {"in_octets", "out_octets", "oper_status"};
static const kvl_kind_t if_kinds[] = {KVL_KIND_COUNTER, KVL_KIND_COUNTER, KVL_KIND_GAUGE};
static const char *const load_metrics[] = {"load1", "load5"};
static const kvl_kind_t load_kinds[] = {KVL_KIND_GAUGE, KVL_KIND_GAUGE};
static const bool load_reals[] = {true, true};

static void test_families(void **state)
{
    KVL_UNUSED(state);
    const kvl_family_t fams[] = {
        {.name = "if", .n = 3, .metrics = if_metrics, .kinds = if_kinds, .id = 1},
        {.name = "ucd-load",
         .n = 2,
         .metrics = load_metrics,
         .kinds = load_kinds,
         .reals = load_reals,
         .id = 7},
    };
    const kvl_series_def_t defs[] = {
        {.id = 10,
         .device = "rtr1",
         .scope = KVL_SCOPE_INTERFACE,
         .instance = "Gi1/0/1",
         .interval_s = 60,
         .labels = if_labels,
         .n_labels = 4,
         .family = 1},
        {.id = 13,
         .device = "srv1",
         .scope = KVL_SCOPE_GROUP,
         .instance = "",
         .interval_s = 60,
         .family = 7},
    };
    for (int as_batch = 0; as_batch < 2; as_batch++) {
        kvl_msg_t in = {.type = as_batch ? KVL_MSG_BATCH : KVL_MSG_SERIES_DEFS}, out;
        if (as_batch) {
            in.u.batch = (kvl_batch_t){
                .seq = 3, .defs = defs, .n_defs = 2, .families = fams, .n_families = 2};
        } else {
            in.u.series_defs.defs = defs;
            in.u.series_defs.n = 2;
            in.u.series_defs.families = fams;
            in.u.series_defs.n_families = 2;
        }
        assert_int_equal(round_trip(&in, &out, NULL), 0);
        const kvl_family_t *f = as_batch ? out.u.batch.families : out.u.series_defs.families;
        size_t nf = as_batch ? out.u.batch.n_families : out.u.series_defs.n_families;
        const kvl_series_def_t *d = as_batch ? out.u.batch.defs : out.u.series_defs.defs;
        assert_int_equal(nf, 2);
        assert_int_equal(f[0].id, 1);
        assert_string_equal(f[0].name, "if");
        assert_int_equal(f[0].n, 3);
        assert_string_equal(f[0].metrics[2], "oper_status");
        assert_int_equal(f[0].kinds[0], KVL_KIND_COUNTER);
        assert_int_equal(f[0].kinds[2], KVL_KIND_GAUGE);
        assert_false(f[0].reals[1]);
        assert_int_equal(f[1].id, 7);
        assert_true(f[1].reals[0] && f[1].reals[1]);
        assert_int_equal(d[0].family, 1);
        assert_int_equal(d[0].id, 10);
        assert_int_equal(d[0].n_labels, 4);
        assert_int_equal(d[1].family, 7);
        assert_int_equal(d[1].scope, KVL_SCOPE_GROUP);
        kvl_msg_clear(&out);
    }
}

/* A family encoded by hand: n metrics named from names[], nk kinds, nr reals. */
static void pb_family(kvl_buf_t *env, uint32_t id, const char *const *names, size_t n, size_t nk,
                      size_t nr)
{
    kvl_buf_t fam = {0}, defs = {0};
    pb_uint(&fam, 1, id);
    pb_str(&fam, 2, "g");
    for (size_t i = 0; i < n; i++) {
        pb_str(&fam, 3, names[i]);
    }
    for (size_t i = 0; i < nk; i++) {
        pb_uint(&fam, 4, KVL_KIND_GAUGE);
    }
    for (size_t i = 0; i < nr; i++) {
        pb_uint(&fam, 5, 1);
    }
    pb_msg(&defs, 2, &fam);
    pb_msg(env, 4, &defs);
}

static void test_decode_bad_families(void **state)
{
    KVL_UNUSED(state);
    static const char *const ok[] = {"a", "b"};
    static const char *const dup[] = {"a", "a"};
    static const char *const bad[] = {"a", "b-c"};
    static const char *const longname[] = {"a", "abcdefghijklmnopqrst"};
    static const char *many[KVL_FAMILY_MAX + 1];
    for (size_t i = 0; i < KVL_ARRAY_SIZE(many); i++) {
        many[i] = "x";
    }
    struct {
        const char *what;
        uint32_t id;
        const char *const *names;
        size_t n, nk, nr;
        const char *reason;
    } cases[] = {
        {"id 0", 0, ok, 2, 2, 0, "family with id 0"},
        {"no metrics", 1, ok, 0, 0, 0, "0 metrics"},
        {"kinds short", 1, ok, 2, 1, 0, "1 kinds"},
        {"reals short", 1, ok, 2, 2, 1, "1 reals"},
        {"twice", 1, dup, 2, 2, 0, "metric a twice"},
        {"bad name", 1, bad, 2, 2, 0, "bad metric name"},
        {"name of 20", 1, longname, 2, 2, 0, "bad metric name"},
        {"too many", 1, (const char *const *)many, KVL_FAMILY_MAX + 1, KVL_FAMILY_MAX + 1, 0,
         "65 metrics"},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(cases); i++) {
        kvl_buf_t env = {0};
        pb_family(&env, cases[i].id, cases[i].names, cases[i].n, cases[i].nk, cases[i].nr);
        char err[256] = "";
        int rc = decode_buf(&env, err, sizeof(err));
        if (rc != KVL_EDECODE || strstr(err, cases[i].reason) == NULL) {
            fail_msg("family case '%s': rc %d, error '%s'", cases[i].what, rc, err);
        }
        kvl_buf_free(&env);
    }
    /* The good one passes, so the cases above fail for their own reason. */
    kvl_buf_t env = {0};
    pb_family(&env, 1, ok, 2, 2, 2);
    assert_int_equal(decode_buf(&env, NULL, 0), 0);
    kvl_buf_free(&env);
}

/* Group 0: ids 1 2 3 5 7 → value, real, unknown, value, real. */
static const uint32_t g0_ids[] = {1, 2, 3, 5, 7};
static const uint64_t g0_values[] = {1, 18446744073709551557ull};
static const double g0_reals[] = {-0.0, 21.75};
static const uint32_t g0_unknown[] = {2};
/* Group 1 (earlier than group 0): all unknown. */
static const uint32_t g1_ids[] = {2, 5};
static const uint32_t g1_unknown[] = {0, 1};
/* Group 2: ids out of order are allowed on the wire. */
static const uint32_t g2_ids[] = {5, 2, 1};
static const uint64_t g2_values[] = {0, 4000000000ull, 1};

static const kvl_series_def_t g0_defs[] = {
    {1, "rtr1", KVL_SCOPE_DEVICE, "", "reachable", KVL_KIND_GAUGE, 60, false, NULL, 0},
    {2, "rtr1", KVL_SCOPE_DEVICE, "", "response_ms", KVL_KIND_GAUGE, 60, true, NULL, 0},
    {3, "rtr1", KVL_SCOPE_DEVICE, "", "uptime_s", KVL_KIND_GAUGE, 60, false, NULL, 0},
    {5, "rtr1", KVL_SCOPE_INTERFACE, "xe-1/0/0", "in_octets", KVL_KIND_COUNTER, 60, false, NULL, 0},
    {7, "rtr1", KVL_SCOPE_DEVICE, "", "cpu_load", KVL_KIND_GAUGE, 60, true, NULL, 0},
};

static const kvl_label_t ev_fields[] = {{"reason", "timeout"}, {"address", "10.20.1.1"}};

static void make_batch(kvl_group_t groups[3], kvl_event_t events[2], kvl_batch_t *b)
{
    groups[0] = (kvl_group_t){.time_ms = 1700000000123,
                              .ids = g0_ids,
                              .n_ids = 5,
                              .values = g0_values,
                              .n_values = 2,
                              .reals = g0_reals,
                              .n_reals = 2,
                              .unknown = g0_unknown,
                              .n_unknown = 1};
    groups[1] = (kvl_group_t){
        .time_ms = 1699999940000, .ids = g1_ids, .n_ids = 2, .unknown = g1_unknown, .n_unknown = 2};
    groups[2] = (kvl_group_t){
        .time_ms = 1700000060999, .ids = g2_ids, .n_ids = 3, .values = g2_values, .n_values = 3};
    events[0] = (kvl_event_t){.time_ms = 1700000000000,
                              .device = "rtr1",
                              .kind = "device_down",
                              .severity = KVL_SEV_CRITICAL,
                              .text = "no answer for 3 polls",
                              .fields = ev_fields,
                              .n_fields = 2};
    events[1] = (kvl_event_t){.time_ms = -5,
                              .device = "rtr1",
                              .kind = "device_up",
                              .severity = KVL_SEV_INFO,
                              .text = NULL};
    *b = (kvl_batch_t){.seq = 42,
                       .defs = g0_defs,
                       .n_defs = KVL_ARRAY_SIZE(g0_defs),
                       .groups = groups,
                       .n_groups = 3,
                       .events = events,
                       .n_events = 2};
}

static void test_batch(void **state)
{
    KVL_UNUSED(state);
    kvl_group_t groups[3];
    kvl_event_t events[2];
    kvl_msg_t in = {.type = KVL_MSG_BATCH};
    make_batch(groups, events, &in.u.batch);
    kvl_msg_t out;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_int_equal(out.type, KVL_MSG_BATCH);
    assert_int_equal(out.u.batch.seq, 42);
    assert_defs_equal(g0_defs, KVL_ARRAY_SIZE(g0_defs), out.u.batch.defs, out.u.batch.n_defs);
    assert_groups_equal(groups, 3, out.u.batch.groups, out.u.batch.n_groups);
    assert_events_equal(events, 2, out.u.batch.events, out.u.batch.n_events);
    kvl_msg_clear(&out);

    /* A batch of events only (no groups, no definitions). */
    in.u.batch.n_groups = 0;
    in.u.batch.n_defs = 0;
    in.u.batch.seq = UINT64_MAX;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_int_equal(out.u.batch.seq, UINT64_MAX);
    assert_int_equal(out.u.batch.n_groups, 0);
    assert_int_equal(out.u.batch.n_defs, 0);
    assert_events_equal(events, 2, out.u.batch.events, out.u.batch.n_events);
    kvl_msg_clear(&out);
}

static void test_group_iter(void **state)
{
    KVL_UNUSED(state);
    kvl_group_t groups[3];
    kvl_event_t events[2];
    kvl_msg_t in = {.type = KVL_MSG_BATCH};
    make_batch(groups, events, &in.u.batch);
    kvl_msg_t out;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    def_table_t t = {out.u.batch.defs, out.u.batch.n_defs};

    kvl_group_iter_t it;
    kvl_sample_t s;
    kvl_group_iter_init(&it, &out.u.batch.groups[0]);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &t, &s), 1);
    assert_int_equal(s.id, 1);
    assert_string_equal(s.def->metric, "reachable");
    assert_false(s.unknown);
    assert_int_equal(s.value, 1);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &t, &s), 1);
    assert_int_equal(s.id, 2);
    assert_string_equal(s.def->metric, "response_ms");
    assert_false(s.unknown);
    assert_true(s.real == 0.0);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &t, &s), 1);
    assert_int_equal(s.id, 3);
    assert_true(s.unknown);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &t, &s), 1);
    assert_int_equal(s.id, 5);
    assert_false(s.unknown);
    assert_int_equal(s.value, 18446744073709551557ull);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &t, &s), 1);
    assert_int_equal(s.id, 7);
    assert_false(s.unknown);
    assert_true(s.real == 21.75);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &t, &s), 0);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &t, &s), 0);

    /* All unknown. */
    kvl_group_iter_init(&it, &out.u.batch.groups[1]);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(kvl_group_iter_next(&it, lookup, &t, &s), 1);
        assert_int_equal(s.id, g1_ids[k]);
        assert_true(s.unknown);
    }
    assert_int_equal(kvl_group_iter_next(&it, lookup, &t, &s), 0);

    /* Out of order ids: id 2 is a real series here but the group carries 3 integer values,
     * so the arrays do not add up for these definitions. */
    kvl_group_iter_init(&it, &out.u.batch.groups[2]);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &t, &s), 1);
    assert_int_equal(s.id, 5);
    assert_int_equal(s.value, 0);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &t, &s), KVL_EPROTO);

    /* An id with no definition. */
    def_table_t few = {out.u.batch.defs, 2}; /* ids 1 and 2 only */
    kvl_group_iter_init(&it, &out.u.batch.groups[0]);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &few, &s), 1);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &few, &s), 1);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &few, &s), KVL_EPROTO);
    kvl_msg_clear(&out);

    /* Integer series but only reals in the group. */
    static const uint32_t ids[] = {1};
    static const double reals[] = {3.5};
    kvl_group_t g = {.ids = ids, .n_ids = 1, .reals = reals, .n_reals = 1};
    def_table_t dt = {g0_defs, KVL_ARRAY_SIZE(g0_defs)};
    kvl_group_iter_init(&it, &g);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &dt, &s), KVL_EPROTO);
    /* And a real series with only integers. */
    static const uint32_t ids7[] = {7};
    static const uint64_t vals[] = {9};
    g = (kvl_group_t){.ids = ids7, .n_ids = 1, .values = vals, .n_values = 1};
    kvl_group_iter_init(&it, &g);
    assert_int_equal(kvl_group_iter_next(&it, lookup, &dt, &s), KVL_EPROTO);
}

static void test_encode_inconsistent(void **state)
{
    KVL_UNUSED(state);
    static const uint32_t ids[] = {1, 2, 3};
    static const uint64_t vals[] = {10, 20, 30};
    static const uint32_t unk_bad[] = {3};
    static const uint32_t unk_dup[] = {1, 1};
    static const uint32_t unk_down[] = {2, 1};
    kvl_group_t bad[] = {
        /* counts do not add up */
        {.time_ms = 1, .ids = ids, .n_ids = 3, .values = vals, .n_values = 2},
        {.time_ms = 1, .ids = ids, .n_ids = 2, .values = vals, .n_values = 3},
        /* unknown position outside the group */
        {.time_ms = 1,
         .ids = ids,
         .n_ids = 3,
         .values = vals,
         .n_values = 2,
         .unknown = unk_bad,
         .n_unknown = 1},
        /* unknown positions not increasing */
        {.time_ms = 1,
         .ids = ids,
         .n_ids = 3,
         .values = vals,
         .n_values = 1,
         .unknown = unk_dup,
         .n_unknown = 2},
        {.time_ms = 1,
         .ids = ids,
         .n_ids = 3,
         .values = vals,
         .n_values = 1,
         .unknown = unk_down,
         .n_unknown = 2},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        kvl_group_t gs[2] = {
            {.time_ms = 1, .ids = ids, .n_ids = 3, .values = vals, .n_values = 3},
            bad[i],
        };
        kvl_msg_t m = {.type = KVL_MSG_BATCH};
        m.u.batch = (kvl_batch_t){.seq = 1, .groups = gs, .n_groups = 2};
        kvl_buf_t b = {0};
        assert_int_equal(kvl_buf_append(&b, "xy", 2), 0);
        assert_int_equal(kvl_wire_encode(&m, &b), KVL_EINVAL);
        assert_int_equal(b.len, 2); /* nothing appended */
        /* The same group alone, first in the batch, is refused too. */
        m.u.batch.groups = &bad[i];
        m.u.batch.n_groups = 1;
        assert_int_equal(kvl_wire_encode(&m, &b), KVL_EINVAL);
        assert_int_equal(b.len, 2);
        kvl_buf_free(&b);
    }
    /* Ids and times the decoder would refuse: id 0, ids further apart than a delta can
     * say, times further from the batch's first than 64 bits can say. */
    static const uint32_t id0[] = {1, 0};
    static const uint32_t far[] = {1, 0x90000000u};
    static const uint32_t far_down[] = {0xfffffff0u, 2};
    static const uint32_t near_ids[] = {1, 0x80000000u}; /* a delta of exactly INT32_MAX */
    kvl_group_t unrepresentable[][2] = {
        {{.time_ms = 1, .ids = id0, .n_ids = 2, .values = vals, .n_values = 2}},
        {{.time_ms = 1, .ids = far, .n_ids = 2, .values = vals, .n_values = 2}},
        {{.time_ms = 1, .ids = far_down, .n_ids = 2, .values = vals, .n_values = 2}},
        {{.time_ms = INT64_MIN, .ids = ids, .n_ids = 1, .values = vals, .n_values = 1},
         {.time_ms = 1, .ids = ids, .n_ids = 1, .values = vals, .n_values = 1}},
        {{.time_ms = INT64_MAX, .ids = ids, .n_ids = 1, .values = vals, .n_values = 1},
         {.time_ms = -2, .ids = ids, .n_ids = 1, .values = vals, .n_values = 1}},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(unrepresentable); i++) {
        kvl_msg_t m = {.type = KVL_MSG_BATCH};
        m.u.batch = (kvl_batch_t){.seq = 1,
                                  .groups = unrepresentable[i],
                                  .n_groups = unrepresentable[i][1].n_ids ? 2 : 1};
        kvl_buf_t b = {0};
        if (kvl_wire_encode(&m, &b) != KVL_EINVAL) {
            fail_msg("unrepresentable case %zu encoded", i);
        }
        assert_int_equal(b.len, 0);
        kvl_buf_free(&b);
    }
    /* The edges of what can be said do encode, and decode back. */
    kvl_group_t edge[2] = {
        {.time_ms = INT64_MIN, .ids = near_ids, .n_ids = 2, .values = vals, .n_values = 2},
        {.time_ms = -1, .ids = ids, .n_ids = 1, .values = vals, .n_values = 1},
    };
    kvl_msg_t em = {.type = KVL_MSG_BATCH};
    em.u.batch = (kvl_batch_t){.seq = 1, .groups = edge, .n_groups = 2};
    kvl_msg_t out;
    assert_int_equal(round_trip(&em, &out, NULL), 0);
    assert_groups_equal(edge, 2, out.u.batch.groups, out.u.batch.n_groups);
    kvl_msg_clear(&out);

    /* A message without a type. */
    kvl_msg_t none = {.type = KVL_MSG_NONE};
    kvl_buf_t b = {0};
    assert_int_equal(kvl_wire_encode(&none, &b), KVL_EINVAL);
    assert_int_equal(b.len, 0);
    kvl_buf_free(&b);
}

/* Several messages appended to one buffer come back as consecutive frames. */
static void test_stream_of_messages(void **state)
{
    KVL_UNUSED(state);
    kvl_buf_t b = {0};
    kvl_msg_t m = {.type = KVL_MSG_ACK};
    for (uint64_t seq = 1; seq <= 5; seq++) {
        m.u.ack.seq = seq * 1000;
        assert_int_equal(kvl_wire_encode(&m, &b), 0);
    }
    kvl_frame_reader_t r;
    kvl_frame_reader_init(&r, 0);
    assert_int_equal(kvl_frame_reader_feed(&r, b.data, b.len), 0);
    const uint8_t *p;
    size_t n;
    for (uint64_t seq = 1; seq <= 5; seq++) {
        assert_int_equal(kvl_frame_next(&r, &p, &n), 1);
        kvl_msg_t out = {0};
        assert_int_equal(kvl_wire_decode(p, n, &out, NULL, 0), 0);
        assert_int_equal(out.type, KVL_MSG_ACK);
        assert_int_equal(out.u.ack.seq, seq * 1000);
        kvl_msg_clear(&out);
    }
    assert_int_equal(kvl_frame_next(&r, &p, &n), 0);
    kvl_frame_reader_free(&r);
    kvl_buf_free(&b);
}

/* ------------------------------------------------------------ malformed payloads ------ */

/* The hand writer produces what the decoder accepts, so the cases below differ from a
 * valid message in one respect only. */
static void test_hand_written_valid(void **state)
{
    KVL_UNUSED(state);
    static const int64_t deltas[] = {1, 1};
    static const uint64_t values[] = {1, 86400};
    kvl_buf_t env = {0};
    pb_batch_with_group(&env, 7, 1700000000000, -250, deltas, 2, values, 2, NULL, 0);
    kvl_msg_t m = {0};
    char err[256];
    assert_int_equal(kvl_wire_decode(env.data, env.len, &m, err, sizeof(err)), 0);
    assert_int_equal(m.type, KVL_MSG_BATCH);
    assert_int_equal(m.u.batch.seq, 7);
    assert_int_equal(m.u.batch.n_defs, 2);
    assert_int_equal(m.u.batch.n_groups, 1);
    assert_int_equal(m.u.batch.groups[0].time_ms, 1700000000000 - 250);
    assert_int_equal(m.u.batch.groups[0].n_ids, 2);
    assert_int_equal(m.u.batch.groups[0].ids[0], 1);
    assert_int_equal(m.u.batch.groups[0].ids[1], 2);
    assert_int_equal(m.u.batch.groups[0].values[1], 86400);
    kvl_msg_clear(&m);
    kvl_buf_free(&env);
}

static void test_decode_bad_groups(void **state)
{
    KVL_UNUSED(state);
    static const int64_t d2[] = {1, 1};
    static const int64_t d3[] = {1, 1, 1};
    static const uint64_t v1[] = {5};
    static const uint64_t v2[] = {5, 6};
    static const uint64_t v3[] = {5, 6, 7};
    static const uint64_t u_out[] = {2};
    static const uint64_t u_dup[] = {1, 1};
    static const uint64_t u_down[] = {1, 0};
    static const int64_t d_zero[] = {0};
    static const int64_t d_neg[] = {3, -5};
    static const int64_t d_back_to_zero[] = {2, -2};
    static const int64_t d_huge[] = {INT32_MAX, INT32_MAX, INT32_MAX};
    struct {
        const char *what;
        const int64_t *d;
        size_t nd;
        const uint64_t *v;
        size_t nv;
        const uint64_t *u;
        size_t nu;
        const char *reason; /* part of the error text */
    } cases[] = {
        {"2 ids, 1 value", d2, 2, v1, 1, NULL, 0, "2 ids but 1 values"},
        {"2 ids, 3 values", d2, 2, v3, 3, NULL, 0, "2 ids but 3 values"},
        {"3 ids, 2 values, 2 unknown", d3, 3, v2, 2, u_dup, 2, "3 ids"},
        {"values but no ids", NULL, 0, v1, 1, NULL, 0, "0 ids"},
        {"unknown position outside", d2, 2, v1, 1, u_out, 1, "unknown-value position"},
        {"unknown positions repeated", d3, 3, v1, 1, u_dup, 2, "unknown-value position"},
        {"unknown positions decreasing", d3, 3, v1, 1, u_down, 2, "unknown-value position"},
        {"id 0", d_zero, 1, v1, 1, NULL, 0, "id out of range"},
        {"negative id", d_neg, 2, v2, 2, NULL, 0, "id out of range"},
        {"id back to 0", d_back_to_zero, 2, v2, 2, NULL, 0, "id out of range"},
        {"id above 32 bits", d_huge, 3, v3, 3, NULL, 0, "id out of range"},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(cases); i++) {
        kvl_buf_t env = {0};
        pb_batch_with_group(&env, 1, 1700000000000, 0, cases[i].d, cases[i].nd, cases[i].v,
                            cases[i].nv, cases[i].u, cases[i].nu);
        char err[256] = "";
        int rc = decode_buf(&env, err, sizeof(err));
        if (rc != KVL_EDECODE || strstr(err, cases[i].reason) == NULL) {
            fail_msg("case '%s': rc %d, error '%s'", cases[i].what, rc, err);
        }
        kvl_buf_free(&env);
    }
}

static void test_decode_bad_defs(void **state)
{
    KVL_UNUSED(state);
    struct {
        const char *what;
        uint32_t id;
        const char *device;
        int scope;
        const char *metric;
        int kind;
        const char *reason;
    } cases[] = {
        {"id 0", 0, "rtr1", KVL_SCOPE_DEVICE, "reachable", KVL_KIND_GAUGE, "id 0"},
        {"scope unspecified", 4, "rtr1", 0, "reachable", KVL_KIND_GAUGE, "unknown scope 0"},
        {"scope 6", 4, "rtr1", 6, "reachable", KVL_KIND_GAUGE, "unknown scope 6"},
        {"scope huge", 4, "rtr1", 1000000, "reachable", KVL_KIND_GAUGE, "unknown scope"},
        {"kind unspecified", 4, "rtr1", KVL_SCOPE_DEVICE, "reachable", 0, "unknown kind 0"},
        {"kind 9", 4, "rtr1", KVL_SCOPE_DEVICE, "reachable", 9, "unknown kind 9"},
        {"no device", 4, "", KVL_SCOPE_DEVICE, "reachable", KVL_KIND_GAUGE, "device or metric"},
        {"no metric", 4, "rtr1", KVL_SCOPE_DEVICE, "", KVL_KIND_GAUGE, "device or metric"},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(cases); i++) {
        /* In a SeriesDefs message, after a good definition ... */
        kvl_buf_t defs = {0}, env = {0};
        pb_def(&defs, 1, 1, "rtr1", KVL_SCOPE_DEVICE, "reachable", KVL_KIND_GAUGE);
        pb_def(&defs, 1, cases[i].id, cases[i].device, cases[i].scope, cases[i].metric,
               cases[i].kind);
        pb_msg(&env, 4, &defs);
        char err[256] = "";
        int rc = decode_buf(&env, err, sizeof(err));
        if (rc != KVL_EDECODE || strstr(err, cases[i].reason) == NULL) {
            fail_msg("series_defs case '%s': rc %d, error '%s'", cases[i].what, rc, err);
        }
        kvl_buf_free(&env);

        /* ... and among a batch's definitions. */
        kvl_buf_t batch = {0};
        pb_uint(&batch, 1, 9);
        pb_def(&batch, 3, cases[i].id, cases[i].device, cases[i].scope, cases[i].metric,
               cases[i].kind);
        pb_msg(&env, 5, &batch);
        err[0] = '\0';
        rc = decode_buf(&env, err, sizeof(err));
        if (rc != KVL_EDECODE || strstr(err, cases[i].reason) == NULL) {
            fail_msg("batch case '%s': rc %d, error '%s'", cases[i].what, rc, err);
        }
        kvl_buf_free(&env);
    }
}

/* The capture's family instance (KVL_SCOPE_CAPTURE) is a later scope too: an older
 * collector sees none of it, this one all of it. */
static void test_capture_scope(void **state)
{
    KVL_UNUSED(state);
    static const char *const metrics[] = {"bytes_in", "hs_server_min_ms"};
    static const kvl_kind_t kinds[] = {KVL_KIND_COUNTER, KVL_KIND_GAUGE};
    static const bool reals[] = {false, true};
    kvl_family_t fam = {
        .name = "capture", .n = 2, .metrics = metrics, .kinds = kinds, .reals = reals, .id = 3};
    kvl_series_def_t def = {.id = 10,
                            .device = "agent1",
                            .scope = KVL_SCOPE_CAPTURE,
                            .instance = "eth1",
                            .interval_s = 60,
                            .family = 3};
    uint32_t ids[] = {10, 11};
    uint64_t v[] = {1234};
    double r[] = {4.5};
    kvl_group_t g = {.time_ms = 5000,
                     .ids = ids,
                     .n_ids = 2,
                     .values = v,
                     .n_values = 1,
                     .reals = r,
                     .n_reals = 1,
                     .later = true};
    kvl_msg_t in = {.type = KVL_MSG_BATCH};
    in.u.batch = (kvl_batch_t){.seq = 9,
                               .families = &fam,
                               .n_families = 1,
                               .defs = &def,
                               .n_defs = 1,
                               .groups = &g,
                               .n_groups = 1};
    kvl_buf_t b = {0};
    assert_int_equal(kvl_wire_encode(&in, &b), 0);
    Kaaval__V1__Envelope *env =
        kaaval__v1__envelope__unpack(NULL, b.len - KVL_FRAME_HEADER, b.data + KVL_FRAME_HEADER);
    assert_non_null(env);
    assert_int_equal(env->batch->n_defs, 0);
    assert_int_equal(env->batch->n_groups, 0);
    assert_int_equal(env->batch->n_later_defs, 1);
    assert_int_equal(env->batch->n_later_groups, 1);
    kaaval__v1__envelope__free_unpacked(env, NULL);
    kvl_msg_t out;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_int_equal(out.u.batch.n_defs, 1);
    assert_int_equal(out.u.batch.defs[0].scope, KVL_SCOPE_CAPTURE);
    assert_string_equal(out.u.batch.defs[0].instance, "eth1");
    assert_int_equal(out.u.batch.defs[0].family, 3);
    assert_int_equal(out.u.batch.n_groups, 1);
    assert_true(out.u.batch.groups[0].later);
    assert_int_equal(out.u.batch.groups[0].values[0], 1234);
    kvl_msg_clear(&out);
    kvl_buf_free(&b);
}

/* A neighbour's definition and group ride in later_defs/later_groups: decoded after the others
 * (the group marked later), while the fields an older collector knows hold only the device's
 * definition and group, so it never meets the unknown scope. */
static void test_later_scope(void **state)
{
    KVL_UNUSED(state);
    kvl_label_t nl[] = {{"protocol", "lldp"}, {"local_if", "Gi0/1"}, {"sys_name", "dist-1"}};
    kvl_series_def_t defs[] = {
        {.id = 1,
         .device = "sw1",
         .scope = KVL_SCOPE_DEVICE,
         .instance = "",
         .metric = "reachable",
         .kind = KVL_KIND_GAUGE,
         .interval_s = 60},
        {.id = 2,
         .device = "sw1",
         .scope = KVL_SCOPE_NEIGHBOUR,
         .instance = "lldp.1.3",
         .metric = "present",
         .kind = KVL_KIND_GAUGE,
         .interval_s = 60,
         .labels = nl,
         .n_labels = 3},
    };
    uint32_t id_dev[] = {1}, id_nbr[] = {2};
    uint64_t one[] = {1};
    kvl_group_t groups[] = {
        {.time_ms = 1000, .ids = id_nbr, .n_ids = 1, .values = one, .n_values = 1, .later = true},
        {.time_ms = 1001, .ids = id_dev, .n_ids = 1, .values = one, .n_values = 1},
    };
    kvl_msg_t in = {.type = KVL_MSG_BATCH};
    in.u.batch =
        (kvl_batch_t){.seq = 7, .defs = defs, .n_defs = 2, .groups = groups, .n_groups = 2};
    kvl_buf_t b = {0};
    assert_int_equal(kvl_wire_encode(&in, &b), 0);

    /* as an older collector reads it */
    Kaaval__V1__Envelope *env =
        kaaval__v1__envelope__unpack(NULL, b.len - KVL_FRAME_HEADER, b.data + KVL_FRAME_HEADER);
    assert_non_null(env);
    assert_int_equal(env->msg_case, KAAVAL__V1__ENVELOPE__MSG_BATCH);
    assert_int_equal(env->batch->n_defs, 1);
    assert_int_equal(env->batch->defs[0]->scope, KVL_SCOPE_DEVICE);
    assert_int_equal(env->batch->n_groups, 1);
    assert_int_equal(env->batch->n_later_defs, 1);
    assert_int_equal(env->batch->n_later_groups, 1);
    kaaval__v1__envelope__free_unpacked(env, NULL);

    /* as this collector reads it: everything, the later group last */
    kvl_msg_t out;
    assert_int_equal(round_trip(&in, &out, NULL), 0);
    assert_int_equal(out.u.batch.n_defs, 2);
    assert_int_equal(out.u.batch.defs[1].scope, KVL_SCOPE_NEIGHBOUR);
    assert_string_equal(out.u.batch.defs[1].instance, "lldp.1.3");
    assert_int_equal(out.u.batch.defs[1].n_labels, 3);
    assert_string_equal(out.u.batch.defs[1].labels[2].value, "dist-1");
    assert_int_equal(out.u.batch.n_groups, 2);
    assert_false(out.u.batch.groups[0].later);
    assert_int_equal(out.u.batch.groups[0].ids[0], 1);
    assert_true(out.u.batch.groups[1].later);
    assert_int_equal(out.u.batch.groups[1].ids[0], 2);
    assert_int_equal(out.u.batch.groups[1].time_ms, 1000);
    kvl_msg_clear(&out);

    /* the connection's definitions (SeriesDefs) likewise */
    kvl_msg_t sd = {.type = KVL_MSG_SERIES_DEFS};
    sd.u.series_defs.defs = defs;
    sd.u.series_defs.n = 2;
    kvl_buf_free(&b);
    assert_int_equal(kvl_wire_encode(&sd, &b), 0);
    env = kaaval__v1__envelope__unpack(NULL, b.len - KVL_FRAME_HEADER, b.data + KVL_FRAME_HEADER);
    assert_non_null(env);
    assert_int_equal(env->series_defs->n_defs, 1);
    assert_int_equal(env->series_defs->n_later_defs, 1);
    kaaval__v1__envelope__free_unpacked(env, NULL);
    assert_int_equal(round_trip(&sd, &out, NULL), 0);
    assert_int_equal(out.u.series_defs.n, 2);
    assert_int_equal(out.u.series_defs.defs[1].scope, KVL_SCOPE_NEIGHBOUR);
    kvl_msg_clear(&out);
    kvl_buf_free(&b);

    /* an old scope in later_defs, or a later one in defs, is refused */
    kvl_buf_t batch = {0}, envb = {0};
    pb_uint(&batch, 1, 9);
    pb_def(&batch, 8, 3, "sw1", KVL_SCOPE_DEVICE, "reachable", KVL_KIND_GAUGE);
    pb_msg(&envb, 5, &batch);
    char err[256] = "";
    assert_int_equal(decode_buf(&envb, err, sizeof(err)), KVL_EDECODE);
    assert_non_null(strstr(err, "unknown scope 1 (in later_defs)"));
    kvl_buf_free(&envb);
}

static void test_decode_bad_envelopes(void **state)
{
    KVL_UNUSED(state);
    char err[256];

    /* Empty payload: an envelope holding nothing. */
    kvl_msg_t m = {0};
    assert_int_equal(kvl_wire_decode((const uint8_t *)"", 0, &m, err, sizeof(err)), KVL_EDECODE);
    assert_true(err[0] != '\0');
    kvl_msg_clear(&m);

    /* A batch with sequence number 0. */
    kvl_buf_t env = {0}, batch = {0};
    pb_uint(&batch, 2, 1000);
    pb_msg(&env, 5, &batch);
    assert_int_equal(decode_buf(&env, err, sizeof(err)), KVL_EDECODE);
    assert_non_null(strstr(err, "sequence number 0"));
    kvl_buf_free(&env);

    /* A length running past the end of the payload. */
    static const uint8_t past_end[] = {0x2a, 0x10, 0x08, 0x01};
    assert_int_equal(kvl_wire_decode(past_end, sizeof(past_end), &m, err, sizeof(err)),
                     KVL_EDECODE);
    kvl_msg_clear(&m);

    /* A varint that never ends. */
    static const uint8_t endless[] = {0x30, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(kvl_wire_decode(endless, sizeof(endless), &m, err, sizeof(err)), KVL_EDECODE);
    kvl_msg_clear(&m);

    /* Names are bytes as the device reported them: a string that is not UTF-8 (an
     * interface description in Latin-1) passes through unchanged. */
    kvl_buf_t hello = {0};
    pb_uint(&hello, 1, 1);
    pb_bytes(&hello, 2, "caf\xe9", 4);
    pb_msg(&env, 1, &hello);
    assert_int_equal(kvl_wire_decode(env.data, env.len, &m, err, sizeof(err)), 0);
    assert_int_equal(m.type, KVL_MSG_HELLO);
    assert_string_equal(m.u.hello.agent_id, "caf\xe9");
    kvl_msg_clear(&m);
    kvl_buf_free(&env);

    /* A NULL or tiny err buffer is fine. */
    assert_int_equal(kvl_wire_decode((const uint8_t *)"", 0, &m, NULL, 0), KVL_EDECODE);
    kvl_msg_clear(&m);
    char tiny[4];
    assert_int_equal(kvl_wire_decode((const uint8_t *)"", 0, &m, tiny, sizeof(tiny)), KVL_EDECODE);
    assert_int_equal(strlen(tiny), 3);
    kvl_msg_clear(&m);
}

/* Group times are base + offset; a sum outside 64 bits is not a time. */
static void test_decode_time_overflow(void **state)
{
    KVL_UNUSED(state);
    static const int64_t d1[] = {1};
    static const uint64_t v1[] = {1};
    struct {
        int64_t base, off;
    } cases[] = {
        {INT64_MAX, 1},
        {INT64_MIN, -1},
        {INT64_MAX - 10, INT64_MAX},
        {INT64_MIN, INT64_MIN},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(cases); i++) {
        kvl_buf_t env = {0};
        pb_batch_with_group(&env, 1, cases[i].base, cases[i].off, d1, 1, v1, 1, NULL, 0);
        char err[256] = "";
        int rc = decode_buf(&env, err, sizeof(err));
        if (rc != KVL_EDECODE) {
            fail_msg("base %lld offset %lld: rc %d", (long long)cases[i].base,
                     (long long)cases[i].off, rc);
        }
        kvl_buf_free(&env);
    }
    /* The extremes themselves are representable. */
    kvl_buf_t env = {0};
    pb_batch_with_group(&env, 1, INT64_MAX - 1, 1, d1, 1, v1, 1, NULL, 0);
    kvl_msg_t m = {0};
    assert_int_equal(kvl_wire_decode(env.data, env.len, &m, NULL, 0), 0);
    assert_int_equal(m.u.batch.groups[0].time_ms, INT64_MAX);
    kvl_msg_clear(&m);
    kvl_buf_free(&env);
}

static void test_decode_truncated(void **state)
{
    KVL_UNUSED(state);
    kvl_group_t groups[3];
    kvl_event_t events[2];
    kvl_msg_t in = {.type = KVL_MSG_BATCH};
    make_batch(groups, events, &in.u.batch);
    kvl_buf_t b = {0};
    assert_int_equal(kvl_wire_encode(&in, &b), 0);
    const uint8_t *payload = b.data + KVL_FRAME_HEADER;
    size_t n = b.len - KVL_FRAME_HEADER;
    /* The envelope holds one length-delimited field, so every proper prefix is invalid. */
    for (size_t cut = 0; cut < n; cut++) {
        uint8_t *copy = malloc(cut ? cut : 1);
        assert_non_null(copy);
        memcpy(copy, payload, cut);
        kvl_msg_t m = {0};
        char err[256] = "";
        int rc = kvl_wire_decode(copy, cut, &m, err, sizeof(err));
        if (rc != KVL_EDECODE) {
            fail_msg("prefix of %zu/%zu bytes: rc %d", cut, n, rc);
        }
        assert_true(err[0] != '\0');
        kvl_msg_clear(&m);
        free(copy);
    }
    kvl_msg_t m = {0};
    assert_int_equal(kvl_wire_decode(payload, n, &m, NULL, 0), 0);
    kvl_msg_clear(&m);
    kvl_buf_free(&b);
}

/* Random bytes and random corruptions of a valid batch: 0 or KVL_EDECODE, never a crash,
 * and a decoded batch's groups always add up. */
static void test_decode_random(void **state)
{
    KVL_UNUSED(state);
    kvl_group_t groups[3];
    kvl_event_t events[2];
    kvl_msg_t in = {.type = KVL_MSG_BATCH};
    make_batch(groups, events, &in.u.batch);
    kvl_buf_t good = {0};
    assert_int_equal(kvl_wire_encode(&in, &good), 0);
    const uint8_t *gp = good.data + KVL_FRAME_HEADER;
    size_t gn = good.len - KVL_FRAME_HEADER;
    assert_true(gn <= 512);

    uint32_t x = 2024;
    int decoded = 0;
    for (int round = 0; round < 20000; round++) {
        uint8_t data[512];
        size_t len;
        if (round % 2 == 0) {
            x = x * 1103515245u + 12345u;
            len = (x >> 16) % sizeof(data);
            for (size_t i = 0; i < len; i++) {
                x = x * 1103515245u + 12345u;
                data[i] = (uint8_t)(x >> 16);
            }
        } else {
            len = gn;
            memcpy(data, gp, gn);
            for (int k = 0; k < 1 + round % 4; k++) {
                x = x * 1103515245u + 12345u;
                data[(x >> 8) % len] ^= (uint8_t)(1u << ((x >> 4) % 8));
            }
        }
        kvl_msg_t m = {0};
        char err[128];
        int rc = kvl_wire_decode(data, len, &m, err, sizeof(err));
        assert_true(rc == 0 || rc == KVL_EDECODE);
        if (rc == 0) {
            decoded++;
            if (m.type == KVL_MSG_BATCH) {
                for (size_t g = 0; g < m.u.batch.n_groups; g++) {
                    const kvl_group_t *grp = &m.u.batch.groups[g];
                    assert_int_equal(grp->n_values + grp->n_reals + grp->n_unknown, grp->n_ids);
                    for (size_t k = 0; k < grp->n_ids; k++) {
                        assert_true(grp->ids[k] != 0);
                    }
                }
            }
        } else {
            assert_int_equal(m.type, KVL_MSG_NONE);
        }
        kvl_msg_clear(&m);
    }
    /* Single bit flips leave some messages valid; the loop did exercise success too. */
    assert_true(decoded > 0);
    kvl_buf_free(&good);
}

/* ------------------------------------------------------------ size --------------------- */

/* 1000 interfaces x 12 counters at one poll, with values of realistic size, in one batch.
 * Prints bytes per sample for the steady state (definitions sent earlier) and for a first
 * batch that carries its definitions. */
static void test_bytes_per_sample(void **state)
{
    KVL_UNUSED(state);
    enum { N_IF = 1000, N_CTR = 12 };
    static const char *const metrics[N_CTR] = {
        "in_octets",     "out_octets",     "in_ucast_pkts", "out_ucast_pkts",
        "in_mcast_pkts", "out_mcast_pkts", "in_bcast_pkts", "out_bcast_pkts",
        "in_errors",     "out_errors",     "in_discards",   "out_discards",
    };
    kvl_group_t *groups = calloc(N_IF, sizeof(*groups));
    uint32_t *ids = calloc(N_IF * N_CTR, sizeof(*ids));
    uint64_t *vals = calloc(N_IF * N_CTR, sizeof(*vals));
    kvl_series_def_t *defs = calloc(N_IF * N_CTR, sizeof(*defs));
    char(*names)[32] = calloc(N_IF, sizeof(*names));
    kvl_label_t(*labels)[2] = calloc(N_IF, sizeof(*labels));
    char(*idx)[16] = calloc(N_IF, sizeof(*idx));
    assert_true(groups && ids && vals && defs && names && labels && idx);

    uint32_t x = 7;
    int64_t t0 = 1700000000000;
    for (size_t i = 0; i < N_IF; i++) {
        snprintf(names[i], sizeof(names[i]), "GigabitEthernet%zu/0/%zu", i / 48 + 1, i % 48 + 1);
        snprintf(idx[i], sizeof(idx[i]), "%zu", i + 1);
        labels[i][0] = (kvl_label_t){"ifIndex", idx[i]};
        labels[i][1] = (kvl_label_t){"ifType", "6"};
        for (size_t k = 0; k < N_CTR; k++) {
            size_t j = i * N_CTR + k;
            x = x * 1103515245u + 12345u;
            uint64_t r = x >> 8;
            ids[j] = (uint32_t)(j + 1);
            /* Octets in the terabytes, packets in the billions (unicast) to millions
             * (multicast, broadcast), errors and discards in the hundreds. */
            if (k < 2) {
                vals[j] = 1000000000000ull + r * 1000u;
            } else if (k < 4) {
                vals[j] = 2000000000ull + r;
            } else if (k < 8) {
                vals[j] = 1000000ull + r % 1000000u;
            } else {
                vals[j] = r % 500u;
            }
            defs[j] = (kvl_series_def_t){(uint32_t)(j + 1),
                                         "bhq-tvm-north-sw1",
                                         KVL_SCOPE_INTERFACE,
                                         names[i],
                                         metrics[k],
                                         KVL_KIND_COUNTER,
                                         60,
                                         false,
                                         labels[i],
                                         2};
        }
        /* One SNMP walk answers over a few hundred milliseconds. */
        groups[i] = (kvl_group_t){.time_ms = t0 + (int64_t)(i / 50) * 13,
                                  .ids = &ids[i * N_CTR],
                                  .n_ids = N_CTR,
                                  .values = &vals[i * N_CTR],
                                  .n_values = N_CTR};
    }
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    m.u.batch = (kvl_batch_t){.seq = 1000, .groups = groups, .n_groups = N_IF};
    kvl_msg_t out;
    size_t steady = 0, first = 0;
    assert_int_equal(round_trip(&m, &out, &steady), 0);
    assert_groups_equal(groups, N_IF, out.u.batch.groups, out.u.batch.n_groups);
    kvl_msg_clear(&out);

    m.u.batch.defs = defs;
    m.u.batch.n_defs = N_IF * N_CTR;
    assert_int_equal(round_trip(&m, &out, &first), 0);
    assert_defs_equal(defs, N_IF * N_CTR, out.u.batch.defs, out.u.batch.n_defs);
    kvl_msg_clear(&out);

    double samples = N_IF * N_CTR;
    printf("# wire size: %d interfaces x %d counters = %.0f samples\n", N_IF, N_CTR, samples);
    printf("#   steady batch: %zu bytes, %.2f bytes/sample\n", steady, (double)steady / samples);
    printf("#   with definitions: %zu bytes, %.2f bytes/sample\n", first, (double)first / samples);
    free(groups);
    free(ids);
    free(vals);
    free(defs);
    free(names);
    free(labels);
    free(idx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_hello_positions_optional),
        cmocka_unit_test(test_welcome_refusal_ack),
        cmocka_unit_test(test_series_defs),
        cmocka_unit_test(test_families),
        cmocka_unit_test(test_decode_bad_families),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_group_iter),
        cmocka_unit_test(test_encode_inconsistent),
        cmocka_unit_test(test_stream_of_messages),
        cmocka_unit_test(test_hand_written_valid),
        cmocka_unit_test(test_decode_bad_groups),
        cmocka_unit_test(test_decode_bad_defs),
        cmocka_unit_test(test_heartbeat),
        cmocka_unit_test(test_decode_bad_envelopes),
        cmocka_unit_test(test_decode_time_overflow),
        cmocka_unit_test(test_decode_truncated),
        cmocka_unit_test(test_later_scope),
        cmocka_unit_test(test_capture_scope),
        cmocka_unit_test(test_decode_random),
        cmocka_unit_test(test_bytes_per_sample),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
