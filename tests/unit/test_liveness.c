/*
 * test_liveness.c — the agent-lost detector's core (collector/ingest/liveness.c) driven by a
 * simulated loop: a tick every 500 ms as the ingest's timer does, frames at chosen times.
 * Heartbeats on time (and late by anything under the window) never lose an agent; silence
 * loses it once, at the first tick past lost_after x its interval; a close without return
 * likewise, with the close's reason; a return says how long it was gone and closes a lost
 * period that makes its events late; backpressure is not silence; an agent without
 * heartbeats gets the fallback; a restart's expected agents get the grace; state-file lines
 * round-trip and damaged ones are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kvl.h"
#include "liveness.h"

#define TICK 500
#define WALL0 1764930000000ll /* wall clock at mono 0 */

static const kvl_live_cfg_t cfg = {.misses = 3, .fallback_ms = 300000};

/* The loop: ticks from *now up to `until` (monotonic ms), checking at each one. Returns the
 * number of losses declared and the time of the first in *at. */
static int run_until(kvl_live_t *l, uint64_t *now, uint64_t until, uint64_t *at, char *why)
{
    int losses = 0;
    for (; *now <= until; *now += TICK) {
        char w[256];
        if (kvl_live_check(l, *now, WALL0 + (int64_t)*now, w, sizeof(w))) {
            if (losses++ == 0) {
                *at = *now;
                if (why != NULL) {
                    strcpy(why, w);
                }
            }
        }
    }
    return losses;
}

static void test_heartbeats_on_time_then_silence(void **state)
{
    KVL_UNUSED(state);
    kvl_live_t l = {0};
    int64_t lost_for = -1;
    uint64_t now = 0, at = 0;
    assert_false(kvl_live_hello(&l, &cfg, 10000, now, WALL0, &lost_for));
    assert_int_equal(kvl_live_window(&l, &cfg), 30000);
    /* ten minutes of heartbeats every 10 s: never lost */
    uint64_t last = 0;
    for (uint64_t t = 10000; t <= 600000; t += 10000) {
        assert_int_equal(run_until(&l, &now, t - 1, &at, NULL), 0);
        kvl_live_frame(&l, &cfg, t, WALL0 + (int64_t)t);
        last = t;
    }
    /* silence: lost once, at the first tick at or past last + 30 s */
    char why[256] = "";
    assert_int_equal(run_until(&l, &now, last + 120000, &at, why), 1);
    assert_true(at >= last + 30000 && at < last + 30000 + TICK);
    assert_true(l.lost);
    assert_int_equal(l.lost_from_ms, WALL0 + (int64_t)last);
    assert_string_equal(why, "no heartbeat for 30 s");
    /* frames after the loss do not bring it back; only a Hello does */
    kvl_live_frame(&l, &cfg, now, WALL0 + (int64_t)now);
    assert_true(l.lost);
    assert_int_equal(run_until(&l, &now, now + 60000, &at, NULL), 0);
    uint64_t back_at = now;
    assert_true(kvl_live_hello(&l, &cfg, 10000, now, WALL0 + (int64_t)now, &lost_for));
    assert_int_equal(lost_for, (int64_t)(back_at - last));
    assert_false(l.lost);
    /* a second Hello is not a second return */
    assert_false(kvl_live_hello(&l, &cfg, 10000, now, WALL0 + (int64_t)now, &lost_for));
    /* the lost period makes events late: from the last frame to the return */
    assert_false(kvl_live_late(&l, WALL0 + (int64_t)last - 1));
    assert_true(kvl_live_late(&l, WALL0 + (int64_t)last));
    assert_true(kvl_live_late(&l, WALL0 + (int64_t)last + 45000));
    assert_true(kvl_live_late(&l, WALL0 + (int64_t)back_at));
    assert_false(kvl_live_late(&l, WALL0 + (int64_t)back_at + 1));
}

/* Heartbeats late by up to just under the window (jitter, a slow link) never lose it. */
static void test_jitter_below_window(void **state)
{
    KVL_UNUSED(state);
    kvl_live_t l = {0};
    int64_t lf;
    uint64_t now = 0, at = 0, t = 0;
    kvl_live_hello(&l, &cfg, 10000, 0, WALL0, &lf);
    static const uint64_t gaps[] = {10000, 29000, 15000, 29499, 1, 20000, 29000, 10000};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(gaps); i++) {
        t += gaps[i];
        assert_int_equal(run_until(&l, &now, t - 1, &at, NULL), 0);
        kvl_live_frame(&l, &cfg, t, WALL0 + (int64_t)t);
    }
    assert_false(l.lost);
    /* a 5 s interval: lost after 15 s */
    kvl_live_hello(&l, &cfg, 5000, t, WALL0 + (int64_t)t, &lf);
    assert_int_equal(run_until(&l, &now, t + 60000, &at, NULL), 1);
    assert_true(at >= t + 15000 && at < t + 15000 + TICK);
}

static void test_closed_and_back_or_not(void **state)
{
    KVL_UNUSED(state);
    kvl_live_t l = {0};
    int64_t lf = -1;
    uint64_t now = 0, at = 0;
    kvl_live_hello(&l, &cfg, 10000, 0, WALL0, &lf);
    /* closed at 5 s, back at 34 s: within the window, never lost, no return said */
    assert_int_equal(run_until(&l, &now, 5000, &at, NULL), 0);
    kvl_live_closed(&l, &cfg, 5000, "agent disconnected");
    assert_int_equal(run_until(&l, &now, 34000, &at, NULL), 0);
    assert_false(kvl_live_hello(&l, &cfg, 10000, now, WALL0 + (int64_t)now, &lf));
    /* closed at 40 s and not back: lost 30 s after the close, with its reason */
    assert_int_equal(run_until(&l, &now, 40000, &at, NULL), 0);
    kvl_live_closed(&l, &cfg, 40000, "read failed: connection reset by peer");
    char why[256];
    assert_int_equal(run_until(&l, &now, 200000, &at, why), 1);
    assert_true(at >= 70000 && at < 70000 + TICK);
    assert_string_equal(why, "connection closed: read failed: connection reset by peer");
    /* the collector closing the lost agent's connection changes nothing */
    kvl_live_closed(&l, &cfg, now, "whatever");
    assert_true(l.lost);
    assert_int_equal(run_until(&l, &now, now + 100000, &at, NULL), 0);
}

/* Not read (backpressure): held, never lost; once read again the window counts anew. */
static void test_hold_is_not_silence(void **state)
{
    KVL_UNUSED(state);
    kvl_live_t l = {0};
    int64_t lf;
    uint64_t now = 0, at = 0;
    kvl_live_hello(&l, &cfg, 10000, 0, WALL0, &lf);
    for (; now <= 300000; now += TICK) {
        kvl_live_hold(&l, &cfg, now); /* what the ingest's tick does while not reading */
        char w[64];
        assert_false(kvl_live_check(&l, now, WALL0 + (int64_t)now, w, sizeof(w)));
    }
    uint64_t released = now - TICK;
    assert_int_equal(run_until(&l, &now, released + 60000, &at, NULL), 1);
    assert_true(at >= released + 30000 && at < released + 30000 + TICK);
}

/* An agent without heartbeats (older): never judged while connected; the idle timeout
 * closing its connection loses it at the next tick; another close gives it the fallback
 * window (idle_timeout). */
static void test_no_heartbeats_fallback(void **state)
{
    KVL_UNUSED(state);
    kvl_live_t l = {0};
    int64_t lf;
    uint64_t now = 0, at = 0;
    char why[256];
    kvl_live_hello(&l, &cfg, 0, 0, WALL0, &lf);
    assert_int_equal(kvl_live_window(&l, &cfg), 300000);
    assert_int_equal(run_until(&l, &now, 900000, &at, NULL), 0);
    kvl_live_hold(&l, &cfg, now);
    kvl_live_frame(&l, &cfg, now, WALL0 + (int64_t)now);
    assert_int_equal(run_until(&l, &now, 1200000, &at, NULL), 0);
    uint64_t idle_at = now;
    kvl_live_closed(&l, &cfg, now, "no frame for 300 s (idle_timeout)");
    kvl_live_idle(&l, now);
    assert_int_equal(run_until(&l, &now, now + 10000, &at, why), 1);
    assert_int_equal(at, idle_at);
    assert_string_equal(why, "connection closed: no frame for 300 s (idle_timeout)");
    /* back; then closed by the agent: lost idle_timeout later */
    assert_true(kvl_live_hello(&l, &cfg, 0, now, WALL0 + (int64_t)now, &lf));
    uint64_t closed = now;
    kvl_live_closed(&l, &cfg, now, NULL);
    assert_int_equal(run_until(&l, &now, closed + 299999, &at, NULL), 0);
    assert_int_equal(run_until(&l, &now, closed + 400000, &at, why), 1);
    assert_true(at >= closed + 300000 && at < closed + 300000 + TICK);
    assert_string_equal(why, "connection closed: closed by the agent");
    /* kvl_live_idle means nothing to an agent with heartbeats */
    kvl_live_t h = {0};
    kvl_live_hello(&h, &cfg, 10000, 0, WALL0, &lf);
    kvl_live_closed(&h, &cfg, 1000, "no frame for 300 s (idle_timeout)");
    kvl_live_idle(&h, 1000);
    now = 1000;
    assert_int_equal(run_until(&h, &now, 30999, &at, NULL), 0);
}

/* After a collector restart: a lost agent stays lost (no second loss, a return when it comes
 * back); a connected one gets the grace plus its window. */
static void test_restart(void **state)
{
    KVL_UNUSED(state);
    kvl_live_t lost = {.interval_ms = 10000,
                       .lost = true,
                       .lost_from_ms = WALL0 - 60000,
                       .lost_at_ms = WALL0 - 30000,
                       .last_seen_ms = WALL0 - 60000};
    kvl_live_t up = {.interval_ms = 10000};
    uint64_t now = 0, at = 0;
    kvl_live_expect(&lost, &cfg, 0, 30000);
    kvl_live_expect(&up, &cfg, 0, 30000);
    assert_int_equal(run_until(&lost, &now, 600000, &at, NULL), 0);
    assert_true(kvl_live_late(&lost, WALL0 - 1000));
    now = 0;
    char why[256];
    assert_int_equal(run_until(&up, &now, 600000, &at, why), 1);
    assert_true(at >= 60000 && at < 60000 + TICK);
    assert_string_equal(why, "connection closed: not back after a collector restart");
    int64_t lf;
    assert_true(kvl_live_hello(&lost, &cfg, 10000, 700000, WALL0 + 700000, &lf));
    assert_int_equal(lf, 700000 + 60000);
    /* an expected agent that connects in time is not lost */
    kvl_live_t up2 = {.interval_ms = 10000};
    now = 0;
    kvl_live_expect(&up2, &cfg, 0, 30000);
    assert_int_equal(run_until(&up2, &now, 20000, &at, NULL), 0);
    assert_false(kvl_live_hello(&up2, &cfg, 10000, now, WALL0 + (int64_t)now, &lf));
    assert_int_equal(run_until(&up2, &now, now + 29000, &at, NULL), 0);
}

/* Only the newest KVL_LIVE_PERIODS lost periods are kept. */
static void test_periods_ring(void **state)
{
    KVL_UNUSED(state);
    kvl_live_t l = {0};
    int64_t lf;
    uint64_t now = 0, at = 0;
    kvl_live_hello(&l, &cfg, 1000, 0, WALL0, &lf);
    for (int i = 0; i < KVL_LIVE_PERIODS + 3; i++) {
        assert_int_equal(run_until(&l, &now, now + 10000, &at, NULL), 1);
        assert_true(kvl_live_hello(&l, &cfg, 1000, now, WALL0 + (int64_t)now, &lf));
    }
    assert_int_equal(l.n_periods, KVL_LIVE_PERIODS);
    /* the first periods are forgotten, the last ones kept */
    assert_false(kvl_live_late(&l, WALL0 + 5000));
    assert_true(kvl_live_late(&l, WALL0 + (int64_t)now - 1000));
}

static void test_state_lines(void **state)
{
    KVL_UNUSED(state);
    static const char *const ids[] = {"blk-tvm-north-01", "a", "with space", "new\nline",
                                      "colon:7 x"};
    char line[512], id[256], site[256];
    for (size_t i = 0; i < KVL_ARRAY_SIZE(ids); i++) {
        for (int lost = 0; lost < 2; lost++) {
            kvl_live_t l = {.interval_ms = 10000 + (uint32_t)i,
                            .lost = lost != 0,
                            .lost_from_ms = -5 + WALL0 * lost,
                            .lost_at_ms = WALL0 + 30000};
            int n = kvl_live_format_line(&l, ids[i], i == 2 ? "" : "tvm north", line, sizeof(line));
            assert_true(n > 0 && line[n - 1] == '\n');
            kvl_live_t back;
            assert_int_equal(
                kvl_live_parse_line(line, (size_t)n - 1, &back, id, sizeof(id), site, sizeof(site)),
                0);
            assert_string_equal(id, ids[i]);
            assert_string_equal(site, i == 2 ? "" : "tvm north");
            assert_int_equal(back.interval_ms, l.interval_ms);
            assert_int_equal(back.lost, l.lost);
            assert_int_equal(back.lost_from_ms, lost ? l.lost_from_ms : 0);
            assert_int_equal(back.lost_at_ms, lost ? l.lost_at_ms : 0);
            assert_false(back.watched);
            /* every truncation is refused */
            for (int k = 0; k < n - 1; k++) {
                assert_int_not_equal(
                    kvl_live_parse_line(line, (size_t)k, &back, id, sizeof(id), site, sizeof(site)),
                    0);
            }
        }
    }
    static const char *const bad[] = {
        "X 1 0 0 1:a 0:",
        "U 1 0 0 0: 0:",
        "U 1 0 0 5:a 0:",
        "U -1 0 0 1:a 0:",
        "U 99999999999 0 0 1:a 0:",
        "U 1 0 0 1:a 0:x",
        "U 1 0 0 1:a",
        "L 1 x 0 1:a 0:",
        "U 1 0 0 999999999999999999999:a 0:",
        "U 1 0 0 1:a 3:ab",
        "U 1  0 0 1:a 0:",
    };
    kvl_live_t l;
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        assert_int_not_equal(
            kvl_live_parse_line(bad[i], strlen(bad[i]), &l, id, sizeof(id), site, sizeof(site)), 0);
    }
    /* an id longer than the room is refused, not cut */
    assert_int_not_equal(kvl_live_parse_line("U 1 0 0 5:abcde 0:", 18, &l, id, 5, site, 8), 0);
    assert_int_equal(kvl_live_parse_line("U 1 0 0 5:abcde 0:", 18, &l, id, 6, site, 8), 0);
    /* a line that does not fit the buffer is refused */
    kvl_live_t u = {0};
    assert_true(kvl_live_format_line(&u, "abcdef", "s", line, 16) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeats_on_time_then_silence),
        cmocka_unit_test(test_jitter_below_window),
        cmocka_unit_test(test_closed_and_back_or_not),
        cmocka_unit_test(test_hold_is_not_silence),
        cmocka_unit_test(test_no_heartbeats_fallback),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_periods_ring),
        cmocka_unit_test(test_state_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
