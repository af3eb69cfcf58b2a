/*
 * metrics.h — GET /metrics: the collector's own health in Prometheus' text exposition format
 * (version 0.0.4), read from each room's getters when scraped: the ingest (batches and
 * samples journaled and applied, the journal, the apply lag, agent connections and losses),
 * the store's updates and errors, the alert book (alerts firing by severity), the notifiers
 * (per receiver), remote-write (per endpoint), the HTTP server (requests by route class and status,
 * a request-time histogram), the inventory and the latest values, and the process (resident memory,
 * open file descriptors, from /proc/self). Nothing is kept between scrapes: every figure is the
 * room's own.
 */
#ifndef KVL_METRICS_H
#define KVL_METRICS_H

#include <uv.h>

#include "board.h"
#include "book.h"
#include "http.h"
#include "ingest.h"
#include "inventory.h"
#include "notify.h"
#include "rwrite.h"
#include "store.h"

/* The rooms read (any may be NULL: its figures are left out); owned by the caller, valid
 * while the HTTP server runs. */
typedef struct kvl_metrics_src {
    uv_loop_t *loop;
    const char *collector_id;
    kvl_ingest_t *ingest;
    kvl_store_t *store;
    kvl_book_t *book;
    kvl_notify_t *notify;
    kvl_inventory_t *inventory;
    kvl_latest_t *latest;
    kvl_rwrite_t *rwrite;
    kvl_http_t *http;
} kvl_metrics_src_t;

/* Renders every metric into a malloc'd text (*out, *len). Returns 0 or KVL_ENOMEM. */
int kvl_metrics_render(const kvl_metrics_src_t *src, char **out, size_t *len);

/* Registers GET /metrics (viewer) on http; src must outlive the server. Returns 0 or
 * KVL_EINVAL. */
int kvl_metrics_register(kvl_http_t *http, const kvl_metrics_src_t *src);

#endif
