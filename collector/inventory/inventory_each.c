/*
 * inventory_each.c — the inventory read in one pass by other rooms (inventory_each.h).
 */
#include "inventory_each.h"

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
                                       .retired = dev->retired_ms != 0};
            fn(ctx, &it);
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
