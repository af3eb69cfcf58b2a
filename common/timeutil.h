/*
 * timeutil.h — clocks and durations.
 */
#ifndef KVL_TIMEUTIL_H
#define KVL_TIMEUTIL_H

#include <stdint.h>

/* Wall-clock time in milliseconds since the Unix epoch. */
int64_t kvl_now_ms(void);
/* Monotonic time in nanoseconds (for intervals only). */
uint64_t kvl_mono_ns(void);
/* Parses a duration: "250ms", "30s", "5m", "2h", "14d", "2w", "1y" (365 d), or a bare
 * number of seconds. Returns 0 and sets *ms, or KVL_EINVAL. */
int kvl_duration_parse(const char *s, int64_t *ms);

#endif
