/*
 * test_frame.c — unit tests for the length-prefixed frame reader (common/frame.h).
 *
 * Frames are built by hand (header from kvl_frame_put_header, then payload) and fed to
 * the reader whole, in odd-sized chunks and a byte at a time; the reader must hand back
 * exactly the payloads that went in, ask for more while a frame is incomplete, refuse
 * zero and oversized lengths as soon as the header is complete, and report a stream that
 * ends inside a frame.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"
#include "kvl.h"

/* Appends one frame (header + payload) to b. */
static void put_frame(kvl_buf_t *b, const void *payload, uint32_t len)
{
    uint8_t hdr[KVL_FRAME_HEADER];
    kvl_frame_put_header(hdr, len);
    assert_int_equal(kvl_buf_append(b, hdr, sizeof(hdr)), 0);
    assert_int_equal(kvl_buf_append(b, payload, len), 0);
}

/* A payload of n bytes whose content depends on n and a seed, so frames differ. */
static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(seed * 31u + i * 7u + (i >> 8));
    }
}

static void test_put_header_big_endian(void **state)
{
    KVL_UNUSED(state);
    uint8_t h[KVL_FRAME_HEADER];
    kvl_frame_put_header(h, 0x01020304u);
    assert_int_equal(h[0], 0x01);
    assert_int_equal(h[1], 0x02);
    assert_int_equal(h[2], 0x03);
    assert_int_equal(h[3], 0x04);
    kvl_frame_put_header(h, 300);
    assert_int_equal(h[0], 0);
    assert_int_equal(h[1], 0);
    assert_int_equal(h[2], 1);
    assert_int_equal(h[3], 44);
}

static void test_round_trip(void **state)
{
    KVL_UNUSED(state);
    static const uint32_t sizes[] = {1, 2, 3, 4, 5, 100, 255, 256, 257, 4096, 70000};
    kvl_buf_t stream = {0};
    uint8_t *payloads[KVL_ARRAY_SIZE(sizes)];
    for (size_t i = 0; i < KVL_ARRAY_SIZE(sizes); i++) {
        payloads[i] = malloc(sizes[i]);
        assert_non_null(payloads[i]);
        fill(payloads[i], sizes[i], (unsigned)i);
        put_frame(&stream, payloads[i], sizes[i]);
    }

    kvl_frame_reader_t r;
    kvl_frame_reader_init(&r, 0);
    assert_int_equal(r.max, KVL_FRAME_MAX_DEFAULT);
    assert_int_equal(kvl_frame_reader_feed(&r, stream.data, stream.len), 0);
    for (size_t i = 0; i < KVL_ARRAY_SIZE(sizes); i++) {
        const uint8_t *p = NULL;
        size_t n = 0;
        assert_int_equal(kvl_frame_next(&r, &p, &n), 1);
        assert_int_equal(n, sizes[i]);
        assert_memory_equal(p, payloads[i], n);
    }
    const uint8_t *p = NULL;
    size_t n = 0;
    assert_int_equal(kvl_frame_next(&r, &p, &n), 0);
    assert_int_equal(kvl_frame_reader_finish(&r), 0);
    kvl_frame_reader_free(&r);

    /* The same stream in chunks of a prime size, taking frames out between feeds. */
    kvl_frame_reader_init(&r, 0);
    size_t got = 0;
    for (size_t off = 0; off < stream.len; off += 97) {
        size_t chunk = stream.len - off < 97 ? stream.len - off : 97;
        assert_int_equal(kvl_frame_reader_feed(&r, stream.data + off, chunk), 0);
        int rc;
        while ((rc = kvl_frame_next(&r, &p, &n)) == 1) {
            assert_true(got < KVL_ARRAY_SIZE(sizes));
            assert_int_equal(n, sizes[got]);
            assert_memory_equal(p, payloads[got], n);
            got++;
        }
        assert_int_equal(rc, 0);
    }
    assert_int_equal(got, KVL_ARRAY_SIZE(sizes));
    assert_int_equal(kvl_frame_reader_finish(&r), 0);
    kvl_frame_reader_free(&r);

    for (size_t i = 0; i < KVL_ARRAY_SIZE(sizes); i++) {
        free(payloads[i]);
    }
    kvl_buf_free(&stream);
}

/* A frame returned by kvl_frame_next stays intact while the next one is still partial,
 * and feeding more bytes does not lose what followed it. */
static void test_feed_after_partial_next(void **state)
{
    KVL_UNUSED(state);
    kvl_buf_t stream = {0};
    put_frame(&stream, "first", 5);
    put_frame(&stream, "second frame", 12);
    put_frame(&stream, "3", 1);

    kvl_frame_reader_t r;
    kvl_frame_reader_init(&r, 64);
    size_t cut = 4 + 5 + 6; /* first frame and 2 bytes of the second's payload */
    assert_int_equal(kvl_frame_reader_feed(&r, stream.data, cut), 0);
    const uint8_t *p;
    size_t n;
    assert_int_equal(kvl_frame_next(&r, &p, &n), 1);
    assert_int_equal(n, 5);
    assert_memory_equal(p, "first", 5);
    assert_int_equal(kvl_frame_next(&r, &p, &n), 0);
    assert_int_equal(kvl_frame_reader_finish(&r), KVL_EFRAME_TRUNCATED);

    assert_int_equal(kvl_frame_reader_feed(&r, stream.data + cut, stream.len - cut), 0);
    assert_int_equal(kvl_frame_next(&r, &p, &n), 1);
    assert_int_equal(n, 12);
    assert_memory_equal(p, "second frame", 12);
    /* Feeding right after a frame was handed out consumes that frame. */
    assert_int_equal(kvl_frame_reader_feed(&r, NULL, 0), 0);
    assert_int_equal(kvl_frame_next(&r, &p, &n), 1);
    assert_int_equal(n, 1);
    assert_memory_equal(p, "3", 1);
    assert_int_equal(kvl_frame_next(&r, &p, &n), 0);
    assert_int_equal(kvl_frame_reader_finish(&r), 0);
    kvl_frame_reader_free(&r);
    kvl_buf_free(&stream);
}

static void test_byte_at_a_time(void **state)
{
    KVL_UNUSED(state);
    uint8_t a[300], b[1];
    fill(a, sizeof(a), 1);
    b[0] = 0x5a;
    kvl_buf_t stream = {0};
    put_frame(&stream, a, sizeof(a));
    put_frame(&stream, b, sizeof(b));
    size_t end_a = 4 + sizeof(a);

    kvl_frame_reader_t r;
    kvl_frame_reader_init(&r, 1024);
    int frames = 0;
    for (size_t i = 0; i < stream.len; i++) {
        assert_int_equal(kvl_frame_reader_feed(&r, stream.data + i, 1), 0);
        const uint8_t *p;
        size_t n;
        int rc = kvl_frame_next(&r, &p, &n);
        if (i + 1 == end_a) {
            assert_int_equal(rc, 1);
            assert_int_equal(n, sizeof(a));
            assert_memory_equal(p, a, sizeof(a));
            frames++;
        } else if (i + 1 == stream.len) {
            assert_int_equal(rc, 1);
            assert_int_equal(n, 1);
            assert_int_equal(p[0], 0x5a);
            frames++;
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(kvl_frame_reader_finish(&r), KVL_EFRAME_TRUNCATED);
        }
    }
    assert_int_equal(frames, 2);
    assert_int_equal(kvl_frame_reader_finish(&r), 0);
    kvl_frame_reader_free(&r);
    kvl_buf_free(&stream);
}

static void test_truncated(void **state)
{
    KVL_UNUSED(state);
    uint8_t payload[10];
    fill(payload, sizeof(payload), 3);
    kvl_buf_t stream = {0};
    put_frame(&stream, payload, sizeof(payload));

    /* Every proper prefix of the frame: need more now, truncated at end of stream. */
    for (size_t cut = 1; cut < stream.len; cut++) {
        kvl_frame_reader_t r;
        kvl_frame_reader_init(&r, 0);
        assert_int_equal(kvl_frame_reader_feed(&r, stream.data, cut), 0);
        const uint8_t *p;
        size_t n;
        assert_int_equal(kvl_frame_next(&r, &p, &n), 0);
        assert_int_equal(kvl_frame_next(&r, &p, &n), 0);
        assert_int_equal(kvl_frame_reader_finish(&r), KVL_EFRAME_TRUNCATED);
        kvl_frame_reader_free(&r);
    }

    /* An empty stream ended on a boundary. */
    kvl_frame_reader_t r;
    kvl_frame_reader_init(&r, 0);
    assert_int_equal(kvl_frame_reader_finish(&r), 0);

    /* A whole frame followed by a partial one. */
    assert_int_equal(kvl_frame_reader_feed(&r, stream.data, stream.len), 0);
    assert_int_equal(kvl_frame_reader_feed(&r, stream.data, 7), 0);
    const uint8_t *p;
    size_t n;
    assert_int_equal(kvl_frame_next(&r, &p, &n), 1);
    assert_int_equal(n, sizeof(payload));
    assert_memory_equal(p, payload, n);
    assert_int_equal(kvl_frame_next(&r, &p, &n), 0);
    assert_int_equal(kvl_frame_reader_finish(&r), KVL_EFRAME_TRUNCATED);
    kvl_frame_reader_free(&r);
    kvl_buf_free(&stream);
}

static void test_oversized(void **state)
{
    KVL_UNUSED(state);
    uint8_t h[KVL_FRAME_HEADER];
    const uint8_t *p;
    size_t n;

    /* Exactly the maximum is fine. */
    kvl_frame_reader_t r;
    kvl_frame_reader_init(&r, 16);
    uint8_t payload[16];
    fill(payload, sizeof(payload), 9);
    kvl_frame_put_header(h, 16);
    assert_int_equal(kvl_frame_reader_feed(&r, h, sizeof(h)), 0);
    assert_int_equal(kvl_frame_next(&r, &p, &n), 0);
    assert_int_equal(kvl_frame_reader_feed(&r, payload, sizeof(payload)), 0);
    assert_int_equal(kvl_frame_next(&r, &p, &n), 1);
    assert_int_equal(n, 16);
    kvl_frame_reader_free(&r);

    /* One above: reported when the 4th header byte arrives, no payload needed. */
    kvl_frame_reader_init(&r, 16);
    kvl_frame_put_header(h, 17);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(kvl_frame_reader_feed(&r, &h[i], 1), 0);
        assert_int_equal(kvl_frame_next(&r, &p, &n), 0);
    }
    assert_int_equal(kvl_frame_reader_feed(&r, &h[3], 1), 0);
    assert_int_equal(kvl_frame_next(&r, &p, &n), KVL_EFRAME_TOO_BIG);
    kvl_frame_reader_free(&r);

    /* The default maximum, and the largest length a header can hold. */
    static const uint32_t big[] = {KVL_FRAME_MAX_DEFAULT + 1u, 0x7fffffffu, 0xffffffffu};
    for (size_t i = 0; i < KVL_ARRAY_SIZE(big); i++) {
        kvl_frame_reader_init(&r, 0);
        kvl_frame_put_header(h, big[i]);
        assert_int_equal(kvl_frame_reader_feed(&r, h, sizeof(h)), 0);
        assert_int_equal(kvl_frame_next(&r, &p, &n), KVL_EFRAME_TOO_BIG);
        kvl_frame_reader_free(&r);
    }
    /* The default maximum itself passes the header check (and waits for the payload). */
    kvl_frame_reader_init(&r, 0);
    kvl_frame_put_header(h, KVL_FRAME_MAX_DEFAULT);
    assert_int_equal(kvl_frame_reader_feed(&r, h, sizeof(h)), 0);
    assert_int_equal(kvl_frame_next(&r, &p, &n), 0);
    assert_int_equal(kvl_frame_reader_finish(&r), KVL_EFRAME_TRUNCATED);
    kvl_frame_reader_free(&r);
}

static void test_zero_length(void **state)
{
    KVL_UNUSED(state);
    kvl_frame_reader_t r;
    kvl_frame_reader_init(&r, 0);
    uint8_t h[KVL_FRAME_HEADER];
    const uint8_t *p;
    size_t n;
    kvl_buf_t stream = {0};
    put_frame(&stream, "ok", 2);
    kvl_frame_put_header(h, 0);
    assert_int_equal(kvl_buf_append(&stream, h, sizeof(h)), 0);
    assert_int_equal(kvl_frame_reader_feed(&r, stream.data, stream.len), 0);
    assert_int_equal(kvl_frame_next(&r, &p, &n), 1);
    assert_int_equal(n, 2);
    assert_int_equal(kvl_frame_next(&r, &p, &n), KVL_EFRAME_EMPTY);
    kvl_frame_reader_free(&r);
    kvl_buf_free(&stream);
}

static void test_garbage(void **state)
{
    KVL_UNUSED(state);
    const uint8_t *p;
    size_t n;

    /* Someone speaking HTTP at us: "GET " read as a length is far above any maximum. */
    kvl_frame_reader_t r;
    kvl_frame_reader_init(&r, 0);
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(kvl_frame_reader_feed(&r, http, strlen(http)), 0);
    assert_int_equal(kvl_frame_next(&r, &p, &n), KVL_EFRAME_TOO_BIG);
    kvl_frame_reader_free(&r);

    /* Random streams against a small maximum: every frame handed out lies inside the
     * stream, its length agrees with the header before it, and the walk ends in an error,
     * a need for more bytes, or a clean end. */
    uint32_t x = 12345;
    for (int round = 0; round < 2000; round++) {
        uint8_t data[64];
        size_t len = (size_t)(round % 64) + 1;
        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            data[i] = (uint8_t)(x >> 16);
            if (round % 3 == 0 && i % 8 < 3) {
                data[i] = 0; /* make small lengths common */
            }
        }
        kvl_frame_reader_init(&r, 40);
        assert_int_equal(kvl_frame_reader_feed(&r, data, len), 0);
        size_t off = 0;
        int rc;
        while ((rc = kvl_frame_next(&r, &p, &n)) == 1) {
            assert_true(n >= 1 && n <= 40);
            assert_true(off + 4 + n <= len);
            uint32_t hdr = (uint32_t)data[off] << 24 | (uint32_t)data[off + 1] << 16 |
                           (uint32_t)data[off + 2] << 8 | data[off + 3];
            assert_int_equal(hdr, n);
            assert_memory_equal(p, data + off + 4, n);
            off += 4 + n;
        }
        if (rc == 0) {
            assert_int_equal(kvl_frame_reader_finish(&r), off == len ? 0 : KVL_EFRAME_TRUNCATED);
        } else {
            assert_true(rc == KVL_EFRAME_EMPTY || rc == KVL_EFRAME_TOO_BIG);
            assert_true(len - off >= 4);
        }
        kvl_frame_reader_free(&r);
    }
}

static void test_free_and_reuse(void **state)
{
    KVL_UNUSED(state);
    kvl_frame_reader_t r;
    kvl_frame_reader_init(&r, 0);
    uint8_t h[KVL_FRAME_HEADER];
    kvl_frame_put_header(h, 3);
    assert_int_equal(kvl_frame_reader_feed(&r, h, 2), 0);
    kvl_frame_reader_free(&r);
    assert_int_equal(kvl_frame_reader_finish(&r), 0);
    /* After free the reader starts from an empty stream. */
    kvl_buf_t stream = {0};
    put_frame(&stream, "abc", 3);
    assert_int_equal(kvl_frame_reader_feed(&r, stream.data, stream.len), 0);
    const uint8_t *p;
    size_t n;
    assert_int_equal(kvl_frame_next(&r, &p, &n), 1);
    assert_int_equal(n, 3);
    assert_memory_equal(p, "abc", 3);
    kvl_frame_reader_free(&r);
    kvl_buf_free(&stream);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_header_big_endian),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_feed_after_partial_next),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_free_and_reuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
