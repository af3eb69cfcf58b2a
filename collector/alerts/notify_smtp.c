/*
 * notify_smtp.c — the e-mail receiver: SMTP through libcurl (smtp:// or smtps://; STARTTLS
 * by `use_ssl`: try or all; `user`/`password` when the server wants a login). One message
 * per notification, multipart/alternative with a plain-text and an HTML part, and a
 * subject a phone shows whole (at most 78 characters):
 *   [FIRING:2] DHQ-Kollam: device_down rtr1, rtr2
 *   [RESOLVED:1] DHQ-Kollam: link_loss rtr1 ge-0/0/1
 * Success: the server accepted the message for at least one recipient (CURLE_OK).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "kvl.h"
#include "notify.h"
#include "notify_config.h"
#include "notify_int.h"
#include "rules.h"

#define SUBJECT_MAX 78

typedef struct upload {
    const char *p;
    size_t len, pos;
    struct curl_slist *rcpt; /* the recipients of the transfer under way */
} upload_t;

/* Appends s (at most max bytes, never half a UTF-8 character) with every control character
 * (CR, LF, ...) made a space: no header injection. */
static void put_clean(kvl_buf_t *b, const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
            n--;
        }
    }
    for (size_t i = 0; i < n; i++) {
        char c = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
        kvl_buf_append(b, &c, 1);
    }
}

static void put(kvl_buf_t *b, const char *s)
{
    kvl_buf_append(b, s, strlen(s));
}

static void putf(kvl_buf_t *b, const char *fmt, ...) KVL_PRINTF(2, 3);
static void putf(kvl_buf_t *b, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0) {
        kvl_buf_append(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
    }
}

/* The value all alerts share for key, or NULL. */
static const char *common_label(const kvl_notify_msg_t *m, const char *key)
{
    const char *v = kvl_alert_label(m->alerts[0], key);
    for (size_t i = 1; v && i < m->n_alerts; i++) {
        const char *w = kvl_alert_label(m->alerts[i], key);
        if (w == NULL || strcmp(v, w) != 0) {
            return NULL;
        }
    }
    return v;
}

/* Cuts s to at most max bytes at a character boundary (UTF-8), "..." at the end when cut. */
static void cut_utf8(char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max) {
        return;
    }
    size_t at = max - 3;
    while (at > 0 && ((unsigned char)s[at] & 0xc0) == 0x80) {
        at--;
    }
    memcpy(s + at, "...", 4);
}

/* The subject line (see above), at most SUBJECT_MAX bytes, no control characters. */
size_t kvl_notify_smtp_subject(const kvl_notify_msg_t *m, char *out, size_t outlen)
{
    kvl_buf_t b;
    memset(&b, 0, sizeof(b));
    bool firing = m->n_firing > 0;
    putf(&b, "[%s:%zu] ", firing ? "FIRING" : "RESOLVED", firing ? m->n_firing : m->n_alerts);
    const char *site = common_label(m, "site");
    if (site) {
        put_clean(&b, site, 64);
        put(&b, ": ");
    }
    const char *rule = common_label(m, "alertname");
    put_clean(&b, rule ? rule : m->alerts[0]->rule, 64);
    for (size_t i = 0; i < m->n_alerts && b.len < 200; i++) {
        const kvl_alert_t *a = m->alerts[i];
        if (firing && a->status == KVL_ALERT_RESOLVED) {
            continue;
        }
        const char *what = kvl_alert_label(a, "device");
        what = what ? what : kvl_alert_label(a, "target");
        what = what ? what : kvl_alert_label(a, "agent");
        if (what) {
            put(&b, i == 0 ? " " : ", ");
            put_clean(&b, what, 64);
            const char *ifn = kvl_alert_label(a, "interface");
            if (ifn) {
                put(&b, " ");
                put_clean(&b, ifn, 64);
            }
        }
    }
    kvl_buf_append(&b, "", 1);
    char s[512];
    snprintf(s, sizeof(s), "%s", b.data ? (char *)b.data : "");
    kvl_buf_free(&b);
    cut_utf8(s, SUBJECT_MAX);
    return (size_t)snprintf(out, outlen, "%s", s);
}

static void html_escaped(kvl_buf_t *b, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '<':
            put(b, "&lt;");
            break;
        case '>':
            put(b, "&gt;");
            break;
        case '&':
            put(b, "&amp;");
            break;
        case '"':
            put(b, "&quot;");
            break;
        default:
            kvl_buf_append(b, s, 1);
        }
    }
}

/* Header values with non-ASCII bytes are sent as one RFC 2047 encoded word per chunk. */
static void put_header_text(kvl_buf_t *b, const char *s)
{
    bool ascii = true;
    for (const char *p = s; *p; p++) {
        ascii = ascii && (unsigned char)*p < 0x80;
    }
    if (ascii) {
        put_clean(b, s, 4096);
        return;
    }
    static const char hex[] = "0123456789ABCDEF";
    put(b, "=?UTF-8?Q?");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p)) {
            kvl_buf_append(b, p, 1);
        } else if (*p == ' ') {
            put(b, "_");
        } else {
            char e[3] = {'=', hex[*p >> 4], hex[*p & 15]};
            kvl_buf_append(b, e, 3);
        }
    }
    put(b, "?=");
}

static void alert_text(kvl_buf_t *b, const kvl_alert_t *a)
{
    char t[40];
    kvl_alert_time_format(a->starts_at_ms, t, sizeof(t));
    putf(b, "%s %s (%s)\n", a->status == KVL_ALERT_RESOLVED ? "RESOLVED" : "FIRING",
         a->rule ? a->rule : "", kvl_rules_severity_name(a->severity));
    if (a->summary) {
        put(b, "  ");
        put(b, a->summary);
        put(b, "\n");
    }
    if (a->description) {
        put(b, "  ");
        put(b, a->description);
        put(b, "\n");
    }
    for (size_t i = 0; i < a->n_labels; i++) {
        putf(b, "  %s: %s\n", a->labels[i].key, a->labels[i].value);
    }
    if (a->has_value) {
        putf(b, "  value: %.6g", a->value);
        if (a->has_threshold) {
            putf(b, " (threshold %.6g)", a->threshold);
        }
        put(b, "\n");
    }
    putf(b, "  since: %s\n", t);
    if (a->status == KVL_ALERT_RESOLVED && a->ends_at_ms > 0) {
        kvl_alert_time_format(a->ends_at_ms, t, sizeof(t));
        putf(b, "  ended: %s\n", t);
    }
    if (a->url) {
        putf(b, "  graph: %s\n", a->url);
    }
    put(b, "\n");
}

static void alert_html(kvl_buf_t *b, const kvl_alert_t *a)
{
    char t[40];
    kvl_alert_time_format(a->starts_at_ms, t, sizeof(t));
    put(b, "<h3>");
    put(b, a->status == KVL_ALERT_RESOLVED ? "RESOLVED " : "FIRING ");
    html_escaped(b, a->rule);
    put(b, " (");
    put(b, kvl_rules_severity_name(a->severity));
    put(b, ")</h3>\n<p>");
    html_escaped(b, a->summary);
    if (a->description) {
        put(b, "<br>");
        html_escaped(b, a->description);
    }
    put(b, "</p>\n<table>\n");
    for (size_t i = 0; i < a->n_labels; i++) {
        put(b, "<tr><td>");
        html_escaped(b, a->labels[i].key);
        put(b, "</td><td>");
        html_escaped(b, a->labels[i].value);
        put(b, "</td></tr>\n");
    }
    putf(b, "<tr><td>since</td><td>%s</td></tr>\n</table>\n", t);
    if (a->url) {
        put(b, "<p><a href=\"");
        html_escaped(b, a->url);
        put(b, "\">graph</a></p>\n");
    }
}

/* Lines of a part end in CRLF, as SMTP wants; a lone "." line is not possible (libcurl
 * dot-stuffs the upload). */
static void put_crlf(kvl_buf_t *b, const kvl_buf_t *text)
{
    for (size_t i = 0; i < text->len; i++) {
        char c = (char)text->data[i];
        if (c == '\n') {
            put(b, "\r\n");
        } else if (c != '\r') {
            kvl_buf_append(b, &c, 1);
        }
    }
}

static char *message(const kvl_notify_rcv_t *r, const kvl_notify_msg_t *m, size_t *len)
{
    kvl_buf_t b, text, html;
    memset(&b, 0, sizeof(b));
    memset(&text, 0, sizeof(text));
    memset(&html, 0, sizeof(html));
    char subject[SUBJECT_MAX + 8], date[64], boundary[64], host[128] = "kaaval";
    kvl_notify_smtp_subject(m, subject, sizeof(subject));
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    gethostname(host, sizeof(host) - 1);
    snprintf(boundary, sizeof(boundary), "kaaval-%lld-%d", (long long)now, rand());
    putf(&b, "Date: %s\r\n", date);
    put(&b, "From: ");
    put_clean(&b, r->cfg->from, 512);
    put(&b, "\r\nTo: ");
    for (size_t i = 0; i < r->cfg->n_to; i++) {
        put(&b, i ? ", " : "");
        put_clean(&b, r->cfg->to[i], 512);
    }
    put(&b, "\r\nSubject: ");
    put_header_text(&b, subject);
    putf(&b, "\r\nMessage-ID: <%lld.%d.kaaval@", (long long)now, rand());
    put_clean(&b, host, sizeof(host));
    put(&b, ">\r\nMIME-Version: 1.0\r\n");
    putf(&b, "Content-Type: multipart/alternative; boundary=\"%s\"\r\n\r\n", boundary);
    for (size_t i = 0; i < m->n_alerts; i++) {
        alert_text(&text, m->alerts[i]);
        alert_html(&html, m->alerts[i]);
    }
    putf(&b,
         "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n"
         "Content-Transfer-Encoding: 8bit\r\n\r\n",
         boundary);
    put_crlf(&b, &text);
    putf(&b,
         "\r\n--%s\r\nContent-Type: text/html; charset=utf-8\r\n"
         "Content-Transfer-Encoding: 8bit\r\n\r\n<html><body>\r\n",
         boundary);
    put_crlf(&b, &html);
    putf(&b, "</body></html>\r\n--%s--\r\n", boundary);
    kvl_buf_free(&text);
    kvl_buf_free(&html);
    *len = b.len;
    kvl_buf_append(&b, "", 1);
    return (char *)b.data; /* the buffer's bytes, now the caller's */
}

static size_t on_read(char *dst, size_t size, size_t nmemb, void *userp)
{
    upload_t *u = userp;
    size_t n = size * nmemb, left = u->len - u->pos;
    n = n < left ? n : left;
    memcpy(dst, u->p + u->pos, n);
    u->pos += n;
    return n;
}

static void on_sent(kvl_notify_rcv_t *r, int result, const char *why)
{
    upload_t *u = r->priv;
    curl_slist_free_all(u->rcpt); /* the transfer is cleaned up already */
    u->rcpt = NULL;
    kvl_notify_rcv_result(r, result, why);
}

static int smtp_send(kvl_notify_rcv_t *r, const kvl_notify_msg_t *m, char *why, size_t whylen)
{
    upload_t *u = r->priv;
    size_t len = 0;
    char *msg = message(r, m, &len);
    CURL *e = curl_easy_init();
    struct curl_slist *rcpt = NULL;
    bool ok = msg != NULL && e != NULL;
    for (size_t i = 0; ok && i < r->cfg->n_to; i++) {
        struct curl_slist *t = curl_slist_append(rcpt, r->cfg->to[i]);
        ok = t != NULL;
        rcpt = t ? t : rcpt;
    }
    if (!ok) {
        free(msg);
        curl_easy_cleanup(e);
        curl_slist_free_all(rcpt);
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    *u = (upload_t){.p = msg, .len = len, .rcpt = rcpt};
    static const long ssl[] = {CURLUSESSL_NONE, CURLUSESSL_TRY, CURLUSESSL_ALL};
    curl_easy_setopt(e, CURLOPT_URL, r->cfg->url);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, r->cfg->from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(e, CURLOPT_USE_SSL, ssl[r->cfg->use_ssl]);
    if (r->cfg->user) {
        curl_easy_setopt(e, CURLOPT_USERNAME, r->cfg->user);
        curl_easy_setopt(e, CURLOPT_PASSWORD, r->cfg->password ? r->cfg->password : "");
    }
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, u);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    int rc = kvl_notify_xfer(r, e, NULL, msg, on_sent, why, whylen);
    if (rc != 0) {
        curl_slist_free_all(u->rcpt);
        u->rcpt = NULL;
    }
    return rc;
}

static int smtp_open(kvl_notify_rcv_t *r, char *why, size_t whylen)
{
    if ((r->priv = calloc(1, sizeof(upload_t))) == NULL) {
        snprintf(why, whylen, "out of memory");
        return KVL_ENOMEM;
    }
    return 0;
}

static void smtp_close(kvl_notify_rcv_t *r)
{
    upload_t *u = r->priv;
    if (u != NULL) {
        curl_slist_free_all(u->rcpt); /* notify.c has removed the transfers first */
        u->rcpt = NULL;
    }
}

const kvl_notify_ops_t kvl_notify_smtp_ops = {
    .open = smtp_open,
    .send = smtp_send,
    .close = smtp_close,
};
