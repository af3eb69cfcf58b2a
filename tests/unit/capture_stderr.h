/*
 * capture_stderr.h — for the tests that check a logged sentence: stderr (where the daemons'
 * log lines go) sent to a file while a call runs, then read back. Included by one test file
 * each (static functions).
 */
#ifndef KVL_TEST_CAPTURE_STDERR_H
#define KVL_TEST_CAPTURE_STDERR_H

#include <stdio.h>
#include <unistd.h>

typedef struct capture {
    int saved; /* the real stderr, -1 when not capturing */
    FILE *f;   /* the file it goes to */
} capture_t;

/* Sends stderr to path (made again empty). Returns 0 or -1. */
static int capture_begin(capture_t *c, const char *path)
{
    fflush(stderr);
    c->f = fopen(path, "w+");
    c->saved = c->f != NULL ? dup(2) : -1;
    if (c->saved < 0 || dup2(fileno(c->f), 2) < 0) {
        return -1;
    }
    return 0;
}

/* Gives stderr back and reads what was written into out (NUL-terminated, cut at outlen - 1).
 * Returns its length. */
static size_t capture_end(capture_t *c, char *out, size_t outlen)
{
    fflush(stderr);
    if (c->saved >= 0) {
        dup2(c->saved, 2);
        close(c->saved);
        c->saved = -1;
    }
    size_t n = 0;
    if (c->f != NULL) {
        rewind(c->f);
        n = fread(out, 1, outlen - 1, c->f);
        fclose(c->f);
        c->f = NULL;
    }
    out[n] = '\0';
    return n;
}

#endif
