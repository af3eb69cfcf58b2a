/*
 * poller.c — SNMP polling of the agent's devices (see poller.h).
 *
 * Each device has a uv_timer_t that fires on a fixed schedule (first tick spread over the
 * first second, then every interval, never drifting; a tick that finds the previous poll
 * still running is skipped). A poll is a small state machine over one kvl_snmp session:
 *
 *   1. GET sysUpTime.0 and sysName.0 (v1: a noSuchName drops that OID and asks again).
 *      No answer: the device is down (logged and reported once, reachable 0 each poll).
 *   2. Walk the wanted ifTable and ifXTable columns in parallel, one varbind per column
 *      per request (GETBULK in v2c with columns x repetitions <= 60, GETNEXT in v1), so an
 *      interface's in and out counters travel in one PDU. A column ends when it leaves
 *      its subtree, at endOfMibView, when an OID does not increase, or (v1) on noSuchName.
 *      Values land in rows keyed by ifIndex; the interface list is every index seen.
 *   3. Name each interface (ifName, else ifDescr, else "if<ifIndex>", "#<ifIndex>" added
 *      to duplicates), pass its counters through kvl_counter_update with state kept per
 *      interface name, and report one group per interface, timed when the PDU carrying
 *      its in_octets arrived, and one device group timed when the system GET answered.
 *
 * Everything runs on the agent's loop; the SNMP session layer (snmp.h) never blocks.
 */
#include "poller.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "counter.h"
#include "log.h"
#include "snmp.h"
#include "timeutil.h"

#define MOD "snmp"
#define MAX_VBS_PER_RESPONSE 60 /* snmpsim answers at most 64; keep a margin */
#define MAX_REQUESTS_PER_WALK 20000
#define DEFAULT_MAX_REPS 25

/* --- what is walked -------------------------------------------------------------------------- */

enum {
    C_DESCR,
    C_TYPE,
    C_SPEED,
    C_ADMIN,
    C_OPER,
    C_IN_OCT,
    C_IN_UCAST,
    C_IN_DISC,
    C_IN_ERR,
    C_OUT_OCT,
    C_OUT_UCAST,
    C_OUT_DISC,
    C_OUT_ERR,
    X_NAME,
    X_IN_MCAST,
    X_IN_BCAST,
    X_OUT_MCAST,
    X_OUT_BCAST,
    X_HC_IN_OCT,
    X_HC_IN_UCAST,
    X_HC_IN_MCAST,
    X_HC_IN_BCAST,
    X_HC_OUT_OCT,
    X_HC_OUT_UCAST,
    X_HC_OUT_MCAST,
    X_HC_OUT_BCAST,
    X_HIGH_SPEED,
    X_ALIAS,
    X_DISC_TIME,
    N_COLS
};

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
    [X_ALIAS] = {1, 18, 2},         [X_DISC_TIME] = {1, 19, -1},
};

static const uint32_t if_entry[] = {1, 3, 6, 1, 2, 1, 2, 2, 1};
static const uint32_t ifx_entry[] = {1, 3, 6, 1, 2, 1, 31, 1, 1, 1};
static const uint32_t sys_uptime[] = {1, 3, 6, 1, 2, 1, 1, 3, 0};
static const uint32_t sys_name[] = {1, 3, 6, 1, 2, 1, 1, 5, 0};

/* The counters reported per interface: 64-bit column when the interface has it, else the
 * 32-bit one (-1: none). */
typedef struct counter_def {
    const char *metric;
    int hc;
    int lo;
    bool octets;
} counter_def_t;

static const counter_def_t counter_defs[] = {
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
#define N_CTR (sizeof(counter_defs) / sizeof(counter_defs[0]))

/* --- state ----------------------------------------------------------------------------------- */

/* One interface as seen by the current walk. */
typedef struct row {
    uint32_t ifindex;
    uint32_t present; /* bit per column */
    uint32_t is64;    /* bit per column: the value was a Counter64 */
    uint64_t val[N_COLS];
    char *str[3]; /* ifDescr, ifName, ifAlias (cleaned) */
    int64_t t_first, t_in32, t_in64;
} row_t;

/* What survives between polls for one interface, keyed by its name. */
typedef struct iface {
    char *name;
    char *labels_sig; /* label values joined, to notice a change */
    kvl_counter_t ctr[N_CTR];
    uint8_t ctr_bits[N_CTR];
    uint32_t id_ctr[N_CTR];
    uint32_t id_oper, id_admin, id_speed;
    bool have_disc;
    uint64_t disc;
} iface_t;

typedef enum { ST_IDLE, ST_SYS, ST_WALK } dev_state_t;

typedef struct device {
    kvl_poller_t *p;
    const kvl_device_cfg_t *cfg;
    uint32_t interval_s;
    uv_timer_t tick;
    uint64_t next_due; /* loop time (ms) of the next tick */
    kvl_snmp_session_t *sess;
    dev_state_t state;
    bool polled_once;

    /* reachability */
    bool down;
    int64_t down_since_ms; /* start of the first poll that got no answer */
    int64_t poll_start_ms;

    /* system group of the current poll */
    kvl_snmp_oid_t sys_oids[2];
    size_t n_sys_oids;
    int64_t t_sys;
    double rtt_ms;
    bool have_uptime;
    uint32_t uptime;
    char *sysname;
    bool have_prev_uptime;
    uint32_t prev_uptime;
    bool reboot_pending; /* sysUpTime went back; cleared once counters have seen it */

    /* walk of the current poll */
    kvl_snmp_oid_t base[N_COLS];
    kvl_snmp_oid_t cur[N_COLS];
    bool active[N_COLS];
    int req_cols[N_COLS];
    size_t n_req_cols;
    uint32_t reps, reps_cap;
    unsigned requests;
    row_t *rows;
    size_t n_rows, cap_rows;
    bool walk_failing;
    bool nonincr_logged;

    /* series */
    char *dev_sig;
    uint32_t id_reachable, id_uptime, id_response, id_interfaces;
    iface_t **ifs; /* sorted by name */
    size_t n_ifs, cap_ifs;
} device_t;

struct kvl_poller {
    uv_loop_t *loop;
    const kvl_agent_cfg_t *cfg;
    kvl_batcher_t *b;
    device_t *devs;
    size_t n_devs;
    bool once;
    void (*done)(void *arg);
    void *done_arg;
    size_t n_done;
    uv_timer_t done_timer;
    int open_handles;
};

static void start_poll(device_t *d);
static void send_walk(device_t *d);

/* --- small helpers --------------------------------------------------------------------------- */

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c != NULL) {
        memcpy(c, s, n);
    }
    return c;
}

/* Copies an SNMP string for use as a name or label: stops at the first NUL, turns control
 * characters into spaces and bytes that are not UTF-8 into '?', and trims spaces. */
static char *clean_string(const uint8_t *s, size_t n)
{
    char *out = malloc(n + 1);
    size_t o = 0;
    if (out == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n && s[i] != 0;) {
        uint8_t c = s[i];
        size_t len = c < 0x80                   ? 1
                     : (c >= 0xc2 && c <= 0xdf) ? 2
                     : (c >= 0xe0 && c <= 0xef) ? 3
                     : (c >= 0xf0 && c <= 0xf4) ? 4
                                                : 0;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++) {
            ok = (s[i + k] & 0xc0) == 0x80;
        }
        if (!ok) {
            out[o++] = '?';
            i++;
        } else if (len == 1) {
            out[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
            i++;
        } else {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        }
    }
    while (o > 0 && out[o - 1] == ' ') {
        o--;
    }
    out[o] = '\0';
    size_t lead = 0;
    while (out[lead] == ' ') {
        lead++;
    }
    if (lead > 0) {
        memmove(out, out + lead, o - lead + 1);
    }
    return out;
}

static void format_duration(int64_t ms, char *buf, size_t len)
{
    int64_t s = ms / 1000;
    if (s < 60) {
        snprintf(buf, len, "%" PRId64 "s", s);
    } else if (s < 3600) {
        snprintf(buf, len, "%" PRId64 "m %" PRId64 "s", s / 60, s % 60);
    } else if (s < 86400) {
        snprintf(buf, len, "%" PRId64 "h %" PRId64 "m", s / 3600, (s % 3600) / 60);
    } else {
        snprintf(buf, len, "%" PRId64 "d %" PRId64 "h", s / 86400, (s % 86400) / 3600);
    }
}

static bool is_v1(const device_t *d)
{
    return d->cfg->version == KVL_SNMP_V1;
}

static uint32_t register_series(device_t *d, kvl_scope_t scope, const char *instance,
                                const char *metric, kvl_kind_t kind, bool real,
                                const kvl_label_t *labels, size_t n_labels)
{
    kvl_series_key_t key = {
        .device = d->cfg->name,
        .scope = scope,
        .instance = instance,
        .metric = metric,
        .kind = kind,
        .interval_s = d->interval_s,
        .real = real,
        .labels = labels,
        .n_labels = n_labels,
    };
    return kvl_batcher_series(d->p->b, &key);
}

/* --- poll bookkeeping ------------------------------------------------------------------------ */

static void clear_rows(device_t *d)
{
    for (size_t i = 0; i < d->n_rows; i++) {
        for (size_t k = 0; k < 3; k++) {
            free(d->rows[i].str[k]);
        }
    }
    d->n_rows = 0;
}

static void on_done_timer(uv_timer_t *t)
{
    kvl_poller_t *p = t->data;
    if (p->done != NULL) {
        p->done(p->done_arg);
    }
}

/* Ends the current poll, whatever its outcome. */
static void finish_poll(device_t *d)
{
    kvl_poller_t *p = d->p;
    d->state = ST_IDLE;
    clear_rows(d);
    if (!d->polled_once) {
        d->polled_once = true;
        p->n_done++;
        if (p->once && p->n_done == p->n_devs) {
            /* Called from the loop, never from inside an SNMP callback, so `done` may free
             * the poller. */
            uv_timer_start(&p->done_timer, on_done_timer, 0, 0);
        }
    }
}

/* --- device group ---------------------------------------------------------------------------- */

static void ensure_device_series(device_t *d)
{
    const char *sig = d->sysname != NULL ? d->sysname : "";
    if (d->dev_sig != NULL && strcmp(d->dev_sig, sig) == 0) {
        return;
    }
    char *copy = xstrdup(sig);
    if (copy == NULL) {
        return;
    }
    free(d->dev_sig);
    d->dev_sig = copy;
    d->id_reachable = d->id_uptime = d->id_response = d->id_interfaces = 0;
}

static uint32_t device_series(device_t *d, uint32_t *id, const char *metric, bool real)
{
    if (*id == 0) {
        kvl_label_t label = {"sysName", d->sysname};
        *id = register_series(d, KVL_SCOPE_DEVICE, "", metric, KVL_KIND_GAUGE, real, &label,
                              d->sysname != NULL ? 1 : 0);
    }
    return *id;
}

/* Reports the device group. n_ifaces < 0: the walk failed, the count is unknown. */
static void report_device(device_t *d, bool reachable, int64_t t_ms, long n_ifaces)
{
    kvl_batcher_t *b = d->p->b;
    ensure_device_series(d);
    uint32_t id_reach = device_series(d, &d->id_reachable, "reachable", false);
    uint32_t id_up = 0, id_rtt = 0, id_ifs = 0;
    if (reachable) {
        if (d->have_uptime) {
            id_up = device_series(d, &d->id_uptime, "uptime_s", false);
        }
        id_rtt = device_series(d, &d->id_response, "response_ms", true);
        id_ifs = device_series(d, &d->id_interfaces, "interfaces", false);
    }
    kvl_batcher_group_begin(b, t_ms);
    if (id_reach != 0) {
        kvl_batcher_add(b, id_reach, reachable ? 1 : 0);
    }
    if (id_up != 0) {
        kvl_batcher_add(b, id_up, d->uptime / 100u);
    }
    if (id_rtt != 0) {
        kvl_batcher_add_real(b, id_rtt, d->rtt_ms);
    }
    if (id_ifs != 0) {
        if (n_ifaces >= 0) {
            kvl_batcher_add(b, id_ifs, (uint64_t)n_ifaces);
        } else {
            kvl_batcher_add_unknown(b, id_ifs);
        }
    }
    kvl_batcher_group_end(b);
}

/* The device did not answer the system GET (or could not be asked). */
static void mark_down(device_t *d, const char *reason)
{
    int64_t now = kvl_now_ms();
    if (!d->down) {
        d->down = true;
        d->down_since_ms = d->poll_start_ms;
        KVL_LOG_WARN(MOD, d->cfg->name, "not answering: %s", reason);
        char text[512];
        snprintf(text, sizeof(text), "not answering: %s", reason);
        kvl_label_t fields[] = {{"address", d->cfg->address}};
        kvl_event_t ev = {
            .time_ms = now,
            .device = d->cfg->name,
            .kind = "device_down",
            .severity = KVL_SEV_CRITICAL,
            .text = text,
            .fields = fields,
            .n_fields = KVL_ARRAY_SIZE(fields),
        };
        kvl_batcher_event(d->p->b, &ev);
    } else {
        KVL_LOG_DEBUG(MOD, d->cfg->name, "still not answering: %s", reason);
    }
    report_device(d, false, now, -1);
    finish_poll(d);
}

static void mark_up(device_t *d)
{
    if (!d->down) {
        return;
    }
    d->down = false;
    char dur[64];
    char text[160];
    format_duration(d->t_sys - d->down_since_ms, dur, sizeof(dur));
    KVL_LOG_INFO(MOD, d->cfg->name, "answering again after %s down", dur);
    snprintf(text, sizeof(text), "answering again after %s down", dur);
    char secs[32];
    snprintf(secs, sizeof(secs), "%" PRId64, (d->t_sys - d->down_since_ms) / 1000);
    kvl_label_t fields[] = {{"address", d->cfg->address}, {"down_s", secs}};
    kvl_event_t ev = {
        .time_ms = d->t_sys,
        .device = d->cfg->name,
        .kind = "device_up",
        .severity = KVL_SEV_INFO,
        .text = text,
        .fields = fields,
        .n_fields = KVL_ARRAY_SIZE(fields),
    };
    kvl_batcher_event(d->p->b, &ev);
}

/* --- interfaces ------------------------------------------------------------------------------ */

/* Returns the state kept for the interface called name, creating it; NULL when out of
 * memory. */
static iface_t *find_iface(device_t *d, const char *name)
{
    size_t lo = 0, hi = d->n_ifs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(d->ifs[mid]->name, name);
        if (c == 0) {
            return d->ifs[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (d->n_ifs == d->cap_ifs) {
        size_t cap = d->cap_ifs != 0 ? d->cap_ifs * 2 : 16;
        iface_t **ifs = realloc(d->ifs, cap * sizeof(*ifs));
        if (ifs == NULL) {
            return NULL;
        }
        d->ifs = ifs;
        d->cap_ifs = cap;
    }
    iface_t *f = calloc(1, sizeof(*f));
    if (f == NULL || (f->name = xstrdup(name)) == NULL) {
        free(f);
        return NULL;
    }
    memmove(&d->ifs[lo + 1], &d->ifs[lo], (d->n_ifs - lo) * sizeof(d->ifs[0]));
    d->ifs[lo] = f;
    d->n_ifs++;
    return f;
}

static void free_iface(iface_t *f)
{
    if (f != NULL) {
        free(f->name);
        free(f->labels_sig);
        free(f);
    }
}

/* Returns the row for ifindex, adding it in index order; NULL when out of memory. */
static row_t *find_row(device_t *d, uint32_t ifindex)
{
    size_t lo = 0, hi = d->n_rows;
    if (hi > 0 && d->rows[hi - 1].ifindex < ifindex) {
        lo = hi; /* the usual case: columns come in index order */
    }
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (d->rows[mid].ifindex == ifindex) {
            return &d->rows[mid];
        }
        if (d->rows[mid].ifindex < ifindex) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (d->n_rows == d->cap_rows) {
        size_t cap = d->cap_rows != 0 ? d->cap_rows * 2 : 32;
        row_t *rows = realloc(d->rows, cap * sizeof(*rows));
        if (rows == NULL) {
            return NULL;
        }
        d->rows = rows;
        d->cap_rows = cap;
    }
    memmove(&d->rows[lo + 1], &d->rows[lo], (d->n_rows - lo) * sizeof(d->rows[0]));
    d->n_rows++;
    row_t *r = &d->rows[lo];
    memset(r, 0, sizeof(*r));
    r->ifindex = ifindex;
    return r;
}

static bool has(const row_t *r, int col)
{
    return col >= 0 && (r->present & (1u << col)) != 0;
}

static const char *row_str(const row_t *r, int col)
{
    const char *s = has(r, col) ? r->str[columns[col].str] : NULL;
    return s != NULL && s[0] != '\0' ? s : NULL;
}

typedef struct named_row {
    row_t *r;
    char *name;
} named_row_t;

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

/* Names every row (ifName, else ifDescr, else "if<ifIndex>"; "#<ifIndex>" appended to each
 * of a set of duplicates). Returns an array sorted by name, or NULL when out of memory. */
static named_row_t *name_rows(device_t *d)
{
    named_row_t *nr = calloc(d->n_rows > 0 ? d->n_rows : 1, sizeof(*nr));
    if (nr == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < d->n_rows; i++) {
        row_t *r = &d->rows[i];
        const char *name = row_str(r, X_NAME);
        char buf[32];
        if (name == NULL) {
            name = row_str(r, C_DESCR);
        }
        if (name == NULL) {
            snprintf(buf, sizeof(buf), "if%" PRIu32, r->ifindex);
            name = buf;
        }
        nr[i].r = r;
        nr[i].name = xstrdup(name);
        if (nr[i].name == NULL) {
            goto oom;
        }
    }
    qsort(nr, d->n_rows, sizeof(*nr), cmp_named);
    for (size_t i = 0; i < d->n_rows;) {
        size_t j = i + 1;
        while (j < d->n_rows && strcmp(nr[j].name, nr[i].name) == 0) {
            j++;
        }
        if (j - i > 1) {
            for (size_t k = i; k < j; k++) {
                size_t len = strlen(nr[k].name) + 16;
                char *n = malloc(len);
                if (n == NULL) {
                    goto oom;
                }
                snprintf(n, len, "%s#%" PRIu32, nr[k].name, nr[k].r->ifindex);
                free(nr[k].name);
                nr[k].name = n;
            }
        }
        i = j;
    }
    return nr;
oom:
    for (size_t i = 0; i < d->n_rows; i++) {
        free(nr[i].name);
    }
    free(nr);
    return NULL;
}

/* Speed in bits/s, or false when the device gives none. */
static bool row_speed(const row_t *r, uint64_t *bps)
{
    bool have_high = has(r, X_HIGH_SPEED);
    bool have_speed = has(r, C_SPEED);
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

/* Returns the id in *id, registering the interface series first if needed (0: none). */
static uint32_t iface_series(device_t *d, uint32_t *id, const char *name, const char *metric,
                             kvl_kind_t kind, const kvl_label_t *labels, size_t n_labels)
{
    if (*id == 0) {
        *id = register_series(d, KVL_SCOPE_INTERFACE, name, metric, kind, false, labels, n_labels);
    }
    return *id;
}

static void report_iface(device_t *d, row_t *r, const char *name)
{
    kvl_batcher_t *b = d->p->b;
    iface_t *f = find_iface(d, name);
    if (f == NULL) {
        KVL_LOG_ERROR(MOD, d->cfg->name, "out of memory for interface %s", name);
        return;
    }

    /* Labels; a change re-registers the interface's series (same ids, new definitions). */
    char idx[16], type[24];
    snprintf(idx, sizeof(idx), "%" PRIu32, r->ifindex);
    if (has(r, C_TYPE)) {
        snprintf(type, sizeof(type), "%" PRIu64, r->val[C_TYPE]);
    } else {
        type[0] = '\0';
    }
    const char *ifname = row_str(r, X_NAME);
    const char *descr = row_str(r, C_DESCR);
    const char *alias = row_str(r, X_ALIAS);
    kvl_label_t labels[] = {
        {"ifIndex", idx},
        {"ifName", ifname != NULL ? ifname : ""},
        {"ifDescr", descr != NULL ? descr : ""},
        {"ifAlias", alias != NULL ? alias : ""},
        {"ifType", type},
    };
    size_t siglen = 8;
    for (size_t i = 0; i < KVL_ARRAY_SIZE(labels); i++) {
        siglen += strlen(labels[i].value) + 1;
    }
    char *sig = malloc(siglen);
    if (sig == NULL) {
        return;
    }
    sig[0] = '\0';
    for (size_t i = 0; i < KVL_ARRAY_SIZE(labels); i++) {
        strcat(sig, labels[i].value);
        strcat(sig, "\x1f");
    }
    if (f->labels_sig == NULL || strcmp(f->labels_sig, sig) != 0) {
        free(f->labels_sig);
        f->labels_sig = sig;
        memset(f->id_ctr, 0, sizeof(f->id_ctr));
        f->id_oper = f->id_admin = f->id_speed = 0;
    } else {
        free(sig);
    }
    uint64_t speed = 0;
    bool have_speed = row_speed(r, &speed);

    bool disc = d->reboot_pending;
    if (has(r, X_DISC_TIME)) {
        if (f->have_disc && f->disc != r->val[X_DISC_TIME]) {
            disc = true;
        }
        f->have_disc = true;
        f->disc = r->val[X_DISC_TIME];
    }

    /* The group's time: when the PDU carrying in_octets arrived. */
    int64_t t = r->t_first;
    if (has(r, X_HC_IN_OCT)) {
        t = r->t_in64;
    } else if (has(r, C_IN_OCT)) {
        t = r->t_in32;
    }

    kvl_batcher_group_begin(b, t);
    for (size_t m = 0; m < N_CTR; m++) {
        const counter_def_t *cd = &counter_defs[m];
        int col = has(r, cd->hc) ? cd->hc : (has(r, cd->lo) ? cd->lo : -1);
        if (col < 0) {
            continue;
        }
        uint32_t id = iface_series(d, &f->id_ctr[m], name, cd->metric, KVL_KIND_COUNTER, labels,
                                   KVL_ARRAY_SIZE(labels));
        if (id == 0) {
            continue;
        }
        unsigned bits = (r->is64 & (1u << col)) != 0 ? 64 : 32;
        double max_rate = 0;
        if (cd->octets && have_speed && speed > 0) {
            max_rate = (bits == 32 ? 1.2 : 10.0) * (double)speed / 8.0;
        }
        bool d_ctr = disc || (f->ctr[m].have && f->ctr_bits[m] != bits);
        f->ctr_bits[m] = (uint8_t)bits;
        uint64_t out = 0;
        if (kvl_counter_update(&f->ctr[m], r->val[col], bits, t, max_rate, d_ctr, &out) ==
            KVL_COUNTER_KNOWN) {
            kvl_batcher_add(b, id, out);
        } else {
            kvl_batcher_add_unknown(b, id);
        }
    }
    if (has(r, C_OPER)) {
        uint32_t id = iface_series(d, &f->id_oper, name, "oper_status", KVL_KIND_GAUGE, labels,
                                   KVL_ARRAY_SIZE(labels));
        if (id != 0) {
            kvl_batcher_add(b, id, r->val[C_OPER]);
        }
    }
    if (has(r, C_ADMIN)) {
        uint32_t id = iface_series(d, &f->id_admin, name, "admin_status", KVL_KIND_GAUGE, labels,
                                   KVL_ARRAY_SIZE(labels));
        if (id != 0) {
            kvl_batcher_add(b, id, r->val[C_ADMIN]);
        }
    }
    if (have_speed) {
        uint32_t id = iface_series(d, &f->id_speed, name, "speed_bps", KVL_KIND_GAUGE, labels,
                                   KVL_ARRAY_SIZE(labels));
        if (id != 0) {
            kvl_batcher_add(b, id, speed);
        }
    }
    kvl_batcher_group_end(b);
}

/* --- the walk -------------------------------------------------------------------------------- */

static void walk_failed(device_t *d, const char *fmt, ...) KVL_PRINTF(2, 3);

static void walk_failed(device_t *d, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (!d->walk_failing) {
        d->walk_failing = true;
        KVL_LOG_WARN(MOD, d->cfg->name,
                     "interface walk failed: %s; interfaces not reported until it works", reason);
    } else {
        KVL_LOG_DEBUG(MOD, d->cfg->name, "interface walk failed again: %s", reason);
    }
    report_device(d, true, d->t_sys, -1);
    finish_poll(d);
}

static void walk_done(device_t *d)
{
    if (d->walk_failing) {
        d->walk_failing = false;
        KVL_LOG_INFO(MOD, d->cfg->name, "interface walk works again");
    }
    named_row_t *nr = name_rows(d);
    if (nr == NULL) {
        KVL_LOG_ERROR(MOD, d->cfg->name, "out of memory naming %zu interfaces", d->n_rows);
        report_device(d, true, d->t_sys, -1);
        finish_poll(d);
        return;
    }
    for (size_t i = 0; i < d->n_rows; i++) {
        report_iface(d, nr[i].r, nr[i].name);
        free(nr[i].name);
    }
    free(nr);
    d->reboot_pending = false;
    KVL_LOG_DEBUG(MOD, d->cfg->name, "poll done: %zu interfaces in %u requests", d->n_rows,
                  d->requests);
    report_device(d, true, d->t_sys, (long)d->n_rows);
    finish_poll(d);
}

/* Stores one walked value. Returns false when out of memory. */
static bool store_value(device_t *d, int col, uint32_t ifindex, const kvl_snmp_vb_t *vb, int64_t t)
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
    row_t *r = find_row(d, ifindex);
    if (r == NULL) {
        return false;
    }
    if (columns[col].str >= 0) {
        char *s = clean_string(vb->str, vb->str_len);
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

static void on_walk_response(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg)
{
    device_t *d = arg;
    KVL_UNUSED(s);
    if (res->status == KVL_SNMP_TIMEOUT) {
        walk_failed(d, "timeout after %d tries to %s", res->tries, kvl_snmp_peer(d->sess));
        return;
    }
    if (res->status == KVL_SNMP_SEND_FAILED) {
        walk_failed(d, "send failed: %s", res->error_text);
        return;
    }
    if (res->status == KVL_SNMP_REPORT) {
        walk_failed(d, "refused: %s", res->error_text);
        return;
    }
    int64_t t = kvl_now_ms();
    size_t n = d->n_req_cols;
    if (res->error_status != KVL_SNMP_ERR_NONE) {
        if (is_v1(d) && res->error_status == KVL_SNMP_ERR_NO_SUCH_NAME && res->error_index >= 1 &&
            (size_t)res->error_index <= n) {
            /* v1: nothing more in that column (or a Counter64 a v1 agent cannot send). */
            d->active[d->req_cols[res->error_index - 1]] = false;
            send_walk(d);
            return;
        }
        if (!is_v1(d) && res->error_status == KVL_SNMP_ERR_TOO_BIG && d->reps > 1) {
            d->reps_cap = d->reps / 2;
            KVL_LOG_DEBUG(MOD, d->cfg->name, "tooBig: max-repetitions lowered to %u", d->reps_cap);
            send_walk(d);
            return;
        }
        walk_failed(d, "error-status %d at index %d", res->error_status, res->error_index);
        return;
    }
    if (res->n_vbs == 0) {
        walk_failed(d, "empty response");
        return;
    }
    bool progress = false;
    for (size_t k = 0; k < res->n_vbs; k++) {
        int col = d->req_cols[k % n];
        const kvl_snmp_vb_t *vb = &res->vbs[k];
        if (!d->active[col]) {
            continue;
        }
        if (vb->type == KVL_SNMP_T_END_OF_MIB_VIEW || vb->type == KVL_SNMP_T_NO_SUCH_OBJECT ||
            vb->type == KVL_SNMP_T_NO_SUCH_INSTANCE ||
            !kvl_snmp_oid_has_prefix(&vb->oid, &d->base[col])) {
            d->active[col] = false;
            continue;
        }
        if (kvl_snmp_oid_cmp(&vb->oid, &d->cur[col]) <= 0) {
            d->active[col] = false;
            if (!d->nonincr_logged) {
                char o1[160], o2[160];
                d->nonincr_logged = true;
                KVL_LOG_WARN(MOD, d->cfg->name,
                             "OID not increasing (%s after %s); column ended there",
                             kvl_snmp_oid_format(&vb->oid, o1, sizeof(o1)),
                             kvl_snmp_oid_format(&d->cur[col], o2, sizeof(o2)));
            }
            continue;
        }
        d->cur[col] = vb->oid;
        progress = true;
        if (vb->oid.len != d->base[col].len + 1) {
            continue; /* not an ifIndex row */
        }
        if (!store_value(d, col, vb->oid.sub[d->base[col].len], vb, t)) {
            walk_failed(d, "out of memory");
            return;
        }
    }
    if (!progress) {
        bool any = false;
        for (size_t i = 0; i < n; i++) {
            any = any || d->active[d->req_cols[i]];
        }
        if (any) {
            walk_failed(d, "response without progress");
            return;
        }
    }
    send_walk(d);
}

/* Asks for the next rows of every column still active, or finishes the walk. */
static void send_walk(device_t *d)
{
    kvl_snmp_oid_t oids[N_COLS];
    size_t n = 0;
    for (int c = 0; c < N_COLS; c++) {
        if (d->active[c]) {
            d->req_cols[n] = c;
            oids[n] = d->cur[c];
            n++;
        }
    }
    d->n_req_cols = n;
    if (n == 0) {
        walk_done(d);
        return;
    }
    if (++d->requests > MAX_REQUESTS_PER_WALK) {
        walk_failed(d, "more than %d requests", MAX_REQUESTS_PER_WALK);
        return;
    }
    uint32_t reps = (uint32_t)(MAX_VBS_PER_RESPONSE / n);
    if (reps > d->reps_cap) {
        reps = d->reps_cap;
    }
    if (reps < 1) {
        reps = 1;
    }
    d->reps = reps;
    char err[256];
    int rc = kvl_snmp_send(d->sess, is_v1(d) ? KVL_SNMP_GETNEXT : KVL_SNMP_GETBULK, oids, n, reps,
                           -1, on_walk_response, d, err, sizeof(err));
    if (rc < 0) {
        walk_failed(d, "send failed: %s", err);
    }
}

static void start_walk(device_t *d)
{
    d->state = ST_WALK;
    d->requests = 0;
    clear_rows(d);
    for (int c = 0; c < N_COLS; c++) {
        const uint32_t *entry = columns[c].xtable ? ifx_entry : if_entry;
        size_t len = columns[c].xtable ? KVL_ARRAY_SIZE(ifx_entry) : KVL_ARRAY_SIZE(if_entry);
        kvl_snmp_oid_set(&d->base[c], entry, len);
        d->base[c].sub[len] = columns[c].sub;
        d->base[c].len = len + 1;
        d->cur[c] = d->base[c];
        d->active[c] = true;
    }
    send_walk(d);
}

/* --- system group ---------------------------------------------------------------------------- */

static void send_sys(device_t *d);

static void on_sys_response(kvl_snmp_session_t *s, const kvl_snmp_result_t *res, void *arg)
{
    device_t *d = arg;
    KVL_UNUSED(s);
    char reason[256];
    if (res->status == KVL_SNMP_TIMEOUT) {
        snprintf(reason, sizeof(reason), "timeout after %d tries to %s", res->tries,
                 kvl_snmp_peer(d->sess));
        mark_down(d, reason);
        return;
    }
    if (res->status == KVL_SNMP_SEND_FAILED) {
        snprintf(reason, sizeof(reason), "send to %s failed: %s", kvl_snmp_peer(d->sess),
                 res->error_text);
        mark_down(d, reason);
        return;
    }
    if (res->status == KVL_SNMP_REPORT) {
        snprintf(reason, sizeof(reason), "authentication failure: %s", res->error_text);
        mark_down(d, reason);
        return;
    }
    d->t_sys = kvl_now_ms();
    d->rtt_ms = res->rtt_ms;
    if (res->error_status != KVL_SNMP_ERR_NONE) {
        if (res->error_status == KVL_SNMP_ERR_NO_SUCH_NAME && res->error_index >= 1 &&
            (size_t)res->error_index <= d->n_sys_oids) {
            /* v1: that object does not exist; ask again for the rest. */
            size_t i = (size_t)res->error_index - 1;
            memmove(&d->sys_oids[i], &d->sys_oids[i + 1],
                    (d->n_sys_oids - i - 1) * sizeof(d->sys_oids[0]));
            d->n_sys_oids--;
            if (d->n_sys_oids > 0) {
                send_sys(d);
                return;
            }
        } else {
            KVL_LOG_DEBUG(MOD, d->cfg->name, "system GET: error-status %d at index %d",
                          res->error_status, res->error_index);
        }
    } else {
        for (size_t i = 0; i < res->n_vbs; i++) {
            const kvl_snmp_vb_t *vb = &res->vbs[i];
            if (vb->oid.len == KVL_ARRAY_SIZE(sys_uptime) &&
                memcmp(vb->oid.sub, sys_uptime, sizeof(sys_uptime)) == 0 &&
                vb->type == KVL_SNMP_T_TIMETICKS) {
                d->have_uptime = true;
                d->uptime = (uint32_t)vb->u;
            } else if (vb->oid.len == KVL_ARRAY_SIZE(sys_name) &&
                       memcmp(vb->oid.sub, sys_name, sizeof(sys_name)) == 0 &&
                       vb->type == KVL_SNMP_T_OCTETS) {
                char *name = clean_string(vb->str, vb->str_len);
                if (name != NULL) {
                    free(d->sysname);
                    d->sysname = name;
                }
            }
        }
    }
    mark_up(d);
    if (d->have_uptime) {
        if (d->have_prev_uptime && d->uptime < d->prev_uptime) {
            KVL_LOG_INFO(MOD, d->cfg->name,
                         "sysUpTime went back (%" PRIu32 " -> %" PRIu32 "): counters restart",
                         d->prev_uptime, d->uptime);
            d->reboot_pending = true;
        }
        d->have_prev_uptime = true;
        d->prev_uptime = d->uptime;
    }
    start_walk(d);
}

static void send_sys(device_t *d)
{
    char err[256];
    int rc = kvl_snmp_send(d->sess, KVL_SNMP_GET, d->sys_oids, d->n_sys_oids, 0, -1,
                           on_sys_response, d, err, sizeof(err));
    if (rc < 0) {
        char reason[320];
        snprintf(reason, sizeof(reason), "send to %s failed: %s", kvl_snmp_peer(d->sess), err);
        mark_down(d, reason);
    }
}

static void start_poll(device_t *d)
{
    d->state = ST_SYS;
    d->poll_start_ms = kvl_now_ms();
    if (d->sess == NULL) {
        kvl_snmp_target_t t = {
            .name = d->cfg->name,
            .address = d->cfg->address,
            .port = (uint16_t)d->cfg->port,
            .version = (kvl_snmp_version_t)d->cfg->version,
            .community = d->cfg->community != NULL ? d->cfg->community : "",
            .usm = d->cfg->credentials,
            .timeout_ms = d->cfg->timeout_ms,
            .retries = (int)d->cfg->retries,
        };
        char err[512];
        d->sess = kvl_snmp_open(d->p->loop, &t, err, sizeof(err));
        if (d->sess == NULL) {
            mark_down(d, err);
            return;
        }
    }
    d->have_uptime = false;
    d->rtt_ms = 0;
    kvl_snmp_oid_set(&d->sys_oids[0], sys_uptime, KVL_ARRAY_SIZE(sys_uptime));
    kvl_snmp_oid_set(&d->sys_oids[1], sys_name, KVL_ARRAY_SIZE(sys_name));
    d->n_sys_oids = 2;
    send_sys(d);
}

/* --- scheduling ------------------------------------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
    device_t *d = t->data;
    kvl_poller_t *p = d->p;
    if (p->once) {
        if (d->state == ST_IDLE && !d->polled_once) {
            start_poll(d);
        }
        return;
    }
    /* Next tick on the fixed schedule first, skipping any the loop was too late for. */
    uint64_t interval = (uint64_t)(d->cfg->interval_ms > 0 ? d->cfg->interval_ms : 60000);
    uint64_t now = uv_now(p->loop);
    unsigned skipped = 0;
    d->next_due += interval;
    while (d->next_due <= now) {
        d->next_due += interval;
        skipped++;
    }
    if (skipped > 0) {
        KVL_LOG_DEBUG(MOD, d->cfg->name, "loop late: %u ticks skipped", skipped);
    }
    uv_timer_start(&d->tick, on_tick, d->next_due - now, 0);
    if (d->state != ST_IDLE) {
        KVL_LOG_DEBUG(MOD, d->cfg->name, "previous poll still running: tick skipped");
        return;
    }
    start_poll(d);
}

/* --- life cycle ------------------------------------------------------------------------------ */

static void free_dev_state(device_t *d)
{
    clear_rows(d);
    free(d->rows);
    for (size_t i = 0; i < d->n_ifs; i++) {
        free_iface(d->ifs[i]);
    }
    free(d->ifs);
    free(d->sysname);
    free(d->dev_sig);
}

/* Drops one open handle; the last one frees the poller. */
static void poller_release(kvl_poller_t *p)
{
    if (--p->open_handles > 0) {
        return;
    }
    for (size_t i = 0; i < p->n_devs; i++) {
        free_dev_state(&p->devs[i]);
    }
    free(p->devs);
    free(p);
}

static void on_done_timer_closed(uv_handle_t *h)
{
    poller_release(h->data);
}

static void on_tick_closed(uv_handle_t *h)
{
    device_t *d = h->data;
    poller_release(d->p);
}

kvl_poller_t *kvl_poller_new(uv_loop_t *loop, const kvl_agent_cfg_t *cfg, kvl_batcher_t *b)
{
    kvl_snmp_init();
    kvl_poller_t *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        KVL_LOG_ERROR(MOD, NULL, "out of memory creating the poller");
        return NULL;
    }
    p->loop = loop;
    p->cfg = cfg;
    p->b = b;
    p->n_devs = cfg->n_devices;
    p->devs = calloc(p->n_devs > 0 ? p->n_devs : 1, sizeof(*p->devs));
    if (p->devs == NULL) {
        free(p);
        KVL_LOG_ERROR(MOD, NULL, "out of memory creating the poller");
        return NULL;
    }
    uv_timer_init(loop, &p->done_timer);
    p->done_timer.data = p;
    p->open_handles = 1;
    uint64_t now = uv_now(loop);
    for (size_t i = 0; i < p->n_devs; i++) {
        device_t *d = &p->devs[i];
        d->p = p;
        d->cfg = &cfg->devices[i];
        int64_t ims = d->cfg->interval_ms > 0 ? d->cfg->interval_ms : 60000;
        d->interval_s = (uint32_t)((ims + 500) / 1000);
        if (d->interval_s == 0) {
            d->interval_s = 1;
        }
        d->reps_cap =
            d->cfg->max_repetitions > 0 ? (uint32_t)d->cfg->max_repetitions : DEFAULT_MAX_REPS;
        unsigned char a[16];
        if (inet_pton(AF_INET, d->cfg->address, a) != 1 &&
            inet_pton(AF_INET6, d->cfg->address, a) != 1) {
            KVL_LOG_WARN(MOD, d->cfg->name,
                         "address '%s' is not a numeric IP address: net-snmp resolves it with "
                         "a blocking lookup when the session opens",
                         d->cfg->address);
        }
        uv_timer_init(loop, &d->tick);
        d->tick.data = d;
        p->open_handles++;
        /* First polls spread over the first second, in configuration order. */
        uint64_t delay = p->n_devs > 1 ? (uint64_t)(i * 1000u / p->n_devs) : 0;
        d->next_due = now + delay;
        uv_timer_start(&d->tick, on_tick, delay, 0);
    }
    if (p->n_devs == 0) {
        KVL_LOG_INFO(MOD, NULL, "no devices to poll");
    }
    return p;
}

void kvl_poller_set_once(kvl_poller_t *p, void (*done)(void *arg), void *arg)
{
    if (p == NULL) {
        return;
    }
    p->once = true;
    p->done = done;
    p->done_arg = arg;
    if (p->n_devs == 0) {
        uv_timer_start(&p->done_timer, on_done_timer, 0, 0);
    }
}

void kvl_poller_free(kvl_poller_t *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->n_devs; i++) {
        device_t *d = &p->devs[i];
        kvl_snmp_close(d->sess); /* pending requests are dropped without callbacks */
        d->sess = NULL;
        d->state = ST_IDLE;
        uv_timer_stop(&d->tick);
        uv_close((uv_handle_t *)&d->tick, on_tick_closed);
    }
    uv_timer_stop(&p->done_timer);
    uv_close((uv_handle_t *)&p->done_timer, on_done_timer_closed);
}
