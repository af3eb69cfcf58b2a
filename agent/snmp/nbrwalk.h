/*
 * nbrwalk.h — a device's neighbours from LLDP-MIB and CISCO-CDP-MIB (agent/snmp/poller.c reads
 * them at every discovery), shared by the poller's files only: the tables walked, how their
 * varbinds become neighbour rows, how values are rendered and how a neighbour's local port
 * becomes one of the poller's interfaces.
 *
 *  - Tables, numerically (no MIB files), walked one after the other, each to its end (it
 *    leaves its subtree, endOfMibView, noSuchObject/noSuchInstance, an OID that does not
 *    increase, or a v1 noSuchName): lldpLocPortTable (.1.0.8802.1.1.2.1.3.7.1: .2 PortIdSubtype,
 *    .3 PortId, .4 PortDesc; index lldpLocPortNum), lldpRemTable (.1.0.8802.1.1.2.1.4.1.1: .4
 *    ChassisIdSubtype, .5 ChassisId, .6 PortIdSubtype, .7 PortId, .8 PortDesc, .9 SysName,
 *    .10 SysDesc; index TimeMark.LocalPortNum.RemIndex), lldpRemManAddrTable
 *    (.1.0.8802.1.1.2.1.4.2.1: the address in the index, TimeMark.LocalPortNum.RemIndex.
 *    AddrSubtype.AddrLen.Addr...) and cdpCacheTable (.1.3.6.1.4.1.9.9.23.1.2.1.1: .3
 *    AddressType, .4 Address, .6 DeviceId, .7 DevicePort, .8 Platform; index
 *    ifIndex.DeviceIndex).
 *  - Rows: an LLDP neighbour is keyed by LocalPortNum.RemIndex (TimeMark ignored: a later
 *    row of the same key overwrites); an index that is not TimeMark.LocalPortNum.RemIndex
 *    (RouterOS sends RemIndex alone) has no local port (0) and its last sub-identifier as
 *    RemIndex. A CDP neighbour is keyed by ifIndex.DeviceIndex. At most KVL_NBR_MAX rows per
 *    device (further ones counted in `dropped`), KVL_NBR_PORTS_MAX local ports.
 *  - Values: names and descriptions cleaned as every SNMP string (snmp_text.h), then cut to
 *    KVL_NBR_TEXT_MAX bytes (KVL_NBR_DESC_MAX for the system description and the platform)
 *    at a UTF-8 boundary, trailing spaces dropped. Chassis and port ids by their subtype
 *    (kvl_nbr_render_id): a MAC address (chassis subtype 4, port subtype 3) of 6 bytes as
 *    aa:bb:cc:dd:ee:ff, a network address (chassis 5, port 4: IANA family 1 + 4 bytes or 2 +
 *    16 bytes) as an IPv4/IPv6 address, anything else as its text when every byte is
 *    printable ASCII (0x20-0x7e), else as lowercase hex bytes joined by ':'. The management
 *    address: the first IPv4 address (subtype 1, 4 bytes) of the neighbour in walk order,
 *    else its first IPv6 address (subtype 2, 16 bytes); CDP's cdpCacheAddress when its
 *    cdpCacheAddressType is ip(1) and it has 4 bytes.
 *  - The device's own LLDP identity: lldpLocChassisIdSubtype.0, lldpLocChassisId.0 (rendered
 *    like a neighbour's chassis id) and lldpLocSysName.0, one GET after the tables.
 *  - The local interface (kvl_nbr_local_ifindex): CDP's first index is the ifIndex. For
 *    LLDP, the local port's lldpLocPortTable row: its PortId, then its PortDesc (non-empty,
 *    cleaned), each compared byte for byte with every interface's ifName, then ifDescr,
 *    then ifAlias (cleaned, as the poller keeps them); the first match, the lowest ifIndex
 *    among equals, is the interface. When the table has no row for the port or nothing
 *    matches, the port number is taken as an ifIndex if the device has that interface.
 *    Otherwise the neighbour has no local interface.
 *
 * Pure: no loop, no session, no batcher, no logging.
 */
#ifndef KVL_NBRWALK_H
#define KVL_NBRWALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ifwalk.h"
#include "snmp_types.h"

#define KVL_NBR_MAX 1024       /* neighbours kept per device */
#define KVL_NBR_PORTS_MAX 4096 /* lldpLocPortTable rows kept per device */
#define KVL_NBR_TEXT_MAX 255   /* bytes of a name or id */
#define KVL_NBR_DESC_MAX 128   /* bytes of a system description or platform */

typedef enum { KVL_NBR_LLDP = 1, KVL_NBR_CDP = 2 } kvl_nbr_proto_t;

/* The tables, in the order they are walked. */
typedef enum {
    KVL_NBR_T_LOCPORT,
    KVL_NBR_T_REM,
    KVL_NBR_T_MANADDR,
    KVL_NBR_T_CDP,
    KVL_NBR_TABLES
} kvl_nbr_table_t;

/* One neighbour. Strings are NULL until the device gave them. */
typedef struct kvl_nbr {
    uint8_t proto;       /* kvl_nbr_proto_t */
    uint32_t local_port; /* LLDP LocalPortNum, CDP ifIndex; 0: unknown */
    uint32_t rem_index;  /* LLDP RemIndex, CDP DeviceIndex */
    int chassis_subtype; /* -1: not given (CDP has none) */
    int port_subtype;    /* -1: not given */
    char *chassis_id;    /* rendered (kvl_nbr_render_id); CDP: cdpCacheDeviceId */
    char *port_id;       /* rendered; CDP: cdpCacheDevicePort */
    char *port_desc;
    char *sys_name; /* CDP: cdpCacheDeviceId */
    char *sys_desc; /* LLDP lldpRemSysDesc, CDP cdpCachePlatform */
    char *mgmt_addr;
    uint8_t mgmt_family; /* 1 IPv4, 2 IPv6 of mgmt_addr; 0: none yet */
} kvl_nbr_t;

/* One lldpLocPortTable row. */
typedef struct kvl_nbr_port {
    uint32_t num;
    char *id;   /* lldpLocPortId, rendered by its subtype (when read before it) */
    char *desc; /* lldpLocPortDesc */
    int id_subtype;
} kvl_nbr_port_t;

/* What one discovery's walk found, rows in (proto, local port, remote index) order. */
typedef struct kvl_nbrs {
    kvl_nbr_t *v;
    size_t n, cap;
    kvl_nbr_port_t *ports; /* in port number order */
    size_t n_ports, cap_ports;
    size_t dropped; /* neighbours or ports beyond the bounds */
    /* the device's own LLDP identity (lldpLocChassisIdSubtype, lldpLocChassisId rendered like a
     * neighbour's, lldpLocSysName), for matching it as others' neighbour; NULL/-1: not given */
    int loc_chassis_subtype;
    char *loc_chassis_id, *loc_sys_name;
} kvl_nbrs_t;

/* The device's own LLDP identity: lldpLocChassisIdSubtype.0, lldpLocChassisId.0 and
 * lldpLocSysName.0 (asked with one GET after the tables), in this order. */
#define KVL_NBR_LOCAL_N 3
void kvl_nbr_local_oids(kvl_snmp_oid_t *o);
/* Takes a varbind answering that GET (others, and values of the wrong type, ignored).
 * Returns 0 or KVL_ENOMEM. */
int kvl_nbrs_take_local(kvl_nbrs_t *ns, const kvl_snmp_vb_t *vb);

/* The subtree of a table (its entry OID). */
void kvl_nbr_table_oid(kvl_snmp_oid_t *o, kvl_nbr_table_t t);

/* Takes one varbind of table t's walk (already known to be inside its subtree). Values of
 * columns not read, of an unexpected type or with an index that cannot be decoded are
 * ignored. Returns 0, or KVL_ENOMEM. */
int kvl_nbrs_take(kvl_nbrs_t *ns, kvl_nbr_table_t t, const kvl_snmp_vb_t *vb);

/* Empties ns (strings freed, arrays kept) / frees everything. */
void kvl_nbrs_clear(kvl_nbrs_t *ns);
void kvl_nbrs_free(kvl_nbrs_t *ns);

/* Renders an LLDP chassis id (chassis true) or port id of the given subtype, as above, into a
 * new string (cut to KVL_NBR_TEXT_MAX bytes). NULL when out of memory. */
char *kvl_nbr_render_id(bool chassis, int subtype, const uint8_t *s, size_t n);

/* Decodes an lldpRemManAddrTable index (the sub-identifiers after the column):
 * TimeMark.LocalPortNum.RemIndex.AddrSubtype.AddrLen.Addr... with AddrLen sub-identifiers
 * of one byte each and nothing after them. Sets the port, remote index and subtype, and
 * writes the address (IPv4 dotted, IPv6 by inet_ntop, other subtypes as hex bytes joined by
 * ':') into out. Returns 0, or KVL_EINVAL for an index that is not of that form. */
int kvl_nbr_manaddr_index(const uint32_t *idx, size_t n, uint32_t *port, uint32_t *rem,
                          uint32_t *subtype, char *out, size_t outlen);

/* The ifIndex of nb's local interface among rows (the discovery's interfaces), by the rule
 * above; false when it has none. */
bool kvl_nbr_local_ifindex(const kvl_nbrs_t *ns, const kvl_nbr_t *nb, const kvl_ifrows_t *rows,
                           uint32_t *ifindex);

/* "lldp" or "cdp". */
const char *kvl_nbr_proto_name(int proto);

#endif
