/*
 * rwrite.h — Prometheus remote-write out: a sink (sink.h) that sends every applied sample to
 * one or more receivers (Prometheus with --web.enable-remote-write-receiver, VictoriaMetrics,
 * anything that speaks remote-write 1.0), configured by `remote_write:` (rwrite_config.h).
 *
 * Never slows the archives: on_batch turns the batch's known samples into labels (rw_proto.h)
 * and queues them in memory (rw_queue.h) for each endpoint, then calls `done` at once. Each
 * endpoint spreads its series over `shards` queues (by a hash of the labels, so one series'
 * samples always travel in order through one shard), each holding max_queue / shards samples:
 * when a queue is full its OLDEST samples are dropped and counted (fresh data goes on flowing
 * after an outage). A shard sends one request at a time (up to max_samples_per_send samples,
 * snappy-compressed protobuf) on the loop through common/curl_uv.c; a network error, a 5xx,
 * 408 or 429 keeps the request and retries it after a backoff (min_backoff doubling to
 * max_backoff), another status is a refusal (e.g. out-of-order samples): those samples are
 * dropped and counted. Nothing is journaled: samples still queued when the collector stops
 * are lost (logged with their count).
 *
 * Threads: the loop's thread only. Lifetime: kvl_rwrite_new before the ingest, free after it.
 */
#ifndef KVL_RWRITE_H
#define KVL_RWRITE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "rwrite_config.h"
#include "sink.h"

typedef struct kvl_rwrite kvl_rwrite_t;

/* One endpoint's figures (for /metrics). */
typedef struct kvl_rwrite_stats {
    const char *name;
    uint64_t sent;             /* samples the receiver accepted */
    uint64_t dropped_full;     /* the oldest samples pushed out of a full queue */
    uint64_t dropped_rejected; /* samples of requests the receiver refused (4xx) */
    uint64_t retries;          /* requests that failed for a reason that can pass */
    uint64_t requests;         /* requests answered 2xx */
    size_t queued;             /* samples waiting (queues and requests in flight) */
    size_t series;             /* series with samples waiting */
    int64_t last_success_ms;   /* 0: none yet */
    double lag_s;              /* age of the oldest sample waiting (0: none waits) */
} kvl_rwrite_stats_t;

/* A label of a device (interface "") or of one of its interfaces, as the agent last reported
 * it (the collector's inventory), or NULL. Called on the loop's thread from on_batch. */
typedef const char *(*kvl_rwrite_label_fn)(void *ctx, const char *agent, const char *device,
                                           const char *interface, const char *key);

/* Starts the endpoints of cfg (which must outlive the result) on loop; label_of(label_ctx, ...)
 * gives the series' own labels (NULL: none carried). Returns 0, or a negative code with a
 * sentence in err. cfg NULL or empty: *out NULL, nothing to do. */
int kvl_rwrite_new(uv_loop_t *loop, const kvl_rw_cfg_t *cfg, kvl_rwrite_label_fn label_of,
                   void *label_ctx, kvl_rwrite_t **out, char *err, size_t errlen);

/* Stops: transfers cancelled, what is still queued dropped (logged), handles closed; the
 * memory goes once the loop has run their close callbacks. NULL-safe. */
void kvl_rwrite_free(kvl_rwrite_t *rw);

/* Calls fn for each endpoint. NULL-safe. */
void kvl_rwrite_each(const kvl_rwrite_t *rw, void (*fn)(void *ctx, const kvl_rwrite_stats_t *st),
                     void *ctx);

/* The sink (ctx: the kvl_rwrite_t). */
extern const kvl_sink_t kvl_rwrite_sink;

#endif
