/*
 * collector_diff.c — the comparison of two collector configurations for a reload
 * (collector_diff.h): restart-only keys that differ, and per-section change counts.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "collector_diff.h"

/* NULL-terminated lists (NULL: empty). */
static bool strz_eq(char *const *a, char *const *b)
{
    size_t i = 0;
    for (; a != NULL && b != NULL && a[i] != NULL && b[i] != NULL; i++) {
        if (strcmp(a[i], b[i]) != 0) {
            return false;
        }
    }
    bool a_end = a == NULL || a[i] == NULL, b_end = b == NULL || b[i] == NULL;
    return a_end && b_end;
}

static bool match_eq(const kvl_rule_match_t *a, const kvl_rule_match_t *b)
{
    return kvl_cfg_str_same(a->glob, b->glob) && a->negate == b->negate;
}

static bool kv_match_eq(const kvl_rule_kv_match_t *a, size_t na, const kvl_rule_kv_match_t *b,
                        size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (!kvl_cfg_str_same(a[i].key, b[i].key) || !match_eq(&a[i].m, &b[i].m)) {
            return false;
        }
    }
    return true;
}

typedef struct keys {
    char *buf;
    size_t len, at, n;
} keys_t;

static void key_add(keys_t *k, bool differs, const char *name)
{
    if (!differs) {
        return;
    }
    if (k->len > 0 && k->at < k->len) {
        int w = snprintf(k->buf + k->at, k->len - k->at, "%s%s", k->n > 0 ? ", " : "", name);
        k->at += w > 0 ? (size_t)w : 0;
    }
    k->n++;
}

static bool archives_eq(const kvl_collector_cfg_t *a, const kvl_collector_cfg_t *b)
{
    if (a->n_archives != b->n_archives) {
        return false;
    }
    for (size_t i = 0; i < a->n_archives; i++) {
        if (a->archives[i].resolution_ms != b->archives[i].resolution_ms ||
            a->archives[i].retention_ms != b->archives[i].retention_ms) {
            return false;
        }
    }
    return true;
}

static bool tls_eq(const kvl_tls_cfg_t *a, const kvl_tls_cfg_t *b)
{
    return kvl_cfg_str_same(a->ca, b->ca) && kvl_cfg_str_same(a->cert, b->cert) &&
           kvl_cfg_str_same(a->key, b->key) && a->given == b->given;
}

static void http_keys(keys_t *k, const kvl_http_cfg_t *a, const kvl_http_cfg_t *b)
{
    key_add(k, a->enabled != b->enabled, "http");
    key_add(k, !kvl_cfg_str_same(a->listen, b->listen), "http.listen");
    key_add(k,
            a->tls != b->tls || !kvl_cfg_str_same(a->cert, b->cert) ||
                !kvl_cfg_str_same(a->key, b->key),
            "http.tls");
    key_add(k, !kvl_cfg_str_same(a->users_file, b->users_file), "http.users_file");
    key_add(k, !kvl_cfg_str_same(a->tokens_file, b->tokens_file), "http.tokens_file");
    key_add(k, !kvl_cfg_str_same(a->static_dir, b->static_dir), "http.static_dir");
    key_add(k, a->max_connections != b->max_connections, "http.max_connections");
    key_add(k, a->connection_timeout_ms != b->connection_timeout_ms, "http.connection_timeout");
    key_add(k, a->session_ttl_ms != b->session_ttl_ms, "http.session_ttl");
    key_add(k, a->threads != b->threads, "http.threads");
    key_add(k, a->anonymous_viewer != b->anonymous_viewer, "http.anonymous_viewer");
    key_add(k, a->metrics_anonymous != b->metrics_anonymous, "http.metrics_anonymous");
}

/* `alerts:` absent reads as its defaults. */
static const kvl_alerts_root_cause_t *root_cause_of(const kvl_alerts_cfg_t *c)
{
    static const kvl_alerts_root_cause_t defaults = {
        .enabled = true, .hold_ms = 30000, .settle_ms = 120000};
    return c != NULL ? &c->root_cause : &defaults;
}

static int64_t history_max_of(const kvl_alerts_cfg_t *c)
{
    return c != NULL ? c->history_max : 10000;
}

static bool has_sites(const kvl_collector_cfg_t *c)
{
    return c->sites != NULL && c->sites->n > 0;
}

size_t kvl_collector_cfg_restart_keys(const kvl_collector_cfg_t *a, const kvl_collector_cfg_t *b,
                                      char *buf, size_t len)
{
    keys_t k = {.buf = buf, .len = len};
    if (len > 0) {
        buf[0] = '\0';
    }
    key_add(&k, !kvl_cfg_str_same(a->id, b->id), "id");
    key_add(&k, !kvl_cfg_str_same(a->listen, b->listen), "listen");
    key_add(&k, !kvl_cfg_str_same(a->data_dir, b->data_dir), "data_dir");
    key_add(&k, a->max_connections != b->max_connections, "max_connections");
    key_add(&k, a->max_frame != b->max_frame, "max_frame");
    key_add(&k, a->handshake_timeout_ms != b->handshake_timeout_ms, "handshake_timeout");
    key_add(&k, a->idle_timeout_ms != b->idle_timeout_ms, "idle_timeout");
    key_add(&k, a->journal_max_bytes != b->journal_max_bytes, "journal_max_bytes");
    key_add(&k, a->journal_segment_bytes != b->journal_segment_bytes, "journal_segment_bytes");
    key_add(&k, a->journal_commit_delay_ms != b->journal_commit_delay_ms, "journal_commit_delay");
    key_add(&k, a->journal_sync != b->journal_sync, "journal_sync");
    key_add(&k, !archives_eq(a, b), "archives");
    key_add(&k, !strz_eq(a->consolidations, b->consolidations), "consolidations");
    key_add(&k, !kvl_cfg_str_same(a->rrdcached, b->rrdcached), "rrdcached");
    key_add(&k, a->rrdcached_checkpoint_ms != b->rrdcached_checkpoint_ms, "rrdcached_checkpoint");
    key_add(&k, a->rrdcached_remote != b->rrdcached_remote, "rrdcached_files");
    key_add(&k, !tls_eq(&a->tls, &b->tls), "tls");
    key_add(&k, a->tls.insecure != b->tls.insecure, "insecure");
    key_add(&k, a->max_seq_ahead_ms != b->max_seq_ahead_ms, "max_seq_ahead");
    key_add(&k, a->max_handshakes != b->max_handshakes, "max_handshakes");
    key_add(&k, a->max_handshakes_per_address != b->max_handshakes_per_address,
            "max_handshakes_per_address");
    key_add(&k, a->max_series_per_agent != b->max_series_per_agent, "max_series_per_agent");
    key_add(&k, a->max_families_per_agent != b->max_families_per_agent, "max_families_per_agent");
    key_add(&k, a->agent_state_ttl_ms != b->agent_state_ttl_ms, "agent_state_ttl");
    key_add(&k, a->future_tolerance_ms != b->future_tolerance_ms, "future_tolerance");
    key_add(&k, a->max_sample_age_ms != b->max_sample_age_ms, "max_sample_age");
    key_add(&k, a->lost_after != b->lost_after, "lost_after");
    key_add(&k, !kvl_rw_cfg_same(a->remote_write, b->remote_write), "remote_write");
    http_keys(&k, a->http, b->http);
    key_add(&k, history_max_of(a->alerts) != history_max_of(b->alerts), "alerts.history_max");
    const kvl_alerts_root_cause_t *ra = root_cause_of(a->alerts), *rb = root_cause_of(b->alerts);
    key_add(&k,
            ra->enabled != rb->enabled || ra->hold_ms != rb->hold_ms ||
                ra->settle_ms != rb->settle_ms,
            "alerts.root_cause");
    /* root-cause alerts run only with a site tree: one appearing or going would start or stop
     * them */
    key_add(&k, ra->enabled && has_sites(a) != has_sites(b), "sites (none to some, or back)");
    return k.n;
}

static bool receiver_eq(const kvl_notify_receiver_cfg_t *a, const kvl_notify_receiver_cfg_t *b)
{
    return a->type == b->type && a->max_bytes == b->max_bytes && a->timeout_ms == b->timeout_ms &&
           kvl_cfg_str_same(a->url, b->url) && kvl_cfg_str_same(a->ca, b->ca) &&
           a->resend_ms == b->resend_ms && kvl_cfg_str_same(a->secret, b->secret) &&
           kvl_cfg_str_same(a->template_, b->template_) &&
           kvl_cfg_str_same(a->content_type, b->content_type) && a->use_ssl == b->use_ssl &&
           kvl_cfg_str_same(a->user, b->user) && kvl_cfg_str_same(a->password, b->password) &&
           kvl_cfg_str_same(a->from, b->from) &&
           kvl_cfg_strv_same(a->to, a->n_to, b->to, b->n_to) &&
           kvl_cfg_strv_same(a->command, a->n_command, b->command, b->n_command) &&
           a->facility == b->facility && kvl_cfg_str_same(a->ident, b->ident) &&
           kvl_cfg_str_same(a->address, b->address) &&
           kvl_cfg_str_same(a->community, b->community) && a->inform == b->inform &&
           a->version == b->version && a->auth_protocol == b->auth_protocol &&
           kvl_cfg_str_same(a->auth_password, b->auth_password) &&
           a->priv_protocol == b->priv_protocol &&
           kvl_cfg_str_same(a->priv_password, b->priv_password);
}

void kvl_receivers_diff(const kvl_notify_cfg_t *a, const kvl_notify_cfg_t *b, kvl_names_diff_t *d)
{
    *d = (kvl_names_diff_t){0};
    size_t na = a != NULL ? a->n : 0, nb = b != NULL ? b->n : 0;
    for (size_t j = 0; j < nb; j++) {
        const kvl_notify_receiver_cfg_t *rb = &b->receivers[j], *ra = NULL;
        for (size_t i = 0; i < na && ra == NULL; i++) {
            ra = strcmp(a->receivers[i].name, rb->name) == 0 ? &a->receivers[i] : NULL;
        }
        if (ra == NULL) {
            d->added++;
        } else if (receiver_eq(ra, rb)) {
            d->kept++;
        } else {
            d->changed++;
        }
    }
    d->removed = na - (d->kept + d->changed);
}

static bool site_eq(const kvl_site_t *a, const kvl_site_t *b)
{
    return kvl_cfg_str_same(a->parent_name, b->parent_name) && a->kind == b->kind &&
           kvl_cfg_str_same(a->label, b->label) &&
           kvl_cfg_str_same(a->uplink_agent, b->uplink_agent) &&
           kvl_cfg_str_same(a->uplink_device, b->uplink_device) &&
           kvl_cfg_str_same(a->uplink_interface, b->uplink_interface) &&
           kvl_cfg_str_same(a->uplink_probe, b->uplink_probe) && a->x == b->x && a->y == b->y;
}

void kvl_sites_diff(const kvl_sites_cfg_t *a, const kvl_sites_cfg_t *b, kvl_names_diff_t *d)
{
    *d = (kvl_names_diff_t){0};
    size_t na = a != NULL ? a->n : 0, nb = b != NULL ? b->n : 0;
    for (size_t j = 0; j < nb; j++) {
        size_t i = na > 0 ? kvl_sites_find(a, b->v[j].name) : KVL_SITE_NONE;
        if (i == KVL_SITE_NONE) {
            d->added++;
        } else if (site_eq(&a->v[i], &b->v[j])) {
            d->kept++;
        } else {
            d->changed++;
        }
    }
    d->removed = na - (d->kept + d->changed);
}

static bool num_eq(const kvl_rule_num_t *a, const kvl_rule_num_t *b)
{
    return a->set == b->set && (!a->set || a->v == b->v);
}

static bool labels_eq(const kvl_rule_label_t *a, size_t na, const kvl_rule_label_t *b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (!kvl_cfg_str_same(a[i].key, b[i].key) || !kvl_cfg_str_same(a[i].value, b[i].value)) {
            return false;
        }
    }
    return true;
}

/* Everything that makes a rule evaluate, fire and read as it does (not where it was written). */
static bool rule_eq(const kvl_rule_t *a, const kvl_rule_t *b)
{
    bool same = kvl_cfg_str_same(a->name, b->name) && a->builtin == b->builtin &&
                a->severity == b->severity && match_eq(&a->site, &b->site) &&
                match_eq(&a->device, &b->device) && match_eq(&a->interface, &b->interface) &&
                match_eq(&a->group, &b->group) && match_eq(&a->target, &b->target) &&
                match_eq(&a->metric, &b->metric) &&
                kv_match_eq(a->sel_labels, a->n_sel_labels, b->sel_labels, b->n_sel_labels) &&
                a->kind == b->kind && labels_eq(a->labels, a->n_labels, b->labels, b->n_labels) &&
                kvl_cfg_str_same(a->summary, b->summary);
    same = same && a->threshold.source == b->threshold.source &&
           kvl_cfg_str_same(a->threshold.metric, b->threshold.metric) &&
           a->threshold.derived == b->threshold.derived &&
           num_eq(&a->threshold.above, &b->threshold.above) &&
           num_eq(&a->threshold.below, &b->threshold.below) &&
           num_eq(&a->threshold.clear, &b->threshold.clear) &&
           a->threshold.for_ms == b->threshold.for_ms;
    same = same && a->state.state == b->state.state && a->state.intervals == b->state.intervals &&
           a->state.for_ms == b->state.for_ms && a->no_data.intervals == b->no_data.intervals;
    same = same && kvl_cfg_str_same(a->event.name, b->event.name) &&
           kv_match_eq(a->event.match, a->event.n_match, b->event.match, b->event.n_match) &&
           kvl_cfg_str_same(a->event.clear, b->event.clear) && a->event.hold_ms == b->event.hold_ms;
    return same && a->flapping.on == b->flapping.on && a->flapping.changes == b->flapping.changes &&
           a->flapping.window_ms == b->flapping.window_ms &&
           a->flapping.stable_ms == b->flapping.stable_ms;
}

void kvl_rules_diff(const kvl_rules_t *a, const kvl_rules_t *b, kvl_names_diff_t *d)
{
    *d = (kvl_names_diff_t){0};
    size_t na = a != NULL ? a->n : 0, nb = b != NULL ? b->n : 0;
    for (size_t j = 0; j < nb; j++) {
        const kvl_rule_t *ra = a != NULL ? kvl_rules_find(a, b->v[j].name) : NULL;
        if (ra == NULL) {
            d->added++;
        } else if (rule_eq(ra, &b->v[j])) {
            d->kept++;
        } else {
            d->changed++;
        }
    }
    d->removed = na - (d->kept + d->changed);
}

static bool route_eq(const kvl_alerts_route_t *a, const kvl_alerts_route_t *b)
{
    return kv_match_eq(a->match, a->n_match, b->match, b->n_match) &&
           kvl_cfg_str_same(a->receiver, b->receiver) &&
           kvl_cfg_strv_same(a->group_by, a->n_group_by, b->group_by, b->n_group_by) &&
           a->group_wait_ms == b->group_wait_ms && a->group_interval_ms == b->group_interval_ms &&
           a->repeat_interval_ms == b->repeat_interval_ms && a->cont == b->cont;
}

bool kvl_alerts_routing_same(const kvl_alerts_cfg_t *a, const kvl_alerts_cfg_t *b)
{
    if (a == NULL || b == NULL) {
        /* one absent: the same only when the other has the defaults' routing (none) */
        const kvl_alerts_cfg_t *c = a != NULL ? a : b;
        return c == NULL || (c->receiver == NULL && c->n_routes == 0 && c->n_escalation == 0);
    }
    if (!kvl_cfg_str_same(a->receiver, b->receiver) ||
        !kvl_cfg_strv_same(a->group_by, a->n_group_by, b->group_by, b->n_group_by) ||
        a->group_wait_ms != b->group_wait_ms || a->group_interval_ms != b->group_interval_ms ||
        a->repeat_interval_ms != b->repeat_interval_ms || a->n_routes != b->n_routes ||
        a->n_escalation != b->n_escalation) {
        return false;
    }
    for (size_t i = 0; i < a->n_routes; i++) {
        if (!route_eq(&a->routes[i], &b->routes[i])) {
            return false;
        }
    }
    for (size_t i = 0; i < a->n_escalation; i++) {
        if (a->escalation[i].severity != b->escalation[i].severity ||
            a->escalation[i].after_ms != b->escalation[i].after_ms ||
            !kvl_cfg_str_same(a->escalation[i].receiver, b->escalation[i].receiver)) {
            return false;
        }
    }
    return true;
}

void kvl_names_diff_format(const kvl_names_diff_t *d, char *buf, size_t len)
{
    const size_t v[3] = {d->added, d->removed, d->changed};
    static const char *const what[3] = {"added", "removed", "changed"};
    size_t at = 0;
    if (len == 0) {
        return;
    }
    buf[0] = '\0';
    for (size_t i = 0; i < 3; i++) {
        if (v[i] > 0 && at < len) {
            int w = snprintf(buf + at, len - at, "%s%zu %s", at > 0 ? ", " : "", v[i], what[i]);
            at += w > 0 ? (size_t)w : 0;
        }
    }
    if (at == 0) {
        snprintf(buf, len, "unchanged");
    }
}
