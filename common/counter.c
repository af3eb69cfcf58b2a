/*
 * counter.c — counter wrap, reset and plausibility rules (see counter.h).
 */
#include "counter.h"

static kvl_counter_result_t restart(kvl_counter_t *c, uint64_t raw, int64_t t_ms, uint64_t *out)
{
    c->have = true;
    c->raw = raw;
    c->ext = raw;
    c->t_ms = t_ms;
    *out = raw;
    return KVL_COUNTER_UNKNOWN;
}

kvl_counter_result_t kvl_counter_update(kvl_counter_t *c, uint64_t raw, unsigned bits, int64_t t_ms,
                                        double max_rate, bool discontinuity, uint64_t *out)
{
    if (bits == 32) {
        raw &= 0xffffffffu;
    }
    if (!c->have) {
        c->have = true;
        c->raw = raw;
        c->ext = raw;
        c->t_ms = t_ms;
        *out = raw;
        return KVL_COUNTER_KNOWN;
    }
    if (discontinuity) {
        return restart(c, raw, t_ms, out);
    }
    uint64_t delta;
    if (raw >= c->raw) {
        delta = raw - c->raw;
    } else if (bits == 32) {
        delta = (raw + 0x100000000ull) - c->raw;
        if (max_rate <= 0 && delta >= 0x80000000ull) {
            return restart(c, raw, t_ms, out);
        }
    } else {
        return restart(c, raw, t_ms, out);
    }
    double secs = (double)(t_ms - c->t_ms) / 1000.0;
    if (max_rate > 0) {
        if (secs <= 0 || (double)delta > max_rate * secs) {
            return restart(c, raw, t_ms, out);
        }
    }
    c->raw = raw;
    c->ext += delta;
    c->t_ms = t_ms;
    *out = c->ext;
    return KVL_COUNTER_KNOWN;
}
