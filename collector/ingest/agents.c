/*
 * agents.c — the ingest's per-agent state: agents by id, the series definitions of a
 * connection (maps from id to definition sized by what is held, families expanded, the
 * per-agent limits, names that must fit a file) as sinks see them, batches checked against
 * them, samples too far ahead or too old dropped at arrival, the event log line, the queue
 * of an agent's batches waiting for the sinks (decoded in memory, or spilled to the
 * journal), and the release of the definitions of agents gone.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"
#include "kvl.h"
#include "log.h"
#include "names.h"
#include "timeutil.h"

/* ----------------------------------------------------------------- agents -------------- */

static agent_state_t *agent_find(kvl_ingest_t *in, const char *id, size_t len)
{
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        if (strlen(a->id) == len && memcmp(a->id, id, len) == 0) {
            return a;
        }
    }
    return NULL;
}

agent_state_t *ingest_agent_get(kvl_ingest_t *in, const char *id, size_t len)
{
    agent_state_t *a = agent_find(in, id, len);
    if (a != NULL) {
        return a;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL || (a->id = strndup(id, len)) == NULL) {
        free(a);
        return NULL;
    }
    snprintf(a->site, sizeof(a->site), "default");
    a->in = in;
    a->next = in->agents;
    in->agents = a;
    return a;
}

const char *ingest_who(const conn_t *c)
{
    return c->agent ? c->agent->id : c->peer;
}

/* ----------------------------------------------------------------- definitions --------- */

/* A definition as received and the entries it makes: one for a single series, one per
 * metric for a family's (ids id .. id+n-1). Strings follow in the same allocation; a
 * family's metric names stay in its fam_rec_t, which the block holds a reference to. */
struct def_block {
    def_block_t *prev, *next; /* in the order received */
    size_t refs;              /* map entries pointing at it */
    size_t bytes;
    struct fam_rec *fam; /* a reference, or NULL */
    uint32_t n;
    kvl_series_def_t orig;   /* as received (a family's with metric "") */
    kvl_series_def_t defs[]; /* per id */
};

typedef struct fam_rec {
    size_t refs; /* the table's map entry, and each block expanded from it */
    size_t bytes;
    kvl_family_t f; /* its arrays and strings follow in the same allocation */
} fam_rec_t;

static uint32_t id_hash(uint32_t id, uint32_t seed)
{
    uint32_t h = id ^ seed; /* murmur3's finaliser: a peer cannot aim ids at one slot */
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

static id_slot_t *map_find(const id_map_t *m, uint32_t id)
{
    if (m->cap == 0 || id == 0) {
        return NULL; /* (0 marks an empty slot: never an entry) */
    }
    size_t mask = m->cap - 1;
    for (size_t i = id_hash(id, m->seed) & mask;; i = (i + 1) & mask) {
        id_slot_t *s = &m->slots[i];
        if (s->id == id) {
            return s;
        }
        if (s->id == 0) {
            return NULL;
        }
    }
}

/* Room for `extra` more entries within the fill bound. Returns 0 or KVL_ENOMEM (the map
 * unchanged); t->bytes follows the map's size. */
static int map_reserve(defs_table_t *t, id_map_t *m, size_t extra)
{
    size_t cap = m->cap ? m->cap : 64;
    while ((m->n + extra) * 4 > cap * 3) {
        cap *= 2;
    }
    if (cap == m->cap) {
        return 0;
    }
    id_slot_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].id != 0) {
            size_t j = id_hash(m->slots[i].id, m->seed) & (cap - 1);
            while (slots[j].id != 0) {
                j = (j + 1) & (cap - 1);
            }
            slots[j] = m->slots[i];
        }
    }
    free(m->slots);
    t->bytes += (cap - m->cap) * sizeof(*slots);
    m->slots = slots;
    m->cap = cap;
    return 0;
}

/* The slot for id: the one it has, or a new one (p NULL) in the room map_reserve made. */
static id_slot_t *map_put(id_map_t *m, uint32_t id)
{
    KVL_ASSERT(id != 0 && m->cap > 0);
    size_t mask = m->cap - 1;
    size_t i = id_hash(id, m->seed) & mask;
    while (m->slots[i].id != id && m->slots[i].id != 0) {
        i = (i + 1) & mask;
    }
    if (m->slots[i].id == 0) {
        KVL_ASSERT((m->n + 1) * 4 <= m->cap * 3);
        m->slots[i] = (id_slot_t){.id = id};
        m->n++;
    }
    return &m->slots[i];
}

defs_table_t *ingest_defs_new(const kvl_ingest_t *in, const char *site)
{
    defs_table_t *t = calloc(1, sizeof(*t));
    if (t != NULL) {
        t->refs = 1;
        snprintf(t->site, sizeof(t->site), "%s", site);
        t->max_series = (size_t)in->cfg->max_series_per_agent;
        t->max_families = (size_t)in->cfg->max_families_per_agent;
        uint64_t r = kvl_mono_ns() ^ (uint64_t)(uintptr_t)t;
        t->series.seed = (uint32_t)(r ^ (r >> 32));
        t->families.seed = t->series.seed * 0x9e3779b9u + 1;
        t->bytes = sizeof(*t);
    }
    return t;
}

static void fam_unref(defs_table_t *t, fam_rec_t *f)
{
    if (f != NULL && --f->refs == 0) {
        t->bytes -= f->bytes;
        free(f);
    }
}

static void block_unref(defs_table_t *t, def_block_t *b)
{
    if (--b->refs > 0) {
        return;
    }
    if (b->prev) {
        b->prev->next = b->next;
    } else {
        t->first = b->next;
    }
    if (b->next) {
        b->next->prev = b->prev;
    } else {
        t->last = b->prev;
    }
    fam_unref(t, b->fam);
    t->bytes -= b->bytes;
    free(b);
}

/* Drops a reference; frees with the last. NULL-safe. */
void ingest_defs_free(defs_table_t *t)
{
    if (t == NULL || --t->refs > 0) {
        return;
    }
    for (def_block_t *b = t->first, *next; b != NULL; b = next) {
        next = b->next;
        fam_unref(t, b->fam);
        free(b);
    }
    for (size_t i = 0; i < t->families.cap; i++) {
        if (t->families.slots[i].id != 0) {
            fam_unref(t, t->families.slots[i].p);
        }
    }
    free(t->series.slots);
    free(t->families.slots);
    free(t);
}

const kvl_series_def_t *ingest_defs_find(const defs_table_t *t, uint32_t id)
{
    const id_slot_t *s = map_find(&t->series, id);
    return s != NULL ? &((const def_block_t *)s->p)->defs[s->idx] : NULL;
}

size_t ingest_defs_bytes(const defs_table_t *t)
{
    return t->bytes;
}

size_t ingest_defs_series(const defs_table_t *t)
{
    return t->series.n;
}

size_t ingest_defs_families(const defs_table_t *t)
{
    return t->families.n;
}

static const kvl_series_def_t *lookup_def(void *ctx, uint32_t id)
{
    return ingest_defs_find(ctx, id);
}

static bool str_eq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool family_eq(const kvl_family_t *a, const kvl_family_t *b)
{
    if (a->n != b->n || !str_eq(a->name, b->name)) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        bool ra = a->reals != NULL && a->reals[i], rb = b->reals != NULL && b->reals[i];
        if (!str_eq(a->metrics[i], b->metrics[i]) || a->kinds[i] != b->kinds[i] || ra != rb) {
            return false;
        }
    }
    return true;
}

/* Names that become parts of an archive's path must fit a file name. */
static int check_name(defs_table_t *t, const char *what, const char *name)
{
    char why[200];
    if (kvl_name_check(what, name != NULL ? name : "", why, sizeof(why)) != 0) {
        snprintf(t->why, sizeof(t->why), "%s", why);
        return KVL_EINVAL;
    }
    return 0;
}

static int store_family(defs_table_t *t, const kvl_family_t *f)
{
    if (f->id == 0 || f->n == 0 || f->n > KVL_FAMILY_MAX) {
        snprintf(t->why, sizeof(t->why), "family %" PRIu32 ": id 0 or %zu metrics (1 to %d)", f->id,
                 f->n, KVL_FAMILY_MAX);
        return KVL_EPROTO;
    }
    int rc = check_name(t, "family", f->name);
    for (size_t i = 0; i < f->n && rc == 0; i++) {
        rc = check_name(t, "metric", f->metrics[i]);
    }
    if (rc != 0) {
        return rc;
    }
    id_slot_t *s = map_find(&t->families, f->id);
    if (s != NULL && family_eq(&((fam_rec_t *)s->p)->f, f)) {
        return 0; /* sent again: nothing to copy */
    }
    if (s == NULL && t->families.n >= t->max_families) {
        snprintf(t->why, sizeof(t->why),
                 "the agent defines more than %zu families (the collector's "
                 "max_families_per_agent)",
                 t->max_families);
        return KVL_EINVAL;
    }
    size_t strs = strlen(f->name ? f->name : "") + 1;
    for (size_t i = 0; i < f->n; i++) {
        strs += strlen(f->metrics[i] ? f->metrics[i] : "") + 1;
    }
    size_t bytes =
        sizeof(fam_rec_t) + f->n * (sizeof(char *) + sizeof(kvl_kind_t) + sizeof(bool)) + strs;
    fam_rec_t *r = malloc(bytes);
    if (r == NULL || map_reserve(t, &t->families, 1) != 0) {
        free(r);
        snprintf(t->why, sizeof(t->why), "out of memory");
        return KVL_ENOMEM;
    }
    const char **metrics = (const char **)(r + 1);
    kvl_kind_t *kinds = (kvl_kind_t *)(metrics + f->n);
    bool *reals = (bool *)(kinds + f->n);
    char *p = (char *)(reals + f->n);
    r->refs = 1;
    r->bytes = bytes;
    r->f =
        (kvl_family_t){.id = f->id, .n = f->n, .metrics = metrics, .kinds = kinds, .reals = reals};
    size_t l = strlen(f->name ? f->name : "") + 1;
    memcpy(p, f->name ? f->name : "", l);
    r->f.name = p;
    p += l;
    for (size_t i = 0; i < f->n; i++) {
        l = strlen(f->metrics[i] ? f->metrics[i] : "") + 1;
        memcpy(p, f->metrics[i] ? f->metrics[i] : "", l);
        metrics[i] = p;
        p += l;
        kinds[i] = f->kinds[i];
        reals[i] = f->reals != NULL && f->reals[i];
    }
    s = map_put(&t->families, f->id);
    if (s->p != NULL) {
        fam_unref(t, s->p); /* changed: blocks expanded from the old one keep it */
    }
    s->p = r;
    t->bytes += bytes;
    return 0;
}

static bool def_eq(const kvl_series_def_t *a, const kvl_series_def_t *b)
{
    return a->id == b->id && a->scope == b->scope && a->kind == b->kind &&
           a->interval_s == b->interval_s && a->real == b->real && a->family == b->family &&
           str_eq(a->device, b->device) && str_eq(a->instance, b->instance) &&
           (a->family != 0 || str_eq(a->metric, b->metric));
}

/* A definition becomes a block: one entry for a single series, one per metric for a
 * family's, so a sample's id finds its metric. The same definition sent again (every id
 * still its) changes nothing; a different one replaces the entries of its ids. */
static int store_def(defs_table_t *t, const kvl_series_def_t *d)
{
    fam_rec_t *fam = NULL;
    uint32_t n = 1;
    if (d->family != 0) {
        id_slot_t *fs = map_find(&t->families, d->family);
        if (fs == NULL) {
            snprintf(t->why, sizeof(t->why),
                     "definition of series %" PRIu32 " names an unknown family %" PRIu32, d->id,
                     d->family);
            return KVL_EPROTO;
        }
        fam = fs->p;
        n = (uint32_t)fam->f.n;
    }
    if (d->id == 0 || d->id > UINT32_MAX - (n - 1)) {
        snprintf(t->why, sizeof(t->why), "series id %" PRIu32 " out of range", d->id);
        return KVL_EPROTO;
    }
    int rc = check_name(t, "device", d->device);
    if (rc == 0) {
        rc = check_name(t, "instance", d->instance);
    }
    if (rc == 0 && d->family == 0) {
        rc = check_name(t, "metric", d->metric);
    }
    if (rc != 0) {
        return rc;
    }
    /* sent again? */
    id_slot_t *s0 = map_find(&t->series, d->id);
    if (s0 != NULL && s0->idx == 0) {
        def_block_t *b = s0->p;
        bool same = b->n == n && b->fam == fam && def_eq(&b->orig, d);
        for (uint32_t i = 1; i < n && same; i++) {
            const id_slot_t *s = map_find(&t->series, d->id + i);
            same = s != NULL && s->p == b && s->idx == i;
        }
        if (same) {
            return 0;
        }
    }
    size_t fresh = 0;
    for (uint32_t i = 0; i < n; i++) {
        fresh += map_find(&t->series, d->id + i) == NULL;
    }
    if (t->series.n + fresh > t->max_series) {
        snprintf(t->why, sizeof(t->why),
                 "the agent defines more than %zu series (the collector's "
                 "max_series_per_agent)",
                 t->max_series);
        return KVL_EINVAL;
    }
    size_t ldev = strlen(d->device ? d->device : "") + 1;
    size_t linst = strlen(d->instance ? d->instance : "") + 1;
    size_t lmet = d->family == 0 ? strlen(d->metric ? d->metric : "") + 1 : 1;
    size_t bytes = sizeof(def_block_t) + n * sizeof(kvl_series_def_t) + ldev + linst + lmet;
    def_block_t *b = malloc(bytes);
    if (b == NULL || map_reserve(t, &t->series, fresh) != 0) {
        free(b);
        snprintf(t->why, sizeof(t->why), "out of memory");
        return KVL_ENOMEM;
    }
    char *p = (char *)&b->defs[n];
    memcpy(p, d->device ? d->device : "", ldev);
    memcpy(p + ldev, d->instance ? d->instance : "", linst);
    memcpy(p + ldev + linst, d->family == 0 && d->metric ? d->metric : "", lmet);
    b->refs = 0;
    b->bytes = bytes;
    b->fam = fam;
    b->n = n;
    b->orig = *d;
    b->orig.device = p;
    b->orig.instance = p + ldev;
    b->orig.metric = p + ldev + linst;
    /* Labels are descriptive: the archives do not need them, and the sinks get them with the
     * batch that carries the definition (the inventory keeps them, collector/inventory/). */
    b->orig.labels = NULL;
    b->orig.n_labels = 0;
    for (uint32_t i = 0; i < n; i++) {
        b->defs[i] = b->orig;
        b->defs[i].id = d->id + i;
        if (fam != NULL) {
            b->defs[i].metric = fam->f.metrics[i];
            b->defs[i].kind = fam->f.kinds[i];
            b->defs[i].real = fam->f.reals[i];
        }
    }
    if (fam != NULL) {
        fam->refs++;
    }
    t->bytes += bytes;
    b->prev = t->last;
    b->next = NULL;
    if (t->last) {
        t->last->next = b;
    } else {
        t->first = b;
    }
    t->last = b;
    for (uint32_t i = 0; i < n; i++) {
        id_slot_t *s = map_put(&t->series, d->id + i);
        if (s->p != NULL) {
            block_unref(t, s->p); /* its old definition: freed with its last id */
        }
        s->p = b;
        s->idx = i;
        b->refs++;
    }
    return 0;
}

/* Families first, then the definitions that may name them. Returns 0, or a negative code
 * with *why saying what was wrong: KVL_EINVAL for definitions the collector refuses (a
 * limit, a name that cannot become a file), others for a broken message. */
int ingest_store_defs(defs_table_t *t, const kvl_family_t *f, size_t nf, const kvl_series_def_t *d,
                      size_t nd, const char **why)
{
    int rc = 0;
    for (size_t i = 0; i < nf && rc == 0; i++) {
        rc = store_family(t, &f[i]);
    }
    for (size_t i = 0; i < nd && rc == 0; i++) {
        rc = store_def(t, &d[i]);
    }
    *why = t->why;
    return rc;
}

/* The whole table as one SeriesDefs payload (a checkpoint): the families, and the
 * definitions in the order received, so storing them again gives the same table. Returns 0
 * or KVL_ENOMEM. */
int ingest_defs_encode(const defs_table_t *t, kvl_buf_t *out)
{
    size_t nf = t->families.n, nd = 0;
    for (const def_block_t *b = t->first; b != NULL; b = b->next) {
        nd++;
    }
    kvl_family_t *fams = calloc(nf ? nf : 1, sizeof(*fams));
    kvl_series_def_t *defs = calloc(nd ? nd : 1, sizeof(*defs));
    int rc = fams && defs ? 0 : KVL_ENOMEM;
    if (rc == 0) {
        nf = nd = 0;
        for (size_t i = 0; i < t->families.cap; i++) {
            if (t->families.slots[i].id != 0) {
                fams[nf++] = ((const fam_rec_t *)t->families.slots[i].p)->f;
            }
        }
        for (const def_block_t *b = t->first; b != NULL; b = b->next) {
            defs[nd++] = b->orig;
        }
        kvl_msg_t m = {.type = KVL_MSG_SERIES_DEFS};
        m.u.series_defs.defs = defs;
        m.u.series_defs.n = nd;
        m.u.series_defs.families = fams;
        m.u.series_defs.n_families = nf;
        rc = kvl_wire_encode(&m, out);
        if (rc == 0) {
            kvl_buf_consume(out, KVL_FRAME_HEADER); /* the record holds the payload only */
        }
    }
    free(fams);
    free(defs);
    return rc;
}

/* ----------------------------------------------------------------- batches checked ----- */

/* Whether every sample of the batch has a definition and every group's values add up, so
 * a batch that does not fit its definitions closes the connection before anything is
 * written. *samples counts the values. Returns 0 or KVL_EPROTO with err saying which. */
int ingest_batch_check(defs_table_t *t, const kvl_batch_t *b, uint64_t *samples, char *err,
                       size_t errlen)
{
    for (size_t g = 0; g < b->n_groups; g++) {
        kvl_group_iter_t it;
        kvl_sample_t s;
        int rc;
        kvl_group_iter_init(&it, &b->groups[g]);
        while ((rc = kvl_group_iter_next(&it, lookup_def, t, &s)) == 1) {
            (*samples)++;
        }
        if (rc < 0) {
            snprintf(err, errlen,
                     "group %zu refers to an undefined series or its values do not "
                     "add up",
                     g);
            return KVL_EPROTO;
        }
    }
    return 0;
}

static const kvl_series_def_t *view_def(const void *table, uint32_t id)
{
    return ingest_defs_find(table, id);
}

/* The family of the block def came from (the one its metric was expanded from). */
static const kvl_family_t *view_family(const void *table, const kvl_series_def_t *def)
{
    const id_slot_t *s =
        def->family != 0 ? map_find(&((const defs_table_t *)table)->series, def->id) : NULL;
    const def_block_t *b = s != NULL ? s->p : NULL;
    return b != NULL && b->fam != NULL ? &b->fam->f : NULL;
}

/* The table as sinks see it (sink.h). */
kvl_sink_defs_t ingest_defs_view(const defs_table_t *t)
{
    return (kvl_sink_defs_t){.table = t, .def = view_def, .family = view_family};
}

/* Groups timestamped beyond future_tolerance ahead of the clock, or more than
 * max_sample_age behind it, are dropped from b (counted and logged, at most a line a
 * minute of each kind): one such sample would poison an archive for good (every later
 * update older than it). Decided at arrival only: the journal gets the batch without
 * them, so a replay never judges it against a later clock. When a group went, *payload and
 * *len are pointed at the batch encoded again (valid until the next call). Returns 0 or
 * KVL_ENOMEM. */
int ingest_batch_filter_times(kvl_ingest_t *in, agent_state_t *a, kvl_batch_t *b,
                              const uint8_t **payload, size_t *len)
{
    static kvl_log_limit_t future_lim = KVL_LOG_LIMIT_INIT(60000);
    static kvl_log_limit_t old_lim = KVL_LOG_LIMIT_INIT(60000);
    int64_t now = kvl_now_ms();
    int64_t hi = now + in->cfg->future_tolerance_ms, lo = now - in->cfg->max_sample_age_ms;
    kvl_group_t *g = (kvl_group_t *)b->groups; /* the decoded message's own */
    size_t kept = 0;
    uint64_t future = 0, old = 0;
    int64_t t_future = 0, t_old = 0;
    for (size_t i = 0; i < b->n_groups; i++) {
        if (g[i].time_ms > hi) {
            future += g[i].n_ids;
            t_future = g[i].time_ms;
        } else if (g[i].time_ms < lo) {
            old += g[i].n_ids;
            t_old = g[i].time_ms;
        } else {
            g[kept++] = g[i];
        }
    }
    if (kept == b->n_groups) {
        return 0;
    }
    b->n_groups = kept;
    in->stats.samples_future += future;
    in->stats.samples_too_old += old;
    if (future > 0) {
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &future_lim, "ingest", a->id,
                        "batch %" PRIu64 ": %" PRIu64 " samples refused, timestamped %" PRId64
                        " s ahead of this collector's clock (future_tolerance %" PRId64 " s)",
                        b->seq, future, (t_future - now) / 1000,
                        in->cfg->future_tolerance_ms / 1000);
    }
    if (old > 0) {
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &old_lim, "ingest", a->id,
                        "batch %" PRIu64 ": %" PRIu64 " samples refused, timestamped %" PRId64
                        " s ago (max_sample_age %" PRId64 " s)",
                        b->seq, old, (now - t_old) / 1000, in->cfg->max_sample_age_ms / 1000);
    }
    if (in->times_buf.cap > (1u << 20)) {
        kvl_buf_free(&in->times_buf); /* a large batch's room is not kept */
    }
    kvl_buf_reset(&in->times_buf);
    kvl_msg_t m = {.type = KVL_MSG_BATCH};
    m.u.batch = *b;
    int rc = kvl_wire_encode(&m, &in->times_buf);
    if (rc != 0) {
        return KVL_ENOMEM;
    }
    *payload = in->times_buf.data + KVL_FRAME_HEADER;
    *len = in->times_buf.len - KVL_FRAME_HEADER;
    return 0;
}

/* ----------------------------------------------------------------- agents gone --------- */

/* Every so often: the definitions of an agent without a connection and without batches
 * waiting go once it has been so for agent_state_ttl (it sends them again when it comes
 * back: a new connection starts a new table); its positions stay, to recognise resends. */
void ingest_sweep(kvl_ingest_t *in)
{
    uint64_t now = uv_now(in->loop) | 1; /* 0 means "not idle" */
    for (agent_state_t *a = in->agents; a != NULL; a = a->next) {
        if (a->conn != NULL || a->q_len > 0 || a->writing || a->defs == NULL) {
            a->idle_since_ms = 0;
        } else if (a->idle_since_ms == 0) {
            a->idle_since_ms = now;
        } else if (now - a->idle_since_ms >= (uint64_t)in->cfg->agent_state_ttl_ms) {
            KVL_LOG_DEBUG("ingest", a->id,
                          "gone for %" PRIu64 " s: its definitions released (%zu series)",
                          (now - a->idle_since_ms) / 1000, ingest_defs_series(a->defs));
            ingest_defs_free(a->defs);
            a->defs = NULL;
            a->idle_since_ms = 0;
        }
    }
}

static void on_sweep(uv_timer_t *t)
{
    ingest_sweep(t->data);
}

/* Every half agent_state_ttl (50 ms to 1 min): a definitions table goes between ttl and
 * ttl + that after its agent left. */
void ingest_sweep_start(kvl_ingest_t *in)
{
    uint64_t every = (uint64_t)in->cfg->agent_state_ttl_ms / 2;
    every = every < 50 ? 50 : every > 60000 ? 60000 : every;
    uv_timer_init(in->loop, &in->sweep); /* cannot fail on a live loop */
    in->sweep.data = in;
    in->sweep_open = true;
    uv_timer_start(&in->sweep, on_sweep, every, every);
}

static void on_sweep_closed(uv_handle_t *h)
{
    kvl_ingest_t *in = h->data;
    in->sweep_open = false;
    kvl_buf_free(&in->times_buf);
    ingest_maybe_free(in);
}

void ingest_sweep_stop(kvl_ingest_t *in)
{
    if (in->sweep_open && !uv_is_closing((uv_handle_t *)&in->sweep)) {
        uv_close((uv_handle_t *)&in->sweep, on_sweep_closed);
    }
}

/* The event's log line: a warning from severity warning up, unless late (news to nobody:
 * info, and says so); a data event (kvl_event_is_data: top lists every interval) at debug. */
void ingest_log_event(const char *agent, const char *site, const kvl_event_t *e, bool late)
{
    static const char *const sev[] = {"", "info", "warning", "critical"};
    int s = e->severity >= 1 && e->severity <= 3 ? (int)e->severity : 0;
    if (kvl_event_is_data(e->kind)) {
        KVL_LOG_DEBUG("event", e->device, "%s (%s%s, agent %s, site %s): %s", e->kind, sev[s],
                      late ? ", late" : "", agent, site, e->text);
    } else if (e->severity >= KVL_SEV_WARNING && !late) {
        KVL_LOG_WARN("event", e->device, "%s (%s, agent %s, site %s): %s", e->kind, sev[s], agent,
                     site, e->text);
    } else {
        KVL_LOG_INFO("event", e->device, "%s (%s%s, agent %s, site %s): %s", e->kind, sev[s],
                     late ? ", late" : "", agent, site, e->text);
    }
}

void ingest_queue_push(agent_state_t *a, pending_t *p)
{
    if (p->decoded) {
        p->counted = true;
        a->q_mem++;
        a->in->mem_samples += p->samples;
    }
    if (a->q_tail) {
        a->q_tail->next = p;
    } else {
        a->q_head = p;
    }
    a->q_tail = p;
    a->q_len++;
}

/* Whether a new batch of the agent is kept decoded in memory or spilled (read back from
 * the journal later): memory stays bounded however far the sinks lag. */
bool ingest_keep_in_memory(const agent_state_t *a, size_t samples)
{
    return a->q_mem < MEM_AGENT_HIGH && a->in->mem_samples + samples <= MEM_SAMPLES_HIGH;
}

/* Turns p into a spilled entry: the decoded batch goes, its place in the journal stays. */
void ingest_spill(pending_t *p, uint64_t data_off, size_t data_len)
{
    kvl_msg_clear(&p->msg);
    p->decoded = false;
    p->data_off = data_off;
    p->data_len = data_len;
}

void ingest_pending_free(pending_t *p)
{
    ingest_defs_free(p->defs);
    kvl_msg_clear(&p->msg);
    free(p);
}
