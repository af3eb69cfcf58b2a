/*
 * test_poller.c — agent/snmp/poller.c against link-time fakes of the two modules it talks to.
 *
 * The fake SNMP layer (every kvl_snmp_* symbol, so agent/snmp/snmp.c is not linked) answers
 * from an in-memory MIB per device with real GET / GETNEXT / GETBULK semantics, v1 errors
 * (noSuchName with error-index) or v2c exceptions, an optional response-size cap, tooBig,
 * silence above a size, SNMPv3 Reports, delays and dead devices, always asynchronously on
 * the loop, and records what was asked (operations, retries, interfaces, requests in flight
 * over all devices). The fake batcher records series definitions, samples and events.
 * Tests check names, metric selection, counter discontinuities, v1 fallbacks, reachability
 * transitions and their reasons, the schedule's spread, the in-flight cap and its fairness,
 * dead-device probing, adaptive repetitions, rediscovery triggers, interface filters,
 * interfaces whose names are refused, and the agent's own statistics.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "agent_config.h"
#include "batcher.h"
#include "log.h"
#include "names.h"
#include "poll_sched.h"
#include "poller.h"
#include "snmp.h"
#include "stats.h"
#include "timeutil.h"

/* --- fake devices ----------------------------------------------------------------------------- */

typedef struct mib_entry {
    kvl_snmp_oid_t oid;
    kvl_snmp_type_t type;
    uint64_t u;
    int64_t i;
    char str[320];
} mib_entry_t;

typedef struct fake_dev {
    const char *name;
    mib_entry_t e[600];
    size_t n;
    bool dead;                /* never answers */
    bool fail_send;           /* kvl_snmp_send fails synchronously */
    uint32_t too_big_above;   /* GETBULK asking more repetitions than this: tooBig */
    size_t max_vbs;           /* response varbinds cap (0: 64) */
    bool v1_c64_skip;         /* v1 GETNEXT skips Counter64 (else noSuchName) */
    uint64_t delay_ms;        /* answer delay */
    const char *regress;      /* column whose GETNEXT answers jump back to its first row */
    kvl_snmp_report_t report; /* answers every request with this SNMPv3 Report */
    uint32_t silent_above;    /* GETBULK asking more repetitions than this: no answer */
    int in_flight, max_in_flight;
    unsigned requests;
    uint32_t max_reps_seen;
    unsigned n_get, n_bulk, n_next, n_too_big;
    unsigned n_no_retries; /* requests sent with retries 0 */
    int last_retries;
    bool sent_any;
    uint64_t first_at;   /* loop time of the first request */
    uint64_t poll_at[8]; /* loop time of the first polls' system GETs (sysUpTime.0) */
    size_t n_poll_at;
    bool asked[32];          /* ifIndex (< 32) asked for by a GET of an interface column */
    uint32_t bulk_reps[512]; /* max-repetitions of each GETBULK answered in full */
    size_t n_bulk_reps;
    unsigned opens; /* sessions opened to it */
    int open_now;   /* of those, not closed yet */
    int max_open_now;
} fake_dev_t;

#define MAX_FAKE_DEVS 8
static fake_dev_t *fake_devs[MAX_FAKE_DEVS];
static size_t n_fake_devs;
static int g_in_flight, g_max_in_flight; /* over all devices */
static size_t order[4096];               /* device index of each request, in order */
static size_t n_order;

static void oid_parse(kvl_snmp_oid_t *o, const char *s)
{
    o->len = 0;
    while (*s != '\0') {
        if (*s == '.') {
            s++;
        }
        char *end;
        o->sub[o->len++] = (uint32_t)strtoul(s, &end, 10);
        s = end;
    }
}

static void mib_put(fake_dev_t *d, const char *oid, kvl_snmp_type_t type, uint64_t u,
                    const char *str)
{
    mib_entry_t e;
    memset(&e, 0, sizeof(e));
    oid_parse(&e.oid, oid);
    e.type = type;
    e.u = u;
    e.i = (int64_t)u;
    if (str != NULL) {
        snprintf(e.str, sizeof(e.str), "%s", str);
    }
    size_t pos = 0;
    while (pos < d->n && kvl_snmp_oid_cmp(&d->e[pos].oid, &e.oid) < 0) {
        pos++;
    }
    if (pos < d->n && kvl_snmp_oid_cmp(&d->e[pos].oid, &e.oid) == 0) {
        d->e[pos] = e;
        return;
    }
    assert_true(d->n < KVL_ARRAY_SIZE(d->e));
    memmove(&d->e[pos + 1], &d->e[pos], (d->n - pos) * sizeof(e));
    d->e[pos] = e;
    d->n++;
}

static void mib_del(fake_dev_t *d, const char *oid)
{
    kvl_snmp_oid_t o;
    oid_parse(&o, oid);
    for (size_t i = 0; i < d->n; i++) {
        if (kvl_snmp_oid_cmp(&d->e[i].oid, &o) == 0) {
            memmove(&d->e[i], &d->e[i + 1], (d->n - i - 1) * sizeof(d->e[0]));
            d->n--;
            return;
        }
    }
}

#define IF(col, idx) ".1.3.6.1.2.1.2.2.1." #col "." #idx
#define IFX(col, idx) ".1.3.6.1.2.1.31.1.1.1." #col "." #idx

static void mib_str(fake_dev_t *d, const char *oid, const char *s)
{
    mib_put(d, oid, KVL_SNMP_T_OCTETS, 0, s);
}
static void mib_int(fake_dev_t *d, const char *oid, uint64_t v)
{
    mib_put(d, oid, KVL_SNMP_T_INTEGER, v, NULL);
}
static void mib_c32(fake_dev_t *d, const char *oid, uint64_t v)
{
    mib_put(d, oid, KVL_SNMP_T_COUNTER32, v, NULL);
}
static void mib_c64(fake_dev_t *d, const char *oid, uint64_t v)
{
    mib_put(d, oid, KVL_SNMP_T_COUNTER64, v, NULL);
}
static void mib_gauge(fake_dev_t *d, const char *oid, uint64_t v)
{
    mib_put(d, oid, KVL_SNMP_T_GAUGE32, v, NULL);
}
static void mib_ticks(fake_dev_t *d, const char *oid, uint64_t v)
{
    mib_put(d, oid, KVL_SNMP_T_TIMETICKS, v, NULL);
}

static fake_dev_t *fake_dev_new(const char *name)
{
    fake_dev_t *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->name = name;
    assert_true(n_fake_devs < MAX_FAKE_DEVS);
    fake_devs[n_fake_devs++] = d;
    mib_ticks(d, ".1.3.6.1.2.1.1.3.0", 100000);
    mib_str(d, ".1.3.6.1.2.1.1.5.0", "sw1.example");
    mib_str(d, ".1.3.6.1.2.1.1.1.0", "a device");
    mib_str(d, ".1.3.6.1.2.1.4.1.0", "after the interfaces"); /* something past ifTable */
    mib_str(d, ".1.3.6.1.2.1.47.1.0", "after ifXTable");
    return d;
}

/* --- fake SNMP layer (replaces agent/snmp/snmp.c) --------------------------------------------- */

struct kvl_snmp_session {
    uv_timer_t timer;
    fake_dev_t *dev;
    kvl_snmp_version_t version;
    int retries;
    int64_t timeout_ms;
    char peer[64];
    bool pending;
    kvl_snmp_op_t op;
    kvl_snmp_oid_t oids[64];
    size_t n;
    uint32_t reps;
    int req_retries;
    kvl_snmp_cb cb;
    void *arg;
};

void kvl_snmp_log_quiet(bool quiet)
{
    (void)quiet;
}

void kvl_snmp_init(void)
{
}

kvl_snmp_session_t *kvl_snmp_open(uv_loop_t *loop, const kvl_snmp_target_t *t, char *err,
                                  size_t errlen)
{
    fake_dev_t *dev = NULL;
    for (size_t i = 0; i < n_fake_devs; i++) {
        if (strcmp(fake_devs[i]->name, t->name) == 0) {
            dev = fake_devs[i];
        }
    }
    if (dev == NULL) {
        snprintf(err, errlen, "no such fake device");
        return NULL;
    }
    kvl_snmp_session_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->dev = dev;
    dev->opens++;
    if (++dev->open_now > dev->max_open_now) {
        dev->max_open_now = dev->open_now;
    }
    s->version = t->version;
    s->retries = t->retries;
    s->timeout_ms = t->timeout_ms;
    snprintf(s->peer, sizeof(s->peer), "%s:%u", t->address, (unsigned)t->port);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    return s;
}

static void on_fake_closed(uv_handle_t *h)
{
    free(h->data);
}

void kvl_snmp_close(kvl_snmp_session_t *s)
{
    if (s == NULL) {
        return;
    }
    if (s->pending) {
        s->dev->in_flight--;
        g_in_flight--;
    }
    s->dev->open_now--;
    uv_close((uv_handle_t *)&s->timer, on_fake_closed);
}

bool kvl_snmp_reopen_is_cheap(const kvl_snmp_session_t *s)
{
    return s->version != KVL_SNMP_V3; /* as agent/snmp/snmp.c: our own socket for v1/v2c */
}

const char *kvl_snmp_report_text(kvl_snmp_report_t r)
{
    return r == KVL_SNMP_REPORT_WRONG_DIGEST ? "wrong digest (usmStatsWrongDigests)" : "report";
}

const char *kvl_snmp_peer(const kvl_snmp_session_t *s)
{
    return s->peer;
}

static kvl_snmp_vb_t resp_vbs[256];

static void vb_from(kvl_snmp_vb_t *vb, const mib_entry_t *e)
{
    memset(vb, 0, sizeof(*vb));
    vb->oid = e->oid;
    vb->type = e->type;
    vb->u = e->u;
    vb->integer = e->i;
    vb->str = (const uint8_t *)e->str;
    vb->str_len = strlen(e->str);
}

static const mib_entry_t *mib_next(const fake_dev_t *d, const kvl_snmp_oid_t *o, bool skip_c64)
{
    if (d->regress != NULL) {
        kvl_snmp_oid_t col;
        oid_parse(&col, d->regress);
        if (kvl_snmp_oid_has_prefix(o, &col) && o->len > col.len) {
            for (size_t i = 0; i < d->n; i++) {
                if (kvl_snmp_oid_has_prefix(&d->e[i].oid, &col)) {
                    return &d->e[i]; /* the column's first row again: not increasing */
                }
            }
        }
    }
    for (size_t i = 0; i < d->n; i++) {
        if (kvl_snmp_oid_cmp(&d->e[i].oid, o) > 0 &&
            !(skip_c64 && d->e[i].type == KVL_SNMP_T_COUNTER64)) {
            return &d->e[i];
        }
    }
    return NULL;
}

static void respond_error(kvl_snmp_session_t *s, kvl_snmp_result_t *r, int status, size_t index)
{
    r->error_status = status;
    r->error_index = (int)index;
    for (size_t i = 0; i < s->n; i++) {
        memset(&resp_vbs[i], 0, sizeof(resp_vbs[i]));
        resp_vbs[i].oid = s->oids[i];
    }
    r->n_vbs = s->n;
}

static void on_fake_answer(uv_timer_t *t)
{
    kvl_snmp_session_t *s = t->data;
    fake_dev_t *d = s->dev;
    kvl_snmp_result_t r;
    memset(&r, 0, sizeof(r));
    r.tries = 1;
    r.vbs = resp_vbs;
    s->pending = false;
    d->in_flight--;
    g_in_flight--;
    bool v1 = s->version == KVL_SNMP_V1;
    size_t cap = d->max_vbs != 0 ? d->max_vbs : 64;
    if (d->dead ||
        (s->op == KVL_SNMP_GETBULK && d->silent_above > 0 && s->reps > d->silent_above)) {
        r.status = KVL_SNMP_TIMEOUT;
        r.tries = s->req_retries + 1;
        r.vbs = NULL;
    } else if (d->report != KVL_SNMP_REPORT_NONE) {
        r.status = KVL_SNMP_REPORT;
        r.report = d->report;
        r.error_text = kvl_snmp_report_text(d->report);
        r.vbs = NULL;
    } else if (s->op == KVL_SNMP_GET) {
        r.rtt_ms = 1.5;
        for (size_t i = 0; i < s->n; i++) {
            const mib_entry_t *e = NULL;
            for (size_t k = 0; k < d->n; k++) {
                if (kvl_snmp_oid_cmp(&d->e[k].oid, &s->oids[i]) == 0) {
                    e = &d->e[k];
                }
            }
            if (e == NULL || (v1 && e->type == KVL_SNMP_T_COUNTER64)) {
                if (v1) {
                    respond_error(s, &r, KVL_SNMP_ERR_NO_SUCH_NAME, i + 1);
                    break;
                }
                memset(&resp_vbs[i], 0, sizeof(resp_vbs[i]));
                resp_vbs[i].oid = s->oids[i];
                resp_vbs[i].type = KVL_SNMP_T_NO_SUCH_OBJECT;
            } else {
                vb_from(&resp_vbs[i], e);
            }
            r.n_vbs = i + 1;
        }
    } else {
        uint32_t reps = s->op == KVL_SNMP_GETBULK ? s->reps : 1;
        if (s->op == KVL_SNMP_GETBULK && d->too_big_above > 0 && reps > d->too_big_above) {
            respond_error(s, &r, KVL_SNMP_ERR_TOO_BIG, 0);
            d->n_too_big++;
        } else {
            if (s->op == KVL_SNMP_GETBULK && d->n_bulk_reps < KVL_ARRAY_SIZE(d->bulk_reps)) {
                d->bulk_reps[d->n_bulk_reps++] = reps;
            }
            kvl_snmp_oid_t cur[64];
            memcpy(cur, s->oids, s->n * sizeof(cur[0]));
            size_t n = 0;
            for (uint32_t rep = 0; rep < reps && r.error_status == 0; rep++) {
                for (size_t i = 0; i < s->n && n < cap; i++) {
                    const mib_entry_t *e = mib_next(d, &cur[i], v1 && d->v1_c64_skip);
                    if (v1 && (e == NULL || e->type == KVL_SNMP_T_COUNTER64)) {
                        respond_error(s, &r, KVL_SNMP_ERR_NO_SUCH_NAME, i + 1);
                        n = s->n;
                        break;
                    }
                    if (e == NULL) {
                        memset(&resp_vbs[n], 0, sizeof(resp_vbs[n]));
                        resp_vbs[n].oid = cur[i];
                        resp_vbs[n].type = KVL_SNMP_T_END_OF_MIB_VIEW;
                    } else {
                        vb_from(&resp_vbs[n], e);
                        cur[i] = e->oid;
                    }
                    n++;
                }
            }
            r.n_vbs = n;
        }
    }
    s->cb(s, &r, s->arg);
}

int kvl_snmp_send(kvl_snmp_session_t *s, kvl_snmp_op_t op, const kvl_snmp_oid_t *oids, size_t n,
                  uint32_t max_reps, int retries, kvl_snmp_cb cb, void *arg, char *err,
                  size_t errlen)
{
    fake_dev_t *d = s->dev;
    assert_false(s->pending); /* one request at a time per device */
    assert_true(n <= KVL_ARRAY_SIZE(s->oids));
    assert_true(n <= 60);
    if (d->fail_send) {
        snprintf(err, errlen, "Failure in sendto (fake)");
        return KVL_EIO;
    }
    if (!d->sent_any) {
        d->sent_any = true;
        d->first_at = uv_now(s->timer.loop);
    }
    kvl_snmp_oid_t uptime;
    oid_parse(&uptime, ".1.3.6.1.2.1.1.3.0");
    if (op == KVL_SNMP_GET && n > 0 && kvl_snmp_oid_cmp(&oids[0], &uptime) == 0 &&
        d->n_poll_at < KVL_ARRAY_SIZE(d->poll_at)) {
        d->poll_at[d->n_poll_at++] = uv_now(s->timer.loop);
    }
    d->last_retries = retries;
    d->n_no_retries += retries == 0;
    d->n_get += op == KVL_SNMP_GET;
    d->n_bulk += op == KVL_SNMP_GETBULK;
    d->n_next += op == KVL_SNMP_GETNEXT;
    for (size_t i = 0; op == KVL_SNMP_GET && i < n; i++) {
        kvl_snmp_oid_t ift, ifx;
        oid_parse(&ift, ".1.3.6.1.2.1.2.2.1");
        oid_parse(&ifx, ".1.3.6.1.2.1.31.1.1.1");
        if (((kvl_snmp_oid_has_prefix(&oids[i], &ift) && oids[i].len == ift.len + 2) ||
             (kvl_snmp_oid_has_prefix(&oids[i], &ifx) && oids[i].len == ifx.len + 2)) &&
            oids[i].sub[oids[i].len - 1] < KVL_ARRAY_SIZE(d->asked)) {
            d->asked[oids[i].sub[oids[i].len - 1]] = true;
        }
    }
    for (size_t i = 0; i < n_fake_devs; i++) {
        if (fake_devs[i] == d && n_order < KVL_ARRAY_SIZE(order)) {
            order[n_order++] = i;
        }
    }
    if (s->version == KVL_SNMP_V1) {
        assert_true(op != KVL_SNMP_GETBULK);
    }
    if (op == KVL_SNMP_GETBULK) {
        assert_true(max_reps >= 1);
        assert_true(n * max_reps <= 60 || max_reps == 1);
        if (max_reps > d->max_reps_seen) {
            d->max_reps_seen = max_reps;
        }
    }
    s->pending = true;
    s->op = op;
    memcpy(s->oids, oids, n * sizeof(oids[0]));
    s->n = n;
    s->reps = max_reps;
    s->req_retries = retries >= 0 ? retries : s->retries;
    s->cb = cb;
    s->arg = arg;
    d->requests++;
    if (++d->in_flight > d->max_in_flight) {
        d->max_in_flight = d->in_flight;
    }
    if (++g_in_flight > g_max_in_flight) {
        g_max_in_flight = g_in_flight;
    }
    bool silent =
        d->dead || (op == KVL_SNMP_GETBULK && d->silent_above > 0 && max_reps > d->silent_above);
    uint64_t delay = silent ? (uint64_t)(s->timeout_ms * (s->req_retries + 1)) : d->delay_ms;
    uv_timer_start(&s->timer, on_fake_answer, delay, 0);
    return 0;
}

/* --- fake batcher (replaces agent/batcher.c) ------------------------------------------------ */

typedef struct fseries {
    char device[64], instance[128], metric[32];
    kvl_scope_t scope;
    kvl_kind_t kind;
    uint32_t interval_s;
    bool real;
    size_t n_labels;
    char lk[8][32], lv[8][128];
    unsigned registrations;
} fseries_t;

typedef struct fsample {
    uint32_t id;
    bool unknown;
    uint64_t v;
    double r;
    int64_t t;
} fsample_t;

typedef struct fevent {
    char device[64], kind[32], text[256];
    char index[16];   /* its `index` field, "" when absent */
    char fields[256]; /* "key=value " each */
    kvl_severity_t severity;
} fevent_t;

static fseries_t series[2048];
static size_t n_series;
static fsample_t samples[20000];
static size_t n_samples;
static fevent_t events[64];
static size_t n_events;
static int64_t group_t;
static bool in_group;

static unsigned n_refused; /* registrations refused for their names */

uint32_t kvl_batcher_series(kvl_batcher_t *b, const kvl_series_key_t *k)
{
    (void)b;
    /* As the registry: no id for a name the collector could not archive (names.h). */
    if (kvl_name_check("device", k->device, NULL, 0) != 0 ||
        kvl_name_check("instance", k->instance, NULL, 0) != 0) {
        n_refused++;
        return 0;
    }
    size_t i;
    for (i = 0; i < n_series; i++) {
        fseries_t *s = &series[i];
        if (strcmp(s->device, k->device) == 0 && s->scope == k->scope &&
            strcmp(s->instance, k->instance) == 0 && strcmp(s->metric, k->metric) == 0) {
            break;
        }
    }
    assert_true(i < KVL_ARRAY_SIZE(series));
    fseries_t *s = &series[i];
    if (i == n_series) {
        n_series++;
        memset(s, 0, sizeof(*s));
        snprintf(s->device, sizeof(s->device), "%s", k->device);
        snprintf(s->instance, sizeof(s->instance), "%s", k->instance);
        snprintf(s->metric, sizeof(s->metric), "%s", k->metric);
        s->scope = k->scope;
    }
    s->kind = k->kind;
    s->interval_s = k->interval_s;
    s->real = k->real;
    s->n_labels = k->n_labels;
    assert_true(k->n_labels <= 8);
    for (size_t l = 0; l < k->n_labels; l++) {
        snprintf(s->lk[l], sizeof(s->lk[l]), "%s", k->labels[l].key);
        snprintf(s->lv[l], sizeof(s->lv[l]), "%s", k->labels[l].value);
    }
    s->registrations++;
    return (uint32_t)(i + 1);
}

/* Like the real batcher: each metric of the family a series, with consecutive ids. */
uint32_t kvl_batcher_instance(kvl_batcher_t *b, const kvl_instance_key_t *k)
{
    uint32_t first = 0;
    for (size_t i = 0; i < k->family->n; i++) {
        kvl_series_key_t sk = {.device = k->device,
                               .scope = k->scope,
                               .instance = k->instance,
                               .metric = k->family->metrics[i],
                               .kind = k->family->kinds[i],
                               .interval_s = k->interval_s,
                               .real = k->family->reals != NULL && k->family->reals[i],
                               .labels = k->labels,
                               .n_labels = k->n_labels};
        uint32_t id = kvl_batcher_series(b, &sk);
        if (i == 0) {
            first = id;
            if (id == 0) {
                return 0;
            }
        }
        assert_int_equal(id, first + i);
    }
    return first;
}

static char *interned[4096];
static size_t n_interned;

const char *kvl_batcher_intern(kvl_batcher_t *b, const char *str)
{
    (void)b;
    for (size_t i = 0; i < n_interned; i++) {
        if (strcmp(interned[i], str) == 0) {
            return interned[i];
        }
    }
    assert_true(n_interned < KVL_ARRAY_SIZE(interned));
    interned[n_interned] = strdup(str);
    return interned[n_interned++];
}

const char *kvl_batcher_instance_of(const kvl_batcher_t *b, uint32_t id)
{
    (void)b;
    return id >= 1 && id <= n_series ? kvl_batcher_intern(NULL, series[id - 1].instance) : NULL;
}

void kvl_batcher_group_begin(kvl_batcher_t *b, int64_t time_ms)
{
    (void)b;
    assert_false(in_group);
    in_group = true;
    group_t = time_ms;
}

static void add_sample(uint32_t id, bool unknown, uint64_t v, double r)
{
    assert_true(in_group);
    assert_true(id >= 1 && id <= n_series);
    assert_true(n_samples < KVL_ARRAY_SIZE(samples));
    samples[n_samples++] = (fsample_t){id, unknown, v, r, group_t};
}

void kvl_batcher_add(kvl_batcher_t *b, uint32_t id, uint64_t value)
{
    (void)b;
    assert_false(series[id - 1].real);
    add_sample(id, false, value, 0);
}

void kvl_batcher_add_real(kvl_batcher_t *b, uint32_t id, double value)
{
    (void)b;
    assert_true(series[id - 1].real);
    add_sample(id, false, 0, value);
}

void kvl_batcher_add_unknown(kvl_batcher_t *b, uint32_t id)
{
    (void)b;
    add_sample(id, true, 0, 0);
}

void kvl_batcher_group_end(kvl_batcher_t *b)
{
    (void)b;
    assert_true(in_group);
    in_group = false;
}

void kvl_batcher_event(kvl_batcher_t *b, const kvl_event_t *ev)
{
    (void)b;
    assert_true(n_events < KVL_ARRAY_SIZE(events));
    fevent_t *e = &events[n_events++];
    snprintf(e->device, sizeof(e->device), "%s", ev->device);
    snprintf(e->kind, sizeof(e->kind), "%s", ev->kind);
    snprintf(e->text, sizeof(e->text), "%s", ev->text);
    e->fields[0] = '\0';
    for (size_t i = 0; i < ev->n_fields; i++) {
        size_t len = strlen(e->fields);
        snprintf(e->fields + len, sizeof(e->fields) - len, "%s=%s ", ev->fields[i].key,
                 ev->fields[i].value);
    }
    e->severity = ev->severity;
    e->index[0] = '\0';
    for (size_t i = 0; i < ev->n_fields; i++) {
        if (strcmp(ev->fields[i].key, "index") == 0) {
            snprintf(e->index, sizeof(e->index), "%s", ev->fields[i].value);
        }
    }
}

/* --- harness ---------------------------------------------------------------------------------- */

static const fseries_t *find_series(const char *dev, const char *instance, const char *metric)
{
    for (size_t i = 0; i < n_series; i++) {
        if (strcmp(series[i].device, dev) == 0 && strcmp(series[i].instance, instance) == 0 &&
            strcmp(series[i].metric, metric) == 0) {
            return &series[i];
        }
    }
    return NULL;
}

static uint32_t series_id(const char *dev, const char *instance, const char *metric)
{
    const fseries_t *s = find_series(dev, instance, metric);
    return s != NULL ? (uint32_t)(s - series) + 1 : 0;
}

static const char *label(const fseries_t *s, const char *key)
{
    for (size_t i = 0; i < s->n_labels; i++) {
        if (strcmp(s->lk[i], key) == 0) {
            return s->lv[i];
        }
    }
    return NULL;
}

/* The nth (0-based) sample of a series, or NULL. */
static const fsample_t *nth_sample(uint32_t id, size_t nth)
{
    for (size_t i = 0; i < n_samples; i++) {
        if (samples[i].id == id && nth-- == 0) {
            return &samples[i];
        }
    }
    return NULL;
}

static size_t count_samples(uint32_t id)
{
    size_t n = 0;
    for (size_t i = 0; i < n_samples; i++) {
        n += samples[i].id == id;
    }
    return n;
}

static size_t polls_of(const char *dev)
{
    uint32_t id = series_id(dev, "", "reachable");
    return id != 0 ? count_samples(id) : 0;
}

/* The latest sample of a series, or NULL. */
static const fsample_t *last_sample(uint32_t id)
{
    for (size_t i = n_samples; i-- > 0;) {
        if (samples[i].id == id) {
            return &samples[i];
        }
    }
    return NULL;
}

static const fevent_t *find_event(const char *device, const char *kind)
{
    for (size_t i = 0; i < n_events; i++) {
        if (strcmp(events[i].device, device) == 0 && strcmp(events[i].kind, kind) == 0) {
            return &events[i];
        }
    }
    return NULL;
}

static size_t count_events(const char *kind)
{
    size_t n = 0;
    for (size_t i = 0; i < n_events; i++) {
        n += strcmp(events[i].kind, kind) == 0;
    }
    return n;
}

typedef struct world {
    uv_loop_t loop;
    kvl_agent_cfg_t cfg;
    kvl_device_cfg_t devs[MAX_FAKE_DEVS];
    kvl_poller_t *p;
    kvl_stats_t *stats; /* agent/stats.c reading the poller, when a test starts it */
    bool done;
} world_t;

static void on_wake(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until pred() holds or ms pass. Returns pred(). */
static bool run_until(world_t *w, bool (*pred)(world_t *w, const void *arg), const void *arg,
                      uint64_t ms)
{
    uv_timer_t wake;
    uv_timer_init(&w->loop, &wake);
    uv_timer_start(&wake, on_wake, 10, 10);
    uint64_t deadline = uv_now(&w->loop) + ms;
    bool ok;
    while (!(ok = pred(w, arg)) && uv_now(&w->loop) < deadline) {
        uv_run(&w->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&wake, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT);
    return ok;
}

typedef struct polls_arg {
    const char *dev;
    size_t n;
} polls_arg_t;

static bool have_polls(world_t *w, const void *arg)
{
    (void)w;
    const polls_arg_t *a = arg;
    return polls_of(a->dev) >= a->n;
}

static void wait_polls(world_t *w, const char *dev, size_t n)
{
    polls_arg_t a = {dev, n};
    assert_true(run_until(w, have_polls, &a, 5000));
}

static bool is_reachable(world_t *w, const void *arg)
{
    (void)w;
    const fsample_t *s = last_sample(series_id(arg, "", "reachable"));
    return s != NULL && s->v == 1;
}

/* Waits until the device's latest reachable sample is 1. */
static void wait_reachable(world_t *w, const char *dev, uint64_t ms)
{
    assert_true(run_until(w, is_reachable, dev, ms));
}

/* Runs the loop for ms. */
static void run_for(world_t *w, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(&w->loop, &t);
    uv_timer_start(&t, on_wake, ms, 0);
    uint64_t deadline = uv_now(&w->loop) + ms;
    while (uv_now(&w->loop) < deadline) {
        uv_run(&w->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&w->loop, UV_RUN_NOWAIT);
}

static void reset_fakes(void)
{
    for (size_t i = 0; i < n_fake_devs; i++) {
        free(fake_devs[i]);
    }
    n_fake_devs = 0;
    n_series = n_samples = n_events = 0;
    n_refused = 0;
    in_group = false;
    g_in_flight = g_max_in_flight = 0;
    n_order = 0;
}

static kvl_device_cfg_t *world_device(world_t *w, const char *name, int version,
                                      int64_t interval_ms)
{
    kvl_device_cfg_t *d = &w->devs[w->cfg.snmp.n_devices++];
    d->name = (char *)name;
    d->address = (char *)"127.0.0.1";
    d->port = 161;
    d->version = version;
    d->community = (char *)"secret";
    d->interval_ms = interval_ms;
    d->timeout_ms = 50;
    d->retries = 1;
    d->max_repetitions = 25;
    d->max_varbinds = 60; /* what the fake agent takes (the real default is 120) */
    d->rediscover_ms = 3600000;
    return d;
}

static void world_init(world_t *w)
{
    memset(w, 0, sizeof(*w));
    assert_int_equal(uv_loop_init(&w->loop), 0);
    w->cfg.id = (char *)"test";
    w->cfg.site = (char *)"lab";
    w->cfg.snmp.devices = w->devs;
    /* KVL_TEST_LOG=debug shows what the poller logs */
    const char *lvl = getenv("KVL_TEST_LOG");
    kvl_log_level = lvl != NULL ? kvl_log_level_parse(lvl) : KVL_LOG_LEVEL_ERROR;
}

static int dummy_batcher; /* the fake batcher keeps its state in statics */

static void world_start(world_t *w)
{
    char err[256];
    assert_int_equal(kvl_poller_new(&w->loop, &w->cfg.snmp, (kvl_batcher_t *)&dummy_batcher, &w->p,
                                    err, sizeof(err)),
                     0);
    assert_non_null(w->p);
}

static void on_world_done(void *arg)
{
    world_t *w = arg;
    w->done = true;
}

/* Starts in --poll-once mode: every device polled once, at once. */
static void world_start_once(world_t *w)
{
    world_start(w);
    kvl_poller_set_once(w->p, on_world_done, w);
}

static void world_stop(world_t *w)
{
    kvl_stats_free(w->stats);
    kvl_poller_free(w->p);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&w->loop), 0); /* every handle closed */
    reset_fakes();
}

/* A device with three interfaces:
 *   1: ifName Gi0/1, HC and 32-bit octets, ifSpeed 1 Gbit/s, alias "uplink";
 *   2: no ifName, ifDescr "eth2", 32-bit counters only, ifSpeed 4294967295 + ifHighSpeed
 *      10000;
 *   3: only ifType and ifOperStatus (no name, no counters). */
static fake_dev_t *standard_device(const char *name)
{
    fake_dev_t *d = fake_dev_new(name);
    mib_str(d, IF(2, 1), "GigabitEthernet0/1");
    mib_int(d, IF(3, 1), 6);
    mib_gauge(d, IF(5, 1), 1000000000);
    mib_int(d, IF(7, 1), 1);
    mib_int(d, IF(8, 1), 1);
    mib_c32(d, IF(10, 1), 1111);
    mib_c32(d, IF(16, 1), 2222);
    mib_c32(d, IF(14, 1), 7);
    mib_str(d, IFX(1, 1), "Gi0/1");
    mib_c64(d, IFX(6, 1), 5000000000ull);
    mib_c64(d, IFX(10, 1), 6000000000ull);
    mib_gauge(d, IFX(15, 1), 1000);
    mib_str(d, IFX(18, 1), "uplink");

    mib_str(d, IF(2, 2), "eth2");
    mib_int(d, IF(3, 2), 6);
    mib_gauge(d, IF(5, 2), 4294967295u);
    mib_int(d, IF(7, 2), 1);
    mib_int(d, IF(8, 2), 2);
    mib_c32(d, IF(10, 2), 300);
    mib_c32(d, IF(16, 2), 400);
    mib_gauge(d, IFX(15, 2), 10000);

    mib_int(d, IF(3, 3), 24);
    mib_int(d, IF(8, 3), 1);
    return d;
}

/* --- tests ------------------------------------------------------------------------------------ */

static void test_v2c_inventory_and_metrics(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *fd = standard_device("sw1");
    world_device(&w, "sw1", KVL_SNMP_V2C, 60000);
    world_start_once(&w);
    wait_polls(&w, "sw1", 1);

    /* names */
    assert_non_null(find_series("sw1", "Gi0/1", "in_octets"));
    assert_non_null(find_series("sw1", "eth2", "in_octets"));
    assert_non_null(find_series("sw1", "if3", "oper_status"));

    /* 64-bit column preferred, 32-bit otherwise */
    assert_int_equal(nth_sample(series_id("sw1", "Gi0/1", "in_octets"), 0)->v, 5000000000ull);
    assert_int_equal(nth_sample(series_id("sw1", "Gi0/1", "out_octets"), 0)->v, 6000000000ull);
    assert_int_equal(nth_sample(series_id("sw1", "eth2", "in_octets"), 0)->v, 300);
    assert_int_equal(nth_sample(series_id("sw1", "Gi0/1", "in_errors"), 0)->v, 7);
    const fseries_t *s = find_series("sw1", "Gi0/1", "in_octets");
    assert_int_equal(s->kind, KVL_KIND_COUNTER);
    assert_int_equal(s->scope, KVL_SCOPE_INTERFACE);
    assert_int_equal(s->interval_s, 60);
    assert_string_equal(label(s, "ifIndex"), "1");
    assert_string_equal(label(s, "ifName"), "Gi0/1");
    assert_string_equal(label(s, "ifDescr"), "GigabitEthernet0/1");
    assert_string_equal(label(s, "ifAlias"), "uplink");
    assert_string_equal(label(s, "ifType"), "6");

    /* only what the device has */
    assert_int_equal(count_samples(series_id("sw1", "eth2", "in_ucast_pkts")), 0);
    assert_int_equal(count_samples(series_id("sw1", "eth2", "in_errors")), 0);
    assert_int_equal(count_samples(series_id("sw1", "if3", "in_octets")), 0);
    assert_int_equal(count_samples(series_id("sw1", "if3", "speed_bps")), 0);
    assert_int_equal(count_samples(series_id("sw1", "if3", "admin_status")), 0);

    /* states and speed */
    assert_int_equal(nth_sample(series_id("sw1", "eth2", "oper_status"), 0)->v, 2);
    assert_int_equal(find_series("sw1", "eth2", "oper_status")->kind, KVL_KIND_GAUGE);
    assert_int_equal(nth_sample(series_id("sw1", "Gi0/1", "speed_bps"), 0)->v, 1000000000ull);
    assert_int_equal(nth_sample(series_id("sw1", "eth2", "speed_bps"), 0)->v, 10000000000ull);

    /* device group */
    const fseries_t *up = find_series("sw1", "", "uptime_s");
    assert_non_null(up);
    assert_int_equal(up->scope, KVL_SCOPE_DEVICE);
    assert_string_equal(label(up, "sysName"), "sw1.example");
    assert_int_equal(nth_sample(series_id("sw1", "", "uptime_s"), 0)->v, 1000);
    assert_int_equal(nth_sample(series_id("sw1", "", "reachable"), 0)->v, 1);
    assert_int_equal(nth_sample(series_id("sw1", "", "interfaces"), 0)->v, 3);
    assert_true(find_series("sw1", "", "response_ms")->real);
    assert_true(nth_sample(series_id("sw1", "", "response_ms"), 0)->r > 1.4);
    assert_int_equal(count_events("device_down"), 0);

    /* the walk stayed within 60 varbinds per response and used max-repetitions > 1 */
    assert_true(fd->max_reps_seen >= 2);
    world_stop(&w);
}

static void test_duplicate_names(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *d = fake_dev_new("pc");
    for (int i = 0; i < 3; i++) {
        char oid[64];
        snprintf(oid, sizeof(oid), ".1.3.6.1.2.1.2.2.1.2.%d", 12466 + i);
        mib_str(d, oid, "HP Switch software loopback interface");
        snprintf(oid, sizeof(oid), ".1.3.6.1.2.1.2.2.1.8.%d", 12466 + i);
        mib_int(d, oid, 1);
    }
    mib_str(d, IF(2, 1), "1");
    mib_int(d, IF(8, 1), 1);
    world_device(&w, "pc", KVL_SNMP_V2C, 60000);
    world_start_once(&w);
    wait_polls(&w, "pc", 1);
    assert_non_null(find_series("pc", "1", "oper_status"));
    assert_non_null(
        find_series("pc", "HP Switch software loopback interface#12466", "oper_status"));
    assert_non_null(
        find_series("pc", "HP Switch software loopback interface#12467", "oper_status"));
    assert_non_null(
        find_series("pc", "HP Switch software loopback interface#12468", "oper_status"));
    assert_null(find_series("pc", "HP Switch software loopback interface", "oper_status"));
    assert_int_equal(nth_sample(series_id("pc", "", "interfaces"), 0)->v, 4);
    world_stop(&w);
}

static void test_reboot_and_discontinuity_time(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *d = standard_device("r1");
    mib_ticks(d, IFX(19, 1), 500);
    world_device(&w, "r1", KVL_SNMP_V2C, 150);
    world_start(&w);
    wait_polls(&w, "r1", 1);
    uint32_t in1 = series_id("r1", "Gi0/1", "in_octets");
    uint32_t in2 = series_id("r1", "eth2", "in_octets");

    /* normal increase */
    mib_ticks(d, ".1.3.6.1.2.1.1.3.0", 100015);
    mib_c64(d, IFX(6, 1), 5000001000ull);
    mib_c32(d, IF(10, 2), 350);
    wait_polls(&w, "r1", 2);
    assert_false(nth_sample(in1, 1)->unknown);
    assert_int_equal(nth_sample(in1, 1)->v, 5000001000ull);
    assert_false(nth_sample(in2, 1)->unknown);

    /* ifCounterDiscontinuityTime of interface 1 moves: only it is unknown */
    mib_ticks(d, ".1.3.6.1.2.1.1.3.0", 100030);
    mib_ticks(d, IFX(19, 1), 100020);
    mib_c64(d, IFX(6, 1), 10);
    mib_c32(d, IF(10, 2), 360);
    wait_polls(&w, "r1", 3);
    assert_true(nth_sample(in1, 2)->unknown);
    assert_false(nth_sample(in2, 2)->unknown);
    assert_int_equal(nth_sample(in2, 2)->v, 360);

    /* sysUpTime goes back: every counter is unknown once, then known again */
    mib_ticks(d, ".1.3.6.1.2.1.1.3.0", 50);
    mib_c64(d, IFX(6, 1), 20);
    mib_c32(d, IF(10, 2), 370);
    wait_polls(&w, "r1", 4);
    assert_true(nth_sample(in1, 3)->unknown);
    assert_true(nth_sample(in2, 3)->unknown);
    assert_true(nth_sample(series_id("r1", "eth2", "out_octets"), 3)->unknown);
    assert_false(nth_sample(series_id("r1", "eth2", "oper_status"), 3)->unknown);

    mib_ticks(d, ".1.3.6.1.2.1.1.3.0", 65);
    mib_c64(d, IFX(6, 1), 30);
    mib_c32(d, IF(10, 2), 380);
    wait_polls(&w, "r1", 5);
    assert_false(nth_sample(in1, 4)->unknown);
    assert_false(nth_sample(in2, 4)->unknown);
    assert_int_equal(nth_sample(in2, 4)->v, 380);
    world_stop(&w);
}

static void test_wrap_judged_by_speed(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *d = fake_dev_new("wr");
    mib_str(d, IFX(1, 1), "fast");
    mib_gauge(d, IF(5, 1), 1000000000);
    mib_c32(d, IF(10, 1), 4294967000u);
    mib_str(d, IFX(1, 2), "slow");
    mib_gauge(d, IF(5, 2), 1000);
    mib_c32(d, IF(10, 2), 4294967000u);
    world_device(&w, "wr", KVL_SNMP_V2C, 150);
    world_start(&w);
    wait_polls(&w, "wr", 1);
    /* both wrap by 1296 octets in ~150 ms: plausible at 1 Gbit/s, not at 1 kbit/s */
    mib_c32(d, IF(10, 1), 1000);
    mib_c32(d, IF(10, 2), 1000);
    wait_polls(&w, "wr", 2);
    const fsample_t *fast = nth_sample(series_id("wr", "fast", "in_octets"), 1);
    assert_false(fast->unknown);
    assert_int_equal(fast->v, 4294967000ull + 1296);
    assert_true(nth_sample(series_id("wr", "slow", "in_octets"), 1)->unknown);
    world_stop(&w);
}

static void test_renumbered_interface_keeps_state(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *d = fake_dev_new("rn");
    mib_str(d, IFX(1, 3), "ge-0/0/1");
    mib_c64(d, IFX(6, 3), 1000);
    world_device(&w, "rn", KVL_SNMP_V2C, 150);
    world_start(&w);
    wait_polls(&w, "rn", 1);
    uint32_t id = series_id("rn", "ge-0/0/1", "in_octets");
    mib_del(d, IFX(1, 3));
    mib_del(d, IFX(6, 3));
    mib_str(d, IFX(1, 9), "ge-0/0/1");
    mib_c64(d, IFX(6, 9), 2000);
    wait_polls(&w, "rn", 2);
    assert_int_equal(series_id("rn", "ge-0/0/1", "in_octets"), id);
    assert_false(nth_sample(id, 1)->unknown);
    assert_int_equal(nth_sample(id, 1)->v, 2000);
    assert_string_equal(label(find_series("rn", "ge-0/0/1", "in_octets"), "ifIndex"), "9");
    world_stop(&w);
}

/* v1/v2c sessions are closed when a poll ends and opened again for the next one; SNMPv3
 * sessions stay open (their engine ID and keys would have to be learnt again). */
static bool cheap_idle_after(world_t *w, const void *arg)
{
    const fake_dev_t *d = arg;
    polls_arg_t a = {"cheap", 3};
    return have_polls(w, &a) && d->open_now == 0;
}

static void test_sessions_between_polls(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *cheap = standard_device("cheap");
    fake_dev_t *kept = standard_device("kept");
    world_device(&w, "cheap", KVL_SNMP_V2C, 150);
    world_device(&w, "kept", KVL_SNMP_V3, 150);
    world_start(&w);
    wait_polls(&w, "kept", 3);
    assert_true(run_until(&w, cheap_idle_after, cheap, 5000));
    assert_true(cheap->opens >= 3);
    assert_int_equal(cheap->max_open_now, 1);
    assert_int_equal(kept->opens, 1);
    assert_int_equal(kept->open_now, 1);
    /* and the counters went on across the reopened sessions */
    uint32_t id = series_id("cheap", "Gi0/1", "in_octets");
    assert_true(count_samples(id) >= 3);
    assert_false(nth_sample(id, 2)->unknown);
    world_stop(&w);
}

static void check_v1_device(bool skip_c64)
{
    world_t w;
    world_init(&w);
    fake_dev_t *d = standard_device("old");
    d->v1_c64_skip = skip_c64;
    mib_del(d, ".1.3.6.1.2.1.1.3.0"); /* no sysUpTime: noSuchName at index 1 */
    world_device(&w, "old", KVL_SNMP_V1, 60000);
    world_start_once(&w);
    wait_polls(&w, "old", 1);
    /* 32-bit octets because Counter64 cannot travel in v1 */
    assert_int_equal(nth_sample(series_id("old", "Gi0/1", "in_octets"), 0)->v, 1111);
    assert_int_equal(nth_sample(series_id("old", "Gi0/1", "out_octets"), 0)->v, 2222);
    assert_int_equal(nth_sample(series_id("old", "eth2", "in_octets"), 0)->v, 300);
    assert_int_equal(count_samples(series_id("old", "", "uptime_s")), 0);
    assert_string_equal(label(find_series("old", "", "reachable"), "sysName"), "sw1.example");
    assert_int_equal(nth_sample(series_id("old", "", "interfaces"), 0)->v, 3);
    assert_int_equal(nth_sample(series_id("old", "", "reachable"), 0)->v, 1);
    world_stop(&w);
}

/* The labels the collector's inventory keeps: sysDescr, sysLocation and the address on the
 * device, with the ifIndexes of the discovery; the MAC (ifPhysAddress) and speed on each
 * interface; the model and serial of the first chassis entry of ENTITY-MIB (a port entry
 * before it), read at discovery. */
static void test_inventory_labels(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *fd = standard_device("inv");
    mib_str(fd, ".1.3.6.1.2.1.1.1.0", "Test OS 1.0\r\nline two");
    mib_str(fd, ".1.3.6.1.2.1.1.6.0", "Rack 4, DHQ");
    mib_str(fd, IF(6, 1), "\x02\x1b\x2c\x3d\x4e\x5f");
    mib_int(fd, ".1.3.6.1.2.1.47.1.1.1.1.5.1", 10); /* port */
    mib_int(fd, ".1.3.6.1.2.1.47.1.1.1.1.5.7", 3);  /* chassis */
    mib_int(fd, ".1.3.6.1.2.1.47.1.1.1.1.5.9", 3);  /* another: not the first */
    mib_str(fd, ".1.3.6.1.2.1.47.1.1.1.1.11.7", "FOC1234X");
    mib_str(fd, ".1.3.6.1.2.1.47.1.1.1.1.11.9", "other");
    mib_str(fd, ".1.3.6.1.2.1.47.1.1.1.1.13.7", "WS-C3850-24T");
    mib_str(fd, ".1.3.6.1.2.1.47.1.1.1.1.13.9", "other");
    world_device(&w, "inv", KVL_SNMP_V2C, 60000);
    world_start_once(&w);
    wait_polls(&w, "inv", 1);
    const fseries_t *dev = find_series("inv", "", "reachable");
    assert_non_null(dev);
    assert_string_equal(label(dev, "sysDescr"), "Test OS 1.0  line two");
    assert_string_equal(label(dev, "sysLocation"), "Rack 4, DHQ");
    assert_string_equal(label(dev, "address"), "127.0.0.1");
    assert_string_equal(label(dev, "ifIndexes"), "1 2 3");
    assert_string_equal(label(dev, "model"), "WS-C3850-24T");
    assert_string_equal(label(dev, "serial"), "FOC1234X");
    const fseries_t *gi = find_series("inv", "Gi0/1", "in_octets");
    assert_string_equal(label(gi, "ifPhysAddress"), "02:1b:2c:3d:4e:5f");
    assert_string_equal(label(gi, "ifSpeed"), "1000000000");
    const fseries_t *eth2 = find_series("inv", "eth2", "in_octets");
    assert_string_equal(label(eth2, "ifPhysAddress"), "");
    assert_string_equal(label(eth2, "ifSpeed"), "10000000000"); /* ifHighSpeed x 10^6 */
    assert_string_equal(label(find_series("inv", "if3", "oper_status"), "ifSpeed"), "");
    world_stop(&w);

    /* without ENTITY-MIB: no model, no serial */
    world_init(&w);
    standard_device("plain");
    world_device(&w, "plain", KVL_SNMP_V1, 60000);
    world_start_once(&w);
    wait_polls(&w, "plain", 1);
    dev = find_series("plain", "", "reachable");
    assert_null(label(dev, "model"));
    assert_null(label(dev, "serial"));
    assert_string_equal(label(dev, "sysName"), "sw1.example");
    world_stop(&w);
}

static void test_v1_nosuchname(void **state)
{
    (void)state;
    check_v1_device(false);
}

static void test_v1_skips_counter64(void **state)
{
    (void)state;
    check_v1_device(true);
}

static void test_down_and_up(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *d = standard_device("fl");
    standard_device("ok");
    d->dead = true;
    world_device(&w, "fl", KVL_SNMP_V2C, 150);
    world_device(&w, "ok", KVL_SNMP_V2C, 150);
    world_start(&w);
    wait_polls(&w, "ok", 4); /* the dead one slows nobody */
    wait_polls(&w, "fl", 3);
    uint32_t reach = series_id("fl", "", "reachable");
    size_t n_down = polls_of("fl");
    for (size_t i = 0; i < n_down; i++) {
        assert_int_equal(nth_sample(reach, i)->v, 0);
    }
    assert_int_equal(count_events("device_down"), 1);
    const fevent_t *down = find_event("fl", "device_down");
    assert_non_null(down);
    assert_int_equal(down->severity, KVL_SEV_CRITICAL);
    assert_non_null(strstr(down->text, "timeout after 2 tries to 127.0.0.1:161"));
    assert_null(strstr(down->text, "secret")); /* never the community */
    /* the configured devices, named once at the start (the collector's inventory) */
    assert_int_equal(count_events("devices_configured"), 1);
    const fevent_t *conf = find_event("", "devices_configured");
    assert_non_null(conf);
    assert_string_equal(conf->fields, "device=fl device=ok ");
    assert_int_equal(count_samples(series_id("fl", "Gi0/1", "in_octets")), 0);

    d->dead = false;
    wait_reachable(&w, "fl", 5000);
    assert_int_equal(count_events("device_down"), 1);
    assert_int_equal(count_events("device_up"), 1);
    assert_non_null(find_series("fl", "Gi0/1", "in_octets"));
    size_t n_up = polls_of("fl");
    d->fail_send = true;
    wait_polls(&w, "fl", n_up + 2);
    assert_int_equal(count_events("device_down"), 2);
    assert_int_equal(last_sample(reach)->v, 0);
    assert_int_equal(last_sample(series_id("fl", "", "down_reason"))->v, 4);
    world_stop(&w);
}

static void test_too_big_and_small_responses(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *d = standard_device("tb");
    d->too_big_above = 1;
    d->max_vbs = 7;
    world_device(&w, "tb", KVL_SNMP_V2C, 60000);
    world_start_once(&w);
    wait_polls(&w, "tb", 1);
    assert_int_equal(nth_sample(series_id("tb", "", "interfaces"), 0)->v, 3);
    assert_int_equal(nth_sample(series_id("tb", "Gi0/1", "in_octets"), 0)->v, 5000000000ull);
    assert_int_equal(nth_sample(series_id("tb", "eth2", "out_octets"), 0)->v, 400);
    world_stop(&w);
}

static void test_overrun_skips_ticks(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *d = standard_device("slow");
    d->delay_ms = 40; /* a poll takes several requests x 40 ms > the 100 ms interval */
    world_device(&w, "slow", KVL_SNMP_V2C, 100);
    world_start(&w);
    wait_polls(&w, "slow", 3);
    assert_int_equal(d->max_in_flight, 1);
    /* every poll completed its walk */
    assert_int_equal(count_samples(series_id("slow", "", "interfaces")), polls_of("slow"));
    world_stop(&w);
}

static void on_done(void *arg)
{
    world_t *w = arg;
    w->done = true;
}

static bool is_done(world_t *w, const void *arg)
{
    (void)arg;
    return w->done;
}

static void test_once(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    standard_device("a");
    fake_dev_t *b = standard_device("b");
    b->dead = true;
    world_device(&w, "a", KVL_SNMP_V2C, 100);
    world_device(&w, "b", KVL_SNMP_V2C, 100);
    world_start(&w);
    kvl_poller_set_once(w.p, on_done, &w);
    assert_true(run_until(&w, is_done, NULL, 5000));
    assert_int_equal(polls_of("a"), 1);
    assert_int_equal(polls_of("b"), 1);
    assert_int_equal(count_events("device_down"), 1);
    /* nothing more happens */
    uv_timer_t t;
    uv_timer_init(&w.loop, &t);
    uv_timer_start(&t, on_wake, 300, 0);
    uv_run(&w.loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    assert_int_equal(polls_of("a"), 1);
    world_stop(&w);
}

static void test_non_increasing_column_ends(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *d = standard_device("ni");
    mib_str(d, IFX(18, 2), "second alias");
    mib_str(d, ".1.3.6.1.2.1.31.1.1.1.1.7.5", "two-part index: not a row");
    d->regress = ".1.3.6.1.2.1.31.1.1.1.18"; /* ifAlias answers go back to row 1 */
    world_device(&w, "ni", KVL_SNMP_V2C, 60000);
    world_start_once(&w);
    wait_polls(&w, "ni", 1);
    assert_int_equal(nth_sample(series_id("ni", "", "interfaces"), 0)->v, 3);
    assert_string_equal(label(find_series("ni", "Gi0/1", "in_octets"), "ifAlias"), "uplink");
    assert_string_equal(label(find_series("ni", "eth2", "in_octets"), "ifAlias"), "");
    world_stop(&w);
}

/* --- scheduling, in-flight cap, dead devices ---------------------------------------------------
 */

/* The phase a device's polls start at, as the poller documents it: FNV-1a of the name. */
static uint64_t expected_phase(const char *name, uint64_t interval_ms)
{
    uint64_t h = 14695981039346656037ull;
    for (const char *c = name; *c != '\0'; c++) {
        h ^= (uint8_t)*c;
        h *= 1099511628211ull;
    }
    return h % interval_ms;
}

static void test_spread_over_interval(void **state)
{
    (void)state;
    static const char *const names[] = {"spread-a", "spread-b", "spread-c",
                                        "spread-d", "spread-e", "spread-f"};
    world_t w;
    world_init(&w);
    fake_dev_t *fd[6];
    for (size_t i = 0; i < 6; i++) {
        fd[i] = standard_device(names[i]);
        world_device(&w, names[i], KVL_SNMP_V2C, 2000);
    }
    uint64_t t0 = uv_now(&w.loop);
    world_start(&w);
    for (size_t i = 0; i < 6; i++) {
        polls_arg_t a = {names[i], 3};
        assert_true(run_until(&w, have_polls, &a, 9000));
    }
    uint64_t lo = UINT64_MAX, hi = 0;
    for (size_t i = 0; i < 6; i++) {
        assert_true(fd[i]->n_poll_at >= 3);
        /* The first poll at once (a restarted agent does not wait for the phase), within the
         * start window: a tenth of the 2 s interval, at the offset the name's hash gives. */
        uint64_t got = fd[i]->poll_at[0] - t0;
        uint64_t want = kvl_sched_start_delay(names[i], 2000);
        assert_true(want < 200);
        if (got + 30 < want || got > want + 60) {
            fail_msg("%s first polled after %" PRIu64 " ms, expected %" PRIu64, names[i], got,
                     want);
        }
        lo = got < lo ? got : lo;
        hi = got > hi ? got : hi;
        /* The second an interval later (a new archive's first two updates one step apart). */
        uint64_t gap = fd[i]->poll_at[1] - fd[i]->poll_at[0];
        if (gap + 30 < 2000 || gap > 2000 + 60) {
            fail_msg("%s: %" PRIu64 " ms between the first two polls", names[i], gap);
        }
        /* The third at its phase of the 2 s interval, counted from the Unix epoch, at least
         * half an interval after the second (on the loop's clock, which the wall clock
         * follows: allow a little drift). */
        gap = fd[i]->poll_at[2] - fd[i]->poll_at[1];
        if (gap + 30 < 1000 || gap > 3000 + 60) {
            fail_msg("%s: %" PRIu64 " ms between the second and third polls", names[i], gap);
        }
        uint64_t wall_third = (uint64_t)kvl_now_ms() - (uv_now(&w.loop) - fd[i]->poll_at[2]);
        uint64_t off = (wall_third + 2000 - expected_phase(names[i], 2000)) % 2000;
        if (off > 60 && off < 2000 - 60) {
            fail_msg("%s: third poll %" PRIu64 " ms off its phase", names[i], off);
        }
    }
    assert_true(hi - lo >= 50); /* spread, not together */
    world_stop(&w);

    /* --poll-once: no spreading. */
    world_init(&w);
    for (size_t i = 0; i < 6; i++) {
        fd[i] = standard_device(names[i]);
        world_device(&w, names[i], KVL_SNMP_V2C, 2000);
    }
    t0 = uv_now(&w.loop);
    world_start_once(&w);
    assert_true(run_until(&w, is_done, NULL, 5000));
    for (size_t i = 0; i < 6; i++) {
        assert_true(fd[i]->first_at - t0 < 100);
    }
    world_stop(&w);
}

static void test_inflight_cap_and_fairness(void **state)
{
    (void)state;
    static const char *const names[] = {"q1", "q2", "q3", "q4", "q5"};
    world_t w;
    world_init(&w);
    w.cfg.snmp.max_inflight = 2;
    for (size_t i = 0; i < 5; i++) {
        standard_device(names[i])->delay_ms = 5;
        world_device(&w, names[i], KVL_SNMP_V2C, 60000);
    }
    world_start_once(&w);
    assert_true(run_until(&w, is_done, NULL, 5000));
    assert_int_equal(g_max_in_flight, 2);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(nth_sample(series_id(names[i], "", "interfaces"), 0)->v, 3);
        assert_int_equal(fake_devs[i]->max_in_flight, 1);
    }
    world_stop(&w);

    /* One slot: a device that gets an answer goes behind those already waiting. */
    world_init(&w);
    w.cfg.snmp.max_inflight = 1;
    for (size_t i = 0; i < 3; i++) {
        standard_device(names[i])->delay_ms = 2;
        world_device(&w, names[i], KVL_SNMP_V2C, 60000);
    }
    world_start_once(&w);
    assert_true(run_until(&w, is_done, NULL, 5000));
    assert_int_equal(g_max_in_flight, 1);
    assert_true(n_order > 6);
    for (size_t i = 0; i + 1 < n_order; i++) {
        if (order[i] != order[i + 1]) {
            continue;
        }
        /* Twice in a row only when nobody else has anything left to ask. */
        for (size_t k = i + 1; k < n_order; k++) {
            if (order[k] != order[i]) {
                fail_msg("device %zu asked twice in a row at %zu while device %zu waited", order[i],
                         i, order[k]);
            }
        }
    }
    world_stop(&w);
}

static bool have_n_requests(world_t *w, const void *arg)
{
    (void)w;
    const fake_dev_t *d = arg;
    return d->requests >= 2;
}

static void test_dead_device_backoff(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *d = standard_device("dd");
    d->dead = true;
    world_device(&w, "dd", KVL_SNMP_V2C, 100)->timeout_ms = 30; /* 2 tries: 60 ms */
    world_start(&w);
    wait_polls(&w, "dd", 3);
    assert_int_equal(d->requests, 3); /* three full polls, each with its retries */
    assert_int_equal(d->n_no_retries, 0);
    wait_polls(&w, "dd", 30);
    /* Then single GETs without retries at growing gaps: 2, 4, 8, 16 ticks. */
    assert_true(d->requests <= 3 + 4);
    assert_true(d->requests >= 3 + 3);
    assert_int_equal(d->n_no_retries, d->requests - 3);
    assert_int_equal(d->last_retries, 0);
    /* Every tick still says what is known: down, for a timeout. */
    uint32_t reach = series_id("dd", "", "reachable");
    uint32_t reason = series_id("dd", "", "down_reason");
    size_t n = polls_of("dd");
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(nth_sample(reach, i)->v, 0);
        assert_int_equal(nth_sample(reason, i)->v, 1);
    }
    assert_int_equal(count_events("device_down"), 1);

    /* It answers again: within one gap, on its normal schedule again. */
    d->dead = false;
    unsigned before = d->requests;
    wait_reachable(&w, "dd", 16 * 100 + 1000);
    assert_int_equal(count_events("device_up"), 1);
    assert_int_equal(nth_sample(series_id("dd", "", "interfaces"), 0)->v, 3);
    unsigned after = d->requests;
    assert_true(after > before + 1);
    wait_polls(&w, "dd", polls_of("dd") + 3);
    assert_true(d->requests >= after + 3 * 2); /* system GET + interface GET each tick */
    assert_int_equal(last_sample(reason)->v, 0);
    assert_int_equal(d->last_retries, -1);
    world_stop(&w);

    /* --poll-once never backs off. */
    world_init(&w);
    d = standard_device("d1");
    d->dead = true;
    world_device(&w, "d1", KVL_SNMP_V2C, 1000);
    world_start_once(&w);
    assert_true(run_until(&w, have_n_requests, d, 3000) || w.done);
    assert_true(run_until(&w, is_done, NULL, 3000));
    assert_int_equal(d->n_no_retries, 0);
    world_stop(&w);
}

/* --- adaptive repetitions -----------------------------------------------------------------------
 */

/* 40 interfaces with a name and 64-bit in-octets only: after the first request, the walk
 * runs on two columns with large repetitions. */
static fake_dev_t *wide_device(const char *name)
{
    fake_dev_t *d = fake_dev_new(name);
    for (int i = 1; i <= 40; i++) {
        char oid[64], nm[16];
        snprintf(oid, sizeof(oid), ".1.3.6.1.2.1.31.1.1.1.1.%d", i);
        snprintf(nm, sizeof(nm), "p%02d", i);
        mib_str(d, oid, nm);
        snprintf(oid, sizeof(oid), ".1.3.6.1.2.1.31.1.1.1.6.%d", i);
        mib_c64(d, oid, 1000u * (unsigned)i);
    }
    return d;
}

static void test_adaptive_repetitions(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *d = wide_device("ar");
    d->too_big_above = 10;
    kvl_device_cfg_t *c = world_device(&w, "ar", KVL_SNMP_V2C, 150);
    c->rediscover_ms = 0; /* walk at every poll, to watch the size */
    world_start(&w);
    wait_polls(&w, "ar", 1);
    assert_int_equal(nth_sample(series_id("ar", "", "interfaces"), 0)->v, 40);
    assert_int_equal(d->n_too_big, 2); /* 25, then 12, then 6 fits */
    size_t first_poll = d->n_bulk_reps;
    assert_int_equal(d->bulk_reps[first_poll - 1], 6);
    wait_polls(&w, "ar", 12);
    /* One more per clean poll, up to the size that failed (11): 11 fails again, so 10. */
    uint32_t top = 0;
    for (size_t i = first_poll; i < d->n_bulk_reps; i++) {
        top = d->bulk_reps[i] > top ? d->bulk_reps[i] : top;
    }
    assert_int_equal(top, 10);
    assert_true(d->n_too_big <= 3);
    world_stop(&w);

    /* Silence above 8 repetitions in the middle of a walk: halved, and the walk completes. */
    world_init(&w);
    d = wide_device("as");
    d->silent_above = 8;
    world_device(&w, "as", KVL_SNMP_V2C, 60000);
    world_start_once(&w);
    assert_true(run_until(&w, is_done, NULL, 5000));
    assert_int_equal(nth_sample(series_id("as", "", "interfaces"), 0)->v, 40);
    assert_int_equal(nth_sample(series_id("as", "", "reachable"), 0)->v, 1);
    assert_non_null(find_series("as", "p40", "in_octets"));
    world_stop(&w);
}

/* --- rediscovery and filters -------------------------------------------------------------------
 */

static bool have_walked(world_t *w, const void *arg)
{
    (void)w;
    const unsigned *want = arg;
    return fake_devs[0]->n_bulk >= *want;
}

static void test_rediscovery_triggers(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *d = standard_device("rd");
    mib_int(d, ".1.3.6.1.2.1.2.1.0", 3);        /* ifNumber */
    mib_ticks(d, ".1.3.6.1.2.1.31.1.5.0", 500); /* ifTableLastChange */
    world_device(&w, "rd", KVL_SNMP_V2C, 150);
    world_start(&w);
    wait_polls(&w, "rd", 1);
    unsigned walks = d->n_bulk;
    assert_true(walks > 0);
    /* Between discoveries: GETs only, and only of the interfaces' value columns. */
    wait_polls(&w, "rd", 4);
    assert_int_equal(d->n_bulk, walks);
    assert_true(d->asked[1] && d->asked[2]);
    assert_int_equal(last_sample(series_id("rd", "Gi0/1", "in_octets"))->v, 5000000000ull);

    /* ifNumber moves (a new interface): discovered at the next poll. */
    mib_int(d, ".1.3.6.1.2.1.2.1.0", 4);
    mib_str(d, IFX(1, 4), "new0");
    mib_c64(d, IFX(6, 4), 77);
    unsigned want = walks + 1;
    assert_true(run_until(&w, have_walked, &want, 2000));
    wait_polls(&w, "rd", polls_of("rd") + 1);
    assert_non_null(find_series("rd", "new0", "in_octets"));
    assert_int_equal(last_sample(series_id("rd", "", "interfaces"))->v, 4);
    size_t n = polls_of("rd");
    wait_polls(&w, "rd", n + 2);
    walks = d->n_bulk;
    wait_polls(&w, "rd", polls_of("rd") + 2);
    assert_int_equal(d->n_bulk, walks); /* settled again */

    /* ifTableLastChange moves. */
    mib_ticks(d, ".1.3.6.1.2.1.31.1.5.0", 900);
    want = walks + 1;
    assert_true(run_until(&w, have_walked, &want, 2000));
    walks = d->n_bulk;
    wait_polls(&w, "rd", polls_of("rd") + 3);
    assert_true(d->n_bulk <= walks + 3); /* that one walk (a few requests), then GETs */

    /* An interface vanishes without ifNumber or ifTableLastChange saying so: the GET poll
     * turns into a discovery, and it is no longer reported. */
    mib_del(d, IFX(1, 4));
    mib_del(d, IFX(6, 4));
    walks = d->n_bulk;
    want = walks + 1;
    assert_true(run_until(&w, have_walked, &want, 2000));
    wait_polls(&w, "rd", polls_of("rd") + 1);
    assert_int_equal(last_sample(series_id("rd", "", "interfaces"))->v, 3);
    size_t new0 = count_samples(series_id("rd", "new0", "in_octets"));
    wait_polls(&w, "rd", polls_of("rd") + 2);
    assert_int_equal(count_samples(series_id("rd", "new0", "in_octets")), new0);

    /* A reboot (sysUpTime back) rediscovers too. */
    walks = d->n_bulk;
    mib_ticks(d, ".1.3.6.1.2.1.1.3.0", 10);
    want = walks + 1;
    assert_true(run_until(&w, have_walked, &want, 2000));
    world_stop(&w);

    /* On the schedule. */
    world_init(&w);
    d = standard_device("rs");
    kvl_device_cfg_t *c = world_device(&w, "rs", KVL_SNMP_V2C, 100);
    c->rediscover_ms = 350;
    world_start(&w);
    wait_polls(&w, "rs", 1);
    walks = d->n_bulk;
    wait_polls(&w, "rs", 9);
    assert_true(d->n_bulk >= walks * 2); /* about every fourth poll walks */
    assert_true(d->n_bulk <= walks * 4);
    assert_true(d->n_get > 9);
    world_stop(&w);
}

/* Six interfaces of different names, types and states. */
static fake_dev_t *mixed_device(const char *name)
{
    static const struct {
        int idx;
        const char *name;
        int type, admin;
    } ifs[] = {{1, "ge-0/0/1", 6, 1}, {2, "ge-0/0/2", 6, 2}, {3, "lo0", 24, 1},
               {4, "vlan10", 135, 1}, {5, "ae0", 161, 1},    {6, "xe-1/0/0.32767", 53, 1}};
    fake_dev_t *d = fake_dev_new(name);
    for (size_t i = 0; i < KVL_ARRAY_SIZE(ifs); i++) {
        char oid[64];
        snprintf(oid, sizeof(oid), ".1.3.6.1.2.1.2.2.1.3.%d", ifs[i].idx);
        mib_int(d, oid, (uint64_t)ifs[i].type);
        snprintf(oid, sizeof(oid), ".1.3.6.1.2.1.2.2.1.7.%d", ifs[i].idx);
        mib_int(d, oid, (uint64_t)ifs[i].admin);
        snprintf(oid, sizeof(oid), ".1.3.6.1.2.1.2.2.1.8.%d", ifs[i].idx);
        mib_int(d, oid, 1);
        snprintf(oid, sizeof(oid), ".1.3.6.1.2.1.31.1.1.1.1.%d", ifs[i].idx);
        mib_str(d, oid, ifs[i].name);
        snprintf(oid, sizeof(oid), ".1.3.6.1.2.1.31.1.1.1.6.%d", ifs[i].idx);
        mib_c64(d, oid, 100u * (unsigned)ifs[i].idx);
    }
    return d;
}

static void test_interface_filters(void **state)
{
    (void)state;
    static char *include[] = {"GE-*", "ae*", "xe-*", "lo*"};
    static char *exclude[] = {"*.32767"};
    static uint32_t exclude_types[] = {24};
    static uint32_t include_types[] = {161, 135};
    world_t w;
    world_init(&w);
    fake_dev_t *a = mixed_device("fa");
    fake_dev_t *b = mixed_device("fb");
    kvl_device_cfg_t *c = world_device(&w, "fa", KVL_SNMP_V2C, 150);
    c->ifs.include = include;
    c->ifs.n_include = KVL_ARRAY_SIZE(include);
    c->ifs.exclude = exclude;
    c->ifs.n_exclude = KVL_ARRAY_SIZE(exclude);
    c->ifs.exclude_types = exclude_types;
    c->ifs.n_exclude_types = KVL_ARRAY_SIZE(exclude_types);
    c->ifs.skip_admin_down = true;
    c = world_device(&w, "fb", KVL_SNMP_V2C, 150);
    c->ifs.include_types = include_types;
    c->ifs.n_include_types = KVL_ARRAY_SIZE(include_types);
    world_start(&w);
    wait_polls(&w, "fa", 3);
    wait_polls(&w, "fb", 3);

    /* fa: names (case-insensitive globs), minus the excluded name, type and admin-down. */
    assert_non_null(find_series("fa", "ge-0/0/1", "in_octets"));
    assert_non_null(find_series("fa", "ae0", "in_octets"));
    assert_null(find_series("fa", "ge-0/0/2", "in_octets"));       /* admin down */
    assert_null(find_series("fa", "lo0", "in_octets"));            /* softwareLoopback */
    assert_null(find_series("fa", "vlan10", "in_octets"));         /* not included */
    assert_null(find_series("fa", "xe-1/0/0.32767", "in_octets")); /* excluded */
    assert_int_equal(last_sample(series_id("fa", "", "interfaces"))->v, 2);
    /* Left-out interfaces cost nothing between discoveries. */
    assert_true(a->asked[1] && a->asked[5]);
    for (int i = 2; i <= 6; i++) {
        if (i != 5) {
            assert_false(a->asked[i]);
        }
    }
    /* fb: by type only. */
    assert_non_null(find_series("fb", "ae0", "in_octets"));
    assert_non_null(find_series("fb", "vlan10", "in_octets"));
    assert_null(find_series("fb", "ge-0/0/1", "in_octets"));
    assert_int_equal(last_sample(series_id("fb", "", "interfaces"))->v, 2);
    assert_true(b->asked[4] && b->asked[5] && !b->asked[1]);

    /* ge-0/0/1 goes admin down: left out from the next discovery, which follows at once. */
    mib_int(a, ".1.3.6.1.2.1.2.2.1.7.1", 2);
    size_t n = polls_of("fa");
    wait_polls(&w, "fa", n + 3);
    assert_int_equal(last_sample(series_id("fa", "", "interfaces"))->v, 1);
    world_stop(&w);
}

/* An interface whose name the collector could not make a file name of (the batcher gives it
 * no id): left out of the inventory, so neither reported nor asked for between discoveries;
 * the device's other interfaces as usual. */
static void test_interface_name_too_long(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    fake_dev_t *d = standard_device("ln");
    char name[301];
    memset(name, 'x', 300);
    name[300] = '\0';
    mib_str(d, IF(2, 4), "eth4");
    mib_int(d, IF(3, 4), 6);
    mib_int(d, IF(7, 4), 1);
    mib_int(d, IF(8, 4), 1);
    mib_str(d, IFX(1, 4), name);
    mib_c64(d, IFX(6, 4), 1000);
    mib_c64(d, IFX(10, 4), 2000);
    world_device(&w, "ln", KVL_SNMP_V2C, 150);
    world_start(&w);
    wait_polls(&w, "ln", 3);
    assert_true(n_refused >= 1); /* asked for an id at each discovery */
    assert_int_equal(last_sample(series_id("ln", "", "interfaces"))->v, 3);
    assert_non_null(find_series("ln", "Gi0/1", "in_octets"));
    for (size_t i = 0; i < n_series; i++) {
        assert_true(strlen(series[i].instance) < 100);
    }
    assert_true(d->asked[1]);
    assert_false(d->asked[4]); /* costs nothing between discoveries */
    world_stop(&w);
}

/* --- why a device is down, and the agent's statistics -------------------------------------- */

static void test_down_reasons(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    standard_device("r-ok");
    standard_device("r-to")->dead = true;
    standard_device("r-auth")->report = KVL_SNMP_REPORT_WRONG_DIGEST;
    fake_dev_t *ns = standard_device("r-nosys");
    mib_del(ns, ".1.3.6.1.2.1.1.3.0");
    mib_del(ns, ".1.3.6.1.2.1.1.5.0");
    standard_device("r-send")->fail_send = true;
    fake_dev_t *v1 = standard_device("r-v1nosys");
    mib_del(v1, ".1.3.6.1.2.1.1.3.0");
    mib_del(v1, ".1.3.6.1.2.1.1.5.0");
    world_device(&w, "r-ok", KVL_SNMP_V2C, 60000);
    world_device(&w, "r-to", KVL_SNMP_V2C, 60000);
    world_device(&w, "r-auth", KVL_SNMP_V2C, 60000);
    world_device(&w, "r-nosys", KVL_SNMP_V2C, 60000);
    world_device(&w, "r-send", KVL_SNMP_V2C, 60000);
    world_device(&w, "r-v1nosys", KVL_SNMP_V1, 60000);
    world_start_once(&w);
    assert_true(run_until(&w, is_done, NULL, 5000));
    static const struct {
        const char *dev;
        uint64_t reason;
        const char *text;
    } want[] = {
        {"r-ok", 0, NULL},
        {"r-to", 1, "not answering: timeout after 2 tries to 127.0.0.1:161"},
        {"r-auth", 2, "down (authentication failure): wrong digest (usmStatsWrongDigests)"},
        {"r-nosys", 3, "down (no such name): 127.0.0.1:161 answers without a system group"},
        {"r-send", 4, "down (error): send to 127.0.0.1:161 failed: Failure in sendto (fake)"},
        {"r-v1nosys", 3, "(no such name for sysUpTime.0 and sysName.0)"},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(want); i++) {
        const fsample_t *reason = nth_sample(series_id(want[i].dev, "", "down_reason"), 0);
        assert_non_null(reason);
        if (reason->v != want[i].reason) {
            fail_msg("%s: down_reason %" PRIu64 ", expected %" PRIu64, want[i].dev, reason->v,
                     want[i].reason);
        }
        assert_int_equal(nth_sample(series_id(want[i].dev, "", "reachable"), 0)->v,
                         want[i].reason == 0);
        const fevent_t *ev = find_event(want[i].dev, "device_down");
        if (want[i].text == NULL) {
            assert_null(ev);
            continue;
        }
        assert_non_null(ev);
        if (strstr(ev->text, want[i].text) == NULL) {
            fail_msg("%s: event text '%s' lacks '%s'", want[i].dev, ev->text, want[i].text);
        }
        assert_null(strstr(ev->text, "secret")); /* never the community */
        char index[16]; /* the position in the configuration, from 1 (kaavalDeviceIndex) */
        snprintf(index, sizeof(index), "%zu", i + 1);
        assert_string_equal(ev->index, index);
        assert_null(find_series(want[i].dev, "Gi0/1", "in_octets"));
    }
    assert_int_equal(find_series("r-ok", "", "down_reason")->kind, KVL_KIND_GAUGE);
    world_stop(&w);
}

static bool have_stats(world_t *w, const void *arg)
{
    (void)arg;
    const fsample_t *s = last_sample(series_id(w->cfg.id, "", "devices_down"));
    return s != NULL && s->v == 1 && polls_of("s-ok") >= 2;
}

static void test_agent_statistics(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    standard_device("s-ok");
    standard_device("s-dead")->dead = true;
    world_device(&w, "s-ok", KVL_SNMP_V2C, 150);
    world_device(&w, "s-dead", KVL_SNMP_V2C, 150);
    world_start(&w);
    char err[200];
    kvl_stats_opts_t so = {.agent_id = w.cfg.id,
                           .batcher = (kvl_batcher_t *)&dummy_batcher,
                           .poller = w.p,
                           .period_ms = 100};
    assert_int_equal(kvl_stats_new(&w.loop, &so, &w.stats, err, sizeof(err)), 0);
    assert_true(run_until(&w, have_stats, NULL, 5000));
    run_for(&w, 150);
    static const struct {
        const char *metric;
        kvl_kind_t kind;
        bool real;
    } defs[] = {
        {"snmp_requests", KVL_KIND_COUNTER, false}, {"snmp_timeouts", KVL_KIND_COUNTER, false},
        {"snmp_varbinds", KVL_KIND_COUNTER, false}, {"snmp_errors", KVL_KIND_COUNTER, false},
        {"devices", KVL_KIND_GAUGE, false},         {"devices_down", KVL_KIND_GAUGE, false},
        {"inflight", KVL_KIND_GAUGE, false},        {"cycle_ms", KVL_KIND_GAUGE, true},
        {"lag_ms", KVL_KIND_GAUGE, true},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(defs); i++) {
        const fseries_t *s = find_series("test", "", defs[i].metric);
        if (s == NULL) {
            fail_msg("no agent series %s", defs[i].metric);
        }
        assert_int_equal(s->scope, KVL_SCOPE_AGENT);
        assert_int_equal(s->kind, defs[i].kind);
        assert_int_equal(s->real, defs[i].real);
        assert_int_equal(s->n_labels, 0);
    }
    assert_true(last_sample(series_id("test", "", "snmp_requests"))->v >= 4);
    assert_true(last_sample(series_id("test", "", "snmp_timeouts"))->v >= 1);
    assert_true(last_sample(series_id("test", "", "snmp_varbinds"))->v >= 20);
    assert_int_equal(last_sample(series_id("test", "", "devices"))->v, 2);
    /* Counters never go back. */
    uint32_t req = series_id("test", "", "snmp_requests");
    for (size_t i = 1; nth_sample(req, i) != NULL; i++) {
        assert_true(nth_sample(req, i)->v >= nth_sample(req, i - 1)->v);
    }
    bool cycle_seen = false;
    uint32_t cyc = series_id("test", "", "cycle_ms");
    for (size_t i = 0; nth_sample(cyc, i) != NULL; i++) {
        const fsample_t *s = nth_sample(cyc, i);
        cycle_seen = cycle_seen || (!s->unknown && s->r > 0);
    }
    assert_true(cycle_seen);
    world_stop(&w);

    /* --poll-once sends none. */
    world_init(&w);
    standard_device("s1");
    world_device(&w, "s1", KVL_SNMP_V2C, 150);
    world_start_once(&w);
    assert_true(run_until(&w, is_done, NULL, 5000));
    run_for(&w, 100);
    assert_null(find_series("test", "", "snmp_requests"));
    world_stop(&w);
}

/* Metric groups after the interfaces, through the same fake session: the built-in ucd and
 * hr-storage groups, hr-cpu missing on the device, a user table named by a numeric column. */
static void check_groups(int version)
{
    char err[512] = "";
    kvl_agent_cfg_t *c = kvl_agent_cfg_parse(
        "g.yaml",
        "id: a\nsite: s\ncollector: 127.0.0.1:1\n"
        "metric_groups:\n"
        "  - name: fans\n"
        "    table: .1.3.6.1.4.1.42.1\n"
        "    instance: .1.3.6.1.4.1.42.1.2\n"
        "    metrics:\n"
        "      - {name: rpm, oid: .1.3.6.1.4.1.42.1.3, scale: 0.5}\n"
        "      - {name: spins, oid: .1.3.6.1.4.1.42.1.4, kind: counter}\n"
        "devices:\n"
        "  - {name: srv, address: 127.0.0.1, metric_groups: [ucd, host-resources, fans]}\n"
        "insecure: true\n",
        err, sizeof(err));
    if (c == NULL) {
        fail_msg("%s", err);
    }
    world_t w;
    world_init(&w);
    fake_dev_t *fd = standard_device("srv");
    mib_int(fd, ".1.3.6.1.4.1.2021.10.1.5.1", 58);
    mib_int(fd, ".1.3.6.1.4.1.2021.10.1.5.2", 31);
    mib_int(fd, ".1.3.6.1.4.1.2021.10.1.5.3", 7);
    mib_int(fd, ".1.3.6.1.4.1.2021.4.5.0", 2048);
    mib_c32(fd, ".1.3.6.1.4.1.2021.11.50.0", 4242);
    /* hrStorage: "/" and two rows called "/data" */
    const char *descr[] = {"/", "/data", "/data"};
    for (int i = 0; i < 3; i++) {
        char o[64];
        snprintf(o, sizeof(o), ".1.3.6.1.2.1.25.2.3.1.3.%d", 30 + i);
        mib_str(fd, o, descr[i]);
        snprintf(o, sizeof(o), ".1.3.6.1.2.1.25.2.3.1.4.%d", 30 + i);
        mib_int(fd, o, 4096);
        snprintf(o, sizeof(o), ".1.3.6.1.2.1.25.2.3.1.5.%d", 30 + i);
        mib_int(fd, o, 1000 + (uint64_t)i);
        snprintf(o, sizeof(o), ".1.3.6.1.2.1.25.2.3.1.6.%d", 30 + i);
        mib_int(fd, o, 10 + (uint64_t)i);
    }
    mib_gauge(fd, ".1.3.6.1.2.1.25.1.6.0", 77);
    /* the user table: index 5.1 named by an integer column */
    mib_int(fd, ".1.3.6.1.4.1.42.1.2.5.1", 12);
    mib_gauge(fd, ".1.3.6.1.4.1.42.1.3.5.1", 3001);
    mib_c32(fd, ".1.3.6.1.4.1.42.1.4.5.1", 9);
    kvl_device_cfg_t *d = world_device(&w, "srv", version, 60000);
    d->mgroups = c->snmp.devices[0].mgroups;
    d->n_mgroups = c->snmp.devices[0].n_mgroups;
    world_start_once(&w);
    assert_true(run_until(&w, is_done, NULL, 5000));

    const fseries_t *s = find_series("srv", "", "mem_total_bytes");
    assert_non_null(s);
    assert_int_equal(s->scope, KVL_SCOPE_GROUP);
    assert_int_equal(nth_sample(series_id("srv", "", "mem_total_bytes"), 0)->v, 2048 * 1024);
    assert_true(find_series("srv", "", "load1")->real);
    assert_true(fabs(nth_sample(series_id("srv", "", "load1"), 0)->r - 0.58) < 1e-9);
    assert_true(fabs(nth_sample(series_id("srv", "", "load15"), 0)->r - 0.07) < 1e-9);
    assert_true(nth_sample(series_id("srv", "", "mem_cached_bytes"), 0)->unknown);
    assert_int_equal(find_series("srv", "", "cpu_user")->kind, KVL_KIND_COUNTER);
    assert_int_equal(nth_sample(series_id("srv", "", "cpu_user"), 0)->v, 4242);
    assert_int_equal(nth_sample(series_id("srv", "", "processes"), 0)->v, 77);
    /* hr-storage: bytes = units x blocks; duplicate names get "#<index>" */
    assert_int_equal(nth_sample(series_id("srv", "/", "size_bytes"), 0)->v, 1000ull * 4096);
    assert_int_equal(nth_sample(series_id("srv", "/data#31", "used_bytes"), 0)->v, 11ull * 4096);
    assert_int_equal(nth_sample(series_id("srv", "/data#32", "used_bytes"), 0)->v, 12ull * 4096);
    assert_string_equal(label(find_series("srv", "/data#32", "size_bytes"), "index"), "32");
    /* hr-cpu: no rows, nothing registered */
    assert_null(find_series("srv", "", "load"));
    for (size_t i = 0; i < n_series; i++) {
        assert_string_not_equal(series[i].metric, "load");
    }
    /* the user table */
    assert_true(fabs(nth_sample(series_id("srv", "12", "rpm"), 0)->r - 1500.5) < 1e-9);
    assert_int_equal(nth_sample(series_id("srv", "12", "spins"), 0)->v, 9);
    assert_string_equal(label(find_series("srv", "12", "spins"), "index"), "5.1");
    /* the interfaces are still there */
    assert_non_null(find_series("srv", "Gi0/1", "in_octets"));
    world_stop(&w);
    kvl_agent_cfg_free(c);
}

static void test_metric_groups_v2c(void **state)
{
    (void)state;
    check_groups(KVL_SNMP_V2C);
}

static void test_metric_groups_v1(void **state)
{
    (void)state;
    check_groups(KVL_SNMP_V1);
}

typedef struct samples_arg {
    const char *dev, *instance, *metric;
    size_t n;
} samples_arg_t;

static bool have_samples(world_t *w, const void *arg)
{
    (void)w;
    const samples_arg_t *a = arg;
    uint32_t id = series_id(a->dev, a->instance, a->metric);
    return id != 0 && count_samples(id) >= a->n;
}

/* Counters of a group across polls and a reboot; a group the device lacks is not asked
 * again until the next discovery (here: the one a reboot starts). */
static void test_metric_groups_over_polls(void **state)
{
    (void)state;
    char err[512] = "";
    kvl_agent_cfg_t *c =
        kvl_agent_cfg_parse("g.yaml",
                            "id: a\nsite: s\ncollector: 127.0.0.1:1\n"
                            "metric_groups:\n"
                            "  - name: late\n"
                            "    metrics: [{name: v, oid: .1.3.6.1.4.1.42.9.0}]\n"
                            "devices:\n"
                            "  - {name: r1, address: 127.0.0.1, metric_groups: [late, ucd]}\n"
                            "insecure: true\n",
                            err, sizeof(err));
    if (c == NULL) {
        fail_msg("%s", err);
    }
    world_t w;
    world_init(&w);
    fake_dev_t *fd = standard_device("r1");
    mib_c32(fd, ".1.3.6.1.4.1.2021.11.50.0", 100);
    kvl_device_cfg_t *d = world_device(&w, "r1", KVL_SNMP_V2C, 150);
    d->mgroups = c->snmp.devices[0].mgroups;
    d->n_mgroups = c->snmp.devices[0].n_mgroups;
    world_start(&w);
    samples_arg_t a = {"r1", "", "cpu_user", 1};
    assert_true(run_until(&w, have_samples, &a, 5000));
    uint32_t cpu = series_id("r1", "", "cpu_user");
    assert_int_equal(nth_sample(cpu, 0)->v, 100);

    /* the "late" group (polled before ucd, so already found missing) appears on the device:
     * not asked before the next discovery */
    mib_gauge(fd, ".1.3.6.1.4.1.42.9.0", 5);
    mib_ticks(fd, ".1.3.6.1.2.1.1.3.0", 100015);
    mib_c32(fd, ".1.3.6.1.4.1.2021.11.50.0", 150);
    a.n = 2;
    assert_true(run_until(&w, have_samples, &a, 5000));
    assert_false(nth_sample(cpu, 1)->unknown);
    assert_int_equal(nth_sample(cpu, 1)->v, 150);
    assert_null(find_series("r1", "", "v")); /* had it been asked, it would be there */

    /* sysUpTime goes back: the counter is unknown once, and the group is asked again */
    mib_ticks(fd, ".1.3.6.1.2.1.1.3.0", 50);
    mib_c32(fd, ".1.3.6.1.4.1.2021.11.50.0", 7);
    a.n = 3;
    assert_true(run_until(&w, have_samples, &a, 5000));
    assert_true(nth_sample(cpu, 2)->unknown);
    samples_arg_t late = {"r1", "", "v", 1};
    assert_true(run_until(&w, have_samples, &late, 5000));
    assert_int_equal(nth_sample(series_id("r1", "", "v"), 0)->v, 5);
    assert_int_equal(find_series("r1", "", "v")->scope, KVL_SCOPE_GROUP);
    world_stop(&w);
    kvl_agent_cfg_free(c);
}

/* What the trap receiver asks (poller.h): a device by a datagram's source address, an
 * interface's name by ifIndex as the poller names it, and a poll at once (deferred while
 * one ran less than KVL_POLLER_POLL_NOW_GAP_MS ago, several asks making one poll). */
static void test_trap_lookups(void **state)
{
    (void)state;
    world_t w;
    world_init(&w);
    standard_device("sw1");
    fake_dev_new("sw2");
    world_device(&w, "sw1", KVL_SNMP_V2C, 20000);
    world_device(&w, "sw2", KVL_SNMP_V2C, 20000)->address = (char *)"10.0.0.2";
    world_device(&w, "sw3", KVL_SNMP_V2C, 20000)->address = (char *)"2001:db8::3";
    world_start(&w);
    wait_polls(&w, "sw1", 1);

    struct sockaddr_in a4;
    struct sockaddr_in6 a6;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 5000, &a4), 0);
    assert_int_equal(kvl_poller_device_by_addr(w.p, (const struct sockaddr *)&a4), 0);
    assert_int_equal(uv_ip4_addr("10.0.0.2", 162, &a4), 0);
    assert_int_equal(kvl_poller_device_by_addr(w.p, (const struct sockaddr *)&a4), 1);
    assert_string_equal(kvl_poller_device(w.p, 1)->name, "sw2");
    assert_int_equal(uv_ip6_addr("::ffff:10.0.0.2", 162, &a6), 0); /* IPv4-mapped */
    assert_int_equal(kvl_poller_device_by_addr(w.p, (const struct sockaddr *)&a6), 1);
    assert_int_equal(uv_ip6_addr("2001:db8::3", 162, &a6), 0);
    assert_int_equal(kvl_poller_device_by_addr(w.p, (const struct sockaddr *)&a6), 2);
    assert_int_equal(uv_ip4_addr("10.0.0.3", 162, &a4), 0);
    assert_int_equal(kvl_poller_device_by_addr(w.p, (const struct sockaddr *)&a4), -1);

    char buf[64];
    assert_string_equal(kvl_poller_if_name(w.p, 0, 1, buf, sizeof(buf)), "Gi0/1");
    assert_string_equal(kvl_poller_if_name(w.p, 0, 2, buf, sizeof(buf)), "eth2");
    assert_string_equal(kvl_poller_if_name(w.p, 0, 3, buf, sizeof(buf)), "if3");
    assert_string_equal(kvl_poller_if_name(w.p, 0, 99, buf, sizeof(buf)), "if99");
    assert_string_equal(kvl_poller_if_name(w.p, 1, 1, buf, sizeof(buf)), "if1"); /* no inventory */

    /* Just polled: deferred, and a second ask makes no second poll. */
    size_t before = polls_of("sw1");
    assert_false(kvl_poller_poll_now(w.p, 0));
    assert_false(kvl_poller_poll_now(w.p, 0));
    run_for(&w, 500);
    assert_int_equal(polls_of("sw1"), before);
    wait_polls(&w, "sw1", before + 1);
    run_for(&w, KVL_POLLER_POLL_NOW_GAP_MS + 500);
    assert_int_equal(polls_of("sw1"), before + 1);
    /* Long enough after that poll: at once. */
    assert_true(kvl_poller_poll_now(w.p, 0));
    wait_polls(&w, "sw1", before + 2);
    world_stop(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2c_inventory_and_metrics),
        cmocka_unit_test(test_trap_lookups),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_reboot_and_discontinuity_time),
        cmocka_unit_test(test_wrap_judged_by_speed),
        cmocka_unit_test(test_renumbered_interface_keeps_state),
        cmocka_unit_test(test_sessions_between_polls),
        cmocka_unit_test(test_v1_nosuchname),
        cmocka_unit_test(test_v1_skips_counter64),
        cmocka_unit_test(test_down_and_up),
        cmocka_unit_test(test_too_big_and_small_responses),
        cmocka_unit_test(test_inventory_labels),
        cmocka_unit_test(test_overrun_skips_ticks),
        cmocka_unit_test(test_once),
        cmocka_unit_test(test_non_increasing_column_ends),
        cmocka_unit_test(test_spread_over_interval),
        cmocka_unit_test(test_inflight_cap_and_fairness),
        cmocka_unit_test(test_dead_device_backoff),
        cmocka_unit_test(test_adaptive_repetitions),
        cmocka_unit_test(test_rediscovery_triggers),
        cmocka_unit_test(test_interface_filters),
        cmocka_unit_test(test_interface_name_too_long),
        cmocka_unit_test(test_down_reasons),
        cmocka_unit_test(test_agent_statistics),
        cmocka_unit_test(test_metric_groups_v2c),
        cmocka_unit_test(test_metric_groups_v1),
        cmocka_unit_test(test_metric_groups_over_polls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
