/*
 * notify_syslog.c — the syslog receiver: one line per alert through syslog(3), with the
 * receiver's facility and ident; the priority follows the severity (critical: crit,
 * major: err, minor and warning: warning, info: info) and a resolution is a notice:
 *   FIRING device_down severity=critical site=DHQ-Kollam device=rtr1 interface=- since=...
 *   fingerprint=... summary="..."
 * Delivered once the lines are handed to syslog (it does not confirm).
 */
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "kvl.h"
#include "notify.h"
#include "notify_config.h"
#include "notify_int.h"
#include "rules.h"

static const int facilities[] = {LOG_USER,   LOG_DAEMON, LOG_LOCAL0, LOG_LOCAL1, LOG_LOCAL2,
                                 LOG_LOCAL3, LOG_LOCAL4, LOG_LOCAL5, LOG_LOCAL6, LOG_LOCAL7};

static int priority(const kvl_alert_t *a)
{
    if (a->status == KVL_ALERT_RESOLVED) {
        return LOG_NOTICE;
    }
    switch (a->severity) {
    case KVL_RULE_SEV_CRITICAL:
        return LOG_CRIT;
    case KVL_RULE_SEV_MAJOR:
        return LOG_ERR;
    case KVL_RULE_SEV_MINOR:
    case KVL_RULE_SEV_WARNING:
        return LOG_WARNING;
    default:
        return LOG_INFO;
    }
}

static const char *or_dash(const char *s)
{
    return s && s[0] ? s : "-";
}

static int syslog_send(kvl_notify_rcv_t *r, const kvl_notify_msg_t *m, char *why, size_t whylen)
{
    KVL_UNUSED(why);
    KVL_UNUSED(whylen);
    int fac = facilities[r->cfg->facility];
    openlog(r->cfg->ident, LOG_PID | LOG_NDELAY, fac);
    for (size_t i = 0; i < m->n_alerts; i++) {
        const kvl_alert_t *a = m->alerts[i];
        char since[40];
        kvl_alert_time_format(a->starts_at_ms, since, sizeof(since));
        syslog(fac | priority(a),
               "%s %s severity=%s site=%s device=%s interface=%s since=%s fingerprint=%016llx "
               "summary=\"%s\"",
               a->status == KVL_ALERT_RESOLVED ? "RESOLVED" : "FIRING", or_dash(a->rule),
               kvl_rules_severity_name(a->severity), or_dash(kvl_alert_label(a, "site")),
               or_dash(kvl_alert_label(a, "device")), or_dash(kvl_alert_label(a, "interface")),
               since, (unsigned long long)a->fingerprint, a->summary ? a->summary : "");
    }
    closelog();
    return 1;
}

const kvl_notify_ops_t kvl_notify_syslog_ops = {
    .send = syslog_send,
};
