/*
 * capacity_calc.h — the capacity report's figures (pure; tests/unit/test_capacity.c):
 *
 *   percentile   the burstable-billing rank rule: the n known values sorted ascending, the
 *                value at rank ceil(p/100 * n) (1-based; rank 1 when that is 0). For p = 95
 *                and 8640 five-minute averages (30 days), the 8208th smallest: the highest
 *                5 % (432 intervals, 36 hours) are not counted. Unknown values (NaN) are
 *                left out before ranking.
 *   fit          least squares of y on x over the known points: slope and intercept;
 *                needs two points with different x.
 *   days_to      days until a trend reaches a limit: 0 when its value at the period's end
 *                is already at or above it, else (limit - value) / slope for a rising trend,
 *                and "never" (-1) for a flat or falling one.
 *   avail        time up, down and unknown from rows of a state at one step: a row's value
 *                in [0, 1] is the fraction of its time up (an average of 1/0 samples); NaN
 *                is unknown time, counted apart (never as up).
 */
#ifndef KVL_CAPACITY_CALC_H
#define KVL_CAPACITY_CALC_H

#include <stdbool.h>
#include <stddef.h>

/* Sorts v (n values, NaN allowed: moved to the end) in place and returns the p-th percentile
 * (0 < p <= 100) of its known values by the rank rule above; NaN when none is known. */
double kvl_cap_percentile(double *v, size_t n, double p);

typedef struct kvl_cap_stats {
    size_t known, unknown;
    double avg, peak; /* NaN when nothing is known */
} kvl_cap_stats_t;

/* The mean and maximum of the known values of v (n values, stride apart). */
void kvl_cap_stats(const double *v, size_t n, size_t stride, kvl_cap_stats_t *out);

typedef struct kvl_cap_fit {
    double slope, intercept;
    size_t n; /* known points used */
} kvl_cap_fit_t;

/* Least squares over the points whose y is known. Returns 0, or -1 when there are fewer
 * than two such points or their x are all equal (*out then says n only). */
int kvl_cap_fit(const double *x, const double *y, size_t n, kvl_cap_fit_t *out);

/* Days until `value` rising by `slope` per day reaches `limit`: 0 when value >= limit, -1
 * when slope <= 0 (never) or an argument is not finite, else (limit - value) / slope. */
double kvl_cap_days_to(double value, double slope, double limit);

/* Daily means: rows at times t0 + i*step (i = 0..n-1, the time a row's interval ends; the
 * interval (t - step, t] belongs to the UTC day of its start), values n rows stride apart.
 * Writes at most max days into day (days since the epoch) and mean (of the known values),
 * days without a known value left out. Returns the number of days written. */
size_t kvl_cap_daily(long long t0, long long step, const double *v, size_t n, size_t stride,
                     double *day, double *mean, size_t max);

typedef struct kvl_cap_avail {
    double up_s, down_s, unknown_s;
} kvl_cap_avail_t;

/* Adds rows of a state (up fraction, NaN unknown) of `step` seconds each to *a. `down_at`:
 * when >= 0, a row is instead all down when its value is >= down_at and all up otherwise
 * (a link's lost_pct with down_at 100: an interval whose probes were all lost). */
void kvl_cap_avail_add(kvl_cap_avail_t *a, const double *v, size_t n, size_t stride, double step,
                       double down_at);

/* up / (up + down) in percent, NaN when nothing is known. */
double kvl_cap_avail_pct(const kvl_cap_avail_t *a);

#endif
