/*
 * cfg_text.h — how the configuration tests (test_agent_config.c, test_agent_config_v3.c,
 * test_collector_config.c) parse their texts and check the errors.
 *
 * Every configuration needs `tls:` or `insecure: true`; the texts of these tests are about
 * other settings, so a top-level `insecure: true` is added after their last line (line
 * numbers in expected errors stay as written). Texts without any key, texts that start a
 * flow node or a sequence, and those with a flow sequence left open (syntax-error cases) are
 * passed as they are.
 *
 * KVL_CFG_TEXT_HELPERS(T, PARSE, FREE, FILE) defines, for a configuration type T parsed by
 * PARSE and freed by FREE:
 *   T *parse_text(name, text, err, errlen)     the text, with `insecure: true` as above
 *   T *parse_ok(text)                          parsed as FILE, or the test fails
 *   expect_error(text, where, what)            must fail with an error that starts with
 *                                              `where` ("FILE:line:col: ") and contains
 *                                              `what`; no test password ("s3cret") may
 *                                              show up in it
 */
#ifndef KVL_TEST_CFG_TEXT_H
#define KVL_TEST_CFG_TEXT_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True when a flow sequence is left open. */
static bool cfg_text_unbalanced(const char *text)
{
    int depth = 0;
    for (; *text != '\0'; text++) {
        depth += *text == '[' ? 1 : *text == ']' ? -1 : 0;
    }
    return depth != 0;
}

/* The text with `insecure: true` added (to be freed), or NULL: parse the text as it is. */
static char *cfg_text_insecure(const char *text)
{
    size_t len = strlen(text);
    if (strchr(text, ':') == NULL || strstr(text, "insecure:") != NULL || text[0] == '{' ||
        text[0] == '-' || cfg_text_unbalanced(text)) {
        return NULL;
    }
    char *full = malloc(len + 32);
    assert_non_null(full);
    snprintf(full, len + 32, "%s%sinsecure: true\n", text,
             len > 0 && text[len - 1] != '\n' ? "\n" : "");
    return full;
}

static void cfg_text_check_error(const char *err, const char *where, const char *what, int line)
{
    if (strncmp(err, where, strlen(where)) != 0 || strstr(err, what) == NULL) {
        fail_msg("line %d: expected '%s...%s', got '%s'", line, where, what, err);
    }
    if (strstr(err, "s3cret") != NULL) {
        fail_msg("line %d: the error shows a secret: '%s'", line, err);
    }
}

#define KVL_CFG_TEXT_HELPERS(T, PARSE, FREE, FILE)                                                 \
    static T *parse_text(const char *name, const char *text, char *err, size_t errlen)             \
    {                                                                                              \
        char *full = cfg_text_insecure(text);                                                      \
        T *c = PARSE(name, full != NULL ? full : text, err, errlen);                               \
        free(full);                                                                                \
        return c;                                                                                  \
    }                                                                                              \
    static void expect_error_at(const char *text, const char *where, const char *what, int line)   \
    {                                                                                              \
        char err[512] = "";                                                                        \
        T *c = parse_text(FILE, text, err, sizeof(err));                                           \
        if (c != NULL) {                                                                           \
            FREE(c);                                                                               \
            fail_msg("line %d: expected an error for:\n%s", line, text);                           \
        }                                                                                          \
        cfg_text_check_error(err, where, what, line);                                              \
    }                                                                                              \
    static T *parse_ok(const char *text)                                                           \
    {                                                                                              \
        char err[512] = "";                                                                        \
        T *c = parse_text(FILE, text, err, sizeof(err));                                           \
        if (c == NULL) {                                                                           \
            fail_msg("unexpected error: %s", err);                                                 \
        }                                                                                          \
        return c;                                                                                  \
    }

#define expect_error(text, where, what) expect_error_at((text), (where), (what), __LINE__)

#endif
