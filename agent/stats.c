/*
 * stats.c — the agent's own statistics (see stats.h): a timer that reads each room's
 * figures and reports them as one group of agent-scope series through the batcher.
 */
#include "stats.h"

#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "kvl.h"
#include "timeutil.h"

enum {
    ST_REQUESTS,
    ST_TIMEOUTS,
    ST_VARBINDS,
    ST_ERRORS,
    ST_DEVICES,
    ST_DOWN,
    ST_INFLIGHT,
    ST_CYCLE,
    ST_LAG,
    ST_SPOOL_BYTES,
    ST_SPOOL_WAITING,
    ST_SPOOL_DROPPED,
    ST_NAMES_REFUSED,
    ST_SPOOL_LOST,
    ST_TRAPS_RECEIVED,
    ST_TRAPS_V1,
    ST_TRAPS_V2C,
    ST_TRAPS_V3,
    ST_TRAPS_INFORMS,
    ST_TRAPS_DECODE,
    ST_TRAPS_UNKNOWN,
    ST_TRAPS_COMMUNITY,
    ST_TRAPS_V3_AUTH,
    ST_TRAPS_RATE,
    N_STATS
};

static const struct {
    const char *metric;
    kvl_kind_t kind;
    bool real;
} stat_defs[N_STATS] = {
    [ST_REQUESTS] = {"snmp_requests", KVL_KIND_COUNTER, false},
    [ST_TIMEOUTS] = {"snmp_timeouts", KVL_KIND_COUNTER, false},
    [ST_VARBINDS] = {"snmp_varbinds", KVL_KIND_COUNTER, false},
    [ST_ERRORS] = {"snmp_errors", KVL_KIND_COUNTER, false},
    [ST_DEVICES] = {"devices", KVL_KIND_GAUGE, false},
    [ST_DOWN] = {"devices_down", KVL_KIND_GAUGE, false},
    [ST_INFLIGHT] = {"inflight", KVL_KIND_GAUGE, false},
    [ST_CYCLE] = {"cycle_ms", KVL_KIND_GAUGE, true},
    [ST_LAG] = {"lag_ms", KVL_KIND_GAUGE, true},
    [ST_SPOOL_BYTES] = {"spool_bytes", KVL_KIND_GAUGE, false},     /* outbox.h: both lanes */
    [ST_SPOOL_WAITING] = {"spool_waiting", KVL_KIND_GAUGE, false}, /* not acknowledged */
    [ST_SPOOL_DROPPED] = {"spool_dropped", KVL_KIND_GAUGE, false}, /* since the agent started */
    [ST_NAMES_REFUSED] = {"names_refused", KVL_KIND_GAUGE, false}, /* registry.h: since start */
    [ST_SPOOL_LOST] = {"spool_lost", KVL_KIND_GAUGE, false},       /* to damage, since the start */
    /* the trap receiver (trap_rx.h), totals since the start */
    [ST_TRAPS_RECEIVED] = {"traps_received", KVL_KIND_COUNTER, false},
    [ST_TRAPS_V1] = {"traps_v1", KVL_KIND_COUNTER, false},
    [ST_TRAPS_V2C] = {"traps_v2c", KVL_KIND_COUNTER, false},
    [ST_TRAPS_V3] = {"traps_v3", KVL_KIND_COUNTER, false},
    [ST_TRAPS_INFORMS] = {"traps_informs", KVL_KIND_COUNTER, false},
    [ST_TRAPS_DECODE] = {"traps_decode_err", KVL_KIND_COUNTER, false},
    [ST_TRAPS_UNKNOWN] = {"traps_unknown_src", KVL_KIND_COUNTER, false},
    [ST_TRAPS_COMMUNITY] = {"traps_bad_community", KVL_KIND_COUNTER, false},
    [ST_TRAPS_V3_AUTH] = {"traps_v3_auth_fail", KVL_KIND_COUNTER, false},
    [ST_TRAPS_RATE] = {"traps_rate_limited", KVL_KIND_COUNTER, false},
};

struct kvl_stats {
    kvl_stats_opts_t o;
    uv_timer_t timer;
    uint32_t ids[N_STATS]; /* registered at the first tick */
};

/* Whether statistic i has a source. */
static bool reported(const kvl_stats_t *s, int i)
{
    if (i == ST_NAMES_REFUSED) {
        return s->o.registry != NULL;
    }
    if (i >= ST_TRAPS_RECEIVED) {
        return s->o.traps != NULL;
    }
    return i < ST_SPOOL_BYTES ? s->o.poller != NULL : s->o.outbox != NULL;
}

static void on_tick(uv_timer_t *t)
{
    kvl_stats_t *s = t->data;
    kvl_batcher_t *b = s->o.batcher;
    /* Polls allocate and free their work (rows, OID arrays) all the time; the memory freed
     * between the heap's live blocks would otherwise stay resident for good. Once a period,
     * hand whole free pages back to the kernel (a few milliseconds). */
    malloc_trim(0);
    uint32_t interval_s = (uint32_t)(s->o.period_ms / 1000);
    for (int i = 0; i < N_STATS; i++) {
        if (s->ids[i] == 0 && reported(s, i)) {
            kvl_series_key_t key = {
                .device = s->o.agent_id,
                .scope = KVL_SCOPE_AGENT,
                .instance = "",
                .metric = stat_defs[i].metric,
                .kind = stat_defs[i].kind,
                .interval_s = interval_s > 0 ? interval_s : 1,
                .real = stat_defs[i].real,
            };
            s->ids[i] = kvl_batcher_series(b, &key);
        }
    }
    kvl_poller_stats_t ps = {0};
    if (s->o.poller != NULL) {
        kvl_poller_stats(s->o.poller, &ps);
    }
    kvl_trap_rx_stats_t ts = {0};
    if (s->o.traps != NULL) {
        ts = *s->o.traps;
    }
    kvl_outbox_stats_t os = {0};
    if (s->o.outbox != NULL) {
        kvl_outbox_stats(s->o.outbox, &os);
    }
    uint64_t values[N_STATS] = {
        [ST_REQUESTS] = ps.requests,
        [ST_TIMEOUTS] = ps.timeouts,
        [ST_VARBINDS] = ps.varbinds,
        [ST_ERRORS] = ps.errors,
        [ST_DEVICES] = ps.devices,
        [ST_DOWN] = ps.devices_down,
        [ST_INFLIGHT] = ps.inflight,
        [ST_SPOOL_BYTES] = os.bytes,
        [ST_SPOOL_WAITING] = os.waiting,
        [ST_SPOOL_DROPPED] = os.dropped,
        [ST_SPOOL_LOST] = os.lost,
        [ST_NAMES_REFUSED] = s->o.registry != NULL ? kvl_registry_names_refused(s->o.registry) : 0,
        [ST_TRAPS_RECEIVED] = ts.received,
        [ST_TRAPS_V1] = ts.v1,
        [ST_TRAPS_V2C] = ts.v2c,
        [ST_TRAPS_V3] = ts.v3,
        [ST_TRAPS_INFORMS] = ts.informs_answered,
        [ST_TRAPS_DECODE] = ts.decode_errors,
        [ST_TRAPS_UNKNOWN] = ts.unknown_source,
        [ST_TRAPS_COMMUNITY] = ts.bad_community,
        [ST_TRAPS_V3_AUTH] = ts.v3_auth_failures,
        [ST_TRAPS_RATE] = ts.rate_limited,
    };
    kvl_batcher_group_begin(b, kvl_now_ms());
    for (int i = 0; i < N_STATS; i++) {
        if (s->ids[i] == 0) {
            continue;
        }
        if (i == ST_CYCLE || i == ST_LAG) {
            if (ps.any_poll) {
                kvl_batcher_add_real(b, s->ids[i], i == ST_CYCLE ? ps.cycle_max_ms : ps.lag_max_ms);
            } else {
                kvl_batcher_add_unknown(b, s->ids[i]);
            }
        } else {
            kvl_batcher_add(b, s->ids[i], values[i]);
        }
    }
    kvl_batcher_group_end(b);
}

int kvl_stats_new(uv_loop_t *loop, const kvl_stats_opts_t *opts, kvl_stats_t **out, char *err,
                  size_t errlen)
{
    kvl_stats_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    s->o = *opts;
    if (s->o.period_ms == 0) {
        s->o.period_ms = KVL_STATS_PERIOD_MS;
    }
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, on_tick, s->o.period_ms, s->o.period_ms);
    *out = s;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

void kvl_stats_free(kvl_stats_t *s)
{
    if (s == NULL) {
        return;
    }
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_closed);
}
