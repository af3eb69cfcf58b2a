/*
 * pcapsrc.c — libpcap for the capture room (see pcapsrc.h): files opened with nanosecond
 * timestamps, libpcap's DLT_* mapped to the decoder's link types, filters compiled.
 *
 * A classic pcap file in this machine's byte order is also mapped into memory and its records
 * are read from the mapping, in place: no copy through stdio and libpcap's buffer, no read
 * system call per few kilobytes. libpcap keeps the file open beside it (link type, filter,
 * and everything unusual): the first record the mapping cannot take as it is (its captured
 * length above the file's snap length or libpcap's maximum, or cut off by the mapping's
 * end) hands the file back to libpcap at that record, which reads the rest with its own
 * checks and words; so does a file cut shorter while it is mapped (its size is looked at
 * again every MiB: a page it lost would raise SIGBUS). Pages read leave the agent's resident set
 * every MiB (they stay in the page cache), so its memory does not grow with the file.
 */
#include "pcapsrc.h"

#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define MAP_MAX_CAP 262144u   /* libpcap's largest captured length of a record */
#define MAP_WINDOW (1u << 20) /* bytes read before they leave the resident set */

struct kvl_pcapsrc {
    pcap_t *p;
    kvl_link_t link;
    const char *link_name;
    uint64_t frames;
    bool live;
    bool nano; /* stamps in nanoseconds (else microseconds) */
    /* The mapped file (map NULL: libpcap reads every record). */
    const uint8_t *map;
    size_t map_len, map_pos;
    size_t map_done; /* below it (a page boundary) the pages are out of the resident set */
    size_t map_ok;   /* below it the file was last seen to hold the mapped bytes */
    uint32_t map_snap;
    bool map_nano;
    bool have_prog;
    struct bpf_program prog; /* the filter, applied to mapped records */
};

int kvl_pcapsrc_filter_check(const char *filter, char *why, size_t whylen)
{
    pcap_t *p = pcap_open_dead(DLT_EN10MB, 65535);
    if (p == NULL) {
        snprintf(why, whylen, "libpcap could not make a handle");
        return -1;
    }
    struct bpf_program prog;
    int rc = 0;
    if (pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        snprintf(why, whylen, "%s", pcap_geterr(p));
        rc = -1;
    } else {
        pcap_freecode(&prog);
    }
    pcap_close(p);
    return rc;
}

/* libpcap's DLT_* to the decoder's link types; false for one it does not know. */
static bool link_of(int dlt, kvl_link_t *out, const char **name)
{
    switch (dlt) {
    case DLT_EN10MB:
        *out = KVL_LINK_EN10MB;
        *name = "EN10MB";
        return true;
    case DLT_LINUX_SLL:
        *out = KVL_LINK_LINUX_SLL;
        *name = "LINUX_SLL";
        return true;
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2:
        *out = KVL_LINK_LINUX_SLL2;
        *name = "LINUX_SLL2";
        return true;
#endif
    case DLT_RAW:
        *out = KVL_LINK_RAW;
        *name = "RAW";
        return true;
#ifdef DLT_IPV4
    case DLT_IPV4:
        *out = KVL_LINK_IPV4;
        *name = "IPV4";
        return true;
#endif
#ifdef DLT_IPV6
    case DLT_IPV6:
        *out = KVL_LINK_IPV6;
        *name = "IPV6";
        return true;
#endif
    default:
        return false;
    }
}

/* Sets the filter; the compiled program stays in s->prog (the mapped records need it). */
static int set_filter(kvl_pcapsrc_t *s, const char *filter, char *err, size_t errlen)
{
    if (filter == NULL) {
        return 0;
    }
    if (pcap_compile(s->p, &s->prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        snprintf(err, errlen, "filter '%s': %s", filter, pcap_geterr(s->p));
        return -1;
    }
    s->have_prog = true;
    if (pcap_setfilter(s->p, &s->prog) != 0) {
        snprintf(err, errlen, "filter '%s': %s", filter, pcap_geterr(s->p));
        return -1;
    }
    return 0;
}

/* A frame's time in nanoseconds from libpcap's seconds and fraction (nanoseconds when nano,
 * else microseconds). A pcapng file may give any 64-bit time: one past the years the
 * nanosecond count holds (1678-2262) is held at that bound, never overflowed. */
static int64_t ts_ns_of(int64_t sec, int64_t frac, bool nano)
{
    const int64_t lim = INT64_MAX / 1000000000 - 1;
    sec = sec > lim ? lim : sec < -lim ? -lim : sec;
    frac = frac > 999999999 ? 999999999 : frac < -999999999 ? -999999999 : frac;
    if (!nano) {
        frac = frac > 999999 ? 999999 : frac < -999999 ? -999999 : frac;
        frac *= 1000;
    }
    return sec * 1000000000 + frac;
}

static uint32_t rd32(const uint8_t *b)
{
    uint32_t v;
    memcpy(&v, b, sizeof(v));
    return v;
}

/* The descriptor of the file libpcap opened, or -1. */
static int file_fd(const kvl_pcapsrc_t *s)
{
    FILE *fp = pcap_file(s->p);
    return fp != NULL ? fileno(fp) : -1;
}

/* Maps the file libpcap opened when it is a classic pcap file (version 2.4) in this machine's
 * byte order; any other file (pcapng, swapped, a pipe, a failed mapping) is left to libpcap
 * alone. */
static void map_file(kvl_pcapsrc_t *s)
{
    int fd = file_fd(s);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 24 ||
        (uint64_t)st.st_size > SIZE_MAX) {
        return;
    }
    size_t len = (size_t)st.st_size;
    void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        return;
    }
    const uint8_t *b = m;
    uint32_t magic = rd32(b);
    uint16_t major, minor;
    memcpy(&major, b + 4, 2);
    memcpy(&minor, b + 6, 2);
    uint32_t snap = rd32(b + 16);
    if ((magic != 0xa1b2c3d4u && magic != 0xa1b23c4du) || major != 2 || minor != 4 || snap == 0 ||
        snap > MAP_MAX_CAP || (int)snap != pcap_snapshot(s->p)) {
        munmap(m, len);
        return;
    }
    (void)madvise(m, len, MADV_SEQUENTIAL);
    s->map = b;
    s->map_len = len;
    s->map_pos = 24;
    s->map_snap = snap;
    s->map_nano = magic == 0xa1b23c4du;
}

/* The file back to libpcap at the mapping's position: 0, or -1 (it could not seek). */
static int unmap(kvl_pcapsrc_t *s)
{
    FILE *fp = pcap_file(s->p);
    size_t pos = s->map_pos;
    munmap((void *)(uintptr_t)s->map, s->map_len);
    s->map = NULL;
    if (fp == NULL || fseeko(fp, (off_t)pos, SEEK_SET) != 0) {
        return -1;
    }
    return 0;
}

/* Whether the file still holds the mapped bytes up to end: a page of a file cut shorter
 * while mapped would raise SIGBUS when read, so the file's size is looked at again once a MiB
 * (and whatever it lost is left to libpcap, which reads a short file as such). */
static bool map_backed(kvl_pcapsrc_t *s, size_t end)
{
    if (end <= s->map_ok) {
        return true;
    }
    struct stat st;
    int fd = file_fd(s);
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < 0) {
        return false;
    }
    size_t size = (uint64_t)st.st_size < s->map_len ? (size_t)st.st_size : s->map_len;
    s->map_ok = size > end && size - end > MAP_WINDOW ? end + MAP_WINDOW : size;
    return end <= s->map_ok;
}

/* The next mapped record that passes the filter: 1, 0 (libpcap takes over at the position). */
static int map_next(kvl_pcapsrc_t *s, kvl_frame_t *f)
{
    /* Each turn moves past one record: bounded by the mapping. */
    while (s->map_len - s->map_pos >= 16 && map_backed(s, s->map_pos + 16)) {
        const uint8_t *h = s->map + s->map_pos;
        uint32_t cap = rd32(h + 8), wire = rd32(h + 12);
        if (cap > s->map_snap || s->map_len - s->map_pos - 16 < cap ||
            !map_backed(s, s->map_pos + 16 + cap)) {
            return 0;
        }
        s->map_pos += 16 + (size_t)cap;
        if (s->map_pos - s->map_done >= 2 * (size_t)MAP_WINDOW) {
            /* The pages read stay in the page cache, out of the agent's resident set: its
             * memory does not grow with the file. */
            (void)madvise((void *)(uintptr_t)(s->map + s->map_done), MAP_WINDOW, MADV_DONTNEED);
            s->map_done += MAP_WINDOW;
        }
        /* The next record's header and first bytes are on their way while this one is read:
         * a mapped page is not in the caches as a copied one was. */
        __builtin_prefetch(s->map + s->map_pos);
        __builtin_prefetch(s->map + s->map_pos + 64);
        __builtin_prefetch(s->map + s->map_pos + 128);
        if (s->have_prog) {
            struct pcap_pkthdr ph;
            ph.ts.tv_sec = (time_t)(int32_t)rd32(h);
            ph.ts.tv_usec = (suseconds_t)(int32_t)rd32(h + 4);
            ph.caplen = cap;
            ph.len = wire;
            if (pcap_offline_filter(&s->prog, &ph, h + 16) == 0) {
                continue;
            }
        }
        f->data = h + 16;
        f->cap = cap;
        f->wire = wire;
        /* signed 32-bit seconds and fraction, as libpcap reads them */
        f->ts_ns = ts_ns_of((int32_t)rd32(h), (int32_t)rd32(h + 4), s->map_nano);
        s->frames++;
        return 1;
    }
    return 0;
}

kvl_pcapsrc_t *kvl_pcapsrc_open_file(const char *path, const char *filter, char *err, size_t errlen)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    if (p == NULL) {
        /* libpcap's text names the file itself when it could not open it */
        snprintf(err, errlen, "%s%s%s", strstr(ebuf, path) != NULL ? "" : path,
                 strstr(ebuf, path) != NULL ? "" : ": ", ebuf);
        return NULL;
    }
    kvl_pcapsrc_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        pcap_close(p);
        return NULL;
    }
    s->p = p;
    if (!link_of(pcap_datalink(p), &s->link, &s->link_name)) {
        snprintf(err, errlen,
                 "%s: link type %s is not one the capture decodes (Ethernet, Linux cooked "
                 "v1/v2, raw IP)",
                 path, pcap_datalink_val_to_name(pcap_datalink(p)));
        kvl_pcapsrc_close(s);
        return NULL;
    }
    if (set_filter(s, filter, err, errlen) != 0) {
        kvl_pcapsrc_close(s);
        return NULL;
    }
    s->nano = true;
    map_file(s);
    return s;
}

kvl_pcapsrc_t *kvl_pcapsrc_open_live(const char *ifname, int snaplen, bool promiscuous,
                                     int buffer_bytes, const char *filter, char *err, size_t errlen)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p = pcap_create(ifname, ebuf);
    if (p == NULL) {
        snprintf(err, errlen, "%s: %s", ifname, ebuf);
        return NULL;
    }
    kvl_pcapsrc_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        pcap_close(p);
        return NULL;
    }
    s->p = p;
    s->live = true;
    pcap_set_snaplen(p, snaplen);
    pcap_set_promisc(p, promiscuous ? 1 : 0);
    pcap_set_timeout(p, 100);
    pcap_set_buffer_size(p, buffer_bytes);
    pcap_set_immediate_mode(p, 0);
    s->nano = pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO) == 0;
    int rc = pcap_activate(p);
    if (rc < 0) {
        /* libpcap's words: "permission denied" when CAP_NET_RAW is missing, and its detail */
        snprintf(err, errlen, "%s: %s", ifname, pcap_statustostr(rc));
        if (pcap_geterr(p)[0] != '\0' && strcmp(pcap_geterr(p), pcap_statustostr(rc)) != 0) {
            size_t n = strlen(err);
            snprintf(err + n, errlen > n ? errlen - n : 0, " (%s)", pcap_geterr(p));
        }
        kvl_pcapsrc_close(s);
        return NULL;
    }
    if (!link_of(pcap_datalink(p), &s->link, &s->link_name)) {
        snprintf(err, errlen, "%s: link type %s is not one the capture decodes", ifname,
                 pcap_datalink_val_to_name(pcap_datalink(p)));
        kvl_pcapsrc_close(s);
        return NULL;
    }
    if (set_filter(s, filter, err, errlen) != 0 || pcap_setnonblock(p, 1, ebuf) != 0) {
        if (ebuf[0] != '\0') {
            snprintf(err, errlen, "%s: %s", ifname, ebuf);
        }
        kvl_pcapsrc_close(s);
        return NULL;
    }
    return s;
}

int kvl_pcapsrc_fd(const kvl_pcapsrc_t *s)
{
    return s->live ? pcap_get_selectable_fd(s->p) : -1;
}

int kvl_pcapsrc_stats(kvl_pcapsrc_t *s, kvl_pcapsrc_stats_t *out)
{
    struct pcap_stat st;
    if (!s->live || pcap_stats(s->p, &st) != 0) {
        return -1;
    }
    out->received = st.ps_recv;
    out->dropped = st.ps_drop;
    out->if_dropped = st.ps_ifdrop;
    return 0;
}

int kvl_pcapsrc_next(kvl_pcapsrc_t *s, kvl_frame_t *f, char *err, size_t errlen)
{
    if (s->map != NULL) {
        if (map_next(s, f) == 1) {
            return 1;
        }
        if (unmap(s) != 0) {
            snprintf(err, errlen, "read after %" PRIu64 " frames: the file could not be sought",
                     s->frames);
            return -1;
        }
    }
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc = pcap_next_ex(s->p, &h, &data);
    if (rc == 1) {
        f->data = data;
        f->cap = h->caplen;
        f->wire = h->len;
        /* With nanosecond precision tv_usec holds nanoseconds. */
        f->ts_ns = ts_ns_of((int64_t)h->ts.tv_sec, (int64_t)h->ts.tv_usec, s->nano);
        s->frames++;
        return 1;
    }
    if (rc == PCAP_ERROR_BREAK || (rc == 0 && s->live)) {
        return 0; /* the end of the file, or nothing waiting */
    }
    snprintf(err, errlen, "read after %" PRIu64 " frames: %s", s->frames, pcap_geterr(s->p));
    return -1;
}

typedef struct dispatch {
    kvl_pcapsrc_t *s;
    kvl_pcapsrc_cb cb;
    void *arg;
} dispatch_t;

static void on_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    dispatch_t *d = (dispatch_t *)(void *)user;
    /* The ring's next frame most likely follows this one in its block (after the kernel's
     * header of it): on its way while this one is read, as in the file's mapping. */
    __builtin_prefetch(data + h->caplen + 64);
    __builtin_prefetch(data + h->caplen + 128);
    __builtin_prefetch(data + h->caplen + 192);
    kvl_frame_t f = {.data = data, .cap = h->caplen, .wire = h->len};
    f.ts_ns = ts_ns_of((int64_t)h->ts.tv_sec, (int64_t)h->ts.tv_usec, d->s->nano);
    d->s->frames++;
    d->cb(d->arg, &f);
}

int kvl_pcapsrc_read(kvl_pcapsrc_t *s, int max, kvl_pcapsrc_cb cb, void *arg, char *err,
                     size_t errlen)
{
    if (!s->live) {
        kvl_frame_t f;
        int n = 0, rc = 0;
        /* Bounded by max. */
        while (n < max && (rc = kvl_pcapsrc_next(s, &f, err, errlen)) == 1) {
            cb(arg, &f);
            n++;
        }
        return rc < 0 ? -1 : n;
    }
    dispatch_t d = {.s = s, .cb = cb, .arg = arg};
    int rc = pcap_dispatch(s->p, max, on_packet, (u_char *)(void *)&d);
    if (rc == PCAP_ERROR_BREAK) {
        return 0;
    }
    if (rc < 0) {
        snprintf(err, errlen, "read after %" PRIu64 " frames: %s", s->frames, pcap_geterr(s->p));
        return -1;
    }
    return rc;
}

kvl_link_t kvl_pcapsrc_link(const kvl_pcapsrc_t *s)
{
    return s->link;
}

const char *kvl_pcapsrc_link_name(const kvl_pcapsrc_t *s)
{
    return s->link_name;
}

void kvl_pcapsrc_close(kvl_pcapsrc_t *s)
{
    if (s == NULL) {
        return;
    }
    if (s->map != NULL) {
        munmap((void *)(uintptr_t)s->map, s->map_len);
    }
    if (s->have_prog) {
        pcap_freecode(&s->prog);
    }
    pcap_close(s->p);
    free(s);
}
