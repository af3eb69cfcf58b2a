/*
 * capship.h — the capture's figures as series for the collector: each capture interface
 * (or the pcap file of `capture: file`, named by its base name) is an instance of the
 * family "capture" (scope KVL_SCOPE_CAPTURE, device = the agent's id), reported at the end
 * of each capture interval (capture.h). The collector files them under
 * <site>/_capture/<agent id>/<interface>.rrd.
 *
 * Metrics (a fixed set; counters are totals since the capture started, so the archive keeps
 * rates; with an interface's first interval goes a report of zeros stamped at the start
 * of the step, a multiple of the interval, holding the capture's start):
 *   counters: bytes_in bytes_out packets_in packets_out (by local_networks), bytes_total
 *     packets_total (every frame counted), bytes_ipv4 bytes_ipv6 bytes_non_ip, bytes_tcp
 *     bytes_udp bytes_icmp bytes_other_l4, the application classes in bytes app_http
 *     app_tls app_quic app_dns app_ssh app_rdp app_smb app_ntp app_snmp app_video
 *     app_unknown (nDPI could not tell, still undecided, or no classification slot)
 *     app_other (every other application), drops_kernel drops_iface (libpcap's counters;
 *     unknown when libpcap gives none, as for a file), flows_new flows_evicted tcp_retrans
 *     tcp_resets;
 *   gauges: flows_now, and the interval's TCP handshake times over every server port in ms
 *     (unknown without a handshake): hs_server_min_ms hs_server_median_ms hs_server_p95_ms
 *     (SYN -> SYN-ACK), hs_client_min_ms hs_client_median_ms hs_client_p95_ms (SYN-ACK ->
 *     ACK).
 * With sampling N > 1 the counters and the top lists are estimates of all the traffic, N
 * times what was counted (kvl_capture_counts), except the drops (the kernel's true counts)
 * and flows_evicted; flows_now and the handshake times are as measured. Without `classify`
 * the app_* series are unknown.
 *
 * After the figures, each interval's top hosts and conversations by bytes (the first top_n,
 * at most KVL_CAPTOP_MAX = 20 of each) go as an event `capture_top` (severity info, device
 * = the agent's id; fields interface, start_ms, end_ms, hosts and convs as common/captop.h
 * writes them), which the collector keeps per interface (collector/captop/).
 *
 * Loop thread only; knows the batcher only.
 */
#ifndef KVL_CAPSHIP_H
#define KVL_CAPSHIP_H

#include <stdint.h>

#include "batcher.h"
#include "capture.h"
#include "wire.h"

extern const kvl_family_t kvl_capture_family;

typedef struct kvl_capship kvl_capship_t;

/* The event carrying an interval's top hosts and conversations. */
#define KVL_CAPTOP_EVENT "capture_top"

/* Reports for the agent agent_id (copied) through b, which must outlive it; top_n: the
 * entries of each top list sent (0: none; at most KVL_CAPTOP_MAX are). NULL when out of
 * memory. */
kvl_capship_t *kvl_capship_new(kvl_batcher_t *b, const char *agent_id, uint32_t interval_s,
                               size_t top_n);
void kvl_capship_free(kvl_capship_t *s); /* NULL-safe */

/* A reload's new settings: top_n from the next interval on; interval_s for interfaces first
 * reported from now on (those already registered keep their archive's step; their counters
 * go on as totals, so the rates stay right at another cadence). */
void kvl_capship_configure(kvl_capship_t *s, uint32_t interval_s, size_t top_n);

/* One interface's interval (a kvl_capture_interval_cb's argument): its series added as one
 * group at the interval's end. Returns 0, or -1 when its series could not be registered
 * (logged once per interface). */
int kvl_capship_interval(kvl_capship_t *s, const kvl_capture_interval_t *iv);

/* The application class (an index of the app_* metrics, 0 .. KVL_CAPSHIP_APPS - 1) of an
 * nDPI application name. */
#define KVL_CAPSHIP_APPS 12
int kvl_capship_app_class(const char *name);

#endif
