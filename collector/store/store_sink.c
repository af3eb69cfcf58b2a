/*
 * store_sink.c — the RRD store as a sink (sink.h): a batch becomes a store job (one row
 * per archive file and instant: per device, scope and instance within a group) that runs
 * on the thread pool; its result goes back to the ingest through the sink's `done`. A job
 * the file system stopped (result.retry: read-only, full, failing) asks for the batch again
 * (sink.h); the updates it wrote before come back as stale then, which is expected.
 * Archives to move for the agent (an interface renamed, store_move.c) are moved first, on
 * the thread pool, and the job submitted after them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "log.h"
#include "sink.h"
#include "store.h"
#include "store_int.h"

typedef struct store_call {
    kvl_sink_done_cb done;
    void *token;
    char agent[256];
    kvl_store_t *store;
    kvl_store_job_t *job; /* while the agent's archive moves run first */
} store_call_t;

/* Turns a batch into store rows: one row per (device, scope, instance) within a group.
 * Returns 0, KVL_ENOMEM, or KVL_EPROTO for a sample without a definition (the ingest
 * checked the batch already). */
static int batch_to_job(const kvl_sink_defs_t *t, const char *agent_id, const char *site,
                        const kvl_batch_t *b, kvl_store_job_t *job)
{
    kvl_store_value_t *vals = NULL;
    const kvl_series_def_t **owners = NULL;
    size_t cap = 0;
    int rc = 0;
    for (size_t g = 0; g < b->n_groups && rc == 0; g++) {
        const kvl_group_t *grp = &b->groups[g];
        if (grp->n_ids > cap) {
            cap = grp->n_ids;
            free(vals);
            free(owners);
            vals = malloc(cap * sizeof(*vals));
            owners = malloc(cap * sizeof(*owners));
            if (vals == NULL || owners == NULL) {
                rc = KVL_ENOMEM;
                break;
            }
        }
        kvl_group_iter_t it;
        kvl_sample_t s;
        size_t n = 0;
        kvl_group_iter_init(&it, grp);
        while ((rc = kvl_group_iter_next(&it, kvl_sink_def, (void *)t, &s)) == 1) {
            if (s.def->scope >= KVL_SCOPE_FIRST_LATER && s.def->scope != KVL_SCOPE_CAPTURE) {
                continue; /* neighbours have no archive (the inventory keeps them) */
            }
            vals[n] = (kvl_store_value_t){.metric = s.def->metric,
                                          .unknown = s.unknown,
                                          .real = s.def->real,
                                          .value = s.value,
                                          .real_value = s.real};
            owners[n] = s.def;
            n++;
        }
        if (rc < 0) {
            rc = KVL_EPROTO;
            break;
        }
        rc = 0;
        /* Rows: consecutive samples of the same file, in order; samples of one file that
         * are not adjacent start another row (still correct, only less compact). */
        size_t start = 0;
        for (size_t i = 1; i <= n && rc == 0; i++) {
            if (i < n && owners[i]->scope == owners[start]->scope &&
                strcmp(owners[i]->device, owners[start]->device) == 0 &&
                strcmp(owners[i]->instance, owners[start]->instance) == 0) {
                continue;
            }
            /* An agent's own statistics, its link measurements and its capture figures are
             * filed under its authenticated id, whatever the definition says. */
            kvl_scope_t sc = owners[start]->scope;
            const char *device =
                sc == KVL_SCOPE_AGENT || sc == KVL_SCOPE_LINK || sc == KVL_SCOPE_CAPTURE
                    ? agent_id
                    : owners[start]->device;
            kvl_store_row_t row = {.site = site,
                                   .device = device,
                                   .scope = owners[start]->scope,
                                   .instance = owners[start]->instance,
                                   .family = kvl_sink_family(t, owners[start]),
                                   .interval_s = owners[start]->interval_s,
                                   .time_ms = grp->time_ms,
                                   .values = vals + start,
                                   .n_values = i - start};
            rc = kvl_store_job_add(job, &row);
            start = i;
        }
    }
    free(vals);
    free(owners);
    return rc;
}

static void on_stored(void *arg, const kvl_store_result_t *r)
{
    store_call_t *c = arg;
    if (r->created > 0) {
        KVL_LOG_INFO("ingest", c->agent, "created %zu archive files", r->created);
    }
    kvl_sink_result_t res = {.rows = r->rows,
                             .values = r->values,
                             .stale = r->stale,
                             .errors = r->errors,
                             .retry = r->retry};
    if (r->retry > 0) {
        snprintf(res.why, sizeof(res.why), "%s", r->why);
    }
    kvl_sink_done_cb done = c->done;
    void *token = c->token;
    free(c);
    done(token, &res);
}

/* The batch is not taken now (an archive's move failed for now, or could not start): it is
 * asked again (sink.h, retry). */
static void give_back(store_call_t *c, size_t rows, const char *why)
{
    kvl_sink_result_t res = {.retry = rows > 0 ? rows : 1};
    snprintf(res.why, sizeof(res.why), "%s", why);
    kvl_sink_done_cb done = c->done;
    void *token = c->token;
    free(c);
    done(token, &res);
}

/* The agent's archive moves ran (store_move.c): now its rows, or the batch again later. */
static void after_moves(void *arg, bool failed, const char *why)
{
    store_call_t *c = arg;
    kvl_store_job_t *job = c->job;
    c->job = NULL;
    size_t rows = kvl_store_job_rows(job);
    if (failed) {
        kvl_store_job_free(job);
        give_back(c, rows, why);
        return;
    }
    int rc = kvl_store_submit(c->store, job, on_stored, c); /* takes the job */
    if (rc != 0) {
        give_back(c, rows, "the store cannot take the job now");
    }
}

/* Builds the job at once (nothing of b is kept) and submits it: the store runs one job of
 * an agent at a time because the ingest gives it one batch of an agent at a time. */
static int store_on_batch(void *ctx, const kvl_sink_batch_t *b, kvl_sink_done_cb done, void *token)
{
    kvl_store_t *store = ctx;
    store_call_t *c = calloc(1, sizeof(*c));
    kvl_store_job_t *job = kvl_store_job_new();
    int rc = c != NULL && job != NULL ? batch_to_job(b->defs, b->agent, b->site, b->batch, job)
                                      : KVL_ENOMEM;
    if (rc != 0) {
        kvl_store_job_free(job);
        free(c);
        return rc;
    }
    c->done = done;
    c->token = token;
    c->store = store;
    snprintf(c->agent, sizeof(c->agent), "%s", b->agent);
    /* An interface renamed on its device: its archive follows first (store.h). */
    c->job = job;
    rc = store_moves_run(store, b->agent, after_moves, c);
    if (rc != 0) {
        if (rc < 0) {
            size_t rows = kvl_store_job_rows(job);
            kvl_store_job_free(job);
            give_back(c, rows, "an archive's move cannot start now");
        }
        return 0;
    }
    c->job = NULL;
    rc = kvl_store_submit(store, job, on_stored, c); /* takes the job, also on failure */
    if (rc != 0) {
        free(c);
    }
    return rc;
}

static uint64_t store_durable_after(void *ctx)
{
    return kvl_store_durable_after(ctx);
}

const kvl_sink_t kvl_store_sink = {
    .name = "rrd store", .on_batch = store_on_batch, .durable_after = store_durable_after};
