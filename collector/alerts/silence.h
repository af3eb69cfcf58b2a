/*
 * silence.h — what mutes alerts: label matchers (Alertmanager's four operators), silences
 * (matchers, start, end, author, comment) and maintenance windows (matchers, one-off from
 * a start to an end, or weekly: days, a time of day in a fixed UTC offset, a duration).
 * Pure: parsing from and writing to JSON (the API's bodies and the book's files use the
 * same form), whether one is active at a time, whether an alert matches. Untrusted input
 * (the API's bodies) is checked here with a sentence for every refusal; fuzzed by
 * tests/fuzz/fuzz_alerts_api.c.
 *
 * JSON forms:
 *   matcher      {"name": "site", "value": "DHQ-.*", "op": "=~"}   op: = != =~ !~ ("=")
 *   silence      {"matchers": [...], "starts_at": RFC 3339 (now), "ends_at": RFC 3339,
 *                 "comment": "...", and as stored/returned "id", "created_by", "created_at"}
 *   maintenance  {"matchers": [...], "comment": "...", and either "starts_at" + "ends_at",
 *                 or "weekly": {"days": ["mon", ...], "at": "HH:MM", "duration": "2h",
 *                 "offset": "+05:30" (the time zone of `at`, "+00:00")}; stored likewise}
 * A regular expression is POSIX extended, anchored at both ends (as Alertmanager's), at
 * most 256 bytes, no back-references. A label an alert lacks matches as "". At least one
 * matcher must not match "" (a silence of everything is refused).
 */
#ifndef KVL_SILENCE_H
#define KVL_SILENCE_H

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "alert.h"

#define KVL_MATCHERS_MAX 32
#define KVL_MATCH_VALUE_MAX 1024
#define KVL_COMMENT_MAX 1024
#define KVL_AUTHOR_MAX 200
#define KVL_SILENCE_ID_LEN 16 /* hex digits */

typedef enum { KVL_MATCH_EQ, KVL_MATCH_NE, KVL_MATCH_RE, KVL_MATCH_NRE } kvl_match_op_t;

typedef struct kvl_matcher {
    char *name;
    char *value;
    int op; /* kvl_match_op_t */
    regex_t re;
    bool has_re;
} kvl_matcher_t;

typedef struct kvl_matchers {
    kvl_matcher_t *v;
    size_t n;
} kvl_matchers_t;

typedef struct kvl_silence {
    char id[KVL_SILENCE_ID_LEN + 1];
    kvl_matchers_t m;
    int64_t starts_ms, ends_ms;
    char *author;
    char *comment;
    int64_t created_ms;
} kvl_silence_t;

typedef struct kvl_maint {
    char id[KVL_SILENCE_ID_LEN + 1];
    kvl_matchers_t m;
    bool weekly;
    int64_t starts_ms, ends_ms; /* one-off */
    unsigned days;              /* weekly: bit 0 Monday .. bit 6 Sunday */
    int minute_of_day;          /* weekly: start, local time */
    int offset_min;             /* weekly: local time = UTC + offset */
    int64_t duration_ms;        /* weekly */
    char *author;
    char *comment;
    int64_t created_ms;
} kvl_maint_t;

/* Whether every matcher matches the alert's labels. */
bool kvl_matchers_match(const kvl_matchers_t *m, const kvl_alert_t *a);

/* A silence from JSON. stored: the book's own file (id, created_by and created_at read
 * from it, nothing about now checked); else an API body: the id is made here, author and
 * now_ms are the request's, ends_at must be after now and after starts_at and within a
 * year. Returns 0, or KVL_EINVAL with a sentence in why, or KVL_ENOMEM. */
int kvl_silence_from_json(const json_t *o, bool stored, const char *author, int64_t now_ms,
                          kvl_silence_t **out, char *why, size_t whylen);
json_t *kvl_silence_to_json(const kvl_silence_t *s);
bool kvl_silence_active(const kvl_silence_t *s, int64_t now_ms);
/* The first moment after now_ms at which the silence starts or ends, INT64_MAX when it is
 * over (what mutes an alert changes only at these moments: the book's timer waits for
 * them). */
int64_t kvl_silence_next_change(const kvl_silence_t *s, int64_t now_ms);
void kvl_silence_free(kvl_silence_t *s);

/* A maintenance window likewise (a one-off window must end after now, within a year; a
 * weekly one lasts 1 minute to 7 days). */
int kvl_maint_from_json(const json_t *o, bool stored, const char *author, int64_t now_ms,
                        kvl_maint_t **out, char *why, size_t whylen);
json_t *kvl_maint_to_json(const kvl_maint_t *m);
bool kvl_maint_active(const kvl_maint_t *m, int64_t now_ms);
/* Whether the window can be active at now_ms or later (a one-off one not over yet). */
bool kvl_maint_current(const kvl_maint_t *m, int64_t now_ms);
/* Likewise for a window: a one-off one's start or end, a weekly one's next start or end
 * of any of its days (INT64_MAX: a one-off window over). */
int64_t kvl_maint_next_change(const kvl_maint_t *m, int64_t now_ms);
void kvl_maint_free(kvl_maint_t *m);

/* A fresh random id: 16 hex digits. */
void kvl_silence_new_id(char out[KVL_SILENCE_ID_LEN + 1]);

#endif
