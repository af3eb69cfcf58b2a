/*
 * test_book.c — unit tests for the alert book (collector/alerts/book.h) and what it is
 * made of: the `alerts:` section (alerts_config.h), silences and maintenance windows
 * (silence.h), the query parameters and the HTTP handlers (book_api.c); the files' format
 * version (written, read without one, refused when newer).
 *
 * The notifier and the HTTP server are faked here at link time (kvl_notify_enqueue and
 * kvl_notify_has_receiver record what the book hands over; kvl_http_route, kvl_http_query
 * and kvl_http_error serve hand-made requests), and the book's clock is a variable the
 * tests move, calling kvl_book_tick as its timer would; one test runs the real timer on a
 * uv loop. Each test has its own temporary folder.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "alerts_config.h"
#include "book.h"
#include "collector_config.h"
#include "head_line.h"
#include "http.h"
#include "kvl.h"
#include "log.h"
#include "notify.h"
#include "rules.h"
#include "silence.h"

#define S_MS 1000LL
#define M_MS (60 * S_MS)
#define H_MS (60 * M_MS)
/* Saturday 2026-12-05 10:00:00 UTC */
#define T0 (1796428800000LL + 10 * H_MS)

/* --- the fake notifier -------------------------------------------------------------------- */

struct kvl_notify {
    int unused;
};

#define SENT_MAX 64
typedef struct sent {
    char receiver[64];
    char group_key[256];
    size_t n;
    uint64_t fp[16];
    int status[16];
    bool repeat, escalated;
    char index[16]; /* the first alert's `index` field, "" without */
} sent_t;

static sent_t g_sent[SENT_MAX];
static size_t g_n_sent;
static int g_enqueue_rc;
static struct kvl_notify g_notify;
static int g_sent_fd = -1; /* the kill test's child: each alert handed over, one line */

static const char *g_gone; /* a receiver the fake notifier no longer knows (reloads) */

bool kvl_notify_has_receiver(const kvl_notify_t *n, const char *receiver)
{
    (void)n;
    if (g_gone != NULL && strcmp(receiver, g_gone) == 0) {
        return false;
    }
    static const char *const known[] = {"oncall", "district", "lead", "default", "audit"};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(known); i++) {
        if (strcmp(receiver, known[i]) == 0) {
            return true;
        }
    }
    return false;
}

int kvl_notify_enqueue(kvl_notify_t *n, const kvl_notification_t *note)
{
    assert_ptr_equal(n, &g_notify);
    if (g_enqueue_rc != 0) {
        return g_enqueue_rc;
    }
    if (g_sent_fd >= 0) {
        for (size_t i = 0; i < note->n_alerts; i++) {
            char line[64];
            int len = snprintf(line, sizeof(line), "%c %016llx\n",
                               note->alerts[i]->status == KVL_ALERT_RESOLVED ? 'R' : 'F',
                               (unsigned long long)note->alerts[i]->fingerprint);
            if (write(g_sent_fd, line, (size_t)len) != len) {
                _exit(3);
            }
        }
        return 0;
    }
    assert_true(g_n_sent < SENT_MAX);
    assert_true(note->n_alerts > 0 && note->n_alerts <= 16);
    sent_t *s = &g_sent[g_n_sent++];
    memset(s, 0, sizeof(*s));
    snprintf(s->receiver, sizeof(s->receiver), "%s", note->receiver);
    snprintf(s->group_key, sizeof(s->group_key), "%s", note->group_key);
    s->n = note->n_alerts;
    for (size_t i = 0; i < note->n_alerts; i++) {
        s->fp[i] = note->alerts[i]->fingerprint;
        s->status[i] = note->alerts[i]->status;
    }
    s->repeat = note->repeat;
    s->escalated = note->escalated;
    const char *ix = kvl_alert_field(note->alerts[0], "index");
    snprintf(s->index, sizeof(s->index), "%s", ix != NULL ? ix : "");
    return 0;
}

/* --- the fake HTTP server ----------------------------------------------------------------- */

typedef struct route {
    char method[8];
    char prefix[64];
    kvl_role_t role;
    kvl_http_handler_fn fn;
    void *ctx;
} route_t;

static route_t g_routes[16];
static size_t g_n_routes;

int kvl_http_route(kvl_http_t *h, const char *method, const char *prefix, kvl_role_t min_role,
                   kvl_http_handler_fn fn, void *ctx)
{
    (void)h;
    assert_true(g_n_routes < 16);
    route_t *r = &g_routes[g_n_routes++];
    snprintf(r->method, sizeof(r->method), "%s", method);
    snprintf(r->prefix, sizeof(r->prefix), "%s", prefix);
    r->role = min_role;
    r->fn = fn;
    r->ctx = ctx;
    return 0;
}

/* A request's query: "k=v&k=v" (no decoding needed in these tests). */
typedef struct query {
    char text[512];
} query_t;

const char *kvl_http_query(const kvl_http_req_t *req, const char *key)
{
    const query_t *q = req->priv;
    static char value[512];
    if (q == NULL) {
        return NULL;
    }
    size_t kl = strlen(key);
    const char *p = q->text;
    while (*p != '\0') {
        const char *end = strchr(p, '&');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len > kl && strncmp(p, key, kl) == 0 && p[kl] == '=') {
            snprintf(value, sizeof(value), "%.*s", (int)(len - kl - 1), p + kl + 1);
            return value;
        }
        p += len + (end != NULL ? 1 : 0);
    }
    return NULL;
}

void kvl_http_error(kvl_http_resp_t *resp, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    resp->status = status;
    resp->body = json_pack("{s:s}", "error", msg);
}

/* Calls the route registered for method and the longest matching prefix. */
static kvl_http_resp_t call(const char *method, const char *path, const char *query,
                            const char *body)
{
    route_t *best = NULL;
    for (size_t i = 0; i < g_n_routes; i++) {
        size_t pl = strlen(g_routes[i].prefix);
        if (strcmp(g_routes[i].method, method) == 0 && strncmp(path, g_routes[i].prefix, pl) == 0 &&
            (path[pl] == '\0' || path[pl] == '/') && (best == NULL || pl > strlen(best->prefix))) {
            best = &g_routes[i];
        }
    }
    assert_non_null(best);
    static char segbuf[512];
    snprintf(segbuf, sizeof(segbuf), "%s", path + strlen(best->prefix));
    kvl_http_req_t req = {.method = method, .path = path, .user = "asha", .role = KVL_ROLE_ADMIN};
    for (char *p = strtok(segbuf, "/"); p != NULL && req.n_segs < KVL_HTTP_MAX_SEGS;
         p = strtok(NULL, "/")) {
        req.segs[req.n_segs++] = p;
    }
    query_t q;
    snprintf(q.text, sizeof(q.text), "%s", query != NULL ? query : "");
    req.priv = &q;
    if (body != NULL) {
        json_error_t e;
        req.body = json_loads(body, 0, &e);
        assert_non_null(req.body);
    }
    kvl_http_resp_t resp = {.status = 200};
    best->fn(best->ctx, &req, &resp);
    json_decref(req.body);
    return resp;
}

/* --- the clock, the folder, alerts ---------------------------------------------------------- */

static int64_t g_now;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return g_now;
}

typedef struct fixture {
    char dir[128];
    uv_loop_t loop;
    kvl_alerts_cfg_t *cfg;
    kvl_book_t *book;
} fixture_t;

static kvl_alerts_cfg_t *cfg_ok(const char *text)
{
    char err[512];
    kvl_alerts_cfg_t *c = kvl_alerts_cfg_parse_text("c.yaml", text, err, sizeof(err));
    if (c == NULL) {
        fail_msg("unexpected error: %s", err);
    }
    return c;
}

static kvl_book_t *open_book(fixture_t *f)
{
    char err[512];
    kvl_book_opts_t o = {
        .loop = &f->loop, .cfg = f->cfg, .notify = &g_notify, .dir = f->dir, .now_ms = fake_clock};
    kvl_book_t *b = NULL;
    int rc = kvl_book_new(&o, &b, err, sizeof(err));
    if (rc != 0) {
        fail_msg("kvl_book_new: %s", err);
    }
    return b;
}

static void close_book(fixture_t *f, kvl_book_t *b)
{
    kvl_book_free(b);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static fixture_t *setup_with(const char *cfg_text)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/kvl-book-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    strcat(f->dir, "/alerts");
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->cfg = cfg_ok(cfg_text);
    g_now = T0;
    g_n_sent = 0;
    g_enqueue_rc = 0;
    g_n_routes = 0;
    f->book = open_book(f);
    return f;
}

static void teardown_fixture(fixture_t *f)
{
    if (f->book != NULL) {
        close_book(f, f->book);
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    kvl_alerts_cfg_free(f->cfg);
    char cmd[300];
    char *slash = strrchr(f->dir, '/');
    *slash = '\0';
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
}

/* An alert of rule `rule` for site/device, with a status. */
static kvl_alert_t mk(const char *rule, const char *site, const char *device, int status)
{
    kvl_alert_t a = {0};
    a.status = status;
    a.severity = KVL_RULE_SEV_CRITICAL;
    a.rule = rule;
    a.labels[0] = (kvl_label_t){"alertname", rule};
    a.labels[1] = (kvl_label_t){"severity", "critical"};
    a.labels[2] = (kvl_label_t){"site", site};
    a.labels[3] = (kvl_label_t){"device", device};
    a.n_labels = 4;
    a.summary = "down";
    a.active_at_ms = a.starts_at_ms = g_now - 10 * S_MS;
    a.changed_ms = g_now;
    if (status == KVL_ALERT_RESOLVED) {
        a.ends_at_ms = g_now;
    }
    assert_int_equal(kvl_alert_finish(&a), 0);
    return a;
}

static void tick_at(kvl_book_t *b, int64_t t)
{
    g_now = t;
    kvl_book_tick(b);
}

static const char *BASIC = "receiver: oncall\n"
                           "group_by: [site]\n"
                           "group_wait: 5s\n"
                           "group_interval: 30s\n"
                           "repeat_interval: 1h\n";

/* --- tests ------------------------------------------------------------------------------------ */

static void test_group_wait_gathers(void **state)
{
    (void)state;
    fixture_t *f = setup_with(BASIC);
    kvl_alert_t a = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &a);
    g_now = T0 + 1 * S_MS;
    kvl_alert_t b = mk("device_down", "DHQ-Kollam", "sw2", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &b);
    kvl_alert_t other = mk("device_down", "BHQ-Anchal", "rtr9", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &other);
    tick_at(f->book, T0 + 4 * S_MS);
    assert_int_equal(g_n_sent, 0);
    tick_at(f->book, T0 + 5 * S_MS);
    /* the first group: both of its alerts in one notification; the other not yet */
    assert_int_equal(g_n_sent, 1);
    assert_string_equal(g_sent[0].receiver, "oncall");
    assert_int_equal(g_sent[0].n, 2);
    assert_non_null(strstr(g_sent[0].group_key, "site=DHQ-Kollam"));
    assert_false(g_sent[0].repeat);
    tick_at(f->book, T0 + 6 * S_MS);
    assert_int_equal(g_n_sent, 2);
    assert_int_equal(g_sent[1].n, 1);
    assert_int_equal(g_sent[1].fp[0], other.fingerprint);

    /* a later change of the first group waits for group_interval; the resolution of a
     * and the firing of a third go together */
    g_now = T0 + 10 * S_MS;
    kvl_alert_t a_res = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_RESOLVED);
    kvl_book_update(f->book, &a_res);
    kvl_alert_t c = mk("device_down", "DHQ-Kollam", "ap3", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &c);
    tick_at(f->book, T0 + 34 * S_MS);
    assert_int_equal(g_n_sent, 2);
    tick_at(f->book, T0 + 35 * S_MS);
    assert_int_equal(g_n_sent, 3);
    assert_int_equal(g_sent[2].n, 2);
    for (size_t i = 0; i < 2; i++) {
        if (g_sent[2].fp[i] == a.fingerprint) {
            assert_int_equal(g_sent[2].status[i], KVL_ALERT_RESOLVED);
        } else {
            assert_int_equal(g_sent[2].fp[i], c.fingerprint);
            assert_int_equal(g_sent[2].status[i], KVL_ALERT_FIRING);
        }
    }
    /* nothing sent twice afterwards */
    tick_at(f->book, T0 + 50 * M_MS);
    assert_int_equal(g_n_sent, 3);
    teardown_fixture(f);
}

static void test_repeat_failure_pages_as_fast(void **state)
{
    (void)state;
    fixture_t *f = setup_with(BASIC);
    for (int cut = 0; cut < 3; cut++) {
        int64_t t = T0 + cut * 40 * S_MS;
        g_now = t;
        kvl_alert_t a = mk("link_down", "BHQ-Anchal", "rtr1", KVL_ALERT_FIRING);
        kvl_book_update(f->book, &a);
        tick_at(f->book, t + 5 * S_MS);
        assert_int_equal(g_n_sent, (size_t)(2 * cut + 1));
        g_now = t + 10 * S_MS;
        kvl_alert_t r = mk("link_down", "BHQ-Anchal", "rtr1", KVL_ALERT_RESOLVED);
        kvl_book_update(f->book, &r);
        /* the group's interval holds the resolution until 30 s after the page */
        tick_at(f->book, t + 35 * S_MS);
        assert_int_equal(g_n_sent, (size_t)(2 * cut + 2));
        assert_int_equal(g_sent[2 * cut + 1].status[0], KVL_ALERT_RESOLVED);
    }
    teardown_fixture(f);
}

/* 40 sites behind one uplink, 12 devices each, all down within two seconds: one
 * notification per site (group_by: [site]), each with its 12 alerts. */
static void test_storm_one_page_per_group(void **state)
{
    (void)state;
    fixture_t *f = setup_with(BASIC);
    static char sites[40][16], devs[12][16];
    for (int s = 0; s < 40; s++) {
        snprintf(sites[s], sizeof(sites[s]), "BHQ-%02d", s);
    }
    for (int d = 0; d < 12; d++) {
        snprintf(devs[d], sizeof(devs[d]), "dev%02d", d);
    }
    for (int i = 0; i < 40 * 12; i++) {
        g_now = T0 + i * 4; /* 480 alerts in 1.92 s */
        kvl_alert_t a = mk("device_down", sites[i % 40], devs[i / 40], KVL_ALERT_FIRING);
        kvl_book_update(f->book, &a);
    }
    assert_int_equal(g_n_sent, 0);
    tick_at(f->book, T0 + 10 * S_MS);
    assert_int_equal(g_n_sent, 40);
    for (size_t i = 0; i < g_n_sent; i++) {
        assert_int_equal(g_sent[i].n, 12);
        for (size_t k = 0; k < i; k++) {
            assert_string_not_equal(g_sent[i].group_key, g_sent[k].group_key);
        }
    }
    kvl_book_stats_t st;
    kvl_book_stats(f->book, &st);
    assert_int_equal(st.active, 480);
    assert_int_equal(st.notifications, 40);
    teardown_fixture(f);
}

static void test_pending_late_never_sent(void **state)
{
    (void)state;
    fixture_t *f = setup_with(BASIC);
    kvl_alert_t p = mk("util_high", "DHQ-Kollam", "rtr1", KVL_ALERT_PENDING);
    kvl_book_update(f->book, &p);
    kvl_alert_t pr = mk("util_high", "DHQ-Kollam", "rtr1", KVL_ALERT_RESOLVED);
    kvl_book_update(f->book, &pr);
    kvl_alert_t l = mk("util_high", "DHQ-Kollam", "rtr2", KVL_ALERT_FIRING);
    l.late = true;
    kvl_book_update(f->book, &l);
    tick_at(f->book, T0 + 10 * S_MS);
    assert_int_equal(g_n_sent, 0);
    kvl_alert_t lr = mk("util_high", "DHQ-Kollam", "rtr2", KVL_ALERT_RESOLVED);
    lr.late = true;
    kvl_book_update(f->book, &lr);
    tick_at(f->book, T0 + 10 * M_MS);
    assert_int_equal(g_n_sent, 0);
    kvl_book_stats_t st;
    kvl_book_stats(f->book, &st);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.unsettled, 0);
    assert_true(st.history >= 4);

    /* a late firing later confirmed by fresh data pages once, then as usual */
    kvl_alert_t l2 = mk("util_high", "DHQ-Kollam", "rtr3", KVL_ALERT_FIRING);
    l2.late = true;
    kvl_book_update(f->book, &l2);
    tick_at(f->book, T0 + 11 * M_MS);
    assert_int_equal(g_n_sent, 0);
    l2.late = false;
    kvl_book_update(f->book, &l2);
    tick_at(f->book, T0 + 12 * M_MS);
    assert_int_equal(g_n_sent, 1);
    assert_int_equal(g_sent[0].fp[0], l2.fingerprint);
    teardown_fixture(f);
}

static void test_repeat_and_ack(void **state)
{
    (void)state;
    fixture_t *f = setup_with(BASIC);
    kvl_alert_t a = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &a);
    tick_at(f->book, T0 + 5 * S_MS);
    assert_int_equal(g_n_sent, 1);
    tick_at(f->book, T0 + 5 * S_MS + H_MS - 1);
    assert_int_equal(g_n_sent, 1);
    tick_at(f->book, T0 + 5 * S_MS + H_MS);
    assert_int_equal(g_n_sent, 2);
    assert_true(g_sent[1].repeat);
    assert_int_equal(g_sent[1].fp[0], a.fingerprint);
    /* acknowledged: no more repeats */
    assert_int_equal(kvl_book_ack(f->book, a.fingerprint, "asha", "on it"), 0);
    tick_at(f->book, T0 + 5 * H_MS);
    assert_int_equal(g_n_sent, 2);
    /* the resolution still goes out */
    kvl_alert_t r = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_RESOLVED);
    kvl_book_update(f->book, &r);
    tick_at(f->book, T0 + 5 * H_MS + 1);
    assert_int_equal(g_n_sent, 3);
    assert_int_equal(g_sent[2].status[0], KVL_ALERT_RESOLVED);
    assert_int_equal(kvl_book_ack(f->book, a.fingerprint, "asha", "late"), KVL_EINVAL);
    teardown_fixture(f);
}

static kvl_silence_t *silence(const char *json)
{
    kvl_silence_t *s;
    char why[256];
    json_t *o = json_loads(json, 0, NULL);
    assert_non_null(o);
    int rc = kvl_silence_from_json(o, false, "asha", g_now, &s, why, sizeof(why));
    json_decref(o);
    if (rc != 0) {
        fail_msg("silence: %s", why);
    }
    return s;
}

static void test_silence_suppresses(void **state)
{
    (void)state;
    fixture_t *f = setup_with(BASIC);
    kvl_silence_t *s = silence("{\"matchers\": [{\"name\": \"site\", \"value\": \"DHQ-.*\", "
                               "\"op\": \"=~\"}], \"ends_at\": \"2026-12-05T12:00:00Z\", "
                               "\"comment\": \"fibre work\"}");
    char id[KVL_SILENCE_ID_LEN + 1];
    memcpy(id, s->id, sizeof(id));
    assert_int_equal(kvl_book_silence_add(f->book, s), 0);
    kvl_alert_t a = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &a);
    kvl_alert_t other = mk("device_down", "BHQ-Anchal", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &other);
    tick_at(f->book, T0 + 10 * S_MS);
    assert_int_equal(g_n_sent, 1);
    assert_int_equal(g_sent[0].fp[0], other.fingerprint);
    /* a silenced alert resolving: nothing sent */
    kvl_alert_t r = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_RESOLVED);
    kvl_book_update(f->book, &r);
    tick_at(f->book, T0 + 10 * M_MS);
    assert_int_equal(g_n_sent, 1);
    /* one still firing when the silence is removed is sent then */
    kvl_alert_t b = mk("device_down", "DHQ-Kollam", "sw2", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &b);
    tick_at(f->book, T0 + 11 * M_MS);
    assert_int_equal(g_n_sent, 1);
    assert_int_equal(kvl_book_silence_del(f->book, id), 0);
    assert_int_equal(kvl_book_silence_del(f->book, id), KVL_EINVAL);
    tick_at(f->book, T0 + 12 * M_MS);
    assert_int_equal(g_n_sent, 2);
    assert_int_equal(g_sent[1].fp[0], b.fingerprint);
    teardown_fixture(f);
}

static void test_maintenance_weekly(void **state)
{
    (void)state;
    fixture_t *f = setup_with(BASIC);
    /* Saturdays 15:00 at +05:30 (09:30 UTC) for 2 h: T0 (10:00 UTC) is inside */
    json_t *o = json_loads("{\"matchers\": [{\"name\": \"device\", \"value\": \"rtr1\"}], "
                           "\"weekly\": {\"days\": [\"sat\"], \"at\": \"15:00\", \"duration\": "
                           "\"2h\", \"offset\": \"+05:30\"}, \"comment\": \"weekly reboot\"}",
                           0, NULL);
    kvl_maint_t *m;
    char why[256];
    assert_int_equal(kvl_maint_from_json(o, false, "asha", g_now, &m, why, sizeof(why)), 0);
    json_decref(o);
    assert_true(kvl_maint_active(m, T0));
    assert_true(kvl_maint_active(m, T0 - 30 * M_MS));
    assert_false(kvl_maint_active(m, T0 - 30 * M_MS - 1));
    assert_false(kvl_maint_active(m, T0 + 90 * M_MS));
    assert_true(kvl_maint_active(m, T0 + 7 * 24 * H_MS));
    assert_false(kvl_maint_active(m, T0 + 24 * H_MS));
    assert_int_equal(kvl_book_maint_add(f->book, m), 0);
    kvl_alert_t a = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &a);
    tick_at(f->book, T0 + 30 * M_MS);
    assert_int_equal(g_n_sent, 0);
    /* the window ends at 11:30 UTC; still firing: sent then */
    tick_at(f->book, T0 + 90 * M_MS - 1);
    assert_int_equal(g_n_sent, 0);
    tick_at(f->book, T0 + 90 * M_MS);
    assert_int_equal(g_n_sent, 1);
    /* the API shows the window, not active now */
    kvl_book_api_register(f->book, NULL);
    kvl_http_resp_t resp = call("GET", "/api/v1/maintenance", NULL, NULL);
    assert_int_equal(resp.status, 200);
    assert_int_equal(json_array_size(resp.body), 1);
    assert_true(json_is_false(json_object_get(json_array_get(resp.body, 0), "active")));
    json_decref(resp.body);
    teardown_fixture(f);
}

static kvl_maint_t *weekly(const char *json)
{
    json_t *o = json_loads(json, 0, NULL);
    assert_non_null(o);
    kvl_maint_t *m;
    char why[256];
    int rc = kvl_maint_from_json(o, false, "asha", g_now, &m, why, sizeof(why));
    json_decref(o);
    if (rc != 0) {
        fail_msg("maintenance: %s", why);
    }
    return m;
}

/* A muted alert waits for the next start or end of a silence or window, not for a periodic
 * look: an idle book has nothing due; a silence's end releases its alert at that moment;
 * removing a window re-arms at once. */
static void test_mute_timer_edges(void **state)
{
    (void)state;
    fixture_t *f = setup_with(BASIC);
    assert_true(kvl_book_next_due(f->book) == INT64_MAX);
    /* a silence from 10:10 to 12:00 UTC: nothing fires, nothing is due */
    kvl_silence_t *s = silence("{\"matchers\": [{\"name\": \"site\", \"value\": \"DHQ-.*\", "
                               "\"op\": \"=~\"}], \"starts_at\": \"2026-12-05T10:10:00Z\", "
                               "\"ends_at\": \"2026-12-05T12:00:00Z\", \"comment\": \"fibre\"}");
    assert_true(kvl_silence_next_change(s, T0) == T0 + 10 * M_MS);
    assert_true(kvl_silence_next_change(s, T0 + 10 * M_MS) == T0 + 2 * H_MS);
    assert_true(kvl_silence_next_change(s, T0 + 2 * H_MS) == INT64_MAX);
    assert_int_equal(kvl_book_silence_add(f->book, s), 0);
    assert_true(kvl_book_next_due(f->book) == INT64_MAX);
    /* an alert before the silence: paged after group_wait, its repeat due an hour later */
    kvl_alert_t a = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &a);
    assert_true(kvl_book_next_due(f->book) == T0 + 5 * S_MS);
    tick_at(f->book, T0 + 5 * S_MS);
    assert_int_equal(g_n_sent, 1);
    assert_true(kvl_book_next_due(f->book) == T0 + 5 * S_MS + H_MS);
    /* the repeat falls inside the silence: nothing sent, nothing due before its end */
    tick_at(f->book, T0 + 5 * S_MS + H_MS);
    assert_int_equal(g_n_sent, 1);
    assert_true(kvl_book_next_due(f->book) == T0 + 2 * H_MS);
    kvl_alert_t b = mk("device_down", "DHQ-Kollam", "sw2", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &b);
    assert_true(kvl_book_next_due(f->book) == T0 + 2 * H_MS);
    tick_at(f->book, T0 + 2 * H_MS - 1);
    assert_int_equal(g_n_sent, 1);
    /* the silence ends: b pages at that very moment (and a's repeat with it) */
    tick_at(f->book, T0 + 2 * H_MS);
    bool b_sent = false;
    for (size_t i = 1; i < g_n_sent; i++) {
        for (size_t k = 0; k < g_sent[i].n; k++) {
            b_sent = b_sent || g_sent[i].fp[k] == b.fingerprint;
        }
    }
    assert_true(b_sent);
    teardown_fixture(f);

    /* weekly windows: Saturdays and Mondays 15:00 at +05:30 (09:30 UTC) for 2 h */
    f = setup_with(BASIC);
    kvl_maint_t *m = weekly("{\"matchers\": [{\"name\": \"device\", \"value\": \"rtr1\"}], "
                            "\"weekly\": {\"days\": [\"sat\", \"mon\"], \"at\": \"15:00\", "
                            "\"duration\": \"2h\", \"offset\": \"+05:30\"}, \"comment\": \"x\"}");
    assert_true(kvl_maint_next_change(m, T0) == T0 + 90 * M_MS);
    assert_true(kvl_maint_next_change(m, T0 - 31 * M_MS) == T0 - 30 * M_MS);
    assert_true(kvl_maint_next_change(m, T0 - 30 * M_MS) == T0 + 90 * M_MS);
    assert_true(kvl_maint_next_change(m, T0 + 90 * M_MS) == T0 - 30 * M_MS + 2 * 24 * H_MS);
    assert_true(kvl_maint_next_change(m, T0 + 2 * 24 * H_MS) == T0 + 90 * M_MS + 2 * 24 * H_MS);
    assert_true(kvl_maint_next_change(m, T0 + 3 * 24 * H_MS) == T0 - 30 * M_MS + 7 * 24 * H_MS);
    char id[KVL_SILENCE_ID_LEN + 1];
    memcpy(id, m->id, sizeof(id));
    assert_int_equal(kvl_book_maint_add(f->book, m), 0);
    assert_true(kvl_book_next_due(f->book) == INT64_MAX);
    kvl_alert_t c = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &c);
    assert_true(kvl_book_next_due(f->book) == T0 + 90 * M_MS);
    /* the window removed: due at once (group_wait from the group's start) */
    g_now = T0 + 1 * S_MS;
    assert_int_equal(kvl_book_maint_del(f->book, id), 0);
    assert_true(kvl_book_next_due(f->book) == T0 + 5 * S_MS);
    tick_at(f->book, T0 + 5 * S_MS);
    assert_int_equal(g_n_sent, 1);
    assert_int_equal(g_sent[0].fp[0], c.fingerprint);
    teardown_fixture(f);
}

static const char *ESCALATE = "receiver: oncall\n"
                              "group_wait: 0s\n"
                              "escalation:\n"
                              "  - {severity: critical, after: 15m, receiver: lead}\n";

static void test_escalation_once_and_ack(void **state)
{
    (void)state;
    fixture_t *f = setup_with(ESCALATE);
    kvl_alert_t a = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &a);
    assert_int_equal(g_n_sent, 1); /* group_wait 0: at once */
    tick_at(f->book, T0 + 15 * M_MS - 1);
    assert_int_equal(g_n_sent, 1);
    tick_at(f->book, T0 + 15 * M_MS);
    assert_int_equal(g_n_sent, 2);
    assert_string_equal(g_sent[1].receiver, "lead");
    assert_true(g_sent[1].escalated);
    tick_at(f->book, T0 + 45 * M_MS);
    assert_int_equal(g_n_sent, 2); /* once */
    /* its resolution goes to both */
    kvl_alert_t r = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_RESOLVED);
    kvl_book_update(f->book, &r);
    tick_at(f->book, T0 + 46 * M_MS);
    assert_int_equal(g_n_sent, 4);
    bool lead = false, oncall = false;
    for (size_t i = 2; i < 4; i++) {
        assert_int_equal(g_sent[i].status[0], KVL_ALERT_RESOLVED);
        lead = lead || strcmp(g_sent[i].receiver, "lead") == 0;
        oncall = oncall || strcmp(g_sent[i].receiver, "oncall") == 0;
    }
    assert_true(lead && oncall);

    /* acknowledged within the time: no escalation */
    g_now = T0 + H_MS;
    kvl_alert_t b = mk("device_down", "DHQ-Kollam", "sw2", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &b);
    assert_int_equal(g_n_sent, 5);
    tick_at(f->book, T0 + H_MS + 5 * M_MS);
    assert_int_equal(kvl_book_ack(f->book, b.fingerprint, "asha", "looking"), 0);
    tick_at(f->book, T0 + 3 * H_MS);
    assert_int_equal(g_n_sent, 5);
    teardown_fixture(f);
}

static void test_routes(void **state)
{
    (void)state;
    fixture_t *f = setup_with("receiver: default\n"
                              "group_wait: 0s\n"
                              "routes:\n"
                              "  - match: {site: 'DHQ-*'}\n"
                              "    receiver: district\n"
                              "    continue: true\n"
                              "  - match: {severity: critical, device: '!lab-*'}\n"
                              "    receiver: oncall\n"
                              "  - match: {site: '?*'}\n"
                              "    receiver: audit\n");
    kvl_alert_t a = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &a);
    assert_int_equal(g_n_sent, 2);
    assert_string_equal(g_sent[0].receiver, "district");
    assert_string_equal(g_sent[1].receiver, "oncall");
    kvl_alert_t lab = mk("device_down", "BHQ-Anchal", "lab-1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &lab);
    assert_int_equal(g_n_sent, 3);
    assert_string_equal(g_sent[2].receiver, "audit");
    kvl_alert_t nosite = {0};
    nosite.status = KVL_ALERT_FIRING;
    nosite.severity = KVL_RULE_SEV_INFO;
    nosite.rule = "agent_event";
    nosite.labels[0] = (kvl_label_t){"alertname", "agent_event"};
    nosite.labels[1] = (kvl_label_t){"severity", "info"};
    nosite.n_labels = 2;
    assert_int_equal(kvl_alert_finish(&nosite), 0);
    kvl_book_update(f->book, &nosite);
    assert_int_equal(g_n_sent, 4);
    assert_string_equal(g_sent[3].receiver, "default");
    teardown_fixture(f);
}

static void test_enqueue_failure_retried(void **state)
{
    (void)state;
    fixture_t *f = setup_with(BASIC);
    kvl_alert_t a = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &a);
    g_enqueue_rc = KVL_EIO;
    tick_at(f->book, T0 + 5 * S_MS);
    assert_int_equal(g_n_sent, 0);
    g_enqueue_rc = 0;
    tick_at(f->book, T0 + 6 * S_MS);
    assert_int_equal(g_n_sent, 1);
    /* and the restart knows it went out once */
    close_book(f, f->book);
    f->book = open_book(f);
    tick_at(f->book, T0 + 6 * S_MS + H_MS - 1);
    assert_int_equal(g_n_sent, 1);
    /* the repeat is due an hour after the page, restart or not */
    tick_at(f->book, T0 + 6 * S_MS + H_MS);
    assert_int_equal(g_n_sent, 2);
    assert_true(g_sent[1].repeat);
    teardown_fixture(f);
}

/* The last notification's receiver and status, after a tick 10 s on (group_interval). */
static void expect_sent(kvl_book_t *b, size_t n, const char *receiver, int status)
{
    tick_at(b, g_now + 10 * S_MS);
    assert_int_equal(g_n_sent, n);
    assert_string_equal(g_sent[n - 1].receiver, receiver);
    assert_int_equal(g_sent[n - 1].status[0], status);
}

static void test_reconfigure(void **state)
{
    (void)state;
    fixture_t *f = setup_with("receiver: oncall\ngroup_by: [device]\ngroup_wait: 0s\n");
    kvl_alerts_cfg_t *to_lead = cfg_ok("receiver: lead\ngroup_by: [device]\ngroup_wait: 0s\n");
    kvl_alerts_cfg_t *back = cfg_ok("receiver: oncall\ngroup_by: [device]\ngroup_wait: 0s\n");
    kvl_alerts_cfg_t *bad = cfg_ok("receiver: nobody\n");
    char err[256];
    kvl_alert_t a = mk("device_down", "S", "a", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &a);
    expect_sent(f->book, 1, "oncall", KVL_ALERT_FIRING);

    /* new routing: new alerts follow it, a held alert keeps the receiver it paged */
    assert_int_equal(kvl_book_reconfigure(f->book, to_lead, &g_notify, err, sizeof(err)), 0);
    kvl_alert_t b = mk("device_down", "S", "b", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &b);
    expect_sent(f->book, 2, "lead", KVL_ALERT_FIRING);
    kvl_alert_t ar = mk("device_down", "S", "a", KVL_ALERT_RESOLVED);
    kvl_book_update(f->book, &ar);
    expect_sent(f->book, 3, "oncall", KVL_ALERT_RESOLVED);

    /* a receiver the notifier does not know: refused, nothing changed */
    assert_int_equal(kvl_book_reconfigure(f->book, bad, &g_notify, err, sizeof(err)), KVL_ECONFIG);
    assert_non_null(strstr(err, "nobody"));
    kvl_alerts_cfg_free(bad);
    kvl_alert_t c = mk("device_down", "S", "c", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &c);
    expect_sent(f->book, 4, "lead", KVL_ALERT_FIRING);

    /* `lead` removed: what it was owed goes; b and c, left without a receiver, follow the
     * new routing (to oncall) */
    g_gone = "lead";
    assert_int_equal(kvl_book_reconfigure(f->book, back, &g_notify, err, sizeof(err)), 0);
    tick_at(f->book, g_now + 10 * S_MS);
    assert_int_equal(g_n_sent, 6);
    for (size_t i = 4; i < 6; i++) {
        assert_string_equal(g_sent[i].receiver, "oncall");
        assert_int_equal(g_sent[i].status[0], KVL_ALERT_FIRING);
        assert_true(g_sent[i].fp[0] == b.fingerprint || g_sent[i].fp[0] == c.fingerprint);
    }
    assert_true(g_sent[4].fp[0] != g_sent[5].fp[0]);
    /* a restart owes nothing more, and c's resolution goes where c paged */
    close_book(f, f->book);
    f->book = open_book(f);
    tick_at(f->book, g_now + 10 * S_MS);
    assert_int_equal(g_n_sent, 6);
    kvl_alert_t cr = mk("device_down", "S", "c", KVL_ALERT_RESOLVED);
    kvl_book_update(f->book, &cr);
    expect_sent(f->book, 7, "oncall", KVL_ALERT_RESOLVED);
    assert_int_equal(g_sent[6].fp[0], c.fingerprint);
    g_gone = NULL;
    teardown_fixture(f);
    kvl_alerts_cfg_free(to_lead);
    kvl_alerts_cfg_free(back);
}

typedef struct collect {
    uint64_t fp[8];
    int status[8];
    int64_t active_at[8];
    size_t n;
} collect_t;

static void on_active(void *ctx, const kvl_alert_t *a)
{
    collect_t *c = ctx;
    assert_true(c->n < 8);
    c->status[c->n] = a->status;
    c->active_at[c->n] = a->active_at_ms;
    c->fp[c->n++] = a->fingerprint;
}

static void test_restart_no_resend(void **state)
{
    (void)state;
    fixture_t *f = setup_with(BASIC);
    kvl_alert_t a = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    a.fields[a.n_fields++] = (kvl_label_t){"index", "7"}; /* the device event's */
    kvl_book_update(f->book, &a);
    tick_at(f->book, T0 + 5 * S_MS);
    assert_int_equal(g_n_sent, 1);
    assert_string_equal(g_sent[0].index, "7");
    kvl_alert_t p = mk("util_high", "DHQ-Kollam", "rtr1", KVL_ALERT_PENDING);
    kvl_book_update(f->book, &p);
    assert_int_equal(kvl_book_ack(f->book, a.fingerprint, "asha", "on it"), 0);

    /* a crash: a second book opens the same folder while the first never closed it */
    g_routes[0].fn = NULL;
    g_n_routes = 0;
    kvl_book_t *second = open_book(f);
    collect_t c = {0};
    kvl_book_each_active(second, on_active, &c);
    assert_int_equal(c.n, 2);
    /* the pending one comes back with its real start, for the engine's for: to go on */
    for (size_t i = 0; i < c.n; i++) {
        if (c.fp[i] == p.fingerprint) {
            assert_int_equal(c.status[i], KVL_ALERT_PENDING);
            assert_int_equal(c.active_at[i], p.active_at_ms);
        } else {
            assert_int_equal(c.status[i], KVL_ALERT_FIRING);
        }
    }
    tick_at(second, T0 + 50 * M_MS);
    assert_int_equal(g_n_sent, 1); /* never re-paged */
    kvl_book_api_register(second, NULL);
    kvl_http_resp_t resp = call("GET", "/api/v1/alerts", "status=firing", NULL);
    assert_int_equal(json_array_size(resp.body), 1);
    json_t *ack = json_object_get(json_array_get(resp.body, 0), "ack");
    assert_string_equal(json_string_value(json_object_get(ack, "by")), "asha");
    json_decref(resp.body);
    /* the resolution after the restart is sent */
    kvl_alert_t r = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_RESOLVED);
    kvl_book_update(second, &r);
    tick_at(second, T0 + 51 * M_MS);
    assert_int_equal(g_n_sent, 2);
    assert_int_equal(g_sent[1].status[0], KVL_ALERT_RESOLVED);
    /* resolved without an event (a poll after the restart): the fields the book kept */
    assert_string_equal(g_sent[1].index, "7");
    close_book(f, f->book);
    f->book = second;

    /* once more: a resolution owed at a restart is sent after it */
    g_now = T0 + 2 * H_MS;
    kvl_alert_t b = mk("device_down", "DHQ-Kollam", "sw9", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &b);
    tick_at(f->book, T0 + 2 * H_MS + 5 * S_MS);
    assert_int_equal(g_n_sent, 3);
    g_now = T0 + 2 * H_MS + 6 * S_MS;
    kvl_alert_t br = mk("device_down", "DHQ-Kollam", "sw9", KVL_ALERT_RESOLVED);
    kvl_book_update(f->book, &br); /* held by group_interval */
    assert_int_equal(g_n_sent, 3);
    close_book(f, f->book);
    g_now = T0 + 3 * H_MS;
    f->book = open_book(f);
    assert_int_equal(g_n_sent, 4);
    assert_int_equal(g_sent[3].fp[0], b.fingerprint);
    assert_int_equal(g_sent[3].status[0], KVL_ALERT_RESOLVED);
    kvl_book_stats_t st;
    kvl_book_stats(f->book, &st);
    assert_int_equal(st.active + st.unsettled, 1); /* the pending one */
    teardown_fixture(f);
}

static void test_damaged_file(void **state)
{
    (void)state;
    fixture_t *f = setup_with(BASIC);
    kvl_alert_t a = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &a);
    kvl_alert_t b = mk("device_down", "DHQ-Kollam", "sw2", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &b);
    kvl_alert_t c = mk("device_down", "DHQ-Kollam", "ap3", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &c);
    close_book(f, f->book);
    f->book = NULL;
    /* flip a byte in the log's second record (b's) and add a torn line */
    char path[256];
    snprintf(path, sizeof(path), "%s/book.log", f->dir);
    FILE *fp = fopen(path, "r+");
    assert_non_null(fp);
    char line[8192];
    assert_non_null(fgets(line, sizeof(line), fp)); /* head */
    assert_non_null(fgets(line, sizeof(line), fp)); /* a */
    long at = ftell(fp);
    fseek(fp, at + 40, SEEK_SET);
    int ch = fgetc(fp);
    fseek(fp, at + 40, SEEK_SET);
    fputc(ch ^ 0x20, fp);
    fclose(fp);
    snprintf(path, sizeof(path), "%s/book.log", f->dir);
    fp = fopen(path, "a");
    assert_non_null(fp);
    fputs("0badc0de {\"t\":\"alert\",\"a\":{\"trun", fp);
    fclose(fp);
    f->book = open_book(f);
    kvl_book_stats_t st;
    kvl_book_stats(f->book, &st);
    assert_int_equal(st.damaged_lines, 1);
    assert_int_equal(st.active, 2);
    collect_t cl = {0};
    kvl_book_each_active(f->book, on_active, &cl);
    for (size_t i = 0; i < cl.n; i++) {
        assert_true(cl.fp[i] == a.fingerprint || cl.fp[i] == c.fingerprint);
    }
    /* the reopened book works and was rewritten clean */
    close_book(f, f->book);
    f->book = open_book(f);
    kvl_book_stats(f->book, &st);
    assert_int_equal(st.damaged_lines, 0);
    assert_int_equal(st.active, 2);
    teardown_fixture(f);
}

/* head_open_fn for the book of fixture ctx. */
static int try_book(void *ctx, char *err, size_t errlen)
{
    fixture_t *f = ctx;
    kvl_book_opts_t o = {
        .loop = &f->loop, .cfg = f->cfg, .notify = &g_notify, .dir = f->dir, .now_ms = fake_clock};
    kvl_book_t *b = NULL;
    int rc = kvl_book_new(&o, &b, err, errlen);
    if (rc == 0) {
        close_book(f, b);
    }
    assert_true(rc != 0 || b != NULL);
    return rc;
}

/* The files carry the format version: written in both heads; a book written before versions
 * were kept (heads without "format") is read as it is and rewritten with the version; a
 * newer version in either file refuses the book with the sentence, the files untouched. */
static void test_format_version(void **state)
{
    (void)state;
    fixture_t *f = setup_with(BASIC);
    char snap[256], log[256];
    snprintf(snap, sizeof(snap), "%s/book.snap", f->dir);
    snprintf(log, sizeof(log), "%s/book.log", f->dir);
    kvl_alert_t a = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &a);
    tick_at(f->book, T0 + 5 * S_MS);
    assert_int_equal(g_n_sent, 1);
    close_book(f, f->book);
    f->book = NULL;
    expect_heads(snap, log, KVL_BOOK_FORMAT_VERSION);

    /* the format before versions: the same alert, never paged again, heads rewritten */
    heads_unversioned(snap, log);
    f->book = open_book(f);
    collect_t c = {0};
    kvl_book_each_active(f->book, on_active, &c);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.fp[0], a.fingerprint);
    tick_at(f->book, T0 + 50 * M_MS);
    assert_int_equal(g_n_sent, 1);
    expect_heads(snap, log, KVL_BOOK_FORMAT_VERSION);
    close_book(f, f->book);
    f->book = NULL;

    /* newer, in the snapshot and then in the log: refused, nothing rewritten */
    expect_heads_refused(snap, log, KVL_BOOK_FORMAT_VERSION, "kaaval-collector", try_book, f);
    f->book = open_book(f);
    teardown_fixture(f);
}

static int g_timer_hits;
static uv_timer_t g_guard;

static void on_guard(uv_timer_t *t)
{
    (void)t;
    uv_stop(t->loop);
}

static void test_real_timer(void **state)
{
    (void)state;
    fixture_t *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/kvl-book-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    strcat(f->dir, "/alerts");
    uv_loop_init(&f->loop);
    f->cfg = cfg_ok("receiver: oncall\ngroup_wait: 50ms\n");
    g_n_sent = 0;
    g_enqueue_rc = 0;
    char err[256];
    kvl_book_opts_t o = {.loop = &f->loop, .cfg = f->cfg, .notify = &g_notify, .dir = f->dir};
    assert_int_equal(kvl_book_new(&o, &f->book, err, sizeof(err)), 0);
    g_now = kvl_book_now(f->book);
    kvl_alert_t a = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &a);
    assert_int_equal(g_n_sent, 0);
    uv_timer_init(&f->loop, &g_guard);
    uv_timer_start(&g_guard, on_guard, 5000, 0);
    for (int i = 0; i < 200 && g_n_sent == 0; i++) {
        uv_run(&f->loop, UV_RUN_ONCE);
        g_timer_hits++;
    }
    assert_int_equal(g_n_sent, 1);
    uv_close((uv_handle_t *)&g_guard, NULL);
    teardown_fixture(f);
}

/* --- SIGKILL ------------------------------------------------------------------------------- */

#define KILL_ALERTS 120

static char kill_dev[KILL_ALERTS][16];

static kvl_alert_t kill_alert(int i, int status)
{
    snprintf(kill_dev[i], sizeof(kill_dev[i]), "d%03d", i);
    return mk("device_down", i % 2 ? "DHQ-Kollam" : "BHQ-Anchal", kill_dev[i], status);
}

/* The child: alerts fire one after another, every third an older one resolves; each
 * notification goes out at once (group_wait 0s) and is written to the sent file. */
static void kill_child(fixture_t *f, const char *sent_path)
{
    g_sent_fd = open(sent_path, O_WRONLY | O_APPEND | O_CREAT, 0600);
    if (g_sent_fd < 0) {
        _exit(2);
    }
    kvl_book_t *b = open_book(f);
    for (int i = 0; i < KILL_ALERTS; i++) {
        g_now = T0 + i * S_MS;
        kvl_alert_t a = kill_alert(i, KVL_ALERT_FIRING);
        kvl_book_update(b, &a);
        if (i % 3 == 2) {
            kvl_alert_t r = kill_alert(i - 2, KVL_ALERT_RESOLVED);
            kvl_book_update(b, &r);
        }
        usleep(1000);
    }
    _exit(0);
}

static size_t count_lines(const char *path)
{
    FILE *fp = fopen(path, "r");
    size_t n = 0;
    int ch;
    while (fp != NULL && (ch = fgetc(fp)) != EOF) {
        n += ch == '\n';
    }
    if (fp != NULL) {
        fclose(fp);
    }
    return n;
}

static uint64_t g_restored[KILL_ALERTS];
static size_t g_n_restored;

typedef struct tally {
    uint64_t fp[KILL_ALERTS];
    int fired[KILL_ALERTS], resolved[KILL_ALERTS];
} tally_t;

static void on_restored(void *ctx, const kvl_alert_t *a)
{
    (void)ctx;
    /* the engine, restarted, finds every condition over: each restored alert resolves */
    g_restored[g_n_restored++] = a->fingerprint;
}

static void test_sigkill_never_twice(void **state)
{
    (void)state;
    srand((unsigned)time(NULL));
    for (int round = 0; round < 8; round++) {
        fixture_t *f = setup_with("receiver: oncall\ngroup_wait: 0s\ngroup_interval: 0s\n");
        close_book(f, f->book);
        f->book = NULL;
        char sent_path[200];
        snprintf(sent_path, sizeof(sent_path), "%s.sent", f->dir);
        size_t kill_after = 5 + (size_t)(rand() % 120);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            kill_child(f, sent_path);
        }
        /* kill it once it has handed over kill_after alerts (or at its end), within 20 s */
        for (int i = 0; i < 4000 && count_lines(sent_path) < kill_after; i++) {
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                pid = 0;
                break;
            }
            usleep(5000);
        }
        if (pid != 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
        /* the restart: the engine resolves what the book restores */
        g_now = T0 + H_MS;
        g_sent_fd = open(sent_path, O_WRONLY | O_APPEND | O_CREAT, 0600);
        assert_true(g_sent_fd >= 0);
        f->book = open_book(f);
        g_n_restored = 0;
        kvl_book_each_active(f->book, on_restored, NULL);
        for (size_t i = 0; i < g_n_restored; i++) {
            for (int k = 0; k < KILL_ALERTS; k++) {
                kvl_alert_t r = kill_alert(k, KVL_ALERT_RESOLVED);
                if (r.fingerprint == g_restored[i]) {
                    kvl_book_update(f->book, &r);
                }
            }
        }
        tick_at(f->book, T0 + 2 * H_MS);
        close(g_sent_fd);
        g_sent_fd = -1;
        kvl_book_stats_t st;
        kvl_book_stats(f->book, &st);
        assert_int_equal(st.active + st.unsettled, 0);

        tally_t t = {0};
        for (int k = 0; k < KILL_ALERTS; k++) {
            t.fp[k] = kill_alert(k, KVL_ALERT_FIRING).fingerprint;
        }
        FILE *fp = fopen(sent_path, "r");
        assert_non_null(fp);
        char kind;
        unsigned long long v;
        size_t lines = 0;
        while (fscanf(fp, " %c %llx", &kind, &v) == 2) {
            lines++;
            for (int k = 0; k < KILL_ALERTS; k++) {
                if (t.fp[k] == v) {
                    (kind == 'F' ? t.fired : t.resolved)[k]++;
                }
            }
        }
        fclose(fp);
        assert_true(lines >= kill_after || lines > 0);
        for (int k = 0; k < KILL_ALERTS; k++) {
            /* a kill between the notifier's enqueue and the book's record of a resolution
             * sends that resolution again after the restart: never lost, at most twice */
            if (t.fired[k] > 1 || t.resolved[k] > 2 || (t.fired[k] == 1 && t.resolved[k] < 1)) {
                fail_msg("round %d (killed after %zu): alert %d fired %d, resolved %d times", round,
                         kill_after, k, t.fired[k], t.resolved[k]);
            }
        }
        unlink(sent_path);
        teardown_fixture(f);
    }
}

/* --- the API ---------------------------------------------------------------------------------- */

static void expect_400(const char *method, const char *path, const char *query, const char *body,
                       const char *words)
{
    kvl_http_resp_t r = call(method, path, query, body);
    if (r.status != 400) {
        fail_msg("%s %s ?%s %s: status %d, want 400", method, path, query ? query : "",
                 body ? body : "", r.status);
    }
    const char *e = json_string_value(json_object_get(r.body, "error"));
    assert_non_null(e);
    if (strstr(e, words) == NULL) {
        fail_msg("error '%s' lacks '%s'", e, words);
    }
    json_decref(r.body);
}

static void test_api(void **state)
{
    (void)state;
    fixture_t *f = setup_with(BASIC);
    assert_int_equal(kvl_book_api_register(f->book, NULL), 0);
    kvl_alert_t a = mk("device_down", "DHQ-Kollam", "rtr1", KVL_ALERT_FIRING);
    kvl_book_update(f->book, &a);
    kvl_alert_t b = mk("util_high", "BHQ-Anchal", "sw2", KVL_ALERT_PENDING);
    kvl_book_update(f->book, &b);
    tick_at(f->book, T0 + 5 * S_MS);

    kvl_http_resp_t r = call("GET", "/api/v1/alerts", NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.body), 2);
    json_decref(r.body);
    r = call("GET", "/api/v1/alerts", "site=DHQ-Kollam&severity=critical", NULL);
    assert_int_equal(json_array_size(r.body), 1);
    json_t *one = json_array_get(r.body, 0);
    assert_string_equal(json_string_value(json_object_get(one, "rule")), "device_down");
    assert_string_equal(json_string_value(json_array_get(json_object_get(one, "notified"), 0)),
                        "oncall");
    json_decref(r.body);
    r = call("GET", "/api/v1/alerts", "status=pending", NULL);
    assert_int_equal(json_array_size(r.body), 1);
    json_decref(r.body);
    expect_400("GET", "/api/v1/alerts", "status=burning", NULL, "status must be");
    expect_400("GET", "/api/v1/alerts", "severity=huge", NULL, "severity must be");
    expect_400("GET", "/api/v1/alerts", "limit=0", NULL, "limit must be");
    expect_400("GET", "/api/v1/alerts", "limit=99999999", NULL, "limit must be");
    expect_400("GET", "/api/v1/alerts/history", "since=yesterday", NULL, "RFC 3339");
    expect_400("GET", "/api/v1/alerts", "state=gone", NULL, "active or history");

    /* history: changes and what was sent, per site */
    r = call("GET", "/api/v1/alerts/history", "site=DHQ-Kollam", NULL);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_array_size(r.body), 2); /* firing, notified */
    assert_string_equal(json_string_value(json_object_get(json_array_get(r.body, 1), "event")),
                        "notified");
    assert_true(json_is_string(json_object_get(json_array_get(r.body, 0), "at")));
    json_decref(r.body);
    r = call("GET", "/api/v1/alerts/history", "since=2026-12-05T10:00:01Z&limit=1", NULL);
    assert_int_equal(json_array_size(r.body), 1);
    json_decref(r.body);

    /* ack */
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/alerts/%016llx/ack", (unsigned long long)a.fingerprint);
    r = call("POST", path, NULL, "{\"comment\": \"on my way\"}");
    assert_int_equal(r.status, 200);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.body, "ack"), "comment")), "on my way");
    json_decref(r.body);
    expect_400("POST", path, NULL, "{\"comment\": 5}", "comment must be");
    expect_400("POST", path, NULL, "{\"who\": \"x\"}", "unknown field");
    expect_400("POST", "/api/v1/alerts/xyz/ack", NULL, NULL, "16 lowercase hex");
    r = call("POST", "/api/v1/alerts/0123456789abcdef/ack", NULL, NULL);
    assert_int_equal(r.status, 404);
    json_decref(r.body);

    /* silences */
    expect_400("POST", "/api/v1/silences", NULL, "[]", "JSON object");
    expect_400("POST", "/api/v1/silences", NULL,
               "{\"matchers\": [], \"ends_at\": \"2026-12-05T12:00:00Z\", \"comment\": \"x\"}",
               "'matchers' must be");
    expect_400("POST", "/api/v1/silences", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \".*\", \"op\": \"=~\"}], "
               "\"ends_at\": \"2026-12-05T12:00:00Z\", \"comment\": \"x\"}",
               "every alert");
    expect_400("POST", "/api/v1/silences", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \"(\", \"op\": \"=~\"}], "
               "\"ends_at\": \"2026-12-05T12:00:00Z\", \"comment\": \"x\"}",
               "bad regular expression");
    expect_400("POST", "/api/v1/silences", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \"(a)\\\\1\", \"op\": \"=~\"}], "
               "\"ends_at\": \"2026-12-05T12:00:00Z\", \"comment\": \"x\"}",
               "back-references");
    expect_400("POST", "/api/v1/silences", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \"((a{30}){30}){30}\", "
               "\"op\": \"=~\"}], \"ends_at\": \"2026-12-05T12:00:00Z\", \"comment\": \"x\"}",
               "at most two intervals");
    expect_400("POST", "/api/v1/silences", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \"a\", \"op\": \"~=\"}], "
               "\"ends_at\": \"2026-12-05T12:00:00Z\", \"comment\": \"x\"}",
               "'op' must be");
    expect_400("POST", "/api/v1/silences", NULL,
               "{\"matchers\": [{\"name\": \"9x\", \"value\": \"a\"}], "
               "\"ends_at\": \"2026-12-05T12:00:00Z\", \"comment\": \"x\"}",
               "label name");
    expect_400("POST", "/api/v1/silences", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \"a\"}], "
               "\"ends_at\": \"2026-12-05T09:00:00Z\", \"starts_at\": \"2026-12-05T08:00:00Z\", "
               "\"comment\": \"x\"}",
               "in the future");
    expect_400("POST", "/api/v1/silences", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \"a\"}], "
               "\"ends_at\": \"tomorrow\", \"comment\": \"x\"}",
               "RFC 3339");
    expect_400("POST", "/api/v1/silences", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \"a\"}], "
               "\"ends_at\": \"2026-12-05T12:00:00Z\"}",
               "'comment' must be");
    expect_400("POST", "/api/v1/silences", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \"a\"}], \"id\": \"x\", "
               "\"ends_at\": \"2026-12-05T12:00:00Z\", \"comment\": \"x\"}",
               "unknown field 'id'");
    r = call("POST", "/api/v1/silences", NULL,
             "{\"matchers\": [{\"name\": \"site\", \"value\": \"BHQ-Anchal\"}], "
             "\"ends_at\": \"2026-12-05T12:00:00Z\", \"comment\": \"works\"}");
    assert_int_equal(r.status, 201);
    char id[32];
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.body, "id")));
    assert_string_equal(json_string_value(json_object_get(r.body, "created_by")), "asha");
    json_decref(r.body);
    r = call("GET", "/api/v1/silences", NULL, NULL);
    assert_int_equal(json_array_size(r.body), 1);
    json_decref(r.body);
    r = call("GET", "/api/v1/alerts", "site=BHQ-Anchal", NULL);
    assert_true(json_is_true(json_object_get(json_array_get(r.body, 0), "silenced")));
    json_decref(r.body);
    snprintf(path, sizeof(path), "/api/v1/silences/%s", id);
    r = call("DELETE", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    json_decref(r.body);
    r = call("DELETE", path, NULL, NULL);
    assert_int_equal(r.status, 404);
    json_decref(r.body);
    expect_400("DELETE", "/api/v1/silences/nothex", NULL, NULL, "hex digits");

    /* maintenance */
    expect_400("POST", "/api/v1/maintenance", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \"a\"}], \"comment\": \"x\"}",
               "either 'starts_at' and 'ends_at', or 'weekly'");
    expect_400("POST", "/api/v1/maintenance", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \"a\"}], \"comment\": \"x\", "
               "\"weekly\": {\"days\": [\"sat\", \"sat\"], \"at\": \"02:00\", \"duration\": "
               "\"2h\"}}",
               "named twice");
    expect_400("POST", "/api/v1/maintenance", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \"a\"}], \"comment\": \"x\", "
               "\"weekly\": {\"days\": [\"sat\"], \"at\": \"24:00\", \"duration\": \"2h\"}}",
               "HH:MM");
    expect_400("POST", "/api/v1/maintenance", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \"a\"}], \"comment\": \"x\", "
               "\"weekly\": {\"days\": [\"sat\"], \"at\": \"02:00\", \"duration\": \"8d\"}}",
               "1m to 7d");
    expect_400("POST", "/api/v1/maintenance", NULL,
               "{\"matchers\": [{\"name\": \"site\", \"value\": \"a\"}], \"comment\": \"x\", "
               "\"weekly\": {\"days\": [\"sat\"], \"at\": \"02:00\", \"duration\": \"1h\", "
               "\"offset\": \"IST\"}}",
               "UTC offset");
    r = call("POST", "/api/v1/maintenance", NULL,
             "{\"matchers\": [{\"name\": \"site\", \"value\": \"BHQ-Anchal\"}], \"comment\": "
             "\"upgrade\", \"starts_at\": \"2026-12-05T11:00:00Z\", \"ends_at\": "
             "\"2026-12-05T15:00:00+02:00\"}");
    assert_int_equal(r.status, 201);
    snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.body, "id")));
    assert_string_equal(json_string_value(json_object_get(r.body, "ends_at")),
                        "2026-12-05T13:00:00.000Z");
    json_decref(r.body);
    snprintf(path, sizeof(path), "/api/v1/maintenance/%s", id);
    r = call("GET", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    json_decref(r.body);
    r = call("DELETE", path, NULL, NULL);
    assert_int_equal(r.status, 200);
    json_decref(r.body);
    teardown_fixture(f);
}

/* --- configuration -------------------------------------------------------------------------- */

static void cfg_bad(const char *text, const char *want)
{
    char err[512];
    kvl_alerts_cfg_t *c = kvl_alerts_cfg_parse_text("c.yaml", text, err, sizeof(err));
    if (c != NULL) {
        kvl_alerts_cfg_free(c);
        fail_msg("accepted: %s", text);
    }
    if (strncmp(err, want, strlen(want)) != 0) {
        fail_msg("error '%s', want '%s...'", err, want);
    }
}

static void test_config(void **state)
{
    (void)state;
    kvl_alerts_cfg_t *c = cfg_ok("routes:\n"
                                 "  - match: {site: 'DHQ-*', device: '!lab-*'}\n"
                                 "    receiver: district\n"
                                 "    group_by: [site, device]\n"
                                 "    group_wait: 0s\n"
                                 "    continue: true\n"
                                 "escalation:\n"
                                 "  - {severity: major, after: 30m, receiver: lead}\n"
                                 "history_max: 500\n");
    assert_int_equal(c->n_routes, 1);
    assert_true(c->routes[0].cont);
    assert_int_equal(c->routes[0].n_group_by, 2);
    assert_true(c->routes[0].match[1].m.negate);
    assert_int_equal(kvl_alerts_route_wait(c, &c->routes[0]), 0);
    assert_int_equal(kvl_alerts_route_interval(c, &c->routes[0]), 5000);
    assert_int_equal(kvl_alerts_route_repeat(c, &c->routes[0]), 4 * H_MS);
    assert_int_equal(c->escalation[0].severity, KVL_RULE_SEV_MAJOR);
    assert_int_equal(c->escalation[0].after_ms, 30 * M_MS);
    assert_null(c->receiver);
    kvl_alerts_cfg_free(c);
    cfg_bad("routes:\n  - match: {site: 'a['}\n    receiver: x\n", "c.yaml:2:");
    cfg_bad("routes:\n  - match: {site: a}\n", "c.yaml:2:");
    cfg_bad("routes:\n  - receiver: x\n    wait: 1s\n", "c.yaml:3:");
    cfg_bad("group_by: [site, site]\n", "c.yaml:1:");
    cfg_bad("escalation:\n  - {severity: huge, after: 1m, receiver: x}\n", "c.yaml:2:");
    cfg_bad("escalation:\n  - {severity: minor, after: 1m, receiver: x}\n"
            "  - {severity: minor, after: 2m, receiver: y}\n",
            "c.yaml:3:");
    cfg_bad("repeat_interval: 1s\n", "c.yaml:1:");
    cfg_bad("history_max: 5\n", "c.yaml:1:");
}

/* The section as collector.yaml's `alerts:` (one row of collector_config.c's table). */
static void test_collector_yaml(void **state)
{
    (void)state;
    char err[512];
    const char *head = "listen: 127.0.0.1:5140\ndata_dir: /tmp/x\ninsecure: true\n";
    char text[1024];
    snprintf(text, sizeof(text), "%s", head);
    kvl_collector_cfg_t *c = kvl_collector_cfg_parse("c.yaml", text, err, sizeof(err));
    if (c == NULL) {
        fail_msg("%s", err);
    }
    assert_null(c->alerts);
    kvl_collector_cfg_free(c);
    snprintf(text, sizeof(text),
             "%salerts:\n  receiver: oncall\n  routes:\n    - {match: {site: 'a*'}, "
             "receiver: district}\n",
             head);
    c = kvl_collector_cfg_parse("c.yaml", text, err, sizeof(err));
    if (c == NULL) {
        fail_msg("%s", err);
    }
    assert_non_null(c->alerts);
    assert_string_equal(c->alerts->receiver, "oncall");
    assert_int_equal(c->alerts->n_routes, 1);
    kvl_collector_cfg_free(c);
    snprintf(text, sizeof(text), "%salerts:\n  receiver: oncall\n  group_wait: soon\n", head);
    assert_null(kvl_collector_cfg_parse("c.yaml", text, err, sizeof(err)));
    assert_int_equal(strncmp(err, "c.yaml:6:15: ", 13), 0);
    snprintf(text, sizeof(text), "%salerts: [oncall]\n", head);
    assert_null(kvl_collector_cfg_parse("c.yaml", text, err, sizeof(err)));
    assert_int_equal(strncmp(err, "c.yaml:4:9: ", 12), 0);
}

static void test_unknown_receiver(void **state)
{
    (void)state;
    char dir[] = "/tmp/kvl-book-XXXXXX";
    assert_non_null(mkdtemp(dir));
    uv_loop_t loop;
    uv_loop_init(&loop);
    kvl_alerts_cfg_t *c = cfg_ok("routes:\n  - {match: {site: a}, receiver: nobody}\n");
    kvl_book_opts_t o = {.loop = &loop, .cfg = c, .notify = &g_notify, .dir = dir};
    kvl_book_t *b = NULL;
    char err[256];
    assert_int_equal(kvl_book_new(&o, &b, err, sizeof(err)), KVL_ECONFIG);
    assert_null(b);
    assert_non_null(strstr(err, "'nobody'"));
    kvl_alerts_cfg_free(c);
    uv_loop_close(&loop);
    rmdir(dir);
}

int main(void)
{
    kvl_log_level = KVL_LOG_LEVEL_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_wait_gathers),
        cmocka_unit_test(test_repeat_failure_pages_as_fast),
        cmocka_unit_test(test_storm_one_page_per_group),
        cmocka_unit_test(test_pending_late_never_sent),
        cmocka_unit_test(test_repeat_and_ack),
        cmocka_unit_test(test_silence_suppresses),
        cmocka_unit_test(test_maintenance_weekly),
        cmocka_unit_test(test_mute_timer_edges),
        cmocka_unit_test(test_escalation_once_and_ack),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_reconfigure),
        cmocka_unit_test(test_enqueue_failure_retried),
        cmocka_unit_test(test_restart_no_resend),
        cmocka_unit_test(test_damaged_file),
        cmocka_unit_test(test_format_version),
        cmocka_unit_test(test_sigkill_never_twice),
        cmocka_unit_test(test_real_timer),
        cmocka_unit_test(test_api),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_unknown_receiver),
        cmocka_unit_test(test_collector_yaml),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
