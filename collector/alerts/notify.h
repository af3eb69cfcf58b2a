/*
 * notify.h — delivery of notifications to receivers (Alertmanager API v2, webhook with an
 * HMAC-SHA256 signature, e-mail over SMTP, exec, syslog, SNMP notifications), from a
 * persisted, bounded outbox, on the collector's loop (libcurl multi driven by libuv).
 *
 * The alert book decides what to say and to whom (routes, grouping, silences, repeat,
 * escalation); this module only delivers: kvl_notify_enqueue appends a notification for
 * one receiver to that receiver's queue in the outbox (on disk before the call returns
 * 0), and the receiver gets the queue's notifications in order, each once: retried with
 * a growing delay (1 s doubling to 5 min) while the receiver fails, so a receiver down
 * for an hour gets everything afterwards, in order. The outbox survives a restart (a
 * notification handed over but not yet confirmed by the receiver is sent again: at least
 * once, in order; receivers that can deduplicate, Alertmanager by labels, do). At its
 * bound (max_bytes per receiver) the oldest notifications are dropped, counted and
 * logged.
 *
 * Format version (KVL_NOTIFY_FORMAT_VERSION): in each outbox segment's header (seglog) and
 * in the cursor file ("format"; a cursor without it, written before versions were kept, is
 * version 1). A segment or cursor of a newer version makes kvl_notify_new fail with a
 * sentence saying what to do, the files untouched.
 *
 * Threads: everything on the loop's thread. The process must ignore SIGPIPE (the collector
 * does): an exec receiver's program may exit without reading the input written to it.
 */
#ifndef KVL_NOTIFY_H
#define KVL_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "alert.h"

#define KVL_NOTIFY_FORMAT_VERSION 1u

typedef struct kvl_notify kvl_notify_t;
typedef struct kvl_notify_cfg kvl_notify_cfg_t; /* notify_config.h: the `receivers:` list */

/* One notification: a group of alerts for one receiver. */
typedef struct kvl_notification {
    const char *receiver;  /* a receiver's name from the configuration */
    const char *group_key; /* the route and the group_by labels' values, e.g.
                              "route=district-kollam;site=DHQ-Kollam" */
    const kvl_alert_t *const *alerts;
    size_t n_alerts; /* each firing or resolved */
    bool repeat;     /* repeat_interval: the same alerts again, still firing */
    bool escalated;  /* not acknowledged in time: to the next receiver */
} kvl_notification_t;

/* Opens the outbox under state_dir (created if missing) and resumes what it holds; cfg
 * (NULL: no receivers) must outlive n. Returns 0, or a negative KVL_E* with a sentence in
 * err (a receiver that cannot be set up, e.g. an snmp address that does not resolve). */
int kvl_notify_new(uv_loop_t *loop, const kvl_notify_cfg_t *cfg, const char *state_dir,
                   kvl_notify_t **out, char *err, size_t errlen);

/* Whether the configuration names that receiver. */
bool kvl_notify_has_receiver(const kvl_notify_t *n, const char *receiver);

/* Queues n for delivery (see above). Returns 0, KVL_EINVAL (unknown receiver), KVL_EIO
 * (the outbox could not be written: nothing queued) or KVL_ENOMEM. */
int kvl_notify_enqueue(kvl_notify_t *n, const kvl_notification_t *notification);

typedef struct kvl_notify_stats {
    uint64_t queued, delivered, failed_attempts, dropped;
    uint64_t waiting; /* in the outbox now, all receivers */
} kvl_notify_stats_t;

void kvl_notify_stats(const kvl_notify_t *n, kvl_notify_stats_t *out);

/* The same counters per receiver, in the configuration's order (NULL n: none). */
typedef void (*kvl_notify_receiver_stats_fn)(void *ctx, const char *receiver,
                                             const kvl_notify_stats_t *st);
void kvl_notify_receiver_stats(const kvl_notify_t *n, kvl_notify_receiver_stats_fn fn, void *ctx);

/* Stops delivering (what is queued stays on disk for the next start), closes handles and
 * frees n once they are closed; the loop must run afterwards for that. NULL is fine. */
void kvl_notify_free(kvl_notify_t *n);

#endif
