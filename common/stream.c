/*
 * stream.c — a framed TCP connection, with or without TLS (see stream.h).
 *
 * Bytes read go through the TLS session when there is one (kvl_tls_feed, whose answers
 * are written at once), then into the frame reader, which hands out whole frames. Writes
 * go through the session and then to the socket as one uv_write each, the request holding
 * a copy of the bytes; the stream outlives its requests (libuv completes them, cancelled
 * if need be, before the handle's close callback, which frees the stream).
 */
#include "stream.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "frame.h"
#include "kvl.h"

struct kvl_stream {
    uv_tcp_t tcp;
    uv_connect_t connect;
    kvl_stream_cbs_t cbs;
    void *data;
    kvl_tls_t *tls;  /* NULL: plain TCP */
    kvl_buf_t plain; /* decrypted bytes on their way to the reader */
    kvl_frame_reader_t reader;
    size_t max_frame;
    char peer[64];
    bool ready;   /* frames may be written */
    bool reading; /* the socket is read */
    bool ended;   /* on_end came: no more frames */
    bool closing; /* kvl_stream_close came */
    bool silent;  /* failed while being made: freed without on_closed */
    kvl_stream_end_t ended_by;
    kvl_stream_stats_t stats;
};

typedef struct write_req {
    uv_write_t req;
    kvl_stream_t *s;
    size_t len;
    uint8_t data[];
} write_req_t;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    KVL_UNUSED(h);
    buf->base = malloc(suggested);
    buf->len = buf->base ? suggested : 0;
}

/* The stream can carry no more frames: tells the owner once. */
static void end(kvl_stream_t *s, kvl_stream_end_t by, int code, const char *why)
{
    if (s->ended || s->closing) {
        return;
    }
    s->ended = true;
    s->ended_by = by;
    if (s->reading) {
        uv_read_stop((uv_stream_t *)&s->tcp);
        s->reading = false;
    }
    s->cbs.on_end(s, code, why);
}

static void on_write(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    kvl_stream_t *s = w->s;
    s->stats.queued_bytes -= w->len;
    if (status == 0) {
        s->stats.bytes_out += w->len;
    }
    free(w);
    if (status == 0) {
        if (s->cbs.on_drained != NULL && !s->closing && !s->ended) {
            s->cbs.on_drained(s);
        }
    } else if (status != UV_ECANCELED) {
        char why[128];
        snprintf(why, sizeof(why), "write failed: %s", uv_strerror(status));
        end(s, KVL_STREAM_END_WRITE, status, why);
    }
}

/* Writes bytes to the socket as they are (encrypted already when TLS is on). */
static int write_raw(kvl_stream_t *s, const void *data, size_t len)
{
    write_req_t *w = malloc(sizeof(*w) + len);
    if (w == NULL) {
        return KVL_ENOMEM;
    }
    w->s = s;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned int)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, on_write);
    if (rc != 0) {
        free(w);
        return rc;
    }
    s->stats.queued_bytes += len;
    return 0;
}

/* Writes what the TLS session has for the network (handshake, alerts, records). */
static int flush_tls(kvl_stream_t *s)
{
    kvl_buf_t out = {0};
    int rc = kvl_tls_take_output(s->tls, &out);
    if (rc == 0 && out.len > 0) {
        rc = write_raw(s, out.data, out.len);
    }
    kvl_buf_free(&out);
    return rc;
}

static void became_ready(kvl_stream_t *s)
{
    s->ready = true;
    if (s->cbs.on_ready != NULL) {
        s->cbs.on_ready(s);
    }
}

/* Decrypts into s->plain and answers the handshake. Returns 0, 1 when the peer ended the
 * session (what came before its close_notify is in s->plain), or -1 after on_end. */
static int tls_read(kvl_stream_t *s, const void *data, size_t len)
{
    bool was_established = kvl_tls_established(s->tls);
    int rc = kvl_tls_feed(s->tls, data, len, &s->plain);
    if (rc == KVL_ETLS) {
        flush_tls(s); /* the alert that tells the peer why */
        char why[900];
        snprintf(why, sizeof(why), "TLS %s failed: %s", was_established ? "session" : "handshake",
                 kvl_tls_error(s->tls));
        end(s, was_established ? KVL_STREAM_END_TLS_SESSION : KVL_STREAM_END_TLS_HANDSHAKE, rc,
            why);
        return -1;
    }
    flush_tls(s);
    if (rc == KVL_ENOMEM) {
        end(s, KVL_STREAM_END_NOMEM, rc, "out of memory");
        return -1;
    }
    if (!was_established && kvl_tls_established(s->tls)) {
        became_ready(s);
    }
    return rc == KVL_ECLOSED ? 1 : 0;
}

static void on_read(uv_stream_t *us, ssize_t nread, const uv_buf_t *buf)
{
    kvl_stream_t *s = us->data;
    if (nread < 0) {
        free(buf->base);
        if (nread == UV_EOF) {
            int rc = kvl_frame_reader_finish(&s->reader);
            end(s, KVL_STREAM_END_EOF, rc, rc == 0 ? NULL : "connection ended inside a frame");
        } else {
            char why[128];
            snprintf(why, sizeof(why), "read failed: %s", uv_strerror((int)nread));
            end(s, KVL_STREAM_END_READ, (int)nread, why);
        }
        return;
    }
    s->stats.bytes_in += (uint64_t)nread;
    int rc;
    bool tls_ended = false;
    if (s->tls != NULL) {
        int trc = tls_read(s, buf->base, (size_t)nread);
        free(buf->base);
        if (trc < 0 || s->closing || s->ended) {
            return;
        }
        tls_ended = trc == 1;
        rc = kvl_frame_reader_feed(&s->reader, s->plain.data, s->plain.len);
        kvl_buf_reset(&s->plain);
    } else {
        rc = kvl_frame_reader_feed(&s->reader, buf->base, (size_t)nread);
        free(buf->base);
    }
    if (rc != 0) {
        end(s, KVL_STREAM_END_NOMEM, rc, "out of memory");
        return;
    }
    const uint8_t *p;
    size_t len;
    while (!s->closing && !s->ended && (rc = kvl_frame_next(&s->reader, &p, &len)) == 1) {
        s->stats.frames_in++;
        s->cbs.on_frame(s, p, len);
    }
    if (rc < 0) {
        char why[160];
        snprintf(why, sizeof(why), "bad frame: %s (limit %zu bytes)", kvl_strerror(rc),
                 s->max_frame);
        end(s, KVL_STREAM_END_BAD_FRAME, rc, why);
        return;
    }
    if (tls_ended) {
        rc = kvl_frame_reader_finish(&s->reader);
        end(s, KVL_STREAM_END_TLS_CLOSE, rc, rc == 0 ? NULL : "TLS session ended inside a frame");
    }
}

static void on_close(uv_handle_t *h)
{
    kvl_stream_t *s = h->data;
    if (!s->silent && s->cbs.on_closed != NULL) {
        s->cbs.on_closed(s);
    }
    kvl_frame_reader_free(&s->reader);
    kvl_tls_free(s->tls);
    kvl_buf_free(&s->plain);
    free(s);
}

/* A stream with its handle initialised (closed through on_close from here on). */
static kvl_stream_t *stream_new(uv_loop_t *loop, const kvl_stream_opts_t *opts,
                                const kvl_stream_cbs_t *cbs)
{
    kvl_stream_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return NULL;
    }
    s->cbs = *cbs;
    s->data = opts->data;
    s->max_frame = opts->max_frame ? opts->max_frame : KVL_FRAME_MAX_DEFAULT;
    kvl_frame_reader_init(&s->reader, s->max_frame);
    snprintf(s->peer, sizeof(s->peer), "unknown peer");
    uv_tcp_init(loop, &s->tcp);
    s->tcp.data = s;
    s->connect.data = s;
    return s;
}

/* Undoes stream_new after a failure the caller reports itself. */
static int fail(kvl_stream_t *s, int rc, char *err, size_t errlen, const char *what)
{
    snprintf(err, errlen, "%s: %s", what, kvl_strerror(rc));
    s->silent = true;
    s->closing = true;
    uv_close((uv_handle_t *)&s->tcp, on_close);
    return rc;
}

static void peer_name(kvl_stream_t *s)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) != 0) {
        return;
    }
    char ip[48] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof(ip));
        port = ntohs(sin->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
        uv_ip6_name(sin6, ip, sizeof(ip));
        port = ntohs(sin6->sin6_port);
    }
    snprintf(s->peer, sizeof(s->peer), "%s:%d", ip, port);
}

int kvl_stream_accept(uv_stream_t *server, const kvl_stream_opts_t *opts,
                      const kvl_stream_cbs_t *cbs, kvl_stream_t **out, char *err, size_t errlen)
{
    *out = NULL;
    kvl_stream_t *s = stream_new(server->loop, opts, cbs);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    int rc = uv_accept(server, (uv_stream_t *)&s->tcp);
    if (rc != 0) {
        return fail(s, rc, err, errlen, "accept failed");
    }
    peer_name(s);
    if (opts->tls != NULL && (s->tls = kvl_tls_new(opts->tls, NULL)) == NULL) {
        return fail(s, KVL_ENOMEM, err, errlen, "TLS");
    }
    uv_tcp_nodelay(&s->tcp, 1);
    s->ready = s->tls == NULL;
    *out = s;
    return 0;
}

static void on_connect(uv_connect_t *req, int status)
{
    kvl_stream_t *s = req->data;
    if (s->closing) {
        return;
    }
    if (status != 0) {
        char why[128];
        snprintf(why, sizeof(why), "cannot connect: %s", uv_strerror(status));
        end(s, KVL_STREAM_END_CONNECT, status, why);
        return;
    }
    peer_name(s);
    uv_tcp_nodelay(&s->tcp, 1);
    if (s->cbs.on_connected != NULL) {
        s->cbs.on_connected(s);
        if (s->closing) {
            return;
        }
    }
    int rc = kvl_stream_read(s, true);
    if (rc != 0) {
        char why[128];
        snprintf(why, sizeof(why), "read failed: %s", uv_strerror(rc));
        end(s, KVL_STREAM_END_READ, rc, why);
        return;
    }
    if (s->tls == NULL) {
        became_ready(s);
        return;
    }
    rc = kvl_tls_handshake(s->tls);
    if (rc == KVL_ETLS) {
        char why[900];
        flush_tls(s);
        snprintf(why, sizeof(why), "TLS handshake failed: %s", kvl_tls_error(s->tls));
        end(s, KVL_STREAM_END_TLS_HANDSHAKE, rc, why);
        return;
    }
    rc = rc == 0 ? flush_tls(s) : rc;
    if (rc != 0) {
        end(s, KVL_STREAM_END_NOMEM, rc, "out of memory");
    }
}

int kvl_stream_connect(uv_loop_t *loop, const struct sockaddr *addr, const kvl_stream_opts_t *opts,
                       const kvl_stream_cbs_t *cbs, kvl_stream_t **out, char *err, size_t errlen)
{
    *out = NULL;
    kvl_stream_t *s = stream_new(loop, opts, cbs);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    if (opts->tls != NULL) {
        if (opts->peer_name == NULL) {
            return fail(s, KVL_EINVAL, err, errlen, "TLS needs the server's name");
        }
        if ((s->tls = kvl_tls_new(opts->tls, opts->peer_name)) == NULL) {
            return fail(s, KVL_ENOMEM, err, errlen, "TLS");
        }
    }
    int rc = uv_tcp_connect(&s->connect, &s->tcp, addr, on_connect);
    if (rc != 0) {
        return fail(s, rc, err, errlen, "cannot connect");
    }
    *out = s;
    return 0;
}

/* Counts the frames whose headers start in bytes (for the statistics). */
static uint64_t count_frames(const uint8_t *p, size_t len)
{
    uint64_t n = 0;
    size_t off = 0;
    while (off + KVL_FRAME_HEADER <= len) {
        uint32_t flen = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 |
                        (uint32_t)p[off + 2] << 8 | p[off + 3];
        off += KVL_FRAME_HEADER + flen;
        n++;
    }
    return n;
}

static int send_bytes(kvl_stream_t *s, const void *data, size_t len)
{
    if (s->tls == NULL) {
        return write_raw(s, data, len);
    }
    int rc = kvl_tls_write(s->tls, data, len);
    return rc != 0 ? rc : flush_tls(s);
}

int kvl_stream_send(kvl_stream_t *s, const void *frames, size_t len)
{
    if (!s->ready || s->closing || s->ended) {
        return KVL_EINVAL;
    }
    int rc = send_bytes(s, frames, len);
    if (rc == 0) {
        s->stats.frames_out += count_frames(frames, len);
    }
    return rc;
}

int kvl_stream_write_frame(kvl_stream_t *s, const void *payload, size_t len)
{
    if (!s->ready || s->closing || s->ended) {
        return KVL_EINVAL;
    }
    if (len == 0 || len > UINT32_MAX) {
        return KVL_EINVAL;
    }
    uint8_t *b = malloc(KVL_FRAME_HEADER + len);
    if (b == NULL) {
        return KVL_ENOMEM;
    }
    kvl_frame_put_header(b, (uint32_t)len);
    memcpy(b + KVL_FRAME_HEADER, payload, len);
    int rc = send_bytes(s, b, KVL_FRAME_HEADER + len);
    free(b);
    if (rc == 0) {
        s->stats.frames_out++;
    }
    return rc;
}

int kvl_stream_read(kvl_stream_t *s, bool on)
{
    if (on == s->reading) {
        return 0;
    }
    if (on && (s->closing || s->ended)) {
        return KVL_EINVAL;
    }
    int rc = on ? uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read)
                : uv_read_stop((uv_stream_t *)&s->tcp);
    if (rc == 0) {
        s->reading = on;
    }
    return rc;
}

bool kvl_stream_reading(const kvl_stream_t *s)
{
    return s->reading;
}

void kvl_stream_close(kvl_stream_t *s)
{
    if (s == NULL || s->closing) {
        return;
    }
    if (s->tls != NULL && kvl_tls_established(s->tls)) {
        kvl_tls_shutdown(s->tls); /* close_notify, best effort */
        flush_tls(s);
    }
    s->closing = true;
    s->reading = false;
    uv_close((uv_handle_t *)&s->tcp, on_close);
}

kvl_stream_end_t kvl_stream_ended_by(const kvl_stream_t *s)
{
    return s->ended_by;
}

void *kvl_stream_data(const kvl_stream_t *s)
{
    return s->data;
}

const char *kvl_stream_peer(const kvl_stream_t *s)
{
    return s->peer;
}

const kvl_tls_t *kvl_stream_tls(const kvl_stream_t *s)
{
    return s->tls;
}

uv_tcp_t *kvl_stream_tcp(kvl_stream_t *s)
{
    return &s->tcp;
}

void kvl_stream_stats(const kvl_stream_t *s, kvl_stream_stats_t *out)
{
    *out = s->stats;
}
