/*
 * stats.h — the agent's own statistics, reported like any other series.
 *
 * Every period (60 s by default) one group goes out through the batcher as scope
 * KVL_SCOPE_AGENT (device = the agent's id), from what each room exposes:
 *   - the poller (kvl_poller_stats): counters snmp_requests, snmp_timeouts, snmp_varbinds,
 *     snmp_errors, gauges devices, devices_down, inflight, and real gauges cycle_ms and
 *     lag_ms (the longest poll and the largest delay of a poll's start after its scheduled
 *     time in the period; unknown when no poll ended in it);
 *   - the outbox (kvl_outbox_stats), when one is given: gauges spool_bytes (both lanes),
 *     spool_waiting (not acknowledged) and spool_dropped (since the agent started);
 *   - the series registry (kvl_registry_names_refused), when one is given: the gauge
 *     names_refused, the device and instance names (interfaces, metric group instances)
 *     refused since the agent started because the collector could not archive them;
 *   - the trap receiver (kvl_trap_rx_counters), when one is given: counters traps_received,
 *     traps_v1, traps_v2c, traps_v3 (accepted), traps_informs (answered), traps_decode_err,
 *     traps_unknown_src (no configured device), traps_bad_community, traps_v3_auth_fail,
 *     traps_rate_limited.
 * Each tick also hands the heap's whole free pages back to the kernel (polls allocate and
 * free their work all the time). Not used with --poll-once. Loop thread only.
 */
#ifndef KVL_STATS_H
#define KVL_STATS_H

#include <stdint.h>
#include <uv.h>

#include "batcher.h"
#include "outbox.h"
#include "poller.h"
#include "registry.h"
#include "trap_rx.h"

typedef struct kvl_stats kvl_stats_t;

#define KVL_STATS_PERIOD_MS 60000

/* Where the figures come from and where they go; all must outlive the kvl_stats_t. */
typedef struct kvl_stats_opts {
    const char *agent_id; /* the series' device */
    kvl_batcher_t *batcher;
    kvl_poller_t *poller;             /* NULL: no poller figures */
    kvl_outbox_t *outbox;             /* NULL: no spool figures */
    const kvl_registry_t *registry;   /* NULL: no names_refused */
    const kvl_trap_rx_stats_t *traps; /* kvl_trap_rx_counters; NULL: no trap figures */
    uint64_t period_ms;               /* 0: KVL_STATS_PERIOD_MS */
} kvl_stats_opts_t;

/* Starts the timer. Returns 0 and sets *out, or a negative code with a sentence in err. */
int kvl_stats_new(uv_loop_t *loop, const kvl_stats_opts_t *opts, kvl_stats_t **out, char *err,
                  size_t errlen);
/* Stops reporting; frees once the timer's close completes (run the loop). NULL-safe. Free it
 * before the rooms it reads. */
void kvl_stats_free(kvl_stats_t *s);

#endif
