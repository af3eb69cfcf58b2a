/*
 * pcapsrc.h — where frames come from: libpcap behind kaaval's own types (pcapsrc.c is the
 * only file that includes pcap.h): a pcap or pcapng file (a classic pcap file read in place
 * from a memory mapping, pcapsrc.c) or a live interface read frame by frame or in batches,
 * the live source's drop counters, BPF filters checked.
 */
#ifndef KVL_CAPTURE_PCAPSRC_H
#define KVL_CAPTURE_PCAPSRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "decode.h"

typedef struct kvl_pcapsrc kvl_pcapsrc_t;

/* One frame, valid until the next call on its source. */
typedef struct kvl_frame {
    const uint8_t *data;
    uint32_t cap;  /* bytes captured */
    uint32_t wire; /* bytes the frame had on the wire */
    int64_t ts_ns; /* capture time, nanoseconds since 1970 */
} kvl_frame_t;

/* Compiles a BPF filter expression for Ethernet frames to see that it is valid. Returns 0,
 * or -1 with libpcap's reason in why. */
int kvl_pcapsrc_filter_check(const char *filter, char *why, size_t whylen);

/* Opens a pcap or pcapng file with an optional BPF filter (NULL: every frame). NULL with a
 * sentence in err when it cannot be read, its link type is not one kvl_decode knows, or the
 * filter is refused. */
kvl_pcapsrc_t *kvl_pcapsrc_open_file(const char *path, const char *filter, char *err,
                                     size_t errlen);
/* Opens an interface for live capture: libpcap's memory-mapped ring (TPACKET_V3 on Linux) of
 * buffer_bytes, immediate mode off (the kernel hands over blocks of frames, at the latest
 * every 100 ms), non-blocking, nanosecond stamps where the kernel gives them. Needs
 * CAP_NET_RAW. NULL with a sentence in err (libpcap's). */
kvl_pcapsrc_t *kvl_pcapsrc_open_live(const char *ifname, int snaplen, bool promiscuous,
                                     int buffer_bytes, const char *filter, char *err,
                                     size_t errlen);
/* The descriptor to watch for readability (live sources), or -1. */
int kvl_pcapsrc_fd(const kvl_pcapsrc_t *s);

/* The counters libpcap keeps for a live source since it opened (32-bit in libpcap: the caller
 * takes differences modulo 2^32): frames the kernel handed over or dropped for want of room
 * in the ring, and frames the interface itself dropped. Returns 0, or -1 (a file). */
typedef struct kvl_pcapsrc_stats {
    uint32_t received, dropped, if_dropped;
} kvl_pcapsrc_stats_t;
int kvl_pcapsrc_stats(kvl_pcapsrc_t *s, kvl_pcapsrc_stats_t *out);

/* The next frame: 1 (filled in), 0 at the end (a file) or when none is waiting (live), -1
 * with a sentence in err. */
int kvl_pcapsrc_next(kvl_pcapsrc_t *s, kvl_frame_t *f, char *err, size_t errlen);
/* Hands the frames waiting (live) or the next ones (a file) to cb, at most max (>= 1), each
 * frame valid during its call only: a live source's frames are read in place in the kernel's
 * ring (kvl_pcapsrc_next copies each one: libpcap keeps a ring block only while it hands it
 * over). Returns how many were handed: 0 when none is waiting or at a file's end; -1 with a
 * sentence in err. */
typedef void (*kvl_pcapsrc_cb)(void *arg, const kvl_frame_t *f);
int kvl_pcapsrc_read(kvl_pcapsrc_t *s, int max, kvl_pcapsrc_cb cb, void *arg, char *err,
                     size_t errlen);
kvl_link_t kvl_pcapsrc_link(const kvl_pcapsrc_t *s);
const char *kvl_pcapsrc_link_name(const kvl_pcapsrc_t *s); /* "EN10MB", "LINUX_SLL2"... */
void kvl_pcapsrc_close(kvl_pcapsrc_t *s);                  /* NULL-safe */

#endif
