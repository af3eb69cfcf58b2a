/*
 * journal.c — the collector's write-ahead journal (see journal.h for the format and the
 * promises).
 *
 * Two sides share one mutex. The loop side owns the list of segments (their sizes and how
 * many unapplied batches each holds), numbers records and encodes them into "chunks":
 * bytes for one segment file at a known offset. The writer thread takes every chunk
 * queued so far, pwrites them, fdatasyncs each file it wrote once, fsyncs the folder when
 * it created a file, unlinks the segments the loop has released, publishes the highest
 * jseq now on disk and wakes the loop with a uv_async. Because every chunk carries its
 * offset, a failed commit is simply done again (the same bytes at the same places).
 *
 * The segment files (names, header, record framing and CRC, the check and torn-tail cut
 * at open, reading records back) are common/seglog.c's, in the journal's format.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fileio.h"
#include "kvl.h"
#include "log.h"
#include "seglog.h"

/* A group commit gathers at most this much before it goes to disk without waiting. */
#define COMMIT_EAGER_BYTES (4u << 20)

typedef struct seg {
    uint64_t num;               /* jseq of its first record; the file name */
    uint64_t bytes;             /* header and records, written or queued */
    uint64_t valid;             /* segments found at open: bytes that hold good records */
    uint64_t holds;             /* batches in it not yet applied */
    kvl_seglog_damage_t *holes; /* segments found at open: damaged regions below valid */
    size_t n_holes;
} seg_t;

typedef struct chunk {
    struct chunk *next;
    uint64_t seg;
    uint64_t off;
    bool create;
    uint64_t last_jseq;
    kvl_buf_t data;
} chunk_t;

struct kvl_journal {
    char *dir;
    int dir_fd;
    int lock_fd;
    uint64_t segment_bytes;
    int64_t commit_delay_ms;
    bool no_sync;

    /* loop side */
    seg_t *segs; /* by number; after start the last one is the active segment */
    size_t n_segs, cap_segs;
    size_t n_found; /* segments found at open (the first n_found before start) */
    uint64_t next_jseq;
    uint64_t total_bytes;
    uint64_t records;
    uint64_t cut_bytes;
    uint64_t damaged_regions;
    uint64_t lost_records;
    uint64_t missing_segments;
    uint64_t stray_files;
    bool started;
    bool async_open;
    bool rolling;
    uv_loop_t *loop;
    uv_async_t async;
    kvl_journal_synced_cb synced_cb;
    kvl_journal_roll_cb roll_cb;
    void *ctx;
    uint64_t synced_seen;

    /* shared, under mu */
    uv_mutex_t mu;
    uv_cond_t cond;
    uv_thread_t thread;
    chunk_t *head, *tail;
    uint64_t *unlinks;
    size_t n_unlinks, cap_unlinks;
    uint64_t backlog;
    bool stop;
    bool writer_waiting;
    uint64_t synced_jseq;
    uint64_t commits;
    uint64_t write_errors;

    /* writer thread only */
    int wfd;
    uint64_t wseg;
    bool failing;
    uint64_t *wsegs; /* the segment files that exist, sorted: what the index says */
    size_t n_wsegs, cap_wsegs;
    bool index_failing;
};

/* ------------------------------------------------------------- records --------------- */

/* The owner's fields after jseq: u64 seq, u8 type, u8 lane, u16 agent length. */
#define F_SEQ 16
#define F_TYPE 24
#define F_LANE 25
#define F_ALEN 26

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

static size_t agent_len_of(const uint8_t *h)
{
    return (size_t)h[F_ALEN] | (size_t)h[F_ALEN + 1] << 8;
}

static bool header_ok(const uint8_t *h, uint32_t len)
{
    size_t alen = agent_len_of(h);
    return alen <= KVL_JOURNAL_AGENT_MAX && alen <= len && len - alen <= KVL_JOURNAL_DATA_MAX;
}

/* The journal's segments: the format as it was before common/seglog.c, so existing
 * journals open unchanged. */
static const kvl_seglog_format_t jfmt = {
    .magic = {'k', 'v', 'l', 'j', 'r', 'n', 'l', '\0'},
    .version = KVL_JOURNAL_FORMAT_VERSION,
    .suffix = ".jnl",
    .extra = KVL_JOURNAL_RECORD_HEADER - KVL_SEGLOG_REC_BASE,
    .crc_covers_len = false,
    .len_min = 0,
    .len_max = UINT32_MAX,
    .header_ok = header_ok,
    .seq_dense = true,
};

/* The largest file a segment can be: the largest journal_segment_bytes the configuration
 * allows (4 GiB) and a generous checkpoint. A larger file named like one is not ours. */
#define SEGMENT_FILE_MAX ((4ull << 30) + (1ull << 30))

_Static_assert(KVL_JOURNAL_HEADER == KVL_SEGLOG_HEADER, "the journal's segment header");
_Static_assert(KVL_JOURNAL_RECORD_HEADER - KVL_SEGLOG_REC_BASE <= KVL_SEGLOG_EXTRA_MAX,
               "the journal's record fields");

static void make_header(const kvl_jrec_t *rec, uint8_t h[KVL_JOURNAL_RECORD_HEADER])
{
    put64(h + F_SEQ, rec->seq);
    h[F_TYPE] = rec->type;
    h[F_LANE] = rec->lane;
    h[F_ALEN] = (uint8_t)rec->agent_len;
    h[F_ALEN + 1] = (uint8_t)(rec->agent_len >> 8);
    kvl_seglog_seal(&jfmt, h, rec->jseq, rec->agent, rec->agent_len, rec->data, rec->len);
}

/* A journal record from a segment log record. */
static void from_seglog(const kvl_seglog_rec_t *sr, kvl_jrec_t *rec)
{
    size_t alen = agent_len_of(sr->hdr);
    rec->jseq = sr->seq;
    rec->seq = get64(sr->hdr + F_SEQ);
    rec->type = sr->hdr[F_TYPE];
    rec->lane = sr->hdr[F_LANE];
    rec->agent = (const char *)sr->body;
    rec->agent_len = alen;
    rec->data = sr->body + alen;
    rec->len = sr->len - alen;
}

static bool rec_ok(const kvl_jrec_t *rec)
{
    return rec->agent_len <= KVL_JOURNAL_AGENT_MAX && rec->len <= KVL_JOURNAL_DATA_MAX &&
           (rec->agent_len == 0 || rec->agent != NULL) && (rec->len == 0 || rec->data != NULL);
}

int kvl_journal_encode(const kvl_jrec_t *rec, uint8_t **out, size_t *outlen)
{
    if (!rec_ok(rec)) {
        return KVL_EINVAL;
    }
    size_t n = KVL_JOURNAL_RECORD_HEADER + rec->agent_len + rec->len;
    uint8_t *p = malloc(n);
    if (p == NULL) {
        return KVL_ENOMEM;
    }
    make_header(rec, p);
    if (rec->agent_len > 0) {
        memcpy(p + KVL_JOURNAL_RECORD_HEADER, rec->agent, rec->agent_len);
    }
    if (rec->len > 0) {
        memcpy(p + KVL_JOURNAL_RECORD_HEADER + rec->agent_len, rec->data, rec->len);
    }
    *out = p;
    *outlen = n;
    return 0;
}

int kvl_journal_parse(const uint8_t *p, size_t n, kvl_jrec_t *rec, size_t *used)
{
    kvl_seglog_rec_t sr;
    int rc = kvl_seglog_parse(&jfmt, p, n, &sr, NULL);
    if (rc != 1) {
        return rc;
    }
    from_seglog(&sr, rec);
    *used = sr.size;
    return 1;
}

/* ------------------------------------------------------------- open ------------------ */

static void seg_name(uint64_t num, char out[32])
{
    kvl_seglog_name(&jfmt, num, out);
}

static int seg_push(kvl_journal_t *j, uint64_t num)
{
    if (j->n_segs == j->cap_segs) {
        size_t cap = j->cap_segs ? j->cap_segs * 2 : 16;
        seg_t *s = realloc(j->segs, cap * sizeof(*s));
        if (s == NULL) {
            return KVL_ENOMEM;
        }
        j->segs = s;
        j->cap_segs = cap;
    }
    j->segs[j->n_segs++] = (seg_t){.num = num};
    return 0;
}

#define DAMAGE_LINES 8 /* damaged regions logged one by one per segment; the rest summed up */

/* Logs a segment's damaged regions (the first DAMAGE_LINES one by one, then one line for
 * the rest) and counts them. */
static void report_damage(kvl_journal_t *j, const char *name, const kvl_seglog_scan_t *sc)
{
    uint64_t rest_bytes = 0, rest_records = 0;
    for (size_t i = 0; i < sc->n_damage; i++) {
        const kvl_seglog_damage_t *d = &sc->damage[i];
        j->damaged_regions++;
        j->lost_records += d->records;
        j->cut_bytes += d->to - d->from;
        if (i < DAMAGE_LINES) {
            KVL_LOG_ERROR("journal", name,
                          "damaged record (%s at offset %" PRIu64 "): %" PRIu64
                          " bytes skipped, %" PRIu64 " record%s lost (jseq %" PRIu64 " to %" PRIu64
                          ")",
                          d->why, d->from, d->to - d->from, d->records, d->records == 1 ? "" : "s",
                          d->seq_before + 1, d->seq_after - 1);
        } else {
            rest_bytes += d->to - d->from;
            rest_records += d->records;
        }
    }
    if (sc->n_damage > DAMAGE_LINES) {
        KVL_LOG_ERROR("journal", name,
                      "%zu more damaged regions: %" PRIu64 " bytes skipped, %" PRIu64
                      " records lost",
                      sc->n_damage - DAMAGE_LINES, rest_bytes, rest_records);
    }
}

/* True when segment num can be one of ours: not too large and a header of the format. */
static bool usable_segment(kvl_journal_t *j, uint64_t num)
{
    char name[32];
    seg_name(num, name);
    int fd = openat(j->dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    struct stat st;
    uint8_t h[KVL_JOURNAL_HEADER];
    size_t got = 0;
    uint32_t v;
    bool ok = fstat(fd, &st) == 0 && (uint64_t)st.st_size <= SEGMENT_FILE_MAX &&
              kvl_seglog_pread(fd, h, sizeof(h), 0, &got) == 0 &&
              kvl_seglog_header_check(&jfmt, h, got, &v) == 0;
    close(fd);
    return ok;
}

/* Sets a file aside under name + suffix, with an ERROR line saying why. */
static void set_aside(kvl_journal_t *j, const char *name, const char *suffix, const char *why)
{
    char aside[48];
    snprintf(aside, sizeof(aside), "%s%s", name, suffix);
    KVL_LOG_ERROR("journal", name, "%s; set aside as %s", why, aside);
    if (renameat(j->dir_fd, name, j->dir_fd, aside) != 0) {
        KVL_LOG_ERROR("journal", name, "cannot rename: %s", strerror(errno));
    }
}

/* Checks one segment found at open; repairs the last one. `next`: the number of the next
 * segment (0: none), above every jseq here. Returns 0 (also when the file was set aside)
 * or a negative code with err filled. *keep says whether it stays. */
static int check_segment(kvl_journal_t *j, uint64_t num, uint64_t next, bool last,
                         uint64_t *prev_jseq, bool *keep, char *err, size_t errlen)
{
    char name[32];
    seg_name(num, name);
    *keep = false;
    kvl_seglog_file_t sf;
    kvl_seglog_file_init(&sf);
    kvl_seglog_scan_t sc;
    const char *what = NULL;
    int flags = KVL_SEGLOG_CHECK_WRITE | (last ? KVL_SEGLOG_CHECK_REPAIR : 0);
    kvl_seglog_bounds_t b = {.min_seq = *prev_jseq + 1 > num ? *prev_jseq + 1 : num,
                             .max_seq = next > num ? next - 1 : 0,
                             .max_size = SEGMENT_FILE_MAX};
    int rc = kvl_seglog_check(&jfmt, &sf, j->dir_fd, num, flags, &b, &sc, &what);
    if (rc == 0 && sc.header == 0 && sc.version < KVL_JOURNAL_FORMAT_VERSION) {
        /* An older version number with the same records: checked the same way. */
        rc = kvl_seglog_scan_records(&jfmt, &sf, sc.size, &b, &sc);
        what = "read";
        if (rc == 0 && last && sc.end < sc.size) {
            what = "cut";
            rc = ftruncate(sf.fd, (off_t)sc.end) == 0 ? 0 : -errno;
        }
    }
    if (rc != 0) {
        snprintf(err, errlen, "cannot %s %s/%s: %s", strcmp(what, "cut") == 0 ? "truncate" : what,
                 j->dir, name, kvl_strerror(rc));
        kvl_seglog_file_free(&sf);
        kvl_seglog_scan_free(&sc);
        return rc;
    }
    uint64_t n = sc.size;
    if (sc.oversize) {
        kvl_seglog_file_free(&sf);
        char why[160];
        snprintf(why, sizeof(why),
                 "%" PRIu64 " bytes, more than a journal segment can be (%llu): not read", n,
                 SEGMENT_FILE_MAX);
        set_aside(j, name, ".stray", why);
        j->stray_files++;
        return 0;
    }
    if (sc.header != 0) {
        kvl_seglog_file_free(&sf);
        if (last && n < KVL_JOURNAL_HEADER) {
            /* Created, header never written: it holds nothing. */
            KVL_LOG_WARN("journal", name, "segment without a header (%" PRIu64 " bytes); removed",
                         n);
            unlinkat(j->dir_fd, name, 0);
            j->cut_bytes += n;
            return 0;
        }
        set_aside(j, name, ".bad", "not a journal segment (bad header)");
        j->cut_bytes += n;
        return 0;
    }
    if (sc.version > KVL_JOURNAL_FORMAT_VERSION) {
        char path[4400];
        snprintf(path, sizeof(path), "%s/%s", j->dir, name);
        kvl_format_check(path, sc.version, KVL_JOURNAL_FORMAT_VERSION, "kaaval-collector",
                         "the batches in it not yet archived are then lost", err, errlen);
        kvl_seglog_file_free(&sf);
        return KVL_EPROTO;
    }
    if (sc.n_records > 0) {
        *prev_jseq = sc.last_seq;
    }
    report_damage(j, name, &sc);
    uint64_t off = sc.end;
    if (off < n) {
        j->cut_bytes += n - off;
        if (last) {
            KVL_LOG_WARN("journal", name,
                         "%s at offset %" PRIu64 ": cut off the last %" PRIu64
                         " bytes (a torn tail: nothing valid after it)",
                         sc.why, off, n - off);
        } else {
            uint64_t lost = next > sc.last_seq + 1 && sc.n_records > 0 ? next - sc.last_seq - 1 : 0;
            j->damaged_regions++;
            j->lost_records += lost;
            KVL_LOG_ERROR("journal", name,
                          "%s at offset %" PRIu64 ": the remaining %" PRIu64
                          " bytes of this segment hold nothing valid and are skipped (%" PRIu64
                          " records lost)",
                          sc.why, off, n - off, lost);
        }
    }
    if (!j->no_sync && fdatasync(sf.fd) != 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot sync %s/%s: %s", j->dir, name, strerror(errno));
        kvl_seglog_file_free(&sf);
        kvl_seglog_scan_free(&sc);
        return rc;
    }
    kvl_seglog_file_free(&sf);
    rc = seg_push(j, num);
    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
        kvl_seglog_scan_free(&sc);
        return rc;
    }
    seg_t *s = &j->segs[j->n_segs - 1];
    s->bytes = n;
    s->valid = off;
    s->holes = sc.damage; /* ownership moves to the segment */
    s->n_holes = sc.n_damage;
    j->total_bytes += n;
    *keep = true;
    return 0;
}

/* A segment the index lists that is not in the folder was lost: its records (from its
 * number up to the next segment's) are reported. */
static void on_missing(void *ctx, uint64_t num, uint64_t next)
{
    kvl_journal_t *j = ctx;
    char name[32];
    seg_name(num, name);
    j->missing_segments++;
    if (next > num) {
        j->lost_records += next - num;
        KVL_LOG_ERROR("journal", name,
                      "missing from the folder (the journal's index lists it): its %" PRIu64
                      " records (jseq %" PRIu64 " to %" PRIu64 ") are lost",
                      next - num, num, next - 1);
    } else {
        KVL_LOG_ERROR("journal", name,
                      "missing from the folder (the journal's index lists it): its records "
                      "from jseq %" PRIu64 " on are lost",
                      num);
    }
}

/* Compares the index with the segment files listed (sorted). */
static void check_missing(kvl_journal_t *j, const uint64_t *listed, size_t n_listed)
{
    /* 1: a journal from before the index, or a new one */
    int rc = kvl_seglog_index_check(j->dir_fd, listed, n_listed, on_missing, j);
    if (rc < 0) {
        KVL_LOG_WARN("journal", j->dir, KVL_SEGLOG_INDEX " cannot be read (%s): %s",
                     kvl_strerror(rc), "segments missing from the folder cannot be told");
    }
}

/* Called with every name in the folder that is not a segment: reported once, left alone. */
static void on_other_file(void *ctx, const char *name)
{
    kvl_journal_t *j = ctx;
    size_t n = strlen(name);
    if (strcmp(name, "lock") == 0 || strcmp(name, KVL_SEGLOG_INDEX) == 0) {
        return;
    }
    if (strcmp(name, KVL_SEGLOG_INDEX_TMP) == 0) {
        unlinkat(j->dir_fd, name, 0);
    } else if ((n > 4 && strcmp(name + n - 4, ".bad") == 0) ||
               (n > 6 && strcmp(name + n - 6, ".stray") == 0)) {
        KVL_LOG_WARN("journal", j->dir,
                     "%s was set aside earlier: not read (delete it once seen to)", name);
    } else {
        KVL_LOG_WARN("journal", j->dir, "%s is not a journal file: left alone", name);
    }
}

static void journal_free_now(kvl_journal_t *j)
{
    while (j->head != NULL) {
        chunk_t *c = j->head;
        j->head = c->next;
        kvl_buf_free(&c->data);
        free(c);
    }
    if (j->lock_fd >= 0) {
        close(j->lock_fd);
    }
    if (j->dir_fd >= 0) {
        close(j->dir_fd);
    }
    uv_mutex_destroy(&j->mu);
    uv_cond_destroy(&j->cond);
    free(j->unlinks);
    for (size_t i = 0; i < j->n_segs; i++) {
        free(j->segs[i].holes);
    }
    free(j->segs);
    free(j->wsegs);
    free(j->dir);
    free(j);
}

int kvl_journal_open(const kvl_journal_opts_t *opts, kvl_journal_t **out, char *err, size_t errlen)
{
    kvl_journal_t *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->dir = strdup(opts->dir)) == NULL) {
        free(j);
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    j->dir_fd = j->lock_fd = j->wfd = -1;
    j->segment_bytes =
        opts->segment_bytes ? opts->segment_bytes : KVL_JOURNAL_DEFAULT_SEGMENT_BYTES;
    if (j->segment_bytes < 4096) {
        j->segment_bytes = 4096;
    }
    j->commit_delay_ms = opts->commit_delay_ms;
    j->no_sync = opts->no_sync;
    uv_mutex_init(&j->mu);
    uv_cond_init(&j->cond);
    int rc = 0;
    if (mkdir(j->dir, 0750) != 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "cannot create %s: %s", j->dir, strerror(errno));
        goto fail;
    }
    j->dir_fd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dir_fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot open %s: %s", j->dir, strerror(errno));
        goto fail;
    }
    j->lock_fd = openat(j->dir_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (j->lock_fd < 0 || flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot lock %s/lock: %s", j->dir,
                 errno == EWOULDBLOCK ? "another collector uses this data folder"
                                      : strerror(errno));
        goto fail;
    }
    /* The segments, in order. */
    uint64_t *nums = NULL;
    size_t n_nums = 0;
    rc = kvl_seglog_list(&jfmt, j->dir_fd, &nums, &n_nums, on_other_file, j);
    if (rc != 0) {
        snprintf(err, errlen, "cannot list %s: %s", j->dir, kvl_strerror(rc));
        goto fail;
    }
    uint64_t prev = 0;
    for (size_t i = 0; i < n_nums && rc == 0; i++) {
        bool keep;
        /* The next segment that can be ours bounds this one's jseqs. */
        uint64_t next = 0;
        for (size_t k = i + 1; k < n_nums && next == 0; k++) {
            next = usable_segment(j, nums[k]) ? nums[k] : 0;
        }
        rc = check_segment(j, nums[i], next, i + 1 == n_nums, &prev, &keep, err, errlen);
    }
    if (rc == 0) {
        check_missing(j, nums, n_nums);
    }
    free(nums);
    if (rc != 0) {
        goto fail;
    }
    j->n_found = j->n_segs;
    j->next_jseq = prev + 1;
    j->synced_jseq = j->synced_seen = prev;
    *out = j;
    return 0;
fail:
    journal_free_now(j);
    return rc;
}

int kvl_journal_replay(kvl_journal_t *j, kvl_journal_replay_cb cb, void *ctx)
{
    kvl_seglog_file_t sf;
    kvl_seglog_file_init(&sf);
    int rc = 0;
    for (size_t i = 0; i < j->n_found && i < j->n_segs && rc == 0; i++) {
        const seg_t *s = &j->segs[i];
        char name[32];
        seg_name(s->num, name);
        rc = kvl_seglog_file_open(&jfmt, &sf, j->dir_fd, s->num, O_RDONLY);
        if (rc != 0) {
            KVL_LOG_ERROR("journal", name, "cannot open: %s", kvl_strerror(rc));
            break;
        }
        uint64_t off = KVL_JOURNAL_HEADER;
        size_t hole = 0;
        while (off < s->valid && rc == 0) {
            while (hole < s->n_holes && s->holes[hole].from < off) {
                hole++;
            }
            if (hole < s->n_holes && s->holes[hole].from == off) {
                off = s->holes[hole].to; /* damaged, reported at open */
                continue;
            }
            kvl_seglog_rec_t sr;
            int nrc = kvl_seglog_file_next(&jfmt, &sf, off, s->valid, &sr, NULL);
            if (nrc < 0 && nrc != KVL_EPROTO) {
                KVL_LOG_ERROR("journal", name, "cannot read: %s", kvl_strerror(nrc));
                rc = nrc;
                break;
            }
            if (nrc != 1) {
                break; /* changed behind our back since open; the rest was checked then */
            }
            kvl_jrec_t r;
            from_seglog(&sr, &r);
            r.off = off;
            rc = cb(ctx, &r, s->num);
            off += sr.size;
        }
        kvl_seglog_file_close(&sf);
    }
    kvl_seglog_file_free(&sf);
    return rc;
}

/* ------------------------------------------------------------- writer thread --------- */

static int wsync(kvl_journal_t *j, int fd)
{
    if (j->no_sync) {
        return 0;
    }
    return fdatasync(fd) == 0 ? 0 : -errno;
}

/* The writer's list of segment files: add (sorted, once) or remove num. */
static void wsegs_add(kvl_journal_t *j, uint64_t num)
{
    size_t i = 0;
    while (i < j->n_wsegs && j->wsegs[i] < num) {
        i++;
    }
    if (i < j->n_wsegs && j->wsegs[i] == num) {
        return;
    }
    if (j->n_wsegs == j->cap_wsegs) {
        size_t cap = j->cap_wsegs ? j->cap_wsegs * 2 : 16;
        uint64_t *v = realloc(j->wsegs, cap * sizeof(*v));
        if (v == NULL) {
            return; /* the index then lacks it: a loss of it would go unreported, no more */
        }
        j->wsegs = v;
        j->cap_wsegs = cap;
    }
    memmove(j->wsegs + i + 1, j->wsegs + i, (j->n_wsegs - i) * sizeof(*j->wsegs));
    j->wsegs[i] = num;
    j->n_wsegs++;
}

static void wsegs_remove(kvl_journal_t *j, uint64_t num)
{
    for (size_t i = 0; i < j->n_wsegs; i++) {
        if (j->wsegs[i] == num) {
            memmove(j->wsegs + i, j->wsegs + i + 1, (j->n_wsegs - i - 1) * sizeof(*j->wsegs));
            j->n_wsegs--;
            return;
        }
    }
}

/* Replaces the index with the writer's list (writer thread). Returns 0 or -errno. */
static int write_index(kvl_journal_t *j)
{
    int rc = kvl_seglog_index_write(j->dir_fd, j->wsegs, j->n_wsegs, !j->no_sync);
    if (rc != 0 && !j->index_failing) {
        KVL_LOG_WARN("journal", j->dir,
                     "cannot write " KVL_SEGLOG_INDEX ": %s (a lost segment may go unreported)",
                     kvl_strerror(rc));
    }
    j->index_failing = rc != 0;
    return rc;
}

/* Writes and syncs the chunks. Returns 0 or the first -errno (with *what saying where). */
static int write_chunks(kvl_journal_t *j, chunk_t *list, const char **what, uint64_t *seg)
{
    bool created = false;
    int rc = 0;
    for (chunk_t *c = list; c != NULL && rc == 0; c = c->next) {
        *seg = c->seg;
        if (j->wfd < 0 || j->wseg != c->seg) {
            if (j->wfd >= 0) {
                rc = wsync(j, j->wfd);
                *what = "sync";
                close(j->wfd);
                j->wfd = -1;
                if (rc != 0) {
                    break;
                }
            }
            char name[32];
            seg_name(c->seg, name);
            j->wfd = openat(j->dir_fd, name, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
            if (j->wfd < 0) {
                *what = "create";
                rc = -errno;
                break;
            }
            j->wseg = c->seg;
        }
        created = created || c->create;
        *what = "write";
        rc = kvl_seglog_pwrite(j->wfd, c->data.data, c->data.len, c->off);
    }
    if (rc == 0 && j->wfd >= 0) {
        *what = "sync";
        rc = wsync(j, j->wfd);
    }
    if (rc == 0 && created && !j->no_sync && fsync(j->dir_fd) != 0) {
        *what = "sync the folder of";
        rc = -errno;
    }
    if (rc != 0 && j->wfd >= 0) {
        close(j->wfd); /* reopened next time: a failed fd may keep failing */
        j->wfd = -1;
    }
    return rc;
}

static void writer_main(void *arg)
{
    kvl_journal_t *j = arg;
    uv_mutex_lock(&j->mu);
    for (;;) {
        while (j->head == NULL && j->n_unlinks == 0 && !j->stop) {
            j->writer_waiting = true;
            uv_cond_wait(&j->cond, &j->mu);
            j->writer_waiting = false;
        }
        if (j->head == NULL && j->n_unlinks == 0 && j->stop) {
            break;
        }
        if (j->commit_delay_ms > 0 && j->head != NULL && !j->stop &&
            j->backlog < COMMIT_EAGER_BYTES) {
            /* Group commit: give the records of the next few ms a ride on this sync. */
            uv_cond_timedwait(&j->cond, &j->mu, (uint64_t)j->commit_delay_ms * 1000000u);
        }
        chunk_t *list = j->head;
        j->head = j->tail = NULL;
        uint64_t *unl = j->unlinks;
        size_t n_unl = j->n_unlinks;
        j->unlinks = NULL;
        j->n_unlinks = j->cap_unlinks = 0;
        uv_mutex_unlock(&j->mu);

        uint64_t bytes = 0, last = 0;
        for (chunk_t *c = list; c != NULL; c = c->next) {
            bytes += c->data.len;
            last = c->last_jseq > last ? c->last_jseq : last;
        }
        const char *what = "write";
        uint64_t seg = 0;
        int rc = list != NULL ? write_chunks(j, list, &what, &seg) : 0;
        if (rc != 0) {
            if (!j->failing) {
                char name[32];
                seg_name(seg, name);
                KVL_LOG_ERROR("journal", j->dir,
                              "cannot %s %s: %s; nothing is acknowledged until it works (retrying "
                              "every second)",
                              what, name, kvl_strerror(rc));
                j->failing = true;
            }
            if (!j->stop) {
                uv_sleep(1000);
            }
        } else if (j->failing) {
            KVL_LOG_INFO("journal", j->dir, "writing works again");
            j->failing = false;
        }
        if (rc == 0) {
            /* The index lists what was created and no longer what is about to go: a file
             * it lists is always there, unless it was lost. */
            bool changed = n_unl > 0;
            for (chunk_t *c = list; c != NULL; c = c->next) {
                if (c->create) {
                    wsegs_add(j, c->seg);
                    changed = true;
                }
            }
            for (size_t i = 0; i < n_unl; i++) {
                wsegs_remove(j, unl[i]);
            }
            if (changed) {
                write_index(j);
            }
        }
        for (size_t i = 0; i < n_unl && rc == 0; i++) {
            char name[32];
            seg_name(unl[i], name);
            if (j->wfd >= 0 && j->wseg == unl[i]) {
                close(j->wfd);
                j->wfd = -1;
            }
            int urc = kvl_seglog_unlink(&jfmt, j->dir_fd, unl[i]);
            if (urc != 0) {
                KVL_LOG_WARN("journal", name, "cannot delete: %s", kvl_strerror(urc));
            }
        }

        uv_mutex_lock(&j->mu);
        if (rc != 0 && j->stop) {
            /* Stopping with a disk that fails: what is not on disk was never acknowledged. */
            KVL_LOG_ERROR("journal", j->dir, "stopping with %" PRIu64 " bytes not written", bytes);
            j->backlog -= bytes;
            uv_mutex_unlock(&j->mu);
            free(unl);
            while (list != NULL) {
                chunk_t *c = list;
                list = c->next;
                kvl_buf_free(&c->data);
                free(c);
            }
            uv_mutex_lock(&j->mu);
            continue;
        }
        if (rc != 0) {
            /* The deletions wait for a commit that works (a file must not come back). */
            for (size_t i = 0; i < n_unl; i++) {
                if (j->n_unlinks == j->cap_unlinks) {
                    size_t cap = j->cap_unlinks ? j->cap_unlinks * 2 : 8;
                    uint64_t *u = realloc(j->unlinks, cap * sizeof(*u));
                    if (u == NULL) {
                        break;
                    }
                    j->unlinks = u;
                    j->cap_unlinks = cap;
                }
                j->unlinks[j->n_unlinks++] = unl[i];
            }
        }
        free(unl);
        if (rc != 0) {
            /* Put them back in front: the next round writes them again. */
            chunk_t *t = list;
            while (t != NULL && t->next != NULL) {
                t = t->next;
            }
            if (t != NULL) {
                t->next = j->head;
                j->head = list;
                if (j->tail == NULL) {
                    j->tail = t;
                }
            }
            j->write_errors++;
            continue;
        }
        j->backlog -= bytes;
        if (last > j->synced_jseq) {
            j->synced_jseq = last;
        }
        j->commits++;
        uv_mutex_unlock(&j->mu);
        while (list != NULL) {
            chunk_t *c = list;
            list = c->next;
            kvl_buf_free(&c->data);
            free(c);
        }
        uv_async_send(&j->async);
        uv_mutex_lock(&j->mu);
    }
    uv_mutex_unlock(&j->mu);
    if (j->wfd >= 0) {
        close(j->wfd);
        j->wfd = -1;
    }
}

/* ------------------------------------------------------------- loop side ------------- */

static void on_async(uv_async_t *a)
{
    kvl_journal_t *j = a->data;
    uv_mutex_lock(&j->mu);
    uint64_t synced = j->synced_jseq;
    uv_mutex_unlock(&j->mu);
    if (synced > j->synced_seen) {
        j->synced_seen = synced;
        if (j->synced_cb != NULL) {
            j->synced_cb(j->ctx, synced);
        }
    }
}

/* Queues bytes for a segment (under mu). */
static int queue_bytes(kvl_journal_t *j, uint64_t seg, uint64_t off, bool create, const void *a,
                       size_t na, const void *b, size_t nb, const void *c, size_t nc, uint64_t jseq)
{
    uv_mutex_lock(&j->mu);
    chunk_t *t = j->tail;
    if (t == NULL || t->seg != seg || create) {
        t = calloc(1, sizeof(*t));
        if (t == NULL) {
            uv_mutex_unlock(&j->mu);
            return KVL_ENOMEM;
        }
        t->seg = seg;
        t->off = off;
        t->create = create;
        if (j->tail != NULL) {
            j->tail->next = t;
        } else {
            j->head = t;
        }
        j->tail = t;
    }
    size_t before = t->data.len;
    if (kvl_buf_reserve(&t->data, na + nb + nc) != 0) {
        uv_mutex_unlock(&j->mu);
        return KVL_ENOMEM;
    }
    kvl_buf_append(&t->data, a, na);
    if (nb > 0) {
        kvl_buf_append(&t->data, b, nb);
    }
    if (nc > 0) {
        kvl_buf_append(&t->data, c, nc);
    }
    if (jseq > t->last_jseq) {
        t->last_jseq = jseq;
    }
    j->backlog += t->data.len - before;
    if (j->writer_waiting) {
        uv_cond_signal(&j->cond);
    }
    uv_mutex_unlock(&j->mu);
    return 0;
}

static void schedule_unlink(kvl_journal_t *j, size_t idx)
{
    uint64_t num = j->segs[idx].num;
    j->total_bytes -= j->segs[idx].bytes;
    free(j->segs[idx].holes);
    memmove(&j->segs[idx], &j->segs[idx + 1], (j->n_segs - idx - 1) * sizeof(seg_t));
    j->n_segs--;
    if (idx < j->n_found) {
        j->n_found--;
    }
    uv_mutex_lock(&j->mu);
    if (j->n_unlinks == j->cap_unlinks) {
        size_t cap = j->cap_unlinks ? j->cap_unlinks * 2 : 8;
        uint64_t *u = realloc(j->unlinks, cap * sizeof(*u));
        if (u == NULL) {
            uv_mutex_unlock(&j->mu);
            return; /* the file stays; harmless, it is read and skipped at the next start */
        }
        j->unlinks = u;
        j->cap_unlinks = cap;
    }
    j->unlinks[j->n_unlinks++] = num;
    if (j->writer_waiting) {
        uv_cond_signal(&j->cond);
    }
    uv_mutex_unlock(&j->mu);
}

static int roll(kvl_journal_t *j)
{
    bool leave = j->started && j->n_segs > j->n_found; /* an active segment is being left */
    int rc = seg_push(j, j->next_jseq);
    if (rc != 0) {
        return rc;
    }
    seg_t *s = &j->segs[j->n_segs - 1];
    uint8_t h[KVL_JOURNAL_HEADER];
    kvl_seglog_header_make(&jfmt, h);
    rc = queue_bytes(j, s->num, 0, true, h, sizeof(h), NULL, 0, NULL, 0, 0);
    if (rc != 0) {
        j->n_segs--;
        return rc;
    }
    s->bytes = KVL_JOURNAL_HEADER;
    j->total_bytes += KVL_JOURNAL_HEADER;
    if (j->roll_cb != NULL) {
        j->rolling = true;
        j->roll_cb(j->ctx);
        j->rolling = false;
    }
    /* The segment left goes at once when nothing in it waits for the archives; only now,
     * so that the writer has the new segment's checkpoint before it deletes anything. */
    if (leave && j->segs[j->n_segs - 2].holds == 0) {
        schedule_unlink(j, j->n_segs - 2);
    }
    return 0;
}

int kvl_journal_start(kvl_journal_t *j, uv_loop_t *loop, kvl_journal_synced_cb synced,
                      kvl_journal_roll_cb roll_cb, void *ctx)
{
    j->loop = loop;
    j->synced_cb = synced;
    j->roll_cb = roll_cb;
    j->ctx = ctx;
    int rc = uv_async_init(loop, &j->async, on_async);
    if (rc != 0) {
        return rc;
    }
    j->async_open = true;
    j->async.data = j;
    j->started = true;
    /* A new segment with its checkpoint first; then the segments found at open that hold
     * nothing unapplied go (the others once released). The writer starts after both, so it
     * never deletes a segment before the checkpoint that replaces it is on disk. */
    for (size_t i = 0; i < j->n_found; i++) {
        wsegs_add(j, j->segs[i].num); /* the writer's list starts with the files found */
    }
    rc = roll(j);
    if (rc == 0) {
        size_t found = j->n_found;
        j->n_found = 0;
        for (size_t i = found; i-- > 0;) {
            if (j->segs[i].holds == 0) {
                schedule_unlink(j, i);
            }
        }
        rc = uv_thread_create(&j->thread, writer_main, j);
    }
    if (rc != 0) {
        j->started = false; /* kvl_journal_close closes the async handle, then frees */
    }
    return rc;
}

int kvl_journal_append(kvl_journal_t *j, kvl_jrec_t *rec, bool hold, uint64_t *seg)
{
    if (!j->started || !rec_ok(rec)) {
        return KVL_EINVAL;
    }
    size_t size = KVL_JOURNAL_RECORD_HEADER + rec->agent_len + rec->len;
    seg_t *s = &j->segs[j->n_segs - 1];
    if (!j->rolling && s->bytes > KVL_JOURNAL_HEADER && s->bytes + size > j->segment_bytes) {
        int rc = roll(j);
        if (rc != 0) {
            return rc;
        }
        s = &j->segs[j->n_segs - 1];
    }
    rec->jseq = j->next_jseq;
    rec->off = s->bytes;
    uint8_t h[KVL_JOURNAL_RECORD_HEADER];
    make_header(rec, h);
    int rc = queue_bytes(j, s->num, s->bytes, false, h, sizeof(h), rec->agent, rec->agent_len,
                         rec->data, rec->len, rec->jseq);
    if (rc != 0) {
        return rc;
    }
    j->next_jseq++;
    j->records++;
    s->bytes += size;
    j->total_bytes += size;
    if (hold) {
        s->holds++;
    }
    if (seg != NULL) {
        *seg = s->num;
    }
    return 0;
}

static seg_t *find_seg(kvl_journal_t *j, uint64_t num, size_t *idx)
{
    size_t lo = 0, hi = j->n_segs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (j->segs[mid].num < num) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < j->n_segs && j->segs[lo].num == num) {
        *idx = lo;
        return &j->segs[lo];
    }
    return NULL;
}

void kvl_journal_hold(kvl_journal_t *j, uint64_t seg)
{
    size_t i;
    seg_t *s = find_seg(j, seg, &i);
    if (s != NULL) {
        s->holds++;
    }
}

void kvl_journal_release(kvl_journal_t *j, uint64_t seg)
{
    size_t i;
    seg_t *s = find_seg(j, seg, &i);
    if (s == NULL || s->holds == 0) {
        return;
    }
    s->holds--;
    if (s->holds == 0 && j->started && i + 1 < j->n_segs) {
        schedule_unlink(j, i);
    }
}

uint64_t kvl_journal_last_jseq(const kvl_journal_t *j)
{
    return j->next_jseq - 1;
}

int kvl_journal_path(const kvl_journal_t *j, uint64_t seg, char *out, size_t outlen)
{
    char name[32];
    seg_name(seg, name);
    int n = snprintf(out, outlen, "%s/%s", j->dir, name);
    return n < 0 || (size_t)n >= outlen ? KVL_EINVAL : 0;
}

uint64_t kvl_journal_synced(const kvl_journal_t *j)
{
    return j->synced_seen;
}

void kvl_journal_stats(kvl_journal_t *j, kvl_journal_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    st->bytes = j->total_bytes;
    st->segments = j->n_segs;
    st->records = j->records;
    st->cut_bytes = j->cut_bytes;
    st->damaged_regions = j->damaged_regions;
    st->lost_records = j->lost_records;
    st->missing_segments = j->missing_segments;
    st->stray_files = j->stray_files;
    uv_mutex_lock(&j->mu);
    st->commits = j->commits;
    st->synced_jseq = j->synced_jseq;
    st->backlog_bytes = j->backlog;
    st->write_errors = j->write_errors;
    uv_mutex_unlock(&j->mu);
}

static void on_async_closed(uv_handle_t *h)
{
    journal_free_now(h->data);
}

void kvl_journal_close(kvl_journal_t *j)
{
    if (j == NULL) {
        return;
    }
    if (!j->started) {
        if (j->async_open) {
            uv_close((uv_handle_t *)&j->async, on_async_closed);
        } else {
            journal_free_now(j);
        }
        return;
    }
    uv_mutex_lock(&j->mu);
    j->stop = true;
    uv_cond_signal(&j->cond);
    uv_mutex_unlock(&j->mu);
    uv_thread_join(&j->thread); /* the last commit: at shutdown, the loop may wait for it */
    uv_close((uv_handle_t *)&j->async, on_async_closed);
}
