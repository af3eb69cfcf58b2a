/*
 * sketch.h — top-N by weight in fixed memory: the space-saving algorithm (Metwally, Agrawal
 * and El Abbadi, 2005) with weighted updates (pure, no allocation after _new).
 *
 * `capacity` counters, each a key of up to KVL_SKETCH_KEY bytes, its count and its error. A
 * key already counted adds its weight; a new key takes a free counter or, once all are
 * taken, the one with the smallest count, inheriting that count as its error. Guarantees,
 * with N the total weight added since the last reset and k the capacity:
 *   - a key's reported count is never below its true count and exceeds it by at most its
 *     error, which is at most N / k;
 *   - every key whose true count exceeds N / k is present;
 *   - while no more than k distinct keys were added, every count is exact (error 0).
 * Memory: k * 84 bytes for the counters and the heap plus 2k to 4k slots of 8 bytes of index
 * (k = 4096: about 400 KiB). An update is O(log k) (a min-heap of counts) plus a hash probe.
 */
#ifndef KVL_CAPTURE_SKETCH_H
#define KVL_CAPTURE_SKETCH_H

#include <stddef.h>
#include <stdint.h>

#define KVL_SKETCH_KEY 36 /* bytes of a key: an IP version and two IPv6 addresses fit */

typedef struct kvl_sketch kvl_sketch_t;

typedef struct kvl_sketch_entry {
    uint8_t key[KVL_SKETCH_KEY];
    uint64_t count; /* an upper bound of the key's true weight */
    uint64_t error; /* count - error is a lower bound */
    uint64_t adds;  /* updates since the key took its counter (all of them when error is 0) */
} kvl_sketch_entry_t;

/* capacity >= 1. NULL when out of memory. */
kvl_sketch_t *kvl_sketch_new(size_t capacity);
void kvl_sketch_free(kvl_sketch_t *s); /* NULL-safe */
/* Adds weight to key (KVL_SKETCH_KEY bytes; callers zero what they do not use), and one to
 * its count of updates (the capture's frames). */
void kvl_sketch_add(kvl_sketch_t *s, const uint8_t *key, uint64_t weight);
/* Forgets every key (a new interval). */
void kvl_sketch_reset(kvl_sketch_t *s);
/* The total weight added since the reset (N above). */
uint64_t kvl_sketch_total(const kvl_sketch_t *s);
/* Copies the at most n entries with the largest counts, largest first, into out; returns
 * how many. Ties are ordered by key bytes, so the order is deterministic. */
size_t kvl_sketch_top(const kvl_sketch_t *s, kvl_sketch_entry_t *out, size_t n);

#endif
