/*
 * sketch.c — weighted space-saving top-N (see sketch.h).
 *
 * Counters live in a node array that never moves them; a min-heap of node numbers, ordered by
 * count, finds the counter a new key replaces once all are taken (its root), and each node
 * knows its heap position, so an update moves 4-byte numbers, not counters. An index (open
 * addressing with linear probing, 2k slots or more, so at most half full) maps a key to its
 * node, and each node knows its index slot; a replaced key leaves the index by backward-shift
 * deletion, so no tombstones pile up.
 */
#include "sketch.h"

#include <stdlib.h>
#include <string.h>

#define EMPTY UINT32_MAX

typedef struct node {
    kvl_sketch_entry_t e;
    uint32_t hash;
    uint32_t slot; /* its place in the index */
    uint32_t hpos; /* its place in the heap */
} node_t;

struct kvl_sketch {
    size_t cap, used;
    uint64_t total;
    node_t *nodes;  /* used of them in use */
    uint32_t *heap; /* node numbers, a min-heap by count */
    uint32_t *idx;  /* index slot -> node number, or EMPTY */
    uint32_t imask; /* index size - 1 (a power of two >= 2 * cap) */
};

/* A multiplicative hash over the key's 9 words. */
static uint32_t key_hash(const uint8_t *k)
{
    uint64_t h = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < KVL_SKETCH_KEY; i += 4) {
        uint32_t w;
        memcpy(&w, k + i, 4);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    return (uint32_t)(h ^ (h >> 32));
}

kvl_sketch_t *kvl_sketch_new(size_t capacity)
{
    if (capacity < 1 || capacity > (1u << 28)) {
        return NULL;
    }
    kvl_sketch_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    size_t isz = 2;
    while (isz < 2 * capacity) {
        isz *= 2;
    }
    s->cap = capacity;
    s->imask = (uint32_t)(isz - 1);
    s->nodes = calloc(capacity, sizeof(*s->nodes));
    s->heap = calloc(capacity, sizeof(*s->heap));
    s->idx = malloc(isz * sizeof(*s->idx));
    if (s->nodes == NULL || s->heap == NULL || s->idx == NULL) {
        kvl_sketch_free(s);
        return NULL;
    }
    kvl_sketch_reset(s);
    return s;
}

void kvl_sketch_free(kvl_sketch_t *s)
{
    if (s == NULL) {
        return;
    }
    free(s->nodes);
    free(s->heap);
    free(s->idx);
    free(s);
}

void kvl_sketch_reset(kvl_sketch_t *s)
{
    memset(s->idx, 0xff, ((size_t)s->imask + 1) * sizeof(*s->idx));
    s->used = 0;
    s->total = 0;
}

uint64_t kvl_sketch_total(const kvl_sketch_t *s)
{
    return s->total;
}

static void heap_set(kvl_sketch_t *s, size_t pos, uint32_t id)
{
    s->heap[pos] = id;
    s->nodes[id].hpos = (uint32_t)pos;
}

static void sift_down(kvl_sketch_t *s, size_t pos)
{
    uint32_t id = s->heap[pos];
    uint64_t count = s->nodes[id].e.count;
    for (;;) {
        size_t c = 2 * pos + 1;
        if (c >= s->used) {
            break;
        }
        if (c + 1 < s->used && s->nodes[s->heap[c + 1]].e.count < s->nodes[s->heap[c]].e.count) {
            c++;
        }
        if (s->nodes[s->heap[c]].e.count >= count) {
            break;
        }
        heap_set(s, pos, s->heap[c]);
        pos = c;
    }
    heap_set(s, pos, id);
}

static void sift_up(kvl_sketch_t *s, size_t pos)
{
    uint32_t id = s->heap[pos];
    uint64_t count = s->nodes[id].e.count;
    while (pos > 0) {
        size_t p = (pos - 1) / 2;
        if (s->nodes[s->heap[p]].e.count <= count) {
            break;
        }
        heap_set(s, pos, s->heap[p]);
        pos = p;
    }
    heap_set(s, pos, id);
}

/* Removes index slot i (backward-shift deletion for linear probing). */
static void index_remove(kvl_sketch_t *s, uint32_t i)
{
    uint32_t j = i;
    for (;;) {
        s->idx[i] = EMPTY;
        for (;;) {
            j = (j + 1) & s->imask;
            if (s->idx[j] == EMPTY) {
                return;
            }
            uint32_t home = s->nodes[s->idx[j]].hash & s->imask;
            /* Entry at j may move to i when its home is not cyclically in (i, j]. */
            if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) {
                continue;
            }
            break;
        }
        s->idx[i] = s->idx[j];
        s->nodes[s->idx[i]].slot = i;
        i = j;
    }
}

void kvl_sketch_add(kvl_sketch_t *s, const uint8_t *key, uint64_t weight)
{
    s->total += weight;
    uint32_t h = key_hash(key), i = h & s->imask;
    /* The index is at most half full, so a probe ends at an empty slot. */
    while (s->idx[i] != EMPTY) {
        node_t *n = &s->nodes[s->idx[i]];
        if (n->hash == h && memcmp(n->e.key, key, KVL_SKETCH_KEY) == 0) {
            n->e.count += weight;
            n->e.adds++;
            sift_down(s, n->hpos);
            return;
        }
        i = (i + 1) & s->imask;
    }
    uint32_t id;
    uint64_t min = 0;
    if (s->used < s->cap) {
        id = (uint32_t)s->used++;
        s->heap[s->used - 1] = id;
        s->nodes[id].hpos = (uint32_t)(s->used - 1);
    } else {
        /* Replace the smallest counter: its count becomes the newcomer's error. */
        id = s->heap[0];
        min = s->nodes[id].e.count;
        index_remove(s, s->nodes[id].slot);
        /* The removal may have shifted entries: find the newcomer's empty slot again. */
        i = h & s->imask;
        while (s->idx[i] != EMPTY) {
            i = (i + 1) & s->imask;
        }
    }
    node_t *n = &s->nodes[id];
    memcpy(n->e.key, key, KVL_SKETCH_KEY);
    n->e.count = min + weight;
    n->e.error = min;
    n->e.adds = 1;
    n->hash = h;
    n->slot = i;
    s->idx[i] = id;
    /* A new counter at the heap's end rises; a replaced root sinks. */
    sift_up(s, n->hpos);
    sift_down(s, n->hpos);
}

static int by_count_desc(const void *a, const void *b)
{
    const kvl_sketch_entry_t *x = a, *y = b;
    if (x->count != y->count) {
        return x->count > y->count ? -1 : 1;
    }
    return memcmp(x->key, y->key, KVL_SKETCH_KEY);
}

size_t kvl_sketch_top(const kvl_sketch_t *s, kvl_sketch_entry_t *out, size_t n)
{
    if (n == 0 || s->used == 0) {
        return 0;
    }
    kvl_sketch_entry_t *all = malloc(s->used * sizeof(*all));
    if (all == NULL) {
        /* Out of memory: the heap order is no ranking, so report nothing rather than wrong. */
        return 0;
    }
    for (size_t i = 0; i < s->used; i++) {
        all[i] = s->nodes[i].e;
    }
    qsort(all, s->used, sizeof(*all), by_count_desc);
    size_t k = n < s->used ? n : s->used;
    memcpy(out, all, k * sizeof(*out));
    free(all);
    return k;
}
