/*
 * agent_cfg_text.h — how the agent configuration tests (test_agent_config.c and
 * test_agent_config_v3.c) parse their texts and check the errors. Included by one test
 * file each (static functions).
 */
#ifndef KVL_TEST_AGENT_CFG_TEXT_H
#define KVL_TEST_AGENT_CFG_TEXT_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_config.h"

/* The three required settings, lines 1 to 3. */
#define HEAD "id: a1\nsite: tvm-north\ncollector: 127.0.0.1:5140\n"

/* Every configuration needs `tls:` or `insecure: true`; the texts of these tests are about
 * other settings, so a top-level `insecure: true` is added after their last line (line
 * numbers in expected errors stay as written). Texts without any key, texts that start a
 * flow node or a sequence, and those with a flow sequence left open (syntax-error cases)
 * are passed as they are. */
static bool unbalanced(const char *text)
{
    int depth = 0;
    for (; *text != '\0'; text++) {
        depth += *text == '[' ? 1 : *text == ']' ? -1 : 0;
    }
    return depth != 0;
}

static kvl_agent_cfg_t *parse_text(const char *name, const char *text, char *err, size_t errlen)
{
    size_t len = strlen(text);
    if (strchr(text, ':') == NULL || strstr(text, "insecure:") != NULL || text[0] == '{' ||
        text[0] == '-' || unbalanced(text)) {
        return kvl_agent_cfg_parse(name, text, err, errlen);
    }
    char *full = malloc(len + 32);
    assert_non_null(full);
    snprintf(full, len + 32, "%s%sinsecure: true\n", text,
             len > 0 && text[len - 1] != '\n' ? "\n" : "");
    kvl_agent_cfg_t *c = kvl_agent_cfg_parse(name, full, err, errlen);
    free(full);
    return c;
}

/* The text must fail with an error starting with `where` ("a.yaml:line:col: ") and
 * containing `what`; no test password ("s3cret") may ever show up in it. */
static void expect_error_at(const char *text, const char *where, const char *what, int line)
{
    char err[512] = "";
    kvl_agent_cfg_t *c = parse_text("a.yaml", text, err, sizeof(err));
    if (c != NULL) {
        kvl_agent_cfg_free(c);
        fail_msg("line %d: expected an error for:\n%s", line, text);
    }
    if (strncmp(err, where, strlen(where)) != 0 || strstr(err, what) == NULL) {
        fail_msg("line %d: expected '%s...%s', got '%s'", line, where, what, err);
    }
    if (strstr(err, "s3cret") != NULL) {
        fail_msg("line %d: the error shows a secret: '%s'", line, err);
    }
}
#define expect_error(text, where, what) expect_error_at((text), (where), (what), __LINE__)

static kvl_agent_cfg_t *parse_ok(const char *text)
{
    char err[512] = "";
    kvl_agent_cfg_t *c = parse_text("a.yaml", text, err, sizeof(err));
    if (c == NULL) {
        fail_msg("unexpected error: %s", err);
    }
    return c;
}

#endif
