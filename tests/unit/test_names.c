/*
 * test_names.c — unit tests for file-safe names (common/names.h).
 *
 * Checks the escaping of real interface names, the special cases (empty name, leading
 * dot, leading '_' kept free for kaaval's own files, '%' itself, bytes above 127), the
 * output-size contract, and that the mapping is one-to-one: distinct names never share a
 * file, checked on pairs chosen to collide under a careless scheme and by decoding every
 * output back to its name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kvl.h"
#include "names.h"

static void expect_safe_at(const char *name, const char *want, int line)
{
    char out[256];
    memset(out, 'Z', sizeof(out));
    int n = kvl_name_file_safe(name, out, sizeof(out));
    if (n < 0 || strcmp(out, want) != 0 || (size_t)n != strlen(want)) {
        fail_msg("line %d: '%s' -> rc %d '%s', expected '%s'", line, name, n, n < 0 ? "" : out,
                 want);
    }
}
#define expect_safe(name, want) expect_safe_at((name), (want), __LINE__)

/* Only letters, digits, '-', '_', '.', and '%' followed by two uppercase hex digits; no
 * '/', no leading '.' or '_', never empty. */
static void assert_file_safe(const char *s)
{
    assert_true(s[0] != '\0');
    assert_true(s[0] != '.');
    assert_true(s[0] != '_');
    for (size_t i = 0; s[i] != '\0'; i++) {
        char c = s[i];
        if (c == '%') {
            assert_true(strchr("0123456789ABCDEF", s[i + 1]) != NULL && s[i + 1] != '\0');
            assert_true(strchr("0123456789ABCDEF", s[i + 2]) != NULL && s[i + 2] != '\0');
            i += 2;
            continue;
        }
        assert_true((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.');
    }
}

static void test_interface_names(void **state)
{
    KVL_UNUSED(state);
    expect_safe("GigabitEthernet1/0/1", "GigabitEthernet1%2F0%2F1");
    expect_safe("ge-0/0/4.0", "ge-0%2F0%2F4.0");
    expect_safe("xe-1/2/3:1", "xe-1%2F2%2F3%3A1");
    expect_safe("Port-channel10", "Port-channel10");
    expect_safe("vlan_100", "vlan_100");
    expect_safe("Slot: 0 Port: 1 Gigabit - Level",
                "Slot%3A%200%20Port%3A%201%20Gigabit%20-%20Level");
    expect_safe("eth0", "eth0");
    expect_safe("a\\b", "a%5Cb");
    expect_safe("*?<>|\"'", "%2A%3F%3C%3E%7C%22%27");
    expect_safe("\t\n\x01\x7f", "%09%0A%01%7F");
}

static void test_dots(void **state)
{
    KVL_UNUSED(state);
    expect_safe(".hidden", "%2Ehidden");
    expect_safe(".", "%2E");
    expect_safe("..", "%2E.");
    expect_safe("../etc", "%2E.%2Fetc");
    expect_safe("a.b.", "a.b.");
    expect_safe("x..y", "x..y");
}

/* Names starting with '_' are kaaval's own (the agent's statistics live in "_agent"). */
static void test_underscore(void **state)
{
    KVL_UNUSED(state);
    expect_safe("_agent", "%5Fagent");
    expect_safe("_", "%5F");
    expect_safe("__x_", "%5F_x_");
    expect_safe("vlan_100", "vlan_100");
    expect_safe("a_", "a_");
}

static void test_percent_and_bytes(void **state)
{
    KVL_UNUSED(state);
    expect_safe("%", "%25");
    expect_safe("100%", "100%25");
    expect_safe("%2F", "%252F");
    expect_safe("caf\xc3\xa9", "caf%C3%A9"); /* UTF-8 é */
    expect_safe("caf\xe9", "caf%E9");        /* Latin-1 é */
    expect_safe("\xff\x80", "%FF%80");
    expect_safe("\xe2\x86\x92", "%E2%86%92"); /* → */
}

static void test_empty(void **state)
{
    KVL_UNUSED(state);
    char out[16];
    int n = kvl_name_file_safe("", out, sizeof(out));
    assert_int_equal(n, 3);
    assert_string_equal(out, "%00");
    assert_file_safe(out);
}

static void test_small_buffer(void **state)
{
    KVL_UNUSED(state);
    char out[8];
    /* "abc" needs 4 bytes with its terminator. */
    assert_int_equal(kvl_name_file_safe("abc", out, 3), KVL_EINVAL);
    assert_int_equal(kvl_name_file_safe("abc", out, 4), 3);
    assert_string_equal(out, "abc");
    /* "/" becomes three characters and needs 4 bytes. */
    assert_int_equal(kvl_name_file_safe("/", out, 3), KVL_EINVAL);
    assert_int_equal(kvl_name_file_safe("/", out, 4), 3);
    assert_string_equal(out, "%2F");
    assert_int_equal(kvl_name_file_safe("a/", out, 4), KVL_EINVAL);
    assert_int_equal(kvl_name_file_safe("a/", out, 5), 4);
    assert_int_equal(kvl_name_file_safe("x", out, 0), KVL_EINVAL);
    assert_int_equal(kvl_name_file_safe("x", out, 1), KVL_EINVAL);
    /* The empty name needs room for its replacement too. */
    char big[16];
    int n = kvl_name_file_safe("", big, sizeof(big));
    assert_true(n > 0);
    assert_int_equal(kvl_name_file_safe("", out, (size_t)n), KVL_EINVAL);
    assert_int_equal(kvl_name_file_safe("", out, (size_t)n + 1), n);
    /* "a b" becomes "a%20b": 6 bytes with the terminator. */
    char room[6];
    assert_int_equal(kvl_name_file_safe("a b", room, 5), KVL_EINVAL);
    assert_int_equal(kvl_name_file_safe("a b", room, sizeof(room)), 5);
    assert_string_equal(room, "a%20b");
}

/* Decodes a file-safe name back into the original. Returns the length or -1. */
static int decode(const char *s, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (o + 1 >= outlen) {
            return -1;
        }
        if (s[i] == '%') {
            unsigned v;
            if (sscanf(s + i + 1, "%2X", &v) != 1) {
                return -1;
            }
            out[o++] = (char)v;
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = '\0';
    return (int)o;
}

static void test_injective(void **state)
{
    KVL_UNUSED(state);
    /* Pairs a careless scheme would merge. */
    static const char *const names[] = {
        "",           "_",           "%00",       "%",       "%25",        "%2F",
        "/",          "a/b",         "a%2Fb",     "a_b",     "a b",        "a%20b",
        ".x",         "%2Ex",        "_x",        "x",       "X",          ".",
        "..",         "%2E",         "%2E.",      "..x",     "ge-0/0/4.0", "ge-0_0_4.0",
        "ge-0-0-4.0", "caf\xc3\xa9", "caf%C3%A9", "caf\xe9", "caf%E9",     "caf%e9",
        "Gi1/0/1",    "Gi1%2F0%2F1", "Gi1_0_1",   "\x7f",    "%7F",        "-",
        " ",          "%20",         "\t",        "__",      "%5F",        "_agent",
        "%5Fagent",   "agent",       "%5F_",
    };
    char outs[KVL_ARRAY_SIZE(names)][128];
    for (size_t i = 0; i < KVL_ARRAY_SIZE(names); i++) {
        int n = kvl_name_file_safe(names[i], outs[i], sizeof(outs[i]));
        assert_true(n > 0);
        assert_file_safe(outs[i]);
    }
    for (size_t i = 0; i < KVL_ARRAY_SIZE(names); i++) {
        for (size_t j = i + 1; j < KVL_ARRAY_SIZE(names); j++) {
            if (strcmp(outs[i], outs[j]) == 0) {
                fail_msg("'%s' and '%s' both become '%s'", names[i], names[j], outs[i]);
            }
        }
    }
    /* Every non-empty name decodes back to itself. */
    for (size_t i = 0; i < KVL_ARRAY_SIZE(names); i++) {
        if (names[i][0] == '\0') {
            continue;
        }
        char back[128];
        assert_true(decode(outs[i], back, sizeof(back)) >= 0);
        assert_string_equal(back, names[i]);
    }
    /* All 255 one-byte names and a sweep of two-byte names decode back to themselves. */
    for (unsigned a = 1; a < 256; a++) {
        for (unsigned b = 0; b < 256; b += (a % 17 == 0 ? 1 : 37)) {
            char name[3] = {(char)a, (char)b, '\0'};
            char out[16], back[8];
            assert_true(kvl_name_file_safe(name, out, sizeof(out)) > 0);
            assert_file_safe(out);
            assert_true(decode(out, back, sizeof(back)) >= 0);
            assert_string_equal(back, name);
        }
    }
}

static void test_check_length(void **state)
{
    KVL_UNUSED(state);
    char name[400], why[256] = "", out[1024];
    /* Plain characters: one byte each; KVL_NAME_FILE_MAX of them pass, one more does not. */
    memset(name, 'a', KVL_NAME_FILE_MAX);
    name[KVL_NAME_FILE_MAX] = '\0';
    assert_int_equal(kvl_name_check("interface", name, why, sizeof(why)), 0);
    assert_int_equal((int)kvl_name_file_len(name), kvl_name_file_safe(name, out, sizeof(out)));
    name[KVL_NAME_FILE_MAX] = 'a';
    name[KVL_NAME_FILE_MAX + 1] = '\0';
    assert_int_equal(kvl_name_check("interface", name, why, sizeof(why)), KVL_EINVAL);
    assert_non_null(strstr(why, "interface name of 251 bytes"));
    /* Escaped bytes count three: 84 slashes are 252 bytes as a file name. */
    memset(name, '/', 84);
    name[84] = '\0';
    assert_int_equal((int)kvl_name_file_len(name), kvl_name_file_safe(name, out, sizeof(out)));
    assert_int_equal(kvl_name_check("device", name, why, sizeof(why)), KVL_EINVAL);
    name[83] = '\0';
    assert_int_equal(kvl_name_check("device", name, NULL, 0), 0);
    assert_int_equal((int)kvl_name_file_len(""), 3);
    assert_int_equal((int)kvl_name_file_len("_x"), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_interface_names), cmocka_unit_test(test_dots),
        cmocka_unit_test(test_underscore),      cmocka_unit_test(test_percent_and_bytes),
        cmocka_unit_test(test_empty),           cmocka_unit_test(test_small_buffer),
        cmocka_unit_test(test_check_length),    cmocka_unit_test(test_injective),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
