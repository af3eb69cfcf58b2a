/*
 * http.h — the collector's HTTP server (libmicrohttpd, its own threads): TLS with the
 * collector's certificate, or plain HTTP bound to 127.0.0.1 only; users with roles and
 * password hashes (libcrypt, yescrypt), API tokens for scripts; JSON handlers that other
 * rooms register (alerts now, the dashboards' API next) and that run on the collector's
 * loop, never on the server's threads.
 *
 * A request to a registered route is authenticated (a session or an API token, or HTTP
 * Basic for scripts; no credentials: 401; a role below the route's: 403), its path,
 * query parameters and JSON body are checked (bounded sizes, valid UTF-8, no control
 * characters; else 400 with a sentence), then the server suspends the connection and
 * hands the request to the loop (uv_async); the handler fills in a response there; the
 * connection resumes with it. Writes (POST, PUT, DELETE) from a browser session need the
 * session's CSRF token. Handlers therefore touch the loop's state freely, and need no
 * locks.
 *
 * Built in: GET /api/v1/status (collector id, version, uptime; viewer), GET /api/v1/whoami
 * (viewer; with a session also its CSRF token), GET /api/v1/users (names and roles of users and
 * tokens; admin), POST /api/v1/login {user, password} (a session cookie and its CSRF token), POST
 * /api/v1/logout; static files from the configured folder for any other path outside /api/.
 *
 * Routes match by method and path prefix; the rest of the path is split at '/' into
 * decoded segments ("/api/v1/alerts" + "/<fp>/ack" gives segs {"<fp>", "ack"}).
 */
#ifndef KVL_HTTP_H
#define KVL_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http_role.h" /* kvl_role_t */

typedef struct kvl_http kvl_http_t;
typedef struct kvl_http_cfg kvl_http_cfg_t; /* http_config.h: the `http:` section */

#define KVL_HTTP_MAX_SEGS 8

typedef struct kvl_http_req {
    const char *method; /* "GET", "POST", "PUT", "DELETE" */
    const char *path;   /* the whole decoded path */
    const char *segs[KVL_HTTP_MAX_SEGS];
    size_t n_segs;    /* after the route's prefix */
    const char *user; /* who: a user's name, or "token:<name>" */
    kvl_role_t role;
    json_t *body; /* the parsed JSON body of a POST/PUT (an object or array), else NULL */
    const void *priv;
} kvl_http_req_t;

typedef struct kvl_http_resp {
    int status;   /* 200 unless set */
    json_t *body; /* the handler's reference, taken by the server; NULL: no body */
    /* Or bytes of the handler's own (a PNG, an SVG, CSV, text): malloc'd, taken by the
     * server, sent with Content-Type `type` (a static string); body is then ignored. */
    const char *type;
    char *bytes;
    size_t len;
} kvl_http_resp_t;

/* A query parameter's decoded value, or NULL when absent. */
const char *kvl_http_query(const kvl_http_req_t *req, const char *key);

/* Sets resp to `status` with {"error": "<sentence>"}. */
void kvl_http_error(kvl_http_resp_t *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Runs on the loop's thread; req is valid for the call only. */
typedef void (*kvl_http_handler_fn)(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp);

/* A request whose answer comes later (work on the thread pool): a handler calls
 * kvl_http_defer and returns (resp is then ignored); the connection stays suspended until
 * kvl_http_answer, which must be called exactly once, on the loop's thread, and frees the
 * handle. If the server stops first the client gets 503 and the later answer is dropped
 * (the handle stays valid until kvl_http_answer). NULL when out of memory: the handler
 * answers through resp as usual. */
typedef struct kvl_http_later kvl_http_later_t;
kvl_http_later_t *kvl_http_defer(const kvl_http_req_t *req);
/* Takes body (may be NULL). */
void kvl_http_answer(kvl_http_later_t *later, int status, json_t *body);
/* The same with bytes of the handler's own (malloc'd, taken) and their Content-Type. */
void kvl_http_answer_bytes(kvl_http_later_t *later, int status, const char *type, void *bytes,
                           size_t len);

/* Registers a handler before kvl_http_start. method NULL: any. The prefix starts with
 * /api/, or is exactly /metrics (the Prometheus scrape; `metrics_anonymous` lets a GET from
 * a loopback address without credentials through as a viewer). Returns 0 or KVL_EINVAL. */
int kvl_http_route(kvl_http_t *h, const char *method, const char *prefix, kvl_role_t min_role,
                   kvl_http_handler_fn fn, void *ctx);

/* Request counters per class (a route's prefix, "static", "login" for login/logout, "other"
 * for /api/ paths refused before a route was found): how many, by status code, and the
 * time from the request line's arrival to its response being queued (a histogram over
 * kvl_http_buckets_s, cumulative as Prometheus has it, the last bucket +Inf being count). */
#define KVL_HTTP_BUCKETS 12
#define KVL_HTTP_STATUSES 12
extern const double kvl_http_buckets_s[KVL_HTTP_BUCKETS];
typedef struct kvl_http_class_stats {
    const char *name;              /* routes with the same prefix (GET, POST) share one class */
    uint64_t le[KVL_HTTP_BUCKETS]; /* requests that took at most kvl_http_buckets_s[i] */
    uint64_t count;
    double sum_s;
    size_t n_status;
    int status[KVL_HTTP_STATUSES];
    uint64_t by_status[KVL_HTTP_STATUSES];
} kvl_http_class_stats_t;
typedef void (*kvl_http_stats_fn)(void *ctx, const kvl_http_class_stats_t *st);
/* Calls fn for every class (any thread; NULL h: none). */
void kvl_http_stats(kvl_http_t *h, kvl_http_stats_fn fn, void *ctx);

int kvl_http_new(uv_loop_t *loop, const kvl_http_cfg_t *cfg, kvl_http_t **out, char *err,
                 size_t errlen);
/* Starts listening. Returns 0, or a negative KVL_E* with a one-line reason in err (the
 * address in use, the certificate unreadable, a plain listener not on 127.0.0.1). */
int kvl_http_start(kvl_http_t *h, char *err, size_t errlen);
/* Requests handed to the loop and not yet taken by it (any thread). */
size_t kvl_http_queued(kvl_http_t *h);
/* The port listened on (after kvl_http_start; useful with port 0 in tests), else 0. */
uint16_t kvl_http_port(const kvl_http_t *h);
/* Stops the server's threads (requests in flight get 503); h is freed when the loop has
 * closed its async handle (run the loop after). NULL is a no-op. */
void kvl_http_free(kvl_http_t *h);

#endif
