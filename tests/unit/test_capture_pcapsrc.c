/*
 * test_capture_pcapsrc.c — unit tests for the capture's file reader (agent/capture/pcapsrc.h)
 * on pcap files written here record by record: microsecond and nanosecond files read from the
 * memory mapping (every byte, length and stamp as written, across more than the 1 MiB windows
 * that leave the resident set), frame by frame and in batches alike; a BPF filter applied to
 * mapped records; a record longer than the file's snap length (libpcap takes over there and
 * the records after it still come whole); a file cut inside a record (every whole record, then
 * libpcap's error); a file cut shorter after it was opened (the whole records before the cut,
 * no SIGBUS from pages it lost); a swapped-byte-order file (libpcap alone) read the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "pcapsrc.h"

#define MAX_FRAME 1600

static char dir[64];

/* One record as the test wrote it. */
typedef struct rec {
    uint32_t sec, frac, cap, wire;
    uint8_t data[MAX_FRAME];
} rec_t;

static uint32_t swap32(uint32_t v)
{
    return v >> 24 | (v >> 8 & 0xff00u) | (v << 8 & 0xff0000u) | v << 24;
}

static void put32(FILE *f, uint32_t v, int swapped)
{
    uint32_t w = swapped ? swap32(v) : v;
    assert_int_equal(fwrite(&w, 4, 1, f), 1);
}

static void put16(FILE *f, uint16_t v, int swapped)
{
    uint16_t w = swapped ? (uint16_t)(v >> 8 | v << 8) : v;
    assert_int_equal(fwrite(&w, 2, 1, f), 1);
}

static void header(FILE *f, uint32_t magic, uint32_t snap, int swapped)
{
    put32(f, magic, swapped);
    put16(f, 2, swapped);
    put16(f, 4, swapped);
    put32(f, 0, swapped);
    put32(f, 0, swapped);
    put32(f, snap, swapped);
    put32(f, 1, swapped); /* Ethernet */
}

static void record(FILE *f, const rec_t *r, int swapped)
{
    put32(f, r->sec, swapped);
    put32(f, r->frac, swapped);
    put32(f, r->cap, swapped);
    put32(f, r->wire, swapped);
    assert_int_equal(fwrite(r->data, 1, r->cap, f), r->cap);
}

/* An Ethernet frame of IPv4 with UDP (udp true) or TCP, its bytes after the headers from seed. */
static void make(rec_t *r, uint32_t i, bool udp, uint32_t cap)
{
    memset(r, 0, sizeof(*r));
    r->sec = 1700000000u + i;
    r->frac = (i * 7919u) % 1000000u;
    r->cap = cap;
    r->wire = cap + (i % 3 == 0 ? 100 : 0);
    uint8_t *d = r->data;
    d[12] = 0x08; /* IPv4 */
    d[14] = 0x45;
    uint16_t tot = (uint16_t)(r->wire - 14);
    d[16] = (uint8_t)(tot >> 8);
    d[17] = (uint8_t)tot;
    d[22] = 64;
    d[23] = udp ? 17 : 6;
    d[26] = 10;
    d[29] = (uint8_t)i;
    d[30] = 10;
    d[33] = 1;
    for (uint32_t k = 34; k < cap; k++) {
        d[k] = (uint8_t)(k * 31u + i);
    }
}

static char *path_of(const char *name)
{
    static char p[128];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return p;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/kvl-pcapsrc-XXXXXX");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    const char *names[] = {"us.pcap", "ns.pcap", "snap.pcap",  "cut.pcap",
                           "sw.pcap", "f.pcap",  "shrunk.pcap"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        unlink(path_of(names[i]));
    }
    return rmdir(dir);
}

static void same(const kvl_frame_t *f, const rec_t *r, bool nano)
{
    assert_int_equal(f->cap, r->cap);
    assert_int_equal(f->wire, r->wire);
    assert_int_equal(f->ts_ns, (int64_t)r->sec * 1000000000 + (int64_t)r->frac * (nano ? 1 : 1000));
    assert_memory_equal(f->data, r->data, r->cap);
}

typedef struct seen {
    rec_t *recs;
    size_t n, got;
    bool nano;
} seen_t;

static void on_frame(void *arg, const kvl_frame_t *f)
{
    seen_t *s = arg;
    assert_true(s->got < s->n);
    same(f, &s->recs[s->got], s->nano);
    s->got++;
}

/* n records of sizes 60..1514, written with magic; read back both ways. */
static void round_trip(uint32_t magic, bool nano, const char *name)
{
    size_t n = 4000; /* about 3 MiB: past the mapping's windows */
    rec_t *recs = calloc(n, sizeof(*recs));
    assert_non_null(recs);
    FILE *f = fopen(path_of(name), "wb");
    assert_non_null(f);
    header(f, magic, 65535, 0);
    for (uint32_t i = 0; i < n; i++) {
        make(&recs[i], i, i % 2 == 0, 60 + (i * 97u) % 1455u);
        if (nano) {
            recs[i].frac = (i * 104729u) % 1000000000u;
        }
        record(f, &recs[i], 0);
    }
    assert_int_equal(fclose(f), 0);

    char err[256];
    kvl_pcapsrc_t *s = kvl_pcapsrc_open_file(path_of(name), NULL, err, sizeof(err));
    assert_non_null(s);
    kvl_frame_t fr;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(kvl_pcapsrc_next(s, &fr, err, sizeof(err)), 1);
        same(&fr, &recs[i], nano);
    }
    assert_int_equal(kvl_pcapsrc_next(s, &fr, err, sizeof(err)), 0);
    kvl_pcapsrc_close(s);

    s = kvl_pcapsrc_open_file(path_of(name), NULL, err, sizeof(err));
    assert_non_null(s);
    seen_t seen = {.recs = recs, .n = n, .nano = nano};
    int rc;
    int turns = 0;
    while ((rc = kvl_pcapsrc_read(s, 333, on_frame, &seen, err, sizeof(err))) > 0) {
        assert_true(rc <= 333);
        assert_true(++turns <= 100);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(seen.got, n);
    kvl_pcapsrc_close(s);
    free(recs);
}

static void test_micro(void **state)
{
    (void)state;
    round_trip(0xa1b2c3d4u, false, "us.pcap");
}

static void test_nano(void **state)
{
    (void)state;
    round_trip(0xa1b23c4du, true, "ns.pcap");
}

static void test_filter(void **state)
{
    (void)state;
    rec_t *recs = calloc(50, sizeof(*recs));
    assert_non_null(recs);
    FILE *f = fopen(path_of("f.pcap"), "wb");
    assert_non_null(f);
    header(f, 0xa1b2c3d4u, 65535, 0);
    for (uint32_t i = 0; i < 50; i++) {
        make(&recs[i], i, i % 5 == 0, 200);
        record(f, &recs[i], 0);
    }
    assert_int_equal(fclose(f), 0);
    char err[256];
    kvl_pcapsrc_t *s = kvl_pcapsrc_open_file(path_of("f.pcap"), "udp", err, sizeof(err));
    assert_non_null(s);
    kvl_frame_t fr;
    for (uint32_t i = 0; i < 50; i += 5) {
        assert_int_equal(kvl_pcapsrc_next(s, &fr, err, sizeof(err)), 1);
        same(&fr, &recs[i], false);
    }
    assert_int_equal(kvl_pcapsrc_next(s, &fr, err, sizeof(err)), 0);
    kvl_pcapsrc_close(s);
    free(recs);
}

/* A record longer than the file's snap length: libpcap takes over at it (and keeps the snap
 * length's bytes); the records after it come whole. */
static void test_over_snap(void **state)
{
    (void)state;
    rec_t *recs = calloc(6, sizeof(*recs));
    assert_non_null(recs);
    FILE *f = fopen(path_of("snap.pcap"), "wb");
    assert_non_null(f);
    header(f, 0xa1b2c3d4u, 300, 0);
    for (uint32_t i = 0; i < 6; i++) {
        make(&recs[i], i, true, i == 2 ? 400 : 250);
        record(f, &recs[i], 0);
    }
    assert_int_equal(fclose(f), 0);
    char err[256];
    kvl_pcapsrc_t *s = kvl_pcapsrc_open_file(path_of("snap.pcap"), NULL, err, sizeof(err));
    assert_non_null(s);
    kvl_frame_t fr;
    for (uint32_t i = 0; i < 6; i++) {
        assert_int_equal(kvl_pcapsrc_next(s, &fr, err, sizeof(err)), 1);
        if (i == 2) {
            assert_int_equal(fr.cap, 300);
            assert_int_equal(fr.wire, recs[i].wire);
            assert_memory_equal(fr.data, recs[i].data, 300);
        } else {
            same(&fr, &recs[i], false);
        }
    }
    assert_int_equal(kvl_pcapsrc_next(s, &fr, err, sizeof(err)), 0);
    kvl_pcapsrc_close(s);
    free(recs);
}

/* A file cut inside its last record: the whole records, then libpcap's error. */
static void test_cut(void **state)
{
    (void)state;
    rec_t *recs = calloc(4, sizeof(*recs));
    assert_non_null(recs);
    FILE *f = fopen(path_of("cut.pcap"), "wb");
    assert_non_null(f);
    header(f, 0xa1b2c3d4u, 65535, 0);
    for (uint32_t i = 0; i < 4; i++) {
        make(&recs[i], i, true, 500);
        if (i < 3) {
            record(f, &recs[i], 0);
        }
    }
    recs[3].cap = 200; /* the header promises 500 */
    put32(f, recs[3].sec, 0);
    put32(f, recs[3].frac, 0);
    put32(f, 500, 0);
    put32(f, recs[3].wire, 0);
    assert_int_equal(fwrite(recs[3].data, 1, 200, f), 200);
    assert_int_equal(fclose(f), 0);
    char err[256] = "";
    kvl_pcapsrc_t *s = kvl_pcapsrc_open_file(path_of("cut.pcap"), NULL, err, sizeof(err));
    assert_non_null(s);
    kvl_frame_t fr;
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(kvl_pcapsrc_next(s, &fr, err, sizeof(err)), 1);
        same(&fr, &recs[i], false);
    }
    assert_int_equal(kvl_pcapsrc_next(s, &fr, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "after 3 frames"));
    assert_non_null(strstr(err, "truncated"));
    kvl_pcapsrc_close(s);
    free(recs);
}

/* A file cut shorter between its opening and its reading (a capture rewriting it): the records
 * before the cut come whole, then libpcap's word on the short file; no page the file lost is
 * read. */
static void test_shrunk(void **state)
{
    (void)state;
    size_t n = 4000;
    rec_t *recs = calloc(n, sizeof(*recs));
    assert_non_null(recs);
    FILE *f = fopen(path_of("shrunk.pcap"), "wb");
    assert_non_null(f);
    header(f, 0xa1b2c3d4u, 65535, 0);
    long cut = 0;
    size_t whole = 0;
    for (uint32_t i = 0; i < n; i++) {
        make(&recs[i], i, true, 700);
        record(f, &recs[i], 0);
        if (ftell(f) <= 1500000) {
            whole = i + 1;
            cut = ftell(f);
        }
    }
    assert_int_equal(fclose(f), 0);
    char err[256] = "";
    kvl_pcapsrc_t *s = kvl_pcapsrc_open_file(path_of("shrunk.pcap"), NULL, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(truncate(path_of("shrunk.pcap"), cut + 100), 0); /* inside a record */
    kvl_frame_t fr;
    for (size_t i = 0; i < whole; i++) {
        assert_int_equal(kvl_pcapsrc_next(s, &fr, err, sizeof(err)), 1);
        same(&fr, &recs[i], false);
    }
    assert_int_equal(kvl_pcapsrc_next(s, &fr, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "truncated"));
    kvl_pcapsrc_close(s);
    free(recs);
}

/* The other byte order: libpcap reads it alone, the same frames. */
static void test_swapped(void **state)
{
    (void)state;
    rec_t *recs = calloc(20, sizeof(*recs));
    assert_non_null(recs);
    FILE *f = fopen(path_of("sw.pcap"), "wb");
    assert_non_null(f);
    header(f, 0xa1b2c3d4u, 65535, 1);
    for (uint32_t i = 0; i < 20; i++) {
        make(&recs[i], i, i % 2 == 1, 100 + 10 * i);
        record(f, &recs[i], 1);
    }
    assert_int_equal(fclose(f), 0);
    char err[256];
    kvl_pcapsrc_t *s = kvl_pcapsrc_open_file(path_of("sw.pcap"), NULL, err, sizeof(err));
    assert_non_null(s);
    kvl_frame_t fr;
    for (uint32_t i = 0; i < 20; i++) {
        assert_int_equal(kvl_pcapsrc_next(s, &fr, err, sizeof(err)), 1);
        same(&fr, &recs[i], false);
    }
    assert_int_equal(kvl_pcapsrc_next(s, &fr, err, sizeof(err)), 0);
    kvl_pcapsrc_close(s);
    free(recs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_micro),   cmocka_unit_test(test_nano),
        cmocka_unit_test(test_filter),  cmocka_unit_test(test_over_snap),
        cmocka_unit_test(test_cut),     cmocka_unit_test(test_shrunk),
        cmocka_unit_test(test_swapped),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
