/*
 * fuzz_nbrwalk.c — libFuzzer target for the LLDP/CDP neighbour rows (agent/snmp/nbrwalk.h),
 * which read whatever a device answers in lldpLocPortTable, lldpRemTable, lldpRemManAddrTable
 * and cdpCacheTable: indexes of any length (the management address inside the index), values
 * of any type and length.
 *
 * The input is a list of varbinds: table (1 byte), column (1 byte), index length (1 byte, at
 * most 40) and its sub-identifiers (1 or 2 bytes each: a byte above 0xf0 takes the next as
 * well), a value type (1 byte) and a value (length byte, then bytes). A few interfaces with
 * names from the input come first. Beyond "no crash, no sanitizer report", it checks what
 * the header promises:
 *  - at most KVL_NBR_MAX neighbours and KVL_NBR_PORTS_MAX ports, rows strictly in (protocol,
 *    local port, remote index) order, ports in number order;
 *  - every string at most KVL_NBR_TEXT_MAX bytes (KVL_NBR_DESC_MAX for sys_desc), valid
 *    UTF-8 without control characters, the management address an IP address;
 *  - kvl_nbr_manaddr_index: 0 or KVL_EINVAL, a NUL-terminated address on 0;
 *  - the local interface, when found, is one of the rows'.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "kvl.h"
#include "nbrwalk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct in {
    const uint8_t *p;
    size_t n;
} in_t;

static int take(in_t *in)
{
    if (in->n == 0) {
        return -1;
    }
    in->n--;
    return *in->p++;
}

static void check_text(const char *s, size_t max)
{
    if (s == NULL) {
        return;
    }
    size_t n = strlen(s);
    CHECK(n <= max);
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        CHECK(c >= 0x20 && c != 0x7f);
        size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
        CHECK(c < 0x80 || c >= 0xc2);
        CHECK(i + len <= n);
        for (size_t k = 1; k < len; k++) {
            CHECK(((uint8_t)s[i + k] & 0xc0) == 0x80);
        }
        i += len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    in_t in = {data, size};
    kvl_ifrows_t rows = {0};
    kvl_nbrs_t ns = {0};
    /* interfaces: count, then per interface ifIndex, column choice, name */
    int n_if = take(&in);
    for (int i = 0; n_if > 0 && i < (n_if & 7); i++) {
        int idx = take(&in), col = take(&in), len = take(&in);
        if (idx < 0 || col < 0 || len < 0 || (size_t)(len & 31) > in.n) {
            break;
        }
        static const int cols[3] = {X_NAME, C_DESCR, X_ALIAS};
        kvl_snmp_vb_t vb = {.type = KVL_SNMP_T_OCTETS, .str = in.p, .str_len = (size_t)(len & 31)};
        CHECK(kvl_ifrows_store(&rows, cols[col % 3], (uint32_t)idx, &vb, 0));
        in.p += len & 31;
        in.n -= (size_t)(len & 31);
    }
    while (in.n > 0) {
        int t = take(&in), col = take(&in), n_idx = take(&in);
        if (t < 0 || col < 0 || n_idx < 0) {
            break;
        }
        kvl_snmp_vb_t vb;
        memset(&vb, 0, sizeof(vb));
        kvl_nbr_table_t table = (kvl_nbr_table_t)(t % KVL_NBR_TABLES);
        kvl_nbr_table_oid(&vb.oid, table);
        vb.oid.sub[vb.oid.len++] = (uint32_t)col;
        uint32_t idx[40];
        size_t ni = 0;
        for (int k = 0; k < n_idx % 41 && in.n > 0; k++) {
            int b = take(&in);
            uint32_t v = (uint32_t)b;
            if (b > 0xf0) {
                int b2 = take(&in);
                v = (uint32_t)((b - 0xf0) << 8 | (b2 < 0 ? 0 : b2)) * 257u;
            }
            idx[ni++] = v;
            vb.oid.sub[vb.oid.len++] = v;
        }
        uint32_t port, rem, sub;
        char addr[64 + 128];
        memset(addr, 'x', sizeof(addr));
        int rc = kvl_nbr_manaddr_index(idx, ni, &port, &rem, &sub, addr, sizeof(addr));
        CHECK(rc == 0 || rc == KVL_EINVAL);
        if (rc == 0) {
            CHECK(memchr(addr, '\0', sizeof(addr)) != NULL);
        }
        int type = take(&in), len = take(&in);
        if (type < 0 || len < 0) {
            break;
        }
        size_t vlen = (size_t)len > in.n ? in.n : (size_t)len;
        if (type & 1) {
            vb.type = KVL_SNMP_T_OCTETS;
            vb.str = in.p;
            vb.str_len = vlen;
            in.p += vlen;
            in.n -= vlen;
        } else {
            vb.type = (type & 2) ? KVL_SNMP_T_GAUGE32 : KVL_SNMP_T_INTEGER;
            vb.integer = (int64_t)(int8_t)len;
            vb.u = (uint64_t)len;
        }
        CHECK(kvl_nbrs_take(&ns, table, &vb) == 0);
        if ((t & 0x80) != 0) { /* the same value as the device's own LLDP identity */
            kvl_snmp_oid_t local[KVL_NBR_LOCAL_N];
            kvl_nbr_local_oids(local);
            vb.oid = local[(size_t)col % KVL_NBR_LOCAL_N];
            CHECK(kvl_nbrs_take_local(&ns, &vb) == 0);
        }
    }
    CHECK(ns.n <= KVL_NBR_MAX && ns.n_ports <= KVL_NBR_PORTS_MAX);
    for (size_t i = 0; i < ns.n; i++) {
        const kvl_nbr_t *a = &ns.v[i];
        if (i > 0) {
            const kvl_nbr_t *b = &ns.v[i - 1];
            CHECK(b->proto < a->proto ||
                  (b->proto == a->proto &&
                   (b->local_port < a->local_port ||
                    (b->local_port == a->local_port && b->rem_index < a->rem_index))));
        }
        check_text(a->chassis_id, KVL_NBR_TEXT_MAX);
        check_text(a->port_id, KVL_NBR_TEXT_MAX);
        check_text(a->port_desc, KVL_NBR_TEXT_MAX);
        check_text(a->sys_name, KVL_NBR_TEXT_MAX);
        check_text(a->sys_desc, KVL_NBR_DESC_MAX);
        if (a->mgmt_addr != NULL) {
            CHECK(strspn(a->mgmt_addr, "0123456789abcdef.:") == strlen(a->mgmt_addr));
        }
        uint32_t ifx;
        if (kvl_nbr_local_ifindex(&ns, a, &rows, &ifx)) {
            bool found = false;
            for (size_t r = 0; r < rows.n; r++) {
                found |= rows.v[r].ifindex == ifx;
            }
            CHECK(found);
        }
    }
    for (size_t i = 1; i < ns.n_ports; i++) {
        CHECK(ns.ports[i - 1].num < ns.ports[i].num);
    }
    check_text(ns.loc_chassis_id, KVL_NBR_TEXT_MAX);
    check_text(ns.loc_sys_name, KVL_NBR_TEXT_MAX);
    for (size_t i = 0; i < ns.n_ports; i++) {
        check_text(ns.ports[i].id, KVL_NBR_TEXT_MAX);
        check_text(ns.ports[i].desc, KVL_NBR_TEXT_MAX);
    }
    kvl_nbrs_free(&ns);
    kvl_ifrows_free(&rows);
    return 0;
}
