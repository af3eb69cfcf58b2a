/*
 * graph_api.c — GET /api/v1/graph and /api/v1/graph/stats (graph.h): the query checked
 * (graph_query.h), the archive's path found (store.h), the cache asked (graph_cache.h),
 * else the request joins the draw of the same key or queues a new one; one draw at a time
 * runs on the thread pool (graph_draw.h) and answers every request waiting for it
 * (kvl_http_defer / kvl_http_answer_bytes).
 */
#include "graph.h"

#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_cache.h"
#include "graph_draw.h"
#include "graph_query.h"
#include "http.h"
#include "kvl.h"
#include "log.h"
#include "names.h"
#include "store.h"
#include "timeutil.h"

#define STEPS_SLOTS 1024 /* archives whose step is remembered (direct-mapped by path) */
#define TITLE_LEN 400

typedef struct waiter {
    kvl_http_later_t *later;
    kvl_graph_format_t format;
} waiter_t;

typedef struct draw {
    uv_work_t work;
    struct draw *next; /* the queue */
    kvl_graph_t *g;
    char key[KVL_GRAPH_KEY_MAX];
    char path[PATH_MAX];
    char title[TITLE_LEN];
    kvl_graph_draw_t d;
    int64_t ttl_ms;
    waiter_t *waiters;
    size_t n_waiters, cap_waiters;
    /* the result */
    int rc;
    kvl_graph_image_t img;
    char err[512];
} draw_t;

typedef struct step_slot {
    uint64_t hash;
    uint32_t step;
} step_slot_t;

struct kvl_graph {
    kvl_graph_opts_t o;
    char *data_dir;
    kvl_graph_cache_t *cache;
    draw_t *head, *tail; /* queued, the first one under way when running */
    size_t queued;
    bool running;
    bool freeing;
    step_slot_t steps[STEPS_SLOTS];
    uint64_t requests, hits, coalesced, draws, failures, busy;
};

static int64_t graph_now_ms(const kvl_graph_t *g)
{
    return g->o.now_ms != NULL ? g->o.now_ms() : kvl_now_ms();
}

static const char *param(const void *ctx, const char *key)
{
    return kvl_http_query(ctx, key);
}

static uint64_t path_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        h = (h ^ *p) * 1099511628211ull;
    }
    return h | 1; /* never 0: an empty slot */
}

static uint32_t step_of(const kvl_graph_t *g, const char *path)
{
    uint64_t h = path_hash(path);
    const step_slot_t *s = &g->steps[h % STEPS_SLOTS];
    return s->hash == h ? s->step : 0;
}

static void step_learn(kvl_graph_t *g, const char *path, uint32_t step)
{
    if (step == 0) {
        return;
    }
    uint64_t h = path_hash(path);
    g->steps[h % STEPS_SLOTS] = (step_slot_t){h, step};
}

/* ----------------------------------------------------------------- answers ------------- */

static char *base64(const char *in, size_t len, size_t *outlen)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 4 * ((len + 2) / 3);
    char *out = malloc(n + 1);
    if (out == NULL) {
        return NULL;
    }
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= p[i + 2];
        }
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    *outlen = o;
    return out;
}

static json_t *image_json(const kvl_graph_image_t *img)
{
    size_t n = 0;
    char *b64 = base64(img->bytes, img->len, &n);
    if (b64 == NULL) {
        return NULL;
    }
    static const char prefix[] = "data:image/png;base64,";
    char *uri = malloc(sizeof(prefix) + n);
    json_t *o = NULL;
    if (uri != NULL) {
        memcpy(uri, prefix, sizeof(prefix) - 1);
        memcpy(uri + sizeof(prefix) - 1, b64, n + 1);
        o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "image", uri, "start",
                      (json_int_t)img->start, "end", (json_int_t)img->end, "graph_left",
                      (json_int_t)img->graph_left, "graph_top", (json_int_t)img->graph_top,
                      "graph_width", (json_int_t)img->graph_width, "graph_height",
                      (json_int_t)img->graph_height, "image_width", (json_int_t)img->image_width,
                      "image_height", (json_int_t)img->image_height);
    }
    free(uri);
    free(b64);
    return o;
}

/* The answer of a drawn image in a format: bytes (a copy) or JSON. */
static void answer_image(kvl_http_later_t *later, kvl_http_resp_t *resp,
                         const kvl_graph_image_t *img, kvl_graph_format_t format)
{
    if (format == KVL_GRAPH_JSON) {
        json_t *o = image_json(img);
        if (later != NULL) {
            kvl_http_answer(later, o != NULL ? 200 : 500,
                            o != NULL ? o : json_pack("{s:s}", "error", "out of memory"));
        } else if (o != NULL) {
            resp->status = 200;
            resp->body = o;
        } else {
            kvl_http_error(resp, 500, "out of memory");
        }
        return;
    }
    const char *type = format == KVL_GRAPH_SVG ? "image/svg+xml" : "image/png";
    char *copy = malloc(img->len ? img->len : 1);
    if (copy != NULL) {
        memcpy(copy, img->bytes, img->len);
    }
    if (later != NULL) {
        if (copy != NULL) {
            kvl_http_answer_bytes(later, 200, type, copy, img->len);
        } else {
            kvl_http_answer(later, 500, json_pack("{s:s}", "error", "out of memory"));
        }
    } else if (copy != NULL) {
        resp->status = 200;
        resp->type = type;
        resp->bytes = copy;
        resp->len = img->len;
    } else {
        kvl_http_error(resp, 500, "out of memory");
    }
}

/* ----------------------------------------------------------------- drawing ------------- */

static void kick(kvl_graph_t *g);
static void graph_release(kvl_graph_t *g);

static void draw_free(draw_t *dr)
{
    free(dr->img.bytes);
    free(dr->waiters);
    free(dr);
}

static void draw_work(uv_work_t *w)
{
    draw_t *dr = w->data;
    dr->rc = kvl_graph_draw(&dr->d, &dr->img, dr->err, sizeof(dr->err));
}

static void draw_done(uv_work_t *w, int status)
{
    draw_t *dr = w->data;
    kvl_graph_t *g = dr->g;
    KVL_ASSERT(g->head == dr && g->running && g->queued > 0);
    g->head = dr->next;
    if (g->head == NULL) {
        g->tail = NULL;
    }
    g->queued--;
    g->running = false;
    int code = 200;
    const char *msg = NULL;
    if (status != 0) {
        code = 503;
        msg = "the draw was cancelled";
    } else if (dr->rc == KVL_GRAPH_MISSING || dr->rc == KVL_GRAPH_NODATA) {
        code = 404;
        msg = dr->err;
    } else if (dr->rc != 0) {
        code = 500;
        msg = dr->err;
        KVL_LOG_WARN("graph", dr->path, "%s", dr->err);
    }
    if (code == 200) {
        g->draws++;
        step_learn(g, dr->path, dr->img.step);
        for (size_t i = 0; i < dr->n_waiters; i++) {
            answer_image(dr->waiters[i].later, NULL, &dr->img, dr->waiters[i].format);
        }
        if (!g->freeing) {
            kvl_graph_cache_put(g->cache, dr->key, &dr->img, graph_now_ms(g) + dr->ttl_ms);
        }
    } else {
        g->failures++;
        for (size_t i = 0; i < dr->n_waiters; i++) {
            kvl_http_answer(dr->waiters[i].later, code, json_pack("{s:s}", "error", msg));
        }
    }
    draw_free(dr);
    if (g->freeing) {
        graph_release(g);
        return;
    }
    kick(g);
}

static void kick(kvl_graph_t *g)
{
    while (!g->running && g->head != NULL) {
        draw_t *dr = g->head;
        dr->work.data = dr;
        int rc = uv_queue_work(g->o.loop, &dr->work, draw_work, draw_done);
        if (rc == 0) {
            g->running = true;
            return;
        }
        g->head = dr->next;
        if (g->head == NULL) {
            g->tail = NULL;
        }
        g->queued--;
        g->failures++;
        for (size_t i = 0; i < dr->n_waiters; i++) {
            kvl_http_answer(dr->waiters[i].later, 500,
                            json_pack("{s:s}", "error", uv_strerror(rc)));
        }
        draw_free(dr);
    }
}

static int add_waiter(draw_t *dr, const kvl_http_req_t *req, kvl_graph_format_t format)
{
    if (dr->n_waiters >= KVL_GRAPH_WAITERS_MAX) {
        return KVL_EINVAL;
    }
    if (dr->n_waiters == dr->cap_waiters) {
        size_t cap = dr->cap_waiters ? dr->cap_waiters * 2 : 4;
        waiter_t *v = realloc(dr->waiters, cap * sizeof(*v));
        if (v == NULL) {
            return KVL_ENOMEM;
        }
        dr->waiters = v;
        dr->cap_waiters = cap;
    }
    kvl_http_later_t *later = kvl_http_defer(req);
    if (later == NULL) {
        return KVL_ENOMEM;
    }
    dr->waiters[dr->n_waiters++] = (waiter_t){later, format};
    return 0;
}

/* ----------------------------------------------------------------- the route ----------- */

/* The title: what is drawn, with the device's and interface's description when known. */
static void make_title(const kvl_graph_t *g, const kvl_graph_query_t *q, char *out, size_t len)
{
    static const char *const what[KVL_GRAPH_KINDS] = {
        "traffic", "errors and discards", "packets",     "latency", "one-way delay",
        "MOS",     "availability",        "metric group"};
    const char *alias = NULL;
    if (g->o.label_of != NULL && q->interface != NULL) {
        alias = g->o.label_of(g->o.label_ctx, q->agent, q->device, q->interface, "ifAlias");
    }
    switch (q->kind) {
    case KVL_GRAPH_TRAFFIC:
    case KVL_GRAPH_ERRORS:
    case KVL_GRAPH_PACKETS:
        snprintf(out, len, "%s %s%s%s%s — %s", q->device, q->interface, alias && *alias ? " (" : "",
                 alias && *alias ? alias : "", alias && *alias ? ")" : "", what[q->kind]);
        break;
    case KVL_GRAPH_LATENCY:
    case KVL_GRAPH_OWD:
    case KVL_GRAPH_MOS:
        snprintf(out, len, "%s → %s — %s", q->agent, q->target, what[q->kind]);
        break;
    case KVL_GRAPH_AVAILABILITY:
        snprintf(out, len, "%s (%s) — %s", q->device, q->agent, what[q->kind]);
        break;
    default:
        snprintf(out, len, "%s %s%s%s", q->device, q->group, q->instance[0] ? " " : "",
                 q->instance);
        break;
    }
}

static int archive_path(const kvl_graph_t *g, const kvl_graph_query_t *q, const char *site,
                        char *out, size_t len)
{
    switch (q->kind) {
    case KVL_GRAPH_TRAFFIC:
    case KVL_GRAPH_ERRORS:
    case KVL_GRAPH_PACKETS:
        return kvl_store_path(g->data_dir, site, q->device, KVL_SCOPE_INTERFACE, q->interface, out,
                              len);
    case KVL_GRAPH_LATENCY:
    case KVL_GRAPH_OWD:
    case KVL_GRAPH_MOS:
        /* a link's archive: <site>/_links/<agent>/<target>.rrd (the agent as its device) */
        return kvl_store_path(g->data_dir, site, q->agent, KVL_SCOPE_LINK, q->target, out, len);
    case KVL_GRAPH_AVAILABILITY:
        return kvl_store_path(g->data_dir, site, q->device, KVL_SCOPE_DEVICE, "", out, len);
    case KVL_GRAPH_GROUP:
        return kvl_store_group_path(g->data_dir, site, q->device, q->group, q->instance, out, len);
    default:
        return KVL_EINVAL;
    }
}

static void stats_get(kvl_graph_t *g, kvl_http_resp_t *resp)
{
    kvl_graph_stats_t st;
    kvl_graph_stats(g, &st);
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                          "requests", (json_int_t)st.requests, "hits", (json_int_t)st.hits,
                          "coalesced", (json_int_t)st.coalesced, "draws", (json_int_t)st.draws,
                          "failures", (json_int_t)st.failures, "busy", (json_int_t)st.busy,
                          "queued", (json_int_t)st.queued, "entries", (json_int_t)st.entries,
                          "bytes", (json_int_t)st.bytes, "max_bytes", (json_int_t)st.max_bytes,
                          "evicted", (json_int_t)st.evicted, "expired", (json_int_t)st.expired);
    if (o == NULL) {
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    resp->status = 200;
    resp->body = o;
}

static void graph_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_graph_t *g = ctx;
    if (req->n_segs == 1 && strcmp(req->segs[0], "stats") == 0) {
        stats_get(g, resp);
        return;
    }
    if (req->n_segs > 0) {
        kvl_http_error(resp, 404, "no such resource under /api/v1/graph");
        return;
    }
    kvl_graph_query_t q;
    char why[300];
    int64_t now_ms = graph_now_ms(g);
    if (kvl_graph_query_parse(param, req, now_ms / 1000, &q, why, sizeof(why)) != 0) {
        kvl_http_error(resp, 400, "%s", why);
        return;
    }
    const char *site = g->o.site_of != NULL ? g->o.site_of(g->o.site_ctx, q.agent) : NULL;
    if (site == NULL) {
        kvl_http_error(resp, 404, "agent %s is not known to this collector", q.agent);
        return;
    }
    /* a former name (a link made before a rename) draws the archive that moved */
    char current[KVL_NAME_FILE_MAX + 1];
    const char *cur = q.interface != NULL && g->o.name_of != NULL
                          ? g->o.name_of(g->o.name_ctx, q.agent, q.device, q.interface)
                          : NULL;
    if (cur != NULL && strcmp(cur, q.interface) != 0 && strlen(cur) < sizeof(current)) {
        memcpy(current, cur, strlen(cur) + 1);
        q.interface = current;
    }
    char path[PATH_MAX];
    if (archive_path(g, &q, site, path, sizeof(path)) != 0) {
        kvl_http_error(resp, 404, "no archive can have these names (too long)");
        return;
    }
    g->requests++;
    /* the range rounded to the archive's step or a pixel's seconds, whichever is longer */
    int64_t px = (q.to - q.from) / q.width;
    uint32_t step = step_of(g, path);
    int64_t quantum = px > (int64_t)step ? px : (int64_t)step;
    if (quantum < 1) {
        quantum = 1;
    }
    int64_t ttl_s = px < KVL_GRAPH_TTL_MAX_S ? (px > 1 ? px : 1) : KVL_GRAPH_TTL_MAX_S;
    int64_t from, to;
    kvl_graph_query_round(&q, (uint32_t)quantum, &from, &to);
    char key[KVL_GRAPH_KEY_MAX];
    if (kvl_graph_query_key(&q, from, to, key, sizeof(key)) < 0) {
        kvl_http_error(resp, 400, "the names are too long");
        return;
    }
    const kvl_graph_image_t *img = kvl_graph_cache_get(g->cache, key, now_ms);
    if (img != NULL) {
        g->hits++;
        answer_image(NULL, resp, img, q.format);
        return;
    }
    for (draw_t *dr = g->head; dr != NULL; dr = dr->next) {
        if (strcmp(dr->key, key) == 0) {
            int rc = add_waiter(dr, req, q.format);
            if (rc != 0) {
                g->busy++;
                kvl_http_error(resp, 503, "too many requests wait for this graph: try again");
                return;
            }
            g->coalesced++;
            return;
        }
    }
    if (g->queued >= KVL_GRAPH_QUEUE_MAX) {
        g->busy++;
        kvl_http_error(resp, 503, "%d graphs are waiting to be drawn: try again",
                       KVL_GRAPH_QUEUE_MAX);
        return;
    }
    draw_t *dr = calloc(1, sizeof(*dr));
    if (dr == NULL || add_waiter(dr, req, q.format) != 0) {
        if (dr != NULL) {
            draw_free(dr);
        }
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    dr->g = g;
    memcpy(dr->key, key, strlen(key) + 1);
    snprintf(dr->path, sizeof(dr->path), "%s", path);
    make_title(g, &q, dr->title, sizeof(dr->title));
    dr->d = (kvl_graph_draw_t){.kind = q.kind,
                               .path = dr->path,
                               .title = dr->title,
                               .format = q.format == KVL_GRAPH_SVG ? KVL_GRAPH_SVG : KVL_GRAPH_PNG,
                               .theme = q.theme,
                               .from = from,
                               .to = to,
                               .width = q.width,
                               .height = q.height};
    dr->ttl_ms = ttl_s * 1000;
    if (g->tail != NULL) {
        g->tail->next = dr;
    } else {
        g->head = dr;
    }
    g->tail = dr;
    g->queued++;
    kick(g);
}

/* ----------------------------------------------------------------- life ---------------- */

int kvl_graph_new(const kvl_graph_opts_t *o, kvl_graph_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (o->loop == NULL || o->data_dir == NULL) {
        snprintf(err, errlen, "graph: a loop and a data folder are needed");
        return KVL_EINVAL;
    }
    kvl_graph_t *g = calloc(1, sizeof(*g));
    if (g == NULL || (g->data_dir = strdup(o->data_dir)) == NULL ||
        kvl_graph_cache_new(o->cache_bytes ? o->cache_bytes : KVL_GRAPH_CACHE_BYTES, &g->cache) !=
            0) {
        if (g != NULL) {
            free(g->data_dir);
        }
        free(g);
        snprintf(err, errlen, "graph: out of memory");
        return KVL_ENOMEM;
    }
    g->o = *o;
    g->o.data_dir = g->data_dir;
    *out = g;
    return 0;
}

int kvl_graph_api_register(kvl_graph_t *g, kvl_http_t *http)
{
    return kvl_http_route(http, "GET", "/api/v1/graph", KVL_ROLE_VIEWER, graph_get, g);
}

void kvl_graph_stats(const kvl_graph_t *g, kvl_graph_stats_t *st)
{
    kvl_graph_cache_stats_t cs;
    kvl_graph_cache_stats(g->cache, &cs);
    *st = (kvl_graph_stats_t){.requests = g->requests,
                              .hits = g->hits,
                              .coalesced = g->coalesced,
                              .draws = g->draws,
                              .failures = g->failures,
                              .busy = g->busy,
                              .queued = g->queued,
                              .entries = cs.entries,
                              .bytes = cs.bytes,
                              .max_bytes = cs.max_bytes,
                              .evicted = cs.evicted,
                              .expired = cs.expired};
}

static void graph_release(kvl_graph_t *g)
{
    kvl_graph_cache_free(g->cache);
    free(g->data_dir);
    free(g);
}

void kvl_graph_free(kvl_graph_t *g)
{
    if (g == NULL) {
        return;
    }
    g->freeing = true;
    /* the queued draws not started: answered now; the one under way frees g when done */
    draw_t *keep = g->running ? g->head : NULL;
    draw_t *dr = keep != NULL ? keep->next : g->head;
    while (dr != NULL) {
        draw_t *next = dr->next;
        for (size_t i = 0; i < dr->n_waiters; i++) {
            kvl_http_answer(dr->waiters[i].later, 503,
                            json_pack("{s:s}", "error", "the collector is stopping"));
        }
        draw_free(dr);
        g->queued--;
        dr = next;
    }
    if (keep != NULL) {
        keep->next = NULL;
        g->tail = keep;
        return;
    }
    graph_release(g);
}
