/*
 * fuzz_seglog.c — libFuzzer target for the segment log (common/seglog.h): a folder of
 * segment files made of fuzz bytes, checked (the last one repaired) and read back, in the
 * spool's format and in the journal's.
 *
 * Input: byte 0 holds flags, byte 1 a split point, the rest file contents.
 *   flag 1: a valid segment header is put in front of each file's contents;
 *   flag 2: the contents are split in two segment files (the first is then a segment in
 *           the middle: checked without repair);
 *   flag 4: the journal's format (12 extra bytes, CRC without the length, a header check)
 *           instead of the spool's;
 *   flag 8: the contents are not the file but the records to write into it, sealed with
 *           good CRCs (each: a length byte, then that many bytes; the extra fields zero),
 *           the file then torn at the split point (a fraction of 256 of its size), and
 *           with flag 16 one byte inverted there instead, so that the fuzzer spends its
 *           time on tears and damage among good records;
 *   flag 32: with flag 8, the sequence numbers are bounded by one taken from the split
 *           byte (kvl_seglog_bounds_t.max_seq).
 * Beyond "no crash, no leak, no sanitizer report" it checks the promises: every record
 * read back lies below the checked end, outside the damaged regions reported (which are
 * in order, between good records, and counted), and has a CRC that a separate computation
 * here agrees with, in increasing order within the bounds, as many as the check counted;
 * a segment checked without repair is left byte for byte as it was; a repaired segment is
 * its good records and the damaged regions between them, and checking it again finds the
 * same, cuts nothing and changes no byte. One byte inverted among good records that is
 * not in a length field loses exactly the record it is in (resynchronisation by the
 * damaged record's own length) when another follows it, and no other record when it is
 * the last (unless, without dense seqs, a record is forged inside another). A broken promise calls
 * abort(), which libFuzzer reports as a crash.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "fuzz_check.h"
#include "kvl.h"
#include "seglog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool alen_ok(const uint8_t *h, uint32_t len)
{
    size_t alen = (size_t)h[26] | (size_t)h[27] << 8;
    return alen <= 255 && alen <= len && len - alen <= (64u << 20);
}

static const kvl_seglog_format_t spool_fmt = {
    .magic = {'k', 'v', 'l', 's', 'p', 'o', 'o', 'l'},
    .version = 1,
    .suffix = ".seg",
    .extra = 0,
    .crc_covers_len = true,
    .len_min = 1,
    .len_max = 64u << 20,
};

static const kvl_seglog_format_t journal_fmt = {
    .magic = {'k', 'v', 'l', 'j', 'r', 'n', 'l', '\0'},
    .version = 1,
    .suffix = ".jnl",
    .extra = 12,
    .crc_covers_len = false,
    .len_min = 0,
    .len_max = UINT32_MAX,
    .header_ok = alen_ok,
    .seq_dense = true,
};

/* True when a record parses at an offset of p (n bytes) that is not one of the records'
 * starts (walked by their lengths from 0): one forged inside another, which a search for
 * the next record after damage may take. */
static bool forgeable(const kvl_seglog_format_t *f, const uint8_t *p, size_t n)
{
    size_t hl = kvl_seglog_rec_header(f), next = 0;
    for (size_t o = 0; o + hl <= n; o++) {
        if (o == next) {
            next = o + hl +
                   ((size_t)p[o] | (size_t)p[o + 1] << 8 | (size_t)p[o + 2] << 16 |
                    (size_t)p[o + 3] << 24);
            continue;
        }
        kvl_seglog_rec_t r;
        if (kvl_seglog_parse(f, p + o, n - o, &r, NULL) == 1) {
            return true;
        }
    }
    return false;
}

static char dir[64];
static int dir_fd = -1;

static void clean(void)
{
    int fd = dup(dir_fd);
    DIR *d = fdopendir(fd);
    CHECK(d != NULL);
    rewinddir(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            unlinkat(dir_fd, e->d_name, 0);
        }
    }
    closedir(d);
}

static void remove_dir(void)
{
    clean();
    close(dir_fd);
    rmdir(dir);
}

static void write_seg(const kvl_seglog_format_t *f, uint64_t num, const uint8_t *hdr, size_t hlen,
                      const uint8_t *p, size_t n)
{
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(f, num, name);
    int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, hdr, hlen) == (ssize_t)hlen);
    CHECK(write(fd, p, n) == (ssize_t)n);
    close(fd);
}

/* The whole file (malloc'd, *n bytes), or NULL when it is gone. */
static uint8_t *slurp(const kvl_seglog_format_t *f, uint64_t num, size_t *n)
{
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(f, num, name);
    int fd = openat(dir_fd, name, O_RDONLY);
    if (fd < 0) {
        return NULL;
    }
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    *n = (size_t)st.st_size;
    uint8_t *p = malloc(*n + 1);
    CHECK(p != NULL);
    CHECK(pread(fd, p, *n, 0) == (ssize_t)*n);
    close(fd);
    return p;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The CRC as the formats define it, computed here without seglog.c. */
static uint32_t own_crc(const kvl_seglog_format_t *f, const uint8_t *rec, size_t hl, uint32_t len)
{
    if (f->crc_covers_len) {
        uint32_t c = kvl_crc32c(0, rec, 4);
        c = kvl_crc32c(c, rec + 8, 8 + f->extra);
        return kvl_crc32c(c, rec + hl, len);
    }
    return kvl_crc32c(0, rec + 8, hl - 8 + len);
}

/* Reads every record below sc->end, jumping the damaged regions, checking each against the
 * file's bytes and the bounds. */
static void read_back(const kvl_seglog_format_t *f, uint64_t num, const kvl_seglog_scan_t *sc,
                      const kvl_seglog_bounds_t *b, const uint8_t *file, size_t n)
{
    kvl_seglog_file_t sf;
    kvl_seglog_file_init(&sf);
    CHECK(kvl_seglog_file_open(f, &sf, dir_fd, num, O_RDONLY) == 0);
    size_t hl = kvl_seglog_rec_header(f);
    uint64_t off = KVL_SEGLOG_HEADER, count = 0, prev = 0, bytes = 0, dbytes = 0, lost = 0;
    size_t hole = 0;
    kvl_seglog_rec_t r;
    int rc = 0;
    while (off < sc->end) {
        if (hole < sc->n_damage && sc->damage[hole].from == off) {
            const kvl_seglog_damage_t *d = &sc->damage[hole++];
            CHECK(d->to > d->from && d->to < sc->end && d->seq_after > d->seq_before);
            CHECK(count == 0 || d->seq_before == prev);
            CHECK(hole == sc->n_damage || sc->damage[hole].from > d->to);
            dbytes += d->to - d->from;
            lost += d->records == KVL_SEGLOG_UNKNOWN ? 0 : d->records;
            if (f->seq_dense) {
                CHECK(d->records == d->seq_after - d->seq_before - 1);
            }
            off = d->to;
            CHECK(kvl_seglog_file_next(f, &sf, off, sc->end, &r, NULL) == 1);
            CHECK(r.seq == d->seq_after);
            continue;
        }
        rc = kvl_seglog_file_next(f, &sf, off, sc->end, &r, NULL);
        CHECK(rc == 1);
        CHECK(off + r.size <= sc->end && sc->end <= n);
        CHECK(r.size == hl + r.len && le32(file + off) == r.len);
        CHECK(memcmp(r.body, file + off + hl, r.len) == 0);
        CHECK(own_crc(f, file + off, hl, r.len) == le32(file + off + 4));
        CHECK(count == 0 || r.seq > prev);
        CHECK(r.seq >= b->min_seq && (b->max_seq == 0 || r.seq <= b->max_seq));
        prev = r.seq;
        bytes += r.len;
        count++;
        off += r.size;
    }
    CHECK(off == sc->end && hole == sc->n_damage);
    CHECK(count == sc->n_records && bytes == sc->body_bytes);
    CHECK(dbytes == sc->damaged_bytes && lost == sc->lost_records);
    CHECK(count == 0 || (sc->first_seq <= sc->last_seq && prev == sc->last_seq));
    kvl_seglog_file_free(&sf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (dir_fd < 0) {
        snprintf(dir, sizeof(dir), "/tmp/kvl-fuzz-seglog-%ld", (long)getpid());
        mkdir(dir, 0700);
        dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
        CHECK(dir_fd >= 0);
        atexit(remove_dir);
    }
    if (size < 2) {
        return 0;
    }
    clean();
    unsigned flags = data[0];
    size_t split = data[1];
    data += 2;
    size -= 2;
    const kvl_seglog_format_t *f = (flags & 4) ? &journal_fmt : &spool_fmt;

    /* The pure parser on the raw bytes. */
    kvl_seglog_rec_t pr;
    if (kvl_seglog_parse(f, data, size, &pr, NULL) == 1) {
        CHECK(pr.size <= size && pr.body == data + kvl_seglog_rec_header(f));
    }

    uint8_t *built = NULL;
    uint64_t n_built = 0;         /* records built */
    bool one_record_lost = false; /* one byte inverted outside a length field */
    bool damaged_last = false;    /* in the last record */
    uint64_t max_seq = 0;
    if (flags & 8) {
        size_t hl = kvl_seglog_rec_header(f), n = 0, at = 0;
        built = malloc(size * (hl + 1) + 1);
        CHECK(built != NULL);
        for (uint64_t seq = 1; at < size; seq++) {
            size_t len = data[at++];
            if (len > size - at) {
                len = size - at;
            }
            if (len < f->len_min) {
                continue;
            }
            memset(built + n, 0, hl);
            memcpy(built + n + hl, data + at, len);
            kvl_seglog_seal(f, built + n, seq, built + n + hl, len, NULL, 0);
            n += hl + len;
            at += len;
            n_built++;
        }
        size_t pos = split * n / 256;
        if (flags & 32) {
            max_seq = split;
        } else if (flags & 16) {
            if (pos < n) {
                built[pos] = (uint8_t)~built[pos];
                size_t r0 = 0; /* the start of the record pos is in */
                while (r0 + hl + le32(built + r0) <= pos) {
                    r0 += hl + le32(built + r0);
                }
                size_t in = pos - r0;
                one_record_lost = in >= 4 && !(f->header_ok != NULL && (in == 26 || in == 27)) &&
                                  (f->seq_dense || !forgeable(f, built, n));
                damaged_last = r0 + hl + le32(built + r0) >= n;
            }
        } else {
            n = pos;
        }
        data = built;
        size = n;
        flags |= 1;
    }
    uint8_t hdr[KVL_SEGLOG_HEADER];
    size_t hlen = 0;
    if (flags & 1) {
        kvl_seglog_header_make(f, hdr);
        hlen = sizeof(hdr);
    }
    if ((flags & 2) && size > 0) {
        split = split * size / 256;
        write_seg(f, 1, hdr, hlen, data, split);
        write_seg(f, 0x100, hdr, hlen, data + split, size - split);
    } else {
        write_seg(f, 1, hdr, hlen, data, size);
    }

    uint64_t *nums;
    size_t n_nums;
    CHECK(kvl_seglog_list(f, dir_fd, &nums, &n_nums, NULL, NULL) == 0);
    CHECK(n_nums == ((flags & 2) && size > 0 ? 2u : 1u));
    uint64_t prev = 0;
    for (size_t i = 0; i < n_nums; i++) {
        bool last = i + 1 == n_nums;
        size_t n0 = 0;
        uint8_t *before = slurp(f, nums[i], &n0);
        CHECK(before != NULL);
        kvl_seglog_file_t sf;
        kvl_seglog_file_init(&sf);
        kvl_seglog_scan_t sc;
        uint64_t min_seq = prev + 1 > nums[i] ? prev + 1 : nums[i];
        kvl_seglog_bounds_t b = {.min_seq = min_seq, .max_seq = max_seq};
        CHECK(kvl_seglog_check(f, &sf, dir_fd, nums[i], last ? KVL_SEGLOG_CHECK_REPAIR : 0, &b, &sc,
                               NULL) == 0);
        kvl_seglog_file_free(&sf);
        CHECK(sc.size == n0 && sc.end <= sc.size);
        size_t n1 = 0;
        uint8_t *after = slurp(f, nums[i], &n1);
        CHECK(after != NULL);
        if (sc.header != 0 || sc.version != f->version) {
            CHECK(n1 == n0 && memcmp(before, after, n0) == 0 && !sc.cut);
        } else if (sc.cut) {
            CHECK(last && n1 == sc.end && memcmp(before, after, n1) == 0);
        } else {
            CHECK(n1 == n0 && memcmp(before, after, n0) == 0);
            CHECK(!last || sc.end == sc.size);
        }
        if (sc.header == 0 && sc.version == f->version) {
            read_back(f, nums[i], &sc, &b, after, n1);
            if (one_record_lost && !(flags & 2)) {
                /* In the middle: found where the damaged record's length points. The last
                 * one's bytes are searched, and a record forged inside them would count. */
                CHECK(sc.n_records == n_built - 1 || (damaged_last && sc.n_records >= n_built - 1));
                CHECK(sc.n_damage == 0 || (sc.n_damage == 1 && sc.lost_records == 1) ||
                      damaged_last);
            }
            if (sc.n_records > 0) {
                CHECK(sc.first_seq >= min_seq);
                prev = sc.last_seq;
            }
            if (last) {
                /* The repair holds: the same records, nothing more to cut. */
                kvl_seglog_file_init(&sf);
                kvl_seglog_scan_t again;
                CHECK(kvl_seglog_check(f, &sf, dir_fd, nums[i], KVL_SEGLOG_CHECK_REPAIR, &b, &again,
                                       NULL) == 0);
                kvl_seglog_file_free(&sf);
                CHECK(!again.cut && again.why == NULL && again.end == again.size);
                CHECK(again.size == sc.end && again.n_records == sc.n_records);
                CHECK(again.first_seq == sc.first_seq && again.last_seq == sc.last_seq);
                CHECK(again.body_bytes == sc.body_bytes && again.n_damage == sc.n_damage);
                CHECK(again.damaged_bytes == sc.damaged_bytes);
                kvl_seglog_scan_free(&again);
                size_t n2 = 0;
                uint8_t *third = slurp(f, nums[i], &n2);
                CHECK(third != NULL && n2 == n1 && memcmp(third, after, n1) == 0);
                free(third);
            }
        }
        kvl_seglog_scan_free(&sc);
        free(before);
        free(after);
    }
    free(nums);
    free(built);
    return 0;
}
