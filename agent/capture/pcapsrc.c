/*
 * pcapsrc.c — libpcap for the capture room (see pcapsrc.h): files opened with nanosecond
 * timestamps, libpcap's DLT_* mapped to the decoder's link types, filters compiled.
 */
#include "pcapsrc.h"

#include <inttypes.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kvl_pcapsrc {
    pcap_t *p;
    kvl_link_t link;
    const char *link_name;
    uint64_t frames;
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
    if (filter != NULL) {
        struct bpf_program prog;
        if (pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
            snprintf(err, errlen, "filter '%s': %s", filter, pcap_geterr(p));
            kvl_pcapsrc_close(s);
            return NULL;
        }
        int rc = pcap_setfilter(p, &prog);
        pcap_freecode(&prog);
        if (rc != 0) {
            snprintf(err, errlen, "filter '%s': %s", filter, pcap_geterr(p));
            kvl_pcapsrc_close(s);
            return NULL;
        }
    }
    return s;
}

int kvl_pcapsrc_next(kvl_pcapsrc_t *s, kvl_frame_t *f, char *err, size_t errlen)
{
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc = pcap_next_ex(s->p, &h, &data);
    if (rc == 1) {
        f->data = data;
        f->cap = h->caplen;
        f->wire = h->len;
        /* Opened with nanosecond precision: tv_usec holds nanoseconds. */
        f->ts_ns = (int64_t)h->ts.tv_sec * 1000000000 + (int64_t)h->ts.tv_usec;
        s->frames++;
        return 1;
    }
    if (rc == PCAP_ERROR_BREAK) {
        return 0; /* the end of the file */
    }
    snprintf(err, errlen, "read after %" PRIu64 " frames: %s", s->frames, pcap_geterr(s->p));
    return -1;
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
    pcap_close(s->p);
    free(s);
}
