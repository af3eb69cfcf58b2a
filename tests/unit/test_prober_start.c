/*
 * test_prober_start.c — when a started prober (agent/probe/prober.h) reports its first
 * figures: half an interval after the start, from the second half of the interval's probes
 * (the first half not sent, so not lost), then every interval with all of them; so an agent
 * restart does not leave a gap longer than the link archives' heartbeat. --probe-once keeps
 * whole intervals.
 *
 * The targets are TCP connect probes to a port of 127.0.0.1 nobody listens on: each probe is
 * sent and refused at once, without privileges. A link-time fake of the batcher records the
 * loop time and the `sent` figure of each report.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <netinet/in.h>
#include <stdio.h>
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

typedef struct report {
    uint64_t at; /* loop time */
    double sent;
} report_t;

static report_t reports[64];
static size_t n_reports;
static bool in_group, first_value;

uint32_t kvl_batcher_instance(kvl_batcher_t *b, const kvl_instance_key_t *k)
{
    KVL_UNUSED(b);
    assert_string_equal(k->family->metrics[0], "sent");
    return 1;
}

void kvl_batcher_group_begin(kvl_batcher_t *b, int64_t time_ms)
{
    KVL_UNUSED(b);
    KVL_UNUSED(time_ms);
    assert_false(in_group);
    in_group = true;
    first_value = true;
    assert_true(n_reports < KVL_ARRAY_SIZE(reports));
    reports[n_reports].at = uv_now(g_loop);
}

static void value(uint32_t id, double v)
{
    assert_true(in_group);
    if (id == 1 && first_value) { /* the family's first metric: sent */
        reports[n_reports].sent = v;
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
    assert_true(in_group);
    in_group = false;
    n_reports++;
}

/* The closed port's target goes down (reach.h): its events are not this test's subject. */
void kvl_batcher_event(kvl_batcher_t *b, const kvl_event_t *ev)
{
    KVL_UNUSED(b);
    KVL_UNUSED(ev);
}

void kvl_batcher_flush(kvl_batcher_t *b)
{
    KVL_UNUSED(b);
}

/* --- helpers --------------------------------------------------------------------------------- */

/* A TCP port of 127.0.0.1 that nobody listens on (bound, then closed). */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static kvl_probe_target_t target;
static kvl_probe_cfg_t cfg;

static void setup_cfg(int64_t interval_ms, int64_t count)
{
    kvl_probe_cfg_init(&cfg);
    cfg.interval_ms = interval_ms;
    cfg.count = count;
    cfg.reflector_enabled = false;
    memset(&target, 0, sizeof(target));
    target.name = (char *)"closed";
    target.address = (char *)"127.0.0.1";
    target.type = KVL_PROBE_TCP;
    target.port = closed_port();
    cfg.targets = &target;
    cfg.n_targets = 1;
    n_reports = 0;
}

static void on_wake(uv_timer_t *t)
{
    KVL_UNUSED(t);
}

/* Runs the loop until `n` reports came or ms passed. */
static void run_reports(uv_loop_t *loop, size_t n, uint64_t ms)
{
    uv_timer_t wake;
    uv_timer_init(loop, &wake);
    uv_timer_start(&wake, on_wake, 10, 10);
    uint64_t end = uv_now(loop) + ms;
    while (n_reports < n && uv_now(loop) < end) {
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static int dummy; /* the fake batcher keeps its state in statics */

/* --- tests ----------------------------------------------------------------------------------- */

static void test_first_report_after_half_an_interval(void **state)
{
    KVL_UNUSED(state);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    g_loop = &loop;
    setup_cfg(2000, 10);
    kvl_prober_t *p = NULL;
    char err[256];
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(
        kvl_prober_new(&loop, &cfg, "a1", (kvl_batcher_t *)&dummy, &p, err, sizeof(err)), 0);
    run_reports(&loop, 3, 10000);
    assert_int_equal(n_reports, 3);
    /* The first: half an interval in (plus the target's phase, under a probe gap of 200 ms;
     * generous margins for a busy machine), from the half of the probes sent (all refused:
     * sent, none received). A whole interval would be 2000 ms. */
    uint64_t first = reports[0].at - t0;
    if (first < 950 || first > 1700) {
        fail_msg("first report %llu ms after the start, expected about 1000",
                 (unsigned long long)first);
    }
    assert_true(reports[0].sent == 5);
    /* Then whole intervals, every probe. */
    for (size_t i = 1; i < 3; i++) {
        uint64_t gap = reports[i].at - reports[i - 1].at;
        if (gap < 1900 || gap > 2800) {
            fail_msg("report %zu came %llu ms after the one before", i, (unsigned long long)gap);
        }
        assert_true(reports[i].sent == 10);
    }
    kvl_prober_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* One probe per interval (http's default): sent at once, its figures half an interval later. */
static void test_single_probe(void **state)
{
    KVL_UNUSED(state);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    g_loop = &loop;
    setup_cfg(2000, 1);
    kvl_prober_t *p = NULL;
    char err[256];
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(
        kvl_prober_new(&loop, &cfg, "a1", (kvl_batcher_t *)&dummy, &p, err, sizeof(err)), 0);
    run_reports(&loop, 2, 10000);
    assert_int_equal(n_reports, 2);
    uint64_t first = reports[0].at - t0;
    assert_in_range(first, 950, 1700);
    assert_true(reports[0].sent == 1 && reports[1].sent == 1);
    kvl_prober_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* --probe-once: whole intervals from the start, every probe in the first. */
static void test_once_whole_intervals(void **state)
{
    KVL_UNUSED(state);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    g_loop = &loop;
    setup_cfg(2000, 10);
    kvl_prober_t *p = NULL;
    char err[256];
    uint64_t t0 = uv_now(&loop);
    assert_int_equal(kvl_prober_new(&loop, &cfg, "a1", NULL, &p, err, sizeof(err)), 0);
    FILE *out = tmpfile();
    assert_non_null(out);
    kvl_prober_set_once(p, 1, false, out, NULL, NULL);
    uv_timer_t wake;
    uv_timer_init(&loop, &wake);
    uv_timer_start(&wake, on_wake, 10, 10);
    char line[1024] = "";
    while (uv_now(&loop) < t0 + 6000) {
        uv_run(&loop, UV_RUN_ONCE);
        fflush(out);
        if (ftell(out) > 0) {
            break;
        }
    }
    uint64_t at = uv_now(&loop) - t0;
    uv_close((uv_handle_t *)&wake, NULL);
    rewind(out);
    assert_non_null(fgets(line, sizeof(line), out));
    fclose(out);
    if (at < 1950 || at > 3000) {
        fail_msg("--probe-once printed after %llu ms, expected a whole interval",
                 (unsigned long long)at);
    }
    if (strstr(line, " sent=10 ") == NULL) {
        fail_msg("expected every probe of the interval: %s", line);
    }
    kvl_prober_free(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    kvl_log_level = KVL_LOG_LEVEL_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_report_after_half_an_interval),
        cmocka_unit_test(test_single_probe),
        cmocka_unit_test(test_once_whole_intervals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
