/*
 * linkwatch.c — carrier lost and back on the host's interfaces, said in the log
 * (linkwatch.h): an rtnetlink socket subscribed to link changes, polled on the loop.
 */
#include "linkwatch.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kvl.h"
#include "log.h"

/* <linux/if.h> has it but clashes with <net/if.h>; the kernel's value (RFC 2863 "lower layer
 * up": the carrier) */
#ifndef IFF_LOWER_UP
#define IFF_LOWER_UP 0x10000
#endif

static const char *const MOD = "link";

typedef struct link_state {
    int index;
    bool lower_up;
} link_state_t;

struct kvl_linkwatch {
    uv_poll_t poll;
    int fd;
    bool dumping; /* the states at start: recorded, not said */
    bool full_said;
    link_state_t *v;
    size_t n, cap;
};

static link_state_t *find(kvl_linkwatch_t *w, int index)
{
    for (size_t i = 0; i < w->n; i++) {
        if (w->v[i].index == index) {
            return &w->v[i];
        }
    }
    return NULL;
}

/* One RTM_NEWLINK: its carrier compared with what was known. */
static void on_link(kvl_linkwatch_t *w, const struct nlmsghdr *h)
{
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg))) {
        return;
    }
    const struct ifinfomsg *ifi = NLMSG_DATA(h);
    if (ifi->ifi_flags & IFF_LOOPBACK) {
        return;
    }
    char name[IF_NAMESIZE + 1] = "?";
    int len = (int)(h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi)));
    for (const struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == IFLA_IFNAME && RTA_PAYLOAD(a) > 0) {
            size_t n = RTA_PAYLOAD(a) < sizeof(name) ? RTA_PAYLOAD(a) : sizeof(name) - 1;
            memcpy(name, RTA_DATA(a), n);
            name[n] = '\0';
        }
    }
    bool up = (ifi->ifi_flags & IFF_LOWER_UP) != 0;
    link_state_t *s = find(w, ifi->ifi_index);
    if (s == NULL) {
        if (w->n == w->cap) {
            size_t nc = w->cap == 0 ? 16 : w->cap * 2;
            link_state_t *v = nc <= KVL_LINKWATCH_MAX ? realloc(w->v, nc * sizeof(*v)) : NULL;
            if (v == NULL) {
                if (!w->full_said) {
                    KVL_LOG_WARN(MOD, name,
                                 "more than %d interfaces: the others' carrier is not "
                                 "followed",
                                 KVL_LINKWATCH_MAX);
                    w->full_said = true;
                }
                return;
            }
            w->v = v;
            w->cap = nc;
        }
        s = &w->v[w->n++];
        s->index = ifi->ifi_index;
        s->lower_up = up;
        if (w->dumping || up) {
            return; /* known at start, or a new interface that came up */
        }
    } else if (s->lower_up == up) {
        return;
    }
    s->lower_up = up;
    if (up) {
        KVL_LOG_INFO(MOD, name, "carrier back on %s", name);
    } else {
        KVL_LOG_WARN(MOD, name,
                     "lost carrier on %s: the link is down at this host (cable, peer port or "
                     "radio); what is reached only through it is cut off",
                     name);
    }
}

static void on_readable(uv_poll_t *p, int status, int events)
{
    kvl_linkwatch_t *w = p->data;
    KVL_UNUSED(events);
    if (status < 0) {
        return;
    }
    char buf[16384] __attribute__((aligned(NLMSG_ALIGNTO)));
    for (int rounds = 0; rounds < 64; rounds++) {
        ssize_t n = recv(w->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && errno == ENOBUFS) {
            KVL_LOG_WARN(MOD, NULL, "link changes were lost (the kernel's queue overflowed)");
            continue;
        }
        if (n <= 0) {
            return;
        }
        /* the messages one after the other, each length checked against what was read */
        size_t off = 0, total = (size_t)n;
        while (off + sizeof(struct nlmsghdr) <= total) {
            const struct nlmsghdr *h = (const struct nlmsghdr *)(buf + off);
            if (h->nlmsg_len < sizeof(*h) || h->nlmsg_len > total - off) {
                break;
            }
            if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
                w->dumping = false;
            } else if (h->nlmsg_type == RTM_NEWLINK) {
                on_link(w, h);
            }
            off += NLMSG_ALIGN(h->nlmsg_len);
        }
    }
}

int kvl_linkwatch_new(uv_loop_t *loop, kvl_linkwatch_t **out, char *err, size_t errlen)
{
    *out = NULL;
    kvl_linkwatch_t *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    w->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
    if (w->fd < 0 || bind(w->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        snprintf(err, errlen, "cannot follow the links' carrier (netlink): %s", strerror(errno));
        if (w->fd >= 0) {
            close(w->fd);
        }
        free(w);
        return KVL_EIO;
    }
    struct {
        struct nlmsghdr h;
        struct ifinfomsg i;
    } req = {.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)),
                   .nlmsg_type = RTM_GETLINK,
                   .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
                   .nlmsg_seq = 1},
             .i = {.ifi_family = AF_UNSPEC}};
    w->dumping = send(w->fd, &req, req.h.nlmsg_len, 0) == (ssize_t)req.h.nlmsg_len;
    if (uv_poll_init(loop, &w->poll, w->fd) != 0) {
        snprintf(err, errlen, "cannot follow the links' carrier: the loop refused its socket");
        close(w->fd);
        free(w);
        return KVL_EIO;
    }
    w->poll.data = w;
    uv_poll_start(&w->poll, UV_READABLE, on_readable);
    uv_unref((uv_handle_t *)&w->poll); /* it alone never keeps the agent running */
    *out = w;
    return 0;
}

static void on_closed(uv_handle_t *h)
{
    kvl_linkwatch_t *w = h->data;
    close(w->fd);
    free(w->v);
    free(w);
}

void kvl_linkwatch_free(kvl_linkwatch_t *w)
{
    if (w == NULL) {
        return;
    }
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, on_closed);
}
