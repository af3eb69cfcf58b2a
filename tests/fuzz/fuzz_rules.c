/*
 * fuzz_rules.c — libFuzzer target for the alert rules parser (collector/alerts/rules.h):
 * the input, made into a string, is parsed as a rules file merged with the built-in rules.
 *
 * Beyond "no crash, no leak, no sanitizer report": a failure comes with a message of the
 * form "f.yaml:line:column: ..." (or "f.yaml: ..."), and rules that parse keep what the
 * parser promises (unique non-empty names, one condition each, a threshold with one side
 * and its clear on the safe side, flapping only on state rules). A broken promise calls
 * abort().
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "kvl.h"
#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rules(const kvl_rules_t *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const kvl_rule_t *u = &r->v[i];
        CHECK(u->name != NULL && u->name[0] != '\0');
        CHECK(u->kind >= KVL_RULE_THRESHOLD && u->kind <= KVL_RULE_EVENT);
        CHECK(u->severity >= KVL_RULE_SEV_CRITICAL && u->severity <= KVL_RULE_SEV_INFO);
        CHECK(!u->flapping.on || u->kind == KVL_RULE_STATE);
        if (u->kind == KVL_RULE_THRESHOLD) {
            CHECK(u->threshold.above.set != u->threshold.below.set);
            CHECK(u->threshold.clear.set);
            CHECK(u->threshold.above.set ? u->threshold.clear.v <= u->threshold.above.v
                                         : u->threshold.clear.v >= u->threshold.below.v);
            CHECK(u->threshold.source != KVL_THR_DERIVED || u->threshold.metric == NULL);
            CHECK(u->threshold.source == KVL_THR_DERIVED ||
                  kvl_rules_metric_known(u->threshold.metric));
        }
        if (u->kind == KVL_RULE_EVENT) {
            CHECK(u->event.name != NULL);
        }
        for (size_t k = 0; k < i; k++) {
            CHECK(strcmp(r->v[k].name, u->name) != 0);
        }
        CHECK(kvl_rules_find(r, u->name) == u);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    char err[1024];
    err[0] = '\0';
    kvl_rules_t *r = NULL;
    int rc = kvl_rules_parse("f.yaml", text, &r, err, sizeof(err));
    if (rc == 0) {
        CHECK(r != NULL);
        check_rules(r);
        kvl_rules_free(r);
    } else {
        CHECK(r == NULL);
        fuzz_check_position(err);
    }
    free(text);
    return 0;
}
