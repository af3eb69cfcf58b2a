/*
 * test_counter.c — unit tests for counter wrap, reset and plausibility rules
 * (common/counter.h).
 *
 * Each test drives one kvl_counter_t through readings whose true totals are known, and
 * checks both the verdict (known/unknown) and the continuous value. The multi-wrap tests
 * simulate a link at a steady (slightly varying) rate and compare the continuous value to
 * the exact total the simulated device counted, across many 32-bit wraps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "counter.h"
#include "kvl.h"

#define W32 0x100000000ull
#define GBIT_BYTES 125000000.0 /* 1 Gbit/s in octets per second */

static kvl_counter_result_t upd(kvl_counter_t *c, uint64_t raw, unsigned bits, int64_t t_ms,
                                double max_rate, bool disc, uint64_t *out)
{
    *out = 0xdeadbeefdeadbeefull; /* must be overwritten */
    return kvl_counter_update(c, raw, bits, t_ms, max_rate, disc, out);
}

static void test_first_reading(void **state)
{
    KVL_UNUSED(state);
    kvl_counter_t c = {0};
    uint64_t out;
    assert_int_equal(upd(&c, 123456789012345ull, 64, 1000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 123456789012345ull);

    /* Even with the discontinuity flag, the first reading only starts the series. */
    kvl_counter_t d = {0};
    assert_int_equal(upd(&d, 77, 64, 1000, GBIT_BYTES, true, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 77);

    /* A 32-bit counter only keeps its low 32 bits. */
    kvl_counter_t e = {0};
    assert_int_equal(upd(&e, W32 + 5, 32, 1000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 5);
    assert_int_equal(upd(&e, 2 * W32 + 15, 32, 61000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 15);
}

static void test_increase_64(void **state)
{
    KVL_UNUSED(state);
    kvl_counter_t c = {0};
    uint64_t out;
    uint64_t base = 0xfffffff000000000ull; /* high bits in use */
    assert_int_equal(upd(&c, base, 64, 0, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(upd(&c, base + 7500000000ull, 64, 60000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, base + 7500000000ull);
    /* No change is known and keeps the value. */
    assert_int_equal(upd(&c, base + 7500000000ull, 64, 120000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, base + 7500000000ull);
    /* A 64-bit increase of more than half of 32 bits is not mistaken for anything. */
    assert_int_equal(upd(&c, base + 7500000000ull + 3 * W32, 64, 180000, 0, false, &out),
                     KVL_COUNTER_KNOWN);
    assert_int_equal(out, base + 7500000000ull + 3 * W32);
    /* Within a rate bound: 60 s at 1 Gbit/s exactly is still believable. */
    uint64_t prev = out;
    assert_int_equal(upd(&c, prev + 7500000000ull, 64, 240000, GBIT_BYTES, false, &out),
                     KVL_COUNTER_KNOWN);
    assert_int_equal(out, prev + 7500000000ull);
}

static void test_wrap_32_no_bound(void **state)
{
    KVL_UNUSED(state);
    kvl_counter_t c = {0};
    uint64_t out;
    assert_int_equal(upd(&c, 0xffffff00u, 32, 0, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(upd(&c, 0x100, 32, 60000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 0xffffff00ull + 0x200);
    /* Wrapping to exactly zero. */
    kvl_counter_t d = {0};
    assert_int_equal(upd(&d, 0xfffffffeu, 32, 0, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(upd(&d, 0, 32, 1000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, W32);
    /* The largest wrapped increase believed without a bound is just under half the range. */
    kvl_counter_t e = {0};
    assert_int_equal(upd(&e, 0x90000000u, 32, 0, 0, false, &out), KVL_COUNTER_KNOWN);
    /* 0x90000000 + 0x7fffffff = 0x10fffffff, which reads 0x0fffffff after the wrap. */
    assert_int_equal(upd(&e, 0x0fffffffu, 32, 60000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 0x90000000ull + 0x7fffffffu);
}

static void test_wrap_32_implausible_no_bound(void **state)
{
    KVL_UNUSED(state);
    /* Going back by a little is a reset (a wrap would mean nearly 4 G in one interval). */
    kvl_counter_t c = {0};
    uint64_t out;
    assert_int_equal(upd(&c, 5000000, 32, 0, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(upd(&c, 1000, 32, 60000, 0, false, &out), KVL_COUNTER_UNKNOWN);
    assert_int_equal(out, 1000);
    /* And the series goes on from the new raw value. */
    assert_int_equal(upd(&c, 4000, 32, 120000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 4000);
    /* Exactly half the range wrapped is no longer believed. */
    kvl_counter_t d = {0};
    assert_int_equal(upd(&d, 0x90000000u, 32, 0, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(upd(&d, 0x10000000u, 32, 60000, 0, false, &out), KVL_COUNTER_UNKNOWN);
    assert_int_equal(out, 0x10000000u);
}

static void test_wrap_32_with_bound(void **state)
{
    KVL_UNUSED(state);
    /* 10 GbE on a 32-bit counter polled every 5 s: up to 6.25e9 octets, more than the range
     * minus the start; with the rate bound, a wrap of 3e9 in 5 s is believable. */
    kvl_counter_t c = {0};
    uint64_t out;
    uint64_t start = 4000000000ull;
    assert_int_equal(upd(&c, start, 32, 0, 10 * GBIT_BYTES, false, &out), KVL_COUNTER_KNOWN);
    uint64_t total = start + 3000000000ull;
    assert_int_equal(upd(&c, total % W32, 32, 5000, 10 * GBIT_BYTES, false, &out),
                     KVL_COUNTER_KNOWN);
    assert_int_equal(out, total);
    /* A plausible wrap believed even when the increase is over half the range. */
    total += 0xa0000000ull;
    assert_int_equal(upd(&c, total % W32, 32, 10000, 10 * GBIT_BYTES, false, &out),
                     KVL_COUNTER_KNOWN);
    assert_int_equal(out, total);
}

static void test_wrap_32_implausible_with_bound(void **state)
{
    KVL_UNUSED(state);
    /* Back from 0x10 to 5 is a wrap of 2^32 - 11 octets in 10 s: 3.4 Gbit/s on a 1 Gbit/s
     * link, so the device was reset. */
    kvl_counter_t c = {0};
    uint64_t out;
    assert_int_equal(upd(&c, 1000000, 32, 0, GBIT_BYTES, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(upd(&c, 1000000 + 1000, 32, 10000, GBIT_BYTES, false, &out),
                     KVL_COUNTER_KNOWN);
    assert_int_equal(upd(&c, 5, 32, 20000, GBIT_BYTES, false, &out), KVL_COUNTER_UNKNOWN);
    assert_int_equal(out, 5);
    assert_int_equal(upd(&c, 105, 32, 30000, GBIT_BYTES, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 105);
}

static void test_reset_64(void **state)
{
    KVL_UNUSED(state);
    kvl_counter_t c = {0};
    uint64_t out;
    assert_int_equal(upd(&c, 900000000000ull, 64, 0, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(upd(&c, 900000001000ull, 64, 60000, 0, false, &out), KVL_COUNTER_KNOWN);
    /* The device rebooted: the counter starts again near zero. */
    assert_int_equal(upd(&c, 4242, 64, 120000, 0, false, &out), KVL_COUNTER_UNKNOWN);
    assert_int_equal(out, 4242);
    assert_int_equal(upd(&c, 5242, 64, 180000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 5242);
    /* Going back by one is a reset too (64-bit counters do not wrap). */
    assert_int_equal(upd(&c, 5241, 64, 240000, 0, false, &out), KVL_COUNTER_UNKNOWN);
    assert_int_equal(out, 5241);
    /* Even going back from the top of the range. */
    kvl_counter_t d = {0};
    assert_int_equal(upd(&d, UINT64_MAX - 10, 64, 0, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(upd(&d, 10, 64, 60000, 0, false, &out), KVL_COUNTER_UNKNOWN);
    assert_int_equal(out, 10);
}

static void test_discontinuity(void **state)
{
    KVL_UNUSED(state);
    kvl_counter_t c = {0};
    uint64_t out;
    assert_int_equal(upd(&c, 1000, 64, 0, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(upd(&c, 2000, 64, 60000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 2000);
    /* A plausible increase, but the caller knows the counter was discontinuous. */
    assert_int_equal(upd(&c, 2500, 64, 120000, GBIT_BYTES, true, &out), KVL_COUNTER_UNKNOWN);
    assert_int_equal(out, 2500);
    /* It continues from the new raw value. */
    assert_int_equal(upd(&c, 3500, 64, 180000, GBIT_BYTES, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 3500);

    /* On a 32-bit series whose continuous value had passed 2^32, the restart is at the raw
     * value and the series goes on from there. */
    kvl_counter_t d = {0};
    assert_int_equal(upd(&d, 0xf0000000u, 32, 0, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(upd(&d, 0x10000000u, 32, 60000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, W32 + 0x10000000u);
    assert_int_equal(upd(&d, 0x20000000u, 32, 120000, 0, true, &out), KVL_COUNTER_UNKNOWN);
    assert_int_equal(out, 0x20000000u);
    assert_int_equal(upd(&d, 0x20000100u, 32, 180000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 0x20000100u);
}

static void test_spike(void **state)
{
    KVL_UNUSED(state);
    kvl_counter_t c = {0};
    uint64_t out;
    assert_int_equal(upd(&c, 10000000000ull, 64, 0, GBIT_BYTES, false, &out), KVL_COUNTER_KNOWN);
    /* 60 s at 1 Gbit/s is at most 7.5e9; one octet more is a spike. */
    assert_int_equal(upd(&c, 10000000000ull + 7500000001ull, 64, 60000, GBIT_BYTES, false, &out),
                     KVL_COUNTER_UNKNOWN);
    assert_int_equal(out, 17500000001ull);
    /* The series restarts there and goes on. */
    assert_int_equal(upd(&c, 17500000001ull + 1000, 64, 120000, GBIT_BYTES, false, &out),
                     KVL_COUNTER_KNOWN);
    assert_int_equal(out, 17500000001ull + 1000);
    /* A huge jump. */
    assert_int_equal(upd(&c, 1ull << 62, 64, 180000, GBIT_BYTES, false, &out), KVL_COUNTER_UNKNOWN);
    assert_int_equal(out, 1ull << 62);
    /* Without a bound the same jump is believed. */
    kvl_counter_t d = {0};
    assert_int_equal(upd(&d, 1000, 64, 0, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(upd(&d, 1ull << 62, 64, 60000, 0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 1ull << 62);
    /* A spike on a 32-bit counter that did not wrap. */
    kvl_counter_t e = {0};
    assert_int_equal(upd(&e, 100, 32, 0, 1000.0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(upd(&e, 100 + 10001, 32, 10000, 1000.0, false, &out), KVL_COUNTER_UNKNOWN);
    assert_int_equal(out, 10101);
    assert_int_equal(upd(&e, 10101 + 10000, 32, 20000, 1000.0, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, 20101);
}

/* Simulates `n` polls of a 32-bit counter every `step_ms`, adding about `per_step` octets
 * each time (varied by a few percent), and checks the continuous value equals the exact
 * total each time. Returns how many times the raw counter wrapped. */
static unsigned run_wraps(uint64_t start, uint64_t per_step, int64_t step_ms, double max_rate,
                          int n)
{
    kvl_counter_t c = {0};
    uint64_t out;
    uint64_t total = start;
    unsigned wraps = 0;
    uint32_t x = 99;
    assert_int_equal(upd(&c, total, 32, 0, max_rate, false, &out), KVL_COUNTER_KNOWN);
    assert_int_equal(out, start);
    for (int i = 1; i <= n; i++) {
        x = x * 1103515245u + 12345u;
        uint64_t add = per_step - per_step / 32 + (x >> 8) % (per_step / 16 + 1);
        uint64_t before = total;
        total += add;
        if (total / W32 != before / W32) {
            wraps++;
        }
        kvl_counter_result_t r = upd(&c, total % W32, 32, i * step_ms, max_rate, false, &out);
        if (r != KVL_COUNTER_KNOWN || out != total) {
            fail_msg("poll %d: result %d, value %llu, expected %llu", i, r, (unsigned long long)out,
                     (unsigned long long)total);
        }
    }
    return wraps;
}

static void test_many_wraps(void **state)
{
    KVL_UNUSED(state);
    /* Without a bound: 1.5e9 per 60 s step (200 Mbit/s), under half the range each time. */
    unsigned w = run_wraps(3000000000ull, 1500000000ull, 60000, 0, 40);
    assert_true(w >= 10);
    /* With a 1 Gbit/s bound: 3e9 per 30 s (800 Mbit/s), over half the range each step. */
    w = run_wraps(7, 3000000000ull, 30000, GBIT_BYTES, 40);
    assert_true(w >= 25);
    /* Small steady increments for a long time (hours of 1-minute polls). */
    w = run_wraps(W32 - 1, 400000000ull, 60000, 0, 600);
    assert_true(w >= 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_reading),
        cmocka_unit_test(test_increase_64),
        cmocka_unit_test(test_wrap_32_no_bound),
        cmocka_unit_test(test_wrap_32_implausible_no_bound),
        cmocka_unit_test(test_wrap_32_with_bound),
        cmocka_unit_test(test_wrap_32_implausible_with_bound),
        cmocka_unit_test(test_reset_64),
        cmocka_unit_test(test_discontinuity),
        cmocka_unit_test(test_spike),
        cmocka_unit_test(test_many_wraps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
