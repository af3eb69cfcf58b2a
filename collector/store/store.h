/*
 * store.h — writes samples into RRD archives, off the loop.
 *
 * A job (from the ingest's batches through kvl_store_sink, or built directly): rows, each one
 * update of one archive file (one interface or one device at one instant). The job runs on libuv's
 * thread pool; its callback runs on the loop with what was written. Files are created on first use:
 *   <data_dir>/<site>/<device>/<interface>.rrd   SCOPE_INTERFACE
 *   <data_dir>/<site>/<device>.rrd               SCOPE_DEVICE
 *   <data_dir>/<site>/_agent/<agent id>.rrd      SCOPE_AGENT (the agent's own statistics)
 *   <data_dir>/<site>/<device>/_<group>/<row>.rrd SCOPE_GROUP, a row of a metric group
 *   <data_dir>/<site>/<device>/_<group>.rrd       SCOPE_GROUP, a group's scalars (row "")
 * (names always escape a leading '_', so "_agent" and "_<group>" never meet a device or an
 * interface). A metric group's archive has the group's metrics (its family) as data
 * sources; the other scopes have fixed ones.
 * with names made file-safe (names.h), step = the series' interval, DERIVE (min 0) for
 * counters and GAUGE for states, heartbeat 2 steps, and the configured archives (RRAs).
 * Jobs of one agent must be submitted one at a time to keep each file's updates in order.
 *
 * Failures: an update the file system refuses for a reason that can pass stops the job
 * there (result.retry, result.why), so that nothing of the same file is written after it;
 * one that cannot pass (a file that is not an RRD, or lacks the data source) is counted in
 * result.errors and the job goes on.
 */
#ifndef KVL_STORE_H
#define KVL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "sink.h"
#include "wire.h"

/* One archive resolution, e.g. "5m for 2 weeks"; resolution 0 means one step. */
typedef struct kvl_archive_spec {
    int64_t resolution_ms;
    int64_t retention_ms;
} kvl_archive_spec_t;

typedef struct kvl_store_cfg {
    const char *data_dir;
    const kvl_archive_spec_t *archives;
    size_t n_archives;
    const char *const *consolidations; /* NULL-terminated, e.g. AVERAGE, MAX */
    /* rrdcached mode: updates go through rrdcached at this address ("unix:/path", "/path",
     * "host[:port]"); NULL: librrd writes the files itself. Files are created and read here
     * in both modes (rrd_store.h). What rrdcached took and has not written is kept (store_redo.c)
     * until a checkpoint has it written, every checkpoint_ms, and sent again if rrdcached
     * goes away before. */
    const char *rrdcached;
    int64_t rrdcached_checkpoint_ms;
    /* `rrdcached_files: remote`: the archives are on rrdcached's host alone, their paths
     * relative to its -b folder (data_dir is not used for them); rrdcached creates them and
     * every read goes through it (rrd_store.h, kvl_rrd_set_remote). Archives do not follow a
     * renamed interface then (kvl_store_move reports KVL_STORE_KEPT_BOTH). */
    bool rrdcached_remote;
} kvl_store_cfg_t;

typedef struct kvl_store kvl_store_t;

typedef struct kvl_store_value {
    const char *metric;
    bool unknown;
    bool real;
    uint64_t value;
    double real_value;
} kvl_store_value_t;

typedef struct kvl_store_row {
    const char *site;
    const char *device;
    kvl_scope_t scope;
    const char *instance;
    const kvl_family_t *family; /* SCOPE_GROUP: the group (the job keeps a copy) */
    uint32_t interval_s;
    int64_t time_ms;
    const kvl_store_value_t *values;
    size_t n_values;
} kvl_store_row_t;

typedef struct kvl_store_job kvl_store_job_t;

typedef struct kvl_store_result {
    size_t rows;       /* updates applied */
    size_t values;     /* values in those updates */
    size_t stale;      /* updates refused as not newer than the file's last one */
    size_t skipped;    /* values of metrics no archive has a place for */
    size_t errors;     /* updates that failed for good (not an RRD file, other data sources):
                          each such file is logged once, not at every update */
    size_t created;    /* files created */
    size_t busy_waits; /* updates that waited for a reader's lock (rrdtool graph, fetch) */
    size_t retry;      /* updates not done for a reason that can pass (the file system
                          read-only, full, failing, refusing; a reader's lock held too long):
                          the first such one, and every row after it, which the job did not
                          try, so that each file's updates stay in order. Run the rows again
                          later: those written before come back as stale */
    char why[640];     /* when retry: the archive file and the reason */
} kvl_store_result_t;

/* result: what happened; job is freed after the callback returns. */
typedef void (*kvl_store_done_cb)(void *arg, const kvl_store_result_t *result);

/* Copies cfg (data_dir and archives) and makes the data folder when missing. Returns 0 and
 * sets *out, or a negative code with the reason in err (nothing to free). */
int kvl_store_new(uv_loop_t *loop, const kvl_store_cfg_t *cfg, kvl_store_t **out, char *err,
                  size_t errlen);
void kvl_store_free(kvl_store_t *s);

kvl_store_job_t *kvl_store_job_new(void);
/* Copies the row into the job. Returns 0 or KVL_ENOMEM. */
int kvl_store_job_add(kvl_store_job_t *j, const kvl_store_row_t *row);
size_t kvl_store_job_rows(const kvl_store_job_t *j);
/* Runs the job on the thread pool; takes ownership of it. cb runs on the loop. On failure
 * (a negative code) the job is freed and cb is never called. */
int kvl_store_submit(kvl_store_t *s, kvl_store_job_t *j, kvl_store_done_cb cb, void *arg);
void kvl_store_job_free(kvl_store_job_t *j);

/* The store as a sink (sink.h; store_sink.c), ctx a kvl_store_t: each batch becomes a job,
 * its rows as described above, submitted at once; `done` when it has run. */
extern const kvl_sink_t kvl_store_sink;

/* Jobs submitted and not finished. */
size_t kvl_store_busy(const kvl_store_t *s);

/* rrdcached mode's figures (all 0 and enabled false in direct mode). */
typedef struct kvl_store_rrdcached_stats {
    bool enabled;
    bool connected;           /* the last attempt reached rrdcached */
    uint64_t pending_updates; /* sent to rrdcached, not yet known written (kept to resend) */
    uint64_t pending_bytes;   /* memory they take */
    uint64_t recoveries;      /* connections made to rrdcached (the first, and after each loss) */
    uint64_t replayed;        /* updates sent again after rrdcached went away */
    uint64_t failures;        /* jobs put off because rrdcached could not be reached */
    uint64_t checkpoints;     /* checkpoints done */
    uint64_t checkpointed;    /* updates known written by them */
} kvl_store_rrdcached_stats_t;
/* On the loop. */
void kvl_store_rrdcached(kvl_store_t *s, kvl_store_rrdcached_stats_t *out);

/* Durability in rrdcached mode (sink.h, durable_after): a job's updates are durable once a
 * checkpoint queued after the job finished has had rrdcached write every file. The number of
 * the checkpoint that will cover what the jobs finished so far wrote (0 in direct mode: a
 * job's updates are in the files when it ends); `fn` is called on the loop with the number
 * of each checkpoint that completes. */
uint64_t kvl_store_durable_after(const kvl_store_t *s);
typedef void (*kvl_store_durable_fn)(void *ctx, uint64_t point);
/* A checkpoint now, on the pool, instead of when the interval has passed (none when one
 * runs, or in direct mode). On the loop. */
void kvl_store_checkpoint(kvl_store_t *s);
void kvl_store_on_durable(kvl_store_t *s, kvl_store_durable_fn fn, void *ctx);

/* Moving an interface's archive when the interface was renamed on its device (store_move.c;
 * the inventory decides, collector/inventory/inventory.h). kvl_store_move (on the loop) asks
 * for <site>/<device>/<from>.rrd to become <site>/<device>/<to>.rrd; the store does it on the
 * thread pool before the rows of the next batch of that agent it is given (kvl_store_sink),
 * so the new name's samples of that very batch land in the moved file; the agent's batches
 * come one at a time, so no job of that agent runs meanwhile. A move is idempotent, so it
 * may be asked again after a crash: the old file is renamed only if the new one does not
 * exist (renameat2 RENAME_NOREPLACE; where the file system lacks it, link then unlink, and
 * two names of one file left by a crash between them are taken as that move half done);
 * the old file missing: nothing to move (or it was moved before); both there: both kept.
 * The folder is synced after a move. A failure that can pass (read-only, full, failing file
 * system) puts the move back and asks for the batch again (sink.h, retry), so nothing is
 * written under the new name before the move; one that cannot (a name too long) is logged
 * and the move dropped. */
typedef enum kvl_store_move_how {
    KVL_STORE_MOVED,      /* the old file is the new name's now */
    KVL_STORE_NO_ARCHIVE, /* no file under the old name */
    KVL_STORE_KEPT_BOTH,  /* both names had a file: nothing moved */
} kvl_store_move_how_t;
/* Called on the loop with each move's outcome (not for those that failed). */
typedef void (*kvl_store_moved_fn)(void *ctx, const char *agent, const char *device,
                                   const char *from, const char *to, kvl_store_move_how_t how);
void kvl_store_on_moved(kvl_store_t *s, kvl_store_moved_fn fn, void *ctx);
/* Queues a move for the agent's next batch. Returns 0, KVL_EINVAL (a name missing or one the
 * archive paths cannot hold, or from equal to to) or KVL_ENOMEM. */
int kvl_store_move(kvl_store_t *s, const char *agent, const char *site, const char *device,
                   const char *from, const char *to);
/* Moves queued and not done yet. */
size_t kvl_store_moves_pending(const kvl_store_t *s);

/* The path of the file a row goes to (for tests and logs); data_dir "" gives the path
 * relative to rrdcached's folder (remote mode). Returns 0 or KVL_EINVAL (also for
 * SCOPE_GROUP, which has kvl_store_group_path). */
int kvl_store_path(const char *data_dir, const char *site, const char *device, kvl_scope_t scope,
                   const char *instance, char *out, size_t outlen);
int kvl_store_group_path(const char *data_dir, const char *site, const char *device,
                         const char *group, const char *instance, char *out, size_t outlen);

#endif
