/*
 * probe_http.h — HTTP(S) response-time probes on the agent's loop (the only user of
 * libcurl in the agent).
 *
 * One curl multi handle per prober, driven by libuv: curl tells which sockets to watch
 * (CURLMOPT_SOCKETFUNCTION -> a uv_poll_t per socket) and when to wake it
 * (CURLMOPT_TIMERFUNCTION -> one uv_timer_t); events go back with curl_multi_socket_action.
 * Each probe is a GET on a fresh connection (CURLOPT_FRESH_CONNECT, FORBID_REUSE), so every
 * probe measures name resolution, TCP and TLS set-up as a first visitor would, and the
 * server's certificate is seen every time. The body is read and thrown away.
 *
 * Figures per probe: the HTTP status code, the total time (CURLINFO_TOTAL_TIME_T) and the
 * time to first byte (CURLINFO_STARTTRANSFER_TIME_T), both from curl's monotonic clock
 * (user space, not kernel timestamps: HTTP timing is milliseconds, not microseconds), and
 * for https the days until the server certificate's notAfter (CURLINFO_CERTINFO, the
 * first certificate of the chain: the server's own), fractional.
 */
#ifndef KVL_PROBE_HTTP_H
#define KVL_PROBE_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct kvl_http kvl_http_t;

typedef struct kvl_http_result {
    uint32_t target, seq;
    bool done;   /* a response came (any status) */
    long status; /* 0 without a response */
    int64_t total_ns, ttfb_ns;
    double cert_days;  /* NaN: not https or not known */
    const char *error; /* curl's text when !done */
} kvl_http_result_t;

typedef void (*kvl_http_cb)(void *arg, const kvl_http_result_t *r);

/* NULL when out of memory or curl cannot start (logged). */
kvl_http_t *kvl_http_new(uv_loop_t *loop, kvl_http_cb cb, void *arg);
/* Starts a GET of url, given up after timeout_ms. ca_file: CA bundle for https (NULL: the
 * system's). Returns 0 or a negative error (no callback then). */
int kvl_http_get(kvl_http_t *h, const char *url, const char *ca_file, uint32_t target, uint32_t seq,
                 long timeout_ms);
/* Aborts transfers and closes; NULL-safe. */
void kvl_http_free(kvl_http_t *h);

/* Pure: days from now_s (Unix seconds) to a certificate date as CURLINFO_CERTINFO prints
 * it ("Expire date:Nov 23 14:00:00 2027 GMT"; the "Expire date:" prefix optional). NaN
 * when it does not parse. */
double kvl_http_cert_days(const char *expire, int64_t now_s);

#endif
