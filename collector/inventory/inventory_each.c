/*
 * inventory_each.c — the inventory read in one pass by other rooms (inventory_each.h): devices
 * and interfaces, and the devices' LLDP/CDP neighbours.
 */
#include "inventory_each.h"

#include <string.h>

#include "inventory_int.h"

static const char *nonempty(const char *s)
{
    return s != NULL && s[0] != '\0' ? s : NULL;
}

void kvl_inventory_each(const kvl_inventory_t *inv, kvl_inventory_item_fn fn, void *ctx)
{
    for (size_t a = 0; inv != NULL && a < inv->n_agents; a++) {
        const inv_agent_t *ag = inv->agents[a];
        for (size_t d = 0; d < ag->n_devs; d++) {
            const inv_entry_t *dev = ag->devs[d];
            kvl_inventory_item_t it = {.agent = ag->id,
                                       .site = ag->site != NULL ? ag->site : "",
                                       .device = dev->name,
                                       .sys_name = nonempty(inv_label(dev, "sysName")),
                                       .address = nonempty(inv_label(dev, "address")),
                                       .lldp_chassis_id =
                                           nonempty(inv_label(dev, "lldp_chassis_id")),
                                       .lldp_sys_name = nonempty(inv_label(dev, "lldp_sys_name")),
                                       .retired = dev->retired_ms != 0};
            fn(ctx, &it);
            it.sys_name = it.address = it.lldp_chassis_id = it.lldp_sys_name = NULL;
            for (size_t i = 0; i < dev->n_ifs; i++) {
                const inv_entry_t *e = dev->ifs[i];
                it.interface = e->name;
                it.alias = nonempty(inv_label(e, "ifAlias"));
                it.speed = nonempty(inv_label(e, "ifSpeed"));
                it.retired = e->retired_ms != 0;
                fn(ctx, &it);
            }
        }
    }
}

static const char *label_or_empty(const inv_entry_t *e, const char *key)
{
    const char *v = inv_label(e, key);
    return v != NULL ? v : "";
}

void kvl_inventory_each_neighbour(const kvl_inventory_t *inv, const char *agent,
                                  kvl_inventory_nbr_fn fn, void *ctx)
{
    for (size_t a = 0; inv != NULL && a < inv->n_agents; a++) {
        const inv_agent_t *ag = inv->agents[a];
        if (agent != NULL && strcmp(agent, ag->id) != 0) {
            continue;
        }
        for (size_t d = 0; d < ag->n_devs; d++) {
            const inv_entry_t *dev = ag->devs[d];
            for (size_t i = 0; i < dev->n_nbrs; i++) {
                const inv_entry_t *e = dev->nbrs[i];
                kvl_inventory_nbr_t n = {
                    .agent = ag->id,
                    .site = ag->site != NULL ? ag->site : "",
                    .device = dev->name,
                    .instance = e->name,
                    .protocol = label_or_empty(e, "protocol"),
                    .local_if = label_or_empty(e, "local_if"),
                    .local_port = label_or_empty(e, "local_port"),
                    .chassis_id = label_or_empty(e, "chassis_id"),
                    .chassis_id_subtype = label_or_empty(e, "chassis_id_subtype"),
                    .sys_name = label_or_empty(e, "sys_name"),
                    .port_id = label_or_empty(e, "port_id"),
                    .port_id_subtype = label_or_empty(e, "port_id_subtype"),
                    .port_desc = label_or_empty(e, "port_desc"),
                    .mgmt_addr = label_or_empty(e, "mgmt_addr"),
                    .sys_desc = label_or_empty(e, "sys_desc"),
                    .first_ms = e->first_ms,
                    .last_ms = inv_last_seen(e),
                    .gone_ms = e->retired_ms,
                };
                fn(ctx, &n);
            }
        }
    }
}
