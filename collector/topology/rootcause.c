/*
 * rootcause.c — root-cause alerts (rootcause.h): one topology_cut alert per cause with a
 * non-empty cut, the moments things were cut off, the answer to "is this alert held back",
 * and the timer and suppressor that run it in the collector.
 */
#include "rootcause.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "book.h"
#include "kvl.h"
#include "log.h"
#include "names.h"
#include "rules.h"
#include "topology.h"

#define TICK_MS 1000
#define FRESH_MS 250 /* the suppressor refreshes a topology older than this */
#define SITES_LISTED 40
#define NAME_MAX_LEN 1024

static const char *const MOD = "rootcause";

/* One topology_cut alert: active (pending, firing), or resolved and remembered for settle. */
typedef struct cut {
    kvl_alert_t *a;        /* owned; its status is the alert's */
    kvl_topo_elem_t cause; /* KVL_TOPO_NONE while restored and not matched */
    uint32_t end_dev;      /* a link cause: the device nodes at its ends, with interfaces */
    uint32_t far_dev;
    char end_if[128], far_if[128];
    int64_t since_ms; /* first seen */
    int64_t ended_ms; /* resolved at, 0: active */
    bool seen;        /* in this update */
    bool restored;
} cut_t;

struct kvl_rootcause {
    kvl_rootcause_opts_t o;
    kvl_alert_cb cb;
    void *cb_ctx;
    cut_t **c;
    size_t n_c, cap_c;
    int64_t *node_cut_ms, *link_cut_ms; /* per id: last moment cut off, 0: never */
    size_t cap_nodes, cap_links;
    int64_t first_update_ms; /* 0: none yet */
    kvl_rootcause_stats_t st;
    /* kvl_rootcause_start */
    uv_timer_t timer;
    bool started, closing;
    kvl_topology_t *topology;
    kvl_book_t *book;
    int64_t refreshed_ms;
};

int kvl_rootcause_new(const kvl_rootcause_opts_t *o, kvl_alert_cb cb, void *cb_ctx,
                      kvl_rootcause_t **out)
{
    *out = NULL;
    kvl_rootcause_t *rc = calloc(1, sizeof(*rc));
    if (rc == NULL) {
        return KVL_ENOMEM;
    }
    rc->o = *o;
    rc->cb = cb;
    rc->cb_ctx = cb_ctx;
    *out = rc;
    return 0;
}

static void cut_free(cut_t *c)
{
    if (c != NULL) {
        kvl_alert_free(c->a);
        free(c);
    }
}

static void free_all(kvl_rootcause_t *rc)
{
    for (size_t i = 0; i < rc->n_c; i++) {
        cut_free(rc->c[i]);
    }
    free(rc->c);
    free(rc->node_cut_ms);
    free(rc->link_cut_ms);
    free(rc);
}

static void on_closed(uv_handle_t *h)
{
    free_all(h->data);
}

void kvl_rootcause_free(kvl_rootcause_t *rc)
{
    if (rc == NULL) {
        return;
    }
    if (rc->started && !rc->closing) {
        rc->closing = true;
        kvl_book_set_suppressor(rc->book, NULL, NULL);
        uv_close((uv_handle_t *)&rc->timer, on_closed);
        return;
    }
    free_all(rc);
}

void kvl_rootcause_stats(const kvl_rootcause_t *rc, kvl_rootcause_stats_t *out)
{
    *out = rc->st;
    out->cuts_active = 0;
    for (size_t i = 0; i < rc->n_c; i++) {
        out->cuts_active += rc->c[i]->ended_ms == 0;
    }
}

static cut_t *cut_find(const kvl_rootcause_t *rc, uint64_t fp)
{
    for (size_t i = 0; i < rc->n_c; i++) {
        if (rc->c[i]->a->fingerprint == fp) {
            return rc->c[i];
        }
    }
    return NULL;
}

static int cut_add(kvl_rootcause_t *rc, cut_t *c)
{
    if (rc->n_c == rc->cap_c) {
        size_t nc = rc->cap_c == 0 ? 8 : rc->cap_c * 2;
        cut_t **v = realloc(rc->c, nc * sizeof(*v));
        if (v == NULL) {
            return KVL_ENOMEM;
        }
        rc->c = v;
        rc->cap_c = nc;
    }
    rc->c[rc->n_c++] = c;
    return 0;
}

int kvl_rootcause_restore(kvl_rootcause_t *rc, const kvl_alert_t *a)
{
    if (a == NULL || a->rule == NULL || strcmp(a->rule, KVL_ROOTCAUSE_RULE) != 0 ||
        a->status == KVL_ALERT_RESOLVED) {
        return KVL_EINVAL;
    }
    if (cut_find(rc, a->fingerprint) != NULL) {
        return 0;
    }
    cut_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->a = kvl_alert_dup(a)) == NULL || cut_add(rc, c) != 0) {
        cut_free(c);
        return KVL_ENOMEM;
    }
    c->cause.id = KVL_TOPO_NONE;
    c->end_dev = c->far_dev = KVL_TOPO_NONE;
    c->since_ms = a->active_at_ms;
    c->restored = true;
    return 0;
}

/* ------------------------------------------------------------- observing ------------- */

/* Room for `want` times in *arr (new ones 0). Returns 0, or KVL_ENOMEM (nothing changed);
 * none wanted (a graph without links yet) is not a failure. */
static int grow_times(int64_t **arr, size_t *cap, size_t want)
{
    if (want <= *cap) {
        return 0;
    }
    size_t nc = *cap == 0 ? 256 : *cap;
    while (nc < want) {
        nc *= 2;
    }
    int64_t *v = realloc(*arr, nc * sizeof(*v));
    if (v == NULL) {
        return KVL_ENOMEM;
    }
    memset(v + *cap, 0, (nc - *cap) * sizeof(*v));
    *arr = v;
    *cap = nc;
    return 0;
}

void kvl_rootcause_observe(kvl_rootcause_t *rc, const kvl_topo_t *g, int64_t now)
{
    size_t nn = kvl_topo_nodes(g), nl = kvl_topo_links(g);
    if (grow_times(&rc->node_cut_ms, &rc->cap_nodes, nn) != 0 ||
        grow_times(&rc->link_cut_ms, &rc->cap_links, nl) != 0) {
        KVL_LOG_ERROR(MOD, NULL, "out of memory: what is cut off is not recorded");
        return;
    }
    for (size_t i = 0; i < nn; i++) {
        if (kvl_topo_node_reach(g, (uint32_t)i, NULL) == KVL_TOPO_UNREACHABLE) {
            rc->node_cut_ms[i] = now;
        }
    }
    for (size_t i = 0; i < nl; i++) {
        if (kvl_topo_link_reach(g, (uint32_t)i, NULL) == KVL_TOPO_UNREACHABLE) {
            rc->link_cut_ms[i] = now;
        }
    }
}

static bool recently(int64_t at, int64_t now, int64_t settle)
{
    return at != 0 && now - at < settle;
}

/* ------------------------------------------------------------- the graph's words ----- */

/* The site node of node n: itself, or the site its member link joins it to. */
static uint32_t site_of(const kvl_topo_t *g, uint32_t n)
{
    if (n == KVL_TOPO_NONE || kvl_topo_node_kind(g, n) == KVL_TOPO_SITE) {
        return n;
    }
    for (size_t i = 0; i < kvl_topo_links(g); i++) {
        kvl_topo_link_info_t li;
        if (kvl_topo_link_get(g, (uint32_t)i, &li) && !li.forgotten &&
            li.source == KVL_TOPO_SRC_MEMBER && (li.a == n || li.b == n)) {
            uint32_t other = li.a == n ? li.b : li.a;
            if (kvl_topo_node_kind(g, other) == KVL_TOPO_SITE) {
                return other;
            }
        }
    }
    return KVL_TOPO_NONE;
}

/* The ends of a link cause, the one nearer the NOC (reachable) first. */
static void link_ends(const kvl_topo_t *g, uint32_t link, kvl_topo_link_info_t *li)
{
    if (!kvl_topo_link_get(g, link, li)) {
        memset(li, 0, sizeof(*li));
        li->a = li->b = KVL_TOPO_NONE;
        li->a_if = li->b_if = "";
        return;
    }
    if (kvl_topo_node_reach(g, li->a, NULL) != KVL_TOPO_REACHABLE &&
        kvl_topo_node_reach(g, li->b, NULL) == KVL_TOPO_REACHABLE) {
        uint32_t n = li->a;
        const char *i = li->a_if;
        li->a = li->b;
        li->a_if = li->b_if;
        li->b = n;
        li->b_if = i;
    }
}

typedef struct cut_list {
    const kvl_topo_t *g;
    size_t by_kind[KVL_TOPO_KINDS];
    const char **sites;
    size_t n_sites, cap_sites;
    bool failed;
} cut_list_t;

static bool on_cut_node(void *ctx, uint32_t n)
{
    cut_list_t *l = ctx;
    kvl_topo_kind_t k = kvl_topo_node_kind(l->g, n);
    if (k >= KVL_TOPO_KINDS) {
        return true;
    }
    l->by_kind[k]++;
    if (k == KVL_TOPO_SITE) {
        if (l->n_sites == l->cap_sites) {
            size_t nc = l->cap_sites == 0 ? 16 : l->cap_sites * 2;
            const char **v = realloc(l->sites, nc * sizeof(*v));
            if (v == NULL) {
                l->failed = true;
                return false;
            }
            l->sites = v;
            l->cap_sites = nc;
        }
        l->sites[l->n_sites++] = kvl_topo_node_name(l->g, n);
    }
    return true;
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* "agent/device" -> the agent and the device, in buffers. False when n is not that form. */
static bool split_device(const char *n, char *agent, size_t alen, const char **device)
{
    const char *slash = n != NULL ? strchr(n, '/') : NULL;
    if (slash == NULL || (size_t)(slash - n) >= alen || slash[1] == '\0') {
        return false;
    }
    snprintf(agent, alen, "%.*s", (int)(slash - n), n);
    *device = slash + 1;
    return true;
}

/* The alert of cause e (status and times unset), with the link's ends when a link. NULL when
 * out of memory. */
static kvl_alert_t *cause_alert(const kvl_topo_t *g, kvl_topo_elem_t e, const cut_list_t *l,
                                kvl_topo_link_info_t *li)
{
    char name[NAME_MAX_LEN];
    kvl_topology_elem_name(g, e, name, sizeof(name));
    const char *reason = kvl_topology_cause_reason(g, e);
    uint32_t dev = KVL_TOPO_NONE, site = KVL_TOPO_NONE, far_site = KVL_TOPO_NONE;
    const char *iface = NULL;
    if (e.is_link) {
        link_ends(g, e.id, li);
        site = site_of(g, li->b); /* the far end's: the side cut off */
        far_site = site_of(g, li->a);
        if (site == KVL_TOPO_NONE) {
            site = far_site;
        }
        if (li->a != KVL_TOPO_NONE && kvl_topo_node_kind(g, li->a) == KVL_TOPO_DEVICE) {
            dev = li->a;
            iface = li->a_if;
        }
    } else {
        site = site_of(g, e.id);
        if (kvl_topo_node_kind(g, e.id) == KVL_TOPO_DEVICE) {
            dev = e.id;
        }
    }
    const char *site_name = site != KVL_TOPO_NONE ? kvl_topo_node_name(g, site) : NULL;
    /* isolated: nothing cut off but the cause's own site(s) */
    bool isolated = true;
    for (size_t i = 0; i < l->n_sites; i++) {
        bool own = (site_name != NULL && strcmp(l->sites[i], site_name) == 0) ||
                   (far_site != KVL_TOPO_NONE &&
                    strcmp(l->sites[i], kvl_topo_node_name(g, far_site)) == 0);
        isolated = isolated && own;
    }

    char sites[2048];
    size_t at = 0;
    sites[0] = '\0';
    for (size_t i = 0; i < l->n_sites && i < SITES_LISTED && at < sizeof(sites); i++) {
        at += (size_t)snprintf(sites + at, sizeof(sites) - at, "%s%s", i > 0 ? ", " : "",
                               l->sites[i]);
    }
    if (l->n_sites > SITES_LISTED && at < sizeof(sites)) {
        snprintf(sites + at, sizeof(sites) - at, " and %zu more", l->n_sites - SITES_LISTED);
    }
    char summary[4096];
    size_t ns = l->by_kind[KVL_TOPO_SITE], na = l->by_kind[KVL_TOPO_AGENT],
           nd = l->by_kind[KVL_TOPO_DEVICE];
    if (isolated) {
        /* a tree link's reason already says what happened to the site */
        bool tree = e.is_link && li->source == KVL_TOPO_SRC_TREE;
        snprintf(summary, sizeof(summary),
                 "site %s isolated: %s%s%s; cut off: %zu agent%s, %zu device%s",
                 site_name != NULL ? site_name : "?", tree ? "" : name, tree ? "" : ": ",
                 tree ? "all its agents lost" : reason, na, na == 1 ? "" : "s", nd,
                 nd == 1 ? "" : "s");
    } else {
        snprintf(summary, sizeof(summary),
                 "%s%s%s: %s; cut off behind it: %zu site%s, %zu agent%s, %zu device%s: %s", name,
                 site_name != NULL ? " at " : "", site_name != NULL ? site_name : "", reason, ns,
                 ns == 1 ? "" : "s", na, na == 1 ? "" : "s", nd, nd == 1 ? "" : "s", sites);
    }
    char n_sites[24], n_agents[24], n_devices[24], agent[KVL_AGENT_ID_MAX + 1];
    snprintf(n_sites, sizeof(n_sites), "%zu", l->by_kind[KVL_TOPO_SITE]);
    snprintf(n_agents, sizeof(n_agents), "%zu", l->by_kind[KVL_TOPO_AGENT]);
    snprintf(n_devices, sizeof(n_devices), "%zu", l->by_kind[KVL_TOPO_DEVICE]);

    kvl_alert_t a = {.rule = KVL_ROOTCAUSE_RULE,
                     .severity = KVL_RULE_SEV_CRITICAL,
                     .summary = summary,
                     .description = reason};
    a.labels[a.n_labels++] = (kvl_label_t){"alertname", KVL_ROOTCAUSE_RULE};
    a.labels[a.n_labels++] = (kvl_label_t){"severity", "critical"};
    a.labels[a.n_labels++] = (kvl_label_t){"cause", name};
    if (site_name != NULL) {
        a.labels[a.n_labels++] = (kvl_label_t){"site", site_name};
    }
    const char *device = NULL;
    if (dev != KVL_TOPO_NONE &&
        split_device(kvl_topo_node_name(g, dev), agent, sizeof(agent), &device)) {
        a.labels[a.n_labels++] = (kvl_label_t){"agent", agent};
        a.labels[a.n_labels++] = (kvl_label_t){"device", device};
        if (iface != NULL && iface[0] != '\0') {
            a.labels[a.n_labels++] = (kvl_label_t){"interface", iface};
        }
    } else if (!e.is_link && kvl_topo_node_kind(g, e.id) == KVL_TOPO_AGENT) {
        a.labels[a.n_labels++] = (kvl_label_t){"agent", kvl_topo_node_name(g, e.id)};
    }
    a.fields[a.n_fields++] = (kvl_label_t){"kind", isolated ? "isolated" : "cut"};
    a.fields[a.n_fields++] = (kvl_label_t){"reason", reason};
    a.fields[a.n_fields++] = (kvl_label_t){"sites_cut", n_sites};
    a.fields[a.n_fields++] = (kvl_label_t){"agents_cut", n_agents};
    a.fields[a.n_fields++] = (kvl_label_t){"devices_cut", n_devices};
    if (sites[0] != '\0') {
        a.fields[a.n_fields++] = (kvl_label_t){"sites", sites};
    }
    if (kvl_alert_finish(&a) != 0) {
        return NULL;
    }
    return kvl_alert_dup(&a);
}

/* ------------------------------------------------------------- updating -------------- */

typedef struct pending_emit {
    kvl_alert_t **v;
    size_t n, cap;
} emits_t;

/* Queues a copy of c's alert with its status set to st at now. */
static void emit(emits_t *q, cut_t *c, kvl_alert_status_t st, int64_t now)
{
    c->a->status = st;
    c->a->changed_ms = now;
    c->a->ends_at_ms = st == KVL_ALERT_RESOLVED ? now : 0;
    if (q->n == q->cap) {
        size_t nc = q->cap == 0 ? 8 : q->cap * 2;
        kvl_alert_t **v = realloc(q->v, nc * sizeof(*v));
        if (v == NULL) {
            return;
        }
        q->v = v;
        q->cap = nc;
    }
    kvl_alert_t *copy = kvl_alert_dup(c->a);
    if (copy != NULL) {
        q->v[q->n++] = copy;
    }
}

typedef struct update_ctx {
    kvl_rootcause_t *rc;
    const kvl_topo_t *g;
    int64_t now;
    emits_t *q;
} update_ctx_t;

static bool same_text(const char *x, const char *y)
{
    return (x == NULL && y == NULL) || (x != NULL && y != NULL && strcmp(x, y) == 0);
}

static bool on_cause(void *ctx, kvl_topo_elem_t e)
{
    update_ctx_t *u = ctx;
    kvl_rootcause_t *rc = u->rc;
    cut_list_t l = {.g = u->g};
    kvl_topo_each_cut(u->g, e, on_cut_node, &l);
    size_t total =
        l.by_kind[KVL_TOPO_SITE] + l.by_kind[KVL_TOPO_AGENT] + l.by_kind[KVL_TOPO_DEVICE];
    if (l.failed || total == 0) {
        free(l.sites);
        return true;
    }
    qsort(l.sites, l.n_sites, sizeof(*l.sites), cmp_str);
    kvl_topo_link_info_t li = {.a = KVL_TOPO_NONE, .b = KVL_TOPO_NONE, .a_if = "", .b_if = ""};
    kvl_alert_t *a = cause_alert(u->g, e, &l, &li);
    free(l.sites);
    if (a == NULL) {
        KVL_LOG_ERROR(MOD, NULL, "out of memory: a cut is not alerted");
        return true;
    }
    cut_t *c = cut_find(rc, a->fingerprint);
    if (c != NULL && c->ended_ms != 0) {
        /* the same cause again within settle: a new alert of the same identity */
        c->ended_ms = 0;
        c->since_ms = u->now;
        c->a->status = 0;
    }
    if (c == NULL) {
        c = calloc(1, sizeof(*c));
        if (c == NULL || cut_add(rc, c) != 0) {
            free(c);
            kvl_alert_free(a);
            return true;
        }
        c->since_ms = u->now;
    }
    c->seen = true;
    c->cause = e;
    c->end_dev = e.is_link ? li.a : KVL_TOPO_NONE;
    c->far_dev = e.is_link ? li.b : KVL_TOPO_NONE;
    snprintf(c->end_if, sizeof(c->end_if), "%s", e.is_link ? li.a_if : "");
    snprintf(c->far_if, sizeof(c->far_if), "%s", e.is_link ? li.b_if : "");
    kvl_alert_status_t old = c->a != NULL ? c->a->status : 0;
    bool changed = c->a == NULL || !same_text(c->a->summary, a->summary);
    if (c->a != NULL && c->restored) {
        c->since_ms = c->a->active_at_ms;
        c->restored = false;
    }
    a->active_at_ms = a->starts_at_ms = c->since_ms;
    kvl_alert_free(c->a);
    c->a = a;
    kvl_alert_status_t want = u->now - c->since_ms >= rc->o.hold_ms || old == KVL_ALERT_FIRING
                                  ? KVL_ALERT_FIRING
                                  : KVL_ALERT_PENDING;
    if (want != old || changed) {
        if (want == KVL_ALERT_FIRING && old != KVL_ALERT_FIRING) {
            rc->st.cuts_fired++;
            KVL_LOG_WARN(MOD, kvl_alert_label(a, "site"), "%s", a->summary);
        }
        emit(u->q, c, want, u->now);
    } else {
        c->a->status = want;
    }
    return true;
}

void kvl_rootcause_update(kvl_rootcause_t *rc, const kvl_topo_t *g, int64_t now)
{
    rc->st.updates++;
    if (rc->first_update_ms == 0) {
        rc->first_update_ms = now;
    }
    kvl_rootcause_observe(rc, g, now);
    for (size_t i = 0; i < rc->n_c; i++) {
        rc->c[i]->seen = false;
    }
    emits_t q = {0};
    update_ctx_t u = {.rc = rc, .g = g, .now = now, .q = &q};
    kvl_topo_each_cause(g, on_cause, &u);
    for (size_t i = 0; i < rc->n_c;) {
        cut_t *c = rc->c[i];
        if (c->ended_ms != 0) {
            if (!recently(c->ended_ms, now, rc->o.settle_ms)) {
                cut_free(c);
                rc->c[i] = rc->c[--rc->n_c];
                continue;
            }
        } else if (!c->seen && !(c->restored && now - rc->first_update_ms < rc->o.hold_ms)) {
            const char *what =
                c->a->summary != NULL ? c->a->summary : kvl_alert_label(c->a, "cause");
            KVL_LOG_INFO(MOD, kvl_alert_label(c->a, "site"), "repaired: %s",
                         what != NULL ? what : "a cut");
            emit(&q, c, KVL_ALERT_RESOLVED, now);
            c->ended_ms = now;
            c->restored = false;
        }
        i++;
    }
    for (size_t i = 0; i < q.n; i++) {
        if (rc->cb != NULL) {
            rc->cb(rc->cb_ctx, q.v[i]);
        }
        kvl_alert_free(q.v[i]);
    }
    free(q.v);
}

/* ------------------------------------------------------------- holding back ---------- */

/* The node an alert is about (rootcause.h), KVL_TOPO_NONE when the graph has none. */
static uint32_t subject_of(const kvl_topo_t *g, const kvl_alert_t *a)
{
    const char *agent = kvl_alert_label(a, "agent");
    const char *device = kvl_alert_label(a, "device");
    const char *target = kvl_alert_label(a, "target");
    const char *site = kvl_alert_label(a, "site");
    uint32_t n = KVL_TOPO_NONE;
    if (agent != NULL && device != NULL) {
        char name[NAME_MAX_LEN];
        if ((size_t)snprintf(name, sizeof(name), "%s/%s", agent, device) < sizeof(name)) {
            n = kvl_topo_find_node(g, KVL_TOPO_DEVICE, name);
        }
    }
    if (n == KVL_TOPO_NONE && device == NULL && target != NULL) {
        n = kvl_topo_find_node(g, KVL_TOPO_AGENT, target);
        if (n == KVL_TOPO_NONE) {
            n = kvl_topo_find_node(g, KVL_TOPO_SITE, target);
        }
    }
    if (n == KVL_TOPO_NONE && agent != NULL) {
        n = kvl_topo_find_node(g, KVL_TOPO_AGENT, agent);
    }
    if (n == KVL_TOPO_NONE && agent == NULL && site != NULL) {
        n = kvl_topo_find_node(g, KVL_TOPO_SITE, site);
    }
    return n;
}

static bool is_own(const cut_t *c, uint32_t subject, const char *iface)
{
    if (c->cause.id == KVL_TOPO_NONE) {
        return false;
    }
    if (!c->cause.is_link) {
        return c->cause.id == subject;
    }
    return iface != NULL && ((subject == c->end_dev && strcmp(iface, c->end_if) == 0) ||
                             (subject == c->far_dev && strcmp(iface, c->far_if) == 0));
}

bool kvl_rootcause_suppressed(const kvl_rootcause_t *rc, const kvl_topo_t *g, const kvl_alert_t *a,
                              int64_t now, char *why, size_t whylen)
{
    int64_t settle = rc->o.settle_ms;
    if (a->rule != NULL && strcmp(a->rule, KVL_ROOTCAUSE_RULE) == 0) {
        const cut_t *c = cut_find(rc, a->fingerprint);
        if (c == NULL || c->cause.id == KVL_TOPO_NONE) {
            return false;
        }
        int64_t at = 0;
        if (c->cause.is_link) {
            at = c->cause.id < rc->cap_links ? rc->link_cut_ms[c->cause.id] : 0;
        } else {
            at = c->cause.id < rc->cap_nodes ? rc->node_cut_ms[c->cause.id] : 0;
        }
        if (recently(at, now, settle)) {
            snprintf(why, whylen, "its cause was itself cut off %" PRId64 " s ago: settling",
                     (now - at) / 1000);
            return true;
        }
        return false;
    }
    uint32_t n = subject_of(g, a);
    if (n == KVL_TOPO_NONE) {
        return false;
    }
    kvl_topo_elem_t cause;
    if (kvl_topo_node_reach(g, n, &cause) == KVL_TOPO_UNREACHABLE) {
        char name[NAME_MAX_LEN];
        kvl_topology_elem_name(g, cause, name, sizeof(name));
        snprintf(why, whylen, "cut off behind %s (%s)", name, kvl_topology_cause_reason(g, cause));
        return true;
    }
    const char *iface = kvl_alert_label(a, "interface");
    for (size_t i = 0; i < rc->n_c; i++) {
        const cut_t *c = rc->c[i];
        if (is_own(c, n, iface) && (c->ended_ms == 0 || recently(c->ended_ms, now, settle))) {
            snprintf(why, whylen, "%s alert %016" PRIx64 " stands for it%s", KVL_ROOTCAUSE_RULE,
                     c->a->fingerprint, c->ended_ms != 0 ? " (repaired: settling)" : "");
            return true;
        }
    }
    if (n < rc->cap_nodes && recently(rc->node_cut_ms[n], now, settle)) {
        snprintf(why, whylen, "cut off until %" PRId64 " s ago: settling",
                 (now - rc->node_cut_ms[n]) / 1000);
        return true;
    }
    return false;
}

/* ------------------------------------------------------------- in the collector ------ */

static const kvl_topo_t *fresh_graph(kvl_rootcause_t *rc, int64_t now)
{
    if (rc->refreshed_ms == 0 || now - rc->refreshed_ms >= FRESH_MS || now < rc->refreshed_ms) {
        if (kvl_topology_refresh(rc->topology) != 0) {
            KVL_LOG_ERROR(MOD, NULL, "the topology could not be refreshed (out of memory)");
        }
        rc->refreshed_ms = now;
        kvl_rootcause_observe(rc, kvl_topology_graph(rc->topology), now);
    }
    return kvl_topology_graph(rc->topology);
}

static bool book_asks(void *ctx, const kvl_alert_t *a, char *why, size_t whylen)
{
    kvl_rootcause_t *rc = ctx;
    int64_t now = kvl_book_now(rc->book);
    return kvl_rootcause_suppressed(rc, fresh_graph(rc, now), a, now, why, whylen);
}

static void on_tick(uv_timer_t *t)
{
    kvl_rootcause_t *rc = t->data;
    int64_t now = kvl_book_now(rc->book);
    rc->refreshed_ms = 0;
    const kvl_topo_t *g = fresh_graph(rc, now);
    kvl_rootcause_update(rc, g, now);
    kvl_book_tick(rc->book); /* what it holds back may be free to go now */
}

static void restore_one(void *ctx, const kvl_alert_t *a)
{
    kvl_rootcause_restore(ctx, a);
}

int kvl_rootcause_start(kvl_rootcause_t *rc, uv_loop_t *loop, kvl_topology_t *topology,
                        kvl_book_t *book)
{
    rc->topology = topology;
    rc->book = book;
    rc->cb = kvl_book_alert_cb;
    rc->cb_ctx = book;
    kvl_book_each_active(book, restore_one, rc);
    int rc_ = uv_timer_init(loop, &rc->timer);
    if (rc_ != 0) {
        return KVL_EIO;
    }
    rc->timer.data = rc;
    rc->started = true;
    uv_unref((uv_handle_t *)&rc->timer);
    uv_timer_start(&rc->timer, on_tick, TICK_MS, TICK_MS);
    kvl_book_set_suppressor(book, book_asks, rc);
    return 0;
}
