/*
 * test_journal.c — the collector's journal (collector/ingest/journal.h): records round-trip
 * through the files, a torn last record is cut off wherever the tear is, group commits
 * gather many records per sync, segments go once released, jseq goes on across reopen;
 * and through the ingest, a batch journaled but not applied is applied at the next start,
 * once: the second start finds nothing to do; and batches beyond what is kept in memory
 * are read back from the journal, every value where it belongs; damaged records in the
 * middle of segments lost alone and counted, a removed segment reported, stray files set
 * aside without being read.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "collector_config.h"
#include "crc32c.h"
#include "ingest.h"
#include "journal.h"
#include "kvl.h"
#include "log.h"
#include "newer_format.h"
#include "store.h"
#include "wire.h"

typedef struct got {
    int n;
    uint64_t jseq[64];
    uint8_t type[64];
    uint64_t seq[64];
    char data[64][64];
    uint64_t seg[64];
} got_t;

static int collect(void *ctx, const kvl_jrec_t *r, uint64_t seg)
{
    got_t *g = ctx;
    if (g->n < 64) {
        g->jseq[g->n] = r->jseq;
        g->type[g->n] = r->type;
        g->seq[g->n] = r->seq;
        g->seg[g->n] = seg;
        snprintf(g->data[g->n], sizeof(g->data[0]), "%.*s:%.*s", (int)r->agent_len, r->agent,
                 (int)r->len, (const char *)r->data);
        g->n++;
    }
    return 0;
}

static uint64_t synced_seen;
static int rolls;

static void on_synced(void *ctx, uint64_t jseq)
{
    (void)ctx;
    synced_seen = jseq;
}

static void on_roll(void *ctx)
{
    (void)ctx;
    rolls++;
}

static void mkdtmp(char *dir, size_t len)
{
    snprintf(dir, len, "/tmp/kvl-journal-XXXXXX");
    assert_non_null(mkdtemp(dir));
}

static void rmrf(const char *dir)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int count_segments(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        n += l > 4 && strcmp(e->d_name + l - 4, ".jnl") == 0;
    }
    closedir(d);
    return n;
}

static void run_until_synced(uv_loop_t *loop, kvl_journal_t *j)
{
    for (int i = 0; i < 2000 && kvl_journal_synced(j) < kvl_journal_last_jseq(j); i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    assert_int_equal(kvl_journal_synced(j), kvl_journal_last_jseq(j));
}

static kvl_journal_t *open_j(const char *dir, uint64_t seg_bytes, int64_t delay)
{
    kvl_journal_opts_t o = {.dir = dir, .segment_bytes = seg_bytes, .commit_delay_ms = delay};
    kvl_journal_t *j = NULL;
    char err[256];
    int rc = kvl_journal_open(&o, &j, err, sizeof(err));
    if (rc != 0) {
        fail_msg("open: %s", err);
    }
    return j;
}

static void close_j(uv_loop_t *loop, kvl_journal_t *j)
{
    kvl_journal_close(j);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void put(kvl_journal_t *j, uint8_t type, const char *agent, uint64_t seq, const char *data,
                bool hold, uint64_t *seg)
{
    kvl_jrec_t r = {.type = type,
                    .seq = seq,
                    .agent = agent,
                    .agent_len = strlen(agent),
                    .data = (const uint8_t *)data,
                    .len = strlen(data)};
    assert_int_equal(kvl_journal_append(j, &r, hold, seg), 0);
}

static void test_round_trip_and_reopen(void **state)
{
    (void)state;
    char dir[64];
    mkdtmp(dir, sizeof(dir));
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_journal_t *j = open_j(dir, 0, 0);
    rolls = 0;
    assert_int_equal(kvl_journal_start(j, &loop, on_synced, on_roll, NULL), 0);
    assert_int_equal(rolls, 1);
    put(j, KVL_JREC_CONNECT, "agent-a", 0, "lab", false, NULL);
    put(j, KVL_JREC_DEFS, "agent-a", 0, "defs", false, NULL);
    put(j, KVL_JREC_BATCH, "agent-a", 77, "batch-bytes", true, NULL);
    put(j, KVL_JREC_APPLIED, "agent-a", 3, "", false, NULL);
    run_until_synced(&loop, j);
    assert_int_equal(synced_seen, 4);
    close_j(&loop, j);

    j = open_j(dir, 0, 0);
    got_t g = {0};
    assert_int_equal(kvl_journal_replay(j, collect, &g), 0);
    assert_int_equal(g.n, 4);
    assert_int_equal(g.jseq[0], 1);
    assert_int_equal(g.jseq[3], 4);
    assert_int_equal(g.type[2], KVL_JREC_BATCH);
    assert_int_equal(g.seq[2], 77);
    assert_string_equal(g.data[0], "agent-a:lab");
    assert_string_equal(g.data[2], "agent-a:batch-bytes");
    /* jseq goes on; the old segment goes once nothing holds it (nothing does here). */
    assert_int_equal(kvl_journal_start(j, &loop, on_synced, NULL, NULL), 0);
    put(j, KVL_JREC_POS, "agent-a", 0, "x", false, NULL);
    assert_int_equal(kvl_journal_last_jseq(j), 5);
    run_until_synced(&loop, j);
    close_j(&loop, j);
    assert_int_equal(count_segments(dir), 1);
    j = open_j(dir, 0, 0);
    memset(&g, 0, sizeof(g));
    assert_int_equal(kvl_journal_replay(j, collect, &g), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.jseq[0], 5);
    kvl_journal_close(j);
    uv_loop_close(&loop);
    rmrf(dir);
}

/* Reads the one segment file of dir into buf. Returns its size; *name gets its path. */
static size_t read_segment(const char *dir, char *path, size_t plen, uint8_t *buf, size_t cap)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    path[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l > 4 && strcmp(e->d_name + l - 4, ".jnl") == 0) {
            snprintf(path, plen, "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    assert_true(path[0] != '\0');
    int fd = open(path, O_RDONLY);
    ssize_t n = read(fd, buf, cap);
    close(fd);
    assert_true(n > 0);
    return (size_t)n;
}

static void write_file(const char *path, const uint8_t *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static void test_torn_tail_every_offset(void **state)
{
    (void)state;
    char dir[64], path[256];
    mkdtmp(dir, sizeof(dir));
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_journal_t *j = open_j(dir, 0, 0);
    assert_int_equal(kvl_journal_start(j, &loop, on_synced, NULL, NULL), 0);
    put(j, KVL_JREC_CONNECT, "agent-b", 0, "site", false, NULL);
    put(j, KVL_JREC_BATCH, "agent-b", 5, "first batch", false, NULL);
    put(j, KVL_JREC_BATCH, "agent-b", 6, "the last batch, to be torn", false, NULL);
    run_until_synced(&loop, j);
    close_j(&loop, j);
    uint8_t whole[4096];
    size_t n = read_segment(dir, path, sizeof(path), whole, sizeof(whole));
    size_t last =
        n - (KVL_JOURNAL_RECORD_HEADER + strlen("agent-b") + strlen("the last batch, to be torn"));
    for (size_t cut = last; cut < n; cut++) {
        write_file(path, whole, cut);
        j = open_j(dir, 0, 0);
        got_t g = {0};
        assert_int_equal(kvl_journal_replay(j, collect, &g), 0);
        assert_int_equal(g.n, 2);
        assert_int_equal(g.seq[1], 5);
        kvl_journal_stats_t st;
        kvl_journal_stats(j, &st);
        assert_int_equal(st.cut_bytes, cut - last);
        kvl_journal_close(j);
        struct stat sb;
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal((size_t)sb.st_size, last); /* repaired on disk */
    }
    /* A flipped bit in the last record: cut off too; in any byte of it. */
    for (size_t at = last; at < n; at += 7) {
        uint8_t bad[4096];
        memcpy(bad, whole, n);
        bad[at] ^= 0x10;
        write_file(path, bad, n);
        j = open_j(dir, 0, 0);
        got_t g = {0};
        assert_int_equal(kvl_journal_replay(j, collect, &g), 0);
        assert_int_equal(g.n, 2);
        /* appending goes on after what was kept */
        assert_int_equal(kvl_journal_start(j, &loop, on_synced, NULL, NULL), 0);
        assert_int_equal(kvl_journal_last_jseq(j), 2);
        close_j(&loop, j);
        rmrf(dir);
        assert_int_equal(mkdir(dir, 0755), 0);
        char seg[256];
        snprintf(seg, sizeof(seg), "%s", path);
        write_file(seg, whole, n);
    }
    /* A newer format (this one's version + 1) is refused, the sentence saying what to do,
     * and not touched. */
    uint8_t newer[4096];
    memcpy(newer, whole, n);
    newer[8] = (uint8_t)(KVL_JOURNAL_FORMAT_VERSION + 1);
    uint32_t crc = kvl_crc32c(0, newer, 12);
    for (int i = 0; i < 4; i++) {
        newer[12 + i] = (uint8_t)(crc >> (8 * i));
    }
    write_file(path, newer, n);
    kvl_journal_opts_t o = {.dir = dir};
    char err[1200];
    kvl_journal_t *jj = NULL;
    file_bytes_t before = file_bytes(path);
    assert_int_equal(kvl_journal_open(&o, &jj, err, sizeof(err)), KVL_EPROTO);
    expect_newer_sentence(err, path, KVL_JOURNAL_FORMAT_VERSION + 1, KVL_JOURNAL_FORMAT_VERSION,
                          "kaaval-collector");
    expect_file_unchanged(path, &before);
    uv_loop_close(&loop);
    rmrf(dir);
}

static void test_group_commit(void **state)
{
    (void)state;
    char dir[64];
    mkdtmp(dir, sizeof(dir));
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_journal_t *j = open_j(dir, 0, 20);
    assert_int_equal(kvl_journal_start(j, &loop, on_synced, NULL, NULL), 0);
    run_until_synced(&loop, j);
    kvl_journal_stats_t before, after;
    kvl_journal_stats(j, &before);
    for (int i = 0; i < 500; i++) {
        put(j, KVL_JREC_BATCH, "agent-c", (uint64_t)i + 1, "some batch bytes", true, NULL);
    }
    run_until_synced(&loop, j);
    kvl_journal_stats(j, &after);
    assert_int_equal(synced_seen, 500);
    /* 500 records in one loop turn: one or two commits, not 500 */
    assert_true(after.commits - before.commits <= 2);
    assert_int_equal(after.backlog_bytes, 0);
    close_j(&loop, j);
    uv_loop_close(&loop);
    rmrf(dir);
}

static void test_segments_released(void **state)
{
    (void)state;
    char dir[64];
    mkdtmp(dir, sizeof(dir));
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_journal_t *j = open_j(dir, 4096, 0);
    rolls = 0;
    assert_int_equal(kvl_journal_start(j, &loop, on_synced, on_roll, NULL), 0);
    char data[1000];
    memset(data, 'x', sizeof(data) - 1);
    data[sizeof(data) - 1] = '\0';
    uint64_t segs[20];
    for (int i = 0; i < 20; i++) {
        put(j, KVL_JREC_BATCH, "agent-d", (uint64_t)i + 1, data, true, &segs[i]);
    }
    run_until_synced(&loop, j);
    int n = count_segments(dir);
    assert_true(n >= 5);
    assert_int_equal(rolls, n);
    /* Release all but the batches of the second segment: the others go (except the active). */
    for (int i = 0; i < 20; i++) {
        if (segs[i] != segs[4]) {
            kvl_journal_release(j, segs[i]);
        }
    }
    put(j, KVL_JREC_POS, "agent-d", 0, "", false, NULL);
    run_until_synced(&loop, j);
    assert_int_equal(count_segments(dir), 2);
    close_j(&loop, j);

    /* After reopen the held batches are there; the other segment holds none of them. */
    j = open_j(dir, 4096, 0);
    got_t g = {0};
    assert_int_equal(kvl_journal_replay(j, collect, &g), 0);
    int batches = 0;
    for (int i = 0; i < g.n; i++) {
        batches += g.type[i] == KVL_JREC_BATCH;
    }
    assert_true(batches >= 3);
    close_j(&loop, j);
    uv_loop_close(&loop);
    rmrf(dir);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    kvl_jrec_t r = {.jseq = 9,
                    .seq = 1,
                    .type = KVL_JREC_BATCH,
                    .agent = "a",
                    .agent_len = 1,
                    .data = (const uint8_t *)"xyz",
                    .len = 3};
    uint8_t *p;
    size_t n, used;
    assert_int_equal(kvl_journal_encode(&r, &p, &n), 0);
    kvl_jrec_t out;
    assert_int_equal(kvl_journal_parse(p, n, &out, &used), 1);
    assert_int_equal(used, n);
    assert_int_equal(out.jseq, 9);
    for (size_t k = 0; k < n; k++) {
        assert_int_equal(kvl_journal_parse(p, k, &out, &used), 0); /* needs more bytes */
    }
    p[n - 1] ^= 1;
    assert_int_equal(kvl_journal_parse(p, n, &out, &used), KVL_EPROTO);
    p[n - 1] ^= 1;
    p[0] = 0xff; /* length beyond the limit */
    p[3] = 0x7f;
    assert_int_equal(kvl_journal_parse(p, n, &out, &used), KVL_EPROTO);
    free(p);
}

/* ------------------------------------------------------------- through the ingest ----- */

typedef struct coll {
    uv_loop_t loop;
    kvl_collector_cfg_t *cfg;
    kvl_store_t *store;
    kvl_sinks_t sinks;
    kvl_ingest_t *in;
} coll_t;

static void coll_start(coll_t *c, const char *dir)
{
    char err[512], text[512];
    memset(c, 0, sizeof(*c));
    uv_loop_init(&c->loop);
    snprintf(text, sizeof(text),
             "listen: 127.0.0.1:1\ndata_dir: %s\narchives: [step:1h]\nlog_level: warn\n"
             "insecure: true\n",
             dir);
    c->cfg = kvl_collector_cfg_parse("collector.yaml", text, err, sizeof(err));
    assert_non_null(c->cfg);
    c->cfg->listen_port = 0;
    kvl_store_cfg_t scfg = {.data_dir = c->cfg->data_dir,
                            .archives = c->cfg->archives,
                            .n_archives = c->cfg->n_archives,
                            .consolidations = (const char *const *)c->cfg->consolidations};
    assert_int_equal(kvl_store_new(&c->loop, &scfg, &c->store, err, sizeof(err)), 0);
    assert_int_equal(kvl_sinks_register(&c->sinks, &kvl_store_sink, c->store), 0);
    assert_int_equal(kvl_ingest_new(&c->loop, c->cfg, &c->sinks, &c->in, err, sizeof(err)), 0);
    kvl_ingest_stats_t s;
    for (int i = 0; i < 5000; i++) {
        kvl_ingest_stats(c->in, &s);
        if (s.replayed_batches == s.replay_queued && kvl_store_busy(c->store) == 0) {
            break;
        }
        uv_run(&c->loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
}

static void coll_stop(coll_t *c)
{
    kvl_ingest_free(c->in);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    kvl_store_free(c->store);
    kvl_collector_cfg_free(c->cfg);
}

static size_t payload_of(const kvl_msg_t *m, uint8_t *out, size_t cap)
{
    kvl_buf_t b = {0};
    assert_int_equal(kvl_wire_encode(m, &b), 0);
    size_t n = b.len - 4;
    assert_true(n <= cap);
    memcpy(out, b.data + 4, n);
    kvl_buf_free(&b);
    return n;
}

/* A journal as a collector killed between journaling and applying would leave it. */
static void test_ingest_replays_once(void **state)
{
    (void)state;
    char dir[64], jdir[128];
    mkdtmp(dir, sizeof(dir));
    snprintf(jdir, sizeof(jdir), "%s/_journal", dir);
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_journal_t *j = open_j(jdir, 0, 0);
    assert_int_equal(kvl_journal_start(j, &loop, on_synced, NULL, NULL), 0);
    put(j, KVL_JREC_CONNECT, "agent-r", 0, "lab", false, NULL);
    kvl_series_def_t def = {.id = 1,
                            .device = "sw9",
                            .scope = KVL_SCOPE_DEVICE,
                            .instance = "",
                            .metric = "reachable",
                            .kind = KVL_KIND_GAUGE,
                            .interval_s = 60};
    kvl_msg_t m = {.type = KVL_MSG_SERIES_DEFS};
    m.u.series_defs.defs = &def;
    m.u.series_defs.n = 1;
    uint8_t buf[512];
    size_t n = payload_of(&m, buf, sizeof(buf));
    kvl_jrec_t r = {
        .type = KVL_JREC_DEFS, .agent = "agent-r", .agent_len = 7, .data = buf, .len = n};
    assert_int_equal(kvl_journal_append(j, &r, false, NULL), 0);
    int64_t t0 = ((int64_t)time(NULL) - 600) / 60 * 60;
    uint32_t id = 1;
    kvl_group_t g = {
        .time_ms = t0 * 1000, .ids = &id, .n_ids = 1, .values = (uint64_t[]){1}, .n_values = 1};
    m = (kvl_msg_t){.type = KVL_MSG_BATCH};
    m.u.batch = (kvl_batch_t){.seq = 4242, .groups = &g, .n_groups = 1};
    n = payload_of(&m, buf, sizeof(buf));
    r = (kvl_jrec_t){.type = KVL_JREC_BATCH,
                     .seq = 4242,
                     .agent = "agent-r",
                     .agent_len = 7,
                     .data = buf,
                     .len = n};
    assert_int_equal(kvl_journal_append(j, &r, true, NULL), 0);
    run_until_synced(&loop, j);
    close_j(&loop, j);
    uv_loop_close(&loop);

    coll_t c;
    coll_start(&c, dir);
    kvl_ingest_stats_t s;
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.replay_queued, 1);
    assert_int_equal(s.replayed_batches, 1);
    assert_int_equal(s.replay_stale, 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/lab/sw9.rrd", dir);
    assert_int_equal(access(path, R_OK), 0);
    coll_stop(&c);

    /* Recorded as applied: nothing to replay the second time; the position survives. */
    coll_start(&c, dir);
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.replay_queued, 0);
    assert_int_equal(s.replay_errors, 0);
    coll_stop(&c);
    rmrf(dir);
}

/* A raw agent that sends its frames at once and counts the acknowledgements. */
typedef struct raw {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    kvl_buf_t out, in;
    uint64_t acked;
} raw_t;

static void raw_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    b->base = malloc(n);
    b->len = n;
}

static void raw_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    raw_t *r = st->data;
    if (n > 0) {
        kvl_buf_append(&r->in, b->base, (size_t)n);
    }
    free(b->base);
    while (r->in.len >= 4) {
        uint32_t len = (uint32_t)r->in.data[0] << 24 | (uint32_t)r->in.data[1] << 16 |
                       (uint32_t)r->in.data[2] << 8 | r->in.data[3];
        if (r->in.len < 4 + (size_t)len) {
            break;
        }
        kvl_msg_t m = {0};
        char err[128];
        if (kvl_wire_decode(r->in.data + 4, len, &m, err, sizeof(err)) == 0 &&
            m.type == KVL_MSG_ACK && m.u.ack.seq > r->acked) {
            r->acked = m.u.ack.seq;
        }
        kvl_msg_clear(&m);
        kvl_buf_consume(&r->in, 4 + (size_t)len);
    }
}

static void raw_connected(uv_connect_t *req, int status)
{
    raw_t *r = req->data;
    assert_int_equal(status, 0);
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
    uv_buf_t b = uv_buf_init((char *)r->out.data, (unsigned)r->out.len);
    uv_write(&r->wr, (uv_stream_t *)&r->tcp, &b, 1, NULL);
}

/* 300 batches in one burst: the archives cannot keep up, so all are acknowledged once
 * journaled but only some stay decoded in memory; the others are read back from the
 * journal when their turn comes. Every value lands where it belongs. */
static void test_ingest_spills_and_reads_back(void **state)
{
    (void)state;
    enum { N = 300 };
    char dir[64];
    mkdtmp(dir, sizeof(dir));
    coll_t c;
    coll_start(&c, dir);
    raw_t r;
    memset(&r, 0, sizeof(r));
    kvl_msg_t m = {.type = KVL_MSG_HELLO};
    m.u.hello = (kvl_hello_t){
        .protocol = KVL_PROTOCOL_VERSION, .agent_id = "agent-s", .version = "t", .site = "lab"};
    assert_int_equal(kvl_wire_encode(&m, &r.out), 0);
    kvl_series_def_t def = {.id = 1,
                            .device = "gw",
                            .scope = KVL_SCOPE_DEVICE,
                            .instance = "",
                            .metric = "response_ms",
                            .kind = KVL_KIND_GAUGE,
                            .interval_s = 60};
    m = (kvl_msg_t){.type = KVL_MSG_SERIES_DEFS};
    m.u.series_defs.defs = &def;
    m.u.series_defs.n = 1;
    assert_int_equal(kvl_wire_encode(&m, &r.out), 0);
    int64_t t0 = ((int64_t)time(NULL) - 86400) / 60 * 60;
    for (int k = 0; k < N; k++) {
        uint32_t id = 1;
        uint64_t v = 1000 + (uint64_t)k;
        kvl_group_t g = {
            .time_ms = (t0 + 60 * k) * 1000, .ids = &id, .n_ids = 1, .values = &v, .n_values = 1};
        m = (kvl_msg_t){.type = KVL_MSG_BATCH};
        m.u.batch = (kvl_batch_t){.seq = 100 + (uint64_t)k, .groups = &g, .n_groups = 1};
        assert_int_equal(kvl_wire_encode(&m, &r.out), 0);
    }
    uv_tcp_init(&c.loop, &r.tcp);
    r.tcp.data = &r;
    r.conn.data = &r;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", kvl_ingest_port(c.in), &sa);
    uv_tcp_connect(&r.conn, &r.tcp, (const struct sockaddr *)&sa, raw_connected);
    kvl_ingest_stats_t s;
    for (int i = 0; i < 30000; i++) {
        kvl_ingest_stats(c.in, &s);
        if (r.acked == 100 + N - 1 && s.batches_written == N) {
            break;
        }
        uv_run(&c.loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    assert_int_equal(r.acked, 100 + N - 1);
    assert_int_equal(s.batches_written, N);
    assert_true(s.batches_spilled > 0);
    assert_int_equal(s.batches_read_back, s.batches_spilled);
    assert_int_equal(s.updates_stale, 0);
    assert_int_equal(s.updates_failed, 0);
    uv_close((uv_handle_t *)&r.tcp, NULL);
    kvl_buf_free(&r.out);
    kvl_buf_free(&r.in);

    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "rrdtool fetch '%s/lab/gw.rrd' AVERAGE -r 60 --start %lld --end %lld", dir,
             (long long)t0, (long long)(t0 + 60 * (N - 1)));
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char line[512];
    int rows = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        long long t;
        double v;
        if (sscanf(line, "%lld: %lf", &t, &v) == 2 && t > t0 && t <= t0 + 60 * (N - 1)) {
            /* the step ending at t holds the value sent for t */
            assert_float_equal(v, 1000.0 + (double)((t - t0) / 60), 1e-6);
            rows++;
        }
    }
    pclose(f);
    assert_int_equal(rows, N - 1);
    coll_stop(&c);
    rmrf(dir);
}

/* Records replayed, with the agent's batch seqs seen (each once, in order). */
typedef struct seen {
    int n;
    uint64_t seqs[512];
} seen_t;

static int collect_seqs(void *ctx, const kvl_jrec_t *r, uint64_t seg)
{
    (void)seg;
    seen_t *s = ctx;
    assert_true(s->n < 512);
    assert_true(s->n == 0 || r->seq > s->seqs[s->n - 1]);
    s->seqs[s->n++] = r->seq;
    return 0;
}

static bool seen_has(const seen_t *s, uint64_t seq)
{
    for (int i = 0; i < s->n; i++) {
        if (s->seqs[i] == seq) {
            return true;
        }
    }
    return false;
}

/* Segment names of dir, sorted. Returns how many. */
static int list_segments(const char *dir, char names[][32], int max)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l == 20 && strcmp(e->d_name + 16, ".jnl") == 0 && n < max) {
            memcpy(names[n++], e->d_name, 21);
        }
    }
    closedir(d);
    qsort(names, (size_t)n, 32, (int (*)(const void *, const void *))strcmp);
    return n;
}

/* The offsets and batch seqs of the records of one segment file. Returns how many. */
static int segment_records(const char *path, uint64_t *offs, uint64_t *seqs, int max)
{
    static uint8_t buf[1 << 16];
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    assert_true(n > KVL_JOURNAL_HEADER);
    size_t off = KVL_JOURNAL_HEADER;
    int k = 0;
    kvl_jrec_t r;
    size_t used;
    while (k < max && kvl_journal_parse(buf + off, (size_t)n - off, &r, &used) == 1) {
        offs[k] = off;
        seqs[k++] = r.seq;
        off += used;
    }
    return k;
}

static void flip_at(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
    close(fd);
}

/* 300 batches over ~10 segments of 4 KiB, all held (not applied). */
static void write_batches(const char *dir, uv_loop_t *loop)
{
    kvl_journal_t *j = open_j(dir, 4096, 0);
    assert_int_equal(kvl_journal_start(j, loop, on_synced, NULL, NULL), 0);
    char data[96];
    memset(data, 'b', sizeof(data) - 1);
    data[sizeof(data) - 1] = '\0';
    for (uint64_t i = 1; i <= 300; i++) {
        put(j, KVL_JREC_BATCH, "agent-d", 1000 + i, data, true, NULL);
    }
    run_until_synced(loop, j);
    close_j(loop, j);
}

/* Bytes flipped in the middle of an earlier segment and of the last one: only the records
 * they touch are lost, each region reported and counted, nothing cut; a removed segment
 * in the middle is reported with its records. */
static void test_damage_and_gaps(void **state)
{
    (void)state;
    char dir[64], path[128];
    mkdtmp(dir, sizeof(dir));
    uv_loop_t loop;
    uv_loop_init(&loop);
    write_batches(dir, &loop);
    char names[64][32];
    int n = list_segments(dir, names, 64);
    assert_true(n >= 6);
    uint64_t offs[64], seqs[64];
    /* Segment 2: the body of its 3rd record and the length of its 6th. */
    snprintf(path, sizeof(path), "%s/%s", dir, names[2]);
    int k = segment_records(path, offs, seqs, 64);
    assert_true(k >= 8);
    flip_at(path, offs[2] + KVL_JOURNAL_RECORD_HEADER + 20);
    flip_at(path, offs[5] + 1);
    uint64_t lost1 = seqs[2], lost2 = seqs[5];
    /* The last segment: the seq field of its 2nd record. */
    snprintf(path, sizeof(path), "%s/%s", dir, names[n - 1]);
    struct stat before;
    assert_int_equal(stat(path, &before), 0);
    k = segment_records(path, offs, seqs, 64);
    assert_true(k >= 3);
    flip_at(path, offs[1] + 8);
    uint64_t lost3 = seqs[1];

    kvl_journal_t *j = open_j(dir, 4096, 0);
    kvl_journal_stats_t st;
    kvl_journal_stats(j, &st);
    assert_int_equal(st.damaged_regions, 3);
    assert_int_equal(st.lost_records, 3);
    assert_int_equal(st.missing_segments, 0);
    static seen_t seen;
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kvl_journal_replay(j, collect_seqs, &seen), 0);
    assert_int_equal(seen.n, 300 - 3);
    assert_false(seen_has(&seen, lost1));
    assert_false(seen_has(&seen, lost2));
    assert_false(seen_has(&seen, lost3));
    assert_true(seen_has(&seen, 1300));
    kvl_journal_close(j);
    struct stat after;
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_size, before.st_size); /* not cut */

    /* Segment 4 removed: reported with its records, the others all replayed. */
    snprintf(path, sizeof(path), "%s/%s", dir, names[4]);
    k = segment_records(path, offs, seqs, 64);
    assert_int_equal(unlink(path), 0);
    j = open_j(dir, 4096, 0);
    kvl_journal_stats(j, &st);
    assert_int_equal(st.missing_segments, 1);
    assert_int_equal(st.lost_records, 3 + (uint64_t)k);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kvl_journal_replay(j, collect_seqs, &seen), 0);
    assert_int_equal(seen.n, 300 - 3 - k);
    /* Started again: the index follows, the same segment is not reported twice. */
    assert_int_equal(kvl_journal_start(j, &loop, on_synced, NULL, NULL), 0);
    run_until_synced(&loop, j);
    close_j(&loop, j);
    j = open_j(dir, 4096, 0);
    kvl_journal_stats(j, &st);
    assert_int_equal(st.missing_segments, 0);
    kvl_journal_close(j);
    uv_loop_close(&loop);
    rmrf(dir);
}

/* A sparse 8 GiB file named like a segment and an unrelated file: the journal opens at
 * once, without reading either; the first is set aside, the second left alone. */
static void test_stray_files(void **state)
{
    (void)state;
    char dir[64], path[128];
    mkdtmp(dir, sizeof(dir));
    uv_loop_t loop;
    uv_loop_init(&loop);
    write_batches(dir, &loop);
    snprintf(path, sizeof(path), "%s/0000000000000900.jnl", dir);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    uint8_t h[KVL_JOURNAL_HEADER] = "kvljrnl";
    h[8] = 1;
    uint32_t crc = kvl_crc32c(0, h, 12);
    for (int i = 0; i < 4; i++) {
        h[12 + i] = (uint8_t)(crc >> (8 * i));
    }
    assert_int_equal(write(fd, h, sizeof(h)), (ssize_t)sizeof(h)); /* even a good header */
    assert_int_equal(ftruncate(fd, (off_t)8 << 30), 0);
    close(fd);
    char other[128];
    snprintf(other, sizeof(other), "%s/notes.txt", dir);
    fd = open(other, O_WRONLY | O_CREAT, 0600);
    close(fd);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kvl_journal_t *j = open_j(dir, 4096, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 5);
    kvl_journal_stats_t st;
    kvl_journal_stats(j, &st);
    assert_int_equal(st.stray_files, 1);
    assert_int_equal(st.damaged_regions, 0);
    static seen_t seen;
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(kvl_journal_replay(j, collect_seqs, &seen), 0);
    assert_int_equal(seen.n, 300);
    kvl_journal_close(j);
    char aside[160];
    snprintf(aside, sizeof(aside), "%s.stray", path);
    assert_int_equal(access(aside, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0);
    uv_loop_close(&loop);
    rmrf(dir);
}

int main(void)
{
    kvl_log_level = KVL_LOG_LEVEL_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_reopen),
        cmocka_unit_test(test_torn_tail_every_offset),
        cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_segments_released),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_ingest_replays_once),
        cmocka_unit_test(test_ingest_spills_and_reads_back),
        cmocka_unit_test(test_damage_and_gaps),
        cmocka_unit_test(test_stray_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
