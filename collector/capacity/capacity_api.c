/*
 * capacity_api.c — GET /api/v1/capacity (capacity.h): the parameters checked, the
 * interfaces, devices and selected sites taken from the inventory and the site tree on the
 * loop, the report computed on the thread pool (capacity_report.c), answers cached per
 * (days, site, agent, device), CSV made from the JSON answer.
 */
#include "capacity.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "capacity_int.h"
#include "http.h"
#include "inventory_each.h"
#include "kvl.h"
#include "log.h"
#include "names.h"
#include "store.h"
#include "timeutil.h"

typedef struct cache_entry {
    char *key;
    json_t *answer;
    int64_t at_ms;
} cache_entry_t;

typedef struct cap_run cap_run_t;

struct kvl_capacity {
    kvl_capacity_opts_t o;
    cache_entry_t cache[KVL_CAP_CACHE_N];
    cap_run_t *running[KVL_CAP_RUNS_MAX]; /* reports under way (NULL: a free place) */
    size_t runs;                          /* reports under way */
    bool freeing;                         /* kvl_capacity_free came while reports were under way */
};

/* A request waiting for a report under way (the first one's or another's with the same
 * parameters). */
typedef struct cap_waiter {
    kvl_http_later_t *later;
    bool csv;
} cap_waiter_t;

struct cap_run {
    uv_work_t work;
    kvl_capacity_t *c;
    char *key;
    cap_waiter_t *waiters; /* the first is the request that started it */
    size_t n_waiters;
    int64_t started_ms;
    cap_job_t job;
};

static int64_t cap_now(const kvl_capacity_t *c)
{
    return c->o.now_ms != NULL ? c->o.now_ms() : kvl_now_ms();
}

/* ----------------------------------------------------------------- names --------------- */

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    if (ch >= 'A' && ch <= 'F') {
        return ch - 'A' + 10;
    }
    return -1;
}

int kvl_cap_name_decode(const char *safe, char *out, size_t outlen)
{
    if (strcmp(safe, "%00") == 0 && outlen > 0) {
        out[0] = '\0';
        return 0;
    }
    size_t n = 0;
    for (const char *p = safe; *p != '\0'; p++) {
        int ch = (unsigned char)*p;
        if (ch == '%') {
            int hi = hexval(p[1]), lo = hi >= 0 ? hexval(p[2]) : -1;
            if (lo < 0) {
                return -1;
            }
            ch = hi * 16 + lo;
            p += 2;
        }
        if (ch == 0 || n + 1 >= outlen) {
            return -1;
        }
        out[n++] = (char)ch;
    }
    if (outlen == 0) {
        return -1;
    }
    out[n] = '\0';
    return 0;
}

/* ----------------------------------------------------------------- CSV ----------------- */

static int csv_field(kvl_buf_t *b, const char *s)
{
    bool quote = strpbrk(s, ",\"\r\n") != NULL;
    /* a text a spreadsheet would run as a formula is written as text */
    bool guard = s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@';
    int rc = quote || guard ? kvl_buf_append(b, "\"", 1) : 0;
    if (rc == 0 && guard) {
        rc = kvl_buf_append(b, "'", 1);
    }
    for (const char *p = s; rc == 0 && *p != '\0'; p++) {
        rc = *p == '"' ? kvl_buf_append(b, "\"\"", 2) : kvl_buf_append(b, p, 1);
    }
    if (rc == 0 && (quote || guard)) {
        rc = kvl_buf_append(b, "\"", 1);
    }
    return rc;
}

static int csv_value(kvl_buf_t *b, const json_t *v)
{
    char tmp[64];
    if (json_is_string(v)) {
        return csv_field(b, json_string_value(v));
    }
    if (json_is_integer(v)) {
        snprintf(tmp, sizeof(tmp), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(tmp, sizeof(tmp), "%.17g", json_real_value(v));
    } else if (json_is_true(v)) {
        snprintf(tmp, sizeof(tmp), "true");
    } else if (json_is_false(v)) {
        snprintf(tmp, sizeof(tmp), "false");
    } else {
        tmp[0] = '\0'; /* null: an empty field */
    }
    return kvl_buf_append(b, tmp, strlen(tmp));
}

/* The CSV columns: a key of the interface's object, or "<dir>.<key>". */
static const char *const csv_cols[] = {
    "agent",         "site",         "device",       "interface",    "circuit",
    "retired",       "speed_bps",    "speed_source", "resolution_s", "samples",
    "unknown",       "in.avg_bps",   "in.peak_bps",  "in.p95_bps",   "in.avg_pct",
    "in.peak_pct",   "in.p95_pct",   "out.avg_bps",  "out.peak_bps", "out.p95_bps",
    "out.avg_pct",   "out.peak_pct", "out.p95_pct",  "busier",       "trend_bps_per_day",
    "trend_end_bps", "days_to_80",   "error",
};

char *kvl_cap_csv(const json_t *answer, size_t *len)
{
    kvl_buf_t b = {0};
    int rc = 0;
    for (size_t c = 0; rc == 0 && c < KVL_ARRAY_SIZE(csv_cols); c++) {
        char name[32];
        snprintf(name, sizeof(name), "%s", csv_cols[c]);
        char *dot = strchr(name, '.');
        if (dot != NULL) {
            *dot = '_'; /* in.avg_bps -> in_avg_bps */
        }
        rc = (c ? kvl_buf_append(&b, ",", 1) : 0) || kvl_buf_append(&b, name, strlen(name));
    }
    rc = rc || kvl_buf_append(&b, "\r\n", 2);
    size_t i;
    const json_t *o;
    json_array_foreach(json_object_get(answer, "interfaces"), i, o)
    {
        for (size_t c = 0; rc == 0 && c < KVL_ARRAY_SIZE(csv_cols); c++) {
            const char *col = csv_cols[c], *dot = strchr(col, '.');
            const json_t *v;
            if (dot != NULL) {
                char dir[8];
                snprintf(dir, sizeof(dir), "%.*s", (int)(dot - col), col);
                v = json_object_get(json_object_get(o, dir), dot + 1);
            } else {
                v = json_object_get(o, col);
            }
            rc = (c ? kvl_buf_append(&b, ",", 1) : 0) || csv_value(&b, v);
        }
        rc = rc || kvl_buf_append(&b, "\r\n", 2);
        if (rc != 0) {
            break;
        }
    }
    /* NUL-terminated too (not counted in len), so it reads as a C string */
    if (rc != 0 || kvl_buf_reserve(&b, 1) != 0) {
        kvl_buf_free(&b);
        return NULL;
    }
    b.data[b.len] = '\0';
    *len = b.len;
    return (char *)b.data; /* taken: the buffer is not used again */
}

/* ----------------------------------------------------------------- the cache ----------- */

static cache_entry_t *cache_find(kvl_capacity_t *c, const char *key, int64_t now)
{
    int ttl_s = c->o.cache_s ? c->o.cache_s : KVL_CAP_CACHE_S;
    for (size_t i = 0; ttl_s > 0 && i < KVL_CAP_CACHE_N; i++) {
        cache_entry_t *e = &c->cache[i];
        if (e->key != NULL && strcmp(e->key, key) == 0 && now - e->at_ms < (int64_t)ttl_s * 1000 &&
            now >= e->at_ms) {
            return e;
        }
    }
    return NULL;
}

/* Keeps answer (a reference taken) under key, replacing the same key or the oldest. */
static void cache_put(kvl_capacity_t *c, const char *key, json_t *answer, int64_t now)
{
    if (c->o.cache_s < 0) {
        json_decref(answer);
        return;
    }
    cache_entry_t *slot = &c->cache[0];
    for (size_t i = 0; i < KVL_CAP_CACHE_N; i++) {
        cache_entry_t *e = &c->cache[i];
        if (e->key == NULL || strcmp(e->key, key) == 0) {
            slot = e;
            break;
        }
        if (e->at_ms < slot->at_ms) {
            slot = e;
        }
    }
    char *k = strdup(key);
    if (k == NULL) {
        json_decref(answer);
        return;
    }
    free(slot->key);
    json_decref(slot->answer);
    *slot = (cache_entry_t){k, answer, now};
}

/* ----------------------------------------------------------------- answering ----------- */

/* Sends an answer (a copy: the cached one stays untouched) as JSON or CSV. */
static void send_answer(const json_t *answer, bool csv, bool cached, kvl_http_later_t *later,
                        kvl_http_resp_t *resp)
{
    if (csv) {
        size_t len = 0;
        char *bytes = kvl_cap_csv(answer, &len);
        int st = bytes != NULL ? 200 : 500;
        const char *type = "text/csv; charset=utf-8";
        if (bytes == NULL) {
            json_t *e = json_pack("{s:s}", "error", "out of memory");
            if (later != NULL) {
                kvl_http_answer(later, st, e);
            } else {
                resp->status = st;
                resp->body = e;
            }
        } else if (later != NULL) {
            kvl_http_answer_bytes(later, st, type, bytes, len);
        } else {
            resp->status = st;
            resp->type = type;
            resp->bytes = bytes;
            resp->len = len;
        }
        return;
    }
    json_t *copy = json_deep_copy(answer);
    if (copy != NULL) {
        json_object_set_new(copy, "cached", json_boolean(cached));
    }
    int st = copy != NULL ? 200 : 500;
    if (copy == NULL) {
        copy = json_pack("{s:s}", "error", "out of memory");
    }
    if (later != NULL) {
        kvl_http_answer(later, st, copy);
    } else {
        resp->status = st;
        resp->body = copy;
    }
}

static void run_free(cap_run_t *r)
{
    json_decref(r->job.ifaces);
    json_decref(r->job.devices);
    json_decref(r->job.sites);
    json_decref(r->job.answer);
    free(r->job.agent);
    free(r->key);
    free(r->waiters);
    free(r);
}

static void capacity_release(kvl_capacity_t *c);

static void run_work(uv_work_t *w)
{
    cap_run_t *r = w->data;
    kvl_cap_report_run(&r->job);
}

static void run_done(uv_work_t *w, int status)
{
    cap_run_t *r = w->data;
    kvl_capacity_t *c = r->c;
    for (size_t i = 0; i < r->n_waiters; i++) {
        kvl_http_later_t *later = r->waiters[i].later;
        if (status != 0) {
            kvl_http_answer(later, 503, json_pack("{s:s}", "error", "the report was cancelled"));
        } else if (r->job.answer == NULL) {
            kvl_http_answer(later, r->job.status ? r->job.status : 500,
                            json_pack("{s:s}", "error", r->job.err));
        } else {
            send_answer(r->job.answer, r->waiters[i].csv, false, later, NULL);
        }
    }
    if (status == 0 && r->job.answer != NULL) {
        const json_t *a = r->job.answer;
        KVL_LOG_INFO("capacity", "report",
                     "%d days: %zu interfaces, %zu devices, %zu links read in %lld ms for %zu "
                     "request(s)",
                     r->job.days, json_array_size(json_object_get(a, "interfaces")),
                     json_array_size(json_object_get(a, "devices")),
                     json_array_size(json_object_get(a, "links")),
                     (long long)(cap_now(c) - r->started_ms), r->n_waiters);
    }
    if (status == 0 && r->job.answer != NULL && !c->freeing) {
        cache_put(c, r->key, json_incref(r->job.answer), cap_now(c));
    }
    for (size_t i = 0; i < KVL_CAP_RUNS_MAX; i++) {
        if (c->running[i] == r) {
            c->running[i] = NULL;
        }
    }
    run_free(r);
    KVL_ASSERT(c->runs > 0);
    c->runs--;
    if (c->freeing && c->runs == 0) {
        capacity_release(c);
    }
}

/* Adds a request to a run's waiters. Returns 0, or -1 (too many, or out of memory). */
static int run_wait(cap_run_t *r, const kvl_http_req_t *req, bool csv)
{
    if (r->n_waiters >= KVL_CAP_WAITERS_MAX) {
        return -1;
    }
    cap_waiter_t *v = realloc(r->waiters, (r->n_waiters + 1) * sizeof(*v));
    if (v == NULL) {
        return -1;
    }
    r->waiters = v;
    kvl_http_later_t *later = kvl_http_defer(req);
    if (later == NULL) {
        return -1;
    }
    v[r->n_waiters++] = (cap_waiter_t){later, csv};
    return 0;
}

/* ----------------------------------------------------------------- the snapshot -------- */

typedef struct snap {
    kvl_capacity_t *c;
    cap_job_t *job;
    const char *device; /* NULL: every device */
    bool nomem;
} snap_t;

static bool snap_selects(const snap_t *s, const kvl_inventory_item_t *it)
{
    return (s->job->sites == NULL || json_object_get(s->job->sites, it->site) != NULL) &&
           (s->job->agent == NULL || strcmp(s->job->agent, it->agent) == 0) &&
           (s->device == NULL || strcmp(s->device, it->device) == 0);
}

static void snap_item(void *ctx, const kvl_inventory_item_t *it)
{
    snap_t *s = ctx;
    if (s->nomem || !snap_selects(s, it)) {
        return;
    }
    char path[PATH_MAX];
    int rc = kvl_store_path(s->c->o.data_dir, it->site, it->device,
                            it->interface != NULL ? KVL_SCOPE_INTERFACE : KVL_SCOPE_DEVICE,
                            it->interface, path, sizeof(path));
    if (rc != 0) {
        return; /* a name the archives cannot hold: it has none */
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:s}", "agent", it->agent, "site", it->site,
                          "device", it->device, "retired", it->retired, "_path", path);
    if (o != NULL && it->interface != NULL) {
        json_object_set_new(o, "interface", json_string(it->interface));
        json_object_set_new(o, "circuit", it->alias ? json_string(it->alias) : json_null());
        if (it->speed != NULL) {
            json_object_set_new(o, "_speed", json_string(it->speed));
        }
    }
    if (o == NULL ||
        json_array_append_new(it->interface != NULL ? s->job->ifaces : s->job->devices, o) != 0) {
        s->nomem = true;
    }
}

/* The names of site and every site under it in the tree (a site the tree does not name:
 * itself only). */
static json_t *site_subtree(const kvl_sites_cfg_t *sc, const char *site)
{
    json_t *set = json_object();
    if (set == NULL || json_object_set_new(set, site, json_true()) != 0) {
        json_decref(set);
        return NULL;
    }
    size_t root = sc != NULL ? kvl_sites_find(sc, site) : KVL_SITE_NONE;
    for (size_t i = 0; root != KVL_SITE_NONE && i < sc->n; i++) {
        size_t depth = 0;
        for (size_t p = sc->v[i].parent; p != KVL_SITE_NONE && depth <= sc->n;
             p = sc->v[p].parent, depth++) {
            if (p == root) {
                json_object_set_new(set, sc->v[i].name, json_true());
                break;
            }
        }
    }
    return set;
}

/* ----------------------------------------------------------------- the route ----------- */

/* A name parameter: absent (NULL), or checked like an archive's name. Returns 0 or -1 with
 * a 400 in resp. */
static int name_param(const kvl_http_req_t *req, kvl_http_resp_t *resp, const char *key,
                      const char **out)
{
    *out = kvl_http_query(req, key);
    char why[256];
    if (*out != NULL && ((*out)[0] == '\0' || kvl_name_check(key, *out, why, sizeof(why)) != 0)) {
        if ((*out)[0] == '\0') {
            snprintf(why, sizeof(why), "%s= is empty", key);
        }
        kvl_http_error(resp, 400, "%s", why);
        return -1;
    }
    return 0;
}

static void capacity_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_capacity_t *c = ctx;
    if (req->n_segs > 0) {
        kvl_http_error(resp, 404, "no such resource under %s", req->path);
        return;
    }
    const char *days_s = kvl_http_query(req, "days"), *format = kvl_http_query(req, "format");
    int days = 30;
    if (days_s != NULL) {
        if (strcmp(days_s, "30") == 0 || strcmp(days_s, "90") == 0 || strcmp(days_s, "365") == 0) {
            days = atoi(days_s);
        } else {
            kvl_http_error(resp, 400, "days= must be 30, 90 or 365");
            return;
        }
    }
    if (format != NULL && strcmp(format, "json") != 0 && strcmp(format, "csv") != 0) {
        kvl_http_error(resp, 400, "format= must be json or csv");
        return;
    }
    bool csv = format != NULL && strcmp(format, "csv") == 0;
    const char *site, *agent, *device;
    if (name_param(req, resp, "site", &site) != 0 || name_param(req, resp, "agent", &agent) != 0 ||
        name_param(req, resp, "device", &device) != 0) {
        return;
    }
    /* the key: the parameters, each after a separator no name can hold (names are checked
     * UTF-8 without control characters by the server) */
    size_t klen = 64 + (site ? strlen(site) : 0) + (agent ? strlen(agent) : 0) +
                  (device ? strlen(device) : 0);
    char *key = malloc(klen);
    if (key == NULL) {
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    snprintf(key, klen, "%d\x01%s\x01%s\x01%s\x01%d%d%d", days, site ? site : "",
             agent ? agent : "", device ? device : "", site != NULL, agent != NULL, device != NULL);
    int64_t now = cap_now(c);
    cache_entry_t *hit = cache_find(c, key, now);
    if (hit != NULL) {
        free(key);
        send_answer(hit->answer, csv, true, NULL, resp);
        return;
    }
    for (size_t i = 0; i < KVL_CAP_RUNS_MAX; i++) {
        cap_run_t *under_way = c->running[i];
        if (under_way != NULL && strcmp(under_way->key, key) == 0) {
            free(key);
            if (run_wait(under_way, req, csv) != 0) {
                kvl_http_error(resp, 503, "too many requests wait for this report: try again");
            }
            return;
        }
    }
    if (c->runs >= KVL_CAP_RUNS_MAX) {
        free(key);
        kvl_http_error(resp, 503,
                       "another capacity report is under way (%d at a time): try again shortly",
                       KVL_CAP_RUNS_MAX);
        return;
    }
    cap_run_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        free(key);
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    r->c = c;
    r->key = key;
    r->started_ms = now;
    r->work.data = r;
    cap_job_t *j = &r->job;
    j->data_dir = c->o.data_dir;
    j->days = days;
    j->to = now / 1000;
    j->from = j->to - (int64_t)days * 86400;
    j->files_max = c->o.files_max ? c->o.files_max : KVL_CAP_FILES_MAX;
    j->links = device == NULL;
    j->ifaces = json_array();
    j->devices = json_array();
    j->sites = site != NULL ? site_subtree(c->o.sites, site) : NULL;
    j->agent = agent != NULL ? strdup(agent) : NULL;
    snap_t s = {.c = c, .job = j, .device = device};
    s.nomem = j->ifaces == NULL || j->devices == NULL || (site != NULL && j->sites == NULL) ||
              (agent != NULL && j->agent == NULL);
    if (!s.nomem) {
        kvl_inventory_each(c->o.inventory, snap_item, &s);
    }
    if (s.nomem) {
        run_free(r);
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    size_t files = json_array_size(j->ifaces) + json_array_size(j->devices);
    if (files > j->files_max) {
        run_free(r);
        kvl_http_error(resp, 400,
                       "the report would read %zu archives (at most %zu): narrow it with site=, "
                       "agent= or device=",
                       files, j->files_max);
        return;
    }
    if (run_wait(r, req, csv) != 0) {
        run_free(r);
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    int rc = uv_queue_work(c->o.loop, &r->work, run_work, run_done);
    if (rc != 0) {
        kvl_http_answer(r->waiters[0].later, 500, json_pack("{s:s}", "error", uv_strerror(rc)));
        run_free(r);
        return;
    }
    c->runs++;
    for (size_t i = 0; i < KVL_CAP_RUNS_MAX; i++) {
        if (c->running[i] == NULL) {
            c->running[i] = r;
            break;
        }
    }
}

/* ----------------------------------------------------------------- life ---------------- */

int kvl_capacity_new(const kvl_capacity_opts_t *o, kvl_capacity_t **out, char *err, size_t errlen)
{
    *out = NULL;
    kvl_capacity_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, errlen, "capacity: out of memory");
        return KVL_ENOMEM;
    }
    c->o = *o;
    *out = c;
    return 0;
}

int kvl_capacity_api_register(kvl_capacity_t *c, kvl_http_t *http)
{
    return kvl_http_route(http, "GET", "/api/v1/capacity", KVL_ROLE_VIEWER, capacity_get, c);
}

static void capacity_release(kvl_capacity_t *c)
{
    for (size_t i = 0; i < KVL_CAP_CACHE_N; i++) {
        free(c->cache[i].key);
        json_decref(c->cache[i].answer);
    }
    free(c);
}

void kvl_capacity_set_sites(kvl_capacity_t *c, const kvl_sites_cfg_t *sites)
{
    c->o.sites = sites;
}

void kvl_capacity_free(kvl_capacity_t *c)
{
    if (c == NULL) {
        return;
    }
    if (c->runs > 0) {
        c->freeing = true; /* the last report's callback frees it */
        return;
    }
    capacity_release(c);
}
