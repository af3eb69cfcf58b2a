/*
 * test_registry_names.c — the series registry (agent/ship/registry.h) refusing names the
 * collector could not turn into archive file names (common/names.h).
 *
 * Interfaces, metric group instances and devices whose file-safe name is longer than
 * KVL_NAME_FILE_MAX get no id, so no definition of theirs waits for a batch; each pair of
 * device and instance is counted (kvl_registry_names_refused) and logged once, however often
 * it is registered again; names at the bound, and every other series, are unharmed. The log
 * lines are read back from stderr, redirected to a file for the test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvl.h"
#include "log.h"
#include "names.h"
#include "registry.h"

static const char *const if_metrics[] = {"in_octets", "out_octets"};
static const kvl_kind_t if_kinds[] = {KVL_KIND_COUNTER, KVL_KIND_COUNTER};
static const kvl_family_t if_family = {
    .name = "interface", .n = 2, .metrics = if_metrics, .kinds = if_kinds};

static uint32_t iface(kvl_registry_t *r, const char *device, const char *name)
{
    kvl_label_t labels[] = {{"ifName", name}};
    kvl_instance_key_t k = {.device = device,
                            .scope = KVL_SCOPE_INTERFACE,
                            .instance = name,
                            .family = &if_family,
                            .interval_s = 60,
                            .labels = labels,
                            .n_labels = 1};
    return kvl_registry_instance(r, &k);
}

/* stderr into a temporary file while a test runs; the lines written come back from
 * log_lines. */
static int saved_stderr = -1;
static FILE *log_file;

static void log_capture(void)
{
    log_file = tmpfile();
    assert_non_null(log_file);
    fflush(stderr);
    saved_stderr = dup(2);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(fileno(log_file), 2) >= 0);
}

/* Restores stderr; returns how many lines contain `what`. */
static int log_count(const char *what)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    rewind(log_file);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), log_file) != NULL) {
        n += strstr(line, what) != NULL;
    }
    fclose(log_file);
    return n;
}

static void test_long_names_refused_once(void **state)
{
    KVL_UNUSED(state);
    kvl_log_level = KVL_LOG_LEVEL_WARN;
    kvl_registry_t *r = NULL;
    char err[128];
    assert_int_equal(kvl_registry_new(&r, err, sizeof(err)), 0);
    char longname[400], slashes[120], at_bound[KVL_NAME_FILE_MAX + 1];
    memset(longname, 'x', 300);
    longname[300] = '\0';
    memset(slashes, '/', 100); /* 100 bytes, 300 as a file name */
    slashes[100] = '\0';
    memset(at_bound, 'b', KVL_NAME_FILE_MAX);
    at_bound[KVL_NAME_FILE_MAX] = '\0';

    log_capture();
    uint32_t good = iface(r, "sw1", "Gi0/1");
    assert_true(good > 0);
    for (int i = 0; i < 5; i++) { /* a discovery each time: counted and logged once */
        assert_int_equal(iface(r, "sw1", longname), 0);
    }
    assert_int_equal(kvl_registry_names_refused(r), 1);
    assert_int_equal(iface(r, "sw1", slashes), 0);
    assert_int_equal(iface(r, "sw2", longname), 0); /* the same name on another device */
    assert_int_equal(kvl_registry_names_refused(r), 3);
    assert_true(iface(r, "sw1", at_bound) > 0);

    /* A metric group's instance and a device's own series. */
    kvl_instance_key_t g = {.device = "sw1",
                            .scope = KVL_SCOPE_GROUP,
                            .instance = longname,
                            .family = &if_family,
                            .interval_s = 60};
    assert_int_equal(kvl_registry_instance(r, &g), 0);
    kvl_series_key_t dev = {.device = longname,
                            .scope = KVL_SCOPE_DEVICE,
                            .instance = "",
                            .metric = "uptime",
                            .kind = KVL_KIND_GAUGE,
                            .interval_s = 60};
    assert_int_equal(kvl_registry_series(r, &dev), 0);
    assert_int_equal(kvl_registry_series(r, &dev), 0);
    assert_int_equal(kvl_registry_names_refused(r), 5);
    int refusals = log_count("its series are not sent");
    assert_int_equal(refusals, 5);

    /* Only the good ones wait for a batch, and only they are known. */
    kvl_registry_new_t nw;
    assert_int_equal(kvl_registry_take_new(r, &nw), 0);
    assert_int_equal(nw.n_defs, 2);
    for (size_t i = 0; i < nw.n_defs; i++) {
        assert_true(strlen(nw.defs[i].instance) <= KVL_NAME_FILE_MAX);
    }
    kvl_registry_new_free(&nw);
    kvl_registry_sent(r);
    assert_int_equal(kvl_registry_n_defs(r), 2);
    assert_int_equal(iface(r, "sw1", "Gi0/1"), good); /* unchanged */
    kvl_registry_free(r);
}

/* Many different refused names: the set of those already logged is bounded; beyond it each
 * refusal is still counted and the lines are rate-limited, and memory stays small. */
static void test_many_refused(void **state)
{
    KVL_UNUSED(state);
    kvl_log_level = KVL_LOG_LEVEL_WARN;
    kvl_registry_t *r = NULL;
    char err[128];
    assert_int_equal(kvl_registry_new(&r, err, sizeof(err)), 0);
    log_capture();
    char name[400];
    memset(name, 'y', 300);
    name[300] = '\0';
    enum { N = 6000 };
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "%06d", i);
        name[6] = 'y'; /* still 300 bytes */
        assert_int_equal(iface(r, "sw1", name), 0);
    }
    assert_int_equal(kvl_registry_names_refused(r), N);
    int lines = log_count("its series are not sent");
    assert_in_range(lines, 4096, 4096 + 2); /* once each up to the bound, then limited */
    assert_int_equal(kvl_registry_n_defs(r), 0);
    kvl_registry_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_long_names_refused_once),
        cmocka_unit_test(test_many_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
