/*
 * ifwalk.c — the interface MIB side of a poll (see ifwalk.h): the IF-MIB columns and
 * counters, the parallel column walk, rows keyed by ifIndex, naming and the filters.
 *
 * The walk asks every active column's cursor in one request (GETBULK or GETNEXT: the poller
 * chooses and sends), so an interface's in and out counters travel in one PDU. In the
 * answer, varbind k belongs to the request's column k modulo the number asked. Values land
 * in rows keyed by ifIndex; the interface list is every index seen.
 */
#include "ifwalk.h"

#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "log.h"
#include "snmp_text.h"

#define MOD "snmp"

typedef struct column {
    uint8_t xtable; /* 0: ifTable .1.3.6.1.2.1.2.2.1, 1: ifXTable .1.3.6.1.2.1.31.1.1.1 */
    uint8_t sub;    /* column number */
    int8_t str;     /* index into row_t.str, or -1 for a number */
} column_t;

static const column_t columns[N_COLS] = {
    [C_DESCR] = {0, 2, 0},          [C_TYPE] = {0, 3, -1},          [C_SPEED] = {0, 5, -1},
    [C_ADMIN] = {0, 7, -1},         [C_OPER] = {0, 8, -1},          [C_IN_OCT] = {0, 10, -1},
    [C_IN_UCAST] = {0, 11, -1},     [C_IN_DISC] = {0, 13, -1},      [C_IN_ERR] = {0, 14, -1},
    [C_OUT_OCT] = {0, 16, -1},      [C_OUT_UCAST] = {0, 17, -1},    [C_OUT_DISC] = {0, 19, -1},
    [C_OUT_ERR] = {0, 20, -1},      [X_NAME] = {1, 1, 1},           [X_IN_MCAST] = {1, 2, -1},
    [X_IN_BCAST] = {1, 3, -1},      [X_OUT_MCAST] = {1, 4, -1},     [X_OUT_BCAST] = {1, 5, -1},
    [X_HC_IN_OCT] = {1, 6, -1},     [X_HC_IN_UCAST] = {1, 7, -1},   [X_HC_IN_MCAST] = {1, 8, -1},
    [X_HC_IN_BCAST] = {1, 9, -1},   [X_HC_OUT_OCT] = {1, 10, -1},   [X_HC_OUT_UCAST] = {1, 11, -1},
    [X_HC_OUT_MCAST] = {1, 12, -1}, [X_HC_OUT_BCAST] = {1, 13, -1}, [X_HIGH_SPEED] = {1, 15, -1},
    [X_ALIAS] = {1, 18, 2},         [X_DISC_TIME] = {1, 19, -1},    [C_PHYS] = {0, 6, 3},
};

/* "aa:bb:cc" for bytes (at most 64 of them), "" for none; NULL when out of memory. */
static char *hex_bytes(const uint8_t *b, size_t n)
{
    n = n > 64 ? 64 : n;
    char *s = malloc(n * 3 + 1);
    if (s == NULL) {
        return NULL;
    }
    s[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        snprintf(s + 3 * i, 4, i + 1 < n ? "%02x:" : "%02x", b[i]);
    }
    return s;
}

static const uint32_t if_entry[] = {1, 3, 6, 1, 2, 1, 2, 2, 1};
static const uint32_t ifx_entry[] = {1, 3, 6, 1, 2, 1, 31, 1, 1, 1};

const counter_def_t kvl_ifwalk_counters[N_CTR] = {
    {"in_octets", X_HC_IN_OCT, C_IN_OCT, true},
    {"out_octets", X_HC_OUT_OCT, C_OUT_OCT, true},
    {"in_ucast_pkts", X_HC_IN_UCAST, C_IN_UCAST, false},
    {"out_ucast_pkts", X_HC_OUT_UCAST, C_OUT_UCAST, false},
    {"in_mcast_pkts", X_HC_IN_MCAST, X_IN_MCAST, false},
    {"out_mcast_pkts", X_HC_OUT_MCAST, X_OUT_MCAST, false},
    {"in_bcast_pkts", X_HC_IN_BCAST, X_IN_BCAST, false},
    {"out_bcast_pkts", X_HC_OUT_BCAST, X_OUT_BCAST, false},
    {"in_errors", -1, C_IN_ERR, false},
    {"out_errors", -1, C_OUT_ERR, false},
    {"in_discards", -1, C_IN_DISC, false},
    {"out_discards", -1, C_OUT_DISC, false},
};

/* Columns read between discoveries when the interface has them (besides the counters). */
static const int state_cols[] = {C_OPER, C_ADMIN, C_SPEED, X_HIGH_SPEED, X_DISC_TIME};

/* --- column OIDs ----------------------------------------------------------------------------- */

/* Writes the OID of column col (its entry and column number) into o. */
static void column_oid(kvl_snmp_oid_t *o, int col)
{
    const uint32_t *entry = columns[col].xtable ? ifx_entry : if_entry;
    size_t len = columns[col].xtable ? KVL_ARRAY_SIZE(ifx_entry) : KVL_ARRAY_SIZE(if_entry);
    kvl_snmp_oid_set(o, entry, len);
    o->sub[len] = columns[col].sub;
    o->len = len + 1;
}

void kvl_ifwalk_instance_oid(kvl_snmp_oid_t *o, int col, uint32_t ifindex)
{
    column_oid(o, col);
    o->sub[o->len] = ifindex;
    o->len++;
}

/* --- rows ------------------------------------------------------------------------------------ */

row_t *kvl_ifrows_find(kvl_ifrows_t *rows, uint32_t ifindex)
{
    size_t lo = 0, hi = rows->n;
    if (hi > 0 && rows->v[hi - 1].ifindex < ifindex) {
        lo = hi; /* the usual case: columns come in index order */
    }
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (rows->v[mid].ifindex == ifindex) {
            return &rows->v[mid];
        }
        if (rows->v[mid].ifindex < ifindex) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (rows->n == rows->cap) {
        size_t cap = rows->cap != 0 ? rows->cap * 2 : 32;
        row_t *v = realloc(rows->v, cap * sizeof(*v));
        if (v == NULL) {
            return NULL;
        }
        rows->v = v;
        rows->cap = cap;
    }
    memmove(&rows->v[lo + 1], &rows->v[lo], (rows->n - lo) * sizeof(rows->v[0]));
    rows->n++;
    row_t *r = &rows->v[lo];
    memset(r, 0, sizeof(*r));
    r->ifindex = ifindex;
    return r;
}

void kvl_ifrows_clear(kvl_ifrows_t *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        for (size_t k = 0; k < KVL_ARRAY_SIZE(rows->v[i].str); k++) {
            free(rows->v[i].str[k]);
        }
    }
    rows->n = 0;
}

void kvl_ifrows_free(kvl_ifrows_t *rows)
{
    kvl_ifrows_clear(rows);
    free(rows->v);
    rows->v = NULL;
    rows->cap = 0;
}

bool kvl_ifrows_store(kvl_ifrows_t *rows, int col, uint32_t ifindex, const kvl_snmp_vb_t *vb,
                      int64_t t)
{
    uint64_t v = 0;
    bool is64 = false;
    if (columns[col].str >= 0) {
        if (vb->type != KVL_SNMP_T_OCTETS) {
            return true;
        }
    } else {
        switch (vb->type) {
        case KVL_SNMP_T_INTEGER:
            if (vb->integer < 0) {
                return true;
            }
            v = (uint64_t)vb->integer;
            break;
        case KVL_SNMP_T_COUNTER32:
        case KVL_SNMP_T_GAUGE32:
        case KVL_SNMP_T_TIMETICKS:
            v = vb->u;
            break;
        case KVL_SNMP_T_COUNTER64:
            v = vb->u;
            is64 = true;
            break;
        default:
            return true; /* not a number: ignore the value */
        }
    }
    row_t *r = kvl_ifrows_find(rows, ifindex);
    if (r == NULL) {
        return false;
    }
    if (columns[col].str >= 0) {
        char *s = col == C_PHYS ? hex_bytes(vb->str, vb->str_len)
                                : kvl_snmp_text_clean(vb->str, vb->str_len);
        if (s == NULL) {
            return false;
        }
        free(r->str[columns[col].str]);
        r->str[columns[col].str] = s;
    } else {
        r->val[col] = v;
        if (is64) {
            r->is64 |= 1u << col;
        }
    }
    r->present |= 1u << col;
    if (r->t_first == 0) {
        r->t_first = t;
    }
    if (col == C_IN_OCT) {
        r->t_in32 = t;
    } else if (col == X_HC_IN_OCT) {
        r->t_in64 = t;
    }
    return true;
}

bool kvl_ifrow_has(const row_t *r, int col)
{
    return col >= 0 && (r->present & (1u << col)) != 0;
}

const char *kvl_ifrow_str(const row_t *r, int col)
{
    const char *s = kvl_ifrow_has(r, col) ? r->str[columns[col].str] : NULL;
    return s != NULL && s[0] != '\0' ? s : NULL;
}

bool kvl_ifrow_speed(const row_t *r, uint64_t *bps)
{
    bool have_high = kvl_ifrow_has(r, X_HIGH_SPEED);
    bool have_speed = kvl_ifrow_has(r, C_SPEED);
    if (have_high && (!have_speed || r->val[C_SPEED] == 4294967295u)) {
        *bps = r->val[X_HIGH_SPEED] * 1000000u;
        return true;
    }
    if (have_speed) {
        *bps = r->val[C_SPEED];
        return true;
    }
    return false;
}

int kvl_ifrow_counter_col(const row_t *r, size_t m)
{
    const counter_def_t *cd = &kvl_ifwalk_counters[m];
    return kvl_ifrow_has(r, cd->hc) ? cd->hc : (kvl_ifrow_has(r, cd->lo) ? cd->lo : -1);
}

uint32_t kvl_ifrow_value_cols(const row_t *r)
{
    uint32_t cols = 0;
    for (size_t m = 0; m < N_CTR; m++) {
        int col = kvl_ifrow_counter_col(r, m);
        if (col >= 0) {
            cols |= 1u << col;
        }
    }
    for (size_t i = 0; i < KVL_ARRAY_SIZE(state_cols); i++) {
        if (kvl_ifrow_has(r, state_cols[i])) {
            cols |= 1u << state_cols[i];
        }
    }
    return cols;
}

/* --- names ----------------------------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c != NULL) {
        memcpy(c, s, n);
    }
    return c;
}

static int cmp_named(const void *a, const void *b)
{
    const named_row_t *x = a;
    const named_row_t *y = b;
    int c = strcmp(x->name, y->name);
    if (c != 0) {
        return c;
    }
    return x->r->ifindex < y->r->ifindex ? -1 : (x->r->ifindex > y->r->ifindex ? 1 : 0);
}

void kvl_ifwalk_free_named(named_row_t *nr, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(nr[i].name);
        free(nr[i].base);
    }
    free(nr);
}

named_row_t *kvl_ifwalk_name_rows(kvl_ifrows_t *rows)
{
    named_row_t *nr = calloc(rows->n > 0 ? rows->n : 1, sizeof(*nr));
    if (nr == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < rows->n; i++) {
        row_t *r = &rows->v[i];
        const char *name = kvl_ifrow_str(r, X_NAME);
        char buf[32];
        if (name == NULL) {
            name = kvl_ifrow_str(r, C_DESCR);
        }
        if (name == NULL) {
            snprintf(buf, sizeof(buf), "if%" PRIu32, r->ifindex);
            name = buf;
        }
        nr[i].r = r;
        nr[i].name = xstrdup(name);
        nr[i].base = xstrdup(name);
        if (nr[i].name == NULL || nr[i].base == NULL) {
            kvl_ifwalk_free_named(nr, rows->n);
            return NULL;
        }
    }
    qsort(nr, rows->n, sizeof(*nr), cmp_named);
    for (size_t i = 0; i < rows->n;) {
        size_t j = i + 1;
        while (j < rows->n && strcmp(nr[j].name, nr[i].name) == 0) {
            j++;
        }
        if (j - i > 1) {
            for (size_t k = i; k < j; k++) {
                size_t len = strlen(nr[k].name) + 16;
                char *n = malloc(len);
                if (n == NULL) {
                    kvl_ifwalk_free_named(nr, rows->n);
                    return NULL;
                }
                snprintf(n, len, "%s#%" PRIu32, nr[k].name, nr[k].r->ifindex);
                free(nr[k].name);
                nr[k].name = n;
            }
        }
        i = j;
    }
    return nr;
}

/* --- filters --------------------------------------------------------------------------------- */

static bool name_in(char *const *globs, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (fnmatch(globs[i], name, FNM_CASEFOLD) == 0) {
            return true;
        }
    }
    return false;
}

static bool type_in(const uint32_t *types, size_t n, uint64_t type)
{
    for (size_t i = 0; i < n; i++) {
        if (types[i] == type) {
            return true;
        }
    }
    return false;
}

bool kvl_ifwalk_included(const kvl_if_filter_t *f, const row_t *r, const char *base)
{
    bool have_type = kvl_ifrow_has(r, C_TYPE);
    if (f->n_include > 0 && !name_in(f->include, f->n_include, base)) {
        return false;
    }
    if (name_in(f->exclude, f->n_exclude, base)) {
        return false;
    }
    if (f->n_include_types > 0 &&
        !(have_type && type_in(f->include_types, f->n_include_types, r->val[C_TYPE]))) {
        return false;
    }
    if (have_type && type_in(f->exclude_types, f->n_exclude_types, r->val[C_TYPE])) {
        return false;
    }
    if (f->skip_admin_down && kvl_ifrow_has(r, C_ADMIN) && r->val[C_ADMIN] == 2) {
        return false;
    }
    return true;
}

/* --- the walk -------------------------------------------------------------------------------- */

void kvl_ifwalk_start(kvl_ifwalk_t *w)
{
    for (int c = 0; c < N_COLS; c++) {
        column_oid(&w->base[c], c);
        w->cur[c] = w->base[c];
        w->active[c] = true;
    }
    w->n_req_cols = 0;
}

size_t kvl_ifwalk_next(kvl_ifwalk_t *w, kvl_snmp_oid_t *req)
{
    size_t n = 0;
    for (int c = 0; c < N_COLS; c++) {
        if (w->active[c]) {
            w->req_cols[n] = c;
            req[n] = w->cur[c];
            n++;
        }
    }
    w->n_req_cols = n;
    return n;
}

void kvl_ifwalk_end_column(kvl_ifwalk_t *w, size_t i)
{
    w->active[w->req_cols[i]] = false;
}

kvl_ifwalk_status_t kvl_ifwalk_take(kvl_ifwalk_t *w, kvl_ifrows_t *rows, const kvl_snmp_vb_t *vbs,
                                    size_t n_vbs, int64_t t, const char *dev, bool *nonincr_logged)
{
    size_t n = w->n_req_cols;
    bool progress = false;
    for (size_t k = 0; k < n_vbs; k++) {
        int col = w->req_cols[k % n];
        const kvl_snmp_vb_t *vb = &vbs[k];
        if (!w->active[col]) {
            continue;
        }
        if (vb->type == KVL_SNMP_T_END_OF_MIB_VIEW || vb->type == KVL_SNMP_T_NO_SUCH_OBJECT ||
            vb->type == KVL_SNMP_T_NO_SUCH_INSTANCE ||
            !kvl_snmp_oid_has_prefix(&vb->oid, &w->base[col])) {
            w->active[col] = false;
            continue;
        }
        if (kvl_snmp_oid_cmp(&vb->oid, &w->cur[col]) <= 0) {
            w->active[col] = false;
            if (!*nonincr_logged) {
                char o1[160], o2[160];
                *nonincr_logged = true;
                KVL_LOG_WARN(MOD, dev, "OID not increasing (%s after %s); column ended there",
                             kvl_snmp_oid_format(&vb->oid, o1, sizeof(o1)),
                             kvl_snmp_oid_format(&w->cur[col], o2, sizeof(o2)));
            }
            continue;
        }
        w->cur[col] = vb->oid;
        progress = true;
        if (vb->oid.len != w->base[col].len + 1) {
            continue; /* not an ifIndex row */
        }
        if (!kvl_ifrows_store(rows, col, vb->oid.sub[w->base[col].len], vb, t)) {
            return KVL_IFWALK_NOMEM;
        }
    }
    if (!progress) {
        bool any = false;
        for (size_t i = 0; i < n; i++) {
            any = any || w->active[w->req_cols[i]];
        }
        if (any) {
            return KVL_IFWALK_STALLED;
        }
    }
    return KVL_IFWALK_OK;
}
