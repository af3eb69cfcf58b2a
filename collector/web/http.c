/*
 * http.c — the collector's HTTP server (http.h) on libmicrohttpd, the only user of it.
 *
 * Threads: MHD's own (a polling thread, or a pool of them) parse and check each request
 * (http_parse.c), authenticate it (http_auth.c), serve static files and the login/logout
 * calls themselves, and hand a request for a registered route to the loop: the connection is
 * suspended, the request (a job) goes on a locked queue and uv_async_send wakes the loop; the
 * loop runs the handler, renders its JSON, marks the job done and resumes the connection;
 * MHD then calls back the access handler, which queues the response. A job lives from the
 * URI callback (MHD_OPTION_URI_LOG_CALLBACK, where the raw request target is parsed) to
 * MHD_OPTION_NOTIFY_COMPLETED.
 *
 * A refused credential (a wrong password, an unknown token) is logged, rate-limited, and its
 * 401 handed to the loop like a route's request, which answers it after 250 ms on a timer: a
 * guesser is slowed down without a server thread sleeping for it.
 *
 * Stopping (kvl_http_free, on the loop): new requests get 503, queued and delayed ones get
 * 503 and are resumed, and their answers sent (bounded wait), then MHD is stopped (it refuses
 * to stop with suspended connections), then the async handle is closed and h freed in its
 * close callback.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http_auth.h"
#include "http_config.h"
#include "http_parse.h"
#include "kvl.h"
#include "log.h"
#include "timeutil.h"

#define MAX_ROUTES 64
#define STATIC_FILE_MAX (16 * 1024 * 1024)
#define FAILED_AUTH_DELAY_MS 250
/* An address with this many refused credentials within FAIL_WINDOW_MS gets 429 without its
 * credentials being checked (no yescrypt work for a guesser) until the window ends; the
 * table of addresses is bounded (the oldest window gives its slot up). */
#define FAIL_MAX 10
#define FAIL_WINDOW_MS (60 * 1000)
#define FAIL_SLOTS 256
#define SESSION_COOKIE "kaaval_session"
/* The request-time histogram's classes: one per route, then these */
#define CLASS_STATIC MAX_ROUTES
#define CLASS_LOGIN (MAX_ROUTES + 1)
#define CLASS_OTHER (MAX_ROUTES + 2) /* /api/ requests refused before a route was found */
#define N_CLASSES (MAX_ROUTES + 3)

const double kvl_http_buckets_s[KVL_HTTP_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                     0.1,   0.25,   0.5,   1,    2.5,   10};

/* The counters of one class of requests (under the server's stats_mu). */
typedef struct class_stats {
    uint64_t buckets[KVL_HTTP_BUCKETS]; /* not cumulative: [i] counts times in (b[i-1], b[i]] */
    uint64_t count;
    uint64_t sum_ns;
    int status[KVL_HTTP_STATUSES]; /* the codes seen, in order; 0: free */
    uint64_t by_status[KVL_HTTP_STATUSES];
} class_stats_t;

typedef struct route {
    char method[8]; /* "" for any */
    char prefix[128];
    size_t plen;
    kvl_role_t min_role;
    kvl_http_handler_fn fn;
    void *ctx;
    size_t cls; /* its request class: the first route with the same prefix */
} route_t;

typedef struct fail_rec {
    char addr[64];
    uint64_t since_ms; /* the window's start (0: free) */
    uint32_t n;
} fail_rec_t;

typedef struct job {
    struct job *next;
    char addr[64]; /* the client's address, for the log and the failure count */
    kvl_http_t *h;
    struct MHD_Connection *conn;
    int target_rc;
    char target_why[160];
    bool target_too_long;
    kvl_http_target_t target;
    int stage; /* 0: nothing seen, 1: headers seen, 2: handed to the loop */
    char *body;
    size_t body_len;
    bool body_too_big;
    const route_t *route;
    char method[8];
    char user[KVL_HTTP_USER_MAX + 8];
    kvl_role_t role;
    char csrf[KVL_HTTP_SID_LEN + 1]; /* the session's CSRF token, "" without a session */
    json_t *json;
    /* set by the loop before the resume */
    int status;
    char *resp_text; /* the answer's bytes: JSON text, or a handler's own (resp_type) */
    size_t resp_len;
    char resp_type[64];
    bool done;
    bool draining; /* answered 503 at stop; kvl_http_free waits for it to be sent */
    /* a refused credential: answered `delay_status` after FAILED_AUTH_DELAY_MS by the loop's
     * timer (no server thread sleeps), the job meanwhile on the server's delayed list */
    bool delay;
    int delay_status;
    char delay_why[256];
    uv_timer_t *timer; /* its own allocation: it may outlive the job while closing */
    struct job *dprev, *dnext;
    struct kvl_http_later *later; /* the handler deferred its answer (kvl_http_defer) */
    uint64_t start_ns;            /* when its request line came (monotonic) */
    uint64_t queued_ns;           /* when its response was queued (0: none was) */
    int sent_status;
} job_t;

/* A deferred answer's handle: owned by the handler until kvl_http_answer; `j` NULL once the
 * server answered 503 at its stop. On the server's list of them while j is set. */
struct kvl_http_later {
    job_t *j;
    struct kvl_http_later *prev, *next;
};

struct kvl_http {
    uv_loop_t *loop;
    const kvl_http_cfg_t *cfg;
    kvl_http_auth_db_t *auth;
    struct MHD_Daemon *mhd;
    int listen_fd;
    uint16_t port;
    uv_async_t async;
    bool async_init;
    uint64_t started_ms;
    char *tls_cert, *tls_key;
    route_t routes[MAX_ROUTES];
    size_t n_routes;
    pthread_mutex_t mu; /* the queue, stopping, the failed-login limiter */
    job_t *head, *tail;
    bool stopping;
    size_t n_draining;            /* jobs answered 503 at stop, not yet completed */
    job_t *delayed;               /* refusals waiting for their delay (the loop's thread only) */
    struct kvl_http_later *later; /* deferred answers not yet given (the loop's thread) */
    kvl_log_limit_t failed_limit;
    fail_rec_t fails[FAIL_SLOTS]; /* refused credentials per address (under mu) */
    char static_root[PATH_MAX];
    pthread_mutex_t stats_mu; /* cls */
    class_stats_t cls[N_CLASSES];
};

/* The request whose MHD callback runs on this thread (its response's time and status are
 * recorded when it is queued), else NULL. */
static __thread job_t *cur_job;

static void note_queued(int status)
{
    if (cur_job != NULL && cur_job->queued_ns == 0) {
        cur_job->queued_ns = kvl_mono_ns();
        cur_job->sent_status = status;
    }
}

/* ------------------------------------------------------------------ handler helpers */

const char *kvl_http_query(const kvl_http_req_t *req, const char *key)
{
    const job_t *j = req->priv;
    return j ? kvl_http_target_param(&j->target, key) : NULL;
}

void kvl_http_error(kvl_http_resp_t *resp, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_decref(resp->body);
    resp->status = status;
    resp->body = json_pack("{s:s}", "error", msg);
}

int kvl_http_route(kvl_http_t *h, const char *method, const char *prefix, kvl_role_t min_role,
                   kvl_http_handler_fn fn, void *ctx)
{
    if (h == NULL || prefix == NULL || fn == NULL || h->n_routes == MAX_ROUTES ||
        (strncmp(prefix, "/api/", 5) != 0 && strcmp(prefix, "/metrics") != 0) ||
        strlen(prefix) >= sizeof(h->routes[0].prefix) || prefix[strlen(prefix) - 1] == '/' ||
        (method != NULL && strlen(method) >= 8) || h->mhd != NULL) {
        return KVL_EINVAL;
    }
    route_t *r = &h->routes[h->n_routes++];
    snprintf(r->method, sizeof(r->method), "%s", method ? method : "");
    snprintf(r->prefix, sizeof(r->prefix), "%s", prefix);
    r->plen = strlen(prefix);
    r->min_role = min_role;
    r->fn = fn;
    r->ctx = ctx;
    r->cls = (size_t)(r - h->routes);
    for (size_t i = 0; i + 1 < h->n_routes; i++) {
        if (strcmp(h->routes[i].prefix, prefix) == 0) {
            r->cls = h->routes[i].cls;
            break;
        }
    }
    return 0;
}

size_t kvl_http_queued(kvl_http_t *h)
{
    size_t n = 0;
    pthread_mutex_lock(&h->mu);
    for (const job_t *j = h->head; j != NULL; j = j->next) {
        n++;
    }
    pthread_mutex_unlock(&h->mu);
    return n;
}

uint16_t kvl_http_port(const kvl_http_t *h)
{
    return h ? h->port : 0;
}

/* ------------------------------------------------------------------ built-in routes */

static void on_status(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_http_t *h = ctx;
    KVL_UNUSED(req);
    uint64_t up = (uv_now(h->loop) - h->started_ms) / 1000;
    resp->body = json_pack("{s:s?, s:s, s:I}", "collector", h->cfg->collector_id, "version",
                           KVL_VERSION, "uptime_s", (json_int_t)up);
}

/* With a session, also its CSRF token: a page loaded after the login (a new tab, a reload)
 * gets it here (another site's page cannot read this answer). */
static void on_whoami(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    KVL_UNUSED(ctx);
    const job_t *j = req->priv;
    resp->body = json_pack("{s:s, s:s}", "user", req->user, "role", kvl_http_role_name(req->role));
    if (resp->body != NULL && j->csrf[0] != '\0') {
        json_object_set_new(resp->body, "csrf_token", json_string(j->csrf));
    }
}

static void on_users(void *ctx, const kvl_http_req_t *req, kvl_http_resp_t *resp)
{
    kvl_http_t *h = ctx;
    KVL_UNUSED(req);
    resp->body = json_pack("{s:o}", "users", kvl_http_auth_list(h->auth));
}

/* ------------------------------------------------------------------ responses (MHD threads) */

static enum MHD_Result send_bytes(struct MHD_Connection *c, int status, const char *type,
                                  const char *bytes, size_t len, const char *cookie)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        bytes ? len : 0, (void *)(bytes ? bytes : ""), MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        return MHD_NO;
    }
    if (type != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    }
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    /* Not to a page's script (X-Requested-With): a browser would answer the challenge with
     * its own password box in place of the page's login form. */
    if (status == MHD_HTTP_UNAUTHORIZED &&
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Requested-With") == NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"kaaval\"");
    }
    if (cookie != NULL) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
    }
    enum MHD_Result rc = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    if (rc == MHD_YES) {
        note_queued(status);
    }
    return rc;
}

static enum MHD_Result send_text(struct MHD_Connection *c, int status, const char *type,
                                 const char *text, const char *cookie)
{
    return send_bytes(c, status, type, text, text ? strlen(text) : 0, cookie);
}

static enum MHD_Result send_json(struct MHD_Connection *c, int status, json_t *body,
                                 const char *cookie)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    enum MHD_Result rc = send_text(c, status, "application/json", text ? text : "{}", cookie);
    free(text);
    return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *fmt, ...)
    KVL_PRINTF(3, 4);

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return send_json(c, status, json_pack("{s:s}", "error", msg), NULL);
}

/* ------------------------------------------------------------------ static files */

static const char *content_type(const char *path)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".json", "application/json"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < KVL_ARRAY_SIZE(types); i++) {
        if (strcmp(dot, types[i][0]) == 0) {
            return types[i][1];
        }
    }
    return "application/octet-stream";
}

static enum MHD_Result serve_static(kvl_http_t *h, job_t *j)
{
    struct MHD_Connection *c = j->conn;
    if (strcmp(j->method, "GET") != 0 && strcmp(j->method, "HEAD") != 0) {
        return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "static files are GET only");
    }
    if (h->static_root[0] == '\0') {
        return send_error(c, MHD_HTTP_NOT_FOUND, "no static files folder");
    }
    const char *p = j->target.path;
    char rel[PATH_MAX];
    size_t pl = strlen(p);
    int n = snprintf(rel, sizeof(rel), "%s%s%s", h->static_root, p,
                     p[pl - 1] == '/' ? "index.html" : "");
    char real[PATH_MAX];
    size_t rl = strlen(h->static_root);
    /* the decoded path has no "." or ".." segment (http_parse.c); a symbolic link out of the
     * folder is refused here */
    if (n < 0 || (size_t)n >= sizeof(rel) || realpath(rel, real) == NULL ||
        strncmp(real, h->static_root, rl) != 0 || real[rl] != '/') {
        return send_error(c, MHD_HTTP_NOT_FOUND, "not found");
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > STATIC_FILE_MAX) {
        if (fd >= 0) {
            close(fd);
        }
        return send_error(c, MHD_HTTP_NOT_FOUND, "not found");
    }
    struct MHD_Response *r = MHD_create_response_from_fd((size_t)st.st_size, fd);
    if (r == NULL) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type(real));
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result rc = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    if (rc == MHD_YES) {
        note_queued(MHD_HTTP_OK);
    }
    return rc;
}

/* ------------------------------------------------------------------ authentication */

static void client_addr(struct MHD_Connection *c, char *buf, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(buf, len, "?");
    if (ci == NULL || ci->client_addr == NULL) {
        return;
    }
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, buf,
                  (socklen_t)len);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, buf,
                  (socklen_t)len);
    }
}

/* The failure record of addr within its window (mutex held), or NULL. */
static fail_rec_t *fail_find(kvl_http_t *h, const char *addr, uint64_t now)
{
    for (size_t i = 0; i < FAIL_SLOTS; i++) {
        fail_rec_t *r = &h->fails[i];
        if (r->since_ms != 0 && now - r->since_ms < FAIL_WINDOW_MS && strcmp(r->addr, addr) == 0) {
            return r;
        }
    }
    return NULL;
}

/* Whether addr refused too often lately: its credentials are then not even checked. */
static bool too_many_failures(kvl_http_t *h, const char *addr)
{
    uint64_t now = kvl_mono_ns() / 1000000 + 1;
    pthread_mutex_lock(&h->mu);
    const fail_rec_t *r = fail_find(h, addr, now);
    bool blocked = r != NULL && r->n >= FAIL_MAX;
    pthread_mutex_unlock(&h->mu);
    return blocked;
}

/* A failed login or credential: counted for its address and logged (limited); the answer
 * will be delayed. */
static void auth_failed(kvl_http_t *h, job_t *j, const char *who, const char *what)
{
    j->delay = true;
    uint64_t now = kvl_mono_ns() / 1000000 + 1;
    pthread_mutex_lock(&h->mu);
    fail_rec_t *r = fail_find(h, j->addr, now);
    if (r == NULL) {
        r = &h->fails[0];
        for (size_t i = 0; i < FAIL_SLOTS; i++) {
            fail_rec_t *c = &h->fails[i];
            if (c->since_ms == 0 || now - c->since_ms >= FAIL_WINDOW_MS) {
                r = c;
                break;
            }
            if (c->since_ms < r->since_ms) {
                r = c;
            }
        }
        snprintf(r->addr, sizeof(r->addr), "%s", j->addr);
        r->since_ms = now;
        r->n = 0;
    }
    r->n++;
    KVL_LOG_LIMITED(KVL_LOG_LEVEL_WARN, &h->failed_limit, "http", j->addr, "%s refused for %s%s",
                    what, who,
                    r->n == FAIL_MAX ? " (too many: this address is refused for a minute)" : "");
    pthread_mutex_unlock(&h->mu);
}

static enum MHD_Result hand_to_loop(kvl_http_t *h, job_t *j);

/* Answers `status` with `why` after FAILED_AUTH_DELAY_MS, through the loop. */
static enum MHD_Result defer_error(kvl_http_t *h, job_t *j, int status, const char *why)
{
    j->delay_status = status;
    snprintf(j->delay_why, sizeof(j->delay_why), "%s", why);
    j->route = NULL;
    return hand_to_loop(h, j);
}

typedef enum {
    AUTH_OK,
    AUTH_NONE,
    AUTH_BAD_REQUEST,
    AUTH_FAILED,
    AUTH_FORBIDDEN,
    AUTH_THROTTLED,
} auth_rc_t;

static bool is_write(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

/* Who sent j: an Authorization header, else the session cookie, else a kiosk token in the
 * query (viewer tokens only, GET only), else, with `anonymous_viewer`, a read by "anonymous"
 * as a viewer. Fills j->user, j->role; *csrf gets the session's CSRF token when the request
 * came with a session ("" otherwise). */
static auth_rc_t authenticate(kvl_http_t *h, job_t *j, char csrf[KVL_HTTP_SID_LEN + 1], char *why,
                              size_t whylen)
{
    struct MHD_Connection *c = j->conn;
    csrf[0] = '\0';
    const char *authz =
        MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    kvl_http_auth_t a;
    if (kvl_http_auth_parse(authz, &a, why, whylen) != 0) {
        return AUTH_BAD_REQUEST;
    }
    if ((a.kind != KVL_HTTP_AUTH_NONE || kvl_http_target_param(&j->target, "kiosk") != NULL) &&
        too_many_failures(h, j->addr)) {
        explicit_bzero(a.password, sizeof(a.password));
        snprintf(why, whylen, "too many refused credentials from %s: try again in a minute",
                 j->addr);
        return AUTH_THROTTLED;
    }
    if (a.kind == KVL_HTTP_AUTH_BASIC) {
        j->role = kvl_http_auth_password(h->auth, a.user, a.password);
        explicit_bzero(a.password, sizeof(a.password));
        if (j->role == KVL_ROLE_NONE) {
            auth_failed(h, j, a.user, "password");
            snprintf(why, whylen, "wrong user name or password");
            return AUTH_FAILED;
        }
        snprintf(j->user, sizeof(j->user), "%s", a.user);
        return AUTH_OK;
    }
    char name[KVL_HTTP_USER_MAX + 1];
    if (a.kind == KVL_HTTP_AUTH_BEARER) {
        j->role = kvl_http_auth_token(h->auth, a.token, name, sizeof(name));
        if (j->role == KVL_ROLE_NONE) {
            auth_failed(h, j, "a token", "token");
            snprintf(why, whylen, "unknown token");
            return AUTH_FAILED;
        }
        snprintf(j->user, sizeof(j->user), "token:%s", name);
        return AUTH_OK;
    }
    const char *cookies = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE);
    char sid[KVL_HTTP_TOKEN_MAX + 1];
    int got = kvl_http_cookie_get(cookies, SESSION_COOKIE, sid, sizeof(sid));
    if (got < 0) {
        snprintf(why, whylen, "a malformed Cookie header");
        return AUTH_BAD_REQUEST;
    }
    if (got == 1) {
        j->role = kvl_http_session_get(h->auth, sid, j->user, sizeof(j->user), csrf);
        if (j->role == KVL_ROLE_NONE) {
            snprintf(why, whylen, "the session has ended: log in again");
            return AUTH_FAILED;
        }
        return AUTH_OK;
    }
    const char *kiosk = kvl_http_target_param(&j->target, "kiosk");
    if (kiosk != NULL) {
        if (strcmp(j->method, "GET") != 0) {
            snprintf(why, whylen, "a kiosk link may only read");
            return AUTH_FORBIDDEN;
        }
        j->role = kvl_http_auth_token(h->auth, kiosk, name, sizeof(name));
        if (j->role == KVL_ROLE_NONE) {
            auth_failed(h, j, "a kiosk token", "kiosk link");
            snprintf(why, whylen, "unknown kiosk token");
            return AUTH_FAILED;
        }
        if (j->role != KVL_ROLE_VIEWER) {
            snprintf(why, whylen, "only a viewer token may be put in a URL (kiosk)");
            return AUTH_FORBIDDEN;
        }
        snprintf(j->user, sizeof(j->user), "kiosk:%s", name);
        return AUTH_OK;
    }
    if (h->cfg->anonymous_viewer && !is_write(j->method)) {
        j->role = KVL_ROLE_VIEWER;
        snprintf(j->user, sizeof(j->user), "anonymous");
        return AUTH_OK;
    }
    snprintf(why, whylen, "authentication needed (Basic, Bearer token or a session)");
    return AUTH_NONE;
}

static enum MHD_Result do_login(kvl_http_t *h, job_t *j)
{
    json_t *u = json_object_get(j->json, "user");
    json_t *p = json_object_get(j->json, "password");
    if (!json_is_string(u) || !json_is_string(p) || !kvl_http_user_name_ok(json_string_value(u)) ||
        json_string_length(p) > KVL_HTTP_PASSWORD_MAX) {
        return send_error(j->conn, MHD_HTTP_BAD_REQUEST,
                          "expected {\"user\": name, \"password\": text}");
    }
    const char *user = json_string_value(u);
    if (too_many_failures(h, j->addr)) {
        return send_error(j->conn, MHD_HTTP_TOO_MANY_REQUESTS,
                          "too many refused credentials from %s: try again in a minute", j->addr);
    }
    kvl_role_t role = kvl_http_auth_password(h->auth, user, json_string_value(p));
    if (role == KVL_ROLE_NONE) {
        auth_failed(h, j, user, "login");
        return defer_error(h, j, MHD_HTTP_UNAUTHORIZED, "wrong user name or password");
    }
    char sid[KVL_HTTP_SID_LEN + 1], csrf[KVL_HTTP_SID_LEN + 1];
    if (kvl_http_session_new(h->auth, user, role, sid, csrf) != 0) {
        return send_error(j->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "no randomness for a session");
    }
    char cookie[256];
    snprintf(cookie, sizeof(cookie), "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%lld%s",
             SESSION_COOKIE, sid, (long long)(h->cfg->session_ttl_ms / 1000),
             h->cfg->tls == 1 ? "; Secure" : "");
    KVL_LOG_INFO("http", user, "logged in (%s)", kvl_http_role_name(role));
    return send_json(j->conn, MHD_HTTP_OK,
                     json_pack("{s:s, s:s, s:s}", "user", user, "role", kvl_http_role_name(role),
                               "csrf_token", csrf),
                     cookie);
}

static enum MHD_Result do_logout(kvl_http_t *h, job_t *j)
{
    const char *cookies =
        MHD_lookup_connection_value(j->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_COOKIE);
    char sid[KVL_HTTP_TOKEN_MAX + 1];
    if (kvl_http_cookie_get(cookies, SESSION_COOKIE, sid, sizeof(sid)) == 1) {
        kvl_http_session_end(h->auth, sid);
    }
    char cookie[160];
    snprintf(cookie, sizeof(cookie), "%s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s",
             SESSION_COOKIE, h->cfg->tls == 1 ? "; Secure" : "");
    return send_json(j->conn, MHD_HTTP_OK, json_pack("{s:b}", "logged_out", 1), cookie);
}

/* ------------------------------------------------------------------ routing (MHD threads) */

static const route_t *find_route(kvl_http_t *h, const char *method, const char *path,
                                 bool *path_known)
{
    const route_t *best = NULL;
    *path_known = false;
    for (size_t i = 0; i < h->n_routes; i++) {
        const route_t *r = &h->routes[i];
        if (strncmp(path, r->prefix, r->plen) != 0 ||
            (path[r->plen] != '\0' && path[r->plen] != '/')) {
            continue;
        }
        *path_known = true;
        if (r->method[0] != '\0' && strcmp(r->method, method) != 0) {
            continue;
        }
        if (best == NULL || r->plen > best->plen) {
            best = r;
        }
    }
    return best;
}

/* Hands j to the loop (suspending its connection), or answers 503 when stopping. */
static enum MHD_Result hand_to_loop(kvl_http_t *h, job_t *j)
{
    pthread_mutex_lock(&h->mu);
    if (h->stopping) {
        pthread_mutex_unlock(&h->mu);
        return send_error(j->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "the collector is stopping");
    }
    j->stage = 2;
    MHD_suspend_connection(j->conn);
    j->next = NULL;
    if (h->tail != NULL) {
        h->tail->next = j;
    } else {
        h->head = j;
    }
    h->tail = j;
    pthread_mutex_unlock(&h->mu);
    uv_async_send(&h->async);
    return MHD_YES;
}

static enum MHD_Result dispatch(kvl_http_t *h, job_t *j)
{
    struct MHD_Connection *c = j->conn;
    const char *path = j->target.path;
    char why[256];
    if (j->body_too_big) {
        return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the body is larger than %d bytes",
                          KVL_HTTP_BODY_MAX);
    }
    bool metrics = strcmp(path, "/metrics") == 0;
    if (strncmp(path, "/api/", 5) != 0 && strcmp(path, "/api") != 0 && !metrics) {
        return serve_static(h, j);
    }
    if (kvl_http_body_parse(j->body, j->body_len, &j->json, why, sizeof(why)) != 0) {
        return send_error(c, MHD_HTTP_BAD_REQUEST, "%s", why);
    }
    if (strcmp(path, "/api/v1/login") == 0 || strcmp(path, "/api/v1/logout") == 0) {
        if (strcmp(j->method, "POST") != 0) {
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "POST only");
        }
        return strcmp(path, "/api/v1/login") == 0 ? do_login(h, j) : do_logout(h, j);
    }
    char csrf[KVL_HTTP_SID_LEN + 1];
    auth_rc_t arc;
    if (metrics && h->cfg->metrics_anonymous && strcmp(j->method, "GET") == 0 &&
        kvl_http_host_is_loopback(j->addr) &&
        MHD_lookup_connection_value(j->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION) ==
            NULL) {
        /* metrics_anonymous: a scrape from this host needs no credentials */
        csrf[0] = '\0';
        j->role = KVL_ROLE_VIEWER;
        snprintf(j->user, sizeof(j->user), "anonymous");
        arc = AUTH_OK;
    } else {
        arc = authenticate(h, j, csrf, why, sizeof(why));
    }
    switch (arc) {
    case AUTH_OK:
        break;
    case AUTH_BAD_REQUEST:
        return send_error(c, MHD_HTTP_BAD_REQUEST, "%s", why);
    case AUTH_FORBIDDEN:
        return send_error(c, MHD_HTTP_FORBIDDEN, "%s", why);
    case AUTH_THROTTLED:
        return send_error(c, MHD_HTTP_TOO_MANY_REQUESTS, "%s", why);
    case AUTH_NONE:
    case AUTH_FAILED:
        return j->delay ? defer_error(h, j, MHD_HTTP_UNAUTHORIZED, why)
                        : send_error(c, MHD_HTTP_UNAUTHORIZED, "%s", why);
    }
    snprintf(j->csrf, sizeof(j->csrf), "%s", csrf);
    if (csrf[0] != '\0' && is_write(j->method)) {
        const char *given = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-CSRF-Token");
        if (given == NULL || !kvl_http_secret_eq(given, csrf)) {
            return send_error(c, MHD_HTTP_FORBIDDEN,
                              "a write from a browser session needs its X-CSRF-Token header");
        }
    }
    bool known;
    const route_t *r = find_route(h, j->method, path, &known);
    if (r == NULL) {
        return known ? send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on %s",
                                  j->method, path)
                     : send_error(c, MHD_HTTP_NOT_FOUND, "no such API: %s", path);
    }
    if (j->role < r->min_role) {
        return send_error(c, MHD_HTTP_FORBIDDEN, "%s needs the role %s; %s has %s", path,
                          kvl_http_role_name(r->min_role), j->user, kvl_http_role_name(j->role));
    }
    size_t n_segs = 0;
    for (const char *p = path + r->plen; *p != '\0'; p++) {
        n_segs += *p == '/' && p[1] != '\0';
    }
    if (n_segs > KVL_HTTP_MAX_SEGS) {
        return send_error(c, MHD_HTTP_NOT_FOUND, "no such API: %s (too many segments)", path);
    }
    j->route = r;
    return hand_to_loop(h, j);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
    kvl_http_t *h = cls;
    job_t *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return NULL;
    }
    j->h = h;
    j->conn = c;
    j->start_ns = kvl_mono_ns();
    client_addr(c, j->addr, sizeof(j->addr));
    j->target_too_long = strnlen(uri, KVL_HTTP_URL_MAX + 1) > KVL_HTTP_URL_MAX;
    j->target_rc = kvl_http_target_parse(uri, &j->target, j->target_why, sizeof(j->target_why));
    return j;
}

static enum MHD_Result request(kvl_http_t *h, struct MHD_Connection *c, const char *method,
                               const char *upload_data, size_t *upload_data_size, job_t *j);

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    kvl_http_t *h = cls;
    job_t *j = *con_cls;
    KVL_UNUSED(url);
    KVL_UNUSED(version);
    cur_job = j;
    enum MHD_Result rc = request(h, c, method, upload_data, upload_data_size, j);
    cur_job = NULL;
    return rc;
}

static enum MHD_Result request(kvl_http_t *h, struct MHD_Connection *c, const char *method,
                               const char *upload_data, size_t *upload_data_size, job_t *j)
{
    if (j == NULL) {
        return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    if (j->stage == 2) {
        /* back from the loop */
        KVL_ASSERT(j->done);
        return send_bytes(c, j->status, j->resp_text ? j->resp_type : NULL, j->resp_text,
                          j->resp_len, NULL);
    }
    if (j->stage == 0) {
        j->stage = 1;
        if (j->target_rc != 0) {
            return send_error(c, j->target_too_long ? MHD_HTTP_URI_TOO_LONG : MHD_HTTP_BAD_REQUEST,
                              "%s", j->target_why);
        }
        static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE"};
        bool ok = false;
        for (size_t i = 0; i < KVL_ARRAY_SIZE(methods); i++) {
            ok = ok || strcmp(method, methods[i]) == 0;
        }
        if (!ok) {
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed");
        }
        snprintf(j->method, sizeof(j->method), "%s", method);
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl != NULL && strtoull(cl, NULL, 10) > KVL_HTTP_BODY_MAX) {
            return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the body is larger than %d bytes",
                              KVL_HTTP_BODY_MAX);
        }
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (j->body_too_big || j->body_len + n > KVL_HTTP_BODY_MAX) {
            j->body_too_big = true;
            free(j->body);
            j->body = NULL;
            j->body_len = 0;
            return MHD_YES;
        }
        char *nb = realloc(j->body, j->body_len + n + 1);
        if (nb == NULL) {
            return MHD_NO;
        }
        memcpy(nb + j->body_len, upload_data, n);
        j->body = nb;
        j->body_len += n;
        j->body[j->body_len] = '\0';
        return MHD_YES;
    }
    return dispatch(h, j);
}

static void job_free(job_t *j)
{
    kvl_http_target_free(&j->target);
    free(j->body);
    json_decref(j->json);
    free(j->resp_text);
    free(j);
}

/* The class of a request: its route, or static files, login/logout, or another /api/ path. */
static size_t request_class(const job_t *j)
{
    if (j->route != NULL) {
        return j->route->cls;
    }
    const char *p = j->target_rc == 0 ? j->target.path : NULL;
    if (p == NULL) {
        return CLASS_OTHER;
    }
    if (strcmp(p, "/api/v1/login") == 0 || strcmp(p, "/api/v1/logout") == 0) {
        return CLASS_LOGIN;
    }
    if (strncmp(p, "/api/", 5) == 0 || strcmp(p, "/api") == 0 || strcmp(p, "/metrics") == 0) {
        return CLASS_OTHER;
    }
    return CLASS_STATIC;
}

/* Counts a request whose response was queued: its class, status and time. */
static void count_request(kvl_http_t *h, const job_t *j)
{
    uint64_t ns = j->queued_ns > j->start_ns ? j->queued_ns - j->start_ns : 0;
    double s = (double)ns / 1e9;
    size_t b = 0;
    while (b < KVL_HTTP_BUCKETS && s > kvl_http_buckets_s[b]) {
        b++;
    }
    pthread_mutex_lock(&h->stats_mu);
    class_stats_t *cs = &h->cls[request_class(j)];
    if (b < KVL_HTTP_BUCKETS) {
        cs->buckets[b]++;
    }
    cs->count++;
    cs->sum_ns += ns;
    /* a status beyond the table's size is counted under the last slot's code */
    size_t i = 0;
    while (i + 1 < KVL_HTTP_STATUSES && cs->status[i] != 0 && cs->status[i] != j->sent_status) {
        i++;
    }
    if (cs->status[i] == 0) {
        cs->status[i] = j->sent_status;
    }
    cs->by_status[i]++;
    pthread_mutex_unlock(&h->stats_mu);
}

void kvl_http_stats(kvl_http_t *h, kvl_http_stats_fn fn, void *ctx)
{
    if (h == NULL) {
        return;
    }
    for (size_t c = 0; c < N_CLASSES; c++) {
        if (c < MAX_ROUTES && (c >= h->n_routes || h->routes[c].cls != c)) {
            continue;
        }
        kvl_http_class_stats_t st = {0};
        st.name = c == CLASS_STATIC  ? "static"
                  : c == CLASS_LOGIN ? "login"
                  : c == CLASS_OTHER ? "other"
                                     : h->routes[c].prefix;
        pthread_mutex_lock(&h->stats_mu);
        const class_stats_t *cs = &h->cls[c];
        uint64_t cum = 0;
        for (size_t b = 0; b < KVL_HTTP_BUCKETS; b++) {
            cum += cs->buckets[b];
            st.le[b] = cum;
        }
        st.count = cs->count;
        st.sum_s = (double)cs->sum_ns / 1e9;
        for (size_t i = 0; i < KVL_HTTP_STATUSES && cs->status[i] != 0; i++) {
            st.status[i] = cs->status[i];
            st.by_status[i] = cs->by_status[i];
            st.n_status++;
        }
        pthread_mutex_unlock(&h->stats_mu);
        fn(ctx, &st);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    kvl_http_t *h = cls;
    KVL_UNUSED(c);
    KVL_UNUSED(toe);
    job_t *j = *con_cls;
    if (j != NULL) {
        if (j->queued_ns != 0) {
            count_request(h, j);
        }
        if (j->draining) {
            pthread_mutex_lock(&h->mu);
            KVL_ASSERT(h->n_draining > 0);
            h->n_draining--;
            pthread_mutex_unlock(&h->mu);
        }
        job_free(j);
        *con_cls = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) KVL_PRINTF(2, 0);

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    KVL_UNUSED(cls);
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n') {
        msg[--n] = '\0';
    }
    KVL_LOG_DEBUG("http", NULL, "libmicrohttpd: %s", msg);
}

/* ------------------------------------------------------------------ the loop's side */

static void finish_bytes(job_t *j, int status, const char *type, char *bytes, size_t len)
{
    j->status = status;
    j->resp_text = bytes;
    j->resp_len = len;
    snprintf(j->resp_type, sizeof(j->resp_type), "%s", type);
    j->done = true;
    MHD_resume_connection(j->conn);
}

static void finish_job(job_t *j, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    finish_bytes(j, status, "application/json", text, text ? strlen(text) : 0);
}

/* A handler's own bytes are taken only with a type that is short, printable and has no
 * line break (it goes into a header). */
static bool type_ok(const char *type)
{
    size_t n = type ? strlen(type) : 0;
    if (n == 0 || n >= sizeof(((job_t *)NULL)->resp_type)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (type[i] < 0x20 || type[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

static void free_timer(uv_handle_t *t)
{
    free(t);
}

static void delayed_unlink(kvl_http_t *h, job_t *j)
{
    if (j->dprev != NULL) {
        j->dprev->dnext = j->dnext;
    } else {
        KVL_ASSERT(h->delayed == j);
        h->delayed = j->dnext;
    }
    if (j->dnext != NULL) {
        j->dnext->dprev = j->dprev;
    }
    j->dprev = j->dnext = NULL;
}

static void on_delay(uv_timer_t *t)
{
    job_t *j = t->data;
    kvl_http_t *h = j->h;
    delayed_unlink(h, j);
    j->timer = NULL;
    uv_close((uv_handle_t *)t, free_timer);
    finish_job(j, j->delay_status, json_pack("{s:s}", "error", j->delay_why));
}

/* A refusal handed over by defer_error: its timer starts (or, without memory, it is
 * answered at once). */
static void start_delay(kvl_http_t *h, job_t *j)
{
    uv_timer_t *t = malloc(sizeof(*t));
    if (t == NULL) {
        finish_job(j, j->delay_status, json_pack("{s:s}", "error", j->delay_why));
        return;
    }
    uv_timer_init(h->loop, t);
    t->data = j;
    j->timer = t;
    j->dprev = NULL;
    j->dnext = h->delayed;
    if (h->delayed != NULL) {
        h->delayed->dprev = j;
    }
    h->delayed = j;
    uv_timer_start(t, on_delay, FAILED_AUTH_DELAY_MS, 0);
}

static void split_segs(job_t *j, kvl_http_req_t *req, char *buf, size_t len)
{
    const char *rest = j->target.path + j->route->plen;
    snprintf(buf, len, "%s", rest[0] == '/' ? rest + 1 : rest);
    char *s = buf;
    while (*s != '\0' && req->n_segs < KVL_HTTP_MAX_SEGS) {
        char *e = strchr(s, '/');
        if (e != NULL) {
            *e = '\0';
        }
        req->segs[req->n_segs++] = s;
        if (e == NULL) {
            break;
        }
        s = e + 1;
    }
}

static void on_async(uv_async_t *a)
{
    kvl_http_t *h = a->data;
    pthread_mutex_lock(&h->mu);
    job_t *list = h->head;
    h->head = h->tail = NULL;
    pthread_mutex_unlock(&h->mu);
    while (list != NULL) {
        job_t *j = list;
        list = j->next;
        if (j->route == NULL) {
            start_delay(h, j);
            continue;
        }
        kvl_http_req_t req = {.method = j->method,
                              .path = j->target.path,
                              .user = j->user,
                              .role = j->role,
                              .body = j->json,
                              .priv = j};
        char segbuf[KVL_HTTP_URL_MAX + 1];
        split_segs(j, &req, segbuf, sizeof(segbuf));
        kvl_http_resp_t resp = {.status = 200, .body = NULL};
        j->route->fn(j->route->ctx, &req, &resp);
        if (j->later != NULL) {
            json_decref(resp.body); /* answered later, by kvl_http_answer */
            free(resp.bytes);
            continue;
        }
        if (resp.status < 100 || resp.status > 599 || (resp.bytes && !type_ok(resp.type))) {
            json_decref(resp.body);
            free(resp.bytes);
            resp.bytes = NULL;
            kvl_http_error(&resp, 500, "the handler gave no valid status or type");
        }
        if (resp.bytes != NULL) {
            json_decref(resp.body);
            finish_bytes(j, resp.status, resp.type, resp.bytes, resp.len);
            continue;
        }
        finish_job(j, resp.status, resp.body);
    }
}

static void later_unlink(kvl_http_t *h, struct kvl_http_later *l)
{
    if (l->prev != NULL) {
        l->prev->next = l->next;
    } else {
        KVL_ASSERT(h->later == l);
        h->later = l->next;
    }
    if (l->next != NULL) {
        l->next->prev = l->prev;
    }
    l->prev = l->next = NULL;
}

kvl_http_later_t *kvl_http_defer(const kvl_http_req_t *req)
{
    job_t *j = (job_t *)req->priv;
    KVL_ASSERT(j != NULL && j->later == NULL);
    struct kvl_http_later *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return NULL;
    }
    kvl_http_t *h = j->h;
    l->j = j;
    l->next = h->later;
    if (h->later != NULL) {
        h->later->prev = l;
    }
    h->later = l;
    j->later = l;
    return l;
}

void kvl_http_answer(kvl_http_later_t *l, int status, json_t *body)
{
    if (l == NULL) {
        json_decref(body);
        return;
    }
    job_t *j = l->j;
    if (j == NULL) { /* the server answered 503 at its stop */
        json_decref(body);
        free(l);
        return;
    }
    later_unlink(j->h, l);
    j->later = NULL;
    free(l);
    if (status < 100 || status > 599) {
        json_decref(body);
        status = 500;
        body = json_pack("{s:s}", "error", "the handler gave no valid status");
    }
    finish_job(j, status, body);
}

void kvl_http_answer_bytes(kvl_http_later_t *l, int status, const char *type, void *bytes,
                           size_t len)
{
    if (l == NULL || l->j == NULL || bytes == NULL || !type_ok(type) || status < 100 ||
        status > 599) {
        free(bytes);
        kvl_http_answer(l, bytes == NULL || type_ok(type) ? status : 500,
                        json_pack("{s:s}", "error", "the handler gave no valid answer"));
        return;
    }
    job_t *j = l->j;
    later_unlink(j->h, l);
    j->later = NULL;
    free(l);
    finish_bytes(j, status, type, bytes, len);
}

/* ------------------------------------------------------------------ life */

static char *read_small_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "http: %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (buf == NULL || n == 0) {
        snprintf(err, errlen, "http: %s: empty or unreadable", path);
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

int kvl_http_new(uv_loop_t *loop, const kvl_http_cfg_t *cfg, kvl_http_t **out, char *err,
                 size_t errlen)
{
    *out = NULL;
    kvl_http_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return KVL_ENOMEM;
    }
    h->loop = loop;
    h->cfg = cfg;
    h->listen_fd = -1;
    h->started_ms = uv_now(loop);
    h->failed_limit = (kvl_log_limit_t)KVL_LOG_LIMIT_BURST_INIT(10000, 5);
    pthread_mutex_init(&h->mu, NULL);
    pthread_mutex_init(&h->stats_mu, NULL);
    int rc = kvl_http_auth_new(cfg->users_file, cfg->tokens_file, cfg->session_ttl_ms, &h->auth,
                               err, errlen);
    if (rc == 0 && cfg->static_dir != NULL && realpath(cfg->static_dir, h->static_root) == NULL) {
        KVL_LOG_WARN("http", NULL, "static files folder %s: %s (no static files served)",
                     cfg->static_dir, strerror(errno));
        h->static_root[0] = '\0';
    }
    if (rc == 0 && (rc = uv_async_init(loop, &h->async, on_async)) != 0) {
        snprintf(err, errlen, "http: %s", uv_strerror(rc));
    }
    if (rc != 0) {
        kvl_http_auth_free(h->auth);
        pthread_mutex_destroy(&h->mu);
        pthread_mutex_destroy(&h->stats_mu);
        free(h);
        return rc;
    }
    h->async_init = true;
    h->async.data = h;
    kvl_http_route(h, "GET", "/api/v1/status", KVL_ROLE_VIEWER, on_status, h);
    kvl_http_route(h, "GET", "/api/v1/whoami", KVL_ROLE_VIEWER, on_whoami, h);
    kvl_http_route(h, "GET", "/api/v1/users", KVL_ROLE_ADMIN, on_users, h);
    *out = h;
    return 0;
}

static int open_listener(kvl_http_t *h, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, h->cfg->host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons(h->cfg->port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, h->cfg->host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(h->cfg->port);
        sl = sizeof(*s6);
    } else {
        snprintf(err, errlen, "http: %s is not a numeric address", h->cfg->host);
        return KVL_EINVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 128) != 0) {
        snprintf(err, errlen, "http: cannot listen on %s port %u: %s", h->cfg->host,
                 (unsigned)h->cfg->port, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return KVL_EIO;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        h->port = ntohs(ss.ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
    }
    h->listen_fd = fd;
    return 0;
}

int kvl_http_start(kvl_http_t *h, char *err, size_t errlen)
{
    const kvl_http_cfg_t *cfg = h->cfg;
    if (h->mhd != NULL) {
        snprintf(err, errlen, "http: already started");
        return KVL_EINVAL;
    }
    if (cfg->tls != 1 && !kvl_http_host_is_loopback(cfg->host)) {
        snprintf(err, errlen, "http: plain HTTP may listen on 127.0.0.1 or ::1 only, not %s",
                 cfg->host);
        return KVL_ECONFIG;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (cfg->tls == 1) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(err, errlen, "http: this libmicrohttpd has no TLS");
            return KVL_ECONFIG;
        }
        if ((h->tls_cert = read_small_file(cfg->cert, err, errlen)) == NULL ||
            (h->tls_key = read_small_file(cfg->key, err, errlen)) == NULL) {
            return KVL_EIO;
        }
        flags |= MHD_USE_TLS;
    }
    if (strchr(cfg->host, ':') != NULL) {
        flags |= MHD_USE_IPv6;
    }
    int rc = open_listener(h, err, errlen);
    if (rc != 0) {
        return rc;
    }
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key},
        {MHD_OPTION_END, 0, NULL},
    };
    if (cfg->tls != 1) {
        tls_opts[0].option = MHD_OPTION_END;
    }
    h->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, h->listen_fd,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, h, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, h, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)((cfg->connection_timeout_ms + 999) / 1000), MHD_OPTION_CONNECTION_MEMORY_LIMIT,
        (size_t)(64 * 1024), MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)(cfg->threads > 1 ? cfg->threads : 0), MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_END);
    if (h->mhd == NULL) {
        close(h->listen_fd);
        h->listen_fd = -1;
        snprintf(err, errlen, "http: libmicrohttpd did not start on %s port %u%s", cfg->host,
                 (unsigned)h->port, cfg->tls == 1 ? " (is the certificate and key PEM?)" : "");
        return KVL_EIO;
    }
    h->listen_fd = -1; /* MHD's now: MHD_stop_daemon closes it */
    KVL_LOG_INFO("http", NULL, "listening on %s port %u (%s)", cfg->host, (unsigned)h->port,
                 cfg->tls == 1 ? "HTTPS" : "plain HTTP, loopback only");
    return 0;
}

static void on_async_closed(uv_handle_t *hd)
{
    kvl_http_t *h = hd->data;
    kvl_http_auth_free(h->auth);
    pthread_mutex_destroy(&h->mu);
    pthread_mutex_destroy(&h->stats_mu);
    free(h->tls_cert);
    free(h->tls_key);
    free(h);
}

void kvl_http_free(kvl_http_t *h)
{
    if (h == NULL) {
        return;
    }
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    job_t *list = h->head;
    h->head = h->tail = NULL;
    for (job_t *j = list; j != NULL; j = j->next) {
        j->draining = true;
        h->n_draining++;
    }
    for (job_t *j = h->delayed; j != NULL; j = j->dnext) {
        j->draining = true;
        h->n_draining++;
    }
    for (struct kvl_http_later *l = h->later; l != NULL; l = l->next) {
        l->j->draining = true;
        h->n_draining++;
    }
    pthread_mutex_unlock(&h->mu);
    while (h->later != NULL) {
        struct kvl_http_later *l = h->later;
        job_t *j = l->j;
        later_unlink(h, l);
        l->j = NULL; /* the handler's kvl_http_answer only frees the handle now */
        j->later = NULL;
        finish_job(j, 503, json_pack("{s:s}", "error", "the collector is stopping"));
    }
    while (h->delayed != NULL) {
        job_t *j = h->delayed;
        delayed_unlink(h, j);
        uv_timer_stop(j->timer);
        j->timer->data = NULL;
        uv_close((uv_handle_t *)j->timer, free_timer);
        j->timer = NULL;
        finish_job(j, 503, json_pack("{s:s}", "error", "the collector is stopping"));
    }
    while (list != NULL) {
        job_t *j = list;
        list = j->next;
        finish_job(j, 503, json_pack("{s:s}", "error", "the collector is stopping"));
    }
    /* MHD_stop_daemon would close the resumed connections before their answers leave: wait
     * for them (bounded: a client that does not read gets no answer after 2 s) */
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&h->mu);
        size_t left = h->n_draining;
        pthread_mutex_unlock(&h->mu);
        if (left == 0) {
            break;
        }
        usleep(10 * 1000);
    }
    if (h->mhd != NULL) {
        MHD_stop_daemon(h->mhd);
        h->mhd = NULL;
    }
    if (h->listen_fd >= 0) {
        close(h->listen_fd);
    }
    if (h->tls_key != NULL) {
        explicit_bzero(h->tls_key, strlen(h->tls_key));
    }
    uv_close((uv_handle_t *)&h->async, on_async_closed);
}
