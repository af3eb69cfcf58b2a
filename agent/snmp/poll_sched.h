/*
 * poll_sched.h — the poller's schedule (agent/snmp/poller.c): when each device ticks, how far
 * apart a dead device's probes are, and how many requests may be in flight at once.
 *
 *  - kvl_sched_t: a binary min-heap of device indices by due time (the loop's milliseconds),
 *    ties in index order. The poller arms its one timer for every device at the top.
 *  - Start: the agent does not know when it last polled a device (a restart may have taken
 *    any time), so the first tick comes at once, spread over a short window by the name's
 *    hash (kvl_sched_start_delay) so 2,000 devices do not fire in one millisecond; a restart
 *    then leaves no gap longer than the archives' heartbeat (two steps) in a device's polls.
 *  - Phase: the second tick comes one interval after the first (a new archive's first two
 *    updates one step apart: rrdtool spreads a longer first gap over the steps it spans, so
 *    their rows would be wrong); the third joins a fixed point of the interval, the FNV-1a
 *    hash of the name modulo the interval counted from the Unix epoch (the same after every
 *    restart, and 2,000 devices spread evenly), at least half an interval after the second
 *    so two updates never come close together (kvl_sched_join_delay).
 *  - Ticks: one every interval after that, never drifting; ticks the loop was too late for
 *    are skipped.
 *  - Dead devices: the gap between probes, in ticks, doubles up to a longest time.
 *  - kvl_inflight_t: at most `max` requests in flight over all devices; beyond that the
 *    requests wait in one FIFO, and a slot that frees goes to the queue's head first.
 *
 * Pure: no loop, no clock, no SNMP; the poller passes the times and owns the timer.
 */
#ifndef KVL_POLL_SCHED_H
#define KVL_POLL_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kvl_sched_entry {
    uint64_t due;
    uint32_t id;
} kvl_sched_entry_t;

typedef struct kvl_sched {
    kvl_sched_entry_t *heap;
    size_t n, cap;
} kvl_sched_t;

/* Makes room for cap entries. Returns 0 or KVL_ENOMEM. */
int kvl_sched_init(kvl_sched_t *s, size_t cap);
/* Frees the room. */
void kvl_sched_fini(kvl_sched_t *s);
/* Adds id, due at `due` (at most cap entries at once). */
void kvl_sched_push(kvl_sched_t *s, uint32_t id, uint64_t due);
/* The earliest entry (the lowest id among equal times): false when there is none. */
bool kvl_sched_top(const kvl_sched_t *s, uint32_t *id, uint64_t *due);
/* Removes and returns the earliest entry's id (the schedule must not be empty). */
uint32_t kvl_sched_pop(kvl_sched_t *s);
/* Removes every entry. */
void kvl_sched_clear(kvl_sched_t *s);

/* The longest window the devices' first ticks after start are spread over. */
#define KVL_SCHED_START_SPREAD_MS 10000

/* Milliseconds from now_ms (wall clock, Unix epoch) to the next phase point of the device
 * called name: in [0, interval_ms). */
uint64_t kvl_sched_phase_delay(const char *name, uint64_t interval_ms, uint64_t now_ms);
/* Milliseconds from the start to the first tick of the device called name: in [0, w), w the
 * smaller of a tenth of the interval and KVL_SCHED_START_SPREAD_MS (0 when w is 0). A
 * restart then loses no step as long as it takes less than the interval minus w after the
 * last poll (the archives' heartbeat being two intervals). */
uint64_t kvl_sched_start_delay(const char *name, uint64_t interval_ms);
/* Milliseconds from a device's second tick (at now_ms, wall clock) to its third: its next
 * phase point at least half an interval away, in [interval_ms / 2, interval_ms * 3 / 2). */
uint64_t kvl_sched_join_delay(const char *name, uint64_t interval_ms, uint64_t now_ms);
/* Moves *next_due on by one interval, then past now on the fixed schedule. Returns how many
 * ticks were skipped because the loop came too late. */
unsigned kvl_sched_advance(uint64_t *next_due, uint64_t interval_ms, uint64_t now);
/* The next gap between a dead device's probes, in ticks, after one more went unanswered:
 * twice gap, at most max_gap_ms, at least one tick. */
unsigned kvl_sched_probe_gap(unsigned gap, uint64_t interval_ms, uint64_t max_gap_ms);

/* A request waiting for a slot; embedded in its owner. */
typedef struct kvl_inflight_wait {
    struct kvl_inflight_wait *next;
    void *owner;
} kvl_inflight_wait_t;

/* The in-flight cap: `n` requests in flight (the poller counts them), at most `max`. */
typedef struct kvl_inflight {
    unsigned n, max;
    kvl_inflight_wait_t *head, *tail;
} kvl_inflight_t;

/* Whether a new request may be sent now: a slot is free and nobody waits for one. */
bool kvl_inflight_may_send(const kvl_inflight_t *q);
/* Queues w (for owner) at the tail. */
void kvl_inflight_enqueue(kvl_inflight_t *q, kvl_inflight_wait_t *w, void *owner);
/* When a slot is free and someone waits: takes the head off the queue and returns its
 * owner; else NULL. */
void *kvl_inflight_next(kvl_inflight_t *q);
/* Forgets every waiting request. */
void kvl_inflight_drop(kvl_inflight_t *q);
/* Takes w off the queue (a device dropped by a reload): true when it was waiting. */
bool kvl_inflight_remove(kvl_inflight_t *q, kvl_inflight_wait_t *w);

#endif
