/*
 * topo_changes.c — the topology's versions (topo_changes.h): the difference of each graph
 * with the one before, a ring of the newest changes, changes.log and state.json.
 */
#include "topo_changes.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "kvl.h"
#include "log.h"

#define NAME_LEN 1024
#define LINE_MAX_LEN 8192

static const char *const MOD = "topology";

struct kvl_topo_changes {
    char *dir; /* NULL: memory only */
    size_t keep;
    json_t **ring; /* the newest changes, oldest at head */
    size_t n, head;
    uint64_t version;
    size_t in_file;      /* lines in changes.log */
    json_t *nodes;       /* last seen: "kind name" -> true */
    json_t *links;       /* last seen: "link (source)" -> source */
    json_t *cuts;        /* last seen: cause name -> reason */
    bool loaded;         /* state.json read (or none): the next diff is against it */
    uint64_t generation; /* kvl_topo_generation of the graph nodes and links were taken of */
    bool have_generation;
    kvl_log_limit_t fail_limit;
};

static void path_of(const kvl_topo_changes_t *c, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", c->dir, name);
}

static void ring_push(kvl_topo_changes_t *c, json_t *rec)
{
    if (c->n < c->keep) {
        c->ring[(c->head + c->n++) % c->keep] = rec;
        return;
    }
    json_decref(c->ring[c->head]);
    c->ring[c->head] = rec;
    c->head = (c->head + 1) % c->keep;
}

static json_t *ring_at(const kvl_topo_changes_t *c, size_t i)
{
    return c->ring[(c->head + i) % c->keep];
}

/* Writes text to <dir>/name (kvl_file_replace). 0 or KVL_EIO. */
static int replace_file(const kvl_topo_changes_t *c, const char *name, const char *text, size_t len)
{
    char path[4096];
    path_of(c, name, path, sizeof(path));
    return kvl_file_replace(path, text, len, 0640) == 0 ? 0 : KVL_EIO;
}

/* The ring as changes.log (when it has grown to four times `keep`). */
static void rewrite_log(kvl_topo_changes_t *c)
{
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    for (size_t i = 0; text != NULL && i < c->n; i++) {
        char *line = json_dumps(ring_at(c, i), JSON_COMPACT);
        size_t ll = line != NULL ? strlen(line) : 0;
        while (text != NULL && len + ll + 2 > cap) {
            cap *= 2;
            char *nt = realloc(text, cap);
            if (nt == NULL) {
                free(text);
            }
            text = nt;
        }
        if (text != NULL && line != NULL) {
            memcpy(text + len, line, ll);
            len += ll;
            text[len++] = '\n';
        }
        free(line);
    }
    if (text == NULL || replace_file(c, "changes.log", text, len) != 0) {
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_ERROR, &c->fail_limit, MOD, NULL,
                        "%s/changes.log could not be rewritten", c->dir);
    } else {
        c->in_file = c->n;
    }
    free(text);
}

static void append(kvl_topo_changes_t *c, json_t *rec)
{
    if (c->dir == NULL) {
        return;
    }
    char path[4096];
    path_of(c, "changes.log", path, sizeof(path));
    char *line = json_dumps(rec, JSON_COMPACT);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    int rc = line != NULL && fd >= 0 ? kvl_write_all(fd, line, strlen(line)) : KVL_EIO;
    if (rc == 0) {
        rc = kvl_write_all(fd, "\n", 1);
    }
    if (fd >= 0) {
        close(fd);
    }
    free(line);
    if (rc != 0) {
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_ERROR, &c->fail_limit, MOD, NULL,
                        "a change could not be written to %s", path);
        return;
    }
    if (++c->in_file >= 4 * c->keep) {
        rewrite_log(c);
    }
}

/* One change, a new version. */
static void record(kvl_topo_changes_t *c, int64_t now, const char *what, const char *name,
                   const char *source, const char *reason)
{
    json_t *rec = json_pack("{s:I, s:I, s:s, s:s}", "version", (json_int_t)(c->version + 1),
                            "at_ms", (json_int_t)now, "what", what, "name", name);
    if (rec == NULL) {
        return;
    }
    if (source != NULL) {
        json_object_set_new(rec, "source", json_string(source));
    }
    if (reason != NULL) {
        json_object_set_new(rec, "reason", json_string(reason));
    }
    c->version++;
    append(c, rec);
    ring_push(c, rec);
}

static void save_state(kvl_topo_changes_t *c)
{
    if (c->dir == NULL) {
        return;
    }
    json_t *st = json_pack("{s:I, s:I, s:O, s:O, s:O}", "format",
                           (json_int_t)KVL_TOPO_FORMAT_VERSION, "version", (json_int_t)c->version,
                           "nodes", c->nodes, "links", c->links, "cuts", c->cuts);
    char *text = st != NULL ? json_dumps(st, JSON_COMPACT) : NULL;
    json_decref(st);
    if (text == NULL || replace_file(c, "state.json", text, strlen(text)) != 0) {
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_ERROR, &c->fail_limit, MOD, NULL,
                        "%s/state.json could not be written", c->dir);
    }
    free(text);
}

/* ------------------------------------------------------------- opening --------------- */

/* Reads state.json and changes.log. Returns 0, or KVL_EPROTO (a sentence in err) when
 * state.json was written by a newer collector. */
static int load(kvl_topo_changes_t *c, char *err, size_t errlen)
{
    char path[4096];
    path_of(c, "state.json", path, sizeof(path));
    json_error_t je;
    json_t *st = json_load_file(path, 0, &je);
    json_t *fmt = json_object_get(st, "format");
    json_int_t fv = json_is_integer(fmt) ? json_integer_value(fmt) : 0;
    if (kvl_format_check(path,
                         fv < 0            ? 0
                         : fv > UINT32_MAX ? UINT32_MAX
                                           : (uint32_t)fv,
                         KVL_TOPO_FORMAT_VERSION, "kaaval-collector",
                         "the topology's change history is then lost", err, errlen) != 0) {
        json_decref(st);
        return KVL_EPROTO;
    }
    if (st != NULL) {
        json_t *links = json_object_get(st, "links"), *cuts = json_object_get(st, "cuts");
        json_t *ver = json_object_get(st, "version"), *nodes = json_object_get(st, "nodes");
        if (json_is_object(links) && json_is_object(cuts) && json_is_integer(ver) &&
            json_is_object(nodes) && json_integer_value(ver) >= 0) {
            json_object_update(c->nodes, nodes);
            json_object_update(c->links, links);
            json_object_update(c->cuts, cuts);
            c->version = (uint64_t)json_integer_value(ver);
            c->loaded = true;
        } else {
            KVL_LOG_WARN(MOD, NULL, "%s is not what the collector writes: ignored", path);
        }
        json_decref(st);
    } else if (errno != ENOENT && access(path, F_OK) == 0) {
        KVL_LOG_WARN(MOD, NULL, "%s is damaged (%s): ignored", path, je.text);
    }
    path_of(c, "changes.log", path, sizeof(path));
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        return 0;
    }
    char *line = NULL;
    size_t cap = 0, damaged = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        c->in_file++;
        json_t *rec = n < LINE_MAX_LEN ? json_loadb(line, (size_t)n, 0, NULL) : NULL;
        json_t *v = json_object_get(rec, "version");
        if (!json_is_object(rec) || !json_is_integer(v) ||
            !json_is_string(json_object_get(rec, "what"))) {
            damaged++;
            json_decref(rec);
            continue;
        }
        if ((uint64_t)json_integer_value(v) > c->version) {
            c->version = (uint64_t)json_integer_value(v);
        }
        ring_push(c, rec);
    }
    free(line);
    fclose(f);
    if (damaged > 0) {
        KVL_LOG_WARN(MOD, NULL, "%s: %zu damaged lines skipped", path, damaged);
    }
    return 0;
}

int kvl_topo_changes_open(const char *dir, size_t keep, kvl_topo_changes_t **out, char *err,
                          size_t errlen)
{
    *out = NULL;
    if (keep == 0 || keep > 1000000) {
        snprintf(err, errlen, "topology changes: keep %zu is not in 1-1000000", keep);
        return KVL_EINVAL;
    }
    kvl_topo_changes_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->ring = calloc(keep, sizeof(*c->ring))) == NULL ||
        (c->nodes = json_object()) == NULL || (c->links = json_object()) == NULL ||
        (c->cuts = json_object()) == NULL || (dir != NULL && (c->dir = strdup(dir)) == NULL)) {
        kvl_topo_changes_free(c);
        snprintf(err, errlen, "topology changes: out of memory");
        return KVL_ENOMEM;
    }
    c->keep = keep;
    c->fail_limit = (kvl_log_limit_t)KVL_LOG_LIMIT_INIT(60 * 1000);
    if (dir != NULL) {
        if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot make %s: %s", dir, strerror(errno));
            kvl_topo_changes_free(c);
            return KVL_EIO;
        }
        int rc = load(c, err, errlen);
        if (rc != 0) {
            kvl_topo_changes_free(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

void kvl_topo_changes_free(kvl_topo_changes_t *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; c->ring != NULL && i < c->n; i++) {
        json_decref(ring_at(c, i));
    }
    free(c->ring);
    json_decref(c->nodes);
    json_decref(c->links);
    json_decref(c->cuts);
    free(c->dir);
    free(c);
}

uint64_t kvl_topo_changes_version(const kvl_topo_changes_t *c)
{
    return c->version;
}

/* ------------------------------------------------------------- comparing ------------- */

static bool listed_source(kvl_topo_source_t s)
{
    return s != KVL_TOPO_SRC_MEMBER && s != KVL_TOPO_SRC_VANTAGE && s != KVL_TOPO_SRC_PROBE;
}

typedef struct cut_seen {
    const kvl_topo_t *g;
    json_t *now; /* name -> reason */
    kvl_topo_reason_fn reason_fn;
} cut_seen_t;

/* An element's name that does not depend on the states (a link's ends in name order). */
static void stable_name(const kvl_topo_t *g, kvl_topo_elem_t e, char *buf, size_t len)
{
    kvl_topo_elem_name(g, e, false, buf, len);
}

static bool count_one(void *ctx, uint32_t n)
{
    (void)n;
    (*(size_t *)ctx)++;
    return false; /* one is enough */
}

static bool on_cause(void *ctx, kvl_topo_elem_t e)
{
    cut_seen_t *s = ctx;
    size_t behind = 0;
    kvl_topo_each_cut(s->g, e, count_one, &behind);
    if (behind > 0) {
        char name[NAME_LEN];
        stable_name(s->g, e, name, sizeof(name));
        json_object_set_new(s->now, name, json_string(s->reason_fn(s->g, e)));
    }
    return true;
}

/* The graph's listed elements: "kind name" -> true, "link (source)" -> source, and the cuts. */
typedef struct picture {
    json_t *nodes, *links, *cuts;
} picture_t;

static void picture_free(picture_t *p)
{
    json_decref(p->nodes);
    json_decref(p->links);
    json_decref(p->cuts);
}

/* The picture of g; its nodes and links copied from `same` when not NULL (an unchanged
 * structure: only the cuts are taken again). */
static int picture_of(const kvl_topo_t *g, kvl_topo_reason_fn reason_fn, const picture_t *same,
                      picture_t *p)
{
    p->cuts = json_object();
    if (same != NULL) {
        p->nodes = json_incref(same->nodes);
        p->links = json_incref(same->links);
        cut_seen_t cs = {.g = g, .now = p->cuts, .reason_fn = reason_fn};
        kvl_topo_each_cause(g, on_cause, &cs);
        return p->cuts != NULL ? 0 : KVL_ENOMEM;
    }
    p->nodes = json_object();
    p->links = json_object();
    if (p->nodes == NULL || p->links == NULL || p->cuts == NULL) {
        return KVL_ENOMEM;
    }
    int rc = 0;
    char name[NAME_LEN], key[NAME_LEN + 32];
    for (size_t i = 0; i < kvl_topo_nodes(g); i++) {
        const char *n = kvl_topo_node_name(g, (uint32_t)i);
        snprintf(key, sizeof(key), "%s %s", kvl_topo_kind_name(kvl_topo_node_kind(g, (uint32_t)i)),
                 n != NULL ? n : "?");
        rc |= json_object_set_new(p->nodes, key, json_true());
    }
    for (size_t i = 0; i < kvl_topo_links(g); i++) {
        kvl_topo_link_info_t li;
        if (!kvl_topo_link_get(g, (uint32_t)i, &li) || li.forgotten || !listed_source(li.source)) {
            continue;
        }
        stable_name(g, (kvl_topo_elem_t){.is_link = true, .id = (uint32_t)i}, name, sizeof(name));
        snprintf(key, sizeof(key), "%s (%s)", name, kvl_topo_source_name(li.source));
        rc |= json_object_set_new(p->links, key, json_string(kvl_topo_source_name(li.source)));
    }
    cut_seen_t cs = {.g = g, .now = p->cuts, .reason_fn = reason_fn};
    kvl_topo_each_cause(g, on_cause, &cs);
    return rc != 0 ? KVL_ENOMEM : 0;
}

/* A change per key of `now` not in `was` (what_new), and per key of `was` not in `now`
 * (what_gone, NULL: none); with values compared when `values` (a changed value is new). */
static void compare(kvl_topo_changes_t *c, int64_t now_ms, json_t *was, json_t *now,
                    const char *what_new, const char *what_gone, bool values, bool source)
{
    const char *k;
    json_t *v;
    json_object_foreach(now, k, v)
    {
        json_t *old = json_object_get(was, k);
        if (old == NULL || (values && !json_equal(old, v))) {
            record(c, now_ms, what_new, k, source ? json_string_value(v) : NULL,
                   values ? json_string_value(v) : NULL);
        }
    }
    json_object_foreach(was, k, v)
    {
        if (what_gone != NULL && json_object_get(now, k) == NULL) {
            record(c, now_ms, what_gone, k, source ? json_string_value(v) : NULL,
                   values ? json_string_value(v) : NULL);
        }
    }
}

void kvl_topo_changes_diff(kvl_topo_changes_t *c, const kvl_topo_t *g, int64_t now,
                           kvl_topo_reason_fn reason_fn)
{
    picture_t p = {0};
    picture_t last = {.nodes = c->nodes, .links = c->links, .cuts = c->cuts};
    bool same = c->loaded && c->have_generation && c->generation == kvl_topo_generation(g);
    if (picture_of(g, reason_fn, same ? &last : NULL, &p) != 0) {
        picture_free(&p);
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_ERROR, &c->fail_limit, MOD, NULL,
                        "out of memory: the topology's changes are not compared");
        return;
    }
    uint64_t before = c->version;
    if (!c->loaded) {
        /* the first graph this collector ever saw: one line, not one per element */
        char what[96];
        snprintf(what, sizeof(what), "%zu nodes, %zu links", json_object_size(p.nodes),
                 json_object_size(p.links));
        record(c, now, "learned", what, NULL, NULL);
        compare(c, now, c->cuts, p.cuts, "cut", NULL, true, false);
    } else {
        compare(c, now, c->nodes, p.nodes, "node_added", "node_gone", false, false);
        compare(c, now, c->links, p.links, "link_added", "link_gone", false, true);
        compare(c, now, c->cuts, p.cuts, "cut", "repaired", true, false);
    }
    json_decref(c->nodes);
    json_decref(c->links);
    json_decref(c->cuts);
    c->nodes = p.nodes;
    c->links = p.links;
    c->cuts = p.cuts;
    c->loaded = true;
    c->generation = kvl_topo_generation(g);
    c->have_generation = true;
    if (c->version != before) {
        save_state(c);
    }
}

json_t *kvl_topo_changes_json(const kvl_topo_changes_t *c, uint64_t since, size_t limit)
{
    json_t *arr = json_array();
    json_t *out = json_pack("{s:I, s:o}", "version", (json_int_t)c->version, "changes", arr);
    if (out == NULL) {
        return NULL;
    }
    size_t first = c->n;
    size_t taken = 0;
    while (first > 0 && taken < limit) {
        json_t *v = json_object_get(ring_at(c, first - 1), "version");
        if ((uint64_t)json_integer_value(v) <= since) {
            break;
        }
        first--;
        taken++;
    }
    for (size_t i = first; i < c->n; i++) {
        json_array_append(arr, ring_at(c, i));
    }
    return out;
}
