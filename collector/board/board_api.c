/*
 * board_api.c — the board's routes (board.h): the site tree with states and counts, the
 * agents, latest values, links, and series read from the archives on the thread pool
 * (a deferred answer, http.h: kvl_http_defer / kvl_http_answer).
 */
#include "board.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "board_query.h"
#include "http.h"
#include "kvl.h"
#include "log.h"
#include "map.h"
#include "rrd_store.h"
#include "store.h"
#include "timeutil.h"

#define UNPLACED_LOGGED_MAX 10000

enum { ST_UNKNOWN, ST_OK, ST_WARNING, ST_MINOR, ST_MAJOR, ST_LOST, ST_CRITICAL, ST_N };
static const char *const state_names[ST_N] = {"unknown", "ok",   "warning", "minor",
                                              "major",   "lost", "critical"};

struct kvl_board {
    kvl_board_opts_t o;
    json_t *unplaced_logged; /* names of unplaced sites already logged */
    size_t reads;            /* archive reads under way */
    bool freeing;            /* kvl_board_free came while reads were under way */
};

static int64_t board_now(const kvl_board_t *b)
{
    return b->o.now_ms != NULL ? b->o.now_ms() : kvl_now_ms();
}

static const char *param(const void *ctx, const char *key)
{
    return kvl_http_query(ctx, key);
}

static void respond(kvl_http_resp_t *resp, json_t *body)
{
    if (body == NULL) {
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    resp->status = 200;
    resp->body = body;
}

static bool no_more_segs(const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    if (req->n_segs > 0) {
        kvl_http_error(resp, 404, "no such resource under %s", req->path);
        return false;
    }
    return true;
}

/* ----------------------------------------------------------------- agents, merged ----- */

/* The agents as the ingest knows them (connection, loss, version), with what the latest
 * values add (last batch, newest sample); without the ingest's view, the latest values'
 * alone (lost from the ingest's events). */
typedef void (*merged_fn)(void *ctx, const kvl_board_agent_t *a, const kvl_latest_agent_t *la);

typedef struct merge {
    kvl_latest_agent_t *v;
    size_t n, cap;
    json_t *index; /* id -> position */
    bool *used;
    merged_fn fn;
    void *ctx;
    bool nomem;
} merge_t;

static void merge_latest(void *ctx, const kvl_latest_agent_t *a)
{
    merge_t *m = ctx;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        kvl_latest_agent_t *v = realloc(m->v, cap * sizeof(*v));
        if (v == NULL) {
            m->nomem = true;
            return;
        }
        m->v = v;
        m->cap = cap;
    }
    m->v[m->n] = *a;
    if (json_object_set_new(m->index, a->id, json_integer((json_int_t)m->n)) != 0) {
        m->nomem = true;
    }
    m->n++;
}

static void merge_ingest(void *ctx, const kvl_board_agent_t *a)
{
    merge_t *m = ctx;
    json_t *at = json_object_get(m->index, a->id);
    const kvl_latest_agent_t *la = NULL;
    if (at != NULL) {
        size_t i = (size_t)json_integer_value(at);
        la = &m->v[i];
        m->used[i] = true;
    }
    m->fn(m->ctx, a, la);
}

/* Returns 0 or KVL_ENOMEM. */
static int each_agent(const kvl_board_t *b, merged_fn fn, void *ctx)
{
    merge_t m = {.index = json_object(), .fn = fn, .ctx = ctx};
    if (m.index != NULL) {
        kvl_latest_agents(b->o.latest, merge_latest, &m);
    }
    m.used = calloc(m.n ? m.n : 1, sizeof(bool));
    if (m.index == NULL || m.used == NULL || m.nomem) {
        free(m.v);
        free(m.used);
        json_decref(m.index);
        return KVL_ENOMEM;
    }
    if (b->o.agents != NULL) {
        b->o.agents(b->o.agents_src, merge_ingest, &m);
    }
    for (size_t i = 0; i < m.n; i++) {
        if (m.used[i]) {
            continue;
        }
        /* known from batches only (no ingest view, or an agent it no longer holds) */
        const kvl_latest_agent_t *la = &m.v[i];
        kvl_board_agent_t a = {.id = la->id,
                               .site = la->site,
                               .version = "",
                               .connected = b->o.agents == NULL && !la->lost,
                               .lost = la->lost,
                               .lost_since_ms = la->lost_since_ms};
        fn(ctx, &a, la);
    }
    free(m.v);
    free(m.used);
    json_decref(m.index);
    return 0;
}

/* ----------------------------------------------------------------- /sites -------------- */

typedef struct site_row {
    const char *name, *label, *parent_name;
    int kind; /* -1: none (unplaced) */
    size_t parent;
    int own, state;
    size_t agents, devices, alerts;
    size_t t_agents, t_devices, t_alerts;
} site_row_t;

typedef struct tree {
    kvl_board_t *b;
    site_row_t *v;
    size_t n, cap;
    json_t *index;   /* name -> position */
    size_t unplaced; /* the synthetic root's position, or KVL_SITE_NONE */
    bool nomem;
} tree_t;

static size_t tree_add(tree_t *t, const char *name, const char *label, int kind, size_t parent)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        site_row_t *v = realloc(t->v, cap * sizeof(*v));
        if (v == NULL) {
            t->nomem = true;
            return KVL_SITE_NONE;
        }
        t->v = v;
        t->cap = cap;
    }
    site_row_t *r = &t->v[t->n];
    memset(r, 0, sizeof(*r));
    r->name = name;
    r->label = label != NULL ? label : name;
    r->kind = kind;
    r->parent = parent;
    r->own = ST_UNKNOWN;
    if (json_object_set_new(t->index, name, json_integer((json_int_t)t->n)) != 0) {
        t->nomem = true;
        return KVL_SITE_NONE;
    }
    return t->n++;
}

/* The position of a site by name; a site the tree does not name is added under the
 * synthetic root (logged once per name). */
static size_t tree_site(tree_t *t, const char *name)
{
    json_t *at = json_object_get(t->index, name);
    if (at != NULL) {
        return (size_t)json_integer_value(at);
    }
    if (t->unplaced == KVL_SITE_NONE) {
        t->unplaced = tree_add(t, KVL_SITES_UNPLACED, "Sites not in the tree", -1, KVL_SITE_NONE);
        if (t->unplaced == KVL_SITE_NONE) {
            return KVL_SITE_NONE;
        }
    }
    return tree_add(t, name, NULL, -1, t->unplaced);
}

static void worsen(int *st, int s)
{
    if (s > *st) {
        *st = s;
    }
}

static void on_agent(void *ctx, const kvl_board_agent_t *a, const kvl_latest_agent_t *la)
{
    tree_t *t = ctx;
    KVL_UNUSED(la);
    size_t i = tree_site(t, a->site);
    if (i == KVL_SITE_NONE) {
        return;
    }
    t->v[i].agents++;
    worsen(&t->v[i].own, a->lost ? ST_LOST : ST_OK);
}

static bool on_series(void *ctx, const kvl_latest_value_t *v)
{
    tree_t *t = ctx;
    /* one `reachable` series per device (store.h: the device archive's data sources) */
    if (v->scope == KVL_SCOPE_DEVICE && strcmp(v->metric, "reachable") == 0) {
        size_t i = tree_site(t, v->site);
        if (i != KVL_SITE_NONE) {
            t->v[i].devices++;
        }
    }
    return !t->nomem;
}

static int severity_state(const char *sev)
{
    static const struct {
        const char *name;
        int st;
    } map[] = {{"critical", ST_CRITICAL},
               {"major", ST_MAJOR},
               {"minor", ST_MINOR},
               {"warning", ST_WARNING},
               {"info", ST_OK}};
    for (size_t i = 0; sev != NULL && i < KVL_ARRAY_SIZE(map); i++) {
        if (strcmp(sev, map[i].name) == 0) {
            return map[i].st;
        }
    }
    return ST_WARNING; /* a severity this board does not know: not nothing */
}

static void on_alert(void *ctx, const char *site, const char *severity)
{
    tree_t *t = ctx;
    if (site == NULL || site[0] == '\0') {
        return;
    }
    size_t i = tree_site(t, site);
    if (i == KVL_SITE_NONE) {
        return;
    }
    t->v[i].alerts++;
    worsen(&t->v[i].own, severity_state(severity));
}

static json_t *row_json(const tree_t *t, const site_row_t *r)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:{s:I, s:I, s:I}}", "name", r->name,
                          "label", r->label, "state", state_names[r->state], "own_state",
                          state_names[r->own], "agents", (json_int_t)r->agents, "devices",
                          (json_int_t)r->devices, "alerts", (json_int_t)r->alerts, "subtree",
                          "agents", (json_int_t)r->t_agents, "devices", (json_int_t)r->t_devices,
                          "alerts", (json_int_t)r->t_alerts);
    if (o == NULL) {
        return NULL;
    }
    json_object_set_new(o, "kind",
                        r->kind >= 0 ? json_string(kvl_site_kind_name(r->kind)) : json_null());
    json_object_set_new(
        o, "parent", r->parent != KVL_SITE_NONE ? json_string(t->v[r->parent].name) : json_null());
    return o;
}

json_t *kvl_board_sites_json(kvl_board_t *b)
{
    tree_t t = {.b = b, .index = json_object(), .unplaced = KVL_SITE_NONE};
    const kvl_sites_cfg_t *sc = b->o.sites;
    for (size_t i = 0; t.index != NULL && sc != NULL && i < sc->n; i++) {
        tree_add(&t, sc->v[i].name, sc->v[i].label, sc->v[i].kind, sc->v[i].parent);
    }
    if (t.index != NULL && !t.nomem) {
        t.nomem = each_agent(b, on_agent, &t) != 0 || t.nomem;
        /* the device scope alone: the cost follows the devices, not every series */
        kvl_latest_each_scope(b->o.latest, KVL_SCOPE_DEVICE, on_series, &t);
        if (b->o.alerts != NULL) {
            b->o.alerts(b->o.alerts_src, on_alert, &t);
        }
    }
    json_t *arr = t.index != NULL && !t.nomem ? json_array() : NULL;
    if (arr != NULL) {
        for (size_t i = 0; i < t.n; i++) {
            t.v[i].state = t.v[i].own;
        }
        /* each site's own state and counts up its chain of parents (the tree has no
         * cycles: sites_config.c checked it; unplaced sites hang under the root) */
        for (size_t i = 0; i < t.n; i++) {
            size_t depth = 0;
            for (size_t p = i; p != KVL_SITE_NONE && depth <= t.n; p = t.v[p].parent, depth++) {
                worsen(&t.v[p].state, t.v[i].own);
                t.v[p].t_agents += t.v[i].agents;
                t.v[p].t_devices += t.v[i].devices;
                t.v[p].t_alerts += t.v[i].alerts;
            }
        }
        for (size_t i = 0; i < t.n; i++) {
            if (json_array_append_new(arr, row_json(&t, &t.v[i])) != 0) {
                json_decref(arr);
                arr = NULL;
                break;
            }
        }
    }
    free(t.v);
    json_decref(t.index);
    return arr;
}

static void sites_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_board_t *b = ctx;
    if (!no_more_segs(req, resp)) {
        return;
    }
    json_t *arr = kvl_board_sites_json(b);
    respond(resp, arr != NULL ? json_pack("{s:o}", "sites", arr) : NULL);
}

/* ----------------------------------------------------------------- /agents ------------- */

typedef struct agents_ctx {
    json_t *arr;
    bool nomem;
} agents_ctx_t;

static json_t *ms_or_null(int64_t ms, bool known)
{
    return known ? json_integer(ms) : json_null();
}

static void agent_json(void *ctx, const kvl_board_agent_t *a, const kvl_latest_agent_t *la)
{
    agents_ctx_t *c = ctx;
    bool batches = la != NULL && la->batches > 0;
    bool sample = la != NULL && la->last_sample_ms != INT64_MIN;
    json_t *o = json_pack("{s:s, s:s, s:b, s:b, s:o, s:o, s:o, s:o, s:I, s:o}", "id", a->id, "site",
                          a->site, "connected", a->connected, "lost", a->lost, "lost_since_ms",
                          ms_or_null(a->lost_since_ms, a->lost), "last_seen_ms",
                          ms_or_null(a->last_seen_ms, a->last_seen_ms > 0), "last_batch_ms",
                          ms_or_null(batches ? la->last_batch_ms : 0, batches), "last_sample_ms",
                          ms_or_null(sample ? la->last_sample_ms : 0, sample), "batches",
                          (json_int_t)(la != NULL ? la->batches : 0), "version",
                          a->version != NULL && a->version[0] != '\0' ? json_string(a->version)
                                                                      : json_null());
    if (o == NULL || json_array_append_new(c->arr, o) != 0) {
        c->nomem = true;
    }
}

static void agents_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_board_t *b = ctx;
    if (!no_more_segs(req, resp)) {
        return;
    }
    agents_ctx_t c = {.arr = json_array()};
    if (c.arr != NULL && each_agent(b, agent_json, &c) != 0) {
        c.nomem = true;
    }
    if (c.nomem) {
        json_decref(c.arr);
        c.arr = NULL;
    }
    respond(resp, c.arr != NULL ? json_pack("{s:o}", "agents", c.arr) : NULL);
}

/* ----------------------------------------------------------------- /latest ------------- */

static bool selected(const kvl_board_match_t *m, const kvl_latest_value_t *v)
{
    return (m->scope == 0 || (int)v->scope == m->scope) && kvl_board_glob(m->agent, v->agent) &&
           kvl_board_glob(m->site, v->site) && kvl_board_glob(m->device, v->device) &&
           kvl_board_glob(m->instance, v->instance) && kvl_board_glob(m->metric, v->metric);
}

static json_t *number_json(const kvl_latest_value_t *v)
{
    if (v->unknown) {
        return json_null();
    }
    return v->real ? json_real(v->real_value) : json_integer((json_int_t)v->value);
}

static json_t *value_json(const kvl_latest_value_t *v)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:o}", "agent", v->agent,
                          "site", v->site, "device", v->device, "scope",
                          kvl_board_scope_name(v->scope), "instance", v->instance, "metric",
                          v->metric, "kind", v->kind == KVL_KIND_COUNTER ? "counter" : "gauge",
                          "interval_s", (json_int_t)v->interval_s, "time_ms",
                          (json_int_t)v->time_ms, "value", number_json(v));
    if (o != NULL && v->scope == KVL_SCOPE_GROUP) {
        json_object_set_new(o, "group", json_string(v->group));
    }
    if (o != NULL && v->kind == KVL_KIND_COUNTER) {
        json_object_set_new(o, "rate", v->has_rate ? json_real(v->rate) : json_null());
    }
    return o;
}

typedef struct latest_ctx {
    const kvl_board_match_t *m;
    json_t *arr;
    bool truncated, nomem;
} latest_ctx_t;

static bool latest_one(void *ctx, const kvl_latest_value_t *v)
{
    latest_ctx_t *c = ctx;
    if (!selected(c->m, v)) {
        return true;
    }
    if (json_array_size(c->arr) >= c->m->limit) {
        c->truncated = true;
        return false;
    }
    if (json_array_append_new(c->arr, value_json(v)) != 0) {
        c->nomem = true;
        return false;
    }
    return true;
}

static void latest_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_board_t *b = ctx;
    kvl_board_match_t m;
    char why[256];
    if (!no_more_segs(req, resp)) {
        return;
    }
    if (kvl_board_match_parse(param, req, &m, why, sizeof(why)) != 0) {
        kvl_http_error(resp, 400, "%s", why);
        return;
    }
    latest_ctx_t c = {.m = &m, .arr = json_array()};
    if (c.arr != NULL) {
        if (m.scope != 0) {
            kvl_latest_each_scope(b->o.latest, (kvl_scope_t)m.scope, latest_one, &c);
        } else {
            kvl_latest_each(b->o.latest, latest_one, &c);
        }
    }
    if (c.nomem) {
        json_decref(c.arr);
        c.arr = NULL;
    }
    respond(resp, c.arr != NULL ? json_pack("{s:o, s:b}", "values", c.arr, "truncated", c.truncated)
                                : NULL);
}

/* ----------------------------------------------------------------- /links -------------- */

typedef struct links_ctx {
    const kvl_board_match_t *m;
    json_t *by_key; /* "agent\ttarget" -> the link's object */
    json_t *arr;
    bool truncated, nomem;
} links_ctx_t;

static bool link_one(void *ctx, const kvl_latest_value_t *v)
{
    links_ctx_t *c = ctx;
    if (v->scope != KVL_SCOPE_LINK || !selected(c->m, v)) {
        return true;
    }
    char key[1024];
    snprintf(key, sizeof(key), "%s\t%s", v->agent, v->instance);
    json_t *link = json_object_get(c->by_key, key);
    if (link == NULL) {
        if (json_array_size(c->arr) >= c->m->limit) {
            c->truncated = true;
            return true; /* other metrics of the links already listed still come */
        }
        link = json_pack("{s:s, s:s, s:s, s:I, s:n, s:n, s:n, s:{}}", "agent", v->agent, "site",
                         v->site, "target", v->instance, "time_ms", (json_int_t)v->time_ms,
                         "loss_pct", "rtt_ms", "mos", "values");
        if (link == NULL || json_object_set(c->by_key, key, link) != 0 ||
            json_array_append_new(c->arr, link) != 0) {
            c->nomem = true;
            return false;
        }
    }
    json_t *num = number_json(v);
    if (v->time_ms > json_integer_value(json_object_get(link, "time_ms"))) {
        json_object_set_new(link, "time_ms", json_integer(v->time_ms));
    }
    static const struct {
        const char *metric, *key;
    } lead[] = {{"lost_pct", "loss_pct"}, {"rtt_median_ms", "rtt_ms"}, {"mos", "mos"}};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(lead); i++) {
        if (strcmp(v->metric, lead[i].metric) == 0) {
            json_object_set(link, lead[i].key, num);
        }
    }
    json_object_set_new(json_object_get(link, "values"), v->metric, num);
    return true;
}

static void links_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_board_t *b = ctx;
    kvl_board_match_t m;
    char why[256];
    if (!no_more_segs(req, resp)) {
        return;
    }
    if (kvl_board_match_parse(param, req, &m, why, sizeof(why)) != 0) {
        kvl_http_error(resp, 400, "%s", why);
        return;
    }
    if (m.scope != 0 && m.scope != KVL_SCOPE_LINK) {
        kvl_http_error(resp, 400, "links are of scope link only");
        return;
    }
    links_ctx_t c = {.m = &m, .by_key = json_object(), .arr = json_array()};
    if (c.by_key != NULL && c.arr != NULL) {
        kvl_latest_each_scope(b->o.latest, KVL_SCOPE_LINK, link_one, &c);
    } else {
        c.nomem = true;
    }
    json_decref(c.by_key);
    if (c.nomem) {
        json_decref(c.arr);
        c.arr = NULL;
    }
    respond(resp, c.arr != NULL ? json_pack("{s:o, s:b}", "links", c.arr, "truncated", c.truncated)
                                : NULL);
}

/* ----------------------------------------------------------------- /series ------------- */

typedef struct series_read {
    uv_work_t work;
    kvl_board_t *b;
    kvl_http_later_t *later;
    char path[PATH_MAX];
    char cf[8];
    char metric[72];
    int64_t from, to;
    uint32_t step;
    kvl_rrd_points_t pts;
    kvl_rrd_result_t rc;
    char err[400];
    json_t *head; /* the answer's fields naming the series */
} series_read_t;

static void read_work(uv_work_t *w)
{
    series_read_t *r = w->data;
    r->rc = kvl_rrd_fetch(r->path, r->cf, r->from, r->to, r->step, &r->pts, r->err, sizeof(r->err));
}

static json_t *points_json(series_read_t *r, int *status)
{
    size_t k = 0;
    while (k < r->pts.n_ds && strcmp(r->pts.ds_names[k], r->metric) != 0) {
        k++;
    }
    if (k == r->pts.n_ds) {
        *status = 404;
        return json_pack("{s:s}", "error", "the series' archive has no data source of that name");
    }
    json_t *pts = json_array();
    size_t n = r->pts.n_rows < KVL_BOARD_POINTS_MAX ? r->pts.n_rows : KVL_BOARD_POINTS_MAX;
    for (size_t i = 0; pts != NULL && i < n; i++) {
        double v = r->pts.values[i * r->pts.n_ds + k];
        json_int_t t = (json_int_t)(r->pts.start + (int64_t)(i + 1) * r->pts.step);
        json_t *p = json_pack("[I, o]", t, isnan(v) ? json_null() : json_real(v));
        if (p == NULL || json_array_append_new(pts, p) != 0) {
            json_decref(pts);
            pts = NULL;
        }
    }
    json_t *o = json_copy(r->head);
    if (pts == NULL || o == NULL) {
        json_decref(pts);
        json_decref(o);
        *status = 500;
        return json_pack("{s:s}", "error", "out of memory");
    }
    json_object_set_new(o, "cf", json_string(r->cf));
    json_object_set_new(o, "start", json_integer(r->pts.start));
    json_object_set_new(o, "end", json_integer(r->pts.end));
    json_object_set_new(o, "step", json_integer(r->pts.step));
    json_object_set_new(o, "points", pts);
    json_object_set_new(o, "truncated", json_boolean(r->pts.n_rows > n));
    *status = 200;
    return o;
}

static void board_release(kvl_board_t *b);

static void read_done(uv_work_t *w, int status)
{
    series_read_t *r = w->data;
    int code = 500;
    json_t *body;
    if (status != 0) {
        body = json_pack("{s:s}", "error", "the archive read was cancelled");
        code = 503;
    } else if (r->rc == KVL_RRD_MISSING) {
        code = 404;
        body = json_pack("{s:s}", "error", "the series has no archive file (yet)");
    } else if (r->rc != KVL_RRD_OK) {
        KVL_LOG_WARN("board", r->path, "reading the archive: %s", r->err);
        body = json_pack("{s:s+}", "error", "reading the archive failed: ", r->err);
    } else {
        body = points_json(r, &code);
    }
    kvl_http_answer(r->later, code, body);
    kvl_rrd_points_free(&r->pts);
    json_decref(r->head);
    kvl_board_t *b = r->b;
    free(r);
    KVL_ASSERT(b->reads > 0);
    b->reads--;
    if (b->freeing && b->reads == 0) {
        board_release(b);
    }
}

/* The series a range names: with its scope, or the first scope that has it. */
static int find_series(const kvl_board_t *b, const kvl_board_range_t *r, kvl_latest_value_t *v)
{
    static const int order[] = {KVL_SCOPE_INTERFACE, KVL_SCOPE_DEVICE, KVL_SCOPE_LINK,
                                KVL_SCOPE_GROUP, KVL_SCOPE_AGENT};
    const char *inst = r->instance != NULL ? r->instance : "";
    for (size_t i = 0; i < KVL_ARRAY_SIZE(order); i++) {
        if ((r->scope == 0 || r->scope == order[i]) &&
            kvl_latest_get(b->o.latest, r->agent, r->device, order[i], inst, r->metric, v) == 0) {
            return 0;
        }
    }
    return KVL_EINVAL;
}

static void series_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_board_t *b = ctx;
    kvl_board_range_t r;
    kvl_latest_value_t v;
    char why[256];
    if (!no_more_segs(req, resp)) {
        return;
    }
    if (kvl_board_range_parse(param, req, board_now(b) / 1000, &r, why, sizeof(why)) != 0) {
        kvl_http_error(resp, 400, "%s", why);
        return;
    }
    if (find_series(b, &r, &v) != 0) {
        kvl_http_error(resp, 404,
                       "no such series (agent, device, instance, metric) among those reported "
                       "since the collector started");
        return;
    }
    if (b->reads >= KVL_BOARD_READS_MAX) {
        kvl_http_error(resp, 503, "%d archive reads under way: try again", KVL_BOARD_READS_MAX);
        return;
    }
    series_read_t *rd = calloc(1, sizeof(*rd));
    int rc = rd != NULL ? 0 : KVL_ENOMEM;
    if (rc == 0) {
        rc = v.scope == KVL_SCOPE_GROUP
                 ? kvl_store_group_path(b->o.data_dir, v.site, v.device, v.group, v.instance,
                                        rd->path, sizeof(rd->path))
                 : kvl_store_path(b->o.data_dir, v.site, v.device, v.scope, v.instance, rd->path,
                                  sizeof(rd->path));
    }
    if (rc != 0) {
        free(rd);
        kvl_http_error(resp, rc == KVL_ENOMEM ? 500 : 404, "the series has no archive path");
        return;
    }
    snprintf(rd->cf, sizeof(rd->cf), "%s", r.cf);
    snprintf(rd->metric, sizeof(rd->metric), "%s", v.metric);
    rd->from = r.from;
    rd->to = r.to;
    rd->step = r.step;
    rd->b = b;
    rd->work.data = rd;
    rd->head = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "agent", v.agent, "site", v.site,
                         "device", v.device, "scope", kvl_board_scope_name(v.scope), "instance",
                         v.instance, "metric", v.metric);
    rd->later = rd->head != NULL ? kvl_http_defer(req) : NULL;
    if (rd->later == NULL) {
        json_decref(rd->head);
        free(rd);
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    b->reads++;
    if ((rc = uv_queue_work(b->o.loop, &rd->work, read_work, read_done)) != 0) {
        b->reads--;
        kvl_http_answer(rd->later, 500, json_pack("{s:s}", "error", uv_strerror(rc)));
        json_decref(rd->head);
        free(rd);
    }
}

/* ----------------------------------------------------------------- life ---------------- */

/* An agent reports a site: one the tree does not name is logged once (not an error). */
static void on_site(void *ctx, const char *agent, const char *site)
{
    kvl_board_t *b = ctx;
    json_t *logged = b->unplaced_logged;
    if (kvl_sites_find(b->o.sites, site) != KVL_SITE_NONE ||
        json_object_get(logged, site) != NULL || json_object_size(logged) >= UNPLACED_LOGGED_MAX) {
        return;
    }
    json_object_set_new(logged, site, json_true());
    KVL_LOG_INFO("board", agent, "site '%s' is not in the site tree: the board shows it under '%s'",
                 site, KVL_SITES_UNPLACED);
}

int kvl_board_new(const kvl_board_opts_t *o, kvl_board_t **out, char *err, size_t errlen)
{
    *out = NULL;
    kvl_board_t *b = calloc(1, sizeof(*b));
    if (b == NULL || (b->unplaced_logged = json_object()) == NULL) {
        free(b);
        snprintf(err, errlen, "board: out of memory");
        return KVL_ENOMEM;
    }
    b->o = *o;
    kvl_latest_watch_sites(b->o.latest, on_site, b);
    *out = b;
    return 0;
}

int kvl_board_api_register(kvl_board_t *b, kvl_http_t *http)
{
    static const struct {
        const char *path;
        kvl_http_handler_fn fn;
    } routes[] = {
        {"/api/v1/sites", sites_get},   {"/api/v1/agents", agents_get},
        {"/api/v1/latest", latest_get}, {"/api/v1/links", links_get},
        {"/api/v1/series", series_get}, {"/api/v1/map", kvl_board_map_get},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(routes); i++) {
        int rc = kvl_http_route(http, "GET", routes[i].path, KVL_ROLE_VIEWER, routes[i].fn, b);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

const kvl_board_opts_t *kvl_board_opts(const kvl_board_t *b)
{
    return &b->o;
}

int64_t kvl_board_now_ms(const kvl_board_t *b)
{
    return board_now(b);
}

static void board_release(kvl_board_t *b)
{
    json_decref(b->unplaced_logged);
    free(b);
}

void kvl_board_set_sites(kvl_board_t *b, const kvl_sites_cfg_t *sites)
{
    b->o.sites = sites;
    json_object_clear(b->unplaced_logged); /* a site now placed, or unplaced again, is said */
}

void kvl_board_free(kvl_board_t *b)
{
    if (b == NULL) {
        return;
    }
    kvl_latest_watch_sites(b->o.latest, NULL, NULL);
    if (b->reads > 0) {
        b->freeing = true; /* the last read's callback frees it */
        return;
    }
    board_release(b);
}
