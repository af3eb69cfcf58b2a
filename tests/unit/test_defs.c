/*
 * test_defs.c — the ingest's definitions tables (collector/ingest/agents.c): memory held
 * follows the definitions, not the ids they name (16,777,216 and 2^32-1 cost what id 1
 * costs); the same definitions sent again do not grow it; a changed one replaces the old
 * and the old is freed; the per-agent limits and names that cannot become a file refuse
 * with a reason; a checkpoint stores back into the same table; samples too far ahead or
 * too old are dropped from a batch, counted, and the rest journaled; the definitions of
 * an agent gone are released after agent_state_ttl (a real ingest over 127.0.0.1).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "collector_config.h"
#include "ingest.h"
#include "ingest_internal.h"
#include "kvl.h"
#include "sink.h"
#include "timeutil.h"
#include "wire.h"

static kvl_collector_cfg_t *cfg_with(const char *extra)
{
    char text[1024], err[512];
    snprintf(text, sizeof(text),
             "listen: 127.0.0.1:1\ndata_dir: /nonexistent\nlog_level: error\ninsecure: true\n%s",
             extra);
    kvl_collector_cfg_t *c = kvl_collector_cfg_parse("collector.yaml", text, err, sizeof(err));
    if (c == NULL) {
        fail_msg("%s", err);
    }
    return c;
}

static const char *const if_metrics[] = {"in_octets", "out_octets", "in_packets",  "out_packets",
                                         "in_errors", "out_errors", "in_discards", "out_discards",
                                         "in_mcast",  "out_mcast",  "in_bcast",    "out_bcast",
                                         "speed",     "oper",       "admin"};
static const kvl_kind_t if_kinds[15] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2};

static kvl_family_t if_family(uint32_t id)
{
    return (kvl_family_t){
        .id = id, .name = "if", .n = 15, .metrics = if_metrics, .kinds = if_kinds, .reals = NULL};
}

static kvl_series_def_t one_def(uint32_t id, const char *device, const char *metric)
{
    return (kvl_series_def_t){.id = id,
                              .device = device,
                              .scope = KVL_SCOPE_DEVICE,
                              .instance = "",
                              .metric = metric,
                              .kind = KVL_KIND_GAUGE,
                              .interval_s = 60};
}

static kvl_series_def_t if_def(uint32_t id, uint32_t family, const char *instance)
{
    return (kvl_series_def_t){.id = id,
                              .device = "sw1",
                              .scope = KVL_SCOPE_INTERFACE,
                              .instance = instance,
                              .interval_s = 60,
                              .family = family};
}

/* A table the way the ingest makes one: only the configuration is read. */
static defs_table_t *table(const kvl_collector_cfg_t *cfg)
{
    kvl_ingest_t in;
    memset(&in, 0, sizeof(in));
    in.cfg = cfg;
    defs_table_t *t = ingest_defs_new(&in, "lab");
    assert_non_null(t);
    return t;
}

static void test_ids_do_not_size_memory(void **state)
{
    (void)state;
    kvl_collector_cfg_t *cfg = cfg_with("");
    defs_table_t *t = table(cfg);
    size_t empty = ingest_defs_bytes(t);
    const char *why = NULL;
    kvl_series_def_t d[] = {one_def(16777216u, "sw1", "cpu"), one_def(UINT32_MAX, "sw1", "mem")};
    assert_int_equal(ingest_store_defs(t, NULL, 0, d, 2, &why), 0);
    /* two definitions: a block each and the map's first 64 slots, far from the 500 MB an
     * array indexed by id took */
    assert_true(ingest_defs_bytes(t) - empty < 4096);
    assert_int_equal(ingest_defs_series(t), 2);
    assert_string_equal(ingest_defs_find(t, 16777216u)->metric, "cpu");
    assert_string_equal(ingest_defs_find(t, UINT32_MAX)->metric, "mem");
    assert_null(ingest_defs_find(t, 1));
    assert_null(ingest_defs_find(t, 16777217u));
    assert_null(ingest_defs_find(t, 0)); /* 0 marks an empty slot, never an entry */
    /* a family instance that would run past 2^32-1, and id 0: refused, nothing held */
    kvl_family_t f = if_family(7);
    kvl_series_def_t past = if_def(UINT32_MAX - 3, 7, "ge-0/0/1");
    assert_int_equal(ingest_store_defs(t, &f, 1, &past, 1, &why), KVL_EPROTO);
    assert_non_null(strstr(why, "out of range"));
    kvl_series_def_t zero = one_def(0, "sw1", "x");
    assert_int_equal(ingest_store_defs(t, NULL, 0, &zero, 1, &why), KVL_EPROTO);
    assert_int_equal(ingest_defs_series(t), 2);
    /* many sparse ids: memory per id, whatever the spread */
    size_t before = ingest_defs_bytes(t);
    for (uint32_t i = 1; i <= 1000; i++) {
        kvl_series_def_t s = one_def(i * 4000000u + 17u, "sw1", "m");
        assert_int_equal(ingest_store_defs(t, NULL, 0, &s, 1, &why), 0);
    }
    assert_true(ingest_defs_bytes(t) - before < 1000 * 256);
    ingest_defs_free(t);
    kvl_collector_cfg_free(cfg);
}

static void test_repeats_not_copied(void **state)
{
    (void)state;
    kvl_collector_cfg_t *cfg = cfg_with("");
    defs_table_t *t = table(cfg);
    const char *why = NULL;
    kvl_family_t f = if_family(3);
    kvl_series_def_t d[4];
    char names[4][16];
    for (int i = 0; i < 4; i++) {
        snprintf(names[i], sizeof(names[i]), "ge-0/0/%d", i);
        d[i] = if_def(1 + 15 * (uint32_t)i, 3, names[i]);
    }
    assert_int_equal(ingest_store_defs(t, &f, 1, d, 4, &why), 0);
    assert_int_equal(ingest_defs_series(t), 60);
    size_t held = ingest_defs_bytes(t);
    /* a frame repeating the family and the definitions: nothing more held */
    for (int r = 0; r < 20000; r++) {
        assert_int_equal(ingest_store_defs(t, &f, 1, d, 4, &why), 0);
    }
    assert_int_equal(ingest_defs_bytes(t), held);
    assert_int_equal(ingest_defs_families(t), 1);
    const kvl_series_def_t *s = ingest_defs_find(t, 16 + 13);
    assert_string_equal(s->metric, "oper");
    assert_string_equal(s->instance, "ge-0/0/1");
    assert_int_equal(s->kind, KVL_KIND_GAUGE);

    /* a changed family: the old one stays while instances use it, goes with them */
    static const char *const m2[] = {"a", "b"};
    static const kvl_kind_t k2[] = {KVL_KIND_GAUGE, KVL_KIND_COUNTER};
    kvl_family_t f2 = {.id = 3, .name = "if2", .n = 2, .metrics = m2, .kinds = k2};
    assert_int_equal(ingest_store_defs(t, &f2, 1, NULL, 0, &why), 0);
    assert_string_equal(ingest_defs_find(t, 1)->metric, "in_octets");
    kvl_sink_defs_t view = ingest_defs_view(t);
    assert_int_equal(kvl_sink_family(&view, ingest_defs_find(t, 1))->n, 15);
    for (int i = 0; i < 4; i++) {
        kvl_series_def_t again = if_def(1 + 15 * (uint32_t)i, 3, names[i]);
        assert_int_equal(ingest_store_defs(t, NULL, 0, &again, 1, &why), 0);
    }
    /* every instance now has 2 ids: the other 13 of each keep their old block */
    assert_string_equal(ingest_defs_find(t, 2)->metric, "b");
    assert_int_equal(kvl_sink_family(&view, ingest_defs_find(t, 2))->n, 2);
    assert_string_equal(ingest_defs_find(t, 3)->metric, "in_packets");
    /* a single definition over the rest of each old block frees it, and the old family */
    size_t mid = ingest_defs_bytes(t);
    for (int i = 0; i < 4; i++) {
        for (uint32_t k = 2; k < 15; k++) {
            kvl_series_def_t one = one_def(1 + 15 * (uint32_t)i + k, "sw1", "single");
            assert_int_equal(ingest_store_defs(t, NULL, 0, &one, 1, &why), 0);
        }
    }
    assert_string_equal(ingest_defs_find(t, 3)->metric, "single");
    assert_int_equal(ingest_defs_series(t), 60);
    assert_true(ingest_defs_bytes(t) != mid);

    /* the checkpoint stores back into the same table */
    kvl_buf_t buf = {0};
    assert_int_equal(ingest_defs_encode(t, &buf), 0);
    kvl_msg_t m = {0};
    char err[256];
    assert_int_equal(kvl_wire_decode(buf.data, buf.len, &m, err, sizeof(err)), 0);
    defs_table_t *t2 = table(cfg);
    assert_int_equal(ingest_store_defs(t2, m.u.series_defs.families, m.u.series_defs.n_families,
                                       m.u.series_defs.defs, m.u.series_defs.n, &why),
                     0);
    assert_int_equal(ingest_defs_series(t2), 60);
    for (uint32_t id = 1; id <= 60; id++) {
        const kvl_series_def_t *a = ingest_defs_find(t, id), *b = ingest_defs_find(t2, id);
        assert_non_null(b);
        assert_string_equal(a->metric, b->metric);
        assert_string_equal(a->instance, b->instance);
        assert_int_equal(a->kind, b->kind);
    }
    /* nothing replaced is still held: the table weighs what a fresh one with the same
     * definitions weighs (the old blocks and the old family went) */
    assert_int_equal(ingest_defs_bytes(t2), ingest_defs_bytes(t));
    kvl_msg_clear(&m);
    kvl_buf_free(&buf);
    ingest_defs_free(t2);
    ingest_defs_free(t);
    kvl_collector_cfg_free(cfg);
}

static void test_limits_and_names(void **state)
{
    (void)state;
    kvl_collector_cfg_t *cfg = cfg_with("max_series_per_agent: 100\nmax_families_per_agent: 2\n");
    defs_table_t *t = table(cfg);
    const char *why = NULL;
    kvl_family_t f = if_family(1);
    assert_int_equal(ingest_store_defs(t, &f, 1, NULL, 0, &why), 0);
    for (uint32_t i = 0; i < 6; i++) {
        kvl_series_def_t d = if_def(1 + 15 * i, 1, "x");
        assert_int_equal(ingest_store_defs(t, NULL, 0, &d, 1, &why), 0);
    }
    kvl_series_def_t d7 = if_def(91, 1, "y");
    assert_int_equal(ingest_store_defs(t, NULL, 0, &d7, 1, &why), KVL_EINVAL);
    assert_non_null(strstr(why, "max_series_per_agent"));
    assert_int_equal(ingest_defs_series(t), 90);
    /* redefining ids held is no growth: allowed at the limit */
    kvl_series_def_t again = if_def(1, 1, "z");
    assert_int_equal(ingest_store_defs(t, NULL, 0, &again, 1, &why), 0);
    kvl_family_t f2 = if_family(2), f3 = if_family(3);
    assert_int_equal(ingest_store_defs(t, &f2, 1, NULL, 0, &why), 0);
    assert_int_equal(ingest_store_defs(t, &f3, 1, NULL, 0, &why), KVL_EINVAL);
    assert_non_null(strstr(why, "max_families_per_agent"));

    /* names that cannot become a file */
    char longname[301];
    memset(longname, 'd', 300);
    longname[300] = '\0';
    kvl_series_def_t bad = one_def(95, longname, "cpu");
    assert_int_equal(ingest_store_defs(t, NULL, 0, &bad, 1, &why), KVL_EINVAL);
    assert_non_null(strstr(why, "device name of 300 bytes"));
    char slashes[101];
    memset(slashes, '/', 100); /* 100 bytes, 300 as a file name */
    slashes[100] = '\0';
    kvl_series_def_t bad2 = if_def(95, 1, slashes);
    assert_int_equal(ingest_store_defs(t, NULL, 0, &bad2, 1, &why), KVL_EINVAL);
    assert_non_null(strstr(why, "instance name"));
    assert_null(ingest_defs_find(t, 95));
    ingest_defs_free(t);
    kvl_collector_cfg_free(cfg);
}

/* ------------------------------------------------------- a real ingest over 127.0.0.1 ---- */

static int sink_batches;
static int sink_batch(void *ctx, const kvl_sink_batch_t *b, kvl_sink_done_cb done, void *token)
{
    (void)ctx;
    (void)b;
    sink_batches++;
    kvl_sink_result_t r = {0};
    done(token, &r);
    return 0;
}
static const kvl_sink_t counting = {.name = "counting", .on_batch = sink_batch};

typedef struct client {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    kvl_buf_t out;
    bool closed;
} client_t;

static void c_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    (void)n;
    static char buf[4096];
    *b = uv_buf_init(buf, sizeof(buf));
}

static void c_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    client_t *c = s->data;
    if (n < 0 && !c->closed) {
        c->closed = true;
        uv_close((uv_handle_t *)s, NULL);
    }
}

static void c_connected(uv_connect_t *req, int status)
{
    client_t *c = req->data;
    assert_int_equal(status, 0);
    uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, NULL);
    uv_read_start((uv_stream_t *)&c->tcp, c_alloc, c_read);
}

static void run_ms(uv_loop_t *loop, uint64_t ms)
{
    uint64_t end = uv_now(loop) + ms;
    while (uv_now(loop) < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        uv_sleep(5);
        uv_update_time(loop);
    }
}

static agent_state_t *agent_of(kvl_ingest_t *in, const char *id)
{
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        if (strcmp(a->id, id) == 0) {
            return a;
        }
    }
    return NULL;
}

static void test_times_and_gone_agent(void **state)
{
    (void)state;
    char dir[64], extra[256];
    snprintf(dir, sizeof(dir), "/tmp/kvl-defs-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(extra, sizeof(extra),
             "agent_state_ttl: 300ms\njournal_sync: false\nfuture_tolerance: 10m\n"
             "max_sample_age: 31d\n");
    kvl_collector_cfg_t *cfg = cfg_with(extra);
    free(cfg->data_dir);
    cfg->data_dir = strdup(dir);
    cfg->listen_port = 0;
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_sinks_t sinks = {0};
    assert_int_equal(kvl_sinks_register(&sinks, &counting, NULL), 0);
    kvl_ingest_t *in = NULL;
    char err[512];
    assert_int_equal(kvl_ingest_new(&loop, cfg, &sinks, &in, err, sizeof(err)), 0);
    for (int i = 0; i < 200 && in->replaying; i++) {
        run_ms(&loop, 10);
    }

    client_t c;
    memset(&c, 0, sizeof(c));
    kvl_msg_t m = {.type = KVL_MSG_HELLO};
    m.u.hello = (kvl_hello_t){
        .protocol = KVL_PROTOCOL_VERSION, .agent_id = "a1", .version = "t", .site = "lab"};
    assert_int_equal(kvl_wire_encode(&m, &c.out), 0);
    /* one batch: a group now, one a million years ahead, one from 40 days ago */
    kvl_series_def_t d[] = {one_def(1, "sw1", "cpu"), one_def(2, "sw1", "mem")};
    int64_t now = kvl_now_ms();
    static const uint32_t ids[] = {1, 2};
    static const uint64_t vals[] = {5, 6};
    kvl_group_t g[3];
    int64_t times[] = {now - 40ll * 86400 * 1000, now, now + 1000000ll * 365 * 86400 * 1000};
    for (int i = 0; i < 3; i++) {
        g[i] = (kvl_group_t){
            .time_ms = times[i], .ids = ids, .n_ids = 2, .values = vals, .n_values = 2};
    }
    m = (kvl_msg_t){.type = KVL_MSG_BATCH};
    m.u.batch = (kvl_batch_t){
        .seq = 1, .lane = KVL_LANE_BULK, .defs = d, .n_defs = 2, .groups = g, .n_groups = 3};
    assert_int_equal(kvl_wire_encode(&m, &c.out), 0);
    uv_tcp_init(&loop, &c.tcp);
    c.tcp.data = &c;
    c.conn.data = &c;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", kvl_ingest_port(in), &sa);
    assert_int_equal(uv_tcp_connect(&c.conn, &c.tcp, (const struct sockaddr *)&sa, c_connected), 0);
    kvl_ingest_stats_t st;
    for (int i = 0; i < 500; i++) {
        run_ms(&loop, 10);
        kvl_ingest_stats(in, &st);
        if (st.batches_written == 1) {
            break;
        }
    }
    assert_int_equal(st.batches_journaled, 1);
    assert_int_equal(st.batches_written, 1);
    assert_int_equal(st.samples_journaled, 2); /* the group of now only */
    assert_int_equal(st.samples_future, 2);
    assert_int_equal(st.samples_too_old, 2);
    agent_state_t *a = agent_of(in, "a1");
    assert_non_null(a);
    assert_non_null(a->defs);
    assert_int_equal(ingest_defs_series(a->defs), 2);

    /* connected: kept however long */
    run_ms(&loop, 700);
    assert_non_null(a->defs);
    /* gone: released after agent_state_ttl (300 ms; the sweep runs every 150 ms) */
    uv_close((uv_handle_t *)&c.tcp, NULL);
    c.closed = true;
    for (int i = 0; i < 300 && a->defs != NULL; i++) {
        run_ms(&loop, 10);
    }
    assert_null(a->defs);
    assert_int_equal(a->acked_seq[KVL_LANE_BULK], 1); /* its position stays */

    kvl_buf_free(&c.out);
    kvl_ingest_free(in);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    kvl_collector_cfg_free(cfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_do_not_size_memory),
        cmocka_unit_test(test_repeats_not_copied),
        cmocka_unit_test(test_limits_and_names),
        cmocka_unit_test(test_times_and_gone_agent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
