/*
 * test_nbrwalk.c — unit tests for LLDP and CDP neighbours from hand-made varbinds
 * (agent/snmp/nbrwalk.h): the lldpRemTable index (TimeMark.LocalPortNum.RemIndex, and RouterOS's
 * RemIndex alone), the lldpRemManAddrTable index (IPv4, IPv6, malformed ones refused), CDP's
 * ifIndex.DeviceIndex and its address, chassis and port ids rendered by subtype, long texts cut
 * at a character boundary, the bound on neighbours, the device's own LLDP identity, and the
 * local port's interface (PortId, then
 * PortDesc against ifName, ifDescr, ifAlias; else the port number as ifIndex; else none).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kvl.h"
#include "nbrwalk.h"

/* A varbind of table t: column col, index idx[0..n). */
static kvl_snmp_vb_t vb_at(kvl_nbr_table_t t, uint32_t col, const uint32_t *idx, size_t n)
{
    kvl_snmp_vb_t vb;
    memset(&vb, 0, sizeof(vb));
    kvl_nbr_table_oid(&vb.oid, t);
    vb.oid.sub[vb.oid.len++] = col;
    for (size_t i = 0; i < n; i++) {
        vb.oid.sub[vb.oid.len++] = idx[i];
    }
    return vb;
}

static void put_str(kvl_nbrs_t *ns, kvl_nbr_table_t t, uint32_t col, const uint32_t *idx, size_t n,
                    const void *s, size_t len)
{
    kvl_snmp_vb_t vb = vb_at(t, col, idx, n);
    vb.type = KVL_SNMP_T_OCTETS;
    vb.str = s;
    vb.str_len = len;
    assert_int_equal(kvl_nbrs_take(ns, t, &vb), 0);
}

static void put_int(kvl_nbrs_t *ns, kvl_nbr_table_t t, uint32_t col, const uint32_t *idx, size_t n,
                    int64_t v)
{
    kvl_snmp_vb_t vb = vb_at(t, col, idx, n);
    vb.type = KVL_SNMP_T_INTEGER;
    vb.integer = v;
    assert_int_equal(kvl_nbrs_take(ns, t, &vb), 0);
}

#define STR(ns, t, col, idx, s) put_str(ns, t, col, idx, KVL_ARRAY_SIZE(idx), s, sizeof(s) - 1)
#define INT(ns, t, col, idx, v) put_int(ns, t, col, idx, KVL_ARRAY_SIZE(idx), v)

static void check_id(bool chassis, int subtype, const char *bytes, size_t n, const char *want)
{
    char *got = kvl_nbr_render_id(chassis, subtype, (const uint8_t *)bytes, n);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_render_ids(void **state)
{
    (void)state;
    check_id(true, 4, "\x00\x1b\x21\xbb\xe6\xf0", 6, "00:1b:21:bb:e6:f0"); /* MAC */
    check_id(false, 3, "\xc4\x7d\x4f\xd4\x49\x1d", 6, "c4:7d:4f:d4:49:1d");
    check_id(true, 4, "64:D1:54:F2:A4:16", 17, "64:D1:54:F2:A4:16");        /* MAC subtype, text */
    check_id(false, 4, "\x00\x1b\x21\xbb\xe6\xf0", 6, "00:1b:21:bb:e6:f0"); /* no MAC: hex */
    check_id(true, 5, "\x01\xc0\x00\x02\x07", 5, "192.0.2.7");              /* network address */
    check_id(false, 4, "\x01\xc0\x00\x02\x08", 5, "192.0.2.8");
    check_id(true, 5, "\x02\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01", 17,
             "2001:db8::1");
    check_id(true, 7, "  switch-a ", 11, "switch-a"); /* local: text, trimmed */
    check_id(false, 5, "Ethernet1", 9, "Ethernet1");
    check_id(true, 7, "ab\x01", 3, "61:62:01"); /* not printable: hex */
    check_id(true, 1, "", 0, "");
}

static void test_manaddr_index(void **state)
{
    (void)state;
    uint32_t port, rem, sub;
    char a[80];
    const uint32_t v4[] = {0, 47, 2, 1, 4, 172, 20, 21, 194};
    assert_int_equal(kvl_nbr_manaddr_index(v4, KVL_ARRAY_SIZE(v4), &port, &rem, &sub, a, sizeof(a)),
                     0);
    assert_int_equal(port, 47);
    assert_int_equal(rem, 2);
    assert_int_equal(sub, 1);
    assert_string_equal(a, "172.20.21.194");
    const uint32_t v6[] = {0, 48, 1, 2, 16, 42, 4, 65, 192, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_int_equal(kvl_nbr_manaddr_index(v6, KVL_ARRAY_SIZE(v6), &port, &rem, &sub, a, sizeof(a)),
                     0);
    assert_string_equal(a, "2a04:41c0::1");
    const uint32_t other[] = {0, 3, 9, 6, 2, 0xab, 0xcd};
    assert_int_equal(
        kvl_nbr_manaddr_index(other, KVL_ARRAY_SIZE(other), &port, &rem, &sub, a, sizeof(a)), 0);
    assert_string_equal(a, "ab:cd");
    /* malformed: length not matching, a byte above 255, too short */
    const uint32_t badlen[] = {0, 47, 2, 1, 5, 172, 20, 21, 194};
    const uint32_t badbyte[] = {0, 47, 2, 1, 4, 172, 256, 21, 194};
    const uint32_t shorter[] = {0, 47, 2, 1};
    assert_int_equal(
        kvl_nbr_manaddr_index(badlen, KVL_ARRAY_SIZE(badlen), &port, &rem, &sub, a, sizeof(a)),
        KVL_EINVAL);
    assert_int_equal(
        kvl_nbr_manaddr_index(badbyte, KVL_ARRAY_SIZE(badbyte), &port, &rem, &sub, a, sizeof(a)),
        KVL_EINVAL);
    assert_int_equal(
        kvl_nbr_manaddr_index(shorter, KVL_ARRAY_SIZE(shorter), &port, &rem, &sub, a, sizeof(a)),
        KVL_EINVAL);
}

/* Interfaces 1 "Gi0/1" (ifDescr "GigabitEthernet0/1"), 2 ifDescr "uplink-descr" only,
 * 3 ifAlias "to-core", 10 ifName "Te1/1". */
static void make_rows(kvl_ifrows_t *rows)
{
    struct {
        uint32_t ifindex;
        int col;
        const char *s;
    } v[] = {{1, X_NAME, "Gi0/1"},         {1, C_DESCR, "GigabitEthernet0/1"},
             {2, C_DESCR, "uplink-descr"}, {3, X_ALIAS, "to-core"},
             {3, X_NAME, "Gi0/3"},         {10, X_NAME, "Te1/1"}};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(v); i++) {
        kvl_snmp_vb_t vb;
        memset(&vb, 0, sizeof(vb));
        vb.type = KVL_SNMP_T_OCTETS;
        vb.str = (const uint8_t *)v[i].s;
        vb.str_len = strlen(v[i].s);
        assert_true(kvl_ifrows_store(rows, v[i].col, v[i].ifindex, &vb, 0));
    }
}

static const kvl_nbr_t *find(const kvl_nbrs_t *ns, int proto, uint32_t port, uint32_t rem)
{
    for (size_t i = 0; i < ns->n; i++) {
        if (ns->v[i].proto == proto && ns->v[i].local_port == port && ns->v[i].rem_index == rem) {
            return &ns->v[i];
        }
    }
    return NULL;
}

static void test_lldp_rows_and_ports(void **state)
{
    (void)state;
    kvl_nbrs_t ns = {0};
    kvl_ifrows_t rows = {0};
    make_rows(&rows);
    /* local ports: 5 id "Gi0/1"; 6 id a MAC, desc "GigabitEthernet0/1"... no: desc matches
     * ifDescr of 2; 7 id "to-core" (ifAlias of 3); 10 nothing matching: the number (ifIndex
     * 10); 11 nothing and no interface 11 */
    const uint32_t p5[] = {5}, p6[] = {6}, p7[] = {7}, p10[] = {10}, p11[] = {11};
    STR(&ns, KVL_NBR_T_LOCPORT, 3, p5, "Gi0/1");
    INT(&ns, KVL_NBR_T_LOCPORT, 2, p6, 3);
    STR(&ns, KVL_NBR_T_LOCPORT, 3, p6, "\x00\x11\x22\x33\x44\x55");
    STR(&ns, KVL_NBR_T_LOCPORT, 4, p6, "uplink-descr");
    STR(&ns, KVL_NBR_T_LOCPORT, 3, p7, "to-core");
    STR(&ns, KVL_NBR_T_LOCPORT, 3, p10, "xe-0/0/0");
    STR(&ns, KVL_NBR_T_LOCPORT, 4, p11, "nothing");
    assert_int_equal(ns.n_ports, 5);

    const uint32_t r5[] = {0, 5, 1}, r6[] = {100, 6, 2}, r7[] = {0, 7, 3}, r10[] = {0, 10, 4},
                   r11[] = {0, 11, 5}, ros[] = {77};
    INT(&ns, KVL_NBR_T_REM, 4, r5, 4);
    STR(&ns, KVL_NBR_T_REM, 5, r5, "\x00\x1b\x21\xbb\xe6\xf0");
    INT(&ns, KVL_NBR_T_REM, 6, r5, 5);
    STR(&ns, KVL_NBR_T_REM, 7, r5, "Ethernet47");
    STR(&ns, KVL_NBR_T_REM, 8, r5, "to dist-1");
    STR(&ns, KVL_NBR_T_REM, 9, r5, "dist-1.example.net");
    STR(&ns, KVL_NBR_T_REM, 10, r5, "Example OS\r\nversion 1");
    STR(&ns, KVL_NBR_T_REM, 9, r6, "b");
    STR(&ns, KVL_NBR_T_REM, 9, r7, "c");
    STR(&ns, KVL_NBR_T_REM, 9, r10, "d");
    STR(&ns, KVL_NBR_T_REM, 9, r11, "e");
    STR(&ns, KVL_NBR_T_REM, 9, ros, "routeros-peer");
    /* columns not read, a wrong type: ignored */
    STR(&ns, KVL_NBR_T_REM, 11, r5, "xx");
    INT(&ns, KVL_NBR_T_REM, 9, r5, 3);
    assert_int_equal(ns.n, 6);

    /* management addresses: an IPv6 one, then IPv4 (preferred), then a second IPv4 (not) */
    const uint32_t m6[] = {0, 5, 1, 2, 16, 32, 1, 13, 184, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9};
    const uint32_t m4[] = {0, 5, 1, 1, 4, 192, 0, 2, 1};
    const uint32_t m4b[] = {0, 5, 1, 1, 4, 192, 0, 2, 2};
    const uint32_t mnone[] = {0, 9, 9, 1, 4, 192, 0, 2, 3}; /* no such neighbour */
    INT(&ns, KVL_NBR_T_MANADDR, 3, m6, 2);
    const kvl_nbr_t *a = find(&ns, KVL_NBR_LLDP, 5, 1);
    assert_non_null(a);
    assert_string_equal(a->mgmt_addr, "2001:db8::9");
    INT(&ns, KVL_NBR_T_MANADDR, 3, m4, 2);
    INT(&ns, KVL_NBR_T_MANADDR, 3, m4b, 2);
    INT(&ns, KVL_NBR_T_MANADDR, 3, mnone, 2);
    assert_int_equal(ns.n, 6);
    a = find(&ns, KVL_NBR_LLDP, 5, 1);
    assert_string_equal(a->mgmt_addr, "192.0.2.1");
    assert_string_equal(a->chassis_id, "00:1b:21:bb:e6:f0");
    assert_int_equal(a->chassis_subtype, 4);
    assert_string_equal(a->port_id, "Ethernet47");
    assert_int_equal(a->port_subtype, 5);
    assert_string_equal(a->port_desc, "to dist-1");
    assert_string_equal(a->sys_name, "dist-1.example.net");
    assert_string_equal(a->sys_desc, "Example OS  version 1");

    uint32_t ifx = 0;
    assert_true(kvl_nbr_local_ifindex(&ns, a, &rows, &ifx));
    assert_int_equal(ifx, 1); /* PortId = ifName */
    assert_true(kvl_nbr_local_ifindex(&ns, find(&ns, KVL_NBR_LLDP, 6, 2), &rows, &ifx));
    assert_int_equal(ifx, 2); /* PortDesc = ifDescr (the MAC id matches nothing) */
    assert_true(kvl_nbr_local_ifindex(&ns, find(&ns, KVL_NBR_LLDP, 7, 3), &rows, &ifx));
    assert_int_equal(ifx, 3); /* PortId = ifAlias */
    assert_true(kvl_nbr_local_ifindex(&ns, find(&ns, KVL_NBR_LLDP, 10, 4), &rows, &ifx));
    assert_int_equal(ifx, 10); /* no match: the port number as ifIndex */
    assert_false(kvl_nbr_local_ifindex(&ns, find(&ns, KVL_NBR_LLDP, 11, 5), &rows, &ifx));
    const kvl_nbr_t *r = find(&ns, KVL_NBR_LLDP, 0, 77); /* RouterOS: RemIndex alone */
    assert_non_null(r);
    assert_string_equal(r->sys_name, "routeros-peer");
    assert_false(kvl_nbr_local_ifindex(&ns, r, &rows, &ifx));

    kvl_nbrs_free(&ns);
    kvl_ifrows_free(&rows);
}

static void test_no_loc_port_table(void **state)
{
    (void)state;
    kvl_nbrs_t ns = {0};
    kvl_ifrows_t rows = {0};
    make_rows(&rows);
    const uint32_t r3[] = {0, 3, 1};
    STR(&ns, KVL_NBR_T_REM, 9, r3, "peer");
    uint32_t ifx = 0;
    assert_true(kvl_nbr_local_ifindex(&ns, &ns.v[0], &rows, &ifx));
    assert_int_equal(ifx, 3);
    kvl_nbrs_free(&ns);
    kvl_ifrows_free(&rows);
}

static void test_cdp(void **state)
{
    (void)state;
    kvl_nbrs_t ns = {0};
    kvl_ifrows_t rows = {0};
    make_rows(&rows);
    const uint32_t c1[] = {10, 1}, c2[] = {3, 7}, bad[] = {3};
    INT(&ns, KVL_NBR_T_CDP, 3, c1, 1);
    STR(&ns, KVL_NBR_T_CDP, 4, c1, "\xc0\x00\x02\x0a");
    STR(&ns, KVL_NBR_T_CDP, 6, c1, "core-1.example.net");
    STR(&ns, KVL_NBR_T_CDP, 7, c1, "TenGigabitEthernet1/1");
    STR(&ns, KVL_NBR_T_CDP, 8, c1, "cisco WS-C4900M");
    INT(&ns, KVL_NBR_T_CDP, 3, c2, 20); /* not ip: no address */
    STR(&ns, KVL_NBR_T_CDP, 4, c2, "\x01\x02\x03\x04");
    STR(&ns, KVL_NBR_T_CDP, 6, c2, "phone-7");
    STR(&ns, KVL_NBR_T_CDP, 6, bad, "ignored"); /* index not ifIndex.DeviceIndex */
    assert_int_equal(ns.n, 2);
    const kvl_nbr_t *a = find(&ns, KVL_NBR_CDP, 10, 1);
    assert_non_null(a);
    assert_string_equal(a->mgmt_addr, "192.0.2.10");
    assert_string_equal(a->chassis_id, "core-1.example.net");
    assert_string_equal(a->sys_name, "core-1.example.net");
    assert_string_equal(a->port_id, "TenGigabitEthernet1/1");
    assert_string_equal(a->sys_desc, "cisco WS-C4900M");
    uint32_t ifx = 0;
    assert_true(kvl_nbr_local_ifindex(&ns, a, &rows, &ifx));
    assert_int_equal(ifx, 10);
    const kvl_nbr_t *b = find(&ns, KVL_NBR_CDP, 3, 7);
    assert_null(b->mgmt_addr);
    kvl_nbrs_free(&ns);
    kvl_ifrows_free(&rows);
}

static void test_bounds(void **state)
{
    (void)state;
    kvl_nbrs_t ns = {0};
    for (uint32_t i = 1; i <= KVL_NBR_MAX + 10; i++) {
        const uint32_t idx[] = {0, 1, i};
        STR(&ns, KVL_NBR_T_REM, 9, idx, "x");
    }
    assert_int_equal(ns.n, KVL_NBR_MAX);
    assert_int_equal(ns.dropped, 10);
    /* a long text cut at KVL_NBR_TEXT_MAX bytes, before a multi-byte character */
    char long_name[400];
    memset(long_name, 'a', sizeof(long_name));
    memcpy(long_name + KVL_NBR_TEXT_MAX - 1, "\xc3\xa9", 2); /* é across the bound */
    kvl_nbrs_clear(&ns);
    const uint32_t idx[] = {0, 1, 1};
    put_str(&ns, KVL_NBR_T_REM, 9, idx, 3, long_name, sizeof(long_name));
    assert_int_equal(strlen(ns.v[0].sys_name), KVL_NBR_TEXT_MAX - 1);
    put_str(&ns, KVL_NBR_T_REM, 10, idx, 3, long_name, sizeof(long_name));
    assert_int_equal(strlen(ns.v[0].sys_desc), KVL_NBR_DESC_MAX);
    kvl_nbrs_free(&ns);
}

static void test_local_identity(void **state)
{
    (void)state;
    kvl_nbrs_t ns = {0};
    kvl_nbrs_clear(&ns);
    kvl_snmp_oid_t o[KVL_NBR_LOCAL_N];
    kvl_nbr_local_oids(o);
    kvl_snmp_vb_t vb;
    memset(&vb, 0, sizeof(vb));
    vb.oid = o[0];
    vb.type = KVL_SNMP_T_INTEGER;
    vb.integer = 4;
    assert_int_equal(kvl_nbrs_take_local(&ns, &vb), 0);
    vb.oid = o[1];
    vb.type = KVL_SNMP_T_OCTETS;
    vb.str = (const uint8_t *)"\x02\x00\x00\xa1\x1c\xe5";
    vb.str_len = 6;
    assert_int_equal(kvl_nbrs_take_local(&ns, &vb), 0);
    vb.oid = o[2];
    vb.str = (const uint8_t *)"access-1 ";
    vb.str_len = 9;
    assert_int_equal(kvl_nbrs_take_local(&ns, &vb), 0);
    vb.oid.sub[vb.oid.len - 2] = 4; /* lldpLocSysDesc: not read */
    assert_int_equal(kvl_nbrs_take_local(&ns, &vb), 0);
    assert_int_equal(ns.loc_chassis_subtype, 4);
    assert_string_equal(ns.loc_chassis_id, "02:00:00:a1:1c:e5");
    assert_string_equal(ns.loc_sys_name, "access-1");
    kvl_nbrs_free(&ns);
    assert_null(ns.loc_chassis_id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_ids),
        cmocka_unit_test(test_manaddr_index),
        cmocka_unit_test(test_lldp_rows_and_ports),
        cmocka_unit_test(test_no_loc_port_table),
        cmocka_unit_test(test_cdp),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_local_identity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
