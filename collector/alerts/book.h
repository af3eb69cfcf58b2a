/*
 * book.h — the alert book: the lifecycle of every alert after the rule engine (pending,
 * firing, resolved), what was sent for it and to whom, acknowledgements, silences,
 * maintenance windows, escalation and the history, kept in the collector's data folder
 * (<data_dir>/_alerts/) and restored at start; and the routing of notifications to the
 * notifier's outbox (notify.h).
 *
 * Routing (alerts_config.h): an alert goes to the receivers of the routes whose globs
 * match its labels (first match wins unless `continue`), else to the default receiver.
 * Per route, alerts with the same values of the group_by labels form a group: a new group
 * gathers for group_wait, then one notification carries all its alerts; later changes of
 * the group (a new firing alert, a resolution) go out at most every group_interval; a
 * group without alerts is forgotten, so a repeated failure pages as fast as the first.
 * A notification says what changed: firing alerts not yet sent to that receiver and
 * resolutions of alerts that were; still-firing alerts are sent again (repeat) after
 * repeat_interval unless acknowledged. Nothing is sent for a pending alert, a late change
 * (alert.h), a silenced alert or one in a maintenance window (recorded in the history):
 * a firing alert is sent once none of these holds any more, and a resolution goes only
 * to receivers that were told it fires (whatever mutes it now). A firing alert of a
 * severity with an escalation that is not acknowledged `after` its first page goes to
 * the escalation's receiver, once (and its resolution too).
 *
 * Persistence: book.log, an append-only log of changes (alert states, what was sent,
 * acknowledgements, silences, maintenance windows), one line each with a CRC-32C. A
 * firing is recorded and fdatasync'd before the notification is handed to the notifier
 * (whose outbox is on disk when kvl_notify_enqueue returns), a resolution once it has
 * been handed over: so a restart, even after SIGKILL, never pages twice (a kill between
 * the sync and the hand-over loses that one page), and an alert that paged keeps the
 * receivers it paged until its resolution went to them (a kill right after the
 * hand-over sends that resolution a second time, never zero times). book.snap is the
 * compacted state (written to a temporary file, fsync'd, renamed), taken at start and
 * when the log grows; both carry a generation so a log older than the snapshot is never
 * replayed. A damaged line is skipped with a warning, the rest kept; a torn last line is
 * dropped. history.log (and history.1.log, its previous half) is the bounded history.
 * The heads ({"t":"head","gen":N,"format":V}) carry the format version
 * (KVL_BOOK_FORMAT_VERSION); a head without "format" (written before versions were kept) is
 * version 1, rewritten with it by the compaction at start; a newer version makes
 * kvl_book_new fail with a sentence saying what to do, the files untouched.
 * These writes are small and happen on the loop (as the notifier's own outbox writes).
 *
 * Threads: everything on the loop's thread. Times: `now` is the book's clock (wall clock
 * in ms; tests give their own); timers are one uv_timer armed at the next due moment,
 * unreferenced (the book alone never keeps the loop running). A muted alert is looked at
 * again when a silence or maintenance window (weekly ones included) next starts or ends,
 * or when one is added or removed: no periodic recheck.
 */
#ifndef KVL_BOOK_H
#define KVL_BOOK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The format version of book.snap and book.log this collector writes and reads. */
#define KVL_BOOK_FORMAT_VERSION 1u
#include <stdint.h>
#include <uv.h>

#include "alert.h"
#include "alerts_config.h"
#include "notify.h"
#include "silence.h"

typedef struct kvl_book kvl_book_t;
typedef struct kvl_http kvl_http_t;

typedef int64_t (*kvl_book_clock_fn)(void *ctx);

typedef struct kvl_book_opts {
    uv_loop_t *loop;
    const kvl_alerts_cfg_t *cfg; /* NULL: the defaults; kept by reference: outlives the book */
    kvl_notify_t *notify;        /* where notifications go; kept by reference */
    const char *dir;             /* the book's folder, <data_dir>/_alerts (made if missing) */
    kvl_book_clock_fn now_ms;    /* NULL: the wall clock (kvl_now_ms) */
    void *clock_ctx;
} kvl_book_opts_t;

/* Opens the book: loads its files (damage is logged and skipped), checks that every
 * receiver the configuration names exists (kvl_notify_has_receiver), compacts. Returns
 * 0, or a negative KVL_E* with a sentence in err. */
int kvl_book_new(const kvl_book_opts_t *o, kvl_book_t **out, char *err, size_t errlen);

/* Whether an alert is held back by what the book does not know itself: the topology says
 * its subject is cut off behind a root cause (collector/topology/rootcause.h). True with a
 * sentence in why. Asked whenever the book would send the alert's firing or repeat; a
 * suppressed alert is muted as a silenced one is (recorded, shown by the API with its
 * reason, sent once no longer suppressed). The suppressor calls kvl_book_tick when what it
 * says may have changed. */
typedef bool (*kvl_book_suppress_fn)(void *ctx, const kvl_alert_t *a, char *why, size_t whylen);
void kvl_book_set_suppressor(kvl_book_t *b, kvl_book_suppress_fn fn, void *ctx);

/* A reload: routing from cfg (NULL: the defaults) and delivery through notify from now on
 * (both kept by reference; the previous ones are no longer used once this returns 0).
 * Alerts already held keep the receivers they were routed to (new changes of them too);
 * targets naming a receiver notify does not know are dropped (logged; the book is compacted
 * so that a restart does not bring them back), and an active alert left without any follows
 * the new routing. Returns 0, or
 * KVL_ECONFIG (a receiver cfg names that notify does not know: nothing changed) /
 * KVL_ENOMEM with a sentence in err. */
int kvl_book_reconfigure(kvl_book_t *b, const kvl_alerts_cfg_t *cfg, kvl_notify_t *notify,
                         char *err, size_t errlen);

/* A change of an alert from the engine (on the loop). */
void kvl_book_update(kvl_book_t *b, const kvl_alert_t *a);
/* The same as a kvl_alert_cb (ctx is the book). */
void kvl_book_alert_cb(void *ctx, const kvl_alert_t *a);

/* Calls cb for every active (pending or firing) alert, e.g. for the engine to restore
 * them at start; `a` is valid for the call only. */
typedef void (*kvl_book_each_fn)(void *ctx, const kvl_alert_t *a);
void kvl_book_each_active(const kvl_book_t *b, kvl_book_each_fn cb, void *ctx);

/* Runs what is due at the book's `now` (group flushes, repeats, escalations, alerts no
 * longer muted) and re-arms the timer. The timer calls it; tests with a fake clock too. */
void kvl_book_tick(kvl_book_t *b);

/* The moment the last kvl_book_tick found next due (a group flush, a repeat, an escalation,
 * a silence or window starting or ending while an alert it mutes waits), INT64_MAX when
 * nothing is: the timer is then stopped and an idle book does no work. */
int64_t kvl_book_next_due(const kvl_book_t *b);

/* Acknowledges an active alert. Returns 0, KVL_EINVAL (no such active alert) or KVL_EIO. */
int kvl_book_ack(kvl_book_t *b, uint64_t fingerprint, const char *by, const char *comment);

/* Adds a silence / maintenance window (the book takes s / m, also on failure); removes
 * one by id (KVL_EINVAL when there is none). Returns 0 or KVL_EIO / KVL_EINVAL / KVL_ENOMEM. */
int kvl_book_silence_add(kvl_book_t *b, kvl_silence_t *s);
int kvl_book_silence_del(kvl_book_t *b, const char *id);
int kvl_book_maint_add(kvl_book_t *b, kvl_maint_t *m);
int kvl_book_maint_del(kvl_book_t *b, const char *id);

/* The book's `now`. */
int64_t kvl_book_now(const kvl_book_t *b);

typedef struct kvl_book_stats {
    uint64_t active;        /* pending or firing */
    uint64_t unsettled;     /* resolved, the resolution not yet sent */
    uint64_t notifications; /* handed to the notifier since start */
    uint64_t enqueue_failed;
    uint64_t damaged_lines; /* skipped when loading */
    uint64_t silences, maintenance, history;
} kvl_book_stats_t;
void kvl_book_stats(const kvl_book_t *b, kvl_book_stats_t *out);

/* Writes what is not yet on disk, closes the timer and frees b once it is closed (the
 * loop must run afterwards). NULL is fine. */
void kvl_book_free(kvl_book_t *b);

/* --- the HTTP API (book_api.c) ------------------------------------------------------------- */

/* Registers the book's routes on the server (before kvl_http_start):
 *   GET    /api/v1/alerts                  viewer    ?status=&severity=&site=&device=&rule=
 *                                                    &state=active|history&limit=
 *   GET    /api/v1/alerts/history          viewer    ?site=&device=&since=&limit=
 *   POST   /api/v1/alerts/<fp>/ack         operator  {"comment": "..."}
 *   GET    /api/v1/silences                viewer
 *   POST   /api/v1/silences                operator  silence.h's form
 *   DELETE /api/v1/silences/<id>           operator
 *   GET/POST /api/v1/maintenance, DELETE /api/v1/maintenance/<id>  likewise
 * Returns 0 or KVL_EINVAL. */
int kvl_book_api_register(kvl_book_t *b, kvl_http_t *http);

/* The filters of GET /api/v1/alerts and of the history, checked (book_query.c: pure, no
 * server). `get` returns a query parameter's value or NULL. */
typedef const char *(*kvl_book_param_fn)(const void *ctx, const char *key);

typedef struct kvl_book_filter {
    int status;                       /* kvl_alert_status_t, 0: any */
    int severity;                     /* kvl_rule_severity_t, -1: any */
    const char *site, *device, *rule; /* exact, NULL: any */
    bool history;                     /* state=history: the history instead of active ones */
    int64_t since_ms;                 /* history: changes at or after (0: all) */
    size_t limit;                     /* 1-10000 (1000) */
} kvl_book_filter_t;

/* Returns 0, or KVL_EINVAL with a sentence in why. The strings point into get's values. */
int kvl_book_filter_parse(kvl_book_param_fn get, const void *ctx, kvl_book_filter_t *f, char *why,
                          size_t whylen);

/* A fingerprint's 16 hex digits into its value: 0 or KVL_EINVAL. */
int kvl_book_fp_parse(const char *s, uint64_t *fp);

#endif
