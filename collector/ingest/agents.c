/*
 * agents.c — the ingest's per-agent state: agents by id, the series definitions of a
 * connection (dense tables by id, families expanded) as sinks see them, batches checked
 * against them, the event log line, and the queue of an agent's batches waiting for the
 * sinks (decoded in memory, or spilled to the journal).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_internal.h"
#include "kvl.h"
#include "log.h"

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

defs_table_t *ingest_defs_new(const char *site)
{
    defs_table_t *t = calloc(1, sizeof(*t));
    if (t != NULL) {
        t->refs = 1;
        snprintf(t->site, sizeof(t->site), "%s", site);
    }
    return t;
}

/* Drops a reference; frees with the last. NULL-safe. */
void ingest_defs_free(defs_table_t *t)
{
    if (t == NULL || --t->refs > 0) {
        return;
    }
    kvl_arena_free(&t->arena);
    free(t->defs);
    free(t->families);
    free(t->orig);
    free(t);
}

static const kvl_series_def_t *lookup_def(void *ctx, uint32_t id)
{
    defs_table_t *t = ctx;
    return id < t->n_defs ? t->defs[id] : NULL;
}

/* Makes the pointer array arr (n entries) hold index idx, new entries NULL. Evaluates to 0
 * or KVL_ENOMEM. */
#define GROW(arr, n, idx, first) grow_ptrs((void **)&(arr), sizeof(*(arr)), &(n), (idx), (first))

static int grow_ptrs(void **arr, size_t size, size_t *n, size_t idx, size_t first)
{
    if (idx < *n) {
        return 0;
    }
    size_t m = *n ? *n : first;
    while (m <= idx) {
        m *= 2;
    }
    char *na = realloc(*arr, m * size);
    if (na == NULL) {
        return KVL_ENOMEM;
    }
    memset(na + *n * size, 0, (m - *n) * size);
    *arr = na;
    *n = m;
    return 0;
}

static int store_family(defs_table_t *t, const kvl_family_t *f)
{
    if (f->id == 0 || f->id > MAX_FAMILY_ID) {
        return KVL_EPROTO;
    }
    if (GROW(t->families, t->n_families, f->id, 16) != 0) {
        return KVL_ENOMEM;
    }
    kvl_arena_t *a = &t->arena;
    kvl_family_t *copy = kvl_arena_alloc(a, sizeof(*copy));
    const char **metrics = kvl_arena_alloc(a, (f->n ? f->n : 1) * sizeof(*metrics));
    kvl_kind_t *kinds = kvl_arena_alloc(a, (f->n ? f->n : 1) * sizeof(*kinds));
    bool *reals = kvl_arena_alloc(a, (f->n ? f->n : 1) * sizeof(*reals));
    if (copy == NULL || metrics == NULL || kinds == NULL || reals == NULL ||
        (copy->name = kvl_arena_strdup(a, f->name)) == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < f->n; i++) {
        if ((metrics[i] = kvl_arena_strdup(a, f->metrics[i])) == NULL) {
            return KVL_ENOMEM;
        }
        kinds[i] = f->kinds[i];
        reals[i] = f->reals != NULL && f->reals[i];
    }
    copy->id = f->id;
    copy->n = f->n;
    copy->metrics = metrics;
    copy->kinds = kinds;
    copy->reals = reals;
    t->families[f->id] = copy;
    return 0;
}

static const kvl_family_t *family_of(const defs_table_t *t, const kvl_series_def_t *d)
{
    return d->family != 0 && d->family < t->n_families ? t->families[d->family] : NULL;
}

/* owned: d's strings already live in the table's arena. */
static int store_one_def(defs_table_t *t, const kvl_series_def_t *d, bool owned)
{
    if (d->id == 0 || d->id > MAX_SERIES_ID) {
        return KVL_EPROTO;
    }
    if (GROW(t->defs, t->n_defs, d->id, 1024) != 0) {
        return KVL_ENOMEM;
    }
    kvl_arena_t *a = &t->arena;
    kvl_series_def_t *copy = kvl_arena_alloc(a, sizeof(*copy));
    if (copy == NULL) {
        return KVL_ENOMEM;
    }
    *copy = *d;
    if (!owned) {
        copy->device = kvl_arena_strdup(a, d->device);
        copy->instance = kvl_arena_strdup(a, d->instance);
        copy->metric = kvl_arena_strdup(a, d->metric);
    }
    copy->labels = NULL; /* labels are descriptive; the archives do not need them */
    copy->n_labels = 0;
    if (copy->device == NULL || copy->instance == NULL || copy->metric == NULL) {
        return KVL_ENOMEM;
    }
    t->defs[d->id] = copy;
    return 0;
}

/* A family's definition becomes one entry per metric, so a sample's id finds its metric;
 * the definition as received is kept too (orig), for the journal's checkpoints. Ids are
 * stable for an agent's lifetime, so one entry per id is enough. */
static int store_def(defs_table_t *t, const kvl_series_def_t *d)
{
    if (d->id == 0 || d->id > MAX_SERIES_ID) {
        return KVL_EPROTO;
    }
    size_t n_orig = t->n_defs;
    if (GROW(t->orig, n_orig, d->id, 1024) != 0) {
        return KVL_ENOMEM;
    }
    if (d->family == 0) {
        int rc = store_one_def(t, d, false);
        if (rc == 0) {
            t->orig[d->id] = t->defs[d->id];
        }
        return rc;
    }
    const kvl_family_t *f = family_of(t, d);
    if (f == NULL) {
        return KVL_EPROTO;
    }
    kvl_series_def_t *base = kvl_arena_alloc(&t->arena, sizeof(*base));
    if (base == NULL) {
        return KVL_ENOMEM;
    }
    *base = *d;
    base->device = kvl_arena_strdup(&t->arena, d->device);
    base->instance = kvl_arena_strdup(&t->arena, d->instance);
    base->metric = "";
    base->labels = NULL;
    base->n_labels = 0;
    if (base->device == NULL || base->instance == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < f->n; i++) {
        kvl_series_def_t one = *base;
        one.id = d->id + (uint32_t)i;
        one.metric = f->metrics[i];
        one.kind = f->kinds[i];
        one.real = f->reals[i];
        int rc = store_one_def(t, &one, true);
        if (rc != 0) {
            return rc;
        }
    }
    /* defs grew past orig's size: keep them the same length */
    if (GROW(t->orig, n_orig, t->n_defs - 1, 1024) != 0) {
        return KVL_ENOMEM;
    }
    t->orig[d->id] = base;
    return 0;
}

/* Families first, then the definitions that may name them. Returns 0, or a negative code
 * with *why saying what was wrong. */
int ingest_store_defs(defs_table_t *t, const kvl_family_t *f, size_t nf, const kvl_series_def_t *d,
                      size_t nd, const char **why)
{
    int rc = 0;
    for (size_t i = 0; i < nf && rc == 0; i++) {
        rc = store_family(t, &f[i]);
        *why = rc == KVL_ENOMEM ? "out of memory" : "family id out of range";
    }
    for (size_t i = 0; i < nd && rc == 0; i++) {
        rc = store_def(t, &d[i]);
        *why = rc == KVL_ENOMEM                           ? "out of memory"
               : d[i].family != 0 && !family_of(t, &d[i]) ? "definition names an unknown family"
                                                          : "series id out of range";
    }
    return rc;
}

/* The whole table as one SeriesDefs payload (a checkpoint). Returns 0 or KVL_ENOMEM. */
int ingest_defs_encode(const defs_table_t *t, kvl_buf_t *out)
{
    size_t nf = 0, nd = 0;
    for (size_t i = 0; i < t->n_families; i++) {
        nf += t->families[i] != NULL;
    }
    for (size_t i = 0; i < t->n_defs && t->orig != NULL; i++) {
        nd += t->orig[i] != NULL;
    }
    kvl_family_t *fams = calloc(nf ? nf : 1, sizeof(*fams));
    kvl_series_def_t *defs = calloc(nd ? nd : 1, sizeof(*defs));
    int rc = fams && defs ? 0 : KVL_ENOMEM;
    if (rc == 0) {
        nf = nd = 0;
        for (size_t i = 0; i < t->n_families; i++) {
            if (t->families[i] != NULL) {
                fams[nf++] = *t->families[i];
            }
        }
        for (size_t i = 0; i < t->n_defs && t->orig != NULL; i++) {
            if (t->orig[i] != NULL) {
                defs[nd++] = *t->orig[i];
            }
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

/* The table as sinks see it (sink.h). */
kvl_sink_defs_t ingest_defs_view(const defs_table_t *t)
{
    return (kvl_sink_defs_t){.defs = (const kvl_series_def_t *const *)t->defs,
                             .n_defs = t->n_defs,
                             .families = (const kvl_family_t *const *)t->families,
                             .n_families = t->n_families};
}

void ingest_log_events(const char *agent, const char *site, const kvl_batch_t *b)
{
    static const char *const sev[] = {"", "info", "warning", "critical"};
    for (size_t i = 0; i < b->n_events; i++) {
        const kvl_event_t *e = &b->events[i];
        int s = e->severity >= 1 && e->severity <= 3 ? (int)e->severity : 0;
        if (e->severity >= KVL_SEV_WARNING) {
            KVL_LOG_WARN("event", e->device, "%s (%s, agent %s, site %s): %s", e->kind, sev[s],
                         agent, site, e->text);
        } else {
            KVL_LOG_INFO("event", e->device, "%s (%s, agent %s, site %s): %s", e->kind, sev[s],
                         agent, site, e->text);
        }
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
