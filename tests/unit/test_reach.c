/*
 * test_reach.c — a probe target's reachability (agent/probe/reach.h) on a fake clock: a lost
 * scheduled probe starts a confirmation round at once, its probes go out `spacing` apart with
 * a timeout from the recent round trips, all lost makes the target down once, any answer
 * ends the round, an answer while down brings it up once; answers too late for their round
 * or sent before the verdict change nothing; failures count at once; probe numbers apart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include "kvl.h"
#include "reach.h"

#define GAP 3000 /* the normal timeout: the gap between scheduled probes (20 a minute) */

/* Runs r's actions at now; returns how many confirmation probes it asked for (their numbers
 * in seqs) and whether it went down. */
static unsigned poll_all(kvl_reach_t *r, int64_t now, uint32_t *seqs, bool *down)
{
    unsigned n = 0;
    *down = false;
    for (int guard = 0; guard < 50; guard++) {
        uint32_t seq = 0;
        kvl_reach_action_t a = kvl_reach_poll(r, now, &seq);
        if (a == KVL_REACH_NONE) {
            return n;
        }
        if (a == KVL_REACH_SEND) {
            assert_true(kvl_reach_is_confirm(seq));
            seqs[n++] = seq;
        } else {
            assert_false(*down);
            *down = true;
        }
    }
    fail_msg("kvl_reach_poll never settled");
    return n;
}

/* A target answering with 10 ms round trips for a while. */
static void warm_up(kvl_reach_t *r, int64_t *now, uint32_t *seq)
{
    for (int i = 0; i < 10; i++) {
        kvl_reach_sent(r, *seq, *now);
        assert_false(kvl_reach_answer(r, *seq, 10 * 1000000, *now + 10));
        (*seq)++;
        *now += GAP;
    }
    assert_int_equal(r->state, KVL_REACH_UP);
}

static void test_timeout_from_rtt(void **state)
{
    KVL_UNUSED(state);
    kvl_reach_t r;
    kvl_reach_init(&r, 3, 250, 100, GAP);
    assert_int_equal(kvl_reach_timeout(&r), GAP); /* nothing came back yet */
    int64_t now = 1000;
    uint32_t seq = 0;
    warm_up(&r, &now, &seq);
    assert_int_equal(kvl_reach_timeout(&r), 100); /* 4 x 10 ms, at least 100 */
    for (int i = 0; i < KVL_REACH_RTTS; i++) {
        kvl_reach_sent(&r, seq, now);
        kvl_reach_answer(&r, seq++, 200 * 1000000, now + 200);
        now += GAP;
    }
    assert_int_equal(kvl_reach_timeout(&r), 800); /* 4 x 200 ms */
    for (int i = 0; i < KVL_REACH_RTTS; i++) {
        kvl_reach_sent(&r, seq, now);
        kvl_reach_answer(&r, seq++, 2000 * 1000000, now + 2000);
        now += GAP;
    }
    assert_int_equal(kvl_reach_timeout(&r), GAP); /* capped at the normal timeout */
}

/* The cut: the scheduled probe's timeout passes, three probes 250 ms apart, all lost -> down
 * about 600 ms after the loss was seen; the next scheduled probes raise nothing; the first
 * answer brings it up once. */
static void test_cut_and_repair(void **state)
{
    KVL_UNUSED(state);
    kvl_reach_t r;
    kvl_reach_init(&r, 3, 250, 100, GAP);
    int64_t now = 1000;
    uint32_t seq = 0;
    warm_up(&r, &now, &seq);
    int64_t sent_at = now;
    uint32_t lost = seq++;
    kvl_reach_sent(&r, lost, now);
    assert_int_equal(kvl_reach_next(&r), now + 100);
    uint32_t c[16];
    bool down;
    assert_int_equal(poll_all(&r, now + 99, c, &down), 0);
    assert_false(down);
    /* The timeout passes: the first confirming probe at once. */
    now += 100;
    assert_int_equal(poll_all(&r, now, c, &down), 1);
    assert_false(down);
    assert_true(r.confirming);
    assert_int_equal(kvl_reach_next(&r), now + 100); /* its timeout before the next's due */
    uint32_t all[3] = {c[0]};
    unsigned sent = 1;
    while (sent < 3) {
        now = kvl_reach_next(&r);
        unsigned k = poll_all(&r, now, c, &down);
        assert_false(down);
        if (k > 0) {
            all[sent++] = c[0];
        }
    }
    assert_true(all[0] != all[1] && all[1] != all[2]);
    now = kvl_reach_next(&r);
    assert_int_equal(poll_all(&r, now, c, &down), 0);
    assert_true(down);
    assert_int_equal(r.state, KVL_REACH_DOWN);
    assert_int_equal(r.lost_at, sent_at);
    /* 100 (timeout) + 2 x 250 (spacing) + 100 (the last one's timeout) after the send. */
    assert_int_equal(now - sent_at, 700);
    /* Down: scheduled probes go on without rounds; a late answer to the lost one or to a
     * confirming probe changes nothing. */
    assert_false(kvl_reach_answer(&r, lost, 5 * 1000000, now + 5));
    assert_false(kvl_reach_answer(&r, all[2], 5 * 1000000, now + 5));
    assert_int_equal(r.state, KVL_REACH_DOWN);
    for (int i = 0; i < 3; i++) {
        now += GAP;
        kvl_reach_sent(&r, seq++, now);
        assert_int_equal(poll_all(&r, now + GAP - 1, c, &down), 0);
        assert_false(down);
        assert_int_equal(kvl_reach_next(&r), INT64_MAX);
    }
    /* The repair: the next scheduled probe is answered. */
    now += GAP;
    uint32_t back = seq++;
    kvl_reach_sent(&r, back, now);
    assert_true(kvl_reach_answer(&r, back, 10 * 1000000, now + 10));
    assert_false(kvl_reach_answer(&r, back, 10 * 1000000, now + 11)); /* a duplicate */
    assert_int_equal(r.state, KVL_REACH_UP);
    assert_int_equal(r.rounds, 1);
    assert_int_equal(r.rounds_down, 1);
}

/* One lost probe on a working link: the first confirming probe is answered, the round ends,
 * no verdict. A slow answer to the scheduled probe itself ends it too. */
static void test_single_loss_is_not_down(void **state)
{
    KVL_UNUSED(state);
    kvl_reach_t r;
    kvl_reach_init(&r, 3, 250, 100, GAP);
    int64_t now = 1000;
    uint32_t seq = 0;
    warm_up(&r, &now, &seq);
    kvl_reach_sent(&r, seq, now);
    now += 100;
    uint32_t c[16];
    bool down;
    assert_int_equal(poll_all(&r, now, c, &down), 1);
    assert_false(kvl_reach_answer(&r, c[0], 10 * 1000000, now + 10));
    assert_false(r.confirming);
    assert_int_equal(kvl_reach_next(&r), INT64_MAX);
    assert_int_equal(r.state, KVL_REACH_UP);
    /* Again, and the scheduled probe's own answer comes late, during the round. */
    now += GAP;
    uint32_t slow = ++seq;
    kvl_reach_sent(&r, slow, now);
    now += 100;
    assert_int_equal(poll_all(&r, now, c, &down), 1);
    assert_false(kvl_reach_answer(&r, slow, 150 * 1000000, now + 50));
    assert_false(r.confirming);
    now += 2000;
    assert_int_equal(poll_all(&r, now, c, &down), 0);
    assert_false(down);
    /* An answer to the earlier round's probe now changes nothing either. */
    assert_false(kvl_reach_answer(&r, c[0], 1, now));
    assert_int_equal(r.rounds, 2);
    assert_int_equal(r.rounds_down, 0);
}

/* Failures (refused connection, send error) count at once: no waiting for timeouts. */
static void test_failures_at_once(void **state)
{
    KVL_UNUSED(state);
    kvl_reach_t r;
    kvl_reach_init(&r, 2, 250, 100, GAP);
    int64_t now = 1000;
    uint32_t seq = 0;
    warm_up(&r, &now, &seq);
    kvl_reach_sent(&r, seq, now);
    kvl_reach_failed(&r, seq, now);
    uint32_t c[16];
    bool down;
    assert_int_equal(poll_all(&r, now, c, &down), 1);
    kvl_reach_failed(&r, c[0], now);
    now += 250;
    assert_int_equal(poll_all(&r, now, c, &down), 1);
    assert_false(down);
    kvl_reach_failed(&r, c[0], now);
    assert_int_equal(kvl_reach_next(&r), 0);
    assert_int_equal(poll_all(&r, now, c, &down), 0);
    assert_true(down);
    /* A failure of a probe of no round, or while down, is nothing. */
    kvl_reach_failed(&r, seq + 1, now);
    kvl_reach_failed(&r, KVL_REACH_CONFIRM_BIT | 12345, now);
    assert_int_equal(r.state, KVL_REACH_DOWN);
}

/* Unknown at the start (nothing answered yet): a target that never answers goes down once,
 * with the normal timeout; the state file's down needs an answer, any, to come up. */
static void test_start_states(void **state)
{
    KVL_UNUSED(state);
    kvl_reach_t r;
    kvl_reach_init(&r, 3, 250, 100, GAP);
    int64_t now = 5000;
    kvl_reach_sent(&r, 0, now);
    assert_int_equal(kvl_reach_next(&r), now + GAP);
    uint32_t c[16];
    bool down = false, went = false;
    for (int i = 0; i < 20 && !went; i++) {
        now = kvl_reach_next(&r);
        assert_true(now != INT64_MAX);
        poll_all(&r, now, c, &down);
        went = down;
    }
    assert_true(went);
    assert_int_equal(now - 5000, GAP + 500 + GAP);

    kvl_reach_init(&r, 3, 250, 100, GAP);
    kvl_reach_set_down(&r);
    kvl_reach_sent(&r, 7, now);
    assert_int_equal(kvl_reach_next(&r), INT64_MAX);
    assert_true(kvl_reach_answer(&r, 7, -1, now + 1));
    assert_int_equal(r.state, KVL_REACH_UP);
}

/* Scheduled numbers run modulo 2^31 (the prober's): "sent before the verdict" across the
 * wrap. */
static void test_numbers_wrap(void **state)
{
    KVL_UNUSED(state);
    kvl_reach_t r;
    kvl_reach_init(&r, 1, 250, 100, GAP);
    int64_t now = 1000;
    uint32_t seq = 0x7ffffffeu;
    kvl_reach_sent(&r, seq, now);
    kvl_reach_answer(&r, seq, 1000000, now + 1);
    seq = 0x7fffffffu;
    now += GAP;
    kvl_reach_sent(&r, seq, now);
    uint32_t c[16];
    bool down;
    now += 100;
    assert_int_equal(poll_all(&r, now, c, &down), 1);
    now += 100;
    poll_all(&r, now, c, &down);
    assert_true(down);
    assert_false(kvl_reach_answer(&r, 0x7fffffffu, 1, now)); /* before the verdict */
    kvl_reach_sent(&r, 0, now + GAP);                        /* after the wrap */
    assert_true(kvl_reach_answer(&r, 0, 1, now + GAP + 1));
}

/* The RTT grows from 10 to 400 ms for a moment: the confirming probes' answers come after
 * their 100 ms timeouts but before the round's verdict (its last timeout): not down. */
static void test_rtt_spike_is_not_down(void **state)
{
    KVL_UNUSED(state);
    kvl_reach_t r;
    kvl_reach_init(&r, 3, 250, 100, GAP);
    int64_t now = 1000;
    uint32_t seq = 0;
    warm_up(&r, &now, &seq);
    int64_t sent = now;
    kvl_reach_sent(&r, seq, now);
    uint32_t c[16], first = 0;
    bool down;
    bool answered = false;
    for (int i = 0; i < 20 && r.confirming + !answered > 0; i++) {
        now = kvl_reach_next(&r);
        if (now >= sent + 400 && !answered) {
            now = sent + 400; /* the scheduled probe's answer, 400 ms after it left */
            assert_false(kvl_reach_answer(&r, seq, 400 * 1000000, now));
            answered = true;
            continue;
        }
        if (poll_all(&r, now, c, &down) > 0 && first == 0) {
            first = c[0];
        }
        assert_false(down);
    }
    assert_true(answered);
    assert_false(r.confirming);
    assert_int_equal(r.state, KVL_REACH_UP);
    assert_int_not_equal(first, 0);
}

/* Patient (http): the scheduled probe waits for its own result; its failure starts the
 * round at once; the confirming probes have the RTT-sized timeout (at least the minimum). */
static void test_patient(void **state)
{
    KVL_UNUSED(state);
    kvl_reach_t r;
    kvl_reach_init(&r, 3, 250, 1000, 30000);
    r.patient = true;
    int64_t now = 1000;
    uint32_t seq = 0;
    for (int i = 0; i < 5; i++) {
        kvl_reach_sent(&r, seq, now);
        kvl_reach_answer(&r, seq++, 100 * 1000000, now + 100);
        now += 60000;
    }
    kvl_reach_sent(&r, seq, now);
    assert_int_equal(kvl_reach_next(&r), now + 31000);
    uint32_t c[16];
    bool down;
    assert_int_equal(poll_all(&r, now + 5000, c, &down), 0); /* slow, not lost */
    now += 5000;
    kvl_reach_failed(&r, seq, now);
    assert_int_equal(poll_all(&r, now, c, &down), 1);
    assert_int_equal(r.c_deadline[0], now + 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_from_rtt),
        cmocka_unit_test(test_cut_and_repair),
        cmocka_unit_test(test_single_loss_is_not_down),
        cmocka_unit_test(test_failures_at_once),
        cmocka_unit_test(test_start_states),
        cmocka_unit_test(test_patient),
        cmocka_unit_test(test_rtt_spike_is_not_down),
        cmocka_unit_test(test_numbers_wrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
