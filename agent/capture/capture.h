/*
 * capture.h — the capture room's runs: frames from pcapsrc.h (libpcap) through the decoder
 * (decode.h) into the interval's counters (flows.h), their figures printed.
 *
 * Today: `kaaval-agent --capture-once FILE.pcap` reads a whole file as one interval. Live
 * capture on interfaces (TPACKET_V3 rings, drops from pcap_stats, the agent's loop) comes
 * next on the same decoder and counters.
 */
#ifndef KVL_CAPTURE_H
#define KVL_CAPTURE_H

#include <stddef.h>
#include <stdio.h>

#include "capture_config.h"

/* Reads the pcap (or pcapng) file at path with cfg's filter, sampling, local networks and
 * bounds, as one interval, and prints its figures on out, one line each:
 *   capture file=PATH link=NAME frames_read=N sampling=N first_ts=S last_ts=S
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
 * With sampling N, the figures are those of the frames counted (1 in N), not scaled.
 * Returns 0, or -1 with a sentence in err (the file cannot be opened or read, its link type
 * is not one the decoder knows, the filter is refused, out of memory). */
int kvl_capture_once(const kvl_capture_cfg_t *cfg, const char *path, FILE *out, char *err,
                     size_t errlen);

#endif
