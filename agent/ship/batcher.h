/*
 * batcher.h — collects samples and events from the agent's subsystems into batches.
 *
 * A subsystem first registers each series it will report (kvl_batcher_series, forwarded to
 * the series registry, registry.h), getting a small id that stays the same for the agent's
 * lifetime; registering the same key again returns the same id. It then reports samples
 * taken at one instant as a group:
 *
 *   kvl_batcher_group_begin(b, t_ms);
 *   kvl_batcher_add(b, id_in_octets, 123456);
 *   kvl_batcher_add_unknown(b, id_out_octets);
 *   kvl_batcher_group_end(b);
 *
 * Events (device down/up, traps, targets lost) go in with kvl_batcher_event and leave at the
 * next turn of the loop, on the events lane. Every flush_interval, or when a
 * batch grows large, the open batch is encoded once (with definitions of the series it
 * is the first to use, taken from the registry) and appended to the outbox, which keeps it
 * until acknowledged and tells the uplink. Runs on the agent's loop thread only.
 */
#ifndef KVL_BATCHER_H
#define KVL_BATCHER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "outbox.h"
#include "registry.h"
#include "wire.h"

typedef struct kvl_batcher kvl_batcher_t;

/* Batches go to outbox (appended, numbered by its lanes); without one (--poll-once) they are
 * printed (kvl_batcher_set_dump). reg and outbox must outlive the batcher. Returns 0 and sets
 * *out, or a negative code with a sentence in err. */
int kvl_batcher_new(uv_loop_t *loop, kvl_registry_t *reg, kvl_outbox_t *outbox, int64_t flush_ms,
                    kvl_batcher_t **out, char *err, size_t errlen);
/* Flushes what is pending to the outbox, then frees. NULL-safe. Stops its timer; the
 * caller runs the loop once more so the timer's close completes. */
void kvl_batcher_free(kvl_batcher_t *b);

/* The registry's kvl_registry_series, kvl_registry_instance, kvl_registry_intern and
 * kvl_registry_instance_of, for the subsystems that hold only the batcher. */
uint32_t kvl_batcher_series(kvl_batcher_t *b, const kvl_series_key_t *key);
uint32_t kvl_batcher_instance(kvl_batcher_t *b, const kvl_instance_key_t *key);
const char *kvl_batcher_intern(kvl_batcher_t *b, const char *s);
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

/* --poll-once: with no outbox, batches are printed to f as text instead of sent. */
void kvl_batcher_set_dump(kvl_batcher_t *b, FILE *f);

#endif
