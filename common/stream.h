/*
 * stream.h — one framed connection over TCP, with or without TLS, for both daemons.
 *
 * A kvl_stream_t is a libuv TCP handle, an optional TLS session (tls.h) between the socket
 * and the frames, and a frame reader (frame.h: 4-byte big-endian length, then the payload,
 * at most max_frame bytes). The owner sees whole frames (on_frame), writes messages
 * (kvl_stream_send for bytes that carry their frame headers already, as kvl_wire_encode
 * makes them; kvl_stream_write_frame for a bare payload), turns reading on and off for
 * backpressure (kvl_stream_read), and closes (kvl_stream_close, then on_closed).
 *
 * Server (the collector's ingest): in the listener's connection callback,
 *     kvl_stream_accept(server, &opts, &cbs, &s, err, sizeof(err));
 * then kvl_stream_read(s, true) when it wants bytes (the TLS handshake needs them too);
 * on_ready comes when the TLS handshake is done (kvl_stream_tls(s) then has the peer's
 * certificate CN); a plain stream is ready at once and gets no on_ready.
 *
 * Client (the agent's uplink): with an address from uv_getaddrinfo,
 *     opts.tls = ctx; opts.peer_name = host (or tls.server_name);   (NULL ctx: plain TCP)
 *     kvl_stream_connect(loop, addr, &opts, &cbs, &s, err, sizeof(err));
 * on_connected (if set) comes when the TCP connection is up, before the first read and
 * the TLS handshake: the place for socket options on kvl_stream_tcp(s) (keepalive,
 * TCP_USER_TIMEOUT) and for a timer bounding the handshake. The stream then reads; on_ready
 * comes once it is connected and, with TLS, once the collector's certificate verified:
 * send the Hello there. A connection that fails or a handshake that fails comes as on_end
 * with its reason (an owner's timer may bound how long connecting takes: kvl_stream_close
 * cancels it). kvl_stream_stats(s) has queued_bytes to bound what waits unsent, and
 * on_drained says when a write completed (the uplink's pump).
 *
 * Callbacks run on the loop; `data` (from opts) is the owner's. on_frame's payload is
 * valid during the call only; the owner may close the stream in any callback (no frame
 * comes after that). on_end comes at most once, when the stream can carry no more frames:
 * code 0 when the peer ended it cleanly (EOF or TLS close_notify on a frame boundary),
 * else a negative code with a sentence: "connection ended inside a frame", "read failed:
 * …", "write failed: …", "TLS handshake failed: …" (the alert for the peer is sent first),
 * "TLS session failed: …", "bad frame: … (limit N bytes)", "cannot connect: …", "out of
 * memory". kvl_stream_ended_by(s) says which of these it was (kvl_stream_end_t), for an
 * owner that words its own messages. The stream does not close itself: the owner calls
 * kvl_stream_close (usually in on_end). on_closed comes once after kvl_stream_close, when the
 * handle is closed; the stream is freed right after it returns. A call that fails synchronously
 * fires no callback (and kvl_stream_accept/connect then leave nothing for the owner to free).
 */
#ifndef KVL_STREAM_H
#define KVL_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "tls.h"

typedef struct kvl_stream kvl_stream_t;

typedef struct kvl_stream_cbs {
    void (*on_frame)(kvl_stream_t *s, const uint8_t *payload, size_t len);
    void (*on_ready)(kvl_stream_t *s);                          /* may be NULL */
    void (*on_end)(kvl_stream_t *s, int code, const char *why); /* see above */
    void (*on_drained)(kvl_stream_t *s);                        /* a write completed; NULL ok */
    void (*on_closed)(kvl_stream_t *s);                         /* may be NULL */
    void (*on_connected)(kvl_stream_t *s); /* client: TCP up, nothing read yet; NULL ok */
} kvl_stream_cbs_t;

/* Why a stream ended (kvl_stream_ended_by), one value per sentence on_end gives. */
typedef enum kvl_stream_end {
    KVL_STREAM_END_NONE,          /* not ended (or closed by its owner) */
    KVL_STREAM_END_EOF,           /* the peer closed the connection (on a frame boundary:
                                     code 0; inside a frame: "connection ended inside…") */
    KVL_STREAM_END_TLS_CLOSE,     /* the peer's TLS close_notify (code 0 on a frame boundary) */
    KVL_STREAM_END_CONNECT,       /* "cannot connect: …" */
    KVL_STREAM_END_READ,          /* "read failed: …" */
    KVL_STREAM_END_WRITE,         /* "write failed: …" */
    KVL_STREAM_END_TLS_HANDSHAKE, /* "TLS handshake failed: …" (kvl_tls_error has the text) */
    KVL_STREAM_END_TLS_SESSION,   /* "TLS session failed: …" (the same) */
    KVL_STREAM_END_BAD_FRAME,     /* "bad frame: …" (code: KVL_EFRAME_*) */
    KVL_STREAM_END_NOMEM,         /* "out of memory" */
} kvl_stream_end_t;

typedef struct kvl_stream_opts {
    kvl_tls_ctx_t *tls;    /* NULL: plain TCP */
    const char *peer_name; /* client with TLS: the name the server's certificate must match */
    size_t max_frame;      /* largest payload accepted; 0: KVL_FRAME_MAX_DEFAULT */
    void *data;            /* the owner's, kvl_stream_data */
} kvl_stream_opts_t;

typedef struct kvl_stream_stats {
    uint64_t frames_in;    /* whole frames handed to on_frame */
    uint64_t frames_out;   /* kvl_stream_write_frame calls, and frames in kvl_stream_send */
    uint64_t bytes_in;     /* read from the socket (encrypted ones with TLS) */
    uint64_t bytes_out;    /* written to the socket (the same) */
    uint64_t queued_bytes; /* handed to the socket, not yet written */
} kvl_stream_stats_t;

/* Accepts a connection waiting on server (a listening uv_tcp_t). Not reading yet.
 * Returns 0 and sets *out, or a negative code with err. */
int kvl_stream_accept(uv_stream_t *server, const kvl_stream_opts_t *opts,
                      const kvl_stream_cbs_t *cbs, kvl_stream_t **out, char *err, size_t errlen);
/* Connects to addr (reading starts once connected; TLS handshake then). Returns 0 and sets
 * *out, or a negative code with err. */
int kvl_stream_connect(uv_loop_t *loop, const struct sockaddr *addr, const kvl_stream_opts_t *opts,
                       const kvl_stream_cbs_t *cbs, kvl_stream_t **out, char *err, size_t errlen);

/* Writes bytes that are whole frames already (headers included). Through TLS when on; only
 * once ready. Returns 0 or a negative code (KVL_EINVAL before ready or once closing). */
int kvl_stream_send(kvl_stream_t *s, const void *frames, size_t len);
/* Writes one frame: the header, then payload. Returns as kvl_stream_send. */
int kvl_stream_write_frame(kvl_stream_t *s, const void *payload, size_t len);

/* Reads from the socket, or stops (frames already read are still handed over). Returns 0
 * or a negative code. */
int kvl_stream_read(kvl_stream_t *s, bool on);
bool kvl_stream_reading(const kvl_stream_t *s);

/* Sends TLS close_notify when established (best effort), closes the handle; on_closed
 * follows. No callback but on_closed comes after this. Idempotent. */
void kvl_stream_close(kvl_stream_t *s);

/* What ended the stream (KVL_STREAM_END_NONE before on_end). */
kvl_stream_end_t kvl_stream_ended_by(const kvl_stream_t *s);
void *kvl_stream_data(const kvl_stream_t *s);
/* "ip:port" of the peer ("unknown peer" when the socket does not say). */
const char *kvl_stream_peer(const kvl_stream_t *s);
/* The TLS session (NULL for plain TCP): kvl_tls_established, _peer_id, _describe. */
const kvl_tls_t *kvl_stream_tls(const kvl_stream_t *s);
uv_tcp_t *kvl_stream_tcp(kvl_stream_t *s);
void kvl_stream_stats(const kvl_stream_t *s, kvl_stream_stats_t *out);

#endif
