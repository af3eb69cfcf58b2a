/*
 * metrics.c — GET /metrics (metrics.h): one scrape renders every family from the rooms'
 * getters, each with its HELP and TYPE lines, names prefixed `kaaval_` (the process's own as
 * Prometheus' client libraries name them: process_resident_memory_bytes, process_open_fds).
 * Label values are escaped as the format wants (backslash, double quote, line feed). Runs on
 * the loop's thread, like every handler.
 */
#include "metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvl.h"
#include "rules.h"
#include "timeutil.h"

#define SEVERITIES (KVL_RULE_SEV_INFO + 1)

static void head(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(FILE *f, const char *name, const char *type, const char *help, double v)
{
    head(f, name, type, help);
    fprintf(f, "%s %.17g\n", name, v);
}

/* A label value as the exposition format quotes it. */
static void label(FILE *f, const char *v)
{
    fputc('"', f);
    for (const char *p = v ? v : ""; *p != '\0'; p++) {
        if (*p == '\\' || *p == '"') {
            fputc('\\', f);
            fputc(*p, f);
        } else if (*p == '\n') {
            fputs("\\n", f);
        } else {
            fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* ------------------------------------------------------------------ alerts */

static void count_firing(void *ctx, const kvl_alert_t *a)
{
    uint64_t *by_sev = ctx;
    if (a->status == KVL_ALERT_FIRING && a->severity >= 0 && a->severity < SEVERITIES) {
        by_sev[a->severity]++;
    }
}

/* ------------------------------------------------------------------ notifiers */

typedef struct rcv_pass {
    FILE *f;
    int what; /* 0 sent, 1 failed, 2 dropped, 3 waiting */
} rcv_pass_t;

static void receiver_line(void *ctx, const char *receiver, const kvl_notify_stats_t *st)
{
    rcv_pass_t *p = ctx;
    static const char *const names[] = {
        "kaaval_notifications_sent_total", "kaaval_notifications_failed_total",
        "kaaval_notifications_dropped_total", "kaaval_notifications_waiting"};
    uint64_t v = p->what == 0   ? st->delivered
                 : p->what == 1 ? st->failed_attempts
                 : p->what == 2 ? st->dropped
                                : st->waiting;
    fprintf(p->f, "%s{receiver=", names[p->what]);
    label(p->f, receiver);
    fprintf(p->f, "} %" PRIu64 "\n", v);
}

/* ------------------------------------------------------------------ remote-write */

typedef struct rw_pass {
    FILE *f;
    int what;
} rw_pass_t;

/* The remote-write figures, one per endpoint each (rw_pass_t.what indexes them). */
static const char *const rw_names[] = {"kaaval_remote_write_samples_sent_total",
                                       "kaaval_remote_write_samples_dropped_total",
                                       "kaaval_remote_write_retries_total",
                                       "kaaval_remote_write_requests_total",
                                       "kaaval_remote_write_queue_samples",
                                       "kaaval_remote_write_series",
                                       "kaaval_remote_write_last_success_timestamp_seconds",
                                       "kaaval_remote_write_lag_seconds"};

static void rw_line(void *ctx, const kvl_rwrite_stats_t *st)
{
    rw_pass_t *p = ctx;
    FILE *f = p->f;
    fprintf(f, "%s{endpoint=", rw_names[p->what]);
    label(f, st->name);
    switch (p->what) {
    case 0:
        fprintf(f, "} %" PRIu64 "\n", st->sent);
        break;
    case 1:
        fprintf(f, ",reason=\"queue_full\"} %" PRIu64 "\n", st->dropped_full);
        fprintf(f, "%s{endpoint=", rw_names[p->what]);
        label(f, st->name);
        fprintf(f, ",reason=\"rejected\"} %" PRIu64 "\n", st->dropped_rejected);
        break;
    case 2:
        fprintf(f, "} %" PRIu64 "\n", st->retries);
        break;
    case 3:
        fprintf(f, "} %" PRIu64 "\n", st->requests);
        break;
    case 4:
        fprintf(f, "} %zu\n", st->queued);
        break;
    case 5:
        fprintf(f, "} %zu\n", st->series);
        break;
    case 6:
        fprintf(f, "} %.3f\n", (double)st->last_success_ms / 1000.0);
        break;
    default:
        fprintf(f, "} %.3f\n", st->lag_s);
        break;
    }
}

static void render_rwrite(FILE *f, const kvl_rwrite_t *rw)
{
    static const char *const heads[][2] = {
        {"counter", "Samples a remote-write endpoint accepted."},
        {"counter", "Samples dropped: queue_full (the oldest, pushed out), rejected (refused "
                    "by the receiver with a 4xx)."},
        {"counter", "Requests that failed for a reason that can pass (network, 5xx, 429), "
                    "sent again after a backoff."},
        {"counter", "Requests the endpoint accepted."},
        {"gauge", "Samples waiting: queued or in a request not yet accepted."},
        {"gauge", "Series with samples waiting."},
        {"gauge", "When a request was last accepted (unix seconds; 0: never)."},
        {"gauge", "Age of the oldest sample waiting (0: none waits)."},
    };
    for (int w = 0; w < (int)KVL_ARRAY_SIZE(rw_names); w++) {
        head(f, rw_names[w], heads[w][0], heads[w][1]);
        rw_pass_t p = {.f = f, .what = w};
        kvl_rwrite_each(rw, rw_line, &p);
    }
}

/* ------------------------------------------------------------------ HTTP */

typedef struct http_pass {
    FILE *f;
    int what; /* 0 requests by status, 1 the histogram */
} http_pass_t;

static void http_line(void *ctx, const kvl_http_class_stats_t *st)
{
    http_pass_t *p = ctx;
    FILE *f = p->f;
    if (p->what == 0) {
        for (size_t i = 0; i < st->n_status; i++) {
            fputs("kaaval_http_requests_total{route=", f);
            label(f, st->name);
            fprintf(f, ",code=\"%d\"} %" PRIu64 "\n", st->status[i], st->by_status[i]);
        }
        return;
    }
    for (size_t b = 0; b < KVL_HTTP_BUCKETS; b++) {
        fputs("kaaval_http_request_duration_seconds_bucket{route=", f);
        label(f, st->name);
        fprintf(f, ",le=\"%g\"} %" PRIu64 "\n", kvl_http_buckets_s[b], st->le[b]);
    }
    fputs("kaaval_http_request_duration_seconds_bucket{route=", f);
    label(f, st->name);
    fprintf(f, ",le=\"+Inf\"} %" PRIu64 "\n", st->count);
    fputs("kaaval_http_request_duration_seconds_sum{route=", f);
    label(f, st->name);
    fprintf(f, "} %.9f\n", st->sum_s);
    fputs("kaaval_http_request_duration_seconds_count{route=", f);
    label(f, st->name);
    fprintf(f, "} %" PRIu64 "\n", st->count);
}

/* ------------------------------------------------------------------ agents */

typedef struct agent_count {
    uint64_t known, lost;
} agent_count_t;

static void count_agent(void *ctx, const kvl_ingest_agent_t *a)
{
    agent_count_t *c = ctx;
    c->known++;
    c->lost += a->lost;
}

/* ------------------------------------------------------------------ the process */

/* Resident set size in bytes from /proc/self/statm (0 when unreadable). */
static double resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, rss = 0;
    if (f != NULL) {
        if (fscanf(f, "%llu %llu", &size, &rss) != 2) {
            rss = 0;
        }
        fclose(f);
    }
    return (double)rss * (double)sysconf(_SC_PAGESIZE);
}

/* Open file descriptors, the entries of /proc/self/fd (the listing's own one not counted);
 * -1 when unreadable. */
static long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) {
        return -1;
    }
    long n = 0;
    const struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n > 0 ? n - 1 : 0;
}

static long max_fds(void)
{
    long n = sysconf(_SC_OPEN_MAX);
    return n > 0 ? n : 0;
}

/* ------------------------------------------------------------------ rendering */

static void render_ingest(FILE *f, const kvl_metrics_src_t *src)
{
    kvl_ingest_stats_t st;
    kvl_ingest_stats(src->ingest, &st);
    one(f, "kaaval_batches_journaled_total", "counter",
        "Batches received and written to the journal (acknowledged once on disk).",
        (double)st.batches_journaled);
    one(f, "kaaval_samples_journaled_total", "counter", "Values in the batches journaled.",
        (double)st.samples_journaled);
    one(f, "kaaval_batches_applied_total", "counter",
        "Batches applied by every sink (replayed ones included).", (double)st.batches_written);
    one(f, "kaaval_samples_applied_total", "counter",
        "Values written into the archives (store updates).", (double)st.samples_written);
    one(f, "kaaval_batches_duplicate_total", "counter",
        "Batches acknowledged again without being applied.", (double)st.batches_duplicate);
    one(f, "kaaval_store_update_errors_total", "counter", "Archive updates that failed for good.",
        (double)st.updates_failed);
    one(f, "kaaval_store_updates_stale_total", "counter",
        "Archive updates refused as older than the archive's last.", (double)st.updates_stale);
    one(f, "kaaval_store_updates_retried_total", "counter",
        "Archive updates that failed for a reason that can pass (retried).",
        (double)st.updates_retried);
    one(f, "kaaval_journal_bytes", "gauge", "Size of the journal's segment files.",
        (double)st.journal_bytes);
    one(f, "kaaval_journal_segments", "gauge", "Segment files of the journal.",
        (double)st.journal_segments);
    one(f, "kaaval_journal_backlog_bytes", "gauge", "Journal bytes appended, not yet on disk.",
        (double)st.journal_backlog_bytes);
    one(f, "kaaval_journal_commits_total", "counter", "Group commits of the journal.",
        (double)st.journal_commits);
    one(f, "kaaval_apply_lag_last_seconds", "gauge",
        "From the last applied batch's journaling (its acknowledgement) to its application.",
        (double)st.apply_lag_last_ms / 1000.0);
    head(f, "kaaval_apply_lag_seconds", "histogram",
         "From a batch's journaling (its acknowledgement) to its application.");
    for (int b = 0; b < KVL_APPLY_LAG_BUCKETS; b++) {
        fprintf(f, "kaaval_apply_lag_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                kvl_apply_lag_buckets_s[b], st.apply_lag_le[b]);
    }
    fprintf(f, "kaaval_apply_lag_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", st.apply_lag_count);
    fprintf(f, "kaaval_apply_lag_seconds_sum %.3f\nkaaval_apply_lag_seconds_count %" PRIu64 "\n",
            (double)st.apply_lag_sum_ms / 1000.0, st.apply_lag_count);
    head(f, "kaaval_sample_age_applied_seconds", "histogram",
         "From a group of samples' time (the agent's clock) to its batch's application.");
    for (int b = 0; b < KVL_SAMPLE_AGE_BUCKETS; b++) {
        fprintf(f, "kaaval_sample_age_applied_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                kvl_sample_age_buckets_s[b], st.sample_age_le[b]);
    }
    fprintf(f, "kaaval_sample_age_applied_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n",
            st.sample_age_count);
    fprintf(f,
            "kaaval_sample_age_applied_seconds_sum %.3f\n"
            "kaaval_sample_age_applied_seconds_count %" PRIu64 "\n",
            (double)st.sample_age_sum_ms / 1000.0, st.sample_age_count);
    one(f, "kaaval_apply_paused_agents", "gauge",
        "Agents whose applying is paused by a failure that can pass.",
        (double)st.apply_paused_agents);
    one(f, "kaaval_connections_open", "gauge", "Agent connections (TLS or not) open now.",
        (double)st.connections_open);
    one(f, "kaaval_connections_accepted_total", "counter", "Agent connections accepted.",
        (double)st.connections);
    one(f, "kaaval_connections_refused_total", "counter",
        "Hellos refused: max_connections agents connected.", (double)st.connections_refused);
    one(f, "kaaval_protocol_errors_total", "counter", "Agent connections closed for an error.",
        (double)st.protocol_errors);
    one(f, "kaaval_agents_connected", "gauge", "Agents connected past their Hello.",
        (double)st.agents_connected);
    agent_count_t ac = {0};
    kvl_ingest_agents(src->ingest, count_agent, &ac);
    one(f, "kaaval_agents_known", "gauge", "Agents the collector holds state for.",
        (double)ac.known);
    one(f, "kaaval_agents_lost", "gauge", "Agents declared lost now (lost_after).",
        (double)ac.lost);
    one(f, "kaaval_agents_lost_total", "counter", "agent_lost events raised.",
        (double)st.agents_lost);
    one(f, "kaaval_agents_back_total", "counter", "agent_back events raised.",
        (double)st.agents_back);
}

int kvl_metrics_render(const kvl_metrics_src_t *src, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);
    if (f == NULL) {
        return KVL_ENOMEM;
    }
    head(f, "kaaval_build_info", "gauge", "The collector's version and id (always 1).");
    fputs("kaaval_build_info{version=", f);
    label(f, KVL_VERSION);
    fputs(",collector=", f);
    label(f, src->collector_id);
    fputs("} 1\n", f);
    if (src->loop != NULL) {
        one(f, "kaaval_now_seconds", "gauge", "The collector's clock (unix seconds).",
            (double)kvl_now_ms() / 1000.0);
    }
    if (src->ingest != NULL) {
        render_ingest(f, src);
    }
    if (src->store != NULL) {
        one(f, "kaaval_store_busy", "gauge", "Archive update jobs in flight.",
            (double)kvl_store_busy(src->store));
        kvl_store_rrdcached_stats_t rc;
        kvl_store_rrdcached(src->store, &rc);
        if (rc.enabled) {
            one(f, "kaaval_rrdcached_up", "gauge",
                "1 when the last attempt reached rrdcached (rrdcached mode).",
                rc.connected ? 1.0 : 0.0);
            one(f, "kaaval_rrdcached_pending_updates", "gauge",
                "Updates rrdcached took and has not been made to write yet (kept to resend).",
                (double)rc.pending_updates);
            one(f, "kaaval_rrdcached_pending_bytes", "gauge", "Memory those updates take, bytes.",
                (double)rc.pending_bytes);
            one(f, "kaaval_rrdcached_connects_total", "counter",
                "Connections made to rrdcached: the first and one after each loss.",
                (double)rc.recoveries);
            one(f, "kaaval_rrdcached_resent_total", "counter",
                "Updates sent again because rrdcached went away before writing them.",
                (double)rc.replayed);
            one(f, "kaaval_rrdcached_failures_total", "counter",
                "Archive jobs put off because rrdcached could not be reached.",
                (double)rc.failures);
            one(f, "kaaval_rrdcached_checkpoints_total", "counter",
                "Checkpoints: rrdcached made to write every file it held updates of.",
                (double)rc.checkpoints);
        }
    }
    if (src->book != NULL) {
        uint64_t by_sev[SEVERITIES] = {0};
        kvl_book_each_active(src->book, count_firing, by_sev);
        head(f, "kaaval_alerts_firing", "gauge", "Alerts firing now, by severity.");
        for (int s = 0; s < SEVERITIES; s++) {
            fprintf(f, "kaaval_alerts_firing{severity=\"%s\"} %" PRIu64 "\n",
                    kvl_rules_severity_name(s), by_sev[s]);
        }
        kvl_book_stats_t bs;
        kvl_book_stats(src->book, &bs);
        one(f, "kaaval_alerts_active", "gauge", "Alerts pending or firing.", (double)bs.active);
        one(f, "kaaval_alert_notifications_total", "counter",
            "Notifications the alert book handed to the notifiers.", (double)bs.notifications);
    }
    if (src->notify != NULL) {
        static const char *const heads[][3] = {
            {"kaaval_notifications_sent_total", "counter", "Notifications delivered."},
            {"kaaval_notifications_failed_total", "counter", "Failed delivery attempts."},
            {"kaaval_notifications_dropped_total", "counter",
             "Notifications given up (outbox full, or failed for good)."},
            {"kaaval_notifications_waiting", "gauge", "Notifications in the outbox now."},
        };
        for (int w = 0; w < 4; w++) {
            head(f, heads[w][0], heads[w][1], heads[w][2]);
            rcv_pass_t p = {.f = f, .what = w};
            kvl_notify_receiver_stats(src->notify, receiver_line, &p);
        }
    }
    if (src->rwrite != NULL) {
        render_rwrite(f, src->rwrite);
    }
    if (src->http != NULL) {
        head(f, "kaaval_http_requests_total", "counter",
             "HTTP requests answered, by route class and status code.");
        http_pass_t p = {.f = f, .what = 0};
        kvl_http_stats(src->http, http_line, &p);
        head(f, "kaaval_http_request_duration_seconds", "histogram",
             "HTTP request time, from the request line to the response queued.");
        p.what = 1;
        kvl_http_stats(src->http, http_line, &p);
        one(f, "kaaval_http_queued", "gauge", "HTTP requests waiting for the collector's loop.",
            (double)kvl_http_queued(src->http));
    }
    if (src->inventory != NULL) {
        kvl_inventory_stats_t is;
        kvl_inventory_stats(src->inventory, &is);
        one(f, "kaaval_inventory_agents", "gauge", "Agents in the inventory.", (double)is.agents);
        one(f, "kaaval_inventory_devices", "gauge", "Devices in the inventory.",
            (double)is.devices);
        one(f, "kaaval_inventory_interfaces", "gauge", "Interfaces in the inventory.",
            (double)is.interfaces);
        one(f, "kaaval_inventory_retired", "gauge", "Devices and interfaces marked retired.",
            (double)is.retired);
    }
    if (src->latest != NULL) {
        kvl_latest_stats_t ls;
        kvl_latest_stats(src->latest, &ls);
        one(f, "kaaval_latest_series", "gauge", "Series whose last value the collector keeps.",
            (double)ls.series);
        one(f, "kaaval_latest_bytes", "gauge", "Memory held by the latest values.",
            (double)ls.bytes);
    }
    one(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
        resident_bytes());
    long fds = open_fds();
    if (fds >= 0) {
        one(f, "process_open_fds", "gauge", "Number of open file descriptors.", (double)fds);
    }
    one(f, "process_max_fds", "gauge", "Maximum number of open file descriptors.",
        (double)max_fds());
    if (fclose(f) != 0 || text == NULL) {
        free(text);
        return KVL_ENOMEM;
    }
    *out = text;
    *len = n;
    return 0;
}

static void on_metrics(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    const kvl_metrics_src_t *src = ctx;
    if (req->n_segs != 0) {
        kvl_http_error(resp, 404, "no such path: %s", req->path);
        return;
    }
    char *text;
    size_t len;
    if (kvl_metrics_render(src, &text, &len) != 0) {
        kvl_http_error(resp, 500, "out of memory");
        return;
    }
    resp->bytes = text;
    resp->len = len;
    resp->type = "text/plain; version=0.0.4; charset=utf-8";
}

int kvl_metrics_register(kvl_http_t *http, const kvl_metrics_src_t *src)
{
    return kvl_http_route(http, "GET", "/metrics", KVL_ROLE_VIEWER, on_metrics, (void *)src);
}
