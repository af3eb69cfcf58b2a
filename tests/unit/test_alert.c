/*
 * test_alert.c — unit tests for the alert value (collector/alerts/alert.h): labels sorted
 * and checked, the fingerprint independent of label order and sensitive to every byte and
 * boundary, copies, the JSON form round trip and its refusals, RFC 3339 times, the graph
 * URL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "alert.h"
#include "kvl.h"
#include "rules.h"

static kvl_alert_t sample(void)
{
    kvl_alert_t a = {
        .status = KVL_ALERT_FIRING,
        .severity = KVL_RULE_SEV_CRITICAL,
        .rule = "device_down",
        .labels = {{"site", "BHQ Anchal"},
                   {"device", "sw-1"},
                   {"alertname", "device_down"},
                   {"severity", "critical"}},
        .n_labels = 4,
        .summary = "sw-1 at BHQ Anchal does not answer",
        .description = "uplink to DHQ",
        .value = 1.5,
        .has_value = true,
        .active_at_ms = 1764945000123,
        .starts_at_ms = 1764945000123,
        .changed_ms = 1764945005000,
    };
    assert_int_equal(kvl_alert_finish(&a), 0);
    return a;
}

static void test_finish_sorts_and_checks(void **state)
{
    (void)state;
    kvl_alert_t a = sample();
    assert_string_equal(a.labels[0].key, "alertname");
    assert_string_equal(a.labels[3].key, "site");
    assert_string_equal(kvl_alert_label(&a, "device"), "sw-1");
    assert_null(kvl_alert_label(&a, "interface"));

    kvl_alert_t b = a;
    b.labels[1].key = "alertname"; /* twice */
    assert_int_equal(kvl_alert_finish(&b), KVL_EINVAL);
    b = a;
    b.labels[2].value = "";
    assert_int_equal(kvl_alert_finish(&b), KVL_EINVAL);
}

static void test_fingerprint(void **state)
{
    (void)state;
    kvl_alert_t a = sample();
    /* the same labels given in another order: the same fingerprint */
    kvl_alert_t b = a;
    kvl_label_t t = b.labels[0];
    b.labels[0] = b.labels[3];
    b.labels[3] = t;
    assert_int_equal(kvl_alert_finish(&b), 0);
    assert_true(a.fingerprint == b.fingerprint);
    /* a value's boundary moved: another fingerprint */
    kvl_label_t x[] = {{"a", "bc"}};
    kvl_label_t y[] = {{"ab", "c"}};
    assert_true(kvl_alert_fingerprint(x, 1) != kvl_alert_fingerprint(y, 1));
    /* fixed for ever: the book and the outbox on disk name alerts by it */
    kvl_label_t one[] = {{"alertname", "device_down"}};
    assert_true(kvl_alert_fingerprint(one, 1) == kvl_alert_fingerprint(one, 1));
    assert_true(kvl_alert_fingerprint(NULL, 0) == 0xcbf29ce484222325ull);
}

static void test_dup(void **state)
{
    (void)state;
    kvl_alert_t a = sample();
    char site[] = "BHQ Anchal";
    a.labels[3].value = site;
    kvl_alert_t *c = kvl_alert_dup(&a);
    assert_non_null(c);
    site[0] = 'X'; /* the copy owns its strings */
    assert_string_equal(kvl_alert_label(c, "site"), "BHQ Anchal");
    assert_string_equal(c->summary, a.summary);
    assert_null(c->url);
    assert_true(c->fingerprint == a.fingerprint);
    kvl_alert_free(c);
}

static void test_json_round_trip(void **state)
{
    (void)state;
    kvl_alert_t a = sample();
    a.status = KVL_ALERT_RESOLVED;
    a.ends_at_ms = 1764945600500;
    a.late = true;
    a.fields[a.n_fields++] = (kvl_label_t){"event", "device_down"};
    a.fields[a.n_fields++] = (kvl_label_t){"index", "3"};
    json_t *o = kvl_alert_to_json(&a);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "resolved");
    assert_string_equal(json_string_value(json_object_get(o, "starts_at")),
                        "2025-12-05T14:30:00.123Z");
    char why[200];
    kvl_alert_t *b = kvl_alert_from_json(o, why, sizeof(why));
    assert_non_null(b);
    assert_true(b->fingerprint == a.fingerprint);
    assert_int_equal(b->status, KVL_ALERT_RESOLVED);
    assert_int_equal(b->severity, KVL_RULE_SEV_CRITICAL);
    assert_true(b->starts_at_ms == a.starts_at_ms);
    assert_true(b->ends_at_ms == a.ends_at_ms);
    assert_true(b->late);
    assert_true(b->has_value && b->value == 1.5);
    assert_false(b->has_threshold);
    assert_string_equal(b->description, "uplink to DHQ");
    assert_int_equal(b->n_fields, 2); /* the event's fields, not part of the fingerprint */
    assert_string_equal(kvl_alert_field(b, "index"), "3");
    assert_string_equal(kvl_alert_field(b, "event"), "device_down");
    assert_null(kvl_alert_field(b, "reason"));
    kvl_alert_t *c = kvl_alert_dup(b);
    kvl_alert_free(b);
    assert_string_equal(kvl_alert_field(c, "index"), "3"); /* the copy owns them */
    kvl_alert_free(c);

    /* a label changed behind the fingerprint's back */
    json_object_set_new(json_object_get(o, "labels"), "device", json_string("sw-2"));
    assert_null(kvl_alert_from_json(o, why, sizeof(why)));
    assert_non_null(strstr(why, "fingerprint"));
    json_decref(o);

    const char *bad[] = {
        "[]",
        "{\"status\":\"firing\"}",
        "{\"status\":\"on\",\"severity\":\"critical\",\"rule\":\"r\",\"labels\":{},"
        "\"active_at\":\"2026-01-01T00:00:00Z\",\"starts_at\":\"2026-01-01T00:00:00Z\","
        "\"changed\":\"2026-01-01T00:00:00Z\"}",
        "{\"status\":\"firing\",\"severity\":\"critical\",\"rule\":\"r\",\"labels\":{\"a\":1},"
        "\"active_at\":\"2026-01-01T00:00:00Z\",\"starts_at\":\"2026-01-01T00:00:00Z\","
        "\"changed\":\"2026-01-01T00:00:00Z\"}",
        "{\"status\":\"firing\",\"severity\":\"critical\",\"rule\":\"r\",\"labels\":{},"
        "\"active_at\":\"2026-01-01T00:00:00Z\",\"starts_at\":\"2026-01-01T00:00:00Z\","
        "\"changed\":\"2026-01-01T00:00:00Z\",\"fields\":{\"index\":3}}",
        "{\"status\":\"firing\",\"severity\":\"critical\",\"rule\":\"r\",\"labels\":{},"
        "\"active_at\":\"2026-01-01T00:00:00Z\",\"starts_at\":\"2026-01-01T00:00:00Z\","
        "\"changed\":\"2026-01-01T00:00:00Z\",\"fields\":[]}",
        "{\"status\":\"firing\",\"severity\":\"critical\",\"rule\":\"r\",\"labels\":{},"
        "\"active_at\":\"yesterday\",\"starts_at\":\"2026-01-01T00:00:00Z\","
        "\"changed\":\"2026-01-01T00:00:00Z\"}",
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        json_t *j = json_loads(bad[i], 0, NULL);
        assert_non_null(j);
        why[0] = '\0';
        assert_null(kvl_alert_from_json(j, why, sizeof(why)));
        assert_true(why[0] != '\0');
        json_decref(j);
    }
}

static void test_times(void **state)
{
    (void)state;
    int64_t ms = 0;
    assert_int_equal(kvl_alert_time_parse("2026-12-05T14:33:00.250Z", &ms), 0);
    char buf[40];
    kvl_alert_time_format(ms, buf, sizeof(buf));
    assert_string_equal(buf, "2026-12-05T14:33:00.250Z");
    int64_t off = 0;
    assert_int_equal(kvl_alert_time_parse("2026-12-05T20:03:00.25+05:30", &off), 0);
    assert_true(off == ms);
    assert_int_equal(kvl_alert_time_parse("2026-12-05T14:33:00Z", &off), 0);
    assert_true(off == ms - 250);
    const char *bad[] = {"",
                         "2026-12-05",
                         "2026-13-05T00:00:00Z",
                         "2026-12-05T14:33:00",
                         "2026-12-05T14:33:00Zx",
                         "2026-12-05T14:33:00.Z"};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        assert_int_equal(kvl_alert_time_parse(bad[i], &off), KVL_EINVAL);
    }
}

static void test_url(void **state)
{
    (void)state;
    kvl_alert_t a = sample();
    char buf[256];
    size_t n = kvl_alert_url("http://127.0.0.1:8080", &a, buf, sizeof(buf));
    assert_int_equal(n, strlen(buf));
    assert_string_equal(buf, "http://127.0.0.1:8080/graph.html?site=BHQ%20Anchal&device=sw-1"
                             "&from=1764941400&to=now");
    char small[16];
    size_t need = kvl_alert_url("http://127.0.0.1:8080", &a, small, sizeof(small));
    assert_int_equal(need, n);
    assert_int_equal(strlen(small), sizeof(small) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finish_sorts_and_checks),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_dup),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_url),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
