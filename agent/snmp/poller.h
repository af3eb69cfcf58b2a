/*
 * poller.h — SNMP polling of the agent's devices on its libuv loop.
 *
 * One kvl_poller_t polls every configured device on its own interval, all asynchronously
 * on one loop:
 *
 *  - Schedule. Each device is polled at once after the start (spread over a tenth of its
 *    interval, 10 s at most, so a restart leaves no unknown step in its archives), again one
 *    interval later, then at a fixed phase of its interval derived from its name (so the same
 *    device polls at the same seconds after a restart, and 2,000 devices spread evenly
 *    instead of firing together), at least half an interval after the second poll; one poll
 *    at a time per device; at most `max_inflight` requests in flight over all devices, the
 *    rest waiting in one FIFO queue.
 *  - A poll reads the system group (sysUpTime, sysName, ifNumber, ifTableLastChange), then
 *    either discovers the interfaces (walks IF-MIB ifTable and ifXTable by GETBULK, GETNEXT
 *    for v1) or, between discoveries, GETs the counters, states and speeds of the
 *    interfaces found last time. Discovery happens at start, every `rediscover`, and at once
 *    when ifNumber or ifTableLastChange moves, sysUpTime goes back or an interface vanished.
 *    The `interfaces` filters of the device decide which interfaces are reported and polled.
 *  - After the interfaces, the device's metric groups (`metric_groups`, see mibgroups.h)
 *    through the same session and in-flight cap.
 *  - It reports, per interface, raw counters extended past their wraps (or unknown after a
 *    reboot, a discontinuity or an implausible jump), states and speed, and per device
 *    reachability, down_reason, uptime and response time, through the batcher.
 *  - A device that stops answering is logged once with the reason (timeout,
 *    authentication failure, no system group, other error), reported down (reachable 0,
 *    down_reason, a device_down event), and logged once more when it returns. After three
 *    timed-out polls it is only probed with one sysUpTime GET without retries, at growing
 *    gaps (up to a minute, or one interval if longer); between probes it is reported down
 *    without being asked. It is back on its normal schedule as soon as it answers. With
 *    kvl_poller_keep_state its down state and since when survive a restart of the agent.
 *  - GETBULK max-repetitions (and the size of the GET batches with it) adapts per device:
 *    halved on tooBig or a timeout in the middle of a poll, grown back by one per clean
 *    poll up to the configured maximum (for an hour not above the size that failed).
 *  - It counts, for the agent's own statistics (agent/stats.c reports them), requests,
 *    timeouts, varbinds and errors, and keeps the longest poll and the largest delay of a
 *    poll's start after its scheduled time in the period (kvl_poller_stats).
 */
#ifndef KVL_POLLER_H
#define KVL_POLLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "batcher.h"
#include "snmp_config.h"

typedef struct kvl_poller kvl_poller_t;

/* Creates the poller and starts polling every device in cfg (which must outlive it).
 * Returns 0 and sets *out, or a negative code with the reason in err (nothing to free). */
int kvl_poller_new(uv_loop_t *loop, const kvl_snmp_cfg_t *cfg, kvl_batcher_t *b, kvl_poller_t **out,
                   char *err, size_t errlen);
/* Stops polling and closes every session and handle; frees once their closes complete
 * (run the loop afterwards). NULL-safe. */
void kvl_poller_free(kvl_poller_t *p);

/* A reload (SIGHUP): cfg is the poller's configuration again (the same struct, now holding
 * the new file's devices; the devices' previous settings still readable until this
 * returns). A device of the same name whose settings are the same in every way
 * (kvl_device_cfg_same) keeps its state: counters' previous readings, inventory, down state,
 * schedule; so its archives see no gap and no unknown. A device whose settings changed is
 * polled afresh under its new settings (its down state kept: no second device_down); a new
 * device is polled at once (spread like at a start); a removed one stops now (a request in
 * flight is dropped with its session). The in-flight cap follows max_inflight. The
 * devices_configured event goes out again at the next tick. Loop thread, never from inside
 * a poller callback. Counts go into *st. Returns 0, or KVL_ENOMEM (then nothing changed). */
typedef struct kvl_poller_reload_stats {
    size_t kept, changed, added, removed;
} kvl_poller_reload_stats_t;
int kvl_poller_reload(kvl_poller_t *p, const kvl_snmp_cfg_t *cfg, kvl_poller_reload_stats_t *st);

/* One-shot mode (kaaval-agent --poll-once): each device is polled once, right away (no
 * spreading, no statistics), then `done` is called on the loop thread. Call right after
 * kvl_poller_new. */
void kvl_poller_set_once(kvl_poller_t *p, void (*done)(void *arg), void *arg);

/* Keeps the devices' down state in the file at path (downstate.h; the agent's spool folder):
 * loaded now (devices no longer configured forgotten; a device stored down starts down, so a
 * restart raises no second device_down and its down time continues from the stored start),
 * written on every change. Call right after kvl_poller_new. Returns 0, or a negative code
 * with a sentence in err (out of memory). */
int kvl_poller_keep_state(kvl_poller_t *p, const char *path, char *err, size_t errlen);

/* The poller's part of the agent's own statistics: totals since start, gauges now, and the
 * maxima of the period since the last call (which starts a new period). */
typedef struct kvl_poller_stats {
    uint64_t requests, timeouts, varbinds, errors; /* totals */
    uint64_t devices, devices_down, inflight;
    bool any_poll; /* a poll ended in the period: cycle_max_ms and lag_max_ms are known */
    double cycle_max_ms, lag_max_ms;
} kvl_poller_stats_t;
void kvl_poller_stats(kvl_poller_t *p, kvl_poller_stats_t *st);

/* --- what the trap receiver (agent/trap/trap_rx.c) asks; loop thread only --- */

/* The index of the first configured device (in configuration order) whose address is sa's
 * (IPv4 or IPv6; an IPv4-mapped IPv6 address counts as IPv4; the port is not compared), or
 * -1 when none is. Only numeric device addresses are known here (a host name is not looked
 * up again). */
long kvl_poller_device_by_addr(kvl_poller_t *p, const struct sockaddr *sa);
/* The configuration of device i (i < the number of devices). */
const kvl_device_cfg_t *kvl_poller_device(const kvl_poller_t *p, size_t i);
/* The name device i's interface ifindex is reported under (the last discovery's, filters
 * applied), else "if<ifindex>" as the poller names an interface without ifName and ifDescr.
 * Writes it into buf (len bytes) and returns buf. */
const char *kvl_poller_if_name(const kvl_poller_t *p, size_t i, uint32_t ifindex, char *buf,
                               size_t len);
/* Polls device i at once (through the in-flight cap like any poll); while a poll of it runs
 * or one started less than KVL_POLLER_POLL_NOW_GAP_MS ago, as soon as that is no longer so
 * (several calls meanwhile make one poll). Its schedule is unchanged. Returns true when the
 * poll started now, false when it is deferred. */
#define KVL_POLLER_POLL_NOW_GAP_MS 3000
bool kvl_poller_poll_now(kvl_poller_t *p, size_t i);

#endif
