/*
 * buf.c — growable byte buffer and arena allocator (see buf.h).
 */
#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvl.h"

int kvl_buf_reserve(kvl_buf_t *b, size_t extra)
{
    if (b->cap - b->len >= extra) {
        return 0;
    }
    size_t need = b->len + extra;
    if (need < b->len) {
        return KVL_ENOMEM;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap *= 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (p == NULL) {
        return KVL_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int kvl_buf_append(kvl_buf_t *b, const void *p, size_t n)
{
    if (n == 0) {
        return 0;
    }
    int rc = kvl_buf_reserve(b, n);
    if (rc != 0) {
        return rc;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void kvl_buf_consume(kvl_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void kvl_buf_reset(kvl_buf_t *b)
{
    b->len = 0;
}

void kvl_buf_free(kvl_buf_t *b)
{
    if (b == NULL) {
        return;
    }
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

struct kvl_arena_chunk {
    kvl_arena_chunk_t *next;
    size_t used;
    size_t size;
    max_align_t data[];
};

void *kvl_arena_alloc(kvl_arena_t *a, size_t n)
{
    const size_t align = sizeof(max_align_t);
    n = (n + align - 1) / align * align;
    if (n == 0) {
        n = align;
    }
    kvl_arena_chunk_t *c = a->head;
    if (c == NULL || c->size - c->used < n) {
        size_t size = n > 8192 ? n : 8192;
        c = calloc(1, sizeof(*c) + size);
        if (c == NULL) {
            return NULL;
        }
        c->size = size;
        c->next = a->head;
        a->head = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    return p;
}

char *kvl_arena_strdup(kvl_arena_t *a, const char *s)
{
    if (s == NULL) {
        s = "";
    }
    size_t n = strlen(s) + 1;
    char *p = kvl_arena_alloc(a, n);
    if (p != NULL) {
        memcpy(p, s, n);
    }
    return p;
}

void kvl_arena_free(kvl_arena_t *a)
{
    if (a == NULL) {
        return;
    }
    kvl_arena_chunk_t *c = a->head;
    while (c != NULL) {
        kvl_arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

void *kvl_vec_grow(void *v, size_t *cap, size_t elem)
{
    size_t ncap = *cap ? *cap * 2 : 64;
    if (elem == 0 || ncap > SIZE_MAX / elem) {
        return NULL;
    }
    void *nv = realloc(v, ncap * elem);
    if (nv != NULL) {
        *cap = ncap;
    }
    return nv;
}
