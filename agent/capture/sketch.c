/*
 * sketch.c — weighted space-saving top-N (see sketch.h).
 *
 * The counters live in one array kept as a min-heap by count: its root is the counter a new
 * key replaces once all are taken. An index (open addressing with linear probing, 2k slots
 * or more, so at most half full) maps a key to its heap position, and each counter knows its
 * index slot, so the heap updates the index as it moves counters. A replaced key leaves the
 * index by backward-shift deletion: no tombstones pile up.
 */
#include "sketch.h"

#include <stdlib.h>
#include <string.h>

#define EMPTY UINT32_MAX

typedef struct node {
    kvl_sketch_entry_t e;
    uint32_t hash;
    uint32_t slot; /* its place in the index */
} node_t;

struct kvl_sketch {
    size_t cap, used;
    uint64_t total;
    node_t *heap;   /* used entries, a min-heap by count */
    uint32_t *idx;  /* index slot -> heap position, or EMPTY */
    uint32_t imask; /* index size - 1 (a power of two >= 2 * cap) */
};

/* FNV-1a over the key. */
static uint32_t key_hash(const uint8_t *k)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < KVL_SKETCH_KEY; i++) {
        h = (h ^ k[i]) * 16777619u;
    }
    return h;
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
    s->heap = calloc(capacity, sizeof(*s->heap));
    s->idx = malloc(isz * sizeof(*s->idx));
    if (s->heap == NULL || s->idx == NULL) {
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

static void place(kvl_sketch_t *s, size_t pos, const node_t *n)
{
    s->heap[pos] = *n;
    s->idx[n->slot] = (uint32_t)pos;
}

static void sift_down(kvl_sketch_t *s, size_t pos)
{
    node_t n = s->heap[pos];
    for (;;) {
        size_t c = 2 * pos + 1;
        if (c >= s->used) {
            break;
        }
        if (c + 1 < s->used && s->heap[c + 1].e.count < s->heap[c].e.count) {
            c++;
        }
        if (s->heap[c].e.count >= n.e.count) {
            break;
        }
        place(s, pos, &s->heap[c]);
        pos = c;
    }
    place(s, pos, &n);
}

static void sift_up(kvl_sketch_t *s, size_t pos)
{
    node_t n = s->heap[pos];
    while (pos > 0) {
        size_t p = (pos - 1) / 2;
        if (s->heap[p].e.count <= n.e.count) {
            break;
        }
        place(s, pos, &s->heap[p]);
        pos = p;
    }
    place(s, pos, &n);
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
            uint32_t home = s->heap[s->idx[j]].hash & s->imask;
            /* Entry at j may move to i when its home is not cyclically in (i, j]. */
            if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) {
                continue;
            }
            break;
        }
        s->idx[i] = s->idx[j];
        s->heap[s->idx[i]].slot = i;
        i = j;
    }
}

void kvl_sketch_add(kvl_sketch_t *s, const uint8_t *key, uint64_t weight)
{
    s->total += weight;
    uint32_t h = key_hash(key), i = h & s->imask;
    /* The index is at most half full, so a probe ends at an empty slot. */
    while (s->idx[i] != EMPTY) {
        node_t *n = &s->heap[s->idx[i]];
        if (n->hash == h && memcmp(n->e.key, key, KVL_SKETCH_KEY) == 0) {
            n->e.count += weight;
            n->e.adds++;
            sift_down(s, s->idx[i]);
            return;
        }
        i = (i + 1) & s->imask;
    }
    node_t n;
    memcpy(n.e.key, key, KVL_SKETCH_KEY);
    n.e.adds = 1;
    n.hash = h;
    if (s->used < s->cap) {
        n.e.count = weight;
        n.e.error = 0;
        n.slot = i;
        s->idx[i] = (uint32_t)s->used;
        s->heap[s->used++] = n;
        sift_up(s, s->used - 1);
        return;
    }
    /* Replace the smallest counter: its count becomes the newcomer's error. */
    uint64_t min = s->heap[0].e.count;
    index_remove(s, s->heap[0].slot);
    /* The removal may have shifted entries: find the newcomer's empty slot again. */
    i = h & s->imask;
    while (s->idx[i] != EMPTY) {
        i = (i + 1) & s->imask;
    }
    n.e.count = min + weight;
    n.e.error = min;
    n.slot = i;
    s->idx[i] = 0;
    s->heap[0] = n;
    sift_down(s, 0);
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
        all[i] = s->heap[i].e;
    }
    qsort(all, s->used, sizeof(*all), by_count_desc);
    size_t k = n < s->used ? n : s->used;
    memcpy(out, all, k * sizeof(*out));
    free(all);
    return k;
}
