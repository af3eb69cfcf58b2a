/*
 * rw_proto.h — the Prometheus remote-write 1.0 request, pure: a kaaval series' labels (the one
 * name and label mapping, documented in docs/configuration.md "remote_write"), the protobuf
 * WriteRequest encoded by hand, and the snappy block compression the protocol wants (this
 * file's .c is the only user of libsnappy).
 *
 *   WriteRequest { repeated TimeSeries timeseries = 1; }
 *   TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
 *   Label        { string name = 1; string value = 2; }
 *   Sample       { double value = 1; int64 timestamp = 2; }   timestamp in ms
 *
 * Nothing here allocates except into the caller's kvl_buf_t; no state, no threads.
 */
#ifndef KVL_RW_PROTO_H
#define KVL_RW_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "wire.h"

#define KVL_RW_LABELS_MAX 48
#define KVL_RW_VALUE_MAX 1024 /* a series label's value longer than this is cut */

/* What the mapping adds to every series: the configuration's external labels (names valid
 * already) and which of a series' own labels to carry (their keys). */
typedef struct kvl_rw_map {
    const kvl_label_t *external;
    size_t n_external;
    char *const *series_labels;
    size_t n_series_labels;
} kvl_rw_map_t;

/* A series' own label by key (the collector's inventory keeps those of devices and
 * interfaces), or NULL. */
typedef const char *(*kvl_rw_label_fn)(void *ctx, const char *key);

/* One series' labels: names and values point into text or into the definition given. */
typedef struct kvl_rw_labels {
    size_t n;
    const char *name[KVL_RW_LABELS_MAX];
    const char *value[KVL_RW_LABELS_MAX];
    size_t used;
    char text[4096];
} kvl_rw_labels_t;

/* The metric name of def (fam: its family or NULL): kaaval_<scope>_<metric> (scope device,
 * interface, agent or link; a metric group's: kaaval_<group>_<metric>), with _total after a
 * counter's, sanitised to [a-zA-Z_][a-zA-Z0-9_]*, into out. Returns its length, or 0 when
 * the series is not sent (a later scope: neighbours) or the name does not fit. */
size_t kvl_rw_name(const kvl_series_def_t *def, const kvl_family_t *fam, char *out, size_t outlen);

/* The labels of def's instance as sent by agent at site, __name__ first with its value left
 * NULL (the caller sets value[0] to kvl_rw_name's, per metric): site, agent, device (the
 * agent for its own and its link series), interface / target / instance (none when the
 * instance is empty); then the series' own labels m carries (from label(label_ctx, key),
 * NULL: none; names sanitised, empty values left out, names taken already skipped); then m's
 * external labels whose names are still free. Sorted by name after __name__. Returns 0, or
 * KVL_EINVAL when they do not fit. out's pointers live as long as def, m and the label
 * values. */
int kvl_rw_labels_of(const kvl_rw_map_t *m, const char *site, const char *agent,
                     const kvl_series_def_t *def, kvl_rw_label_fn label, void *label_ctx,
                     kvl_rw_labels_t *out);

/* Name sanitising: s with every byte outside [a-zA-Z0-9_] turned into '_' and a '_' in front
 * of a leading digit, into out (at most outlen - 1 bytes). Returns the length, 0 when s is
 * empty or out too small. */
size_t kvl_rw_sanitize(const char *s, char *out, size_t outlen);

/* Appends the labels as TimeSeries' repeated Label field (the bytes a series is known by).
 * Returns 0 or KVL_ENOMEM. */
int kvl_rw_encode_labels(const kvl_rw_labels_t *l, kvl_buf_t *out);

/* Appends one TimeSeries (labels: the bytes from kvl_rw_encode_labels; n samples, in time
 * order) to the WriteRequest being built in out. Returns 0 or KVL_ENOMEM. */
int kvl_rw_encode_series(kvl_buf_t *out, const uint8_t *labels, size_t labels_len,
                         const int64_t *time_ms, const double *values, size_t n);

/* Snappy block compression of in into out (replacing what it held). Returns 0, KVL_ENOMEM,
 * or KVL_EINVAL when snappy refuses. */
int kvl_rw_compress(const uint8_t *in, size_t n, kvl_buf_t *out);
/* The inverse (tests and fuzzers): KVL_EDECODE when in is not a snappy block. */
int kvl_rw_uncompress(const uint8_t *in, size_t n, kvl_buf_t *out);

#endif
