/*
 * test_prober_reach.c — the prober's target_down / target_up events (agent/probe/prober.h,
 * reach.h) with real probes: TCP connects to a listener of this test on 127.0.0.1, which is
 * closed (connections refused: the target stops answering) and opened again on the same
 * port. Checks: no event while it answers; target_down within a probe gap and the
 * confirmation of the cut, with its fields; the interval's `sent` figure without the
 * confirming probes; target_up at the next probe after the repair with down_s; the down
 * state kept in a state file across a restart of the prober (no second target_down, the
 * down time continued). A link-time fake of the batcher records what the prober reports.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "batcher.h"
#include "kvl.h"
#include "log.h"
#include "probe_config.h"
#include "prober.h"

/* --- the fake batcher ------------------------------------------------------------------------ */

static uv_loop_t *g_loop;

typedef struct rec_event {
    uint64_t at; /* loop time */
    char kind[32];
    char device[32];
    char reason[64];
    char target[32];
    long down_s;
} rec_event_t;

static rec_event_t events[16];
static size_t n_events;
static double sent_max; /* the largest `sent` of an interval */
static size_t n_reports;
static bool first_value;

uint32_t kvl_batcher_instance(kvl_batcher_t *b, const kvl_instance_key_t *k)
{
    KVL_UNUSED(b);
    KVL_UNUSED(k);
    return 1;
}

void kvl_batcher_group_begin(kvl_batcher_t *b, int64_t time_ms)
{
    KVL_UNUSED(b);
    KVL_UNUSED(time_ms);
    first_value = true;
}

static void value(uint32_t id, double v)
{
    if (id == 1 && first_value && v > sent_max) {
        sent_max = v;
    }
    first_value = false;
}

void kvl_batcher_add(kvl_batcher_t *b, uint32_t id, uint64_t v)
{
    KVL_UNUSED(b);
    value(id, (double)v);
}

void kvl_batcher_add_real(kvl_batcher_t *b, uint32_t id, double v)
{
    KVL_UNUSED(b);
    value(id, v);
}

void kvl_batcher_add_unknown(kvl_batcher_t *b, uint32_t id)
{
    KVL_UNUSED(b);
    value(id, -1);
}

void kvl_batcher_group_end(kvl_batcher_t *b)
{
    KVL_UNUSED(b);
    n_reports++;
}

void kvl_batcher_event(kvl_batcher_t *b, const kvl_event_t *ev)
{
    KVL_UNUSED(b);
    assert_true(n_events < KVL_ARRAY_SIZE(events));
    rec_event_t *e = &events[n_events++];
    memset(e, 0, sizeof(*e));
    e->at = uv_now(g_loop);
    e->down_s = -1;
    snprintf(e->kind, sizeof(e->kind), "%s", ev->kind);
    snprintf(e->device, sizeof(e->device), "%s", ev->device);
    for (size_t i = 0; i < ev->n_fields; i++) {
        if (strcmp(ev->fields[i].key, "reason") == 0) {
            snprintf(e->reason, sizeof(e->reason), "%s", ev->fields[i].value);
        } else if (strcmp(ev->fields[i].key, "target") == 0) {
            snprintf(e->target, sizeof(e->target), "%s", ev->fields[i].value);
        } else if (strcmp(ev->fields[i].key, "down_s") == 0) {
            e->down_s = strtol(ev->fields[i].value, NULL, 10);
        }
    }
}

void kvl_batcher_flush(kvl_batcher_t *b)
{
    KVL_UNUSED(b);
}

/* --- the target: a listener that comes and goes ---------------------------------------------- */

static uv_tcp_t server;
static bool listening;
static int port;

static void on_accepted_closed(uv_handle_t *h)
{
    free(h);
}

static void on_connection(uv_stream_t *s, int status)
{
    if (status != 0) {
        return;
    }
    uv_tcp_t *c = malloc(sizeof(*c));
    assert_non_null(c);
    uv_tcp_init(s->loop, c);
    if (uv_accept(s, (uv_stream_t *)c) != 0) {
        /* closed below */
    }
    uv_close((uv_handle_t *)c, on_accepted_closed);
}

static void listen_on(uv_loop_t *loop)
{
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", port, &a);
    assert_int_equal(uv_tcp_init(loop, &server), 0);
    assert_int_equal(uv_tcp_bind(&server, (const struct sockaddr *)&a, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&server, 64, on_connection), 0);
    if (port == 0) {
        int len = sizeof(a);
        assert_int_equal(uv_tcp_getsockname(&server, (struct sockaddr *)&a, &len), 0);
        port = ntohs(a.sin_port);
    }
    listening = true;
}

static void stop_listening(void)
{
    uv_close((uv_handle_t *)&server, NULL);
    listening = false;
}

/* --- helpers --------------------------------------------------------------------------------- */

static kvl_probe_target_t target;
static kvl_probe_cfg_t cfg;
static char state_dir[64];
static char state_path[128];

static void setup_cfg(void)
{
    kvl_probe_cfg_init(&cfg);
    cfg.interval_ms = 2000;
    cfg.count = 4; /* one probe every 500 ms */
    cfg.confirm_count = 3;
    cfg.confirm_spacing_ms = 100;
    cfg.reflector_enabled = false;
    memset(&target, 0, sizeof(target));
    target.name = (char *)"svc";
    target.address = (char *)"127.0.0.1";
    target.type = KVL_PROBE_TCP;
    target.port = port;
    cfg.targets = &target;
    cfg.n_targets = 1;
}

static void on_wake(uv_timer_t *t)
{
    KVL_UNUSED(t);
}

/* Runs the loop for ms, or until n events came (n > 0). */
static void run_for(uv_loop_t *loop, uint64_t ms, size_t n)
{
    uv_timer_t wake;
    uv_timer_init(loop, &wake);
    uv_timer_start(&wake, on_wake, 10, 10);
    uint64_t end = uv_now(loop) + ms;
    while (uv_now(loop) < end && (n == 0 || n_events < n)) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static int dummy; /* the fake batcher keeps its state in statics */

static kvl_prober_t *start(uv_loop_t *loop, bool keep)
{
    kvl_prober_t *p = NULL;
    char err[256];
    assert_int_equal(
        kvl_prober_new(loop, &cfg, "agent-1", (kvl_batcher_t *)&dummy, &p, err, sizeof(err)), 0);
    if (keep) {
        assert_int_equal(kvl_prober_keep_state(p, state_path, err, sizeof(err)), 0);
    }
    return p;
}

static int setup(void **state)
{
    KVL_UNUSED(state);
    snprintf(state_dir, sizeof(state_dir), "/tmp/kvl_prober_reach_XXXXXX");
    assert_non_null(mkdtemp(state_dir));
    snprintf(state_path, sizeof(state_path), "%s/targets.state", state_dir);
    n_events = 0;
    n_reports = 0;
    sent_max = 0;
    port = 0;
    return 0;
}

static int teardown(void **state)
{
    KVL_UNUSED(state);
    unlink(state_path);
    assert_int_equal(rmdir(state_dir), 0);
    return 0;
}

/* --- tests ----------------------------------------------------------------------------------- */

static void test_cut_and_repair(void **state)
{
    KVL_UNUSED(state);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    g_loop = &loop;
    listen_on(&loop);
    setup_cfg();
    kvl_prober_t *p = start(&loop, true);
    run_for(&loop, 2500, 0);
    assert_int_equal(n_events, 0); /* answering: nothing to say */

    uint64_t cut = uv_now(&loop);
    stop_listening();
    run_for(&loop, 5000, 1);
    assert_int_equal(n_events, 1);
    assert_string_equal(events[0].kind, "target_down");
    assert_string_equal(events[0].device, "agent-1");
    assert_string_equal(events[0].target, "svc");
    assert_string_equal(events[0].reason, "no reply to 4 probes");
    /* The next probe (500 ms apart, on a 20 ms grid), its refusal and three refused
     * confirming probes 100 ms apart: about 700 ms at worst; generous for a busy machine. */
    uint64_t took = events[0].at - cut;
    printf("cut -> target_down: %llu ms\n", (unsigned long long)took);
    if (took > 2000) {
        fail_msg("target_down %llu ms after the cut", (unsigned long long)took);
    }
    /* Still down over two more intervals: no second event; the intervals count only the
     * scheduled probes (4), not the confirming ones. */
    run_for(&loop, 4500, 2);
    assert_int_equal(n_events, 1);
    assert_true(n_reports >= 2);
    assert_true(sent_max == 4);

    uint64_t repair = uv_now(&loop);
    listen_on(&loop);
    run_for(&loop, 5000, 2);
    assert_int_equal(n_events, 2);
    assert_string_equal(events[1].kind, "target_up");
    took = events[1].at - repair;
    printf("repair -> target_up: %llu ms\n", (unsigned long long)took);
    if (took > 2000) {
        fail_msg("target_up %llu ms after the repair", (unsigned long long)took);
    }
    /* Down from the first refused probe to the answer: over 4.5 s of the run above. */
    assert_true(events[1].down_s >= 4 && events[1].down_s <= 15);
    kvl_prober_free(p);
    stop_listening();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The prober stops while its target is down and starts again: no second target_down, and the
 * target_up after the repair counts the whole time. */
static void test_down_across_restart(void **state)
{
    KVL_UNUSED(state);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    g_loop = &loop;
    listen_on(&loop);
    setup_cfg();
    kvl_prober_t *p = start(&loop, true);
    run_for(&loop, 1500, 0);
    stop_listening();
    run_for(&loop, 5000, 1);
    assert_int_equal(n_events, 1);
    assert_string_equal(events[0].kind, "target_down");
    kvl_prober_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);

    p = start(&loop, true); /* the file says down */
    run_for(&loop, 3000, 2);
    assert_int_equal(n_events, 1);
    listen_on(&loop);
    run_for(&loop, 5000, 2);
    assert_int_equal(n_events, 2);
    assert_string_equal(events[1].kind, "target_up");
    /* Down from before the restart: at least the 3 s after it and the time before it. */
    assert_true(events[1].down_s >= 3);
    kvl_prober_free(p);
    stop_listening();
    uv_run(&loop, UV_RUN_DEFAULT);

    /* Up now, in the file too: a new start says nothing while it answers. */
    n_events = 0;
    listen_on(&loop);
    p = start(&loop, true);
    run_for(&loop, 2000, 1);
    assert_int_equal(n_events, 0);
    kvl_prober_free(p);
    stop_listening();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    kvl_log_level = KVL_LOG_LEVEL_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_cut_and_repair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_down_across_restart, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
