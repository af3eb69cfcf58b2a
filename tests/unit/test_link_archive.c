/*
 * test_link_archive.c — link measurement on its way to the archives: a SCOPE_LINK
 * definition naming the prober's "link" family survives encoding and decoding, and the
 * store files it under <site>/_links/<agent id>/<target>.rrd (names made file-safe); every
 * probe type's family (link, stamp, tcp, http) has metric names that are valid RRD data
 * source names, distinct, and no more than a family may hold; link and stamp carry the RTT
 * quantiles.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "probe_config.h"

#include "buf.h"
#include "frame.h"
#include "kvl.h"
#include "prober.h"
#include "store.h"
#include "wire.h"

static void test_path(void **state)
{
    KVL_UNUSED(state);
    char out[512];
    assert_int_equal(
        kvl_store_path("/d", "tvm", "blk-tvm-1", KVL_SCOPE_LINK, "dc-core", out, sizeof(out)), 0);
    assert_string_equal(out, "/d/tvm/_links/blk-tvm-1/dc-core.rrd");
    assert_int_equal(kvl_store_path("/d", "tvm", "a1", KVL_SCOPE_LINK, "_x/y", out, sizeof(out)),
                     0);
    assert_string_equal(out, "/d/tvm/_links/a1/%5Fx%2Fy.rrd");
    assert_int_equal(kvl_store_path("/d", "tvm", "a1", KVL_SCOPE_LINK, "t", out, 10), KVL_EINVAL);
}

static void test_wire_round_trip(void **state)
{
    KVL_UNUSED(state);
    kvl_family_t fam = kvl_link_family;
    fam.id = 3;
    const kvl_series_def_t def = {.id = 20,
                                  .device = "blk-tvm-1",
                                  .scope = KVL_SCOPE_LINK,
                                  .instance = "dc-core",
                                  .interval_s = 60,
                                  .family = 3};
    kvl_msg_t in = {.type = KVL_MSG_SERIES_DEFS}, out = {0};
    in.u.series_defs.defs = &def;
    in.u.series_defs.n = 1;
    in.u.series_defs.families = &fam;
    in.u.series_defs.n_families = 1;
    kvl_buf_t b = {0};
    assert_int_equal(kvl_wire_encode(&in, &b), 0);
    char err[256] = "";
    assert_true(b.len > 4);
    assert_int_equal(kvl_wire_decode(b.data + 4, b.len - 4, &out, err, sizeof(err)), 0);
    assert_int_equal(out.u.series_defs.n, 1);
    assert_int_equal(out.u.series_defs.defs[0].scope, KVL_SCOPE_LINK);
    assert_string_equal(out.u.series_defs.defs[0].instance, "dc-core");
    assert_int_equal(out.u.series_defs.n_families, 1);
    const kvl_family_t *f = &out.u.series_defs.families[0];
    assert_string_equal(f->name, "link");
    assert_int_equal(f->n, 17);
    assert_string_equal(f->metrics[12], "mos");
    assert_string_equal(f->metrics[16], "rtt_p90_ms");
    assert_true(f->reals[13]); /* rtt_p10_ms */
    assert_true(f->reals[2]);  /* lost_pct */
    assert_false(f->reals[0]); /* sent */
    kvl_msg_clear(&out);
    kvl_buf_free(&b);
}

static void test_families(void **state)
{
    KVL_UNUSED(state);
    const char *want[] = {"link", "stamp", "tcp", "http", "http"};
    for (int type = KVL_PROBE_ICMP; type <= KVL_PROBE_HTTPS; type++) {
        const kvl_family_t *f = kvl_probe_family(type);
        assert_string_equal(f->name, want[type]);
        assert_true(f->n > 0 && f->n <= KVL_FAMILY_MAX);
        for (size_t i = 0; i < f->n; i++) {
            const char *m = f->metrics[i];
            assert_true(strlen(m) >= 1 && strlen(m) <= 19); /* rrdcreate's DS name limit */
            assert_int_equal(strspn(m, "abcdefghijklmnopqrstuvwxyz0123456789_"), strlen(m));
            assert_int_equal(f->kinds[i], KVL_KIND_GAUGE);
            for (size_t k = 0; k < i; k++) {
                assert_true(strcmp(f->metrics[k], m) != 0);
            }
        }
    }
    assert_int_equal(kvl_stamp_family.n, 25);
    assert_string_equal(kvl_stamp_family.metrics[17], "owd_fwd_min_ms");
    /* stamp begins with the link family's figures, the RTT quantiles among them */
    for (size_t i = 0; i < kvl_link_family.n; i++) {
        assert_string_equal(kvl_stamp_family.metrics[i], kvl_link_family.metrics[i]);
        assert_int_equal(kvl_stamp_family.reals[i], kvl_link_family.reals[i]);
    }
    static const char *const quantiles[] = {"rtt_p10_ms", "rtt_p25_ms", "rtt_p75_ms", "rtt_p90_ms"};
    for (size_t q = 0; q < 4; q++) {
        bool found = false;
        for (size_t i = 0; i < kvl_link_family.n; i++) {
            found = found || strcmp(kvl_link_family.metrics[i], quantiles[q]) == 0;
        }
        assert_true(found);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_path),
        cmocka_unit_test(test_wire_round_trip),
        cmocka_unit_test(test_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
