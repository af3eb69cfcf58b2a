/*
 * frame.h — length-prefixed frames on a byte stream.
 *
 * A frame is a 4-byte big-endian length followed by that many payload bytes. The reader
 * accumulates bytes as they arrive and hands out whole payloads; a length of zero or
 * above the reader's maximum is an error, and so is a stream that ends inside a frame.
 * The reader knows nothing of what the payload holds (wire.h decodes it).
 */
#ifndef KVL_FRAME_H
#define KVL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define KVL_FRAME_HEADER 4u
#define KVL_FRAME_MAX_DEFAULT (4u * 1024u * 1024u)

typedef struct kvl_frame_reader {
    kvl_buf_t buf;
    size_t max;     /* largest payload accepted */
    size_t pending; /* bytes of the frame last returned by kvl_frame_next, 0 if none */
} kvl_frame_reader_t;

void kvl_frame_reader_init(kvl_frame_reader_t *r, size_t max);
void kvl_frame_reader_free(kvl_frame_reader_t *r);
/* Appends received bytes. Returns 0 or KVL_ENOMEM. */
int kvl_frame_reader_feed(kvl_frame_reader_t *r, const void *data, size_t len);
/* Returns 1 and points *payload and *len at the next whole frame (valid until the next
 * call on the reader), 0 if more bytes are needed, or KVL_EFRAME_TOO_BIG / KVL_EFRAME_EMPTY. The
 * previous frame is consumed by this call. An oversized length is reported as soon as the
 * header arrives, before its payload is buffered. */
int kvl_frame_next(kvl_frame_reader_t *r, const uint8_t **payload, size_t *len);
/* At end of stream: 0 if the stream ended on a frame boundary, else KVL_EFRAME_TRUNCATED. */
int kvl_frame_reader_finish(const kvl_frame_reader_t *r);

/* Writes the 4-byte header for a payload of `len` bytes. */
void kvl_frame_put_header(uint8_t hdr[KVL_FRAME_HEADER], uint32_t len);

#endif
