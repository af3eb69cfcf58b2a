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

#endif
