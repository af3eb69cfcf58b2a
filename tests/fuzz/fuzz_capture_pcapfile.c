/*
 * fuzz_capture_pcapfile.c — libFuzzer target for the capture's file reader
 * (agent/capture/pcapsrc.h): a pcap file of any bytes.
 *
 * The input is the whole file, held in a memory file (memfd) and opened by its /proc path,
 * so the reader maps it as it maps a file on disk. Its frames, read with kvl_pcapsrc_read in
 * batches and kvl_pcapsrc_next one by one, are compared with libpcap's own reading of the
 * same bytes: the same number of frames, each with the same captured length, wire length,
 * time and bytes, and an error where libpcap stops with one. A difference aborts; so does a
 * frame whose bytes the reader did not hold (every byte is read, so a frame past the mapping
 * faults). Each frame also goes through the decoder, as the capture hands it on.
 */
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "decode.h"
#include "fuzz_check.h"
#include "pcapsrc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAMES 4096 /* a frame takes at least 16 bytes of the input; bounded anyway */
/* Times the reader reports exactly: within 2^63 ns less a few seconds (years 1678-2262) */
#define LIMIT_NS ((__int128)INT64_MAX - (__int128)4000000000)

typedef struct frame_rec {
    uint32_t cap, wire;
    int64_t ts_ns;
    bool exact;   /* libpcap's time is one the nanosecond count holds: ts_ns must be it */
    uint64_t sum; /* of every captured byte, each byte read */
} frame_rec_t;

typedef struct got {
    frame_rec_t f[MAX_FRAMES];
    size_t n;
    int end; /* 0: the file's end, -1: an error */
} got_t;

static uint64_t sum_of(const uint8_t *b, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211ull;
    }
    return h;
}

static void keep(got_t *g, const kvl_frame_t *f, kvl_link_t link)
{
    CHECK(g->n < MAX_FRAMES);
    g->f[g->n++] = (frame_rec_t){
        .cap = f->cap, .wire = f->wire, .ts_ns = f->ts_ns, .sum = sum_of(f->data, f->cap)};
    kvl_pkt_t p;
    kvl_dec_reason_t r = kvl_decode(link, f->data, f->cap, f->wire, &p);
    CHECK((unsigned)r < KVL_DEC__COUNT);
}

typedef struct cb_arg {
    got_t *g;
    kvl_link_t link;
} cb_arg_t;

static void on_frame(void *arg, const kvl_frame_t *f)
{
    cb_arg_t *a = arg;
    keep(a->g, f, a->link);
}

/* The file read by kaaval's reader: in batches of `batch` frames (0: one by one with next).
 * False when the reader refused to open it. */
static bool read_kaaval(const char *path, int batch, got_t *g)
{
    char err[512];
    kvl_pcapsrc_t *s = kvl_pcapsrc_open_file(path, NULL, err, sizeof(err));
    if (s == NULL) {
        CHECK(err[0] != '\0');
        return false;
    }
    cb_arg_t a = {g, kvl_pcapsrc_link(s)};
    g->n = 0;
    g->end = 0;
    for (size_t turn = 0; turn <= MAX_FRAMES; turn++) {
        int rc;
        if (batch > 0) {
            rc = kvl_pcapsrc_read(s, batch, on_frame, &a, err, sizeof(err));
        } else {
            kvl_frame_t f;
            rc = kvl_pcapsrc_next(s, &f, err, sizeof(err));
            if (rc == 1) {
                keep(g, &f, a.link);
            }
        }
        if (rc <= 0) {
            g->end = rc < 0 ? -1 : 0;
            break;
        }
    }
    kvl_pcapsrc_close(s);
    return true;
}

/* The same file read by libpcap alone, times in nanoseconds as the reader asks for them. */
static bool read_libpcap(const char *path, got_t *g)
{
    char ebuf[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    if (p == NULL) {
        return false;
    }
    bool nano = pcap_get_tstamp_precision(p) == PCAP_TSTAMP_PRECISION_NANO;
    g->n = 0;
    g->end = 0;
    for (size_t turn = 0; turn <= MAX_FRAMES; turn++) {
        struct pcap_pkthdr *h;
        const u_char *d;
        int rc = pcap_next_ex(p, &h, &d);
        if (rc != 1) {
            g->end = rc == PCAP_ERROR_BREAK ? 0 : -1;
            break;
        }
        CHECK(g->n < MAX_FRAMES);
        /* the time exactly, in 128 bits: kept when valid (a fraction under a second, the
         * count within 64 bits); the reader may only hold others at its bounds */
        __int128 frac = h->ts.tv_usec,
                 v = (__int128)h->ts.tv_sec * 1000000000 + frac * (nano ? 1 : 1000);
        bool exact =
            frac >= 0 && frac < (nano ? 1000000000 : 1000000) && v > -LIMIT_NS && v < LIMIT_NS;
        g->f[g->n++] = (frame_rec_t){.cap = h->caplen,
                                     .wire = h->len,
                                     .ts_ns = exact ? (int64_t)v : 0,
                                     .exact = exact,
                                     .sum = sum_of(d, h->caplen)};
    }
    pcap_close(p);
    return true;
}

static void same(const got_t *a, const got_t *b)
{
    CHECK(a->n == b->n);
    CHECK(a->end == b->end);
    for (size_t i = 0; i < a->n; i++) {
        CHECK(a->f[i].cap == b->f[i].cap);
        CHECK(a->f[i].wire == b->f[i].wire);
        CHECK(!b->f[i].exact || a->f[i].ts_ns == b->f[i].ts_ns);
        CHECK(a->f[i].sum == b->f[i].sum);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static got_t want, batched, single;
    int fd = memfd_create("fuzz_pcap", 0);
    CHECK(fd >= 0);
    for (size_t at = 0; at < size;) {
        ssize_t w = write(fd, data + at, size - at);
        CHECK(w > 0);
        at += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    bool theirs = read_libpcap(path, &want);
    bool ours = read_kaaval(path, 7, &batched);
    CHECK(!ours || theirs); /* the reader opens with libpcap (and refuses unknown links) */
    if (ours && theirs) {
        same(&batched, &want);
        CHECK(read_kaaval(path, 0, &single));
        same(&single, &want);
    }
    close(fd);
    return 0;
}
