/*
 * curl_uv.h — libcurl's multi interface driven by a libuv loop: the one transport under the
 * collector's notifiers (collector/alerts/notify.c) and the agent's HTTP probes
 * (agent/probe/probe_http.c).
 *
 * The caller makes and sets up each easy handle (URL, timeouts, body, headers ...) and adds
 * it here; this module watches the sockets curl names (CURLMOPT_SOCKETFUNCTION: a uv_poll_t
 * per socket, told to curl with curl_multi_assign), wakes curl when it asks
 * (CURLMOPT_TIMERFUNCTION: one uv_timer_t, a timeout of 0 run from the loop, never from inside
 * curl), hands socket events back with curl_multi_socket_action and, after each, reads the
 * finished transfers (curl_multi_info_read) and calls their completion callbacks.
 *
 * libcurl is reached only through a table of its functions (kvl_curl_uv_api_t) the caller
 * gives, so this module links nothing: the collector passes the functions it links
 * (KVL_CURL_UV_API_LINKED), the agent those it loads at run time (dlsym), which keeps libcurl
 * out of agents that probe no web service.
 *
 * Ownership and callbacks: an easy handle added belongs to this module until its transfer
 * ends. It then leaves the multi handle and goes back to the caller in the completion
 * callback, which must clean it up (curl_easy_cleanup). CURLOPT_PRIVATE is this module's:
 * callers keep their own data in the callback's user pointer. A call that fails never calls
 * back. Cancelled transfers never call back. kvl_curl_uv_free calls no completion callback:
 * it hands each unfinished transfer to a drop function (or cleans it up itself) and frees
 * the rest once the loop has closed its handles.
 *
 * Everything runs on the loop's thread. Any of these calls may be made from inside a
 * completion callback (kvl_curl_uv_free too), none from inside a libcurl callback (a write or
 * read function).
 */
#ifndef KVL_CURL_UV_H
#define KVL_CURL_UV_H

#include <curl/curl.h>
#include <stddef.h>
#include <uv.h>

/* The libcurl functions this module calls. */
typedef struct kvl_curl_uv_api {
    CURLM *(*multi_init)(void);
    CURLMcode (*multi_cleanup)(CURLM *m);
    CURLMcode (*multi_setopt)(CURLM *m, CURLMoption opt, ...);
    CURLMcode (*multi_add_handle)(CURLM *m, CURL *e);
    CURLMcode (*multi_remove_handle)(CURLM *m, CURL *e);
    CURLMcode (*multi_assign)(CURLM *m, curl_socket_t fd, void *p);
    CURLMcode (*multi_socket_action)(CURLM *m, curl_socket_t fd, int ev, int *running);
    CURLMsg *(*multi_info_read)(CURLM *m, int *left);
    const char *(*multi_strerror)(CURLMcode mc);
    CURLcode (*easy_setopt)(CURL *e, CURLoption opt, ...);
    CURLcode (*easy_getinfo)(CURL *e, CURLINFO info, ...);
    void (*easy_cleanup)(CURL *e);
} kvl_curl_uv_api_t;

/* The table of a program that links libcurl:
 *     static const kvl_curl_uv_api_t api = KVL_CURL_UV_API_LINKED; */
#define KVL_CURL_UV_API_LINKED                                                                     \
    {                                                                                              \
        .multi_init = curl_multi_init, .multi_cleanup = curl_multi_cleanup,                        \
        .multi_setopt = curl_multi_setopt, .multi_add_handle = curl_multi_add_handle,              \
        .multi_remove_handle = curl_multi_remove_handle, .multi_assign = curl_multi_assign,        \
        .multi_socket_action = curl_multi_socket_action, .multi_info_read = curl_multi_info_read,  \
        .multi_strerror = curl_multi_strerror, .easy_setopt = curl_easy_setopt,                    \
        .easy_getinfo = curl_easy_getinfo, .easy_cleanup = curl_easy_cleanup,                      \
    }

typedef struct kvl_curl_uv kvl_curl_uv_t;

/* A transfer ended (rc: curl's result; CURLE_OK says nothing of an HTTP status). e has left the
 * multi handle and is the callback's: it reads what it needs and cleans it up. */
typedef void (*kvl_curl_uv_done_cb)(void *arg, CURL *e, CURLcode rc);
/* A transfer still under way at kvl_curl_uv_free: e is removed and the function's to clean
 * up, with what arg holds. */
typedef void (*kvl_curl_uv_drop_cb)(void *arg, CURL *e);

/* A multi handle on loop calling libcurl through api (which must outlive it; curl_global_init
 * is the caller's, before). Returns 0 and sets *out, or KVL_ENOMEM with "out of memory" in
 * err. */
int kvl_curl_uv_new(uv_loop_t *loop, const kvl_curl_uv_api_t *api, kvl_curl_uv_t **out, char *err,
                    size_t errlen);

/* Starts the transfer e (set up, not added elsewhere); done(arg, e, rc) is called once when it
 * ends. Returns 0, or a negative code with a sentence in err (libcurl's text when curl refused
 * e, e.g. added already: KVL_EINVAL; KVL_ENOMEM; KVL_EINVAL once kvl_curl_uv_free was
 * called, from a completion callback); then e is still the caller's and done is never
 * called. */
int kvl_curl_uv_add(kvl_curl_uv_t *cu, CURL *e, kvl_curl_uv_done_cb done, void *arg, char *err,
                    size_t errlen);

/* Stops the transfer e without calling back (also when it has ended and its callback is still
 * due); e is the caller's again. Returns 0, or KVL_EINVAL when e is not under way here. */
int kvl_curl_uv_cancel(kvl_curl_uv_t *cu, CURL *e);

/* Stops every transfer under way, giving each to drop(arg, e) (NULL: e is cleaned up here and
 * arg left alone), no completion callback; cleans up the multi handle and closes the loop
 * handles; the memory goes when their close callbacks have run (run the loop). NULL-safe. */
void kvl_curl_uv_free(kvl_curl_uv_t *cu, kvl_curl_uv_drop_cb drop);

#endif
