/*
 * topo_graph.c — the topology graph and its reachability (topo_graph.h).
 *
 * Nodes and links live in growing arrays indexed by their ids; two jansson objects map a
 * node's "<kind>:<name>" and a link's "<a>|<b>|<source>|<a_if>|<b_if>" (a < b) to its id.
 * kvl_topo_compute rebuilds the adjacency (compressed: each node's link ids in one array)
 * when nodes or links were added or forgotten since the last time, then runs three passes
 * over it: a breadth-first search from the up roots through up links and up nodes; the
 * causes at the edge of what it reached (down nodes first, then down links); and a second
 * breadth-first search from all causes at once through the unreached part, whatever the
 * states there, so each unreached node gets its nearest cause.
 */
#include "topo_graph.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"

typedef struct node {
    char *name;
    uint8_t kind;
    bool root;
    bool up;
} node_t;

typedef struct link {
    uint32_t a, b;
    char *a_if, *b_if;
    uint8_t source;
    bool up;
    bool forgotten;
    int64_t seen_ms;
} link_t;

struct kvl_topo {
    uint64_t generation; /* structural changes: kvl_topo_generation */
    node_t *nodes;
    size_t n_nodes, cap_nodes;
    link_t *links;
    size_t n_links, cap_links;
    json_t *node_index; /* "<kind>:<name>" -> id */
    json_t *link_index; /* "<a>|<b>|<source>|<a_if>|<b_if>" -> id */
    /* adjacency: the links of node i are adj[adj_off[i] .. adj_off[i + 1]) */
    uint32_t *adj_off, *adj;
    bool adj_dirty;
    /* the last computation, per node and per link */
    uint8_t *reach;        /* kvl_topo_reach_t per node */
    kvl_topo_elem_t *why;  /* the cause per node */
    uint8_t *link_cause;   /* 1: the link is a cause */
    size_t computed_nodes; /* nodes that the arrays above cover */
    size_t computed_links;
};

static const char *const kind_names[KVL_TOPO_KINDS] = {"site", "agent", "device"};
static const char *const source_names[KVL_TOPO_SOURCES] = {"tree",   "uplink",  "lldp", "cdp",
                                                           "member", "vantage", "probe"};
static const char *const reach_names[] = {"unconnected", "reachable", "cause", "unreachable"};

int kvl_topo_new(kvl_topo_t **out)
{
    *out = NULL;
    kvl_topo_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return KVL_ENOMEM;
    }
    t->node_index = json_object();
    t->link_index = json_object();
    if (t->node_index == NULL || t->link_index == NULL) {
        kvl_topo_free(t);
        return KVL_ENOMEM;
    }
    t->adj_dirty = true;
    *out = t;
    return 0;
}

void kvl_topo_free(kvl_topo_t *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->n_nodes; i++) {
        free(t->nodes[i].name);
    }
    for (size_t i = 0; i < t->n_links; i++) {
        free(t->links[i].a_if);
        free(t->links[i].b_if);
    }
    free(t->nodes);
    free(t->links);
    json_decref(t->node_index);
    json_decref(t->link_index);
    free(t->adj_off);
    free(t->adj);
    free(t->reach);
    free(t->why);
    free(t->link_cause);
    free(t);
}

/* "<kind>:<name>", malloc'd, or NULL. */
static char *node_key(kvl_topo_kind_t kind, const char *name)
{
    size_t len = strlen(name) + 3;
    char *k = malloc(len);
    if (k != NULL) {
        snprintf(k, len, "%d:%s", (int)kind, name);
    }
    return k;
}

static uint32_t index_get(const json_t *index, const char *key)
{
    const json_t *v = json_object_get(index, key);
    return json_is_integer(v) ? (uint32_t)json_integer_value(v) : KVL_TOPO_NONE;
}

uint32_t kvl_topo_find_node(const kvl_topo_t *t, kvl_topo_kind_t kind, const char *name)
{
    if ((unsigned)kind >= KVL_TOPO_KINDS || name == NULL) {
        return KVL_TOPO_NONE;
    }
    char *k = node_key(kind, name);
    uint32_t id = k != NULL ? index_get(t->node_index, k) : KVL_TOPO_NONE;
    free(k);
    return id;
}

/* Room for one more element in a growing array of elem bytes each. */
static bool grow(void **v, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) {
        return true;
    }
    size_t ncap = *cap == 0 ? 64 : *cap * 2;
    void *nv = realloc(*v, ncap * elem);
    if (nv == NULL) {
        return false;
    }
    *v = nv;
    *cap = ncap;
    return true;
}

int kvl_topo_add_node(kvl_topo_t *t, kvl_topo_kind_t kind, const char *name, uint32_t *id)
{
    *id = KVL_TOPO_NONE;
    if ((unsigned)kind >= KVL_TOPO_KINDS || name == NULL || name[0] == '\0') {
        return KVL_EINVAL;
    }
    char *k = node_key(kind, name);
    if (k == NULL) {
        return KVL_ENOMEM;
    }
    uint32_t found = index_get(t->node_index, k);
    if (found != KVL_TOPO_NONE) {
        free(k);
        *id = found;
        return 0;
    }
    if (t->n_nodes >= KVL_TOPO_MAX_NODES) {
        free(k);
        return KVL_EINVAL;
    }
    char *copy = strdup(name);
    if (copy == NULL || !grow((void **)&t->nodes, &t->cap_nodes, t->n_nodes, sizeof(node_t)) ||
        json_object_set_new(t->node_index, k, json_integer((json_int_t)t->n_nodes)) != 0) {
        free(copy);
        free(k);
        return KVL_ENOMEM;
    }
    free(k);
    t->nodes[t->n_nodes] = (node_t){.name = copy, .kind = (uint8_t)kind, .up = true};
    *id = (uint32_t)t->n_nodes++;
    t->adj_dirty = true;
    t->generation++;
    return 0;
}

int kvl_topo_add_link(kvl_topo_t *t, uint32_t a, uint32_t b, kvl_topo_source_t source,
                      const char *a_if, const char *b_if, int64_t seen_ms, uint32_t *id)
{
    *id = KVL_TOPO_NONE;
    if (a == b || a >= t->n_nodes || b >= t->n_nodes || (unsigned)source >= KVL_TOPO_SOURCES) {
        return KVL_EINVAL;
    }
    a_if = a_if != NULL ? a_if : "";
    b_if = b_if != NULL ? b_if : "";
    if (a > b) { /* one key for a link and its reverse */
        uint32_t tn = a;
        a = b;
        b = tn;
        const char *ti = a_if;
        a_if = b_if;
        b_if = ti;
    }
    size_t len = strlen(a_if) + strlen(b_if) + 40;
    char *k = malloc(len);
    if (k == NULL) {
        return KVL_ENOMEM;
    }
    /* '|' may appear in an interface name: the lengths keep the key unambiguous */
    snprintf(k, len, "%u|%u|%d|%zu:%s|%s", a, b, (int)source, strlen(a_if), a_if, b_if);
    uint32_t found = index_get(t->link_index, k);
    if (found != KVL_TOPO_NONE) {
        free(k);
        link_t *l = &t->links[found];
        l->seen_ms = seen_ms;
        if (l->forgotten) {
            l->forgotten = false;
            l->up = true;
            t->adj_dirty = true;
            t->generation++;
        }
        *id = found;
        return 0;
    }
    if (t->n_links >= KVL_TOPO_MAX_LINKS) {
        free(k);
        return KVL_EINVAL;
    }
    char *ai = strdup(a_if), *bi = strdup(b_if);
    if (ai == NULL || bi == NULL ||
        !grow((void **)&t->links, &t->cap_links, t->n_links, sizeof(link_t)) ||
        json_object_set_new(t->link_index, k, json_integer((json_int_t)t->n_links)) != 0) {
        free(ai);
        free(bi);
        free(k);
        return KVL_ENOMEM;
    }
    free(k);
    t->links[t->n_links] = (link_t){.a = a,
                                    .b = b,
                                    .a_if = ai,
                                    .b_if = bi,
                                    .source = (uint8_t)source,
                                    .up = true,
                                    .seen_ms = seen_ms};
    *id = (uint32_t)t->n_links++;
    t->adj_dirty = true;
    t->generation++;
    return 0;
}

void kvl_topo_forget_link(kvl_topo_t *t, uint32_t link)
{
    if (link < t->n_links && !t->links[link].forgotten) {
        t->links[link].forgotten = true;
        t->adj_dirty = true;
        t->generation++;
    }
}

void kvl_topo_set_root(kvl_topo_t *t, uint32_t node, bool root)
{
    if (node < t->n_nodes) {
        t->nodes[node].root = root;
    }
}

void kvl_topo_set_node_up(kvl_topo_t *t, uint32_t node, bool up)
{
    if (node < t->n_nodes) {
        t->nodes[node].up = up;
    }
}

void kvl_topo_set_link_up(kvl_topo_t *t, uint32_t link, bool up)
{
    if (link < t->n_links) {
        t->links[link].up = up;
    }
}

/* ---------------------------------------------------------------- computing ---------- */

/* The adjacency of the links not forgotten: counted, then placed. */
static int build_adjacency(kvl_topo_t *t)
{
    uint32_t *off = calloc(t->n_nodes + 1, sizeof(*off));
    uint32_t *adj = malloc((2 * t->n_links + 1) * sizeof(*adj));
    if (off == NULL || adj == NULL) {
        free(off);
        free(adj);
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < t->n_links; i++) {
        if (!t->links[i].forgotten) {
            off[t->links[i].a + 1]++;
            off[t->links[i].b + 1]++;
        }
    }
    for (size_t i = 0; i < t->n_nodes; i++) {
        off[i + 1] += off[i];
    }
    /* off[i] is the next free slot of node i while placing; shifted back after */
    for (size_t i = 0; i < t->n_links; i++) {
        if (!t->links[i].forgotten) {
            adj[off[t->links[i].a]++] = (uint32_t)i;
            adj[off[t->links[i].b]++] = (uint32_t)i;
        }
    }
    for (size_t i = t->n_nodes; i > 0; i--) {
        off[i] = off[i - 1];
    }
    off[0] = 0;
    free(t->adj_off);
    free(t->adj);
    t->adj_off = off;
    t->adj = adj;
    t->adj_dirty = false;
    return 0;
}

static uint32_t other_end(const link_t *l, uint32_t n)
{
    return l->a == n ? l->b : l->a;
}

int kvl_topo_compute(kvl_topo_t *t)
{
    if (t->adj_dirty && build_adjacency(t) != 0) {
        return KVL_ENOMEM;
    }
    size_t nn = t->n_nodes, nl = t->n_links;
    uint8_t *reach = calloc(nn + 1, 1);
    kvl_topo_elem_t *why = malloc((nn + 1) * sizeof(*why));
    uint8_t *lcause = calloc(nl + 1, 1);
    uint32_t *q = malloc((nn + 1) * sizeof(*q));
    if (reach == NULL || why == NULL || lcause == NULL || q == NULL) {
        free(reach);
        free(why);
        free(lcause);
        free(q);
        return KVL_ENOMEM;
    }
    for (size_t i = 0; i < nn; i++) {
        why[i] = (kvl_topo_elem_t){.id = KVL_TOPO_NONE};
    }
    /* 1. reachable: from the up roots through up links and up nodes */
    size_t head = 0, tail = 0;
    for (size_t i = 0; i < nn; i++) {
        if (t->nodes[i].root && t->nodes[i].up) {
            reach[i] = KVL_TOPO_REACHABLE;
            q[tail++] = (uint32_t)i;
        }
    }
    while (head < tail) {
        uint32_t u = q[head++];
        for (uint32_t k = t->adj_off[u]; k < t->adj_off[u + 1]; k++) {
            const link_t *l = &t->links[t->adj[k]];
            uint32_t v = other_end(l, u);
            if (l->up && reach[v] == KVL_TOPO_UNCONNECTED && t->nodes[v].up) {
                reach[v] = KVL_TOPO_REACHABLE;
                q[tail++] = v;
            }
        }
    }
    size_t reached = tail;
    /* 2. causes at the edge: down roots, down nodes behind an up link, then down links
     * (a down node reached through an up link is more precise than the link beside it) */
    head = tail = 0;
    for (size_t i = 0; i < nn; i++) {
        if (t->nodes[i].root && !t->nodes[i].up) {
            reach[i] = KVL_TOPO_CAUSE;
            why[i] = (kvl_topo_elem_t){.is_link = false, .id = (uint32_t)i};
            q[tail++] = (uint32_t)i;
        }
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < nn; i++) {
            if (reach[i] != KVL_TOPO_REACHABLE) {
                continue;
            }
            for (uint32_t k = t->adj_off[i]; k < t->adj_off[i + 1]; k++) {
                uint32_t li = t->adj[k];
                const link_t *l = &t->links[li];
                uint32_t v = other_end(l, (uint32_t)i);
                if (pass == 0 && l->up && !t->nodes[v].up && reach[v] == KVL_TOPO_UNCONNECTED) {
                    reach[v] = KVL_TOPO_CAUSE;
                    why[v] = (kvl_topo_elem_t){.is_link = false, .id = v};
                    q[tail++] = v;
                } else if (pass == 1 && !l->up) {
                    lcause[li] = 1;
                    if (reach[v] == KVL_TOPO_UNCONNECTED) {
                        reach[v] = KVL_TOPO_UNREACHABLE;
                        why[v] = (kvl_topo_elem_t){.is_link = true, .id = li};
                        q[tail++] = v;
                    }
                }
            }
        }
    }
    /* 3. behind the causes: everything connected through the unreached part, nearest
     * cause first (the queue holds the causes' frontier in order) */
    head = 0;
    while (head < tail) {
        uint32_t u = q[head++];
        kvl_topo_elem_t c = why[u];
        for (uint32_t k = t->adj_off[u]; k < t->adj_off[u + 1]; k++) {
            uint32_t v = other_end(&t->links[t->adj[k]], u);
            if (reach[v] == KVL_TOPO_UNCONNECTED) {
                reach[v] = KVL_TOPO_UNREACHABLE;
                why[v] = c;
                q[tail++] = v;
            }
        }
    }
    KVL_ASSERT(reached + tail <= nn);
    free(q);
    free(t->reach);
    free(t->why);
    free(t->link_cause);
    t->reach = reach;
    t->why = why;
    t->link_cause = lcause;
    t->computed_nodes = nn;
    t->computed_links = nl;
    return 0;
}

kvl_topo_reach_t kvl_topo_node_reach(const kvl_topo_t *t, uint32_t node, kvl_topo_elem_t *cause)
{
    if (cause != NULL) {
        *cause = (kvl_topo_elem_t){.id = KVL_TOPO_NONE};
    }
    if (node >= t->computed_nodes) {
        return KVL_TOPO_UNCONNECTED;
    }
    if (cause != NULL) {
        *cause = t->why[node];
    }
    return (kvl_topo_reach_t)t->reach[node];
}

kvl_topo_reach_t kvl_topo_link_reach(const kvl_topo_t *t, uint32_t link, kvl_topo_elem_t *cause)
{
    if (cause != NULL) {
        *cause = (kvl_topo_elem_t){.id = KVL_TOPO_NONE};
    }
    if (link >= t->computed_links || t->links[link].forgotten) {
        return KVL_TOPO_UNCONNECTED;
    }
    if (t->link_cause[link]) {
        if (cause != NULL) {
            *cause = (kvl_topo_elem_t){.is_link = true, .id = link};
        }
        return KVL_TOPO_CAUSE;
    }
    const link_t *l = &t->links[link];
    kvl_topo_elem_t ca, cb;
    kvl_topo_reach_t ra = kvl_topo_node_reach(t, l->a, &ca);
    kvl_topo_reach_t rb = kvl_topo_node_reach(t, l->b, &cb);
    if (ra == KVL_TOPO_REACHABLE && rb == KVL_TOPO_REACHABLE) {
        return KVL_TOPO_REACHABLE;
    }
    /* behind a cause (or leading to a node that is one): that cause */
    if (ra == KVL_TOPO_UNREACHABLE || ra == KVL_TOPO_CAUSE || rb == KVL_TOPO_UNREACHABLE ||
        rb == KVL_TOPO_CAUSE) {
        if (cause != NULL) {
            *cause = ra == KVL_TOPO_UNREACHABLE || ra == KVL_TOPO_CAUSE ? ca : cb;
        }
        return KVL_TOPO_UNREACHABLE;
    }
    return KVL_TOPO_UNCONNECTED;
}

size_t kvl_topo_each_cut(const kvl_topo_t *t, kvl_topo_elem_t cause, kvl_topo_node_fn fn, void *ctx)
{
    size_t n = 0;
    for (size_t i = 0; i < t->computed_nodes; i++) {
        if (t->reach[i] == KVL_TOPO_UNREACHABLE && t->why[i].is_link == cause.is_link &&
            t->why[i].id == cause.id) {
            n++;
            if (fn != NULL && !fn(ctx, (uint32_t)i)) {
                break;
            }
        }
    }
    return n;
}

void kvl_topo_each_cause(const kvl_topo_t *t, kvl_topo_elem_fn fn, void *ctx)
{
    for (size_t i = 0; i < t->computed_nodes; i++) {
        if (t->reach[i] == KVL_TOPO_CAUSE &&
            !fn(ctx, (kvl_topo_elem_t){.is_link = false, .id = (uint32_t)i})) {
            return;
        }
    }
    for (size_t i = 0; i < t->computed_links; i++) {
        if (t->link_cause[i] && !t->links[i].forgotten &&
            !fn(ctx, (kvl_topo_elem_t){.is_link = true, .id = (uint32_t)i})) {
            return;
        }
    }
}

/* ---------------------------------------------------------------- reading ------------ */

size_t kvl_topo_nodes(const kvl_topo_t *t)
{
    return t->n_nodes;
}

size_t kvl_topo_links(const kvl_topo_t *t)
{
    return t->n_links;
}

const char *kvl_topo_node_name(const kvl_topo_t *t, uint32_t node)
{
    return node < t->n_nodes ? t->nodes[node].name : NULL;
}

void kvl_topo_elem_name(const kvl_topo_t *t, kvl_topo_elem_t e, bool by_reach, char *buf,
                        size_t len)
{
    snprintf(buf, len, "?");
    if (!e.is_link) {
        const char *n = kvl_topo_node_name(t, e.id);
        snprintf(buf, len, "%s", n != NULL ? n : "?");
        return;
    }
    kvl_topo_link_info_t li;
    if (!kvl_topo_link_get(t, e.id, &li)) {
        return;
    }
    const char *an = kvl_topo_node_name(t, li.a), *bn = kvl_topo_node_name(t, li.b);
    bool swap = by_reach ? kvl_topo_node_reach(t, li.b, NULL) == KVL_TOPO_REACHABLE &&
                               kvl_topo_node_reach(t, li.a, NULL) != KVL_TOPO_REACHABLE
                         : strcmp(an, bn) > 0;
    if (swap) {
        const char *n = an, *i = li.a_if;
        an = bn;
        li.a_if = li.b_if;
        bn = n;
        li.b_if = i;
    }
    snprintf(buf, len, "%s%s%s%s - %s%s%s%s", an, li.a_if[0] ? " [" : "", li.a_if,
             li.a_if[0] ? "]" : "", bn, li.b_if[0] ? " [" : "", li.b_if, li.b_if[0] ? "]" : "");
}

uint64_t kvl_topo_generation(const kvl_topo_t *t)
{
    return t->generation;
}

bool kvl_topo_node_is_up(const kvl_topo_t *t, uint32_t node)
{
    return node < t->n_nodes && t->nodes[node].up;
}

kvl_topo_kind_t kvl_topo_node_kind(const kvl_topo_t *t, uint32_t node)
{
    return node < t->n_nodes ? (kvl_topo_kind_t)t->nodes[node].kind : KVL_TOPO_KINDS;
}

bool kvl_topo_link_get(const kvl_topo_t *t, uint32_t link, kvl_topo_link_info_t *out)
{
    if (link >= t->n_links) {
        return false;
    }
    const link_t *l = &t->links[link];
    *out = (kvl_topo_link_info_t){.a = l->a,
                                  .b = l->b,
                                  .a_if = l->a_if,
                                  .b_if = l->b_if,
                                  .source = (kvl_topo_source_t)l->source,
                                  .seen_ms = l->seen_ms,
                                  .up = l->up,
                                  .forgotten = l->forgotten};
    return true;
}

const char *kvl_topo_kind_name(kvl_topo_kind_t kind)
{
    return (unsigned)kind < KVL_TOPO_KINDS ? kind_names[kind] : "?";
}

const char *kvl_topo_source_name(kvl_topo_source_t s)
{
    return (unsigned)s < KVL_TOPO_SOURCES ? source_names[s] : "?";
}

const char *kvl_topo_reach_name(kvl_topo_reach_t r)
{
    return (unsigned)r < KVL_ARRAY_SIZE(reach_names) ? reach_names[r] : "?";
}
