/*
 * frame.c — length-prefixed frame reader (see frame.h).
 */
#include "frame.h"

#include "kvl.h"

void kvl_frame_reader_init(kvl_frame_reader_t *r, size_t max)
{
    r->buf = (kvl_buf_t){0};
    r->max = max ? max : KVL_FRAME_MAX_DEFAULT;
    r->pending = 0;
}

void kvl_frame_reader_free(kvl_frame_reader_t *r)
{
    kvl_buf_free(&r->buf);
    r->pending = 0;
}

int kvl_frame_reader_feed(kvl_frame_reader_t *r, const void *data, size_t len)
{
    if (r->pending) {
        kvl_buf_consume(&r->buf, r->pending);
        r->pending = 0;
    }
    return kvl_buf_append(&r->buf, data, len);
}

int kvl_frame_next(kvl_frame_reader_t *r, const uint8_t **payload, size_t *len)
{
    if (r->pending) {
        kvl_buf_consume(&r->buf, r->pending);
        r->pending = 0;
    }
    if (r->buf.len < KVL_FRAME_HEADER) {
        return 0;
    }
    const uint8_t *h = r->buf.data;
    uint32_t n = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 | (uint32_t)h[2] << 8 | h[3];
    if (n == 0) {
        return KVL_EFRAME_EMPTY;
    }
    if (n > r->max) {
        return KVL_EFRAME_TOO_BIG;
    }
    if (r->buf.len - KVL_FRAME_HEADER < n) {
        return 0;
    }
    *payload = h + KVL_FRAME_HEADER;
    *len = n;
    r->pending = KVL_FRAME_HEADER + (size_t)n;
    return 1;
}

int kvl_frame_reader_finish(const kvl_frame_reader_t *r)
{
    return r->buf.len > r->pending ? KVL_EFRAME_TRUNCATED : 0;
}

void kvl_frame_put_header(uint8_t hdr[KVL_FRAME_HEADER], uint32_t len)
{
    hdr[0] = (uint8_t)(len >> 24);
    hdr[1] = (uint8_t)(len >> 16);
    hdr[2] = (uint8_t)(len >> 8);
    hdr[3] = (uint8_t)len;
}
