/*
 * capture.h — the capture room's runs: frames from pcapsrc.h (libpcap) through the decoder
 * (decode.h) into the interval's counters (flows.h), their figures printed.
 *
 * `kaaval-agent --capture-once FILE.pcap` reads a whole file as one interval;
 * `--capture-live N` captures on the configured interfaces for N intervals. Shipping the
 * figures to the collector comes next.
 */
#ifndef KVL_CAPTURE_H
#define KVL_CAPTURE_H

#include <stddef.h>
#include <stdio.h>

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "capture_config.h"
#include "classify.h"
#include "flows.h"

/* Reads the pcap (or pcapng) file at path with cfg's filter, sampling, local networks and
 * bounds, as one interval, and prints its figures on out, one line each:
 *   capture file=PATH link=NAME frames_read=N sampling=N first_ts=S last_ts=S
 *     (live: capture iface=NAME start=S end=S frames_read=N sampling=N, then
 *      drops received=N dropped=N if_dropped=N, or drops unknown)
 *   total packets=N bytes=N            (every counted frame, on-the-wire lengths)
 *   non_ip / ipv4 / ipv6 packets=N bytes=N
 *   dir in|out|internal|external packets=N bytes=N
 *   transport tcp|udp|icmp|other packets=N bytes=N
 *   decode ok=N not_ip=N snapped=N ... malformed=N tagged=N later_fragments=N gre=N
 *   tcp retransmissions=N resets=N
 *   flows new=N idle=N active=N evicted=N now=N max=N
 *   handshake port=P server_n=N server_min_ms=F server_median_ms=F server_p95_ms=F
 *             server_max_ms=F client_n=N client_min_ms=F ... (one line per server port)
 *   host rank=R addr=A bytes=N error=N packets=N   (top_n lines, largest first; packets:
 *   conv rank=R a=A b=B bytes=N error=N packets=N   all of them when error is 0)
 * and with `classify` on:
 *   apps pending_packets=N pending_bytes=N unclassified_packets=N unclassified_bytes=N
 *        decided=N guessed=N unknown=N no_slot=N
 *   app name=NAME id=N packets=N bytes=N          (by bytes, largest first; NAME nDPI's)
 *   name rank=R name=NAME connections=N error=N    (top_n names nDPI read: TLS/QUIC server
 *        names, HTTP Host, DNS queries; live: all interfaces', after the last interface;
 *        the apps line's decided..no_slot count since the start)
 * With sampling N > 1 (1 frame counted in N) the figures are estimates of all the traffic,
 * kvl_capture_counts' and the lists' below: the first line says `sampling=N scaled=N`.
 * Returns 0, or -1 with a sentence in err (the file cannot be opened or read, its link type
 * is not one the decoder knows, the filter is refused, out of memory). */
int kvl_capture_once(const kvl_capture_cfg_t *cfg, const char *path, FILE *out, char *err,
                     size_t errlen);

/* Live capture on cfg's interfaces, on the loop: each interface's ring (pcapsrc.h) watched
 * with a uv_poll_t, read in turns of at most 65,536 frames so the loop's other work goes on;
 * a flow table per interface and one classifier for all; every `interval` a uv_timer_t
 * hands each interface's figures to the callback and starts the next interval. */
typedef struct kvl_capture kvl_capture_t;

/* What libpcap and the kernel said about an interface during the interval: frames handed
 * over, dropped for want of room in the ring, dropped by the interface. Never hidden: the
 * figures are of the frames read, the drops say how many were missed. */
typedef struct kvl_capture_drops {
    bool known; /* false: libpcap gave no counters */
    uint64_t received, dropped, if_dropped;
} kvl_capture_drops_t;

typedef struct kvl_capture_interval {
    const char *iface;
    int64_t start_ns, end_ns; /* CLOCK_REALTIME */
    uint64_t frames_read;
    const kvl_flows_t *flows;
    const kvl_classify_t *classify; /* NULL without classification */
    kvl_capture_drops_t drops;
    uint32_t scale;  /* `sampling`: 1 frame in scale counted (0 taken as 1) */
    bool last_iface; /* the interval's last interface: the names (all interfaces') go here */
} kvl_capture_interval_t;

/* Called on the loop at each interval's end, once per interface; *iv valid during the call. */
typedef void (*kvl_capture_interval_cb)(void *arg, const kvl_capture_interval_t *iv);

/* Opens every interface (CAP_NET_RAW) and starts. cfg must outlive the capture. Returns 0, or
 * -1 with a sentence in err (nothing started, no callback). */
int kvl_capture_new(uv_loop_t *loop, const kvl_capture_cfg_t *cfg, kvl_capture_interval_cb cb,
                    void *arg, kvl_capture_t **out, char *err, size_t errlen);
/* Ends the running interval at once (a reload replacing the capture: its last figures are
 * reported, not lost): what the rings hold read, each interface's figures to the callback,
 * as at an interval's end; the next interval starts. NULL-safe. */
void kvl_capture_flush(kvl_capture_t *c);
/* The configuration moved (its contents, the same strings, now at cfg, which must outlive the
 * capture): the capture reads it there from now on. */
void kvl_capture_move_cfg(kvl_capture_t *c, const kvl_capture_cfg_t *cfg);
/* Stops and closes; the memory goes once the loop has run the handles' close callbacks.
 * NULL-safe. */
void kvl_capture_free(kvl_capture_t *c);

/* The interval's figures as estimates of all the traffic, for whoever reports them: with
 * iv->scale N > 1 every count of frames, bytes, decoder outcomes, TCP retransmissions and
 * resets, flows begun and ended, per application and per top-N entry (bytes, error, packets)
 * is the counted one times N (saturating at UINT64_MAX). Not scaled: flows_now and
 * flows_evicted (the flow table's own state and doing), handshake times and their sample
 * counts (times, not amounts), the drops (the kernel's true counts, iv->drops) and
 * frames_read (the frames libpcap handed over). */
void kvl_capture_counts(const kvl_capture_interval_t *iv, kvl_flows_counts_t *out);
/* kvl_flows_top_hosts, kvl_flows_top_convs and kvl_flows_apps of iv->flows, scaled as above. */
size_t kvl_capture_top_hosts(const kvl_capture_interval_t *iv, kvl_top_t *out, size_t n);
size_t kvl_capture_top_convs(const kvl_capture_interval_t *iv, kvl_top_t *out, size_t n);
size_t kvl_capture_apps(const kvl_capture_interval_t *iv, kvl_app_count_t *out, size_t n);

/* Prints one interval's figures (the lines kvl_capture_once prints after its first). */
void kvl_capture_print(FILE *out, const kvl_capture_cfg_t *cfg, const kvl_capture_interval_t *iv);

#endif
