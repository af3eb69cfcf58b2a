/*
 * poll_sched.c — the poller's schedule (see poll_sched.h): the min-heap of devices by their
 * next tick, phases, ticks on the fixed schedule, dead devices' probe gaps and the in-flight
 * cap with its FIFO.
 *
 * One heap instead of a timer per device: 2,000 devices would otherwise be 2,000 libuv
 * timers of 152 bytes each.
 */
#include "poll_sched.h"

#include <stdlib.h>

#include "kvl.h"

/* --- the heap -------------------------------------------------------------------------------- */

static bool before(const kvl_sched_entry_t *a, const kvl_sched_entry_t *b)
{
    return a->due < b->due || (a->due == b->due && a->id < b->id);
}

static void swap(kvl_sched_t *s, size_t i, size_t j)
{
    kvl_sched_entry_t t = s->heap[i];
    s->heap[i] = s->heap[j];
    s->heap[j] = t;
}

int kvl_sched_init(kvl_sched_t *s, size_t cap)
{
    s->heap = calloc(cap > 0 ? cap : 1, sizeof(*s->heap));
    s->n = 0;
    s->cap = cap;
    return s->heap != NULL ? 0 : KVL_ENOMEM;
}

void kvl_sched_fini(kvl_sched_t *s)
{
    free(s->heap);
    s->heap = NULL;
    s->n = s->cap = 0;
}

void kvl_sched_push(kvl_sched_t *s, uint32_t id, uint64_t due)
{
    size_t i = s->n++;
    s->heap[i] = (kvl_sched_entry_t){.due = due, .id = id};
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!before(&s->heap[i], &s->heap[up])) {
            break;
        }
        swap(s, i, up);
        i = up;
    }
}

bool kvl_sched_top(const kvl_sched_t *s, uint32_t *id, uint64_t *due)
{
    if (s->n == 0) {
        return false;
    }
    *id = s->heap[0].id;
    *due = s->heap[0].due;
    return true;
}

uint32_t kvl_sched_pop(kvl_sched_t *s)
{
    uint32_t top = s->heap[0].id;
    s->heap[0] = s->heap[--s->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->n && before(&s->heap[l], &s->heap[m])) {
            m = l;
        }
        if (r < s->n && before(&s->heap[r], &s->heap[m])) {
            m = r;
        }
        if (m == i) {
            break;
        }
        swap(s, i, m);
        i = m;
    }
    return top;
}

void kvl_sched_clear(kvl_sched_t *s)
{
    s->n = 0;
}

/* --- times ----------------------------------------------------------------------------------- */

/* FNV-1a: a device's phase within its interval, the same on every start. */
static uint64_t name_hash(const char *s)
{
    uint64_t h = 14695981039346656037ull;
    for (; *s != '\0'; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

uint64_t kvl_sched_phase_delay(const char *name, uint64_t interval_ms, uint64_t now_ms)
{
    uint64_t phase = name_hash(name) % interval_ms;
    uint64_t now = now_ms % interval_ms;
    return (phase + interval_ms - now) % interval_ms;
}

uint64_t kvl_sched_start_delay(const char *name, uint64_t interval_ms)
{
    uint64_t window = interval_ms / 10;
    if (window > KVL_SCHED_START_SPREAD_MS) {
        window = KVL_SCHED_START_SPREAD_MS;
    }
    /* The high bits: the phase takes the hash modulo the interval, and the two should not
     * move together. */
    return window > 0 ? (name_hash(name) >> 32) % window : 0;
}

uint64_t kvl_sched_join_delay(const char *name, uint64_t interval_ms, uint64_t now_ms)
{
    uint64_t d = kvl_sched_phase_delay(name, interval_ms, now_ms);
    return d < interval_ms / 2 ? d + interval_ms : d;
}

unsigned kvl_sched_advance(uint64_t *next_due, uint64_t interval_ms, uint64_t now)
{
    unsigned skipped = 0;
    *next_due += interval_ms;
    while (*next_due <= now) {
        *next_due += interval_ms;
        skipped++;
    }
    return skipped;
}

unsigned kvl_sched_probe_gap(unsigned gap, uint64_t interval_ms, uint64_t max_gap_ms)
{
    unsigned max_gap = (unsigned)(max_gap_ms / interval_ms);
    gap = gap * 2 < max_gap ? gap * 2 : max_gap;
    return gap < 1 ? 1 : gap;
}

/* --- the in-flight cap ----------------------------------------------------------------------- */

bool kvl_inflight_may_send(const kvl_inflight_t *q)
{
    return q->n < q->max && q->head == NULL;
}

void kvl_inflight_enqueue(kvl_inflight_t *q, kvl_inflight_wait_t *w, void *owner)
{
    KVL_ASSERT(q->tail != w); /* a device waits once */
    w->next = NULL;
    w->owner = owner;
    if (q->tail != NULL) {
        q->tail->next = w;
    } else {
        q->head = w;
    }
    q->tail = w;
}

void *kvl_inflight_next(kvl_inflight_t *q)
{
    if (q->head == NULL || q->n >= q->max) {
        return NULL;
    }
    kvl_inflight_wait_t *w = q->head;
    q->head = w->next;
    if (q->head == NULL) {
        q->tail = NULL;
    }
    w->next = NULL;
    return w->owner;
}

void kvl_inflight_drop(kvl_inflight_t *q)
{
    q->head = q->tail = NULL;
}

bool kvl_inflight_remove(kvl_inflight_t *q, kvl_inflight_wait_t *w)
{
    kvl_inflight_wait_t *prev = NULL;
    for (kvl_inflight_wait_t *c = q->head; c != NULL; prev = c, c = c->next) {
        if (c != w) {
            continue;
        }
        if (prev != NULL) {
            prev->next = c->next;
        } else {
            q->head = c->next;
        }
        if (q->tail == c) {
            q->tail = prev;
        }
        c->next = NULL;
        return true;
    }
    return false;
}
