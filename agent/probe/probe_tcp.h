/*
 * probe_tcp.h — TCP connect-time probes on the agent's loop.
 *
 * Each probe is a non-blocking connect (uv_tcp_connect) to the target's address and port;
 * the connection is closed as soon as it is established (the server sees a connection that
 * ends at once; no data is sent). The time reported is the kernel's own measurement of the
 * SYN to SYN-ACK round trip: TCP_INFO's tcpi_rtt right after the handshake is its first RTT
 * sample (microseconds), so a busy agent loop adds nothing to it. Where the kernel gives no
 * sample (tcpi_rtt 0), the loop time from uv_tcp_connect to its callback is used and
 * counted (`user_timed`). A refused connection (RST) and any other failure are reported
 * with their status; a connect still pending when the prober closes the interval is
 * cancelled (kvl_tcp_probe_cancel) and counts as lost.
 */
#ifndef KVL_PROBE_TCP_H
#define KVL_PROBE_TCP_H

#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

typedef struct kvl_tcp_probe kvl_tcp_probe_t;

/* status: 0 connected (connect_ns valid), else a negative libuv error (UV_ECONNREFUSED,
 * UV_ETIMEDOUT, ...). Not called for cancelled probes. */
typedef void (*kvl_tcp_probe_cb)(void *arg, uint32_t seq, int status, int64_t connect_ns);

kvl_tcp_probe_t *kvl_tcp_probe_new(uv_loop_t *loop, const struct sockaddr *to, kvl_tcp_probe_cb cb,
                                   void *arg);
/* Starts probe seq. Returns 0 or a negative libuv error (then no callback). */
int kvl_tcp_probe_connect(kvl_tcp_probe_t *t, uint32_t seq);
/* Cancels every pending connect (no callbacks). */
void kvl_tcp_probe_cancel(kvl_tcp_probe_t *t);
uint64_t kvl_tcp_probe_user_timed(const kvl_tcp_probe_t *t);
/* Cancels and frees once the handles have closed. NULL-safe. */
void kvl_tcp_probe_free(kvl_tcp_probe_t *t);

#endif
