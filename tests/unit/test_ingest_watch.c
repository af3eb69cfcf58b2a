/*
 * test_ingest_watch.c — agents lost and back through the ingest (collector/ingest/watch.c)
 * with a fake agent over 127.0.0.1 and a sink that records every event: heartbeats on time
 * keep an agent; when they stop, one synthetic agent_lost (critical, its fields) reaches the
 * sinks within the window and the connection is closed; the next Hello gives one agent_back;
 * the events that follow are late when stamped inside the lost period or older than
 * late_after, and not otherwise; a collector restarted while the agent is lost says
 * agent_lost no more and agent_back once; an agent without heartbeats is judged by the idle
 * timeout; a damaged state file is skipped, not fatal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "capture_stderr.h"
#include "collector_config.h"
#include "ingest.h"
#include "kvl.h"
#include "sink.h"
#include "timeutil.h"
#include "wire.h"

#define MAX_EVENTS 64

typedef struct seen {
    char kind[32];
    char device[64];
    bool late, synthetic;
    kvl_severity_t severity;
    char fields[256]; /* "k=v;k=v;" */
    int64_t time_ms;
} seen_t;

typedef struct rec {
    seen_t ev[MAX_EVENTS];
    int n;
    bool batch_late[MAX_EVENTS]; /* per batch handed over, in order */
    int batches;
} rec_t;

static void rec_event(void *ctx, const kvl_sink_event_t *e)
{
    rec_t *r = ctx;
    if (r->n >= MAX_EVENTS) {
        return;
    }
    seen_t *s = &r->ev[r->n++];
    snprintf(s->kind, sizeof(s->kind), "%s", e->event->kind);
    snprintf(s->device, sizeof(s->device), "%s", e->event->device);
    s->late = e->late;
    s->synthetic = e->synthetic;
    s->severity = e->event->severity;
    s->time_ms = e->event->time_ms;
    for (size_t i = 0; i < e->event->n_fields; i++) {
        size_t l = strlen(s->fields);
        snprintf(s->fields + l, sizeof(s->fields) - l, "%s=%s;", e->event->fields[i].key,
                 e->event->fields[i].value);
    }
}

static int rec_batch(void *ctx, const kvl_sink_batch_t *b, kvl_sink_done_cb done, void *token)
{
    rec_t *r = ctx;
    if (r->batches < MAX_EVENTS) {
        r->batch_late[r->batches] = b->late;
    }
    r->batches++;
    done(token, NULL);
    return 0;
}

static const kvl_sink_t rec_sink = {
    .name = "recording sink", .on_batch = rec_batch, .on_event = rec_event};

static int count_kind(const rec_t *r, const char *kind)
{
    int n = 0;
    for (int i = 0; i < r->n; i++) {
        n += strcmp(r->ev[i].kind, kind) == 0;
    }
    return n;
}

static const seen_t *find_kind(const rec_t *r, const char *kind, int nth)
{
    for (int i = 0; i < r->n; i++) {
        if (strcmp(r->ev[i].kind, kind) == 0 && nth-- == 0) {
            return &r->ev[i];
        }
    }
    return NULL;
}

/* ------------------------------------------------------------- collector and agent ----- */

typedef struct coll {
    uv_loop_t loop;
    kvl_collector_cfg_t *cfg;
    kvl_sinks_t sinks;
    kvl_ingest_t *in;
} coll_t;

static const char *g_extra = ""; /* more lines for the collector's configuration */

static void coll_start(coll_t *c, const char *dir, rec_t *r)
{
    char err[512], text[512];
    memset(c, 0, sizeof(*c));
    assert_int_equal(uv_loop_init(&c->loop), 0);
    snprintf(text, sizeof(text),
             "listen: 127.0.0.1:1\ndata_dir: %s\narchives: [step:1h]\nlog_level: error\n"
             "insecure: true\njournal_commit_delay: 0s\nlost_after: 2\n%s",
             dir, g_extra);
    c->cfg = kvl_collector_cfg_parse("collector.yaml", text, err, sizeof(err));
    assert_non_null(c->cfg);
    c->cfg->listen_port = 0;
    assert_int_equal(kvl_sinks_register(&c->sinks, &rec_sink, r), 0);
    assert_int_equal(kvl_ingest_new(&c->loop, c->cfg, &c->sinks, &c->in, err, sizeof(err)), 0);
}

static void coll_stop(coll_t *c)
{
    kvl_ingest_free(c->in);
    uv_run(&c->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&c->loop), 0);
    kvl_collector_cfg_free(c->cfg);
}

static void send_msg(int fd, const kvl_msg_t *m)
{
    kvl_buf_t b = {0};
    assert_int_equal(kvl_wire_encode(m, &b), 0);
    assert_int_equal(write(fd, b.data, b.len), (ssize_t)b.len);
    kvl_buf_free(&b);
}

/* A blocking agent saying Hello with its heartbeat interval; reads are non-blocking. */
static int agent_connect(int port, const char *id, uint32_t heartbeat_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    kvl_msg_t m = {.type = KVL_MSG_HELLO};
    m.u.hello = (kvl_hello_t){.protocol = KVL_PROTOCOL_VERSION,
                              .agent_id = id,
                              .version = "test",
                              .site = "lab",
                              .heartbeat_ms = heartbeat_ms};
    send_msg(fd, &m);
    return fd;
}

static void heartbeat(int fd)
{
    kvl_msg_t m = {.type = KVL_MSG_HEARTBEAT};
    m.u.heartbeat.time_ms = kvl_now_ms();
    send_msg(fd, &m);
}

/* Runs the loop for ms, a heartbeat every hb_ms on fd when fd >= 0. */
static void run_for(coll_t *c, int ms, int fd, int hb_ms)
{
    uint64_t end = kvl_mono_ns() / 1000000u + (uint64_t)ms, next_hb = 0;
    while (kvl_mono_ns() / 1000000u < end) {
        uint64_t now = kvl_mono_ns() / 1000000u;
        if (fd >= 0 && now >= next_hb) {
            heartbeat(fd);
            next_hb = now + (uint64_t)hb_ms;
        }
        uv_run(&c->loop, UV_RUN_NOWAIT);
        uv_sleep(2);
    }
}

/* Runs the loop until the sink has seen n events of kind, or ms passed. */
static bool run_until_kind(coll_t *c, const rec_t *r, const char *kind, int n, int ms)
{
    uint64_t end = kvl_mono_ns() / 1000000u + (uint64_t)ms;
    while (kvl_mono_ns() / 1000000u < end) {
        if (count_kind(r, kind) >= n) {
            return true;
        }
        uv_run(&c->loop, UV_RUN_NOWAIT);
        uv_sleep(2);
    }
    return count_kind(r, kind) >= n;
}

/* Whether the collector closed fd (its Welcome and acks read and dropped), running the loop
 * meanwhile, within ms. */
static bool closed_by_collector(coll_t *c, int fd, int ms)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    uint64_t end = kvl_mono_ns() / 1000000u + (uint64_t)ms;
    uint8_t buf[4096];
    while (kvl_mono_ns() / 1000000u < end) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
            return true;
        }
        uv_run(&c->loop, UV_RUN_NOWAIT);
        uv_sleep(2);
    }
    return false;
}

static void events_batch(int fd, uint64_t seq, const int64_t *times, size_t n)
{
    kvl_event_t ev[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        ev[i] = (kvl_event_t){.time_ms = times[i],
                              .device = "sw1",
                              .kind = "device_down",
                              .severity = KVL_SEV_CRITICAL,
                              .text = "no answer"};
    }
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    m.u.batch = (kvl_batch_t){.seq = seq, .lane = KVL_LANE_EVENTS, .events = ev, .n_events = n};
    send_msg(fd, &m);
}

/* A bulk batch with one sample at time_ms (defining its series). */
static void bulk_batch(int fd, uint64_t seq, int64_t time_ms)
{
    static const kvl_series_def_t def = {.id = 1,
                                         .device = "sw1",
                                         .scope = KVL_SCOPE_DEVICE,
                                         .instance = "",
                                         .metric = "reachable",
                                         .kind = KVL_KIND_GAUGE,
                                         .interval_s = 60};
    uint32_t id = 1;
    uint64_t v = 1;
    kvl_group_t g = {.time_ms = time_ms, .ids = &id, .n_ids = 1, .values = &v, .n_values = 1};
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    m.u.batch = (kvl_batch_t){
        .seq = seq, .lane = KVL_LANE_BULK, .defs = &def, .n_defs = 1, .groups = &g, .n_groups = 1};
    send_msg(fd, &m);
}

static bool run_until_batches(coll_t *c, const rec_t *r, int n, int ms)
{
    uint64_t end = kvl_mono_ns() / 1000000u + (uint64_t)ms;
    while (kvl_mono_ns() / 1000000u < end && r->batches < n) {
        uv_run(&c->loop, UV_RUN_NOWAIT);
        uv_sleep(2);
    }
    return r->batches >= n;
}

static void rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ------------------------------------------------------------- tests ------------------- */

static void test_lost_back_late_restart(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-watch-XXXXXX";
    assert_non_null(mkdtemp(dir));
    rec_t r = {0};
    coll_t c;
    coll_start(&c, dir, &r);
    int port = kvl_ingest_port(c.in);
    /* 500 ms heartbeats, lost_after 2: a window of 1 s */
    int fd = agent_connect(port, "agent-w", 500);
    run_for(&c, 3000, fd, 200);
    assert_int_equal(r.n, 0);
    /* heartbeats stop, the connection stays open: lost once, within the window plus a tick */
    int64_t last_hb = kvl_now_ms();
    heartbeat(fd);
    uint64_t t0 = kvl_mono_ns() / 1000000u;
    assert_true(run_until_kind(&c, &r, "agent_lost", 1, 5000));
    uint64_t took = kvl_mono_ns() / 1000000u - t0;
    assert_true(took >= 900 && took <= 3000);
    const seen_t *l = find_kind(&r, "agent_lost", 0);
    assert_true(l->synthetic);
    assert_false(l->late);
    assert_int_equal(l->severity, KVL_SEV_CRITICAL);
    assert_string_equal(l->device, "agent-w");
    assert_non_null(strstr(l->fields, "last_seen="));
    assert_non_null(strstr(l->fields, "reason=no heartbeat for "));
    assert_true(closed_by_collector(&c, fd, 3000));
    close(fd);
    run_for(&c, 1500, -1, 0);
    assert_int_equal(count_kind(&r, "agent_lost"), 1);

    /* back: agent_back once, then its events: inside the lost period late, now not, three
     * minutes old late (late_after 2m) */
    fd = agent_connect(port, "agent-w", 500);
    assert_true(run_until_kind(&c, &r, "agent_back", 1, 3000));
    const seen_t *b = find_kind(&r, "agent_back", 0);
    assert_true(b->synthetic);
    assert_int_equal(b->severity, KVL_SEV_INFO);
    assert_non_null(strstr(b->fields, "lost_for_s="));
    int64_t now = kvl_now_ms();
    const int64_t times[] = {last_hb + 300, now, now - 180000};
    events_batch(fd, 10, times, 3);
    assert_true(run_until_kind(&c, &r, "device_down", 3, 3000));
    assert_true(find_kind(&r, "device_down", 0)->late);
    assert_false(find_kind(&r, "device_down", 1)->late);
    assert_true(find_kind(&r, "device_down", 2)->late);
    assert_false(find_kind(&r, "device_down", 1)->synthetic);
    /* batches likewise, by their newest sample: the events batch (newest event now) is not
     * late; a sample inside the lost period is, one taken now is not */
    assert_true(run_until_batches(&c, &r, 1, 3000));
    assert_false(r.batch_late[0]);
    bulk_batch(fd, 20, last_hb + 300);
    bulk_batch(fd, 21, kvl_now_ms());
    assert_true(run_until_batches(&c, &r, 3, 3000));
    assert_true(r.batch_late[1]);
    assert_false(r.batch_late[2]);
    run_for(&c, 2000, fd, 200);
    assert_int_equal(count_kind(&r, "agent_back"), 1);
    assert_int_equal(count_kind(&r, "agent_lost"), 1);
    kvl_ingest_stats_t st;
    kvl_ingest_stats(c.in, &st);
    assert_int_equal(st.agents_lost, 1);
    assert_int_equal(st.agents_back, 1);
    assert_int_equal(st.events_late, 2);

    /* lost again (its connection closed by the agent this time), then the collector
     * restarts */
    close(fd);
    assert_true(run_until_kind(&c, &r, "agent_lost", 2, 5000));
    assert_non_null(strstr(find_kind(&r, "agent_lost", 1)->fields, "reason=connection closed: "));
    coll_stop(&c);
    rec_t r2 = {0};
    coll_start(&c, dir, &r2);
    port = kvl_ingest_port(c.in);
    run_for(&c, 2500, -1, 0);
    assert_int_equal(count_kind(&r2, "agent_lost"), 0);
    fd = agent_connect(port, "agent-w", 500);
    assert_true(run_until_kind(&c, &r2, "agent_back", 1, 3000));
    run_for(&c, 1500, fd, 200);
    assert_int_equal(count_kind(&r2, "agent_back"), 1);
    assert_int_equal(count_kind(&r2, "agent_lost"), 0);
    close(fd);
    coll_stop(&c);
    rm_rf(dir);
}

/* An agent that says no heartbeat interval (older) is judged by idle_timeout: silent for
 * 3 s it is not lost with the default (5 min); with 1 s, the idle timeout's close loses it
 * at once. */
static void test_no_heartbeats_idle_timeout(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-watch-XXXXXX";
    assert_non_null(mkdtemp(dir));
    rec_t r = {0};
    coll_t c;
    coll_start(&c, dir, &r);
    int fd = agent_connect(kvl_ingest_port(c.in), "old-agent", 0);
    run_for(&c, 3000, -1, 0);
    assert_int_equal(r.n, 0);
    close(fd);
    coll_stop(&c);
    g_extra = "idle_timeout: 1s\n";
    memset(&r, 0, sizeof(r));
    coll_start(&c, dir, &r);
    g_extra = "";
    fd = agent_connect(kvl_ingest_port(c.in), "old-agent2", 0);
    uint64_t t0 = kvl_mono_ns() / 1000000u;
    assert_true(closed_by_collector(&c, fd, 4000));
    assert_true(run_until_kind(&c, &r, "agent_lost", 1, 2000));
    uint64_t took = kvl_mono_ns() / 1000000u - t0;
    assert_true(took >= 900 && took <= 4000);
    assert_non_null(
        strstr(find_kind(&r, "agent_lost", 0)->fields, "reason=connection closed: no frame for"));
    close(fd);
    coll_stop(&c);
    rm_rf(dir);
}

static void put_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A damaged state file: its bad lines skipped, a good one taken (that agent is lost: its
 * Hello says agent_back); one of another kind or of a newer format ignored. */
static void test_damaged_state_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-watch-XXXXXX", path[96];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/_agents.state", dir);
    put_text(path, "kaaval agents 1\nU 1 0 0 99:x 0:\n\x01\x02garbage\nL 500 1000 2000 5:ag-ok "
                   "3:lab\nL 500 1000 2000 5:ag-ok");
    rec_t r = {0};
    coll_t c;
    coll_start(&c, dir, &r);
    int fd = agent_connect(kvl_ingest_port(c.in), "ag-ok", 500);
    assert_true(run_until_kind(&c, &r, "agent_back", 1, 3000));
    close(fd);
    coll_stop(&c);
    /* not a state file at all: ignored */
    put_text(path, "something else\nL 500 1000 2000 5:ag-ok 3:lab\n");
    memset(&r, 0, sizeof(r));
    coll_start(&c, dir, &r);
    fd = agent_connect(kvl_ingest_port(c.in), "ag-ok", 500);
    run_for(&c, 500, fd, 200);
    assert_int_equal(count_kind(&r, "agent_back"), 0);
    close(fd);
    coll_stop(&c);
    /* a newer format (the highest number there is): not read, said so, written again in this
     * collector's format */
    put_text(path, "kaaval agents 4294967295\nL 500 1000 2000 5:ag-ok 3:lab\n");
    memset(&r, 0, sizeof(r));
    char logp[128], logged[4000];
    snprintf(logp, sizeof(logp), "%s/stderr", dir);
    capture_t cap;
    assert_int_equal(capture_begin(&cap, logp), 0);
    coll_start(&c, dir, &r);
    capture_end(&cap, logged, sizeof(logged));
    assert_non_null(strstr(logged, "written by a newer kaaval (format 4294967295; this "
                                   "kaaval-collector reads up to 1): ignored"));
    fd = agent_connect(kvl_ingest_port(c.in), "ag-ok", 500);
    run_for(&c, 500, fd, 200);
    assert_int_equal(count_kind(&r, "agent_back"), 0);
    close(fd);
    coll_stop(&c);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char first[64] = "";
    assert_non_null(fgets(first, sizeof(first), f));
    fclose(f);
    assert_string_equal(first, "kaaval agents 1\n");
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lost_back_late_restart),
        cmocka_unit_test(test_no_heartbeats_idle_timeout),
        cmocka_unit_test(test_damaged_state_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
