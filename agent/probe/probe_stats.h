/*
 * probe_stats.h — statistics of one target's probes over one interval (pure functions).
 *
 * An interval holds `count` probes, numbered 0..count-1 in the order they are sent. The
 * prober tells the accumulator what was sent (kvl_pstats_sent) and every reply as it
 * arrives (kvl_pstats_reply, in arrival order, with the round-trip time from kernel
 * timestamps); at the interval's end kvl_pstats_finish computes the figures. A reply that
 * arrives after the interval ended is not passed in: it counts as lost for its interval
 * (the last probe of an interval has interval/count to come back).
 *
 * Definitions (what the tests check):
 *   sent        probes sent (the prober also counts probes the kernel refused to send, so
 *               an agent whose own link is down shows 100 % loss; see prober.h)
 *   received    distinct probes answered at least once
 *   lost_pct    100 x (sent - received) / sent; unknown (NaN) when nothing was sent
 *   loss_burst  the longest run of consecutive sent probes (by number) left unanswered
 *   duplicates  replies beyond the first for a probe
 *   reordered   first replies for a probe numbered lower than a probe already answered
 *               in this interval (RFC 4737's "reordered" singleton, counted once)
 *   rtt_*       over the first reply of each answered probe: min, median (the mean of
 *               the two middle values for an even number), mean, max, standard deviation
 *               (population, divided by n), and the quantiles p10, p25, p75, p90 (the
 *               spread a latency graph draws as smoke); unknown when nothing came back
 *   quantiles   one rule for the median and p10..p90 (kvl_pstats_quantile): linear
 *               interpolation between the order statistics (Hyndman & Fan's type 7, the
 *               default of R and numpy): of the n sorted values x[0..n-1], quantile q is at
 *               position h = (n - 1) q, and is x[floor h] + (h - floor h) (x[floor h + 1] -
 *               x[floor h]). q = 0.5 gives the middle value, or the mean of the two middle
 *               ones; one value is every quantile; duplicates count as often as they occur.
 *   jitter      RFC 3550 section 6.4.1 interarrival jitter on round-trip times: for each
 *               first reply, in arrival order, D = rtt(this) - rtt(previous reply) and
 *               J += (|D| - J) / 16. The estimator runs on across intervals of a target
 *               (kvl_pstats_state_t), as RFC 3550's does over a stream; the figure is its
 *               value at the interval's end (0 before two replies ever came back).
 *   mos         a voice quality estimate from a simplified ITU-T G.107 E-model
 *               (Cole & Rosenbluth, "Voice over IP performance monitoring", 2001):
 *                 d    = rtt_mean / 2 + 2 x jitter + 10 ms    (one-way mouth-to-ear delay:
 *                        half the RTT, a de-jitter buffer of twice the jitter, G.711's
 *                        10 ms packetisation)
 *                 Id   = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)   (H: 1 if > 0, else 0)
 *                 Ie   = 0 + (95 - 0) x Ppl / (Ppl + 25.1)   (G.107 Ie-eff for G.711 with
 *                        packet loss concealment: Ie 0, Bpl 25.1 from G.113 Appendix I,
 *                        BurstR 1, i.e. random loss; Ppl = lost_pct)
 *                 R    = 93.2 - Id - Ie                 (default R0 - Is; A = 0)
 *                 MOS  = 1 for R < 0, 4.5 for R > 100, else
 *                        1 + 0.035 R + 7e-6 R (R - 60) (100 - R)
 *               unknown when nothing came back.
 *   extra k     (k = 0, 1) two more figures a probe type may attach to a probe's first
 *               reply (STAMP: forward and backward one-way delay; HTTP: time to first
 *               byte): min, median, max over the probes that have one; unknown when none
 *               has. kvl_pstats_extra is called after the reply it belongs to.
 */
#ifndef KVL_PROBE_STATS_H
#define KVL_PROBE_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KVL_PSTATS_MAX_COUNT 100000 /* probes per interval */

/* What carries over from one interval of a target to the next. */
typedef struct kvl_pstats_state {
    double jitter_ns;
    int64_t last_rtt_ns; /* -1: no reply yet */
} kvl_pstats_state_t;

/* One interval being measured. */
typedef struct kvl_pstats {
    uint32_t count;
    int64_t *rtt_ns; /* per probe: first reply's RTT, -1 none */
    uint8_t *flags;  /* per probe: sent, answered */
    uint32_t sent;
    uint32_t received;
    uint32_t duplicates;
    uint32_t reordered;
    int64_t highest;      /* highest probe number answered, -1 none */
    int64_t *extra_ns[2]; /* per probe, allocated on first use; INT64_MIN none */
} kvl_pstats_t;

typedef struct kvl_pstats_result {
    uint32_t sent, received, loss_burst, duplicates, reordered;
    double lost_pct;                                             /* NaN when sent == 0 */
    double rtt_min_ms, rtt_median_ms, rtt_mean_ms;               /* NaN when received == 0 */
    double rtt_max_ms, rtt_stddev_ms, jitter_ms, mos;            /* likewise (jitter: see above) */
    double extra_min_ms[2], extra_median_ms[2], extra_max_ms[2]; /* NaN when none */
    double rtt_p10_ms, rtt_p25_ms, rtt_p75_ms, rtt_p90_ms;       /* NaN when received == 0 */
} kvl_pstats_result_t;

void kvl_pstats_state_init(kvl_pstats_state_t *st);

/* Prepares for an interval of count probes (1..KVL_PSTATS_MAX_COUNT), reusing p's memory.
 * Returns 0, KVL_EINVAL or KVL_ENOMEM. */
int kvl_pstats_reset(kvl_pstats_t *p, uint32_t count);
/* Frees what p holds (not p). NULL-safe. */
void kvl_pstats_free(kvl_pstats_t *p);

/* Probe i was sent. Out-of-range numbers are ignored. */
void kvl_pstats_sent(kvl_pstats_t *p, uint32_t i);
/* A reply to probe i arrived (in arrival order) rtt_ns after it was sent. Returns 0 for
 * a first reply, 1 for a duplicate, 2 when it was reordered, -1 when i is out of range or
 * was never sent. Updates the jitter estimator in st. */
int kvl_pstats_reply(kvl_pstats_t *p, kvl_pstats_state_t *st, uint32_t i, int64_t rtt_ns);
/* Attaches extra figure k (0 or 1) to answered probe i. Returns 0, or -1 when i was not
 * answered, k is out of range or memory ran out (the figure is then left out). */
int kvl_pstats_extra(kvl_pstats_t *p, uint32_t i, int k, int64_t v_ns);
/* The interval's figures. */
void kvl_pstats_finish(const kvl_pstats_t *p, const kvl_pstats_state_t *st,
                       kvl_pstats_result_t *out);

/* Quantile q (0..1) of the n (> 0) values in `sorted` (ascending), by the rule above. */
double kvl_pstats_quantile(const int64_t *sorted, size_t n, double q);

/* The E-model above, given the figures it uses (lost_pct 0..100). */
double kvl_pstats_mos(double rtt_mean_ms, double jitter_ms, double lost_pct);

#endif
