/*
 * newer_format.h — for the tests of the files that carry a format version (common/fileio.h,
 * kvl_format_check): the sentence a file of a newer version is refused with, checked in an
 * error text; a file's bytes kept to check it was left untouched. Included after cmocka.h by
 * one test file each (static functions).
 */
#ifndef KVL_TEST_NEWER_FORMAT_H
#define KVL_TEST_NEWER_FORMAT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fails unless text holds the refusal of path (format found; program reads up to known). */
static void expect_newer_sentence(const char *text, const char *path, unsigned found,
                                  unsigned known, const char *program)
{
    size_t cap = 2 * strlen(path) + 2 * strlen(program) + 200;
    char *want = malloc(cap);
    assert_non_null(want);
    snprintf(want, cap,
             "%s: written by a newer kaaval (format %u; this %s reads up to %u): run the newer "
             "%s, or move %s aside to start afresh (",
             path, found, program, known, program, path);
    if (strstr(text, want) == NULL) {
        fail_msg("expected \"%s\" in \"%s\"", want, text);
    }
    free(want);
}

/* A file's bytes, to compare later. */
typedef struct file_bytes {
    char *p;
    size_t n;
} file_bytes_t;

static file_bytes_t file_bytes(const char *path)
{
    file_bytes_t b = {NULL, 0};
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 0;
    for (;;) {
        if (b.n == cap) {
            cap = cap ? cap * 2 : 4096;
            b.p = realloc(b.p, cap);
            assert_non_null(b.p);
        }
        size_t k = fread(b.p + b.n, 1, cap - b.n, f);
        if (k == 0) {
            break;
        }
        b.n += k;
    }
    fclose(f);
    return b;
}

/* Fails unless path still holds exactly the bytes in b; frees b. */
static void expect_file_unchanged(const char *path, file_bytes_t *b)
{
    file_bytes_t now = file_bytes(path);
    assert_int_equal(now.n, b->n);
    assert_memory_equal(now.p, b->p, b->n);
    free(now.p);
    free(b->p);
    b->p = NULL;
}

#endif
