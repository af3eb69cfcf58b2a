/*
 * timeutil.c — clocks and duration parsing (see timeutil.h).
 */
#include "timeutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvl.h"

int64_t kvl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t kvl_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int kvl_duration_parse(const char *s, int64_t *ms)
{
    static const struct {
        const char *suffix;
        int64_t ms;
    } units[] = {
        {"ms", 1},       {"s", 1000},      {"m", 60000},         {"h", 3600000},
        {"d", 86400000}, {"w", 604800000}, {"y", 31536000000LL}, {"", 1000},
    };
    if (s == NULL || *s == '\0' || *s == '-' || *s == '+') {
        return KVL_EINVAL;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s) {
        return KVL_EINVAL;
    }
    for (size_t i = 0; i < KVL_ARRAY_SIZE(units); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (v > (unsigned long long)(INT64_MAX / units[i].ms)) {
                return KVL_EINVAL;
            }
            *ms = (int64_t)v * units[i].ms;
            return 0;
        }
    }
    return KVL_EINVAL;
}
