/*
 * test_store_move_fault.c — an archive's move that fails for a reason that can pass (the file
 * system read-only) through the store's sink (collector/store/store_move.c): the batch is
 * asked again (retry, with the reason), nothing of it is written, the old file stays where it
 * was and the move stays queued; once the file system is writable again the batch given again
 * moves the file first and its row lands in it.
 *
 * Needs root (a mount namespace of its own with a tmpfs that it remounts read-only); exits
 * 77 (ctest: skipped) otherwise.
 */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "kvl.h"
#include "sink.h"
#include "store.h"

#define T0 1700000040LL

static const char *const cfs[] = {"AVERAGE", NULL};
static char g_root[64];

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

static int g_done, g_moved;
static kvl_sink_result_t g_res;

static void on_done(void *token, const kvl_sink_result_t *r)
{
    (void)token;
    g_done++;
    g_res = r != NULL ? *r : (kvl_sink_result_t){0};
}

static void on_moved(void *ctx, const char *agent, const char *device, const char *from,
                     const char *to, kvl_store_move_how_t how)
{
    (void)ctx;
    (void)agent;
    (void)device;
    (void)from;
    (void)to;
    assert_int_equal(how, KVL_STORE_MOVED);
    g_moved++;
}

static void batch(uv_loop_t *loop, kvl_store_t *s, const char *name, int64_t t, uint64_t value)
{
    g_def.instance = name;
    uint32_t ids[] = {1};
    uint64_t values[] = {value};
    kvl_group_t g = {.time_ms = t * 1000, .ids = ids, .n_ids = 1, .values = values, .n_values = 1};
    kvl_batch_t b = {.seq = 1, .defs = &g_def, .n_defs = 1, .groups = &g, .n_groups = 1};
    kvl_sink_defs_t defs = {.table = NULL, .def = def_of, .family = family_of};
    kvl_sink_batch_t sb = {.agent = "ag1", .site = "dhq-one", .defs = &defs, .batch = &b};
    g_done = 0;
    assert_int_equal(kvl_store_sink.on_batch(s, &sb, on_done, NULL), 0);
    assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(g_done, 1);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void test_read_only(void **state)
{
    (void)state;
    char data[128];
    snprintf(data, sizeof(data), "%s/data", g_root);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    kvl_archive_spec_t archives[] = {{0, 3600000}};
    kvl_store_cfg_t cfg = {
        .data_dir = data, .archives = archives, .n_archives = 1, .consolidations = cfs};
    kvl_store_t *s = NULL;
    char err[256];
    assert_int_equal(kvl_store_new(&loop, &cfg, &s, err, sizeof(err)), 0);
    kvl_store_on_moved(s, on_moved, NULL);
    char gi[512], te[512];
    assert_int_equal(
        kvl_store_path(data, "dhq-one", "rtr1", KVL_SCOPE_INTERFACE, "Gi0/2", gi, sizeof(gi)), 0);
    assert_int_equal(
        kvl_store_path(data, "dhq-one", "rtr1", KVL_SCOPE_INTERFACE, "Te0/2", te, sizeof(te)), 0);

    batch(&loop, s, "Gi0/2", T0, 1000);
    assert_int_equal(g_res.rows, 1);
    struct stat st;
    assert_int_equal(stat(gi, &st), 0);
    ino_t ino = st.st_ino;

    /* read-only: the batch comes back, nothing written, the move still queued */
    assert_int_equal(mount(NULL, g_root, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
    assert_int_equal(kvl_store_move(s, "ag1", "dhq-one", "rtr1", "Gi0/2", "Te0/2"), 0);
    batch(&loop, s, "Te0/2", T0 + 60, 2000);
    assert_true(g_res.retry > 0);
    assert_int_equal(g_res.rows, 0);
    assert_non_null(strstr(g_res.why, "Gi0"));
    assert_non_null(strstr(g_res.why, "ead-only")); /* strerror(EROFS) */
    assert_int_equal(g_moved, 0);
    assert_int_equal(kvl_store_moves_pending(s), 1);
    assert_true(exists(gi));
    assert_false(exists(te));

    /* writable again: the batch given again moves first, then writes into the moved file */
    assert_int_equal(mount(NULL, g_root, NULL, MS_REMOUNT, NULL), 0);
    batch(&loop, s, "Te0/2", T0 + 60, 2000);
    assert_int_equal(g_res.retry, 0);
    assert_int_equal(g_res.rows, 1);
    assert_int_equal(g_moved, 1);
    assert_int_equal(kvl_store_moves_pending(s), 0);
    assert_false(exists(gi));
    assert_int_equal(stat(te, &st), 0);
    assert_int_equal(st.st_ino, ino);

    kvl_store_free(s);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "test_store_move_fault: needs root (a mount namespace): skipped\n");
        return 77;
    }
    /* before any thread: the pool's threads must share this namespace */
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        perror("test_store_move_fault: a mount namespace of its own");
        return 1;
    }
    snprintf(g_root, sizeof(g_root), "/tmp/kvl-test-store-move-fault-XXXXXX");
    if (mkdtemp(g_root) == NULL || mount("tmpfs", g_root, "tmpfs", 0, "size=16m") != 0) {
        perror("test_store_move_fault: a tmpfs");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_only),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    umount2(g_root, MNT_DETACH);
    rmdir(g_root);
    return rc;
}
