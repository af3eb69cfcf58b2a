/*
 * snmp_mib.h — MIB object names to OIDs at configuration time (snmp_mib.c, with net-snmp's
 * MIB parser). Used while the configuration is read, never on the loop.
 */
#ifndef KVL_SNMP_MIB_H
#define KVL_SNMP_MIB_H

#include <stdbool.h>
#include <stddef.h>

#include "snmp_types.h"

/* MIB names (agent/snmp/snmp_mib.c, net-snmp's MIB parser). Nothing is loaded until the first
 * call, and only from the folders given: never the system's MIB path or module list.
 *
 * Resolves `name` ("MODULE::object", a bare "object", either with a ".1.2" instance suffix,
 * or a numeric ".1.3.6..." which needs no MIB) into o. Folders are searched in order; a
 * bare name loads every module in them the first time one is needed. *suffixed tells
 * whether the name carried an instance suffix. Returns 0, or KVL_EINVAL with the reason
 * (the name and the folders searched) in err. */
int kvl_snmp_mib_resolve(const char *const *dirs, size_t n_dirs, const char *name,
                         kvl_snmp_oid_t *o, bool *suffixed, char *err, size_t errlen);
/* Frees every MIB module loaded (the next resolve starts over). Safe to call always. */
void kvl_snmp_mib_release(void);

/* Names for what arrives on the trap port, taken from every module in the folders given
 * (at start, before the loop runs; the parser's tree is released afterwards, this table is
 * all that stays): each notification (NOTIFICATION-TYPE, and TRAP-TYPE in the v2 form
 * enterprise.0.specific of RFC 3584) and each object a notification's OBJECTS or
 * VARIABLES clause lists. About 60 bytes per name. */
typedef struct kvl_snmp_mib_names kvl_snmp_mib_names_t;
/* Returns 0 and sets *out (an empty table when the folders name no notification), or
 * KVL_ENOMEM with the reason in err. */
int kvl_snmp_mib_names_load(const char *const *dirs, size_t n_dirs, kvl_snmp_mib_names_t **out,
                            char *err, size_t errlen);
/* The notifications known. */
size_t kvl_snmp_mib_names_count(const kvl_snmp_mib_names_t *t);
/* The name of the notification o is ("linkDown"), or NULL when none is known. */
const char *kvl_snmp_mib_notification(const kvl_snmp_mib_names_t *t, const kvl_snmp_oid_t *o);
/* The name of the object o is an instance of (the longest known prefix of o), with
 * *prefix_len set to that object's length; NULL when none is known. */
const char *kvl_snmp_mib_object(const kvl_snmp_mib_names_t *t, const kvl_snmp_oid_t *o,
                                size_t *prefix_len);
/* NULL-safe. */
void kvl_snmp_mib_names_free(kvl_snmp_mib_names_t *t);

#endif
