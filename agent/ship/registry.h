/*
 * registry.h — the agent's series registry: every series a subsystem reports, by a small id.
 *
 * A subsystem registers each series it will report (kvl_registry_series, or through the
 * batcher's forwarding kvl_batcher_series), getting an id that stays the same for the agent's
 * lifetime; registering the same key again returns the same id. An instance names all of a
 * family's metrics at once, with consecutive ids. Strings are interned: one copy each, valid
 * as long as the registry.
 *
 * A new definition, or one whose labels changed, waits (with a copy of its labels) until the
 * batcher takes it into the next batch (kvl_registry_take_new, then kvl_registry_sent once
 * the batch is encoded). The uplink reads every definition (without labels) at the start of
 * each connection. With a spool the registry is kept in the spool's `series.defs`
 * (kvl_registry_persist), so ids survive agent restarts.
 *
 * Loop thread only. Owned by main.c; it outlives the batcher and the uplink that use it.
 */
#ifndef KVL_REGISTRY_H
#define KVL_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire.h"

typedef struct kvl_registry kvl_registry_t;

#define KVL_REGISTRY_MAX_FAMILIES 1024

/* What identifies a series; labels describe it (copied). */
typedef struct kvl_series_key {
    const char *device;
    kvl_scope_t scope;
    const char *instance; /* "" for device scope */
    const char *metric;
    kvl_kind_t kind;
    uint32_t interval_s;
    bool real;
    const kvl_label_t *labels;
    size_t n_labels;
} kvl_series_key_t;

/* What identifies an instance: all of its family's metrics at once. */
typedef struct kvl_instance_key {
    const char *device;
    kvl_scope_t scope;
    const char *instance;       /* "" for a group's scalars */
    const kvl_family_t *family; /* must outlive the registry */
    uint32_t interval_s;
    const kvl_label_t *labels;
    size_t n_labels;
} kvl_instance_key_t;

/* Returns 0 and sets *out, or a negative code with a sentence in err. */
int kvl_registry_new(kvl_registry_t **out, char *err, size_t errlen);
/* Closes series.defs (synced) and frees. NULL-safe. */
void kvl_registry_free(kvl_registry_t *r);

/* Returns the series' id (>0), or 0 when out of memory or when its device or instance name
 * could not become an archive file name at the collector (common/names.h: refused, logged
 * and counted once per pair, see kvl_registry_names_refused). If the key is known but its
 * labels changed (e.g. a new ifAlias), the definition is updated and sent again. */
uint32_t kvl_registry_series(kvl_registry_t *r, const kvl_series_key_t *key);
/* Registers every metric of the instance's family; returns the id of its first metric
 * (metric i has id + i), or 0 when out of memory or a name is refused. Same rules as
 * kvl_registry_series. */
uint32_t kvl_registry_instance(kvl_registry_t *r, const kvl_instance_key_t *key);
/* The registry's own copy of s, the same pointer for equal strings, valid as long as the
 * registry (NULL when out of memory): callers may keep names this way instead of copying. */
const char *kvl_registry_intern(kvl_registry_t *r, const char *s);
/* How many pairs of device and instance names were refused since the start (for the agent's
 * own statistics). */
uint64_t kvl_registry_names_refused(const kvl_registry_t *r);
/* The (interned) instance name of the definition holding id, or NULL. */
const char *kvl_registry_instance_of(const kvl_registry_t *r, uint32_t id);
/* The scope (kvl_scope_t) of the definition holding id, or 0. */
int kvl_registry_scope_of(const kvl_registry_t *r, uint32_t id);

/* Every definition known, for the uplink to send at the start of each connection (without
 * labels: those went out with the batch that first used each series): how many there are,
 * and up to max of them from off on into out (returns how many). */
size_t kvl_registry_n_defs(const kvl_registry_t *r);
size_t kvl_registry_defs(const kvl_registry_t *r, size_t off, kvl_series_def_t *out, size_t max);
/* Every family known (they go before the definitions); *n: room in out, then how many. */
void kvl_registry_families(const kvl_registry_t *r, kvl_family_t *out, size_t *n);

/* The definition of one id (a family's metric expanded: its metric, kind and real), without
 * labels; false when the id is unknown. */
bool kvl_registry_lookup(const kvl_registry_t *r, uint32_t id, kvl_series_def_t *out);
/* The family with that id, or NULL. */
const kvl_family_t *kvl_registry_family(const kvl_registry_t *r, uint32_t family);

/* The definitions waiting for the next batch, with their labels, and the families they
 * name. The arrays are the caller's (kvl_registry_new_free); the labels point into the
 * registry until kvl_registry_sent. */
typedef struct kvl_registry_new {
    kvl_series_def_t *defs;
    size_t n_defs;
    kvl_family_t *families;
    size_t n_families;
} kvl_registry_new_t;
/* Returns 0, or KVL_ENOMEM (logged) leaving the definitions waiting. */
int kvl_registry_take_new(kvl_registry_t *r, kvl_registry_new_t *nw);
void kvl_registry_new_free(kvl_registry_new_t *nw);
/* The waiting definitions went out in a batch: forgets them and their labels. */
void kvl_registry_sent(kvl_registry_t *r);

/* The format version of series.defs this agent writes and reads (older ones read too). */
#define KVL_REGISTRY_FORMAT_VERSION 1u

/* Keeps the registry in a file (the spool's series.defs), so that ids stay the same across
 * agent restarts and batches spooled by an earlier run are still understood: loads the
 * definitions and families the file holds (before any series is registered). A torn or
 * damaged tail is cut off at load. On disk: a header (8 bytes "kvlsdefs", u32 little-endian
 * format version), then SeriesDefs frames; a file without the header (the format before
 * versions) is read as version 1 and rewritten with it. A file of a newer version is refused
 * (KVL_EPROTO; the sentence logged says what to do). Returns 0 or a negative code
 * (logged). */
int kvl_registry_persist(kvl_registry_t *r, const char *path);
/* Appends the definitions and families the file lacks as one SeriesDefs frame
 * (common/wire.h), written and fdatasync'ed at once (only when new series appeared: the first
 * poll cycle, rediscoveries). The batcher calls it before a batch using them is queued.
 * Returns 0 or a negative code (logged once until it works again). */
int kvl_registry_save(kvl_registry_t *r);

#endif
