/*
 * nbrwalk.c — LLDP and CDP neighbour rows from their tables' varbinds, value rendering and the
 * local port's interface (see nbrwalk.h for the rules).
 *
 * Rows live in a sorted array (binary search, insertion in place): walks come in index
 * order, so an insertion is nearly always at the end, and KVL_NBR_MAX bounds the rest.
 */
#include "nbrwalk.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "snmp_text.h"

static const uint32_t lldp_loc_port[] = {1, 0, 8802, 1, 1, 2, 1, 3, 7, 1};
static const uint32_t lldp_rem[] = {1, 0, 8802, 1, 1, 2, 1, 4, 1, 1};
static const uint32_t lldp_man[] = {1, 0, 8802, 1, 1, 2, 1, 4, 2, 1};
static const uint32_t cdp_cache[] = {1, 3, 6, 1, 4, 1, 9, 9, 23, 1, 2, 1, 1};
static const uint32_t lldp_loc[] = {1, 0, 8802, 1, 1, 2, 1, 3}; /* lldpLocalSystemData */

static const struct {
    const uint32_t *sub;
    size_t len;
} tables[KVL_NBR_TABLES] = {
    [KVL_NBR_T_LOCPORT] = {lldp_loc_port, KVL_ARRAY_SIZE(lldp_loc_port)},
    [KVL_NBR_T_REM] = {lldp_rem, KVL_ARRAY_SIZE(lldp_rem)},
    [KVL_NBR_T_MANADDR] = {lldp_man, KVL_ARRAY_SIZE(lldp_man)},
    [KVL_NBR_T_CDP] = {cdp_cache, KVL_ARRAY_SIZE(cdp_cache)},
};

void kvl_nbr_table_oid(kvl_snmp_oid_t *o, kvl_nbr_table_t t)
{
    KVL_ASSERT((int)t >= 0 && t < KVL_NBR_TABLES);
    kvl_snmp_oid_set(o, tables[t].sub, tables[t].len);
}

const char *kvl_nbr_proto_name(int proto)
{
    return proto == KVL_NBR_CDP ? "cdp" : "lldp";
}

/* --- values ---------------------------------------------------------------------------------- */

/* Cuts s (NUL-terminated, valid UTF-8) to at most max bytes at a character boundary and drops
 * trailing spaces. */
static void cut_text(char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((uint8_t)s[n] & 0xc0) == 0x80) {
            n--; /* s[n] continues a character: cut before that character */
        }
    }
    while (n > 0 && s[n - 1] == ' ') {
        n--;
    }
    s[n] = '\0';
}

/* The cleaned text of an OCTET STRING cut to max bytes; NULL when out of memory. */
static char *text_of(const uint8_t *s, size_t n, size_t max)
{
    char *t = kvl_snmp_text_clean(s, n);
    if (t != NULL) {
        cut_text(t, max);
    }
    return t;
}

/* "aa:bb:..." for n bytes (as many as fit KVL_NBR_TEXT_MAX). */
static char *hex_of(const uint8_t *s, size_t n)
{
    size_t max = (KVL_NBR_TEXT_MAX + 1) / 3;
    n = n > max ? max : n;
    char *out = malloc(n * 3 + 1);
    if (out == NULL) {
        return NULL;
    }
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 3 * i, 4, i + 1 < n ? "%02x:" : "%02x", s[i]);
    }
    return out;
}

/* An IANA address family (1 IPv4, 2 IPv6) and its bytes as an address; NULL when not one. */
static char *netaddr_of(const uint8_t *s, size_t n)
{
    char buf[INET6_ADDRSTRLEN];
    if (n == 5 && s[0] == 1) {
        inet_ntop(AF_INET, s + 1, buf, sizeof(buf));
    } else if (n == 17 && s[0] == 2) {
        inet_ntop(AF_INET6, s + 1, buf, sizeof(buf));
    } else {
        return NULL;
    }
    return strdup(buf);
}

char *kvl_nbr_render_id(bool chassis, int subtype, const uint8_t *s, size_t n)
{
    int mac = chassis ? 4 : 3, net = chassis ? 5 : 4;
    if (subtype == mac && n == 6) {
        return hex_of(s, n);
    }
    if (subtype == net && (n == 5 || n == 17)) {
        char *a = netaddr_of(s, n);
        if (a != NULL) {
            return a;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e) {
            return hex_of(s, n);
        }
    }
    return text_of(s, n, KVL_NBR_TEXT_MAX);
}

int kvl_nbr_manaddr_index(const uint32_t *idx, size_t n, uint32_t *port, uint32_t *rem,
                          uint32_t *subtype, char *out, size_t outlen)
{
    if (n < 5 || idx[4] != n - 5 || n - 5 > 32 || outlen < INET6_ADDRSTRLEN) {
        return KVL_EINVAL;
    }
    uint8_t a[32];
    size_t alen = n - 5;
    for (size_t i = 0; i < alen; i++) {
        if (idx[5 + i] > 255) {
            return KVL_EINVAL;
        }
        a[i] = (uint8_t)idx[5 + i];
    }
    *port = idx[1];
    *rem = idx[2];
    *subtype = idx[3];
    if (idx[3] == 1 && alen == 4) {
        inet_ntop(AF_INET, a, out, (socklen_t)outlen);
    } else if (idx[3] == 2 && alen == 16) {
        inet_ntop(AF_INET6, a, out, (socklen_t)outlen);
    } else {
        size_t o = 0;
        out[0] = '\0';
        for (size_t i = 0; i < alen && o + 4 <= outlen; i++) {
            o += (size_t)snprintf(out + o, 4, i + 1 < alen ? "%02x:" : "%02x", a[i]);
        }
    }
    return 0;
}

/* --- rows ------------------------------------------------------------------------------------ */

static int key_cmp(const kvl_nbr_t *r, uint8_t proto, uint32_t port, uint32_t rem)
{
    if (r->proto != proto) {
        return r->proto < proto ? -1 : 1;
    }
    if (r->local_port != port) {
        return r->local_port < port ? -1 : 1;
    }
    if (r->rem_index != rem) {
        return r->rem_index < rem ? -1 : 1;
    }
    return 0;
}

/* The row of that key, added in order when new (create); NULL when absent, beyond the bound
 * (counted) or out of memory (*nomem). */
static kvl_nbr_t *row_get(kvl_nbrs_t *ns, uint8_t proto, uint32_t port, uint32_t rem, bool create,
                          bool *nomem)
{
    size_t lo = 0, hi = ns->n;
    if (hi > 0 && key_cmp(&ns->v[hi - 1], proto, port, rem) < 0) {
        lo = hi; /* the usual case: rows come in index order */
    }
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = key_cmp(&ns->v[mid], proto, port, rem);
        if (c == 0) {
            return &ns->v[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (!create) {
        return NULL;
    }
    if (ns->n >= KVL_NBR_MAX) {
        ns->dropped++;
        return NULL;
    }
    if (ns->n == ns->cap) {
        size_t cap = ns->cap != 0 ? ns->cap * 2 : 16;
        kvl_nbr_t *v = realloc(ns->v, cap * sizeof(*v));
        if (v == NULL) {
            *nomem = true;
            return NULL;
        }
        ns->v = v;
        ns->cap = cap;
    }
    memmove(&ns->v[lo + 1], &ns->v[lo], (ns->n - lo) * sizeof(ns->v[0]));
    ns->n++;
    kvl_nbr_t *r = &ns->v[lo];
    memset(r, 0, sizeof(*r));
    r->proto = proto;
    r->local_port = port;
    r->rem_index = rem;
    r->chassis_subtype = r->port_subtype = -1;
    return r;
}

static kvl_nbr_port_t *port_get(kvl_nbrs_t *ns, uint32_t num, bool create, bool *nomem)
{
    size_t lo = 0, hi = ns->n_ports;
    if (hi > 0 && ns->ports[hi - 1].num < num) {
        lo = hi;
    }
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (ns->ports[mid].num == num) {
            return &ns->ports[mid];
        }
        if (ns->ports[mid].num < num) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (!create) {
        return NULL;
    }
    if (ns->n_ports >= KVL_NBR_PORTS_MAX) {
        ns->dropped++;
        return NULL;
    }
    if (ns->n_ports == ns->cap_ports) {
        size_t cap = ns->cap_ports != 0 ? ns->cap_ports * 2 : 32;
        kvl_nbr_port_t *v = realloc(ns->ports, cap * sizeof(*v));
        if (v == NULL) {
            *nomem = true;
            return NULL;
        }
        ns->ports = v;
        ns->cap_ports = cap;
    }
    memmove(&ns->ports[lo + 1], &ns->ports[lo], (ns->n_ports - lo) * sizeof(ns->ports[0]));
    ns->n_ports++;
    kvl_nbr_port_t *p = &ns->ports[lo];
    memset(p, 0, sizeof(*p));
    p->num = num;
    p->id_subtype = -1;
    return p;
}

/* Replaces *slot with v (NULL: out of memory, returns false). */
static bool keep(char **slot, char *v)
{
    if (v == NULL) {
        return false;
    }
    free(*slot);
    *slot = v;
    return true;
}

static bool is_octets(const kvl_snmp_vb_t *vb)
{
    return vb->type == KVL_SNMP_T_OCTETS;
}

/* An INTEGER-like value in 0..255 (subtypes, address types); -1 otherwise. */
static int small_int(const kvl_snmp_vb_t *vb)
{
    if (vb->type == KVL_SNMP_T_INTEGER && vb->integer >= 0 && vb->integer <= 255) {
        return (int)vb->integer;
    }
    if ((vb->type == KVL_SNMP_T_GAUGE32 || vb->type == KVL_SNMP_T_COUNTER32) && vb->u <= 255) {
        return (int)vb->u;
    }
    return -1;
}

static int take_locport(kvl_nbrs_t *ns, uint32_t col, const uint32_t *idx, size_t n,
                        const kvl_snmp_vb_t *vb)
{
    if (n != 1 || (col < 2 || col > 4)) {
        return 0;
    }
    bool nomem = false;
    kvl_nbr_port_t *p = port_get(ns, idx[0], true, &nomem);
    if (p == NULL) {
        return nomem ? KVL_ENOMEM : 0;
    }
    if (col == 2) {
        p->id_subtype = small_int(vb);
    } else if (!is_octets(vb)) {
        return 0;
    } else if (col == 3) {
        /* a local port id is matched against interface names: its text as a name */
        return keep(&p->id, kvl_nbr_render_id(false, p->id_subtype, vb->str, vb->str_len))
                   ? 0
                   : KVL_ENOMEM;
    } else {
        return keep(&p->desc, text_of(vb->str, vb->str_len, KVL_NBR_TEXT_MAX)) ? 0 : KVL_ENOMEM;
    }
    return 0;
}

static int take_rem(kvl_nbrs_t *ns, uint32_t col, const uint32_t *idx, size_t n,
                    const kvl_snmp_vb_t *vb)
{
    if (col < 4 || col > 10 || n == 0) {
        return 0;
    }
    uint32_t port = n == 3 ? idx[1] : 0, rem = idx[n - 1];
    bool nomem = false;
    kvl_nbr_t *r = row_get(ns, KVL_NBR_LLDP, port, rem, true, &nomem);
    if (r == NULL) {
        return nomem ? KVL_ENOMEM : 0;
    }
    if (col == 4 || col == 6) {
        int st = small_int(vb);
        if (col == 4) {
            r->chassis_subtype = st;
        } else {
            r->port_subtype = st;
        }
        return 0;
    }
    if (!is_octets(vb)) {
        return 0;
    }
    char *v;
    char **slot;
    switch (col) {
    case 5:
        slot = &r->chassis_id;
        v = kvl_nbr_render_id(true, r->chassis_subtype, vb->str, vb->str_len);
        break;
    case 7:
        slot = &r->port_id;
        v = kvl_nbr_render_id(false, r->port_subtype, vb->str, vb->str_len);
        break;
    case 8:
        slot = &r->port_desc;
        v = text_of(vb->str, vb->str_len, KVL_NBR_TEXT_MAX);
        break;
    case 9:
        slot = &r->sys_name;
        v = text_of(vb->str, vb->str_len, KVL_NBR_TEXT_MAX);
        break;
    default: /* 10 */
        slot = &r->sys_desc;
        v = text_of(vb->str, vb->str_len, KVL_NBR_DESC_MAX);
        break;
    }
    return keep(slot, v) ? 0 : KVL_ENOMEM;
}

static int take_manaddr(kvl_nbrs_t *ns, const uint32_t *idx, size_t n)
{
    uint32_t port, rem, subtype;
    char addr[INET6_ADDRSTRLEN + 64];
    if (kvl_nbr_manaddr_index(idx, n, &port, &rem, &subtype, addr, sizeof(addr)) != 0 ||
        (subtype != 1 && subtype != 2) || (subtype == 1 && n - 5 != 4) ||
        (subtype == 2 && n - 5 != 16)) {
        return 0;
    }
    bool nomem = false;
    kvl_nbr_t *r = row_get(ns, KVL_NBR_LLDP, port, rem, false, &nomem);
    if (r == NULL) {
        return 0; /* an address of a neighbour the remote table does not have */
    }
    /* the first IPv4 address, else the first IPv6 one */
    if (r->mgmt_family == 0 || (r->mgmt_family == 2 && subtype == 1)) {
        if (!keep(&r->mgmt_addr, strdup(addr))) {
            return KVL_ENOMEM;
        }
        r->mgmt_family = (uint8_t)subtype;
    }
    return 0;
}

static int take_cdp(kvl_nbrs_t *ns, uint32_t col, const uint32_t *idx, size_t n,
                    const kvl_snmp_vb_t *vb)
{
    if (n != 2 || (col != 3 && col != 4 && col != 6 && col != 7 && col != 8)) {
        return 0;
    }
    bool nomem = false;
    kvl_nbr_t *r = row_get(ns, KVL_NBR_CDP, idx[0], idx[1], true, &nomem);
    if (r == NULL) {
        return nomem ? KVL_ENOMEM : 0;
    }
    if (col == 3) {
        r->mgmt_family = small_int(vb) == 1 ? 1 : 0xff; /* ip(1); 0xff: another type */
        if (r->mgmt_family != 1) {
            free(r->mgmt_addr);
            r->mgmt_addr = NULL;
        }
        return 0;
    }
    if (!is_octets(vb)) {
        return 0;
    }
    switch (col) {
    case 4:
        if (r->mgmt_family == 1 && vb->str_len == 4) {
            char a[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, vb->str, a, sizeof(a));
            return keep(&r->mgmt_addr, strdup(a)) ? 0 : KVL_ENOMEM;
        }
        return 0;
    case 6: {
        char *id = text_of(vb->str, vb->str_len, KVL_NBR_TEXT_MAX);
        if (id == NULL || !keep(&r->sys_name, strdup(id))) {
            free(id);
            return KVL_ENOMEM;
        }
        return keep(&r->chassis_id, id) ? 0 : KVL_ENOMEM;
    }
    case 7:
        return keep(&r->port_id, text_of(vb->str, vb->str_len, KVL_NBR_TEXT_MAX)) ? 0 : KVL_ENOMEM;
    default: /* 8 */
        return keep(&r->sys_desc, text_of(vb->str, vb->str_len, KVL_NBR_DESC_MAX)) ? 0 : KVL_ENOMEM;
    }
}

int kvl_nbrs_take(kvl_nbrs_t *ns, kvl_nbr_table_t t, const kvl_snmp_vb_t *vb)
{
    KVL_ASSERT((int)t >= 0 && t < KVL_NBR_TABLES);
    size_t base = tables[t].len;
    if (vb->oid.len < base + 2) {
        return 0; /* the entry itself or a column without an index */
    }
    uint32_t col = vb->oid.sub[base];
    const uint32_t *idx = vb->oid.sub + base + 1;
    size_t n = vb->oid.len - base - 1;
    switch (t) {
    case KVL_NBR_T_LOCPORT:
        return take_locport(ns, col, idx, n, vb);
    case KVL_NBR_T_REM:
        return take_rem(ns, col, idx, n, vb);
    case KVL_NBR_T_MANADDR:
        return take_manaddr(ns, idx, n);
    default:
        return take_cdp(ns, col, idx, n, vb);
    }
}

static void free_row(kvl_nbr_t *r)
{
    free(r->chassis_id);
    free(r->port_id);
    free(r->port_desc);
    free(r->sys_name);
    free(r->sys_desc);
    free(r->mgmt_addr);
}

void kvl_nbr_local_oids(kvl_snmp_oid_t *o)
{
    uint32_t sub[KVL_ARRAY_SIZE(lldp_loc) + 2];
    memcpy(sub, lldp_loc, sizeof(lldp_loc));
    sub[KVL_ARRAY_SIZE(lldp_loc) + 1] = 0;
    for (uint32_t i = 0; i < KVL_NBR_LOCAL_N; i++) {
        sub[KVL_ARRAY_SIZE(lldp_loc)] = i + 1; /* .1 subtype, .2 id, .3 sysName */
        kvl_snmp_oid_set(&o[i], sub, KVL_ARRAY_SIZE(sub));
    }
}

int kvl_nbrs_take_local(kvl_nbrs_t *ns, const kvl_snmp_vb_t *vb)
{
    size_t base = KVL_ARRAY_SIZE(lldp_loc);
    if (vb->oid.len != base + 2 || memcmp(vb->oid.sub, lldp_loc, sizeof(lldp_loc)) != 0 ||
        vb->oid.sub[base + 1] != 0) {
        return 0;
    }
    switch (vb->oid.sub[base]) {
    case 1:
        ns->loc_chassis_subtype = small_int(vb);
        return 0;
    case 2:
        return is_octets(vb) &&
                       !keep(&ns->loc_chassis_id,
                             kvl_nbr_render_id(true, ns->loc_chassis_subtype, vb->str, vb->str_len))
                   ? KVL_ENOMEM
                   : 0;
    case 3:
        return is_octets(vb) &&
                       !keep(&ns->loc_sys_name, text_of(vb->str, vb->str_len, KVL_NBR_TEXT_MAX))
                   ? KVL_ENOMEM
                   : 0;
    default:
        return 0;
    }
}

void kvl_nbrs_clear(kvl_nbrs_t *ns)
{
    for (size_t i = 0; i < ns->n; i++) {
        free_row(&ns->v[i]);
    }
    for (size_t i = 0; i < ns->n_ports; i++) {
        free(ns->ports[i].id);
        free(ns->ports[i].desc);
    }
    ns->n = ns->n_ports = 0;
    ns->dropped = 0;
    free(ns->loc_chassis_id);
    free(ns->loc_sys_name);
    ns->loc_chassis_id = ns->loc_sys_name = NULL;
    ns->loc_chassis_subtype = -1;
}

void kvl_nbrs_free(kvl_nbrs_t *ns)
{
    kvl_nbrs_clear(ns);
    free(ns->v);
    free(ns->ports);
    *ns = (kvl_nbrs_t){0};
}

/* --- the local interface --------------------------------------------------------------------- */

/* The lowest ifIndex whose string column col equals s. */
static bool match_col(const kvl_ifrows_t *rows, int col, const char *s, uint32_t *ifindex)
{
    for (size_t i = 0; i < rows->n; i++) { /* rows are in ifIndex order */
        const char *v = kvl_ifrow_str(&rows->v[i], col);
        if (v != NULL && strcmp(v, s) == 0) {
            *ifindex = rows->v[i].ifindex;
            return true;
        }
    }
    return false;
}

bool kvl_nbr_local_ifindex(const kvl_nbrs_t *ns, const kvl_nbr_t *nb, const kvl_ifrows_t *rows,
                           uint32_t *ifindex)
{
    if (nb->local_port == 0) {
        return false;
    }
    if (nb->proto == KVL_NBR_LLDP) {
        bool nomem = false;
        kvl_nbr_port_t *p = port_get((kvl_nbrs_t *)ns, nb->local_port, false, &nomem);
        const char *keys[2] = {p != NULL ? p->id : NULL, p != NULL ? p->desc : NULL};
        static const int cols[3] = {X_NAME, C_DESCR, X_ALIAS};
        for (size_t k = 0; k < 2; k++) {
            if (keys[k] == NULL || keys[k][0] == '\0') {
                continue;
            }
            for (size_t c = 0; c < 3; c++) {
                if (match_col(rows, cols[c], keys[k], ifindex)) {
                    return true;
                }
            }
        }
    }
    for (size_t i = 0; i < rows->n; i++) {
        if (rows->v[i].ifindex == nb->local_port) {
            *ifindex = nb->local_port;
            return true;
        }
    }
    return false;
}
