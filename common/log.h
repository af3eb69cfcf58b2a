/*
 * log.h — leveled logging to stderr, one line per message, so journald captures it.
 *
 * Lines look like
 *   2026-11-23T11:40:00.123Z WARN  [snmp dhq-tvm-rtr1] device unreachable: timeout
 * The KVL_LOG_* macros skip evaluating their arguments below the current level.
 * Safe to call from any thread: each line is written with one write(2).
 */
#ifndef KVL_LOG_H
#define KVL_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "kvl.h"

typedef enum {
    KVL_LOG_LEVEL_ERROR = 0,
    KVL_LOG_LEVEL_WARN = 1,
    KVL_LOG_LEVEL_INFO = 2,
    KVL_LOG_LEVEL_DEBUG = 3,
} kvl_log_level_t;

extern int kvl_log_level;

/* Parses "error", "warn", "info", "debug". Returns the level or -1. */
int kvl_log_level_parse(const char *name);
void kvl_log_write(int level, const char *module, const char *target, const char *fmt, ...)
    KVL_PRINTF(4, 5);

#define KVL_LOG(level, module, target, ...)                                                        \
    do {                                                                                           \
        if ((level) <= kvl_log_level) {                                                            \
            kvl_log_write((level), (module), (target), __VA_ARGS__);                               \
        }                                                                                          \
    } while (0)
#define KVL_LOG_ERROR(module, target, ...) KVL_LOG(KVL_LOG_LEVEL_ERROR, module, target, __VA_ARGS__)
#define KVL_LOG_WARN(module, target, ...) KVL_LOG(KVL_LOG_LEVEL_WARN, module, target, __VA_ARGS__)
#define KVL_LOG_INFO(module, target, ...) KVL_LOG(KVL_LOG_LEVEL_INFO, module, target, __VA_ARGS__)
#define KVL_LOG_DEBUG(module, target, ...) KVL_LOG(KVL_LOG_LEVEL_DEBUG, module, target, __VA_ARGS__)

/* A line that may repeat (a flood of connections, a peer's bad frames): at most one per
 * interval per limiter (or `burst` lines: a few distinct peers failing at once are each
 * told, a flood is not), the next one saying how many were left out. Not thread-safe: a
 * limiter belongs to one thread. Usage:
 *     static kvl_log_limit_t lim = KVL_LOG_LIMIT_INIT(10000);
 *     KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &lim, "ingest", peer, "refused: %s", why);
 */
typedef struct kvl_log_limit {
    uint64_t interval_ms;
    uint64_t last_ms;  /* when the interval of the last line written began (0: never) */
    uint64_t left_out; /* lines not written since */
    uint32_t burst;    /* lines allowed per interval (0 counts as 1) */
    uint32_t in_burst; /* lines written in the current interval */
} kvl_log_limit_t;

#define KVL_LOG_LIMIT_INIT(ms)                                                                     \
    {                                                                                              \
        .interval_ms = (ms), .last_ms = 0, .left_out = 0, .burst = 1, .in_burst = 0                \
    }
/* Up to n lines per interval, then one per interval. */
#define KVL_LOG_LIMIT_BURST_INIT(ms, n)                                                            \
    {                                                                                              \
        .interval_ms = (ms), .last_ms = 0, .left_out = 0, .burst = (n), .in_burst = 0              \
    }

/* True when a line may be written at now_ms; *left_out then gets the number not written
 * since the last one (and the count restarts). False: counted as left out. */
bool kvl_log_limit_pass(kvl_log_limit_t *l, uint64_t now_ms, uint64_t *left_out);

/* kvl_log_write through a limiter (the clock is read here), adding "(N similar lines left
 * out since the last one)" when some were. */
void kvl_log_limited(int level, kvl_log_limit_t *l, const char *module, const char *target,
                     const char *fmt, ...) KVL_PRINTF(5, 6);

#define KVL_LOG_LIMITED(level, limit, module, target, ...)                                         \
    do {                                                                                           \
        if ((level) <= kvl_log_level) {                                                            \
            kvl_log_limited((level), (limit), (module), (target), __VA_ARGS__);                    \
        }                                                                                          \
    } while (0)

#endif
