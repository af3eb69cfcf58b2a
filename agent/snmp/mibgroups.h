/*
 * mibgroups.h — polling a device's metric groups (HOST-RESOURCES-MIB, UCD-SNMP-MIB and
 * the groups defined in agent.yaml; see snmp_config.h).
 *
 * The poller owns the session, the in-flight cap and the schedule; this module decides what
 * to ask and what the answers mean. After the interface part of a poll the poller calls
 * kvl_mg_begin, then repeatedly kvl_mg_next for the next request (sent through its usual
 * path) and kvl_mg_response with its result, until kvl_mg_next returns 0. One request at a
 * time per device; the groups are taken one after the other:
 *
 *  - scalars: one GET of every metric's OID (v1: an OID answered with noSuchName is left
 *    out and the rest asked again);
 *  - tables: the group's columns walked in parallel, GETBULK (GETNEXT in v1), one varbind
 *    per column per repetition, ended per column like the interface walk; rows are keyed by
 *    the index after the column OID and named by the group's `instance` column (else the
 *    index, "1.2.3"; "#<index>" is appended to duplicates).
 *
 * Values: numbers of any SNMP integer type (and OCTET STRINGs holding a number) are
 * multiplied by `scale` and the row's `scale_by` column; counters pass through
 * kvl_counter_update with state per (instance, metric), restarted when sysUpTime goes back.
 * A group the device does not have (no value at all: noSuchObject, an empty table, v1
 * noSuchName) is logged once at info and skipped until the next interface discovery. A
 * timeout or refusal ends the groups of this poll (logged once until they work again); it
 * never marks the device down.
 *
 * Each instance is reported as one family (kvl_batcher_instance, scope KVL_SCOPE_GROUP,
 * family name = group name, instance "" for scalars) and one sample group per instance.
 */
#ifndef KVL_MIBGROUPS_H
#define KVL_MIBGROUPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "batcher.h"
#include "snmp.h"
#include "snmp_config.h"

typedef struct kvl_mg_dev kvl_mg_dev_t;

/* State for one device's groups (cfg->mgroups; cfg and b must outlive it). Returns NULL
 * when the device has no groups or memory ran out (logged). */
kvl_mg_dev_t *kvl_mg_dev_new(const kvl_device_cfg_t *cfg, uint32_t interval_s, kvl_batcher_t *b);
/* NULL-safe. */
void kvl_mg_dev_free(kvl_mg_dev_t *m);
/* A reload: the device's settings now live at cfg, the same as before in every setting
 * (kvl_device_cfg_same), so its groups' state is kept. NULL-safe. */
void kvl_mg_dev_set_cfg(kvl_mg_dev_t *m, const kvl_device_cfg_t *cfg);

/* Starts a pass over the groups. rediscovered: the poll rediscovered the interfaces (groups
 * found missing are asked again); uptime: sysUpTime of this poll, if known. */
void kvl_mg_begin(kvl_mg_dev_t *m, bool v1, bool rediscovered, bool have_uptime, uint32_t uptime);

/* Writes the next request into oids (room for max) with its operation and GETBULK size (at
 * most max_reps). Returns the number of OIDs, 0 when the pass is complete. */
size_t kvl_mg_next(kvl_mg_dev_t *m, kvl_snmp_oid_t *oids, size_t max, uint32_t max_reps,
                   kvl_snmp_op_t *op, uint32_t *reps);

/* Takes the result of the request kvl_mg_next made. */
void kvl_mg_response(kvl_mg_dev_t *m, const kvl_snmp_result_t *res);

#endif
