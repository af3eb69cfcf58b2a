/*
 * latest.h — the latest value of every series, kept in memory as batches are applied: a
 * sink (sink.h) registered after the RRD store, so that it sees the batches the archives
 * get, in the same order; the board's API reads it instead of the RRD files.
 *
 * Per series (agent, device, scope, instance, metric; for the agent's own statistics and
 * its links the device is the agent's id, as in the archives' paths): the time and value
 * of its newest sample (a sample not newer than the one held is ignored, as the archives
 * refuse it), and for a counter its rate per second over the last interval: known only
 * when both samples are known, the value did not go back (a reset or an unhandled wrap)
 * and the two are at most 2 intervals apart (the archives' heartbeat); otherwise none.
 * The value held is the one written into the archive (`rrdtool lastupdate` shows it).
 *
 * Memory: 64 bytes per series in one array grown by half when full (so up to 96 with
 * the slack), 8 to 16 bytes of index (kept at most half full), and each distinct name
 * (agent, site, device, instance, metric, group) once: 500,000 series take 40 to 56 MB
 * plus their names (an interface's name is shared by its 15 metrics). Bounded by
 * `max_series` (new series beyond it are counted, not kept).
 *
 * Agents: per agent its site, the collector's time of its last batch, its newest sample,
 * and whether it is lost (the ingest's synthetic agent_lost / agent_back events) since
 * when. An agent lost before a collector restart is shown lost again only when the
 * ingest says so again.
 *
 * Thread: the loop's only (sink callbacks and readers alike).
 */
#ifndef KVL_LATEST_H
#define KVL_LATEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sink.h"
#include "wire.h"

typedef struct kvl_latest kvl_latest_t;

typedef struct kvl_latest_value {
    const char *agent, *site, *device, *instance, *metric; /* valid while l lives */
    const char *group; /* SCOPE_GROUP: the metric group, else "" */
    kvl_scope_t scope;
    kvl_kind_t kind;
    bool real; /* a real-valued series (value in `real`), else an integer one */
    uint32_t interval_s;
    int64_t time_ms;   /* the newest sample's time */
    bool unknown;      /* that sample was unknown */
    uint64_t value;    /* integer series */
    double real_value; /* real series */
    bool has_rate;     /* counters only */
    double rate;       /* per second */
} kvl_latest_value_t;

typedef struct kvl_latest_agent {
    const char *id, *site;
    int64_t last_batch_ms;  /* the collector's clock when its last batch was applied */
    int64_t last_sample_ms; /* its newest sample's time */
    bool lost;
    int64_t lost_since_ms; /* when lost: when the ingest declared it (the event's time) */
    uint64_t batches;      /* applied since the collector started */
} kvl_latest_agent_t;

typedef int64_t (*kvl_latest_clock_fn)(void);

/* max_series: 0 for the default (5,000,000). clock NULL: the wall clock. Returns 0 or
 * KVL_ENOMEM with a sentence in err. */
int kvl_latest_new(size_t max_series, kvl_latest_clock_fn clock, kvl_latest_t **out, char *err,
                   size_t errlen);
void kvl_latest_free(kvl_latest_t *l);

/* What the sink does with a batch and an event (also for tests). Returns 0, KVL_ENOMEM or
 * KVL_EPROTO (a sample without a definition). */
int kvl_latest_batch(kvl_latest_t *l, const kvl_sink_batch_t *b);
void kvl_latest_event(kvl_latest_t *l, const kvl_sink_event_t *e);

/* Called (on the loop) when an agent is first seen or reports another site than before;
 * fn NULL: no longer. One watcher. */
typedef void (*kvl_latest_site_fn)(void *ctx, const char *agent, const char *site);
void kvl_latest_watch_sites(kvl_latest_t *l, kvl_latest_site_fn fn, void *ctx);

/* ctx is a kvl_latest_t. */
extern const kvl_sink_t kvl_latest_sink;

/* Looks one series up. Returns 0 and fills *out, or KVL_EINVAL when it is not known. */
int kvl_latest_get(const kvl_latest_t *l, const char *agent, const char *device, kvl_scope_t scope,
                   const char *instance, const char *metric, kvl_latest_value_t *out);

/* Drops every series of one instance (an interface renamed on its device: its old name's
 * values go, the new name's come with its samples). Returns how many were dropped. */
size_t kvl_latest_drop(kvl_latest_t *l, const char *agent, const char *device, kvl_scope_t scope,
                       const char *instance);

/* Calls fn for every series (in no set order) until it returns false. */
typedef bool (*kvl_latest_each_fn)(void *ctx, const kvl_latest_value_t *v);
void kvl_latest_each(const kvl_latest_t *l, kvl_latest_each_fn fn, void *ctx);
/* The same for the series of one scope only, in the order they were first seen: its cost
 * follows that scope's series, not all of them (the board's sites and links). */
void kvl_latest_each_scope(const kvl_latest_t *l, kvl_scope_t scope, kvl_latest_each_fn fn,
                           void *ctx);

/* Calls fn for every agent seen (in the order first seen). */
typedef void (*kvl_latest_agent_fn)(void *ctx, const kvl_latest_agent_t *a);
void kvl_latest_agents(const kvl_latest_t *l, kvl_latest_agent_fn fn, void *ctx);

typedef struct kvl_latest_stats {
    size_t series;
    size_t agents;
    size_t names;
    uint64_t refused; /* samples of new series beyond max_series */
    size_t bytes;     /* memory held (tables and names) */
} kvl_latest_stats_t;
void kvl_latest_stats(const kvl_latest_t *l, kvl_latest_stats_t *out);

#endif
