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
    bool live;
    bool nano; /* stamps in nanoseconds (else microseconds) */
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

static int set_filter(kvl_pcapsrc_t *s, const char *filter, char *err, size_t errlen)
{
    if (filter == NULL) {
        return 0;
    }
    struct bpf_program prog;
    if (pcap_compile(s->p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
        snprintf(err, errlen, "filter '%s': %s", filter, pcap_geterr(s->p));
        return -1;
    }
    int rc = pcap_setfilter(s->p, &prog);
    pcap_freecode(&prog);
    if (rc != 0) {
        snprintf(err, errlen, "filter '%s': %s", filter, pcap_geterr(s->p));
        return -1;
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
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc = pcap_next_ex(s->p, &h, &data);
    if (rc == 1) {
        f->data = data;
        f->cap = h->caplen;
        f->wire = h->len;
        /* With nanosecond precision tv_usec holds nanoseconds. */
        f->ts_ns =
            (int64_t)h->ts.tv_sec * 1000000000 + (int64_t)h->ts.tv_usec * (s->nano ? 1 : 1000);
        s->frames++;
        return 1;
    }
    if (rc == PCAP_ERROR_BREAK || (rc == 0 && s->live)) {
        return 0; /* the end of the file, or nothing waiting */
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
