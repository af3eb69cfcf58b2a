/*
 * probe_stats.c — per-interval statistics of a target's probes (see probe_stats.h for the
 * definitions). No I/O, no clocks: the prober feeds it, the unit tests feed it sequences.
 */
#include "probe_stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"

enum { F_SENT = 1, F_ANSWERED = 2 };

void kvl_pstats_state_init(kvl_pstats_state_t *st)
{
    st->jitter_ns = 0;
    st->last_rtt_ns = -1;
}

int kvl_pstats_reset(kvl_pstats_t *p, uint32_t count)
{
    if (count == 0 || count > KVL_PSTATS_MAX_COUNT) {
        return KVL_EINVAL;
    }
    if (p->count != count) {
        for (int k = 0; k < 2; k++) {
            free(p->extra_ns[k]);
            p->extra_ns[k] = NULL;
        }
    }
    if (p->count != count || p->rtt_ns == NULL) {
        int64_t *r = realloc(p->rtt_ns, count * sizeof(*r));
        if (r == NULL) {
            return KVL_ENOMEM;
        }
        p->rtt_ns = r;
        uint8_t *f = realloc(p->flags, count);
        if (f == NULL) {
            return KVL_ENOMEM;
        }
        p->flags = f;
        p->count = count;
    }
    for (uint32_t i = 0; i < count; i++) {
        p->rtt_ns[i] = -1;
    }
    memset(p->flags, 0, count);
    for (int k = 0; k < 2; k++) {
        free(p->extra_ns[k]);
        p->extra_ns[k] = NULL;
    }
    p->sent = p->received = p->duplicates = p->reordered = 0;
    p->highest = -1;
    return 0;
}

void kvl_pstats_free(kvl_pstats_t *p)
{
    if (p == NULL) {
        return;
    }
    free(p->rtt_ns);
    free(p->flags);
    free(p->extra_ns[0]);
    free(p->extra_ns[1]);
    memset(p, 0, sizeof(*p));
}

void kvl_pstats_sent(kvl_pstats_t *p, uint32_t i)
{
    if (i >= p->count || (p->flags[i] & F_SENT)) {
        return;
    }
    p->flags[i] |= F_SENT;
    p->sent++;
}

int kvl_pstats_reply(kvl_pstats_t *p, kvl_pstats_state_t *st, uint32_t i, int64_t rtt_ns)
{
    if (i >= p->count || !(p->flags[i] & F_SENT) || rtt_ns < 0) {
        return -1;
    }
    if (p->flags[i] & F_ANSWERED) {
        p->duplicates++;
        return 1;
    }
    p->flags[i] |= F_ANSWERED;
    p->rtt_ns[i] = rtt_ns;
    p->received++;
    if (st->last_rtt_ns >= 0) {
        double d = fabs((double)(rtt_ns - st->last_rtt_ns));
        st->jitter_ns += (d - st->jitter_ns) / 16.0;
    }
    st->last_rtt_ns = rtt_ns;
    if ((int64_t)i < p->highest) {
        p->reordered++;
        return 2;
    }
    p->highest = i;
    return 0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int kvl_pstats_extra(kvl_pstats_t *p, uint32_t i, int k, int64_t v_ns)
{
    if (k < 0 || k > 1 || i >= p->count || !(p->flags[i] & F_ANSWERED) || v_ns == INT64_MIN) {
        return -1;
    }
    if (p->extra_ns[k] == NULL) {
        p->extra_ns[k] = malloc(p->count * sizeof(int64_t));
        if (p->extra_ns[k] == NULL) {
            return -1;
        }
        for (uint32_t j = 0; j < p->count; j++) {
            p->extra_ns[k][j] = INT64_MIN;
        }
    }
    p->extra_ns[k][i] = v_ns;
    return 0;
}

double kvl_pstats_quantile(const int64_t *sorted, size_t n, double q)
{
    KVL_ASSERT(n > 0 && q >= 0.0 && q <= 1.0);
    double h = (double)(n - 1) * q;
    size_t lo = (size_t)h;
    if (lo >= n - 1) {
        return (double)sorted[n - 1];
    }
    double lv = (double)sorted[lo];
    return lv + (h - (double)lo) * ((double)sorted[lo + 1] - lv);
}

static void extra_figures(const kvl_pstats_t *p, int k, kvl_pstats_result_t *out)
{
    out->extra_min_ms[k] = out->extra_median_ms[k] = out->extra_max_ms[k] = NAN;
    if (p->extra_ns[k] == NULL) {
        return;
    }
    int64_t *v = malloc(p->count * sizeof(*v));
    if (v == NULL) {
        return;
    }
    size_t n = 0;
    for (uint32_t i = 0; i < p->count; i++) {
        if (p->extra_ns[k][i] != INT64_MIN) {
            v[n++] = p->extra_ns[k][i];
        }
    }
    if (n > 0) {
        qsort(v, n, sizeof(*v), cmp_i64);
        out->extra_min_ms[k] = (double)v[0] / 1e6;
        out->extra_max_ms[k] = (double)v[n - 1] / 1e6;
        out->extra_median_ms[k] = kvl_pstats_quantile(v, n, 0.5) / 1e6;
    }
    free(v);
}

double kvl_pstats_mos(double rtt_mean_ms, double jitter_ms, double lost_pct)
{
    double d = rtt_mean_ms / 2.0 + 2.0 * jitter_ms + 10.0;
    double id = 0.024 * d + (d > 177.3 ? 0.11 * (d - 177.3) : 0.0);
    double ppl = lost_pct < 0 ? 0 : lost_pct > 100 ? 100 : lost_pct;
    double ie = 95.0 * ppl / (ppl + 25.1);
    double r = 93.2 - id - ie;
    if (r < 0) {
        return 1.0;
    }
    if (r > 100) {
        return 4.5;
    }
    return 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r);
}

void kvl_pstats_finish(const kvl_pstats_t *p, const kvl_pstats_state_t *st,
                       kvl_pstats_result_t *out)
{
    memset(out, 0, sizeof(*out));
    out->sent = p->sent;
    out->received = p->received;
    out->duplicates = p->duplicates;
    out->reordered = p->reordered;
    out->lost_pct = p->sent ? 100.0 * (double)(p->sent - p->received) / (double)p->sent : NAN;
    uint32_t run = 0;
    for (uint32_t i = 0; i < p->count; i++) {
        if (!(p->flags[i] & F_SENT)) {
            continue;
        }
        if (p->flags[i] & F_ANSWERED) {
            run = 0;
        } else if (++run > out->loss_burst) {
            out->loss_burst = run;
        }
    }
    extra_figures(p, 0, out);
    extra_figures(p, 1, out);
    if (p->received == 0) {
        out->rtt_min_ms = out->rtt_median_ms = out->rtt_mean_ms = NAN;
        out->rtt_max_ms = out->rtt_stddev_ms = out->jitter_ms = out->mos = NAN;
        out->rtt_p10_ms = out->rtt_p25_ms = out->rtt_p75_ms = out->rtt_p90_ms = NAN;
        return;
    }
    int64_t *v = malloc(p->received * sizeof(*v));
    size_t n = 0;
    double sum = 0;
    for (uint32_t i = 0; i < p->count; i++) {
        if (p->rtt_ns[i] >= 0) {
            if (v != NULL) {
                v[n] = p->rtt_ns[i];
            }
            n++;
            sum += (double)p->rtt_ns[i];
        }
    }
    double mean = sum / (double)n;
    double sq = 0;
    int64_t mn = INT64_MAX, mx = INT64_MIN;
    for (uint32_t i = 0; i < p->count; i++) {
        if (p->rtt_ns[i] >= 0) {
            double dv = (double)p->rtt_ns[i] - mean;
            sq += dv * dv;
            mn = p->rtt_ns[i] < mn ? p->rtt_ns[i] : mn;
            mx = p->rtt_ns[i] > mx ? p->rtt_ns[i] : mx;
        }
    }
    double median = NAN, p10 = NAN, p25 = NAN, p75 = NAN, p90 = NAN;
    if (v != NULL) {
        qsort(v, n, sizeof(*v), cmp_i64);
        median = kvl_pstats_quantile(v, n, 0.5);
        p10 = kvl_pstats_quantile(v, n, 0.10);
        p25 = kvl_pstats_quantile(v, n, 0.25);
        p75 = kvl_pstats_quantile(v, n, 0.75);
        p90 = kvl_pstats_quantile(v, n, 0.90);
        free(v);
    }
    out->rtt_min_ms = (double)mn / 1e6;
    out->rtt_max_ms = (double)mx / 1e6;
    out->rtt_mean_ms = mean / 1e6;
    out->rtt_median_ms = median / 1e6;
    out->rtt_p10_ms = p10 / 1e6;
    out->rtt_p25_ms = p25 / 1e6;
    out->rtt_p75_ms = p75 / 1e6;
    out->rtt_p90_ms = p90 / 1e6;
    out->rtt_stddev_ms = sqrt(sq / (double)n) / 1e6;
    out->jitter_ms = st->jitter_ns / 1e6;
    out->mos = kvl_pstats_mos(out->rtt_mean_ms, out->jitter_ms, out->lost_pct);
}
