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

#endif
