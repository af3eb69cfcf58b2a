/*
 * notify_int.h — what notify.c (the outbox and its scheduling) and the receiver types
 * (notify_am.c, notify_webhook.c, notify_smtp.c, notify_exec.c, notify_syslog.c,
 * notify_snmp.c) share: a receiver, its type's small ops table, the notification as
 * the types read it, and the HTTP/SMTP transfer helper (libcurl multi on the loop).
 *
 * A delivery: notify.c takes the oldest notification of a receiver's queue and calls its
 * type's send(); the type renders it and either finishes at once (returns 1: delivered,
 * or a negative code: failed, why set) or starts something (returns 0) and later calls
 * kvl_notify_rcv_done exactly once. Only one delivery per receiver is under way at a
 * time. Everything runs on the loop's thread.
 */
#ifndef KVL_NOTIFY_INT_H
#define KVL_NOTIFY_INT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "alert.h"
#include "buf.h"

/* notify_config.h: the files that read a receiver's keys include it (a name here keeps the
 * configuration module below this one) */
typedef struct kvl_notify_receiver_cfg kvl_notify_receiver_cfg_t;
typedef struct kvl_notify kvl_notify_t; /* notify.h */

typedef struct kvl_notify_rcv kvl_notify_rcv_t;

/* One queued notification as the types read it: the record's JSON (see notify.c) and its
 * alerts parsed back. */
typedef struct kvl_notify_msg {
    json_t *json; /* {"receiver", "group_key", "status", "repeat", "escalated", "alerts"} */
    const char *group_key;
    const char *status; /* "firing" when any alert fires, else "resolved" */
    kvl_alert_t **alerts;
    size_t n_alerts;
    size_t n_firing;
} kvl_notify_msg_t;

typedef struct kvl_notify_ops {
    /* Sets up the type's state (r->priv). 0, or negative with a sentence in why. */
    int (*open)(kvl_notify_rcv_t *r, char *why, size_t whylen);
    /* Starts delivering m: 1 delivered now, 0 started (kvl_notify_rcv_done follows), or a
     * negative code with why (this attempt failed; retried later). */
    int (*send)(kvl_notify_rcv_t *r, const kvl_notify_msg_t *m, char *why, size_t whylen);
    /* After m was confirmed (optional): the type's own bookkeeping. */
    void (*confirmed)(kvl_notify_rcv_t *r, const kvl_notify_msg_t *m);
    /* The type's state to persist with the cursor (a new reference, or NULL), and the
     * reverse at open (optional). */
    json_t *(*state_save)(kvl_notify_rcv_t *r);
    void (*state_load)(kvl_notify_rcv_t *r, const json_t *state);
    /* Stops and closes the type's handles; each closed handle calls kvl_notify_closed. */
    void (*close)(kvl_notify_rcv_t *r);
} kvl_notify_ops_t;

extern const kvl_notify_ops_t kvl_notify_am_ops, kvl_notify_webhook_ops, kvl_notify_smtp_ops,
    kvl_notify_exec_ops, kvl_notify_syslog_ops, kvl_notify_snmp_ops;

typedef struct kvl_notify_entry kvl_notify_entry_t;
typedef struct kvl_notify_seg kvl_notify_seg_t;

struct kvl_notify_rcv {
    kvl_notify_t *n;
    const kvl_notify_receiver_cfg_t *cfg;
    const kvl_notify_ops_t *ops;
    void *priv; /* the type's state */
    uv_loop_t *loop;
    struct {
        uint64_t queued, delivered, failed_attempts, dropped;
    } st; /* this receiver's share of the notifier's counters (notify.h) */

    /* The outbox: <state_dir>/<name>/ */
    int dir_fd;
    kvl_notify_seg_t *segs; /* segments on disk, oldest first */
    size_t n_segs, cap_segs;
    int active_fd; /* the last segment, open for appending */
    uint64_t active_end;
    uint64_t next_seq;
    uint64_t cursor;                 /* every seq <= cursor is confirmed or dropped */
    kvl_notify_entry_t *head, *tail; /* waiting, oldest first */
    uint64_t waiting, waiting_bytes;
    uint64_t seg_bytes;

    /* Delivery */
    bool busy;           /* a delivery is under way */
    uint64_t busy_seq;   /* of the entry being delivered */
    unsigned attempts;   /* failed attempts of the head in a row */
    uv_timer_t retry;    /* backoff, and the kick after enqueue */
    uint64_t drop_burst; /* dropped since the last delivery (logged once per burst) */
    bool closing;
    kvl_notify_msg_t msg; /* the notification being delivered */
};

/* Starts the next delivery soon when the receiver is idle and not waiting to retry. A type
 * that holds r->busy for a delivery of its own (Alertmanager's resend) calls it after. */
void kvl_notify_kick(kvl_notify_rcv_t *r);

/* Counts of kvl_notify_t a type may bump. */
void kvl_notify_count_failed(kvl_notify_rcv_t *r);

/* The end of a delivery started by send() returning 0. */
void kvl_notify_rcv_done(kvl_notify_rcv_t *r, bool ok, const char *why);

/* Results of a transfer: delivered, failed (retried later), or refused for good by the
 * receiver (an HTTP 4xx but 408 and 429: the same request would be refused again). */
enum { KVL_NOTIFY_REFUSED = -1, KVL_NOTIFY_FAILED = 0, KVL_NOTIFY_DELIVERED = 1 };

/* kvl_notify_rcv_done by result; a refused notification is dropped from the queue (counted
 * as dropped, logged as an error with why), so one the receiver can never take does not
 * hold back those behind it. */
void kvl_notify_rcv_result(kvl_notify_rcv_t *r, int result, const char *why);

/* Called once per handle a type closed (the close callbacks), so kvl_notify_free knows
 * when everything is closed. Types count each uv_close they make with kvl_notify_closing. */
void kvl_notify_closing(kvl_notify_rcv_t *r);
void kvl_notify_closed(kvl_notify_rcv_t *r);

/* Starts a curl transfer for r on the shared multi handle: e (owned from here: cleaned up
 * after the transfer, with hdrs and body) with the receiver's timeout and CA set; done is
 * called once with a KVL_NOTIFY_* result (why: curl's error, or the HTTP status and the
 * start of the answer's body), or never when this returns non-zero (then e, hdrs and body
 * are freed already). */
typedef void (*kvl_notify_xfer_cb)(kvl_notify_rcv_t *r, int result, const char *why);
int kvl_notify_xfer(kvl_notify_rcv_t *r, CURL *e, struct curl_slist *hdrs, char *body,
                    kvl_notify_xfer_cb done, char *why, size_t whylen);

/* The alert fields types print: a label's value or "" */
const char *kvl_notify_label(const kvl_alert_t *a, const char *key);

/* Parses a notification record into m (kvl_notify_msg_clear frees it). 0 or KVL_EINVAL. */
int kvl_notify_msg_parse(const char *text, size_t len, kvl_notify_msg_t *m, char *why,
                         size_t whylen);
void kvl_notify_msg_clear(kvl_notify_msg_t *m);

/* Appends t with its placeholders filled from m to out. 0, or KVL_EINVAL for a template
 * kvl_notify_template_check would refuse. */
int kvl_notify_template_render(const char *t, const char *receiver, const kvl_notify_msg_t *m,
                               kvl_buf_t *out);

/* The e-mail subject of m (notify_smtp.c): at most 78 bytes, no control characters. */
size_t kvl_notify_smtp_subject(const kvl_notify_msg_t *m, char *out, size_t outlen);

#endif
