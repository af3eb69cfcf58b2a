/*
 * mibgroups.c — what a device's metric groups ask and what the answers mean (see
 * mibgroups.h).
 *
 * A pass walks the device's groups in configuration order. The group being polled keeps its
 * answers in `rows` (tables: one per index seen; scalars: a single row with one cell per
 * metric) only until the group is complete; then every row is named, reported and dropped.
 * What survives between polls is per instance: its name, the signature of its labels (a
 * change re-registers its family with the new labels) and one kvl_counter_t per metric.
 * Instances a complete walk no longer sees are forgotten.
 *
 * A table walk asks every column still active, cursors advancing like the interface walk
 * (poller.c): a column ends when an answer leaves it, at endOfMibView or noSuchObject, when
 * an OID does not increase, or in v1 on noSuchName. tooBig halves this device's group
 * GETBULK size for the rest of the pass.
 */
#include "mibgroups.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter.h"
#include "kvl.h"
#include "log.h"
#include "snmp_text.h"
#include "timeutil.h"

#define MOD "groups"
#define MAX_REQUESTS_PER_GROUP 5000
#define MAX_ROWS 20000
#define MAX_INDEX_STR 160

/* One value of a row. */
typedef struct cell {
    bool have;
    kvl_snmp_type_t type;
    uint64_t u;
    int64_t i;
    char *s; /* OCTETS (cleaned) and OID (formatted or named) values */
} cell_t;

typedef struct row {
    uint32_t idx[KVL_SNMP_MAX_OID_LEN]; /* the index after the column OID */
    size_t idx_len;
    int64_t t; /* when its first value arrived */
    cell_t *cells;
    char *name;
} row_t;

/* What is kept between polls for one instance of a group. */
typedef struct inst {
    char *name;
    char *sig;
    uint32_t id; /* of metric 0; 0: not registered */
    bool seen;
    kvl_counter_t ctr[]; /* one per metric */
} inst_t;

typedef struct gstate {
    const kvl_metric_group_t *g;
    bool absent;        /* skipped until the next discovery */
    bool absent_logged; /* said once, until the group answers again */
    inst_t **insts;
    size_t n_insts;
} gstate_t;

struct kvl_mg_dev {
    const kvl_device_cfg_t *cfg;
    uint32_t interval_s;
    kvl_batcher_t *b;
    gstate_t *gs;
    size_t n;

    /* the pass */
    size_t cur;
    bool v1;
    bool reboot;
    bool failing;
    bool have_prev_uptime;
    uint32_t prev_uptime;
    uint32_t reps_cap; /* 0: whatever the poller allows */

    /* the group being polled */
    bool started;
    bool aborted;
    bool get_done;
    unsigned requests;
    kvl_snmp_oid_t *cursor; /* per column */
    bool *active;           /* per column (tables), per metric (scalars: still asked) */
    int req_what[64];       /* column or metric of each requested OID */
    size_t n_req;
    row_t *rows;
    size_t n_rows, cap_rows;
    bool nonincr_logged;
};

/* --- helpers --------------------------------------------------------------------------------- */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c != NULL) {
        memcpy(c, s, n);
    }
    return c;
}

/* Names of hrStorageType values (HOST-RESOURCES-TYPES, hrStorageTypes .1.3.6.1.2.1.25.2.1.N). */
static const char *const storage_types[] = {
    NULL,         "other",       "ram",     "virtualMemory", "fixedDisk",   "removableDisk",
    "floppyDisk", "compactDisc", "ramDisk", "flashMemory",   "networkDisk",
};

static char *oid_text(const kvl_snmp_oid_t *o)
{
    static const uint32_t hr_storage_types[] = {1, 3, 6, 1, 2, 1, 25, 2, 1};
    size_t n = KVL_ARRAY_SIZE(hr_storage_types);
    if (o->len == n + 1 && memcmp(o->sub, hr_storage_types, sizeof(hr_storage_types)) == 0 &&
        o->sub[n] >= 1 && o->sub[n] < KVL_ARRAY_SIZE(storage_types)) {
        return dup_str(storage_types[o->sub[n]]);
    }
    char buf[KVL_SNMP_MAX_OID_LEN * 11 + 1];
    return dup_str(kvl_snmp_oid_format(o, buf, sizeof(buf)));
}

static void set_oid(kvl_snmp_oid_t *dst, const kvl_mg_oid_t *src)
{
    kvl_snmp_oid_set(dst, src->sub, src->len);
}

static void clear_rows(kvl_mg_dev_t *m, size_t n_cells)
{
    for (size_t r = 0; r < m->n_rows; r++) {
        for (size_t c = 0; c < n_cells; c++) {
            free(m->rows[r].cells[c].s);
        }
        free(m->rows[r].cells);
        free(m->rows[r].name);
    }
    m->n_rows = 0;
}

static size_t n_cells(const kvl_metric_group_t *g)
{
    return g->table ? g->n_cols : g->n_metrics;
}

/* The row for an index, kept in index order; NULL when out of memory or too many. */
static row_t *find_row(kvl_mg_dev_t *m, const uint32_t *idx, size_t len, size_t cells)
{
    kvl_snmp_oid_t key, cmp;
    kvl_snmp_oid_set(&key, idx, len);
    size_t lo = 0, hi = m->n_rows;
    if (hi > 0) {
        kvl_snmp_oid_set(&cmp, m->rows[hi - 1].idx, m->rows[hi - 1].idx_len);
        if (kvl_snmp_oid_cmp(&cmp, &key) < 0) {
            lo = hi;
        }
    }
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        kvl_snmp_oid_set(&cmp, m->rows[mid].idx, m->rows[mid].idx_len);
        int c = kvl_snmp_oid_cmp(&cmp, &key);
        if (c == 0) {
            return &m->rows[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (m->n_rows >= MAX_ROWS) {
        return NULL;
    }
    if (m->n_rows == m->cap_rows) {
        size_t cap = m->cap_rows ? m->cap_rows * 2 : 16;
        row_t *rows = realloc(m->rows, cap * sizeof(*rows));
        if (rows == NULL) {
            return NULL;
        }
        m->rows = rows;
        m->cap_rows = cap;
    }
    cell_t *c = calloc(cells ? cells : 1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    memmove(&m->rows[lo + 1], &m->rows[lo], (m->n_rows - lo) * sizeof(*m->rows));
    m->n_rows++;
    row_t *r = &m->rows[lo];
    memset(r, 0, sizeof(*r));
    memcpy(r->idx, idx, len * sizeof(*idx));
    r->idx_len = len;
    r->cells = c;
    return r;
}

/* Stores a varbind's value into a cell. Returns false when out of memory. */
static bool store(cell_t *c, const kvl_snmp_vb_t *vb)
{
    free(c->s);
    memset(c, 0, sizeof(*c));
    c->type = vb->type;
    switch (vb->type) {
    case KVL_SNMP_T_INTEGER:
        c->i = vb->integer;
        break;
    case KVL_SNMP_T_COUNTER32:
    case KVL_SNMP_T_GAUGE32:
    case KVL_SNMP_T_TIMETICKS:
    case KVL_SNMP_T_COUNTER64:
        c->u = vb->u;
        break;
    case KVL_SNMP_T_OCTETS:
        if ((c->s = kvl_snmp_text_clean(vb->str, vb->str_len)) == NULL) {
            return false;
        }
        break;
    case KVL_SNMP_T_OID:
        if (vb->oid_value == NULL || (c->s = oid_text(vb->oid_value)) == NULL) {
            return vb->oid_value == NULL;
        }
        break;
    default:
        return true; /* no value */
    }
    c->have = true;
    return true;
}

/* A cell as a number. *bits: 64 for Counter64, else 32. Returns false when it is none. */
static bool cell_number(const cell_t *c, double *d, bool *neg, uint64_t *u, unsigned *bits)
{
    *bits = 32;
    *neg = false;
    if (c == NULL || !c->have) {
        return false;
    }
    switch (c->type) {
    case KVL_SNMP_T_INTEGER:
        *neg = c->i < 0;
        *u = (uint64_t)c->i;
        *d = (double)c->i;
        return true;
    case KVL_SNMP_T_COUNTER64:
        *bits = 64;
        /* fall through */
    case KVL_SNMP_T_COUNTER32:
    case KVL_SNMP_T_GAUGE32:
    case KVL_SNMP_T_TIMETICKS:
        *u = c->u;
        *d = (double)c->u;
        return true;
    case KVL_SNMP_T_OCTETS: {
        char *end = NULL;
        double v = strtod(c->s, &end);
        if (end == c->s || *end != '\0') {
            return false;
        }
        *d = v;
        *neg = v < 0;
        *u = (!*neg && v < 1.8e19) ? (uint64_t)v : 0;
        *bits = 64;
        return true;
    }
    default:
        return false;
    }
}

static void index_text(const row_t *r, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->idx_len && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%" PRIu32, i ? "." : "", r->idx[i]);
        if (w < 0) {
            break;
        }
        used += (size_t)w;
    }
}

/* --- instances ------------------------------------------------------------------------------- */

static inst_t *find_inst(gstate_t *gs, const char *name)
{
    size_t lo = 0, hi = gs->n_insts;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(gs->insts[mid]->name, name);
        if (c == 0) {
            return gs->insts[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    inst_t **v = realloc(gs->insts, (gs->n_insts + 1) * sizeof(*v));
    if (v == NULL) {
        return NULL;
    }
    gs->insts = v;
    inst_t *in = calloc(1, sizeof(*in) + gs->g->n_metrics * sizeof(in->ctr[0]));
    if (in == NULL || (in->name = dup_str(name)) == NULL) {
        free(in);
        return NULL;
    }
    memmove(&gs->insts[lo + 1], &gs->insts[lo], (gs->n_insts - lo) * sizeof(*v));
    gs->insts[lo] = in;
    gs->n_insts++;
    return in;
}

static void free_inst(inst_t *in)
{
    if (in != NULL) {
        free(in->name);
        free(in->sig);
        free(in);
    }
}

/* --- reporting ------------------------------------------------------------------------------- */

static void report_row(kvl_mg_dev_t *m, gstate_t *gs, row_t *r)
{
    const kvl_metric_group_t *g = gs->g;
    kvl_label_t labels[KVL_MG_MAX_LABELS + 1];
    size_t n_labels = 0;
    char idx[MAX_INDEX_STR];
    const char *name = "";
    if (g->table) {
        index_text(r, idx, sizeof(idx));
        labels[n_labels++] = (kvl_label_t){"index", idx};
        for (size_t i = 0; i < g->n_labels; i++) {
            cell_t *c = &r->cells[g->labels[i].col];
            char *v = NULL;
            if (c->have && c->s == NULL) {
                char num[32];
                if (c->type == KVL_SNMP_T_INTEGER) {
                    snprintf(num, sizeof(num), "%" PRId64, c->i);
                } else {
                    snprintf(num, sizeof(num), "%" PRIu64, c->u);
                }
                v = c->s = dup_str(num); /* kept with the row, freed with it */
            } else {
                v = c->s;
            }
            labels[n_labels++] = (kvl_label_t){g->labels[i].name, v != NULL ? v : ""};
        }
        name = r->name;
    }
    inst_t *in = find_inst(gs, name);
    if (in == NULL) {
        KVL_LOG_ERROR(MOD, m->cfg->name, "out of memory for group %s", g->name);
        return;
    }
    in->seen = true;
    size_t siglen = 1;
    for (size_t i = 0; i < n_labels; i++) {
        siglen += strlen(labels[i].value) + 1;
    }
    char *sig = malloc(siglen);
    if (sig == NULL) {
        return;
    }
    sig[0] = '\0';
    for (size_t i = 0; i < n_labels; i++) {
        strcat(sig, labels[i].value);
        strcat(sig, "\x1f");
    }
    if (in->id == 0 || in->sig == NULL || strcmp(in->sig, sig) != 0) {
        free(in->sig);
        in->sig = sig;
        kvl_instance_key_t key = {
            .device = m->cfg->name,
            .scope = KVL_SCOPE_GROUP,
            .instance = name,
            .family = &g->family,
            .interval_s = m->interval_s,
            .labels = labels,
            .n_labels = n_labels,
        };
        in->id = kvl_batcher_instance(m->b, &key);
    } else {
        free(sig);
    }
    if (in->id == 0) {
        return;
    }
    kvl_batcher_group_begin(m->b, r->t);
    for (size_t i = 0; i < g->n_metrics; i++) {
        const kvl_mg_metric_t *mt = &g->metrics[i];
        uint32_t id = in->id + (uint32_t)i;
        const cell_t *c = g->table ? &r->cells[mt->col] : &r->cells[i];
        double d = 0, factor = mt->scale;
        uint64_t u = 0, ufactor = mt->real ? 1 : (uint64_t)mt->scale;
        bool neg = false, ok;
        unsigned bits = 32;
        ok = cell_number(c, &d, &neg, &u, &bits);
        if (ok && mt->scale_by >= 0) {
            double sd;
            uint64_t su;
            bool sneg;
            unsigned sbits;
            ok = cell_number(&r->cells[mt->scale_by], &sd, &sneg, &su, &sbits) && !sneg;
            factor *= sd;
            ufactor *= su;
        }
        if (ok && mt->kind == KVL_KIND_COUNTER) {
            uint64_t out = 0;
            if (neg || (c->type == KVL_SNMP_T_OCTETS && d != (double)u)) {
                ok = false;
            } else if (kvl_counter_update(&in->ctr[i], u, bits, r->t, 0, m->reboot, &out) !=
                       KVL_COUNTER_KNOWN) {
                ok = false;
            } else if (mt->real) {
                kvl_batcher_add_real(m->b, id, (double)out * factor);
            } else {
                kvl_batcher_add(m->b, id, out * ufactor);
            }
        } else if (ok && mt->real) {
            kvl_batcher_add_real(m->b, id, d * factor);
        } else if (ok && !neg && !(c->type == KVL_SNMP_T_OCTETS && d != (double)u)) {
            kvl_batcher_add(m->b, id, u * ufactor);
        } else {
            ok = false;
        }
        if (!ok) {
            kvl_batcher_add_unknown(m->b, id);
        }
    }
    kvl_batcher_group_end(m->b);
}

static int cmp_rows_by_name(const void *a, const void *b)
{
    const row_t *x = *(row_t *const *)a;
    const row_t *y = *(row_t *const *)b;
    return strcmp(x->name, y->name);
}

/* Names every row: the instance column, else the index; "#<index>" added to duplicates.
 * Returns false when out of memory. */
static bool name_rows(kvl_mg_dev_t *m, const kvl_metric_group_t *g)
{
    row_t **order = malloc((m->n_rows ? m->n_rows : 1) * sizeof(*order));
    if (order == NULL) {
        return false;
    }
    for (size_t i = 0; i < m->n_rows; i++) {
        row_t *r = &m->rows[i];
        char idx[MAX_INDEX_STR];
        index_text(r, idx, sizeof(idx));
        const cell_t *c = g->instance_col >= 0 ? &r->cells[g->instance_col] : NULL;
        char num[32];
        const char *name = idx;
        if (c != NULL && c->have && c->s != NULL && c->s[0] != '\0') {
            name = c->s;
        } else if (c != NULL && c->have && c->type == KVL_SNMP_T_INTEGER) {
            snprintf(num, sizeof(num), "%" PRId64, c->i);
            name = num;
        } else if (c != NULL && c->have && c->s == NULL) {
            snprintf(num, sizeof(num), "%" PRIu64, c->u);
            name = num;
        }
        if ((r->name = dup_str(name)) == NULL) {
            free(order);
            return false;
        }
        order[i] = r;
    }
    qsort(order, m->n_rows, sizeof(*order), cmp_rows_by_name);
    bool ok = true;
    for (size_t i = 0; i < m->n_rows && ok;) {
        size_t j = i + 1;
        while (j < m->n_rows && strcmp(order[j]->name, order[i]->name) == 0) {
            j++;
        }
        for (size_t k = i; j - i > 1 && k < j && ok; k++) {
            char idx[MAX_INDEX_STR];
            index_text(order[k], idx, sizeof(idx));
            size_t len = strlen(order[k]->name) + strlen(idx) + 2;
            char *n = malloc(len);
            ok = n != NULL;
            if (ok) {
                snprintf(n, len, "%s#%s", order[k]->name, idx);
                free(order[k]->name);
                order[k]->name = n;
            }
        }
        i = j;
    }
    free(order);
    return ok;
}

static void set_absent(kvl_mg_dev_t *m, gstate_t *gs, const char *why)
{
    gs->absent = true;
    if (!gs->absent_logged) {
        gs->absent_logged = true;
        KVL_LOG_INFO(MOD, m->cfg->name,
                     "metric group %s: not on this device (%s); skipped until the next "
                     "discovery",
                     gs->g->name, why);
    }
}

/* The current group is complete: report it (unless it was aborted) and drop its rows. */
static void finish_group(kvl_mg_dev_t *m)
{
    gstate_t *gs = &m->gs[m->cur];
    const kvl_metric_group_t *g = gs->g;
    if (!m->aborted) {
        bool any = false;
        for (size_t r = 0; r < m->n_rows && !any; r++) {
            for (size_t c = 0; c < n_cells(g) && !any; c++) {
                any = m->rows[r].cells[c].have;
            }
        }
        if (!any) {
            set_absent(m, gs, g->table ? "empty table or no such object" : "no such object");
        } else if (g->table && !name_rows(m, g)) {
            KVL_LOG_ERROR(MOD, m->cfg->name, "out of memory naming the rows of group %s", g->name);
        } else {
            gs->absent_logged = false;
            for (size_t i = 0; i < gs->n_insts; i++) {
                gs->insts[i]->seen = false;
            }
            for (size_t r = 0; r < m->n_rows; r++) {
                report_row(m, gs, &m->rows[r]);
            }
            /* Instances this complete answer no longer has are forgotten. */
            size_t keep = 0;
            for (size_t i = 0; i < gs->n_insts; i++) {
                if (gs->insts[i]->seen) {
                    gs->insts[keep++] = gs->insts[i];
                } else {
                    free_inst(gs->insts[i]);
                }
            }
            gs->n_insts = keep;
        }
    }
    clear_rows(m, n_cells(g));
    m->started = false;
}

/* --- requests -------------------------------------------------------------------------------- */

static void start_group(kvl_mg_dev_t *m)
{
    const kvl_metric_group_t *g = m->gs[m->cur].g;
    m->started = true;
    m->aborted = false;
    m->get_done = false;
    m->requests = 0;
    m->nonincr_logged = false;
    if (g->table) {
        for (size_t c = 0; c < g->n_cols; c++) {
            set_oid(&m->cursor[c], &g->cols[c]);
            m->active[c] = true;
        }
    } else {
        for (size_t i = 0; i < g->n_metrics; i++) {
            m->active[i] = true;
        }
    }
}

static size_t next_table(kvl_mg_dev_t *m, const kvl_metric_group_t *g, kvl_snmp_oid_t *oids,
                         size_t max, uint32_t max_reps, kvl_snmp_op_t *op, uint32_t *reps)
{
    size_t n = 0;
    for (size_t c = 0; c < g->n_cols && n < max && n < KVL_ARRAY_SIZE(m->req_what); c++) {
        if (m->active[c]) {
            m->req_what[n] = (int)c;
            oids[n++] = m->cursor[c];
        }
    }
    m->n_req = n;
    if (n == 0 || ++m->requests > MAX_REQUESTS_PER_GROUP) {
        return 0;
    }
    uint32_t r = (uint32_t)(max / n);
    if (r > max_reps) {
        r = max_reps;
    }
    if (m->reps_cap > 0 && r > m->reps_cap) {
        r = m->reps_cap;
    }
    *reps = r > 0 ? r : 1;
    *op = m->v1 ? KVL_SNMP_GETNEXT : KVL_SNMP_GETBULK;
    return n;
}

static size_t next_scalars(kvl_mg_dev_t *m, const kvl_metric_group_t *g, kvl_snmp_oid_t *oids,
                           size_t max, kvl_snmp_op_t *op, uint32_t *reps)
{
    size_t n = 0;
    if (m->get_done) {
        return 0;
    }
    for (size_t i = 0; i < g->n_metrics && n < max; i++) {
        if (m->active[i]) {
            m->req_what[n] = (int)i;
            set_oid(&oids[n++], &g->metrics[i].oid);
        }
    }
    m->n_req = n;
    if (n == 0 || ++m->requests > MAX_REQUESTS_PER_GROUP) {
        return 0;
    }
    *op = KVL_SNMP_GET;
    *reps = 0;
    return n;
}

size_t kvl_mg_next(kvl_mg_dev_t *m, kvl_snmp_oid_t *oids, size_t max, uint32_t max_reps,
                   kvl_snmp_op_t *op, uint32_t *reps)
{
    if (m == NULL) {
        return 0;
    }
    while (m->cur < m->n) {
        gstate_t *gs = &m->gs[m->cur];
        if (!m->started) {
            if (gs->absent) {
                m->cur++;
                continue;
            }
            start_group(m);
        }
        size_t n = 0;
        if (!m->aborted) {
            n = gs->g->table ? next_table(m, gs->g, oids, max, max_reps, op, reps)
                             : next_scalars(m, gs->g, oids, max, op, reps);
        }
        if (n > 0) {
            return n;
        }
        finish_group(m);
        m->cur++;
    }
    return 0;
}

static void on_table_answer(kvl_mg_dev_t *m, const kvl_metric_group_t *g,
                            const kvl_snmp_result_t *res, int64_t t)
{
    size_t n = m->n_req;
    bool progress = false;
    for (size_t k = 0; k < res->n_vbs; k++) {
        int col = m->req_what[k % n];
        const kvl_snmp_vb_t *vb = &res->vbs[k];
        kvl_snmp_oid_t base;
        set_oid(&base, &g->cols[col]);
        if (!m->active[col]) {
            continue;
        }
        if (vb->type == KVL_SNMP_T_END_OF_MIB_VIEW || vb->type == KVL_SNMP_T_NO_SUCH_OBJECT ||
            vb->type == KVL_SNMP_T_NO_SUCH_INSTANCE || vb->oid.len <= base.len ||
            !kvl_snmp_oid_has_prefix(&vb->oid, &base)) {
            m->active[col] = false;
            continue;
        }
        if (kvl_snmp_oid_cmp(&vb->oid, &m->cursor[col]) <= 0) {
            m->active[col] = false;
            if (!m->nonincr_logged) {
                char o[200];
                m->nonincr_logged = true;
                KVL_LOG_WARN(MOD, m->cfg->name, "group %s: OID not increasing at %s", g->name,
                             kvl_snmp_oid_format(&vb->oid, o, sizeof(o)));
            }
            continue;
        }
        m->cursor[col] = vb->oid;
        progress = true;
        row_t *r = find_row(m, vb->oid.sub + base.len, vb->oid.len - base.len, g->n_cols);
        if (r == NULL || !store(&r->cells[col], vb)) {
            KVL_LOG_WARN(MOD, m->cfg->name, "group %s: out of memory or over %d rows", g->name,
                         MAX_ROWS);
            m->aborted = true;
            return;
        }
        if (r->t == 0) {
            r->t = t;
        }
    }
    if (!progress) {
        for (size_t i = 0; i < n; i++) {
            m->active[m->req_what[i]] = false; /* nothing moved: the walk is over */
        }
    }
}

static void on_scalar_answer(kvl_mg_dev_t *m, const kvl_metric_group_t *g,
                             const kvl_snmp_result_t *res, int64_t t)
{
    m->get_done = true;
    if (res->n_vbs != m->n_req) {
        m->aborted = true;
        return;
    }
    uint32_t zero = 0;
    row_t *r = find_row(m, &zero, 0, g->n_metrics);
    if (r == NULL) {
        m->aborted = true;
        return;
    }
    r->t = t;
    for (size_t k = 0; k < res->n_vbs; k++) {
        if (!store(&r->cells[m->req_what[k]], &res->vbs[k])) {
            m->aborted = true;
            return;
        }
    }
}

void kvl_mg_response(kvl_mg_dev_t *m, const kvl_snmp_result_t *res)
{
    if (m == NULL || m->cur >= m->n || !m->started) {
        return;
    }
    gstate_t *gs = &m->gs[m->cur];
    const kvl_metric_group_t *g = gs->g;
    if (res->status != KVL_SNMP_RESPONSE) {
        const char *why = res->status == KVL_SNMP_TIMEOUT ? "timeout"
                          : res->error_text != NULL       ? res->error_text
                                                          : "no answer";
        if (!m->failing) {
            m->failing = true;
            KVL_LOG_WARN(MOD, m->cfg->name, "metric group %s: %s; groups skipped this poll",
                         g->name, why);
        }
        m->aborted = true;
        finish_group(m);
        m->cur = m->n; /* the rest of the pass is skipped */
        return;
    }
    if (m->failing) {
        m->failing = false;
        KVL_LOG_INFO(MOD, m->cfg->name, "metric groups answer again");
    }
    int e = res->error_status;
    if (e == KVL_SNMP_ERR_TOO_BIG && g->table && !m->v1) {
        uint32_t now = m->reps_cap > 0 ? m->reps_cap : 64;
        m->reps_cap = now > 1 ? now / 2 : 1;
        if (now > 1) {
            return; /* the same request again, smaller */
        }
    }
    if (e == KVL_SNMP_ERR_NO_SUCH_NAME && m->v1 && res->error_index >= 1 &&
        (size_t)res->error_index <= m->n_req) {
        m->active[m->req_what[res->error_index - 1]] = false; /* column ended / no object */
        return;
    }
    if (e != KVL_SNMP_ERR_NONE) {
        KVL_LOG_DEBUG(MOD, m->cfg->name, "metric group %s: error-status %d at index %d", g->name, e,
                      res->error_index);
        m->aborted = true;
        return;
    }
    int64_t t = kvl_now_ms();
    if (g->table) {
        on_table_answer(m, g, res, t);
    } else {
        on_scalar_answer(m, g, res, t);
    }
}

void kvl_mg_begin(kvl_mg_dev_t *m, bool v1, bool rediscovered, bool have_uptime, uint32_t uptime)
{
    if (m == NULL) {
        return;
    }
    if (m->started) {
        clear_rows(m, n_cells(m->gs[m->cur].g));
        m->started = false;
    }
    m->cur = 0;
    m->v1 = v1;
    m->reps_cap = 0;
    m->reboot = false;
    if (have_uptime) {
        m->reboot = m->have_prev_uptime && uptime < m->prev_uptime;
        m->have_prev_uptime = true;
        m->prev_uptime = uptime;
    }
    if (rediscovered || m->reboot) {
        for (size_t i = 0; i < m->n; i++) {
            m->gs[i].absent = false;
        }
    }
}

/* --- life cycle ------------------------------------------------------------------------------ */

kvl_mg_dev_t *kvl_mg_dev_new(const kvl_device_cfg_t *cfg, uint32_t interval_s, kvl_batcher_t *b)
{
    if (cfg->n_mgroups == 0) {
        return NULL;
    }
    size_t most = 1;
    for (size_t i = 0; i < cfg->n_mgroups; i++) {
        size_t n = n_cells(cfg->mgroups[i]);
        most = n > most ? n : most;
    }
    kvl_mg_dev_t *m = calloc(1, sizeof(*m));
    if (m != NULL) {
        m->gs = calloc(cfg->n_mgroups, sizeof(*m->gs));
        m->cursor = calloc(most, sizeof(*m->cursor));
        m->active = calloc(most, sizeof(*m->active));
    }
    if (m == NULL || m->gs == NULL || m->cursor == NULL || m->active == NULL) {
        KVL_LOG_ERROR(MOD, cfg->name, "out of memory: metric groups not polled");
        kvl_mg_dev_free(m);
        return NULL;
    }
    m->cfg = cfg;
    m->interval_s = interval_s;
    m->b = b;
    m->n = cfg->n_mgroups;
    m->cur = m->n;
    for (size_t i = 0; i < m->n; i++) {
        m->gs[i].g = cfg->mgroups[i];
    }
    return m;
}

void kvl_mg_dev_free(kvl_mg_dev_t *m)
{
    if (m == NULL) {
        return;
    }
    if (m->started && m->gs != NULL) {
        clear_rows(m, n_cells(m->gs[m->cur].g));
    }
    free(m->rows);
    for (size_t i = 0; m->gs != NULL && i < m->n; i++) {
        for (size_t k = 0; k < m->gs[i].n_insts; k++) {
            free_inst(m->gs[i].insts[k]);
        }
        free(m->gs[i].insts);
    }
    free(m->gs);
    free(m->cursor);
    free(m->active);
    free(m);
}

void kvl_mg_dev_set_cfg(kvl_mg_dev_t *m, const kvl_device_cfg_t *cfg)
{
    if (m == NULL) {
        return;
    }
    KVL_ASSERT(cfg->n_mgroups == m->n);
    m->cfg = cfg;
    for (size_t i = 0; i < m->n; i++) {
        m->gs[i].g = cfg->mgroups[i];
    }
}
