/*
 * spool.h — the agent's disk spool: every encoded batch is written here before it is sent
 * and deleted only when every collector it goes to has acknowledged it.
 *
 * On disk (one folder, owned by this agent; a `lock` file keeps a second agent out):
 *   <16 hex digits>.seg   a segment; the number is the sequence number of its first
 *                         record, so names sort in record order. A 16-byte header
 *                         ("kvlspool", format version, CRC), then records:
 *                           u32 length | u32 CRC-32C | u64 seq | payload (length bytes)
 *                         little-endian; the CRC covers length, seq and payload. A segment
 *                         is closed for appending ("rolled") once the next record would take
 *                         it past segment_bytes.
 *                         The segment files are read, written and checked by
 *                         common/seglog.c (this format: seg_fmt in spool.c).
 *   segments              the segment log's index (seglog.h): the segment files, replaced
 *                         after one is created and before one is deleted, so that a
 *                         segment missing at open is reported (an ERROR line with its seq
 *                         range; how many batches it held is not known); not synced unless
 *                         sync_interval_ms is 0 (a power cut may make it report a segment
 *                         deleted just before as missing). Other files: one WARN line each.
 *   <reader>.cursor       a reader's acknowledged sequence number (32 bytes with its own
 *                         CRC), replaced atomically by writing <reader>.cursor.tmp and
 *                         renaming it.
 *
 * Readers are the collectors a batch goes to (one today; two when dual-homed), named in
 * the options. Each has an acknowledged position (every record with seq <= acked is
 * acknowledged) and a read position (the next record kvl_spool_read returns). A segment is
 * deleted when every reader has acknowledged its last record; the segment being appended
 * to is never deleted that way.
 *
 * How uplink.c is to use it (integration comes after the TLS work on uplink.c lands):
 *   - at start: kvl_spool_open with one reader per collector (its host:port made
 *     file-safe, or "primary"/"secondary"); next sequence number =
 *     max(time-based number as today, kvl_spool_last_seq() + 1);
 *   - kvl_uplink_push: kvl_spool_append(seq, frame) first, then, when connected and the
 *     reader has caught up, send the frame directly; the in-memory queue goes away (the
 *     spool is the queue; max_queue becomes the spool's max_size);
 *   - after Welcome: kvl_spool_ack(reader, welcome.last_acked_seq), kvl_spool_rewind(reader),
 *     then pump: while the window allows, kvl_spool_read(reader) and send; 0 means caught
 *     up, new batches are then read as they are appended;
 *   - on Ack: kvl_spool_ack(reader, seq) (deletes whole segments every reader has passed);
 *   - on disconnect: nothing (the next Welcome rewinds);
 *   - a uv_timer every sync_interval: kvl_spool_sync_prepare on the loop,
 *     kvl_spool_sync_run in uv_queue_work, kvl_spool_sync_done in its after-callback, so
 *     fdatasync never blocks the loop; kvl_spool_free at exit;
 *   - /metrics and the agent's statistics: kvl_spool_stats, kvl_spool_reader_stats.
 *
 * Durability (sync_interval_ms):
 *   0   every append calls fdatasync itself (and fsyncs the folder after creating a
 *       segment): a power cut loses nothing that append returned 0 for, but every batch
 *       waits for the disk (on the loop);
 *   >0  appends only write(2); the owner calls kvl_spool_sync (or the prepare/run/done
 *       trio off the loop) every sync_interval_ms. A power cut loses at most the records
 *       appended since the last completed sync (one interval, plus the sync in progress),
 *       and only those not yet acknowledged matter: the collector still has the rest;
 *   <0  never syncs (tests; or trusting the kernel's writeback, ~30 s on Linux).
 * Unsynced data lost in a power cut shows up at the next open as a torn or zeroed tail;
 * open cuts it off and logs how many bytes went. Cursor files are never synced: a lost
 * cursor update only makes the reader resend batches the collector drops as duplicates.
 *
 * Damage found at open (common/seglog.c finds it; the spool logs and counts it):
 *   - a damaged record anywhere (bad length, bad CRC, seq out of order): skipped, and the
 *     spool resynchronises on the next valid record, so only the damaged records are
 *     lost; each damaged region gets an ERROR line (file, offset, bytes, the seq after it,
 *     how many batches, when known; the first 8 per segment, then one line for the rest)
 *     and is counted (damaged_regions, lost_records, cut_bytes); readers jump over it;
 *   - a damaged end with nothing valid after it: in the last segment a torn tail, cut off
 *     (ftruncate) with a WARN line; in another segment skipped with an ERROR line. A read
 *     that later finds a record that no longer matches its CRC checks the segment again
 *     and reports what is lost now;
 *   - a segment or cursor file of a newer format version: open fails (KVL_EPROTO), so an
 *     older agent never destroys a newer one's data;
 *   - a segment header that is not ours or is damaged: the segment holds no records and
 *     is deleted once it is the oldest; a file named like a segment but larger than one
 *     can be (twice the larger of segment_bytes and one longest record) is never read:
 *     set aside as <name>.stray with an ERROR line; a cursor file that is damaged: the
 *     reader starts from the oldest record (duplicates, never gaps).
 * Open reads every segment once to check it (at 2 GiB that is 2 GiB of reading, once per
 * agent start, only when the collector has been away that long).
 *
 * Bound: when an append would take the files past max_bytes, the oldest whole segments
 * are deleted first. Records in them that a reader had not acknowledged are counted as
 * dropped (per reader, and in total as the most any reader lost), that reader's
 * acknowledged position skips past them, and a WARN line says so (the first time, then at
 * most once a minute). max_bytes must be at least 2 * segment_bytes.
 *
 * Errors: functions return 0 (or a count) or a negative code: libuv-style -errno for
 * system calls (UV_ENOENT, UV_ENOSPC, UV_EACCES...), KVL_EINVAL for bad arguments,
 * KVL_EPROTO for a newer format, KVL_ENOMEM. kvl_spool_open also writes a sentence into
 * err. Write failures (disk full) are logged by the spool itself, once when they start and
 * once when writing works again; the spool stays usable and the agent keeps running.
 *
 * Single-threaded: every call except kvl_spool_sync_run is made from one thread (the
 * loop). Synchronous file I/O: write(2), pread(2), rename(2) of small files.
 */
#ifndef KVL_SPOOL_H
#define KVL_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define KVL_SPOOL_FORMAT_VERSION 1u
#define KVL_SPOOL_DEFAULT_MAX_BYTES (2ull << 30)     /* 2 GiB */
#define KVL_SPOOL_DEFAULT_SEGMENT_BYTES (4ull << 20) /* 4 MiB */
#define KVL_SPOOL_MIN_SEGMENT_BYTES 256u
#define KVL_SPOOL_RECORD_MAX (64u << 20) /* longest payload */
#define KVL_SPOOL_MAX_READERS 8
#define KVL_SPOOL_READER_NAME_MAX 64 /* [A-Za-z0-9_.:-], not starting with '.' */
#define KVL_SPOOL_SYNC_FDS 18

typedef struct kvl_spool kvl_spool_t;

typedef struct kvl_spool_opts {
    const char *dir;            /* must exist and be writable; it is not created */
    uint64_t max_bytes;         /* 0: KVL_SPOOL_DEFAULT_MAX_BYTES */
    uint64_t segment_bytes;     /* 0: KVL_SPOOL_DEFAULT_SEGMENT_BYTES */
    int64_t sync_interval_ms;   /* see "Durability" above */
    const char *const *readers; /* names, 1 to KVL_SPOOL_MAX_READERS, distinct */
    size_t n_readers;
} kvl_spool_opts_t;

typedef struct kvl_spool_stats {
    uint64_t bytes;            /* size of all segment files */
    uint64_t records;          /* records held (acknowledged or not) */
    uint64_t segments;         /* segment files */
    uint64_t dropped_records;  /* deleted by the bound before some reader acknowledged them */
    uint64_t dropped_bytes;    /* their payload bytes */
    uint64_t cut_bytes;        /* torn or damaged bytes cut off or skipped */
    uint64_t damaged_regions;  /* damaged regions skipped (each reported in a log line) */
    uint64_t lost_records;     /* batches known to be lost in them (a lower bound) */
    uint64_t stray_files;      /* files named like segments, too large to be one: set aside */
    uint64_t missing_segments; /* listed in the index, not in the folder, at open */
    uint64_t write_errors;     /* appends that failed (disk full, I/O error) */
    uint64_t sync_errors;      /* failed fdatasync/fsync calls */
} kvl_spool_stats_t;

typedef struct kvl_spool_reader_stats {
    uint64_t acked_seq;       /* every record up to here is acknowledged (0: none yet) */
    uint64_t dropped_records; /* dropped by the bound before this reader acknowledged them */
    uint64_t dropped_bytes;
} kvl_spool_reader_stats_t;

/* Work for one sync, handed to another thread (see kvl_spool_sync_prepare). */
typedef struct kvl_spool_sync_job {
    int fds[KVL_SPOOL_SYNC_FDS]; /* duplicated descriptors to fdatasync, then close */
    size_t n;
    int dir_fd; /* duplicated folder descriptor to fsync, or -1 */
    int err;    /* 0 or the first -errno */
} kvl_spool_sync_job_t;

/* Opens (checking and repairing as described above) the spool in opts->dir. Returns 0 and
 * sets *out, or a negative code with a sentence in err. */
int kvl_spool_open(const kvl_spool_opts_t *opts, kvl_spool_t **out, char *err, size_t errlen);
/* Syncs (unless sync_interval_ms < 0), saves cursors, closes files, frees. NULL-safe. */
void kvl_spool_free(kvl_spool_t *sp);

/* The index of a reader named in the options, or KVL_EINVAL. */
int kvl_spool_reader(const kvl_spool_t *sp, const char *name);

/* Appends one record. seq must be above kvl_spool_last_seq; 1 <= len <=
 * KVL_SPOOL_RECORD_MAX and len fits max_bytes. Returns 0, KVL_EINVAL, or a -errno from the
 * file system (the spool is unchanged then). */
int kvl_spool_append(kvl_spool_t *sp, uint64_t seq, const void *data, size_t len);
/* The highest sequence number appended or acknowledged so far, also across restarts
 * (0 for a new spool). */
uint64_t kvl_spool_last_seq(const kvl_spool_t *sp);

/* Reads the next unacknowledged record at the reader's position into out (replacing what
 * it held) and its number into *seq. Returns 1, 0 when the reader has read everything, or
 * a negative code (-errno, KVL_ENOMEM). A damaged record is skipped as described above. */
int kvl_spool_read(kvl_spool_t *sp, int reader, uint64_t *seq, kvl_buf_t *out);
/* Acknowledges every record up to seq for the reader (a lower seq than before changes
 * nothing), saves its cursor file and deletes segments every reader has passed. Returns 0
 * or KVL_EINVAL; a cursor file that cannot be written is logged, not returned. */
int kvl_spool_ack(kvl_spool_t *sp, int reader, uint64_t seq);
/* Moves the reader's position back to its first unacknowledged record. */
void kvl_spool_rewind(kvl_spool_t *sp, int reader);

/* fdatasync of what was written since the last sync, and fsync of the folder when files
 * were created. Returns 0 or the first -errno (also logged and counted). */
int kvl_spool_sync(kvl_spool_t *sp);
/* The same in three steps so the waiting happens off the loop: prepare (loop) fills job
 * with duplicated descriptors and returns 1 if there is anything to sync, 0 if not, or a
 * negative code; run (any thread) syncs and closes them; done (loop) logs and counts the
 * result. One job at a time. */
int kvl_spool_sync_prepare(kvl_spool_t *sp, kvl_spool_sync_job_t *job);
void kvl_spool_sync_run(kvl_spool_sync_job_t *job);
void kvl_spool_sync_done(kvl_spool_t *sp, kvl_spool_sync_job_t *job);

void kvl_spool_stats(const kvl_spool_t *sp, kvl_spool_stats_t *st);
void kvl_spool_reader_stats(const kvl_spool_t *sp, int reader, kvl_spool_reader_stats_t *st);

#endif
