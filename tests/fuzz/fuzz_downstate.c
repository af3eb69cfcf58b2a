/*
 * fuzz_downstate.c — libFuzzer target for the agent's down-state file (common/downstate.h):
 * any bytes handed to kvl_downstate_parse, as a damaged or foreign file would be. Beyond "no
 * crash, no sanitizer report", it checks what the header promises: the result is -1 with a
 * reason, or the number of entries, each given to the callback once, with a non-empty name
 * inside the input and free of control characters; an accepted text ends with its end line.
 * The first byte, when it is 0, makes the input a well-formed file around the rest (its
 * lines as entries, the count and checksum computed), so the accepting path is reached.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "downstate.h"
#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
    const char *text;
    size_t len;
    int n;
} seen_t;

static void on_entry(void *arg, const char *name, size_t len, int reason, int64_t since)
{
    seen_t *s = arg;
    (void)reason;
    (void)since;
    CHECK(len > 0);
    CHECK(name >= s->text && name + len <= s->text + s->len);
    for (size_t i = 0; i < len; i++) {
        CHECK((unsigned char)name[i] >= 0x20 && name[i] != 0x7f);
    }
    s->n++;
}

static void one(const char *text, size_t len)
{
    seen_t s = {.text = text, .len = len};
    const char *why = NULL;
    int rc = kvl_downstate_parse(text, len, on_entry, &s, &why);
    if (rc < 0) {
        CHECK(rc == -1 && why != NULL && why[0] != '\0');
        return;
    }
    CHECK(rc == s.n);
    CHECK(len > 0 && text[len - 1] == '\n');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) {
        return 0;
    }
    if (size >= 1 && data[0] == 0) {
        /* Wrapped: magic, the rest as lines, an end line with the right count and CRC. */
        const char *magic = "kaaval-downstate 1\n";
        size_t ml = strlen(magic);
        char *buf = malloc(ml + size + 64);
        CHECK(buf != NULL);
        memcpy(buf, magic, ml);
        size_t len = ml;
        int lines = 0;
        if (size > 1) {
            memcpy(buf + len, data + 1, size - 1);
            len += size - 1;
            if (buf[len - 1] != '\n') {
                buf[len++] = '\n';
            }
            for (size_t i = ml; i < len; i++) {
                lines += buf[i] == '\n';
            }
        }
        uint32_t crc = kvl_crc32c(0, buf, len);
        len += (size_t)snprintf(buf + len, 64, "end %d %08x\n", lines, (unsigned)crc);
        one(buf, len);
        free(buf);
        return 0;
    }
    char *copy = malloc(size ? size : 1);
    CHECK(copy != NULL);
    memcpy(copy, data, size);
    one(copy, size);
    free(copy);
    return 0;
}
