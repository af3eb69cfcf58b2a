/*
 * notify_template.c — the webhook's body template (see notify_int.h): text with {{name}}
 * placeholders, each replaced by a field of the notification, JSON-string-escaped (the
 * template writes the quotes), so a template for Slack, Teams or a ticket system stays
 * valid JSON whatever the labels hold:
 *   {{receiver}} {{group_key}} {{status}} {{count}} (alerts) {{firing}} (of them firing)
 *   of the first alert: {{rule}} {{severity}} {{site}} {{device}} {{interface}} {{target}}
 *   {{summary}} {{description}} {{value}} {{threshold}} {{starts_at}} {{ends_at}} {{url}}
 *   {{fingerprint}}
 *   {{alerts}}  one line per alert: "FIRING device_down DHQ-Kollam rtr1: <summary>"
 *   {{json}}    the whole notification as JSON (not escaped: an object)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kvl.h"
#include "notify.h"
#include "notify_config.h"
#include "notify_int.h"
#include "rules.h"

static void put_escaped(kvl_buf_t *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        char e[7] = {'\\', (char)*p};
        size_t n = 2;
        switch (*p) {
        case '"':
        case '\\':
            break;
        case '\n':
            e[1] = 'n';
            break;
        case '\r':
            e[1] = 'r';
            break;
        case '\t':
            e[1] = 't';
            break;
        default:
            if (*p < 0x20 || *p == 0x7f) {
                memcpy(e, "\\u00", 4);
                e[4] = hex[*p >> 4];
                e[5] = hex[*p & 15];
                n = 6;
            } else {
                e[0] = (char)*p;
                n = 1;
            }
        }
        kvl_buf_append(b, e, n);
    }
}

static void put_number(kvl_buf_t *b, bool has, double v)
{
    char s[64] = "";
    if (has) {
        snprintf(s, sizeof(s), "%.6g", v);
    }
    kvl_buf_append(b, s, strlen(s));
}

static void put_field(kvl_buf_t *b, int which, const char *receiver, const kvl_notify_msg_t *m)
{
    const kvl_alert_t *a = m->alerts[0];
    char t[48] = "";
    switch (which) {
    case 0:
        put_escaped(b, receiver);
        return;
    case 1:
        put_escaped(b, m->group_key);
        return;
    case 2:
        put_escaped(b, m->status);
        return;
    case 3:
    case 4:
        snprintf(t, sizeof(t), "%zu", which == 3 ? m->n_alerts : m->n_firing);
        put_escaped(b, t);
        return;
    case 5:
        put_escaped(b, a->rule);
        return;
    case 6:
        put_escaped(b, kvl_rules_severity_name(a->severity));
        return;
    case 7:
    case 8:
    case 9:
    case 10:
        put_escaped(b, kvl_alert_label(a, kvl_notify_template_names[which]));
        return;
    case 11:
        put_escaped(b, a->summary);
        return;
    case 12:
        put_escaped(b, a->description);
        return;
    case 13:
        put_number(b, a->has_value, a->value);
        return;
    case 14:
        put_number(b, a->has_threshold, a->threshold);
        return;
    case 15:
        kvl_alert_time_format(a->starts_at_ms, t, sizeof(t));
        put_escaped(b, t);
        return;
    case 16:
        if (a->status == KVL_ALERT_RESOLVED && a->ends_at_ms > 0) {
            kvl_alert_time_format(a->ends_at_ms, t, sizeof(t));
        }
        put_escaped(b, t);
        return;
    case 17:
        put_escaped(b, a->url);
        return;
    case 18:
        snprintf(t, sizeof(t), "%016llx", (unsigned long long)a->fingerprint);
        put_escaped(b, t);
        return;
    case 19:
        for (size_t i = 0; i < m->n_alerts; i++) { /* piece by piece: nothing cut */
            const kvl_alert_t *x = m->alerts[i];
            const char *parts[] = {kvl_alert_label(x, "site"), kvl_alert_label(x, "device"),
                                   kvl_alert_label(x, "interface")};
            put_escaped(b, i ? "\n" : "");
            put_escaped(b, x->status == KVL_ALERT_RESOLVED ? "RESOLVED " : "FIRING ");
            put_escaped(b, x->rule);
            for (size_t k = 0; k < KVL_ARRAY_SIZE(parts); k++) {
                if (parts[k] != NULL) {
                    put_escaped(b, " ");
                    put_escaped(b, parts[k]);
                }
            }
            put_escaped(b, ": ");
            put_escaped(b, x->summary);
        }
        return;
    default: {
        char *j = json_dumps(m->json, JSON_COMPACT);
        if (j != NULL) {
            kvl_buf_append(b, j, strlen(j));
        }
        free(j);
    }
    }
}

int kvl_notify_template_render(const char *t, const char *receiver, const kvl_notify_msg_t *m,
                               kvl_buf_t *out)
{
    const char *p = t;
    for (const char *q = strstr(p, "{{"); q; q = strstr(p, "{{")) {
        size_t len;
        int which = kvl_notify_template_placeholder(q + 2, &len);
        if (which < 0) {
            return KVL_EINVAL; /* kvl_notify_template_check refused it at configuration */
        }
        kvl_buf_append(out, p, (size_t)(q - p));
        put_field(out, which, receiver, m);
        p = q + 2 + len;
    }
    kvl_buf_append(out, p, strlen(p));
    return 0;
}
