/*
 * snmp_oid.c — kaaval's own OID values (kvl_snmp_oid_t, see snmp_types.h): set, compare, prefix
 * test, format. Kept apart from snmp.c, which wraps net-snmp, so tests that replace the
 * session layer with a fake still use these real helpers.
 */
#include <stdio.h>
#include <string.h>

#include "kvl.h"
#include "snmp_types.h"

int kvl_snmp_oid_set(kvl_snmp_oid_t *o, const uint32_t *sub, size_t n)
{
    if (n > KVL_SNMP_MAX_OID_LEN) {
        return KVL_EINVAL;
    }
    memcpy(o->sub, sub, n * sizeof(sub[0]));
    o->len = n;
    return 0;
}

bool kvl_snmp_oid_has_prefix(const kvl_snmp_oid_t *o, const kvl_snmp_oid_t *prefix)
{
    return o->len >= prefix->len &&
           memcmp(o->sub, prefix->sub, prefix->len * sizeof(o->sub[0])) == 0;
}

int kvl_snmp_oid_cmp(const kvl_snmp_oid_t *a, const kvl_snmp_oid_t *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    for (size_t i = 0; i < n; i++) {
        if (a->sub[i] != b->sub[i]) {
            return a->sub[i] < b->sub[i] ? -1 : 1;
        }
    }
    return a->len < b->len ? -1 : (a->len > b->len ? 1 : 0);
}

char *kvl_snmp_oid_format(const kvl_snmp_oid_t *o, char *buf, size_t buflen)
{
    size_t used = 0;
    if (buflen == 0) {
        return buf;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < o->len && used < buflen; i++) {
        int n = snprintf(buf + used, buflen - used, ".%u", (unsigned)o->sub[i]);
        if (n < 0) {
            break;
        }
        used += (size_t)n;
    }
    return buf;
}
