/*
 * fuzz_board_query.c — libFuzzer target for what the board's API and configuration take
 * from outside (collector/board/): the query parameters of /api/v1/latest and /links
 * (kvl_board_match_parse, globs matched against names), of /api/v1/series
 * (kvl_board_range_parse), and the `sites:` list (sites_config.h).
 * ({file: path} is left out: it would read this machine's files; tests/unit covers it.)
 *
 * The first byte chooses what the rest is. Checked beyond "no crash": every refusal has a
 * sentence; an accepted match has a limit of 1-10000 and a known scope; an accepted range
 * has its names, from < to within 10 years, a step of at least 1 s, at most 10000 points
 * when a step was given, and one of the four consolidations; an accepted site tree has
 * unique names and parents that lead to a root within as many steps as there are sites (no
 * cycle); a refused one names f.yaml:line:column.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "board_query.h"
#include "fuzz_check.h"
#include "sites_config.h"

#define NOW_S 1796464800LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* "k=v&k=v" split into pairs, each value its own string (the parsers keep pointers). */
typedef struct params {
    char text[4096];
    const char *key[64], *value[64];
    size_t n;
    char *given_step;
} params_t;

static void split(params_t *p, const uint8_t *data, size_t size)
{
    memcpy(p->text, data, size);
    p->text[size] = '\0';
    p->n = 0;
    char *s = p->text;
    while (s != NULL && *s != '\0' && p->n < 64) {
        char *end = strchr(s, '&');
        if (end != NULL) {
            *end = '\0';
        }
        char *eq = strchr(s, '=');
        if (eq != NULL) {
            *eq = '\0';
            p->key[p->n] = s;
            p->value[p->n] = eq + 1;
            p->n++;
        }
        s = end != NULL ? end + 1 : NULL;
    }
}

static const char *get(const void *ctx, const char *key)
{
    const params_t *p = ctx;
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->key[i], key) == 0) {
            return p->value[i];
        }
    }
    return NULL;
}

static void match(const params_t *p)
{
    kvl_board_match_t m;
    char why[256] = "";
    if (kvl_board_match_parse(get, p, &m, why, sizeof(why)) != 0) {
        CHECK(why[0] != '\0');
        return;
    }
    CHECK(m.limit >= 1 && m.limit <= KVL_BOARD_LIMIT_MAX);
    CHECK(m.scope >= 0 && m.scope <= 5);
    const char *globs[] = {m.agent, m.site, m.device, m.instance, m.metric};
    for (size_t i = 0; i < 5; i++) {
        CHECK(globs[i] == NULL || strlen(globs[i]) <= KVL_BOARD_GLOB_MAX);
        /* matched against names like those the latest values hold, and against itself */
        (void)kvl_board_glob(globs[i], "GigabitEthernet0/1");
        (void)kvl_board_glob(globs[i], "");
        if (globs[i] != NULL) {
            (void)kvl_board_glob(globs[i], globs[i]);
        }
    }
    CHECK(kvl_board_glob(NULL, "anything"));
}

static void range(const params_t *p)
{
    kvl_board_range_t r;
    char why[256] = "";
    if (kvl_board_range_parse(get, p, NOW_S, &r, why, sizeof(why)) != 0) {
        CHECK(why[0] != '\0');
        return;
    }
    CHECK(r.agent != NULL && r.device != NULL && r.metric != NULL);
    CHECK(r.from < r.to && r.to - r.from <= KVL_BOARD_RANGE_MAX);
    CHECK(r.step >= 1);
    if (get(p, "step") != NULL) {
        CHECK((r.to - r.from) / r.step <= KVL_BOARD_POINTS_MAX);
    }
    CHECK(strcmp(r.cf, "AVERAGE") == 0 || strcmp(r.cf, "MIN") == 0 || strcmp(r.cf, "MAX") == 0 ||
          strcmp(r.cf, "LAST") == 0);
    CHECK(r.scope >= 0 && r.scope <= 5);
}

static void sites(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL) {
        return;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    if (strstr(text, "file") != NULL) { /* {file: path} would read this machine's files */
        free(text);
        return;
    }
    char err[1024] = "";
    kvl_sites_cfg_t *c = kvl_sites_cfg_parse_text("f.yaml", text, err, sizeof(err));
    free(text);
    if (c == NULL) {
        /* the file form names its own file too; others f.yaml:line:column */
        fuzz_check_position(err);
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        CHECK(c->v[i].kind >= 0 && c->v[i].kind < KVL_SITE_KINDS);
        CHECK(kvl_sites_find(c, c->v[i].name) == i);
        size_t at = c->v[i].parent, steps = 0;
        while (at != KVL_SITE_NONE) {
            CHECK(at < c->n && steps++ < c->n);
            at = c->v[at].parent;
        }
    }
    kvl_sites_cfg_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t what = data[0] % 3;
    data++;
    size--;
    if (what == 2) {
        sites(data, size);
        return 0;
    }
    static params_t p;
    if (size >= sizeof(p.text)) {
        return 0;
    }
    split(&p, data, size);
    if (what == 0) {
        match(&p);
    } else {
        range(&p);
    }
    return 0;
}
