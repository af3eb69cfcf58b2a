/*
 * notify_webhook.c — the webhook receiver: POST <url> with the notification as JSON
 * ({"receiver", "group_key", "status", "repeat", "escalated", "queued", "alerts": [...]},
 * each alert as kvl_alert_to_json), or with the receiver's `template` filled in
 * (notify_template.c) and its `content_type`; when the receiver has a `secret`, the header
 *   X-Kaaval-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes, keyed by secret>
 * plus X-Kaaval-Timestamp: <Unix seconds of this attempt>. Success: a 2xx status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hmac.h"
#include "kvl.h"
#include "notify.h"
#include "notify_config.h"
#include "notify_int.h"

static void on_sent(kvl_notify_rcv_t *r, int result, const char *why)
{
    kvl_notify_rcv_result(r, result, why);
}

static int webhook_send(kvl_notify_rcv_t *r, const kvl_notify_msg_t *m, char *why, size_t whylen)
{
    char *body = NULL;
    if (r->cfg->template_ != NULL) {
        kvl_buf_t b = {0};
        if (kvl_notify_template_render(r->cfg->template_, r->cfg->name, m, &b) == 0 &&
            kvl_buf_append(&b, "", 1) == 0) {
            body = (char *)b.data; /* the buffer's bytes, now ours */
        } else {
            kvl_buf_free(&b);
        }
    } else {
        body = json_dumps(m->json, JSON_COMPACT);
    }
    CURL *e = curl_easy_init();
    char line[512];
    snprintf(line, sizeof(line), "Content-Type: %s", r->cfg->content_type);
    struct curl_slist *h = curl_slist_append(NULL, line);
    snprintf(line, sizeof(line), "X-Kaaval-Timestamp: %lld", (long long)time(NULL));
    struct curl_slist *h2 = h ? curl_slist_append(h, line) : NULL;
    h = h2 ? h2 : h;
    bool ok = body && e && h2;
    if (ok && r->cfg->secret) {
        char hex[2 * KVL_HMAC_SHA256_LEN + 1];
        ok = kvl_hmac_sha256_hex(r->cfg->secret, strlen(r->cfg->secret), body, strlen(body), hex) ==
             0;
        snprintf(line, sizeof(line), "X-Kaaval-Signature: sha256=%s", hex);
        h2 = ok ? curl_slist_append(h, line) : NULL;
        ok = h2 != NULL;
    }
    if (!ok) {
        free(body);
        curl_easy_cleanup(e);
        curl_slist_free_all(h);
        snprintf(why, whylen, "cannot build the request (out of memory)");
        return KVL_ENOMEM;
    }
    curl_easy_setopt(e, CURLOPT_URL, r->cfg->url);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    return kvl_notify_xfer(r, e, h, body, on_sent, why, whylen);
}

const kvl_notify_ops_t kvl_notify_webhook_ops = {
    .send = webhook_send,
};
