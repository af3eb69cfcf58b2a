/*
 * inventory.h — what the agents report about their devices and interfaces, kept by the
 * collector: per agent → device → interface, the latest descriptive labels (sysName,
 * sysDescr, sysLocation, address, model, serial; ifIndex, ifName, ifDescr, ifAlias, ifType,
 * ifSpeed, ifPhysAddress), when each was first and last seen, the agent's site, and when
 * an entry was retired (its device left the agent's configuration, or the interface left
 * the device). Archives are not touched: a retired entry only says so, and an entry is
 * deleted only on an explicit request (kvl_inventory_forget: `--forget-device`, or DELETE
 * on the API by an admin).
 *
 * Where the facts come from. The inventory is a sink (collector/sink.h) before the store
 * (so that a rename reaches the store before the batch's rows):
 *   - a batch's own definitions (those first used in it, or whose labels changed: the
 *     agent sends labels then, and after each of its restarts) of scope device or
 *     interface create or update an entry; a label that changed is a change (below);
 *   - a device definition's label "ifIndexes" (the ifIndex of every interface the last
 *     discovery reported, sorted, space-separated) retires the device's interfaces whose
 *     ifIndex is not among them; an interface defined again under a new name with the same
 *     ifIndex retires the old name (its labels and history stay, for a rename to follow);
 *   - an interface defined under a new name that is the same port as one the device had
 *     under another name (the rename rule, kvl_inventory_same_interface) takes the old
 *     entry over: its first-seen time, its history and its name as an alias (`aliases`
 *     in the API; the search finds the old name); the old entry goes, the change is kept
 *     (key "name"), the entry is written with its archive's move pending, and only then
 *     opts.on_rename asks the store to move the archive (collector/main.c wires it to
 *     kvl_store_move), so the record is on file before the file moves. The store's answer
 *     comes back through kvl_inventory_moved, which logs the rename and clears the pending
 *     move; moves still pending at a restart are asked again (kvl_inventory_pending_moves),
 *     which is harmless because a move is idempotent (store.h);
 *   - a definition of scope neighbour (an LLDP/CDP neighbour the agent's discovery saw,
 *     agent/snmp/nbrwalk.h; instance "lldp.<port>.<index>", its labels what it is) creates
 *     or updates a neighbour of the device, kept with the device (not in the hash), written
 *     and versioned like an interface; the neighbour-scope definition of instance "" (the
 *     device's list: label "neighbours", the instances its last complete neighbour walk
 *     saw, space-separated) marks the others gone and the listed ones current again; its
 *     other labels (the device's own lldp_chassis_id, lldp_chassis_id_subtype,
 *     lldp_sys_name) are merged into the device's. Recabling is logged at INFO: a
 *     neighbour appeared, gone, back, or changed (another system or port on the same
 *     instance). kvl_inventory_each_neighbour (inventory_each.h) reads them;
 *   - the event "devices_configured" (an agent sends it once at its start; one field
 *     "device" per SNMP device of its configuration) retires the agent's devices that it
 *     does not name, and brings back those it names. Agents that send neither (older ones)
 *     simply never have anything retired;
 *   - every batch of an agent marks it seen (one assignment): an entry that is not retired
 *     was last seen when its agent last reported (`last_seen`), a retired one when it was
 *     retired.
 * Definitions arrive once per change, so an update is a hash lookup per definition.
 *
 * Versions: every change of a label (key, old value, new value, time, entry) is kept, the
 * newest KVL_INV_CHANGES_MAX (opts.changes_max) in memory and in the change log.
 *
 * Persistence (<data_dir>/_inventory/, inventory_store.c): inventory.snap (a snapshot,
 * written to a temporary file, synced, renamed), inventory.log (every entry written since
 * that snapshot, appended as it changes) and changes.log / changes.1.log (the versions,
 * rotated at changes_max lines). Lines are "<CRC-32C, 8 hex> <JSON>\n"; a damaged line is
 * skipped and counted, a torn last line dropped. Restored at kvl_inventory_new. The heads
 * carry the format version (KVL_INV_FORMAT_VERSION; none: 1); a newer one makes
 * kvl_inventory_new fail with a sentence saying what to do.
 *
 * Memory: one block per entry (names and labels inside it) and a hash slot; about 330
 * bytes per interface with the poller's seven labels, so 2,000 devices x 50 interfaces
 * hold about 33 MB (tests/unit/test_inventory.c measures it). An entry's labels are at most
 * KVL_INV_LABELS_BYTES, and entries come only from definitions the ingest accepted (its
 * max_series_per_agent), so a hostile agent cannot make the inventory hold more.
 *
 * Threads: everything on the loop's thread.
 */
#ifndef KVL_INVENTORY_H
#define KVL_INVENTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sink.h"
#include "wire.h"

#define KVL_INV_FORMAT_VERSION 1u /* of inventory.snap and inventory.log */
#define KVL_INV_CHANGES_MAX 20000 /* label changes kept */
#define KVL_INV_LABELS_MAX 32     /* labels kept per entry (more are dropped) */
#define KVL_INV_LABEL_MAX 1024    /* bytes of a label's value kept (longer: cut) */
#define KVL_INV_LABELS_BYTES 4096 /* bytes of one entry's labels (an update beyond: not kept) */
#define KVL_INV_ALIASES_MAX 16    /* former names kept per interface (the newest) */

typedef struct kvl_inventory kvl_inventory_t;
typedef struct kvl_http kvl_http_t;

typedef struct kvl_inventory_opts {
    const char *dir;    /* <data_dir>/_inventory (made if missing) */
    size_t changes_max; /* 0: KVL_INV_CHANGES_MAX */
    /* The clock (tests); NULL: kvl_now_ms. */
    int64_t (*now_ms)(void *ctx);
    void *now_ctx;
    /* An interface was renamed (on the loop, after the inventory recorded it): its archive
     * should follow from `from` to `to`. NULL: nothing is asked (tests). */
    void (*on_rename)(void *ctx, const char *agent, const char *site, const char *device,
                      const char *from, const char *to);
    void *rename_ctx;
} kvl_inventory_opts_t;

/* What the rename rule compares of an interface: its labels ifIndex, ifPhysAddress, ifType,
 * ifSpeed (NULL or "" when not given). */
typedef struct kvl_inv_port {
    const char *ifindex, *mac, *type, *speed;
} kvl_inv_port_t;

/* The rename rule: whether a and b are the same port of a device under two names. The same
 * ifIndex (a whole number) always; then, when both give a MAC (not all zeros), the same MAC;
 * when neither does, the same ifType and the same ifSpeed (both given); one with a MAC and
 * one without: not the same. The inventory also requires that the old name was not defined
 * in the same batch as the new one, nor at the same instant (two names at once are two
 * interfaces, never merged). */
bool kvl_inventory_same_interface(const kvl_inv_port_t *a, const kvl_inv_port_t *b);

/* What became of a rename's archive (the store's answer). */
typedef enum kvl_inv_move {
    KVL_INV_MOVED,      /* the old name's file is now the new name's */
    KVL_INV_NO_ARCHIVE, /* the old name had no file (or it was moved before) */
    KVL_INV_KEPT_BOTH,  /* both names have files: both kept, nothing moved (a warning) */
} kvl_inv_move_t;

/* Restores what dir holds. Returns 0 and sets *out, or a negative code with a sentence. */
int kvl_inventory_new(const kvl_inventory_opts_t *o, kvl_inventory_t **out, char *err,
                      size_t errlen);
/* Writes a snapshot and frees. NULL-safe. */
void kvl_inventory_free(kvl_inventory_t *inv);

/* The sink (ctx: the inventory): on_batch and on_event. */
extern const kvl_sink_t kvl_inventory_sink;

/* What the sink does, for tests and tools. A definition of scope device, interface or
 * neighbour (its labels, if any) seen at t_ms from agent (at site). Other scopes are ignored;
 * labels that are not well-formed UTF-8 are left out. Returns 0, KVL_EINVAL for a definition
 * without a device (or interface) name or with names or ids that are not UTF-8, or KVL_ENOMEM. */
int kvl_inventory_define(kvl_inventory_t *inv, const char *agent, const char *site,
                         const kvl_series_def_t *d, int64_t t_ms);
/* The agent reported at t_ms. */
void kvl_inventory_seen(kvl_inventory_t *inv, const char *agent, const char *site, int64_t t_ms);
/* The agent's configuration holds exactly these devices (at t_ms): the others are retired,
 * these brought back. Returns 0, KVL_EINVAL (no agent id, or not UTF-8) or KVL_ENOMEM. */
int kvl_inventory_configured(kvl_inventory_t *inv, const char *agent, const char *site,
                             const char *const *devices, size_t n, int64_t t_ms);
/* Deletes a device's entry and its interfaces (not its archives). Returns 0, KVL_EINVAL
 * when there is no such device, or KVL_EIO when it could not be recorded. */
int kvl_inventory_forget(kvl_inventory_t *inv, const char *agent, const char *device);

/* The store moved (or did not move) an interface's archive from `from` to `to`: logs the
 * rename once ("interface renamed: <agent>/<device> <old> -> <new> (ifIndex N), archive
 * moved", or a warning when both were kept) and clears the entry's pending move. */
void kvl_inventory_moved(kvl_inventory_t *inv, const char *agent, const char *device,
                         const char *from, const char *to, kvl_inv_move_t how);
/* The current name of a device's interface known as `name` now or formerly (a rename), or
 * NULL when the inventory knows no interface by that name: for pages and links made before
 * a rename (the graph of an old name is the graph of the archive that moved). Valid until
 * the inventory next changes. */
const char *kvl_inventory_current_name(const kvl_inventory_t *inv, const char *agent,
                                       const char *device, const char *name);
/* Asks opts.on_rename again for every rename whose move is still pending (at the start,
 * before the ingest replays its journal): each former name of such an interface, oldest
 * first, to its current name. Returns how many were asked. */
size_t kvl_inventory_pending_moves(kvl_inventory_t *inv);

typedef struct kvl_inventory_stats {
    size_t agents, devices, interfaces, retired;
    size_t changes;   /* kept */
    size_t bytes;     /* held by entries, names, labels, hash and changes */
    size_t damaged;   /* lines skipped at load */
    uint64_t written; /* records appended since the start */
} kvl_inventory_stats_t;
void kvl_inventory_stats(const kvl_inventory_t *inv, kvl_inventory_stats_t *st);

/* Lookups for other rooms (the graphs' titles and paths), valid until the next change: the
 * site an agent last reported, or NULL; a label of a device (interface "") or of an
 * interface, or NULL. */
const char *kvl_inventory_site(kvl_inventory_t *inv, const char *agent);
const char *kvl_inventory_label(const kvl_inventory_t *inv, const char *agent, const char *device,
                                const char *interface, const char *key);

/* Registers the API's routes (inventory_api.c): GET /api/v1/devices,
 * GET /api/v1/devices/<agent>/<device>, DELETE /api/v1/devices/<agent>/<device> (admin),
 * GET /api/v1/search. Returns 0 or KVL_EINVAL. */
int kvl_inventory_api_register(kvl_inventory_t *inv, kvl_http_t *http);

#endif
