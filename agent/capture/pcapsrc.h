/*
 * pcapsrc.h — where frames come from: libpcap behind kaaval's own types (pcapsrc.c is the
 * only file that includes pcap.h). Today a pcap or pcapng file read frame by frame, and BPF
 * filters checked; the live interfaces (TPACKET_V3 rings, pcap_stats drops) come here next.
 */
#ifndef KVL_CAPTURE_PCAPSRC_H
#define KVL_CAPTURE_PCAPSRC_H

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
/* The next frame: 1 (filled in), 0 at the end, -1 with a sentence in err. */
int kvl_pcapsrc_next(kvl_pcapsrc_t *s, kvl_frame_t *f, char *err, size_t errlen);
kvl_link_t kvl_pcapsrc_link(const kvl_pcapsrc_t *s);
const char *kvl_pcapsrc_link_name(const kvl_pcapsrc_t *s); /* "EN10MB", "LINUX_SLL2"... */
void kvl_pcapsrc_close(kvl_pcapsrc_t *s);                  /* NULL-safe */

#endif
