/*
 * store.c — archive files for rows of samples, written on the thread pool (see store.h).
 *
 * The archive layout (which data sources a file has) is fixed per scope here; a metric
 * outside it is counted as skipped rather than guessed at. Each row becomes one
 * rrd_update with a template naming just the data sources present, so a metric a device
 * does not have stays unknown in the file.
 *
 * Failures are of two kinds (rrd_store.h): one that can pass (KVL_RRD_AGAIN, or a reader's
 * lock held past BUSY_WAIT_MS) stops the job at that row and says why in the result, for
 * the caller to run it again later; one that cannot is counted and the job goes on, and its
 * file is logged once (a small set of such files, until an update of it succeeds again).
 *
 * A file made before its scope gained metrics (a family's new metrics, the agent's new
 * statistics) lacks their data sources, and librrd refuses an update naming them ("unknown
 * DS name", or "tmplt contains more DS definitions than RRD"): the store then adds them to
 * the file (complete_archive), once per file and schema in the collector's life, and writes
 * the row; what the file cannot gain is left out of the row, never the whole row.
 *
 * rrdcached mode (store.h, cfg.rrdcached): rows are written the same way, through
 * rrdcached; a job runs between store_redo_enter and store_redo_leave, each update
 * rrdcached took is remembered (store_redo.c), and a checkpoint runs on the pool after a job
 * once `rrdcached_checkpoint` has passed since the last one.
 */
#include "store.h"
#include "store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kvl.h"
#include "log.h"
#include "names.h"
#include "rrd_store.h"

/* How long one update waits for a reader (rrdtool graph, fetch) to release its lock before
 * the job stops there, to be run again later (result.retry). */
#define BUSY_WAIT_MS 10000
/* Files remembered as failing for good (logged once each); beyond it they are logged at
 * every failure. */
#define BAD_FILES_MAX 1024

static const kvl_rrd_ds_t interface_ds[] = {
    {"in_octets", 1},     {"out_octets", 1},     {"in_ucast_pkts", 1}, {"out_ucast_pkts", 1},
    {"in_mcast_pkts", 1}, {"out_mcast_pkts", 1}, {"in_bcast_pkts", 1}, {"out_bcast_pkts", 1},
    {"in_errors", 1},     {"out_errors", 1},     {"in_discards", 1},   {"out_discards", 1},
    {"oper_status", 0},   {"admin_status", 0},   {"speed_bps", 0},
};

static const kvl_rrd_ds_t device_ds[] = {
    {"reachable", 0}, {"uptime_s", 0}, {"response_ms", 0}, {"interfaces", 0}, {"down_reason", 0},
};

/* The agent's own statistics (agent/stats.h), the trap receiver's counters last. */
static const kvl_rrd_ds_t agent_ds[] = {
    {"snmp_requests", 1},
    {"snmp_timeouts", 1},
    {"snmp_varbinds", 1},
    {"snmp_errors", 1},
    {"devices", 0},
    {"devices_down", 0},
    {"inflight", 0},
    {"cycle_ms", 0},
    {"lag_ms", 0},
    {"spool_bytes", 0},
    {"spool_waiting", 0},
    {"spool_dropped", 0},
    {"names_refused", 0},
    {"spool_lost", 0},
    {"traps_received", 1},
    {"traps_v1", 1},
    {"traps_v2c", 1},
    {"traps_v3", 1},
    {"traps_informs", 1},
    {"traps_decode_err", 1},
    {"traps_unknown_src", 1},
    {"traps_bad_community", 1},
    {"traps_v3_auth_fail", 1},
    {"traps_rate_limited", 1},
};

struct kvl_store {
    uv_loop_t *loop;
    char *data_dir;
    kvl_archive_spec_t *archives;
    size_t n_archives;
    char **cfs;
    size_t n_cfs;
    size_t busy;
    uv_mutex_t bad_lock;         /* the pool's threads share the set below */
    uint64_t bad[BAD_FILES_MAX]; /* hashes of the paths of files failing for good */
    size_t n_bad;
    uint64_t *grown; /* under bad_lock: open-addressing set of the hashes of the files (path */
    size_t n_grown;  /* and schema) complete_archive has completed, or tried to for good */
    size_t cap_grown;
    store_moves_t *moves; /* archives to move before an agent's next rows (store_move.c) */
    store_redo_t *redo;   /* rrdcached mode, else NULL */
    int64_t checkpoint_ms;
    uint64_t last_checkpoint_ms; /* on the loop */
    bool checkpointing;          /* a checkpoint is on the pool */
    bool checkpoint_complete;    /* it had rrdcached write every file (its result) */
    uint64_t checkpoints;        /* queued so far: the number of the last one */
    uv_work_t checkpoint;
    kvl_store_durable_fn on_durable;
    void *durable_ctx;
};

struct kvl_store_job {
    uv_work_t work;
    kvl_store_t *store;
    kvl_arena_t arena;
    kvl_store_row_t *rows;
    size_t n_rows, cap_rows;
    kvl_store_result_t result;
    kvl_store_done_cb cb;
    void *arg;
    const kvl_family_t *fam_src; /* the family last copied, and its copy in the arena */
    const kvl_family_t *fam_copy;
};

int kvl_store_new(uv_loop_t *loop, const kvl_store_cfg_t *cfg, kvl_store_t **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    kvl_store_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        goto nomem;
    }
    s->loop = loop;
    if (uv_mutex_init(&s->bad_lock) != 0) {
        free(s);
        s = NULL;
        goto nomem;
    }
    /* remote: the archives' paths are relative to rrdcached's -b folder (kvl_store_path) */
    bool remote = cfg->rrdcached_remote && cfg->rrdcached != NULL && cfg->rrdcached[0] != '\0';
    s->data_dir = strdup(remote ? "" : cfg->data_dir);
    s->archives = calloc(cfg->n_archives ? cfg->n_archives : 1, sizeof(*s->archives));
    while (cfg->consolidations && cfg->consolidations[s->n_cfs] != NULL) {
        s->n_cfs++;
    }
    s->cfs = calloc(s->n_cfs ? s->n_cfs : 1, sizeof(*s->cfs));
    if (s->data_dir == NULL || s->archives == NULL || s->cfs == NULL) {
        goto nomem;
    }
    memcpy(s->archives, cfg->archives, cfg->n_archives * sizeof(*s->archives));
    s->n_archives = cfg->n_archives;
    for (size_t i = 0; i < s->n_cfs; i++) {
        if ((s->cfs[i] = strdup(cfg->consolidations[i])) == NULL) {
            goto nomem;
        }
    }
    if (!remote && mkdir(s->data_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create the data folder: %s", s->data_dir,
                 strerror(errno));
        goto fail;
    }
    if (!remote && access(s->data_dir, W_OK) != 0) {
        snprintf(err, errlen, "%s: cannot write to the data folder: %s", s->data_dir,
                 strerror(errno));
        goto fail;
    }
    if (cfg->rrdcached != NULL && cfg->rrdcached[0] != '\0') {
        kvl_rrd_set_remote(remote);
        if (kvl_rrd_use_daemon(cfg->rrdcached) != 0 ||
            (s->redo = store_redo_new(cfg->rrdcached)) == NULL) {
            goto nomem;
        }
        s->checkpoint_ms =
            cfg->rrdcached_checkpoint_ms > 0 ? cfg->rrdcached_checkpoint_ms : 5 * 60 * 1000;
        s->last_checkpoint_ms = uv_now(loop);
    }
    *out = s;
    return 0;

nomem:
    snprintf(err, errlen, "out of memory creating the store");
    kvl_store_free(s);
    return KVL_ENOMEM;
fail:
    kvl_store_free(s);
    return KVL_EIO;
}

void kvl_store_free(kvl_store_t *s)
{
    if (s == NULL) {
        return;
    }
    free(s->data_dir);
    free(s->archives);
    for (size_t i = 0; i < s->n_cfs; i++) {
        free(s->cfs[i]);
    }
    free(s->cfs);
    free(s->grown);
    store_moves_free(s->moves);
    if (s->redo != NULL) {
        /* what rrdcached holds is written now (the journal, closed already, replays the
         * batches not yet recorded applied at the next start: refused as stale) */
        (void)store_redo_checkpoint(s->redo);
    }
    store_redo_free(s->redo);
    uv_mutex_destroy(&s->bad_lock);
    free(s);
}

size_t kvl_store_busy(const kvl_store_t *s)
{
    return s->busy;
}

void kvl_store_rrdcached(kvl_store_t *s, kvl_store_rrdcached_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    if (s->redo != NULL) {
        store_redo_stats(s->redo, out);
    }
}

store_moves_t **store_moves_slot(kvl_store_t *s)
{
    return &s->moves;
}

uv_loop_t *store_loop(const kvl_store_t *s)
{
    return s->loop;
}

const char *store_data_dir(const kvl_store_t *s)
{
    return s->data_dir;
}

kvl_store_job_t *kvl_store_job_new(void)
{
    return calloc(1, sizeof(kvl_store_job_t));
}

void kvl_store_job_free(kvl_store_job_t *j)
{
    if (j == NULL) {
        return;
    }
    kvl_arena_free(&j->arena);
    free(j->rows);
    free(j);
}

size_t kvl_store_job_rows(const kvl_store_job_t *j)
{
    return j->n_rows;
}

static const kvl_family_t *copy_family(kvl_arena_t *a, const kvl_family_t *f)
{
    kvl_family_t *c = kvl_arena_alloc(a, sizeof(*c));
    const char **metrics = kvl_arena_alloc(a, (f->n ? f->n : 1) * sizeof(*metrics));
    kvl_kind_t *kinds = kvl_arena_alloc(a, (f->n ? f->n : 1) * sizeof(*kinds));
    bool *reals = kvl_arena_alloc(a, (f->n ? f->n : 1) * sizeof(*reals));
    if (c == NULL || metrics == NULL || kinds == NULL || reals == NULL ||
        (c->name = kvl_arena_strdup(a, f->name)) == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < f->n; i++) {
        if ((metrics[i] = kvl_arena_strdup(a, f->metrics[i])) == NULL) {
            return NULL;
        }
        kinds[i] = f->kinds[i];
        reals[i] = f->reals != NULL && f->reals[i];
    }
    c->id = f->id;
    c->n = f->n;
    c->metrics = metrics;
    c->kinds = kinds;
    c->reals = reals;
    return c;
}

int kvl_store_job_add(kvl_store_job_t *j, const kvl_store_row_t *row)
{
    if (j->n_rows == j->cap_rows) {
        size_t cap = j->cap_rows ? j->cap_rows * 2 : 64;
        kvl_store_row_t *r = realloc(j->rows, cap * sizeof(*r));
        if (r == NULL) {
            return KVL_ENOMEM;
        }
        j->rows = r;
        j->cap_rows = cap;
    }
    kvl_arena_t *a = &j->arena;
    kvl_store_row_t r = *row;
    r.site = kvl_arena_strdup(a, row->site);
    r.device = kvl_arena_strdup(a, row->device);
    r.instance = kvl_arena_strdup(a, row->instance);
    if ((row->scope == KVL_SCOPE_GROUP || row->scope == KVL_SCOPE_LINK ||
         row->scope == KVL_SCOPE_CAPTURE) &&
        row->family == NULL) {
        return KVL_EINVAL;
    }
    if (row->family != NULL) {
        /* The job may outlive the definitions it came from (the journal applies batches
         * after their connection has gone), so it keeps its own copy. */
        if (row->family != j->fam_src) {
            j->fam_copy = copy_family(a, row->family);
            j->fam_src = j->fam_copy ? row->family : NULL;
            if (j->fam_copy == NULL) {
                return KVL_ENOMEM;
            }
        }
        r.family = j->fam_copy;
    }
    kvl_store_value_t *v = kvl_arena_alloc(a, sizeof(*v) * (row->n_values ? row->n_values : 1));
    if (r.site == NULL || r.device == NULL || r.instance == NULL || v == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < row->n_values; i++) {
        v[i] = row->values[i];
        /* Metric names are interned by the caller's definitions, which may go away. */
        if ((v[i].metric = kvl_arena_strdup(a, row->values[i].metric)) == NULL) {
            return KVL_ENOMEM;
        }
    }
    r.values = v;
    j->rows[j->n_rows++] = r;
    return 0;
}

int kvl_store_path(const char *data_dir, const char *site, const char *device, kvl_scope_t scope,
                   const char *instance, char *out, size_t outlen)
{
    char s[256], d[512], i[768];
    const char *sep = data_dir[0] != '\0' ? "/" : ""; /* "": relative (remote rrdcached) */
    if (kvl_name_file_safe(site, s, sizeof(s)) < 0 ||
        kvl_name_file_safe(device, d, sizeof(d)) < 0) {
        return KVL_EINVAL;
    }
    int n;
    if (scope == KVL_SCOPE_GROUP) {
        return KVL_EINVAL;
    }
    if (scope == KVL_SCOPE_LINK || scope == KVL_SCOPE_CAPTURE) {
        /* A leading '_' is always escaped in names, so "_links" and "_capture" cannot be
         * devices. */
        if (kvl_name_file_safe(instance, i, sizeof(i)) < 0) {
            return KVL_EINVAL;
        }
        n = snprintf(out, outlen, "%s%s%s/%s/%s/%s.rrd", data_dir, sep, s,
                     scope == KVL_SCOPE_LINK ? "_links" : "_capture", d, i);
        return n < 0 || (size_t)n >= outlen ? KVL_EINVAL : 0;
    }
    if (scope == KVL_SCOPE_INTERFACE) {
        if (kvl_name_file_safe(instance, i, sizeof(i)) < 0) {
            return KVL_EINVAL;
        }
        n = snprintf(out, outlen, "%s%s%s/%s/%s.rrd", data_dir, sep, s, d, i);
    } else if (scope == KVL_SCOPE_AGENT) {
        /* A leading '_' is always escaped in names, so "_agent" cannot be a device. */
        n = snprintf(out, outlen, "%s%s%s/_agent/%s.rrd", data_dir, sep, s, d);
    } else {
        n = snprintf(out, outlen, "%s%s%s/%s.rrd", data_dir, sep, s, d);
    }
    return n < 0 || (size_t)n >= outlen ? KVL_EINVAL : 0;
}

int kvl_store_group_path(const char *data_dir, const char *site, const char *device,
                         const char *group, const char *instance, char *out, size_t outlen)
{
    char s[256], d[512], g[256], i[768];
    const char *sep = data_dir[0] != '\0' ? "/" : "";
    if (group == NULL || group[0] == '\0' || kvl_name_file_safe(site, s, sizeof(s)) < 0 ||
        kvl_name_file_safe(device, d, sizeof(d)) < 0 ||
        kvl_name_file_safe(group, g, sizeof(g)) < 0) {
        return KVL_EINVAL;
    }
    int n;
    if (instance == NULL || instance[0] == '\0') {
        n = snprintf(out, outlen, "%s%s%s/%s/_%s.rrd", data_dir, sep, s, d, g);
    } else {
        if (kvl_name_file_safe(instance, i, sizeof(i)) < 0) {
            return KVL_EINVAL;
        }
        n = snprintf(out, outlen, "%s%s%s/%s/_%s/%s.rrd", data_dir, sep, s, d, g, i);
    }
    return n < 0 || (size_t)n >= outlen ? KVL_EINVAL : 0;
}

static int row_path(const char *data_dir, const kvl_store_row_t *row, char *out, size_t outlen)
{
    if (row->scope == KVL_SCOPE_GROUP) {
        return kvl_store_group_path(data_dir, row->site, row->device,
                                    row->family ? row->family->name : NULL, row->instance, out,
                                    outlen);
    }
    return kvl_store_path(data_dir, row->site, row->device, row->scope, row->instance, out, outlen);
}

/* ----------------------------------------------------------------- worker side --------- */

static int mkdirs_for(char *path)
{
    for (char *p = strchr(path + 1, '/'); p != NULL; p = strchr(p + 1, '/')) {
        *p = '\0';
        int rc = mkdir(path, 0755);
        int e = errno;
        *p = '/';
        if (rc != 0 && e != EEXIST) {
            errno = e;
            return -1;
        }
    }
    return 0;
}

/* A metric group's or a link's data sources: its family's metrics (buf holds
 * KVL_FAMILY_MAX). */
static void schema_of(const kvl_store_row_t *row, kvl_rrd_ds_t *buf, const kvl_rrd_ds_t **ds,
                      size_t *n)
{
    kvl_scope_t scope = row->scope;
    if (scope == KVL_SCOPE_GROUP || scope == KVL_SCOPE_LINK || scope == KVL_SCOPE_CAPTURE) {
        size_t k = 0;
        for (; row->family != NULL && k < row->family->n && k < KVL_FAMILY_MAX; k++) {
            buf[k] =
                (kvl_rrd_ds_t){row->family->metrics[k], row->family->kinds[k] == KVL_KIND_COUNTER};
        }
        *ds = buf;
        *n = k;
    } else if (scope == KVL_SCOPE_INTERFACE) {
        *ds = interface_ds;
        *n = KVL_ARRAY_SIZE(interface_ds);
    } else if (scope == KVL_SCOPE_AGENT) {
        *ds = agent_ds;
        *n = KVL_ARRAY_SIZE(agent_ds);
    } else {
        *ds = device_ds;
        *n = KVL_ARRAY_SIZE(device_ds);
    }
}

static bool in_schema(const kvl_rrd_ds_t *ds, size_t n, const char *metric)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ds[i].name, metric) == 0) {
            return true;
        }
    }
    return false;
}

/* kvl_rrd_update, and in rrdcached mode the update remembered until rrdcached has written
 * it (store_redo.c). */
static kvl_rrd_result_t update_file(kvl_store_t *s, const char *path, const char *tmpl,
                                    const char *update, char *err, size_t errlen)
{
    if (s->redo == NULL) {
        return kvl_rrd_update(path, tmpl, update, err, errlen);
    }
    char sent[4096];
    kvl_rrd_result_t rc = kvl_rrd_update_sent(path, tmpl, update, sent, sizeof(sent), err, errlen);
    if (rc == KVL_RRD_OK && store_redo_add(s->redo, path, sent) != 0) {
        KVL_LOG_WARN("store", path,
                     "out of memory: an update rrdcached took is not kept to "
                     "send again");
    }
    return rc;
}

/* Returns 0, KVL_RRD_AGAIN (why says why: a failure that can pass) or KVL_RRD_ERROR
 * (logged). */
static int create_file(kvl_store_t *s, const kvl_store_row_t *row, char *path,
                       kvl_store_result_t *res, char *why, size_t whylen)
{
    const kvl_rrd_ds_t *ds;
    kvl_rrd_ds_t buf[KVL_FAMILY_MAX];
    size_t n_ds;
    schema_of(row, buf, &ds, &n_ds);
    uint32_t step = row->interval_s ? row->interval_s : 60;
    size_t n_rra = s->n_archives * s->n_cfs;
    kvl_rrd_rra_t *rra = calloc(n_rra ? n_rra : 1, sizeof(*rra));
    if (rra == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVL_RRD_AGAIN;
    }
    size_t k = 0;
    for (size_t i = 0; i < s->n_archives; i++) {
        int64_t step_ms = (int64_t)step * 1000;
        int64_t steps = s->archives[i].resolution_ms ? s->archives[i].resolution_ms / step_ms : 1;
        if (steps < 1) {
            steps = 1;
        }
        int64_t rows = (s->archives[i].retention_ms + steps * step_ms - 1) / (steps * step_ms);
        if (rows < 2) {
            rows = 2;
        }
        for (size_t c = 0; c < s->n_cfs; c++) {
            rra[k++] = (kvl_rrd_rra_t){s->cfs[c], (uint32_t)steps, (uint32_t)rows};
        }
    }
    /* remote: rrdcached makes the folders (its -R) */
    if (!kvl_rrd_remote() && mkdirs_for(path) != 0) {
        int e = errno;
        free(rra);
        snprintf(why, whylen, "cannot create its folder: %s", strerror(e));
        /* A name that is too long or a file in the way stays so; the rest can pass. */
        return e == ENAMETOOLONG || e == ENOTDIR || e == EEXIST || e == ELOOP ? KVL_RRD_ERROR
                                                                              : KVL_RRD_AGAIN;
    }
    char err[512];
    int64_t start = row->time_ms / 1000 - 1;
    kvl_rrd_result_t rc = kvl_rrd_create(path, step, start, ds, n_ds, rra, n_rra, err, sizeof(err));
    free(rra);
    if (rc != KVL_RRD_OK) {
        snprintf(why, whylen, "cannot create archive: %s", err);
        return rc == KVL_RRD_AGAIN ? KVL_RRD_AGAIN : KVL_RRD_ERROR;
    }
    res->created++;
    KVL_LOG_DEBUG("store", path, "created archive (step %us)", step);
    return 0;
}

static uint64_t path_hash(const char *path)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)path; *p != '\0'; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    return h;
}

/* A file fails for good: true the first time (log it), false while it is remembered. */
static bool bad_file_first(kvl_store_t *s, const char *path)
{
    uint64_t h = path_hash(path);
    bool first = true;
    uv_mutex_lock(&s->bad_lock);
    for (size_t i = 0; i < s->n_bad && first; i++) {
        first = s->bad[i] != h;
    }
    if (first && s->n_bad < BAD_FILES_MAX) {
        s->bad[s->n_bad++] = h;
    }
    uv_mutex_unlock(&s->bad_lock);
    return first;
}

/* A file was written: if it failed for good before, it is forgotten (and said so). */
static void bad_file_cleared(kvl_store_t *s, const char *path)
{
    uv_mutex_lock(&s->bad_lock);
    bool found = false;
    if (s->n_bad > 0) {
        uint64_t h = path_hash(path);
        for (size_t i = 0; i < s->n_bad && !found; i++) {
            if (s->bad[i] == h) {
                s->bad[i] = s->bad[--s->n_bad];
                found = true;
            }
        }
    }
    uv_mutex_unlock(&s->bad_lock);
    if (found) {
        KVL_LOG_INFO("store", path, "archive written again");
    }
}

static void failed_for_good(kvl_store_t *s, const char *path, const char *what, const char *err,
                            kvl_store_result_t *res)
{
    res->errors++;
    if (bad_file_first(s, path)) {
        KVL_LOG_ERROR("store", path, "%s: %s (not retried; logged once for this file)", what, err);
    }
}

/* A failure that can pass: the job stops here. */
static void failed_for_now(const char *path, const char *err, kvl_store_result_t *res)
{
    res->retry++;
    if (snprintf(res->why, sizeof(res->why), "%s: %s", path, err) >= (int)sizeof(res->why)) {
        memcpy(res->why + sizeof(res->why) - 4, "...", 4); /* cut: said so */
    }
}

/* --- archives that lack data sources of their scope ------------------------------------ */

/* Files remembered as completed, at most; beyond it a file is examined again (rrd_info) at
 * its next refused update, and left alone when it lacks nothing. */
#define GROWN_MAX (1u << 20)

/* Whether complete_archive has dealt with the file (hash h, never 0) in this collector's
 * life; with mark, remembers it (when there is room). */
static bool grown_seen(kvl_store_t *s, uint64_t h, bool mark)
{
    bool seen = false;
    uv_mutex_lock(&s->bad_lock);
    if (mark && (s->n_grown + 1) * 2 > s->cap_grown && s->n_grown < GROWN_MAX) {
        size_t cap = s->cap_grown ? s->cap_grown * 2 : 1024;
        uint64_t *t = calloc(cap, sizeof(*t));
        for (size_t i = 0; t != NULL && i < s->cap_grown; i++) {
            if (s->grown[i] != 0) {
                size_t k = s->grown[i] & (cap - 1);
                while (t[k] != 0) {
                    k = (k + 1) & (cap - 1);
                }
                t[k] = s->grown[i];
            }
        }
        if (t != NULL) {
            free(s->grown);
            s->grown = t;
            s->cap_grown = cap;
        }
    }
    if (s->cap_grown > 0) {
        size_t k = h & (s->cap_grown - 1);
        while (s->grown[k] != 0 && s->grown[k] != h) {
            k = (k + 1) & (s->cap_grown - 1);
        }
        seen = s->grown[k] == h;
        if (!seen && mark && (s->n_grown + 1) * 2 <= s->cap_grown) {
            s->grown[k] = h;
            s->n_grown++;
        }
    }
    uv_mutex_unlock(&s->bad_lock);
    return seen;
}

/* Takes metric `name` and its value out of the template "a:b:c" and the update "t:1:2:3"
 * (edited in place). False when the template does not name it. */
static bool drop_value(char *tmpl, char *update, const char *name)
{
    size_t nl = strlen(name), idx = 0;
    char *start = tmpl;
    for (;;) {
        char *end = strchr(start, ':');
        size_t len = end != NULL ? (size_t)(end - start) : strlen(start);
        if (len == nl && strncmp(start, name, nl) == 0) {
            if (end != NULL) {
                memmove(start, end + 1, strlen(end + 1) + 1);
            } else {
                start[start > tmpl ? -1 : 0] = '\0'; /* the last: its ':' goes too */
            }
            break;
        }
        if (end == NULL) {
            return false;
        }
        start = end + 1;
        idx++;
    }
    /* The value: field idx + 1 of the update (field 0 is the time). */
    char *f = update;
    for (size_t i = 0; i <= idx && f != NULL; i++) {
        f = strchr(f, ':');
        f = f != NULL ? f + 1 : NULL;
    }
    KVL_ASSERT(f != NULL);
    char *fend = strchr(f, ':');
    if (fend != NULL) {
        memmove(f, fend + 1, strlen(fend + 1) + 1);
    } else {
        f[-1] = '\0';
    }
    return true;
}

/* An update of path was refused because the file lacks a data source the row names (its
 * scope's schema ds[] gained metrics after the file was made). The first time in the
 * collector's life for this file and schema, the missing data sources are added to the file
 * (kvl_rrd_add_ds, one INFO line) and the update is tried again. What the file still lacks
 * (it could not be changed: logged once) is left out of the update, so the rest of the row
 * is written (counted as skipped). tmpl, update and *used are edited to match. Returns the
 * last update's result (KVL_RRD_AGAIN when the file could not be read or changed for a
 * reason that can pass: the row is then tried again later), err its message. */
static kvl_rrd_result_t complete_archive(kvl_store_t *s, const char *path, const kvl_rrd_ds_t *ds,
                                         size_t n_ds, char *tmpl, char *update, size_t *used,
                                         kvl_store_result_t *res, char *err, size_t errlen)
{
    KVL_ASSERT(n_ds <= KVL_FAMILY_MAX);
    uint64_t h = path_hash(path);
    for (size_t i = 0; i < n_ds; i++) { /* the file with this schema */
        h = (h ^ path_hash(ds[i].name)) * 1099511628211ull;
    }
    h = h != 0 ? h : 1;
    bool first = !grown_seen(s, h, false);
    bool missing[KVL_FAMILY_MAX];
    size_t n_missing = 0, n_added = 0;
    char why[512];
    kvl_rrd_result_t arc =
        kvl_rrd_add_ds(path, ds, n_ds, first, missing, &n_missing, &n_added, why, sizeof(why));
    uint64_t waited_ms = 0;
    for (uint64_t pause = 5; arc == KVL_RRD_BUSY && waited_ms < BUSY_WAIT_MS; pause *= 2) {
        pause = pause > 200 ? 200 : pause;
        struct timespec ts = {0, (long)(pause * 1000000u)};
        nanosleep(&ts, NULL);
        waited_ms += pause;
        arc =
            kvl_rrd_add_ds(path, ds, n_ds, first, missing, &n_missing, &n_added, why, sizeof(why));
    }
    if (arc == KVL_RRD_BUSY || arc == KVL_RRD_AGAIN) {
        snprintf(err, errlen, "cannot add the data sources the archive lacks: %s",
                 arc == KVL_RRD_BUSY ? "a reader holds its lock" : why);
        return KVL_RRD_AGAIN;
    }
    if (first) {
        grown_seen(s, h, true);
    }
    if (arc == KVL_RRD_OK && first && n_added > 0) {
        KVL_LOG_INFO("store", path, "added %zu data source%s the archive lacked", n_added,
                     n_added == 1 ? "" : "s");
        kvl_rrd_result_t rc = update_file(s, path, tmpl, update, err, errlen);
        if (rc != KVL_RRD_ERROR || (strstr(err, "unknown DS name") == NULL &&
                                    strstr(err, "more DS definitions than RRD") == NULL)) {
            return rc;
        }
        /* some were not added (a name librrd would not take): what does it lack now? */
        arc =
            kvl_rrd_add_ds(path, ds, n_ds, false, missing, &n_missing, &n_added, why, sizeof(why));
        if (arc == KVL_RRD_OK && n_missing > 0) {
            KVL_LOG_WARN("store", path,
                         "the archive still lacks %zu data source%s (a name librrd does not "
                         "take); those values are left out (logged once for this file)",
                         n_missing, n_missing == 1 ? "" : "s");
        }
    }
    if (arc == KVL_RRD_BUSY || arc == KVL_RRD_AGAIN) {
        snprintf(err, errlen, "cannot read the archive's data sources: %s", why);
        return KVL_RRD_AGAIN;
    }
    if (arc != KVL_RRD_OK && n_missing == 0) {
        return KVL_RRD_ERROR; /* not even readable: err says why the update failed */
    }
    if (arc != KVL_RRD_OK && first) {
        KVL_LOG_WARN("store", path,
                     "cannot add the %zu data source%s the archive lacks: %s; their values are "
                     "left out (logged once for this file)",
                     n_missing, n_missing == 1 ? "" : "s", why);
    }
    for (size_t i = 0; i < n_ds; i++) {
        if (*used > 0 && missing[i] && drop_value(tmpl, update, ds[i].name)) {
            (*used)--;
            res->skipped++;
        }
    }
    return *used > 0 ? update_file(s, path, tmpl, update, err, errlen) : KVL_RRD_OK;
}

/* Writes one row. Returns false when the job must stop here (a failure that can pass). */
static bool write_row(kvl_store_t *s, const kvl_store_row_t *row, kvl_store_result_t *res)
{
    char path[2048];
    if (row_path(s->data_dir, row, path, sizeof(path)) != 0) {
        res->errors++;
        return true;
    }
    const kvl_rrd_ds_t *ds;
    kvl_rrd_ds_t buf[KVL_FAMILY_MAX];
    size_t n_ds;
    schema_of(row, buf, &ds, &n_ds);
    char tmpl[1024], update[2048];
    size_t tl = 0;
    int ul = snprintf(update, sizeof(update), "%" PRId64 ".%03d", row->time_ms / 1000,
                      (int)(row->time_ms % 1000));
    size_t used = 0;
    for (size_t i = 0; i < row->n_values && ul > 0 && (size_t)ul < sizeof(update); i++) {
        const kvl_store_value_t *v = &row->values[i];
        if (!in_schema(ds, n_ds, v->metric)) {
            res->skipped++;
            continue;
        }
        int w = snprintf(tmpl + tl, sizeof(tmpl) - tl, "%s%s", tl ? ":" : "", v->metric);
        if (w < 0 || (size_t)w >= sizeof(tmpl) - tl) {
            break;
        }
        tl += (size_t)w;
        if (v->unknown) {
            w = snprintf(update + ul, sizeof(update) - (size_t)ul, ":U");
        } else if (v->real) {
            w = snprintf(update + ul, sizeof(update) - (size_t)ul, ":%.6f", v->real_value);
        } else {
            w = snprintf(update + ul, sizeof(update) - (size_t)ul, ":%" PRIu64, v->value);
        }
        if (w < 0) {
            break;
        }
        ul += w;
        used++;
    }
    if (used == 0) {
        return true;
    }
    /* The update itself tells whether the file exists (no access() per update: that was
     * 6 % of the collector's time at full load). */
    char err[600];
    kvl_rrd_result_t rc = update_file(s, path, tmpl, update, err, sizeof(err));
    if (rc == KVL_RRD_MISSING) {
        int crc = create_file(s, row, path, res, err, sizeof(err));
        if (crc == KVL_RRD_AGAIN) {
            failed_for_now(path, err, res);
            return false;
        }
        if (crc != 0) {
            failed_for_good(s, path, "cannot create the archive", err, res);
            return true;
        }
        rc = update_file(s, path, tmpl, update, err, sizeof(err));
    }
    if (rc == KVL_RRD_ERROR && (strstr(err, "unknown DS name") != NULL ||
                                strstr(err, "more DS definitions than RRD") != NULL)) {
        rc = complete_archive(s, path, ds, n_ds, tmpl, update, &used, res, err, sizeof(err));
    }
    /* A reader holds the file. Wait here (a pool thread, not the loop) and retry this row
     * before any later one, so the file's updates stay in order. */
    uint64_t waited_ms = 0;
    for (uint64_t pause = 5; rc == KVL_RRD_BUSY && waited_ms < BUSY_WAIT_MS; pause *= 2) {
        if (pause > 200) {
            pause = 200;
        }
        struct timespec ts = {0, (long)(pause * 1000000u)};
        nanosleep(&ts, NULL);
        waited_ms += pause;
        rc = update_file(s, path, tmpl, update, err, sizeof(err));
    }
    if (waited_ms > 0) {
        res->busy_waits++;
        KVL_LOG_DEBUG("store", path, "waited %llums for a reader's lock",
                      (unsigned long long)waited_ms);
    }
    if (rc == KVL_RRD_BUSY) {
        snprintf(err, sizeof(err), "a reader has held its lock for %llu ms",
                 (unsigned long long)waited_ms);
        rc = KVL_RRD_AGAIN;
    }
    if (rc == KVL_RRD_AGAIN) {
        failed_for_now(path, err, res);
        return false;
    }
    if (rc == KVL_RRD_STALE) {
        res->stale++;
        KVL_LOG_DEBUG("store", path, "update refused: %s", err);
    } else if (rc != KVL_RRD_OK &&
               (row->scope == KVL_SCOPE_GROUP || row->scope == KVL_SCOPE_AGENT) &&
               strstr(err, "unknown DS")) {
        /* The group's metrics (or the agent's statistics) changed since the file was made:
         * the batch must still go through, so these values are skipped, and the file named. */
        res->skipped += used;
        if (bad_file_first(s, path)) {
            KVL_LOG_WARN("store", path,
                         "archive lacks a metric of %s %s (%s); move the file aside to start "
                         "one with the current metrics (logged once for this file)",
                         row->family != NULL ? "group" : "the",
                         row->family != NULL ? row->family->name : "agent statistics", err);
        }
    } else if (rc != KVL_RRD_OK) {
        failed_for_good(s, path, "update failed", err, res);
    } else {
        res->rows++;
        res->values += used;
        bad_file_cleared(s, path);
    }
    return true;
}

static void on_work(uv_work_t *w)
{
    kvl_store_job_t *j = w->data;
    store_redo_t *redo = j->store->redo;
    if (redo != NULL && j->n_rows > 0 &&
        store_redo_enter(redo, j->result.why, sizeof(j->result.why)) != 0) {
        j->result.retry = j->n_rows; /* rrdcached cannot be reached: all of it later */
        return;
    }
    for (size_t i = 0; i < j->n_rows; i++) {
        if (!write_row(j->store, &j->rows[i], &j->result)) {
            j->result.retry += j->n_rows - i - 1; /* not tried: after it, in order */
            break;
        }
    }
    if (redo != NULL && j->n_rows > 0) {
        store_redo_leave(redo);
    }
}

static void on_checkpoint(uv_work_t *w)
{
    kvl_store_t *s = w->data;
    s->checkpoint_complete = store_redo_checkpoint(s->redo);
}

static void on_checkpoint_done(uv_work_t *w, int status)
{
    kvl_store_t *s = w->data;
    s->busy--;
    s->checkpointing = false;
    s->last_checkpoint_ms = uv_now(s->loop);
    KVL_LOG_DEBUG("store", kvl_rrd_daemon(), "checkpoint %" PRIu64 " %s", s->checkpoints,
                  s->checkpoint_complete ? "done: rrdcached wrote what it held"
                                         : "cut short (rrdcached went away)");
    if (status == 0 && s->checkpoint_complete && s->on_durable != NULL) {
        s->on_durable(s->durable_ctx, s->checkpoints);
    }
}

void kvl_store_on_durable(kvl_store_t *s, kvl_store_durable_fn fn, void *ctx)
{
    s->on_durable = fn;
    s->durable_ctx = ctx;
}

uint64_t kvl_store_durable_after(const kvl_store_t *s)
{
    return s->redo != NULL ? s->checkpoints + 1 : 0;
}

/* rrdcached mode: a checkpoint on the pool when its interval has passed, or now with
 * force (on the loop). */
static void maybe_checkpoint(kvl_store_t *s, bool force)
{
    if (s->redo == NULL || s->checkpointing ||
        (!force && uv_now(s->loop) - s->last_checkpoint_ms < (uint64_t)s->checkpoint_ms)) {
        return;
    }
    s->checkpoint.data = s;
    s->checkpoint_complete = false;
    if (uv_queue_work(s->loop, &s->checkpoint, on_checkpoint, on_checkpoint_done) == 0) {
        s->checkpointing = true;
        s->checkpoints++;
        s->busy++;
    }
}

void kvl_store_checkpoint(kvl_store_t *s)
{
    maybe_checkpoint(s, true);
}

static void on_after_work(uv_work_t *w, int status)
{
    kvl_store_job_t *j = w->data;
    j->store->busy--;
    maybe_checkpoint(j->store, false);
    if (status == UV_ECANCELED) {
        j->result.retry += j->n_rows;
        snprintf(j->result.why, sizeof(j->result.why), "the job was cancelled");
    }
    if (j->cb != NULL) {
        j->cb(j->arg, &j->result);
    }
    kvl_store_job_free(j);
}

int kvl_store_submit(kvl_store_t *s, kvl_store_job_t *j, kvl_store_done_cb cb, void *arg)
{
    j->store = s;
    j->cb = cb;
    j->arg = arg;
    j->work.data = j;
    int rc = uv_queue_work(s->loop, &j->work, on_work, on_after_work);
    if (rc != 0) {
        kvl_store_job_free(j);
        return rc;
    }
    s->busy++;
    return 0;
}
