/*
 * test_store_move.c — unit tests for an interface's archive that follows its new name
 * (collector/store/store_move.c, store.h "kvl_store_move"), through the store's sink as the
 * ingest drives it: the move runs before the rows of the agent's next batch (so the new
 * name's first samples land in the moved file, the same inode), not in another agent's
 * batch; asked again it finds nothing to move; a new name that has its own file keeps both;
 * one file under both names (a link-then-unlink cut short) is taken as the move half done;
 * names that cannot be archive paths are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "kvl.h"
#include "sink.h"
#include "store.h"

#define T0 1700000040LL /* a multiple of 60 */

static const char *const cfs[] = {"AVERAGE", NULL};

/* The definition the batches' one sample refers to (id 1): in_octets of an interface. */
static kvl_series_def_t g_def = {.id = 1,
                                 .device = "rtr1",
                                 .scope = KVL_SCOPE_INTERFACE,
                                 .metric = "in_octets",
                                 .kind = KVL_KIND_COUNTER,
                                 .interval_s = 60};

static const kvl_series_def_t *def_of(const void *table, uint32_t id)
{
    (void)table;
    return id == 1 ? &g_def : NULL;
}

static const kvl_family_t *family_of(const void *table, const kvl_series_def_t *d)
{
    (void)table;
    (void)d;
    return NULL;
}

static int g_done;
static kvl_sink_result_t g_res;

static void on_done(void *token, const kvl_sink_result_t *r)
{
    (void)token;
    g_done++;
    g_res = r != NULL ? *r : (kvl_sink_result_t){0};
}

typedef struct moved {
    char from[64], to[64];
    kvl_store_move_how_t how;
} moved_t;
static moved_t g_moved[8];
static int g_n_moved;

static void on_moved(void *ctx, const char *agent, const char *device, const char *from,
                     const char *to, kvl_store_move_how_t how)
{
    (void)ctx;
    assert_string_equal(agent, "ag1");
    assert_string_equal(device, "rtr1");
    assert_true(g_n_moved < 8);
    moved_t *m = &g_moved[g_n_moved++];
    snprintf(m->from, sizeof(m->from), "%s", from);
    snprintf(m->to, sizeof(m->to), "%s", to);
    m->how = how;
}

/* One batch of agent: interface `name`'s in_octets at t (s), through the sink, run to its end. */
static void batch(uv_loop_t *loop, kvl_store_t *s, const char *agent, const char *name, int64_t t,
                  uint64_t value)
{
    g_def.instance = name;
    uint32_t ids[] = {1};
    uint64_t values[] = {value};
    kvl_group_t g = {.time_ms = t * 1000, .ids = ids, .n_ids = 1, .values = values, .n_values = 1};
    kvl_batch_t b = {.seq = 1, .defs = &g_def, .n_defs = 1, .groups = &g, .n_groups = 1};
    kvl_sink_defs_t defs = {.table = NULL, .def = def_of, .family = family_of};
    kvl_sink_batch_t sb = {.agent = agent, .site = "dhq-one", .defs = &defs, .batch = &b};
    g_done = 0;
    assert_int_equal(kvl_store_sink.on_batch(s, &sb, on_done, NULL), 0);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g_done, 1);
    assert_int_equal(g_res.retry, 0);
    assert_int_equal(g_res.errors, 0);
}

static void path_of(const char *data, const char *name, char *out, size_t len)
{
    assert_int_equal(kvl_store_path(data, "dhq-one", "rtr1", KVL_SCOPE_INTERFACE, name, out, len),
                     0);
}

static ino_t inode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_ino;
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void test_move(void **state)
{
    (void)state;
    char root[] = "/tmp/kvl-test-store-move-XXXXXX";
    assert_non_null(mkdtemp(root));
    char data[256];
    snprintf(data, sizeof(data), "%s/data", root);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kvl_archive_spec_t archives[] = {{0, 3600000}};
    kvl_store_cfg_t cfg = {
        .data_dir = data, .archives = archives, .n_archives = 1, .consolidations = cfs};
    kvl_store_t *s = NULL;
    char err[256];
    assert_int_equal(kvl_store_new(&loop, &cfg, &s, err, sizeof(err)), 0);
    kvl_store_on_moved(s, on_moved, NULL);
    g_n_moved = 0;

    char gi[512], te[512], fa[512], xe[512];
    path_of(data, "Gi0/2", gi, sizeof(gi));
    path_of(data, "Te0/2", te, sizeof(te));
    path_of(data, "Fa0/2", fa, sizeof(fa));
    path_of(data, "Xe0/2", xe, sizeof(xe));

    /* history under the old name */
    batch(&loop, s, "ag1", "Gi0/2", T0, 1000);
    batch(&loop, s, "ag1", "Gi0/2", T0 + 60, 2000);
    assert_true(exists(gi));
    ino_t ino = inode_of(gi);

    /* bad requests */
    assert_int_equal(kvl_store_move(s, "ag1", "dhq-one", "rtr1", "Gi0/2", "Gi0/2"), KVL_EINVAL);
    assert_int_equal(kvl_store_move(s, NULL, "dhq-one", "rtr1", "Gi0/2", "Te0/2"), KVL_EINVAL);
    assert_int_equal(kvl_store_move(s, "ag1", "dhq-one", "", "Gi0/2", "Te0/2"), KVL_EINVAL);
    assert_int_equal(kvl_store_move(s, "ag1", "dhq-one", "rtr1", "", "Te0/2"), KVL_EINVAL);
    char longname[600];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(kvl_store_move(s, "ag1", "dhq-one", "rtr1", "Gi0/2", longname), KVL_EINVAL);
    assert_int_equal(kvl_store_moves_pending(s), 0);

    /* asked: nothing happens until a batch of that agent; another agent's does not run it */
    assert_int_equal(kvl_store_move(s, "ag1", "dhq-one", "rtr1", "Gi0/2", "Te0/2"), 0);
    assert_int_equal(kvl_store_moves_pending(s), 1);
    batch(&loop, s, "ag2", "eth0", T0 + 60, 5);
    assert_int_equal(kvl_store_moves_pending(s), 1);
    assert_int_equal(g_n_moved, 0);
    assert_true(exists(gi));

    /* the batch with the new name's first sample: moved first, the sample in the moved file */
    batch(&loop, s, "ag1", "Te0/2", T0 + 120, 3000);
    assert_int_equal(kvl_store_moves_pending(s), 0);
    assert_int_equal(g_n_moved, 1);
    assert_string_equal(g_moved[0].from, "Gi0/2");
    assert_string_equal(g_moved[0].to, "Te0/2");
    assert_int_equal(g_moved[0].how, KVL_STORE_MOVED);
    assert_false(exists(gi));
    assert_int_equal(inode_of(te), ino);
    assert_int_equal(g_res.rows, 1);
    assert_int_equal(g_res.stale, 0);

    /* asked again (a restart before the answer was recorded): nothing to move */
    assert_int_equal(kvl_store_move(s, "ag1", "dhq-one", "rtr1", "Gi0/2", "Te0/2"), 0);
    batch(&loop, s, "ag1", "Te0/2", T0 + 180, 4000);
    assert_int_equal(g_n_moved, 2);
    assert_int_equal(g_moved[1].how, KVL_STORE_NO_ARCHIVE);
    assert_int_equal(inode_of(te), ino);
    assert_false(exists(gi));

    /* the new name has a file of its own: both kept */
    batch(&loop, s, "ag1", "Fa0/2", T0 + 180, 10);
    ino_t ino_fa = inode_of(fa);
    assert_int_equal(kvl_store_move(s, "ag1", "dhq-one", "rtr1", "Te0/2", "Fa0/2"), 0);
    batch(&loop, s, "ag1", "Fa0/2", T0 + 240, 20);
    assert_int_equal(g_n_moved, 3);
    assert_int_equal(g_moved[2].how, KVL_STORE_KEPT_BOTH);
    assert_int_equal(inode_of(te), ino);
    assert_int_equal(inode_of(fa), ino_fa);

    /* one file under both names (a link made, the unlink not yet): the move completes */
    assert_int_equal(link(te, xe), 0);
    assert_int_equal(kvl_store_move(s, "ag1", "dhq-one", "rtr1", "Te0/2", "Xe0/2"), 0);
    /* two moves in a row run in the order asked */
    assert_int_equal(kvl_store_move(s, "ag1", "dhq-one", "rtr1", "Xe0/2", "Gi0/2"), 0);
    assert_int_equal(kvl_store_moves_pending(s), 2);
    batch(&loop, s, "ag1", "Gi0/2", T0 + 300, 5000);
    assert_int_equal(g_n_moved, 5);
    assert_int_equal(g_moved[3].how, KVL_STORE_MOVED);
    assert_string_equal(g_moved[3].to, "Xe0/2");
    assert_int_equal(g_moved[4].how, KVL_STORE_MOVED);
    assert_string_equal(g_moved[4].to, "Gi0/2");
    assert_false(exists(te));
    assert_false(exists(xe));
    assert_int_equal(inode_of(gi), ino);
    assert_int_equal(g_res.rows, 1);
    assert_int_equal(g_res.stale, 0); /* T0+300 is newer than the moved file's T0+180 */

    /* pending moves are freed with the store */
    assert_int_equal(kvl_store_move(s, "ag9", "dhq-one", "rtr1", "a", "b"), 0);
    kvl_store_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_move),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
