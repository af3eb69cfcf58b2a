/*
 * engine.h — the rule engine: a collector sink (sink.h) that evaluates the alert rules
 * (rules.h) on every applied batch and every event, and reports each change of an alert
 * (pending, firing, resolved) as a kvl_alert_t (alert.h) to the callback given at
 * kvl_engine_new (the alert book).
 *
 * Series. A series is (agent, device, scope, instance): an interface, a device, a probe
 * target, a metric group's row, the agent's own statistics. The first time a series is
 * seen (its definition, or a new metric of it) the engine binds to it the rules that
 * select it (site, device, interface, group, target, metric and label globs, and the
 * metrics the condition needs), so a sample costs a lookup of its id in the agent's table
 * and a store; the bound rules of a series run once per group (instant) of the batch,
 * after all its samples of that instant are in. Samples are taken in sample-time order
 * per series: an instant not newer than the last one evaluated is skipped.
 *
 * Figures. value: the metric's value at that instant. rate: per second between two
 * consecutive known readings of a counter (the agent already extended wraps; an unknown
 * reading or a value that goes back restarts the rate, as common/counter.h says: no rate
 * across a reset; a gauge's rate is its change per second, and may be negative). Derived:
 * utilisation_pct = max(in, out octets rate) * 8 / speed_bps * 100; error_ratio = (in+out errors) /
 * (in+out unicast packets + errors) * 100 per second; loss_pct, rtt_ms (rtt_median_ms,
 * connect_median_ms), mos, cert_days, http_status the probe's value. An unknown figure changes
 * nothing.
 *
 * Conditions. threshold: pending when the figure crosses (`above`/`below`), firing when
 * it held for `for:`, resolved only when it is on the safe side of `clear` (hysteresis);
 * a pending alert that stops holding is resolved. state: oper_down_admin_up (oper_status
 * down or lowerLayerDown while admin_status up), device_unreachable (reachable 0; the
 * down_reason is the alert's description; `device_down`/`device_up` events of the agent
 * feed the same state at their time, so a device's outage pages as soon as its event
 * arrives, and its alert carries the event's fields (`event`, `address`, `reason`,
 * `index`: alert.h; likewise a linkDown/linkUp's and an event rule's); likewise `linkDown`/`linkUp`
 * traps set the interface's oper_status, naming it by their `interface`, `ifName` or `ifDescr`
 * field; an interface found down at first sight is a port nobody uses: oper_down_admin_up pages on
 * a change, once the interface was seen up or a linkDown trap announced it), agent_silent (no batch
 * of the agent for `intervals` of its shortest series interval, wall clock, checked by the timer;
 * not while the agent is lost: an `agent_lost` event came and no `agent_back` nor batch since, its
 * own alert covers it; a live batch of a lost agent counts as its `agent_back`). no_data: a series
 * without a sample for `intervals` of its interval (checked by the timer; not while its agent is
 * silent or lost: the agent is the problem then). event: an event whose name matches the glob and
 * whose fields match fires; the rule's clearing event with the same agent, device, interface and
 * target (the same fingerprint) resolves it, or `hold` after it. flapping (state rules): when the
 * state changed more than `changes` times within `window`, the alert is resolved and one alert of
 * the same labels plus `flapping="true"` fires instead, held until the state has not changed for
 * `stable`; then the plain alert follows the state.
 *
 * Late data. A change is late when its sample (or event) time is older than now −
 * late_after, when its batch was replayed from the journal at start, or when its event
 * is marked late (queued at an agent that was lost). A replayed event is judged by its
 * time alone: no later sample would confirm it, and the restored alerts already keep an
 * event handed over again after a restart from paging twice. The engine follows sample times
 * through a backlog exactly as through live data, but:
 *   - a firing reached in late data is held, not reported ("held candidate");
 *   - a held alert whose condition is confirmed by a sample that is not late is reported
 *     firing then, once, not late, with starts_at = the real (old) start;
 *   - a held alert whose condition ends (still inside the backlog, or later) is reported
 *     as the pair firing + resolved, both late: history, nobody paged;
 *   - a resolution is late exactly when the alert never paged (was never reported firing
 *     and not late), so the resolution of a page is always sent;
 *   - pending changes in late data are not reported.
 * Event alerts follow the same rules: a late event's alert is held (a fresh repeat of the
 * event confirms it, its clearing event or hold turns it into a late pair).
 *
 * Restart. The alert book persists the firing and the pending alerts; at start each is
 * handed to kvl_engine_restore before the first batch. An alert the engine would make with
 * the same fingerprint continues it silently (same start, already paged); when the data
 * says the condition no longer holds it is resolved (not late: it paged). A pending one
 * continues its `for:` from its real active_at: a condition still holding after the
 * restart fires at active_at + for with that start, one that stopped holding is resolved
 * as a pending alert (nothing was sent for it). Restored event alerts
 * resolve on their clearing event or their hold; a restored agent_silent alert restarts
 * the agent's silence clock at the restore. A restored alert no series takes although its
 * agent has been sending for 3 of its intervals is about something no longer reported
 * (an interface removed): it is resolved then, so no resolution is ever forgotten.
 *
 * Forgetting. A series (its last values, its rules' state) is kept while it has data or an
 * active alert (pending or firing, flapping included); one without data for
 * max(1 day, 3 × its longest no_data window) and no active alert is forgotten (a sweep every
 * 10 minutes of the timer), so a series that stops arriving raises its no_data alert first
 * and stays while that alert is active. An agent with no series left, no active
 * agent_silent alert, not lost and silent for a day is forgotten too. Series of a retired
 * agent or of devices no longer sent thus go; if they come back they start afresh (as at
 * first sight). At most max_series series are kept: beyond, the samples and events of a
 * new series are not evaluated, counted (stats.refused) and logged (at most once a minute).
 *
 * Threads and cost. Everything runs on the loop's thread, synchronously in on_batch
 * (done is called before it returns): with rules bound per series when it is first seen,
 * a sample costs a hash probe and a store, and a series instant its bound rules (measured
 * by tests/bench/rule-eval: well under 200 ns per sample with 100 rules). The timer (every
 * tick_ms) scans agents and series for silence, no_data and event holds.
 */
#ifndef KVL_ENGINE_H
#define KVL_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "alert.h"
#include "rules.h"
#include "sink.h"

#define KVL_ENGINE_LATE_AFTER_DEFAULT_MS (2 * 60 * 1000)
#define KVL_ENGINE_WEB_URL_DEFAULT "http://127.0.0.1:8080"
#define KVL_ENGINE_MAX_SERIES_DEFAULT 1000000

typedef struct kvl_engine kvl_engine_t;

typedef struct kvl_engine_cfg {
    const kvl_rules_t *rules; /* borrowed: outlives the engine */
    int64_t late_after_ms;    /* 0: KVL_ENGINE_LATE_AFTER_DEFAULT_MS */
    const char *web_url;      /* graph URLs' base; NULL: KVL_ENGINE_WEB_URL_DEFAULT */
    int64_t tick_ms;          /* the timer's period; 0: 1000 */
    size_t max_series;        /* series kept at most; 0: KVL_ENGINE_MAX_SERIES_DEFAULT */
    /* Wall clock in ms (tests); NULL: the real clock. */
    int64_t (*now_ms)(void *ctx);
    void *now_ctx;
} kvl_engine_cfg_t;

typedef struct kvl_engine_stats {
    uint64_t samples;   /* samples taken */
    uint64_t stale;     /* series instants skipped: not newer than the last one */
    uint64_t series;    /* series known now */
    uint64_t forgotten; /* series forgotten: no data and no active alert for long */
    uint64_t refused;   /* samples and events of new series refused at max_series */
    uint64_t bindings;  /* (series, rule) pairs bound */
    uint64_t changes;   /* alert changes reported */
    uint64_t late;      /* of those, late */
} kvl_engine_stats_t;

/* loop: the timer's loop, or NULL (no timer: the caller calls kvl_engine_tick). cb is
 * called on the loop's thread for every change (alert.h), from inside on_batch, on_event,
 * kvl_engine_tick and kvl_engine_restore's later effects. Returns 0, KVL_EINVAL (no rules,
 * no callback) or KVL_ENOMEM, with a sentence in err. */
int kvl_engine_new(uv_loop_t *loop, const kvl_engine_cfg_t *cfg, kvl_alert_cb cb, void *cb_ctx,
                   kvl_engine_t **out, char *err, size_t errlen);

/* Stops the timer and frees everything once the loop has closed it (run the loop after
 * this call when the engine has one). NULL-safe. Reports nothing. */
void kvl_engine_free(kvl_engine_t *e);

/* An alert that was firing or pending when the collector stopped (from the alert book),
 * before the first batch. Returns 0, KVL_EINVAL (neither firing nor pending, a pending event
 * alert, or no rule of its name: it can never resolve here, the book should resolve it) or
 * KVL_ENOMEM. */
int kvl_engine_restore(kvl_engine_t *e, const kvl_alert_t *a);

/* The sink's two halves (kvl_engine_sink calls these; tests may too). */
int kvl_engine_batch(kvl_engine_t *e, const kvl_sink_batch_t *b);
void kvl_engine_event(kvl_engine_t *e, const kvl_sink_event_t *ev);

/* One of the collector's own figures (journal_used_pct: the ingest's journal_bytes against
 * journal_max_bytes) measured at wall time t_ms, evaluated as a series of the collector
 * (alert label agent = collector_id; never agent_silent). Returns 0, KVL_EINVAL or
 * KVL_ENOMEM. */
int kvl_engine_collector_value(kvl_engine_t *e, const char *collector_id, const char *metric,
                               double value, int64_t t_ms);

/* What the timer does: agents silent, series without data, event alerts past their hold. */
void kvl_engine_tick(kvl_engine_t *e);

void kvl_engine_get_stats(const kvl_engine_t *e, kvl_engine_stats_t *out);

/* The sink (ctx: the kvl_engine_t): kvl_sinks_register(&sinks, &kvl_engine_sink, engine). */
extern const kvl_sink_t kvl_engine_sink;

#endif
