/*
 * seglog.h — one segment log: a folder of append-only segment files holding CRC-32C
 * checked records, shared by the agent's spool (agent/spool.c) and the collector's journal
 * (collector/journal.c). What each does with the records (readers and cursors, a size
 * bound; a writer thread, group commits, applied tracking) stays with them; this module
 * knows the files.
 *
 * On disk, given a format (kvl_seglog_format_t: a magic, a version, a file suffix):
 *   <16 lowercase hex digits><suffix>   a segment; the number is the sequence number of
 *                         its first record (or the one it was created for), so names sort
 *                         in record order. A 16-byte header:
 *                           8 bytes magic | u32 format version | u32 CRC-32C of the first 12
 *                         then records, little-endian:
 *                           u32 len | u32 crc | u64 seq | `extra` bytes of the user's fields |
 *                           body (len bytes)
 *                         The CRC covers seq, the extra fields and the body, and the len field
 *                         too when the format says so (crc_covers_len). A record's seq is
 *                         above the previous record's, also across segments.
 *   The spool's format is { "kvlspool", 1, ".seg", extra 0, CRC covers len, len >= 1 };
 *   the journal's { "kvljrnl\0", 1, ".jnl", extra 12, CRC without len }: both formats as
 *   they were before this module existed, so existing spools and journals still open.
 *
 * Damage and torn tails: a record that is short, impossibly long, out of order or fails
 * its CRC is damaged. The check does not stop there: it resynchronises on the next valid
 * record (kvl_seglog_resync: first where the damaged record's own length points, then byte
 * by byte, cheap header fields before the CRC, holes of sparse files skipped) and reports
 * each damaged region (bytes, the good seqs around it, records lost when known). Only a
 * damaged end with nothing valid after it is a torn tail: a power cut leaves the last
 * segment ending inside a record or in zeros; in the last segment (KVL_SEGLOG_CHECK_REPAIR)
 * it is cut off (ftruncate). A file larger than a segment can be is not read at all. What
 * the owner logs, deletes or sets aside stays with the owner.
 *
 * Errors: 0 (or a count) or a negative code: -errno for system calls, KVL_EPROTO for a
 * damaged record, KVL_ENOMEM. Nothing here logs. Not thread-safe by itself: a
 * kvl_seglog_file_t belongs to one thread at a time; the pure functions (names, headers,
 * kvl_seglog_seal, kvl_seglog_parse) may run anywhere.
 */
#ifndef KVL_SEGLOG_H
#define KVL_SEGLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define KVL_SEGLOG_HEADER 16u    /* segment header */
#define KVL_SEGLOG_REC_BASE 16u  /* len, crc, seq; then the format's extra bytes */
#define KVL_SEGLOG_EXTRA_MAX 32u /* longest extra */
#define KVL_SEGLOG_NAME_MAX 32   /* a segment's file name, with its NUL */
#define KVL_SEGLOG_READ_AHEAD (256u << 10)

typedef struct kvl_seglog_format {
    char magic[8];
    uint32_t version;    /* written into new segment headers */
    const char *suffix;  /* ".seg": a dot and three characters */
    size_t extra;        /* bytes of the owner's fields after seq (<= KVL_SEGLOG_EXTRA_MAX) */
    bool crc_covers_len; /* the CRC starts with the len field */
    uint32_t len_min;    /* bounds of a body's length */
    uint32_t len_max;
    /* Optional: false when a record header (all KVL_SEGLOG_REC_BASE + extra bytes) cannot
     * be right whatever follows; the record then counts as damaged, not torn. */
    bool (*header_ok)(const uint8_t *hdr, uint32_t len);
    /* Each record's seq is the previous one's + 1 within a segment (the journal): a damaged
     * region then says how many records it held, and a candidate record found while
     * resynchronising must have a seq the skipped bytes can explain. */
    bool seq_dense;
} kvl_seglog_format_t;

/* The size of a record's header in this format. */
size_t kvl_seglog_rec_header(const kvl_seglog_format_t *f);

/* A segment's file name, "%016llx<suffix>". */
void kvl_seglog_name(const kvl_seglog_format_t *f, uint64_t num, char out[KVL_SEGLOG_NAME_MAX]);
/* True (with *num) for a name kvl_seglog_name makes (lowercase hex only). */
bool kvl_seglog_parse_name(const kvl_seglog_format_t *f, const char *name, uint64_t *num);
/* The segment numbers in the folder, sorted, into a malloc'd array *nums (free it);
 * `other` (may be NULL) is called with every other name but "." and "..". Returns 0,
 * -errno or KVL_ENOMEM. */
int kvl_seglog_list(const kvl_seglog_format_t *f, int dir_fd, uint64_t **nums, size_t *n,
                    void (*other)(void *ctx, const char *name), void *ctx);

/* Writes a segment header of the format's version. */
void kvl_seglog_header_make(const kvl_seglog_format_t *f, uint8_t h[KVL_SEGLOG_HEADER]);
/* 0 when the n bytes at h start with a header of this format (any version, in *version),
 * 1 when they are too few, not ours or damaged. */
int kvl_seglog_header_check(const kvl_seglog_format_t *f, const uint8_t *h, size_t n,
                            uint32_t *version);

/* One record as parsed: pointers into the bytes given. */
typedef struct kvl_seglog_rec {
    uint64_t seq;
    const uint8_t *hdr;  /* the record header; the owner's fields at hdr + KVL_SEGLOG_REC_BASE */
    const uint8_t *body; /* len bytes */
    uint32_t len;
    size_t size; /* header + body */
} kvl_seglog_rec_t;

/* Completes a record header: hdr holds the owner's extra fields at KVL_SEGLOG_REC_BASE;
 * this writes len (= na + nb), seq and the CRC over the body a then b (either may be
 * empty). The caller checks the length against the format. */
void kvl_seglog_seal(const kvl_seglog_format_t *f, uint8_t *hdr, uint64_t seq, const void *a,
                     size_t na, const void *b, size_t nb);
/* Parses the record at p (n bytes there). Returns 1 with *rec, 0 when the bytes end inside
 * it (torn), or KVL_EPROTO when it is damaged (impossible length, header_ok false, CRC);
 * *why (may be NULL) then says which. Pure. */
int kvl_seglog_parse(const kvl_seglog_format_t *f, const uint8_t *p, size_t n,
                     kvl_seglog_rec_t *rec, const char **why);

/* An open segment file with a read-ahead buffer. The buffer only ever holds bytes below
 * the limit given to the calls, which the owner knows are no longer written. */
typedef struct kvl_seglog_file {
    int fd;       /* -1 when closed */
    uint64_t num; /* the segment fd is open on */
    uint64_t start;
    kvl_buf_t buf;
} kvl_seglog_file_t;

void kvl_seglog_file_init(kvl_seglog_file_t *sf);
/* Opens segment num with open(2) flags (O_CLOEXEC added), closing what sf held. Returns 0
 * or -errno. */
int kvl_seglog_file_open(const kvl_seglog_format_t *f, kvl_seglog_file_t *sf, int dir_fd,
                         uint64_t num, int flags);
/* Takes an fd the caller opened (on segment num). */
void kvl_seglog_file_adopt(kvl_seglog_file_t *sf, int fd, uint64_t num);
/* Closes the descriptor (keeps the buffer for reuse). */
void kvl_seglog_file_close(kvl_seglog_file_t *sf);
/* Closes and frees the buffer. */
void kvl_seglog_file_free(kvl_seglog_file_t *sf);
/* Hands the descriptor over to the caller (sf no longer has one). */
int kvl_seglog_file_release(kvl_seglog_file_t *sf);
/* Points *p at n bytes at offset off, reading ahead as far as limit. Returns 0, 1 when
 * fewer than n bytes lie below limit (or in the file), or -errno / KVL_ENOMEM. */
int kvl_seglog_file_get(kvl_seglog_file_t *sf, uint64_t off, size_t n, uint64_t limit,
                        const uint8_t **p);
/* Reads the record at off (below limit). Returns 1 with *rec (valid until the next call on
 * sf), 0 when the bytes below limit end inside it or at off, KVL_EPROTO when damaged (*why
 * says how), or -errno / KVL_ENOMEM. */
int kvl_seglog_file_next(const kvl_seglog_format_t *f, kvl_seglog_file_t *sf, uint64_t off,
                         uint64_t limit, kvl_seglog_rec_t *rec, const char **why);

/* What the owner knows about a segment before reading it. */
typedef struct kvl_seglog_bounds {
    uint64_t min_seq;  /* every seq is at least this (the segment's number, or more) */
    uint64_t max_seq;  /* and at most this (the next segment's number - 1; 0: no bound) */
    uint64_t max_size; /* a larger file is not read (0: no bound) */
} kvl_seglog_bounds_t;

#define KVL_SEGLOG_UNKNOWN UINT64_MAX /* a count of records that cannot be known */

/* One damaged region: the bytes [from, to) were skipped. */
typedef struct kvl_seglog_damage {
    uint64_t from, to;
    uint64_t seq_before; /* the last good seq before it (min_seq - 1 at the segment's start) */
    uint64_t seq_after;  /* the first good seq after it; 0: nothing valid follows (a tail) */
    uint64_t records;    /* records lost, or KVL_SEGLOG_UNKNOWN */
    const char *why;     /* what was wrong with the first record of the region */
} kvl_seglog_damage_t;

/* What kvl_seglog_check found in a segment. */
typedef struct kvl_seglog_scan {
    uint64_t size;    /* of the file when opened */
    int header;       /* 0: ours (version in .version), 1: too short, not ours or damaged */
    uint32_t version; /* records are scanned only when header == 0 && version == f->version */
    bool oversize;    /* larger than bounds->max_size: neither header nor records read */
    uint64_t first_seq, last_seq; /* of the good records (0 when none) */
    uint64_t n_records;
    uint64_t body_bytes; /* sum of their lengths */
    uint64_t end;        /* just past the last good record (size when all are) */
    const char *why;     /* why the records end before the file does (the tail), or NULL */
    bool cut;            /* the tail from end was cut off */
    /* Damaged regions before end, in order (malloc'd: kvl_seglog_scan_free), their bytes
     * and the records they held as far as known (lost_unknown: some region's count is not
     * known, so lost_records is a lower bound). */
    kvl_seglog_damage_t *damage;
    size_t n_damage;
    uint64_t damaged_bytes;
    uint64_t lost_records;
    bool lost_unknown;
} kvl_seglog_scan_t;

/* Frees the damage list of a scan (the struct itself is the caller's). */
void kvl_seglog_scan_free(kvl_seglog_scan_t *s);

/* Finds the first valid record after the damaged one at `from` (below limit) whose seq is
 * above after_seq and within bounds: the record where the damaged one's length points if
 * that one is valid (only the damaged record lost; a dense format also needs its seq to
 * say so, any other format that no valid record starts before it), else the first offset
 * past `from` whose header passes the cheap checks (length,
 * fits below limit, seq; sparse holes skipped), whose CRC checks, and after which another
 * plausible record header, or the limit, follows. Returns 2 (found where the damaged
 * record's length points: exactly one record lost) or 1 (found by scanning) with *at and
 * *rec (valid until the next call on sf), 0 when none, or -errno / KVL_ENOMEM. Reads through sf's
 * read-ahead: memory stays within the read-ahead and the longest record. */
int kvl_seglog_resync(const kvl_seglog_format_t *f, kvl_seglog_file_t *sf, uint64_t from,
                      uint64_t limit, uint64_t after_seq, const kvl_seglog_bounds_t *b,
                      uint64_t *at, kvl_seglog_rec_t *rec);

/* Records from KVL_SEGLOG_HEADER up to size, each seq in bounds and increasing, damaged
 * regions skipped and listed. Fills the record fields of *s (free with
 * kvl_seglog_scan_free). Returns 0 or -errno / KVL_ENOMEM. */
int kvl_seglog_scan_records(const kvl_seglog_format_t *f, kvl_seglog_file_t *sf, uint64_t size,
                            const kvl_seglog_bounds_t *b, kvl_seglog_scan_t *s);

#define KVL_SEGLOG_CHECK_REPAIR 1 /* cut a torn or damaged tail off (the last segment) */
#define KVL_SEGLOG_CHECK_WRITE 2  /* open for writing (needed for REPAIR) */

/* Opens segment num into sf; a file larger than b->max_size is left there (s->oversize);
 * otherwise checks its header and (when it is of the format's version) its records as
 * kvl_seglog_scan_records does, and with KVL_SEGLOG_CHECK_REPAIR cuts the file at s->end
 * when a torn tail follows the last good record. The file stays open in sf. Returns 0 or
 * -errno with *what (may be NULL) naming the step that failed ("open", "stat", "read",
 * "cut"); free s with kvl_seglog_scan_free either way. */
int kvl_seglog_check(const kvl_seglog_format_t *f, kvl_seglog_file_t *sf, int dir_fd, uint64_t num,
                     int flags, const kvl_seglog_bounds_t *b, kvl_seglog_scan_t *s,
                     const char **what);

/* The index: the list of segment files that exist, kept by the owner in the folder as
 * KVL_SEGLOG_INDEX ("segments"), replaced (written as "segments.tmp", renamed) after it
 * creates a segment and before it deletes one, so that a segment it lists that is not in
 * the folder at open was lost, not deleted. Bytes, little-endian:
 *   8 bytes "kvlsegix" | u32 version (1) | u32 count | u64 numbers, sorted | u32 CRC-32C of
 *   all before it
 * Older readers ignore the file; a folder without one is not checked. */
#define KVL_SEGLOG_INDEX "segments"
#define KVL_SEGLOG_INDEX_TMP "segments.tmp"
#define KVL_SEGLOG_INDEX_MAX (1u << 24) /* numbers an index may list */

/* Replaces the index with nums (n of them, sorted), fdatasync'ing the new file first when
 * `sync`. Returns 0, -errno or KVL_EINVAL (too many). */
int kvl_seglog_index_write(int dir_fd, const uint64_t *nums, size_t n, bool sync);
/* Reads the index into a malloc'd *nums. Returns 0, 1 when there is none, KVL_EPROTO when
 * it is damaged, or KVL_ENOMEM / -errno. */
int kvl_seglog_index_read(int dir_fd, uint64_t **nums, size_t *n);
/* For every number the index lists that is not among present (sorted, n_present): calls
 * missing with it and the next number listed or present above it (0: none). Returns how
 * many were missing. */
size_t kvl_seglog_index_missing(const uint64_t *idx, size_t n_idx, const uint64_t *present,
                                size_t n_present,
                                void (*missing)(void *ctx, uint64_t num, uint64_t next), void *ctx);

/* kvl_seglog_index_read, then kvl_seglog_index_missing against present (sorted). Returns
 * 0, 1 when the folder has no index (nothing can be told), or what the read returned. */
int kvl_seglog_index_check(int dir_fd, const uint64_t *present, size_t n_present,
                           void (*missing)(void *ctx, uint64_t num, uint64_t next), void *ctx);

/* Writes all n bytes at off. Returns 0 or -errno. */
int kvl_seglog_pwrite(int fd, const void *p, size_t n, uint64_t off);
/* Reads up to n bytes at off (EINTR retried): *got is how many came (fewer only at the end
 * of the file). Returns 0 or -errno (with *got what came before the error). */
int kvl_seglog_pread(int fd, void *p, size_t n, uint64_t off, size_t *got);
/* Deletes segment num (a missing file is no error). Returns 0 or -errno. */
int kvl_seglog_unlink(const kvl_seglog_format_t *f, int dir_fd, uint64_t num);

#endif
