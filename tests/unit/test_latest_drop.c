/*
 * test_latest_drop.c — unit tests for kvl_latest_drop (collector/board/latest.h): the latest
 * values of one instance go (an interface renamed on its device), every other series stays
 * found through the rebuilt index, and the instance can come back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kvl.h"
#include "latest.h"

/* ids 1..n: interface i's in_octets (id 2i-1) and out_octets (id 2i) of rtr1 */
static const char *g_names[64];
static kvl_series_def_t g_defs[128];

static const kvl_series_def_t *def_of(const void *table, uint32_t id)
{
    (void)table;
    return id >= 1 && id <= 128 ? &g_defs[id - 1] : NULL;
}

static const kvl_family_t *fam_of(const void *table, const kvl_series_def_t *d)
{
    (void)table;
    (void)d;
    return NULL;
}

static void feed(kvl_latest_t *l, size_t n_if, int64_t t_ms)
{
    uint32_t ids[128];
    uint64_t vals[128];
    for (size_t i = 0; i < 2 * n_if; i++) {
        g_defs[i] = (kvl_series_def_t){.id = (uint32_t)(i + 1),
                                       .device = "rtr1",
                                       .scope = KVL_SCOPE_INTERFACE,
                                       .instance = g_names[i / 2],
                                       .metric = i % 2 ? "out_octets" : "in_octets",
                                       .kind = KVL_KIND_COUNTER,
                                       .interval_s = 60};
        ids[i] = (uint32_t)(i + 1);
        vals[i] = 1000 * (i + 1);
    }
    kvl_group_t g = {
        .time_ms = t_ms, .ids = ids, .n_ids = 2 * n_if, .values = vals, .n_values = 2 * n_if};
    kvl_batch_t b = {.seq = 1, .groups = &g, .n_groups = 1};
    kvl_sink_defs_t defs = {.table = NULL, .def = def_of, .family = fam_of};
    kvl_sink_batch_t sb = {.agent = "ag1", .site = "dhq-one", .defs = &defs, .batch = &b};
    assert_int_equal(kvl_latest_batch(l, &sb), 0);
}

static bool known(kvl_latest_t *l, const char *instance, const char *metric)
{
    kvl_latest_value_t v;
    return kvl_latest_get(l, "ag1", "rtr1", KVL_SCOPE_INTERFACE, instance, metric, &v) == 0;
}

static void test_drop(void **state)
{
    (void)state;
    kvl_latest_t *l = NULL;
    char err[200];
    assert_int_equal(kvl_latest_new(0, NULL, &l, err, sizeof(err)), 0);
    static char names[64][16];
    for (size_t i = 0; i < 64; i++) {
        snprintf(names[i], sizeof(names[i]), "Gi0/%zu", i);
        g_names[i] = names[i];
    }
    assert_int_equal(kvl_latest_drop(l, "ag1", "rtr1", KVL_SCOPE_INTERFACE, "Gi0/7"), 0);
    feed(l, 64, 1796464800000LL);
    assert_true(known(l, "Gi0/7", "in_octets"));
    assert_int_equal(kvl_latest_drop(l, "ag1", "rtr1", KVL_SCOPE_INTERFACE, "Gi0/7"), 2);
    assert_false(known(l, "Gi0/7", "in_octets"));
    assert_false(known(l, "Gi0/7", "out_octets"));
    for (size_t i = 0; i < 64; i++) { /* every other one found through the rebuilt index */
        if (i != 7) {
            assert_true(known(l, names[i], "in_octets"));
            assert_true(known(l, names[i], "out_octets"));
        }
    }
    /* only that scope, agent and device */
    assert_int_equal(kvl_latest_drop(l, "ag1", "rtr1", KVL_SCOPE_DEVICE, "Gi0/8"), 0);
    assert_int_equal(kvl_latest_drop(l, "ag2", "rtr1", KVL_SCOPE_INTERFACE, "Gi0/8"), 0);
    assert_int_equal(kvl_latest_drop(l, "ag1", "rtr9", KVL_SCOPE_INTERFACE, "Gi0/8"), 0);
    assert_int_equal(kvl_latest_drop(l, "ag1", "rtr1", KVL_SCOPE_INTERFACE, "nope"), 0);
    /* the new name's values come with its samples; the old name can come back too */
    snprintf(names[7], sizeof(names[7]), "Te0/7");
    feed(l, 64, 1796464860000LL);
    assert_true(known(l, "Te0/7", "in_octets"));
    assert_false(known(l, "Gi0/7", "in_octets"));
    kvl_latest_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
