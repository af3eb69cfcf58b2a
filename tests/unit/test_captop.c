/*
 * test_captop.c — common/captop.c: top lists and records written and parsed back (IPv4 and
 * IPv6, empty lists, the largest numbers, the longest record), and every kind of refusal:
 * bad addresses, numbers, parts, separators, too many entries, an error above its bytes,
 * times out of order, a NUL inside; every prefix of a good record parsed without reading
 * beyond it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "captop.h"
#include "kvl.h"

static kvl_captop_entry_t entry(const char *a, const char *b, uint64_t bytes, uint64_t err,
                                uint64_t packets)
{
    kvl_captop_entry_t e;
    memset(&e, 0, sizeof(e));
    snprintf(e.a, sizeof(e.a), "%s", a);
    snprintf(e.b, sizeof(e.b), "%s", b);
    e.bytes = bytes;
    e.err = err;
    e.packets = packets;
    return e;
}

static void test_lists(void **state)
{
    KVL_UNUSED(state);
    kvl_captop_entry_t in[2] = {entry("10.1.0.5", "", 1000, 0, 10),
                                entry("2001:db8::1", "", 900, 5, 9)};
    char buf[KVL_CAPTOP_LIST_LEN];
    int n = kvl_captop_list_format(in, 2, false, buf, sizeof(buf));
    assert_string_equal(buf, "10.1.0.5 1000 0 10,2001:db8::1 900 5 9");
    assert_int_equal(n, (int)strlen(buf));
    kvl_captop_entry_t out[KVL_CAPTOP_MAX];
    assert_int_equal(kvl_captop_list_parse(buf, false, out, KVL_CAPTOP_MAX), 2);
    assert_string_equal(out[1].a, "2001:db8::1");
    assert_int_equal(out[1].err, 5);
    assert_int_equal(out[1].packets, 9);
    assert_int_equal(kvl_captop_list_parse("", false, out, KVL_CAPTOP_MAX), 0);
    assert_int_equal(kvl_captop_list_format(in, 0, false, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");

    kvl_captop_entry_t c = entry("10.0.0.1", "10.0.0.2", UINT64_MAX, UINT64_MAX, UINT64_MAX);
    assert_true(kvl_captop_list_format(&c, 1, true, buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "10.0.0.1 10.0.0.2 18446744073709551615 18446744073709551615 "
                             "18446744073709551615");
    assert_int_equal(kvl_captop_list_parse(buf, true, out, 1), 1);
    assert_int_equal(out[0].bytes, UINT64_MAX);
    /* too small a buffer, a missing address */
    assert_int_equal(kvl_captop_list_format(&c, 1, true, buf, 20), KVL_EINVAL);
    assert_string_equal(buf, "");
    assert_int_equal(kvl_captop_list_format(&c, 1, false, buf, sizeof(buf)), 8 + 3 * 21);
    kvl_captop_entry_t nob = entry("10.0.0.1", "", 1, 0, 1);
    assert_int_equal(kvl_captop_list_format(&nob, 1, true, buf, sizeof(buf)), KVL_EINVAL);
}

static void test_refusals(void **state)
{
    KVL_UNUSED(state);
    static const char *const bad_hosts[] = {
        "10.0.0.1 1 0",                      /* a part missing */
        "10.0.0.1 1 0 1 2",                  /* an extra part */
        "10.0.0.256 1 0 1",                  /* not an address */
        "host 1 0 1",                        /* a name */
        "10.0.0.1 -1 0 1",                   /* a sign */
        "10.0.0.1 1x 0 1",                   /* not decimal */
        "10.0.0.1 18446744073709551616 0 1", /* above 2^64 - 1 */
        "10.0.0.1 5 6 1",                    /* error above bytes */
        "10.0.0.1  1 0 1",                   /* an empty part */
        "10.0.0.1 1 0 1,",                   /* an empty entry */
        ",10.0.0.1 1 0 1",
        "10.0.0.1 1 0 1 ",
        "2001:db8::1::2 1 0 1",
        "10.0.0.1 000000000000000000001 0 1", /* 21 digits */
    };
    kvl_captop_entry_t out[KVL_CAPTOP_MAX];
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad_hosts); i++) {
        if (kvl_captop_list_parse(bad_hosts[i], false, out, KVL_CAPTOP_MAX) != KVL_EDECODE) {
            fail_msg("accepted \"%s\"", bad_hosts[i]);
        }
    }
    assert_int_equal(kvl_captop_list_parse("10.0.0.1 1 0 1", true, out, KVL_CAPTOP_MAX),
                     KVL_EDECODE);
    /* more entries than room */
    char many[KVL_CAPTOP_LIST_LEN * 2] = "";
    for (int i = 0; i <= KVL_CAPTOP_MAX; i++) {
        char one[64];
        snprintf(one, sizeof(one), "%s10.0.0.%d 1 0 1", i ? "," : "", i + 1);
        strcat(many, one);
    }
    assert_int_equal(kvl_captop_list_parse(many, false, out, KVL_CAPTOP_MAX), KVL_EDECODE);
    assert_int_equal(kvl_captop_list_parse(strchr(many, ',') + 1, false, out, KVL_CAPTOP_MAX),
                     KVL_CAPTOP_MAX);
    assert_int_equal(kvl_captop_list_parse(many, false, out, 2), KVL_EDECODE);
}

static void test_lines(void **state)
{
    KVL_UNUSED(state);
    kvl_captop_t t, u;
    memset(&t, 0, sizeof(t));
    t.start_ms = 1700000000000;
    t.end_ms = 1700000060000;
    t.n_hosts = KVL_CAPTOP_MAX;
    t.n_convs = KVL_CAPTOP_MAX;
    for (size_t i = 0; i < KVL_CAPTOP_MAX; i++) {
        /* the longest addresses and numbers: the longest record */
        t.hosts[i] = entry("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", "", UINT64_MAX,
                           UINT64_MAX, UINT64_MAX);
        t.convs[i] =
            entry("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
                  "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.254", UINT64_MAX, 0, UINT64_MAX);
    }
    char line[KVL_CAPTOP_LINE_LEN];
    int n = kvl_captop_line_format(&t, line, sizeof(line));
    assert_true(n > 0);
    assert_int_equal(kvl_captop_line_parse(line, (size_t)n, &u), 0);
    assert_int_equal(u.start_ms, t.start_ms);
    assert_int_equal(u.end_ms, t.end_ms);
    assert_int_equal(u.n_hosts, KVL_CAPTOP_MAX);
    assert_int_equal(u.n_convs, KVL_CAPTOP_MAX);
    assert_string_equal(u.convs[19].b, t.convs[19].b);
    /* every prefix of it, from an exact-size heap copy: refused or parsed, never read
     * beyond */
    for (size_t k = 0; k < (size_t)n; k++) {
        char *cp = malloc(k ? k : 1);
        assert_non_null(cp);
        memcpy(cp, line, k);
        int rc = kvl_captop_line_parse(cp, k, &u);
        assert_true(rc == 0 || rc == KVL_EDECODE);
        free(cp);
    }
    /* empty lists */
    t.n_hosts = t.n_convs = 0;
    n = kvl_captop_line_format(&t, line, sizeof(line));
    assert_string_equal(line, "1700000000000 1700000060000||");
    assert_int_equal(kvl_captop_line_parse(line, (size_t)n, &u), 0);
    assert_int_equal(u.n_hosts, 0);
    static const char *const bad[] = {
        "1 2|10.0.0.1 1 0 1",                /* one bar */
        "1 2|10.0.0.1 1 0 1||",              /* three */
        "2 1||",                             /* end before start */
        "1|10.0.0.1 1 0 1|",                 /* no end */
        "1 2 3||",                           /* not a number */
        "a 2||",                             /* not a number */
        "1 2|10.0.0.1 1 0 1|10.0.0.1 1 0 1", /* a host as a conversation */
        "1 9223372036854775808||",           /* beyond int64 */
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        if (kvl_captop_line_parse(bad[i], strlen(bad[i]), &u) != KVL_EDECODE) {
            fail_msg("accepted \"%s\"", bad[i]);
        }
    }
    char nul[] = "1 2|10.0.0.1\0x 1 0 1|";
    assert_int_equal(kvl_captop_line_parse(nul, sizeof(nul) - 1, &u), KVL_EDECODE);
    /* refused to write: more entries than the bound, times out of order */
    t.n_hosts = KVL_CAPTOP_MAX + 1;
    assert_int_equal(kvl_captop_line_format(&t, line, sizeof(line)), KVL_EINVAL);
    t.n_hosts = 0;
    t.end_ms = t.start_ms - 1;
    assert_int_equal(kvl_captop_line_format(&t, line, sizeof(line)), KVL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lists),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
