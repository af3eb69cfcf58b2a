/*
 * test_tls_config.c — the private key's owner and mode (common/tls_config.h,
 * kvl_tls_key_check): 0600 and 0400 accepted, 0640 with one of our groups accepted, any bit
 * for others or group write refused with a sentence naming the file, its mode and the fix;
 * as root, group read for a foreign group or a foreign owner refused. And the same through
 * `tls:` in a configuration, at the key's line and column.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "kvl.h"
#include "tls_config.h"

static char dir[64];

static int setup(void **state)
{
    KVL_UNUSED(state);
    snprintf(dir, sizeof(dir), "/tmp/kvl-tlscfg-XXXXXX");
    return mkdtemp(dir) == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    KVL_UNUSED(state);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A file in the test folder with the given mode; returns its path (static). */
static const char *key_file(const char *name, mode_t mode)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("-----BEGIN PRIVATE KEY-----\n", f);
    fclose(f);
    assert_int_equal(chmod(path, mode), 0);
    return path;
}

static void expect_refused(const char *path, const char *mode_text, const char *problem)
{
    char why[1200], fix[200];
    assert_int_equal(kvl_tls_key_check(path, why, sizeof(why)), KVL_ECONFIG);
    assert_non_null(strstr(why, path));
    assert_non_null(strstr(why, mode_text));
    assert_non_null(strstr(why, problem));
    snprintf(fix, sizeof(fix), "chmod 600 %s", path);
    assert_non_null(strstr(why, fix));
    assert_null(strchr(why, '\n'));
}

static void test_modes(void **state)
{
    KVL_UNUSED(state);
    char why[1200];
    assert_int_equal(kvl_tls_key_check(key_file("a.key", 0600), why, sizeof(why)), 0);
    assert_int_equal(kvl_tls_key_check(key_file("b.key", 0400), why, sizeof(why)), 0);
    /* Made by this process: owned by us, its group our effective group. */
    assert_int_equal(kvl_tls_key_check(key_file("c.key", 0640), why, sizeof(why)), 0);
    expect_refused(key_file("d.key", 0644), "(mode 0644)", "any user");
    expect_refused(key_file("e.key", 0604), "(mode 0604)", "any user");
    expect_refused(key_file("f.key", 0660), "(mode 0660)", "writable by its group");
    expect_refused(key_file("g.key", 0602), "(mode 0602)", "any user");
    expect_refused(key_file("h.key", 0601), "(mode 0601)", "any user");
    /* Not a key file at all, or none. */
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/folder", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(kvl_tls_key_check(sub, why, sizeof(why)), KVL_ECONFIG);
    assert_non_null(strstr(why, "not a regular file"));
    snprintf(sub, sizeof(sub), "%s/missing.key", dir);
    assert_int_equal(kvl_tls_key_check(sub, why, sizeof(why)), KVL_EIO);
    assert_non_null(strstr(why, "missing.key"));
}

/* Ownership needs root to set up: skipped (reported as such) otherwise. */
static void test_owner_and_group(void **state)
{
    KVL_UNUSED(state);
    if (geteuid() != 0) {
        skip();
    }
    char why[1200];
    const char *p = key_file("i.key", 0640);
    assert_int_equal(chown(p, 0, 54321), 0); /* a group we are not in */
    expect_refused(p, "(mode 0640)", "a group this daemon is not in");
    assert_int_equal(chown(p, 54321, getegid()), 0); /* our group, someone else's file */
    expect_refused(p, "(mode 0640)", "owned by neither root nor this daemon's user");
    assert_int_equal(chmod(p, 0600), 0);
    assert_int_equal(chown(p, 0, 54321), 0); /* group bits off: the group does not matter */
    assert_int_equal(kvl_tls_key_check(p, why, sizeof(why)), 0);
}

/* The `tls:` key of a configuration: an error at the key's node, naming the fix. */
static void test_config(void **state)
{
    KVL_UNUSED(state);
    const char *cert = key_file("cert.pem", 0644); /* certificates may be public */
    char certpath[128];
    snprintf(certpath, sizeof(certpath), "%s", cert);
    const char *bad = key_file("bad.key", 0644);
    char text[512], err[512];
    snprintf(text, sizeof(text), "tls:\n  ca: %s\n  cert: %s\n  key: %s\n", certpath, certpath,
             bad);
    kvl_cfg_t *y = kvl_cfg_load_string("c.yaml", text, err, sizeof(err));
    assert_non_null(y);
    kvl_cfg_node_t n;
    assert_true(kvl_cfg_map_get(kvl_cfg_root(y), "tls", &n));
    kvl_tls_cfg_t t = {0};
    assert_int_not_equal(kvl_tls_cfg_parse_server(n, &t), 0);
    const char *msg = kvl_cfg_last_error(y);
    assert_non_null(strstr(msg, "c.yaml:4:8: "));
    assert_non_null(strstr(msg, "(mode 0644)"));
    assert_non_null(strstr(msg, "chmod 600"));
    kvl_tls_cfg_free(&t);
    kvl_cfg_free(y);

    const char *good = key_file("good.key", 0600);
    snprintf(text, sizeof(text), "tls:\n  ca: %s\n  cert: %s\n  key: %s\n", certpath, certpath,
             good);
    y = kvl_cfg_load_string("c.yaml", text, err, sizeof(err));
    assert_non_null(y);
    assert_true(kvl_cfg_map_get(kvl_cfg_root(y), "tls", &n));
    kvl_tls_cfg_t u = {0};
    assert_int_equal(kvl_tls_cfg_parse_server(n, &u), 0);
    kvl_tls_cfg_free(&u);
    kvl_cfg_free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_owner_and_group),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
