/*
 * test_topo_changes.c — unit tests for the topology's versions (collector/topology/
 * topo_changes.h): the first graph is one `learned` change; a link learned, a link gone, a
 * node added, a cut and its repair are one change each with consecutive versions; an
 * unchanged graph records nothing; reopened from its folder (as after a restart) the same
 * graph records nothing and the versions go on; a damaged line of changes.log is skipped;
 * ?since and ?limit select the newest changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "newer_format.h"

#include "kvl.h"
#include "topo_changes.h"
#include "topo_graph.h"

static const char *reason_fn(const kvl_topo_t *g, kvl_topo_elem_t e)
{
    (void)g;
    return e.is_link ? "link down" : "down";
}

static uint32_t node(kvl_topo_t *g, kvl_topo_kind_t k, const char *name)
{
    uint32_t id;
    assert_int_equal(kvl_topo_add_node(g, k, name, &id), 0);
    return id;
}

static uint32_t add_link(kvl_topo_t *g, uint32_t a, uint32_t b, kvl_topo_source_t s)
{
    uint32_t id;
    assert_int_equal(kvl_topo_add_link(g, a, b, s, "p1", "p2", 1, &id), 0);
    return id;
}

/* The changes after version since, as "what name" lines joined by '|'. */
static void changes(const kvl_topo_changes_t *c, uint64_t since, size_t limit, char *out,
                    size_t len)
{
    json_t *j = kvl_topo_changes_json(c, since, limit);
    assert_non_null(j);
    size_t at = 0;
    out[0] = '\0';
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "changes"), i, v)
    {
        at += (size_t)snprintf(out + at, len - at, "%s%s %s", i > 0 ? "|" : "",
                               json_string_value(json_object_get(v, "what")),
                               json_string_value(json_object_get(v, "name")));
    }
    json_decref(j);
}

static void diff(kvl_topo_changes_t *c, kvl_topo_t *g, int64_t now)
{
    assert_int_equal(kvl_topo_compute(g), 0);
    kvl_topo_changes_diff(c, g, now, reason_fn);
}

static void test_changes(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-topo-changes-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[256], buf[4096];
    kvl_topo_changes_t *c;
    assert_int_equal(kvl_topo_changes_open(dir, 100, &c, err, sizeof(err)), 0);
    kvl_topo_t *g;
    assert_int_equal(kvl_topo_new(&g), 0);
    uint32_t noc = node(g, KVL_TOPO_SITE, "noc");
    uint32_t r1 = node(g, KVL_TOPO_DEVICE, "a/r1");
    uint32_t r2 = node(g, KVL_TOPO_DEVICE, "b/r2");
    kvl_topo_set_root(g, noc, true);
    add_link(g, noc, r1, KVL_TOPO_SRC_MEMBER);
    uint32_t l12 = add_link(g, r1, r2, KVL_TOPO_SRC_LLDP);

    diff(c, g, 1000);
    assert_int_equal(kvl_topo_changes_version(c), 1);
    changes(c, 0, 100, buf, sizeof(buf));
    assert_string_equal(buf, "learned 3 nodes, 1 links");
    diff(c, g, 2000); /* nothing changed */
    assert_int_equal(kvl_topo_changes_version(c), 1);

    uint32_t r3 = node(g, KVL_TOPO_DEVICE, "b/r3");
    add_link(g, r2, r3, KVL_TOPO_SRC_CDP);
    kvl_topo_forget_link(g, l12);
    uint32_t l12b = add_link(g, r1, r2, KVL_TOPO_SRC_UPLINK);
    diff(c, g, 3000);
    changes(c, 1, 100, buf, sizeof(buf));
    assert_non_null(strstr(buf, "node_added device b/r3"));
    assert_non_null(strstr(buf, "link_added b/r2 [p1] - b/r3 [p2] (cdp)"));
    assert_non_null(strstr(buf, "link_added a/r1 [p1] - b/r2 [p2] (uplink)"));
    assert_non_null(strstr(buf, "link_gone a/r1 [p1] - b/r2 [p2] (lldp)"));
    assert_int_equal(kvl_topo_changes_version(c), 5);

    kvl_topo_set_link_up(g, l12b, false); /* r2 and r3 cut off behind it */
    diff(c, g, 4000);
    changes(c, 5, 100, buf, sizeof(buf));
    assert_string_equal(buf, "cut a/r1 [p1] - b/r2 [p2]");
    kvl_topo_changes_free(c);

    /* a restart: the same graph, nothing new; the cut repaired then */
    assert_int_equal(kvl_topo_changes_open(dir, 100, &c, err, sizeof(err)), 0);
    assert_int_equal(kvl_topo_changes_version(c), 6);
    diff(c, g, 5000);
    assert_int_equal(kvl_topo_changes_version(c), 6);
    kvl_topo_set_link_up(g, l12b, true);
    diff(c, g, 6000);
    changes(c, 6, 100, buf, sizeof(buf));
    assert_string_equal(buf, "repaired a/r1 [p1] - b/r2 [p2]");
    changes(c, 0, 2, buf, sizeof(buf)); /* the newest two */
    assert_string_equal(buf, "cut a/r1 [p1] - b/r2 [p2]|repaired a/r1 [p1] - b/r2 [p2]");
    kvl_topo_changes_free(c);

    /* a damaged line is skipped, the rest kept */
    char path[512];
    snprintf(path, sizeof(path), "%s/changes.log", dir);
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs("{\"version\": \"x\"\n", f);
    fclose(f);
    assert_int_equal(kvl_topo_changes_open(dir, 100, &c, err, sizeof(err)), 0);
    assert_int_equal(kvl_topo_changes_version(c), 7);
    changes(c, 0, 100, buf, sizeof(buf));
    assert_non_null(strstr(buf, "learned 3 nodes, 1 links|"));
    kvl_topo_changes_free(c);

    kvl_topo_free(g);
    unlink(path);
    snprintf(path, sizeof(path), "%s/state.json", dir);
    unlink(path);
    rmdir(dir);
    assert_int_equal(kvl_topo_changes_open(NULL, 0, &c, err, sizeof(err)), KVL_EINVAL);
    (void)r3;
}

/* state.json's "format": read back from the file (0 without it). */
static long long state_format(const char *path)
{
    json_t *st = json_load_file(path, 0, NULL);
    assert_non_null(st);
    json_t *v = json_object_get(st, "format");
    long long out = json_is_integer(v) ? (long long)json_integer_value(v) : 0;
    json_decref(st);
    return out;
}

/* state.json rewritten with "format": v (v < 0: without it). */
static void state_set_format(const char *path, long long v)
{
    json_t *st = json_load_file(path, 0, NULL);
    assert_non_null(st);
    if (v < 0) {
        json_object_del(st, "format");
    } else {
        json_object_set_new(st, "format", json_integer((json_int_t)v));
    }
    assert_int_equal(json_dump_file(st, path, JSON_COMPACT), 0);
    json_decref(st);
}

/* The format version: written in state.json; a folder written before versions were kept is
 * read as it is (a restart says nothing new) and the next write adds it; a newer one is
 * refused with the sentence, the file untouched. */
static void test_format_version(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-topo-format-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[1200], path[512], logp[512];
    snprintf(path, sizeof(path), "%s/state.json", dir);
    snprintf(logp, sizeof(logp), "%s/changes.log", dir);
    kvl_topo_t *g;
    assert_int_equal(kvl_topo_new(&g), 0);
    uint32_t noc = node(g, KVL_TOPO_SITE, "noc");
    uint32_t r1 = node(g, KVL_TOPO_DEVICE, "a/r1");
    kvl_topo_set_root(g, noc, true);
    add_link(g, noc, r1, KVL_TOPO_SRC_MEMBER);
    kvl_topo_changes_t *c;
    assert_int_equal(kvl_topo_changes_open(dir, 100, &c, err, sizeof(err)), 0);
    diff(c, g, 1000);
    kvl_topo_changes_free(c);
    assert_int_equal(state_format(path), KVL_TOPO_FORMAT_VERSION);

    state_set_format(path, -1);
    assert_int_equal(kvl_topo_changes_open(dir, 100, &c, err, sizeof(err)), 0);
    assert_int_equal(kvl_topo_changes_version(c), 1);
    diff(c, g, 2000);
    assert_int_equal(kvl_topo_changes_version(c), 1); /* nothing new */
    uint32_t r2 = node(g, KVL_TOPO_DEVICE, "a/r2");
    add_link(g, r1, r2, KVL_TOPO_SRC_LLDP);
    diff(c, g, 3000);
    kvl_topo_changes_free(c);
    assert_int_equal(state_format(path), KVL_TOPO_FORMAT_VERSION);

    state_set_format(path, KVL_TOPO_FORMAT_VERSION + 1);
    file_bytes_t old = file_bytes(path);
    c = NULL;
    assert_int_equal(kvl_topo_changes_open(dir, 100, &c, err, sizeof(err)), KVL_EPROTO);
    assert_null(c);
    expect_newer_sentence(err, path, KVL_TOPO_FORMAT_VERSION + 1, KVL_TOPO_FORMAT_VERSION,
                          "kaaval-collector");
    expect_file_unchanged(path, &old);

    kvl_topo_free(g);
    unlink(path);
    unlink(logp);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_changes),
        cmocka_unit_test(test_format_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
