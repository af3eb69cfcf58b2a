/*
 * poller.h — SNMP polling of the agent's devices on its libuv loop.
 *
 * One kvl_poller_t polls every configured device on its own interval, all asynchronously
 * on one loop: a poll reads the system group (sysUpTime, sysName) and walks IF-MIB
 * ifTable and ifXTable by GETBULK (GETNEXT for v1), then reports, per interface, raw
 * counters extended past their wraps (or unknown after a reboot or an implausible jump),
 * states and speed, and per device reachability, uptime and response time, through the
 * batcher. A device that stops answering is logged once, reported down (reachable 0 and a
 * device_down event), and logged once more when it returns.
 */
#ifndef KVL_POLLER_H
#define KVL_POLLER_H

#include <uv.h>

#include "agent_config.h"
#include "batcher.h"

typedef struct kvl_poller kvl_poller_t;

/* Creates the poller and starts polling every device in cfg (which must outlive it).
 * Returns NULL and logs why on failure. */
kvl_poller_t *kvl_poller_new(uv_loop_t *loop, const kvl_agent_cfg_t *cfg, kvl_batcher_t *b);
/* Stops polling and closes every session and handle; frees once their closes complete
 * (run the loop afterwards). NULL-safe. */
void kvl_poller_free(kvl_poller_t *p);

/* One-shot mode (kaaval-agent --poll-once): each device is polled once, then `done` is
 * called on the loop thread. Call right after kvl_poller_new. */
void kvl_poller_set_once(kvl_poller_t *p, void (*done)(void *arg), void *arg);

#endif
