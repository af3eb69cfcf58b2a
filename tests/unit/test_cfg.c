/*
 * test_cfg.c — unit tests for the YAML field tables (common/cfg.h).
 *
 * A small table with one field of every type is applied to YAML snippets. Each error case
 * asserts the whole "file:line:column: " prefix — the point of the module is that an
 * operator is sent to the right character — and the part of the message that says what
 * was wrong. Lines and columns are 1-based and point at the offending node: the key for
 * unknown and repeated keys, the value for bad values, the mapping for missing keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfg.h"
#include "kvl.h"
#include "timeutil.h"

#define DAY_MS 86400000LL

typedef struct inner {
    int64_t depth;
    char *label;
} inner_t;

typedef struct conf {
    char *name;
    int64_t count;
    bool flag;
    int64_t period_ms;
    int mode;
    int64_t even;
    inner_t sub;
} conf_t;

static const char *const modes[] = {"fast", "slow", NULL};

static int parse_even(kvl_cfg_node_t n, void *target)
{
    int64_t v;
    int rc = kvl_cfg_read_int(n, 0, 1000, &v);
    if (rc != 0) {
        return rc;
    }
    if (v % 2 != 0) {
        return kvl_cfg_error(n, "expected an even number, got %lld", (long long)v);
    }
    *(int64_t *)target = v;
    return 0;
}

static const kvl_cfg_field_t inner_fields[] = {
    {"depth", KVL_CFG_INT, offsetof(inner_t, depth), 0, 9, NULL, NULL, KVL_CFG_REQUIRED,
     "how deep"},
    {"label", KVL_CFG_STR, offsetof(inner_t, label), 0, 0, NULL, NULL, 0, "a label"},
    {NULL},
};

static int parse_sub(kvl_cfg_node_t n, void *target)
{
    return kvl_cfg_apply(n, inner_fields, target);
}

static const kvl_cfg_field_t fields[] = {
    {"name", KVL_CFG_STR, offsetof(conf_t, name), 0, 0, NULL, NULL, KVL_CFG_REQUIRED,
     "what it is called"},
    {"count", KVL_CFG_INT, offsetof(conf_t, count), 1, 100, NULL, NULL, 0, "how many"},
    {"flag", KVL_CFG_BOOL, offsetof(conf_t, flag), 0, 0, NULL, NULL, 0, "on or off"},
    {"period", KVL_CFG_DURATION, offsetof(conf_t, period_ms), 100, 7 * DAY_MS, NULL, NULL, 0,
     "how often"},
    {"mode", KVL_CFG_ENUM, offsetof(conf_t, mode), 0, 0, modes, NULL, 0, "fast or slow"},
    {"even", KVL_CFG_CUSTOM, offsetof(conf_t, even), 0, 0, NULL, parse_even, 0, "even"},
    {"sub", KVL_CFG_CUSTOM, offsetof(conf_t, sub), 0, 0, NULL, parse_sub, 0, "nested"},
    {NULL},
};

static void conf_init(conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->name = strdup("default-name");
    c->count = 7;
    c->flag = false;
    c->period_ms = 30000;
    c->mode = 1;
    c->even = 4;
    c->sub.depth = 3;
}

static void conf_free(conf_t *c)
{
    free(c->name);
    free(c->sub.label);
}

/* Loads text as "t.yaml" and applies the table. Returns 0 or the error code; the first
 * error (from loading or applying) goes into err. */
static int parse(const char *text, conf_t *c, char *err, size_t errlen)
{
    err[0] = '\0';
    conf_init(c);
    kvl_cfg_t *y = kvl_cfg_load_string("t.yaml", text, err, errlen);
    if (y == NULL) {
        assert_true(err[0] != '\0');
        return KVL_ECONFIG;
    }
    assert_string_equal(kvl_cfg_last_error(y), "");
    int rc = kvl_cfg_apply(kvl_cfg_root(y), fields, c);
    if (rc != 0) {
        assert_int_equal(rc, KVL_ECONFIG);
        snprintf(err, errlen, "%s", kvl_cfg_last_error(y));
    } else {
        assert_string_equal(kvl_cfg_last_error(y), "");
    }
    kvl_cfg_free(y);
    return rc;
}

/* Asserts that text fails with an error starting with `where` (e.g. "t.yaml:3:1: ") and
 * containing `what`. */
static void expect_error_at(const char *text, const char *where, const char *what, int line)
{
    conf_t c;
    char err[512];
    int rc = parse(text, &c, err, sizeof(err));
    conf_free(&c);
    if (rc == 0) {
        fail_msg("line %d: expected an error for:\n%s", line, text);
    }
    if (strncmp(err, where, strlen(where)) != 0 || strstr(err, what) == NULL) {
        fail_msg("line %d: expected '%s...%s', got '%s'", line, where, what, err);
    }
}
#define expect_error(text, where, what) expect_error_at((text), (where), (what), __LINE__)

static void test_good(void **state)
{
    KVL_UNUSED(state);
    conf_t c;
    char err[512];
    assert_int_equal(parse("# a comment\n"
                           "name: Überlink\n"
                           "count: 100\n"
                           "flag: yes\n"
                           "period: 2h\n"
                           "mode: fast\n"
                           "even: 10\n"
                           "sub:\n"
                           "  depth: 9\n"
                           "  label: inner\n",
                           &c, err, sizeof(err)),
                     0);
    assert_string_equal(c.name, "Überlink");
    assert_int_equal(c.count, 100);
    assert_true(c.flag);
    assert_int_equal(c.period_ms, 2 * 3600000);
    assert_int_equal(c.mode, 0);
    assert_int_equal(c.even, 10);
    assert_int_equal(c.sub.depth, 9);
    assert_string_equal(c.sub.label, "inner");
    conf_free(&c);

    /* Flow style, and defaults for what is not given. */
    assert_int_equal(parse("{name: x, flag: Off, sub: {depth: 0}}", &c, err, sizeof(err)), 0);
    assert_string_equal(c.name, "x");
    assert_int_equal(c.count, 7);
    assert_false(c.flag);
    assert_int_equal(c.period_ms, 30000);
    assert_int_equal(c.mode, 1);
    assert_int_equal(c.even, 4);
    assert_int_equal(c.sub.depth, 0);
    assert_null(c.sub.label);
    conf_free(&c);

    /* Lower bounds. */
    assert_int_equal(parse("name: ''\ncount: 1\nperiod: 100ms\neven: 0\n", &c, err, sizeof(err)),
                     0);
    assert_string_equal(c.name, "");
    assert_int_equal(c.count, 1);
    assert_int_equal(c.period_ms, 100);
    assert_int_equal(c.even, 0);
    conf_free(&c);

    /* Upper bound of the duration, given in other units. */
    assert_int_equal(parse("name: x\nperiod: 1w\n", &c, err, sizeof(err)), 0);
    assert_int_equal(c.period_ms, 7 * DAY_MS);
    conf_free(&c);
    assert_int_equal(parse("name: x\nperiod: 7d\n", &c, err, sizeof(err)), 0);
    assert_int_equal(c.period_ms, 7 * DAY_MS);
    conf_free(&c);
}

static void test_bools(void **state)
{
    KVL_UNUSED(state);
    static const struct {
        const char *text;
        bool value;
    } cases[] = {
        {"true", true},   {"yes", true}, {"on", true},   {"TRUE", true},   {"Yes", true},
        {"false", false}, {"no", false}, {"off", false}, {"False", false}, {"NO", false},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(cases); i++) {
        char text[64];
        snprintf(text, sizeof(text), "name: x\nflag: %s\n", cases[i].text);
        conf_t c;
        char err[512];
        assert_int_equal(parse(text, &c, err, sizeof(err)), 0);
        c.flag = !cases[i].value;
        conf_free(&c);
        assert_int_equal(parse(text, &c, err, sizeof(err)), 0);
        if (c.flag != cases[i].value) {
            fail_msg("flag: %s read as %d", cases[i].text, c.flag);
        }
        conf_free(&c);
    }
    expect_error("name: x\nflag: maybe\n", "t.yaml:2:7: ", "expected true or false, got 'maybe'");
    expect_error("name: x\nflag: 1\n", "t.yaml:2:7: ", "expected true or false, got '1'");
    expect_error("name: x\nflag: [yes]\n", "t.yaml:2:7: ", "expected true or false, got a list");
}

static void test_unknown_key(void **state)
{
    KVL_UNUSED(state);
    expect_error("name: x\ncount: 5\ncolour: red\n", "t.yaml:3:1: ",
                 "unknown setting 'colour'; expected one of: name, count, flag, period, mode, "
                 "even, sub");
    /* Case matters. */
    expect_error("Name: x\n", "t.yaml:1:1: ", "unknown setting 'Name'");
    /* In a nested mapping the error points into it. */
    expect_error("name: x\nsub:\n  depth: 1\n    \n  width: 2\n",
                 "t.yaml:5:3: ", "unknown setting 'width'; expected one of: depth, label");
    /* In flow style, at the key. */
    expect_error("{name: x, cuont: 5}", "t.yaml:1:11: ", "unknown setting 'cuont'");
    /* A key that is not text. */
    expect_error("name: x\n? [a, b]\n: 1\n", "t.yaml:2:3: ", "expected a setting name, got a list");
}

static void test_duplicate(void **state)
{
    KVL_UNUSED(state);
    expect_error("name: x\ncount: 5\nflag: on\ncount: 6\n",
                 "t.yaml:4:1: ", "setting 'count' is given twice");
    expect_error("name: x\nsub:\n  depth: 1\n  depth: 2\n",
                 "t.yaml:4:3: ", "setting 'depth' is given twice");
    expect_error("{name: a, name: b}", "t.yaml:1:11: ", "setting 'name' is given twice");
}

static void test_missing_required(void **state)
{
    KVL_UNUSED(state);
    /* At the mapping, which starts at its first key. */
    expect_error("# settings\n\ncount: 5\nflag: on\n",
                 "t.yaml:3:1: ", "missing required setting 'name': what it is called");
    expect_error("name: x\nsub:\n\n  label: deep\n",
                 "t.yaml:4:3: ", "missing required setting 'depth': how deep");
    expect_error("name: x\nsub: {}\n", "t.yaml:2:6: ", "missing required setting 'depth'");
    expect_error("  {count: 5}\n", "t.yaml:1:3: ", "missing required setting 'name'");
}

static void test_wrong_types(void **state)
{
    KVL_UNUSED(state);
    expect_error("name: x\ncount: abc\n",
                 "t.yaml:2:8: ", "expected a whole number from 1 to 100, got 'abc'");
    expect_error("name: x\ncount: [1, 2]\n",
                 "t.yaml:2:8: ", "expected a whole number from 1 to 100, got a list");
    expect_error("name: x\ncount: 1.5\n", "t.yaml:2:8: ", "got '1.5'");
    expect_error("name: x\ncount: 0x10\n", "t.yaml:2:8: ", "got '0x10'");
    expect_error("name: x\ncount: 5 apples\n", "t.yaml:2:8: ", "got '5 apples'");
    expect_error("name: x\ncount: \"12x\"\n", "t.yaml:2:8: ", "got '12x'");
    expect_error("name: [a]\n", "t.yaml:1:7: ", "expected a text value, got a list");
    expect_error("name:\n  first: a\n", "t.yaml:2:3: ", "expected a text value, got a mapping");
    expect_error("name: x\nmode: medium\n",
                 "t.yaml:2:7: ", "expected one of fast, slow, got 'medium'");
    expect_error("name: x\nmode: {a: 1}\n",
                 "t.yaml:2:7: ", "expected one of fast, slow, got a mapping");
    expect_error("name: x\nperiod: [1s]\n", "t.yaml:2:9: ", "expected a duration");
    expect_error("name: x\nsub: 5\n",
                 "t.yaml:2:6: ", "expected a mapping of settings (key: value), got a value");
    expect_error("name: x\nsub:\n  depth: 2\n  label: [1]\n",
                 "t.yaml:4:10: ", "expected a text value, got a list");
    expect_error("- a\n- b\n",
                 "t.yaml:1:1: ", "expected a mapping of settings (key: value), got a list");
    expect_error("just text\n", "t.yaml:1:1: ", "got a value");
    expect_error("name: x\neven: 3\n", "t.yaml:2:7: ", "expected an even number, got 3");
    expect_error("name: x\neven: three\n", "t.yaml:2:7: ", "from 0 to 1000, got 'three'");
}

static void test_bounds(void **state)
{
    KVL_UNUSED(state);
    expect_error("name: x\ncount: 0\n",
                 "t.yaml:2:8: ", "expected a whole number from 1 to 100, got '0'");
    expect_error("name: x\ncount: 101\n", "t.yaml:2:8: ", "got '101'");
    expect_error("name: x\ncount: -5\n", "t.yaml:2:8: ", "got '-5'");
    expect_error("name: x\ncount: 99999999999999999999\n",
                 "t.yaml:2:8: ", "got '99999999999999999999'");
    expect_error("name: x\nsub: {depth: 10}\n", "t.yaml:2:14: ", "from 0 to 9, got '10'");
    expect_error("name: x\nperiod: 50ms\n",
                 "t.yaml:2:9: ", "duration '50ms' is out of range: expected 100ms to 604800000ms");
    expect_error("name: x\nperiod: 99ms\n", "t.yaml:2:9: ", "out of range");
    expect_error("name: x\nperiod: 8d\n", "t.yaml:2:9: ", "duration '8d' is out of range");
    expect_error("name: x\nperiod: 604801s\n", "t.yaml:2:9: ", "out of range");
    expect_error("name: x\nperiod: 0\n", "t.yaml:2:9: ", "duration '0' is out of range");
}

static void test_durations(void **state)
{
    KVL_UNUSED(state);
    static const struct {
        const char *text;
        int64_t ms;
    } good[] = {
        {"250ms", 250},
        {"30s", 30000},
        {"5m", 300000},
        {"2h", 7200000},
        {"2d", 2 * DAY_MS},
        {"14d", 14 * DAY_MS},
        {"2w", 14 * DAY_MS},
        {"1y", 365 * DAY_MS},
        {"45", 45000},
        {"0", 0},
        {"0ms", 0},
        {"1ms", 1},
        {"007s", 7000},
        {"9223372036854775807ms", INT64_MAX},
        {"9223372036854775s", 9223372036854775000LL},
    };
    static const char *const bad[] = {
        "",
        "ms",
        "s",
        "5 m",
        "-5s",
        "+5s",
        "5x",
        "1.5s",
        "5sec",
        "5S",
        "5M",
        "5mm",
        "0x10s",
        "h2",
        "5s5",
        "1e3",
        "18446744073709551616",
        "9223372036854775808ms",
        "9223372036854776s",
        "10000000000y",
        "99999999999999999999999s",
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(good); i++) {
        int64_t ms = -1;
        if (kvl_duration_parse(good[i].text, &ms) != 0 || ms != good[i].ms) {
            fail_msg("'%s': got %lld, expected %lld", good[i].text, (long long)ms,
                     (long long)good[i].ms);
        }
    }
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        int64_t ms = -1;
        if (kvl_duration_parse(bad[i], &ms) != KVL_EINVAL || ms != -1) {
            fail_msg("'%s' accepted as %lld", bad[i], (long long)ms);
        }
    }
    assert_int_equal(kvl_duration_parse(NULL, &(int64_t){0}), KVL_EINVAL);

    /* Through a field: the error points at the value, quoted or not. */
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        char text[128];
        snprintf(text, sizeof(text), "name: x\nperiod: '%s'\n", bad[i]);
        expect_error(text, "t.yaml:2:9: ",
                     "expected a duration such as 500ms, 30s, 5m or 2h (a bare number is "
                     "seconds), got '");
    }
    expect_error("name: x\nsub: {depth: 1}\nperiod: 5 minutes\n",
                 "t.yaml:3:9: ", "got '5 minutes'");
    conf_t c;
    char err[512];
    assert_int_equal(parse("name: x\nperiod: 250ms\n", &c, err, sizeof(err)), 0);
    assert_int_equal(c.period_ms, 250);
    conf_free(&c);
    assert_int_equal(parse("name: x\nperiod: 600\n", &c, err, sizeof(err)), 0);
    assert_int_equal(c.period_ms, 600000);
    conf_free(&c);
    assert_int_equal(parse("name: x\nperiod: \"5m\"\n", &c, err, sizeof(err)), 0);
    assert_int_equal(c.period_ms, 300000);
    conf_free(&c);
}

static void test_syntax_errors(void **state)
{
    KVL_UNUSED(state);
    /* libyaml's own words and position. */
    expect_error("name: x\n\tcount: 5\n",
                 "t.yaml:2:1: ", "found a tab character that violates indentation");
    expect_error("name: x\n count: 5\n",
                 "t.yaml:2:7: ", "mapping values are not allowed in this context");
    expect_error("name: [a, b\ncount: 5\n", "t.yaml:2:6: ", "did not find expected ',' or ']'");
    expect_error("name: 'x\n", "t.yaml:2:1: ", "found unexpected end of stream");
    /* Whatever follows the first document is not silently dropped. */
    expect_error("name: x\n---\nname: y\n", "t.yaml:2:1: ", "a second YAML document");
    expect_error("name: x\n\n---\n[\n", "t.yaml:5:1: ", "did not find expected node content");
    /* libyaml reports where it gave up looking for the ':', here the end of the text. */
    expect_error("name: x\n'y'\n", "t.yaml:3:1: ", "could not find expected ':'");
}

static void test_empty(void **state)
{
    KVL_UNUSED(state);
    static const char *const empty[] = {"", "\n\n", "# nothing here\n", "   \n# still\n"};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(empty); i++) {
        char err[256] = "";
        kvl_cfg_t *y = kvl_cfg_load_string("t.yaml", empty[i], err, sizeof(err));
        assert_null(y);
        assert_string_equal(err, "t.yaml:1:1: the file is empty; expected a mapping of settings");
    }
    /* An explicit end of document with nothing after it is fine. */
    conf_t c;
    char err[256];
    assert_int_equal(parse("---\nname: x\n...\n", &c, err, sizeof(err)), 0);
    assert_string_equal(c.name, "x");
    conf_free(&c);
}

static void test_load_file(void **state)
{
    KVL_UNUSED(state);
    char path[] = "/tmp/kvl-test-cfg-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "name: from-file\n\ncount: 500\n";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);

    char err[512] = "";
    kvl_cfg_t *y = kvl_cfg_load_file(path, err, sizeof(err));
    assert_non_null(y);
    conf_t c;
    conf_init(&c);
    assert_int_equal(kvl_cfg_apply(kvl_cfg_root(y), fields, &c), KVL_ECONFIG);
    char want[600];
    snprintf(want, sizeof(want), "%s:3:8: expected a whole number from 1 to 100, got '500'", path);
    assert_string_equal(kvl_cfg_last_error(y), want);
    /* The name was applied before the error. */
    assert_string_equal(c.name, "from-file");
    conf_free(&c);
    kvl_cfg_free(y);

    /* A syntax error in a file names the file. */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("a: 1\nb: [\n", f);
    fclose(f);
    assert_null(kvl_cfg_load_file(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s:3:1: ", path);
    assert_int_equal(strncmp(err, want, strlen(want)), 0);
    unlink(path);

    assert_null(kvl_cfg_load_file(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
    assert_string_equal(err, want);
}

static void test_nodes(void **state)
{
    KVL_UNUSED(state);
    char err[256];
    kvl_cfg_t *y = kvl_cfg_load_string("n.yaml",
                                       "list: [a, b, c]\n"
                                       "map:\n"
                                       "  k: v\n"
                                       "scalar: 12\n",
                                       err, sizeof(err));
    assert_non_null(y);
    kvl_cfg_node_t root = kvl_cfg_root(y);
    assert_true(kvl_cfg_is_map(root));
    assert_false(kvl_cfg_is_seq(root));
    assert_null(kvl_cfg_scalar(root));

    kvl_cfg_node_t list, map, sc, none = {y, 0};
    assert_true(kvl_cfg_map_get(root, "list", &list));
    assert_true(kvl_cfg_is_seq(list));
    assert_int_equal(kvl_cfg_seq_len(list), 3);
    assert_string_equal(kvl_cfg_scalar(kvl_cfg_seq_at(list, 0)), "a");
    assert_string_equal(kvl_cfg_scalar(kvl_cfg_seq_at(list, 2)), "c");
    assert_int_equal(kvl_cfg_seq_at(list, 3).index, 0);
    assert_false(kvl_cfg_is_scalar(kvl_cfg_seq_at(list, 3)));

    assert_true(kvl_cfg_map_get(root, "map", &map));
    assert_true(kvl_cfg_is_map(map));
    assert_int_equal(kvl_cfg_seq_len(map), 0);
    assert_true(kvl_cfg_map_get(root, "scalar", &sc));
    assert_true(kvl_cfg_is_scalar(sc));
    assert_string_equal(kvl_cfg_scalar(sc), "12");
    assert_false(kvl_cfg_map_get(root, "absent", &sc));
    assert_false(kvl_cfg_map_get(list, "a", &sc));
    assert_false(kvl_cfg_is_map(none));
    assert_null(kvl_cfg_scalar(none));

    /* The first error is kept; the return value is always KVL_ECONFIG. */
    assert_string_equal(kvl_cfg_last_error(y), "");
    assert_int_equal(kvl_cfg_error(map, "first %d", 1), KVL_ECONFIG);
    assert_int_equal(kvl_cfg_error(list, "second"), KVL_ECONFIG);
    assert_string_equal(kvl_cfg_last_error(y), "n.yaml:3:3: first 1");
    kvl_cfg_free(y);
    kvl_cfg_free(NULL);

    /* An error at no node points at the start of the file. */
    y = kvl_cfg_load_string("n.yaml", "a: 1\n", err, sizeof(err));
    assert_non_null(y);
    none.cfg = y;
    assert_int_equal(kvl_cfg_error(none, "somewhere"), KVL_ECONFIG);
    assert_string_equal(kvl_cfg_last_error(y), "n.yaml:1:1: somewhere");
    kvl_cfg_free(y);
}

static void test_hostport(void **state)
{
    KVL_UNUSED(state);
    char host[64];
    uint16_t port = 0;
    assert_int_equal(kvl_parse_hostport("127.0.0.1:5140", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 5140);
    assert_int_equal(kvl_parse_hostport("collector.example.net:1", host, sizeof(host), &port), 0);
    assert_string_equal(host, "collector.example.net");
    assert_int_equal(port, 1);
    assert_int_equal(kvl_parse_hostport("[::1]:65535", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 65535);
    assert_int_equal(kvl_parse_hostport("[fe80::1%eth0]:161", host, sizeof(host), &port), 0);
    assert_string_equal(host, "fe80::1%eth0");
    assert_int_equal(port, 161);

    static const char *const bad[] = {
        "localhost",  "localhost:", ":5140",    "host:0",
        "host:65536", "host:-1",    "host:80x", "host:0x50",
        "::1:80",     "[::1]80",    "[::1]",    "[::1:80",
        "[]:80",      "a:b:c",      "",         "host:99999999999999999999",
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(bad); i++) {
        strcpy(host, "untouched");
        port = 7;
        if (kvl_parse_hostport(bad[i], host, sizeof(host), &port) != KVL_EINVAL) {
            fail_msg("'%s' accepted", bad[i]);
        }
        assert_string_equal(host, "untouched");
        assert_int_equal(port, 7);
    }
    /* The host must fit the buffer, terminator included. */
    char small[5];
    assert_int_equal(kvl_parse_hostport("abcd:1", small, sizeof(small), &port), 0);
    assert_string_equal(small, "abcd");
    assert_int_equal(kvl_parse_hostport("abcde:1", small, sizeof(small), &port), KVL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bools),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_missing_required),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_nodes),
        cmocka_unit_test(test_hostport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
