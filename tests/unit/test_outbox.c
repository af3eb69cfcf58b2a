/*
 * test_outbox.c — the agent's outbox (agent/outbox.c): lanes in memory and on disk, readers
 * per collector, acknowledgements, rewinding, the bound, sequence numbers across restarts;
 * and the series registry kept on disk (kvl_registry_persist, written by the batcher's
 * flush), so ids survive a restart; its format version: written in the header, a file of the
 * format before versions read and rewritten with one, a newer one refused with the sentence
 * saying what to do and left untouched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent_config.h"
#include "batcher.h"
#include "buf.h"
#include "capture_stderr.h"
#include "kvl.h"
#include "log.h"
#include "newer_format.h"
#include "outbox.h"
#include "registry.h"
#include "uplink.h"

static kvl_agent_cfg_t *cfg_with(const char *extra)
{
    char text[1024], err[512];
    snprintf(text, sizeof(text), "id: a1\nsite: s\ncollector: 127.0.0.1:5140\ninsecure: true\n%s",
             extra);
    kvl_agent_cfg_t *c = kvl_agent_cfg_parse("a.yaml", text, err, sizeof(err));
    if (c == NULL) {
        fprintf(stderr, "%s\n", err);
    }
    assert_non_null(c);
    return c;
}

static void close_outbox(uv_loop_t *loop, kvl_outbox_t *o)
{
    kvl_outbox_free(o);
    uv_run(loop, UV_RUN_DEFAULT);
}

static uint64_t read_one(kvl_outbox_t *o, int lane, int reader, kvl_buf_t *b)
{
    uint64_t seq = 0;
    assert_int_equal(kvl_outbox_read(o, lane, reader, &seq, b), 1);
    return seq;
}

static void append_str(kvl_outbox_t *o, int lane, uint64_t seq)
{
    char s[32];
    int n = snprintf(s, sizeof(s), "frame %llu", (unsigned long long)seq);
    assert_int_equal(kvl_outbox_append(o, lane, seq, s, (size_t)n), 0);
}

/* Two readers in memory: each reads, acknowledges and rewinds on its own. */
static void test_memory_readers(void **state)
{
    KVL_UNUSED(state);
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_agent_cfg_t *c = cfg_with("");
    const char *readers[] = {"a", "b"};
    kvl_outbox_t *o = NULL;
    char err[256];
    assert_int_equal(kvl_outbox_open(&loop, &c->ship, readers, 2, &o, err, sizeof(err)), 0);
    assert_false(kvl_outbox_on_disk(o));
    for (uint64_t s = 10; s <= 12; s++) {
        append_str(o, KVL_LANE_BULK, s);
    }
    kvl_buf_t b = {0};
    assert_int_equal(read_one(o, KVL_LANE_BULK, 0, &b), 10);
    assert_memory_equal(b.data, "frame 10", 8);
    assert_int_equal(read_one(o, KVL_LANE_BULK, 0, &b), 11);
    assert_int_equal(read_one(o, KVL_LANE_BULK, 0, &b), 12);
    uint64_t seq;
    assert_int_equal(kvl_outbox_read(o, KVL_LANE_BULK, 0, &seq, &b), 0);
    kvl_outbox_ack(o, KVL_LANE_BULK, 0, 11);
    assert_int_equal(kvl_outbox_waiting(o, KVL_LANE_BULK, 0), 1);
    assert_int_equal(kvl_outbox_waiting(o, KVL_LANE_BULK, 1), 3);
    kvl_outbox_rewind(o, KVL_LANE_BULK, 0);
    assert_int_equal(read_one(o, KVL_LANE_BULK, 0, &b), 12);
    /* A new record is read after the reader caught up. */
    append_str(o, KVL_LANE_BULK, 13);
    assert_int_equal(read_one(o, KVL_LANE_BULK, 0, &b), 13);
    /* Reader b was never read: it starts at the oldest. */
    assert_int_equal(read_one(o, KVL_LANE_BULK, 1, &b), 10);
    kvl_outbox_ack(o, KVL_LANE_BULK, 1, 13);
    kvl_outbox_ack(o, KVL_LANE_BULK, 0, 13);
    kvl_outbox_stats_t st;
    kvl_outbox_stats(o, &st);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(st.bytes, 0);
    /* The events lane is its own. */
    assert_int_equal(kvl_outbox_waiting(o, KVL_LANE_EVENTS, 0), 0);
    append_str(o, KVL_LANE_EVENTS, 5);
    assert_int_equal(read_one(o, KVL_LANE_EVENTS, 0, &b), 5);
    kvl_buf_free(&b);
    close_outbox(&loop, o);
    kvl_agent_cfg_free(c);
    uv_loop_close(&loop);
}

/* In memory the bound is max_queue batches per lane: the oldest go, counted per reader. */
static void test_memory_bound(void **state)
{
    KVL_UNUSED(state);
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_agent_cfg_t *c = cfg_with("max_queue: 2\n");
    const char *readers[] = {"a", "b"};
    kvl_outbox_t *o = NULL;
    char err[256];
    assert_int_equal(kvl_outbox_open(&loop, &c->ship, readers, 2, &o, err, sizeof(err)), 0);
    append_str(o, KVL_LANE_BULK, 1);
    kvl_outbox_ack(o, KVL_LANE_BULK, 1, 1); /* b has it, a has not */
    for (uint64_t s = 2; s <= 4; s++) {
        append_str(o, KVL_LANE_BULK, s);
    }
    assert_int_equal(kvl_outbox_dropped(o, KVL_LANE_BULK, 0), 2); /* 1 and 2 */
    assert_int_equal(kvl_outbox_dropped(o, KVL_LANE_BULK, 1), 1); /* 2 */
    kvl_buf_t b = {0};
    assert_int_equal(read_one(o, KVL_LANE_BULK, 0, &b), 3);
    assert_int_equal(read_one(o, KVL_LANE_BULK, 1, &b), 3);
    kvl_outbox_stats_t st;
    kvl_outbox_stats(o, &st);
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.waiting, 2);
    kvl_buf_free(&b);
    close_outbox(&loop, o);
    kvl_agent_cfg_free(c);
    uv_loop_close(&loop);
}

/* On disk: records and positions survive a restart; sequence numbers continue above the
 * spool's last one even when the clock says less. */
static void test_disk_restart(void **state)
{
    KVL_UNUSED(state);
    char dir[] = "/tmp/kvl-outbox-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char extra[256];
    snprintf(extra, sizeof(extra), "spool: {dir: %s, sync_interval: 0}\n", dir);
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_agent_cfg_t *c = cfg_with(extra);
    const char *readers[] = {"failover"};
    kvl_outbox_t *o = NULL;
    char err[256];
    assert_int_equal(kvl_outbox_open(&loop, &c->ship, readers, 1, &o, err, sizeof(err)), 0);
    assert_true(kvl_outbox_on_disk(o));
    uint64_t far = UINT64_C(1) << 62; /* far above the clock */
    for (uint64_t s = far; s < far + 5; s++) {
        append_str(o, KVL_LANE_BULK, s);
    }
    append_str(o, KVL_LANE_EVENTS, 7);
    kvl_outbox_ack(o, KVL_LANE_BULK, 0, far + 1);
    close_outbox(&loop, o);

    assert_int_equal(kvl_outbox_open(&loop, &c->ship, readers, 1, &o, err, sizeof(err)), 0);
    assert_int_equal(kvl_outbox_waiting(o, KVL_LANE_BULK, 0), 3);
    assert_int_equal(kvl_outbox_waiting(o, KVL_LANE_EVENTS, 0), 1);
    assert_int_equal(kvl_outbox_next_seq(o, KVL_LANE_BULK), far + 5);
    kvl_buf_t b = {0};
    assert_int_equal(read_one(o, KVL_LANE_BULK, 0, &b), far + 2);
    assert_int_equal(read_one(o, KVL_LANE_BULK, 0, &b), far + 3);
    assert_int_equal(read_one(o, KVL_LANE_BULK, 0, &b), far + 4);
    assert_int_equal(read_one(o, KVL_LANE_EVENTS, 0, &b), 7);
    kvl_outbox_ack(o, KVL_LANE_BULK, 0, far + 4);
    kvl_outbox_stats_t st;
    kvl_outbox_stats(o, &st);
    assert_int_equal(st.waiting, 1); /* the event */
    assert_int_equal(st.events_waiting, 1);
    kvl_buf_free(&b);
    close_outbox(&loop, o);
    kvl_agent_cfg_free(c);
    uv_loop_close(&loop);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A collector acknowledging a number this agent cannot have made (far beyond its clock, or
 * 2^64-1) is refused in memory and on disk: nothing waiting is dropped, the numbering goes
 * on from the agent's own, also after a restart, and never wraps. One above the agent's last
 * number but near its clock (its spool was removed, the clock went back) is taken. */
static void impossible_acks(const char *extra, bool restart)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_agent_cfg_t *c = cfg_with(extra);
    const char *readers[] = {"only"};
    kvl_outbox_t *o = NULL;
    char err[256];
    assert_int_equal(kvl_outbox_open(&loop, &c->ship, readers, 1, &o, err, sizeof(err)), 0);
    uint64_t s1 = kvl_outbox_next_seq(o, KVL_LANE_BULK);
    append_str(o, KVL_LANE_BULK, s1);
    uint64_t s2 = kvl_outbox_next_seq(o, KVL_LANE_BULK);
    append_str(o, KVL_LANE_BULK, s2);
    assert_int_equal(kvl_outbox_last_seq(o, KVL_LANE_BULK), s2);
    const uint64_t bad[] = {UINT64_C(1000000000000000000), UINT64_MAX, UINT64_MAX / 2 + 1,
                            s2 + 2 * KVL_SEQ_AHEAD_DEFAULT_US};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        assert_int_equal(kvl_outbox_ack(o, KVL_LANE_BULK, 0, bad[i]), KVL_EINVAL);
        assert_int_equal(kvl_outbox_ack(o, KVL_LANE_EVENTS, 0, bad[i]), KVL_EINVAL);
    }
    assert_int_equal(kvl_outbox_waiting(o, KVL_LANE_BULK, 0), 2);
    assert_int_equal(kvl_outbox_last_seq(o, KVL_LANE_BULK), s2);
    if (restart) {
        close_outbox(&loop, o);
        assert_int_equal(kvl_outbox_open(&loop, &c->ship, readers, 1, &o, err, sizeof(err)), 0);
        assert_int_equal(kvl_outbox_waiting(o, KVL_LANE_BULK, 0), 2);
        assert_true(kvl_outbox_last_seq(o, KVL_LANE_BULK) < s2 + KVL_SEQ_AHEAD_DEFAULT_US);
    }
    uint64_t s3 = kvl_outbox_next_seq(o, KVL_LANE_BULK);
    assert_true(s3 > s2 && s3 < s2 + KVL_SEQ_AHEAD_DEFAULT_US);
    append_str(o, KVL_LANE_BULK, s3);
    kvl_buf_t b = {0};
    assert_int_equal(read_one(o, KVL_LANE_BULK, 0, &b), s1);
    assert_int_equal(kvl_outbox_ack(o, KVL_LANE_BULK, 0, s1), 0);
    assert_int_equal(kvl_outbox_waiting(o, KVL_LANE_BULK, 0), 2);
    /* possible: an hour ahead, above the last number: taken, later numbers above it */
    uint64_t hour = s3 + UINT64_C(3600000000);
    assert_int_equal(kvl_outbox_ack(o, KVL_LANE_BULK, 0, hour), 0);
    assert_int_equal(kvl_outbox_waiting(o, KVL_LANE_BULK, 0), 0);
    assert_int_equal(kvl_outbox_next_seq(o, KVL_LANE_BULK), hour + 1);
    if (!restart) {
        /* at the very top the numbering stays there (the batch is then refused), never 0 */
        append_str(o, KVL_LANE_EVENTS, UINT64_MAX);
        assert_int_equal(kvl_outbox_next_seq(o, KVL_LANE_EVENTS), UINT64_MAX);
        assert_int_equal(kvl_outbox_last_seq(o, KVL_LANE_EVENTS), UINT64_MAX);
    }
    kvl_buf_free(&b);
    close_outbox(&loop, o);
    kvl_agent_cfg_free(c);
    uv_loop_close(&loop);
}

static void test_impossible_acks(void **state)
{
    KVL_UNUSED(state);
    impossible_acks("", false);
    char dir[] = "/tmp/kvl-outbox-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char extra[256];
    snprintf(extra, sizeof(extra), "spool: {dir: %s, sync_interval: 0}\n", dir);
    impossible_acks(extra, true);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The family the registry tests register an interface of. */
static const char *const fam_metrics[] = {"in", "out"};
static const kvl_kind_t fam_kinds[] = {KVL_KIND_COUNTER, KVL_KIND_COUNTER};

/* The keys the registry tests register: a device's series and an interface of a family. */
static kvl_series_key_t key_reachable(const char *device)
{
    return (kvl_series_key_t){.device = device,
                              .scope = KVL_SCOPE_DEVICE,
                              .instance = "",
                              .metric = "reachable",
                              .kind = KVL_KIND_GAUGE,
                              .interval_s = 60};
}

static kvl_instance_key_t key_iface(const kvl_family_t *fam)
{
    return (kvl_instance_key_t){.device = "d1",
                                .scope = KVL_SCOPE_INTERFACE,
                                .instance = "eth0",
                                .family = fam,
                                .interval_s = 60};
}

/* A run of the agent with the registry kept in path: registers the two keys, sends a batch
 * (which writes the registry) and stops; their ids in ids[0], ids[1]. */
static void registry_run(uv_loop_t *loop, kvl_outbox_t *o, const char *path, uint32_t *ids)
{
    char err[600];
    kvl_registry_t *reg = NULL;
    kvl_batcher_t *b = NULL;
    kvl_family_t fam = {.name = "if", .n = 2, .metrics = fam_metrics, .kinds = fam_kinds};
    assert_int_equal(kvl_registry_new(&reg, err, sizeof(err)), 0);
    assert_int_equal(kvl_registry_persist(reg, path), 0);
    assert_int_equal(kvl_batcher_new(loop, reg, o, 1000, &b, err, sizeof(err)), 0);
    kvl_series_key_t k = key_reachable("d1");
    kvl_instance_key_t i = key_iface(&fam);
    ids[0] = kvl_batcher_series(b, &k);
    ids[1] = kvl_batcher_instance(b, &i);
    kvl_batcher_group_begin(b, 1000);
    kvl_batcher_add(b, ids[0], 1);
    kvl_batcher_group_end(b);
    kvl_batcher_flush(b);
    kvl_batcher_free(b);
    uv_run(loop, UV_RUN_NOWAIT);
    kvl_registry_free(reg);
}

/* What the registry tests run in: a folder (series.defs in it), a loop, an outbox. */
typedef struct reg_fx {
    char dir[32], path[300];
    uv_loop_t loop;
    kvl_agent_cfg_t *c;
    kvl_outbox_t *o;
} reg_fx_t;

static void reg_fx_open(reg_fx_t *f)
{
    snprintf(f->dir, sizeof(f->dir), "/tmp/kvl-registry-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/series.defs", f->dir);
    uv_loop_init(&f->loop);
    f->c = cfg_with("");
    char err[600];
    const char *readers[] = {"failover"};
    f->o = NULL;
    assert_int_equal(kvl_outbox_open(&f->loop, &f->c->ship, readers, 1, &f->o, err, sizeof(err)),
                     0);
}

static void reg_fx_close(reg_fx_t *f)
{
    kvl_outbox_free(f->o);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_loop_close(&f->loop);
    kvl_agent_cfg_free(f->c);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
}

/* The registry on disk: a second batcher loading it gives every series its old id, new
 * series ids above them, and families are matched by content. */
static void test_registry_persist(void **state)
{
    KVL_UNUSED(state);
    reg_fx_t f;
    reg_fx_open(&f);
    uint32_t ids[2];
    registry_run(&f.loop, f.o, f.path, ids);
    uint32_t id1 = ids[0], id2 = ids[1];
    assert_true(id1 > 0 && id2 > id1);

    /* A new run: a different family pointer with the same content. */
    kvl_family_t fam2 = {.name = "if", .n = 2, .metrics = fam_metrics, .kinds = fam_kinds};
    kvl_registry_t *reg = NULL;
    kvl_batcher_t *b = NULL;
    char err[600];
    assert_int_equal(kvl_registry_new(&reg, err, sizeof(err)), 0);
    assert_int_equal(kvl_registry_persist(reg, f.path), 0);
    assert_int_equal(kvl_batcher_new(&f.loop, reg, f.o, 1000, &b, err, sizeof(err)), 0);
    assert_int_equal(kvl_registry_n_defs(reg), 2);
    kvl_instance_key_t i2 = key_iface(&fam2);
    kvl_series_key_t k1 = key_reachable("d1");
    assert_int_equal(kvl_batcher_instance(b, &i2), id2);
    assert_int_equal(kvl_batcher_series(b, &k1), id1);
    kvl_series_key_t k3 = key_reachable("d2");
    uint32_t id3 = kvl_batcher_series(b, &k3);
    assert_true(id3 > id2 + 1); /* above the family's two ids */
    kvl_batcher_free(b);
    kvl_registry_free(reg);
    reg_fx_close(&f);
}

static void spit(const char *path, const void *buf, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, n, fp), n);
    fclose(fp);
}

/* series.defs carries its format version: written in the header; a file of the format
 * before versions read with the same ids and rewritten with the header; a newer one refused,
 * the sentence logged, the file untouched; a torn header an empty registry. */
static void test_registry_format(void **state)
{
    KVL_UNUSED(state);
    reg_fx_t f;
    reg_fx_open(&f);
    uint32_t ids[2], again[2];
    registry_run(&f.loop, f.o, f.path, ids);
    file_bytes_t cur = file_bytes(f.path);
    assert_true(cur.n > 12);
    assert_memory_equal(cur.p, "kvlsdefs", 8);
    assert_int_equal(kvl_get_le32((const uint8_t *)cur.p + 8), KVL_REGISTRY_FORMAT_VERSION);

    /* The format before versions (the frames alone, as the previous release wrote them):
     * read with the same ids, and rewritten with the header in front of the same frames. */
    spit(f.path, cur.p + 12, cur.n - 12);
    registry_run(&f.loop, f.o, f.path, again);
    assert_int_equal(again[0], ids[0]);
    assert_int_equal(again[1], ids[1]);
    file_bytes_t same = cur;
    same.p = malloc(cur.n);
    assert_non_null(same.p);
    memcpy(same.p, cur.p, cur.n);
    expect_file_unchanged(f.path, &same);

    /* A newer version: refused, the sentence logged, the file untouched. */
    kvl_put_le32((uint8_t *)cur.p + 8, KVL_REGISTRY_FORMAT_VERSION + 1);
    spit(f.path, cur.p, cur.n);
    kvl_registry_t *reg = NULL;
    char err[600], logp[300], logged[2000];
    assert_int_equal(kvl_registry_new(&reg, err, sizeof(err)), 0);
    snprintf(logp, sizeof(logp), "%s/stderr", f.dir);
    capture_t cap;
    assert_int_equal(capture_begin(&cap, logp), 0);
    int rc = kvl_registry_persist(reg, f.path);
    capture_end(&cap, logged, sizeof(logged));
    assert_int_equal(rc, KVL_EPROTO);
    kvl_registry_free(reg);
    expect_newer_sentence(logged, f.path, KVL_REGISTRY_FORMAT_VERSION + 1,
                          KVL_REGISTRY_FORMAT_VERSION, "kaaval-agent");
    expect_file_unchanged(f.path, &cur);

    /* A header cut short (a torn first write): an empty registry, written again whole. */
    spit(f.path, "kvlsdefs\1", 9);
    registry_run(&f.loop, f.o, f.path, again);
    file_bytes_t torn = file_bytes(f.path);
    assert_true(torn.n > 12);
    assert_int_equal(kvl_get_le32((const uint8_t *)torn.p + 8), KVL_REGISTRY_FORMAT_VERSION);
    free(torn.p);
    reg_fx_close(&f);
}

int main(void)
{
    kvl_log_level = KVL_LOG_LEVEL_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_readers),   cmocka_unit_test(test_memory_bound),
        cmocka_unit_test(test_disk_restart),     cmocka_unit_test(test_impossible_acks),
        cmocka_unit_test(test_registry_persist), cmocka_unit_test(test_registry_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
