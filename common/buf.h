/*
 * buf.h — a growable byte buffer and a bump-pointer arena.
 *
 * kvl_buf_t owns its bytes; kvl_buf_free releases them. kvl_arena_t hands out memory that
 * lives until kvl_arena_free, so a decoded message is freed in one call.
 */
#ifndef KVL_BUF_H
#define KVL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct kvl_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} kvl_buf_t;

/* Makes room for at least `extra` more bytes. Returns 0 or KVL_ENOMEM. */
int kvl_buf_reserve(kvl_buf_t *b, size_t extra);
/* Appends n bytes. Returns 0 or KVL_ENOMEM. */
int kvl_buf_append(kvl_buf_t *b, const void *p, size_t n);
/* Drops the first n bytes, moving the rest to the front. */
void kvl_buf_consume(kvl_buf_t *b, size_t n);
void kvl_buf_reset(kvl_buf_t *b);
/* Frees the bytes; the buffer may be used again afterwards. NULL-safe. */
void kvl_buf_free(kvl_buf_t *b);

typedef struct kvl_arena_chunk kvl_arena_chunk_t;
typedef struct kvl_arena {
    kvl_arena_chunk_t *head;
} kvl_arena_t;

/* Returns zeroed memory aligned for any type, or NULL when out of memory. */
void *kvl_arena_alloc(kvl_arena_t *a, size_t n);
/* Copies a string (NULL becomes ""). Returns NULL when out of memory. */
char *kvl_arena_strdup(kvl_arena_t *a, const char *s);
/* Frees everything the arena handed out. NULL-safe. */
void kvl_arena_free(kvl_arena_t *a);

#endif
