/*
 * counter.h — turning raw SNMP counters into values an archive can trust.
 *
 * Devices report counters that wrap (32-bit ones every few seconds at 10 Gbit/s), reset
 * when the device reboots, and sometimes jump. The agent keeps one kvl_counter_t per
 * series and passes each reading through kvl_counter_update, which returns either a
 * "continuous" value — the raw count extended past its wraps, so the archive's rate
 * (DERIVE, minimum 0) is right — or "unknown" when the reading cannot be trusted.
 *
 * Rules:
 *  - the first reading is known; it only starts the series;
 *  - a discontinuity reported by the caller (sysUpTime went back, ifCounterDiscontinuity-
 *    Time moved) makes the reading unknown and restarts the series at the raw value;
 *  - a 64-bit counter that goes back is a reset: unknown;
 *  - a 32-bit counter that goes back has wrapped if the wrapped increase is plausible
 *    (at most max_rate per second when a rate bound is known, else less than half the
 *    counter range); otherwise it was reset: unknown;
 *  - an increase faster than max_rate (when known) is unknown and restarts the series.
 */
#ifndef KVL_COUNTER_H
#define KVL_COUNTER_H

#include <stdbool.h>
#include <stdint.h>

typedef struct kvl_counter {
    bool have;    /* a previous reading exists */
    uint64_t raw; /* previous raw reading */
    uint64_t ext; /* previous continuous value */
    int64_t t_ms; /* time of the previous reading */
} kvl_counter_t;

typedef enum {
    KVL_COUNTER_KNOWN = 0,   /* *out holds the continuous value */
    KVL_COUNTER_UNKNOWN = 1, /* the interval ending here is unknown; *out restarts */
} kvl_counter_result_t;

/* bits is 32 or 64. max_rate is the highest believable increase per second, or 0 when no
 * bound is known. */
kvl_counter_result_t kvl_counter_update(kvl_counter_t *c, uint64_t raw, unsigned bits, int64_t t_ms,
                                        double max_rate, bool discontinuity, uint64_t *out);

#endif
