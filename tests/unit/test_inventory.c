/*
 * test_inventory.c — unit tests for the collector's inventory (collector/inventory/): labels
 * kept per agent, device and interface through the sink, restored from its files (also
 * with a damaged and a torn line), the label changes kept and bounded (memory and files),
 * retirement by the device's ifIndexes, by another port taking an ifIndex and by the agent's
 * configured devices, renames (the rule; the old name an alias, the archive's move asked of the
 * store after the record, again after a restart until answered; what is never merged),
 * forgetting, a device's LLDP/CDP neighbours (kept, gone and back by the device's
 * neighbour list, changes recorded, restored, read by kvl_inventory_each_neighbour),
 * the memory a large inventory holds, and the API's handlers (filters, search,
 * 400 with a sentence for every bad parameter, 404, the routes' roles).
 *
 * The HTTP server is faked here at link time (kvl_http_route, kvl_http_query and
 * kvl_http_error serve hand-made requests, as in test_book.c); the server's own
 * authentication (401/403) is tested in test_http.c and against this API in
 * tests/integration/test_inventory.sh.
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

#include "head_line.h"

#include "http.h"
#include "inventory.h"
#include "inventory_api.h"
#include "inventory_each.h"
#include "kvl.h"

/* --- the fake HTTP server ------------------------------------------------------------------- */

typedef struct route {
    char method[8];
    char prefix[64];
    kvl_role_t role;
    kvl_http_handler_fn fn;
    void *ctx;
} route_t;

static route_t g_routes[8];
static size_t g_n_routes;

int kvl_http_route(kvl_http_t *h, const char *method, const char *prefix, kvl_role_t min_role,
                   kvl_http_handler_fn fn, void *ctx)
{
    (void)h;
    assert_true(g_n_routes < 8);
    route_t *r = &g_routes[g_n_routes++];
    snprintf(r->method, sizeof(r->method), "%s", method);
    snprintf(r->prefix, sizeof(r->prefix), "%s", prefix);
    r->role = min_role;
    r->fn = fn;
    r->ctx = ctx;
    return 0;
}

const char *kvl_http_query(const kvl_http_req_t *req, const char *key)
{
    const char *text = req->priv;
    static char value[1024];
    size_t kl = strlen(key);
    const char *p = text != NULL ? text : "";
    while (*p != '\0') {
        const char *end = strchr(p, '&');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len >= kl + 1 && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            snprintf(value, sizeof(value), "%.*s", (int)(len - kl - 1), p + kl + 1);
            return value;
        }
        p += len + (end != NULL ? 1 : 0);
    }
    return NULL;
}

void kvl_http_error(kvl_http_resp_t *resp, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    resp->status = status;
    resp->body = json_pack("{s:s}", "error", msg);
}

static const route_t *route_for(const char *method, const char *path)
{
    const route_t *best = NULL;
    for (size_t i = 0; i < g_n_routes; i++) {
        size_t pl = strlen(g_routes[i].prefix);
        if (strcmp(g_routes[i].method, method) == 0 && strncmp(path, g_routes[i].prefix, pl) == 0 &&
            (path[pl] == '\0' || path[pl] == '/') && (best == NULL || pl > strlen(best->prefix))) {
            best = &g_routes[i];
        }
    }
    return best;
}

static kvl_http_resp_t call(const char *method, const char *path, const char *query)
{
    const route_t *r = route_for(method, path);
    assert_non_null(r);
    static char segbuf[512];
    snprintf(segbuf, sizeof(segbuf), "%s", path + strlen(r->prefix));
    kvl_http_req_t req = {.method = method, .path = path, .user = "asha", .role = KVL_ROLE_ADMIN};
    for (char *p = strtok(segbuf, "/"); p != NULL && req.n_segs < KVL_HTTP_MAX_SEGS;
         p = strtok(NULL, "/")) {
        req.segs[req.n_segs++] = p;
    }
    req.priv = query;
    kvl_http_resp_t resp = {.status = 200};
    r->fn(r->ctx, &req, &resp);
    return resp;
}

/* --- the clock, the folder ---------------------------------------------------------------- */

static int64_t g_now = 1796464800000LL; /* 2026-12-05T10:00:00Z */

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return g_now;
}

/* The renames asked of the store, "agent site device from to" each. */
static char g_renames[8][300];
static size_t g_n_renames;

static void record_rename(void *ctx, const char *agent, const char *site, const char *device,
                          const char *from, const char *to)
{
    (void)ctx;
    assert_true(g_n_renames < 8);
    snprintf(g_renames[g_n_renames++], sizeof(g_renames[0]), "%s %s %s %s %s", agent, site, device,
             from, to);
}

typedef struct fixture {
    char dir[256];
    kvl_inventory_t *inv;
    size_t changes_max;
} fixture_t;

static kvl_inventory_t *open_inv(fixture_t *f)
{
    char err[256] = "";
    kvl_inventory_opts_t o = {.dir = f->dir,
                              .changes_max = f->changes_max,
                              .now_ms = fake_clock,
                              .on_rename = record_rename};
    kvl_inventory_t *inv = NULL;
    int rc = kvl_inventory_new(&o, &inv, err, sizeof(err));
    if (rc != 0) {
        fail_msg("kvl_inventory_new: %s", err);
    }
    g_n_routes = 0;
    assert_int_equal(kvl_inventory_api_register(inv, (kvl_http_t *)inv), 0);
    return inv;
}

static void reopen(fixture_t *f)
{
    kvl_inventory_free(f->inv);
    f->inv = open_inv(f);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    g_now = 1796464800000LL;
    g_n_renames = 0;
    snprintf(f->dir, sizeof(f->dir), "/tmp/kvl-test-inventory-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->inv = open_inv(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    kvl_inventory_free(f->inv);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* --- definitions as the poller sends them ------------------------------------------------- */

static void def_device(kvl_inventory_t *inv, const char *agent, const char *dev,
                       const char *sysname, const char *ifindexes)
{
    kvl_label_t l[4] = {
        {"sysName", sysname}, {"sysDescr", "Test router, IOS 15"}, {"address", "127.0.0.1:16100"}};
    size_t n = 3;
    if (ifindexes != NULL) {
        l[n++] = (kvl_label_t){"ifIndexes", ifindexes};
    }
    kvl_series_def_t d = {.id = 1,
                          .device = dev,
                          .scope = KVL_SCOPE_DEVICE,
                          .instance = "",
                          .family = 1,
                          .labels = l,
                          .n_labels = n};
    assert_int_equal(kvl_inventory_define(inv, agent, "dhq-one", &d, g_now), 0);
}

static void def_iface_mac(kvl_inventory_t *inv, const char *agent, const char *dev,
                          const char *name, unsigned ifindex, const char *alias, const char *mac)
{
    char idx[16];
    snprintf(idx, sizeof(idx), "%u", ifindex);
    kvl_label_t l[] = {{"ifIndex", idx},      {"ifName", name}, {"ifDescr", name},
                       {"ifAlias", alias},    {"ifType", "6"},  {"ifSpeed", "1000000000"},
                       {"ifPhysAddress", mac}};
    kvl_series_def_t d = {.id = 10 + ifindex,
                          .device = dev,
                          .scope = KVL_SCOPE_INTERFACE,
                          .instance = name,
                          .family = 2,
                          .labels = l,
                          .n_labels = KVL_ARRAY_SIZE(l)};
    assert_int_equal(kvl_inventory_define(inv, agent, "dhq-one", &d, g_now), 0);
}

static void def_iface(kvl_inventory_t *inv, const char *agent, const char *dev, const char *name,
                      unsigned ifindex, const char *alias)
{
    def_iface_mac(inv, agent, dev, name, ifindex, alias, "00:1b:2c:3d:4e:5f");
}

static json_t *device_of(const char *agent, const char *dev)
{
    char path[300];
    snprintf(path, sizeof(path), "/api/v1/devices/%s/%s", agent, dev);
    kvl_http_resp_t r = call("GET", path, NULL);
    assert_int_equal(r.status, 200);
    return r.body;
}

static json_t *iface_of(json_t *dev, const char *name)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(dev, "interface_list"), i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "name")), name) == 0) {
            return o;
        }
    }
    fail_msg("no interface %s", name);
    return NULL;
}

static bool is_retired(json_t *o)
{
    return !json_is_null(json_object_get(o, "retired"));
}

/* --- tests -------------------------------------------------------------------------------- */

static void test_keeps_and_answers(void **state)
{
    fixture_t *f = *state;
    def_device(f->inv, "ag1", "rtr1", "rtr1.example", NULL);
    def_iface(f->inv, "ag1", "rtr1", "Gi0/1", 1, "to DHQ Kollam");
    def_iface(f->inv, "ag1", "rtr1", "Gi0/2", 2, "");
    def_device(f->inv, "ag2", "sw9", "sw9.example", NULL);

    json_t *d = device_of("ag1", "rtr1");
    assert_string_equal(json_string_value(json_object_get(d, "sysName")), "rtr1.example");
    assert_string_equal(json_string_value(json_object_get(d, "site")), "dhq-one");
    assert_int_equal(json_integer_value(json_object_get(d, "interfaces")), 2);
    json_t *i = iface_of(d, "Gi0/1");
    assert_int_equal(json_integer_value(json_object_get(i, "ifIndex")), 1);
    assert_int_equal(json_integer_value(json_object_get(i, "speed")), 1000000000);
    assert_int_equal(json_integer_value(json_object_get(i, "type")), 6);
    assert_string_equal(json_string_value(json_object_get(i, "ifAlias")), "to DHQ Kollam");
    assert_string_equal(json_string_value(json_object_get(i, "mac")), "00:1b:2c:3d:4e:5f");
    assert_string_equal(json_string_value(json_object_get(i, "first_seen")),
                        "2026-12-05T10:00:00.000Z");
    assert_false(is_retired(i));
    json_decref(d);

    kvl_http_resp_t r = call("GET", "/api/v1/devices", "agent=ag2");
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(json_object_get(r.body, "devices")), 1);
    json_decref(r.body);
    r = call("GET", "/api/v1/devices", "q=RTR1.EXAM");
    assert_int_equal(json_integer_value(json_object_get(r.body, "total")), 1);
    json_decref(r.body);
    r = call("GET", "/api/v1/devices", "q=127.0.0.1&limit=1");
    assert_int_equal(json_integer_value(json_object_get(r.body, "total")), 2);
    assert_int_equal(json_array_size(json_object_get(r.body, "devices")), 1);
    assert_true(json_is_true(json_object_get(r.body, "truncated")));
    json_decref(r.body);
    r = call("GET", "/api/v1/devices", "site=elsewhere");
    assert_int_equal(json_integer_value(json_object_get(r.body, "total")), 0);
    json_decref(r.body);

    r = call("GET", "/api/v1/search", "q=kollam");
    assert_int_equal(r.status, 200);
    json_t *ifs = json_object_get(r.body, "interfaces");
    assert_int_equal(json_array_size(ifs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ifs, 0), "device")),
                        "rtr1");
    assert_int_equal(json_array_size(json_object_get(r.body, "devices")), 0);
    json_decref(r.body);

    r = call("GET", "/api/v1/devices/ag1/nope", NULL);
    assert_int_equal(r.status, 404);
    json_decref(r.body);
    r = call("GET", "/api/v1/devices/ag1", NULL);
    assert_int_equal(r.status, 404);
    json_decref(r.body);

    /* names JSON cannot hold are refused, labels it cannot hold left out */
    kvl_series_def_t bad = {.device = "r\xff", .scope = KVL_SCOPE_DEVICE, .instance = ""};
    assert_int_equal(kvl_inventory_define(f->inv, "ag1", "dhq-one", &bad, g_now), KVL_EINVAL);
    kvl_label_t odd[] = {{"sysName", "ok"}, {"sysDescr", "\xc3\x28"}};
    kvl_series_def_t dev3 = {
        .device = "rtr3", .scope = KVL_SCOPE_DEVICE, .instance = "", .labels = odd, .n_labels = 2};
    assert_int_equal(kvl_inventory_define(f->inv, "ag1", "dhq-one", &dev3, g_now), 0);
    d = device_of("ag1", "rtr3");
    assert_string_equal(json_string_value(json_object_get(d, "sysName")), "ok");
    assert_true(json_is_null(json_object_get(d, "sysDescr")));
    json_decref(d);

    /* a value is cut at 1,024 bytes; labels beyond 4 KiB for one entry are not kept */
    static char big[1500];
    memset(big, 'x', sizeof(big) - 1);
    kvl_label_t three[] = {{"a", big}, {"b", big}, {"c", big}};
    kvl_series_def_t dev4 = {.device = "rtr4",
                             .scope = KVL_SCOPE_DEVICE,
                             .instance = "",
                             .labels = three,
                             .n_labels = 3};
    assert_int_equal(kvl_inventory_define(f->inv, "ag1", "dhq-one", &dev4, g_now), 0);
    d = device_of("ag1", "rtr4");
    assert_int_equal(strlen(json_string_value(json_object_get(json_object_get(d, "labels"), "c"))),
                     KVL_INV_LABEL_MAX);
    json_decref(d);
    kvl_label_t more[] = {{"d", big}};
    dev4.labels = more;
    dev4.n_labels = 1;
    assert_int_equal(kvl_inventory_define(f->inv, "ag1", "dhq-one", &dev4, g_now), 0);
    d = device_of("ag1", "rtr4");
    assert_null(json_object_get(json_object_get(d, "labels"), "d"));
    assert_int_equal(json_object_size(json_object_get(d, "labels")), 3);
    json_decref(d);

    /* roles: reading is for viewers, forgetting for admins */
    assert_int_equal(route_for("GET", "/api/v1/devices")->role, KVL_ROLE_VIEWER);
    assert_int_equal(route_for("GET", "/api/v1/search")->role, KVL_ROLE_VIEWER);
    assert_int_equal(route_for("DELETE", "/api/v1/devices/a/b")->role, KVL_ROLE_ADMIN);
}

static void test_bad_parameters(void **state)
{
    fixture_t *f = *state;
    /* one process at a time on a folder */
    kvl_inventory_opts_t o = {.dir = f->dir};
    kvl_inventory_t *second = NULL;
    char err[300] = "";
    assert_int_equal(kvl_inventory_new(&o, &second, err, sizeof(err)), KVL_EIO);
    assert_null(second);
    assert_non_null(strstr(err, "in use by another process"));

    char longq[300], longagent[300];
    memset(longq, 'x', sizeof(longq));
    snprintf(longq, sizeof(longq), "q=%0250d", 7);
    snprintf(longagent, sizeof(longagent), "agent=%0210d", 7);
    static const struct {
        const char *path, *query, *says;
    } bad[] = {
        {"/api/v1/devices", "limit=0", "limit"},
        {"/api/v1/devices", "limit=10001", "limit"},
        {"/api/v1/devices", "limit=12abc", "limit"},
        {"/api/v1/devices", "limit=", "limit"},
        {"/api/v1/devices", "retired=maybe", "retired"},
        {"/api/v1/devices", "q=", "q"},
        {"/api/v1/devices", "agent=", "agent"},
        {"/api/v1/devices", "site=a\tb", "site"},
        {"/api/v1/search", NULL, "q"},
        {"/api/v1/search", "q=", "q"},
        {"/api/v1/search", "q=x&limit=501", "limit"},
        {"/api/v1/search", "q=x&limit=-1", "limit"},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        kvl_http_resp_t r = call("GET", bad[i].path, bad[i].query);
        assert_int_equal(r.status, 400);
        const char *msg = json_string_value(json_object_get(r.body, "error"));
        assert_non_null(msg);
        assert_non_null(strstr(msg, bad[i].says));
        json_decref(r.body);
    }
    kvl_http_resp_t r = call("GET", "/api/v1/search", longq);
    assert_int_equal(r.status, 400);
    json_decref(r.body);
    r = call("GET", "/api/v1/devices", longagent);
    assert_int_equal(r.status, 400);
    json_decref(r.body);
    r = call("GET", "/api/v1/devices", "retired=no&limit=10000&q=a&site=s&agent=a");
    assert_int_equal(r.status, 200);
    json_decref(r.body);
}

static void test_restore(void **state)
{
    fixture_t *f = *state;
    def_device(f->inv, "ag1", "rtr1", "rtr1.example", NULL);
    def_iface(f->inv, "ag1", "rtr1", "Gi0/1", 1, "first alias");
    g_now += 60000;
    def_iface(f->inv, "ag1", "rtr1", "Gi0/1", 1, "second alias");
    json_t *before = device_of("ag1", "rtr1");
    reopen(f);
    json_t *after = device_of("ag1", "rtr1");
    assert_true(json_equal(before, after));
    json_decref(after);

    /* the same through the log alone: a crash before the snapshot (here: the log
     * written again by hand after the snapshot of an empty inventory) */
    kvl_inventory_free(f->inv);
    f->inv = NULL;
    char cmd[800];
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && cp inventory.snap full.snap && "
             "head -1 inventory.snap > snap.head && "
             "gen=$(sed 's/.*\"gen\":\\([0-9]*\\).*/\\1/' snap.head) && "
             "tail -n +2 inventory.snap > body && "
             "head -1 inventory.log > inventory.log.new && cat body >> inventory.log.new && "
             "mv inventory.log.new inventory.log && cp snap.head inventory.snap && "
             "printf 'deadbeef {\"t\":\"entry\"}\\n' >> inventory.log && "
             "printf '0000 torn' >> inventory.log",
             f->dir);
    assert_int_equal(system(cmd), 0);
    f->inv = open_inv(f);
    kvl_inventory_stats_t st;
    kvl_inventory_stats(f->inv, &st);
    assert_int_equal(st.damaged, 1);
    assert_int_equal(st.devices, 1);
    assert_int_equal(st.interfaces, 1);
    after = device_of("ag1", "rtr1");
    assert_true(json_equal(before, after));
    json_t *ch = json_object_get(after, "changes");
    assert_int_equal(json_array_size(ch), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ch, 0), "old")),
                        "first alias");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ch, 0), "new")),
                        "second alias");
    json_decref(before);
    json_decref(after);

    /* opened again with nothing to fold in, it appends to its log: a copy of the folder
     * taken while it runs (a crash) has what was appended */
    reopen(f);
    g_now += 60000;
    def_iface(f->inv, "ag1", "rtr1", "Gi0/1", 1, "third alias");
    fixture_t crash = *f;
    int n = snprintf(crash.dir, sizeof(crash.dir), "%s/copy", f->dir);
    assert_true(n > 0 && (size_t)n < sizeof(crash.dir));
    n = snprintf(cmd, sizeof(cmd), "mkdir '%s' && cp '%s'/*.snap '%s'/*.log '%s'/", crash.dir,
                 f->dir, f->dir, crash.dir);
    assert_true(n > 0 && (size_t)n < sizeof(cmd));
    assert_int_equal(system(cmd), 0);
    kvl_inventory_t *copy = open_inv(&crash);
    after = device_of("ag1", "rtr1");
    assert_string_equal(json_string_value(json_object_get(iface_of(after, "Gi0/1"), "ifAlias")),
                        "third alias");
    assert_int_equal(json_array_size(json_object_get(after, "changes")), 2);
    json_decref(after);
    kvl_inventory_free(copy);
    reopen(f); /* the routes back to f's inventory */
}

/* head_open_fn for the inventory of fixture ctx. */
static int try_inv(void *ctx, char *err, size_t errlen)
{
    fixture_t *f = ctx;
    kvl_inventory_opts_t o = {.dir = f->dir, .changes_max = f->changes_max, .now_ms = fake_clock};
    kvl_inventory_t *inv = NULL;
    int rc = kvl_inventory_new(&o, &inv, err, errlen);
    kvl_inventory_free(inv);
    return rc;
}

/* The files carry the format version: both heads written with it; an inventory written
 * before versions were kept (heads without "format") is read as it is and written again with
 * the version; a newer one in either file is refused with the sentence, the files untouched. */
static void test_format_version(void **state)
{
    fixture_t *f = *state;
    def_device(f->inv, "ag1", "rtr1", "rtr1.example", NULL);
    def_iface(f->inv, "ag1", "rtr1", "Gi0/1", 1, "an alias");
    json_t *before = device_of("ag1", "rtr1");
    kvl_inventory_free(f->inv);
    f->inv = NULL;
    char snap[300], log[300];
    snprintf(snap, sizeof(snap), "%s/inventory.snap", f->dir);
    snprintf(log, sizeof(log), "%s/inventory.log", f->dir);
    expect_heads(snap, log, KVL_INV_FORMAT_VERSION);

    heads_unversioned(snap, log);
    f->inv = open_inv(f);
    json_t *after = device_of("ag1", "rtr1");
    assert_true(json_equal(before, after));
    json_decref(after);
    expect_heads(snap, log, KVL_INV_FORMAT_VERSION);
    kvl_inventory_free(f->inv);
    f->inv = NULL;

    expect_heads_refused(snap, log, KVL_INV_FORMAT_VERSION, "kaaval-collector", try_inv, f);
    f->inv = open_inv(f);
    after = device_of("ag1", "rtr1");
    assert_true(json_equal(before, after));
    json_decref(after);
    json_decref(before);
}

static size_t lines_of(const char *dir, const char *name)
{
    char path[400];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        return 0;
    }
    size_t n = 0;
    int c;
    while ((c = fgetc(fp)) != EOF) {
        n += c == '\n';
    }
    fclose(fp);
    return n;
}

static void test_changes_bounded(void **state)
{
    fixture_t *f = *state;
    kvl_inventory_free(f->inv);
    f->changes_max = 5;
    f->inv = open_inv(f);
    def_device(f->inv, "ag1", "rtr1", "name-0", NULL);
    for (int i = 1; i <= 12; i++) {
        char name[32];
        snprintf(name, sizeof(name), "name-%d", i);
        g_now += 1000;
        def_device(f->inv, "ag1", "rtr1", name, NULL);
    }
    kvl_inventory_stats_t st;
    kvl_inventory_stats(f->inv, &st);
    assert_int_equal(st.changes, 5);
    assert_true(lines_of(f->dir, "changes.log") <= 5);
    assert_true(lines_of(f->dir, "changes.1.log") <= 5);
    reopen(f);
    kvl_inventory_stats(f->inv, &st);
    assert_int_equal(st.changes, 5);
    json_t *d = device_of("ag1", "rtr1");
    json_t *ch = json_object_get(d, "changes"); /* newest first */
    assert_int_equal(json_array_size(ch), 5);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ch, 0), "new")),
                        "name-12");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ch, 4), "old")), "name-7");
    assert_string_equal(json_string_value(json_object_get(d, "sysName")), "name-12");
    json_decref(d);
}

static void test_retire(void **state)
{
    fixture_t *f = *state;
    def_iface(f->inv, "ag1", "rtr1", "Gi0/1", 1, "a");
    def_iface(f->inv, "ag1", "rtr1", "Gi0/2", 2, "b");
    def_iface(f->inv, "ag1", "rtr1", "Gi0/3", 3, "c");
    def_device(f->inv, "ag1", "rtr1", "rtr1", "1 2 3");
    def_device(f->inv, "ag1", "rtr2", "rtr2", "");

    /* Gi0/3 gone from the device */
    g_now += 60000;
    def_device(f->inv, "ag1", "rtr1", "rtr1", "1 2");
    json_t *d = device_of("ag1", "rtr1");
    assert_true(is_retired(iface_of(d, "Gi0/3")));
    assert_false(is_retired(iface_of(d, "Gi0/1")));
    assert_string_equal(json_string_value(json_object_get(iface_of(d, "Gi0/3"), "last_seen")),
                        "2026-12-05T10:01:00.000Z");
    assert_int_equal(json_integer_value(json_object_get(d, "interfaces_retired")), 1);
    json_decref(d);

    /* another port (another MAC) took Gi0/2's ifIndex: the old name is retired (a rename,
     * the same MAC, is test_rename's) */
    g_now += 60000;
    def_iface_mac(f->inv, "ag1", "rtr1", "Te0/2", 2, "b", "00:1b:2c:3d:4e:60");
    d = device_of("ag1", "rtr1");
    assert_true(is_retired(iface_of(d, "Gi0/2")));
    assert_false(is_retired(iface_of(d, "Te0/2")));
    json_decref(d);
    /* and a discovery naming ifIndex 2 keeps the new one, not the old */
    def_device(f->inv, "ag1", "rtr1", "rtr1", "1 2 3");
    d = device_of("ag1", "rtr1");
    assert_true(is_retired(iface_of(d, "Gi0/2")));
    assert_false(is_retired(iface_of(d, "Te0/2")));
    assert_false(is_retired(iface_of(d, "Gi0/3"))); /* back */
    json_decref(d);

    /* rtr2 left the agent's configuration (through the sink's event) */
    kvl_label_t fields[] = {{"device", "rtr1"}};
    kvl_event_t ev = {.time_ms = g_now,
                      .device = "ag1",
                      .kind = "devices_configured",
                      .fields = fields,
                      .n_fields = 1};
    kvl_sink_event_t se = {.agent = "ag1", .site = "dhq-one", .event = &ev};
    kvl_inventory_sink.on_event(f->inv, &se);
    d = device_of("ag1", "rtr2");
    assert_true(is_retired(d));
    json_decref(d);
    kvl_http_resp_t r = call("GET", "/api/v1/devices", "retired=yes");
    assert_int_equal(json_integer_value(json_object_get(r.body, "total")), 1);
    json_decref(r.body);
    r = call("GET", "/api/v1/devices", "retired=no");
    assert_int_equal(json_integer_value(json_object_get(r.body, "total")), 1);
    json_decref(r.body);

    /* kept across a restart */
    reopen(f);
    d = device_of("ag1", "rtr2");
    assert_true(is_retired(d));
    json_decref(d);

    /* a stale definition (older than the retirement) does not bring it back; a new one does */
    g_now -= 1000;
    def_device(f->inv, "ag1", "rtr2", "rtr2", NULL);
    d = device_of("ag1", "rtr2");
    assert_true(is_retired(d));
    json_decref(d);
    g_now += 2000;
    def_device(f->inv, "ag1", "rtr2", "rtr2", NULL);
    d = device_of("ag1", "rtr2");
    assert_false(is_retired(d));
    json_decref(d);

    /* forgotten: gone, also after a restart; archives are not the inventory's */
    r = call("DELETE", "/api/v1/devices/ag1/rtr1", NULL);
    assert_int_equal(r.status, 200);
    json_decref(r.body);
    r = call("DELETE", "/api/v1/devices/ag1/rtr1", NULL);
    assert_int_equal(r.status, 404);
    json_decref(r.body);
    reopen(f);
    r = call("GET", "/api/v1/devices/ag1/rtr1", NULL);
    assert_int_equal(r.status, 404);
    json_decref(r.body);
    assert_int_equal(kvl_inventory_forget(f->inv, "ag1", "rtr1"), KVL_EINVAL);
}

static int g_done;

static void on_done(void *token, const kvl_sink_result_t *res)
{
    (void)token;
    (void)res;
    g_done++;
}

static void test_sink_batch(void **state)
{
    fixture_t *f = *state;
    kvl_label_t dl[] = {{"sysName", "core"}};
    kvl_label_t il[] = {{"ifIndex", "7"}, {"ifAlias", "uplink"}};
    kvl_series_def_t defs[] = {
        {.id = 1,
         .device = "core",
         .scope = KVL_SCOPE_DEVICE,
         .instance = "",
         .labels = dl,
         .n_labels = 1},
        {.id = 6,
         .device = "core",
         .scope = KVL_SCOPE_INTERFACE,
         .instance = "eth7",
         .labels = il,
         .n_labels = 2},
        {.id = 30, .device = "ag5", .scope = KVL_SCOPE_LINK, .instance = "10.0.0.1"},
    };
    kvl_group_t g = {.time_ms = g_now + 5000};
    kvl_batch_t b = {.seq = 1, .defs = defs, .n_defs = 3, .groups = &g, .n_groups = 1};
    kvl_sink_batch_t sb = {.agent = "ag5", .site = "noc", .batch = &b};
    g_done = 0;
    assert_int_equal(kvl_inventory_sink.on_batch(f->inv, &sb, on_done, NULL), 0);
    assert_int_equal(g_done, 1);
    kvl_inventory_stats_t st;
    kvl_inventory_stats(f->inv, &st);
    assert_int_equal(st.devices, 1); /* links are not devices */
    assert_int_equal(st.interfaces, 1);
    /* a later batch without definitions: seen later */
    g.time_ms = g_now + 65000;
    b.n_defs = 0;
    assert_int_equal(kvl_inventory_sink.on_batch(f->inv, &sb, on_done, NULL), 0);
    json_t *d = device_of("ag5", "core");
    assert_string_equal(json_string_value(json_object_get(d, "first_seen")),
                        "2026-12-05T10:00:05.000Z");
    assert_string_equal(json_string_value(json_object_get(d, "last_seen")),
                        "2026-12-05T10:01:05.000Z");
    assert_string_equal(json_string_value(json_object_get(d, "site")), "noc");
    json_decref(d);
}

/* The rename rule: the same ifIndex, then the same MAC, or without MACs the same type and
 * speed. */
static void test_rename_rule(void **state)
{
    (void)state;
    kvl_inv_port_t a = {"5", "00:1b:2c:3d:4e:5f", "6", "1000000000"};
    kvl_inv_port_t b = a;
    assert_true(kvl_inventory_same_interface(&a, &b));
    b.mac = "00:1B:2C:3D:4E:5F"; /* case does not matter */
    assert_true(kvl_inventory_same_interface(&a, &b));
    b.speed = "100000000"; /* with MACs, type and speed may change */
    assert_true(kvl_inventory_same_interface(&a, &b));
    b = a;
    b.mac = "00:1b:2c:3d:4e:60";
    assert_false(kvl_inventory_same_interface(&a, &b));
    b = a;
    b.ifindex = "6";
    assert_false(kvl_inventory_same_interface(&a, &b));
    b = a;
    b.mac = ""; /* one with a MAC, one without */
    assert_false(kvl_inventory_same_interface(&a, &b));
    assert_false(kvl_inventory_same_interface(&b, &a));
    /* neither has a MAC (all zeros counts as none): type and speed decide */
    kvl_inv_port_t c = {"7", "", "131", "0"}, d = {"7", "00:00:00:00:00:00", "131", "0"};
    assert_true(kvl_inventory_same_interface(&c, &d));
    d.type = "24";
    assert_false(kvl_inventory_same_interface(&c, &d));
    d = c;
    d.speed = NULL;
    assert_false(kvl_inventory_same_interface(&c, &d));
    /* ifIndex missing or not a number */
    kvl_inv_port_t e = {NULL, "00:1b:2c:3d:4e:5f", "6", "1"}, g = e;
    assert_false(kvl_inventory_same_interface(&e, &g));
    e.ifindex = g.ifindex = "5a";
    assert_false(kvl_inventory_same_interface(&e, &g));
    e.ifindex = g.ifindex = "";
    assert_false(kvl_inventory_same_interface(&e, &g));
}

static const char *alias_at(json_t *iface, size_t i)
{
    return json_string_value(json_array_get(json_object_get(iface, "aliases"), i));
}

/* A rename through the definitions: the old entry folds into the new name as an alias, the
 * store is asked (after the record is written) to move the archive, the search finds the old
 * name, the pending move is asked again after a restart until the store answers. */
static void test_rename(void **state)
{
    fixture_t *f = *state;
    def_device(f->inv, "ag1", "rtr1", "rtr1", "1 2");
    def_iface(f->inv, "ag1", "rtr1", "Gi0/1", 1, "a");
    def_iface(f->inv, "ag1", "rtr1", "Gi0/2", 2, "to BHQ Anchal");
    assert_int_equal(g_n_renames, 0);

    g_now += 60000;
    def_iface(f->inv, "ag1", "rtr1", "Te0/2", 2, "to BHQ Anchal");
    assert_int_equal(g_n_renames, 1);
    assert_string_equal(g_renames[0], "ag1 dhq-one rtr1 Gi0/2 Te0/2");
    json_t *d = device_of("ag1", "rtr1");
    assert_int_equal(json_array_size(json_object_get(d, "interface_list")), 2);
    json_t *i = iface_of(d, "Te0/2");
    assert_int_equal(json_array_size(json_object_get(i, "aliases")), 1);
    assert_string_equal(alias_at(i, 0), "Gi0/2");
    assert_false(is_retired(i));
    assert_string_equal(json_string_value(json_object_get(i, "first_seen")),
                        "2026-12-05T10:00:00.000Z"); /* its history continues */
    assert_int_equal(json_array_size(json_object_get(iface_of(d, "Gi0/1"), "aliases")), 0);
    bool change = false;
    size_t k;
    json_t *c;
    json_array_foreach(json_object_get(d, "changes"), k, c)
    {
        change |= strcmp(json_string_value(json_object_get(c, "key")), "name") == 0;
    }
    assert_true(change);
    json_decref(d);
    assert_string_equal(kvl_inventory_current_name(f->inv, "ag1", "rtr1", "Gi0/2"), "Te0/2");
    assert_string_equal(kvl_inventory_current_name(f->inv, "ag1", "rtr1", "Te0/2"), "Te0/2");
    assert_null(kvl_inventory_current_name(f->inv, "ag1", "rtr1", "Gi0/9"));
    assert_null(kvl_inventory_current_name(f->inv, "ag1", "rtr9", "Gi0/2"));
    assert_null(kvl_inventory_current_name(f->inv, "ag1", "rtr1", ""));
    kvl_http_resp_t r = call("GET", "/api/v1/search", "q=gi0/2");
    json_t *ifs = json_object_get(r.body, "interfaces");
    assert_int_equal(json_array_size(ifs), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ifs, 0), "name")),
                        "Te0/2");
    json_decref(r.body);
    /* the discovery naming ifIndex 2 keeps it current */
    def_device(f->inv, "ag1", "rtr1", "rtr1", "1 2");
    d = device_of("ag1", "rtr1");
    assert_false(is_retired(iface_of(d, "Te0/2")));
    json_decref(d);

    /* not answered yet: asked again after a restart, with the alias kept */
    reopen(f);
    g_n_renames = 0;
    assert_int_equal(kvl_inventory_pending_moves(f->inv), 1);
    assert_string_equal(g_renames[0], "ag1 dhq-one rtr1 Gi0/2 Te0/2");
    d = device_of("ag1", "rtr1");
    assert_string_equal(alias_at(iface_of(d, "Te0/2"), 0), "Gi0/2");
    assert_int_equal(json_array_size(json_object_get(d, "interface_list")), 2);
    json_decref(d);
    /* the store's answer settles it, also across a restart */
    kvl_inventory_moved(f->inv, "ag1", "rtr1", "Gi0/2", "Te0/2", KVL_INV_MOVED);
    assert_int_equal(kvl_inventory_pending_moves(f->inv), 0);
    reopen(f);
    assert_int_equal(kvl_inventory_pending_moves(f->inv), 0);

    /* renamed back: the old name is the name again, the other one its alias */
    g_now += 60000;
    g_n_renames = 0;
    def_iface(f->inv, "ag1", "rtr1", "Gi0/2", 2, "to BHQ Anchal");
    assert_int_equal(g_n_renames, 1);
    assert_string_equal(g_renames[0], "ag1 dhq-one rtr1 Te0/2 Gi0/2");
    d = device_of("ag1", "rtr1");
    i = iface_of(d, "Gi0/2");
    assert_int_equal(json_array_size(json_object_get(i, "aliases")), 1);
    assert_string_equal(alias_at(i, 0), "Te0/2");
    assert_int_equal(json_array_size(json_object_get(d, "interface_list")), 2);
    json_decref(d);
    /* and once more: the aliases keep their order, oldest first */
    g_now += 60000;
    def_iface(f->inv, "ag1", "rtr1", "Fa0/2", 2, "to BHQ Anchal");
    d = device_of("ag1", "rtr1");
    i = iface_of(d, "Fa0/2");
    assert_int_equal(json_array_size(json_object_get(i, "aliases")), 2);
    assert_string_equal(alias_at(i, 0), "Te0/2");
    assert_string_equal(alias_at(i, 1), "Gi0/2");
    json_decref(d);
    reopen(f);
    g_n_renames = 0;
    assert_int_equal(kvl_inventory_pending_moves(f->inv), 2); /* oldest first */
    assert_string_equal(g_renames[0], "ag1 dhq-one rtr1 Te0/2 Fa0/2");
    assert_string_equal(g_renames[1], "ag1 dhq-one rtr1 Gi0/2 Fa0/2");
    /* an older name's answer does not settle it; both kept is an answer too */
    kvl_inventory_moved(f->inv, "ag1", "rtr1", "Te0/2", "Fa0/2", KVL_INV_NO_ARCHIVE);
    assert_int_equal(kvl_inventory_pending_moves(f->inv), 2);
    kvl_inventory_moved(f->inv, "ag1", "rtr1", "Gi0/2", "Fa0/2", KVL_INV_KEPT_BOTH);
    assert_int_equal(kvl_inventory_pending_moves(f->inv), 2 - 2);
    /* an answer about nothing known is only logged */
    kvl_inventory_moved(f->inv, "ag9", "nope", "x", "y", KVL_INV_MOVED);

    /* renamed again and again: the newest KVL_INV_ALIASES_MAX former names are kept */
    char name[16];
    for (int n = 0; n < KVL_INV_ALIASES_MAX + 4; n++) {
        g_now += 60000;
        g_n_renames = 0;
        snprintf(name, sizeof(name), "P%d", n);
        def_iface(f->inv, "ag1", "rtr1", name, 2, "to BHQ Anchal");
        assert_int_equal(g_n_renames, 1);
    }
    d = device_of("ag1", "rtr1");
    i = iface_of(d, name);
    assert_int_equal(json_array_size(json_object_get(i, "aliases")), KVL_INV_ALIASES_MAX);
    snprintf(name, sizeof(name), "P%d", KVL_INV_ALIASES_MAX + 2);
    assert_string_equal(alias_at(i, KVL_INV_ALIASES_MAX - 1), name);
    assert_int_equal(json_array_size(json_object_get(d, "interface_list")), 2);
    json_decref(d);
}

static kvl_series_def_t iface_def(const char *name, kvl_label_t *l, size_t n)
{
    return (kvl_series_def_t){.id = 40,
                              .device = "rtr1",
                              .scope = KVL_SCOPE_INTERFACE,
                              .instance = name,
                              .labels = l,
                              .n_labels = n};
}

/* What is not a rename: two names of one ifIndex at once (in one batch, in either order, or
 * at one instant), another MAC, a MAC on one side only. */
static void test_not_renamed(void **state)
{
    fixture_t *f = *state;
    def_iface(f->inv, "ag1", "rtr1", "Gi0/2", 2, "");
    g_now += 60000;
    /* a batch naming both, the new one first */
    kvl_label_t l[] = {{"ifIndex", "2"},
                       {"ifType", "6"},
                       {"ifSpeed", "1000000000"},
                       {"ifPhysAddress", "00:1b:2c:3d:4e:5f"}};
    kvl_series_def_t defs[] = {iface_def("Te0/2", l, 4), iface_def("Gi0/2", l, 4)};
    kvl_group_t g = {.time_ms = g_now};
    kvl_batch_t b = {.seq = 1, .defs = defs, .n_defs = 2, .groups = &g, .n_groups = 1};
    kvl_sink_batch_t sb = {.agent = "ag1", .site = "dhq-one", .batch = &b};
    g_done = 0;
    assert_int_equal(kvl_inventory_sink.on_batch(f->inv, &sb, on_done, NULL), 0);
    assert_int_equal(g_done, 1);
    assert_int_equal(g_n_renames, 0);
    json_t *d = device_of("ag1", "rtr1");
    assert_int_equal(json_array_size(json_object_get(d, "interface_list")), 2);
    json_decref(d);

    /* one instant, two names: not merged */
    g_now += 60000;
    def_iface(f->inv, "ag1", "rtr1", "Gi0/3", 3, "");
    def_iface(f->inv, "ag1", "rtr1", "Te0/3", 3, "");
    assert_int_equal(g_n_renames, 0);

    /* another MAC; a MAC on one side only */
    g_now += 60000;
    def_iface(f->inv, "ag1", "rtr1", "Gi0/4", 4, "");
    g_now += 60000;
    def_iface_mac(f->inv, "ag1", "rtr1", "Te0/4", 4, "", "00:1b:2c:3d:4e:99");
    g_now += 60000;
    def_iface_mac(f->inv, "ag1", "rtr1", "Xe0/4", 4, "", "");
    assert_int_equal(g_n_renames, 0);
    d = device_of("ag1", "rtr1");
    assert_int_equal(json_array_size(json_object_get(d, "interface_list")), 7);
    assert_true(is_retired(iface_of(d, "Gi0/4")));
    assert_true(is_retired(iface_of(d, "Te0/4")));
    assert_false(is_retired(iface_of(d, "Xe0/4")));
    json_decref(d);

    /* without MACs: the same type and speed make it a rename (through the sink) */
    g_now += 60000;
    kvl_label_t nl[] = {{"ifIndex", "9"}, {"ifType", "131"}, {"ifSpeed", "0"}};
    kvl_series_def_t t1 = iface_def("tun9", nl, 3);
    b.defs = &t1;
    b.n_defs = 1;
    g.time_ms = g_now;
    assert_int_equal(kvl_inventory_sink.on_batch(f->inv, &sb, on_done, NULL), 0);
    g_now += 60000;
    g.time_ms = g_now;
    kvl_series_def_t t2 = iface_def("Tunnel9", nl, 3);
    b.defs = &t2;
    assert_int_equal(kvl_inventory_sink.on_batch(f->inv, &sb, on_done, NULL), 0);
    assert_int_equal(g_n_renames, 1);
    assert_string_equal(g_renames[0], "ag1 dhq-one rtr1 tun9 Tunnel9");
}

/* Many agents, arriving in no order: each found again (they are kept sorted). */
/* A neighbour as the poller defines it. */
static void def_nbr(kvl_inventory_t *inv, const char *dev, const char *inst, const char *local_if,
                    const char *sys, const char *port)
{
    kvl_label_t l[] = {{"protocol", "lldp"},
                       {"local_port", "5"},
                       {"local_ifindex", "1"},
                       {"local_if", local_if},
                       {"chassis_id", "00:1b:21:bb:e6:f0"},
                       {"sys_name", sys},
                       {"port_id", port},
                       {"mgmt_addr", ""}};
    kvl_series_def_t d = {.id = 500,
                          .device = dev,
                          .scope = KVL_SCOPE_NEIGHBOUR,
                          .instance = inst,
                          .family = 3,
                          .labels = l,
                          .n_labels = KVL_ARRAY_SIZE(l)};
    assert_int_equal(kvl_inventory_define(inv, "ag1", "dhq-one", &d, g_now), 0);
}

/* The device's neighbour list as the poller sends it after a complete walk. */
static void def_dev_nbrs(kvl_inventory_t *inv, const char *dev, const char *list)
{
    kvl_label_t l[] = {{"neighbours", list}, {"lldp_chassis_id", "02:00:00:a1:1c:e5"}};
    kvl_series_def_t d = {.id = 2,
                          .device = dev,
                          .scope = KVL_SCOPE_NEIGHBOUR,
                          .instance = "",
                          .family = 1,
                          .labels = l,
                          .n_labels = KVL_ARRAY_SIZE(l)};
    assert_int_equal(kvl_inventory_define(inv, "ag1", "dhq-one", &d, g_now), 0);
}

static json_t *nbr_of(json_t *dev, const char *inst)
{
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(dev, "neighbours"), i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "instance")), inst) == 0) {
            return o;
        }
    }
    fail_msg("no neighbour %s", inst);
    return NULL;
}

typedef struct nbr_seen {
    size_t n, gone;
    char last_sys[64];
} nbr_seen_t;

static void count_nbr(void *ctx, const kvl_inventory_nbr_t *n)
{
    nbr_seen_t *s = ctx;
    s->n++;
    s->gone += n->gone_ms != 0;
    snprintf(s->last_sys, sizeof(s->last_sys), "%s", n->sys_name);
    assert_string_equal(n->agent, "ag1");
    assert_string_equal(n->site, "dhq-one");
    assert_string_equal(n->protocol, "lldp");
}

static void test_neighbours(void **state)
{
    fixture_t *f = *state;
    def_nbr(f->inv, "sw1", "lldp.5.1", "Gi0/1", "dist-1", "Gi1/0/24");
    def_nbr(f->inv, "sw1", "lldp.6.2", "Gi0/2", "dist-2", "Gi1/0/1");
    def_dev_nbrs(f->inv, "sw1", "lldp.5.1 lldp.6.2");
    json_t *d = device_of("ag1", "sw1");
    assert_int_equal(json_array_size(json_object_get(d, "neighbours")), 2);
    json_t *n = nbr_of(d, "lldp.5.1");
    assert_string_equal(json_string_value(json_object_get(n, "sys_name")), "dist-1");
    assert_string_equal(json_string_value(json_object_get(n, "local_if")), "Gi0/1");
    assert_false(is_retired(n));
    /* the list is no neighbour of its own; the device's own LLDP id is a device label */
    assert_int_equal(json_array_size(json_object_get(d, "neighbours")), 2);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(d, "labels"), "lldp_chassis_id")),
        "02:00:00:a1:1c:e5");
    json_decref(d);

    /* recabled: lldp.5.1 now another system and port; lldp.6.2 gone */
    g_now += 60000;
    def_nbr(f->inv, "sw1", "lldp.5.1", "Gi0/1", "dist-3", "Gi1/0/7");
    def_dev_nbrs(f->inv, "sw1", "lldp.5.1");
    d = device_of("ag1", "sw1");
    n = nbr_of(d, "lldp.5.1");
    assert_string_equal(json_string_value(json_object_get(n, "sys_name")), "dist-3");
    assert_false(is_retired(n));
    assert_true(is_retired(nbr_of(d, "lldp.6.2")));
    bool sys_change = false;
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(d, "changes"), i, c)
    {
        sys_change |= strcmp(json_string_value(json_object_get(c, "key")), "sys_name") == 0 &&
                      strcmp(json_string_value(json_object_get(c, "old")), "dist-1") == 0 &&
                      strcmp(json_string_value(json_object_get(c, "new")), "dist-3") == 0;
    }
    assert_true(sys_change);

    /* kept across a restart (snapshot and log) */
    reopen(f);
    json_t *after = device_of("ag1", "sw1");
    assert_true(json_equal(d, after));
    json_decref(after);
    json_decref(d);

    nbr_seen_t seen = {0};
    kvl_inventory_each_neighbour(f->inv, NULL, count_nbr, &seen);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.gone, 1);
    memset(&seen, 0, sizeof(seen));
    kvl_inventory_each_neighbour(f->inv, "other-agent", count_nbr, &seen);
    assert_int_equal(seen.n, 0);

    /* back: listed again (its definition unchanged, so not sent again) */
    g_now += 60000;
    def_dev_nbrs(f->inv, "sw1", "lldp.5.1 lldp.6.2");
    d = device_of("ag1", "sw1");
    assert_false(is_retired(nbr_of(d, "lldp.6.2")));
    json_decref(d);

    /* a neighbour whose instance is not UTF-8 is refused; forgetting the device forgets them */
    kvl_series_def_t bad = {
        .id = 9, .device = "sw1", .scope = KVL_SCOPE_NEIGHBOUR, .instance = "lldp.\xff"};
    assert_int_equal(kvl_inventory_define(f->inv, "ag1", "dhq-one", &bad, g_now), KVL_EINVAL);
    assert_int_equal(kvl_inventory_forget(f->inv, "ag1", "sw1"), 0);
    memset(&seen, 0, sizeof(seen));
    kvl_inventory_each_neighbour(f->inv, NULL, count_nbr, &seen);
    assert_int_equal(seen.n, 0);
    reopen(f);
    memset(&seen, 0, sizeof(seen));
    kvl_inventory_each_neighbour(f->inv, NULL, count_nbr, &seen);
    assert_int_equal(seen.n, 0);
}

static void test_many_agents(void **state)
{
    fixture_t *f = *state;
    char agent[32], query[64];
    for (unsigned i = 0; i < 300; i++) {
        snprintf(agent, sizeof(agent), "agent-%03u", (i * 7919u) % 300u);
        def_device(f->inv, agent, "rtr", "rtr", NULL);
    }
    kvl_inventory_stats_t st;
    kvl_inventory_stats(f->inv, &st);
    assert_int_equal(st.agents, 300);
    for (unsigned i = 0; i < 300; i++) {
        snprintf(query, sizeof(query), "agent=agent-%03u", i);
        kvl_http_resp_t r = call("GET", "/api/v1/devices", query);
        assert_int_equal(json_integer_value(json_object_get(r.body, "total")), 1);
        json_decref(r.body);
    }
    def_device(f->inv, "agent-150", "rtr", "rtr", NULL);
    kvl_inventory_stats(f->inv, &st);
    assert_int_equal(st.agents, 300);
    assert_int_equal(st.devices, 300);
}

/* 2,000 devices x 50 interfaces with the poller's labels: what it holds. */
/* A device whose labels changed many times has one record per change in the log; after a
 * crash they are restored in order, each replacing the one before: the memory counted is
 * what the last one holds, not the sum (the changes' ring is the same size both times). */
static void test_restore_counts_once(void **state)
{
    fixture_t *f = *state;
    char name[64];
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "a-long-enough-system-name-for-the-count-%d", i);
        g_now += 1000;
        def_device(f->inv, "ag1", "rtr1", name, NULL);
    }
    kvl_inventory_stats_t live, back;
    kvl_inventory_stats(f->inv, &live);
    /* a crash: the files as they are now (the log holds every record), not the snapshot a
     * clean stop would write */
    char cmd[800];
    snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s.crash'", f->dir, f->dir);
    assert_int_equal(system(cmd), 0);
    kvl_inventory_free(f->inv);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mv '%s.crash' '%s'", f->dir, f->dir, f->dir);
    assert_int_equal(system(cmd), 0);
    f->inv = open_inv(f);
    kvl_inventory_stats(f->inv, &back);
    assert_int_equal(back.changes, live.changes);
    /* 199 replaced records of ~100 bytes each would add ~20 KB */
    assert_true(back.bytes < live.bytes + 4096);
}

static void test_memory(void **state)
{
    fixture_t *f = *state;
    char dev[32], name[32], alias[64], idx[16], mac[32];
    for (int i = 0; i < 2000; i++) {
        snprintf(dev, sizeof(dev), "blk-%04d-rtr", i);
        def_device(f->inv, "agent-a", dev, dev, NULL);
        for (int j = 1; j <= 50; j++) {
            snprintf(name, sizeof(name), "GigabitEthernet0/%d", j);
            snprintf(alias, sizeof(alias), "to block %d office %d", i, j);
            snprintf(idx, sizeof(idx), "%d", j);
            snprintf(mac, sizeof(mac), "00:1b:2c:%02x:%02x:%02x", i >> 8, i & 255, j);
            kvl_label_t l[] = {{"ifIndex", idx},      {"ifName", name}, {"ifDescr", name},
                               {"ifAlias", alias},    {"ifType", "6"},  {"ifSpeed", "1000000000"},
                               {"ifPhysAddress", mac}};
            kvl_series_def_t d = {.device = dev,
                                  .scope = KVL_SCOPE_INTERFACE,
                                  .instance = name,
                                  .labels = l,
                                  .n_labels = KVL_ARRAY_SIZE(l)};
            assert_int_equal(kvl_inventory_define(f->inv, "agent-a", "s", &d, g_now), 0);
        }
    }
    kvl_inventory_stats_t st;
    kvl_inventory_stats(f->inv, &st);
    assert_int_equal(st.interfaces, 100000);
    printf("inventory of 2,000 devices x 50 interfaces: %.1f MB (%zu bytes per interface)\n",
           (double)st.bytes / 1e6, st.bytes / st.interfaces);
    assert_true(st.bytes < 40u * 1000 * 1000);
    reopen(f);
    kvl_inventory_stats(f->inv, &st);
    assert_int_equal(st.interfaces, 100000);
    assert_int_equal(st.devices, 2000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keeps_and_answers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_parameters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_format_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changes_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retire, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_batch, setup, teardown),
        cmocka_unit_test(test_rename_rule),
        cmocka_unit_test_setup_teardown(test_rename, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_renamed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_neighbours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_agents, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_counts_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
