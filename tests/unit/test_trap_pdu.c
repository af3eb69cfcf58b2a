/*
 * test_trap_pdu.c — unit tests for the trap port's codec (agent/trap/trap_pdu.h).
 *
 * The good packets were captured once from net-snmp 5.9.3's own snmptrap and snmpinform,
 * sent to a python3 UDP socket on 127.0.0.1 that printed what it received in hex; the
 * command that produced each array is in the comment above it. Malformed packets are
 * built by hand from those: every prefix, every single-byte change, forged lengths, deep
 * nesting, too many varbinds, missing sysUpTime.0/snmpTrapOID.0; each must be an error
 * with a reason, never a crash (every packet is decoded from an exact-size heap copy, so
 * ASan sees any read beyond it). The inform's response is checked byte by byte (it is the
 * inform with the Response tag), and against a real snmpinform, which must accept it.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "kvl.h"
#include "trap_pdu.h"

/* Captured packets (commands: net-snmp 5.9.3, sent to 127.0.0.1 on a free port). */

/* snmptrap -v 2c -c public 127.0.0.1:<port> 12345 1.3.6.1.6.3.1.1.5.3 1.3.6.1.2.1.2.2.1.1.2 i
 * 2 1.3.6.1.2.1.2.2.1.7.2 i 1 1.3.6.1.2.1.2.2.1.8.2 i 2 */
static const uint8_t PKT_V2C_LINKDOWN[] = {
    0x30, 0x77, 0x02, 0x01, 0x01, 0x04, 0x06, 0x70, 0x75, 0x62, 0x6c, 0x69, 0x63, 0xa7, 0x6a, 0x02,
    0x04, 0x15, 0xc0, 0x84, 0x26, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x5c, 0x30, 0x0e, 0x06,
    0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x03, 0x00, 0x43, 0x02, 0x30, 0x39, 0x30, 0x17, 0x06,
    0x0a, 0x2b, 0x06, 0x01, 0x06, 0x03, 0x01, 0x01, 0x04, 0x01, 0x00, 0x06, 0x09, 0x2b, 0x06, 0x01,
    0x06, 0x03, 0x01, 0x01, 0x05, 0x03, 0x30, 0x0f, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x02,
    0x02, 0x01, 0x01, 0x02, 0x02, 0x01, 0x02, 0x30, 0x0f, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x02, 0x01,
    0x02, 0x02, 0x01, 0x07, 0x02, 0x02, 0x01, 0x01, 0x30, 0x0f, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x02,
    0x01, 0x02, 0x02, 0x01, 0x08, 0x02, 0x02, 0x01, 0x02,
};

/* snmptrap -v 1 -c public 127.0.0.1:<port> 1.3.6.1.4.1.8072.3.2.10 192.0.2.7 2 0
 * 12345 1.3.6.1.2.1.2.2.1.1.2 i 2 1.3.6.1.2.1.2.2.1.7.2 i 1 1.3.6.1.2.1.2.2.1.8.2 i 2 */
static const uint8_t PKT_V1_LINKDOWN[] = {
    0x30, 0x5e, 0x02, 0x01, 0x00, 0x04, 0x06, 0x70, 0x75, 0x62, 0x6c, 0x69, 0x63, 0xa4, 0x51, 0x06,
    0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xbf, 0x08, 0x03, 0x02, 0x0a, 0x40, 0x04, 0xc0, 0x00, 0x02,
    0x07, 0x02, 0x01, 0x02, 0x02, 0x01, 0x00, 0x43, 0x02, 0x30, 0x39, 0x30, 0x33, 0x30, 0x0f, 0x06,
    0x0a, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01, 0x02, 0x02, 0x01, 0x02, 0x30, 0x0f,
    0x06, 0x0a, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x02, 0x02, 0x01, 0x07, 0x02, 0x02, 0x01, 0x01, 0x30,
    0x0f, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x02, 0x02, 0x01, 0x08, 0x02, 0x02, 0x01, 0x02,
};

/* snmptrap -v 2c -c public 127.0.0.1:<port> 777 1.3.6.1.6.3.1.1.5.1 */
static const uint8_t PKT_V2C_COLDSTART[] = {
    0x30, 0x44, 0x02, 0x01, 0x01, 0x04, 0x06, 0x70, 0x75, 0x62, 0x6c, 0x69, 0x63, 0xa7,
    0x37, 0x02, 0x04, 0x78, 0x72, 0xcb, 0xf1, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30,
    0x29, 0x30, 0x0e, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x03, 0x00, 0x43,
    0x02, 0x03, 0x09, 0x30, 0x17, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x06, 0x03, 0x01, 0x01,
    0x04, 0x01, 0x00, 0x06, 0x09, 0x2b, 0x06, 0x01, 0x06, 0x03, 0x01, 0x01, 0x05, 0x01,
};

/* snmptrap -v 1 -c s3cret 127.0.0.1:<port> 1.3.6.1.4.1.99999.1 192.0.2.9 6 17
 * 4242 1.3.6.1.4.1.99999.1.2.0 s 'fan failed' 1.3.6.1.4.1.99999.1.3.0 u 3 1.3.6.1.4.1.99999.1.4.0
 * o 1.3.6.1.4.1.99999.5 1.3.6.1.4.1.99999.1.5.0 a 10.1.2.3 1.3.6.1.4.1.99999.1.6.0 x 00A0C9FF0102
 */
static const uint8_t PKT_V1_ENTERPRISE[] = {
    0x30, 0x81, 0x9e, 0x02, 0x01, 0x00, 0x04, 0x06, 0x73, 0x33, 0x63, 0x72, 0x65, 0x74, 0xa4,
    0x81, 0x90, 0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x01, 0x40, 0x04,
    0xc0, 0x00, 0x02, 0x09, 0x02, 0x01, 0x06, 0x02, 0x01, 0x11, 0x43, 0x02, 0x10, 0x92, 0x30,
    0x73, 0x30, 0x19, 0x06, 0x0b, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x01, 0x02,
    0x00, 0x04, 0x0a, 0x66, 0x61, 0x6e, 0x20, 0x66, 0x61, 0x69, 0x6c, 0x65, 0x64, 0x30, 0x10,
    0x06, 0x0b, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x01, 0x03, 0x00, 0x42, 0x01,
    0x03, 0x30, 0x18, 0x06, 0x0b, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x01, 0x04,
    0x00, 0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x05, 0x30, 0x13, 0x06,
    0x0b, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x01, 0x05, 0x00, 0x40, 0x04, 0x0a,
    0x01, 0x02, 0x03, 0x30, 0x15, 0x06, 0x0b, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f,
    0x01, 0x06, 0x00, 0x04, 0x06, 0x00, 0xa0, 0xc9, 0xff, 0x01, 0x02,
};

/* snmpinform -r 0 -t 1 -v 2c -c public 127.0.0.1:<port>
 * 31337 1.3.6.1.6.3.1.1.5.4 1.3.6.1.2.1.2.2.1.1.3 i 3 1.3.6.1.2.1.2.2.1.7.3 i
 * 1 1.3.6.1.2.1.2.2.1.8.3 i 1 1.3.6.1.2.1.31.1.1.1.1.3 s eth2 1.3.6.1.4.1.99999.2.0 C 1234567890123
 */
static const uint8_t PKT_V2C_INFORM[] = {
    0x30, 0x81, 0xa4, 0x02, 0x01, 0x01, 0x04, 0x06, 0x70, 0x75, 0x62, 0x6c, 0x69, 0x63, 0xa6, 0x81,
    0x96, 0x02, 0x04, 0x61, 0xb2, 0xc8, 0xba, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00, 0x30, 0x81, 0x87,
    0x30, 0x0e, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x02, 0x01, 0x01, 0x03, 0x00, 0x43, 0x02, 0x7a, 0x69,
    0x30, 0x17, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x06, 0x03, 0x01, 0x01, 0x04, 0x01, 0x00, 0x06, 0x09,
    0x2b, 0x06, 0x01, 0x06, 0x03, 0x01, 0x01, 0x05, 0x04, 0x30, 0x0f, 0x06, 0x0a, 0x2b, 0x06, 0x01,
    0x02, 0x01, 0x02, 0x02, 0x01, 0x01, 0x03, 0x02, 0x01, 0x03, 0x30, 0x0f, 0x06, 0x0a, 0x2b, 0x06,
    0x01, 0x02, 0x01, 0x02, 0x02, 0x01, 0x07, 0x03, 0x02, 0x01, 0x01, 0x30, 0x0f, 0x06, 0x0a, 0x2b,
    0x06, 0x01, 0x02, 0x01, 0x02, 0x02, 0x01, 0x08, 0x03, 0x02, 0x01, 0x01, 0x30, 0x13, 0x06, 0x0b,
    0x2b, 0x06, 0x01, 0x02, 0x01, 0x1f, 0x01, 0x01, 0x01, 0x01, 0x03, 0x04, 0x04, 0x65, 0x74, 0x68,
    0x32, 0x30, 0x14, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x04, 0x01, 0x86, 0x8d, 0x1f, 0x02, 0x00, 0x46,
    0x06, 0x01, 0x1f, 0x71, 0xfb, 0x04, 0xcb,
};

/* snmptrap -v 3 -u trapuser -l authPriv -a SHA -A authpass123 -x AES -X privpass123 -e
 * 0x8000000001020304 127.0.0.1:<port> 0 1.3.6.1.6.3.1.1.5.1 */
static const uint8_t PKT_V3_TRAP[] = {
    0x30, 0x81, 0x9f, 0x02, 0x01, 0x03, 0x30, 0x11, 0x02, 0x04, 0x5f, 0x01, 0x5f, 0x5e, 0x02,
    0x03, 0x00, 0xff, 0xe3, 0x04, 0x01, 0x03, 0x02, 0x01, 0x03, 0x04, 0x36, 0x30, 0x34, 0x04,
    0x08, 0x80, 0x00, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x02, 0x01, 0x01, 0x02, 0x03, 0x18,
    0x31, 0x0a, 0x04, 0x08, 0x74, 0x72, 0x61, 0x70, 0x75, 0x73, 0x65, 0x72, 0x04, 0x0c, 0xac,
    0x11, 0xc9, 0x1a, 0xb9, 0x76, 0x2d, 0x42, 0x7b, 0x9f, 0x17, 0x1a, 0x04, 0x08, 0x59, 0x7f,
    0x55, 0x12, 0x72, 0xd6, 0x0c, 0xb9, 0x04, 0x4f, 0x40, 0xee, 0xa1, 0x0b, 0xac, 0xc1, 0xd9,
    0xaa, 0xa1, 0x86, 0x4d, 0x68, 0x24, 0x25, 0x65, 0x72, 0x14, 0x33, 0xed, 0xff, 0x8c, 0x69,
    0x0b, 0x9a, 0x81, 0x9b, 0xf7, 0xbd, 0xb9, 0xa0, 0xe3, 0x18, 0x80, 0x5f, 0x1f, 0xeb, 0xc2,
    0x24, 0x4c, 0x84, 0xee, 0x82, 0xb2, 0xb8, 0xf4, 0x41, 0x4a, 0x3f, 0x3a, 0x4c, 0x44, 0xa2,
    0x0f, 0x1e, 0x95, 0xb0, 0xde, 0x24, 0x8b, 0x0d, 0x83, 0x3a, 0x6d, 0xc7, 0xdb, 0x3f, 0xaf,
    0x80, 0x0a, 0xe3, 0xf9, 0xe3, 0x49, 0xcf, 0x9e, 0x68, 0xea, 0xa2, 0x22,
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static char why[256];

/* Decodes n bytes of p from an exact-size heap copy (ASan sees reads beyond it). */
static int decode(const uint8_t *p, size_t n, kvl_trap_t *t)
{
    uint8_t *copy = malloc(n > 0 ? n : 1);
    assert_non_null(copy);
    if (n > 0) {
        memcpy(copy, p, n);
    }
    int rc = kvl_trap_decode(copy, n, t, why, sizeof(why));
    free(copy);
    return rc;
}

static void assert_oid(const kvl_snmp_oid_t *o, const char *want)
{
    char buf[1024];
    kvl_snmp_oid_format(o, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

static void assert_text(const kvl_trap_vb_t *vb, const char *want)
{
    char *s = kvl_trap_vb_text(vb);
    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
}

static void test_v2c_link_down(void **state)
{
    (void)state;
    kvl_trap_t t;
    assert_int_equal(decode(PKT_V2C_LINKDOWN, N(PKT_V2C_LINKDOWN), &t), 0);
    assert_int_equal(t.version, KVL_TRAP_V2C);
    assert_int_equal(t.pdu, KVL_TRAP_PDU_V2_TRAP);
    assert_int_equal(t.community_len, 6);
    assert_string_equal(t.community, "public");
    assert_int_equal(t.request_id, 0x15c08426);
    assert_int_equal(t.uptime, 12345);
    assert_oid(&t.trap_oid, ".1.3.6.1.6.3.1.1.5.3");
    assert_int_equal(kvl_trap_kind(&t), KVL_TRAP_LINK_DOWN);
    assert_string_equal(kvl_trap_kind_name(kvl_trap_kind(&t)), "linkDown");
    assert_int_equal(t.n_vbs, 3);
    assert_oid(&t.vbs[0].oid, ".1.3.6.1.2.1.2.2.1.1.2");
    assert_int_equal(t.vbs[0].type, KVL_SNMP_T_INTEGER);
    assert_int_equal(t.vbs[0].integer, 2);
    assert_oid(&t.vbs[1].oid, ".1.3.6.1.2.1.2.2.1.7.2");
    assert_int_equal(t.vbs[1].integer, 1);
    assert_oid(&t.vbs[2].oid, ".1.3.6.1.2.1.2.2.1.8.2");
    assert_int_equal(t.vbs[2].integer, 2);
    uint32_t ifx = 0;
    assert_int_equal(kvl_trap_if_index(&t, &ifx), 0);
    assert_int_equal(ifx, 2);
    /* the raw list holds all five varbinds: it is the packet's tail */
    assert_int_equal(t.raw_vbl_len, 0x5c);
    assert_memory_equal(t.raw_vbl, PKT_V2C_LINKDOWN + N(PKT_V2C_LINKDOWN) - 0x5c, 0x5c);
    /* not an inform: no response */
    uint8_t buf[512];
    size_t len = 0;
    assert_int_equal(kvl_trap_inform_response(&t, buf, sizeof(buf), &len), KVL_EINVAL);
    kvl_trap_clear(&t);
    kvl_trap_clear(&t); /* harmless twice */
}

static void test_v1_link_down(void **state)
{
    (void)state;
    kvl_trap_t t;
    assert_int_equal(decode(PKT_V1_LINKDOWN, N(PKT_V1_LINKDOWN), &t), 0);
    assert_int_equal(t.version, KVL_TRAP_V1);
    assert_int_equal(t.pdu, KVL_TRAP_PDU_V1_TRAP);
    assert_string_equal(t.community, "public");
    assert_oid(&t.enterprise, ".1.3.6.1.4.1.8072.3.2.10");
    const uint8_t addr[4] = {192, 0, 2, 7};
    assert_memory_equal(t.agent_addr, addr, 4);
    assert_int_equal(t.generic_trap, 2);
    assert_int_equal(t.specific_trap, 0);
    assert_int_equal(t.uptime, 12345);
    /* RFC 3584 3.1: generic-trap 2 is linkDown */
    assert_oid(&t.trap_oid, ".1.3.6.1.6.3.1.1.5.3");
    assert_int_equal(kvl_trap_kind(&t), KVL_TRAP_LINK_DOWN);
    assert_int_equal(t.n_vbs, 3);
    uint32_t ifx = 0;
    assert_int_equal(kvl_trap_if_index(&t, &ifx), 0);
    assert_int_equal(ifx, 2);
    kvl_trap_clear(&t);
}

static void test_v2c_cold_start(void **state)
{
    (void)state;
    kvl_trap_t t;
    assert_int_equal(decode(PKT_V2C_COLDSTART, N(PKT_V2C_COLDSTART), &t), 0);
    assert_int_equal(t.uptime, 777);
    assert_int_equal(kvl_trap_kind(&t), KVL_TRAP_COLD_START);
    assert_string_equal(kvl_trap_kind_name(KVL_TRAP_COLD_START), "coldStart");
    assert_int_equal(t.n_vbs, 0);
    uint32_t ifx = 0;
    assert_int_equal(kvl_trap_if_index(&t, &ifx), KVL_EINVAL);
    kvl_trap_clear(&t);
}

static void test_v1_enterprise(void **state)
{
    (void)state;
    kvl_trap_t t;
    assert_int_equal(decode(PKT_V1_ENTERPRISE, N(PKT_V1_ENTERPRISE), &t), 0);
    assert_string_equal(t.community, "s3cret");
    assert_int_equal(t.generic_trap, 6);
    assert_int_equal(t.specific_trap, 17);
    assert_int_equal(t.uptime, 4242);
    /* RFC 3584 3.1: enterprise.0.specific */
    assert_oid(&t.trap_oid, ".1.3.6.1.4.1.99999.1.0.17");
    assert_int_equal(kvl_trap_kind(&t), KVL_TRAP_OTHER);
    assert_string_equal(kvl_trap_kind_name(KVL_TRAP_OTHER), "other");
    uint32_t ifx = 0;
    assert_int_equal(kvl_trap_if_index(&t, &ifx), KVL_EINVAL);
    assert_int_equal(t.n_vbs, 5);
    assert_int_equal(t.vbs[0].type, KVL_SNMP_T_OCTETS);
    assert_text(&t.vbs[0], "fan failed");
    assert_int_equal(t.vbs[1].type, KVL_SNMP_T_GAUGE32);
    assert_text(&t.vbs[1], "3");
    assert_int_equal(t.vbs[2].type, KVL_SNMP_T_OID);
    assert_text(&t.vbs[2], ".1.3.6.1.4.1.99999.5");
    assert_int_equal(t.vbs[3].type, KVL_SNMP_T_IPADDRESS);
    assert_text(&t.vbs[3], "10.1.2.3");
    assert_int_equal(t.vbs[4].type, KVL_SNMP_T_OCTETS);
    assert_text(&t.vbs[4], "0x00a0c9ff0102");
    kvl_trap_clear(&t);
}

static void test_inform_and_response(void **state)
{
    (void)state;
    kvl_trap_t t;
    assert_int_equal(decode(PKT_V2C_INFORM, N(PKT_V2C_INFORM), &t), 0);
    assert_int_equal(t.pdu, KVL_TRAP_PDU_INFORM);
    assert_int_equal(t.request_id, 0x61b2c8ba);
    assert_int_equal(kvl_trap_kind(&t), KVL_TRAP_LINK_UP);
    assert_int_equal(t.uptime, 31337);
    assert_int_equal(t.n_vbs, 5);
    uint32_t ifx = 0;
    assert_int_equal(kvl_trap_if_index(&t, &ifx), 0);
    assert_int_equal(ifx, 3);
    assert_text(&t.vbs[3], "eth2");
    assert_int_equal(t.vbs[4].type, KVL_SNMP_T_COUNTER64);
    assert_text(&t.vbs[4], "1234567890123");

    /* The response is the inform with the Response-PDU tag: same version, community,
     * request-id, error fields 0 (as sent), the varbinds as received. */
    uint8_t buf[512];
    size_t len = 0;
    assert_int_equal(kvl_trap_inform_response(&t, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, N(PKT_V2C_INFORM));
    uint8_t want[N(PKT_V2C_INFORM)];
    memcpy(want, PKT_V2C_INFORM, sizeof(want));
    assert_int_equal(want[14], 0xa6);
    want[14] = 0xa2;
    assert_memory_equal(buf, want, len);
    /* every smaller buffer is refused, nothing written beyond cap */
    for (size_t cap = 0; cap < len; cap++) {
        size_t l2 = 12345;
        uint8_t *small = malloc(cap > 0 ? cap : 1);
        assert_non_null(small);
        assert_int_equal(kvl_trap_inform_response(&t, small, cap, &l2), KVL_EINVAL);
        assert_int_equal(l2, 12345);
        free(small);
    }
    kvl_trap_clear(&t);
}

static void test_v3_recognised(void **state)
{
    (void)state;
    kvl_trap_t t;
    assert_int_equal(decode(PKT_V3_TRAP, N(PKT_V3_TRAP), &t), KVL_TRAP_V3);
    assert_int_equal(t.version, KVL_TRAP_V3);
    assert_int_equal(t.n_vbs, 0);
    assert_null(t.mem);
    uint8_t buf[512];
    size_t len;
    assert_int_equal(kvl_trap_inform_response(&t, buf, sizeof(buf), &len), KVL_EINVAL);
    kvl_trap_clear(&t);
}

static const struct {
    const uint8_t *p;
    size_t n;
} GOOD[] = {
    {PKT_V2C_LINKDOWN, N(PKT_V2C_LINKDOWN)},   {PKT_V1_LINKDOWN, N(PKT_V1_LINKDOWN)},
    {PKT_V2C_COLDSTART, N(PKT_V2C_COLDSTART)}, {PKT_V1_ENTERPRISE, N(PKT_V1_ENTERPRISE)},
    {PKT_V2C_INFORM, N(PKT_V2C_INFORM)},
};

static void test_truncated_everywhere(void **state)
{
    (void)state;
    for (size_t g = 0; g < N(GOOD); g++) {
        for (size_t i = 0; i < GOOD[g].n; i++) {
            kvl_trap_t t;
            assert_int_equal(decode(GOOD[g].p, i, &t), KVL_EDECODE);
            assert_true(strncmp(why, "at byte ", 8) == 0);
            assert_null(t.mem);
            kvl_trap_clear(&t);
        }
        /* one byte more is trailing garbage */
        uint8_t longer[512];
        memcpy(longer, GOOD[g].p, GOOD[g].n);
        longer[GOOD[g].n] = 0;
        kvl_trap_t t;
        assert_int_equal(decode(longer, GOOD[g].n + 1, &t), KVL_EDECODE);
        assert_non_null(strstr(why, "trailing"));
    }
    kvl_trap_t t;
    assert_int_equal(kvl_trap_decode(NULL, 0, &t, why, sizeof(why)), KVL_EDECODE);
    assert_int_equal(kvl_trap_decode(NULL, 0, &t, NULL, 0), KVL_EDECODE);
}

/* Every single-byte change of every good packet: 0 or an error with a reason, and what
 * decodes is consistent. */
static void test_every_byte_changed(void **state)
{
    (void)state;
    static const uint8_t values[] = {0x00, 0x01, 0x02, 0x04, 0x06, 0x30, 0x40, 0x43, 0x46,
                                     0x7f, 0x80, 0x81, 0x84, 0xa2, 0xa4, 0xa6, 0xa7, 0xff};
    for (size_t g = 0; g < N(GOOD); g++) {
        uint8_t pkt[512];
        for (size_t i = 0; i < GOOD[g].n; i++) {
            for (size_t v = 0; v < N(values); v++) {
                memcpy(pkt, GOOD[g].p, GOOD[g].n);
                pkt[i] = values[v];
                kvl_trap_t t;
                int rc = decode(pkt, GOOD[g].n, &t);
                if (rc == 0) {
                    assert_true(t.n_vbs <= KVL_TRAP_MAX_VBS);
                    assert_true(t.raw_vbl_len < GOOD[g].n);
                    for (size_t k = 0; k < t.n_vbs; k++) {
                        assert_true(t.vbs[k].str_len < GOOD[g].n);
                        char *s = kvl_trap_vb_text(&t.vbs[k]);
                        assert_non_null(s);
                        free(s);
                    }
                    uint32_t ifx;
                    (void)kvl_trap_if_index(&t, &ifx);
                } else {
                    assert_true(rc == KVL_EDECODE || rc == KVL_TRAP_V3);
                    if (rc == KVL_EDECODE) {
                        assert_true(why[0] != '\0');
                    }
                }
                kvl_trap_clear(&t);
            }
        }
    }
}

/* --- hand-built packets ----------------------------------------------------------------------- */

/* Writes tag, length and the n bytes at v to out; returns the bytes written. */
static size_t tlv(uint8_t *out, uint8_t tag, const uint8_t *v, size_t n)
{
    size_t h = 0;
    out[h++] = tag;
    if (n < 0x80) {
        out[h++] = (uint8_t)n;
    } else if (n <= 0xff) {
        out[h++] = 0x81;
        out[h++] = (uint8_t)n;
    } else if (n <= 0xffff) {
        out[h++] = 0x82;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    } else {
        out[h++] = 0x83;
        out[h++] = (uint8_t)(n >> 16);
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    memmove(out + h, v, n);
    return h + n;
}

static const uint8_t VB_UPTIME[] = {0x30, 0x0e, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x02,
                                    0x01, 0x01, 0x03, 0x00, 0x43, 0x02, 0x30, 0x39};
static const uint8_t VB_TRAPOID[] = {0x30, 0x17, 0x06, 0x0a, 0x2b, 0x06, 0x01, 0x06, 0x03,
                                     0x01, 0x01, 0x04, 0x01, 0x00, 0x06, 0x09, 0x2b, 0x06,
                                     0x01, 0x06, 0x03, 0x01, 0x01, 0x05, 0x03};
/* sysName.0 = NULL */
static const uint8_t VB_NULL[] = {0x30, 0x0c, 0x06, 0x08, 0x2b, 0x06, 0x01,
                                  0x02, 0x01, 0x01, 0x05, 0x00, 0x05, 0x00};

/* A v2c message (pdu_tag) around the varbind list vbl (vn bytes); returns its length. */
static size_t v2c_msg(uint8_t *out, uint8_t pdu_tag, const uint8_t *vbl, size_t vn)
{
    static uint8_t a[70000], b[70000];
    static const uint8_t head[] = {0x02, 0x01, 0x07, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00};
    memcpy(a, head, sizeof(head));
    size_t n = sizeof(head) + tlv(a + sizeof(head), 0x30, vbl, vn);
    static const uint8_t mh[] = {0x02, 0x01, 0x01, 0x04, 0x06, 'p', 'u', 'b', 'l', 'i', 'c'};
    memcpy(b, mh, sizeof(mh));
    size_t m = sizeof(mh) + tlv(b + sizeof(mh), pdu_tag, a, n);
    return tlv(out, 0x30, b, m);
}

static uint8_t pkt[70000], vbl[70000];

static size_t vbl_with(size_t extra)
{
    size_t n = 0;
    memcpy(vbl + n, VB_UPTIME, sizeof(VB_UPTIME));
    n += sizeof(VB_UPTIME);
    memcpy(vbl + n, VB_TRAPOID, sizeof(VB_TRAPOID));
    n += sizeof(VB_TRAPOID);
    for (size_t i = 0; i < extra; i++) {
        memcpy(vbl + n, VB_NULL, sizeof(VB_NULL));
        n += sizeof(VB_NULL);
    }
    return n;
}

static void test_varbind_cap(void **state)
{
    (void)state;
    kvl_trap_t t;
    size_t n = v2c_msg(pkt, 0xa7, vbl, vbl_with(KVL_TRAP_MAX_VBS - 2));
    assert_int_equal(decode(pkt, n, &t), 0);
    assert_int_equal(t.n_vbs, KVL_TRAP_MAX_VBS - 2);
    assert_int_equal(t.vbs[KVL_TRAP_MAX_VBS - 3].type, KVL_SNMP_T_NULL);
    assert_text(&t.vbs[0], "NULL");
    kvl_trap_clear(&t);
    n = v2c_msg(pkt, 0xa7, vbl, vbl_with(KVL_TRAP_MAX_VBS - 1));
    assert_int_equal(decode(pkt, n, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "more varbinds"));
    /* as many as a whole UDP datagram holds */
    n = v2c_msg(pkt, 0xa7, vbl, vbl_with(4600));
    assert_true(n > 64000);
    assert_int_equal(decode(pkt, n, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "more varbinds"));
    /* and beyond a datagram */
    n = v2c_msg(pkt, 0xa7, vbl, vbl_with(4700));
    assert_int_equal(decode(pkt, n, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "longer than 65507"));
}

static void test_forged_lengths(void **state)
{
    (void)state;
    kvl_trap_t t;
    uint8_t p[N(PKT_V2C_COLDSTART) + 4];
    /* the message claims 0x7fffffff bytes */
    p[0] = 0x30;
    p[1] = 0x84;
    p[2] = 0x7f;
    p[3] = 0xff;
    p[4] = 0xff;
    p[5] = 0xff;
    memcpy(p + 6, PKT_V2C_COLDSTART + 2, N(PKT_V2C_COLDSTART) - 2);
    assert_int_equal(decode(p, N(PKT_V2C_COLDSTART) + 4, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "at byte 0: length beyond"));
    /* a five-byte length field */
    p[1] = 0x85;
    assert_int_equal(decode(p, N(PKT_V2C_COLDSTART) + 4, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "longer than 4 bytes"));
    /* indefinite length */
    uint8_t q[N(PKT_V2C_COLDSTART)];
    memcpy(q, PKT_V2C_COLDSTART, sizeof(q));
    q[1] = 0x80;
    assert_int_equal(decode(q, sizeof(q), &t), KVL_EDECODE);
    assert_non_null(strstr(why, "indefinite"));
    /* the varbind list (at byte 27) claims one byte more than there is */
    memcpy(q, PKT_V2C_COLDSTART, sizeof(q));
    assert_int_equal(q[27], 0x30);
    q[28]++;
    assert_int_equal(decode(q, sizeof(q), &t), KVL_EDECODE);
    assert_non_null(strstr(why, "at byte 27: length beyond"));
}

static void test_deep_nesting(void **state)
{
    (void)state;
    /* 11000 nested SEQUENCEs (66000 bytes): no recursion, a plain error */
    size_t depth = 11000, n = 0;
    for (size_t i = 0; i < depth; i++) {
        pkt[n++] = 0x30;
        pkt[n++] = 0x84;
        uint32_t rest = (uint32_t)((depth - i - 1) * 6);
        pkt[n++] = (uint8_t)(rest >> 24);
        pkt[n++] = (uint8_t)(rest >> 16);
        pkt[n++] = (uint8_t)(rest >> 8);
        pkt[n++] = (uint8_t)rest;
    }
    kvl_trap_t t;
    assert_int_equal(decode(pkt, n, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "longer than 65507"));
    assert_int_equal(decode(pkt + n - 6000, 6000, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "version is not an INTEGER"));
    /* a varbind value nested deeply is an unknown type, kept as bytes */
    size_t vn = vbl_with(0);
    uint8_t nested[64], val[80];
    size_t nn = 0;
    nested[nn++] = 0x05;
    nested[nn++] = 0x00;
    for (int i = 0; i < 10; i++) {
        nn = tlv(val, 0x30, nested, nn);
        memcpy(nested, val, nn);
    }
    static const uint8_t name[] = {0x06, 0x03, 0x2b, 0x06, 0x01};
    uint8_t vb[100];
    memcpy(val, name, sizeof(name));
    memcpy(val + sizeof(name), nested, nn);
    size_t vbn = tlv(vb, 0x30, val, sizeof(name) + nn);
    memcpy(vbl + vn, vb, vbn);
    size_t m = v2c_msg(pkt, 0xa7, vbl, vn + vbn);
    assert_int_equal(decode(pkt, m, &t), 0);
    assert_int_equal(t.n_vbs, 1);
    assert_int_equal(t.vbs[0].type, KVL_SNMP_T_OTHER);
    assert_int_equal(t.vbs[0].tag, 0x30);
    assert_int_equal(t.vbs[0].str_len, nn - 2);
    kvl_trap_clear(&t);
}

static void test_v2_head_checked(void **state)
{
    (void)state;
    kvl_trap_t t;
    size_t n;
    /* no varbinds at all */
    n = v2c_msg(pkt, 0xa7, vbl, 0);
    assert_int_equal(decode(pkt, n, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "sysUpTime.0 and snmpTrapOID.0 missing"));
    /* only sysUpTime.0 */
    memcpy(vbl, VB_UPTIME, sizeof(VB_UPTIME));
    n = v2c_msg(pkt, 0xa6, vbl, sizeof(VB_UPTIME));
    assert_int_equal(decode(pkt, n, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "missing"));
    /* the two swapped */
    memcpy(vbl, VB_TRAPOID, sizeof(VB_TRAPOID));
    memcpy(vbl + sizeof(VB_TRAPOID), VB_UPTIME, sizeof(VB_UPTIME));
    n = v2c_msg(pkt, 0xa7, vbl, sizeof(VB_TRAPOID) + sizeof(VB_UPTIME));
    assert_int_equal(decode(pkt, n, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "first varbind is not sysUpTime.0"));
    /* sysUpTime.0 as an INTEGER */
    size_t vn = vbl_with(1);
    vbl[12] = 0x02;
    n = v2c_msg(pkt, 0xa7, vbl, vn);
    assert_int_equal(decode(pkt, n, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "sysUpTime.0 is not TimeTicks"));
    /* snmpTrapOID.0 as an OCTET STRING */
    vn = vbl_with(1);
    vbl[sizeof(VB_UPTIME) + 14] = 0x04;
    n = v2c_msg(pkt, 0xa7, vbl, vn);
    assert_int_equal(decode(pkt, n, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "snmpTrapOID.0 is not an OBJECT IDENTIFIER"));
    /* a sysName.0 in place of snmpTrapOID.0 */
    vn = 0;
    memcpy(vbl, VB_UPTIME, sizeof(VB_UPTIME));
    memcpy(vbl + sizeof(VB_UPTIME), VB_NULL, sizeof(VB_NULL));
    n = v2c_msg(pkt, 0xa7, vbl, sizeof(VB_UPTIME) + sizeof(VB_NULL));
    assert_int_equal(decode(pkt, n, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "second varbind is not snmpTrapOID.0"));
}

static void test_wrong_pdus(void **state)
{
    (void)state;
    kvl_trap_t t;
    size_t vn = vbl_with(0);
    static const uint8_t tags[] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa5, 0xa8, 0x30};
    for (size_t i = 0; i < N(tags); i++) {
        size_t n = v2c_msg(pkt, tags[i], vbl, vn);
        assert_int_equal(decode(pkt, n, &t), KVL_EDECODE);
        assert_non_null(strstr(why, "neither a trap nor an inform"));
    }
    /* a v1 Trap-PDU under version 1 (v2c) and a v2 trap under version 0 */
    uint8_t p[512];
    memcpy(p, PKT_V1_LINKDOWN, N(PKT_V1_LINKDOWN));
    p[4] = 1;
    assert_int_equal(decode(p, N(PKT_V1_LINKDOWN), &t), KVL_EDECODE);
    assert_non_null(strstr(why, "v1 Trap-PDU in a v2c message"));
    memcpy(p, PKT_V2C_LINKDOWN, N(PKT_V2C_LINKDOWN));
    p[4] = 0;
    assert_int_equal(decode(p, N(PKT_V2C_LINKDOWN), &t), KVL_EDECODE);
    assert_non_null(strstr(why, "in a v1 message"));
    p[4] = 2;
    assert_int_equal(decode(p, N(PKT_V2C_LINKDOWN), &t), KVL_EDECODE);
    assert_non_null(strstr(why, "unknown SNMP version"));
    /* v1 generic-trap 7 */
    memcpy(p, PKT_V1_LINKDOWN, N(PKT_V1_LINKDOWN));
    assert_int_equal(p[35], 2);
    p[35] = 7;
    assert_int_equal(decode(p, N(PKT_V1_LINKDOWN), &t), KVL_EDECODE);
    assert_non_null(strstr(why, "generic-trap outside 0..6"));
}

static void test_long_oids(void **state)
{
    (void)state;
    kvl_trap_t t;
    /* a varbind named by an OID of 80 sub-identifiers: cut and flagged, trap kept */
    size_t vn = vbl_with(0);
    uint8_t name[90], vb[120], inner[110];
    name[0] = 0x2b;
    for (size_t i = 1; i < 79; i++) {
        name[i] = 0x01;
    }
    size_t nn = tlv(inner, 0x06, name, 79);
    inner[nn++] = 0x05;
    inner[nn++] = 0x00;
    size_t vbn = tlv(vb, 0x30, inner, nn);
    memcpy(vbl + vn, vb, vbn);
    size_t n = v2c_msg(pkt, 0xa7, vbl, vn + vbn);
    assert_int_equal(decode(pkt, n, &t), 0);
    assert_int_equal(t.n_vbs, 1);
    assert_true(t.vbs[0].oid_cut);
    assert_int_equal(t.vbs[0].oid.len, KVL_SNMP_MAX_OID_LEN);
    kvl_trap_clear(&t);
    /* the same OID as snmpTrapOID.0's value: refused */
    memcpy(vbl, VB_UPTIME, sizeof(VB_UPTIME));
    static const uint8_t trap_oid_0[] = {0x06, 0x0a, 0x2b, 0x06, 0x01, 0x06,
                                         0x03, 0x01, 0x01, 0x04, 0x01, 0x00};
    memcpy(inner, trap_oid_0, sizeof(trap_oid_0));
    nn = sizeof(trap_oid_0) + tlv(inner + sizeof(trap_oid_0), 0x06, name, 79);
    vbn = tlv(vb, 0x30, inner, nn);
    memcpy(vbl + sizeof(VB_UPTIME), vb, vbn);
    n = v2c_msg(pkt, 0xa7, vbl, sizeof(VB_UPTIME) + vbn);
    assert_int_equal(decode(pkt, n, &t), KVL_EDECODE);
    assert_non_null(strstr(why, "snmpTrapOID.0 value too long"));
}

static void test_text(void **state)
{
    (void)state;
    kvl_trap_vb_t vb;
    memset(&vb, 0, sizeof(vb));
    vb.type = KVL_SNMP_T_INTEGER;
    vb.integer = -42;
    assert_text(&vb, "-42");
    vb.type = KVL_SNMP_T_TIMETICKS;
    vb.u = 4294967295u;
    assert_text(&vb, "4294967295");
    vb.type = KVL_SNMP_T_NO_SUCH_OBJECT;
    assert_text(&vb, "noSuchObject");
    vb.type = KVL_SNMP_T_NO_SUCH_INSTANCE;
    assert_text(&vb, "noSuchInstance");
    vb.type = KVL_SNMP_T_END_OF_MIB_VIEW;
    assert_text(&vb, "endOfMibView");
    /* text with a trailing NUL, invalid UTF-8 and a tab */
    static const uint8_t s1[] = {'G', 'i', '0', '/', '1', '\t', 'x', 0xff, 0};
    vb.type = KVL_SNMP_T_OCTETS;
    vb.str = s1;
    vb.str_len = sizeof(s1);
    assert_text(&vb, "Gi0/1 x?");
    static const uint8_t s2[] = {'a', 0x01, 'b'};
    vb.str = s2;
    vb.str_len = sizeof(s2);
    assert_text(&vb, "0x610162");
    vb.type = KVL_SNMP_T_OPAQUE;
    assert_text(&vb, "0x610162");
    vb.str_len = 0;
    vb.type = KVL_SNMP_T_OCTETS;
    assert_text(&vb, "");
    vb.type = KVL_SNMP_T_OTHER;
    assert_text(&vb, "0x");
}

/* A real snmpinform must take our response as its acknowledgement (exit 0). */
static void test_real_snmpinform(void **state)
{
    (void)state;
    /* packaging/install-deps.sh installs it (Debian's snmp): missing is a failure */
    if (access("/usr/bin/snmpinform", X_OK) != 0) {
        fail_msg("/usr/bin/snmpinform (Debian package snmp) not installed");
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    char target[64];
    snprintf(target, sizeof(target), "127.0.0.1:%u", ntohs(sa.sin_port));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
        }
        execl("/usr/bin/snmpinform", "snmpinform", "-r", "0", "-t", "20", "-v", "2c", "-c",
              "public", target, "42", "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.2.1.2.2.1.1.7", "i", "7",
              (char *)NULL);
        _exit(127);
    }
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int pr = poll(&pfd, 1, 20000);
    if (pr != 1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(fd);
        fail_msg("no inform from snmpinform within 20 s");
    }
    uint8_t in[2048], out[2048];
    struct sockaddr_in from;
    socklen_t fl = sizeof(from);
    ssize_t got = recvfrom(fd, in, sizeof(in), 0, (struct sockaddr *)&from, &fl);
    assert_true(got > 0);
    kvl_trap_t t;
    assert_int_equal(kvl_trap_decode(in, (size_t)got, &t, why, sizeof(why)), 0);
    assert_int_equal(t.pdu, KVL_TRAP_PDU_INFORM);
    uint32_t ifx = 0;
    assert_int_equal(kvl_trap_if_index(&t, &ifx), 0);
    assert_int_equal(ifx, 7);
    size_t len = 0;
    assert_int_equal(kvl_trap_inform_response(&t, out, sizeof(out), &len), 0);
    assert_true(sendto(fd, out, len, 0, (struct sockaddr *)&from, fl) == (ssize_t)len);
    kvl_trap_clear(&t);
    int status = -1;
    for (int i = 0; i < 400; i++) { /* at most 20 s */
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) {
            break;
        }
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        if (i == 399) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
        }
    }
    close(fd);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2c_link_down),
        cmocka_unit_test(test_v1_link_down),
        cmocka_unit_test(test_v2c_cold_start),
        cmocka_unit_test(test_v1_enterprise),
        cmocka_unit_test(test_inform_and_response),
        cmocka_unit_test(test_v3_recognised),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_every_byte_changed),
        cmocka_unit_test(test_varbind_cap),
        cmocka_unit_test(test_forged_lengths),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_v2_head_checked),
        cmocka_unit_test(test_wrong_pdus),
        cmocka_unit_test(test_long_oids),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_real_snmpinform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
