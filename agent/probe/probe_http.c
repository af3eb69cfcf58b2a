/*
 * probe_http.c — HTTP(S) probes with libcurl's multi interface on libuv (see
 * probe_http.h): the transport is common/curl_uv.c (sockets, timer, finished transfers),
 * given the libcurl functions loaded here; this file sets up each GET and turns a finished
 * one into a kvl_http_result_t.
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

#include "curl_uv.h"
#include "kvl.h"
#include "log.h"

#define MOD "http"

typedef struct xfer {
    kvl_http_t *h;
    uint32_t target, seq;
} xfer_t;

struct kvl_http {
    kvl_curl_uv_t *curl;
    kvl_http_cb cb;
    void *arg;
};

static bool curl_ready;

static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    const char *(*easy_strerror)(CURLcode);
    kvl_curl_uv_api_t uv; /* the multi interface (curl_uv.c) and what both call */
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
        {"curl_easy_strerror", (void **)&cf.easy_strerror},
        {"curl_easy_cleanup", (void **)&cf.uv.easy_cleanup},
        {"curl_easy_setopt", (void **)&cf.uv.easy_setopt},
        {"curl_easy_getinfo", (void **)&cf.uv.easy_getinfo},
        {"curl_multi_init", (void **)&cf.uv.multi_init},
        {"curl_multi_cleanup", (void **)&cf.uv.multi_cleanup},
        {"curl_multi_add_handle", (void **)&cf.uv.multi_add_handle},
        {"curl_multi_remove_handle", (void **)&cf.uv.multi_remove_handle},
        {"curl_multi_assign", (void **)&cf.uv.multi_assign},
        {"curl_multi_setopt", (void **)&cf.uv.multi_setopt},
        {"curl_multi_socket_action", (void **)&cf.uv.multi_socket_action},
        {"curl_multi_info_read", (void **)&cf.uv.multi_info_read},
        {"curl_multi_strerror", (void **)&cf.uv.multi_strerror},
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
#define curl_global_init cf.global_init
#define curl_easy_init cf.easy_init
#define curl_easy_cleanup cf.uv.easy_cleanup
#define curl_easy_setopt cf.uv.easy_setopt
#define curl_easy_getinfo cf.uv.easy_getinfo
#define curl_easy_strerror cf.easy_strerror

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

/* A GET ended: its figures to the prober's callback. */
static void on_done(void *arg, CURL *e, CURLcode rc)
{
    xfer_t *x = arg;
    kvl_http_t *h = x->h;
    kvl_http_result_t r = {.target = x->target, .seq = x->seq, .cert_days = NAN};
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
    h->cb(h->arg, &r); /* h is not read after: the callback may free it */
    curl_easy_cleanup(e);
    free(x);
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
    char err[64];
    if (h == NULL || kvl_curl_uv_new(loop, &cf.uv, &h->curl, err, sizeof(err)) != 0) {
        free(h);
        return NULL;
    }
    h->cb = cb;
    h->arg = arg;
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
    x->h = h;
    x->target = target;
    x->seq = seq;
    curl_easy_setopt(e, CURLOPT_URL, url);
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
    char err[CURL_ERROR_SIZE];
    if (kvl_curl_uv_add(h->curl, e, on_done, x, err, sizeof(err)) != 0) {
        curl_easy_cleanup(e);
        free(x);
        return KVL_ENOMEM;
    }
    return 0;
}

/* A GET still under way at the end: given up unreported. */
static void on_drop(void *arg, CURL *e)
{
    curl_easy_cleanup(e);
    free(arg);
}

void kvl_http_free(kvl_http_t *h)
{
    if (h == NULL) {
        return;
    }
    /* Abort what is in flight (curl closes their sockets; the uv handles close on the loop). */
    kvl_curl_uv_free(h->curl, on_drop);
    free(h);
}
