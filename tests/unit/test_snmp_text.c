/*
 * test_snmp_text.c — unit tests for SNMP strings as names and labels
 * (agent/snmp/snmp_text.h): valid UTF-8 kept, each byte that starts no valid sequence
 * (truncated, overlong, surrogate, above U+10FFFF, stray continuation) replaced by '?',
 * control characters as spaces, the cut at NUL and the trimming; every output is valid
 * UTF-8 without control characters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "snmp_text.h"

/* Cleans the n bytes at s and compares with want. */
static void check(const char *s, size_t n, const char *want)
{
    char *got = kvl_snmp_text_clean((const uint8_t *)s, n);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

#define CHECK(lit, want) check(lit, sizeof(lit) - 1, want)

static void test_ascii(void **state)
{
    (void)state;
    CHECK("GigabitEthernet0/1", "GigabitEthernet0/1");
    CHECK("", "");
    check("ignored", 0, "");
}

static void test_multibyte_kept(void **state)
{
    (void)state;
    CHECK("caf\xc3\xa9", "caf\xc3\xa9");                                  /* U+00E9, 2 bytes */
    CHECK("\xe0\xb4\x95\xe0\xb4\xbe\xe0\xb4\xb5\xe0\xb4\xb2\xe0\xb5\x8d", /* Malayalam */
          "\xe0\xb4\x95\xe0\xb4\xbe\xe0\xb4\xb5\xe0\xb4\xb2\xe0\xb5\x8d");
    CHECK("\xf0\x9f\x93\xa1 link", "\xf0\x9f\x93\xa1 link"); /* U+1F4E1, 4 bytes */
    CHECK("\xed\x9f\xbf", "\xed\x9f\xbf");                   /* U+D7FF, below surrogates */
    CHECK("\xee\x80\x80", "\xee\x80\x80");                   /* U+E000, above them */
    CHECK("\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf");           /* U+10FFFF, the last */
    CHECK("\xc2\xa0x", "\xc2\xa0x");                         /* NBSP is no ASCII space */
}

static void test_truncated(void **state)
{
    (void)state;
    CHECK("ab\xc3", "ab?");             /* 2-byte sequence cut at the end */
    CHECK("ab\xe2\x82", "ab??");        /* 3-byte cut: each byte on its own */
    CHECK("\xe2\x82x", "??x");          /* interrupted by ASCII */
    CHECK("\xf0\x9f\x93", "???");       /* 4-byte cut */
    CHECK("\xc3\xc3\xa9", "?\xc3\xa9"); /* a lead byte then a whole sequence */
}

static void test_invalid(void **state)
{
    (void)state;
    CHECK("\xc0\xaf", "??");           /* overlong '/' */
    CHECK("\xc1\xbf", "??");           /* overlong */
    CHECK("\xe0\x80\xaf", "???");      /* overlong 3-byte */
    CHECK("\xf0\x80\x80\xaf", "????"); /* overlong 4-byte */
    CHECK("\xed\xa0\x80", "???");      /* surrogate U+D800 */
    CHECK("\xf4\x90\x80\x80", "????"); /* U+110000 */
    CHECK("\xf5\x80\x80\x80", "????"); /* no such lead byte */
    CHECK("a\x80\xbf"
          "b",
          "a??b");           /* stray continuation bytes */
    CHECK("\xfe\xff", "??"); /* never in UTF-8 */
    CHECK("Port \xa0"
          "1",
          "Port ?1"); /* Latin-1 NBSP */
}

static void test_controls_and_trim(void **state)
{
    (void)state;
    CHECK("a\tb\r\nc", "a b  c");
    CHECK("x\x7fy", "x y");
    CHECK("  \t uplink to BHQ \x01\n", "uplink to BHQ");
    CHECK(" \t\r\n ", "");
    CHECK("\xc3 ", "?");
    CHECK("\xc2\x85x", "\xc2\x85x"); /* C1 (U+0085) is valid UTF-8 and kept */
}

static void test_nul(void **state)
{
    (void)state;
    CHECK("eth0\0garbage", "eth0");
    CHECK("\0eth0", "");
    CHECK("ab\xc3\0\xa9", "ab?"); /* the cut comes before the sequence check */
}

/* Every output of arbitrary bytes is valid UTF-8 with no control characters, no longer
 * than the input, and untouched by a second cleaning. */
static void test_properties(void **state)
{
    (void)state;
    uint32_t x = 12345;
    uint8_t buf[24];
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(round % (int)sizeof(buf));
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            uint8_t b = (uint8_t)(x >> 16);
            /* mostly high bytes, where UTF-8 goes wrong */
            buf[i] = (x & 0x100) ? (uint8_t)(b | 0x80) : b;
        }
        char *a = kvl_snmp_text_clean(buf, n);
        assert_non_null(a);
        size_t len = strlen(a);
        assert_true(len <= n);
        char *b = kvl_snmp_text_clean((const uint8_t *)a, len);
        assert_non_null(b);
        assert_string_equal(a, b);
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)a[i];
            assert_true(c >= 0x20 && c != 0x7f);
        }
        assert_true(len == 0 || (a[0] != ' ' && a[len - 1] != ' '));
        free(a);
        free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii),
        cmocka_unit_test(test_multibyte_kept),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_controls_and_trim),
        cmocka_unit_test(test_nul),
        cmocka_unit_test(test_properties),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
