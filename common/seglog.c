/*
 * seglog.c — the segment log's files: names, headers, record framing with CRC-32C, a
 * read-ahead reader, the check and torn-tail repair done at open (see seglog.h for the
 * bytes on disk). The spool and the journal build their policies on these.
 */
#include "seglog.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "kvl.h"

/* --------------------------------------------------------------- little-endian fields -- */

/* --------------------------------------------------------------- names ----------------- */

size_t kvl_seglog_rec_header(const kvl_seglog_format_t *f)
{
    return KVL_SEGLOG_REC_BASE + f->extra;
}

void kvl_seglog_name(const kvl_seglog_format_t *f, uint64_t num, char out[KVL_SEGLOG_NAME_MAX])
{
    snprintf(out, KVL_SEGLOG_NAME_MAX, "%016" PRIx64 "%s", num, f->suffix);
}

bool kvl_seglog_parse_name(const kvl_seglog_format_t *f, const char *name, uint64_t *num)
{
    size_t k = strlen(f->suffix);
    if (strlen(name) != 16 + k || strcmp(name + 16, f->suffix) != 0) {
        return false;
    }
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) {
            return false;
        }
        v = v << 4 | (uint64_t)d;
    }
    *num = v;
    return true;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int kvl_seglog_list(const kvl_seglog_format_t *f, int dir_fd, uint64_t **nums, size_t *n_out,
                    void (*other)(void *ctx, const char *name), void *ctx)
{
    *nums = NULL;
    *n_out = 0;
    int fd = dup(dir_fd);
    if (fd < 0) {
        return -errno;
    }
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    rewinddir(d);
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t num;
        if (kvl_seglog_parse_name(f, e->d_name, &num)) {
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                uint64_t *nv = realloc(v, cap * sizeof(*nv));
                if (nv == NULL) {
                    rc = KVL_ENOMEM;
                    break;
                }
                v = nv;
            }
            v[n++] = num;
        } else if (other != NULL && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            other(ctx, e->d_name);
        }
    }
    closedir(d);
    if (rc != 0) {
        free(v);
        return rc;
    }
    if (n > 0) {
        qsort(v, n, sizeof(*v), cmp_u64);
    }
    *nums = v;
    *n_out = n;
    return 0;
}

/* --------------------------------------------------------------- headers --------------- */

void kvl_seglog_header_make(const kvl_seglog_format_t *f, uint8_t h[KVL_SEGLOG_HEADER])
{
    memcpy(h, f->magic, 8);
    kvl_put_le32(h + 8, f->version);
    kvl_put_le32(h + 12, kvl_crc32c(0, h, 12));
}

int kvl_seglog_header_check(const kvl_seglog_format_t *f, const uint8_t *h, size_t n,
                            uint32_t *version)
{
    if (n < KVL_SEGLOG_HEADER || memcmp(h, f->magic, 8) != 0 ||
        kvl_crc32c(0, h, 12) != kvl_get_le32(h + 12)) {
        return 1;
    }
    *version = kvl_get_le32(h + 8);
    return 0;
}

/* --------------------------------------------------------------- records --------------- */

/* The CRC of a record whose header is at hdr and body at a, b. */
static uint32_t rec_crc(const kvl_seglog_format_t *f, const uint8_t *hdr, const void *a, size_t na,
                        const void *b, size_t nb)
{
    uint32_t c = f->crc_covers_len ? kvl_crc32c(0, hdr, 4) : 0;
    c = kvl_crc32c(c, hdr + 8, 8 + f->extra);
    if (na > 0) {
        c = kvl_crc32c(c, a, na);
    }
    if (nb > 0) {
        c = kvl_crc32c(c, b, nb);
    }
    return c;
}

void kvl_seglog_seal(const kvl_seglog_format_t *f, uint8_t *hdr, uint64_t seq, const void *a,
                     size_t na, const void *b, size_t nb)
{
    kvl_put_le32(hdr, (uint32_t)(na + nb));
    kvl_put_le64(hdr + 8, seq);
    kvl_put_le32(hdr + 4, rec_crc(f, hdr, a, na, b, nb));
}

/* Checks a record's length fields: 0 when possible, KVL_EPROTO when not. */
static int check_len(const kvl_seglog_format_t *f, const uint8_t *hdr, uint32_t len,
                     const char **why)
{
    if (len < f->len_min || len > f->len_max || (f->header_ok != NULL && !f->header_ok(hdr, len))) {
        if (why != NULL) {
            *why = "impossible record length";
        }
        return KVL_EPROTO;
    }
    return 0;
}

int kvl_seglog_parse(const kvl_seglog_format_t *f, const uint8_t *p, size_t n,
                     kvl_seglog_rec_t *rec, const char **why)
{
    size_t hl = kvl_seglog_rec_header(f);
    if (n < hl) {
        return 0;
    }
    uint32_t len = kvl_get_le32(p);
    if (check_len(f, p, len, why) != 0) {
        return KVL_EPROTO;
    }
    if (n - hl < len) {
        return 0;
    }
    if (rec_crc(f, p, p + hl, len, NULL, 0) != kvl_get_le32(p + 4)) {
        if (why != NULL) {
            *why = "checksum mismatch";
        }
        return KVL_EPROTO;
    }
    rec->seq = kvl_get_le64(p + 8);
    rec->hdr = p;
    rec->body = p + hl;
    rec->len = len;
    rec->size = hl + len;
    return 1;
}

/* --------------------------------------------------------------- files ----------------- */

void kvl_seglog_file_init(kvl_seglog_file_t *sf)
{
    memset(sf, 0, sizeof(*sf));
    sf->fd = -1;
}

void kvl_seglog_file_adopt(kvl_seglog_file_t *sf, int fd, uint64_t num)
{
    kvl_seglog_file_close(sf);
    sf->fd = fd;
    sf->num = num;
}

int kvl_seglog_file_open(const kvl_seglog_format_t *f, kvl_seglog_file_t *sf, int dir_fd,
                         uint64_t num, int flags)
{
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(f, num, name);
    kvl_seglog_file_close(sf);
    int fd = openat(dir_fd, name, flags | O_CLOEXEC, 0640);
    if (fd < 0) {
        return -errno;
    }
    sf->fd = fd;
    sf->num = num;
    return 0;
}

void kvl_seglog_file_close(kvl_seglog_file_t *sf)
{
    if (sf->fd >= 0) {
        close(sf->fd);
    }
    sf->fd = -1;
    sf->buf.len = 0;
    sf->start = 0;
}

void kvl_seglog_file_free(kvl_seglog_file_t *sf)
{
    kvl_seglog_file_close(sf);
    kvl_buf_free(&sf->buf);
}

int kvl_seglog_file_release(kvl_seglog_file_t *sf)
{
    int fd = sf->fd;
    sf->fd = -1;
    sf->buf.len = 0;
    sf->start = 0;
    return fd;
}

int kvl_seglog_pread(int fd, void *p, size_t n, uint64_t off, size_t *got)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pread(fd, (uint8_t *)p + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            *got = done;
            return -errno;
        }
        if (r == 0) {
            break;
        }
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

int kvl_seglog_file_get(kvl_seglog_file_t *sf, uint64_t off, size_t n, uint64_t limit,
                        const uint8_t **p)
{
    if (off >= sf->start && off - sf->start <= sf->buf.len &&
        sf->buf.len - (off - sf->start) >= n) {
        *p = sf->buf.data + (off - sf->start);
        return 0;
    }
    if (off > limit || limit - off < n) {
        return 1;
    }
    uint64_t want = limit - off;
    if (want > KVL_SEGLOG_READ_AHEAD) {
        want = KVL_SEGLOG_READ_AHEAD;
    }
    if (want < n) {
        /* A long record: read ahead past it too, so that a scan moving on by a byte does
         * not read it all again. */
        want = limit - off - n > KVL_SEGLOG_READ_AHEAD ? n + KVL_SEGLOG_READ_AHEAD : limit - off;
    }
    sf->buf.len = 0;
    sf->start = off;
    if (kvl_buf_reserve(&sf->buf, (size_t)want) != 0) {
        return KVL_ENOMEM;
    }
    size_t got;
    int rc = kvl_seglog_pread(sf->fd, sf->buf.data, (size_t)want, off, &got);
    if (rc != 0) {
        return rc;
    }
    sf->buf.len = got;
    if (got < n) {
        return 1;
    }
    *p = sf->buf.data;
    return 0;
}

int kvl_seglog_file_next(const kvl_seglog_format_t *f, kvl_seglog_file_t *sf, uint64_t off,
                         uint64_t limit, kvl_seglog_rec_t *rec, const char **why)
{
    size_t hl = kvl_seglog_rec_header(f);
    const uint8_t *h;
    int rc = kvl_seglog_file_get(sf, off, hl, limit, &h);
    if (rc != 0) {
        if (rc == 1 && why != NULL) {
            *why = "record header cut short";
        }
        return rc == 1 ? 0 : rc;
    }
    uint32_t len = kvl_get_le32(h);
    if (check_len(f, h, len, why) != 0) {
        return KVL_EPROTO;
    }
    /* The whole record in one piece: the buffer may move for it. */
    const uint8_t *p;
    rc = kvl_seglog_file_get(sf, off, hl + (size_t)len, limit, &p);
    if (rc != 0) {
        if (rc == 1 && why != NULL) {
            *why = "record cut short";
        }
        return rc == 1 ? 0 : rc;
    }
    return kvl_seglog_parse(f, p, hl + (size_t)len, rec, why);
}

void kvl_seglog_scan_free(kvl_seglog_scan_t *s)
{
    free(s->damage);
    s->damage = NULL;
    s->n_damage = 0;
}

/* The lowest seq a record may not have: below min_seq, or not above after_seq. */
static uint64_t seq_floor(const kvl_seglog_bounds_t *b, uint64_t after_seq)
{
    uint64_t lo = b->min_seq > 0 ? b->min_seq - 1 : 0;
    return after_seq > lo ? after_seq : lo;
}

/* True when the record header h (all of it there) could start a record of this format
 * whose seq lies in (lo, hi]; with `fit`, the record must also end by limit (h at off). */
static bool plausible(const kvl_seglog_format_t *f, const uint8_t *h, uint64_t off, uint64_t limit,
                      uint64_t lo, uint64_t hi, bool fit)
{
    uint64_t seq = kvl_get_le64(h + 8);
    if (seq <= lo || seq > hi) {
        return false;
    }
    uint32_t len = kvl_get_le32(h);
    if (check_len(f, h, len, NULL) != 0) {
        return false;
    }
    return !fit || limit - off - kvl_seglog_rec_header(f) >= len;
}

/* Where the damaged record at `from` says it ends, if a valid record of the right seq is
 * there. Returns 1 (with *at, *rec), 0 or a negative code. */
static int resync_by_length(const kvl_seglog_format_t *f, kvl_seglog_file_t *sf, uint64_t from,
                            uint64_t limit, uint64_t lo, uint64_t hi, uint64_t *at,
                            kvl_seglog_rec_t *rec)
{
    size_t hl = kvl_seglog_rec_header(f);
    const uint8_t *h;
    int rc = kvl_seglog_file_get(sf, from, hl, limit, &h);
    if (rc != 0) {
        return rc < 0 ? rc : 0;
    }
    uint32_t len = kvl_get_le32(h);
    if (check_len(f, h, len, NULL) != 0 || limit - from - hl <= len) {
        return 0;
    }
    uint64_t next = from + hl + len;
    kvl_seglog_rec_t r;
    rc = kvl_seglog_file_next(f, sf, next, limit, &r, NULL);
    if (rc < 0 && rc != KVL_EPROTO) {
        return rc;
    }
    if (rc != 1 || r.seq <= lo || r.seq > hi || (f->seq_dense && r.seq != lo + 2)) {
        return 0;
    }
    *at = next;
    *rec = r;
    return 1;
}

#define CHAIN_LONG (64u << 10) /* a candidate this long needs two plausible headers after it */

/* True when what follows a candidate record (seq, ending at q) could be records: the
 * limit, a header cut short by it, or a plausible header (seq above, exactly +1 in a dense
 * format), `depth` of them, all but the last ending below the limit. Reads with pread,
 * leaving the read-ahead where it is: this runs before the candidate's CRC, which a long
 * record makes the dear part. No upper bound on seqs here, which a later start may see
 * lower: what was taken once is taken again. */
static bool chain_ok(const kvl_seglog_format_t *f, int fd, uint64_t q, uint64_t limit, uint64_t seq,
                     int depth)
{
    size_t hl = kvl_seglog_rec_header(f);
    for (int i = 0; i < depth; i++) {
        if (q >= limit || limit - q < hl) {
            return true;
        }
        uint8_t h[KVL_SEGLOG_REC_BASE + KVL_SEGLOG_EXTRA_MAX];
        size_t got = 0;
        if (kvl_seglog_pread(fd, h, hl, q, &got) != 0 || got < hl) {
            return got < hl;
        }
        /* Every header but the last looked at must fit below the limit: a long record
         * of random bytes is thus rarely worth its CRC. */
        if (!plausible(f, h, q, limit, seq, f->seq_dense ? seq + 1 : UINT64_MAX, i + 1 < depth)) {
            return false;
        }
        seq = kvl_get_le64(h + 8);
        q += hl + (uint64_t)kvl_get_le32(h);
    }
    return true;
}

int kvl_seglog_resync(const kvl_seglog_format_t *f, kvl_seglog_file_t *sf, uint64_t from,
                      uint64_t limit, uint64_t after_seq, const kvl_seglog_bounds_t *b,
                      uint64_t *at, kvl_seglog_rec_t *rec)
{
    size_t hl = kvl_seglog_rec_header(f);
    uint64_t lo = seq_floor(b, after_seq);
    uint64_t hi = b->max_seq > 0 ? b->max_seq : UINT64_MAX;
    if (from >= limit) {
        return 0;
    }
    int rc = resync_by_length(f, sf, from, limit, lo, hi, at, rec);
    if (rc < 0 || (rc == 1 && f->seq_dense)) {
        return rc < 0 ? rc : 2;
    }
    /* Without dense seqs a damaged length may point at a later record by chance: a valid
     * record found before that point comes first. */
    uint64_t by_length = rc == 1 ? *at : 0;
    uint64_t scan_end = rc == 1 ? by_length : limit;
    uint64_t step = hl + f->len_min; /* the fewest bytes a lost record takes */
    uint64_t holes_from = 0;         /* where the next look for a sparse hole is due */
    uint64_t p = from + 1;
    while (p < scan_end && limit - p >= hl) {
        if (p >= holes_from) {
            /* A record header never lies wholly in a hole (zeros: no length or seq fits):
             * skip to where data starts again. */
            off_t d = lseek(sf->fd, (off_t)p, SEEK_DATA);
            if (d < 0 && errno == ENXIO) {
                return 0;
            }
            if (d > 0 && (uint64_t)d >= p + hl) {
                p = (uint64_t)d - hl + 1;
                if (p >= limit || limit - p < hl) {
                    return 0;
                }
            }
            holes_from = p + KVL_SEGLOG_READ_AHEAD;
        }
        const uint8_t *h;
        rc = kvl_seglog_file_get(sf, p, hl, limit, &h);
        if (rc != 0) {
            return rc < 0 ? rc : 0;
        }
        /* The cheap fields at every offset the read-ahead holds a whole header for. */
        uint64_t avail = sf->start + sf->buf.len - p;
        avail = avail < limit - p ? avail : limit - p;
        uint64_t stop = avail - hl + 1;
        stop = stop < holes_from - p ? stop : holes_from - p;
        stop = stop < scan_end - p ? stop : scan_end - p;
        uint64_t i = 0;
        for (; i < stop; i++) {
            uint64_t top = hi;
            if (f->seq_dense) {
                uint64_t k = (p + i - from) / step;
                if (lo + 1 + k > lo && lo + 1 + k < top) {
                    top = lo + 1 + k;
                }
            }
            if (plausible(f, h + i, p + i, limit, lo, top, true)) {
                break;
            }
        }
        if (i == stop) {
            p += stop;
            continue;
        }
        p += i;
        h += i;
        /* A record whose CRC checks inside another's body would have to be followed by
         * another plausible header (two for a long one), or end at the limit. */
        uint32_t len = kvl_get_le32(h);
        if (!chain_ok(f, sf->fd, p + hl + len, limit, kvl_get_le64(h + 8),
                      len > CHAIN_LONG ? 2 : 1)) {
            p++;
            continue;
        }
        kvl_seglog_rec_t r;
        rc = kvl_seglog_file_next(f, sf, p, limit, &r, NULL);
        if (rc < 0 && rc != KVL_EPROTO) {
            return rc;
        }
        if (rc != 1) {
            p++;
            continue;
        }
        *at = p;
        *rec = r;
        return 1;
    }
    if (by_length > 0) {
        rc = kvl_seglog_file_next(f, sf, by_length, limit, rec, NULL); /* read it again */
        if (rc != 1) {
            return rc < 0 && rc != KVL_EPROTO ? rc : 0;
        }
        *at = by_length;
        return 2;
    }
    return 0;
}

static int add_damage(kvl_seglog_scan_t *s, const kvl_seglog_damage_t *d)
{
    if ((s->n_damage & (s->n_damage - 1)) == 0) { /* 0, 1, 2, 4...: grow */
        size_t cap = s->n_damage ? s->n_damage * 2 : 1;
        kvl_seglog_damage_t *v = realloc(s->damage, cap * sizeof(*v));
        if (v == NULL) {
            return KVL_ENOMEM;
        }
        s->damage = v;
    }
    s->damage[s->n_damage++] = *d;
    s->damaged_bytes += d->to - d->from;
    if (d->records == KVL_SEGLOG_UNKNOWN) {
        s->lost_unknown = true;
    } else {
        s->lost_records += d->records;
    }
    return 0;
}

int kvl_seglog_scan_records(const kvl_seglog_format_t *f, kvl_seglog_file_t *sf, uint64_t size,
                            const kvl_seglog_bounds_t *b, kvl_seglog_scan_t *s)
{
    kvl_seglog_scan_free(s);
    s->first_seq = s->last_seq = s->n_records = s->body_bytes = 0;
    s->damaged_bytes = s->lost_records = 0;
    s->lost_unknown = false;
    s->why = NULL;
    uint64_t hi = b->max_seq > 0 ? b->max_seq : UINT64_MAX;
    uint64_t last = seq_floor(b, 0);
    uint64_t off = KVL_SEGLOG_HEADER;
    while (off < size) {
        kvl_seglog_rec_t r;
        const char *why = NULL;
        int rc = kvl_seglog_file_next(f, sf, off, size, &r, &why);
        if (rc < 0 && rc != KVL_EPROTO) {
            return rc;
        }
        if (rc == 1 && (r.seq <= last || r.seq > hi)) {
            rc = KVL_EPROTO;
            why = "sequence number out of order";
        }
        if (rc == 1) {
            if (s->n_records == 0) {
                s->first_seq = r.seq;
            }
            s->last_seq = last = r.seq;
            s->n_records++;
            s->body_bytes += r.len;
            off += r.size;
            continue;
        }
        uint64_t at;
        rc = kvl_seglog_resync(f, sf, off, size, last, b, &at, &r);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            s->why = why; /* nothing valid follows: a torn or damaged end */
            break;
        }
        kvl_seglog_damage_t d = {
            .from = off, .to = at, .seq_before = last, .seq_after = r.seq, .why = why};
        d.records = f->seq_dense ? r.seq - last - 1 : rc == 2 ? 1 : KVL_SEGLOG_UNKNOWN;
        if ((rc = add_damage(s, &d)) != 0) {
            return rc;
        }
        off = at;
    }
    s->end = off < size ? off : size;
    return 0;
}

int kvl_seglog_check(const kvl_seglog_format_t *f, kvl_seglog_file_t *sf, int dir_fd, uint64_t num,
                     int flags, const kvl_seglog_bounds_t *b, kvl_seglog_scan_t *s,
                     const char **what)
{
    const char *dummy;
    if (what == NULL) {
        what = &dummy;
    }
    memset(s, 0, sizeof(*s));
    *what = "open";
    int rc = kvl_seglog_file_open(
        f, sf, dir_fd, num,
        (flags & (KVL_SEGLOG_CHECK_WRITE | KVL_SEGLOG_CHECK_REPAIR)) ? O_RDWR : O_RDONLY);
    if (rc != 0) {
        return rc;
    }
    struct stat stb;
    if (fstat(sf->fd, &stb) != 0) {
        *what = "stat";
        return -errno;
    }
    s->size = (uint64_t)stb.st_size;
    s->end = s->size;
    if (b->max_size > 0 && s->size > b->max_size) {
        s->oversize = true; /* not ours, whatever its first bytes say: never read */
        s->header = 1;
        return 0;
    }
    uint8_t h[KVL_SEGLOG_HEADER];
    size_t got = 0;
    *what = "read";
    rc = kvl_seglog_pread(sf->fd, h, sizeof(h), 0, &got);
    if (rc < 0) {
        return rc;
    }
    s->header = kvl_seglog_header_check(f, h, got, &s->version);
    if (s->header != 0 || s->version != f->version) {
        return 0;
    }
    rc = kvl_seglog_scan_records(f, sf, s->size, b, s);
    if (rc != 0) {
        return rc;
    }
    if (s->end < s->size && (flags & KVL_SEGLOG_CHECK_REPAIR)) {
        *what = "cut";
        if (ftruncate(sf->fd, (off_t)s->end) != 0) {
            return -errno;
        }
        s->cut = true;
    }
    return 0;
}

/* --------------------------------------------------------------- writing --------------- */

int kvl_seglog_pwrite(int fd, const void *p, size_t n, uint64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = pwrite(fd, (const uint8_t *)p + done, n - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        done += (size_t)r;
    }
    return 0;
}

/* --------------------------------------------------------------- the index ------------- */

#define INDEX_MAGIC "kvlsegix"

int kvl_seglog_index_write(int dir_fd, const uint64_t *nums, size_t n, bool sync)
{
    if (n > KVL_SEGLOG_INDEX_MAX) {
        return KVL_EINVAL;
    }
    size_t len = 16 + n * 8 + 4;
    uint8_t *b = malloc(len);
    if (b == NULL) {
        return KVL_ENOMEM;
    }
    memcpy(b, INDEX_MAGIC, 8);
    kvl_put_le32(b + 8, 1);
    kvl_put_le32(b + 12, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        kvl_put_le64(b + 16 + 8 * i, nums[i]);
    }
    kvl_put_le32(b + len - 4, kvl_crc32c(0, b, len - 4));
    int rc = 0;
    int fd = openat(dir_fd, KVL_SEGLOG_INDEX_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        rc = -errno;
    } else {
        rc = kvl_seglog_pwrite(fd, b, len, 0);
        if (rc == 0 && sync && fdatasync(fd) != 0) {
            rc = -errno;
        }
        if (close(fd) != 0 && rc == 0) {
            rc = -errno;
        }
        if (rc == 0 && renameat(dir_fd, KVL_SEGLOG_INDEX_TMP, dir_fd, KVL_SEGLOG_INDEX) != 0) {
            rc = -errno;
        }
        if (rc != 0) {
            unlinkat(dir_fd, KVL_SEGLOG_INDEX_TMP, 0);
        }
    }
    free(b);
    return rc;
}

int kvl_seglog_index_read(int dir_fd, uint64_t **nums, size_t *n)
{
    *nums = NULL;
    *n = 0;
    int fd = openat(dir_fd, KVL_SEGLOG_INDEX, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 1 : -errno;
    }
    uint8_t h[16];
    size_t got = 0;
    int rc = kvl_seglog_pread(fd, h, sizeof(h), 0, &got);
    uint32_t count = got == sizeof(h) ? kvl_get_le32(h + 12) : 0;
    if (rc != 0 || got != sizeof(h) || memcmp(h, INDEX_MAGIC, 8) != 0 || kvl_get_le32(h + 8) != 1 ||
        count > KVL_SEGLOG_INDEX_MAX) {
        close(fd);
        return rc != 0 ? rc : KVL_EPROTO;
    }
    size_t len = 16 + (size_t)count * 8 + 4;
    uint8_t *b = malloc(len);
    uint64_t *v = malloc(((size_t)count + 1) * sizeof(*v));
    if (b == NULL || v == NULL) {
        free(b);
        free(v);
        close(fd);
        return KVL_ENOMEM;
    }
    rc = kvl_seglog_pread(fd, b, len, 0, &got);
    close(fd);
    if (rc != 0 || got != len || kvl_crc32c(0, b, len - 4) != kvl_get_le32(b + len - 4)) {
        free(b);
        free(v);
        return rc != 0 ? rc : KVL_EPROTO;
    }
    for (uint32_t i = 0; i < count; i++) {
        v[i] = kvl_get_le64(b + 16 + 8 * (size_t)i);
    }
    free(b);
    *nums = v;
    *n = count;
    return 0;
}

static bool sorted_has(const uint64_t *v, size_t n, uint64_t x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < x) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && v[lo] == x;
}

/* The smallest number above x in v (n of them, any order), or 0. */
static uint64_t next_above(const uint64_t *v, size_t n, uint64_t x, uint64_t best)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i] > x && (best == 0 || v[i] < best)) {
            best = v[i];
        }
    }
    return best;
}

size_t kvl_seglog_index_missing(const uint64_t *idx, size_t n_idx, const uint64_t *present,
                                size_t n_present,
                                void (*missing)(void *ctx, uint64_t num, uint64_t next), void *ctx)
{
    size_t k = 0;
    for (size_t i = 0; i < n_idx; i++) {
        if (sorted_has(present, n_present, idx[i])) {
            continue;
        }
        uint64_t next = next_above(idx, n_idx, idx[i], 0);
        next = next_above(present, n_present, idx[i], next);
        missing(ctx, idx[i], next);
        k++;
    }
    return k;
}

int kvl_seglog_index_check(int dir_fd, const uint64_t *present, size_t n_present,
                           void (*missing)(void *ctx, uint64_t num, uint64_t next), void *ctx)
{
    uint64_t *idx;
    size_t n_idx;
    int rc = kvl_seglog_index_read(dir_fd, &idx, &n_idx);
    if (rc != 0) {
        return rc;
    }
    kvl_seglog_index_missing(idx, n_idx, present, n_present, missing, ctx);
    free(idx);
    return 0;
}

int kvl_seglog_unlink(const kvl_seglog_format_t *f, int dir_fd, uint64_t num)
{
    char name[KVL_SEGLOG_NAME_MAX];
    kvl_seglog_name(f, num, name);
    if (unlinkat(dir_fd, name, 0) != 0 && errno != ENOENT) {
        return -errno;
    }
    return 0;
}
