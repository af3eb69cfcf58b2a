/*
 * prober.h — link measurement: each configured target probed `count` times per interval,
 * spread evenly, with one set of statistics (probe_stats.h) per target and interval.
 *
 * Each target is a family instance (family "link", scope KVL_SCOPE_LINK, device = the
 * agent's id, instance = the target's name) reporting, as gauges, at the end of each
 * interval: sent received lost_pct loss_burst duplicates reordered rtt_min_ms rtt_median_ms
 * rtt_mean_ms rtt_max_ms rtt_stddev_ms jitter_ms mos rtt_p10_ms rtt_p25_ms rtt_p75_ms
 * rtt_p90_ms (the RTT quantiles, probe_stats.h; figures a target cannot have, such as
 * RTTs when nothing came back, are unknown). The collector files them under
 * <site>/_links/<agent id>/<target>.rrd.
 *
 * Timing: probe i of an interval starting at S is sent at S + i x interval / count (loop
 * time, ms); the interval is closed at S + interval, when the next one starts. A reply that
 * arrives after its interval was closed is not counted (its probe stays lost). A probe the
 * kernel refuses to send (no route, the agent's own link down) counts as sent and lost, and
 * is logged once until sending works again. Each
 * target's first interval starts at a phase from its name's hash within interval / count,
 * so many targets spread over the gap between probes. That first interval is only its
 * second half (the first count / 2 probes are not sent: neither sent nor lost), so its
 * figures come half an interval after the start and an agent restart leaves no gap in the
 * link archives unless it took over half an interval; --probe-once takes whole intervals.
 *
 * Reachability (reach.h): a lost probe of a target that is not down is confirmed at once by
 * `confirm_count` probes `confirm_spacing` apart, each with a timeout from the target's
 * recent round-trip times; all lost: event `target_down` (critical; device = the agent's
 * id; fields target, type, address or url, reason "no reply to N probes"), sent at once;
 * the first answer afterwards: `target_up` (info; field down_s, the time since the first
 * lost probe). The confirming probes are not in the interval's statistics.
 */
#ifndef KVL_PROBER_H
#define KVL_PROBER_H

#include <stdio.h>
#include <uv.h>

#include "batcher.h"
#include "probe_config.h"

typedef struct kvl_prober kvl_prober_t;

/* Starts probing cfg's targets (none: an idle prober) for agent agent_id (the device name
 * of every link series). b may be NULL in once mode. Returns 0 and sets *out, or a negative
 * code with the reason in err (out of memory, a target's socket that cannot be opened);
 * then the caller runs the loop once so closing timers complete. cfg and agent_id must
 * outlive the prober. */
int kvl_prober_new(uv_loop_t *loop, const kvl_probe_cfg_t *cfg, const char *agent_id,
                   kvl_batcher_t *b, kvl_prober_t **out, char *err, size_t errlen);
/* A reload whose `probes:` changed: a new prober for cfg replaces *pp, which is freed (its
 * targets' figures of the running interval are not reported; the new prober's first
 * interval is half of one, as at a start, so the link archives see no gap). The STAMP
 * reflector, when it stays on the same port, is handed over with its sockets open: it
 * answers all along. The targets' kept down state is the caller's to load again
 * (kvl_prober_keep_state, after this: the old prober wrote its state when freed). Returns
 * 0, or a negative code with the reason in err, and then *pp runs on unchanged. */
int kvl_prober_reload(kvl_prober_t **pp, const kvl_probe_cfg_t *cfg, char *err, size_t errlen);
/* Stops; timers and sockets finish closing on the next loop run. NULL-safe. */
void kvl_prober_free(kvl_prober_t *p);

/* Keeps the targets' down state in the file at path (downstate.h; the agent's spool
 * folder): loaded now (targets no longer configured forgotten; a target stored down starts
 * down, raising no second target_down, its down time counted from the stored start), written
 * on every change. Call right after kvl_prober_new. Returns 0, or a negative code with a
 * sentence in err (out of memory). */
int kvl_prober_keep_state(kvl_prober_t *p, const char *path, char *err, size_t errlen);

/* --probe-once: instead of reporting to the batcher, print every target's figures to f
 * for `intervals` intervals (each reply too when verbose), then call done(arg) once. Call
 * right after kvl_prober_new. */
void kvl_prober_set_once(kvl_prober_t *p, unsigned intervals, bool verbose, FILE *f,
                         void (*done)(void *arg), void *arg);

/* The families targets report, by type: icmp "link", stamp "stamp", tcp "tcp", http and
 * https "http" (metrics listed in README "Link measurement"). */
extern const kvl_family_t kvl_link_family;
extern const kvl_family_t kvl_stamp_family;
extern const kvl_family_t kvl_tcp_family;
extern const kvl_family_t kvl_http_family;
const kvl_family_t *kvl_probe_family(int type);

#endif
