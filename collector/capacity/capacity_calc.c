/*
 * capacity_calc.c — the capacity report's figures (capacity_calc.h): percentiles by the
 * rank rule, means and peaks, least squares, days to a limit, daily means, availability.
 */
#include "capacity_calc.h"

#include <math.h>
#include <stdlib.h>

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    bool nx = isnan(x), ny = isnan(y);
    if (nx || ny) {
        return nx - ny; /* unknowns last */
    }
    return (x > y) - (x < y);
}

double kvl_cap_percentile(double *v, size_t n, double p)
{
    if (n == 0 || !(p > 0.0 && p <= 100.0)) {
        return NAN;
    }
    qsort(v, n, sizeof(*v), cmp_double);
    size_t known = n;
    while (known > 0 && isnan(v[known - 1])) {
        known--;
    }
    if (known == 0) {
        return NAN;
    }
    /* ceil(p/100 * known) without the rounding of p/100 pushing an exact product up */
    double r = p * (double)known / 100.0;
    size_t rank = (size_t)ceil(r - 1e-9 * r);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > known) {
        rank = known;
    }
    return v[rank - 1];
}

void kvl_cap_stats(const double *v, size_t n, size_t stride, kvl_cap_stats_t *out)
{
    double sum = 0.0, peak = -INFINITY;
    out->known = out->unknown = 0;
    for (size_t i = 0; i < n; i++) {
        double x = v[i * stride];
        if (isnan(x)) {
            out->unknown++;
            continue;
        }
        out->known++;
        sum += x;
        if (x > peak) {
            peak = x;
        }
    }
    out->avg = out->known ? sum / (double)out->known : NAN;
    out->peak = out->known ? peak : NAN;
}

int kvl_cap_fit(const double *x, const double *y, size_t n, kvl_cap_fit_t *out)
{
    double sx = 0.0, sy = 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isnan(y[i]) && !isnan(x[i])) {
            sx += x[i];
            sy += y[i];
            k++;
        }
    }
    out->n = k;
    out->slope = out->intercept = NAN;
    if (k < 2) {
        return -1;
    }
    double mx = sx / (double)k, my = sy / (double)k, sxx = 0.0, sxy = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isnan(y[i]) && !isnan(x[i])) {
            sxx += (x[i] - mx) * (x[i] - mx);
            sxy += (x[i] - mx) * (y[i] - my);
        }
    }
    if (!(sxx > 0.0)) {
        return -1;
    }
    out->slope = sxy / sxx;
    out->intercept = my - out->slope * mx;
    return 0;
}

double kvl_cap_days_to(double value, double slope, double limit)
{
    if (!isfinite(value) || !isfinite(limit) || !isfinite(slope)) {
        return -1.0;
    }
    if (value >= limit) {
        return 0.0;
    }
    if (!(slope > 0.0)) {
        return -1.0;
    }
    return (limit - value) / slope;
}

static long long floor_div(long long a, long long b)
{
    long long q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

size_t kvl_cap_daily(long long t0, long long step, const double *v, size_t n, size_t stride,
                     double *day, double *mean, size_t max)
{
    size_t out = 0, cnt = 0;
    long long cur = 0;
    double sum = 0.0;
    bool open = false;
    for (size_t i = 0; i <= n; i++) {
        long long d = 0;
        if (i < n) {
            d = floor_div(t0 + (long long)i * step - step, 86400);
        }
        if (open && (i == n || d != cur)) {
            if (cnt > 0 && out < max) {
                day[out] = (double)cur;
                mean[out] = sum / (double)cnt;
                out++;
            }
            open = false;
        }
        if (i == n) {
            break;
        }
        if (!open) {
            cur = d;
            sum = 0.0;
            cnt = 0;
            open = true;
        }
        double x = v[i * stride];
        if (!isnan(x)) {
            sum += x;
            cnt++;
        }
    }
    return out;
}

void kvl_cap_avail_add(kvl_cap_avail_t *a, const double *v, size_t n, size_t stride, double step,
                       double down_at)
{
    for (size_t i = 0; i < n; i++) {
        double x = v[i * stride];
        if (isnan(x)) {
            a->unknown_s += step;
        } else if (down_at >= 0.0) {
            if (x >= down_at) {
                a->down_s += step;
            } else {
                a->up_s += step;
            }
        } else {
            double up = x < 0.0 ? 0.0 : x > 1.0 ? 1.0 : x;
            a->up_s += up * step;
            a->down_s += (1.0 - up) * step;
        }
    }
}

double kvl_cap_avail_pct(const kvl_cap_avail_t *a)
{
    double known = a->up_s + a->down_s;
    return known > 0.0 ? 100.0 * a->up_s / known : NAN;
}
