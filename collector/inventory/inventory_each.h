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
    bool retired;
} kvl_inventory_item_t;

typedef void (*kvl_inventory_item_fn)(void *ctx, const kvl_inventory_item_t *it);

/* Calls fn for every device, then each of its interfaces, agent by agent. NULL inv: none. */
void kvl_inventory_each(const kvl_inventory_t *inv, kvl_inventory_item_fn fn, void *ctx);

#endif
