/*
 * spool.c — the agent's append-only, segmented, checksummed disk spool (see spool.h for
 * the format, the durability policy and how damage is handled).
 *
 * In memory the spool keeps one small entry per segment (its sequence range, record
 * count, valid length) and, per reader, the acknowledged sequence number and a read
 * position (segment index, offset) with a read-ahead buffer. Segments only ever leave
 * from the front (acknowledged or dropped by the bound), so readers' segment indexes are
 * shifted down when that happens. Every file operation goes through the folder's
 * descriptor (openat, unlinkat, renameat). The segment files themselves (names, header,
 * record framing and CRC, read-ahead, the check and torn-tail cut at open) are
 * common/seglog.c's; the readers, cursors, the bound and syncing are the spool's.
 */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "fileio.h"
#include "kvl.h"
#include "log.h"
#include "seglog.h"
#include "timeutil.h"
#include "wire.h"

#define CUR_MAGIC "kvlcursr"
#define SEG_HDR KVL_SEGLOG_HEADER
#define REC_HDR KVL_SEGLOG_REC_BASE /* no extra fields */
#define CUR_SIZE 32u
#define MAX_PENDING_FDS (KVL_SPOOL_SYNC_FDS - 1) /* rolled, not yet synced; +1 active */
#define DROP_LOG_INTERVAL_NS (60ull * 1000000000ull)

typedef struct seg {
    uint64_t name_seq;  /* from the file name */
    uint64_t first_seq; /* of its records; 0 when it has none */
    uint64_t last_seq;  /* 0 when it has none */
    uint64_t n_records;
    uint64_t payload_bytes;     /* sum of the records' payload lengths */
    uint64_t end;               /* offset just past the last good record */
    uint64_t file_bytes;        /* size on disk */
    kvl_seglog_damage_t *holes; /* damaged regions below end, in order (malloc'd) */
    size_t n_holes;
} seg_t;

typedef struct reader {
    char name[KVL_SPOOL_READER_NAME_MAX + 1];
    uint64_t acked;
    uint64_t saved; /* what its cursor file says */
    bool save_failed;
    size_t seg; /* read position: index into segs */
    uint64_t off;
    uint64_t dropped_records;
    uint64_t dropped_bytes;
    uint64_t damaged_seg, damaged_off; /* where the last damage found while reading was */
    kvl_seglog_file_t rb; /* read-ahead over the segment .num, below its valid end (bytes
                           * that never change once written) */
} reader_t;

struct kvl_spool {
    char *dir;
    int dir_fd;
    int lock_fd;
    uint64_t max_bytes;
    uint64_t segment_bytes;
    int64_t sync_interval_ms;

    seg_t *segs;
    size_t n_segs, cap_segs;
    int active_fd; /* open on segs[n_segs - 1] for appending, or -1 */
    bool active_dirty;
    bool dir_dirty;
    int pending_fds[MAX_PENDING_FDS]; /* rolled segments written since the last sync */
    size_t n_pending;

    reader_t readers[KVL_SPOOL_MAX_READERS];
    size_t n_readers;

    uint64_t last_seq;
    uint64_t total_bytes;
    kvl_buf_t wbuf;
    kvl_spool_stats_t st; /* the counters; sizes are computed in kvl_spool_stats */

    bool write_failing;
    bool sync_failing;
    bool index_failing;
    uint64_t drop_logged_ns;
    uint64_t drop_logged_records;
};

/* --------------------------------------------------------------- small helpers --------- */

/* The spool's segments: the format as it was before common/seglog.c, so existing spools
 * open unchanged. */
static const kvl_seglog_format_t seg_fmt = {
    .magic = {'k', 'v', 'l', 's', 'p', 'o', 'o', 'l'},
    .version = KVL_SPOOL_FORMAT_VERSION,
    .suffix = ".seg",
    .extra = 0,
    .crc_covers_len = true,
    .len_min = 1,
    .len_max = KVL_SPOOL_RECORD_MAX,
};

static void seg_name(char *out, size_t n, uint64_t seq)
{
    (void)n;
    kvl_seglog_name(&seg_fmt, seq, out);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) KVL_PRINTF(3, 4);
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* A spool file of a newer format: the spool is not touched. Returns KVL_EPROTO, the
 * sentence (what to do) in err. */
static int newer_format(const kvl_spool_t *sp, const char *name, uint32_t version, char *err,
                        size_t errlen)
{
    char path[4400], why[9000];
    snprintf(path, sizeof(path), "%s/%s", sp->dir, name);
    kvl_format_check(path, version, KVL_SPOOL_FORMAT_VERSION, "kaaval-agent",
                     "the batches waiting in it are then lost", why, sizeof(why));
    set_err(err, errlen, "%s", why);
    return KVL_EPROTO;
}

/* --------------------------------------------------------------- segments list --------- */

static int segs_push(kvl_spool_t *sp, const seg_t *s)
{
    if (sp->n_segs == sp->cap_segs) {
        size_t cap = sp->cap_segs ? sp->cap_segs * 2 : 16;
        seg_t *n = realloc(sp->segs, cap * sizeof(*n));
        if (n == NULL) {
            return KVL_ENOMEM;
        }
        sp->segs = n;
        sp->cap_segs = cap;
    }
    sp->segs[sp->n_segs++] = *s;
    return 0;
}

/* Replaces the index (seglog.h) with the segments in the list but the first `skip`.
 * A failure is logged once (and once when it works again), never returned: without an
 * index a lost segment only goes unreported. */
static void write_index(kvl_spool_t *sp, size_t skip)
{
    size_t n = sp->n_segs > skip ? sp->n_segs - skip : 0;
    uint64_t *v = malloc((n + 1) * sizeof(*v));
    int rc = KVL_ENOMEM;
    if (v != NULL) {
        for (size_t i = 0; i < n; i++) {
            v[i] = sp->segs[skip + i].name_seq;
        }
        rc = kvl_seglog_index_write(sp->dir_fd, v, n, sp->sync_interval_ms == 0);
        free(v);
    }
    if (rc != 0 && !sp->index_failing) {
        KVL_LOG_WARN("spool", sp->dir,
                     "cannot write " KVL_SEGLOG_INDEX ": %s (a lost segment may go unreported)",
                     kvl_strerror(rc));
    } else if (rc == 0 && sp->index_failing) {
        KVL_LOG_INFO("spool", sp->dir, KVL_SEGLOG_INDEX " written again");
    }
    sp->index_failing = rc != 0;
}

/* Removes the oldest segment from the list and the disk (the index first: a segment it
 * lists is never deleted on purpose). */
static void remove_front(kvl_spool_t *sp)
{
    write_index(sp, 1);
    seg_t *s = &sp->segs[0];
    char name[32];
    seg_name(name, sizeof(name), s->name_seq);
    if (sp->n_segs == 1 && sp->active_fd >= 0) {
        close(sp->active_fd);
        sp->active_fd = -1;
        sp->active_dirty = false;
    }
    for (size_t i = 0; i < sp->n_readers; i++) {
        reader_t *r = &sp->readers[i];
        if (r->rb.fd >= 0 && r->rb.num == s->name_seq) {
            kvl_seglog_file_close(&r->rb);
        }
        if (r->seg == 0) {
            r->off = SEG_HDR;
        } else {
            r->seg--;
        }
    }
    int rc = kvl_seglog_unlink(&seg_fmt, sp->dir_fd, s->name_seq);
    if (rc != 0) {
        KVL_LOG_WARN("spool", sp->dir, "cannot delete %s: %s", name, kvl_strerror(rc));
    }
    sp->dir_dirty = true;
    sp->total_bytes -= s->file_bytes;
    free(s->holes);
    memmove(sp->segs, sp->segs + 1, (sp->n_segs - 1) * sizeof(*sp->segs));
    sp->n_segs--;
}

static bool is_active(const kvl_spool_t *sp, size_t i)
{
    return sp->active_fd >= 0 && i + 1 == sp->n_segs;
}

/* When a damaged region found earlier starts at off: true with *to where it ends. */
static bool hole_at(const seg_t *s, uint64_t off, uint64_t *to)
{
    size_t lo = 0, hi = s->n_holes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->holes[mid].from < off) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < s->n_holes && s->holes[lo].from == off) {
        *to = s->holes[lo].to;
        return true;
    }
    return false;
}

/* The largest file a segment can be: segment_bytes, or a header and one record of the
 * longest kind, twice over for margin. A larger file named like a segment is not ours. */
static uint64_t seg_max_size(const kvl_spool_t *sp)
{
    uint64_t one = SEG_HDR + REC_HDR + (uint64_t)KVL_SPOOL_RECORD_MAX;
    return 2 * (sp->segment_bytes > one ? sp->segment_bytes : one);
}

static uint64_t min_acked(const kvl_spool_t *sp)
{
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < sp->n_readers; i++) {
        if (sp->readers[i].acked < m) {
            m = sp->readers[i].acked;
        }
    }
    return m;
}

/* Deletes the oldest segments while every reader has acknowledged all of them. */
static void collect(kvl_spool_t *sp)
{
    uint64_t m = min_acked(sp);
    while (sp->n_segs > 0 && !is_active(sp, 0) &&
           (sp->segs[0].n_records == 0 || sp->segs[0].last_seq <= m)) {
        remove_front(sp);
    }
}

/* --------------------------------------------------------------- cursor files ---------- */

static int save_cursor(kvl_spool_t *sp, reader_t *r)
{
    uint8_t b[CUR_SIZE] = {0};
    memcpy(b, CUR_MAGIC, 8);
    kvl_put_le32(b + 8, KVL_SPOOL_FORMAT_VERSION);
    kvl_put_le64(b + 16, r->acked);
    kvl_put_le32(b + 24, kvl_crc32c(0, b, 24));
    char tmp[KVL_SPOOL_READER_NAME_MAX + 16], name[KVL_SPOOL_READER_NAME_MAX + 16];
    snprintf(name, sizeof(name), "%s.cursor", r->name);
    snprintf(tmp, sizeof(tmp), "%s.cursor.tmp", r->name);
    int rc = 0;
    int fd = openat(sp->dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = -errno;
    } else {
        rc = kvl_seglog_pwrite(fd, b, sizeof(b), 0);
        if (close(fd) != 0 && rc == 0) {
            rc = -errno;
        }
        if (rc == 0 && renameat(sp->dir_fd, tmp, sp->dir_fd, name) != 0) {
            rc = -errno;
        }
        if (rc != 0) {
            unlinkat(sp->dir_fd, tmp, 0);
        }
    }
    if (rc != 0) {
        if (!r->save_failed) {
            KVL_LOG_WARN("spool", sp->dir, "cannot save the position of reader %s: %s", r->name,
                         kvl_strerror(rc));
        }
        r->save_failed = true;
        return rc;
    }
    if (r->save_failed) {
        KVL_LOG_INFO("spool", sp->dir, "position of reader %s saved again", r->name);
    }
    r->save_failed = false;
    r->saved = r->acked;
    return 0;
}

/* Reads a reader's cursor file. Returns 0 (acked set, 0 when absent or damaged) or
 * KVL_EPROTO for a newer version. */
static int load_cursor(kvl_spool_t *sp, reader_t *r, char *err, size_t errlen)
{
    char name[KVL_SPOOL_READER_NAME_MAX + 16];
    snprintf(name, sizeof(name), "%s.cursor", r->name);
    r->acked = 0;
    int fd = openat(sp->dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) {
            KVL_LOG_WARN("spool", sp->dir,
                         "cannot read %s (%s): reader %s starts from the oldest "
                         "record",
                         name, strerror(errno), r->name);
        }
        return 0;
    }
    uint8_t b[CUR_SIZE + 1];
    size_t got = 0;
    int rc = kvl_seglog_pread(fd, b, sizeof(b), 0, &got);
    close(fd);
    if (rc == 0 && got == CUR_SIZE && memcmp(b, CUR_MAGIC, 8) == 0 &&
        kvl_crc32c(0, b, 24) == kvl_get_le32(b + 24)) {
        uint32_t v = kvl_get_le32(b + 8);
        if (v > KVL_SPOOL_FORMAT_VERSION) {
            return newer_format(sp, name, v, err, errlen);
        }
        if (v == KVL_SPOOL_FORMAT_VERSION) {
            r->acked = kvl_get_le64(b + 16);
            r->saved = r->acked;
            if (r->acked > KVL_SEQ_IMPOSSIBLE) {
                /* An older agent took an impossible acknowledgement from a peer and kept
                 * it: trusting it would delete every batch not yet sent. */
                KVL_LOG_WARN("spool", sp->dir,
                             "%s says batches up to %" PRIu64
                             " were acknowledged, which no collector can have done: reader %s "
                             "starts from the oldest record (the collector drops what it has)",
                             name, r->acked, r->name);
                r->acked = 0;
            }
            return 0;
        }
    }
    KVL_LOG_WARN("spool", sp->dir, "%s is damaged: reader %s starts from the oldest record", name,
                 r->name);
    return 0;
}

/* --------------------------------------------------------------- open ------------------ */

static bool valid_reader_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > KVL_SPOOL_READER_NAME_MAX || s[0] == '.') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-')) {
            return false;
        }
    }
    return true;
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcmp(s + n - k, suffix) == 0;
}

/* Called with every name in the folder that is not a segment: removes leftover temporary
 * files and the cursor files of readers no longer configured. */
static void on_other_file(void *ctx, const char *name)
{
    kvl_spool_t *sp = ctx;
    if (strcmp(name, "lock") == 0 || strcmp(name, KVL_SEGLOG_INDEX) == 0) {
        return;
    }
    if (has_suffix(name, ".cursor.tmp") || strcmp(name, KVL_SEGLOG_INDEX_TMP) == 0) {
        unlinkat(sp->dir_fd, name, 0);
    } else if (has_suffix(name, ".stray")) {
        KVL_LOG_WARN("spool", sp->dir,
                     "%s was set aside earlier: not read (delete it once seen to)", name);
    } else if (has_suffix(name, ".cursor")) {
        size_t len = strlen(name) - strlen(".cursor");
        bool known = false;
        for (size_t i = 0; i < sp->n_readers; i++) {
            if (strlen(sp->readers[i].name) == len &&
                strncmp(sp->readers[i].name, name, len) == 0) {
                known = true;
            }
        }
        if (!known) {
            KVL_LOG_INFO("spool", sp->dir, "%s belongs to no configured reader: deleted", name);
            unlinkat(sp->dir_fd, name, 0);
        }
    } else {
        KVL_LOG_WARN("spool", sp->dir, "%s is not a spool file: left alone", name);
    }
}

/* A segment the index lists that is not in the folder was lost (segments are deleted only
 * after the index stops listing them). */
static void on_missing(void *ctx, uint64_t num, uint64_t next)
{
    kvl_spool_t *sp = ctx;
    char name[32];
    seg_name(name, sizeof(name), num);
    sp->st.missing_segments++;
    if (next > num) {
        KVL_LOG_ERROR("spool", sp->dir,
                      "%s is missing from the folder (the spool's index lists it): the batches in "
                      "it (seq %" PRIu64 " to %" PRIu64 ", how many is not known) are lost",
                      name, num, next - 1);
    } else {
        KVL_LOG_ERROR("spool", sp->dir,
                      "%s is missing from the folder (the spool's index lists it): the batches in "
                      "it (seq %" PRIu64 " on) are lost",
                      name, num);
    }
}

/* Reports the segments the index lists that are not among names (sorted). */
static void check_missing(kvl_spool_t *sp, const uint64_t *names, size_t n)
{
    /* 1: a spool from before the index, or a new one */
    int rc = kvl_seglog_index_check(sp->dir_fd, names, n, on_missing, sp);
    if (rc < 0) {
        KVL_LOG_WARN("spool", sp->dir, KVL_SEGLOG_INDEX " cannot be read (%s): %s",
                     kvl_strerror(rc), "segments missing from the folder cannot be told");
    }
}

/* Lists segment numbers (sorted) and cleans up the other files (on_other_file). */
static int list_dir(kvl_spool_t *sp, uint64_t **out, size_t *n_out)
{
    return kvl_seglog_list(&seg_fmt, sp->dir_fd, out, n_out, on_other_file, sp);
}

#define DAMAGE_LINES 8 /* damaged regions logged one by one per segment; the rest summed up */

/* "1 batch", "12 batches", or "1 batch or more (not countable)" when unknown. */
static const char *batches(uint64_t n, bool unknown, char *buf, size_t len)
{
    if (unknown) {
        snprintf(buf, len, "%" PRIu64 " batch%s or more (not countable)", n, n == 1 ? "" : "es");
    } else {
        snprintf(buf, len, "%" PRIu64 " batch%s", n, n == 1 ? "" : "es");
    }
    return buf;
}

/* Logs the damaged regions of a segment (one line each, the first DAMAGE_LINES, then one
 * line for the rest) and counts them. */
static void report_damage(kvl_spool_t *sp, const char *name, const kvl_seglog_damage_t *d, size_t n)
{
    uint64_t rest_bytes = 0, rest_records = 0;
    bool rest_unknown = false;
    for (size_t i = 0; i < n; i++) {
        bool unknown = d[i].records == KVL_SEGLOG_UNKNOWN;
        uint64_t recs = unknown ? 1 : d[i].records; /* a region starts with a record */
        sp->st.damaged_regions++;
        sp->st.lost_records += recs;
        sp->st.cut_bytes += d[i].to - d[i].from;
        if (i < DAMAGE_LINES) {
            char b[64];
            KVL_LOG_ERROR("spool", sp->dir,
                          "%s: damaged record (%s at offset %" PRIu64 "): %" PRIu64
                          " bytes skipped up to seq %" PRIu64 ", %s lost",
                          name, d[i].why, d[i].from, d[i].to - d[i].from, d[i].seq_after,
                          batches(recs, unknown, b, sizeof(b)));
        } else {
            rest_bytes += d[i].to - d[i].from;
            rest_records += recs;
            rest_unknown = rest_unknown || unknown;
        }
    }
    if (n > DAMAGE_LINES) {
        char b[64];
        KVL_LOG_ERROR(
            "spool", sp->dir, "%s: %zu more damaged regions, %" PRIu64 " bytes skipped, %s lost",
            name, n - DAMAGE_LINES, rest_bytes, batches(rest_records, rest_unknown, b, sizeof(b)));
    }
}

/* True when segment num can be one of ours: not too large and a header of the format. */
static bool usable_segment(kvl_spool_t *sp, uint64_t num)
{
    char name[32];
    seg_name(name, sizeof(name), num);
    int fd = openat(sp->dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    struct stat st;
    uint8_t h[SEG_HDR];
    size_t got = 0;
    uint32_t v;
    bool ok = fstat(fd, &st) == 0 && (uint64_t)st.st_size <= seg_max_size(sp) &&
              kvl_seglog_pread(fd, h, sizeof(h), 0, &got) == 0 &&
              kvl_seglog_header_check(&seg_fmt, h, got, &v) == 0;
    close(fd);
    return ok;
}

/* Checks one segment file and adds it to the list (or deletes it when it is the last one
 * and holds nothing, or sets it aside when it is too large to be one). `last`: appends may
 * continue in it; `next`: the number of the next segment (0: none), above every seq here. */
static int load_segment(kvl_spool_t *sp, uint64_t name_seq, uint64_t next, bool last,
                        kvl_seglog_file_t *rb, char *err, size_t errlen)
{
    char name[32];
    seg_name(name, sizeof(name), name_seq);
    uint64_t min_seq = sp->last_seq + 1 > name_seq ? sp->last_seq + 1 : name_seq;
    kvl_seglog_bounds_t b = {.min_seq = min_seq,
                             .max_seq = next > name_seq ? next - 1 : 0,
                             .max_size = seg_max_size(sp)};
    kvl_seglog_scan_t sc;
    const char *what = NULL;
    int rc = kvl_seglog_check(&seg_fmt, rb, sp->dir_fd, name_seq,
                              last ? KVL_SEGLOG_CHECK_REPAIR : 0, &b, &sc, &what);
    if (rc != 0) {
        kvl_seglog_scan_free(&sc);
        if (strcmp(what, "cut") == 0) {
            set_err(err, errlen, "spool %s: cannot cut the torn tail of %s: %s", sp->dir, name,
                    kvl_strerror(rc));
        } else {
            set_err(err, errlen, "spool %s: cannot %s %s: %s", sp->dir, what, name,
                    kvl_strerror(rc));
        }
        return rc;
    }
    uint64_t size = sc.size;
    seg_t s = {.name_seq = name_seq, .file_bytes = size};
    if (sc.oversize) {
        char aside[48];
        snprintf(aside, sizeof(aside), "%s.stray", name);
        KVL_LOG_ERROR("spool", sp->dir,
                      "%s: %" PRIu64 " bytes, more than a spool segment can be (%" PRIu64
                      "): not read, set aside as %s",
                      name, size, b.max_size, aside);
        kvl_seglog_file_close(rb);
        if (renameat(sp->dir_fd, name, sp->dir_fd, aside) != 0) {
            KVL_LOG_ERROR("spool", sp->dir, "cannot rename %s: %s", name, strerror(errno));
        }
        sp->st.stray_files++;
        return 0;
    }
    if (sc.header == 0 && sc.version > KVL_SPOOL_FORMAT_VERSION) {
        return newer_format(sp, name, sc.version, err, errlen);
    }
    if (sc.header != 0 || sc.version != KVL_SPOOL_FORMAT_VERSION) {
        if (last && size <= SEG_HDR) {
            KVL_LOG_WARN("spool", sp->dir, "%s: header cut short (%" PRIu64 " bytes): deleted",
                         name, size);
            sp->st.cut_bytes += size;
            kvl_seglog_file_close(rb);
            unlinkat(sp->dir_fd, name, 0);
            return 0;
        }
        KVL_LOG_ERROR("spool", sp->dir,
                      "%s: not a kaaval spool segment or its header is damaged: its %" PRIu64
                      " bytes are skipped",
                      name, size);
        sp->st.cut_bytes += size;
        return segs_push(sp, &s);
    }
    s.first_seq = sc.first_seq;
    s.last_seq = sc.last_seq;
    s.n_records = sc.n_records;
    s.payload_bytes = sc.body_bytes;
    s.end = sc.end;
    s.holes = sc.damage; /* ownership moves to the segment */
    s.n_holes = sc.n_damage;
    sc.damage = NULL;
    report_damage(sp, name, s.holes, s.n_holes);
    if (sc.end < size) {
        uint64_t cut = size - sc.end;
        sp->st.cut_bytes += cut;
        if (last) {
            KVL_LOG_WARN("spool", sp->dir,
                         "%s: torn or damaged tail (%s at offset %" PRIu64 "): cut off %" PRIu64
                         " bytes",
                         name, sc.why, sc.end, cut);
            s.file_bytes = sc.end;
        } else {
            KVL_LOG_ERROR("spool", sp->dir,
                          "%s: damaged end (%s at offset %" PRIu64 "): the remaining %" PRIu64
                          " bytes of this segment hold nothing valid and are skipped; the "
                          "batches in them are lost",
                          name, sc.why, sc.end, cut);
            sp->st.damaged_regions++;
        }
    }
    if (s.n_records == 0 && last) {
        free(s.holes);
        kvl_seglog_file_close(rb);
        unlinkat(sp->dir_fd, name, 0);
        return 0;
    }
    rc = segs_push(sp, &s);
    if (rc != 0) {
        free(s.holes);
        return rc;
    }
    if (s.n_records > 0) {
        sp->last_seq = s.last_seq;
    }
    if (last) {
        sp->active_fd = kvl_seglog_file_release(rb); /* ownership moves to the spool */
    }
    return 0;
}

static int open_dir(kvl_spool_t *sp, char *err, size_t errlen)
{
    sp->dir_fd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (sp->dir_fd < 0) {
        int rc = -errno;
        set_err(err, errlen, "spool directory %s: %s", sp->dir, strerror(errno));
        return rc;
    }
    sp->lock_fd = openat(sp->dir_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (sp->lock_fd < 0) {
        int rc = -errno;
        set_err(err, errlen, "spool directory %s: cannot create files in it: %s", sp->dir,
                strerror(errno));
        return rc;
    }
    if (flock(sp->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int rc = -errno;
        set_err(err, errlen, "spool directory %s: %s", sp->dir,
                errno == EWOULDBLOCK ? "in use by another process" : strerror(errno));
        return rc;
    }
    return 0;
}

static void free_all(kvl_spool_t *sp)
{
    for (size_t i = 0; i < sp->n_readers; i++) {
        kvl_seglog_file_close(&sp->readers[i].rb);
        kvl_buf_free(&sp->readers[i].rb.buf);
    }
    for (size_t i = 0; i < sp->n_pending; i++) {
        close(sp->pending_fds[i]);
    }
    if (sp->active_fd >= 0) {
        close(sp->active_fd);
    }
    if (sp->lock_fd >= 0) {
        close(sp->lock_fd);
    }
    if (sp->dir_fd >= 0) {
        close(sp->dir_fd);
    }
    kvl_buf_free(&sp->wbuf);
    for (size_t i = 0; i < sp->n_segs; i++) {
        free(sp->segs[i].holes);
    }
    free(sp->segs);
    free(sp->dir);
    free(sp);
}

int kvl_spool_open(const kvl_spool_opts_t *o, kvl_spool_t **out, char *err, size_t errlen)
{
    *out = NULL;
    set_err(err, errlen, "%s", "");
    if (o->dir == NULL || o->dir[0] == '\0') {
        set_err(err, errlen, "spool: no directory given");
        return KVL_EINVAL;
    }
    if (o->n_readers == 0 || o->n_readers > KVL_SPOOL_MAX_READERS) {
        set_err(err, errlen, "spool %s: between 1 and %d readers, not %zu", o->dir,
                KVL_SPOOL_MAX_READERS, o->n_readers);
        return KVL_EINVAL;
    }
    uint64_t max = o->max_bytes ? o->max_bytes : KVL_SPOOL_DEFAULT_MAX_BYTES;
    uint64_t segb = o->segment_bytes ? o->segment_bytes : KVL_SPOOL_DEFAULT_SEGMENT_BYTES;
    if (segb < KVL_SPOOL_MIN_SEGMENT_BYTES || max / 2 < segb) {
        set_err(err, errlen,
                "spool %s: max size (%" PRIu64 " bytes) must be at least twice the segment "
                "size (%" PRIu64 " bytes, at least %u)",
                o->dir, max, segb, KVL_SPOOL_MIN_SEGMENT_BYTES);
        return KVL_EINVAL;
    }
    kvl_spool_t *sp = calloc(1, sizeof(*sp));
    if (sp == NULL || (sp->dir = strdup(o->dir)) == NULL) {
        free(sp);
        set_err(err, errlen, "spool: out of memory");
        return KVL_ENOMEM;
    }
    sp->dir_fd = sp->lock_fd = sp->active_fd = -1;
    sp->max_bytes = max;
    sp->segment_bytes = segb;
    sp->sync_interval_ms = o->sync_interval_ms;
    for (size_t i = 0; i < o->n_readers; i++) {
        reader_t *r = &sp->readers[sp->n_readers++];
        r->rb.fd = -1;
        r->off = SEG_HDR;
        const char *nm = o->readers[i];
        if (nm == NULL || !valid_reader_name(nm)) {
            set_err(err, errlen,
                    "spool %s: reader name '%s' must be 1 to %d of A-Z a-z 0-9 _ . : - "
                    "and not start with '.'",
                    o->dir, nm ? nm : "(null)", KVL_SPOOL_READER_NAME_MAX);
            free_all(sp);
            return KVL_EINVAL;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(sp->readers[k].name, nm) == 0) {
                set_err(err, errlen, "spool %s: reader '%s' named twice", o->dir, nm);
                free_all(sp);
                return KVL_EINVAL;
            }
        }
        snprintf(r->name, sizeof(r->name), "%s", nm);
    }
    int rc = open_dir(sp, err, errlen);
    uint64_t *names = NULL;
    size_t n_names = 0;
    if (rc == 0) {
        rc = list_dir(sp, &names, &n_names);
        if (rc != 0) {
            set_err(err, errlen, "spool directory %s: cannot list it: %s", sp->dir,
                    kvl_strerror(rc));
        }
    }
    kvl_seglog_file_t rb = {.fd = -1};
    for (size_t i = 0; rc == 0 && i < n_names; i++) {
        /* The next segment that can be ours bounds this one's sequence numbers. */
        uint64_t next = 0;
        for (size_t k = i + 1; k < n_names && next == 0; k++) {
            next = usable_segment(sp, names[k]) ? names[k] : 0;
        }
        rc = load_segment(sp, names[i], next, i + 1 == n_names, &rb, err, errlen);
        bool kept = sp->n_segs > 0 && sp->segs[sp->n_segs - 1].name_seq == names[i];
        if (rc == 0 && kept && names[i] > sp->last_seq) {
            sp->last_seq = names[i]; /* so no new segment can take an existing name */
        }
    }
    kvl_seglog_file_close(&rb);
    kvl_buf_free(&rb.buf);
    if (rc == 0) {
        check_missing(sp, names, n_names);
        write_index(sp, 0); /* what is there now: a loss is reported once */
    }
    free(names);
    for (size_t i = 0; rc == 0 && i < sp->n_readers; i++) {
        rc = load_cursor(sp, &sp->readers[i], err, errlen);
        if (sp->readers[i].acked > sp->last_seq) {
            sp->last_seq = sp->readers[i].acked;
        }
    }
    if (rc != 0) {
        free_all(sp);
        return rc;
    }
    collect(sp);
    for (size_t i = 0; i < sp->n_readers; i++) {
        kvl_spool_rewind(sp, (int)i);
    }
    uint64_t records = 0;
    for (size_t i = 0; i < sp->n_segs; i++) {
        records += sp->segs[i].n_records;
        sp->total_bytes += sp->segs[i].file_bytes;
    }
    KVL_LOG_INFO("spool", sp->dir,
                 "opened: %zu segments, %" PRIu64 " records, %" PRIu64 " bytes, last seq %" PRIu64,
                 sp->n_segs, records, sp->total_bytes, sp->last_seq);
    *out = sp;
    return 0;
}

void kvl_spool_free(kvl_spool_t *sp)
{
    if (sp == NULL) {
        return;
    }
    if (sp->sync_interval_ms >= 0) {
        kvl_spool_sync(sp);
    }
    for (size_t i = 0; i < sp->n_readers; i++) {
        reader_t *r = &sp->readers[i];
        if (r->acked != r->saved) {
            save_cursor(sp, r);
        }
    }
    free_all(sp);
}

int kvl_spool_reader(const kvl_spool_t *sp, const char *name)
{
    for (size_t i = 0; i < sp->n_readers; i++) {
        if (strcmp(sp->readers[i].name, name) == 0) {
            return (int)i;
        }
    }
    return KVL_EINVAL;
}

uint64_t kvl_spool_last_seq(const kvl_spool_t *sp)
{
    return sp->last_seq;
}

/* --------------------------------------------------------------- append ---------------- */

static void log_write_error(kvl_spool_t *sp, const char *what, int rc)
{
    sp->st.write_errors++;
    if (!sp->write_failing) {
        KVL_LOG_ERROR("spool", sp->dir, "%s: %s; batches are not spooled until this clears", what,
                      kvl_strerror(rc));
    }
    sp->write_failing = true;
}

static int sync_fd(kvl_spool_t *sp, int fd, bool dir)
{
    int r = dir ? fsync(fd) : fdatasync(fd);
    if (r != 0) {
        int rc = -errno;
        sp->st.sync_errors++;
        if (!sp->sync_failing) {
            KVL_LOG_ERROR("spool", sp->dir, "cannot sync to disk: %s", strerror(errno));
        }
        sp->sync_failing = true;
        return rc;
    }
    return 0;
}

/* Stops appending to the active segment; keeps its descriptor for the next sync when it
 * holds unsynced data. */
static void roll(kvl_spool_t *sp)
{
    if (sp->active_fd < 0) {
        return;
    }
    if (sp->active_dirty && sp->sync_interval_ms > 0) {
        if (sp->n_pending == MAX_PENDING_FDS) {
            sync_fd(sp, sp->pending_fds[0], false);
            close(sp->pending_fds[0]);
            memmove(sp->pending_fds, sp->pending_fds + 1,
                    (MAX_PENDING_FDS - 1) * sizeof(sp->pending_fds[0]));
            sp->n_pending--;
        }
        sp->pending_fds[sp->n_pending++] = sp->active_fd;
    } else {
        close(sp->active_fd);
    }
    sp->active_fd = -1;
    sp->active_dirty = false;
}

/* Counts the records of segment s with seq > after, and their payload bytes. */
static void count_after(kvl_spool_t *sp, const seg_t *s, uint64_t after, uint64_t *n,
                        uint64_t *bytes)
{
    *n = 0;
    *bytes = 0;
    if (s->n_records == 0 || after >= s->last_seq) {
        return;
    }
    if (after < s->first_seq) {
        *n = s->n_records;
        *bytes = s->payload_bytes;
        return;
    }
    kvl_seglog_file_t rb;
    kvl_seglog_file_init(&rb);
    kvl_seglog_file_open(&seg_fmt, &rb, sp->dir_fd, s->name_seq, O_RDONLY); /* -1 on failure */
    uint64_t off = SEG_HDR, seen = 0, seen_bytes = 0;
    while (rb.fd >= 0 && off < s->end) {
        const uint8_t *h;
        uint64_t to;
        if (hole_at(s, off, &to)) {
            off = to;
            continue;
        }
        if (kvl_seglog_file_get(&rb, off, REC_HDR, s->end, &h) != 0) {
            break;
        }
        uint32_t len = kvl_get_le32(h);
        if (kvl_get_le64(h + 8) > after) {
            break;
        }
        seen++;
        seen_bytes += len;
        off += REC_HDR + len;
    }
    /* What could not be read is counted as not acknowledged. */
    *n = s->n_records - seen;
    *bytes = s->payload_bytes - seen_bytes;
    kvl_seglog_file_free(&rb);
}

/* Deletes the oldest segment to make room, counting what readers lose. */
static void drop_front(kvl_spool_t *sp)
{
    const seg_t *s = &sp->segs[0];
    uint64_t most = 0, most_bytes = 0;
    for (size_t i = 0; i < sp->n_readers; i++) {
        reader_t *r = &sp->readers[i];
        uint64_t n, bytes;
        count_after(sp, s, r->acked, &n, &bytes);
        r->dropped_records += n;
        r->dropped_bytes += bytes;
        if (n > most) {
            most = n;
            most_bytes = bytes;
        }
        if (s->n_records > 0 && r->acked < s->last_seq) {
            r->acked = s->last_seq;
        }
    }
    sp->st.dropped_records += most;
    sp->st.dropped_bytes += most_bytes;
    remove_front(sp);
    uint64_t now = kvl_mono_ns();
    if (most > 0 &&
        (sp->drop_logged_records == 0 || now - sp->drop_logged_ns >= DROP_LOG_INTERVAL_NS)) {
        KVL_LOG_WARN("spool", sp->dir,
                     "full (%" PRIu64 " bytes): dropped the oldest unacknowledged batches, %" PRIu64
                     " (%" PRIu64 " bytes) so far",
                     sp->max_bytes, sp->st.dropped_records, sp->st.dropped_bytes);
        sp->drop_logged_ns = now;
        sp->drop_logged_records = sp->st.dropped_records;
    }
}

static int new_segment(kvl_spool_t *sp, uint64_t seq)
{
    char name[32];
    seg_name(name, sizeof(name), seq);
    int fd = openat(sp->dir_fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) {
        int rc = -errno;
        log_write_error(sp, "cannot create a spool segment", rc);
        return rc;
    }
    uint8_t h[SEG_HDR];
    kvl_seglog_header_make(&seg_fmt, h);
    seg_t s = {.name_seq = seq, .end = SEG_HDR, .file_bytes = SEG_HDR};
    int rc = kvl_seglog_pwrite(fd, h, sizeof(h), 0);
    if (rc == 0) {
        rc = segs_push(sp, &s);
    }
    if (rc != 0) {
        log_write_error(sp, "cannot write a spool segment", rc);
        close(fd);
        unlinkat(sp->dir_fd, name, 0);
        return rc;
    }
    write_index(sp, 0);
    sp->active_fd = fd;
    sp->active_dirty = true;
    sp->dir_dirty = true;
    sp->total_bytes += SEG_HDR;
    return 0;
}

int kvl_spool_append(kvl_spool_t *sp, uint64_t seq, const void *data, size_t len)
{
    uint64_t need = REC_HDR + (uint64_t)len;
    if (seq <= sp->last_seq || len == 0 || len > KVL_SPOOL_RECORD_MAX ||
        need + SEG_HDR > sp->max_bytes / 2) {
        return KVL_EINVAL;
    }
    if (sp->active_fd >= 0) {
        seg_t *a = &sp->segs[sp->n_segs - 1];
        if (a->n_records > 0 && a->end + need > sp->segment_bytes) {
            roll(sp);
        }
    }
    uint64_t extra = need + (sp->active_fd < 0 ? SEG_HDR : 0);
    while (sp->total_bytes + extra > sp->max_bytes && sp->n_segs > 0 && !is_active(sp, 0)) {
        drop_front(sp);
    }
    if (sp->active_fd < 0) {
        int rc = new_segment(sp, seq);
        if (rc != 0) {
            return rc;
        }
    }
    seg_t *a = &sp->segs[sp->n_segs - 1];
    kvl_buf_reset(&sp->wbuf);
    if (kvl_buf_reserve(&sp->wbuf, (size_t)need) != 0) {
        return KVL_ENOMEM;
    }
    uint8_t *h = sp->wbuf.data;
    kvl_seglog_seal(&seg_fmt, h, seq, data, len, NULL, 0);
    memcpy(h + REC_HDR, data, len);
    int rc = kvl_seglog_pwrite(sp->active_fd, h, (size_t)need, a->end);
    if (rc != 0) {
        log_write_error(sp, "cannot write to the spool", rc);
        if (ftruncate(sp->active_fd, (off_t)a->end) != 0) {
            /* The partial record stays beyond a->end; start a new segment next time. On
             * the next open that segment's tail is skipped as damage, losing nothing. */
            struct stat stb;
            if (fstat(sp->active_fd, &stb) == 0 && (uint64_t)stb.st_size > a->file_bytes) {
                sp->total_bytes += (uint64_t)stb.st_size - a->file_bytes;
                a->file_bytes = (uint64_t)stb.st_size;
            }
            roll(sp);
        }
        return rc;
    }
    if (sp->write_failing) {
        KVL_LOG_INFO("spool", sp->dir, "writing to the spool works again");
        sp->write_failing = false;
    }
    if (a->n_records == 0) {
        a->first_seq = seq;
    }
    a->last_seq = seq;
    a->n_records++;
    a->payload_bytes += len;
    a->end += need;
    a->file_bytes = a->end;
    sp->total_bytes += need;
    sp->last_seq = seq;
    sp->active_dirty = true;
    if (sp->sync_interval_ms == 0) {
        kvl_spool_sync(sp);
    }
    return 0;
}

/* --------------------------------------------------------------- readers --------------- */

static reader_t *get_reader(kvl_spool_t *sp, int i)
{
    return i >= 0 && (size_t)i < sp->n_readers ? &sp->readers[i] : NULL;
}

void kvl_spool_rewind(kvl_spool_t *sp, int reader)
{
    reader_t *r = get_reader(sp, reader);
    if (r == NULL) {
        return;
    }
    size_t i = 0;
    while (i + 1 < sp->n_segs && (sp->segs[i].n_records == 0 || sp->segs[i].last_seq <= r->acked)) {
        i++;
    }
    r->seg = i;
    r->off = SEG_HDR;
}

/* A read found a record that no longer checks (the file changed since open): the segment
 * is checked again up to its end, its records and damaged regions recounted, and what
 * was lost now reported. */
static void damaged_on_read(kvl_spool_t *sp, reader_t *r, seg_t *s, const char *why)
{
    char name[32];
    seg_name(name, sizeof(name), s->name_seq);
    size_t idx = (size_t)(s - sp->segs);
    uint64_t damaged_at = r->off;
    /* No record found now can be newer than the segment's last one known. */
    kvl_seglog_bounds_t b = {.min_seq = s->name_seq, .max_seq = s->last_seq};
    uint64_t old_records = s->n_records, old_end = s->end, old_holes = 0;
    for (size_t i = 0; i < s->n_holes; i++) {
        old_holes += s->holes[i].to - s->holes[i].from;
    }
    kvl_seglog_scan_t sc = {0};
    bool again = r->damaged_seg == s->name_seq && r->damaged_off == damaged_at;
    int rc = again ? KVL_EPROTO : kvl_seglog_scan_records(&seg_fmt, &r->rb, s->end, &b, &sc);
    if (rc != 0) {
        /* Cannot be read again (or the same record failed twice): the rest is skipped. */
        kvl_seglog_scan_free(&sc);
        rc = kvl_seglog_scan_records(&seg_fmt, &r->rb, damaged_at, &b, &sc);
        if (rc != 0) {
            sc.n_records = 0;
        }
        sc.end = damaged_at;
        sc.damaged_bytes = old_holes;
    }
    r->damaged_seg = s->name_seq;
    r->damaged_off = damaged_at;
    uint64_t lost = old_records > sc.n_records ? old_records - sc.n_records : 0;
    uint64_t bytes =
        old_end - sc.end + (sc.damaged_bytes > old_holes ? sc.damaged_bytes - old_holes : 0);
    KVL_LOG_ERROR("spool", sp->dir,
                  "%s: damaged record (%s at offset %" PRIu64 ") found while reading: %" PRIu64
                  " more bytes skipped, %" PRIu64 " batch%s lost",
                  name, why, damaged_at, bytes, lost, lost == 1 ? "" : "es");
    sp->st.cut_bytes += bytes;
    sp->st.lost_records += lost;
    sp->st.damaged_regions++;
    s->first_seq = sc.first_seq;
    s->last_seq = sc.last_seq;
    s->n_records = sc.n_records;
    s->payload_bytes = sc.body_bytes;
    s->end = sc.end;
    if (rc == 0) {
        free(s->holes);
        s->holes = sc.damage;
        s->n_holes = sc.n_damage;
        sc.damage = NULL;
    }
    kvl_seglog_scan_free(&sc);
    /* The reader goes on after the region its offset now lies in. */
    for (size_t i = 0; i < s->n_holes; i++) {
        if (r->off > s->holes[i].from && r->off < s->holes[i].to) {
            r->off = s->holes[i].to;
        }
    }
    if (is_active(sp, idx)) {
        roll(sp); /* appending after damage would hide the new records from readers */
    }
}

int kvl_spool_read(kvl_spool_t *sp, int reader, uint64_t *seq, kvl_buf_t *out)
{
    reader_t *r = get_reader(sp, reader);
    if (r == NULL) {
        return KVL_EINVAL;
    }
    for (;;) {
        if (r->seg >= sp->n_segs) {
            return 0;
        }
        seg_t *s = &sp->segs[r->seg];
        if (r->off < SEG_HDR) {
            r->off = SEG_HDR;
        }
        uint64_t to;
        if (r->off < s->end && hole_at(s, r->off, &to)) {
            r->off = to; /* a damaged region found earlier */
            continue;
        }
        if (r->off >= s->end || s->n_records == 0) {
            if (r->seg + 1 < sp->n_segs) {
                r->seg++;
                r->off = SEG_HDR;
                continue;
            }
            return 0;
        }
        if (r->rb.fd < 0 || r->rb.num != s->name_seq) {
            kvl_seglog_file_close(&r->rb);
            char name[32];
            seg_name(name, sizeof(name), s->name_seq);
            int rc = kvl_seglog_file_open(&seg_fmt, &r->rb, sp->dir_fd, s->name_seq, O_RDONLY);
            if (rc != 0) {
                KVL_LOG_ERROR("spool", sp->dir, "cannot open %s: %s", name, kvl_strerror(rc));
                return rc;
            }
        }
        const uint8_t *h;
        int rc = kvl_seglog_file_get(&r->rb, r->off, REC_HDR, s->end, &h);
        if (rc < 0) {
            return rc;
        }
        uint32_t len = rc == 0 ? kvl_get_le32(h) : 0;
        if (rc == 1 || len == 0 || len > KVL_SPOOL_RECORD_MAX || s->end - r->off - REC_HDR < len) {
            damaged_on_read(sp, r, s, "bad record length");
            continue;
        }
        uint8_t hdr[REC_HDR];
        memcpy(hdr, h, REC_HDR);
        uint64_t rseq = kvl_get_le64(hdr + 8);
        if (rseq <= r->acked) {
            r->off += REC_HDR + len;
            continue;
        }
        kvl_seglog_rec_t rec;
        rc = kvl_seglog_file_next(&seg_fmt, &r->rb, r->off, s->end, &rec, NULL);
        if (rc < 0 && rc != KVL_EPROTO) {
            return rc;
        }
        if (rc != 1 || rec.seq != rseq) {
            damaged_on_read(sp, r, s, "checksum mismatch");
            continue;
        }
        kvl_buf_reset(out);
        if (kvl_buf_append(out, rec.body, len) != 0) {
            return KVL_ENOMEM;
        }
        r->off += REC_HDR + len;
        *seq = rseq;
        return 1;
    }
}

int kvl_spool_ack(kvl_spool_t *sp, int reader, uint64_t seq)
{
    reader_t *r = get_reader(sp, reader);
    if (r == NULL) {
        return KVL_EINVAL;
    }
    if (seq <= r->acked) {
        return 0;
    }
    r->acked = seq;
    if (seq > sp->last_seq) {
        sp->last_seq = seq; /* acknowledged by a collector that saw it: never reuse it */
    }
    save_cursor(sp, r);
    collect(sp);
    return 0;
}

/* --------------------------------------------------------------- sync ------------------ */

int kvl_spool_sync_prepare(kvl_spool_t *sp, kvl_spool_sync_job_t *job)
{
    job->n = 0;
    job->dir_fd = -1;
    job->err = 0;
    for (size_t i = 0; i < sp->n_pending; i++) {
        job->fds[job->n++] = sp->pending_fds[i]; /* ownership moves to the job */
    }
    sp->n_pending = 0;
    if (sp->active_fd >= 0 && sp->active_dirty) {
        int fd = dup(sp->active_fd);
        if (fd < 0) {
            job->err = -errno;
        } else {
            job->fds[job->n++] = fd;
            sp->active_dirty = false;
        }
    }
    if (sp->dir_dirty) {
        int fd = dup(sp->dir_fd);
        if (fd < 0) {
            job->err = -errno;
        } else {
            job->dir_fd = fd;
            sp->dir_dirty = false;
        }
    }
    if (job->err != 0 && job->n == 0 && job->dir_fd < 0) {
        return job->err;
    }
    return job->n > 0 || job->dir_fd >= 0;
}

void kvl_spool_sync_run(kvl_spool_sync_job_t *job)
{
    for (size_t i = 0; i < job->n; i++) {
        if (fdatasync(job->fds[i]) != 0 && job->err == 0) {
            job->err = -errno;
        }
        close(job->fds[i]);
    }
    job->n = 0;
    if (job->dir_fd >= 0) {
        if (fsync(job->dir_fd) != 0 && job->err == 0) {
            job->err = -errno;
        }
        close(job->dir_fd);
        job->dir_fd = -1;
    }
}

void kvl_spool_sync_done(kvl_spool_t *sp, kvl_spool_sync_job_t *job)
{
    if (job->err != 0) {
        sp->st.sync_errors++;
        if (!sp->sync_failing) {
            KVL_LOG_ERROR("spool", sp->dir, "cannot sync to disk: %s", kvl_strerror(job->err));
        }
        sp->sync_failing = true;
    } else if (sp->sync_failing) {
        KVL_LOG_INFO("spool", sp->dir, "syncing to disk works again");
        sp->sync_failing = false;
    }
}

int kvl_spool_sync(kvl_spool_t *sp)
{
    kvl_spool_sync_job_t job;
    int rc = kvl_spool_sync_prepare(sp, &job);
    if (rc <= 0) {
        return rc;
    }
    kvl_spool_sync_run(&job);
    kvl_spool_sync_done(sp, &job);
    return job.err;
}

/* --------------------------------------------------------------- statistics ------------ */

void kvl_spool_stats(const kvl_spool_t *sp, kvl_spool_stats_t *st)
{
    *st = sp->st;
    st->bytes = sp->total_bytes;
    st->segments = sp->n_segs;
    st->records = 0;
    for (size_t i = 0; i < sp->n_segs; i++) {
        st->records += sp->segs[i].n_records;
    }
}

void kvl_spool_reader_stats(const kvl_spool_t *sp, int reader, kvl_spool_reader_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    if (reader < 0 || (size_t)reader >= sp->n_readers) {
        return;
    }
    const reader_t *r = &sp->readers[reader];
    st->acked_seq = r->acked;
    st->dropped_records = r->dropped_records;
    st->dropped_bytes = r->dropped_bytes;
}
