/*
 * sketch.c — weighted space-saving top-N (see sketch.h).
 *
 * Counters live in a node array that never moves them; a min-heap of node numbers, ordered by
 * count, finds the counter a new key replaces once all are taken (its root), and each node
 * knows its heap position, so an update moves heap entries, not counters. A heap entry holds
 * a copy of its node's count, so sifting reads the heap alone (one small array) rather than
 * nodes all over the array. An index (open addressing with linear probing, 2k slots or more,
 * so at most half full) maps a key to its node, and each node knows its index slot; a
 * replaced key leaves the index by backward-shift deletion, so no tombstones pile up.
 */
#include "sketch.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "wordhash.h"

#define EMPTY UINT32_MAX

/* A counter in one 64-byte cache line (the array is aligned to 64). */
typedef struct node {
    uint8_t key[KVL_SKETCH_KEY];
    uint32_t slot; /* its place in the index */
    uint64_t count, error, adds;
} node_t;
_Static_assert(sizeof(node_t) == 64, "a sketch counter fills one cache line");

typedef struct hent {
    uint64_t count; /* = nodes[id].count */
    uint32_t id;
} hent_t;

struct kvl_sketch {
    size_t cap, used;
    uint64_t total;
    node_t *nodes;  /* used of them in use */
    hent_t *heap;   /* a min-heap by count */
    uint32_t *hpos; /* node number -> its place in the heap */
    uint64_t *idx;  /* index slot -> the key's hash << 32 | node number (EMPTY: free) */
    uint32_t imask; /* index size - 1 (a power of two >= 2 * cap) */
};

/* An index slot's node number, EMPTY when the slot is free; and its hash. */
static uint32_t slot_id(uint64_t v)
{
    return (uint32_t)v;
}

static uint32_t slot_hash(uint64_t v)
{
    return (uint32_t)(v >> 32);
}

/* The key as four 64-bit words and one of 32 (KVL_SKETCH_KEY is 36). */
typedef struct words {
    uint64_t w[4];
    uint32_t last;
} words_t;

static void key_words(const uint8_t *k, words_t *out)
{
    memcpy(out->w, k, 32);
    memcpy(&out->last, k + 32, 4);
}

/* Five independent multiplications folded together, then a 64-bit finalizer: a few cycles,
 * where a chain over nine words took dozens. */
static uint32_t key_hash(const words_t *k)
{
    uint64_t a = (k->w[0] ^ 0x9e3779b97f4a7c15ull) * 0xff51afd7ed558ccdull;
    uint64_t b = (k->w[1] ^ 0xc2b2ae3d27d4eb4full) * 0xc4ceb9fe1a85ec53ull;
    uint64_t c = (k->w[2] ^ 0x165667b19e3779f9ull) * 0x9e3779b97f4a7c15ull;
    uint64_t d =
        (k->w[3] ^ ((uint64_t)k->last << 32) ^ 0x27d4eb2f165667c5ull) * 0xd6e8feb86659fd93ull;
    uint64_t h = a ^ kvl_rotl64(b, 17) ^ kvl_rotl64(c, 31) ^ kvl_rotl64(d, 47);
    return kvl_fmix64(h);
}

static bool same_key(const uint8_t *stored, const words_t *k)
{
    words_t s;
    key_words(stored, &s);
    return ((s.w[0] ^ k->w[0]) | (s.w[1] ^ k->w[1]) | (s.w[2] ^ k->w[2]) | (s.w[3] ^ k->w[3]) |
            (uint64_t)(s.last ^ k->last)) == 0;
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
    s->nodes = aligned_alloc(64, capacity * sizeof(*s->nodes));
    s->heap = calloc(capacity, sizeof(*s->heap));
    s->hpos = calloc(capacity, sizeof(*s->hpos));
    s->idx = malloc(isz * sizeof(*s->idx));
    if (s->nodes == NULL || s->heap == NULL || s->hpos == NULL || s->idx == NULL) {
        kvl_sketch_free(s);
        return NULL;
    }
    memset(s->nodes, 0, capacity * sizeof(*s->nodes));
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
    free(s->hpos);
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

static void heap_set(kvl_sketch_t *s, size_t pos, hent_t e)
{
    s->heap[pos] = e;
    s->hpos[e.id] = (uint32_t)pos;
}

static void sift_down(kvl_sketch_t *s, size_t pos)
{
    hent_t e = s->heap[pos];
    for (;;) {
        size_t c = 2 * pos + 1;
        if (c >= s->used) {
            break;
        }
        if (c + 1 < s->used && s->heap[c + 1].count < s->heap[c].count) {
            c++;
        }
        if (s->heap[c].count >= e.count) {
            break;
        }
        heap_set(s, pos, s->heap[c]);
        pos = c;
    }
    heap_set(s, pos, e);
}

static void sift_up(kvl_sketch_t *s, size_t pos)
{
    hent_t e = s->heap[pos];
    while (pos > 0) {
        size_t p = (pos - 1) / 2;
        if (s->heap[p].count <= e.count) {
            break;
        }
        heap_set(s, pos, s->heap[p]);
        pos = p;
    }
    heap_set(s, pos, e);
}

/* Removes index slot i (backward-shift deletion for linear probing). */
static void index_remove(kvl_sketch_t *s, uint32_t i)
{
    uint32_t j = i;
    for (;;) {
        s->idx[i] = UINT64_MAX;
        for (;;) {
            j = (j + 1) & s->imask;
            if (slot_id(s->idx[j]) == EMPTY) {
                return;
            }
            uint32_t home = slot_hash(s->idx[j]) & s->imask;
            /* Entry at j may move to i when its home is not cyclically in (i, j]. */
            if (i <= j ? (i < home && home <= j) : (i < home || home <= j)) {
                continue;
            }
            break;
        }
        s->idx[i] = s->idx[j];
        s->nodes[slot_id(s->idx[i])].slot = i;
        i = j;
    }
}

void kvl_sketch_add(kvl_sketch_t *s, const uint8_t *key, uint64_t weight)
{
    s->total += weight;
    words_t k;
    key_words(key, &k);
    uint32_t h = key_hash(&k), i = h & s->imask;
    /* The index is at most half full, so a probe ends at an empty slot. */
    for (uint64_t v; slot_id(v = s->idx[i]) != EMPTY; i = (i + 1) & s->imask) {
        if (slot_hash(v) != h) {
            continue;
        }
        uint32_t id = slot_id(v);
        node_t *n = &s->nodes[id];
        if (same_key(n->key, &k)) {
            n->count += weight;
            n->adds++;
            s->heap[s->hpos[id]].count = n->count;
            sift_down(s, s->hpos[id]);
            return;
        }
    }
    uint32_t id;
    uint64_t min = 0;
    if (s->used < s->cap) {
        id = (uint32_t)s->used++;
        s->heap[s->used - 1].id = id;
        s->hpos[id] = (uint32_t)(s->used - 1);
    } else {
        /* Replace the smallest counter: its count becomes the newcomer's error. */
        id = s->heap[0].id;
        min = s->nodes[id].count;
        index_remove(s, s->nodes[id].slot);
        /* The removal may have shifted entries: find the newcomer's empty slot again. */
        i = h & s->imask;
        while (slot_id(s->idx[i]) != EMPTY) {
            i = (i + 1) & s->imask;
        }
    }
    node_t *n = &s->nodes[id];
    memcpy(n->key, key, KVL_SKETCH_KEY);
    n->count = min + weight;
    n->error = min;
    n->adds = 1;
    n->slot = i;
    s->idx[i] = (uint64_t)h << 32 | id;
    s->heap[s->hpos[id]].count = n->count;
    /* A new counter at the heap's end rises; a replaced root sinks. */
    sift_up(s, s->hpos[id]);
    sift_down(s, s->hpos[id]);
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
        memcpy(all[i].key, s->nodes[i].key, KVL_SKETCH_KEY);
        all[i].count = s->nodes[i].count;
        all[i].error = s->nodes[i].error;
        all[i].adds = s->nodes[i].adds;
    }
    qsort(all, s->used, sizeof(*all), by_count_desc);
    size_t k = n < s->used ? n : s->used;
    memcpy(out, all, k * sizeof(*out));
    free(all);
    return k;
}
