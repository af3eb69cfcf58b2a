/*
 * test_seglog.c — unit tests for the segment log (common/seglog.h) under the spool's and
 * the journal's formats: records written and read back, a torn last record cut wherever
 * the tear is (and the repaired file reopening the same), a damaged CRC in the middle
 * (records before it kept; the tail cut in the last segment, skipped in another),
 * several segments in order with sequence numbers continuing across them, deletion,
 * names and headers.
 *
 * Each test works in its own folder under /tmp.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvl.h"
#include "seglog.h"

/* The spool's format: no extra fields, the CRC covers the length. */
static const kvl_seglog_format_t spool_like = {
    .magic = {'k', 'v', 'l', 's', 'p', 'o', 'o', 'l'},
    .version = 1,
    .suffix = ".seg",
    .extra = 0,
    .crc_covers_len = true,
    .len_min = 1,
    .len_max = 1u << 20,
};

static bool first_byte_small(const uint8_t *hdr, uint32_t len)
{
    return hdr[KVL_SEGLOG_REC_BASE] <= len;
}

/* The journal's shape: 12 bytes of the owner's fields, the CRC without the length, a
 * header check of its own (here: the first extra byte is at most len). */
static const kvl_seglog_format_t journal_like = {
    .magic = {'k', 'v', 'l', 'j', 'r', 'n', 'l', '\0'},
    .version = 1,
    .suffix = ".jnl",
    .extra = 12,
    .crc_covers_len = false,
    .len_min = 0,
    .len_max = UINT32_MAX,
    .header_ok = first_byte_small,
    .seq_dense = true,
};

typedef struct fixture {
    char dir[64];
    int dir_fd;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    snprintf(f->dir, sizeof(f->dir), "/tmp/kvl-seglog-test-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        free(f);
        return -1;
    }
    f->dir_fd = open(f->dir, O_RDONLY | O_DIRECTORY);
    *state = f;
    return f->dir_fd >= 0 ? 0 : -1;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    DIR *d = opendir(f->dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                unlinkat(f->dir_fd, e->d_name, 0);
            }
        }
        closedir(d);
    }
    close(f->dir_fd);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* The body of record seq: its length varies, its bytes derive from seq. */
static size_t body_len(uint64_t seq)
{
    return 1 + (size_t)(seq * 37 % 200);
}

static void body_fill(uint8_t *p, uint64_t seq, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(seq * 131 + i * 7);
    }
}

/* Writes a segment named `num` with records first..last; *offs (may be NULL) gets each
 * record's offset. Returns the file's size. */
static uint64_t write_segment(const fixture_t *f, const kvl_seglog_format_t *fmt, uint64_t num,
                              uint64_t first, uint64_t last, uint64_t *offs)
{
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(fmt, num, name);
    int fd = openat(f->dir_fd, name, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    uint8_t h[KVL_SEGLOG_HEADER];
    kvl_seglog_header_make(fmt, h);
    assert_int_equal(kvl_seglog_pwrite(fd, h, sizeof(h), 0), 0);
    uint64_t off = KVL_SEGLOG_HEADER;
    size_t hl = kvl_seglog_rec_header(fmt);
    for (uint64_t s = first; s <= last; s++) {
        uint8_t rec[64 + 256];
        size_t n = body_len(s);
        memset(rec, 0, hl); /* the owner's fields: zeros */
        body_fill(rec + hl, s, n);
        /* The body in two parts, as the journal hands them (agent id, data). */
        kvl_seglog_seal(fmt, rec, s, rec + hl, n / 2, rec + hl + n / 2, n - n / 2);
        assert_int_equal(kvl_seglog_pwrite(fd, rec, hl + n, off), 0);
        if (offs != NULL) {
            offs[s - first] = off;
        }
        off += hl + n;
    }
    close(fd);
    return off;
}

static uint64_t file_size(const fixture_t *f, const kvl_seglog_format_t *fmt, uint64_t num)
{
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(fmt, num, name);
    struct stat st;
    if (fstatat(f->dir_fd, name, &st, 0) != 0) {
        return UINT64_MAX;
    }
    return (uint64_t)st.st_size;
}

/* Reads every record of segment num below limit; checks seqs first.. and bodies. Returns
 * how many. */
static uint64_t read_back(const fixture_t *f, const kvl_seglog_format_t *fmt, uint64_t num,
                          uint64_t first, uint64_t limit)
{
    kvl_seglog_file_t sf;
    kvl_seglog_file_init(&sf);
    assert_int_equal(kvl_seglog_file_open(fmt, &sf, f->dir_fd, num, O_RDONLY), 0);
    uint64_t off = KVL_SEGLOG_HEADER, n = 0;
    kvl_seglog_rec_t r;
    while (kvl_seglog_file_next(fmt, &sf, off, limit, &r, NULL) == 1) {
        uint64_t s = first + n;
        assert_int_equal(r.seq, s);
        assert_int_equal(r.len, body_len(s));
        uint8_t want[256];
        body_fill(want, s, r.len);
        assert_memory_equal(r.body, want, r.len);
        off += r.size;
        n++;
    }
    kvl_seglog_file_free(&sf);
    return n;
}

static void check(const fixture_t *f, const kvl_seglog_format_t *fmt, uint64_t num, int flags,
                  uint64_t min_seq, kvl_seglog_scan_t *sc)
{
    kvl_seglog_file_t sf;
    kvl_seglog_file_init(&sf);
    const char *what = NULL;
    kvl_seglog_bounds_t b = {.min_seq = min_seq};
    assert_int_equal(kvl_seglog_check(fmt, &sf, f->dir_fd, num, flags, &b, sc, &what), 0);
    kvl_seglog_file_free(&sf);
}

static void round_trip(void **state, const kvl_seglog_format_t *fmt)
{
    fixture_t *f = *state;
    uint64_t size = write_segment(f, fmt, 5, 5, 104, NULL);
    kvl_seglog_scan_t sc;
    check(f, fmt, 5, KVL_SEGLOG_CHECK_REPAIR, 1, &sc);
    assert_int_equal(sc.header, 0);
    assert_int_equal(sc.version, 1);
    assert_int_equal(sc.n_records, 100);
    assert_int_equal(sc.first_seq, 5);
    assert_int_equal(sc.last_seq, 104);
    assert_int_equal(sc.end, size);
    assert_int_equal(sc.size, size);
    assert_null(sc.why);
    assert_false(sc.cut);
    assert_int_equal(read_back(f, fmt, 5, 5, size), 100);
}

static void test_round_trip_spool(void **state)
{
    round_trip(state, &spool_like);
}

static void test_round_trip_journal(void **state)
{
    round_trip(state, &journal_like);
}

/* The last record torn at every offset: the check cuts it off, keeps the rest, and the
 * repaired file checks clean and identical. */
static void torn_every_offset(void **state, const kvl_seglog_format_t *fmt)
{
    fixture_t *f = *state;
    uint64_t offs[10];
    uint64_t size = write_segment(f, fmt, 1, 1, 10, offs);
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(fmt, 1, name);
    for (uint64_t cut = offs[9]; cut < size; cut++) {
        write_segment(f, fmt, 1, 1, 10, NULL);
        int fd = openat(f->dir_fd, name, O_RDWR);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, (off_t)cut), 0);
        close(fd);
        kvl_seglog_scan_t sc;
        check(f, fmt, 1, KVL_SEGLOG_CHECK_REPAIR, 1, &sc);
        assert_int_equal(sc.n_records, 9);
        assert_int_equal(sc.last_seq, 9);
        assert_int_equal(sc.end, offs[9]);
        assert_int_equal(sc.cut, cut > offs[9]);
        assert_int_equal(file_size(f, fmt, 1), offs[9]);
        kvl_seglog_scan_t again;
        check(f, fmt, 1, KVL_SEGLOG_CHECK_REPAIR, 1, &again);
        assert_int_equal(again.n_records, 9);
        assert_int_equal(again.end, again.size);
        assert_false(again.cut);
        assert_null(again.why);
        assert_int_equal(read_back(f, fmt, 1, 1, again.size), 9);
    }
}

static void test_torn_tail_spool(void **state)
{
    torn_every_offset(state, &spool_like);
}

static void test_torn_tail_journal(void **state)
{
    torn_every_offset(state, &journal_like);
}

/* Zeros after the last record (a power cut after the size grew) are a torn tail too. */
static void test_zeroed_tail(void **state)
{
    fixture_t *f = *state;
    uint64_t size = write_segment(f, &journal_like, 1, 1, 5, NULL);
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(&journal_like, 1, name);
    int fd = openat(f->dir_fd, name, O_RDWR);
    assert_int_equal(ftruncate(fd, (off_t)size + 4096), 0);
    close(fd);
    kvl_seglog_scan_t sc;
    check(f, &journal_like, 1, KVL_SEGLOG_CHECK_REPAIR, 1, &sc);
    assert_int_equal(sc.n_records, 5);
    assert_int_equal(sc.end, size);
    assert_true(sc.cut);
    assert_int_equal(file_size(f, &journal_like, 1), size);
}

/* A flipped byte in the body of record 4 of 8: only record 4 is lost, with or without
 * REPAIR (damage in the middle is no torn tail); the region is reported exactly. */
static void damaged_crc(void **state, const kvl_seglog_format_t *fmt)
{
    fixture_t *f = *state;
    uint64_t offs[8];
    uint64_t size = write_segment(f, fmt, 1, 1, 8, offs);
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(fmt, 1, name);
    int fd = openat(f->dir_fd, name, O_RDWR);
    uint8_t c;
    uint64_t at = offs[3] + kvl_seglog_rec_header(fmt);
    assert_int_equal(pread(fd, &c, 1, (off_t)at), 1);
    c ^= 0x40;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)at), 1);
    close(fd);

    for (int flags = 0; flags <= KVL_SEGLOG_CHECK_REPAIR; flags += KVL_SEGLOG_CHECK_REPAIR) {
        kvl_seglog_scan_t sc;
        check(f, fmt, 1, flags, 1, &sc);
        assert_int_equal(sc.n_records, 7);
        assert_int_equal(sc.first_seq, 1);
        assert_int_equal(sc.last_seq, 8);
        assert_int_equal(sc.end, size);
        assert_null(sc.why);
        assert_false(sc.cut);
        assert_int_equal(sc.n_damage, 1);
        assert_int_equal(sc.damage[0].from, offs[3]);
        assert_int_equal(sc.damage[0].to, offs[4]);
        assert_int_equal(sc.damage[0].seq_before, 3);
        assert_int_equal(sc.damage[0].seq_after, 5);
        assert_int_equal(sc.damage[0].records, 1);
        assert_string_equal(sc.damage[0].why, "checksum mismatch");
        assert_int_equal(sc.damaged_bytes, offs[4] - offs[3]);
        assert_int_equal(sc.lost_records, 1);
        assert_false(sc.lost_unknown);
        kvl_seglog_scan_free(&sc);
        assert_int_equal(file_size(f, fmt, 1), size);
    }
}

static void test_damaged_crc_spool(void **state)
{
    damaged_crc(state, &spool_like);
}

static void test_damaged_crc_journal(void **state)
{
    damaged_crc(state, &journal_like);
}

/* An impossible length is damage, not a torn record, also when the bytes end there. */
static void test_impossible_length(void **state)
{
    (void)state;
    uint8_t rec[64] = {0};
    memcpy(rec + 28, "abcdef", 6);
    kvl_seglog_seal(&journal_like, rec, 7, rec + 28, 6, NULL, 0);
    kvl_seglog_rec_t r;
    const char *why = NULL;
    assert_int_equal(kvl_seglog_parse(&journal_like, rec, 28 + 6, &r, &why), 1);
    assert_int_equal(r.seq, 7);
    assert_int_equal(kvl_seglog_parse(&journal_like, rec, 28 + 5, &r, &why), 0);
    assert_int_equal(kvl_seglog_parse(&journal_like, rec, 27, &r, &why), 0);
    rec[KVL_SEGLOG_REC_BASE] = 7; /* header_ok: more than len */
    assert_int_equal(kvl_seglog_parse(&journal_like, rec, 28, &r, &why), KVL_EPROTO);
    assert_string_equal(why, "impossible record length");

    uint8_t s[32] = {0};
    kvl_seglog_seal(&spool_like, s, 1, NULL, 0, NULL, 0); /* len 0 < len_min */
    assert_int_equal(kvl_seglog_parse(&spool_like, s, sizeof(s), &r, &why), KVL_EPROTO);
}

/* Segments in order: the list sorts them, sequence numbers continue across them (a
 * segment going backwards counts as out of order), and the oldest are deleted. */
static void test_segments_and_deletion(void **state)
{
    fixture_t *f = *state;
    write_segment(f, &spool_like, 1, 1, 10, NULL);
    write_segment(f, &spool_like, 11, 11, 20, NULL);
    write_segment(f, &spool_like, 0x21, 0x21, 0x30, NULL);
    int fd = openat(f->dir_fd, "not-a-segment", O_WRONLY | O_CREAT, 0600);
    close(fd);
    fd = openat(f->dir_fd, "0000000000000001.jnl", O_WRONLY | O_CREAT, 0600);
    close(fd);
    uint64_t *nums;
    size_t n;
    assert_int_equal(kvl_seglog_list(&spool_like, f->dir_fd, &nums, &n, NULL, NULL), 0);
    assert_int_equal(n, 3);
    assert_int_equal(nums[0], 1);
    assert_int_equal(nums[1], 11);
    assert_int_equal(nums[2], 0x21);
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        kvl_seglog_scan_t sc;
        check(f, &spool_like, nums[i], i + 1 == n ? KVL_SEGLOG_CHECK_REPAIR : 0, prev + 1, &sc);
        assert_int_equal(sc.n_records, i < 2 ? 10 : 16);
        assert_int_equal(sc.first_seq, nums[i]);
        prev = sc.last_seq;
    }
    free(nums);
    kvl_seglog_scan_t sc;
    check(f, &spool_like, 11, 0, 15, &sc); /* records 11-14 are not above 14: skipped */
    assert_int_equal(sc.n_records, 6);
    assert_int_equal(sc.first_seq, 15);
    assert_int_equal(sc.n_damage, 1);
    assert_int_equal(sc.damage[0].from, KVL_SEGLOG_HEADER);
    assert_int_equal(sc.damage[0].seq_after, 15);
    assert_string_equal(sc.damage[0].why, "sequence number out of order");
    kvl_seglog_scan_free(&sc);

    assert_int_equal(kvl_seglog_unlink(&spool_like, f->dir_fd, 1), 0);
    assert_int_equal(kvl_seglog_unlink(&spool_like, f->dir_fd, 1), 0); /* gone: no error */
    assert_int_equal(kvl_seglog_list(&spool_like, f->dir_fd, &nums, &n, NULL, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(nums[0], 11);
    free(nums);
    assert_int_equal(file_size(f, &journal_like, 1), 0); /* the other format's file stays */
}

static void test_names_and_headers(void **state)
{
    (void)state;
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(&spool_like, 0xabcdef, name);
    assert_string_equal(name, "0000000000abcdef.seg");
    uint64_t num;
    assert_true(kvl_seglog_parse_name(&spool_like, name, &num));
    assert_int_equal(num, 0xabcdef);
    assert_false(kvl_seglog_parse_name(&journal_like, name, &num));
    assert_false(kvl_seglog_parse_name(&spool_like, "0000000000ABCDEF.seg", &num));
    assert_false(kvl_seglog_parse_name(&spool_like, "000000000abcdef.seg", &num));

    uint8_t h[KVL_SEGLOG_HEADER];
    uint32_t v = 0;
    kvl_seglog_header_make(&spool_like, h);
    assert_memory_equal(h, "kvlspool", 8);
    assert_int_equal(kvl_seglog_header_check(&spool_like, h, sizeof(h), &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(kvl_seglog_header_check(&journal_like, h, sizeof(h), &v), 1);
    assert_int_equal(kvl_seglog_header_check(&spool_like, h, sizeof(h) - 1, &v), 1);
    h[13] ^= 1;
    assert_int_equal(kvl_seglog_header_check(&spool_like, h, sizeof(h), &v), 1);
}

/* A header of a newer version is reported, and its records are left alone. */
static void test_newer_version(void **state)
{
    fixture_t *f = *state;
    kvl_seglog_format_t newer = spool_like;
    newer.version = 2;
    uint64_t size = write_segment(f, &newer, 1, 1, 3, NULL);
    kvl_seglog_file_t sf;
    kvl_seglog_file_init(&sf);
    kvl_seglog_scan_t sc;
    kvl_seglog_bounds_t b = {.min_seq = 1};
    assert_int_equal(
        kvl_seglog_check(&spool_like, &sf, f->dir_fd, 1, KVL_SEGLOG_CHECK_REPAIR, &b, &sc, NULL),
        0);
    kvl_seglog_file_free(&sf);
    assert_int_equal(sc.header, 0);
    assert_int_equal(sc.version, 2);
    assert_int_equal(sc.n_records, 0);
    assert_false(sc.cut);
    assert_int_equal(file_size(f, &spool_like, 1), size);
}

static void flip(const fixture_t *f, const kvl_seglog_format_t *fmt, uint64_t num, uint64_t at,
                 uint8_t mask)
{
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(fmt, num, name);
    int fd = openat(f->dir_fd, name, O_RDWR);
    assert_true(fd >= 0);
    uint8_t c;
    assert_int_equal(pread(fd, &c, 1, (off_t)at), 1);
    c ^= mask;
    assert_int_equal(pwrite(fd, &c, 1, (off_t)at), 1);
    close(fd);
}

/* Bytes flipped in the middle of a long last segment (lengths, seqs, bodies of records
 * 100-102 and 300): only those records are lost and counted, nothing cut; the same in a
 * segment that is not the last. */
static void flipped_middle(void **state, const kvl_seglog_format_t *fmt)
{
    fixture_t *f = *state;
    uint64_t offs[500];
    uint64_t size = write_segment(f, fmt, 1, 1, 500, offs);
    flip(f, fmt, 1, offs[99] + 1, 0x01);                           /* length of 100 */
    flip(f, fmt, 1, offs[100] + 9, 0x80);                          /* seq of 101 */
    flip(f, fmt, 1, offs[101] + kvl_seglog_rec_header(fmt), 0x10); /* body of 102 */
    flip(f, fmt, 1, offs[299] + 3, 0xff);                          /* length of 300 */
    for (int flags = 0; flags <= KVL_SEGLOG_CHECK_REPAIR; flags += KVL_SEGLOG_CHECK_REPAIR) {
        kvl_seglog_scan_t sc;
        check(f, fmt, 1, flags, 1, &sc);
        assert_int_equal(sc.n_records, 496);
        assert_int_equal(sc.last_seq, 500);
        assert_int_equal(sc.end, size);
        assert_false(sc.cut);
        assert_int_equal(sc.n_damage, 2);
        assert_int_equal(sc.damage[0].from, offs[99]);
        assert_int_equal(sc.damage[0].to, offs[102]);
        assert_int_equal(sc.damage[0].seq_before, 99);
        assert_int_equal(sc.damage[0].seq_after, 103);
        assert_int_equal(sc.damage[1].from, offs[299]);
        assert_int_equal(sc.damage[1].to, offs[300]);
        if (fmt->seq_dense) {
            assert_int_equal(sc.damage[0].records, 3);
            assert_int_equal(sc.damage[1].records, 1);
            assert_int_equal(sc.lost_records, 4);
            assert_false(sc.lost_unknown);
        }
        kvl_seglog_scan_free(&sc);
    }
    assert_int_equal(file_size(f, fmt, 1), size);
}

static void test_flipped_middle_spool(void **state)
{
    flipped_middle(state, &spool_like);
}

static void test_flipped_middle_journal(void **state)
{
    flipped_middle(state, &journal_like);
}

/* Records 1..8 where record 4's body holds what looks like records: a header with a bad
 * CRC, then a whole record numbered 5 whose CRC checks, then junk. With record 4's length
 * damaged the scan must not take either: it goes on at the real record 5. */
static void fake_in_body(void **state, const kvl_seglog_format_t *fmt)
{
    fixture_t *f = *state;
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(fmt, 1, name);
    int fd = openat(f->dir_fd, name, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    uint8_t h[KVL_SEGLOG_HEADER];
    kvl_seglog_header_make(fmt, h);
    assert_int_equal(kvl_seglog_pwrite(fd, h, sizeof(h), 0), 0);
    size_t hl = kvl_seglog_rec_header(fmt);
    uint64_t off = KVL_SEGLOG_HEADER, offs[8];
    for (uint64_t s = 1; s <= 8; s++) {
        uint8_t rec[512];
        memset(rec, 0, sizeof(rec));
        size_t n = body_len(s);
        if (s == 4) {
            uint8_t *b = rec + hl;
            uint8_t fake[128];
            memset(fake, 0, sizeof(fake));
            memcpy(fake + hl, "a fake record numbered 5", 24);
            kvl_seglog_seal(fmt, fake, 5, fake + hl, 24, NULL, 0);
            memcpy(b, fake, hl); /* a header alone: its CRC cannot match */
            b[hl] = 0xee;
            memcpy(b + hl + 4, fake, hl + 24); /* the whole fake record */
            memset(b + 2 * hl + 28, 0xff, 40); /* junk after it */
            n = 2 * hl + 28 + 40;
        } else {
            body_fill(rec + hl, s, n);
        }
        kvl_seglog_seal(fmt, rec, s, rec + hl, n, NULL, 0);
        assert_int_equal(kvl_seglog_pwrite(fd, rec, hl + n, off), 0);
        offs[s - 1] = off;
        off += hl + n;
    }
    close(fd);
    flip(f, fmt, 1, offs[3] + 2, 0x7f); /* record 4's length: far beyond the file */
    kvl_seglog_scan_t sc;
    check(f, fmt, 1, KVL_SEGLOG_CHECK_REPAIR, 1, &sc);
    assert_int_equal(sc.n_records, 7);
    assert_int_equal(sc.n_damage, 1);
    assert_int_equal(sc.damage[0].from, offs[3]);
    assert_int_equal(sc.damage[0].to, offs[4]);
    assert_int_equal(sc.damage[0].seq_after, 5);
    assert_int_equal(sc.end, off);
    kvl_seglog_scan_free(&sc);
    /* Reading on from the damage finds the real record 5, with its own body. */
    kvl_seglog_file_t sf;
    kvl_seglog_file_init(&sf);
    assert_int_equal(kvl_seglog_file_open(fmt, &sf, f->dir_fd, 1, O_RDONLY), 0);
    kvl_seglog_bounds_t b = {.min_seq = 1};
    uint64_t at;
    kvl_seglog_rec_t r;
    assert_true(kvl_seglog_resync(fmt, &sf, offs[3], off, 3, &b, &at, &r) >= 1);
    assert_int_equal(at, offs[4]);
    assert_int_equal(r.seq, 5);
    uint8_t want[256];
    body_fill(want, 5, body_len(5));
    assert_int_equal(r.len, body_len(5));
    assert_memory_equal(r.body, want, r.len);
    kvl_seglog_file_free(&sf);
}

static void test_fake_in_body_spool(void **state)
{
    fake_in_body(state, &spool_like);
}

static void test_fake_in_body_journal(void **state)
{
    fake_in_body(state, &journal_like);
}

/* The seqs a resynchronised record may have: above the last good one, below max_seq. */
static void test_seq_bounds(void **state)
{
    fixture_t *f = *state;
    uint64_t offs[10];
    uint64_t size = write_segment(f, &spool_like, 1, 1, 10, offs);
    flip(f, &spool_like, 1, offs[4] + 1, 0x02); /* record 5's length */
    kvl_seglog_scan_t sc;
    kvl_seglog_file_t sf;
    kvl_seglog_file_init(&sf);
    kvl_seglog_bounds_t b = {.min_seq = 1, .max_seq = 7};
    assert_int_equal(kvl_seglog_check(&spool_like, &sf, f->dir_fd, 1, 0, &b, &sc, NULL), 0);
    /* 8..10 are above the bound: after record 7 nothing is valid. */
    assert_int_equal(sc.n_records, 6);
    assert_int_equal(sc.last_seq, 7);
    assert_int_equal(sc.end, offs[7]);
    assert_int_equal(sc.n_damage, 1);
    assert_string_equal(sc.why, "sequence number out of order");
    kvl_seglog_scan_free(&sc);
    kvl_seglog_file_free(&sf);
    check(f, &spool_like, 1, 0, 1, &sc);
    assert_int_equal(sc.n_records, 9);
    assert_int_equal(sc.end, size);
    kvl_seglog_scan_free(&sc);
}

/* A sparse file of 512 MiB: a header and three records, then a hole. The check jumps the
 * hole (fast, little memory) and cuts it off as a tail; above max_size the file is not
 * read at all. */
static void test_sparse_file(void **state)
{
    fixture_t *f = *state;
    uint64_t size = write_segment(f, &journal_like, 1, 1, 3, NULL);
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(&journal_like, 1, name);
    int fd = openat(f->dir_fd, name, O_RDWR);
    assert_int_equal(ftruncate(fd, (off_t)512 << 20), 0);
    close(fd);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kvl_seglog_scan_t sc;
    check(f, &journal_like, 1, 0, 1, &sc);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_int_equal(sc.n_records, 3);
    assert_int_equal(sc.end, size);
    assert_int_equal(sc.n_damage, 0);
    assert_true(t1.tv_sec - t0.tv_sec < 10); /* a scan byte by byte through it takes minutes */
    kvl_seglog_scan_free(&sc);

    kvl_seglog_file_t sf;
    kvl_seglog_file_init(&sf);
    kvl_seglog_bounds_t b = {.min_seq = 1, .max_size = 64 << 20};
    assert_int_equal(
        kvl_seglog_check(&journal_like, &sf, f->dir_fd, 1, KVL_SEGLOG_CHECK_REPAIR, &b, &sc, NULL),
        0);
    assert_true(sc.oversize);
    assert_int_equal(sc.n_records, 0);
    assert_int_equal(sf.buf.cap, 0); /* not even the header was read ahead */
    kvl_seglog_file_free(&sf);
    assert_int_equal(file_size(f, &journal_like, 1), (uint64_t)512 << 20);

    check(f, &journal_like, 1, KVL_SEGLOG_CHECK_REPAIR, 1, &sc);
    assert_true(sc.cut);
    assert_int_equal(file_size(f, &journal_like, 1), size);
}

/* The spool's real bounds: records up to 64 MiB, no bound on seqs in the last segment. */
static const kvl_seglog_format_t spool_real = {
    .magic = {'k', 'v', 'l', 's', 'p', 'o', 'o', 'l'},
    .version = 1,
    .suffix = ".seg",
    .extra = 0,
    .crc_covers_len = true,
    .len_min = 1,
    .len_max = 64u << 20,
};

/* 16 MiB of random bytes between record 10 and record 11 (a block of someone else's
 * data): the scan goes through them in seconds, not minutes, finds record 11 after them,
 * and reports them as one region. */
static void test_random_garbage_fast(void **state)
{
    fixture_t *f = *state;
    uint64_t size = write_segment(f, &spool_real, 1, 1, 10, NULL);
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(&spool_real, 1, name);
    int fd = openat(f->dir_fd, name, O_RDWR);
    assert_true(fd >= 0);
    size_t n = 16u << 20;
    uint8_t *junk = malloc(n);
    assert_non_null(junk);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(junk + i, &x, 8);
    }
    assert_int_equal(kvl_seglog_pwrite(fd, junk, n, size), 0);
    free(junk);
    uint8_t rec[256];
    size_t len = body_len(11);
    body_fill(rec + 16, 11, len);
    kvl_seglog_seal(&spool_real, rec, 11, rec + 16, len, NULL, 0);
    assert_int_equal(kvl_seglog_pwrite(fd, rec, 16 + len, size + n), 0);
    close(fd);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kvl_seglog_scan_t sc;
    check(f, &spool_real, 1, KVL_SEGLOG_CHECK_REPAIR, 1, &sc);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    print_message("16 MiB of random bytes scanned in %.2f s\n", secs);
    assert_true(secs < 30); /* byte by byte with a CRC each would take hours */
    assert_int_equal(sc.n_records, 11);
    assert_int_equal(sc.n_damage, 1);
    assert_int_equal(sc.damage[0].from, size);
    assert_int_equal(sc.damage[0].to, size + n);
    assert_int_equal(sc.damage[0].seq_after, 11);
    assert_false(sc.cut);
    kvl_seglog_scan_free(&sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_tail_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_zeroed_tail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_crc_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_crc_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_impossible_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segments_and_deletion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_names_and_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_middle_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_middle_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fake_in_body_spool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fake_in_body_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_seq_bounds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sparse_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_garbage_fast, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
