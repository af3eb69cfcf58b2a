/*
 * fuzz_captop.c — libFuzzer target for the capture's top-list records (common/captop.h),
 * which the collector reads from agents' events and from its own files: any bytes handed to
 * kvl_captop_line_parse (an exact-size heap copy, so a read beyond them is caught). Beyond
 * "no crash", it checks the promises: a record accepted has at most KVL_CAPTOP_MAX entries
 * in each list, times in order, every address non-empty and NUL-terminated within its
 * buffer, no error above its bytes; written again by kvl_captop_line_format it fits
 * KVL_CAPTOP_LINE_LEN and parses back to the same record (a round trip).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "captop.h"
#include "fuzz_check.h"
#include "kvl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entries(const kvl_captop_entry_t *e, size_t n, bool conv)
{
    CHECK(n <= KVL_CAPTOP_MAX);
    for (size_t i = 0; i < n; i++) {
        CHECK(memchr(e[i].a, '\0', sizeof(e[i].a)) != NULL && e[i].a[0] != '\0');
        CHECK(memchr(e[i].b, '\0', sizeof(e[i].b)) != NULL);
        CHECK(conv ? e[i].b[0] != '\0' : e[i].b[0] == '\0');
        CHECK(e[i].err <= e[i].bytes);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size ? size : 1);
    if (line == NULL) {
        return 0;
    }
    memcpy(line, data, size);
    static kvl_captop_t t, u;
    int rc = kvl_captop_line_parse(line, size, &t);
    free(line);
    if (rc != 0) {
        CHECK(rc == KVL_EDECODE);
        return 0;
    }
    CHECK(t.start_ms >= 0 && t.end_ms >= t.start_ms);
    check_entries(t.hosts, t.n_hosts, false);
    check_entries(t.convs, t.n_convs, true);
    static char out[KVL_CAPTOP_LINE_LEN];
    int n = kvl_captop_line_format(&t, out, sizeof(out));
    CHECK(n > 0 && (size_t)n < sizeof(out));
    CHECK(kvl_captop_line_parse(out, (size_t)n, &u) == 0);
    CHECK(u.start_ms == t.start_ms && u.end_ms == t.end_ms && u.n_hosts == t.n_hosts &&
          u.n_convs == t.n_convs);
    for (size_t i = 0; i < t.n_hosts; i++) {
        CHECK(strcmp(u.hosts[i].a, t.hosts[i].a) == 0 && u.hosts[i].bytes == t.hosts[i].bytes &&
              u.hosts[i].err == t.hosts[i].err && u.hosts[i].packets == t.hosts[i].packets);
    }
    for (size_t i = 0; i < t.n_convs; i++) {
        CHECK(strcmp(u.convs[i].a, t.convs[i].a) == 0 && strcmp(u.convs[i].b, t.convs[i].b) == 0 &&
              u.convs[i].bytes == t.convs[i].bytes && u.convs[i].packets == t.convs[i].packets);
    }
    return 0;
}
