/*
 * head_line.h — for the tests of files made of "<CRC-32C, 8 hex> <JSON>\n" lines whose first
 * line is a head record (the alert book's book.snap and book.log, the inventory's
 * inventory.snap and inventory.log): the head's "format" read, or rewritten (a version, or
 * removed as the files were before versions were kept), its CRC made again, the other lines
 * kept byte for byte; a pair of such files (snapshot and log) checked, taken back to the
 * format before versions, and each refused when newer. Included after cmocka.h by one test
 * file each (static functions).
 */
#ifndef KVL_TEST_HEAD_LINE_H
#define KVL_TEST_HEAD_LINE_H

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "kvl.h"
#include "newer_format.h"

/* The whole file, malloc'd and NUL-terminated (NULL when missing), its length in *n. */
static char *head_slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    char *b = malloc(cap + 1);
    size_t k;
    while (b != NULL && (k = fread(b + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) {
            cap *= 2;
            char *nb = realloc(b, cap + 1);
            if (nb == NULL) {
                free(b);
            }
            b = nb;
        }
    }
    fclose(f);
    if (b != NULL) {
        b[len] = '\0';
        *n = len;
    }
    return b;
}

/* The head's "format" (0 without one, -1 when the file or its head is missing). */
static long long head_format(const char *path)
{
    size_t n = 0;
    char *b = head_slurp(path, &n);
    char *nl = b != NULL ? strchr(b, '\n') : NULL;
    json_t *h = nl != NULL && nl - b > 9 ? json_loadb(b + 9, (size_t)(nl - b - 9), 0, NULL) : NULL;
    free(b);
    if (h == NULL) {
        return -1;
    }
    json_t *v = json_object_get(h, "format");
    long long out = json_is_integer(v) ? (long long)json_integer_value(v) : 0;
    json_decref(h);
    return out;
}

/* Rewrites the head with "format": v (v < 0: without "format"). Returns 0 or -1. */
static int head_set_format(const char *path, long long v)
{
    size_t n = 0;
    char *b = head_slurp(path, &n);
    char *nl = b != NULL ? strchr(b, '\n') : NULL;
    json_t *h = nl != NULL && nl - b > 9 ? json_loadb(b + 9, (size_t)(nl - b - 9), 0, NULL) : NULL;
    if (h == NULL) {
        free(b);
        return -1;
    }
    if (v < 0) {
        json_object_del(h, "format");
    } else {
        json_object_set_new(h, "format", json_integer((json_int_t)v));
    }
    char *text = json_dumps(h, JSON_COMPACT);
    json_decref(h);
    FILE *f = text != NULL ? fopen(path, "wb") : NULL;
    int rc = f != NULL ? 0 : -1;
    if (f != NULL) {
        size_t tl = strlen(text);
        fprintf(f, "%08" PRIx32 " %s\n", kvl_crc32c(0, text, tl), text);
        fwrite(nl + 1, 1, n - (size_t)(nl + 1 - b), f);
        rc = fclose(f) == 0 ? 0 : -1;
    }
    free(text);
    free(b);
    return rc;
}

/* Fails unless both files' heads say format v. */
static void expect_heads(const char *snap, const char *log, long long v)
{
    assert_int_equal(head_format(snap), v);
    assert_int_equal(head_format(log), v);
}

/* Both files as written before versions were kept: heads without "format". */
static void heads_unversioned(const char *snap, const char *log)
{
    assert_int_equal(head_set_format(snap, -1), 0);
    assert_int_equal(head_set_format(log, -1), 0);
    expect_heads(snap, log, 0);
}

/* Opens what the files belong to, closing it again when that worked; returns what the open
 * returned, its sentence in err. */
typedef int (*head_open_fn)(void *ctx, char *err, size_t errlen);

/* Each file in turn with the next format (known + 1): the open refused with the sentence
 * (program: the daemon), the file untouched; then put back at known. */
static void expect_heads_refused(const char *snap, const char *log, unsigned known,
                                 const char *program, head_open_fn open_fn, void *ctx)
{
    const char *files[] = {snap, log};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(head_set_format(files[i], (long long)known + 1), 0);
        file_bytes_t before = file_bytes(files[i]);
        char err[1200] = "";
        assert_int_equal(open_fn(ctx, err, sizeof(err)), KVL_EPROTO);
        expect_newer_sentence(err, files[i], known + 1, known, program);
        expect_file_unchanged(files[i], &before);
        assert_int_equal(head_set_format(files[i], known), 0);
    }
}

#endif
