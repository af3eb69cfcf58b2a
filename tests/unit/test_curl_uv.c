/*
 * test_curl_uv.c — libcurl's multi interface on the loop (common/curl_uv.h) against two
 * servers on 127.0.0.1 in the test: a libmicrohttpd daemon (its own thread) answering
 * "hello <path>", and a silent one (a listening socket that never accepts: the kernel completes
 * the connection, nobody answers), so a transfer to it stays under way until it is given up.
 *
 * Cases: several concurrent transfers each complete once with their own answer; a transfer's
 * timeout reported through curl's timer; a cancelled transfer never calls back (also cancelled
 * from another's callback) and a second cancel is refused; an add curl refuses fails without a
 * callback; closing with transfers under way hands each to the drop function (or cleans it up)
 * and calls nobody back, from outside and from inside a completion callback, with every loop
 * handle closed after (uv_loop_close succeeds; the ASan build checks that nothing leaks). Every
 * wait is bounded.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "curl_uv.h"
#include "kvl.h"

#define WAIT_MS 15000 /* bound of every wait: far above what a loaded machine needs */

static const kvl_curl_uv_api_t api = KVL_CURL_UV_API_LINKED;

/* ---- the servers ----------------------------------------------------------------------------- */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_len, void **state)
{
    (void)cls, (void)method, (void)version, (void)data, (void)data_len, (void)state;
    char body[256];
    int n = snprintf(body, sizeof(body), "hello %s", url);
    struct MHD_Response *r =
        MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick; /* wakes uv_run(ONCE) so that waits can end on time */
    struct MHD_Daemon *mhd;
    int mhd_port;
    int silent_fd, silent_port;
    kvl_curl_uv_t *cu;
} fixture_t;

static int silent_listen(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 64), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 10, 10);
    f->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, NULL,
        MHD_OPTION_SOCK_ADDR,
        &(struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)},
        MHD_OPTION_END);
    assert_non_null(f->mhd);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(f->mhd, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(di);
    f->mhd_port = di->port;
    f->silent_fd = silent_listen(&f->silent_port);
    char err[128] = "";
    assert_int_equal(kvl_curl_uv_new(&f->loop, &api, &f->cu, err, sizeof(err)), 0);
    *state = f;
    return 0;
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    kvl_curl_uv_free(f->cu, NULL); /* NULL-safe; a no-op when a case has freed it */
    uv_close((uv_handle_t *)&f->tick, NULL);
    for (int i = 0; i < 1000 && uv_run(&f->loop, UV_RUN_NOWAIT) != 0; i++) {
        usleep(1000);
    }
    int rc = uv_loop_close(&f->loop); /* UV_EBUSY: a handle left open */
    if (rc != 0) {
        uv_walk(&f->loop, close_any, NULL);
        uv_run(&f->loop, UV_RUN_NOWAIT);
        uv_loop_close(&f->loop);
    }
    MHD_stop_daemon(f->mhd);
    close(f->silent_fd);
    free(f);
    assert_int_equal(rc, 0);
    return 0;
}

/* Runs the loop until *count reaches want or WAIT_MS pass. */
static void run_until(fixture_t *f, const int *count, int want)
{
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + WAIT_MS;
    while (*count < want && uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    assert_int_equal(*count, want);
}

/* Runs the loop for ms. */
static void run_for(fixture_t *f, uint64_t ms)
{
    uv_update_time(&f->loop);
    uint64_t end = uv_now(&f->loop) + ms;
    while (uv_now(&f->loop) < end) {
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

/* ---- transfers ---------------------------------------------------------------------------------
 */

typedef struct xfer {
    fixture_t *f;
    CURL *e;
    int calls; /* completion callbacks */
    int drops;
    CURLcode rc;
    long status;
    char body[256];
    size_t len;
    int *done_count;
    struct xfer *cancel; /* cancelled from this one's callback */
    bool free_in_cb;     /* frees the whole thing from this one's callback */
    int add_after_free;  /* that add's result */
} xfer_t;

static size_t on_body(char *p, size_t size, size_t n, void *userp)
{
    xfer_t *x = userp;
    size_t len = size * n, room = sizeof(x->body) - 1 - x->len;
    memcpy(x->body + x->len, p, len < room ? len : room);
    x->len += len < room ? len : room;
    return len;
}

static void on_drop(void *arg, CURL *e)
{
    xfer_t *x = arg;
    assert_ptr_equal(e, x->e);
    x->drops++;
    curl_easy_cleanup(e);
    x->e = NULL;
}

static void on_done(void *arg, CURL *e, CURLcode rc)
{
    xfer_t *x = arg;
    assert_ptr_equal(e, x->e);
    x->calls++;
    x->rc = rc;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &x->status);
    curl_easy_cleanup(e);
    x->e = NULL;
    (*x->done_count)++;
    if (x->cancel != NULL) {
        assert_int_equal(kvl_curl_uv_cancel(x->f->cu, x->cancel->e), 0); /* e: the test's */
    }
    if (x->free_in_cb) {
        kvl_curl_uv_free(x->f->cu, on_drop);
        CURL *e2 = curl_easy_init();
        char err[128] = "";
        x->add_after_free = kvl_curl_uv_add(x->f->cu, e2, on_done, x, err, sizeof(err));
        assert_true(err[0] != '\0');
        curl_easy_cleanup(e2);
        x->f->cu = NULL;
    }
}

/* Starts a GET of path on the answering server (silent: on the silent one). */
static void start(fixture_t *f, xfer_t *x, int *done_count, bool silent, const char *path,
                  long timeout_ms)
{
    memset(x, 0, sizeof(*x));
    x->f = f;
    x->done_count = done_count;
    x->e = curl_easy_init();
    assert_non_null(x->e);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", silent ? f->silent_port : f->mhd_port,
             path);
    curl_easy_setopt(x->e, CURLOPT_URL, url);
    curl_easy_setopt(x->e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->e, CURLOPT_TIMEOUT_MS, timeout_ms);
    char err[128] = "";
    assert_int_equal(kvl_curl_uv_add(f->cu, x->e, on_done, x, err, sizeof(err)), 0);
}

/* ---- cases -------------------------------------------------------------------------------------
 */

static void test_concurrent(void **state)
{
    fixture_t *f = *state;
    enum { N = 12 };
    xfer_t x[N];
    int done = 0;
    for (int i = 0; i < N; i++) {
        char path[32];
        snprintf(path, sizeof(path), "/t/%d", i);
        start(f, &x[i], &done, false, path, WAIT_MS);
    }
    run_until(f, &done, N);
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof(want), "hello /t/%d", i);
        assert_int_equal(x[i].calls, 1);
        assert_int_equal(x[i].rc, CURLE_OK);
        assert_int_equal(x[i].status, 200);
        assert_string_equal(x[i].body, want);
    }
    /* the loop is idle again: a second round on the same object */
    for (int i = 0; i < N; i++) {
        start(f, &x[i], &done, false, "/again", WAIT_MS);
    }
    run_until(f, &done, 2 * N);
    for (int i = 0; i < N; i++) {
        assert_int_equal(x[i].calls, 1);
        assert_string_equal(x[i].body, "hello /again");
    }
}

static void test_timeout(void **state)
{
    fixture_t *f = *state;
    xfer_t x;
    int done = 0;
    start(f, &x, &done, true, "/", 200);
    run_until(f, &done, 1);
    assert_int_equal(x.calls, 1);
    assert_int_equal(x.rc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(x.status, 0);
}

static void test_cancel(void **state)
{
    fixture_t *f = *state;
    xfer_t silent[3], ok[2];
    int done = 0, late = 0;
    /* silent[0] cancelled at once, silent[1] from ok[1]'s callback; silent[2], with the same
     * timeout as silent[0], shows that the time it would have called back has passed. The
     * cancelled handles are cleaned up only at the end (curl_easy_cleanup would take them out
     * of the multi handle itself). */
    start(f, &silent[0], &late, true, "/", 1000);
    start(f, &silent[1], &late, true, "/", WAIT_MS);
    start(f, &silent[2], &late, true, "/", 1000);
    run_for(f, 50); /* connected and waiting for an answer */
    CURL *e = silent[0].e;
    assert_int_equal(kvl_curl_uv_cancel(f->cu, e), 0);
    assert_int_equal(kvl_curl_uv_cancel(f->cu, e), KVL_EINVAL); /* not under way any more */
    start(f, &ok[0], &done, false, "/a", WAIT_MS);
    start(f, &ok[1], &done, false, "/b", WAIT_MS);
    ok[1].cancel = &silent[1];
    run_until(f, &done, 2);
    assert_int_equal(ok[0].calls + ok[1].calls, 2);
    run_until(f, &late, 1);
    assert_int_equal(silent[2].calls, 1);
    assert_int_equal(silent[2].rc, CURLE_OPERATION_TIMEDOUT);
    run_for(f, 300);
    assert_int_equal(silent[0].calls, 0);
    assert_int_equal(silent[1].calls, 0);
    assert_int_equal(late, 1);
    curl_easy_cleanup(silent[0].e);
    curl_easy_cleanup(silent[1].e);
}

static void test_add_refused(void **state)
{
    fixture_t *f = *state;
    xfer_t x;
    int done = 0;
    start(f, &x, &done, false, "/once", WAIT_MS);
    char err[128] = "";
    assert_int_equal(kvl_curl_uv_add(f->cu, x.e, on_done, &x, err, sizeof(err)), KVL_EINVAL);
    assert_true(err[0] != '\0'); /* curl's text */
    run_until(f, &done, 1);
    run_for(f, 50);
    assert_int_equal(x.calls, 1);
    assert_int_equal(done, 1);
    assert_string_equal(x.body, "hello /once");
}

static void test_free_under_way(void **state)
{
    fixture_t *f = *state;
    enum { N = 5 };
    xfer_t x[N];
    int done = 0;
    for (int i = 0; i < N; i++) {
        start(f, &x[i], &done, true, "/", WAIT_MS);
    }
    run_for(f, 100); /* sockets watched */
    kvl_curl_uv_free(f->cu, on_drop);
    f->cu = NULL;
    run_for(f, 100);
    for (int i = 0; i < N; i++) {
        assert_int_equal(x[i].drops, 1);
        assert_int_equal(x[i].calls, 0);
        assert_null(x[i].e);
    }
    assert_int_equal(done, 0);
}

static void test_free_no_drop(void **state)
{
    fixture_t *f = *state;
    xfer_t x[3];
    int done = 0;
    for (int i = 0; i < 3; i++) {
        start(f, &x[i], &done, true, "/", WAIT_MS);
    }
    run_for(f, 100);
    kvl_curl_uv_free(f->cu, NULL); /* cleans the easy handles up itself */
    f->cu = NULL;
    run_for(f, 100);
    assert_int_equal(done, 0);
}

static void test_free_in_callback(void **state)
{
    fixture_t *f = *state;
    xfer_t silent[2], ok;
    int done = 0, never = 0;
    for (int i = 0; i < 2; i++) {
        start(f, &silent[i], &never, true, "/", WAIT_MS);
    }
    start(f, &ok, &done, false, "/last", WAIT_MS);
    ok.free_in_cb = true;
    run_until(f, &done, 1);
    assert_int_equal(ok.add_after_free, KVL_EINVAL);
    run_for(f, 100);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(silent[i].drops, 1);
        assert_int_equal(silent[i].calls, 0);
    }
    assert_int_equal(never, 0);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_under_way, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_no_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_in_callback, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
