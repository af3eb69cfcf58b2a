/*
 * kvl-notify-send.c — the notifiers driven from the command line, for
 * test_notify_receivers.sh: opens the outbox (collector/alerts/notify.h) with a
 * `receivers:` configuration, queues the notifications of the given files and runs the
 * loop until nothing waits in the outbox, or until the time is up.
 *
 *   kvl-notify-send [--timeout MS] CONFIG.yaml STATE_DIR [NOTIFICATIONS.json...]
 *
 * A notifications file is a JSON array of {"receiver", "group_key", "alerts": [alert...]},
 * each alert in kvl_alert_to_json's form (kvl_alert_from_json reads it). With no file, it
 * only delivers what the outbox still holds. Prints one line of counts at the end; exits 0
 * when everything was delivered, 3 when some still waits at the timeout (it stays in the
 * outbox for the next run), 2 on bad input.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "kvl.h"
#include "log.h"
#include "notify.h"
#include "notify_config.h"

typedef struct run {
    kvl_notify_t *n;
    uv_timer_t tick;
    uint64_t deadline;
    bool timed_out;
} run_t;

static void on_tick(uv_timer_t *t)
{
    run_t *r = t->data;
    kvl_notify_stats_t st;
    kvl_notify_stats(r->n, &st);
    bool over = uv_now(t->loop) >= r->deadline;
    if (st.waiting == 0 || over) {
        r->timed_out = st.waiting > 0;
        uv_timer_stop(t);
        uv_stop(t->loop);
    }
}

static int queue_file(kvl_notify_t *n, const char *path)
{
    json_error_t je;
    json_t *arr = json_load_file(path, 0, &je);
    if (!json_is_array(arr)) {
        fprintf(stderr, "%s:%d: %s\n", path, je.line, arr ? "expected an array" : je.text);
        json_decref(arr);
        return 2;
    }
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i), *alerts = json_object_get(o, "alerts");
        const char *receiver = json_string_value(json_object_get(o, "receiver"));
        const char *key = json_string_value(json_object_get(o, "group_key"));
        size_t na = json_array_size(alerts);
        kvl_alert_t **a = calloc(na ? na : 1, sizeof(*a));
        if (receiver == NULL || key == NULL || na == 0 || a == NULL) {
            fprintf(stderr, "%s: notification %zu needs receiver, group_key and alerts\n", path, i);
            free(a);
            rc = 2;
            break;
        }
        for (size_t k = 0; rc == 0 && k < na; k++) {
            char why[256];
            if ((a[k] = kvl_alert_from_json(json_array_get(alerts, k), why, sizeof(why))) == NULL) {
                fprintf(stderr, "%s: notification %zu, alert %zu: %s\n", path, i, k, why);
                rc = 2;
            }
        }
        if (rc == 0) {
            kvl_notification_t nt = {.receiver = receiver,
                                     .group_key = key,
                                     .alerts = (const kvl_alert_t *const *)a,
                                     .n_alerts = na};
            int q = kvl_notify_enqueue(n, &nt);
            if (q != 0) {
                fprintf(stderr, "%s: notification %zu: %s\n", path, i, kvl_strerror(q));
                rc = 2;
            }
        }
        for (size_t k = 0; k < na; k++) {
            kvl_alert_free(a[k]);
        }
        free(a);
    }
    json_decref(arr);
    return rc;
}

int main(int argc, char **argv)
{
    int64_t timeout_ms = 30000;
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "--timeout") == 0) {
        timeout_ms = atoll(argv[i + 1]);
        i += 2;
    }
    if (argc - i < 2 || timeout_ms <= 0) {
        fprintf(stderr, "usage: kvl-notify-send [--timeout MS] CONFIG.yaml STATE_DIR "
                        "[NOTIFICATIONS.json...]\n");
        return 2;
    }
    kvl_log_level = KVL_LOG_LEVEL_DEBUG;
    signal(SIGPIPE, SIG_IGN); /* as the collector: an exec program may not read its input */
    char err[512];
    kvl_notify_cfg_t *cfg = kvl_notify_cfg_load(argv[i], err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    uv_loop_t *loop = uv_default_loop();
    run_t r = {0};
    if (kvl_notify_new(loop, cfg, argv[i + 1], &r.n, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        kvl_notify_cfg_free(cfg);
        return 2;
    }
    int rc = 0;
    for (int k = i + 2; rc == 0 && k < argc; k++) {
        rc = queue_file(r.n, argv[k]);
    }
    if (rc == 0) {
        r.deadline = uv_now(loop) + (uint64_t)timeout_ms;
        uv_timer_init(loop, &r.tick);
        r.tick.data = &r;
        uv_timer_start(&r.tick, on_tick, 50, 50);
        uv_run(loop, UV_RUN_DEFAULT);
        uv_close((uv_handle_t *)&r.tick, NULL);
        rc = r.timed_out ? 3 : 0;
    }
    kvl_notify_stats_t st;
    kvl_notify_stats(r.n, &st);
    printf("kvl-notify-send: queued=%llu delivered=%llu failed=%llu dropped=%llu waiting=%llu\n",
           (unsigned long long)st.queued, (unsigned long long)st.delivered,
           (unsigned long long)st.failed_attempts, (unsigned long long)st.dropped,
           (unsigned long long)st.waiting);
    fflush(stdout);
    kvl_notify_free(r.n);
    uv_run(loop, UV_RUN_DEFAULT);
    kvl_notify_cfg_free(cfg);
    uv_loop_close(loop);
    return rc;
}
