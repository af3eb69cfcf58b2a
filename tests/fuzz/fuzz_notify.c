/*
 * fuzz_notify.c — libFuzzer target for what the notifiers read: the input, made into a
 * string, is parsed as a notification record of the outbox (kvl_notify_msg_parse, the
 * alerts through kvl_alert_from_json) and as a `receivers:` document (kvl_notify_cfg_parse).
 *
 * Beyond "no crash, no leak, no sanitizer report": a record that parses gives an e-mail
 * subject of at most 78 bytes of UTF-8 without a control character (no header injection whatever
 * the labels hold), fills a JSON webhook template into valid JSON (the placeholders'
 * escaping), and parses again, alike, from its own JSON; a configuration error names
 * "f.yaml:line:column: ..."; a configuration that parses has unique, file-safe names, a
 * known type, and the keys its type requires (an SNMPv3 receiver: a user, informs, privacy
 * only with authentication, passwords of 8 characters or more). Every alert of a record
 * makes an SNMP PDU that is one whole BER TLV. The raw input is also read as an answer
 * from an SNMPv3 manager (kvl_usm_read, once without and once with a known engine): never
 * a Response (nobody can forge the HMAC), a refusal always says why. A broken rule calls
 * abort().
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "kvl.h"
#include "notify_config.h"
#include "notify_int.h"
#include "notify_snmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_record(const char *text, size_t len)
{
    kvl_notify_msg_t m;
    char why[256];
    if (kvl_notify_msg_parse(text, len, &m, why, sizeof(why)) != 0) {
        CHECK(why[0] != '\0');
        return;
    }
    CHECK(m.n_alerts >= 1 && m.alerts != NULL && m.n_firing <= m.n_alerts);
    char subject[256];
    kvl_notify_smtp_subject(&m, subject, sizeof(subject));
    CHECK(strlen(subject) <= 78);
    for (const char *p = subject; *p; p++) {
        CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
    }
    json_t *valid = json_string(subject); /* NULL when not UTF-8: a character cut in half */
    CHECK(valid != NULL);
    json_decref(valid);
    /* the webhook's template: escaped values keep a JSON template JSON */
    kvl_buf_t body = {0};
    CHECK(kvl_notify_template_render("{\"t\": \"{{alerts}} {{summary}} {{site}} {{value}}\", "
                                     "\"raw\": {{json}}}",
                                     "r", &m, &body) == 0);
    CHECK(kvl_buf_append(&body, "", 1) == 0);
    json_error_t je;
    json_t *rendered = json_loads((const char *)body.data, 0, &je);
    CHECK(rendered != NULL);
    json_decref(rendered);
    kvl_buf_free(&body);
    for (size_t i = 0; i < m.n_alerts; i++) {
        kvl_buf_t pdu = {0};
        kvl_notify_snmp_pdu(1, 2, m.alerts[i], false, &pdu);
        const uint8_t *p = pdu.data, *v;
        uint8_t tag;
        size_t vlen;
        CHECK(pdu.data != NULL && kvl_ber_get(&p, pdu.data + pdu.len, &tag, &v, &vlen) == 0);
        CHECK(tag == 0xa7 && p == pdu.data + pdu.len);
        kvl_buf_free(&pdu);
    }
    char *again = json_dumps(m.json, JSON_COMPACT);
    if (again != NULL) {
        kvl_notify_msg_t m2;
        CHECK(kvl_notify_msg_parse(again, strlen(again), &m2, why, sizeof(why)) == 0);
        CHECK(m2.n_alerts == m.n_alerts && m2.n_firing == m.n_firing);
        for (size_t i = 0; i < m.n_alerts; i++) {
            CHECK(m2.alerts[i]->fingerprint == m.alerts[i]->fingerprint);
        }
        kvl_notify_msg_clear(&m2);
        free(again);
    }
    kvl_notify_msg_clear(&m);
}

static void check_config(const char *text)
{
    char err[512] = "";
    kvl_notify_cfg_t *c = kvl_notify_cfg_parse_text("f.yaml", text, err, sizeof(err));
    if (c == NULL) {
        if (strncmp(err, "no `receivers:`", 15) != 0) {
            fuzz_check_position(err);
        }
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        const kvl_notify_receiver_cfg_t *r = &c->receivers[i];
        CHECK(r->name != NULL && r->name[0] != '\0' && r->name[0] != '.');
        CHECK(
            strspn(r->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
            strlen(r->name));
        CHECK(r->type >= KVL_RCV_ALERTMANAGER && r->type <= KVL_RCV_SNMP);
        CHECK(r->max_bytes >= 4096 && r->timeout_ms >= 100);
        switch (r->type) {
        case KVL_RCV_ALERTMANAGER:
        case KVL_RCV_WEBHOOK:
            CHECK(r->url != NULL && strncmp(r->url, "http", 4) == 0);
            break;
        case KVL_RCV_EMAIL:
            CHECK(r->url != NULL && strncmp(r->url, "smtp", 4) == 0);
            CHECK(r->from != NULL && r->to != NULL && r->n_to >= 1);
            break;
        case KVL_RCV_EXEC:
            CHECK(r->command != NULL && r->command[0][0] == '/');
            break;
        case KVL_RCV_SNMP:
            CHECK(r->address != NULL && r->community != NULL);
            CHECK(r->version == 2 || r->version == 3);
            if (r->version == 3) {
                CHECK(r->inform && r->user != NULL && r->user[0] != '\0');
                CHECK(r->priv_protocol == 0 || r->auth_protocol != 0);
                CHECK((r->auth_protocol == 0) == (r->auth_password == NULL));
                CHECK((r->priv_protocol == 0) == (r->priv_password == NULL));
                CHECK(r->auth_password == NULL || strlen(r->auth_password) >= 8);
                CHECK(r->priv_password == NULL || strlen(r->priv_password) >= 8);
            } else {
                CHECK(r->user == NULL && r->auth_protocol == 0 && r->priv_protocol == 0);
            }
            break;
        default:
            CHECK(r->ident != NULL);
        }
        for (size_t k = 0; k < i; k++) {
            CHECK(strcmp(c->receivers[k].name, r->name) != 0);
        }
    }
    kvl_notify_cfg_free(c);
}

/* The input as a manager's answer to msgID 1, read by a user with SHA and AES. */
static void check_usm(const uint8_t *data, size_t size)
{
    static kvl_usm_t *u;
    char why[256];
    if (u == NULL) {
        kvl_notify_receiver_cfg_t cfg = {.version = 3,
                                         .user = "fuzz",
                                         .auth_protocol = KVL_NOTIFY_V3_SHA1,
                                         .auth_password = "fuzz-auth",
                                         .priv_protocol = KVL_NOTIFY_V3_AES128,
                                         .priv_password = "fuzz-priv"};
        CHECK(kvl_usm_new(&cfg, &u, why, sizeof(why)) == 0);
    }
    kvl_usm_forget(u);
    for (int round = 0; round < 2; round++) {
        why[0] = '\0';
        kvl_usm_result_t r = kvl_usm_read(u, data, size, 1, 1000, why, sizeof(why));
        CHECK(r != KVL_USM_RESPONSE);
        CHECK(r != KVL_USM_REFUSED || why[0] != '\0');
        CHECK(r != KVL_USM_DISCOVERED || kvl_usm_known(u));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_usm(data, size);
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    check_record(text, size);
    check_config(text);
    free(text);
    return 0;
}
