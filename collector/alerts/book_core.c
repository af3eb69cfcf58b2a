/*
 * book_core.c — the alert book's lifecycle and routing (book.h): alert changes from the engine,
 * routes and groups, what is due (group flushes, repeats, escalations), what mutes an
 * alert (late, silenced, in maintenance), acknowledgements, and the records book_store.c
 * writes and replays. One uv_timer, armed at the next due moment.
 */
#include "book_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "log.h"
#include "names.h"
#include "timeutil.h"

#define RETRY_MS                                                                                   \
    1000 /* after the notifier refused a notification, nothing is sent for this long               \
          */
#define GROUP_KEY_MAX 2048

static const char *const MOD = "alerts";

int64_t kvl_book_now(const kvl_book_t *b)
{
    return b->clock != NULL ? b->clock(b->clock_ctx) : kvl_now_ms();
}

static void fp_text(uint64_t fp, char out[24])
{
    snprintf(out, 24, "%016" PRIx64, fp);
}

/* Grows an array of pointers to hold one more. 0 or KVL_ENOMEM. */
static int grow(void *arrp, size_t n, size_t *cap)
{
    void ***arr = arrp;
    if (n < *cap) {
        return 0;
    }
    size_t nc = *cap == 0 ? 16 : *cap * 2;
    void **v = realloc(*arr, nc * sizeof(void *));
    if (v == NULL) {
        return KVL_ENOMEM;
    }
    *arr = v;
    *cap = nc;
    return 0;
}

book_entry_t *book_find(const kvl_book_t *b, uint64_t fp)
{
    for (size_t i = 0; i < b->n_e; i++) {
        if (b->e[i]->a->fingerprint == fp) {
            return b->e[i];
        }
    }
    return NULL;
}

bool book_silenced(const kvl_book_t *b, const kvl_alert_t *a, int64_t now)
{
    for (size_t i = 0; i < b->n_s; i++) {
        if (kvl_silence_active(b->s[i], now) && kvl_matchers_match(&b->s[i]->m, a)) {
            return true;
        }
    }
    return false;
}

bool book_in_maint(const kvl_book_t *b, const kvl_alert_t *a, int64_t now)
{
    for (size_t i = 0; i < b->n_m; i++) {
        if (kvl_maint_active(b->m[i], now) && kvl_matchers_match(&b->m[i]->m, a)) {
            return true;
        }
    }
    return false;
}

bool book_suppressed(const kvl_book_t *b, const kvl_alert_t *a, char *why, size_t whylen)
{
    char tmp[8];
    return b->suppress != NULL && b->suppress(b->suppress_ctx, a, why != NULL ? why : tmp,
                                              why != NULL ? whylen : sizeof(tmp));
}

void kvl_book_set_suppressor(kvl_book_t *b, kvl_book_suppress_fn fn, void *ctx)
{
    b->suppress = fn;
    b->suppress_ctx = ctx;
}

static bool muted(const kvl_book_t *b, const kvl_alert_t *a, int64_t now)
{
    return a->late || book_silenced(b, a, now) || book_in_maint(b, a, now) ||
           book_suppressed(b, a, NULL, 0);
}

/* --- groups and targets -------------------------------------------------------------------- */

static void group_unref(kvl_book_t *b, book_group_t *g)
{
    KVL_ASSERT(g->members > 0);
    if (--g->members > 0) {
        return;
    }
    for (size_t i = 0; i < b->n_g; i++) {
        if (b->g[i] == g) {
            b->g[i] = b->g[--b->n_g];
            break;
        }
    }
    free(g->key);
    free(g->receiver);
    free(g);
}

static book_group_t *group_get(kvl_book_t *b, int route, const char *receiver, const kvl_alert_t *a)
{
    const kvl_alerts_cfg_t *c = b->cfg;
    const kvl_alerts_route_t *r = route < (int)c->n_routes ? &c->routes[route] : NULL;
    char *const *by = r != NULL && r->n_group_by > 0 ? r->group_by : c->group_by;
    size_t n_by = r != NULL && r->n_group_by > 0 ? r->n_group_by : c->n_group_by;
    char key[GROUP_KEY_MAX];
    size_t at = (size_t)snprintf(key, sizeof(key), "route=%d;receiver=%s", route, receiver);
    for (size_t i = 0; i < n_by && at < sizeof(key); i++) {
        const char *v = kvl_alert_label(a, by[i]);
        at += (size_t)snprintf(key + at, sizeof(key) - at, ";%s=%s", by[i], v == NULL ? "" : v);
    }
    for (size_t i = 0; i < b->n_g; i++) {
        if (strcmp(b->g[i]->key, key) == 0) {
            b->g[i]->members++;
            return b->g[i];
        }
    }
    book_group_t *g = calloc(1, sizeof(*g));
    if (g == NULL || grow(&b->g, b->n_g, &b->cap_g) != 0 || (g->key = strdup(key)) == NULL ||
        (g->receiver = strdup(receiver)) == NULL) {
        if (g != NULL) {
            free(g->key);
        }
        free(g);
        return NULL;
    }
    g->route = route;
    g->wait_ms = kvl_alerts_route_wait(c, r);
    g->interval_ms = kvl_alerts_route_interval(c, r);
    g->repeat_ms = kvl_alerts_route_repeat(c, r);
    g->created_ms = kvl_book_now(b);
    g->members = 1;
    b->g[b->n_g++] = g;
    return g;
}

static book_target_t *target_find(book_entry_t *e, const char *receiver, bool esc)
{
    for (size_t i = 0; i < e->n_t; i++) {
        if ((e->t[i].g == NULL) == esc && strcmp(e->t[i].receiver, receiver) == 0) {
            return &e->t[i];
        }
    }
    return NULL;
}

/* Adds a target for receiver (grouped by route, or the escalation's when esc). */
static book_target_t *target_add(kvl_book_t *b, book_entry_t *e, int route, const char *receiver,
                                 bool esc)
{
    book_target_t *have = target_find(e, receiver, esc);
    if (have != NULL) {
        return have;
    }
    book_target_t *t = realloc(e->t, (e->n_t + 1) * sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    e->t = t;
    book_target_t *n = &t[e->n_t];
    memset(n, 0, sizeof(*n));
    if ((n->receiver = strdup(receiver)) == NULL) {
        return NULL;
    }
    if (!esc && (n->g = group_get(b, route, receiver, e->a)) == NULL) {
        free(n->receiver);
        return NULL;
    }
    e->n_t++;
    return n;
}

static bool route_matches(const kvl_alerts_route_t *r, const kvl_alert_t *a)
{
    for (size_t i = 0; i < r->n_match; i++) {
        const char *v = kvl_alert_label(a, r->match[i].key);
        if (!kvl_rules_match(&r->match[i].m, v == NULL ? "" : v)) {
            return false;
        }
    }
    return true;
}

/* The targets the routes give an alert. 0 or KVL_ENOMEM. */
static int route_alert(kvl_book_t *b, book_entry_t *e)
{
    const kvl_alerts_cfg_t *c = b->cfg;
    bool any = false;
    for (size_t i = 0; i < c->n_routes; i++) {
        if (!route_matches(&c->routes[i], e->a)) {
            continue;
        }
        any = true;
        if (target_add(b, e, (int)i, c->routes[i].receiver, false) == NULL) {
            return KVL_ENOMEM;
        }
        if (!c->routes[i].cont) {
            break;
        }
    }
    if (!any && c->receiver != NULL &&
        target_add(b, e, (int)c->n_routes, c->receiver, false) == NULL) {
        return KVL_ENOMEM;
    }
    return 0;
}

static void entry_free(kvl_book_t *b, book_entry_t *e)
{
    for (size_t i = 0; i < e->n_t; i++) {
        if (e->t[i].g != NULL) {
            group_unref(b, e->t[i].g);
        }
        free(e->t[i].receiver);
    }
    free(e->t);
    free(e->ack_by);
    free(e->ack_comment);
    kvl_alert_free(e->a);
    free(e);
}

static void entry_remove(kvl_book_t *b, book_entry_t *e)
{
    for (size_t i = 0; i < b->n_e; i++) {
        if (b->e[i] == e) {
            b->e[i] = b->e[--b->n_e];
            break;
        }
    }
    entry_free(b, e);
}

static bool entry_owes(const book_entry_t *e)
{
    for (size_t i = 0; i < e->n_t; i++) {
        if (e->t[i].fired) {
            return true;
        }
    }
    return false;
}

/* --- records -------------------------------------------------------------------------------- */

static json_t *labels_json(const kvl_alert_t *a)
{
    json_t *o = json_object();
    for (size_t i = 0; o != NULL && i < a->n_labels; i++) {
        json_object_set_new(o, a->labels[i].key, json_string(a->labels[i].value));
    }
    return o;
}

static json_t *sent_record(const book_entry_t *e, const book_target_t *t)
{
    char fp[24];
    fp_text(e->a->fingerprint, fp);
    return json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:I, s:b}", "t", "sent", "fp", fp, "r",
                     t->receiver, "esc", t->g == NULL, "fired", t->fired, "at",
                     (json_int_t)t->last_sent_ms, "paged", (json_int_t)e->paged_ms, "escalated",
                     e->escalated);
}

static json_t *ack_record(const book_entry_t *e)
{
    char fp[24];
    fp_text(e->a->fingerprint, fp);
    return json_pack("{s:s, s:s, s:s, s:s, s:I}", "t", "ack", "fp", fp, "by", e->ack_by, "comment",
                     e->ack_comment, "at", (json_int_t)e->ack_ms);
}

static json_t *alert_record(const book_entry_t *e)
{
    return json_pack("{s:s, s:o}", "t", "alert", "a", kvl_alert_to_json(e->a));
}

static void history_change(kvl_book_t *b, const kvl_alert_t *a, const char *why_muted)
{
    char fp[24];
    fp_text(a->fingerprint, fp);
    json_t *h = json_pack("{s:I, s:s, s:s, s:o, s:o}", "at", (json_int_t)kvl_book_now(b), "event",
                          kvl_alert_status_name(a->status), "fingerprint", fp, "labels",
                          labels_json(a), "alert", kvl_alert_to_json(a));
    if (h != NULL && why_muted != NULL) {
        json_object_set_new(h, "not_sent", json_string(why_muted));
    }
    book_history(b, h);
}

static void history_sent(kvl_book_t *b, const kvl_alert_t *a, const char *receiver,
                         const char *what)
{
    char fp[24];
    fp_text(a->fingerprint, fp);
    book_history(b, json_pack("{s:I, s:s, s:s, s:o, s:s, s:s}", "at", (json_int_t)kvl_book_now(b),
                              "event", "notified", "fingerprint", fp, "labels", labels_json(a),
                              "receiver", receiver, "what", what));
}

/* --- changes -------------------------------------------------------------------------------- */

/* Why a firing alert is not sent now ("late", "silenced", "maintenance", "suppressed: ..."),
 * in buf; NULL when it is not muted. */
static const char *mute_reason(const kvl_book_t *b, const kvl_alert_t *a, int64_t now, char *buf,
                               size_t len)
{
    if (a->late) {
        return "late";
    }
    if (book_silenced(b, a, now)) {
        return "silenced";
    }
    if (book_in_maint(b, a, now)) {
        return "maintenance";
    }
    char why[400];
    if (book_suppressed(b, a, why, sizeof(why))) {
        snprintf(buf, len, "suppressed: %s", why);
        return buf;
    }
    return NULL;
}

/* The state change of an update (live or replayed). 0 or KVL_ENOMEM. */
static int apply_alert(kvl_book_t *b, const kvl_alert_t *a)
{
    book_entry_t *e = book_find(b, a->fingerprint);
    if (a->status == KVL_ALERT_RESOLVED && e == NULL) {
        return 0; /* nothing held, nothing owed */
    }
    kvl_alert_t keep;
    if (e != NULL && a->n_fields == 0 && e->a->n_fields > 0) {
        /* a change without an event (a poll, a restart) keeps what the event told */
        keep = *a;
        memcpy(keep.fields, e->a->fields, sizeof(keep.fields));
        keep.n_fields = e->a->n_fields;
        a = &keep;
    }
    kvl_alert_t *copy = kvl_alert_dup(a);
    if (copy == NULL) {
        return KVL_ENOMEM;
    }
    if (e != NULL) {
        kvl_alert_free(e->a);
        e->a = copy;
        return 0;
    }
    e = calloc(1, sizeof(*e));
    if (e == NULL || grow(&b->e, b->n_e, &b->cap_e) != 0) {
        free(e);
        kvl_alert_free(copy);
        return KVL_ENOMEM;
    }
    e->a = copy;
    b->e[b->n_e++] = e;
    if (route_alert(b, e) != 0) {
        entry_remove(b, e);
        return KVL_ENOMEM;
    }
    return 0;
}

/* Drops an entry that is over: resolved and owing nothing. */
static void settle(kvl_book_t *b, book_entry_t *e)
{
    if (e->a->status == KVL_ALERT_RESOLVED && !entry_owes(e)) {
        entry_remove(b, e);
    }
}

void kvl_book_update(kvl_book_t *b, const kvl_alert_t *a)
{
    int64_t now = kvl_book_now(b);
    book_entry_t *before = book_find(b, a->fingerprint);
    char buf[512];
    history_change(b, a,
                   a->status == KVL_ALERT_FIRING ? mute_reason(b, a, now, buf, sizeof(buf)) : NULL);
    if (apply_alert(b, a) != 0) {
        KVL_LOG_ERROR(MOD, a->rule, "out of memory: alert %016" PRIx64 " not recorded",
                      a->fingerprint);
        return;
    }
    book_entry_t *e = book_find(b, a->fingerprint);
    KVL_ASSERT(e != NULL || before == NULL);
    if (e != NULL) {
        if (book_log(b, alert_record(e)) != 0) {
            KVL_LOG_ERROR(MOD, a->rule, "the alert book's log could not be written");
        }
        settle(b, e);
    }
    kvl_book_tick(b);
}

void kvl_book_alert_cb(void *ctx, const kvl_alert_t *a)
{
    kvl_book_update(ctx, a);
}

void kvl_book_each_active(const kvl_book_t *b, kvl_book_each_fn cb, void *ctx)
{
    for (size_t i = 0; i < b->n_e; i++) {
        if (b->e[i]->a->status != KVL_ALERT_RESOLVED) {
            cb(ctx, b->e[i]->a);
        }
    }
}

int kvl_book_ack(kvl_book_t *b, uint64_t fingerprint, const char *by, const char *comment)
{
    book_entry_t *e = book_find(b, fingerprint);
    if (e == NULL || e->a->status == KVL_ALERT_RESOLVED) {
        return KVL_EINVAL;
    }
    char *nb = strdup(by != NULL ? by : "unknown");
    char *nc = strdup(comment != NULL ? comment : "");
    if (nb == NULL || nc == NULL) {
        free(nb);
        free(nc);
        return KVL_ENOMEM;
    }
    free(e->ack_by);
    free(e->ack_comment);
    e->ack_by = nb;
    e->ack_comment = nc;
    e->ack_ms = kvl_book_now(b);
    e->acked = true;
    char fp[24];
    fp_text(fingerprint, fp);
    book_history(b, json_pack("{s:I, s:s, s:s, s:o, s:s, s:s}", "at", (json_int_t)e->ack_ms,
                              "event", "acknowledged", "fingerprint", fp, "labels",
                              labels_json(e->a), "by", nb, "comment", nc));
    int rc = book_log(b, ack_record(e));
    if (rc == 0) {
        rc = book_log_sync(b);
    }
    kvl_book_tick(b);
    return rc;
}

/* --- silences and maintenance ------------------------------------------------------------- */

static int silence_insert(kvl_book_t *b, kvl_silence_t *s)
{
    for (size_t i = 0; i < b->n_s; i++) {
        if (strcmp(b->s[i]->id, s->id) == 0) {
            kvl_silence_free(b->s[i]);
            b->s[i] = s;
            return 0;
        }
    }
    if (grow(&b->s, b->n_s, &b->cap_s) != 0) {
        kvl_silence_free(s);
        return KVL_ENOMEM;
    }
    b->s[b->n_s++] = s;
    return 0;
}

static int maint_insert(kvl_book_t *b, kvl_maint_t *m)
{
    for (size_t i = 0; i < b->n_m; i++) {
        if (strcmp(b->m[i]->id, m->id) == 0) {
            kvl_maint_free(b->m[i]);
            b->m[i] = m;
            return 0;
        }
    }
    if (grow(&b->m, b->n_m, &b->cap_m) != 0) {
        kvl_maint_free(m);
        return KVL_ENOMEM;
    }
    b->m[b->n_m++] = m;
    return 0;
}

static int silence_remove(kvl_book_t *b, const char *id)
{
    for (size_t i = 0; i < b->n_s; i++) {
        if (strcmp(b->s[i]->id, id) == 0) {
            kvl_silence_free(b->s[i]);
            b->s[i] = b->s[--b->n_s];
            return 0;
        }
    }
    return KVL_EINVAL;
}

static int maint_remove(kvl_book_t *b, const char *id)
{
    for (size_t i = 0; i < b->n_m; i++) {
        if (strcmp(b->m[i]->id, id) == 0) {
            kvl_maint_free(b->m[i]);
            b->m[i] = b->m[--b->n_m];
            return 0;
        }
    }
    return KVL_EINVAL;
}

#define SILENCES_MAX 10000
#define MAINT_MAX 1000

/* Logs a change of the silences or windows, syncs it, and runs what it makes due. */
static int record(kvl_book_t *b, json_t *rec)
{
    int rc = book_log(b, rec);
    if (rc == 0) {
        rc = book_log_sync(b);
    }
    kvl_book_tick(b);
    return rc;
}

int kvl_book_silence_add(kvl_book_t *b, kvl_silence_t *s)
{
    if (b->n_s >= SILENCES_MAX) {
        kvl_silence_free(s);
        return KVL_EINVAL;
    }
    json_t *rec = json_pack("{s:s, s:o}", "t", "silence", "s", kvl_silence_to_json(s));
    int rc = silence_insert(b, s);
    if (rc != 0) {
        json_decref(rec);
        return rc;
    }
    return record(b, rec);
}

int kvl_book_silence_del(kvl_book_t *b, const char *id)
{
    if (silence_remove(b, id) != 0) {
        return KVL_EINVAL;
    }
    return record(b, json_pack("{s:s, s:s}", "t", "unsilence", "id", id));
}

int kvl_book_maint_add(kvl_book_t *b, kvl_maint_t *m)
{
    if (b->n_m >= MAINT_MAX) {
        kvl_maint_free(m);
        return KVL_EINVAL;
    }
    json_t *rec = json_pack("{s:s, s:o}", "t", "maint", "m", kvl_maint_to_json(m));
    int rc = maint_insert(b, m);
    if (rc != 0) {
        json_decref(rec);
        return rc;
    }
    return record(b, rec);
}

int kvl_book_maint_del(kvl_book_t *b, const char *id)
{
    if (maint_remove(b, id) != 0) {
        return KVL_EINVAL;
    }
    return record(b, json_pack("{s:s, s:s}", "t", "unmaint", "id", id));
}

/* Silences over and one-off windows past are forgotten (not logged: they match nothing). */
static void expire(kvl_book_t *b, int64_t now)
{
    for (size_t i = 0; i < b->n_s;) {
        if (b->s[i]->ends_ms <= now) {
            kvl_silence_free(b->s[i]);
            b->s[i] = b->s[--b->n_s];
        } else {
            i++;
        }
    }
    for (size_t i = 0; i < b->n_m;) {
        if (!kvl_maint_current(b->m[i], now)) {
            kvl_maint_free(b->m[i]);
            b->m[i] = b->m[--b->n_m];
        } else {
            i++;
        }
    }
}

/* --- sending -------------------------------------------------------------------------------- */

typedef struct pick {
    book_entry_t *e;
    book_target_t *t;
} pick_t;

/* Hands one notification to the notifier. Each pick is a firing or a resolution by its
 * alert's status; what: "firing", "repeat" or "escalated" for the firing ones. A firing is
 * logged and synced before it is enqueued (a crash in between loses it rather than paging
 * twice); a resolution is logged once enqueued (a crash in between sends it again rather
 * than never). On failure the old state is restored (and logged). Returns 0 or the
 * notifier's error. */
static int send_picks(kvl_book_t *b, const char *receiver, const char *group_key, pick_t *p,
                      size_t n, const char *what)
{
    int64_t now = kvl_book_now(b);
    const kvl_alert_t **alerts = calloc(n, sizeof(*alerts));
    book_target_t *old = calloc(n, sizeof(*old));
    int64_t *old_paged = calloc(n, sizeof(*old_paged));
    bool *old_esc = calloc(n, sizeof(*old_esc));
    if (alerts == NULL || old == NULL || old_paged == NULL || old_esc == NULL) {
        free(alerts);
        free(old);
        free(old_paged);
        free(old_esc);
        return KVL_ENOMEM;
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        alerts[i] = p[i].e->a;
        old[i] = *p[i].t;
        old_paged[i] = p[i].e->paged_ms;
        old_esc[i] = p[i].e->escalated;
        bool resolved = p[i].e->a->status == KVL_ALERT_RESOLVED;
        p[i].t->fired = !resolved;
        if (!resolved) {
            p[i].t->last_sent_ms = now;
            if (p[i].e->paged_ms == 0) {
                p[i].e->paged_ms = now;
            }
        }
        if (p[i].t->g == NULL) {
            p[i].e->escalated = true;
        }
        if (!resolved) {
            rc |= book_log(b, sent_record(p[i].e, p[i].t));
        }
    }
    if (rc == 0) {
        rc = book_log_sync(b);
    }
    if (rc == 0) {
        kvl_notification_t note = {
            .receiver = receiver,
            .group_key = group_key,
            .alerts = alerts,
            .n_alerts = n,
            .repeat = strcmp(what, "repeat") == 0,
            .escalated = strcmp(what, "escalated") == 0 || (p[0].t->g == NULL),
        };
        rc = kvl_notify_enqueue(b->notify, &note);
    }
    if (rc != 0) {
        b->st.enqueue_failed++;
        b->backoff_until = now + RETRY_MS;
        KVL_LOG_LIMITED(KVL_LOG_LEVEL_ERROR, &b->fail_limit, MOD, receiver,
                        "a notification (%zu alerts, %s) was not queued, retried in %d s: %s", n,
                        what, RETRY_MS / 1000, kvl_strerror(rc));
        for (size_t i = 0; i < n; i++) {
            p[i].t->fired = old[i].fired;
            p[i].t->last_sent_ms = old[i].last_sent_ms;
            p[i].e->paged_ms = old_paged[i];
            p[i].e->escalated = old_esc[i];
            if (p[i].e->a->status != KVL_ALERT_RESOLVED) {
                book_log(b, sent_record(p[i].e, p[i].t));
            }
        }
        book_log_sync(b);
    } else {
        b->st.notifications++;
        for (size_t i = 0; i < n; i++) {
            bool resolved = p[i].e->a->status == KVL_ALERT_RESOLVED;
            if (resolved) {
                book_log(b, sent_record(p[i].e, p[i].t));
            }
            history_sent(b, p[i].e->a, receiver, resolved ? "resolved" : what);
        }
        book_log_sync(b);
    }
    free(alerts);
    free(old);
    free(old_paged);
    free(old_esc);
    return rc;
}

static bool wants_firing(const kvl_book_t *b, const book_entry_t *e, const book_target_t *t,
                         int64_t now)
{
    return e->a->status == KVL_ALERT_FIRING && !t->fired && !muted(b, e->a, now);
}

static bool wants_resolution(const book_entry_t *e, const book_target_t *t)
{
    return e->a->status == KVL_ALERT_RESOLVED && t->fired;
}

static bool wants_repeat(const kvl_book_t *b, const book_entry_t *e, const book_target_t *t,
                         int64_t now)
{
    return e->a->status == KVL_ALERT_FIRING && t->fired && t->g != NULL && !e->acked &&
           now >= t->last_sent_ms + t->g->repeat_ms && !muted(b, e->a, now);
}

static const kvl_alerts_escalation_t *escalation_of(const kvl_book_t *b, int severity)
{
    for (size_t i = 0; i < b->cfg->n_escalation; i++) {
        if (b->cfg->escalation[i].severity == severity) {
            return &b->cfg->escalation[i];
        }
    }
    return NULL;
}

/* Collects the picks of group g that `want` selects, and sends them as one notification. */
typedef bool (*want_fn)(const kvl_book_t *b, const book_entry_t *e, const book_target_t *t,
                        int64_t now);

static bool want_change(const kvl_book_t *b, const book_entry_t *e, const book_target_t *t,
                        int64_t now)
{
    return wants_firing(b, e, t, now) || wants_resolution(e, t);
}

/* Returns how many alerts went out (0 also when the notifier refused them). */
static size_t send_group(kvl_book_t *b, book_group_t *g, want_fn want, const char *what,
                         int64_t now)
{
    pick_t *p = calloc(b->n_e == 0 ? 1 : b->n_e, sizeof(*p));
    if (p == NULL) {
        return 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < b->n_e; i++) {
        book_entry_t *e = b->e[i];
        for (size_t k = 0; k < e->n_t; k++) {
            if (e->t[k].g == g && want(b, e, &e->t[k], now)) {
                p[n].e = e;
                p[n].t = &e->t[k];
                n++;
            }
        }
    }
    if (n > 0 && send_picks(b, g->receiver, g->key, p, n, what) != 0) {
        n = 0;
    }
    free(p);
    return n;
}

static void flush_group(kvl_book_t *b, book_group_t *g, int64_t now)
{
    g->scheduled = false;
    if (send_group(b, g, want_change, "firing", now) > 0) {
        g->last_flush = now;
    }
}

static void escalate(kvl_book_t *b, book_entry_t *e, int64_t now)
{
    const kvl_alerts_escalation_t *esc = escalation_of(b, e->a->severity);
    if (esc == NULL) {
        return;
    }
    book_target_t *t = target_find(e, esc->receiver, true);
    if (e->a->status == KVL_ALERT_FIRING && !e->escalated && !e->acked && e->paged_ms != 0 &&
        now >= e->paged_ms + esc->after_ms && !muted(b, e->a, now)) {
        if (t == NULL && (t = target_add(b, e, 0, esc->receiver, true)) == NULL) {
            return;
        }
        char key[64];
        snprintf(key, sizeof(key), "escalation;fingerprint=%016" PRIx64, e->a->fingerprint);
        pick_t p = {e, t};
        send_picks(b, esc->receiver, key, &p, 1, "escalated");
    } else if (t != NULL && wants_resolution(e, t)) {
        char key[64];
        snprintf(key, sizeof(key), "escalation;fingerprint=%016" PRIx64, e->a->fingerprint);
        pick_t p = {e, t};
        send_picks(b, esc->receiver, key, &p, 1, "escalated");
    }
}

/* The escalation targets of a severity no longer configured still get their resolution. */
static void resolve_orphan_escalations(kvl_book_t *b, book_entry_t *e)
{
    for (size_t k = 0; k < e->n_t; k++) {
        book_target_t *t = &e->t[k];
        const kvl_alerts_escalation_t *esc = escalation_of(b, e->a->severity);
        if (t->g == NULL && wants_resolution(e, t) &&
            (esc == NULL || strcmp(esc->receiver, t->receiver) != 0)) {
            char key[64];
            snprintf(key, sizeof(key), "escalation;fingerprint=%016" PRIx64, e->a->fingerprint);
            pick_t p = {e, t};
            send_picks(b, t->receiver, key, &p, 1, "escalated");
        }
    }
}

static void on_timer(uv_timer_t *t)
{
    kvl_book_tick(t->data);
}

/* The next moment after now at which a silence or window starts or ends: whether an alert
 * is muted changes only then (INT64_MAX: never). */
static int64_t next_mute_change(const kvl_book_t *b, int64_t now)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < b->n_s; i++) {
        int64_t t = kvl_silence_next_change(b->s[i], now);
        next = t < next ? t : next;
    }
    for (size_t i = 0; i < b->n_m; i++) {
        int64_t t = kvl_maint_next_change(b->m[i], now);
        next = t < next ? t : next;
    }
    return next;
}

static void arm(kvl_book_t *b, int64_t now)
{
    int64_t next = INT64_MAX;
    for (size_t i = 0; i < b->n_g; i++) {
        if (b->g[i]->scheduled && b->g[i]->flush_at < next) {
            next = b->g[i]->flush_at;
        }
    }
    /* a late alert changes only with an update; one silenced or in maintenance only when a
     * silence or window starts or ends (or is added or removed, which ticks): what is due
     * for it waits for that moment, not for a periodic look */
    int64_t unmute = INT64_MIN; /* not computed yet */
    for (size_t i = 0; i < b->n_e; i++) {
        book_entry_t *e = b->e[i];
        if (e->a->status != KVL_ALERT_FIRING || e->a->late) {
            continue;
        }
        bool m = muted(b, e->a, now);
        if (m && unmute == INT64_MIN) {
            unmute = next_mute_change(b, now);
        }
        for (size_t k = 0; k < e->n_t; k++) {
            book_target_t *t = &e->t[k];
            if (m && !t->fired) {
                next = unmute < next ? unmute : next;
            }
            if (t->fired && t->g != NULL && !e->acked) {
                int64_t due = m ? unmute : t->last_sent_ms + t->g->repeat_ms;
                next = due < next ? due : next;
            }
        }
        const kvl_alerts_escalation_t *esc = escalation_of(b, e->a->severity);
        if (esc != NULL && !e->escalated && !e->acked && e->paged_ms != 0) {
            int64_t due = m ? unmute : e->paged_ms + esc->after_ms;
            next = due < next ? due : next;
        }
    }
    b->next_due = next;
    if (b->closing) {
        return;
    }
    if (next != INT64_MAX && next < b->backoff_until) {
        next = b->backoff_until;
    }
    if (next == INT64_MAX) {
        uv_timer_stop(&b->timer);
        return;
    }
    int64_t delay = next - now;
    uv_timer_start(&b->timer, on_timer, delay < 0 ? 0 : (uint64_t)delay, 0);
}

int64_t kvl_book_next_due(const kvl_book_t *b)
{
    return b->next_due;
}

void kvl_book_tick(kvl_book_t *b)
{
    if (b->replaying) {
        return;
    }
    int64_t now = kvl_book_now(b);
    expire(b, now);
    /* schedule the flushes of groups with something to tell, mark repeats due */
    for (size_t i = 0; i < b->n_e; i++) {
        book_entry_t *e = b->e[i];
        for (size_t k = 0; k < e->n_t; k++) {
            book_group_t *g = e->t[k].g;
            if (g != NULL && wants_repeat(b, e, &e->t[k], now)) {
                g->repeat_due = true;
            }
            if (g == NULL || g->scheduled ||
                !(wants_firing(b, e, &e->t[k], now) || wants_resolution(e, &e->t[k]))) {
                continue;
            }
            g->scheduled = true;
            if (g->last_flush == 0) {
                g->flush_at = g->created_ms + g->wait_ms;
            } else {
                int64_t t = g->last_flush + g->interval_ms;
                g->flush_at = t > now ? t : now;
            }
        }
    }
    if (now < b->backoff_until) {
        arm(b, now);
        return;
    }
    /* sending changes no entry's targets, so no group goes away in this loop; only the
     * groups with something due look at the entries */
    for (size_t i = 0; i < b->n_g; i++) {
        book_group_t *g = b->g[i];
        if (g->scheduled && g->flush_at <= now) {
            flush_group(b, g, now);
        }
        if (g->repeat_due) {
            g->repeat_due = false;
            send_group(b, g, wants_repeat, "repeat", now);
        }
    }
    for (size_t i = 0; i < b->n_e; i++) {
        escalate(b, b->e[i], now);
        resolve_orphan_escalations(b, b->e[i]);
    }
    for (size_t i = 0; i < b->n_e;) {
        book_entry_t *e = b->e[i];
        if (e->a->status == KVL_ALERT_RESOLVED && !entry_owes(e)) {
            entry_remove(b, e);
        } else {
            i++;
        }
    }
    book_compact(b, false);
    arm(b, now);
}

/* --- replay and compaction ----------------------------------------------------------------- */

static const char *rec_str(const json_t *rec, const char *key)
{
    const json_t *v = json_object_get(rec, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static int rec_fp(const json_t *rec, uint64_t *fp)
{
    return kvl_book_fp_parse(rec_str(rec, "fp"), fp);
}

static int apply_sent(kvl_book_t *b, const json_t *rec)
{
    uint64_t fp;
    const char *r = rec_str(rec, "r");
    const json_t *at = json_object_get(rec, "at");
    const json_t *paged = json_object_get(rec, "paged");
    char why[128];
    if (rec_fp(rec, &fp) != 0 || r == NULL ||
        kvl_name_check("receiver", r, why, sizeof(why)) != 0 || !json_is_integer(at) ||
        !json_is_integer(paged) || !json_is_boolean(json_object_get(rec, "fired")) ||
        !json_is_boolean(json_object_get(rec, "esc"))) {
        return KVL_EINVAL;
    }
    book_entry_t *e = book_find(b, fp);
    if (e == NULL) {
        return KVL_EINVAL;
    }
    bool esc = json_is_true(json_object_get(rec, "esc"));
    book_target_t *t = target_find(e, r, esc);
    if (t == NULL) {
        /* a receiver no route names any more (or an escalation): kept until resolved */
        t = target_add(b, e, (int)b->cfg->n_routes, r, esc);
        if (t == NULL) {
            return KVL_ENOMEM;
        }
    }
    t->fired = json_is_true(json_object_get(rec, "fired"));
    t->last_sent_ms = json_integer_value(at);
    e->paged_ms = json_integer_value(paged);
    e->escalated = json_is_true(json_object_get(rec, "escalated"));
    if (t->g != NULL && t->last_sent_ms > t->g->last_flush) {
        t->g->last_flush = t->last_sent_ms;
    }
    return 0;
}

int book_apply_record(kvl_book_t *b, const json_t *rec)
{
    const char *t = rec_str(rec, "t");
    char why[256];
    if (t == NULL) {
        return KVL_EINVAL;
    }
    if (strcmp(t, "alert") == 0) {
        kvl_alert_t *a = kvl_alert_from_json(json_object_get(rec, "a"), why, sizeof(why));
        if (a == NULL) {
            return KVL_EINVAL;
        }
        int rc = apply_alert(b, a);
        book_entry_t *e = book_find(b, a->fingerprint);
        if (rc == 0 && e != NULL) {
            settle(b, e);
        }
        kvl_alert_free(a);
        return rc;
    }
    if (strcmp(t, "sent") == 0) {
        int rc = apply_sent(b, rec);
        uint64_t fp;
        book_entry_t *e = rc == 0 && rec_fp(rec, &fp) == 0 ? book_find(b, fp) : NULL;
        if (e != NULL) {
            settle(b, e);
        }
        return rc;
    }
    if (strcmp(t, "ack") == 0) {
        uint64_t fp;
        const json_t *at = json_object_get(rec, "at");
        const char *by = rec_str(rec, "by");
        const char *comment = rec_str(rec, "comment");
        if (rec_fp(rec, &fp) != 0 || by == NULL || comment == NULL || !json_is_integer(at)) {
            return KVL_EINVAL;
        }
        book_entry_t *e = book_find(b, fp);
        if (e == NULL) {
            return 0; /* the alert ended in the meantime */
        }
        char *nb = strdup(by);
        char *nc = strdup(comment);
        if (nb == NULL || nc == NULL) {
            free(nb);
            free(nc);
            return KVL_ENOMEM;
        }
        free(e->ack_by);
        free(e->ack_comment);
        e->ack_by = nb;
        e->ack_comment = nc;
        e->ack_ms = json_integer_value(at);
        e->acked = true;
        return 0;
    }
    if (strcmp(t, "silence") == 0) {
        kvl_silence_t *s;
        int rc =
            kvl_silence_from_json(json_object_get(rec, "s"), true, NULL, 0, &s, why, sizeof(why));
        return rc != 0 ? rc : silence_insert(b, s);
    }
    if (strcmp(t, "maint") == 0) {
        kvl_maint_t *m;
        int rc =
            kvl_maint_from_json(json_object_get(rec, "m"), true, NULL, 0, &m, why, sizeof(why));
        return rc != 0 ? rc : maint_insert(b, m);
    }
    if (strcmp(t, "unsilence") == 0 || strcmp(t, "unmaint") == 0) {
        const char *id = rec_str(rec, "id");
        if (id == NULL) {
            return KVL_EINVAL;
        }
        if (t[2] == 's') {
            silence_remove(b, id);
        } else {
            maint_remove(b, id);
        }
        return 0;
    }
    return KVL_EINVAL;
}

int book_state_records(kvl_book_t *b, json_t *arr)
{
    int rc = 0;
    for (size_t i = 0; i < b->n_s; i++) {
        rc |= json_array_append_new(
            arr, json_pack("{s:s, s:o}", "t", "silence", "s", kvl_silence_to_json(b->s[i])));
    }
    for (size_t i = 0; i < b->n_m; i++) {
        rc |= json_array_append_new(
            arr, json_pack("{s:s, s:o}", "t", "maint", "m", kvl_maint_to_json(b->m[i])));
    }
    for (size_t i = 0; i < b->n_e; i++) {
        book_entry_t *e = b->e[i];
        rc |= json_array_append_new(arr, alert_record(e));
        for (size_t k = 0; k < e->n_t; k++) {
            if (e->t[k].fired || e->t[k].last_sent_ms != 0) {
                rc |= json_array_append_new(arr, sent_record(e, &e->t[k]));
            }
        }
        if (e->acked) {
            rc |= json_array_append_new(arr, ack_record(e));
        }
    }
    return rc != 0 ? KVL_ENOMEM : 0;
}

/* --- life ------------------------------------------------------------------------------------ */

static bool notify_has(const void *ctx, const char *name)
{
    return kvl_notify_has_receiver(ctx, name);
}

int kvl_book_new(const kvl_book_opts_t *o, kvl_book_t **out, char *err, size_t errlen)
{
    *out = NULL;
    kvl_book_t *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    b->loop = o->loop;
    b->notify = o->notify;
    b->clock = o->now_ms;
    b->clock_ctx = o->clock_ctx;
    b->log_fd = b->hist_fd = -1;
    b->next_due = INT64_MAX;
    b->fail_limit = (kvl_log_limit_t)KVL_LOG_LIMIT_INIT(60 * 1000);
    b->cfg = o->cfg;
    if (b->cfg == NULL) {
        b->cfg = b->own_cfg = kvl_alerts_cfg_new();
    }
    b->dir = strdup(o->dir);
    if (b->cfg == NULL || b->dir == NULL) {
        snprintf(err, errlen, "out of memory");
        kvl_alerts_cfg_free(b->own_cfg);
        free(b->dir);
        free(b);
        return KVL_ENOMEM;
    }
    int rc = kvl_alerts_cfg_check_receivers(b->cfg, notify_has, b->notify, err, errlen);
    if (rc == 0) {
        rc = book_store_open(b, err, errlen);
    }
    if (rc != 0) {
        b->closing = true;
        kvl_book_free(b);
        return rc;
    }
    uv_timer_init(b->loop, &b->timer);
    uv_unref((uv_handle_t *)&b->timer); /* the book alone never keeps the loop running */
    b->timer.data = b;
    KVL_LOG_INFO(MOD, NULL, "alert book: %zu alerts held, %zu silences, %zu maintenance windows",
                 b->n_e, b->n_s, b->n_m);
    *out = b;
    kvl_book_tick(b);
    return 0;
}

int kvl_book_reconfigure(kvl_book_t *b, const kvl_alerts_cfg_t *cfg, kvl_notify_t *notify,
                         char *err, size_t errlen)
{
    kvl_alerts_cfg_t *own = NULL;
    if (cfg == NULL && (cfg = own = kvl_alerts_cfg_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    int rc = kvl_alerts_cfg_check_receivers(cfg, notify_has, notify, err, errlen);
    if (rc != 0) {
        kvl_alerts_cfg_free(own);
        return rc;
    }
    b->cfg = cfg;
    kvl_alerts_cfg_free(b->own_cfg);
    b->own_cfg = own;
    b->notify = notify;
    /* a receiver that is gone can be told nothing more: its targets go (a resolution it
     * was owed included), so that they never hold the others back */
    size_t dropped = 0;
    for (size_t i = 0; i < b->n_e; i++) {
        book_entry_t *e = b->e[i];
        size_t keep = 0;
        for (size_t k = 0; k < e->n_t; k++) {
            if (kvl_notify_has_receiver(notify, e->t[k].receiver)) {
                e->t[keep++] = e->t[k];
                continue;
            }
            if (e->t[k].g != NULL) {
                group_unref(b, e->t[k].g);
            }
            free(e->t[k].receiver);
            dropped++;
        }
        e->n_t = keep;
        /* an active alert left without a receiver follows the new routing */
        if (keep == 0 && e->a->status != KVL_ALERT_RESOLVED && route_alert(b, e) != 0) {
            KVL_LOG_ERROR(MOD, NULL, "out of memory: an alert could not be routed again");
        }
    }
    if (dropped > 0) {
        KVL_LOG_WARN(MOD, NULL, "%zu notifications owed to receivers no longer configured dropped",
                     dropped);
        /* a snapshot of what is held now, so that a restart does not bring them back */
        if (book_compact(b, true) != 0) {
            KVL_LOG_WARN(MOD, NULL,
                         "the book could not be compacted: a restart may owe them again");
        }
    }
    b->backoff_until = 0;
    kvl_book_tick(b);
    return 0;
}

void kvl_book_stats(const kvl_book_t *b, kvl_book_stats_t *out)
{
    *out = b->st;
    out->active = out->unsettled = 0;
    for (size_t i = 0; i < b->n_e; i++) {
        if (b->e[i]->a->status == KVL_ALERT_RESOLVED) {
            out->unsettled++;
        } else {
            out->active++;
        }
    }
    out->silences = b->n_s;
    out->maintenance = b->n_m;
    out->history = b->hist_n;
}

static void free_rest(kvl_book_t *b)
{
    while (b->n_e > 0) {
        entry_remove(b, b->e[b->n_e - 1]);
    }
    KVL_ASSERT(b->n_g == 0);
    for (size_t i = 0; i < b->n_s; i++) {
        kvl_silence_free(b->s[i]);
    }
    for (size_t i = 0; i < b->n_m; i++) {
        kvl_maint_free(b->m[i]);
    }
    book_store_close(b);
    free(b->api[0]);
    free(b->api[1]);
    free(b->e);
    free(b->g);
    free(b->s);
    free(b->m);
    free(b->dir);
    kvl_alerts_cfg_free(b->own_cfg);
    free(b);
}

static void on_closed(uv_handle_t *h)
{
    free_rest(h->data);
}

void kvl_book_free(kvl_book_t *b)
{
    if (b == NULL) {
        return;
    }
    book_log_sync(b);
    if (!b->closing) {
        b->closing = true;
        uv_close((uv_handle_t *)&b->timer, on_closed);
        return;
    }
    free_rest(b);
}
