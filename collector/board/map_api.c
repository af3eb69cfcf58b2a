/*
 * map_api.c — GET /api/v1/map (map.h): the board's site entries as nodes with their
 * placement hints, and per site with a parent an edge from its uplink interface's latest
 * rates and speed and from one link's latest loss and RTT. One pass over the latest values
 * finds the links (and the agents of uplinks that name none); every value then is a lookup.
 */
#include "map.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"

/* A link (agent, target) of the latest values, with its agent's site. */
typedef struct map_link {
    const char *agent, *site, *target; /* valid while the latest values live */
} map_link_t;

typedef struct map_index {
    const kvl_latest_t *latest;
    const kvl_sites_cfg_t *sites;
    json_t *agent_site;  /* agent id -> its site (string) */
    json_t *site_agents; /* site -> {agent id: true} */
    json_t *by_site;     /* a link's agent's site -> [link positions] */
    json_t *by_target;   /* target -> [link positions] */
    json_t *want;        /* "device\tinterface" of uplinks naming no agent -> agent id or null */
    map_link_t *links;
    size_t n_links, cap_links;
    bool nomem;
} map_index_t;

static void key2(char *out, size_t len, const char *a, const char *b)
{
    snprintf(out, len, "%s\t%s", a, b);
}

/* Appends n to the array at obj[key] (made when missing). A key jansson refuses (not
 * UTF-8) is skipped: such a name cannot be in the JSON answer either. */
static void push_at(map_index_t *ix, json_t *obj, const char *key, size_t n)
{
    json_t *arr = json_object_get(obj, key);
    if (arr == NULL) {
        arr = json_array();
        if (arr == NULL) {
            ix->nomem = true;
            return;
        }
        if (json_object_set_new(obj, key, arr) != 0) {
            return;
        }
    }
    if (json_array_append_new(arr, json_integer((json_int_t)n)) != 0) {
        ix->nomem = true;
    }
}

static void on_agent(void *ctx, const kvl_latest_agent_t *a)
{
    map_index_t *ix = ctx;
    json_t *set = json_object_get(ix->site_agents, a->site);
    if (set == NULL && (set = json_object()) != NULL &&
        json_object_set_new(ix->site_agents, a->site, set) != 0) {
        set = NULL;
    }
    if (set != NULL) {
        json_object_set_new(set, a->id, json_true());
    }
    json_object_set_new(ix->agent_site, a->id, json_string(a->site));
}

static void add_link(map_index_t *ix, const kvl_latest_value_t *v)
{
    if (ix->n_links == ix->cap_links) {
        size_t cap = ix->cap_links ? ix->cap_links * 2 : 64;
        map_link_t *p = realloc(ix->links, cap * sizeof(*p));
        if (p == NULL) {
            ix->nomem = true;
            return;
        }
        ix->links = p;
        ix->cap_links = cap;
    }
    size_t n = ix->n_links++;
    ix->links[n] = (map_link_t){.agent = v->agent, .site = v->site, .target = v->instance};
    push_at(ix, ix->by_site, v->site, n);
    push_at(ix, ix->by_target, v->instance, n);
}

static bool on_series(void *ctx, const kvl_latest_value_t *v)
{
    map_index_t *ix = ctx;
    /* one series per link: lost_pct, which every probe type reports */
    if (v->scope == KVL_SCOPE_LINK && strcmp(v->metric, "lost_pct") == 0) {
        add_link(ix, v);
    } else if (v->scope == KVL_SCOPE_INTERFACE && json_object_size(ix->want) > 0 &&
               strcmp(v->metric, "in_octets") == 0) {
        char key[1024];
        key2(key, sizeof(key), v->device, v->instance);
        json_t *at = json_object_get(ix->want, key);
        /* the first agent in name order, so that the choice does not depend on the table */
        if (at != NULL && (json_is_null(at) || strcmp(json_string_value(at), v->agent) > 0)) {
            json_object_set_new(ix->want, key, json_string(v->agent));
        }
    }
    return !ix->nomem;
}

static void index_free(map_index_t *ix)
{
    json_decref(ix->agent_site);
    json_decref(ix->site_agents);
    json_decref(ix->by_site);
    json_decref(ix->by_target);
    json_decref(ix->want);
    free(ix->links);
}

static int index_build(map_index_t *ix, const kvl_latest_t *l, const kvl_sites_cfg_t *sc)
{
    *ix = (map_index_t){.latest = l,
                        .sites = sc,
                        .agent_site = json_object(),
                        .site_agents = json_object(),
                        .by_site = json_object(),
                        .by_target = json_object(),
                        .want = json_object()};
    if (ix->agent_site == NULL || ix->site_agents == NULL || ix->by_site == NULL ||
        ix->by_target == NULL || ix->want == NULL) {
        return KVL_ENOMEM;
    }
    for (size_t i = 0; sc != NULL && i < sc->n; i++) {
        const kvl_site_t *s = &sc->v[i];
        if (s->uplink_device != NULL && s->uplink_agent == NULL) {
            char key[1024];
            key2(key, sizeof(key), s->uplink_device, s->uplink_interface);
            json_object_set_new(ix->want, key, json_null());
        }
    }
    kvl_latest_agents(l, on_agent, ix);
    kvl_latest_each(l, on_series, ix);
    return ix->nomem ? KVL_ENOMEM : 0;
}

/* ----------------------------------------------------------------- an edge ------------- */

typedef struct num {
    bool known;
    double v;
    int64_t time_ms;
} num_t;

/* A fresh, known value of one series (a counter's rate when rate). */
static num_t value_of(const kvl_latest_t *l, const char *agent, const char *device,
                      kvl_scope_t scope, const char *instance, const char *metric, bool rate,
                      int64_t now_ms)
{
    num_t n = {0};
    kvl_latest_value_t v;
    if (agent == NULL || kvl_latest_get(l, agent, device, scope, instance, metric, &v) != 0 ||
        v.unknown) {
        return n;
    }
    int64_t max_age = (int64_t)KVL_MAP_STALE_INTERVALS * v.interval_s * 1000;
    if (now_ms - v.time_ms > max_age) {
        return n;
    }
    if (rate) {
        n.known = v.has_rate;
        n.v = v.rate;
    } else {
        n.known = true;
        n.v = v.real ? v.real_value : (double)v.value;
    }
    n.known = n.known && isfinite(n.v);
    n.time_ms = v.time_ms;
    return n;
}

static json_t *num_json(num_t n)
{
    return n.known ? json_real(n.v) : json_null();
}

/* Whether target names site (the site itself, or one of its agents: the mesh's names). */
static bool target_at(const map_index_t *ix, const char *target, const char *site)
{
    return strcmp(target, site) == 0 ||
           json_object_get(json_object_get(ix->site_agents, site), target) != NULL;
}

/* Whether link a comes before link b at the same rank: agent, then target, in name order. */
static bool before(const map_link_t *a, const map_link_t *b)
{
    int c = strcmp(a->agent, b->agent);
    return c < 0 || (c == 0 && strcmp(a->target, b->target) < 0);
}

/* The best link among those listed in arr (positions) by rank_fn; NULL when none ranks. */
typedef int (*rank_fn)(const map_index_t *ix, const kvl_site_t *s, const kvl_site_t *p,
                       const map_link_t *k);

static const map_link_t *best_of(const map_index_t *ix, json_t *arr, const kvl_site_t *s,
                                 const kvl_site_t *p, rank_fn rank, const map_link_t *best,
                                 int *best_rank)
{
    size_t i;
    json_t *pos;
    json_array_foreach(arr, i, pos)
    {
        const map_link_t *k = &ix->links[json_integer_value(pos)];
        int r = rank(ix, s, p, k);
        if (r >= 0 && (best == NULL || r < *best_rank || (r == *best_rank && before(k, best)))) {
            best = k;
            *best_rank = r;
        }
    }
    return best;
}

/* With `probe:`: the uplink's agent, then an agent at the site, at the parent, any. */
static int rank_probe(const map_index_t *ix, const kvl_site_t *s, const kvl_site_t *p,
                      const map_link_t *k)
{
    KVL_UNUSED(ix);
    if (strcmp(k->target, s->uplink_probe) != 0) {
        return -1;
    }
    if (s->uplink_agent != NULL && strcmp(k->agent, s->uplink_agent) == 0) {
        return 0;
    }
    return strcmp(k->site, s->name) == 0 ? 1 : strcmp(k->site, p->name) == 0 ? 2 : 3;
}

/* Without: the site probing its parent, then the parent probing the site. */
static int rank_auto(const map_index_t *ix, const kvl_site_t *s, const kvl_site_t *p,
                     const map_link_t *k)
{
    if (strcmp(k->site, s->name) == 0 && target_at(ix, k->target, p->name)) {
        return 0;
    }
    if (strcmp(k->site, p->name) == 0 && target_at(ix, k->target, s->name)) {
        return 1;
    }
    return -1;
}

static const map_link_t *edge_link(const map_index_t *ix, const kvl_site_t *s, const kvl_site_t *p)
{
    int r = 0;
    if (s->uplink_probe != NULL) {
        return best_of(ix, json_object_get(ix->by_target, s->uplink_probe), s, p, rank_probe, NULL,
                       &r);
    }
    const map_link_t *best =
        best_of(ix, json_object_get(ix->by_site, s->name), s, p, rank_auto, NULL, &r);
    return best_of(ix, json_object_get(ix->by_site, p->name), s, p, rank_auto, best, &r);
}

static const char *oper_name(double v)
{
    static const char *const names[] = {"up",      "down",       "testing",       "unknown",
                                        "dormant", "notPresent", "lowerLayerDown"};
    int i = (int)v;
    return i >= 1 && i <= 7 ? names[i - 1] : "unknown";
}

static void newest(int64_t *t, num_t n)
{
    if (n.known && n.time_ms > *t) {
        *t = n.time_ms;
    }
}

static json_t *edge_json(const map_index_t *ix, const kvl_site_t *s, const kvl_site_t *p,
                         int64_t now_ms)
{
    const kvl_latest_t *l = ix->latest;
    num_t speed = {0}, in = {0}, out = {0}, oper = {0}, loss = {0}, rtt = {0};
    json_t *uplink = json_null(), *link = json_null();
    if (s->uplink_device != NULL) {
        const char *agent = s->uplink_agent;
        if (agent == NULL) {
            char key[1024];
            key2(key, sizeof(key), s->uplink_device, s->uplink_interface);
            agent = json_string_value(json_object_get(ix->want, key));
        }
        const char *d = s->uplink_device, *i = s->uplink_interface;
        speed = value_of(l, agent, d, KVL_SCOPE_INTERFACE, i, "speed_bps", false, now_ms);
        in = value_of(l, agent, d, KVL_SCOPE_INTERFACE, i, "in_octets", true, now_ms);
        out = value_of(l, agent, d, KVL_SCOPE_INTERFACE, i, "out_octets", true, now_ms);
        oper = value_of(l, agent, d, KVL_SCOPE_INTERFACE, i, "oper_status", false, now_ms);
        json_decref(uplink);
        uplink = json_pack("{s:o, s:s, s:s}", "agent", agent ? json_string(agent) : json_null(),
                           "device", d, "interface", i);
    }
    const map_link_t *k = edge_link(ix, s, p);
    if (k != NULL) {
        /* a link's series are filed under its agent's id as the device (latest.h) */
        loss =
            value_of(l, k->agent, k->agent, KVL_SCOPE_LINK, k->target, "lost_pct", false, now_ms);
        /* the round trip's median by probe type: icmp and stamp, tcp (the connect), http */
        static const char *const rtts[] = {"rtt_median_ms", "connect_median_ms", "total_median_ms"};
        for (size_t i = 0; i < KVL_ARRAY_SIZE(rtts) && !rtt.known; i++) {
            rtt =
                value_of(l, k->agent, k->agent, KVL_SCOPE_LINK, k->target, rtts[i], false, now_ms);
        }
        json_decref(link);
        link = json_pack("{s:s, s:s}", "agent", k->agent, "target", k->target);
    }
    num_t in_bps = {in.known, in.v * 8, in.time_ms}, out_bps = {out.known, out.v * 8, out.time_ms};
    bool have_speed = speed.known && speed.v > 0;
    num_t uin = {in.known && have_speed, 100.0 * in_bps.v / speed.v, 0};
    num_t uout = {out.known && have_speed, 100.0 * out_bps.v / speed.v, 0};
    num_t util = uin;
    if (uout.known && (!uin.known || uout.v > uin.v)) {
        util = uout;
    }
    int64_t t = 0;
    newest(&t, speed);
    newest(&t, in);
    newest(&t, out);
    newest(&t, oper);
    newest(&t, loss);
    newest(&t, rtt);
    const char *state = "unknown";
    int o = oper.known ? (int)oper.v : 0;
    if ((oper.known && (o == 2 || o == 6 || o == 7)) || (loss.known && loss.v >= 100.0)) {
        state = "critical";
    } else if (loss.known && loss.v >= KVL_MAP_LOSS_MAJOR) {
        state = "major";
    } else if ((loss.known && loss.v > 0) || (util.known && util.v >= KVL_MAP_UTIL_WARNING)) {
        state = "warning";
    } else if (t > 0) {
        state = "ok";
    }
    json_t *e = json_pack(
        "{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
        "s:s}",
        "site", s->name, "parent", p->name, "uplink", uplink, "link", link, "speed_bps",
        num_json(speed), "in_bps", num_json(in_bps), "out_bps", num_json(out_bps), "util_in_pct",
        num_json(uin), "util_out_pct", num_json(uout), "util_pct", num_json(util), "oper_status",
        oper.known ? json_string(oper_name(oper.v)) : json_null(), "loss_pct", num_json(loss),
        "rtt_ms", num_json(rtt), "time_ms", t > 0 ? json_integer(t) : json_null(), "state", state);
    return e;
}

/* ----------------------------------------------------------------- the map ------------- */

json_t *kvl_board_map_json(kvl_board_t *b)
{
    const kvl_board_opts_t *o = kvl_board_opts(b);
    const kvl_sites_cfg_t *sc = o->sites;
    int64_t now_ms = kvl_board_now_ms(b);
    json_t *nodes = kvl_board_sites_json(b);
    json_t *edges = json_array();
    map_index_t ix = {0};
    bool ok = nodes != NULL && edges != NULL && index_build(&ix, o->latest, sc) == 0;
    size_t i;
    json_t *node;
    json_array_foreach(ok ? nodes : NULL, i, node)
    {
        /* the first sc->n entries are the configured sites, in the list's order */
        const kvl_site_t *s = sc != NULL && i < sc->n ? &sc->v[i] : NULL;
        if (s != NULL && strcmp(s->name, json_string_value(json_object_get(node, "name"))) != 0) {
            s = NULL;
        }
        bool x = s != NULL && s->x >= 0, y = s != NULL && s->y >= 0;
        if (json_object_set_new(node, "x", x ? json_integer(s->x) : json_null()) != 0 ||
            json_object_set_new(node, "y", y ? json_integer(s->y) : json_null()) != 0) {
            ok = false;
            break;
        }
        if (s != NULL && s->parent != KVL_SITE_NONE &&
            json_array_append_new(edges, edge_json(&ix, s, &sc->v[s->parent], now_ms)) != 0) {
            ok = false;
            break;
        }
    }
    if (nodes != NULL && edges != NULL) {
        index_free(&ix);
    }
    if (!ok) {
        json_decref(nodes);
        json_decref(edges);
        return NULL;
    }
    return json_pack("{s:I, s:o, s:o}", "time_ms", (json_int_t)now_ms, "nodes", nodes, "edges",
                     edges);
}

void kvl_board_map_get(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    if (req->n_segs > 0) {
        kvl_http_error(resp, 404, "no such resource under %s", req->path);
        return;
    }
    json_t *body = kvl_board_map_json(ctx);
    if (body == NULL) {
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    resp->status = 200;
    resp->body = body;
}
