/*
 * log.c — leveled logging to stderr (see log.h). Also holds kvl_strerror.
 */
#include "log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "timeutil.h"

int kvl_log_level = KVL_LOG_LEVEL_INFO;

static const char *const level_names[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

int kvl_log_level_parse(const char *name)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void log_v(int level, const char *module, const char *target, const char *suffix,
                  const char *fmt, va_list ap) KVL_PRINTF(5, 0);

static void log_v(int level, const char *module, const char *target, const char *suffix,
                  const char *fmt, va_list ap)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    if (level < 0) {
        level = 0;
    }
    if (level > KVL_LOG_LEVEL_DEBUG) {
        level = KVL_LOG_LEVEL_DEBUG;
    }
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s [%s%s%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), level_names[level], module, target ? " " : "",
                     target ? target : "");
    if (n < 0) {
        return;
    }
    size_t used = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    n = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
    if (n > 0) {
        used += (size_t)n;
    }
    if (suffix != NULL && used < sizeof(line) - 1) {
        n = snprintf(line + used, sizeof(line) - used, "%s", suffix);
        if (n > 0) {
            used += (size_t)n;
        }
    }
    if (used > sizeof(line) - 2) {
        used = sizeof(line) - 2;
    }
    line[used++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, used);
    (void)w;
}

void kvl_log_write(int level, const char *module, const char *target, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_v(level, module, target, NULL, fmt, ap);
    va_end(ap);
}

bool kvl_log_limit_pass(kvl_log_limit_t *l, uint64_t now_ms, uint64_t *left_out)
{
    if (l->last_ms != 0 && now_ms - l->last_ms < l->interval_ms) {
        if (l->in_burst < l->burst) {
            l->in_burst++; /* none left out yet in this interval */
            *left_out = 0;
            return true;
        }
        l->left_out++;
        return false;
    }
    *left_out = l->left_out;
    l->left_out = 0;
    l->last_ms = now_ms != 0 ? now_ms : 1;
    l->in_burst = 1;
    return true;
}

void kvl_log_limited(int level, kvl_log_limit_t *l, const char *module, const char *target,
                     const char *fmt, ...)
{
    uint64_t left = 0;
    if (!kvl_log_limit_pass(l, (uint64_t)kvl_now_ms(), &left)) {
        return;
    }
    char suffix[96] = "";
    if (left > 0) {
        snprintf(suffix, sizeof(suffix), " (%" PRIu64 " similar lines left out since the last one)",
                 left);
    }
    va_list ap;
    va_start(ap, fmt);
    log_v(level, module, target, suffix[0] ? suffix : NULL, fmt, ap);
    va_end(ap);
}

const char *kvl_strerror(int code)
{
    switch (code) {
    case KVL_OK:
        return "success";
    case KVL_ENOMEM:
        return "out of memory";
    case KVL_EINVAL:
        return "invalid argument";
    case KVL_EFRAME_TOO_BIG:
        return "frame larger than the maximum frame size";
    case KVL_EFRAME_EMPTY:
        return "frame of length zero";
    case KVL_EFRAME_TRUNCATED:
        return "stream ended inside a frame";
    case KVL_EDECODE:
        return "malformed message";
    case KVL_EPROTO:
        return "protocol violation";
    case KVL_ECONFIG:
        return "configuration error";
    case KVL_EIO:
        return "I/O error";
    case KVL_ETLS:
        return "TLS failure";
    case KVL_ECLOSED:
        return "peer ended the TLS session";
    default:
        if (code < 0 && code > -4096) {
            return uv_strerror(code);
        }
        return "unknown error";
    }
}
