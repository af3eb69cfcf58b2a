/*
 * test_downstate.c — the agent's down-state file (common/downstate.h): a round trip through
 * the file (set, clear, retain, written after the delay and at free, read back by a new
 * state), the atomic replacement (no temporary file left), damaged files (cut short, a byte
 * changed, a wrong count, garbage, a folder in its place, bytes after the end) ignored with
 * everything unknown and replaced at the next change, never a crash, and the parser's
 * answers on its own; the format version (a newer file ignored with a warning saying so, and
 * written again in this format).
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
#include <uv.h>

#include "capture_stderr.h"
#include "crc32c.h"
#include "downstate.h"
#include "kvl.h"

static char dir[64];
static char path[128];

static int setup(void **state)
{
    KVL_UNUSED(state);
    snprintf(dir, sizeof(dir), "/tmp/kvl_downstate_XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/devices.state", dir);
    return 0;
}

static int teardown(void **state)
{
    KVL_UNUSED(state);
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    unlink(tmp);
    unlink(path);
    rmdir(path); /* the test that put a folder there */
    assert_int_equal(rmdir(dir), 0);
    return 0;
}

static kvl_downstate_t *open_state(uv_loop_t *loop)
{
    kvl_downstate_t *s = NULL;
    char err[256];
    assert_int_equal(kvl_downstate_new(loop, path, "device state", &s, err, sizeof(err)), 0);
    assert_non_null(s);
    return s;
}

static void close_state(uv_loop_t *loop, kvl_downstate_t *s)
{
    kvl_downstate_free(s);
    uv_run(loop, UV_RUN_DEFAULT);
}

static char *slurp(size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    static char buf[65536];
    *len = fread(buf, 1, sizeof(buf) - 1, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

static void put(const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
}

static void test_round_trip(void **state)
{
    KVL_UNUSED(state);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kvl_downstate_t *s = open_state(&loop); /* no file: empty */
    assert_int_equal(kvl_downstate_count(s), 0);
    kvl_downstate_set(s, "core-sw1", 1, 1700000000123);
    kvl_downstate_set(s, "edge router 2", 2, 1700000001000);
    kvl_downstate_set(s, "gone", 4, 5);
    kvl_downstate_set(s, "bad\nname", 1, 5); /* not kept: no line could hold it */
    assert_int_equal(kvl_downstate_count(s), 3);
    /* Written after the delay, by the loop. */
    struct stat st;
    assert_int_not_equal(stat(path, &st), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(stat(path, &st), 0);
    size_t len = 0;
    const char *text = slurp(&len);
    assert_non_null(text);
    assert_non_null(strstr(text, "1700000000123 1 core-sw1\n"));
    assert_non_null(strstr(text, "1700000001000 2 edge router 2\n"));
    /* Changes after the write, then free: written at free. */
    kvl_downstate_clear(s, "core-sw1");
    kvl_downstate_set(s, "edge router 2", 1, 1700000001000);
    const char *names[] = {"core-sw1", "edge router 2", "another"};
    assert_int_equal(kvl_downstate_retain(s, names, 3), 1); /* "gone" */
    close_state(&loop, s);
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_not_equal(stat(tmp, &st), 0);

    s = open_state(&loop);
    assert_int_equal(kvl_downstate_count(s), 1);
    int reason = 0;
    int64_t since = 0;
    assert_false(kvl_downstate_get(s, "core-sw1", &reason, &since));
    assert_false(kvl_downstate_get(s, "gone", &reason, &since));
    assert_true(kvl_downstate_get(s, "edge router 2", &reason, &since));
    assert_int_equal(reason, 1);
    assert_int_equal(since, 1700000001000);
    /* Nothing changed: nothing written (the file's time stays). */
    struct stat before;
    assert_int_equal(stat(path, &before), 0);
    kvl_downstate_set(s, "edge router 2", 1, 1700000001000);
    close_state(&loop, s);
    struct stat after;
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Damaged files: ignored (everything unknown), replaced by an intact one soon. */
static void test_damaged(void **state)
{
    KVL_UNUSED(state);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kvl_downstate_t *s = open_state(&loop);
    kvl_downstate_set(s, "a", 1, 100);
    kvl_downstate_set(s, "b", 3, 200);
    close_state(&loop, s);
    size_t len = 0;
    char good[4096];
    const char *text = slurp(&len);
    assert_true(len > 0 && len < sizeof(good));
    memcpy(good, text, len);
    const size_t good_len = len;

    char bad[4096];
    struct {
        const char *what;
        size_t len;
        int change; /* byte to flip, -1 none */
    } cases[] = {
        {"cut short", len - 5, -1},    {"cut before the end line", len - 20, -1},
        {"a byte changed", len, 22},   {"empty", 0, -1},
        {"the magic changed", len, 3},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(cases); i++) {
        memcpy(bad, good, good_len);
        if (cases[i].change >= 0) {
            bad[cases[i].change] ^= 0x01;
        }
        put(bad, cases[i].len);
        s = open_state(&loop);
        if (kvl_downstate_count(s) != 0) {
            fail_msg("%s: %zu entries loaded", cases[i].what, kvl_downstate_count(s));
        }
        close_state(&loop, s); /* replaced by an intact, empty file */
        const char *now = slurp(&len);
        assert_non_null(now);
        assert_non_null(strstr(now, "end 0 "));
    }
    /* Garbage, bytes after the end, a wrong count. */
    const char *texts[] = {
        "\x00\x01\x02garbage",
        "kaaval-downstate 1\n100 1 a\nend 2 00000000\n",
        "kaaval-downstate 1\n100 x a\nend 1 00000000\n",
        "kaaval-downstate 1\n100 1 a\n",
        "kaaval-downstate 1\n99999999999999999999999 1 a\nend 1 00000000\n",
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(texts); i++) {
        put(texts[i], i == 0 ? 10 : strlen(texts[i]));
        s = open_state(&loop);
        assert_int_equal(kvl_downstate_count(s), 0);
        close_state(&loop, s);
    }
    memcpy(bad, good, good_len);
    memcpy(bad + good_len, "x\n", 2);
    put(bad, good_len + 2);
    s = open_state(&loop);
    assert_int_equal(kvl_downstate_count(s), 0);
    close_state(&loop, s);
    /* A folder where the file should be: nothing loaded, writes fail (logged), no crash. */
    unlink(path);
    assert_int_equal(mkdir(path, 0755), 0);
    s = open_state(&loop);
    assert_int_equal(kvl_downstate_count(s), 0);
    kvl_downstate_set(s, "a", 1, 1);
    assert_true(kvl_downstate_flush(s) < 0);
    close_state(&loop, s);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void on_entry(void *arg, const char *name, size_t len, int reason, int64_t since)
{
    char *out = arg;
    size_t at = strlen(out);
    snprintf(out + at, 256 - at, "[%.*s %d %lld]", (int)len, name, reason, (long long)since);
}

/* The parser alone: what an intact file gives, what it refuses and why. */
static void test_parse(void **state)
{
    KVL_UNUSED(state);
    char got[256] = "";
    const char *why = NULL;
    /* crc32c of "kaaval-downstate 1\n-5 0 x y\n" */
    char text[200];
    const char *body = "kaaval-downstate 1\n-5 0 x y\n";
    snprintf(text, sizeof(text), "%send 1 %08x\n", body,
             (unsigned)kvl_crc32c(0, body, strlen(body)));
    assert_int_equal(kvl_downstate_parse(text, strlen(text), on_entry, got, &why), 1);
    assert_string_equal(got, "[x y 0 -5]");
    text[strlen(text) - 2] ^= 1; /* the checksum's last digit */
    got[0] = '\0';
    assert_int_equal(kvl_downstate_parse(text, strlen(text), on_entry, got, &why), -1);
    assert_non_null(why);
    assert_int_equal(kvl_downstate_parse("kaaval-downstate 1\n", 19, on_entry, got, &why), -1);
    assert_int_equal(kvl_downstate_parse("", 0, on_entry, got, &why), -1);
}

/* A file of a newer format, intact otherwise: not read (its lines could mean something
 * else), one warning saying so, everything unknown, written again in this format. */
static void test_newer_format(void **state)
{
    KVL_UNUSED(state);
    char text[256];
    int n = snprintf(text, sizeof(text), "kaaval-downstate %u\n100 1 a\n",
                     KVL_DOWNSTATE_FORMAT_VERSION + 1);
    snprintf(text + n, sizeof(text) - (size_t)n, "end 1 %08x\n",
             (unsigned)kvl_crc32c(0, text, (size_t)n));
    put(text, strlen(text));
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char logp[160], logged[2000], want[300];
    snprintf(logp, sizeof(logp), "%s.log", path);
    capture_t cap;
    assert_int_equal(capture_begin(&cap, logp), 0);
    kvl_downstate_t *s = open_state(&loop);
    capture_end(&cap, logged, sizeof(logged));
    unlink(logp);
    assert_int_equal(kvl_downstate_count(s), 0);
    snprintf(want, sizeof(want),
             "written by a newer kaaval (format %u; this one reads up to %u): ignored, "
             "everything starts unknown",
             KVL_DOWNSTATE_FORMAT_VERSION + 1, KVL_DOWNSTATE_FORMAT_VERSION);
    assert_non_null(strstr(logged, want));
    close_state(&loop, s);
    size_t len = 0;
    const char *now = slurp(&len);
    snprintf(want, sizeof(want), "kaaval-downstate %u\nend 0 ", KVL_DOWNSTATE_FORMAT_VERSION);
    assert_non_null(now);
    assert_memory_equal(now, want, strlen(want));
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_format, setup, teardown),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
