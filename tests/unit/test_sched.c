/*
 * test_sched.c — unit tests for the poller's schedule (agent/snmp/poll_sched.h).
 *
 * The heap against a sorted reference under random pushes and pops (ties in index order,
 * as the poller relies on for a stable order of devices due at the same time), phases (in
 * the interval, the same for the same name, spread over many names), the first tick after a
 * start and the join with the phase, ticks on the fixed schedule with skipped ones counted,
 * the growing probe gap and its bounds, and the in-flight cap's FIFO.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "kvl.h"
#include "poll_sched.h"

/* --- the heap -------------------------------------------------------------------------------- */

typedef struct ref {
    uint64_t due;
    uint32_t id;
} ref_t;

static int cmp_ref(const void *a, const void *b)
{
    const ref_t *x = a;
    const ref_t *y = b;
    if (x->due != y->due) {
        return x->due < y->due ? -1 : 1;
    }
    return x->id < y->id ? -1 : (x->id > y->id ? 1 : 0);
}

static void test_heap_order(void **state)
{
    KVL_UNUSED(state);
    enum { N = 2000 };
    kvl_sched_t s;
    assert_int_equal(kvl_sched_init(&s, N), 0);
    ref_t *ref = calloc(N, sizeof(*ref));
    assert_non_null(ref);
    uint32_t id;
    uint64_t due;
    assert_false(kvl_sched_top(&s, &id, &due));

    srand(7);
    size_t n = 0;
    for (uint32_t i = 0; i < N; i++) {
        uint64_t d = (uint64_t)(rand() % 50); /* many ties */
        kvl_sched_push(&s, i, d);
        ref[n++] = (ref_t){d, i};
        if (i % 3 == 2) { /* pop one now and then */
            qsort(ref, n, sizeof(*ref), cmp_ref);
            assert_true(kvl_sched_top(&s, &id, &due));
            assert_int_equal(id, ref[0].id);
            assert_int_equal(due, ref[0].due);
            assert_int_equal(kvl_sched_pop(&s), ref[0].id);
            ref[0] = ref[--n];
        }
    }
    assert_int_equal(s.n, n);
    qsort(ref, n, sizeof(*ref), cmp_ref);
    for (size_t k = 0; k < n; k++) {
        assert_true(kvl_sched_top(&s, &id, &due));
        assert_int_equal(due, ref[k].due);
        assert_int_equal(kvl_sched_pop(&s), ref[k].id);
    }
    assert_false(kvl_sched_top(&s, &id, &due));

    kvl_sched_push(&s, 3, 10);
    kvl_sched_clear(&s);
    assert_false(kvl_sched_top(&s, &id, &due));
    free(ref);
    kvl_sched_fini(&s);
    kvl_sched_fini(&s); /* twice is harmless */
}

/* A device pushed back after its tick goes behind the others due at the same time. */
static void test_heap_reschedule(void **state)
{
    KVL_UNUSED(state);
    kvl_sched_t s;
    assert_int_equal(kvl_sched_init(&s, 0), 0); /* no devices: still valid */
    kvl_sched_fini(&s);
    assert_int_equal(kvl_sched_init(&s, 4), 0);
    for (uint32_t i = 0; i < 4; i++) {
        kvl_sched_push(&s, i, 1000);
    }
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(kvl_sched_pop(&s), i);
        kvl_sched_push(&s, i, 2000);
    }
    for (uint32_t i = 0; i < 4; i++) {
        assert_int_equal(kvl_sched_pop(&s), i);
    }
    kvl_sched_fini(&s);
}

/* --- times ----------------------------------------------------------------------------------- */

static void test_phase(void **state)
{
    KVL_UNUSED(state);
    const uint64_t interval = 60000, epoch = 1764900000000ull;
    enum { N = 2000, BUCKETS = 10 };
    unsigned bucket[BUCKETS] = {0};
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "dev%04d", i);
        uint64_t d = kvl_sched_phase_delay(name, interval, epoch);
        assert_true(d < interval);
        /* The phase point is a fixed time of the interval: later, it is that much nearer. */
        uint64_t later = kvl_sched_phase_delay(name, interval, epoch + 1234);
        assert_int_equal(later, (d + interval - 1234) % interval);
        /* A whole interval later, the same. */
        assert_int_equal(kvl_sched_phase_delay(name, interval, epoch + 7 * interval), d);
        bucket[(epoch + d) % interval * BUCKETS / interval]++;
    }
    for (int b = 0; b < BUCKETS; b++) { /* spread: each tenth gets about 200 */
        assert_in_range(bucket[b], N / BUCKETS / 2, N / BUCKETS * 3 / 2);
    }
}

/* The first tick after a start: at once, spread over a short window; the third (after the
 * second, an interval after the first) on the phase, at least half an interval later. */
static void test_start_and_join(void **state)
{
    KVL_UNUSED(state);
    const uint64_t epoch = 1764900000000ull;
    enum { N = 2000, BUCKETS = 10 };
    unsigned bucket[BUCKETS] = {0};
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof(name), "dev%04d", i);
        /* 5 min interval: a 10 s window; the same on every start. */
        uint64_t d = kvl_sched_start_delay(name, 300000);
        assert_true(d < KVL_SCHED_START_SPREAD_MS);
        assert_int_equal(kvl_sched_start_delay(name, 300000), d);
        bucket[d * BUCKETS / KVL_SCHED_START_SPREAD_MS]++;
        /* Shorter intervals: a tenth of it. */
        assert_true(kvl_sched_start_delay(name, 60000) < 6000);
        assert_true(kvl_sched_start_delay(name, 2000) < 200);
        for (uint64_t at = epoch; at < epoch + 60000; at += 7919) {
            uint64_t j = kvl_sched_join_delay(name, 60000, at);
            assert_true(j >= 30000 && j < 90000);
            /* on the phase: the same point of the interval as kvl_sched_phase_delay's */
            assert_int_equal(j % 60000, kvl_sched_phase_delay(name, 60000, at));
        }
    }
    for (int b = 0; b < BUCKETS; b++) { /* spread over the window */
        assert_in_range(bucket[b], N / BUCKETS / 2, N / BUCKETS * 3 / 2);
    }
    /* Tiny intervals: no window, the join still half an interval away at least. */
    assert_int_equal(kvl_sched_start_delay("x", 9), 0);
    assert_int_equal(kvl_sched_start_delay("x", 0), 0);
    uint64_t j = kvl_sched_join_delay("x", 1, epoch);
    assert_true(j < 2);
    /* The second tick right before a phase point: the join skips it (too close to the
     * second) and takes the next one. */
    uint64_t ph = kvl_sched_phase_delay("x", 60000, epoch);
    uint64_t just_before = epoch + ph + 60000 - 1000; /* 1 s before a phase point */
    assert_int_equal(kvl_sched_join_delay("x", 60000, just_before), 61000);
    uint64_t well_before = epoch + ph + 60000 - 40000; /* 40 s before one */
    assert_int_equal(kvl_sched_join_delay("x", 60000, well_before), 40000);
}

static void test_advance(void **state)
{
    KVL_UNUSED(state);
    uint64_t next = 10000;
    assert_int_equal(kvl_sched_advance(&next, 1000, 10000), 0); /* on time */
    assert_int_equal(next, 11000);
    assert_int_equal(kvl_sched_advance(&next, 1000, 11500), 0); /* a little late */
    assert_int_equal(next, 12000);
    assert_int_equal(kvl_sched_advance(&next, 1000, 15000), 3); /* 13000..15000 missed */
    assert_int_equal(next, 16000);                              /* on the grid still */
}

static void test_probe_gap(void **state)
{
    KVL_UNUSED(state);
    /* 60 s interval, 300 s at most: 2, 4, then 5 ticks. */
    assert_int_equal(kvl_sched_probe_gap(1, 60000, 300000), 2);
    assert_int_equal(kvl_sched_probe_gap(2, 60000, 300000), 4);
    assert_int_equal(kvl_sched_probe_gap(4, 60000, 300000), 5);
    assert_int_equal(kvl_sched_probe_gap(5, 60000, 300000), 5);
    /* An interval longer than the longest gap: every tick. */
    assert_int_equal(kvl_sched_probe_gap(2, 600000, 300000), 1);
}

/* --- the in-flight cap ----------------------------------------------------------------------- */

static void test_inflight(void **state)
{
    KVL_UNUSED(state);
    kvl_inflight_t q = {.max = 2};
    kvl_inflight_wait_t w[3];
    int owners[3] = {0, 1, 2};

    assert_true(kvl_inflight_may_send(&q));
    q.n = 2; /* both slots taken */
    assert_false(kvl_inflight_may_send(&q));
    for (int i = 0; i < 3; i++) {
        kvl_inflight_enqueue(&q, &w[i], &owners[i]);
    }
    assert_null(kvl_inflight_next(&q)); /* no slot */
    q.n = 1;
    assert_ptr_equal(kvl_inflight_next(&q), &owners[0]);
    /* Someone waits: a new request may not jump the queue even with a free slot. */
    q.n = 1;
    assert_false(kvl_inflight_may_send(&q));
    assert_ptr_equal(kvl_inflight_next(&q), &owners[1]);
    q.n = 2;
    assert_null(kvl_inflight_next(&q));
    q.n = 0;
    assert_ptr_equal(kvl_inflight_next(&q), &owners[2]);
    assert_null(kvl_inflight_next(&q)); /* empty */
    assert_true(kvl_inflight_may_send(&q));
    assert_null(q.tail);

    kvl_inflight_enqueue(&q, &w[0], &owners[0]);
    kvl_inflight_drop(&q);
    assert_null(kvl_inflight_next(&q));
    assert_true(kvl_inflight_may_send(&q));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heap_order), cmocka_unit_test(test_heap_reschedule),
        cmocka_unit_test(test_phase),      cmocka_unit_test(test_start_and_join),
        cmocka_unit_test(test_advance),    cmocka_unit_test(test_probe_gap),
        cmocka_unit_test(test_inflight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
