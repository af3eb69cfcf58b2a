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
#include "kvl.h"
#include "log.h"
#include "seglog.h"

/* A group commit gathers at most this much before it goes to disk without waiting. */
#define COMMIT_EAGER_BYTES (4u << 20)

typedef struct seg {
    uint64_t num;   /* jseq of its first record; the file name */
    uint64_t bytes; /* header and records, written or queued */
    uint64_t valid; /* segments found at open: bytes that hold good records */
    uint64_t holds; /* batches in it not yet applied */
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
};

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

/* Checks one segment found at open; repairs the last one. Returns 0 (also when the file
 * was set aside) or a negative code with err filled. *keep says whether it stays. */
static int check_segment(kvl_journal_t *j, uint64_t num, bool last, uint64_t *prev_jseq, bool *keep,
                         char *err, size_t errlen)
{
    char name[32];
    seg_name(num, name);
    *keep = false;
    kvl_seglog_file_t sf;
    kvl_seglog_file_init(&sf);
    kvl_seglog_scan_t sc;
    const char *what = NULL;
    int flags = KVL_SEGLOG_CHECK_WRITE | (last ? KVL_SEGLOG_CHECK_REPAIR : 0);
    int rc = kvl_seglog_check(&jfmt, &sf, j->dir_fd, num, flags, *prev_jseq + 1, &sc, &what);
    if (rc == 0 && sc.header == 0 && sc.version < KVL_JOURNAL_FORMAT_VERSION) {
        /* An older version number with the same records: checked the same way. */
        rc = kvl_seglog_scan_records(&jfmt, &sf, sc.size, *prev_jseq + 1, &sc);
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
        return rc;
    }
    uint64_t n = sc.size;
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
        char bad[48];
        snprintf(bad, sizeof(bad), "%s.bad", name);
        KVL_LOG_ERROR("journal", name, "not a journal segment (bad header); set aside as %s", bad);
        renameat(j->dir_fd, name, j->dir_fd, bad);
        j->cut_bytes += n;
        return 0;
    }
    if (sc.version > KVL_JOURNAL_FORMAT_VERSION) {
        snprintf(err, errlen,
                 "%s/%s has journal format %u; this collector reads up to %u (a newer "
                 "collector's data: not touched)",
                 j->dir, name, sc.version, KVL_JOURNAL_FORMAT_VERSION);
        kvl_seglog_file_free(&sf);
        return KVL_EPROTO;
    }
    if (sc.n_records > 0) {
        *prev_jseq = sc.last_seq;
    }
    uint64_t off = sc.end;
    if (off < n) {
        j->cut_bytes += n - off;
        if (last) {
            KVL_LOG_WARN("journal", name,
                         "%s at offset %" PRIu64 ": cut off the last %" PRIu64 " bytes", sc.why,
                         off, n - off);
        } else {
            KVL_LOG_ERROR("journal", name,
                          "%s at offset %" PRIu64 ": the remaining %" PRIu64
                          " bytes of this segment are skipped",
                          sc.why, off, n - off);
        }
    }
    if (!j->no_sync && fdatasync(sf.fd) != 0) {
        rc = -errno;
        snprintf(err, errlen, "cannot sync %s/%s: %s", j->dir, name, strerror(errno));
        kvl_seglog_file_free(&sf);
        return rc;
    }
    kvl_seglog_file_free(&sf);
    rc = seg_push(j, num);
    if (rc != 0) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    j->segs[j->n_segs - 1].bytes = n;
    j->segs[j->n_segs - 1].valid = off;
    j->total_bytes += n;
    *keep = true;
    return 0;
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
    free(j->segs);
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
    rc = kvl_seglog_list(&jfmt, j->dir_fd, &nums, &n_nums, NULL, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "cannot list %s: %s", j->dir, kvl_strerror(rc));
        goto fail;
    }
    uint64_t prev = 0;
    for (size_t i = 0; i < n_nums && rc == 0; i++) {
        bool keep;
        rc = check_segment(j, nums[i], i + 1 == n_nums, &prev, &keep, err, errlen);
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
        while (off < s->valid && rc == 0) {
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
