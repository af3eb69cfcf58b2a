/*
 * linkwatch.h — the agent's own links: when one of the host's network interfaces loses its
 * carrier (the cable, the radio, the peer port down) or gets it back, the agent says so in
 * its log at once (WARN "lost carrier", INFO "carrier back"), so an agent that stops reaching
 * its collector tells why when the cause is its own link. Linux rtnetlink (RTMGRP_LINK,
 * IFF_LOWER_UP), on the agent's loop; the states at start are read silently (a dump), only
 * changes are said; loopback is left out; at most KVL_LINKWATCH_MAX interfaces are followed
 * (more are ignored, said once). Nothing else is done with it.
 */
#ifndef KVL_LINKWATCH_H
#define KVL_LINKWATCH_H

#include <stddef.h>
#include <uv.h>

#define KVL_LINKWATCH_MAX 4096

typedef struct kvl_linkwatch kvl_linkwatch_t;

/* Opens the netlink socket on loop and asks for the current states. Returns 0, or a negative
 * KVL_E* with a sentence in err (the agent runs on without it). */
int kvl_linkwatch_new(uv_loop_t *loop, kvl_linkwatch_t **out, char *err, size_t errlen);

/* Closes it; freed once closed (the loop must run). NULL is fine. */
void kvl_linkwatch_free(kvl_linkwatch_t *w);

#endif
