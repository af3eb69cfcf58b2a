/*
 * rw_queue.h — what remote-write keeps between a batch and its request, pure (no I/O, no
 * clock): series interned by their encoded labels (one copy of the label bytes per series,
 * counted references), a bounded ring of samples that drops its oldest when full, and the
 * WriteRequest built from the ring's head (samples grouped by series, each series' in the
 * order they were queued).
 *
 * Single-threaded: the caller's loop thread only.
 */
#ifndef KVL_RW_QUEUE_H
#define KVL_RW_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct kvl_rw_series kvl_rw_series_t;
typedef struct kvl_rw_intern kvl_rw_intern_t;

typedef struct kvl_rw_sample {
    kvl_rw_series_t *series; /* one reference, held by whoever holds the sample */
    int64_t time_ms;
    double value;
} kvl_rw_sample_t;

typedef struct kvl_rw_queue {
    kvl_rw_sample_t *ring;
    size_t cap, head, len;
    uint64_t dropped; /* the oldest samples pushed out by newer ones, since init */
} kvl_rw_queue_t;

/* The interning table. Returns NULL when out of memory. */
kvl_rw_intern_t *kvl_rw_intern_new(void);
/* Frees the table; every series must have been released. NULL-safe. */
void kvl_rw_intern_free(kvl_rw_intern_t *t);
/* The series with these label bytes (from kvl_rw_encode_labels), made on first use, with one
 * more reference for the caller. NULL when out of memory. */
kvl_rw_series_t *kvl_rw_intern(kvl_rw_intern_t *t, const uint8_t *labels, size_t len);
/* Gives a reference back; the series goes when its last one does. NULL-safe. */
void kvl_rw_series_unref(kvl_rw_intern_t *t, kvl_rw_series_t *s);
/* Its hash (stable for the same label bytes) and label bytes. */
uint64_t kvl_rw_series_hash(const kvl_rw_series_t *s);
const uint8_t *kvl_rw_series_labels(const kvl_rw_series_t *s, size_t *len);
/* Series alive. */
size_t kvl_rw_intern_count(const kvl_rw_intern_t *t);

/* A ring of cap samples (cap >= 1). Returns 0 or KVL_ENOMEM. */
int kvl_rw_queue_init(kvl_rw_queue_t *q, size_t cap);
/* Releases every sample still queued (t: their table) and the ring. */
void kvl_rw_queue_free(kvl_rw_queue_t *q, kvl_rw_intern_t *t);
/* Queues a sample (taking the caller's reference to s). When full, the oldest goes first
 * (its reference released, counted in q->dropped): returns 1 then, else 0. */
int kvl_rw_queue_push(kvl_rw_queue_t *q, kvl_rw_intern_t *t, kvl_rw_series_t *s, int64_t time_ms,
                      double value);

/* Takes up to max samples from the head and encodes them as one WriteRequest (uncompressed)
 * into body (replacing what it held): *n_samples taken, *n_series in it, *newest_ms the
 * newest sample time among them. The samples' references are released. Returns 0 (an empty
 * queue gives an empty body), or KVL_ENOMEM with the samples left queued. */
int kvl_rw_queue_take(kvl_rw_queue_t *q, kvl_rw_intern_t *t, size_t max, kvl_buf_t *body,
                      size_t *n_samples, size_t *n_series, int64_t *newest_ms);

#endif
