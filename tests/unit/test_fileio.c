/*
 * test_fileio.c — the shared file helpers (common/fileio.h): a file replaced whole (content,
 * mode, no temporary file left, the old file untouched when the temporary one cannot be made,
 * nothing made when the folder is gone), the sentence
 * a newer format version is refused with (what to do, both versions, the program, the path),
 * older and equal versions accepted, and the text header line's version.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "kvl.h"
#include "newer_format.h"

static char dir[64];

static int setup(void **state)
{
    KVL_UNUSED(state);
    snprintf(dir, sizeof(dir), "/tmp/kvl_fileio_XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    KVL_UNUSED(state);
    char p[160];
    snprintf(p, sizeof(p), "%s/f", dir);
    unlink(p);
    assert_int_equal(rmdir(dir), 0);
    return 0;
}

/* Fails unless path holds exactly the n bytes at want. */
static void expect_content(const char *path, const char *want, size_t n)
{
    file_bytes_t b = file_bytes(path);
    assert_int_equal(b.n, n);
    assert_memory_equal(b.p, want, n);
    free(b.p);
}

static void test_replace(void **state)
{
    KVL_UNUSED(state);
    char path[160], tmp[170];
    snprintf(path, sizeof(path), "%s/f", dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_equal(kvl_file_replace(path, "first\n", 6, 0640), 0);
    expect_content(path, "first\n", 6);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    /* Replaced by a shorter content: nothing of the old one stays. */
    assert_int_equal(kvl_file_replace(path, "2\n", 2, 0600), 0);
    expect_content(path, "2\n", 2);
    assert_int_not_equal(access(tmp, F_OK), 0);
    /* Empty content is a file of 0 bytes. */
    assert_int_equal(kvl_file_replace(path, "", 0, 0600), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
    /* The temporary file cannot be made (a folder in its place): an error, the file as it
     * was. */
    assert_int_equal(kvl_file_replace(path, "kept", 4, 0600), 0);
    assert_int_equal(mkdir(tmp, 0700), 0);
    file_bytes_t before = file_bytes(path);
    assert_true(kvl_file_replace(path, "lost", 4, 0600) < 0);
    expect_file_unchanged(path, &before);
    assert_int_equal(rmdir(tmp), 0);
    /* A folder that is not there: an error, nothing made. */
    char gone[200];
    snprintf(gone, sizeof(gone), "%s/no/such/f", dir);
    assert_true(kvl_file_replace(gone, "x", 1, 0600) < 0);
    assert_int_not_equal(access(gone, F_OK), 0);
}

static void test_format_check(void **state)
{
    KVL_UNUSED(state);
    char why[600] = "";
    /* Without a version (0), older and equal: read. */
    assert_int_equal(kvl_format_check("/d/x", 0, 2, "kaaval-collector", "lost", why, sizeof(why)),
                     0);
    assert_int_equal(kvl_format_check("/d/x", 1, 2, "kaaval-collector", "lost", why, sizeof(why)),
                     0);
    assert_int_equal(kvl_format_check("/d/x", 2, 2, "kaaval-collector", "lost", why, sizeof(why)),
                     0);
    assert_string_equal(why, "");
    /* Newer: refused with the one sentence. */
    assert_int_equal(kvl_format_check("/var/lib/kaaval/_alerts/book.snap", 3, 2, "kaaval-collector",
                                      "its alert history is then lost", why, sizeof(why)),
                     KVL_EPROTO);
    assert_string_equal(why, "/var/lib/kaaval/_alerts/book.snap: written by a newer kaaval "
                             "(format 3; this kaaval-collector reads up to 2): run the newer "
                             "kaaval-collector, or move /var/lib/kaaval/_alerts/book.snap aside "
                             "to start afresh (its alert history is then lost)");
    expect_newer_sentence(why, "/var/lib/kaaval/_alerts/book.snap", 3, 2, "kaaval-collector");
    assert_int_equal(kvl_format_check("s", UINT32_MAX, 1, "kaaval-agent", "x", why, sizeof(why)),
                     KVL_EPROTO);
    assert_non_null(strstr(why, "format 4294967295; this kaaval-agent reads up to 1"));
    /* A short buffer is cut, never overrun. */
    char small[8];
    memset(small, 'z', sizeof(small));
    assert_int_equal(kvl_format_check("p", 5, 1, "kaaval-agent", "x", small, 4), KVL_EPROTO);
    assert_string_equal(small, "p: ");
    assert_int_equal(small[4], 'z');
}

static void test_text_header(void **state)
{
    KVL_UNUSED(state);
    uint32_t v = 0;
    const char *ok = "kaaval-downstate 1";
    assert_int_equal(kvl_format_text_header(ok, strlen(ok), "kaaval-downstate", &v), 0);
    assert_int_equal(v, 1);
    const char *big = "kaaval agents 4294967295";
    assert_int_equal(kvl_format_text_header(big, strlen(big), "kaaval agents", &v), 0);
    assert_int_equal(v, UINT32_MAX);
    static const char *const bad[] = {
        "kaaval agents",    "kaaval agents ",
        "kaaval agents 0",  "kaaval agents 1x",
        "kaaval agents -1", "kaaval agents 4294967296",
        "kaaval agentsX 1", "other 1",
        "kaaval agents  1", "kaaval agents 99999999999",
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        v = 7;
        assert_int_equal(kvl_format_text_header(bad[i], strlen(bad[i]), "kaaval agents", &v), -1);
        assert_int_equal(v, 7);
    }
    /* Only the n bytes given are read: the line's newline is not part of it. */
    const char *line = "kaaval agents 2\nrest";
    assert_int_equal(kvl_format_text_header(line, 15, "kaaval agents", &v), 0);
    assert_int_equal(v, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
        cmocka_unit_test(test_format_check),
        cmocka_unit_test(test_text_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
