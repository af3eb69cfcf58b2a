/*
 * test_pipeline.c — the agent's batcher and uplink against the collector's ingest and store,
 * in one process on one loop over TCP on 127.0.0.1: samples reach the RRD at the rate they
 * were made, resent batches are not written twice, and a peer sending garbage is cut off
 * while a good agent goes on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
/* cmocka.h needs the four headers above first. */
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "agent_config.h"
#include "batcher.h"
#include "collector_config.h"
#include "ingest.h"
#include "store.h"
#include "uplink.h"

typedef struct world {
    uv_loop_t loop;
    char dir[64];
    kvl_collector_cfg_t *ccfg;
    kvl_store_t *store;
    kvl_sinks_t sinks;
    kvl_ingest_t *ingest;
    kvl_agent_cfg_t *acfg;
    kvl_registry_t *registry;
    kvl_outbox_t *outbox;
    kvl_uplink_t *up;
    kvl_batcher_t *batcher;
} world_t;

/* The agent's ship room, wired as main.c does: registry <- batcher -> outbox <- uplink. */
static void ship_start(world_t *w)
{
    char err[600];
    kvl_uplink_reader_names_t names;
    const char *readers[KVL_MAX_COLLECTORS];
    size_t n = kvl_uplink_readers(&w->acfg->ship, &names, readers);
    assert_int_equal(kvl_registry_new(&w->registry, err, sizeof(err)), 0);
    assert_int_equal(
        kvl_outbox_open(&w->loop, &w->acfg->ship, readers, n, &w->outbox, err, sizeof(err)), 0);
    kvl_uplink_opts_t uo = {.cfg = &w->acfg->ship,
                            .agent_id = w->acfg->id,
                            .site = w->acfg->site,
                            .outbox = w->outbox,
                            .registry = w->registry};
    assert_int_equal(kvl_uplink_new(&w->loop, &uo, &w->up, err, sizeof(err)), 0);
    assert_int_equal(
        kvl_batcher_new(&w->loop, w->registry, w->outbox, 100, &w->batcher, err, sizeof(err)), 0);
    kvl_uplink_start(w->up);
}

/* Frees the ship room; the registry once the loop has run (see world_stop). */
static void ship_stop(world_t *w)
{
    kvl_batcher_free(w->batcher);
    kvl_uplink_free(w->up);
    kvl_outbox_free(w->outbox);
}

static void world_start(world_t *w, const char *agent_id)
{
    char err[512];
    memset(w, 0, sizeof(*w));
    assert_int_equal(uv_loop_init(&w->loop), 0);
    snprintf(w->dir, sizeof(w->dir), "/tmp/kvl-pipeline-XXXXXX");
    assert_non_null(mkdtemp(w->dir));
    char text[512];
    snprintf(
        text, sizeof(text),
        "listen: 127.0.0.1:1\ndata_dir: %s\narchives: [step:1h]\nlog_level: warn\ninsecure: true\n",
        w->dir);
    w->ccfg = kvl_collector_cfg_parse("collector.yaml", text, err, sizeof(err));
    assert_non_null(w->ccfg);
    w->ccfg->listen_port = 0; /* any free port */
    kvl_store_cfg_t scfg = {.data_dir = w->ccfg->data_dir,
                            .archives = w->ccfg->archives,
                            .n_archives = w->ccfg->n_archives,
                            .consolidations = (const char *const *)w->ccfg->consolidations};
    assert_int_equal(kvl_store_new(&w->loop, &scfg, &w->store, err, sizeof(err)), 0);
    assert_non_null(w->store);
    assert_int_equal(kvl_sinks_register(&w->sinks, &kvl_store_sink, w->store), 0);
    assert_int_equal(kvl_ingest_new(&w->loop, w->ccfg, &w->sinks, &w->ingest, err, sizeof(err)), 0);
    int port = kvl_ingest_port(w->ingest);
    assert_true(port > 0);
    snprintf(text, sizeof(text), "id: %s\nsite: lab\ncollector: 127.0.0.1:%d\ninsecure: true\n",
             agent_id, port);
    w->acfg = kvl_agent_cfg_parse("agent.yaml", text, err, sizeof(err));
    assert_non_null(w->acfg);
    ship_start(w);
}

static void world_stop(world_t *w)
{
    ship_stop(w);
    kvl_ingest_free(w->ingest);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    kvl_registry_free(w->registry);
    assert_int_equal(uv_loop_close(&w->loop), 0);
    kvl_store_free(w->store);
    kvl_collector_cfg_free(w->ccfg);
    kvl_agent_cfg_free(w->acfg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->dir);
    assert_int_equal(system(cmd), 0);
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond(w) holds or ms pass. */
static bool run_until(world_t *w, bool (*cond)(world_t *), uint64_t ms)
{
    uint64_t end = uv_now(&w->loop) + ms;
    uv_timer_t t;
    uv_timer_init(&w->loop, &t);
    bool ok = false;
    for (int i = 0; i < 100000 && uv_now(&w->loop) < end; i++) {
        if (cond(w)) {
            ok = true;
            break;
        }
        uv_timer_start(&t, on_tick, 10, 0);
        uv_run(&w->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    return ok || cond(w);
}

/* Acknowledged (on disk in the collector's journal) and written into the archives, which
 * follow the acknowledgement. */
static bool all_acked(world_t *w)
{
    kvl_ingest_stats_t s;
    kvl_ingest_stats(w->ingest, &s);
    return kvl_uplink_pending(w->up) == 0 && s.batches_written == s.batches_journaled &&
           kvl_store_busy(w->store) == 0;
}

/* Reads `rrdtool fetch` rows for one DS column; returns the number of rows read. */
static int fetch_column(const char *path, int64_t start, int64_t end, int col, double *out, int max)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "rrdtool fetch '%s' AVERAGE --start %lld --end %lld", path,
             (long long)start, (long long)end);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL && n < max) {
        char *colon = strchr(line, ':');
        if (colon == NULL) {
            continue;
        }
        char *p = colon + 1;
        double v = 0;
        for (int c = 0; c <= col; c++) {
            char *endp;
            v = strtod(p, &endp);
            if (endp == p) {
                v = -1;
                break;
            }
            p = endp;
        }
        out[n++] = v;
    }
    pclose(f);
    return n;
}

static void test_rate_reaches_archive(void **state)
{
    (void)state;
    world_t w;
    world_start(&w, "agent-rate");
    kvl_label_t labels[] = {{"ifIndex", "3"}};
    kvl_series_key_t k = {.device = "rtr1",
                          .scope = KVL_SCOPE_INTERFACE,
                          .instance = "ge-0/0/1",
                          .metric = "in_octets",
                          .kind = KVL_KIND_COUNTER,
                          .interval_s = 10,
                          .labels = labels,
                          .n_labels = 1};
    uint32_t in_id = kvl_batcher_series(w.batcher, &k);
    k.metric = "oper_status";
    k.kind = KVL_KIND_GAUGE;
    uint32_t oper_id = kvl_batcher_series(w.batcher, &k);
    assert_true(in_id > 0 && oper_id > 0 && in_id != oper_id);
    assert_int_equal(kvl_batcher_series(w.batcher, &k), oper_id); /* same key, same id */

    /* 30 polls, 10 s apart, ending an hour ago, counter rising 12,345 bytes/s. */
    int64_t t0 = ((int64_t)time(NULL) - 3600) / 10 * 10 - 300;
    for (int i = 0; i <= 30; i++) {
        kvl_batcher_group_begin(w.batcher, (t0 + 10 * i) * 1000);
        kvl_batcher_add(w.batcher, in_id, 5000000000ull + 123450ull * (uint64_t)i);
        kvl_batcher_add(w.batcher, oper_id, 1);
        kvl_batcher_group_end(w.batcher);
        if (i % 7 == 0) {
            kvl_batcher_flush(w.batcher); /* several batches */
        }
    }
    kvl_batcher_flush(w.batcher);
    assert_true(run_until(&w, all_acked, 10000));

    char path[256];
    snprintf(path, sizeof(path), "%s/lab/rtr1/ge-0%%2F0%%2F1.rrd", w.dir);
    assert_int_equal(access(path, R_OK), 0);
    double v[64];
    int n = fetch_column(path, t0 + 10, t0 + 300, 0, v, 64);
    assert_true(n >= 25);
    int known = 0;
    for (int i = 0; i < n; i++) {
        if (v[i] >= 0 && v[i] == v[i]) {
            assert_float_equal(v[i], 12345.0, 0.01);
            known++;
        }
    }
    assert_true(known >= 25);
    double st[64];
    n = fetch_column(path, t0 + 10, t0 + 300, 12, st, 64); /* oper_status */
    assert_true(n >= 25);
    assert_float_equal(st[5], 1.0, 1e-9);

    kvl_ingest_stats_t s;
    kvl_ingest_stats(w.ingest, &s);
    assert_true(s.batches_written >= 5);
    assert_int_equal(s.batches_duplicate, 0);
    assert_int_equal(s.updates_stale, 0);
    assert_int_equal(s.protocol_errors, 0);
    world_stop(&w);
}

/* A second uplink with the same agent id re-sends a batch the collector already wrote:
 * it is acknowledged and not written again. */
static void test_duplicate_not_written_twice(void **state)
{
    (void)state;
    world_t w;
    world_start(&w, "agent-dup");
    kvl_series_key_t k = {.device = "sw1",
                          .scope = KVL_SCOPE_DEVICE,
                          .instance = "",
                          .metric = "reachable",
                          .kind = KVL_KIND_GAUGE,
                          .interval_s = 60};
    uint32_t id = kvl_batcher_series(w.batcher, &k);
    int64_t t0 = (int64_t)time(NULL) - 600;

    /* Encode the batch ourselves so the same bytes can be sent twice. */
    kvl_series_def_t defs[4];
    size_t nd = kvl_registry_defs(w.registry, 0, defs, 4);
    kvl_group_t g = {
        .time_ms = t0 * 1000, .ids = &id, .n_ids = 1, .values = (uint64_t[]){1}, .n_values = 1};
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    m.u.batch = (kvl_batch_t){.seq = kvl_outbox_next_seq(w.outbox, KVL_LANE_BULK),
                              .defs = defs,
                              .n_defs = nd,
                              .groups = &g,
                              .n_groups = 1};
    kvl_buf_t f1 = {0}, f2 = {0};
    assert_int_equal(kvl_wire_encode(&m, &f1), 0);
    assert_int_equal(kvl_wire_encode(&m, &f2), 0);
    assert_int_equal(kvl_outbox_append(w.outbox, KVL_LANE_BULK, m.u.batch.seq, f1.data, f1.len), 0);
    kvl_buf_free(&f1);
    assert_true(run_until(&w, all_acked, 10000));

    /* The agent "restarts": a new uplink, same id, replays the same sequence number. */
    kvl_registry_t *old = w.registry;
    ship_stop(&w);
    ship_start(&w);
    assert_int_equal(kvl_outbox_append(w.outbox, KVL_LANE_BULK, m.u.batch.seq, f2.data, f2.len), 0);
    kvl_buf_free(&f2);
    assert_true(run_until(&w, all_acked, 10000));
    kvl_registry_free(old); /* the old batcher's close has completed */

    kvl_ingest_stats_t s;
    kvl_ingest_stats(w.ingest, &s);
    assert_int_equal(s.batches_written, 1);
    assert_int_equal(s.updates_stale, 0);
    world_stop(&w);
}

/* While another process holds a reader's lock on an archive (as rrdtool graph does), the
 * collector waits for it and then writes: the agent is not cut off, nothing is lost. */
static void test_reader_lock_waits(void **state)
{
    (void)state;
    world_t w;
    world_start(&w, "agent-lock");
    kvl_series_key_t k = {.device = "sw9",
                          .scope = KVL_SCOPE_DEVICE,
                          .instance = "",
                          .metric = "reachable",
                          .kind = KVL_KIND_GAUGE,
                          .interval_s = 10};
    uint32_t id = kvl_batcher_series(w.batcher, &k);
    int64_t t0 = (int64_t)time(NULL) - 600;
    kvl_batcher_group_begin(w.batcher, t0 * 1000);
    kvl_batcher_add(w.batcher, id, 1);
    kvl_batcher_group_end(w.batcher);
    kvl_batcher_flush(w.batcher);
    assert_true(run_until(&w, all_acked, 10000));

    char path[256];
    snprintf(path, sizeof(path), "%s/lab/sw9.rrd", w.dir);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        int fd = open(path, O_RDONLY);
        struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
        if (fd < 0 || fcntl(fd, F_SETLKW, &fl) != 0) {
            _exit(1);
        }
        if (write(pipefd[1], "L", 1) != 1) {
            _exit(1);
        }
        usleep(1500 * 1000);
        _exit(0);
    }
    char c;
    assert_int_equal(read(pipefd[0], &c, 1), 1); /* the child holds the lock now */
    uint64_t start = uv_hrtime();
    kvl_batcher_group_begin(w.batcher, (t0 + 10) * 1000);
    kvl_batcher_add(w.batcher, id, 0);
    kvl_batcher_group_end(w.batcher);
    kvl_batcher_flush(w.batcher);
    assert_true(run_until(&w, all_acked, 15000));
    uint64_t took_ms = (uv_hrtime() - start) / 1000000u;
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(pipefd[0]);
    close(pipefd[1]);
    assert_true(took_ms >= 1000); /* it really had to wait for the lock */

    kvl_ingest_stats_t s;
    kvl_ingest_stats(w.ingest, &s);
    assert_int_equal(s.batches_written, 2);
    assert_int_equal(s.protocol_errors, 0);
    assert_int_equal(s.connections, 1); /* never cut off */
    world_stop(&w);
}

typedef struct raw_client {
    uv_tcp_t tcp;
    uv_connect_t conn;
    uv_write_t wr;
    bool closed_by_peer;
    const char *bytes;
    size_t len;
} raw_client_t;

static void raw_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
    (void)h;
    static char buf[4096];
    (void)n;
    *b = uv_buf_init(buf, sizeof(buf));
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    raw_client_t *c = s->data;
    if (n < 0) {
        c->closed_by_peer = true;
        uv_close((uv_handle_t *)s, NULL);
    }
}

static void raw_connected(uv_connect_t *req, int status)
{
    raw_client_t *c = req->data;
    assert_int_equal(status, 0);
    uv_buf_t b = uv_buf_init((char *)c->bytes, (unsigned)c->len);
    uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, NULL);
    uv_read_start((uv_stream_t *)&c->tcp, raw_alloc, raw_read);
}

static raw_client_t *g_raw;
static bool raw_done_and_acked(world_t *w)
{
    return g_raw->closed_by_peer && all_acked(w);
}

static void test_garbage_peer_is_cut_off(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        {"\x00\x00\x00\x05hello", 9},              /* not a protobuf message */
        {"\x7f\xff\xff\xff", 4},                   /* oversized length */
        {"\x00\x00\x00\x02\x32\x00", 6},           /* an ack before any hello */
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27}, /* someone's browser */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        world_t w;
        world_start(&w, "agent-good");
        raw_client_t rc = {.bytes = cases[i].bytes, .len = cases[i].len};
        g_raw = &rc;
        uv_tcp_init(&w.loop, &rc.tcp);
        rc.tcp.data = &rc;
        rc.conn.data = &rc;
        struct sockaddr_in sa;
        uv_ip4_addr("127.0.0.1", kvl_ingest_port(w.ingest), &sa);
        uv_tcp_connect(&rc.conn, &rc.tcp, (const struct sockaddr *)&sa, raw_connected);

        /* Meanwhile the good agent's samples go through. */
        kvl_series_key_t k = {.device = "sw1",
                              .scope = KVL_SCOPE_DEVICE,
                              .instance = "",
                              .metric = "reachable",
                              .kind = KVL_KIND_GAUGE,
                              .interval_s = 60};
        uint32_t id = kvl_batcher_series(w.batcher, &k);
        kvl_batcher_group_begin(w.batcher, ((int64_t)time(NULL) - 100) * 1000);
        kvl_batcher_add(w.batcher, id, 1);
        kvl_batcher_group_end(w.batcher);
        kvl_batcher_flush(w.batcher);
        assert_true(run_until(&w, raw_done_and_acked, 10000));

        kvl_ingest_stats_t s;
        kvl_ingest_stats(w.ingest, &s);
        assert_int_equal(s.protocol_errors, 1);
        assert_int_equal(s.batches_written, 1);
        world_stop(&w);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_reaches_archive),
        cmocka_unit_test(test_duplicate_not_written_twice),
        cmocka_unit_test(test_garbage_peer_is_cut_off),
        cmocka_unit_test(test_reader_lock_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
