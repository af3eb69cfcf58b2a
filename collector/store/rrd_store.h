/*
 * rrd_store.h — the one module that calls librrd. Thread-safe (librrd's _r functions):
 * called from the thread pool, never from the loop.
 *
 * rrdcached mode (kvl_rrd_use_daemon): updates go to rrdcached (librrd's client: one
 * connection for the process, one request at a time), which writes them later. Files are
 * still created and completed here, and their headers read here without librrd (the data
 * sources' order, the last update), so rrdcached must see them under the same absolute
 * paths (the same host, or a file system both mount alike). Reads go through rrdcached
 * (FETCH, INFO: it writes what it holds of the file first; a reader's lock taken here would
 * make its writes of the file fail, and it drops what it held then).
 */
#ifndef KVL_RRD_STORE_H
#define KVL_RRD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kvl_rrd_ds {
    const char *name;
    int counter; /* 1: DERIVE with minimum 0; 0: GAUGE */
} kvl_rrd_ds_t;

typedef struct kvl_rrd_rra {
    const char *cf; /* "AVERAGE", "MAX", ... */
    uint32_t steps; /* primary points per row */
    uint32_t rows;
} kvl_rrd_rra_t;

typedef enum {
    KVL_RRD_OK = 0,
    KVL_RRD_STALE = 1,   /* update not newer than the file's last update: refused */
    KVL_RRD_BUSY = 2,    /* the file is locked by a reader (rrdtool graph, fetch): try again */
    KVL_RRD_MISSING = 3, /* update: the file does not exist (yet) */
    KVL_RRD_AGAIN = 4,   /* the file system refused for a reason that can pass (read-only,
                            full, out of inodes or quota, I/O error, permission, too many open
                            files); err names it: try again later */
    KVL_RRD_ERROR = -1,  /* anything else (not an RRD file, other data sources, a definition
                            librrd refuses): trying again will not help; message in err */
} kvl_rrd_result_t;

/* Creates `path` (not overwriting an existing file) with the given step in seconds, a
 * heartbeat of 2 steps, last update time `start`. KVL_RRD_AGAIN when the file could not be
 * written (librrd loses the reason of a failed write: the file system is examined instead). */
kvl_rrd_result_t kvl_rrd_create(const char *path, uint32_t step, int64_t start,
                                const kvl_rrd_ds_t *ds, size_t n_ds, const kvl_rrd_rra_t *rra,
                                size_t n_rra, char *err, size_t errlen);
/* Writes `path`'s dirty pages out, waits for them and drops the file from the page cache
 * (best effort: a failure leaves it as it was). kvl_rrd_create and kvl_rrd_add_ds call it on
 * the file librrd has just written: the kernel may hold it in large folios (up to 2 MiB, ext4
 * since Linux 6.16), and an update through librrd's shared mapping has every folio it touches
 * written back whole (~1 MB per update). Read back a page at a time, the file costs an update
 * the 4 KiB pages it touches (tests/bench/rrd-write). */
void kvl_rrd_uncache(const char *path);
/* Applies one update "time:v1:v2..." for the DS names in `tmpl` ("a:b:c"). In rrdcached
 * mode the update is sent to rrdcached in the file's own order of data sources (rrdcached
 * takes no template; those the template does not name are "U", as librrd makes them), and
 * `tmpl` NULL says that `update` is in that order already; `sent` (NULL: not wanted) gets
 * the string sent. KVL_RRD_OK there means rrdcached holds the update, not that the file has
 * it; KVL_RRD_AGAIN when rrdcached cannot be reached (err says so). A data source the
 * template names and the file lacks: KVL_RRD_ERROR with "unknown DS name" in err, in both
 * modes. */
kvl_rrd_result_t kvl_rrd_update(const char *path, const char *tmpl, const char *update, char *err,
                                size_t errlen);
kvl_rrd_result_t kvl_rrd_update_sent(const char *path, const char *tmpl, const char *update,
                                     char *sent, size_t sentlen, char *err, size_t errlen);

/* rrdcached mode from now on, at `addr` ("unix:/path", "/path" or "host[:port]"); NULL:
 * direct writes (the default). Called once, before any other function here, on the loop's
 * thread. Returns 0, or KVL_RRD_ERROR when out of memory. */
int kvl_rrd_use_daemon(const char *addr);
/* The rrdcached address in use, or NULL. */
const char *kvl_rrd_daemon(void);
/* `rrdcached_files: remote` (after kvl_rrd_use_daemon, with a host[:port] address): the
 * archives live only on rrdcached's host and paths are relative to its -b folder. Nothing
 * here opens, stats or maps a file then: kvl_rrd_create sends CREATE (rrdcached needs -R to
 * make folders), the data sources' order and the last update come from INFO (whole seconds:
 * an update in the same second as the file's last, when rrdcached holds nothing newer of the
 * file, is refused as stale), kvl_rrd_fetch has no local fallback, kvl_rrd_uncache does
 * nothing, and kvl_rrd_add_ds reads but cannot add (KVL_RRD_ERROR: rrdcached has no tune). */
void kvl_rrd_set_remote(bool remote);
bool kvl_rrd_remote(void);
/* Has rrdcached write what it holds of `path` and waits for it (FLUSH). KVL_RRD_OK also in
 * direct mode (nothing to do) and when rrdcached holds nothing of the file; KVL_RRD_MISSING
 * when the file does not exist; KVL_RRD_AGAIN when rrdcached cannot be reached. */
kvl_rrd_result_t kvl_rrd_flush(const char *path, char *err, size_t errlen);
/* Has rrdcached drop what it holds of `path` without writing it (FORGET). KVL_RRD_OK (also
 * when it held nothing, and in direct mode) or KVL_RRD_AGAIN. What is known here of the file
 * (its data sources' order, its last update in remote mode) is read again at its next update. */
kvl_rrd_result_t kvl_rrd_forget(const char *path, char *err, size_t errlen);

/* Which of ds[] the existing file `path` lacks (by name): missing[i] set for each, their
 * count in *n_missing. With `add`, adds them (DERIVE with minimum 0 or GAUGE, a heartbeat of
 * 2 of the file's steps, as kvl_rrd_create makes them) through librrd's rrd_tune ("DS:..."
 * specifications): librrd writes a new file with the old data and the new data sources
 * unknown, and renames it over the old one (a reader holding the old file reads on from it);
 * a file that lacks none is left alone, and a name rrdcreate would refuse is not added
 * (KVL_RRD_ERROR when there is no other); *n_added: how many were added. KVL_RRD_OK, or
 * KVL_RRD_MISSING, KVL_RRD_BUSY (a reader's lock), KVL_RRD_AGAIN or KVL_RRD_ERROR as an update's
 * (missing and *n_missing stay set when the file could be read but not changed). n_ds at most 64.
 * In rrdcached mode the file is flushed first (KVL_RRD_AGAIN when that fails).
 */
kvl_rrd_result_t kvl_rrd_add_ds(const char *path, const kvl_rrd_ds_t *ds, size_t n_ds, bool add,
                                bool *missing, size_t *n_missing, size_t *n_added, char *err,
                                size_t errlen);

/* What kvl_rrd_fetch read: rows at start + step, start + 2 step, ... end (as `rrdtool
 * fetch` prints them), n_ds values per row (NaN: unknown), the data sources' names. */
typedef struct kvl_rrd_points {
    int64_t start, end;
    uint32_t step;
    size_t n_ds, n_rows;
    char **ds_names;
    double *values; /* n_rows x n_ds */
} kvl_rrd_points_t;

/* Reads `cf` ("AVERAGE", "MAX", ...) of [start, end] at `step` seconds (librrd picks the
 * archive and may widen the range and step, as `rrdtool fetch -s start -e end -r step`
 * does). KVL_RRD_OK with *out filled (free it with kvl_rrd_points_free), KVL_RRD_MISSING
 * when the file does not exist, else KVL_RRD_ERROR with librrd's message in err. In
 * rrdcached mode rrdcached reads the file (FETCH: it writes what it holds of it first);
 * when it cannot be reached, the file is read here as it is. */
kvl_rrd_result_t kvl_rrd_fetch(const char *path, const char *cf, int64_t start, int64_t end,
                               uint32_t step, kvl_rrd_points_t *out, char *err, size_t errlen);
/* NULL-safe; leaves *p empty. */
void kvl_rrd_points_free(kvl_rrd_points_t *p);

#endif
