/*
 * board_query.h — the board API's query parameters (board.h), checked without the HTTP
 * server so that they can be unit-tested and fuzzed alone: globs selecting series
 * (/api/v1/latest, /api/v1/links), one series and a time range (/api/v1/series). Every
 * failure is KVL_EINVAL with a sentence for the 400 in why.
 */
#ifndef KVL_BOARD_QUERY_H
#define KVL_BOARD_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVL_BOARD_LIMIT_DEFAULT 1000
#define KVL_BOARD_LIMIT_MAX 10000
#define KVL_BOARD_POINTS_MAX 10000
#define KVL_BOARD_GLOB_MAX 256
/* The longest range one request may ask for (seconds): 10 years. */
#define KVL_BOARD_RANGE_MAX (10ll * 366 * 86400)

/* A query parameter's value, or NULL when absent. */
typedef const char *(*kvl_board_param_fn)(const void *ctx, const char *key);

/* Series selected by globs (fnmatch: *, ?, [...]; absent: any). */
typedef struct kvl_board_match {
    const char *agent, *site, *device, *instance, *metric; /* globs, NULL: any */
    int scope;                                             /* a kvl_scope_t, 0: any */
    size_t limit;                                          /* results at most (1000; 1 to 10000) */
} kvl_board_match_t;

int kvl_board_match_parse(kvl_board_param_fn get, const void *ctx, kvl_board_match_t *m, char *why,
                          size_t whylen);
/* Whether s is selected by glob (NULL: always). */
bool kvl_board_glob(const char *glob, const char *s);

/* One series and a range of its archive. */
typedef struct kvl_board_range {
    const char *agent, *device, *instance, *metric; /* exact names; instance NULL: "" */
    int scope;                                      /* 0: whichever scope has the series */
    const char *cf;                                 /* AVERAGE (default), MIN, MAX, LAST */
    int64_t from, to;                               /* unix seconds, from < to */
    uint32_t step;                                  /* seconds; 1 when not given: the finest */
} kvl_board_range_t;

/* from, to: unix seconds, "now", or "now-<duration>" ("now-1h"); default: to now, from
 * one hour before to. step: seconds or a duration ("5m"). now_s: the clock. */
int kvl_board_range_parse(kvl_board_param_fn get, const void *ctx, int64_t now_s,
                          kvl_board_range_t *r, char *why, size_t whylen);

/* "device", "interface", "agent", "group", "link" to a kvl_scope_t; 0 when unknown. */
int kvl_board_scope_parse(const char *s);
const char *kvl_board_scope_name(int scope);

#endif
