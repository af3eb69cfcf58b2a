/*
 * test_spool.c — unit tests for the agent's disk spool (agent/spool.h).
 *
 * Each test works in its own folder under /tmp. Payloads carry their sequence number and
 * bytes derived from it, so every read is checked for order and content. Tests that damage
 * files rely on the on-disk format spool.h describes: a 16-byte segment header, then
 * records of a 16-byte header (length, CRC, seq) and the payload. With 100-byte payloads
 * a record takes 116 bytes and a 1024-byte segment holds 8 of them (16 + 8 * 116 = 944).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "newer_format.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "buf.h"
#include "crc32c.h"
#include "kvl.h"
#include "log.h"
#include "spool.h"

#define SEG 1024u
#define LEN 100u
#define REC (16u + LEN)
#define PER_SEG 8u

static size_t g_fixed_len = LEN; /* 0: the length varies with seq */

static size_t len_for(uint64_t seq)
{
    return g_fixed_len ? g_fixed_len : 8 + (size_t)(seq * 37 % 300);
}

static void fill(uint8_t *p, uint64_t seq, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = i < 8 ? (uint8_t)(seq >> (8 * i)) : (uint8_t)(seq * 131 + i * 7);
    }
}

static char *make_dir(void)
{
    char *d = strdup("/tmp/kvl-spool-test-XXXXXX");
    assert_non_null(mkdtemp(d));
    return d;
}

static void remove_dir(char *d)
{
    DIR *dp = opendir(d);
    if (dp != NULL) {
        struct dirent *e;
        while ((e = readdir(dp)) != NULL) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                unlinkat(dirfd(dp), e->d_name, 0);
            }
        }
        closedir(dp);
    }
    rmdir(d);
    free(d);
}

static kvl_spool_t *open_n(const char *dir, uint64_t max, const char *const *readers, size_t n)
{
    kvl_spool_opts_t o = {.dir = dir,
                          .max_bytes = max,
                          .segment_bytes = SEG,
                          .sync_interval_ms = -1,
                          .readers = readers,
                          .n_readers = n};
    kvl_spool_t *sp = NULL;
    char err[512];
    int rc = kvl_spool_open(&o, &sp, err, sizeof(err));
    if (rc != 0) {
        fail_msg("open %s: %s (%s)", dir, err, kvl_strerror(rc));
    }
    return sp;
}

static const char *const one_reader[] = {"primary"};

static kvl_spool_t *open1(const char *dir, uint64_t max)
{
    return open_n(dir, max, one_reader, 1);
}

static void append_range(kvl_spool_t *sp, uint64_t from, uint64_t to)
{
    uint8_t p[400];
    for (uint64_t s = from; s <= to; s++) {
        size_t len = len_for(s);
        fill(p, s, len);
        assert_int_equal(kvl_spool_append(sp, s, p, len), 0);
    }
}

/* Reads records from..to, each the next one in order with its own content. Returns how
 * many (to - from + 1, or 0 when from > to). */
static uint64_t expect_range(kvl_spool_t *sp, int reader, uint64_t from, uint64_t to)
{
    kvl_buf_t b = {0};
    uint8_t want[400];
    uint64_t seq, n = 0;
    for (uint64_t next = from; next <= to; next++) {
        int rc = kvl_spool_read(sp, reader, &seq, &b);
        if (rc != 1) {
            fail_msg("read returned %d, expected record %llu", rc, (unsigned long long)next);
        }
        if (seq != next) {
            fail_msg("read seq %llu, expected %llu", (unsigned long long)seq,
                     (unsigned long long)next);
        }
        size_t len = len_for(seq);
        assert_int_equal(b.len, len);
        fill(want, seq, len);
        assert_memory_equal(b.data, want, len);
        n++;
    }
    kvl_buf_free(&b);
    return n;
}

/* The reader has read everything. */
static void expect_end(kvl_spool_t *sp, int reader)
{
    kvl_buf_t b = {0};
    uint64_t seq = 0;
    int rc = kvl_spool_read(sp, reader, &seq, &b);
    if (rc != 0) {
        fail_msg("expected the end, read returned %d (seq %llu)", rc, (unsigned long long)seq);
    }
    kvl_buf_free(&b);
}

/* Records from..to and then the end. */
static uint64_t expect_all(kvl_spool_t *sp, int reader, uint64_t from, uint64_t to)
{
    uint64_t n = expect_range(sp, reader, from, to);
    expect_end(sp, reader);
    return n;
}

static size_t count_segment_files(const char *dir)
{
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) != NULL) {
        size_t l = strlen(e->d_name);
        n += l > 4 && strcmp(e->d_name + l - 4, ".seg") == 0;
    }
    closedir(dp);
    return n;
}

static void seg_path(char *out, size_t n, const char *dir, uint64_t first)
{
    snprintf(out, n, "%s/%016llx.seg", dir, (unsigned long long)first);
}

static off_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

/* ------------------------------------------------------------------------------------------ */

static void test_crc32c(void **state)
{
    KVL_UNUSED(state);
    assert_int_equal(kvl_crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(kvl_crc32c(kvl_crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    assert_int_equal(kvl_crc32c(0, "", 0), 0);
}

static void test_round_trip(void **state)
{
    KVL_UNUSED(state);
    char *dir = make_dir();
    g_fixed_len = 0;
    kvl_spool_t *sp = open1(dir, 1 << 20);
    assert_int_equal(kvl_spool_last_seq(sp), 0);
    uint64_t seq;
    kvl_buf_t b = {0};
    assert_int_equal(kvl_spool_read(sp, 0, &seq, &b), 0);
    append_range(sp, 1, 500);
    assert_int_equal(expect_all(sp, 0, 1, 500), 500);
    kvl_spool_stats_t st;
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.records, 500);
    assert_true(st.segments > 20);
    assert_int_equal(st.segments, count_segment_files(dir));
    assert_int_equal(st.dropped_records, 0);
    assert_int_equal(st.cut_bytes, 0);
    /* Caught up; new records are read as they come. */
    append_range(sp, 501, 503);
    assert_int_equal(expect_all(sp, 0, 501, 503), 3);
    /* Rewind without acks: everything again. */
    kvl_spool_rewind(sp, 0);
    assert_int_equal(expect_all(sp, 0, 1, 503), 503);
    /* Sequence numbers must increase; empty records are refused. */
    uint8_t p[8] = {0};
    assert_int_equal(kvl_spool_append(sp, 503, p, sizeof(p)), KVL_EINVAL);
    assert_int_equal(kvl_spool_append(sp, 504, p, 0), KVL_EINVAL);
    assert_int_equal(kvl_spool_read(sp, 1, &seq, &b), KVL_EINVAL);
    kvl_spool_free(sp);
    g_fixed_len = LEN;
    kvl_buf_free(&b);
    remove_dir(dir);
}

static void test_restart_replays_from_ack(void **state)
{
    KVL_UNUSED(state);
    char *dir = make_dir();
    kvl_spool_t *sp = open1(dir, 1 << 20);
    append_range(sp, 1, 100);
    assert_int_equal(expect_all(sp, 0, 1, 100), 100);
    assert_int_equal(kvl_spool_ack(sp, 0, 40), 0);
    /* Segments 1..5 hold 1..40: deleted. */
    kvl_spool_stats_t st;
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.records, 60);
    assert_int_equal(count_segment_files(dir), 8);
    kvl_spool_free(sp);

    sp = open1(dir, 1 << 20);
    assert_int_equal(kvl_spool_last_seq(sp), 100);
    kvl_spool_reader_stats_t rs;
    kvl_spool_reader_stats(sp, 0, &rs);
    assert_int_equal(rs.acked_seq, 40);
    assert_int_equal(expect_all(sp, 0, 41, 100), 60);
    /* A reconnect: acknowledged up to 70, everything after it again. */
    assert_int_equal(kvl_spool_ack(sp, 0, 70), 0);
    kvl_spool_rewind(sp, 0);
    assert_int_equal(expect_all(sp, 0, 71, 100), 30);
    append_range(sp, 101, 110);
    assert_int_equal(expect_all(sp, 0, 101, 110), 10);
    /* An ack of a record not read yet moves the reader past it. */
    append_range(sp, 111, 120);
    assert_int_equal(kvl_spool_ack(sp, 0, 115), 0);
    assert_int_equal(expect_all(sp, 0, 116, 120), 5);
    /* Everything acknowledged: only the segment being appended to is left. */
    assert_int_equal(kvl_spool_ack(sp, 0, 120), 0);
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.segments, 1);
    assert_int_equal(count_segment_files(dir), 1);
    kvl_spool_free(sp);

    /* Restart with everything acknowledged: nothing to read, numbers continue. */
    sp = open1(dir, 1 << 20);
    assert_int_equal(kvl_spool_last_seq(sp), 120);
    assert_int_equal(expect_all(sp, 0, 121, 120), 0);
    append_range(sp, 121, 121);
    assert_int_equal(expect_all(sp, 0, 121, 121), 1);
    kvl_spool_free(sp);
    remove_dir(dir);
}

/* Ten records: segment 1 holds 1..8, segment 9 holds 9 (offset 16) and 10 (offset 132). */
static void test_torn_tail_every_offset(void **state)
{
    KVL_UNUSED(state);
    char *dir = make_dir();
    char path[256];
    seg_path(path, sizeof(path), dir, 9);
    const off_t last_off = 16 + REC, full = 16 + 2 * REC;
    for (off_t cut = last_off; cut <= full + 1; cut++) {
        kvl_spool_t *sp = open1(dir, 1 << 20);
        append_range(sp, 1, 10);
        kvl_spool_free(sp);
        assert_int_equal(file_size(path), full);
        if (cut <= full) {
            assert_int_equal(truncate(path, cut), 0);
        } else {
            /* Zeros after the last record, as a power cut can leave them. */
            assert_int_equal(truncate(path, full + 4096), 0);
        }
        sp = open1(dir, 1 << 20);
        kvl_spool_stats_t st;
        kvl_spool_stats(sp, &st);
        uint64_t last = cut >= full ? 10 : 9;
        off_t expect_cut = cut <= full ? (cut == full ? 0 : cut - last_off) : 4096;
        assert_int_equal(st.records, last);
        assert_int_equal(st.cut_bytes, expect_cut);
        assert_int_equal(file_size(path), cut == full || cut > full ? full : last_off);
        assert_int_equal(kvl_spool_last_seq(sp), last);
        assert_int_equal(expect_all(sp, 0, 1, last), last);
        /* Appending continues right after the last good record. */
        append_range(sp, 11, 11);
        assert_int_equal(expect_all(sp, 0, 11, 11), 1);
        kvl_spool_free(sp);
        sp = open1(dir, 1 << 20);
        kvl_spool_stats(sp, &st);
        assert_int_equal(st.cut_bytes, 0);
        assert_int_equal(expect_range(sp, 0, 1, last), last);
        assert_int_equal(expect_all(sp, 0, 11, 11), 1);
        kvl_spool_free(sp);
        /* Start the next case from an empty folder. */
        char *again = strdup(dir);
        remove_dir(dir);
        assert_int_equal(mkdir(again, 0700), 0);
        dir = again;
    }
    remove_dir(dir);
}

/* A torn header of a just-created last segment is removed; records before it stay. */
static void test_torn_header(void **state)
{
    KVL_UNUSED(state);
    char *dir = make_dir();
    kvl_spool_t *sp = open1(dir, 1 << 20);
    append_range(sp, 1, 9);
    kvl_spool_free(sp);
    char path[256];
    seg_path(path, sizeof(path), dir, 9);
    assert_int_equal(truncate(path, 7), 0);
    sp = open1(dir, 1 << 20);
    assert_int_equal(count_segment_files(dir), 1);
    assert_int_equal(expect_all(sp, 0, 1, 8), 8);
    append_range(sp, 9, 12);
    assert_int_equal(expect_all(sp, 0, 9, 12), 4);
    kvl_spool_free(sp);
    remove_dir(dir);
}

static void test_flipped_byte(void **state)
{
    KVL_UNUSED(state);
    char *dir = make_dir();
    kvl_spool_t *sp = open1(dir, 1 << 20);
    append_range(sp, 1, 20); /* segments 1 (1..8), 9 (9..16), 17 (17..20) */
    kvl_spool_free(sp);
    /* Payload of record 4 (index 3) of the first segment: only that record is lost. */
    char path[256];
    seg_path(path, sizeof(path), dir, 1);
    flip_byte(path, 16 + 3 * REC + 16 + 50);
    sp = open1(dir, 1 << 20);
    kvl_spool_stats_t st;
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.records, 20 - 1);
    assert_int_equal(st.cut_bytes, REC);
    assert_int_equal(st.damaged_regions, 1);
    assert_int_equal(st.lost_records, 1);
    assert_int_equal(expect_range(sp, 0, 1, 3), 3);
    assert_int_equal(expect_all(sp, 0, 5, 20), 16);
    /* Damage found while reading (after open): record 10's payload, only it lost. */
    kvl_spool_rewind(sp, 0);
    seg_path(path, sizeof(path), dir, 9);
    flip_byte(path, 16 + REC + 16 + 1);
    assert_int_equal(expect_range(sp, 0, 1, 3), 3);
    assert_int_equal(expect_range(sp, 0, 5, 9), 5);
    assert_int_equal(expect_all(sp, 0, 11, 20), 10);
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.records, 20 - 2);
    assert_int_equal(st.cut_bytes, 2 * REC);
    assert_int_equal(st.lost_records, 2);
    /* Read again from the start: the same records, the damage not found a second time. */
    kvl_spool_rewind(sp, 0);
    assert_int_equal(expect_range(sp, 0, 1, 3), 3);
    assert_int_equal(expect_range(sp, 0, 5, 9), 5);
    assert_int_equal(expect_all(sp, 0, 11, 20), 10);
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.lost_records, 2);
    /* Damage in the segment being appended to, record 19's seq field: the records after
     * it are kept, nothing is cut. */
    kvl_spool_free(sp);
    seg_path(path, sizeof(path), dir, 17);
    flip_byte(path, 16 + 2 * REC + 9);
    sp = open1(dir, 1 << 20);
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.records, 20 - 3);
    assert_int_equal(file_size(path), 16 + 4 * REC);
    assert_int_equal(expect_range(sp, 0, 1, 3), 3);
    assert_int_equal(expect_range(sp, 0, 5, 9), 5);
    assert_int_equal(expect_range(sp, 0, 11, 18), 8);
    assert_int_equal(expect_all(sp, 0, 20, 20), 1);
    assert_int_equal(kvl_spool_last_seq(sp), 20);
    /* Appending goes on, and the new records are read after the old ones. */
    append_range(sp, 21, 22);
    assert_int_equal(expect_all(sp, 0, 21, 22), 2);
    kvl_spool_free(sp);
    /* The last record's payload (22, appended to segment 17): a torn tail, cut off. */
    seg_path(path, sizeof(path), dir, 17);
    off_t size = file_size(path);
    flip_byte(path, size - 3);
    sp = open1(dir, 1 << 20);
    assert_int_equal(file_size(path), size - (off_t)REC);
    assert_int_equal(kvl_spool_last_seq(sp), 21);
    kvl_spool_free(sp);
    remove_dir(dir);
}

/* A damaged length field: the spool resynchronises byte by byte on the next record. */
static void test_flipped_length(void **state)
{
    KVL_UNUSED(state);
    char *dir = make_dir();
    kvl_spool_t *sp = open1(dir, 1 << 20);
    append_range(sp, 1, 20);
    kvl_spool_free(sp);
    char path[256];
    seg_path(path, sizeof(path), dir, 9);
    flip_byte(path, 16 + 3 * REC + 0); /* record 12's length: 100 ^ 0x40 */
    seg_path(path, sizeof(path), dir, 1);
    flip_byte(path, 16 + 5 * REC + 2); /* record 6's length: beyond the segment */
    sp = open1(dir, 1 << 20);
    kvl_spool_stats_t st;
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.records, 18);
    assert_int_equal(st.damaged_regions, 2);
    assert_int_equal(st.cut_bytes, 2 * REC);
    assert_int_equal(expect_range(sp, 0, 1, 5), 5);
    assert_int_equal(expect_range(sp, 0, 7, 11), 5);
    assert_int_equal(expect_all(sp, 0, 13, 20), 8);
    kvl_spool_free(sp);
    remove_dir(dir);
}

/* A segment removed from the middle: reported once (the index lists it), the others read. */
static void test_missing_segment(void **state)
{
    KVL_UNUSED(state);
    char *dir = make_dir();
    kvl_spool_t *sp = open1(dir, 1 << 20);
    append_range(sp, 1, 20); /* segments 1 (1..8), 9 (9..16), 17 (17..20) */
    kvl_spool_free(sp);
    char path[256];
    seg_path(path, sizeof(path), dir, 9);
    assert_int_equal(unlink(path), 0);
    sp = open1(dir, 1 << 20);
    kvl_spool_stats_t st;
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.missing_segments, 1);
    assert_int_equal(st.records, 12);
    assert_int_equal(expect_range(sp, 0, 1, 8), 8);
    assert_int_equal(expect_all(sp, 0, 17, 20), 4);
    /* Acknowledged and deleted from the front: nothing missing. */
    assert_int_equal(kvl_spool_ack(sp, 0, 8), 0);
    kvl_spool_free(sp);
    sp = open1(dir, 1 << 20);
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.missing_segments, 0);
    assert_int_equal(st.records, 4);
    kvl_spool_free(sp);
    remove_dir(dir);
}

/* A file named like a segment but larger than one can be is never read: set aside. */
static void test_stray_file(void **state)
{
    KVL_UNUSED(state);
    char *dir = make_dir();
    kvl_spool_t *sp = open1(dir, 1 << 20);
    append_range(sp, 1, 10);
    kvl_spool_free(sp);
    char path[256];
    seg_path(path, sizeof(path), dir, 5);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)1 << 33), 0); /* 8 GiB, sparse */
    close(fd);
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    sp = open1(dir, 1 << 20);
    getrusage(RUSAGE_SELF, &after);
    kvl_spool_stats_t st;
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.stray_files, 1);
    assert_int_equal(st.records, 10);
    assert_true(after.ru_maxrss - before.ru_maxrss < 64 * 1024); /* KiB: nothing read whole */
    assert_int_equal(expect_all(sp, 0, 1, 10), 10);
    kvl_spool_free(sp);
    char aside[300];
    snprintf(aside, sizeof(aside), "%s.stray", path);
    assert_int_equal(access(aside, F_OK), 0);
    assert_int_equal(access(path, F_OK), -1);
    remove_dir(dir);
}

/* max 4096: four full segments (4 * 944 = 3776) plus a fifth with two records (3776 + 16 +
 * 2 * 116 = 4024); the 35th record would make 4140, so the oldest segment (8 records) goes. */
static void test_bound_exact_drops(void **state)
{
    KVL_UNUSED(state);
    char *dir = make_dir();
    static const char *const two[] = {"a", "b"};
    kvl_spool_t *sp = open_n(dir, 4096, two, 2);
    append_range(sp, 1, 34);
    assert_int_equal(kvl_spool_ack(sp, 0, 3), 0); /* a has 1..3 acknowledged */
    kvl_spool_stats_t st;
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.bytes, 4024);
    assert_int_equal(st.dropped_records, 0);
    append_range(sp, 35, 35);
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.bytes, 4024 - 944 + REC);
    assert_int_equal(st.records, 27);
    assert_int_equal(st.dropped_records, 8);
    assert_int_equal(st.dropped_bytes, 8 * LEN);
    kvl_spool_reader_stats_t ra, rb;
    kvl_spool_reader_stats(sp, 0, &ra);
    kvl_spool_reader_stats(sp, 1, &rb);
    assert_int_equal(ra.dropped_records, 5);
    assert_int_equal(ra.dropped_bytes, 5 * LEN);
    assert_int_equal(rb.dropped_records, 8);
    assert_int_equal(ra.acked_seq, 8);
    assert_int_equal(rb.acked_seq, 8);
    assert_int_equal(expect_all(sp, 1, 9, 35), 27);
    /* Keep going: the files never pass the bound, and dropped + held = appended. */
    for (uint64_t s = 36; s <= 400; s++) {
        append_range(sp, s, s);
        kvl_spool_stats(sp, &st);
        assert_true(st.bytes <= 4096);
        assert_int_equal(st.bytes, count_segment_files(dir) * 16 + st.records * REC);
    }
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.dropped_records + st.records, 400);
    assert_int_equal(st.dropped_records % PER_SEG, 0);
    /* b read 9..35 before; its position was in a dropped segment: it goes on at the
     * oldest record left. */
    assert_int_equal(expect_all(sp, 1, st.dropped_records + 1, 400), st.records);
    assert_int_equal(expect_all(sp, 0, st.dropped_records + 1, 400), st.records);
    kvl_spool_reader_stats(sp, 0, &ra);
    assert_int_equal(ra.dropped_records, st.dropped_records - 3);
    /* A record that could never fit is refused. */
    uint8_t big[4096] = {0};
    assert_int_equal(kvl_spool_append(sp, 401, big, 2048), KVL_EINVAL);
    kvl_spool_free(sp);
    remove_dir(dir);
}

static void test_two_readers(void **state)
{
    KVL_UNUSED(state);
    char *dir = make_dir();
    static const char *const two[] = {"col-a:5140", "col-b:5140"};
    kvl_spool_t *sp = open_n(dir, 1 << 20, two, 2);
    assert_int_equal(kvl_spool_reader(sp, "col-b:5140"), 1);
    assert_int_equal(kvl_spool_reader(sp, "col-c"), KVL_EINVAL);
    append_range(sp, 1, 100); /* 13 segments */
    assert_int_equal(count_segment_files(dir), 13);
    assert_int_equal(expect_all(sp, 0, 1, 100), 100);
    assert_int_equal(kvl_spool_ack(sp, 0, 100), 0);
    assert_int_equal(count_segment_files(dir), 13); /* b has acknowledged nothing */
    kvl_spool_free(sp);

    sp = open_n(dir, 1 << 20, two, 2);
    assert_int_equal(expect_all(sp, 0, 101, 100), 0);
    assert_int_equal(kvl_spool_ack(sp, 1, 50), 0); /* segments up to 41..48 go */
    assert_int_equal(count_segment_files(dir), 7);
    assert_int_equal(expect_all(sp, 1, 51, 100), 50);
    append_range(sp, 101, 104);
    assert_int_equal(expect_all(sp, 0, 101, 104), 4);
    assert_int_equal(expect_all(sp, 1, 101, 104), 4);
    /* b at 104, a at 100: every segment before the one holding 97..104 goes. */
    assert_int_equal(kvl_spool_ack(sp, 1, 104), 0);
    assert_int_equal(count_segment_files(dir), 1);
    assert_int_equal(kvl_spool_ack(sp, 0, 104), 0);
    assert_int_equal(count_segment_files(dir), 1);
    kvl_spool_free(sp);

    /* Dropping a reader from the configuration deletes its cursor; a reader added later
     * starts at the oldest record still held. */
    static const char *const other[] = {"col-a:5140", "col-new"};
    sp = open_n(dir, 1 << 20, other, 2);
    char path[256];
    snprintf(path, sizeof(path), "%s/col-b:5140.cursor", dir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(expect_all(sp, 1, 97, 104), 8);
    kvl_spool_free(sp);
    remove_dir(dir);
}

static void test_open_errors(void **state)
{
    KVL_UNUSED(state);
    char err[512];
    kvl_spool_t *sp = NULL;
    kvl_spool_opts_t o = {
        .dir = "/nonexistent/kaaval/spool", .readers = one_reader, .n_readers = 1};
    assert_int_equal(kvl_spool_open(&o, &sp, err, sizeof(err)), UV_ENOENT);
    assert_null(sp);
    assert_non_null(strstr(err, "/nonexistent/kaaval/spool"));
    assert_non_null(strstr(err, "No such file or directory"));

    o.dir = "/etc/hostname";
    assert_int_equal(kvl_spool_open(&o, &sp, err, sizeof(err)), UV_ENOTDIR);

    char *dir = make_dir();
    o.dir = dir;
    static const char *const bad[] = {"../x"};
    o.readers = bad;
    assert_int_equal(kvl_spool_open(&o, &sp, err, sizeof(err)), KVL_EINVAL);
    assert_non_null(strstr(err, "reader name"));
    o.readers = one_reader;
    o.max_bytes = 1000;
    o.segment_bytes = 600;
    assert_int_equal(kvl_spool_open(&o, &sp, err, sizeof(err)), KVL_EINVAL);
    assert_non_null(strstr(err, "twice the segment"));

    /* A second agent on the same folder is kept out. */
    kvl_spool_t *first = open1(dir, 1 << 20);
    o.max_bytes = 0;
    o.segment_bytes = 0;
    assert_true(kvl_spool_open(&o, &sp, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "in use by another process"));
    append_range(first, 1, 3);
    kvl_spool_free(first);

    /* A newer format version, in a segment or in a cursor file, is refused. */
    uint8_t h[16];
    memcpy(h, "kvlspool", 8);
    kvl_put_le32(h + 8, KVL_SPOOL_FORMAT_VERSION + 1);
    uint32_t c = kvl_crc32c(0, h, 12);
    for (int i = 0; i < 4; i++) {
        h[12 + i] = (uint8_t)(c >> (8 * i));
    }
    char path[256];
    seg_path(path, sizeof(path), dir, 1000);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(h, 1, sizeof(h), f);
    fclose(f);
    file_bytes_t before = file_bytes(path);
    assert_int_equal(kvl_spool_open(&o, &sp, err, sizeof(err)), KVL_EPROTO);
    expect_newer_sentence(err, path, KVL_SPOOL_FORMAT_VERSION + 1, KVL_SPOOL_FORMAT_VERSION,
                          "kaaval-agent");
    expect_file_unchanged(path, &before);
    unlink(path);

    first = open1(dir, 1 << 20);
    assert_int_equal(kvl_spool_ack(first, 0, 2), 0);
    kvl_spool_free(first);
    snprintf(path, sizeof(path), "%s/primary.cursor", dir);
    uint8_t cur[32];
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(cur, 1, sizeof(cur), f), 32);
    fclose(f);
    kvl_put_le32(cur + 8, KVL_SPOOL_FORMAT_VERSION + 1);
    c = kvl_crc32c(0, cur, 24);
    for (int i = 0; i < 4; i++) {
        cur[24 + i] = (uint8_t)(c >> (8 * i));
    }
    f = fopen(path, "wb");
    fwrite(cur, 1, sizeof(cur), f);
    fclose(f);
    assert_int_equal(kvl_spool_open(&o, &sp, err, sizeof(err)), KVL_EPROTO);
    assert_non_null(strstr(err, "primary.cursor: written by a newer kaaval"));

    /* A damaged cursor file: the reader starts from the oldest record. */
    cur[8] = 1;
    f = fopen(path, "wb");
    fwrite(cur, 1, sizeof(cur), f);
    fclose(f);
    first = open1(dir, 1 << 20);
    assert_int_equal(expect_all(first, 0, 1, 3), 3);
    kvl_spool_free(first);
    remove_dir(dir);
}

/* A cursor an older agent wrote with an impossible acknowledgement (2^64-1, taken from a
 * peer): not trusted, the reader starts from the oldest record and nothing is deleted. */
static void test_impossible_cursor(void **state)
{
    KVL_UNUSED(state);
    char *dir = make_dir();
    kvl_spool_t *sp = open1(dir, 1 << 20);
    append_range(sp, 1, 20);
    assert_int_equal(kvl_spool_ack(sp, 0, 5), 0);
    kvl_spool_free(sp);
    char path[256];
    snprintf(path, sizeof(path), "%s/primary.cursor", dir);
    uint8_t cur[32];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(cur, 1, sizeof(cur), f), 32);
    fclose(f);
    kvl_put_le64(cur + 16, UINT64_MAX);
    kvl_put_le32(cur + 24, kvl_crc32c(0, cur, 24));
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(cur, 1, sizeof(cur), f), 32);
    fclose(f);
    sp = open1(dir, 1 << 20);
    kvl_spool_reader_stats_t rs;
    kvl_spool_reader_stats(sp, 0, &rs);
    assert_int_equal(rs.acked_seq, 0);
    assert_int_equal(kvl_spool_last_seq(sp), 20);
    /* Records 1..5 were deleted only if their segment was wholly acknowledged: read what
     * is left from its first record on, every one up to 20. */
    kvl_buf_t b = {0};
    uint64_t seq = 0;
    assert_int_equal(kvl_spool_read(sp, 0, &seq, &b), 1);
    kvl_buf_free(&b);
    assert_true(seq <= 6);
    assert_int_equal(expect_all(sp, 0, seq + 1, 20), 20 - seq);
    kvl_spool_free(sp);
    remove_dir(dir);
}

/* A write that fails half-way (the file size limit standing in for a full disk) leaves no
 * trace: the spool works again when space returns, and nothing partial is ever read. */
static void test_write_error(void **state)
{
    KVL_UNUSED(state);
    char *dir = make_dir();
    kvl_spool_t *sp = open1(dir, 1 << 20);
    append_range(sp, 1, 3);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = 16 + 3 * REC + 50; /* half of record 4 fits */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    uint8_t p[LEN];
    fill(p, 4, LEN);
    int rc = kvl_spool_append(sp, 4, p, LEN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(rc, UV_EFBIG);
    kvl_spool_stats_t st;
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.write_errors, 1);
    assert_int_equal(st.records, 3);
    char path[256];
    seg_path(path, sizeof(path), dir, 1);
    assert_int_equal(file_size(path), 16 + 3 * REC);
    append_range(sp, 4, 5);
    assert_int_equal(expect_all(sp, 0, 1, 5), 5);
    kvl_spool_free(sp);
    sp = open1(dir, 1 << 20);
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.cut_bytes, 0);
    assert_int_equal(expect_all(sp, 0, 1, 5), 5);
    kvl_spool_free(sp);
    remove_dir(dir);
}

static void test_sync_off_loop(void **state)
{
    KVL_UNUSED(state);
    char *dir = make_dir();
    kvl_spool_opts_t o = {.dir = dir,
                          .segment_bytes = SEG,
                          .max_bytes = 1 << 20,
                          .sync_interval_ms = 1000,
                          .readers = one_reader,
                          .n_readers = 1};
    kvl_spool_t *sp = NULL;
    char err[256];
    assert_int_equal(kvl_spool_open(&o, &sp, err, sizeof(err)), 0);
    kvl_spool_sync_job_t job;
    assert_int_equal(kvl_spool_sync_prepare(sp, &job), 0);
    append_range(sp, 1, 20); /* two rolled segments and the active one */
    assert_int_equal(kvl_spool_sync_prepare(sp, &job), 1);
    assert_int_equal(job.n, 3);
    assert_true(job.dir_fd >= 0);
    kvl_spool_sync_run(&job);
    assert_int_equal(job.err, 0);
    kvl_spool_sync_done(sp, &job);
    assert_int_equal(kvl_spool_sync_prepare(sp, &job), 0);
    append_range(sp, 21, 21);
    assert_int_equal(kvl_spool_sync(sp), 0);
    kvl_spool_stats_t st;
    kvl_spool_stats(sp, &st);
    assert_int_equal(st.sync_errors, 0);
    kvl_spool_free(sp);
    /* Every append synced by the spool itself. */
    o.sync_interval_ms = 0;
    assert_int_equal(kvl_spool_open(&o, &sp, err, sizeof(err)), 0);
    append_range(sp, 22, 30);
    assert_int_equal(kvl_spool_sync_prepare(sp, &job), 0);
    assert_int_equal(expect_all(sp, 0, 1, 30), 30);
    kvl_spool_free(sp);
    remove_dir(dir);
}

int main(void)
{
    const char *lvl = getenv("KVL_TEST_LOG");
    kvl_log_level = lvl != NULL ? kvl_log_level_parse(lvl) : KVL_LOG_LEVEL_ERROR - 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_restart_replays_from_ack),
        cmocka_unit_test(test_torn_tail_every_offset),
        cmocka_unit_test(test_torn_header),
        cmocka_unit_test(test_flipped_byte),
        cmocka_unit_test(test_flipped_length),
        cmocka_unit_test(test_stray_file),
        cmocka_unit_test(test_missing_segment),
        cmocka_unit_test(test_bound_exact_drops),
        cmocka_unit_test(test_two_readers),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_impossible_cursor),
        cmocka_unit_test(test_write_error),
        cmocka_unit_test(test_sync_off_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
