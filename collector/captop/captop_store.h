/*
 * captop_store.h — the capture's top hosts and conversations at the collector: the agents'
 * `capture_top` events (agent/capture/capship.h) kept in a compact file per agent and
 * capture interface, <data_dir>/_capture/<agent>/<interface>.top, and served by
 * GET /api/v1/capture.
 *
 * The file: a header line "kaaval-captop 1" (its format version, checked with
 * kvl_format_check: a newer one is left alone and named in the log), then one record per
 * interval as common/captop.h writes it. Records older than KVL_CAPTOP_KEEP_DAYS are dropped
 * when the file is rewritten: when it grows beyond KVL_CAPTOP_MAX_FILE, or when its first
 * record is a day older than that (then, if still above half the bound, only the newest
 * records that fit half of it are kept). So a file never holds much more than
 * KVL_CAPTOP_MAX_FILE and one record, and a read holds at most that.
 *
 * Writes run on the thread pool one at a time, in the order the events came; at most
 * KVL_CAPTOP_QUEUE wait (beyond: dropped, counted and logged once until the queue drains).
 * An event whose fields do not parse (captop.h) is dropped and logged. A write that fails is
 * logged, the same failure again only after a write worked.
 *
 * GET /api/v1/capture?agent=A&interface=I[&from=S][&to=S] (viewer): the records whose
 * interval ends within [from, to] (Unix seconds; to defaults to now, from to an hour before
 * to), oldest first, at most KVL_CAPTOP_ANSWER_MAX (then "truncated": true):
 *   {"agent", "interface", "from", "to", "truncated",
 *    "intervals": [{"start", "end" (Unix ms), "hosts": [{"addr", "bytes", "error",
 *    "packets"}], "convs": [{"a", "b", "bytes", "error", "packets"}]}]}
 * 400 with a sentence for a parameter missing or wrong, 404 when nothing is kept for them.
 *
 * Loop thread only (the file work on the pool).
 */
#ifndef KVL_COLLECTOR_CAPTOP_H
#define KVL_COLLECTOR_CAPTOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "captop.h" /* common/: the lists' and records' text */
#include "http.h"
#include "sink.h"

#define KVL_CAPTOP_FORMAT_VERSION 1u
#define KVL_CAPTOP_KEEP_DAYS 3
#define KVL_CAPTOP_MAX_FILE (16u << 20)
#define KVL_CAPTOP_QUEUE 1024
#define KVL_CAPTOP_ANSWER_MAX 1440

typedef struct kvl_captop_store kvl_captop_store_t;

/* Keeps files under <data_dir>/_capture. now_ms: the clock (NULL: the real one; tests).
 * Returns 0 or KVL_ENOMEM (err says so). */
int kvl_captop_store_new(uv_loop_t *loop, const char *data_dir, int64_t (*now_ms)(void),
                         kvl_captop_store_t **out, char *err, size_t errlen);
/* Stops taking events; the memory goes once the writes under way are done. NULL-safe. */
void kvl_captop_store_free(kvl_captop_store_t *s);

/* The sink (sink.h): events only. ctx: the kvl_captop_store_t. */
extern const kvl_sink_t kvl_captop_sink;

/* Registers GET /api/v1/capture. Returns 0 or KVL_EINVAL. */
int kvl_captop_api_register(kvl_captop_store_t *s, kvl_http_t *http);

/* The file of an agent's interface (names made file-safe). Returns 0 or KVL_EINVAL. */
int kvl_captop_path(const char *data_dir, const char *agent, const char *iface, char *out,
                    size_t outlen);

/* Counters since the start: records written, events dropped (unparsable, queue full), write
 * failures. */
typedef struct kvl_captop_stats {
    uint64_t written, bad, dropped, failed;
} kvl_captop_stats_t;
void kvl_captop_store_stats(const kvl_captop_store_t *s, kvl_captop_stats_t *out);

#endif
