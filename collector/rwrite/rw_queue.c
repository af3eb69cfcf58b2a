/*
 * rw_queue.c — interned series, the bounded sample ring and request building (rw_queue.h).
 * The table is a power-of-two array of chains keyed by FNV-1a of the label bytes, doubled
 * when it holds as many series as buckets.
 */
#include "rw_queue.h"

#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "rw_proto.h"

struct kvl_rw_series {
    kvl_rw_series_t *next; /* in its bucket */
    uint64_t hash;
    size_t refs;
    uint64_t gen; /* request building: the request this series was last seen in */
    size_t idx;   /* and its place there */
    size_t len;
    uint8_t labels[]; /* len bytes */
};

struct kvl_rw_intern {
    kvl_rw_series_t **buckets;
    size_t n_buckets, n;
    uint64_t gen;
};

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

kvl_rw_intern_t *kvl_rw_intern_new(void)
{
    kvl_rw_intern_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    t->n_buckets = 1024;
    t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
    if (t->buckets == NULL) {
        free(t);
        return NULL;
    }
    return t;
}

void kvl_rw_intern_free(kvl_rw_intern_t *t)
{
    if (t == NULL) {
        return;
    }
    KVL_ASSERT(t->n == 0);
    free(t->buckets);
    free(t);
}

static void grow(kvl_rw_intern_t *t)
{
    size_t nb = t->n_buckets * 2;
    kvl_rw_series_t **b = calloc(nb, sizeof(*b));
    if (b == NULL) {
        return; /* longer chains, still correct */
    }
    for (size_t i = 0; i < t->n_buckets; i++) {
        kvl_rw_series_t *s = t->buckets[i];
        while (s != NULL) {
            kvl_rw_series_t *next = s->next;
            size_t at = (size_t)(s->hash & (nb - 1));
            s->next = b[at];
            b[at] = s;
            s = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = nb;
}

kvl_rw_series_t *kvl_rw_intern(kvl_rw_intern_t *t, const uint8_t *labels, size_t len)
{
    uint64_t h = fnv1a(labels, len);
    size_t at = (size_t)(h & (t->n_buckets - 1));
    for (kvl_rw_series_t *s = t->buckets[at]; s != NULL; s = s->next) {
        if (s->hash == h && s->len == len && memcmp(s->labels, labels, len) == 0) {
            s->refs++;
            return s;
        }
    }
    kvl_rw_series_t *s = malloc(sizeof(*s) + len);
    if (s == NULL) {
        return NULL;
    }
    *s = (kvl_rw_series_t){.next = t->buckets[at], .hash = h, .refs = 1, .len = len};
    memcpy(s->labels, labels, len);
    t->buckets[at] = s;
    t->n++;
    if (t->n > t->n_buckets) {
        grow(t);
    }
    return s;
}

void kvl_rw_series_unref(kvl_rw_intern_t *t, kvl_rw_series_t *s)
{
    if (s == NULL) {
        return;
    }
    KVL_ASSERT(s->refs > 0);
    if (--s->refs > 0) {
        return;
    }
    kvl_rw_series_t **p = &t->buckets[s->hash & (t->n_buckets - 1)];
    while (*p != s) {
        KVL_ASSERT(*p != NULL);
        p = &(*p)->next;
    }
    *p = s->next;
    t->n--;
    free(s);
}

uint64_t kvl_rw_series_hash(const kvl_rw_series_t *s)
{
    return s->hash;
}

const uint8_t *kvl_rw_series_labels(const kvl_rw_series_t *s, size_t *len)
{
    *len = s->len;
    return s->labels;
}

size_t kvl_rw_intern_count(const kvl_rw_intern_t *t)
{
    return t->n;
}

/* ---- the ring -------------------------------------------------------------------------------- */

int kvl_rw_queue_init(kvl_rw_queue_t *q, size_t cap)
{
    *q = (kvl_rw_queue_t){0};
    q->ring = calloc(cap > 0 ? cap : 1, sizeof(*q->ring));
    if (q->ring == NULL) {
        return KVL_ENOMEM;
    }
    q->cap = cap > 0 ? cap : 1;
    return 0;
}

void kvl_rw_queue_free(kvl_rw_queue_t *q, kvl_rw_intern_t *t)
{
    for (size_t i = 0; i < q->len; i++) {
        kvl_rw_series_unref(t, q->ring[(q->head + i) % q->cap].series);
    }
    free(q->ring);
    *q = (kvl_rw_queue_t){0};
}

int kvl_rw_queue_push(kvl_rw_queue_t *q, kvl_rw_intern_t *t, kvl_rw_series_t *s, int64_t time_ms,
                      double value)
{
    int dropped = 0;
    if (q->len == q->cap) {
        kvl_rw_series_unref(t, q->ring[q->head].series);
        q->head = (q->head + 1) % q->cap;
        q->len--;
        q->dropped++;
        dropped = 1;
    }
    q->ring[(q->head + q->len) % q->cap] =
        (kvl_rw_sample_t){.series = s, .time_ms = time_ms, .value = value};
    q->len++;
    return dropped;
}

int kvl_rw_queue_take(kvl_rw_queue_t *q, kvl_rw_intern_t *t, size_t max, kvl_buf_t *body,
                      size_t *n_samples, size_t *n_series, int64_t *newest_ms)
{
    size_t n = q->len < max ? q->len : max;
    body->len = 0;
    *n_samples = *n_series = 0;
    *newest_ms = 0;
    if (n == 0) {
        return 0;
    }
    /* the series of the request, in order of first sample, and how many samples each has */
    kvl_rw_series_t **series = malloc(n * sizeof(*series));
    size_t *count = calloc(n + 1, sizeof(*count));
    int64_t *times = malloc(n * sizeof(*times));
    double *values = malloc(n * sizeof(*values));
    int rc = series && count && times && values ? 0 : KVL_ENOMEM;
    size_t ns = 0;
    t->gen++;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        kvl_rw_series_t *s = q->ring[(q->head + i) % q->cap].series;
        if (s->gen != t->gen) {
            s->gen = t->gen;
            s->idx = ns;
            series[ns++] = s;
        }
        count[s->idx + 1]++;
    }
    /* counting sort by series (stable: each series keeps its queue order) */
    for (size_t i = 1; rc == 0 && i <= ns; i++) {
        count[i] += count[i - 1];
    }
    int64_t newest = INT64_MIN;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const kvl_rw_sample_t *sm = &q->ring[(q->head + i) % q->cap];
        size_t at = count[sm->series->idx]++;
        times[at] = sm->time_ms;
        values[at] = sm->value;
        newest = sm->time_ms > newest ? sm->time_ms : newest;
    }
    /* count[i] is now the end of series i's run */
    size_t start = 0;
    for (size_t i = 0; rc == 0 && i < ns; i++) {
        size_t end = count[i];
        rc = kvl_rw_encode_series(body, series[i]->labels, series[i]->len, times + start,
                                  values + start, end - start);
        start = end;
    }
    if (rc == 0) {
        for (size_t i = 0; i < n; i++) {
            kvl_rw_series_unref(t, q->ring[q->head].series);
            q->head = (q->head + 1) % q->cap;
            q->len--;
        }
        *n_samples = n;
        *n_series = ns;
        *newest_ms = newest;
    } else {
        body->len = 0;
    }
    free(series);
    free(count);
    free(times);
    free(values);
    return rc;
}
