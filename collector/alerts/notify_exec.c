/*
 * notify_exec.c — the exec receiver: runs `command` (uv_spawn, no shell) with the
 * notification's JSON on its standard input and the alert in environment variables:
 *   KAAVAL_RECEIVER, KAAVAL_GROUP_KEY, KAAVAL_STATUS (firing|resolved), KAAVAL_ALERTS (how
 *   many), KAAVAL_REPEAT and KAAVAL_ESCALATED (true|false), and of the first alert: KAAVAL_RULE,
 * KAAVAL_SEVERITY, KAAVAL_SITE, KAAVAL_DEVICE, KAAVAL_INTERFACE, KAAVAL_TARGET, KAAVAL_SUMMARY,
 * KAAVAL_DESCRIPTION, KAAVAL_VALUE, KAAVAL_THRESHOLD, KAAVAL_STARTS_AT, KAAVAL_ENDS_AT, KAAVAL_URL,
 *   KAAVAL_FINGERPRINT (empty when not known); PATH=/usr/local/bin:/usr/bin:/bin.
 * Its standard output is discarded, its standard error goes to the collector's. It is
 * killed (SIGKILL) after `timeout`. Success: exit status 0.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"
#include "notify.h"
#include "notify_config.h"
#include "notify_int.h"
#include "rules.h"

#define N_ENV 24

typedef struct run {
    uv_process_t proc;
    uv_pipe_t in;
    uv_write_t wr;
    uv_timer_t timer;
    bool running;
    bool timed_out;
    unsigned run_handles; /* the process and pipe handles of the last run not yet closed */
    char *stdin_text;     /* until its write ends */
    char *env_buf[N_ENV + 1];
} run_t;

static void on_closed(uv_handle_t *h)
{
    kvl_notify_closed(h->data);
}

static void on_run_closed(uv_handle_t *h)
{
    kvl_notify_rcv_t *r = h->data;
    run_t *x = r->priv;
    KVL_ASSERT(x->run_handles > 0);
    x->run_handles--;
    kvl_notify_closed(r);
}

static void close_handle(kvl_notify_rcv_t *r, uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        run_t *x = r->priv;
        bool run = h != (uv_handle_t *)&x->timer;
        h->data = r;
        kvl_notify_closing(r);
        uv_close(h, run ? on_run_closed : on_closed);
    }
}

static void free_env(run_t *x)
{
    for (size_t i = 0; i < N_ENV && x->env_buf[i]; i++) {
        free(x->env_buf[i]);
        x->env_buf[i] = NULL;
    }
}

static void on_write(uv_write_t *w, int status)
{
    KVL_UNUSED(status); /* a program that does not read its input is its own business */
    kvl_notify_rcv_t *r = w->data;
    run_t *x = r->priv;
    free(x->stdin_text);
    x->stdin_text = NULL;
    close_handle(r, (uv_handle_t *)&x->in);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    kvl_notify_rcv_t *r = p->data;
    run_t *x = r->priv;
    x->running = false;
    uv_timer_stop(&x->timer);
    close_handle(r, (uv_handle_t *)p);
    char why[160] = "";
    if (x->timed_out) {
        snprintf(why, sizeof(why), "%s killed after %lld ms", r->cfg->command[0],
                 (long long)r->cfg->timeout_ms);
    } else if (sig != 0) {
        snprintf(why, sizeof(why), "%s ended by signal %d", r->cfg->command[0], sig);
    } else if (status != 0) {
        snprintf(why, sizeof(why), "%s exited with status %lld", r->cfg->command[0],
                 (long long)status);
    }
    if (!r->closing) {
        kvl_notify_rcv_done(r, why[0] == '\0', why);
    }
}

static void on_timeout(uv_timer_t *t)
{
    kvl_notify_rcv_t *r = t->data;
    run_t *x = r->priv;
    if (x->running) {
        x->timed_out = true;
        uv_process_kill(&x->proc, SIGKILL);
    }
}

static int add_env(run_t *x, size_t *k, const char *key, const char *v)
{
    if (*k >= N_ENV) {
        return KVL_EINVAL;
    }
    size_t len = strlen(key) + strlen(v ? v : "") + 2;
    char *s = malloc(len);
    if (s == NULL) {
        return KVL_ENOMEM;
    }
    snprintf(s, len, "%s=%s", key, v ? v : "");
    /* a newline inside a value stays (the program reads it as the text it is) */
    x->env_buf[(*k)++] = s;
    return 0;
}

static int build_env(kvl_notify_rcv_t *r, const kvl_notify_msg_t *m, run_t *x)
{
    const kvl_alert_t *a = m->alerts[0];
    char n_alerts[24], value[64] = "", thr[64] = "", fp[24], starts[40], ends[40] = "";
    snprintf(n_alerts, sizeof(n_alerts), "%zu", m->n_alerts);
    if (a->has_value) {
        snprintf(value, sizeof(value), "%.6g", a->value);
    }
    if (a->has_threshold) {
        snprintf(thr, sizeof(thr), "%.6g", a->threshold);
    }
    snprintf(fp, sizeof(fp), "%016llx", (unsigned long long)a->fingerprint);
    kvl_alert_time_format(a->starts_at_ms, starts, sizeof(starts));
    if (a->status == KVL_ALERT_RESOLVED && a->ends_at_ms > 0) {
        kvl_alert_time_format(a->ends_at_ms, ends, sizeof(ends));
    }
    size_t k = 0;
    int rc = 0;
    rc |= add_env(x, &k, "PATH", "/usr/local/bin:/usr/bin:/bin");
    rc |= add_env(x, &k, "KAAVAL_RECEIVER", r->cfg->name);
    rc |= add_env(x, &k, "KAAVAL_GROUP_KEY", m->group_key);
    rc |= add_env(x, &k, "KAAVAL_STATUS", m->status);
    rc |= add_env(x, &k, "KAAVAL_ALERTS", n_alerts);
    rc |= add_env(x, &k, "KAAVAL_REPEAT",
                  json_is_true(json_object_get(m->json, "repeat")) ? "true" : "false");
    rc |= add_env(x, &k, "KAAVAL_ESCALATED",
                  json_is_true(json_object_get(m->json, "escalated")) ? "true" : "false");
    rc |= add_env(x, &k, "KAAVAL_RULE", a->rule);
    rc |= add_env(x, &k, "KAAVAL_SEVERITY", kvl_rules_severity_name(a->severity));
    rc |= add_env(x, &k, "KAAVAL_SITE", kvl_notify_label(a, "site"));
    rc |= add_env(x, &k, "KAAVAL_DEVICE", kvl_notify_label(a, "device"));
    rc |= add_env(x, &k, "KAAVAL_INTERFACE", kvl_notify_label(a, "interface"));
    rc |= add_env(x, &k, "KAAVAL_TARGET", kvl_notify_label(a, "target"));
    rc |= add_env(x, &k, "KAAVAL_SUMMARY", a->summary);
    rc |= add_env(x, &k, "KAAVAL_DESCRIPTION", a->description);
    rc |= add_env(x, &k, "KAAVAL_VALUE", value);
    rc |= add_env(x, &k, "KAAVAL_THRESHOLD", thr);
    rc |= add_env(x, &k, "KAAVAL_STARTS_AT", starts);
    rc |= add_env(x, &k, "KAAVAL_ENDS_AT", ends);
    rc |= add_env(x, &k, "KAAVAL_URL", a->url);
    rc |= add_env(x, &k, "KAAVAL_FINGERPRINT", fp);
    x->env_buf[k] = NULL;
    return rc;
}

static int exec_send(kvl_notify_rcv_t *r, const kvl_notify_msg_t *m, char *why, size_t whylen)
{
    run_t *x = r->priv;
    KVL_ASSERT(!x->running);
    /* the handles of the previous run are closed (their close callbacks may still come) */
    free_env(x);
    free(x->stdin_text);
    x->stdin_text = json_dumps(m->json, JSON_COMPACT);
    if (x->stdin_text == NULL || build_env(r, m, x) != 0) {
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    /* the handles of the last run must have closed first (they close within one loop
     * iteration of its end, before the next delivery's timer) */
    if (x->run_handles > 0) {
        snprintf(why, whylen, "the previous run is still closing");
        return KVL_EINVAL;
    }
    uv_pipe_init(r->loop, &x->in, 0);
    x->in.data = r;
    x->run_handles = 2; /* the pipe now, the process from uv_spawn (closed even if it fails) */
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_CREATE_PIPE | UV_READABLE_PIPE, .data.stream = (uv_stream_t *)&x->in},
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = 2},
    };
    uv_process_options_t o = {
        .exit_cb = on_exit_cb,
        .file = r->cfg->command[0],
        .args = r->cfg->command,
        .env = x->env_buf,
        .stdio_count = 3,
        .stdio = stdio,
    };
    x->timed_out = false;
    x->proc.data = r;
    int rc = uv_spawn(r->loop, &x->proc, &o);
    if (rc != 0) {
        snprintf(why, whylen, "cannot run %s: %s", r->cfg->command[0], uv_strerror(rc));
        close_handle(r, (uv_handle_t *)&x->in);
        close_handle(r, (uv_handle_t *)&x->proc);
        return KVL_EIO;
    }
    x->running = true;
    uv_buf_t b = uv_buf_init(x->stdin_text, (unsigned)strlen(x->stdin_text));
    x->wr.data = r;
    if (uv_write(&x->wr, (uv_stream_t *)&x->in, &b, 1, on_write) != 0) {
        close_handle(r, (uv_handle_t *)&x->in);
    }
    uv_timer_start(&x->timer, on_timeout, (uint64_t)r->cfg->timeout_ms, 0);
    return 0;
}

static int exec_open(kvl_notify_rcv_t *r, char *why, size_t whylen)
{
    run_t *x = calloc(1, sizeof(*x));
    if (x == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    r->priv = x;
    uv_timer_init(r->loop, &x->timer);
    x->timer.data = r;
    return 0;
}

static void exec_close(kvl_notify_rcv_t *r)
{
    run_t *x = r->priv;
    if (x == NULL) {
        return;
    }
    if (x->running) {
        uv_process_kill(&x->proc, SIGKILL);
        close_handle(r, (uv_handle_t *)&x->proc);
        close_handle(r, (uv_handle_t *)&x->in);
    }
    close_handle(r, (uv_handle_t *)&x->timer);
    free_env(x);
    /* stdin_text: freed by the write's callback (cancelled by the close) or here */
    if (!x->running) {
        free(x->stdin_text);
        x->stdin_text = NULL;
    }
}

const kvl_notify_ops_t kvl_notify_exec_ops = {
    .open = exec_open,
    .send = exec_send,
    .close = exec_close,
};
