/*
 * latest.c — the latest values (latest.h): names interned once (an open-addressing index
 * over an arena), series as fixed-size entries in one array with an open-addressing
 * index by their key of name ids and a chain per scope (entries are never removed, so the
 * chains only grow at their tails), agents in a small array; the sink's callbacks.
 */
#include "latest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kvl.h"
#include "log.h"
#include "timeutil.h"

#define MAX_SERIES_DEFAULT 5000000u
#define NONE UINT32_MAX

typedef struct names {
    char **s; /* id -> text */
    uint32_t n, cap;
    uint32_t *idx; /* id + 1, 0 empty */
    size_t idx_cap;
    kvl_arena_t arena;
    size_t bytes;
} names_t;

typedef struct entry {
    uint32_t agent, site, device, instance, metric;
    uint32_t group; /* SCOPE_GROUP: the group's (family's) name, which names its file */
    uint32_t interval_s;
    uint8_t scope, kind, real, unknown, has_rate;
    uint32_t next_scope; /* the next entry of the same scope (NONE: the last) */
    int64_t time_ms;
    union {
        uint64_t u;
        double d;
    } v;
    double rate;
} entry_t;

typedef struct agent {
    uint32_t id, site;
    int64_t last_batch_ms, last_sample_ms, lost_since_ms;
    bool lost;
    uint64_t batches;
} agent_t;

struct kvl_latest {
    names_t names;
    entry_t *e;
    uint32_t n, cap;
    uint32_t *idx; /* entry + 1, 0 empty */
    size_t idx_cap;
    uint32_t scope_head[KVL_SCOPE_LINK + 1], scope_tail[KVL_SCOPE_LINK + 1]; /* NONE: empty */
    size_t max_series;
    uint64_t refused;
    agent_t *agents;
    size_t n_agents, cap_agents;
    kvl_latest_clock_fn clock;
    kvl_log_limit_t full_limit;
    kvl_latest_site_fn site_fn;
    void *site_ctx;
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 33);
}

/* ----------------------------------------------------------------- names --------------- */

static uint32_t names_find(const names_t *t, const char *s, uint64_t h, size_t *slot)
{
    if (t->idx_cap == 0) {
        *slot = 0;
        return NONE;
    }
    size_t mask = t->idx_cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        if (t->idx[i] == 0) {
            *slot = i;
            return NONE;
        }
        if (strcmp(t->s[t->idx[i] - 1], s) == 0) {
            *slot = i;
            return t->idx[i] - 1;
        }
    }
}

static int names_grow(names_t *t)
{
    size_t cap = t->idx_cap ? t->idx_cap * 2 : 1024;
    uint32_t *idx = calloc(cap, sizeof(*idx));
    if (idx == NULL) {
        return KVL_ENOMEM;
    }
    for (uint32_t id = 0; id < t->n; id++) {
        size_t i = hash_str(t->s[id]) & (cap - 1);
        while (idx[i] != 0) {
            i = (i + 1) & (cap - 1);
        }
        idx[i] = id + 1;
    }
    free(t->idx);
    t->idx = idx;
    t->idx_cap = cap;
    return 0;
}

/* The id of s, added when `add`; NONE when absent (or out of memory). */
static uint32_t names_id(names_t *t, const char *s, bool add)
{
    if (s == NULL) {
        s = "";
    }
    uint64_t h = hash_str(s);
    size_t slot;
    uint32_t id = names_find(t, s, h, &slot);
    if (id != NONE || !add) {
        return id;
    }
    if ((size_t)(t->n + 1) * 2 > t->idx_cap) {
        if (names_grow(t) != 0) {
            return NONE;
        }
        names_find(t, s, h, &slot);
    }
    if (t->n == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 1024;
        char **v = realloc(t->s, cap * sizeof(*v));
        if (v == NULL) {
            return NONE;
        }
        t->s = v;
        t->cap = cap;
    }
    char *copy = kvl_arena_strdup(&t->arena, s);
    if (copy == NULL) {
        return NONE;
    }
    t->bytes += strlen(s) + 1;
    t->s[t->n] = copy;
    t->idx[slot] = t->n + 1;
    return t->n++;
}

/* ----------------------------------------------------------------- series -------------- */

static uint64_t key_hash(uint32_t agent, uint32_t device, int scope, uint32_t instance,
                         uint32_t metric)
{
    uint64_t h = mix(0, agent);
    h = mix(h, device);
    h = mix(h, (uint64_t)scope);
    h = mix(h, instance);
    return mix(h, metric);
}

static bool key_is(const entry_t *e, uint32_t agent, uint32_t device, int scope, uint32_t instance,
                   uint32_t metric)
{
    return e->agent == agent && e->device == device && e->scope == scope &&
           e->instance == instance && e->metric == metric;
}

static uint32_t series_find(const kvl_latest_t *l, uint32_t agent, uint32_t device, int scope,
                            uint32_t instance, uint32_t metric, size_t *slot)
{
    if (l->idx_cap == 0) {
        *slot = 0;
        return NONE;
    }
    size_t mask = l->idx_cap - 1;
    for (size_t i = key_hash(agent, device, scope, instance, metric) & mask;; i = (i + 1) & mask) {
        if (l->idx[i] == 0) {
            *slot = i;
            return NONE;
        }
        if (key_is(&l->e[l->idx[i] - 1], agent, device, scope, instance, metric)) {
            *slot = i;
            return l->idx[i] - 1;
        }
    }
}

static int series_grow(kvl_latest_t *l)
{
    size_t cap = l->idx_cap ? l->idx_cap * 2 : 4096;
    uint32_t *idx = calloc(cap, sizeof(*idx));
    if (idx == NULL) {
        return KVL_ENOMEM;
    }
    for (uint32_t k = 0; k < l->n; k++) {
        const entry_t *e = &l->e[k];
        size_t i = key_hash(e->agent, e->device, e->scope, e->instance, e->metric) & (cap - 1);
        while (idx[i] != 0) {
            i = (i + 1) & (cap - 1);
        }
        idx[i] = k + 1;
    }
    free(l->idx);
    l->idx = idx;
    l->idx_cap = cap;
    return 0;
}

/* The entry of a key, made when missing. NULL: out of memory or max_series reached
 * (*full set). */
static entry_t *series_get(kvl_latest_t *l, uint32_t agent, uint32_t device, int scope,
                           uint32_t instance, uint32_t metric, bool *full)
{
    size_t slot;
    uint32_t k = series_find(l, agent, device, scope, instance, metric, &slot);
    if (k != NONE) {
        return &l->e[k];
    }
    if (l->n >= l->max_series) {
        *full = true;
        return NULL;
    }
    if ((size_t)(l->n + 1) * 2 > l->idx_cap) {
        if (series_grow(l) != 0) {
            return NULL;
        }
        series_find(l, agent, device, scope, instance, metric, &slot);
    }
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap + l->cap / 2 : 4096;
        entry_t *v = realloc(l->e, cap * sizeof(*v));
        if (v == NULL) {
            return NULL;
        }
        l->e = v;
        l->cap = cap;
    }
    entry_t *e = &l->e[l->n];
    memset(e, 0, sizeof(*e));
    e->agent = agent;
    e->device = device;
    e->scope = (uint8_t)scope;
    e->instance = instance;
    e->metric = metric;
    e->time_ms = INT64_MIN;
    e->next_scope = NONE;
    if (scope >= 0 && scope <= KVL_SCOPE_LINK) {
        if (l->scope_tail[scope] == NONE) {
            l->scope_head[scope] = l->n;
        } else {
            l->e[l->scope_tail[scope]].next_scope = l->n;
        }
        l->scope_tail[scope] = l->n;
    }
    l->idx[slot] = l->n + 1;
    l->n++;
    return e;
}

/* A sample into its entry: ignored unless newer; a counter's rate when both ends are
 * known, the value did not go back and they are at most 2 intervals apart. */
static void series_update(entry_t *e, const kvl_sample_t *s, int64_t t_ms)
{
    if (e->time_ms != INT64_MIN && t_ms <= e->time_ms) {
        return;
    }
    const kvl_series_def_t *d = s->def;
    bool had = e->time_ms != INT64_MIN && !e->unknown;
    int64_t dt = e->time_ms != INT64_MIN ? t_ms - e->time_ms : 0;
    e->has_rate = 0;
    if (d->kind == KVL_KIND_COUNTER && had && !s->unknown && dt > 0 &&
        dt <= 2 * (int64_t)d->interval_s * 1000 && (bool)e->real == d->real) {
        if (d->real && s->real >= e->v.d) {
            e->rate = (s->real - e->v.d) * 1000.0 / (double)dt;
            e->has_rate = 1;
        } else if (!d->real && s->value >= e->v.u) {
            e->rate = (double)(s->value - e->v.u) * 1000.0 / (double)dt;
            e->has_rate = 1;
        }
    }
    e->time_ms = t_ms;
    e->unknown = s->unknown;
    e->kind = (uint8_t)d->kind;
    e->real = d->real;
    e->interval_s = d->interval_s;
    if (d->real) {
        e->v.d = s->unknown ? 0 : s->real;
    } else {
        e->v.u = s->unknown ? 0 : s->value;
    }
}

size_t kvl_latest_drop(kvl_latest_t *l, const char *agent, const char *device, kvl_scope_t scope,
                       const char *instance)
{
    uint32_t aid = names_id(&l->names, agent, false), did = names_id(&l->names, device, false),
             iid = names_id(&l->names, instance, false);
    if (aid == NONE || did == NONE || iid == NONE) {
        return 0;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < l->n; i++) {
        const entry_t *e = &l->e[i];
        if (e->agent != aid || e->device != did || e->scope != (uint8_t)scope ||
            e->instance != iid) {
            l->e[k++] = *e;
        }
    }
    size_t dropped = l->n - k;
    if (dropped == 0) {
        return 0;
    }
    /* the index by position is rebuilt in place (rare: a rename) */
    l->n = k;
    memset(l->idx, 0, l->idx_cap * sizeof(*l->idx));
    size_t mask = l->idx_cap - 1;
    for (uint32_t j = 0; j < l->n; j++) {
        const entry_t *e = &l->e[j];
        size_t i = key_hash(e->agent, e->device, e->scope, e->instance, e->metric) & mask;
        while (l->idx[i] != 0) {
            i = (i + 1) & mask;
        }
        l->idx[i] = j + 1;
    }
    return dropped;
}

/* ----------------------------------------------------------------- agents -------------- */

static agent_t *agent_get(kvl_latest_t *l, const char *id, const char *site)
{
    uint32_t nid = names_id(&l->names, id, true);
    uint32_t sid = names_id(&l->names, site, true);
    if (nid == NONE || sid == NONE) {
        return NULL;
    }
    for (size_t i = 0; i < l->n_agents; i++) {
        if (l->agents[i].id == nid) {
            if (l->agents[i].site != sid && l->site_fn != NULL) {
                l->site_fn(l->site_ctx, id, site != NULL ? site : "");
            }
            l->agents[i].site = sid;
            return &l->agents[i];
        }
    }
    if (l->n_agents == l->cap_agents) {
        size_t cap = l->cap_agents ? l->cap_agents * 2 : 64;
        agent_t *v = realloc(l->agents, cap * sizeof(*v));
        if (v == NULL) {
            return NULL;
        }
        l->agents = v;
        l->cap_agents = cap;
    }
    agent_t *a = &l->agents[l->n_agents++];
    memset(a, 0, sizeof(*a));
    a->id = nid;
    a->site = sid;
    a->last_sample_ms = INT64_MIN;
    if (l->site_fn != NULL) {
        l->site_fn(l->site_ctx, id, site != NULL ? site : "");
    }
    return a;
}

void kvl_latest_watch_sites(kvl_latest_t *l, kvl_latest_site_fn fn, void *ctx)
{
    l->site_fn = fn;
    l->site_ctx = ctx;
}

/* ----------------------------------------------------------------- the sink ------------ */

int kvl_latest_batch(kvl_latest_t *l, const kvl_sink_batch_t *b)
{
    agent_t *a = agent_get(l, b->agent, b->site);
    if (a == NULL) {
        return KVL_ENOMEM;
    }
    a->last_batch_ms = l->clock();
    a->batches++;
    uint32_t agent = a->id, site = a->site;
    const char *last_dev = NULL, *last_inst = NULL, *last_metric = NULL;
    uint32_t dev = NONE, inst = NONE, metric = NONE;
    bool full = false;
    for (size_t g = 0; g < b->batch->n_groups; g++) {
        const kvl_group_t *grp = &b->batch->groups[g];
        kvl_group_iter_t it;
        kvl_sample_t s;
        int rc;
        kvl_group_iter_init(&it, grp);
        while ((rc = kvl_group_iter_next(&it, kvl_sink_def, (void *)b->defs, &s)) == 1) {
            const kvl_series_def_t *d = s.def;
            if (d->scope >= KVL_SCOPE_FIRST_LATER) {
                continue; /* neighbours are the inventory's, not latest values */
            }
            /* the agent's own statistics and its links are filed under its id (store.h) */
            const char *dn =
                d->scope == KVL_SCOPE_AGENT || d->scope == KVL_SCOPE_LINK ? b->agent : d->device;
            if (dn != last_dev) {
                dev = names_id(&l->names, dn, true);
                last_dev = dn;
            }
            if (d->instance != last_inst) {
                inst = names_id(&l->names, d->instance, true);
                last_inst = d->instance;
            }
            if (d->metric != last_metric) {
                metric = names_id(&l->names, d->metric, true);
                last_metric = d->metric;
            }
            if (dev == NONE || inst == NONE || metric == NONE) {
                return KVL_ENOMEM;
            }
            entry_t *e = series_get(l, agent, dev, d->scope, inst, metric, &full);
            if (e == NULL) {
                if (!full) {
                    return KVL_ENOMEM;
                }
                l->refused++;
                continue;
            }
            e->site = site;
            if (d->scope == KVL_SCOPE_GROUP) {
                const kvl_family_t *f = kvl_sink_family(b->defs, d);
                uint32_t gid = names_id(&l->names, f != NULL ? f->name : "", true);
                if (gid == NONE) {
                    return KVL_ENOMEM;
                }
                e->group = gid;
            }
            series_update(e, &s, grp->time_ms);
        }
        if (rc < 0) {
            return KVL_EPROTO;
        }
        if (grp->time_ms > a->last_sample_ms) {
            a->last_sample_ms = grp->time_ms;
        }
    }
    if (full) {
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &l->full_limit, "board", b->agent,
                        "latest values: %zu series held (the bound): new series not kept",
                        l->max_series);
    }
    return 0;
}

void kvl_latest_event(kvl_latest_t *l, const kvl_sink_event_t *e)
{
    if (!e->synthetic || e->event == NULL || e->event->kind == NULL) {
        return;
    }
    bool lost = strcmp(e->event->kind, "agent_lost") == 0;
    if (!lost && strcmp(e->event->kind, "agent_back") != 0) {
        return;
    }
    agent_t *a = agent_get(l, e->agent, e->site);
    if (a == NULL) {
        return;
    }
    a->lost = lost;
    a->lost_since_ms = lost ? e->event->time_ms : 0;
}

static int sink_batch(void *ctx, const kvl_sink_batch_t *b, kvl_sink_done_cb done, void *token)
{
    int rc = kvl_latest_batch(ctx, b);
    if (rc == 0) {
        done(token, NULL);
    }
    return rc;
}

static void sink_event(void *ctx, const kvl_sink_event_t *e)
{
    kvl_latest_event(ctx, e);
}

const kvl_sink_t kvl_latest_sink = {
    .name = "latest values", .on_batch = sink_batch, .on_event = sink_event};

/* ----------------------------------------------------------------- readers ------------- */

static void fill(const kvl_latest_t *l, const entry_t *e, kvl_latest_value_t *v)
{
    const names_t *t = &l->names;
    *v = (kvl_latest_value_t){.agent = t->s[e->agent],
                              .site = t->s[e->site],
                              .device = t->s[e->device],
                              .instance = t->s[e->instance],
                              .metric = t->s[e->metric],
                              .group = e->scope == KVL_SCOPE_GROUP ? t->s[e->group] : "",
                              .scope = (kvl_scope_t)e->scope,
                              .kind = (kvl_kind_t)e->kind,
                              .real = e->real,
                              .interval_s = e->interval_s,
                              .time_ms = e->time_ms,
                              .unknown = e->unknown,
                              .value = e->real ? 0 : e->v.u,
                              .real_value = e->real ? e->v.d : 0,
                              .has_rate = e->has_rate,
                              .rate = e->has_rate ? e->rate : 0};
}

int kvl_latest_get(const kvl_latest_t *l, const char *agent, const char *device, kvl_scope_t scope,
                   const char *instance, const char *metric, kvl_latest_value_t *out)
{
    names_t *t = (names_t *)&l->names; /* a lookup without adding changes nothing */
    uint32_t a = names_id(t, agent, false), d = names_id(t, device, false);
    uint32_t i = names_id(t, instance, false), m = names_id(t, metric, false);
    size_t slot;
    if (a == NONE || d == NONE || i == NONE || m == NONE) {
        return KVL_EINVAL;
    }
    uint32_t k = series_find(l, a, d, (int)scope, i, m, &slot);
    if (k == NONE || l->e[k].time_ms == INT64_MIN) {
        return KVL_EINVAL;
    }
    fill(l, &l->e[k], out);
    return 0;
}

void kvl_latest_each(const kvl_latest_t *l, kvl_latest_each_fn fn, void *ctx)
{
    kvl_latest_value_t v;
    for (uint32_t k = 0; k < l->n; k++) {
        if (l->e[k].time_ms == INT64_MIN) {
            continue;
        }
        fill(l, &l->e[k], &v);
        if (!fn(ctx, &v)) {
            return;
        }
    }
}

void kvl_latest_each_scope(const kvl_latest_t *l, kvl_scope_t scope, kvl_latest_each_fn fn,
                           void *ctx)
{
    if ((int)scope < 0 || scope > KVL_SCOPE_LINK) {
        return;
    }
    kvl_latest_value_t v;
    for (uint32_t k = l->scope_head[scope]; k != NONE; k = l->e[k].next_scope) {
        if (l->e[k].time_ms == INT64_MIN) {
            continue;
        }
        fill(l, &l->e[k], &v);
        if (!fn(ctx, &v)) {
            return;
        }
    }
}

void kvl_latest_agents(const kvl_latest_t *l, kvl_latest_agent_fn fn, void *ctx)
{
    for (size_t i = 0; i < l->n_agents; i++) {
        const agent_t *a = &l->agents[i];
        kvl_latest_agent_t v = {.id = l->names.s[a->id],
                                .site = l->names.s[a->site],
                                .last_batch_ms = a->last_batch_ms,
                                .last_sample_ms = a->last_sample_ms,
                                .lost = a->lost,
                                .lost_since_ms = a->lost_since_ms,
                                .batches = a->batches};
        fn(ctx, &v);
    }
}

void kvl_latest_stats(const kvl_latest_t *l, kvl_latest_stats_t *out)
{
    out->series = l->n;
    out->agents = l->n_agents;
    out->names = l->names.n;
    out->refused = l->refused;
    out->bytes = (size_t)l->cap * sizeof(entry_t) + l->idx_cap * sizeof(uint32_t) +
                 l->names.idx_cap * sizeof(uint32_t) + l->names.cap * sizeof(char *) +
                 l->names.bytes + l->cap_agents * sizeof(agent_t);
}

/* ----------------------------------------------------------------- life ---------------- */

int kvl_latest_new(size_t max_series, kvl_latest_clock_fn clock, kvl_latest_t **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    kvl_latest_t *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        snprintf(err, errlen, "latest values: out of memory");
        return KVL_ENOMEM;
    }
    l->max_series = max_series != 0 && max_series < NONE - 1 ? max_series : MAX_SERIES_DEFAULT;
    l->clock = clock != NULL ? clock : kvl_now_ms;
    for (size_t i = 0; i < KVL_ARRAY_SIZE(l->scope_head); i++) {
        l->scope_head[i] = l->scope_tail[i] = NONE;
    }
    l->full_limit = (kvl_log_limit_t)KVL_LOG_LIMIT_BURST_INIT(60000, 1);
    *out = l;
    return 0;
}

void kvl_latest_free(kvl_latest_t *l)
{
    if (l == NULL) {
        return;
    }
    free(l->names.s);
    free(l->names.idx);
    kvl_arena_free(&l->names.arena);
    free(l->e);
    free(l->idx);
    free(l->agents);
    free(l);
}
