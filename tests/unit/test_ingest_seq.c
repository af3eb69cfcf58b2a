/*
 * test_ingest_seq.c — sequence numbers and identities at the collector's ingest
 * (collector/ingest/protocol.c, replay.c) with blocking peers on 127.0.0.1 speaking the
 * framed protocol: a batch numbered far ahead of the clock (10^18, 2^64-1) refused with a
 * reason, never journaled or adopted, the real agent's later batches journaled; a position
 * above the agent's own highest number (a peer's batch an hour ahead) rewound on the
 * agent's Hello, also across a restart of the ingest on the same journal; duplicates the
 * agent had no reason to send counted; Hello ids and sites beyond the bounds refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "collector_config.h"
#include "frame.h"
#include "ingest.h"
#include "kvl.h"
#include "log.h"
#include "sink.h"
#include "timeutil.h"
#include "wire.h"

/* A sink that applies everything and remembers the bulk seqs it saw, in order. */
typedef struct seen {
    uint64_t seqs[64];
    size_t n;
} seen_t;

static int seen_batch(void *ctx, const kvl_sink_batch_t *b, kvl_sink_done_cb done, void *token)
{
    seen_t *s = ctx;
    if (b->batch->lane == KVL_LANE_BULK && s->n < KVL_ARRAY_SIZE(s->seqs)) {
        s->seqs[s->n++] = b->batch->seq;
    }
    kvl_sink_result_t r = {0};
    done(token, &r);
    return 0;
}

static void seen_event(void *ctx, const kvl_sink_event_t *e)
{
    (void)ctx;
    (void)e;
}

static const kvl_sink_t seen_sink = {
    .name = "seen", .on_batch = seen_batch, .on_event = seen_event};

typedef struct coll {
    uv_loop_t loop;
    kvl_collector_cfg_t *cfg;
    kvl_sinks_t sinks;
    kvl_ingest_t *in;
} coll_t;

static void coll_start(coll_t *c, const char *dir, seen_t *seen)
{
    char err[512], text[512];
    memset(c, 0, sizeof(*c));
    assert_int_equal(uv_loop_init(&c->loop), 0);
    snprintf(text, sizeof(text),
             "listen: 127.0.0.1:1\ndata_dir: %s\nlog_level: warn\ninsecure: true\n"
             "journal_commit_delay: 0s\njournal_sync: false\n",
             dir);
    c->cfg = kvl_collector_cfg_parse("collector.yaml", text, err, sizeof(err));
    assert_non_null(c->cfg);
    assert_int_equal(c->cfg->max_seq_ahead_ms, 86400 * 1000); /* the default: a day */
    c->cfg->listen_port = 0;
    assert_int_equal(kvl_sinks_register(&c->sinks, &seen_sink, seen), 0);
    assert_int_equal(kvl_ingest_new(&c->loop, c->cfg, &c->sinks, &c->in, err, sizeof(err)), 0);
}

static void coll_stop(coll_t *c)
{
    kvl_ingest_free(c->in);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    kvl_collector_cfg_free(c->cfg);
}

static kvl_ingest_stats_t stats(coll_t *c)
{
    kvl_ingest_stats_t s;
    kvl_ingest_stats(c->in, &s);
    return s;
}

/* ------------------------------------------------------------------ a peer -------------- */

typedef struct peer {
    int fd;
    kvl_frame_reader_t rd;
    bool welcomed, closed;
    uint64_t welcome[KVL_LANES];
    uint64_t acked[KVL_LANES];
    char refusal[512];
} peer_t;

static void peer_send(peer_t *p, const kvl_msg_t *m)
{
    kvl_buf_t b = {0};
    assert_int_equal(kvl_wire_encode(m, &b), 0);
    assert_int_equal(write(p->fd, b.data, b.len), (ssize_t)b.len);
    kvl_buf_free(&b);
}

/* Connects (the kernel completes it before the loop accepts) and says Hello; last: the
 * positions it tells, or NULL for an older agent that tells none. */
static void peer_connect(peer_t *p, coll_t *c, const char *id, const char *site,
                         const uint64_t *last)
{
    memset(p, 0, sizeof(*p));
    kvl_frame_reader_init(&p->rd, KVL_FRAME_MAX_DEFAULT);
    p->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(p->fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)kvl_ingest_port(c->in))};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(p->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    kvl_msg_t m = {.type = KVL_MSG_HELLO};
    m.u.hello = (kvl_hello_t){
        .protocol = KVL_PROTOCOL_VERSION, .agent_id = id, .version = "test", .site = site};
    if (last != NULL) {
        m.u.hello.has_last_seq = true;
        m.u.hello.last_seq = last[KVL_LANE_BULK];
        m.u.hello.last_event_seq = last[KVL_LANE_EVENTS];
    }
    peer_send(p, &m);
}

static void peer_close(peer_t *p)
{
    close(p->fd);
    kvl_frame_reader_free(&p->rd);
}

/* Reads what the collector sent so far. */
static void peer_poll(peer_t *p)
{
    uint8_t buf[4096];
    while (!p->closed) {
        ssize_t n = recv(p->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        }
        if (n <= 0) {
            p->closed = true;
            return;
        }
        assert_int_equal(kvl_frame_reader_feed(&p->rd, buf, (size_t)n), 0);
        const uint8_t *payload;
        size_t len;
        while (kvl_frame_next(&p->rd, &payload, &len) == 1) {
            kvl_msg_t m = {0};
            char err[256];
            assert_int_equal(kvl_wire_decode(payload, len, &m, err, sizeof(err)), 0);
            if (m.type == KVL_MSG_WELCOME) {
                p->welcomed = true;
                p->welcome[KVL_LANE_BULK] = m.u.welcome.last_acked_seq;
                p->welcome[KVL_LANE_EVENTS] = m.u.welcome.last_acked_event_seq;
            } else if (m.type == KVL_MSG_ACK && m.u.ack.lane < KVL_LANES) {
                p->acked[m.u.ack.lane] = m.u.ack.seq;
            } else if (m.type == KVL_MSG_REFUSAL) {
                snprintf(p->refusal, sizeof(p->refusal), "%s", m.u.refusal);
            }
            kvl_msg_clear(&m);
        }
    }
}

/* Runs the collector's loop and reads the peer until cond or about 5 s. */
static bool run_until(coll_t *c, peer_t *p, bool (*cond)(peer_t *, void *), void *arg)
{
    for (int i = 0; i < 5000; i++) {
        uv_run(&c->loop, UV_RUN_NOWAIT);
        peer_poll(p);
        if (cond(p, arg)) {
            return true;
        }
        uv_sleep(1);
    }
    return cond(p, arg);
}

static bool welcomed(peer_t *p, void *arg)
{
    (void)arg;
    return p->welcomed || p->closed;
}

static bool acked(peer_t *p, void *arg)
{
    return p->acked[KVL_LANE_BULK] >= *(const uint64_t *)arg || p->closed;
}

static bool closed(peer_t *p, void *arg)
{
    (void)arg;
    return p->closed;
}

static const kvl_series_def_t def = {.id = 1,
                                     .device = "sw1",
                                     .scope = KVL_SCOPE_DEVICE,
                                     .instance = "",
                                     .metric = "reachable",
                                     .kind = KVL_KIND_GAUGE,
                                     .interval_s = 60};

static void peer_batch(peer_t *p, uint64_t seq)
{
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    uint32_t id = 1;
    uint64_t v = 1;
    kvl_group_t g = {.time_ms = ((int64_t)time(NULL) - 600) / 60 * 60 * 1000,
                     .ids = &id,
                     .n_ids = 1,
                     .values = &v,
                     .n_values = 1};
    m.u.batch = (kvl_batch_t){
        .seq = seq, .lane = KVL_LANE_BULK, .defs = &def, .n_defs = 1, .groups = &g, .n_groups = 1};
    peer_send(p, &m);
}

static uint64_t now_us(void)
{
    return (uint64_t)kvl_now_ms() * 1000u;
}

static void rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------------ the tests ----------- */

/* A peer under the agent's id sends 10^18, another 2^64-1: each refused with the reason,
 * nothing journaled or acknowledged, the position unchanged; the real agent's batches
 * before and after are journaled and applied in order. */
static void test_far_ahead_refused(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-seq-XXXXXX";
    assert_non_null(mkdtemp(dir));
    seen_t seen = {0};
    coll_t c;
    coll_start(&c, dir, &seen);

    uint64_t s1 = now_us() - 2000000, last[KVL_LANES] = {s1, 0};
    peer_t real;
    peer_connect(&real, &c, "agent-r", "lab", last);
    assert_true(run_until(&c, &real, welcomed, NULL));
    assert_false(real.closed);
    assert_int_equal(real.welcome[KVL_LANE_BULK], 0);
    peer_batch(&real, s1);
    assert_true(run_until(&c, &real, acked, &s1));
    assert_int_equal(real.acked[KVL_LANE_BULK], s1);
    peer_close(&real);

    const uint64_t bogus[] = {UINT64_C(1000000000000000000), UINT64_MAX,
                              now_us() + UINT64_C(2) * 86400 * 1000000};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bogus); i++) {
        peer_t fake;
        peer_connect(&fake, &c, "agent-r", "lab", NULL);
        assert_true(run_until(&c, &fake, welcomed, NULL));
        assert_int_equal(fake.welcome[KVL_LANE_BULK], s1);
        peer_batch(&fake, bogus[i]);
        assert_true(run_until(&c, &fake, closed, NULL));
        assert_non_null(strstr(fake.refusal, "ahead of the collector's clock"));
        assert_int_equal(fake.acked[KVL_LANE_BULK], 0);
        peer_close(&fake);
    }
    kvl_ingest_stats_t s = stats(&c);
    assert_int_equal(s.batches_refused_seq, 3);
    assert_int_equal(s.batches_journaled, 1);

    /* the real agent again: its position is still its own, its next batch is new */
    uint64_t s2 = now_us();
    last[KVL_LANE_BULK] = s2;
    peer_connect(&real, &c, "agent-r", "lab", last);
    assert_true(run_until(&c, &real, welcomed, NULL));
    assert_int_equal(real.welcome[KVL_LANE_BULK], s1);
    peer_batch(&real, s2);
    assert_true(run_until(&c, &real, acked, &s2));
    assert_int_equal(real.acked[KVL_LANE_BULK], s2);
    s = stats(&c);
    assert_int_equal(s.batches_journaled, 2);
    assert_int_equal(s.batches_duplicate, 0);
    assert_int_equal(s.seq_rewinds, 0);
    for (int i = 0; i < 1000 && seen.n < 2; i++) {
        uv_run(&c.loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.seqs[0], s1);
    assert_int_equal(seen.seqs[1], s2);
    peer_close(&real);
    coll_stop(&c);

    /* and after a restart the position is the real one */
    coll_start(&c, dir, &seen);
    peer_connect(&real, &c, "agent-r", "lab", NULL);
    assert_true(run_until(&c, &real, welcomed, NULL));
    assert_int_equal(real.welcome[KVL_LANE_BULK], s2);
    peer_close(&real);
    coll_stop(&c);
    rm_rf(dir);
}

/* A peer's batch an hour ahead (within max_seq_ahead) is journaled; the real agent's Hello
 * says its highest number is below: the position goes back to the real agent's last batch,
 * the Welcome says so, and its next batch is written, not taken for a duplicate. The
 * rewind is in the journal: a restarted ingest does not bring the hour back from the
 * peer's batch record. */
static void test_rewind_on_hello(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-seq-XXXXXX";
    assert_non_null(mkdtemp(dir));
    seen_t seen = {0};
    coll_t c;
    coll_start(&c, dir, &seen);

    uint64_t s1 = now_us() - 5000000, last[KVL_LANES] = {s1, 0};
    peer_t real, fake;
    peer_connect(&real, &c, "agent-w", "lab", last);
    assert_true(run_until(&c, &real, welcomed, NULL));
    peer_batch(&real, s1);
    assert_true(run_until(&c, &real, acked, &s1));
    peer_close(&real);

    uint64_t hour = now_us() + UINT64_C(3600) * 1000000;
    peer_connect(&fake, &c, "agent-w", "lab", NULL);
    assert_true(run_until(&c, &fake, welcomed, NULL));
    peer_batch(&fake, hour);
    assert_true(run_until(&c, &fake, acked, &hour));
    assert_int_equal(fake.acked[KVL_LANE_BULK], hour); /* possible: taken */
    peer_close(&fake);

    /* the real agent made nothing above s2: back to s1, its last journaled batch */
    uint64_t s2 = now_us();
    last[KVL_LANE_BULK] = s2 - 1;
    peer_connect(&real, &c, "agent-w", "lab", last);
    assert_true(run_until(&c, &real, welcomed, NULL));
    assert_false(real.closed);
    assert_int_equal(real.welcome[KVL_LANE_BULK], s1);
    assert_int_equal(stats(&c).seq_rewinds, 1);
    peer_batch(&real, s2);
    assert_true(run_until(&c, &real, acked, &s2));
    assert_int_equal(real.acked[KVL_LANE_BULK], s2);
    kvl_ingest_stats_t s = stats(&c);
    assert_int_equal(s.batches_journaled, 3);
    assert_int_equal(s.batches_duplicate, 0);

    /* a batch the Welcome said was durable, sent again: acknowledged, counted */
    uint64_t s3 = s2 + 1;
    peer_batch(&real, s3);
    assert_true(run_until(&c, &real, acked, &s3));
    peer_close(&real);
    last[KVL_LANE_BULK] = s3;
    peer_connect(&real, &c, "agent-w", "lab", last);
    assert_true(run_until(&c, &real, welcomed, NULL));
    assert_int_equal(real.welcome[KVL_LANE_BULK], s3);
    peer_batch(&real, s2);
    assert_true(run_until(&c, &real, acked, &s2));
    assert_false(real.closed);
    s = stats(&c);
    assert_int_equal(s.batches_journaled, 4);
    assert_int_equal(s.batches_duplicate, 1);
    assert_int_equal(s.duplicates_unexpected, 1);
    assert_int_equal(s.seq_rewinds, 1);
    peer_close(&real);
    coll_stop(&c);

    /* restart: the peer's record (an hour ahead) is in the journal before the rewind; the
     * position comes back as s3, not the hour */
    coll_start(&c, dir, &seen);
    last[KVL_LANE_BULK] = s3;
    peer_connect(&real, &c, "agent-w", "lab", last);
    assert_true(run_until(&c, &real, welcomed, NULL));
    assert_int_equal(real.welcome[KVL_LANE_BULK], s3);
    assert_int_equal(stats(&c).seq_rewinds, 0);
    peer_close(&real);
    coll_stop(&c);
    rm_rf(dir);
}

/* An older agent (no positions in its Hello) is never rewound. */
static void test_older_agent_not_rewound(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-seq-XXXXXX";
    assert_non_null(mkdtemp(dir));
    seen_t seen = {0};
    coll_t c;
    coll_start(&c, dir, &seen);
    uint64_t s1 = now_us();
    peer_t p;
    peer_connect(&p, &c, "agent-o", "lab", NULL);
    assert_true(run_until(&c, &p, welcomed, NULL));
    peer_batch(&p, s1);
    assert_true(run_until(&c, &p, acked, &s1));
    peer_close(&p);
    peer_connect(&p, &c, "agent-o", "lab", NULL);
    assert_true(run_until(&c, &p, welcomed, NULL));
    assert_int_equal(p.welcome[KVL_LANE_BULK], s1);
    assert_int_equal(stats(&c).seq_rewinds, 0);
    peer_close(&p);
    coll_stop(&c);
    rm_rf(dir);
}

/* Ids and sites the archives cannot hold are refused at the Hello, with the reason. */
static void test_hello_bounds(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-seq-XXXXXX";
    assert_non_null(mkdtemp(dir));
    seen_t seen = {0};
    coll_t c;
    coll_start(&c, dir, &seen);
    char long_id[202], slashes[120], long_site[202];
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0'; /* 201 bytes */
    memset(slashes, '/', sizeof(slashes) - 1);
    slashes[sizeof(slashes) - 1] = '\0'; /* 119 bytes, 357 as a file name */
    memset(long_site, 's', sizeof(long_site) - 1);
    long_site[sizeof(long_site) - 1] = '\0';
    struct {
        const char *id, *site, *why;
    } cases[] = {
        {"", "lab", "no agent id"},
        {long_id, "lab", "agent id of 201 bytes is longer than this collector accepts (200)"},
        {"agent-s", long_site, "site name of 201 bytes is longer"},
        {slashes, "lab", "agent id"},
        {"agent-s", slashes, "site"},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(cases); i++) {
        peer_t p;
        peer_connect(&p, &c, cases[i].id, cases[i].site, NULL);
        assert_true(run_until(&c, &p, closed, NULL));
        assert_false(p.welcomed);
        if (strstr(p.refusal, cases[i].why) == NULL) {
            fail_msg("case %zu: refusal '%s' lacks '%s'", i, p.refusal, cases[i].why);
        }
        peer_close(&p);
    }
    /* at the bounds: taken */
    long_id[200] = '\0';
    long_site[200] = '\0';
    peer_t p;
    peer_connect(&p, &c, long_id, long_site, NULL);
    assert_true(run_until(&c, &p, welcomed, NULL));
    assert_true(p.welcomed);
    peer_close(&p);
    coll_stop(&c);
    rm_rf(dir);
}

int main(void)
{
    kvl_log_level = KVL_LOG_LEVEL_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_far_ahead_refused),
        cmocka_unit_test(test_rewind_on_hello),
        cmocka_unit_test(test_older_agent_not_rewound),
        cmocka_unit_test(test_hello_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
