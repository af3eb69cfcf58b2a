/*
 * buf.h — a growable byte buffer and a bump-pointer arena.
 *
 * kvl_buf_t owns its bytes; kvl_buf_free releases them. kvl_arena_t hands out memory that
 * lives until kvl_arena_free, so a decoded message is freed in one call. KVL_VEC is a
 * growable array of any type; kvl_put_le32 and friends write and read the little-endian
 * fields of kaaval's files (the spool, the journal, the segment log).
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

/* A growable array: KVL_VEC(int) ints = {0}; ... free(ints.v). */
#define KVL_VEC(type)                                                                              \
    struct {                                                                                       \
        type *v;                                                                                   \
        size_t n, cap;                                                                             \
    }

/* v (an array of *cap elements of elem bytes) reallocated to twice its capacity (64 at
 * first): the new array with *cap updated, or NULL (v and *cap untouched) when out of
 * memory. */
void *kvl_vec_grow(void *v, size_t *cap, size_t elem);

/* Appends val; when out of memory runs the statement on_oom instead (the array unchanged). */
#define KVL_VEC_PUSH(vec, val, on_oom)                                                             \
    do {                                                                                           \
        if ((vec).n == (vec).cap) {                                                                \
            void *nv_ = kvl_vec_grow((vec).v, &(vec).cap, sizeof(*(vec).v));                       \
            if (nv_ == NULL) {                                                                     \
                on_oom;                                                                            \
                break;                                                                             \
            }                                                                                      \
            (vec).v = nv_;                                                                         \
        }                                                                                          \
        (vec).v[(vec).n++] = (val);                                                                \
    } while (0)

/* Little-endian fields of kaaval's on-disk records. */
static inline void kvl_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline void kvl_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static inline uint32_t kvl_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t kvl_get_le64(const uint8_t *p)
{
    return (uint64_t)kvl_get_le32(p) | (uint64_t)kvl_get_le32(p + 4) << 32;
}

#endif
