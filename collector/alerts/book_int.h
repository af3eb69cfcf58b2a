/*
 * book_int.h — the alert book's insides, shared by its files (book_core.c: lifecycle and
 * routing; book_store.c: the files; book_api.c: the HTTP handlers). Not for other rooms.
 */
#ifndef KVL_BOOK_INT_H
#define KVL_BOOK_INT_H

#include "book.h"
#include "log.h"

/* A group of a route: the alerts of that route with the same group_by values. */
typedef struct book_group {
    int route; /* index into cfg->routes; n_routes: the default receiver, or a receiver
                  that paged and no route names any more */
    char *key; /* "route=<i>;receiver=<r>;<label>=<value>;..." */
    char *receiver;
    int64_t wait_ms, interval_ms, repeat_ms;
    int64_t created_ms;
    bool scheduled;  /* a flush is due at flush_at */
    bool repeat_due; /* a member's repeat is due (kvl_book_tick) */
    int64_t flush_at;
    int64_t last_flush; /* 0: never flushed */
    size_t members;
} book_group_t;

/* One receiver of one alert. */
typedef struct book_target {
    char *receiver;
    book_group_t *g; /* NULL: the escalation receiver */
    bool fired;      /* told that it fires (and not yet that it resolved) */
    int64_t last_sent_ms;
} book_target_t;

/* An alert the book holds: pending or firing, or resolved with a resolution still owed. */
typedef struct book_entry {
    kvl_alert_t *a;
    book_target_t *t;
    size_t n_t;
    int64_t paged_ms; /* when its firing was first handed over, 0: never */
    bool escalated;
    bool acked;
    char *ack_by;
    char *ack_comment;
    int64_t ack_ms;
} book_entry_t;

struct kvl_book {
    uv_loop_t *loop;
    uv_timer_t timer;
    bool closing;
    const kvl_alerts_cfg_t *cfg;
    kvl_alerts_cfg_t *own_cfg;
    kvl_notify_t *notify;
    char *dir;
    kvl_book_clock_fn clock;
    void *clock_ctx;

    book_entry_t **e;
    size_t n_e, cap_e;
    book_group_t **g;
    size_t n_g, cap_g;
    kvl_silence_t **s;
    size_t n_s, cap_s;
    kvl_maint_t **m;
    size_t n_m, cap_m;

    /* book_store.c */
    bool replaying; /* loading: records change state, nothing is written */
    int log_fd;
    uint64_t gen;
    uint64_t log_records;
    bool log_unsynced;
    int hist_fd;
    uint64_t hist_in_file;
    json_t **hist; /* ring of the last cfg->history_max records */
    size_t hist_cap, hist_n, hist_head;

    kvl_book_suppress_fn suppress; /* kvl_book_set_suppressor, NULL: none */
    void *suppress_ctx;

    kvl_book_stats_t st;
    int64_t backoff_until; /* after a refused notification: nothing sent before this */
    int64_t next_due;      /* the timer's moment (before backoff), INT64_MAX: none */
    kvl_log_limit_t fail_limit;
    void *api[2]; /* book_api.c's handler contexts (silences, maintenance) */
};

/* book_core.c: applies one record of the log (loading). Returns 0 or KVL_EINVAL (not a
 * record the book writes). */
int book_apply_record(kvl_book_t *b, const json_t *rec);
/* book_core.c: the records that rebuild the whole state (compaction), appended to arr. */
int book_state_records(kvl_book_t *b, json_t *arr);
book_entry_t *book_find(const kvl_book_t *b, uint64_t fp);
bool book_silenced(const kvl_book_t *b, const kvl_alert_t *a, int64_t now);
bool book_in_maint(const kvl_book_t *b, const kvl_alert_t *a, int64_t now);
/* Whether the suppressor holds the alert back, with its sentence in why (may be NULL). */
bool book_suppressed(const kvl_book_t *b, const kvl_alert_t *a, char *why, size_t whylen);

/* book_store.c */
int book_store_open(kvl_book_t *b, char *err, size_t errlen);
/* Appends a record (takes the reference); nothing while replaying. 0 or KVL_EIO. */
int book_log(kvl_book_t *b, json_t *rec);
/* fdatasync of what book_log appended. 0 or KVL_EIO. */
int book_log_sync(kvl_book_t *b);
/* Compacts when the log has grown (or always when force). 0 or KVL_EIO. */
int book_compact(kvl_book_t *b, bool force);
/* Appends a history record (takes the reference); nothing while replaying. */
void book_history(kvl_book_t *b, json_t *rec);
/* The i-th history record, oldest first (borrowed), i < hist_n. */
json_t *book_history_at(const kvl_book_t *b, size_t i);
void book_store_close(kvl_book_t *b);

#endif
