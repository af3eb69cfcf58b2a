/*
 * fuzz_journal.c — libFuzzer target for the collector's journal (collector/ingest/journal.h):
 * what the record reader and open make of whatever a crash, a power cut or a bad disk
 * leaves in the journal folder.
 *
 * Input: byte 0 holds flags, byte 1 a split point, the rest file contents.
 *   flag 1: a valid segment header is put in front of the contents (so the fuzzer spends
 *           its time on records, not on the header);
 *   flag 2: the contents are split in two segment files (the first one is then a segment
 *           in the middle, whose damage is skipped rather than cut);
 *   flag 4: the contents are not the file but records to write into it with good CRCs
 *           and jseqs 1, 2, 3... (each: a length byte, then that many bytes of data), and
 *           one byte of them inverted at the split point (a fraction of 256 of the size).
 * Beyond "no crash, no leak, no sanitizer report", it checks the promises: the record
 * parser never claims more bytes than it was given; open either fails with a negative
 * code and a message, or replays records in strictly increasing jseq; opening again
 * finds exactly the same records (the repair holds); and with flag 4, an inverted byte
 * outside the length fields loses exactly the one record it is in when another follows
 * (the journal resynchronises on it), and that loss is counted; no other record when it
 * is the last. A broken promise
 * calls abort(), which libFuzzer reports as a crash.
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
#include "journal.h"
#include "kvl.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void clean(void)
{
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            char p[512];
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    closedir(d);
}

static void put_file(const char *name, bool header, const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0);
    if (header) {
        uint8_t h[KVL_JOURNAL_HEADER] = {'k', 'v', 'l', 'j', 'r', 'n', 'l', 0, 1, 0, 0, 0};
        uint32_t crc = kvl_crc32c(0, h, 12);
        for (int i = 0; i < 4; i++) {
            h[12 + i] = (uint8_t)(crc >> (8 * i));
        }
        CHECK(write(fd, h, sizeof(h)) == (ssize_t)sizeof(h));
    }
    CHECK(n == 0 || write(fd, p, n) == (ssize_t)n);
    close(fd);
}

typedef struct sum {
    uint64_t n;
    uint64_t last;
    uint32_t crc;
    uint64_t lost; /* records the journal counted as lost to damage */
} sum_t;

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int visit(void *ctx, const kvl_jrec_t *r, uint64_t seg)
{
    sum_t *s = ctx;
    (void)seg;
    CHECK(r->jseq > s->last);
    CHECK(r->agent_len <= KVL_JOURNAL_AGENT_MAX && r->len <= KVL_JOURNAL_DATA_MAX);
    s->last = r->jseq;
    s->n++;
    s->crc = kvl_crc32c(s->crc, r->agent, r->agent_len);
    s->crc = kvl_crc32c(s->crc, r->data, r->len);
    return 0;
}

/* Opens and replays; returns 1 with *s filled, or 0 when open refused. */
static int open_and_sum(sum_t *s)
{
    kvl_journal_opts_t o = {.dir = dir, .no_sync = true};
    kvl_journal_t *j = NULL;
    char err[512] = "";
    int rc = kvl_journal_open(&o, &j, err, sizeof(err));
    if (rc != 0) {
        CHECK(rc < 0 && err[0] != '\0' && j == NULL);
        return 0;
    }
    memset(s, 0, sizeof(*s));
    kvl_journal_stats_t st;
    kvl_journal_stats(j, &st);
    s->lost = st.lost_records;
    CHECK(kvl_journal_replay(j, visit, s) == 0);
    CHECK(kvl_journal_last_jseq(j) >= s->last);
    kvl_journal_close(j);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (dir[0] == '\0') {
        kvl_log_level = -1; /* quiet: every input is damage of some kind */
        snprintf(dir, sizeof(dir), "/tmp/kvl-fuzz-journal-XXXXXX");
        CHECK(mkdtemp(dir) != NULL);
    }
    if (size < 2) {
        return 0;
    }
    unsigned flags = data[0];
    size_t split = data[1];
    data += 2;
    size -= 2;

    /* The parser alone, over the raw bytes. */
    size_t off = 0;
    while (off < size) {
        kvl_jrec_t r;
        size_t used = 0;
        int rc = kvl_journal_parse(data + off, size - off, &r, &used);
        if (rc != 1) {
            CHECK(rc == 0 || rc == KVL_EPROTO);
            break;
        }
        CHECK(used >= KVL_JOURNAL_RECORD_HEADER && used <= size - off);
        off += used;
    }

    clean();
    uint8_t *built = NULL;
    uint64_t n_built = 0;
    bool one_lost = false, last_damaged = false;
    if (flags & 4) {
        /* Good records from the input, then one byte inverted. */
        size_t n = 0, at = 0;
        built = malloc(size * (KVL_JOURNAL_RECORD_HEADER + 1) + 1);
        CHECK(built != NULL);
        while (at < size) {
            size_t len = data[at++];
            len = len > size - at ? size - at : len;
            n_built++;
            kvl_jrec_t r = {.jseq = n_built,
                            .seq = n_built,
                            .type = KVL_JREC_BATCH,
                            .data = data + at,
                            .len = len};
            uint8_t *enc;
            size_t elen;
            CHECK(kvl_journal_encode(&r, &enc, &elen) == 0);
            memcpy(built + n, enc, elen);
            free(enc);
            n += elen;
            at += len;
        }
        size_t pos = split * n / 256;
        if (pos < n) {
            size_t r0 = 0;
            while (r0 + KVL_JOURNAL_RECORD_HEADER + get32(built + r0) <= pos) {
                r0 += KVL_JOURNAL_RECORD_HEADER + get32(built + r0);
            }
            size_t in = pos - r0;
            one_lost = in >= 4 && in != 26 && in != 27; /* not the length, not the agent's */
            last_damaged = r0 + KVL_JOURNAL_RECORD_HEADER + get32(built + r0) >= n;
            built[pos] = (uint8_t)~built[pos];
        }
        data = built;
        size = n;
        flags = (flags | 1) & ~2u;
    }
    if ((flags & 2) && split < size) {
        put_file("0000000000000001.jnl", flags & 1, data, split);
        put_file("0000000000100000.jnl", flags & 1, data + split, size - split);
    } else {
        put_file("0000000000000001.jnl", flags & 1, data, size);
    }
    sum_t a, b;
    if (!open_and_sum(&a)) {
        free(built);
        return 0;
    }
    if (one_lost) {
        /* The last record's bytes are searched: a record forged inside them would count. */
        CHECK(a.n == n_built - 1 || (last_damaged && a.n >= n_built - 1));
        CHECK(a.lost <= 1 || last_damaged);
    }
    CHECK(open_and_sum(&b) == 1);
    CHECK(a.n == b.n && a.last == b.last && a.crc == b.crc);
    free(built);
    return 0;
}
