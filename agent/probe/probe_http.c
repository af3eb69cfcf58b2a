/*
 * probe_http.c — HTTP(S) probes with libcurl's multi interface on libuv (see
 * probe_http.h).
 *
 * Sockets: each socket curl asks to watch gets a sock_t with a uv_poll_t (assigned to the
 * socket with curl_multi_assign); CURL_POLL_REMOVE closes the poll handle, freed in its
 * close callback. The timer curl asks for is one uv_timer_t. After every socket action,
 * finished transfers are read (curl_multi_info_read) and reported.
 */
#include "probe_http.h"

/* libcurl is loaded at run time, the first time an HTTP prober is made: linked in, it and
 * what it pulls in (GnuTLS, Kerberos, LDAP, p11-kit ...) cost every agent ~2.5 MB of
 * resident memory at start, also the many that probe no web service. Its calls below go
 * through the table `cf`, filled by dlsym (CURL_DISABLE_TYPECHECK: the type-checking
 * macros of curl.h would otherwise wrap the variadic setters). */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvl.h"
#include "log.h"

#define MOD "http"

typedef struct sock {
    kvl_http_t *h;
    curl_socket_t fd;
    uv_poll_t poll;
} sock_t;

typedef struct xfer {
    struct xfer *next, *prev;
    CURL *e;
    uint32_t target, seq;
} xfer_t;

struct kvl_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    kvl_http_cb cb;
    void *arg;
    bool freeing;
    xfer_t *xfers; /* in flight */
};

static void unlink_xfer(kvl_http_t *h, xfer_t *x)
{
    if (x->prev != NULL) {
        x->prev->next = x->next;
    } else {
        h->xfers = x->next;
    }
    if (x->next != NULL) {
        x->next->prev = x->prev;
    }
}

static bool curl_ready;

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *);
    CURLMcode (*multi_add_handle)(CURLM *, CURL *);
    CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
    CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
    CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
    CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
    CURLMsg *(*multi_info_read)(CURLM *, int *);
} cf;

/* Loads libcurl and its entry points once; false (logged) when it is not there. */
static bool curl_load(void)
{
    static bool tried, ok;
    if (tried) {
        return ok;
    }
    tried = true;
    void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        KVL_LOG_ERROR(MOD, NULL, "HTTP probes need libcurl (Debian package libcurl4): %s",
                      dlerror());
        return false;
    }
    struct {
        const char *name;
        void **slot;
    } syms[] = {
        {"curl_global_init", (void **)&cf.global_init},
        {"curl_easy_init", (void **)&cf.easy_init},
        {"curl_easy_cleanup", (void **)&cf.easy_cleanup},
        {"curl_easy_setopt", (void **)&cf.easy_setopt},
        {"curl_easy_getinfo", (void **)&cf.easy_getinfo},
        {"curl_easy_strerror", (void **)&cf.easy_strerror},
        {"curl_multi_init", (void **)&cf.multi_init},
        {"curl_multi_cleanup", (void **)&cf.multi_cleanup},
        {"curl_multi_add_handle", (void **)&cf.multi_add_handle},
        {"curl_multi_remove_handle", (void **)&cf.multi_remove_handle},
        {"curl_multi_assign", (void **)&cf.multi_assign},
        {"curl_multi_setopt", (void **)&cf.multi_setopt},
        {"curl_multi_socket_action", (void **)&cf.multi_socket_action},
        {"curl_multi_info_read", (void **)&cf.multi_info_read},
    };
    for (size_t i = 0; i < KVL_ARRAY_SIZE(syms); i++) {
        if ((*syms[i].slot = dlsym(lib, syms[i].name)) == NULL) {
            KVL_LOG_ERROR(MOD, NULL, "libcurl lacks %s: %s", syms[i].name, dlerror());
            return false;
        }
    }
    ok = true;
    return true;
}

#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_global_init cf.global_init
#define curl_easy_init cf.easy_init
#define curl_easy_cleanup cf.easy_cleanup
#define curl_easy_setopt cf.easy_setopt
#define curl_easy_getinfo cf.easy_getinfo
#define curl_easy_strerror cf.easy_strerror
#define curl_multi_init cf.multi_init
#define curl_multi_cleanup cf.multi_cleanup
#define curl_multi_add_handle cf.multi_add_handle
#define curl_multi_remove_handle cf.multi_remove_handle
#define curl_multi_assign cf.multi_assign
#define curl_multi_setopt cf.multi_setopt
#define curl_multi_socket_action cf.multi_socket_action
#define curl_multi_info_read cf.multi_info_read

double kvl_http_cert_days(const char *expire, int64_t now_s)
{
    if (expire == NULL) {
        return NAN;
    }
    const char *p = strchr(expire, ':');
    static const char prefix[] = "Expire date:";
    if (strncmp(expire, prefix, sizeof(prefix) - 1) == 0) {
        p = expire + sizeof(prefix) - 1;
    } else {
        p = expire;
    }
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(p, "%b %d %H:%M:%S %Y", &tm);
    if (end == NULL) {
        return NAN;
    }
    while (*end == ' ') {
        end++;
    }
    if (strcmp(end, "GMT") != 0 && *end != '\0') {
        return NAN;
    }
    time_t t = timegm(&tm);
    if (t == (time_t)-1) {
        return NAN;
    }
    return (double)((int64_t)t - now_s) / 86400.0;
}

static void check_done(kvl_http_t *h)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        CURL *e = m->easy_handle;
        xfer_t *x = NULL;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
        kvl_http_result_t r = {.target = x->target, .seq = x->seq, .cert_days = NAN};
        CURLcode rc = m->data.result;
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        r.status = status;
        r.done = rc == CURLE_OK && status > 0;
        r.error = rc == CURLE_OK ? "no response" : curl_easy_strerror(rc);
        curl_off_t total = 0, ttfb = 0;
        curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &total);
        curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME_T, &ttfb);
        r.total_ns = (int64_t)total * 1000;
        r.ttfb_ns = (int64_t)ttfb * 1000;
        struct curl_certinfo *ci = NULL;
        if (curl_easy_getinfo(e, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci != NULL &&
            ci->num_of_certs > 0) {
            for (struct curl_slist *s = ci->certinfo[0]; s != NULL; s = s->next) {
                if (strncmp(s->data, "Expire date:", 12) == 0) {
                    r.cert_days = kvl_http_cert_days(s->data, (int64_t)time(NULL));
                }
            }
        }
        h->cb(h->arg, &r);
        curl_multi_remove_handle(h->multi, e);
        curl_easy_cleanup(e);
        unlink_xfer(h, x);
        free(x);
    }
}

static void on_sock_closed(uv_handle_t *hd)
{
    free(hd->data);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    sock_t *s = p->data;
    kvl_http_t *h = s->h;
    int flags = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    } else {
        flags |= (events & UV_READABLE) ? CURL_CSELECT_IN : 0;
        flags |= (events & UV_WRITABLE) ? CURL_CSELECT_OUT : 0;
    }
    int running;
    curl_multi_socket_action(h->multi, s->fd, flags, &running);
    check_done(h);
}

static int on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    KVL_UNUSED(e);
    kvl_http_t *h = userp;
    sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, on_sock_closed);
            curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof(*s));
        if (s == NULL) {
            return -1;
        }
        s->h = h;
        s->fd = fd;
        if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        curl_multi_assign(h->multi, fd, s);
    }
    int ev = 0;
    ev |= (what & CURL_POLL_IN) ? UV_READABLE : 0;
    ev |= (what & CURL_POLL_OUT) ? UV_WRITABLE : 0;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    kvl_http_t *h = t->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(h);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    KVL_UNUSED(multi);
    kvl_http_t *h = userp;
    if (h->freeing) {
        return 0;
    }
    if (timeout_ms < 0) {
        uv_timer_stop(&h->timer);
    } else {
        /* 0: act soon, but from the loop, not from inside curl. */
        uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

static size_t discard(char *ptr, size_t size, size_t n, void *userdata)
{
    KVL_UNUSED(ptr);
    KVL_UNUSED(userdata);
    return size * n;
}

kvl_http_t *kvl_http_new(uv_loop_t *loop, kvl_http_cb cb, void *arg)
{
    if (!curl_ready) {
        if (!curl_load()) {
            return NULL;
        }
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) {
            KVL_LOG_ERROR(MOD, NULL, "cannot start libcurl: %s", curl_easy_strerror(rc));
            return NULL;
        }
        curl_ready = true;
    }
    kvl_http_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->loop = loop;
    h->cb = cb;
    h->arg = arg;
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        free(h);
        return NULL;
    }
    uv_timer_init(loop, &h->timer);
    h->timer.data = h;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    return h;
}

int kvl_http_get(kvl_http_t *h, const char *url, const char *ca_file, uint32_t target, uint32_t seq,
                 long timeout_ms)
{
    xfer_t *x = calloc(1, sizeof(*x));
    CURL *e = curl_easy_init();
    if (x == NULL || e == NULL) {
        free(x);
        if (e != NULL) {
            curl_easy_cleanup(e);
        }
        return KVL_ENOMEM;
    }
    x->target = target;
    x->seq = seq;
    x->e = e;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(e, CURLOPT_CERTINFO, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "kaaval-agent/" KVL_VERSION);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (ca_file != NULL) {
        curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
    }
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        free(x);
        return KVL_ENOMEM;
    }
    x->next = h->xfers;
    if (h->xfers != NULL) {
        h->xfers->prev = x;
    }
    h->xfers = x;
    return 0;
}

static void on_timer_closed(uv_handle_t *t)
{
    free(t->data);
}

void kvl_http_free(kvl_http_t *h)
{
    if (h == NULL) {
        return;
    }
    h->freeing = true;
    /* Abort what is in flight: remove every easy handle (curl closes their sockets and
     * tells on_socket to stop watching them). */
    while (h->xfers != NULL) {
        xfer_t *x = h->xfers;
        unlink_xfer(h, x);
        curl_multi_remove_handle(h->multi, x->e);
        curl_easy_cleanup(x->e);
        free(x);
    }
    curl_multi_cleanup(h->multi);
    uv_close((uv_handle_t *)&h->timer, on_timer_closed);
}
