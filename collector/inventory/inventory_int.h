/*
 * inventory_int.h — the inventory's insides, shared by its files (inventory_core.c the model and
 * the sink, inventory_store.c the files, inventory_api.c the HTTP routes); see inventory.h.
 */
#ifndef KVL_INVENTORY_INT_H
#define KVL_INVENTORY_INT_H

#include <jansson.h>
#include <stdio.h>

#include "inventory.h"

typedef struct inv_agent inv_agent_t;

/* A device (dev == NULL) or an interface of one. Its name is in the same block. */
typedef struct inv_entry {
    struct inv_entry *hnext; /* hash chain */
    uint32_t hash;
    uint16_t n_labels;
    uint32_t labels_len;
    inv_agent_t *agent;
    struct inv_entry *dev;  /* an interface's device */
    char *labels;           /* "key\0value\0" x n_labels, or NULL */
    int64_t first_ms;       /* first defined */
    int64_t last_ms;        /* last defined, or brought back */
    int64_t retired_ms;     /* 0: not retired */
    struct inv_entry **ifs; /* a device's interfaces */
    size_t n_ifs, cap_ifs;
    char *aliases; /* an interface's former names, "a\0b\0" (oldest first), or NULL */
    uint16_t n_aliases;
    bool move_pending; /* renamed: the archive's move not yet confirmed (kvl_inventory_moved) */
    bool nbr;          /* an LLDP/CDP neighbour of dev: in dev->nbrs, not in the hash */
    struct inv_entry **nbrs; /* a device's neighbours (name: the wire's instance) */
    size_t n_nbrs, cap_nbrs;
    char name[];
} inv_entry_t;

struct inv_agent {
    char *id;
    char *site;
    int64_t last_ms; /* its last batch */
    inv_entry_t **devs;
    size_t n_devs, cap_devs;
};

/* One label's change: "agent\0device\0instance\0key\0old\0new\0" in blob. */
typedef struct inv_change {
    int64_t at;
    char *blob;
} inv_change_t;

struct kvl_inventory {
    kvl_inventory_opts_t o;
    char dir[4096];
    inv_agent_t **agents;
    size_t n_agents, cap_agents;
    size_t last_agent; /* the one looked up last */
    inv_entry_t **tab; /* hash of every entry by agent, device, instance */
    size_t tab_size, n_entries;
    size_t n_devices, n_ifaces;
    inv_change_t *changes; /* ring of changes_max */
    size_t ch_head, ch_n;
    size_t bytes;
    /* files */
    uint64_t gen;
    int log_fd;
    int lock_fd; /* <dir>/lock, flock'ed while open */
    FILE *ch_file;
    size_t log_records;
    size_t ch_lines; /* in changes.log */
    size_t damaged;
    uint64_t written;
    bool loading; /* restoring: nothing is written */
    bool io_failed_logged;
};

/* inventory_core.c */
int64_t inv_now(const kvl_inventory_t *inv);
inv_agent_t *inv_agent(kvl_inventory_t *inv, const char *id, const char *site, bool create);
inv_entry_t *inv_find(const kvl_inventory_t *inv, const char *agent, const char *device,
                      const char *instance);
/* The value of a label, or NULL. */
const char *inv_label(const inv_entry_t *e, const char *key);
/* Restores an entry from a record (inventory_store.c); returns 0 or a negative code. */
int inv_restore_entry(kvl_inventory_t *inv, const char *agent, const char *site, const char *device,
                      const char *instance, const json_t *labels, int64_t first, int64_t last,
                      int64_t retired);
void inv_change_push(kvl_inventory_t *inv, int64_t at, const char *agent, const char *device,
                     const char *instance, const char *key, const char *old, const char *nw);
/* The i-th change kept, oldest first. */
const inv_change_t *inv_change_at(const kvl_inventory_t *inv, size_t i);
/* The fields of a change's blob. */
void inv_change_fields(const inv_change_t *c, const char **agent, const char **device,
                       const char **instance, const char **key, const char **old, const char **nw);
/* Removes a device and its interfaces from memory. */
void inv_remove_device(kvl_inventory_t *inv, inv_entry_t *dev);
/* Sets an interface's former names (a JSON array of strings; others ignored) and whether its
 * archive's move is pending. Returns 0 or KVL_ENOMEM. */
int inv_set_aliases(kvl_inventory_t *inv, inv_entry_t *e, const json_t *aliases, bool pending);
/* Removes one interface from memory. */
void inv_remove_iface(kvl_inventory_t *inv, inv_entry_t *e);
/* A device's neighbour by its instance, or NULL. */
inv_entry_t *inv_find_nbr(const inv_entry_t *dev, const char *instance);
/* Restores a neighbour from a record (inventory_store.c); returns 0 or a negative code. */
int inv_restore_nbr(kvl_inventory_t *inv, const char *agent, const char *site, const char *device,
                    const char *instance, const json_t *labels, int64_t first, int64_t last,
                    int64_t gone);
/* When an entry was last seen: its retirement, else the later of its own and its agent's. */
int64_t inv_last_seen(const inv_entry_t *e);

/* inventory_store.c */
int inv_store_open(kvl_inventory_t *inv, char *err, size_t errlen);
void inv_store_close(kvl_inventory_t *inv);
/* Appends the entry as it is now (no-op while loading). */
void inv_store_entry(kvl_inventory_t *inv, const inv_entry_t *e);
void inv_store_forget(kvl_inventory_t *inv, const char *agent, const char *device);
/* An interface merged into another by a rename: its entry goes. */
void inv_store_forget_iface(kvl_inventory_t *inv, const char *agent, const char *device,
                            const char *instance);
void inv_store_agent(kvl_inventory_t *inv, const inv_agent_t *a);
void inv_store_change(kvl_inventory_t *inv, const inv_change_t *c);
/* Writes a snapshot and empties the log. Returns 0 or a negative code (logged). */
int inv_store_compact(kvl_inventory_t *inv);
/* The JSON of an entry as the files keep it. */
json_t *inv_entry_record(const inv_entry_t *e);

#endif
