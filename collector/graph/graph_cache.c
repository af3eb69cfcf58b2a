/*
 * graph_cache.c — the drawn graphs' cache (graph_cache.h): a chained hash of entries, each
 * on a doubly linked list from the most to the least recently used; the bytes counted are
 * an entry's image, its key and its bookkeeping.
 */
#include "graph_cache.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"

#define BUCKETS_MIN 256

typedef struct entry {
    struct entry *hnext;         /* hash chain */
    struct entry *newer, *older; /* the use list */
    uint32_t hash;
    int64_t expires_ms;
    size_t cost;
    kvl_graph_image_t img;
    char key[];
} entry_t;

struct kvl_graph_cache {
    size_t max_bytes, bytes;
    entry_t **tab;
    size_t n_tab, n;
    entry_t *newest, *oldest;
    uint64_t hits, misses, expired, evicted, too_big;
};

static uint32_t key_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        h = (h ^ *p) * 16777619u;
    }
    return h;
}

int kvl_graph_cache_new(size_t max_bytes, kvl_graph_cache_t **out)
{
    *out = NULL;
    kvl_graph_cache_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->tab = calloc(BUCKETS_MIN, sizeof(*c->tab))) == NULL) {
        free(c);
        return KVL_ENOMEM;
    }
    c->n_tab = BUCKETS_MIN;
    c->max_bytes = max_bytes;
    *out = c;
    return 0;
}

static void unlink_use(kvl_graph_cache_t *c, entry_t *e)
{
    if (e->newer != NULL) {
        e->newer->older = e->older;
    } else {
        c->newest = e->older;
    }
    if (e->older != NULL) {
        e->older->newer = e->newer;
    } else {
        c->oldest = e->newer;
    }
    e->newer = e->older = NULL;
}

static void push_newest(kvl_graph_cache_t *c, entry_t *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest != NULL) {
        c->newest->newer = e;
    }
    c->newest = e;
    if (c->oldest == NULL) {
        c->oldest = e;
    }
}

static void drop(kvl_graph_cache_t *c, entry_t *e)
{
    entry_t **pp = &c->tab[e->hash & (c->n_tab - 1)];
    while (*pp != e) {
        pp = &(*pp)->hnext;
    }
    *pp = e->hnext;
    unlink_use(c, e);
    KVL_ASSERT(c->bytes >= e->cost && c->n > 0);
    c->bytes -= e->cost;
    c->n--;
    free(e->img.bytes);
    free(e);
}

void kvl_graph_cache_free(kvl_graph_cache_t *c)
{
    if (c == NULL) {
        return;
    }
    while (c->oldest != NULL) {
        drop(c, c->oldest);
    }
    free(c->tab);
    free(c);
}

static entry_t *find(const kvl_graph_cache_t *c, const char *key, uint32_t h)
{
    for (entry_t *e = c->tab[h & (c->n_tab - 1)]; e != NULL; e = e->hnext) {
        if (e->hash == h && strcmp(e->key, key) == 0) {
            return e;
        }
    }
    return NULL;
}

const kvl_graph_image_t *kvl_graph_cache_get(kvl_graph_cache_t *c, const char *key, int64_t now_ms)
{
    entry_t *e = find(c, key, key_hash(key));
    if (e != NULL && now_ms >= e->expires_ms) {
        drop(c, e);
        c->expired++;
        e = NULL;
    }
    if (e == NULL) {
        c->misses++;
        return NULL;
    }
    c->hits++;
    unlink_use(c, e);
    push_newest(c, e);
    return &e->img;
}

/* Doubles the buckets when entries outnumber them (a failure keeps the table: longer
 * chains, not an error). */
static void grow(kvl_graph_cache_t *c)
{
    if (c->n < c->n_tab) {
        return;
    }
    size_t n_tab = c->n_tab * 2;
    entry_t **tab = calloc(n_tab, sizeof(*tab));
    if (tab == NULL) {
        return;
    }
    for (size_t i = 0; i < c->n_tab; i++) {
        for (entry_t *e = c->tab[i], *next; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = tab[e->hash & (n_tab - 1)];
            tab[e->hash & (n_tab - 1)] = e;
        }
    }
    free(c->tab);
    c->tab = tab;
    c->n_tab = n_tab;
}

int kvl_graph_cache_put(kvl_graph_cache_t *c, const char *key, kvl_graph_image_t *img,
                        int64_t expires_ms)
{
    size_t klen = strlen(key);
    size_t cost = sizeof(entry_t) + klen + 1 + img->len;
    uint32_t h = key_hash(key);
    entry_t *old = find(c, key, h);
    if (old != NULL) {
        drop(c, old);
    }
    if (cost > c->max_bytes / 4) {
        c->too_big++;
        free(img->bytes);
        img->bytes = NULL;
        return KVL_EINVAL;
    }
    entry_t *e = malloc(sizeof(*e) + klen + 1);
    if (e == NULL) {
        free(img->bytes);
        img->bytes = NULL;
        return KVL_ENOMEM;
    }
    while (c->bytes + cost > c->max_bytes && c->oldest != NULL) {
        drop(c, c->oldest);
        c->evicted++;
    }
    memcpy(e->key, key, klen + 1);
    e->hash = h;
    e->expires_ms = expires_ms;
    e->cost = cost;
    e->img = *img;
    img->bytes = NULL;
    grow(c);
    e->hnext = c->tab[h & (c->n_tab - 1)];
    c->tab[h & (c->n_tab - 1)] = e;
    push_newest(c, e);
    c->bytes += cost;
    c->n++;
    return 0;
}

void kvl_graph_cache_stats(const kvl_graph_cache_t *c, kvl_graph_cache_stats_t *st)
{
    *st = (kvl_graph_cache_stats_t){.entries = c->n,
                                    .bytes = c->bytes,
                                    .max_bytes = c->max_bytes,
                                    .hits = c->hits,
                                    .misses = c->misses,
                                    .expired = c->expired,
                                    .evicted = c->evicted,
                                    .too_big = c->too_big};
}
