/*
 * fuzz_spool.c — libFuzzer target for the agent's spool (agent/spool.h): what open and
 * read make of whatever a power cut, a bad disk or a stray file leaves in the folder.
 *
 * Input: byte 0 holds flags, byte 1 a split point, the rest file contents.
 *   flag 1: a valid segment header is put in front of the contents (so the fuzzer spends
 *           its time on records, not on the magic);
 *   flag 2: the contents are split in two segment files (the first one is then a segment
 *           in the middle, whose damage is skipped rather than cut);
 *   flag 4: the last 32 bytes become the reader's cursor file instead;
 *   flag 8: after open, one byte of the first segment (at the split point) is inverted
 *           on disk, so reading meets damage open did not see;
 *   flag 16: the contents are not the file but records to write into it with good CRCs
 *           and seqs 1, 2, 3... (each: a length byte, then that many bytes, at least one),
 *           one byte of them inverted at the split point (a fraction of 256 of the size).
 * Beyond "no crash, no leak, no sanitizer report", it checks the promises: open either
 * fails with a negative code and a message or gives a spool whose records read back in
 * increasing order above the acknowledged position; a new record appended after it reads
 * back as written; unless flag 8 damaged a file behind its back, opening again finds
 * exactly the same records (the repair holds); and with flag 16 alone, an inverted byte
 * outside a length field loses exactly the record it is in when another follows (the
 * spool resynchronises on it), no other record when it is the last (unless a record is
 * forged inside another).
 * A broken promise calls abort(), which libFuzzer reports as a crash.
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
#include "log.h"
#include "seglog.h"
#include "spool.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The spool's segment format (spool.c's seg_fmt). */
static const kvl_seglog_format_t spool_fmt = {
    .magic = {'k', 'v', 'l', 's', 'p', 'o', 'o', 'l'},
    .version = KVL_SPOOL_FORMAT_VERSION,
    .suffix = ".seg",
    .extra = 0,
    .crc_covers_len = true,
    .len_min = 1,
    .len_max = KVL_SPOOL_RECORD_MAX,
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

static void write_file(const char *name, const uint8_t *hdr, size_t hlen, const uint8_t *p,
                       size_t n)
{
    int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, hdr, hlen) == (ssize_t)hlen);
    CHECK(write(fd, p, n) == (ssize_t)n);
    close(fd);
}

static void remove_dir(void)
{
    clean();
    close(dir_fd);
    rmdir(dir);
}

/* Inverts the byte at `at` (a fraction of 256 of its size) of the first segment. */
static void damage(size_t at)
{
    int fd = openat(dir_fd, "0000000000000001.seg", O_RDWR);
    if (fd < 0) {
        return; /* deleted at open */
    }
    off_t size = lseek(fd, 0, SEEK_END);
    if (size > 0) {
        off_t off = (off_t)at * size / 256;
        uint8_t c;
        if (pread(fd, &c, 1, off) == 1) {
            c = (uint8_t)~c;
            CHECK(pwrite(fd, &c, 1, off) == 1);
        }
    }
    close(fd);
}

static const char *const readers[] = {"primary"};

static int open_spool(kvl_spool_t **sp)
{
    kvl_spool_opts_t o = {.dir = dir,
                          .max_bytes = 1 << 20,
                          .segment_bytes = 4096,
                          .sync_interval_ms = -1,
                          .readers = readers,
                          .n_readers = 1};
    char err[512] = "";
    int rc = kvl_spool_open(&o, sp, err, sizeof(err));
    if (rc != 0) {
        CHECK(rc < 0 && *sp == NULL && err[0] != '\0');
    }
    return rc;
}

/* Reads everything; returns how many records, checking order and the acknowledged mark. */
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t read_all(kvl_spool_t *sp, uint64_t *last, kvl_buf_t *b)
{
    kvl_spool_reader_stats_t rs;
    kvl_spool_reader_stats(sp, 0, &rs);
    uint64_t n = 0, prev = rs.acked_seq, seq = 0;
    int rc;
    while ((rc = kvl_spool_read(sp, 0, &seq, b)) == 1) {
        CHECK(seq > prev);
        CHECK(b->len >= 1 && b->len <= KVL_SPOOL_RECORD_MAX);
        prev = seq;
        n++;
    }
    CHECK(rc == 0);
    *last = prev;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (dir_fd < 0) {
        kvl_log_level = -1;
        snprintf(dir, sizeof(dir), "/tmp/kvl-fuzz-spool-%ld", (long)getpid());
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
    const size_t at = data[1];
    data += 2;
    size -= 2;
    uint8_t hdr[16];
    size_t hlen = 0;
    if (flags & 1) {
        memcpy(hdr, "kvlspool", 8);
        hdr[8] = KVL_SPOOL_FORMAT_VERSION, hdr[9] = hdr[10] = hdr[11] = 0;
        uint32_t c = kvl_crc32c(0, hdr, 12);
        for (int i = 0; i < 4; i++) {
            hdr[12 + i] = (uint8_t)(c >> (8 * i));
        }
        hlen = sizeof(hdr);
    }
    uint8_t *built = NULL;
    uint64_t n_built = 0;
    bool one_lost = false, last_damaged = false;
    if (flags & 16) {
        size_t n = 0, at2 = 0;
        built = malloc(size * 17 + 1);
        CHECK(built != NULL);
        while (at2 < size) {
            size_t len = data[at2++];
            len = len > size - at2 ? size - at2 : len;
            if (len == 0) {
                continue;
            }
            uint64_t seq = ++n_built;
            uint8_t *r = built + n;
            r[0] = (uint8_t)len, r[1] = r[2] = r[3] = 0;
            for (int i = 0; i < 8; i++) {
                r[8 + i] = (uint8_t)(seq >> (8 * i));
            }
            memcpy(r + 16, data + at2, len);
            uint32_t c = kvl_crc32c(kvl_crc32c(0, r, 4), r + 8, 8 + len);
            for (int i = 0; i < 4; i++) {
                r[4 + i] = (uint8_t)(c >> (8 * i));
            }
            n += 16 + len;
            at2 += len;
        }
        size_t pos = split * n / 256;
        if (pos < n) {
            size_t r0 = 0;
            while (r0 + 16 + get32(built + r0) <= pos) {
                r0 += 16 + get32(built + r0);
            }
            one_lost = pos - r0 >= 4 && !(flags & (2 | 4 | 8));
            last_damaged = r0 + 16 + get32(built + r0) >= n;
            built[pos] = (uint8_t)~built[pos];
            one_lost = one_lost && !forgeable(&spool_fmt, built, n);
        }
        data = built;
        size = n;
        if (!(flags & 1)) {
            flags |= 1;
            memcpy(hdr, "kvlspool", 8);
            hdr[8] = KVL_SPOOL_FORMAT_VERSION, hdr[9] = hdr[10] = hdr[11] = 0;
            uint32_t c = kvl_crc32c(0, hdr, 12);
            for (int i = 0; i < 4; i++) {
                hdr[12 + i] = (uint8_t)(c >> (8 * i));
            }
            hlen = sizeof(hdr);
        }
    }
    if ((flags & 4) && size >= 32) {
        write_file("primary.cursor", hdr, 0, data + size - 32, 32);
        size -= 32;
    }
    if ((flags & 2) && size > 0) {
        split = split * size / 256;
        write_file("0000000000000001.seg", hdr, hlen, data, split);
        write_file("0000000000000100.seg", hdr, hlen, data + split, size - split);
    } else {
        write_file("0000000000000001.seg", hdr, hlen, data, size);
    }

    kvl_spool_t *sp = NULL;
    if (open_spool(&sp) != 0) {
        free(built);
        return 0;
    }
    if (flags & 8) {
        damage(at);
    }
    kvl_buf_t b = {0};
    uint64_t last_read;
    uint64_t n_read = read_all(sp, &last_read, &b);
    kvl_spool_stats_t st;
    kvl_spool_stats(sp, &st);
    if (one_lost) {
        /* The last record's bytes are searched: a record forged inside them would count. */
        CHECK(n_read == st.records);
        CHECK(n_read == n_built - 1 || (last_damaged && n_read >= n_built - 1));
    }
    uint64_t records = st.records;
    uint64_t last = kvl_spool_last_seq(sp);
    CHECK(last >= last_read);
    if (last < UINT64_MAX) {
        static const uint8_t rec[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
        CHECK(kvl_spool_append(sp, last + 1, rec, sizeof(rec)) == 0);
        uint64_t seq = 0;
        CHECK(kvl_spool_read(sp, 0, &seq, &b) == 1);
        CHECK(seq == last + 1 && b.len == sizeof(rec) && memcmp(b.data, rec, sizeof(rec)) == 0);
        CHECK(kvl_spool_read(sp, 0, &seq, &b) == 0);
        records++;
        last++;
    }
    kvl_spool_free(sp);

    sp = NULL;
    CHECK(open_spool(&sp) == 0);
    kvl_spool_stats_t again;
    kvl_spool_stats(sp, &again);
    if (!(flags & 8)) {
        CHECK(again.records == records);
        CHECK(again.cut_bytes <= st.cut_bytes);
        CHECK(kvl_spool_last_seq(sp) == last);
    }
    read_all(sp, &last_read, &b);
    kvl_spool_free(sp);
    kvl_buf_free(&b);
    free(built);
    return 0;
}
