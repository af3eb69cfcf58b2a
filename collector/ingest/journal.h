/*
 * journal.h — the collector's write-ahead journal: what an agent sent is on disk (fsync'd)
 * before it is acknowledged, and it is applied to the archives from here, also after a
 * crash.
 *
 * On disk, in <data_dir>/_journal/ (a name starting with '_' never meets a site):
 *   lock                  held (flock) while a collector uses the folder
 *   <16 hex digits>.jnl   a segment; the number is the journal sequence number (jseq) of
 *                         its first record, so names sort in record order. A 16-byte header
 *                         ("kvljrnl" NUL, u32 format version, u32 CRC-32C of the first 12
 *                         bytes), then records, little-endian:
 *                           u32 len    bytes after the 28-byte record header
 *                           u32 crc    CRC-32C of everything after this field
 *                           u64 jseq   +1 for every record, across segments
 *                           u64 seq    BATCH: the batch's seq; APPLIED: a jseq
 *                           u8  type   kvl_jrec_type_t
 *                           u8  lane   BATCH: its lane
 *                           u16 alen   length of the agent id
 *                           agent id (alen bytes), then the record's data (len - alen)
 *                         A segment is closed ("rolled") once it holds segment_bytes.
 *                         The segment files are read, written and checked by
 *                         common/seglog.c (this format: jfmt in journal.c).
 *
 * What the ingest writes (collector/ingest.c): CONNECT (data = the agent's site) when an
 * agent's connection starts, so its definitions start afresh; DEFS (a SeriesDefs payload)
 * and BATCH (a Batch payload, as received); APPLIED (seq = the jseq of the agent's last
 * batch now in the archives); and at the start of every segment a checkpoint: POS for
 * every agent known (its acknowledged positions and applied jseq) and CONNECT + DEFS with
 * the full definitions of every connected agent. A segment is thus readable without the
 * older ones, and a segment may be deleted as soon as every batch in it is applied
 * (kvl_journal_hold/release), in any order.
 *
 * Durability: appends go to memory on the loop; a writer thread of the journal's own
 * writes them (pwrite) and calls fdatasync once for everything that arrived meanwhile
 * (group commit: a commit waits at most commit_delay_ms for more records, then the
 * next one gathers what came during the sync). When a commit is on disk the loop's
 * synced callback gets the highest jseq it covers. The loop never touches the disk except
 * in kvl_journal_open (start-up). Segment files are created and deleted by the writer
 * too (the folder is fsync'd after a creation).
 *
 * Damage found at open (common/seglog.c finds it; the journal logs and counts it): a
 * damaged record anywhere (short, bad length, bad CRC, jseq out of order) is skipped and
 * the journal resynchronises on the next valid record (jseqs are dense, so each damaged
 * region says how many records it held): one ERROR line per region (the first 8 per
 * segment, then one for the rest), counted in the statistics. Only a damaged end with
 * nothing valid after it is a torn tail: in the last segment it is cut off (ftruncate)
 * with a WARN line, in another skipped with an ERROR line. A segment whose header is
 * missing or not ours is set aside (renamed *.bad), one larger than a segment can be
 * (SEGMENT_FILE_MAX, 5 GiB) is never read and set aside as *.stray, each with an ERROR
 * line; other files in the folder get one WARN line and are left alone. A newer format
 * version makes open fail, so an older collector never destroys a newer one's data.
 *
 * Missing segments: the writer keeps the segment log's index (`segments`, seglog.h) in the
 * folder, replaced after it creates a segment and before it deletes one. A segment it
 * lists that is not in the folder at open was lost: an ERROR line with its jseq range.
 * Older collectors ignore the file; a journal without it is not checked.
 *
 * Errors: 0 (or a count) or a negative code: -errno as libuv has it, KVL_EINVAL,
 * KVL_ENOMEM, KVL_EPROTO (newer format). A write or sync that fails is logged (once when
 * failures start, once when it works again) and retried every second; nothing is
 * acknowledged meanwhile.
 */
#ifndef KVL_JOURNAL_H
#define KVL_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define KVL_JOURNAL_FORMAT_VERSION 1u
#define KVL_JOURNAL_HEADER 16u
#define KVL_JOURNAL_RECORD_HEADER 28u
#define KVL_JOURNAL_AGENT_MAX 255u
#define KVL_JOURNAL_DATA_MAX (64u << 20)
#define KVL_JOURNAL_DEFAULT_SEGMENT_BYTES (64ull << 20)

typedef enum {
    KVL_JREC_CONNECT = 1, /* data: the agent's site; its definitions start afresh */
    KVL_JREC_DEFS = 2,    /* data: a SeriesDefs envelope payload */
    KVL_JREC_BATCH = 3,   /* data: a Batch envelope payload; seq, lane */
    KVL_JREC_POS = 4,     /* data: u64 acked bulk, u64 acked events, u64 applied jseq */
    KVL_JREC_APPLIED = 5, /* seq: the agent's batches up to this jseq are in the archives */
} kvl_jrec_type_t;

typedef struct kvl_jrec {
    uint64_t jseq; /* set by the journal on append */
    uint64_t seq;
    uint8_t type;
    uint8_t lane;
    const char *agent; /* not NUL-terminated when read back: agent_len counts */
    size_t agent_len;
    const uint8_t *data;
    size_t len;
    uint64_t off; /* set by append and replay: where the record starts in its segment */
} kvl_jrec_t;

/* Parses one record at p (n bytes available). Returns 1 with *rec pointing into p and
 * *used its size, 0 when the bytes end inside a record (a torn tail), or KVL_EPROTO for a
 * record that is damaged (bad CRC, impossible length). Pure; the fuzzer's entry point. */
int kvl_journal_parse(const uint8_t *p, size_t n, kvl_jrec_t *rec, size_t *used);
/* Appends the encoding of rec (with rec->jseq) to out. Returns 0, KVL_EINVAL or KVL_ENOMEM. */
int kvl_journal_encode(const kvl_jrec_t *rec, uint8_t **out, size_t *outlen);

typedef struct kvl_journal kvl_journal_t;

typedef struct kvl_journal_opts {
    const char *dir;         /* created if missing */
    uint64_t segment_bytes;  /* 0: KVL_JOURNAL_DEFAULT_SEGMENT_BYTES */
    int64_t commit_delay_ms; /* longest wait for more records before a commit (0: none) */
    bool no_sync;            /* tests and benchmarks of the rest: write, never fdatasync */
} kvl_journal_opts_t;

typedef struct kvl_journal_stats {
    uint64_t bytes; /* segment files, as written or about to be */
    uint64_t segments;
    uint64_t records;          /* appended since open */
    uint64_t commits;          /* group commits done (each one fdatasync per file) */
    uint64_t synced_jseq;      /* every record up to here is on disk */
    uint64_t backlog_bytes;    /* appended, not yet on disk */
    uint64_t cut_bytes;        /* cut off or skipped at open */
    uint64_t damaged_regions;  /* damaged regions skipped at open (each reported) */
    uint64_t lost_records;     /* records in them and in missing segments */
    uint64_t missing_segments; /* listed in the index, not in the folder */
    uint64_t stray_files;      /* named like segments, too large to be one: set aside */
    uint64_t write_errors;     /* failed writes or syncs (retried) */
} kvl_journal_stats_t;

/* Opens the journal in opts->dir, checking and repairing as described above, and fsyncs
 * what it keeps. Returns 0 and sets *out, or a negative code with a sentence in err. */
int kvl_journal_open(const kvl_journal_opts_t *opts, kvl_journal_t **out, char *err, size_t errlen);

/* Calls cb for every record found at open, in order; seg identifies its segment (for
 * kvl_journal_hold). A non-zero return from cb stops and is returned. May be called more
 * than once, before kvl_journal_start. */
typedef int (*kvl_journal_replay_cb)(void *ctx, const kvl_jrec_t *rec, uint64_t seg);
int kvl_journal_replay(kvl_journal_t *j, kvl_journal_replay_cb cb, void *ctx);

/* synced: on the loop, after a commit, with the highest jseq on disk. roll: on the loop,
 * when a new segment begins, before the record that caused it; it appends the checkpoint
 * (appends made from it never roll). */
typedef void (*kvl_journal_synced_cb)(void *ctx, uint64_t synced_jseq);
typedef void (*kvl_journal_roll_cb)(void *ctx);

/* Starts the writer thread and a new segment (calling roll), so the segments found at open
 * go once nothing holds them. Returns 0 or a negative code. */
int kvl_journal_start(kvl_journal_t *j, uv_loop_t *loop, kvl_journal_synced_cb synced,
                      kvl_journal_roll_cb roll, void *ctx);

/* Appends a record (rec->jseq is set). hold: the record's segment is kept until
 * kvl_journal_release(*seg). Returns 0 or KVL_EINVAL (too long). */
int kvl_journal_append(kvl_journal_t *j, kvl_jrec_t *rec, bool hold, uint64_t *seg);
void kvl_journal_hold(kvl_journal_t *j, uint64_t seg);
void kvl_journal_release(kvl_journal_t *j, uint64_t seg);

uint64_t kvl_journal_last_jseq(const kvl_journal_t *j);
/* The path of a segment's file (to read a record back once it is synced: its data starts
 * at rec.off + KVL_JOURNAL_RECORD_HEADER + rec.agent_len). Returns 0 or KVL_EINVAL. */
int kvl_journal_path(const kvl_journal_t *j, uint64_t seg, char *out, size_t outlen);
uint64_t kvl_journal_synced(const kvl_journal_t *j);
void kvl_journal_stats(kvl_journal_t *j, kvl_journal_stats_t *st);

/* Writes and syncs what is pending, stops the writer, closes its handle and frees once it
 * has closed (run the loop). Before kvl_journal_start it frees at once. NULL-safe. */
void kvl_journal_close(kvl_journal_t *j);

#endif
