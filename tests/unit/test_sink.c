/*
 * test_sink.c — the sink seam (collector/sink.h) through the ingest: the registry's order
 * and bound, every batch to every sink once and in order, and an events-only batch's
 * events handed over once across a crash: on arrival in a collector that dies before the
 * batch is applied, and not again when the next one replays the journal. A sink that asks
 * for a batch again (a failure that can pass): the batch comes back to it alone, later, in
 * order, the agent's later batches waiting behind it and another agent's not; a collector
 * stopped while an agent waits leaves the batch in the journal, and the next one replays
 * and retries it the same way. A sink whose writes are durable only later: the batches
 * go on, and a restart replays those whose durability point was not reached.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "collector_config.h"
#include "ingest.h"
#include "kvl.h"
#include "sink.h"
#include "wire.h"

/* A sink that counts; with hold set it never calls done (its batches stay unapplied). */
typedef struct counter {
    int batches, replayed_batches, events, replayed_events;
    uint64_t last_seq[KVL_LANES];
    bool out_of_order;
    bool hold;
    char order[64]; /* which sink saw the events, in order (two sinks share it) */
    char *shared;
    char tag;
} counter_t;

static int count_batch(void *ctx, const kvl_sink_batch_t *b, kvl_sink_done_cb done, void *token)
{
    counter_t *c = ctx;
    c->batches++;
    c->replayed_batches += b->replayed;
    if (b->batch->seq <= c->last_seq[b->batch->lane]) {
        c->out_of_order = true;
    }
    c->last_seq[b->batch->lane] = b->batch->seq;
    if (!c->hold) {
        kvl_sink_result_t r = {0};
        done(token, &r);
    }
    return 0;
}

static void count_event(void *ctx, const kvl_sink_event_t *e)
{
    counter_t *c = ctx;
    c->events++;
    c->replayed_events += e->replayed;
    if (c->shared != NULL) {
        size_t n = strlen(c->shared);
        c->shared[n] = c->tag;
        c->shared[n + 1] = '\0';
    }
}

static const kvl_sink_t counting_sink = {
    .name = "counting sink", .on_batch = count_batch, .on_event = count_event};

static void test_registry(void **state)
{
    (void)state;
    kvl_sinks_t s = {0};
    counter_t c[KVL_SINKS_MAX + 1];
    char order[64] = "";
    memset(c, 0, sizeof(c));
    for (int i = 0; i < KVL_SINKS_MAX; i++) {
        c[i].shared = order;
        c[i].tag = (char)('a' + i);
        assert_int_equal(kvl_sinks_register(&s, &counting_sink, &c[i]), 0);
    }
    assert_int_equal(kvl_sinks_register(&s, &counting_sink, &c[KVL_SINKS_MAX]), KVL_EINVAL);
    assert_int_equal(kvl_sinks_register(NULL, &counting_sink, NULL), KVL_EINVAL);
    kvl_event_t ev = {.device = "d", .kind = "k", .text = "t"};
    kvl_sink_event_t e = {.agent = "a", .site = "s", .event = &ev};
    kvl_sinks_event(&s, &e);
    assert_string_equal(order, "abcdefghijklmnop");
}

/* ------------------------------------------------------------- a collector and an agent */

typedef struct coll {
    uv_loop_t loop;
    char dir[64];
    kvl_collector_cfg_t *cfg;
    kvl_sinks_t sinks;
    kvl_ingest_t *in;
} coll_t;

/* When set: journal segments of this size (below what the configuration accepts) and a
 * bound of 4 of them. */
static int64_t g_segment_bytes;

static void coll_start_with(coll_t *c, const char *dir, const kvl_sink_t *s1, void *ctx1,
                            const kvl_sink_t *s2, void *ctx2)
{
    char err[512], text[512];
    memset(c, 0, sizeof(*c));
    assert_int_equal(uv_loop_init(&c->loop), 0);
    snprintf(text, sizeof(text),
             "listen: 127.0.0.1:1\ndata_dir: %s\narchives: [step:1h]\nlog_level: error\n"
             "insecure: true\njournal_commit_delay: 0s\n",
             dir);
    c->cfg = kvl_collector_cfg_parse("collector.yaml", text, err, sizeof(err));
    assert_non_null(c->cfg);
    c->cfg->listen_port = 0;
    if (g_segment_bytes > 0) {
        c->cfg->journal_segment_bytes = g_segment_bytes;
        c->cfg->journal_max_bytes = 4 * g_segment_bytes;
    }
    assert_int_equal(kvl_sinks_register(&c->sinks, s1, ctx1), 0);
    if (s2 != NULL) {
        assert_int_equal(kvl_sinks_register(&c->sinks, s2, ctx2), 0);
    }
    assert_int_equal(kvl_ingest_new(&c->loop, c->cfg, &c->sinks, &c->in, err, sizeof(err)), 0);
}

static void coll_start(coll_t *c, const char *dir, counter_t *a, counter_t *b)
{
    coll_start_with(c, dir, &counting_sink, a, b != NULL ? &counting_sink : NULL, b);
}

static void coll_stop(coll_t *c)
{
    kvl_ingest_free(c->in);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    kvl_collector_cfg_free(c->cfg);
}

/* Runs the loop until cond(arg) or about 5 s. */
static bool run_until(coll_t *c, bool (*cond)(coll_t *, void *), void *arg)
{
    for (int i = 0; i < 5000; i++) {
        if (cond(c, arg)) {
            return true;
        }
        uv_run(&c->loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    return cond(c, arg);
}

/* A blocking agent: the kernel completes the connection before the loop accepts it. */
static int agent_connect(int port, const char *id)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    kvl_msg_t m = {.type = KVL_MSG_HELLO};
    m.u.hello = (kvl_hello_t){
        .protocol = KVL_PROTOCOL_VERSION, .agent_id = id, .version = "test", .site = "lab"};
    kvl_buf_t b = {0};
    assert_int_equal(kvl_wire_encode(&m, &b), 0);
    assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
    kvl_buf_free(&b);
    return fd;
}

static const kvl_series_def_t sink_def = {.id = 1,
                                          .device = "sw1",
                                          .scope = KVL_SCOPE_DEVICE,
                                          .instance = "",
                                          .metric = "reachable",
                                          .kind = KVL_KIND_GAUGE,
                                          .interval_s = 60};

/* A bulk batch with one sample (defining its series), or an events-only batch. */
static void agent_send(int fd, uint32_t lane, uint64_t seq)
{
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    uint32_t id = 1;
    uint64_t v = 1;
    kvl_group_t g = {.time_ms = ((int64_t)time(NULL) - 600) / 60 * 60 * 1000,
                     .ids = &id,
                     .n_ids = 1,
                     .values = &v,
                     .n_values = 1};
    kvl_event_t ev = {.time_ms = 1,
                      .device = "sw1",
                      .kind = "device_down",
                      .severity = KVL_SEV_CRITICAL,
                      .text = "no answer"};
    m.u.batch = (kvl_batch_t){.seq = seq, .lane = lane};
    if (lane == KVL_LANE_EVENTS) {
        m.u.batch.events = &ev;
        m.u.batch.n_events = 1;
    } else {
        m.u.batch.defs = &sink_def;
        m.u.batch.n_defs = 1;
        m.u.batch.groups = &g;
        m.u.batch.n_groups = 1;
    }
    kvl_buf_t b = {0};
    assert_int_equal(kvl_wire_encode(&m, &b), 0);
    assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
    kvl_buf_free(&b);
}

static bool journaled_and_synced(coll_t *c, void *arg)
{
    kvl_ingest_stats_t s;
    kvl_ingest_stats(c->in, &s);
    return s.batches_journaled >= *(uint64_t *)arg && s.journal_backlog_bytes == 0 &&
           s.journal_commits > 0;
}

static bool replay_done(coll_t *c, void *arg)
{
    (void)arg;
    kvl_ingest_stats_t s;
    kvl_ingest_stats(c->in, &s);
    return s.replayed_batches == s.replay_queued;
}

static bool batches_seen(coll_t *c, void *arg)
{
    (void)c;
    counter_t *k = arg;
    return k->batches >= 3;
}

/* Two sinks, in order: each gets every batch once and in each lane's order, and every
 * event once; the events come in registration order. */
static void test_every_sink_every_batch(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-sink-XXXXXX";
    assert_non_null(mkdtemp(dir));
    counter_t a = {0}, b = {0};
    char order[64] = "";
    a.shared = b.shared = order;
    a.tag = 'a';
    b.tag = 'b';
    coll_t c;
    coll_start(&c, dir, &a, &b);
    int fd = agent_connect(kvl_ingest_port(c.in), "agent-s");
    agent_send(fd, KVL_LANE_BULK, 10);
    agent_send(fd, KVL_LANE_EVENTS, 11);
    agent_send(fd, KVL_LANE_BULK, 12);
    assert_true(run_until(&c, batches_seen, &b));
    assert_int_equal(a.batches, 3);
    assert_int_equal(b.batches, 3);
    assert_false(a.out_of_order || b.out_of_order);
    assert_int_equal(a.events, 1);
    assert_int_equal(b.events, 1);
    assert_string_equal(order, "ab");
    close(fd);
    coll_stop(&c);
    /* everything applied: nothing to replay */
    memset(&a, 0, sizeof(a));
    coll_start(&c, dir, &a, NULL);
    kvl_ingest_stats_t s;
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.replay_queued, 0);
    assert_int_equal(a.batches + a.events, 0);
    coll_stop(&c);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The crash: a child collector whose sink holds every batch (none is applied) gets a bulk
 * batch and then an events-only one, hands the event over on arrival, has everything on
 * disk, and dies. The next collector replays both batches, in order, and must not hand
 * the event over again. */
static void test_events_once_across_a_crash(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-sink-XXXXXX";
    assert_non_null(mkdtemp(dir));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        counter_t held = {.hold = true};
        coll_t c;
        coll_start(&c, dir, &held, NULL);
        int fd = agent_connect(kvl_ingest_port(c.in), "agent-e");
        agent_send(fd, KVL_LANE_BULK, 100);
        agent_send(fd, KVL_LANE_EVENTS, 101);
        uint64_t two = 2;
        bool ok = run_until(&c, journaled_and_synced, &two);
        /* the commit that has the batches may be older than the event's record: one more */
        uv_sleep(50);
        for (int i = 0; i < 50; i++) {
            uv_run(&c.loop, UV_RUN_NOWAIT);
            uv_sleep(2);
        }
        ok = ok && journaled_and_synced(&c, &two);
        _exit(ok ? 10 + held.events : 1); /* killed, in effect: nothing closes */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 10 + 1); /* the event, once, on arrival */

    counter_t after = {0};
    coll_t c;
    coll_start(&c, dir, &after, NULL);
    assert_true(run_until(&c, replay_done, NULL));
    kvl_ingest_stats_t s;
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.replay_queued, 2);
    assert_int_equal(after.batches, 2); /* both, in order, as replays */
    assert_int_equal(after.replayed_batches, 2);
    assert_false(after.out_of_order);
    assert_int_equal(after.events, 0); /* handed over before the crash: not again */
    coll_stop(&c);

    /* and applied now: a third start has nothing to hand over */
    memset(&after, 0, sizeof(after));
    coll_start(&c, dir, &after, NULL);
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.replay_queued, 0);
    assert_int_equal(after.batches + after.events, 0);
    coll_stop(&c);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------- a sink that asks again */

/* Asks for agent fail_agent's batches again (result.retry) fail_left times; logs every
 * batch it is handed as "<agent's last letter><seq>" ("+" when a retry, "r" when
 * replayed). */
typedef struct flaky {
    const char *fail_agent;
    int fail_left;
    char log[8192];
} flaky_t;

static int flaky_batch(void *ctx, const kvl_sink_batch_t *b, kvl_sink_done_cb done, void *token)
{
    flaky_t *f = ctx;
    size_t n = strlen(f->log);
    snprintf(f->log + n, sizeof(f->log) - n, "%c%" PRIu64 "%s%s ", b->agent[strlen(b->agent) - 1],
             b->batch->seq, b->retry ? "+" : "", b->replayed ? "r" : "");
    kvl_sink_result_t r = {0};
    if (f->fail_agent != NULL && strcmp(b->agent, f->fail_agent) == 0 && f->fail_left > 0) {
        f->fail_left--;
        r.retry = 1;
        snprintf(r.why, sizeof(r.why), "/data/lab/sw1.rrd: Read-only file system");
    } else {
        r.rows = 1;
        r.values = 1;
    }
    done(token, &r);
    return 0;
}

static const kvl_sink_t flaky_sink = {.name = "flaky sink", .on_batch = flaky_batch};

static bool logged(coll_t *c, void *arg)
{
    (void)c;
    const char *const *want = arg; /* {log, what} */
    return strstr(want[0], want[1]) != NULL;
}

static bool stats_paused(coll_t *c, void *arg)
{
    (void)arg;
    kvl_ingest_stats_t s;
    kvl_ingest_stats(c->in, &s);
    return s.apply_paused_agents == 1;
}

/* Runs the loop for about ms milliseconds. */
static void run_for(coll_t *c, int ms)
{
    for (int i = 0; i < ms; i++) {
        uv_run(&c->loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
}

/* Position of what in log, or -1. */
static long at(const char *log, const char *what)
{
    const char *p = strstr(log, what);
    return p != NULL ? (long)(p - log) : -1;
}

/* Agent a's first batch is asked for again twice by one sink: it comes back to that sink
 * alone, after a growing delay; a's later batches wait behind it; agent b goes on. */
static void test_retry_in_order(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-sink-XXXXXX";
    assert_non_null(mkdtemp(dir));
    flaky_t flaky = {.fail_agent = "agent-a", .fail_left = 2};
    flaky_t steady = {0};
    coll_t c;
    coll_start_with(&c, dir, &flaky_sink, &flaky, &flaky_sink, &steady);
    int fa = agent_connect(kvl_ingest_port(c.in), "agent-a");
    int fb = agent_connect(kvl_ingest_port(c.in), "agent-b");
    agent_send(fa, KVL_LANE_BULK, 10);
    agent_send(fa, KVL_LANE_BULK, 11);
    agent_send(fa, KVL_LANE_BULK, 12);
    assert_true(run_until(&c, stats_paused, NULL));
    agent_send(fb, KVL_LANE_BULK, 20);
    agent_send(fb, KVL_LANE_BULK, 21);
    const char *b_done[] = {flaky.log, "b21 "};
    assert_true(run_until(&c, logged, b_done));
    /* b is through while a still waits: a's later batches have not been handed over */
    assert_int_equal(at(flaky.log, "a11"), -1);
    assert_int_equal(at(steady.log, "a11"), -1);
    kvl_ingest_stats_t s;
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.apply_paused_agents, 1);
    const char *a_done[] = {flaky.log, "a12 "};
    for (int i = 0; i < 4 && !logged(&c, a_done); i++) {
        run_until(&c, logged, a_done); /* 1 s, then 2 s of retry delay: within 20 s */
    }
    assert_true(logged(&c, a_done));
    run_for(&c, 50);
    /* the flaky sink: a10 three times (the last two as retries), then a11, a12, in order;
     * b's two batches before a10's last try */
    long a10 = at(flaky.log, "a10 "), r1 = at(flaky.log, "a10+ "), a11 = at(flaky.log, "a11 ");
    long r2 = r1 >= 0 ? at(flaky.log + r1 + 1, "a10+ ") : -1;
    assert_true(a10 >= 0 && r1 > a10 && r2 >= 0 && a11 > r1 + 1 + r2);
    assert_true(at(flaky.log, "a12 ") > a11);
    assert_true(at(flaky.log, "b21 ") < r1 + 1 + r2);
    assert_true(at(flaky.log, "b20 ") < at(flaky.log, "b21 "));
    /* the steady sink: every batch once, never as a retry */
    assert_int_equal(at(steady.log, "+"), -1);
    assert_int_equal(at(steady.log, "a10 "), at(steady.log, "a1") /* the first a */);
    assert_true(at(steady.log + at(steady.log, "a10 ") + 1, "a10 ") == -1);
    assert_true(at(steady.log, "a10 ") < at(steady.log, "a11 ") &&
                at(steady.log, "a11 ") < at(steady.log, "a12 "));
    assert_true(at(steady.log, "b20 ") >= 0 && at(steady.log, "b21 ") >= 0);
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.apply_pauses, 1);
    assert_int_equal(s.apply_retries, 2);
    assert_int_equal(s.updates_retried, 2);
    assert_int_equal(s.apply_paused_agents, 0);
    assert_int_equal(s.batches_written, 5);
    close(fa);
    close(fb);
    coll_stop(&c);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A collector stopped while an agent's batch waits for its retry stops at once and leaves
 * the batch in the journal; the next start replays it and retries it the same way, and a
 * third start has nothing left. */
static void test_retry_across_restart(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-sink-XXXXXX";
    assert_non_null(mkdtemp(dir));
    flaky_t flaky = {.fail_agent = "agent-a", .fail_left = 1000000};
    coll_t c;
    coll_start_with(&c, dir, &flaky_sink, &flaky, NULL, NULL);
    int fa = agent_connect(kvl_ingest_port(c.in), "agent-a");
    agent_send(fa, KVL_LANE_BULK, 10);
    agent_send(fa, KVL_LANE_BULK, 11);
    assert_true(run_until(&c, stats_paused, NULL));
    uint64_t two = 2;
    assert_true(run_until(&c, journaled_and_synced, &two));
    close(fa);
    uint64_t t0 = uv_hrtime();
    coll_stop(&c); /* does not wait for the retry */
    assert_true(uv_hrtime() - t0 < 5000000000ull);
    assert_int_equal(at(flaky.log, "a11"), -1);

    /* replayed: a10 asked for once more, then a10 and a11 in order */
    flaky_t again = {.fail_agent = "agent-a", .fail_left = 1};
    coll_start_with(&c, dir, &flaky_sink, &again, NULL, NULL);
    const char *done[] = {again.log, "a11r "};
    for (int i = 0; i < 4 && !logged(&c, done); i++) {
        run_until(&c, logged, done);
    }
    assert_string_equal(again.log, "a10r a10+r a11r ");
    kvl_ingest_stats_t s;
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.replay_queued, 2);
    assert_int_equal(s.replayed_batches, 2);
    assert_int_equal(s.apply_pauses, 1);
    coll_stop(&c);

    flaky_t third = {0};
    coll_start_with(&c, dir, &flaky_sink, &third, NULL, NULL);
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.replay_queued, 0);
    run_for(&c, 20);
    assert_string_equal(third.log, "");
    coll_stop(&c);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A sink whose writes are durable only at a later point (sink.h, durable_after), as the
 * store through rrdcached: it takes each batch at once, and says batch 10 waits for point 1,
 * the later ones for point 2. */
typedef struct later {
    int batches;
    uint64_t point;
    char log[64];
} later_t;

static int later_batch(void *ctx, const kvl_sink_batch_t *b, kvl_sink_done_cb done, void *token)
{
    later_t *l = ctx;
    l->batches++;
    l->point = b->batch->seq == 10 ? 1 : 2;
    size_t n = strlen(l->log);
    snprintf(l->log + n, sizeof(l->log) - n, "%" PRIu64 "%s ", b->batch->seq,
             b->replayed ? "r" : "");
    kvl_sink_result_t r = {0};
    done(token, &r);
    return 0;
}

static uint64_t later_point(void *ctx)
{
    return ((later_t *)ctx)->point;
}

static const kvl_sink_t later_sink = {
    .name = "durable later", .on_batch = later_batch, .durable_after = later_point};

static bool later_seen(coll_t *c, void *arg)
{
    (void)c;
    return ((later_t *)arg)->batches >= 3;
}

/* The agent's batches go on while the first is not durable; a collector stopped then
 * replays exactly the batches whose durability point was not reached (the journal records
 * them applied only then), and none once it was. */
static void test_durable_later(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-sink-XXXXXX";
    assert_non_null(mkdtemp(dir));
    later_t l = {0};
    coll_t c;
    coll_start_with(&c, dir, &later_sink, &l, NULL, NULL);
    int fd = agent_connect(kvl_ingest_port(c.in), "agent-d");
    agent_send(fd, KVL_LANE_BULK, 10);
    agent_send(fd, KVL_LANE_BULK, 11);
    agent_send(fd, KVL_LANE_BULK, 12);
    assert_true(run_until(&c, later_seen, &l));
    assert_string_equal(l.log, "10 11 12 ");
    kvl_ingest_durable(c.in, 1); /* batch 10 is durable, 11 and 12 are not */
    close(fd);
    coll_stop(&c);

    /* replayed: 11 and 12, not 10; a sink without durable_after applies them for good */
    later_t l2 = {0};
    coll_start_with(&c, dir, &later_sink, &l2, NULL, NULL);
    kvl_ingest_stats_t s;
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.replay_queued, 2);
    assert_true(run_until(&c, replay_done, NULL));
    assert_string_equal(l2.log, "11r 12r ");
    kvl_ingest_durable(c.in, 2);
    coll_stop(&c);

    counter_t a = {0};
    coll_start(&c, dir, &a, NULL);
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.replay_queued, 0);
    assert_int_equal(a.batches, 0);
    coll_stop(&c);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static bool journal_paused(coll_t *c, void *arg)
{
    (void)arg;
    kvl_ingest_stats_t s;
    kvl_ingest_stats(c->in, &s);
    return s.journal_pauses > 0;
}

static bool all_written(coll_t *c, void *arg)
{
    kvl_ingest_stats_t s;
    kvl_ingest_stats(c->in, &s);
    return s.batches_written >= *(uint64_t *)arg && s.apply_paused_agents == 0;
}

/* Applying paused, the journal keeps what waits: past its bound nobody is read (as when the
 * archives lag); once the sink takes the batch again, everything is applied and read. */
static void test_retry_journal_bound(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-sink-XXXXXX";
    assert_non_null(mkdtemp(dir));
    flaky_t flaky = {.fail_agent = "agent-a", .fail_left = 1000000};
    coll_t c;
    g_segment_bytes = 4096; /* the journal's least: a bound of 16 KiB */
    coll_start_with(&c, dir, &flaky_sink, &flaky, NULL, NULL);
    g_segment_bytes = 0;
    enum { N = 600 };
    int fa = agent_connect(kvl_ingest_port(c.in), "agent-a");
    for (uint64_t seq = 1; seq <= N / 2; seq++) {
        agent_send(fa, KVL_LANE_BULK, seq);
    }
    assert_true(run_until(&c, journal_paused, NULL));
    for (uint64_t seq = N / 2 + 1; seq <= N; seq++) {
        agent_send(fa, KVL_LANE_BULK, seq);
    }
    run_for(&c, 300);
    kvl_ingest_stats_t s;
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.apply_paused_agents, 1);
    assert_true(s.batches_journaled < N); /* held back */
    assert_true(s.journal_bytes > 4 * 4096);
    assert_int_equal(s.batches_written, 0);
    uint64_t journaled = s.batches_journaled;
    run_for(&c, 300);
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.batches_journaled, journaled); /* still held back */

    flaky.fail_left = 0; /* the disk is back */
    uint64_t n = N;
    for (int i = 0; i < 8 && !all_written(&c, &n); i++) {
        run_until(&c, all_written, &n); /* the next retry comes within 30 s */
    }
    kvl_ingest_stats(c.in, &s);
    assert_int_equal(s.batches_journaled, N);
    assert_int_equal(s.batches_written, N);
    assert_int_equal(s.apply_pauses, 1);
    /* in order, once: "a1 a1+ ... a1+ a2 a3 ... a200" */
    char want[16];
    const char *p = strstr(flaky.log, "a2 ");
    assert_non_null(p);
    for (uint64_t seq = 2; seq <= N && p != NULL; seq++) {
        snprintf(want, sizeof(want), "a%" PRIu64 " ", seq);
        assert_true(strncmp(p, want, strlen(want)) == 0);
        p += strlen(want);
    }
    close(fa);
    coll_stop(&c);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_every_sink_every_batch),
        cmocka_unit_test(test_events_once_across_a_crash),
        cmocka_unit_test(test_retry_in_order),
        cmocka_unit_test(test_retry_across_restart),
        cmocka_unit_test(test_retry_journal_bound),
        cmocka_unit_test(test_durable_later),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
