/*
 * test_board_api.c — unit tests for the board's routes (collector/board/board.h) on a real
 * HTTP server (http.h) on a free 127.0.0.1 port, with libcurl as the client on its own
 * thread: 401 without credentials; /sites with the tree, an unplaced site, states from
 * a firing alert and a lost agent, counts; /agents (the ingest's view, faked here, merged
 * with the latest values'); /latest with globs, limit and
 * truncation; /links; /series read from a real archive on the thread pool, equal to what
 * librrd's fetch gives for the same file and range; 400 with a sentence for every bad
 * parameter, 404 for unknown paths and series; a deferred answer outlived by the server
 * (503 to the client, the late answer only frees its handle).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>

#include "board.h"
#include "http.h"
#include "http_auth.h"
#include "http_config.h"
#include "kvl.h"
#include "rrd_store.h"
#include "store.h"

#define MAX_RESULTS 64
#define BODY_MAX (256 * 1024)
#define T0 1700000000LL /* seconds */

typedef struct result {
    long status;
    char *body;
} result_t;

typedef struct fixture {
    char dir[256];
    char token[80];
    kvl_http_cfg_t *cfg;
    kvl_sites_cfg_t *sites;
    kvl_latest_t *latest;
    kvl_board_t *board;
    uv_loop_t loop;
    kvl_http_t *h;
    uv_async_t done;
    uint16_t port;
    result_t res[MAX_RESULTS];
    size_t n_res;
    char rrd[1024];
} fixture_t;

/* ------------------------------------------------------------------ client */

typedef struct buf {
    char *p;
    size_t n, cap;
} buf_t;

static size_t on_body(char *d, size_t sz, size_t nm, void *ud)
{
    buf_t *b = ud;
    size_t n = sz * nm;
    size_t room = b->cap - b->n - 1;
    size_t k = n < room ? n : room;
    memcpy(b->p + b->n, d, k);
    b->n += k;
    b->p[b->n] = '\0';
    return n;
}

static void get(fixture_t *f, const char *path, bool auth)
{
    result_t *r = &f->res[f->n_res++];
    r->body = calloc(1, BODY_MAX);
    char url[4096], hdr[200];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)f->port, path);
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s", f->token);
    CURL *c = curl_easy_init();
    struct curl_slist *hl = auth ? curl_slist_append(NULL, hdr) : NULL;
    buf_t b = {r->body, 0, BODY_MAX};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    r->status = curl_easy_perform(c) == CURLE_OK ? 0 : -1;
    if (r->status == 0) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    }
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
}

static const char *series_q = "/api/v1/series?agent=a1&device=r1&instance=Gi0%2F1&metric=in_octets";

static void script(fixture_t *f)
{
    char p[600];
    get(f, "/api/v1/sites", false);              /* 0: 401 */
    get(f, "/api/v1/sites", true);               /* 1 */
    get(f, "/api/v1/agents", true);              /* 2 */
    get(f, "/api/v1/latest?metric=in_*", true);  /* 3 */
    get(f, "/api/v1/latest?limit=1", true);      /* 4: truncated */
    get(f, "/api/v1/latest?limit=0", true);      /* 5: 400 */
    get(f, "/api/v1/latest?scope=planet", true); /* 6: 400 */
    get(f, "/api/v1/links", true);               /* 7 */
    snprintf(p, sizeof(p), "%s&from=%lld&to=%lld&step=60", series_q, T0, T0 + 1200);
    get(f, p, true);                                   /* 8: the points */
    get(f, "/api/v1/series?agent=a1&device=r1", true); /* 9: 400 */
    snprintf(p, sizeof(p), "%s&from=%lld&to=%lld", series_q, T0 + 100, T0);
    get(f, p, true);                                            /* 10: 400 from>to */
    get(f, "/api/v1/series?agent=a1&device=r9&metric=x", true); /* 11: 404 */
    get(f, "/api/v1/sites/extra", true);                        /* 12: 404 */
    snprintf(p, sizeof(p), "%s&from=%lld&to=%lld&step=1", series_q, T0 - 86400, T0);
    get(f, p, true);                                                /* 13: 400 points */
    get(f, "/api/v1/latest?agent=a1&device=r1&scope=device", true); /* 14 */
    snprintf(p, sizeof(p), "%s&cf=MEDIAN", series_q);
    get(f, p, true); /* 15: 400 cf */
    snprintf(p, sizeof(p), "%s&from=yesterday", series_q);
    get(f, p, true);                            /* 16: 400 from */
    get(f, "/api/v1/links?scope=device", true); /* 17: 400 */
    get(f, "/api/v1/agents?x=1", true);         /* 18: 200 */
}

static void *client_main(void *arg)
{
    fixture_t *f = arg;
    script(f);
    uv_async_send(&f->done);
    return NULL;
}

/* ------------------------------------------------------------------ server side */

static void on_done(uv_async_t *a)
{
    fixture_t *f = a->data;
    kvl_http_free(f->h);
    f->h = NULL;
    kvl_board_free(f->board);
    f->board = NULL;
    uv_close((uv_handle_t *)a, NULL);
}

static void fake_alerts(void *src, kvl_board_alert_fn fn, void *ctx)
{
    KVL_UNUSED(src);
    fn(ctx, "dhq-kollam", "critical");
    fn(ctx, "bhq-2", "minor");
    fn(ctx, NULL, "major"); /* no site label: on no tile */
}

/* The ingest's view: a1 connected, a9 lost, a7 connected at a site without batches yet. */
static void fake_agents(void *src, kvl_board_agent_fn fn, void *ctx)
{
    KVL_UNUSED(src);
    kvl_board_agent_t a[] = {
        {.id = "a7",
         .site = "dhq-idle",
         .version = "0.1.0",
         .connected = true,
         .last_seen_ms = T0 * 1000},
        {.id = "a1",
         .site = "dhq-kollam",
         .version = "0.1.0",
         .connected = true,
         .last_seen_ms = T0 * 1000},
        {.id = "a9",
         .site = "elsewhere",
         .version = "",
         .lost = true,
         .lost_since_ms = T0 * 1000 + 5},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(a); i++) {
        fn(ctx, &a[i]);
    }
}

static kvl_series_def_t defs[] = {
    {.id = 1,
     .device = "r1",
     .scope = KVL_SCOPE_INTERFACE,
     .instance = "Gi0/1",
     .metric = "in_octets",
     .kind = KVL_KIND_COUNTER,
     .interval_s = 60},
    {.id = 2,
     .device = "r1",
     .scope = KVL_SCOPE_DEVICE,
     .instance = "",
     .metric = "reachable",
     .kind = KVL_KIND_GAUGE,
     .interval_s = 60},
    {.id = 3,
     .device = "x",
     .scope = KVL_SCOPE_LINK,
     .instance = "10.0.0.9",
     .metric = "rtt_median_ms",
     .kind = KVL_KIND_GAUGE,
     .interval_s = 60,
     .real = true},
    {.id = 4,
     .device = "x",
     .scope = KVL_SCOPE_LINK,
     .instance = "10.0.0.9",
     .metric = "lost_pct",
     .kind = KVL_KIND_GAUGE,
     .interval_s = 60,
     .real = true},
};

static const kvl_series_def_t *def_of(const void *table, uint32_t id)
{
    KVL_UNUSED(table);
    return id >= 1 && id <= KVL_ARRAY_SIZE(defs) ? &defs[id - 1] : NULL;
}

static const kvl_family_t *fam_of(const void *table, const kvl_series_def_t *d)
{
    KVL_UNUSED(table);
    KVL_UNUSED(d);
    return NULL;
}

static const kvl_sink_defs_t table = {.table = NULL, .def = def_of, .family = fam_of};

static void feed(kvl_latest_t *l, const char *agent, const char *site, int64_t t_s, uint64_t oct)
{
    uint32_t ids[4] = {1, 2, 3, 4};
    uint64_t vals[2] = {oct, 1};
    double reals[2] = {12.5, 0.0};
    kvl_group_t g = {.time_ms = t_s * 1000,
                     .ids = ids,
                     .n_ids = 4,
                     .values = vals,
                     .n_values = 2,
                     .reals = reals,
                     .n_reals = 2};
    kvl_batch_t b = {.seq = 1, .groups = &g, .n_groups = 1};
    kvl_sink_batch_t sb = {.agent = agent, .site = site, .defs = &table, .batch = &b};
    assert_int_equal(kvl_latest_batch(l, &sb), 0);
}

static void make_archive(fixture_t *f)
{
    assert_int_equal(kvl_store_path(f->dir, "dhq-kollam", "r1", KVL_SCOPE_INTERFACE, "Gi0/1",
                                    f->rrd, sizeof(f->rrd)),
                     0);
    char d[1100];
    snprintf(d, sizeof(d), "%s/dhq-kollam", f->dir);
    mkdir(d, 0755);
    snprintf(d, sizeof(d), "%s/dhq-kollam/r1", f->dir);
    mkdir(d, 0755);
    kvl_rrd_ds_t ds = {"in_octets", 1};
    kvl_rrd_rra_t rra = {"AVERAGE", 1, 200};
    char err[300];
    assert_int_equal(kvl_rrd_create(f->rrd, 60, T0 - 60, &ds, 1, &rra, 1, err, sizeof(err)),
                     KVL_RRD_OK);
    for (int i = 0; i <= 20; i++) {
        char u[64];
        snprintf(u, sizeof(u), "%lld:%d", T0 + 60LL * i, 1000 + i * i * 600);
        assert_int_equal(kvl_rrd_update(f->rrd, "in_octets", u, err, sizeof(err)), KVL_RRD_OK);
    }
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/kvl-test-board-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char p[600], err[300];
    snprintf(p, sizeof(p), "%s/tokens", f->dir);
    assert_int_equal(kvl_http_tokens_add(p, "wall", KVL_ROLE_VIEWER, f->token, sizeof(f->token),
                                         err, sizeof(err)),
                     0);
    f->cfg = kvl_http_cfg_new();
    f->cfg->enabled = true;
    f->cfg->port = 0;
    f->cfg->tls = 0;
    f->cfg->threads = 2;
    assert_int_equal(kvl_http_cfg_finish((kvl_cfg_node_t){0}, f->cfg, f->dir, "test-col", NULL), 0);
    f->sites = kvl_sites_cfg_parse_text("s.yaml",
                                        "- {name: noc, kind: noc, label: State NOC}\n"
                                        "- {name: dhq-kollam, parent: noc, kind: dhq}\n"
                                        "- {name: bhq-2, parent: dhq-kollam, kind: bhq}\n"
                                        "- {name: dhq-idle, parent: noc, kind: dhq}\n",
                                        err, sizeof(err));
    assert_non_null(f->sites);
    assert_int_equal(kvl_latest_new(0, NULL, &f->latest, err, sizeof(err)), 0);
    feed(f->latest, "a1", "dhq-kollam", T0, 1000);
    feed(f->latest, "a1", "dhq-kollam", T0 + 60, 1600);
    feed(f->latest, "a9", "elsewhere", T0, 5);
    kvl_event_t ev = {.time_ms = T0 * 1000, .device = "a9", .kind = "agent_lost"};
    kvl_sink_event_t e = {.agent = "a9", .site = "elsewhere", .event = &ev, .synthetic = true};
    kvl_latest_event(f->latest, &e);
    make_archive(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    for (size_t i = 0; i < f->n_res; i++) {
        free(f->res[i].body);
    }
    kvl_http_cfg_free(f->cfg);
    kvl_sites_cfg_free(f->sites);
    kvl_latest_free(f->latest);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static json_t *body_of(fixture_t *f, size_t i, long status)
{
    if (f->res[i].status != status) {
        fail_msg("request %zu: status %ld, want %ld: %s", i, f->res[i].status, status,
                 f->res[i].body);
    }
    json_t *j = json_loads(f->res[i].body, 0, NULL);
    if (j == NULL) {
        fail_msg("request %zu: not JSON: %s", i, f->res[i].body);
    }
    return j;
}

static void want_error(fixture_t *f, size_t i, long status, const char *words)
{
    json_t *j = body_of(f, i, status);
    const char *e = json_string_value(json_object_get(j, "error"));
    if (e == NULL || strstr(e, words) == NULL) {
        fail_msg("request %zu: error '%s' lacks '%s'", i, e ? e : "(none)", words);
    }
    json_decref(j);
}

static json_t *site_named(json_t *sites, const char *name)
{
    size_t i;
    json_t *s;
    json_array_foreach(sites, i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), name) == 0) {
            return s;
        }
    }
    fail_msg("no site %s", name);
    return NULL;
}

static void assert_site(json_t *sites, const char *name, const char *state, const char *own,
                        int agents, int alerts, const char *parent)
{
    json_t *s = site_named(sites, name);
    assert_string_equal(json_string_value(json_object_get(s, "state")), state);
    assert_string_equal(json_string_value(json_object_get(s, "own_state")), own);
    assert_int_equal(json_integer_value(json_object_get(s, "agents")), agents);
    assert_int_equal(json_integer_value(json_object_get(s, "alerts")), alerts);
    const char *p = json_string_value(json_object_get(s, "parent"));
    if (parent == NULL) {
        assert_null(p);
    } else {
        assert_non_null(p);
        assert_string_equal(p, parent);
    }
}

static void check_series(fixture_t *f, json_t *j)
{
    kvl_rrd_points_t pts;
    char err[300];
    assert_int_equal(kvl_rrd_fetch(f->rrd, "AVERAGE", T0, T0 + 1200, 60, &pts, err, sizeof(err)),
                     KVL_RRD_OK);
    json_t *arr = json_object_get(j, "points");
    assert_int_equal(json_array_size(arr), pts.n_rows);
    assert_true(pts.n_rows >= 19);
    assert_int_equal(json_integer_value(json_object_get(j, "step")), 60);
    size_t known = 0;
    for (size_t i = 0; i < pts.n_rows; i++) {
        json_t *p = json_array_get(arr, i);
        assert_int_equal(json_integer_value(json_array_get(p, 0)),
                         pts.start + (int64_t)(i + 1) * 60);
        double v = pts.values[i];
        json_t *jv = json_array_get(p, 1);
        if (isnan(v)) {
            assert_true(json_is_null(jv));
        } else {
            assert_true(fabs(json_real_value(jv) - v) < 1e-9 * (1 + fabs(v)));
            known++;
        }
    }
    assert_true(known >= 18); /* rates 10, 30, 50, ... from the counter's squares */
    kvl_rrd_points_free(&pts);
}

static void test_routes(void **state)
{
    fixture_t *f = *state;
    char err[300];
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(kvl_http_new(&f->loop, f->cfg, &f->h, err, sizeof(err)), 0);
    kvl_board_opts_t o = {.loop = &f->loop,
                          .sites = f->sites,
                          .latest = f->latest,
                          .data_dir = f->dir,
                          .alerts = fake_alerts,
                          .agents = fake_agents};
    assert_int_equal(kvl_board_new(&o, &f->board, err, sizeof(err)), 0);
    assert_int_equal(kvl_board_api_register(f->board, f->h), 0);
    if (kvl_http_start(f->h, err, sizeof(err)) != 0) {
        fail_msg("kvl_http_start: %s", err);
    }
    f->port = kvl_http_port(f->h);
    uv_async_init(&f->loop, &f->done, on_done);
    f->done.data = f;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, client_main, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);

    assert_int_equal(f->res[0].status, 401);
    json_t *j = body_of(f, 1, 200);
    json_t *sites = json_object_get(j, "sites");
    /* the tree's 4, the synthetic root and the one site an agent reports outside it */
    assert_int_equal(json_array_size(sites), 6);
    assert_site(sites, "noc", "critical", "unknown", 0, 0, NULL);
    assert_site(sites, "dhq-kollam", "critical", "critical", 1, 1, "noc");
    assert_site(sites, "bhq-2", "minor", "minor", 0, 1, "dhq-kollam");
    assert_site(sites, "dhq-idle", "ok", "ok", 1, 0, "noc");
    assert_site(sites, "unplaced", "lost", "unknown", 0, 0, NULL);
    assert_site(sites, "elsewhere", "lost", "lost", 1, 0, "unplaced");
    json_t *noc = site_named(sites, "noc");
    assert_string_equal(json_string_value(json_object_get(noc, "label")), "State NOC");
    assert_string_equal(json_string_value(json_object_get(noc, "kind")), "noc");
    json_t *sub = json_object_get(noc, "subtree");
    assert_int_equal(json_integer_value(json_object_get(sub, "agents")), 2);
    assert_int_equal(json_integer_value(json_object_get(sub, "devices")), 1);
    assert_int_equal(json_integer_value(json_object_get(sub, "alerts")), 2);
    assert_int_equal(
        json_integer_value(json_object_get(site_named(sites, "dhq-kollam"), "devices")), 1);
    assert_true(json_is_null(json_object_get(site_named(sites, "elsewhere"), "kind")));
    json_decref(j);

    j = body_of(f, 2, 200);
    json_t *agents = json_object_get(j, "agents");
    assert_int_equal(json_array_size(agents), 3);
    json_t *a7 = json_array_get(agents, 0);
    assert_string_equal(json_string_value(json_object_get(a7, "id")), "a7");
    assert_true(json_is_true(json_object_get(a7, "connected")));
    assert_string_equal(json_string_value(json_object_get(a7, "version")), "0.1.0");
    assert_true(json_is_null(json_object_get(a7, "last_batch_ms"))); /* no batch yet */
    assert_int_equal(json_integer_value(json_object_get(a7, "batches")), 0);
    json_t *a1 = json_array_get(agents, 1);
    assert_int_equal(json_integer_value(json_object_get(a1, "batches")), 2);
    assert_int_equal(json_integer_value(json_object_get(a1, "last_sample_ms")), (T0 + 60) * 1000);
    json_t *a9 = json_array_get(agents, 2);
    assert_string_equal(json_string_value(json_object_get(a9, "id")), "a9");
    assert_true(json_is_true(json_object_get(a9, "lost")));
    assert_true(json_is_false(json_object_get(a9, "connected")));
    assert_true(json_is_null(json_object_get(a9, "version")));
    assert_int_equal(json_integer_value(json_object_get(a9, "lost_since_ms")), T0 * 1000 + 5);
    assert_int_equal(json_integer_value(json_object_get(a9, "last_sample_ms")), T0 * 1000);
    json_decref(j);

    j = body_of(f, 3, 200);
    json_t *vals = json_object_get(j, "values");
    assert_int_equal(json_array_size(vals), 2); /* in_octets of a1 and a9 */
    assert_true(json_is_false(json_object_get(j, "truncated")));
    json_t *v = json_array_get(vals, 0);
    assert_string_equal(json_string_value(json_object_get(v, "agent")), "a1");
    assert_int_equal(json_integer_value(json_object_get(v, "value")), 1600);
    assert_true(fabs(json_real_value(json_object_get(v, "rate")) - 10.0) < 1e-9);
    assert_string_equal(json_string_value(json_object_get(v, "scope")), "interface");
    assert_int_equal(json_integer_value(json_object_get(v, "time_ms")), (T0 + 60) * 1000);
    json_decref(j);

    j = body_of(f, 4, 200);
    assert_int_equal(json_array_size(json_object_get(j, "values")), 1);
    assert_true(json_is_true(json_object_get(j, "truncated")));
    json_decref(j);
    want_error(f, 5, 400, "limit must be a whole number from 1 to 10000");
    want_error(f, 6, 400, "scope must be device, interface, agent, group or link");

    j = body_of(f, 7, 200);
    json_t *links = json_object_get(j, "links");
    assert_int_equal(json_array_size(links), 2);
    json_t *l1 = json_array_get(links, 0);
    assert_string_equal(json_string_value(json_object_get(l1, "target")), "10.0.0.9");
    assert_true(fabs(json_real_value(json_object_get(l1, "rtt_ms")) - 12.5) < 1e-9);
    assert_true(fabs(json_real_value(json_object_get(l1, "loss_pct"))) < 1e-9);
    assert_true(json_is_null(json_object_get(l1, "mos")));
    assert_non_null(json_object_get(json_object_get(l1, "values"), "rtt_median_ms"));
    json_decref(j);

    j = body_of(f, 8, 200);
    check_series(f, j);
    assert_string_equal(json_string_value(json_object_get(j, "site")), "dhq-kollam");
    json_decref(j);
    want_error(f, 9, 400, "agent, device and metric are required");
    want_error(f, 10, 400, "from must be before to");
    want_error(f, 11, 404, "no such series");
    want_error(f, 12, 404, "no such resource");
    want_error(f, 13, 400, "more than 10000 points");
    j = body_of(f, 14, 200);
    vals = json_object_get(j, "values");
    assert_int_equal(json_array_size(vals), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(vals, 0), "metric")),
                        "reachable");
    json_decref(j);
    want_error(f, 15, 400, "cf must be AVERAGE, MIN, MAX or LAST");
    want_error(f, 16, 400, "from must be unix seconds");
    want_error(f, 17, 400, "links are of scope link only");
    json_decref(body_of(f, 18, 200));
}

/* ------------------------------------------------------------------ a deferred answer
 * outlived by the server: the client gets 503 at the stop, the late kvl_http_answer only
 * frees its handle. */

typedef struct slow {
    fixture_t *f;
    kvl_http_later_t *later;
    uv_timer_t stop, answer;
    int answered;
} slow_t;

static void on_answer(uv_timer_t *t)
{
    slow_t *s = t->data;
    kvl_http_answer(s->later, 200, json_pack("{s:s}", "too", "late"));
    s->answered++;
    uv_close((uv_handle_t *)t, NULL);
}

static void on_stop(uv_timer_t *t)
{
    slow_t *s = t->data;
    kvl_http_free(s->f->h);
    s->f->h = NULL;
    uv_close((uv_handle_t *)t, NULL);
}

static void slow_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    slow_t *s = ctx;
    KVL_UNUSED(resp);
    s->later = kvl_http_defer(req);
    assert_non_null(s->later);
    uv_timer_start(&s->stop, on_stop, 100, 0);
    uv_timer_start(&s->answer, on_answer, 400, 0);
}

static void *slow_client(void *arg)
{
    fixture_t *f = arg;
    get(f, "/api/v1/slow", true);
    return NULL;
}

static void test_defer_stop(void **state)
{
    fixture_t *f = *state;
    char err[300];
    slow_t s = {.f = f};
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &s.stop);
    uv_timer_init(&f->loop, &s.answer);
    s.stop.data = s.answer.data = &s;
    assert_int_equal(kvl_http_new(&f->loop, f->cfg, &f->h, err, sizeof(err)), 0);
    assert_int_equal(kvl_http_route(f->h, "GET", "/api/v1/slow", KVL_ROLE_VIEWER, slow_get, &s), 0);
    assert_int_equal(kvl_http_start(f->h, err, sizeof(err)), 0);
    f->port = kvl_http_port(f->h);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_client, f), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    pthread_join(t, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    assert_int_equal(s.answered, 1);
    want_error(f, 0, 503, "the collector is stopping");
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_routes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defer_stop, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
