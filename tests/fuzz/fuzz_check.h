/*
 * fuzz_check.h — what every fuzz target checks with: CHECK aborts with the target's file,
 * line and the condition, so libFuzzer keeps the input; fuzz_check_position checks that a
 * configuration error names "f.yaml:<line>:<column>: <text>" or "f.yaml: <text>".
 */
#ifndef KVL_FUZZ_CHECK_H
#define KVL_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s: check failed at line %d: %s\n", __FILE__, __LINE__, #cond);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static inline void fuzz_check_position(const char *err)
{
    CHECK(strncmp(err, "f.yaml:", 7) == 0);
    const char *p = err + 7;
    if (*p == ' ') {
        CHECK(p[1] != '\0');
        return;
    }
    char *end;
    unsigned long line = strtoul(p, &end, 10);
    CHECK(line >= 1 && end != p && *end == ':');
    p = end + 1;
    unsigned long col = strtoul(p, &end, 10);
    CHECK(col >= 1 && end != p && end[0] == ':' && end[1] == ' ' && end[2] != '\0');
}

#endif
