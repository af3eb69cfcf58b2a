/*
 * test_log.c — the log's rate limiter: one line per interval (or a burst of a few), the count
 * of those left out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kvl.h"
#include "log.h"

static void test_limit(void **state)
{
    KVL_UNUSED(state);
    kvl_log_limit_t l = KVL_LOG_LIMIT_INIT(1000);
    uint64_t left = 99;
    assert_true(kvl_log_limit_pass(&l, 5000, &left));
    assert_int_equal(left, 0);
    for (uint64_t t = 5001; t < 6000; t += 100) {
        assert_false(kvl_log_limit_pass(&l, t, &left));
    }
    assert_true(kvl_log_limit_pass(&l, 6000, &left));
    assert_int_equal(left, 10);
    assert_false(kvl_log_limit_pass(&l, 6999, &left));
    assert_true(kvl_log_limit_pass(&l, 9000, &left));
    assert_int_equal(left, 1);
    /* A clock reading 0 still counts as a line written. */
    kvl_log_limit_t z = KVL_LOG_LIMIT_INIT(1000);
    assert_true(kvl_log_limit_pass(&z, 0, &left));
    assert_false(kvl_log_limit_pass(&z, 10, &left));
}

static void test_burst(void **state)
{
    KVL_UNUSED(state);
    kvl_log_limit_t l = KVL_LOG_LIMIT_BURST_INIT(1000, 3);
    uint64_t left = 99;
    assert_true(kvl_log_limit_pass(&l, 5000, &left));
    assert_int_equal(left, 0);
    assert_true(kvl_log_limit_pass(&l, 5001, &left));
    assert_true(kvl_log_limit_pass(&l, 5900, &left));
    assert_int_equal(left, 0);
    for (uint64_t t = 5901; t < 5999; t += 10) {
        assert_false(kvl_log_limit_pass(&l, t, &left));
    }
    /* The next interval begins with a line telling how many were left out, then its burst. */
    assert_true(kvl_log_limit_pass(&l, 6000, &left));
    assert_int_equal(left, 10);
    assert_true(kvl_log_limit_pass(&l, 6001, &left));
    assert_int_equal(left, 0);
    assert_true(kvl_log_limit_pass(&l, 6002, &left));
    assert_false(kvl_log_limit_pass(&l, 6003, &left));
    /* burst 0 means one per interval, as KVL_LOG_LIMIT_INIT */
    kvl_log_limit_t z = KVL_LOG_LIMIT_BURST_INIT(1000, 0);
    assert_true(kvl_log_limit_pass(&z, 100, &left));
    assert_false(kvl_log_limit_pass(&z, 200, &left));
}

static void test_limited_line(void **state)
{
    KVL_UNUSED(state);
    kvl_log_limit_t l = KVL_LOG_LIMIT_INIT(60000);
    int saved = kvl_log_level;
    kvl_log_level = KVL_LOG_LEVEL_ERROR;
    /* Below the level nothing is counted: the macro does not call in. */
    KVL_LOG_LIMITED(KVL_LOG_LEVEL_DEBUG, &l, "test", NULL, "not written %d", 1);
    assert_int_equal(l.last_ms, 0);
    KVL_LOG_LIMITED(KVL_LOG_LEVEL_ERROR, &l, "test", "x", "written %d", 2);
    assert_true(l.last_ms != 0);
    KVL_LOG_LIMITED(KVL_LOG_LEVEL_ERROR, &l, "test", "x", "left out %d", 3);
    assert_int_equal(l.left_out, 1);
    kvl_log_level = saved;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit),
        cmocka_unit_test(test_burst),
        cmocka_unit_test(test_limited_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
