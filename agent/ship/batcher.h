/*
 * batcher.h — collects samples and events from the agent's subsystems into batches.
 *
 * A subsystem first registers each series it will report (kvl_batcher_series), getting a
 * small id that stays the same for the agent's lifetime; registering the same key again
 * returns the same id. It then reports samples taken at one instant as a group:
 *
 *   kvl_batcher_group_begin(b, t_ms);
 *   kvl_batcher_add(b, id_in_octets, 123456);
 *   kvl_batcher_add_unknown(b, id_out_octets);
 *   kvl_batcher_group_end(b);
 *
 * Events (device down/up) go in with kvl_batcher_event. Every flush_interval, or when a
 * batch grows large, the open batch is encoded once (with definitions of the series it
 * is the first to use) and handed to the uplink, which keeps it until acknowledged.
 * Runs on the agent's loop thread only.
 */
#ifndef KVL_BATCHER_H
#define KVL_BATCHER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "wire.h"

typedef struct kvl_batcher kvl_batcher_t;
struct kvl_uplink;

/* What identifies a series; labels describe it (copied). */
typedef struct kvl_series_key {
    const char *device;
    kvl_scope_t scope;
    const char *instance; /* "" for device scope */
    const char *metric;
    kvl_kind_t kind;
    uint32_t interval_s;
    bool real;
    const kvl_label_t *labels;
    size_t n_labels;
} kvl_series_key_t;

/* up may be NULL (see kvl_batcher_set_dump). */
kvl_batcher_t *kvl_batcher_new(uv_loop_t *loop, struct kvl_uplink *up, int64_t flush_ms);
/* Flushes what is pending to the uplink, then frees. NULL-safe. Stops its timer; the
 * caller runs the loop once more so the timer's close completes. */
void kvl_batcher_free(kvl_batcher_t *b);

/* Returns the series' id (>0), or 0 when out of memory. If the key is known but its labels
 * changed (e.g. a new ifAlias), the definition is updated and sent again. */
uint32_t kvl_batcher_series(kvl_batcher_t *b, const kvl_series_key_t *key);

/* What identifies an instance: all of its family's metrics at once. */
typedef struct kvl_instance_key {
    const char *device;
    kvl_scope_t scope;
    const char *instance;       /* "" for a group's scalars */
    const kvl_family_t *family; /* must outlive the batcher */
    uint32_t interval_s;
    const kvl_label_t *labels;
    size_t n_labels;
} kvl_instance_key_t;

/* Registers every metric of the instance's family; returns the id of its first metric
 * (metric i has id + i), or 0 when out of memory. Same rules as kvl_batcher_series. */
uint32_t kvl_batcher_instance(kvl_batcher_t *b, const kvl_instance_key_t *key);

/* The batcher's own copy of s, the same pointer for equal strings, valid as long as the
 * batcher (NULL when out of memory): callers may keep names this way instead of copying. */
const char *kvl_batcher_intern(kvl_batcher_t *b, const char *s);

/* The (interned) instance name of the definition holding id, or NULL. */
const char *kvl_batcher_instance_of(const kvl_batcher_t *b, uint32_t id);

void kvl_batcher_group_begin(kvl_batcher_t *b, int64_t time_ms);
void kvl_batcher_add(kvl_batcher_t *b, uint32_t id, uint64_t value);
void kvl_batcher_add_real(kvl_batcher_t *b, uint32_t id, double value);
void kvl_batcher_add_unknown(kvl_batcher_t *b, uint32_t id);
void kvl_batcher_group_end(kvl_batcher_t *b);

/* Queues an event (copied). */
void kvl_batcher_event(kvl_batcher_t *b, const kvl_event_t *ev);

/* Encodes the open batch now, if it holds anything. */
void kvl_batcher_flush(kvl_batcher_t *b);

/* --poll-once: with no uplink, batches are printed to f as text instead of sent. */
void kvl_batcher_set_dump(kvl_batcher_t *b, FILE *f);

/* Every definition known, for the uplink to send at the start of each connection (without
 * labels: those went out with the batch that first used each series): how many there are,
 * and up to max of them from off on into out (returns how many). */
size_t kvl_batcher_n_defs(const kvl_batcher_t *b);
size_t kvl_batcher_defs(const kvl_batcher_t *b, size_t off, kvl_series_def_t *out, size_t max);
#define KVL_BATCHER_MAX_FAMILIES 1024

/* Every family known (they go before the definitions); *n: room in out, then how many. */
void kvl_batcher_families(const kvl_batcher_t *b, kvl_family_t *out, size_t *n);

/* Keeps the registry in a file (the spool's series.defs), so that ids stay the same across
 * agent restarts and batches spooled by an earlier run are still understood: loads the
 * definitions and families the file holds (before any series is registered), then appends,
 * at each flush and before the batch goes to the uplink, the definitions and families the
 * batch is the first to use, as one SeriesDefs frame (common/wire.h), written and
 * fdatasync'ed at once (only when new series appear: the first poll cycle, rediscoveries).
 * A torn or damaged tail is cut off at load. Returns 0 or a negative code (logged). */
int kvl_batcher_persist(kvl_batcher_t *b, const char *path);

#endif
