/*
 * inventory_each.h — every device and interface the inventory holds, read in one pass by
 * other rooms (the capacity report lists the interfaces with their circuit name and speed,
 * and the devices whose availability it measures). On the loop's thread; the strings are
 * valid for the call only.
 */
#ifndef KVL_INVENTORY_EACH_H
#define KVL_INVENTORY_EACH_H

#include <stdbool.h>

#include "inventory.h"

typedef struct kvl_inventory_item {
    const char *agent, *site, *device;
    const char *interface; /* NULL: the device itself */
    const char *alias;     /* an interface's ifAlias (the circuit), NULL when none or empty */
    const char *speed;     /* an interface's ifSpeed label (bit/s, decimal), NULL when none */
    /* a device's identity, for matching LLDP/CDP neighbours to it (the topology); NULL when
     * none or empty, and for interfaces */
    const char *sys_name, *address, *lldp_chassis_id, *lldp_sys_name;
    bool retired;
} kvl_inventory_item_t;

typedef void (*kvl_inventory_item_fn)(void *ctx, const kvl_inventory_item_t *it);

/* Calls fn for every device, then each of its interfaces, agent by agent. NULL inv: none. */
void kvl_inventory_each(const kvl_inventory_t *inv, kvl_inventory_item_fn fn, void *ctx);

/* One LLDP/CDP neighbour of a device, as its agent's last discovery that saw it described it
 * (agent/snmp/nbrwalk.h; "" for what the device did not give). */
typedef struct kvl_inventory_nbr {
    const char *agent, *site, *device;
    const char *instance;   /* "lldp.<local port>.<remote index>" or "cdp.<ifIndex>.<index>" */
    const char *protocol;   /* "lldp" or "cdp" */
    const char *local_if;   /* the local interface's name (its archive's), "" when unknown */
    const char *local_port; /* LLDP local port number or CDP ifIndex, "" when unknown */
    const char *chassis_id, *chassis_id_subtype, *sys_name, *port_id, *port_id_subtype;
    const char *port_desc, *mgmt_addr, *sys_desc;
    int64_t first_ms, last_ms; /* first defined; last seen (its agent's last report) */
    int64_t gone_ms;           /* 0: seen by the last discovery; else when it was not */
} kvl_inventory_nbr_t;

typedef void (*kvl_inventory_nbr_fn)(void *ctx, const kvl_inventory_nbr_t *n);

/* Calls fn for every neighbour of every device (agent NULL) or of one agent's devices, gone
 * ones included (gone_ms set), device by device in the inventory's order. NULL inv: none.
 * For the topology graph (links between known devices) and tools. */
void kvl_inventory_each_neighbour(const kvl_inventory_t *inv, const char *agent,
                                  kvl_inventory_nbr_fn fn, void *ctx);

#endif
