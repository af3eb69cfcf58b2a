/*
 * sink.h — the seam between the ingest and whatever consumes what agents send.
 *
 * The ingest (ingest/) decodes, journals and orders; a sink consumes: the RRD store
 * (store/) is the first, alerts, topology, the inventory of latest values and remote-write
 * are the next. Each is a room of its own with a kvl_sink_t (a name and two callbacks) that
 * main.c registers with one line, before the ingest starts:
 *
 *     kvl_sinks_register(&sinks, &kvl_store_sink, store);
 *
 * and the ingest calls every registered sink, in registration order, never knowing which
 * ones there are (collectd's plugin_register_write).
 *
 * What a sink gets, and the guarantees:
 *   on_batch  every batch the ingest applies: once it is on disk in the journal (the agent
 *             has been acknowledged), per agent strictly in the order the agent sent them
 *             (journal order), one batch of an agent at a time: the next batch of that
 *             agent goes to the sinks only when every sink has called `done` for this one.
 *             Batches of different agents overlap. Exactly once across restarts: a batch
 *             is "applied" (an APPLIED record in the journal, its segment released) when
 *             the last sink's `done` comes; one that was not is given again after a
 *             restart with `replayed` set (a sink may see such a batch twice only if the
 *             collector stopped between its `done` and the APPLIED record reaching the
 *             disk: a store refuses those updates as stale, and says so in `stale`).
 *   on_event  every event, once across restarts. An events-only batch (the events lane:
 *             state changes, traps) is handed over as soon as it is appended to the
 *             journal, ahead of the agent's batches still waiting, and the journal records
 *             that it was (in the same group commit), so a replay after a restart does not
 *             hand it over again (on_batch still gets the batch, in order, with its events,
 *             for the sinks that keep order rather than react). Events of a batch with
 *             samples come with that batch, in order, right after every sink's `done`.
 *             `replayed`: found in the journal at start; `late`: see kvl_sink_event_t.
 *             The ingest also makes events of its own about agents (`synthetic`: agent_lost,
 *             agent_back). The one exception: a collector
 *             killed after handing an event over and before that commit reaches the disk
 *             (a few milliseconds) hands it over again after the restart (or the agent
 *             resends it): at least once, never lost.
 *
 * Threads: every callback runs on the loop's thread, and `done` must be called there too
 * (uv_async_send or uv_queue_work's after-callback bring a worker's result back). A sink
 * that works on the thread pool or elsewhere keeps its own copies: nothing a callback
 * receives may be used after it returns. `done` may be called before on_batch returns.
 *
 * Errors: on_batch returns 0, and calls done exactly once, or a negative KVL_E* code and
 * never calls done; the ingest then logs it and counts the batch as one error for that
 * sink (it is not offered to that sink again, so a sink's failure never stops the others
 * or the agent). A sink's failures inside the batch (one archive update) go in the result,
 * in two kinds:
 *   errors  failures that cannot pass (a file that is not an archive, a definition the
 *           archive refuses): counted and logged by the sink; the batch is applied anyway.
 *   retry   failures that can pass (the disk read-only, full, failing or refusing, a lock
 *           held too long): the sink did not take (all of) the batch and wants it again.
 *           The batch is then not applied: it stays in the journal and first in its
 *           agent's queue, and is handed again to that sink alone (the others have it),
 *           later, with a growing delay (1 s doubling to 30 s), until no retry comes back;
 *           the agent's later batches wait behind it (its order holds), other agents' do
 *           not. `why` names what failed (an archive and the reason) for the ingest's log
 *           line. A retried batch has `retry` set in kvl_sink_batch_t; what the sink had
 *           written of it the first time it must accept again without harm (a store
 *           refuses those updates as stale: expected on a retry, not a problem). Across a
 *           restart a batch still waiting is replayed and retried the same way. A sink
 *           should stop at its first such failure, so that nothing after it in the batch
 *           is written before it (the store does: each file's updates stay in order).
 *
 * Lifetime: a sink and its ctx must outlive the ingest; kvl_ingest_free waits for every
 * `done` still owed, so a sink must finish (or give up and call done) when the collector
 * stops. The registry is a plain value (no allocation), filled before kvl_ingest_new and
 * not changed afterwards.
 */
#ifndef KVL_SINK_H
#define KVL_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

#define KVL_SINKS_MAX 16

/* An agent's series definitions on the connection a batch came on, looked up by id (the
 * table behind them holds what the agent defined, not an array as large as its ids): use
 * kvl_sink_def and kvl_sink_family. */
typedef struct kvl_sink_defs {
    const void *table;
    /* The definition of a series id, or NULL: a family's definition appears once per
     * metric, with that metric's id, name, kind and realness. */
    const kvl_series_def_t *(*def)(const void *table, uint32_t id);
    /* The family a definition (from def) was expanded from, or NULL. */
    const kvl_family_t *(*family)(const void *table, const kvl_series_def_t *def);
} kvl_sink_defs_t;

typedef struct kvl_sink_batch {
    const char *agent; /* the agent's id (authenticated by its certificate under TLS) */
    const char *site;  /* its site, as its Hello said */
    const kvl_sink_defs_t *defs;
    const kvl_batch_t *batch; /* seq, lane, groups of samples, events */
    bool replayed;            /* found in the journal at start */
    bool retry;               /* handed again: this sink asked for it (result.retry) */
    /* Late, as for an event (kvl_sink_event_t): its newest sample (or, without samples, its
     * newest event) was taken inside a period its agent was lost, or more than `late_after`
     * before the batch is handed over (a backlog). A sink that pages evaluates it, but what
     * began and ended in it is history, not news. */
    bool late;
} kvl_sink_batch_t;

typedef struct kvl_sink_event {
    const char *agent;
    const char *site;
    const kvl_event_t *event;
    uint64_t seq; /* of its batch (0 for a synthetic event) */
    uint32_t lane;
    bool replayed;
    /* Late: news to nobody. The event's time falls inside a period its agent was lost
     * (from its last frame before the loss to the Hello of its return: the agent_lost alert
     * covered it), or it is handed over more than `late_after` after its own time (a
     * backlog). A sink that pages should record it, not page for it. */
    bool late;
    /* Made by the collector, not sent by the agent, never journaled (seq 0, device = the
     * agent id): agent_lost (critical; fields last_seen, reason) when the agent missed
     * `lost_after` heartbeats or its connection closed and it did not come back within as
     * long; agent_back (info; fields last_seen, lost_for_s) when its Hello is accepted
     * again. Once per loss and return, also across a collector restart (the ingest keeps
     * who is lost in <data_dir>/_agents.state); at worst repeated once, never lost, when
     * the collector dies within the few milliseconds before that file is written. */
    bool synthetic;
} kvl_sink_event_t;

/* What a sink did with a batch (the ingest adds them up over the sinks for its statistics
 * and log lines). */
typedef struct kvl_sink_result {
    size_t rows;   /* updates written (a store: one per archive file and instant) */
    size_t values; /* values in them */
    size_t stale;  /* updates refused as not newer than what the sink has */
    size_t errors; /* updates that failed for good (see Errors above) */
    size_t retry;  /* updates not done for a reason that can pass: give the batch again */
    char why[640]; /* when retry: what failed and why ("<archive>: <reason>") */
} kvl_sink_result_t;

/* result: may be NULL (nothing to count). On the loop's thread, once per on_batch. */
typedef void (*kvl_sink_done_cb)(void *token, const kvl_sink_result_t *result);

typedef struct kvl_sink {
    const char *name; /* for log lines */
    /* NULL: the sink takes no batches. */
    int (*on_batch)(void *ctx, const kvl_sink_batch_t *b, kvl_sink_done_cb done, void *token);
    /* NULL: the sink takes no events. */
    void (*on_event)(void *ctx, const kvl_sink_event_t *e);
    /* NULL, or 0 returned: what the sink wrote for a batch is durable when it calls `done`.
     * Otherwise (the store writing through rrdcached) the number of the sink's durability
     * point that will cover what it has written so far: the ingest then applies the batch
     * as usual (its agent's next batch goes on) but records it applied in the journal (the
     * APPLIED record, its segments released) only once kvl_ingest_durable says that point
     * was reached, so that a collector stopped before replays it (the sink refuses what it
     * has as stale). Called on the loop, after every sink's `done` for the batch. */
    uint64_t (*durable_after)(void *ctx);
} kvl_sink_t;

typedef struct kvl_sinks {
    size_t n;
    struct {
        const kvl_sink_t *sink;
        void *ctx;
    } at[KVL_SINKS_MAX];
} kvl_sinks_t;

/* Adds a sink after those registered before. Returns 0 or KVL_EINVAL (NULL, or
 * KVL_SINKS_MAX already). */
int kvl_sinks_register(kvl_sinks_t *s, const kvl_sink_t *sink, void *ctx);

/* Hands e to every sink that takes events, in order. */
void kvl_sinks_event(const kvl_sinks_t *s, const kvl_sink_event_t *e);

/* A definition by series id, in the shape kvl_group_iter_next wants (ctx: a
 * kvl_sink_defs_t); NULL when the id has none. */
const kvl_series_def_t *kvl_sink_def(void *ctx, uint32_t id);
/* The family a definition belongs to, or NULL. */
const kvl_family_t *kvl_sink_family(const kvl_sink_defs_t *d, const kvl_series_def_t *def);

#endif
